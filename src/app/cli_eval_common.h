/* CLI pieces shared by the adaptive and evaluation commands (cmd_adaptive.c: generate --adaptive, calibrate;
 * cmd_eval.c, cmd_edit.c: edit, edit-eval; cmd_control_eval.c): progress lines with rate and eta, the cancel
 * callback, option groups (student + teacher, the adaptive threshold, the k list) and printing of the results.
 * Uses only tandem.h and commands_adaptive.h. */
#ifndef TDM_APP_CLI_EVAL_COMMON_H
#define TDM_APP_CLI_EVAL_COMMON_H

#include <stdint.h>
#include <time.h>

#include "app/commands_adaptive.h"
#include "tandem.h"

#define TDM_CLI_MAX_K 128

/* The progress of a long run (one line per item on a terminal, every 5% otherwise). */
typedef struct tdm_cli_progress {
    int tty, quiet;
    struct timespec t0;
    int first; /* items done before this process (resumed), set on the first report */
    int seen;
} tdm_cli_progress;
/* tty = stderr is a terminal; starts the clock. */
void tdm_cli_progress_init(tdm_cli_progress *p, int quiet);
/* Reports item done of total (unless quiet): on a terminal "\rWHAT DONE/TOTAL  DETAIL  R s/UNIT  eta E s   "
 * (a newline after the last), else "WHAT DONE/TOTAL  R s/UNIT" every total/20 items and at the last. R: the
 * seconds per item of this process. Returns 1 when interrupted (tdm_cli_interrupted), the callbacks' cancel. */
int tdm_cli_progress_report(tdm_cli_progress *p, const char *what, const char *unit, int done, int total,
                            const char *detail);
/* tdm_progress_fn that only cancels on SIGINT / SIGTERM. */
int tdm_cli_cancel_on_signal(void *user, tdm_stage stage, int step, int total);

/* tdm_cli_common_parse, then tdm_cli_teacher_parse (t may be NULL): 1 consumed, 0 not one, -1 bad value. */
int tdm_cli_pair_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_common_opts *c,
                       tdm_cli_teacher_opts *t);

/* The adaptive decision's options: --tau F, --k K, --teacher-share Q, --calibration FILE,
 * --strategy refine|regenerate, --keep-better. */
typedef struct tdm_cli_threshold_opts {
    double tau, k, share; /* NAN when not given */
    const char *calibration;
    int strategy;         /* tdm_adaptive_strategy (default refine) */
    int keep_better;      /* tdm_adaptive_params.keep_better */
} tdm_cli_threshold_opts;
void tdm_cli_threshold_init(tdm_cli_threshold_opts *o);
int tdm_cli_threshold_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_threshold_opts *o); /* as above */

/* "10,30,50" -> k[] (each in (0, 100), at most TDM_CLI_MAX_K); 1 ok, 0 message printed. */
int tdm_cli_parse_k_list(const char *cmd, const char *s, double *k, int *n);

/* Writes DIR/NAME to stdout (nothing when it cannot be read). */
void tdm_cli_print_file(const char *dir, const char *name);
/* "tandem CMD: warning: LINE" for each line of warnings (modified: split in place). */
void tdm_cli_print_warnings(const char *cmd, char *warnings);

#endif
