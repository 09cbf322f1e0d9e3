/* ImageReward (THUDM/ImageReward, ImageReward/ImageReward.py): a text-image preference score.
 *
 *   pixels = preprocess(image)            io/image_ops.h: shortest edge -> image_size (PIL bicubic),
 *                                         torchvision centre crop (round half even), /255, CLIP mean/std
 *   img    = BLIP ViT(pixels)             [T = 1 + (S/P)^2, Dv]: patch conv (bias) + cls + pos_embed,
 *                                         pre-LN blocks (qkv bias, exact GELU), LayerNorm eps 1e-6,
 *                                         final norm on all tokens (BLIP models/vit.py)
 *   h      = BERT-MED(ids, mask, img)     [L = 35, H]: word + absolute position embeddings (no token
 *                                         types), LN eps 1e-12; per layer (post-LN): self-attention with
 *                                         (1 - mask) * -10000 -> cross-attention to img (key/value
 *                                         Linear(Dv -> H)) -> GELU FFN (BLIP models/med.py, 'multimodal')
 *   raw    = MLP(h[0])                    5 Linear layers, no activations (mlp.layers.0,2,4,6,7)
 *   reward = (raw - mean) / std           mean 0.16717362830052426, std 1.0333394966054072
 *
 * Files (a model folder): config.json (dims, head, reward mean/std, preprocessing; see
 * docs/ORACLES.md), med_config.json (BertConfig), model.safetensors with ImageReward's key names
 * (blip.visual_encoder.*, blip.text_encoder.*, mlp.layers.*; blip.vision_proj/text_proj and the
 * position_ids buffer are recognised and ignored), vocab.txt (bert-base-uncased) for the tokenizer.
 * tools/convert_imagereward.py makes such a folder from the published ImageReward.pt. */
#ifndef TDM_MODELS_IMAGEREWARD_H
#define TDM_MODELS_IMAGEREWARD_H

#include <stdint.h>

#include "base/error.h"
#include "io/image.h"
#include "io/weights.h"
#include "models/bert_tokenizer.h"
#include "tensor/ops.h"

#define TDM_IMAGEREWARD_MEAN 0.16717362830052426
#define TDM_IMAGEREWARD_STD 1.0333394966054072
#define TDM_IMAGEREWARD_HEAD_LAYERS 5

typedef struct tdm_imagereward_config {
    /* BLIP ViT (config.json "image_size", "vit") */
    int image_size, patch_size, in_chans;
    int vit_width, vit_depth, vit_heads, vit_mlp; /* vit_mlp = width * mlp_ratio */
    float vit_eps;
    /* BERT-MED (med_config.json); encoder_width = vit_width as BLIP_Pretrain sets it */
    int hidden, layers, heads, intermediate, vocab_size, max_position;
    float bert_eps;
    /* head (config.json "mlp_dims": 6 sizes, 5 Linear layers) and reward normalisation */
    int mlp_dims[TDM_IMAGEREWARD_HEAD_LAYERS + 1];
    double reward_mean, reward_std;
    /* preprocessing (config.json "preprocess.Normalize"; OpenAI CLIP constants by default) */
    float mean[3], std[3];
    int max_length; /* tokenizer max_length (35) */
} tdm_imagereward_config;

typedef struct tdm_ir_vit_block {
    tdm_tensor ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} tdm_ir_vit_block;

typedef struct tdm_ir_bert_layer {
    tdm_tensor q_w, q_b, k_w, k_b, v_w, v_b, ao_w, ao_b, ao_ln_w, ao_ln_b;        /* self-attention */
    tdm_tensor cq_w, cq_b, ck_w, ck_b, cv_w, cv_b, co_w, co_b, co_ln_w, co_ln_b;  /* cross-attention */
    tdm_tensor i_w, i_b, o_w, o_b, o_ln_w, o_ln_b;                                 /* FFN */
} tdm_ir_bert_layer;

typedef struct tdm_imagereward {
    tdm_imagereward_config cfg;
    tdm_weights ws;
    /* vision */
    tdm_tensor patch_w, patch_b, cls_token, pos_embed, norm_w, norm_b;
    tdm_ir_vit_block *blocks; /* [vit_depth] */
    /* text */
    tdm_tensor word_emb, pos_emb, emb_ln_w, emb_ln_b;
    tdm_ir_bert_layer *bert; /* [layers] */
    /* head */
    tdm_tensor head_w[TDM_IMAGEREWARD_HEAD_LAYERS], head_b[TDM_IMAGEREWARD_HEAD_LAYERS];
    tdm_bert_tokenizer *tok; /* NULL until a vocab.txt is found or set */
} tdm_imagereward;

/* Reads config.json + med_config.json of dir (errors name the file and field). */
tdm_code tdm_imagereward_config_load(tdm_imagereward_config *cfg, const char *dir, tdm_status *st);

/* Loads a model folder (see above). The tokenizer comes from dir/vocab.txt, or from the path that
 * config.json "tokenizer.vocab" starts with (relative to dir), when either exists; otherwise call
 * tdm_imagereward_set_vocab before scoring text. */
tdm_code tdm_imagereward_load(tdm_imagereward *m, const char *dir, tdm_status *st);
tdm_code tdm_imagereward_set_vocab(tdm_imagereward *m, const char *vocab_txt, tdm_status *st);
void tdm_imagereward_free(tdm_imagereward *m);

/* Tokens per image of the vision tower: 1 + (image_size / patch_size)^2. */
int tdm_imagereward_image_tokens(const tdm_imagereward *m);

/* Vision tower: pixels [B, 3, S, S] (normalised) -> image_embeds [B, T, Dv]. */
tdm_code tdm_imagereward_encode_image(const tdm_imagereward *m, const tdm_exec *ex, const float *pixels, int B,
                                      float *image_embeds, tdm_status *st);
/* Text tower for one token sequence against B images: ids, mask [L]; image_embeds [B, T, Dv];
 * hidden [B, L, H] = last_hidden_state. */
tdm_code tdm_imagereward_encode_text(const tdm_imagereward *m, const tdm_exec *ex, const int32_t *ids,
                                     const int32_t *mask, int L, const float *image_embeds, int B, float *hidden,
                                     tdm_status *st);
/* Head on the [CLS] features cls [B, H]: raw [B] (before normalisation; reward = (raw - mean) / std
 * in float32, as torch does with Python scalars). */
tdm_code tdm_imagereward_head(const tdm_imagereward *m, const tdm_exec *ex, const float *cls, int B, float *raw,
                              tdm_status *st);
float tdm_imagereward_normalize(const tdm_imagereward *m, float raw);

/* ImageReward.score(prompt, image) for n RGB8 images of any size and one prompt (UTF-8, any length:
 * truncated to max_length tokens as the reference does): rewards[n]. Images are processed in
 * batches of at most 8. */
tdm_code tdm_imagereward_score_batch(const tdm_imagereward *m, const tdm_exec *ex, const char *prompt,
                                     const tdm_image *images, int n, float *rewards, tdm_status *st);
tdm_code tdm_imagereward_score(const tdm_imagereward *m, const tdm_exec *ex, const char *prompt,
                               const tdm_image *image, float *reward, tdm_status *st);

#endif
