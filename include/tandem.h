/* tandem: text-to-image diffusion engine with an adaptive student-teacher pipeline.
 * Public C API. One header; everything a program needs is declared here.
 *
 * Conventions:
 *  - Every call that can fail returns a tdm_code (0 = TDM_OK) and fills a tdm_status
 *    with a one-line message naming the file, tensor, field or value at fault.
 *  - Parameter structs have a tdm_*_params_init() that sets documented defaults.
 *  - No global mutable state: every context is an explicit object with _open/_free.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tdm_code {
    TDM_OK = 0,
    TDM_ERR_IO = 1,          /* file missing, unreadable, short read */
    TDM_ERR_FORMAT = 2,      /* malformed file: header, JSON, image, tensor layout */
    TDM_ERR_INVALID_ARG = 3, /* bad parameter from the caller */
    TDM_ERR_NOMEM = 4,       /* allocation failed */
    TDM_ERR_UNSUPPORTED = 5, /* valid input the engine does not handle (yet) */
    TDM_ERR_MISSING = 6,     /* a required tensor, file or field is absent */
    TDM_ERR_CANCELLED = 7,   /* the progress callback asked to stop */
    TDM_ERR_INTERNAL = 8     /* a bug: please report */
} tdm_code;

/* Status of a failed call: the code plus a message for the user. */
typedef struct tdm_status {
    tdm_code code;
    char msg[1024];
} tdm_status;

const char *tdm_code_name(tdm_code code);

/* ---- Fixture check (tandem check) ------------------------------------------------------------ */

/* Receives one report line (no trailing newline). */
typedef void (*tdm_check_line_fn)(void *user, const char *line);

/* Runs the fixture folder `dir` (case.json + io.safetensors + model folders, the format of the
 * reference fixtures) and reports per output tensor max-abs and relative-L2 error against the
 * expected values with PASS/FAIL. n_threads <= 0: all CPUs. *n_fail counts failed comparisons.
 * A fixture kind the engine does not handle returns TDM_ERR_UNSUPPORTED. */
tdm_code tdm_check_fixture(const char *dir, int n_threads, tdm_check_line_fn line_fn, void *user, int *n_pass,
                           int *n_fail, tdm_status *st);

/* ---- Version ---------------------------------------------------------------------------------- */

#define TDM_VERSION_STRING "0.1.0"
const char *tdm_version(void);

/* ---- Images ----------------------------------------------------------------------------------- */

/* An 8-bit image: pixels [height, width, channels] row-major, channels = 3 (RGB). Owned by the
 * struct when it came from the library; release with tdm_image_free. */
typedef struct tdm_image {
    int width, height, channels;
    uint8_t *pixels;
} tdm_image;

void tdm_image_free(tdm_image *img);

/* Loads a PNG or JPEG (format from the file's magic bytes, not its name) as RGB8: gray, palette and
 * 16-bit become RGB8, alpha is dropped. Refuses sides over 16384 px or more than 2^28 pixels;
 * a corrupt or truncated file is TDM_ERR_FORMAT with the reason. */
tdm_code tdm_image_load(const char *path, tdm_image *out, tdm_status *st);

/* Writes img as an 8-bit RGB PNG. parameters (may be NULL): stored in a text chunk with the key
 * "parameters" (A1111 / stable-diffusion-webui convention; tEXt when ASCII, else iTXt UTF-8). */
tdm_code tdm_image_save_png(const char *path, const tdm_image *img, const char *parameters, tdm_status *st);

/* Reads the "parameters" text chunk of a PNG file; *text is NULL when there is none.
 * Release with tdm_free. */
tdm_code tdm_image_read_parameters(const char *path, char **text, tdm_status *st);

/* Releases memory the library handed out (strings). */
void tdm_free(void *p);

/* ---- Engine: threads -------------------------------------------------------------------------- */

typedef struct tdm_engine tdm_engine;

typedef struct tdm_engine_params {
    int n_threads; /* worker threads; <= 0: all online CPUs (default 0) */
} tdm_engine_params;

void tdm_engine_params_init(tdm_engine_params *p);
tdm_code tdm_engine_create(const tdm_engine_params *p, tdm_engine **out, tdm_status *st);
void tdm_engine_free(tdm_engine *engine);
int tdm_engine_threads(const tdm_engine *engine);

/* ---- Model ------------------------------------------------------------------------------------ */

typedef struct tdm_model tdm_model;

typedef enum tdm_prediction {
    TDM_PREDICTION_AUTO = 0, /* from the scheduler config (diffusers folder) or the checkpoint */
    TDM_PREDICTION_EPSILON,
    TDM_PREDICTION_V         /* v_prediction (SD 2.x 768 models) */
} tdm_prediction;

typedef struct tdm_model_params {
    const char *path;          /* diffusers folder (model_index.json) or single .safetensors file */
    const char *tokenizer_dir; /* folder with vocab.json + merges.txt; NULL: <path>/tokenizer */
    tdm_prediction prediction; /* default TDM_PREDICTION_AUTO */
} tdm_model_params;

void tdm_model_params_init(tdm_model_params *p);
/* Loads and validates every component. A model is read-only once loaded: several engines may
 * generate with it at the same time. */
tdm_code tdm_model_load(const tdm_model_params *p, tdm_model **out, tdm_status *st);
void tdm_model_free(tdm_model *model);

typedef struct tdm_model_info {
    const char *name;          /* file or folder name without extension (the A1111 "Model:" field) */
    const char *family;        /* "sd1", "sd2", ... */
    int is_lcm;                /* UNet with time_cond_proj_dim > 0 (latent consistency model) */
    int v_prediction;          /* 1 when the model predicts v */
    int default_width, default_height; /* UNet sample_size * 8 */
    int default_steps;         /* 20; LCM: 4 */
    float default_guidance;    /* 7.5; LCM: 8.5 */
    const char *default_sampler; /* "euler_a"; LCM: "lcm" */
} tdm_model_info;

void tdm_model_get_info(const tdm_model *model, tdm_model_info *info);

/* ---- Generation ------------------------------------------------------------------------------- */

typedef enum tdm_stage {
    TDM_STAGE_ENCODE_TEXT = 0, /* tokenizer + text encoder (step 0..1 of 1) */
    TDM_STAGE_ENCODE_IMAGE,    /* img2img: VAE encoder (step 0..1 of 1) */
    TDM_STAGE_DENOISE,         /* sampler loop: step 0..total */
    TDM_STAGE_DECODE           /* VAE decoder (step 0..1 of 1) */
} tdm_stage;

const char *tdm_stage_name(tdm_stage stage);

/* Called at the start of every stage (step 0) and after each unit of work (step 1..total).
 * Returning nonzero cancels: tdm_generate returns TDM_ERR_CANCELLED. */
typedef int (*tdm_progress_fn)(void *user, tdm_stage stage, int step, int total);

/* Sampler names accepted in tdm_generate_params.sampler: "ddim", "euler", "euler_a", "dpmpp_2m",
 * "dpmpp_2m_karras", "unipc", "ddpm", "lcm". *n receives the count. */
const char *const *tdm_sampler_names(int *n);

typedef struct tdm_generate_params {
    const char *prompt;          /* required (may be "") */
    const char *negative_prompt; /* NULL or "": empty unconditional prompt */
    int steps;                   /* 0: model default (20; LCM 4); 1..1000 */
    float guidance_scale;        /* < 0: model default (7.5; LCM 8.5); <= 1 skips the unconditional pass */
    const char *sampler;         /* NULL: model default ("euler_a"; LCM "lcm") */
    float eta;                   /* DDIM eta (0 = deterministic DDIM), default 0 */
    uint64_t seed;               /* default 0 */
    int width, height;           /* 0: init image size (img2img) or model default; multiples of 8 */
    float strength;              /* img2img: fraction of the schedule re-run, (0, 1], default 0.75 */
    const tdm_image *init_image; /* NULL: text to image; else image to image (resized to width x height) */
    int clip_skip;               /* 1 = last CLIP layer (default), 2 = penultimate, ... (A1111 convention) */
    int emphasis;                /* 1 (default): A1111 (word:1.2) [word] syntax; 0: prompt taken literally */
    tdm_progress_fn progress;    /* may be NULL */
    void *progress_user;
} tdm_generate_params;

void tdm_generate_params_init(tdm_generate_params *p);

/* Filled by tdm_generate (optional). */
typedef struct tdm_generate_stats {
    int steps_run;        /* sampler steps actually run (img2img: fewer than steps) */
    int unet_calls;       /* UNet forward calls */
    int unet_batch;       /* batch of each call: 2 with classifier-free guidance, 1 without */
    int prompt_chunks;    /* 77-token windows per prompt */
    double seconds_encode, seconds_denoise, seconds_decode;
    size_t arena_peak;    /* bytes of per-run activations at the high-water mark */
} tdm_generate_stats;

/* Text to image (init_image NULL) or image to image. *out receives a new RGB8 image (tdm_image_free).
 * The same parameters and seed give a bit-identical image whatever the engine's thread count.
 * An engine runs one generation at a time (use one engine per concurrent generation; they may share
 * the model). Noise streams and the pipeline are described in docs/CLI.md. */
tdm_code tdm_generate(tdm_engine *engine, const tdm_model *model, const tdm_generate_params *p, tdm_image *out,
                      tdm_generate_stats *stats, tdm_status *st);

/* Formats the A1111 "parameters" text for a generation (defaults resolved as tdm_generate does):
 *   <prompt>\nNegative prompt: <negative>\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42,
 *   Size: 512x512, Model: <name>[, Denoising strength: 0.75][, Eta DDIM: 0.5][, Clip skip: 2]
 *   [, Emphasis: None], Version: tandem 0.1.0
 * (the negative line only when a negative prompt was used: guidance > 1 and not LCM; numbers as
 * Python prints them, e.g. 7.0). Returns the length the full text needs
 * (like snprintf); buf may be NULL with bufsz 0. Invalid parameters give -1. */
int tdm_format_parameters(const tdm_model *model, const tdm_generate_params *p, char *buf, size_t bufsz);

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
