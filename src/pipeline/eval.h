/* tandem eval (public API: tdm_eval in tandem.h; docs/ADAPTIVE.md "Evaluation").
 *
 *  eval.c         the run: settings, the resumable log (samples.jsonl), one sample = the student's sample,
 *                 the teacher-only sample and the teacher's refinement of the student's sample, each made
 *                 once (tdm_adaptive_run_student / _teacher: one tdm_gen_execute run each) and scored
 *  eval_report.c  the methods derived from the samples (records), results.jsonl and table.md
 *
 * Methods per sample (s = the student's run, t = the teacher-only run, r = the refinement run):
 *   student              s                         evals e_s              seconds sec_s
 *   teacher              t                         e_t                    sec_t
 *   refine-all           r                         e_s + e_r              sec_s + sec_r
 *   regenerate-all       t (= the regeneration)    e_s + e_t              sec_s + sec_t
 *   adaptive-refine k    s if score_s >= tau_k     e_s [+ e_r]            sec_s + sec_oracle [+ sec_r]
 *                        else r
 *   adaptive-regenerate k  as adaptive-refine with t in place of r
 *   adaptive-refine-best k, adaptive-regenerate-best k   as above with keep_better (tdm_adaptive_params): when
 *                        routed, the result is the student's run if its oracle score is higher than the teacher
 *                        run's (ties: the teacher's); seconds_oracle counts the second scoring (taken as long as
 *                        the first: same oracle, same image size)
 * The regenerate methods need the same latent shape for both models; they are left out otherwise. */
#ifndef TDM_PIPELINE_EVAL_H
#define TDM_PIPELINE_EVAL_H

#include <stdint.h>

#include "tandem.h"

enum { TDM_EVAL_RUN_STUDENT = 0, TDM_EVAL_RUN_TEACHER = 1, TDM_EVAL_RUN_REFINE = 2, TDM_EVAL_N_RUNS = 3 };

typedef enum tdm_eval_method {
    TDM_EVAL_STUDENT = 0,
    TDM_EVAL_TEACHER,
    TDM_EVAL_REFINE_ALL,
    TDM_EVAL_REGENERATE_ALL,
    TDM_EVAL_ADAPTIVE_REFINE,
    TDM_EVAL_ADAPTIVE_REGENERATE,
    TDM_EVAL_ADAPTIVE_REFINE_BEST,
    TDM_EVAL_ADAPTIVE_REGENERATE_BEST,
    TDM_EVAL_N_METHODS
} tdm_eval_method;

const char *tdm_eval_method_name(tdm_eval_method m); /* "student", "teacher", "refine-all", ... */
/* The adaptive methods in table order (adaptive-refine, adaptive-regenerate, adaptive-refine-best,
 * adaptive-regenerate-best; the regenerate ones only with with_regenerate) into out[4]; returns the count. */
int tdm_eval_adaptive_methods(int with_regenerate, tdm_eval_method out[4]);
/* 1 for the adaptive methods (a threshold k / tau). */
int tdm_eval_method_adaptive(tdm_eval_method m);
/* The teacher run a method pays for when the teacher works (TDM_EVAL_RUN_REFINE for the refine methods,
 * TDM_EVAL_RUN_TEACHER for teacher, regenerate-all and the regenerate methods); -1 for student. With
 * keep_better the result may still be the student's run (tdm_eval_record.run). */
int tdm_eval_method_teacher_run(tdm_eval_method m);

/* What one (prompt, seed) produced: the three runs' scores and costs. */
typedef struct tdm_eval_sample {
    int prompt_index;
    uint64_t seed;
    int has_checker;                  /* the prompt is a shapes-world caption */
    float checker[TDM_EVAL_N_RUNS];   /* checker score of each run's image (valid with has_checker) */
    float oracle[TDM_EVAL_N_RUNS];    /* oracle score of each run's image */
    int evals[TDM_EVAL_N_RUNS];       /* UNet evaluations of each run (a CFG step counts 2) */
    double seconds[TDM_EVAL_N_RUNS];  /* generation time of each run */
    double seconds_oracle;            /* scoring the student's image (what the adaptive decision costs) */
} tdm_eval_sample;

/* One method's outcome on one sample. */
typedef struct tdm_eval_record {
    tdm_eval_method method;
    double k, tau;   /* adaptive methods; NAN otherwise */
    int run;         /* the run whose image is the result (TDM_EVAL_RUN_x) */
    int teacher_ran; /* refine / regenerate happened (adaptive: routed); -1 for student and teacher only */
    int evals_student, evals_teacher;
    double seconds_student, seconds_oracle, seconds_teacher;
} tdm_eval_record;

/* The record of `method` on sample s (k / tau: the adaptive methods' threshold; keep when score >= tau). */
void tdm_eval_record_make(const tdm_eval_sample *s, tdm_eval_method method, double k, double tau,
                          tdm_eval_record *r);

struct cJSON;
/* Adds "decision" ("keep", "refine", "regenerate"; null for the student / teacher methods) and, for the -best
 * methods, "selected" ("student" | "teacher") to a results line. */
void tdm_eval_record_add_decision(struct cJSON *o, const tdm_eval_record *r);

/* What the report needs besides the samples. */
typedef struct tdm_eval_report_in {
    const char *out_dir;
    const char *prompts_file;
    const char *const *prompts;   /* [n_prompts] */
    const tdm_eval_sample *samples; /* [n] */
    int n;
    int with_regenerate;
    const double *k, *tau;        /* [n_k] */
    int n_k;
    const char *tau_source;       /* "calibration FILE" or "the evaluation's student scores" */
    const char *settings_line;    /* one Markdown line describing student, teacher, refine and oracle */
    const char *warnings;         /* calibration warnings ("" for none), one per line */
} tdm_eval_report_in;

/* Writes out_dir/results.jsonl and out_dir/table.md (each through a temporary file and a rename). */
tdm_code tdm_eval_write_report(const tdm_eval_report_in *in, tdm_status *st);

/* The JSON line of a record (no newline; malloc'ed). */
char *tdm_eval_record_json(const tdm_eval_sample *s, const char *prompt, int sample_index, const tdm_eval_record *r);

#endif
