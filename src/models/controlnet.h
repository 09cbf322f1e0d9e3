/* ControlNetModel (diffusers v0.27.2 semantics): a trainable copy of the UNet's encoder that turns a
 * conditioning image (edges, segmentation, ...) into residuals added to the UNet's skip connections
 * and mid-block output. Weights in their stored dtype (F32/F16/BF16), diffusers names (single-file
 * "control_model.*" checkpoints are mapped by tdm_controlnet_ldm_mapper).
 *
 * Structure (diffusers ControlNetModel.forward):
 *   cond  = cond[:, ::-1] when controlnet_conditioning_channel_order is "bgr"
 *   e     = controlnet_cond_embedding(cond): silu(conv_in) then per level k < K-1
 *           silu(conv3x3(c_k -> c_k)), silu(conv3x3 stride 2 (c_k -> c_k+1)), then conv_out (c_K-1 -> C0)
 *           (conditioning_embedding_out_channels c_0..c_K-1; 3 stride-2 convs = the VAE's /8)
 *   emb   = the UNet time embedding (+ LCM cond_proj, + SDXL add_embedding)
 *   h     = conv_in(sample) + e; skips = [h]
 *   down  = the UNet down path (resnet [+ transformer] per layer, downsampler except on the last level),
 *           every output appended to skips; mid = resnet, transformer, resnet
 *   out   : down residual i = controlnet_down_blocks.i(skips[i]) (1x1 conv), mid residual =
 *           controlnet_mid_block(mid); all times conditioning_scale (guess mode: the down residuals
 *           times logspace(-1, 0, n+1)[i] * scale, the mid residual times scale);
 *           global_pool_conditions: each residual replaced by its spatial mean (broadcast back here).
 * The embedding of the conditioning image does not depend on the step: tdm_controlnet_embed_cond
 * computes it once, tdm_controlnet_forward reuses it every step (bit-identical to recomputing). */
#ifndef TDM_MODELS_CONTROLNET_H
#define TDM_MODELS_CONTROLNET_H

#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/unet.h"
#include "tensor/ops.h"

#define TDM_CONTROLNET_MAX_COND_LEVELS 8 /* len(conditioning_embedding_out_channels) */
#define TDM_CONTROLNET_MAX_RESIDUALS (1 + TDM_UNET_MAX_LEVELS * (TDM_UNET_MAX_LAYERS + 1))

typedef struct tdm_controlnet_config {
    tdm_unet_config unet;       /* the encoder part (up_block_types derived from down_block_types) */
    int conditioning_channels;  /* channels of the conditioning image (3) */
    int n_cond_levels;          /* len(conditioning_embedding_out_channels) */
    int cond_channels[TDM_CONTROLNET_MAX_COND_LEVELS]; /* (16, 32, 96, 256) for SD */
    int bgr;                    /* controlnet_conditioning_channel_order == "bgr" */
    int global_pool_conditions; /* residuals replaced by their spatial mean (shuffle ControlNets) */
} tdm_controlnet_config;

/* Reads a diffusers ControlNetModel config.json; unsupported or absurd values are errors naming the field. */
tdm_code tdm_controlnet_config_load(const char *path, tdm_controlnet_config *cfg, tdm_status *st);
struct cJSON;
tdm_code tdm_controlnet_config_from_json(const struct cJSON *j, const char *what, tdm_controlnet_config *cfg,
                                         tdm_status *st);

/* Name mapper for single-file ControlNet checkpoints (after the caller strips "control_model."):
 * input_hint_block.{0,2,..,14} -> controlnet_cond_embedding.{conv_in, blocks.0..5, conv_out} (for K
 * levels: 0 conv_in, 2..4K-2 blocks, 4K-2 conv_out), zero_convs.N.0 -> controlnet_down_blocks.N,
 * middle_block_out.0 -> controlnet_mid_block; everything else as tdm_unet_ldm_mapper.
 * ctx: const tdm_controlnet_config *. */
tdm_code tdm_controlnet_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st);

typedef struct tdm_controlnet tdm_controlnet;

/* Builds the model; takes ownership of *ws (moved in, ws reset; freed also on failure). Every tensor is
 * fetched by diffusers name with its expected shape; missing, misshapen or unused tensors are errors. */
tdm_code tdm_controlnet_build(tdm_controlnet **out, const tdm_controlnet_config *cfg, tdm_weights *ws, tdm_status *st);
/* A diffusers folder (config.json + diffusion_pytorch_model.safetensors) or a single .safetensors file
 * (diffusers names, or "control_model.*" names with the SD 1.x ControlNet config unless config_path
 * names one). config_path may be NULL. */
tdm_code tdm_controlnet_load_file(tdm_controlnet **out, const char *path, const char *config_path, tdm_status *st);
void tdm_controlnet_free(tdm_controlnet *cn);
const tdm_controlnet_config *tdm_controlnet_get_config(const tdm_controlnet *cn);

/* Number of down residuals (= the UNet's skip connections). */
int tdm_controlnet_n_down(const tdm_controlnet *cn);
/* Shape of residual i (i == n_down: the mid residual) for a latent H x W: channels, height, width. */
void tdm_controlnet_residual_shape(const tdm_controlnet *cn, int i, int H, int W, int64_t *C, int64_t *h, int64_t *w);
/* Checks that the ControlNet's residuals fit the UNet (same skip count, channels); error naming both. */
tdm_code tdm_controlnet_check_unet(const tdm_controlnet *cn, const tdm_unet_config *uc, const char *what,
                                   tdm_status *st);

/* Conditioning image cond [Bc, conditioning_channels, 8H, 8W] (values as the pipeline passes them: [0, 1])
 * -> embedding [Bc, C0, H, W] (the size must be a multiple of 2^(K-1) times H, W: Himg = H * 2^(K-1)). */
tdm_code tdm_controlnet_embed_cond(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *arena, const float *cond,
                                   int Bc, int Himg, int Wimg, float *emb, tdm_status *st);

typedef struct tdm_controlnet_inputs {
    /* B, H, W, sample, timesteps, context, context_len, timestep_cond, text_embeds, time_ids as for the
     * UNet (the residual and debug fields are ignored) */
    tdm_unet_inputs x;
    const float *cond_emb; /* tdm_controlnet_embed_cond output [cond_batch, C0, H, W] */
    int cond_batch;        /* 1 (the same condition for every sample) or B */
    float scale;           /* conditioning_scale */
    int guess_mode;        /* diffusers guess_mode scales (logspace(-1, 0)) */
} tdm_controlnet_inputs;

/* Runs the ControlNet. down[i] has the shape of residual i for batch B ([B, C_i, h_i, w_i]), mid the mid
 * residual's. accumulate = 0: the residuals are written; 1: added (several ControlNets: diffusers'
 * MultiControlNetModel sums them in order). Activations come from arena (released on return). */
tdm_code tdm_controlnet_forward(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *arena,
                                const tdm_controlnet_inputs *in, float *const *down, float *mid, int accumulate,
                                tdm_status *st);

#endif
