/* tandem control-eval: the shapes-world ControlNet evaluation (public API: tdm_control_eval in tandem.h;
 * docs/CONTROLNET.md "Shapes world evaluation").
 *
 *  eval_control.c         the run: settings, the resumable log (samples.jsonl), one scene = the student's,
 *                         the teacher's and the refinement's sample with the scene's segmentation as the
 *                         ControlNet condition, each scored (checker, placement IoU, oracle)
 *  eval_control_report.c  the methods (tdm_eval_record_make, pipeline/eval.h) and table.md
 *
 * The runs per scene are eval.h's (TDM_EVAL_RUN_STUDENT / _TEACHER / _REFINE) and so are the methods. */
#ifndef TDM_PIPELINE_EVAL_CONTROL_H
#define TDM_PIPELINE_EVAL_CONTROL_H

#include <stdint.h>

#include "pipeline/eval.h"
#include "tandem.h"
#include "world/world.h"

/* What one scene produced. */
typedef struct tdm_ceval_sample {
    uint64_t scene_index, seed;
    int n_objects;                     /* condition objects (scene objects) */
    float checker[TDM_EVAL_N_RUNS];    /* checker score of each run's image on the caption */
    float iou[TDM_EVAL_N_RUNS];        /* placement IoU (mean over the condition objects) */
    float oracle[TDM_EVAL_N_RUNS];
    int evals[TDM_EVAL_N_RUNS];        /* UNet evaluations (a CFG step counts 2) */
    int cn_calls[TDM_EVAL_N_RUNS];     /* ControlNet forward calls */
    double seconds[TDM_EVAL_N_RUNS];   /* generation time */
    double seconds_oracle;             /* scoring the student's image (the adaptive decision) */
} tdm_ceval_sample;

/* The scene's condition: the segmentation map RGB8 [height, width, 3] ((255, 255, 255) where the object-id
 * mask of tdm_world_render with supersample 4 is > 0, else 0) into cond (allocated); ids [height * width]
 * (may be NULL) receives the mask itself (0 background, k = object k). */
tdm_code tdm_ceval_condition(const tdm_world_scene *sc, int width, int height, tdm_image *cond, uint8_t *ids,
                             tdm_status *st);

/* The eval.h sample of the same runs (for tdm_eval_record_make). */
void tdm_ceval_as_eval_sample(const tdm_ceval_sample *c, tdm_eval_sample *s);

typedef struct tdm_ceval_report_in {
    const char *out_dir;
    const tdm_ceval_sample *samples; /* [n] */
    int n;
    int with_regenerate;
    const double *k, *tau;           /* [n_k] */
    int n_k;
    const char *tau_source;          /* "calibration FILE" or "the evaluation's own student oracle scores" */
    const char *settings_line;       /* one Markdown line: models, ControlNet, refinement, oracle, world */
    const char *warnings;            /* calibration warnings ("" for none), one per line */
} tdm_ceval_report_in;

/* Writes out_dir/table.md (through a temporary file and a rename). */
tdm_code tdm_ceval_write_report(const tdm_ceval_report_in *in, tdm_status *st);

#endif
