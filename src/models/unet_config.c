/* UNet config.json (diffusers UNet2DConditionModel) -> tdm_unet_config, with validation. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "models/unet.h"

#define MAX_WIDTH 16384  /* channels */
#define MAX_HEADS 1024
#define MAX_CTX 16384

/* String array field of exactly n entries, each one of two accepted names: out[i] = 1 for `yes`, 0 for `no`. */
static tdm_code block_types(const cJSON *j, const char *key, const char *what, int n, const char *yes,
                            const char *no, int *out, tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
    if (!cJSON_IsArray(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be an array of strings", what, key);
    int count = cJSON_GetArraySize(v);
    if (count != n)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' has %d entries, block_out_channels has %d", what, key,
                        count, n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s'[%d] must be a string", what, key, i);
        if (strcmp(e->valuestring, yes) == 0) out[i] = 1;
        else if (strcmp(e->valuestring, no) == 0) out[i] = 0;
        else
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s'[%d] = '%s' is not supported (expected %s or %s)",
                            what, key, i, e->valuestring, yes, no);
        i++;
    }
    return TDM_OK;
}

/* Per-block integer list (or one integer for every block): exactly n entries. */
static tdm_code per_block(const cJSON *j, const char *key, const char *what, int n, long def, long lo, long hi,
                          int *out, tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        for (int i = 0; i < n; i++) out[i] = (int)def;
        return TDM_OK;
    }
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (cJSON_IsArray(e)) return tdm_fail(
            st, TDM_ERR_UNSUPPORTED, "%s: field '%s': nested lists are not supported", what, key);
    }
    long vals[TDM_UNET_MAX_LEVELS + 1];
    int count = 0;
    TDM_TRY(tdm_json_int_array(j, key, what, 1, lo, hi, vals, TDM_UNET_MAX_LEVELS, &count, st));
    if (cJSON_IsArray(v) && count != n)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' has %d entries, block_out_channels has %d", what, key,
                        count, n);
    for (int i = 0; i < n; i++) out[i] = (int)(count == 1 && !cJSON_IsArray(v) ? vals[0] : vals[i]);
    return TDM_OK;
}

/* A field that must be absent, null or equal to an accepted value. */
static tdm_code require_str(const cJSON *j, const char *key, const char *what, const char *accepted, tdm_status *st) {
    char buf[64];
    TDM_TRY(tdm_json_str(j, key, what, 1, accepted, buf, sizeof buf, st));
    if (strcmp(buf, accepted) != 0)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s' = '%s' is not supported (only '%s')", what, key, buf,
                        accepted);
    return TDM_OK;
}

static tdm_code require_null(const cJSON *j, const char *key, const char *what, tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (v && !cJSON_IsNull(v))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s' must be null (not supported)", what, key);
    return TDM_OK;
}

static tdm_code require_false(const cJSON *j, const char *key, const char *what, tdm_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return TDM_OK;
    if (cJSON_IsArray(v)) { /* per-block booleans (only_cross_attention) */
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (!cJSON_IsFalse(e)) return tdm_fail(
            st, TDM_ERR_UNSUPPORTED, "%s: field '%s' must be false (not supported)", what, key);
        return TDM_OK;
    }
    if (!cJSON_IsBool(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be true or false", what, key);
    if (cJSON_IsTrue(v)) return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s' = true is not supported", what, key);
    return TDM_OK;
}

static tdm_code require_num(const cJSON *j, const char *key, const char *what, double accepted, tdm_status *st) {
    double d;
    TDM_TRY(tdm_json_num(j, key, what, 1, accepted, -1e30, 1e30, &d, st));
    if (d != accepted)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s' = %g is not supported (only %g)", what, key, d,
                        accepted);
    return TDM_OK;
}

tdm_code tdm_unet_config_from_json(const cJSON *j, const char *what, tdm_unet_config *cfg, tdm_status *st) {
    memset(cfg, 0, sizeof *cfg);
    long v, arr[TDM_UNET_MAX_LEVELS + 1];
    int n;

    TDM_TRY(tdm_json_int_array(j, "block_out_channels", what, 0, 1, MAX_WIDTH, arr, TDM_UNET_MAX_LEVELS, &n, st));
    cfg->n_levels = n;
    for (int i = 0; i < n; i++) cfg->block_out_channels[i] = (int)arr[i];
    TDM_TRY(tdm_json_int(j, "in_channels", what, 1, 4, 1, 1024, &v, st));
    cfg->in_channels = (int)v;
    TDM_TRY(tdm_json_int(j, "out_channels", what, 1, 4, 1, 1024, &v, st));
    cfg->out_channels = (int)v;
    TDM_TRY(tdm_json_int(j, "sample_size", what, 1, 64, 1, 65536, &v, st));
    cfg->sample_size = (int)v;
    {
        const cJSON *lpb = cJSON_GetObjectItemCaseSensitive(j, "layers_per_block");
        long lv[TDM_UNET_MAX_LEVELS + 1];
        int ln = 0;
        if (!lpb || cJSON_IsNull(lpb)) {
            lv[0] = 2;
            ln = 1;
        } else {
            TDM_TRY(tdm_json_int_array(j, "layers_per_block", what, 1, 1, TDM_UNET_MAX_LAYERS, lv,
                                       TDM_UNET_MAX_LEVELS, &ln, st));
        }
        for (int i = 1; i < ln; i++)
            if (lv[i] != lv[0])
                return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                                "%s: field 'layers_per_block': different values per block are not supported", what);
        cfg->layers_per_block = (int)lv[0];
    }
    TDM_TRY(block_types(j, "down_block_types", what, n, "CrossAttnDownBlock2D", "DownBlock2D", cfg->down_attn, st));
    TDM_TRY(block_types(j, "up_block_types", what, n, "CrossAttnUpBlock2D", "UpBlock2D", cfg->up_attn, st));
    {
        char mid[64];
        TDM_TRY(tdm_json_str(j, "mid_block_type", what, 1, "UNetMidBlock2DCrossAttn", mid, sizeof mid, st));
        if (strcmp(mid, "UNetMidBlock2DCrossAttn") != 0)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                            "%s: field 'mid_block_type' = '%s' is not supported (only UNetMidBlock2DCrossAttn)", what,
                            mid);
        cfg->mid_attn = 1;
    }
    {
        const cJSON *cad = cJSON_GetObjectItemCaseSensitive(j, "cross_attention_dim");
        if (cJSON_IsArray(cad)) {
            TDM_TRY(tdm_json_int_array(j, "cross_attention_dim", what, 0, 1, MAX_CTX, arr, TDM_UNET_MAX_LEVELS, &n, st));
            for (int i = 1; i < n; i++)
                if (arr[i] != arr[0])
                    return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                                    "%s: field 'cross_attention_dim': different values per block are not supported",
                                    what);
            cfg->cross_attention_dim = (int)arr[0];
        } else {
            TDM_TRY(tdm_json_int(j, "cross_attention_dim", what, 1, 1280, 1, MAX_CTX, &v, st));
            cfg->cross_attention_dim = (int)v;
        }
    }
    /* diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the latter is the head
     * COUNT for these UNets, a historical misnaming). */
    const char *heads_key = "attention_head_dim";
    const cJSON *nah = cJSON_GetObjectItemCaseSensitive(j, "num_attention_heads");
    if (nah && !cJSON_IsNull(nah)) heads_key = "num_attention_heads";
    TDM_TRY(per_block(j, heads_key, what, cfg->n_levels, 8, 1, MAX_HEADS, cfg->num_heads, st));
    TDM_TRY(per_block(j, "transformer_layers_per_block", what, cfg->n_levels, 1, 1, TDM_UNET_MAX_TRANSFORMER,
                      cfg->transformer_layers, st));
    {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reverse_transformer_layers_per_block");
        if (r && !cJSON_IsNull(r)) {
            TDM_TRY(per_block(j, "reverse_transformer_layers_per_block", what, cfg->n_levels, 1, 1,
                              TDM_UNET_MAX_TRANSFORMER, cfg->transformer_layers_up, st));
        } else {
            for (int i = 0; i < cfg->n_levels; i++)
                cfg->transformer_layers_up[i] = cfg->transformer_layers[cfg->n_levels - 1 - i];
        }
    }
    TDM_TRY(tdm_json_bool(j, "use_linear_projection", what, 1, 0, &cfg->use_linear_projection, st));
    TDM_TRY(tdm_json_bool(j, "upcast_attention", what, 1, 0, &cfg->upcast_attention, st));
    TDM_TRY(tdm_json_int(j, "norm_num_groups", what, 1, 32, 1, MAX_WIDTH, &v, st));
    cfg->norm_num_groups = (int)v;
    double d;
    TDM_TRY(tdm_json_num(j, "norm_eps", what, 1, 1e-5, 1e-12, 1.0, &d, st));
    cfg->norm_eps = (float)d;
    TDM_TRY(tdm_json_bool(j, "flip_sin_to_cos", what, 1, 1, &cfg->flip_sin_to_cos, st));
    TDM_TRY(tdm_json_int(j, "freq_shift", what, 1, 0, 0, 1, &v, st));
    cfg->freq_shift = (int)v;
    TDM_TRY(tdm_json_int(j, "time_cond_proj_dim", what, 1, 0, 1, MAX_WIDTH, &v, st));
    cfg->time_cond_proj_dim = (int)v;
    TDM_TRY(tdm_json_int(j, "time_embedding_dim", what, 1, 4L * cfg->block_out_channels[0], 1, 4 * MAX_WIDTH, &v, st));
    cfg->time_embed_dim = (int)v;

    {
        char add[64];
        TDM_TRY(tdm_json_str(j, "addition_embed_type", what, 1, "", add, sizeof add, st));
        if (strcmp(add, "text_time") == 0) {
            cfg->addition_text_time = 1;
            TDM_TRY(tdm_json_int(j, "addition_time_embed_dim", what, 0, 0, 2, MAX_WIDTH, &v, st));
            cfg->addition_time_embed_dim = (int)v;
            TDM_TRY(tdm_json_int(j, "projection_class_embeddings_input_dim", what, 0, 0, 1, 65536, &v, st));
            cfg->projection_class_embeddings_input_dim = (int)v;
        } else if (add[0]) {
            return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                            "%s: field 'addition_embed_type' = '%s' is not supported (only null or text_time)", what,
                            add);
        }
    }

    /* Options the engine does not implement: must keep diffusers' defaults. */
    TDM_TRY(require_str(j, "act_fn", what, "silu", st));
    TDM_TRY(require_str(j, "resnet_time_scale_shift", what, "default", st));
    TDM_TRY(require_str(j, "time_embedding_type", what, "positional", st));
    TDM_TRY(require_str(j, "attention_type", what, "default", st));
    TDM_TRY(require_null(j, "class_embed_type", what, st));
    TDM_TRY(require_null(j, "num_class_embeds", what, st));
    TDM_TRY(require_null(j, "encoder_hid_dim", what, st));
    TDM_TRY(require_null(j, "encoder_hid_dim_type", what, st));
    TDM_TRY(require_null(j, "time_embedding_act_fn", what, st));
    TDM_TRY(require_null(j, "timestep_post_act", what, st));
    TDM_TRY(require_null(j, "cross_attention_norm", what, st));
    TDM_TRY(require_false(j, "center_input_sample", what, st));
    TDM_TRY(require_false(j, "dual_cross_attention", what, st));
    TDM_TRY(require_false(j, "only_cross_attention", what, st));
    TDM_TRY(require_false(j, "mid_block_only_cross_attention", what, st));
    TDM_TRY(require_false(j, "resnet_skip_time_act", what, st));
    TDM_TRY(require_false(j, "class_embeddings_concat", what, st));
    TDM_TRY(require_num(j, "downsample_padding", what, 1, st));
    TDM_TRY(require_num(j, "mid_block_scale_factor", what, 1, st));
    TDM_TRY(require_num(j, "resnet_out_scale_factor", what, 1, st));
    TDM_TRY(require_num(j, "conv_in_kernel", what, 3, st));
    TDM_TRY(require_num(j, "conv_out_kernel", what, 3, st));
    return tdm_unet_config_validate(cfg, what, st);
}

tdm_code tdm_unet_config_validate(const tdm_unet_config *c, const char *what, tdm_status *st) {
    int L = c->n_levels;
    if (L < 1 || L > TDM_UNET_MAX_LEVELS)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'block_out_channels' has %d entries (expected 1..%d)", what, L,
                        TDM_UNET_MAX_LEVELS);
    if (c->in_channels < 1 || c->in_channels > 1024 || c->out_channels < 1 || c->out_channels > 1024)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: fields 'in_channels'/'out_channels' must be in [1, 1024]", what);
    if (c->layers_per_block < 1 || c->layers_per_block > TDM_UNET_MAX_LAYERS)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'layers_per_block' = %d is outside [1, %d]", what,
                        c->layers_per_block, TDM_UNET_MAX_LAYERS);
    if (c->norm_num_groups < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'norm_num_groups' = %d must be positive", what,
                        c->norm_num_groups);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'norm_eps' must be positive", what);
    if (c->cross_attention_dim < 1 || c->cross_attention_dim > MAX_CTX)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'cross_attention_dim' = %d is outside [1, %d]", what,
                        c->cross_attention_dim, MAX_CTX);
    if (c->time_embed_dim < 1 || c->time_embed_dim > 4 * MAX_WIDTH)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'time_embedding_dim' = %d is out of range", what,
                        c->time_embed_dim);
    if (c->block_out_channels[0] < 2 || c->block_out_channels[0] % 2)
        return tdm_fail(st, TDM_ERR_FORMAT,
                        "%s: field 'block_out_channels'[0] = %d must be even (timestep embedding width)", what,
                        c->block_out_channels[0]);
    if (c->freq_shift < 0 || c->freq_shift >= c->block_out_channels[0] / 2)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'freq_shift' = %d is out of range", what, c->freq_shift);
    for (int i = 0; i < L; i++) {
        int ch = c->block_out_channels[i];
        if (ch < 1 || ch > MAX_WIDTH)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'block_out_channels'[%d] = %d is outside [1, %d]", what, i,
                            ch, MAX_WIDTH);
        if (ch % c->norm_num_groups)
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: field 'block_out_channels'[%d] = %d is not divisible by norm_num_groups = %d", what, i,
                            ch, c->norm_num_groups);
        if (c->num_heads[i] < 1 || c->num_heads[i] > MAX_HEADS)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'attention_head_dim'[%d] = %d is out of range", what, i,
                            c->num_heads[i]);
        if (c->transformer_layers[i] < 1 || c->transformer_layers[i] > TDM_UNET_MAX_TRANSFORMER ||
            c->transformer_layers_up[i] < 1 || c->transformer_layers_up[i] > TDM_UNET_MAX_TRANSFORMER)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'transformer_layers_per_block'[%d] is outside [1, %d]", what,
                            i, TDM_UNET_MAX_TRANSFORMER);
        /* heads must divide the width where a transformer is built: down block i, up block L-1-i, mid */
        int used = c->down_attn[i] || c->up_attn[L - 1 - i] || (i == L - 1 && c->mid_attn);
        if (used && ch % c->num_heads[i])
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: field 'attention_head_dim'[%d] = %d heads do not divide block_out_channels[%d] = %d",
                            what, i, c->num_heads[i], i, ch);
    }
    if (c->time_cond_proj_dim < 0 || c->time_cond_proj_dim > MAX_WIDTH)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'time_cond_proj_dim' is out of range", what);
    if (c->addition_text_time) {
        if (c->addition_time_embed_dim < 2 || c->addition_time_embed_dim % 2)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'addition_time_embed_dim' = %d must be even and >= 2", what,
                            c->addition_time_embed_dim);
        if (c->projection_class_embeddings_input_dim <= c->addition_time_embed_dim)
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: field 'projection_class_embeddings_input_dim' = %d must exceed "
                            "addition_time_embed_dim = %d",
                            what, c->projection_class_embeddings_input_dim, c->addition_time_embed_dim);
    }
    return TDM_OK;
}

tdm_code tdm_unet_config_load(const char *path, tdm_unet_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_unet_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}
