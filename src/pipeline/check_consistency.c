/* `tandem check` for kind "sampler-consistency" (tests/fixtures/shapes-consistency-sampler, written by
 * tools/shapes/make_sampler_fixture.py from tools/shapes/diffusion.py sample_consistency):
 *  - timesteps of every step count in case.json "timesteps" (exact), refused step counts;
 *  - the noise streams: x_T = tdm_randn(seed, stream 0), draw j = tdm_randn(seed, stream 1 + j) (exact);
 *  - trajectories with the analytic model eps(x, t, c) = a_c x + 0.1 sin(t / 100) (a = 0.3 prompt,
 *    0.2 unconditional) under classifier-free guidance eps_u + w (eps_c - eps_u): the guided eps, the
 *    sample entering each step, each step's x0 (tdm_sampler_denoised) and the result (x after the last
 *    step), with the recorded noise replayed as the sampler's draws. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/rng.h"
#include "pipeline/check.h"
#include "sampling/sampler.h"

#define MAX_STEPS 64

typedef struct cons_ctx {
    tdm_check *c;
    unsigned char *used; /* [io.n_entries] */
} cons_ctx;

static void mark(cons_ctx *x, const char *name) {
    for (int i = 0; i < x->c->io.n_entries; i++)
        if (strcmp(x->c->io.entries[i].name, name) == 0) x->used[i] = 1;
}

static tdm_code compare(cons_ctx *x, const char *name, const float *got, int64_t n, tdm_status *st) {
    mark(x, name);
    return tdm_check_compare(x->c, name, got, n, st);
}

/* Replays io tensors "noise.<k>" as the sampler's draws. */
typedef struct replay {
    cons_ctx *x;
} replay;

static tdm_code replay_fill(void *user, int64_t k, float *out, int64_t n, tdm_status *st) {
    replay *r = user;
    char name[64];
    snprintf(name, sizeof name, "noise.%lld", (long long)k);
    float *v;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(r->x->c, name, &v, &t, st));
    tdm_code rc = TDM_OK;
    if (tdm_tensor_numel(&t) != n)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: %lld values, the sample has %lld", name,
                      (long long)tdm_tensor_numel(&t), (long long)n);
    if (!rc) memcpy(out, v, sizeof(float) * (size_t)n);
    free(v);
    return rc;
}

static tdm_code check_timesteps(cons_ctx *x, const tdm_scheduler_config *cfg, tdm_status *st) {
    tdm_check *c = x->c;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(c->case_json, "timesteps");
    if (!cJSON_IsObject(ts)) return tdm_fail(st, TDM_ERR_FORMAT, "%s/case.json: 'timesteps' must be an object", c->dir);
    int n_ok = 0, n_counts = 0;
    char detail[256] = "";
    const cJSON *e;
    cJSON_ArrayForEach(e, ts) {
        char *end;
        long k = strtol(e->string, &end, 10);
        if (*end || k < 1 || k > MAX_STEPS || !cJSON_IsArray(e) || cJSON_GetArraySize(e) != k)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s/case.json: timesteps['%s'] must list that many integers", c->dir,
                            e->string);
        n_counts++;
        tdm_sampler *s;
        tdm_status es;
        if (tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, cfg, (int)k, 1.0, &es)) {
            if (!detail[0]) snprintf(detail, sizeof detail, "%ld steps: %.200s", k, es.msg);
            continue;
        }
        int ok = tdm_sampler_n_steps(s) == k;
        for (int i = 0; ok && i < k; i++) {
            const cJSON *v = cJSON_GetArrayItem(e, i);
            ok = cJSON_IsNumber(v) && tdm_sampler_timestep(s, i) == (float)v->valuedouble;
            if (!ok && !detail[0])
                snprintf(detail, sizeof detail, "%ld steps: timestep %d is %g, expected %g", k, i,
                         (double)tdm_sampler_timestep(s, i), cJSON_IsNumber(v) ? v->valuedouble : NAN);
        }
        n_ok += ok;
        tdm_sampler_free(s);
    }
    char label[96];
    snprintf(label, sizeof label, "timesteps (%d step counts)", n_counts);
    if (!detail[0]) snprintf(detail, sizeof detail, "%d/%d exact", n_ok, n_counts);
    tdm_check_exact(c, label, n_ok == n_counts && n_counts > 0, detail);

    long refused[8];
    int n_ref = 0;
    if (cJSON_GetObjectItemCaseSensitive(c->case_json, "refused_steps"))
        TDM_TRY(tdm_json_int_array(c->case_json, "refused_steps", "case.json", 0, -1000, 100000, refused, 8, &n_ref,
                                   st));
    for (int i = 0; i < n_ref; i++) {
        tdm_sampler *s = NULL;
        tdm_status es;
        tdm_code rc = tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, cfg, (int)refused[i], 1.0, &es);
        tdm_sampler_free(s);
        char name[64], d[300];
        snprintf(name, sizeof name, "refused: %ld steps", refused[i]);
        snprintf(d, sizeof d, "%.280s", rc ? es.msg : "accepted");
        tdm_check_exact(c, name, rc == TDM_ERR_INVALID_ARG, d);
    }
    return TDM_OK;
}

/* Exact comparison of a seeded stream with a stored tensor. */
static tdm_code check_stream(cons_ctx *x, const char *name, uint64_t seed, uint64_t stream, tdm_status *st) {
    float *v;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(x->c, name, &v, &t, st));
    mark(x, name);
    int64_t n = tdm_tensor_numel(&t);
    float *z = malloc(sizeof(float) * (size_t)n);
    if (!z) {
        free(v);
        return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    tdm_randn(z, (size_t)n, seed, stream, 0);
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)z[i] - v[i]));
    char label[96], d[96];
    snprintf(label, sizeof label, "%s = tdm_randn(seed, stream %llu)", name, (unsigned long long)stream);
    if (mx == 0) snprintf(d, sizeof d, "exact (%lld values)", (long long)n);
    else snprintf(d, sizeof d, "max_abs %.3e (%lld values)", mx, (long long)n);
    tdm_check_exact(x->c, label, mx == 0, d);
    free(v);
    free(z);
    return TDM_OK;
}

static tdm_code run_trajectory(cons_ctx *x, const tdm_scheduler_config *cfg, int K, float w, const float *x_T,
                               int64_t n, tdm_status *st) {
    tdm_sampler *s;
    TDM_TRY(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, cfg, K, 1.0, st));
    float *buf = malloc(sizeof(float) * 4 * (size_t)n);
    if (!buf) {
        tdm_sampler_free(s);
        return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    float *xs = buf, *xin = buf + n, *eps = buf + 2 * n, *eps_u = buf + 3 * n; /* [n] each */
    memcpy(xs, x_T, sizeof(float) * (size_t)n);
    replay r = {x};
    tdm_noise_source src = {replay_fill, &r};
    tdm_code rc = TDM_OK;
    char name[64];
    for (int i = 0; !rc && i < K; i++) {
        if (i > 0) {
            snprintf(name, sizeof name, "k%d.x.%d", K, i);
            rc = compare(x, name, xs, n, st);
        }
        const float t = tdm_sampler_timestep(s, i);
        tdm_sampler_scale_model_input(s, i, xs, xin, n);
        /* the analytic model, both CFG passes, then eps_u + w (eps_c - eps_u) (generate.c's order) */
        const float sn = 0.1f * sinf(t / 100.0f);
        for (int64_t j = 0; j < n; j++) {
            eps_u[j] = 0.2f * xin[j] + sn;
            eps[j] = 0.3f * xin[j] + sn;
            eps[j] = eps_u[j] + w * (eps[j] - eps_u[j]);
        }
        snprintf(name, sizeof name, "k%d.eps.%d", K, i);
        if (!rc) rc = compare(x, name, eps, n, st);
        if (!rc) rc = tdm_sampler_step(s, i, eps, xs, n, &src, st);
        if (!rc) {
            for (int j = 0; j < i; j++) { /* draws replayed so far */
                snprintf(name, sizeof name, "noise.%d", j);
                mark(x, name);
            }
            snprintf(name, sizeof name, "k%d.x0.%d", K, i);
            const float *d = tdm_sampler_denoised(s);
            rc = d ? compare(x, name, d, n, st) : tdm_fail(st, TDM_ERR_INTERNAL, "consistency: no denoised output");
        }
    }
    snprintf(name, sizeof name, "k%d.out", K);
    if (!rc) rc = compare(x, name, xs, n, st);
    free(buf);
    tdm_sampler_free(s);
    return rc;
}

tdm_code tdm_check_sampler_consistency(tdm_check *c, tdm_status *st) {
    if (!c->io.map) return tdm_fail(st, TDM_ERR_MISSING, "%s: fixture has no io.safetensors", c->dir);
    char what[4200];
    snprintf(what, sizeof what, "%s/case.json", c->dir);
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(c->case_json, "config");
    if (!cJSON_IsObject(conf)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: 'config' must be a scheduler config", what);
    tdm_scheduler_config cfg;
    TDM_TRY(tdm_scheduler_config_from_json(conf, what, &cfg, st));
    long grid, seed_l, traj[16];
    double w;
    int n_traj = 0;
    TDM_TRY(tdm_json_int(c->case_json, "grid_steps", what, 1, 50, 1, 1000, &grid, st));
    cfg.original_inference_steps = (int)grid;
    TDM_TRY(tdm_json_int(c->case_json, "seed", what, 0, 0, 0, 0x7fffffffffffffffL, &seed_l, st));
    TDM_TRY(tdm_json_num(c->case_json, "guidance", what, 0, 0, 0, 100, &w, st));
    TDM_TRY(tdm_json_int_array(c->case_json, "trajectory_steps", what, 0, 1, MAX_STEPS, traj, 16, &n_traj, st));

    cons_ctx x = {c, calloc((size_t)c->io.n_entries + 1, 1)};
    if (!x.used) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    float *x_T = NULL;
    tdm_tensor tt;
    tdm_code rc = check_timesteps(&x, &cfg, st);
    if (!rc) rc = tdm_check_input(c, "x_T", &x_T, &tt, st);
    const uint64_t seed = (uint64_t)seed_l;
    /* the documented streams: initial latent 0, sampler draw j: 1 + j */
    if (!rc) rc = check_stream(&x, "x_T", seed, 0, st);
    for (int j = 0; !rc && j < MAX_STEPS; j++) {
        char name[64];
        snprintf(name, sizeof name, "noise.%d", j);
        if (!tdm_st_find(&c->io, name)) break;
        rc = check_stream(&x, name, seed, 1 + (uint64_t)j, st);
    }
    for (int i = 0; !rc && i < n_traj; i++) {
        tdm_check_line(c, "-- %ld steps, guidance %g", traj[i], w);
        rc = run_trajectory(&x, &cfg, (int)traj[i], (float)w, x_T, tdm_tensor_numel(&tt), st);
    }
    if (!rc) {
        int unchecked = 0;
        for (int i = 0; i < c->io.n_entries; i++)
            if (!x.used[i]) {
                unchecked++;
                tdm_check_exact(c, c->io.entries[i].name, 0, "stored tensor was not checked");
            }
        tdm_check_line(c, "consistency sampler fixture: %d tensors, %d unchecked", c->io.n_entries, unchecked);
    }
    free(x_T);
    free(x.used);
    return rc;
}
