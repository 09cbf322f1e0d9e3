/* Adaptive SDEdit editing: the size rule, the edit input, the one-model baselines, metadata and the edit
 * measures (see edit.h, docs/EDITING.md). */
#include "pipeline/edit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/image.h"
#include "pipeline/adaptive.h"
#include "world/checker.h"
#include "world/edit_pairs.h"

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const char *tdm_edit_mode_name(tdm_edit_mode mode) {
    switch (mode) {
    case TDM_EDIT_ADAPTIVE: return "adaptive";
    case TDM_EDIT_STUDENT_ONLY: return "student-only";
    case TDM_EDIT_TEACHER_ONLY: return "teacher-only";
    }
    return "?";
}

/* ---- the size rule ---- */

tdm_code tdm_edit_fit_make(const tdm_sd_model *m, int src_w, int src_h, int req_w, int req_h, tdm_edit_fit *fit,
                           tdm_status *st) {
    memset(fit, 0, sizeof *fit);
    if (src_w < 1 || src_h < 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: the source image is empty (%dx%d)", src_w, src_h);
    if ((req_w > 0) != (req_h > 0))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: give both width and height, or neither (got %dx%d)", req_w,
                        req_h);
    tdm_gen_defaults d;
    tdm_gen_model_defaults(m, &d);
    const int mult = d.size_multiple > 0 ? d.size_multiple : 8;
    const int D = d.width < d.height ? d.width : d.height;
    int max_side = 2 * (d.width > d.height ? d.width : d.height);
    max_side -= max_side % mult;
    int W, H;
    const int short_side = src_w < src_h ? src_w : src_h, long_side = src_w < src_h ? src_h : src_w;
    if (req_w > 0) {
        if (req_w % mult || req_h % mult || req_w > 4096 || req_h > 4096)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "edit: size %dx%d: width and height must be multiples of %d for this model (at most 4096)",
                            req_w, req_h, mult);
        W = req_w;
        H = req_h;
    } else if (src_w % mult == 0 && src_h % mult == 0 && short_side >= mult && long_side <= max_side) {
        W = src_w; /* kept as is */
        H = src_h;
    } else { /* short side -> D, long side -> long * D / short, a multiple of mult, at most 2 D */
        int L = (int)((double)long_side * D / short_side);
        L -= L % mult;
        if (L < D) L = D;
        if (L > max_side) L = max_side;
        W = src_w < src_h ? D : L;
        H = src_w < src_h ? L : D;
    }
    /* centre crop of the source to the aspect W / H */
    int cw = src_w, ch = src_h;
    if ((int64_t)src_w * H > (int64_t)src_h * W) cw = (int)floor((double)src_h * W / H + 0.5);
    else if ((int64_t)src_w * H < (int64_t)src_h * W) ch = (int)floor((double)src_w * H / W + 0.5);
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (cw > src_w) cw = src_w;
    if (ch > src_h) ch = src_h;
    fit->width = W;
    fit->height = H;
    fit->crop_w = cw;
    fit->crop_h = ch;
    fit->crop_x = (src_w - cw) / 2;
    fit->crop_y = (src_h - ch) / 2;
    fit->resized = !(cw == src_w && ch == src_h && W == src_w && H == src_h);
    return TDM_OK;
}

static tdm_code check_source(const tdm_image *src, tdm_status *st) {
    if (!src) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: no source image");
    if (src->width < 1 || src->height < 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: the source image is empty (%dx%d)", src->width, src->height);
    if (!src->pixels || src->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: the source image must be RGB8 with pixels (%d channels)",
                        src->channels);
    return TDM_OK;
}

tdm_code tdm_edit_fit_apply(const tdm_image *src, const tdm_edit_fit *fit, tdm_image *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    TDM_TRY(check_source(src, st));
    tdm_image crop = {0};
    TDM_TRY(tdm_image_alloc(&crop, fit->crop_w, fit->crop_h, st));
    for (int y = 0; y < fit->crop_h; y++)
        memcpy(crop.pixels + (size_t)y * fit->crop_w * 3,
               src->pixels + ((size_t)(y + fit->crop_y) * src->width + fit->crop_x) * 3, (size_t)fit->crop_w * 3);
    if (fit->crop_w == fit->width && fit->crop_h == fit->height) {
        *out = crop;
        return TDM_OK;
    }
    tdm_code rc = tdm_image_resize(&crop, fit->width, fit->height, TDM_RESAMPLE_LANCZOS, out, st);
    tdm_image_free(&crop);
    return rc;
}

tdm_code tdm_edit_size(const tdm_model *model, int src_width, int src_height, int *width, int *height, int *resized,
                       tdm_status *st) {
    if (!model || !width || !height) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_size: NULL argument");
    tdm_edit_fit fit;
    TDM_TRY(tdm_edit_fit_make(tdm_model_sd(model), src_width, src_height, 0, 0, &fit, st));
    *width = fit.width;
    *height = fit.height;
    if (resized) *resized = fit.resized;
    return TDM_OK;
}

tdm_code tdm_edit_prepare_image(const tdm_model *model, const tdm_image *src, int width, int height, tdm_image *out,
                                tdm_status *st) {
    if (out) memset(out, 0, sizeof *out);
    if (!model || !out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_prepare_image: NULL argument");
    TDM_TRY(check_source(src, st));
    tdm_edit_fit fit;
    TDM_TRY(tdm_edit_fit_make(tdm_model_sd(model), src->width, src->height, width, height, &fit, st));
    return tdm_edit_fit_apply(src, &fit, out, st);
}

/* ---- the edit input of an adaptive run ---- */

/* A source-image coordinate in the fitted image (the crop, then the resize); -1 outside the crop. */
static int fit_coord(int v, int crop_at, int crop_len, int out_len) {
    if (v < crop_at || v >= crop_at + crop_len) return -1;
    const int r = (int)(((double)(v - crop_at) + 0.5) * out_len / crop_len);
    return r < out_len ? r : out_len - 1;
}

/* Drag-moves on the fitted source (edit_drag.c), the drags mapped through the fit; e->region gains their places. */
static tdm_code apply_drags(const tdm_adaptive_params *p, tdm_edit_input *e, tdm_status *st) {
    if (p->n_drags < 0 || p->n_drags > TDM_EDIT_MAX_DRAGS || !p->drags)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: %d drags (1 to %d)", p->n_drags, TDM_EDIT_MAX_DRAGS);
    if (p->source_prompt)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: drag-moves bring their own region: not with a source prompt "
                                                 "(an estimated region)");
    tdm_edit_drag fitted[TDM_EDIT_MAX_DRAGS];
    const tdm_edit_fit *f = &e->fit;
    for (int d = 0; d < p->n_drags; d++) {
        const tdm_edit_drag *g = &p->drags[d];
        fitted[d] = (tdm_edit_drag){fit_coord(g->x0, f->crop_x, f->crop_w, f->width),
                                    fit_coord(g->y0, f->crop_y, f->crop_h, f->height),
                                    fit_coord(g->x1, f->crop_x, f->crop_w, f->width),
                                    fit_coord(g->y1, f->crop_y, f->crop_h, f->height)};
        if (fitted[d].x0 < 0 || fitted[d].y0 < 0 || fitted[d].x1 < 0 || fitted[d].y1 < 0)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "edit: drag %d (%d,%d -> %d,%d) leaves the part of the %dx%d source the edit keeps "
                            "(x %d..%d, y %d..%d)", d + 1, g->x0, g->y0, g->x1, g->y1, p->init_image->width,
                            p->init_image->height, f->crop_x, f->crop_x + f->crop_w - 1, f->crop_y,
                            f->crop_y + f->crop_h - 1);
    }
    const size_t n = (size_t)e->image.width * (size_t)e->image.height;
    if (!e->region && !(e->region = calloc(n, 1))) return tdm_fail(st, TDM_ERR_NOMEM, "edit: out of memory");
    if (!(e->placed = malloc(n))) return tdm_fail(st, TDM_ERR_NOMEM, "edit: out of memory");
    return tdm_edit_drags_apply(&e->image, fitted, p->n_drags, e->region, e->placed, st);
}

tdm_code tdm_edit_input_make(const tdm_model *student, const tdm_adaptive_params *p, tdm_edit_input *e,
                             tdm_status *st) {
    memset(e, 0, sizeof *e);
    if (!p->init_image && p->n_drags != 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: drag-moves need a source image");
    if (!p->init_image) return TDM_OK;
    if (!isfinite(p->strength) || !(p->strength > 0.0f && p->strength <= 1.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: strength %g is out of range (0, 1]", (double)p->strength);
    TDM_TRY(check_source(p->init_image, st));
    TDM_TRY(tdm_edit_fit_make(tdm_model_sd(student), p->init_image->width, p->init_image->height, p->width, p->height,
                              &e->fit, st));
    TDM_TRY(tdm_edit_fit_apply(p->init_image, &e->fit, &e->image, st));
    e->active = 1;
    if (p->mask_image) { /* the painted region, fitted as the source; luma > 127 = edit */
        const tdm_image *mk = p->mask_image;
        tdm_code rc = TDM_OK;
        if (p->source_prompt)
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                          "edit: give a source prompt (estimated region) or a mask image (given region), not both");
        else if (!mk->pixels || mk->channels != 3 || mk->width != p->init_image->width ||
                 mk->height != p->init_image->height)
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: the mask image is %dx%d, the source %dx%d (must match)",
                          mk->width, mk->height, p->init_image->width, p->init_image->height);
        tdm_image fitted = {0};
        if (!rc) rc = tdm_edit_fit_apply(mk, &e->fit, &fitted, st);
        const int64_t n = (int64_t)e->image.width * e->image.height;
        if (!rc && !(e->region = malloc((size_t)n))) rc = tdm_fail(st, TDM_ERR_NOMEM, "edit: out of memory");
        for (int64_t i = 0; !rc && i < n; i++) { /* BT.601 luma */
            const uint8_t *px = fitted.pixels + 3 * i;
            e->region[i] = 299 * px[0] + 587 * px[1] + 114 * px[2] > 127 * 1000;
        }
        tdm_image_free(&fitted);
        if (rc) {
            tdm_edit_input_free(e);
            return rc;
        }
    }
    if (p->n_drags != 0) {
        tdm_code rc = apply_drags(p, e, st);
        if (rc) {
            tdm_edit_input_free(e);
            return rc;
        }
    }
    e->source_width = p->init_image->width;
    e->source_height = p->init_image->height;
    e->params = *p;
    e->params.init_image = &e->image;
    e->params.width = e->image.width;
    e->params.height = e->image.height;
    return TDM_OK;
}

tdm_code tdm_edit_setup_mask(struct tdm_adaptive_setup *su, const tdm_edit_input *e, tdm_status *st) {
    if (!e || !e->active) return TDM_OK;
    if (e->region)
        TDM_TRY(tdm_adaptive_setup_mask_given(su, e->region, e->image.width, e->image.height, e->params.mask_dilate, st));
    else if (e->params.source_prompt)
        TDM_TRY(tdm_adaptive_setup_mask(su, &e->params, e->params.source_prompt, st));
    else if (e->params.mask_paste || e->params.mask_fill)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s needs an edit region (a mask image or a source prompt)",
                        e->params.mask_paste ? "paste-back" : "region fill");
    else
        return TDM_OK;
    if (e->params.mask_paste)
        TDM_TRY(tdm_adaptive_setup_mask_paste(su, e->region, e->image.width, e->image.height, st));
    if (e->params.mask_fill) TDM_TRY(tdm_adaptive_setup_mask_fill(su, e->placed, st));
    return TDM_OK;
}

void tdm_edit_input_free(tdm_edit_input *e) {
    if (!e) return;
    tdm_image_free(&e->image);
    free(e->region);
    free(e->placed);
    e->region = NULL;
    e->placed = NULL;
    e->active = 0;
}

void tdm_edit_metadata_add(cJSON *o, const tdm_edit_input *e, const char *mode, const tdm_edit_mask_info *mask) {
    if (!o || !e || !e->active) return;
    const int masked = mask && mask->active;
    cJSON *ed = cJSON_AddObjectToObject(o, "edit");
    cJSON_AddStringToObject(ed, "mode", mode);
    cJSON_AddStringToObject(ed, "method", masked ? "sdedit-masked" : "sdedit");
    cJSON_AddNumberToObject(ed, "source_width", e->source_width);
    cJSON_AddNumberToObject(ed, "source_height", e->source_height);
    cJSON_AddNumberToObject(ed, "width", e->image.width);
    cJSON_AddNumberToObject(ed, "height", e->image.height);
    cJSON_AddNumberToObject(ed, "strength", tdm_float_as_decimal(e->params.strength));
    cJSON_AddStringToObject(ed, "fit", e->fit.resized ? "cropped and resized" : "kept");
    const int crop[4] = {e->fit.crop_x, e->fit.crop_y, e->fit.crop_w, e->fit.crop_h};
    cJSON_AddItemToObject(ed, "crop", cJSON_CreateIntArray(crop, 4));
    if (!masked) return;
    cJSON *mk = cJSON_AddObjectToObject(ed, "mask");
    if (mask->given) {
        cJSON_AddStringToObject(mk, "region_source", "given");
    } else {
        cJSON_AddStringToObject(mk, "estimate", "diffedit");
        cJSON_AddStringToObject(mk, "source_prompt", e->params.source_prompt ? e->params.source_prompt : "");
        cJSON_AddNumberToObject(mk, "maps", mask->maps);
        cJSON_AddNumberToObject(mk, "strength", tdm_float_as_decimal(mask->strength));
        cJSON_AddNumberToObject(mk, "timestep", mask->timestep);
        cJSON_AddNumberToObject(mk, "threshold", tdm_float_as_decimal(mask->threshold));
    }
    cJSON_AddNumberToObject(mk, "dilate", mask->dilate);
    if (mask->paste) cJSON_AddBoolToObject(mk, "paste", 1);
    if (e->params.n_drags > 0) { /* [x0, y0, x1, y1] in the source's pixels */
        cJSON *dr = cJSON_AddArrayToObject(mk, "drags");
        for (int d = 0; d < e->params.n_drags; d++) {
            const tdm_edit_drag *g = &e->params.drags[d];
            const int v[4] = {g->x0, g->y0, g->x1, g->y1};
            cJSON_AddItemToArray(dr, cJSON_CreateIntArray(v, 4));
        }
    }
    if (mask->fill.pixels) cJSON_AddStringToObject(mk, "content", "fill");
    cJSON_AddNumberToObject(mk, "area", mask->area);
    cJSON_AddNumberToObject(mk, "unet_evals", mask->unet_evals);
    if (mask->h > 0 && mask->w > 0 && mask->w <= 256 && mask->h <= 256) { /* the region, one row a string */
        cJSON *rows = cJSON_AddArrayToObject(mk, "region");
        char line[257];
        for (int y = 0; y < mask->h; y++) {
            for (int x = 0; x < mask->w; x++) line[x] = mask->mask[y * mask->w + x] > 0.5f ? '#' : '.';
            line[mask->w] = 0;
            cJSON_AddItemToArray(rows, cJSON_CreateString(line));
        }
    }
}

/* ---- one-model baselines ---- */

static char *single_metadata(const tdm_adaptive_params *p, const tdm_edit_input *e, tdm_edit_mode mode,
                             const char *model_name, const tdm_gen_plan *pl, const char *oracle_name,
                             const tdm_edit_mask_info *mask, const tdm_adaptive_result *r) {
    const int student = mode == TDM_EDIT_STUDENT_ONLY;
    cJSON *o = cJSON_CreateObject();
    char ver[64], seed[32];
    snprintf(ver, sizeof ver, "tandem %s", TDM_VERSION_STRING);
    cJSON_AddStringToObject(o, "version", ver);
    cJSON_AddStringToObject(o, "pipeline", "edit");
    cJSON_AddStringToObject(o, "prompt", p->prompt);
    cJSON_AddStringToObject(o, "negative_prompt", p->negative_prompt ? p->negative_prompt : "");
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON_AddRawToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "width", pl->width);
    cJSON_AddNumberToObject(o, "height", pl->height);
    cJSON_AddStringToObject(o, "decision", tdm_adaptive_decision_name(r->decision));
    cJSON *m = cJSON_AddObjectToObject(o, student ? "student" : "teacher");
    cJSON_AddStringToObject(m, "model", model_name);
    cJSON_AddStringToObject(m, "sampler", pl->sampler);
    cJSON_AddNumberToObject(m, "steps", pl->steps);
    cJSON_AddNumberToObject(m, "guidance", tdm_float_as_decimal(pl->guidance));
    cJSON_AddNumberToObject(m, "eta", tdm_float_as_decimal(pl->eta));
    cJSON_AddNumberToObject(m, "unet_evals", student ? r->unet_evals_student : r->unet_evals_teacher);
    cJSON_AddNumberToObject(m, "unet_calls", student ? r->unet_calls_student : r->unet_calls_teacher);
    cJSON_AddNumberToObject(m, "seconds", student ? r->seconds_student : r->seconds_teacher);
    if (oracle_name) {
        cJSON *orc = cJSON_AddObjectToObject(o, "oracle");
        cJSON_AddStringToObject(orc, "name", oracle_name);
        if (p->oracle_model) cJSON_AddStringToObject(orc, "model", p->oracle_model);
        else cJSON_AddNullToObject(orc, "model");
        cJSON_AddNumberToObject(orc, "score", r->oracle_score);
        cJSON_AddNumberToObject(orc, "seconds", r->seconds_oracle);
    } else {
        cJSON_AddNullToObject(o, "oracle");
    }
    cJSON_AddNumberToObject(o, "unet_evals", r->unet_evals_student + r->unet_evals_teacher);
    cJSON *sec = cJSON_AddObjectToObject(o, "seconds");
    cJSON_AddNumberToObject(sec, "total", r->seconds_total);
    tdm_edit_metadata_add(o, e, tdm_edit_mode_name(mode), mask);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *format_params(const tdm_model *model, const tdm_generate_params *gp) {
    int need = tdm_format_parameters(model, gp, NULL, 0);
    if (need < 0) return NULL;
    char *s = malloc((size_t)need + 1);
    if (s) tdm_format_parameters(model, gp, s, (size_t)need + 1);
    return s;
}

static tdm_code edit_single(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                            const tdm_adaptive_params *p, tdm_edit_mode mode, tdm_adaptive_result *r, tdm_status *st) {
    const double t_start = now_seconds();
    tdm_edit_input e;
    TDM_TRY(tdm_edit_input_make(student, p, &e, st));
    tdm_adaptive_setup su;
    memset(&su, 0, sizeof su);
    tdm_oracle *own = NULL, *oracle = p->oracle;
    tdm_gen_result g;
    memset(&g, 0, sizeof g);
    tdm_code rc = tdm_adaptive_setup_make(tdm_model_sd(student), tdm_model_sd(teacher), tdm_engine_exec(engine),
                                          &e.params, &su, st);
    if (rc) goto done;
    rc = tdm_edit_setup_mask(&su, &e, st); /* masked editing, in both modes */
    if (rc) goto done;
    if (!oracle && p->oracle_name && strcmp(p->oracle_name, "none") != 0) {
        rc = tdm_oracle_open(p->oracle_name, p->oracle_model, engine, &own, st);
        if (rc) goto done;
        oracle = own;
    }
    const int is_student = mode == TDM_EDIT_STUDENT_ONLY;
    double t0 = now_seconds();
    rc = is_student ? tdm_adaptive_run_student(&su, 0, &g, st)
                    : tdm_adaptive_run_teacher(&su, TDM_DECISION_REGENERATE, NULL, NULL, &g, st);
    const double sec = now_seconds() - t0;
    if (rc) {
        tdm_fail_context(st, "%s", is_student ? "student" : "teacher");
        goto done;
    }
    const int evals = g.stats.unet_calls * g.stats.unet_batch;
    r->unet_evals_student = su.mask.unet_evals; /* the mask estimate (masked editing) is the student's */
    r->unet_calls_student = su.mask.maps;
    r->seconds_student = su.mask.seconds;
    if (is_student) {
        r->unet_evals_student += evals;
        r->unet_calls_student += g.stats.unet_calls;
        r->seconds_student += sec;
        r->decision = TDM_DECISION_KEEP;
    } else {
        r->unet_evals_teacher = evals;
        r->unet_calls_teacher = g.stats.unet_calls;
        r->seconds_teacher = sec;
        r->decision = TDM_DECISION_REGENERATE;
    }
    r->oracle_score = NAN;
    if (oracle) {
        t0 = now_seconds();
        rc = tdm_oracle_score(oracle, p->prompt, &g.image, &r->oracle_score, st);
        r->seconds_oracle = now_seconds() - t0;
        if (rc) goto done;
    }
    r->image = g.image;
    g.image.pixels = NULL;
    r->seconds_total = now_seconds() - t_start;
    const tdm_model *ran = is_student ? student : teacher;
    r->parameters = format_params(ran, is_student ? &su.sgp : &su.tgp);
    r->metadata_json = single_metadata(p, &e, mode, tdm_model_name(ran), is_student ? &su.sp : &su.tp,
                                       oracle ? tdm_oracle_get_name(oracle) : NULL, &su.mask, r);
    if (!r->parameters || !r->metadata_json) rc = tdm_fail(st, TDM_ERR_NOMEM, "edit: out of memory (metadata)");
done:
    tdm_adaptive_setup_clear_mask(&su);
    tdm_gen_result_free(&g);
    tdm_oracle_free(own);
    tdm_edit_input_free(&e);
    return rc;
}

tdm_code tdm_edit(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher, const tdm_adaptive_params *p,
                  tdm_edit_mode mode, tdm_adaptive_result *out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit: result is NULL");
    memset(out, 0, sizeof *out);
    out->tau = out->k = out->teacher_share = out->refine_sigma = NAN;
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit: engine, student, teacher and params are required");
    if (!p->init_image) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: no source image (init_image)");
    if (!p->prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: prompt is NULL");
    switch (mode) {
    case TDM_EDIT_ADAPTIVE: return tdm_adaptive_generate(engine, student, teacher, p, out, st);
    case TDM_EDIT_STUDENT_ONLY:
    case TDM_EDIT_TEACHER_ONLY: {
        tdm_code rc = edit_single(engine, student, teacher, p, mode, out, st);
        if (rc) tdm_adaptive_result_free(out);
        return rc;
    }
    }
    return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit: unknown mode %d", (int)mode);
}

/* ---- measures ---- */

tdm_code tdm_edit_measure(const tdm_image *source, const tdm_image *edit, const char *prompt, tdm_image_similarity *sim,
                          tdm_edit_quality *q, tdm_status *st) {
    if (!q) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_measure: NULL result");
    memset(q, 0, sizeof *q);
    q->similarity = NAN;
    q->world_preserved = -1;
    TDM_TRY(check_source(source, st));
    if (!edit || !edit->pixels || edit->width < 1 || edit->height < 1 || edit->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit measure: the edited image is empty");
    if (sim) TDM_TRY(tdm_image_similarity_cosine(sim, source, edit, &q->similarity, st));
    tdm_world_query target;
    tdm_status ignore = {0};
    if (!prompt || tdm_world_parse(prompt, &target, &ignore) != TDM_OK) {
        snprintf(q->world_note, sizeof q->world_note, "the prompt is not a shapes-world caption");
        return TDM_OK;
    }
    tdm_world_analysis a_src, a_edit;
    if (tdm_world_analyze(edit->pixels, edit->width, edit->height, &a_edit, &ignore) != TDM_OK) {
        snprintf(q->world_note, sizeof q->world_note, "edit not analysable: %.200s", ignore.msg);
        return TDM_OK;
    }
    tdm_world_check_result res;
    tdm_world_score(&target, &a_edit, &res);
    q->has_checker = 1;
    q->checker = res.score;
    tdm_world_query keep;
    if (tdm_world_analyze(source->pixels, source->width, source->height, &a_src, &ignore) != TDM_OK ||
        tdm_world_keep_query_infer(&a_src, &target, &keep, q->world_changed, sizeof q->world_changed, &ignore) !=
            TDM_OK) {
        snprintf(q->world_note, sizeof q->world_note, "%.250s", ignore.msg);
        return TDM_OK;
    }
    q->world_preserved = tdm_world_preserved(&keep, &a_edit, &q->world_kept, &q->world_checked, q->world_lost,
                                             sizeof q->world_lost);
    return TDM_OK;
}

tdm_code tdm_edit_attach_quality(tdm_adaptive_result *r, const tdm_edit_quality *q, tdm_status *st) {
    if (!r || !q || !r->metadata_json) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_edit_attach_quality: no metadata");
    cJSON *o = cJSON_Parse(r->metadata_json);
    if (!o) return tdm_fail(st, TDM_ERR_INTERNAL, "edit: the metadata JSON does not parse");
    cJSON *qj = cJSON_CreateObject();
    if (q->has_checker) cJSON_AddNumberToObject(qj, "checker", q->checker);
    else cJSON_AddNullToObject(qj, "checker");
    if (isfinite(q->similarity)) cJSON_AddNumberToObject(qj, "similarity", q->similarity);
    else cJSON_AddNullToObject(qj, "similarity");
    cJSON *w = cJSON_AddObjectToObject(qj, "world_preservation");
    if (q->world_preserved < 0) {
        cJSON_AddNullToObject(w, "preserved");
        cJSON_AddStringToObject(w, "note", q->world_note);
    } else {
        cJSON_AddBoolToObject(w, "preserved", q->world_preserved);
        cJSON_AddNumberToObject(w, "kept", q->world_kept);
        cJSON_AddNumberToObject(w, "checked", q->world_checked);
        cJSON_AddStringToObject(w, "changed", q->world_changed);
        cJSON_AddStringToObject(w, "lost", q->world_lost);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "quality");
    cJSON_AddItemToObject(o, "quality", qj);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return tdm_fail(st, TDM_ERR_NOMEM, "edit: out of memory (metadata)");
    free(r->metadata_json);
    r->metadata_json = s;
    return TDM_OK;
}
