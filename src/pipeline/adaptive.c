/* The adaptive student-teacher pipeline (tandem.h "adaptive" block, docs/ADAPTIVE.md):
 * student -> oracle -> keep, or teacher refinement / regeneration; metadata. */
#include "pipeline/adaptive.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "io/image.h"
#include "pipeline/calibrate.h"
#include "pipeline/edit.h"
#include "pipeline/preset.h"

const char *tdm_adaptive_decision_name(tdm_adaptive_decision d) {
    switch (d) {
    case TDM_DECISION_KEEP: return "keep";
    case TDM_DECISION_REFINE: return "refine";
    case TDM_DECISION_REGENERATE: return "regenerate";
    }
    return "?";
}

void tdm_adaptive_params_init(tdm_adaptive_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->negative_prompt = "";
    p->clip_skip = 1;
    p->emphasis = 1;
    p->student.guidance = -1.0f;
    p->teacher.guidance = -1.0f;
    p->oracle_name = "checker";
    p->tau = NAN;
    p->k = NAN;
    p->teacher_share = NAN;
    p->strategy = TDM_ADAPTIVE_REFINE;
    p->refine_convention = TDM_REFINE_STRENGTH;
    p->refine_strength = 0.4f;
    p->refine_noise = 0.4f;
    p->strength = 0.75f; /* editing (init_image): SDEdit strength */
    p->mask_maps = 4;     /* masked editing (source_prompt): edit_mask.c */
    p->mask_strength = 0.5f;
    p->mask_threshold = 0.5f;
    p->mask_dilate = 1;
}

void tdm_adaptive_result_free(tdm_adaptive_result *r) {
    if (!r) return;
    tdm_image_free(&r->image);
    tdm_image_free(&r->student_image);
    free(r->parameters);
    free(r->metadata_json);
    r->parameters = r->metadata_json = NULL;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 0.7f -> 0.7, not 0.699999988 (what Python would hold). */
double tdm_float_as_decimal(float v) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static void stage_params(const tdm_adaptive_params *p, const tdm_stage_settings *s, int width, int height,
                         tdm_generate_params *gp) {
    tdm_generate_params_init(gp);
    gp->prompt = p->prompt;
    gp->negative_prompt = p->negative_prompt;
    gp->steps = s->steps;
    gp->guidance_scale = s->guidance;
    gp->sampler = s->sampler;
    gp->eta = s->eta;
    gp->seed = p->seed;
    gp->width = width;
    gp->height = height;
    gp->clip_skip = p->clip_skip;
    gp->emphasis = p->emphasis;
    gp->progress = p->progress;
    gp->progress_user = p->progress_user;
    gp->controls = p->controls; /* the same ControlNets condition the student and the teacher */
    gp->n_controls = p->n_controls;
    gp->init_image = p->init_image; /* editing (edit.h): img2img of the fitted source */
    if (p->init_image) gp->strength = p->strength;
}

static void append_warning(tdm_adaptive_result *r, const char *text) {
    size_t len = strlen(r->warnings);
    snprintf(r->warnings + len, sizeof r->warnings - len, "%s", text);
}

/* The threshold: tau directly, or k / teacher share with a calibration. */
static tdm_code resolve_threshold(const tdm_adaptive_params *p, const char *student_name, const tdm_gen_plan *sp,
                                  const char *oracle_name, tdm_adaptive_result *r, tdm_status *st) {
    r->k = NAN;
    r->teacher_share = NAN;
    const int has_k = !isnan(p->k), has_q = !isnan(p->teacher_share);
    if (!isnan(p->tau)) {
        if (has_k || has_q)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "give either tau, or k / teacher share with a calibration file, "
                                                     "not both");
        r->tau = p->tau;
        return TDM_OK;
    }
    if (has_k && has_q) return tdm_fail(st, TDM_ERR_INVALID_ARG, "give either k or a teacher share, not both");
    if (!has_k && !has_q)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "no threshold: give tau, or k (percentile) or a teacher share with a calibration file");
    if (has_k) TDM_TRY(tdm_calibration_check_k(p->k, st));
    tdm_calibration *own = NULL;
    const tdm_calibration *c = p->calibration_obj;
    if (!c) {
        if (!p->calibration || !*p->calibration)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s needs a calibration file (tandem calibrate)",
                            has_k ? "k" : "a teacher share");
        tdm_code rc = tdm_calibration_load(p->calibration, &own, st);
        if (rc) return tdm_fail_context(st, "calibration file");
        c = own;
    }
    tdm_code rc;
    if (has_k) {
        r->k = p->k;
        rc = tdm_calibration_tau(c, p->k, &r->tau, st);
    } else {
        r->teacher_share = p->teacher_share;
        rc = tdm_calibration_tau_for_share(c, p->teacher_share, &r->tau, NULL, st);
    }
    if (!rc) {
        char warn[1024];
        const int scored_w = p->teacher_width ? p->teacher_width : sp->width; /* the oracle sees the student's */
        const int scored_h = p->teacher_height ? p->teacher_height : sp->height; /* image at the teacher's size */
        tdm_calibration_compare(c, student_name, sp->sampler, sp->steps, sp->guidance, sp->width, sp->height, scored_w,
                                scored_h, oracle_name, p->n_controls, warn, sizeof warn);
        append_warning(r, warn);
    }
    tdm_calibration_free(own);
    return rc;
}

/* ---- metadata ---- */

static void add_num(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else if (isnan(v)) cJSON_AddNullToObject(o, key);
    else cJSON_AddStringToObject(o, key, v > 0 ? "+inf" : "-inf");
}

/* float fields as their shortest decimal (7.5, 0.4) */
static void add_float(cJSON *o, const char *key, float v) { add_num(o, key, tdm_float_as_decimal(v)); }

static cJSON *stage_json(const char *model, const tdm_gen_plan *pl, int evals, int calls, double seconds) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "sampler", pl->sampler);
    cJSON_AddNumberToObject(o, "steps", pl->steps);
    add_float(o, "guidance", pl->guidance);
    add_float(o, "eta", pl->eta);
    cJSON_AddNumberToObject(o, "unet_evals", evals);
    cJSON_AddNumberToObject(o, "unet_calls", calls);
    add_num(o, "seconds", seconds);
    return o;
}

typedef struct meta_in {
    const tdm_adaptive_params *p;
    const char *student_name, *teacher_name, *oracle_name;
    const tdm_gen_plan *sp, *tp;
    const tdm_refine_plan *rp;
    const tdm_edit_input *edit; /* editing: the source and the size rule (NULL / inactive otherwise) */
    const tdm_edit_mask_info *mask; /* masked editing (inactive otherwise) */
} meta_in;

static char *metadata_json(const meta_in *mi, const tdm_adaptive_result *r) {
    const tdm_adaptive_params *p = mi->p;
    cJSON *o = cJSON_CreateObject();
    char ver[64];
    snprintf(ver, sizeof ver, "tandem %s", TDM_VERSION_STRING);
    cJSON_AddStringToObject(o, "version", ver);
    cJSON_AddStringToObject(o, "pipeline", "adaptive");
    cJSON_AddStringToObject(o, "prompt", p->prompt);
    cJSON_AddStringToObject(o, "negative_prompt", p->negative_prompt ? p->negative_prompt : "");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    cJSON_AddRawToObject(o, "seed", seed); /* exact for any 64-bit seed */
    cJSON_AddNumberToObject(o, "width", mi->sp->width);
    cJSON_AddNumberToObject(o, "height", mi->sp->height);
    if (mi->tp->width != mi->sp->width || mi->tp->height != mi->sp->height) { /* teacher size (presets) */
        cJSON *ts = cJSON_AddObjectToObject(o, "teacher_size");
        cJSON_AddNumberToObject(ts, "width", mi->tp->width);
        cJSON_AddNumberToObject(ts, "height", mi->tp->height);
        cJSON_AddStringToObject(ts, "student_resize", "bicubic"); /* before the oracle; the kept image too */
    }
    if (p->preset) cJSON_AddStringToObject(o, "preset", p->preset);
    cJSON_AddStringToObject(o, "decision", tdm_adaptive_decision_name(r->decision));
    cJSON_AddStringToObject(o, "strategy", p->strategy == TDM_ADAPTIVE_REGENERATE ? "regenerate" : "refine");
    cJSON *orc = cJSON_AddObjectToObject(o, "oracle");
    cJSON_AddStringToObject(orc, "name", mi->oracle_name);
    if (p->oracle_model) cJSON_AddStringToObject(orc, "model", p->oracle_model);
    else cJSON_AddNullToObject(orc, "model");
    add_num(orc, "score", r->oracle_score);
    if (p->keep_better && r->decision != TDM_DECISION_KEEP) add_num(orc, "teacher_score", r->teacher_oracle_score);
    add_num(orc, "seconds", r->seconds_oracle);
    if (p->keep_better) { /* the better of the two by the oracle */
        cJSON_AddBoolToObject(o, "keep_better", 1);
        cJSON_AddStringToObject(o, "selected", r->decision == TDM_DECISION_KEEP || r->selected_student ? "student"
                                                                                                         : "teacher");
    }
    cJSON *th = cJSON_AddObjectToObject(o, "threshold");
    add_num(th, "tau", r->tau);
    add_num(th, "k", r->k);
    add_num(th, "teacher_share", r->teacher_share);
    if (!isnan(p->tau)) cJSON_AddNullToObject(th, "calibration");
    else if (p->calibration_obj) cJSON_AddStringToObject(th, "calibration", p->calibration_obj->path);
    else cJSON_AddStringToObject(th, "calibration", p->calibration ? p->calibration : "");
    cJSON_AddItemToObject(o, "student",
                          stage_json(mi->student_name, mi->sp, r->unet_evals_student, r->unet_calls_student,
                                     r->seconds_student));
    cJSON *t = stage_json(mi->teacher_name, mi->tp, r->unet_evals_teacher, r->unet_calls_teacher, r->seconds_teacher);
    cJSON_AddBoolToObject(t, "ran", r->decision != TDM_DECISION_KEEP);
    cJSON_AddItemToObject(o, "teacher", t);
    if (p->strategy == TDM_ADAPTIVE_REFINE) {
        cJSON *rf = cJSON_AddObjectToObject(o, "refine");
        const int strength = p->refine_convention == TDM_REFINE_STRENGTH;
        cJSON_AddStringToObject(rf, "convention", strength ? "strength" : "noise");
        add_float(rf, strength ? "strength" : "sigma", strength ? p->refine_strength : p->refine_noise);
        cJSON_AddNumberToObject(rf, "grid_steps", mi->rp->grid_steps);
        cJSON_AddNumberToObject(rf, "steps", mi->rp->steps);
        add_num(rf, "first_timestep", mi->rp->first_timestep);
        add_num(rf, "sigma_effective", mi->rp->start_sigma);
        add_num(rf, "target_timestep", mi->rp->target_timestep);
        cJSON_AddStringToObject(rf, "handoff", r->handoff_latent ? "latent" : "pixels");
        cJSON_AddStringToObject(rf, "handoff_reason", r->handoff_reason);
    }
    if (p->n_controls > 0) { /* ControlNet: the same controls for the student and the teacher */
        cJSON *cs = cJSON_AddArrayToObject(o, "controls");
        for (int k = 0; k < p->n_controls; k++) {
            cJSON *c = cJSON_CreateObject();
            add_float(c, "scale", p->controls[k].scale);
            add_float(c, "start", p->controls[k].start);
            add_float(c, "end", p->controls[k].end);
            cJSON_AddItemToArray(cs, c);
        }
        cJSON_AddNumberToObject(o, "controlnet_calls", r->controlnet_calls_student + r->controlnet_calls_teacher);
    }
    tdm_edit_metadata_add(o, mi->edit, "adaptive", mi->mask);
    cJSON_AddNumberToObject(o, "unet_evals", r->unet_evals_student + r->unet_evals_teacher);
    cJSON *sec = cJSON_AddObjectToObject(o, "seconds");
    add_num(sec, "student", r->seconds_student);
    add_num(sec, "oracle", r->seconds_oracle);
    add_num(sec, "teacher", r->seconds_teacher);
    add_num(sec, "total", r->seconds_total);
    cJSON *w = cJSON_AddArrayToObject(o, "warnings");
    char tmp[sizeof r->warnings];
    memcpy(tmp, r->warnings, sizeof tmp);
    for (char *line = strtok(tmp, "\n"); line; line = strtok(NULL, "\n")) cJSON_AddItemToArray(w, cJSON_CreateString(line));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* The A1111 text: the student's generation fields, then the adaptive ones, then Version. */
static char *parameters_text(const tdm_model *student, const tdm_generate_params *sgp, const meta_in *mi,
                             const tdm_adaptive_result *r) {
    int need = tdm_format_parameters(student, sgp, NULL, 0);
    if (need < 0) return NULL;
    char *base = malloc((size_t)need + 1);
    if (!base) return NULL;
    tdm_format_parameters(student, sgp, base, (size_t)need + 1);
    char *ver = strstr(base, ", Version: ");
    if (ver) *ver = '\0';
    const tdm_adaptive_params *p = mi->p;
    char extra[1024];
    int len = snprintf(extra, sizeof extra, ", Adaptive: %s, Oracle: %s, Oracle score: %.6g, Tau: %.6g",
                       tdm_adaptive_decision_name(r->decision), mi->oracle_name, (double)r->oracle_score, r->tau);
    if (!isnan(r->k)) len += snprintf(extra + len, sizeof extra - (size_t)len, ", Tau k: %g", r->k);
    len += snprintf(extra + len, sizeof extra - (size_t)len, ", Teacher: %s, Teacher steps: %d, Teacher sampler: %s, "
                    "Teacher CFG scale: %g, Strategy: %s",
                    mi->teacher_name, mi->tp->steps, tdm_gen_sampler_label(mi->tp->sampler), tdm_float_as_decimal(mi->tp->guidance),
                    p->strategy == TDM_ADAPTIVE_REGENERATE ? "regenerate" : "refine");
    if (p->strategy == TDM_ADAPTIVE_REFINE) {
        if (p->refine_convention == TDM_REFINE_STRENGTH)
            len += snprintf(extra + len, sizeof extra - (size_t)len, ", Refine strength: %g",
                            tdm_float_as_decimal(p->refine_strength));
        else
            len += snprintf(extra + len, sizeof extra - (size_t)len, ", Refine noise: %g",
                            tdm_float_as_decimal(p->refine_noise));
    }
    if (p->keep_better && r->decision != TDM_DECISION_KEEP)
        len += snprintf(extra + len, sizeof extra - (size_t)len, ", Teacher oracle score: %.6g, Selected: %s",
                        (double)r->teacher_oracle_score, r->selected_student ? "student" : "teacher");
    snprintf(extra + len, sizeof extra - (size_t)len, ", UNet evals: %d, Version: tandem %s",
             r->unet_evals_student + r->unet_evals_teacher, TDM_VERSION_STRING);
    size_t n = strlen(base) + strlen(extra) + 1;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s", base, extra);
    free(base);
    return out;
}

/* ---- settings and stages ---- */

tdm_code tdm_adaptive_setup_make(const tdm_sd_model *sm, const tdm_sd_model *tm, const tdm_exec *ex,
                                 const tdm_adaptive_params *p, tdm_adaptive_setup *s, tdm_status *st) {
    memset(s, 0, sizeof *s);
    s->sm = sm;
    s->tm = tm;
    s->ex = ex;
    s->rp.target_timestep = s->rp.start_sigma = NAN;
    stage_params(p, &p->student, p->width, p->height, &s->sgp);
    if (tdm_gen_resolve(sm, &s->sgp, &s->sp, st)) return tdm_fail_context(st, "student");
    if (p->teacher_width < 0 || p->teacher_height < 0 || (p->teacher_width > 0) != (p->teacher_height > 0))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "teacher size %dx%d: give both sides, or 0 x 0 for the student's size",
                        p->teacher_width, p->teacher_height);
    /* the teacher works at its own size when given (presets: sdxl-turbo), else at the student's */
    stage_params(p, &p->teacher, p->teacher_width ? p->teacher_width : s->sp.width,
                 p->teacher_height ? p->teacher_height : s->sp.height, &s->tgp);
    if (tdm_gen_resolve(tm, &s->tgp, &s->tp, st)) return tdm_fail_context(st, "teacher");
    const int ss = tdm_vae_latent_scale(&sm->vae->cfg), ts = tdm_vae_latent_scale(&tm->vae->cfg);
    s->same_latent_shape = sm->vae->cfg.latent_channels == tm->vae->cfg.latent_channels && ss == ts &&
                           !tdm_adaptive_sizes_differ(s);
    return TDM_OK;
}

tdm_code tdm_adaptive_setup_refine(tdm_adaptive_setup *s, const tdm_adaptive_params *p, tdm_status *st) {
    const tdm_sd_model *sm = s->sm, *tm = s->tm;
    const int strength = p->refine_convention == TDM_REFINE_STRENGTH;
    if (p->refine_convention != TDM_REFINE_STRENGTH && p->refine_convention != TDM_REFINE_NOISE)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown refine convention %d", (int)p->refine_convention);
    if (p->refine_steps < 0 || p->refine_steps > 1000)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine steps %d out of range [0, 1000] (0: the teacher's steps)",
                        p->refine_steps);
    const int T = p->refine_steps > 0 ? p->refine_steps : s->tp.steps;
    TDM_TRY(tdm_refine_plan_make(tm, s->tp.sampler, s->tp.eta, T, p->refine_convention,
                                 tdm_float_as_decimal(strength ? p->refine_strength : p->refine_noise), &s->rp, st));
    if (p->force_pixels) {
        s->handoff_latent = 0;
        snprintf(s->handoff_reason, sizeof s->handoff_reason, "through pixels on request");
    } else if (tdm_adaptive_sizes_differ(s)) {
        s->handoff_latent = 0;
        snprintf(s->handoff_reason, sizeof s->handoff_reason,
                 "teacher size %dx%d differs from the student's %dx%d (student image resized, bicubic)", s->tp.width,
                 s->tp.height, s->sp.width, s->sp.height);
    } else if (!s->same_latent_shape) {
        s->handoff_latent = 0;
        snprintf(s->handoff_reason, sizeof s->handoff_reason, "latent shapes differ");
    } else {
        char why[160];
        s->handoff_latent = tdm_vae_shared(sm, tm, why, sizeof why);
        snprintf(s->handoff_reason, sizeof s->handoff_reason, "%s", why);
    }
    return TDM_OK;
}

tdm_code tdm_adaptive_run_student(const tdm_adaptive_setup *s, int want_latent, tdm_gen_result *out,
                                  tdm_status *st) {
    tdm_gen_request rq;
    tdm_gen_request_init(&rq, &s->sgp); /* the generate streams: bit-identical to tdm_generate */
    rq.want_latent = want_latent;
    if (s->sgp.init_image) { /* editing: tdm_generate's img2img of the source */
        rq.start = TDM_GEN_START_PIXELS;
        rq.init = s->sgp.init_image;
        rq.edit_mask = s->mask.active ? s->mask.mask : NULL;
        rq.paste_region = s->mask.active ? s->mask.paste : NULL;
        rq.paste_source = s->sgp.init_image;
        rq.region_init = s->mask.active && s->mask.fill.pixels ? &s->mask.fill : NULL;
    }
    return tdm_gen_execute(s->sm, s->ex, &rq, out, st);
}

tdm_code tdm_adaptive_run_teacher(const tdm_adaptive_setup *s, tdm_adaptive_decision how, const tdm_gen_result *student,
                                  const tdm_text_cond *text, tdm_gen_result *out, tdm_status *st) {
    tdm_gen_request rq;
    tdm_gen_request_init(&rq, &s->tgp);
    rq.text = text;
    if (how == TDM_DECISION_REFINE) {
        if (!student || (s->handoff_latent ? !student->latent : !student->image.pixels))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine: no student %s to hand over",
                            s->handoff_latent ? "latent" : "image");
        rq.start = s->handoff_latent ? TDM_GEN_START_LATENT : TDM_GEN_START_PIXELS;
        rq.x0 = student->latent;
        rq.init = &student->image;
        rq.grid_steps = s->rp.grid_steps;
        rq.strength = s->rp.strength;
        rq.rule = TDM_IMG2IMG_GET_TIMESTEPS;
        rq.streams = tdm_adaptive_streams_refine();
    } else if (how != TDM_DECISION_REGENERATE) {
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "teacher stage: decision %d runs no teacher", (int)how);
    } else if (s->tgp.init_image) { /* editing: the teacher's img2img of the source, the student's noise streams */
        rq.start = TDM_GEN_START_PIXELS;
        rq.init = s->tgp.init_image;
    } /* regenerate: start NOISE with the generate streams (the student's initial noise) */
    /* masked editing: the refinement keeps the student's edit (= the source there) outside the region, the
     * regeneration the source */
    if (s->mask.active && rq.start != TDM_GEN_START_NOISE) {
        if (s->mask.h * tdm_vae_latent_scale(&s->tm->vae->cfg) != s->tp.height ||
            s->mask.w * tdm_vae_latent_scale(&s->tm->vae->cfg) != s->tp.width)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "masked editing: the teacher's latent (%dx%d image) does not match the mask (%dx%d latent)",
                            s->tp.width, s->tp.height, s->mask.w, s->mask.h);
        rq.edit_mask = s->mask.mask;
        rq.paste_region = s->mask.paste;
        rq.paste_source = s->sgp.init_image;
        /* the regeneration starts from the source as the student's edit did (region fill); the refinement
         * from the student's edit */
        if (how == TDM_DECISION_REGENERATE && s->mask.fill.pixels) rq.region_init = &s->mask.fill;
    }
    return tdm_gen_execute(s->tm, s->ex, &rq, out, st);
}

/* ---- the run ---- */

static tdm_code adaptive_run(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                             const tdm_adaptive_params *p, const tdm_edit_input *edit, tdm_adaptive_result *r,
                             tdm_status *st) {
    if (!r) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_adaptive_generate: result is NULL");
    memset(r, 0, sizeof *r);
    r->tau = r->k = r->teacher_share = r->refine_sigma = NAN;
    r->teacher_oracle_score = NAN;
    if (!engine || !student || !teacher || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_adaptive_generate: engine, student, teacher and params are required");
    if (!p->prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "adaptive: prompt is NULL");
    const double t_start = now_seconds();
    const tdm_sd_model *sm = tdm_model_sd(student), *tm = tdm_model_sd(teacher);
    const tdm_exec *ex = tdm_engine_exec(engine);

    /* settings, resolved with the models' defaults */
    tdm_adaptive_setup su;
    TDM_TRY(tdm_adaptive_setup_make(sm, tm, ex, p, &su, st));
    const tdm_gen_plan *sp = &su.sp, *tp = &su.tp;

    /* oracle */
    tdm_oracle *own_oracle = NULL, *oracle = p->oracle;
    if (!oracle) {
        tdm_code orc = tdm_oracle_open(p->oracle_name ? p->oracle_name : "checker", p->oracle_model, engine,
                                       &own_oracle, st);
        if (orc) return orc;
        oracle = own_oracle;
    }
    const char *oracle_name = tdm_oracle_get_name(oracle);
    tdm_code rc = resolve_threshold(p, tdm_model_name(student), sp, oracle_name, r, st);
    if (rc) goto done;

    /* teacher plan, checked before anything runs */
    if (p->strategy != TDM_ADAPTIVE_REGENERATE && p->strategy != TDM_ADAPTIVE_REFINE) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown adaptive strategy %d", (int)p->strategy);
        goto done;
    }
    if (p->strategy == TDM_ADAPTIVE_REFINE) {
        rc = tdm_adaptive_setup_refine(&su, p, st);
        if (rc) goto done;
    } else {
        if (!su.same_latent_shape) {
            const int ss = tdm_vae_latent_scale(&sm->vae->cfg), ts = tdm_vae_latent_scale(&tm->vae->cfg);
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                          "regenerate: the student's latent is [%d, %d, %d] but the teacher's is [%d, %d, %d]; "
                          "regeneration reuses the student's initial noise, so both must have the same latent shape "
                          "(use the refine strategy)",
                          sm->vae->cfg.latent_channels, sp->height / ss, sp->width / ss, tm->vae->cfg.latent_channels,
                          tp->height / ts, tp->width / ts);
            goto done;
        }
    }
    r->handoff_latent = su.handoff_latent;
    snprintf(r->handoff_reason, sizeof r->handoff_reason, "%s", su.handoff_reason);

    /* 0. masked editing: the given region, or the region estimated with the student's UNet (counted as the
     * student's) */
    rc = tdm_edit_setup_mask(&su, edit, st);
    if (rc) goto done;

    /* 1. student */
    tdm_gen_result sres;
    double t0 = now_seconds();
    rc = tdm_adaptive_run_student(&su, p->strategy == TDM_ADAPTIVE_REFINE && su.handoff_latent, &sres, st);
    r->seconds_student = now_seconds() - t0 + su.mask.seconds;
    if (rc) {
        tdm_fail_context(st, "student");
        goto done;
    }
    r->controlnet_calls_student = sres.stats.controlnet_calls;
    r->unet_calls_student = sres.stats.unet_calls;
    r->unet_evals_student = sres.stats.unet_calls * sres.stats.unet_batch + su.mask.unet_evals;
    r->unet_calls_student += su.mask.maps;
    /* a teacher at another size: the student's image resized to it before the oracle (reference code) */
    rc = tdm_adaptive_student_to_teacher_size(&su, &sres, st);
    if (rc) {
        tdm_gen_result_free(&sres);
        goto done;
    }

    /* 2. oracle and decision: keep when score >= tau */
    t0 = now_seconds();
    rc = tdm_oracle_score(oracle, p->prompt, &sres.image, &r->oracle_score, st);
    r->seconds_oracle = now_seconds() - t0;
    if (rc) {
        tdm_gen_result_free(&sres);
        goto done;
    }
    const int keep = (double)r->oracle_score >= r->tau;
    r->decision = keep ? TDM_DECISION_KEEP
                       : p->strategy == TDM_ADAPTIVE_REFINE ? TDM_DECISION_REFINE : TDM_DECISION_REGENERATE;

    /* 3. teacher */
    if (!keep) {
        tdm_gen_result tres;
        t0 = now_seconds();
        rc = tdm_adaptive_run_teacher(&su, r->decision, &sres, NULL, &tres, st);
        r->seconds_teacher = now_seconds() - t0;
        if (rc) {
            tdm_fail_context(st, "teacher");
            tdm_gen_result_free(&sres);
            goto done;
        }
        r->controlnet_calls_teacher = tres.stats.controlnet_calls;
        r->unet_calls_teacher = tres.stats.unet_calls;
        r->unet_evals_teacher = tres.stats.unet_calls * tres.stats.unet_batch;
        if (r->decision == TDM_DECISION_REFINE) {
            r->refine_grid_steps = su.rp.grid_steps;
            r->refine_steps = tres.stats.steps_run;
            r->refine_start_timestep = tres.first_timestep;
            r->refine_sigma = tres.start_sigma;
        }
        /* keep_better: the oracle scores the teacher's image too; the student's is returned when it scores higher */
        if (p->keep_better) {
            t0 = now_seconds();
            rc = tdm_oracle_score(oracle, p->prompt, &tres.image, &r->teacher_oracle_score, st);
            r->seconds_oracle += now_seconds() - t0;
            if (rc) {
                tdm_fail_context(st, "oracle (teacher's image)");
                tdm_gen_result_free(&tres);
                tdm_gen_result_free(&sres);
                goto done;
            }
            r->selected_student = r->teacher_oracle_score < r->oracle_score;
        }
        tdm_gen_result *final = r->selected_student ? &sres : &tres;
        r->image = final->image;
        final->image.pixels = NULL;
        if (p->keep_student_image) {
            if (r->selected_student) {
                tdm_status ist = {0};
                if (tdm_image_alloc(&r->student_image, r->image.width, r->image.height, &ist) == TDM_OK)
                    memcpy(r->student_image.pixels, r->image.pixels, (size_t)r->image.width * r->image.height * 3);
            } else {
                r->student_image = sres.image;
                sres.image.pixels = NULL;
            }
        }
        tdm_gen_result_free(&tres);
    } else {
        r->image = sres.image;
        sres.image.pixels = NULL;
        if (p->keep_student_image) {
            tdm_status ist = {0};
            if (tdm_image_alloc(&r->student_image, r->image.width, r->image.height, &ist) == TDM_OK)
                memcpy(r->student_image.pixels, r->image.pixels, (size_t)r->image.width * r->image.height * 3);
        }
    }
    tdm_gen_result_free(&sres);
    r->seconds_total = now_seconds() - t_start;

    meta_in mi = {p, tdm_model_name(student), tdm_model_name(teacher), oracle_name, &su.sp, &su.tp, &su.rp, edit,
                  &su.mask};
    r->metadata_json = metadata_json(&mi, r);
    r->parameters = parameters_text(student, &su.sgp, &mi, r);
    if (!r->metadata_json || !r->parameters) rc = tdm_fail(st, TDM_ERR_NOMEM, "adaptive: out of memory (metadata)");
done:
    tdm_adaptive_setup_clear_mask(&su);
    tdm_oracle_free(own_oracle);
    if (rc) tdm_adaptive_result_free(r);
    return rc;
}

/* Editing (p->init_image): the source is fitted to the size rule first (pipeline/edit.h). */
tdm_code tdm_adaptive_generate(tdm_engine *engine, const tdm_model *student, const tdm_model *teacher,
                               const tdm_adaptive_params *p, tdm_adaptive_result *r, tdm_status *st) {
    if (!r || !student || !p) return adaptive_run(engine, student, teacher, p, NULL, r, st); /* its checks */
    tdm_edit_input e;
    tdm_code rc = tdm_edit_input_make(student, p, &e, st);
    if (rc) {
        memset(r, 0, sizeof *r);
        return rc;
    }
    rc = adaptive_run(engine, student, teacher, e.active ? &e.params : p, &e, r, st);
    tdm_edit_input_free(&e);
    return rc;
}

/* ---- output ---- */

tdm_code tdm_adaptive_save(const tdm_adaptive_result *r, const char *png_path, const char *sidecar_path,
                           tdm_status *st) {
    if (!r || !r->image.pixels) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_adaptive_save: no image");
    if (png_path) {
        tdm_png_text texts[2] = {{"parameters", r->parameters}, {"tandem", r->metadata_json}};
        int n = 0;
        tdm_png_text use[2];
        for (int i = 0; i < 2; i++)
            if (texts[i].text) use[n++] = texts[i];
        TDM_TRY(tdm_png_write(png_path, &r->image, use, n, st));
    }
    if (sidecar_path) {
        cJSON *o = r->metadata_json ? cJSON_Parse(r->metadata_json) : NULL;
        char *pretty = o ? cJSON_Print(o) : NULL;
        cJSON_Delete(o);
        if (!pretty) return tdm_fail(st, TDM_ERR_INTERNAL, "adaptive: no metadata to write to %s", sidecar_path);
        FILE *f = fopen(sidecar_path, "w");
        if (!f) {
            free(pretty);
            return tdm_fail(st, TDM_ERR_IO, "%s: cannot write the JSON sidecar", sidecar_path);
        }
        int ok = fputs(pretty, f) >= 0 && fputc('\n', f) != EOF;
        ok &= fclose(f) == 0;
        free(pretty);
        if (!ok) return tdm_fail(st, TDM_ERR_IO, "%s: write failed", sidecar_path);
    }
    return TDM_OK;
}

tdm_code tdm_image_read_text(const char *path, const char *key, char **text, tdm_status *st) {
    if (!path || !key || !text) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_read_text: NULL argument");
    return tdm_png_read_text(path, key, text, st);
}
