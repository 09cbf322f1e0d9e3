/* ImageReward's text tower: BLIP's BERT "MED" (BLIP models/med.py) in 'multimodal' mode.
 *   h = LayerNorm(word_embeddings[ids] + position_embeddings[0..L-1])     no token-type embeddings
 *   per layer (post-LN):
 *     h = LN(h + dense(selfattn(h; mask_add = (1 - mask) * -10000)))
 *     h = LN(h + dense(crossattn(q = h, k/v = Linear(Dv -> H)(image_embeds))))   encoder mask all ones
 *     h = LN(h + dense(gelu(dense(h))))
 *   scores = q k^T / sqrt(head_size) (+ mask), softmax; no pooler. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/imagereward.h"

typedef struct bert_scratch {
    float *q, *k, *v, *a, *t; /* [M, H] (k, v: [max(M, B*T), H]) */
    float *f;                 /* [M, I] */
} bert_scratch;

/* h [M, H] = LN(h + t) */
static tdm_code add_norm(const tdm_exec *ex, float *h, const float *t, int64_t M, int64_t H, float eps,
                         const tdm_tensor *w, const tdm_tensor *b) {
    for (int64_t i = 0; i < M * H; i++) h[i] = t[i] + h[i];
    return tdm_layer_norm(ex, h, M, H, eps, w, b, h);
}

static tdm_code bert_layer(const tdm_imagereward *m, const tdm_exec *ex, const tdm_ir_bert_layer *l, float *h,
                           const float *img, const float *mask_add, int B, int L, int T, bert_scratch *s) {
    const tdm_imagereward_config *c = &m->cfg;
    const int64_t H = c->hidden, I = c->intermediate, Dv = c->vit_width, M = (int64_t)B * L, hd = H / c->heads;
    const float scale = (float)(1.0 / sqrt((double)hd)); /* scores / math.sqrt(attention_head_size) */
    /* self-attention */
    TDM_TRY(tdm_linear(ex, h, M, H, &l->q_w, &l->q_b, s->q));
    TDM_TRY(tdm_linear(ex, h, M, H, &l->k_w, &l->k_b, s->k));
    TDM_TRY(tdm_linear(ex, h, M, H, &l->v_w, &l->v_b, s->v));
    TDM_TRY(tdm_attention(ex, s->q, H, s->k, H, s->v, H, B, c->heads, L, L, hd, scale, 0, mask_add, s->a));
    TDM_TRY(tdm_linear(ex, s->a, M, H, &l->ao_w, &l->ao_b, s->t));
    TDM_TRY(add_norm(ex, h, s->t, M, H, c->bert_eps, &l->ao_ln_w, &l->ao_ln_b));
    /* cross-attention to the image tokens */
    TDM_TRY(tdm_linear(ex, h, M, H, &l->cq_w, &l->cq_b, s->q));
    TDM_TRY(tdm_linear(ex, img, (int64_t)B * T, Dv, &l->ck_w, &l->ck_b, s->k));
    TDM_TRY(tdm_linear(ex, img, (int64_t)B * T, Dv, &l->cv_w, &l->cv_b, s->v));
    TDM_TRY(tdm_attention(ex, s->q, H, s->k, H, s->v, H, B, c->heads, L, T, hd, scale, 0, NULL, s->a));
    TDM_TRY(tdm_linear(ex, s->a, M, H, &l->co_w, &l->co_b, s->t));
    TDM_TRY(add_norm(ex, h, s->t, M, H, c->bert_eps, &l->co_ln_w, &l->co_ln_b));
    /* feed-forward */
    TDM_TRY(tdm_linear(ex, h, M, H, &l->i_w, &l->i_b, s->f));
    tdm_activation(ex, TDM_ACT_GELU, s->f, M * I);
    TDM_TRY(tdm_linear(ex, s->f, M, I, &l->o_w, &l->o_b, s->t));
    return add_norm(ex, h, s->t, M, H, c->bert_eps, &l->o_ln_w, &l->o_ln_b);
}

static void table_row(const tdm_tensor *t, int64_t r, int64_t C, float *dst) {
    const int64_t shape[1] = {C};
    tdm_tensor row = tdm_tensor_view(t->dtype, (char *)t->data + (size_t)(r * C) * tdm_dtype_size(t->dtype), 1, shape);
    tdm_tensor_to_f32(&row, dst, NULL); /* contiguous float row: cannot fail */
}

tdm_code tdm_imagereward_encode_text(const tdm_imagereward *m, const tdm_exec *ex, const int32_t *ids,
                                     const int32_t *mask, int L, const float *img, int B, float *h, tdm_status *st) {
    const tdm_imagereward_config *c = &m->cfg;
    if (L < 1 || L > c->max_position)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward text: %d tokens (1..%d)", L, c->max_position);
    if (B <= 0 || B > 4096) return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward text: batch %d", B);
    for (int i = 0; i < L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward text: token id %d at %d outside 0..%d", ids[i], i,
                            c->vocab_size - 1);
    const int T = tdm_imagereward_image_tokens(m);
    const int64_t H = c->hidden, M = (int64_t)B * L, MK = M > (int64_t)B * T ? M : (int64_t)B * T;
    bert_scratch s;
    s.q = malloc(sizeof(float) * (size_t)M * H);
    s.k = malloc(sizeof(float) * (size_t)MK * H);
    s.v = malloc(sizeof(float) * (size_t)MK * H);
    s.a = malloc(sizeof(float) * (size_t)M * H);
    s.t = malloc(sizeof(float) * (size_t)M * H);
    s.f = malloc(sizeof(float) * (size_t)M * c->intermediate);
    float *mask_add = malloc(sizeof(float) * (size_t)M); /* [B, L] */
    float *pe = malloc(sizeof(float) * (size_t)H);       /* one position row */
    tdm_code rc = s.q && s.k && s.v && s.a && s.t && s.f && mask_add && pe ? TDM_OK : TDM_ERR_NOMEM;
    if (!rc) {
        /* embeddings for the first sequence, then copied to the other B - 1 */
        for (int i = 0; i < L; i++) {
            table_row(&m->word_emb, ids[i], H, h + (size_t)i * H);
            table_row(&m->pos_emb, i, H, pe);
            for (int64_t d = 0; d < H; d++) h[(size_t)i * H + d] += pe[d];
        }
        rc = tdm_layer_norm(ex, h, L, H, c->bert_eps, &m->emb_ln_w, &m->emb_ln_b, h);
        for (int b = 1; b < B; b++) memcpy(h + (size_t)b * L * H, h, sizeof(float) * (size_t)L * H);
        for (int64_t i = 0; i < M; i++) mask_add[i] = (1.0f - (float)(mask ? mask[i % L] : 1)) * -10000.0f;
    }
    for (int i = 0; !rc && i < c->layers; i++) rc = bert_layer(m, ex, &m->bert[i], h, img, mask_add, B, L, T, &s);
    if (rc && (!st || st->code != rc))
        tdm_fail(st, rc, "imagereward text: %s", rc == TDM_ERR_NOMEM ? "out of memory" : "operator failed");
    free(s.q);
    free(s.k);
    free(s.v);
    free(s.a);
    free(s.t);
    free(s.f);
    free(mask_add);
    free(pe);
    return rc;
}
