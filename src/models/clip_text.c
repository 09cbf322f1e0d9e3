/* CLIP text encoder: weight loading and the forward pass (see clip_text.h for the formulas and their
 * transformers source). */
#include "models/clip_text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading --------------------------------------------------------------------------------- */

static tdm_code get2(tdm_weights *ws, tdm_tensor *out, int64_t d0, int64_t d1, tdm_status *st, const char *fmt, ...)
    TDM_PRINTF(6, 7);
static tdm_code get2(tdm_weights *ws, tdm_tensor *out, int64_t d0, int64_t d1, tdm_status *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tdm_code rc = tdm_weights_vgetf(ws, out, d1 > 0 ? 2 : 1, d0, d1, 0, 0, st, fmt, ap);
    va_end(ap);
    return rc;
}

tdm_code tdm_clip_layer_load(tdm_weights *ws, tdm_clip_text_layer *l, const char *p, int i, int64_t C, int64_t I,
                             tdm_status *st) {
    TDM_TRY(get2(ws, &l->ln1_w, C, 0, st, "%s.%d.layer_norm1.weight", p, i));
    TDM_TRY(get2(ws, &l->ln1_b, C, 0, st, "%s.%d.layer_norm1.bias", p, i));
    TDM_TRY(get2(ws, &l->q_w, C, C, st, "%s.%d.self_attn.q_proj.weight", p, i));
    TDM_TRY(get2(ws, &l->q_b, C, 0, st, "%s.%d.self_attn.q_proj.bias", p, i));
    TDM_TRY(get2(ws, &l->k_w, C, C, st, "%s.%d.self_attn.k_proj.weight", p, i));
    TDM_TRY(get2(ws, &l->k_b, C, 0, st, "%s.%d.self_attn.k_proj.bias", p, i));
    TDM_TRY(get2(ws, &l->v_w, C, C, st, "%s.%d.self_attn.v_proj.weight", p, i));
    TDM_TRY(get2(ws, &l->v_b, C, 0, st, "%s.%d.self_attn.v_proj.bias", p, i));
    TDM_TRY(get2(ws, &l->o_w, C, C, st, "%s.%d.self_attn.out_proj.weight", p, i));
    TDM_TRY(get2(ws, &l->o_b, C, 0, st, "%s.%d.self_attn.out_proj.bias", p, i));
    TDM_TRY(get2(ws, &l->ln2_w, C, 0, st, "%s.%d.layer_norm2.weight", p, i));
    TDM_TRY(get2(ws, &l->ln2_b, C, 0, st, "%s.%d.layer_norm2.bias", p, i));
    TDM_TRY(get2(ws, &l->fc1_w, I, C, st, "%s.%d.mlp.fc1.weight", p, i));
    TDM_TRY(get2(ws, &l->fc1_b, I, 0, st, "%s.%d.mlp.fc1.bias", p, i));
    TDM_TRY(get2(ws, &l->fc2_w, C, I, st, "%s.%d.mlp.fc2.weight", p, i));
    return get2(ws, &l->fc2_b, C, 0, st, "%s.%d.mlp.fc2.bias", p, i);
}

static tdm_code load_all(tdm_clip_text *m, tdm_status *st) {
    const tdm_clip_text_config *c = &m->cfg;
    tdm_weights *ws = &m->ws;
    const int64_t C = c->hidden_size, I = c->intermediate_size;
    TDM_TRY(get2(ws, &m->tok_emb, c->vocab_size, C, st, "text_model.embeddings.token_embedding.weight"));
    TDM_TRY(get2(ws, &m->pos_emb, c->max_position_embeddings, C, st,
                 "text_model.embeddings.position_embedding.weight"));
    if (!tdm_tensor_is_contiguous(&m->tok_emb) || !tdm_tensor_is_contiguous(&m->pos_emb))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: embedding tables must be contiguous", ws->what);
    m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
    if (!m->layers) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
    for (int i = 0; i < c->num_hidden_layers; i++)
        TDM_TRY(tdm_clip_layer_load(ws, &m->layers[i], "text_model.encoder.layers", i, C, I, st));
    TDM_TRY(get2(ws, &m->final_ln_w, C, 0, st, "text_model.final_layer_norm.weight"));
    TDM_TRY(get2(ws, &m->final_ln_b, C, 0, st, "text_model.final_layer_norm.bias"));
    const int64_t pshape[2] = {c->projection_dim, C};
    TDM_TRY(tdm_weights_get_opt(ws, "text_projection.weight", 2, pshape, &m->proj_w, &m->has_projection, st));
    return tdm_weights_check_unused(ws, st);
}

tdm_code tdm_clip_text_load(tdm_clip_text **out, const tdm_clip_text_config *cfg, tdm_weights *ws,
                            tdm_status *st) {
    *out = NULL;
    tdm_clip_text *m = calloc(1, sizeof *m);
    if (!m) {
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "clip text: out of memory");
    }
    m->ws = *ws; /* ownership moves in */
    memset(ws, 0, sizeof *ws);
    m->cfg = *cfg;
    if (cfg->is_clip_model) m->cfg.projection_dim = cfg->clip_model_projection_dim; /* CLIPModel's width */
    tdm_code rc = tdm_clip_text_config_validate(&m->cfg, "clip text config", st);
    if (!rc) rc = load_all(m, st);
    if (rc) {
        tdm_clip_text_free(m);
        return rc;
    }
    *out = m;
    return TDM_OK;
}

tdm_code tdm_clip_text_load_dir(tdm_clip_text **out, const char *dir, tdm_status *st) {
    *out = NULL;
    char path[4096];
    tdm_clip_text_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    TDM_TRY(tdm_clip_text_config_load(path, &cfg, st));
    tdm_weights ws;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    TDM_TRY(tdm_weights_open_file(&ws, "text encoder", path, "", tdm_clip_text_mapper_for(&cfg), NULL, st));
    return tdm_clip_text_load(out, &cfg, &ws, st);
}

void tdm_clip_text_free(tdm_clip_text *m) {
    if (!m) return;
    tdm_weights_free(&m->ws);
    free(m->layers);
    free(m);
}

/* ---- forward --------------------------------------------------------------------------------- */

void tdm_clip_text_opts_init(tdm_clip_text_opts *o) {
    memset(o, 0, sizeof *o);
    o->skip = 1;
    o->final_ln = 1;
}

int64_t tdm_clip_text_pool_index(const tdm_clip_text_config *cfg, const int32_t *ids, int64_t L) {
    int64_t best = 0;
    if (cfg->eos_token_id == 2) { /* legacy: first position of the highest id (torch argmax) */
        for (int64_t i = 1; i < L; i++)
            if (ids[i] > ids[best]) best = i;
        return best;
    }
    for (int64_t i = 0; i < L; i++)
        if (ids[i] == cfg->eos_token_id) return i;
    return 0;
}

/* dst[C] = row r of a contiguous [rows, C] float table, widened. */
static void table_row(const tdm_tensor *t, int64_t r, int64_t C, float *dst) {
    const size_t es = tdm_dtype_size(t->dtype);
    const int64_t shape[1] = {C};
    tdm_tensor row = tdm_tensor_view(t->dtype, (char *)t->data + (size_t)(r * C) * es, 1, shape);
    tdm_tensor_to_f32(&row, dst, NULL); /* contiguous float view: cannot fail */
}

static void activation(tdm_clip_act act, float *x, int64_t n) {
    switch (act) {
    case TDM_CLIP_ACT_QUICK_GELU: tdm_quick_gelu(x, n); break;
    case TDM_CLIP_ACT_GELU: tdm_gelu(x, n); break;
    case TDM_CLIP_ACT_GELU_TANH: tdm_gelu_tanh(x, n); break;
    }
}

/* CLIPEncoderLayer on h [M = B*L, C] in place. Scratch: t, q, k, v [M, C], f [M, I]. */
static tdm_code layer_fwd(const tdm_clip_text *m, const tdm_exec *ex, const tdm_clip_text_layer *l, float *h,
                          int64_t B, int64_t L, float *t, float *q, float *k, float *v, float *f) {
    const tdm_clip_text_config *c = &m->cfg;
    const int64_t C = c->hidden_size, I = c->intermediate_size, M = B * L, H = c->num_attention_heads, D = C / H;
    const float eps = (float)c->layer_norm_eps;
    TDM_TRY(tdm_layer_norm(ex, h, M, C, eps, &l->ln1_w, &l->ln1_b, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->q_w, &l->q_b, q));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->k_w, &l->k_b, k));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->v_w, &l->v_b, v));
    TDM_TRY(tdm_attention(ex, q, C, k, C, v, C, B, H, L, L, D, (float)(1.0 / sqrt((double)D)), 1, NULL, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->o_w, &l->o_b, q));
    for (int64_t i = 0; i < M * C; i++) h[i] += q[i];
    TDM_TRY(tdm_layer_norm(ex, h, M, C, eps, &l->ln2_w, &l->ln2_b, t));
    TDM_TRY(tdm_linear(ex, t, M, C, &l->fc1_w, &l->fc1_b, f));
    activation(c->hidden_act, f, M * I);
    TDM_TRY(tdm_linear(ex, f, M, I, &l->fc2_w, &l->fc2_b, q));
    for (int64_t i = 0; i < M * C; i++) h[i] += q[i];
    return TDM_OK;
}

tdm_code tdm_clip_text_forward(const tdm_clip_text *m, const tdm_exec *ex, tdm_arena *arena, const int32_t *ids,
                               int64_t B, int64_t L, const tdm_clip_text_opts *opts, float *hidden, float *pooled,
                               float *text_embeds, tdm_status *st) {
    const tdm_clip_text_config *c = &m->cfg;
    tdm_clip_text_opts dflt;
    tdm_clip_text_opts_init(&dflt);
    if (!opts) opts = &dflt;
    const int n_layers = c->num_hidden_layers;
    const int skip = opts->skip < 1 ? 1 : opts->skip;
    if (skip > n_layers + 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip text: skip %d is more than the %d hidden states", skip,
                        n_layers + 1);
    if (B < 1 || B > (1 << 20))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip text: batch size %lld is invalid", (long long)B);
    if (L < 1 || L > c->max_position_embeddings)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip text: sequence length %lld is outside [1, %d] "
                        "(max_position_embeddings)", (long long)L, c->max_position_embeddings);
    if (text_embeds && !m->has_projection)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip text: text_embeds requested but the model has no "
                        "text_projection.weight");
    for (int64_t i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "clip text: token id %ld at [%lld, %lld] is outside the vocabulary [0, %d)", (long)ids[i],
                            (long long)(i / L), (long long)(i % L), c->vocab_size);
    const int64_t C = c->hidden_size, I = c->intermediate_size, M = B * L;
    const int sel = n_layers + 1 - skip; /* index into hidden_states */
    const int need_last = pooled || text_embeds || opts->on_hidden;
    const int last = need_last ? n_layers : sel; /* layers to run */
    const float eps = (float)c->layer_norm_eps;

    tdm_arena_mark mark = tdm_arena_get_mark(arena);
    const size_t mc = (size_t)(M * C) * sizeof(float);
    float *h = tdm_arena_alloc(arena, mc);                               /* [B, L, C] */
    float *t = tdm_arena_alloc(arena, mc);                               /* [B, L, C] */
    float *q = tdm_arena_alloc(arena, mc);                               /* [B, L, C] */
    float *k = tdm_arena_alloc(arena, mc);                               /* [B, L, C] */
    float *v = tdm_arena_alloc(arena, mc);                               /* [B, L, C] */
    float *f = tdm_arena_alloc(arena, (size_t)(M * I) * sizeof(float)); /* [B, L, I] */
    tdm_code rc = TDM_OK;
    if (!h || !t || !q || !k || !v || !f) rc = tdm_fail(st, TDM_ERR_NOMEM, "clip text: out of memory");

    /* embeddings: token + position (position_ids = arange(L)) */
    for (int64_t i = 0; !rc && i < M; i++) {
        table_row(&m->tok_emb, ids[i], C, h + i * C);
        table_row(&m->pos_emb, i % L, C, t);
        for (int64_t j = 0; j < C; j++) h[i * C + j] += t[j];
    }
    for (int li = 0; !rc; li++) {
        /* h = hidden_states[li] */
        if (opts->on_hidden) opts->on_hidden(opts->user, li, h, B, L, C);
        if (li == sel && hidden) {
            if (opts->final_ln) rc = tdm_layer_norm(ex, h, M, C, eps, &m->final_ln_w, &m->final_ln_b, hidden);
            else memcpy(hidden, h, mc);
        }
        if (rc || li == last) break;
        rc = layer_fwd(m, ex, &m->layers[li], h, B, L, t, q, k, v, f);
    }
    /* pooled = final_layer_norm(last layer) at the pooling position (rows only: layer norm is per row) */
    if (!rc && (pooled || text_embeds)) {
        for (int64_t b = 0; b < B; b++) {
            int64_t p = tdm_clip_text_pool_index(c, ids + b * L, L);
            memcpy(t + b * C, h + (b * L + p) * C, (size_t)C * sizeof(float));
        }
        rc = tdm_layer_norm(ex, t, B, C, eps, &m->final_ln_w, &m->final_ln_b, q); /* q: [B, C] */
        if (!rc && pooled) memcpy(pooled, q, (size_t)(B * C) * sizeof(float));
        if (!rc && text_embeds) rc = tdm_linear(ex, q, B, C, &m->proj_w, NULL, text_embeds);
    }
    tdm_arena_reset(arena, mark);
    return rc;
}
