/* Samplers: the seven diffusers scheduler fixtures through `tandem check` (0 failures expected), plus
 * unit checks: noise determinism, exact x0 recovery (epsilon and v prediction), img2img strength,
 * multistep restart, and clear errors for invalid configurations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/rng.h"
#include "sampling/sampler.h"
#include "tandem.h"
#include "test_util.h"

static const char *const fixtures[] = {"schedulers-ddim",      "schedulers-ddpm",
                                       "schedulers-euler",     "schedulers-euler-ancestral",
                                       "schedulers-dpmsolver-multistep", "schedulers-unipc",
                                       "schedulers-lcm"};

static void print_line(void *user, const char *line) {
    (void)user;
    printf("  %s\n", line);
}

/* case.json files written by Python's json module may hold -Infinity (DPM-Solver lambda_min_clipped).
 * When the JSON loader refuses it, run a copy whose case.json spells it -1e999 (parsed as -inf). */
static int run_sanitized(const char *dir, int *n_pass, int *n_fail, tdm_status *st) {
    static char dst_dir[1024], cmd[8192];
    const char *base = strrchr(dir, '/');
    if (strlen(dir) > 900) return -1;
    snprintf(dst_dir, sizeof dst_dir, "%.400s/%.400s", tdm_test_tmpdir(), base ? base + 1 : dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%.900s' && sed 's/-Infinity/-1e999/g' '%.900s/case.json' > '%.900s/case.json' && "
             "ln -sf \"$(realpath '%.900s/io.safetensors')\" '%.900s/io.safetensors'",
             dst_dir, dir, dst_dir, dir, dst_dir);
    if (system(cmd) != 0) return -1;
    printf("NOTE: %s/case.json holds -Infinity, which the JSON loader refuses; checking a copy with -1e999\n", dir);
    return tdm_check_fixture(dst_dir, 1, print_line, NULL, n_pass, n_fail, st);
}

static void test_fixtures(void) {
    int ran = 0;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        const char *p = tdm_test_fixture(fixtures[f]);
        if (!p) {
            printf("fixture %s absent: skipped\n", fixtures[f]);
            continue;
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", p);
        int n_pass = 0, n_fail = 0;
        tdm_status st = {0};
        tdm_code rc = tdm_check_fixture(dir, 1, print_line, NULL, &n_pass, &n_fail, &st);
        if (rc == TDM_ERR_FORMAT && strstr(st.msg, "invalid JSON")) rc = run_sanitized(dir, &n_pass, &n_fail, &st);
        CHECK_MSG(rc == TDM_OK, "%s: %s", fixtures[f], st.msg);
        CHECK_MSG(n_fail == 0, "%s: %d failures", fixtures[f], n_fail);
        CHECK_MSG(n_pass > 100, "%s: only %d checks", fixtures[f], n_pass);
        printf("%s: %d passed, %d failed\n", fixtures[f], n_pass, n_fail);
        ran++;
    }
    if (!ran) printf("no scheduler fixtures found: fixture checks skipped\n");
}

/* Stable Diffusion 1.x scheduler settings. */
static tdm_scheduler_config sd_config(void) {
    tdm_scheduler_config c;
    tdm_scheduler_config_init(&c);
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    c.beta_schedule = TDM_BETAS_SCALED_LINEAR;
    c.steps_offset = 1;
    c.clip_sample = 0;
    c.set_alpha_to_one = 0;
    return c;
}

enum { NS = 64 };

/* Runs a full loop with the model eps = 0.3 x + 0.1 sin(t / 100) and a seeded noise source. */
static tdm_code run_loop(tdm_sampler_kind kind, const tdm_scheduler_config *cfg, int steps, uint64_t seed,
                         float *x, tdm_status *st) {
    tdm_sampler *s;
    TDM_TRY(tdm_sampler_create(&s, kind, cfg, steps, 1.0, st));
    float xin[NS], eps[NS];
    tdm_randn(x, NS, 7, 0, 0);
    for (int j = 0; j < NS; j++) x[j] *= tdm_sampler_init_noise_sigma(s);
    tdm_seeded_noise sn = {seed, 1};
    tdm_noise_source src = tdm_noise_source_seeded(&sn);
    tdm_code rc = TDM_OK;
    for (int i = 0; !rc && i < tdm_sampler_n_steps(s); i++) {
        float t = tdm_sampler_timestep(s, i);
        tdm_sampler_scale_model_input(s, i, x, xin, NS);
        for (int j = 0; j < NS; j++) eps[j] = 0.3f * xin[j] + 0.1f * sinf(t / 100);
        rc = tdm_sampler_step(s, i, eps, x, NS, &src, st);
    }
    if (!rc && (kind == TDM_SAMPLER_LCM || kind == TDM_SAMPLER_CONSISTENCY))
        memcpy(x, tdm_sampler_denoised(s), sizeof(float) * NS);
    tdm_sampler_free(s);
    return rc;
}

static void test_noise_determinism(void) {
    tdm_scheduler_config cfg = sd_config();
    tdm_status st;
    const tdm_sampler_kind kinds[] = {TDM_SAMPLER_EULER_ANCESTRAL, TDM_SAMPLER_DDPM, TDM_SAMPLER_LCM,
                                      TDM_SAMPLER_CONSISTENCY};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        float a[NS], b[NS], c[NS];
        CHECK(run_loop(kinds[k], &cfg, 8, 42, a, &st) == TDM_OK);
        CHECK(run_loop(kinds[k], &cfg, 8, 42, b, &st) == TDM_OK);
        CHECK(run_loop(kinds[k], &cfg, 8, 43, c, &st) == TDM_OK);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s: same seed, different result", tdm_sampler_kind_name(kinds[k]));
        CHECK_MSG(tdm_test_max_abs(a, c, NS) > 1e-3, "%s: seed has no effect", tdm_sampler_kind_name(kinds[k]));
    }
    /* an ancestral sampler without a noise source is refused */
    tdm_sampler *s;
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_EULER_ANCESTRAL, &cfg, 4, 1.0, &st) == TDM_OK);
    float x[NS] = {0}, m[NS] = {0};
    CHECK(tdm_sampler_step(s, 0, m, x, NS, NULL, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "noise") != NULL);
    tdm_sampler_free(s);
}

/* With the exact model output, a one-step run lands on x0 (epsilon and v prediction). */
static void test_exact_x0(void) {
    const tdm_sampler_kind kinds[] = {TDM_SAMPLER_DDIM,     TDM_SAMPLER_DDPM,          TDM_SAMPLER_EULER,
                                      TDM_SAMPLER_EULER_ANCESTRAL, TDM_SAMPLER_DPMPP_2M, TDM_SAMPLER_LCM,
                                      TDM_SAMPLER_CONSISTENCY};
    float x0[NS], eps[NS], x[NS], xin[NS], m[NS];
    tdm_randn(x0, NS, 1, 0, 0);
    tdm_randn(eps, NS, 1, 1, 0);
    for (int pt = 0; pt < 2; pt++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            tdm_scheduler_config cfg = sd_config();
            cfg.set_alpha_to_one = 1;
            cfg.prediction_type = pt ? TDM_PRED_V : TDM_PRED_EPSILON;
            tdm_status st;
            tdm_sampler *s;
            if (tdm_sampler_create(&s, kinds[k], &cfg, 1, 1.0, &st) != TDM_OK) {
                CHECK_MSG(0, "%s", st.msg);
                continue;
            }
            tdm_sampler_add_noise(s, x0, eps, x, NS); /* x_t of step 0 in the sampler's parameterisation */
            float t = tdm_sampler_timestep(s, 0);
            double a = tdm_sampler_alphas_cumprod(s)[(int)t];
            for (int j = 0; j < NS; j++)
                m[j] = pt ? (float)(sqrt(a) * eps[j] - sqrt(1 - a) * x0[j]) : eps[j];
            tdm_sampler_scale_model_input(s, 0, x, xin, NS);
            tdm_seeded_noise sn = {5, 0};
            tdm_noise_source src = tdm_noise_source_seeded(&sn);
            CHECK(tdm_sampler_step(s, 0, m, x, NS, &src, &st) == TDM_OK);
            const float *res = kinds[k] == TDM_SAMPLER_LCM ? tdm_sampler_denoised(s) : x;
            if (kinds[k] == TDM_SAMPLER_CONSISTENCY) CHECK(memcmp(x, tdm_sampler_denoised(s), sizeof x) == 0);
            double err = tdm_test_max_abs(res, x0, NS);
            CHECK_MSG(err < 2e-3, "%s %s: |x - x0| = %g", tdm_sampler_kind_name(kinds[k]), pt ? "v" : "eps", err);
            tdm_sampler_free(s);
        }
}

static void test_img2img(void) {
    tdm_scheduler_config cfg = sd_config();
    tdm_status st;
    tdm_sampler *full, *part;
    CHECK(tdm_sampler_create(&full, TDM_SAMPLER_DDIM, &cfg, 10, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_DDIM, &cfg, 10, 0.55, &st) == TDM_OK);
    CHECK(tdm_sampler_n_steps(full) == 10);
    CHECK(tdm_sampler_n_steps(part) == 5); /* int(10 * 0.55) = 5 */
    for (int i = 0; i < 5; i++) CHECK(tdm_sampler_timestep(part, i) == tdm_sampler_timestep(full, i + 5));
    CHECK(isnan(tdm_sampler_timestep(part, 5)));
    tdm_sampler_free(full);
    tdm_sampler_free(part);
    /* strength too small to keep a step, or out of range */
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_EULER, &cfg, 4, 0.2, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "no denoising step") != NULL);
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_EULER, &cfg, 4, 0.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_EULER, &cfg, 4, 1.5, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "strength") != NULL);
    /* LCM img2img refuses as diffusers, with its message */
    cfg.timestep_spacing = TDM_SPACING_DEFAULT;
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_LCM, &cfg, 18, 0.3, &st) == TDM_ERR_INVALID_ARG);
    CHECK_MSG(strcmp(st.msg, "The combination of `original_steps x strength`: 50 x 0.3 is smaller than "
                             "`num_inference_steps`: 18. Make sure to either reduce `num_inference_steps` to a "
                             "value smaller than 15 or increase `strength` to a value higher than 0.36.") == 0,
              "%s", st.msg);
    CHECK(tdm_sampler_create(&part, TDM_SAMPLER_LCM, &cfg, 4, 0.5, &st) == TDM_OK);
    CHECK(tdm_sampler_n_steps(part) == 4 && tdm_sampler_timestep(part, 0) == 499);
    tdm_sampler_free(part);
}

/* A multistep sampler restarted at step 0 gives the same result; steps out of order are refused. */
static void test_multistep_restart(void) {
    tdm_scheduler_config cfg = sd_config();
    const tdm_sampler_kind kinds[] = {TDM_SAMPLER_DPMPP_2M, TDM_SAMPLER_UNIPC};
    for (int k = 0; k < 2; k++) {
        tdm_status st;
        tdm_sampler *s;
        CHECK(tdm_sampler_create(&s, kinds[k], &cfg, 6, 1.0, &st) == TDM_OK);
        float r[2][NS], m[NS];
        for (int run = 0; run < 2; run++) {
            tdm_randn(r[run], NS, 3, 0, 0);
            for (int i = 0; i < tdm_sampler_n_steps(s); i++) {
                for (int j = 0; j < NS; j++) m[j] = 0.3f * r[run][j];
                CHECK(tdm_sampler_step(s, i, m, r[run], NS, NULL, &st) == TDM_OK);
            }
        }
        CHECK(memcmp(r[0], r[1], sizeof r[0]) == 0);
        CHECK(tdm_sampler_step(s, 3, m, r[0], NS, NULL, &st) == TDM_ERR_INVALID_ARG);
        CHECK(strstr(st.msg, "out of order") != NULL);
        tdm_sampler_free(s);
    }
}

/* The multistep consistency sampler (CD-SD1.5 / the shapes student): timesteps on the DDIM-50 grid,
 * the boundary condition, re-noising only between steps, the result = the last x0. The trajectory
 * against tools/shapes/diffusion.py is the shapes-consistency-sampler fixture (test_shapes_fixtures). */
static void test_consistency(void) {
    tdm_scheduler_config cfg = sd_config();
    tdm_status st;
    tdm_sampler *s;
    /* paper notes 2.2 (CD-SD1.5, 5 steps) and docs/TRAINING.md (the shapes student's k-step rule) */
    static const struct {
        int k;
        float t[5];
    } grids[] = {{5, {981, 781, 581, 381, 181}}, {4, {981, 741, 481, 241}}, {2, {981, 481}}, {1, {981}}};
    for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) {
        CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, grids[g].k, 1.0, &st) == TDM_OK);
        CHECK(tdm_sampler_n_steps(s) == grids[g].k && tdm_sampler_init_noise_sigma(s) == 1.0f);
        for (int i = 0; i < grids[g].k; i++)
            CHECK_MSG(tdm_sampler_timestep(s, i) == grids[g].t[i], "k %d step %d: %g", grids[g].k, i,
                      (double)tdm_sampler_timestep(s, i));
        tdm_sampler_free(s);
    }
    /* defaults of a config that names nothing: SD's schedule and grid, as for LCM */
    tdm_scheduler_config bare;
    tdm_scheduler_config_init(&bare);
    bare.steps_offset = 1;
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &bare, 5, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_timestep(s, 1) == 781 && fabsf(tdm_sampler_betas(s)[999] - 0.012f) < 1e-7f);
    tdm_sampler_free(s);
    /* every grid entry with 50 steps; the last, t = 1, is the boundary: x0 = x whatever the model says */
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 50, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_timestep(s, 0) == 981 && tdm_sampler_timestep(s, 48) == 21 && tdm_sampler_timestep(s, 49) == 1);
    float x[NS], m[NS], before[NS];
    tdm_randn(x, NS, 9, 0, 0);
    tdm_seeded_noise sn = {11, 1};
    tdm_noise_source src = tdm_noise_source_seeded(&sn);
    for (int i = 0; i < 50; i++) {
        for (int j = 0; j < NS; j++) m[j] = 0.3f * x[j];
        memcpy(before, x, sizeof x);
        CHECK(tdm_sampler_step(s, i, m, x, NS, &src, &st) == TDM_OK);
    }
    CHECK(memcmp(x, before, sizeof x) == 0 && memcmp(tdm_sampler_denoised(s), before, sizeof x) == 0);
    tdm_sampler_free(s);
    /* no noise is drawn on the last step; a missing source is refused before it */
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 2, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_step(s, 0, m, x, NS, NULL, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "noise"));
    tdm_sampler_free(s);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 1, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_step(s, 0, m, x, NS, NULL, &st) == TDM_OK);
    tdm_sampler_free(s);
    /* more steps than the grid: refused naming the grid */
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 51, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "50-step DDIM grid") != NULL);
    cfg.original_inference_steps = 100; /* a finer distillation grid */
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 4, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_timestep(s, 0) == 991 && tdm_sampler_timestep(s, 1) == 741);
    tdm_sampler_free(s);
    /* img2img: get_timesteps keeps the last int(k * strength) steps */
    cfg.original_inference_steps = 50;
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_CONSISTENCY, &cfg, 4, 0.5, &st) == TDM_OK);
    CHECK(tdm_sampler_n_steps(s) == 2 && tdm_sampler_timestep(s, 0) == 481);
    tdm_sampler_free(s);
    tdm_sampler_kind kind;
    CHECK(tdm_sampler_kind_parse("consistency", &kind, NULL, &st) == TDM_OK && kind == TDM_SAMPLER_CONSISTENCY);
    CHECK(strcmp(tdm_sampler_kind_name(TDM_SAMPLER_CONSISTENCY), "consistency") == 0);
}

static tdm_code config_from_text(const char *text, tdm_scheduler_config *cfg, tdm_status *st) {
    cJSON *j = cJSON_Parse(text);
    if (!j) return tdm_fail(st, TDM_ERR_FORMAT, "test JSON does not parse");
    tdm_code rc = tdm_scheduler_config_from_json(j, "scheduler_config.json", cfg, st);
    cJSON_Delete(j);
    return rc;
}

static void test_invalid(void) {
    tdm_scheduler_config cfg = sd_config();
    tdm_status st;
    tdm_sampler *s = NULL;
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_DDIM, &cfg, -3, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "at least 1") != NULL && s == NULL);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_EULER, &cfg, 0, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_DDIM, &cfg, 1001, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "cannot be larger than") != NULL);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_LCM, &cfg, 60, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "original_steps") != NULL);
    /* leading spacing with steps_offset reaching past the last training step */
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_DDIM, &cfg, 1000, 1.0, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "outside") != NULL);
    tdm_timestep_spacing sp;
    CHECK(tdm_spacing_parse("karras", &sp, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "karras") != NULL);

    tdm_sampler_kind kind;
    int karras = 0;
    CHECK(tdm_sampler_kind_parse("dpmpp_2m_karras", &kind, &karras, &st) == TDM_OK);
    CHECK(kind == TDM_SAMPLER_DPMPP_2M && karras == 1);
    CHECK(tdm_sampler_kind_parse("heun", &kind, &karras, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "heun") != NULL);

    /* scheduler_config.json: SD 1.5's file loads; bad types / values name the field */
    const char *sd15 = "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
                       " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
                       " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1,"
                       " \"trained_betas\": null, \"clip_sample\": false}";
    CHECK(config_from_text(sd15, &cfg, &st) == TDM_OK);
    CHECK(strcmp(cfg.class_name, "PNDMScheduler") == 0 && cfg.steps_offset == 1);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_EULER, &cfg, 4, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_timestep(s, 0) == 999 && tdm_sampler_timestep(s, 3) == 0); /* Euler default: linspace */
    tdm_sampler_free(s);
    CHECK(tdm_sampler_create(&s, TDM_SAMPLER_DDIM, &cfg, 4, 1.0, &st) == TDM_OK);
    CHECK(tdm_sampler_timestep(s, 0) == 751); /* DDIM default: leading + steps_offset */
    tdm_sampler_free(s);

    static const struct {
        const char *json, *needle;
        tdm_code code;
    } bad[] = {
        {"{\"num_train_timesteps\": \"1000\"}", "num_train_timesteps", TDM_ERR_FORMAT},
        {"{\"num_train_timesteps\": -5}", "num_train_timesteps", TDM_ERR_FORMAT},
        {"{\"beta_start\": \"0.1\"}", "beta_start", TDM_ERR_FORMAT},
        {"{\"clip_sample\": 1}", "clip_sample", TDM_ERR_FORMAT},
        {"{\"timestep_spacing\": \"sideways\"}", "timestep_spacing", TDM_ERR_FORMAT},
        {"{\"timestep_spacing\": 3}", "timestep_spacing", TDM_ERR_FORMAT},
        {"{\"prediction_type\": \"flow\"}", "prediction_type", TDM_ERR_FORMAT},
        {"{\"beta_schedule\": \"cosine\"}", "beta_schedule", TDM_ERR_FORMAT},
        {"{\"steps_offset\": 2000}", "steps_offset", TDM_ERR_FORMAT},
        {"{\"solver_order\": 7}", "solver_order", TDM_ERR_FORMAT},
        {"{\"trained_betas\": [0.1, 0.2]}", "trained_betas", TDM_ERR_UNSUPPORTED},
        {"{\"thresholding\": true}", "thresholding", TDM_ERR_UNSUPPORTED},
        {"{\"algorithm_type\": \"sde-dpmsolver++\"}", "algorithm_type", TDM_ERR_UNSUPPORTED},
        {"{\"rescale_betas_zero_snr\": true}", "rescale_betas_zero_snr", TDM_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tdm_code rc = config_from_text(bad[i].json, &cfg, &st);
        CHECK_MSG(rc == bad[i].code && strstr(st.msg, bad[i].needle), "%s -> %d %s", bad[i].json, (int)rc, st.msg);
    }
    /* loading from a file; a missing file names it */
    char path[512];
    snprintf(path, sizeof path, "%s/scheduler_config.json", tdm_test_tmpdir());
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\", \"beta_schedule\": "
              "\"squaredcos_cap_v2\"}",
              f);
        fclose(f);
        CHECK(tdm_scheduler_config_load(path, &cfg, &st) == TDM_OK);
        CHECK(cfg.prediction_type == TDM_PRED_V && cfg.timestep_spacing == TDM_SPACING_TRAILING);
        CHECK(tdm_sampler_create(&s, TDM_SAMPLER_UNIPC, &cfg, 10, 1.0, &st) == TDM_OK);
        tdm_sampler_free(s);
    }
    CHECK(tdm_scheduler_config_load("/nonexistent/scheduler_config.json", &cfg, &st) != TDM_OK);
    CHECK(strstr(st.msg, "/nonexistent/scheduler_config.json") != NULL);
}

static void test_schedule_tables(void) {
    /* SD's scaled_linear table: first/last betas and the well-known alphas_cumprod[999] */
    tdm_scheduler_config cfg = sd_config();
    tdm_status st;
    float betas[1000], ac[1000];
    CHECK(tdm_schedule_betas(&cfg, betas, &st) == TDM_OK);
    tdm_schedule_alphas_cumprod(betas, 1000, ac);
    CHECK(fabs(betas[0] - 0.00085) < 1e-9 && fabs(betas[999] - 0.012) < 1e-8);
    CHECK(fabs(ac[999] - 0.0046601) < 1e-6); /* 1 / (1 + 14.6146^2) */
    char buf[40];
    tdm_py_float_repr(0.36, buf, sizeof buf);
    CHECK(strcmp(buf, "0.36") == 0);
    tdm_py_float_repr(1.0, buf, sizeof buf);
    CHECK(strcmp(buf, "1.0") == 0);
    tdm_py_float_repr(1e-5, buf, sizeof buf);
    CHECK(strcmp(buf, "1e-05") == 0);
    tdm_py_float_repr(250.5, buf, sizeof buf);
    CHECK(strcmp(buf, "250.5") == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_schedule_tables();
    test_noise_determinism();
    test_exact_x0();
    test_img2img();
    test_multistep_restart();
    test_consistency();
    test_invalid();
    test_fixtures();
    return tdm_test_result();
}
