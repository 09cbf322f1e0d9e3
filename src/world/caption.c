/* Shapes world captions: generation with paraphrases and the recursive-descent parser (grammar in
 * docs/WORLD.md). */
#include "world/caption.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- queries ----------------------------------------------------------------------------------- */

void tdm_world_scene_query(const tdm_world_scene *sc, tdm_world_query *q) {
    memset(q, 0, sizeof *q);
    q->n_objects = sc->n_objects;
    q->background = sc->background;
    q->relation = sc->n_objects == 2 ? sc->relation : TDM_ANY;
    for (int i = 0; i < 2; i++) {
        tdm_world_obj_query *o = &q->obj[i];
        if (i >= sc->n_objects) {
            o->colour = o->shape = o->size = o->position = TDM_ANY;
            continue;
        }
        o->colour = sc->obj[i].colour;
        o->shape = sc->obj[i].shape;
        o->size = sc->obj[i].size;
        o->position = sc->n_objects == 1 ? sc->obj[i].position : TDM_ANY;
    }
}

void tdm_world_describe(const tdm_world_scene *sc, tdm_world_rng *r, tdm_world_query *q) {
    tdm_world_scene_query(sc, q);
    for (int i = 0; i < sc->n_objects; i++)
        if (tdm_world_rng_uniform(r) >= 0.6f) q->obj[i].size = TDM_ANY;
    if (tdm_world_rng_uniform(r) >= 0.5f) q->background = TDM_ANY;
}

void tdm_world_query_canonical(const tdm_world_query *q, tdm_world_query *out) {
    *out = *q;
    if (q->n_objects == 2 && (q->relation == TDM_REL_RIGHT_OF || q->relation == TDM_REL_BELOW)) {
        out->obj[0] = q->obj[1];
        out->obj[1] = q->obj[0];
        out->relation = tdm_relation_inverse(q->relation);
    }
    if (out->n_objects < 2) {
        out->obj[1].colour = out->obj[1].shape = out->obj[1].size = out->obj[1].position = TDM_ANY;
        out->relation = TDM_ANY;
    }
}

int tdm_world_query_equal(const tdm_world_query *a, const tdm_world_query *b) {
    tdm_world_query ca, cb;
    tdm_world_query_canonical(a, &ca);
    tdm_world_query_canonical(b, &cb);
    if (ca.n_objects != cb.n_objects || ca.relation != cb.relation || ca.background != cb.background) return 0;
    for (int i = 0; i < ca.n_objects; i++) {
        const tdm_world_obj_query *x = &ca.obj[i], *y = &cb.obj[i];
        if (x->colour != y->colour || x->shape != y->shape || x->size != y->size || x->position != y->position)
            return 0;
    }
    return 1;
}

/* ---- generation -------------------------------------------------------------------------------- */

/* Words are collected first, then joined: "," tokens are dropped at the start and end and when
 * doubled, so the phrase builders can emit them freely. */
#define MAX_WORDS 48
typedef struct words {
    const char *w[MAX_WORDS];
    int n;
} words;

static void put(words *ws, const char *w) {
    if (ws->n < MAX_WORDS) ws->w[ws->n++] = w;
}

static int pick(tdm_world_rng *r, float p) { return tdm_world_rng_uniform(r) < p; }

static void put_det(words *ws, int definite, const char *next) {
    put(ws, definite ? "the" : strchr("aeiou", next[0]) ? "an" : "a");
}

/* det [size] [colour] shape | det [colour] shape , size , */
static void put_np(words *ws, const tdm_world_obj_query *o, int definite, tdm_world_rng *r) {
    int size_after = o->size != TDM_ANY && pick(r, 0.3f);
    const char *first = o->size != TDM_ANY && !size_after ? tdm_size_name(o->size)
                        : o->colour != TDM_ANY            ? tdm_colour_name(o->colour)
                                                          : tdm_shape_name(o->shape);
    put_det(ws, definite, first);
    if (o->size != TDM_ANY && !size_after) put(ws, tdm_size_name(o->size));
    if (o->colour != TDM_ANY) put(ws, tdm_colour_name(o->colour));
    put(ws, tdm_shape_name(o->shape));
    if (size_after) {
        put(ws, ",");
        put(ws, tdm_size_name(o->size));
        put(ws, ",");
    }
}

static void put_pos(words *ws, int pos, tdm_world_rng *r) {
    static const char *const place[TDM_N_POSITIONS] = {"left", "right", "top", "bottom", NULL};
    if (pos == TDM_POS_CENTRE) {
        static const char *const centre[3] = {"centre", "center", "middle"};
        put(ws, "in");
        put(ws, "the");
        put(ws, centre[tdm_world_rng_int(r, 3)]);
        return;
    }
    put(ws, pick(r, 0.5f) ? "on" : "at");
    put(ws, "the");
    put(ws, place[pos]);
}

static void put_rel(words *ws, int rel) {
    switch (rel) {
    case TDM_REL_LEFT_OF: put(ws, "to"), put(ws, "the"), put(ws, "left"), put(ws, "of"); break;
    case TDM_REL_RIGHT_OF: put(ws, "to"), put(ws, "the"), put(ws, "right"), put(ws, "of"); break;
    case TDM_REL_ABOVE: put(ws, "above"); break;
    default: put(ws, "below"); break;
    }
}

/* on a W background | against a W background | with a W background (not as a prefix) | , W background */
static void put_bg(words *ws, int colour, int prefix, tdm_world_rng *r) {
    int form = tdm_world_rng_int(r, prefix ? 2 : 4);
    const char *name = tdm_colour_name(colour);
    if (form == 3) {
        put(ws, ",");
        put(ws, name);
        put(ws, "background");
        return;
    }
    static const char *const prep[3] = {"on", "against", "with"};
    put(ws, prep[form]);
    put_det(ws, 0, name);
    put(ws, name);
    put(ws, "background");
    if (prefix) put(ws, ",");
}

static tdm_code join(const words *ws, char *buf, size_t bufsz, tdm_status *st) {
    size_t len = 0;
    int need_space = 0, pending_comma = 0;
    if (bufsz == 0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption: empty buffer");
    buf[0] = '\0';
    for (int i = 0; i < ws->n; i++) {
        if (strcmp(ws->w[i], ",") == 0) {
            pending_comma = len > 0;
            continue;
        }
        int m = snprintf(buf + len, bufsz - len, "%s%s%s", pending_comma ? "," : "", need_space ? " " : "",
                         ws->w[i]);
        if (m < 0 || (size_t)m >= bufsz - len)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption: longer than the buffer of %zu bytes", bufsz);
        len += (size_t)m;
        need_space = 1;
        pending_comma = 0;
    }
    return TDM_OK;
}

tdm_code tdm_world_caption_text(const tdm_world_query *q, tdm_world_rng *r, char *buf, size_t bufsz, tdm_status *st) {
    if (q->n_objects < 1 || q->n_objects > 2)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption: %d objects (1 or 2)", q->n_objects);
    for (int i = 0; i < q->n_objects; i++)
        if (q->obj[i].shape < 0 || q->obj[i].shape >= TDM_N_SHAPES)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption: object %d has no shape", i + 1);
    if (q->n_objects == 2 && (q->relation < 0 || q->relation >= TDM_N_RELATIONS))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption: two objects need a relation");
    words ws = {{0}, 0};
    int bg = q->background, bg_prefix = bg != TDM_ANY && pick(r, 0.4f);
    if (bg_prefix) put_bg(&ws, bg, 1, r);
    if (q->n_objects == 1) {
        const tdm_world_obj_query *o = &q->obj[0];
        int style = tdm_world_rng_int(r, 4);
        if (o->position == TDM_ANY && (style == 1 || style == 3)) style = 2;
        switch (style) {
        case 0: /* NP POS */
            put_np(&ws, o, 0, r);
            if (o->position != TDM_ANY) put_pos(&ws, o->position, r);
            break;
        case 1: /* POS , NP */
            put_pos(&ws, o->position, r);
            put(&ws, ",");
            put_np(&ws, o, 0, r);
            break;
        case 2: /* there is NP POS */
            put(&ws, "there"), put(&ws, "is");
            put_np(&ws, o, 0, r);
            if (o->position != TDM_ANY) put_pos(&ws, o->position, r);
            break;
        default: /* the NP is POS */
            put_np(&ws, o, 1, r);
            put(&ws, "is");
            put_pos(&ws, o->position, r);
            break;
        }
    } else {
        const tdm_world_obj_query *a = &q->obj[0], *b = &q->obj[1];
        int rel = q->relation;
        if (pick(r, 0.5f)) { /* the same statement from the other object */
            const tdm_world_obj_query *t = a;
            a = b, b = t;
            rel = tdm_relation_inverse(rel);
        }
        int style = tdm_world_rng_int(r, 3);
        if (style == 1) put(&ws, "there"), put(&ws, "is");
        put_np(&ws, a, style == 2, r);
        if (style == 2) put(&ws, "is");
        put_rel(&ws, rel);
        put_np(&ws, b, style == 2, r);
    }
    if (bg != TDM_ANY && !bg_prefix) put_bg(&ws, bg, 0, r);
    return join(&ws, buf, bufsz, st);
}

tdm_code tdm_world_caption(const tdm_world_scene *sc, uint64_t seed, uint64_t index, char *buf, size_t bufsz,
                           tdm_world_query *q, tdm_status *st) {
    tdm_world_rng r = {seed, index | (1ull << 62), 0};
    tdm_world_query local;
    if (!q) q = &local;
    tdm_world_describe(sc, &r, q);
    return tdm_world_caption_text(q, &r, buf, bufsz, st);
}

/* ---- parser ------------------------------------------------------------------------------------ */

#define MAX_TOKENS 64
#define MAX_TOKEN_LEN 24

typedef struct parser {
    char tok[MAX_TOKENS][MAX_TOKEN_LEN];
    int n, p;
    tdm_status *st;
} parser;

static const char *const k_vocabulary[] = {
    "a",      "an",    "the",   "there",  "is",     "on",     "at",     "in",    "to",       "of",
    "above",  "below", "left",  "right",  "top",    "bottom", "centre", "center", "middle",  "background",
    "with",   "against", "small", "large", "circle", "square", "triangle", "red", "green",  "blue",
    "yellow", "purple", "orange", "pink",  "brown",  "white",  "black",  "gray",  "grey",
};

static int in_vocabulary(const char *w) {
    for (size_t i = 0; i < sizeof k_vocabulary / sizeof k_vocabulary[0]; i++)
        if (strcmp(w, k_vocabulary[i]) == 0) return 1;
    return 0;
}

static tdm_code tokenize(parser *ps, const char *text) {
    ps->n = ps->p = 0;
    size_t i = 0;
    while (text[i]) {
        unsigned char c = (unsigned char)text[i];
        if (isspace(c) || c == ',' || c == '.') {
            i++;
            continue;
        }
        if (!isalpha(c))
            return tdm_fail(ps->st, TDM_ERR_INVALID_ARG,
                            "caption character %zu '%c': only letters, spaces, commas and full stops are allowed",
                            i + 1, isprint(c) ? c : '?');
        size_t start = i;
        while (isalpha((unsigned char)text[i])) i++;
        size_t len = i - start;
        if (ps->n == MAX_TOKENS)
            return tdm_fail(ps->st, TDM_ERR_INVALID_ARG, "caption: more than %d words", MAX_TOKENS);
        char *t = ps->tok[ps->n];
        size_t keep = len < MAX_TOKEN_LEN - 1 ? len : MAX_TOKEN_LEN - 1;
        for (size_t k = 0; k < keep; k++) t[k] = (char)tolower((unsigned char)text[start + k]);
        t[keep] = '\0';
        if (len != keep || !in_vocabulary(t))
            return tdm_fail(ps->st, TDM_ERR_INVALID_ARG,
                            "caption word %d '%.*s' is not in the shapes-world vocabulary (see docs/WORLD.md)",
                            ps->n + 1, (int)(len < 40 ? len : 40), text + start);
        ps->n++;
    }
    if (ps->n == 0) return tdm_fail(ps->st, TDM_ERR_INVALID_ARG, "caption is empty");
    return TDM_OK;
}

static const char *peek(const parser *ps, int k) { return ps->p + k < ps->n ? ps->tok[ps->p + k] : ""; }
static int at(const parser *ps, int k, const char *w) { return strcmp(peek(ps, k), w) == 0; }

static tdm_code expected(parser *ps, const char *what) {
    if (ps->p >= ps->n)
        return tdm_fail(ps->st, TDM_ERR_INVALID_ARG, "caption ends after word %d: expected %s", ps->n, what);
    return tdm_fail(ps->st, TDM_ERR_INVALID_ARG, "caption word %d '%s': expected %s", ps->p + 1, ps->tok[ps->p], what);
}

static tdm_code expect(parser *ps, const char *w, const char *what) {
    if (!at(ps, 0, w)) return expected(ps, what);
    ps->p++;
    return TDM_OK;
}

static int word_index(const char *w, const char *(*name)(int), int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(w, name(i)) == 0) return i;
    return -1;
}

static int colour_word(const char *w) { return strcmp(w, "grey") == 0 ? TDM_GRAY : tdm_colour_from_name(w); }
static int shape_word(const char *w) { return word_index(w, tdm_shape_name, TDM_N_SHAPES); }
static int size_word(const char *w) { return word_index(w, tdm_size_name, TDM_N_SIZES); }

#define SHAPE_WORDS "a shape (circle, square or triangle)"

/* np := [a|an|the] {size | colour} shape [size]   (each attribute at most once) */
static tdm_code parse_np(parser *ps, tdm_world_obj_query *o) {
    o->colour = o->shape = o->size = o->position = TDM_ANY;
    if (at(ps, 0, "a") || at(ps, 0, "an") || at(ps, 0, "the")) ps->p++;
    for (;;) {
        int c = colour_word(peek(ps, 0)), s = size_word(peek(ps, 0));
        if (c >= 0) {
            if (o->colour != TDM_ANY) return expected(ps, SHAPE_WORDS " (the colour is already given)");
            o->colour = c;
        } else if (s >= 0) {
            if (o->size != TDM_ANY) return expected(ps, SHAPE_WORDS " (the size is already given)");
            o->size = s;
        } else {
            break;
        }
        ps->p++;
    }
    o->shape = shape_word(peek(ps, 0));
    if (o->shape < 0) return expected(ps, o->colour == TDM_ANY && o->size == TDM_ANY ? "an object (e.g. 'a red circle')"
                                                                                     : SHAPE_WORDS);
    ps->p++;
    int s = size_word(peek(ps, 0));
    if (s >= 0) {
        if (o->size != TDM_ANY) return expected(ps, "a position, a relation or the end (the size is already given)");
        o->size = s;
        ps->p++;
    }
    return TDM_OK;
}

static int pos_starts(const parser *ps) {
    return (at(ps, 0, "on") || at(ps, 0, "at") || at(ps, 0, "in")) && at(ps, 1, "the");
}

/* pos := (on|at|in) the (left|right|top|bottom|centre|center|middle) */
static tdm_code parse_pos(parser *ps, int *pos) {
    ps->p += 2;
    const char *w = peek(ps, 0);
    static const char *const place[] = {"left", "right", "top", "bottom", "centre", "center", "middle"};
    static const int value[] = {TDM_POS_LEFT,   TDM_POS_RIGHT,  TDM_POS_TOP,   TDM_POS_BOTTOM,
                                TDM_POS_CENTRE, TDM_POS_CENTRE, TDM_POS_CENTRE};
    for (int i = 0; i < 7; i++)
        if (strcmp(w, place[i]) == 0) {
            *pos = value[i];
            ps->p++;
            return TDM_OK;
        }
    return expected(ps, "a place (left, right, top, bottom, centre or middle)");
}

static int rel_starts(const parser *ps) {
    return at(ps, 0, "above") || at(ps, 0, "below") || at(ps, 0, "to") || at(ps, 0, "left") || at(ps, 0, "right");
}

/* rel := [to the] (left|right) of | above | below */
static tdm_code parse_rel(parser *ps, int *rel) {
    if (at(ps, 0, "above") || at(ps, 0, "below")) {
        *rel = at(ps, 0, "above") ? TDM_REL_ABOVE : TDM_REL_BELOW;
        ps->p++;
        return TDM_OK;
    }
    if (at(ps, 0, "to")) {
        ps->p++;
        TDM_TRY(expect(ps, "the", "'the' (as in 'to the left of')"));
    }
    if (!at(ps, 0, "left") && !at(ps, 0, "right")) return expected(ps, "'left' or 'right' (as in 'to the left of')");
    *rel = at(ps, 0, "left") ? TDM_REL_LEFT_OF : TDM_REL_RIGHT_OF;
    ps->p++;
    return expect(ps, "of", "'of' (as in 'to the left of')");
}

/* bg := (on|against|with) (a|an) colour background | colour background */
static int bg_starts(const parser *ps, int prefix) {
    if ((at(ps, 0, "on") || at(ps, 0, "against") || (!prefix && at(ps, 0, "with"))) &&
        (at(ps, 1, "a") || at(ps, 1, "an")))
        return 1;
    return !prefix && colour_word(peek(ps, 0)) >= 0 && at(ps, 1, "background");
}

static tdm_code parse_bg(parser *ps, int *colour) {
    if (colour_word(peek(ps, 0)) < 0) ps->p += 2; /* preposition + article */
    *colour = colour_word(peek(ps, 0));
    if (*colour < 0) return expected(ps, "a colour (of the background)");
    ps->p++;
    return expect(ps, "background", "'background'");
}

/* caption := [bg] ( pos np | [there is] np [[is] (pos | rel np)] ) [bg]   (one background phrase) */
tdm_code tdm_world_parse(const char *caption, tdm_world_query *q, tdm_status *st) {
    parser ps;
    ps.st = st;
    memset(q, 0, sizeof *q);
    q->relation = q->background = TDM_ANY;
    q->obj[1].colour = q->obj[1].shape = q->obj[1].size = q->obj[1].position = TDM_ANY;
    if (!caption) return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption is missing");
    TDM_TRY(tokenize(&ps, caption));
    if (bg_starts(&ps, 1)) TDM_TRY(parse_bg(&ps, &q->background));
    q->n_objects = 1;
    if (pos_starts(&ps)) {
        int pos;
        TDM_TRY(parse_pos(&ps, &pos));
        TDM_TRY(parse_np(&ps, &q->obj[0]));
        q->obj[0].position = pos;
    } else {
        if (at(&ps, 0, "there")) {
            ps.p++;
            TDM_TRY(expect(&ps, "is", "'is' (as in 'there is a red circle')"));
        }
        TDM_TRY(parse_np(&ps, &q->obj[0]));
        int copula = at(&ps, 0, "is");
        if (copula) ps.p++;
        if (pos_starts(&ps)) {
            TDM_TRY(parse_pos(&ps, &q->obj[0].position));
        } else if (rel_starts(&ps)) {
            TDM_TRY(parse_rel(&ps, &q->relation));
            TDM_TRY(parse_np(&ps, &q->obj[1]));
            q->n_objects = 2;
        } else if (copula) {
            return expected(&ps, "a position (e.g. 'on the left') or a relation (e.g. 'above a blue square')");
        }
    }
    if (q->background == TDM_ANY && bg_starts(&ps, 0)) TDM_TRY(parse_bg(&ps, &q->background));
    if (ps.p < ps.n)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "caption word %d '%s': unexpected after a complete caption", ps.p + 1,
                        ps.tok[ps.p]);
    return TDM_OK;
}
