/* Stable Diffusion XL: loading the text side of SDXL base / refiner models and the micro-conditioning
 * (docs/SDXL.md). The UNet (addition_embed_type "text_time"), the VAE (scaling_factor 0.13025) and the
 * scheduler load as for SD1.x / SD2.x (pipeline/sd_model.c calls in here for the rest).
 *
 * Layouts:
 *   diffusers folder  text_encoder/ (CLIPTextModel, CLIP ViT-L/14, 768) + tokenizer/ (pad "<|endoftext|>"),
 *                     text_encoder_2/ (CLIPTextModelWithProjection, OpenCLIP ViT-bigG/14, 1280, projection
 *                     1280) + tokenizer_2/ (pad "!"), unet/ (text_time), vae/; model_index.json:
 *                     force_zeros_for_empty_prompt (default true), requires_aesthetics_score (refiner).
 *                     The refiner lists text_encoder / tokenizer as [null, null].
 *   single file       conditioner.embedders.0.transformer.text_model.* (CLIP ViT-L, transformers names),
 *                     conditioner.embedders.1.model.* (OpenCLIP names; in_proj split into q/k/v,
 *                     text_projection transposed), model.diffusion_model.*, first_stage_model.*;
 *                     refiner: conditioner.embedders.0.model.* only.
 *
 * Conditioning (diffusers StableDiffusionXLPipeline.encode_prompt):
 *   context  = cat(hidden_states[-2] of text_encoder, hidden_states[-2] of text_encoder_2) on channels
 *              (raw penultimate states, no final LayerNorm; 768 + 1280 = 2048; refiner: 1280)
 *   pooled   = text_encoder_2's text_embeds (text_projection of its final-LN pooled output) [1280]
 *   negative = the same for the negative prompt; when it is empty and force_zeros_for_empty_prompt is
 *              set, zeros (context and pooled)
 *   time_ids = (original_h, original_w, crop_top, crop_left, target_h, target_w)            base
 *              (original_h, original_w, crop_top, crop_left, aesthetic_score)               refiner
 *              (the negative row uses negative_aesthetic_score; the base rows are equal). */
#ifndef TDM_PIPELINE_SDXL_H
#define TDM_PIPELINE_SDXL_H

#include "io/model_dir.h"
#include "pipeline/generate.h"
#include "pipeline/sd_model.h"

/* 1 for the SDXL base and refiner families. */
int tdm_sdxl_family(tdm_model_family f);

/* diffusers folder: the family of an SDXL pipeline (base when model_index.json lists text_encoder, else
 * refiner) and the model_index.json flags. Called by the folder loader when model_index.json lists
 * text_encoder_2 or the UNet has a text_time embedding; *is_xl = 0 when neither holds. */
tdm_code tdm_sdxl_detect_dir(tdm_sd_model *m, const tdm_model_dir *md, const tdm_unet_config *ucfg, int *is_xl,
                             tdm_status *st);

/* diffusers folder: text_encoder (base) and text_encoder_2 (TDM_SD_TEXT_ENCODER), tokenizer and
 * tokenizer_2 (TDM_SD_TOKENIZER), pad ids and split token. */
tdm_code tdm_sdxl_load_dir_text(tdm_sd_model *m, const tdm_model_dir *md, const tdm_sd_load_opts *o, unsigned want,
                                tdm_status *st);

/* single file: the two text towers (m->single, m->single_info detected), the tokenizer (o->tokenizer_dir
 * or the Hugging Face cache) and the family's pad conventions. */
tdm_code tdm_sdxl_load_single_text(tdm_sd_model *m, const tdm_sd_load_opts *o, unsigned want, tdm_status *st);

/* After every requested component is loaded: the widths agree (text towers vs the UNet's
 * cross_attention_dim; text_embeds + time ids vs projection_class_embeddings_input_dim), n_time_ids
 * (6 or 5) and text_embeds_dim set, requires_aesthetics_score consistent with the UNet. */
tdm_code tdm_sdxl_finish(tdm_sd_model *m, tdm_status *st);

/* The text towers a model conditions on (1 for SD1.x / SD2.x / the refiner, 2 for SDXL base), in
 * channel order; the last one gives the pooled text_embeds (SDXL). */
typedef struct tdm_text_tower {
    const tdm_clip_tokenizer *tokenizer;
    const tdm_clip_text *encoder;
    int pad_id;
    const char *split_token; /* NULL: none */
} tdm_text_tower;

int tdm_text_towers(const tdm_sd_model *m, tdm_text_tower towers[2]);

/* Width of the conditioning the model's towers produce (sum of hidden sizes; 0 when none loaded). */
int tdm_text_context_width(const tdm_sd_model *m);

/* The time_ids row of a plan (m->n_time_ids values): negative = 0 for the prompt, 1 for the negative
 * prompt (refiner: negative aesthetic score). */
void tdm_sdxl_time_ids(const tdm_sd_model *m, const tdm_gen_plan *plan, int negative, float *out);

#endif
