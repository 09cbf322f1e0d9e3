/* FLOP counts of the bench models, walking the same structure as the forward passes. Counted: matrix
 * products only, a multiply-add = 2 FLOPs:
 *   conv k x k: 2 Cout Cin k^2 Ho Wo per image; Linear [M, K] -> [M, N]: 2 M N K;
 *   attention: q k^T and P v, 2 * 2 Lq Lk D per head (causal CLIP attention counted in full).
 * Not counted: norms, activations, softmax, residual adds, layout copies (a few % of the time). */
#include "pipeline/bench.h"

double tdm_flops_total(const tdm_flops *f) { return f->conv3 + f->conv1 + f->linear + f->attention; }

static void conv(tdm_flops *f, int64_t B, int64_t cout, int64_t cin, int k, int64_t Ho, int64_t Wo) {
    double v = 2.0 * (double)B * (double)cout * (double)cin * k * k * (double)Ho * (double)Wo;
    if (k == 1) f->conv1 += v;
    else f->conv3 += v;
}

static void lin(tdm_flops *f, int64_t M, int64_t N, int64_t K) { f->linear += 2.0 * (double)M * (double)N * (double)K; }

static void attn(tdm_flops *f, int64_t BH, int64_t Lq, int64_t Lk, int64_t D) {
    f->attention += 4.0 * (double)BH * (double)Lq * (double)Lk * (double)D;
}

/* ---- UNet -------------------------------------------------------------------------------------- */

static void unet_resnet(tdm_flops *f, const tdm_unet_config *c, int64_t B, int cin, int cout, int64_t H, int64_t W) {
    conv(f, B, cout, cin, 3, H, W);
    lin(f, B, cout, c->time_embed_dim);
    conv(f, B, cout, cout, 3, H, W);
    if (cin != cout) conv(f, B, cout, cin, 1, H, W);
}

static void unet_transformer(tdm_flops *f, const tdm_unet_config *c, int64_t B, int64_t C, int heads, int layers,
                             int64_t HW, int64_t Lc) {
    const int64_t M = B * HW, D = c->cross_attention_dim;
    /* proj_in / proj_out: 1x1 convs (SD1) or Linears (SD2, SDXL): the same per-token product */
    if (c->use_linear_projection) lin(f, M, C, C), lin(f, M, C, C);
    else f->conv1 += 2 * 2.0 * (double)M * (double)C * (double)C;
    for (int l = 0; l < layers; l++) {
        lin(f, M, C, C), lin(f, M, C, C), lin(f, M, C, C), lin(f, M, C, C); /* attn1 q k v out */
        attn(f, B * heads, HW, HW, C / heads);
        lin(f, M, C, C), lin(f, B * Lc, C, D), lin(f, B * Lc, C, D), lin(f, M, C, C); /* attn2 */
        attn(f, B * heads, HW, Lc, C / heads);
        lin(f, M, 8 * C, C), lin(f, M, C, 4 * C); /* GEGLU feed-forward */
    }
}

void tdm_bench_flops_unet(const tdm_unet_config *c, int64_t B, int64_t H, int64_t W, int64_t Lc, tdm_flops *f) {
    *f = (tdm_flops){0, 0, 0, 0};
    const int L = c->n_levels, lpb = c->layers_per_block, C0 = c->block_out_channels[0], T = c->time_embed_dim;
    lin(f, B, T, C0), lin(f, B, T, T);
    if (c->addition_text_time) lin(f, B, T, c->projection_class_embeddings_input_dim), lin(f, B, T, T);
    conv(f, B, C0, c->in_channels, 3, H, W);
    int64_t skH[64], skW[64];
    int skC[64], ns = 0, C = C0;
    skH[ns] = H, skW[ns] = W, skC[ns++] = C;
    for (int i = 0; i < L; i++) {
        int o = c->block_out_channels[i];
        for (int j = 0; j < lpb; j++) {
            unet_resnet(f, c, B, C, o, H, W);
            C = o;
            if (c->down_attn[i]) unet_transformer(f, c, B, C, c->num_heads[i], c->transformer_layers[i], H * W, Lc);
            skH[ns] = H, skW[ns] = W, skC[ns++] = C;
        }
        if (i < L - 1) {
            H = (H + 1) / 2, W = (W + 1) / 2;
            conv(f, B, C, C, 3, H, W);
            skH[ns] = H, skW[ns] = W, skC[ns++] = C;
        }
    }
    unet_resnet(f, c, B, C, C, H, W);
    unet_transformer(f, c, B, C, c->num_heads[L - 1], c->transformer_layers[L - 1], H * W, Lc);
    unet_resnet(f, c, B, C, C, H, W);
    for (int i = 0; i < L; i++) {
        int o = c->block_out_channels[L - 1 - i];
        for (int j = 0; j <= lpb; j++) {
            ns--;
            unet_resnet(f, c, B, C + skC[ns], o, H, W);
            C = o;
            if (c->up_attn[i])
                unet_transformer(f, c, B, C, c->num_heads[L - 1 - i], c->transformer_layers_up[i], H * W, Lc);
        }
        if (i < L - 1) {
            H = skH[ns - 1], W = skW[ns - 1];
            conv(f, B, C, C, 3, H, W);
        }
    }
    conv(f, B, c->out_channels, C, 3, H, W);
}

/* ---- VAE --------------------------------------------------------------------------------------- */

static void vae_resnet(tdm_flops *f, int64_t B, int cin, int cout, int64_t H, int64_t W) {
    conv(f, B, cout, cin, 3, H, W);
    conv(f, B, cout, cout, 3, H, W);
    if (cin != cout) conv(f, B, cout, cin, 1, H, W);
}

static void vae_mid(tdm_flops *f, const tdm_vae_config *c, int64_t B, int C, int64_t H, int64_t W) {
    vae_resnet(f, B, C, C, H, W);
    if (c->mid_block_add_attention) {
        for (int i = 0; i < 4; i++) lin(f, B * H * W, C, C);
        attn(f, B, H * W, H * W, C);
    }
    vae_resnet(f, B, C, C, H, W);
}

void tdm_bench_flops_vae_decode(const tdm_vae_config *c, int64_t B, int64_t h, int64_t w, tdm_flops *f) {
    *f = (tdm_flops){0, 0, 0, 0};
    const int n = c->n_levels, *bo = c->block_out_channels, lat = c->latent_channels;
    if (c->use_post_quant_conv) conv(f, B, lat, lat, 1, h, w);
    conv(f, B, bo[n - 1], lat, 3, h, w);
    vae_mid(f, c, B, bo[n - 1], h, w);
    int C = bo[n - 1];
    for (int i = 0; i < n; i++) {
        int out = bo[n - 1 - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            vae_resnet(f, B, C, out, h, w);
            C = out;
        }
        if (i < n - 1) {
            h *= 2, w *= 2;
            conv(f, B, C, C, 3, h, w);
        }
    }
    conv(f, B, c->out_channels, C, 3, h, w);
}

void tdm_bench_flops_vae_encode(const tdm_vae_config *c, int64_t B, int64_t H, int64_t W, tdm_flops *f) {
    *f = (tdm_flops){0, 0, 0, 0};
    const int n = c->n_levels, *bo = c->block_out_channels, lat = c->latent_channels;
    conv(f, B, bo[0], c->in_channels, 3, H, W);
    int C = bo[0];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            vae_resnet(f, B, C, bo[i], H, W);
            C = bo[i];
        }
        if (i < n - 1) {
            H /= 2, W /= 2; /* (H + 1 - 3) / 2 + 1 */
            conv(f, B, C, C, 3, H, W);
        }
    }
    vae_mid(f, c, B, C, H, W);
    conv(f, B, 2 * lat, C, 3, H, W);
    if (c->use_quant_conv) conv(f, B, 2 * lat, 2 * lat, 1, H, W);
}

/* ---- CLIP text ------------------------------------------------------------------------------------ */

void tdm_bench_flops_clip(const tdm_clip_text_config *c, int64_t B, int64_t L, tdm_flops *f) {
    *f = (tdm_flops){0, 0, 0, 0};
    const int64_t C = c->hidden_size, I = c->intermediate_size, M = B * L;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        for (int i = 0; i < 4; i++) lin(f, M, C, C);
        attn(f, B * c->num_attention_heads, L, L, C / c->num_attention_heads);
        lin(f, M, I, C), lin(f, M, C, I);
    }
}
