/* `tandem check` handler for kind "unet2d_condition": runs the UNet on the fixture inputs with the
 * diffusers folder weights (model/), the float16 copy (model-f16/ -> noise_pred_f16w) and the single-file
 * LDM checkpoint (model-single-file/: config inferred from the tensors, and config.json), comparing
 * noise_pred and the inter.* intermediates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "models/unet.h"
#include "pipeline/check.h"

typedef struct inter_ctx {
    tdm_check *c;
} inter_ctx;

/* Debug hook: compares "inter.<name>" when the fixture stores it. */
static void on_inter(void *user, const char *name, const float *x, int64_t n) {
    inter_ctx *ic = user;
    char full[128];
    snprintf(full, sizeof full, "inter.%s", name);
    if (!tdm_st_find(&ic->c->io, full)) return;
    tdm_status st2;
    tdm_status_clear(&st2);
    if (tdm_check_compare(ic->c, full, x, n, &st2)) {
        ic->c->n_fail++;
        tdm_check_line(ic->c, "FAIL %-48s %s", full, st2.msg);
    }
}

static void skip_line(tdm_check *c, const char *name, const char *why) {
    c->n_skip++;
    tdm_check_line(c, "SKIP %-48s %s", name, why);
}

static int has_io(const tdm_check *c, const char *name) { return c->io.map && tdm_st_find(&c->io, name) != NULL; }

/* Weights file (+ prefix, mapper) -> model. */
static tdm_code load_model(const char *path, const char *prefix, tdm_name_mapper mapper, const tdm_unet_config *cfg,
                           tdm_unet **u, tdm_status *st) {
    tdm_weights ws;
    TDM_TRY(tdm_weights_open_file(&ws, "unet", path, prefix, mapper, (void *)cfg, st));
    return tdm_unet_load(u, cfg, &ws, st);
}

/* Loads, runs, compares `out_name` (and the inter.* outputs when with_inter). */
static tdm_code run_case(tdm_check *c, const char *path, const char *prefix, tdm_name_mapper mapper,
                         const tdm_unet_config *cfg, tdm_unet_inputs *in, int64_t out_n, const char *out_name,
                         int with_inter, tdm_status *st) {
    tdm_unet *u = NULL;
    TDM_TRY(load_model(path, prefix, mapper, cfg, &u, st));
    float *out = malloc((size_t)out_n * sizeof(float)); /* [B, Cout, H, W] */
    if (!out) {
        tdm_unet_free(u);
        return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    }
    inter_ctx ic = {c};
    in->debug_fn = with_inter ? on_inter : NULL;
    in->debug_user = &ic;
    tdm_arena arena;
    tdm_arena_init(&arena, (size_t)64 << 20);
    tdm_code rc = tdm_unet_forward(u, &c->ex, &arena, in, out, st);
    if (!rc) rc = tdm_check_compare(c, out_name, out, out_n, st);
    tdm_arena_free(&arena);
    free(out);
    tdm_unet_free(u);
    return rc;
}

/* Inferred config vs config.json on the fields the tensors determine. */
static void compare_inferred(tdm_check *c, const tdm_unet_config *a, const tdm_unet_config *b) {
    char why[256] = "";
    int L = b->n_levels;
    if (a->n_levels != b->n_levels) snprintf(why, sizeof why, "levels %d vs %d", a->n_levels, b->n_levels);
    else if (a->layers_per_block != b->layers_per_block) snprintf(why, sizeof why, "layers_per_block");
    else if (a->in_channels != b->in_channels || a->out_channels != b->out_channels) snprintf(why, sizeof why, "channels");
    else if (a->cross_attention_dim != b->cross_attention_dim) snprintf(why, sizeof why, "cross_attention_dim");
    else if (a->use_linear_projection != b->use_linear_projection) snprintf(why, sizeof why, "use_linear_projection");
    else if (a->time_cond_proj_dim != b->time_cond_proj_dim) snprintf(why, sizeof why, "time_cond_proj_dim");
    else if (a->time_embed_dim != b->time_embed_dim) snprintf(why, sizeof why, "time_embed_dim");
    else if (a->addition_text_time != b->addition_text_time ||
             a->projection_class_embeddings_input_dim != b->projection_class_embeddings_input_dim)
        snprintf(why, sizeof why, "addition embedding");
    for (int i = 0; !why[0] && i < L; i++) {
        if (a->block_out_channels[i] != b->block_out_channels[i]) snprintf(why, sizeof why, "block_out_channels[%d]", i);
        else if (a->down_attn[i] != b->down_attn[i]) snprintf(why, sizeof why, "down_block_types[%d]", i);
        else if (a->up_attn[i] != b->up_attn[i]) snprintf(why, sizeof why, "up_block_types[%d]", i);
        else if (a->num_heads[i] != b->num_heads[i]) snprintf(why, sizeof why, "heads[%d] %d vs %d", i, a->num_heads[i], b->num_heads[i]);
        else if ((b->down_attn[i] || i == L - 1) && a->transformer_layers[i] != b->transformer_layers[i])
            snprintf(why, sizeof why, "transformer_layers_per_block[%d]", i);
    }
    tdm_check_exact(c, "config_infer (single file vs config.json)", why[0] == 0,
                    why[0] ? why : "equal (norm_num_groups/eps, upcast, sample_size taken from config.json)");
}

tdm_code tdm_check_unet(tdm_check *c, tdm_status *st) {
    char rel[512], mdir[4096], path[4096 + 64];
    TDM_TRY(tdm_json_str(c->case_json, "model", "case.json", 1, "model", rel, sizeof rel, st));
    tdm_check_path(c, rel, mdir, sizeof mdir);
    tdm_unet_config cfg;
    snprintf(path, sizeof path, "%s/config.json", mdir);
    TDM_TRY(tdm_unet_config_load(path, &cfg, st));

    float *sample = NULL, *tsteps = NULL, *ctx = NULL, *tcond = NULL, *temb = NULL, *tids = NULL, *w = NULL;
    tdm_tensor ts, tt, tc, te, ti, tw;
    tdm_code rc = tdm_check_input(c, "sample", &sample, &ts, st);
    if (!rc) rc = tdm_check_input(c, "timestep", &tsteps, &tt, st);
    if (!rc) rc = tdm_check_input(c, "encoder_hidden_states", &ctx, &tc, st);
    if (!rc && has_io(c, "timestep_cond")) rc = tdm_check_input(c, "timestep_cond", &tcond, NULL, st);
    if (!rc && has_io(c, "text_embeds")) rc = tdm_check_input(c, "text_embeds", &temb, &te, st);
    if (!rc && has_io(c, "time_ids")) rc = tdm_check_input(c, "time_ids", &tids, &ti, st);
    if (!rc && has_io(c, "w")) rc = tdm_check_input(c, "w", &w, &tw, st);
    if (rc) goto done;
    if (ts.ndim != 4 || ts.shape[1] != cfg.in_channels || tt.ndim != 1 || tt.shape[0] != ts.shape[0] ||
        tc.ndim != 3 || tc.shape[0] != ts.shape[0] || tc.shape[2] != cfg.cross_attention_dim) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: sample/timestep/encoder_hidden_states shapes do not fit the model",
                      c->dir);
        goto done;
    }
    tdm_unet_inputs in;
    memset(&in, 0, sizeof in);
    in.B = (int)ts.shape[0];
    in.H = (int)ts.shape[2];
    in.W = (int)ts.shape[3];
    in.sample = sample;
    in.timesteps = tsteps;
    in.context = ctx;
    in.context_len = (int)tc.shape[1];
    in.timestep_cond = tcond;
    if (temb && te.ndim == 2) {
        in.text_embeds = temb;
        in.text_embeds_dim = (int)te.shape[1];
    }
    if (tids && ti.ndim == 2) {
        in.time_ids = tids;
        in.n_time_ids = (int)ti.shape[1];
    }
    const int64_t out_n = (int64_t)in.B * cfg.out_channels * in.H * in.W;

    /* LCM: the guidance embedding helper vs the stored timestep_cond */
    if (w && tcond && cfg.time_cond_proj_dim && tw.ndim == 1 && tw.shape[0] == in.B) {
        float *g = malloc((size_t)in.B * cfg.time_cond_proj_dim * sizeof(float)); /* [B, dim] */
        if (!g) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
            goto done;
        }
        tdm_guidance_scale_embedding(w, in.B, cfg.time_cond_proj_dim, g);
        rc = tdm_check_compare(c, "timestep_cond", g, (int64_t)in.B * cfg.time_cond_proj_dim, st);
        free(g);
        if (rc) goto done;
    }

    /* diffusers folder, f32 */
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", mdir);
    if (has_io(c, "noise_pred")) {
        tdm_check_line(c, "-- %s", rel);
        rc = run_case(c, path, "", NULL, &cfg, &in, out_n, "noise_pred", 1, st);
        if (rc) goto done;
    }

    /* float16 weights */
    snprintf(path, sizeof path, "%s/../model-f16/diffusion_pytorch_model.safetensors", mdir);
    if (has_io(c, "noise_pred_f16w")) {
        if (access(path, R_OK) == 0) {
            tdm_check_line(c, "-- model-f16 (F16 weights widened by the operators)");
            rc = run_case(c, path, "", NULL, &cfg, &in, out_n, "noise_pred_f16w", 0, st);
            if (rc) goto done;
        } else {
            skip_line(c, "noise_pred_f16w", "no model-f16 folder");
        }
    }

    /* single-file LDM checkpoint */
    snprintf(path, sizeof path, "%s/../model-single-file/model.safetensors", mdir);
    if (has_io(c, "noise_pred") && access(path, R_OK) == 0) {
        tdm_safetensors f;
        rc = tdm_st_open(&f, path, st);
        if (rc) goto done;
        tdm_unet_config icfg;
        rc = tdm_unet_config_infer(&f, "model.diffusion_model.", &icfg, st);
        tdm_st_close(&f);
        if (rc) goto done;
        compare_inferred(c, &icfg, &cfg);
        /* not determined by the tensors: taken from config.json */
        icfg.norm_num_groups = cfg.norm_num_groups;
        icfg.norm_eps = cfg.norm_eps;
        icfg.upcast_attention = cfg.upcast_attention;
        icfg.sample_size = cfg.sample_size;
        icfg.flip_sin_to_cos = cfg.flip_sin_to_cos;
        icfg.freq_shift = cfg.freq_shift;
        icfg.addition_time_embed_dim = cfg.addition_time_embed_dim;
        tdm_check_line(c, "-- model-single-file (LDM names, inferred config)");
        rc = run_case(c, path, "model.diffusion_model.", tdm_unet_ldm_mapper, &icfg, &in, out_n, "noise_pred", 0, st);
        if (rc) goto done;
        tdm_check_line(c, "-- model-single-file (LDM names, config.json)");
        rc = run_case(c, path, "model.diffusion_model.", tdm_unet_ldm_mapper, &cfg, &in, out_n, "noise_pred", 0, st);
        if (rc) goto done;
    }

    /* outputs this handler does not produce */
    {
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(c->case_json, "outputs");
        const cJSON *o;
        cJSON_ArrayForEach(o, outs) {
            const char *n = o->string;
            if (!n || strcmp(n, "noise_pred") == 0 || strcmp(n, "noise_pred_f16w") == 0 || strncmp(n, "inter.", 6) == 0)
                continue;
            skip_line(c, n, "not produced by the unet check");
        }
    }
done:
    free(sample);
    free(tsteps);
    free(ctx);
    free(tcond);
    free(temb);
    free(tids);
    free(w);
    return rc;
}
