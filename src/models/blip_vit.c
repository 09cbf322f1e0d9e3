/* ImageReward's vision tower: BLIP's timm-style VisionTransformer (BLIP models/vit.py).
 *   x = [cls_token; patch_embed(pixels)] + pos_embed          patch_embed: Conv2d(3, D, P, stride P, bias)
 *   per block:  x += proj(attn(norm1(x)))                     qkv Linear(D, 3D) with bias, head-major
 *               x += fc2(gelu(fc1(norm2(x))))                 exact (erf) GELU
 *   image_embeds = norm(x)                                    all tokens, LayerNorm eps from the config */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/imagereward.h"

/* One block on x [M = B*T, D] in place. Scratch: t [M, D], qkv [M, 3D], a [M, D], f [M, F]. */
static tdm_code vit_block(const tdm_imagereward *m, const tdm_exec *ex, const tdm_ir_vit_block *b, float *x, int B,
                          int T, float *t, float *qkv, float *a, float *f) {
    const tdm_imagereward_config *c = &m->cfg;
    const int64_t D = c->vit_width, F = c->vit_mlp, M = (int64_t)B * T, hd = D / c->vit_heads;
    const float scale = (float)pow((double)hd, -0.5); /* timm: head_dim ** -0.5 */
    TDM_TRY(tdm_layer_norm(ex, x, M, D, c->vit_eps, &b->ln1_w, &b->ln1_b, t));
    TDM_TRY(tdm_linear(ex, t, M, D, &b->qkv_w, &b->qkv_b, qkv));
    TDM_TRY(tdm_attention(ex, qkv, 3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D, B, c->vit_heads, T, T, hd, scale, 0, NULL,
                          a));
    TDM_TRY(tdm_linear(ex, a, M, D, &b->proj_w, &b->proj_b, t));
    for (int64_t i = 0; i < M * D; i++) x[i] += t[i];
    TDM_TRY(tdm_layer_norm(ex, x, M, D, c->vit_eps, &b->ln2_w, &b->ln2_b, t));
    TDM_TRY(tdm_linear(ex, t, M, D, &b->fc1_w, &b->fc1_b, f));
    tdm_activation(ex, TDM_ACT_GELU, f, M * F);
    TDM_TRY(tdm_linear(ex, f, M, F, &b->fc2_w, &b->fc2_b, t));
    for (int64_t i = 0; i < M * D; i++) x[i] += t[i];
    return TDM_OK;
}

tdm_code tdm_imagereward_encode_image(const tdm_imagereward *m, const tdm_exec *ex, const float *pixels, int B,
                                      float *out, tdm_status *st) {
    const tdm_imagereward_config *c = &m->cfg;
    if (B <= 0 || B > 4096) return tdm_fail(st, TDM_ERR_INVALID_ARG, "imagereward vision: batch %d", B);
    const int S = c->image_size, P = c->patch_size, G = S / P, T = 1 + G * G;
    const int64_t D = c->vit_width, F = c->vit_mlp, M = (int64_t)B * T;
    float *conv = malloc(sizeof(float) * (size_t)B * D * G * G); /* [B, D, G, G] */
    float *pos = malloc(sizeof(float) * (size_t)(T + 1) * D);     /* pos_embed [T, D] + cls_token [D] */
    float *x = malloc(sizeof(float) * (size_t)M * D);             /* [B, T, D] */
    float *t = malloc(sizeof(float) * (size_t)M * D);             /* [M, D] */
    float *qkv = malloc(sizeof(float) * (size_t)M * 3 * D);       /* [M, 3D] */
    float *a = malloc(sizeof(float) * (size_t)M * D);             /* [M, D] */
    float *f = malloc(sizeof(float) * (size_t)M * F);             /* [M, F] */
    tdm_code rc = conv && pos && x && t && qkv && a && f ? TDM_OK : TDM_ERR_NOMEM;
    if (!rc) rc = tdm_conv2d(ex, pixels, B, c->in_chans, S, S, &m->patch_w, &m->patch_b, P, 0, conv);
    if (!rc) rc = tdm_tensor_to_f32(&m->pos_embed, pos, st);
    if (!rc) rc = tdm_tensor_to_f32(&m->cls_token, pos + (size_t)T * D, st);
    if (!rc) {
        const float *cls = pos + (size_t)T * D;
        for (int b = 0; b < B; b++) {
            float *xb = x + (size_t)b * T * D;
            for (int64_t d = 0; d < D; d++) xb[d] = cls[d] + pos[d];
            for (int p = 0; p < G * G; p++) /* token 1 + p = patch (y, x) row-major: flatten(2).transpose(1, 2) */
                for (int64_t d = 0; d < D; d++)
                    xb[(size_t)(1 + p) * D + d] = conv[((size_t)b * D + d) * G * G + p] + pos[(size_t)(1 + p) * D + d];
        }
    }
    for (int i = 0; !rc && i < c->vit_depth; i++) rc = vit_block(m, ex, &m->blocks[i], x, B, T, t, qkv, a, f);
    if (!rc) rc = tdm_layer_norm(ex, x, M, D, c->vit_eps, &m->norm_w, &m->norm_b, out);
    if (rc && (!st || st->code != rc))
        tdm_fail(st, rc, "imagereward vision: %s (batch %d)", rc == TDM_ERR_NOMEM ? "out of memory" : "operator failed", B);
    free(conv);
    free(pos);
    free(x);
    free(t);
    free(qkv);
    free(a);
    free(f);
    return rc;
}
