/* Prompt conditioning for generation (A1111 semantics, modules/sd_hijack_clip.py):
 * each prompt -> K windows [bos, 75 tokens, eos] with emphasis weights; every window is encoded on
 * its own by the text encoder (one batched call for all windows of both prompts); emphasis rescales
 * each window (tdm_clip_apply_emphasis: h *= w, then h *= mean_before / mean_after); the windows are
 * concatenated along the sequence axis. When the prompt and the negative prompt need different
 * numbers of windows, the shorter is padded with the encoding of the empty prompt's window
 * ([bos, eos, pad...]), as A1111's pad_cond_uncond. */
#include <stdlib.h>
#include <string.h>

#include "pipeline/generate.h"
#include "models/clip_tokenizer.h"

/* A1111 default comma_padding_backtrack. */
#define GEN_COMMA_BACKTRACK 20

static tdm_code windows_of(const tdm_sd_model *m, const char *text, int emphasis, tdm_clip_windows *w,
                           const char *what, tdm_status *st) {
    tdm_clip_encode_opts o;
    tdm_clip_encode_opts_init(&o);
    o.truncate = 0;
    o.emphasis = emphasis;
    o.pad_id = m->pad_id;
    o.comma_backtrack = emphasis ? GEN_COMMA_BACKTRACK : 0;
    tdm_code rc = tdm_clip_encode_windows(m->tokenizer, text, &o, w, st);
    if (rc) tdm_fail_context(st, "%s", what);
    return rc;
}

static int weights_trivial(const float *w, int n) {
    for (int i = 0; i < n; i++)
        if (w[i] != 1.0f) return 0;
    return 1;
}

tdm_code tdm_gen_encode_text(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_gen_plan *plan,
                             int need_uncond, tdm_text_cond *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    if (!m->tokenizer || !m->text_encoder)
        return tdm_fail(st, TDM_ERR_MISSING, "model has no tokenizer or text encoder loaded");
    const int T = TDM_CLIP_CONTEXT;
    const int C = m->text_encoder->cfg.hidden_size;
    if (m->cross_attention_dim > 0 && C != m->cross_attention_dim)
        return tdm_fail(st, TDM_ERR_FORMAT, "text encoder width %d does not match the UNet cross_attention_dim %d",
                        C, m->cross_attention_dim);
    if (m->text_encoder->cfg.max_position_embeddings < T)
        return tdm_fail(st, TDM_ERR_FORMAT, "text encoder max_position_embeddings %d < %d",
                        m->text_encoder->cfg.max_position_embeddings, T);

    tdm_clip_windows wc = {0}, wu = {0}, we = {0};
    tdm_arena_mark mark;
    int have_mark = 0;
    tdm_code rc = windows_of(m, plan->prompt, plan->emphasis, &wc, "prompt", st);
    if (!rc && need_uncond) rc = windows_of(m, plan->negative, plan->emphasis, &wu, "negative prompt", st);
    int nc = wc.n_windows, nu = need_uncond ? wu.n_windows : 0;
    int K = nc > nu ? nc : nu;
    int need_empty = need_uncond && nc != nu;
    if (!rc && need_empty) rc = windows_of(m, "", 0, &we, "empty prompt", st);
    if (rc) goto done;

    /* All windows in one encoder batch: [cond windows | uncond windows | empty window]. */
    int nb = nc + nu + (need_empty ? 1 : 0);
    out->cond = tdm_arena_alloc(arena, sizeof(float) * (size_t)K * T * C); /* [K*77, C] */
    out->uncond = need_uncond ? tdm_arena_alloc(arena, sizeof(float) * (size_t)K * T * C) : NULL;
    mark = tdm_arena_get_mark(arena); /* the encoder batch below is scratch */
    have_mark = 1;
    int32_t *ids = tdm_arena_alloc(arena, sizeof(int32_t) * (size_t)nb * T);    /* [nb, 77] */
    float *hidden = tdm_arena_alloc(arena, sizeof(float) * (size_t)nb * T * C); /* [nb, 77, C] */
    if (!ids || !hidden || !out->cond || (need_uncond && !out->uncond)) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "text conditioning: out of memory (%d windows)", nb);
        goto done;
    }
    memcpy(ids, wc.ids, sizeof(int32_t) * (size_t)nc * T);
    if (nu) memcpy(ids + (size_t)nc * T, wu.ids, sizeof(int32_t) * (size_t)nu * T);
    if (need_empty) memcpy(ids + (size_t)(nc + nu) * T, we.ids, sizeof(int32_t) * T);

    tdm_clip_text_opts to;
    tdm_clip_text_opts_init(&to);
    /* A1111 clip skip n selects hidden_states[-n] relative to the family's own choice (SD2's encoder
     * already ends at OpenCLIP's penultimate layer). */
    to.skip = m->clip_skip + plan->clip_skip - 1;
    to.final_ln = m->clip_final_ln;
    if (to.skip > m->text_encoder->cfg.num_hidden_layers) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "clip skip %d: the text encoder has only %d layers", plan->clip_skip,
                      m->text_encoder->cfg.num_hidden_layers);
        goto done;
    }
    rc = tdm_clip_text_forward(m->text_encoder, ex, arena, ids, nb, T, &to, hidden, NULL, NULL, st);
    if (rc) goto done;

    if (plan->emphasis) {
        for (int k = 0; k < nc; k++)
            if (!weights_trivial(wc.weights + (size_t)k * T, T))
                tdm_clip_apply_emphasis(hidden + (size_t)k * T * C, wc.weights + (size_t)k * T, C);
        for (int k = 0; k < nu; k++)
            if (!weights_trivial(wu.weights + (size_t)k * T, T))
                tdm_clip_apply_emphasis(hidden + (size_t)(nc + k) * T * C, wu.weights + (size_t)k * T, C);
    }
    const size_t win = (size_t)T * C;
    const float *empty = need_empty ? hidden + (size_t)(nc + nu) * win : NULL;
    for (int k = 0; k < K; k++) {
        memcpy(out->cond + k * win, k < nc ? hidden + k * win : empty, sizeof(float) * win);
        if (need_uncond) memcpy(out->uncond + k * win, k < nu ? hidden + (nc + k) * win : empty, sizeof(float) * win);
    }
    out->n_windows = K;
    out->len = K * T;
    out->C = C;
done:
    if (have_mark) tdm_arena_reset(arena, mark);
    tdm_clip_windows_free(&wc);
    tdm_clip_windows_free(&wu);
    tdm_clip_windows_free(&we);
    return rc;
}

tdm_code tdm_gen_encode_params(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena,
                               const tdm_generate_params *p, tdm_text_cond *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    tdm_gen_plan plan;
    TDM_TRY(tdm_gen_resolve(m, p, &plan, st));
    return tdm_gen_encode_text(m, ex, arena, &plan, plan.use_cfg, out, st);
}
