/* Noise schedules and timestep spacings of the diffusers schedulers (v0.27.2), and the
 * scheduler_config.json loader.
 *
 * Numerics follow diffusers on PyTorch/NumPy (CPU) so that the tables match bit for bit:
 *  - betas: torch.linspace(..., dtype=float32) as PyTorch's CPU kernel computes it (see schedule.c),
 *    scaled_linear squares the float32 ramp; squaredcos_cap_v2 in float64 then rounded (betas_for_alpha_bar).
 *  - alphas_cumprod: torch.cumprod(1 - betas) in float32 with the CPU kernel's float64 accumulator.
 *  - timesteps: NumPy float64 (linspace / arange / round-half-even), sigmas interpolated by np.interp in
 *    float64 and rounded to float32.
 */
#ifndef TDM_SAMPLING_SCHEDULE_H
#define TDM_SAMPLING_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum tdm_beta_schedule {
    TDM_BETAS_DEFAULT = 0, /* the sampler class default (linear; LCM: scaled_linear) */
    TDM_BETAS_LINEAR,
    TDM_BETAS_SCALED_LINEAR,
    TDM_BETAS_SQUAREDCOS_CAP_V2
} tdm_beta_schedule;

typedef enum tdm_prediction_type {
    TDM_PRED_EPSILON = 0, /* the model predicts the noise */
    TDM_PRED_V,           /* v_prediction (SD 2.x 768 models) */
    TDM_PRED_SAMPLE       /* the model predicts x0 */
} tdm_prediction_type;

typedef enum tdm_timestep_spacing {
    TDM_SPACING_DEFAULT = 0, /* the sampler class default: DDIM/DDPM/LCM leading, others linspace */
    TDM_SPACING_LEADING,
    TDM_SPACING_TRAILING,
    TDM_SPACING_LINSPACE
} tdm_timestep_spacing;

typedef enum tdm_final_sigmas { TDM_FINAL_SIGMA_ZERO = 0, TDM_FINAL_SIGMA_MIN } tdm_final_sigmas;

typedef enum tdm_solver_type {
    TDM_SOLVER_DEFAULT = 0, /* DPM-Solver: midpoint; UniPC: bh2 */
    TDM_SOLVER_MIDPOINT,
    TDM_SOLVER_HEUN,
    TDM_SOLVER_BH1,
    TDM_SOLVER_BH2
} tdm_solver_type;

typedef enum tdm_variance_type {
    TDM_VARIANCE_FIXED_SMALL = 0, /* DDPM default */
    TDM_VARIANCE_FIXED_SMALL_LOG,
    TDM_VARIANCE_FIXED_LARGE
} tdm_variance_type; /* fixed_large_log and the learned variances are not supported */

/* The scheduler configuration (diffusers scheduler_config.json fields). Fields whose default depends on
 * the scheduler class hold a "default" marker (NaN, -1, *_DEFAULT) that the sampler resolves. */
typedef struct tdm_scheduler_config {
    char class_name[64];           /* "_class_name" (informational), "" when absent */
    int num_train_timesteps;       /* 1000 */
    double beta_start, beta_end;   /* NaN: class default (0.0001, 0.02; LCM 0.00085, 0.012) */
    tdm_beta_schedule beta_schedule;
    tdm_prediction_type prediction_type;
    tdm_timestep_spacing timestep_spacing;
    int steps_offset;              /* 0 */
    int clip_sample;               /* -1: class default (DDIM/DDPM true, LCM false) */
    double clip_sample_range;      /* 1.0 */
    int set_alpha_to_one;          /* -1: class default (true) */
    int use_karras_sigmas;         /* 0; Euler, DPM-Solver++ and UniPC only (others ignore it, as diffusers) */
    double sigma_min, sigma_max;   /* NaN: from the schedule (Euler Karras sigmas) */
    int solver_order;              /* 0: class default (2) */
    int lower_order_final;         /* 1 */
    int euler_at_final;            /* 0 */
    tdm_final_sigmas final_sigmas_type; /* DPM-Solver: zero */
    double lambda_min_clipped;     /* DPM-Solver: -inf */
    tdm_solver_type solver_type;
    tdm_variance_type variance_type; /* DDPM */
    int original_inference_steps;  /* LCM: 50 */
    double timestep_scaling;       /* LCM: 10.0 */
    double eta;                    /* DDIM eta (a call parameter, not read from JSON): 0 */
} tdm_scheduler_config;

/* Sets every field to "not given" / the documented defaults. */
void tdm_scheduler_config_init(tdm_scheduler_config *cfg);

/* Reads a diffusers scheduler_config.json. Unknown keys are ignored (as diffusers does); known keys are
 * type- and range-checked; features tandem does not implement (trained_betas, thresholding,
 * rescale_betas_zero_snr, other DPM algorithm types, ...) are TDM_ERR_UNSUPPORTED naming the field. */
tdm_code tdm_scheduler_config_load(const char *path, tdm_scheduler_config *cfg, tdm_status *st);
/* Same from a parsed JSON object; `what` names it in messages. Starts from tdm_scheduler_config_init. */
struct cJSON;
tdm_code tdm_scheduler_config_from_json(const struct cJSON *obj, const char *what, tdm_scheduler_config *cfg,
                                        tdm_status *st);

const char *tdm_spacing_name(tdm_timestep_spacing s);
/* "leading" / "trailing" / "linspace" -> enum; TDM_ERR_INVALID_ARG naming the value otherwise. */
tdm_code tdm_spacing_parse(const char *name, tdm_timestep_spacing *out, tdm_status *st);

/* betas[T] for cfg (beta_start/end/schedule must be resolved, not NaN/DEFAULT). */
tdm_code tdm_schedule_betas(const tdm_scheduler_config *cfg, float *betas, tdm_status *st);
/* alphas_cumprod[i] = prod_{j<=i} (1 - betas[j]) (float32 factors, float64 running product as torch CPU). */
void tdm_schedule_alphas_cumprod(const float *betas, int n, float *alphas_cumprod);

/* ---- Helpers shared by the samplers (NumPy float64 semantics) ---- */

/* np.linspace(start, stop, num)[i] (endpoint included). */
double tdm_np_linspace(double start, double stop, int num, int i);
/* len(np.arange(start, stop, step)) and element i (float arguments). */
int64_t tdm_np_arange_len(double start, double stop, double step);
double tdm_np_arange(double start, double stop, double step, int64_t i);
/* np.interp(x, arange(n), fp) with fp float32. */
double tdm_np_interp_index(double x, const float *fp, int n);
/* Karras et al. (2022) sigmas, rho = 7: out[i] for ramp = linspace(0, 1, n) (float64). */
void tdm_karras_sigmas(double sigma_min, double sigma_max, int n, double *out);
/* diffusers _sigma_to_t: fractional timestep of sigma by interpolating log sigma in log_sigmas[n] (float32). */
double tdm_sigma_to_t(double sigma, const float *log_sigmas, int n);

/* Python's repr() of a float (shortest round-trip digits, e.g. 0.3, 1.0, 1e-05): for messages quoting
 * diffusers and for fixture tensor names. */
void tdm_py_float_repr(double v, char *buf, size_t n);

#endif
