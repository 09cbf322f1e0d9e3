/* Single-step samplers: DDIM, DDPM, LCM (alphas_cumprod based) and Euler, Euler ancestral (sigma based).
 * Formulas of diffusers v0.27.2 (scheduling_ddim.py, scheduling_ddpm.py, scheduling_lcm.py,
 * scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py), evaluated in float32 in the
 * same order as the torch expressions (scalars are 0-d float32 tensors there). */
#include <math.h>

#include "sampling/sampler_internal.h"

int tdm_step_draws_noise(const tdm_sampler *s, int k) {
    switch (s->kind) {
    case TDM_SAMPLER_DDIM: return s->cfg.eta > 0;
    case TDM_SAMPLER_DDPM: return s->t_int[k] > 0;
    case TDM_SAMPLER_EULER_ANCESTRAL: return 1;
    case TDM_SAMPLER_LCM: return k != s->num_inference_steps - 1;
    case TDM_SAMPLER_CONSISTENCY: return k + 1 < s->n_sched; /* re-noising before every step but the first */
    default: return 0;
    }
}

/* x0 prediction from an alphas_cumprod-parameterised model output (DDIM/DDPM/LCM step 3). */
static inline float pred_x0_alpha(tdm_prediction_type p, float sa, float sb, float x, float m) {
    switch (p) {
    case TDM_PRED_SAMPLE: return m;
    case TDM_PRED_V: return sa * x - sb * m;
    default: return (x - sb * m) / sa;
    }
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* DDIM (Song et al. 2020, eq. 12 / 16):
 *   x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t);  std = eta * sqrt((1 - a_prev)/(1 - a_t) * (1 - a_t / a_prev))
 *   x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - std^2) eps + std z,   prev_t = t - T // N */
tdm_code tdm_step_ddim(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise) {
    int64_t t = s->t_int[k], prev_t = t - s->T / s->num_inference_steps;
    float a_t = s->alphas_cumprod[t];
    float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    float beta_t = 1.0f - a_t, beta_prev = 1.0f - a_prev;
    float sa = sqrtf(a_t), sb = sqrtf(beta_t), sa_prev = sqrtf(a_prev);
    float variance = (beta_prev / beta_t) * (1.0f - a_t / a_prev);
    float std_dev = (float)s->cfg.eta * sqrtf(variance);
    float dir_coef = sqrtf(1.0f - a_prev - std_dev * std_dev);
    int clip = s->cfg.clip_sample;
    float r = (float)s->cfg.clip_sample_range;
    tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        float m = model_out[j], xs = x[j];
        float x0 = pred_x0_alpha(p, sa, sb, xs, m);
        float eps = p == TDM_PRED_EPSILON ? m : p == TDM_PRED_V ? sa * m + sb * xs : (xs - sa * x0) / sb;
        if (clip) x0 = clampf(x0, -r, r);
        float v = sa_prev * x0 + dir_coef * eps;
        if (noise) v = v + std_dev * noise[j];
        x[j] = v;
    }
    return TDM_OK;
}

/* DDPM (Ho et al. 2020, eq. 7): x_prev = c0 x0 + c1 x_t + sigma z (z only for t > 0), with
 *   c0 = sqrt(a_prev) beta_t' / (1 - a_t), c1 = sqrt(alpha_t') (1 - a_prev) / (1 - a_t),
 *   alpha_t' = a_t / a_prev, beta_t' = 1 - alpha_t', variance = (1 - a_prev)/(1 - a_t) beta_t' (>= 1e-20). */
tdm_code tdm_step_ddpm(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise) {
    int64_t t = s->t_int[k], prev_t = t - s->T / s->num_inference_steps;
    float a_t = s->alphas_cumprod[t];
    float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : 1.0f;
    float beta_t = 1.0f - a_t, beta_prev = 1.0f - a_prev;
    float cur_alpha = a_t / a_prev, cur_beta = 1.0f - cur_alpha;
    float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    float c0 = (sqrtf(a_prev) * cur_beta) / beta_t;
    float c1 = (sqrtf(cur_alpha) * beta_prev) / beta_t;
    float std_dev = 0;
    if (noise) {
        float var = fmaxf((1.0f - a_prev) / (1.0f - a_t) * cur_beta, 1e-20f);
        switch (s->cfg.variance_type) {
        case TDM_VARIANCE_FIXED_SMALL_LOG: std_dev = expf(0.5f * logf(var)); break;
        case TDM_VARIANCE_FIXED_LARGE: std_dev = sqrtf(cur_beta); break;
        default: std_dev = sqrtf(var); break;
        }
    }
    int clip = s->cfg.clip_sample;
    float r = (float)s->cfg.clip_sample_range;
    tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        float x0 = pred_x0_alpha(p, sa, sb, x[j], model_out[j]);
        if (clip) x0 = clampf(x0, -r, r);
        float v = c0 * x0 + c1 * x[j];
        if (noise) v = v + std_dev * noise[j];
        x[j] = v;
    }
    return TDM_OK;
}

/* LCM (Luo et al. 2023): boundary scalings with s = t * timestep_scaling, sigma_data = 0.5:
 *   c_skip = 0.25 / (s^2 + 0.25), c_out = s / sqrt(s^2 + 0.25); denoised = c_out x0 + c_skip x;
 *   x_prev = sqrt(a_prev) denoised + sqrt(1 - a_prev) z (not on the last step, where x_prev = denoised);
 *   a_prev at the next timestep of the schedule. */
tdm_code tdm_step_lcm(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n, const float *noise) {
    int64_t t = s->t_int[k];
    int64_t prev_t = k + 1 < s->n_sched ? s->t_int[k + 1] : t;
    float a_t = s->alphas_cumprod[t];
    float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    float beta_t = 1.0f - a_t, beta_prev = 1.0f - a_prev;
    float sa = sqrtf(a_t), sb = sqrtf(beta_t), sa_prev = sqrtf(a_prev), sb_prev = sqrtf(beta_prev);
    float scaled = (float)t * (float)s->cfg.timestep_scaling;
    float c_skip = 0.25f / (scaled * scaled + 0.25f);
    float c_out = scaled / sqrtf(scaled * scaled + 0.25f);
    int clip = s->cfg.clip_sample;
    float r = (float)s->cfg.clip_sample_range;
    tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        float x0 = pred_x0_alpha(p, sa, sb, x[j], model_out[j]);
        if (clip) x0 = clampf(x0, -r, r);
        float d = c_out * x0 + c_skip * x[j];
        s->denoised[j] = d;
        x[j] = noise ? sa_prev * d + sb_prev * noise[j] : d;
    }
    s->have_denoised = 1;
    return TDM_OK;
}

/* Multistep consistency sampling (CD-SD1.5, consistency_models_sd cm/diffusion.py: scheduler_denoise with
 * final_alpha_cumprod = 1 and sample(sampler='stochastic'); tools/shapes/diffusion.py sample_consistency):
 *   x0 = c_skip x + c_out (x - sqrt(1 - a_t) eps) / sqrt(a_t),  c_skip = 1[t <= 1], c_out = 1[t > 1]
 *   x_next = sqrt(a_next) x0 + sqrt(1 - a_next) z   (a_next at the next timestep; not after the last step,
 *                                                    where x = x0: the identity step at t = 1 is skipped)
 * float32 in the torch expression order ((x - sqrt(1 - a) eps) / sqrt(a); sqrt(a) x0 + sqrt(1 - a) z). */
tdm_code tdm_step_consistency(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n,
                              const float *noise) {
    const int64_t t = s->t_int[k];
    const int last = k + 1 >= s->n_sched;
    const float a_t = s->alphas_cumprod[t];
    const float sa = sqrtf(a_t), sb = sqrtf(1.0f - a_t);
    const int boundary = t <= 1; /* c_skip = 1, c_out = 0: f(x, t) = x */
    float sa_next = 0, sb_next = 0;
    if (!last) {
        const float a_next = s->alphas_cumprod[s->t_int[k + 1]];
        sa_next = sqrtf(a_next);
        sb_next = sqrtf(1.0f - a_next);
    }
    const tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        const float d = boundary ? x[j] : pred_x0_alpha(p, sa, sb, x[j], model_out[j]);
        s->denoised[j] = d;
        x[j] = last || !noise ? d : sa_next * d + sb_next * noise[j];
    }
    s->have_denoised = 1;
    return TDM_OK;
}

/* x0 prediction of the sigma (k-diffusion) parameterisation, Euler samplers. */
static inline float pred_x0_sigma(tdm_prediction_type p, float sigma, float vc_out, float vc_skip, float x,
                                  float m) {
    switch (p) {
    case TDM_PRED_SAMPLE: return m;
    case TDM_PRED_V: return m * vc_out + x / vc_skip; /* m * (-sigma / sqrt(sigma^2+1)) + x / (sigma^2+1) */
    default: return x - sigma * m;
    }
}

/* Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0): d = (x - x0) / sigma, x += d (sigma_next - sigma).
 * (diffusers draws a noise tensor every step but only uses it when s_churn > 0; tandem draws none.) */
tdm_code tdm_step_euler(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n) {
    float sigma = s->sigmas[k];
    float sigma_hat = sigma * (0.0f + 1.0f);
    float vc_out = -sigma / sqrtf(sigma * sigma + 1.0f), vc_skip = sigma * sigma + 1.0f;
    float dt = s->sigmas[k + 1] - sigma_hat;
    tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        float x0 = p == TDM_PRED_EPSILON ? x[j] - sigma_hat * model_out[j]
                                         : pred_x0_sigma(p, sigma, vc_out, vc_skip, x[j], model_out[j]);
        float d = (x[j] - x0) / sigma_hat;
        x[j] = x[j] + d * dt;
    }
    return TDM_OK;
}

/* Euler ancestral: sigma_up = sqrt(s1^2 (s0^2 - s1^2) / s0^2), sigma_down = sqrt(s1^2 - sigma_up^2);
 * x += d (sigma_down - s0) + z sigma_up. */
tdm_code tdm_step_euler_ancestral(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n,
                                  const float *noise) {
    float sigma = s->sigmas[k], sigma_to = s->sigmas[k + 1];
    float vc_out = -sigma / sqrtf(sigma * sigma + 1.0f), vc_skip = sigma * sigma + 1.0f;
    float sigma_up = sqrtf(sigma_to * sigma_to * (sigma * sigma - sigma_to * sigma_to) / (sigma * sigma));
    float sigma_down = sqrtf(sigma_to * sigma_to - sigma_up * sigma_up);
    float dt = sigma_down - sigma;
    tdm_prediction_type p = s->cfg.prediction_type;
    for (int64_t j = 0; j < n; j++) {
        float x0 = pred_x0_sigma(p, sigma, vc_out, vc_skip, x[j], model_out[j]);
        float d = (x[j] - x0) / sigma;
        float v = x[j] + d * dt;
        x[j] = v + noise[j] * sigma_up;
    }
    return TDM_OK;
}
