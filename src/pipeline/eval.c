/* tandem eval: every method on the same prompts and seeds, resumable (see eval.h, docs/ADAPTIVE.md).
 *
 * Sample i (0-based) is prompt i / S of the prompts file with seed seeds[i mod S] (S seeds; plus the prompt
 * index i / S with seed_per_prompt). Its three
 * runs (the student's sample, the teacher-only sample, the teacher's refinement of the student's sample)
 * are appended as one JSON line to OUT/samples.jsonl (flushed and fsync'ed) after a header line holding
 * the settings; a rerun with the same settings continues after the last complete line (a torn last line
 * is dropped), a rerun with other settings is refused unless restart is set. The threshold (k,
 * calibration) is not part of the settings: the methods are derived from the samples at the end, so a
 * finished evaluation can be rerun with other k at no cost. */
#include "pipeline/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/jsonl_log.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/calibrate.h"
#include "pipeline/eval_common.h"
#include "world/checker.h"

#define EVAL_LOG_FORMAT "tandem-eval-log"
#define EVAL_LOG_VERSION 1
#define EVAL_MAX_SEEDS 1000000

void tdm_eval_params_init(tdm_eval_params *p) {
    memset(p, 0, sizeof *p);
    tdm_adaptive_params_init(&p->settings);
}

/* ---- seeds ---- */

/* The seed of sample i: seeds[i mod S], + the prompt index i / S with seed_per_prompt. */
static uint64_t sample_seed(const tdm_eval_params *p, int i) {
    const uint64_t s = p->seeds[i % p->n_seeds];
    return p->seed_per_prompt ? s + (uint64_t)(i / p->n_seeds) : s;
}

static int parse_u64(const char *s, const char *end, uint64_t *out) {
    if (s == end) return 0;
    uint64_t v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9') return 0;
        const uint64_t d = (uint64_t)(*c - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

tdm_code tdm_eval_parse_seeds(const char *spec, uint64_t **seeds, int *n, tdm_status *st) {
    *seeds = NULL;
    *n = 0;
    if (!spec || !*spec) return tdm_fail(st, TDM_ERR_INVALID_ARG, "seeds: empty list (e.g. 0:100 or 1,2,3)");
    uint64_t *v = NULL;
    int count = 0, cap = 0;
    const char *p = spec;
    while (1) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(e - p));
        uint64_t a = 0, b = 0;
        int ok = colon ? parse_u64(p, colon, &a) && parse_u64(colon + 1, e, &b) && b > a : parse_u64(p, e, &a);
        if (!ok) {
            free(v);
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "seeds: '%.*s' is not a seed or a range A:B with A < B (in '%s')",
                            (int)(e - p), p, spec);
        }
        if (!colon) b = a + 1;
        if (b - a > (uint64_t)(EVAL_MAX_SEEDS - count)) {
            free(v);
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "seeds: more than %d seeds in '%s'", EVAL_MAX_SEEDS, spec);
        }
        const int add = (int)(b - a);
        if (count + add > cap) {
            int nc = cap ? cap : 16;
            while (nc < count + add) nc *= 2;
            uint64_t *nv = realloc(v, sizeof *v * (size_t)nc);
            if (!nv) {
                free(v);
                return tdm_fail(st, TDM_ERR_NOMEM, "seeds: out of memory");
            }
            v = nv;
            cap = nc;
        }
        for (int i = 0; i < add; i++) v[count++] = a + (uint64_t)i;
        if (!*e) break;
        p = e + 1;
    }
    *seeds = v;
    *n = count;
    return TDM_OK;
}

/* ---- settings (the log's header line) ---- */

static cJSON *settings_json(const tdm_eval_params *p, const tdm_model *student, const tdm_model *teacher,
                            const tdm_adaptive_setup *su, const char *oracle, const tdm_prompts *pr) {
    const tdm_adaptive_params *a = &p->settings;
    cJSON *o = tdm_evalc_header_begin(EVAL_LOG_FORMAT, EVAL_LOG_VERSION, student, teacher, su);
    if (!o) return NULL;
    if (su->tp.width != su->sp.width || su->tp.height != su->sp.height) { /* only then: older logs stay valid */
        cJSON_AddNumberToObject(o, "teacher_width", su->tp.width);
        cJSON_AddNumberToObject(o, "teacher_height", su->tp.height);
    }
    tdm_evalc_add_prompting(o, su);
    tdm_evalc_add_refine(o, a, su);
    cJSON *cs = cJSON_AddArrayToObject(o, "controls");
    for (int k = 0; k < a->n_controls; k++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "scale", tdm_float_as_decimal(a->controls[k].scale));
        cJSON_AddNumberToObject(c, "start", tdm_float_as_decimal(a->controls[k].start));
        cJSON_AddNumberToObject(c, "end", tdm_float_as_decimal(a->controls[k].end));
        cJSON_AddItemToArray(cs, c);
    }
    tdm_evalc_add_oracle(o, oracle, p->oracle_model);
    cJSON *pj = cJSON_AddObjectToObject(o, "prompts");
    cJSON_AddStringToObject(pj, "sha256", pr->sha256);
    cJSON_AddNumberToObject(pj, "count", pr->n);
    cJSON *sj = cJSON_AddArrayToObject(o, "seeds");
    for (int i = 0; i < p->n_seeds; i++) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seeds[i]);
        cJSON_AddItemToArray(sj, cJSON_CreateRaw(seed));
    }
    cJSON_AddStringToObject(o, "sample_rule", p->seed_per_prompt
                                                  ? "sample i: prompt i / seeds, seed seeds[i mod seeds] + i / seeds"
                                                  : "sample i: prompt i / seeds, seed seeds[i mod seeds]");
    return o;
}

/* ---- log lines ---- */




static char *sample_line(const tdm_eval_sample *s, int i, const char *prompt) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "sample", i);
    cJSON_AddNumberToObject(o, "prompt_index", s->prompt_index);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    cJSON_AddRawToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "prompt", prompt);
    for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
        cJSON *rj = cJSON_AddObjectToObject(o, tdm_evalc_run_key[r]);
        if (s->has_checker) cJSON_AddNumberToObject(rj, "checker", s->checker[r]);
        else cJSON_AddNullToObject(rj, "checker");
        cJSON_AddNumberToObject(rj, "oracle", s->oracle[r]);
        cJSON_AddNumberToObject(rj, "unet_evals", s->evals[r]);
        cJSON_AddNumberToObject(rj, "seconds", s->seconds[r]);
    }
    cJSON_AddNumberToObject(o, "seconds_oracle", s->seconds_oracle);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* Parses a log line into s; checks it is sample i (prompt i / S, seed sample_seed(p, i)). */
static int parse_sample_line(const char *line, int i, const tdm_eval_params *p, tdm_eval_sample *s) {
    cJSON *o = cJSON_Parse(line);
    if (!o) return 0;
    memset(s, 0, sizeof *s);
    s->prompt_index = i / p->n_seeds;
    s->seed = sample_seed(p, i);
    double v = 0;
    int ok = tdm_evalc_num(o, "sample", &v) && v == i && tdm_evalc_num(o, "prompt_index", &v) && v == s->prompt_index &&
             tdm_evalc_num(o, "seed", &v) && v == (double)s->seed && tdm_evalc_num(o, "seconds_oracle", &s->seconds_oracle);
    int checker_seen = 0, null_seen = 0;
    for (int r = 0; ok && r < TDM_EVAL_N_RUNS; r++) {
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(o, tdm_evalc_run_key[r]);
        double c = 0, orc = 0, ev = 0, sec = 0;
        ok = cJSON_IsObject(rj) && tdm_evalc_num(rj, "oracle", &orc) && tdm_evalc_num(rj, "unet_evals", &ev) &&
             tdm_evalc_num(rj, "seconds", &sec) && ev >= 0 && ev <= 1e9;
        if (!ok) break;
        if (tdm_evalc_num(rj, "checker", &c)) {
            checker_seen++;
            s->checker[r] = (float)c;
        } else if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rj, "checker"))) null_seen++;
        s->oracle[r] = (float)orc;
        s->evals[r] = (int)ev;
        s->seconds[r] = sec;
    }
    ok = ok && (checker_seen == TDM_EVAL_N_RUNS || null_seen == TDM_EVAL_N_RUNS);
    s->has_checker = checker_seen == TDM_EVAL_N_RUNS;
    cJSON_Delete(o);
    return ok;
}

typedef struct log_ctx {
    const tdm_eval_params *p;
    int n_max;
    tdm_eval_sample *samples; /* [n_max] */
    const char *header;
} log_ctx;

static int log_sample(void *user, const char *line, int done) {
    const log_ctx *c = user;
    return done < c->n_max && parse_sample_line(line, done, c->p, &c->samples[done]);
}

static tdm_code log_mismatch(void *user, const char *path, const char *line, tdm_status *st) {
    const log_ctx *c = user;
    return tdm_evalc_log_mismatch(path, line, c->header, "the header",
                                  "models, their settings, refinement, oracle, prompts or seeds", st);
}

/* ---- one sample ---- */

typedef struct eval_ctx {
    const tdm_eval_params *p;
    tdm_adaptive_setup su;
    tdm_oracle *oracle;
    double (*clock)(void *);
    void *clock_user;
} eval_ctx;

/* The checker's score of img (when the prompt is a shapes-world caption: q set). */
static tdm_code check(const tdm_world_query *q, const tdm_image *img, float *checker, tdm_status *st) {
    if (!q) return TDM_OK;
    tdm_world_check_result res;
    TDM_TRY(tdm_world_check(q, img->pixels, img->width, img->height, &res, st));
    *checker = res.score;
    return TDM_OK;
}

/* The checker's score of run `run`'s image (tdm_evalc_score_fn; user: the sample's run_user). */
typedef struct run_user {
    const tdm_world_query *q;
    tdm_eval_sample *s;
} run_user;

static tdm_code score_run(void *user, int run, const tdm_gen_result *g, tdm_status *st) {
    run_user *u = user;
    return check(u->q, &g->image, &u->s->checker[run], st);
}

static tdm_code run_sample(eval_ctx *c, const char *prompt, int prompt_index, uint64_t seed, tdm_eval_sample *s,
                           tdm_status *st) {
    memset(s, 0, sizeof *s);
    s->prompt_index = prompt_index;
    s->seed = seed;
    tdm_world_query q;
    tdm_status ignore = {0};
    s->has_checker = tdm_world_parse(prompt, &q, &ignore) == TDM_OK;
    c->su.sgp.prompt = c->su.tgp.prompt = prompt;
    c->su.sgp.seed = c->su.tgp.seed = seed;
    c->su.sp.prompt = c->su.tp.prompt = prompt;
    c->su.sp.seed = c->su.tp.seed = seed;
    run_user u = {s->has_checker ? &q : NULL, s};
    const tdm_evalc_runs r = {&c->su, c->oracle, prompt, c->clock, c->clock_user, score_run, &u};
    return tdm_evalc_run_three(&r, s, NULL, st);
}

/* ---- the run ---- */

static tdm_code check_params(const tdm_eval_params *p, tdm_status *st) {
    if (!p->prompts_file || !*p->prompts_file) return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: no prompts file given");
    if (!p->out_dir || !*p->out_dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: no output folder given");
    if (!p->oracle) return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: no oracle given");
    if (!p->seeds || p->n_seeds < 1 || p->n_seeds > EVAL_MAX_SEEDS)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: %d seeds (1..%d)", p->n_seeds, EVAL_MAX_SEEDS);
    if (p->n_k < 0 || p->n_k > 128 || (p->n_k && !p->k))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: %d values of k (0..128)", p->n_k);
    for (int j = 0; j < p->n_k; j++) TDM_TRY(tdm_calibration_check_k(p->k[j], st));
    return TDM_OK;
}

tdm_code tdm_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher, const tdm_eval_params *p,
                  tdm_eval_summary *summary, tdm_status *st) {
    tdm_eval_summary dummy;
    if (!summary) summary = &dummy;
    memset(summary, 0, sizeof *summary);
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_eval: engine, student, teacher and params are required");
    TDM_TRY(check_params(p, st));
    tdm_prompts pr;
    TDM_TRY(tdm_prompts_load(p->prompts_file, &pr, st));
    if ((int64_t)pr.n * p->n_seeds > 100000000) {
        tdm_prompts_free(&pr);
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: %d prompts x %d seeds is too many samples", pr.n, p->n_seeds);
    }
    const int n = pr.n * p->n_seeds;
    summary->n_samples = n;

    eval_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.oracle = p->oracle;
    c.clock = p->clock ? p->clock : tdm_evalc_now;
    c.clock_user = p->clock_user;
    tdm_calibration *cal = NULL;
    cJSON *settings = NULL;
    char *header = NULL, *log_path = NULL;
    tdm_eval_sample *samples = NULL;
    double *tau = NULL;
    FILE *f = NULL;
    tdm_adaptive_params a = p->settings;
    a.prompt = pr.line[0];
    tdm_code rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine), &a,
                                          &c.su, st);
    if (!rc) rc = tdm_adaptive_setup_refine(&c.su, &a, st);
    if (rc) goto done;
    const char *oracle_name = tdm_oracle_get_name(p->oracle);
    if (p->calibration) {
        rc = tdm_evalc_calibration_open(p->calibration, p->k, p->n_k, student, &c.su, oracle_name, summary->warnings,
                                        sizeof summary->warnings, &cal, st);
        if (rc) goto done;
    }
    rc = tdm_evalc_make_dir(p->out_dir, st);
    if (rc) goto done;
    settings = settings_json(p, student, teacher, &c.su, oracle_name, &pr);
    header = settings ? cJSON_PrintUnformatted(settings) : NULL;
    size_t pl = strlen(p->out_dir) + 32;
    log_path = malloc(pl);
    samples = calloc((size_t)n, sizeof *samples);
    tau = malloc(sizeof(double) * (size_t)(p->n_k > 0 ? p->n_k : 1));
    if (!header || !log_path || !samples || !tau) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "eval: out of memory");
        goto done;
    }
    snprintf(log_path, pl, "%s/samples.jsonl", p->out_dir);

    /* resume */
    int done_n = 0;
    log_ctx lc = {p, n, samples, header};
    const tdm_jsonl_resume res = {header, (size_t)1 << 32, "evaluation (corrupt log; delete it or pass --restart)",
                                  log_mismatch, log_sample, &lc};
    rc = tdm_evalc_log_open(log_path, p->restart, &res, &done_n, &f, st);
    if (rc) goto done;
    summary->n_resumed = done_n;

    /* samples */
    for (int i = done_n; i < n; i++) {
        const int j = i / p->n_seeds;
        const uint64_t seed = sample_seed(p, i);
        double t0 = c.clock(c.clock_user);
        rc = run_sample(&c, pr.line[j], j, seed, &samples[i], st);
        if (rc) {
            tdm_fail_context(st, "eval: sample %d (%s:%d, seed %llu)", i, p->prompts_file, j + 1,
                             (unsigned long long)seed);
            goto done;
        }
        rc = tdm_evalc_log_append(f, log_path, sample_line(&samples[i], i, pr.line[j]), "eval", st);
        if (rc) goto done;
        if (p->on_sample) {
            tdm_eval_progress pg;
            memset(&pg, 0, sizeof pg);
            pg.done = i + 1;
            pg.total = n;
            pg.resumed = summary->n_resumed;
            pg.prompt_index = j;
            pg.seed = seed;
            pg.student_oracle = samples[i].oracle[TDM_EVAL_RUN_STUDENT];
            pg.teacher_oracle = samples[i].oracle[TDM_EVAL_RUN_TEACHER];
            pg.refine_oracle = samples[i].oracle[TDM_EVAL_RUN_REFINE];
            pg.seconds = c.clock(c.clock_user) - t0;
            if (p->on_sample(p->user, &pg)) {
                rc = tdm_fail(st, TDM_ERR_CANCELLED, "evaluation cancelled after %d of %d samples (resumable: %s)",
                              i + 1, n, log_path);
                goto done;
            }
        }
    }
    fclose(f);
    f = NULL;

    /* the methods, the table */
    rc = tdm_evalc_thresholds(cal, p->k, p->n_k, &samples[0].oracle[TDM_EVAL_RUN_STUDENT], sizeof *samples, n, "eval",
                              tau, st);
    if (rc) goto done;
    char line[1024] = "";
    tdm_evalc_models_text(student, teacher, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line, "; ");
    tdm_evalc_refine_text(&a, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line, "; oracle: %s; %dx%d", oracle_name, c.su.sp.width, c.su.sp.height);
    char source[1100];
    tdm_evalc_tau_source(p->calibration, source, sizeof source);
    tdm_eval_report_in in;
    memset(&in, 0, sizeof in);
    in.out_dir = p->out_dir;
    in.prompts_file = p->prompts_file;
    in.prompts = (const char *const *)pr.line;
    in.samples = samples;
    in.n = n;
    in.with_regenerate = c.su.same_latent_shape;
    in.k = p->k;
    in.tau = tau;
    in.n_k = p->n_k;
    in.tau_source = source;
    in.settings_line = line;
    in.warnings = summary->warnings;
    rc = tdm_eval_write_report(&in, st);
done:
    if (f) fclose(f);
    free(tau);
    free(samples);
    free(log_path);
    free(header);
    cJSON_Delete(settings);
    tdm_calibration_free(cal);
    tdm_prompts_free(&pr);
    return rc;
}
