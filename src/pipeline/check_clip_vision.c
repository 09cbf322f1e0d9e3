/* `tandem check` handler for the CLIP vision kinds ("clip-vision-*"):
 *  - preprocessing of image_raw (CLIPImageProcessor from model/preprocessor_config.json, else case.json
 *    "preprocessor_config", else defaults): image_resized_u8, image_cropped_u8, pixel_values_processed;
 *    image_raw.png, when present, must decode to the same pixels;
 *  - for every input pixel_values_<set> (the fixture's own pixels, so model figures do not depend on
 *    preprocessing): hidden_states_<i>_<set>, last_hidden_state_<set>, pooler_output_<set>,
 *    image_embeds_<set>;
 *  - CLIPScore: the text tower of a clip-text fixture (case.json "clipscore_text_fixture", else the
 *    "../<name>" that inputs.clipscore_text_embeds names, else ../clip-text-tiny-gelu-proj) runs its
 *    input_ids -> clipscore_text_embeds (SKIP without that fixture); clipscore_image_embeds = image_embeds
 *    rows of the sets in order (processed first); clipscore_cos [texts, images] and clipscore =
 *    max(100 cos, 0) of the stored clipscore_text_embeds (a fixture input) against those rows; the
 *    same scores from both towers end to end are printed as uncounted INFO lines (see check_clipscore). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "models/clip_scores.h"
#include "models/clip_vision.h"
#include "pipeline/check.h"

#define MAX_SETS 8

typedef struct hidden_ctx {
    float **h; /* [n_layers + 1][B * T * C] */
    int n;
    int oom;
} hidden_ctx;

static void on_hidden(void *user, int index, const float *h, int64_t B, int64_t T, int64_t C) {
    hidden_ctx *hc = user;
    if (index < 0 || index >= hc->n) return;
    free(hc->h[index]);
    hc->h[index] = malloc((size_t)(B * T * C) * sizeof(float));
    if (!hc->h[index]) {
        hc->oom = 1;
        return;
    }
    memcpy(hc->h[index], h, (size_t)(B * T * C) * sizeof(float));
}

static tdm_code compare_if_present(tdm_check *c, const char *name, const float *x, int64_t n, tdm_status *st) {
    if (!tdm_st_find(&c->io, name)) return TDM_OK;
    return tdm_check_compare(c, name, x, n, st);
}

static void skip_line(tdm_check *c, const char *name, const char *why) {
    c->n_skip++;
    tdm_check_line(c, "SKIP %-48s %s", name, why);
}

/* uint8 image as HWC float (the fixtures' layout). */
static float *image_as_f32(const tdm_image *im) {
    const size_t n = (size_t)im->width * im->height * 3;
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (f)
        for (size_t i = 0; i < n; i++) f[i] = im->pixels[i];
    return f;
}

/* ---- preprocessing ------------------------------------------------------------------------------ */

static tdm_code load_proc(tdm_check *c, const char *model_dir, int image_size, tdm_clip_image_proc *p, tdm_status *st) {
    char path[4608];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", model_dir);
    if (access(path, F_OK) == 0) return tdm_clip_image_proc_load(path, image_size, p, st);
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(c->case_json, "preprocessor_config");
    if (cJSON_IsObject(pc)) return tdm_clip_image_proc_from_json(pc, "case.json preprocessor_config", image_size, p, st);
    tdm_clip_image_proc_default(p, image_size);
    return TDM_OK;
}

static tdm_code check_preprocessing(tdm_check *c, const tdm_clip_image_proc *proc, tdm_status *st) {
    if (!tdm_st_find(&c->io, "image_raw")) {
        skip_line(c, "preprocessing", "no image_raw in io.safetensors");
        return TDM_OK;
    }
    float *raw = NULL;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, "image_raw", &raw, &t, st));
    tdm_image img = {0, 0, 0, NULL}, res = {0, 0, 0, NULL}, crop = {0, 0, 0, NULL}, png = {0, 0, 0, NULL};
    float *px = NULL, *f = NULL;
    tdm_code rc = TDM_OK;
    if (t.ndim != 3 || t.shape[2] != 3 || t.shape[0] < 1 || t.shape[1] < 1 || t.shape[0] > TDM_IMAGE_MAX_SIDE ||
        t.shape[1] > TDM_IMAGE_MAX_SIDE)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: image_raw must be [H, W, 3]", c->dir);
    if (!rc) rc = tdm_image_alloc(&img, (int)t.shape[1], (int)t.shape[0], st);
    for (int64_t i = 0; !rc && i < t.shape[0] * t.shape[1] * 3; i++) {
        if (!(raw[i] >= 0 && raw[i] <= 255 && raw[i] == (float)(int)raw[i]))
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: image_raw value %g at %lld is not a uint8", c->dir, (double)raw[i],
                          (long long)i);
        else img.pixels[i] = (uint8_t)raw[i];
    }
    /* the PNG next to it holds the same pixels */
    char path[4096];
    tdm_check_path(c, "image_raw.png", path, sizeof path);
    if (!rc && access(path, F_OK) == 0) {
        rc = tdm_image_load(path, &png, st);
        if (!rc) {
            int ok = png.width == img.width && png.height == img.height &&
                     !memcmp(png.pixels, img.pixels, (size_t)img.width * img.height * 3);
            tdm_check_exact(c, "image_raw.png", ok, ok ? "identical to image_raw" : "differs from image_raw");
        }
    }
    int ow = 0, oh = 0;
    if (!rc) rc = tdm_clip_image_proc_out_size(proc, img.width, img.height, &ow, &oh, st);
    if (!rc) {
        px = malloc((size_t)3 * ow * oh * sizeof(float)); /* [3, oh, ow] */
        if (!px) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    if (!rc) rc = tdm_clip_preprocess(proc, &img, px, &res, &crop, st);
    if (!rc && res.pixels && tdm_st_find(&c->io, "image_resized_u8")) {
        f = image_as_f32(&res);
        rc = f ? tdm_check_compare(c, "image_resized_u8", f, (int64_t)res.width * res.height * 3, st)
               : tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        free(f);
        f = NULL;
    }
    if (!rc && crop.pixels && tdm_st_find(&c->io, "image_cropped_u8")) {
        f = image_as_f32(&crop);
        rc = f ? tdm_check_compare(c, "image_cropped_u8", f, (int64_t)crop.width * crop.height * 3, st)
               : tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        free(f);
    }
    if (!rc) rc = compare_if_present(c, "pixel_values_processed", px, (int64_t)3 * ow * oh, st);
    tdm_image_free(&img);
    tdm_image_free(&res);
    tdm_image_free(&crop);
    tdm_image_free(&png);
    free(px);
    free(raw);
    return rc;
}

/* ---- model outputs ------------------------------------------------------------------------------ */

typedef struct set_out {
    char name[64];
    int64_t B;
    float *embeds; /* [B, projection_dim] */
} set_out;

static tdm_code run_set(tdm_check *c, const tdm_clip_vision *m, tdm_arena *arena, const char *set, set_out *so,
                        tdm_status *st) {
    const tdm_clip_vision_config *cfg = &m->cfg;
    char name[128];
    snprintf(name, sizeof name, "pixel_values_%s", set);
    float *px;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, name, &px, &t, st));
    const int64_t S = cfg->image_size, C = cfg->hidden_size, T = tdm_clip_vision_tokens(cfg), P = cfg->projection_dim;
    tdm_code rc = TDM_OK;
    if (t.ndim != 4 || t.shape[1] != cfg->num_channels || t.shape[2] != S || t.shape[3] != S)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: %s must be [B, %d, %lld, %lld]", c->dir, name, cfg->num_channels,
                      (long long)S, (long long)S);
    const int64_t B = rc ? 0 : t.shape[0];
    hidden_ctx hc = {NULL, cfg->num_hidden_layers + 1, 0};
    float *last = NULL, *pooled = NULL;
    so->embeds = NULL;
    if (!rc) {
        hc.h = calloc((size_t)hc.n, sizeof *hc.h);
        last = malloc((size_t)(B * T * C) * sizeof(float));
        pooled = malloc((size_t)(B * C) * sizeof(float));
        so->embeds = malloc((size_t)(B * P) * sizeof(float));
        if (!hc.h || !last || !pooled || !so->embeds) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    if (!rc)
        rc = tdm_clip_vision_forward(m, &c->ex, arena, px, B, on_hidden, &hc, last, pooled,
                                     m->has_projection ? so->embeds : NULL, st);
    if (!rc && hc.oom) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < hc.n; i++) {
        snprintf(name, sizeof name, "hidden_states_%d_%s", i, set);
        rc = compare_if_present(c, name, hc.h[i], B * T * C, st);
    }
    snprintf(name, sizeof name, "last_hidden_state_%s", set);
    if (!rc) rc = compare_if_present(c, name, last, B * T * C, st);
    snprintf(name, sizeof name, "pooler_output_%s", set);
    if (!rc) rc = compare_if_present(c, name, pooled, B * C, st);
    snprintf(name, sizeof name, "image_embeds_%s", set);
    if (!rc && m->has_projection) rc = compare_if_present(c, name, so->embeds, B * P, st);
    if (!rc && !m->has_projection && tdm_st_find(&c->io, name))
        tdm_check_exact(c, name, 0, "expected by the fixture but the model has no visual_projection.weight");
    snprintf(so->name, sizeof so->name, "%s", set);
    so->B = B;
    for (int i = 0; hc.h && i < hc.n; i++) free(hc.h[i]);
    free(hc.h);
    free(last);
    free(pooled);
    free(px);
    return rc;
}

/* ---- CLIPScore ---------------------------------------------------------------------------------- */

/* The clip-text fixture folder paired with this one (see the file comment). */
static void text_fixture_dir(tdm_check *c, char *buf, size_t n) {
    char rel[512] = "../clip-text-tiny-gelu-proj";
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c->case_json, "clipscore_text_fixture");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(c->case_json, "inputs");
    const cJSON *d = cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "clipscore_text_embeds") : NULL;
    if (cJSON_IsString(s)) {
        snprintf(rel, sizeof rel, "%s", s->valuestring);
    } else if (cJSON_IsString(d) && strstr(d->valuestring, "../")) {
        const char *p = strstr(d->valuestring, "../");
        size_t k = 0;
        while (p[k] && k + 1 < sizeof rel && !strchr(" \t()'\",;", p[k])) k++;
        memcpy(rel, p, k);
        rel[k] = 0;
    }
    tdm_check_path(c, rel, buf, n);
}

/* text_embeds [B, P] of the text fixture's input_ids; *B 0 when the fixture is absent. */
static tdm_code text_embeds_from_fixture(tdm_check *c, int64_t P, float **out, int64_t *B, tdm_status *st) {
    *out = NULL;
    *B = 0;
    char dir[4096], path[4608], model_rel[256];
    text_fixture_dir(c, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/case.json", dir);
    if (access(path, F_OK) != 0) return TDM_OK;
    cJSON *cj;
    TDM_TRY(tdm_json_load(path, &cj, st));
    tdm_code rc = tdm_json_str(cj, "model", path, 1, "model", model_rel, sizeof model_rel, st);
    cJSON_Delete(cj);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s", dir, model_rel);
    tdm_clip_text *m;
    TDM_TRY(tdm_clip_text_load_dir(&m, path, st));
    tdm_safetensors io;
    memset(&io, 0, sizeof io);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    rc = tdm_st_open(&io, path, st);
    const tdm_st_entry *e = rc ? NULL : tdm_st_find(&io, "input_ids");
    if (!rc && !e) rc = tdm_fail(st, TDM_ERR_MISSING, "%s: tensor 'input_ids' is missing", path);
    if (!rc && (e->ndim != 2 || e->shape[0] < 1 || e->shape[1] < 1 || e->shape[0] > 4096))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: input_ids must be [B, L]", path);
    if (!rc && !m->has_projection) rc = tdm_fail(st, TDM_ERR_MISSING, "%s: the text tower has no text_projection", dir);
    if (!rc && m->cfg.projection_dim != P)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: text projection_dim %d differs from the vision projection_dim %lld", dir,
                      m->cfg.projection_dim, (long long)P);
    int32_t *ids = NULL;
    float *emb = NULL;
    int64_t nb = 0, L = 0;
    if (!rc) {
        nb = e->shape[0];
        L = e->shape[1];
        tdm_tensor t = tdm_st_view(&io, e);
        ids = malloc((size_t)(nb * L) * sizeof *ids);
        emb = malloc((size_t)(nb * P) * sizeof *emb);
        if (!ids || !emb) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; !rc && i < nb * L; i++) ids[i] = (int32_t)tdm_tensor_get(&t, i);
    }
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    if (!rc) rc = tdm_clip_text_forward(m, &c->ex, &arena, ids, nb, L, NULL, NULL, NULL, emb, st);
    tdm_arena_free(&arena);
    if (io.map) tdm_st_close(&io);
    tdm_clip_text_free(m);
    free(ids);
    if (rc) {
        free(emb);
        return rc;
    }
    *out = emb;
    *B = nb;
    return TDM_OK;
}

/* cos [NT, NI] and clipscore [NT, NI] of te [NT, P] against ie [NI, P]. */
static void score_matrix(const float *te, int64_t NT, const float *ie, int64_t NI, int64_t P, float *cosv,
                         float *score) {
    for (int64_t i = 0; i < NT; i++)
        for (int64_t j = 0; j < NI; j++) {
            cosv[i * NI + j] = (float)tdm_clip_cosine(te + i * P, ie + j * P, P);
            score[i * NI + j] = tdm_clipscore(te + i * P, ie + j * P, P);
        }
}

/* An uncounted line with the figures of got vs the io tensor `name`. */
static tdm_code info_line(tdm_check *c, const char *label, const char *name, const float *got, int64_t n,
                          tdm_status *st) {
    if (!tdm_st_find(&c->io, name)) return TDM_OK;
    float *exp;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, name, &exp, &t, st));
    double max_abs = 0, num = 0, den = 0;
    for (int64_t i = 0; i < n && i < tdm_tensor_numel(&t); i++) {
        const double d = (double)got[i] - exp[i];
        max_abs = fmax(max_abs, fabs(d));
        num += d * d;
        den += (double)exp[i] * exp[i];
    }
    tdm_check_line(c, "INFO %-48s max_abs %.3e rel_l2 %.3e (not counted)", label, max_abs,
                   den > 0 ? sqrt(num / den) : sqrt(num));
    free(exp);
    return TDM_OK;
}

/* clipscore_text_embeds is a fixture input: clipscore_cos / clipscore are compared for it against
 * this tower's image embeddings. The text tower of the paired clip-text fixture must reproduce
 * clipscore_text_embeds (counted); the scores computed end to end from the two towers are reported
 * as INFO lines: cosines of near-orthogonal embeddings amplify the towers' relative rounding error
 * (cos ~0.03 with embeddings off by 3e-7 relative), beyond the score step's own fp32_vs_fp64. */
static tdm_code check_clipscore(tdm_check *c, const set_out *sets, int n_sets, int64_t P, tdm_status *st) {
    if (!tdm_st_find(&c->io, "clipscore") && !tdm_st_find(&c->io, "clipscore_cos")) return TDM_OK;
    float *te = NULL, *tt = NULL, *ie = NULL, *cosv = NULL, *score = NULL;
    int64_t NT = 0, NI = 0, NTT = 0;
    tdm_tensor t;
    tdm_code rc = tdm_check_input(c, "clipscore_text_embeds", &te, &t, st);
    if (!rc && (t.ndim != 2 || t.shape[1] != P))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: clipscore_text_embeds must be [N, %lld]", c->dir, (long long)P);
    if (!rc) NT = t.shape[0];
    if (!rc) rc = text_embeds_from_fixture(c, P, &tt, &NTT, st);
    if (!rc && tt && NTT != NT)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: the text fixture has %lld prompts, clipscore_text_embeds %lld", c->dir,
                      (long long)NTT, (long long)NT);
    if (!rc && tt) rc = tdm_check_compare(c, "clipscore_text_embeds", tt, NT * P, st);
    else if (!rc) skip_line(c, "clipscore_text_embeds", "text fixture absent: text tower not run");
    for (int s = 0; s < n_sets; s++) NI += sets[s].B;
    if (!rc) {
        ie = malloc((size_t)(NI * P) * sizeof(float));       /* [NI, P] */
        cosv = malloc((size_t)(NT * NI) * sizeof(float));    /* [NT, NI] */
        score = malloc((size_t)(NT * NI) * sizeof(float));   /* [NT, NI] */
        if (!ie || !cosv || !score) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    for (int s = 0, row = 0; !rc && s < n_sets; s++) {
        memcpy(ie + row * P, sets[s].embeds, (size_t)(sets[s].B * P) * sizeof(float));
        row += (int)sets[s].B;
    }
    if (!rc) rc = compare_if_present(c, "clipscore_image_embeds", ie, NI * P, st);
    /* Composed tolerance (docs/TOLERANCES.md): cos(t, e) with e off by a relative error eps moves by at
     * most eps (|d cos| <= |de| / |e|), so the cosines are allowed the image embeddings' relative
     * tolerance in absolute terms, and the score 100 times that; the fixture's own fp32_vs_fp64 of the
     * score covers only the last step (the cosine of stored embeddings). */
    double eps = 0;
    for (int s = 0; s < n_sets; s++) {
        char name[96];
        double tr, ta;
        snprintf(name, sizeof name, "image_embeds_%.63s", sets[s].name);
        tdm_check_tolerance_of(c, name, 1.0, &tr, &ta);
        eps = fmax(eps, tr);
    }
    if (!rc) {
        score_matrix(te, NT, ie, NI, P, cosv, score);
        if (tdm_st_find(&c->io, "clipscore_cos")) rc = tdm_check_compare_composed(c, "clipscore_cos", cosv, NT * NI, eps, st);
    }
    if (!rc && tdm_st_find(&c->io, "clipscore"))
        rc = tdm_check_compare_composed(c, "clipscore", score, NT * NI, 100.0 * eps, st);
    if (!rc && tt) {
        score_matrix(tt, NT, ie, NI, P, cosv, score);
        rc = info_line(c, "clipscore_cos (both towers)", "clipscore_cos", cosv, NT * NI, st);
        if (!rc) rc = info_line(c, "clipscore (both towers)", "clipscore", score, NT * NI, st);
    }
    free(te);
    free(tt);
    free(ie);
    free(cosv);
    free(score);
    return rc;
}

/* ---- handler ------------------------------------------------------------------------------------ */

tdm_code tdm_check_clip_vision(tdm_check *c, tdm_status *st) {
    char model_rel[256], path[4096];
    TDM_TRY(tdm_json_str(c->case_json, "model", "case.json", 1, "model", model_rel, sizeof model_rel, st));
    tdm_check_path(c, model_rel, path, sizeof path);
    tdm_clip_vision *m;
    TDM_TRY(tdm_clip_vision_load_dir(&m, path, st));
    tdm_clip_image_proc proc;
    tdm_code rc = load_proc(c, path, m->cfg.image_size, &proc, st);
    if (!rc) rc = check_preprocessing(c, &proc, st);

    /* input sets: pixel_values_processed first, then the others in name order */
    set_out sets[MAX_SETS];
    int n_sets = 0;
    const char *names[MAX_SETS];
    int n_names = 0;
    if (tdm_st_find(&c->io, "pixel_values_processed")) names[n_names++] = "processed";
    for (int i = 0; i < c->io.n_entries && n_names < MAX_SETS; i++) {
        const char *nm = c->io.entries[i].name;
        if (!strncmp(nm, "pixel_values_", 13) && strcmp(nm + 13, "processed") != 0) names[n_names++] = nm + 13;
    }
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    for (int i = 0; !rc && i < n_names; i++) {
        rc = run_set(c, m, &arena, names[i], &sets[n_sets], st);
        n_sets++; /* embeds allocated even on failure: freed below */
    }
    if (!rc && n_names == 0) rc = tdm_fail(st, TDM_ERR_MISSING, "%s: io.safetensors has no pixel_values_*", c->dir);
    if (!rc && m->has_projection) rc = check_clipscore(c, sets, n_sets, m->cfg.projection_dim, st);
    for (int i = 0; i < n_sets; i++) free(sets[i].embeds);
    tdm_arena_free(&arena);
    tdm_clip_vision_free(m);
    return rc;
}
