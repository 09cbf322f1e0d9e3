/* The "shapes world": procedurally drawn 64x64 scenes (a flat background and one or two flat-coloured
 * shapes) with captions from a small fixed grammar, train / val / test splits with held-out attribute
 * combinations, and a ground-truth checker. Everything is a pure function of (seed, index).
 * docs/WORLD.md describes the world, the grammar and the checker.
 *
 * Coordinates are relative: x, y in [0,1] from the top-left corner, lengths in units of min(W, H), so a
 * scene renders at any size. Depends only on src/base and the C library. */
#ifndef TDM_WORLD_WORLD_H
#define TDM_WORLD_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define TDM_ANY (-1) /* an attribute a query leaves open */

typedef enum tdm_colour {
    TDM_RED = 0,
    TDM_GREEN,
    TDM_BLUE,
    TDM_YELLOW,
    TDM_PURPLE,
    TDM_ORANGE,
    TDM_PINK,
    TDM_BROWN,
    TDM_WHITE,
    TDM_BLACK,
    TDM_GRAY, /* background only */
    TDM_N_COLOURS
} tdm_colour;

typedef enum tdm_shape { TDM_CIRCLE = 0, TDM_SQUARE, TDM_TRIANGLE, TDM_N_SHAPES } tdm_shape;
typedef enum tdm_size { TDM_SMALL = 0, TDM_LARGE, TDM_N_SIZES } tdm_size;

/* Absolute position: the cell of a 3x3 grid (thirds) holding the object's centre. TDM_POS_NONE: a
 * corner cell (never sampled; reported by the checker). */
typedef enum tdm_position {
    TDM_POS_LEFT = 0,
    TDM_POS_RIGHT,
    TDM_POS_TOP,
    TDM_POS_BOTTOM,
    TDM_POS_CENTRE,
    TDM_N_POSITIONS,
    TDM_POS_NONE = TDM_N_POSITIONS
} tdm_position;

/* Relation "object 0 REL object 1". */
typedef enum tdm_relation {
    TDM_REL_LEFT_OF = 0,
    TDM_REL_RIGHT_OF,
    TDM_REL_ABOVE,
    TDM_REL_BELOW,
    TDM_N_RELATIONS
} tdm_relation;

typedef enum tdm_split { TDM_SPLIT_TRAIN = 0, TDM_SPLIT_VAL, TDM_SPLIT_TEST, TDM_N_SPLITS } tdm_split;

/* Names as used in captions and JSON ("red", "circle", "small", "left", "to the left of", "train"). */
const char *tdm_colour_name(int c);
const char *tdm_shape_name(int s);
const char *tdm_size_name(int s);
const char *tdm_position_name(int p);
const char *tdm_relation_name(int r);
const char *tdm_split_name(int s);
/* Index of a name, or -1. */
int tdm_colour_from_name(const char *s);
int tdm_split_from_name(const char *s);
/* sRGB of a named colour: rgb[3]. */
void tdm_colour_rgb(int c, uint8_t rgb[3]);
/* The relation seen from the other object: left of <-> right of, above <-> below. */
int tdm_relation_inverse(int r);

/* Object colours (every colour but gray) and background colours (white, black, gray). */
int tdm_colour_is_object(int c);
int tdm_colour_is_background(int c);

/* Size ranges of the half-extent (radius / half side / half base), in units of min(W, H). */
#define TDM_WORLD_SMALL_MIN 0.10f
#define TDM_WORLD_SMALL_MAX 0.12f
#define TDM_WORLD_LARGE_MIN 0.19f
#define TDM_WORLD_LARGE_MAX 0.22f

typedef struct tdm_world_object {
    int shape, colour, size;
    int position; /* tdm_position of the centre (one-object scenes: as sampled) */
    float cx, cy; /* centre of the bounding box, relative to width / height */
    float extent; /* half-extent in units of min(W, H) */
} tdm_world_object;

typedef struct tdm_world_scene {
    int background;
    int n_objects; /* 1 or 2 */
    tdm_world_object obj[2];
    int relation; /* two objects: obj[0] REL obj[1]; one object: TDM_ANY */
} tdm_world_scene;

/* Scene number `index` of the unfiltered stream of seed `seed` (any split). */
void tdm_world_scene_sample(uint64_t seed, uint64_t index, tdm_world_scene *sc);

/* The split of a scene: scenes holding a held-out (colour, shape) pair go to test; the others by a
 * hash of their attribute combination (80% train, 10% val, 10% test). */
int tdm_world_split(const tdm_world_scene *sc);
/* 1 when (colour, shape) is one of the held-out pairs, never seen in training. */
int tdm_world_pair_held_out(int colour, int shape);

/* Scene number `index` of split `split` under seed `seed`: the first scene of the streams
 * (index * 1024 + j, j = 0, 1, ...) that falls in the split. */
tdm_code tdm_world_sample(uint64_t seed, int split, uint64_t index, tdm_world_scene *sc, tdm_status *st);

/* Renders the scene as RGB8 [height, width, 3], anti-aliased with supersample x supersample samples per
 * pixel (averaged in sRGB), and, when mask is non-NULL, the object-id mask [height, width] (0 =
 * background, k = object k-1; tested at pixel centres, no anti-aliasing). */
tdm_code tdm_world_render(const tdm_world_scene *sc, int width, int height, int supersample, uint8_t *rgb,
                          uint8_t *mask, tdm_status *st);

/* Small deterministic stream of uniforms: value `offset` of (seed, stream) under tdm_randu. */
typedef struct tdm_world_rng {
    uint64_t seed, stream, offset;
} tdm_world_rng;
float tdm_world_rng_uniform(tdm_world_rng *r);
/* Integer in [0, n). */
int tdm_world_rng_int(tdm_world_rng *r, int n);

#endif
