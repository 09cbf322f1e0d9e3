/* Oracle registry and the built-in oracles (see oracle.h). */
#include "pipeline/oracle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_scores.h"
#include "models/imagereward.h"
#include "pipeline/adaptive.h"
#include "world/caption.h"
#include "world/checker.h"

struct tdm_oracle {
    char name[64];
    tdm_oracle_score_fn fn;
    void (*free_state)(void *);
    void *state;
    const tdm_exec *ex;
};

static const char *const k_names[] = {"checker", "imagereward", "clipscore", "aesthetic", "pickscore", "hpsv2", NULL};

const char *const *tdm_oracle_names(int *n) {
    if (n) *n = (int)(sizeof k_names / sizeof k_names[0]) - 1;
    return k_names;
}

tdm_code tdm_oracle_make(const char *name, tdm_oracle_score_fn fn, void (*free_state)(void *), void *state,
                         const tdm_exec *ex, tdm_oracle **out, tdm_status *st) {
    *out = NULL;
    tdm_oracle *o = calloc(1, sizeof *o);
    if (!o) {
        if (free_state) free_state(state);
        return tdm_fail(st, TDM_ERR_NOMEM, "oracle: out of memory");
    }
    snprintf(o->name, sizeof o->name, "%s", name);
    o->fn = fn;
    o->free_state = free_state;
    o->state = state;
    o->ex = ex;
    *out = o;
    return TDM_OK;
}

/* ---- checker: the shapes-world ground truth ---- */

static tdm_code checker_score(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img, float *score,
                              tdm_status *st) {
    (void)state;
    (void)ex;
    tdm_world_query q;
    tdm_status pst = {0};
    if (tdm_world_parse(prompt, &q, &pst))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle 'checker': the prompt is not a shapes-world caption (%s)",
                        pst.msg);
    tdm_world_check_result res;
    TDM_TRY(tdm_world_check(&q, img->pixels, img->width, img->height, &res, st));
    *score = res.score;
    return TDM_OK;
}

/* ---- test oracles ---- */

static tdm_code constant_score(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                               float *score, tdm_status *st) {
    (void)ex;
    (void)prompt;
    (void)img;
    (void)st;
    *score = *(const float *)state;
    return TDM_OK;
}

static tdm_code brightness_score(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img,
                                 float *score, tdm_status *st) {
    (void)state;
    (void)ex;
    (void)prompt;
    (void)st;
    const size_t n = (size_t)img->width * img->height * 3;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += img->pixels[i];
    *score = n ? (float)((double)sum / (255.0 * (double)n)) : 0.0f;
    return TDM_OK;
}

/* ---- model-backed oracles ---- */

static tdm_code ir_score(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img, float *score,
                         tdm_status *st) {
    return tdm_imagereward_score(state, ex, prompt, img, score, st);
}

static void ir_free(void *state) {
    if (!state) return;
    tdm_imagereward_free(state);
    free(state);
}

/* model_path: an ImageReward model folder (models/imagereward.h). */
static tdm_code open_imagereward(const char *model_path, const tdm_exec *ex, tdm_oracle **out, tdm_status *st) {
    if (!model_path || !*model_path)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle 'imagereward' needs a model folder (--oracle-model DIR; "
                                                 "tools/convert_imagereward.py makes one from ImageReward.pt)");
    tdm_imagereward *m = calloc(1, sizeof *m);
    if (!m) return tdm_fail(st, TDM_ERR_NOMEM, "oracle: out of memory");
    tdm_code rc = tdm_imagereward_load(m, model_path, st);
    if (rc) {
        free(m);
        return tdm_fail_context(st, "oracle 'imagereward'");
    }
    if (!m->tok) {
        ir_free(m);
        return tdm_fail(st, TDM_ERR_MISSING, "oracle 'imagereward': %s has no vocab.txt (bert-base-uncased)", model_path);
    }
    return tdm_oracle_make("imagereward", ir_score, ir_free, m, ex, out, st);
}

/* model_path: "MAIN[,EXTRA]". clipscore / pickscore: MAIN = transformers CLIPModel folder; aesthetic: MAIN =
 * CLIP folder, EXTRA = head .safetensors (default MAIN/aesthetic_head.safetensors); hpsv2: MAIN = OpenCLIP
 * .safetensors, EXTRA = tokenizer folder (vocab.json + merges.txt; default: the file's folder). */
static tdm_code open_clip(const char *name, tdm_clip_oracle_kind kind, const char *model_path, const tdm_exec *ex,
                          tdm_oracle **out, tdm_status *st) {
    if (!model_path || !*model_path)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle '%s' needs its model (--oracle-model PATH, docs/ADAPTIVE.md)",
                        name);
    char main_path[2048], extra[2048] = "", def[2100];
    if (snprintf(main_path, sizeof main_path, "%s", model_path) >= (int)sizeof main_path)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle '%s': model path too long", name);
    char *comma = strchr(main_path, ',');
    if (comma) {
        *comma = '\0';
        snprintf(extra, sizeof extra, "%s", comma + 1);
    }
    tdm_clip_oracle_paths paths;
    memset(&paths, 0, sizeof paths);
    if (kind == TDM_CLIP_ORACLE_HPSV2) {
        paths.openclip_file = main_path;
        if (extra[0]) paths.tokenizer_dir = extra;
        else {
            snprintf(def, sizeof def, "%s", main_path);
            char *slash = strrchr(def, '/');
            if (slash) *slash = '\0';
            else snprintf(def, sizeof def, ".");
            paths.tokenizer_dir = def;
        }
    } else {
        paths.model_dir = main_path;
        if (kind == TDM_CLIP_ORACLE_AESTHETIC) {
            if (extra[0]) paths.aesthetic_head = extra;
            else {
                snprintf(def, sizeof def, "%s/aesthetic_head.safetensors", main_path);
                paths.aesthetic_head = def;
            }
        }
    }
    tdm_clip_oracle *o = NULL;
    if (tdm_clip_oracle_load(&o, kind, &paths, st)) return tdm_fail_context(st, "oracle '%s'", name);
    return tdm_oracle_make(name, tdm_clip_oracle_score_cb, tdm_clip_oracle_free_cb, o, ex, out, st);
}

int tdm_oracle_name_known(const char *name) {
    if (!name) return 0;
    for (int i = 0; k_names[i]; i++)
        if (strcmp(name, k_names[i]) == 0) return 1;
    return strcmp(name, "brightness") == 0 || strncmp(name, "constant:", 9) == 0;
}

tdm_code tdm_oracle_open(const char *name, const char *model_path, tdm_engine *engine, tdm_oracle **out,
                         tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_oracle_open: out is NULL");
    *out = NULL;
    if (!name || !*name) return tdm_fail(st, TDM_ERR_INVALID_ARG, "no oracle name given");
    const tdm_exec *ex = engine ? tdm_engine_exec(engine) : NULL;
    if (strcmp(name, "checker") == 0) return tdm_oracle_make("checker", checker_score, NULL, NULL, ex, out, st);
    if (strcmp(name, "brightness") == 0) return tdm_oracle_make("brightness", brightness_score, NULL, NULL, ex, out, st);
    if (strncmp(name, "constant:", 9) == 0) {
        char *end = NULL;
        double v = strtod(name + 9, &end);
        if (end == name + 9 || *end || !isfinite(v))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle '%s': 'constant:' needs a finite number", name);
        float *state = malloc(sizeof *state);
        if (!state) return tdm_fail(st, TDM_ERR_NOMEM, "oracle: out of memory");
        *state = (float)v;
        return tdm_oracle_make(name, constant_score, free, state, ex, out, st);
    }
    if (strcmp(name, "imagereward") == 0) return open_imagereward(model_path, ex, out, st);
    static const struct {
        const char *name;
        tdm_clip_oracle_kind kind;
    } clip_kinds[] = {{"clipscore", TDM_CLIP_ORACLE_CLIPSCORE},
                      {"aesthetic", TDM_CLIP_ORACLE_AESTHETIC},
                      {"pickscore", TDM_CLIP_ORACLE_PICKSCORE},
                      {"hpsv2", TDM_CLIP_ORACLE_HPSV2}};
    for (size_t i = 0; i < sizeof clip_kinds / sizeof clip_kinds[0]; i++)
        if (strcmp(name, clip_kinds[i].name) == 0) return open_clip(name, clip_kinds[i].kind, model_path, ex, out, st);
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "unknown oracle '%s' (known: checker, imagereward, clipscore, aesthetic, pickscore, hpsv2; "
                    "tests: constant:V, brightness)",
                    name);
}

/* ---- user callbacks ---- */

typedef struct fn_state {
    tdm_oracle_fn fn;
    void *user;
} fn_state;

static tdm_code fn_score(void *state, const tdm_exec *ex, const char *prompt, const tdm_image *img, float *score,
                         tdm_status *st) {
    (void)ex;
    const fn_state *f = state;
    return f->fn(f->user, prompt, img, score, st);
}

tdm_code tdm_oracle_from_fn(const char *name, tdm_oracle_fn fn, void *user, tdm_oracle **out, tdm_status *st) {
    if (!out || !fn) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_oracle_from_fn: out and fn are required");
    *out = NULL;
    fn_state *f = malloc(sizeof *f);
    if (!f) return tdm_fail(st, TDM_ERR_NOMEM, "oracle: out of memory");
    f->fn = fn;
    f->user = user;
    return tdm_oracle_make(name && *name ? name : "custom", fn_score, free, f, NULL, out, st);
}

tdm_code tdm_oracle_score(tdm_oracle *o, const char *prompt, const tdm_image *image, float *score, tdm_status *st) {
    if (!o || !prompt || !image || !score)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_oracle_score: oracle, prompt, image and score are required");
    if (!image->pixels || image->channels != 3 || image->width <= 0 || image->height <= 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "oracle '%s': the image must be RGB8 with pixels", o->name);
    float s = NAN;
    TDM_TRY(o->fn(o->state, o->ex, prompt, image, &s, st));
    if (!isfinite(s)) return tdm_fail(st, TDM_ERR_INTERNAL, "oracle '%s' returned a non-finite score", o->name);
    *score = s;
    return TDM_OK;
}

const char *tdm_oracle_get_name(const tdm_oracle *o) { return o ? o->name : ""; }

void tdm_oracle_free(tdm_oracle *o) {
    if (!o) return;
    if (o->free_state) o->free_state(o->state);
    free(o);
}
