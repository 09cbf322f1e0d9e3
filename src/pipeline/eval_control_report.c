/* tandem control-eval: the methods derived from the scenes' runs and table.md (see eval_control.h). The
 * routing of every method is tdm_eval_record_make's (pipeline/eval.h), the same rule as tdm_eval and
 * tdm_adaptive_generate (keep the student's image when its oracle score >= tau). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/eval_control.h"

#define ACCEPT_IOU 0.8       /* issue 6: teacher + ControlNet places objects with mean IoU >= 0.8 */
#define ACCEPT_BUDGET 0.5    /* adaptive: >= the teacher's checker score at <= half its UNet evaluations */
#define ACCEPT_MIN_SCENES 300

typedef struct row_stats {
    int n, routed;
    double checker, iou, oracle, evals, cn_calls, seconds; /* sums */
} row_stats;

typedef struct row {
    tdm_eval_method method;
    double k, tau;
    row_stats s;
} row;

static void row_compute(const tdm_ceval_report_in *in, tdm_eval_method m, double k, double tau, row *r) {
    memset(r, 0, sizeof *r);
    r->method = m;
    r->k = k;
    r->tau = tau;
    for (int i = 0; i < in->n; i++) {
        const tdm_ceval_sample *cs = &in->samples[i];
        tdm_eval_sample es;
        tdm_ceval_as_eval_sample(cs, &es);
        tdm_eval_record rec;
        tdm_eval_record_make(&es, m, k, tau, &rec);
        row_stats *s = &r->s;
        s->n++;
        s->checker += cs->checker[rec.run];
        s->iou += cs->iou[rec.run];
        s->oracle += cs->oracle[rec.run];
        s->routed += rec.teacher_ran > 0;
        s->evals += rec.evals_student + rec.evals_teacher;
        /* ControlNet calls of the runs the method pays for (as its UNet evaluations) */
        if (m != TDM_EVAL_TEACHER) s->cn_calls += cs->cn_calls[TDM_EVAL_RUN_STUDENT];
        if (m == TDM_EVAL_TEACHER || rec.teacher_ran > 0) s->cn_calls += cs->cn_calls[tdm_eval_method_teacher_run(m)];
        s->seconds += rec.seconds_student + rec.seconds_oracle + rec.seconds_teacher;
    }
}

static double mean_of(double sum, int n) { return n ? sum / n : 0.0; }

static void row_print(FILE *f, const row *r) {
    char kb[32] = "", tb[32] = "", share[32] = "-";
    if (!isnan(r->k)) snprintf(kb, sizeof kb, "%g", r->k);
    if (!isnan(r->tau)) snprintf(tb, sizeof tb, "%.4g", r->tau);
    if (r->method != TDM_EVAL_STUDENT && r->method != TDM_EVAL_TEACHER)
        snprintf(share, sizeof share, "%.3f", mean_of(r->s.routed, r->s.n));
    const char *name = tdm_eval_method_name(r->method);
    fprintf(f, "| %s + ControlNet | %s | %s | %s | %.4f | %.4f | %.4f | %.2f | %.2f | %.3f |\n", name, kb, tb, share,
            mean_of(r->s.checker, r->s.n), mean_of(r->s.iou, r->s.n), mean_of(r->s.oracle, r->s.n),
            mean_of(r->s.evals, r->s.n), mean_of(r->s.cn_calls, r->s.n), mean_of(r->s.seconds, r->s.n));
}

static int write_table(FILE *f, const tdm_ceval_report_in *in) {
    fprintf(f, "# tandem control-eval (shapes world, ControlNet)\n\n%s\n\n", in->settings_line);
    fprintf(f, "%d scenes; tau_k from %s.\n\n", in->n, in->tau_source);
    if (in->warnings && *in->warnings) {
        char *w = strdup(in->warnings);
        if (!w) return 0;
        for (char *line = strtok(w, "\n"); line; line = strtok(NULL, "\n")) fprintf(f, "warning: %s\n", line);
        fputc('\n', f);
        free(w);
    }
    fprintf(f, "| method | k | tau | teacher share | mean checker | mean IoU | mean oracle | UNet evals / image | "
               "ControlNet calls / image | seconds / image |\n|---|---|---|---|---|---|---|---|---|---|\n");
    const int n_rows_max = 4 + 4 * (in->n_k > 0 ? in->n_k : 0);
    row *rows = calloc((size_t)n_rows_max, sizeof *rows);
    if (!rows) return 0;
    int nr = 0;
    const tdm_eval_method base[4] = {TDM_EVAL_STUDENT, TDM_EVAL_TEACHER, TDM_EVAL_REFINE_ALL, TDM_EVAL_REGENERATE_ALL};
    for (int b = 0; b < 4; b++) {
        if (base[b] == TDM_EVAL_REGENERATE_ALL && !in->with_regenerate) continue;
        row_compute(in, base[b], NAN, NAN, &rows[nr++]);
    }
    tdm_eval_method am[4];
    const int n_am = tdm_eval_adaptive_methods(in->with_regenerate, am);
    for (int a = 0; a < n_am; a++)
        for (int j = 0; j < in->n_k; j++) row_compute(in, am[a], in->k[j], in->tau[j], &rows[nr++]);
    for (int r = 0; r < nr; r++) row_print(f, &rows[r]);

    /* acceptance (issue 6) */
    const row *teacher = &rows[1];
    const double t_iou = mean_of(teacher->s.iou, teacher->s.n), t_ck = mean_of(teacher->s.checker, teacher->s.n);
    const double t_ev = mean_of(teacher->s.evals, teacher->s.n);
    fprintf(f, "\nAcceptance (issue 6, at least %d scenes: %s, %d here):\n\n", ACCEPT_MIN_SCENES,
            in->n >= ACCEPT_MIN_SCENES ? "met" : "NOT met", in->n);
    fprintf(f, "- teacher + ControlNet places the objects: mean IoU %.4f (>= %.1f): **%s**\n", t_iou, ACCEPT_IOU,
            t_iou >= ACCEPT_IOU ? "PASS" : "FAIL");
    const row *best = NULL;
    for (int r = 0; r < nr; r++) { /* the cheapest adaptive row that reaches the teacher's checker score */
        const row *x = &rows[r];
        if (!tdm_eval_method_adaptive(x->method)) continue;
        const double ck = mean_of(x->s.checker, x->s.n), ev = mean_of(x->s.evals, x->s.n);
        if (ck >= t_ck && ev <= ACCEPT_BUDGET * t_ev && (!best || ev < mean_of(best->s.evals, best->s.n))) best = x;
    }
    if (best)
        fprintf(f, "- adaptive ControlNet generation reaches the teacher's checker score (%.4f) at <= half its UNet "
                   "evaluations (%.2f): **PASS** with %s k = %g: checker %.4f, %.2f UNet evals / image (%.1f%%)\n",
                t_ck, t_ev, tdm_eval_method_name(best->method), best->k, mean_of(best->s.checker, best->s.n),
                mean_of(best->s.evals, best->s.n), t_ev > 0 ? 100.0 * mean_of(best->s.evals, best->s.n) / t_ev : 0.0);
    else
        fprintf(f, "- adaptive ControlNet generation reaches the teacher's checker score (%.4f) at <= half its UNet "
                   "evaluations (%.2f): **FAIL** (no adaptive row at the given k does)\n",
                t_ck, t_ev);
    free(rows);
    fprintf(f, "\nIoU: each condition object (scene object-id mask) matched to the checker's detected object of "
               "largest overlap, IoU of the two masks, mean over the objects, 0 for a missing object. teacher share: "
               "the share of scenes the teacher worked on; UNet evals count a guided step as 2; ControlNet calls: one "
               "per controlled step; refine-all / regenerate-all include the student's run; adaptive seconds include "
               "the oracle's scoring of the student's image; -best: the better of the two images by the oracle when "
               "the teacher ran (keep_better), its seconds include the second scoring.\n");
    return 1;
}

tdm_code tdm_ceval_write_report(const tdm_ceval_report_in *in, tdm_status *st) {
    if (in->n_k > 128) return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: at most 128 values of k (got %d)", in->n_k);
    if (in->n < 1) return tdm_fail(st, TDM_ERR_INVALID_ARG, "control-eval: no scenes to report");
    size_t len = strlen(in->out_dir) + 16;
    char *path = malloc(len), *tmp = malloc(len + 4);
    tdm_code rc = TDM_OK;
    if (!path || !tmp) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "control-eval: out of memory");
        goto done;
    }
    snprintf(path, len, "%s/table.md", in->out_dir);
    snprintf(tmp, len + 4, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot write", tmp);
        goto done;
    }
    int ok = write_table(f, in) && !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok) rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed (or out of memory)", tmp);
    else if (rename(tmp, path) != 0) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot rename to %s", tmp, path);
    if (rc) remove(tmp);
done:
    free(path);
    free(tmp);
    return rc;
}
