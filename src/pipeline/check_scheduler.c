/* `tandem check` for scheduler fixtures (kind "scheduler"): schedule tables, timesteps / sigmas per
 * spacing and step count, full denoising trajectories with the analytic model
 * eps(x, t) = 0.3 x + 0.1 sin(t / 100) replaying the recorded noise, img2img timesteps and add_noise,
 * and the combinations diffusers refuses (case.json "errors").
 * Everything is discovered from case.json (variants, spacings, num_inference_steps, trajectory_steps,
 * img2img strengths / steps, config.<variant>.resolved) and io.safetensors tensor names; every stored
 * tensor must be used, else a FAIL line names it. Output: one summary line per group (FAIL lines always). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "pipeline/check.h"
#include "sampling/sampler.h"

#define MAX_LIST 64

typedef struct sched_ctx {
    tdm_check *c;
    unsigned char *used; /* [io.n_entries] tensor compared or consumed */
    const cJSON *errors; /* case.json "errors" (may be NULL) */
    int n_refused;       /* combinations refused as diffusers does */
    double worst_rel;    /* over all compared float tensors */
    char worst_name[160];
} sched_ctx;

/* ---- grouping of report lines: PASS lines are summarised, FAIL lines forwarded ---- */

typedef struct group {
    sched_ctx *x;
    tdm_check_line_fn fn;
    void *user;
    int n, n_fail;
    double worst_rel, worst_abs;
    char worst_name[160];
} group;

static void group_line(void *user, const char *line) {
    group *g = user;
    char status[8], name[160];
    double abs_err = 0, rel = 0;
    int got = sscanf(line, "%7s %159s max_abs %lf rel_l2 %lf", status, name, &abs_err, &rel);
    g->n++;
    if (got >= 1 && strcmp(status, "PASS") != 0) {
        g->n_fail++;
        if (g->fn) g->fn(g->user, line);
    }
    if (got == 4) {
        if (rel > g->worst_rel || g->worst_name[0] == '\0') {
            g->worst_rel = rel;
            g->worst_abs = abs_err;
            snprintf(g->worst_name, sizeof g->worst_name, "%s", name);
        }
        if (rel > g->x->worst_rel || g->x->worst_name[0] == '\0') {
            g->x->worst_rel = rel;
            snprintf(g->x->worst_name, sizeof g->x->worst_name, "%s", name);
        }
    }
}

static void group_begin(sched_ctx *x, group *g) {
    memset(g, 0, sizeof *g);
    g->x = x;
    g->fn = x->c->line_fn;
    g->user = x->c->line_user;
    x->c->line_fn = group_line;
    x->c->line_user = g;
}

/* Restores the report callback and prints "<PASS|FAIL> <label>: <n> checks[, worst ...][; extra]". */
static void group_end(sched_ctx *x, group *g, const char *label, const char *extra) {
    x->c->line_fn = g->fn;
    x->c->line_user = g->user;
    if (g->n == 0 && !extra) return;
    char worst[256] = "";
    if (g->worst_name[0])
        snprintf(worst, sizeof worst, ", worst rel_l2 %.3e max_abs %.3e (%s)", g->worst_rel, g->worst_abs,
                 g->worst_name);
    tdm_check_line(x->c, "%s %s: %d checks%s%s%s", g->n_fail ? "FAIL" : "PASS", label, g->n, worst,
                   extra ? "; " : "", extra ? extra : "");
}

/* ---- io helpers ---- */

static const tdm_st_entry *io_find(sched_ctx *x, const char *name) { return tdm_st_find(&x->c->io, name); }

static void mark_used(sched_ctx *x, const tdm_st_entry *e) {
    if (e) x->used[e - x->c->io.entries] = 1;
}

static int is_int_dtype(tdm_dtype d) { return d == TDM_I64 || d == TDM_I32 || d == TDM_I16 || d == TDM_I8; }

/* Float comparison through tdm_check_compare; a missing tensor or a length mismatch is a FAIL line. */
static tdm_code cmp_float(sched_ctx *x, const char *name, const float *got, int64_t n, tdm_status *st) {
    const tdm_st_entry *e = io_find(x, name);
    if (!e) {
        tdm_check_exact(x->c, name, 0, "expected tensor is missing from io.safetensors");
        return TDM_OK;
    }
    mark_used(x, e);
    tdm_tensor t = tdm_st_view(&x->c->io, e);
    if (tdm_tensor_numel(&t) != n) {
        char d[96];
        snprintf(d, sizeof d, "tandem has %lld values, the fixture %lld", (long long)n,
                 (long long)tdm_tensor_numel(&t));
        tdm_check_exact(x->c, name, 0, d);
        return TDM_OK;
    }
    return tdm_check_compare(x->c, name, got, n, st);
}

/* Timesteps: exact for integer tensors, tolerance for float ones (Euler). */
static tdm_code cmp_timesteps(sched_ctx *x, const char *name, const float *got, int n, tdm_status *st) {
    const tdm_st_entry *e = io_find(x, name);
    if (!e || !is_int_dtype(e->dtype)) return cmp_float(x, name, got, n, st);
    mark_used(x, e);
    tdm_tensor t = tdm_st_view(&x->c->io, e);
    int64_t m = tdm_tensor_numel(&t);
    char d[160] = "";
    int ok = m == n;
    if (!ok) snprintf(d, sizeof d, "tandem has %d timesteps, the fixture %lld", n, (long long)m);
    for (int64_t i = 0; ok && i < m; i++)
        if (tdm_tensor_get(&t, i) != (double)got[i]) {
            ok = 0;
            snprintf(d, sizeof d, "[%lld]: tandem %g, fixture %g", (long long)i, (double)got[i], tdm_tensor_get(&t, i));
        }
    if (ok) snprintf(d, sizeof d, "%d timesteps exact", n);
    tdm_check_exact(x->c, name, ok, d);
    return TDM_OK;
}

static void cmp_int_scalar(sched_ctx *x, const char *name, int64_t got) {
    const tdm_st_entry *e = io_find(x, name);
    char d[96];
    if (!e) {
        tdm_check_exact(x->c, name, 0, "expected tensor is missing from io.safetensors");
        return;
    }
    mark_used(x, e);
    tdm_tensor t = tdm_st_view(&x->c->io, e);
    double v = tdm_tensor_numel(&t) == 1 ? tdm_tensor_get(&t, 0) : NAN;
    snprintf(d, sizeof d, "tandem %lld, fixture %g", (long long)got, v);
    tdm_check_exact(x->c, name, v == (double)got, d);
}

/* case.json errors[key] or NULL. */
static const char *expected_error(sched_ctx *x, const char *key) {
    const cJSON *e = x->errors ? cJSON_GetObjectItemCaseSensitive(x->errors, key) : NULL;
    return cJSON_IsString(e) ? e->valuestring : NULL;
}

/* A sampler creation diffusers refuses: PASS when tandem refuses too. */
static void check_refusal(sched_ctx *x, const char *key, const char *expected, tdm_code rc, const tdm_status *st) {
    char d[512];
    if (rc == TDM_OK) snprintf(d, sizeof d, "diffusers refuses (%.200s) but tandem accepted", expected);
    else if (strstr(st->msg, expected)) snprintf(d, sizeof d, "refused with diffusers' message");
    else snprintf(d, sizeof d, "refused: %.400s", st->msg);
    if (rc != TDM_OK) x->n_refused++;
    tdm_check_exact(x->c, key, rc != TDM_OK, d);
}

/* ---- replayed noise: draw k = io tensor "<prefix>.noise.<k>" ---- */

typedef struct replay {
    sched_ctx *x;
    const char *prefix;
    int draws;
} replay;

static tdm_code replay_fill(void *user, int64_t k, float *out, int64_t n, tdm_status *st) {
    replay *r = user;
    char name[256];
    snprintf(name, sizeof name, "%s.noise.%lld", r->prefix, (long long)k);
    const tdm_st_entry *e = io_find(r->x, name);
    if (!e) return tdm_fail(st, TDM_ERR_MISSING, "%s: the sampler drew noise %lld but the fixture has no '%s'",
                            r->x->c->dir, (long long)k, name);
    mark_used(r->x, e);
    float *v;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(r->x->c, name, &v, &t, st));
    if (tdm_tensor_numel(&t) != n) {
        free(v);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' has %lld values, expected %lld", r->x->c->dir, name,
                        (long long)tdm_tensor_numel(&t), (long long)n);
    }
    memcpy(out, v, (size_t)n * sizeof *out);
    free(v);
    r->draws++;
    return TDM_OK;
}

/* ---- the parts of a variant ---- */

typedef struct variant {
    const char *name;
    const char *spacing; /* fixture label ("leading", ..., "default") */
    tdm_sampler_kind kind;
    tdm_scheduler_config cfg;
} variant;

static int all_timesteps(const tdm_sampler *s, float *out) {
    int n = tdm_sampler_n_steps(s);
    for (int i = 0; i < n; i++) out[i] = tdm_sampler_timestep(s, i);
    return n;
}

/* <v>.<sp>.n<N>.{timesteps, init_noise_sigma, sigmas} */
static tdm_code check_schedule(sched_ctx *x, const variant *v, int N, tdm_status *st) {
    char key[160], name[200];
    snprintf(key, sizeof key, "%s.%s.n%d", v->name, v->spacing, N);
    tdm_sampler *s;
    tdm_status est = {0};
    tdm_code rc = tdm_sampler_create(&s, v->kind, &v->cfg, N, 1.0, &est);
    const char *err = expected_error(x, key);
    if (err) {
        check_refusal(x, key, err, rc, &est);
        tdm_sampler_free(s);
        return TDM_OK;
    }
    if (rc) {
        tdm_check_exact(x->c, key, 0, est.msg);
        return TDM_OK;
    }
    float *ts = malloc(((size_t)N + 2) * sizeof *ts);
    if (!ts) {
        tdm_sampler_free(s);
        return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    int n = all_timesteps(s, ts);
    snprintf(name, sizeof name, "%s.timesteps", key);
    rc = cmp_timesteps(x, name, ts, n, st);
    float ins = tdm_sampler_init_noise_sigma(s);
    snprintf(name, sizeof name, "%s.init_noise_sigma", key);
    if (!rc) rc = cmp_float(x, name, &ins, 1, st);
    int ns;
    const float *sig = tdm_sampler_sigmas(s, &ns);
    snprintf(name, sizeof name, "%s.sigmas", key);
    if (!rc && (sig || io_find(x, name))) {
        if (sig) rc = cmp_float(x, name, sig, ns, st);
        else tdm_check_exact(x->c, name, 0, "the fixture has sigmas, tandem's sampler has none");
    }
    free(ts);
    tdm_sampler_free(s);
    return rc;
}

/* traj.<v>.<sp>.n<N>.{x.i, xin.i, eps.i, denoised.i, noise.k} */
static tdm_code check_trajectory(sched_ctx *x, const variant *v, int N, const float *noise0, int64_t n,
                                 tdm_status *st) {
    char prefix[160], name[220], label[200], extra[128];
    snprintf(prefix, sizeof prefix, "traj.%s.%s.n%d", v->name, v->spacing, N);
    tdm_sampler *s;
    tdm_status est = {0};
    tdm_code rc = tdm_sampler_create(&s, v->kind, &v->cfg, N, 1.0, &est);
    if (rc) {
        tdm_check_exact(x->c, prefix, 0, est.msg);
        return TDM_OK;
    }
    float *xs = malloc((size_t)n * sizeof *xs), *xin = malloc((size_t)n * sizeof *xin);
    float *eps = malloc((size_t)n * sizeof *eps);
    if (!xs || !xin || !eps) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        goto done;
    }
    group g;
    group_begin(x, &g);
    replay rp = {x, prefix, 0};
    tdm_noise_source src = {replay_fill, &rp};
    float ins = tdm_sampler_init_noise_sigma(s);
    for (int64_t j = 0; j < n; j++) xs[j] = noise0[j] * ins;
    snprintf(name, sizeof name, "%s.x.0", prefix);
    rc = cmp_float(x, name, xs, n, st);
    int steps = tdm_sampler_n_steps(s);
    for (int i = 0; !rc && i < steps; i++) {
        float t = tdm_sampler_timestep(s, i);
        tdm_sampler_scale_model_input(s, i, xs, xin, n);
        /* analytic model as the fixture: 0.3 * xin + 0.1 * sin(t / 100) in float32 */
        float c = 0.1f * (float)sin((double)(float)((double)t / 100.0));
        for (int64_t j = 0; j < n; j++) eps[j] = 0.3f * xin[j] + c;
        snprintf(name, sizeof name, "%s.xin.%d", prefix, i);
        rc = cmp_float(x, name, xin, n, st);
        snprintf(name, sizeof name, "%s.eps.%d", prefix, i);
        if (!rc) rc = cmp_float(x, name, eps, n, st);
        if (!rc) rc = tdm_sampler_step(s, i, eps, xs, n, &src, st);
        snprintf(name, sizeof name, "%s.x.%d", prefix, i + 1);
        if (!rc) rc = cmp_float(x, name, xs, n, st);
        const float *den = tdm_sampler_denoised(s);
        snprintf(name, sizeof name, "%s.denoised.%d", prefix, i);
        if (!rc && (den || io_find(x, name))) {
            if (den) rc = cmp_float(x, name, den, n, st);
            else tdm_check_exact(x->c, name, 0, "the fixture has denoised outputs, tandem's sampler has none");
        }
    }
    /* recorded noise the sampler did not draw (diffusers' Euler draws noise it only uses with s_churn > 0) */
    int recorded = 0;
    for (;; recorded++) {
        snprintf(name, sizeof name, "%s.noise.%d", prefix, recorded);
        const tdm_st_entry *e = io_find(x, name);
        if (!e) break;
        mark_used(x, e);
    }
    snprintf(label, sizeof label, "%s (%d steps, x/xin/eps%s)", prefix, steps, tdm_sampler_denoised(s) ? "/denoised" : "");
    snprintf(extra, sizeof extra, "noise: %d drawn of %d recorded", rp.draws, recorded);
    group_end(x, &g, label, recorded || rp.draws ? extra : NULL);
done:
    free(xs);
    free(xin);
    free(eps);
    tdm_sampler_free(s);
    return rc;
}

/* <prefix>.<v>.<sp>.s<strength>.n<N>.{timesteps, num_inference_steps, noisy} */
static tdm_code check_img2img(sched_ctx *x, const variant *v, const char *prefix, tdm_img2img_rule rule,
                              double strength, int N, const float *x0, const float *noise, int64_t n,
                              tdm_status *st) {
    char sstr[40], key[200], name[240];
    tdm_py_float_repr(strength, sstr, sizeof sstr);
    for (char *p = sstr; *p; p++)
        if (*p == '.') *p = '_';
    snprintf(key, sizeof key, "%s.%s.%s.s%s.n%d", prefix, v->name, v->spacing, sstr, N);
    tdm_sampler *s;
    tdm_status est = {0};
    tdm_code rc = tdm_sampler_create_ex(&s, v->kind, &v->cfg, N, strength, rule, &est);
    const char *err = expected_error(x, key);
    if (err) {
        check_refusal(x, key, err, rc, &est);
        tdm_sampler_free(s);
        return TDM_OK;
    }
    if (rc) {
        tdm_check_exact(x->c, key, 0, est.msg);
        return TDM_OK;
    }
    float *ts = malloc(((size_t)N + 1) * sizeof *ts), *noisy = malloc((size_t)n * sizeof *noisy);
    if (!ts || !noisy) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc) {
        int k = all_timesteps(s, ts);
        snprintf(name, sizeof name, "%s.timesteps", key);
        rc = cmp_timesteps(x, name, ts, k, st);
        snprintf(name, sizeof name, "%s.num_inference_steps", key);
        cmp_int_scalar(x, name, k);
        tdm_sampler_add_noise(s, x0, noise, noisy, n);
        snprintf(name, sizeof name, "%s.noisy", key);
        if (!rc) rc = cmp_float(x, name, noisy, n, st);
    }
    free(ts);
    free(noisy);
    tdm_sampler_free(s);
    return rc;
}

/* ---- case.json ---- */

static tdm_code read_ints(const cJSON *obj, const char *key, const char *what, long *out, int *n, tdm_status *st) {
    return tdm_json_int_array(obj, key, what, 0, 1, 100000, out, MAX_LIST, n, st);
}

static tdm_code read_nums(const cJSON *obj, const char *key, const char *what, double *out, int *n, tdm_status *st) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    *n = 0;
    if (!a) return TDM_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > MAX_LIST)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must be an array of at most %d numbers", what, key, MAX_LIST);
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must hold numbers", what, key);
        out[(*n)++] = e->valuedouble;
    }
    return TDM_OK;
}

static tdm_code variant_kind(const char *dir, const char *name, tdm_sampler_kind *kind, tdm_status *st) {
    static const struct {
        const char *prefix;
        tdm_sampler_kind kind;
    } map[] = {{"euler_a", TDM_SAMPLER_EULER_ANCESTRAL}, {"euler_ancestral", TDM_SAMPLER_EULER_ANCESTRAL},
               {"euler", TDM_SAMPLER_EULER},           {"ddim", TDM_SAMPLER_DDIM},
               {"ddpm", TDM_SAMPLER_DDPM},             {"dpmpp", TDM_SAMPLER_DPMPP_2M},
               {"dpmsolver", TDM_SAMPLER_DPMPP_2M},    {"unipc", TDM_SAMPLER_UNIPC},
               {"lcm", TDM_SAMPLER_LCM}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(name, map[i].prefix, strlen(map[i].prefix)) == 0) {
            *kind = map[i].kind;
            return TDM_OK;
        }
    return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: scheduler variant '%s' is not a known sampler", dir, name);
}

static tdm_code check_variant(sched_ctx *x, const char *vname, const cJSON *cj, const float *noise0, int64_t n0,
                              const float *ix0, const float *inoise, int64_t ni, tdm_status *st) {
    tdm_check *c = x->c;
    char what[256];
    variant v;
    memset(&v, 0, sizeof v);
    v.name = vname;
    TDM_TRY(variant_kind(c->dir, vname, &v.kind, st));
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cj, "config"), vname);
    const cJSON *resolved = cJSON_GetObjectItemCaseSensitive(conf, "resolved");
    snprintf(what, sizeof what, "%s/case.json config.%s.resolved", c->dir, vname);
    if (!resolved) return tdm_fail(st, TDM_ERR_MISSING, "%s is missing", what);
    TDM_TRY(tdm_scheduler_config_from_json(resolved, what, &v.cfg, st));

    /* schedule tables */
    int T = v.cfg.num_train_timesteps;
    tdm_sampler *s0;
    TDM_TRY(tdm_sampler_create(&s0, v.kind, &v.cfg, 1, 1.0, st));
    char name[200];
    snprintf(name, sizeof name, "%s.betas", vname);
    tdm_code rc = cmp_float(x, name, tdm_sampler_betas(s0), T, st);
    snprintf(name, sizeof name, "%s.alphas_cumprod", vname);
    if (!rc) rc = cmp_float(x, name, tdm_sampler_alphas_cumprod(s0), T, st);
    tdm_sampler_free(s0);
    TDM_TRY(rc);

    long steps[MAX_LIST], traj[MAX_LIST], i2i_steps[MAX_LIST];
    double strengths[MAX_LIST];
    int n_steps = 0, n_traj = 0, n_i2i = 0, n_str = 0;
    snprintf(what, sizeof what, "%s/case.json", c->dir);
    TDM_TRY(read_ints(cj, "num_inference_steps", what, steps, &n_steps, st));
    TDM_TRY(read_ints(cj, "trajectory_steps", what, traj, &n_traj, st));
    const cJSON *i2i = cJSON_GetObjectItemCaseSensitive(cj, "img2img");
    if (i2i) {
        TDM_TRY(read_nums(i2i, "strengths", what, strengths, &n_str, st));
        TDM_TRY(read_ints(i2i, "steps", what, i2i_steps, &n_i2i, st));
    }
    const cJSON *spacings = cJSON_GetObjectItemCaseSensitive(cj, "spacings");
    if (!cJSON_IsArray(spacings)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: 'spacings' must be an array", what);
    const cJSON *sp;
    cJSON_ArrayForEach(sp, spacings) {
        if (!cJSON_IsString(sp)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: 'spacings' must hold strings", what);
        v.spacing = sp->valuestring;
        if (strcmp(v.spacing, "default") != 0) TDM_TRY(tdm_spacing_parse(v.spacing, &v.cfg.timestep_spacing, st));
        char label[200], extra[96];
        group g;
        int refused0 = x->n_refused;
        group_begin(x, &g);
        for (int i = 0; !rc && i < n_steps; i++) rc = check_schedule(x, &v, (int)steps[i], st);
        snprintf(label, sizeof label, "%s.%s: timesteps / init_noise_sigma / sigmas for %d step counts", vname,
                 v.spacing, n_steps);
        snprintf(extra, sizeof extra, "%d combinations refused as diffusers does", x->n_refused - refused0);
        group_end(x, &g, label, x->n_refused > refused0 ? extra : NULL);
        TDM_TRY(rc);
        for (int i = 0; !rc && i < n_traj; i++) rc = check_trajectory(x, &v, (int)traj[i], noise0, n0, st);
        TDM_TRY(rc);
        if (n0 != ni && n_str) return tdm_fail(st, TDM_ERR_FORMAT, "%s: img2img.x0 / noise sizes differ", what);
        /* img2img: get_timesteps rule for every sampler; the LCM img2img pipeline rule for LCM */
        for (int r = 0; r < 2; r++) {
            const char *prefix = r == 0 ? "img2img" : "lcm_img2img";
            if (r == 1 && v.kind != TDM_SAMPLER_LCM) break;
            refused0 = x->n_refused;
            group_begin(x, &g);
            for (int a = 0; !rc && a < n_str; a++)
                for (int b = 0; !rc && b < n_i2i; b++)
                    rc = check_img2img(x, &v, prefix, r == 0 ? TDM_IMG2IMG_GET_TIMESTEPS : TDM_IMG2IMG_LCM,
                                       strengths[a], (int)i2i_steps[b], ix0, inoise, ni, st);
            snprintf(label, sizeof label, "%s.%s.%s: timesteps / count / noisy for %d strengths x %d step counts",
                     prefix, vname, v.spacing, n_str, n_i2i);
            snprintf(extra, sizeof extra, "%d combinations refused as diffusers does", x->n_refused - refused0);
            group_end(x, &g, label, x->n_refused > refused0 ? extra : NULL);
            TDM_TRY(rc);
        }
    }
    return TDM_OK;
}

static tdm_code load_input(sched_ctx *x, const char *name, float **v, int64_t *n, tdm_status *st) {
    tdm_tensor t;
    TDM_TRY(tdm_check_input(x->c, name, v, &t, st));
    mark_used(x, io_find(x, name));
    *n = tdm_tensor_numel(&t);
    return TDM_OK;
}

tdm_code tdm_check_scheduler(tdm_check *c, tdm_status *st) {
    if (!c->io.map) return tdm_fail(st, TDM_ERR_MISSING, "%s: scheduler fixture has no io.safetensors", c->dir);
    sched_ctx x;
    memset(&x, 0, sizeof x);
    x.c = c;
    x.errors = cJSON_GetObjectItemCaseSensitive(c->case_json, "errors");
    x.used = calloc((size_t)c->io.n_entries + 1, 1);
    if (!x.used) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    float *noise0 = NULL, *ix0 = NULL, *inoise = NULL;
    int64_t n0 = 0, nx = 0, nn = 0;
    tdm_code rc = load_input(&x, "traj.noise0", &noise0, &n0, st);
    if (!rc && io_find(&x, "img2img.x0")) {
        rc = load_input(&x, "img2img.x0", &ix0, &nx, st);
        if (!rc) rc = load_input(&x, "img2img.noise", &inoise, &nn, st);
        if (!rc && nx != nn) rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: img2img.x0 and img2img.noise differ in size", c->dir);
    }
    const cJSON *variants = cJSON_GetObjectItemCaseSensitive(c->case_json, "variants");
    if (!rc && !cJSON_IsArray(variants))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s/case.json: 'variants' must be an array of names", c->dir);
    const cJSON *v;
    if (!rc) cJSON_ArrayForEach(v, variants) {
            if (!cJSON_IsString(v)) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s/case.json: 'variants' must hold strings", c->dir);
                break;
            }
            rc = check_variant(&x, v->valuestring, c->case_json, noise0, n0, ix0, inoise, nx, st);
            if (rc) break;
        }
    if (!rc) {
        int unchecked = 0;
        for (int i = 0; i < c->io.n_entries; i++)
            if (!x.used[i]) {
                unchecked++;
                tdm_check_exact(c, c->io.entries[i].name, 0, "stored tensor was not checked");
            }
        tdm_check_line(c, "scheduler fixture: %d tensors, %d unchecked; worst rel_l2 %.3e (%s)", c->io.n_entries,
                       unchecked, x.worst_rel, x.worst_name);
    }
    free(noise0);
    free(ix0);
    free(inoise);
    free(x.used);
    return rc;
}
