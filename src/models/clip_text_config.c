/* CLIP text encoder configuration (transformers CLIPTextConfig) and the single-file name mappers
 * (OpenCLIP -> transformers as diffusers v0.27.2 single_file_utils.convert_open_clip_checkpoint does). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
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
    char act[64];
    TDM_TRY(tdm_json_str(obj, "hidden_act", what, 1, "quick_gelu", act, sizeof act, st));
    if (!strcmp(act, "quick_gelu")) c.hidden_act = TDM_CLIP_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu")) c.hidden_act = TDM_CLIP_ACT_GELU;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh")) c.hidden_act = TDM_CLIP_ACT_GELU_TANH;
    else
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: field 'hidden_act' = %s is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)",
                        what, act);
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

tdm_code tdm_clip_text_config_validate(const tdm_clip_text_config *c, const char *what, tdm_status *st) {
    if (c->vocab_size < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'vocab_size' = %d must be positive", what, c->vocab_size);
    if (c->hidden_size < 1 || c->hidden_size > (1 << 16))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'hidden_size' = %d is outside [1, 65536]", what, c->hidden_size);
    if (c->intermediate_size < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'intermediate_size' = %d must be positive", what,
                        c->intermediate_size);
    if (c->num_hidden_layers < 1 || c->num_hidden_layers > 1024)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'num_hidden_layers' = %d is outside [1, 1024]", what,
                        c->num_hidden_layers);
    if (c->num_attention_heads < 1 || c->hidden_size % c->num_attention_heads != 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'num_attention_heads' = %d does not divide hidden_size = %d",
                        what, c->num_attention_heads, c->hidden_size);
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

static const tdm_st_entry *find_pf(const tdm_safetensors *f, const char *prefix, const char *name) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", prefix, name);
    return tdm_st_find(f, buf);
}

static tdm_code need2(const tdm_safetensors *f, const char *prefix, const char *name, const tdm_st_entry **e,
                      tdm_status *st) {
    *e = find_pf(f, prefix, name);
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
        e = find_pf(f, prefix, "text_projection");
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
        e = find_pf(f, prefix, "text_projection.weight");
        if (e && e->ndim == 2 && e->shape[0] >= 1 && e->shape[0] <= (1 << 16)) c.projection_dim = (int)e->shape[0];
    }
    int n = 0;
    for (;; n++) {
        if (openclip) snprintf(name, sizeof name, "transformer.resblocks.%d.ln_1.weight", n);
        else snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm1.weight", n);
        if (!find_pf(f, prefix, name)) break;
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

/* A view of rows [r0, r0 + n) of a contiguous tensor (dim 0). */
static tdm_tensor row_slice(const tdm_tensor *t, int64_t r0, int64_t n) {
    int64_t shape[TDM_MAX_DIMS];
    int64_t row = 1;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    for (int i = 1; i < t->ndim; i++) row *= t->shape[i];
    shape[0] = n;
    return tdm_tensor_view(t->dtype, (char *)t->data + (size_t)(r0 * row) * tdm_dtype_size(t->dtype), t->ndim, shape);
}

static tdm_code bad_name(tdm_weights *ws, const char *name, const char *why, tdm_status *st) {
    return tdm_fail(st, TDM_ERR_FORMAT, "%s: %s: tensor '%s' %s", ws->what, ws->cur_file ? ws->cur_file : "?",
                    ws->cur_name ? ws->cur_name : name, why);
}

tdm_code tdm_clip_text_openclip_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                       tdm_status *st) {
    const tdm_clip_openclip_map *m = ctx;
    if (!m) return tdm_fail(st, TDM_ERR_INTERNAL, "tdm_clip_text_openclip_mapper: no context");
    char out[512];
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
        if (t->ndim != 2 || !tdm_tensor_is_contiguous(t) || !tdm_dtype_is_float(t->dtype))
            return bad_name(ws, name, "must be a contiguous 2-D float tensor", st);
        const int64_t C = t->shape[0], P = t->shape[1];
        const size_t es = tdm_dtype_size(t->dtype);
        char *dst = tdm_weights_alloc(ws, (size_t)(C * P) * es);
        if (!dst) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
        const char *src = t->data;
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < P; p++) memcpy(dst + (size_t)(p * C + c) * es, src + (size_t)(c * P + p) * es, es);
        const int64_t shape[2] = {P, C};
        tdm_tensor tt = tdm_tensor_view(t->dtype, dst, 2, shape);
        return tdm_weights_emit(ws, "text_projection.weight", &tt, st);
    }
    const char *pre = "transformer.resblocks.";
    if (strncmp(name, pre, strlen(pre)) != 0) return bad_name(ws, name, "is not a known OpenCLIP text tensor", st);
    const char *p = name + strlen(pre);
    char *end;
    long layer = strtol(p, &end, 10);
    if (end == p || *end != '.' || layer < 0 || layer > 100000)
        return bad_name(ws, name, "is not a known OpenCLIP text tensor", st);
    if (layer >= m->n_layers) return TDM_OK; /* dropped on purpose (SD2 keeps 23 of 24) */
    const char *tail = end + 1;
    char lp[128];
    snprintf(lp, sizeof lp, "text_model.encoder.layers.%ld.", layer);
    if (!strcmp(tail, "attn.in_proj_weight") || !strcmp(tail, "attn.in_proj_bias")) {
        /* [3C, C] / [3C]: rows q | k | v */
        if (t->ndim < 1 || t->shape[0] % 3 != 0 || !tdm_tensor_is_contiguous(t))
            return bad_name(ws, name, "must be contiguous with a first dimension divisible by 3", st);
        const int64_t C = t->shape[0] / 3;
        const char *kind = strstr(tail, "weight") ? "weight" : "bias";
        static const char *const proj[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++) {
            tdm_tensor s = row_slice(t, i * C, C);
            snprintf(out, sizeof out, "%sself_attn.%s.%s", lp, proj[i], kind);
            TDM_TRY(tdm_weights_emit(ws, out, &s, st));
        }
        return TDM_OK;
    }
    static const struct {
        const char *oc, *hf;
    } m2[] = {
        {"ln_1.", "layer_norm1."},      {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
        {"mlp.c_fc.", "mlp.fc1."},      {"mlp.c_proj.", "mlp.fc2."},
    };
    for (size_t i = 0; i < sizeof m2 / sizeof m2[0]; i++) {
        size_t n = strlen(m2[i].oc);
        if (!strncmp(tail, m2[i].oc, n) && (!strcmp(tail + n, "weight") || !strcmp(tail + n, "bias"))) {
            snprintf(out, sizeof out, "%s%s%s", lp, m2[i].hf, tail + n);
            return tdm_weights_emit(ws, out, t, st);
        }
    }
    return bad_name(ws, name, "is not a known OpenCLIP text tensor", st);
}
