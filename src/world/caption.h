/* Shapes world captions: a structured query (what a caption states; TDM_ANY = left open), caption text
 * generation with paraphrases, and the parser from text back to the query. The grammar and the
 * vocabulary are in docs/WORLD.md. */
#ifndef TDM_WORLD_CAPTION_H
#define TDM_WORLD_CAPTION_H

#include "world/world.h"

typedef struct tdm_world_obj_query {
    int colour, shape, size, position; /* each a value or TDM_ANY */
} tdm_world_obj_query;

/* Objects in caption order; relation: obj[0] REL obj[1] (two objects), TDM_ANY otherwise. */
typedef struct tdm_world_query {
    int n_objects; /* 1 or 2 */
    tdm_world_obj_query obj[2];
    int relation;
    int background;
} tdm_world_query;

#define TDM_CAPTION_MAX 256 /* longest generated caption, with its NUL */

/* The query a caption of the scene states: colour and shape always; position (one object) or
 * relation (two objects) always; each size with probability 0.6 and the background with probability
 * 0.5, drawn from r. */
void tdm_world_describe(const tdm_world_scene *sc, tdm_world_rng *r, tdm_world_query *q);

/* The full query of a scene (every attribute stated). */
void tdm_world_scene_query(const tdm_world_scene *sc, tdm_world_query *q);

/* Caption text for q with a paraphrase (word order, phrasing, object order of two-object captions)
 * drawn from r. Every object needs a shape. buf receives at most bufsz bytes. */
tdm_code tdm_world_caption_text(const tdm_world_query *q, tdm_world_rng *r, char *buf, size_t bufsz, tdm_status *st);

/* Caption number `index` of seed `seed` for the scene: describe + text from the stream
 * (seed, index | 2^62). q may be NULL. */
tdm_code tdm_world_caption(const tdm_world_scene *sc, uint64_t seed, uint64_t index, char *buf, size_t bufsz,
                           tdm_world_query *q, tdm_status *st);

/* Parses a caption of the grammar (case-insensitive; commas and full stops are ignored). An unknown
 * word or a sentence outside the grammar is TDM_ERR_INVALID_ARG naming the word and its position. */
tdm_code tdm_world_parse(const char *caption, tdm_world_query *q, tdm_status *st);

/* Same meaning, canonical form: two-object queries ordered so that the relation is "to the left of" or
 * "above". */
void tdm_world_query_canonical(const tdm_world_query *q, tdm_world_query *out);
/* 1 when a and b state the same thing (compared in canonical form). */
int tdm_world_query_equal(const tdm_world_query *a, const tdm_world_query *b);

#endif
