/* `--preset NAME` and `--student-lora` for the adaptive commands (generate --adaptive, calibrate, eval;
 * docs/PRESETS.md, docs/CLI.md). Presets are defined once in the library (tdm_preset_find); here a preset
 * only fills the options the user did not give. Uses only tandem.h and the adaptive option helpers. */
#ifndef TDM_APP_CLI_PRESET_H
#define TDM_APP_CLI_PRESET_H

#include "app/commands_adaptive.h"
#include "tandem.h"

/* --preset NAME, --teacher-width N, --teacher-height N; and whether --oracle was given (a preset only sets
 * the oracle when it was not). */
typedef struct tdm_cli_preset_opts {
    const char *name;                  /* NULL: no preset */
    int teacher_width, teacher_height; /* 0: the preset's, else the student's size */
    int oracle_given;
} tdm_cli_preset_opts;

/* 1: argv[*i] was one of the options above (consumed); 0: not one (--oracle is noted, not consumed);
 * -1: bad value (message printed). with_teacher: also accept the teacher-size options. */
int tdm_cli_preset_parse(const char *cmd, int argc, char **argv, int *i, int with_teacher, tdm_cli_preset_opts *o);

/* The preset named in o (*out NULL when none). Returns -1 to go on; 0 after printing the list for
 * "--preset help" (exit 0); 2 for an unknown name (message listing the names printed; exit 2). */
int tdm_cli_preset_resolve(const char *cmd, const tdm_cli_preset_opts *o, const tdm_preset **out);

/* Fills what the user left unset from the preset: the student's steps / guidance / sampler, the size,
 * the oracle (unless --oracle was given); with t: the teacher's settings, the refinement value (unless
 * --refine-strength / --refine-noise was given) and the teacher size; with k: the percentile when none of
 * --tau / --k / --teacher-share was given (have_threshold 0). */
void tdm_cli_preset_fill(const tdm_preset *pr, tdm_cli_common_opts *c, tdm_cli_teacher_opts *t,
                         tdm_cli_preset_opts *o, double *k, int have_threshold);

/* Prints the preset's model-check warnings (tdm_preset_check) as "tandem CMD: warning: ..." lines. */
void tdm_cli_preset_warn(const char *cmd, const tdm_preset *pr, const tdm_model *student, const tdm_model *teacher);

/* Help lines for --preset (and the teacher size when with_teacher). */
void tdm_cli_preset_help(int with_teacher);

/* ---- --student-lora PATH[:SCALE] (repeatable), --student-lora-no-share (cmd_adaptive.c) ---- */

/* 1 consumed, 0 not one, -1 bad value (printed). *share is cleared by --student-lora-no-share (share may be
 * NULL: that option is then not accepted). */
int tdm_cli_student_lora_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_loras *l, int *share);
/* Student (+ LoRA files) and teacher: with share, a student on the teacher's model and UNet component is
 * derived from the teacher (one copy of the UNet weights); otherwise the student is loaded on its own with
 * the LoRA (merged when !share). *teacher NULL: the student's model is also the teacher. 0 or a tdm_code. */
int tdm_cli_load_pair_lora(const tdm_cli_common_opts *c, const tdm_cli_teacher_opts *t, const tdm_cli_loras *l,
                           int share, tdm_model **student, tdm_model **teacher, tdm_status *st);
/* The student alone with the LoRA files applied at run time (tandem calibrate). */
int tdm_cli_load_student_lora(const tdm_cli_common_opts *c, const tdm_cli_loras *l, tdm_model **student,
                              tdm_status *st);
/* "student <LoRA summary>" on stderr when the student has LoRA files (not with quiet). */
void tdm_cli_student_lora_print(const tdm_model *student, const tdm_cli_loras *l, int quiet);

#endif
