/* scheduler_config.json loader (diffusers field names). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "base/json.h"
#include "sampling/schedule.h"

void tdm_scheduler_config_init(tdm_scheduler_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->num_train_timesteps = 1000;
    cfg->beta_start = NAN;
    cfg->beta_end = NAN;
    cfg->beta_schedule = TDM_BETAS_DEFAULT;
    cfg->prediction_type = TDM_PRED_EPSILON;
    cfg->timestep_spacing = TDM_SPACING_DEFAULT;
    cfg->steps_offset = 0;
    cfg->clip_sample = -1;
    cfg->clip_sample_range = 1.0;
    cfg->set_alpha_to_one = -1;
    cfg->use_karras_sigmas = 0;
    cfg->sigma_min = NAN;
    cfg->sigma_max = NAN;
    cfg->solver_order = 0;
    cfg->lower_order_final = 1;
    cfg->euler_at_final = 0;
    cfg->final_sigmas_type = TDM_FINAL_SIGMA_ZERO;
    cfg->lambda_min_clipped = -INFINITY;
    cfg->solver_type = TDM_SOLVER_DEFAULT;
    cfg->variance_type = TDM_VARIANCE_FIXED_SMALL;
    cfg->original_inference_steps = 50;
    cfg->timestep_scaling = 10.0;
    cfg->eta = 0.0;
}

/* A string field mapped onto one of names[] (values[i]); absent or null keeps *out. */
static tdm_code enum_field(const cJSON *obj, const char *key, const char *what, const char *const *names,
                           const int *values, int n, int *out, tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return TDM_OK;
    char buf[64];
    TDM_TRY(tdm_json_str(obj, key, what, 0, NULL, buf, sizeof buf, st));
    for (int i = 0; i < n; i++)
        if (strcmp(buf, names[i]) == 0) {
            *out = values[i];
            return TDM_OK;
        }
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' = '%s' is not one of: %s", what, key, buf, list);
}

static tdm_code int_field(const cJSON *obj, const char *key, const char *what, long lo, long hi, int *out,
                          tdm_status *st) {
    long v;
    TDM_TRY(tdm_json_int(obj, key, what, 1, *out, lo, hi, &v, st));
    *out = (int)v;
    return TDM_OK;
}

static tdm_code bool_field(const cJSON *obj, const char *key, const char *what, int *out, tdm_status *st) {
    return tdm_json_bool(obj, key, what, 1, *out, out, st);
}

/* A field whose non-default value tandem does not implement. */
static tdm_code refuse_if(int cond, const char *what, const char *key, const char *why, tdm_status *st) {
    return cond ? tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s': %s", what, key, why) : TDM_OK;
}

static int present(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v);
}

static tdm_code unsupported_fields(const cJSON *obj, const char *what, tdm_status *st) {
    int b = 0;
    TDM_TRY(refuse_if(present(obj, "trained_betas"), what, "trained_betas", "explicit beta tables are not supported",
                      st));
    TDM_TRY(bool_field(obj, "thresholding", what, &b, st));
    TDM_TRY(refuse_if(b, what, "thresholding", "dynamic thresholding is not supported", st));
    b = 0;
    TDM_TRY(bool_field(obj, "rescale_betas_zero_snr", what, &b, st));
    TDM_TRY(refuse_if(b, what, "rescale_betas_zero_snr", "zero terminal SNR rescaling is not supported", st));
    b = 0;
    TDM_TRY(bool_field(obj, "use_lu_lambdas", what, &b, st));
    TDM_TRY(refuse_if(b, what, "use_lu_lambdas", "not supported", st));
    b = 1;
    TDM_TRY(bool_field(obj, "predict_x0", what, &b, st));
    TDM_TRY(refuse_if(!b, what, "predict_x0", "UniPC is supported with predict_x0 = true only", st));
    char s[64];
    TDM_TRY(tdm_json_str(obj, "algorithm_type", what, 1, "dpmsolver++", s, sizeof s, st));
    TDM_TRY(refuse_if(strcmp(s, "dpmsolver++") != 0, what, "algorithm_type",
                      "only 'dpmsolver++' is supported (DPM-Solver++ 2M)", st));
    TDM_TRY(tdm_json_str(obj, "timestep_type", what, 1, "discrete", s, sizeof s, st));
    TDM_TRY(refuse_if(strcmp(s, "discrete") != 0, what, "timestep_type", "only 'discrete' is supported", st));
    TDM_TRY(tdm_json_str(obj, "interpolation_type", what, 1, "linear", s, sizeof s, st));
    TDM_TRY(refuse_if(strcmp(s, "linear") != 0, what, "interpolation_type", "only 'linear' is supported", st));
    TDM_TRY(refuse_if(present(obj, "solver_p"), what, "solver_p", "a separate UniPC predictor is not supported", st));
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(obj, "disable_corrector");
    if (dc && !cJSON_IsNull(dc) && !cJSON_IsArray(dc))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'disable_corrector' must be an array", what);
    TDM_TRY(refuse_if(dc && cJSON_GetArraySize(dc) > 0, what, "disable_corrector", "not supported", st));
    return TDM_OK;
}

tdm_code tdm_scheduler_config_from_json(const cJSON *obj, const char *what, tdm_scheduler_config *cfg,
                                        tdm_status *st) {
    tdm_scheduler_config_init(cfg);
    if (!cJSON_IsObject(obj)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: scheduler config is not a JSON object", what);
    TDM_TRY(tdm_json_str(obj, "_class_name", what, 1, "", cfg->class_name, sizeof cfg->class_name, st));
    TDM_TRY(int_field(obj, "num_train_timesteps", what, 1, 100000, &cfg->num_train_timesteps, st));
    TDM_TRY(tdm_json_num(obj, "beta_start", what, 1, NAN, 1e-12, 1.0, &cfg->beta_start, st));
    TDM_TRY(tdm_json_num(obj, "beta_end", what, 1, NAN, 1e-12, 1.0, &cfg->beta_end, st));
    {
        static const char *const names[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
        static const int values[] = {TDM_BETAS_LINEAR, TDM_BETAS_SCALED_LINEAR, TDM_BETAS_SQUAREDCOS_CAP_V2};
        int v = cfg->beta_schedule;
        TDM_TRY(enum_field(obj, "beta_schedule", what, names, values, 3, &v, st));
        cfg->beta_schedule = (tdm_beta_schedule)v;
    }
    {
        static const char *const names[] = {"epsilon", "v_prediction", "sample"};
        static const int values[] = {TDM_PRED_EPSILON, TDM_PRED_V, TDM_PRED_SAMPLE};
        int v = cfg->prediction_type;
        TDM_TRY(enum_field(obj, "prediction_type", what, names, values, 3, &v, st));
        cfg->prediction_type = (tdm_prediction_type)v;
    }
    {
        static const char *const names[] = {"leading", "trailing", "linspace"};
        static const int values[] = {TDM_SPACING_LEADING, TDM_SPACING_TRAILING, TDM_SPACING_LINSPACE};
        int v = cfg->timestep_spacing;
        TDM_TRY(enum_field(obj, "timestep_spacing", what, names, values, 3, &v, st));
        cfg->timestep_spacing = (tdm_timestep_spacing)v;
    }
    TDM_TRY(int_field(obj, "steps_offset", what, 0, 100000, &cfg->steps_offset, st));
    TDM_TRY(bool_field(obj, "clip_sample", what, &cfg->clip_sample, st));
    TDM_TRY(tdm_json_num(obj, "clip_sample_range", what, 1, 1.0, 1e-6, 1e6, &cfg->clip_sample_range, st));
    TDM_TRY(bool_field(obj, "set_alpha_to_one", what, &cfg->set_alpha_to_one, st));
    TDM_TRY(bool_field(obj, "use_karras_sigmas", what, &cfg->use_karras_sigmas, st));
    TDM_TRY(tdm_json_num(obj, "sigma_min", what, 1, NAN, 1e-12, 1e6, &cfg->sigma_min, st));
    TDM_TRY(tdm_json_num(obj, "sigma_max", what, 1, NAN, 1e-12, 1e6, &cfg->sigma_max, st));
    TDM_TRY(int_field(obj, "solver_order", what, 1, 3, &cfg->solver_order, st));
    TDM_TRY(bool_field(obj, "lower_order_final", what, &cfg->lower_order_final, st));
    TDM_TRY(bool_field(obj, "euler_at_final", what, &cfg->euler_at_final, st));
    {
        static const char *const names[] = {"zero", "sigma_min"};
        static const int values[] = {TDM_FINAL_SIGMA_ZERO, TDM_FINAL_SIGMA_MIN};
        int v = cfg->final_sigmas_type;
        TDM_TRY(enum_field(obj, "final_sigmas_type", what, names, values, 2, &v, st));
        cfg->final_sigmas_type = (tdm_final_sigmas)v;
    }
    {
        /* -Infinity (Python's json) or a number */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "lambda_min_clipped");
        if (v && !cJSON_IsNull(v)) {
            if (!cJSON_IsNumber(v) || isnan(v->valuedouble) || v->valuedouble == INFINITY)
                return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'lambda_min_clipped' must be a number or -Infinity",
                                what);
            cfg->lambda_min_clipped = v->valuedouble;
        }
    }
    {
        static const char *const names[] = {"midpoint", "heun", "bh1", "bh2"};
        static const int values[] = {TDM_SOLVER_MIDPOINT, TDM_SOLVER_HEUN, TDM_SOLVER_BH1, TDM_SOLVER_BH2};
        int v = cfg->solver_type;
        TDM_TRY(enum_field(obj, "solver_type", what, names, values, 4, &v, st));
        cfg->solver_type = (tdm_solver_type)v;
    }
    {
        static const char *const names[] = {"fixed_small", "fixed_small_log", "fixed_large"};
        static const int values[] = {TDM_VARIANCE_FIXED_SMALL, TDM_VARIANCE_FIXED_SMALL_LOG,
                                     TDM_VARIANCE_FIXED_LARGE};
        int v = cfg->variance_type;
        TDM_TRY(enum_field(obj, "variance_type", what, names, values, 3, &v, st));
        cfg->variance_type = (tdm_variance_type)v;
    }
    TDM_TRY(int_field(obj, "original_inference_steps", what, 1, 100000, &cfg->original_inference_steps, st));
    TDM_TRY(tdm_json_num(obj, "timestep_scaling", what, 1, 10.0, 1e-6, 1e6, &cfg->timestep_scaling, st));
    TDM_TRY(unsupported_fields(obj, what, st));
    if (cfg->steps_offset >= cfg->num_train_timesteps)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: steps_offset = %d must be below num_train_timesteps = %d", what,
                        cfg->steps_offset, cfg->num_train_timesteps);
    return TDM_OK;
}

tdm_code tdm_scheduler_config_load(const char *path, tdm_scheduler_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_scheduler_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}
