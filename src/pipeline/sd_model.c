/* Loading an SD 1.x / 2.x model from a diffusers folder or a single-file checkpoint (sd_model.h). */
#include "pipeline/sd_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/json.h"
#include "models/clip_tokenizer.h"
#include "models/lora_model.h"
#include "pipeline/sdxl.h"

static tdm_code load_tokenizer(tdm_sd_model *m, const tdm_tokenizer_files *tf, tdm_status *st) {
    TDM_TRY(tdm_clip_tokenizer_load_files(&m->tokenizer, tf->vocab_path, tf->merges_path, tf->dir, st));
    m->loaded |= TDM_SD_TOKENIZER;
    return TDM_OK;
}

/* The pad id the text encoder was trained with, as the loaded vocabulary numbers it: the pad token the
 * tokenizer folder states (diffusers pads with tokenizer.pad_token_id), else the family's (SD1 and
 * unknown families such as the shapes world: "<|endoftext|>"; SD2: "!"). Without a loaded tokenizer,
 * the family's conventional id (49407 / 0). */
static tdm_code resolve_pad_id(tdm_sd_model *m, const char *stated, tdm_status *st) {
    const char *token = stated && *stated ? stated : m->family == TDM_FAMILY_SD2 ? "!" : "<|endoftext|>";
    if (!m->tokenizer) {
        m->pad_id = stated && *stated && m->tokenizer_files.pad_id >= 0 ? m->tokenizer_files.pad_id
                                                                        : tdm_family_default_pad_id(m->family);
        return TDM_OK;
    }
    int id = tdm_clip_token_id(m->tokenizer, token);
    if (id < 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: pad token '%s' is not in vocab.json (%d tokens)",
                        m->tokenizer_files.vocab_path, token, tdm_clip_vocab_size(m->tokenizer));
    m->pad_id = id;
    return TDM_OK;
}

void tdm_sd_load_opts_init(tdm_sd_load_opts *o) {
    memset(o, 0, sizeof *o);
    o->components = TDM_SD_ALL;
}

const char *tdm_prediction_name(tdm_prediction_type p) {
    return p == TDM_PRED_V ? "v_prediction" : p == TDM_PRED_SAMPLE ? "sample" : "epsilon";
}

tdm_code tdm_sd_parse_prediction(const char *s, tdm_prediction_type *out, tdm_status *st) {
    if (!strcmp(s, "epsilon") || !strcmp(s, "eps")) *out = TDM_PRED_EPSILON;
    else if (!strcmp(s, "v_prediction") || !strcmp(s, "v")) *out = TDM_PRED_V;
    else if (!strcmp(s, "sample")) *out = TDM_PRED_SAMPLE;
    else
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "prediction type '%.64s' is not one of: epsilon, v_prediction (v), sample",
                        s);
    return TDM_OK;
}

/* Appends to m->source. */
static void describe(tdm_sd_model *m, const char *fmt, ...) TDM_PRINTF(2, 3);
static void describe(tdm_sd_model *m, const char *fmt, ...) {
    size_t len = strlen(m->source);
    if (len + 1 >= sizeof m->source) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->source + len, sizeof m->source - len, fmt, ap);
    va_end(ap);
}

/* Family of a diffusers pipeline from its context width. Other widths (small test models) stay
 * TDM_FAMILY_UNKNOWN: everything is then read from the configs, with SD1.x text defaults. */
static tdm_code family_from_context(int ctx_dim, const char *what, tdm_model_family *f, tdm_status *st) {
    if (ctx_dim == 768) *f = TDM_FAMILY_SD1;
    else if (ctx_dim == 1024) *f = TDM_FAMILY_SD2;
    else if (ctx_dim == 2048 || ctx_dim == 1280)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: cross_attention_dim %d without an SDXL pipeline (model_index.json with text_encoder_2, a UNet "
                        "with addition_embed_type text_time) is not a supported model",
                        what, ctx_dim);
    else *f = TDM_FAMILY_UNKNOWN;
    return TDM_OK;
}

/* Prefixes the message with `where` when it does not name it already (e.g. a missing tensor is
 * reported by its canonical name only). Returns rc. */
static tdm_code with_file(tdm_code rc, tdm_status *st, const char *where) {
    if (rc && st && where && !strstr(st->msg, where)) tdm_fail_context(st, "%s", where);
    return rc;
}

/* Model components take ownership of ws on every return. */
static tdm_code load_unet(tdm_sd_model *m, const tdm_unet_config *cfg, tdm_weights *ws, tdm_status *st) {
    TDM_TRY(tdm_unet_load(&m->unet, cfg, ws, st));
    m->loaded |= TDM_SD_UNET;
    return TDM_OK;
}

static tdm_code load_vae(tdm_sd_model *m, const tdm_vae_config *cfg, tdm_weights *ws, tdm_status *st) {
    TDM_TRY(tdm_vae_load(&m->vae, cfg, ws, st));
    m->loaded |= TDM_SD_VAE;
    m->latent_channels = cfg->latent_channels;
    m->vae_scale = tdm_vae_latent_scale(cfg);
    m->vae_scaling_factor = cfg->scaling_factor;
    return TDM_OK;
}

static tdm_code load_text_encoder(tdm_sd_model *m, const tdm_clip_text_config *cfg, tdm_weights *ws,
                                  tdm_status *st) {
    TDM_TRY(tdm_clip_text_load(&m->text_encoder, cfg, ws, st));
    m->loaded |= TDM_SD_TEXT_ENCODER;
    return TDM_OK;
}

/* Adds + finishes a store; frees it on failure. */
static tdm_code finish_or_free(tdm_weights *ws, tdm_code rc, tdm_status *st) {
    if (rc == TDM_OK) rc = tdm_weights_finish(ws, st);
    if (rc) tdm_weights_free(ws);
    return rc;
}

static tdm_code apply_prediction(tdm_sd_model *m, const tdm_sd_load_opts *o, tdm_status *st) {
    if (o->prediction && *o->prediction && strcmp(o->prediction, "auto") != 0) {
        TDM_TRY(tdm_sd_parse_prediction(o->prediction, &m->scheduler.prediction_type, st));
        snprintf(m->prediction_source, sizeof m->prediction_source, "--prediction %s",
                 tdm_prediction_name(m->scheduler.prediction_type));
    }
    return TDM_OK;
}

/* ---- diffusers folders ------------------------------------------------------------------------- */

static tdm_code load_diffusers(tdm_sd_model *m, const tdm_sd_load_opts *o, unsigned want, tdm_status *st) {
    tdm_model_dir md;
    tdm_model_dir_opts mo = {.prefer_fp16 = o->prefer_fp16};
    TDM_TRY(tdm_model_dir_open(&md, o->path, &mo, st));
    m->layout = TDM_LAYOUT_DIFFUSERS;
    tdm_code rc = TDM_OK;
    const tdm_component_files *c;
    int xl = 0; /* SDXL base / refiner (pipeline/sdxl.h) */
    describe(m, "diffusers folder %s (%s)", md.root, md.pipeline_class[0] ? md.pipeline_class : "no _class_name");

    /* UNet config: needed for the UNet, and gives the family (context width) */
    tdm_unet_config ucfg;
    int have_ucfg = 0;
    const char *unet_name = m->unet_component;
    c = tdm_model_dir_find(&md, unet_name);
    if ((want & TDM_SD_UNET) && !c && strcmp(unet_name, "unet") != 0) {
        rc = tdm_fail(st, TDM_ERR_MISSING, "%s/model_index.json: no component '%s' to load as the UNet", md.root,
                      unet_name);
        goto done;
    }
    if (want & TDM_SD_UNET) {
        if ((rc = tdm_model_dir_need(&md, unet_name, 1, &c, st))) goto done;
        if ((rc = tdm_unet_config_load(c->config_path, &ucfg, st))) goto done;
        have_ucfg = 1;
    } else if (c && c->has_config) {
        have_ucfg = tdm_unet_config_load(c->config_path, &ucfg, NULL) == TDM_OK; /* family only */
    }
    if (have_ucfg) m->cross_attention_dim = ucfg.cross_attention_dim;
    if ((rc = tdm_sdxl_detect_dir(m, &md, have_ucfg ? &ucfg : NULL, &xl, st))) goto done;
    if (have_ucfg && !xl && (rc = family_from_context(ucfg.cross_attention_dim, c->config_path, &m->family, st)))
        goto done;
    if (want & TDM_SD_UNET) {
        tdm_weights ws;
        tdm_weights_init(&ws, "unet");
        if ((rc = finish_or_free(&ws, tdm_component_add_weights(c, &ws, NULL, NULL, st), st))) goto done;
        if ((rc = with_file(load_unet(m, &ucfg, &ws, st), st, c->weight_files[0]))) goto done;
        if (strcmp(unet_name, "unet") != 0) describe(m, "; UNet from component %s", unet_name);
        if (c->is_fp16_variant || c->index_path[0])
            describe(m, "; unet%s%s", c->is_fp16_variant ? " fp16 variant" : "", c->index_path[0] ? " sharded" : "");
    }
    if (want & TDM_SD_VAE) {
        tdm_vae_config vcfg;
        if ((rc = tdm_model_dir_need(&md, "vae", 1, &c, st))) goto done;
        if ((rc = tdm_vae_config_load(c->config_path, &vcfg, st))) goto done;
        tdm_weights ws;
        tdm_weights_init(&ws, "vae");
        if ((rc = finish_or_free(&ws, tdm_component_add_weights(c, &ws, NULL, NULL, st), st))) goto done;
        if ((rc = with_file(load_vae(m, &vcfg, &ws, st), st, c->weight_files[0]))) goto done;
    }
    if (xl && (rc = tdm_sdxl_load_dir_text(m, &md, o, want, st))) goto done;
    if (!xl && (want & TDM_SD_TEXT_ENCODER)) {
        tdm_clip_text_config tcfg;
        if ((rc = tdm_model_dir_need(&md, "text_encoder", 1, &c, st))) goto done;
        if ((rc = tdm_clip_text_config_load(c->config_path, &tcfg, st))) goto done;
        if (m->cross_attention_dim && tcfg.hidden_size != m->cross_attention_dim) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: hidden_size %d does not match the UNet's cross_attention_dim %d",
                          c->config_path, tcfg.hidden_size, m->cross_attention_dim);
            goto done;
        }
        if (m->family == TDM_FAMILY_UNKNOWN && (rc = family_from_context(tcfg.hidden_size, c->config_path, &m->family, st)))
            goto done;
        tdm_weights ws;
        tdm_weights_init(&ws, "text_encoder");
        if ((rc = finish_or_free(&ws, tdm_component_add_weights(c, &ws, tdm_clip_text_mapper_for(&tcfg), NULL, st), st)))
            goto done;
        if ((rc = with_file(load_text_encoder(m, &tcfg, &ws, st), st, c->weight_files[0]))) goto done;
    }
    if (!xl && (want & TDM_SD_TOKENIZER)) {
        if ((rc = tdm_tokenizer_find(m->family, o->tokenizer_dir, o->tokenizer_dir ? NULL : md.root,
                                     &m->tokenizer_files, st)))
            goto done;
        if ((rc = load_tokenizer(m, &m->tokenizer_files, st))) goto done;
    }
    if (want & TDM_SD_TOKENIZER) describe(m, "; tokenizer %s", m->tokenizer_files.source);
    if (m->tokenizer_2) describe(m, " and %s", m->tokenizer_2_files.source);
    /* pad: the tokenizer folder's own pad token (diffusers pads with tokenizer.pad_token_id) */
    if (!xl && (rc = resolve_pad_id(m, m->tokenizer_files.pad_token, st))) goto done;
    if (want & TDM_SD_SCHEDULER) {
        if ((rc = tdm_model_dir_need(&md, "scheduler", 0, &c, st))) goto done;
        if ((rc = tdm_scheduler_config_load(c->config_path, &m->scheduler, st))) goto done;
        snprintf(m->prediction_source, sizeof m->prediction_source, "scheduler/scheduler_config.json");
        if ((rc = apply_prediction(m, o, st))) goto done;
        m->loaded |= TDM_SD_SCHEDULER;
    }
done:
    tdm_model_dir_free(&md);
    return rc;
}

/* ---- single files ------------------------------------------------------------------------------ */

/* SD1 files written without the "text_model." level (cond_stage_model.transformer.embeddings.*). */
static tdm_code hf_mapper_add_text_model(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                         tdm_status *st) {
    char full[512];
    int w = snprintf(full, sizeof full, "text_model.%s", name);
    if (w < 0 || (size_t)w >= sizeof full)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor name too long: '%.64s...'", ws->cur_file, name);
    return tdm_clip_text_hf_mapper(ws, full, t, ctx, st);
}

static const tdm_st_entry *need_entry(const tdm_safetensors *f, const char *prefix, const char *rest, int ndim,
                                      tdm_status *st) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", prefix, rest);
    const tdm_st_entry *e = tdm_st_find(f, name);
    if (!e) tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%s' is missing (text encoder)", f->path, name);
    else if (e->ndim != ndim) {
        tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' has %d dims, expected %d", f->path, name, e->ndim, ndim);
        e = NULL;
    }
    return e;
}

static int count_layers(const tdm_safetensors *f, const char *prefix, const char *fmt) {
    int n = 0;
    for (;; n++) {
        char rest[256], name[512];
        snprintf(rest, sizeof rest, fmt, n);
        snprintf(name, sizeof name, "%s%s", prefix, rest);
        if (!tdm_st_find(f, name) || n > 1000) return n;
    }
}

/* CLIP text config from tensor shapes. SD1: CLIP ViT-L/14 (quick_gelu); SD2: OpenCLIP ViT-H/14 (gelu)
 * run to its penultimate layer (n_resblocks - 1 layers, as the diffusers conversion keeps). Head width 64
 * in both (12 / 16 heads); eos_token_id 2 (the legacy "pool at the highest id" rule both configs use). */
static tdm_code infer_text_config(const tdm_sd_model *m, tdm_clip_text_config *cfg, tdm_clip_openclip_map *oc,
                                  tdm_status *st) {
    const tdm_safetensors *f = &m->single;
    const tdm_single_file_info *in = &m->single_info;
    tdm_clip_text_config_default(cfg);
    const tdm_st_entry *tok, *pos, *fc1;
    int layers;
    char p[128];
    if (in->text_encoder_kind == TDM_TE_HF_CLIP) {
        snprintf(p, sizeof p, "%s%s", in->text_encoder_prefix, in->text_model_prefix_missing ? "" : "text_model.");
        if (!(tok = need_entry(f, p, "embeddings.token_embedding.weight", 2, st))) return st->code;
        if (!(pos = need_entry(f, p, "embeddings.position_embedding.weight", 2, st))) return st->code;
        if (!(fc1 = need_entry(f, p, "encoder.layers.0.mlp.fc1.weight", 2, st))) return st->code;
        layers = count_layers(f, p, "encoder.layers.%d.layer_norm1.weight");
        cfg->hidden_act = TDM_CLIP_ACT_QUICK_GELU;
    } else {
        snprintf(p, sizeof p, "%s", in->text_encoder_prefix);
        if (!(tok = need_entry(f, p, "token_embedding.weight", 2, st))) return st->code;
        if (!(pos = need_entry(f, p, "positional_embedding", 2, st))) return st->code;
        if (!(fc1 = need_entry(f, p, "transformer.resblocks.0.mlp.c_fc.weight", 2, st))) return st->code;
        int blocks = count_layers(f, p, "transformer.resblocks.%d.ln_1.weight");
        layers = blocks - 1; /* penultimate layer */
        oc->n_layers = layers;
        oc->keep_projection = 0;
        cfg->hidden_act = TDM_CLIP_ACT_GELU;
    }
    if (layers < 1)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: text encoder under '%s' has too few layers (%d)", f->path, p, layers);
    cfg->vocab_size = (int)tok->shape[0];
    cfg->hidden_size = (int)tok->shape[1];
    cfg->max_position_embeddings = (int)pos->shape[0];
    cfg->intermediate_size = (int)fc1->shape[0];
    cfg->num_hidden_layers = layers;
    cfg->num_attention_heads = cfg->hidden_size % 64 == 0 ? cfg->hidden_size / 64 : 1;
    cfg->layer_norm_eps = 1e-5;
    cfg->projection_dim = in->family == TDM_FAMILY_SD2 ? 512 : 768;
    cfg->bos_token_id = 0;
    cfg->eos_token_id = 2;
    cfg->pad_token_id = 1;
    return tdm_clip_text_config_validate(cfg, f->path, st);
}

static tdm_code load_single(tdm_sd_model *m, const tdm_sd_load_opts *o, unsigned want, tdm_status *st) {
    m->layout = TDM_LAYOUT_SINGLE_FILE;
    if (strcmp(m->unet_component, "unet") != 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "%s: a single-file checkpoint holds one UNet; the UNet component '%s' applies to diffusers "
                        "folders (model_index.json)",
                        o->path, m->unet_component);
    TDM_TRY(tdm_st_open(&m->single, o->path, st));
    const tdm_safetensors *f = &m->single;
    tdm_single_file_info *in = &m->single_info;
    TDM_TRY(tdm_single_file_detect(f, in, st));
    m->family = in->family;
    m->cross_attention_dim = in->context_dim;
    describe(m, "single file %s (%s, %s text encoder, %d UNet input channels)", f->path, tdm_family_name(in->family),
             in->text_encoder_2_prefix[0] ? (in->text_encoder_kind ? "CLIP + OpenCLIP" : "OpenCLIP")
             : in->text_encoder_kind == TDM_TE_OPEN_CLIP ? "OpenCLIP"
             : in->text_encoder_kind                     ? "CLIP"
                                                         : "no",
             in->in_channels);
    if (want & TDM_SD_UNET) {
        tdm_unet_config ucfg;
        TDM_TRY(tdm_unet_config_infer(f, in->unet_prefix, &ucfg, st));
        tdm_weights ws;
        tdm_weights_init(&ws, "unet");
        TDM_TRY(finish_or_free(&ws, tdm_weights_add_opened(&ws, f, in->unet_prefix, tdm_unet_ldm_mapper, &ucfg, st), st));
        TDM_TRY(with_file(load_unet(m, &ucfg, &ws, st), st, f->path));
    }
    if (want & TDM_SD_VAE) {
        if (!in->vae_prefix[0])
            return tdm_fail(st, TDM_ERR_MISSING,
                            "%s: no VAE in this file (no first_stage_model.* tensors); a separate VAE is not "
                            "supported yet: use a file that includes one", f->path);
        tdm_vae_config vcfg;
        memset(&vcfg, 0, sizeof vcfg);
        if (tdm_sdxl_family(m->family)) { /* stabilityai/stable-diffusion-xl-base-1.0 vae/config.json */
            vcfg.scaling_factor = 0.13025;
            vcfg.sample_size = 1024;
        }
        TDM_TRY(tdm_vae_config_infer(f, in->vae_prefix, &vcfg, st));
        tdm_weights ws;
        tdm_weights_init(&ws, "vae");
        TDM_TRY(finish_or_free(&ws, tdm_weights_add_opened(&ws, f, in->vae_prefix, tdm_vae_ldm_mapper, &vcfg, st), st));
        TDM_TRY(with_file(load_vae(m, &vcfg, &ws, st), st, f->path));
    }
    if (tdm_sdxl_family(m->family)) {
        TDM_TRY(tdm_sdxl_load_single_text(m, o, want, st));
        if (want & TDM_SD_TOKENIZER) describe(m, "; tokenizer %s", m->tokenizer_files.source);
    }
    if (!tdm_sdxl_family(m->family) && (want & TDM_SD_TEXT_ENCODER)) {
        if (in->text_encoder_kind == TDM_TE_NONE)
            return tdm_fail(st, TDM_ERR_MISSING, "%s: no text encoder in this file (no cond_stage_model.* tensors)",
                            f->path);
        tdm_clip_text_config tcfg;
        tdm_clip_openclip_map oc = {0, 0};
        TDM_TRY(infer_text_config(m, &tcfg, &oc, st));
        tdm_name_mapper mapper = in->text_encoder_kind == TDM_TE_OPEN_CLIP ? tdm_clip_text_openclip_mapper
                                 : in->text_model_prefix_missing ? hf_mapper_add_text_model
                                                                 : tdm_clip_text_hf_mapper;
        tdm_weights ws;
        tdm_weights_init(&ws, "text_encoder");
        TDM_TRY(finish_or_free(&ws, tdm_weights_add_opened(&ws, f, in->text_encoder_prefix, mapper, &oc, st), st));
        TDM_TRY(with_file(load_text_encoder(m, &tcfg, &ws, st), st, f->path));
    }
    if (!tdm_sdxl_family(m->family) && (want & TDM_SD_TOKENIZER)) {
        TDM_TRY(tdm_tokenizer_find(m->family, o->tokenizer_dir, NULL, &m->tokenizer_files, st));
        TDM_TRY(load_tokenizer(m, &m->tokenizer_files, st));
        describe(m, "; tokenizer %s", m->tokenizer_files.source);
    }
    /* the family's training-time padding, whatever tokenizer folder supplied the vocabulary */
    if (!tdm_sdxl_family(m->family)) TDM_TRY(resolve_pad_id(m, NULL, st));
    if (want & TDM_SD_SCHEDULER) {
        int v = in->v_prediction_guess;
        cJSON *j = tdm_default_scheduler_config(m->family, v ? "v_prediction" : "epsilon");
        if (!j) return tdm_fail(st, TDM_ERR_NOMEM, "scheduler defaults: out of memory");
        tdm_code rc = tdm_scheduler_config_from_json(j, "default scheduler config", &m->scheduler, st);
        cJSON_Delete(j);
        TDM_TRY(rc);
        if (m->family == TDM_FAMILY_SD2 && in->in_channels == 4)
            snprintf(m->prediction_source, sizeof m->prediction_source,
                     "SD2 weight statistics (std %.3f %s 0.09: %s; not certain: override with --prediction)",
                     in->v_stat, v ? ">" : "<=", v ? "v_prediction" : "epsilon");
        else
            snprintf(m->prediction_source, sizeof m->prediction_source, "%s default (epsilon)",
                     tdm_family_name(m->family));
        TDM_TRY(apply_prediction(m, o, st));
        m->loaded |= TDM_SD_SCHEDULER;
    }
    return TDM_OK;
}

tdm_code tdm_sd_model_load(tdm_sd_model **out, const tdm_sd_load_opts *opts, tdm_status *st) {
    *out = NULL;
    if (!opts || !opts->path || !*opts->path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "model path is empty");
    if (opts->prediction && *opts->prediction && strcmp(opts->prediction, "auto") != 0) {
        tdm_prediction_type p;
        TDM_TRY(tdm_sd_parse_prediction(opts->prediction, &p, st));
    }
    const char *uc = opts->unet_component && *opts->unet_component ? opts->unet_component : "unet";
    if (strlen(uc) >= sizeof ((tdm_sd_model *)0)->unet_component || strchr(uc, '/') || strcmp(uc, "..") == 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "UNet component '%.64s' is not a model_index.json component name",
                        uc);
    tdm_sd_model *m = calloc(1, sizeof *m);
    if (!m) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    snprintf(m->unet_component, sizeof m->unet_component, "%s", uc);
    m->max_length = 77;
    m->clip_skip = 1;
    m->clip_final_ln = 1;
    m->latent_channels = 4;
    tdm_scheduler_config_init(&m->scheduler);
    unsigned want = opts->components ? opts->components : TDM_SD_ALL;
    tdm_code rc;
    if (tdm_path_is_dir(opts->path)) rc = load_diffusers(m, opts, want, st);
    else if (tdm_path_is_file(opts->path)) rc = load_single(m, opts, want, st);
    else rc = tdm_fail(st, TDM_ERR_IO, "%s: no such file or folder", opts->path);
    if (!rc && tdm_sdxl_family(m->family)) rc = tdm_sdxl_finish(m, st); /* widths and time ids */
    if (!rc && opts->n_loras) rc = tdm_sd_model_apply_lora(m, opts, st); /* pipeline/sd_lora.c */
    if (rc) {
        tdm_sd_model_free(m);
        return rc;
    }
    if (m->scheduler.prediction_type != TDM_PRED_EPSILON || m->family == TDM_FAMILY_SD2)
        describe(m, "; prediction %s (%s)", tdm_prediction_name(m->scheduler.prediction_type), m->prediction_source);
    *out = m;
    return TDM_OK;
}

void tdm_sd_model_free(tdm_sd_model *m) {
    if (!m) return;
    if (m->lora_base) { /* derived by tdm_sd_model_derive_lora: most components are lora_base's */
        tdm_sd_model_free_derived(m);
        return;
    }
    if (m->tokenizer) tdm_clip_tokenizer_free(m->tokenizer);
    m->tokenizer = NULL;
    tdm_clip_text_free(m->text_encoder);
    tdm_clip_text_free(m->text_encoder_2);
    if (m->tokenizer_2) tdm_clip_tokenizer_free(m->tokenizer_2);
    tdm_unet_free(m->unet);
    tdm_vae_free(m->vae);
    tdm_lora_stack_free(m->lora); /* after the adapted models: the base models they view */
    if (m->single.map) tdm_st_close(&m->single); /* after the models: their weights view it */
    free(m);
}

/* ---- releasing mapped weight pages (H5) ------------------------------------------------------------ */

enum { REL_MAX_MAPS = 64 };

typedef struct map_list {
    const tdm_safetensors *f[REL_MAX_MAPS];
    int n;
} map_list;

static void add_map(map_list *l, const tdm_safetensors *f) {
    if (f && f->map && l->n < REL_MAX_MAPS) l->f[l->n++] = f;
}

static void add_store_maps(map_list *l, const tdm_weights *ws) {
    for (int i = 0; ws && i < ws->n_files; i++) add_map(l, &ws->files[i]);
}

/* Every read-only file mapping m's weights may view (its own and, for a LoRA-derived model, its base's). */
static void collect_maps(map_list *l, const tdm_sd_model *m) {
    for (int depth = 0; m && depth < 4; depth++, m = m->lora_base) {
        add_map(l, &m->single);
        if (m->text_encoder) add_store_maps(l, &m->text_encoder->ws);
        if (m->text_encoder_2) add_store_maps(l, &m->text_encoder_2->ws);
        if (m->unet) add_store_maps(l, tdm_unet_weights(m->unet));
        if (m->vae) add_store_maps(l, &m->vae->ws);
    }
}

/* Advises away the pages of every tensor of ws that lies inside one of the mappings. */
static int64_t release_store(const tdm_weights *ws, const map_list *l) {
    int64_t bytes = 0;
#ifdef MADV_DONTNEED
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; ws && i < ws->n; i++) {
        const tdm_tensor *t = &ws->w[i].t;
        if (!t->data) continue;
        int64_t last = 0; /* extent in elements: last element's offset + 1 */
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] > 0) last += (t->shape[d] - 1) * t->stride[d];
        const uintptr_t b = (uintptr_t)t->data, e = b + (uintptr_t)(last + 1) * tdm_dtype_size(t->dtype);
        for (int k = 0; k < l->n; k++) {
            const uintptr_t mb = (uintptr_t)l->f[k]->map, me = mb + l->f[k]->map_size;
            if (b < mb || e > me) continue;
            /* the mapping is PROT_READ and private: no page of it was ever written, so dropping any page
             * of it (also a neighbour's, at the rounded ends) only costs a re-read */
            uintptr_t pb = b / page * page, pe = (e + page - 1) / page * page;
            if (pb < mb) pb = mb;
            if (pe > (me + page - 1) / page * page) pe = (me + page - 1) / page * page;
            if (pe > pb && madvise((void *)pb, pe - pb, MADV_DONTNEED) == 0) bytes += (int64_t)(pe - pb);
            break;
        }
    }
#else
    (void)ws;
    (void)l;
#endif
    return bytes;
}

int64_t tdm_sd_model_release_pages(const tdm_sd_model *m, unsigned components) {
    if (!m) return 0;
    map_list l;
    l.n = 0;
    collect_maps(&l, m);
    int64_t bytes = 0;
    if (components & TDM_SD_TEXT_ENCODER) {
        if (m->text_encoder) bytes += release_store(&m->text_encoder->ws, &l);
        if (m->text_encoder_2) bytes += release_store(&m->text_encoder_2->ws, &l);
    }
    if ((components & TDM_SD_UNET) && m->unet) bytes += release_store(tdm_unet_weights(m->unet), &l);
    if ((components & TDM_SD_VAE) && m->vae) bytes += release_store(&m->vae->ws, &l);
    return bytes;
}
