#include "models/unicode_text.h"

#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- buffers ------------------------------------------------------------------------------------ */

static int u32buf_reserve(tdm_u32buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) {
        if (cap > ((size_t)1 << 40)) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) {
        b->oom = 1;
        return 0;
    }
    b->v = v;
    b->cap = cap;
    return 1;
}

void tdm_u32buf_push(tdm_u32buf *b, uint32_t cp) {
    if (u32buf_reserve(b, 1)) b->v[b->n++] = cp;
}

void tdm_u32buf_append(tdm_u32buf *b, const uint32_t *cps, size_t n) {
    if (n && u32buf_reserve(b, n)) {
        memcpy(b->v + b->n, cps, n * sizeof *cps);
        b->n += n;
    }
}

void tdm_u32buf_free(tdm_u32buf *b) {
    free(b->v);
    memset(b, 0, sizeof *b);
}

void tdm_i32buf_push(tdm_i32buf *b, int32_t id) {
    if (b->oom) return;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        int32_t *v = cap > 0 ? realloc(b->v, (size_t)cap * sizeof *v) : NULL;
        if (!v) {
            b->oom = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
}

/* ---- UTF-8 -------------------------------------------------------------------------------------- */

void tdm_utf8_decode(const char *str, size_t n, tdm_u32buf *out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            tdm_u32buf_push(out, c);
            i++;
            continue;
        }
        int need;
        uint32_t cp;
        unsigned lo = 0x80, hi = 0xBF; /* valid range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
        } else {
            tdm_u32buf_push(out, 0xFFFD); /* continuation byte or invalid lead */
            i++;
            continue;
        }
        size_t j = i + 1;
        int k;
        for (k = 0; k < need; k++, j++) {
            if (j >= n) break;
            unsigned b = s[j];
            unsigned l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
            if (b < l || b > h) break;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (k == need) {
            tdm_u32buf_push(out, cp);
            i = j;
        } else {
            tdm_u32buf_push(out, 0xFFFD); /* maximal valid prefix -> one replacement character */
            i = j;
        }
    }
}

int tdm_utf8_encode(uint32_t cp, unsigned char o[4]) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- properties --------------------------------------------------------------------------------- */

static int range_find(const tdm_uc_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return r[mid].v;
    }
    return 0;
}

unsigned tdm_uc_props(uint32_t cp) {
    return (unsigned)range_find(tdm_uc_prop_ranges, COUNT(tdm_uc_prop_ranges), cp);
}

int tdm_uc_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    return range_find(tdm_uc_ccc_ranges, COUNT(tdm_uc_ccc_ranges), cp);
}

uint32_t tdm_uc_lower1(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = COUNT(tdm_uc_lower_map);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tdm_uc_lower_map[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < COUNT(tdm_uc_lower_map) && tdm_uc_lower_map[lo].cp == cp) return tdm_uc_lower_map[lo].to;
    return cp;
}

/* CPython unicodeobject.c handle_capital_sigma: U+03A3 lowers to final sigma U+03C2 when preceded by a
 * cased letter and not followed by one (case-ignorable characters skipped on both sides). */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    unsigned p = 0;
    while (j > 0) {
        p = tdm_uc_props(s[--j]);
        if (!(p & TDM_UC_CASE_IGNORABLE)) break;
        p = 0;
    }
    if (!(p & TDM_UC_CASED)) return 0;
    for (j = i + 1; j < n; j++) {
        p = tdm_uc_props(s[j]);
        if (!(p & TDM_UC_CASE_IGNORABLE)) return !(p & TDM_UC_CASED);
    }
    return 1;
}

void tdm_uc_lower(const uint32_t *s, size_t n, tdm_u32buf *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == 0x130) {
            tdm_u32buf_push(out, 'i');
            tdm_u32buf_push(out, 0x307);
        } else if (c == 0x3A3) {
            tdm_u32buf_push(out, final_sigma(s, n, i) ? 0x3C2 : 0x3C3);
        } else {
            tdm_u32buf_push(out, tdm_uc_lower1(c));
        }
    }
}

int tdm_uc_width(uint32_t cp, uint32_t to[2]) {
    if (cp != 0x3000 && (cp < 0xFF01 || cp > 0xFFEF)) return 0;
    size_t lo = 0, hi = COUNT(tdm_uc_width_map);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tdm_uc_width_map[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo >= COUNT(tdm_uc_width_map) || tdm_uc_width_map[lo].cp != cp) return 0;
    to[0] = tdm_uc_width_map[lo].to[0];
    to[1] = tdm_uc_width_map[lo].to[1];
    return tdm_uc_width_map[lo].len;
}

int tdm_uc_entity_lookup(const char *name, size_t len, unsigned flag, uint32_t to[3]) {
    size_t lo = 0, hi = COUNT(tdm_uc_entities);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *e = tdm_uc_entities[mid].name;
        int c = strncmp(e, name, len);
        if (c == 0) c = e[len] ? 1 : 0; /* e longer than name -> e sorts after */
        if (c < 0) lo = mid + 1;
        else if (c > 0) hi = mid;
        else {
            const tdm_uc_entity *en = &tdm_uc_entities[mid];
            if (!(en->flags & flag)) return 0;
            memcpy(to, en->to, sizeof en->to);
            return en->len;
        }
    }
    return 0;
}

/* ---- NFC ---------------------------------------------------------------------------------------- */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7 };
enum { HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28, HANGUL_NCOUNT = 21 * 28, HANGUL_SCOUNT = 19 * 21 * 28 };

static void decompose(uint32_t cp, tdm_u32buf *out) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t si = cp - HANGUL_S;
        tdm_u32buf_push(out, HANGUL_L + si / HANGUL_NCOUNT);
        tdm_u32buf_push(out, HANGUL_V + (si % HANGUL_NCOUNT) / HANGUL_TCOUNT);
        if (si % HANGUL_TCOUNT) tdm_u32buf_push(out, HANGUL_T + si % HANGUL_TCOUNT);
        return;
    }
    if (cp >= 0xC0) {
        size_t lo = 0, hi = COUNT(tdm_uc_decomps);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (tdm_uc_decomps[mid].cp < cp) lo = mid + 1;
            else hi = mid;
        }
        if (lo < COUNT(tdm_uc_decomps) && tdm_uc_decomps[lo].cp == cp) {
            tdm_u32buf_append(out, tdm_uc_decomp_data + tdm_uc_decomps[lo].off, tdm_uc_decomps[lo].len);
            return;
        }
    }
    tdm_u32buf_push(out, cp);
}

/* Primary composite of (a, b), 0 when none. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = COUNT(tdm_uc_compositions);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const tdm_uc_compose *c = &tdm_uc_compositions[mid];
        if (c->a < a || (c->a == a && c->b < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < COUNT(tdm_uc_compositions) && tdm_uc_compositions[lo].a == a && tdm_uc_compositions[lo].b == b)
        return tdm_uc_compositions[lo].c;
    return 0;
}

void tdm_uc_nfc(const uint32_t *s, size_t n, tdm_u32buf *out) {
    size_t i;
    for (i = 0; i < n && s[i] < 0x300; i++) {
    }
    if (i == n) { /* nothing below U+0300 decomposes or composes with a neighbour below U+0300 */
        tdm_u32buf_append(out, s, n);
        return;
    }
    tdm_u32buf d = {0};
    for (i = 0; i < n; i++) decompose(s[i], &d);
    if (d.oom) {
        out->oom = 1;
        tdm_u32buf_free(&d);
        return;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters by ccc */
    for (i = 1; i < d.n; i++) {
        int cc = tdm_uc_ccc(d.v[i]);
        if (cc == 0) continue;
        size_t j = i;
        uint32_t c = d.v[i];
        while (j > 0) {
            int pc = tdm_uc_ccc(d.v[j - 1]);
            if (pc == 0 || pc <= cc) break;
            d.v[j] = d.v[j - 1];
            j--;
        }
        d.v[j] = c;
    }
    /* canonical composition */
    long starter = -1; /* index in out of the last starter */
    int last_cc = -1;  /* ccc of the last character appended after the starter; -1: none */
    for (i = 0; i < d.n; i++) {
        uint32_t c = d.v[i];
        int cc = tdm_uc_ccc(c);
        if (starter >= 0 && (last_cc == -1 || (last_cc != 0 && last_cc < cc))) {
            uint32_t comp = compose(out->v[starter], c);
            if (comp) {
                out->v[starter] = comp;
                continue;
            }
        }
        tdm_u32buf_push(out, c);
        if (out->oom) break;
        if (cc == 0) {
            starter = (long)(out->n - 1);
            last_cc = -1;
        } else {
            last_cc = cc;
        }
    }
    tdm_u32buf_free(&d);
}
