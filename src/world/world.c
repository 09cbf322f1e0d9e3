/* Shapes world: names, palette, scene sampling and splits (see world.h, docs/WORLD.md). */
#include "world/world.h"

#include <string.h>

#include "base/rng.h"

/* Palette (sRGB). Chosen so that every pair is >= 80 apart and so that the anti-aliased edge of an
 * object on any background never forms a flat region near another named colour. */
static const uint8_t k_palette[TDM_N_COLOURS][3] = {
    {220, 30, 30},   /* red */
    {30, 160, 50},   /* green */
    {30, 70, 220},   /* blue */
    {245, 215, 30},  /* yellow */
    {130, 50, 180},  /* purple */
    {245, 135, 20},  /* orange */
    {245, 130, 200}, /* pink */
    {120, 70, 30},   /* brown */
    {245, 245, 245}, /* white */
    {15, 15, 15},    /* black */
    {128, 128, 128}, /* gray */
};
static const char *const k_colour_names[TDM_N_COLOURS] = {"red",  "green", "blue",  "yellow", "purple", "orange",
                                                          "pink", "brown", "white", "black",  "gray"};
static const char *const k_shape_names[TDM_N_SHAPES] = {"circle", "square", "triangle"};
static const char *const k_size_names[TDM_N_SIZES] = {"small", "large"};
static const char *const k_position_names[TDM_N_POSITIONS + 1] = {"left", "right", "top", "bottom", "centre",
                                                                  "corner"};
static const char *const k_relation_names[TDM_N_RELATIONS] = {"to the left of", "to the right of", "above",
                                                              "below"};
static const char *const k_split_names[TDM_N_SPLITS] = {"train", "val", "test"};

/* Held-out (colour, shape) pairs: never in train or val, always test. */
static const int k_held_out[][2] = {
    {TDM_PURPLE, TDM_TRIANGLE},
    {TDM_ORANGE, TDM_CIRCLE},
    {TDM_GREEN, TDM_SQUARE},
};

static const char *name_of(const char *const *names, int n, int i) { return i >= 0 && i < n ? names[i] : "any"; }

const char *tdm_colour_name(int c) { return name_of(k_colour_names, TDM_N_COLOURS, c); }
const char *tdm_shape_name(int s) { return name_of(k_shape_names, TDM_N_SHAPES, s); }
const char *tdm_size_name(int s) { return name_of(k_size_names, TDM_N_SIZES, s); }
const char *tdm_position_name(int p) { return name_of(k_position_names, TDM_N_POSITIONS + 1, p); }
const char *tdm_relation_name(int r) { return name_of(k_relation_names, TDM_N_RELATIONS, r); }
const char *tdm_split_name(int s) { return name_of(k_split_names, TDM_N_SPLITS, s); }

int tdm_colour_from_name(const char *s) {
    for (int i = 0; i < TDM_N_COLOURS; i++)
        if (strcmp(s, k_colour_names[i]) == 0) return i;
    return -1;
}

int tdm_split_from_name(const char *s) {
    for (int i = 0; i < TDM_N_SPLITS; i++)
        if (strcmp(s, k_split_names[i]) == 0) return i;
    if (strcmp(s, "validation") == 0) return TDM_SPLIT_VAL;
    return -1;
}

void tdm_colour_rgb(int c, uint8_t rgb[3]) {
    if (c < 0 || c >= TDM_N_COLOURS) c = TDM_GRAY;
    memcpy(rgb, k_palette[c], 3);
}

int tdm_relation_inverse(int r) {
    switch (r) {
    case TDM_REL_LEFT_OF: return TDM_REL_RIGHT_OF;
    case TDM_REL_RIGHT_OF: return TDM_REL_LEFT_OF;
    case TDM_REL_ABOVE: return TDM_REL_BELOW;
    case TDM_REL_BELOW: return TDM_REL_ABOVE;
    default: return r;
    }
}

int tdm_colour_is_object(int c) { return c >= 0 && c < TDM_N_COLOURS && c != TDM_GRAY; }
int tdm_colour_is_background(int c) { return c == TDM_WHITE || c == TDM_BLACK || c == TDM_GRAY; }

int tdm_world_pair_held_out(int colour, int shape) {
    for (size_t i = 0; i < sizeof k_held_out / sizeof k_held_out[0]; i++)
        if (k_held_out[i][0] == colour && k_held_out[i][1] == shape) return 1;
    return 0;
}

/* ---- random stream ----------------------------------------------------------------------------- */

float tdm_world_rng_uniform(tdm_world_rng *r) {
    float u;
    tdm_randu(&u, 1, r->seed, r->stream, r->offset++);
    return u;
}

int tdm_world_rng_int(tdm_world_rng *r, int n) {
    int k = (int)(tdm_world_rng_uniform(r) * (float)n);
    return k < n ? k : n - 1;
}

static float rng_range(tdm_world_rng *r, float lo, float hi) {
    return hi <= lo ? lo : lo + (hi - lo) * tdm_world_rng_uniform(r);
}

/* ---- sampling ---------------------------------------------------------------------------------- */

#define EDGE_MARGIN 0.02f /* gap between an object and the image border */
#define CELL_MARGIN 0.03f /* distance of a sampled centre from the thirds lines */
#define MIN_GAP 0.06f     /* gap between the facing edges of two objects */

static float sample_extent(tdm_world_rng *r, int size) {
    return size == TDM_SMALL ? rng_range(r, TDM_WORLD_SMALL_MIN, TDM_WORLD_SMALL_MAX)
                             : rng_range(r, TDM_WORLD_LARGE_MIN, TDM_WORLD_LARGE_MAX);
}

/* Centre coordinate inside third `cell` (0, 1, 2) keeping an object of half-extent e inside the image. */
static float sample_in_cell(tdm_world_rng *r, int cell, float e) {
    float lo = (float)cell / 3.0f + CELL_MARGIN, hi = (float)(cell + 1) / 3.0f - CELL_MARGIN;
    if (lo < e + EDGE_MARGIN) lo = e + EDGE_MARGIN;
    if (hi > 1.0f - e - EDGE_MARGIN) hi = 1.0f - e - EDGE_MARGIN;
    return rng_range(r, lo, hi);
}

static void place_single(tdm_world_rng *r, tdm_world_object *o) {
    static const int col[TDM_N_POSITIONS] = {0, 2, 1, 1, 1}, row[TDM_N_POSITIONS] = {1, 1, 0, 2, 1};
    o->cx = sample_in_cell(r, col[o->position], o->extent);
    o->cy = sample_in_cell(r, row[o->position], o->extent);
}

/* Places a (first) and b (second) along one axis: a before b (smaller coordinate), gap >= MIN_GAP, and
 * on the other axis near a common line with a small offset, so the relation is unambiguous. */
static void place_pair(tdm_world_rng *r, int horizontal, tdm_world_object *a, tdm_world_object *b) {
    float ea = a->extent, eb = b->extent;
    float room = 1.0f - 2.0f * EDGE_MARGIN - 2.0f * ea - 2.0f * eb; /* >= 0.06 for the sizes above */
    float gap_max = room < 0.40f ? room : 0.40f;
    float gap = rng_range(r, MIN_GAP, gap_max);
    float start = rng_range(r, EDGE_MARGIN, 1.0f - EDGE_MARGIN - (2.0f * ea + 2.0f * eb + gap));
    float pa = start + ea, pb = start + 2.0f * ea + gap + eb;
    float emax = ea > eb ? ea : eb;
    float lo = emax + EDGE_MARGIN + 0.05f, hi = 1.0f - emax - EDGE_MARGIN - 0.05f;
    if (lo < 0.30f) lo = 0.30f;
    if (hi > 0.70f) hi = 0.70f;
    float line = rng_range(r, lo, hi), off = rng_range(r, -0.05f, 0.05f);
    float qa = line + off, qb = line - off;
    if (horizontal) {
        a->cx = pa, b->cx = pb, a->cy = qa, b->cy = qb;
    } else {
        a->cy = pa, b->cy = pb, a->cx = qa, b->cx = qb;
    }
}

static int cell_of(float v) { return v < 1.0f / 3.0f ? 0 : v < 2.0f / 3.0f ? 1 : 2; }

static int position_of(float cx, float cy) {
    int c = cell_of(cx), w = cell_of(cy);
    if (w == 1) return c == 0 ? TDM_POS_LEFT : c == 2 ? TDM_POS_RIGHT : TDM_POS_CENTRE;
    if (c == 1) return w == 0 ? TDM_POS_TOP : TDM_POS_BOTTOM;
    return TDM_POS_NONE;
}

void tdm_world_scene_sample(uint64_t seed, uint64_t index, tdm_world_scene *sc) {
    tdm_world_rng r = {seed, index, 0};
    memset(sc, 0, sizeof *sc);
    static const int bgs[3] = {TDM_WHITE, TDM_BLACK, TDM_GRAY};
    sc->background = bgs[tdm_world_rng_int(&r, 3)];
    sc->n_objects = tdm_world_rng_uniform(&r) < 0.5f ? 1 : 2;
    sc->relation = TDM_ANY;
    for (int i = 0; i < sc->n_objects; i++) {
        tdm_world_object *o = &sc->obj[i];
        /* object colour: any object colour other than the background and the other object's */
        int choices[TDM_N_COLOURS], n = 0;
        for (int c = 0; c < TDM_N_COLOURS; c++)
            if (tdm_colour_is_object(c) && c != sc->background && (i == 0 || c != sc->obj[0].colour))
                choices[n++] = c;
        o->colour = choices[tdm_world_rng_int(&r, n)];
        o->shape = tdm_world_rng_int(&r, TDM_N_SHAPES);
        o->size = tdm_world_rng_int(&r, TDM_N_SIZES);
        o->extent = sample_extent(&r, o->size);
    }
    if (sc->n_objects == 1) {
        sc->obj[0].position = tdm_world_rng_int(&r, TDM_N_POSITIONS);
        place_single(&r, &sc->obj[0]);
    } else {
        sc->relation = tdm_world_rng_int(&r, TDM_N_RELATIONS);
        tdm_world_object *a = &sc->obj[0], *b = &sc->obj[1];
        switch (sc->relation) {
        case TDM_REL_LEFT_OF: place_pair(&r, 1, a, b); break;
        case TDM_REL_RIGHT_OF: place_pair(&r, 1, b, a); break;
        case TDM_REL_ABOVE: place_pair(&r, 0, a, b); break;
        default: place_pair(&r, 0, b, a); break;
        }
        for (int i = 0; i < 2; i++) sc->obj[i].position = position_of(sc->obj[i].cx, sc->obj[i].cy);
    }
}

/* ---- splits ------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t mix(uint64_t h, int v) { return splitmix64(h ^ (uint64_t)(uint32_t)(v + 1)); }

int tdm_world_split(const tdm_world_scene *sc) {
    for (int i = 0; i < sc->n_objects; i++)
        if (tdm_world_pair_held_out(sc->obj[i].colour, sc->obj[i].shape)) return TDM_SPLIT_TEST;
    /* The attribute combination a caption can state, in canonical order (relation left of / above). */
    const tdm_world_object *o[2] = {&sc->obj[0], &sc->obj[1]};
    int rel = sc->relation;
    if (sc->n_objects == 2 && (rel == TDM_REL_RIGHT_OF || rel == TDM_REL_BELOW)) {
        o[0] = &sc->obj[1], o[1] = &sc->obj[0];
        rel = tdm_relation_inverse(rel);
    }
    uint64_t h = mix(0x5348415045535744ull /* "SHAPESWD" */, sc->n_objects);
    h = mix(h, sc->background);
    for (int i = 0; i < sc->n_objects; i++) {
        h = mix(h, o[i]->colour);
        h = mix(h, o[i]->shape);
        h = mix(h, o[i]->size);
        h = mix(h, sc->n_objects == 1 ? o[i]->position : -1);
    }
    h = mix(h, sc->n_objects == 2 ? rel : -1);
    int pct = (int)(h % 100);
    return pct < 80 ? TDM_SPLIT_TRAIN : pct < 90 ? TDM_SPLIT_VAL : TDM_SPLIT_TEST;
}

tdm_code tdm_world_sample(uint64_t seed, int split, uint64_t index, tdm_world_scene *sc, tdm_status *st) {
    if (split < 0 || split >= TDM_N_SPLITS) return tdm_fail(st, TDM_ERR_INVALID_ARG, "world: invalid split %d", split);
    if (index >= (1ull << 50))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "world: sample index %llu is over 2^50", (unsigned long long)index);
    for (uint64_t j = 0; j < 1024; j++) {
        tdm_world_scene_sample(seed, index * 1024 + j, sc);
        if (tdm_world_split(sc) == split) return TDM_OK;
    }
    return tdm_fail(st, TDM_ERR_INTERNAL, "world: no %s scene among 1024 draws for index %llu", tdm_split_name(split),
                    (unsigned long long)index);
}
