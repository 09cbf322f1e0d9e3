/* tandem control-eval (docs/CONTROLNET.md "Shapes world evaluation"): the checker's label map against the
 * world's own masks on clean renders (per-object IoU), the analysis unchanged by the label map, the placement
 * IoU rules on synthetic masks (identity, swapped ids, missing object, partial overlap, largest overlap wins),
 * the condition image convention, and a tiny run (student: the LCM tiny UNet, teacher: the SD1.5 tiny UNet,
 * ControlNet: controlnet-sd15-tiny, checker and brightness oracles, deterministic clock): the runs are
 * tdm_generate's / tdm_adaptive_generate's with the condition, budgets, an interrupted-and-resumed (and torn)
 * log giving byte-identical files, mismatched settings refused, and the CLI. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "pipeline/eval_control.h"
#include "tandem.h"
#include "world/caption.h"
#include "world/checker.h"
#include "world/world.h"
#include "cli_util.h"
#include "eval_test_util.h"
#include "test_util.h"




/* ---- label map on the world's own renders ---- */

static void test_label_map(void) {
    const int W = 64, H = 64, N = 200;
    uint8_t rgb[64 * 64 * 3], mask[64 * 64], labels[64 * 64];
    double sum = 0, worst = 1;
    int n_obj = 0, same_analysis = 1, counts_ok = 0;
    for (int i = 0; i < N; i++) {
        tdm_status st = {0};
        tdm_world_scene sc;
        CHECK(tdm_world_sample(1001, TDM_SPLIT_TEST, (uint64_t)i, &sc, &st) == TDM_OK);
        CHECK(tdm_world_render(&sc, W, H, 4, rgb, mask, &st) == TDM_OK);
        tdm_world_analysis a, b;
        CHECK(tdm_world_analyze_labels(rgb, W, H, &a, labels, &st) == TDM_OK);
        CHECK(tdm_world_analyze(rgb, W, H, &b, &st) == TDM_OK);
        same_analysis &= memcmp(&a, &b, sizeof a) == 0;
        counts_ok += a.n_detections == sc.n_objects;
        for (int p = 0; p < W * H; p++) CHECK(labels[p] <= a.n_detections);
        float per[2], mean = 0;
        CHECK(tdm_world_placement_iou(mask, labels, (size_t)W * H, sc.n_objects, per, &mean, &st) == TDM_OK);
        for (int k = 0; k < sc.n_objects; k++) {
            sum += per[k];
            n_obj++;
            if (per[k] < worst) worst = per[k];
        }
    }
    printf("label map vs render mask, %d test scenes (%d objects, 64x64, supersample 4): mean IoU %.4f, min %.4f; "
           "%d / %d scenes with the right object count\n",
           N, n_obj, sum / n_obj, worst, counts_ok, N);
    CHECK_MSG(same_analysis, "tdm_world_analyze_labels changed the analysis");
    CHECK(counts_ok == N);
    CHECK_MSG(sum / n_obj >= 0.95 && worst >= 0.8, "mean IoU %.4f, min %.4f", sum / n_obj, worst);
}

/* ---- IoU rules on synthetic masks ---- */

static void fill_rect(uint8_t *m, int W, int x0, int y0, int x1, int y1, uint8_t v) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) m[y * W + x] = v;
}

static void test_iou_rules(void) {
    enum { W = 16, H = 16, NPX = W * H };
    uint8_t cond[NPX] = {0}, lab[NPX] = {0};
    float per[4] = {0}, mean = -1;
    tdm_status st = {0};
    fill_rect(cond, W, 0, 0, 4, 4, 1);   /* object 1: 16 px */
    fill_rect(cond, W, 8, 8, 16, 12, 2); /* object 2: 32 px */
    /* identical ids */
    memcpy(lab, cond, NPX);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK && per[0] == 1 && per[1] == 1 &&
          mean == 1);
    /* swapped ids: matched by overlap, not by id */
    for (int i = 0; i < NPX; i++) lab[i] = cond[i] == 1 ? 2 : cond[i] == 2 ? 1 : 0;
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK && per[0] == 1 && per[1] == 1);
    /* a missing object: 0 for it */
    memset(lab, 0, NPX);
    fill_rect(lab, W, 8, 8, 16, 12, 5);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK && per[0] == 0 && per[1] == 1 &&
          mean == 0.5f);
    /* a detection elsewhere (no overlap) does not count */
    fill_rect(lab, W, 10, 0, 14, 4, 3);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK && per[0] == 0);
    /* partial overlap: detection 4x2 inside object 1 (16 px): IoU 8 / 16 */
    memset(lab, 0, NPX);
    fill_rect(lab, W, 0, 0, 4, 2, 1);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK && per[0] == 0.5f && per[1] == 0 &&
          mean == 0.25f);
    /* shifted detection: 4x4 moved by 2 columns: overlap 8, union 24 */
    memset(lab, 0, NPX);
    fill_rect(lab, W, 2, 0, 6, 4, 1);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 1, per, &mean, &st) == TDM_OK && fabsf(per[0] - 8.0f / 24) < 1e-6f);
    /* two detections over object 2: the one of largest overlap (24 px of 32, plus 4 outside) */
    memset(lab, 0, NPX);
    fill_rect(lab, W, 8, 8, 10, 12, 1);  /* 8 px */
    fill_rect(lab, W, 10, 8, 16, 13, 2); /* 30 px, 24 inside */
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK &&
          fabsf(per[1] - 24.0f / (32 + 30 - 24)) < 1e-6f);
    /* two condition objects covered by one detection: both match it */
    memset(lab, 0, NPX);
    fill_rect(lab, W, 0, 0, 16, 16, 7);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 2, per, &mean, &st) == TDM_OK &&
          fabsf(per[0] - 16.0f / 256) < 1e-6f && fabsf(per[1] - 32.0f / 256) < 1e-6f);
    /* no objects; bad count */
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 0, NULL, &mean, &st) == TDM_OK && mean == 0);
    CHECK(tdm_world_placement_iou(cond, lab, NPX, 256, NULL, &mean, &st) == TDM_ERR_INVALID_ARG);
}

/* The condition: white exactly where the render's object-id mask is > 0. */
static void test_condition(void) {
    tdm_status st = {0};
    tdm_world_scene sc;
    CHECK(tdm_world_sample(1001, TDM_SPLIT_TEST, 7, &sc, &st) == TDM_OK);
    uint8_t rgb[64 * 64 * 3], mask[64 * 64], ids[64 * 64];
    CHECK(tdm_world_render(&sc, 64, 64, 4, rgb, mask, &st) == TDM_OK);
    tdm_image cond = {0};
    CHECK(tdm_ceval_condition(&sc, 64, 64, &cond, ids, &st) == TDM_OK && cond.width == 64 && cond.height == 64);
    int ok = cond.pixels != NULL, n_white = 0;
    for (int p = 0; ok && p < 64 * 64; p++) {
        const uint8_t v = mask[p] > 0 ? 255 : 0;
        ok = ids[p] == mask[p] && cond.pixels[p * 3] == v && cond.pixels[p * 3 + 1] == v && cond.pixels[p * 3 + 2] == v;
        n_white += v != 0;
    }
    CHECK(ok && n_white > 50);
    tdm_image_free(&cond);
}

/* ---- the run on tiny models ---- */

typedef struct models {
    tdm_engine *e;
    tdm_model *sd, *lcm;
    tdm_oracle *bright, *checker;
    tdm_controlnet *cn;
} models;

static double fake_clock(void *user) {
    double *t = user;
    *t += 0.25;
    return *t;
}

static int cancel_after(void *user, const tdm_control_eval_progress *pg) { return pg->done >= *(int *)user; }

static const double g_k[2] = {25, 50};

static void base_params(tdm_control_eval_params *p, const models *m, const char *out, double *clk) {
    tdm_control_eval_params_init(p);
    CHECK(p->n == 300 && p->world_seed == 1001 && !strcmp(p->split, "test") && p->control_scale == 1.0f);
    p->n = 4;
    p->seed = 5;
    p->settings.width = p->settings.height = 64;
    p->settings.student.steps = 2;
    p->settings.teacher.steps = 3;
    p->settings.teacher.sampler = "ddim";
    p->settings.teacher.guidance = 7.5f;
    p->controlnet = m->cn;
    p->controlnet_name = "controlnet-sd15-tiny";
    p->oracle = m->bright;
    p->k = g_k;
    p->n_k = 2;
    p->out_dir = out;
    *clk = 0;
    p->clock = fake_clock;
    p->clock_user = clk;
}

static tdm_code run(const models *m, const tdm_control_eval_params *p, tdm_control_eval_summary *sum) {
    tdm_status st = {0};
    tdm_code rc = tdm_control_eval(m->e, m->lcm, m->sd, p, sum, &st);
    if (rc && rc != TDM_ERR_CANCELLED) fprintf(stderr, "control-eval: %s\n", st.msg);
    return rc;
}

/* Checker score and IoU of an image for scene `index` (what the evaluation computes). */
static void score_direct(uint64_t index, const tdm_image *img, float *checker, float *iou) {
    tdm_status st = {0};
    tdm_world_scene sc;
    tdm_world_query q;
    char cap[TDM_CAPTION_MAX];
    uint8_t ids[64 * 64], labels[64 * 64];
    tdm_image cond = {0};
    CHECK(tdm_world_sample(1001, TDM_SPLIT_TEST, index, &sc, &st) == TDM_OK &&
          tdm_world_caption(&sc, 1001, index, cap, sizeof cap, &q, &st) == TDM_OK &&
          tdm_ceval_condition(&sc, 64, 64, &cond, ids, &st) == TDM_OK);
    tdm_image_free(&cond);
    tdm_world_check_result res;
    CHECK(tdm_world_check(&q, img->pixels, 64, 64, &res, &st) == TDM_OK);
    *checker = res.score;
    tdm_world_analysis an;
    CHECK(tdm_world_analyze_labels(img->pixels, 64, 64, &an, labels, &st) == TDM_OK);
    CHECK(tdm_world_placement_iou(ids, labels, 64 * 64, sc.n_objects, NULL, iou, &st) == TDM_OK);
}

/* Scene 1 of the log against direct runs: tdm_generate with the caption, the condition and the seed (student,
 * teacher) and tdm_adaptive_generate with tau = +inf (the refinement). */
static void check_against_direct(const models *m, const char *dir) {
    char path[PATH_MAX];
    tdm_test_path_in(path, sizeof path, dir, "samples.jsonl");
    char *text = tdm_test_read_text(path);
    CHECK(text != NULL);
    if (!text) return;
    int lines = 0;
    cJSON *s1 = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        cJSON *o = cJSON_Parse(line);
        CHECK(o != NULL);
        if (lines == 3) s1 = o; /* header, sample 0, sample 1 */
        else cJSON_Delete(o);
    }
    CHECK(lines == 5);
    if (!s1) {
        free(text);
        return;
    }
    const uint64_t index = 1, seed = 5 + index;
    CHECK(cJSON_GetObjectItem(s1, "scene")->valueint == 1 && cJSON_GetObjectItem(s1, "seed")->valueint == (int)seed);
    const char *caption = cJSON_GetObjectItem(s1, "caption")->valuestring;
    tdm_status st = {0};
    tdm_world_scene sc;
    CHECK(tdm_world_sample(1001, TDM_SPLIT_TEST, index, &sc, &st) == TDM_OK);
    tdm_image cond = {0};
    CHECK(tdm_ceval_condition(&sc, 64, 64, &cond, NULL, &st) == TDM_OK);
    tdm_control c;
    tdm_control_init(&c);
    c.controlnet = m->cn;
    c.image = &cond;
    const char *runs[3] = {"student", "teacher", "refine"};
    for (int r = 0; r < 3; r++) {
        const cJSON *rj = cJSON_GetObjectItem(s1, runs[r]);
        tdm_image img = {0};
        tdm_generate_stats gs;
        memset(&gs, 0, sizeof gs);
        if (r < 2) {
            tdm_generate_params gp;
            tdm_generate_params_init(&gp);
            gp.prompt = caption;
            gp.seed = seed;
            gp.width = gp.height = 64;
            gp.steps = r == 0 ? 2 : 3;
            if (r == 1) gp.sampler = "ddim", gp.guidance_scale = 7.5f;
            gp.controls = &c;
            gp.n_controls = 1;
            CHECK_MSG(tdm_generate(m->e, r == 0 ? m->lcm : m->sd, &gp, &img, &gs, &st) == TDM_OK, "%s", st.msg);
            CHECK(cJSON_GetObjectItem(rj, "unet_evals")->valueint == gs.unet_calls * gs.unet_batch);
            CHECK(cJSON_GetObjectItem(rj, "controlnet_calls")->valueint == gs.controlnet_calls);
        } else {
            tdm_adaptive_params ap;
            tdm_adaptive_params_init(&ap);
            ap.prompt = caption;
            ap.seed = seed;
            ap.width = ap.height = 64;
            ap.student.steps = 2;
            ap.teacher.steps = 3;
            ap.teacher.sampler = "ddim";
            ap.teacher.guidance = 7.5f;
            ap.oracle = m->bright;
            ap.tau = INFINITY;
            ap.controls = &c;
            ap.n_controls = 1;
            tdm_adaptive_result ar;
            CHECK_MSG(tdm_adaptive_generate(m->e, m->lcm, m->sd, &ap, &ar, &st) == TDM_OK, "%s", st.msg);
            CHECK(cJSON_GetObjectItem(rj, "unet_evals")->valueint == ar.unet_evals_teacher);
            CHECK(cJSON_GetObjectItem(rj, "controlnet_calls")->valueint == ar.controlnet_calls_teacher);
            img = ar.image;
            ar.image.pixels = NULL;
            tdm_adaptive_result_free(&ar);
        }
        if (!img.pixels) continue;
        float ck = -1, iou = -1, orc = -1;
        score_direct(index, &img, &ck, &iou);
        tdm_oracle_score(m->bright, caption, &img, &orc, &st);
        CHECK_MSG((float)cJSON_GetObjectItem(rj, "checker")->valuedouble == ck &&
                      (float)cJSON_GetObjectItem(rj, "iou")->valuedouble == iou &&
                      (float)cJSON_GetObjectItem(rj, "oracle")->valuedouble == orc,
                  "%s run of scene 1 differs from the direct run", runs[r]);
        tdm_image_free(&img);
    }
    /* budgets: student LCM 2 steps (2 evals, 2 ControlNet calls), teacher DDIM 3 guided steps (6, 3) */
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "student"), "unet_evals")->valueint == 2);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "teacher"), "unet_evals")->valueint == 6);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s1, "teacher"), "controlnet_calls")->valueint == 3);
    tdm_image_free(&cond);
    cJSON_Delete(s1);
    free(text);
}

static void check_table(const char *dir) {
    char path[PATH_MAX];
    tdm_test_path_in(path, sizeof path, dir, "table.md");
    char *t = tdm_test_read_text(path);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(strstr(t, "| method | k | tau | teacher share | mean checker | mean IoU |") != NULL);
    CHECK(strstr(t, "| student + ControlNet |  |  | - |") && strstr(t, "| teacher + ControlNet |  |  | - |"));
    CHECK(strstr(t, "| refine-all + ControlNet |  |  | 1.000 |") && strstr(t, "| regenerate-all + ControlNet |"));
    /* k = 50 of 4 scores routes 2: 2 + 0.5 x 6 evals, 2 + 0.5 x 3 ControlNet calls */
    const char *row = strstr(t, "| adaptive-refine + ControlNet | 50 |");
    CHECK(row && strstr(row, "| 0.500 |") && strstr(row, "| 5.00 | 3.50 |"));
    /* -best (keep_better) pays the same whichever image it returns */
    row = strstr(t, "| adaptive-refine-best + ControlNet | 50 |");
    CHECK(row && strstr(row, "| 0.500 |") && strstr(row, "| 5.00 | 3.50 |"));
    row = strstr(t, "| adaptive-regenerate-best + ControlNet | 50 |");
    CHECK(row && strstr(row, "| 0.500 |") && strstr(row, "| 5.00 | 3.50 |"));
    CHECK(strstr(t, "| adaptive-regenerate + ControlNet | 25 |") != NULL);
    CHECK(strstr(t, "at least 300 scenes: NOT met, 4 here") && strstr(t, "teacher + ControlNet places the objects: "
                                                                          "mean IoU"));
    CHECK(strstr(t, "adaptive ControlNet generation reaches the teacher's checker score") != NULL);
    free(t);
}

static void test_run(const models *m) {
    char full[PATH_MAX], part[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(full, sizeof full, "%s/ceval-full", tdm_test_tmpdir());
    snprintf(part, sizeof part, "%s/ceval-part", tdm_test_tmpdir());
    tdm_control_eval_params p;
    tdm_control_eval_summary sum;
    double clk;
    base_params(&p, m, full, &clk);
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_samples == 4 && sum.n_resumed == 0);
    check_against_direct(m, full);
    check_table(full);

    /* interrupted after 2 scenes, a torn line appended, resumed: the same files */
    base_params(&p, m, part, &clk);
    int stop = 2;
    p.on_sample = cancel_after;
    p.user = &stop;
    CHECK(run(m, &p, &sum) == TDM_ERR_CANCELLED);
    tdm_test_path_in(a, sizeof a, part, "samples.jsonl");
    FILE *f = fopen(a, "a");
    if (f) {
        fputs("{\"sample\":2,\"scene\":2,\"se", f);
        fclose(f);
    }
    base_params(&p, m, part, &clk);
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 2);
    tdm_test_path_in(b, sizeof b, full, "samples.jsonl");
    CHECK_MSG(tdm_test_same_file(a, b), "resumed log differs");
    tdm_test_path_in(a, sizeof a, part, "table.md");
    tdm_test_path_in(b, sizeof b, full, "table.md");
    CHECK_MSG(tdm_test_same_file(a, b), "resumed table differs");

    /* other settings: refused, naming the setting; restart discards */
    base_params(&p, m, part, &clk);
    p.control_scale = 0.5f;
    tdm_status st = {0};
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "'controlnet' differs") && strstr(st.msg, "--restart"));
    p.n = 1;
    p.restart = 1;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 0);
    /* fewer scenes than logged: the table covers the first n; more: the log is extended */
    base_params(&p, m, full, &clk);
    p.n = 2;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 2);
    p.n = 5;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 4);

    /* the checker as oracle, a calibration file that does not exist, bad params */
    base_params(&p, m, part, &clk);
    p.oracle = m->checker;
    p.restart = 1;
    p.n = 2;
    CHECK(run(m, &p, &sum) == TDM_OK);
    p.calibration = "/nonexistent/calibration.json";
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) != TDM_OK && strstr(st.msg, "calibration"));
    p.calibration = NULL;
    p.split = "nope";
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "split"));
    p.split = "test";
    p.controlnet = NULL;
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG);
    p.controlnet = m->cn;
    p.n = 0;
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG);
    p.n = 2;
    const double bad_k = 100;
    p.k = &bad_k;
    p.n_k = 1;
    CHECK(tdm_control_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG);
}

/* ---- CLI ---- */

static char g_bin[PATH_MAX], g_cn[PATH_MAX];

#define CLI(code, needle, args) TDM_TEST_CLI(g_bin, 1, code, needle, args)

static void test_cli(void) {
    if (access(g_bin, X_OK) != 0) {
        printf("CLI part skipped: %s is absent\n", g_bin);
        return;
    }
    char base[PATH_MAX + 512], args[2 * PATH_MAX + 1024];
    snprintf(base, sizeof base,
             "control-eval --model tiny-lcm --teacher tiny-sd --controlnet '%s' --width 64 --height 64 --steps 2 "
             "--teacher-steps 2 --oracle brightness",
             g_cn);
    snprintf(args, sizeof args, "%s --n 2 --k 30,60 --out cli-ceval -q", base);
    CLI(0, "", args);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/cli-ceval/table.md", tdm_test_tmpdir());
    char *t = tdm_test_read_text(p);
    CHECK(t && strstr(t, "| adaptive-refine + ControlNet | 60 |") && strstr(t, "mean IoU"));
    free(t);
    snprintf(args, sizeof args, "%s --n 2 --k 30,60 --out cli-ceval", base);
    CLI(0, "resumed after 2 of 2 scenes", args);
    snprintf(args, sizeof args, "%s --n 2 --control-scale 0.5 --out cli-ceval", base);
    CLI(1, "other settings ('controlnet' differs", args);
    snprintf(args, sizeof args, "%s --n 2 --out x --k 0", base);
    CLI(2, "--k: 0 is outside (0, 100)", args);
    snprintf(args, sizeof args, "%s --n 2 --out x --split dev", base);
    CLI(2, "--split: 'dev'", args);
    snprintf(args, sizeof args, "%s --n 2 --out x --prompt hi", base);
    CLI(2, "the prompts and conditions are the world scenes'", args);
    snprintf(args, sizeof args, "%s --n 2", base);
    CLI(2, "are required", args);
    snprintf(args, sizeof args, "%s --n 2 --out x --control-start 0.5 --control-end 0.5", base);
    CLI(2, "must be below", args);
    snprintf(args, sizeof args, "%s --n 2 --out x --oracle nonsense", base);
    CLI(1, "unknown oracle 'nonsense'", args);
    snprintf(args, sizeof args, "%s --n 1 --out x --student-lora nolora.safetensors", base);
    CLI(1, "nolora.safetensors", args); /* the LoRA student: its file is loaded (and named when missing) */
    CLI(0, "", "control-eval --help");
}

int main(int argc, char **argv) {
    (void)argc;
    tdm_test_cli_path(argv[0], 1, g_bin, sizeof g_bin);
    test_label_map();
    test_iou_rules();
    test_condition();
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny"); /* static buffer: copied before the next call */
    if (fx) snprintf(g_cn, sizeof g_cn, "%s/model", fx);
    if (!fx || !tdm_test_tiny_present()) {
        printf("tiny-model parts skipped: fixtures absent\n");
        return tdm_test_result();
    }
    char real_cn[PATH_MAX];
    if (realpath(g_cn, real_cn)) snprintf(g_cn, sizeof g_cn, "%s", real_cn); /* the CLI runs in the temp dir */
    models m = {0};
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = 2;
    tdm_status st = {0};
    CHECK(tdm_engine_create(&ep, &m.e, &st) == TDM_OK);
    tdm_test_tiny_pair(&m.sd, &m.lcm, &st);
    CHECK(tdm_oracle_open("brightness", NULL, m.e, &m.bright, &st) == TDM_OK);
    CHECK(tdm_oracle_open("checker", NULL, m.e, &m.checker, &st) == TDM_OK);
    CHECK(tdm_controlnet_load(g_cn, &m.cn, &st) == TDM_OK);
    if (!m.sd || !m.lcm || !m.e || !m.bright || !m.checker || !m.cn) {
        fprintf(stderr, "setup: %s\n", st.msg);
        return 1;
    }
    test_run(&m);
    test_cli();
    tdm_controlnet_free(m.cn);
    tdm_oracle_free(m.bright);
    tdm_oracle_free(m.checker);
    tdm_model_free(m.sd);
    tdm_model_free(m.lcm);
    tdm_engine_free(m.e);
    return tdm_test_result();
}
