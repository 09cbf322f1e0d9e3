/* Adaptive student-teacher pipeline: internals (public API in tandem.h, algorithm in docs/ADAPTIVE.md).
 *
 *  adaptive.c        the settings of both models, the decision (oracle, tau), the student / refinement /
 *                    regeneration stages (each one tdm_gen_execute run: generate.h), metadata
 *  adaptive_refine.c the refinement plan (both sigma conventions) and the shared-VAE test
 *  eval.c            tandem eval: every method on the same prompts and seeds (pipeline/eval.h)
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

/* ---- stages (adaptive.c): every denoising run is tdm_gen_execute (generate.h) ---- */

/* The refinement's streams for tdm_gen_execute: sampler draw k from 3 * 2^32 + k, the noise added to the
 * student's result from 2^33, the VAE posterior sample (pixel hand-off) from 2^33 + 1. */
tdm_gen_streams tdm_adaptive_streams_refine(void);

/* A float parameter as the decimal a user typed (0.7f -> 0.7): the shortest representation that reads
 * back as the same float, parsed as double. */
double tdm_float_as_decimal(float v);

/* ---- refinement plan and shared VAE (adaptive_refine.c) ---- */

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

/* ---- settings and stages (adaptive.c) ---- */

/* The resolved settings of an adaptive run (and of an evaluation, which runs both strategies): both
 * models' generation params and plans, the refinement plan and the hand-off. The params keep p's
 * prompt and seed; a caller may change sgp / tgp .prompt and .seed between runs (eval.c does). */
/* Masked editing: the estimated region (pipeline/edit_mask.c) shared by every stage of one edit. */
typedef struct tdm_edit_mask_info {
    int active;              /* a mask is set */
    int given;               /* the region was given (tdm_adaptive_setup_mask_given), not estimated: no maps,
                                strength, threshold or timestep, no UNet evaluations */
    float *mask;             /* [h, w] 1 = edited, 0 = kept (malloc; tdm_adaptive_setup_clear_mask) */
    int h, w;                /* latent size */
    int maps, dilate;        /* settings used */
    float strength, threshold;
    int timestep;            /* UNet timestep of the estimate */
    double area;             /* share of latent pixels in the region */
    int unet_evals;          /* UNet evaluations of the estimate (maps x 2) */
    double seconds;
    unsigned char *paste;    /* [H, W] image pixels, 1 = edited, 0 = the source's pixel pasted back after decoding
                                (tdm_adaptive_setup_mask_paste; malloc, freed with the mask); NULL: no paste-back */
    tdm_image fill;          /* [H, W] RGB8: the source with the region filled from its surroundings, where the
                                edits from the source start inside the region (tdm_adaptive_setup_mask_fill; freed
                                with the mask); no pixels: the source itself */
} tdm_edit_mask_info;

typedef struct tdm_adaptive_setup {
    const tdm_sd_model *sm, *tm;
    const tdm_exec *ex;
    tdm_generate_params sgp, tgp; /* student / teacher stage params (controls: p's, for both) */
    tdm_gen_plan sp, tp;          /* resolved (teacher at the student's size) */
    int same_latent_shape;        /* regeneration possible: same latent channels and VAE scale */
    tdm_refine_plan rp;           /* for the refinement */
    int handoff_latent;           /* refinement hand-off: 1 latent, 0 pixels */
    char handoff_reason[192];
    tdm_edit_mask_info mask;      /* masked editing: applied to every stage that starts from an image or latent */
} tdm_adaptive_setup;

/* Resolves p's settings against the models (errors say "student" / "teacher"). */
tdm_code tdm_adaptive_setup_make(const tdm_sd_model *sm, const tdm_sd_model *tm, const tdm_exec *ex,
                                 const tdm_adaptive_params *p, tdm_adaptive_setup *s, tdm_status *st);
/* The refinement plan (p's convention and value) and the hand-off (force_pixels, latent shapes,
 * tdm_vae_shared); needed before tdm_adaptive_run_teacher(REFINE). */
tdm_code tdm_adaptive_setup_refine(tdm_adaptive_setup *s, const tdm_adaptive_params *p, tdm_status *st);
/* Masked editing (edit_mask.c): estimates the edit region of s->sgp's edit (prompt, init_image, seed, size)
 * with the student's UNet against source_prompt, with p's mask settings, into s->mask (replacing a previous
 * one). */
/* Paste-back for the active mask (mask_paste): every stage's decoded image keeps the source's pixels outside
 * `region` ([height, width] image pixels, 1 = edited; the edit's size), or, with region NULL, outside the latent
 * mask upsampled to pixels (each latent pixel's block). */
tdm_code tdm_adaptive_setup_mask_paste(tdm_adaptive_setup *s, const unsigned char *region, int width, int height,
                                       tdm_status *st);
tdm_code tdm_adaptive_setup_mask(tdm_adaptive_setup *s, const tdm_adaptive_params *p, const char *source_prompt,
                                 tdm_status *st);
/* Masked editing with a given region instead of the estimate: region [height, width] (nonzero = edit) at
 * the edit's size; a latent pixel is in the mask when any pixel of its block is, then dilated by `dilate`
 * latent pixels (0..16). */
tdm_code tdm_adaptive_setup_mask_given(tdm_adaptive_setup *s, const unsigned char *region, int width, int height,
                                       int dilate, tdm_status *st);
/* Region fill for the active mask (mask_fill): the edits that start from the source (the student's edit, the
 * teacher's regeneration; not the refinement) start inside the region from the source with the region's pixels
 * (the latent mask upsampled to its blocks) filled from the colours around it (tdm_image_fill_holes), so the
 * edit is not drawn over what was there. keep [H, W] (may be NULL): pixels left as they are (objects placed by
 * drag-moves). Needs s->sgp.init_image. */
tdm_code tdm_adaptive_setup_mask_fill(tdm_adaptive_setup *s, const unsigned char *keep, tdm_status *st);
/* Frees s->mask's buffer (no mask afterwards). */
void tdm_adaptive_setup_clear_mask(tdm_adaptive_setup *s);

/* The student's sample: generate streams, start NOISE (want_latent: also its final latent, for the latent
 * hand-off). */
tdm_code tdm_adaptive_run_student(const tdm_adaptive_setup *s, int want_latent, tdm_gen_result *out,
                                  tdm_status *st);
/* The teacher's stage. REGENERATE: the teacher from the student's initial noise (generate streams: this is
 * tdm_generate with the teacher's settings, the "teacher only" sample). REFINE: the student's result
 * (student->latent with the latent hand-off, else student->image) re-noised and denoised by the teacher
 * (refinement streams, rp's schedule). text: the teacher's conditioning pre-encoded (NULL: encoded). */
tdm_code tdm_adaptive_run_teacher(const tdm_adaptive_setup *s, tdm_adaptive_decision how, const tdm_gen_result *student,
                                  const tdm_text_cond *text, tdm_gen_result *out, tdm_status *st);

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
    int scored_width, scored_height; /* the image size the oracle saw (= width, height unless resized) */
    float guidance, eta;
    int have_provenance;
};

/* Lines of a warning text: what differs between the calibration's provenance and a run's settings
 * (empty when nothing does). scored_width x scored_height: the size at which the run's oracle sees the
 * student's image (the teacher's size when it differs: presets). n_controls: the run's ControlNets (tandem
 * calibrate runs none, so any is a difference). */
void tdm_calibration_compare(const tdm_calibration *c, const char *student_model, const char *sampler, int steps,
                             float guidance, int width, int height, int scored_width, int scored_height,
                             const char *oracle, int n_controls, char *warn, size_t size);

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
