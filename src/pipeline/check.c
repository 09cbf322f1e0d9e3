#include "pipeline/check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"

/* Tolerances: the one place they are set.
 * Each fixture records fp32_vs_fp64, how far the float32 reference lands from the same computation in
 * float64. tandem computes in float32 with a different summation order (blocked GEMM, tiled attention),
 * so its distance to the float32 reference is of the same order as the reference's own error, a few
 * times larger in the worst case (two independent roundings, longer reduction chains).
 *   tol_rel = max(TOL_FACTOR * fp32_vs_fp64.rel_l2, TOL_REL_FLOOR)
 *   tol_abs = max(TOL_FACTOR * fp32_vs_fp64.max_abs, TOL_ABS_FLOOR_REL * max|expected|)
 * TOL_FACTOR 5 ("a few times" the reference's own error); measured margins: docs/TOLERANCES.md.
 * The floors cover outputs whose float64 comparison was exact by chance (e.g. an input copied
 * through, fp32_vs_fp64 = 0): 1e-6 relative is about 8 float32 ulps. When a case records no figure for an output, the worst figure of the case is used. */
#define TOL_FACTOR 5.0
#define TOL_REL_FLOOR 1e-6
#define TOL_ABS_FLOOR_REL 1e-6

void tdm_check_tolerance(double fp_rel, double fp_abs, double ref_max_abs, double *tol_rel, double *tol_abs) {
    if (fp_rel < 0) fp_rel = 1e-6; /* unknown: assume the typical float32 figure of the fixtures */
    if (fp_abs < 0) fp_abs = 1e-6 * (ref_max_abs > 1 ? ref_max_abs : 1);
    *tol_rel = fmax(TOL_FACTOR * fp_rel, TOL_REL_FLOOR);
    *tol_abs = fmax(TOL_FACTOR * fp_abs, TOL_ABS_FLOOR_REL * ref_max_abs);
}

void tdm_check_line(tdm_check *c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->line_fn) c->line_fn(c->line_user, buf);
}

const char *tdm_check_path(const tdm_check *c, const char *rel, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", c->dir, rel);
    return buf;
}

tdm_code tdm_check_input(tdm_check *c, const char *name, float **data, tdm_tensor *t_out, tdm_status *st) {
    *data = NULL;
    if (!c->io.map) return tdm_fail(st, TDM_ERR_MISSING, "%s: fixture has no io.safetensors", c->dir);
    const tdm_st_entry *e = tdm_st_find(&c->io, name);
    if (!e) return tdm_fail(st, TDM_ERR_MISSING, "%s/io.safetensors: tensor '%s' is missing", c->dir, name);
    tdm_tensor t = tdm_st_view(&c->io, e);
    int64_t n = tdm_tensor_numel(&t);
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!buf) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", name);
    tdm_code rc = tdm_tensor_to_f32(&t, buf, st);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    if (t_out) *t_out = t;
    return TDM_OK;
}

static void fp_figures(const tdm_check *c, const char *name, double *rel, double *abs_) {
    *rel = *abs_ = -1;
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(c->case_json, "fp32_vs_fp64");
    if (!cJSON_IsObject(fp)) return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(fp, name);
    if (cJSON_IsObject(e)) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "rel_l2_err");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "max_abs_err");
        if (cJSON_IsNumber(r)) *rel = r->valuedouble;
        if (cJSON_IsNumber(a)) *abs_ = a->valuedouble;
        return;
    }
    /* worst figure of the case */
    cJSON_ArrayForEach(e, fp) {
        if (!cJSON_IsObject(e)) continue;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "rel_l2_err");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "max_abs_err");
        if (cJSON_IsNumber(r) && r->valuedouble > *rel) *rel = r->valuedouble;
        if (cJSON_IsNumber(a) && a->valuedouble > *abs_) *abs_ = a->valuedouble;
    }
}

void tdm_check_compare_values(tdm_check *c, const char *name, const float *got, const float *expected,
                              int64_t numel, double tol_rel, double tol_abs) {
    double max_abs = 0, num = 0, den = 0;
    int finite = 1;
    for (int64_t i = 0; i < numel; i++) {
        double d = (double)got[i] - (double)expected[i];
        if (!isfinite(got[i])) finite = 0;
        if (fabs(d) > max_abs) max_abs = fabs(d);
        num += d * d;
        den += (double)expected[i] * expected[i];
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = finite && rel <= tol_rel && max_abs <= tol_abs;
    if (ok) c->n_pass++;
    else c->n_fail++;
    tdm_check_line(c, "%s %-48s max_abs %.3e rel_l2 %.3e (tol %.1e / %.1e)", ok ? "PASS" : "FAIL", name, max_abs, rel,
                   tol_abs, tol_rel);
}

void tdm_check_tolerance_of(const tdm_check *c, const char *name, double ref_max_abs, double *tol_rel, double *tol_abs) {
    double fr, fa;
    fp_figures(c, name, &fr, &fa);
    tdm_check_tolerance(fr, fa, ref_max_abs, tol_rel, tol_abs);
}

tdm_code tdm_check_compare_composed(tdm_check *c, const char *name, const float *got, int64_t numel, double extra_abs,
                                    tdm_status *st) {
    float *exp;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, name, &exp, &t, st));
    if (tdm_tensor_numel(&t) != numel) {
        free(exp);
        return tdm_fail(st, TDM_ERR_INTERNAL, "%s: computed %lld values, expected %lld", name, (long long)numel,
                        (long long)tdm_tensor_numel(&t));
    }
    double ref_max = 0, ss = 0;
    for (int64_t i = 0; i < numel; i++) {
        ref_max = fmax(ref_max, fabs(exp[i]));
        ss += (double)exp[i] * exp[i];
    }
    double tr, ta;
    tdm_check_tolerance_of(c, name, ref_max, &tr, &ta);
    const double rms = numel > 0 ? sqrt(ss / (double)numel) : 0;
    ta = fmax(ta, extra_abs);
    if (rms > 0) tr = fmax(tr, extra_abs / rms);
    tdm_check_compare_values(c, name, got, exp, numel, tr, ta);
    free(exp);
    return TDM_OK;
}

tdm_code tdm_check_compare(tdm_check *c, const char *name, const float *got, int64_t numel, tdm_status *st) {
    return tdm_check_compare_composed(c, name, got, numel, 0.0, st); /* no inherited error: the plain rule */
}

void tdm_check_exact(tdm_check *c, const char *name, int ok, const char *detail) {
    if (ok) c->n_pass++;
    else c->n_fail++;
    tdm_check_line(c, "%s %-48s %s", ok ? "PASS" : "FAIL", name, detail ? detail : "");
}

/* Kinds are matched exactly, or by prefix where `prefix` is set (a family of fixtures sharing one
 * format: clip-text-tiny, clip-text-shapes-full, ...; imagereward-tiny, imagereward-shapes). */
static const struct {
    const char *kind;
    int prefix;
    tdm_check_handler fn;
} handlers[] = {
    {"unet2d_condition", 0, tdm_check_unet},
    {"autoencoder_kl", 0, tdm_check_vae},
    {"clip-text", 1, tdm_check_clip_text},
    {"tokenizer-clip", 0, tdm_check_tokenizer_clip},
    {"scheduler", 0, tdm_check_scheduler},
    {"imagereward", 1, tdm_check_imagereward},
    {"tokenizer-bert", 0, tdm_check_tokenizer_bert},
    {"preprocessing", 0, tdm_check_preprocessing},
    {"controlnet", 0, tdm_check_controlnet},
    {"clip-vision-tiny", 0, tdm_check_clip_vision},
    {"sampler-consistency", 0, tdm_check_sampler_consistency},
    {"lora", 0, tdm_check_lora},
};

tdm_code tdm_check_fixture(const char *dir, int n_threads, tdm_check_line_fn line_fn, void *user, int *n_pass,
                           int *n_fail, tdm_status *st) {
    tdm_check c;
    memset(&c, 0, sizeof c);
    c.dir = dir;
    c.line_fn = line_fn;
    c.line_user = user;
    *n_pass = *n_fail = 0;
    char path[4096];
    TDM_TRY(tdm_json_load(tdm_check_path(&c, "case.json", path, sizeof path), &c.case_json, st));
    tdm_code rc = TDM_OK;
    char kind[128];
    rc = tdm_json_str(c.case_json, "kind", path, 0, NULL, kind, sizeof kind, st);
    tdm_check_handler fn = NULL;
    for (size_t i = 0; !rc && i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(kind, handlers[i].kind) == 0 ||
            (handlers[i].prefix && strncmp(kind, handlers[i].kind, strlen(handlers[i].kind)) == 0))
            fn = handlers[i].fn;
    if (!rc && !fn) rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: fixture kind '%s' is not supported", dir, kind);
    tdm_check_path(&c, "io.safetensors", path, sizeof path);
    if (!rc && access(path, F_OK) == 0) rc = tdm_st_open(&c.io, path, st);
    tdm_pool *pool = NULL;
    if (!rc) rc = tdm_pool_create(&pool, n_threads, st);
    c.ex.pool = pool;
    if (!rc) {
        tdm_check_line(&c, "fixture %s (kind %s)", dir, kind);
        rc = fn(&c, st);
    }
    tdm_pool_free(pool);
    if (c.io.map) tdm_st_close(&c.io);
    cJSON_Delete(c.case_json);
    *n_pass = c.n_pass;
    *n_fail = c.n_fail;
    return rc;
}

int tdm_check_json_ids(const cJSON *cs, const char *key, int32_t **out) {
    *out = NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cs, key);
    if (!cJSON_IsArray(a)) return -1;
    int n = cJSON_GetArraySize(a), i = 0;
    int32_t *v = malloc((size_t)(n ? n : 1) * sizeof *v); /* [n] */
    if (!v) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = cJSON_IsNumber(e) ? (int32_t)e->valuedouble : -1;
    *out = v;
    return n;
}

void tdm_check_fmt_ids(char *buf, size_t sz, const int32_t *a, int n, int max_shown) {
    size_t p = (size_t)snprintf(buf, sz, "[");
    for (int i = 0; i < n && i < max_shown && p < sz; i++)
        p += (size_t)snprintf(buf + p, sz - p, i ? " %d" : "%d", a[i]);
    if (p < sz) snprintf(buf + p, sz - p, n > max_shown ? " ... (%d)]" : "]", n);
}
