/* Presets (tandem.h "presets" block, docs/PRESETS.md): lookup, values, apply + override, the unknown-name
 * error, the model checks; the adaptive pipeline's teacher-size hand-over on the tiny model (student 64x64,
 * teacher 128x128: bicubic upscale before the oracle, pixel hand-off, kept image at the teacher's size,
 * regeneration refused); the CLI: --preset help / unknown / overrides, and --student-lora on calibrate and
 * eval (tiny LoRA: the lora-sd15-tiny fixture). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli_util.h"
#include "io/image.h"
#include "tandem.h"
#include "test_util.h"
#include "tiny_sd_model.h"

static char g_bin[PATH_MAX], g_model[PATH_MAX], g_lora[PATH_MAX];

static void test_lookup(void) {
    int n = 0;
    const tdm_preset *ps = tdm_presets(&n);
    CHECK(n == 4);
    const char *names[] = {"lcm-sdxl", "sdxl-turbo", "sd15-cd", "sd15-lcm-lora"};
    for (int i = 0; i < 4 && i < n; i++) {
        CHECK(strcmp(ps[i].name, names[i]) == 0);
        const tdm_preset *p = NULL;
        tdm_status st = {0};
        CHECK(tdm_preset_find(names[i], &p, &st) == TDM_OK && p == &ps[i]);
        CHECK(ps[i].summary && ps[i].source && ps[i].models && ps[i].k == 50);
        CHECK(ps[i].strategy == TDM_ADAPTIVE_REFINE && ps[i].refine_convention == TDM_REFINE_STRENGTH);
    }
    const tdm_preset *p = NULL;
    tdm_status st = {0};
    /* the paper's released configurations (paper notes 2.1) */
    CHECK(tdm_preset_find("lcm-sdxl", &p, &st) == TDM_OK);
    CHECK(strcmp(p->student.sampler, "lcm") == 0 && p->student.steps == 4 && p->student.guidance == 8.0f);
    CHECK(strcmp(p->teacher.sampler, "unipc") == 0 && p->teacher.steps == 12 && p->teacher.guidance == 8.0f);
    CHECK(p->refine_value == 0.7f && p->width == 1024 && p->teacher_width == 0 && p->student_lcm);
    CHECK(tdm_preset_find("sdxl-turbo", &p, &st) == TDM_OK);
    CHECK(strcmp(p->student.sampler, "euler_a") == 0 && p->student.steps == 2 && p->student.guidance == 0.0f);
    CHECK(p->width == 512 && p->height == 512 && p->teacher_width == 1024 && p->teacher_height == 1024);
    CHECK(strcmp(p->teacher.sampler, "unipc") == 0 && p->teacher.steps == 4 && p->refine_value == 0.3f);
    CHECK(strcmp(p->teacher_family, "sdxl-refiner") == 0 && p->student_trailing);
    CHECK(tdm_preset_find("sd15-cd", &p, &st) == TDM_OK);
    CHECK(strcmp(p->student.sampler, "consistency") == 0 && p->student.steps == 5 && p->student.guidance == 8.0f);
    CHECK(strcmp(p->teacher.sampler, "dpmpp_2m") == 0);
    CHECK(tdm_preset_find("sd15-lcm-lora", &p, &st) == TDM_OK);
    CHECK(strcmp(p->student.sampler, "lcm") == 0 && p->student.steps == 4 && p->student.guidance == 1.0f);
    CHECK(p->student_lora);
    /* unknown: the message lists every name */
    CHECK(tdm_preset_find("lcm-sd3", &p, &st) == TDM_ERR_INVALID_ARG && p == NULL);
    CHECK_MSG(strstr(st.msg, "lcm-sd3") && strstr(st.msg, "lcm-sdxl") && strstr(st.msg, "sdxl-turbo") &&
                  strstr(st.msg, "sd15-cd") && strstr(st.msg, "sd15-lcm-lora"),
              "%s", st.msg);
    CHECK(tdm_preset_find(NULL, &p, &st) == TDM_ERR_INVALID_ARG);
    /* the sampler names are the engine's */
    int ns = 0;
    const char *const *sn = tdm_sampler_names(&ns);
    for (int i = 0; i < n; i++) {
        int fs = 0, ft = 0;
        for (int k = 0; k < ns; k++) {
            fs |= strcmp(sn[k], ps[i].student.sampler) == 0;
            ft |= strcmp(sn[k], ps[i].teacher.sampler) == 0;
        }
        CHECK_MSG(fs && ft, "preset %s: sampler unknown to the engine", ps[i].name);
    }
}

static void test_apply(void) {
    const tdm_preset *p = NULL;
    tdm_status st = {0};
    CHECK(tdm_preset_find("sdxl-turbo", &p, &st) == TDM_OK);
    tdm_adaptive_params a;
    tdm_adaptive_params_init(&a);
    tdm_preset_apply(p, &a);
    CHECK(a.student.steps == 2 && a.student.guidance == 0.0f && strcmp(a.student.sampler, "euler_a") == 0);
    CHECK(a.teacher.steps == 4 && a.teacher.guidance == 8.0f && strcmp(a.teacher.sampler, "unipc") == 0);
    CHECK(a.width == 512 && a.teacher_width == 1024 && a.teacher_height == 1024);
    CHECK(a.refine_convention == TDM_REFINE_STRENGTH && a.refine_strength == 0.3f && a.k == 50);
    CHECK(strcmp(a.oracle_name, "imagereward") == 0 && isnan(a.tau));
    CHECK(a.preset && strcmp(a.preset, "sdxl-turbo") == 0); /* recorded in the metadata */
    a.teacher.steps = 8; /* an explicit setting after apply wins */
    CHECK(a.teacher.steps == 8 && a.teacher.guidance == 8.0f);
    tdm_preset_apply(NULL, &a); /* no-op */
    CHECK(a.teacher.steps == 8);
}

static int gen_student(tdm_engine *e, const tdm_model *m, int w, tdm_image *img) {
    tdm_generate_params g;
    tdm_generate_params_init(&g);
    g.prompt = "a red circle";
    g.steps = 2;
    g.seed = 5;
    g.width = g.height = w;
    tdm_status st = {0};
    tdm_code rc = tdm_generate(e, m, &g, img, NULL, &st);
    if (rc) fprintf(stderr, "generate: %s\n", st.msg);
    return rc == TDM_OK;
}

/* student 64x64 -> teacher 128x128 on the tiny model */
static void test_teacher_size(tdm_engine *e, const tdm_model *m) {
    tdm_adaptive_params a;
    tdm_adaptive_params_init(&a);
    a.prompt = "a red circle";
    a.seed = 5;
    a.width = a.height = 64;
    a.teacher_width = a.teacher_height = 128;
    a.student.steps = 2;
    a.teacher.steps = 2;
    a.oracle_name = "constant:0";
    a.tau = 0.5; /* 0 < 0.5: refine */
    a.keep_student_image = 1;
    tdm_adaptive_result r, r2;
    tdm_status st = {0};
    CHECK_MSG(tdm_adaptive_generate(e, m, m, &a, &r, &st) == TDM_OK, "%s", st.msg);
    CHECK(r.decision == TDM_DECISION_REFINE && r.image.width == 128 && r.image.height == 128);
    CHECK_MSG(!r.handoff_latent && strstr(r.handoff_reason, "teacher size 128x128") &&
                  strstr(r.handoff_reason, "64x64"),
              "%s", r.handoff_reason);
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"teacher_size\"") && strstr(r.metadata_json, "bicubic"));
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"handoff\":\"pixels\""));
    CHECK(r.metadata_json && !strstr(r.metadata_json, "\"preset\"")); /* no preset given */
    CHECK(r.refine_steps == 2 && r.unet_evals_teacher > 0);
    /* the student's image as scored: tdm_generate's 64x64 image, bicubic-resized to 128x128 */
    tdm_image s64 = {0}, s128 = {0};
    if (gen_student(e, m, 64, &s64) && tdm_image_resize(&s64, 128, 128, TDM_RESAMPLE_BICUBIC, &s128, &st) == TDM_OK) {
        CHECK(r.student_image.width == 128 && r.student_image.height == 128);
        if (r.student_image.pixels)
            CHECK(memcmp(r.student_image.pixels, s128.pixels, (size_t)128 * 128 * 3) == 0);
    }
    /* deterministic */
    CHECK_MSG(tdm_adaptive_generate(e, m, m, &a, &r2, &st) == TDM_OK, "%s", st.msg);
    if (r.image.pixels && r2.image.pixels)
        CHECK(memcmp(r.image.pixels, r2.image.pixels, (size_t)128 * 128 * 3) == 0);
    tdm_adaptive_result_free(&r2);
    /* keep: the kept image is the upscaled student image */
    a.oracle_name = "constant:1";
    CHECK_MSG(tdm_adaptive_generate(e, m, m, &a, &r2, &st) == TDM_OK, "%s", st.msg);
    CHECK(r2.decision == TDM_DECISION_KEEP && r2.image.width == 128 && r2.unet_evals_teacher == 0);
    if (r2.image.pixels && s128.pixels) CHECK(memcmp(r2.image.pixels, s128.pixels, (size_t)128 * 128 * 3) == 0);
    tdm_adaptive_result_free(&r2);
    /* regeneration needs the student's noise shape: refused */
    a.oracle_name = "constant:0";
    a.strategy = TDM_ADAPTIVE_REGENERATE;
    CHECK(tdm_adaptive_generate(e, m, m, &a, &r2, &st) == TDM_ERR_INVALID_ARG);
    CHECK_MSG(strstr(st.msg, "regenerate") && strstr(st.msg, "refine strategy"), "%s", st.msg);
    /* one side only */
    a.strategy = TDM_ADAPTIVE_REFINE;
    a.teacher_height = 0;
    CHECK(tdm_adaptive_generate(e, m, m, &a, &r2, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "teacher size"));
    /* equal sizes: as before (latent hand-off on one model) */
    a.teacher_height = 64;
    a.teacher_width = 64;
    a.preset = "sd15-cd"; /* the preset's name is recorded */
    CHECK_MSG(tdm_adaptive_generate(e, m, m, &a, &r2, &st) == TDM_OK, "%s", st.msg);
    CHECK(r2.handoff_latent && r2.image.width == 64 && r2.metadata_json && !strstr(r2.metadata_json, "teacher_size"));
    CHECK(r2.metadata_json && strstr(r2.metadata_json, "\"preset\":\"sd15-cd\""));
    tdm_adaptive_result_free(&r2);
    tdm_adaptive_result_free(&r);
    tdm_image_free(&s64);
    tdm_image_free(&s128);
}

static void test_check(const tdm_model *m, const tdm_model *derived) {
    const tdm_preset *p = NULL;
    tdm_status st = {0};
    char warn[1024];
    CHECK(tdm_preset_find("lcm-sdxl", &p, &st) == TDM_OK);
    int n = tdm_preset_check(p, m, m, warn, sizeof warn);
    /* the tiny model's family is "unknown" (context width 32) */
    CHECK_MSG(n == 3 && strstr(warn, "the student is a 'unknown' model") && strstr(warn, "not an LCM UNet") &&
                  strstr(warn, "the teacher is a 'unknown' model, the preset expects 'sdxl'"),
              "%d: %s", n, warn);
    CHECK(tdm_preset_find("sd15-lcm-lora", &p, &st) == TDM_OK);
    n = tdm_preset_check(p, m, m, warn, sizeof warn);
    CHECK_MSG(n == 3 && strstr(warn, "no LoRA"), "%d: %s", n, warn);
    if (derived) CHECK(tdm_preset_check(p, derived, m, warn, sizeof warn) == 2 && !strstr(warn, "no LoRA"));
    CHECK(tdm_preset_find("sd15-cd", &p, &st) == TDM_OK);
    CHECK(tdm_preset_check(p, m, NULL, warn, sizeof warn) == 1 && !strstr(warn, "teacher"));
    CHECK(tdm_preset_find("sdxl-turbo", &p, &st) == TDM_OK);
    n = tdm_preset_check(p, m, m, warn, sizeof warn);
    CHECK_MSG(n == 3 && strstr(warn, "trailing"), "%d: %s", n, warn);
}

/* ---- CLI ---- */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf && fread(buf, 1, (1 << 20) - 1, f) == 0) buf[0] = '\0';
    fclose(f);
    return buf;
}

/* The JSON value on line `line` (0-based) of dir/name; NULL when absent or unparsable. */
static cJSON *read_json(const char *dir, const char *name, int line) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *txt = read_file(path), *p = txt;
    for (int i = 0; p && i < line; i++)
        if ((p = strchr(p, '\n'))) p++;
    cJSON *j = p ? cJSON_Parse(p) : NULL;
    free(txt);
    return j;
}

static double number_or_nan(const cJSON *x) { return cJSON_IsNumber(x) ? x->valuedouble : NAN; }

static void test_cli(void) {
    FILE *bf = fopen(g_bin, "rb");
    if (!bf) {
        printf("CLI part skipped: %s absent\n", g_bin);
        return;
    }
    fclose(bf);
    const char *tmp = tdm_test_tmpdir();
    char args[8192], path[PATH_MAX];
    /* --preset help lists every preset on stdout */
    TDM_TEST_CLI(g_bin, 1, 0, "", "generate --adaptive --preset help");
    snprintf(path, sizeof path, "%s/cli.err.out", tmp);
    char *out = read_file(path);
    CHECK_MSG(out && strstr(out, "lcm-sdxl") && strstr(out, "sdxl-turbo") && strstr(out, "sd15-cd") &&
                  strstr(out, "sd15-lcm-lora") && strstr(out, "--student-unet unet_lcm"),
              "%s", out ? out : "");
    free(out);
    TDM_TEST_CLI(g_bin, 0, 0, "", "calibrate --preset help");
    TDM_TEST_CLI(g_bin, 0, 0, "", "eval --preset help");
    /* unknown: exit 2 naming the known ones */
    TDM_TEST_CLI(g_bin, 0, 2, "known: lcm-sdxl, sdxl-turbo, sd15-cd, sd15-lcm-lora",
                 "generate --adaptive --preset nope --model x --prompt y --tau 1");
    TDM_TEST_CLI(g_bin, 0, 2, "unknown preset 'nope'", "calibrate --preset nope");
    TDM_TEST_CLI(g_bin, 0, 2, "unknown preset 'nope'", "eval --preset nope");
    /* the preset's k needs a calibration file: the message says so */
    snprintf(args, sizeof args, "generate --adaptive --preset sd15-cd --model '%.1000s' --prompt x", g_model);
    TDM_TEST_CLI(g_bin, 0, 2, "preset sd15-cd sets k 50", args);
    TDM_TEST_CLI(g_bin, 0, 2, "give both --teacher-width and --teacher-height",
                 "generate --adaptive --model x --prompt y --tau 1 --teacher-width 128");

    /* overrides: --steps / --teacher-steps / size / oracle explicit, the rest from sd15-lcm-lora */
    snprintf(args, sizeof args,
             "generate --adaptive --preset sd15-lcm-lora --model '%.1000s' --student-lora '%.1000s' --steps 1 --teacher-steps 1 "
             "--width 64 --height 64 --oracle brightness --tau 2 --prompt x --seed 3 -o p.png --sidecar p.json",
             g_model, g_lora);
    TDM_TEST_CLI(g_bin, 0, 0, "base weights shared", args);
    snprintf(path, sizeof path, "%s/p.json", tmp);
    char *js = read_file(path);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    CHECK_MSG(j != NULL, "%s", path);
    if (j) {
        const cJSON *s = cJSON_GetObjectItem(j, "student"), *t = cJSON_GetObjectItem(j, "teacher"),
                    *rf = cJSON_GetObjectItem(j, "refine");
        CHECK(cJSON_GetObjectItem(s, "steps")->valuedouble == 1);
        CHECK(strcmp(cJSON_GetObjectItem(s, "sampler")->valuestring, "lcm") == 0);
        CHECK(cJSON_GetObjectItem(s, "guidance")->valuedouble == 1);
        CHECK(cJSON_GetObjectItem(t, "steps")->valuedouble == 1);
        CHECK(strcmp(cJSON_GetObjectItem(t, "sampler")->valuestring, "dpmpp_2m") == 0);
        CHECK(cJSON_GetObjectItem(t, "guidance")->valuedouble == 8);
        CHECK(cJSON_GetObjectItem(rf, "strength")->valuedouble == 0.6);
        CHECK(strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "oracle"), "name")->valuestring, "brightness") == 0);
        CHECK(cJSON_GetObjectItem(j, "width")->valuedouble == 64);
        cJSON_Delete(j);
    }
    free(js);
    /* the preset's model check warns (the tiny student is no LCM-SDXL) but runs */
    snprintf(args, sizeof args,
             "generate --adaptive --preset lcm-sdxl --model '%.1000s' --steps 1 --teacher-steps 1 --width 64 --height 64 "
             "--oracle brightness --tau 2 --prompt x --seed 3 -o w.png",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "warning: preset lcm-sdxl: the student is a 'unknown' model", args);
    /* teacher size from the command line */
    snprintf(args, sizeof args,
             "generate --adaptive --model '%.1000s' --steps 1 --teacher-steps 1 --width 64 --height 64 --teacher-width 128 "
             "--teacher-height 128 --oracle brightness --tau 2 --prompt x --seed 3 -o ts.png",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "teacher size 128x128", args);
    snprintf(path, sizeof path, "%s/ts.png", tmp);
    tdm_image im = {0};
    tdm_status st = {0};
    CHECK_MSG(tdm_image_load(path, &im, &st) == TDM_OK && im.width == 128 && im.height == 128, "%s", st.msg);
    tdm_image_free(&im);

    /* calibrate --student-lora (and --preset): the LoRA changes the scores */
    snprintf(path, sizeof path, "%s/prompts.txt", tmp);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("a red circle\na blue square\n", f);
        fclose(f);
    }
    snprintf(args, sizeof args,
             "calibrate --model '%.1000s' --prompts prompts.txt --n 2 --out c0.json --oracle brightness --steps 1 "
             "--width 64 --height 64 --sampler lcm --guidance 1",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "", args);
    snprintf(args, sizeof args,
             "calibrate --preset sd15-lcm-lora --model '%.1000s' --student-lora '%.1000s:0.5' --prompts prompts.txt --n 2 "
             "--out c1.json --oracle brightness --steps 1 --width 64 --height 64",
             g_model, g_lora);
    TDM_TEST_CLI(g_bin, 0, 0, "lora.safetensors x0.5", args);
    snprintf(path, sizeof path, "%s/c0.json", tmp);
    char *c0 = read_file(path);
    snprintf(path, sizeof path, "%s/c1.json", tmp);
    char *c1 = read_file(path);
    cJSON *j0 = c0 ? cJSON_Parse(c0) : NULL, *j1 = c1 ? cJSON_Parse(c1) : NULL;
    CHECK(j0 && j1);
    if (j0 && j1) {
        const cJSON *s0 = cJSON_GetObjectItem(j0, "scores"), *s1 = cJSON_GetObjectItem(j1, "scores");
        CHECK(cJSON_GetArraySize(s0) == 2 && cJSON_GetArraySize(s1) == 2);
        CHECK(cJSON_GetArrayItem(s0, 0)->valuedouble != cJSON_GetArrayItem(s1, 0)->valuedouble);
        const cJSON *st1 = cJSON_GetObjectItem(j1, "student"); /* the preset's settings, --steps overridden */
        CHECK(strcmp(cJSON_GetObjectItem(st1, "sampler")->valuestring, "lcm") == 0);
        CHECK(cJSON_GetObjectItem(st1, "guidance")->valuedouble == 1 && cJSON_GetObjectItem(st1, "steps")->valuedouble == 1);
    }
    cJSON_Delete(j0);
    cJSON_Delete(j1);
    free(c0);
    free(c1);
    snprintf(args, sizeof args,
             "calibrate --model '%.1000s' --student-lora '%.1000s/none.safetensors' --prompts prompts.txt --n 1 --out c2.json "
             "--oracle brightness --steps 1 --width 64 --height 64",
             g_model, tmp);
    TDM_TEST_CLI(g_bin, 0, 1, "none.safetensors", args);

    /* eval --student-lora: the student derived from the teacher (shared weights) */
    snprintf(args, sizeof args,
             "eval --model '%.1000s' --student-lora '%.1000s' --prompts prompts.txt --seeds 0:1 --out ev --oracle brightness "
             "--sampler lcm --guidance 1 --steps 1 --teacher-steps 1 --width 64 --height 64 --k 50 -q",
             g_model, g_lora);
    TDM_TEST_CLI(g_bin, 0, 0, "", args);
    snprintf(path, sizeof path, "%s/ev/table.md", tmp);
    char *tb = read_file(path);
    CHECK_MSG(tb && strstr(tb, "adaptive-refine"), "%s", tb ? tb : "(no table)");
    free(tb);
    snprintf(args, sizeof args,
             "eval --model '%.1000s' --student-lora '%.1000s' --prompts prompts.txt --seeds 0:1 --out ev2 --oracle brightness "
             "--sampler lcm --guidance 1 --steps 1 --teacher-steps 1 --width 64 --height 64 --k 50",
             g_model, g_lora);
    TDM_TEST_CLI(g_bin, 0, 0, "base weights shared", args);
    /* eval with a teacher size: the refinement hands over through pixels */
    snprintf(args, sizeof args,
             "eval --model '%.1000s' --prompts prompts.txt --seeds 0:1 --out ev3 --oracle brightness --steps 1 "
             "--teacher-steps 1 --width 64 --height 64 --teacher-width 128 --teacher-height 128 --k 50 -q",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "", args);
    /* the oracle sees the student's image at the teacher's size in all three commands: generate --adaptive,
     * eval (sample 0: "a red circle", seed 0) and calibrate (sample 0) give the same score */
    snprintf(args, sizeof args,
             "generate --adaptive --model '%.1000s' --steps 1 --teacher-steps 1 --width 64 --height 64 --teacher-width 128 "
             "--teacher-height 128 --oracle brightness --tau 2 --prompt 'a red circle' --seed 0 -o ts0.png --sidecar ts0.json",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "", args);
    snprintf(args, sizeof args,
             "calibrate --model '%.1000s' --prompts prompts.txt --n 1 --out c3.json --oracle brightness --steps 1 "
             "--width 64 --height 64 --teacher-width 128 --teacher-height 128",
             g_model);
    TDM_TEST_CLI(g_bin, 0, 0, "", args);
    cJSON *gen = read_json(tmp, "ts0.json", 0), *ev = read_json(tmp, "ev3/samples.jsonl", 1), /* line 1: sample 0 */
          *cal = read_json(tmp, "c3.json", 0);
    const double gen_score = number_or_nan(cJSON_GetObjectItem(cJSON_GetObjectItem(gen, "oracle"), "score"));
    const double eval_score = number_or_nan(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "student"), "oracle"));
    const double cal_score = number_or_nan(cJSON_GetArrayItem(cJSON_GetObjectItem(cal, "scores"), 0));
    CHECK(number_or_nan(cJSON_GetObjectItem(cJSON_GetObjectItem(cal, "scored_size"), "width")) == 128);
    cJSON_Delete(gen);
    cJSON_Delete(ev);
    cJSON_Delete(cal);
    CHECK_MSG(fabs(gen_score - eval_score) < 1e-6 && fabs(gen_score - cal_score) < 1e-6,
              "oracle scores of the same student sample: generate %.9g, eval %.9g, calibrate %.9g", gen_score, eval_score,
              cal_score);
}

int main(int argc, char **argv) {
    (void)argc;
    test_lookup();
    test_apply();
    tdm_test_cli_path(argv[0], 1, g_bin, sizeof g_bin);
    if (!tiny_sd_fixtures_present(0) || !tdm_test_fixture("lora-sd15-tiny")) {
        printf("model parts skipped: tiny fixtures absent\n");
        return tdm_test_result();
    }
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/tiny-sd", tdm_test_tmpdir());
    tiny_sd_make_model(rel, "unet-sd15-tiny", "DDIMScheduler");
    if (!realpath(rel, g_model)) snprintf(g_model, sizeof g_model, "%s", rel);
    snprintf(rel, sizeof rel, "%s/lora-sd15-tiny/model-kohya/lora.safetensors", tdm_test_fixtures());
    if (!realpath(rel, g_lora)) snprintf(g_lora, sizeof g_lora, "%s", rel);
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = g_model;
    tdm_model *m = NULL, *derived = NULL;
    tdm_engine *e1 = NULL, *e2 = NULL;
    tdm_status st = {0};
    tiny_sd_engines(&e1, &e2);
    CHECK_MSG(tdm_model_load(&mp, &m, &st) == TDM_OK, "%s", st.msg);
    tdm_lora_spec spec = {g_lora, 1.0f};
    if (m) CHECK_MSG(tdm_model_derive_lora(m, &spec, 1, &derived, &st) == TDM_OK, "%s", st.msg);
    if (m && e2) {
        test_teacher_size(e2, m);
        test_check(m, derived);
    }
    tdm_model_free(derived);
    tdm_model_free(m);
    tdm_engine_free(e1);
    tdm_engine_free(e2);
    test_cli();
    return tdm_test_result();
}
