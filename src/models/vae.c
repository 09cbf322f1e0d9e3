/* AutoencoderKL: weight loading and the encoder / decoder forward passes (see vae.h for the
 * structure and its diffusers source). */
#include "models/vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f /* every GroupNorm of the diffusers VAE (resnet_eps, attention eps, conv_norm_out) */

/* ---- loading --------------------------------------------------------------------------------- */

typedef struct loader {
    tdm_weights *ws;
    tdm_status *st;
} loader;

static tdm_code get_weight(loader *L, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     const char *fmt, ...) TDM_PRINTF(8, 9);
static tdm_code get_weight(loader *L, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tdm_code rc = tdm_weights_vgetf(L->ws, out, ndim, d0, d1, d2, d3, L->st, fmt, ap);
    va_end(ap);
    return rc;
}

static tdm_code load_conv(loader *L, tdm_tensor *w, tdm_tensor *b, int64_t cout, int64_t cin, int64_t k,
                          const char *prefix) {
    TDM_TRY(get_weight(L, w, 4, cout, cin, k, k, "%s.weight", prefix));
    return get_weight(L, b, 1, cout, 0, 0, 0, "%s.bias", prefix);
}

static tdm_code load_norm(loader *L, tdm_tensor *w, tdm_tensor *b, int64_t c, const char *prefix) {
    TDM_TRY(get_weight(L, w, 1, c, 0, 0, 0, "%s.weight", prefix));
    return get_weight(L, b, 1, c, 0, 0, 0, "%s.bias", prefix);
}

static tdm_code load_linear(loader *L, tdm_tensor *w, tdm_tensor *b, int64_t n, int64_t k, const char *prefix) {
    TDM_TRY(get_weight(L, w, 2, n, k, 0, 0, "%s.weight", prefix));
    return get_weight(L, b, 1, n, 0, 0, 0, "%s.bias", prefix);
}

/* diffusers ResnetBlock2D (temb None, output_scale_factor 1): conv_shortcut when cin != cout. */
static tdm_code load_resnet(loader *L, tdm_vae_resnet *r, int cin, int cout, const char *prefix) {
    char p[512];
    r->cin = cin;
    r->cout = cout;
    snprintf(p, sizeof p, "%s.norm1", prefix);
    TDM_TRY(load_norm(L, &r->norm1_w, &r->norm1_b, cin, p));
    snprintf(p, sizeof p, "%s.conv1", prefix);
    TDM_TRY(load_conv(L, &r->conv1_w, &r->conv1_b, cout, cin, 3, p));
    snprintf(p, sizeof p, "%s.norm2", prefix);
    TDM_TRY(load_norm(L, &r->norm2_w, &r->norm2_b, cout, p));
    snprintf(p, sizeof p, "%s.conv2", prefix);
    TDM_TRY(load_conv(L, &r->conv2_w, &r->conv2_b, cout, cout, 3, p));
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) {
        snprintf(p, sizeof p, "%s.conv_shortcut", prefix);
        TDM_TRY(load_conv(L, &r->short_w, &r->short_b, cout, cin, 1, p));
    }
    return TDM_OK;
}

/* UNetMidBlock2D: resnets.0, attentions.0 (single head, group norm), resnets.1. */
static tdm_code load_mid(loader *L, tdm_vae_mid *m, int c, int attn, const char *half) {
    char p[512];
    snprintf(p, sizeof p, "%s.mid_block.resnets.0", half);
    TDM_TRY(load_resnet(L, &m->res[0], c, c, p));
    snprintf(p, sizeof p, "%s.mid_block.resnets.1", half);
    TDM_TRY(load_resnet(L, &m->res[1], c, c, p));
    m->has_attn = attn;
    if (!attn) return TDM_OK;
    tdm_vae_attn *a = &m->attn;
    a->c = c;
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.group_norm", half);
    TDM_TRY(load_norm(L, &a->norm_w, &a->norm_b, c, p));
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.to_q", half);
    TDM_TRY(load_linear(L, &a->q_w, &a->q_b, c, c, p));
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.to_k", half);
    TDM_TRY(load_linear(L, &a->k_w, &a->k_b, c, c, p));
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.to_v", half);
    TDM_TRY(load_linear(L, &a->v_w, &a->v_b, c, c, p));
    snprintf(p, sizeof p, "%s.mid_block.attentions.0.to_out.0", half);
    return load_linear(L, &a->o_w, &a->o_b, c, c, p);
}

static tdm_code load_all(tdm_vae *v, loader *L) {
    const tdm_vae_config *c = &v->cfg;
    const int n = c->n_levels, *bo = c->block_out_channels, lat = c->latent_channels;
    char p[512];
    /* encoder (diffusers vae.py Encoder, double_z) */
    tdm_vae_half *e = &v->enc;
    TDM_TRY(load_conv(L, &e->conv_in_w, &e->conv_in_b, bo[0], c->in_channels, 3, "encoder.conv_in"));
    for (int i = 0; i < n; i++) {
        tdm_vae_level *lv = &e->levels[i];
        int cin = i == 0 ? bo[0] : bo[i - 1];
        lv->n_res = c->layers_per_block;
        for (int j = 0; j < lv->n_res; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            TDM_TRY(load_resnet(L, &lv->res[j], j == 0 ? cin : bo[i], bo[i], p));
        }
        lv->has_sample = i < n - 1;
        if (lv->has_sample) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            TDM_TRY(load_conv(L, &lv->sample_w, &lv->sample_b, bo[i], bo[i], 3, p));
        }
    }
    TDM_TRY(load_mid(L, &e->mid, bo[n - 1], c->mid_block_add_attention, "encoder"));
    TDM_TRY(load_norm(L, &e->norm_out_w, &e->norm_out_b, bo[n - 1], "encoder.conv_norm_out"));
    TDM_TRY(load_conv(L, &e->conv_out_w, &e->conv_out_b, 2 * lat, bo[n - 1], 3, "encoder.conv_out"));
    /* decoder: up_blocks.i works on reversed(block_out_channels)[i] */
    tdm_vae_half *d = &v->dec;
    TDM_TRY(load_conv(L, &d->conv_in_w, &d->conv_in_b, bo[n - 1], lat, 3, "decoder.conv_in"));
    TDM_TRY(load_mid(L, &d->mid, bo[n - 1], c->mid_block_add_attention, "decoder"));
    for (int i = 0; i < n; i++) {
        tdm_vae_level *lv = &d->levels[i];
        int out = bo[n - 1 - i], prev = i == 0 ? bo[n - 1] : bo[n - i];
        lv->n_res = c->layers_per_block + 1;
        for (int j = 0; j < lv->n_res; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            TDM_TRY(load_resnet(L, &lv->res[j], j == 0 ? prev : out, out, p));
        }
        lv->has_sample = i < n - 1;
        if (lv->has_sample) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            TDM_TRY(load_conv(L, &lv->sample_w, &lv->sample_b, out, out, 3, p));
        }
    }
    TDM_TRY(load_norm(L, &d->norm_out_w, &d->norm_out_b, bo[0], "decoder.conv_norm_out"));
    TDM_TRY(load_conv(L, &d->conv_out_w, &d->conv_out_b, c->out_channels, bo[0], 3, "decoder.conv_out"));
    v->has_quant = c->use_quant_conv;
    if (v->has_quant) TDM_TRY(load_conv(L, &v->quant_w, &v->quant_b, 2 * lat, 2 * lat, 1, "quant_conv"));
    v->has_post_quant = c->use_post_quant_conv;
    if (v->has_post_quant) TDM_TRY(load_conv(L, &v->post_quant_w, &v->post_quant_b, lat, lat, 1, "post_quant_conv"));
    return tdm_weights_check_unused(L->ws, L->st);
}

tdm_code tdm_vae_load(tdm_vae **out, const tdm_vae_config *cfg, tdm_weights *ws, tdm_status *st) {
    *out = NULL;
    tdm_vae *v = calloc(1, sizeof *v);
    if (!v) {
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "vae: out of memory");
    }
    v->ws = *ws; /* ownership moves in */
    memset(ws, 0, sizeof *ws);
    v->cfg = *cfg;
    tdm_code rc = tdm_vae_config_validate(cfg, "vae config", st);
    loader L = {&v->ws, st};
    if (!rc) rc = load_all(v, &L);
    if (rc) {
        tdm_vae_free(v);
        return rc;
    }
    *out = v;
    return TDM_OK;
}

tdm_code tdm_vae_load_dir(tdm_vae **out, const char *dir, tdm_status *st) {
    *out = NULL;
    char path[4096];
    tdm_vae_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TDM_TRY(tdm_vae_config_load(path, &cfg, st));
    tdm_weights ws;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    TDM_TRY(tdm_weights_open_file(&ws, "vae", path, "", NULL, NULL, st));
    return tdm_vae_load(out, &cfg, &ws, st);
}

tdm_code tdm_vae_load_single_file(tdm_vae **out, const char *path, const char *prefix, const tdm_vae_config *cfg,
                                  tdm_status *st) {
    *out = NULL;
    tdm_vae_config c;
    memset(&c, 0, sizeof c);
    if (cfg) {
        c = *cfg;
    } else { /* infer from the shapes (the file is opened twice: cheap, header only) */
        tdm_safetensors f;
        TDM_TRY(tdm_st_open(&f, path, st));
        tdm_code rc = tdm_vae_config_infer(&f, prefix, &c, st);
        tdm_st_close(&f);
        if (rc) return rc;
    }
    tdm_weights ws;
    TDM_TRY(tdm_weights_open_file(&ws, "vae", path, prefix, tdm_vae_ldm_mapper, &c, st));
    return tdm_vae_load(out, &c, &ws, st);
}

void tdm_vae_free(tdm_vae *vae) {
    if (!vae) return;
    tdm_weights_free(&vae->ws);
    free(vae);
}

void tdm_vae_set_debug(tdm_vae *vae, tdm_vae_debug_fn fn, void *user) {
    vae->debug_fn = fn;
    vae->debug_user = user;
}

/* ---- forward --------------------------------------------------------------------------------- */

/* One image in flight: the activation is in cur [C, H, W]; nxt and tmp are scratch of the same
 * capacity (the largest activation of the pass, see max_floats_*). */
typedef struct vae_run {
    const tdm_vae *vae;
    const tdm_exec *ex;
    tdm_arena *arena;
    tdm_status *st;
    float *buf[3];          /* activation buffers, capacities cap[] (floats); see alloc_run */
    int64_t cap[3];
    float *cur, *nxt, *tmp; /* the current activation; output and scratch of the next step (take) */
    float *cab;             /* [max channels, 3] GroupNorm coefficients (tdm_group_norm_coeffs) */
    int64_t C, H, W;
    int64_t b; /* image index, for the debug hook */
} vae_run;

/* Assigns nxt (need_nxt floats) and tmp (need_tmp floats) among the two buffers cur is not in: the
 * smaller buffer that fits goes to nxt, so the one large buffer of the decoder stays free for the
 * upsampling steps (the only outputs that need it). */
static tdm_code take(vae_run *r, int64_t need_nxt, int64_t need_tmp) {
    int f[2], k = 0;
    for (int i = 0; i < 3 && k < 2; i++)
        if (r->buf[i] != r->cur) f[k++] = i;
    if (k == 2 && r->cap[f[1]] < r->cap[f[0]]) {
        int t = f[0];
        f[0] = f[1];
        f[1] = t;
    }
    for (int o = 0; k == 2 && o < 2; o++) {
        int a = f[o], b = f[1 - o];
        if (r->cap[a] >= need_nxt && r->cap[b] >= need_tmp) {
            r->nxt = r->buf[a];
            r->tmp = r->buf[b];
            return TDM_OK;
        }
    }
    return tdm_fail(r->st, TDM_ERR_INTERNAL, "vae: activation buffers too small for %lld + %lld values",
                    (long long)need_nxt, (long long)need_tmp);
}

static void swap_cur(vae_run *r) {
    float *t = r->cur;
    r->cur = r->nxt;
    r->nxt = t;
}

static void debug(const vae_run *r, const char *fmt, ...) TDM_PRINTF(2, 3);
static void debug(const vae_run *r, const char *fmt, ...) {
    if (!r->vae->debug_fn) return;
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    r->vae->debug_fn(r->vae->debug_user, name, r->b, r->cur, r->C, r->H, r->W);
}

/* cur [C, H, W] -> conv -> cur [cout, Ho, Wo] (k x k, symmetric padding pad). */
static tdm_code conv_step(vae_run *r, const tdm_tensor *w, const tdm_tensor *b, int stride, int pad) {
    int64_t cout = w->shape[0], k = w->shape[2];
    int64_t Ho = (r->H + 2 * pad - k) / stride + 1, Wo = (r->W + 2 * pad - k) / stride + 1;
    TDM_TRY(take(r, cout * Ho * Wo, 0));
    TDM_TRY(tdm_conv2d(r->ex, r->cur, 1, r->C, r->H, r->W, w, b, stride, pad, r->nxt));
    swap_cur(r);
    r->C = cout;
    r->H = Ho;
    r->W = Wo;
    return TDM_OK;
}

/* ResnetBlock2D: y = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))). The GroupNorm+SiLU of each
 * conv is applied while the conv loads its input (tdm_conv2d_pre: the same values as a separate pass),
 * so no full-size normalised copy is made: cur [cin], nxt and tmp [cout]. */
static tdm_code resnet_fwd(vae_run *r, const tdm_vae_resnet *rs) {
    const tdm_exec *ex = r->ex;
    const int g = r->vae->cfg.norm_num_groups;
    const int64_t HW = r->H * r->W;
    const float *x = r->cur; /* [cin, H, W] */
    TDM_TRY(take(r, rs->cout * HW, rs->cout * HW));
    float *t = r->tmp, *y = r->nxt;
    const tdm_conv_pre pre = {r->cab, 1, 0}; /* silu(gn(.)) with the coefficients in r->cab */
    TDM_TRY(tdm_group_norm_coeffs(ex, x, 1, rs->cin, HW, g, VAE_EPS, &rs->norm1_w, &rs->norm1_b, r->cab));
    TDM_TRY(tdm_conv2d_pre(ex, x, 1, rs->cin, r->H, r->W, &rs->conv1_w, &rs->conv1_b, 1, 1, &pre, y)); /* [cout,H,W] */
    TDM_TRY(tdm_group_norm_coeffs(ex, y, 1, rs->cout, HW, g, VAE_EPS, &rs->norm2_w, &rs->norm2_b, r->cab));
    TDM_TRY(tdm_conv2d_pre(ex, y, 1, rs->cout, r->H, r->W, &rs->conv2_w, &rs->conv2_b, 1, 1, &pre, t)); /* [cout,H,W] */
    if (rs->has_shortcut) TDM_TRY(tdm_conv2d(ex, x, 1, rs->cin, r->H, r->W, &rs->short_w, &rs->short_b, 1, 0, y));
    else memcpy(y, x, (size_t)(rs->cout * HW) * sizeof(float));
    for (int64_t i = 0; i < rs->cout * HW; i++) y[i] += t[i];
    swap_cur(r);
    r->C = rs->cout;
    return TDM_OK;
}

/* Attention (AttnProcessor2_0, heads 1, dim_head C, residual_connection, rescale 1):
 * t = gn(x) as tokens [HW, C]; y = x + (to_out(softmax(q k^T / sqrt(C)) v))^T */
static tdm_code attn_fwd(vae_run *r, const tdm_vae_attn *a) {
    const tdm_exec *ex = r->ex;
    const int64_t C = r->C, HW = r->H * r->W;
    tdm_arena_mark mark = tdm_arena_get_mark(r->arena);
    float *tok = tdm_arena_alloc(r->arena, (size_t)(HW * C) * sizeof(float)); /* [HW, C] */
    float *q = tdm_arena_alloc(r->arena, (size_t)(HW * C) * sizeof(float));   /* [HW, C] */
    float *k = tdm_arena_alloc(r->arena, (size_t)(HW * C) * sizeof(float));   /* [HW, C] */
    float *v = tdm_arena_alloc(r->arena, (size_t)(HW * C) * sizeof(float));   /* [HW, C] */
    tdm_code rc = take(r, C * HW, C * HW);
    if (!rc && (!tok || !q || !k || !v))
        rc = tdm_fail(r->st, TDM_ERR_NOMEM, "vae attention: out of memory (%lld tokens)", (long long)HW);
    if (!rc) rc = tdm_group_norm(ex, r->cur, 1, C, HW, r->vae->cfg.norm_num_groups, VAE_EPS, &a->norm_w, &a->norm_b, 0,
                                 r->tmp); /* [C, HW] */
    if (!rc) {
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) tok[p * C + c] = r->tmp[c * HW + p];
        rc = tdm_linear(ex, tok, HW, C, &a->q_w, &a->q_b, q);
    }
    if (!rc) rc = tdm_linear(ex, tok, HW, C, &a->k_w, &a->k_b, k);
    if (!rc) rc = tdm_linear(ex, tok, HW, C, &a->v_w, &a->v_b, v);
    if (!rc) rc = tdm_attention(ex, q, C, k, C, v, C, 1, 1, HW, HW, C, (float)(1.0 / sqrt((double)C)), 0, NULL, tok);
    if (!rc) rc = tdm_linear(ex, tok, HW, C, &a->o_w, &a->o_b, q); /* [HW, C] */
    if (!rc) {
        float *y = r->nxt;
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++) y[c * HW + p] = q[p * C + c] + r->cur[c * HW + p];
        swap_cur(r);
    }
    tdm_arena_reset(r->arena, mark);
    return rc;
}

static tdm_code mid_fwd(vae_run *r, const tdm_vae_mid *m) {
    TDM_TRY(resnet_fwd(r, &m->res[0]));
    if (m->has_attn) TDM_TRY(attn_fwd(r, &m->attn));
    return resnet_fwd(r, &m->res[1]);
}

/* Downsample2D(padding=0): zero pad right and bottom by one, then 3x3 stride-2 conv, no padding. */
static tdm_code downsample_fwd(vae_run *r, const tdm_vae_level *lv) {
    const int64_t C = r->C, H = r->H, W = r->W, Hp = H + 1, Wp = W + 1;
    TDM_TRY(take(r, C * ((Hp - 3) / 2 + 1) * ((Wp - 3) / 2 + 1), C * Hp * Wp));
    float *p = r->tmp; /* [C, H+1, W+1] */
    for (int64_t c = 0; c < C; c++) {
        for (int64_t y = 0; y < H; y++) {
            memcpy(p + (c * Hp + y) * Wp, r->cur + (c * H + y) * W, (size_t)W * sizeof(float));
            p[(c * Hp + y) * Wp + W] = 0.0f;
        }
        memset(p + (c * Hp + H) * Wp, 0, (size_t)Wp * sizeof(float));
    }
    TDM_TRY(tdm_conv2d(r->ex, p, 1, C, Hp, Wp, &lv->sample_w, &lv->sample_b, 2, 0, r->nxt));
    swap_cur(r);
    r->H = (Hp - 3) / 2 + 1;
    r->W = (Wp - 3) / 2 + 1;
    return TDM_OK;
}

/* Upsample2D: nearest 2x, then 3x3 conv, padding 1 (the upsampling is done while the conv loads its
 * input: no upsampled copy). */
static tdm_code upsample_fwd(vae_run *r, const tdm_vae_level *lv) {
    const tdm_conv_pre up = {NULL, 0, 1};
    r->H *= 2;
    r->W *= 2;
    TDM_TRY(take(r, r->C * r->H * r->W, 0));
    TDM_TRY(tdm_conv2d_pre(r->ex, r->cur, 1, r->C, r->H, r->W, &lv->sample_w, &lv->sample_b, 1, 1, &up, r->nxt));
    swap_cur(r);
    return TDM_OK;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Largest activation (floats) of one image through the encoder, including the padded copy. */
static int64_t max_floats_encoder(const tdm_vae_config *c, int64_t H, int64_t W) {
    const int *bo = c->block_out_channels;
    int64_t m = max64(c->in_channels, bo[0]) * H * W;
    for (int i = 0; i < c->n_levels; i++) {
        int64_t cin = i == 0 ? bo[0] : bo[i - 1];
        m = max64(m, max64(cin, bo[i]) * H * W);
        if (i < c->n_levels - 1) {
            m = max64(m, (int64_t)bo[i] * (H + 1) * (W + 1));
            H /= 2;
            W /= 2;
        }
    }
    return max64(m, 2 * (int64_t)c->latent_channels * H * W);
}

/* Largest activation (floats) of one image through the decoder (the upsampled level inputs), and in
 * *tmp the largest of everything else (every resnet's outputs [cout, H, W], the mid block, conv_in/out):
 * one buffer of the first size and two of the second suffice (take). */
static int64_t max_floats_decoder(const tdm_vae_config *c, int64_t h, int64_t w, int64_t *tmp) {
    const int n = c->n_levels, *bo = c->block_out_channels;
    int64_t m = max64(c->latent_channels, bo[n - 1]) * h * w;
    *tmp = m; /* latent, post_quant_conv, conv_in, mid block */
    for (int i = 0; i < n; i++) {
        int64_t out = bo[n - 1 - i], prev = i == 0 ? bo[n - 1] : bo[n - i];
        m = max64(m, max64(prev, out) * h * w);
        *tmp = max64(*tmp, out * h * w);
        if (i < n - 1) {
            h *= 2;
            w *= 2;
            m = max64(m, out * h * w);
        }
    }
    *tmp = max64(*tmp, (int64_t)c->out_channels * h * w);
    return max64(m, (int64_t)c->out_channels * h * w);
}

/* One buffer of `floats` and two of `small` floats (<= floats); cur starts in the smallest. */
static tdm_code alloc_run(vae_run *r, int64_t floats, int64_t small) {
    int64_t maxc = r->vae->cfg.in_channels;
    for (int i = 0; i < r->vae->cfg.n_levels; i++) maxc = max64(maxc, r->vae->cfg.block_out_channels[i]);
    r->cap[0] = floats, r->cap[1] = r->cap[2] = small < floats ? small : floats;
    int ok = 1;
    for (int i = 0; i < 3; i++) ok &= (r->buf[i] = tdm_arena_alloc(r->arena, (size_t)r->cap[i] * sizeof(float))) != NULL;
    r->cab = tdm_arena_alloc(r->arena, (size_t)(3 * maxc) * sizeof(float));
    if (!ok || !r->cab)
        return tdm_fail(r->st, TDM_ERR_NOMEM, "vae: out of memory (%.1f MB of activations)",
                        (double)(r->cap[0] + 2 * r->cap[1]) * sizeof(float) / 1e6);
    r->cur = r->buf[1];
    return TDM_OK;
}

static tdm_code check_size(const char *what, int64_t B, int64_t H, int64_t W, int s, tdm_status *st) {
    if (B < 1 || B > 4096 || H < 1 || W < 1 || H > (1 << 16) || W > (1 << 16))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "vae %s: invalid size B=%lld H=%lld W=%lld", what, (long long)B,
                        (long long)H, (long long)W);
    if (H % s || W % s)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "vae %s: image size %lldx%lld is not a multiple of %d", what,
                        (long long)H, (long long)W, s);
    return TDM_OK;
}

static tdm_code encode_one(vae_run *r, const float *img, int64_t H, int64_t W) {
    const tdm_vae *v = r->vae;
    const tdm_vae_half *e = &v->enc;
    r->C = v->cfg.in_channels;
    r->H = H;
    r->W = W;
    memcpy(r->cur, img, (size_t)(r->C * H * W) * sizeof(float));
    TDM_TRY(conv_step(r, &e->conv_in_w, &e->conv_in_b, 1, 1));
    debug(r, "encoder.conv_in");
    for (int i = 0; i < v->cfg.n_levels; i++) {
        const tdm_vae_level *lv = &e->levels[i];
        for (int j = 0; j < lv->n_res; j++) TDM_TRY(resnet_fwd(r, &lv->res[j]));
        if (lv->has_sample) TDM_TRY(downsample_fwd(r, lv));
        debug(r, "encoder.down_blocks.%d", i);
    }
    TDM_TRY(mid_fwd(r, &e->mid));
    debug(r, "encoder.mid_block");
    TDM_TRY(tdm_group_norm(r->ex, r->cur, 1, r->C, r->H * r->W, v->cfg.norm_num_groups, VAE_EPS, &e->norm_out_w,
                           &e->norm_out_b, 1, r->cur));
    TDM_TRY(conv_step(r, &e->conv_out_w, &e->conv_out_b, 1, 1));
    debug(r, "encoder.conv_out");
    if (v->has_quant) TDM_TRY(conv_step(r, &v->quant_w, &v->quant_b, 1, 0));
    return TDM_OK;
}

tdm_code tdm_vae_encode(const tdm_vae *vae, const tdm_exec *ex, tdm_arena *arena, const float *image, int64_t B,
                        int64_t H, int64_t W, float *mean, float *logvar, float *moments, tdm_status *st) {
    const int s = tdm_vae_latent_scale(&vae->cfg);
    TDM_TRY(check_size("encode", B, H, W, s, st));
    const int64_t L = vae->cfg.latent_channels, hw = (H / s) * (W / s);
    const int64_t in_n = vae->cfg.in_channels * H * W;
    tdm_arena_mark mark = tdm_arena_get_mark(arena);
    vae_run r = {vae, ex, arena, st, {NULL, NULL, NULL}, {0, 0, 0}, NULL, NULL, NULL, NULL, 0, 0, 0, 0};
    const int64_t enc_floats = max_floats_encoder(&vae->cfg, H, W);
    tdm_code rc = alloc_run(&r, enc_floats, enc_floats);
    for (int64_t b = 0; !rc && b < B; b++) {
        r.b = b;
        rc = encode_one(&r, image + b * in_n, H, W);
        if (rc) break;
        /* moments [2L, h, w] in r.cur: mean = [:L], logvar = clamp([L:], -30, 20) (DiagonalGaussianDistribution) */
        if (moments) memcpy(moments + b * 2 * L * hw, r.cur, (size_t)(2 * L * hw) * sizeof(float));
        if (mean) memcpy(mean + b * L * hw, r.cur, (size_t)(L * hw) * sizeof(float));
        if (logvar)
            for (int64_t i = 0; i < L * hw; i++) {
                float x = r.cur[L * hw + i];
                logvar[b * L * hw + i] = x < -30.0f ? -30.0f : x > 20.0f ? 20.0f : x;
            }
    }
    tdm_arena_reset(arena, mark);
    return rc;
}

static tdm_code decode_one(vae_run *r, const float *z, int64_t h, int64_t w) {
    const tdm_vae *v = r->vae;
    const tdm_vae_half *d = &v->dec;
    r->C = v->cfg.latent_channels;
    r->H = h;
    r->W = w;
    memcpy(r->cur, z, (size_t)(r->C * h * w) * sizeof(float));
    if (v->has_post_quant) {
        TDM_TRY(conv_step(r, &v->post_quant_w, &v->post_quant_b, 1, 0));
        debug(r, "post_quant_conv");
    }
    TDM_TRY(conv_step(r, &d->conv_in_w, &d->conv_in_b, 1, 1));
    debug(r, "decoder.conv_in");
    TDM_TRY(mid_fwd(r, &d->mid));
    debug(r, "decoder.mid_block");
    for (int i = 0; i < v->cfg.n_levels; i++) {
        const tdm_vae_level *lv = &d->levels[i];
        for (int j = 0; j < lv->n_res; j++) TDM_TRY(resnet_fwd(r, &lv->res[j]));
        if (lv->has_sample) TDM_TRY(upsample_fwd(r, lv));
        debug(r, "decoder.up_blocks.%d", i);
    }
    TDM_TRY(tdm_group_norm(r->ex, r->cur, 1, r->C, r->H * r->W, v->cfg.norm_num_groups, VAE_EPS, &d->norm_out_w,
                           &d->norm_out_b, 1, r->cur));
    return conv_step(r, &d->conv_out_w, &d->conv_out_b, 1, 1);
}

tdm_code tdm_vae_decode(const tdm_vae *vae, const tdm_exec *ex, tdm_arena *arena, const float *latent, int64_t B,
                        int64_t h, int64_t w, float *image, tdm_status *st) {
    const int s = tdm_vae_latent_scale(&vae->cfg);
    TDM_TRY(check_size("decode", B, h * s, w * s, s, st));
    const int64_t lat_n = vae->cfg.latent_channels * h * w, out_n = vae->cfg.out_channels * h * s * w * s;
    tdm_arena_mark mark = tdm_arena_get_mark(arena);
    vae_run r = {vae, ex, arena, st, {NULL, NULL, NULL}, {0, 0, 0}, NULL, NULL, NULL, NULL, 0, 0, 0, 0};
    int64_t dec_tmp = 0;
    const int64_t dec_floats = max_floats_decoder(&vae->cfg, h, w, &dec_tmp);
    tdm_code rc = alloc_run(&r, dec_floats, dec_tmp);
    for (int64_t b = 0; !rc && b < B; b++) {
        r.b = b;
        rc = decode_one(&r, latent + b * lat_n, h, w);
        if (!rc) memcpy(image + b * out_n, r.cur, (size_t)out_n * sizeof(float));
    }
    tdm_arena_reset(arena, mark);
    return rc;
}

void tdm_vae_to_rgb8(const float *image, int64_t B, int64_t H, int64_t W, uint8_t *rgb) {
    const int64_t HW = H * W;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++) {
                float v = image[(b * 3 + c) * HW + p] / 2.0f + 0.5f; /* float32 as torch computes it */
                if (!(v >= 0.0f)) v = 0.0f;                            /* also NaN */
                if (v > 1.0f) v = 1.0f;
                rgb[(b * HW + p) * 3 + c] = (uint8_t)nearbyintf(v * 255.0f); /* numpy round: half to even */
            }
}
