/* Prompt -> 77-token windows, A1111 emphasis parsing and the emphasis rescale.
 * Emphasis follows AUTOMATIC1111 modules/prompt_parser.py parse_prompt_attention and the chunking of
 * modules/sd_hijack_clip.py (tokenize_line); differences are listed in docs/TOKENIZER.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_tokenizer_internal.h"

#define ROUND_MULT 1.1
#define SQUARE_MULT (1.0 / 1.1)
#define MAX_DEPTH 4096 /* open brackets tracked; deeper ones are ignored (treated as text) */

void tdm_clip_encode_opts_init(tdm_clip_encode_opts *o) {
    memset(o, 0, sizeof *o);
    o->text.clean_mode = TDM_CLIP_CLEAN_HF;
    o->pad_id = -1;
    o->max_windows = 64;
}

void tdm_clip_windows_free(tdm_clip_windows *w) {
    if (!w) return;
    free(w->ids);
    free(w->weights);
    memset(w, 0, sizeof *w);
}

/* ---- emphasis parser ----------------------------------------------------------------------------- */

typedef struct frag_list {
    tdm_clip_fragment *v;
    double *w; /* weights in double while parsing (A1111 multiplies Python floats) */
    int n, cap;
    int oom;
} frag_list;

static void frag_push(frag_list *l, const char *s, size_t len, double w, int is_break) {
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        tdm_clip_fragment *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (v) l->v = v;
        double *ww = v ? realloc(l->w, (size_t)cap * sizeof *ww) : NULL;
        if (ww) l->w = ww;
        if (!v || !ww) {
            l->oom = 1;
            return;
        }
        l->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t) {
        l->oom = 1;
        return;
    }
    memcpy(t, s, len);
    t[len] = '\0';
    l->v[l->n].text = t;
    l->v[l->n].len = len;
    l->v[l->n].is_break = is_break;
    l->w[l->n] = w;
    l->n++;
}

void tdm_clip_fragments_free(tdm_clip_fragment *frags, int n) {
    if (!frags) return;
    for (int i = 0; i < n; i++) free(frags[i].text);
    free(frags);
}

static int is_space_ascii(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Python \w at byte position p of s (UTF-8): letters, numbers, '_'. */
static int word_char_at(const char *s, size_t len, size_t p) {
    if (p >= len) return 0;
    unsigned char c = (unsigned char)s[p];
    if (c < 0x80) return c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
    tdm_u32buf b = {0};
    size_t e = p + 1;
    while (e < len && e < p + 4 && ((unsigned char)s[e] & 0xC0) == 0x80) e++;
    tdm_utf8_decode(s + p, e - p, &b);
    int r = !b.oom && b.n && (tdm_uc_props(b.v[0]) & (TDM_UC_LETTER | TDM_UC_NUMBER));
    tdm_u32buf_free(&b);
    return r;
}

/* Is position p the start of a UTF-8 character preceded by a word character? */
static int word_char_before(const char *s, size_t p) {
    if (p == 0) return 0;
    size_t q = p - 1;
    while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
    return word_char_at(s, p, q);
}

/* Plain text run: split on re `\s*\bBREAK\b\s*` (ASCII whitespace), pushing BREAK markers between. */
static void push_text(frag_list *l, const char *s, size_t len) {
    size_t start = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) != 0 || word_char_before(s, i) || word_char_at(s, len, i + 5)) continue;
        size_t a = i, b = i + 5;
        while (a > start && is_space_ascii(s[a - 1])) a--;
        while (b < len && is_space_ascii(s[b])) b++;
        frag_push(l, s + start, a - start, 1.0, 0);
        frag_push(l, "BREAK", 5, 1.0, 1);
        start = b;
        i = b - 1;
    }
    frag_push(l, s + start, len - start, 1.0, 0);
}

static void multiply_range(frag_list *l, int from, double m) {
    for (int p = from; p < l->n; p++) l->w[p] *= m;
}

/* `:\s*([+-]?[.\d]+)\s*\)` at s[i] == ':'; returns the match length (0: none) and the weight. A number
 * Python's float() would reject ("1.2.3") gives no match here (A1111 raises). */
static size_t weight_at(const char *s, size_t len, size_t i, double *w) {
    size_t j = i + 1;
    while (j < len && is_space_ascii(s[j])) j++;
    size_t n0 = j;
    if (j < len && (s[j] == '+' || s[j] == '-')) j++;
    size_t d0 = j;
    int dots = 0, digits = 0;
    while (j < len && (s[j] == '.' || (s[j] >= '0' && s[j] <= '9'))) {
        dots += s[j] == '.';
        digits += s[j] != '.';
        j++;
    }
    if (j == d0) return 0;
    size_t n1 = j;
    while (j < len && is_space_ascii(s[j])) j++;
    if (j >= len || s[j] != ')') return 0;
    if (dots > 1 || digits == 0) return 0;
    char num[64];
    if (n1 - n0 >= sizeof num) return 0;
    memcpy(num, s + n0, n1 - n0);
    num[n1 - n0] = '\0';
    *w = strtod(num, NULL);
    return j + 1 - i;
}

/* One of the characters the A1111 attention regex treats specially (never NUL). */
static int is_syntax(char c) { return c && strchr("\\()[]:", c) != NULL; }

tdm_code tdm_clip_parse_emphasis(const char *text, tdm_clip_fragment **frags, int *n, tdm_status *st) {
    return tdm_clip_parse_emphasis_n(text, text ? strlen(text) : 0, frags, n, st);
}

tdm_code tdm_clip_parse_emphasis_n(const char *text, size_t len, tdm_clip_fragment **frags, int *n, tdm_status *st) {
    *frags = NULL;
    *n = 0;
    if (!text) return tdm_fail(st, TDM_ERR_INVALID_ARG, "emphasis: text is NULL");
    if (len > TDM_CLIP_MAX_TEXT)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "prompt is %zu bytes long, over the limit of %d", len,
                        TDM_CLIP_MAX_TEXT);
    frag_list l = {0};
    int *round = malloc(MAX_DEPTH * sizeof *round), *square = malloc(MAX_DEPTH * sizeof *square);
    int n_round = 0, n_square = 0;
    if (!round || !square) l.oom = 1;
    size_t i = 0;
    while (i < len && !l.oom) {
        char c = text[i];
        double w;
        size_t m;
        if (c == '\\') { /* \( \) \[ \] \\ -> the character; a lone '\' -> nothing */
            if (i + 1 < len && text[i + 1] && strchr("()[]\\", text[i + 1])) {
                frag_push(&l, text + i + 1, 1, 1.0, 0);
                i += 2;
            } else {
                i += 1;
                frag_push(&l, "", 0, 1.0, 0);
            }
        } else if (c == '(' && n_round < MAX_DEPTH) {
            round[n_round++] = l.n;
            i++;
        } else if (c == '[' && n_square < MAX_DEPTH) {
            square[n_square++] = l.n;
            i++;
        } else if (c == ':' && (m = weight_at(text, len, i, &w)) > 0) {
            if (n_round) multiply_range(&l, round[--n_round], w);
            else frag_push(&l, text + i, m, 1.0, 0); /* no open '(' : the match is plain text */
            i += m;
        } else if (c == ')' && n_round) {
            multiply_range(&l, round[--n_round], ROUND_MULT);
            i++;
        } else if (c == ']' && n_square) {
            multiply_range(&l, square[--n_square], SQUARE_MULT);
            i++;
        } else if (c == '(' || c == '[' || c == ')' || c == ']' || c == ':') {
            frag_push(&l, text + i, 1, 1.0, 0); /* unmatched closer, lone ':', too-deep opener */
            i++;
        } else {
            size_t j = i;
            while (j < len && !is_syntax(text[j])) j++;
            push_text(&l, text + i, j - i);
            i = j;
        }
    }
    /* unbalanced openers apply to the end of the prompt */
    for (int k = 0; k < n_round; k++) multiply_range(&l, round[k], ROUND_MULT);
    for (int k = 0; k < n_square; k++) multiply_range(&l, square[k], SQUARE_MULT);
    free(round);
    free(square);
    if (l.n == 0) frag_push(&l, "", 0, 1.0, 0);
    /* merge runs of identical weights (not across BREAK) */
    int out = 0, k = 0;
    for (; k < l.n && !l.oom; k++) {
        if (out > 0 && !l.v[k].is_break && !l.v[out - 1].is_break && l.w[out - 1] == l.w[k]) {
            size_t a = l.v[out - 1].len, b = l.v[k].len;
            char *t = realloc(l.v[out - 1].text, a + b + 1);
            if (!t) {
                l.oom = 1;
                break;
            }
            memcpy(t + a, l.v[k].text, b + 1);
            l.v[out - 1].text = t;
            l.v[out - 1].len = a + b;
            free(l.v[k].text);
            continue;
        }
        l.v[out] = l.v[k];
        l.w[out] = l.w[k];
        out++;
    }
    if (l.oom) { /* [0, out) are kept, [k, n) untouched, the rest were merged (freed) or moved */
        for (int q = 0; q < out; q++) free(l.v[q].text);
        for (int q = k; q < l.n; q++) free(l.v[q].text);
        free(l.v);
        free(l.w);
        return tdm_fail(st, TDM_ERR_NOMEM, "emphasis: out of memory");
    }
    for (int q = 0; q < out; q++) l.v[q].weight = (float)l.w[q];
    free(l.w);
    *frags = l.v;
    *n = out;
    return TDM_OK;
}

/* ---- windows ------------------------------------------------------------------------------------- */

typedef struct chunk_list {
    int32_t *ids; /* [n_chunks, 75] */
    float *w;     /* [n_chunks, 75] */
    int *len;     /* [n_chunks] content tokens */
    int n, cap;
    int oom;
} chunk_list;

static int chunk_new(chunk_list *c) {
    if (c->oom) return -1;
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 4;
        int32_t *ids = realloc(c->ids, (size_t)cap * TDM_CLIP_CHUNK * sizeof *ids);
        if (ids) c->ids = ids;
        float *w = ids ? realloc(c->w, (size_t)cap * TDM_CLIP_CHUNK * sizeof *w) : NULL;
        if (w) c->w = w;
        int *len = w ? realloc(c->len, (size_t)cap * sizeof *len) : NULL;
        if (len) c->len = len;
        if (!ids || !w || !len) {
            c->oom = 1;
            return -1;
        }
        c->cap = cap;
    }
    c->len[c->n] = 0;
    return c->n++;
}

static void chunk_free(chunk_list *c) {
    free(c->ids);
    free(c->w);
    free(c->len);
}

/* A1111 tokenize_line: fragments tokenized separately, 75-token chunks, BREAK starts a new chunk, and
 * with comma_backtrack > 0 a full chunk whose last comma is within that many tokens of its end moves the
 * tokens after the comma to the next chunk. */
static tdm_code emphasis_chunks(const tdm_clip_tokenizer *tok, const char *prompt, size_t len,
                                const tdm_clip_encode_opts *o, chunk_list *c, int *n_tokens, tdm_status *st) {
    tdm_clip_fragment *fr;
    int nf;
    TDM_TRY(tdm_clip_parse_emphasis_n(prompt, len, &fr, &nf, st));
    int comma = tdm_clip_token_id(tok, ",</w>");
    int cur = -1, last_comma = -1;
    tdm_code rc = TDM_OK;
    *n_tokens = 0;
    for (int f = 0; f < nf && !rc; f++) {
        if (fr[f].is_break) {
            if (cur < 0) cur = chunk_new(c); /* A1111 next_chunk() closes the (possibly empty) chunk */
            cur = -1;
            last_comma = -1;
            continue;
        }
        int32_t *ids;
        int n;
        rc = tdm_clip_tokenize_n(tok, fr[f].text, fr[f].len, &o->text, &ids, &n, st);
        if (rc) break;
        *n_tokens += n;
        for (int p = 0; p < n; p++) {
            if (cur < 0) {
                cur = chunk_new(c);
                last_comma = -1;
                if (cur < 0) break;
            }
            int L = c->len[cur];
            if (ids[p] == comma) {
                last_comma = L;
            } else if (o->comma_backtrack > 0 && L == TDM_CLIP_CHUNK && last_comma >= 0 &&
                       L - last_comma <= o->comma_backtrack) {
                int from = last_comma + 1, moved = L - from;
                int nxt = chunk_new(c);
                if (nxt < 0) break;
                memcpy(c->ids + (size_t)nxt * TDM_CLIP_CHUNK, c->ids + (size_t)cur * TDM_CLIP_CHUNK + from,
                       (size_t)moved * sizeof *c->ids);
                memcpy(c->w + (size_t)nxt * TDM_CLIP_CHUNK, c->w + (size_t)cur * TDM_CLIP_CHUNK + from,
                       (size_t)moved * sizeof *c->w);
                c->len[cur] = from;
                c->len[nxt] = moved;
                cur = nxt;
                last_comma = -1;
                L = moved;
            }
            if (L == TDM_CLIP_CHUNK) {
                cur = chunk_new(c);
                last_comma = -1;
                if (cur < 0) break;
                L = 0;
            }
            c->ids[(size_t)cur * TDM_CLIP_CHUNK + L] = ids[p];
            c->w[(size_t)cur * TDM_CLIP_CHUNK + L] = fr[f].weight;
            c->len[cur] = L + 1;
        }
        free(ids);
    }
    tdm_clip_fragments_free(fr, nf);
    if (!rc && c->n == 0) chunk_new(c); /* at least one (empty) window */
    if (!rc && c->oom) rc = tdm_fail(st, TDM_ERR_NOMEM, "encode: out of memory");
    return rc;
}

static tdm_code plain_chunks(const tdm_clip_tokenizer *tok, const char *prompt, size_t len,
                             const tdm_clip_encode_opts *o, chunk_list *c, int *n_tokens, tdm_status *st) {
    int32_t *ids;
    int n;
    TDM_TRY(tdm_clip_tokenize_n(tok, prompt, len, &o->text, &ids, &n, st));
    *n_tokens = n;
    int k = 0;
    do {
        int ch = chunk_new(c);
        if (ch < 0) break;
        int m = n - k < TDM_CLIP_CHUNK ? n - k : TDM_CLIP_CHUNK;
        if (m > 0) memcpy(c->ids + (size_t)ch * TDM_CLIP_CHUNK, ids + k, (size_t)m * sizeof *ids);
        for (int q = 0; q < m; q++) c->w[(size_t)ch * TDM_CLIP_CHUNK + q] = 1.0f;
        c->len[ch] = m;
        k += m;
        if (o->truncate) break;
    } while (k < n);
    free(ids);
    return c->oom ? tdm_fail(st, TDM_ERR_NOMEM, "encode: out of memory") : TDM_OK;
}

tdm_code tdm_clip_encode_windows(const tdm_clip_tokenizer *tok, const char *prompt, const tdm_clip_encode_opts *opts,
                                 tdm_clip_windows *out, tdm_status *st) {
    return tdm_clip_encode_windows_n(tok, prompt, prompt ? strlen(prompt) : 0, opts, out, st);
}

tdm_code tdm_clip_encode_windows_n(const tdm_clip_tokenizer *tok, const char *prompt, size_t len,
                                   const tdm_clip_encode_opts *opts, tdm_clip_windows *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    tdm_clip_encode_opts def;
    if (!opts) {
        tdm_clip_encode_opts_init(&def);
        opts = &def;
    }
    if (!tok || !prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "encode: tokenizer or prompt is NULL");
    int pad = opts->pad_id >= 0 ? opts->pad_id : tdm_clip_pad_id(tok);
    if (pad >= tdm_clip_vocab_size(tok))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "encode: pad id %d is outside the vocabulary (%d)", pad,
                        tdm_clip_vocab_size(tok));
    int max_windows = opts->max_windows > 0 ? opts->max_windows : 64;
    chunk_list c = {0};
    int n_tokens = 0;
    tdm_code rc = opts->emphasis ? emphasis_chunks(tok, prompt, len, opts, &c, &n_tokens, st)
                                 : plain_chunks(tok, prompt, len, opts, &c, &n_tokens, st);
    if (rc) {
        chunk_free(&c);
        return rc;
    }
    int K = opts->truncate ? 1 : c.n;
    if (K > max_windows) {
        chunk_free(&c);
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "prompt needs %d windows of %d tokens (%d tokens), over the limit of %d",
                        K, TDM_CLIP_CONTEXT, n_tokens, max_windows);
    }
    out->ids = malloc((size_t)K * TDM_CLIP_CONTEXT * sizeof *out->ids);
    out->weights = malloc((size_t)K * TDM_CLIP_CONTEXT * sizeof *out->weights);
    if (!out->ids || !out->weights) {
        chunk_free(&c);
        tdm_clip_windows_free(out);
        return tdm_fail(st, TDM_ERR_NOMEM, "encode: out of memory");
    }
    int kept = 0;
    for (int k = 0; k < K; k++) {
        int32_t *ids = out->ids + (size_t)k * TDM_CLIP_CONTEXT;
        float *w = out->weights + (size_t)k * TDM_CLIP_CONTEXT;
        int L = c.len[k];
        ids[0] = tdm_clip_bos_id(tok);
        w[0] = 1.0f;
        memcpy(ids + 1, c.ids + (size_t)k * TDM_CLIP_CHUNK, (size_t)L * sizeof *ids);
        memcpy(w + 1, c.w + (size_t)k * TDM_CLIP_CHUNK, (size_t)L * sizeof *w);
        ids[1 + L] = tdm_clip_eos_id(tok);
        w[1 + L] = 1.0f;
        for (int p = 2 + L; p < TDM_CLIP_CONTEXT; p++) {
            ids[p] = pad;
            w[p] = 1.0f;
        }
        kept += L;
    }
    out->n_windows = K;
    out->window_len = TDM_CLIP_CONTEXT;
    out->n_tokens = n_tokens;
    out->truncated = kept < n_tokens;
    chunk_free(&c);
    return TDM_OK;
}

/* ---- emphasis on hidden states --------------------------------------------------------------------- */

void tdm_clip_apply_emphasis_n(float *hidden, const float *weights, int T, int C) {
    if (T <= 0 || C <= 0) return;
    size_t n = (size_t)T * (size_t)C;
    double m0 = 0, m1 = 0;
    for (size_t i = 0; i < n; i++) m0 += hidden[i];
    for (int t = 0; t < T; t++) {
        float w = weights[t];
        float *h = hidden + (size_t)t * C;
        for (int c = 0; c < C; c++) {
            h[c] *= w;
            m1 += h[c];
        }
    }
    m0 /= (double)n;
    m1 /= (double)n;
    if (m1 == 0 || !isfinite(m1)) return;
    float scale = (float)(m0 / m1);
    for (size_t i = 0; i < n; i++) hidden[i] *= scale;
}

void tdm_clip_apply_emphasis(float *hidden, const float *weights, int C) {
    tdm_clip_apply_emphasis_n(hidden, weights, TDM_CLIP_CONTEXT, C);
}
