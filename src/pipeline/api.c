/* Public API objects (tandem.h): engine, model, parameter defaults, generation entry point and the
 * A1111 "parameters" text. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "pipeline/generate.h"

const char *tdm_version(void) { return TDM_VERSION_STRING; }

const char *tdm_stage_name(tdm_stage stage) {
    switch (stage) {
    case TDM_STAGE_ENCODE_TEXT: return "encode";
    case TDM_STAGE_ENCODE_IMAGE: return "encode-image";
    case TDM_STAGE_DENOISE: return "denoise";
    case TDM_STAGE_DECODE: return "decode";
    }
    return "?";
}

/* ---- engine ----------------------------------------------------------------------------------- */

struct tdm_engine {
    tdm_pool *pool;
    tdm_exec ex;
};

void tdm_engine_params_init(tdm_engine_params *p) {
    memset(p, 0, sizeof *p);
    p->n_threads = 0;
}

tdm_code tdm_engine_create(const tdm_engine_params *p, tdm_engine **out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_engine_create: out is NULL");
    *out = NULL;
    tdm_engine_params def;
    if (!p) {
        tdm_engine_params_init(&def);
        p = &def;
    }
    if (p->n_threads > 1024)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "n_threads %d is out of range (0..1024)", p->n_threads);
    tdm_engine *e = calloc(1, sizeof *e);
    if (!e) return tdm_fail(st, TDM_ERR_NOMEM, "engine: out of memory");
    tdm_code rc = tdm_pool_create(&e->pool, p->n_threads, st);
    if (rc) {
        free(e);
        return rc;
    }
    e->ex.pool = e->pool;
    e->ex.reference = 0;
    *out = e;
    return TDM_OK;
}

void tdm_engine_free(tdm_engine *engine) {
    if (!engine) return;
    tdm_pool_free(engine->pool);
    free(engine);
}

int tdm_engine_threads(const tdm_engine *engine) { return engine ? tdm_pool_size(engine->pool) : 0; }

/* ---- model ------------------------------------------------------------------------------------ */

struct tdm_model {
    tdm_sd_model *sd;
    char name[256];
    tdm_gen_defaults defaults;
};

void tdm_model_params_init(tdm_model_params *p) {
    memset(p, 0, sizeof *p);
    p->prediction = TDM_PREDICTION_AUTO;
}

/* The A1111 "Model:" name: last path component without ".safetensors" (trailing '/' ignored). */
static void model_name(const char *path, char *buf, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t nl = len - start;
    const char *ext = ".safetensors";
    size_t el = strlen(ext);
    if (nl > el && strncmp(path + start + nl - el, ext, el) == 0) nl -= el;
    if (nl >= n) nl = n - 1;
    memcpy(buf, path + start, nl);
    buf[nl] = '\0';
}

tdm_code tdm_model_load(const tdm_model_params *p, tdm_model **out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_model_load: out is NULL");
    *out = NULL;
    if (!p || !p->path || !*p->path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_model_load: no model path given");
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = p->path;
    o.tokenizer_dir = p->tokenizer_dir;
    o.unet_component = p->unet_component;
    o.loras = p->loras;
    o.n_loras = p->n_loras;
    o.lora_merge = p->lora_merge;
    switch (p->prediction) {
    case TDM_PREDICTION_AUTO: o.prediction = NULL; break;
    case TDM_PREDICTION_EPSILON: o.prediction = "epsilon"; break;
    case TDM_PREDICTION_V: o.prediction = "v_prediction"; break;
    default: return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_model_load: unknown prediction type %d", (int)p->prediction);
    }
    o.components = TDM_SD_ALL;
    tdm_model *m = calloc(1, sizeof *m);
    if (!m) return tdm_fail(st, TDM_ERR_NOMEM, "model: out of memory");
    tdm_code rc = tdm_sd_model_load(&m->sd, &o, st);
    if (rc) {
        free(m);
        return rc;
    }
    model_name(p->path, m->name, sizeof m->name);
    tdm_gen_model_defaults(m->sd, &m->defaults);
    *out = m;
    return TDM_OK;
}

void tdm_model_free(tdm_model *model) {
    if (!model) return;
    tdm_sd_model_free(model->sd);
    free(model);
}

void tdm_model_get_info(const tdm_model *model, tdm_model_info *info) {
    memset(info, 0, sizeof *info);
    if (!model) return;
    info->name = model->name;
    info->family = tdm_family_name(model->sd->family);
    info->is_lcm = model->defaults.lcm || model->defaults.lcm_lora;
    info->v_prediction = model->sd->scheduler.prediction_type == TDM_PRED_V;
    info->default_width = model->defaults.width;
    info->default_height = model->defaults.height;
    info->default_steps = model->defaults.steps;
    info->default_guidance = model->defaults.guidance;
    info->default_sampler = model->defaults.sampler;
}

/* ---- generation ------------------------------------------------------------------------------- */

void tdm_generate_params_init(tdm_generate_params *p) {
    memset(p, 0, sizeof *p);
    p->prompt = "";
    p->negative_prompt = "";
    p->steps = 0;
    p->guidance_scale = -1.0f;
    p->sampler = NULL;
    p->eta = 0.0f;
    p->seed = 0;
    p->strength = 0.75f;
    p->clip_skip = 1;
    p->emphasis = 1;
    p->aesthetic_score = 6.0f;          /* SDXL refiner (diffusers defaults) */
    p->negative_aesthetic_score = 2.5f;
}

tdm_code tdm_generate(tdm_engine *engine, const tdm_model *model, const tdm_generate_params *p, tdm_image *out,
                      tdm_generate_stats *stats, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_generate: out is NULL");
    memset(out, 0, sizeof *out);
    if (stats) memset(stats, 0, sizeof *stats);
    if (!engine || !model || !p)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_generate: engine, model and params are required");
    return tdm_gen_run(model->sd, &engine->ex, p, out, stats, st);
}

/* ---- A1111 infotext --------------------------------------------------------------------------- */

typedef struct sbuf {
    char *buf;
    size_t cap, len; /* len counts everything, also what did not fit */
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) TDM_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
}

/* Shortest decimal that reads back as the same float, with ".0" on integers (Python's repr of the
 * float value as A1111 prints it, e.g. 7.0, 7.5, 0.75). */
static void float_repr(float v, char *out, size_t n) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, n, "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (!strpbrk(out, ".eEn")) {
        size_t l = strlen(out);
        if (l + 2 < n) memcpy(out + l, ".0", 3);
    }
}

int tdm_format_parameters(const tdm_model *model, const tdm_generate_params *p, char *buf, size_t bufsz) {
    if (!model || !p) return -1;
    tdm_gen_plan pl;
    if (tdm_gen_resolve(model->sd, p, &pl, NULL) != TDM_OK) return -1;
    sbuf b = {buf, buf ? bufsz : 0, 0};
    if (buf && bufsz) buf[0] = '\0';
    sb_printf(&b, "%s\n", pl.prompt);
    /* The negative prompt is written only when it was used (CFG pass run, not LCM). */
    if (pl.use_cfg && pl.negative[0]) sb_printf(&b, "Negative prompt: %s\n", pl.negative);
    char g[32], s[32];
    float_repr(pl.guidance, g, sizeof g);
    sb_printf(&b, "Steps: %d, Sampler: %s, CFG scale: %s, Seed: %llu, Size: %dx%d, Model: %s", pl.steps,
              tdm_gen_sampler_label(pl.sampler), g, (unsigned long long)pl.seed, pl.width, pl.height, model->name);
    if (pl.img2img) {
        float_repr(pl.strength, s, sizeof s);
        sb_printf(&b, ", Denoising strength: %s", s);
    }
    if (pl.kind == TDM_SAMPLER_DDIM && pl.eta != 0.0f) {
        float_repr(pl.eta, s, sizeof s);
        sb_printf(&b, ", Eta DDIM: %s", s);
    }
    if (pl.clip_skip > 1) sb_printf(&b, ", Clip skip: %d", pl.clip_skip);
    if (!pl.emphasis) sb_printf(&b, ", Emphasis: None");
    sb_printf(&b, ", Version: tandem %s", TDM_VERSION_STRING);
    if (buf && bufsz) buf[b.len < bufsz ? b.len : bufsz - 1] = '\0';
    return b.len > (size_t)0x7fffffff ? -1 : (int)b.len;
}

/* ---- adaptive pipeline: internal accessors (declared in pipeline/adaptive.h; added by the adaptive
 * pipeline helper) ---------------------------------------------------------------------------------- */

const tdm_sd_model *tdm_model_sd(const tdm_model *model) { return model ? model->sd : NULL; }
const char *tdm_model_name(const tdm_model *model) { return model ? model->name : ""; }
const tdm_exec *tdm_engine_exec(const tdm_engine *engine) { return engine ? &engine->ex : NULL; }

/* ---- LoRA (tandem.h lora block; pipeline/sd_lora.c) ---------------------------------------------- */

tdm_code tdm_model_derive_lora(const tdm_model *base, const tdm_lora_spec *loras, int n, tdm_model **out,
                               tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_model_derive_lora: out is NULL");
    *out = NULL;
    if (!base || !loras || n < 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_model_derive_lora: base and LoRA files are required");
    tdm_model *m = calloc(1, sizeof *m);
    if (!m) return tdm_fail(st, TDM_ERR_NOMEM, "model: out of memory");
    tdm_code rc = tdm_sd_model_derive_lora(base->sd, loras, n, 0, &m->sd, st);
    if (rc) {
        free(m);
        return rc;
    }
    memcpy(m->name, base->name, sizeof m->name);
    tdm_gen_model_defaults(m->sd, &m->defaults);
    *out = m;
    return TDM_OK;
}

int tdm_model_lora_summary(const tdm_model *model, char *buf, size_t bufsz) {
    if (buf && bufsz) buf[0] = '\0';
    return model ? tdm_sd_model_lora_summary(model->sd, buf, bufsz) : 0;
}
