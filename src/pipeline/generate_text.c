/* Prompt conditioning for generation (A1111 semantics, modules/sd_hijack_clip.py):
 * each prompt -> K windows [bos, 75 tokens, eos] with emphasis weights; every window is encoded on
 * its own by the text encoder (one batched call for all windows of both prompts); emphasis rescales
 * each window (tdm_clip_apply_emphasis: h *= w, then h *= mean_before / mean_after); the windows are
 * concatenated along the sequence axis. When the prompt and the negative prompt need different
 * numbers of windows, the shorter is padded with the encoding of the empty prompt's window
 * ([bos, eos, pad...]), as A1111's pad_cond_uncond.
 *
 * SDXL (pipeline/sdxl.h) runs the same per text tower (text_encoder with its tokenizer and pad, then
 * text_encoder_2 with tokenizer_2's pad "!" and its split quirk), each on its raw penultimate hidden
 * state, and concatenates the towers on the channel axis (768 + 1280); a tower whose windows are fewer
 * (tokenizer_2 may split '!' runs into more tokens) is padded with its empty-prompt window as well. The
 * pooled text_embeds are text_encoder_2's projection of the first window (A1111: the first chunk's
 * pooled output; diffusers: the one 77-token window). An empty negative prompt with
 * force_zeros_for_empty_prompt gives zeros (context and pooled), as diffusers. */
#include <stdlib.h>
#include <string.h>

#include "models/clip_tokenizer.h"
#include "pipeline/generate.h"
#include "pipeline/sdxl.h"

/* A1111 default comma_padding_backtrack. */
#define GEN_COMMA_BACKTRACK 20

static tdm_code windows_of(const tdm_text_tower *tw, const char *text, int emphasis, tdm_clip_windows *w,
                           const char *what, tdm_status *st) {
    tdm_clip_encode_opts o;
    tdm_clip_encode_opts_init(&o);
    o.truncate = 0;
    o.emphasis = emphasis;
    o.pad_id = tw->pad_id;
    o.text.split_token = tw->split_token;
    o.comma_backtrack = emphasis ? GEN_COMMA_BACKTRACK : 0;
    tdm_code rc = tdm_clip_encode_windows(tw->tokenizer, text, &o, w, st);
    if (rc) tdm_fail_context(st, "%s", what);
    return rc;
}

static int weights_trivial(const float *w, int n) {
    for (int i = 0; i < n; i++)
        if (w[i] != 1.0f) return 0;
    return 1;
}

/* One tower's windows of the prompt, the negative prompt and (when some count falls short of K) the
 * empty prompt. */
typedef struct tower_windows {
    tdm_clip_windows wc, wu, we;
    int nc, nu; /* windows of the prompt / negative prompt (nu = 0 when not encoded) */
} tower_windows;

/* Encodes one tower into channels [c0, c0 + Ct) of out->cond / out->uncond ([K*77, C]) and, when pooled
 * is set, text_encoder_2's text_embeds of the first windows into out->pooled_*. */
static tdm_code encode_tower(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_gen_plan *plan,
                             const tdm_text_tower *tw, tower_windows *tv, int K, int encode_uncond, int C, int c0,
                             int pooled, tdm_text_cond *out, tdm_status *st) {
    const int T = TDM_CLIP_CONTEXT;
    const int Ct = tw->encoder->cfg.hidden_size;
    const int nc = tv->nc, nu = tv->nu;
    const int need_empty = nc != K || (encode_uncond && nu != K);
    if (need_empty) TDM_TRY(windows_of(tw, "", 0, &tv->we, "empty prompt", st));
    const int nb = nc + nu + (need_empty ? 1 : 0);
    const int P = pooled ? out->pooled_dim : 0;
    tdm_arena_mark mark = tdm_arena_get_mark(arena); /* the encoder batch below is scratch */
    tdm_code rc = TDM_OK;
    int32_t *ids = tdm_arena_alloc(arena, sizeof(int32_t) * (size_t)nb * T);     /* [nb, 77] */
    float *hidden = tdm_arena_alloc(arena, sizeof(float) * (size_t)nb * T * Ct); /* [nb, 77, Ct] */
    float *te = P ? tdm_arena_alloc(arena, sizeof(float) * (size_t)nb * P) : NULL; /* [nb, P] */
    if (!ids || !hidden || (P && !te)) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "text conditioning: out of memory (%d windows)", nb);
        goto done;
    }
    /* All windows in one encoder batch: [cond windows | uncond windows | empty window]. */
    memcpy(ids, tv->wc.ids, sizeof(int32_t) * (size_t)nc * T);
    if (nu) memcpy(ids + (size_t)nc * T, tv->wu.ids, sizeof(int32_t) * (size_t)nu * T);
    if (need_empty) memcpy(ids + (size_t)(nc + nu) * T, tv->we.ids, sizeof(int32_t) * T);

    tdm_clip_text_opts to;
    tdm_clip_text_opts_init(&to);
    /* A1111 clip skip n selects hidden_states[-n] relative to the family's own choice (SD2's encoder
     * already ends at OpenCLIP's penultimate layer; SDXL takes hidden_states[-2]). */
    to.skip = m->clip_skip + plan->clip_skip - 1;
    to.final_ln = m->clip_final_ln;
    if (to.skip > tw->encoder->cfg.num_hidden_layers) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "clip skip %d: the text encoder has only %d layers", plan->clip_skip,
                      tw->encoder->cfg.num_hidden_layers);
        goto done;
    }
    rc = tdm_clip_text_forward(tw->encoder, ex, arena, ids, nb, T, &to, hidden, NULL, te, st);
    if (rc) goto done;

    if (plan->emphasis) {
        for (int k = 0; k < nc; k++)
            if (!weights_trivial(tv->wc.weights + (size_t)k * T, T))
                tdm_clip_apply_emphasis(hidden + (size_t)k * T * Ct, tv->wc.weights + (size_t)k * T, Ct);
        for (int k = 0; k < nu; k++)
            if (!weights_trivial(tv->wu.weights + (size_t)k * T, T))
                tdm_clip_apply_emphasis(hidden + (size_t)(nc + k) * T * Ct, tv->wu.weights + (size_t)k * T, Ct);
    }
    const size_t win = (size_t)T * Ct;
    const float *empty = need_empty ? hidden + (size_t)(nc + nu) * win : NULL;
    for (int k = 0; k < K; k++) {
        const float *hc = k < nc ? hidden + k * win : empty;
        const float *hu = encode_uncond ? (k < nu ? hidden + (nc + k) * win : empty) : NULL;
        if (Ct == C) { /* one tower: whole windows */
            memcpy(out->cond + k * win, hc, sizeof(float) * win);
            if (hu) memcpy(out->uncond + k * win, hu, sizeof(float) * win);
            continue;
        }
        for (int t = 0; t < T; t++) { /* channels [c0, c0 + Ct) of each token */
            const size_t dst = ((size_t)k * T + t) * C + c0;
            memcpy(out->cond + dst, hc + (size_t)t * Ct, sizeof(float) * Ct);
            if (hu) memcpy(out->uncond + dst, hu + (size_t)t * Ct, sizeof(float) * Ct);
        }
    }
    if (P) {
        memcpy(out->pooled_cond, te, sizeof(float) * P);
        if (encode_uncond) memcpy(out->pooled_uncond, te + (size_t)nc * P, sizeof(float) * P);
    }
done:
    tdm_arena_reset(arena, mark);
    return rc;
}

tdm_code tdm_gen_encode_text(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_gen_plan *plan,
                             int need_uncond, tdm_text_cond *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    tdm_text_tower tw[2];
    const int n_towers = tdm_text_towers(m, tw);
    if (!m->tokenizer || n_towers < 1)
        return tdm_fail(st, TDM_ERR_MISSING, "model has no tokenizer or text encoder loaded");
    const int T = TDM_CLIP_CONTEXT;
    const int C = tdm_text_context_width(m);
    if (m->cross_attention_dim > 0 && C != m->cross_attention_dim)
        return tdm_fail(st, TDM_ERR_FORMAT, "text encoder width %d does not match the UNet cross_attention_dim %d",
                        C, m->cross_attention_dim);
    for (int t = 0; t < n_towers; t++)
        if (tw[t].encoder->cfg.max_position_embeddings < T)
            return tdm_fail(st, TDM_ERR_FORMAT, "text encoder max_position_embeddings %d < %d",
                            tw[t].encoder->cfg.max_position_embeddings, T);
    /* SDXL: pooled text_embeds from text_encoder_2 (the last tower) */
    const int xl = m->text_encoder_2 != NULL;
    if (xl && !m->text_encoder_2->has_projection)
        return tdm_fail(st, TDM_ERR_MISSING, "text_encoder_2 has no text_projection (SDXL's pooled text_embeds)");
    /* diffusers: negative_prompt None with force_zeros_for_empty_prompt -> zeros */
    const int zero_uncond = xl && need_uncond && m->force_zeros_for_empty_prompt && plan->negative[0] == '\0';
    const int encode_uncond = need_uncond && !zero_uncond;

    tower_windows tv[2];
    memset(tv, 0, sizeof tv);
    tdm_code rc = TDM_OK;
    int K = 1;
    for (int t = 0; t < n_towers && !rc; t++) {
        rc = windows_of(&tw[t], plan->prompt, plan->emphasis, &tv[t].wc, "prompt", st);
        if (!rc && encode_uncond) rc = windows_of(&tw[t], plan->negative, plan->emphasis, &tv[t].wu, "negative prompt", st);
        tv[t].nc = tv[t].wc.n_windows;
        tv[t].nu = encode_uncond ? tv[t].wu.n_windows : 0;
        if (tv[t].nc > K) K = tv[t].nc;
        if (tv[t].nu > K) K = tv[t].nu;
    }
    if (rc) goto done;

    out->cond = tdm_arena_alloc(arena, sizeof(float) * (size_t)K * T * C); /* [K*77, C] */
    out->uncond = need_uncond ? tdm_arena_alloc(arena, sizeof(float) * (size_t)K * T * C) : NULL;
    if (xl) {
        out->pooled_dim = m->text_encoder_2->cfg.projection_dim;
        out->pooled_cond = tdm_arena_alloc(arena, sizeof(float) * (size_t)out->pooled_dim);
        out->pooled_uncond = need_uncond ? tdm_arena_alloc(arena, sizeof(float) * (size_t)out->pooled_dim) : NULL;
    }
    if (!out->cond || (need_uncond && !out->uncond) || (xl && (!out->pooled_cond || (need_uncond && !out->pooled_uncond)))) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "text conditioning: out of memory (%d windows)", K);
        goto done;
    }
    int c0 = 0;
    for (int t = 0; t < n_towers && !rc; t++) {
        rc = encode_tower(m, ex, arena, plan, &tw[t], &tv[t], K, encode_uncond, C, c0, xl && t == n_towers - 1, out, st);
        c0 += tw[t].encoder->cfg.hidden_size;
    }
    if (rc) goto done;
    if (zero_uncond) {
        memset(out->uncond, 0, sizeof(float) * (size_t)K * T * C);
        memset(out->pooled_uncond, 0, sizeof(float) * (size_t)out->pooled_dim);
    }
    out->n_windows = K;
    out->len = K * T;
    out->C = C;
done:
    for (int t = 0; t < 2; t++) {
        tdm_clip_windows_free(&tv[t].wc);
        tdm_clip_windows_free(&tv[t].wu);
        tdm_clip_windows_free(&tv[t].we);
    }
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

tdm_code tdm_gen_encode_params(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena,
                               const tdm_generate_params *p, tdm_text_cond *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    tdm_gen_plan plan;
    TDM_TRY(tdm_gen_resolve(m, p, &plan, st));
    return tdm_gen_encode_text(m, ex, arena, &plan, plan.use_cfg, out, st);
}
