/* CLIP vision tower (transformers 4.30.2 CLIPVisionModel / CLIPVisionModelWithProjection,
 * modeling_clip.py) and CLIPImageProcessor (image_processing_clip.py):
 *
 *   patches = patch_embedding(pixels)        Conv2d(3 -> C, k = s = patch_size, no bias), [B, C, g, g]
 *   e[b, 0] = class_embedding; e[b, 1 + y g + x] = patches[b, :, y, x]    (T = g^2 + 1 tokens)
 *   e += position_embedding[0..T-1]
 *   h0 = pre_layrnorm(e)                                                     hidden_states[0]
 *   layer i: h += out_proj(attn(layer_norm1(h)))  (bidirectional, scale head_dim^-0.5)
 *            h += fc2(act(fc1(layer_norm2(h))))   act = quick_gelu (OpenAI) | gelu (OpenCLIP, laion)
 *                                                                            hidden_states[i+1]
 *   last_hidden_state = hidden_states[n_layers]     (NO post_layernorm)
 *   pooler_output = post_layernorm(last_hidden_state[:, 0])
 *   image_embeds = visual_projection(pooler_output) (no bias; not normalised)
 * The input must be image_size x image_size (transformers 4.30 does not interpolate positions).
 *
 * Weights use the transformers names (vision_model.*, visual_projection.weight); a full CLIPModel
 * file can be read as is (its text tower, text_projection and logit_scale are skipped). OpenCLIP
 * visual towers ("visual." prefix: conv1, class_embedding, positional_embedding, ln_pre,
 * transformer.resblocks.N.*, ln_post, proj) are mapped onto the same names by
 * tdm_clip_vision_openclip_mapper. */
#ifndef TDM_MODELS_CLIP_VISION_H
#define TDM_MODELS_CLIP_VISION_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/clip_text.h" /* tdm_clip_act, tdm_clip_text_layer (same encoder layer) */
#include "tandem.h"
#include "tensor/ops.h"

typedef struct tdm_clip_vision_config {
    int hidden_size;         /* ViT-B 768, ViT-L 1024, ViT-H 1280 */
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_channels;        /* 3 */
    int image_size;          /* 224 */
    int patch_size;          /* 14 / 16 / 32 */
    int projection_dim;      /* used when the weights hold visual_projection.weight */
    tdm_clip_act hidden_act;
    double layer_norm_eps;   /* 1e-5 */
} tdm_clip_vision_config;

/* transformers CLIPVisionConfig defaults (ViT-B/32: 768 wide, 12 layers, 12 heads, 224 px, patch 32,
 * quick_gelu, projection 512). */
void tdm_clip_vision_config_default(tdm_clip_vision_config *cfg);
/* config.json of a CLIPVisionModel(WithProjection) or of a full CLIPModel (its "vision_config" is
 * used; projection_dim then comes from the top level when the vision config has none). Missing
 * fields take the defaults; bad values are errors naming the field. */
tdm_code tdm_clip_vision_config_load(const char *path, tdm_clip_vision_config *cfg, tdm_status *st);
tdm_code tdm_clip_vision_config_from_json(const cJSON *obj, const char *what, tdm_clip_vision_config *cfg,
                                          tdm_status *st);
tdm_code tdm_clip_vision_config_validate(const tdm_clip_vision_config *cfg, const char *what, tdm_status *st);
/* Tokens per image: (image_size / patch_size)^2 + 1. */
int64_t tdm_clip_vision_tokens(const tdm_clip_vision_config *cfg);

/* Infers the configuration of an OpenCLIP visual tower from tensor shapes under prefix (e.g. "visual.").
 * Shapes cannot tell the head count or the activation: heads = hidden / 64 except the OpenCLIP
 * widths whose head_width is not 64 (1280 ViT-H: 16 heads of 80; 1664 ViT-bigG: 16 of 104);
 * hidden_act gelu (OpenCLIP-trained towers; OpenAI weights need quick_gelu: set it after the call). */
tdm_code tdm_clip_vision_config_infer_openclip(const tdm_safetensors *f, const char *prefix,
                                               tdm_clip_vision_config *cfg, tdm_status *st);

/* tdm_name_mapper for transformers names: identity, dropping the int64 position_ids buffers and the
 * text half of a full CLIPModel (text_model.*, text_projection.weight, logit_scale). ctx unused. */
tdm_code tdm_clip_vision_hf_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                   tdm_status *st);
/* OpenCLIP visual names (after the "visual." prefix is stripped) -> transformers names:
 * conv1.weight, class_embedding, positional_embedding, ln_pre, transformer.resblocks.N.{ln_1,
 * attn.in_proj_weight/bias (q, k, v stacked: split into views), attn.out_proj, ln_2, mlp.c_fc,
 * mlp.c_proj}, ln_post, proj ([C, P], used as x @ proj: stored transposed as visual_projection.weight).
 * Unknown names are errors naming the tensor. ctx unused. */
tdm_code tdm_clip_vision_openclip_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                         tdm_status *st);

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct tdm_clip_vision {
    tdm_clip_vision_config cfg;
    tdm_weights ws;           /* owns the weight files; every tensor below is a view into it */
    tdm_tensor patch_w;       /* [C, channels, patch, patch] */
    tdm_tensor class_emb;     /* [C] */
    tdm_tensor pos_emb;       /* [T, C] */
    tdm_tensor pre_ln_w, pre_ln_b;   /* [C] */
    tdm_clip_text_layer *layers;     /* [num_hidden_layers] (same layer as the text encoder) */
    tdm_tensor post_ln_w, post_ln_b; /* [C] */
    int has_projection;
    tdm_tensor proj_w;        /* [projection_dim, C] */
} tdm_clip_vision;

/* Builds the model from weights with transformers names (ws finished); visual_projection.weight is
 * optional. Every tensor of ws must be taken (else an error naming the first one left). Ownership
 * of *ws moves into the model on every return (it is zeroed). */
tdm_code tdm_clip_vision_load(tdm_clip_vision **out, const tdm_clip_vision_config *cfg, tdm_weights *ws,
                              tdm_status *st);
/* Convenience: a transformers folder (config.json + model.safetensors; a CLIPModel folder works). */
tdm_code tdm_clip_vision_load_dir(tdm_clip_vision **out, const char *dir, tdm_status *st);
/* An OpenCLIP checkpoint converted to safetensors (visual tower under `prefix`, e.g. "visual.");
 * configuration inferred (tdm_clip_vision_config_infer_openclip); act overrides hidden_act when >= 0. */
tdm_code tdm_clip_vision_load_openclip(tdm_clip_vision **out, const char *path, const char *prefix, int act,
                                       tdm_status *st);
void tdm_clip_vision_free(tdm_clip_vision *m);

/* Receives hidden_states[index] (0 = pre_layrnorm(embeddings), i = output of layer i), h [B, T, C]. */
typedef void (*tdm_clip_vision_hidden_fn)(void *user, int index, const float *h, int64_t B, int64_t T, int64_t C);

/* pixels [B, channels, S, S] (S = image_size, already normalised) ->
 *   last_hidden [B, T, C] (NULL: not wanted), pooled [B, C] (NULL: not wanted),
 *   image_embeds [B, projection_dim] (NULL: not wanted; an error when the model has no projection).
 * on_hidden (may be NULL) receives every hidden state. Scratch from arena (released on return). */
tdm_code tdm_clip_vision_forward(const tdm_clip_vision *m, const tdm_exec *ex, tdm_arena *arena, const float *pixels,
                                 int64_t B, tdm_clip_vision_hidden_fn on_hidden, void *user, float *last_hidden,
                                 float *pooled, float *image_embeds, tdm_status *st);

/* ---- preprocessing (transformers CLIPImageProcessor; HPSv2 ResizeMaxSize) --------------------- */

typedef enum tdm_clip_resize_mode {
    TDM_CLIP_RESIZE_SHORTEST = 0, /* CLIPImageProcessor size {"shortest_edge": n}: short side -> n,
                                   * long side -> int(n * long / short) (truncation) */
    TDM_CLIP_RESIZE_EXACT,        /* size {"height": h, "width": w} */
    TDM_CLIP_RESIZE_LONGEST_PAD   /* OpenCLIP ResizeMaxSize(n) (HPSv2): scale = n / long side, each side
                                   * -> round(side * scale) (half to even), zero pad to n x n with
                                   * left/top = pad // 2; no centre crop */
} tdm_clip_resize_mode;

typedef struct tdm_clip_image_proc {
    int do_resize;
    tdm_clip_resize_mode resize_mode;
    int size, size_h, size_w;     /* shortest_edge / longest side (size); exact (size_h, size_w) */
    tdm_resample resample;        /* PIL code 3 bicubic (default), 2 bilinear, 1 lanczos */
    int do_center_crop;
    int crop_h, crop_w;           /* top = (H - h) // 2, left = (W - w) // 2 (transformers, floor) */
    int do_rescale;
    double rescale_factor;        /* 1/255 */
    int do_normalize;
    double mean[3], std[3];       /* OpenAI CLIP constants by default */
} tdm_clip_image_proc;

/* CLIPImageProcessor defaults with size = crop = n (OpenAI mean/std, bicubic, 1/255). */
void tdm_clip_image_proc_default(tdm_clip_image_proc *p, int n);
/* preprocessor_config.json (missing fields: the defaults with n = default_size); errors name the field. */
tdm_code tdm_clip_image_proc_load(const char *path, int default_size, tdm_clip_image_proc *p, tdm_status *st);
tdm_code tdm_clip_image_proc_from_json(const cJSON *obj, const char *what, int default_size, tdm_clip_image_proc *p,
                                       tdm_status *st);
/* Output size for an input of w x h (after resize and crop / pad). */
tdm_code tdm_clip_image_proc_out_size(const tdm_clip_image_proc *p, int w, int h, int *out_w, int *out_h,
                                      tdm_status *st);

/* img (RGB8, 1..TDM_IMAGE_MAX_SIDE a side) -> pixels [3, out_h, out_w] (size from
 * tdm_clip_image_proc_out_size): PIL resize (uint8, rounded), crop or pad, x * rescale_factor,
 * (x - mean) / std (in double, stored as float). resized / cropped (may be NULL) receive the
 * intermediate uint8 images (caller frees with tdm_image_free). */
tdm_code tdm_clip_preprocess(const tdm_clip_image_proc *p, const tdm_image *img, float *pixels, tdm_image *resized,
                             tdm_image *cropped, tdm_status *st);

#endif
