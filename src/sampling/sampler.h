/* Samplers (diffusers v0.27.2 schedulers, reproduced in float32 as diffusers computes them on CPU):
 * DDIM, DDPM, Euler, Euler ancestral, DPM-Solver++ 2M (optionally Karras sigmas), UniPC (bh1/bh2, order
 * <= 2) and LCM, plus the multistep consistency sampler of consistency-distilled students (CD-SD1.5, the
 * shapes-world student), behind one interface. The denoising loop of a pipeline is
 *
 *     tdm_sampler_create(&s, kind, &cfg, num_steps, strength, &st);
 *     x = noise * tdm_sampler_init_noise_sigma(s)          (txt2img)   or
 *     tdm_sampler_add_noise(s, x0, noise, x, n)            (img2img, strength < 1)
 *     for (i = 0; i < tdm_sampler_n_steps(s); i++) {
 *         tdm_sampler_scale_model_input(s, i, x, xin, n);
 *         model_out = unet(xin, tdm_sampler_timestep(s, i));
 *         tdm_sampler_step(s, i, model_out, x, n, &noise_source, &st);
 *     }
 *     result = x   (LCM: tdm_sampler_denoised(s), the denoised output of the last step; consistency:
 *                   x holds the last step's x0, which tdm_sampler_denoised(s) also gives)
 *
 * Consistency (TDM_SAMPLER_CONSISTENCY, "consistency"): the k-step sampler of CD-SD1.5
 * (consistency_models_sd cm/diffusion.py sample(), sampler 'stochastic'; docs/SAMPLERS.md). Timesteps
 * are entries floor(i * G / k), i < k, of the DDIM grid of G = cfg.original_inference_steps (50) steps
 * with the config's spacing (SD: leading + steps_offset 1 -> 981, 961, ..., 1), so k = 5 gives 981,
 * 781, 581, 381, 181 (the paper's student) and k = 4 gives 981, 741, 481, 241 (the shapes student,
 * docs/TRAINING.md). Each step: x0 = c_skip x + c_out (x - sqrt(1 - a_t) eps) / sqrt(a_t) with the
 * boundary condition c_skip = 1[t <= 1], c_out = 1[t > 1] (f(x, 1) = x); then, except after the last
 * step, x = sqrt(a_next) x0 + sqrt(1 - a_next) z with fresh noise z (draw k = step i). After the last
 * step x = x0: the released code's final re-noising to t = 1 and identity step is skipped. The model
 * output is the (classifier-free guided) eps of the pipeline; v and sample predictions convert as DDIM.
 *
 * Strength (img2img): strength = 1 is txt2img. Otherwise StableDiffusionImg2ImgPipeline.get_timesteps:
 * init = min(int(N * strength), N), t_start = max(N - init, 0), the run keeps the steps from t_start on
 * (N - t_start steps). LCM uses the LCM img2img rule instead: set_timesteps(N, strength) draws N steps
 * from the first int(original_inference_steps * strength) training steps.
 *
 * Noise: stochastic samplers (DDPM, Euler ancestral, LCM, DDIM with eta > 0) draw at most one noise
 * tensor per step; the draw of step i (0-based, counted in this run) asks the noise source for draw
 * k = i. Draw order matches diffusers' randn calls, so a recorded diffusers noise feed replays exactly. */
#ifndef TDM_SAMPLING_SAMPLER_H
#define TDM_SAMPLING_SAMPLER_H

#include <stdint.h>

#include "base/error.h"
#include "sampling/schedule.h"

typedef enum tdm_sampler_kind {
    TDM_SAMPLER_DDIM = 0,
    TDM_SAMPLER_DDPM,
    TDM_SAMPLER_EULER,
    TDM_SAMPLER_EULER_ANCESTRAL,
    TDM_SAMPLER_DPMPP_2M, /* DPMSolverMultistepScheduler, algorithm dpmsolver++ (Karras: cfg.use_karras_sigmas) */
    TDM_SAMPLER_UNIPC,    /* UniPCMultistepScheduler, predict_x0, bh2 by default */
    TDM_SAMPLER_LCM,
    TDM_SAMPLER_CONSISTENCY, /* multistep consistency sampling (CD-SD1.5 "stochastic"; see below) */
    TDM_SAMPLER_KIND_COUNT
} tdm_sampler_kind;

/* How strength < 1 picks the steps (see the top of this file). */
typedef enum tdm_img2img_rule {
    TDM_IMG2IMG_AUTO = 0,       /* LCM: TDM_IMG2IMG_LCM; others: TDM_IMG2IMG_GET_TIMESTEPS */
    TDM_IMG2IMG_GET_TIMESTEPS,  /* StableDiffusionImg2ImgPipeline.get_timesteps */
    TDM_IMG2IMG_LCM             /* LCMScheduler.set_timesteps(N, strength=strength) (LCM only) */
} tdm_img2img_rule;

/* Noise source: fill(user, k, out, n, st) writes n standard normals for draw k. */
typedef struct tdm_noise_source {
    tdm_code (*fill)(void *user, int64_t k, float *out, int64_t n, tdm_status *st);
    void *user;
} tdm_noise_source;

/* A noise source backed by tdm_randn: draw k = tdm_randn(seed, stream0 + k, offset 0). */
typedef struct tdm_seeded_noise {
    uint64_t seed;
    uint64_t stream0;
} tdm_seeded_noise;
tdm_noise_source tdm_noise_source_seeded(tdm_seeded_noise *ctx);

typedef struct tdm_sampler tdm_sampler;

/* Sampler names: "ddim", "ddpm", "euler", "euler_a", "dpmpp_2m", "unipc", "lcm", "consistency" (plus aliases
 * "euler_ancestral", "dpmpp2m", "dpm++2m", "dpmsolver++"). A "_karras" suffix sets *karras (may be NULL
 * when not wanted). */
tdm_code tdm_sampler_kind_parse(const char *name, tdm_sampler_kind *kind, int *karras, tdm_status *st);
const char *tdm_sampler_kind_name(tdm_sampler_kind kind);

/* Creates a sampler with the schedule of cfg for num_steps inference steps (1..num_train_timesteps) and
 * img2img strength in (0, 1] (1 = txt2img). Refuses what diffusers refuses (e.g. LCM steps beyond
 * original_inference_steps * strength) with diffusers' message, and unsupported options. */
tdm_code tdm_sampler_create(tdm_sampler **out, tdm_sampler_kind kind, const tdm_scheduler_config *cfg,
                            int num_steps, double strength, tdm_status *st);
tdm_code tdm_sampler_create_ex(tdm_sampler **out, tdm_sampler_kind kind, const tdm_scheduler_config *cfg,
                               int num_steps, double strength, tdm_img2img_rule rule, tdm_status *st);
void tdm_sampler_free(tdm_sampler *s);

tdm_sampler_kind tdm_sampler_get_kind(const tdm_sampler *s);
/* Number of denoising steps of this run (N, or fewer for img2img). */
int tdm_sampler_n_steps(const tdm_sampler *s);
/* The timestep value passed to the UNet at step i (integer-valued except Euler's interpolated ones). */
float tdm_sampler_timestep(const tdm_sampler *s, int i);
/* Standard deviation of the initial noise (Euler: the largest sigma; others 1). */
float tdm_sampler_init_noise_sigma(const tdm_sampler *s);
/* The sigma schedule after set_timesteps (scheduler.sigmas, n_sched + 1 entries) for Euler, Euler
 * ancestral, DPM-Solver++ and UniPC; NULL (and *n = 0) for the others. */
const float *tdm_sampler_sigmas(const tdm_sampler *s, int *n);
/* The beta and alphas_cumprod tables [num_train_timesteps]. */
const float *tdm_sampler_betas(const tdm_sampler *s);
const float *tdm_sampler_alphas_cumprod(const tdm_sampler *s);

/* xin[n] = what the model sees at step i (Euler: x / sqrt(sigma^2 + 1); others x). xin may equal x. */
void tdm_sampler_scale_model_input(const tdm_sampler *s, int i, const float *x, float *xin, int64_t n);

/* One denoising step: x[n] (the sample at step i) becomes the sample of step i + 1. Steps run in order
 * i = 0, 1, ... (step 0 starts a fresh run and clears the multistep history); noise may be NULL for
 * deterministic samplers. */
tdm_code tdm_sampler_step(tdm_sampler *s, int i, const float *model_out, float *x, int64_t n,
                          const tdm_noise_source *noise, tdm_status *st);

/* LCM and consistency: the denoised prediction (x0) of the last step run (the pipeline's result); NULL
 * before the first step and for the other samplers. */
const float *tdm_sampler_denoised(const tdm_sampler *s);

/* img2img: x_out[n] = x0 noised to the first kept step (scheduler.add_noise at timesteps[t_start]). */
void tdm_sampler_add_noise(const tdm_sampler *s, const float *x0, const float *noise, float *x_out, int64_t n);
/* x_out[n] = x0 noised to the level the sample has at step i of this run (the input of step i; i >= the
 * number of steps: x0 itself). i = 0 is tdm_sampler_add_noise. Masked editing blends with it. */
void tdm_sampler_add_noise_at(const tdm_sampler *s, int i, const float *x0, const float *noise, float *x_out,
                              int64_t n);

#endif
