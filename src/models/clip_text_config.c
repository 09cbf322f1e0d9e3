/* CLIP text encoder configuration (transformers CLIPTextConfig) and the single-file name mappers
 * (OpenCLIP -> transformers as diffusers v0.27.2 single_file_utils.convert_open_clip_checkpoint does). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/clip_openclip.h"
#include "models/clip_text.h"

void tdm_clip_text_config_default(tdm_clip_text_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 49408;
    c->hidden_size = 512;
    c->intermediate_size = 2048;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 8;
    c->max_position_embeddings = 77;
    c->hidden_act = TDM_CLIP_ACT_QUICK_GELU;
    c->layer_norm_eps = 1e-5;
    c->projection_dim = 512;
    c->pad_token_id = 1;
    c->bos_token_id = 49406;
    c->eos_token_id = 49407;
}

tdm_code tdm_clip_text_config_from_json(const cJSON *obj, const char *what, tdm_clip_text_config *cfg,
                                        tdm_status *st) {
    const cJSON *top = obj;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(obj, "text_config");
    if (cJSON_IsObject(tc)) obj = tc; /* a full CLIPModel config */
    tdm_clip_text_config c;
    tdm_clip_text_config_default(&c);
    long v;
    static const struct {
        const char *key;
        size_t off;
        long lo, hi;
    } ints[] = {
        {"vocab_size", offsetof(tdm_clip_text_config, vocab_size), 1, 1 << 24},
        {"hidden_size", offsetof(tdm_clip_text_config, hidden_size), 1, 1 << 16},
        {"intermediate_size", offsetof(tdm_clip_text_config, intermediate_size), 1, 1 << 18},
        {"num_hidden_layers", offsetof(tdm_clip_text_config, num_hidden_layers), 1, 1024},
        {"num_attention_heads", offsetof(tdm_clip_text_config, num_attention_heads), 1, 1024},
        {"max_position_embeddings", offsetof(tdm_clip_text_config, max_position_embeddings), 1, 1 << 16},
        {"projection_dim", offsetof(tdm_clip_text_config, projection_dim), 1, 1 << 16},
        {"eos_token_id", offsetof(tdm_clip_text_config, eos_token_id), -1, 1 << 24},
        {"bos_token_id", offsetof(tdm_clip_text_config, bos_token_id), -1, 1 << 24},
        {"pad_token_id", offsetof(tdm_clip_text_config, pad_token_id), -1, 1 << 24},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int *field = (int *)((char *)&c + ints[i].off);
        TDM_TRY(tdm_json_int(obj, ints[i].key, what, 1, *field, ints[i].lo, ints[i].hi, &v, st));
        *field = (int)v;
    }
    if (obj != top) {
        /* transformers CLIPModel: text_projection = Linear(text hidden, config.projection_dim) (top level) */
        c.is_clip_model = 1;
        TDM_TRY(tdm_json_int(top, "projection_dim", what, 1, 512, 1, 1 << 16, &v, st));
        c.clip_model_projection_dim = (int)v;
    }
    TDM_TRY(tdm_json_num(obj, "layer_norm_eps", what, 1, c.layer_norm_eps, 0.0, 1.0, &c.layer_norm_eps, st));
    TDM_TRY(tdm_clip_act_from_json(obj, what, &c.hidden_act, st));
    TDM_TRY(tdm_clip_text_config_validate(&c, what, st));
    *cfg = c;
    return TDM_OK;
}

tdm_code tdm_clip_text_config_load(const char *path, tdm_clip_text_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_clip_text_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}

tdm_code tdm_clip_act_from_json(const cJSON *obj, const char *what, tdm_clip_act *act, tdm_status *st) {
    char name[64];
    const char *def = *act == TDM_CLIP_ACT_GELU ? "gelu" : *act == TDM_CLIP_ACT_GELU_TANH ? "gelu_new" : "quick_gelu";
    TDM_TRY(tdm_json_str(obj, "hidden_act", what, 1, def, name, sizeof name, st));
    if (!strcmp(name, "quick_gelu")) *act = TDM_CLIP_ACT_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *act = TDM_CLIP_ACT_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *act = TDM_CLIP_ACT_GELU_TANH;
    else
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: field 'hidden_act' = %s is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)",
                        what, name);
    return TDM_OK;
}

tdm_code tdm_clip_encoder_validate(const char *what, int hidden_size, int intermediate_size, int intermediate_max,
                                   int num_hidden_layers, int num_attention_heads, tdm_status *st) {
    if (hidden_size < 1 || hidden_size > (1 << 16))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'hidden_size' = %d is outside [1, 65536]", what, hidden_size);
    if (intermediate_max > 0 && (intermediate_size < 1 || intermediate_size > intermediate_max))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'intermediate_size' = %d is outside [1, %d]", what,
                        intermediate_size, intermediate_max);
    if (intermediate_size < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'intermediate_size' = %d must be positive", what,
                        intermediate_size);
    if (num_hidden_layers < 1 || num_hidden_layers > 1024)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'num_hidden_layers' = %d is outside [1, 1024]", what,
                        num_hidden_layers);
    if (num_attention_heads < 1 || hidden_size % num_attention_heads != 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'num_attention_heads' = %d does not divide hidden_size = %d",
                        what, num_attention_heads, hidden_size);
    return TDM_OK;
}

tdm_code tdm_clip_text_config_validate(const tdm_clip_text_config *c, const char *what, tdm_status *st) {
    if (c->vocab_size < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'vocab_size' = %d must be positive", what, c->vocab_size);
    TDM_TRY(tdm_clip_encoder_validate(what, c->hidden_size, c->intermediate_size, 0, c->num_hidden_layers,
                                      c->num_attention_heads, st));
    if (c->max_position_embeddings < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'max_position_embeddings' = %d must be positive", what,
                        c->max_position_embeddings);
    if (!(c->layer_norm_eps >= 0 && c->layer_norm_eps < 1))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'layer_norm_eps' = %g is outside [0, 1)", what,
                        c->layer_norm_eps);
    if (c->projection_dim < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'projection_dim' = %d must be positive", what,
                        c->projection_dim);
    return TDM_OK;
}

/* ---- inference from a single file ------------------------------------------------------------ */

static tdm_code need2(const tdm_safetensors *f, const char *prefix, const char *name, const tdm_st_entry **e,
                      tdm_status *st) {
    *e = tdm_st_find_prefixed(f, prefix, name);
    if (!*e)
        return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%s%s' is missing (not a CLIP text encoder?)", f->path,
                        prefix, name);
    if ((*e)->ndim != 2 || (*e)->shape[0] < 1 || (*e)->shape[1] < 1 || (*e)->shape[0] > (1 << 24) ||
        (*e)->shape[1] > (1 << 16))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s%s' must be a plausible 2-D tensor", f->path, prefix, name);
    return TDM_OK;
}

tdm_code tdm_clip_text_config_infer(const tdm_safetensors *f, const char *prefix, int openclip,
                                    tdm_clip_text_config *cfg, tdm_status *st) {
    if (!prefix) prefix = "";
    tdm_clip_text_config c;
    tdm_clip_text_config_default(&c);
    c.eos_token_id = 2;
    c.bos_token_id = 0;
    c.pad_token_id = 1;
    const tdm_st_entry *e;
    char name[256];
    if (openclip) {
        TDM_TRY(need2(f, prefix, "token_embedding.weight", &e, st));
        c.vocab_size = (int)e->shape[0];
        c.hidden_size = (int)e->shape[1];
        TDM_TRY(need2(f, prefix, "positional_embedding", &e, st));
        c.max_position_embeddings = (int)e->shape[0];
        TDM_TRY(need2(f, prefix, "transformer.resblocks.0.mlp.c_fc.weight", &e, st));
        c.intermediate_size = (int)e->shape[0];
        c.hidden_act = TDM_CLIP_ACT_GELU;
        e = tdm_st_find_prefixed(f, prefix, "text_projection");
        if (e && e->ndim == 2 && e->shape[1] >= 1 && e->shape[1] <= (1 << 16)) c.projection_dim = (int)e->shape[1];
    } else {
        TDM_TRY(need2(f, prefix, "text_model.embeddings.token_embedding.weight", &e, st));
        c.vocab_size = (int)e->shape[0];
        c.hidden_size = (int)e->shape[1];
        TDM_TRY(need2(f, prefix, "text_model.embeddings.position_embedding.weight", &e, st));
        c.max_position_embeddings = (int)e->shape[0];
        TDM_TRY(need2(f, prefix, "text_model.encoder.layers.0.mlp.fc1.weight", &e, st));
        c.intermediate_size = (int)e->shape[0];
        c.hidden_act = TDM_CLIP_ACT_QUICK_GELU;
        e = tdm_st_find_prefixed(f, prefix, "text_projection.weight");
        if (e && e->ndim == 2 && e->shape[0] >= 1 && e->shape[0] <= (1 << 16)) c.projection_dim = (int)e->shape[0];
    }
    int n = 0;
    for (;; n++) {
        if (openclip) snprintf(name, sizeof name, "transformer.resblocks.%d.ln_1.weight", n);
        else snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm1.weight", n);
        if (!tdm_st_find_prefixed(f, prefix, name)) break;
        if (n == 1024) return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than 1024 text encoder layers", f->path);
    }
    c.num_hidden_layers = n;
    c.num_attention_heads = c.hidden_size % 64 == 0 ? c.hidden_size / 64 : 1;
    TDM_TRY(tdm_clip_text_config_validate(&c, f->path, st));
    *cfg = c;
    return TDM_OK;
}

/* ---- name mappers ---------------------------------------------------------------------------- */

tdm_code tdm_clip_text_hf_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                 tdm_status *st) {
    if (!strcmp(name, "text_model.embeddings.position_ids")) return TDM_OK; /* int64 buffer (transformers < 4.31) */
    return tdm_weights_emit(ws, name, t, st);
}

tdm_code tdm_clip_text_clipmodel_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                        tdm_status *st) {
    const tdm_clip_model_map *m = ctx;
    const int keep_projection = m ? m->keep_projection : 1;
    /* the vision half of transformers CLIPModel and the contrastive temperature: not the text encoder's */
    if (!strncmp(name, "vision_model.", 13) || !strcmp(name, "visual_projection.weight") ||
        !strcmp(name, "logit_scale"))
        return TDM_OK;
    if (!strcmp(name, "text_projection.weight") && !keep_projection) return TDM_OK;
    return tdm_clip_text_hf_mapper(ws, name, t, NULL, st);
}

tdm_name_mapper tdm_clip_text_mapper_for(const tdm_clip_text_config *cfg) {
    return cfg && cfg->is_clip_model ? tdm_clip_text_clipmodel_mapper : tdm_clip_text_hf_mapper;
}

tdm_code tdm_clip_text_openclip_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                       tdm_status *st) {
    const tdm_clip_openclip_map *m = ctx;
    if (!m) return tdm_fail(st, TDM_ERR_INTERNAL, "tdm_clip_text_openclip_mapper: no context");
    if (!strcmp(name, "logit_scale") || !strcmp(name, "attn_mask")) return TDM_OK;
    if (!strcmp(name, "token_embedding.weight"))
        return tdm_weights_emit(ws, "text_model.embeddings.token_embedding.weight", t, st);
    if (!strcmp(name, "positional_embedding"))
        return tdm_weights_emit(ws, "text_model.embeddings.position_embedding.weight", t, st);
    if (!strcmp(name, "ln_final.weight")) return tdm_weights_emit(ws, "text_model.final_layer_norm.weight", t, st);
    if (!strcmp(name, "ln_final.bias")) return tdm_weights_emit(ws, "text_model.final_layer_norm.bias", t, st);
    if (!strcmp(name, "text_projection")) {
        if (!m->keep_projection) return TDM_OK;
        /* OpenCLIP: x @ text_projection, [C, P]; transformers Linear weight is [P, C] */
        return tdm_openclip_emit_transposed(ws, "text_projection.weight", name, t, st);
    }
    static const char unknown[] = "is not a known OpenCLIP text tensor";
    long layer;
    const char *tail;
    TDM_TRY(tdm_openclip_resblock(ws, name, unknown, &layer, &tail, st));
    if (layer >= m->n_layers) return TDM_OK; /* dropped on purpose (SD2 keeps 23 of 24) */
    return tdm_openclip_emit_resblock(ws, name, "text_model.encoder.layers.", layer, tail, t, unknown, st);
}
