/* tandem edit-eval: the shapes-world edit evaluation, resumable (see eval_edit.h, tandem.h, docs/EDITING.md).
 *
 * Pair i (0-based) is tdm_world_edit_pair_make(world_seed, i): the source scene rendered at the run's size
 * (4x4 supersampling, as `tandem world sample`), the target caption as the prompt, noise seed seed + i. Its
 * three runs are appended as one JSON line to OUT/pairs.jsonl (flushed and fsync'ed) after a header line holding
 * the settings; a rerun with the same settings continues after the last complete line (a torn last line is
 * dropped), one with other settings is refused unless restart is set. The pair count and the threshold (k,
 * calibration) are not settings: the tables are derived from the log at the end. */
#include "pipeline/eval_edit.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/jsonl_log.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/calibrate.h"
#include "world/checker.h"

#define EEVAL_LOG_FORMAT "tandem-edit-eval-log"
#define EEVAL_LOG_VERSION 1
#define EEVAL_MAX_N 100000
#define EEVAL_SUPERSAMPLE 4

void tdm_edit_eval_params_init(tdm_edit_eval_params *p) {
    memset(p, 0, sizeof *p);
    p->world_seed = 1001;
    tdm_adaptive_params_init(&p->settings);
}

static const char *const k_runs[TDM_EVAL_N_RUNS] = {"student", "teacher", "refine"};

/* ---- settings (the log's header line) ---- */

static cJSON *stage_json(const char *model, const tdm_gen_plan *pl) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "sampler", pl->sampler);
    cJSON_AddNumberToObject(o, "steps", pl->steps);
    cJSON_AddNumberToObject(o, "guidance", tdm_float_as_decimal(pl->guidance));
    cJSON_AddNumberToObject(o, "eta", tdm_float_as_decimal(pl->eta));
    return o;
}

static void add_u64(cJSON *o, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON_AddRawToObject(o, key, buf);
}

static cJSON *settings_json(const tdm_edit_eval_params *p, const tdm_model *student, const tdm_model *teacher,
                            const tdm_adaptive_setup *su, const char *oracle) {
    const tdm_adaptive_params *a = &p->settings;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", EEVAL_LOG_FORMAT);
    cJSON_AddNumberToObject(o, "version", EEVAL_LOG_VERSION);
    cJSON_AddItemToObject(o, "student", stage_json(tdm_model_name(student), &su->sp));
    cJSON_AddItemToObject(o, "teacher", stage_json(tdm_model_name(teacher), &su->tp));
    cJSON_AddNumberToObject(o, "width", su->sp.width);
    cJSON_AddNumberToObject(o, "height", su->sp.height);
    cJSON_AddNumberToObject(o, "strength", tdm_float_as_decimal(a->strength));
    cJSON_AddStringToObject(o, "negative_prompt", su->sp.negative);
    cJSON_AddNumberToObject(o, "clip_skip", su->sp.clip_skip);
    cJSON_AddBoolToObject(o, "emphasis", su->sp.emphasis);
    cJSON *rf = cJSON_AddObjectToObject(o, "refine");
    const int strength = a->refine_convention == TDM_REFINE_STRENGTH;
    cJSON_AddStringToObject(rf, "convention", strength ? "strength" : "noise");
    cJSON_AddNumberToObject(rf, strength ? "strength" : "sigma",
                            tdm_float_as_decimal(strength ? a->refine_strength : a->refine_noise));
    cJSON_AddNumberToObject(rf, "grid_steps", su->rp.grid_steps);
    cJSON_AddNumberToObject(rf, "steps", su->rp.steps);
    cJSON_AddStringToObject(rf, "handoff", su->handoff_latent ? "latent" : "pixels");
    cJSON_AddBoolToObject(o, "regenerate", su->same_latent_shape);
    cJSON *orc = cJSON_AddObjectToObject(o, "oracle");
    cJSON_AddStringToObject(orc, "name", oracle);
    if (p->oracle_model) cJSON_AddStringToObject(orc, "model", p->oracle_model);
    else cJSON_AddNullToObject(orc, "model");
    cJSON_AddBoolToObject(o, "similarity", p->similarity != NULL);
    add_u64(o, "world_seed", p->world_seed);
    add_u64(o, "seed", p->seed);
    cJSON_AddStringToObject(o, "pair_rule", "pair i: tdm_world_edit_pair_make(world_seed, i), noise seed seed + i");
    return o;
}

static void first_difference(const char *have, const char *want, char *out, size_t n) {
    snprintf(out, n, "the header");
    cJSON *a = cJSON_Parse(have), *b = cJSON_Parse(want);
    if (a && b) {
        const cJSON *it;
        cJSON_ArrayForEach(it, b) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(a, it->string);
            char *x = o ? cJSON_PrintUnformatted(o) : NULL, *y = cJSON_PrintUnformatted(it);
            const int differ = !x || !y || strcmp(x, y) != 0;
            free(x);
            free(y);
            if (differ) {
                snprintf(out, n, "'%s'", it->string);
                break;
            }
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* ---- log lines ---- */

static void add_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static char *pair_line(const tdm_eeval_pair *s, int i, const tdm_world_edit_pair *wp) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "pair", i);
    add_u64(o, "scene_index", s->scene_index);
    add_u64(o, "seed", s->base.seed);
    cJSON_AddStringToObject(o, "kind", tdm_world_edit_kind_name(s->kind));
    cJSON_AddStringToObject(o, "instruction", wp->instruction);
    cJSON_AddStringToObject(o, "prompt", wp->caption);
    cJSON_AddStringToObject(o, "source_caption", wp->source_caption);
    cJSON_AddBoolToObject(o, "held_out", s->held_out);
    for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
        cJSON *rj = cJSON_AddObjectToObject(o, k_runs[r]);
        cJSON_AddNumberToObject(rj, "checker", s->base.checker[r]);
        cJSON_AddBoolToObject(rj, "preserved", s->preserved[r]);
        cJSON_AddNumberToObject(rj, "kept", s->kept[r]);
        cJSON_AddNumberToObject(rj, "checked", s->checked[r]);
        cJSON_AddNumberToObject(rj, "oracle", s->base.oracle[r]);
        add_num_or_null(rj, "similarity", s->similarity[r]);
        cJSON_AddNumberToObject(rj, "unet_evals", s->base.evals[r]);
        cJSON_AddNumberToObject(rj, "seconds", s->base.seconds[r]);
    }
    cJSON_AddNumberToObject(o, "seconds_oracle", s->base.seconds_oracle);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int num_of(const cJSON *o, const char *key, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return 0;
    *v = it->valuedouble;
    return 1;
}

typedef struct log_ctx {
    const tdm_edit_eval_params *p;
    int n_max;
    tdm_eeval_pair *pairs; /* [n_max] */
    const char *header;
} log_ctx;

/* Parses log line i into pairs[i]; the pair's identity (scene, kind, seed) must match pair i's. */
static int log_pair(void *user, const char *line, int i) {
    const log_ctx *c = user;
    if (i >= c->n_max) return 0;
    tdm_world_edit_pair wp;
    tdm_status ignore = {0};
    if (tdm_world_edit_pair_make(c->p->world_seed, (uint64_t)i, &wp, &ignore)) return 0;
    cJSON *o = cJSON_Parse(line);
    if (!o) return 0;
    tdm_eeval_pair *s = &c->pairs[i];
    memset(s, 0, sizeof *s);
    s->base.prompt_index = i;
    s->base.seed = c->p->seed + (uint64_t)i;
    s->base.has_checker = 1;
    s->scene_index = wp.scene_index;
    s->kind = wp.kind;
    s->held_out = wp.held_out;
    double v = 0;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    int ok = num_of(o, "pair", &v) && v == i && cJSON_IsString(kind) &&
             strcmp(kind->valuestring, tdm_world_edit_kind_name(wp.kind)) == 0 &&
             num_of(o, "seconds_oracle", &s->base.seconds_oracle);
    for (int r = 0; ok && r < TDM_EVAL_N_RUNS; r++) {
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(o, k_runs[r]);
        double c0 = 0, orc = 0, ev = 0, sec = 0, kept = 0, checked = 0, sim = NAN;
        const cJSON *pres = cJSON_GetObjectItemCaseSensitive(rj, "preserved");
        ok = cJSON_IsObject(rj) && num_of(rj, "checker", &c0) && num_of(rj, "oracle", &orc) &&
             num_of(rj, "unet_evals", &ev) && num_of(rj, "seconds", &sec) && num_of(rj, "kept", &kept) &&
             num_of(rj, "checked", &checked) && cJSON_IsBool(pres) && ev >= 0 && ev <= 1e9;
        if (!ok) break;
        if (!num_of(rj, "similarity", &sim)) sim = NAN;
        s->base.checker[r] = (float)c0;
        s->base.oracle[r] = (float)orc;
        s->base.evals[r] = (int)ev;
        s->base.seconds[r] = sec;
        s->preserved[r] = cJSON_IsTrue(pres);
        s->kept[r] = (int)kept;
        s->checked[r] = (int)checked;
        s->similarity[r] = sim;
    }
    cJSON_Delete(o);
    return ok;
}

static tdm_code log_mismatch(void *user, const char *path, const char *line, tdm_status *st) {
    const log_ctx *c = user;
    char what[96];
    first_difference(line, c->header, what, sizeof what);
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "%s was made with other settings (%s differs: models, their settings, strength, refinement, "
                    "oracle, similarity or seeds); pass --restart to discard it, or use another output folder",
                    path, what);
}

/* ---- one pair ---- */

static double monotonic(void *user) {
    (void)user;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct eeval_ctx {
    const tdm_edit_eval_params *p;
    tdm_adaptive_setup su;
    double (*clock)(void *);
    void *clock_user;
} eeval_ctx;

static tdm_code render_source(const tdm_world_scene *sc, int W, int H, tdm_image *img, tdm_status *st) {
    TDM_TRY(tdm_image_alloc(img, W, H, st));
    tdm_code rc = tdm_world_render(sc, W, H, EEVAL_SUPERSAMPLE, img->pixels, NULL, st);
    if (rc) tdm_image_free(img);
    return rc;
}

/* Scores run r's edit: checker on the target caption, preservation, oracle, similarity. */
static tdm_code score_run(eeval_ctx *c, const tdm_world_edit_pair *wp, const tdm_image *src, const tdm_image *img,
                          tdm_eeval_pair *s, int r, tdm_status *st) {
    tdm_world_analysis an;
    TDM_TRY(tdm_world_analyze(img->pixels, img->width, img->height, &an, st));
    tdm_world_check_result res;
    tdm_world_score(&wp->target_query, &an, &res);
    s->base.checker[r] = res.score;
    s->preserved[r] = tdm_world_preserved(&wp->keep, &an, &s->kept[r], &s->checked[r], NULL, 0);
    s->similarity[r] = NAN;
    if (c->p->similarity) TDM_TRY(tdm_image_similarity_cosine(c->p->similarity, src, img, &s->similarity[r], st));
    if (r != TDM_EVAL_RUN_STUDENT) /* (the student's oracle score is timed: it is the decision's cost) */
        TDM_TRY(tdm_oracle_score(c->p->oracle, wp->caption, img, &s->base.oracle[r], st));
    return TDM_OK;
}

static void take_stats(const tdm_gen_result *g, tdm_eeval_pair *s, int r) {
    s->base.evals[r] = g->stats.unet_calls * g->stats.unet_batch;
}

static tdm_code run_pair(eeval_ctx *c, int i, tdm_world_edit_pair *wp, tdm_eeval_pair *s, tdm_status *st) {
    const tdm_edit_eval_params *p = c->p;
    memset(s, 0, sizeof *s);
    TDM_TRY(tdm_world_edit_pair_make(p->world_seed, (uint64_t)i, wp, st));
    s->base.prompt_index = i;
    s->base.seed = p->seed + (uint64_t)i;
    s->base.has_checker = 1;
    s->scene_index = wp->scene_index;
    s->kind = wp->kind;
    s->held_out = wp->held_out;
    tdm_image src = {0};
    TDM_TRY(render_source(&wp->source, c->su.sp.width, c->su.sp.height, &src, st));
    tdm_adaptive_setup *su = &c->su;
    su->sgp.prompt = su->tgp.prompt = su->sp.prompt = su->tp.prompt = wp->caption;
    su->sgp.seed = su->tgp.seed = su->sp.seed = su->tp.seed = s->base.seed;
    su->sgp.init_image = su->tgp.init_image = &src;
    const int S = TDM_EVAL_RUN_STUDENT, T = TDM_EVAL_RUN_TEACHER, R = TDM_EVAL_RUN_REFINE;
    tdm_gen_result sres, tres;
    memset(&sres, 0, sizeof sres);
    double t0 = c->clock(c->clock_user);
    tdm_code rc = tdm_adaptive_run_student(su, su->handoff_latent, &sres, st);
    s->base.seconds[S] = c->clock(c->clock_user) - t0;
    if (rc) {
        tdm_fail_context(st, "student");
        goto out;
    }
    take_stats(&sres, s, S);
    t0 = c->clock(c->clock_user);
    rc = tdm_oracle_score(p->oracle, wp->caption, &sres.image, &s->base.oracle[S], st);
    s->base.seconds_oracle = c->clock(c->clock_user) - t0;
    if (!rc) rc = score_run(c, wp, &src, &sres.image, s, S, st);
    if (rc) goto out;

    /* the teacher-only edit = the regeneration: the teacher's img2img of the source with the same noise */
    t0 = c->clock(c->clock_user);
    rc = tdm_adaptive_run_teacher(su, TDM_DECISION_REGENERATE, NULL, NULL, &tres, st);
    s->base.seconds[T] = c->clock(c->clock_user) - t0;
    if (rc) {
        tdm_fail_context(st, "teacher");
        goto out;
    }
    take_stats(&tres, s, T);
    rc = score_run(c, wp, &src, &tres.image, s, T, st);
    tdm_gen_result_free(&tres);
    if (rc) goto out;

    t0 = c->clock(c->clock_user);
    rc = tdm_adaptive_run_teacher(su, TDM_DECISION_REFINE, &sres, NULL, &tres, st);
    s->base.seconds[R] = c->clock(c->clock_user) - t0;
    if (rc) {
        tdm_fail_context(st, "refinement");
        goto out;
    }
    take_stats(&tres, s, R);
    rc = score_run(c, wp, &src, &tres.image, s, R, st);
    tdm_gen_result_free(&tres);
out:
    su->sgp.init_image = su->tgp.init_image = NULL;
    tdm_gen_result_free(&sres);
    tdm_image_free(&src);
    return rc;
}

/* ---- the run ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static tdm_code make_dir(const char *dir, tdm_status *st) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return TDM_OK;
        return tdm_fail(st, TDM_ERR_IO, "%s: exists and is not a folder", dir);
    }
    return tdm_fail(st, TDM_ERR_IO, "%s: cannot create the output folder (%s)", dir, strerror(errno));
}

static tdm_code check_params(const tdm_edit_eval_params *p, tdm_status *st) {
    if (!p->out_dir || !*p->out_dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: no output folder given");
    if (!p->oracle) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: no oracle given");
    if (p->n < 1 || p->n > EEVAL_MAX_N)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: %d pairs (1..%d)", p->n, EEVAL_MAX_N);
    if (p->n_k < 0 || p->n_k > 128 || (p->n_k && !p->k))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: %d values of k (0..128)", p->n_k);
    for (int j = 0; j < p->n_k; j++) TDM_TRY(tdm_calibration_check_k(p->k[j], st));
    const float s = p->settings.strength;
    if (!isfinite(s) || !(s > 0.0f && s <= 1.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: strength %g is out of range (0, 1]", (double)s);
    return TDM_OK;
}

static tdm_code open_log(const tdm_edit_eval_params *p, const char *path, const char *header, tdm_eeval_pair *pairs,
                         int *done, FILE **f, tdm_status *st) {
    *done = -1;
    if (!p->restart && access(path, F_OK) == 0) {
        log_ctx lc = {p, p->n, pairs, header};
        const tdm_jsonl_resume r = {header, (size_t)1 << 32,
                                    "edit evaluation (corrupt log, or more pairs than --n; delete it or pass --restart)",
                                    log_mismatch, log_pair, &lc};
        TDM_TRY(tdm_jsonl_resume_read(path, &r, done, st));
    }
    if (*done < 0) {
        *f = fopen(path, "w");
        if (!*f || fprintf(*f, "%s\n", header) < 0 || fflush(*f) != 0)
            return tdm_fail(st, TDM_ERR_IO, "%s: cannot write the log", path);
        *done = 0;
        return TDM_OK;
    }
    *f = fopen(path, "a");
    if (!*f) return tdm_fail(st, TDM_ERR_IO, "%s: cannot append to the log", path);
    return TDM_OK;
}

tdm_code tdm_edit_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                       const tdm_edit_eval_params *p, tdm_eval_summary *summary, tdm_status *st) {
    tdm_eval_summary dummy;
    if (!summary) summary = &dummy;
    memset(summary, 0, sizeof *summary);
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_eval: engine, student, teacher and params are required");
    TDM_TRY(check_params(p, st));
    const int n = p->n;
    summary->n_samples = n;
    eeval_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.clock = p->clock ? p->clock : monotonic;
    c.clock_user = p->clock_user;
    tdm_calibration *cal = NULL;
    cJSON *settings = NULL;
    char *header = NULL, *log_path = NULL;
    tdm_eeval_pair *pairs = NULL;
    double *tau = NULL;
    FILE *f = NULL;
    tdm_image probe = {0};

    /* the settings, resolved with pair 0's source (the run's size: width / height or the student's default) */
    tdm_adaptive_params a = p->settings;
    tdm_gen_defaults d;
    tdm_gen_model_defaults(tdm_model_sd(student), &d);
    const int W = a.width > 0 ? a.width : d.width, H = a.height > 0 ? a.height : d.height;
    tdm_world_edit_pair wp0;
    tdm_code rc = tdm_world_edit_pair_make(p->world_seed, 0, &wp0, st);
    if (!rc) rc = render_source(&wp0.source, W, H, &probe, st);
    if (rc) goto done;
    a.prompt = wp0.caption;
    a.width = W;
    a.height = H;
    a.init_image = &probe;
    rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine), &a, &c.su, st);
    if (!rc) rc = tdm_adaptive_setup_refine(&c.su, &a, st);
    c.su.sgp.init_image = c.su.tgp.init_image = NULL;
    if (rc) goto done;
    const char *oracle_name = tdm_oracle_get_name(p->oracle);
    if (p->calibration) {
        rc = tdm_calibration_load(p->calibration, &cal, st);
        if (rc) {
            tdm_fail_context(st, "calibration file");
            goto done;
        }
        for (int j = 0; j < p->n_k && !rc; j++) {
            double t;
            rc = tdm_calibration_tau(cal, p->k[j], &t, st);
        }
        if (rc) goto done;
        tdm_calibration_compare(cal, tdm_model_name(student), c.su.sp.sampler, c.su.sp.steps, c.su.sp.guidance,
                                c.su.sp.width, c.su.sp.height, oracle_name, summary->warnings,
                                sizeof summary->warnings);
    }
    rc = make_dir(p->out_dir, st);
    if (rc) goto done;
    settings = settings_json(p, student, teacher, &c.su, oracle_name);
    header = settings ? cJSON_PrintUnformatted(settings) : NULL;
    const size_t pl = strlen(p->out_dir) + 32;
    log_path = malloc(pl);
    pairs = calloc((size_t)n, sizeof *pairs);
    tau = malloc(sizeof(double) * (size_t)(p->n_k > 0 ? p->n_k : 1));
    if (!header || !log_path || !pairs || !tau) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
        goto done;
    }
    snprintf(log_path, pl, "%s/pairs.jsonl", p->out_dir);
    int done_n = 0;
    rc = open_log(p, log_path, header, pairs, &done_n, &f, st);
    if (rc) goto done;
    summary->n_resumed = done_n;

    for (int i = done_n; i < n; i++) {
        const double t0 = c.clock(c.clock_user);
        tdm_world_edit_pair wp;
        rc = run_pair(&c, i, &wp, &pairs[i], st);
        if (rc) {
            tdm_fail_context(st, "edit-eval: pair %d (seed %llu)", i, (unsigned long long)(p->seed + (uint64_t)i));
            goto done;
        }
        char *line = pair_line(&pairs[i], i, &wp);
        if (!line) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
            goto done;
        }
        const int ok = fprintf(f, "%s\n", line) >= 0 && fflush(f) == 0;
        free(line);
        if (!ok) {
            rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed", log_path);
            goto done;
        }
        fsync(fileno(f));
        if (p->on_pair) {
            tdm_edit_eval_progress pg;
            memset(&pg, 0, sizeof pg);
            pg.done = i + 1;
            pg.total = n;
            pg.resumed = summary->n_resumed;
            pg.instruction = wp.instruction;
            pg.student_checker = pairs[i].base.checker[TDM_EVAL_RUN_STUDENT];
            pg.teacher_checker = pairs[i].base.checker[TDM_EVAL_RUN_TEACHER];
            pg.refine_checker = pairs[i].base.checker[TDM_EVAL_RUN_REFINE];
            pg.seconds = c.clock(c.clock_user) - t0;
            if (p->on_pair(p->user, &pg)) {
                rc = tdm_fail(st, TDM_ERR_CANCELLED, "edit evaluation cancelled after %d of %d pairs (resumable: %s)",
                              i + 1, n, log_path);
                goto done;
            }
        }
    }
    fclose(f);
    f = NULL;

    /* thresholds, methods, tables */
    if (cal) {
        for (int j = 0; j < p->n_k && !rc; j++) rc = tdm_calibration_tau(cal, p->k[j], &tau[j], st);
        if (rc) goto done;
    } else if (p->n_k > 0) {
        double *v = malloc(sizeof(double) * (size_t)n);
        if (!v) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++) v[i] = pairs[i].base.oracle[TDM_EVAL_RUN_STUDENT];
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        for (int j = 0; j < p->n_k; j++) tau[j] = tdm_percentile_sorted(v, n, p->k[j]);
        free(v);
    }
    const int strength = a.refine_convention == TDM_REFINE_STRENGTH;
    char line[1024];
    snprintf(line, sizeof line,
             "student: %s (%s, %d steps, guidance %g); teacher: %s (%s, %d steps, guidance %g); edit strength %g; "
             "refine: %s %g (%d of %d grid steps, %s hand-off); oracle: %s; %dx%d; world seed %llu, noise seed %llu",
             tdm_model_name(student), c.su.sp.sampler, c.su.sp.steps, tdm_float_as_decimal(c.su.sp.guidance),
             tdm_model_name(teacher), c.su.tp.sampler, c.su.tp.steps, tdm_float_as_decimal(c.su.tp.guidance),
             tdm_float_as_decimal(a.strength), strength ? "strength" : "noise",
             tdm_float_as_decimal(strength ? a.refine_strength : a.refine_noise), c.su.rp.steps, c.su.rp.grid_steps,
             c.su.handoff_latent ? "latent" : "pixel", oracle_name, c.su.sp.width, c.su.sp.height,
             (unsigned long long)p->world_seed, (unsigned long long)p->seed);
    char source[1100];
    if (p->calibration) snprintf(source, sizeof source, "calibration %s", p->calibration);
    else snprintf(source, sizeof source, "the evaluation's own student oracle scores");
    tdm_eeval_report_in in;
    memset(&in, 0, sizeof in);
    in.out_dir = p->out_dir;
    in.world_seed = p->world_seed;
    in.pairs = pairs;
    in.n = n;
    in.with_regenerate = c.su.same_latent_shape;
    in.k = p->k;
    in.tau = tau;
    in.n_k = p->n_k;
    in.tau_source = source;
    in.settings_line = line;
    in.warnings = summary->warnings;
    rc = tdm_eeval_write_report(&in, st);
done:
    if (f) fclose(f);
    tdm_image_free(&probe);
    free(tau);
    free(pairs);
    free(log_path);
    free(header);
    cJSON_Delete(settings);
    tdm_calibration_free(cal);
    return rc;
}
