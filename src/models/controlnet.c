/* ControlNetModel forward (diffusers v0.27.2): conditioning embedding, the UNet's encoder blocks (shared
 * with unet.c through unet_internal.h), zero convolutions, conditioning scale. */
#include <math.h>
#include <string.h>

#include "models/controlnet_internal.h"

#define NEED(p)                                                                                    \
    do {                                                                                           \
        if (!(p)) return tdm_fail(st, TDM_ERR_NOMEM, "controlnet: out of memory for activations"); \
    } while (0)
#define OP(call, what)                                                                             \
    do {                                                                                           \
        tdm_code op_rc_ = (call);                                                                  \
        if (op_rc_)                                                                                \
            return tdm_fail(st, op_rc_, "controlnet: %s failed (%s)", what, tdm_code_name(op_rc_)); \
    } while (0)

static float *falloc(tdm_arena *a, int64_t n) { return tdm_arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof(float)); }

/* ---- conditioning embedding --------------------------------------------------------------------- */

static tdm_code embed_cond(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *a, const float *cond, int64_t B,
                           int64_t H, int64_t W, float *emb, tdm_status *st) {
    const tdm_controlnet_config *c = &cn->cfg;
    const int K = c->n_cond_levels, Cc = c->conditioning_channels;
    /* largest activation: c_k channels at H / 2^k (the bgr copy: Cc at H) */
    int64_t mx = (int64_t)Cc * H * W, hk = H, wk = W;
    for (int k = 0; k < K; k++) {
        if (c->cond_channels[k] * hk * wk > mx) mx = c->cond_channels[k] * hk * wk;
        hk = (hk + 1) / 2;
        wk = (wk + 1) / 2;
    }
    float *p0 = falloc(a, B * mx); /* ping-pong [B, c_k, H_k, W_k] */
    float *p1 = falloc(a, B * mx);
    NEED(p0 && p1);
    const float *x = cond;
    if (c->bgr) { /* torch.flip(cond, dims=[1]) */
        const int64_t HW = H * W;
        for (int64_t b = 0; b < B; b++)
            for (int ch = 0; ch < Cc; ch++)
                memcpy(p1 + (b * Cc + ch) * HW, cond + (b * Cc + (Cc - 1 - ch)) * HW, (size_t)HW * sizeof(float));
        x = p1;
    }
    /* silu(conv_in(x)) */
    OP(tdm_conv2d(ex, x, B, Cc, H, W, &cn->ce_in_w, &cn->ce_in_b, 1, 1, p0), "controlnet_cond_embedding.conv_in");
    int64_t C = c->cond_channels[0];
    tdm_activation(ex, TDM_ACT_SILU, p0, B * C * H * W);
    float *h = p0, *o = p1;
    for (int k = 0; k < K - 1; k++) {
        const int64_t C1 = c->cond_channels[k + 1];
        OP(tdm_conv2d(ex, h, B, C, H, W, &cn->ce_w[2 * k], &cn->ce_b[2 * k], 1, 1, o), "controlnet_cond_embedding block");
        tdm_activation(ex, TDM_ACT_SILU, o, B * C * H * W);
        const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2;
        OP(tdm_conv2d(ex, o, B, C, H, W, &cn->ce_w[2 * k + 1], &cn->ce_b[2 * k + 1], 2, 1, h),
           "controlnet_cond_embedding block (stride 2)");
        tdm_activation(ex, TDM_ACT_SILU, h, B * C1 * Ho * Wo);
        C = C1;
        H = Ho;
        W = Wo;
    }
    OP(tdm_conv2d(ex, h, B, C, H, W, &cn->ce_out_w, &cn->ce_out_b, 1, 1, emb), "controlnet_cond_embedding.conv_out");
    return TDM_OK;
}

tdm_code tdm_controlnet_embed_cond(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *arena, const float *cond,
                                   int Bc, int Himg, int Wimg, float *emb, tdm_status *st) {
    const int f = 1 << (cn->cfg.n_cond_levels - 1);
    if (!cond || !emb) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: conditioning image is NULL");
    if (Bc < 1 || Bc > 4096) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: batch %d is out of range", Bc);
    if (Himg < f || Wimg < f || Himg > 65536 || Wimg > 65536 || Himg % f || Wimg % f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "controlnet: conditioning image %dx%d must be a positive multiple of %d a side (8x the latent)",
                        Wimg, Himg, f);
    tdm_arena_mark m = tdm_arena_get_mark(arena);
    tdm_code rc = embed_cond(cn, ex, arena, cond, Bc, Himg, Wimg, emb, st);
    tdm_arena_reset(arena, m);
    return rc;
}

/* ---- forward ------------------------------------------------------------------------------------ */

static tdm_code check_inputs(const tdm_controlnet *cn, const tdm_controlnet_inputs *in, tdm_status *st) {
    const tdm_unet_config *c = &cn->cfg.unet;
    const tdm_unet_inputs *x = &in->x;
    if (!x->sample || !x->timesteps || !x->context || !in->cond_emb)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: sample, timesteps, context and cond_emb are required");
    if (x->B < 1 || x->B > 4096) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: batch size %d is out of range", x->B);
    if (in->cond_batch != 1 && in->cond_batch != x->B)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: condition batch %d must be 1 or the batch size %d",
                        in->cond_batch, x->B);
    if (x->H < 1 || x->W < 1 || x->H > 16384 || x->W > 16384)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: latent size %dx%d is out of range", x->H, x->W);
    if (x->context_len < 1 || x->context_len > 65536)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: context length %d is out of range", x->context_len);
    if (c->time_cond_proj_dim && !x->timestep_cond)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: the model has time_cond_proj_dim %d: timestep_cond is required",
                        c->time_cond_proj_dim);
    if (c->addition_text_time &&
        (!x->text_embeds || !x->time_ids || x->text_embeds_dim < 1 || x->n_time_ids < 1 ||
         (int64_t)x->text_embeds_dim + (int64_t)x->n_time_ids * c->addition_time_embed_dim !=
             c->projection_class_embeddings_input_dim))
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "controlnet: text_time embedding needs text_embeds and time_ids summing to %d inputs",
                        c->projection_class_embeddings_input_dim);
    if (!isfinite(in->scale)) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: conditioning scale is not finite");
    return TDM_OK;
}

/* residual = scale * zero_conv(h) (global pool: its spatial mean, broadcast), written or added to dst. */
static tdm_code emit_residual(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *a, int i, const float *h,
                              int64_t B, int64_t H, int64_t W, float scale, int pool, float *dst, int accumulate,
                              tdm_status *st) {
    const int64_t C = cn->res_ch[i], HW = H * W, n = B * C * HW;
    tdm_arena_mark m = tdm_arena_get_mark(a);
    float *r = falloc(a, n); /* [B, C, H, W] */
    NEED(r);
    OP(tdm_conv2d(ex, h, B, C, H, W, &cn->zc_w[i], &cn->zc_b[i], 1, 0, r), "zero convolution");
    for (int64_t k = 0; k < n; k++) r[k] = r[k] * scale;
    if (pool) /* torch.mean(sample, dim=(2, 3), keepdim=True): broadcast by the UNet's addition */
        for (int64_t p = 0; p < B * C; p++) {
            float *q = r + p * HW;
            double s = 0.0;
            for (int64_t k = 0; k < HW; k++) s += q[k];
            const float mean = (float)(s / (double)HW);
            for (int64_t k = 0; k < HW; k++) q[k] = mean;
        }
    if (accumulate)
        for (int64_t k = 0; k < n; k++) dst[k] += r[k];
    else
        memcpy(dst, r, (size_t)n * sizeof(float));
    tdm_arena_reset(a, m);
    return TDM_OK;
}

static tdm_code forward(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *a, const tdm_controlnet_inputs *in,
                        float *const *down, float *mid, int accumulate, tdm_status *st) {
    const tdm_unet *u = cn->enc;
    const tdm_unet_config *c = &u->cfg;
    const tdm_unet_inputs *x = &in->x;
    const int L = c->n_levels, lpb = c->layers_per_block;
    const int64_t B = x->B, T = c->time_embed_dim, C0 = c->block_out_channels[0];
    int64_t H = x->H, W = x->W, C = C0;

    /* per-residual scales: conditioning_scale, or guess mode logspace(-1, 0, n + 1)[i] * scale */
    const int nr = cn->n_down;
    float scales[TDM_CONTROLNET_MAX_RESIDUALS + 1];
    for (int i = 0; i <= nr; i++)
        scales[i] = in->guess_mode && !cn->cfg.global_pool_conditions
                        ? (float)pow(10.0, -1.0 + (double)i / (double)nr) * in->scale
                        : in->scale;

    float *emb = falloc(a, B * T); /* [B, T] */
    NEED(emb);
    TDM_TRY(tdm_unet_block_embeddings(u, ex, a, x, emb, st));
    tdm_activation(ex, TDM_ACT_SILU, emb, B * T); /* every resnet sees silu(emb) */

    float *h = falloc(a, B * C0 * H * W); /* conv_in(sample) + cond embedding [B, C0, H, W] */
    NEED(h);
    OP(tdm_conv2d(ex, x->sample, B, c->in_channels, H, W, &u->conv_in_w, &u->conv_in_b, 1, 1, h), "conv_in");
    const int64_t n0 = C0 * H * W;
    for (int64_t b = 0; b < B; b++) {
        const float *e = in->cond_emb + (in->cond_batch == 1 ? 0 : b) * n0;
        float *hp = h + b * n0;
        for (int64_t k = 0; k < n0; k++) hp[k] += e[k];
    }
    const int pool = cn->cfg.global_pool_conditions;
    int ri = 0;
    TDM_TRY(emit_residual(cn, ex, a, ri, h, B, H, W, scales[ri], pool, down[ri], accumulate, st));
    ri++;

    for (int i = 0; i < L; i++) {
        const unet_level *l = &u->down[i];
        for (int j = 0; j < lpb; j++) {
            const unet_resnet *r = &l->resnets[j];
            float *y = falloc(a, B * r->cout * H * W); /* [B, cout, H, W] */
            NEED(y);
            TDM_TRY(tdm_unet_block_resnet(u, ex, a, B, emb, r, h, H, W, y, st));
            if (l->attns) TDM_TRY(tdm_unet_block_transformer(u, ex, a, B, x->context, x->context_len, &l->attns[j], y, H, W, y, st));
            h = y;
            C = r->cout;
            TDM_TRY(emit_residual(cn, ex, a, ri, h, B, H, W, scales[ri], pool, down[ri], accumulate, st));
            ri++;
        }
        if (l->has_sample) {
            const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2;
            float *y = falloc(a, B * C * Ho * Wo); /* [B, C, Ho, Wo] */
            NEED(y);
            OP(tdm_conv2d(ex, h, B, C, H, W, &l->sample_w, &l->sample_b, 2, 1, y), "downsample");
            H = Ho;
            W = Wo;
            h = y;
            TDM_TRY(emit_residual(cn, ex, a, ri, h, B, H, W, scales[ri], pool, down[ri], accumulate, st));
            ri++;
        }
    }
    float *p0 = falloc(a, B * C * H * W), *p1 = falloc(a, B * C * H * W); /* [B, C, H, W] */
    NEED(p0 && p1);
    TDM_TRY(tdm_unet_block_resnet(u, ex, a, B, emb, &u->mid_res[0], h, H, W, p0, st));
    TDM_TRY(tdm_unet_block_transformer(u, ex, a, B, x->context, x->context_len, &u->mid_attn, p0, H, W, p0, st));
    TDM_TRY(tdm_unet_block_resnet(u, ex, a, B, emb, &u->mid_res[1], p0, H, W, p1, st));
    if (ri != nr) return tdm_fail(st, TDM_ERR_INTERNAL, "controlnet: %d residuals produced, %d expected", ri, nr);
    return emit_residual(cn, ex, a, nr, p1, B, H, W, scales[nr], pool, mid, accumulate, st);
}

tdm_code tdm_controlnet_forward(const tdm_controlnet *cn, const tdm_exec *ex, tdm_arena *arena,
                                const tdm_controlnet_inputs *in, float *const *down, float *mid, int accumulate,
                                tdm_status *st) {
    TDM_TRY(check_inputs(cn, in, st));
    if (!down || !mid) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: residual buffers are required");
    for (int i = 0; i < cn->n_down; i++)
        if (!down[i]) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: residual buffer %d is NULL", i);
    tdm_arena_mark m = tdm_arena_get_mark(arena);
    tdm_code rc = forward(cn, ex, arena, in, down, mid, accumulate, st);
    tdm_arena_reset(arena, m);
    return rc;
}
