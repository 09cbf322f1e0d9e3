/* ImageReward configuration: config.json (ViT, head, reward normalisation, preprocessing) and
 * med_config.json (BertConfig). Missing fields default to the released ImageReward-v1.0. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "io/image_ops.h"
#include "models/imagereward.h"

static tdm_code get_int(const cJSON *o, const char *key, const char *what, long def, long lo, long hi, int *out,
                        tdm_status *st) {
    long v;
    TDM_TRY(tdm_json_int(o, key, what, 1, def, lo, hi, &v, st));
    *out = (int)v;
    return TDM_OK;
}

/* Sub-object `key` of o (NULL when absent); error when present but not an object. */
static tdm_code sub_object(const cJSON *o, const char *key, const char *what, const cJSON **out, tdm_status *st) {
    *out = cJSON_GetObjectItemCaseSensitive(o, key);
    if (*out && !cJSON_IsObject(*out)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must be an object", what, key);
    return TDM_OK;
}

/* Three floats o[key] (kept when absent). */
static tdm_code get_vec3(const cJSON *o, const char *key, const char *what, float out[3], tdm_status *st) {
    const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!a) return TDM_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must be an array of 3 numbers", what, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s'[%d] must be a finite number", what, key, i);
        out[i] = (float)e->valuedouble;
    }
    return TDM_OK;
}

static tdm_code parse_config(tdm_imagereward_config *c, const cJSON *j, const char *what, tdm_status *st) {
    TDM_TRY(get_int(j, "image_size", what, 224, 1, 8192, &c->image_size, st));
    const cJSON *vit;
    TDM_TRY(sub_object(j, "vit", what, &vit, st));
    char vw[300];
    snprintf(vw, sizeof vw, "%.280s vit", what);
    TDM_TRY(get_int(vit, "patch_size", vw, 16, 1, 1024, &c->patch_size, st));
    TDM_TRY(get_int(vit, "width", vw, 1024, 1, 1 << 16, &c->vit_width, st));
    TDM_TRY(get_int(vit, "depth", vw, 24, 0, 1024, &c->vit_depth, st));
    TDM_TRY(get_int(vit, "heads", vw, 16, 1, 1024, &c->vit_heads, st));
    TDM_TRY(get_int(vit, "in_chans", vw, 3, 3, 3, &c->in_chans, st));
    double ratio, eps;
    TDM_TRY(tdm_json_num(vit, "mlp_ratio", vw, 1, 4.0, 1e-3, 1e3, &ratio, st));
    TDM_TRY(tdm_json_num(vit, "layer_norm_eps", vw, 1, 1e-6, 0, 1, &eps, st));
    c->vit_eps = (float)eps;
    c->vit_mlp = (int)(c->vit_width * ratio); /* timm Mlp: hidden_features = int(dim * mlp_ratio) */
    if (c->vit_mlp < 1) return tdm_fail(st, TDM_ERR_FORMAT, "%s: vit mlp_ratio %g gives no hidden units", what, ratio);
    if (c->vit_width % c->vit_heads)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: vit width %d is not a multiple of heads %d", what, c->vit_width,
                        c->vit_heads);
    if (c->image_size % c->patch_size)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: image_size %d is not a multiple of vit patch_size %d", what,
                        c->image_size, c->patch_size);
    long dims[TDM_IMAGEREWARD_HEAD_LAYERS + 2];
    int n = TDM_IMAGEREWARD_HEAD_LAYERS + 1;
    const long def_dims[TDM_IMAGEREWARD_HEAD_LAYERS + 1] = {768, 1024, 128, 64, 16, 1};
    if (cJSON_GetObjectItemCaseSensitive(j, "mlp_dims")) {
        TDM_TRY(tdm_json_int_array(j, "mlp_dims", what, 0, 1, 1 << 20, dims, TDM_IMAGEREWARD_HEAD_LAYERS + 2, &n, st));
        if (n != TDM_IMAGEREWARD_HEAD_LAYERS + 1 || dims[n - 1] != 1)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: 'mlp_dims' must hold %d sizes ending with 1 (5 Linear layers)",
                            what, TDM_IMAGEREWARD_HEAD_LAYERS + 1);
    } else {
        memcpy(dims, def_dims, sizeof def_dims);
    }
    for (int i = 0; i <= TDM_IMAGEREWARD_HEAD_LAYERS; i++) c->mlp_dims[i] = (int)dims[i];
    TDM_TRY(tdm_json_num(j, "reward_mean", what, 1, TDM_IMAGEREWARD_MEAN, -1e30, 1e30, &c->reward_mean, st));
    TDM_TRY(tdm_json_num(j, "reward_std", what, 1, TDM_IMAGEREWARD_STD, 1e-30, 1e30, &c->reward_std, st));
    memcpy(c->mean, tdm_clip_mean, sizeof c->mean);
    memcpy(c->std, tdm_clip_std, sizeof c->std);
    const cJSON *pre, *norm = NULL;
    TDM_TRY(sub_object(j, "preprocess", what, &pre, st));
    if (pre) TDM_TRY(sub_object(pre, "Normalize", what, &norm, st));
    TDM_TRY(get_vec3(norm, "mean", what, c->mean, st));
    TDM_TRY(get_vec3(norm, "std", what, c->std, st));
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: preprocess Normalize std must be > 0", what);
    const cJSON *tok;
    TDM_TRY(sub_object(j, "tokenizer", what, &tok, st));
    TDM_TRY(get_int(tok, "max_length", what, 35, 2, 512, &c->max_length, st));
    return TDM_OK;
}

static tdm_code parse_med(tdm_imagereward_config *c, const cJSON *j, const char *what, tdm_status *st) {
    TDM_TRY(get_int(j, "hidden_size", what, 768, 1, 1 << 16, &c->hidden, st));
    TDM_TRY(get_int(j, "num_hidden_layers", what, 12, 0, 1024, &c->layers, st));
    TDM_TRY(get_int(j, "num_attention_heads", what, 12, 1, 1024, &c->heads, st));
    TDM_TRY(get_int(j, "intermediate_size", what, 3072, 1, 1 << 18, &c->intermediate, st));
    TDM_TRY(get_int(j, "vocab_size", what, 30524, 1, 1 << 22, &c->vocab_size, st));
    TDM_TRY(get_int(j, "max_position_embeddings", what, 512, 1, 1 << 16, &c->max_position, st));
    double eps;
    TDM_TRY(tdm_json_num(j, "layer_norm_eps", what, 1, 1e-12, 0, 1, &eps, st));
    c->bert_eps = (float)eps;
    char act[32];
    TDM_TRY(tdm_json_str(j, "hidden_act", what, 1, "gelu", act, sizeof act, st));
    if (strcmp(act, "gelu") != 0)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: hidden_act '%s' (ImageReward's BERT uses 'gelu')", what, act);
    char pet[32];
    TDM_TRY(tdm_json_str(j, "position_embedding_type", what, 1, "absolute", pet, sizeof pet, st));
    if (strcmp(pet, "absolute") != 0)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: position_embedding_type '%s' (only 'absolute')", what, pet);
    int cross;
    TDM_TRY(tdm_json_bool(j, "add_cross_attention", what, 1, 1, &cross, st));
    if (!cross) return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: add_cross_attention must be true for ImageReward", what);
    if (c->hidden % c->heads)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", what,
                        c->hidden, c->heads);
    /* encoder_width: BLIP_Pretrain overwrites it with the ViT width; a different value is ignored. */
    return TDM_OK;
}

tdm_code tdm_imagereward_config_load(tdm_imagereward_config *c, const char *dir, tdm_status *st) {
    memset(c, 0, sizeof *c);
    char path[4096];
    cJSON *j;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = parse_config(c, j, path, st);
    cJSON_Delete(j);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/med_config.json", dir);
    TDM_TRY(tdm_json_load(path, &j, st));
    rc = parse_med(c, j, path, st);
    cJSON_Delete(j);
    if (!rc && c->mlp_dims[0] != c->hidden)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s/config.json: mlp_dims[0] = %d but the BERT hidden size is %d", dir,
                      c->mlp_dims[0], c->hidden);
    if (!rc && c->max_length > c->max_position)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tokenizer max_length %d exceeds max_position_embeddings %d", dir,
                      c->max_length, c->max_position);
    return rc;
}
