/* Adaptive student-teacher commands of the tandem CLI (src/app/cmd_adaptive.c); docs/ADAPTIVE.md.
 *   tandem generate --adaptive ...   student -> oracle -> keep / teacher refine / regenerate
 *   tandem calibrate ...             oracle-score percentiles of student samples (resumable)
 * argv excludes the command name; exit status 0 success, 1 failure, 2 bad command line, 130 cancelled. */
#ifndef TDM_APP_COMMANDS_ADAPTIVE_H
#define TDM_APP_COMMANDS_ADAPTIVE_H

#include <signal.h>
#include <stdint.h>

#include "tandem.h"

int tdm_cmd_adaptive_generate(const char *cmd, int argc, char **argv);
int tdm_cmd_calibrate(int argc, char **argv);
/* tandem eval (cmd_eval.c): every method on the same prompts and seeds */
int tdm_cmd_eval(int argc, char **argv);

/* ---- option helpers shared by the adaptive commands (cmd_adaptive.c) ---- */

/* Set by SIGINT / SIGTERM while a guard is installed (progress callbacks return it to cancel). */
extern volatile sig_atomic_t tdm_cli_interrupted;
typedef struct tdm_cli_sig_guard {
    struct sigaction old_int, old_term;
} tdm_cli_sig_guard;
void tdm_cli_sig_install(tdm_cli_sig_guard *g);
void tdm_cli_sig_restore(tdm_cli_sig_guard *g);

/* "tandem CMD: <message>" on one line. */
void tdm_cli_fail_line(const char *cmd, const tdm_status *st);
/* A number in lo..hi (open_lo / open_hi: exclusive ends); 1 ok, 0 message printed. */
int tdm_cli_arg_double(const char *cmd, const char *opt, const char *s, double lo, double hi, int open_lo, int open_hi,
                       double *out);
int tdm_cli_sampler_ok(const char *cmd, const char *opt, const char *v);
int tdm_cli_load_model(const char *path, const char *tokenizer, const char *unet_component, tdm_model **out,
                       tdm_status *st);

/* The student's settings, size, prompt handling, oracle, threads (--model/--student, --tokenizer,
 * --negative-prompt, --steps, --guidance, --sampler, --eta, --seed, --width, --height, --clip-skip,
 * --[no-]emphasis, --threads, --oracle, --oracle-model, -q). */
typedef struct tdm_cli_common_opts {
    const char *model, *tokenizer, *negative, *oracle, *oracle_model;
    const char *unet_component; /* --student-unet NAME (NULL: "unet") */
    tdm_stage_settings student;
    int width, height, clip_skip, emphasis, threads, quiet;
    uint64_t seed;
    int seed_random;
} tdm_cli_common_opts;
void tdm_cli_common_init(tdm_cli_common_opts *c);
/* 1: argv[*i] was one (consumed, *i advanced past its value); 0: not one; -1: bad value (printed). */
int tdm_cli_common_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_common_opts *o);
/* Copies the negative prompt ("" when none), size, clip skip, emphasis and student settings into p (not the
 * seed). */
void tdm_cli_common_apply(const tdm_cli_common_opts *c, tdm_adaptive_params *p);

/* The teacher and the refinement: --teacher, --teacher-steps, --teacher-guidance, --teacher-sampler,
 * --teacher-eta, --refine-strength, --refine-noise, --refine-through-pixels. */
typedef struct tdm_cli_teacher_opts {
    const char *path;            /* NULL: the student's model */
    const char *unet_component;  /* --teacher-unet NAME (NULL: "unet") */
    tdm_stage_settings settings;
    double strength, noise;      /* NAN when not given */
    int pixels;
    int refine_steps;            /* --refine-steps T (0: the teacher's steps) */
} tdm_cli_teacher_opts;
void tdm_cli_teacher_init(tdm_cli_teacher_opts *t);
int tdm_cli_teacher_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_teacher_opts *t); /* as above */
int tdm_cli_teacher_check(const char *cmd, const tdm_cli_teacher_opts *t); /* 0 ok, 2 printed */
void tdm_cli_teacher_apply(const tdm_cli_teacher_opts *t, tdm_adaptive_params *p);
/* Student, and the teacher when it is another model or another UNet component of the same folder
 * (*teacher stays NULL when the student's model is also the teacher). 0 or a tdm_code. */
int tdm_cli_load_pair(const tdm_cli_common_opts *c, const tdm_cli_teacher_opts *t, tdm_model **student,
                      tdm_model **teacher, tdm_status *st);

/* ---- LoRA options (added by the LoRA helper; defined in cmd_generate.c; docs/LORA.md) ---- */
#define TDM_CLI_MAX_LORAS 16
typedef struct tdm_cli_loras {
    int n;
    tdm_lora_spec s[TDM_CLI_MAX_LORAS]; /* paths point into path[] */
    char path[TDM_CLI_MAX_LORAS][1024];
} tdm_cli_loras;
/* Appends "PATH[:SCALE]" (SCALE: a number after the last ':', default 1) given to option opt;
 * 1 ok, 0 message printed. */
int tdm_cli_lora_add(const char *cmd, const char *opt, const char *v, tdm_cli_loras *l);

#endif
