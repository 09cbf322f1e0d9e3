/* Text cleaning of the CLIP tokenizer: a port of the ftfy.fix_text (6.1) steps that matter for
 * prompts, Python's html.unescape (openai/CLIP mode), whitespace_clean and str.lower.
 *
 * ftfy.fix_text(text) splits the text after each '\n' and fixes every segment with
 * fix_and_explain, which repeats until the text stops changing:
 *   unescape_html (only while no segment so far contained '<'), fix_encoding (mojibake),
 *   fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks,
 *   (fix_surrogates: nothing to do, decoding never yields surrogates), remove_terminal_escapes,
 *   remove_control_chars, NFC.
 * fix_encoding is approximated (docs/TOKENIZER.md): ftfy decides with a large "badness" heuristic
 * whether text is mojibake; here UTF-8 read as Windows-1252/Latin-1 is repaired when it contains an
 * unmistakable sequence (see has_evidence). */
#include <stdlib.h>
#include <string.h>

#include "models/clip_tokenizer_internal.h"

#define MAX_FIX_ROUNDS 16 /* fix_and_explain repeats until stable; every real prompt settles in 2-3 */

/* Windows-1252 bytes 0x80..0x9F; undefined bytes decode to the C1 control of the same value, as
 * ftfy's "sloppy-windows-1252" does. */
static const uint16_t cp1252_hi[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                       0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                       0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                       0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

/* Byte of cp in Latin-1 or sloppy Windows-1252, -1 when neither can encode it. */
static int single_byte(uint32_t cp) {
    if (cp < 0x100) return (int)cp;
    for (int i = 0; i < 32; i++)
        if (cp1252_hi[i] == cp) return 0x80 + i;
    return -1;
}

static int is_ascii_alnum(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_hex(uint32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* ---- HTML character references ------------------------------------------------------------------- */

/* html.unescape's value of numeric reference num (CPython html/__init__.py _replace_charref): returns the
 * number of code points written to out (0 = removed). */
static int charref_value(uint64_t num, uint32_t *out) {
    if (num == 0) {
        out[0] = 0xFFFD;
        return 1;
    }
    if (num == 0x0D) {
        out[0] = '\r';
        return 1;
    }
    if (num >= 0x80 && num <= 0x9F) {
        out[0] = cp1252_hi[num - 0x80];
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        out[0] = 0xFFFD;
        return 1;
    }
    if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
        (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        return 0; /* invalid code points are dropped */
    out[0] = (uint32_t)num;
    return 1;
}

static uint64_t parse_num(const uint32_t *s, size_t n, int base) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        unsigned d = is_digit(c) ? c - '0' : (c | 32) - 'a' + 10;
        v = v * (uint64_t)base + d;
        if (v > 0x10FFFF) v = 0x110000; /* saturate: anything above is replaced the same way */
    }
    return v;
}

/* Named reference s[0..n) (ASCII only) looked up with flag; returns the replacement length or 0. */
static int named_ref(const uint32_t *s, size_t n, unsigned flag, uint32_t to[3]) {
    char name[40];
    if (n == 0 || n >= sizeof name) return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80) return 0;
        name[i] = (char)s[i];
    }
    return tdm_uc_entity_lookup(name, n, flag, to);
}

/* ftfy.fixes.unescape_html: `&#?[0-9A-Za-z]{1,24};` replaced by ftfy's entity table (HTML5 names
 * ending in ';' plus their all-uppercase variants) or, for numeric references, by html.unescape's value
 * when the whole reference is consumed. */
static void unescape_ftfy(const uint32_t *s, size_t n, tdm_u32buf *out) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1, k;
        int hash = j < n && s[j] == '#';
        if (hash) j++;
        for (k = j; k < n && k - j < 25 && is_ascii_alnum(s[k]); k++) {
        }
        size_t run = k - j;
        if (run < 1 || run > 24 || k >= n || s[k] != ';') {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        uint32_t rep[3];
        int rn = -1; /* -1: keep the reference as it is */
        if (hash) {
            int hex = s[j] == 'x' || s[j] == 'X';
            size_t d0 = j + (size_t)hex, q;
            for (q = d0; q < k && (hex ? is_hex(s[q]) : is_digit(s[q])); q++) {
            }
            if (q == k && k > d0) rn = charref_value(parse_num(s + d0, k - d0, hex ? 16 : 10), rep);
        } else {
            int m = named_ref(s + j, run + 1, TDM_UC_ENT_FTFY, rep); /* name includes the ';' */
            if (m > 0) rn = m;
        }
        if (rn < 0) {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        tdm_u32buf_append(out, rep, (size_t)rn);
        i = k + 1;
    }
}

/* Python html.unescape: `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)`; named references
 * fall back to the longest HTML5 name that is a prefix (legacy names without ';'). */
static void unescape_python(const uint32_t *s, size_t n, tdm_u32buf *out) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&' || i + 1 >= n) {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1;
        uint32_t rep[3];
        if (s[j] == '#') {
            int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X') && j + 2 < n && is_hex(s[j + 2]);
            size_t d0 = j + 1 + (size_t)hex, q;
            for (q = d0; q < n && (hex ? is_hex(s[q]) : is_digit(s[q])); q++) {
            }
            if (q == d0) {
                tdm_u32buf_push(out, s[i++]);
                continue;
            }
            int rn = charref_value(parse_num(s + d0, q - d0, hex ? 16 : 10), rep);
            tdm_u32buf_append(out, rep, (size_t)rn);
            i = q < n && s[q] == ';' ? q + 1 : q;
            continue;
        }
        size_t q;
        for (q = j; q < n && q - j < 32; q++) {
            uint32_t c = s[q];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
        }
        if (q == j) {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        size_t end = q < n && s[q] == ';' ? q + 1 : q; /* the match is s[j..end) */
        int rn = named_ref(s + j, end - j, TDM_UC_ENT_HTML5, rep);
        size_t used = end - j;
        for (size_t x = end - j - 1; rn == 0 && x > 1; x--) { /* longest prefix, at least 2 characters */
            rn = named_ref(s + j, x, TDM_UC_ENT_HTML5, rep);
            used = x;
        }
        if (rn == 0) {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        tdm_u32buf_append(out, rep, (size_t)rn);
        tdm_u32buf_append(out, s + j + used, end - j - used);
        i = end;
    }
}

/* ---- mojibake ------------------------------------------------------------------------------------ */

/* Length (in characters) of a UTF-8 multi-byte sequence spelled by s[i..] in single-byte characters,
 * 0 when there is none; its code point in *cp. */
static int utf8_seq_at(const uint32_t *s, size_t n, size_t i, uint32_t *cp) {
    int b0 = single_byte(s[i]);
    int need;
    uint32_t v;
    int lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        v = (uint32_t)b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        v = (uint32_t)b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        v = (uint32_t)b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    for (int k = 1; k <= need; k++) {
        if (i + (size_t)k >= n) return 0;
        int b = single_byte(s[i + (size_t)k]);
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
        v = (v << 6) | ((uint32_t)b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* A run of UTF-8-as-single-byte sequences is treated as mojibake when it holds an unmistakable one:
 * a 2-byte sequence led by 'Â' or 'Ã' (U+0080..U+00FF mis-decoded, "Ã©" = é), any 3- or 4-byte
 * sequence ("â€œ" = “, "ðŸ±" = 🐱), or at least two sequences in a row ("Ð¿Ñ€" = пр). */
static int has_evidence(const uint32_t *s, size_t n, size_t i, size_t j) {
    int seqs = 0;
    while (i < j) {
        uint32_t cp;
        int len = utf8_seq_at(s, n, i, &cp);
        if (len == 0) return 0;
        int b0 = single_byte(s[i]);
        if (len >= 3 || b0 == 0xC2 || b0 == 0xC3) return 1;
        seqs++;
        i += (size_t)len;
    }
    return seqs >= 2;
}

/* fix_encoding: decode runs of mojibake. Returns 1 when something changed. */
static int fix_encoding_pass(const uint32_t *s, size_t n, tdm_u32buf *out) {
    int changed = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        if (s[i] < 0x80 || !utf8_seq_at(s, n, i, &cp)) {
            tdm_u32buf_push(out, s[i++]);
            continue;
        }
        size_t j = i;
        int len;
        while (j < n && (len = utf8_seq_at(s, n, j, &cp)) > 0) j += (size_t)len;
        if (!has_evidence(s, n, i, j)) {
            tdm_u32buf_append(out, s + i, j - i);
            i = j;
            continue;
        }
        while (i < j) {
            len = utf8_seq_at(s, n, i, &cp);
            tdm_u32buf_push(out, cp);
            i += (size_t)len;
        }
        changed = 1;
    }
    return changed;
}

/* ---- character fixes ----------------------------------------------------------------------------- */

/* ftfy fix_latin_ligatures (compatibility decompositions of these characters). */
static int ligature(uint32_t c, uint32_t to[3]) {
    static const struct {
        uint16_t cp;
        uint16_t to[3];
    } tab[] = {
        {0x0132, {'I', 'J', 0}},      {0x0133, {'i', 'j', 0}},      {0x0149, {0x02BC, 'n', 0}}, {0x01C4, {'D', 0x17D, 0}},
        {0x01C5, {'D', 0x17E, 0}},    {0x01C6, {'d', 0x17E, 0}},    {0x01C7, {'L', 'J', 0}},    {0x01C8, {'L', 'j', 0}},
        {0x01C9, {'l', 'j', 0}},      {0x01CA, {'N', 'J', 0}},      {0x01CB, {'N', 'j', 0}},    {0x01CC, {'n', 'j', 0}},
        {0x01F1, {'D', 'Z', 0}},      {0x01F2, {'D', 'z', 0}},      {0x01F3, {'d', 'z', 0}},    {0xFB00, {'f', 'f', 0}},
        {0xFB01, {'f', 'i', 0}},      {0xFB02, {'f', 'l', 0}},      {0xFB03, {'f', 'f', 'i'}},  {0xFB04, {'f', 'f', 'l'}},
        {0xFB05, {0x017F, 't', 0}},   {0xFB06, {'s', 't', 0}},
    };
    if (c < 0x132 || (c > 0x1F3 && c < 0xFB00) || c > 0xFB06) return 0;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (tab[i].cp != c) continue;
        int n = 0;
        while (n < 3 && tab[i].to[n]) {
            to[n] = tab[i].to[n];
            n++;
        }
        return n;
    }
    return 0;
}

/* remove_control_chars: U+0000-0008, 000B, 000E-001F, 007F, 206A-206F, FEFF, FFF9-FFFC. */
static int is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* The character-level fixers after fix_encoding, in ftfy's order. */
static void fix_chars(const uint32_t *s, size_t n, tdm_u32buf *out) {
    tdm_u32buf a = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i], to[3];
        if (c >= 0x80 && c <= 0x9F) c = cp1252_hi[c - 0x80]; /* fix_c1_controls */
        int k = ligature(c, to);                              /* fix_latin_ligatures */
        if (!k) {
            to[0] = c;
            k = 1;
        }
        for (int q = 0; q < k; q++) {
            uint32_t w[2];
            int wn = tdm_uc_width(to[q], w); /* fix_character_width */
            if (!wn) {
                w[0] = to[q];
                wn = 1;
            }
            for (int r = 0; r < wn; r++) {
                uint32_t d = w[r];
                if (d == 0x2BC || (d >= 0x2018 && d <= 0x201B)) d = '\''; /* uncurl_quotes */
                else if (d >= 0x201C && d <= 0x201F) d = '"';
                tdm_u32buf_push(&a, d);
            }
        }
    }
    /* fix_line_breaks, remove_terminal_escapes, remove_control_chars */
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.v[i];
        if (c == '\r') {
            if (i + 1 < a.n && a.v[i + 1] == '\n') i++;
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        if (c == 0x1B && i + 1 < a.n && a.v[i + 1] == '[') { /* ESC [ [0-9;]* [A-Za-z] */
            size_t j = i + 2;
            while (j < a.n && (is_digit(a.v[j]) || a.v[j] == ';')) j++;
            if (j < a.n && a.v[j] < 0x80 && ((a.v[j] | 32) >= 'a' && (a.v[j] | 32) <= 'z')) {
                i = j;
                continue;
            }
        }
        if (is_removed_control(c)) continue;
        tdm_u32buf_push(out, c);
    }
    if (a.oom) out->oom = 1;
    tdm_u32buf_free(&a);
}

static int same(const tdm_u32buf *a, const tdm_u32buf *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

static void swap_buf(tdm_u32buf *a, tdm_u32buf *b) {
    tdm_u32buf t = *a;
    *a = *b;
    *b = t;
}

/* fix_and_explain of one segment. */
static void fix_segment(const uint32_t *s, size_t n, int unescape, tdm_u32buf *out) {
    tdm_u32buf cur = {0}, nxt = {0}, orig = {0};
    tdm_u32buf_append(&cur, s, n);
    for (int round = 0; round < MAX_FIX_ROUNDS && !cur.oom && !nxt.oom && !orig.oom; round++) {
        orig.n = 0;
        tdm_u32buf_append(&orig, cur.v, cur.n);
        if (unescape) {
            nxt.n = 0;
            unescape_ftfy(cur.v, cur.n, &nxt);
            swap_buf(&cur, &nxt);
        }
        for (int k = 0; k < MAX_FIX_ROUNDS; k++) { /* fix_encoding repeats until stable */
            nxt.n = 0;
            int changed = fix_encoding_pass(cur.v, cur.n, &nxt);
            swap_buf(&cur, &nxt);
            if (!changed) break;
        }
        nxt.n = 0;
        fix_chars(cur.v, cur.n, &nxt);
        swap_buf(&cur, &nxt);
        nxt.n = 0;
        tdm_uc_nfc(cur.v, cur.n, &nxt);
        swap_buf(&cur, &nxt);
        if (same(&cur, &orig)) break;
    }
    if (cur.oom || nxt.oom || orig.oom) out->oom = 1;
    tdm_u32buf_append(out, cur.v, cur.n);
    tdm_u32buf_free(&cur);
    tdm_u32buf_free(&nxt);
    tdm_u32buf_free(&orig);
}

void tdm_clip_fix_text(const uint32_t *s, size_t n, tdm_u32buf *out) {
    int unescape = 1; /* unescape_html="auto": off from the first segment containing '<' on */
    size_t pos = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && s[end] != '\n') end++;
        if (end < n) end++; /* the segment keeps its '\n' */
        for (size_t i = pos; i < end && unescape; i++)
            if (s[i] == '<') unescape = 0;
        fix_segment(s + pos, end - pos, unescape, out);
        pos = end;
    }
}

/* ---- whole cleaning ------------------------------------------------------------------------------ */

/* re.sub(r"\s+", " ", s).strip() */
static void whitespace_clean(const uint32_t *s, size_t n, tdm_u32buf *out) {
    size_t i = 0;
    while (i < n && tdm_uc_is_space(s[i])) i++;
    while (n > i && tdm_uc_is_space(s[n - 1])) n--;
    while (i < n) {
        if (tdm_uc_is_space(s[i])) {
            while (i < n && tdm_uc_is_space(s[i])) i++;
            tdm_u32buf_push(out, ' ');
        } else {
            tdm_u32buf_push(out, s[i++]);
        }
    }
}

tdm_code tdm_clip_clean_cps(const uint32_t *s, size_t n, int mode, tdm_u32buf *out, tdm_status *st) {
    tdm_u32buf a = {0}, b = {0};
    tdm_clip_fix_text(s, n, &a);
    if (mode == TDM_CLIP_CLEAN_OPENAI) { /* basic_clean: html.unescape(html.unescape(text)).strip() */
        unescape_python(a.v, a.n, &b);
        a.n = 0;
        unescape_python(b.v, b.n, &a);
    }
    b.n = 0;
    whitespace_clean(a.v, a.n, &b); /* also covers openai's strip() */
    tdm_uc_lower(b.v, b.n, out);
    int oom = a.oom || b.oom || out->oom;
    tdm_u32buf_free(&a);
    tdm_u32buf_free(&b);
    return oom ? tdm_fail(st, TDM_ERR_NOMEM, "tokenizer: out of memory while cleaning text") : TDM_OK;
}

tdm_code tdm_clip_clean_text(const char *text, int clean_mode, char **out, tdm_status *st) {
    *out = NULL;
    size_t len = strlen(text);
    if (len > TDM_CLIP_MAX_TEXT)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "text is %zu bytes long, over the limit of %d", len, TDM_CLIP_MAX_TEXT);
    tdm_u32buf cps = {0}, clean = {0};
    tdm_utf8_decode(text, len, &cps);
    tdm_code rc = cps.oom ? tdm_fail(st, TDM_ERR_NOMEM, "out of memory") : TDM_OK;
    if (!rc) rc = tdm_clip_clean_cps(cps.v, cps.n, clean_mode, &clean, st);
    char *s = NULL;
    if (!rc) {
        s = malloc(clean.n * 4 + 1);
        if (!s) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    if (!rc) {
        size_t m = 0;
        for (size_t i = 0; i < clean.n; i++) m += (size_t)tdm_utf8_encode(clean.v[i], (unsigned char *)s + m);
        s[m] = '\0';
        *out = s;
    }
    tdm_u32buf_free(&cps);
    tdm_u32buf_free(&clean);
    return rc;
}
