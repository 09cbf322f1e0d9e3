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
    const char *unet_component; /* diffusers folders: the model_index.json component loaded as the UNet;
                                   NULL = "unet". "unet_student": the distilled student shipped next to the
                                   teacher in models/shapes (sample it with the "consistency" sampler) */
    /* LoRA (lora block at the end; docs/LORA.md): n_loras files applied to the UNet (and to the text
     * encoder where a file has modules for it). NULL / 0 by default. */
    const struct tdm_lora_spec *loras;
    int n_loras;
    int lora_merge; /* 0 (default): the UNet adds the LoRA terms at run time over the unchanged base weights;
                       1: merged at load into copies of the targeted weights (faster steps, more memory) */
} tdm_model_params;

void tdm_model_params_init(tdm_model_params *p);
/* Loads and validates every component. A model is read-only once loaded: several engines may
 * generate with it at the same time. */
tdm_code tdm_model_load(const tdm_model_params *p, tdm_model **out, tdm_status *st);
void tdm_model_free(tdm_model *model);

typedef struct tdm_model_info {
    const char *name;          /* file or folder name without extension (the A1111 "Model:" field) */
    const char *family;        /* "sd1", "sd2", ... */
    int is_lcm;                /* UNet with time_cond_proj_dim > 0 (latent consistency model), or an LCM-LoRA
                                  applied (docs/LORA.md "LCM-LoRA defaults") */
    int v_prediction;          /* 1 when the model predicts v */
    int default_width, default_height; /* UNet sample_size * 8 */
    int default_steps;         /* 20; LCM: 4 */
    float default_guidance;    /* 7.5; LCM: 8.5; LCM-LoRA: 1 */
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
    /* ControlNet (see the controlnet block at the end): n_controls entries, applied together (their
     * residuals summed, as diffusers' MultiControlNetModel); NULL / 0 by default. */
    const struct tdm_control *controls;
    int n_controls;
    /* SDXL micro-conditioning (docs/SDXL.md; ignored by SD 1.x / 2.x), diffusers' defaults: */
    int original_width, original_height; /* original_size; 0: the output size */
    int crop_left, crop_top;             /* crops_coords_top_left (x, y), default 0, 0 */
    int target_width, target_height;     /* target_size (SDXL base); 0: the output size */
    float aesthetic_score;               /* SDXL refiner: default 6.0 */
    float negative_aesthetic_score;      /* SDXL refiner, negative prompt's row: default 2.5 */
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
    int controlnet_calls; /* ControlNet forward calls (one per active ControlNet per step) */
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


/* ==== adaptive student-teacher pipeline (docs/ADAPTIVE.md) ======================================
 * The student makes an image; an oracle scores it against the prompt; when the score is below a
 * threshold tau the teacher improves it (refine: re-noise the student's result and let the teacher
 * denoise; regenerate: the teacher samples from the student's initial noise), otherwise the student's
 * image is kept (Starodubcev et al., "Your Student is Better Than Expected", CVPR 2024). */

/* ---- oracles: score(prompt, RGB8 image) -> float (higher is better) ---- */

typedef struct tdm_oracle tdm_oracle;

/* A user-supplied oracle (also what tests use for a known score). */
typedef tdm_code (*tdm_oracle_fn)(void *user, const char *prompt, const tdm_image *image, float *score,
                                  tdm_status *st);

/* Registry names: "checker" (shapes-world ground-truth checker, score in [0, 1]; the prompt must be a
 * shapes-world caption), "imagereward", "clipscore", "aesthetic", "pickscore", "hpsv2" (model-backed:
 * model_path names the oracle's weights, "MAIN[,EXTRA]" as docs/ADAPTIVE.md lists), and two
 * deterministic test oracles: "constant:V" (always V) and "brightness" (mean of the RGB values / 255).
 * *n receives the count of the checker and model-backed names (the test oracles are not listed). */
const char *const *tdm_oracle_names(int *n);
/* model_path: NULL for "checker" and the test oracles. engine: threads for model-backed oracles (may
 * be NULL: one thread). Unknown names are TDM_ERR_INVALID_ARG listing the known ones. */
tdm_code tdm_oracle_open(const char *name, const char *model_path, tdm_engine *engine, tdm_oracle **out,
                         tdm_status *st);
/* Wraps fn (user must outlive the oracle); name is recorded in metadata. */
tdm_code tdm_oracle_from_fn(const char *name, tdm_oracle_fn fn, void *user, tdm_oracle **out, tdm_status *st);
tdm_code tdm_oracle_score(tdm_oracle *oracle, const char *prompt, const tdm_image *image, float *score,
                          tdm_status *st);
const char *tdm_oracle_get_name(const tdm_oracle *oracle);
void tdm_oracle_free(tdm_oracle *oracle);

/* ---- calibration: tau_k = k-th percentile of oracle scores of student samples ---- */

typedef struct tdm_calibration tdm_calibration;

/* numpy.percentile(values, k) with the default linear method: values sorted ascending, rank
 * r = k/100 * (n - 1), result = v[floor r] + (r - floor r) * (v[floor r + 1] - v[floor r]).
 * k in [0, 100]; n >= 1. `sorted` must be ascending. */
double tdm_percentile_sorted(const double *sorted, int n, double k);

/* Reads a calibration file (tandem calibrate's JSON, or the reference code's {"10": tau, ...}). */
tdm_code tdm_calibration_load(const char *path, tdm_calibration **out, tdm_status *st);
void tdm_calibration_free(tdm_calibration *c);
/* tau for percentile k in (0, 100) (from the stored scores: any k; a reference-code table: its keys
 * only). Errors name k and the file. */
tdm_code tdm_calibration_tau(const tdm_calibration *c, double k, double *tau, tdm_status *st);
/* tau such that exactly round(q n) of the n calibration scores lie below it (midpoint between the two
 * order statistics; q in [0, 1]); *share receives the realised share. Needs the stored scores. */
tdm_code tdm_calibration_tau_for_share(const tdm_calibration *c, double q, double *tau, double *share,
                                       tdm_status *st);
/* Number of scores stored (0 for a reference-code table). */
int tdm_calibration_count(const tdm_calibration *c);

/* ---- one adaptive generation ---- */

typedef enum tdm_adaptive_strategy {
    TDM_ADAPTIVE_REFINE = 0,    /* teacher denoises the re-noised student result */
    TDM_ADAPTIVE_REGENERATE = 1 /* teacher samples from the student's initial noise */
} tdm_adaptive_strategy;

typedef enum tdm_refine_convention {
    TDM_REFINE_STRENGTH = 0, /* diffusers img2img strength s (reference code): int(T/s + 1) grid steps,
                                the last T of them run */
    TDM_REFINE_NOISE = 1     /* paper Algorithm 1: x = sqrt(1 - sigma) x0 + sqrt(sigma) z, i.e. start
                                where 1 - alphabar_t = sigma (the nearest grid point that runs T steps) */
} tdm_refine_convention;

typedef enum tdm_adaptive_decision {
    TDM_DECISION_KEEP = 0,      /* oracle score >= tau: the student's image */
    TDM_DECISION_REFINE = 1,
    TDM_DECISION_REGENERATE = 2
} tdm_adaptive_decision;

const char *tdm_adaptive_decision_name(tdm_adaptive_decision d); /* "keep", "refine", "regenerate" */

/* One model's sampling settings (0 / NULL / negative: the model's defaults, as tdm_generate). */
typedef struct tdm_stage_settings {
    int steps;
    float guidance;      /* < 0: model default */
    const char *sampler; /* NULL: model default */
    float eta;
} tdm_stage_settings;

/* A drag-move of an edit (tandem edit --drag): the object under (x0, y0) of the source image (a 4-connected
 * region of nearly its colour) is cut out and put back so that that point lands on (x1, y1); pixels of the
 * source image as given (before the edit's crop and resize). */
typedef struct tdm_edit_drag {
    int x0, y0, x1, y1;
} tdm_edit_drag;
#define TDM_EDIT_MAX_DRAGS 16

typedef struct tdm_adaptive_params {
    const char *prompt;          /* required */
    const char *negative_prompt; /* NULL: "" */
    uint64_t seed;
    int width, height;           /* 0: the student model's default; the teacher uses the same size */
    int clip_skip, emphasis;     /* as tdm_generate_params (1, 1) */
    tdm_stage_settings student;  /* default: model defaults */
    tdm_stage_settings teacher;  /* default: model defaults */

    /* oracle: `oracle` when set, else opened by name (oracle_name, oracle_model) for this call */
    tdm_oracle *oracle;
    const char *oracle_name;  /* default "checker" */
    const char *oracle_model; /* NULL */

    /* threshold: tau when finite; else k (percentile in (0, 100)) or teacher_share (in [0, 1]) with the
     * calibration file. tau = +INFINITY sends every sample to the teacher, -INFINITY none. */
    double tau;           /* default NAN (unset) */
    double k;             /* default NAN (unset) */
    double teacher_share; /* default NAN (unset) */
    const char *calibration; /* calibration file (tandem calibrate) */
    tdm_calibration *calibration_obj; /* preloaded (overrides the file name); not owned */

    tdm_adaptive_strategy strategy;      /* default TDM_ADAPTIVE_REFINE */
    tdm_refine_convention refine_convention; /* default TDM_REFINE_STRENGTH */
    float refine_strength;               /* s in (0, 1], default 0.4 (reference code default) */
    float refine_noise;                  /* sigma in (0, 1), default 0.4 */
    int force_pixels;                    /* 1: hand over through pixels even when the VAE is shared */
    int keep_student_image;              /* 1: also return the student's image */
    /* 1: after the teacher's improvement the oracle scores the teacher's image too, and the student's image is
     * returned when it scores higher (the better of the two by the oracle; ties go to the teacher). One more
     * oracle call on the samples the teacher worked on, no UNet evaluation. 0 (default): the teacher's image,
     * as Algorithm 1 of the paper. */
    int keep_better;

    tdm_progress_fn progress; /* stages of the student and the teacher in turn; may be NULL */
    void *progress_user;
    /* ControlNet (controlnet block below): the same controls condition the student and the teacher (as
     * the paper does); each ControlNet must fit both UNets. NULL / 0 by default. */
    const struct tdm_control *controls;
    int n_controls;
    /* Teacher size (presets block; docs/PRESETS.md): 0 / 0 = the student's size. When it differs from the
     * student's, the student's image is resized to it (bicubic, as the reference code's PIL resize) before
     * the oracle, the refinement hands over through pixels, the kept image has the teacher's size, and
     * regeneration is refused (the initial noise has the student's shape). */
    int teacher_width, teacher_height;
    /* Editing (edit block below; docs/EDITING.md): with init_image the run edits that image SDEdit-style
     * (diffusers img2img: VAE-encode, noise to `strength`, denoise with the prompt as the target description):
     * the student edits, the oracle scores the edit, refine = the teacher refines the student's edit,
     * regenerate = the teacher edits the source from the same noise (its own img2img, same strength and
     * seed). The source is fitted to the size rule (tdm_edit_size) with the student's model; width / height
     * (both or neither) override it. NULL (default): text to image. */
    const tdm_image *init_image;
    float strength; /* (0, 1], default 0.75 */
    /* Masked editing (docs/EDITING.md "Masked editing"): with source_prompt (a description of the source
     * image) the region to edit is estimated DiffEdit-style with the student's UNet (where its noise
     * predictions for the prompt and for source_prompt differ), and every stage (the student's edit, the
     * refinement, the regeneration) keeps the source outside that region (blended latent diffusion). The
     * estimate's UNet evaluations count as the student's. NULL (default): plain SDEdit. */
    const char *source_prompt;
    int mask_maps;        /* noise samples averaged by the estimate, 1..64 (default 4) */
    float mask_strength;  /* their noise level, a fraction of the timesteps in (0, 1) (default 0.5) */
    float mask_threshold; /* DiffEdit's binarisation of the map clamped at 3 x its mean, in (0, 1) (0.5) */
    int mask_dilate;      /* latent pixels added around the region, 0..16 (default 1) */
    /* A given region instead of the estimate (an inpainting-style painted mask): an image of the source's
     * size, fitted (cropped, resized) as the source; pixels brighter than mid-grey (luma > 127) are edited.
     * Dilated by mask_dilate latent pixels; no UNet evaluation. Not together with source_prompt. */
    const tdm_image *mask_image;
    /* Paste-back (with a given or estimated region): every stage's decoded image keeps the source's pixels
     * outside the region, as inpainting tools paste the unmasked part back (a given region: its pixels as
     * fitted; an estimated one: each latent pixel's block). Blended denoising alone keeps the source's
     * latent there, which the VAE decodes only approximately. 0 (default): off. */
    int mask_paste;
    /* Region fill (with a given or estimated region): the edits that start from the source (the student's edit,
     * the teacher's regeneration) start inside the region from the source with the region filled from the
     * colours around it (pull-push), as inpainting front ends' "fill" masked content, so the edit is not drawn
     * over what the region held (a moved object's old colours, a shrunk object's old outline). 0 (default):
     * the source's own pixels ("original"). */
    int mask_fill;
    /* Drag-moves (edit_drag.c): before the edit, each dragged object is moved (cut out, its hole filled from
     * the colours around it, pasted at the new place); the edit region gains the old places and the new
     * places' seams (with mask_image: joined), never the moved objects' interiors, which are carried over; the
     * edit starts from that composite, as the stroke and collage inputs of SDEdit (Meng et al. 2022, Sec. 4).
     * With mask_fill the pasted pixels are not filled.
     * Not together with source_prompt. At most TDM_EDIT_MAX_DRAGS. */
    const tdm_edit_drag *drags;
    int n_drags;
    /* Teacher steps T of a refinement (0, default: teacher.steps). Lets a run refine with fewer teacher
     * steps than the teacher-only baseline uses (e.g. refine with 10 DDIM steps, compare with 50). */
    int refine_steps;
    /* The preset these settings came from (set by tdm_preset_apply; recorded in the metadata); NULL: none. */
    const char *preset;
} tdm_adaptive_params;

void tdm_adaptive_params_init(tdm_adaptive_params *p);

typedef struct tdm_adaptive_result {
    tdm_image image;         /* the final image (tdm_adaptive_result_free) */
    tdm_image student_image; /* with keep_student_image */
    tdm_adaptive_decision decision;
    float oracle_score;
    double tau;              /* threshold used */
    double k;                /* percentile used (NAN when tau was given directly) */
    double teacher_share;    /* share asked for (NAN unless given) */
    int handoff_latent;      /* refine: 1 = student latent handed to the teacher, 0 = through pixels */
    char handoff_reason[192];
    int refine_grid_steps;   /* refine: the teacher schedule's length N (strength: int(T/s + 1)) */
    int refine_steps;        /* teacher steps run */
    float refine_start_timestep;
    double refine_sigma;     /* 1 - alphabar at the first teacher step (the noise variance added) */
    int unet_evals_student, unet_evals_teacher; /* UNet evaluations (a CFG step counts 2) */
    int unet_calls_student, unet_calls_teacher; /* UNet forward calls (batch 2 with CFG) */
    double seconds_student, seconds_oracle, seconds_teacher, seconds_total;
    char warnings[1024];     /* calibration-provenance mismatches etc., one per line ("" when none) */
    char *parameters;        /* A1111 "parameters" text (owned) */
    char *metadata_json;     /* the "tandem" JSON: oracle, score, tau, k, decision, settings, evals, times */
    int controlnet_calls_student, controlnet_calls_teacher; /* ControlNet forward calls (with controls) */
    /* keep_better, when the teacher ran: its image's oracle score, and 1 when the student's image was returned
     * because it scored higher (decision still names what the teacher did). NAN / 0 otherwise. */
    float teacher_oracle_score;
    int selected_student;
} tdm_adaptive_result;

/* Runs student -> oracle -> (teacher). student and teacher may be the same model. */
tdm_code tdm_adaptive_generate(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                               const tdm_adaptive_params *p, tdm_adaptive_result *out, tdm_status *st);
void tdm_adaptive_result_free(tdm_adaptive_result *r);

/* Writes the final image as PNG with two text chunks, "parameters" (A1111) and "tandem" (the metadata
 * JSON), and, when sidecar_path is not NULL, the JSON to that file. */
tdm_code tdm_adaptive_save(const tdm_adaptive_result *r, const char *png_path, const char *sidecar_path,
                           tdm_status *st);
/* Reads a PNG text chunk by key (e.g. "tandem"); *text NULL when absent. Release with tdm_free. */
tdm_code tdm_image_read_text(const char *path, const char *key, char **text, tdm_status *st);

/* ---- calibration run (tandem calibrate) ---- */

typedef struct tdm_calibrate_params {
    const char *prompts_file; /* UTF-8, one prompt per line (docs/ADAPTIVE.md: rules) */
    int n;                    /* samples; prompt i mod P, seed seed + i */
    uint64_t seed;            /* default 0 */
    const char *negative_prompt;
    int width, height, clip_skip, emphasis;
    tdm_stage_settings student;
    /* The size at which the oracle scores each sample (0 / 0: as generated). A run whose teacher has another
     * size (presets: sdxl-turbo) scores the student's image resized to the teacher's size (bicubic), so its
     * calibration must too; recorded in the provenance as "scored_size". */
    int score_width, score_height;
    tdm_oracle *oracle;       /* required */
    const char *oracle_model; /* recorded in the provenance */
    const char *out_path;     /* calibration JSON; progress goes to out_path + ".partial" (JSON lines) */
    int restart;              /* 1: discard an existing partial file instead of resuming */
    /* called after each sample (done of total); nonzero cancels (the partial file keeps the work) */
    int (*on_sample)(void *user, int done, int total, float score);
    void *user;
    tdm_progress_fn progress;
    void *progress_user;
} tdm_calibrate_params;

void tdm_calibrate_params_init(tdm_calibrate_params *p);
/* *resumed receives the samples taken over from a partial file (may be NULL). */
tdm_code tdm_calibrate(tdm_engine *engine, const tdm_model *student, const tdm_calibrate_params *p, int *resumed,
                       tdm_status *st);

/* ---- evaluation (tandem eval; docs/ADAPTIVE.md "Evaluation") ----
 * On every (prompt, seed) of a prompts file x a seed list: the student's sample, the teacher-only sample
 * (tdm_generate with the teacher's settings and the same seed: also the regeneration of the student's
 * noise) and the teacher's refinement of the student's sample, each generated once and scored by the
 * oracle and (when the prompt is a shapes-world caption) the checker. From them: the methods student,
 * teacher, refine-all, regenerate-all, and adaptive-refine / adaptive-regenerate at each k (tau_k from a
 * calibration file, or the k-th percentile of the evaluation's own student scores). Files in out_dir:
 *   samples.jsonl  the resumable log: a header line with the settings, then per sample one line per base
 *                  method (appended, flushed and fsync'ed after each sample)
 *   results.jsonl  every method's record per sample (base and adaptive), written at the end
 *   table.md       the summary table (means, teacher share, UNet evaluations and seconds per image,
 *                  student-vs-teacher wins / ties / losses) */

typedef struct tdm_eval_progress {
    int done, total;  /* samples finished (resumed ones included) of total */
    int resumed;      /* samples taken over from the log */
    int prompt_index; /* the sample just finished (0-based line of the prompts file) */
    uint64_t seed;
    float student_oracle, teacher_oracle, refine_oracle;
    double seconds;   /* its generation time (student + teacher + refinement + scoring) */
} tdm_eval_progress;

typedef struct tdm_eval_params {
    const char *prompts_file;  /* UTF-8, one prompt per line (as tandem calibrate) */
    const uint64_t *seeds;     /* every prompt runs with every seed */
    int n_seeds;
    int seed_per_prompt;       /* 1: prompt j runs with seeds[s] + j instead of seeds[s], so that every prompt
                                  gets its own initial noise (as tandem calibrate); 0: the seeds as listed */
    /* The settings of both models: student / teacher stage settings, width / height, negative prompt, clip
     * skip, emphasis, refine convention and value, force_pixels, controls (the same for every sample),
     * progress (stages of each run; nonzero cancels). prompt, seed, oracle, threshold, strategy and
     * keep_student_image are ignored. */
    tdm_adaptive_params settings;
    tdm_oracle *oracle;        /* required */
    const char *oracle_model;  /* recorded with the settings */
    const double *k;           /* percentiles of the adaptive methods, each in (0, 100); n_k may be 0 */
    int n_k;
    const char *calibration;   /* tau_k from this calibration file (its provenance is compared; warnings in
                                  the summary); NULL: from the evaluation's own student oracle scores */
    const char *out_dir;       /* created when missing */
    int restart;               /* 1: discard an existing log instead of resuming it */
    /* called after each sample; nonzero cancels (the log keeps the finished samples) */
    int (*on_sample)(void *user, const tdm_eval_progress *progress);
    void *user;
    /* seconds for the timings; NULL: the monotonic clock (tests pass a deterministic one) */
    double (*clock)(void *clock_user);
    void *clock_user;
} tdm_eval_params;

void tdm_eval_params_init(tdm_eval_params *p);

typedef struct tdm_eval_summary {
    int n_samples;       /* prompts x seeds */
    int n_resumed;       /* taken over from the log */
    char warnings[1024]; /* calibration-provenance mismatches, one per line */
} tdm_eval_summary;

/* summary may be NULL. A log made with other settings is refused (TDM_ERR_INVALID_ARG naming the
 * setting) unless restart is set. */
tdm_code tdm_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher, const tdm_eval_params *p,
                  tdm_eval_summary *summary, tdm_status *st);

/* Seed list "A:B" (A, A+1, ..., B-1), "S1,S2,..." or a mix ("0:4,10"); at most 1000000 seeds; *seeds is
 * malloc'ed (tdm_free). */
tdm_code tdm_eval_parse_seeds(const char *spec, uint64_t **seeds, int *n, tdm_status *st);
/* ==== end of the adaptive block ==== */

/* ==== controlnet (docs/CONTROLNET.md) ============================================================
 * ControlNet models (diffusers ControlNetModel) steer generation with a conditioning image (edges,
 * segmentation map, ...): set tdm_generate_params.controls / n_controls. */

typedef struct tdm_controlnet tdm_controlnet;

/* path: a diffusers folder (config.json + diffusion_pytorch_model.safetensors), or one .safetensors file:
 * diffusers names (config.json next to it) or the original "control_model.*" names (SD 1.x ControlNet
 * config; SD 2.x when its transformers use linear projections). Read-only once loaded: may be shared by
 * engines. The ControlNet must match the model's UNet (checked by tdm_generate). */
tdm_code tdm_controlnet_load(const char *path, tdm_controlnet **out, tdm_status *st);
void tdm_controlnet_free(tdm_controlnet *cn);

typedef struct tdm_control {
    const tdm_controlnet *controlnet; /* required */
    const tdm_image *image; /* RGB8 conditioning image, already preprocessed (edges: tdm_canny; a segmentation
                             * map as an image); resized to the output size (Lanczos) when it differs, as
                             * diffusers' control image processor; passed as RGB / 255 in [0, 1] */
    float scale;            /* controlnet_conditioning_scale, default 1; 0..100 */
    float start, end;       /* control_guidance_start / _end, defaults 0 / 1: step i of N is controlled iff
                             * i / N >= start and (i + 1) / N <= end (diffusers' controlnet_keep) */
} tdm_control;

void tdm_control_init(tdm_control *c);

/* OpenCV cv2.Canny(gray, low, high) (aperture 3, L1 gradient) as ControlNet's canny annotator runs it, on
 * the image converted to gray (ITU-R 601: (R*4899 + G*9617 + B*1868 + 8192) >> 14, OpenCV's RGB2GRAY);
 * blur_sigma > 0 first applies a Gaussian blur (kernel 2*ceil(3 sigma)+1, replicated borders) to the gray
 * image (ControlNet's annotator does not blur: pass 0). Output RGB8: 255 on edges, 0 elsewhere (R=G=B,
 * ControlNet's HWC3). low <= high, both in [0, 1020*2]; sides 1..16384. */
tdm_code tdm_canny(const tdm_image *in, float low, float high, float blur_sigma, tdm_image *out, tdm_status *st);
/* ==== end of the controlnet block ==== */

/* ==== lora (docs/LORA.md) =========================================================================
 * LoRA files (kohya lora_unet_* / lora_te_* with lora_down / lora_up / alpha, or diffusers / PEFT
 * unet.*.lora_A / lora_B) adapt a model: W x + scale * alpha / rank * up(down(x)) on every targeted
 * Linear / Conv2d. Give them in tdm_model_params.loras, or derive a model that shares a loaded model's
 * weights (a student = teacher + LCM-LoRA). */

typedef struct tdm_lora_spec {
    const char *path; /* .safetensors LoRA file */
    float scale;      /* multiplier of the LoRA term (diffusers lora_scale / A1111 <lora:name:scale>); any
                         finite value, 1 = as trained */
} tdm_lora_spec;

/* A model that shares every component of base (tokenizer, text encoder, VAE, scheduler settings and the
 * UNet's weights: no weight is copied) with the n LoRA files applied: the UNet adds the LoRA terms at run
 * time (its structure is rebuilt over base's weight views), a text encoder with LoRA modules gets merged
 * copies of only its targeted weights. base must outlive *out (free *out first); base itself is not
 * changed and keeps generating without the LoRA. Errors name the file and the key at fault. */
tdm_code tdm_model_derive_lora(const tdm_model *base, const tdm_lora_spec *loras, int n, tdm_model **out,
                               tdm_status *st);

/* One line describing the LoRA files applied to model ("" when none), e.g. "1 LoRA file (lcm-lora.safetensors
 * x1), 278 UNet weights adapted at run time, 67.3M LoRA parameters, base weights shared". Returns the
 * length the text needs (like snprintf). */
int tdm_model_lora_summary(const tdm_model *model, char *buf, size_t bufsz);
/* ==== end of the lora block ==== */

/* ==== shapes-world ControlNet evaluation (docs/CONTROLNET.md "Shapes world evaluation") ===========
 * tandem control-eval: on n scenes of a shapes-world split (scene i = tdm_world_sample(world_seed, split,
 * start + i)), prompt = the scene's caption, ControlNet condition = its segmentation map (RGB8 at the
 * output size: (255, 255, 255) where the scene's object-id mask is > 0, else (0, 0, 0); the mask as
 * `tandem world sample --masks` writes it, supersample 4), noise seed = seed + scene index. Per scene, as
 * tdm_eval: the student with the ControlNet, the teacher with it (also the regeneration of the student's
 * noise) and the teacher's refinement of the student's sample, each made once, scored by the oracle, the
 * checker (the caption) and the placement IoU (each condition object matched to the detected object of
 * largest overlap, IoU of the masks, mean over the objects, 0 for a missing object); the adaptive methods
 * (refine / regenerate at each k) are derived from them exactly as tdm_adaptive_generate would decide.
 * Files in out_dir: samples.jsonl (resumable log: header with the settings, one line per scene, fsync'ed)
 * and table.md (per method: mean checker, mean IoU, mean oracle, teacher share, UNet evaluations,
 * ControlNet calls and seconds per image; the acceptance lines of issue 6). */

typedef struct tdm_control_eval_progress {
    int done, total;       /* scenes finished (resumed ones included) of total */
    int resumed;           /* taken over from the log */
    uint64_t scene_index;  /* the scene just finished (index in its split) */
    uint64_t seed;         /* its noise seed */
    float checker[3];      /* student, teacher, refinement: checker score on the caption */
    float iou[3];          /* ... placement IoU */
    double seconds;        /* the scene's generation and scoring time */
} tdm_control_eval_progress;

typedef struct tdm_control_eval_params {
    /* student / teacher stage settings, width / height (0: the student's default), negative prompt, clip skip,
     * emphasis, refine convention and value, force_pixels, progress (nonzero cancels); prompt, seed, oracle,
     * threshold, strategy, controls and keep_student_image are ignored */
    tdm_adaptive_params settings;
    const tdm_controlnet *controlnet; /* required: conditions student and teacher alike */
    const char *controlnet_name;      /* recorded with the settings (e.g. its path); NULL: "controlnet" */
    float control_scale, control_start, control_end; /* defaults 1, 0, 1 (tdm_control) */
    const char *split;     /* "test" (default), "val" or "train" */
    uint64_t world_seed;   /* default 1001 */
    uint64_t start;        /* first scene index, default 0 */
    int n;                 /* scenes, default 300 (1..1000000) */
    uint64_t seed;         /* noise seed of scene index j: seed + j (default 0) */
    tdm_oracle *oracle;    /* required (e.g. tdm_oracle_open("checker", ...)) */
    const char *oracle_model; /* recorded with the settings */
    const double *k;       /* percentiles of the adaptive methods, each in (0, 100); n_k may be 0 */
    int n_k;
    const char *calibration; /* tau_k from this calibration file; NULL: the k-th percentile of the
                                evaluation's own student oracle scores */
    const char *out_dir;   /* created when missing */
    int restart;           /* 1: discard an existing log instead of resuming it */
    int (*on_sample)(void *user, const tdm_control_eval_progress *progress); /* nonzero cancels */
    void *user;
    double (*clock)(void *clock_user); /* NULL: the monotonic clock (tests pass a deterministic one) */
    void *clock_user;
} tdm_control_eval_params;

void tdm_control_eval_params_init(tdm_control_eval_params *p);

typedef struct tdm_control_eval_summary {
    int n_samples, n_resumed;
    char warnings[1024]; /* calibration-provenance mismatches, one per line */
} tdm_control_eval_summary;

/* summary may be NULL. A log made with other settings is refused (TDM_ERR_INVALID_ARG naming the setting)
 * unless restart is set; the scene count n is not a setting (a log of fewer scenes is extended, a longer one
 * is read up to n). */
tdm_code tdm_control_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                          const tdm_control_eval_params *p, tdm_control_eval_summary *summary, tdm_status *st);
/* ==== end of the shapes-world ControlNet evaluation block ==== */

/* ==== presets (docs/PRESETS.md) ================================================================
 * The paper's released student-teacher configurations as named settings: one lookup, defined once in
 * src/pipeline/preset.c. A preset holds settings only; the model files are the caller's (each preset's
 * `models` line says which). */

typedef struct tdm_preset {
    const char *name;           /* "lcm-sdxl", "sdxl-turbo", "sd15-cd", "sd15-lcm-lora" */
    const char *summary;        /* one line: student -> teacher */
    const char *source;         /* where the values come from (reference README, paper notes) */
    const char *models;         /* which CLI options give the student and the teacher */
    tdm_stage_settings student; /* sampler, steps, guidance (eta 0) */
    tdm_stage_settings teacher;
    int width, height;                 /* the student's image size */
    int teacher_width, teacher_height; /* 0: the student's size */
    tdm_adaptive_strategy strategy;
    tdm_refine_convention refine_convention;
    float refine_value;         /* strength s (TDM_REFINE_STRENGTH) or sigma (TDM_REFINE_NOISE) */
    double k;                   /* threshold percentile (needs a calibration made with the same student) */
    const char *oracle;         /* the paper's oracle ("imagereward"; needs its weights) */
    /* what tdm_preset_check expects of the models */
    const char *student_family, *teacher_family; /* tdm_model_info.family: "sd1", "sdxl", "sdxl-refiner" */
    int student_lcm;            /* 1: a UNet with the guidance embedding (time_cond_proj_dim) */
    int student_trailing;       /* 1: the student's scheduler config must use trailing spacing */
    int student_lora;           /* 1: the student is the teacher + a LoRA (LCM-LoRA) */
} tdm_preset;

/* Every preset (in a fixed order); *n receives the count. */
const tdm_preset *tdm_presets(int *n);
/* The preset named `name`; unknown names are TDM_ERR_INVALID_ARG with the known names listed. */
tdm_code tdm_preset_find(const char *name, const tdm_preset **out, tdm_status *st);
/* Sets every setting the preset holds on p (student / teacher settings, sizes, strategy, refinement, k;
 * the oracle name): call after tdm_adaptive_params_init, then override what the user gave explicitly. */
void tdm_preset_apply(const tdm_preset *pr, tdm_adaptive_params *p);
/* Checks loaded models against what the preset expects (families, LCM UNet, trailing spacing): one line per
 * mismatch into warn ("" when none). Returns the number of mismatches. teacher may be NULL. */
int tdm_preset_check(const tdm_preset *pr, const tdm_model *student, const tdm_model *teacher, char *warn,
                     size_t size);
/* ==== end of the presets block ==== */

/* ==== edit (docs/EDITING.md) =======================================================================
 * Adaptive SDEdit image editing: tdm_adaptive_params.init_image / .strength with tdm_adaptive_generate (or
 * tdm_edit), the one-model baselines, preservation measures and the shapes-world edit evaluation. */

/* The size rule for a source image of src_width x src_height (model: the student's; m = its size multiple,
 * 8 for SD, D = its default side): kept as is when both sides are multiples of m, at least m and at most
 * 2 D; otherwise the short side is scaled to D and the long side to long * D / short rounded down to a
 * multiple of m (at most 2 D), the source being centre-cropped to that aspect ratio first. *resized (may be
 * NULL) receives 1 when the source is cropped / resized. Sides must be >= 1. */
tdm_code tdm_edit_size(const tdm_model *model, int src_width, int src_height, int *width, int *height, int *resized,
                       tdm_status *st);
/* out = src fitted to the size rule (a copy when kept; else centre crop, then Lanczos resize). width / height
 * > 0 (both) force that size instead. */
tdm_code tdm_edit_prepare_image(const tdm_model *model, const tdm_image *src, int width, int height, tdm_image *out,
                                tdm_status *st);

typedef enum tdm_edit_mode {
    TDM_EDIT_ADAPTIVE = 0,     /* student -> oracle -> keep / teacher (tdm_adaptive_generate) */
    TDM_EDIT_STUDENT_ONLY = 1, /* the student's edit alone (baseline) */
    TDM_EDIT_TEACHER_ONLY = 2  /* the teacher's edit alone (baseline): img2img of the source, teacher settings */
} tdm_edit_mode;
const char *tdm_edit_mode_name(tdm_edit_mode mode); /* "adaptive", "student-only", "teacher-only" */

/* Edits p->init_image (required) towards p->prompt. ADAPTIVE is tdm_adaptive_generate. The one-model modes
 * run that model's img2img at the rule's size (the student's size, so the baselines match the adaptive
 * run) with its stage settings, no threshold; the oracle (p->oracle, else p->oracle_name unless NULL or
 * "none") scores the edit for the record (oracle_score NAN without one); decision: keep (student-only) or
 * regenerate (teacher-only). The result's metadata JSON holds "edit": source size, size, strength, fit. */
tdm_code tdm_edit(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher, const tdm_adaptive_params *p,
                  tdm_edit_mode mode, tdm_adaptive_result *out, tdm_status *st);

/* Preservation (a): cosine similarity of the CLIP image embeddings (image_embeds, or the pooled output when
 * the tower has no projection) of two images, from a CLIP vision tower: a transformers CLIPModel or
 * CLIPVisionModel(WithProjection) folder (config.json, model.safetensors, optional
 * preprocessor_config.json). engine may be NULL (one thread). */
typedef struct tdm_image_similarity tdm_image_similarity;
tdm_code tdm_image_similarity_open(const char *dir, tdm_engine *engine, tdm_image_similarity **out, tdm_status *st);
tdm_code tdm_image_similarity_cosine(tdm_image_similarity *s, const tdm_image *a, const tdm_image *b, double *cosine,
                                     tdm_status *st);
void tdm_image_similarity_free(tdm_image_similarity *s);

/* Edit quality and preservation of one edit. */
typedef struct tdm_edit_quality {
    int has_checker;      /* the prompt is a shapes-world caption */
    float checker;        /* the checker's score of the edit on the prompt (success: 1) */
    double similarity;    /* (a) cosine of source and edit embeddings; NAN without a similarity model */
    int world_preserved;  /* (b) shapes world: 1 every attribute the prompt did not ask to change is kept,
                             0 not, -1 not measured (world_note says why) */
    int world_kept, world_checked; /* attributes kept / checked (the object count included) */
    char world_changed[192];       /* attributes the prompt asks to change ("object1.colour,relation") */
    char world_lost[192];          /* attributes the edit did not keep */
    char world_note[256];
} tdm_edit_quality;

/* Measures an edit against its source (any sizes): the checker on the prompt, similarity (sim may be NULL),
 * shapes-world preservation (the attributes the prompt asks to change: those it states that the source's
 * analysis lacks). */
tdm_code tdm_edit_measure(const tdm_image *source, const tdm_image *edit, const char *prompt, tdm_image_similarity *sim,
                          tdm_edit_quality *q, tdm_status *st);
/* Adds q as "quality" to r's metadata JSON (saved by tdm_adaptive_save). */
tdm_code tdm_edit_attach_quality(tdm_adaptive_result *r, const tdm_edit_quality *q, tdm_status *st);

/* ---- shapes-world edit evaluation (tandem edit-eval; docs/EDITING.md "Evaluation") ----
 * Pair i: test-split scene i of world_seed rendered at the student's size (source), one attribute changed
 * (colour, position, size or background; the target caption is the prompt, the instruction is recorded).
 * Per pair, with noise seed seed + i: the student's edit (s), the teacher-only edit (t, = the regeneration
 * from the source with the same noise) and the teacher's refinement of s (r), each scored by the checker on
 * the target caption (success = score 1), preservation of the unchanged attributes, the oracle, the optional
 * similarity, UNet evaluations and seconds. Methods: student, teacher, refine-all, regenerate-all,
 * adaptive-refine / adaptive-regenerate at each k (tau_k from a calibration file or the k-th percentile of
 * the student edits' oracle scores). Files: pairs.jsonl (resumable log), results.jsonl, table.md. */
typedef struct tdm_edit_eval_progress {
    int done, total, resumed;
    const char *instruction;
    float student_checker, teacher_checker, refine_checker;
    double seconds;
} tdm_edit_eval_progress;

typedef struct tdm_edit_eval_params {
    uint64_t world_seed;       /* default 1001 (the test split of the other evaluations) */
    int n;                     /* pairs 0..n-1 (required, 1..100000) */
    uint64_t seed;             /* noise seed of pair i: seed + i (default 0) */
    /* settings: student / teacher stage settings, strength, negative prompt, clip skip, emphasis, refine
     * convention and value, force_pixels, width / height (0: the student's default size; the scenes render
     * at that size), progress. prompt, seed, oracle, threshold, strategy, init_image are ignored. */
    tdm_adaptive_params settings;
    tdm_oracle *oracle;        /* required */
    const char *oracle_model;  /* recorded */
    const double *k;           /* adaptive methods' percentiles in (0, 100); n_k may be 0 */
    int n_k;
    const char *calibration;   /* NULL: tau_k from the evaluation's own student oracle scores */
    tdm_image_similarity *similarity; /* NULL: no embedding similarity */
    int masked;                /* masked editing (settings' mask_*), the pair's source caption as source prompt;
                                  the estimate's UNet evaluations count as the student's edit's (the teacher-only
                                  figure leaves them out: a cheaper baseline than it really is) */
    int drag;                  /* with mask_given: position edits move their objects first (drag-moves from each
                                  object's source centre to its target centre, tdm_adaptive_params.drags); the
                                  edits start from that composite */
    int mask_given;            /* with masked: the region is where the renders of the pair's source and target
                                  differ (what a user would paint; dilated by settings.mask_dilate), not the
                                  estimate: no UNet evaluations; every method edits inside the same region */
    /* Layout-guided editing: non-NULL conditions every run (student, teacher, refinement) with this ControlNet
     * and the target scene's segmentation map (its objects' silhouettes, white on black, as control-eval's
     * condition: the layout the edit asks for, what a user would draw; for colour and background edits the
     * source's own layout) */
    const tdm_controlnet *controlnet;
    const char *controlnet_name;  /* recorded (the path given) */
    float control_scale;          /* default 1 */
    float control_start, control_end; /* window, defaults 0 / 1 */
    const char *out_dir;       /* created when missing */
    int save_images;           /* also write out_dir/images/pairNNNNN_{source,student,teacher,refine}.png (the
                                  edits of the pairs run now, not of resumed ones) */
    int restart;               /* discard an existing log */
    int (*on_pair)(void *user, const tdm_edit_eval_progress *progress); /* nonzero cancels */
    void *user;
    double (*clock)(void *clock_user); /* NULL: monotonic clock */
    void *clock_user;
} tdm_edit_eval_params;

void tdm_edit_eval_params_init(tdm_edit_eval_params *p);
/* summary may be NULL (tdm_eval_summary: pairs, resumed, calibration warnings). */
tdm_code tdm_edit_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                       const tdm_edit_eval_params *p, tdm_eval_summary *summary, tdm_status *st);
/* ==== end of the edit block ==== */

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
