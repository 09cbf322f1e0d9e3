/* AutoencoderKL (the Stable Diffusion VAE), as diffusers v0.27.2 models/autoencoders/autoencoder_kl.py +
 * autoencoders/vae.py (Encoder, Decoder) + unet_2d_blocks.py (DownEncoderBlock2D, UpDecoderBlock2D,
 * UNetMidBlock2D) + resnet.py (ResnetBlock2D, Downsample2D, Upsample2D) compute it:
 *
 *   encode: x [B, in, H, W] -> conv_in -> down levels (resnets; Downsample2D on all but the last level:
 *           zero pad (left 0, right 1, top 0, bottom 1) then a 3x3 stride-2 conv without padding)
 *           -> mid (resnet, single-head attention over H*W tokens, resnet) -> GroupNorm+SiLU -> conv_out
 *           -> quant_conv = moments [B, 2*latent, H/s, W/s]; mean = moments[:, :latent],
 *           logvar = clamp(moments[:, latent:], -30, 20).
 *   decode: z [B, latent, h, w] -> post_quant_conv -> conv_in -> mid -> up levels (layers_per_block + 1
 *           resnets; nearest 2x + 3x3 conv on all but the last) -> GroupNorm+SiLU -> conv_out.
 *   s = 2^(levels - 1) (SD: 4 levels, s = 8). All GroupNorms use eps 1e-6.
 *
 * Weights use the diffusers names; LDM single-file checkpoints ("first_stage_model." stripped) are
 * mapped by tdm_vae_ldm_mapper. Activations are processed one image at a time (memory is bounded by
 * three buffers of the largest activation of one image). */
#ifndef TDM_MODELS_VAE_H
#define TDM_MODELS_VAE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "tensor/ops.h"

#define TDM_VAE_MAX_LEVELS 8
#define TDM_VAE_MAX_LAYERS 8 /* layers_per_block; decoder levels hold one more resnet */

typedef struct tdm_vae_config {
    int in_channels;      /* image channels (3) */
    int out_channels;     /* decoded channels (3) */
    int latent_channels;  /* 4 */
    int n_levels;         /* len(block_out_channels) */
    int block_out_channels[TDM_VAE_MAX_LEVELS];
    int layers_per_block; /* encoder resnets per level; decoder has one more */
    int norm_num_groups;  /* 32 (SD); the tiny fixtures use 8 */
    double scaling_factor;   /* latents = scaling_factor * (z - shift); default 0.18215 */
    int has_shift_factor;    /* shift_factor given and not null (SD3/Flux VAEs) */
    double shift_factor;
    int sample_size;             /* informational */
    int mid_block_add_attention; /* default 1 */
    int use_quant_conv;          /* default 1 (diffusers >= 0.28 may write false) */
    int use_post_quant_conv;     /* default 1 */
} tdm_vae_config;

/* SD 1.x / 2.x VAE: 3 -> 4 latent channels, (128, 256, 512, 512), 2 layers, 32 groups, 0.18215. */
void tdm_vae_config_default(tdm_vae_config *cfg);
/* Reads a diffusers AutoencoderKL config.json. Errors name the file and the field. */
tdm_code tdm_vae_config_load(const char *path, tdm_vae_config *cfg, tdm_status *st);
/* Same from a parsed object; `what` names it in messages. */
tdm_code tdm_vae_config_from_json(const cJSON *obj, const char *what, tdm_vae_config *cfg, tdm_status *st);
/* Range and consistency checks (channels divisible by groups, level count...), naming the field. */
tdm_code tdm_vae_config_validate(const tdm_vae_config *cfg, const char *what, tdm_status *st);
/* Spatial factor between image and latent: 2^(n_levels - 1). */
int tdm_vae_latent_scale(const tdm_vae_config *cfg);

/* Infers the structure of an LDM single-file VAE from tensor shapes under `prefix` (e.g.
 * "first_stage_model."): in/out/latent channels, block_out_channels, layers_per_block, whether the
 * mid attention and quant convs exist. What shapes cannot tell (norm_num_groups, scaling_factor,
 * shift_factor, sample_size) is kept from *cfg when set (non-zero), else the SD defaults
 * (32 groups, 0.18215). */
tdm_code tdm_vae_config_infer(const tdm_safetensors *f, const char *prefix, tdm_vae_config *cfg, tdm_status *st);

/* tdm_name_mapper for LDM VAE names (prefix already stripped) -> diffusers names. ctx: const
 * tdm_vae_config * (needed for the reversed decoder level order). encoder.down.N.block.M ->
 * encoder.down_blocks.N.resnets.M, downsample.conv -> downsamplers.0.conv, decoder.up.N ->
 * decoder.up_blocks.(levels-1-N), upsample.conv -> upsamplers.0.conv, mid.block_1/2 ->
 * mid_block.resnets.0/1, mid.attn_1.{norm,q,k,v,proj_out} -> mid_block.attentions.0.{group_norm,
 * to_q,to_k,to_v,to_out.0} (1x1 conv kernels [C, C, 1, 1] viewed as [C, C]), nin_shortcut ->
 * conv_shortcut, norm_out -> conv_norm_out. Unknown names are errors naming the tensor. */
tdm_code tdm_vae_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st);

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct tdm_vae_resnet {
    int cin, cout;
    tdm_tensor norm1_w, norm1_b, conv1_w, conv1_b; /* GroupNorm(cin), conv 3x3 cin -> cout */
    tdm_tensor norm2_w, norm2_b, conv2_w, conv2_b; /* GroupNorm(cout), conv 3x3 cout -> cout */
    int has_shortcut;                              /* cin != cout: 1x1 conv_shortcut */
    tdm_tensor short_w, short_b;
} tdm_vae_resnet;

typedef struct tdm_vae_attn {
    int c;
    tdm_tensor norm_w, norm_b; /* GroupNorm(c) */
    tdm_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* Linear c -> c */
} tdm_vae_attn;

typedef struct tdm_vae_mid {
    tdm_vae_resnet res[2];
    int has_attn;
    tdm_vae_attn attn;
} tdm_vae_mid;

typedef struct tdm_vae_level {
    int n_res;
    tdm_vae_resnet res[TDM_VAE_MAX_LAYERS + 1];
    int has_sample; /* encoder: Downsample2D; decoder: Upsample2D */
    tdm_tensor sample_w, sample_b; /* conv 3x3 c -> c */
} tdm_vae_level;

typedef struct tdm_vae_half { /* encoder or decoder */
    tdm_tensor conv_in_w, conv_in_b;
    tdm_vae_level levels[TDM_VAE_MAX_LEVELS];
    tdm_vae_mid mid;
    tdm_tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} tdm_vae_half;

/* Debug hook: called with each intermediate activation of image b (name as the diffusers module,
 * e.g. "encoder.down_blocks.2", "decoder.mid_block", "post_quant_conv"); x is [C, H, W]. */
typedef void (*tdm_vae_debug_fn)(void *user, const char *name, int64_t b, const float *x, int64_t C, int64_t H,
                                 int64_t W);

typedef struct tdm_vae {
    tdm_vae_config cfg;
    tdm_weights ws; /* owns the weight files; every tensor below is a view into it */
    tdm_vae_half enc, dec;
    int has_quant, has_post_quant;
    tdm_tensor quant_w, quant_b;           /* 1x1 conv 2L -> 2L */
    tdm_tensor post_quant_w, post_quant_b; /* 1x1 conv L -> L */
    tdm_vae_debug_fn debug_fn;
    void *debug_user;
} tdm_vae;

/* Builds the model from weights with diffusers names (ws must be finished: tdm_weights_finish).
 * Every tensor is fetched by name with its shape checked, then tdm_weights_check_unused.
 * Ownership of *ws moves into the model on every return (success or failure): the caller must not
 * use or free it afterwards (it is zeroed). */
tdm_code tdm_vae_load(tdm_vae **out, const tdm_vae_config *cfg, tdm_weights *ws, tdm_status *st);
/* Convenience: a diffusers folder (config.json + diffusion_pytorch_model.safetensors). */
tdm_code tdm_vae_load_dir(tdm_vae **out, const char *dir, tdm_status *st);
/* Convenience: a single-file checkpoint; prefix "first_stage_model." for SD files. cfg NULL: inferred
 * with the SD defaults for what shapes cannot tell. */
tdm_code tdm_vae_load_single_file(tdm_vae **out, const char *path, const char *prefix, const tdm_vae_config *cfg,
                                  tdm_status *st);
void tdm_vae_free(tdm_vae *vae);
void tdm_vae_set_debug(tdm_vae *vae, tdm_vae_debug_fn fn, void *user);

/* image [B, in_channels, H, W] in [-1, 1] -> mean, logvar [B, latent, H/s, W/s] (s =
 * tdm_vae_latent_scale; H, W multiples of s). logvar clamped to [-30, 20]. moments (optional, may be
 * NULL): [B, 2*latent, H/s, W/s] raw quant_conv output. Scratch comes from arena (released on return). */
tdm_code tdm_vae_encode(const tdm_vae *vae, const tdm_exec *ex, tdm_arena *arena, const float *image, int64_t B,
                        int64_t H, int64_t W, float *mean, float *logvar, float *moments, tdm_status *st);
/* latent [B, latent, h, w] (already divided by scaling_factor, shift added back) -> image
 * [B, out_channels, s*h, s*w] (about [-1, 1]). */
tdm_code tdm_vae_decode(const tdm_vae *vae, const tdm_exec *ex, tdm_arena *arena, const float *latent, int64_t B,
                        int64_t h, int64_t w, float *image, tdm_status *st);

/* Decoded [B, 3, H, W] in [-1, 1] -> 8-bit RGB, rgb [B, H, W, 3] (HWC), as diffusers
 * VaeImageProcessor.postprocess + numpy_to_pil: v = clamp(x / 2 + 0.5, 0, 1); u8 = round(v * 255)
 * (round half to even, as numpy; NaN -> 0). C must be 3. */
void tdm_vae_to_rgb8(const float *image, int64_t B, int64_t H, int64_t W, uint8_t *rgb);

#endif
