/* Adaptive SDEdit image editing: internals (public API: the "edit" block of tandem.h; docs/EDITING.md).
 *
 *  edit.c             the size rule, the edit input of an adaptive run (the source fitted to the rule), the
 *                     one-model baselines (tdm_edit), metadata, tdm_edit_measure
 *  edit_similarity.c  CLIP image-embedding cosine (tdm_image_similarity)
 *  eval_edit.c        tandem edit-eval: the shapes-world pairs (world/edit_pairs.h), resumable log
 *  eval_edit_report.c results.jsonl and table.md of the edit evaluation
 *
 * An edit is an adaptive run whose stage params carry init_image (adaptive.c, stage_params): the student's
 * and the teacher's img2img start from the VAE-encoded source (tdm_gen_execute start PIXELS) with the
 * generate streams (2^32 noise added, 2^32 + 1 posterior sample), so the student's edit is tdm_generate's
 * img2img bit for bit and the teacher's regeneration is the teacher's own img2img from the same noise. The
 * refinement of the student's edit is the text-to-image refinement unchanged. */
#ifndef TDM_PIPELINE_EDIT_H
#define TDM_PIPELINE_EDIT_H

#include <cjson/cJSON.h>

#include "pipeline/sd_model.h"
#include "tandem.h"

/* Where the size rule takes the source from and what it makes. */
typedef struct tdm_edit_fit {
    int width, height;           /* the size the model runs at */
    int crop_x, crop_y, crop_w, crop_h; /* the source region used (the whole image when kept) */
    int resized;                 /* 0: kept as is; 1: cropped and / or resized */
} tdm_edit_fit;

/* The size rule (tandem.h tdm_edit_size) for a model: req_w / req_h > 0 (both) force the size. */
tdm_code tdm_edit_fit_make(const tdm_sd_model *m, int src_w, int src_h, int req_w, int req_h, tdm_edit_fit *fit,
                           tdm_status *st);
/* src fitted: crop then Lanczos resize (a copy when kept). */
tdm_code tdm_edit_fit_apply(const tdm_image *src, const tdm_edit_fit *fit, tdm_image *out, tdm_status *st);

/* The edit input of an adaptive run: p with init_image replaced by the fitted source. */
typedef struct tdm_edit_input {
    int active;                 /* p->init_image was set */
    tdm_adaptive_params params; /* p; init_image = &image, width / height = its size */
    tdm_image image;            /* the fitted source [height, width, 3] */
    int source_width, source_height;
    tdm_edit_fit fit;
    unsigned char *region;      /* p->mask_image fitted and thresholded [height, width] (1 = edit), with the
                                   drag-moves' old and new places; or NULL */
    unsigned char *placed;      /* drag-moves: the pixels the moved objects were pasted on [height, width], or NULL */
} tdm_edit_input;

/* e->active = 0 (nothing allocated) without p->init_image. The struct must not move after this call
 * (params.init_image points into it). */
tdm_code tdm_edit_input_make(const tdm_model *student, const tdm_adaptive_params *p, tdm_edit_input *e,
                             tdm_status *st);
void tdm_edit_input_free(tdm_edit_input *e);
/* Masked editing for an active edit input: the given region (e->region, from mask_image) or the region
 * estimated with the student's UNet (e->params.source_prompt) into su->mask; nothing without either. */
struct tdm_adaptive_setup;
tdm_code tdm_edit_setup_mask(struct tdm_adaptive_setup *su, const tdm_edit_input *e, tdm_status *st);

/* Drag-moves (edit_drag.c) on img in place, drags in img's pixels: the composite the edit starts from;
 * region [H, W] (0/1) gains the old and new places of the objects, placed [H, W] receives the pixels the pastes
 * wrote (1). Errors name the drag (outside the image, a point on the background). */
tdm_code tdm_edit_drags_apply(tdm_image *img, const tdm_edit_drag *drags, int n, unsigned char *region,
                              unsigned char *placed, tdm_status *st);

/* Adds "edit": {mode, method, source_width, source_height, width, height, strength, fit, crop[, mask]} to a
 * metadata object (mask: the masked-editing region's settings and figures, when mask is active). */
struct tdm_edit_mask_info;
void tdm_edit_metadata_add(cJSON *o, const tdm_edit_input *e, const char *mode, const struct tdm_edit_mask_info *mask);

#endif
