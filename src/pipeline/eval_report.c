/* tandem eval: the methods derived from the samples, results.jsonl and table.md (see eval.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "pipeline/eval.h"

static const char *const k_method_names[TDM_EVAL_N_METHODS] = {
    "student", "teacher", "refine-all", "regenerate-all", "adaptive-refine", "adaptive-regenerate",
    "adaptive-refine-best", "adaptive-regenerate-best"};

const char *tdm_eval_method_name(tdm_eval_method m) {
    return m >= 0 && m < TDM_EVAL_N_METHODS ? k_method_names[m] : "?";
}

int tdm_eval_adaptive_methods(int with_regenerate, tdm_eval_method out[4]) {
    int n = 0;
    out[n++] = TDM_EVAL_ADAPTIVE_REFINE;
    if (with_regenerate) out[n++] = TDM_EVAL_ADAPTIVE_REGENERATE;
    out[n++] = TDM_EVAL_ADAPTIVE_REFINE_BEST;
    if (with_regenerate) out[n++] = TDM_EVAL_ADAPTIVE_REGENERATE_BEST;
    return n;
}

int tdm_eval_method_adaptive(tdm_eval_method m) { return m >= TDM_EVAL_ADAPTIVE_REFINE && m < TDM_EVAL_N_METHODS; }

int tdm_eval_method_teacher_run(tdm_eval_method m) {
    switch (m) {
    case TDM_EVAL_STUDENT: return -1;
    case TDM_EVAL_REFINE_ALL:
    case TDM_EVAL_ADAPTIVE_REFINE:
    case TDM_EVAL_ADAPTIVE_REFINE_BEST: return TDM_EVAL_RUN_REFINE;
    default: return TDM_EVAL_RUN_TEACHER;
    }
}

void tdm_eval_record_make(const tdm_eval_sample *s, tdm_eval_method method, double k, double tau,
                          tdm_eval_record *r) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->k = r->tau = NAN;
    r->teacher_ran = 1;
    const int S = TDM_EVAL_RUN_STUDENT, T = TDM_EVAL_RUN_TEACHER, R = TDM_EVAL_RUN_REFINE;
    switch (method) {
    case TDM_EVAL_STUDENT:
        r->run = S;
        r->teacher_ran = -1;
        r->evals_student = s->evals[S];
        r->seconds_student = s->seconds[S];
        break;
    case TDM_EVAL_TEACHER:
        r->run = T;
        r->teacher_ran = -1;
        r->evals_teacher = s->evals[T];
        r->seconds_teacher = s->seconds[T];
        break;
    case TDM_EVAL_REFINE_ALL: /* tau = +inf: no oracle needed */
    case TDM_EVAL_REGENERATE_ALL:
        r->run = method == TDM_EVAL_REFINE_ALL ? R : T;
        r->evals_student = s->evals[S];
        r->seconds_student = s->seconds[S];
        r->evals_teacher = s->evals[r->run];
        r->seconds_teacher = s->seconds[r->run];
        break;
    default: { /* adaptive: keep when the student's oracle score >= tau (tdm_adaptive_generate's rule) */
        const int best = method == TDM_EVAL_ADAPTIVE_REFINE_BEST || method == TDM_EVAL_ADAPTIVE_REGENERATE_BEST;
        const int teacher_run = tdm_eval_method_teacher_run(method);
        r->k = k;
        r->tau = tau;
        r->teacher_ran = !((double)s->oracle[S] >= tau);
        r->run = r->teacher_ran ? teacher_run : S;
        r->evals_student = s->evals[S];
        r->seconds_student = s->seconds[S];
        r->seconds_oracle = s->seconds_oracle;
        if (r->teacher_ran) { /* regenerate: the teacher-only sample, counted as if run */
            r->evals_teacher = s->evals[teacher_run];
            r->seconds_teacher = s->seconds[teacher_run];
            if (best) { /* keep_better: the student's image when the oracle scores it higher */
                if (s->oracle[teacher_run] < s->oracle[S]) r->run = S;
                r->seconds_oracle += s->seconds_oracle;
            }
        }
        break;
    }
    }
}

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

void tdm_eval_record_add_decision(cJSON *o, const tdm_eval_record *r) {
    if (r->teacher_ran < 0) {
        cJSON_AddNullToObject(o, "decision");
        return;
    }
    const int refine = tdm_eval_method_teacher_run(r->method) == TDM_EVAL_RUN_REFINE;
    cJSON_AddStringToObject(o, "decision", !r->teacher_ran ? "keep" : refine ? "refine" : "regenerate");
    if (r->method == TDM_EVAL_ADAPTIVE_REFINE_BEST || r->method == TDM_EVAL_ADAPTIVE_REGENERATE_BEST)
        cJSON_AddStringToObject(o, "selected", r->run == TDM_EVAL_RUN_STUDENT ? "student" : "teacher");
}

char *tdm_eval_record_json(const tdm_eval_sample *s, const char *prompt, int sample_index, const tdm_eval_record *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "sample", sample_index);
    cJSON_AddNumberToObject(o, "prompt_index", s->prompt_index);
    cJSON_AddStringToObject(o, "prompt", prompt);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    cJSON_AddRawToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "method", tdm_eval_method_name(r->method));
    add_num(o, "k", r->k);
    if (isnan(r->tau)) cJSON_AddNullToObject(o, "tau");
    else if (isinf(r->tau)) cJSON_AddStringToObject(o, "tau", r->tau > 0 ? "+inf" : "-inf");
    else cJSON_AddNumberToObject(o, "tau", r->tau);
    if (s->has_checker) cJSON_AddNumberToObject(o, "checker", s->checker[r->run]);
    else cJSON_AddNullToObject(o, "checker");
    cJSON_AddNumberToObject(o, "oracle", s->oracle[r->run]);
    tdm_eval_record_add_decision(o, r);
    cJSON_AddNumberToObject(o, "unet_evals", r->evals_student + r->evals_teacher);
    cJSON_AddNumberToObject(o, "unet_evals_student", r->evals_student);
    cJSON_AddNumberToObject(o, "unet_evals_teacher", r->evals_teacher);
    cJSON_AddNumberToObject(o, "seconds", r->seconds_student + r->seconds_oracle + r->seconds_teacher);
    cJSON_AddNumberToObject(o, "seconds_student", r->seconds_student);
    cJSON_AddNumberToObject(o, "seconds_oracle", r->seconds_oracle);
    cJSON_AddNumberToObject(o, "seconds_teacher", r->seconds_teacher);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- the table ---- */

typedef struct row_stats {
    int n, n_checker, routed;
    double checker, oracle, evals, seconds; /* sums */
} row_stats;

static void row_add(row_stats *rs, const tdm_eval_sample *s, const tdm_eval_record *r) {
    rs->n++;
    if (s->has_checker) {
        rs->n_checker++;
        rs->checker += s->checker[r->run];
    }
    rs->oracle += s->oracle[r->run];
    rs->routed += r->teacher_ran > 0;
    rs->evals += r->evals_student + r->evals_teacher;
    rs->seconds += r->seconds_student + r->seconds_oracle + r->seconds_teacher;
}

static void row_print(FILE *f, const char *method, double k, double tau, int routes, const row_stats *rs) {
    char kb[32] = "", tb[32] = "", share[32] = "-", ck[32] = "n/a";
    if (!isnan(k)) snprintf(kb, sizeof kb, "%g", k);
    if (!isnan(tau)) snprintf(tb, sizeof tb, "%.4g", tau);
    if (routes) snprintf(share, sizeof share, "%.3f", rs->n ? (double)rs->routed / rs->n : 0.0);
    if (rs->n_checker) snprintf(ck, sizeof ck, "%.4f", rs->checker / rs->n_checker);
    const double n = rs->n ? rs->n : 1;
    fprintf(f, "| %s | %s | %s | %s | %s | %.4f | %.2f | %.3f |\n", method, kb, tb, share, ck, rs->oracle / n,
            rs->evals / n, rs->seconds / n);
}

/* Student vs teacher on the same prompt and seed, by one score (checker or oracle). */
static void wins_line(FILE *f, const char *by, const tdm_eval_report_in *in, int checker) {
    int win = 0, tie = 0, loss = 0;
    for (int i = 0; i < in->n; i++) {
        const tdm_eval_sample *s = &in->samples[i];
        if (checker && !s->has_checker) continue;
        const float *v = checker ? s->checker : s->oracle;
        float a = v[TDM_EVAL_RUN_STUDENT], b = v[TDM_EVAL_RUN_TEACHER];
        if (a > b) win++;
        else if (a < b) loss++;
        else tie++;
    }
    if (win + tie + loss == 0) {
        fprintf(f, "- by the %s: no sample has a %s score\n", by, by);
        return;
    }
    if (win + loss)
        fprintf(f, "- by the %s: the student beats the teacher on **%.1f%%** (%d of %d) of the samples where the "
                   "scores differ; ties %d, losses %d (%d samples)\n",
                by, 100.0 * win / (win + loss), win, win + loss, tie, loss, win + tie + loss);
    else fprintf(f, "- by the %s: every score ties (%d samples)\n", by, tie);
}

static tdm_code write_table(FILE *f, const tdm_eval_report_in *in) {
    int n_prompts = 0;
    for (int i = 0; i < in->n; i++)
        if (in->samples[i].prompt_index + 1 > n_prompts) n_prompts = in->samples[i].prompt_index + 1;
    fprintf(f, "# tandem eval\n\n%s\n\n", in->settings_line);
    fprintf(f, "%d samples (%d prompts of %s x %d seeds); tau_k from %s.\n\n", in->n, n_prompts, in->prompts_file,
            n_prompts ? in->n / n_prompts : 0, in->tau_source);
    if (in->warnings && *in->warnings) {
        char *w = strdup(in->warnings);
        if (!w) return TDM_ERR_NOMEM;
        for (char *line = strtok(w, "\n"); line; line = strtok(NULL, "\n")) fprintf(f, "warning: %s\n", line);
        fputc('\n', f);
        free(w);
    }
    fprintf(f, "| method | k | tau | teacher share | mean checker | mean oracle | UNet evals / image | seconds / image |\n"
               "|---|---|---|---|---|---|---|---|\n");
    const tdm_eval_method base[4] = {TDM_EVAL_STUDENT, TDM_EVAL_TEACHER, TDM_EVAL_REFINE_ALL, TDM_EVAL_REGENERATE_ALL};
    for (int b = 0; b < 4; b++) {
        if (base[b] == TDM_EVAL_REGENERATE_ALL && !in->with_regenerate) continue;
        row_stats rs;
        memset(&rs, 0, sizeof rs);
        for (int i = 0; i < in->n; i++) {
            tdm_eval_record r;
            tdm_eval_record_make(&in->samples[i], base[b], NAN, NAN, &r);
            row_add(&rs, &in->samples[i], &r);
        }
        row_print(f, tdm_eval_method_name(base[b]), NAN, NAN, base[b] != TDM_EVAL_TEACHER, &rs);
    }
    tdm_eval_method am[4];
    const int n_am = tdm_eval_adaptive_methods(in->with_regenerate, am);
    for (int a = 0; a < n_am; a++) {
        const tdm_eval_method m = am[a];
        for (int j = 0; j < in->n_k; j++) {
            row_stats rs;
            memset(&rs, 0, sizeof rs);
            for (int i = 0; i < in->n; i++) {
                tdm_eval_record r;
                tdm_eval_record_make(&in->samples[i], m, in->k[j], in->tau[j], &r);
                row_add(&rs, &in->samples[i], &r);
            }
            row_print(f, tdm_eval_method_name(m), in->k[j], in->tau[j], 1, &rs);
        }
    }
    fprintf(f, "\nStudent vs teacher (same prompt and seed):\n\n");
    wins_line(f, "checker", in, 1);
    wins_line(f, "oracle", in, 0);
    fprintf(f, "\nteacher share: the share of samples the teacher worked on; UNet evals count a guided step as 2; "
               "refine-all / regenerate-all include the student's run (regenerate: the teacher-only sample, "
               "counted as run); adaptive seconds include the oracle's scoring of the student's image; -best: the "
               "better of the two images by the oracle when the teacher ran (keep_better), its seconds include the "
               "second scoring.\n");
    return TDM_OK;
}

/* Writes path through path.tmp and a rename; fill(f, ctx) writes the content. */
static tdm_code write_atomic(const char *dir, const char *name, tdm_code (*fill)(FILE *, const tdm_eval_report_in *),
                             const tdm_eval_report_in *in, tdm_status *st) {
    size_t n = strlen(dir) + strlen(name) + 8;
    char *path = malloc(n), *tmp = malloc(n + 4);
    if (!path || !tmp) {
        free(path);
        free(tmp);
        return tdm_fail(st, TDM_ERR_NOMEM, "eval: out of memory");
    }
    snprintf(path, n, "%s/%s", dir, name);
    snprintf(tmp, n + 4, "%s.tmp", path);
    tdm_code rc = TDM_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot write", tmp);
    else {
        tdm_code frc = fill(f, in);
        int ok = frc == TDM_OK && !ferror(f);
        ok &= fclose(f) == 0;
        if (frc == TDM_ERR_NOMEM) rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
        else if (!ok) rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed", tmp);
        else if (rename(tmp, path) != 0) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot rename to %s", tmp, path);
        if (rc) remove(tmp);
    }
    free(path);
    free(tmp);
    return rc;
}

static tdm_code fill_results(FILE *f, const tdm_eval_report_in *in) {
    for (int i = 0; i < in->n; i++) {
        const tdm_eval_sample *s = &in->samples[i];
        tdm_eval_record recs[4 + 4 * 128];
        int nr = 0;
        for (int m = TDM_EVAL_STUDENT; m <= TDM_EVAL_REGENERATE_ALL; m++) {
            if (m == TDM_EVAL_REGENERATE_ALL && !in->with_regenerate) continue;
            tdm_eval_record_make(s, (tdm_eval_method)m, NAN, NAN, &recs[nr++]);
        }
        tdm_eval_method am[4];
        const int n_am = tdm_eval_adaptive_methods(in->with_regenerate, am);
        for (int a = 0; a < n_am; a++)
            for (int j = 0; j < in->n_k && j < 128; j++)
                tdm_eval_record_make(s, am[a], in->k[j], in->tau[j], &recs[nr++]);
        for (int r = 0; r < nr; r++) {
            char *line = tdm_eval_record_json(s, in->prompts[s->prompt_index], i, &recs[r]);
            if (!line) return TDM_ERR_NOMEM;
            fprintf(f, "%s\n", line);
            free(line);
        }
    }
    return TDM_OK;
}

tdm_code tdm_eval_write_report(const tdm_eval_report_in *in, tdm_status *st) {
    if (in->n_k > 128) return tdm_fail(st, TDM_ERR_INVALID_ARG, "eval: at most 128 values of k (got %d)", in->n_k);
    TDM_TRY(write_atomic(in->out_dir, "results.jsonl", fill_results, in, st));
    return write_atomic(in->out_dir, "table.md", write_table, in, st);
}
