/* CLIP vision tower: configuration, name mappers, loading, the forward pass and CLIPImageProcessor
 * preprocessing (formulas and their transformers source in clip_vision.h). */
#include "models/clip_vision.h"
#include "models/clip_openclip.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "io/image_ops.h"

/* ---- configuration ---------------------------------------------------------------------------- */

void tdm_clip_vision_config_default(tdm_clip_vision_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden_size = 768;
    c->intermediate_size = 3072;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->num_channels = 3;
    c->image_size = 224;
    c->patch_size = 32;
    c->projection_dim = 512;
    c->hidden_act = TDM_CLIP_ACT_QUICK_GELU;
    c->layer_norm_eps = 1e-5;
}

int64_t tdm_clip_vision_tokens(const tdm_clip_vision_config *c) {
    const int64_t g = c->image_size / c->patch_size;
    return g * g + 1;
}

tdm_code tdm_clip_vision_config_from_json(const cJSON *obj, const char *what, tdm_clip_vision_config *cfg,
                                          tdm_status *st) {
    const cJSON *top = obj;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(obj, "vision_config");
    if (cJSON_IsObject(vc)) obj = vc; /* a full CLIPModel config */
    tdm_clip_vision_config c;
    tdm_clip_vision_config_default(&c);
    long v;
    /* CLIPModel keeps projection_dim at the top level (the vision_config copy may be absent) */
    if (obj != top) {
        TDM_TRY(tdm_json_int(top, "projection_dim", what, 1, c.projection_dim, 1, 1 << 16, &v, st));
        c.projection_dim = (int)v;
    }
    static const struct {
        const char *key;
        size_t off;
        long lo, hi;
    } ints[] = {
        {"hidden_size", offsetof(tdm_clip_vision_config, hidden_size), 1, 1 << 16},
        {"intermediate_size", offsetof(tdm_clip_vision_config, intermediate_size), 1, 1 << 18},
        {"num_hidden_layers", offsetof(tdm_clip_vision_config, num_hidden_layers), 1, 1024},
        {"num_attention_heads", offsetof(tdm_clip_vision_config, num_attention_heads), 1, 1024},
        {"num_channels", offsetof(tdm_clip_vision_config, num_channels), 1, 64},
        {"image_size", offsetof(tdm_clip_vision_config, image_size), 1, 16384},
        {"patch_size", offsetof(tdm_clip_vision_config, patch_size), 1, 16384},
        {"projection_dim", offsetof(tdm_clip_vision_config, projection_dim), 1, 1 << 16},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int *field = (int *)((char *)&c + ints[i].off);
        TDM_TRY(tdm_json_int(obj, ints[i].key, what, 1, *field, ints[i].lo, ints[i].hi, &v, st));
        *field = (int)v;
    }
    TDM_TRY(tdm_json_num(obj, "layer_norm_eps", what, 1, c.layer_norm_eps, 0.0, 1.0, &c.layer_norm_eps, st));
    TDM_TRY(tdm_clip_act_from_json(obj, what, &c.hidden_act, st));
    TDM_TRY(tdm_clip_vision_config_validate(&c, what, st));
    *cfg = c;
    return TDM_OK;
}

tdm_code tdm_clip_vision_config_load(const char *path, tdm_clip_vision_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_clip_vision_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}

tdm_code tdm_clip_vision_config_validate(const tdm_clip_vision_config *c, const char *what, tdm_status *st) {
    TDM_TRY(tdm_clip_encoder_validate(what, c->hidden_size, c->intermediate_size, 1 << 18, c->num_hidden_layers,
                                      c->num_attention_heads, st));
    if (c->num_channels < 1 || c->num_channels > 64)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'num_channels' = %d is outside [1, 64]", what, c->num_channels);
    if (c->image_size < 1 || c->image_size > 16384)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'image_size' = %d is outside [1, 16384]", what, c->image_size);
    if (c->patch_size < 1 || c->patch_size > c->image_size)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'patch_size' = %d is outside [1, image_size = %d]", what,
                        c->patch_size, c->image_size);
    if (tdm_clip_vision_tokens(c) > (1 << 20))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: fields 'image_size' = %d / 'patch_size' = %d give %lld tokens (limit "
                        "2^20)", what, c->image_size, c->patch_size, (long long)tdm_clip_vision_tokens(c));
    if (!(c->layer_norm_eps >= 0 && c->layer_norm_eps < 1))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'layer_norm_eps' = %g is outside [0, 1)", what,
                        c->layer_norm_eps);
    if (c->projection_dim < 1 || c->projection_dim > (1 << 16))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field 'projection_dim' = %d is outside [1, 65536]", what,
                        c->projection_dim);
    return TDM_OK;
}

static tdm_code need(const tdm_safetensors *f, const char *prefix, const char *name, int ndim,
                     const tdm_st_entry **e, tdm_status *st) {
    *e = tdm_st_find_prefixed(f, prefix, name);
    if (!*e)
        return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%s%s' is missing (not an OpenCLIP visual tower?)", f->path,
                        prefix, name);
    int ok = (*e)->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = (*e)->shape[i] >= 1 && (*e)->shape[i] <= (1 << 20);
    if (!ok)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s%s' must be a plausible %d-D tensor", f->path, prefix, name,
                        ndim);
    return TDM_OK;
}

tdm_code tdm_clip_vision_config_infer_openclip(const tdm_safetensors *f, const char *prefix,
                                               tdm_clip_vision_config *cfg, tdm_status *st) {
    if (!prefix) prefix = "";
    tdm_clip_vision_config c;
    tdm_clip_vision_config_default(&c);
    const tdm_st_entry *e;
    TDM_TRY(need(f, prefix, "conv1.weight", 4, &e, st));
    c.hidden_size = (int)e->shape[0];
    c.num_channels = (int)e->shape[1];
    c.patch_size = (int)e->shape[2];
    TDM_TRY(need(f, prefix, "positional_embedding", 2, &e, st));
    int64_t g = (int64_t)llround(sqrt((double)(e->shape[0] - 1)));
    if (g < 1 || g * g + 1 != e->shape[0])
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%spositional_embedding' has %lld rows, not g^2 + 1", f->path,
                        prefix, (long long)e->shape[0]);
    if (g * c.patch_size > 16384)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: visual tower image size %lld is too large", f->path,
                        (long long)(g * c.patch_size));
    c.image_size = (int)(g * c.patch_size);
    TDM_TRY(need(f, prefix, "transformer.resblocks.0.mlp.c_fc.weight", 2, &e, st));
    c.intermediate_size = (int)e->shape[0];
    e = tdm_st_find_prefixed(f, prefix, "proj");
    if (e && e->ndim == 2 && e->shape[1] >= 1 && e->shape[1] <= (1 << 16)) c.projection_dim = (int)e->shape[1];
    int n = 0;
    char name[128];
    for (;; n++) {
        snprintf(name, sizeof name, "transformer.resblocks.%d.ln_1.weight", n);
        if (!tdm_st_find_prefixed(f, prefix, name)) break;
        if (n == 1024) return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than 1024 visual layers", f->path);
    }
    c.num_hidden_layers = n;
    /* OpenCLIP model_configs: head_width 64 except ViT-H (1280: 80) and ViT-bigG (1664: 104) */
    c.num_attention_heads = c.hidden_size == 1280 || c.hidden_size == 1664 ? 16
                            : c.hidden_size % 64 == 0                      ? c.hidden_size / 64
                                                                           : 1;
    c.hidden_act = TDM_CLIP_ACT_GELU;
    TDM_TRY(tdm_clip_vision_config_validate(&c, f->path, st));
    *cfg = c;
    return TDM_OK;
}

/* ---- name mappers ----------------------------------------------------------------------------- */

tdm_code tdm_clip_vision_hf_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                   tdm_status *st) {
    (void)ctx;
    if (!strcmp(name, "vision_model.embeddings.position_ids") || !strcmp(name, "text_model.embeddings.position_ids"))
        return TDM_OK; /* int64 buffers (transformers < 4.31) */
    if (!strncmp(name, "text_model.", 11) || !strcmp(name, "text_projection.weight") || !strcmp(name, "logit_scale"))
        return TDM_OK; /* the text half of a CLIPModel (read by the text tower) */
    return tdm_weights_emit(ws, name, t, st);
}

tdm_code tdm_clip_vision_openclip_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                         tdm_status *st) {
    (void)ctx;
    static const struct {
        const char *oc, *hf;
    } top[] = {
        {"conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
        {"class_embedding", "vision_model.embeddings.class_embedding"},
        {"positional_embedding", "vision_model.embeddings.position_embedding.weight"},
        {"ln_pre.weight", "vision_model.pre_layrnorm.weight"},
        {"ln_pre.bias", "vision_model.pre_layrnorm.bias"},
        {"ln_post.weight", "vision_model.post_layernorm.weight"},
        {"ln_post.bias", "vision_model.post_layernorm.bias"},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(name, top[i].oc)) return tdm_weights_emit(ws, top[i].hf, t, st);
    if (!strcmp(name, "proj")) return tdm_openclip_emit_transposed(ws, "visual_projection.weight", name, t, st);
    static const char unknown[] = "is not a known OpenCLIP visual tensor";
    long layer;
    const char *tail;
    TDM_TRY(tdm_openclip_resblock(ws, name, unknown, &layer, &tail, st));
    return tdm_openclip_emit_resblock(ws, name, "vision_model.encoder.layers.", layer, tail, t, unknown, st);
}

/* ---- loading ---------------------------------------------------------------------------------- */

static tdm_code load_all(tdm_clip_vision *m, tdm_status *st) {
    const tdm_clip_vision_config *c = &m->cfg;
    tdm_weights *ws = &m->ws;
    const int64_t C = c->hidden_size, I = c->intermediate_size, P = c->patch_size;
    const char *e = "vision_model.embeddings";
    TDM_TRY(tdm_weights_getf(ws, &m->patch_w, 4, C, c->num_channels, P, P, st, "%s.patch_embedding.weight", e));
    TDM_TRY(tdm_weights_getf(ws, &m->class_emb, 1, C, 0, 0, 0, st, "%s.class_embedding", e));
    TDM_TRY(tdm_weights_getf(ws, &m->pos_emb, 2, tdm_clip_vision_tokens(c), C, 0, 0, st, "%s.position_embedding.weight",
                             e));
    if (!tdm_tensor_is_contiguous(&m->class_emb) || !tdm_tensor_is_contiguous(&m->pos_emb))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: embedding tables must be contiguous", ws->what);
    TDM_TRY(tdm_weights_getf(ws, &m->pre_ln_w, 1, C, 0, 0, 0, st, "vision_model.pre_layrnorm.weight"));
    TDM_TRY(tdm_weights_getf(ws, &m->pre_ln_b, 1, C, 0, 0, 0, st, "vision_model.pre_layrnorm.bias"));
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
    for (int i = 0; i < c->num_hidden_layers; i++)
        TDM_TRY(tdm_clip_layer_load(ws, &m->layers[i], "vision_model.encoder.layers", i, C, I, st));
    TDM_TRY(tdm_weights_getf(ws, &m->post_ln_w, 1, C, 0, 0, 0, st, "vision_model.post_layernorm.weight"));
    TDM_TRY(tdm_weights_getf(ws, &m->post_ln_b, 1, C, 0, 0, 0, st, "vision_model.post_layernorm.bias"));
    const int64_t pshape[2] = {c->projection_dim, C};
    TDM_TRY(tdm_weights_get_opt(ws, "visual_projection.weight", 2, pshape, &m->proj_w, &m->has_projection, st));
    /* one more layer than the config says: a config / checkpoint mismatch worth naming */
    char extra[128];
    snprintf(extra, sizeof extra, "vision_model.encoder.layers.%d.layer_norm1.weight", c->num_hidden_layers);
    if (tdm_weights_peek(ws, extra))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' exists but field 'num_hidden_layers' = %d", ws->what,
                        extra, c->num_hidden_layers);
    return tdm_weights_check_unused(ws, st);
}

tdm_code tdm_clip_vision_load(tdm_clip_vision **out, const tdm_clip_vision_config *cfg, tdm_weights *ws,
                              tdm_status *st) {
    *out = NULL;
    tdm_clip_vision *m = calloc(1, sizeof *m);
    if (!m) {
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "clip vision: out of memory");
    }
    m->ws = *ws; /* ownership moves in */
    memset(ws, 0, sizeof *ws);
    m->cfg = *cfg;
    tdm_code rc = tdm_clip_vision_config_validate(cfg, "clip vision config", st);
    if (!rc) rc = load_all(m, st);
    if (rc) {
        tdm_clip_vision_free(m);
        return rc;
    }
    *out = m;
    return TDM_OK;
}

static tdm_code load_file(tdm_clip_vision **out, const tdm_clip_vision_config *cfg, const char *path,
                          const char *prefix, tdm_name_mapper mapper, tdm_status *st) {
    tdm_weights ws;
    tdm_weights_init(&ws, "vision tower");
    tdm_code rc = tdm_weights_add_file(&ws, path, prefix, mapper, NULL, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    return tdm_clip_vision_load(out, cfg, &ws, st);
}

tdm_code tdm_clip_vision_load_dir(tdm_clip_vision **out, const char *dir, tdm_status *st) {
    *out = NULL;
    char path[4096];
    tdm_clip_vision_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TDM_TRY(tdm_clip_vision_config_load(path, &cfg, st));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return load_file(out, &cfg, path, "", tdm_clip_vision_hf_mapper, st);
}

tdm_code tdm_clip_vision_load_openclip(tdm_clip_vision **out, const char *path, const char *prefix, int act,
                                       tdm_status *st) {
    *out = NULL;
    tdm_safetensors f;
    TDM_TRY(tdm_st_open(&f, path, st));
    tdm_clip_vision_config cfg;
    tdm_code rc = tdm_clip_vision_config_infer_openclip(&f, prefix, &cfg, st);
    tdm_st_close(&f);
    if (rc) return rc;
    if (act >= 0) cfg.hidden_act = (tdm_clip_act)act;
    return load_file(out, &cfg, path, prefix ? prefix : "", tdm_clip_vision_openclip_mapper, st);
}

void tdm_clip_vision_free(tdm_clip_vision *m) {
    if (!m) return;
    tdm_weights_free(&m->ws);
    free(m->layers);
    free(m);
}

/* ---- forward ---------------------------------------------------------------------------------- */

static void activation(const tdm_exec *ex, tdm_clip_act act, float *x, int64_t n) {
    switch (act) {
    case TDM_CLIP_ACT_QUICK_GELU: tdm_activation(ex, TDM_ACT_QUICK_GELU, x, n); break;
    case TDM_CLIP_ACT_GELU: tdm_activation(ex, TDM_ACT_GELU, x, n); break;
    case TDM_CLIP_ACT_GELU_TANH: tdm_activation(ex, TDM_ACT_GELU_TANH, x, n); break;
    }
}

/* CLIPEncoderLayer on h [M = B*T, C] in place (no mask). Scratch: t, q, k, v [M, C], f [M, I]. */
static tdm_code layer_fwd(const tdm_clip_vision_config *c, const tdm_exec *ex, const tdm_clip_text_layer *l, float *h,
                          int64_t B, int64_t T, float *t, float *q, float *k, float *v, float *f) {
    const int64_t C = c->hidden_size, I = c->intermediate_size, M = B * T, H = c->num_attention_heads, D = C / H;
    const float eps = (float)c->layer_norm_eps;
    TDM_TRY(tdm_layer_norm(ex, h, M, C, eps, &l->ln1_w, &l->ln1_b, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->q_w, &l->q_b, q));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->k_w, &l->k_b, k));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->v_w, &l->v_b, v));
    TDM_TRY(tdm_attention(ex, q, C, k, C, v, C, B, H, T, T, D, (float)(1.0 / sqrt((double)D)), 0, NULL, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->o_w, &l->o_b, q));
    for (int64_t i = 0; i < M * C; i++) h[i] += q[i];
    TDM_TRY(tdm_layer_norm(ex, h, M, C, eps, &l->ln2_w, &l->ln2_b, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->fc1_w, &l->fc1_b, f));
    activation(ex, c->hidden_act, f, M * I);
    TDM_TRY(tdm_linear(ex, f, M, I, &l->fc2_w, &l->fc2_b, q));
    for (int64_t i = 0; i < M * C; i++) h[i] += q[i];
    return TDM_OK;
}

tdm_code tdm_clip_vision_forward(const tdm_clip_vision *m, const tdm_exec *ex, tdm_arena *arena, const float *pixels,
                                 int64_t B, tdm_clip_vision_hidden_fn on_hidden, void *user, float *last_hidden,
                                 float *pooled, float *image_embeds, tdm_status *st) {
    const tdm_clip_vision_config *c = &m->cfg;
    if (B < 1 || B > (1 << 16))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip vision: batch size %lld is invalid", (long long)B);
    if (image_embeds && !m->has_projection)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip vision: image_embeds requested but the model has no "
                        "visual_projection.weight");
    const int64_t C = c->hidden_size, I = c->intermediate_size, S = c->image_size;
    const int64_t g = S / c->patch_size, NP = g * g, T = NP + 1, M = B * T;
    const float eps = (float)c->layer_norm_eps;

    tdm_arena_mark mark = tdm_arena_get_mark(arena);
    const size_t mc = (size_t)(M * C) * sizeof(float);
    float *h = tdm_arena_alloc(arena, mc);                                   /* [B, T, C] */
    float *t = tdm_arena_alloc(arena, mc);                                   /* [B, T, C] */
    float *q = tdm_arena_alloc(arena, mc);                                   /* [B, T, C] */
    float *k = tdm_arena_alloc(arena, mc);                                   /* [B, T, C] */
    float *v = tdm_arena_alloc(arena, mc);                                   /* [B, T, C] */
    float *f = tdm_arena_alloc(arena, (size_t)(M * I) * sizeof(float));     /* [B, T, I] */
    float *patches = tdm_arena_alloc(arena, (size_t)(B * C * NP) * sizeof(float)); /* [B, C, g, g] */
    float *cls = tdm_arena_alloc(arena, (size_t)C * sizeof(float));          /* [C] */
    float *pos = tdm_arena_alloc(arena, (size_t)(T * C) * sizeof(float));    /* [T, C] */
    tdm_code rc = TDM_OK;
    if (!h || !t || !q || !k || !v || !f || !patches || !cls || !pos)
        rc = tdm_fail(st, TDM_ERR_NOMEM, "clip vision: out of memory");
    /* embeddings: [class | patches] + positions, then pre_layrnorm */
    if (!rc) rc = tdm_conv2d(ex, pixels, B, c->num_channels, S, S, &m->patch_w, NULL, c->patch_size, 0, patches);
    if (!rc) rc = tdm_tensor_to_f32(&m->class_emb, cls, st);
    if (!rc) rc = tdm_tensor_to_f32(&m->pos_emb, pos, st);
    for (int64_t b = 0; !rc && b < B; b++) {
        float *hb = h + b * T * C;
        for (int64_t j = 0; j < C; j++) hb[j] = cls[j] + pos[j];
        for (int64_t p = 0; p < NP; p++)
            for (int64_t j = 0; j < C; j++)
                hb[(1 + p) * C + j] = patches[(b * C + j) * NP + p] + pos[(1 + p) * C + j];
    }
    if (!rc) rc = tdm_layer_norm(ex, h, M, C, eps, &m->pre_ln_w, &m->pre_ln_b, h);
    for (int li = 0; !rc; li++) {
        if (on_hidden) on_hidden(user, li, h, B, T, C); /* hidden_states[li] */
        if (li == c->num_hidden_layers) break;
        rc = layer_fwd(c, ex, &m->layers[li], h, B, T, t, q, k, v, f);
    }
    if (!rc && last_hidden) memcpy(last_hidden, h, mc);
    /* pooled = post_layernorm(CLS rows) */
    if (!rc && (pooled || image_embeds)) {
        for (int64_t b = 0; b < B; b++) memcpy(t + b * C, h + b * T * C, (size_t)C * sizeof(float));
        rc = tdm_layer_norm(ex, t, B, C, eps, &m->post_ln_w, &m->post_ln_b, q); /* q: [B, C] */
        if (!rc && pooled) memcpy(pooled, q, (size_t)(B * C) * sizeof(float));
        if (!rc && image_embeds) rc = tdm_linear(ex, q, B, C, &m->proj_w, NULL, image_embeds);
    }
    tdm_arena_reset(arena, mark);
    return rc;
}

/* ---- preprocessing ---------------------------------------------------------------------------- */

void tdm_clip_image_proc_default(tdm_clip_image_proc *p, int n) {
    memset(p, 0, sizeof *p);
    p->do_resize = 1;
    p->resize_mode = TDM_CLIP_RESIZE_SHORTEST;
    p->size = p->size_h = p->size_w = n;
    p->resample = TDM_RESAMPLE_BICUBIC;
    p->do_center_crop = 1;
    p->crop_h = p->crop_w = n;
    p->do_rescale = 1;
    p->rescale_factor = 1.0 / 255.0;
    p->do_normalize = 1;
    for (int i = 0; i < 3; i++) { /* OpenAI CLIP constants (io/image_ops.h) */
        p->mean[i] = tdm_clip_mean[i];
        p->std[i] = tdm_clip_std[i];
    }
}

/* "size" / "crop_size": an integer or {"shortest_edge": n} / {"height": h, "width": w}. */
static tdm_code parse_size(const cJSON *obj, const char *key, const char *what, int *shortest, int *h, int *w,
                           tdm_status *st) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, key);
    long v;
    if (!s) return TDM_OK;
    if (cJSON_IsNumber(s)) {
        TDM_TRY(tdm_json_int(obj, key, what, 0, 0, 1, 16384, &v, st));
        if (shortest) *shortest = 1;
        *h = *w = (int)v;
        return TDM_OK;
    }
    if (!cJSON_IsObject(s))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be an integer or an object", what, key);
    char sub[256];
    snprintf(sub, sizeof sub, "%s: field '%s'", what, key);
    if (cJSON_GetObjectItemCaseSensitive(s, "shortest_edge")) {
        if (!shortest)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field '%s' with 'shortest_edge' is not supported", what, key);
        TDM_TRY(tdm_json_int(s, "shortest_edge", sub, 0, 0, 1, 16384, &v, st));
        *shortest = 1;
        *h = *w = (int)v;
        return TDM_OK;
    }
    TDM_TRY(tdm_json_int(s, "height", sub, 0, 0, 1, 16384, &v, st));
    *h = (int)v;
    TDM_TRY(tdm_json_int(s, "width", sub, 0, 0, 1, 16384, &v, st));
    *w = (int)v;
    if (shortest) *shortest = 0;
    return TDM_OK;
}

static tdm_code parse_triple(const cJSON *obj, const char *key, const char *what, double *out, int positive,
                             tdm_status *st) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!a) return TDM_OK;
    if (cJSON_IsNumber(a)) {
        out[0] = out[1] = out[2] = a->valuedouble;
    } else if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3) {
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(a, i);
            if (!cJSON_IsNumber(e))
                return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must hold 3 numbers", what, key);
            out[i] = e->valuedouble;
        }
    } else {
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be a number or an array of 3 numbers", what, key);
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(out[i]) || (positive && !(out[i] > 0)))
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s'[%d] = %g is invalid", what, key, i, out[i]);
    return TDM_OK;
}

tdm_code tdm_clip_image_proc_from_json(const cJSON *obj, const char *what, int default_size, tdm_clip_image_proc *out,
                                       tdm_status *st) {
    tdm_clip_image_proc p;
    tdm_clip_image_proc_default(&p, default_size);
    TDM_TRY(tdm_json_bool(obj, "do_resize", what, 1, p.do_resize, &p.do_resize, st));
    TDM_TRY(tdm_json_bool(obj, "do_center_crop", what, 1, p.do_center_crop, &p.do_center_crop, st));
    TDM_TRY(tdm_json_bool(obj, "do_rescale", what, 1, p.do_rescale, &p.do_rescale, st));
    TDM_TRY(tdm_json_bool(obj, "do_normalize", what, 1, p.do_normalize, &p.do_normalize, st));
    int shortest = 1;
    TDM_TRY(parse_size(obj, "size", what, &shortest, &p.size_h, &p.size_w, st));
    p.resize_mode = shortest ? TDM_CLIP_RESIZE_SHORTEST : TDM_CLIP_RESIZE_EXACT;
    p.size = p.size_h;
    TDM_TRY(parse_size(obj, "crop_size", what, NULL, &p.crop_h, &p.crop_w, st));
    long rs;
    TDM_TRY(tdm_json_int(obj, "resample", what, 1, 3, 0, 5, &rs, st));
    if (rs == 3) p.resample = TDM_RESAMPLE_BICUBIC;
    else if (rs == 2) p.resample = TDM_RESAMPLE_BILINEAR;
    else if (rs == 1) p.resample = TDM_RESAMPLE_LANCZOS;
    else
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field 'resample' = %ld is not supported (1 lanczos, 2 bilinear, "
                        "3 bicubic)", what, rs);
    TDM_TRY(tdm_json_num(obj, "rescale_factor", what, 1, p.rescale_factor, 0.0, 1e6, &p.rescale_factor, st));
    TDM_TRY(parse_triple(obj, "image_mean", what, p.mean, 0, st));
    TDM_TRY(parse_triple(obj, "image_std", what, p.std, 1, st));
    *out = p;
    return TDM_OK;
}

tdm_code tdm_clip_image_proc_load(const char *path, int default_size, tdm_clip_image_proc *p, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_clip_image_proc_from_json(j, path, default_size, p, st);
    cJSON_Delete(j);
    return rc;
}

static tdm_code check_side(long v, const char *what, int w, int h, tdm_status *st) {
    if (v < 1 || v > TDM_IMAGE_MAX_SIDE)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip preprocess: %s of a %dx%d image would be %ld px (allowed 1..%d)",
                        what, w, h, v, TDM_IMAGE_MAX_SIDE);
    return TDM_OK;
}

/* Size after the resize step (before crop / pad). */
static tdm_code resized_size(const tdm_clip_image_proc *p, int w, int h, int *rw, int *rh, tdm_status *st) {
    if (w < 1 || h < 1 || w > TDM_IMAGE_MAX_SIDE || h > TDM_IMAGE_MAX_SIDE)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip preprocess: image size %dx%d is outside 1..%d a side", w, h,
                        TDM_IMAGE_MAX_SIDE);
    *rw = w;
    *rh = h;
    if (!p->do_resize) return TDM_OK;
    long nw, nh;
    switch (p->resize_mode) {
    case TDM_CLIP_RESIZE_SHORTEST: { /* short side -> n, long side -> int(n * long / short) */
        int sw, sh;
        TDM_TRY(tdm_shortest_edge_size(w, h, p->size, &sw, &sh, st));
        nw = sw;
        nh = sh;
        break;
    }
    case TDM_CLIP_RESIZE_EXACT:
        nw = p->size_w;
        nh = p->size_h;
        break;
    default: { /* ResizeMaxSize: round(side * n / long) (Python round: half to even) */
        const double scale = (double)p->size / (double)(w > h ? w : h);
        nw = (long)nearbyint((double)w * scale);
        nh = (long)nearbyint((double)h * scale);
        break;
    }
    }
    TDM_TRY(check_side(nw, "the resized width", w, h, st));
    TDM_TRY(check_side(nh, "the resized height", w, h, st));
    *rw = (int)nw;
    *rh = (int)nh;
    return TDM_OK;
}

tdm_code tdm_clip_image_proc_out_size(const tdm_clip_image_proc *p, int w, int h, int *out_w, int *out_h,
                                      tdm_status *st) {
    int rw, rh;
    TDM_TRY(resized_size(p, w, h, &rw, &rh, st));
    if (p->do_resize && p->resize_mode == TDM_CLIP_RESIZE_LONGEST_PAD) rw = rh = p->size;
    else if (p->do_center_crop) {
        rw = p->crop_w;
        rh = p->crop_h;
    }
    TDM_TRY(check_side(rw, "the output width", w, h, st));
    TDM_TRY(check_side(rh, "the output height", w, h, st));
    *out_w = rw;
    *out_h = rh;
    return TDM_OK;
}

/* dst (zeroed, dw x dh) gets src placed with its top-left corner at (left, top) (OpenCLIP F.pad fill 0). */
static void paste(const tdm_image *src, tdm_image *dst, int left, int top) {
    memset(dst->pixels, 0, (size_t)dst->width * dst->height * 3);
    for (int y = 0; y < src->height; y++) {
        const int dy = y + top;
        if (dy < 0 || dy >= dst->height) continue;
        for (int x = 0; x < src->width; x++) {
            const int dx = x + left;
            if (dx < 0 || dx >= dst->width) continue;
            memcpy(dst->pixels + ((size_t)dy * dst->width + dx) * 3, src->pixels + ((size_t)y * src->width + x) * 3, 3);
        }
    }
}

tdm_code tdm_clip_preprocess(const tdm_clip_image_proc *p, const tdm_image *img, float *pixels, tdm_image *resized,
                             tdm_image *cropped, tdm_status *st) {
    if (resized) memset(resized, 0, sizeof *resized);
    if (cropped) memset(cropped, 0, sizeof *cropped);
    if (!img || !img->pixels || img->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip preprocess: the image must be RGB8");
    int rw, rh, ow, oh;
    TDM_TRY(resized_size(p, img->width, img->height, &rw, &rh, st));
    TDM_TRY(tdm_clip_image_proc_out_size(p, img->width, img->height, &ow, &oh, st));
    tdm_image r = {0, 0, 0, NULL}, c = {0, 0, 0, NULL};
    tdm_code rc = TDM_OK;
    /* 1. PIL resize (uint8) */
    if (p->do_resize) rc = tdm_image_resize(img, rw, rh, p->resample, &r, st);
    const tdm_image *cur = p->do_resize ? &r : img;
    /* 2. centre crop (transformers: floor) or ResizeMaxSize zero padding (left/top = pad // 2) */
    if (!rc) {
        if (p->do_resize && p->resize_mode == TDM_CLIP_RESIZE_LONGEST_PAD) {
            rc = tdm_image_alloc(&c, ow, oh, st);
            if (!rc) paste(cur, &c, (ow - cur->width) / 2, (oh - cur->height) / 2);
        } else if (p->do_center_crop) {
            rc = tdm_image_center_crop_mode(cur, ow, oh, TDM_CROP_TRANSFORMERS, &c, st);
            if (!rc && (c.width != ow || c.height != oh)) /* transformers' padding path shrinks the result */
                rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "clip preprocess: a %dx%d crop of a %dx%d image is not supported",
                              ow, oh, cur->width, cur->height);
        } else {
            rc = tdm_image_alloc(&c, ow, oh, st);
            if (!rc) memcpy(c.pixels, cur->pixels, (size_t)ow * oh * 3);
        }
    }
    /* 3. x * rescale_factor then (x - mean) / std, in float32 as transformers 4.30 (rescale casts to
     * float32, normalize computes in the image dtype) */
    if (!rc) {
        const size_t plane = (size_t)ow * oh;
        for (int ch = 0; ch < 3; ch++) {
            const float mean = (float)p->mean[ch], sd = (float)p->std[ch];
            for (size_t i = 0; i < plane; i++) {
                const uint8_t u = c.pixels[i * 3 + ch];
                float x = p->do_rescale ? (float)((double)u * p->rescale_factor) : (float)u;
                if (p->do_normalize) x = (x - mean) / sd;
                pixels[ch * plane + i] = x;
            }
        }
    }
    if (!rc && resized && p->do_resize) {
        *resized = r;
        r.pixels = NULL;
    }
    if (!rc && cropped) {
        *cropped = c;
        c.pixels = NULL;
    }
    tdm_image_free(&r);
    tdm_image_free(&c);
    return rc;
}
