/* tandem edit-eval: the shapes-world edit evaluation, resumable (see eval_edit.h, tandem.h, docs/EDITING.md).
 *
 * Pair i (0-based) is tdm_world_edit_pair_make(world_seed, i): the source scene rendered at the run's size
 * (4x4 supersampling, as `tandem world sample`), the target caption as the prompt, noise seed seed + i. Its
 * three runs are appended as one JSON line to OUT/pairs.jsonl (flushed and fsync'ed) after a header line holding
 * the settings; a rerun with the same settings continues after the last complete line (a torn last line is
 * dropped), one with other settings is refused unless restart is set. The pair count and the threshold (k,
 * calibration) are not settings: the tables are derived from the log at the end. */
#include "pipeline/eval_edit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/jsonl_log.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/calibrate.h"
#include "pipeline/eval_common.h"
#include "pipeline/edit.h"
#include "pipeline/eval_control.h"
#include "world/checker.h"

#define EEVAL_LOG_FORMAT "tandem-edit-eval-log"
#define EEVAL_LOG_VERSION 1
#define EEVAL_MAX_N 100000
#define EEVAL_SUPERSAMPLE 4

void tdm_edit_eval_params_init(tdm_edit_eval_params *p) {
    memset(p, 0, sizeof *p);
    p->world_seed = 1001;
    tdm_adaptive_params_init(&p->settings);
    p->control_scale = 1.0f;
    p->control_start = 0.0f;
    p->control_end = 1.0f;
}

/* ---- settings (the log's header line) ---- */

static cJSON *settings_json(const tdm_edit_eval_params *p, const tdm_model *student, const tdm_model *teacher,
                            const tdm_adaptive_setup *su, const char *oracle) {
    const tdm_adaptive_params *a = &p->settings;
    cJSON *o = tdm_evalc_header_begin(EEVAL_LOG_FORMAT, EEVAL_LOG_VERSION, student, teacher, su);
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "strength", tdm_float_as_decimal(a->strength));
    tdm_evalc_add_prompting(o, su);
    tdm_evalc_add_refine(o, a, su);
    tdm_evalc_add_oracle(o, oracle, p->oracle_model);
    cJSON_AddBoolToObject(o, "similarity", p->similarity != NULL);
    tdm_evalc_add_u64(o, "world_seed", p->world_seed);
    tdm_evalc_add_u64(o, "seed", p->seed);
    cJSON_AddStringToObject(o, "pair_rule", "pair i: tdm_world_edit_pair_make(world_seed, i), noise seed seed + i");
    if (p->masked && p->mask_given) { /* masked editing with the region where the scenes differ */
        cJSON *mk = cJSON_AddObjectToObject(o, "mask");
        cJSON_AddStringToObject(mk, "region", "given: the pixels where the source and target renders differ");
        cJSON_AddNumberToObject(mk, "dilate", a->mask_dilate);
        if (a->mask_paste) cJSON_AddBoolToObject(mk, "paste", 1); /* absent otherwise: older logs stay valid */
        if (a->mask_fill) cJSON_AddStringToObject(mk, "content", "fill");
        if (p->drag) /* absent otherwise */
            cJSON_AddStringToObject(mk, "drag", "position edits: each moved object dragged from its source centre to "
                                                "its target centre");
    } else if (p->masked) { /* masked editing with the pair's source caption (edit_mask.c) */
        cJSON *mk = cJSON_AddObjectToObject(o, "mask");
        cJSON_AddStringToObject(mk, "source_prompt", "the pair's source caption");
        cJSON_AddNumberToObject(mk, "maps", a->mask_maps);
        cJSON_AddNumberToObject(mk, "strength", tdm_float_as_decimal(a->mask_strength));
        cJSON_AddNumberToObject(mk, "threshold", tdm_float_as_decimal(a->mask_threshold));
        cJSON_AddNumberToObject(mk, "dilate", a->mask_dilate);
        if (a->mask_paste) cJSON_AddBoolToObject(mk, "paste", 1);
        if (a->mask_fill) cJSON_AddStringToObject(mk, "content", "fill");
    } else {
        cJSON_AddNullToObject(o, "mask");
    }
    if (p->controlnet) { /* layout-guided editing (the key is absent otherwise: older logs stay valid) */
        tdm_evalc_add_controlnet(o, p->controlnet_name, "segmentation of the target scene", p->control_scale,
                                 p->control_start, p->control_end);
    }
    return o;
}

/* ---- log lines ---- */

static void add_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static char *pair_line(const tdm_eeval_pair *s, int i, const tdm_world_edit_pair *wp, int guided) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "pair", i);
    tdm_evalc_add_u64(o, "scene_index", s->scene_index);
    tdm_evalc_add_u64(o, "seed", s->base.seed);
    cJSON_AddStringToObject(o, "kind", tdm_world_edit_kind_name(s->kind));
    cJSON_AddStringToObject(o, "instruction", wp->instruction);
    cJSON_AddStringToObject(o, "prompt", wp->caption);
    cJSON_AddStringToObject(o, "source_caption", wp->source_caption);
    cJSON_AddBoolToObject(o, "held_out", s->held_out);
    add_num_or_null(o, "mask_area", s->mask_area);
    for (int r = 0; r < TDM_EVAL_N_RUNS; r++) {
        cJSON *rj = cJSON_AddObjectToObject(o, tdm_evalc_run_key[r]);
        cJSON_AddNumberToObject(rj, "checker", s->base.checker[r]);
        cJSON_AddBoolToObject(rj, "preserved", s->preserved[r]);
        cJSON_AddNumberToObject(rj, "kept", s->kept[r]);
        cJSON_AddNumberToObject(rj, "checked", s->checked[r]);
        cJSON_AddStringToObject(rj, "lost", s->lost[r]);
        cJSON_AddNumberToObject(rj, "oracle", s->base.oracle[r]);
        add_num_or_null(rj, "similarity", s->similarity[r]);
        cJSON_AddNumberToObject(rj, "unet_evals", s->base.evals[r]);
        if (guided) cJSON_AddNumberToObject(rj, "controlnet_calls", s->cn_calls[r]);
        cJSON_AddNumberToObject(rj, "seconds", s->base.seconds[r]);
    }
    cJSON_AddNumberToObject(o, "seconds_oracle", s->base.seconds_oracle);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

typedef struct log_ctx {
    const tdm_edit_eval_params *p;
    int n_max;
    tdm_eeval_pair *pairs; /* [n_max] */
    const char *header;
} log_ctx;

/* Parses log line i into pairs[i]; the pair's identity (scene, kind, seed) must match pair i's. */
static int log_pair(void *user, const char *line, int i) {
    const log_ctx *c = user;
    if (i >= c->n_max) return 0;
    tdm_world_edit_pair wp;
    tdm_status ignore = {0};
    if (tdm_world_edit_pair_make(c->p->world_seed, (uint64_t)i, &wp, &ignore)) return 0;
    cJSON *o = cJSON_Parse(line);
    if (!o) return 0;
    tdm_eeval_pair *s = &c->pairs[i];
    memset(s, 0, sizeof *s);
    s->base.prompt_index = i;
    s->base.seed = c->p->seed + (uint64_t)i;
    s->base.has_checker = 1;
    s->scene_index = wp.scene_index;
    s->kind = wp.kind;
    s->held_out = wp.held_out;
    if (!tdm_evalc_num(o, "mask_area", &s->mask_area)) s->mask_area = NAN;
    double v = 0;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    int ok = tdm_evalc_num(o, "pair", &v) && v == i && cJSON_IsString(kind) &&
             strcmp(kind->valuestring, tdm_world_edit_kind_name(wp.kind)) == 0 &&
             tdm_evalc_num(o, "seconds_oracle", &s->base.seconds_oracle);
    for (int r = 0; ok && r < TDM_EVAL_N_RUNS; r++) {
        const cJSON *rj = cJSON_GetObjectItemCaseSensitive(o, tdm_evalc_run_key[r]);
        double c0 = 0, orc = 0, ev = 0, sec = 0, kept = 0, checked = 0, sim = NAN;
        const cJSON *pres = cJSON_GetObjectItemCaseSensitive(rj, "preserved");
        ok = cJSON_IsObject(rj) && tdm_evalc_num(rj, "checker", &c0) && tdm_evalc_num(rj, "oracle", &orc) &&
             tdm_evalc_num(rj, "unet_evals", &ev) && tdm_evalc_num(rj, "seconds", &sec) && tdm_evalc_num(rj, "kept", &kept) &&
             tdm_evalc_num(rj, "checked", &checked) && cJSON_IsBool(pres) && ev >= 0 && ev <= 1e9;
        if (!ok) break;
        if (!tdm_evalc_num(rj, "similarity", &sim)) sim = NAN;
        double cn = 0; /* layout-guided logs only */
        if (tdm_evalc_num(rj, "controlnet_calls", &cn) && cn >= 0 && cn <= 1e9) s->cn_calls[r] = (int)cn;
        s->base.checker[r] = (float)c0;
        s->base.oracle[r] = (float)orc;
        s->base.evals[r] = (int)ev;
        s->base.seconds[r] = sec;
        s->preserved[r] = cJSON_IsTrue(pres);
        s->kept[r] = (int)kept;
        s->checked[r] = (int)checked;
        s->similarity[r] = sim;
        const cJSON *lost = cJSON_GetObjectItemCaseSensitive(rj, "lost"); /* optional (older logs lack it) */
        if (cJSON_IsString(lost)) snprintf(s->lost[r], sizeof s->lost[r], "%s", lost->valuestring);
    }
    cJSON_Delete(o);
    return ok;
}

static tdm_code log_mismatch(void *user, const char *path, const char *line, tdm_status *st) {
    const log_ctx *c = user;
    return tdm_evalc_log_mismatch(path, line, c->header, "the header",
                                  "models, their settings, strength, refinement, oracle, similarity or seeds", st);
}

/* ---- one pair ---- */

typedef struct eeval_ctx {
    const tdm_edit_eval_params *p;
    tdm_adaptive_setup su;
    tdm_control control; /* layout-guided editing: its image is set per pair (the target's map) */
    double (*clock)(void *);
    void *clock_user;
} eeval_ctx;

static tdm_code render_source(const tdm_world_scene *sc, int W, int H, tdm_image *img, tdm_status *st) {
    TDM_TRY(tdm_image_alloc(img, W, H, st));
    tdm_code rc = tdm_world_render(sc, W, H, EEVAL_SUPERSAMPLE, img->pixels, NULL, st);
    if (rc) tdm_image_free(img);
    return rc;
}

/* The given edit region of a pair: the pixels where the renders of the source and the target differ by more
 * than REGION_DIFF in some channel (what a user would paint for this edit). region [H, W] (malloc). */
#define REGION_DIFF 16
static tdm_code pair_region(const tdm_world_edit_pair *wp, const tdm_image *src, unsigned char **region,
                            tdm_status *st) {
    tdm_image tgt = {0};
    TDM_TRY(render_source(&wp->target, src->width, src->height, &tgt, st));
    const int64_t n = (int64_t)src->width * src->height;
    unsigned char *r = malloc((size_t)n); /* [H, W] */
    if (!r) {
        tdm_image_free(&tgt);
        return tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        int d = 0;
        for (int c = 0; c < 3; c++) {
            const int v = abs((int)src->pixels[3 * i + c] - (int)tgt.pixels[3 * i + c]);
            if (v > d) d = v;
        }
        r[i] = d > REGION_DIFF;
    }
    tdm_image_free(&tgt);
    *region = r;
    return TDM_OK;
}

/* The drag-moves of a pair (edit-eval --drag): every object whose centre moves (a position edit), dragged from
 * its source centre to its target centre, in pixels of a W x H render. Returns the count. */
static int pair_drags(const tdm_world_edit_pair *wp, int W, int H, tdm_edit_drag *drags) {
    int n = 0;
    for (int k = 0; k < wp->source.n_objects && k < wp->target.n_objects; k++) {
        const tdm_world_object *a = &wp->source.obj[k], *b = &wp->target.obj[k];
        if (a->cx == b->cx && a->cy == b->cy) continue;
        const float px[4] = {a->cx * (float)W, a->cy * (float)H, b->cx * (float)W, b->cy * (float)H};
        int v[4];
        for (int j = 0; j < 4; j++) {
            const int lim = (j % 2 ? H : W) - 1;
            v[j] = (int)(px[j] < 0 ? 0 : px[j]);
            if (v[j] > lim) v[j] = lim;
        }
        drags[n++] = (tdm_edit_drag){v[0], v[1], v[2], v[3]};
    }
    return n;
}

/* Scores run r's edit beyond the oracle (tdm_evalc_score_fn): checker on the target caption, preservation,
 * similarity to the source. */
typedef struct pair_user {
    eeval_ctx *c;
    const tdm_world_edit_pair *wp;
    const tdm_image *src;
    tdm_eeval_pair *s;
} pair_user;

/* With save_images: out_dir/images/pairNNNNN_WHAT.png. */
static tdm_code save_pair_image(const eeval_ctx *c, int i, const char *what, const tdm_image *img, tdm_status *st) {
    if (!c->p->save_images) return TDM_OK;
    char path[4096];
    const int n = snprintf(path, sizeof path, "%s/images/pair%05d_%s.png", c->p->out_dir, i, what);
    if (n < 0 || (size_t)n >= sizeof path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: output folder name too long");
    return tdm_image_save_png(path, img, NULL, st);
}

static tdm_code score_run(void *user, int r, const tdm_gen_result *g, tdm_status *st) {
    const pair_user *u = user;
    const tdm_image *img = &g->image;
    tdm_eeval_pair *s = u->s;
    TDM_TRY(save_pair_image(u->c, s->base.prompt_index, tdm_evalc_run_key[r], img, st));
    tdm_world_analysis an;
    TDM_TRY(tdm_world_analyze(img->pixels, img->width, img->height, &an, st));
    tdm_world_check_result res;
    tdm_world_score(&u->wp->target_query, &an, &res);
    s->base.checker[r] = res.score;
    s->preserved[r] = tdm_world_preserved(&u->wp->keep, &an, &s->kept[r], &s->checked[r], s->lost[r],
                                          sizeof s->lost[r]);
    s->similarity[r] = NAN;
    if (u->c->p->similarity)
        TDM_TRY(tdm_image_similarity_cosine(u->c->p->similarity, u->src, img, &s->similarity[r], st));
    return TDM_OK;
}

static tdm_code run_pair(eeval_ctx *c, int i, tdm_world_edit_pair *wp, tdm_eeval_pair *s, tdm_status *st) {
    const tdm_edit_eval_params *p = c->p;
    memset(s, 0, sizeof *s);
    TDM_TRY(tdm_world_edit_pair_make(p->world_seed, (uint64_t)i, wp, st));
    s->base.prompt_index = i;
    s->base.seed = p->seed + (uint64_t)i;
    s->base.has_checker = 1;
    s->scene_index = wp->scene_index;
    s->kind = wp->kind;
    s->held_out = wp->held_out;
    tdm_image src = {0};
    TDM_TRY(render_source(&wp->source, c->su.sp.width, c->su.sp.height, &src, st));
    tdm_image cond = {0}; /* [H, W, 3] the target scene's segmentation map (layout-guided editing) */
    if (p->controlnet) {
        tdm_code crc = tdm_ceval_condition(&wp->target, src.width, src.height, &cond, NULL, st);
        if (crc) {
            tdm_image_free(&src);
            return crc;
        }
        c->control.image = &cond;
    }
    tdm_adaptive_setup *su = &c->su;
    su->sgp.prompt = su->tgp.prompt = su->sp.prompt = su->tp.prompt = wp->caption;
    su->sgp.seed = su->tgp.seed = su->sp.seed = su->tp.seed = s->base.seed;
    su->sgp.init_image = su->tgp.init_image = &src; /* the teacher-only edit = the teacher's img2img of it */
    tdm_code rc = save_pair_image(c, i, "source", &src, st);
    tdm_image start = {0};       /* [H, W, 3] drag-moves: the composite the edits start from */
    unsigned char *placed = NULL; /* [H, W] drag-moves: the pixels of the pasted objects */
    pair_user u = {c, wp, &src, s};
    const tdm_evalc_runs r = {su, p->oracle, wp->caption, c->clock, c->clock_user, score_run, &u};
    s->mask_area = NAN;
    double mask_seconds = 0;
    if (!rc && p->masked && p->mask_given) { /* the region where the scenes differ, shared by the three runs */
        unsigned char *region = NULL; /* [H, W] */
        rc = pair_region(wp, &src, &region, st);
        tdm_edit_drag drags[2];
        const int n_drags = p->drag ? pair_drags(wp, src.width, src.height, drags) : 0;
        if (!rc && n_drags > 0) { /* the moved objects pasted at their new places: the edits' start */
            rc = tdm_image_alloc(&start, src.width, src.height, st);
            if (!rc && !(placed = malloc((size_t)src.width * (size_t)src.height)))
                rc = tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
            if (!rc) {
                memcpy(start.pixels, src.pixels, (size_t)src.width * (size_t)src.height * 3);
                rc = tdm_edit_drags_apply(&start, drags, n_drags, region, placed, st);
            }
            if (!rc) rc = save_pair_image(c, i, "start", &start, st);
            if (!rc) su->sgp.init_image = su->tgp.init_image = &start;
        }
        if (!rc) rc = tdm_adaptive_setup_mask_given(su, region, src.width, src.height, p->settings.mask_dilate, st);
        if (!rc && p->settings.mask_paste) rc = tdm_adaptive_setup_mask_paste(su, region, src.width, src.height, st);
        if (!rc && p->settings.mask_fill) rc = tdm_adaptive_setup_mask_fill(su, placed, st);
        free(region);
    } else if (!rc && p->masked) { /* the region from the student's UNet, shared by the three runs */
        const double t0 = c->clock(c->clock_user);
        rc = tdm_adaptive_setup_mask(su, &p->settings, wp->source_caption, st);
        if (!rc && p->settings.mask_paste) rc = tdm_adaptive_setup_mask_paste(su, NULL, src.width, src.height, st);
        if (!rc && p->settings.mask_fill) rc = tdm_adaptive_setup_mask_fill(su, NULL, st);
        mask_seconds = c->clock(c->clock_user) - t0;
    }
    if (!rc) rc = tdm_evalc_run_three(&r, &s->base, p->controlnet ? s->cn_calls : NULL, st);
    /* the region's cost is counted with the student's edit (every method but teacher-only runs it; refinement
     * and regeneration reuse its region); the teacher-only figure leaves it out, which only makes that
     * baseline cheaper */
    if (!rc && p->masked) {
        s->mask_area = su->mask.area;
        s->base.evals[TDM_EVAL_RUN_STUDENT] += su->mask.unet_evals;
        s->base.seconds[TDM_EVAL_RUN_STUDENT] += mask_seconds;
    }
    tdm_adaptive_setup_clear_mask(su);
    su->sgp.init_image = su->tgp.init_image = NULL;
    c->control.image = NULL;
    tdm_image_free(&cond);
    tdm_image_free(&start);
    free(placed);
    tdm_image_free(&src);
    return rc;
}

/* ---- the run ---- */

static tdm_code check_params(const tdm_edit_eval_params *p, tdm_status *st) {
    if (!p->out_dir || !*p->out_dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: no output folder given");
    if (!p->oracle) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: no oracle given");
    if (p->n < 1 || p->n > EEVAL_MAX_N)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: %d pairs (1..%d)", p->n, EEVAL_MAX_N);
    if (p->n_k < 0 || p->n_k > 128 || (p->n_k && !p->k))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: %d values of k (0..128)", p->n_k);
    for (int j = 0; j < p->n_k; j++) TDM_TRY(tdm_calibration_check_k(p->k[j], st));
    if (p->controlnet && !(isfinite(p->control_scale) && p->control_scale >= 0.0f && p->control_scale <= 100.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: control scale %g is out of range [0, 100]",
                        (double)p->control_scale);
    if (p->drag && !(p->masked && p->mask_given))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: drag-moves need the given region (--mask-given)");
    if ((p->settings.mask_paste || p->settings.mask_fill) && !p->masked)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: %s needs masked editing (--mask or --mask-given)",
                        p->settings.mask_paste ? "paste-back" : "region fill");
    const float s = p->settings.strength;
    if (!isfinite(s) || !(s > 0.0f && s <= 1.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: strength %g is out of range (0, 1]", (double)s);
    return TDM_OK;
}

tdm_code tdm_edit_eval(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                       const tdm_edit_eval_params *p, tdm_eval_summary *summary, tdm_status *st) {
    tdm_eval_summary dummy;
    if (!summary) summary = &dummy;
    memset(summary, 0, sizeof *summary);
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_eval: engine, student, teacher and params are required");
    TDM_TRY(check_params(p, st));
    const int n = p->n;
    summary->n_samples = n;
    eeval_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.clock = p->clock ? p->clock : tdm_evalc_now;
    c.clock_user = p->clock_user;
    tdm_calibration *cal = NULL;
    cJSON *settings = NULL;
    char *header = NULL, *log_path = NULL;
    tdm_eeval_pair *pairs = NULL;
    double *tau = NULL;
    FILE *f = NULL;
    tdm_image probe = {0};

    /* the settings, resolved with pair 0's source (the run's size: width / height or the student's default) */
    tdm_adaptive_params a = p->settings;
    tdm_gen_defaults d;
    tdm_gen_model_defaults(tdm_model_sd(student), &d);
    const int W = a.width > 0 ? a.width : d.width, H = a.height > 0 ? a.height : d.height;
    tdm_world_edit_pair wp0;
    tdm_code rc = tdm_world_edit_pair_make(p->world_seed, 0, &wp0, st);
    if (!rc) rc = render_source(&wp0.source, W, H, &probe, st);
    if (rc) goto done;
    a.prompt = wp0.caption;
    a.width = W;
    a.height = H;
    a.init_image = &probe;
    tdm_control_init(&c.control);
    if (p->controlnet) { /* one control for every stage; resolving the stages with it validates it */
        c.control.controlnet = p->controlnet;
        c.control.scale = p->control_scale;
        c.control.start = p->control_start;
        c.control.end = p->control_end;
        c.control.image = &probe; /* a stand-in condition of the run's size */
        a.controls = &c.control;
        a.n_controls = 1;
    }
    rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine), &a, &c.su, st);
    if (!rc) rc = tdm_adaptive_setup_refine(&c.su, &a, st);
    c.su.sgp.init_image = c.su.tgp.init_image = NULL;
    c.control.image = NULL;
    if (rc) goto done;
    const char *oracle_name = tdm_oracle_get_name(p->oracle);
    if (p->calibration) {
        rc = tdm_evalc_calibration_open(p->calibration, p->k, p->n_k, student, &c.su, oracle_name, summary->warnings,
                                        sizeof summary->warnings, &cal, st);
        if (rc) goto done;
    }
    rc = tdm_evalc_make_dir(p->out_dir, st);
    if (rc) goto done;
    if (p->save_images) {
        char dir[4096];
        const int dn = snprintf(dir, sizeof dir, "%s/images", p->out_dir);
        rc = dn < 0 || (size_t)dn >= sizeof dir
                 ? tdm_fail(st, TDM_ERR_INVALID_ARG, "edit-eval: output folder name too long")
                 : tdm_evalc_make_dir(dir, st);
        if (rc) goto done;
    }
    settings = settings_json(p, student, teacher, &c.su, oracle_name);
    header = settings ? cJSON_PrintUnformatted(settings) : NULL;
    const size_t pl = strlen(p->out_dir) + 32;
    log_path = malloc(pl);
    pairs = calloc((size_t)n, sizeof *pairs);
    tau = malloc(sizeof(double) * (size_t)(p->n_k > 0 ? p->n_k : 1));
    if (!header || !log_path || !pairs || !tau) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "edit-eval: out of memory");
        goto done;
    }
    snprintf(log_path, pl, "%s/pairs.jsonl", p->out_dir);
    int done_n = 0;
    log_ctx lc = {p, p->n, pairs, header};
    const tdm_jsonl_resume res = {header, (size_t)1 << 32,
                                  "edit evaluation (corrupt log, or more pairs than --n; delete it or pass --restart)",
                                  log_mismatch, log_pair, &lc};
    rc = tdm_evalc_log_open(log_path, p->restart, &res, &done_n, &f, st);
    if (rc) goto done;
    summary->n_resumed = done_n;

    for (int i = done_n; i < n; i++) {
        const double t0 = c.clock(c.clock_user);
        tdm_world_edit_pair wp;
        rc = run_pair(&c, i, &wp, &pairs[i], st);
        if (rc) {
            tdm_fail_context(st, "edit-eval: pair %d (seed %llu)", i, (unsigned long long)(p->seed + (uint64_t)i));
            goto done;
        }
        rc = tdm_evalc_log_append(f, log_path, pair_line(&pairs[i], i, &wp, p->controlnet != NULL), "edit-eval", st);
        if (rc) goto done;
        if (p->on_pair) {
            tdm_edit_eval_progress pg;
            memset(&pg, 0, sizeof pg);
            pg.done = i + 1;
            pg.total = n;
            pg.resumed = summary->n_resumed;
            pg.instruction = wp.instruction;
            pg.student_checker = pairs[i].base.checker[TDM_EVAL_RUN_STUDENT];
            pg.teacher_checker = pairs[i].base.checker[TDM_EVAL_RUN_TEACHER];
            pg.refine_checker = pairs[i].base.checker[TDM_EVAL_RUN_REFINE];
            pg.seconds = c.clock(c.clock_user) - t0;
            if (p->on_pair(p->user, &pg)) {
                rc = tdm_fail(st, TDM_ERR_CANCELLED, "edit evaluation cancelled after %d of %d pairs (resumable: %s)",
                              i + 1, n, log_path);
                goto done;
            }
        }
    }
    fclose(f);
    f = NULL;

    /* thresholds, methods, tables */
    rc = tdm_evalc_thresholds(cal, p->k, p->n_k, &pairs[0].base.oracle[TDM_EVAL_RUN_STUDENT], sizeof *pairs, n,
                              "edit-eval", tau, st);
    if (rc) goto done;
    char line[1024] = "";
    tdm_evalc_models_text(student, teacher, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line, "; edit strength %g; ", tdm_float_as_decimal(a.strength));
    if (p->controlnet)
        tdm_evalc_controlnet_text(p->controlnet_name, "the target scene's segmentation", p->control_scale,
                                  p->control_start, p->control_end, line, sizeof line);
    tdm_evalc_refine_text(&a, &c.su, line, sizeof line);
    tdm_evalc_appendf(line, sizeof line, "; oracle: %s; %dx%d; world seed %llu, noise seed %llu", oracle_name,
                      c.su.sp.width, c.su.sp.height, (unsigned long long)p->world_seed, (unsigned long long)p->seed);
    char source[1100];
    tdm_evalc_tau_source(p->calibration, source, sizeof source);
    tdm_eeval_report_in in;
    memset(&in, 0, sizeof in);
    in.out_dir = p->out_dir;
    in.world_seed = p->world_seed;
    in.pairs = pairs;
    in.n = n;
    in.with_regenerate = c.su.same_latent_shape;
    in.k = p->k;
    in.tau = tau;
    in.n_k = p->n_k;
    in.tau_source = source;
    in.settings_line = line;
    in.warnings = summary->warnings;
    rc = tdm_eeval_write_report(&in, st);
done:
    if (f) fclose(f);
    tdm_image_free(&probe);
    free(tau);
    free(pairs);
    free(log_path);
    free(header);
    cJSON_Delete(settings);
    tdm_calibration_free(cal);
    return rc;
}
