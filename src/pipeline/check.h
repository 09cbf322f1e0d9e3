/* `tandem check`: runs a fixture folder (../shared/fixtures format: case.json + io.safetensors +
 * model folders) and compares every output the engine computes with the reference values.
 * One handler per fixture kind (check_<kind>.c); tolerances live in one place (check.c). */
#ifndef TDM_PIPELINE_CHECK_H
#define TDM_PIPELINE_CHECK_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "tandem.h"
#include "tensor/ops.h"

typedef struct tdm_check {
    const char *dir;       /* fixture folder */
    cJSON *case_json;      /* parsed case.json */
    tdm_safetensors io;    /* io.safetensors (map NULL when the fixture has none) */
    tdm_exec ex;
    tdm_check_line_fn line_fn;
    void *line_user;
    int n_pass, n_fail, n_skip;
} tdm_check;

/* A handler runs the fixture and calls tdm_check_compare for each output. */
typedef tdm_code (*tdm_check_handler)(tdm_check *c, tdm_status *st);

/* Prints a report line through the callback (printf-style). */
void tdm_check_line(tdm_check *c, const char *fmt, ...) TDM_PRINTF(2, 3);

/* Loads io.safetensors tensor `name` widened to f32 into a malloc'ed buffer (caller frees);
 * shape in *t_out when non-NULL. Error naming the tensor when absent. */
tdm_code tdm_check_input(tdm_check *c, const char *name, float **data, tdm_tensor *t_out, tdm_status *st);

/* Compares got[numel] with io tensor `name` (numel must match). Tolerance from case.json
 * fp32_vs_fp64[name] (or the worst figure of the case) through tdm_check_tolerance; prints one line
 * "PASS/FAIL name max_abs rel_l2 (tol ...)" and counts it. */
tdm_code tdm_check_compare(tdm_check *c, const char *name, const float *got, int64_t numel, tdm_status *st);
/* Same with an explicit expected array (for derived values such as token ids). */
void tdm_check_compare_values(tdm_check *c, const char *name, const float *got, const float *expected,
                              int64_t numel, double tol_rel, double tol_abs);
/* tdm_check_compare for a value derived from a computed output that carries its own tolerance: the
 * absolute tolerance is at least extra_abs (the propagated bound of the inputs' tolerated error) and
 * the relative one at least extra_abs / rms(expected) (so that small values, e.g. near-zero cosines,
 * are judged by the same absolute bound). */
tdm_code tdm_check_compare_composed(tdm_check *c, const char *name, const float *got, int64_t numel, double extra_abs,
                                    tdm_status *st);
/* The tolerance tdm_check_compare uses for io tensor `name` (ref_max_abs: max |expected|). */
void tdm_check_tolerance_of(const tdm_check *c, const char *name, double ref_max_abs, double *tol_rel, double *tol_abs);
/* Records an exact (integer) comparison result. */
void tdm_check_exact(tdm_check *c, const char *name, int ok, const char *detail);

/* Tolerance for an output given the reference's own float32-vs-float64 error (negative = unknown). */
void tdm_check_tolerance(double fp_rel, double fp_abs, double ref_max_abs, double *tol_rel, double *tol_abs);

/* Resolves a path relative to the fixture folder into buf. */
const char *tdm_check_path(const tdm_check *c, const char *rel, char *buf, size_t n);
/* Token-id helpers of the tokenizer checks. The int array field `key` of a case: -1 when absent, else the
 * count (*out malloc'ed; a non-number element reads -1). */
int tdm_check_json_ids(const cJSON *cs, const char *key, int32_t **out);
/* Formats up to max_shown ids of a[n] into buf: "[1 2 3]" or "[1 2 ... (n)]". */
void tdm_check_fmt_ids(char *buf, size_t sz, const int32_t *a, int n, int max_shown);

/* Kind handlers (each in its own file). */
tdm_code tdm_check_unet(tdm_check *c, tdm_status *st);
tdm_code tdm_check_vae(tdm_check *c, tdm_status *st);
tdm_code tdm_check_clip_text(tdm_check *c, tdm_status *st);
tdm_code tdm_check_tokenizer_clip(tdm_check *c, tdm_status *st);
tdm_code tdm_check_scheduler(tdm_check *c, tdm_status *st);
tdm_code tdm_check_imagereward(tdm_check *c, tdm_status *st);
tdm_code tdm_check_tokenizer_bert(tdm_check *c, tdm_status *st);
tdm_code tdm_check_preprocessing(tdm_check *c, tdm_status *st);
tdm_code tdm_check_controlnet(tdm_check *c, tdm_status *st);
tdm_code tdm_check_clip_vision(tdm_check *c, tdm_status *st);

/* ---- added by the shapes-wiring helper: kind "sampler-consistency" (check_consistency.c) ---- */
tdm_code tdm_check_sampler_consistency(tdm_check *c, tdm_status *st);

/* ---- added by the LoRA helper: kind "lora" (check_lora.c) ---- */
tdm_code tdm_check_lora(tdm_check *c, tdm_status *st);

#endif
