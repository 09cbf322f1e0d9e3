/* Image helpers of the preprocessing check, shared with the ImageReward check. */
#ifndef TDM_PIPELINE_CHECK_PREPROCESSING_H
#define TDM_PIPELINE_CHECK_PREPROCESSING_H

#include "io/image.h"
#include "pipeline/check.h"

/* io tensor `name` ([H, W, 3] uint8 values stored as float) -> RGB8 image (caller frees). */
tdm_code tdm_check_load_rgb8(tdm_check *c, const char *name, tdm_image *img, tdm_status *st);
/* Exact comparison (shape and values) of an RGB8 image with io tensor `name`; records PASS/FAIL. */
tdm_code tdm_check_image_exact(tdm_check *c, const char *name, const tdm_image *img, tdm_status *st);

#endif
