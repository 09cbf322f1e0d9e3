/* CLIP-based scores: CLIPScore, PickScore, HPSv2, the LAION aesthetic head, and the oracle bundle
 * (definitions and sources in clip_scores.h). */
#include "models/clip_scores.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

/* ---- scores from embeddings ------------------------------------------------------------------- */

double tdm_clip_cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 || bb == 0) return 0;
    return ab / (sqrt(aa) * sqrt(bb));
}

float tdm_clipscore(const float *text_embeds, const float *image_embeds, int64_t n) {
    const double s = 100.0 * tdm_clip_cosine(text_embeds, image_embeds, n);
    return (float)(s > 0 ? s : 0);
}

float tdm_pickscore(const float *text_embeds, const float *image_embeds, int64_t n, float logit_scale) {
    return (float)(exp((double)logit_scale) * tdm_clip_cosine(text_embeds, image_embeds, n));
}

float tdm_hpsv2_score(const float *text_embeds, const float *image_embeds, int64_t n) {
    return (float)tdm_clip_cosine(text_embeds, image_embeds, n);
}

/* ---- LAION aesthetic head --------------------------------------------------------------------- */

static const int aesthetic_index[TDM_AESTHETIC_LAYERS] = {0, 2, 4, 6, 7}; /* nn.Sequential positions */

static tdm_code head_take(tdm_aesthetic_head *h, int expected_in, tdm_status *st) {
    tdm_weights *ws = &h->ws;
    char name[64];
    for (int i = 0; i < TDM_AESTHETIC_LAYERS; i++) {
        snprintf(name, sizeof name, "layers.%d.weight", aesthetic_index[i]);
        const int64_t wshape[2] = {i == TDM_AESTHETIC_LAYERS - 1 ? 1 : -1, i == 0 ? -1 : h->dims[i]};
        TDM_TRY(tdm_weights_get(ws, name, 2, wshape, &h->w[i], st));
        if (h->w[i].shape[0] > (1 << 16) || h->w[i].shape[1] > (1 << 16))
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' is implausibly large", ws->what, name);
        if (i == 0) h->dims[0] = (int)h->w[i].shape[1];
        h->dims[i + 1] = (int)h->w[i].shape[0];
        snprintf(name, sizeof name, "layers.%d.bias", aesthetic_index[i]);
        const int64_t bshape[1] = {h->dims[i + 1]};
        TDM_TRY(tdm_weights_get(ws, name, 1, bshape, &h->b[i], st));
    }
    h->in_dim = h->dims[0];
    if (expected_in > 0 && h->in_dim != expected_in)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor 'layers.0.weight' takes %d inputs but the image embedding has %d",
                        ws->what, h->in_dim, expected_in);
    return tdm_weights_check_unused(ws, st);
}

tdm_code tdm_aesthetic_head_from_weights(tdm_aesthetic_head **out, tdm_weights *ws, int expected_in, tdm_status *st) {
    *out = NULL;
    tdm_aesthetic_head *h = calloc(1, sizeof *h);
    if (!h) {
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "aesthetic head: out of memory");
    }
    h->ws = *ws;
    memset(ws, 0, sizeof *ws);
    tdm_code rc = head_take(h, expected_in, st);
    if (rc) {
        tdm_aesthetic_head_free(h);
        return rc;
    }
    *out = h;
    return TDM_OK;
}

tdm_code tdm_aesthetic_head_load(tdm_aesthetic_head **out, const char *path, int expected_in, tdm_status *st) {
    *out = NULL;
    tdm_weights ws;
    tdm_weights_init(&ws, "aesthetic head");
    tdm_code rc = tdm_weights_add_file(&ws, path, "", NULL, NULL, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    return tdm_aesthetic_head_from_weights(out, &ws, expected_in, st);
}

void tdm_aesthetic_head_free(tdm_aesthetic_head *h) {
    if (!h) return;
    tdm_weights_free(&h->ws);
    free(h);
}

tdm_code tdm_aesthetic_head_forward(const tdm_aesthetic_head *h, const tdm_exec *ex, const float *image_embeds,
                                    int64_t B, float *scores, tdm_status *st) {
    if (B < 1 || B > (1 << 20))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "aesthetic head: batch size %lld is invalid", (long long)B);
    int widest = 0;
    for (int i = 0; i <= TDM_AESTHETIC_LAYERS; i++)
        if (h->dims[i] > widest) widest = h->dims[i];
    float *a = malloc((size_t)(B * widest) * sizeof(float)); /* [B, widest] */
    float *b = malloc((size_t)(B * widest) * sizeof(float)); /* [B, widest] */
    tdm_code rc = TDM_OK;
    if (!a || !b) rc = tdm_fail(st, TDM_ERR_NOMEM, "aesthetic head: out of memory");
    /* x / |x| (improved-aesthetic-predictor `normalized`: a zero norm divides by 1) */
    const int64_t D = h->in_dim;
    for (int64_t r = 0; !rc && r < B; r++) {
        double n2 = 0;
        for (int64_t j = 0; j < D; j++) n2 += (double)image_embeds[r * D + j] * image_embeds[r * D + j];
        const double n = n2 > 0 ? sqrt(n2) : 1.0;
        for (int64_t j = 0; j < D; j++) a[r * D + j] = (float)(image_embeds[r * D + j] / n);
    }
    for (int i = 0; !rc && i < TDM_AESTHETIC_LAYERS; i++) {
        rc = tdm_linear(ex, a, B, h->dims[i], &h->w[i], &h->b[i], b);
        if (rc) rc = tdm_fail(st, rc, "aesthetic head: layer %d failed", aesthetic_index[i]);
        float *t = a;
        a = b;
        b = t;
    }
    if (!rc) memcpy(scores, a, (size_t)B * sizeof(float)); /* last width is 1 */
    free(a);
    free(b);
    return rc;
}

/* ---- oracle loading ---------------------------------------------------------------------------- */

const char *tdm_clip_oracle_kind_name(tdm_clip_oracle_kind kind) {
    switch (kind) {
    case TDM_CLIP_ORACLE_CLIPSCORE: return "clipscore";
    case TDM_CLIP_ORACLE_AESTHETIC: return "aesthetic";
    case TDM_CLIP_ORACLE_PICKSCORE: return "pickscore";
    case TDM_CLIP_ORACLE_HPSV2: return "hpsv2";
    }
    return "?";
}

/* Text half of an OpenCLIP file: visual.* is read by the vision tower. */
static tdm_code openclip_text_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                     tdm_status *st) {
    if (!strncmp(name, "visual.", 7)) return TDM_OK;
    return tdm_clip_text_openclip_mapper(ws, name, t, ctx, st);
}

static tdm_code load_text(tdm_clip_text **out, const char *path, const char *prefix, tdm_clip_text_config *cfg,
                          tdm_name_mapper mapper, void *ctx, tdm_status *st) {
    tdm_weights ws;
    tdm_weights_init(&ws, "text tower");
    tdm_code rc = tdm_weights_add_file(&ws, path, prefix, mapper, ctx, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    return tdm_clip_text_load(out, cfg, &ws, st);
}

static tdm_code read_logit_scale(const char *path, float *out, tdm_status *st) {
    tdm_safetensors f;
    TDM_TRY(tdm_st_open(&f, path, st));
    const tdm_st_entry *e = tdm_st_find(&f, "logit_scale");
    tdm_code rc = TDM_OK;
    if (!e) rc = tdm_fail(st, TDM_ERR_MISSING, "%s: tensor 'logit_scale' is missing", path);
    if (!rc) {
        tdm_tensor t = tdm_st_view(&f, e);
        if (tdm_tensor_numel(&t) != 1 || !tdm_dtype_is_float(t.dtype))
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor 'logit_scale' must be one float", path);
        else *out = (float)tdm_tensor_get(&t, 0);
        if (!rc && !(isfinite(*out) && fabsf(*out) < 20))
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor 'logit_scale' = %g is implausible", path, (double)*out);
    }
    tdm_st_close(&f);
    return rc;
}

/* transformers CLIPModel folder: vision (+ text) towers, preprocessing, logit_scale. */
static tdm_code load_hf(tdm_clip_oracle *o, const tdm_clip_oracle_paths *p, int need_text, tdm_status *st) {
    char cfg_path[4096], w_path[4096], pp_path[4096];
    if (!p->model_dir)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: a transformers CLIP model folder is required",
                        tdm_clip_oracle_kind_name(o->kind));
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", p->model_dir);
    snprintf(w_path, sizeof w_path, "%s/model.safetensors", p->model_dir);
    snprintf(pp_path, sizeof pp_path, "%s/preprocessor_config.json", p->model_dir);
    TDM_TRY(tdm_clip_vision_load_dir(&o->vision, p->model_dir, st));
    FILE *pf = fopen(pp_path, "rb");
    if (pf) {
        fclose(pf);
        TDM_TRY(tdm_clip_image_proc_load(pp_path, o->vision->cfg.image_size, &o->proc, st));
    } else {
        tdm_clip_image_proc_default(&o->proc, o->vision->cfg.image_size);
    }
    if (!need_text) return TDM_OK;
    /* a CLIPModel config: tdm_clip_text_load gives the text tower the top-level projection_dim */
    tdm_clip_text_config tc;
    TDM_TRY(tdm_clip_text_config_load(cfg_path, &tc, st));
    /* the text half of the CLIPModel file: the vision half and logit_scale are skipped */
    TDM_TRY(load_text(&o->text, w_path, "", &tc, tdm_clip_text_clipmodel_mapper, NULL, st));
    if (o->kind == TDM_CLIP_ORACLE_PICKSCORE) TDM_TRY(read_logit_scale(w_path, &o->logit_scale, st));
    return TDM_OK;
}

/* OpenCLIP file (HPSv2): visual.* and the text tower, ResizeMaxSize preprocessing. */
static tdm_code load_openclip(tdm_clip_oracle *o, const tdm_clip_oracle_paths *p, tdm_status *st) {
    if (!p->openclip_file)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "hpsv2: an OpenCLIP safetensors file is required");
    tdm_safetensors f;
    TDM_TRY(tdm_st_open(&f, p->openclip_file, st));
    /* state dicts saved from a DistributedDataParallel wrapper carry "module." */
    const char *base = tdm_st_find(&f, "module.visual.conv1.weight") ? "module." : "";
    tdm_clip_text_config tc;
    tdm_code rc = tdm_clip_text_config_infer(&f, base, 1, &tc, st);
    tdm_st_close(&f);
    if (rc) return rc;
    char vprefix[32];
    snprintf(vprefix, sizeof vprefix, "%svisual.", base);
    TDM_TRY(tdm_clip_vision_load_openclip(&o->vision, p->openclip_file, vprefix, -1, st));
    tdm_clip_openclip_map map = {tc.num_hidden_layers, 1};
    TDM_TRY(load_text(&o->text, p->openclip_file, base, &tc, openclip_text_mapper, &map, st));
    tdm_clip_image_proc_default(&o->proc, o->vision->cfg.image_size);
    o->proc.resize_mode = TDM_CLIP_RESIZE_LONGEST_PAD;
    o->proc.do_center_crop = 0;
    o->clean_mode = TDM_CLIP_CLEAN_OPENAI;
    o->pad_id = 0; /* open_clip tokenize pads with 0 */
    return TDM_OK;
}

tdm_code tdm_clip_oracle_load(tdm_clip_oracle **out, tdm_clip_oracle_kind kind, const tdm_clip_oracle_paths *paths,
                              tdm_status *st) {
    *out = NULL;
    tdm_clip_oracle *o = calloc(1, sizeof *o);
    if (!o) return tdm_fail(st, TDM_ERR_NOMEM, "clip oracle: out of memory");
    o->kind = kind;
    o->strip_emphasis = 1;
    o->clean_mode = TDM_CLIP_CLEAN_HF;
    o->pad_id = -1;
    tdm_code rc = TDM_OK;
    switch (kind) {
    case TDM_CLIP_ORACLE_CLIPSCORE:
    case TDM_CLIP_ORACLE_PICKSCORE: rc = load_hf(o, paths, 1, st); break;
    case TDM_CLIP_ORACLE_AESTHETIC:
        rc = load_hf(o, paths, 0, st);
        if (!rc && !paths->aesthetic_head)
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "aesthetic: the head file (layers.*) is required");
        if (!rc && !o->vision->has_projection)
            rc = tdm_fail(st, TDM_ERR_MISSING, "aesthetic: the vision tower has no visual_projection.weight");
        if (!rc) rc = tdm_aesthetic_head_load(&o->head, paths->aesthetic_head, o->vision->cfg.projection_dim, st);
        break;
    case TDM_CLIP_ORACLE_HPSV2: rc = load_openclip(o, paths, st); break;
    default: rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "clip oracle: unknown kind %d", (int)kind);
    }
    if (!rc && o->text) {
        if (!o->vision->has_projection || !o->text->has_projection)
            rc = tdm_fail(st, TDM_ERR_MISSING, "%s: both towers need their projection (visual_projection.weight, "
                          "text_projection.weight)", tdm_clip_oracle_kind_name(kind));
        else if (o->vision->cfg.projection_dim != o->text->cfg.projection_dim)
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: image projection_dim %d differs from text projection_dim %d",
                          tdm_clip_oracle_kind_name(kind), o->vision->cfg.projection_dim, o->text->cfg.projection_dim);
    }
    if (!rc && o->text) {
        const char *td = paths->tokenizer_dir ? paths->tokenizer_dir : paths->model_dir;
        if (!td) rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: a tokenizer folder (vocab.json, merges.txt) is required",
                               tdm_clip_oracle_kind_name(kind));
        else rc = tdm_clip_tokenizer_load(&o->tok, td, st);
    }
    if (rc) {
        tdm_clip_oracle_free(o);
        return rc;
    }
    *out = o;
    return TDM_OK;
}

void tdm_clip_oracle_free(tdm_clip_oracle *o) {
    if (!o) return;
    tdm_clip_vision_free(o->vision);
    tdm_clip_text_free(o->text);
    tdm_clip_tokenizer_free(o->tok);
    tdm_aesthetic_head_free(o->head);
    free(o);
}

void tdm_clip_oracle_free_cb(void *state) { tdm_clip_oracle_free(state); }

/* ---- oracle scoring ---------------------------------------------------------------------------- */

tdm_code tdm_clip_oracle_text_embeds(tdm_clip_oracle *o, const tdm_exec *ex, const char *prompt, float *text_embeds,
                                     tdm_status *st) {
    if (!o->text || !o->tok)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: this oracle has no text tower", tdm_clip_oracle_kind_name(o->kind));
    if (!prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: no prompt", tdm_clip_oracle_kind_name(o->kind));
    tdm_clip_encode_opts eo;
    tdm_clip_encode_opts_init(&eo);
    eo.text.clean_mode = o->clean_mode;
    eo.truncate = 1;
    eo.emphasis = o->strip_emphasis;
    eo.comma_backtrack = 0;
    eo.pad_id = o->pad_id;
    tdm_clip_windows w;
    TDM_TRY(tdm_clip_encode_windows(o->tok, prompt, &eo, &w, st));
    tdm_code rc = TDM_OK;
    if (w.window_len > o->text->cfg.max_position_embeddings)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: the text tower takes %d positions, the tokenizer makes %d",
                      tdm_clip_oracle_kind_name(o->kind), o->text->cfg.max_position_embeddings, w.window_len);
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    if (!rc)
        rc = tdm_clip_text_forward(o->text, ex, &arena, w.ids, 1, w.window_len, NULL, NULL, NULL, text_embeds, st);
    tdm_arena_free(&arena);
    tdm_clip_windows_free(&w);
    return rc;
}

tdm_code tdm_clip_oracle_image_embeds(tdm_clip_oracle *o, const tdm_exec *ex, const tdm_image *img,
                                      float *image_embeds, tdm_status *st) {
    const tdm_clip_vision_config *vc = &o->vision->cfg;
    if (vc->num_channels != 3)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: the vision tower takes %d channels, images have 3",
                        tdm_clip_oracle_kind_name(o->kind), vc->num_channels);
    if (!img) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: no image", tdm_clip_oracle_kind_name(o->kind));
    int ow, oh;
    TDM_TRY(tdm_clip_image_proc_out_size(&o->proc, img->width, img->height, &ow, &oh, st));
    if (ow != vc->image_size || oh != vc->image_size)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: preprocessing makes %dx%d pixels, the vision tower takes %dx%d",
                        tdm_clip_oracle_kind_name(o->kind), ow, oh, vc->image_size, vc->image_size);
    float *px = malloc((size_t)3 * ow * oh * sizeof(float)); /* [1, 3, S, S] */
    if (!px) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", tdm_clip_oracle_kind_name(o->kind));
    tdm_code rc = tdm_clip_preprocess(&o->proc, img, px, NULL, NULL, st);
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    if (!rc) rc = tdm_clip_vision_forward(o->vision, ex, &arena, px, 1, NULL, NULL, NULL, NULL, image_embeds, st);
    tdm_arena_free(&arena);
    free(px);
    return rc;
}

tdm_code tdm_clip_oracle_combine(const tdm_clip_oracle *o, const tdm_exec *ex, const float *text_embeds,
                                 const float *image_embeds, float *score, tdm_status *st) {
    const int64_t P = o->vision->cfg.projection_dim;
    switch (o->kind) {
    case TDM_CLIP_ORACLE_CLIPSCORE: *score = tdm_clipscore(text_embeds, image_embeds, P); return TDM_OK;
    case TDM_CLIP_ORACLE_PICKSCORE:
        *score = tdm_pickscore(text_embeds, image_embeds, P, o->logit_scale);
        return TDM_OK;
    case TDM_CLIP_ORACLE_HPSV2: *score = tdm_hpsv2_score(text_embeds, image_embeds, P); return TDM_OK;
    case TDM_CLIP_ORACLE_AESTHETIC: return tdm_aesthetic_head_forward(o->head, ex, image_embeds, 1, score, st);
    }
    return tdm_fail(st, TDM_ERR_INTERNAL, "clip oracle: unknown kind");
}

tdm_code tdm_clip_oracle_score(tdm_clip_oracle *o, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                               float *score, tdm_status *st) {
    const int64_t P = o->vision->cfg.projection_dim;
    float *te = calloc((size_t)P, sizeof(float)); /* [P] */
    float *ie = calloc((size_t)P, sizeof(float)); /* [P] */
    tdm_code rc = TDM_OK;
    if (!te || !ie) rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", tdm_clip_oracle_kind_name(o->kind));
    if (!rc && o->kind != TDM_CLIP_ORACLE_AESTHETIC) rc = tdm_clip_oracle_text_embeds(o, ex, prompt, te, st);
    if (!rc) rc = tdm_clip_oracle_image_embeds(o, ex, img, ie, st);
    if (!rc) rc = tdm_clip_oracle_combine(o, ex, te, ie, score, st);
    free(te);
    free(ie);
    return rc;
}

tdm_code tdm_clip_oracle_score_cb(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                                  float *score, tdm_status *st) {
    return tdm_clip_oracle_score(state, ex, prompt, img, score, st);
}
