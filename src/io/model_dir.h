/* Locating the files of a Stable Diffusion model as users have it on disk:
 *  - a diffusers pipeline folder (model_index.json + one folder per component, each with config.json
 *    and diffusion_pytorch_model[.fp16].safetensors / model[.fp16].safetensors, or shards listed in
 *    *.safetensors.index[.fp16].json), also a Hugging Face cache repo folder (models--org--name);
 *  - a single-file checkpoint (.safetensors with LDM names: model.diffusion_model.*,
 *    first_stage_model.*, cond_stage_model.*), whose family is detected from tensor names and shapes.
 * Pickle files (.ckpt/.pt/.pth/.bin) are refused with the file to convert named.
 * Also: tokenizer lookup (explicit folder, the pipeline's tokenizer/, the Hugging Face cache) and the
 * default scheduler configuration of each family. Nothing here reads weights beyond headers (and one
 * small tensor for the SD2 v-prediction heuristic). */
#ifndef TDM_IO_MODEL_DIR_H
#define TDM_IO_MODEL_DIR_H

#include <cjson/cJSON.h>

#include "base/error.h"
#include "io/safetensors.h"
#include "io/weights.h"

#define TDM_PATH_MAX 1024
#define TDM_MAX_COMPONENTS 16
#define TDM_MAX_SHARDS 256

typedef enum tdm_model_family {
    TDM_FAMILY_UNKNOWN = 0,
    TDM_FAMILY_SD1,         /* CLIP ViT-L/14 text (768), UNet 320x[1,2,4,4], conv proj_in */
    TDM_FAMILY_SD2,         /* OpenCLIP ViT-H/14 text (1024), linear proj_in, head dim 64 */
    TDM_FAMILY_SDXL,        /* two text encoders (768 + 1280 = 2048 context) */
    TDM_FAMILY_SDXL_REFINER /* OpenCLIP bigG only (1280 context) */
} tdm_model_family;

/* "sd1", "sd2", "sdxl", "sdxl-refiner", "unknown" */
const char *tdm_family_name(tdm_model_family f);

typedef enum tdm_model_layout { TDM_LAYOUT_DIFFUSERS = 1, TDM_LAYOUT_SINGLE_FILE = 2 } tdm_model_layout;

/* One component of a diffusers pipeline folder. */
typedef struct tdm_component_files {
    char name[64];        /* key in model_index.json: "unet", "vae", "text_encoder", "tokenizer", ... */
    char library[64];     /* "diffusers", "transformers" ("" when null) */
    char class_name[128]; /* "UNet2DConditionModel", "CLIPTextModel", ... ("" when null) */
    char dir[TDM_PATH_MAX];
    char config_path[TDM_PATH_MAX]; /* config.json / scheduler_config.json; "" when absent */
    char index_path[TDM_PATH_MAX];  /* sharded weights: the *.safetensors.index*.json; "" otherwise */
    char **weight_files;            /* absolute-ish paths, n_weight_files >= 1 for weight components */
    int n_weight_files;
    int is_fp16_variant;   /* the files are the *.fp16.* variant */
    int has_config;        /* config_path exists */
    int has_weights;       /* safetensors weights were found (0 for tokenizer/scheduler) */
    char pickle_path[TDM_PATH_MAX]; /* only pickle weights (.bin) were found: this file ("" otherwise) */
} tdm_component_files;

typedef struct tdm_model_dir_opts {
    int prefer_fp16; /* use *.fp16.safetensors variants when present (falls back to the default files) */
} tdm_model_dir_opts;

/* A diffusers pipeline folder. */
typedef struct tdm_model_dir {
    char root[TDM_PATH_MAX];          /* folder holding model_index.json (snapshot resolved) */
    char pipeline_class[128];         /* model_index.json _class_name ("" when absent) */
    tdm_component_files comp[TDM_MAX_COMPONENTS];
    int n_comp;
} tdm_model_dir;

/* Reads model_index.json in `path` (or in the snapshot of a Hugging Face cache repo folder) and
 * locates the config and weight files of every listed component. Components whose entry is
 * [null, null] are skipped. Weights are located but not opened; a component listed in
 * model_index.json whose folder or weights are absent keeps has_weights = 0 (the caller decides
 * whether it needs it: see tdm_model_dir_need). Pickle-only weights are refused here. */
tdm_code tdm_model_dir_open(tdm_model_dir *md, const char *path, const tdm_model_dir_opts *opts, tdm_status *st);
void tdm_model_dir_free(tdm_model_dir *md);

/* The component `name`, NULL when model_index.json does not list it. */
const tdm_component_files *tdm_model_dir_find(const tdm_model_dir *md, const char *name);
/* Same, but a missing component / config / weights is TDM_ERR_MISSING naming what was looked for. */
tdm_code tdm_model_dir_need(const tdm_model_dir *md, const char *name, int need_weights,
                            const tdm_component_files **out, tdm_status *st);

/* Opens the component's weight files into ws (prefix/mapper as in tdm_weights_add_file). For sharded
 * weights it checks that every shard in the index exists and that each tensor lives in the shard the
 * index names (and that no shard holds a tensor the index does not list). */
tdm_code tdm_component_add_weights(const tdm_component_files *c, tdm_weights *ws, tdm_name_mapper mapper,
                                   void *ctx, tdm_status *st);

/* ---- single-file checkpoints ---------------------------------------------------------------- */

typedef enum tdm_text_encoder_kind {
    TDM_TE_NONE = 0,
    TDM_TE_HF_CLIP,     /* transformers CLIPTextModel names (text_model.*) */
    TDM_TE_OPEN_CLIP    /* OpenCLIP names (transformer.resblocks.N.*, token_embedding, ln_final, ...) */
} tdm_text_encoder_kind;

typedef struct tdm_single_file_info {
    tdm_model_family family;
    /* tensor-name prefixes of each component ("" = component absent from the file) */
    char unet_prefix[64];         /* "model.diffusion_model." */
    char vae_prefix[64];          /* "first_stage_model." */
    char text_encoder_prefix[64]; /* SD1: "cond_stage_model.transformer." (rest: text_model.*),
                                     SD2: "cond_stage_model.model." (OpenCLIP names) */
    tdm_text_encoder_kind text_encoder_kind;
    int text_model_prefix_missing; /* SD1 file with cond_stage_model.transformer.embeddings.* (no
                                      "text_model."): the loader must prepend "text_model." */
    int context_dim;     /* UNet cross-attention width from attn2.to_k (768 / 1024 / 2048 / 1280) */
    int in_channels;     /* UNet input channels (4; 9 = inpainting; 8 = instruct-pix2pix; 5 = depth) */
    int linear_proj_in;  /* UNet proj_in is a Linear (SD2) rather than a 1x1 conv (SD1) */
    int v_prediction_guess; /* SD2: 1 when the ComfyUI weight-statistics heuristic says v-prediction
                               (std of output_blocks.11.1.transformer_blocks.0.norm1.bias > 0.09) */
    double v_stat;       /* that statistic (-1 when not computed) */
    /* SDXL (appended): the OpenCLIP ViT-bigG tower with text_projection, "conditioner.embedders.1.model."
     * (base; text_encoder_prefix is then "conditioner.embedders.0.transformer.", CLIP ViT-L in transformers
     * names) or "conditioner.embedders.0.model." (refiner, its only text encoder); "" when absent. */
    char text_encoder_2_prefix[64];
} tdm_single_file_info;

/* Detects the family and the component prefixes of an opened single-file checkpoint (SD1.x, SD2.x,
 * SDXL base and refiner: conditioner.embedders.* text towers whose widths must add up to the UNet's
 * cross-attention width); a file with no UNet is TDM_ERR_FORMAT. */
tdm_code tdm_single_file_detect(const tdm_safetensors *f, tdm_single_file_info *info, tdm_status *st);

/* ---- tokenizer lookup ----------------------------------------------------------------------- */

typedef struct tdm_tokenizer_files {
    char dir[TDM_PATH_MAX];
    char vocab_path[TDM_PATH_MAX];  /* vocab.json */
    char merges_path[TDM_PATH_MAX]; /* merges.txt */
    char source[TDM_PATH_MAX + 64]; /* where it came from, for messages / the model description */
    int pad_id;       /* from special_tokens_map.json / tokenizer_config.json pad_token: "<|endoftext|>"
                         = 49407 (SD1), "!" = 0 (SD2, OpenCLIP); -1 when not stated (use the family default) */
    char pad_token[32];
} tdm_tokenizer_files;

/* Finds vocab.json + merges.txt: `explicit_dir` when given (must hold them, or a tokenizer/ subfolder
 * that does), else `pipeline_dir`/tokenizer when given, else the Hugging Face cache
 * ($HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub) for the
 * repos the family uses (SD1: openai/clip-vit-large-patch14, runwayml/stable-diffusion-v1-5, ...;
 * SD2: stabilityai/stable-diffusion-2-1 tokenizer/, laion/CLIP-ViT-H-14-laion2B-s32B-b79K; SDXL:
 * stabilityai/stable-diffusion-xl-base-1.0 tokenizer/ and tokenizer_2/, openai/clip-vit-large-patch14;
 * the SDXL refiner: tokenizer_2/ of the refiner or the base). SDXL pipelines without tokenizer/ (the
 * refiner) use `pipeline_dir`/tokenizer_2.
 * Not found: TDM_ERR_MISSING with a message that says which files, which --tokenizer folder and
 * where to get them. */
tdm_code tdm_tokenizer_find(tdm_model_family family, const char *explicit_dir, const char *pipeline_dir,
                            tdm_tokenizer_files *out, tdm_status *st);

/* Default pad id of a family's tokenizer: SD1 49407 (<|endoftext|>), SD2 0 ("!"); SDXL: tokenizer's 49407
 * (its tokenizer_2 pads with "!" = 0), SDXL refiner 0 (tokenizer_2 only). */
int tdm_family_default_pad_id(tdm_model_family f);

/* ---- scheduler defaults --------------------------------------------------------------------- */

/* The scheduler_config.json a family's published pipeline ships (SD1: PNDM, SD2: DDIM, SDXL base and
 * refiner: EulerDiscrete; all scaled_linear 0.00085..0.012, 1000 steps, steps_offset 1, leading spacing,
 * no clipping) with
 * prediction_type set to `prediction` ("epsilon" / "v_prediction"). Caller frees with cJSON_Delete. */
cJSON *tdm_default_scheduler_config(tdm_model_family family, const char *prediction);

/* ---- helpers -------------------------------------------------------------------------------- */

/* Resolves a Hugging Face hub cache repo folder (models--org--name: refs/main + snapshots/<hash>/)
 * into out = <repo>/snapshots/<hash>[/subdir]: the refs/main snapshot when it exists and want(dir)
 * accepts it (want NULL = any), else the first snapshot by name that does. 1 found, 0 not. */
int tdm_hf_snapshot(const char *repo, const char *subdir, int (*want)(const char *dir), char *out, size_t n);

/* 1 when path is an existing regular file / directory. */
int tdm_path_is_file(const char *path);
int tdm_path_is_dir(const char *path);
/* snprintf into buf; TDM_ERR_INVALID_ARG when it does not fit. */
tdm_code tdm_path_join(char *buf, size_t n, const char *a, const char *b, tdm_status *st);

/* ---- SDXL (appended) ------------------------------------------------------------------------ */

/* Fills out for a folder holding vocab.json + merges.txt (pad token from special_tokens_map.json /
 * tokenizer_config.json as tdm_tokenizer_find does); TDM_ERR_MISSING when the files are absent. SDXL
 * pipelines use it for tokenizer_2/ (pad "!"). */
tdm_code tdm_tokenizer_files_in(const char *dir, const char *source, tdm_tokenizer_files *out, tdm_status *st);

#endif
