/* ImageReward: weight loading, the head and the score API (see imagereward.h). The towers are in
 * blip_vit.c (vision) and bert_med.c (text). */
#include "models/imagereward.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "io/image_ops.h"

/* ---- loading ------------------------------------------------------------------------------------ */

/* Tensors of ImageReward.pt that score() never uses; recognised and dropped by name:
 * BLIP's ITC projections and the text embeddings' position_ids buffer. */
static int ignored_name(const char *name) {
    static const char *const ignored[] = {"blip.vision_proj.weight", "blip.vision_proj.bias", "blip.text_proj.weight",
                                          "blip.text_proj.bias", "blip.text_encoder.embeddings.position_ids"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (strcmp(name, ignored[i]) == 0) return 1;
    return 0;
}

static tdm_code ir_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st) {
    (void)ctx;
    if (ignored_name(name)) return TDM_OK;
    return tdm_weights_emit(ws, name, t, st);
}

#define V1(t, n, ...) tdm_weights_getf(ws, t, 1, n, 0, 0, 0, st, __VA_ARGS__)
#define V2(t, a, b, ...) tdm_weights_getf(ws, t, 2, a, b, 0, 0, st, __VA_ARGS__)

static tdm_code load_vit(tdm_imagereward *m, tdm_status *st) {
    const tdm_imagereward_config *c = &m->cfg;
    tdm_weights *ws = &m->ws;
    const int64_t D = c->vit_width, F = c->vit_mlp, P = c->patch_size, T = tdm_imagereward_image_tokens(m);
    const char *p = "blip.visual_encoder";
    TDM_TRY(tdm_weights_getf(ws, &m->patch_w, 4, D, c->in_chans, P, P, st, "%s.patch_embed.proj.weight", p));
    TDM_TRY(V1(&m->patch_b, D, "%s.patch_embed.proj.bias", p));
    TDM_TRY(tdm_weights_getf(ws, &m->cls_token, 3, 1, 1, D, 0, st, "%s.cls_token", p));
    TDM_TRY(tdm_weights_getf(ws, &m->pos_embed, 3, 1, T, D, 0, st, "%s.pos_embed", p));
    m->blocks = calloc((size_t)(c->vit_depth ? c->vit_depth : 1), sizeof *m->blocks);
    if (!m->blocks) return tdm_fail(st, TDM_ERR_NOMEM, "imagereward: out of memory");
    for (int i = 0; i < c->vit_depth; i++) {
        tdm_ir_vit_block *b = &m->blocks[i];
        TDM_TRY(V1(&b->ln1_w, D, "%s.blocks.%d.norm1.weight", p, i));
        TDM_TRY(V1(&b->ln1_b, D, "%s.blocks.%d.norm1.bias", p, i));
        TDM_TRY(V2(&b->qkv_w, 3 * D, D, "%s.blocks.%d.attn.qkv.weight", p, i));
        TDM_TRY(V1(&b->qkv_b, 3 * D, "%s.blocks.%d.attn.qkv.bias", p, i));
        TDM_TRY(V2(&b->proj_w, D, D, "%s.blocks.%d.attn.proj.weight", p, i));
        TDM_TRY(V1(&b->proj_b, D, "%s.blocks.%d.attn.proj.bias", p, i));
        TDM_TRY(V1(&b->ln2_w, D, "%s.blocks.%d.norm2.weight", p, i));
        TDM_TRY(V1(&b->ln2_b, D, "%s.blocks.%d.norm2.bias", p, i));
        TDM_TRY(V2(&b->fc1_w, F, D, "%s.blocks.%d.mlp.fc1.weight", p, i));
        TDM_TRY(V1(&b->fc1_b, F, "%s.blocks.%d.mlp.fc1.bias", p, i));
        TDM_TRY(V2(&b->fc2_w, D, F, "%s.blocks.%d.mlp.fc2.weight", p, i));
        TDM_TRY(V1(&b->fc2_b, D, "%s.blocks.%d.mlp.fc2.bias", p, i));
    }
    TDM_TRY(V1(&m->norm_w, D, "%s.norm.weight", p));
    return V1(&m->norm_b, D, "%s.norm.bias", p);
}

static tdm_code load_attn(tdm_weights *ws, const char *p, int i, const char *kind, int64_t H, int64_t KV,
                          tdm_tensor *w[10], tdm_status *st) {
    TDM_TRY(V2(w[0], H, H, "%s.%d.%s.self.query.weight", p, i, kind));
    TDM_TRY(V1(w[1], H, "%s.%d.%s.self.query.bias", p, i, kind));
    TDM_TRY(V2(w[2], H, KV, "%s.%d.%s.self.key.weight", p, i, kind));
    TDM_TRY(V1(w[3], H, "%s.%d.%s.self.key.bias", p, i, kind));
    TDM_TRY(V2(w[4], H, KV, "%s.%d.%s.self.value.weight", p, i, kind));
    TDM_TRY(V1(w[5], H, "%s.%d.%s.self.value.bias", p, i, kind));
    TDM_TRY(V2(w[6], H, H, "%s.%d.%s.output.dense.weight", p, i, kind));
    TDM_TRY(V1(w[7], H, "%s.%d.%s.output.dense.bias", p, i, kind));
    TDM_TRY(V1(w[8], H, "%s.%d.%s.output.LayerNorm.weight", p, i, kind));
    return V1(w[9], H, "%s.%d.%s.output.LayerNorm.bias", p, i, kind);
}

static tdm_code load_bert(tdm_imagereward *m, tdm_status *st) {
    const tdm_imagereward_config *c = &m->cfg;
    tdm_weights *ws = &m->ws;
    const int64_t H = c->hidden, I = c->intermediate, Dv = c->vit_width;
    const char *e = "blip.text_encoder.embeddings";
    TDM_TRY(V2(&m->word_emb, c->vocab_size, H, "%s.word_embeddings.weight", e));
    TDM_TRY(V2(&m->pos_emb, c->max_position, H, "%s.position_embeddings.weight", e));
    TDM_TRY(V1(&m->emb_ln_w, H, "%s.LayerNorm.weight", e));
    TDM_TRY(V1(&m->emb_ln_b, H, "%s.LayerNorm.bias", e));
    if (!tdm_tensor_is_contiguous(&m->word_emb) || !tdm_tensor_is_contiguous(&m->pos_emb))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "imagereward: embedding tables must be contiguous");
    m->bert = calloc((size_t)(c->layers ? c->layers : 1), sizeof *m->bert);
    if (!m->bert) return tdm_fail(st, TDM_ERR_NOMEM, "imagereward: out of memory");
    const char *p = "blip.text_encoder.encoder.layer";
    for (int i = 0; i < c->layers; i++) {
        tdm_ir_bert_layer *l = &m->bert[i];
        tdm_tensor *sa[10] = {&l->q_w, &l->q_b, &l->k_w, &l->k_b, &l->v_w, &l->v_b, &l->ao_w, &l->ao_b, &l->ao_ln_w, &l->ao_ln_b};
        tdm_tensor *ca[10] = {&l->cq_w, &l->cq_b, &l->ck_w, &l->ck_b, &l->cv_w,
                              &l->cv_b, &l->co_w, &l->co_b, &l->co_ln_w, &l->co_ln_b};
        TDM_TRY(load_attn(ws, p, i, "attention", H, H, sa, st));
        TDM_TRY(load_attn(ws, p, i, "crossattention", H, Dv, ca, st));
        TDM_TRY(V2(&l->i_w, I, H, "%s.%d.intermediate.dense.weight", p, i));
        TDM_TRY(V1(&l->i_b, I, "%s.%d.intermediate.dense.bias", p, i));
        TDM_TRY(V2(&l->o_w, H, I, "%s.%d.output.dense.weight", p, i));
        TDM_TRY(V1(&l->o_b, H, "%s.%d.output.dense.bias", p, i));
        TDM_TRY(V1(&l->o_ln_w, H, "%s.%d.output.LayerNorm.weight", p, i));
        TDM_TRY(V1(&l->o_ln_b, H, "%s.%d.output.LayerNorm.bias", p, i));
    }
    return TDM_OK;
}

static tdm_code load_head(tdm_imagereward *m, tdm_status *st) {
    tdm_weights *ws = &m->ws;
    static const int idx[TDM_IMAGEREWARD_HEAD_LAYERS] = {0, 2, 4, 6, 7}; /* 1, 3, 5 are Dropout */
    for (int k = 0; k < TDM_IMAGEREWARD_HEAD_LAYERS; k++) {
        int64_t in = m->cfg.mlp_dims[k], out = m->cfg.mlp_dims[k + 1];
        TDM_TRY(V2(&m->head_w[k], out, in, "mlp.layers.%d.weight", idx[k]));
        TDM_TRY(V1(&m->head_b[k], out, "mlp.layers.%d.bias", idx[k]));
    }
    return TDM_OK;
}

/* vocab.txt next to the model, else the relative path config.json "tokenizer.vocab" starts with. */
static tdm_code find_vocab(const char *dir, char *out, size_t n, tdm_status *st) {
    out[0] = '\0';
    snprintf(out, n, "%s/vocab.txt", dir);
    if (access(out, R_OK) == 0) return TDM_OK;
    out[0] = '\0';
    char path[4096];
    cJSON *j;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TDM_TRY(tdm_json_load(path, &j, st));
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "tokenizer");
    const cJSON *v = cJSON_IsObject(tok) ? cJSON_GetObjectItemCaseSensitive(tok, "vocab") : NULL;
    if (cJSON_IsString(v) && v->valuestring[0] && v->valuestring[0] != '/') {
        size_t len = strcspn(v->valuestring, " \t");
        if (len < 1024) {
            snprintf(path, sizeof path, "%s/%.*s", dir, (int)len, v->valuestring);
            if (access(path, R_OK) == 0) snprintf(out, n, "%s", path);
        }
    }
    cJSON_Delete(j);
    return TDM_OK;
}

tdm_code tdm_imagereward_load(tdm_imagereward *m, const char *dir, tdm_status *st) {
    memset(m, 0, sizeof *m);
    TDM_TRY(tdm_imagereward_config_load(&m->cfg, dir, st));
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    TDM_TRY(tdm_weights_open_file(&m->ws, "imagereward", path, "", ir_mapper, NULL, st));
    tdm_code rc = load_vit(m, st);
    if (!rc) rc = load_bert(m, st);
    if (!rc) rc = load_head(m, st);
    if (!rc) rc = tdm_weights_check_unused(&m->ws, st);
    char vocab[4096];
    if (!rc) rc = find_vocab(dir, vocab, sizeof vocab, st);
    if (!rc && vocab[0]) rc = tdm_imagereward_set_vocab(m, vocab, st);
    if (rc) tdm_imagereward_free(m);
    return rc;
}

tdm_code tdm_imagereward_set_vocab(tdm_imagereward *m, const char *vocab_txt, tdm_status *st) {
    tdm_bert_tokenizer *tok;
    TDM_TRY(tdm_bert_tokenizer_load_imagereward(&tok, vocab_txt, st));
    if (tdm_bert_size(tok) > m->cfg.vocab_size) {
        int n = tdm_bert_size(tok);
        tdm_bert_tokenizer_free(tok);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: %d tokens with [DEC]/[ENC] but the model has vocab_size %d",
                        vocab_txt, n, m->cfg.vocab_size);
    }
    tdm_bert_tokenizer_free(m->tok);
    m->tok = tok;
    return TDM_OK;
}

void tdm_imagereward_free(tdm_imagereward *m) {
    if (!m) return;
    free(m->blocks);
    free(m->bert);
    tdm_bert_tokenizer_free(m->tok);
    tdm_weights_free(&m->ws);
    memset(m, 0, sizeof *m);
}

int tdm_imagereward_image_tokens(const tdm_imagereward *m) {
    int g = m->cfg.image_size / m->cfg.patch_size;
    return 1 + g * g;
}

/* ---- head and scores ---------------------------------------------------------------------------- */

tdm_code tdm_imagereward_head(const tdm_imagereward *m, const tdm_exec *ex, const float *cls, int B, float *raw,
                              tdm_status *st) {
    int maxd = 1;
    for (int k = 0; k <= TDM_IMAGEREWARD_HEAD_LAYERS; k++)
        if (m->cfg.mlp_dims[k] > maxd) maxd = m->cfg.mlp_dims[k];
    float *a = malloc(sizeof(float) * (size_t)B * maxd * 2); /* two [B, maxd] ping-pong buffers */
    if (!a) return tdm_fail(st, TDM_ERR_NOMEM, "imagereward head: out of memory");
    float *x = a, *y = a + (size_t)B * maxd;
    memcpy(x, cls, sizeof(float) * (size_t)B * m->cfg.mlp_dims[0]);
    tdm_code rc = TDM_OK;
    for (int k = 0; k < TDM_IMAGEREWARD_HEAD_LAYERS && !rc; k++) { /* Linear, no activation (ReLUs commented out) */
        rc = tdm_linear(ex, x, B, m->cfg.mlp_dims[k], &m->head_w[k], &m->head_b[k], y);
        float *t = x;
        x = y;
        y = t;
    }
    if (!rc) memcpy(raw, x, sizeof(float) * (size_t)B);
    else tdm_fail(st, rc, "imagereward head: out of memory");
    free(a);
    return rc;
}

float tdm_imagereward_normalize(const tdm_imagereward *m, float raw) {
    /* torch: float32 tensor op Python float -> computed in float32 */
    return (raw - (float)m->cfg.reward_mean) / (float)m->cfg.reward_std;
}

#define SCORE_BATCH 8

tdm_code tdm_imagereward_score_batch(const tdm_imagereward *m, const tdm_exec *ex, const char *prompt,
                                     const tdm_image *images, int n, float *rewards, tdm_status *st) {
    const tdm_imagereward_config *c = &m->cfg;
    if (!m->tok)
        return tdm_fail(st, TDM_ERR_MISSING, "imagereward: no tokenizer (put vocab.txt in the model folder or call "
                                             "tdm_imagereward_set_vocab)");
    if (!prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward: NULL prompt");
    if (n < 0 || (n > 0 && !images)) return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward: invalid image list");
    if (n == 0) return TDM_OK;
    const int L = c->max_length, S = c->image_size, T = tdm_imagereward_image_tokens(m);
    int32_t ids[512], mask[512];
    TDM_TRY(tdm_bert_encode(m->tok, prompt, strlen(prompt), L, ids, mask, NULL, NULL, st));
    for (int i = 0; i < L; i++)
        if (ids[i] >= c->vocab_size)
            return tdm_fail(st, TDM_ERR_FORMAT, "imagereward: token id %d outside the model's vocabulary (%d)", ids[i],
                            c->vocab_size);
    const int nb = n < SCORE_BATCH ? n : SCORE_BATCH;
    float *pix = malloc(sizeof(float) * (size_t)nb * 3 * S * S);         /* [nb, 3, S, S] */
    float *emb = malloc(sizeof(float) * (size_t)nb * T * c->vit_width); /* [nb, T, Dv] */
    float *hid = malloc(sizeof(float) * (size_t)nb * L * c->hidden);    /* [nb, L, H] */
    float *cls = malloc(sizeof(float) * (size_t)nb * c->hidden);        /* [nb, H] */
    float raw[SCORE_BATCH];
    tdm_code rc = pix && emb && hid && cls ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "imagereward: out of memory");
    for (int b0 = 0; !rc && b0 < n; b0 += nb) {
        int cnt = n - b0 < nb ? n - b0 : nb;
        for (int i = 0; !rc && i < cnt; i++) {
            rc = tdm_preprocess_oracle(&images[b0 + i], S, TDM_CROP_TORCHVISION, c->mean, c->std,
                                       pix + (size_t)i * 3 * S * S, NULL, NULL, st);
            if (rc) tdm_fail_context(st, "imagereward: image %d", b0 + i);
        }
        if (!rc) rc = tdm_imagereward_encode_image(m, ex, pix, cnt, emb, st);
        if (!rc) rc = tdm_imagereward_encode_text(m, ex, ids, mask, L, emb, cnt, hid, st);
        for (int i = 0; !rc && i < cnt; i++)
            memcpy(cls + (size_t)i * c->hidden, hid + (size_t)i * L * c->hidden, sizeof(float) * c->hidden);
        if (!rc) rc = tdm_imagereward_head(m, ex, cls, cnt, raw, st);
        for (int i = 0; !rc && i < cnt; i++) rewards[b0 + i] = tdm_imagereward_normalize(m, raw[i]);
    }
    free(pix);
    free(emb);
    free(hid);
    free(cls);
    return rc;
}

tdm_code tdm_imagereward_score(const tdm_imagereward *m, const tdm_exec *ex, const char *prompt,
                               const tdm_image *image, float *reward, tdm_status *st) {
    return tdm_imagereward_score_batch(m, ex, prompt, image, 1, reward, st);
}
