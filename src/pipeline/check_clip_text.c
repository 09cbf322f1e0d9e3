/* `tandem check` handler for the CLIP text encoder kinds ("clip-text-*"): runs input_ids through the
 * transformers folder (case.json "model", default model/) and compares last_hidden_state,
 * pooler_output, hidden_states_i, penultimate_final_ln (clip skip 2 with final_layer_norm, computed by a
 * second run that stops after the penultimate layer) and text_embeds (when the model has a projection);
 * the raw penultimate state (SDXL mode) must equal hidden_states[n-1] of the full run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/clip_text.h"
#include "pipeline/check.h"

typedef struct hidden_ctx {
    float **h; /* [n_layers + 1][B * L * C] */
    int n;
    int oom;
} hidden_ctx;

static void on_hidden(void *user, int index, const float *h, int64_t B, int64_t L, int64_t C) {
    hidden_ctx *hc = user;
    if (index < 0 || index >= hc->n) return;
    hc->h[index] = malloc((size_t)(B * L * C) * sizeof(float));
    if (!hc->h[index]) {
        hc->oom = 1;
        return;
    }
    memcpy(hc->h[index], h, (size_t)(B * L * C) * sizeof(float));
}

static tdm_code compare_if_present(tdm_check *c, const char *name, const float *x, int64_t n, tdm_status *st) {
    if (!tdm_st_find(&c->io, name)) return TDM_OK;
    return tdm_check_compare(c, name, x, n, st);
}

tdm_code tdm_check_clip_text(tdm_check *c, tdm_status *st) {
    char model_rel[256], path[4096];
    TDM_TRY(tdm_json_str(c->case_json, "model", "case.json", 1, "model", model_rel, sizeof model_rel, st));
    tdm_check_path(c, model_rel, path, sizeof path);
    tdm_clip_text *m;
    TDM_TRY(tdm_clip_text_load_dir(&m, path, st));
    const tdm_clip_text_config *cfg = &m->cfg;
    float *idf = NULL;
    tdm_tensor tid;
    int32_t *ids = NULL;
    float *last = NULL, *pooled = NULL, *embeds = NULL, *pen = NULL;
    hidden_ctx hc = {NULL, cfg->num_hidden_layers + 1, 0};
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    tdm_code rc = tdm_check_input(c, "input_ids", &idf, &tid, st);
    if (!rc && tid.ndim != 2) rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: input_ids must be [B, L]", c->dir);
    int64_t B = 0, L = 0, C = cfg->hidden_size;
    if (!rc) {
        B = tid.shape[0];
        L = tid.shape[1];
        ids = malloc((size_t)(B * L) * sizeof *ids);
        last = malloc((size_t)(B * L * C) * sizeof(float));
        pen = malloc((size_t)(B * L * C) * sizeof(float));
        pooled = malloc((size_t)(B * C) * sizeof(float));
        embeds = malloc((size_t)(B * cfg->projection_dim) * sizeof(float));
        hc.h = calloc((size_t)hc.n, sizeof *hc.h);
        if (!ids || !last || !pen || !pooled || !embeds || !hc.h) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; !rc && i < B * L; i++) ids[i] = (int32_t)idf[i]; /* ids < 2^24: exact in f32 */

    /* full run: last_hidden_state, pooled, text_embeds, every hidden state */
    tdm_clip_text_opts opts;
    tdm_clip_text_opts_init(&opts);
    opts.on_hidden = on_hidden;
    opts.user = &hc;
    if (!rc)
        rc = tdm_clip_text_forward(m, &c->ex, &arena, ids, B, L, &opts, last, pooled,
                                   m->has_projection ? embeds : NULL, st);
    if (!rc && hc.oom) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc) rc = tdm_check_compare(c, "last_hidden_state", last, B * L * C, st);
    if (!rc) rc = compare_if_present(c, "pooler_output", pooled, B * C, st);
    if (!rc && m->has_projection) rc = compare_if_present(c, "text_embeds", embeds, B * cfg->projection_dim, st);
    if (!rc && !m->has_projection && tdm_st_find(&c->io, "text_embeds"))
        tdm_check_exact(c, "text_embeds", 0, "expected by the fixture but the model has no text_projection.weight");
    for (int i = 0; !rc && i < hc.n; i++) {
        char name[64];
        snprintf(name, sizeof name, "hidden_states_%d", i);
        rc = compare_if_present(c, name, hc.h[i], B * L * C, st);
    }
    /* clip skip 2 (A1111) / diffusers clip_skip=1: final_layer_norm(hidden_states[-2]); stops early */
    tdm_clip_text_opts_init(&opts);
    opts.skip = 2;
    if (!rc && cfg->num_hidden_layers >= 1) {
        rc = tdm_clip_text_forward(m, &c->ex, &arena, ids, B, L, &opts, pen, NULL, NULL, st);
        if (!rc) rc = compare_if_present(c, "penultimate_final_ln", pen, B * L * C, st);
    }
    /* SDXL: raw hidden_states[-2] */
    opts.final_ln = 0;
    if (!rc && cfg->num_hidden_layers >= 1) {
        rc = tdm_clip_text_forward(m, &c->ex, &arena, ids, B, L, &opts, pen, NULL, NULL, st);
        if (!rc) {
            int ok = !memcmp(pen, hc.h[hc.n - 2], (size_t)(B * L * C) * sizeof(float));
            tdm_check_exact(c, "penultimate (raw, early stop)", ok,
                            ok ? "identical to hidden_states[-2] of the full run" : "differs from the full run");
        }
    }
    for (int i = 0; hc.h && i < hc.n; i++) free(hc.h[i]);
    free(hc.h);
    tdm_arena_free(&arena);
    free(idf);
    free(ids);
    free(last);
    free(pen);
    free(pooled);
    free(embeds);
    tdm_clip_text_free(m);
    return rc;
}
