/* CLIP-based image scores on top of the CLIP towers (clip_vision.h, clip_text.h):
 *
 *   CLIPScore  (torchmetrics CLIPScore, model openai/clip-vit-large-patch14):
 *              max(100 * cos(text_embeds, image_embeds), 0)
 *   PickScore  (yuvalkirstain/PickScore_v1, a transformers CLIPModel, ViT-H/14):
 *              exp(logit_scale) * cos(text_embeds, image_embeds)   (logit_scale from the checkpoint)
 *   HPSv2      (tgxs002/HPSv2, OpenCLIP ViT-H/14 weights): cos(text_embeds, image_embeds), no scale;
 *              preprocessing ResizeMaxSize(224) + zero pad instead of resize + centre crop
 *   aesthetic  (christophschuhmann/improved-aesthetic-predictor, "v2"): an MLP over the L2-normalised
 *              ViT-L/14 image_embeds, layers.{0,2,4,6,7}: Linear(768,1024) Dropout Linear(1024,128)
 *              Dropout Linear(128,64) Dropout Linear(64,16) Linear(16,1); no nonlinearity (the ReLUs
 *              are commented out in the reference), dropout is the identity at inference.
 * cos(a, b) = a.b / (|a| |b|) (each side L2-normalised, as all four references do), in double.
 *
 * tdm_clip_oracle bundles towers, tokenizer, preprocessing and head into score(prompt, image). */
#ifndef TDM_MODELS_CLIP_SCORES_H
#define TDM_MODELS_CLIP_SCORES_H

#include <stdint.h>

#include "base/error.h"
#include "io/weights.h"
#include "models/clip_text.h"
#include "models/clip_tokenizer.h"
#include "models/clip_vision.h"
#include "tandem.h"
#include "tensor/ops.h"

/* ---- scores from embeddings ------------------------------------------------------------------- */

/* a.b / (|a| |b|) accumulated in double; 0 when either vector is zero. */
double tdm_clip_cosine(const float *a, const float *b, int64_t n);
/* max(100 cos, 0) (torchmetrics CLIPScore). */
float tdm_clipscore(const float *text_embeds, const float *image_embeds, int64_t n);
/* exp(logit_scale) cos (PickScore). */
float tdm_pickscore(const float *text_embeds, const float *image_embeds, int64_t n, float logit_scale);
/* cos (HPSv2 / HPSv2.1). */
float tdm_hpsv2_score(const float *text_embeds, const float *image_embeds, int64_t n);

/* ---- LAION aesthetic head --------------------------------------------------------------------- */

#define TDM_AESTHETIC_LAYERS 5

typedef struct tdm_aesthetic_head {
    tdm_weights ws;                     /* owns the file; tensors below are views */
    int in_dim;                         /* 768 for ViT-L/14 */
    int dims[TDM_AESTHETIC_LAYERS + 1]; /* in_dim -> 1024 -> 128 -> 64 -> 16 -> 1 (read from the shapes) */
    tdm_tensor w[TDM_AESTHETIC_LAYERS]; /* layers.{0,2,4,6,7}.weight [dims[i+1], dims[i]] */
    tdm_tensor b[TDM_AESTHETIC_LAYERS]; /* layers.{0,2,4,6,7}.bias [dims[i+1]] */
} tdm_aesthetic_head;

/* A safetensors file holding layers.{0,2,4,6,7}.{weight,bias} (the .pth state_dict converted; a
 * "model."-free name set). Widths come from the shapes; each layer's input must match the previous
 * layer's output and the last output must be 1; expected_in (> 0) checks the first input width. */
tdm_code tdm_aesthetic_head_load(tdm_aesthetic_head **out, const char *path, int expected_in, tdm_status *st);
/* Same over a store with those names (ownership of *ws moves in). */
tdm_code tdm_aesthetic_head_from_weights(tdm_aesthetic_head **out, tdm_weights *ws, int expected_in, tdm_status *st);
void tdm_aesthetic_head_free(tdm_aesthetic_head *h);
/* image_embeds [B, in_dim] (raw; L2-normalised here) -> scores [B]. */
tdm_code tdm_aesthetic_head_forward(const tdm_aesthetic_head *h, const tdm_exec *ex, const float *image_embeds,
                                    int64_t B, float *scores, tdm_status *st);

/* ---- oracles: score(prompt, image) ------------------------------------------------------------ */

typedef enum tdm_clip_oracle_kind {
    TDM_CLIP_ORACLE_CLIPSCORE = 0,
    TDM_CLIP_ORACLE_AESTHETIC,
    TDM_CLIP_ORACLE_PICKSCORE,
    TDM_CLIP_ORACLE_HPSV2
} tdm_clip_oracle_kind;

typedef struct tdm_clip_oracle_paths {
    /* CLIPScore / aesthetic / PickScore: a transformers CLIPModel folder (config.json, model.safetensors,
     * optional preprocessor_config.json); aesthetic needs only the vision half. */
    const char *model_dir;
    /* HPSv2: one safetensors file with the OpenCLIP names (visual.*, token_embedding.weight, ...,
     * logit_scale; a leading "module." is accepted), converted from HPS_v2(.1)_compressed.pt with
     * tools/convert_ckpt.py. */
    const char *openclip_file;
    /* aesthetic: the head (layers.*), converted from sac+logos+ava1-l14-linearMSE.pth. */
    const char *aesthetic_head;
    /* vocab.json + merges.txt folder (all but aesthetic); NULL: model_dir. */
    const char *tokenizer_dir;
} tdm_clip_oracle_paths;

typedef struct tdm_clip_oracle {
    tdm_clip_oracle_kind kind;
    tdm_clip_vision *vision;
    tdm_clip_text *text;          /* NULL for aesthetic */
    tdm_clip_tokenizer *tok;      /* NULL for aesthetic */
    tdm_aesthetic_head *head;     /* aesthetic only */
    tdm_clip_image_proc proc;
    float logit_scale;            /* PickScore: from the checkpoint */
    int strip_emphasis;           /* 1 (default): A1111 (word:1.2) syntax is parsed out of the prompt */
    int clean_mode;               /* tdm_clip_clean_mode: HF (transformers) or OPENAI (open_clip) */
    int pad_id;                   /* OpenCLIP tokenize pads with 0; HF: the tokenizer's pad */
} tdm_clip_oracle;

const char *tdm_clip_oracle_kind_name(tdm_clip_oracle_kind kind);
tdm_code tdm_clip_oracle_load(tdm_clip_oracle **out, tdm_clip_oracle_kind kind, const tdm_clip_oracle_paths *paths,
                              tdm_status *st);
void tdm_clip_oracle_free(tdm_clip_oracle *o);

/* Scores one RGB8 image against a prompt (prompt unused by aesthetic; may be NULL there).
 * Text: first 77-token window (truncated), text_embeds at the pooling position; image: the oracle's
 * preprocessing then image_embeds. */
tdm_code tdm_clip_oracle_score(tdm_clip_oracle *o, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                               float *score, tdm_status *st);
/* The same with the signature of tdm_oracle_score_fn (src/pipeline/oracle.h): state is a tdm_clip_oracle;
 * and a free callback for tdm_oracle_make. */
tdm_code tdm_clip_oracle_score_cb(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                                  float *score, tdm_status *st);
void tdm_clip_oracle_free_cb(void *state);

/* Steps of the score, for callers that batch or cache: text_embeds [projection_dim] of a prompt, and
 * image_embeds [projection_dim] of an image. */
tdm_code tdm_clip_oracle_text_embeds(tdm_clip_oracle *o, const tdm_exec *ex, const char *prompt, float *text_embeds,
                                     tdm_status *st);
tdm_code tdm_clip_oracle_image_embeds(tdm_clip_oracle *o, const tdm_exec *ex, const tdm_image *img,
                                      float *image_embeds, tdm_status *st);
/* The final score from the two embeddings (aesthetic: text_embeds unused). */
tdm_code tdm_clip_oracle_combine(const tdm_clip_oracle *o, const tdm_exec *ex, const float *text_embeds,
                                 const float *image_embeds, float *score, tdm_status *st);

#endif
