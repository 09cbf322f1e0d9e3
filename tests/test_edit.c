/* Adaptive SDEdit editing (docs/EDITING.md) on tiny models assembled from the fixtures (student: the LCM tiny
 * UNet, teacher: the SD1.5 tiny UNet, both with vae-sd-tiny): the edit pair generator (one attribute changed,
 * captions parse, held-out rule, preservation), the size rule, bad images, keep / refine / regenerate of an
 * edit (the student's and the teacher's edits are tdm_generate's img2img bit for bit), determinism, the
 * one-model baselines, the measures, a small resumable edit-eval and the CLI. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/edit.h"
#include "pipeline/eval_common.h"
#include "pipeline/eval_edit.h"
#include "pipeline/generate.h"
#include "tandem.h"
#include "world/checker.h"
#include "world/edit_pairs.h"
#include "cli_util.h"
#include "eval_test_util.h"
#include "test_util.h"

static char g_bin[PATH_MAX];
#define CLI(code, needle, args) TDM_TEST_CLI(g_bin, 0, code, needle, args)



static void render(const tdm_world_scene *sc, int W, int H, tdm_image *img) {
    tdm_status st = {0};
    CHECK(tdm_image_alloc(img, W, H, &st) == TDM_OK);
    CHECK(tdm_world_render(sc, W, H, 4, img->pixels, NULL, &st) == TDM_OK);
}

static void analyze(const tdm_image *img, tdm_world_analysis *an) {
    tdm_status st = {0};
    CHECK(tdm_world_analyze(img->pixels, img->width, img->height, an, &st) == TDM_OK);
}

/* Fields of two full queries that differ (objects in scene order). */
static int n_differences(const tdm_world_query *a, const tdm_world_query *b) {
    int n = (a->background != b->background) + (a->relation != b->relation) + (a->n_objects != b->n_objects);
    for (int i = 0; i < 2; i++)
        n += (a->obj[i].colour != b->obj[i].colour) + (a->obj[i].shape != b->obj[i].shape) +
             (a->obj[i].size != b->obj[i].size) + (a->obj[i].position != b->obj[i].position);
    return n;
}

static int n_open(const tdm_world_query *q) {
    int n = (q->background == TDM_ANY) + (q->n_objects == 2 && q->relation == TDM_ANY);
    for (int i = 0; i < q->n_objects; i++)
        n += (q->obj[i].colour == TDM_ANY) + (q->obj[i].size == TDM_ANY) + (q->n_objects == 1 && q->obj[i].position == TDM_ANY);
    return n;
}

/* Keep queries stating the same (two objects in either order, the relation seen from the other side). */
static int same_keep(const tdm_world_query *a, const tdm_world_query *b) {
    if (tdm_world_query_equal(a, b)) return 1;
    if (a->n_objects != 2) return 0;
    tdm_world_query s = *a;
    s.obj[0] = a->obj[1];
    s.obj[1] = a->obj[0];
    s.relation = a->relation == TDM_ANY ? TDM_ANY : tdm_relation_inverse(a->relation);
    return memcmp(&s, b, sizeof s) == 0 || tdm_world_query_equal(&s, b);
}

/* ---- pairs ---- */

static void test_pairs(void) {
    tdm_status st = {0};
    int kinds[TDM_WORLD_N_EDIT_KINDS] = {0}, n = 200, render_ok = 0, infer_ok = 0, target_success = 0,
        source_fails = 0, held = 0;
    for (int i = 0; i < n; i++) {
        tdm_world_edit_pair a, b;
        CHECK(tdm_world_edit_pair_make(1001, (uint64_t)i, &a, &st) == TDM_OK);
        CHECK(tdm_world_edit_pair_make(1001, (uint64_t)i, &b, &st) == TDM_OK);
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "pair %d is not deterministic", i);
        kinds[a.kind]++;
        held += a.held_out;
        /* both the source and the target are test-split combinations (the held-out rule) */
        CHECK(tdm_world_split(&a.source) == TDM_SPLIT_TEST && tdm_world_split(&a.target) == TDM_SPLIT_TEST);
        /* exactly one attribute changed; the keep query leaves exactly it open */
        tdm_world_query sq;
        tdm_world_scene_query(&a.source, &sq);
        CHECK_MSG(n_differences(&sq, &a.target_query) == 1, "pair %d (%s) changes %d attributes", i, a.instruction,
                  n_differences(&sq, &a.target_query));
        CHECK(n_open(&a.keep) == 1);
        /* the captions parse back to the queries */
        tdm_world_query parsed;
        CHECK_MSG(tdm_world_parse(a.caption, &parsed, &st) == TDM_OK && tdm_world_query_equal(&parsed, &a.target_query),
                  "pair %d: caption '%s' does not parse to the target", i, a.caption);
        CHECK(tdm_world_parse(a.source_caption, &parsed, &st) == TDM_OK && tdm_world_query_equal(&parsed, &sq));
        CHECK(strncmp(a.instruction, "make the ", 9) == 0 || strncmp(a.instruction, "move the ", 9) == 0);
        /* colours stay distinct from the background and from each other */
        for (int o = 0; o < a.target.n_objects; o++) CHECK(a.target.obj[o].colour != a.target.background);
        if (a.target.n_objects == 2) CHECK(a.target.obj[0].colour != a.target.obj[1].colour);
        const int h = tdm_world_pair_held_out(a.source.obj[0].colour, a.source.obj[0].shape) ||
                      (a.source.n_objects == 2 && tdm_world_pair_held_out(a.source.obj[1].colour, a.source.obj[1].shape)) ||
                      tdm_world_pair_held_out(a.target.obj[0].colour, a.target.obj[0].shape) ||
                      (a.target.n_objects == 2 && tdm_world_pair_held_out(a.target.obj[1].colour, a.target.obj[1].shape));
        CHECK(h == a.held_out);
        /* renders: the target satisfies the caption and keeps the source's other attributes; the source fails
         * the caption; the keep query inferred from the source's analysis is the pair's */
        tdm_image si = {0}, ti = {0};
        render(&a.source, 64, 64, &si);
        render(&a.target, 64, 64, &ti);
        tdm_world_analysis as, at;
        analyze(&si, &as);
        analyze(&ti, &at);
        tdm_world_check_result res;
        tdm_world_score(&a.target_query, &at, &res);
        target_success += res.score >= 1.0f;
        tdm_world_score(&a.target_query, &as, &res);
        source_fails += res.score < 1.0f;
        render_ok += tdm_world_preserved(&a.keep, &at, NULL, NULL, NULL, 0);
        tdm_world_query keep;
        char changed[192];
        if (tdm_world_keep_query_infer(&as, &a.target_query, &keep, changed, sizeof changed, &st) == TDM_OK &&
            same_keep(&keep, &a.keep))
            infer_ok++;
        else if (getenv("TDM_TEST_VERBOSE"))
            printf("pair %d (%s): keep query not inferred (changed: %s)\n", i, a.instruction, changed);
        tdm_image_free(&si);
        tdm_image_free(&ti);
    }
    printf("pairs: colour %d, position %d, size %d, background %d; held-out %d; target renders: success %d, "
           "preserved %d; source fails the caption %d; keep query inferred %d (of %d)\n",
           kinds[0], kinds[1], kinds[2], kinds[3], held, target_success, render_ok, source_fails, infer_ok, n);
    for (int k = 0; k < TDM_WORLD_N_EDIT_KINDS; k++) CHECK(kinds[k] > 0);
    CHECK(kinds[0] > n / 5 && kinds[1] > n / 5);
    CHECK(target_success >= n * 95 / 100 && render_ok >= n * 95 / 100 && source_fails >= n * 95 / 100);
    CHECK(infer_ok >= n * 90 / 100);

    /* an edit that changed another attribute is not preserved */
    tdm_world_edit_pair a;
    for (int i = 0;; i++) {
        CHECK(tdm_world_edit_pair_make(1001, (uint64_t)i, &a, &st) == TDM_OK);
        if (a.kind == TDM_WORLD_EDIT_COLOUR || i > 50) break;
    }
    CHECK(a.kind == TDM_WORLD_EDIT_COLOUR);
    tdm_world_scene wrong = a.target;
    wrong.background = wrong.background == TDM_GRAY ? TDM_WHITE : TDM_GRAY;
    for (int o = 0; o < wrong.n_objects; o++)
        if (wrong.obj[o].colour == wrong.background) wrong.background = TDM_BLACK;
    tdm_image wi = {0};
    render(&wrong, 64, 64, &wi);
    tdm_world_analysis aw;
    analyze(&wi, &aw);
    char lost[192];
    int kept = 0, checked = 0;
    CHECK(tdm_world_preserved(&a.keep, &aw, &kept, &checked, lost, sizeof lost) == 0);
    CHECK_MSG(strstr(lost, "background") != NULL && kept == checked - 1, "lost '%s' %d/%d", lost, kept, checked);
    tdm_image_free(&wi);
    CHECK(tdm_world_edit_pair_make(1001, 1ull << 40, &a, &st) == TDM_ERR_INVALID_ARG);
}

/* ---- size rule and bad images (tiny model: default side 128, multiple 8) ---- */

static void size_is(const tdm_model *m, int w, int h, int ew, int eh, int eresized) {
    tdm_status st = {0};
    int W = 0, H = 0, r = -1;
    CHECK_MSG(tdm_edit_size(m, w, h, &W, &H, &r, &st) == TDM_OK && W == ew && H == eh && r == eresized,
              "%dx%d -> %dx%d (resized %d), expected %dx%d (%d): %s", w, h, W, H, r, ew, eh, eresized, st.msg);
}

static void test_size_rule(const tdm_model *m) {
    size_is(m, 64, 64, 64, 64, 0);
    size_is(m, 128, 96, 128, 96, 0);
    size_is(m, 256, 256, 256, 256, 0);  /* at most 2 x 128 */
    size_is(m, 264, 256, 128, 128, 1);  /* 264 > 256: short side -> 128, long 132 -> 128 */
    size_is(m, 300, 200, 192, 128, 1);  /* 300 * 128 / 200 = 192 */
    size_is(m, 200, 300, 128, 192, 1);
    size_is(m, 65, 64, 128, 128, 1);    /* not a multiple of 8 */
    size_is(m, 7, 7, 128, 128, 1);
    size_is(m, 1000, 10, 256, 128, 1);  /* long side capped at 256 */
    tdm_status st = {0};
    int W, H;
    CHECK(tdm_edit_size(m, 0, 64, &W, &H, NULL, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "empty"));

    /* prepare: kept images are copies; cropped ones take the centre */
    tdm_image src = {0}, out = {0};
    CHECK(tdm_image_alloc(&src, 1000, 10, &st) == TDM_OK);
    for (int x = 0; x < 1000; x++)
        for (int y = 0; y < 10; y++) {
            uint8_t *px = src.pixels + ((size_t)y * 1000 + x) * 3;
            px[0] = x >= 490 && x < 510 ? 200 : 10; /* the centre 20 columns are bright */
            px[1] = px[2] = 50;
        }
    CHECK(tdm_edit_prepare_image(m, &src, 0, 0, &out, &st) == TDM_OK && out.width == 256 && out.height == 128);
    if (out.pixels) CHECK(out.pixels[(64 * 256 + 128) * 3] > 150); /* the crop is the bright centre */
    tdm_image_free(&out);
    tdm_image_free(&src);
    CHECK(tdm_image_alloc(&src, 64, 64, &st) == TDM_OK);
    memset(src.pixels, 77, 64 * 64 * 3);
    CHECK(tdm_edit_prepare_image(m, &src, 0, 0, &out, &st) == TDM_OK && tdm_test_same_image(&src, &out));
    tdm_image_free(&out);
    CHECK(tdm_edit_prepare_image(m, &src, 96, 64, &out, &st) == TDM_OK && out.width == 96 && out.height == 64);
    tdm_image_free(&out);
    CHECK(tdm_edit_prepare_image(m, &src, 96, 0, &out, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "both"));
    CHECK(tdm_edit_prepare_image(m, &src, 60, 60, &out, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "multiples of 8"));
    tdm_image empty = {0, 0, 3, NULL};
    CHECK(tdm_edit_prepare_image(m, &empty, 0, 0, &out, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "empty"));
    tdm_image nopix = {64, 64, 3, NULL};
    CHECK(tdm_edit_prepare_image(m, &nopix, 0, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    tdm_image_free(&src);

    /* corrupt and truncated files give a clear error */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/corrupt.png", tdm_test_tmpdir());
    tdm_test_write_file(path, "\x89PNG\r\n\x1a\nthis is not a png", 25);
    tdm_image img = {0};
    CHECK(tdm_image_load(path, &img, &st) == TDM_ERR_FORMAT && strstr(st.msg, "corrupt.png"));
    snprintf(path, sizeof path, "%s/text.png", tdm_test_tmpdir());
    tdm_test_write_file(path, "hello", 5);
    CHECK(tdm_image_load(path, &img, &st) != TDM_OK && strstr(st.msg, "text.png"));
}

/* ---- decisions ---- */

typedef struct models {
    tdm_engine *e1, *e2;
    tdm_model *sd, *lcm;
} models;

static tdm_code fixed_oracle(void *user, const char *prompt, const tdm_image *image, float *score, tdm_status *st) {
    (void)prompt;
    (void)image;
    (void)st;
    *score = *(const float *)user;
    return TDM_OK;
}

static void edit_params(tdm_adaptive_params *p, tdm_oracle *o, const tdm_image *src) {
    tdm_adaptive_params_init(p);
    p->prompt = "a blue circle on the left";
    p->seed = 7;
    p->student.steps = 2;
    p->teacher.steps = 4;
    p->teacher.sampler = "ddim";
    p->teacher.guidance = 7.5f;
    p->oracle = o;
    p->init_image = src;
    p->strength = 0.6f;
}

static tdm_code edit(tdm_engine *e, const models *m, const tdm_adaptive_params *p, tdm_adaptive_result *r) {
    tdm_status st = {0};
    tdm_code rc = tdm_adaptive_generate(e, m->lcm, m->sd, p, r, &st);
    if (rc) fprintf(stderr, "edit: %s\n", st.msg);
    return rc;
}

static void test_decisions(const models *m, const tdm_image *src) {
    float score = 0.5f;
    tdm_oracle *o = NULL;
    tdm_status st = {0};
    CHECK(tdm_oracle_from_fn("fixed", fixed_oracle, &score, &o, &st) == TDM_OK);
    tdm_adaptive_params p;
    edit_params(&p, o, src);
    p.keep_student_image = 1;
    /* plain img2img of both models, for comparison */
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = p.prompt;
    gp.seed = p.seed;
    gp.init_image = src;
    gp.strength = 0.6f;
    gp.steps = 2;
    tdm_image student = {0}, teacher = {0};
    CHECK(tdm_generate(m->e1, m->lcm, &gp, &student, NULL, &st) == TDM_OK);
    gp.steps = 4;
    gp.sampler = "ddim";
    gp.guidance_scale = 7.5f;
    tdm_generate_stats ts;
    CHECK(tdm_generate(m->e1, m->sd, &gp, &teacher, &ts, &st) == TDM_OK);

    /* keep: the student's edit = tdm_generate's img2img */
    tdm_adaptive_result r;
    p.tau = 0.4;
    CHECK(edit(m->e1, m, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_KEEP && r.unet_evals_teacher == 0);
    CHECK_MSG(tdm_test_same_image(&r.image, &student), "the kept edit is not the student's img2img");
    CHECK(r.parameters && strstr(r.parameters, "Denoising strength: 0.6"));
    cJSON *j = cJSON_Parse(r.metadata_json);
    cJSON *ed = j ? cJSON_GetObjectItem(j, "edit") : NULL;
    CHECK(ed && cJSON_GetObjectItem(ed, "source_width")->valueint == src->width &&
          cJSON_GetObjectItem(ed, "strength")->valuedouble == 0.6 &&
          strcmp(cJSON_GetObjectItem(ed, "fit")->valuestring, "kept") == 0 &&
          strcmp(cJSON_GetObjectItem(ed, "mode")->valuestring, "adaptive") == 0);
    cJSON_Delete(j);
    tdm_adaptive_result_free(&r);

    /* refine: the teacher refines the student's edit (T = 4 guided steps) */
    p.tau = 0.6;
    CHECK(edit(m->e1, m, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REFINE && r.refine_steps == 4 && r.unet_evals_teacher == 8);
    CHECK(tdm_test_same_image(&r.student_image, &student) && !tdm_test_same_image(&r.image, &student));
    tdm_image refined = r.image;
    r.image.pixels = NULL;
    tdm_adaptive_result_free(&r);
    /* deterministic: same seed, and 2 threads, give the same edit */
    CHECK(edit(m->e2, m, &p, &r) == TDM_OK);
    CHECK_MSG(tdm_test_same_image(&r.image, &refined), "the refined edit differs between runs / thread counts");
    tdm_adaptive_result_free(&r);
    p.seed = 8;
    CHECK(edit(m->e1, m, &p, &r) == TDM_OK);
    CHECK(!tdm_test_same_image(&r.image, &refined));
    tdm_adaptive_result_free(&r);
    p.seed = 7;
    tdm_image_free(&refined);

    /* regenerate: the teacher edits the source from the same noise = the teacher's own img2img */
    p.strategy = TDM_ADAPTIVE_REGENERATE;
    CHECK(edit(m->e1, m, &p, &r) == TDM_OK);
    CHECK(r.decision == TDM_DECISION_REGENERATE && r.unet_calls_teacher == ts.unet_calls);
    CHECK_MSG(tdm_test_same_image(&r.image, &teacher), "the regenerated edit is not the teacher's img2img");
    tdm_adaptive_result_free(&r);

    /* one-model baselines */
    p.strategy = TDM_ADAPTIVE_REFINE;
    CHECK(tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_STUDENT_ONLY, &r, &st) == TDM_OK);
    CHECK(tdm_test_same_image(&r.image, &student) && r.oracle_score == 0.5f && r.unet_evals_teacher == 0);
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"mode\":\"student-only\""));
    tdm_adaptive_result_free(&r);
    p.oracle = NULL;
    p.oracle_name = NULL;
    CHECK(tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_TEACHER_ONLY, &r, &st) == TDM_OK);
    CHECK(tdm_test_same_image(&r.image, &teacher) && isnan(r.oracle_score) && r.unet_evals_student == 0 &&
          r.unet_evals_teacher == ts.unet_calls * ts.unet_batch);
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"oracle\":null") && strstr(r.metadata_json, "teacher-only"));
    tdm_adaptive_result_free(&r);
    p.oracle = o;

    /* the size rule inside a run: 70x50 -> short side 128, long side 179 -> 176 */
    tdm_image odd = {0};
    CHECK(tdm_image_resize(src, 70, 50, TDM_RESAMPLE_LANCZOS, &odd, &st) == TDM_OK);
    p.init_image = &odd;
    p.tau = 0.4;
    p.student.steps = 1;
    CHECK(edit(m->e1, m, &p, &r) == TDM_OK && r.image.width == 176 && r.image.height == 128);
    CHECK(r.metadata_json && strstr(r.metadata_json, "\"source_width\":70") &&
          strstr(r.metadata_json, "cropped and resized"));
    tdm_adaptive_result_free(&r);
    tdm_image_free(&odd);

    /* bad input */
    p.init_image = src;
    p.strength = 0.0f;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "strength"));
    p.strength = 1.5f;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG);
    p.strength = 0.6f;
    tdm_image empty = {0, 0, 3, NULL};
    p.init_image = &empty;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "empty"));
    CHECK(tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_TEACHER_ONLY, &r, &st) == TDM_ERR_INVALID_ARG);
    p.init_image = NULL;
    CHECK(tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_ADAPTIVE, &r, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "source image"));
    tdm_image_free(&student);
    tdm_image_free(&teacher);
    tdm_oracle_free(o);
}

/* ---- measures ---- */

static void test_measure(void) {
    tdm_status st = {0};
    tdm_world_edit_pair a;
    CHECK(tdm_world_edit_pair_make(1001, 0, &a, &st) == TDM_OK);
    tdm_image si = {0}, ti = {0};
    render(&a.source, 64, 64, &si);
    render(&a.target, 64, 64, &ti);
    tdm_edit_quality q;
    CHECK(tdm_edit_measure(&si, &ti, a.caption, NULL, &q, &st) == TDM_OK);
    CHECK(q.has_checker && q.checker == 1.0f && q.world_preserved == 1 && isnan(q.similarity));
    CHECK_MSG(q.world_changed[0] && q.world_kept == q.world_checked, "changed '%s' %d/%d", q.world_changed,
              q.world_kept, q.world_checked);
    CHECK(tdm_edit_measure(&si, &si, a.caption, NULL, &q, &st) == TDM_OK && q.checker < 1.0f && q.world_preserved == 1);
    CHECK(tdm_edit_measure(&si, &ti, "a photo of a cat", NULL, &q, &st) == TDM_OK && !q.has_checker &&
          q.world_preserved == -1 && strstr(q.world_note, "not a shapes-world caption"));
    const char *cv = tdm_test_fixture("clip-vision-tiny");
    if (cv) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/model", cv);
        tdm_image_similarity *sim = NULL;
        CHECK_MSG(tdm_image_similarity_open(dir, NULL, &sim, &st) == TDM_OK, "%s", st.msg);
        if (sim) {
            double c_same = 0, c_edit = 0;
            CHECK(tdm_image_similarity_cosine(sim, &si, &si, &c_same, &st) == TDM_OK && fabs(c_same - 1.0) < 1e-5);
            CHECK(tdm_edit_measure(&si, &ti, a.caption, sim, &q, &st) == TDM_OK && isfinite(q.similarity));
            c_edit = q.similarity;
            printf("similarity (clip-vision-tiny): source vs source %.6f, source vs target %.6f\n", c_same, c_edit);
            CHECK(c_edit < 1.0 && c_edit > -1.0);
            tdm_image_similarity_free(sim);
        }
    }
    tdm_image_similarity *bad = NULL;
    CHECK(tdm_image_similarity_open("no/such/clip", NULL, &bad, &st) != TDM_OK && strstr(st.msg, "no/such/clip"));
    tdm_image_free(&si);
    tdm_image_free(&ti);
}

/* ---- edit-eval ---- */

static double fake_clock(void *user) {
    double *t = user;
    *t += 0.25;
    return *t;
}

static int cancel_after_one(void *user, const tdm_edit_eval_progress *pg) {
    (void)user;
    return pg->done >= 1;
}

static char *slurp(const char *dir, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf = NULL;
    size_t len = 0;
    tdm_status st = {0};
    if (tdm_read_file(path, (size_t)1 << 26, &buf, &len, &st)) return NULL;
    return buf;
}

/* The table's acceptance line on made-up pairs (4 pairs, k 50 at tau 0.5): the teacher-only edit succeeds on
 * two; the student keeps pairs 0-1 (oracle >= tau, success) and routes 2-3 to a refinement that succeeds, so
 * adaptive-refine reaches 100% success at 4 + 20 / 2 = 14 evaluations against the teacher's 74: PASS while the
 * refinements preserve the source, FAIL (naming the success-only row) when they do not; fewer than 300 pairs
 * is said. The preservation by kind table is there. */
static void test_acceptance_line(void) {
    tdm_eeval_pair pairs[4];
    memset(pairs, 0, sizeof pairs);
    const int S = TDM_EVAL_RUN_STUDENT, T = TDM_EVAL_RUN_TEACHER, R = TDM_EVAL_RUN_REFINE;
    for (int i = 0; i < 4; i++) {
        tdm_eeval_pair *p = &pairs[i];
        p->base.prompt_index = i;
        p->base.has_checker = 1;
        p->kind = i % TDM_WORLD_N_EDIT_KINDS;
        p->base.oracle[S] = i < 2 ? 0.9f : 0.1f;
        p->base.oracle[T] = p->base.oracle[R] = 0.5f;
        p->base.checker[S] = i < 2 ? 1.0f : 0.5f;
        p->base.checker[T] = i % 2 ? 1.0f : 0.5f;
        p->base.checker[R] = 1.0f;
        p->base.evals[S] = 4;
        p->base.evals[T] = 74;
        p->base.evals[R] = 20;
        for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
            p->preserved[r] = 1;
            p->kept[r] = p->checked[r] = 6;
            p->similarity[r] = NAN;
        }
    }
    const double k = 50, tau = 0.5;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/eeval-accept", tdm_test_tmpdir());
    tdm_status st = {0};
    CHECK(tdm_evalc_make_dir(dir, &st) == TDM_OK);
    tdm_eeval_report_in in = {dir, 1001, pairs, 4, 1, &k, &tau, 1, "made-up scores", "settings", ""};
    for (int pass = 1; pass >= 0; pass--) {
        pairs[2].preserved[R] = pairs[3].preserved[R] = pass;
        CHECK_MSG(tdm_eeval_write_report(&in, &st) == TDM_OK, "%s", st.msg);
        char *table = slurp(dir, "table.md");
        CHECK(table && strstr(table, "Preserved (every unchanged attribute kept) by edit kind") &&
              strstr(table, "at least 300 pairs: NOT met, 4 here") && strstr(table, "teacher-only success (50.0%)"));
        const char *want = pass ? "**PASS** with adaptive-refine k = 50: success 100.0%, preserved 100.0%, 14.0 UNet"
                                : "**FAIL** - the success alone with adaptive-refine k = 50: success 100.0%, preserved 50.0%";
        CHECK_MSG(table && strstr(table, want), "acceptance line: %s", want);
        free(table);
    }
}

/* Layout-guided edit evaluation (controlnet-sd15-tiny; skipped without it): the header names the ControlNet and
 * its condition (so an unguided log is not resumed); at scale 0 every run equals the unguided run (a zero
 * residual), at scale 1 the ControlNet changes the edits; a bad scale is refused. p: a finished 2-pair setup. */
static void test_edit_eval_control(const models *m, tdm_edit_eval_params *p) {
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny");
    if (!fx) {
        printf("layout-guided edit-eval skipped: controlnet-sd15-tiny absent\n");
        return;
    }
    char path[PATH_MAX], dir0[PATH_MAX], dir1[PATH_MAX], dir2[PATH_MAX];
    snprintf(path, sizeof path, "%s/model", fx);
    snprintf(dir0, sizeof dir0, "%s/eeval-cn0", tdm_test_tmpdir());
    snprintf(dir1, sizeof dir1, "%s/eeval-cn1", tdm_test_tmpdir());
    snprintf(dir2, sizeof dir2, "%s/eeval-plain", tdm_test_tmpdir());
    tdm_status st = {0};
    tdm_controlnet *cn = NULL;
    CHECK_MSG(tdm_controlnet_load(path, &cn, &st) == TDM_OK, "%s", st.msg);
    if (!cn) return;
    tdm_eval_summary sum;
    const char *out_dir = p->out_dir; /* restored at the end: dir0..dir2 live in this frame */
    p->n = 2;
    p->out_dir = dir2; /* unguided */
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, p, &sum, &st) == TDM_OK, "%s", st.msg);
    p->controlnet = cn;
    p->controlnet_name = "controlnet-sd15-tiny";
    p->control_scale = 0.0f;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "controlnet"));
    p->out_dir = dir0;
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, p, &sum, &st) == TDM_OK, "%s", st.msg);
    p->control_scale = 1.0f;
    p->out_dir = dir1;
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, p, &sum, &st) == TDM_OK, "%s", st.msg);
    char *plain = slurp(dir2, "results.jsonl"), *r0 = slurp(dir0, "results.jsonl"), *r1 = slurp(dir1, "results.jsonl");
    char *log1 = slurp(dir1, "pairs.jsonl");
    CHECK(log1 && strstr(log1, "\"condition\":\"segmentation of the target scene\"") && strstr(log1, "\"scale\":1"));
    char *log_plain = slurp(dir2, "pairs.jsonl"); /* ControlNet calls are logged for guided runs only */
    CHECK(log1 && strstr(log1, "\"controlnet_calls\":") && log_plain && !strstr(log_plain, "controlnet_calls"));
    free(log_plain);
    CHECK_MSG(plain && r0 && strcmp(plain, r0) == 0, "scale 0 differs from the unguided run");
    CHECK_MSG(plain && r1 && strcmp(plain, r1) != 0, "scale 1 equals the unguided run");
    p->control_scale = -1.0f;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "control scale"));
    p->control_scale = 1.0f;
    p->controlnet = NULL;
    p->controlnet_name = NULL;
    p->out_dir = out_dir;
    free(plain);
    free(r0);
    free(r1);
    free(log1);
    tdm_controlnet_free(cn);
}

static void test_edit_eval(const models *m) {
    tdm_status st = {0};
    tdm_oracle *o = NULL;
    CHECK(tdm_oracle_open("brightness", NULL, NULL, &o, &st) == TDM_OK);
    const double ks[1] = {50};
    double clock_a = 0, clock_b = 0;
    tdm_edit_eval_params p;
    tdm_edit_eval_params_init(&p);
    CHECK(p.world_seed == 1001 && p.settings.strength == 0.75f);
    p.n = 3;
    p.settings.width = p.settings.height = 64;
    p.settings.student.steps = 1;
    p.settings.teacher.steps = 2;
    p.settings.teacher.sampler = "ddim";
    p.settings.teacher.guidance = 7.5f;
    p.oracle = o;
    p.k = ks;
    p.n_k = 1;
    p.clock = fake_clock;
    p.clock_user = &clock_a;
    char dir_a[PATH_MAX], dir_b[PATH_MAX];
    snprintf(dir_a, sizeof dir_a, "%s/eeval-a", tdm_test_tmpdir());
    snprintf(dir_b, sizeof dir_b, "%s/eeval-b", tdm_test_tmpdir());
    p.out_dir = dir_a;
    tdm_eval_summary sum;
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_OK, "%s", st.msg);
    CHECK(sum.n_samples == 3 && sum.n_resumed == 0);
    char *results = slurp(dir_a, "results.jsonl"), *table = slurp(dir_a, "table.md"), *log = slurp(dir_a, "pairs.jsonl");
    CHECK(results && table && log);
    if (results) {
        int lines = 0;
        for (const char *c = results; *c; c++) lines += *c == '\n';
        /* student, teacher, refine-all, regenerate-all, 4 adaptive (refine, regenerate and their -best) */
        CHECK_MSG(lines == 3 * 8, "%d result lines", lines);
        CHECK(strstr(results, "\"method\":\"adaptive-refine\"") && strstr(results, "\"instruction\":\"m"));
        CHECK(strstr(results, "\"method\":\"adaptive-regenerate-best\"") && strstr(results, "\"selected\":"));
    }
    if (table) {
        CHECK(strstr(table, "| adaptive-regenerate | 50 |") && strstr(table, "success") && strstr(table, "preserved") &&
              strstr(table, "attributes kept"));
        printf("%s", table);
    }
    if (table && log) { /* "attributes kept" of the teacher-only row: its kept / checked summed over the log */
        double kept = 0, checked = 0;
        for (const char *line = strchr(log, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
            cJSON *lo = cJSON_Parse(line + 1); /* parses up to the line's end */
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(lo, "teacher");
            kept += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "kept"));
            checked += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "checked"));
            cJSON_Delete(lo);
        }
        char want[64];
        snprintf(want, sizeof want, "| %.1f%% |", 100.0 * kept / checked);
        const char *row = strstr(table, "| teacher | - |"), *end = row ? strchr(row, '\n') : NULL;
        const char *hit = row ? strstr(row, want) : NULL;
        CHECK_MSG(checked > 0 && hit && hit < end, "teacher row lacks %s (%.0f / %.0f)", want, kept, checked);
    }
    /* the same run interrupted after one pair and resumed writes the same files */
    p.out_dir = dir_b;
    p.clock_user = &clock_b;
    clock_b = 0;
    p.on_pair = cancel_after_one;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_CANCELLED);
    p.on_pair = NULL;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_OK && sum.n_resumed == 1);
    char *results_b = slurp(dir_b, "results.jsonl"), *table_b = slurp(dir_b, "table.md"), *log_b = slurp(dir_b, "pairs.jsonl");
    CHECK(results && results_b && strcmp(results, results_b) == 0);
    CHECK(table && table_b && strcmp(table, table_b) == 0);
    CHECK(log && log_b && strcmp(log, log_b) == 0);
    /* other settings are refused, naming the setting */
    p.settings.strength = 0.5f;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "'strength'"));
    p.settings.strength = 0.75f;
    /* masked editing: the student's edit carries the region's 2 x maps evaluations, the teacher-only one not;
     * the log records the area; a masked run does not resume an unmasked log */
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_OK); /* complete: nothing to run */
    p.masked = 1;
    p.settings.mask_maps = 2;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "mask"));
    char dir_c[PATH_MAX];
    snprintf(dir_c, sizeof dir_c, "%s/eeval-c", tdm_test_tmpdir());
    p.out_dir = dir_c;
    p.n = 2;
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_OK, "%s", st.msg);
    char *log_c = slurp(dir_c, "pairs.jsonl");
    const char *pair0 = log_c ? strchr(log_c, '\n') : NULL; /* the first pair's line (after the header) */
    const char *stu = pair0 ? strstr(pair0, "\"student\":{") : NULL, *tea = pair0 ? strstr(pair0, "\"teacher\":{") : NULL;
    const char *se = stu ? strstr(stu, "\"unet_evals\":") : NULL, *te = tea ? strstr(tea, "\"unet_evals\":") : NULL;
    const char *area = pair0 ? strstr(pair0, "\"mask_area\":") : NULL;
    CHECK(area && atof(area + 12) > 0 && atof(area + 12) <= 1);
    CHECK_MSG(se && te && atoi(se + 13) == 1 + 2 * 2 && atoi(te + 13) == 2, "masked evals: %s", pair0 ? pair0 : "");
    free(log_c);
    /* a given region (where the pair's source and target renders differ): no UNet evaluation for it; the
     * header names it (so the estimated-region log above is not resumed); the area is the changed part */
    char dir_d[PATH_MAX];
    snprintf(dir_d, sizeof dir_d, "%s/eeval-d", tdm_test_tmpdir());
    p.mask_given = 1;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "mask"));
    p.out_dir = dir_d;
    CHECK_MSG(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_OK, "%s", st.msg);
    char *log_d = slurp(dir_d, "pairs.jsonl");
    pair0 = log_d ? strchr(log_d, '\n') : NULL;
    stu = pair0 ? strstr(pair0, "\"student\":{") : NULL;
    se = stu ? strstr(stu, "\"unet_evals\":") : NULL;
    area = pair0 ? strstr(pair0, "\"mask_area\":") : NULL;
    CHECK(log_d && strstr(log_d, "\"region\":\"given"));
    CHECK_MSG(area && atof(area + 12) > 0 && atof(area + 12) < 1, "given area: %s", pair0 ? pair0 : "");
    CHECK_MSG(se && atoi(se + 13) == 1, "given-region evals: %s", pair0 ? pair0 : "");
    free(log_d);
    p.mask_given = 0;
    p.masked = 0;
    test_edit_eval_control(m, &p);
    p.n = 0;
    CHECK(tdm_edit_eval(m->e1, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG);
    free(results);
    free(table);
    free(log);
    free(results_b);
    free(table_b);
    free(log_b);
    tdm_oracle_free(o);
}

/* ---- CLI ---- */

/* The "tandem" chunk of NAME in the temporary folder holds each of the needles (NULL-terminated list). */
static void expect_chunk(const char *name, const char *needle, ...) {
    char path[PATH_MAX], *chunk = NULL;
    tdm_status st = {0};
    snprintf(path, sizeof path, "%s/%s", tdm_test_tmpdir(), name);
    CHECK_MSG(tdm_image_read_text(path, "tandem", &chunk, &st) == TDM_OK && chunk, "%s: no tandem chunk", name);
    va_list ap;
    va_start(ap, needle);
    for (const char *n = needle; n && chunk; n = va_arg(ap, const char *)) CHECK_MSG(strstr(chunk, n), "%s: %s", name, n);
    va_end(ap);
    tdm_free(chunk);
}

static void test_cli(const tdm_image *src) {
    if (access(g_bin, X_OK) != 0) {
        printf("CLI part skipped: %s is absent\n", g_bin);
        return;
    }
    tdm_status st = {0};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/src.png", tdm_test_tmpdir());
    CHECK(tdm_image_save_png(path, src, NULL, &st) == TDM_OK);
    const char *base = "edit --model tiny-lcm --teacher tiny-sd --image src.png --prompt 'a blue circle on the left' "
                       "--steps 1 --teacher-steps 2 --seed 3 -q";
    char args[2048];
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --strength 0.5 -o e.png --sidecar e.json", base);
    CLI(0, "", args);
    expect_chunk("e.png", "\"decision\":\"refine\"", "\"edit\":{", "\"quality\":{", NULL);
    snprintf(args, sizeof args, "%s --student-only --oracle none -o s.png", base);
    CLI(0, "", args);
    snprintf(args, sizeof args, "%s --teacher-only --oracle brightness -o t.png", base);
    CLI(0, "", args);
    snprintf(args, sizeof args, "%s --teacher-only --tau 0.5", base);
    CLI(2, "takes no threshold", args);
    snprintf(args, sizeof args, "%s --student-only --teacher-only", base);
    CLI(2, "not both", args);
    snprintf(args, sizeof args, "%s --oracle constant:0.2", base);
    CLI(2, "exactly one of", args);
    snprintf(args, sizeof args, "%s --tau 0.5 --strength 0", base);
    CLI(2, "--strength", args);
    CLI(2, "required", "edit --model tiny-lcm --prompt x --tau 1");
    snprintf(path, sizeof path, "%s/e.png", tdm_test_tmpdir()); /* a corrupt image in e.png's place */
    tdm_test_write_file(path, "\x89PNG\r\n\x1a\ngarbage", 16);
    CLI(1, "e.png", "edit --model tiny-lcm --image e.png --prompt x --tau 1 -q");
    CLI(1, "missing.png", "edit --model tiny-lcm --image missing.png --prompt x --tau 1 -q");
    /* a painted region: the source itself as the mask (bright pixels edited); a missing mask file names it */
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --mask-image src.png -o m.png", base);
    CLI(0, "", args);
    expect_chunk("m.png", "\"region_source\"", NULL);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --mask-image nomask.png", base);
    CLI(1, "nomask.png", args);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --mask-image src.png --source-prompt 'a circle'",
             base);
    CLI(1, "not both", args);
    /* --mask-paste and --mask-fill: recorded; without a region an error; edit-eval needs --mask / --mask-given */
    static const struct {
        const char *flag, *metadata, *what;
    } region_opts[] = {{"--mask-paste", "\"paste\":true", "paste-back"},
                       {"--mask-fill", "\"content\":\"fill\"", "region fill"}};
    for (int o = 0; o < 2; o++) {
        char needle[64];
        snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --mask-image src.png %s -o mo.png", base,
                 region_opts[o].flag);
        CLI(0, "", args);
        expect_chunk("mo.png", region_opts[o].metadata, NULL);
        snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 %s", base, region_opts[o].flag);
        snprintf(needle, sizeof needle, "%s needs an edit region", region_opts[o].what);
        CLI(1, needle, args);
        snprintf(args, sizeof args, "edit-eval --model tiny-lcm --teacher tiny-sd --n 1 --out ee-p --width 64 --height 64 "
                 "--steps 1 --teacher-steps 2 --oracle brightness %s -q", region_opts[o].flag);
        snprintf(needle, sizeof needle, "%s needs masked editing", region_opts[o].what);
        CLI(1, needle, args);
    }
    /* edit-eval records the fill in the log header and writes images on request */
    CLI(0, "", "edit-eval --model tiny-lcm --teacher tiny-sd --n 1 --out ee-fill --width 64 --height 64 --steps 1 "
               "--teacher-steps 2 --oracle brightness --k 50 --mask-given --mask-fill --save-images -q");
    snprintf(path, sizeof path, "%s/ee-fill/pairs.jsonl", tdm_test_tmpdir());
    char *fill_log = NULL;
    size_t fill_len = 0;
    CHECK(tdm_read_file(path, (size_t)1 << 20, &fill_log, &fill_len, &st) == TDM_OK && fill_log &&
          strstr(fill_log, "\"content\":\"fill\""));
    free(fill_log);
    /* --drag: an object's interior point (far from the corner's background colour) moved; recorded in the
     * metadata; a point on the background, a malformed value, a source prompt and edit-eval without
     * --mask-given are refused; edit-eval --drag writes the composite of a position edit (pair 9) */
    int ox = -1, oy = -1;
    for (int y = 1; y + 1 < src->height && ox < 0; y++)
        for (int x = 1; x + 1 < src->width && ox < 0; x++) {
            const uint8_t *px = src->pixels + 3 * ((size_t)y * src->width + x);
            const int far = abs(px[0] - src->pixels[0]) + abs(px[1] - src->pixels[1]) + abs(px[2] - src->pixels[2]) > 150;
            if (far && !memcmp(px, px - 3, 3) && !memcmp(px, px + 3, 3) && !memcmp(px, px + 3 * src->width, 3)) {
                ox = x;
                oy = y + 1;
            }
        }
    CHECK(ox >= 0);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --drag %d,%d,%d,%d --mask-paste --mask-fill -o dr.png",
             base, ox, oy, src->width / 2, src->height / 2);
    CLI(0, "", args);
    char needle[64];
    snprintf(needle, sizeof needle, "\"drags\":[[%d,%d,%d,%d]]", ox, oy, src->width / 2, src->height / 2);
    expect_chunk("dr.png", needle, NULL);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --drag 0,0,5,5", base);
    CLI(1, "background", args);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --drag 1,2,3", base);
    CLI(2, "give X0,Y0,X1,Y1", args);
    snprintf(args, sizeof args, "%s --oracle constant:0.2 --tau 0.5 --drag %d,%d,1,1 --source-prompt 'a circle'", base,
             ox, oy);
    CLI(1, "not with a source prompt", args);
    CLI(1, "drag-moves need the given region", "edit-eval --model tiny-lcm --teacher tiny-sd --n 1 --out ee-d "
                                               "--width 64 --height 64 --steps 1 --teacher-steps 2 --oracle brightness --drag -q");
    CLI(0, "", "edit-eval --model tiny-lcm --teacher tiny-sd --n 10 --out ee-drag --width 64 --height 64 --steps 1 "
               "--teacher-steps 2 --oracle brightness --k 50 --mask-given --drag --save-images -q");
    snprintf(path, sizeof path, "%s/ee-drag/images/pair00009_start.png", tdm_test_tmpdir());
    CHECK_MSG(access(path, F_OK) == 0, "edit-eval --drag wrote the composite of the position edit %s", path);
    snprintf(path, sizeof path, "%s/ee-drag/images/pair00008_start.png", tdm_test_tmpdir());
    CHECK_MSG(access(path, F_OK) != 0, "no composite for a pair without a move");
    static const char *const saved[] = {"source", "student", "teacher", "refine"};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/ee-fill/images/pair00000_%s.png", tdm_test_tmpdir(), saved[k]);
        CHECK_MSG(access(path, F_OK) == 0, "edit-eval --save-images wrote %s", path);
    }
    CLI(0, "", "edit-eval --model tiny-lcm --teacher tiny-sd --n 1 --out ee --width 64 --height 64 --steps 1 "
               "--teacher-steps 2 --oracle brightness --k 50 -q");
    snprintf(path, sizeof path, "%s/ee/table.md", tdm_test_tmpdir());
    CHECK(access(path, F_OK) == 0);
    CLI(2, "required", "edit-eval --model tiny-lcm --n 1");
    CLI(2, "--k", "edit-eval --model tiny-lcm --n 1 --out ee --k 0");
    /* layout-guided editing: the ControlNet options of generate; the metadata records the control */
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny");
    char cn[PATH_MAX], rel[PATH_MAX], cargs[PATH_MAX + 1024];
    snprintf(rel, sizeof rel, "%s/model", fx ? fx : "");
    if (!fx || !realpath(rel, cn)) { /* the CLI runs in the temporary folder: an absolute path */
        printf("layout-guided edit CLI skipped: controlnet-sd15-tiny absent\n");
        return;
    }
    snprintf(cargs, sizeof cargs, "%s --oracle constant:0.2 --tau 0.5 --controlnet %s --control-image src.png -o c.png",
             base, cn);
    CLI(0, "", cargs);
    expect_chunk("c.png", "\"controls\":[", NULL);
    snprintf(cargs, sizeof cargs, "%s --oracle constant:0.2 --tau 0.5 --controlnet %s", base, cn);
    CLI(2, "no --control-image", cargs);
    snprintf(cargs, sizeof cargs, "edit-eval --model tiny-lcm --teacher tiny-sd --n 1 --out eec --width 64 --height 64 "
             "--steps 1 --teacher-steps 2 --oracle brightness --k 50 --controlnet %s --control-scale 0.5 -q", cn);
    CLI(0, "", cargs);
    snprintf(path, sizeof path, "%s/eec/pairs.jsonl", tdm_test_tmpdir());
    char *log = NULL;
    size_t len = 0;
    CHECK(tdm_read_file(path, (size_t)1 << 20, &log, &len, &st) == TDM_OK && log &&
          strstr(log, "\"controlnet\":{") && strstr(log, "\"scale\":0.5"));
    free(log);
}

/* A square of colour c over [x, x + s) x [y, y + s) */
static void paint_square(tdm_image *img, int x, int y, int s, const uint8_t c[3]) {
    for (int yy = y; yy < y + s; yy++)
        for (int xx = x; xx < x + s; xx++) memcpy(img->pixels + 3 * ((size_t)yy * img->width + xx), c, 3);
}

static int pixel_is(const tdm_image *img, int x, int y, const uint8_t c[3]) {
    return !memcmp(img->pixels + 3 * ((size_t)y * img->width + x), c, 3);
}

/* tdm_edit_drags_apply: a red square moved right, its old place filled with the background, region = the old
 * place and the new one's edge (not the moved interior), placed = the new place, the blue square untouched; a swap of two squares (both segmented before
 * either moves); a point on the background, a drag leaving the image and too many drags are errors. */
static void test_drags(void) {
    static const uint8_t gray[3] = {128, 128, 128}, red[3] = {220, 20, 30}, blue[3] = {20, 40, 230};
    tdm_status st = {0};
    tdm_image img = {0};
    CHECK(tdm_image_alloc(&img, 64, 48, &st) == TDM_OK);
    unsigned char *region = calloc(64 * 48, 1), *placed = calloc(64 * 48, 1); /* [48, 64] */
    CHECK(region && placed);
    if (!img.pixels || !region || !placed) return;
    for (int i = 0; i < 64 * 48; i++) memcpy(img.pixels + 3 * i, gray, 3);
    paint_square(&img, 8, 8, 10, red);
    paint_square(&img, 40, 30, 8, blue);
    const tdm_edit_drag right = {12, 12, 42, 10}; /* red: +30, -2 */
    CHECK_MSG(tdm_edit_drags_apply(&img, &right, 1, region, placed, &st) == TDM_OK, "%s", st.msg);
    CHECK(pixel_is(&img, 38, 6, red) && pixel_is(&img, 47, 15, red) && pixel_is(&img, 12, 12, gray) &&
          pixel_is(&img, 8, 8, gray) && pixel_is(&img, 44, 34, blue));
    /* the region: the old place, the new place's edge and rim, not the moved square's interior */
    CHECK(region[12 * 64 + 12] && region[6 * 64 + 38] && region[5 * 64 + 37] && !region[10 * 64 + 42] &&
          !region[34 * 64 + 44] && !region[40 * 64 + 5]);
    CHECK(placed[10 * 64 + 42] && !placed[12 * 64 + 12] && !placed[34 * 64 + 44]);
    /* swap the red and the blue square */
    const tdm_edit_drag swap[2] = {{42, 10, 44, 34}, {44, 34, 42, 10}};
    CHECK_MSG(tdm_edit_drags_apply(&img, swap, 2, region, placed, &st) == TDM_OK, "%s", st.msg);
    CHECK(pixel_is(&img, 44, 34, red) && pixel_is(&img, 49, 39, red) && pixel_is(&img, 42, 10, blue) &&
          pixel_is(&img, 38, 6, blue) && pixel_is(&img, 47, 15, gray));
    const tdm_edit_drag bg = {2, 40, 20, 40}, out = {12, 12, 64, 10};
    CHECK(tdm_edit_drags_apply(&img, &bg, 1, region, placed, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "drag 1") &&
          strstr(st.msg, "background"));
    CHECK(tdm_edit_drags_apply(&img, &out, 1, region, placed, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "leaves the 64x48 image"));
    CHECK(tdm_edit_drags_apply(&img, swap, TDM_EDIT_MAX_DRAGS + 1, region, placed, &st) == TDM_ERR_INVALID_ARG);
    free(region);
    free(placed);
    tdm_image_free(&img);
}

/* Region fill (mask_fill) in the painted left half with paste-back on: every mode's edit differs from the
 * one without the fill (it starts from the surroundings' colours) and keeps the source outside; on a uniform
 * source the fill changes nothing, so the edits are bit for bit those without it (the same posterior and
 * added noise); the metadata names it; without a region it is an error. */
static void test_region_fill(const models *m, tdm_adaptive_params *p, const tdm_image *src) {
    tdm_status st = {0};
    tdm_image flat = {0};
    CHECK(tdm_image_alloc(&flat, src->width, src->height, &st) == TDM_OK);
    if (!flat.pixels) return;
    memset(flat.pixels, 90, (size_t)src->width * src->height * 3);
    const tdm_image *sources[2] = {src, &flat};
    for (int mode = 0; mode < 3; mode++) { /* adaptive refine, adaptive regenerate, teacher-only */
        p->strategy = mode == 1 ? TDM_ADAPTIVE_REGENERATE : TDM_ADAPTIVE_REFINE;
        for (int s = 0; s < 2; s++) {
            p->init_image = sources[s];
            tdm_adaptive_result r[2];
            for (int fill = 0; fill < 2; fill++) {
                p->mask_fill = fill;
                tdm_code rc = mode < 2 ? edit(m->e1, m, p, &r[fill])
                                       : tdm_edit(m->e1, m->lcm, m->sd, p, TDM_EDIT_TEACHER_ONLY, &r[fill], &st);
                CHECK_MSG(rc == TDM_OK, "region fill, mode %d: %s", mode, st.msg);
                if (rc) return;
            }
            CHECK(strstr(r[1].metadata_json, "\"content\":\"fill\"") && !strstr(r[0].metadata_json, "\"content\""));
            const int same = tdm_test_same_image(&r[0].image, &r[1].image);
            CHECK_MSG(s == 0 ? !same : same, "region fill, mode %d, %s source: the edits %s", mode,
                      s ? "uniform" : "drawn", same ? "are the same" : "differ");
            int kept_out = 1;
            for (int y = 0; y < src->height; y++)
                for (int x = src->width / 2; x < src->width; x++)
                    kept_out &= !memcmp(r[1].image.pixels + 3 * ((size_t)y * src->width + x),
                                        sources[s]->pixels + 3 * ((size_t)y * src->width + x), 3);
            CHECK_MSG(kept_out, "region fill, mode %d: paste-back still keeps the source outside", mode);
            tdm_adaptive_result_free(&r[0]);
            tdm_adaptive_result_free(&r[1]);
        }
    }
    p->init_image = src;
    const tdm_image *painted = p->mask_image;
    p->mask_image = NULL;
    tdm_adaptive_result r;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, p, &r, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "paste-back needs an edit region"));
    p->mask_paste = 0;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, p, &r, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "region fill needs an edit region"));
    p->mask_paste = 1;
    p->mask_fill = 0;
    p->mask_image = painted;
    tdm_image_free(&flat);
}

/* Masked editing: (a) the denoising loop keeps the start latent exactly outside a given mask (bit for bit
 * against tdm_gen_encode_image's latent); (b) an adaptive edit with a source prompt estimates the region
 * with the student (LCM tiny UNet: its guidance embedding), counts 2 evaluations per map as the student's,
 * records it, is deterministic, and refuses bad mask settings. */
static void test_masked(const models *m, const tdm_image *src) {
    tdm_status st = {0};
    const tdm_sd_model *sd = tdm_model_sd(m->sd);
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = "a blue circle on the left";
    gp.seed = 5;
    gp.steps = 4;
    gp.sampler = "ddim";
    gp.guidance_scale = 7.5f;
    gp.strength = 0.75f;
    gp.init_image = src;
    tdm_gen_request rq;
    tdm_gen_request_init(&rq, &gp);
    rq.start = TDM_GEN_START_PIXELS;
    rq.init = src;
    rq.want_latent = 1;
    const int sc = tdm_vae_latent_scale(&sd->vae->cfg), Cl = sd->vae->cfg.latent_channels;
    const int h = src->height / sc, w = src->width / sc;
    float *mask = calloc((size_t)(h * w), sizeof(float)); /* [h, w]: the left half edited */
    float *x0 = malloc(sizeof(float) * (size_t)(Cl * h * w)); /* [Cl, h, w] */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w / 2; x++) mask[y * w + x] = 1.0f;
    rq.edit_mask = mask;
    tdm_gen_result g;
    CHECK(tdm_gen_execute(sd, tdm_engine_exec(m->e1), &rq, &g, &st) == TDM_OK);
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    CHECK(tdm_gen_encode_image(sd, tdm_engine_exec(m->e1), &arena, src, src->width, src->height, gp.seed,
                               tdm_gen_streams_generate().posterior, x0, &st) == TDM_OK);
    tdm_arena_free(&arena);
    int kept_exact = 1, edited = 0;
    for (int c = 0; c < Cl; c++)
        for (int i = 0; i < h * w; i++) {
            const float a = g.latent[c * h * w + i], b = x0[c * h * w + i];
            if (mask[i] == 0.0f) kept_exact &= memcmp(&a, &b, sizeof a) == 0;
            else edited |= a != b;
        }
    CHECK_MSG(kept_exact && edited, "masked loop: outside the mask the start latent must be kept exactly");
    tdm_gen_result_free(&g);
    rq.start = TDM_GEN_START_NOISE; /* a mask needs an image or latent start */
    CHECK(tdm_gen_execute(sd, tdm_engine_exec(m->e1), &rq, &g, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "edit mask"));
    free(mask);
    free(x0);

    float score = 0.0f; /* below tau: refined */
    tdm_oracle *o = NULL;
    CHECK(tdm_oracle_from_fn("fixed", fixed_oracle, &score, &o, &st) == TDM_OK);
    tdm_adaptive_params p;
    edit_params(&p, o, src);
    p.tau = 0.5;
    p.source_prompt = "a red circle on the left";
    p.mask_maps = 3;
    tdm_adaptive_result r1, r2;
    CHECK(edit(m->e1, m, &p, &r1) == TDM_OK && edit(m->e2, m, &p, &r2) == TDM_OK);
    CHECK(r1.decision == TDM_DECISION_REFINE && tdm_test_same_image(&r1.image, &r2.image));
    CHECK(r1.unet_evals_student == 2 + 6); /* 2 LCM steps (no CFG batch) + 3 maps x 2 */
    cJSON *j = cJSON_Parse(r1.metadata_json);
    cJSON *ed = j ? cJSON_GetObjectItem(j, "edit") : NULL;
    cJSON *mk = ed ? cJSON_GetObjectItem(ed, "mask") : NULL;
    CHECK(mk && strcmp(cJSON_GetObjectItem(ed, "method")->valuestring, "sdedit-masked") == 0 &&
          cJSON_GetObjectItem(mk, "unet_evals")->valueint == 6 && cJSON_GetObjectItem(mk, "maps")->valueint == 3 &&
          cJSON_GetArraySize(cJSON_GetObjectItem(mk, "region")) == src->height / sc);
    const double area = mk ? cJSON_GetObjectItem(mk, "area")->valuedouble : -1;
    CHECK(area > 0 && area <= 1);
    cJSON_Delete(j);
    tdm_adaptive_result_free(&r1);
    tdm_adaptive_result_free(&r2);
    /* the regeneration and the one-model baselines take the region too */
    p.strategy = TDM_ADAPTIVE_REGENERATE;
    CHECK(edit(m->e1, m, &p, &r1) == TDM_OK && r1.decision == TDM_DECISION_REGENERATE);
    tdm_adaptive_result_free(&r1);
    p.strategy = TDM_ADAPTIVE_REFINE;
    CHECK(tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_TEACHER_ONLY, &r1, &st) == TDM_OK &&
          r1.unet_evals_student == 6 && strstr(r1.metadata_json, "sdedit-masked"));
    tdm_adaptive_result_free(&r1);
    /* a given (painted) region: the left half; no estimate, so only the student's own evaluations; the
     * metadata names it; a mask of another size, or together with a source prompt, is refused */
    tdm_image painted = {0};
    CHECK(tdm_image_alloc(&painted, src->width, src->height, &st) == TDM_OK);
    for (int y = 0; y < src->height; y++)
        for (int x = 0; x < src->width; x++)
            memset(painted.pixels + 3 * ((size_t)y * src->width + x), x < src->width / 2 ? 255 : 0, 3);
    p.source_prompt = NULL;
    p.mask_image = &painted;
    p.mask_dilate = 0;
    CHECK_MSG(edit(m->e1, m, &p, &r1) == TDM_OK, "%s", st.msg);
    CHECK_MSG(r1.unet_evals_student == 2, "given region: %d student evaluations", r1.unet_evals_student);
    j = cJSON_Parse(r1.metadata_json);
    ed = j ? cJSON_GetObjectItem(j, "edit") : NULL;
    mk = ed ? cJSON_GetObjectItem(ed, "mask") : NULL;
    CHECK(mk && cJSON_GetObjectItem(mk, "region_source") && !cJSON_GetObjectItem(mk, "maps") &&
          fabs(cJSON_GetObjectItem(mk, "area")->valuedouble - 0.5) < 1e-9);
    cJSON_Delete(j);
    CHECK(!strstr(r1.metadata_json, "\"paste\""));
    /* paste-back: outside the painted half every stage's image is the source's, pixel for pixel (without it
     * the decoded latent only approximates it); the metadata says so */
    int kept_pixels = 1;
    for (int y = 0; y < src->height; y++)
        for (int x = src->width / 2; x < src->width; x++)
            kept_pixels &= !memcmp(r1.image.pixels + 3 * ((size_t)y * src->width + x),
                                   src->pixels + 3 * ((size_t)y * src->width + x), 3);
    CHECK_MSG(!kept_pixels, "without paste-back the decoded image differs from the source somewhere");
    tdm_adaptive_result_free(&r1);
    p.mask_paste = 1;
    for (int mode = 0; mode < 3; mode++) { /* adaptive refine, adaptive regenerate, teacher-only */
        p.strategy = mode == 1 ? TDM_ADAPTIVE_REGENERATE : TDM_ADAPTIVE_REFINE;
        tdm_code rc = mode < 2 ? edit(m->e1, m, &p, &r1) : tdm_edit(m->e1, m->lcm, m->sd, &p, TDM_EDIT_TEACHER_ONLY, &r1, &st);
        CHECK(rc == TDM_OK);
        if (rc) continue;
        int same_out = 1, diff_in = 0;
        for (int y = 0; y < src->height; y++)
            for (int x = 0; x < src->width; x++) {
                const int same = !memcmp(r1.image.pixels + 3 * ((size_t)y * src->width + x),
                                         src->pixels + 3 * ((size_t)y * src->width + x), 3);
                if (x >= src->width / 2) same_out &= same;
                else diff_in |= !same;
            }
        CHECK_MSG(same_out && diff_in, "paste-back, mode %d: outside the region the source's pixels", mode);
        CHECK(strstr(r1.metadata_json, "\"paste\":true") != NULL);
        tdm_adaptive_result_free(&r1);
    }
    test_region_fill(m, &p, src);
    p.strategy = TDM_ADAPTIVE_REFINE;
    p.mask_image = NULL; /* paste-back needs a region */
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r1, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "paste-back needs an edit region"));
    p.source_prompt = "a red circle on the left"; /* an estimated region: pasted outside its latent blocks */
    p.mask_maps = 3;
    CHECK(edit(m->e1, m, &p, &r1) == TDM_OK && strstr(r1.metadata_json, "\"paste\":true"));
    tdm_adaptive_result_free(&r1);
    p.source_prompt = NULL;
    p.mask_image = &painted;
    p.mask_paste = 0;
    p.source_prompt = "a red circle on the left";
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r1, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "not both"));
    p.source_prompt = NULL;
    painted.width /= 2;
    CHECK(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r1, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "mask image"));
    painted.width *= 2;
    tdm_image_free(&painted);
    p.mask_image = NULL;
    p.source_prompt = "a red circle on the left";
    /* bad settings name the setting */
    const struct {
        int maps, dilate;
        float strength, threshold;
        const char *needle;
    } bad[] = {{0, 1, 0.5f, 0.5f, "mask maps"}, {65, 1, 0.5f, 0.5f, "mask maps"}, {3, 1, 1.0f, 0.5f, "mask strength"},
               {3, 1, 0.5f, 0.0f, "mask threshold"}, {3, 17, 0.5f, 0.5f, "mask dilation"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.mask_maps = bad[i].maps;
        p.mask_dilate = bad[i].dilate;
        p.mask_strength = bad[i].strength;
        p.mask_threshold = bad[i].threshold;
        tdm_status st2 = {0};
        CHECK_MSG(tdm_adaptive_generate(m->e1, m->lcm, m->sd, &p, &r1, &st2) == TDM_ERR_INVALID_ARG &&
                      strstr(st2.msg, bad[i].needle),
                  "bad mask setting %zu: %s", i, st2.msg);
    }
    tdm_oracle_free(o);
}

int main(int argc, char **argv) {
    (void)argc;
    tdm_test_cli_path(argv[0], 1, g_bin, sizeof g_bin);
    test_pairs();
    test_measure();
    test_drags();
    test_acceptance_line();
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
    tdm_world_edit_pair a;
    CHECK(tdm_world_edit_pair_make(1001, 0, &a, &st) == TDM_OK);
    tdm_image src = {0};
    render(&a.source, 64, 64, &src);
    test_size_rule(m.lcm);
    test_decisions(&m, &src);
    test_masked(&m, &src);
    test_edit_eval(&m);
    test_cli(&src);
    tdm_image_free(&src);
    tdm_model_free(m.sd);
    tdm_model_free(m.lcm);
    tdm_engine_free(m.e1);
    tdm_engine_free(m.e2);
    return tdm_test_result();
}
