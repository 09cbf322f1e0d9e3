/* Oracles for the adaptive pipeline: one interface, score(prompt, RGB8 image) -> float (higher is
 * better), behind the public tdm_oracle (tandem.h), with a registry by name (tdm_oracle_open):
 *   checker      shapes-world ground-truth checker (src/world/checker.h): the prompt is parsed as a
 *                shapes-world caption and the score is tdm_world_check's, in [0, 1] (the "ideal oracle")
 *   imagereward  ImageReward (src/models/imagereward.h): a model folder            } model-backed:
 *   clipscore    max(100 cos(image, text), 0), CLIP (src/models/clip_scores.h)     } model_path
 *   aesthetic    LAION aesthetic head on the CLIP image embedding                 } (see oracle.c
 *   pickscore    PickScore                                                        } open_clip for
 *   hpsv2        HPSv2 (OpenCLIP ViT-H/14)                                        } "MAIN,EXTRA")
 *   constant:V   always V (tests)
 *   brightness   mean RGB value / 255, in [0, 1] (tests: deterministic, depends on the image)
 * A model-backed oracle implements tdm_oracle_score_fn and is created with tdm_oracle_make. */
#ifndef TDM_PIPELINE_ORACLE_H
#define TDM_PIPELINE_ORACLE_H

#include "base/error.h"
#include "tensor/ops.h"

typedef tdm_code (*tdm_oracle_score_fn)(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                                        float *score, tdm_status *st);

/* Takes ownership of state (free_state may be NULL). ex: the engine's executor (NULL: one thread);
 * must outlive the oracle. */
tdm_code tdm_oracle_make(const char *name, tdm_oracle_score_fn fn, void (*free_state)(void *), void *state,
                         const tdm_exec *ex, tdm_oracle **out, tdm_status *st);

/* 1 when name is a known registry name (including "constant:V" forms). */
int tdm_oracle_name_known(const char *name);

#endif
