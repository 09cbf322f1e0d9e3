/* Adaptive student-teacher pipeline on tiny models assembled from the fixtures (student: the LCM tiny
 * UNet, teacher: the SD1.5 tiny UNet; both use vae-sd-tiny): the stage runner reproduces tdm_generate
 * bit for bit, keep / refine / regenerate follow the threshold, determinism (1 vs 2 threads), teacher
 * step counts under both refinement conventions, latent vs pixel hand-off, numpy percentiles,
 * calibration files (round trip, resume, provenance warnings), metadata, bad input. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/calibrate.h"
#include "tandem.h"
#include "cli_util.h"
#include "eval_test_util.h"
#include "test_util.h"

static tdm_status g_st;



/* ---- percentiles (values checked against numpy.percentile) ---- */

static void test_percentile(void) {
    const double a[] = {1, 2, 3, 4};
    CHECK(tdm_percentile_sorted(a, 4, 50) == 2.5);
    CHECK(tdm_percentile_sorted(a, 4, 0) == 1 && tdm_percentile_sorted(a, 4, 100) == 4);
    double b[10];
    for (int i = 0; i < 10; i++) b[i] = 10.0 * (i + 1);
    CHECK(fabs(tdm_percentile_sorted(b, 10, 10) - 19.0) < 1e-12);  /* np.percentile(10..100, 10) = 19.0 */
    CHECK(fabs(tdm_percentile_sorted(b, 10, 90) - 91.0) < 1e-12);  /* = 91.0 */
    const double c[] = {1, 1, 2, 3, 3, 4, 5, 5, 6, 9};             /* sorted [3,1,4,1,5,9,2,6,5,3] */
    CHECK(fabs(tdm_percentile_sorted(c, 10, 33) - 2.97) < 1e-12);  /* = 2.97 */
    const double one[] = {0.25};
    CHECK(tdm_percentile_sorted(one, 1, 37) == 0.25);
    tdm_status st = {0};
    CHECK(tdm_calibration_check_k(0, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "(0, 100)"));
    CHECK(tdm_calibration_check_k(100, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_calibration_check_k(-3, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_calibration_check_k(NAN, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_calibration_check_k(0.5, &st) == TDM_OK && tdm_calibration_check_k(99.5, &st) == TDM_OK);

    /* SHA-256 test vectors (FIPS 180-4) */
    char h[65];
    tdm_sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    tdm_sha256_hex("", 0, h);
    CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    const char *m56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    tdm_sha256_hex(m56, strlen(m56), h);
    CHECK(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
}

/* ---- calibration files ---- */

static void test_calibration_files(void) {
    char path[PATH_MAX];
    tdm_status st = {0};
    tdm_calibration *c = NULL;
    snprintf(path, sizeof path, "%s/cal-a.json", tdm_test_tmpdir());
    const char *text = "{\"format\": \"tandem-calibration\", \"version\": 1, \"student\": {\"model\": \"m\", "
                       "\"sampler\": \"lcm\", \"steps\": 4, \"guidance\": 8.5, \"width\": 64, \"height\": 64}, "
                       "\"oracle\": {\"name\": \"checker\"}, \"n\": 4, \"scores\": [4, 1, 3, 2]}";
    tdm_test_write_file(path, text, strlen(text));
    CHECK(tdm_calibration_load(path, &c, &st) == TDM_OK);
    double tau = 0, share = 0;
    CHECK(c && tdm_calibration_count(c) == 4);
    CHECK(tdm_calibration_tau(c, 50, &tau, &st) == TDM_OK && tau == 2.5);
    CHECK(tdm_calibration_tau(c, 100, &tau, &st) == TDM_ERR_INVALID_ARG);
    /* teacher share: exactly round(q n) scores below tau */
    CHECK(tdm_calibration_tau_for_share(c, 0.5, &tau, &share, &st) == TDM_OK && tau == 2.5 && share == 0.5);
    CHECK(tdm_calibration_tau_for_share(c, 0.3, &tau, &share, &st) == TDM_OK && tau == 1.5 && share == 0.25);
    CHECK(tdm_calibration_tau_for_share(c, 0.0, &tau, &share, &st) == TDM_OK && share == 0.0);
    CHECK(tdm_calibration_tau_for_share(c, 1.0, &tau, &share, &st) == TDM_OK && share == 1.0);
    CHECK(tdm_calibration_tau_for_share(c, 1.5, &tau, &share, &st) == TDM_ERR_INVALID_ARG);
    char warn[1024];
    tdm_calibration_compare(c, "m", "lcm", 4, 8.5f, 64, 64, 64, 64, "checker", 0, warn, sizeof warn);
    CHECK_MSG(warn[0] == '\0', "unexpected warning: %s", warn);
    tdm_calibration_compare(c, "m", "lcm", 4, 0.0f, 64, 64, 64, 64, "checker", 0, warn, sizeof warn);
    CHECK(strstr(warn, "guidance 8.5") && strstr(warn, "uses 0"));
    tdm_calibration_compare(c, "other", "euler", 2, 8.5f, 128, 64, 128, 64, "brightness", 0, warn, sizeof warn);
    CHECK(strstr(warn, "student model") && strstr(warn, "sampler") && strstr(warn, "steps") && strstr(warn, "64x64") &&
          strstr(warn, "oracle"));
    /* calibrated on 64x64 images, the run's oracle sees them upscaled to the teacher's 128x128 */
    tdm_calibration_compare(c, "m", "lcm", 4, 8.5f, 64, 64, 128, 128, "checker", 0, warn, sizeof warn);
    CHECK_MSG(strstr(warn, "scored the student's images at 64x64") && strstr(warn, "128x128"), "%s", warn);
    /* a run with a ControlNet: calibrations never have one */
    tdm_calibration_compare(c, "m", "lcm", 4, 8.5f, 64, 64, 64, 64, "checker", 2, warn, sizeof warn);
    CHECK_MSG(strstr(warn, "without a ControlNet") && strstr(warn, "on 2"), "%s", warn);
    tdm_calibration_free(c);

    /* the reference code's table: k must be one of its keys */
    snprintf(path, sizeof path, "%s/cal-ref.json", tdm_test_tmpdir());
    text = "{\"10\": -0.6, \"50\": 0.6, \"90\": 1.6}";
    tdm_test_write_file(path, text, strlen(text));
    CHECK(tdm_calibration_load(path, &c, &st) == TDM_OK);
    CHECK(c && tdm_calibration_tau(c, 50, &tau, &st) == TDM_OK && tau == 0.6);
    CHECK(c && tdm_calibration_tau(c, 40, &tau, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "10, 50, 90"));
    tdm_calibration_free(c);

    /* missing and malformed files */
    CHECK(tdm_calibration_load("no/such/calibration.json", &c, &st) == TDM_ERR_IO && strstr(st.msg, "no/such"));
    snprintf(path, sizeof path, "%s/cal-bad.json", tdm_test_tmpdir());
    text = "{\"format\": \"tandem-calibration\", \"scores\": [1, \"x\"]}";
    tdm_test_write_file(path, text, strlen(text));
    CHECK(tdm_calibration_load(path, &c, &st) == TDM_ERR_FORMAT && strstr(st.msg, "scores"));
}

/* ---- prompts files ---- */

static void test_prompts(void) {
    char path[PATH_MAX];
    tdm_status st = {0};
    tdm_prompts pr;
    snprintf(path, sizeof path, "%s/p-ok.txt", tdm_test_tmpdir());
    const char *ok = "\xEF\xBB\xBF" "a red circle on the left\r\nune b\xC3\xA2" "che verte\na blue square at the top";
    tdm_test_write_file(path, ok, strlen(ok));
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_OK);
    CHECK(pr.n == 3 && strcmp(pr.line[0], "a red circle on the left") == 0 && strcmp(pr.line[2], "a blue square at the top") == 0);
    CHECK(strlen(pr.sha256) == 64);
    tdm_prompts_free(&pr);
    snprintf(path, sizeof path, "%s/p-utf8.txt", tdm_test_tmpdir());
    const char *bad = "first\nsecond \xC3\x28 bad\nthird\n";
    tdm_test_write_file(path, bad, strlen(bad));
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":2: invalid UTF-8"));
    const char *overlong = "x\ny\n\xC0\xAF\n";
    tdm_test_write_file(path, overlong, strlen(overlong));
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":3: invalid UTF-8"));
    snprintf(path, sizeof path, "%s/p-empty.txt", tdm_test_tmpdir());
    const char *empty = "first\n\nthird\n";
    tdm_test_write_file(path, empty, strlen(empty));
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":2: empty line"));
    const char *blank_end = "first\n  \n";
    tdm_test_write_file(path, blank_end, strlen(blank_end));
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":2: empty line"));
    tdm_test_write_file(path, "", 0);
    CHECK(tdm_prompts_load(path, &pr, &st) == TDM_ERR_FORMAT && strstr(st.msg, "no prompts"));
    CHECK(tdm_prompts_load("no/such/prompts.txt", &pr, &st) == TDM_ERR_IO);
}

/* ---- oracles ---- */

static tdm_code fixed_oracle(void *user, const char *prompt, const tdm_image *img, float *score, tdm_status *st) {
    (void)prompt;
    (void)img;
    (void)st;
    *score = *(const float *)user;
    return TDM_OK;
}

static void test_oracles(void) {
    tdm_status st = {0};
    tdm_oracle *o = NULL;
    CHECK(tdm_oracle_open("nonsense", NULL, NULL, &o, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "unknown oracle 'nonsense'"));
    CHECK(tdm_oracle_open("constant:abc", NULL, NULL, &o, &st) == TDM_ERR_INVALID_ARG);
    tdm_image img = {0};
    img.width = img.height = 64;
    img.channels = 3;
    img.pixels = calloc(64 * 64 * 3, 1);
    for (int i = 0; i < 64 * 64 * 3; i++) img.pixels[i] = 51; /* brightness 0.2 */
    float s = -1;
    CHECK(tdm_oracle_open("brightness", NULL, NULL, &o, &st) == TDM_OK);
    CHECK(tdm_oracle_score(o, "x", &img, &s, &st) == TDM_OK && fabsf(s - 0.2f) < 1e-6f);
    tdm_oracle_free(o);
    CHECK(tdm_oracle_open("constant:0.75", NULL, NULL, &o, &st) == TDM_OK);
    CHECK(tdm_oracle_score(o, "x", &img, &s, &st) == TDM_OK && s == 0.75f);
    CHECK(strcmp(tdm_oracle_get_name(o), "constant:0.75") == 0);
    tdm_oracle_free(o);
    /* checker: a gray image has no objects -> 0; a non-caption prompt is a clear error */
    for (int i = 0; i < 64 * 64 * 3; i++) img.pixels[i] = 128;
    CHECK(tdm_oracle_open("checker", NULL, NULL, &o, &st) == TDM_OK);
    CHECK(tdm_oracle_score(o, "a red circle on the left", &img, &s, &st) == TDM_OK && s >= 0 && s <= 1);
    CHECK(tdm_oracle_score(o, "an astronaut riding a horse", &img, &s, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "not a shapes-world caption"));
    tdm_oracle_free(o);
    /* model-backed oracles on the tiny fixtures: ImageReward scores (finite), or says what is missing */
    const char *ir = tdm_test_fixture("imagereward-tiny");
    if (ir) {
        char dir[PATH_MAX], png[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/model", ir);
        snprintf(png, sizeof png, "%s/image_0.png", ir);
        tdm_code rc = tdm_oracle_open("imagereward", dir, NULL, &o, &st);
        printf("imagereward-tiny oracle: %s\n", rc ? st.msg : "loaded");
        if (!rc) {
            tdm_image im = {0};
            CHECK(tdm_image_load(png, &im, &st) == TDM_OK);
            CHECK(tdm_oracle_score(o, "a photo of a cat", &im, &s, &st) == TDM_OK && isfinite(s));
            printf("imagereward-tiny score %g\n", (double)s);
            tdm_image_free(&im);
            tdm_oracle_free(o);
        } else {
            CHECK(strstr(st.msg, "imagereward") != NULL);
        }
    }
    const char *cv = tdm_test_fixture("clip-vision-tiny");
    if (cv) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/model", cv);
        tdm_code rc = tdm_oracle_open("clipscore", dir, NULL, &o, &st);
        printf("clip-vision-tiny clipscore oracle: %s\n", rc ? st.msg : "loaded");
        if (!rc) tdm_oracle_free(o);
        else CHECK(strstr(st.msg, "clipscore") != NULL);
    }
    CHECK(tdm_oracle_open("imagereward", NULL, NULL, &o, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "--oracle-model"));
    /* the model-backed names are known; a missing model is a clear error, never "unknown oracle" */
    int n = 0;
    const char *const *names = tdm_oracle_names(&n);
    CHECK(n == 6 && strcmp(names[0], "checker") == 0);
    for (int i = 1; i < n; i++) {
        tdm_code rc = tdm_oracle_open(names[i], "no/such/model", NULL, &o, &st);
        CHECK_MSG(rc == TDM_ERR_UNSUPPORTED || rc == TDM_ERR_IO || rc == TDM_ERR_MISSING || rc == TDM_ERR_INVALID_ARG,
                  "%s: %d %s", names[i], rc, st.msg);
        CHECK(rc != TDM_ERR_INVALID_ARG || !strstr(st.msg, "unknown oracle"));
        if (!rc) tdm_oracle_free(o);
    }
    tdm_image_free(&img);
}

/* ---- pipeline ---- */

typedef struct models {
    tdm_engine *e1, *e2;
    tdm_model *sd, *lcm;
} models;

static tdm_code run(tdm_engine *e, const tdm_model *s, const tdm_model *t, const tdm_adaptive_params *p,
                    tdm_adaptive_result *r) {
    tdm_code rc = tdm_adaptive_generate(e, s, t, p, r, &g_st);
    if (rc) fprintf(stderr, "adaptive: %s\n", g_st.msg);
    return rc;
}

static void base_params(tdm_adaptive_params *p, tdm_oracle *o) {
    tdm_adaptive_params_init(p);
    p->prompt = "a red circle on the left";
    p->seed = 11;
    p->width = p->height = 64;
    p->student.steps = 2;
    p->teacher.steps = 4;
    p->teacher.sampler = "ddim";
    p->teacher.guidance = 7.5f;
    p->oracle = o;
}

/* The stage runner (tdm_gen_execute) with the generate streams is tdm_generate, bit for bit (txt2img and
 * img2img). */
static void test_stage_matches_generate(models *m) {
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = "a red circle on the left";
    gp.seed = 5;
    gp.width = gp.height = 64;
    gp.steps = 3;
    tdm_image ref = {0};
    tdm_status st = {0};
    const tdm_model *ms[2] = {m->lcm, m->sd};
    for (int k = 0; k < 2; k++) {
        gp.sampler = k ? "euler_a" : NULL;
        CHECK(tdm_generate(m->e1, ms[k], &gp, &ref, NULL, &st) == TDM_OK);
        const tdm_sd_model *sm = tdm_model_sd(ms[k]);
        const tdm_exec *ex = tdm_engine_exec(m->e2);
        tdm_gen_request job;
        tdm_gen_request_init(&job, &gp);
        job.want_latent = 1;
        tdm_gen_result r;
        CHECK(tdm_gen_execute(sm, ex, &job, &r, &st) == TDM_OK);
        CHECK_MSG(tdm_test_same_image(&r.image, &ref), "stage runner differs from tdm_generate (model %d)", k);
        CHECK(r.latent && r.Cl == 4 && r.h == 8 && r.w == 8);

        /* conditioning encoded beforehand: the same image */
        tdm_arena arena;
        tdm_arena_init(&arena, (size_t)1 << 20);
        tdm_text_cond tc;
        CHECK(tdm_gen_encode_params(sm, ex, &arena, &gp, &tc, &st) == TDM_OK && (k == 0) == (tc.uncond == NULL));
        tdm_gen_request pre = job;
        pre.text = &tc;
        tdm_gen_result r3;
        CHECK(tdm_gen_execute(sm, ex, &pre, &r3, &st) == TDM_OK);
        CHECK_MSG(tdm_test_same_image(&r3.image, &ref), "pre-encoded conditioning differs (model %d)", k);
        tdm_gen_result_free(&r3);
        tdm_arena_free(&arena);

        /* img2img from pixels */
        tdm_image ref2 = {0};
        tdm_generate_params ip = gp;
        ip.init_image = &ref;
        ip.strength = 0.5f;
        ip.steps = 4;
        CHECK(tdm_generate(m->e1, ms[k], &ip, &ref2, NULL, &st) == TDM_OK);
        tdm_gen_request ij = job;
        ij.p = &ip;
        ij.start = TDM_GEN_START_PIXELS;
        ij.init = &ref;
        ij.grid_steps = 4;
        ij.strength = 0.5f;
        ij.rule = TDM_IMG2IMG_GET_TIMESTEPS;
        ij.want_latent = 0;
        tdm_gen_result r2;
        if (k == 1) { /* (the LCM img2img rule differs from get_timesteps; compared on the SD model) */
            CHECK(tdm_gen_execute(sm, ex, &ij, &r2, &st) == TDM_OK);
            CHECK_MSG(tdm_test_same_image(&r2.image, &ref2), "stage img2img differs from tdm_generate");
            CHECK(r2.stats.steps_run == 2);
            tdm_gen_result_free(&r2);
        }
        tdm_image_free(&ref2);
        tdm_gen_result_free(&r);
        tdm_image_free(&ref);
    }
}

/* ControlNet: the same control conditions the student and the teacher. */
static void test_controls(models *m) {
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny");
    if (!fx) {
        printf("controlnet-sd15-tiny absent: adaptive ControlNet skipped\n");
        return;
    }
    char cn_dir[PATH_MAX];
    snprintf(cn_dir, sizeof cn_dir, "%s/model", fx);
    tdm_status st = {0};
    tdm_controlnet *cn = NULL;
    CHECK_MSG(tdm_controlnet_load(cn_dir, &cn, &st) == TDM_OK, "%s", st.msg);
    tdm_image sq = {0}, edges = {0};
    CHECK(tdm_image_alloc(&sq, 64, 64, &st) == TDM_OK);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            for (int c = 0; c < 3; c++) sq.pixels[(y * 64 + x) * 3 + c] = (x >= 16 && x < 48 && y >= 20 && y < 44) ? 255 : 0;
    CHECK(tdm_canny(&sq, 100, 200, 0, &edges, &st) == TDM_OK);
    tdm_control c;
    tdm_control_init(&c);
    c.controlnet = cn;
    c.image = &edges;
    if (!cn || !edges.pixels) goto out;

    tdm_adaptive_params p;
    base_params(&p, NULL);
    p.oracle_name = "brightness";
    p.teacher.steps = 3;
    p.tau = INFINITY;
    p.keep_student_image = 1;
    p.controls = &c;
    p.n_controls = 1;
    tdm_adaptive_result r, plain, rg;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.controlnet_calls_student == 2 && r.controlnet_calls_teacher == 3 && r.decision == TDM_DECISION_REFINE);
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"controls\":[{\"scale\":1,\"start\":0,\"end\":1}]") &&
          strstr(r.metadata_json, "\"controlnet_calls\":5"));
    /* the student is tdm_generate with the control */
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = p.prompt;
    gp.seed = p.seed;
    gp.width = gp.height = 64;
    gp.steps = 2;
    gp.controls = &c;
    gp.n_controls = 1;
    tdm_image ref = {0};
    CHECK(tdm_generate(m->e2, m->lcm, &gp, &ref, NULL, &st) == TDM_OK);
    CHECK_MSG(tdm_test_same_image(&r.student_image, &ref), "adaptive student with ControlNet differs from tdm_generate");
    tdm_image_free(&ref);
    /* without the control the student and the refinement differ */
    p.controls = NULL;
    p.n_controls = 0;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &plain) == TDM_OK && plain.controlnet_calls_student == 0);
    CHECK(!tdm_test_same_image(&plain.student_image, &r.student_image) && !tdm_test_same_image(&plain.image, &r.image));
    CHECK(plain.metadata_json && !strstr(plain.metadata_json, "\"controls\""));
    /* regeneration with the control is tdm_generate with the teacher's settings and the control */
    p.controls = &c;
    p.n_controls = 1;
    p.strategy = TDM_ADAPTIVE_REGENERATE;
    CHECK(run(m->e2, m->lcm, m->sd, &p, &rg) == TDM_OK && rg.controlnet_calls_teacher == 3);
    gp.steps = 3;
    gp.sampler = "ddim";
    gp.guidance_scale = 7.5f;
    CHECK(tdm_generate(m->e1, m->sd, &gp, &ref, NULL, &st) == TDM_OK);
    CHECK_MSG(tdm_test_same_image(&rg.image, &ref), "regeneration with ControlNet differs from tdm_generate");
    tdm_image_free(&ref);
    tdm_adaptive_result_free(&rg);
    tdm_adaptive_result_free(&plain);
    tdm_adaptive_result_free(&r);
out:
    tdm_image_free(&sq);
    tdm_image_free(&edges);
    tdm_controlnet_free(cn);
}

/* tdm_generate's images with base_params' student (tiny LCM, 2 steps) and teacher (tiny SD, DDIM 4, w 7.5)
 * settings: what a kept and a regenerated adaptive run return. */
static void reference_images(const models *m, const tdm_adaptive_params *p, tdm_image *student, tdm_image *teacher) {
    tdm_status st = {0};
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = p->prompt;
    gp.seed = p->seed;
    gp.width = gp.height = 64;
    gp.steps = p->student.steps;
    CHECK(tdm_generate(m->e1, m->lcm, &gp, student, NULL, &st) == TDM_OK);
    gp.steps = p->teacher.steps;
    gp.sampler = p->teacher.sampler;
    gp.guidance_scale = p->teacher.guidance;
    CHECK(tdm_generate(m->e1, m->sd, &gp, teacher, NULL, &st) == TDM_OK);
}

static void test_decisions(models *m) {
    float score = 0.5f;
    tdm_oracle *o = NULL;
    tdm_status st = {0};
    CHECK(tdm_oracle_from_fn("fixed", fixed_oracle, &score, &o, &st) == TDM_OK);
    tdm_adaptive_params p;
    base_params(&p, o);
    p.keep_student_image = 1;

    /* plain student and teacher outputs, for comparison */
    tdm_image student = {0}, teacher = {0};
    reference_images(m, &p, &student, &teacher);

    /* keep: score 0.5 >= tau 0.4 */
    tdm_adaptive_result r;
    p.tau = 0.4;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_KEEP && r.oracle_score == 0.5f && r.tau == 0.4);
    CHECK(r.unet_evals_teacher == 0 && r.unet_evals_student == 2 && r.unet_calls_student == 2);
    CHECK_MSG(tdm_test_same_image(&r.image, &student), "kept image is not the student's");
    CHECK(tdm_test_same_image(&r.student_image, &student));
    tdm_adaptive_result_free(&r);
    /* tau equal to the score keeps (keep when score >= tau) */
    p.tau = 0.5;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK && r.decision == TDM_DECISION_KEEP);
    tdm_adaptive_result_free(&r);

    /* refine: score below tau; latent hand-off (same VAE weights), T = 4 teacher steps with CFG */
    p.tau = 0.6;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REFINE);
    CHECK(r.handoff_latent == 1 && strstr(r.handoff_reason, "identical VAE"));
    CHECK_MSG(r.refine_steps == 4 && r.unet_calls_teacher == 4 && r.unet_evals_teacher == 8, "steps %d calls %d",
              r.refine_steps, r.unet_calls_teacher);
    CHECK(r.refine_grid_steps == 11); /* int(4 / 0.4 + 1) */
    CHECK(tdm_test_same_image(&r.student_image, &student) && !tdm_test_same_image(&r.image, &student));
    /* metadata */
    CHECK(r.parameters && strstr(r.parameters, "Adaptive: refine") && strstr(r.parameters, "Oracle: fixed") &&
          strstr(r.parameters, "Refine strength: 0.4") && strstr(r.parameters, "Version: tandem"));
    cJSON *j = cJSON_Parse(r.metadata_json);
    CHECK(j != NULL);
    if (j) {
        CHECK(strcmp(cJSON_GetObjectItem(j, "decision")->valuestring, "refine") == 0);
        cJSON *orc = cJSON_GetObjectItem(j, "oracle"), *th = cJSON_GetObjectItem(j, "threshold");
        CHECK(orc && cJSON_GetObjectItem(orc, "score")->valuedouble == 0.5);
        CHECK(th && cJSON_GetObjectItem(th, "tau")->valuedouble == 0.6 && cJSON_IsNull(cJSON_GetObjectItem(th, "k")));
        cJSON *rf = cJSON_GetObjectItem(j, "refine");
        CHECK(rf && strcmp(cJSON_GetObjectItem(rf, "handoff")->valuestring, "latent") == 0);
        CHECK(cJSON_GetObjectItem(j, "unet_evals")->valueint == 10);
        CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "teacher"), "steps")->valueint == 4);
        cJSON_Delete(j);
    }
    /* saved PNG: both chunks; sidecar */
    char png[PATH_MAX], side[PATH_MAX];
    snprintf(png, sizeof png, "%s/adaptive.png", tdm_test_tmpdir());
    snprintf(side, sizeof side, "%s/adaptive.json", tdm_test_tmpdir());
    CHECK(tdm_adaptive_save(&r, png, side, &st) == TDM_OK);
    char *chunk = NULL, *params = NULL;
    CHECK(tdm_image_read_text(png, "tandem", &chunk, &st) == TDM_OK && chunk && strcmp(chunk, r.metadata_json) == 0);
    CHECK(tdm_image_read_parameters(png, &params, &st) == TDM_OK && params && strcmp(params, r.parameters) == 0);
    tdm_free(chunk);
    tdm_free(params);
    CHECK(access(side, F_OK) == 0);
    tdm_image keep_img = {0};
    tdm_image_load(png, &keep_img, &st);
    tdm_adaptive_result_free(&r);

    /* same seed -> same image; 2 threads -> same image */
    CHECK(run(m->e2, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK_MSG(tdm_test_same_image(&r.image, &keep_img), "refinement differs between 1 and 2 threads");
    tdm_adaptive_result_free(&r);

    /* through pixels: runs, records it, and differs from the latent hand-off */
    p.force_pixels = 1;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REFINE && r.handoff_latent == 0 && r.refine_steps == 4);
    CHECK(!tdm_test_same_image(&r.image, &keep_img));
    CHECK(strstr(r.metadata_json, "\"handoff\":\"pixels\"") != NULL);
    tdm_adaptive_result_free(&r);
    p.force_pixels = 0;

    /* regenerate: the teacher from the student's initial noise = plain teacher generation, same seed */
    p.strategy = TDM_ADAPTIVE_REGENERATE;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REGENERATE && r.unet_calls_teacher == 4);
    CHECK_MSG(tdm_test_same_image(&r.image, &teacher), "regeneration differs from the teacher's own generation");
    tdm_adaptive_result_free(&r);
    /* tau = -inf: never the teacher; +inf: always */
    p.tau = -INFINITY;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK && r.decision == TDM_DECISION_KEEP);
    tdm_adaptive_result_free(&r);
    p.tau = INFINITY;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK && r.decision == TDM_DECISION_REGENERATE);
    CHECK(strstr(r.metadata_json, "\"tau\":\"+inf\"") != NULL);
    tdm_adaptive_result_free(&r);

    tdm_image_free(&keep_img);
    tdm_image_free(&student);
    tdm_image_free(&teacher);
    tdm_oracle_free(o);
}

/* An oracle that answers scores[0], scores[1], ... in turn (a negative one fails); calls counted. */
typedef struct seq_oracle {
    float scores[4];
    int calls;
} seq_oracle;

static tdm_code seq_oracle_fn(void *user, const char *prompt, const tdm_image *img, float *score, tdm_status *st) {
    (void)prompt;
    (void)img;
    seq_oracle *q = user;
    const float v = q->scores[q->calls < 4 ? q->calls : 3];
    q->calls++;
    if (v < 0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "seq oracle: refused");
    *score = v;
    return TDM_OK;
}

/* keep_better: the oracle scores the teacher's image too; the student's is returned when it scores higher. */
static void test_keep_better(models *m) {
    seq_oracle q = {{0.5f, 0.3f, 0.0f, 0.0f}, 0};
    tdm_oracle *o = NULL;
    tdm_status st = {0};
    CHECK(tdm_oracle_from_fn("seq", seq_oracle_fn, &q, &o, &st) == TDM_OK);
    tdm_adaptive_params p;
    base_params(&p, o);
    p.keep_student_image = 1;
    p.keep_better = 1;
    p.strategy = TDM_ADAPTIVE_REGENERATE;
    tdm_image student = {0}, teacher = {0};
    reference_images(m, &p, &student, &teacher);

    /* routed (0.5 < 0.6), the teacher's image scores 0.3 < 0.5: the student's image, the teacher's cost */
    tdm_adaptive_result r;
    p.tau = 0.6;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(q.calls == 2 && r.decision == TDM_DECISION_REGENERATE && r.selected_student == 1);
    CHECK(r.oracle_score == 0.5f && r.teacher_oracle_score == 0.3f && r.unet_evals_teacher == 8);
    CHECK_MSG(tdm_test_same_image(&r.image, &student), "keep-better did not return the student's image");
    CHECK(tdm_test_same_image(&r.student_image, &student));
    CHECK(strstr(r.metadata_json, "\"teacher_score\":0.3") && strstr(r.metadata_json, "\"selected\":\"student\"") &&
          strstr(r.metadata_json, "\"keep_better\":true"));
    CHECK(strstr(r.parameters, "Teacher oracle score: 0.3, Selected: student") != NULL);
    tdm_adaptive_result_free(&r);

    /* the teacher's image scores higher (0.7), or the same (0.5: ties go to the teacher): the teacher's */
    const float teacher_scores[2] = {0.7f, 0.5f};
    for (int c = 0; c < 2; c++) {
        q = (seq_oracle){{0.5f, teacher_scores[c], 0.0f, 0.0f}, 0};
        CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
        CHECK(q.calls == 2 && r.selected_student == 0 && r.teacher_oracle_score == teacher_scores[c]);
        CHECK(tdm_test_same_image(&r.image, &teacher) && tdm_test_same_image(&r.student_image, &student));
        CHECK(strstr(r.metadata_json, "\"selected\":\"teacher\"") != NULL);
        tdm_adaptive_result_free(&r);
    }

    /* refinement: the same rule */
    p.strategy = TDM_ADAPTIVE_REFINE;
    q = (seq_oracle){{0.5f, 0.2f, 0.0f, 0.0f}, 0};
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REFINE && r.selected_student && tdm_test_same_image(&r.image, &student));
    CHECK(r.unet_evals_teacher == 8 && r.refine_steps == 4);
    tdm_adaptive_result_free(&r);

    /* kept: one oracle call, no teacher score */
    p.tau = 0.4;
    q = (seq_oracle){{0.5f, 0.9f, 0.0f, 0.0f}, 0};
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(q.calls == 1 && r.decision == TDM_DECISION_KEEP && isnan(r.teacher_oracle_score) && !r.selected_student);
    CHECK(strstr(r.metadata_json, "teacher_score") == NULL && strstr(r.metadata_json, "\"selected\":\"student\""));
    tdm_adaptive_result_free(&r);

    /* the oracle failing on the teacher's image is an error naming it */
    p.tau = 0.6;
    q = (seq_oracle){{0.5f, -1.0f, 0.0f, 0.0f}, 0};
    tdm_status est = {0};
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &est) == TDM_ERR_INVALID_ARG);
    CHECK_MSG(strstr(est.msg, "teacher's image") && strstr(est.msg, "refused"), "%s", est.msg);
    CHECK(r.image.pixels == NULL);

    /* off (default): the teacher's image whatever it scores, and one oracle call */
    p.keep_better = 0;
    q = (seq_oracle){{0.5f, 0.1f, 0.0f, 0.0f}, 0};
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(q.calls == 1 && !r.selected_student && !tdm_test_same_image(&r.image, &student));
    CHECK(strstr(r.metadata_json, "keep_better") == NULL && strstr(r.metadata_json, "selected") == NULL);
    tdm_adaptive_result_free(&r);

    tdm_image_free(&student);
    tdm_image_free(&teacher);
    tdm_oracle_free(o);
}

/* Teacher step counts under both conventions. */
static void test_refine_counts(models *m) {
    const tdm_sd_model *t = tdm_model_sd(m->sd);
    tdm_status st = {0};
    tdm_refine_plan rp;
    /* strength s, T steps: N = int(T / s + 1) and exactly T run (the paper notes' worked examples) */
    struct { int T; float s; int N; } cases[] = {{4, 0.4f, 11}, {12, 0.7f, 18}, {4, 0.3f, 14}, {1, 0.5f, 3},
                                                 {3, 0.75f, 5}, {10, 0.2f, 51}, {4, 1.0f, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double s = strtod(cases[i].s == 0.4f ? "0.4" : cases[i].s == 0.7f ? "0.7" : cases[i].s == 0.3f ? "0.3"
                          : cases[i].s == 0.5f ? "0.5" : cases[i].s == 0.75f ? "0.75" : cases[i].s == 0.2f ? "0.2" : "1",
                          NULL);
        CHECK(tdm_refine_plan_make(t, "ddim", 0, cases[i].T, TDM_REFINE_STRENGTH, s, &rp, &st) == TDM_OK);
        CHECK_MSG(rp.steps == cases[i].T && rp.grid_steps == cases[i].N, "T %d s %g: N %d steps %d", cases[i].T,
                  (double)cases[i].s, rp.grid_steps, rp.steps);
    }
    /* the README's UniPC example: T 4, s 0.3 on a leading grid of 14 runs 265, 199, 133, 67 */
    CHECK(tdm_refine_plan_make(t, "unipc", 0, 4, TDM_REFINE_STRENGTH, 0.3, &rp, &st) == TDM_OK);
    CHECK_MSG(rp.grid_steps == 14 && rp.first_timestep == 265.0f, "unipc first timestep %g", (double)rp.first_timestep);
    /* code default T 4, s 0.4: 333, ... (1 - alphabar = 0.465) */
    CHECK(tdm_refine_plan_make(t, "unipc", 0, 4, TDM_REFINE_STRENGTH, 0.4, &rp, &st) == TDM_OK);
    CHECK_MSG(rp.first_timestep == 333.0f && fabs(rp.start_sigma - 0.465) < 0.002, "t0 %g sigma %g",
              (double)rp.first_timestep, rp.start_sigma);
    /* noise sigma (Algorithm 1): start where 1 - alphabar = sigma, snapped to the nearest first timestep
     * of a schedule that runs exactly T steps (DDIM leading, T 4: 3 * (1000 // N) + 1 -> 301 for t* 294.4) */
    CHECK(tdm_refine_plan_make(t, "ddim", 0, 4, TDM_REFINE_NOISE, 0.4, &rp, &st) == TDM_OK);
    CHECK_MSG(rp.steps == 4 && fabs(rp.target_timestep - 294.35) < 0.1 && rp.first_timestep == 301.0f &&
              fabs(rp.start_sigma - 0.4) < 0.015, "noise: t* %g t0 %g sigma %g", rp.target_timestep,
              (double)rp.first_timestep, rp.start_sigma);
    for (int T = 1; T <= 12; T += 11) { /* no other schedule length starts nearer to t* */
        CHECK(tdm_refine_plan_make(t, "ddim", 0, T, TDM_REFINE_NOISE, 0.3, &rp, &st) == TDM_OK && rp.steps == T);
        for (int N = T; N <= 1000; N++) {
            int t0 = (T - 1) * (1000 / N) + 1;
            CHECK_MSG(fabs(t0 - rp.target_timestep) >= fabs(rp.first_timestep - rp.target_timestep),
                      "T %d: N %d starts at %d, nearer to t* %g than %g", T, N, t0, rp.target_timestep,
                      (double)rp.first_timestep);
        }
    }
    CHECK(tdm_refine_plan_make(t, "ddim", 0, 12, TDM_REFINE_NOISE, 0.862, &rp, &st) == TDM_OK);
    CHECK_MSG(rp.steps == 12 && fabs(rp.start_sigma - 0.862) < 0.02, "sigma %g", rp.start_sigma);
    CHECK(tdm_refine_plan_make(t, "ddim", 0, 4, TDM_REFINE_NOISE, 1.0, &rp, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_refine_plan_make(t, "ddim", 0, 4, TDM_REFINE_STRENGTH, 0.0, &rp, &st) == TDM_ERR_INVALID_ARG);

    /* the run agrees with the plan under both conventions */
    float score = 0.0f;
    tdm_oracle *o = NULL;
    CHECK(tdm_oracle_from_fn("fixed", fixed_oracle, &score, &o, &st) == TDM_OK);
    tdm_adaptive_params p;
    base_params(&p, o);
    p.tau = 1.0;
    p.teacher.steps = 3;
    p.refine_strength = 0.75f;
    tdm_adaptive_result r;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.refine_steps == 3 && r.refine_grid_steps == 5 && r.unet_calls_teacher == 3);
    tdm_adaptive_result_free(&r);
    p.refine_convention = TDM_REFINE_NOISE;
    p.refine_noise = 0.5f;
    CHECK(run(m->e2, m->lcm, m->sd, &p, &r) == TDM_OK);
    /* T 3: first timesteps 2 * (1000 // N) + 1 = ..., 401, 333, ...; t* = 366.1 -> 333 (1 - alphabar 0.465) */
    CHECK_MSG(r.refine_steps == 3 && r.unet_calls_teacher == 3 && r.refine_start_timestep == 333.0f &&
              fabs(r.refine_sigma - 0.465) < 0.01, "t0 %g sigma %g", (double)r.refine_start_timestep, r.refine_sigma);
    CHECK(strstr(r.parameters, "Refine noise: 0.5") != NULL);
    tdm_adaptive_result_free(&r);
    /* refine_steps: the refinement runs its own T (2) while the teacher's settings keep 3 steps */
    p.refine_convention = TDM_REFINE_STRENGTH;
    p.refine_steps = 2;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK_MSG(r.refine_steps == 2 && r.refine_grid_steps == 3 && r.unet_calls_teacher == 2, "steps %d grid %d calls %d",
              r.refine_steps, r.refine_grid_steps, r.unet_calls_teacher);
    tdm_adaptive_result_free(&r);
    p.refine_steps = -1;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_ERR_INVALID_ARG);
    tdm_adaptive_result_free(&r);
    tdm_oracle_free(o);
}

static int cancel_after(void *user, int done, int total, float score) {
    (void)total;
    (void)score;
    return done >= *(int *)user;
}

static void test_calibrate_run(models *m) {
    tdm_status st = {0};
    char prompts[PATH_MAX], out_a[PATH_MAX], out_b[PATH_MAX], partial[PATH_MAX + 16];
    snprintf(prompts, sizeof prompts, "%s/cal-prompts.txt", tdm_test_tmpdir());
    const char *text = "a red circle on the left\na blue square at the top\na green triangle in the centre\n";
    tdm_test_write_file(prompts, text, strlen(text));
    snprintf(out_a, sizeof out_a, "%s/calib-a.json", tdm_test_tmpdir());
    snprintf(out_b, sizeof out_b, "%s/calib-b.json", tdm_test_tmpdir());
    tdm_oracle *o = NULL;
    CHECK(tdm_oracle_open("brightness", NULL, m->e1, &o, &st) == TDM_OK);
    tdm_calibrate_params cp;
    tdm_calibrate_params_init(&cp);
    cp.prompts_file = prompts;
    cp.n = 5;
    cp.seed = 100;
    cp.width = cp.height = 64;
    cp.student.steps = 2;
    cp.oracle = o;
    cp.out_path = out_a;
    int resumed = -1;
    CHECK(tdm_calibrate(m->e1, m->lcm, &cp, &resumed, &st) == TDM_OK && resumed == 0);
    snprintf(partial, sizeof partial, "%s.partial", out_a);
    CHECK(access(partial, F_OK) != 0);

    /* the scores are the oracle's on the student samples (sample 3: prompt 0, seed 103) */
    tdm_calibration *c = NULL;
    CHECK(tdm_calibration_load(out_a, &c, &st) == TDM_OK && tdm_calibration_count(c) == 5);
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = "a red circle on the left";
    gp.seed = 103;
    gp.steps = 2;
    gp.width = gp.height = 64;
    tdm_image img = {0};
    float s3 = 0;
    CHECK(tdm_generate(m->e1, m->lcm, &gp, &img, NULL, &st) == TDM_OK && tdm_oracle_score(o, gp.prompt, &img, &s3, &st) == 0);
    tdm_image_free(&img);
    cJSON *root = NULL;
    CHECK(tdm_json_load(out_a, &root, &st) == TDM_OK);
    if (root) {
        cJSON *scores = cJSON_GetObjectItem(root, "scores"), *tau = cJSON_GetObjectItem(root, "tau");
        CHECK(cJSON_GetArraySize(scores) == 5 && (float)cJSON_GetArrayItem(scores, 3)->valuedouble == s3);
        double t50 = 0, t7 = 0;
        CHECK(tdm_calibration_tau(c, 50, &t50, &st) == TDM_OK && tdm_calibration_tau(c, 7, &t7, &st) == TDM_OK);
        CHECK(cJSON_GetArraySize(tau) == 99 && cJSON_GetObjectItem(tau, "50")->valuedouble == t50 &&
              cJSON_GetObjectItem(tau, "7")->valuedouble == t7);
        cJSON *stu = cJSON_GetObjectItem(root, "student"), *pr = cJSON_GetObjectItem(root, "prompts");
        CHECK(strcmp(cJSON_GetObjectItem(stu, "sampler")->valuestring, "lcm") == 0 &&
              cJSON_GetObjectItem(stu, "steps")->valueint == 2 && cJSON_GetObjectItem(stu, "guidance")->valuedouble == 8.5);
        CHECK(strlen(cJSON_GetObjectItem(pr, "sha256")->valuestring) == 64);
        CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "oracle"), "name")->valuestring, "brightness") == 0);
        cJSON_Delete(root);
    }

    /* interrupted after 2 samples, then resumed: the same file as the uninterrupted run */
    int stop = 2;
    cp.out_path = out_b;
    cp.on_sample = cancel_after;
    cp.user = &stop;
    CHECK(tdm_calibrate(m->e1, m->lcm, &cp, &resumed, &st) == TDM_ERR_CANCELLED && strstr(st.msg, "resumable"));
    snprintf(partial, sizeof partial, "%s.partial", out_b);
    CHECK(access(partial, F_OK) == 0 && access(out_b, F_OK) != 0);
    FILE *f = fopen(partial, "a"); /* a torn line, as from a kill during a write */
    if (f) {
        fputs("{\"i\":2,\"prom", f);
        fclose(f);
    }
    /* other settings: refused */
    cp.on_sample = NULL;
    cp.student.steps = 3;
    CHECK(tdm_calibrate(m->e1, m->lcm, &cp, &resumed, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "other settings"));
    cp.student.steps = 2;
    CHECK(tdm_calibrate(m->e2, m->lcm, &cp, &resumed, &st) == TDM_OK);
    CHECK_MSG(resumed == 2, "resumed %d", resumed);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK(tdm_read_file(out_a, 1 << 20, &a, &la, &st) == TDM_OK && tdm_read_file(out_b, 1 << 20, &b, &lb, &st) == TDM_OK);
    CHECK_MSG(a && b && la == lb && memcmp(a, b, la) == 0, "resumed calibration differs from the uninterrupted one");
    free(a);
    free(b);

    /* an adaptive run with k and this calibration: tau = percentile; matching settings, no warning */
    tdm_adaptive_params p;
    base_params(&p, o);
    p.calibration = out_a;
    p.k = 50;
    tdm_adaptive_result r;
    double t50 = 0;
    tdm_calibration_tau(c, 50, &t50, &st);
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK(r.tau == t50 && r.k == 50 && r.warnings[0] == '\0');
    CHECK(r.decision == ((double)r.oracle_score >= t50 ? TDM_DECISION_KEEP : TDM_DECISION_REFINE));
    tdm_adaptive_result_free(&r);
    /* a mismatch warns: other step count and size */
    p.student.steps = 3;
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK_MSG(strstr(r.warnings, "2 student steps, this run uses 3") != NULL, "warnings: %s", r.warnings);
    CHECK(strstr(r.metadata_json, "student steps") != NULL);
    tdm_adaptive_result_free(&r);
    p.student.steps = 2;
    /* teacher share */
    p.k = NAN;
    p.teacher_share = 0.4;
    double tq = 0;
    tdm_calibration_tau_for_share(c, 0.4, &tq, NULL, &st);
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK && r.tau == tq && r.teacher_share == 0.4);
    tdm_adaptive_result_free(&r);

    /* a teacher of another size: the calibration scores the student's images resized to it (bicubic) */
    char out_c[PATH_MAX];
    snprintf(out_c, sizeof out_c, "%s/calib-c.json", tdm_test_tmpdir());
    tdm_calibrate_params cs = cp;
    cs.n = 1;
    cs.out_path = out_c;
    cs.on_sample = NULL;
    cs.score_width = 128;
    CHECK(tdm_calibrate(m->e1, m->lcm, &cs, &resumed, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "128x0"));
    cs.score_height = 128;
    CHECK_MSG(tdm_calibrate(m->e1, m->lcm, &cs, &resumed, &st) == TDM_OK, "%s", st.msg);
    gp.seed = 100; /* sample 0 */
    tdm_image big = {0};
    float s0 = 0;
    CHECK(tdm_generate(m->e1, m->lcm, &gp, &img, NULL, &st) == TDM_OK &&
          tdm_image_resize(&img, 128, 128, TDM_RESAMPLE_BICUBIC, &big, &st) == TDM_OK &&
          tdm_oracle_score(o, gp.prompt, &big, &s0, &st) == TDM_OK);
    tdm_image_free(&img);
    tdm_image_free(&big);
    tdm_calibration *cc = NULL;
    CHECK(tdm_calibration_load(out_c, &cc, &st) == TDM_OK);
    CHECK(cc && cc->n == 1 && (float)cc->scores[0] == s0 && cc->scored_width == 128 && cc->width == 64);
    tdm_calibration_free(cc);
    p.k = 50;
    p.teacher_share = NAN;
    p.teacher_width = p.teacher_height = 128;
    p.calibration = out_c; /* scored at 128x128 as this run: no warning */
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK_MSG(r.warnings[0] == '\0', "warnings: %s", r.warnings);
    tdm_adaptive_result_free(&r);
    p.calibration = out_a; /* scored at 64x64: warned */
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK);
    CHECK_MSG(strstr(r.warnings, "scored the student's images at 64x64"), "warnings: %s", r.warnings);
    tdm_adaptive_result_free(&r);
    p.teacher_width = p.teacher_height = 0;
    p.k = NAN;
    p.teacher_share = 0.4;
    p.calibration = out_a;

    /* bad input */
    p.teacher_share = NAN;
    p.k = 100;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "(0, 100)"));
    p.k = 0;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG);
    p.k = 50;
    p.calibration = "no/such/calib.json";
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_IO && strstr(st.msg, "no/such/calib.json"));
    p.calibration = NULL;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "calibration file"));
    p.k = NAN;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "no threshold"));
    p.tau = 0.5;
    p.oracle = NULL;
    p.oracle_name = "nonsense";
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "unknown oracle"));
    p.oracle_name = "checker"; /* by name: the prompt is a caption */
    CHECK(run(m->e1, m->lcm, m->sd, &p, &r) == TDM_OK && r.oracle_score >= 0 && r.oracle_score <= 1);
    tdm_adaptive_result_free(&r);
    p.prompt = "an astronaut riding a horse";
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "shapes-world caption"));
    /* a calibration run on a bad prompts file names the line */
    tdm_test_write_file(prompts, "a red circle on the left\n\n", 26);
    cp.out_path = out_a;
    CHECK(tdm_calibrate(m->e1, m->lcm, &cp, NULL, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":2: empty line"));
    tdm_calibration_free(c);
    tdm_oracle_free(o);
}


/* ---- CLI (build/tandem next to this test binary) ---- */

static char g_bin[PATH_MAX];

#define CLI(code, needle, args) TDM_TEST_CLI(g_bin, 0, code, needle, args)

static void test_cli(void) {
    if (access(g_bin, X_OK) != 0) {
        printf("CLI part skipped: %s is absent\n", g_bin);
        return;
    }
    const char *base = "generate --adaptive --model tiny-lcm --teacher tiny-sd --prompt 'a red circle on the left' "
                       "--width 64 --height 64 --steps 2 --teacher-steps 3 --seed 4 -q";
    char args[2048];
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 -o cli.png --sidecar cli.json", base);
    CLI(0, "", args);
    char png[PATH_MAX], *chunk = NULL;
    tdm_status st = {0};
    snprintf(png, sizeof png, "%s/cli.png", tdm_test_tmpdir());
    CHECK(tdm_image_read_text(png, "tandem", &chunk, &st) == TDM_OK && chunk && strstr(chunk, "\"decision\":\"refine\""));
    tdm_free(chunk);
    /* --keep-better: the teacher's image is scored too (constant: a tie, so the teacher's) */
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --keep-better -o kb.png", base);
    CLI(0, "", args);
    snprintf(png, sizeof png, "%s/kb.png", tdm_test_tmpdir());
    chunk = NULL;
    CHECK(tdm_image_read_text(png, "tandem", &chunk, &st) == TDM_OK && chunk &&
          strstr(chunk, "\"teacher_score\":0.2") && strstr(chunk, "\"selected\":\"teacher\""));
    tdm_free(chunk);
    snprintf(args, sizeof args, "%s --oracle nonsense --tau 0.5", base);
    CLI(1, "unknown oracle 'nonsense'", args);
    snprintf(args, sizeof args, "%s --k 100 --calibration c.json", base);
    CLI(2, "--k: 100 is outside (0, 100)", args);
    snprintf(args, sizeof args, "%s --k 50", base);
    CLI(2, "needs --calibration", args);
    snprintf(args, sizeof args, "%s --k 50 --calibration missing-calib.json", base);
    CLI(1, "missing-calib.json", args);
    snprintf(args, sizeof args, "%s --tau 1 --k 50 --calibration c.json", base);
    CLI(2, "exactly one of", args);
    snprintf(args, sizeof args, "%s --tau 1 --strategy sideways", base);
    CLI(2, "--strategy", args);
    /* calibrate, then a run with other settings warns */
    char pf[PATH_MAX];
    snprintf(pf, sizeof pf, "%s/prompts-cli.txt", tdm_test_tmpdir());
    tdm_test_write_file(pf, "a red circle on the left\na blue square at the top\n", 49);
    CLI(0, "", "calibrate --model tiny-lcm --prompts prompts-cli.txt --n 3 --out cal-cli.json --steps 2 --width 64 "
               "--height 64 --oracle brightness -q");
    snprintf(args, sizeof args, "%s --oracle brightness --k 50 --calibration cal-cli.json --guidance 3 -o w.png", base);
    CLI(0, "warning: calibration cal-cli.json was made with student guidance 8.5, this run uses 3", args);
    snprintf(pf, sizeof pf, "%s/prompts-bad.txt", tdm_test_tmpdir());
    tdm_test_write_file(pf, "ok\n\xff\n", 5);
    CLI(1, "prompts-bad.txt:2: invalid UTF-8", "calibrate --model tiny-lcm --prompts prompts-bad.txt --n 2 --out x.json");
    tdm_test_write_file(pf, "ok\n\nmore\n", 9);
    CLI(1, "prompts-bad.txt:2: empty line", "calibrate --model tiny-lcm --prompts prompts-bad.txt --n 2 --out x.json");
    CLI(2, "required", "calibrate --model tiny-lcm --n 2");
    /* plain generate still works and rejects adaptive-only options */
    CLI(0, "", "generate --model tiny-sd --prompt x --steps 1 --width 64 --height 64 -q -o plain.png");
    CLI(2, "unknown option '--tau'", "generate --model tiny-sd --prompt x --tau 1");
}

int main(int argc, char **argv) {
    (void)argc;
    tdm_test_cli_path(argv[0], 1, g_bin, sizeof g_bin); /* the CLI runs in the temp dir */
    test_percentile();
    test_calibration_files();
    test_prompts();
    test_oracles();
    if (!tdm_test_tiny_present()) {
        printf("tiny-model parts skipped: fixtures absent\n");
        return tdm_test_result();
    }
    models m = {0};
    tdm_status st = {0};
    tdm_test_tiny_engines(&m.e1, &m.e2);
    tdm_test_tiny_pair(&m.sd, &m.lcm, &st);
    if (!m.sd || !m.lcm || !m.e1 || !m.e2) {
        fprintf(stderr, "setup: %s\n", st.msg);
        return 1;
    }
    test_stage_matches_generate(&m);
    test_decisions(&m);
    test_keep_better(&m);
    test_controls(&m);
    test_refine_counts(&m);
    test_calibrate_run(&m);
    test_cli();
    tdm_model_free(m.sd);
    tdm_model_free(m.lcm);
    tdm_engine_free(m.e1);
    tdm_engine_free(m.e2);
    return tdm_test_result();
}
