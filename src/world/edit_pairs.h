/* Shapes-world editing: source / target pairs for the edit evaluation (tandem edit-eval, docs/EDITING.md) and
 * the preservation check (which attributes an edit kept).
 *
 * Pair i of seed k (a pure function of (k, i)):
 *   source  = test-split scene i of seed k (tdm_world_sample(k, TDM_SPLIT_TEST, i)), rendered;
 *   edit    = ONE attribute changed, kind drawn from the stream (k, i | 2^61): object colour (35%), position
 *             (35%; one object: another thirds cell; two objects: the relation inverted, the objects swap
 *             sides), object size (15%; small <-> large), background (15%); the new value uniform among the
 *             valid ones (object colours differ from the background and from the other object; a background
 *             differs from every object colour). Held-out rule: the target scene must also be a test-split
 *             combination, so neither the source nor the target combination was ever trained on; kinds
 *             without a valid value are skipped (next kind in the order colour, position, size,
 *             background); a scene with no valid edit is replaced by scene i + 2^40 a (a = 1, 2, ...).
 *   target caption = every attribute of the target scene stated (colour, shape, size, position or relation,
 *             background) with a paraphrase from the stream (k, i | 2^61 | 2^60): SDEdit needs a description
 *             of the wanted image, not an instruction; the instruction ("make the circle blue", "move the
 *             square to the right") is kept for the record.
 *
 * Preservation: the "keep query" states every attribute of the source (tdm_world_scene_query: colour, shape,
 * size per object, the position of a single object, the relation of two, the background) but the edited
 * ones (left open); the edit preserves the source when the checker finds all of them (and the object count) in the edit. */
#ifndef TDM_WORLD_EDIT_PAIRS_H
#define TDM_WORLD_EDIT_PAIRS_H

#include <stdint.h>

#include "world/caption.h"
#include "world/checker.h"

typedef enum tdm_world_edit_kind {
    TDM_WORLD_EDIT_COLOUR = 0,
    TDM_WORLD_EDIT_POSITION,
    TDM_WORLD_EDIT_SIZE,
    TDM_WORLD_EDIT_BACKGROUND,
    TDM_WORLD_N_EDIT_KINDS
} tdm_world_edit_kind;

const char *tdm_world_edit_kind_name(int kind); /* "colour", "position", "size", "background" */

typedef struct tdm_world_edit_pair {
    uint64_t scene_index;        /* test-split index of the source (i, or i + 2^40 a after a replacement) */
    tdm_world_scene source, target;
    int kind;                    /* tdm_world_edit_kind */
    int object;                  /* the edited object's index in the scene (-1: background) */
    int from, to;                /* old and new value (colour, position, size or relation for two objects) */
    tdm_world_query target_query; /* every attribute of the target scene (what the caption states) */
    tdm_world_query keep;        /* the source's attributes but the edited ones (preservation) */
    char caption[TDM_CAPTION_MAX];        /* target caption (the prompt) */
    char source_caption[TDM_CAPTION_MAX]; /* full caption of the source, with the caption's paraphrase */
    char instruction[128];       /* "make the circle blue" */
    int held_out;                /* the source or the target holds a held-out (colour, shape) pair */
} tdm_world_edit_pair;

/* Pair `index` of seed `seed` (see above). */
tdm_code tdm_world_edit_pair_make(uint64_t seed, uint64_t index, tdm_world_edit_pair *out, tdm_status *st);

/* Infers the keep query from an analysed source and a target caption (tandem edit on any shapes image):
 * the source's detected attributes (the two largest detections), minus those the target states and the
 * source does not satisfy (the attributes the prompt asks to change). *changed receives their names
 * ("object1.colour", "relation", ...; comma-separated). TDM_ERR_INVALID_ARG when the source has no object
 * or the target asks for another object count (preservation is then not defined). */
tdm_code tdm_world_keep_query_infer(const tdm_world_analysis *source, const tdm_world_query *target,
                                    tdm_world_query *keep, char *changed, size_t changed_size, tdm_status *st);

/* Preservation of an edit: the keep query checked on the edit's analysis. *kept / *checked count the kept
 * and the checked attributes (the object count included); lost (may be NULL) receives the names of the
 * attributes not kept (comma-separated). Returns 1 when all are kept. */
int tdm_world_preserved(const tdm_world_query *keep, const tdm_world_analysis *edit, int *kept, int *checked,
                        char *lost, size_t lost_size);

#endif
