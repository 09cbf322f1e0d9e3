/* UNet2DConditionModel forward (diffusers v0.27.2): embeddings, resnet / transformer blocks, down-mid-up
 * path. Activations are f32 NCHW in the caller's arena; temporaries of each block are released with
 * tdm_arena_get_mark / tdm_arena_reset. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/lora.h"
#include "models/unet_internal.h"

/* ---- embeddings ------------------------------------------------------------------------------- */

void tdm_timestep_embedding(const float *t, int n, int dim, int flip_sin_to_cos, int freq_shift, float *out) {
    /* diffusers get_timestep_embedding, float32 throughout as torch computes it:
     * exponent_i = (f32)(-ln 10000) * i / (half - shift); freq = exp(exponent); arg = t * freq */
    const int half = dim / 2;
    const float neg_log = (float)(-log(10000.0));
    for (int b = 0; b < n; b++) {
        float *o = out + (size_t)b * dim;
        for (int i = 0; i < half; i++) {
            float e = (neg_log * (float)i) / (float)(half - freq_shift);
            float arg = t[b] * expf(e);
            float s = sinf(arg), c = cosf(arg);
            o[flip_sin_to_cos ? half + i : i] = s;
            o[flip_sin_to_cos ? i : half + i] = c;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

void tdm_guidance_scale_embedding(const float *w, int B, int dim, float *out) {
    /* diffusers LatentConsistencyModelPipeline.get_guidance_scale_embedding, float32:
     * step = log(10000) / (half - 1); freq_i = exp(i * -step); arg = (w * 1000) freq_i; [sin | cos] */
    const int half = dim / 2;
    const float step = half > 1 ? logf(10000.0f) / (float)(half - 1) : 0.0f;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        float ws = w[b] * 1000.0f;
        for (int i = 0; i < half; i++) {
            float arg = ws * expf((float)i * -step);
            o[i] = sinf(arg);
            o[half + i] = cosf(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

/* ---- forward context -------------------------------------------------------------------------- */

typedef struct fwd {
    const tdm_unet *u;
    const tdm_exec *ex;
    tdm_arena *a;
    tdm_status *st;
    int64_t B;
    const float *temb_act; /* silu(emb) [B, T]: what every resnet's time_emb_proj sees */
    const float *ctx;      /* [B, Lc, Dctx] */
    int64_t Lc;
    const tdm_lora_set *lora; /* run-time LoRA of the model (u->lora) or NULL */
} fwd;

static float *falloc(fwd *f, int64_t n) { return tdm_arena_alloc(f->a, (size_t)(n > 0 ? n : 1) * sizeof(float)); }

#define NEED(p)                                                                                    \
    do {                                                                                           \
        if (!(p)) return tdm_fail(f->st, TDM_ERR_NOMEM, "unet: out of memory for activations");    \
    } while (0)
#define OP(call, what)                                                                             \
    do {                                                                                           \
        tdm_code op_rc_ = (call);                                                                  \
        if (op_rc_)                                                                                \
            return tdm_fail(f->st, op_rc_, "unet: %s failed (%s)", what, tdm_code_name(op_rc_));   \
    } while (0)

static void debug_out(const tdm_unet_inputs *in, const char *name, const float *x, int64_t n) {
    if (in->debug_fn) in->debug_fn(in->debug_user, name, x, n);
}

/* Every Linear / Conv2d of the forward goes through lin / conv: the base operator, then, when the model
 * carries a run-time LoRA set that adapts this weight (found by its data pointer), the low-rank term
 * y += scale * alpha / r * up(down(x)) (models/lora.h; down sees the same input as the base operator,
 * GroupNorm / upsampling prologue included). */
static tdm_code lin(fwd *f, const float *x, int64_t M, int64_t K, const tdm_tensor *w, const tdm_tensor *b, float *y) {
    tdm_code rc = tdm_linear(f->ex, x, M, K, w, b, y);
    if (rc || !f->lora) return rc;
    return tdm_lora_linear_add(tdm_lora_find(f->lora, w), f->ex, f->a, x, M, K, y);
}

static tdm_code conv(fwd *f, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W, const tdm_tensor *w,
                     const tdm_tensor *b, int stride, int pad, const tdm_conv_pre *pre, float *y) {
    tdm_code rc = pre ? tdm_conv2d_pre(f->ex, x, N, Cin, H, W, w, b, stride, pad, pre, y)
                      : tdm_conv2d(f->ex, x, N, Cin, H, W, w, b, stride, pad, y);
    if (rc || !f->lora) return rc;
    return tdm_lora_conv_add(tdm_lora_find(f->lora, w), f->ex, f->a, x, N, Cin, H, W, stride, pad, pre, y);
}

/* diffusers ResnetBlock2D: h = conv1(silu(gn1(x))) + time_emb_proj(silu(emb)); h = conv2(silu(gn2(h)));
 * y = shortcut(x) + h. x [B, cin, H, W] -> y [B, cout, H, W] (y must not alias x). Each GroupNorm+SiLU is
 * applied while its conv loads the input (tdm_conv2d_pre: the same values as a separate pass). */
static tdm_code resnet(fwd *f, const unet_resnet *r, const float *x, int64_t H, int64_t W, float *y) {
    const tdm_unet_config *c = &f->u->cfg;
    const int64_t B = f->B, HW = H * W;
    tdm_arena_mark m = tdm_arena_get_mark(f->a);
    float *h1 = falloc(f, B * r->cout * HW); /* [B, cout, H, W] */
    float *t = falloc(f, B * r->cout);      /* [B, cout] */
    float *cab = falloc(f, B * (r->cin > r->cout ? r->cin : r->cout) * 3); /* [B, C, 3] GroupNorm coefficients */
    NEED(h1 && t && cab);
    const tdm_conv_pre pre = {cab, 1, 0};
    OP(tdm_group_norm_coeffs(f->ex, x, B, r->cin, HW, c->norm_num_groups, c->norm_eps, &r->norm1_w, &r->norm1_b, cab),
       "resnet norm1");
    OP(conv(f, x, B, r->cin, H, W, &r->conv1_w, &r->conv1_b, 1, 1, &pre, h1), "resnet conv1");
    OP(lin(f, f->temb_act, B, c->time_embed_dim, &r->temb_w, &r->temb_b, t), "resnet time_emb_proj");
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < r->cout; ch++) {
            float *p = h1 + (b * r->cout + ch) * HW, tv = t[b * r->cout + ch];
            for (int64_t i = 0; i < HW; i++) p[i] += tv;
        }
    OP(tdm_group_norm_coeffs(f->ex, h1, B, r->cout, HW, c->norm_num_groups, c->norm_eps, &r->norm2_w, &r->norm2_b,
                             cab),
       "resnet norm2");
    OP(conv(f, h1, B, r->cout, H, W, &r->conv2_w, &r->conv2_b, 1, 1, &pre, y), "resnet conv2");
    const int64_t n = B * r->cout * HW;
    if (r->has_shortcut) {
        tdm_tensor w4 = tdm_tensor_view(r->short_w.dtype, r->short_w.data, 4, (int64_t[]){r->cout, r->cin, 1, 1});
        OP(conv(f, x, B, r->cin, H, W, &w4, &r->short_b, 1, 0, NULL, h1), "resnet conv_shortcut");
        tdm_add_ex(f->ex, y, h1, n);
    } else {
        tdm_add_ex(f->ex, y, x, n);
    }
    tdm_arena_reset(f->a, m);
    return TDM_OK;
}

/* [B, C, HW] <-> [B, HW, C] */
static void to_tokens(const float *x, int64_t B, int64_t C, int64_t HW, float *y) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < C; ch++) {
            const float *xp = x + (b * C + ch) * HW;
            float *yp = y + b * HW * C + ch;
            for (int64_t p = 0; p < HW; p++) yp[p * C] = xp[p];
        }
}

static void add_inplace(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* diffusers Attention (AttnProcessor): out = to_out(softmax(q k^T / sqrt(D)) v), heads split on columns.
 * xq [B*Lq, C] normalised queries source; kv [B*Lk, Dkv] (xq itself for self-attention). */
static tdm_code attention(fwd *f, int heads, int64_t C, const float *xq, int64_t Lq, const float *kv, int64_t Lk,
                          int64_t Dkv, const tdm_tensor *wq, const tdm_tensor *wk, const tdm_tensor *wv,
                          const tdm_tensor *wo, const tdm_tensor *bo, float *q, float *k, float *v, float *att,
                          float *out) {
    const int64_t B = f->B, D = C / heads;
    OP(lin(f, xq, B * Lq, C, wq, NULL, q), "attention to_q");
    OP(lin(f, kv, B * Lk, Dkv, wk, NULL, k), "attention to_k");
    OP(lin(f, kv, B * Lk, Dkv, wv, NULL, v), "attention to_v");
    OP(tdm_attention(f->ex, q, C, k, C, v, C, B, heads, Lq, Lk, D, (float)(1.0 / sqrt((double)D)), 0, NULL, att),
       "attention");
    OP(lin(f, att, B * Lq, C, wo, bo, out), "attention to_out");
    return TDM_OK;
}

/* diffusers Transformer2DModel + BasicTransformerBlock:
 *   h = proj_in(gn(x)) as tokens; per layer: h += attn1(ln1 h); h += attn2(ln2 h, ctx); h += ff(ln3 h)
 *   y = proj_out(h) + x. proj_in/out are 1x1 convs or Linears: the same per-token matrix product.
 * x [B, C, H, W] -> y (may alias x). */
static tdm_code transformer(fwd *f, const unet_transformer *t, const float *x, int64_t H, int64_t W, float *y) {
    const tdm_unet_config *c = &f->u->cfg;
    const int64_t B = f->B, C = t->C, HW = H * W, M = B * HW, Lk = f->Lc > HW ? f->Lc : HW;
    const int64_t Dctx = c->cross_attention_dim;
    tdm_arena_mark m = tdm_arena_get_mark(f->a);
    float *g = falloc(f, M * C);          /* gn(x) [B, C, HW], later the layer-norm output [M, C] */
    float *tok = falloc(f, M * C);        /* tokens [M, C] */
    float *hs = falloc(f, M * C);         /* hidden states [M, C] */
    float *q = falloc(f, M * C);          /* [M, C] */
    float *k = falloc(f, B * Lk * C);     /* [B, Lk, C] */
    float *v = falloc(f, B * Lk * C);     /* [B, Lk, C] */
    float *att = falloc(f, M * C);        /* [M, C] */
    float *ff = falloc(f, M * 8 * C);     /* GEGLU projection [M, 8C] */
    float *gg = falloc(f, M * 4 * C);     /* GEGLU output [M, 4C] */
    NEED(g && tok && hs && q && k && v && att && ff && gg);

    OP(tdm_group_norm(f->ex, x, B, C, HW, c->norm_num_groups, 1e-6f, &t->norm_w, &t->norm_b, 0, g),
       "transformer norm");
    to_tokens(g, B, C, HW, tok);
    OP(lin(f, tok, M, C, &t->proj_in_w, &t->proj_in_b, hs), "transformer proj_in");
    for (int l = 0; l < t->n_layers; l++) {
        const unet_tblock *b = &t->blocks[l];
        OP(tdm_layer_norm(f->ex, hs, M, C, 1e-5f, &b->norm1_w, &b->norm1_b, g), "transformer norm1");
        TDM_TRY(attention(f, t->heads, C, g, HW, g, HW, C, &b->q1, &b->k1, &b->v1, &b->o1_w, &b->o1_b, q, k, v, att,
                          tok));
        tdm_add_ex(f->ex, hs, tok, M * C);
        OP(tdm_layer_norm(f->ex, hs, M, C, 1e-5f, &b->norm2_w, &b->norm2_b, g), "transformer norm2");
        TDM_TRY(attention(f, t->heads, C, g, HW, f->ctx, f->Lc, Dctx, &b->q2, &b->k2, &b->v2, &b->o2_w, &b->o2_b, q,
                          k, v, att, tok));
        tdm_add_ex(f->ex, hs, tok, M * C);
        OP(tdm_layer_norm(f->ex, hs, M, C, 1e-5f, &b->norm3_w, &b->norm3_b, g), "transformer norm3");
        OP(lin(f, g, M, C, &b->ff1_w, &b->ff1_b, ff), "transformer ff.net.0.proj");
        tdm_geglu_ex(f->ex, ff, M, 4 * C, gg);
        OP(lin(f, gg, M, 4 * C, &b->ff2_w, &b->ff2_b, tok), "transformer ff.net.2");
        tdm_add_ex(f->ex, hs, tok, M * C);
    }
    OP(lin(f, hs, M, C, &t->proj_out_w, &t->proj_out_b, tok), "transformer proj_out");
    for (int64_t bb = 0; bb < B; bb++)
        for (int64_t ch = 0; ch < C; ch++) {
            const float *tp = tok + bb * HW * C + ch;
            const float *xp = x + (bb * C + ch) * HW;
            float *yp = y + (bb * C + ch) * HW;
            for (int64_t p = 0; p < HW; p++) yp[p] = tp[p * C] + xp[p];
        }
    tdm_arena_reset(f->a, m);
    return TDM_OK;
}

/* time_embedding(timestep_proj(t) [+ cond_proj(timestep_cond)]) [+ add_embedding(text_embeds | time_proj(ids))]
 * -> emb [B, T] */
static tdm_code embeddings(fwd *f, const tdm_unet_inputs *in, float *emb) {
    const tdm_unet *u = f->u;
    const tdm_unet_config *c = &u->cfg;
    const int64_t B = f->B, C0 = c->block_out_channels[0], T = c->time_embed_dim;
    tdm_arena_mark m = tdm_arena_get_mark(f->a);
    float *tp = falloc(f, B * C0); /* [B, C0] */
    float *h = falloc(f, B * T);   /* [B, T] */
    NEED(tp && h);
    tdm_timestep_embedding(in->timesteps, (int)B, (int)C0, c->flip_sin_to_cos, c->freq_shift, tp);
    if (c->time_cond_proj_dim) {
        float *cp = falloc(f, B * C0); /* [B, C0] */
        NEED(cp);
        OP(lin(f, in->timestep_cond, B, c->time_cond_proj_dim, &u->t_cond_w, NULL, cp),
           "time_embedding.cond_proj");
        add_inplace(tp, cp, B * C0);
    }
    OP(lin(f, tp, B, C0, &u->t_lin1_w, &u->t_lin1_b, h), "time_embedding.linear_1");
    tdm_silu(h, B * T);
    OP(lin(f, h, B, T, &u->t_lin2_w, &u->t_lin2_b, emb), "time_embedding.linear_2");
    debug_out(in, "time_embedding", emb, B * T);
    if (c->addition_text_time) {
        const int64_t P = c->projection_class_embeddings_input_dim, nid = in->n_time_ids,
                      ad = c->addition_time_embed_dim, Dt = in->text_embeds_dim;
        float *ids = falloc(f, B * nid * ad); /* [B*nid, ad] = [B, nid*ad] */
        float *cat = falloc(f, B * P);        /* [B, P] = [text_embeds | time embeds] */
        float *aug = falloc(f, B * T);        /* [B, T] */
        NEED(ids && cat && aug);
        tdm_timestep_embedding(in->time_ids, (int)(B * nid), (int)ad, c->flip_sin_to_cos, c->freq_shift, ids);
        for (int64_t b = 0; b < B; b++) {
            memcpy(cat + b * P, in->text_embeds + b * Dt, (size_t)Dt * sizeof(float));
            memcpy(cat + b * P + Dt, ids + b * nid * ad, (size_t)(nid * ad) * sizeof(float));
        }
        OP(lin(f, cat, B, P, &u->a_lin1_w, &u->a_lin1_b, h), "add_embedding.linear_1");
        tdm_silu(h, B * T);
        OP(lin(f, h, B, T, &u->a_lin2_w, &u->a_lin2_b, aug), "add_embedding.linear_2");
        debug_out(in, "add_embedding", aug, B * T);
        add_inplace(emb, aug, B * T);
    }
    tdm_arena_reset(f->a, m);
    return TDM_OK;
}

static tdm_code check_inputs(const tdm_unet *u, const tdm_unet_inputs *in, tdm_status *st) {
    const tdm_unet_config *c = &u->cfg;
    if (!in->sample || !in->timesteps || !in->context)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unet: sample, timesteps and context are required");
    if (in->B < 1 || in->B > 4096) return tdm_fail(st, TDM_ERR_INVALID_ARG, "unet: batch size %d is out of range", in->B);
    if (in->H < 1 || in->W < 1 || in->H > 16384 || in->W > 16384)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unet: latent size %dx%d is out of range", in->H, in->W);
    if (in->context_len < 1 || in->context_len > 65536)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unet: context length %d is out of range", in->context_len);
    if (c->time_cond_proj_dim && !in->timestep_cond)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "unet: the model has time_cond_proj_dim %d (LCM): timestep_cond [B, %d] is required",
                        c->time_cond_proj_dim, c->time_cond_proj_dim);
    if (c->addition_text_time) {
        if (!in->text_embeds || !in->time_ids)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "unet: addition_embed_type text_time (SDXL) requires text_embeds and time_ids");
        if (in->text_embeds_dim < 1 || in->n_time_ids < 1 ||
            (int64_t)in->text_embeds_dim + (int64_t)in->n_time_ids * c->addition_time_embed_dim !=
                c->projection_class_embeddings_input_dim)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "unet: text_embeds dim %d + %d time_ids x %d does not match "
                            "projection_class_embeddings_input_dim %d",
                            in->text_embeds_dim, in->n_time_ids, c->addition_time_embed_dim,
                            c->projection_class_embeddings_input_dim);
    }
    if (in->down_residuals && in->n_down_residuals != tdm_unet_n_skips(u))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unet: %d down residuals given, the model has %d skip connections",
                        in->n_down_residuals, tdm_unet_n_skips(u));
    return TDM_OK;
}

/* torch.nn.functional.interpolate(mode="nearest", size=(Ho, Wo)): src = floor(dst * in / out).
 * x [NC, H, W] -> y [NC, Ho, Wo]; Ho <= 2H, Wo <= 2W here. */
static void upsample_nearest_to(const float *x, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float *y) {
    const float sh = (float)H / (float)Ho, sw = (float)W / (float)Wo;
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < Ho; i++) {
            int64_t si = (int64_t)floorf((float)i * sh);
            if (si > H - 1) si = H - 1;
            const float *row = x + (p * H + si) * W;
            float *out = y + (p * Ho + i) * Wo;
            for (int64_t j = 0; j < Wo; j++) {
                int64_t sj = (int64_t)floorf((float)j * sw);
                out[j] = row[sj > W - 1 ? W - 1 : sj];
            }
        }
}

typedef struct skip {
    float *x; /* [B, C, H, W] */
    int64_t C, H, W;
} skip;

static tdm_code forward(fwd *f, const tdm_unet_inputs *in, float *out) {
    const tdm_unet *u = f->u;
    const tdm_unet_config *c = &u->cfg;
    const int L = c->n_levels, lpb = c->layers_per_block;
    const int64_t B = f->B, T = c->time_embed_dim, C0 = c->block_out_channels[0];
    int64_t H = in->H, W = in->W;
    char name[64];

    float *emb = falloc(f, B * T); /* [B, T] */
    NEED(emb);
    TDM_TRY(embeddings(f, in, emb));
    tdm_silu(emb, B * T); /* every resnet applies silu before time_emb_proj */
    f->temb_act = emb;

    skip skips[1 + TDM_UNET_MAX_LEVELS * (TDM_UNET_MAX_LAYERS + 1)];
    int ns = 0;
    float *h = falloc(f, B * C0 * H * W); /* conv_in output [B, C0, H, W] */
    NEED(h);
    OP(conv(f, in->sample, B, c->in_channels, H, W, &u->conv_in_w, &u->conv_in_b, 1, 1, NULL, h), "conv_in");
    debug_out(in, "conv_in", h, B * C0 * H * W);
    skips[ns++] = (skip){h, C0, H, W};
    int64_t C = C0;

    for (int i = 0; i < L; i++) {
        const unet_level *l = &u->down[i];
        for (int j = 0; j < lpb; j++) {
            const unet_resnet *r = &l->resnets[j];
            float *y = falloc(f, B * r->cout * H * W); /* [B, cout, H, W] */
            NEED(y);
            TDM_TRY(resnet(f, r, h, H, W, y));
            if (l->attns) TDM_TRY(transformer(f, &l->attns[j], y, H, W, y));
            h = y;
            C = r->cout;
            skips[ns++] = (skip){h, C, H, W};
        }
        if (l->has_sample) {
            /* stride-2 3x3 conv with padding 1: ceil(H/2) x ceil(W/2) (odd sizes allowed) */
            const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2;
            float *y = falloc(f, B * C * Ho * Wo); /* [B, C, Ho, Wo] */
            NEED(y);
            OP(conv(f, h, B, C, H, W, &l->sample_w, &l->sample_b, 2, 1, NULL, y), "downsample");
            H = Ho;
            W = Wo;
            h = y;
            skips[ns++] = (skip){h, C, H, W};
        }
        snprintf(name, sizeof name, "down_blocks.%d", i);
        debug_out(in, name, h, B * C * H * W);
    }

    /* mid and up path work in three buffers sized for the largest tensor: ping-pong p0/p1 and cat */
    int64_t mx = C * H * W;
    {
        int64_t hh = H, ww = W, prev = C;
        for (int i = 0; i < L; i++) {
            const unet_level *l = &u->up[i];
            for (int j = 0; j < l->n_layers; j++) {
                int64_t n = (int64_t)l->resnets[j].cin * hh * ww;
                if (n > mx) mx = n;
                prev = l->resnets[j].cout;
            }
            if (prev * hh * ww > mx) mx = prev * hh * ww;
            if (l->has_sample) {
                hh *= 2;
                ww *= 2;
                if (prev * hh * ww > mx) mx = prev * hh * ww;
            }
        }
    }
    float *p0 = falloc(f, B * mx), *p1 = falloc(f, B * mx), *cat = falloc(f, B * mx);
    NEED(p0 && p1 && cat);

    TDM_TRY(resnet(f, &u->mid_res[0], h, H, W, p0));
    TDM_TRY(transformer(f, &u->mid_attn, p0, H, W, p0));
    TDM_TRY(resnet(f, &u->mid_res[1], p0, H, W, p1));
    h = p1;
    /* ControlNet: residuals join the skips only (the mid block saw the plain down path output) */
    if (in->down_residuals)
        for (int s = 0; s < ns; s++)
            if (in->down_residuals[s])
                add_inplace(skips[s].x, in->down_residuals[s], B * skips[s].C * skips[s].H * skips[s].W);
    if (in->mid_residual) add_inplace(h, in->mid_residual, B * C * H * W);
    debug_out(in, "mid_block", h, B * C * H * W);

    for (int i = 0; i < L; i++) {
        const unet_level *l = &u->up[i];
        for (int j = 0; j < l->n_layers; j++) {
            const unet_resnet *r = &l->resnets[j];
            const skip *s = &skips[--ns];
            if (s->H != H || s->W != W || C + s->C != r->cin)
                return tdm_fail(f->st, TDM_ERR_INTERNAL, "unet: up block %d layer %d: skip shape mismatch", i, j);
            for (int64_t b = 0; b < B; b++) { /* cat(h, skip) on channels */
                memcpy(cat + b * r->cin * H * W, h + b * C * H * W, (size_t)(C * H * W) * sizeof(float));
                memcpy(cat + (b * r->cin + C) * H * W, s->x + b * s->C * H * W, (size_t)(s->C * H * W) * sizeof(float));
            }
            float *y = h == p0 ? p1 : p0;
            TDM_TRY(resnet(f, r, cat, H, W, y));
            if (l->attns) TDM_TRY(transformer(f, &l->attns[j], y, H, W, y));
            h = y;
            C = r->cout;
        }
        if (l->has_sample) {
            /* diffusers: upsample to the size of the next skip (forward_upsample_size) when the
             * latent is not a multiple of 2^(levels-1); otherwise exactly 2x */
            const int64_t Ho = ns > 0 ? skips[ns - 1].H : 2 * H, Wo = ns > 0 ? skips[ns - 1].W : 2 * W;
            float *y = h == p0 ? p1 : p0;
            if (Ho == 2 * H && Wo == 2 * W) { /* nearest 2x done while the conv loads its input */
                const tdm_conv_pre up = {NULL, 0, 1};
                OP(conv(f, h, B, C, Ho, Wo, &l->sample_w, &l->sample_b, 1, 1, &up, y), "upsample conv");
            } else {
                upsample_nearest_to(h, B * C, H, W, Ho, Wo, cat);
                OP(conv(f, cat, B, C, Ho, Wo, &l->sample_w, &l->sample_b, 1, 1, NULL, y), "upsample conv");
            }
            H = Ho;
            W = Wo;
            h = y;
        }
        snprintf(name, sizeof name, "up_blocks.%d", i);
        debug_out(in, name, h, B * C * H * W);
    }
    OP(tdm_group_norm(f->ex, h, B, C, H * W, c->norm_num_groups, c->norm_eps, &u->norm_out_w, &u->norm_out_b, 1, cat),
       "conv_norm_out");
    OP(conv(f, cat, B, C, H, W, &u->conv_out_w, &u->conv_out_b, 1, 1, NULL, out), "conv_out");
    return TDM_OK;
}

tdm_code tdm_unet_forward(const tdm_unet *u, const tdm_exec *ex, tdm_arena *arena, const tdm_unet_inputs *in,
                          float *out, tdm_status *st) {
    TDM_TRY(check_inputs(u, in, st));
    fwd f = {u, ex, arena, st, in->B, NULL, in->context, in->context_len, u->lora};
    tdm_arena_mark m = tdm_arena_get_mark(arena);
    tdm_code rc = forward(&f, in, out);
    tdm_arena_reset(arena, m);
    return rc;
}

/* ---- Block entry points shared with the ControlNet (declared in unet_internal.h) ---------------- */

tdm_code tdm_unet_block_embeddings(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, const tdm_unet_inputs *in,
                                   float *emb, tdm_status *st) {
    fwd f = {.u = u, .ex = ex, .a = a, .st = st, .B = in->B, .ctx = in->context, .Lc = in->context_len,
             .lora = u->lora};
    return embeddings(&f, in, emb);
}

tdm_code tdm_unet_block_resnet(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, int64_t B, const float *temb_act,
                               const unet_resnet *r, const float *x, int64_t H, int64_t W, float *y, tdm_status *st) {
    fwd f = {.u = u, .ex = ex, .a = a, .st = st, .B = B, .temb_act = temb_act, .lora = u->lora};
    return resnet(&f, r, x, H, W, y);
}

tdm_code tdm_unet_block_transformer(const tdm_unet *u, const tdm_exec *ex, tdm_arena *a, int64_t B, const float *ctx,
                                    int64_t Lc, const unet_transformer *t, const float *x, int64_t H, int64_t W,
                                    float *y, tdm_status *st) {
    fwd f = {.u = u, .ex = ex, .a = a, .st = st, .B = B, .ctx = ctx, .Lc = Lc, .lora = u->lora};
    return transformer(&f, t, x, H, W, y);
}
