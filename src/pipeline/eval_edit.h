/* tandem edit-eval: the shapes-world edit evaluation (public API: tdm_edit_eval in tandem.h; docs/EDITING.md).
 *
 *  eval_edit.c         the run: settings, the resumable log (pairs.jsonl), one pair = the student's edit, the
 *                      teacher-only edit (= the regeneration from the source with the same noise) and the
 *                      teacher's refinement of the student's edit, each scored
 *  eval_edit_report.c  the methods (eval.h's tdm_eval_record_make), results.jsonl and table.md */
#ifndef TDM_PIPELINE_EVAL_EDIT_H
#define TDM_PIPELINE_EVAL_EDIT_H

#include <stdint.h>

#include "pipeline/eval.h"
#include "tandem.h"
#include "world/edit_pairs.h"

/* What one pair produced. base: checker (score of each run's edit on the target caption; success = 1),
 * oracle, UNet evaluations and seconds of the runs (eval.h), has_checker = 1. */
typedef struct tdm_eeval_pair {
    tdm_eval_sample base;
    uint64_t scene_index;
    int kind, held_out;
    int preserved[TDM_EVAL_N_RUNS];     /* every unchanged attribute kept */
    int kept[TDM_EVAL_N_RUNS], checked[TDM_EVAL_N_RUNS];
    char lost[TDM_EVAL_N_RUNS][96];      /* names of the attributes not kept ("count,object1.shape"; log only) */
    double similarity[TDM_EVAL_N_RUNS]; /* CLIP cosine to the source; NAN without a model */
    double mask_area;                   /* masked editing: share of the latent in the region (NAN: unmasked) */
    int cn_calls[TDM_EVAL_N_RUNS];      /* ControlNet forward calls (layout-guided editing; log only) */
} tdm_eeval_pair;

typedef struct tdm_eeval_report_in {
    const char *out_dir;
    uint64_t world_seed;
    const tdm_eeval_pair *pairs; /* [n] */
    int n;
    int with_regenerate;
    const double *k, *tau; /* [n_k] */
    int n_k;
    const char *tau_source;
    const char *settings_line;
    const char *warnings;
} tdm_eeval_report_in;

/* Writes out_dir/results.jsonl and out_dir/table.md (temporary file + rename each). */
tdm_code tdm_eeval_write_report(const tdm_eeval_report_in *in, tdm_status *st);

#endif
