/* Adaptive student-teacher pipeline: internals (public API in tandem.h, algorithm in docs/ADAPTIVE.md).
 *
 *  adaptive_stage.c  one denoising run of one model that can start from noise, from a clean latent
 *                    (latent hand-off) or from pixels, with its own noise streams, and return its
 *                    final latent: the same loop as tdm_gen_run (generate.c), which it reproduces bit
 *                    for bit with the generate streams (tests/test_adaptive.c checks it)
 *  adaptive.c        the decision (oracle, tau), refinement / regeneration, metadata
 *  calibrate.c       percentiles, calibration files, prompts files, the resumable calibration run
 *
 * Noise streams (tdm_randn(seed, stream, ...), docs/ADAPTIVE.md):
 *   student            the generate streams: 0 initial latent, 1 + k sampler draw k
 *   regenerate         the generate streams with the teacher (same initial noise as the student)
 *   refine             2^33 the noise z added to the student's result, 2^33 + 1 the VAE posterior
 *                      sample (pixel hand-off), 3 * 2^32 + k the teacher sampler's draw k */
#ifndef TDM_PIPELINE_ADAPTIVE_H
#define TDM_PIPELINE_ADAPTIVE_H

#include <stdint.h>

#include "pipeline/generate.h"
#include "pipeline/sd_model.h"
#include "sampling/sampler.h"
#include "tandem.h"
#include "tensor/ops.h"

#define TDM_STREAM_REFINE_NOISE (2ull << 32)
#define TDM_STREAM_REFINE_POSTERIOR ((2ull << 32) + 1)
#define TDM_STREAM_REFINE_SAMPLER_BASE (3ull << 32)

/* Internal accessors of the public objects (defined at the end of api.c). */
const tdm_sd_model *tdm_model_sd(const tdm_model *model);
const char *tdm_model_name(const tdm_model *model);
const tdm_exec *tdm_engine_exec(const tdm_engine *engine);

/* ---- one stage (adaptive_stage.c) ---- */

typedef enum tdm_stage_start {
    TDM_START_NOISE = 0, /* txt2img: noise(init stream) * init_noise_sigma */
    TDM_START_LATENT,    /* x0 = the given clean latent (already scaled), noised to the first kept step */
    TDM_START_PIXELS     /* x0 = scaling * (mean + std * noise(posterior)) of the VAE-encoded image */
} tdm_stage_start;

typedef struct tdm_stage_streams {
    uint64_t init, sampler_base, add_noise, posterior;
} tdm_stage_streams;

/* The streams of tdm_generate (generate.h) and of the refinement (above). */
tdm_stage_streams tdm_stage_streams_generate(void);
tdm_stage_streams tdm_stage_streams_refine(void);

typedef struct tdm_stage_job {
    const tdm_sd_model *m;
    const tdm_exec *ex;
    const tdm_generate_params *p; /* prompt, negative, steps (NOISE), guidance, sampler, eta, seed, size,
                                     clip skip, emphasis, progress; init_image and strength are ignored */
    tdm_stage_start start;
    const float *x0;        /* LATENT: [Cl, h, w] */
    const tdm_image *init;  /* PIXELS: any size (Lanczos-resized to the target size) */
    int grid_steps;         /* LATENT / PIXELS: schedule length N */
    double strength;        /* LATENT / PIXELS: StableDiffusionImg2ImgPipeline.get_timesteps fraction */
    tdm_stage_streams streams;
    int want_latent;
} tdm_stage_job;

typedef struct tdm_stage_result {
    tdm_image image;
    float *latent; /* [Cl, h, w] (malloc) with want_latent: what was decoded (scaled latent) */
    int Cl, h, w;
    tdm_generate_stats stats;
    float first_timestep;
    double start_sigma; /* 1 - alphabar at the first step run */
} tdm_stage_result;

tdm_code tdm_stage_run(const tdm_stage_job *job, tdm_stage_result *out, tdm_status *st);
void tdm_stage_result_free(tdm_stage_result *r);

/* alphabar at a (possibly fractional) timestep t, linear between table entries. */
double tdm_alphabar_at(const float *alphas_cumprod, int n_train, double t);

/* Refinement plan for T teacher steps: the schedule length N, the strength passed to the sampler, the
 * first timestep and 1 - alphabar there.
 *   TDM_REFINE_STRENGTH, s: N = int(T / s + 1) (reference code), kept = min(int(N s), N); when that is not
 *     T (s = 1 gives T + 1) the N nearest to it that keeps exactly T.
 *   TDM_REFINE_NOISE, sigma: t* with 1 - alphabar(t*) = sigma; the N in [T, num_train_timesteps] whose
 *     first kept timestep (with strength (T + 0.5) / N, i.e. exactly T kept) is nearest to t* (ties: the
 *     smaller N). */
typedef struct tdm_refine_plan {
    int grid_steps;
    double strength;
    int steps;
    float first_timestep;
    double start_sigma;
    double target_timestep; /* NOISE: t*; STRENGTH: NAN */
} tdm_refine_plan;

tdm_code tdm_refine_plan_make(const tdm_sd_model *teacher, const char *sampler, float eta, int T,
                              tdm_refine_convention conv, double value, tdm_refine_plan *out, tdm_status *st);

/* Whether two models share the VAE (same object, or same config and byte-identical weights);
 * reason: a short explanation for the metadata. */
int tdm_vae_shared(const tdm_sd_model *a, const tdm_sd_model *b, char *reason, size_t reason_size);

/* ---- calibration internals (calibrate.c) ---- */

struct tdm_calibration {
    char path[1024];
    int n;          /* scores stored */
    double *scores; /* [n] ascending */
    int n_table;    /* reference-code table entries (when no scores) */
    double table_k[128], table_tau[128];
    /* provenance (empty strings / NAN / 0 when absent) */
    char student_model[256], sampler[64], oracle[64], oracle_model[512], prompts_sha256[65], negative[512];
    int steps, width, height, clip_skip;
    float guidance, eta;
    int have_provenance;
};

/* Lines of a warning text: what differs between the calibration's provenance and a run's settings
 * (empty when nothing does). */
void tdm_calibration_compare(const tdm_calibration *c, const char *student_model, const char *sampler, int steps,
                             float guidance, int width, int height, const char *oracle, char *warn, size_t size);

/* Prompts file: UTF-8, one prompt per line (docs/ADAPTIVE.md). *lines: array of n strings (one block,
 * tdm_prompts_free). sha256_hex (65 bytes, may be NULL) receives the file's SHA-256. */
typedef struct tdm_prompts {
    int n;
    char **line;
    char *storage;
    char sha256[65];
} tdm_prompts;
tdm_code tdm_prompts_load(const char *path, tdm_prompts *out, tdm_status *st);
void tdm_prompts_free(tdm_prompts *p);

/* SHA-256 of a buffer as 64 lowercase hex digits (+ NUL). */
void tdm_sha256_hex(const void *data, size_t n, char out[65]);

#endif
