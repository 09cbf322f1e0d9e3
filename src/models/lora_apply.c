/* LoRA application: at run time next to the base operator, or merged into weight copies (lora.h). */
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "models/lora.h"

/* An f32 copy of a small LoRA matrix in the arena (the view itself when it is f32 already). */
static const float *as_f32(tdm_arena *a, const tdm_tensor *t) {
    if (t->dtype == TDM_F32) return t->data;
    const int64_t n = tdm_tensor_numel(t);
    float *p = tdm_arena_alloc(a, (size_t)n * sizeof(float)); /* [numel] */
    if (!p || tdm_tensor_to_f32(t, p, NULL)) return NULL;
    return p;
}

tdm_code tdm_lora_linear_add(const tdm_lora_target *t, const tdm_exec *ex, tdm_arena *a, const float *x, int64_t M,
                             int64_t K, float *y) {
    if (!t) return TDM_OK;
    if (K != t->in || t->kh != 1 || t->kw != 1) return TDM_ERR_INVALID_ARG;
    for (int i = 0; i < t->n; i++) {
        const tdm_lora_delta *d = &t->d[i];
        const int64_t r = d->down_mat.shape[0];
        tdm_arena_mark m = tdm_arena_get_mark(a);
        float *h = tdm_arena_alloc(a, (size_t)(M * r > 0 ? M * r : 1) * sizeof(float)); /* down(x) [M, r] */
        const float *up = h ? as_f32(a, &d->up_mat) : NULL;                              /* [out, r] */
        if (!h || !up) {
            tdm_arena_reset(a, m);
            return TDM_ERR_NOMEM;
        }
        tdm_code rc = tdm_linear(ex, x, M, K, &d->down_mat, NULL, h);
        /* y [M, out] += factor * h up^T */
        if (!rc) rc = tdm_gemm(ex, 0, 1, M, t->out, r, d->factor, h, r, up, r, 1.0f, y, t->out);
        tdm_arena_reset(a, m);
        if (rc) return rc;
    }
    return TDM_OK;
}

tdm_code tdm_lora_conv_add(const tdm_lora_target *t, const tdm_exec *ex, tdm_arena *a, const float *x, int64_t N,
                           int64_t Cin, int64_t H, int64_t W, int stride, int pad, const tdm_conv_pre *pre, float *y) {
    if (!t) return TDM_OK;
    if (Cin * t->kh * t->kw != t->in || stride < 1 || pad < 0) return TDM_ERR_INVALID_ARG;
    const int64_t Ho = (H + 2 * pad - t->kh) / stride + 1, Wo = (W + 2 * pad - t->kw) / stride + 1, P = Ho * Wo;
    if (Ho < 1 || Wo < 1) return TDM_ERR_INVALID_ARG;
    for (int i = 0; i < t->n; i++) {
        const tdm_lora_delta *d = &t->d[i];
        const int64_t r = d->down_conv.shape[0];
        tdm_arena_mark m = tdm_arena_get_mark(a);
        float *h = tdm_arena_alloc(a, (size_t)(N * r * P) * sizeof(float)); /* down(x') [N, r, Ho, Wo] */
        const float *up = h ? as_f32(a, &d->up_mat) : NULL;                 /* [out, r] */
        if (!h || !up) {
            tdm_arena_reset(a, m);
            return TDM_ERR_NOMEM;
        }
        tdm_code rc = tdm_conv2d_pre(ex, x, N, Cin, H, W, &d->down_conv, NULL, stride, pad, pre, h);
        /* y_n [out, P] += factor * up [out, r] h_n [r, P] (the 1x1 up conv) */
        for (int64_t n = 0; !rc && n < N; n++)
            rc = tdm_gemm(ex, 0, 0, t->out, P, r, d->factor, up, r, h + n * r * P, P, 1.0f, y + n * t->out * P, P);
        tdm_arena_reset(a, m);
        if (rc) return rc;
    }
    return TDM_OK;
}

/* ---- merge -------------------------------------------------------------------------------------- */

/* W' = W + sum_d factor_d up_d @ down_d, f32 accumulation, stored in W's dtype into dst. */
static tdm_code merge_one(const tdm_lora_target *t, void *dst, tdm_status *st) {
    const int64_t n = t->out * t->in;
    float *w = malloc((size_t)n * sizeof(float)); /* [out, in] */
    tdm_code rc = w ? tdm_tensor_to_f32(&t->base, w, st) : tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    for (int i = 0; !rc && i < t->n; i++) {
        const tdm_lora_delta *d = &t->d[i];
        const int64_t r = d->down_mat.shape[0];
        float *dn = malloc((size_t)(r * t->in) * sizeof(float)); /* [r, in] */
        float *up = malloc((size_t)(t->out * r) * sizeof(float)); /* [out, r] */
        if (!dn || !up) rc = tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
        if (!rc) rc = tdm_tensor_to_f32(&d->down_mat, dn, st);
        if (!rc) rc = tdm_tensor_to_f32(&d->up_mat, up, st);
        if (!rc && (rc = tdm_gemm(NULL, 0, 0, t->out, t->in, r, d->factor, up, r, dn, t->in, 1.0f, w, t->in)))
            tdm_fail(st, rc, "lora: merging '%s' failed", t->name);
        free(dn);
        free(up);
    }
    if (!rc) {
        if (t->base.dtype == TDM_F32) memcpy(dst, w, (size_t)n * sizeof(float));
        else if (t->base.dtype == TDM_F16)
            for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = tdm_f32_to_f16(w[i]);
        else if (t->base.dtype == TDM_BF16)
            for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = tdm_f32_to_bf16(w[i]);
        else
            rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "lora: weight '%s' has dtype %s", t->name,
                          tdm_dtype_name(t->base.dtype));
    }
    free(w);
    return rc;
}

tdm_code tdm_lora_merge_store(const tdm_weights *base, const tdm_lora_set *s, const char *what, tdm_weights *out,
                              tdm_status *st) {
    tdm_weights_init(out, what);
    tdm_code rc = TDM_OK;
    for (int i = 0; !rc && i < base->n; i++) {
        const tdm_weight *w = &base->w[i];
        tdm_tensor t = w->t;
        const tdm_lora_target *tg = tdm_lora_find(s, &w->t);
        if (tg && tdm_tensor_is_contiguous(&w->t)) {
            void *dst = tdm_weights_alloc(out, (size_t)tdm_tensor_numel(&w->t) * tdm_dtype_size(w->t.dtype));
            if (!dst) rc = tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory for merged '%s'", w->name);
            if (!rc) rc = merge_one(tg, dst, st);
            t.data = dst;
        } else if (tg) {
            rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "lora: weight '%s' is not contiguous", w->name);
        }
        out->cur_file = w->src_file;
        out->cur_name = w->src_name;
        if (!rc) rc = tdm_weights_emit(out, w->name, &t, st);
    }
    out->cur_file = out->cur_name = NULL;
    if (!rc) rc = tdm_weights_finish(out, st);
    if (rc) tdm_weights_free(out);
    return rc;
}
