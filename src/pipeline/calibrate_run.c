/* tandem calibrate: student samples -> oracle scores -> tau_k, resumable (docs/ADAPTIVE.md).
 *
 * Sample i (0-based) uses prompt i mod P of the prompts file and seed (seed + i). Each scored sample is
 * appended as one JSON line to <out>.partial (flushed and fsync'ed) after a header line holding the
 * settings; a rerun with the same settings continues after the last complete line (a torn last line
 * is dropped), a rerun with other settings is refused unless restart is set. At the end the
 * calibration JSON is written to <out> (through a temporary file and rename) and the partial file is
 * removed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "base/jsonl_log.h"
#include "io/image.h"
#include "pipeline/calibrate.h"

void tdm_calibrate_params_init(tdm_calibrate_params *p) {
    memset(p, 0, sizeof *p);
    p->negative_prompt = "";
    p->clip_skip = 1;
    p->emphasis = 1;
    p->student.guidance = -1.0f;
}

/* The settings object (header line of the partial file and body of the final file). */
static cJSON *settings_json(const tdm_model *student, const tdm_gen_plan *pl, const tdm_calibrate_params *p,
                            const char *oracle, const tdm_prompts *pr) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", TDM_CALIBRATION_FORMAT);
    cJSON_AddNumberToObject(o, "version", TDM_CALIBRATION_VERSION);
    cJSON *s = cJSON_AddObjectToObject(o, "student");
    cJSON_AddStringToObject(s, "model", tdm_model_name(student));
    cJSON_AddStringToObject(s, "sampler", pl->sampler);
    cJSON_AddNumberToObject(s, "steps", pl->steps);
    cJSON_AddNumberToObject(s, "guidance", tdm_float_as_decimal(pl->guidance));
    cJSON_AddNumberToObject(s, "eta", tdm_float_as_decimal(pl->eta));
    cJSON_AddNumberToObject(s, "width", pl->width);
    cJSON_AddNumberToObject(s, "height", pl->height);
    cJSON_AddNumberToObject(s, "clip_skip", pl->clip_skip);
    cJSON_AddBoolToObject(s, "emphasis", pl->emphasis);
    cJSON_AddStringToObject(s, "negative_prompt", pl->negative);
    if (p->score_width && (p->score_width != pl->width || p->score_height != pl->height)) {
        cJSON *sc = cJSON_AddObjectToObject(o, "scored_size"); /* the student's image resized before the oracle */
        cJSON_AddNumberToObject(sc, "width", p->score_width);
        cJSON_AddNumberToObject(sc, "height", p->score_height);
        cJSON_AddStringToObject(sc, "resize", "bicubic");
    }
    cJSON *orc = cJSON_AddObjectToObject(o, "oracle");
    cJSON_AddStringToObject(orc, "name", oracle);
    if (p->oracle_model) cJSON_AddStringToObject(orc, "model", p->oracle_model);
    else cJSON_AddNullToObject(orc, "model");
    cJSON *pj = cJSON_AddObjectToObject(o, "prompts");
    cJSON_AddStringToObject(pj, "file", p->prompts_file);
    cJSON_AddStringToObject(pj, "sha256", pr->sha256);
    cJSON_AddNumberToObject(pj, "count", pr->n);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON_AddRawToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "sample_rule", "sample i: prompt i mod count, seed + i");
    return o;
}

/* A partial file's sample lines: {"i", "prompt", "seed", "score"}; scores[] takes the first n_max. */
typedef struct partial_ctx {
    double *scores; /* [n_max] */
    int n_max, P;
    uint64_t seed;
} partial_ctx;

static int partial_sample(void *user, const char *line, int done) {
    const partial_ctx *c = user;
    cJSON *o = cJSON_Parse(line);
    const cJSON *ji = cJSON_GetObjectItemCaseSensitive(o, "i");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(o, "score");
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *jseed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    int ok = cJSON_IsNumber(ji) && cJSON_IsNumber(js) && cJSON_IsNumber(jp) && cJSON_IsNumber(jseed) &&
             ji->valuedouble == done && jp->valuedouble == done % c->P &&
             (uint64_t)jseed->valuedouble == c->seed + (uint64_t)done && isfinite(js->valuedouble);
    double v = ok ? js->valuedouble : 0;
    cJSON_Delete(o);
    if (ok && done < c->n_max) c->scores[done] = (double)(float)v; /* scores are floats, written with %.9g */
    return ok;
}

static tdm_code partial_mismatch(void *user, const char *path, const char *line, tdm_status *st) {
    (void)user;
    (void)line;
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "%s was started with other settings (student, oracle, prompts or seed differ); "
                    "delete it or pass --restart",
                    path);
}

/* Reads an existing partial file: checks the header, takes the complete sample lines into scores[],
 * truncates a torn last line. *done = samples recovered (-1: no complete header, start over). */
static tdm_code read_partial(const char *path, const char *header, double *scores, int n_max, int P, uint64_t seed,
                             int *done, tdm_status *st) {
    partial_ctx c = {scores, n_max, P, seed};
    const tdm_jsonl_resume r = {header, (size_t)1 << 30,
                                "calibration (corrupt partial file; delete it or pass --restart)", partial_mismatch,
                                partial_sample, &c};
    return tdm_jsonl_resume_read(path, &r, done, st);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static tdm_code write_final(const char *out_path, cJSON *settings, const double *scores, int n, tdm_status *st) {
    cJSON_AddNumberToObject(settings, "n", n);
    cJSON_AddStringToObject(settings, "percentile_method", "numpy.percentile default (linear): rank = k/100 * (n - 1)");
    double *sorted = malloc(sizeof(double) * (size_t)n);
    if (!sorted) return tdm_fail(st, TDM_ERR_NOMEM, "calibration: out of memory");
    memcpy(sorted, scores, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    cJSON *tau = cJSON_AddObjectToObject(settings, "tau");
    for (int k = 1; k <= 99; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        cJSON_AddNumberToObject(tau, key, tdm_percentile_sorted(sorted, n, k));
    }
    free(sorted);
    cJSON *arr = cJSON_AddArrayToObject(settings, "scores");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(scores[i]));
    char *text = cJSON_Print(settings);
    if (!text) return tdm_fail(st, TDM_ERR_NOMEM, "calibration: out of memory");
    size_t tl = strlen(out_path) + 8;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(text);
        return tdm_fail(st, TDM_ERR_NOMEM, "calibration: out of memory");
    }
    snprintf(tmp, tl, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    tdm_code rc = TDM_OK;
    if (!f) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot write", tmp);
    else {
        int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        ok &= fclose(f) == 0;
        if (!ok) rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed", tmp);
        else if (rename(tmp, out_path) != 0) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot rename to %s", tmp, out_path);
    }
    free(tmp);
    free(text);
    return rc;
}

tdm_code tdm_calibrate(tdm_engine *engine, const tdm_model *student, const tdm_calibrate_params *p, int *resumed,
                       tdm_status *st) {
    if (resumed) *resumed = 0;
    if (!engine || !student || !p) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_calibrate: engine, student and params are required");
    if (!p->prompts_file || !*p->prompts_file) return tdm_fail(st, TDM_ERR_INVALID_ARG, "calibrate: no prompts file given");
    if (!p->out_path || !*p->out_path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "calibrate: no output file given");
    if (!p->oracle) return tdm_fail(st, TDM_ERR_INVALID_ARG, "calibrate: no oracle given");
    if (p->n < 1 || p->n > 10000000) return tdm_fail(st, TDM_ERR_INVALID_ARG, "calibrate: n = %d is out of range [1, 10^7]", p->n);
    if ((p->score_width > 0) != (p->score_height > 0) || p->score_width < 0 || p->score_height < 0 ||
        p->score_width > 16384 || p->score_height > 16384)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "calibrate: scored size %dx%d: give both in [1, 16384], or neither",
                        p->score_width, p->score_height);
    tdm_prompts pr;
    TDM_TRY(tdm_prompts_load(p->prompts_file, &pr, st));

    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = pr.line[0];
    gp.negative_prompt = p->negative_prompt;
    gp.steps = p->student.steps;
    gp.guidance_scale = p->student.guidance;
    gp.sampler = p->student.sampler;
    gp.eta = p->student.eta;
    gp.width = p->width;
    gp.height = p->height;
    gp.clip_skip = p->clip_skip;
    gp.emphasis = p->emphasis;
    gp.progress = p->progress;
    gp.progress_user = p->progress_user;
    tdm_gen_plan pl;
    tdm_code rc = tdm_gen_resolve(tdm_model_sd(student), &gp, &pl, st);
    if (rc) {
        tdm_prompts_free(&pr);
        return rc;
    }
    cJSON *settings = settings_json(student, &pl, p, tdm_oracle_get_name(p->oracle), &pr);
    char *header = cJSON_PrintUnformatted(settings);
    size_t pl_len = strlen(p->out_path) + 16;
    char *partial = malloc(pl_len);
    double *scores = malloc(sizeof(double) * (size_t)p->n);
    FILE *f = NULL;
    if (!header || !partial || !scores) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "calibrate: out of memory");
        goto done;
    }
    snprintf(partial, pl_len, "%s.partial", p->out_path);
    int done_n = -1;
    if (!p->restart && access(partial, F_OK) == 0) {
        rc = read_partial(partial, header, scores, p->n, pr.n, p->seed, &done_n, st);
        if (rc) goto done;
    }
    if (done_n < 0) { /* fresh start */
        f = fopen(partial, "w");
        if (!f || fprintf(f, "%s\n", header) < 0 || fflush(f) != 0) {
            rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot write the partial file", partial);
            goto done;
        }
        done_n = 0;
    } else {
        if (resumed) *resumed = done_n < p->n ? done_n : p->n;
        f = fopen(partial, "a");
        if (!f) {
            rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot append to the partial file", partial);
            goto done;
        }
    }
    for (int i = done_n; i < p->n; i++) {
        const int j = i % pr.n;
        gp.prompt = pr.line[j];
        gp.seed = p->seed + (uint64_t)i;
        tdm_image img = {0};
        rc = tdm_generate(engine, student, &gp, &img, NULL, st);
        if (rc) {
            tdm_fail_context(st, "calibrate: sample %d (prompt %d)", i, j + 1);
            goto done;
        }
        if (p->score_width && (p->score_width != img.width || p->score_height != img.height)) {
            tdm_image big = {0}; /* as tdm_adaptive_generate with a teacher of another size */
            rc = tdm_image_resize(&img, p->score_width, p->score_height, TDM_RESAMPLE_BICUBIC, &big, st);
            tdm_image_free(&img);
            if (rc) goto done;
            img = big;
        }
        float score = 0;
        rc = tdm_oracle_score(p->oracle, pr.line[j], &img, &score, st);
        tdm_image_free(&img);
        if (rc) {
            tdm_fail_context(st, "calibrate: sample %d (%s:%d)", i, p->prompts_file, j + 1);
            goto done;
        }
        scores[i] = score;
        if (fprintf(f, "{\"i\":%d,\"prompt\":%d,\"seed\":%llu,\"score\":%.9g}\n", i, j,
                    (unsigned long long)(p->seed + (uint64_t)i), (double)score) < 0 ||
            fflush(f) != 0) {
            rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed", partial);
            goto done;
        }
        fsync(fileno(f));
        if (p->on_sample && p->on_sample(p->user, i + 1, p->n, score)) {
            rc = tdm_fail(st, TDM_ERR_CANCELLED, "calibration cancelled after %d of %d samples (resumable: %s)", i + 1,
                          p->n, partial);
            goto done;
        }
    }
    fclose(f);
    f = NULL;
    rc = write_final(p->out_path, settings, scores, p->n, st);
    if (!rc) remove(partial);
done:
    if (f) fclose(f);
    cJSON_Delete(settings);
    free(header);
    free(partial);
    free(scores);
    tdm_prompts_free(&pr);
    return rc;
}
