/* CLIP tokenizer: loading (vocab.json, merges.txt, config files), pre-tokenisation, BPE.
 * Behaviour follows transformers' slow CLIPTokenizer (tokenization_clip.py, 4.30) and openai/CLIP's
 * simple_tokenizer.py; see clip_tokenizer.h and docs/TOKENIZER.md. */
#include "models/clip_tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "models/clip_tokenizer_internal.h"

#define MAX_FILE_BYTES ((size_t)64 << 20) /* vocab.json / merges.txt size limit */
#define MAX_VOCAB (1 << 22)               /* entries */
#define MAX_ID ((1 << 24) - 1)
#define MAX_TOKEN_BYTES 4096
/* CLIPTokenizer reads merges.txt lines [1 : 49152 - 256 - 2 + 1]: at most 48894 merges. */
#define CLIP_MAX_MERGES (49152 - 256 - 2)

struct tdm_clip_tokenizer {
    int n_ids;        /* max id + 1 */
    int n_tokens;     /* vocab entries */
    char **id_str;    /* [n_ids] token strings (NULL for unused ids), point into pool */
    char *pool;       /* all token strings, NUL-separated */
    int32_t *str_tab; /* [str_cap] open-addressing table of ids keyed by token string; -1 empty */
    size_t str_cap;
    uint64_t *m_key; /* [m_cap] merge pair (left id << 32 | right id); UINT64_MAX empty */
    int32_t *m_rank; /* [m_cap] merge rank (line index - 1) */
    int32_t *m_res;  /* [m_cap] id of the merged token */
    size_t m_cap;
    int n_merges;
    int byte_id[256];     /* id of the byte's unicode character */
    int byte_end_id[256]; /* id of the byte's unicode character + "</w>" */
    int bos, eos, pad, max_length;
    char pad_str[64]; /* pad token content (for split_pad_token) */
};

/* ---- hashing ------------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

/* Slot of token string s[n] in the string table: its id's slot, or the empty slot where it goes. */
static size_t str_slot(const tdm_clip_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->str_cap - 1, i = (size_t)hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = t->str_tab[i];
        if (id < 0) return i;
        const char *e = t->id_str[id];
        if (strncmp(e, s, n) == 0 && e[n] == '\0') return i;
        i = (i + 1) & mask;
    }
}

static int lookup_n(const tdm_clip_tokenizer *t, const char *s, size_t n) {
    return t->str_tab[str_slot(t, s, n)];
}

int tdm_clip_token_id(const tdm_clip_tokenizer *t, const char *token) {
    return token ? lookup_n(t, token, strlen(token)) : -1;
}

static size_t merge_slot(const tdm_clip_tokenizer *t, uint64_t key) {
    size_t mask = t->m_cap - 1, i = (size_t)hash_u64(key) & mask;
    while (t->m_key[i] != UINT64_MAX && t->m_key[i] != key) i = (i + 1) & mask;
    return i;
}

/* Rank of merging (a, b) and the merged id; rank -1 when the pair is not a merge. */
static int32_t merge_find(const tdm_clip_tokenizer *t, int32_t a, int32_t b, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = merge_slot(t, key);
    if (t->m_key[i] == UINT64_MAX) return -1;
    *res = t->m_res[i];
    return t->m_rank[i];
}

/* ---- accessors ------------------------------------------------------------------------------------- */

int tdm_clip_vocab_size(const tdm_clip_tokenizer *t) { return t->n_ids; }
int tdm_clip_bos_id(const tdm_clip_tokenizer *t) { return t->bos; }
int tdm_clip_eos_id(const tdm_clip_tokenizer *t) { return t->eos; }
int tdm_clip_pad_id(const tdm_clip_tokenizer *t) { return t->pad; }
int tdm_clip_max_length(const tdm_clip_tokenizer *t) { return t->max_length; }
const char *tdm_clip_pad_token(const tdm_clip_tokenizer *t) { return t->pad_str; }

const char *tdm_clip_token_str(const tdm_clip_tokenizer *t, int id) {
    return id >= 0 && id < t->n_ids ? t->id_str[id] : NULL;
}

void tdm_clip_tokenizer_free(tdm_clip_tokenizer *t) {
    if (!t) return;
    free(t->id_str);
    free(t->pool);
    free(t->str_tab);
    free(t->m_key);
    free(t->m_rank);
    free(t->m_res);
    free(t);
}

/* ---- loading ------------------------------------------------------------------------------------- */

/* 1-based line and column of byte offset off in text. */
static void line_col(const char *text, size_t off, long *line, long *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static tdm_code load_vocab(tdm_clip_tokenizer *t, const char *path, tdm_status *st) {
    char *text;
    size_t len;
    TDM_TRY(tdm_read_file(path, MAX_FILE_BYTES, &text, &len, st));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        long line, col;
        line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        free(text);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s:%ld:%ld: invalid JSON", path, line, col);
    }
    free(text);
    tdm_code rc = TDM_OK;
    if (!cJSON_IsObject(j)) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: top level must be an object {token: id}", path);
        goto done;
    }
    /* pass 1: count, check ids, size the pool */
    size_t pool_bytes = 0;
    long max_id = -1;
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (++count > MAX_VOCAB) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: more than %d entries", path, MAX_VOCAB);
            goto done;
        }
        size_t kl = strlen(e->string);
        if (kl == 0 || kl > MAX_TOKEN_BYTES) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: entry %d: token length %zu outside 1..%d bytes", path, count - 1, kl,
                          MAX_TOKEN_BYTES);
            goto done;
        }
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(long)e->valuedouble || e->valuedouble < 0 ||
            e->valuedouble > MAX_ID) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: token '%.40s': id must be an integer in [0, %d]", path, e->string,
                          MAX_ID);
            goto done;
        }
        if ((long)e->valuedouble > max_id) max_id = (long)e->valuedouble;
        pool_bytes += kl + 1;
    }
    if (count == 0) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: vocabulary is empty", path);
        goto done;
    }
    t->n_ids = (int)max_id + 1;
    t->n_tokens = count;
    t->id_str = calloc((size_t)t->n_ids, sizeof *t->id_str);
    t->pool = malloc(pool_bytes);
    t->str_cap = pow2_at_least((size_t)count * 2);
    t->str_tab = malloc(t->str_cap * sizeof *t->str_tab);
    if (!t->id_str || !t->pool || !t->str_tab) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory for %d tokens", path, count);
        goto done;
    }
    memset(t->str_tab, 0xFF, t->str_cap * sizeof *t->str_tab);
    /* pass 2: fill */
    char *p = t->pool;
    cJSON_ArrayForEach(e, j) {
        int id = (int)e->valuedouble;
        size_t kl = strlen(e->string);
        if (t->id_str[id]) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tokens '%.40s' and '%.40s' share id %d", path, t->id_str[id],
                          e->string, id);
            goto done;
        }
        size_t slot = str_slot(t, e->string, kl);
        if (t->str_tab[slot] >= 0) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: token '%.40s' appears twice", path, e->string);
            goto done;
        }
        memcpy(p, e->string, kl + 1);
        t->id_str[id] = p;
        t->str_tab[slot] = id;
        p += kl + 1;
    }
done:
    cJSON_Delete(j);
    return rc;
}

/* bytes_to_unicode() of openai/CLIP and GPT-2: printable Latin-1 bytes map to themselves, the other
 * bytes, in increasing order, to U+0100, U+0101, ... */
static uint32_t byte_to_unicode(int b) {
    int n = 0; /* non-printable bytes before b */
    for (int i = 0; i <= b; i++) {
        int printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
        if (i == b) return printable ? (uint32_t)i : (uint32_t)(256 + n);
        n += !printable;
    }
    return 0xFFFD; /* b outside 0..255 */
}

static tdm_code find_byte_tokens(tdm_clip_tokenizer *t, const char *vocab_path, tdm_status *st) {
    for (int b = 0; b < 256; b++) {
        unsigned char u[4];
        char s[16];
        int n = tdm_utf8_encode(byte_to_unicode(b), u);
        memcpy(s, u, (size_t)n);
        memcpy(s + n, "</w>", 5);
        t->byte_id[b] = lookup_n(t, s, (size_t)n);
        t->byte_end_id[b] = lookup_n(t, s, (size_t)n + 4);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: byte token '%.*s%s' (byte 0x%02X) is missing", vocab_path, n, s,
                            t->byte_id[b] < 0 ? "" : "</w>", b);
    }
    t->bos = tdm_clip_token_id(t, "<|startoftext|>");
    t->eos = tdm_clip_token_id(t, "<|endoftext|>");
    if (t->bos < 0 || t->eos < 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: special token '%s' is missing", vocab_path,
                        t->bos < 0 ? "<|startoftext|>" : "<|endoftext|>");
    return TDM_OK;
}

static tdm_code load_merges(tdm_clip_tokenizer *t, const char *path, tdm_status *st) {
    char *text;
    size_t len;
    TDM_TRY(tdm_read_file(path, MAX_FILE_BYTES, &text, &len, st));
    tdm_code rc = TDM_OK;
    /* count lines to size the table */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (lines > CLIP_MAX_MERGES + 1) lines = CLIP_MAX_MERGES + 1;
    t->m_cap = pow2_at_least(lines * 2);
    t->m_key = malloc(t->m_cap * sizeof *t->m_key);
    t->m_rank = malloc(t->m_cap * sizeof *t->m_rank);
    t->m_res = malloc(t->m_cap * sizeof *t->m_res);
    if (!t->m_key || !t->m_rank || !t->m_res) {
        free(text);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    memset(t->m_key, 0xFF, t->m_cap * sizeof *t->m_key);
    /* CLIPTokenizer: merges.read().strip().split("\n")[1:48895]; each line split on whitespace */
    size_t a = 0, b = len;
    while (a < b && strchr(" \t\r\n\v\f", text[a])) a++;
    while (b > a && strchr(" \t\r\n\v\f", text[b - 1])) b--;
    if (b == a || text[a] != '#') {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:1: expected a '#version: 0.2' header line", path);
        goto done;
    }
    long line = 1;
    size_t pos = a;
    char *merged = malloc(2 * MAX_TOKEN_BYTES + 1);
    if (!merged) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    while (pos < b) {
        size_t eol = pos;
        while (eol < b && text[eol] != '\n') eol++;
        if (line > 1) {
            /* split [pos, eol) on whitespace */
            const char *parts[3];
            size_t plen[3];
            int np = 0;
            size_t i = pos;
            while (i < eol) {
                while (i < eol && strchr(" \t\r\v\f", text[i])) i++;
                if (i >= eol) break;
                size_t s0 = i;
                while (i < eol && !strchr(" \t\r\v\f", text[i])) i++;
                if (np < 3) {
                    parts[np] = text + s0;
                    plen[np] = i - s0;
                }
                np++;
            }
            if (np != 2) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%ld: expected two tokens separated by a space, found %d", path,
                              line, np);
                break;
            }
            int ida = lookup_n(t, parts[0], plen[0]), idb = lookup_n(t, parts[1], plen[1]);
            if (ida < 0 || idb < 0) {
                int k = ida < 0 ? 0 : 1;
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%ld: token '%.*s' is not in the vocabulary", path, line,
                              (int)(plen[k] > 40 ? 40 : plen[k]), parts[k]);
                break;
            }
            if (plen[0] + plen[1] > 2 * MAX_TOKEN_BYTES) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%ld: merge is %zu bytes long", path, line, plen[0] + plen[1]);
                break;
            }
            memcpy(merged, parts[0], plen[0]);
            memcpy(merged + plen[0], parts[1], plen[1]);
            int idm = lookup_n(t, merged, plen[0] + plen[1]);
            if (idm < 0) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%ld: merged token '%.*s%.*s' is not in the vocabulary", path,
                              line, (int)(plen[0] > 40 ? 40 : plen[0]), parts[0], (int)(plen[1] > 40 ? 40 : plen[1]),
                              parts[1]);
                break;
            }
            uint64_t key = ((uint64_t)(uint32_t)ida << 32) | (uint32_t)idb;
            size_t slot = merge_slot(t, key);
            t->m_key[slot] = key; /* a repeated pair keeps its last rank, as dict(zip(merges, range)) does */
            t->m_rank[slot] = (int32_t)(line - 2);
            t->m_res[slot] = idm;
            t->n_merges++;
            if (line - 1 >= CLIP_MAX_MERGES) break; /* CLIPTokenizer ignores the rest */
        }
        line++;
        pos = eol + 1;
    }
    free(merged);
done:
    free(text);
    return rc;
}

/* A special token value in tokenizer_config.json / special_tokens_map.json: a string or
 * {"content": string}. Returns 1 and copies it when present. */
static tdm_code token_field(const cJSON *j, const char *key, const char *path, char *buf, size_t bufsz, int *found,
                            tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *found = 0;
    if (!v || cJSON_IsNull(v)) return TDM_OK;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must be a string or an object with a 'content' string", path,
                        key);
    if (strlen(v->valuestring) >= bufsz)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' is longer than %zu bytes", path, key, bufsz - 1);
    strcpy(buf, v->valuestring);
    *found = 1;
    return TDM_OK;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static tdm_code load_configs(tdm_clip_tokenizer *t, const char *dir, tdm_status *st) {
    char path[4096];
    char pad[sizeof t->pad_str];
    int have_pad = 0, found;
    t->max_length = TDM_CLIP_CONTEXT;
    snprintf(pad, sizeof pad, "%s", "<|endoftext|>");
    const char *names[2] = {"tokenizer_config.json", "special_tokens_map.json"}; /* the second overrides */
    for (int k = 0; dir && k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        if (!file_exists(path)) continue;
        cJSON *j;
        TDM_TRY(tdm_json_load(path, &j, st));
        tdm_code rc = token_field(j, "pad_token", path, pad, sizeof pad, &found, st);
        if (!rc && found) have_pad = 1;
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(j, "model_max_length");
        if (!rc && ml && !cJSON_IsNull(ml)) {
            if (!cJSON_IsNumber(ml) || !(ml->valuedouble >= 1))
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: 'model_max_length' must be a positive number", path);
            else /* huge sentinels (int(1e30)) mean "no limit": keep CLIP's 77 */
                t->max_length = ml->valuedouble <= TDM_CLIP_CONTEXT ? (int)ml->valuedouble : TDM_CLIP_CONTEXT;
        }
        cJSON_Delete(j);
        TDM_TRY(rc);
    }
    t->pad = tdm_clip_token_id(t, pad);
    if (t->pad < 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: pad token '%.40s' is not in the vocabulary",
                        have_pad ? dir : "vocab.json", pad);
    snprintf(t->pad_str, sizeof t->pad_str, "%s", pad);
    return TDM_OK;
}

tdm_code tdm_clip_tokenizer_load_files(tdm_clip_tokenizer **out, const char *vocab_json, const char *merges_txt,
                                       const char *config_dir, tdm_status *st) {
    *out = NULL;
    tdm_clip_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    tdm_code rc = load_vocab(t, vocab_json, st);
    if (!rc) rc = find_byte_tokens(t, vocab_json, st);
    if (!rc) rc = load_merges(t, merges_txt, st);
    if (!rc) rc = load_configs(t, config_dir, st);
    if (rc) {
        tdm_clip_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return TDM_OK;
}

tdm_code tdm_clip_tokenizer_load(tdm_clip_tokenizer **out, const char *path, tdm_status *st) {
    *out = NULL;
    if (!path || !*path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tokenizer path is empty");
    struct stat sb;
    if (stat(path, &sb) != 0) return tdm_fail(st, TDM_ERR_IO, "%s: %s", path, strerror(errno));
    char dir[4096], vocab[4200], merges[4200];
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    } else {
        snprintf(vocab, sizeof vocab, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    if (!file_exists(vocab)) return tdm_fail(st, TDM_ERR_MISSING, "%s: vocab.json not found", vocab);
    if (!file_exists(merges)) return tdm_fail(st, TDM_ERR_MISSING, "%s: merges.txt not found next to vocab.json", merges);
    return tdm_clip_tokenizer_load_files(out, vocab, merges, dir, st);
}

/* ---- encoding ------------------------------------------------------------------------------------- */

/* Scratch of bpe_word for a word of up to `cap` bytes. */
typedef struct bpe_scratch {
    int32_t *id;   /* [cap] symbol id at each start position */
    int32_t *next; /* [cap] next live position, -1 at the end */
    int32_t *prev; /* [cap] previous live position, -1 at the start */
    uint8_t *dead; /* [cap] 1 once merged into its left neighbour */
    struct bpe_pair {
        int32_t rank, pos, left, right, merged;
    } *heap, *pending; /* [3 * cap] candidate merges; pending: ranks below the batch being applied */
    size_t cap;
} bpe_scratch;

static void scratch_free(bpe_scratch *s) {
    free(s->id);
    free(s->next);
    free(s->prev);
    free(s->dead);
    free(s->heap);
    free(s->pending);
    memset(s, 0, sizeof *s);
}

static int scratch_reserve(bpe_scratch *s, size_t m) {
    if (m <= s->cap) return 1;
    scratch_free(s);
    s->id = malloc(m * sizeof *s->id);
    s->next = malloc(m * sizeof *s->next);
    s->prev = malloc(m * sizeof *s->prev);
    s->dead = malloc(m);
    s->heap = malloc(3 * m * sizeof *s->heap);
    s->pending = malloc(3 * m * sizeof *s->pending);
    if (!s->id || !s->next || !s->prev || !s->dead || !s->heap || !s->pending) {
        scratch_free(s);
        return 0;
    }
    s->cap = m;
    return 1;
}

static int pair_less(const struct bpe_pair *a, const struct bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_pair *h, int *n, struct bpe_pair e) {
    int i = (*n)++;
    while (i > 0 && pair_less(&e, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static struct bpe_pair heap_pop(struct bpe_pair *h, int *n) {
    struct bpe_pair top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c])) c++;
        if (!pair_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* BPE of one pre-token given as UTF-8 bytes (CLIPTokenizer.bpe): start from the byte tokens (the last
 * one with '</w>'); repeatedly take the adjacent pair with the lowest merge rank and merge all of its
 * non-overlapping occurrences left to right; stop when no adjacent pair is a merge.
 * Done in O(m log m) with a heap of candidate pairs keyed (rank, position): all candidates of the
 * lowest rank are applied as one batch in position order; pairs created meanwhile with a lower rank
 * (possible only with an unusual merges.txt) wait until the batch ends, as in the reference. */
static void bpe_word(const tdm_clip_tokenizer *t, const unsigned char *bytes, int m, bpe_scratch *s, tdm_i32buf *out) {
    int nh = 0, np = 0;
    for (int k = 0; k < m; k++) {
        s->id[k] = k == m - 1 ? t->byte_end_id[bytes[k]] : t->byte_id[bytes[k]];
        s->next[k] = k + 1 < m ? k + 1 : -1;
        s->prev[k] = k - 1;
        s->dead[k] = 0;
    }
    for (int k = 0; k + 1 < m; k++) {
        int32_t res, r = merge_find(t, s->id[k], s->id[k + 1], &res);
        if (r >= 0) heap_push(s->heap, &nh, (struct bpe_pair){r, k, s->id[k], s->id[k + 1], res});
    }
    while (nh > 0) {
        int32_t batch = s->heap[0].rank;
        while (nh > 0 && s->heap[0].rank == batch) {
            struct bpe_pair e = heap_pop(s->heap, &nh);
            int L = e.pos, R = s->next[L];
            if (s->dead[L] || R < 0 || s->id[L] != e.left || s->id[R] != e.right) continue; /* stale */
            s->id[L] = e.merged;
            s->dead[R] = 1;
            s->next[L] = s->next[R];
            if (s->next[R] >= 0) s->prev[s->next[R]] = L;
            int nb[2][2] = {{s->prev[L], L}, {L, s->next[L]}}; /* the two pairs touching the new symbol */
            for (int q = 0; q < 2; q++) {
                if (nb[q][0] < 0 || nb[q][1] < 0) continue;
                int32_t res, a = s->id[nb[q][0]], b = s->id[nb[q][1]], r = merge_find(t, a, b, &res);
                if (r < 0) continue;
                struct bpe_pair p = {r, nb[q][0], a, b, res};
                if (r > batch) heap_push(s->heap, &nh, p);
                else s->pending[np++] = p;
            }
        }
        for (int q = 0; q < np; q++) heap_push(s->heap, &nh, s->pending[q]);
        np = 0;
    }
    for (int k = 0; k >= 0; k = s->next[k]) tdm_i32buf_push(out, s->id[k]);
}

/* Case-insensitive comparison of the regex module (simple case folding) for the ASCII literals of the
 * pattern: 'ſ' (U+017F) folds to 's'. */
static uint32_t fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';
    return c;
}

static int match_lit(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || fold(s[i + k]) != (uint32_t)(unsigned char)lit[k]) return 0;
    return (int)k;
}

/* Pre-tokenises cleaned text with the CLIP pattern (case-insensitive)
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * and BPE-encodes each piece. */
static tdm_code encode_clean(const tdm_clip_tokenizer *t, const uint32_t *s, size_t n, tdm_i32buf *out,
                             tdm_status *st) {
    unsigned char *bytes = NULL;
    bpe_scratch scratch = {0};
    size_t cap = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i];
        size_t j = i + 1;
        int special = -1;
        if (c == '<') {
            if (match_lit(s, n, i, "<|startoftext|>")) {
                special = t->bos;
                j = i + 15;
            } else if (match_lit(s, n, i, "<|endoftext|>")) {
                special = t->eos;
                j = i + 13;
            }
        }
        if (special >= 0) {
            tdm_i32buf_push(out, special);
            i = j;
            continue;
        }
        unsigned p = tdm_uc_props(c);
        if (c == '\'' && i + 1 < n) {
            int k = 0;
            static const char *const contr[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
            for (int q = 0; q < 7 && !k; q++) k = match_lit(s, n, i, contr[q]);
            if (k) j = i + (size_t)k;
            else goto other;
        } else if (p & TDM_UC_LETTER) {
            while (j < n && tdm_uc_is_letter(s[j])) j++;
        } else if (p & TDM_UC_NUMBER) {
            /* one digit per token */
        } else if (tdm_uc_is_space(c)) {
            i++;
            continue;
        } else {
        other:
            while (j < n && !tdm_uc_is_space(s[j]) && !(tdm_uc_props(s[j]) & (TDM_UC_LETTER | TDM_UC_NUMBER))) j++;
        }
        /* UTF-8 bytes of s[i..j) */
        size_t need = (j - i) * 4;
        if (need > cap) {
            unsigned char *nb = realloc(bytes, need);
            if (nb) bytes = nb;
            if (!nb || need > INT_MAX / 3 || !scratch_reserve(&scratch, need)) {
                free(bytes);
                scratch_free(&scratch);
                return tdm_fail(st, TDM_ERR_NOMEM, "tokenizer: out of memory for a %zu-character word", j - i);
            }
            cap = need;
        }
        int m = 0;
        for (size_t k = i; k < j; k++) m += tdm_utf8_encode(s[k], bytes + m);
        bpe_word(t, bytes, m, &scratch, out);
        i = j;
    }
    free(bytes);
    scratch_free(&scratch);
    return out->oom ? tdm_fail(st, TDM_ERR_NOMEM, "tokenizer: out of memory") : TDM_OK;
}

static tdm_code encode_chunk(const tdm_clip_tokenizer *t, const uint32_t *s, size_t n, int mode, tdm_i32buf *out,
                             tdm_status *st) {
    tdm_u32buf clean = {0};
    tdm_code rc = tdm_clip_clean_cps(s, n, mode, &clean, st);
    if (!rc) rc = encode_clean(t, clean.v, clean.n, out, st);
    tdm_u32buf_free(&clean);
    return rc;
}

tdm_code tdm_clip_tokenize_n(const tdm_clip_tokenizer *t, const char *text, size_t len,
                             const tdm_clip_prompt_opts *opts, int32_t **ids, int *n, tdm_status *st) {
    *ids = NULL;
    *n = 0;
    if (!t || !text) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tokenize: tokenizer or text is NULL");
    if (len > TDM_CLIP_MAX_TEXT)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "prompt is %zu bytes long, over the limit of %d", len,
                        TDM_CLIP_MAX_TEXT);
    int mode = opts ? opts->clean_mode : TDM_CLIP_CLEAN_HF;
    if (mode != TDM_CLIP_CLEAN_HF && mode != TDM_CLIP_CLEAN_OPENAI)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tokenize: unknown clean mode %d", mode);
    tdm_u32buf cps = {0};
    tdm_utf8_decode(text, len, &cps);
    if (cps.oom) {
        tdm_u32buf_free(&cps);
        return tdm_fail(st, TDM_ERR_NOMEM, "tokenize: out of memory");
    }
    tdm_i32buf out = {0};
    tdm_code rc = TDM_OK;
    if (mode == TDM_CLIP_CLEAN_OPENAI) {
        rc = encode_chunk(t, cps.v, cps.n, mode, &out, st);
    } else {
        /* transformers splits the raw text on its no-split special tokens first (exact match) and
         * cleans each piece separately. */
        const char *split = opts && opts->split_token ? opts->split_token : "";
        const char *lits[3] = {"<|startoftext|>", "<|endoftext|>", split};
        int lit_ids[3] = {t->bos, t->eos, *split ? tdm_clip_token_id(t, split) : -1};
        if (*split && (lit_ids[2] < 0 || strlen(split) >= sizeof t->pad_str)) {
            tdm_u32buf_free(&cps);
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "tokenize: split token '%.40s' is not a vocabulary token", split);
        }
        uint32_t lit_cp[3][sizeof t->pad_str]; /* the literals as code points */
        size_t lit_n[3];
        for (int k = 0; k < 3; k++) {
            tdm_u32buf lit = {0};
            tdm_utf8_decode(lits[k], strlen(lits[k]), &lit);
            lit_n[k] = lit.oom ? 0 : lit.n;
            if (lit_n[k]) memcpy(lit_cp[k], lit.v, lit.n * sizeof *lit.v);
            tdm_u32buf_free(&lit);
        }
        size_t start = 0, i = 0;
        while (!rc) {
            int hit = -1;
            size_t hit_len = 0;
            for (int k = 0; i < cps.n && k < 3; k++) { /* longest literal starting at i */
                size_t q;
                if (lit_n[k] <= hit_len) continue;
                for (q = 0; q < lit_n[k] && i + q < cps.n && cps.v[i + q] == lit_cp[k][q]; q++) {
                }
                if (q == lit_n[k]) {
                    hit = k;
                    hit_len = q;
                }
            }
            if (hit < 0 && i < cps.n) {
                i++;
                continue;
            }
            if (i > start) rc = encode_chunk(t, cps.v + start, i - start, mode, &out, st);
            if (hit < 0) break; /* end of text */
            tdm_i32buf_push(&out, lit_ids[hit]);
            i += hit_len;
            start = i;
        }
    }
    tdm_u32buf_free(&cps);
    if (!rc && out.oom) rc = tdm_fail(st, TDM_ERR_NOMEM, "tokenize: out of memory");
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n = out.n;
    return TDM_OK;
}

tdm_code tdm_clip_tokenize_ex(const tdm_clip_tokenizer *t, const char *text, const tdm_clip_prompt_opts *opts,
                              int32_t **ids, int *n, tdm_status *st) {
    return tdm_clip_tokenize_n(t, text, text ? strlen(text) : 0, opts, ids, n, st);
}

tdm_code tdm_clip_tokenize(const tdm_clip_tokenizer *t, const char *text, int32_t **ids, int *n, tdm_status *st) {
    return tdm_clip_tokenize_ex(t, text, NULL, ids, n, st);
}
