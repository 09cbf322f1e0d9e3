/* BERT WordPiece tokenizer: see bert_tokenizer.h for the pipeline and its transformers source. */
#include "models/bert_tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/bert_tokenizer_internal.h"
#include "models/unicode_text.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_VOCAB (1 << 22)
#define MAX_ADDED 1000
#define MAX_TOKEN_BYTES 1024 /* longest vocab line */

typedef struct special {
    uint32_t cps[64]; /* the token as code points */
    int n, id;
} special;

struct tdm_bert_tokenizer {
    char **strs;      /* [size] token strings (into pool, or malloc'ed for added tokens) */
    int n_vocab, size; /* base vocab lines; with added tokens */
    int cap_strs;
    char *pool;        /* vocab.txt contents, lines NUL-terminated */
    int32_t *table;    /* open-addressing hash: id or -1, [table_cap] */
    size_t table_cap;
    special specials[5 + MAX_ADDED]; /* never-split tokens */
    int n_specials;
    int cls, sep, pad, unk;
};

/* ---- vocabulary ------------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Id of the base-vocab token s[n], -1 when absent. */
static int vocab_find(const tdm_bert_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->table_cap - 1;
    for (size_t h = hash_bytes(s, n) & mask;; h = (h + 1) & mask) {
        int32_t id = t->table[h];
        if (id < 0) return -1;
        const char *e = t->strs[id];
        if (strncmp(e, s, n) == 0 && e[n] == '\0') return id;
    }
}

static void vocab_insert(tdm_bert_tokenizer *t, int id) {
    const char *s = t->strs[id];
    size_t n = strlen(s), mask = t->table_cap - 1;
    for (size_t h = hash_bytes(s, n) & mask;; h = (h + 1) & mask) {
        int32_t cur = t->table[h];
        if (cur < 0) {
            t->table[h] = id;
            return;
        }
        if (strcmp(t->strs[cur], s) == 0) { /* duplicate line: the later index wins (dict assignment) */
            t->table[h] = id;
            return;
        }
    }
}

static int add_special_cps(tdm_bert_tokenizer *t, const char *s, int id) {
    size_t n = strlen(s);
    if (n == 0 || n > COUNT(t->specials[0].cps) || t->n_specials >= (int)COUNT(t->specials)) return 0;
    tdm_u32buf b = {0};
    tdm_utf8_decode(s, n, &b);
    if (b.oom || b.n > COUNT(t->specials[0].cps)) {
        tdm_u32buf_free(&b);
        return 0;
    }
    special *sp = &t->specials[t->n_specials++];
    memcpy(sp->cps, b.v, b.n * sizeof *b.v);
    sp->n = (int)b.n;
    sp->id = id;
    tdm_u32buf_free(&b);
    return 1;
}

tdm_code tdm_bert_tokenizer_load(tdm_bert_tokenizer **out, const char *path, tdm_status *st) {
    *out = NULL;
    char *data;
    size_t len;
    TDM_TRY(tdm_read_file(path, (size_t)64 << 20, &data, &len, st));
    tdm_bert_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(data);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    t->pool = data;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (len && data[len - 1] != '\n') lines++;
    tdm_code rc = TDM_OK;
    if (lines == 0 || lines > MAX_VOCAB) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: %zu lines (expected 1..%d tokens, one a line)", path, lines, MAX_VOCAB);
        goto fail;
    }
    t->cap_strs = (int)lines + 16;
    t->strs = calloc((size_t)t->cap_strs, sizeof *t->strs);
    t->table_cap = 1;
    while (t->table_cap < lines * 2 + 16) t->table_cap *= 2;
    t->table = malloc(t->table_cap * sizeof *t->table);
    if (!t->strs || !t->table) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    memset(t->table, 0xFF, t->table_cap * sizeof *t->table);
    size_t pos = 0;
    for (size_t k = 0; k < lines; k++) {
        size_t e = pos;
        while (e < len && data[e] != '\n') e++;
        if (e - pos > MAX_TOKEN_BYTES || memchr(data + pos, '\0', e - pos)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: line %zu: token longer than %d bytes or holding a NUL", path,
                          k + 1, MAX_TOKEN_BYTES);
            goto fail;
        }
        data[e] = '\0'; /* load_vocab: token.rstrip("\n") */
        t->strs[k] = data + pos;
        vocab_insert(t, (int)k);
        pos = e + 1;
    }
    t->n_vocab = t->size = (int)lines;
    /* the five standard specials, in the order all_special_tokens lists them */
    const char *names[5] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    int *ids[5] = {&t->unk, &t->sep, &t->pad, &t->cls, NULL};
    for (int i = 0; i < 5; i++) {
        int id = vocab_find(t, names[i], strlen(names[i]));
        if (id < 0 && ids[i]) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: special token %s is not in the vocabulary", path, names[i]);
            goto fail;
        }
        if (ids[i]) *ids[i] = id;
        if (id >= 0) add_special_cps(t, names[i], id);
    }
    *out = t;
    return TDM_OK;
fail:
    tdm_bert_tokenizer_free(t);
    return rc;
}

void tdm_bert_tokenizer_free(tdm_bert_tokenizer *t) {
    if (!t) return;
    for (int i = t->n_vocab; i < t->size; i++) free(t->strs[i]);
    free(t->strs);
    free(t->table);
    free(t->pool);
    free(t);
}

tdm_code tdm_bert_add_special_token(tdm_bert_tokenizer *t, const char *token, int *id, tdm_status *st) {
    size_t n = strlen(token);
    if (n == 0 || n > 64) return tdm_fail(st, TDM_ERR_INVALID_ARG, "added token '%.64s': 1..64 bytes", token);
    int cur = tdm_bert_token_id(t, token);
    if (cur >= 0) { /* already a token: it becomes never-split, keeping its id */
        int known = 0;
        for (int i = 0; i < t->n_specials; i++) known |= t->specials[i].id == cur;
        if (!known && !add_special_cps(t, token, cur))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "added token '%s': too many special tokens", token);
        if (id) *id = cur;
        return TDM_OK;
    }
    if (t->size - t->n_vocab >= MAX_ADDED)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "added token '%s': more than %d added tokens", token, MAX_ADDED);
    if (t->size >= t->cap_strs) {
        char **s = realloc(t->strs, (size_t)(t->cap_strs * 2) * sizeof *s);
        if (!s) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        t->strs = s;
        t->cap_strs *= 2;
    }
    char *copy = malloc(n + 1);
    if (!copy) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    memcpy(copy, token, n + 1);
    if (!add_special_cps(t, token, t->size)) {
        free(copy);
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "added token '%s': too many special tokens", token);
    }
    t->strs[t->size] = copy;
    if (id) *id = t->size;
    t->size++;
    return TDM_OK;
}

tdm_code tdm_bert_tokenizer_load_imagereward(tdm_bert_tokenizer **out, const char *vocab_txt, tdm_status *st) {
    TDM_TRY(tdm_bert_tokenizer_load(out, vocab_txt, st));
    /* BLIP init_tokenizer: add_special_tokens({'bos_token': '[DEC]'}), then
     * add_special_tokens({'additional_special_tokens': ['[ENC]']}) */
    tdm_code rc = tdm_bert_add_special_token(*out, "[DEC]", NULL, st);
    if (!rc) rc = tdm_bert_add_special_token(*out, "[ENC]", NULL, st);
    if (rc) {
        tdm_bert_tokenizer_free(*out);
        *out = NULL;
    }
    return rc;
}

int tdm_bert_size(const tdm_bert_tokenizer *t) { return t->size; }
int tdm_bert_cls_id(const tdm_bert_tokenizer *t) { return t->cls; }
int tdm_bert_sep_id(const tdm_bert_tokenizer *t) { return t->sep; }
int tdm_bert_pad_id(const tdm_bert_tokenizer *t) { return t->pad; }
int tdm_bert_unk_id(const tdm_bert_tokenizer *t) { return t->unk; }

int tdm_bert_token_id(const tdm_bert_tokenizer *t, const char *token) {
    for (int i = t->n_vocab; i < t->size; i++) /* added tokens first (added_tokens_encoder) */
        if (strcmp(t->strs[i], token) == 0) return i;
    return vocab_find(t, token, strlen(token));
}

const char *tdm_bert_token_str(const tdm_bert_tokenizer *t, int id) {
    return id >= 0 && id < t->size ? t->strs[id] : NULL;
}

/* ---- Unicode classes ---------------------------------------------------------------------------- */

static int uc_class(uint32_t cp) {
    size_t lo = 0, hi = COUNT(tdm_bert_uc_ranges);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tdm_bert_uc_ranges[mid].hi < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < COUNT(tdm_bert_uc_ranges) && tdm_bert_uc_ranges[lo].lo <= cp) return tdm_bert_uc_ranges[lo].v;
    return TDM_BERT_UC_OTHER;
}

/* tokenization_bert.py _is_whitespace / _is_control / _is_punctuation / _is_chinese_char */
static int is_bert_space(uint32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || uc_class(c) == TDM_BERT_UC_ZS; }
static int is_bert_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    return uc_class(c) == TDM_BERT_UC_CONTROL;
}
static int is_bert_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return 1;
    return uc_class(c) == TDM_BERT_UC_PUNCT;
}
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* ---- NFD + accent strip ------------------------------------------------------------------------- */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7 };
enum { HANGUL_NCOUNT = 21 * 28, HANGUL_TCOUNT = 28, HANGUL_SCOUNT = 19 * 21 * 28 };

static void nfd_push(uint32_t cp, tdm_u32buf *out) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t si = cp - HANGUL_S;
        tdm_u32buf_push(out, HANGUL_L + si / HANGUL_NCOUNT);
        tdm_u32buf_push(out, HANGUL_V + (si % HANGUL_NCOUNT) / HANGUL_TCOUNT);
        if (si % HANGUL_TCOUNT) tdm_u32buf_push(out, HANGUL_T + si % HANGUL_TCOUNT);
        return;
    }
    size_t lo = 0, hi = COUNT(tdm_uc_decomps);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tdm_uc_decomps[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < COUNT(tdm_uc_decomps) && tdm_uc_decomps[lo].cp == cp) /* full canonical decomposition */
        tdm_u32buf_append(out, tdm_uc_decomp_data + tdm_uc_decomps[lo].off, tdm_uc_decomps[lo].len);
    else
        tdm_u32buf_push(out, cp);
}

/* _run_strip_accents: unicodedata.normalize("NFD", s) without the Mn characters, appended to out. */
static void strip_accents(const uint32_t *s, size_t n, tdm_u32buf *out) {
    size_t base = out->n;
    for (size_t i = 0; i < n; i++) nfd_push(s[i], out);
    if (out->oom) return;
    /* canonical ordering (stable insertion sort of each run of non-starters by ccc) */
    for (size_t i = base + 1; i < out->n; i++) {
        int cc = tdm_uc_ccc(out->v[i]);
        if (cc == 0) continue;
        uint32_t c = out->v[i];
        size_t j = i;
        while (j > base) {
            int pc = tdm_uc_ccc(out->v[j - 1]);
            if (pc == 0 || pc <= cc) break;
            out->v[j] = out->v[j - 1];
            j--;
        }
        out->v[j] = c;
    }
    size_t k = base;
    for (size_t i = base; i < out->n; i++)
        if (uc_class(out->v[i]) != TDM_BERT_UC_MN) out->v[k++] = out->v[i];
    out->n = k;
}

/* ---- tokenization ------------------------------------------------------------------------------- */

/* Special token starting at s[i] (exact match), index into t->specials or -1. */
static int special_at(const tdm_bert_tokenizer *t, const uint32_t *s, size_t n, size_t i) {
    for (int k = 0; k < t->n_specials; k++) {
        const special *sp = &t->specials[k];
        if ((size_t)sp->n <= n - i && memcmp(s + i, sp->cps, (size_t)sp->n * sizeof *s) == 0) return k;
    }
    return -1;
}

static int is_special_word(const tdm_bert_tokenizer *t, const uint32_t *w, size_t n) {
    for (int k = 0; k < t->n_specials; k++)
        if ((size_t)t->specials[k].n == n && memcmp(w, t->specials[k].cps, n * sizeof *w) == 0) return 1;
    return 0;
}

/* WordpieceTokenizer.tokenize of one word (no whitespace in it). */
static void wordpiece(const tdm_bert_tokenizer *t, const uint32_t *w, size_t n, tdm_i32buf *out) {
    if (n == 0) return;
    if (n > TDM_BERT_MAX_WORD_CHARS) {
        tdm_i32buf_push(out, t->unk);
        return;
    }
    char bytes[TDM_BERT_MAX_WORD_CHARS * 4];     /* UTF-8 of the word */
    char piece[TDM_BERT_MAX_WORD_CHARS * 4 + 2]; /* "##" + a continuation piece */
    size_t off[TDM_BERT_MAX_WORD_CHARS + 1];     /* byte offset of each code point */
    off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int k = tdm_utf8_encode(w[i], (unsigned char *)bytes + off[i]);
        off[i + 1] = off[i] + (size_t)k;
    }
    piece[0] = piece[1] = '#';
    int first = out->n;
    size_t start = 0;
    while (start < n) {
        int found = -1;
        size_t end = n;
        if (start > 0) memcpy(piece + 2, bytes + off[start], off[n] - off[start]);
        for (; end > start; end--) {
            found = start > 0 ? vocab_find(t, piece, 2 + off[end] - off[start]) /* continuation: "##" */
                              : vocab_find(t, bytes, off[end]);
            if (found >= 0) break;
        }
        if (found < 0) {
            out->n = first; /* the whole word becomes [UNK] */
            tdm_i32buf_push(out, t->unk);
            return;
        }
        tdm_i32buf_push(out, found);
        start = end;
    }
}

/* Emits a split piece: split again on Python whitespace (whitespace_tokenize of the joined pieces). */
static void emit_piece(const tdm_bert_tokenizer *t, const uint32_t *p, size_t n, tdm_i32buf *out) {
    size_t i = 0;
    while (i < n) {
        while (i < n && tdm_uc_is_space(p[i])) i++;
        size_t j = i;
        while (j < n && !tdm_uc_is_space(p[j])) j++;
        if (j > i) wordpiece(t, p + i, j - i, out);
        i = j;
    }
}

/* BasicTokenizer.tokenize (never_split = the special tokens) followed by WordPiece, for text s[n]
 * already lowercased outside special tokens. */
static void basic_tokenize(const tdm_bert_tokenizer *t, const uint32_t *s, size_t n, tdm_i32buf *out) {
    tdm_u32buf clean = {0}, norm = {0}, low = {0}, acc = {0};
    for (size_t i = 0; i < n; i++) { /* _clean_text + _tokenize_chinese_chars */
        uint32_t c = s[i];
        if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
        if (is_bert_space(c)) {
            tdm_u32buf_push(&clean, ' ');
        } else if (is_cjk(c)) {
            tdm_u32buf_push(&clean, ' ');
            tdm_u32buf_push(&clean, c);
            tdm_u32buf_push(&clean, ' ');
        } else {
            tdm_u32buf_push(&clean, c);
        }
    }
    if (!clean.oom) tdm_uc_nfc(clean.v, clean.n, &norm);
    size_t i = 0;
    while (!norm.oom && !clean.oom && i < norm.n) { /* whitespace_tokenize */
        while (i < norm.n && tdm_uc_is_space(norm.v[i])) i++;
        size_t j = i;
        while (j < norm.n && !tdm_uc_is_space(norm.v[j])) j++;
        if (j == i) break;
        const uint32_t *w = norm.v + i;
        size_t wn = j - i;
        i = j;
        if (is_special_word(t, w, wn)) { /* never_split: kept whole, then WordPiece (finds it in vocab) */
            wordpiece(t, w, wn, out);
            continue;
        }
        low.n = acc.n = 0;
        tdm_uc_lower(w, wn, &low);
        strip_accents(low.v, low.n, &acc);
        if (low.oom || acc.oom) {
            out->oom = 1;
            break;
        }
        size_t p = 0; /* _run_split_on_punc */
        for (size_t k = 0; k < acc.n; k++) {
            if (!is_bert_punct(acc.v[k])) continue;
            emit_piece(t, acc.v + p, k - p, out);
            emit_piece(t, acc.v + k, 1, out);
            p = k + 1;
        }
        emit_piece(t, acc.v + p, acc.n - p, out);
    }
    if (clean.oom || norm.oom) out->oom = 1;
    tdm_u32buf_free(&clean);
    tdm_u32buf_free(&norm);
    tdm_u32buf_free(&low);
    tdm_u32buf_free(&acc);
}

tdm_code tdm_bert_tokenize(const tdm_bert_tokenizer *t, const char *text, size_t len, tdm_bert_split_mode mode,
                           int32_t **ids, int *n, tdm_status *st) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return tdm_fail(st, TDM_ERR_INVALID_ARG, "bert tokenizer: NULL text");
    if (len > TDM_BERT_MAX_TEXT)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bert tokenizer: text of %zu bytes (at most %d)", len, TDM_BERT_MAX_TEXT);
    if (mode != TDM_BERT_SPLIT_SPECIAL && mode != TDM_BERT_SPLIT_WORDS)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bert tokenizer: unknown split mode %d", (int)mode);
    tdm_u32buf cps = {0}, low = {0};
    tdm_utf8_decode(text, len, &cps);
    /* PreTrainedTokenizer.tokenize: re.sub lowercases every character outside special tokens on its own;
     * special positions are recorded as (start, special index) pairs in `marks`. */
    tdm_i32buf marks = {0}, out = {0};
    for (size_t i = 0; !cps.oom && i < cps.n;) {
        int k = special_at(t, cps.v, cps.n, i);
        if (k >= 0) {
            tdm_i32buf_push(&marks, (int32_t)low.n);
            tdm_i32buf_push(&marks, k);
            tdm_u32buf_append(&low, t->specials[k].cps, (size_t)t->specials[k].n);
            i += (size_t)t->specials[k].n;
        } else {
            tdm_uc_lower(cps.v + i, 1, &low);
            i++;
        }
    }
    if (mode == TDM_BERT_SPLIT_WORDS) {
        basic_tokenize(t, low.v, low.n, &out);
    } else { /* tokens_trie.split: specials are their own tokens; text between them is tokenized */
        size_t p = 0;
        for (int m = 0; m + 1 < marks.n; m += 2) {
            size_t at = (size_t)marks.v[m];
            const special *sp = &t->specials[marks.v[m + 1]];
            basic_tokenize(t, low.v + p, at - p, &out);
            tdm_i32buf_push(&out, sp->id);
            p = at + (size_t)sp->n;
        }
        basic_tokenize(t, low.v + p, low.n - p, &out);
    }
    tdm_code rc = TDM_OK;
    if (cps.oom || low.oom || marks.oom || out.oom) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "bert tokenizer: out of memory");
        free(out.v);
    } else {
        *ids = out.v;
        *n = out.n;
    }
    free(marks.v);
    tdm_u32buf_free(&cps);
    tdm_u32buf_free(&low);
    return rc;
}

tdm_code tdm_bert_encode(const tdm_bert_tokenizer *t, const char *text, size_t len, int max_len, int32_t *ids,
                         int32_t *mask, int *n_real, int *truncated, tdm_status *st) {
    if (max_len < 2 || max_len > 1 << 20)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bert tokenizer: max_length %d (need 2..%d)", max_len, 1 << 20);
    int32_t *tok;
    int n;
    TDM_TRY(tdm_bert_tokenize(t, text, len, TDM_BERT_SPLIT_SPECIAL, &tok, &n, st));
    int keep = n < max_len - 2 ? n : max_len - 2; /* truncation 'longest_first' drops from the end */
    ids[0] = t->cls;
    for (int i = 0; i < keep; i++) ids[1 + i] = tok[i];
    ids[1 + keep] = t->sep;
    for (int i = keep + 2; i < max_len; i++) ids[i] = t->pad;
    if (mask)
        for (int i = 0; i < max_len; i++) mask[i] = i < keep + 2;
    if (n_real) *n_real = keep + 2;
    if (truncated) *truncated = keep < n;
    free(tok);
    return TDM_OK;
}
