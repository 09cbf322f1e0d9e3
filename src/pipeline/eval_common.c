/* The machinery shared by tandem eval, edit-eval and control-eval (see eval_common.h). */
#include "pipeline/eval_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/calibrate.h"
#include "pipeline/preset.h"

const char *const tdm_evalc_run_key[TDM_EVAL_N_RUNS] = {"student", "teacher", "refine"};

/* ---- the header line ---- */

void tdm_evalc_add_u64(cJSON *o, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    cJSON_AddRawToObject(o, key, buf);
}

static cJSON *stage_json(const char *model, const tdm_gen_plan *pl) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "sampler", pl->sampler);
    cJSON_AddNumberToObject(o, "steps", pl->steps);
    cJSON_AddNumberToObject(o, "guidance", tdm_float_as_decimal(pl->guidance));
    cJSON_AddNumberToObject(o, "eta", tdm_float_as_decimal(pl->eta));
    return o;
}

cJSON *tdm_evalc_header_begin(const char *format, int version, const tdm_model *student, const tdm_model *teacher,
                              const tdm_adaptive_setup *su) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "format", format);
    cJSON_AddNumberToObject(o, "version", version);
    cJSON *sj = stage_json(tdm_model_name(student), &su->sp);
    char lora[512]; /* a LoRA student (--student-lora): its files, scales and application, so that a log made
                       with another LoRA (or none) is not resumed */
    if (sj && tdm_model_lora_summary(student, lora, sizeof lora) > 0) cJSON_AddStringToObject(sj, "lora", lora);
    cJSON_AddItemToObject(o, "student", sj);
    cJSON_AddItemToObject(o, "teacher", stage_json(tdm_model_name(teacher), &su->tp));
    cJSON_AddNumberToObject(o, "width", su->sp.width);
    cJSON_AddNumberToObject(o, "height", su->sp.height);
    return o;
}

void tdm_evalc_add_prompting(cJSON *o, const tdm_adaptive_setup *su) {
    cJSON_AddStringToObject(o, "negative_prompt", su->sp.negative);
    cJSON_AddNumberToObject(o, "clip_skip", su->sp.clip_skip);
    cJSON_AddBoolToObject(o, "emphasis", su->sp.emphasis);
}

void tdm_evalc_add_refine(cJSON *o, const tdm_adaptive_params *a, const tdm_adaptive_setup *su) {
    if (a->preset) cJSON_AddStringToObject(o, "preset", a->preset);
    cJSON *rf = cJSON_AddObjectToObject(o, "refine");
    const int strength = a->refine_convention == TDM_REFINE_STRENGTH;
    cJSON_AddStringToObject(rf, "convention", strength ? "strength" : "noise");
    cJSON_AddNumberToObject(rf, strength ? "strength" : "sigma",
                            tdm_float_as_decimal(strength ? a->refine_strength : a->refine_noise));
    cJSON_AddNumberToObject(rf, "grid_steps", su->rp.grid_steps);
    cJSON_AddNumberToObject(rf, "steps", su->rp.steps);
    cJSON_AddStringToObject(rf, "handoff", su->handoff_latent ? "latent" : "pixels");
    cJSON_AddBoolToObject(o, "regenerate", su->same_latent_shape);
}

void tdm_evalc_add_oracle(cJSON *o, const char *name, const char *model) {
    cJSON *orc = cJSON_AddObjectToObject(o, "oracle");
    cJSON_AddStringToObject(orc, "name", name);
    if (model) cJSON_AddStringToObject(orc, "model", model);
    else cJSON_AddNullToObject(orc, "model");
}

void tdm_evalc_add_controlnet(cJSON *o, const char *name, const char *condition, float scale, float start, float end) {
    cJSON *cn = cJSON_AddObjectToObject(o, "controlnet");
    cJSON_AddStringToObject(cn, "name", name ? name : "controlnet");
    cJSON_AddStringToObject(cn, "condition", condition);
    cJSON_AddNumberToObject(cn, "scale", tdm_float_as_decimal(scale));
    cJSON_AddNumberToObject(cn, "start", tdm_float_as_decimal(start));
    cJSON_AddNumberToObject(cn, "end", tdm_float_as_decimal(end));
}

void tdm_evalc_controlnet_text(const char *name, const char *condition, float scale, float start, float end, char *line,
                               size_t n) {
    tdm_evalc_appendf(line, n, "ControlNet: %s (%s, scale %g, window %g..%g); ", name ? name : "controlnet", condition,
                      tdm_float_as_decimal(scale), tdm_float_as_decimal(start), tdm_float_as_decimal(end));
}

void tdm_evalc_first_difference(const char *have, const char *want, const char *fallback, char *out, size_t n) {
    snprintf(out, n, "%s", fallback);
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

tdm_code tdm_evalc_log_mismatch(const char *path, const char *line, const char *header, const char *fallback,
                                const char *covers, tdm_status *st) {
    char what[96];
    tdm_evalc_first_difference(line, header, fallback, what, sizeof what);
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "%s was made with other settings (%s differs: %s); pass --restart to discard it, or use another "
                    "output folder",
                    path, what, covers);
}

/* ---- log lines, files ---- */

int tdm_evalc_num(const cJSON *o, const char *key, double *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return 0;
    *v = it->valuedouble;
    return 1;
}

double tdm_evalc_now(void *user) {
    (void)user;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

tdm_code tdm_evalc_make_dir(const char *dir, tdm_status *st) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return TDM_OK;
        return tdm_fail(st, TDM_ERR_IO, "%s: exists and is not a folder", dir);
    }
    return tdm_fail(st, TDM_ERR_IO, "%s: cannot create the output folder (%s)", dir, strerror(errno));
}

tdm_code tdm_evalc_log_open(const char *path, int restart, const tdm_jsonl_resume *r, int *done, FILE **f,
                            tdm_status *st) {
    *done = -1;
    *f = NULL;
    if (!restart && access(path, F_OK) == 0) TDM_TRY(tdm_jsonl_resume_read(path, r, done, st));
    if (*done < 0) {
        *f = fopen(path, "w");
        if (!*f || fprintf(*f, "%s\n", r->header) < 0 || fflush(*f) != 0)
            return tdm_fail(st, TDM_ERR_IO, "%s: cannot write the log", path);
        *done = 0;
        return TDM_OK;
    }
    *f = fopen(path, "a");
    if (!*f) return tdm_fail(st, TDM_ERR_IO, "%s: cannot append to the log", path);
    return TDM_OK;
}

tdm_code tdm_evalc_log_append(FILE *f, const char *path, char *line, const char *what, tdm_status *st) {
    if (!line) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", what);
    const int ok = fprintf(f, "%s\n", line) >= 0 && fflush(f) == 0;
    free(line);
    if (!ok) return tdm_fail(st, TDM_ERR_IO, "%s: write failed", path);
    fsync(fileno(f));
    return TDM_OK;
}

/* ---- thresholds ---- */

tdm_code tdm_evalc_calibration_open(const char *file, const double *k, int n_k, const tdm_model *student,
                                    const tdm_adaptive_setup *su, const char *oracle_name, char *warnings,
                                    size_t warnings_size, tdm_calibration **cal, tdm_status *st) {
    *cal = NULL;
    tdm_code rc = tdm_calibration_load(file, cal, st);
    if (rc) return tdm_fail_context(st, "calibration file");
    for (int j = 0; j < n_k && !rc; j++) { /* checked now, before any work */
        double t;
        rc = tdm_calibration_tau(*cal, k[j], &t, st);
    }
    if (rc) return rc; /* (the caller frees *cal) */
    tdm_calibration_compare(*cal, tdm_model_name(student), su->sp.sampler, su->sp.steps, su->sp.guidance,
                            su->sp.width, su->sp.height, su->tp.width, su->tp.height, oracle_name, su->sgp.n_controls,
                            warnings, warnings_size);
    return TDM_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

tdm_code tdm_evalc_thresholds(const tdm_calibration *cal, const double *k, int n_k, const float *student_oracle,
                              size_t stride, int n, const char *what, double *tau, tdm_status *st) {
    if (cal) {
        for (int j = 0; j < n_k; j++) TDM_TRY(tdm_calibration_tau(cal, k[j], &tau[j], st));
        return TDM_OK;
    }
    if (n_k <= 0) return TDM_OK;
    double *v = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)); /* [n] sorted scores */
    if (!v) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < n; i++) v[i] = *(const float *)((const char *)student_oracle + (size_t)i * stride);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    for (int j = 0; j < n_k; j++) tau[j] = tdm_percentile_sorted(v, n, k[j]);
    free(v);
    return TDM_OK;
}

void tdm_evalc_tau_source(const char *calibration, char *out, size_t n) {
    if (calibration) snprintf(out, n, "calibration %s", calibration);
    else snprintf(out, n, "the evaluation's own student oracle scores");
}

/* ---- the tables' settings line ---- */

void tdm_evalc_appendf(char *out, size_t n, const char *fmt, ...) {
    const size_t len = strnlen(out, n);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + len, n - len, fmt, ap);
    va_end(ap);
}

void tdm_evalc_models_text(const tdm_model *student, const tdm_model *teacher, const tdm_adaptive_setup *su,
                           char *out, size_t n) {
    tdm_evalc_appendf(out, n, "student: %s (%s, %d steps, guidance %g); teacher: %s (%s, %d steps, guidance %g)",
             tdm_model_name(student), su->sp.sampler, su->sp.steps, tdm_float_as_decimal(su->sp.guidance),
             tdm_model_name(teacher), su->tp.sampler, su->tp.steps, tdm_float_as_decimal(su->tp.guidance));
}

void tdm_evalc_refine_text(const tdm_adaptive_params *a, const tdm_adaptive_setup *su, char *out, size_t n) {
    const int strength = a->refine_convention == TDM_REFINE_STRENGTH;
    tdm_evalc_appendf(out, n, "refine: %s %g (%d of %d grid steps, %s hand-off)", strength ? "strength" : "noise",
             tdm_float_as_decimal(strength ? a->refine_strength : a->refine_noise), su->rp.steps, su->rp.grid_steps,
             su->handoff_latent ? "latent" : "pixel");
}

/* ---- one sample's three runs ---- */

static void take_stats(const tdm_gen_result *g, tdm_eval_sample *s, int *cn_calls, int run) {
    s->evals[run] = g->stats.unet_calls * g->stats.unet_batch;
    if (cn_calls) cn_calls[run] = g->stats.controlnet_calls;
}

tdm_code tdm_evalc_run_three(const tdm_evalc_runs *r, tdm_eval_sample *s, int *cn_calls, tdm_status *st) {
    const int S = TDM_EVAL_RUN_STUDENT, T = TDM_EVAL_RUN_TEACHER, R = TDM_EVAL_RUN_REFINE;
    tdm_gen_result sres, tres;
    memset(&sres, 0, sizeof sres);
    double t0 = r->clock(r->clock_user);
    tdm_code rc = tdm_adaptive_run_student(r->su, r->su->handoff_latent, &sres, st);
    s->seconds[S] = r->clock(r->clock_user) - t0;
    if (rc) {
        tdm_fail_context(st, "student");
        goto out;
    }
    take_stats(&sres, s, cn_calls, S);
    /* a teacher at another size: the student's image resized to it before the oracle, as tdm_adaptive_generate */
    rc = tdm_adaptive_student_to_teacher_size(r->su, &sres, st);
    if (rc) goto out;
    t0 = r->clock(r->clock_user); /* the student's oracle score is timed: it is the adaptive decision's cost */
    rc = tdm_oracle_score(r->oracle, r->prompt, &sres.image, &s->oracle[S], st);
    s->seconds_oracle = r->clock(r->clock_user) - t0;
    if (!rc && r->score) rc = r->score(r->score_user, S, &sres, st);
    if (rc) goto out;

    /* the teacher-only sample = the regeneration (generate streams), then the refinement of the student's */
    for (int run = T; run <= R && !rc; run++) {
        t0 = r->clock(r->clock_user);
        rc = tdm_adaptive_run_teacher(r->su, run == T ? TDM_DECISION_REGENERATE : TDM_DECISION_REFINE, &sres, NULL,
                                      &tres, st);
        s->seconds[run] = r->clock(r->clock_user) - t0;
        if (rc) {
            tdm_fail_context(st, run == T ? "teacher" : "refinement");
            break;
        }
        take_stats(&tres, s, cn_calls, run);
        rc = tdm_oracle_score(r->oracle, r->prompt, &tres.image, &s->oracle[run], st);
        if (!rc && r->score) rc = r->score(r->score_user, run, &tres, st);
        tdm_gen_result_free(&tres);
    }
out:
    tdm_gen_result_free(&sres);
    return rc;
}
