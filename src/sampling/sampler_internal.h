/* The sampler object (shared by sampler.c and the per-family step files). */
#ifndef TDM_SAMPLING_SAMPLER_INTERNAL_H
#define TDM_SAMPLING_SAMPLER_INTERNAL_H

#include <math.h>

#include "sampling/sampler.h"

struct tdm_sampler {
    tdm_sampler_kind kind;
    tdm_scheduler_config cfg; /* resolved: no DEFAULT / NaN markers left except sigma_min/max */
    int T;                    /* num_train_timesteps */
    float *betas;             /* [T] */
    float *alphas_cumprod;    /* [T] */
    float final_alpha_cumprod;/* DDIM / LCM: alphas_cumprod "before" step 0 (1 or alphas_cumprod[0]) */
    int num_inference_steps;  /* N as given to set_timesteps (DDIM/DDPM step size T // N, LCM last step) */
    int grid_steps;           /* consistency: G, the DDIM grid the timesteps are taken from */
    int n_sched;              /* len(scheduler.timesteps) */
    int64_t *t_int;           /* [n_sched] integer timesteps (all kinds; Euler: unused) */
    float *t_model;           /* [n_sched] timestep value given to the model */
    float *sigmas;            /* [n_sched + 1] sigma-based kinds, else NULL */
    int begin;                /* first step index of this run (img2img t_start) */
    int n_steps;              /* n_sched - begin */
    float init_noise_sigma;
    int order;                /* multistep solver order (DPM / UniPC) */

    /* state of the current run */
    int next_step;            /* expected i of the next tdm_sampler_step */
    int64_t n;                /* sample size of the run */
    float *hist0, *hist1;     /* [n] multistep history: converted model outputs of the last two steps */
    float *last_sample;       /* [n] UniPC: the sample before the last predictor step */
    float *work;              /* [n] scratch: noise draw / converted model output */
    float *denoised;          /* [n] LCM / consistency: denoised output of the last step */
    int have_denoised;
    int lower_order_nums;     /* multistep warm-up count */
    int this_order;           /* UniPC: order of the last predictor step */
};

/* Per-family steps: step index k = begin + i (diffusers' step_index). */
tdm_code tdm_step_ddim(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise);
tdm_code tdm_step_ddpm(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise);
tdm_code tdm_step_lcm(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise);
tdm_code tdm_step_consistency(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n,
                              const float *noise);
tdm_code tdm_step_euler(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n);
tdm_code tdm_step_euler_ancestral(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n,
                                  const float *noise);
tdm_code tdm_step_dpmpp_2m(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n);
tdm_code tdm_step_unipc(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n);

/* Whether step k of this sampler draws noise (diffusers' randn_tensor call in step()). */
int tdm_step_draws_noise(const tdm_sampler *s, int k);

/* alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t (float32, diffusers _sigma_to_alpha_sigma_t). */
static inline void tdm_sigma_to_alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *alpha_t = a;
    *sigma_t = sigma * a;
}

#endif
