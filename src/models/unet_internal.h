/* UNet internals shared by unet_load.c (weights -> structs) and unet.c (forward). */
#ifndef TDM_MODELS_UNET_INTERNAL_H
#define TDM_MODELS_UNET_INTERNAL_H

#include "models/unet.h"

/* diffusers ResnetBlock2D (time_embedding_norm "default", output_scale_factor 1). */
typedef struct unet_resnet {
    int cin, cout;
    tdm_tensor norm1_w, norm1_b;        /* [cin] */
    tdm_tensor conv1_w, conv1_b;        /* [cout, cin, 3, 3], [cout] */
    tdm_tensor temb_w, temb_b;          /* time_emb_proj [cout, temb], [cout] */
    tdm_tensor norm2_w, norm2_b;        /* [cout] */
    tdm_tensor conv2_w, conv2_b;        /* [cout, cout, 3, 3], [cout] */
    int has_shortcut;                   /* cin != cout */
    tdm_tensor short_w, short_b;        /* conv_shortcut viewed as [cout, cin], [cout] */
} unet_resnet;

/* diffusers BasicTransformerBlock (layer_norm, self-attn, cross-attn, GEGLU feed-forward). */
typedef struct unet_tblock {
    tdm_tensor norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b; /* [C] */
    tdm_tensor q1, k1, v1, o1_w, o1_b; /* attn1: [C, C] x4, [C] */
    tdm_tensor q2, k2, v2, o2_w, o2_b; /* attn2: q [C, C]; k, v [C, Dctx]; out [C, C], [C] */
    tdm_tensor ff1_w, ff1_b;           /* ff.net.0.proj [8C, C], [8C] */
    tdm_tensor ff2_w, ff2_b;           /* ff.net.2 [C, 4C], [C] */
} unet_tblock;

/* diffusers Transformer2DModel (continuous input). */
typedef struct unet_transformer {
    int C, heads, n_layers;
    tdm_tensor norm_w, norm_b;       /* GroupNorm (eps 1e-6) [C] */
    tdm_tensor proj_in_w, proj_in_b; /* viewed as [C, C] (1x1 conv or Linear) */
    tdm_tensor proj_out_w, proj_out_b;
    unet_tblock *blocks; /* [n_layers], owned */
} unet_transformer;

typedef struct unet_level {
    int n_layers;
    unet_resnet resnets[TDM_UNET_MAX_LAYERS + 1];
    unet_transformer *attns; /* [n_layers] or NULL, owned */
    int has_sample;          /* downsampler / upsampler */
    tdm_tensor sample_w, sample_b;
} unet_level;

struct tdm_unet {
    tdm_unet_config cfg;
    tdm_weights ws; /* owned: every tensor below is a view into it */
    tdm_tensor conv_in_w, conv_in_b;
    tdm_tensor t_lin1_w, t_lin1_b, t_lin2_w, t_lin2_b;
    tdm_tensor t_cond_w; /* LCM time_embedding.cond_proj.weight [C0, time_cond_proj_dim] (no bias) */
    tdm_tensor a_lin1_w, a_lin1_b, a_lin2_w, a_lin2_b; /* SDXL add_embedding */
    unet_level down[TDM_UNET_MAX_LEVELS];
    unet_level up[TDM_UNET_MAX_LEVELS];
    unet_resnet mid_res[2];
    unet_transformer mid_attn;
    tdm_tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
    /* LoRA applied at run time (models/lora.h; set by tdm_unet_with_lora, borrowed; NULL: none): after
     * each Linear / Conv2d whose weight the set adapts, the forward adds the low-rank term. */
    const struct tdm_lora_set *lora;
};

/* ---- Block entry points shared with the ControlNet (controlnet.c; defined in unet.c / unet_load.c) -- */

/* time_embedding(timestep_proj(t) [+ cond_proj]) [+ add_embedding] of u's weights -> emb [B, T] (no silu). */
tdm_code tdm_unet_block_embeddings(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, const tdm_unet_inputs *in,
                                   float *emb, tdm_status *st);
/* ResnetBlock2D: x [B, r->cin, H, W] -> y [B, r->cout, H, W] (y must not alias x); temb_act = silu(emb) [B, T]. */
tdm_code tdm_unet_block_resnet(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, int64_t B, const float *temb_act,
                               const unet_resnet *r, const float *x, int64_t H, int64_t W, float *y, tdm_status *st);
/* Transformer2DModel: x [B, C, H, W] -> y (may alias x), cross-attending to ctx [B, Lc, cross_attention_dim]. */
tdm_code tdm_unet_block_transformer(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, int64_t B, const float *ctx,
                                    int64_t Lc, const unet_transformer *t, const float *x, int64_t H, int64_t W,
                                    float *y, tdm_status *st);
/* Weight fetchers of one ResnetBlock2D / Transformer2DModel under `prefix` (e.g. "down_blocks.0.resnets.1."). */
tdm_code tdm_unet_load_resnet(tdm_weights *ws, const char *prefix, int cin, int cout, int temb, unet_resnet *r,
                              tdm_status *st);
tdm_code tdm_unet_load_transformer(tdm_weights *ws, const char *prefix, const tdm_unet_config *cfg, int C, int heads,
                                   int n_layers, unet_transformer *t, tdm_status *st);

#endif
