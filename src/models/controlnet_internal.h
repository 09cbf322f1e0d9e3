/* ControlNet internals shared by controlnet_load.c (config, names, weights) and controlnet.c (forward). */
#ifndef TDM_MODELS_CONTROLNET_INTERNAL_H
#define TDM_MODELS_CONTROLNET_INTERNAL_H

#include "models/controlnet.h"
#include "models/unet_internal.h"

struct tdm_controlnet {
    tdm_controlnet_config cfg;
    /* The encoder as a partial UNet (conv_in, time/add embedding, down levels, mid block; no up path):
     * it owns the weight store every tensor below points into, and runs the UNet's own blocks. */
    tdm_unet *enc;
    tdm_tensor ce_in_w, ce_in_b;     /* controlnet_cond_embedding.conv_in [c0, cond_ch, 3, 3], [c0] */
    tdm_tensor ce_w[2 * (TDM_CONTROLNET_MAX_COND_LEVELS - 1)]; /* blocks.(2k) [ck, ck, 3, 3]; (2k+1) [ck+1, ck, 3, 3] */
    tdm_tensor ce_b[2 * (TDM_CONTROLNET_MAX_COND_LEVELS - 1)];
    tdm_tensor ce_out_w, ce_out_b;   /* conv_out [C0, c_K-1, 3, 3], [C0] */
    int n_down;                      /* down residuals */
    int64_t res_ch[TDM_CONTROLNET_MAX_RESIDUALS + 1]; /* channels of residual i (last: mid) */
    int res_level[TDM_CONTROLNET_MAX_RESIDUALS + 1];  /* downsamplings before residual i */
    tdm_tensor zc_w[TDM_CONTROLNET_MAX_RESIDUALS + 1]; /* controlnet_down_blocks.i [Ci, Ci, 1, 1]; last: mid */
    tdm_tensor zc_b[TDM_CONTROLNET_MAX_RESIDUALS + 1]; /* [Ci] */
};

#endif
