/* tandem control-eval: the shapes-world ControlNet evaluation, resumable (see eval_control.h, tandem.h,
 * docs/CONTROLNET.md "Shapes world evaluation").
 *
 * Scene i (0-based) is tdm_world_sample(world_seed, split, start + i) with its caption tdm_world_caption(scene,
 * world_seed, start + i) as the prompt and noise seed seed + start + i. Its three runs (eval.h: the student's
 * sample, the teacher-only sample = the regeneration of the student's noise, the teacher's refinement of the
 * student's sample), all conditioned by the scene's segmentation map through the same ControlNet, are appended
 * as one JSON line to OUT/samples.jsonl (flushed and fsync'ed) after a header line holding the settings; a rerun
 * with the same settings continues after the last complete line, one with other settings is refused unless
 * restart is set. The scene count and the threshold (k, calibration) are not settings: the table is derived
 * from the log at the end. */
#include "pipeline/eval_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/jsonl_log.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/calibrate.h"
#include "pipeline/eval_common.h"
#include "world/caption.h"
#include "world/checker.h"

#define CEVAL_LOG_FORMAT "tandem-control-eval-log"
#define CEVAL_LOG_VERSION 1
#define CEVAL_MAX_N 1000000
#define CEVAL_SUPERSAMPLE 4 /* the condition's mask as `tandem world sample --masks` renders it */

void tdm_control_eval_params_init(tdm_control_eval_params *p) {
    memset(p, 0, sizeof *p);
    tdm_adaptive_params_init(&p->settings);
    p->control_scale = 1.0f;
    p->control_start = 0.0f;
    p->control_end = 1.0f;
    p->split = "test";
    p->world_seed = 1001;
    p->n = 300;
}

tdm_code tdm_ceval_condition(const tdm_world_scene *sc, int width, int height, tdm_image *cond, uint8_t *ids,
                             tdm_status *st) {
    memset(cond, 0, sizeof *cond);
    const size_t n = (size_t)width * (size_t)height;
    uint8_t *rgb = malloc(n * 3), *mask = ids ? ids : malloc(n); /* [H, W, 3] scene render, [H, W] object ids */
    tdm_code rc = rgb && mask ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "control-eval: out of memory");
    if (!rc) rc = tdm_world_render(sc, width, height, CEVAL_SUPERSAMPLE, rgb, mask, st);
    if (!rc) rc = tdm_image_alloc(cond, width, height, st);
    if (!rc)
        for (size_t i = 0; i < n; i++) memset(cond->pixels + i * 3, mask[i] > 0 ? 255 : 0, 3);
    free(rgb);
    if (mask != ids) free(mask);
    return rc;
}

void tdm_ceval_as_eval_sample(const tdm_ceval_sample *c, tdm_eval_sample *s) {
    memset(s, 0, sizeof *s);
    s->seed = c->seed;
    s->has_checker = 1;
    for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
        s->checker[r] = c->checker[r];
        s->oracle[r] = c->oracle[r];
        s->evals[r] = c->evals[r];
        s->seconds[r] = c->seconds[r];
    }
    s->seconds_oracle = c->seconds_oracle;
}

/* ---- settings (the log's header line) ---- */

static cJSON *settings_json(const tdm_control_eval_params *p, const tdm_model *student, const tdm_model *teacher,
                            const tdm_adaptive_setup *su, const char *oracle, int split) {
    cJSON *o = tdm_evalc_header_begin(CEVAL_LOG_FORMAT, CEVAL_LOG_VERSION, student, teacher, su);
    if (!o) return NULL;
    tdm_evalc_add_prompting(o, su);
    tdm_evalc_add_refine(o, &p->settings, su);
    tdm_evalc_add_controlnet(o, p->controlnet_name, "segmentation", p->control_scale, p->control_start,
                             p->control_end);
    tdm_evalc_add_oracle(o, oracle, p->oracle_model);
    cJSON *w = cJSON_AddObjectToObject(o, "world");
    cJSON_AddStringToObject(w, "split", tdm_split_name(split));
    tdm_evalc_add_u64(w, "seed", p->world_seed);
    tdm_evalc_add_u64(w, "start", p->start);
    tdm_evalc_add_u64(o, "seed", p->seed);
    return o;
}

/* ---- the log's sample lines ---- */

static char *sample_line(const tdm_ceval_sample *s, int i, const char *caption) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "sample", i);
    tdm_evalc_add_u64(o, "scene", s->scene_index);
    tdm_evalc_add_u64(o, "seed", s->seed);
    cJSON_AddStringToObject(o, "caption", caption);
    cJSON_AddNumberToObject(o, "objects", s->n_objects);
    for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
        cJSON *rj = cJSON_AddObjectToObject(o, tdm_evalc_run_key[r]);
        cJSON_AddNumberToObject(rj, "checker", s->checker[r]);
        cJSON_AddNumberToObject(rj, "iou", s->iou[r]);
        cJSON_AddNumberToObject(rj, "oracle", s->oracle[r]);
        cJSON_AddNumberToObject(rj, "unet_evals", s->evals[r]);
        cJSON_AddNumberToObject(rj, "controlnet_calls", s->cn_calls[r]);
        cJSON_AddNumberToObject(rj, "seconds", s->seconds[r]);
    }
    cJSON_AddNumberToObject(o, "seconds_oracle", s->seconds_oracle);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* A 64-bit number written raw (tdm_evalc_add_u64) as cJSON reads it: a double, exact up to 2^53. */
static int u64_matches(const cJSON *o, const char *key, uint64_t want) {
    double d;
    return tdm_evalc_num(o, key, &d) && d == (double)want;
}

typedef struct log_ctx {
    const tdm_control_eval_params *p;
    int n_max;
    tdm_ceval_sample *samples; /* [n_max] */
    const char *header;
} log_ctx;

/* Parses line `index`; 0 when it is not that scene of this evaluation. Lines past n_max are checked but
 * not kept. The raw seed / scene numbers are read back from the text (cJSON keeps doubles). */
static int log_sample(void *user, const char *line, int index) {
    const log_ctx *c = user;
    cJSON *o = cJSON_Parse(line);
    tdm_ceval_sample s;
    memset(&s, 0, sizeof s);
    double v = 0;
    const uint64_t scene = c->p->start + (uint64_t)index, seed = c->p->seed + scene;
    int ok = cJSON_IsObject(o) && tdm_evalc_num(o, "sample", &v) && v == index && u64_matches(o, "scene", scene) &&
             u64_matches(o, "seed", seed) && tdm_evalc_num(o, "seconds_oracle", &s.seconds_oracle);
    if (ok && tdm_evalc_num(o, "objects", &v) && v >= 1 && v <= 255) s.n_objects = (int)v;
    else ok = 0;
    for (int r = 0; ok && r < TDM_EVAL_N_RUNS; r++) {
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(o, tdm_evalc_run_key[r]);
        double ck = 0, iou = 0, orc = 0, ev = 0, calls = 0, sec = 0;
        ok = cJSON_IsObject(rj) && tdm_evalc_num(rj, "checker", &ck) && tdm_evalc_num(rj, "iou", &iou) &&
             tdm_evalc_num(rj, "oracle", &orc) && tdm_evalc_num(rj, "unet_evals", &ev) && tdm_evalc_num(rj, "controlnet_calls", &calls) &&
             tdm_evalc_num(rj, "seconds", &sec) && ev >= 0 && ev <= 1e9 && calls >= 0 && calls <= 1e9;
        s.checker[r] = (float)ck;
        s.iou[r] = (float)iou;
        s.oracle[r] = (float)orc;
        s.evals[r] = (int)ev;
        s.cn_calls[r] = (int)calls;
        s.seconds[r] = sec;
    }
    cJSON_Delete(o);
    s.scene_index = scene;
    s.seed = seed;
    if (ok && index < c->n_max) c->samples[index] = s;
    return ok;
}

static tdm_code log_mismatch(void *user, const char *path, const char *line, tdm_status *st) {
    const log_ctx *c = user;
    return tdm_evalc_log_mismatch(
        path, line, c->header, "the format",
        "models, their settings, refinement, ControlNet, oracle, world scenes or seed", st);
}

/* ---- one scene ---- */

typedef struct ceval_ctx {
    const tdm_control_eval_params *p;
    tdm_adaptive_setup su;
    tdm_control control; /* su's stage params point at it; .image changes per scene */
    int split;
    int W, H;
    uint8_t *ids;        /* [H, W] the scene's object ids */
    uint8_t *labels;     /* [H, W] label map of a generated image */
    double (*clock)(void *);
    void *clock_user;
} ceval_ctx;

/* Checker score of img on the caption's query and placement IoU against the scene's mask (one segmentation). */
static tdm_code score_image(ceval_ctx *c, const tdm_world_query *q, int n_objects, const tdm_image *img,
                            float *checker, float *iou, tdm_status *st) {
    if (img->width != c->W || img->height != c->H)
        return tdm_fail(st, TDM_ERR_INTERNAL, "control-eval: image %dx%d, condition %dx%d", img->width, img->height,
                        c->W, c->H);
    tdm_world_analysis an;
    TDM_TRY(tdm_world_analyze_labels(img->pixels, img->width, img->height, &an, c->labels, st));
    tdm_world_check_result res;
    tdm_world_score(q, &an, &res);
    *checker = res.score;
    return tdm_world_placement_iou(c->ids, c->labels, (size_t)c->W * c->H, n_objects, NULL, iou, st);
}

/* tdm_evalc_score_fn: checker and IoU of run `run`'s image. */
typedef struct scene_user {
    ceval_ctx *c;
    const tdm_world_query *q;
    tdm_ceval_sample *s;
} scene_user;

static tdm_code score_run(void *user, int run, const tdm_gen_result *g, tdm_status *st) {
    const scene_user *u = user;
    return score_image(u->c, u->q, u->s->n_objects, &g->image, &u->s->checker[run], &u->s->iou[run], st);
}

static tdm_code run_scene(ceval_ctx *c, uint64_t index, tdm_ceval_sample *s, char *caption, size_t caption_size,
                          tdm_status *st) {
    memset(s, 0, sizeof *s);
    const tdm_control_eval_params *p = c->p;
    s->scene_index = index;
    s->seed = p->seed + index;
    tdm_world_scene sc;
    tdm_world_query q;
    TDM_TRY(tdm_world_sample(p->world_seed, c->split, index, &sc, st));
    TDM_TRY(tdm_world_caption(&sc, p->world_seed, index, caption, caption_size, &q, st));
    s->n_objects = sc.n_objects;
    tdm_image cond;
    TDM_TRY(tdm_ceval_condition(&sc, c->W, c->H, &cond, c->ids, st));
    c->control.image = &cond;
    c->su.sgp.prompt = c->su.tgp.prompt = c->su.sp.prompt = c->su.tp.prompt = caption;
    c->su.sgp.seed = c->su.tgp.seed = c->su.sp.seed = c->su.tp.seed = s->seed;
    /* the runs fill an eval.h sample; its scores and costs are copied to s */
    tdm_eval_sample e;
    memset(&e, 0, sizeof e);
    scene_user u = {c, &q, s};
    const tdm_evalc_runs r = {&c->su, p->oracle, caption, c->clock, c->clock_user, score_run, &u};
    tdm_code rc = tdm_evalc_run_three(&r, &e, s->cn_calls, st);
    for (int run = 0; run < TDM_EVAL_N_RUNS; run++) {
        s->oracle[run] = e.oracle[run];
        s->evals[run] = e.evals[run];
        s->seconds[run] = e.seconds[run];
    }
    s->seconds_oracle = e.seconds_oracle;
    c->control.image = NULL;
    tdm_image_free(&cond);
    return rc;
}

/* ---- the run ---- */

static tdm_code check_params(const tdm_control_eval_params *p, int *split, tdm_status *st) {
    if (!p->out_dir || !*p->out_dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: no output folder given");
    if (!p->oracle) return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: no oracle given");
    if (!p->controlnet) return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: no ControlNet given");
    if (p->n < 1 || p->n > CEVAL_MAX_N)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: %d scenes (1..%d)", p->n, CEVAL_MAX_N);
    if (p->start > UINT64_MAX / 2 || p->seed > UINT64_MAX - p->start - (uint64_t)p->n)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: start %llu / seed %llu too large",
                        (unsigned long long)p->start, (unsigned long long)p->seed);
    *split = tdm_split_from_name(p->split ? p->split : "test");
    if (*split < 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: unknown split '%s' (train, val or test)", p->split);
    if (p->n_k < 0 || p->n_k > 128 || (p->n_k && !p->k))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: %d values of k (0..128)", p->n_k);
    for (int j = 0; j < p->n_k; j++) TDM_TRY(tdm_calibration_check_k(p->k[j], st));
    return TDM_OK;
}

tdm_code tdm_control_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                          const tdm_control_eval_params *p, tdm_control_eval_summary *summary, tdm_status *st) {
    tdm_control_eval_summary dummy;
    if (!summary) summary = &dummy;
    memset(summary, 0, sizeof *summary);
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_control_eval: engine, student, teacher and params are required");
    ceval_ctx c;
    memset(&c, 0, sizeof c);
    TDM_TRY(check_params(p, &c.split, st));
    const int n = p->n;
    summary->n_samples = n;
    c.p = p;
    c.clock = p->clock ? p->clock : tdm_evalc_now;
    c.clock_user = p->clock_user;
    tdm_control_init(&c.control);
    c.control.controlnet = p->controlnet;
    c.control.scale = p->control_scale;
    c.control.start = p->control_start;
    c.control.end = p->control_end;

    tdm_calibration *cal = NULL;
    cJSON *settings = NULL;
    char *header = NULL, *log_path = NULL;
    tdm_ceval_sample *samples = NULL;
    double *tau = NULL;
    FILE *f = NULL;
    tdm_image probe = {0};
    tdm_adaptive_params a = p->settings;
    a.prompt = "a red circle on the left";
    a.controls = &c.control; /* one control for every stage; its image is set per scene */
    /* the output size: given, or the student's default (resolved without the control, whose image would
     * otherwise set it) */
    a.n_controls = 0;
    tdm_code rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine), &a,
                                          &c.su, st);
    if (rc) goto done;
    a.width = c.su.sp.width;
    a.height = c.su.sp.height;
    a.n_controls = 1;
    /* resolving the stages with the control validates it (the ControlNet must fit both UNets) before any work:
     * a blank stand-in condition */
    rc = tdm_image_alloc(&probe, a.width, a.height, st);
    if (rc) goto done;
    memset(probe.pixels, 0, (size_t)a.width * a.height * 3);
    c.control.image = &probe;
    rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine), &a, &c.su,
                                 st);
    if (!rc) rc = tdm_adaptive_setup_refine(&c.su, &a, st);
    c.control.image = NULL;
    if (rc) goto done;
    c.W = c.su.sp.width;
    c.H = c.su.sp.height;
    const char *oracle_name = tdm_oracle_get_name(p->oracle);
    if (p->calibration) {
        rc = tdm_evalc_calibration_open(p->calibration, p->k, p->n_k, student, &c.su, oracle_name, summary->warnings,
                                        sizeof summary->warnings, &cal, st);
        if (rc) goto done;
    }
    rc = tdm_evalc_make_dir(p->out_dir, st);
    if (rc) goto done;
    settings = settings_json(p, student, teacher, &c.su, oracle_name, c.split);
    header = settings ? cJSON_PrintUnformatted(settings) : NULL;
    size_t pl = strlen(p->out_dir) + 32;
    log_path = malloc(pl);
    samples = calloc((size_t)n, sizeof *samples);
    tau = malloc(sizeof(double) * (size_t)(p->n_k > 0 ? p->n_k : 1));
    c.ids = malloc((size_t)c.W * c.H);
    c.labels = malloc((size_t)c.W * c.H);
    if (!header || !log_path || !samples || !tau || !c.ids || !c.labels) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "control-eval: out of memory");
        goto done;
    }
    snprintf(log_path, pl, "%s/samples.jsonl", p->out_dir);
    int done_n = 0;
    log_ctx lc = {p, p->n, samples, header};
    const tdm_jsonl_resume res = {header, (size_t)1 << 32, "control evaluation (corrupt log; delete it or pass --restart)",
                                  log_mismatch, log_sample, &lc};
    rc = tdm_evalc_log_open(log_path, p->restart, &res, &done_n, &f, st);
    if (rc) goto done;
    summary->n_resumed = done_n < n ? done_n : n;

    for (int i = done_n; i < n; i++) {
        const uint64_t index = p->start + (uint64_t)i;
        char caption[TDM_CAPTION_MAX];
        double t0 = c.clock(c.clock_user);
        rc = run_scene(&c, index, &samples[i], caption, sizeof caption, st);
        if (rc) {
            tdm_fail_context(st, "control-eval: scene %llu (sample %d)", (unsigned long long)index, i);
            goto done;
        }
        rc = tdm_evalc_log_append(f, log_path, sample_line(&samples[i], i, caption), "control-eval", st);
        if (rc) goto done;
        if (p->on_sample) {
            tdm_control_eval_progress pg;
            memset(&pg, 0, sizeof pg);
            pg.done = i + 1;
            pg.total = n;
            pg.resumed = summary->n_resumed;
            pg.scene_index = index;
            pg.seed = samples[i].seed;
            for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
                pg.checker[r] = samples[i].checker[r];
                pg.iou[r] = samples[i].iou[r];
            }
            pg.seconds = c.clock(c.clock_user) - t0;
            if (p->on_sample(p->user, &pg)) {
                rc = tdm_fail(st, TDM_ERR_CANCELLED, "control evaluation cancelled after %d of %d scenes (resumable: %s)",
                              i + 1, n, log_path);
                goto done;
            }
        }
    }
    fclose(f);
    f = NULL;

    rc = tdm_evalc_thresholds(cal, p->k, p->n_k, &samples[0].oracle[TDM_EVAL_RUN_STUDENT], sizeof *samples, n,
                              "control-eval", tau, st);
    if (rc) goto done;
    char line[1536] = "";
    tdm_evalc_models_text(student, teacher, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line, "; ");
    tdm_evalc_controlnet_text(p->controlnet_name, "segmentation condition", p->control_scale, p->control_start,
                              p->control_end, line, sizeof line);
    tdm_evalc_refine_text(&a, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line,
                      "; oracle: %s; %dx%d; scenes %s[%llu..%llu) of world seed %llu, noise seed %llu + scene",
                      oracle_name, c.W, c.H, tdm_split_name(c.split), (unsigned long long)p->start,
                      (unsigned long long)(p->start + (uint64_t)n), (unsigned long long)p->world_seed,
                      (unsigned long long)p->seed);
    char source[1100];
    tdm_evalc_tau_source(p->calibration, source, sizeof source);
    tdm_ceval_report_in in;
    memset(&in, 0, sizeof in);
    in.out_dir = p->out_dir;
    in.samples = samples;
    in.n = n;
    in.with_regenerate = c.su.same_latent_shape;
    in.k = p->k;
    in.tau = tau;
    in.n_k = p->n_k;
    in.tau_source = source;
    in.settings_line = line;
    in.warnings = summary->warnings;
    rc = tdm_ceval_write_report(&in, st);
done:
    if (f) fclose(f);
    tdm_image_free(&probe);
    free(c.ids);
    free(c.labels);
    free(tau);
    free(samples);
    free(log_path);
    free(header);
    cJSON_Delete(settings);
    tdm_calibration_free(cal);
    return rc;
}
