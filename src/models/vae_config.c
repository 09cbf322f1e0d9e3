/* AutoencoderKL configuration: config.json reading, validation, inference from an LDM single file,
 * and the LDM -> diffusers name mapper (diffusers v0.27.2 single_file_utils.convert_ldm_vae_checkpoint /
 * scripts/convert_diffusers_to_original_stable_diffusion.py vae_conversion_map, in reverse). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/vae.h"

void tdm_vae_config_default(tdm_vae_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->in_channels = 3;
    cfg->out_channels = 3;
    cfg->latent_channels = 4;
    cfg->n_levels = 4;
    const int bo[4] = {128, 256, 512, 512};
    for (int i = 0; i < 4; i++) cfg->block_out_channels[i] = bo[i];
    cfg->layers_per_block = 2;
    cfg->norm_num_groups = 32;
    cfg->scaling_factor = 0.18215;
    cfg->sample_size = 512;
    cfg->mid_block_add_attention = 1;
    cfg->use_quant_conv = 1;
    cfg->use_post_quant_conv = 1;
}

int tdm_vae_latent_scale(const tdm_vae_config *cfg) {
    return cfg->n_levels >= 1 && cfg->n_levels <= TDM_VAE_MAX_LEVELS ? 1 << (cfg->n_levels - 1) : 1;
}

/* Every entry of a string array field (when present) must equal `want`; its length must be n. */
static tdm_code check_block_types(const cJSON *obj, const char *key, const char *what, const char *want, int n,
                                  tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return TDM_OK;
    if (!cJSON_IsArray(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be an array of strings", what, key);
    if (cJSON_GetArraySize(v) != n)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' has %d entries but block_out_channels has %d", what, key,
                        cJSON_GetArraySize(v), n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want) != 0)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s'[%d] = %s is not supported (only %s)", what, key, i,
                            cJSON_IsString(e) ? e->valuestring : "(not a string)", want);
        i++;
    }
    return TDM_OK;
}

tdm_code tdm_vae_config_from_json(const cJSON *obj, const char *what, tdm_vae_config *cfg, tdm_status *st) {
    tdm_vae_config c;
    memset(&c, 0, sizeof c);
    long v;
    /* defaults: diffusers AutoencoderKL.__init__ */
    TDM_TRY(tdm_json_int(obj, "in_channels", what, 1, 3, 1, 64, &v, st));
    c.in_channels = (int)v;
    TDM_TRY(tdm_json_int(obj, "out_channels", what, 1, 3, 1, 64, &v, st));
    c.out_channels = (int)v;
    TDM_TRY(tdm_json_int(obj, "latent_channels", what, 1, 4, 1, 1024, &v, st));
    c.latent_channels = (int)v;
    long bo[TDM_VAE_MAX_LEVELS];
    TDM_TRY(tdm_json_int_array(obj, "block_out_channels", what, 0, 1, 65536, bo, TDM_VAE_MAX_LEVELS, &c.n_levels, st));
    for (int i = 0; i < c.n_levels; i++) c.block_out_channels[i] = (int)bo[i];
    TDM_TRY(tdm_json_int(obj, "layers_per_block", what, 1, 1, 1, TDM_VAE_MAX_LAYERS, &v, st));
    c.layers_per_block = (int)v;
    TDM_TRY(tdm_json_int(obj, "norm_num_groups", what, 1, 32, 1, 65536, &v, st));
    c.norm_num_groups = (int)v;
    TDM_TRY(tdm_json_num(obj, "scaling_factor", what, 1, 0.18215, 1e-12, 1e12, &c.scaling_factor, st));
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(obj, "shift_factor");
    c.has_shift_factor = sf && !cJSON_IsNull(sf);
    TDM_TRY(tdm_json_num(obj, "shift_factor", what, 1, 0.0, -1e12, 1e12, &c.shift_factor, st));
    TDM_TRY(tdm_json_int(obj, "sample_size", what, 1, 32, 1, 1 << 20, &v, st));
    c.sample_size = (int)v;
    TDM_TRY(tdm_json_bool(obj, "mid_block_add_attention", what, 1, 1, &c.mid_block_add_attention, st));
    TDM_TRY(tdm_json_bool(obj, "use_quant_conv", what, 1, 1, &c.use_quant_conv, st));
    TDM_TRY(tdm_json_bool(obj, "use_post_quant_conv", what, 1, 1, &c.use_post_quant_conv, st));
    char act[64];
    TDM_TRY(tdm_json_str(obj, "act_fn", what, 1, "silu", act, sizeof act, st));
    if (strcmp(act, "silu") != 0)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field 'act_fn' = %s is not supported (only silu)", what, act);
    TDM_TRY(check_block_types(obj, "down_block_types", what, "DownEncoderBlock2D", c.n_levels, st));
    TDM_TRY(check_block_types(obj, "up_block_types", what, "UpDecoderBlock2D", c.n_levels, st));
    /* force_upcast, latents_mean, latents_std: not used (tandem computes in f32) */
    TDM_TRY(tdm_vae_config_validate(&c, what, st));
    *cfg = c;
    return TDM_OK;
}

tdm_code tdm_vae_config_load(const char *path, tdm_vae_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_vae_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}

tdm_code tdm_vae_config_validate(const tdm_vae_config *c, const char *what, tdm_status *st) {
    if (c->in_channels < 1 || c->in_channels > 64)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'in_channels' = %d is outside [1, 64]", what, c->in_channels);
    if (c->out_channels < 1 || c->out_channels > 64)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'out_channels' = %d is outside [1, 64]", what, c->out_channels);
    if (c->latent_channels < 1 || c->latent_channels > 1024)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'latent_channels' = %d is outside [1, 1024]", what,
                        c->latent_channels);
    if (c->n_levels < 1 || c->n_levels > TDM_VAE_MAX_LEVELS)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'block_out_channels' has %d entries (expected 1..%d)", what,
                        c->n_levels, TDM_VAE_MAX_LEVELS);
    if (c->layers_per_block < 1 || c->layers_per_block > TDM_VAE_MAX_LAYERS)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'layers_per_block' = %d is outside [1, %d]", what,
                        c->layers_per_block, TDM_VAE_MAX_LAYERS);
    if (c->norm_num_groups < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'norm_num_groups' = %d must be positive", what,
                        c->norm_num_groups);
    for (int i = 0; i < c->n_levels; i++) {
        int ch = c->block_out_channels[i];
        if (ch < 1 || ch > 65536)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'block_out_channels'[%d] = %d is outside [1, 65536]", what,
                            i, ch);
        if (ch % c->norm_num_groups != 0)
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: field 'block_out_channels'[%d] = %d is not divisible by norm_num_groups = %d", what, i,
                            ch, c->norm_num_groups);
    }
    if (!(c->scaling_factor > 0))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'scaling_factor' = %g must be positive", what,
                        c->scaling_factor);
    return TDM_OK;
}

/* ---- inference from an LDM single file ------------------------------------------------------- */

static tdm_code need(const tdm_safetensors *f, const char *prefix, const char *name, int ndim,
                     const tdm_st_entry **out, tdm_status *st) {
    *out = tdm_st_find_prefixed(f, prefix, name);
    if (!*out)
        return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%s%s' is missing (not an LDM VAE checkpoint?)", f->path,
                        prefix, name);
    if ((*out)->ndim != ndim)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s%s' has %d dims, expected %d", f->path, prefix, name,
                        (*out)->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        if ((*out)->shape[i] < 1 || (*out)->shape[i] > 65536)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s%s' has an implausible shape", f->path, prefix, name);
    return TDM_OK;
}

tdm_code tdm_vae_config_infer(const tdm_safetensors *f, const char *prefix, tdm_vae_config *cfg, tdm_status *st) {
    if (!prefix) prefix = "";
    tdm_vae_config c;
    tdm_vae_config_default(&c);
    /* not inferable from shapes: keep the caller's values when set */
    if (cfg->norm_num_groups > 0) c.norm_num_groups = cfg->norm_num_groups;
    if (cfg->scaling_factor > 0) c.scaling_factor = cfg->scaling_factor;
    c.has_shift_factor = cfg->has_shift_factor;
    c.shift_factor = cfg->shift_factor;
    if (cfg->sample_size > 0) c.sample_size = cfg->sample_size;

    const tdm_st_entry *e;
    TDM_TRY(need(f, prefix, "encoder.conv_in.weight", 4, &e, st));
    c.in_channels = (int)e->shape[1];
    TDM_TRY(need(f, prefix, "decoder.conv_out.weight", 4, &e, st));
    c.out_channels = (int)e->shape[0];
    TDM_TRY(need(f, prefix, "decoder.conv_in.weight", 4, &e, st));
    c.latent_channels = (int)e->shape[1];
    int n = 0;
    char name[256];
    for (;;) {
        snprintf(name, sizeof name, "encoder.down.%d.block.0.conv1.weight", n);
        if (!tdm_st_find_prefixed(f, prefix, name)) break;
        if (n == TDM_VAE_MAX_LEVELS)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than %d encoder levels", f->path, TDM_VAE_MAX_LEVELS);
        TDM_TRY(need(f, prefix, name, 4, &e, st));
        c.block_out_channels[n] = (int)e->shape[0];
        n++;
    }
    if (n == 0)
        return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%sencoder.down.0.block.0.conv1.weight' is missing", f->path,
                        prefix);
    c.n_levels = n;
    int layers = 0;
    for (;;) {
        snprintf(name, sizeof name, "encoder.down.0.block.%d.conv1.weight", layers);
        if (!tdm_st_find_prefixed(f, prefix, name)) break;
        if (++layers > TDM_VAE_MAX_LAYERS)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than %d resnets per encoder level", f->path,
                            TDM_VAE_MAX_LAYERS);
    }
    c.layers_per_block = layers;
    c.mid_block_add_attention = tdm_st_find_prefixed(f, prefix, "encoder.mid.attn_1.q.weight") != NULL;
    c.use_quant_conv = tdm_st_find_prefixed(f, prefix, "quant_conv.weight") != NULL;
    c.use_post_quant_conv = tdm_st_find_prefixed(f, prefix, "post_quant_conv.weight") != NULL;
    TDM_TRY(tdm_vae_config_validate(&c, f->path, st));
    *cfg = c;
    return TDM_OK;
}

/* ---- LDM name mapper ------------------------------------------------------------------------- */

/* Parses "<int>." at *p, advancing past it; -1 when absent. */
static int take_index(const char **p) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return -1;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > 1000000) return -1;
        s++;
    }
    if (*s != '.') return -1;
    *p = s + 1;
    return (int)v;
}

static int starts(const char **p, const char *pre) {
    size_t n = strlen(pre);
    if (strncmp(*p, pre, n) != 0) return 0;
    *p += n;
    return 1;
}

/* Resnet tail: norm1/conv1/norm2/conv2 keep their names; nin_shortcut -> conv_shortcut. */
static int resnet_tail(const char *rest, char *out, size_t n) {
    if (strncmp(rest, "nin_shortcut.", 13) == 0) snprintf(out, n, "conv_shortcut.%s", rest + 13);
    else if (!strncmp(rest, "norm1.", 6) || !strncmp(rest, "norm2.", 6) || !strncmp(rest, "conv1.", 6) ||
             !strncmp(rest, "conv2.", 6))
        snprintf(out, n, "%s", rest);
    else return 0;
    return 1;
}

/* mid.{block_1, block_2, attn_1.*} of encoder or decoder (p after "mid."). view: 1 when a 1x1 conv
 * kernel must become a Linear weight. */
static int map_mid(const char *p, const char *half, char *out, size_t n, int *to_linear) {
    char tail[256];
    if (starts(&p, "block_1.")) {
        if (!resnet_tail(p, tail, sizeof tail)) return 0;
        snprintf(out, n, "%s.mid_block.resnets.0.%s", half, tail);
        return 1;
    }
    if (starts(&p, "block_2.")) {
        if (!resnet_tail(p, tail, sizeof tail)) return 0;
        snprintf(out, n, "%s.mid_block.resnets.1.%s", half, tail);
        return 1;
    }
    if (starts(&p, "attn_1.")) {
        static const struct {
            const char *ldm, *diffusers;
        } m[] = {{"norm.", "group_norm."}, {"q.", "to_q."},           {"k.", "to_k."},
                 {"v.", "to_v."},          {"proj_out.", "to_out.0."}};
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (starts(&p, m[i].ldm)) {
                if (strcmp(p, "weight") && strcmp(p, "bias")) return 0;
                snprintf(out, n, "%s.mid_block.attentions.0.%s%s", half, m[i].diffusers, p);
                *to_linear = i > 0 && strcmp(p, "weight") == 0;
                return 1;
            }
    }
    return 0;
}

tdm_code tdm_vae_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st) {
    const tdm_vae_config *cfg = ctx;
    if (!cfg) return tdm_fail(st, TDM_ERR_INTERNAL, "tdm_vae_ldm_mapper: no config");
    char out[512], tail[256];
    int to_linear = 0, ok = 0;
    const char *p = name;
    if (!strcmp(p, "quant_conv.weight") || !strcmp(p, "quant_conv.bias") || !strcmp(p, "post_quant_conv.weight") ||
        !strcmp(p, "post_quant_conv.bias")) {
        snprintf(out, sizeof out, "%s", p);
        ok = 1;
    } else if (starts(&p, "encoder.") || starts(&p, "decoder.")) {
        const char *half = name[0] == 'e' ? "encoder" : "decoder";
        int enc = name[0] == 'e';
        if (starts(&p, "mid.")) {
            ok = map_mid(p, half, out, sizeof out, &to_linear);
        } else if (starts(&p, "norm_out.")) {
            snprintf(out, sizeof out, "%s.conv_norm_out.%s", half, p);
            ok = 1;
        } else if (starts(&p, "conv_in.") || starts(&p, "conv_out.")) {
            snprintf(out, sizeof out, "%s.%s", half, name + 8);
            ok = 1;
        } else if (starts(&p, enc ? "down." : "up.")) {
            int lv = take_index(&p);
            if (lv >= 0 && lv < cfg->n_levels) {
                int dl = enc ? lv : cfg->n_levels - 1 - lv; /* decoder.up.N = up_blocks.(levels-1-N) */
                const char *blocks = enc ? "down_blocks" : "up_blocks";
                if (starts(&p, "block.")) {
                    int r = take_index(&p);
                    if (r >= 0 && resnet_tail(p, tail, sizeof tail)) {
                        snprintf(out, sizeof out, "%s.%s.%d.resnets.%d.%s", half, blocks, dl, r, tail);
                        ok = 1;
                    }
                } else if (starts(&p, enc ? "downsample.conv." : "upsample.conv.")) {
                    snprintf(out, sizeof out, "%s.%s.%d.%s.0.conv.%s", half, blocks, dl,
                             enc ? "downsamplers" : "upsamplers", p);
                    ok = 1;
                }
            }
        }
    }
    if (!ok)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: %s: tensor '%s' is not a known LDM VAE tensor", ws->what,
                        ws->cur_file ? ws->cur_file : "?", ws->cur_name ? ws->cur_name : name);
    if (to_linear) {
        /* attention q/k/v/proj_out stored as 1x1 conv kernels [C, C, 1, 1] -> Linear [C, C] (same bytes) */
        if (t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1 && tdm_tensor_is_contiguous(t)) {
            int64_t shape[2] = {t->shape[0], t->shape[1]};
            tdm_tensor v = tdm_tensor_view(t->dtype, t->data, 2, shape);
            return tdm_weights_emit(ws, out, &v, st);
        }
        /* already [C, C] (some converters squeeze): taken as is; anything else fails the shape check */
    }
    return tdm_weights_emit(ws, out, t, st);
}
