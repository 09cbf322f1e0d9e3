/* ControlNet config.json, single-file names and weights: every tensor fetched by diffusers name with its
 * expected shape; the encoder part reuses the UNet's block loaders. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "io/model_dir.h"
#include "models/controlnet_internal.h"

/* ---- config ------------------------------------------------------------------------------------ */

/* diffusers ControlNetModel has no up path: up_block_types (which the UNet config reader requires) is
 * derived as the mirror of down_block_types so the shared reader and validator apply unchanged. */
static cJSON *with_up_types(const cJSON *j) {
    cJSON *d = cJSON_Duplicate(j, 1);
    if (!d) return NULL;
    if (cJSON_GetObjectItemCaseSensitive(d, "up_block_types")) return d;
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(d, "down_block_types");
    if (!cJSON_IsArray(down)) return d; /* the UNet reader reports the field */
    cJSON *up = cJSON_CreateArray();
    int n = cJSON_GetArraySize(down);
    for (int i = n - 1; i >= 0; i--) {
        const cJSON *e = cJSON_GetArrayItem(down, i);
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        const char *u = strcmp(s, "CrossAttnDownBlock2D") == 0 ? "CrossAttnUpBlock2D"
                        : strcmp(s, "DownBlock2D") == 0        ? "UpBlock2D"
                                                               : "(see down_block_types)";
        cJSON_AddItemToArray(up, cJSON_CreateString(u));
    }
    cJSON_AddItemToObject(d, "up_block_types", up);
    return d;
}

tdm_code tdm_controlnet_config_from_json(const cJSON *j, const char *what, tdm_controlnet_config *cfg,
                                         tdm_status *st) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *d = with_up_types(j);
    if (!d) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", what);
    tdm_code rc = tdm_unet_config_from_json(d, what, &cfg->unet, st);
    cJSON_Delete(d);
    TDM_TRY(rc);
    long v, arr[TDM_CONTROLNET_MAX_COND_LEVELS + 1];
    int n = 0;
    TDM_TRY(tdm_json_int(j, "conditioning_channels", what, 1, 3, 1, 64, &v, st));
    cfg->conditioning_channels = (int)v;
    if (cJSON_GetObjectItemCaseSensitive(j, "conditioning_embedding_out_channels")) {
        TDM_TRY(tdm_json_int_array(j, "conditioning_embedding_out_channels", what, 0, 1, 16384, arr,
                                   TDM_CONTROLNET_MAX_COND_LEVELS, &n, st));
    } else { /* diffusers default */
        const long def[] = {16, 32, 96, 256};
        n = 4;
        memcpy(arr, def, sizeof def);
    }
    cfg->n_cond_levels = n;
    for (int i = 0; i < n; i++) cfg->cond_channels[i] = (int)arr[i];
    char order[16];
    TDM_TRY(tdm_json_str(j, "controlnet_conditioning_channel_order", what, 1, "rgb", order, sizeof order, st));
    if (strcmp(order, "rgb") == 0) cfg->bgr = 0;
    else if (strcmp(order, "bgr") == 0) cfg->bgr = 1;
    else
        return tdm_fail(st, TDM_ERR_FORMAT,
                        "%s: field 'controlnet_conditioning_channel_order' = '%s' (expected rgb or bgr)", what, order);
    TDM_TRY(tdm_json_bool(j, "global_pool_conditions", what, 1, 0, &cfg->global_pool_conditions, st));
    const cJSON *cet = cJSON_GetObjectItemCaseSensitive(j, "class_embed_type");
    if (cet && !cJSON_IsNull(cet))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: field 'class_embed_type' must be null (not supported)", what);
    if (cfg->conditioning_channels > 1 && cfg->bgr && cfg->conditioning_channels != 3)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: bgr channel order needs 3 conditioning channels", what);
    return TDM_OK;
}

tdm_code tdm_controlnet_config_load(const char *path, tdm_controlnet_config *cfg, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(path, &j, st));
    tdm_code rc = tdm_controlnet_config_from_json(j, path, cfg, st);
    cJSON_Delete(j);
    return rc;
}

/* ---- single-file names ------------------------------------------------------------------------- */

tdm_code tdm_controlnet_ldm_mapper(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx, tdm_status *st) {
    const tdm_controlnet_config *c = ctx;
    char buf[256];
    long a = -1;
    char rest[128];
    if (sscanf(name, "zero_convs.%ld.0.%127s", &a, rest) == 2 && a >= 0 && a < 10000) {
        snprintf(buf, sizeof buf, "controlnet_down_blocks.%ld.%s", a, rest);
        return tdm_weights_emit(ws, buf, t, st);
    }
    if (strncmp(name, "middle_block_out.0.", 19) == 0) {
        snprintf(buf, sizeof buf, "controlnet_mid_block.%s", name + 19);
        return tdm_weights_emit(ws, buf, t, st);
    }
    if (sscanf(name, "input_hint_block.%ld.%127s", &a, rest) == 2 && a >= 0 && a % 2 == 0) {
        /* cldm input_hint_block: conv, SiLU, conv, SiLU, ...: conv k at index 2k */
        const long k = a / 2, n_blocks = 2L * (c->n_cond_levels - 1);
        if (k == 0) snprintf(buf, sizeof buf, "controlnet_cond_embedding.conv_in.%s", rest);
        else if (k <= n_blocks) snprintf(buf, sizeof buf, "controlnet_cond_embedding.blocks.%ld.%s", k - 1, rest);
        else if (k == n_blocks + 1) snprintf(buf, sizeof buf, "controlnet_cond_embedding.conv_out.%s", rest);
        else return tdm_weights_emit(ws, name, t, st); /* reported as unexpected */
        return tdm_weights_emit(ws, buf, t, st);
    }
    return tdm_unet_ldm_mapper(ws, name, t, (void *)&c->unet, st);
}

/* ---- weights ----------------------------------------------------------------------------------- */

static tdm_code get(tdm_weights *ws, const char *name, tdm_tensor *out, int ndim, int64_t a, int64_t b, int64_t c,
                    int64_t d, tdm_status *st) {
    int64_t shape[4] = {a, b, c, d};
    return tdm_weights_get(ws, name, ndim, shape, out, st);
}

static tdm_code get_conv(tdm_weights *ws, const char *pre, int64_t cout, int64_t cin, int k, tdm_tensor *w,
                         tdm_tensor *b, tdm_status *st) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", pre);
    TDM_TRY(get(ws, name, w, 4, cout, cin, k, k, st));
    snprintf(name, sizeof name, "%s.bias", pre);
    return get(ws, name, b, 1, cout, 0, 0, 0, st);
}

void tdm_controlnet_free(tdm_controlnet *cn) {
    if (!cn) return;
    tdm_unet_free(cn->enc);
    free(cn);
}

const tdm_controlnet_config *tdm_controlnet_get_config(const tdm_controlnet *cn) { return &cn->cfg; }

int tdm_controlnet_n_down(const tdm_controlnet *cn) { return cn->n_down; }

void tdm_controlnet_residual_shape(const tdm_controlnet *cn, int i, int H, int W, int64_t *C, int64_t *h, int64_t *w) {
    if (i < 0) i = 0;
    if (i > cn->n_down) i = cn->n_down;
    int64_t hh = H, ww = W;
    for (int k = 0; k < cn->res_level[i]; k++) { /* stride-2 3x3 conv, padding 1: ceil */
        hh = (hh + 1) / 2;
        ww = (ww + 1) / 2;
    }
    *C = cn->res_ch[i];
    *h = hh;
    *w = ww;
}

tdm_code tdm_controlnet_check_unet(const tdm_controlnet *cn, const tdm_unet_config *uc, const char *what,
                                   tdm_status *st) {
    const tdm_unet_config *c = &cn->cfg.unet;
    int ok = c->n_levels == uc->n_levels && c->layers_per_block == uc->layers_per_block &&
             c->in_channels == uc->in_channels && c->cross_attention_dim == uc->cross_attention_dim &&
             c->addition_text_time == uc->addition_text_time;
    for (int i = 0; ok && i < c->n_levels; i++) ok = c->block_out_channels[i] == uc->block_out_channels[i];
    if (!ok)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "%s: the ControlNet (%d levels, widths %d.., %d layers, context %d) does not fit the UNet "
                        "(%d levels, widths %d.., %d layers, context %d)",
                        what, c->n_levels, c->block_out_channels[0], c->layers_per_block, c->cross_attention_dim,
                        uc->n_levels, uc->block_out_channels[0], uc->layers_per_block, uc->cross_attention_dim);
    if (c->time_cond_proj_dim && !uc->time_cond_proj_dim)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "%s: the ControlNet needs timestep_cond (time_cond_proj_dim %d); the UNet has none", what,
                        c->time_cond_proj_dim);
    return TDM_OK;
}

/* The encoder part: conv_in, embeddings, down levels, mid block (UNet loaders), into cn->enc. */
static tdm_code build_encoder(tdm_controlnet *cn, tdm_status *st) {
    tdm_unet *u = cn->enc;
    const tdm_unet_config *c = &u->cfg;
    tdm_weights *ws = &u->ws;
    const int L = c->n_levels, lpb = c->layers_per_block, T = c->time_embed_dim, C0 = c->block_out_channels[0];
    char p[256];
    TDM_TRY(get(ws, "conv_in.weight", &u->conv_in_w, 4, C0, c->in_channels, 3, 3, st));
    TDM_TRY(get(ws, "conv_in.bias", &u->conv_in_b, 1, C0, 0, 0, 0, st));
    TDM_TRY(get(ws, "time_embedding.linear_1.weight", &u->t_lin1_w, 2, T, C0, 0, 0, st));
    TDM_TRY(get(ws, "time_embedding.linear_1.bias", &u->t_lin1_b, 1, T, 0, 0, 0, st));
    TDM_TRY(get(ws, "time_embedding.linear_2.weight", &u->t_lin2_w, 2, T, T, 0, 0, st));
    TDM_TRY(get(ws, "time_embedding.linear_2.bias", &u->t_lin2_b, 1, T, 0, 0, 0, st));
    if (c->time_cond_proj_dim)
        TDM_TRY(get(ws, "time_embedding.cond_proj.weight", &u->t_cond_w, 2, C0, c->time_cond_proj_dim, 0, 0, st));
    if (c->addition_text_time) {
        const int P = c->projection_class_embeddings_input_dim;
        TDM_TRY(get(ws, "add_embedding.linear_1.weight", &u->a_lin1_w, 2, T, P, 0, 0, st));
        TDM_TRY(get(ws, "add_embedding.linear_1.bias", &u->a_lin1_b, 1, T, 0, 0, 0, st));
        TDM_TRY(get(ws, "add_embedding.linear_2.weight", &u->a_lin2_w, 2, T, T, 0, 0, st));
        TDM_TRY(get(ws, "add_embedding.linear_2.bias", &u->a_lin2_b, 1, T, 0, 0, 0, st));
    }
    int n = 0, level = 0, out_ch = C0;
    cn->res_ch[n] = C0;
    cn->res_level[n++] = 0;
    for (int i = 0; i < L; i++) {
        unet_level *l = &u->down[i];
        const int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        l->n_layers = lpb;
        if (c->down_attn[i]) {
            l->attns = calloc((size_t)lpb, sizeof *l->attns);
            if (!l->attns) return tdm_fail(st, TDM_ERR_NOMEM, "controlnet: out of memory");
        }
        for (int j = 0; j < lpb; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d.", i, j);
            TDM_TRY(tdm_unet_load_resnet(ws, p, j == 0 ? in_ch : out_ch, out_ch, T, &l->resnets[j], st));
            if (l->attns) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d.", i, j);
                TDM_TRY(tdm_unet_load_transformer(ws, p, c, out_ch, c->num_heads[i], c->transformer_layers[i],
                                                  &l->attns[j], st));
            }
            cn->res_ch[n] = out_ch;
            cn->res_level[n++] = level;
        }
        l->has_sample = i < L - 1;
        if (l->has_sample) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            TDM_TRY(get_conv(ws, p, out_ch, out_ch, 3, &l->sample_w, &l->sample_b, st));
            cn->res_ch[n] = out_ch;
            cn->res_level[n++] = ++level;
        }
    }
    const int CL = c->block_out_channels[L - 1];
    TDM_TRY(tdm_unet_load_resnet(ws, "mid_block.resnets.0.", CL, CL, T, &u->mid_res[0], st));
    TDM_TRY(tdm_unet_load_transformer(ws, "mid_block.attentions.0.", c, CL, c->num_heads[L - 1],
                                      c->transformer_layers[L - 1], &u->mid_attn, st));
    TDM_TRY(tdm_unet_load_resnet(ws, "mid_block.resnets.1.", CL, CL, T, &u->mid_res[1], st));
    cn->n_down = n;
    cn->res_ch[n] = CL; /* mid */
    cn->res_level[n] = level;
    return TDM_OK;
}

static tdm_code build(tdm_controlnet *cn, tdm_status *st) {
    const tdm_controlnet_config *cc = &cn->cfg;
    tdm_weights *ws = &cn->enc->ws;
    const int C0 = cc->unet.block_out_channels[0], K = cc->n_cond_levels;
    char p[256];
    TDM_TRY(build_encoder(cn, st));
    if (cn->n_down != tdm_unet_n_skips(cn->enc))
        return tdm_fail(st, TDM_ERR_INTERNAL, "controlnet: %d residuals for %d skips", cn->n_down,
                        tdm_unet_n_skips(cn->enc));
    TDM_TRY(get_conv(ws, "controlnet_cond_embedding.conv_in", cc->cond_channels[0], cc->conditioning_channels, 3,
                     &cn->ce_in_w, &cn->ce_in_b, st));
    for (int k = 0; k < K - 1; k++) {
        const int ck = cc->cond_channels[k], cn1 = cc->cond_channels[k + 1];
        snprintf(p, sizeof p, "controlnet_cond_embedding.blocks.%d", 2 * k);
        TDM_TRY(get_conv(ws, p, ck, ck, 3, &cn->ce_w[2 * k], &cn->ce_b[2 * k], st));
        snprintf(p, sizeof p, "controlnet_cond_embedding.blocks.%d", 2 * k + 1);
        TDM_TRY(get_conv(ws, p, cn1, ck, 3, &cn->ce_w[2 * k + 1], &cn->ce_b[2 * k + 1], st));
    }
    TDM_TRY(get_conv(ws, "controlnet_cond_embedding.conv_out", C0, cc->cond_channels[K - 1], 3, &cn->ce_out_w,
                     &cn->ce_out_b, st));
    for (int i = 0; i < cn->n_down; i++) {
        snprintf(p, sizeof p, "controlnet_down_blocks.%d", i);
        TDM_TRY(get_conv(ws, p, cn->res_ch[i], cn->res_ch[i], 1, &cn->zc_w[i], &cn->zc_b[i], st));
    }
    TDM_TRY(get_conv(ws, "controlnet_mid_block", cn->res_ch[cn->n_down], cn->res_ch[cn->n_down], 1,
                     &cn->zc_w[cn->n_down], &cn->zc_b[cn->n_down], st));
    return tdm_weights_check_unused(ws, st);
}

tdm_code tdm_controlnet_build(tdm_controlnet **out, const tdm_controlnet_config *cfg, tdm_weights *ws, tdm_status *st) {
    *out = NULL;
    tdm_controlnet *cn = calloc(1, sizeof *cn);
    tdm_unet *u = cn ? calloc(1, sizeof *u) : NULL;
    if (!cn || !u) {
        free(cn);
        free(u);
        tdm_weights_free(ws);
        return tdm_fail(st, TDM_ERR_NOMEM, "controlnet: out of memory");
    }
    u->ws = *ws; /* ownership moves in */
    memset(ws, 0, sizeof *ws);
    u->cfg = cfg->unet;
    cn->enc = u;
    cn->cfg = *cfg;
    tdm_code rc = tdm_unet_config_validate(&cfg->unet, "controlnet config", st);
    if (!rc && (cfg->n_cond_levels < 1 || cfg->n_cond_levels > TDM_CONTROLNET_MAX_COND_LEVELS ||
                cfg->conditioning_channels < 1 || cfg->conditioning_channels > 64))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "controlnet config: conditioning embedding is out of range");
    for (int k = 0; !rc && k < cfg->n_cond_levels; k++)
        if (cfg->cond_channels[k] < 1 || cfg->cond_channels[k] > 16384)
            rc = tdm_fail(st, TDM_ERR_FORMAT, "controlnet config: conditioning_embedding_out_channels[%d] = %d", k,
                          cfg->cond_channels[k]);
    if (!rc) rc = build(cn, st);
    if (rc) {
        tdm_controlnet_free(cn);
        return rc;
    }
    *out = cn;
    return TDM_OK;
}

/* ---- files ------------------------------------------------------------------------------------- */

/* SD 1.x ControlNet (lllyasviel/sd-controlnet-*, cldm_v15.yaml) */
static const char *k_sd15_config =
    "{\"in_channels\": 4, \"conditioning_channels\": 3, \"flip_sin_to_cos\": true, \"freq_shift\": 0,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"DownBlock2D\"], \"block_out_channels\": [320, 640, 1280, 1280], \"layers_per_block\": 2,"
    " \"norm_num_groups\": 32, \"norm_eps\": 1e-05, \"cross_attention_dim\": 768, \"attention_head_dim\": 8,"
    " \"use_linear_projection\": false, \"controlnet_conditioning_channel_order\": \"rgb\","
    " \"conditioning_embedding_out_channels\": [16, 32, 96, 256]}";

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* Single file: diffusers names, or control_model.* (config: SD 1.x, or SD 2.x when proj_in is a Linear:
 * head dim 64, cross_attention_dim from attn2.to_k). */
static tdm_code load_single(tdm_controlnet **out, const char *path, const char *config_path, tdm_status *st) {
    tdm_safetensors f;
    TDM_TRY(tdm_st_open(&f, path, st));
    const int ldm = tdm_st_find(&f, "control_model.input_blocks.0.0.weight") != NULL;
    tdm_controlnet_config cfg;
    tdm_code rc = TDM_OK;
    if (config_path) {
        rc = tdm_controlnet_config_load(config_path, &cfg, st);
    } else if (!ldm) { /* diffusers names: config.json next to the file */
        char dir[4096], cp[4200];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        snprintf(cp, sizeof cp, "%s/config.json", slash ? dir : ".");
        if (access(cp, R_OK) == 0) rc = tdm_controlnet_config_load(cp, &cfg, st);
        else
            rc = tdm_fail(st, TDM_ERR_MISSING,
                          "%s: a ControlNet file with diffusers names needs its config.json (none at %s)", path, cp);
    } else {
        cJSON *j = cJSON_Parse(k_sd15_config);
        if (!j) rc = tdm_fail(st, TDM_ERR_NOMEM, "controlnet: out of memory");
        const tdm_st_entry *pin = tdm_st_find(&f, "control_model.input_blocks.1.1.proj_in.weight");
        const tdm_st_entry *tk = tdm_st_find(&f, "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight");
        if (!rc && pin && pin->ndim == 2) { /* SD 2.x */
            cJSON_ReplaceItemInObject(j, "use_linear_projection", cJSON_CreateTrue());
            cJSON_ReplaceItemInObject(j, "attention_head_dim", cJSON_CreateIntArray((const int[]){5, 10, 20, 20}, 4));
        }
        if (!rc && tk && tk->ndim == 2 && tk->shape[1] > 0 && tk->shape[1] <= 16384)
            cJSON_ReplaceItemInObject(j, "cross_attention_dim", cJSON_CreateNumber((double)tk->shape[1]));
        if (!rc) rc = tdm_controlnet_config_from_json(j, path, &cfg, st);
        cJSON_Delete(j);
    }
    tdm_st_close(&f); /* the weight store maps the file itself (its views must outlive this function) */
    TDM_TRY(rc);
    tdm_weights ws;
    TDM_TRY(tdm_weights_open_file(&ws, "controlnet", path, ldm ? "control_model." : "",
                                  ldm ? tdm_controlnet_ldm_mapper : NULL, &cfg, st));
    return tdm_controlnet_build(out, &cfg, &ws, st);
}

tdm_code tdm_controlnet_load_file(tdm_controlnet **out, const char *path, const char *config_path, tdm_status *st) {
    if (!out || !path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "controlnet: no path given");
    *out = NULL;
    char cfgp[4096], wp[4096];
    if (!is_dir(path)) return load_single(out, path, config_path, st);
    TDM_TRY(tdm_path_join(cfgp, sizeof cfgp, path, "config.json", st));
    TDM_TRY(tdm_path_join(wp, sizeof wp, path, "diffusion_pytorch_model.safetensors", st));
    if (!(access(wp, R_OK) == 0)) {
        TDM_TRY(tdm_path_join(wp, sizeof wp, path, "diffusion_pytorch_model.fp16.safetensors", st));
        if (!(access(wp, R_OK) == 0))
            return tdm_fail(st, TDM_ERR_MISSING, "%s: no diffusion_pytorch_model.safetensors (pickle .bin files are "
                                                 "not read)", path);
    }
    tdm_controlnet_config cfg;
    TDM_TRY(tdm_controlnet_config_load(config_path ? config_path : cfgp, &cfg, st));
    tdm_weights ws;
    TDM_TRY(tdm_weights_open_file(&ws, "controlnet", wp, "", NULL, NULL, st));
    return tdm_controlnet_build(out, &cfg, &ws, st);
}

/* Public API (tandem.h, controlnet block). */
tdm_code tdm_controlnet_load(const char *path, tdm_controlnet **out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_controlnet_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_controlnet_load: no path given");
    return tdm_controlnet_load_file(out, path, NULL, st);
}
