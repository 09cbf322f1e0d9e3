/* Multistep samplers in the data-prediction (x0) form: DPM-Solver++ 2M (Lu et al. 2022) and UniPC
 * (Zhao et al. 2023, B(h) = bh1/bh2, orders 1-2), as diffusers v0.27.2 scheduling_dpmsolver_multistep.py
 * and scheduling_unipc_multistep.py compute them (float32 0-d tensor scalars, same evaluation order).
 * With sigma_k from scheduler.sigmas: alpha = 1/sqrt(sigma^2 + 1), sigma_t = sigma alpha,
 * lambda = log(alpha) - log(sigma_t). History: hist0 = converted model output (x0) of the current step,
 * hist1 = of the previous step. */
#include <math.h>
#include <string.h>

#include "sampling/sampler_internal.h"

static inline float lambda_of(float alpha, float sigma) { return logf(alpha) - logf(sigma); }

/* model output -> x0 prediction at sigma (diffusers convert_model_output, predict x0). */
static void convert_to_x0(const tdm_sampler *s, float sigma, const float *m, const float *x, float *x0, int64_t n) {
    float alpha_t, sigma_t;
    tdm_sigma_to_alpha_sigma(sigma, &alpha_t, &sigma_t);
    switch (s->cfg.prediction_type) {
    case TDM_PRED_SAMPLE: memcpy(x0, m, (size_t)n * sizeof *x0); break;
    case TDM_PRED_V:
        for (int64_t j = 0; j < n; j++) x0[j] = alpha_t * x[j] - sigma_t * m[j];
        break;
    default:
        for (int64_t j = 0; j < n; j++) x0[j] = (x[j] - sigma_t * m[j]) / alpha_t;
        break;
    }
}

/* hist1 <- hist0 <- work (the new converted output); the old hist1 becomes the scratch buffer. */
static void push_history(tdm_sampler *s) {
    float *old = s->hist1;
    s->hist1 = s->hist0;
    s->hist0 = s->work;
    s->work = old;
}

/* ---- DPM-Solver++ (multistep, order <= 2) ---- */

tdm_code tdm_step_dpmpp_2m(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n) {
    const tdm_scheduler_config *c = &s->cfg;
    int last = s->n_sched;
    int lower_order_final =
        k == last - 1 && (c->euler_at_final || (c->lower_order_final && last < 15) ||
                          c->final_sigmas_type == TDM_FINAL_SIGMA_ZERO);
    convert_to_x0(s, s->sigmas[k], model_out, x, s->work, n);
    push_history(s);
    const float *m0 = s->hist0, *m1 = s->hist1;

    float alpha_t, sigma_t, alpha_s0, sigma_s0;
    tdm_sigma_to_alpha_sigma(s->sigmas[k + 1], &alpha_t, &sigma_t);
    tdm_sigma_to_alpha_sigma(s->sigmas[k], &alpha_s0, &sigma_s0);
    float lambda_t = lambda_of(alpha_t, sigma_t), lambda_s0 = lambda_of(alpha_s0, sigma_s0);
    float h = lambda_t - lambda_s0;
    float ratio = sigma_t / sigma_s0;
    float c0 = alpha_t * (expf(-h) - 1.0f);
    if (s->order == 1 || s->lower_order_nums < 1 || lower_order_final) {
        /* first order (DDIM-like): x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) x0 */
        for (int64_t j = 0; j < n; j++) x[j] = ratio * x[j] - c0 * m0[j];
    } else {
        /* second order: r0 = h_0 / h, D1 = (m0 - m1) / r0 */
        float alpha_s1, sigma_s1;
        tdm_sigma_to_alpha_sigma(s->sigmas[k - 1], &alpha_s1, &sigma_s1);
        float lambda_s1 = lambda_of(alpha_s1, sigma_s1);
        float h_0 = lambda_s0 - lambda_s1;
        float r0 = h_0 / h;
        float inv_r0 = 1.0f / r0;
        if (c->solver_type == TDM_SOLVER_HEUN) {
            float c1 = alpha_t * ((expf(-h) - 1.0f) / h + 1.0f);
            for (int64_t j = 0; j < n; j++) {
                float d1 = inv_r0 * (m0[j] - m1[j]);
                x[j] = ratio * x[j] - c0 * m0[j] + c1 * d1;
            }
        } else { /* midpoint */
            float c1 = 0.5f * c0;
            for (int64_t j = 0; j < n; j++) {
                float d1 = inv_r0 * (m0[j] - m1[j]);
                x[j] = ratio * x[j] - c0 * m0[j] - c1 * d1;
            }
        }
    }
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return TDM_OK;
}

/* ---- UniPC (bh1 / bh2) ---- */

/* torch.linalg.solve of [[1, 1], [rk, 1]] x = b (LAPACK getrf/getrs: partial pivoting, float32). */
static void solve_2x2(float rk, const float b[2], float out[2]) {
    if (fabsf(rk) > 1.0f) { /* rows swapped: pivot rk */
        float l = 1.0f / rk;
        float u22 = 1.0f - l * 1.0f;
        float y2 = b[0] - l * b[1];
        float x2 = y2 / u22;
        out[1] = x2;
        out[0] = (b[1] - x2 * 1.0f) / rk;
    } else {
        float l = rk;
        float u22 = 1.0f - l * 1.0f;
        float y2 = b[1] - l * b[0];
        float x2 = y2 / u22;
        out[1] = x2;
        out[0] = b[0] - x2 * 1.0f;
    }
}

/* The scalars of one UniPC update between sigma_s0 (from) and sigma_t (to). */
typedef struct unipc_coefs {
    float alpha_t, ratio; /* sigma_t / sigma_s0 */
    float lambda_s0, h, hh, h_phi_1, B_h;
} unipc_coefs;

static unipc_coefs unipc_setup(const tdm_sampler *s, float sig_to, float sig_from) {
    unipc_coefs u;
    float sigma_t, alpha_s0, sigma_s0;
    tdm_sigma_to_alpha_sigma(sig_to, &u.alpha_t, &sigma_t);
    tdm_sigma_to_alpha_sigma(sig_from, &alpha_s0, &sigma_s0);
    u.ratio = sigma_t / sigma_s0;
    u.lambda_s0 = lambda_of(alpha_s0, sigma_s0);
    u.h = lambda_of(u.alpha_t, sigma_t) - u.lambda_s0;
    u.hh = -u.h; /* predict_x0 */
    u.h_phi_1 = expm1f(u.hh);
    u.B_h = s->cfg.solver_type == TDM_SOLVER_BH1 ? u.hh : expm1f(u.hh);
    return u;
}

/* rk = (lambda_si - lambda_s0) / h for the history entry at sigma index si. */
static float unipc_rk(const tdm_sampler *s, const unipc_coefs *u, int si) {
    float alpha_si, sigma_si;
    tdm_sigma_to_alpha_sigma(s->sigmas[si], &alpha_si, &sigma_si);
    return (lambda_of(alpha_si, sigma_si) - u->lambda_s0) / u->h;
}

/* UniC corrector: refines the sample x (predicted at step k - 1 from last_sample) with the new model output
 * m_t (converted, in s->work); history hist0/hist1 still hold the outputs of steps k - 1, k - 2. */
static void unipc_corrector(tdm_sampler *s, int k, float *x, int64_t n) {
    int order = s->this_order;
    unipc_coefs u = unipc_setup(s, s->sigmas[k], s->sigmas[k - 1]);
    const float *m0 = s->hist0, *m1 = s->hist1, *m_t = s->work, *x_last = s->last_sample;
    float ca = u.alpha_t * u.h_phi_1, cb = u.alpha_t * u.B_h;
    if (order == 1) {
        const float rho = 0.5f;
        for (int64_t j = 0; j < n; j++) {
            float x_t_ = u.ratio * x_last[j] - ca * m0[j];
            float d1_t = m_t[j] - m0[j];
            x[j] = x_t_ - cb * (rho * d1_t);
        }
        return;
    }
    /* order 2: rhos_c = solve(R, b), R = [[1, 1], [rk, 1]], b_i = h_phi_k(i) * i! / B_h */
    float rk = unipc_rk(s, &u, k - 2);
    float h_phi_k = u.h_phi_1 / u.hh - 1.0f;
    float b[2], rhos[2];
    b[0] = h_phi_k * 1.0f / u.B_h;
    h_phi_k = h_phi_k / u.hh - 0.5f;
    b[1] = h_phi_k * 2.0f / u.B_h;
    solve_2x2(rk, b, rhos);
    for (int64_t j = 0; j < n; j++) {
        float x_t_ = u.ratio * x_last[j] - ca * m0[j];
        float d1 = (m1[j] - m0[j]) / rk;
        float corr = rhos[0] * d1;
        float d1_t = m_t[j] - m0[j];
        x[j] = x_t_ - cb * (corr + rhos[1] * d1_t);
    }
}

/* UniP predictor from step k to k + 1 with hist0 = x0 prediction at step k (rhos_p = 0.5 for order 2). */
static void unipc_predictor(tdm_sampler *s, int k, float *x, int64_t n) {
    unipc_coefs u = unipc_setup(s, s->sigmas[k + 1], s->sigmas[k]);
    const float *m0 = s->hist0, *m1 = s->hist1;
    float ca = u.alpha_t * u.h_phi_1, cb = u.alpha_t * u.B_h;
    if (s->this_order == 1) {
        for (int64_t j = 0; j < n; j++) x[j] = u.ratio * x[j] - ca * m0[j];
        return;
    }
    float rk = unipc_rk(s, &u, k - 1);
    for (int64_t j = 0; j < n; j++) {
        float x_t_ = u.ratio * x[j] - ca * m0[j];
        float d1 = (m1[j] - m0[j]) / rk;
        x[j] = x_t_ - cb * (0.5f * d1);
    }
}

tdm_code tdm_step_unipc(tdm_sampler *s, int k, const float *model_out, float *x, int64_t n) {
    int use_corrector = k > 0 && s->lower_order_nums > 0; /* last_sample exists in this run */
    convert_to_x0(s, s->sigmas[k], model_out, x, s->work, n);
    if (use_corrector) unipc_corrector(s, k, x, n);
    push_history(s);
    int order = s->order;
    if (s->cfg.lower_order_final && s->n_sched - k < order) order = s->n_sched - k;
    if (order > s->lower_order_nums + 1) order = s->lower_order_nums + 1;
    s->this_order = order;
    memcpy(s->last_sample, x, (size_t)n * sizeof *x);
    unipc_predictor(s, k, x, n);
    if (s->lower_order_nums < s->order) s->lower_order_nums++;
    return TDM_OK;
}
