/* UNet2DConditionModel (diffusers v0.27.2 semantics): the noise-prediction network of SD 1.x / 2.x,
 * LCM (time_cond_proj) and SDXL (text_time added embedding). f32 activations, weights in their
 * stored dtype (F32/F16/BF16), canonical diffusers tensor names (single-file LDM checkpoints are
 * mapped by tdm_unet_ldm_mapper).
 *
 * Structure (diffusers UNet2DConditionModel.forward):
 *   emb   = time_embedding(timestep_proj(t) [+ cond_proj(timestep_cond)]) [+ add_embedding(text_time)]
 *   h     = conv_in(sample); skips = [h]
 *   down  : per level, layers_per_block x (ResnetBlock2D [+ Transformer2DModel]) -> skip each, then
 *           Downsample2D (3x3 stride 2) except on the last level -> skip
 *   mid   : resnet, (transformer, resnet)
 *   up    : per level (reversed), layers_per_block+1 x (cat(h, skips.pop()) -> resnet [+ transformer]),
 *           then nearest 2x + 3x3 conv except on the last level
 *   out   = conv_out(silu(group_norm(h)))
 */
#ifndef TDM_MODELS_UNET_H
#define TDM_MODELS_UNET_H

#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "tensor/ops.h"

#define TDM_UNET_MAX_LEVELS 6
#define TDM_UNET_MAX_LAYERS 8         /* layers_per_block */
#define TDM_UNET_MAX_TRANSFORMER 64   /* transformer_layers_per_block */

typedef struct tdm_unet_config {
    int in_channels, out_channels;
    int sample_size; /* informational (latent size the model was trained at) */
    int n_levels;    /* len(block_out_channels) */
    int block_out_channels[TDM_UNET_MAX_LEVELS];
    int layers_per_block;
    int down_attn[TDM_UNET_MAX_LEVELS]; /* down block i: 1 = CrossAttnDownBlock2D, 0 = DownBlock2D */
    int up_attn[TDM_UNET_MAX_LEVELS];   /* up block i (diffusers order, widest last): 1 = CrossAttnUpBlock2D */
    int mid_attn;                       /* 1 = UNetMidBlock2DCrossAttn (the only mid block supported) */
    int cross_attention_dim;
    int num_heads[TDM_UNET_MAX_LEVELS];          /* per down block (diffusers attention_head_dim: heads) */
    int transformer_layers[TDM_UNET_MAX_LEVELS]; /* per down block; mid uses the last entry */
    int transformer_layers_up[TDM_UNET_MAX_LEVELS]; /* per up block (reversed, or reverse_transformer_...) */
    int use_linear_projection;
    int upcast_attention; /* no effect in f32 (recorded for completeness) */
    int norm_num_groups;
    float norm_eps;
    int flip_sin_to_cos;
    int freq_shift;
    int time_cond_proj_dim;  /* LCM: 0 = none */
    int time_embed_dim;      /* 4 * block_out_channels[0] */
    int addition_text_time;  /* SDXL addition_embed_type "text_time" */
    int addition_time_embed_dim;
    int projection_class_embeddings_input_dim;
} tdm_unet_config;

/* Reads a diffusers UNet config.json; every unsupported or absurd value is an error naming the field. */
tdm_code tdm_unet_config_load(const char *path, tdm_unet_config *cfg, tdm_status *st);
/* Same from a parsed object (`what` names the source in messages). */
struct cJSON;
tdm_code tdm_unet_config_from_json(const struct cJSON *j, const char *what, tdm_unet_config *cfg, tdm_status *st);
/* Checks the cross-field invariants (also called by the loaders above). */
tdm_code tdm_unet_config_validate(const tdm_unet_config *cfg, const char *what, tdm_status *st);

/* Infers an SD1.x / SD2.x / SDXL config from a single-file (LDM) checkpoint's tensor names and shapes,
 * prefix e.g. "model.diffusion_model.". Heuristics (not recoverable from weights):
 *   heads: conv proj_in (SD1.x) -> 8 heads on every level; linear proj_in (SD2.x, SDXL) -> head dim 64
 *          (heads = channels / 64; 8 heads when the width is not a multiple of 64);
 *   norm_num_groups 32 (every released model; when a width is not a multiple of 32, the largest common
 *   divisor of the widths and 32 - tiny test models need the value from their config.json),
 *   norm_eps 1e-5, flip_sin_to_cos 1, freq_shift 0, upcast_attention 0 (no effect in f32),
 *   sample_size 64 (SDXL: 128), addition_time_embed_dim 256 (SDXL; models with a smaller
 *   projection_class_embeddings_input_dim: a guess);
 *   time_cond_proj_dim from a "time_embed.cond_proj.weight" / "time_embedding.cond_proj.weight" tensor. */
tdm_code tdm_unet_config_infer(const tdm_safetensors *f, const char *prefix, tdm_unet_config *cfg, tdm_status *st);

/* Name mapper for single-file checkpoints (after the caller strips "model.diffusion_model."):
 * input_blocks / middle_block / output_blocks / time_embed / out / label_emb -> diffusers names.
 * ctx: const tdm_unet_config * (layers_per_block, levels, attention per level). */
tdm_code tdm_unet_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st);

typedef struct tdm_unet tdm_unet;

/* Builds the model: takes ownership of *ws (the struct is moved in and ws is reset; the unet frees the
 * store, also on failure). Fetches every tensor by diffusers name with its expected shape; a missing
 * tensor, a wrong shape or an unexpected extra tensor is an error naming it. */
tdm_code tdm_unet_load(tdm_unet **out, const tdm_unet_config *cfg, tdm_weights *ws, tdm_status *st);
void tdm_unet_free(tdm_unet *u);
const tdm_unet_config *tdm_unet_get_config(const tdm_unet *u);

/* Debug hook: receives named intermediates ("conv_in", "time_embedding", "add_embedding",
 * "down_blocks.<i>", "mid_block", "up_blocks.<i>"), f32, numel values, valid during the call only. */
typedef void (*tdm_unet_debug_fn)(void *user, const char *name, const float *data, int64_t numel);

typedef struct tdm_unet_inputs {
    int B, H, W;              /* batch, latent height and width (multiples of 2^(levels-1)) */
    const float *sample;      /* [B, in_channels, H, W] */
    const float *timesteps;   /* [B] */
    const float *context;     /* [B, context_len, cross_attention_dim] */
    int context_len;
    const float *timestep_cond; /* LCM: [B, time_cond_proj_dim] or NULL (required when the model has one) */
    const float *text_embeds;   /* SDXL: [B, text_embeds_dim] or NULL */
    int text_embeds_dim;
    const float *time_ids;      /* SDXL: [B, n_time_ids] or NULL */
    int n_time_ids;
    /* ControlNet hook (optional): residuals added to the skip connections after the down path
     * (down_residuals[i] has the shape of skip i, in order: conv_in output, then every resnet/
     * attention output and downsampler output), and to the mid block output. */
    const float *const *down_residuals; /* NULL or n_down_residuals pointers */
    int n_down_residuals;
    const float *mid_residual;          /* NULL or [B, C_last, H/2^(L-1), W/2^(L-1)] */
    tdm_unet_debug_fn debug_fn;         /* optional */
    void *debug_user;
} tdm_unet_inputs;

/* Number of skip connections (= ControlNet down residuals): 1 + levels * layers_per_block + levels - 1. */
int tdm_unet_n_skips(const tdm_unet *u);

/* noise prediction out [B, out_channels, H, W]. Activations come from arena (released on return). */
tdm_code tdm_unet_forward(const tdm_unet *u, const tdm_exec *ex, tdm_arena *arena, const tdm_unet_inputs *in,
                          float *out, tdm_status *st);

/* diffusers get_timestep_embedding in float32: half = dim/2, freq_i = exp(-ln(10000) i / (half - shift)),
 * arg = t freq; [sin | cos] ([cos | sin] when flip_sin_to_cos); a zero column when dim is odd.
 * out [n, dim]. */
void tdm_timestep_embedding(const float *t, int n, int dim, int flip_sin_to_cos, int freq_shift, float *out);

/* LCM guidance embedding, float32 as diffusers' get_guidance_scale_embedding: w' = w * 1000,
 * freq_i = exp(-i ln(10000) / (half - 1)), [sin(w' freq) | cos(w' freq)] (+ a zero column when dim is odd).
 * w [B] (= guidance_scale - 1), out [B, dim]. */
void tdm_guidance_scale_embedding(const float *w, int B, int dim, float *out);

#endif
