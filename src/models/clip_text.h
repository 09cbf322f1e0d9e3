/* CLIP text encoder (transformers 4.30.2 CLIPTextModel / CLIPTextModelWithProjection, modeling_clip.py):
 *
 *   h0 = token_embedding[ids] + position_embedding[0..L-1]                  hidden_states[0]
 *   layer i: h += out_proj(attn(layer_norm1(h)))  (causal, heads of hidden/heads, scale head_dim^-0.5)
 *            h += fc2(act(fc1(layer_norm2(h))))   act = quick_gelu (SD1) | gelu (erf; SD2, SDXL)
 *                                                                            hidden_states[i+1]
 *   last_hidden_state = final_layer_norm(hidden_states[n_layers])
 *   pooled = last_hidden_state[b, p_b]: p_b = argmax(ids[b]) (first highest id) when eos_token_id == 2
 *            (legacy configs, what 4.30 always does), else the first position where ids == eos_token_id
 *            (transformers >= 4.31; 0 when absent).
 *   text_embeds = text_projection(pooled) (no bias; only CLIPTextModelWithProjection).
 * No attention mask besides the causal one (SD pipelines pass attention_mask=None): padding tokens are
 * attended by later positions only.
 *
 * Weights use the transformers names (text_model.*, text_projection.weight). Single files: SD1
 * ("cond_stage_model.transformer." stripped) uses the same names: tdm_clip_text_hf_mapper; SD2 / SDXL
 * OpenCLIP towers ("cond_stage_model.model." / "conditioner.embedders.1.model." stripped):
 * tdm_clip_text_openclip_mapper. */
#ifndef TDM_MODELS_CLIP_TEXT_H
#define TDM_MODELS_CLIP_TEXT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "tensor/ops.h"

typedef enum tdm_clip_act {
    TDM_CLIP_ACT_QUICK_GELU = 0, /* x sigmoid(1.702 x) */
    TDM_CLIP_ACT_GELU,           /* exact erf gelu */
    TDM_CLIP_ACT_GELU_TANH       /* "gelu_new" / "gelu_pytorch_tanh" */
} tdm_clip_act;

typedef struct tdm_clip_text_config {
    int vocab_size;              /* 49408 */
    int hidden_size;             /* SD1 768, SD2 1024, SDXL-2 1280 */
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int max_position_embeddings; /* 77 */
    tdm_clip_act hidden_act;
    double layer_norm_eps;       /* 1e-5 */
    int projection_dim;          /* used when the weights hold text_projection.weight */
    int eos_token_id;            /* 2 in legacy configs (pool at the highest id), else the eos id */
    int bos_token_id, pad_token_id;
    int is_clip_model;           /* 1: read from a full CLIPModel config.json (text_config + vision_config);
                                    its weights hold the vision tower too: load them with
                                    tdm_clip_text_clipmodel_mapper (tdm_clip_text_mapper_for does) */
    int clip_model_projection_dim; /* CLIPModel: the top-level projection_dim (default 512), the width of its
                                    text_projection (transformers CLIPModel builds Linear(hidden,
                                    config.projection_dim); text_config.projection_dim, kept in
                                    projection_dim, is not read by CLIPModel). tdm_clip_text_load uses it
                                    when is_clip_model and stores it in the model's cfg.projection_dim. */
} tdm_clip_text_config;

/* transformers CLIPTextConfig defaults (512 wide, 12 layers, 8 heads, quick_gelu, eos 49407). */
void tdm_clip_text_config_default(tdm_clip_text_config *cfg);
/* config.json of a transformers CLIPTextModel / CLIPTextModelWithProjection, or of a full CLIPModel:
 * then its "text_config" is used (the CLIPTextConfig), is_clip_model is set and the top-level
 * projection_dim goes to clip_model_projection_dim. Missing fields take the CLIPTextConfig defaults;
 * bad values are errors naming the field. */
tdm_code tdm_clip_text_config_load(const char *path, tdm_clip_text_config *cfg, tdm_status *st);
tdm_code tdm_clip_text_config_from_json(const cJSON *obj, const char *what, tdm_clip_text_config *cfg,
                                        tdm_status *st);
tdm_code tdm_clip_text_config_validate(const tdm_clip_text_config *cfg, const char *what, tdm_status *st);

/* Shared by the CLIP text and vision configs. Field "hidden_act" of obj (quick_gelu, gelu, gelu_new /
 * gelu_pytorch_tanh); absent: *act is kept. */
tdm_code tdm_clip_act_from_json(const cJSON *obj, const char *what, tdm_clip_act *act, tdm_status *st);
/* The encoder fields, in this order: hidden_size in [1, 65536], intermediate_size >= 1 (and <=
 * intermediate_max when that is > 0), num_hidden_layers in [1, 1024], num_attention_heads divides hidden_size.
 * Errors name the field and value. */
tdm_code tdm_clip_encoder_validate(const char *what, int hidden_size, int intermediate_size, int intermediate_max,
                                   int num_hidden_layers, int num_attention_heads, tdm_status *st);

/* Infers the configuration of a single-file text tower from tensor shapes under `prefix`: transformers
 * names (SD1, "cond_stage_model.transformer.", openclip 0) or OpenCLIP names (SD2 "cond_stage_model.model.",
 * SDXL "conditioner.embedders.1.model.", openclip 1). Every layer in the file is counted (SD2: use
 * num_hidden_layers - 1, see tdm_clip_openclip_map). What shapes cannot tell follows the diffusers
 * configs of SD1/SD2/SDXL: heads = hidden / 64 (ViT-L 12, ViT-H 16, ViT-bigG 20), hidden_act quick_gelu
 * (OpenAI CLIP, transformers names) or gelu (OpenCLIP), eos_token_id 2 (pool at the highest id),
 * layer_norm_eps 1e-5; projection_dim from text_projection when present. */
tdm_code tdm_clip_text_config_infer(const tdm_safetensors *f, const char *prefix, int openclip,
                                    tdm_clip_text_config *cfg, tdm_status *st);

/* tdm_name_mapper for transformers names (and SD1 single files after stripping
 * "cond_stage_model.transformer."): identity, dropping the int64 buffer
 * text_model.embeddings.position_ids. ctx unused. */
tdm_code tdm_clip_text_hf_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                 tdm_status *st);

/* ctx of tdm_clip_text_clipmodel_mapper (NULL = keep_projection 1). */
typedef struct tdm_clip_model_map {
    int keep_projection; /* 1: text_projection.weight is loaded (text_embeds); 0: dropped by name */
} tdm_clip_model_map;

/* tdm_name_mapper for a full transformers CLIPModel file (model.safetensors of a CLIP folder): the text
 * encoder takes text_model.* (as tdm_clip_text_hf_mapper) and text_projection.weight (when asked);
 * vision_model.*, visual_projection.weight and logit_scale are dropped by name (they belong to the
 * vision tower / the CLIP score). Any other name is emitted, so tdm_weights_check_unused reports it. */
tdm_code tdm_clip_text_clipmodel_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                        tdm_status *st);

/* The mapper for weights of a folder whose config.json gave cfg: tdm_clip_text_clipmodel_mapper for a
 * CLIPModel (cfg->is_clip_model), else tdm_clip_text_hf_mapper. */
tdm_name_mapper tdm_clip_text_mapper_for(const tdm_clip_text_config *cfg);

/* ctx of tdm_clip_text_openclip_mapper. */
typedef struct tdm_clip_openclip_map {
    /* resblocks >= n_layers are dropped explicitly (not mapped, so not "unused"): SD2 checkpoints hold
     * 24 resblocks, the diffusers conversion keeps 23 (SD2 conditions on the penultimate layer, and
     * its text_encoder config says num_hidden_layers 23). SDXL's second encoder keeps all 32. */
    int n_layers;
    /* 1: text_projection [C, P] -> text_projection.weight [P, C] (transposed copy, SDXL);
     * 0: dropped (SD2's text encoder is a CLIPTextModel without projection). */
    int keep_projection;
} tdm_clip_openclip_map;

/* OpenCLIP text tower names -> transformers names: token_embedding.weight, positional_embedding,
 * transformer.resblocks.N.{ln_1, ln_2, attn.in_proj_weight/bias (q, k, v stacked on dim 0: split into
 * views), attn.out_proj, mlp.c_fc, mlp.c_proj}, ln_final, text_projection; logit_scale and attn_mask
 * are dropped. Unknown names are errors naming the tensor. */
tdm_code tdm_clip_text_openclip_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                       tdm_status *st);

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct tdm_clip_text_layer {
    tdm_tensor ln1_w, ln1_b;
    tdm_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* [C, C], [C] */
    tdm_tensor ln2_w, ln2_b;
    tdm_tensor fc1_w, fc1_b; /* [I, C], [I] */
    tdm_tensor fc2_w, fc2_b; /* [C, I], [C] */
} tdm_clip_text_layer;

/* Looks up one encoder layer's tensors "<prefix>.<i>.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2,
 * mlp.fc1, mlp.fc2}.{weight,bias}" (C = hidden_size, I = intermediate_size); shared by the text and vision
 * towers. */
tdm_code tdm_clip_layer_load(tdm_weights *ws, tdm_clip_text_layer *l, const char *prefix, int i, int64_t C, int64_t I,
                             tdm_status *st);

typedef struct tdm_clip_text {
    tdm_clip_text_config cfg;
    tdm_weights ws; /* owns the weight files; every tensor below is a view into it */
    tdm_tensor tok_emb; /* [vocab, C] */
    tdm_tensor pos_emb; /* [max_pos, C] */
    tdm_clip_text_layer *layers; /* [num_hidden_layers] */
    tdm_tensor final_ln_w, final_ln_b;
    int has_projection;
    tdm_tensor proj_w; /* [projection_dim, C] */
} tdm_clip_text;

/* Builds the model from weights with transformers names (ws finished). text_projection.weight is
 * optional (its presence makes text_embeds available). Ownership of *ws moves into the model on every
 * return (it is zeroed). */
tdm_code tdm_clip_text_load(tdm_clip_text **out, const tdm_clip_text_config *cfg, tdm_weights *ws,
                            tdm_status *st);
/* Convenience: a transformers / diffusers text_encoder folder (config.json + model.safetensors), or a
 * full CLIPModel folder (its text tower and text_projection; the vision weights are dropped by name). */
tdm_code tdm_clip_text_load_dir(tdm_clip_text **out, const char *dir, tdm_status *st);
void tdm_clip_text_free(tdm_clip_text *m);

/* Receives hidden_states[index] (index 0 = embeddings, i = output of layer i), h [B, L, C]. */
typedef void (*tdm_clip_text_hidden_fn)(void *user, int index, const float *h, int64_t B, int64_t L, int64_t C);

typedef struct tdm_clip_text_opts {
    /* `hidden` receives hidden_states[-skip] (the transformers tuple has n_layers + 1 entries):
     * 1 = last layer (default); 2 = penultimate (A1111 "clip skip 2" = diffusers clip_skip=1; SDXL). */
    int skip;
    /* 1 (default): final_layer_norm is applied to the selected state (last_hidden_state; SD1 clip skip);
     * 0: the raw hidden state (SDXL uses hidden_states[-2] without it). */
    int final_ln;
    tdm_clip_text_hidden_fn on_hidden; /* optional: every hidden_states[i] as it is computed */
    void *user;
} tdm_clip_text_opts;

void tdm_clip_text_opts_init(tdm_clip_text_opts *o);

/* ids [B, L] (0 <= id < vocab_size, 1 <= L <= max_position_embeddings) ->
 *   hidden [B, L, C] (selected by opts; NULL: not wanted),
 *   pooled [B, C] (final_layer_norm(last layer) at the pooling position; NULL: not wanted),
 *   text_embeds [B, projection_dim] (NULL: not wanted; an error when the model has no projection).
 * opts NULL: defaults. Layers after the selected one are skipped when neither pooled, text_embeds nor
 * on_hidden needs them. Scratch from arena (released on return). */
tdm_code tdm_clip_text_forward(const tdm_clip_text *m, const tdm_exec *ex, tdm_arena *arena, const int32_t *ids,
                               int64_t B, int64_t L, const tdm_clip_text_opts *opts, float *hidden, float *pooled,
                               float *text_embeds, tdm_status *st);

/* The pooling position of one sequence (rule above). */
int64_t tdm_clip_text_pool_index(const tdm_clip_text_config *cfg, const int32_t *ids, int64_t L);

#endif
