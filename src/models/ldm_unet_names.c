/* Single-file (original LDM / CompVis) UNet names -> diffusers names, and config inference from them.
 * Layout of the LDM UNetModel (k = layers_per_block + 1):
 *   input_blocks.0.0            conv_in
 *   input_blocks.{k*i+j+1}.0    down level i resnet j (j < layers_per_block); .1 its transformer
 *   input_blocks.{k*(i+1)}.0.op down level i downsampler (not on the last level)
 *   middle_block.0 / .1 / .2    mid resnet 0 / transformer / resnet 1
 *   output_blocks.{k*i+j}.0     up block i (diffusers order) resnet j (j <= layers_per_block); .1 transformer;
 *                               the upsampler follows in the last layer: .1 (no attention) or .2
 *   time_embed.0/.2, label_emb.0.0/.0.2 (SDXL), out.0 (norm), out.2 (conv)
 * Resnet parts: in_layers.0 norm1, in_layers.2 conv1, emb_layers.1 time_emb_proj, out_layers.0 norm2,
 * out_layers.3 conv2, skip_connection conv_shortcut. Transformer parts keep their names.
 * (diffusers scripts/convert_diffusers_to_original_stable_diffusion.py and _sdxl.py tables.) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"

static const char *const resnet_map[][2] = {
    {"in_layers.0.", "norm1."},          {"in_layers.2.", "conv1."},  {"emb_layers.1.", "time_emb_proj."},
    {"out_layers.0.", "norm2."},         {"out_layers.3.", "conv2."}, {"skip_connection.", "conv_shortcut."},
};

/* "<int>." at *s: value and advance; -1 when absent. */
static long take_index(const char **s) {
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000) return -1;
        p++;
    }
    if (*p != '.') return -1;
    *s = p + 1;
    return v;
}

static int starts(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

static tdm_code emit(tdm_weights *ws, const tdm_tensor *t, tdm_status *st, const char *fmt, ...)
    TDM_PRINTF(4, 5);
static tdm_code emit(tdm_weights *ws, const tdm_tensor *t, tdm_status *st, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) return tdm_fail(st, TDM_ERR_FORMAT, "unet: tensor name too long");
    return tdm_weights_emit(ws, buf, t, st);
}

static tdm_code emit_resnet(tdm_weights *ws, const tdm_tensor *t, tdm_status *st, const char *pre, const char *rest,
                            const char *orig) {
    for (size_t i = 0; i < sizeof resnet_map / sizeof resnet_map[0]; i++)
        if (starts(rest, resnet_map[i][0])) return emit(ws, t, st, "%s%s%s", pre, resnet_map[i][1], rest + strlen(resnet_map[i][0]));
    return tdm_weights_emit(ws, orig, t, st); /* unknown part: kept, reported as unexpected by name */
}

tdm_code tdm_unet_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st) {
    const tdm_unet_config *c = ctx;
    const long k = c->layers_per_block + 1, L = c->n_levels;
    static const char *const simple[][2] = {
        {"time_embed.0.", "time_embedding.linear_1."}, {"time_embed.2.", "time_embedding.linear_2."},
        {"label_emb.0.0.", "add_embedding.linear_1."}, {"label_emb.0.2.", "add_embedding.linear_2."},
        {"input_blocks.0.0.", "conv_in."},             {"out.0.", "conv_norm_out."},
        {"out.2.", "conv_out."},
        /* LCM: no standard LDM name exists for cond_proj; accept the diffusers-style ones */
        {"time_embed.cond_proj.", "time_embedding.cond_proj."}, {"time_embedding.cond_proj.", "time_embedding.cond_proj."},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (starts(name, simple[i][0])) return emit(ws, t, st, "%s%s", simple[i][1], name + strlen(simple[i][0]));

    const char *s = name;
    if (starts(s, "input_blocks.")) {
        s += strlen("input_blocks.");
        long n = take_index(&s), part = take_index(&s);
        if (n >= 1 && part >= 0) {
            if (n % k == 0) { /* downsampler of level n/k - 1 */
                long i = n / k - 1;
                if (i < L - 1 && part == 0 && starts(s, "op."))
                    return emit(ws, t, st, "down_blocks.%ld.downsamplers.0.conv.%s", i, s + 3);
            } else {
                long i = (n - 1) / k, j = (n - 1) % k;
                if (i < L && part == 0) {
                    char pre[128];
                    snprintf(pre, sizeof pre, "down_blocks.%ld.resnets.%ld.", i, j);
                    return emit_resnet(ws, t, st, pre, s, name);
                }
                if (i < L && part == 1 && c->down_attn[i])
                    return emit(ws, t, st, "down_blocks.%ld.attentions.%ld.%s", i, j, s);
            }
        }
    } else if (starts(s, "middle_block.")) {
        s += strlen("middle_block.");
        long part = take_index(&s);
        if (part == 0 || part == 2) {
            char pre[64];
            snprintf(pre, sizeof pre, "mid_block.resnets.%ld.", part / 2);
            return emit_resnet(ws, t, st, pre, s, name);
        }
        if (part == 1) return emit(ws, t, st, "mid_block.attentions.0.%s", s);
    } else if (starts(s, "output_blocks.")) {
        s += strlen("output_blocks.");
        long n = take_index(&s), part = take_index(&s);
        long i = n >= 0 ? n / k : 0, j = n >= 0 ? n % k : 0;
        if (n >= 0 && i < L && part >= 0) {
            int attn = c->up_attn[i];
            if (part == 0) {
                char pre[128];
                snprintf(pre, sizeof pre, "up_blocks.%ld.resnets.%ld.", i, j);
                return emit_resnet(ws, t, st, pre, s, name);
            }
            if (part == 1 && attn) return emit(ws, t, st, "up_blocks.%ld.attentions.%ld.%s", i, j, s);
            if (part == 1 + attn && j == k - 1 && i < L - 1 && starts(s, "conv."))
                return emit(ws, t, st, "up_blocks.%ld.upsamplers.0.%s", i, s);
        }
    }
    return tdm_weights_emit(ws, name, t, st); /* no diffusers equivalent: reported as unexpected */
}

/* ---- config inference --------------------------------------------------------------------------- */

static const tdm_st_entry *find(const tdm_safetensors *f, const char *prefix, const char *fmt, ...)
    TDM_PRINTF(3, 4);
static const tdm_st_entry *find(const tdm_safetensors *f, const char *prefix, const char *fmt, ...) {
    char rest[384], full[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", prefix, rest);
    return tdm_st_find(f, full);
}

/* Highest <n> over names prefix + block + "<n>." (-1 if none). */
static long max_index(const tdm_safetensors *f, const char *prefix, const char *block) {
    char pre[256];
    snprintf(pre, sizeof pre, "%s%s", prefix, block);
    size_t pl = strlen(pre);
    long mx = -1;
    for (int i = 0; i < f->n_entries; i++) {
        if (strncmp(f->entries[i].name, pre, pl) != 0) continue;
        const char *s = f->entries[i].name + pl;
        long v = take_index(&s);
        if (v > mx) mx = v;
    }
    return mx;
}

static int count_tblocks(const tdm_safetensors *f, const char *prefix, const char *block) {
    int n = 0;
    while (n < TDM_UNET_MAX_TRANSFORMER && find(f, prefix, "%s.transformer_blocks.%d.norm1.weight", block, n)) n++;
    return n;
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

tdm_code tdm_unet_config_infer(const tdm_safetensors *f, const char *prefix, tdm_unet_config *cfg, tdm_status *st) {
    memset(cfg, 0, sizeof *cfg);
    const char *path = f->path ? f->path : "single file";
    const tdm_st_entry *e = find(f, prefix, "input_blocks.0.0.weight");
    if (!e || e->ndim != 4)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: no UNet tensor '%sinput_blocks.0.0.weight' (4-D)", path, prefix);
    const int C0 = (int)e->shape[0];
    cfg->in_channels = (int)e->shape[1];
    e = find(f, prefix, "out.2.weight");
    if (!e || e->ndim != 4) return tdm_fail(st, TDM_ERR_FORMAT, "%s: no UNet tensor '%sout.2.weight'", path, prefix);
    cfg->out_channels = (int)e->shape[0];
    e = find(f, prefix, "time_embed.0.weight");
    if (!e || e->ndim != 2) return tdm_fail(st, TDM_ERR_FORMAT, "%s: no UNet tensor '%stime_embed.0.weight'", path, prefix);
    cfg->time_embed_dim = (int)e->shape[0];
    if (e->shape[1] != C0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: time_embed.0.weight takes %lld inputs, conv_in gives %d channels", path,
                        (long long)e->shape[1], C0);

    long max_in = max_index(f, prefix, "input_blocks."), max_out = max_index(f, prefix, "output_blocks.");
    long k = -1;
    for (long n = 1; n <= max_in && k < 0; n++)
        if (find(f, prefix, "input_blocks.%ld.0.op.weight", n)) k = n;
    if (k < 0) k = max_in + 1; /* one level: no downsampler */
    if (k < 2 || (max_in + 1) % k)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: cannot infer layers_per_block from %ld input blocks", path, max_in + 1);
    const int L = (int)((max_in + 1) / k);
    if (L > TDM_UNET_MAX_LEVELS || k - 1 > TDM_UNET_MAX_LAYERS)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: %d levels x %ld layers is not supported", path, L, k - 1);
    if (max_out + 1 != L * k)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: %ld output blocks, expected %ld for %d levels", path, max_out + 1,
                        L * k, L);
    cfg->n_levels = L;
    cfg->layers_per_block = (int)(k - 1);

    const tdm_st_entry *proj = NULL, *tok = NULL;
    char blk[64];
    for (int i = 0; i < L; i++) {
        e = find(f, prefix, "input_blocks.%ld.0.in_layers.2.weight", k * i + 1);
        if (!e || e->ndim != 4) return tdm_fail(st, TDM_ERR_FORMAT, "%s: missing input_blocks.%ld.0 resnet", path, k * i + 1);
        cfg->block_out_channels[i] = (int)e->shape[0];
        snprintf(blk, sizeof blk, "input_blocks.%ld.1", k * i + 1);
        const tdm_st_entry *pe = find(f, prefix, "%s.proj_in.weight", blk);
        cfg->down_attn[i] = pe != NULL;
        cfg->transformer_layers[i] = pe ? count_tblocks(f, prefix, blk) : 1;
        if (pe && !proj) {
            proj = pe;
            tok = find(f, prefix, "%s.transformer_blocks.0.attn2.to_k.weight", blk);
        }
        snprintf(blk, sizeof blk, "output_blocks.%ld.1", k * i);
        pe = find(f, prefix, "%s.proj_in.weight", blk);
        cfg->up_attn[i] = pe != NULL;
        cfg->transformer_layers_up[i] = pe ? count_tblocks(f, prefix, blk) : -1;
    }
    const tdm_st_entry *mid = find(f, prefix, "middle_block.1.proj_in.weight");
    if (!mid) return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: the mid block has no transformer (not supported)", path);
    int mid_layers = count_tblocks(f, prefix, "middle_block.1");
    if (!cfg->down_attn[L - 1]) cfg->transformer_layers[L - 1] = mid_layers;
    else if (cfg->transformer_layers[L - 1] != mid_layers)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: mid block depth %d differs from the last level's %d", path,
                        mid_layers, cfg->transformer_layers[L - 1]);
    for (int i = 0; i < L; i++)
        if (cfg->transformer_layers_up[i] < 0) cfg->transformer_layers_up[i] = cfg->transformer_layers[L - 1 - i];
    cfg->mid_attn = 1;
    if (!proj) {
        proj = mid;
        tok = find(f, prefix, "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
    }
    if (!tok || tok->ndim != 2) return tdm_fail(st, TDM_ERR_FORMAT, "%s: missing attn2.to_k weight", path);
    cfg->cross_attention_dim = (int)tok->shape[1];
    cfg->use_linear_projection = proj->ndim == 2;
    /* heuristic: SD1.x 8 heads; SD2.x / SDXL (linear proj) head dim 64 */
    for (int i = 0; i < L; i++) {
        int ch = cfg->block_out_channels[i];
        cfg->num_heads[i] = cfg->use_linear_projection && ch % 64 == 0 ? ch / 64 : 8;
    }
    e = find(f, prefix, "time_embed.cond_proj.weight");
    if (!e) e = find(f, prefix, "time_embedding.cond_proj.weight");
    if (e && e->ndim == 2) cfg->time_cond_proj_dim = (int)e->shape[1];
    e = find(f, prefix, "label_emb.0.0.weight");
    cfg->sample_size = 64;
    if (e && e->ndim == 2) {
        cfg->addition_text_time = 1;
        /* 256 per id in SDXL base / refiner (6 or 5 ids + pooled 1280 / 1280); smaller (test) models:
         * any even width leaving room for the pooled embedding (not determinable from the tensors) */
        cfg->addition_time_embed_dim = e->shape[1] > 6 * 256 ? 256 : (int)(e->shape[1] / 14) * 2;
        if (cfg->addition_time_embed_dim < 2) cfg->addition_time_embed_dim = 2;
        cfg->projection_class_embeddings_input_dim = (int)e->shape[1];
        cfg->sample_size = 128;
    }
    /* 32 groups in every released model; tiny test models: the largest divisor of all widths up to 32 */
    int g = 0;
    for (int i = 0; i < L; i++) g = gcd(g, cfg->block_out_channels[i]);
    cfg->norm_num_groups = g % 32 == 0 ? 32 : gcd(g, 32);
    cfg->norm_eps = 1e-5f;
    cfg->flip_sin_to_cos = 1;
    cfg->freq_shift = 0;
    return tdm_unet_config_validate(cfg, path, st);
}
