/* `tandem check` handler for kind "controlnet": loads the ControlNet (model/) and its base UNet
 * (case.json "base_unet", a folder relative to the fixture), runs both on the fixture inputs and compares
 * noise_pred_nocontrol, then for every conditioning scale the outputs name ("cs<int>_<frac>.*", e.g.
 * cs0_5 = 0.5) the 12 down residuals, the mid residual and the UNet output with them added. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/controlnet.h"
#include "pipeline/check.h"

typedef struct cn_case {
    tdm_check *c;
    tdm_controlnet *cn;
    tdm_unet *unet;
    tdm_unet_inputs in;     /* sample, timesteps, context */
    float *cond_emb;        /* [1, C0, H, W] */
    tdm_arena arena;
} cn_case;

/* "cs0_5" -> 0.5; 0 when the prefix is not of that form. */
static int parse_scale(const char *prefix, float *scale) {
    int a = 0, n = 0;
    char frac[16];
    if (sscanf(prefix, "cs%d_%15[0-9]%n", &a, frac, &n) != 2 || prefix[n] != '\0') return 0;
    char num[48];
    snprintf(num, sizeof num, "%d.%s", a, frac);
    *scale = strtof(num, NULL);
    return 1;
}

static tdm_code run_scale(cn_case *k, const char *prefix, float scale, tdm_status *st) {
    tdm_check *c = k->c;
    const int nd = tdm_controlnet_n_down(k->cn);
    const int B = k->in.B, H = k->in.H, W = k->in.W;
    float *down[TDM_CONTROLNET_MAX_RESIDUALS];
    int64_t numel[TDM_CONTROLNET_MAX_RESIDUALS + 1];
    float *mid = NULL, *out = NULL;
    tdm_code rc = TDM_OK;
    memset(down, 0, sizeof down);
    for (int i = 0; i <= nd && !rc; i++) {
        int64_t C, h, w;
        tdm_controlnet_residual_shape(k->cn, i, H, W, &C, &h, &w);
        numel[i] = (int64_t)B * C * h * w;
        float *p = malloc((size_t)numel[i] * sizeof(float)); /* [B, C_i, h_i, w_i] */
        if (!p) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        if (i < nd) down[i] = p;
        else mid = p;
    }
    const tdm_unet_config *uc = tdm_unet_get_config(k->unet);
    const int64_t out_n = (int64_t)B * uc->out_channels * H * W;
    if (!rc && !(out = malloc((size_t)out_n * sizeof(float)))) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    tdm_controlnet_inputs ci;
    memset(&ci, 0, sizeof ci);
    ci.x = k->in;
    ci.cond_emb = k->cond_emb;
    ci.cond_batch = 1;
    ci.scale = scale;
    if (!rc) rc = tdm_controlnet_forward(k->cn, &c->ex, &k->arena, &ci, down, mid, 0, st);
    char name[128];
    tdm_check_line(c, "-- %s (conditioning_scale %g)", prefix, (double)scale);
    for (int i = 0; i < nd && !rc; i++) {
        snprintf(name, sizeof name, "%s.down_block_res_samples.%d", prefix, i);
        if (tdm_st_find(&c->io, name)) rc = tdm_check_compare(c, name, down[i], numel[i], st);
    }
    snprintf(name, sizeof name, "%s.mid_block_res_sample", prefix);
    if (!rc && tdm_st_find(&c->io, name)) rc = tdm_check_compare(c, name, mid, numel[nd], st);
    snprintf(name, sizeof name, "%s.noise_pred", prefix);
    if (!rc && tdm_st_find(&c->io, name)) {
        tdm_unet_inputs in = k->in;
        in.down_residuals = (const float *const *)down;
        in.n_down_residuals = nd;
        in.mid_residual = mid;
        rc = tdm_unet_forward(k->unet, &c->ex, &k->arena, &in, out, st);
        if (!rc) rc = tdm_check_compare(c, name, out, out_n, st);
    }
    for (int i = 0; i < nd; i++) free(down[i]);
    free(mid);
    free(out);
    return rc;
}

static tdm_code load_unet(const char *dir, tdm_unet **u, tdm_status *st) {
    char p[4200];
    tdm_unet_config cfg;
    snprintf(p, sizeof p, "%s/config.json", dir);
    TDM_TRY(tdm_unet_config_load(p, &cfg, st));
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    tdm_weights ws;
    TDM_TRY(tdm_weights_open_file(&ws, "unet", p, "", NULL, NULL, st));
    return tdm_unet_load(u, &cfg, &ws, st);
}

tdm_code tdm_check_controlnet(tdm_check *c, tdm_status *st) {
    char rel[512], dir[4096];
    cn_case k;
    memset(&k, 0, sizeof k);
    k.c = c;
    tdm_arena_init(&k.arena, (size_t)32 << 20);
    float *sample = NULL, *tsteps = NULL, *ctx = NULL, *cond = NULL, *out = NULL;
    tdm_tensor ts, tt, tc, tcond;

    tdm_code rc = tdm_json_str(c->case_json, "model", "case.json", 1, "model", rel, sizeof rel, st);
    if (!rc) rc = tdm_controlnet_load_file(&k.cn, tdm_check_path(c, rel, dir, sizeof dir), NULL, st);
    /* "base_unet": "<relative folder> (comment)" */
    if (!rc) rc = tdm_json_str(c->case_json, "base_unet", "case.json", 0, NULL, rel, sizeof rel, st);
    if (!rc) {
        char *sp = strchr(rel, ' ');
        if (sp) *sp = '\0';
        rc = load_unet(tdm_check_path(c, rel, dir, sizeof dir), &k.unet, st);
    }
    if (!rc) rc = tdm_controlnet_check_unet(k.cn, tdm_unet_get_config(k.unet), c->dir, st);
    if (!rc) rc = tdm_check_input(c, "sample", &sample, &ts, st);
    if (!rc) rc = tdm_check_input(c, "timestep", &tsteps, &tt, st);
    if (!rc) rc = tdm_check_input(c, "encoder_hidden_states", &ctx, &tc, st);
    if (!rc) rc = tdm_check_input(c, "controlnet_cond", &cond, &tcond, st);
    if (rc) goto done;
    const tdm_controlnet_config *cc = tdm_controlnet_get_config(k.cn);
    if (ts.ndim != 4 || tt.ndim != 1 || tt.shape[0] != ts.shape[0] || tc.ndim != 3 || tc.shape[0] != ts.shape[0] ||
        tcond.ndim != 4 || tcond.shape[1] != cc->conditioning_channels ||
        (tcond.shape[0] != 1 && tcond.shape[0] != ts.shape[0])) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: input shapes do not fit the model", c->dir);
        goto done;
    }
    k.in.B = (int)ts.shape[0];
    k.in.H = (int)ts.shape[2];
    k.in.W = (int)ts.shape[3];
    k.in.sample = sample;
    k.in.timesteps = tsteps;
    k.in.context = ctx;
    k.in.context_len = (int)tc.shape[1];

    const tdm_unet_config *uc = tdm_unet_get_config(k.unet);
    const int64_t out_n = (int64_t)k.in.B * uc->out_channels * k.in.H * k.in.W;
    const int64_t C0 = cc->unet.block_out_channels[0];
    const int f = 1 << (cc->n_cond_levels - 1);
    if (tcond.shape[2] != (int64_t)k.in.H * f || tcond.shape[3] != (int64_t)k.in.W * f) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: controlnet_cond is not %dx the latent size", c->dir, f);
        goto done;
    }
    out = malloc((size_t)out_n * sizeof(float)); /* [B, Cout, H, W] */
    k.cond_emb = malloc((size_t)(tcond.shape[0] * C0 * k.in.H * k.in.W) * sizeof(float)); /* [Bc, C0, H, W] */
    if (!out || !k.cond_emb) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (tcond.shape[0] != 1) {
        rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: per-sample conditioning images are not checked", c->dir);
        goto done;
    }
    rc = tdm_controlnet_embed_cond(k.cn, &c->ex, &k.arena, cond, 1, (int)tcond.shape[2], (int)tcond.shape[3],
                                   k.cond_emb, st);
    if (rc) goto done;

    if (tdm_st_find(&c->io, "noise_pred_nocontrol")) {
        rc = tdm_unet_forward(k.unet, &c->ex, &k.arena, &k.in, out, st);
        if (!rc) rc = tdm_check_compare(c, "noise_pred_nocontrol", out, out_n, st);
        if (rc) goto done;
    }
    /* every "cs*" prefix the outputs name, in case.json order, each once */
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(c->case_json, "outputs");
    const cJSON *o;
    char done_prefixes[16][32];
    int n_done = 0;
    cJSON_ArrayForEach(o, outs) {
        const char *name = o->string;
        const char *dot = name ? strchr(name, '.') : NULL;
        if (!dot || (size_t)(dot - name) >= sizeof done_prefixes[0]) continue;
        char prefix[32];
        memcpy(prefix, name, (size_t)(dot - name));
        prefix[dot - name] = '\0';
        float scale;
        if (!parse_scale(prefix, &scale)) continue;
        int seen = 0;
        for (int i = 0; i < n_done; i++) seen |= strcmp(done_prefixes[i], prefix) == 0;
        if (seen || n_done >= 16) continue;
        snprintf(done_prefixes[n_done++], sizeof done_prefixes[0], "%s", prefix);
        rc = run_scale(&k, prefix, scale, st);
        if (rc) goto done;
    }
done:
    free(sample);
    free(tsteps);
    free(ctx);
    free(cond);
    free(out);
    free(k.cond_emb);
    tdm_arena_free(&k.arena);
    tdm_controlnet_free(k.cn);
    tdm_unet_free(k.unet);
    return rc;
}
