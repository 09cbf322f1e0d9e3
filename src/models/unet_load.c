/* UNet weights: every tensor fetched by diffusers name with its expected shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_internal.h"

/* Fetches pre+suf with shape (a, b, c, d)[:ndim] (a dim < 0 matches any size). */
static tdm_code get(tdm_weights *ws, const char *pre, const char *suf, tdm_tensor *out, int ndim, int64_t a,
                    int64_t b, int64_t c, int64_t d, tdm_status *st) {
    char name[512];
    int n = snprintf(name, sizeof name, "%s%s", pre, suf);
    if (n < 0 || (size_t)n >= sizeof name) return tdm_fail(st, TDM_ERR_INTERNAL, "unet: tensor name too long");
    int64_t shape[4] = {a, b, c, d};
    return tdm_weights_get(ws, name, ndim, shape, out, st);
}

/* A [cout, cin] matrix stored as a 1x1 conv [cout, cin, 1, 1] or a Linear [cout, cin]: viewed as 2-D. */
static tdm_code get_proj(tdm_weights *ws, const char *pre, const char *suf, int linear, int64_t cout, int64_t cin,
                         tdm_tensor *out, tdm_status *st) {
    if (linear) return get(ws, pre, suf, out, 2, cout, cin, 0, 0, st);
    TDM_TRY(get(ws, pre, suf, out, 4, cout, cin, 1, 1, st));
    *out = tdm_tensor_view(out->dtype, out->data, 2, (int64_t[]){cout, cin});
    return TDM_OK;
}

static tdm_code load_resnet(tdm_weights *ws, const char *pre, int cin, int cout, int temb, unet_resnet *r,
                            tdm_status *st) {
    r->cin = cin;
    r->cout = cout;
    TDM_TRY(get(ws, pre, "norm1.weight", &r->norm1_w, 1, cin, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm1.bias", &r->norm1_b, 1, cin, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "conv1.weight", &r->conv1_w, 4, cout, cin, 3, 3, st));
    TDM_TRY(get(ws, pre, "conv1.bias", &r->conv1_b, 1, cout, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "time_emb_proj.weight", &r->temb_w, 2, cout, temb, 0, 0, st));
    TDM_TRY(get(ws, pre, "time_emb_proj.bias", &r->temb_b, 1, cout, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm2.weight", &r->norm2_w, 1, cout, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm2.bias", &r->norm2_b, 1, cout, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "conv2.weight", &r->conv2_w, 4, cout, cout, 3, 3, st));
    TDM_TRY(get(ws, pre, "conv2.bias", &r->conv2_b, 1, cout, 0, 0, 0, st));
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) {
        TDM_TRY(get_proj(ws, pre, "conv_shortcut.weight", 0, cout, cin, &r->short_w, st));
        TDM_TRY(get(ws, pre, "conv_shortcut.bias", &r->short_b, 1, cout, 0, 0, 0, st));
    }
    return TDM_OK;
}

static tdm_code load_tblock(tdm_weights *ws, const char *pre, int C, int ctx, unet_tblock *b, tdm_status *st) {
    TDM_TRY(get(ws, pre, "norm1.weight", &b->norm1_w, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm1.bias", &b->norm1_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm2.weight", &b->norm2_w, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm2.bias", &b->norm2_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm3.weight", &b->norm3_w, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm3.bias", &b->norm3_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn1.to_q.weight", &b->q1, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn1.to_k.weight", &b->k1, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn1.to_v.weight", &b->v1, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn1.to_out.0.weight", &b->o1_w, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn1.to_out.0.bias", &b->o1_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn2.to_q.weight", &b->q2, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn2.to_k.weight", &b->k2, 2, C, ctx, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn2.to_v.weight", &b->v2, 2, C, ctx, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn2.to_out.0.weight", &b->o2_w, 2, C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "attn2.to_out.0.bias", &b->o2_b, 1, C, 0, 0, 0, st));
    /* FeedForward(dim, mult 4, geglu): GEGLU proj C -> 2 * 4C, then Linear 4C -> C */
    TDM_TRY(get(ws, pre, "ff.net.0.proj.weight", &b->ff1_w, 2, 8L * C, C, 0, 0, st));
    TDM_TRY(get(ws, pre, "ff.net.0.proj.bias", &b->ff1_b, 1, 8L * C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "ff.net.2.weight", &b->ff2_w, 2, C, 4L * C, 0, 0, st));
    TDM_TRY(get(ws, pre, "ff.net.2.bias", &b->ff2_b, 1, C, 0, 0, 0, st));
    return TDM_OK;
}

static tdm_code load_transformer(tdm_weights *ws, const char *pre, const tdm_unet_config *cfg, int C, int heads,
                                 int n_layers, unet_transformer *t, tdm_status *st) {
    t->C = C;
    t->heads = heads;
    t->n_layers = n_layers;
    t->blocks = calloc((size_t)n_layers, sizeof *t->blocks);
    if (!t->blocks) return tdm_fail(st, TDM_ERR_NOMEM, "unet: out of memory");
    int lin = cfg->use_linear_projection;
    TDM_TRY(get(ws, pre, "norm.weight", &t->norm_w, 1, C, 0, 0, 0, st));
    TDM_TRY(get(ws, pre, "norm.bias", &t->norm_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get_proj(ws, pre, "proj_in.weight", lin, C, C, &t->proj_in_w, st));
    TDM_TRY(get(ws, pre, "proj_in.bias", &t->proj_in_b, 1, C, 0, 0, 0, st));
    TDM_TRY(get_proj(ws, pre, "proj_out.weight", lin, C, C, &t->proj_out_w, st));
    TDM_TRY(get(ws, pre, "proj_out.bias", &t->proj_out_b, 1, C, 0, 0, 0, st));
    for (int i = 0; i < n_layers; i++) {
        char p[256];
        snprintf(p, sizeof p, "%stransformer_blocks.%d.", pre, i);
        TDM_TRY(load_tblock(ws, p, C, cfg->cross_attention_dim, &t->blocks[i], st));
    }
    return TDM_OK;
}

static void free_level(unet_level *l) {
    if (!l->attns) return;
    for (int j = 0; j < l->n_layers; j++) free(l->attns[j].blocks);
    free(l->attns);
    l->attns = NULL;
}

void tdm_unet_free(tdm_unet *u) {
    if (!u) return;
    for (int i = 0; i < TDM_UNET_MAX_LEVELS; i++) {
        free_level(&u->down[i]);
        free_level(&u->up[i]);
    }
    free(u->mid_attn.blocks);
    tdm_weights_free(&u->ws);
    free(u);
}

const tdm_unet_config *tdm_unet_get_config(const tdm_unet *u) { return &u->cfg; }

int tdm_unet_n_skips(const tdm_unet *u) {
    return 1 + u->cfg.n_levels * u->cfg.layers_per_block + u->cfg.n_levels - 1;
}

static tdm_code build(tdm_unet *u, tdm_status *st) {
    const tdm_unet_config *c = &u->cfg;
    tdm_weights *ws = &u->ws;
    const int L = c->n_levels, lpb = c->layers_per_block, T = c->time_embed_dim, C0 = c->block_out_channels[0];
    char p[256];

    TDM_TRY(get(ws, "", "conv_in.weight", &u->conv_in_w, 4, C0, c->in_channels, 3, 3, st));
    TDM_TRY(get(ws, "", "conv_in.bias", &u->conv_in_b, 1, C0, 0, 0, 0, st));
    TDM_TRY(get(ws, "", "time_embedding.linear_1.weight", &u->t_lin1_w, 2, T, C0, 0, 0, st));
    TDM_TRY(get(ws, "", "time_embedding.linear_1.bias", &u->t_lin1_b, 1, T, 0, 0, 0, st));
    TDM_TRY(get(ws, "", "time_embedding.linear_2.weight", &u->t_lin2_w, 2, T, T, 0, 0, st));
    TDM_TRY(get(ws, "", "time_embedding.linear_2.bias", &u->t_lin2_b, 1, T, 0, 0, 0, st));
    if (c->time_cond_proj_dim)
        TDM_TRY(get(ws, "", "time_embedding.cond_proj.weight", &u->t_cond_w, 2, C0, c->time_cond_proj_dim, 0, 0, st));
    if (c->addition_text_time) {
        int P = c->projection_class_embeddings_input_dim;
        TDM_TRY(get(ws, "", "add_embedding.linear_1.weight", &u->a_lin1_w, 2, T, P, 0, 0, st));
        TDM_TRY(get(ws, "", "add_embedding.linear_1.bias", &u->a_lin1_b, 1, T, 0, 0, 0, st));
        TDM_TRY(get(ws, "", "add_embedding.linear_2.weight", &u->a_lin2_w, 2, T, T, 0, 0, st));
        TDM_TRY(get(ws, "", "add_embedding.linear_2.bias", &u->a_lin2_b, 1, T, 0, 0, 0, st));
    }

    /* down blocks */
    int out_ch = C0;
    for (int i = 0; i < L; i++) {
        unet_level *l = &u->down[i];
        int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        l->n_layers = lpb;
        if (c->down_attn[i]) {
            l->attns = calloc((size_t)lpb, sizeof *l->attns);
            if (!l->attns) return tdm_fail(st, TDM_ERR_NOMEM, "unet: out of memory");
        }
        for (int j = 0; j < lpb; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d.", i, j);
            TDM_TRY(load_resnet(ws, p, j == 0 ? in_ch : out_ch, out_ch, T, &l->resnets[j], st));
            if (l->attns) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d.", i, j);
                TDM_TRY(load_transformer(ws, p, c, out_ch, c->num_heads[i], c->transformer_layers[i], &l->attns[j],
                                         st));
            }
        }
        l->has_sample = i < L - 1;
        if (l->has_sample) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv.", i);
            TDM_TRY(get(ws, p, "weight", &l->sample_w, 4, out_ch, out_ch, 3, 3, st));
            TDM_TRY(get(ws, p, "bias", &l->sample_b, 1, out_ch, 0, 0, 0, st));
        }
    }

    /* mid block: resnet, transformer, resnet on the widest level */
    const int CL = c->block_out_channels[L - 1];
    TDM_TRY(load_resnet(ws, "mid_block.resnets.0.", CL, CL, T, &u->mid_res[0], st));
    TDM_TRY(load_transformer(ws, "mid_block.attentions.0.", c, CL, c->num_heads[L - 1], c->transformer_layers[L - 1],
                             &u->mid_attn, st));
    TDM_TRY(load_resnet(ws, "mid_block.resnets.1.", CL, CL, T, &u->mid_res[1], st));

    /* up blocks (diffusers order: widest first); resnet j takes cat(h, skip) */
    int prev_out = CL;
    for (int i = 0; i < L; i++) {
        unet_level *l = &u->up[i];
        int o = c->block_out_channels[L - 1 - i];
        int in_ch = c->block_out_channels[L - 1 - (i + 1 < L ? i + 1 : L - 1)];
        l->n_layers = lpb + 1;
        if (c->up_attn[i]) {
            l->attns = calloc((size_t)(lpb + 1), sizeof *l->attns);
            if (!l->attns) return tdm_fail(st, TDM_ERR_NOMEM, "unet: out of memory");
        }
        for (int j = 0; j <= lpb; j++) {
            int skip = j == lpb ? in_ch : o;
            int rin = j == 0 ? prev_out : o;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d.", i, j);
            TDM_TRY(load_resnet(ws, p, rin + skip, o, T, &l->resnets[j], st));
            if (l->attns) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d.", i, j);
                TDM_TRY(load_transformer(ws, p, c, o, c->num_heads[L - 1 - i], c->transformer_layers_up[i],
                                         &l->attns[j], st));
            }
        }
        l->has_sample = i < L - 1;
        if (l->has_sample) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv.", i);
            TDM_TRY(get(ws, p, "weight", &l->sample_w, 4, o, o, 3, 3, st));
            TDM_TRY(get(ws, p, "bias", &l->sample_b, 1, o, 0, 0, 0, st));
        }
        prev_out = o;
    }

    TDM_TRY(get(ws, "", "conv_norm_out.weight", &u->norm_out_w, 1, C0, 0, 0, 0, st));
    TDM_TRY(get(ws, "", "conv_norm_out.bias", &u->norm_out_b, 1, C0, 0, 0, 0, st));
    TDM_TRY(get(ws, "", "conv_out.weight", &u->conv_out_w, 4, c->out_channels, C0, 3, 3, st));
    TDM_TRY(get(ws, "", "conv_out.bias", &u->conv_out_b, 1, c->out_channels, 0, 0, 0, st));
    return tdm_weights_check_unused(ws, st);
}

tdm_code tdm_unet_load(tdm_unet **out, const tdm_unet_config *cfg, tdm_weights *ws, tdm_status *st) {
    *out = NULL;
    tdm_unet *u = calloc(1, sizeof *u);
    if (!u) {
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "unet: out of memory");
    }
    u->ws = *ws; /* ownership moves in */
    memset(ws, 0, sizeof *ws);
    u->cfg = *cfg;
    tdm_code rc = tdm_unet_config_validate(cfg, "unet config", st);
    if (!rc) rc = build(u, st);
    if (rc) {
        tdm_unet_free(u);
        return rc;
    }
    *out = u;
    return TDM_OK;
}

/* ---- Loaders shared with the ControlNet (declared in unet_internal.h) --------------------------- */

tdm_code tdm_unet_load_resnet(tdm_weights *ws, const char *prefix, int cin, int cout, int temb, unet_resnet *r,
                              tdm_status *st) {
    return load_resnet(ws, prefix, cin, cout, temb, r, st);
}

tdm_code tdm_unet_load_transformer(tdm_weights *ws, const char *prefix, const tdm_unet_config *cfg, int C, int heads,
                                   int n_layers, unet_transformer *t, tdm_status *st) {
    return load_transformer(ws, prefix, cfg, C, heads, n_layers, t, st);
}
