/* The machinery shared by the three evaluations (tandem eval: eval.c, edit-eval: eval_edit.c, control-eval:
 * eval_control.c): the pieces of the log's header line (the settings), the refusal of a log made with other
 * settings, the resumable log (base/jsonl_log.h) opened and appended to, the calibration and thresholds
 * tau_k, the settings line of the tables, and one sample's three runs (student, teacher-only, refinement;
 * eval.h) timed and scored. Each evaluation keeps its own header keys and log line fields: these helpers
 * write exactly the keys they name, in that order, so existing logs resume. */
#ifndef TDM_PIPELINE_EVAL_COMMON_H
#define TDM_PIPELINE_EVAL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "base/jsonl_log.h"
#include "pipeline/adaptive.h"
#include "pipeline/eval.h"
#include "tandem.h"

/* The log's key of each run (TDM_EVAL_RUN_x): "student", "teacher", "refine". */
extern const char *const tdm_evalc_run_key[TDM_EVAL_N_RUNS];

/* ---- the header line (settings) ---- */

/* key: v as a raw JSON number (exact for any 64-bit value). */
void tdm_evalc_add_u64(cJSON *o, const char *key, uint64_t v);
/* {"format", "version", "student": stage, "teacher": stage, "width", "height"} with stage = {"model",
 * "sampler", "steps", "guidance", "eta"} of su's student / teacher plan, the student's also "lora" (the
 * model's LoRA summary) when it has LoRA files. NULL when out of memory. */
cJSON *tdm_evalc_header_begin(const char *format, int version, const tdm_model *student, const tdm_model *teacher,
                              const tdm_adaptive_setup *su);
/* "negative_prompt", "clip_skip", "emphasis" of the student's plan. */
void tdm_evalc_add_prompting(cJSON *o, const tdm_adaptive_setup *su);
/* "refine": {"convention", "strength" | "sigma", "grid_steps", "steps", "handoff"}, "regenerate". */
void tdm_evalc_add_refine(cJSON *o, const tdm_adaptive_params *a, const tdm_adaptive_setup *su);
/* "oracle": {"name", "model" (null when none)}. */
void tdm_evalc_add_oracle(cJSON *o, const char *name, const char *model);
/* "controlnet": {"name" (default "controlnet"), "condition", "scale", "start", "end"}. */
void tdm_evalc_add_controlnet(cJSON *o, const char *name, const char *condition, float scale, float start, float end);
/* Appends "ControlNet: NAME (CONDITION, scale S, window A..B); " to a report line. */
void tdm_evalc_controlnet_text(const char *name, const char *condition, float scale, float start, float end, char *line,
                               size_t n);

/* The first top-level key of header `want` whose value differs in header `have` ("'key'"), or fallback when
 * either is not JSON or none differs. */
void tdm_evalc_first_difference(const char *have, const char *want, const char *fallback, char *out, size_t n);
/* The refusal of a log made with other settings: "PATH was made with other settings (KEY differs: COVERS);
 * pass --restart ...". covers: what this evaluation's settings are (e.g. "models, their settings, ..."). */
tdm_code tdm_evalc_log_mismatch(const char *path, const char *line, const char *header, const char *fallback,
                                const char *covers, tdm_status *st);

/* ---- log lines, files ---- */

/* A finite number at key; 0 when absent or not one. */
int tdm_evalc_num(const cJSON *o, const char *key, double *v);
/* CLOCK_MONOTONIC in seconds (the default clock of the evaluations' params). */
double tdm_evalc_now(void *user);
/* Creates the output folder (an existing folder is fine). */
tdm_code tdm_evalc_make_dir(const char *dir, tdm_status *st);
/* Resumes the log at path (r: its header, sample parser, messages) unless restart or absent, else writes
 * r->header as a new log; *done = lines recovered (0 for a new log), *f open for appending. */
tdm_code tdm_evalc_log_open(const char *path, int restart, const tdm_jsonl_resume *r, int *done, FILE **f,
                            tdm_status *st);
/* Appends line (malloc'ed, freed here; NULL: "WHAT: out of memory") and '\n', flushed and fsync'ed. */
tdm_code tdm_evalc_log_append(FILE *f, const char *path, char *line, const char *what, tdm_status *st);

/* ---- thresholds ---- */

/* Loads the calibration file, checks tau_k for every k now (before any work) and compares its provenance with
 * the student's settings (warnings into warnings[size]). */
tdm_code tdm_evalc_calibration_open(const char *file, const double *k, int n_k, const tdm_model *student,
                                    const tdm_adaptive_setup *su, const char *oracle_name, char *warnings,
                                    size_t warnings_size, tdm_calibration **cal, tdm_status *st);
/* tau[j] for each k[j]: from cal, or the k-th percentile of the n student oracle scores at
 * student_oracle[i * stride bytes] (the evaluation's own). what: the message prefix ("eval"). */
tdm_code tdm_evalc_thresholds(const tdm_calibration *cal, const double *k, int n_k, const float *student_oracle,
                              size_t stride, int n, const char *what, double *tau, tdm_status *st);
/* "calibration FILE" or "the evaluation's own student oracle scores". */
void tdm_evalc_tau_source(const char *calibration, char *out, size_t n);

/* ---- the tables' settings line ---- */

/* Appends printf(fmt, ...) to the string out (capacity n; truncated as snprintf truncates). */
void tdm_evalc_appendf(char *out, size_t n, const char *fmt, ...) TDM_PRINTF(3, 4);
/* Appends "student: M (SAMPLER, N steps, guidance G); teacher: M (...)" */
void tdm_evalc_models_text(const tdm_model *student, const tdm_model *teacher, const tdm_adaptive_setup *su,
                           char *out, size_t n);
/* Appends "refine: strength S (T of G grid steps, latent hand-off)" (or "noise SIGMA", "pixel hand-off") */
void tdm_evalc_refine_text(const tdm_adaptive_params *a, const tdm_adaptive_setup *su, char *out, size_t n);

/* ---- one sample's three runs ---- */

/* Scores run `run`'s result beyond the oracle (checker, preservation, IoU, ...). */
typedef tdm_code (*tdm_evalc_score_fn)(void *user, int run, const tdm_gen_result *g, tdm_status *st);

typedef struct tdm_evalc_runs {
    tdm_adaptive_setup *su; /* prompts, seeds (and init image / control) set for this sample */
    tdm_oracle *oracle;
    const char *prompt;     /* what the oracle scores against */
    double (*clock)(void *);
    void *clock_user;
    tdm_evalc_score_fn score; /* may be NULL */
    void *score_user;
} tdm_evalc_runs;

/* The student's sample (timed; its oracle score timed apart: seconds_oracle), the teacher-only sample (the
 * regeneration: the student's initial noise, or with an init image the teacher's img2img of it) and the
 * teacher's refinement of the student's sample, each timed (seconds[]), counted (evals[]: UNet calls x batch;
 * cn_calls[]: ControlNet calls, when not NULL), scored by the oracle (oracle[]) and by r->score. Leaves the
 * other fields of s as they are. On failure st names the run ("student", "teacher", "refinement"). */
tdm_code tdm_evalc_run_three(const tdm_evalc_runs *r, tdm_eval_sample *s, int *cn_calls, tdm_status *st);

#endif
