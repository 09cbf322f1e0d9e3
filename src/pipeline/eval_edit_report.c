/* tandem edit-eval: the methods derived from the pairs, results.jsonl and table.md (see eval_edit.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "pipeline/eval_edit.h"

/* The methods in table order: the base ones, then per k the adaptive ones (tdm_eval_adaptive_methods). */
typedef struct method_ref {
    tdm_eval_method m;
    int j; /* k index (adaptive), -1 */
} method_ref;

static int list_methods(const tdm_eeval_report_in *in, method_ref *out) {
    int n = 0;
    const tdm_eval_method base[4] = {TDM_EVAL_STUDENT, TDM_EVAL_TEACHER, TDM_EVAL_REFINE_ALL, TDM_EVAL_REGENERATE_ALL};
    for (int b = 0; b < 4; b++)
        if (base[b] != TDM_EVAL_REGENERATE_ALL || in->with_regenerate) out[n++] = (method_ref){base[b], -1};
    tdm_eval_method am[4];
    const int n_am = tdm_eval_adaptive_methods(in->with_regenerate, am);
    for (int j = 0; j < in->n_k; j++)
        for (int a = 0; a < n_am; a++) out[n++] = (method_ref){am[a], j};
    return n;
}

static void record(const tdm_eeval_report_in *in, int i, const method_ref *mr, tdm_eval_record *r) {
    const double k = mr->j >= 0 ? in->k[mr->j] : NAN, tau = mr->j >= 0 ? in->tau[mr->j] : NAN;
    tdm_eval_record_make(&in->pairs[i].base, mr->m, k, tau, r);
}

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static tdm_code write_results(FILE *f, const tdm_eeval_report_in *in, const method_ref *ms, int nm, tdm_status *st) {
    for (int i = 0; i < in->n; i++) {
        const tdm_eeval_pair *p = &in->pairs[i];
        tdm_world_edit_pair wp;
        TDM_TRY(tdm_world_edit_pair_make(in->world_seed, (uint64_t)i, &wp, st));
        for (int m = 0; m < nm; m++) {
            tdm_eval_record r;
            record(in, i, &ms[m], &r);
            cJSON *o = cJSON_CreateObject();
            char seed[32];
            cJSON_AddNumberToObject(o, "pair", i);
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->scene_index);
            cJSON_AddRawToObject(o, "scene_index", seed);
            cJSON_AddStringToObject(o, "kind", tdm_world_edit_kind_name(p->kind));
            cJSON_AddStringToObject(o, "instruction", wp.instruction);
            cJSON_AddStringToObject(o, "prompt", wp.caption);
            cJSON_AddBoolToObject(o, "held_out", p->held_out);
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->base.seed);
            cJSON_AddRawToObject(o, "seed", seed);
            cJSON_AddStringToObject(o, "method", tdm_eval_method_name(r.method));
            add_num(o, "k", r.k);
            add_num(o, "tau", r.tau);
            tdm_eval_record_add_decision(o, &r);
            cJSON_AddNumberToObject(o, "checker", p->base.checker[r.run]);
            cJSON_AddBoolToObject(o, "success", p->base.checker[r.run] >= 1.0f);
            cJSON_AddBoolToObject(o, "preserved", p->preserved[r.run]);
            add_num(o, "similarity", p->similarity[r.run]);
            cJSON_AddNumberToObject(o, "oracle", p->base.oracle[r.run]);
            cJSON_AddNumberToObject(o, "unet_evals", r.evals_student + r.evals_teacher);
            cJSON_AddNumberToObject(o, "seconds", r.seconds_student + r.seconds_oracle + r.seconds_teacher);
            char *line = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (!line) return tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
            fprintf(f, "%s\n", line);
            free(line);
        }
    }
    return TDM_OK;
}

typedef struct method_stats {
    double share, success, checker, preserved, both, similarity, oracle, evals, seconds;
    double attrs_kept; /* sum of kept / sum of checked unchanged attributes (NAN when none was checked) */
    int n_sim;
    double kind_success[TDM_WORLD_N_EDIT_KINDS], kind_preserved[TDM_WORLD_N_EDIT_KINDS];
} method_stats;

static void stats_of(const tdm_eeval_report_in *in, const method_ref *mr, const int *kind_n, method_stats *s) {
    memset(s, 0, sizeof *s);
    int routed = 0, with_decision = 0;
    long kept = 0, checked = 0;
    for (int i = 0; i < in->n; i++) {
        const tdm_eeval_pair *p = &in->pairs[i];
        tdm_eval_record r;
        record(in, i, mr, &r);
        const int ok = p->base.checker[r.run] >= 1.0f;
        if (r.teacher_ran >= 0) {
            with_decision++;
            routed += r.teacher_ran;
        }
        s->success += ok;
        s->checker += p->base.checker[r.run];
        s->preserved += p->preserved[r.run];
        s->both += ok && p->preserved[r.run];
        kept += p->kept[r.run];
        checked += p->checked[r.run];
        if (isfinite(p->similarity[r.run])) {
            s->similarity += p->similarity[r.run];
            s->n_sim++;
        }
        s->oracle += p->base.oracle[r.run];
        s->evals += r.evals_student + r.evals_teacher;
        s->seconds += r.seconds_student + r.seconds_oracle + r.seconds_teacher;
        if (p->kind >= 0 && p->kind < TDM_WORLD_N_EDIT_KINDS) {
            s->kind_success[p->kind] += ok;
            s->kind_preserved[p->kind] += p->preserved[r.run];
        }
    }
    const double n = in->n > 0 ? in->n : 1;
    s->share = mr->m == TDM_EVAL_STUDENT ? 0.0 : mr->m == TDM_EVAL_TEACHER ? 1.0
                                                 : with_decision ? (double)routed / with_decision : NAN;
    s->success /= n, s->checker /= n, s->preserved /= n, s->both /= n, s->oracle /= n, s->evals /= n, s->seconds /= n;
    s->similarity = s->n_sim ? s->similarity / s->n_sim : NAN;
    s->attrs_kept = checked > 0 ? (double)kept / (double)checked : NAN;
    for (int k = 0; k < TDM_WORLD_N_EDIT_KINDS; k++) {
        s->kind_success[k] = kind_n[k] ? s->kind_success[k] / kind_n[k] : NAN;
        s->kind_preserved[k] = kind_n[k] ? s->kind_preserved[k] / kind_n[k] : NAN;
    }
}

static void method_label(const tdm_eeval_report_in *in, const method_ref *mr, char *buf, size_t n, char *kbuf,
                         size_t kn, char *taubuf, size_t tn) {
    snprintf(buf, n, "%s", tdm_eval_method_name(mr->m));
    if (mr->j >= 0) {
        snprintf(kbuf, kn, "%g", in->k[mr->j]);
        snprintf(taubuf, tn, "%.4g", in->tau[mr->j]);
    } else {
        snprintf(kbuf, kn, "-");
        snprintf(taubuf, tn, "-");
    }
}

static void pct(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.1f%%", 100.0 * v);
    else snprintf(buf, n, "-");
}

/* Acceptance (issue 6): the cheapest adaptive row with at least the teacher-only success rate at no more than half
 * its UNet evaluations and at least ACCEPT_PRESERVED of the edits preserved; all[1] is the teacher-only row. */
#define ACCEPT_MIN_PAIRS 300
#define ACCEPT_BUDGET 0.5
#define ACCEPT_PRESERVED 0.9
static void write_acceptance(FILE *f, const tdm_eeval_report_in *in, const method_ref *ms, int nm,
                             const method_stats *all) {
    const method_stats *t = &all[1];
    int best = -1, best_success = -1;
    for (int m = 0; m < nm; m++) {
        const method_stats *s = &all[m];
        if (!tdm_eval_method_adaptive(ms[m].m) || !(s->success >= t->success) || !(s->evals <= ACCEPT_BUDGET * t->evals))
            continue;
        if (best_success < 0 || s->evals < all[best_success].evals) best_success = m;
        if (s->preserved >= ACCEPT_PRESERVED && (best < 0 || s->evals < all[best].evals)) best = m;
    }
    fprintf(f, "\nAcceptance (issue 6, at least %d pairs: %s, %d here): adaptive editing reaches the teacher-only "
               "success (%.1f%%) at no more than half its UNet evaluations (%.1f) with at least %.0f%% of the edits "
               "preserved: ", ACCEPT_MIN_PAIRS, in->n >= ACCEPT_MIN_PAIRS ? "met" : "NOT met", in->n,
            100.0 * t->success, t->evals, 100.0 * ACCEPT_PRESERVED);
    const int shown = best >= 0 ? best : best_success;
    if (shown < 0) {
        fprintf(f, "**FAIL** (no adaptive row at the given k reaches the success at that cost)\n");
        return;
    }
    const method_stats *s = &all[shown];
    fprintf(f, "**%s** %s %s k = %g: success %.1f%%, preserved %.1f%%, %.1f UNet evals / pair (%.1f%%)%s\n",
            best >= 0 ? "PASS" : "FAIL", best >= 0 ? "with" : "- the success alone with", tdm_eval_method_name(ms[shown].m),
            in->k[ms[shown].j], 100.0 * s->success, 100.0 * s->preserved, s->evals,
            t->evals > 0 ? 100.0 * s->evals / t->evals : 0.0, best >= 0 ? "" : ", below the preservation asked");
}

static tdm_code write_table(FILE *f, const tdm_eeval_report_in *in, const method_ref *ms, int nm, tdm_status *st) {
    (void)st;
    int kind_n[TDM_WORLD_N_EDIT_KINDS] = {0}, held = 0;
    for (int i = 0; i < in->n; i++) {
        if (in->pairs[i].kind >= 0 && in->pairs[i].kind < TDM_WORLD_N_EDIT_KINDS) kind_n[in->pairs[i].kind]++;
        held += in->pairs[i].held_out;
    }
    fprintf(f, "# Shapes-world edit evaluation\n\n%s\n\n", in->settings_line);
    fprintf(f, "%d pairs (test split, world seed %llu): colour %d, position %d, size %d, background %d; %d with a "
               "held-out (colour, shape) pair. tau from %s.\n\n",
            in->n, (unsigned long long)in->world_seed, kind_n[0], kind_n[1], kind_n[2], kind_n[3], held, in->tau_source);
    if (in->warnings && in->warnings[0]) fprintf(f, "Warnings: %s\n\n", in->warnings);
    fprintf(f, "| method | k | tau | teacher share | success | mean checker | preserved | attributes kept | "
               "success and preserved | similarity | oracle | UNet evals / pair | seconds / pair |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    method_stats *all = malloc(sizeof *all * (size_t)(nm > 0 ? nm : 1));
    if (!all) return tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
    for (int m = 0; m < nm; m++) {
        method_stats *s = &all[m];
        stats_of(in, &ms[m], kind_n, s);
        char name[48], k[32], tau[32], share[16], suc[16], pres[16], kept[16], both[16], sim[32];
        method_label(in, &ms[m], name, sizeof name, k, sizeof k, tau, sizeof tau);
        pct(share, sizeof share, s->share);
        pct(suc, sizeof suc, s->success);
        pct(pres, sizeof pres, s->preserved);
        pct(kept, sizeof kept, s->attrs_kept);
        pct(both, sizeof both, s->both);
        if (isfinite(s->similarity)) snprintf(sim, sizeof sim, "%.4f", s->similarity);
        else snprintf(sim, sizeof sim, "-");
        fprintf(f, "| %s | %s | %s | %s | %s | %.4f | %s | %s | %s | %s | %.4g | %.1f | %.3f |\n", name, k, tau, share,
                suc, s->checker, pres, kept, both, sim, s->oracle, s->evals, s->seconds);
    }
    for (int which = 0; which < 2; which++) { /* success, then preservation, by edit kind */
        fprintf(f, which ? "\nPreserved (every unchanged attribute kept) by edit kind:\n\n| method | k |"
                         : "\nSuccess (checker score 1 on the target caption) by edit kind:\n\n| method | k |");
        for (int kk = 0; kk < TDM_WORLD_N_EDIT_KINDS; kk++)
            fprintf(f, " %s (%d) |", tdm_world_edit_kind_name(kk), kind_n[kk]);
        fprintf(f, "\n|---|---|");
        for (int kk = 0; kk < TDM_WORLD_N_EDIT_KINDS; kk++) fprintf(f, "---|");
        fprintf(f, "\n");
        for (int m = 0; m < nm; m++) {
            char name[48], k[32], tau[32], v[16];
            method_label(in, &ms[m], name, sizeof name, k, sizeof k, tau, sizeof tau);
            fprintf(f, "| %s | %s |", name, k);
            for (int kk = 0; kk < TDM_WORLD_N_EDIT_KINDS; kk++) {
                pct(v, sizeof v, which ? all[m].kind_preserved[kk] : all[m].kind_success[kk]);
                fprintf(f, " %s |", v);
            }
            fprintf(f, "\n");
        }
    }
    write_acceptance(f, in, ms, nm, all);
    fprintf(f, "\nsuccess: checker score 1 on the target caption; preserved: every attribute the edit did not ask to "
               "change is found in the edit (checker analysis; the object count included); attributes kept: the unchanged "
               "attributes found, over all pairs (kept / checked); similarity: cosine of the "
               "CLIP image embeddings of source and edit; UNet evals: a guided step counts 2; -best: the better of the two "
               "edits by the oracle when the teacher ran (keep_better).\n");
    free(all);
    return TDM_OK;
}

typedef tdm_code (*fill_fn)(FILE *f, const tdm_eeval_report_in *in, const method_ref *ms, int nm, tdm_status *st);

static tdm_code write_file(const char *dir, const char *name, fill_fn fill, const tdm_eeval_report_in *in,
                           const method_ref *ms, int nm, tdm_status *st) {
    const size_t n = strlen(dir) + strlen(name) + 8;
    char *path = malloc(n), *tmp = malloc(n + 4);
    if (!path || !tmp) {
        free(path);
        free(tmp);
        return tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
    }
    snprintf(path, n, "%s/%s", dir, name);
    snprintf(tmp, n + 4, "%s.tmp", path);
    tdm_code rc = TDM_OK;
    FILE *f = fopen(tmp, "w");
    if (!f) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot write", tmp);
    else {
        rc = fill(f, in, ms, nm, st);
        const int ok = fclose(f) == 0;
        if (!rc && !ok) rc = tdm_fail(st, TDM_ERR_IO, "%s: write failed", tmp);
        if (!rc && rename(tmp, path) != 0) rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot rename to %s", tmp, path);
        if (rc) remove(tmp);
    }
    free(path);
    free(tmp);
    return rc;
}

tdm_code tdm_eeval_write_report(const tdm_eeval_report_in *in, tdm_status *st) {
    method_ref ms[4 + 4 * 128];
    const int nm = list_methods(in, ms);
    TDM_TRY(write_file(in->out_dir, "results.jsonl", write_results, in, ms, nm, st));
    return write_file(in->out_dir, "table.md", write_table, in, ms, nm, st);
}
