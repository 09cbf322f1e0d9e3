#include "sampling/schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- torch.linspace(start, end, n, dtype=float32) as PyTorch 1.13's CPU kernel computes it ----
 * step = (end - start) / (n - 1) in float; element i = start + step*i for i < n/2, else
 * end - step*(n-1-i) (both fused multiply-adds in the AVX2 build). The kernel fills 2 vectors of 8 lanes
 * per iteration, each vector as base + lane*step from the base of its first element; the tail (fewer than
 * 16 elements) is scalar. Reproducing this makes diffusers' betas (and everything after) bit-exact. */
static float torch_linspace_scalar(float start, float end, float step, int n, int i) {
    if (i < n / 2) return fmaf(step, (float)i, start);
    return fmaf(-step, (float)(n - 1 - i), end);
}

static void torch_linspace_f32(float start, float end, int n, float *out) {
    if (n == 1) {
        out[0] = start;
        return;
    }
    const int lanes = 8;
    float step = (end - start) / (float)(n - 1);
    int i = 0;
    for (; i <= n - 2 * lanes; i += lanes) {
        float base = torch_linspace_scalar(start, end, step, n, i);
        for (int j = 0; j < lanes; j++) out[i + j] = base + (float)j * step;
    }
    for (; i < n; i++) out[i] = torch_linspace_scalar(start, end, step, n, i);
}

/* diffusers betas_for_alpha_bar (cosine): float64, then torch.tensor(..., float32). */
static double alpha_bar_cosine(double t) {
    double c = cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
}

tdm_code tdm_schedule_betas(const tdm_scheduler_config *cfg, float *betas, tdm_status *st) {
    int n = cfg->num_train_timesteps;
    if (n < 1) return tdm_fail(st, TDM_ERR_INVALID_ARG, "num_train_timesteps = %d must be positive", n);
    switch (cfg->beta_schedule) {
    case TDM_BETAS_LINEAR:
        torch_linspace_f32((float)cfg->beta_start, (float)cfg->beta_end, n, betas);
        return TDM_OK;
    case TDM_BETAS_SCALED_LINEAR:
        /* torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=float32) ** 2 */
        torch_linspace_f32((float)pow(cfg->beta_start, 0.5), (float)pow(cfg->beta_end, 0.5), n, betas);
        for (int i = 0; i < n; i++) betas[i] = betas[i] * betas[i];
        return TDM_OK;
    case TDM_BETAS_SQUAREDCOS_CAP_V2:
        for (int i = 0; i < n; i++) {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            betas[i] = (float)fmin(1 - alpha_bar_cosine(t2) / alpha_bar_cosine(t1), 0.999);
        }
        return TDM_OK;
    case TDM_BETAS_DEFAULT: break;
    }
    return tdm_fail(st, TDM_ERR_INTERNAL, "beta_schedule not resolved");
}

void tdm_schedule_alphas_cumprod(const float *betas, int n, float *alphas_cumprod) {
    double acc = 1.0; /* torch CPU cumprod accumulates float in double */
    for (int i = 0; i < n; i++) {
        acc *= (double)(1.0f - betas[i]);
        alphas_cumprod[i] = (float)acc;
    }
}

/* ---- NumPy float64 helpers ---- */

double tdm_np_linspace(double start, double stop, int num, int i) {
    if (num <= 1) return start;
    if (i == num - 1) return stop;
    int div = num - 1;
    double delta = stop - start, step = delta / div;
    if (step == 0) return (double)i / div * delta + start;
    return (double)i * step + start;
}

int64_t tdm_np_arange_len(double start, double stop, double step) {
    double len = ceil((stop - start) / step);
    return len > 0 ? (int64_t)len : 0;
}

double tdm_np_arange(double start, double stop, double step, int64_t i) {
    (void)stop;
    if (i == 0) return start;
    double delta = (start + step) - start; /* NumPy fills from the first two values */
    return start + (double)i * delta;
}

double tdm_np_interp_index(double x, const float *fp, int n) {
    if (isnan(x)) return x;
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

void tdm_karras_sigmas(double sigma_min, double sigma_max, int n, double *out) {
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1 / rho), max_inv = pow(sigma_max, 1 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = tdm_np_linspace(0, 1, n, i);
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

double tdm_sigma_to_t(double sigma, const float *log_sigmas, int n) {
    double log_sigma = log(fmax(sigma, 1e-10));
    /* low = last index with log_sigma >= log_sigmas[i] (0 when none), at most n - 2 */
    int low = 0;
    for (int i = 0; i < n; i++)
        if (log_sigma - (double)log_sigmas[i] >= 0) low = i;
    if (low > n - 2) low = n - 2;
    int high = low + 1;
    float lo = log_sigmas[low], hi = log_sigmas[high];
    double w = ((double)lo - log_sigma) / (double)(lo - hi); /* lo - hi in float32 as NumPy */
    w = fmin(fmax(w, 0.0), 1.0);
    return (1 - w) * low + w * high;
}

/* Python's repr() of a float (shortest round-trip digits), for messages that quote diffusers'. */
void tdm_py_float_repr(double v, char *buf, size_t n) {
    char tmp[64];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
    char digits[32];
    int nd = 0, neg = tmp[0] == '-';
    const char *c = tmp + neg;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') digits[nd++] = *c;
    int exp10 = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    char out[96];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -exp10 - 1; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++) out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++) out[o++] = digits[i];
            else
                out[o++] = '0';
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(buf, n, "%s", out);
}

/* ---- names ---- */

const char *tdm_spacing_name(tdm_timestep_spacing s) {
    switch (s) {
    case TDM_SPACING_LEADING: return "leading";
    case TDM_SPACING_TRAILING: return "trailing";
    case TDM_SPACING_LINSPACE: return "linspace";
    case TDM_SPACING_DEFAULT: break;
    }
    return "default";
}

tdm_code tdm_spacing_parse(const char *name, tdm_timestep_spacing *out, tdm_status *st) {
    if (strcmp(name, "leading") == 0) *out = TDM_SPACING_LEADING;
    else if (strcmp(name, "trailing") == 0) *out = TDM_SPACING_TRAILING;
    else if (strcmp(name, "linspace") == 0) *out = TDM_SPACING_LINSPACE;
    else
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "timestep_spacing '%s' is not supported (choose leading, trailing or linspace)", name);
    return TDM_OK;
}
