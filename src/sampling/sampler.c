/* Sampler creation (set_timesteps of each diffusers scheduler), accessors, model-input scaling,
 * add_noise and step dispatch. The step formulas live in sampler_steps.c and sampler_multistep.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "sampling/sampler_internal.h"

/* ---- names ---- */

static const char *const kind_names[TDM_SAMPLER_KIND_COUNT] = {"ddim",     "ddpm",  "euler", "euler_a",
                                                               "dpmpp_2m", "unipc", "lcm",   "consistency"};

const char *tdm_sampler_kind_name(tdm_sampler_kind kind) {
    return (unsigned)kind < TDM_SAMPLER_KIND_COUNT ? kind_names[kind] : "unknown";
}

tdm_code tdm_sampler_kind_parse(const char *name, tdm_sampler_kind *kind, int *karras, tdm_status *st) {
    static const struct {
        const char *name;
        tdm_sampler_kind kind;
    } aliases[] = {{"ddim", TDM_SAMPLER_DDIM},       {"ddpm", TDM_SAMPLER_DDPM},
                   {"euler", TDM_SAMPLER_EULER},     {"euler_a", TDM_SAMPLER_EULER_ANCESTRAL},
                   {"euler_ancestral", TDM_SAMPLER_EULER_ANCESTRAL},
                   {"dpmpp_2m", TDM_SAMPLER_DPMPP_2M}, {"dpmpp2m", TDM_SAMPLER_DPMPP_2M},
                   {"dpm++2m", TDM_SAMPLER_DPMPP_2M}, {"dpmsolver++", TDM_SAMPLER_DPMPP_2M},
                   {"unipc", TDM_SAMPLER_UNIPC},     {"lcm", TDM_SAMPLER_LCM},
                   {"consistency", TDM_SAMPLER_CONSISTENCY}};
    char base[64];
    size_t len = strlen(name);
    int k = 0;
    if (len >= sizeof base) return tdm_fail(st, TDM_ERR_INVALID_ARG, "sampler name '%.64s...' is too long", name);
    memcpy(base, name, len + 1);
    if (len > 7 && strcmp(base + len - 7, "_karras") == 0) {
        base[len - 7] = '\0';
        k = 1;
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(base, aliases[i].name) == 0) {
            *kind = aliases[i].kind;
            if (karras) *karras = k;
            return TDM_OK;
        }
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "unknown sampler '%s' (choose ddim, ddpm, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, unipc, lcm, "
                    "consistency)",
                    name);
}

/* ---- configuration defaults per diffusers class ---- */

static tdm_code resolve_config(tdm_sampler_kind kind, const tdm_scheduler_config *in, tdm_scheduler_config *c,
                               tdm_status *st) {
    *c = *in;
    int lcm = kind == TDM_SAMPLER_LCM;
    /* the consistency sampler belongs to SD students: SD's schedule (as LCM), DDIM's leading grid, no clipping */
    int sd_class = lcm || kind == TDM_SAMPLER_CONSISTENCY;
    if (isnan(c->beta_start)) c->beta_start = sd_class ? 0.00085 : 0.0001;
    if (isnan(c->beta_end)) c->beta_end = sd_class ? 0.012 : 0.02;
    if (c->beta_schedule == TDM_BETAS_DEFAULT)
        c->beta_schedule = sd_class ? TDM_BETAS_SCALED_LINEAR : TDM_BETAS_LINEAR;
    if (c->timestep_spacing == TDM_SPACING_DEFAULT)
        c->timestep_spacing = (kind == TDM_SAMPLER_DDIM || kind == TDM_SAMPLER_DDPM || sd_class) ? TDM_SPACING_LEADING
                                                                                                 : TDM_SPACING_LINSPACE;
    if (c->clip_sample < 0) c->clip_sample = !sd_class;
    if (c->set_alpha_to_one < 0) c->set_alpha_to_one = 1;
    if (c->solver_order == 0) c->solver_order = 2;
    if (c->num_train_timesteps < 1) return tdm_fail(st, TDM_ERR_INVALID_ARG, "num_train_timesteps must be positive");
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "steps_offset = %d is outside [0, %d)", c->steps_offset,
                        c->num_train_timesteps);
    if (!(c->beta_start > 0 && c->beta_start < 1 && c->beta_end > 0 && c->beta_end < 1))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "beta_start = %g and beta_end = %g must be in (0, 1)", c->beta_start,
                        c->beta_end);
    if (kind == TDM_SAMPLER_DPMPP_2M) {
        if (c->solver_type != TDM_SOLVER_HEUN) c->solver_type = TDM_SOLVER_MIDPOINT; /* diffusers maps bh1/bh2 */
        if (c->solver_order > 2)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "dpmpp_2m: solver_order %d is not supported (1 or 2)",
                            c->solver_order);
    }
    if (kind == TDM_SAMPLER_UNIPC) {
        if (c->solver_type == TDM_SOLVER_DEFAULT || c->solver_type == TDM_SOLVER_MIDPOINT ||
            c->solver_type == TDM_SOLVER_HEUN)
            c->solver_type = TDM_SOLVER_BH2; /* diffusers maps DPM solver types to bh2 */
        if (c->solver_order > 2)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "unipc: solver_order %d is not supported (1 or 2)",
                            c->solver_order);
    }
    if (sd_class && c->original_inference_steps > c->num_train_timesteps)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "`original_steps`: %d cannot be larger than `self.config.train_timesteps`: %d as the unet "
                        "model trained with this scheduler can only handle maximal %d timesteps.",
                        c->original_inference_steps, c->num_train_timesteps, c->num_train_timesteps);
    return TDM_OK;
}

/* ---- timestep spacings ---- */

/* DDIM / DDPM (integer) and Euler (float) spacing of N steps over T training steps. */
static void spacing_single(const tdm_scheduler_config *c, int N, double *t) {
    int T = c->num_train_timesteps;
    switch (c->timestep_spacing) {
    case TDM_SPACING_LINSPACE: /* np.linspace(0, T - 1, N)[::-1] */
        for (int i = 0; i < N; i++) t[i] = tdm_np_linspace(0, T - 1, N, N - 1 - i);
        break;
    case TDM_SPACING_LEADING: /* (arange(N) * (T // N)).round()[::-1] + steps_offset */
        for (int i = 0; i < N; i++) t[i] = (double)(N - 1 - i) * (T / N) + c->steps_offset;
        break;
    default: { /* trailing: round(arange(T, 0, -T / N)) - 1 */
        double ratio = (double)T / N;
        for (int i = 0; i < N; i++) t[i] = rint(tdm_np_arange(T, 0, -ratio, i)) - 1;
        break;
    }
    }
}

/* DPM-Solver / UniPC spacing: N + 1 points with the last dropped; *count = len(timesteps). */
static void spacing_multistep(const tdm_scheduler_config *c, int N, int last_t, int64_t *t, int *count) {
    int T = c->num_train_timesteps;
    switch (c->timestep_spacing) {
    case TDM_SPACING_LINSPACE: /* linspace(0, last_t - 1, N + 1).round()[::-1][:-1] */
        for (int i = 0; i < N; i++) t[i] = (int64_t)rint(tdm_np_linspace(0, last_t - 1, N + 1, N - i));
        *count = N;
        break;
    case TDM_SPACING_LEADING: { /* (arange(N + 1) * (last_t // (N + 1)))[::-1][:-1] + steps_offset */
        int ratio = last_t / (N + 1);
        for (int i = 0; i < N; i++) t[i] = (int64_t)(N - i) * ratio + c->steps_offset;
        *count = N;
        break;
    }
    default: { /* trailing: arange(last_t, 0, -T / N).round() - 1 */
        double ratio = (double)T / N;
        int64_t len = tdm_np_arange_len(last_t, 0, -ratio);
        if (len > N) len = N; /* cannot exceed N for last_t <= T; guards the buffer */
        for (int64_t i = 0; i < len; i++) t[i] = (int64_t)rint(tdm_np_arange(last_t, 0, -ratio, i)) - 1;
        *count = (int)len;
        break;
    }
    }
}

/* LCMScheduler.set_timesteps(N, strength). */
static tdm_code lcm_timesteps(tdm_sampler *s, int N, double strength, tdm_status *st) {
    int T = s->T, orig = s->cfg.original_inference_steps;
    int k = T / orig;
    int n_origin = (int)(orig * strength); /* origin = [1 .. n_origin] * k - 1 */
    int skipping = n_origin / N;
    if (skipping < 1) {
        char s_str[40], r_str[40];
        tdm_py_float_repr(strength, s_str, sizeof s_str);
        tdm_py_float_repr((double)N / orig, r_str, sizeof r_str);
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "The combination of `original_steps x strength`: %d x %s is smaller than "
                        "`num_inference_steps`: %d. Make sure to either reduce `num_inference_steps` to a value "
                        "smaller than %d or increase `strength` to a value higher than %s.",
                        orig, s_str, N, n_origin, r_str);
    }
    if (N > orig)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "`num_inference_steps`: %d cannot be larger than `original_inference_steps`: %d because the "
                        "final timestep schedule will be a subset of the `original_inference_steps`-sized initial "
                        "timestep schedule.",
                        N, orig);
    /* reversed origin schedule, indices floor(linspace(0, n_origin, N, endpoint=False)) */
    for (int i = 0; i < N; i++) {
        int idx = (int)floor((double)i * ((double)n_origin / N));
        s->t_int[i] = (int64_t)(n_origin - idx) * k - 1;
    }
    s->n_sched = N;
    return TDM_OK;
}

/* Consistency sampler: k = N entries of the DDIM-G grid at indices floor(i * G / N) (CD-SD1.5 sample():
 * G = num_scales = 50, indices 0, 10, 20, 30, 40 for 5 steps; docs/TRAINING.md's k-step rule). */
static tdm_code consistency_timesteps(tdm_sampler *s, int N, tdm_status *st) {
    const int G = s->cfg.original_inference_steps;
    if (N > G)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "consistency: %d steps exceed the %d-step DDIM grid the student was distilled on "
                        "(original_inference_steps); use at most %d",
                        N, G, G);
    double *grid = malloc((size_t)G * sizeof *grid);
    if (!grid) return tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
    spacing_single(&s->cfg, G, grid);
    for (int i = 0; i < N; i++) s->t_int[i] = (int64_t)rint(grid[(int64_t)i * G / N]);
    free(grid);
    s->grid_steps = G;
    s->n_sched = N;
    return TDM_OK;
}

/* sigma table of the training schedule: sqrt((1 - alphas_cumprod) / alphas_cumprod) in float32. */
static void train_sigmas(const tdm_sampler *s, float *sig) {
    for (int t = 0; t < s->T; t++) {
        float a = s->alphas_cumprod[t];
        sig[t] = sqrtf((1.0f - a) / a);
    }
}

static tdm_code set_timesteps(tdm_sampler *s, int N, double lcm_strength, tdm_status *st) {
    const tdm_scheduler_config *c = &s->cfg;
    int T = s->T;
    tdm_code rc = TDM_OK;
    float *sig = NULL, *log_sig = NULL;
    double *tmp = NULL;
    s->num_inference_steps = N;
    s->t_int = calloc((size_t)N + 1, sizeof *s->t_int);
    s->t_model = calloc((size_t)N + 1, sizeof *s->t_model);
    tmp = calloc((size_t)N + 1, sizeof *tmp);
    if (s->kind >= TDM_SAMPLER_EULER && s->kind <= TDM_SAMPLER_UNIPC) {
        s->sigmas = calloc((size_t)N + 2, sizeof *s->sigmas);
        sig = malloc((size_t)T * sizeof *sig);
        log_sig = malloc((size_t)T * sizeof *log_sig);
        if (!s->sigmas || !sig || !log_sig) rc = tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
    }
    if (!rc && (!s->t_int || !s->t_model || !tmp)) rc = tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
    if (rc) goto done;
    if (sig) {
        train_sigmas(s, sig);
        for (int t = 0; t < T; t++) log_sig[t] = logf(sig[t]);
    }

    switch (s->kind) {
    case TDM_SAMPLER_DDIM:
    case TDM_SAMPLER_DDPM:
        spacing_single(c, N, tmp);
        for (int i = 0; i < N; i++) s->t_int[i] = (int64_t)rint(tmp[i]);
        s->n_sched = N;
        break;
    case TDM_SAMPLER_LCM: rc = lcm_timesteps(s, N, lcm_strength, st); break;
    case TDM_SAMPLER_CONSISTENCY: rc = consistency_timesteps(s, N, st); break;
    case TDM_SAMPLER_EULER:
    case TDM_SAMPLER_EULER_ANCESTRAL: {
        spacing_single(c, N, tmp);
        double *sd = malloc((size_t)N * sizeof *sd);
        if (!sd) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
            break;
        }
        for (int i = 0; i < N; i++) {
            tmp[i] = (double)(float)tmp[i]; /* timesteps are float32 before the interpolation */
            sd[i] = tdm_np_interp_index(tmp[i], sig, T);
        }
        if (s->kind == TDM_SAMPLER_EULER && c->use_karras_sigmas) {
            double smin = isnan(c->sigma_min) ? sd[N - 1] : c->sigma_min;
            double smax = isnan(c->sigma_max) ? sd[0] : c->sigma_max;
            tdm_karras_sigmas(smin, smax, N, sd);
            for (int i = 0; i < N; i++) tmp[i] = tdm_sigma_to_t(sd[i], log_sig, T);
        }
        for (int i = 0; i < N; i++) {
            s->sigmas[i] = (float)sd[i];
            s->t_model[i] = (float)tmp[i];
            s->t_int[i] = (int64_t)s->t_model[i];
        }
        s->sigmas[N] = 0.0f;
        s->n_sched = N;
        free(sd);
        break;
    }
    case TDM_SAMPLER_DPMPP_2M:
    case TDM_SAMPLER_UNIPC: {
        int last_t = T;
        if (s->kind == TDM_SAMPLER_DPMPP_2M && isfinite(c->lambda_min_clipped)) {
            /* clipped_idx = searchsorted(flip(lambda_t), lambda_min_clipped) = #{t: lambda_t < clip} */
            int clipped = 0;
            for (int t = 0; t < T; t++) {
                float a = s->alphas_cumprod[t];
                float lambda = logf(sqrtf(a)) - logf(sqrtf(1.0f - a));
                if (lambda < c->lambda_min_clipped) clipped++;
            }
            last_t = T - clipped;
            if (last_t < 1) {
                rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "lambda_min_clipped = %g clips every timestep",
                              c->lambda_min_clipped);
                break;
            }
        }
        int count = N;
        spacing_multistep(c, N, last_t, s->t_int, &count);
        double *sd = calloc((size_t)N + 1, sizeof *sd);
        if (!sd) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
            break;
        }
        double sigma_last;
        if (c->use_karras_sigmas) {
            /* Karras over the whole (flipped) table: sigma_max = sig[T-1], sigma_min = sig[0] */
            count = N;
            tdm_karras_sigmas(sig[0], sig[T - 1], N, sd);
            for (int i = 0; i < N; i++) s->t_int[i] = (int64_t)rint(tdm_sigma_to_t(sd[i], log_sig, T));
            if (s->kind == TDM_SAMPLER_UNIPC) sigma_last = sd[N - 1];
            else sigma_last = c->final_sigmas_type == TDM_FINAL_SIGMA_ZERO ? 0.0 : sig[0];
        } else {
            for (int i = 0; i < count; i++) {
                if (s->t_int[i] < 0 || s->t_int[i] >= T) break; /* reported below */
                sd[i] = tdm_np_interp_index((double)s->t_int[i], sig, T);
            }
            if (s->kind == TDM_SAMPLER_UNIPC) sigma_last = sig[0];
            else sigma_last = c->final_sigmas_type == TDM_FINAL_SIGMA_ZERO ? 0.0 : sig[0];
        }
        for (int i = 0; i < count; i++) s->sigmas[i] = (float)sd[i];
        s->sigmas[count] = (float)sigma_last;
        s->n_sched = count;
        free(sd);
        break;
    }
    default: rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown sampler kind %d", (int)s->kind);
    }
    if (rc) goto done;
    if (s->n_sched < 1) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: %d steps give an empty timestep schedule",
                      tdm_sampler_kind_name(s->kind), N);
        goto done;
    }
    for (int i = 0; i < s->n_sched; i++) {
        if (s->kind != TDM_SAMPLER_EULER && s->kind != TDM_SAMPLER_EULER_ANCESTRAL)
            s->t_model[i] = (float)s->t_int[i];
        if (s->t_model[i] < 0 || s->t_model[i] > T - 1) {
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                          "%s: %s spacing with %d steps and steps_offset %d gives timestep %g outside [0, %d]",
                          tdm_sampler_kind_name(s->kind), tdm_spacing_name(c->timestep_spacing), N, c->steps_offset,
                          (double)s->t_model[i], T - 1);
            goto done;
        }
    }
    /* init_noise_sigma */
    s->init_noise_sigma = 1.0f;
    if (s->kind == TDM_SAMPLER_EULER || s->kind == TDM_SAMPLER_EULER_ANCESTRAL) {
        float mx = 0;
        for (int i = 0; i <= s->n_sched; i++) mx = fmaxf(mx, s->sigmas[i]);
        s->init_noise_sigma = c->timestep_spacing == TDM_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
done:
    free(tmp);
    free(sig);
    free(log_sig);
    return rc;
}

/* ---- creation ---- */

tdm_code tdm_sampler_create_ex(tdm_sampler **out, tdm_sampler_kind kind, const tdm_scheduler_config *cfg,
                               int num_steps, double strength, tdm_img2img_rule rule, tdm_status *st) {
    *out = NULL;
    if ((unsigned)kind >= TDM_SAMPLER_KIND_COUNT)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown sampler kind %d", (int)kind);
    const char *name = tdm_sampler_kind_name(kind);
    if (!(strength > 0 && strength <= 1))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: strength %g must be in (0, 1] (1 = text-to-image)", name,
                        strength);
    if (rule == TDM_IMG2IMG_AUTO) rule = kind == TDM_SAMPLER_LCM ? TDM_IMG2IMG_LCM : TDM_IMG2IMG_GET_TIMESTEPS;
    if (rule == TDM_IMG2IMG_LCM && kind != TDM_SAMPLER_LCM)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: the LCM img2img rule needs the lcm sampler", name);
    tdm_sampler *s = calloc(1, sizeof *s);
    if (!s) return tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
    s->kind = kind;
    tdm_code rc = resolve_config(kind, cfg, &s->cfg, st);
    if (rc) goto fail;
    s->T = s->cfg.num_train_timesteps;
    if (num_steps < 1) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: the number of steps must be at least 1 (got %d)", name, num_steps);
        goto fail;
    }
    if (num_steps > s->T) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                      "`num_inference_steps`: %d cannot be larger than `self.config.train_timesteps`: %d as the unet "
                      "model trained with this scheduler can only handle maximal %d timesteps.",
                      num_steps, s->T, s->T);
        goto fail;
    }
    s->betas = malloc((size_t)s->T * sizeof *s->betas);
    s->alphas_cumprod = malloc((size_t)s->T * sizeof *s->alphas_cumprod);
    if (!s->betas || !s->alphas_cumprod) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory");
        goto fail;
    }
    rc = tdm_schedule_betas(&s->cfg, s->betas, st);
    if (rc) goto fail;
    tdm_schedule_alphas_cumprod(s->betas, s->T, s->alphas_cumprod);
    s->final_alpha_cumprod = s->cfg.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    s->order = s->cfg.solver_order;

    rc = set_timesteps(s, num_steps, rule == TDM_IMG2IMG_LCM ? strength : 1.0, st);
    if (rc) goto fail;
    s->begin = 0;
    if (rule == TDM_IMG2IMG_GET_TIMESTEPS) {
        /* StableDiffusionImg2ImgPipeline.get_timesteps (scheduler.order is 1 for all these samplers) */
        int init = (int)(num_steps * strength);
        if (init > num_steps) init = num_steps;
        int t_start = num_steps - init > 0 ? num_steps - init : 0;
        s->begin = t_start;
    }
    s->n_steps = s->n_sched - s->begin;
    if (s->n_steps < 1) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                      "%s: strength %g with %d steps leaves no denoising step (int(steps * strength) = 0)", name,
                      strength, num_steps);
        goto fail;
    }
    *out = s;
    return TDM_OK;
fail:
    tdm_sampler_free(s);
    return rc;
}

tdm_code tdm_sampler_create(tdm_sampler **out, tdm_sampler_kind kind, const tdm_scheduler_config *cfg,
                            int num_steps, double strength, tdm_status *st) {
    return tdm_sampler_create_ex(out, kind, cfg, num_steps, strength, TDM_IMG2IMG_AUTO, st);
}

void tdm_sampler_free(tdm_sampler *s) {
    if (!s) return;
    free(s->betas);
    free(s->alphas_cumprod);
    free(s->t_int);
    free(s->t_model);
    free(s->sigmas);
    free(s->hist0);
    free(s->hist1);
    free(s->last_sample);
    free(s->work);
    free(s->denoised);
    free(s);
}

/* ---- accessors ---- */

tdm_sampler_kind tdm_sampler_get_kind(const tdm_sampler *s) { return s->kind; }
int tdm_sampler_n_steps(const tdm_sampler *s) { return s->n_steps; }
float tdm_sampler_init_noise_sigma(const tdm_sampler *s) { return s->init_noise_sigma; }
const float *tdm_sampler_betas(const tdm_sampler *s) { return s->betas; }
const float *tdm_sampler_alphas_cumprod(const tdm_sampler *s) { return s->alphas_cumprod; }
const float *tdm_sampler_denoised(const tdm_sampler *s) { return s->have_denoised ? s->denoised : NULL; }

float tdm_sampler_timestep(const tdm_sampler *s, int i) {
    if (i < 0 || i >= s->n_steps) return NAN;
    return s->t_model[s->begin + i];
}

const float *tdm_sampler_sigmas(const tdm_sampler *s, int *n) {
    *n = s->sigmas ? s->n_sched + 1 : 0;
    return s->sigmas;
}

void tdm_sampler_scale_model_input(const tdm_sampler *s, int i, const float *x, float *xin, int64_t n) {
    if (s->kind == TDM_SAMPLER_EULER || s->kind == TDM_SAMPLER_EULER_ANCESTRAL) {
        /* sample / ((sigma**2 + 1) ** 0.5) */
        float sigma = s->sigmas[s->begin + (i >= 0 && i < s->n_steps ? i : 0)];
        float d = sqrtf(sigma * sigma + 1.0f);
        for (int64_t j = 0; j < n; j++) xin[j] = x[j] / d;
    } else if (xin != x) {
        memcpy(xin, x, (size_t)n * sizeof *xin);
    }
}

void tdm_sampler_add_noise(const tdm_sampler *s, const float *x0, const float *noise, float *x_out, int64_t n) {
    tdm_sampler_add_noise_at(s, 0, x0, noise, x_out, n);
}

void tdm_sampler_add_noise_at(const tdm_sampler *s, int i, const float *x0, const float *noise, float *x_out,
                              int64_t n) {
    if (i >= s->n_steps) { /* after the last step: the clean sample */
        if (x_out != x0) memcpy(x_out, x0, sizeof(float) * (size_t)n);
        return;
    }
    int k = s->begin + (i > 0 ? i : 0);
    switch (s->kind) {
    case TDM_SAMPLER_EULER:
    case TDM_SAMPLER_EULER_ANCESTRAL: { /* x0 + noise * sigma */
        float sigma = s->sigmas[k];
        for (int64_t j = 0; j < n; j++) x_out[j] = x0[j] + noise[j] * sigma;
        break;
    }
    case TDM_SAMPLER_DPMPP_2M:
    case TDM_SAMPLER_UNIPC: { /* alpha_t * x0 + sigma_t * noise */
        float alpha_t, sigma_t;
        tdm_sigma_to_alpha_sigma(s->sigmas[k], &alpha_t, &sigma_t);
        for (int64_t j = 0; j < n; j++) x_out[j] = alpha_t * x0[j] + sigma_t * noise[j];
        break;
    }
    default: { /* sqrt(alphas_cumprod[t]) * x0 + sqrt(1 - alphas_cumprod[t]) * noise */
        float a = s->alphas_cumprod[s->t_int[k]];
        float sa = sqrtf(a), sb = sqrtf(1.0f - a);
        for (int64_t j = 0; j < n; j++) x_out[j] = sa * x0[j] + sb * noise[j];
        break;
    }
    }
}

/* ---- stepping ---- */

static tdm_code ensure_buffers(tdm_sampler *s, int64_t n, tdm_status *st) {
    if (s->n == n && s->work) return TDM_OK;
    free(s->hist0);
    free(s->hist1);
    free(s->last_sample);
    free(s->work);
    free(s->denoised);
    s->hist0 = s->hist1 = s->last_sample = s->work = s->denoised = NULL;
    size_t bytes = (size_t)n * sizeof(float);
    s->work = malloc(bytes);
    if (s->kind == TDM_SAMPLER_DPMPP_2M || s->kind == TDM_SAMPLER_UNIPC) {
        s->hist0 = malloc(bytes);
        s->hist1 = malloc(bytes);
    }
    if (s->kind == TDM_SAMPLER_UNIPC) s->last_sample = malloc(bytes);
    const int want_denoised = s->kind == TDM_SAMPLER_LCM || s->kind == TDM_SAMPLER_CONSISTENCY;
    if (want_denoised) s->denoised = malloc(bytes);
    int ok = s->work && (s->kind != TDM_SAMPLER_DPMPP_2M && s->kind != TDM_SAMPLER_UNIPC ? 1 : s->hist0 && s->hist1) &&
             (s->kind != TDM_SAMPLER_UNIPC || s->last_sample) && (!want_denoised || s->denoised);
    if (!ok) {
        s->n = 0;
        return tdm_fail(st, TDM_ERR_NOMEM, "sampler: out of memory for %lld values", (long long)n);
    }
    s->n = n;
    return TDM_OK;
}

tdm_code tdm_sampler_step(tdm_sampler *s, int i, const float *model_out, float *x, int64_t n,
                          const tdm_noise_source *noise, tdm_status *st) {
    const char *name = tdm_sampler_kind_name(s->kind);
    if (i < 0 || i >= s->n_steps)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: step %d is outside [0, %d)", name, i, s->n_steps);
    if (n < 1) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: empty sample", name);
    if (i != 0 && i != s->next_step)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: step %d called out of order (expected %d)", name, i,
                        s->next_step);
    if (i != 0 && n != s->n)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: sample size changed from %lld to %lld within a run", name,
                        (long long)s->n, (long long)n);
    TDM_TRY(ensure_buffers(s, n, st));
    if (i == 0) { /* a fresh run */
        s->lower_order_nums = 0;
        s->this_order = 0;
        s->have_denoised = 0;
    }
    int k = s->begin + i;
    const float *z = NULL;
    if (tdm_step_draws_noise(s, k)) {
        if (!noise || !noise->fill)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: step %d needs a noise source", name, i);
        TDM_TRY(noise->fill(noise->user, i, s->work, n, st));
        z = s->work;
    }
    tdm_code rc;
    switch (s->kind) {
    case TDM_SAMPLER_DDIM: rc = tdm_step_ddim(s, k, model_out, x, n, z); break;
    case TDM_SAMPLER_DDPM: rc = tdm_step_ddpm(s, k, model_out, x, n, z); break;
    case TDM_SAMPLER_LCM: rc = tdm_step_lcm(s, k, model_out, x, n, z); break;
    case TDM_SAMPLER_CONSISTENCY: rc = tdm_step_consistency(s, k, model_out, x, n, z); break;
    case TDM_SAMPLER_EULER: rc = tdm_step_euler(s, k, model_out, x, n); break;
    case TDM_SAMPLER_EULER_ANCESTRAL: rc = tdm_step_euler_ancestral(s, k, model_out, x, n, z); break;
    case TDM_SAMPLER_DPMPP_2M: rc = tdm_step_dpmpp_2m(s, k, model_out, x, n); break;
    case TDM_SAMPLER_UNIPC: rc = tdm_step_unipc(s, k, model_out, x, n); break;
    default: rc = tdm_fail(st, TDM_ERR_INTERNAL, "unknown sampler kind");
    }
    if (rc) return tdm_fail(st, rc, "%s: step %d failed", name, i);
    s->next_step = i + 1;
    return TDM_OK;
}

/* ---- seeded noise ---- */

static tdm_code seeded_fill(void *user, int64_t k, float *out, int64_t n, tdm_status *st) {
    const tdm_seeded_noise *c = user;
    if (k < 0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "noise draw %lld is negative", (long long)k);
    tdm_randn(out, (size_t)n, c->seed, c->stream0 + (uint64_t)k, 0);
    return TDM_OK;
}

tdm_noise_source tdm_noise_source_seeded(tdm_seeded_noise *ctx) {
    tdm_noise_source src = {seeded_fill, ctx};
    return src;
}
