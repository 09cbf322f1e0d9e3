/* A Stable Diffusion 1.x / 2.x / XL model as users have it on disk, loaded for generation:
 * tokenizer, text encoder, UNet, VAE and scheduler configuration, from
 *  - a diffusers pipeline folder (model_index.json; fp16 variants and sharded weights), or a Hugging
 *    Face cache repo folder (models--org--name), or
 *  - a single-file checkpoint (.safetensors with LDM names), mapped once and shared by the components.
 * See docs/FORMATS.md for what is accepted, inferred and refused. */
#ifndef TDM_PIPELINE_SD_MODEL_H
#define TDM_PIPELINE_SD_MODEL_H

#include "base/error.h"
#include "io/model_dir.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/schedule.h"

/* The tokenizer stays opaque here (its header is included by the .c files that use it). */
typedef struct tdm_clip_tokenizer tdm_clip_tokenizer;

/* Components (bit mask for tdm_sd_load_opts.components). */
enum {
    TDM_SD_TOKENIZER = 1u << 0,
    TDM_SD_TEXT_ENCODER = 1u << 1,
    TDM_SD_UNET = 1u << 2,
    TDM_SD_VAE = 1u << 3,
    TDM_SD_SCHEDULER = 1u << 4, /* scheduler_config.json, or the family default */
    TDM_SD_ALL = 0x1fu
};

typedef struct tdm_sd_load_opts {
    const char *path;          /* pipeline folder, hub cache repo folder, or .safetensors single file */
    const char *tokenizer_dir; /* optional: folder with vocab.json + merges.txt (or a tokenizer/ subfolder) */
    const char *prediction;    /* optional override: "epsilon" ("eps"), "v_prediction" ("v"), "sample";
                                  NULL / "" / "auto": from scheduler_config.json (diffusers) or the family
                                  default (single files; SD2 uses a weight-statistics guess) */
    unsigned components;       /* TDM_SD_* mask; 0 = TDM_SD_ALL */
    int prefer_fp16;           /* diffusers: use *.fp16.safetensors variants when present */
    const char *unet_component; /* diffusers: the model_index.json component loaded as the UNet; NULL / "" =
                                   "unet". E.g. "unet_student": the consistency-distilled student that
                                   models/shapes ships next to the teacher (docs/TRAINING.md); tokenizer,
                                   text encoder, VAE and scheduler stay the folder's. Single files: only
                                   "unet" (they hold one UNet). */
    /* LoRA (models/lora_model.h, docs/LORA.md): applied after the components are loaded */
    const tdm_lora_spec *loras; /* [n_loras] */
    int n_loras;
    int lora_merge;             /* 0: UNet LoRA at run time over the base weights; 1: merged at load */
} tdm_sd_load_opts;

void tdm_sd_load_opts_init(tdm_sd_load_opts *o);

typedef struct tdm_sd_model {
    tdm_model_family family; /* tdm_family_name(): "sd1", "sd2" */
    tdm_model_layout layout;
    unsigned loaded;         /* TDM_SD_* components present below */

    tdm_clip_tokenizer *tokenizer;  /* TDM_SD_TOKENIZER */
    tdm_clip_text *text_encoder;    /* TDM_SD_TEXT_ENCODER */
    tdm_unet *unet;                 /* TDM_SD_UNET */
    tdm_vae *vae;                   /* TDM_SD_VAE */
    tdm_scheduler_config scheduler; /* TDM_SD_SCHEDULER (prediction override applied) */

    /* Text conditioning as the family was trained (what the pipeline feeds the UNet). */
    int pad_id;         /* SD1: 49407 (<|endoftext|>), SD2: 0 ("!"); a diffusers tokenizer's own pad token */
    int max_length;     /* 77 tokens per window */
    int clip_skip;      /* hidden_states[-clip_skip] (1 = last layer; SD2's 23-layer encoder already ends at
                           OpenCLIP's penultimate layer) */
    int clip_final_ln;  /* 1: final_layer_norm applied to the selected state */
    int cross_attention_dim; /* UNet context width (768 / 1024); 0 when unknown */
    int latent_channels;     /* 4 */
    int vae_scale;           /* image / latent size (8); 0 when the VAE was not loaded */
    double vae_scaling_factor; /* 0.18215 */

    /* Where everything came from (for --verbose and error reports). */
    char source[2048];
    char prediction_source[160]; /* "scheduler_config.json", "--prediction", "SD2 weight statistics ..." */
    char unet_component[64];     /* the component the UNet came from ("unet", "unet_student"; single file: "unet") */
    tdm_tokenizer_files tokenizer_files;

    /* single-file layout: the mapped file every component's weights view (not used otherwise) */
    tdm_safetensors single;
    tdm_single_file_info single_info;

    /* ---- SDXL (family "sdxl" / "sdxl-refiner"; pipeline/sdxl.h, docs/SDXL.md). Appended. ---- */
    tdm_clip_text *text_encoder_2;   /* TDM_SD_TEXT_ENCODER: OpenCLIP ViT-bigG with text_projection (its
                                        projected pooled output is the UNet's text_embeds). The refiner has
                                        only this one: text_encoder is then NULL. */
    tdm_clip_tokenizer *tokenizer_2; /* tokenizer_2/ when the folder has both (NULL: `tokenizer` serves both
                                        towers; the refiner's only tokenizer is `tokenizer`) */
    tdm_tokenizer_files tokenizer_2_files;
    int pad_id_2;                    /* text_encoder_2's pad id (tokenizer_2 pads with "!" = 0) */
    char split_token_2[16];          /* tokenizer_2's pad token when it is cut out of the prompt as its own
                                        token (diffusers' quirk: every literal '!' becomes id 0); "" none */
    int force_zeros_for_empty_prompt; /* model_index.json (SDXL base default 1, refiner 0): an empty negative
                                         prompt conditions on zeros */
    int requires_aesthetics_score;   /* refiner: time_ids (orig h, w, crop top, left, aesthetic score) */
    int n_time_ids;                  /* 6 (base) / 5 (refiner); 0 for SD1.x / SD2.x */
    int text_embeds_dim;             /* pooled projected width (1280); 0 for SD1.x / SD2.x */
    /* LoRA (pipeline/sd_lora.c): the files applied and the base models the adapted UNet / text encoder
     * view (owned); lora_base: a model derived by tdm_sd_model_derive_lora borrows every other component
     * of lora_base (NULL for loaded models) */
    struct tdm_lora_stack *lora;
    const struct tdm_sd_model *lora_base;
} tdm_sd_model;

/* Loads the requested components. Every error names the file and the tensor or field at fault.
 * SDXL base / refiner (diffusers folders and single files): see pipeline/sdxl.h. */
tdm_code tdm_sd_model_load(tdm_sd_model **out, const tdm_sd_load_opts *opts, tdm_status *st);
void tdm_sd_model_free(tdm_sd_model *m);

/* "epsilon"/"eps", "v_prediction"/"v", "sample" -> enum; TDM_ERR_INVALID_ARG naming the value. */
tdm_code tdm_sd_parse_prediction(const char *s, tdm_prediction_type *out, tdm_status *st);
const char *tdm_prediction_name(tdm_prediction_type p);

/* ---- LoRA (pipeline/sd_lora.c) ---- */
/* Applies opts->loras to a loaded model (called by tdm_sd_model_load). */
tdm_code tdm_sd_model_apply_lora(tdm_sd_model *m, const tdm_sd_load_opts *opts, tdm_status *st);
/* A model sharing base's components with the LoRA files applied (tdm_model_derive_lora); base must
 * outlive *out. Freed by tdm_sd_model_free (which then frees only what the derivation made). */
tdm_code tdm_sd_model_derive_lora(const tdm_sd_model *base, const tdm_lora_spec *specs, int n, int merge,
                                  tdm_sd_model **out, tdm_status *st);
/* Frees a derived model (called by tdm_sd_model_free when m->lora_base is set). */
void tdm_sd_model_free_derived(tdm_sd_model *m);
/* Describes m->lora into buf (snprintf contract). */
int tdm_sd_model_lora_summary(const tdm_sd_model *m, char *buf, size_t n);

/* ---- LCM-LoRA defaults (pipeline/sd_lora.c; added by the LCM-LoRA helper) ---- */
/* 1 when m's UNet carries an LCM-LoRA (a file of m->lora with UNet modules, a non-zero scale and
 * tdm_lora.is_lcm: metadata "tandem.kind" = "lcm-lora" or the name rule, docs/LORA.md): the model's
 * defaults are then LCM-LoRA's (sampler "lcm", 4 steps, guidance 1). */
int tdm_sd_model_lcm_lora(const tdm_sd_model *m);
/* ---- end of the LCM-LoRA block ---- */


/* ---- Additions (H5, memory): releasing the resident pages of mapped weights ---- */
/* Drops the resident pages of the weights of the components in `components` (TDM_SD_TEXT_ENCODER,
 * TDM_SD_UNET, TDM_SD_VAE) that view read-only mapped safetensors files (madvise MADV_DONTNEED): the
 * model stays valid and unchanged, the pages are read again (page cache, else the file) when next used.
 * Weights held in process memory (LoRA merges, converted tensors) are left alone. Safe while other
 * threads use the model. Returns the bytes advised (0 where madvise is unavailable). */
int64_t tdm_sd_model_release_pages(const tdm_sd_model *m, unsigned components);

#endif
