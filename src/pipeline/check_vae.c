/* `tandem check` handler for kind "autoencoder_kl": encodes `image` (-> mean, logvar, moments) and
 * decodes `latent` (-> decoded) with the diffusers folder weights (case.json "model", default model/),
 * comparing the inter.* intermediates too; then loads model-single-file/model.safetensors (LDM names,
 * prefix "first_stage_model.") twice - config inferred from the shapes (norm_num_groups, which shapes
 * cannot tell, taken from config.json) and config.json - and requires outputs identical to model/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "models/vae.h"
#include "pipeline/check.h"

#define MAX_INTER 64

/* Debug hook: gathers each intermediate over the batch, compares "inter.<name>" when the fixture
 * stores it once the last image is done. */
typedef struct inter_ctx {
    tdm_check *c;
    int64_t B;
    struct {
        char name[128];
        float *data; /* [B, C, H, W] */
    } e[MAX_INTER];
    int n;
} inter_ctx;

static void on_inter(void *user, const char *name, int64_t b, const float *x, int64_t C, int64_t H, int64_t W) {
    inter_ctx *ic = user;
    char full[128];
    snprintf(full, sizeof full, "inter.%s", name);
    if (!tdm_st_find(&ic->c->io, full)) return;
    const int64_t n = C * H * W;
    int i = 0;
    while (i < ic->n && strcmp(ic->e[i].name, full) != 0) i++;
    if (i == ic->n) {
        if (ic->n == MAX_INTER) return;
        snprintf(ic->e[i].name, sizeof ic->e[i].name, "%s", full);
        ic->e[i].data = malloc((size_t)(ic->B * n) * sizeof(float));
        if (!ic->e[i].data) return;
        ic->n++;
    }
    if (!ic->e[i].data) return;
    memcpy(ic->e[i].data + b * n, x, (size_t)n * sizeof(float));
    if (b == ic->B - 1) {
        tdm_status st2;
        tdm_status_clear(&st2);
        if (tdm_check_compare(ic->c, full, ic->e[i].data, ic->B * n, &st2)) {
            ic->c->n_fail++;
            tdm_check_line(ic->c, "FAIL %-48s %s", full, st2.msg);
        }
        free(ic->e[i].data);
        ic->e[i].data = NULL;
    }
}

static void inter_free(inter_ctx *ic) {
    for (int i = 0; i < ic->n; i++) free(ic->e[i].data);
    ic->n = 0;
}

typedef struct vae_outputs {
    float *mean, *logvar, *moments; /* [B, L, h, w], [B, L, h, w], [B, 2L, h, w] */
    float *decoded;                 /* [B, out, H, W] */
    int64_t n_lat, n_dec;           /* element counts of mean and decoded */
} vae_outputs;

static void outputs_free(vae_outputs *o) {
    free(o->mean);
    free(o->logvar);
    free(o->moments);
    free(o->decoded);
    memset(o, 0, sizeof *o);
}

/* Runs encode(image) and decode(latent); outputs malloc'ed into *o. */
static tdm_code run_vae(tdm_check *c, const tdm_vae *vae, const float *image, const tdm_tensor *ti,
                        const float *latent, const tdm_tensor *tl, vae_outputs *o, tdm_status *st) {
    memset(o, 0, sizeof *o);
    const int s = tdm_vae_latent_scale(&vae->cfg);
    if (ti->ndim != 4 || ti->shape[1] != vae->cfg.in_channels)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: image must be [B, %d, H, W]", c->dir, vae->cfg.in_channels);
    if (tl->ndim != 4 || tl->shape[1] != vae->cfg.latent_channels)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: latent must be [B, %d, h, w]", c->dir, vae->cfg.latent_channels);
    const int64_t B = ti->shape[0], H = ti->shape[2], W = ti->shape[3], L = vae->cfg.latent_channels;
    const int64_t Bl = tl->shape[0], h = tl->shape[2], w = tl->shape[3];
    o->n_lat = B * L * (H / s) * (W / s);
    o->n_dec = Bl * vae->cfg.out_channels * (h * s) * (w * s);
    o->mean = malloc((size_t)o->n_lat * sizeof(float));
    o->logvar = malloc((size_t)o->n_lat * sizeof(float));
    o->moments = malloc((size_t)(2 * o->n_lat) * sizeof(float));
    o->decoded = malloc((size_t)o->n_dec * sizeof(float));
    if (!o->mean || !o->logvar || !o->moments || !o->decoded) {
        outputs_free(o);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", c->dir);
    }
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    tdm_code rc = tdm_vae_encode(vae, &c->ex, &arena, image, B, H, W, o->mean, o->logvar, o->moments, st);
    if (!rc) rc = tdm_vae_decode(vae, &c->ex, &arena, latent, Bl, h, w, o->decoded, st);
    tdm_arena_free(&arena);
    if (rc) outputs_free(o);
    return rc;
}

static void same_outputs(tdm_check *c, const char *label, const vae_outputs *a, const vae_outputs *b) {
    char name[128];
    snprintf(name, sizeof name, "%s: mean, logvar, moments", label);
    int ok = a->n_lat == b->n_lat && !memcmp(a->mean, b->mean, (size_t)a->n_lat * sizeof(float)) &&
             !memcmp(a->logvar, b->logvar, (size_t)a->n_lat * sizeof(float)) &&
             !memcmp(a->moments, b->moments, (size_t)(2 * a->n_lat) * sizeof(float));
    tdm_check_exact(c, name, ok, ok ? "identical to model/" : "differ from model/");
    snprintf(name, sizeof name, "%s: decoded", label);
    ok = a->n_dec == b->n_dec && !memcmp(a->decoded, b->decoded, (size_t)a->n_dec * sizeof(float));
    tdm_check_exact(c, name, ok, ok ? "identical to model/" : "differs from model/");
}

static int config_equal(const tdm_vae_config *a, const tdm_vae_config *b) {
    if (a->in_channels != b->in_channels || a->out_channels != b->out_channels ||
        a->latent_channels != b->latent_channels || a->n_levels != b->n_levels ||
        a->layers_per_block != b->layers_per_block || a->norm_num_groups != b->norm_num_groups ||
        a->mid_block_add_attention != b->mid_block_add_attention || a->use_quant_conv != b->use_quant_conv ||
        a->use_post_quant_conv != b->use_post_quant_conv)
        return 0;
    for (int i = 0; i < a->n_levels; i++)
        if (a->block_out_channels[i] != b->block_out_channels[i]) return 0;
    return 1;
}

/* model-single-file: inferred config and config.json; outputs must equal model/'s. */
static tdm_code check_single_file(tdm_check *c, const tdm_vae_config *cfg, const float *image, const tdm_tensor *ti,
                                  const float *latent, const tdm_tensor *tl, const vae_outputs *ref, tdm_status *st) {
    char path[4096];
    tdm_check_path(c, "model-single-file/model.safetensors", path, sizeof path);
    if (access(path, F_OK) != 0) return TDM_OK;
    for (int variant = 0; variant < 2; variant++) {
        tdm_vae_config use;
        memset(&use, 0, sizeof use);
        if (variant == 0) { /* inferred: what shapes cannot tell comes from config.json */
            use.norm_num_groups = cfg->norm_num_groups;
            use.scaling_factor = cfg->scaling_factor;
            use.sample_size = cfg->sample_size;
            tdm_safetensors f;
            TDM_TRY(tdm_st_open(&f, path, st));
            tdm_code rc = tdm_vae_config_infer(&f, "first_stage_model.", &use, st);
            tdm_st_close(&f);
            TDM_TRY(rc);
            int ok = config_equal(&use, cfg);
            tdm_check_exact(c, "single_file: inferred config", ok,
                            ok ? "equals config.json" : "differs from config.json");
        } else {
            use = *cfg;
        }
        tdm_vae *vae;
        TDM_TRY(tdm_vae_load_single_file(&vae, path, "first_stage_model.", &use, st));
        vae_outputs o;
        tdm_code rc = run_vae(c, vae, image, ti, latent, tl, &o, st);
        tdm_vae_free(vae);
        TDM_TRY(rc);
        same_outputs(c, variant == 0 ? "single_file (inferred config)" : "single_file (config.json)", &o, ref);
        outputs_free(&o);
    }
    return TDM_OK;
}

tdm_code tdm_check_vae(tdm_check *c, tdm_status *st) {
    char model_rel[256], path[4096];
    TDM_TRY(tdm_json_str(c->case_json, "model", "case.json", 1, "model", model_rel, sizeof model_rel, st));
    tdm_check_path(c, model_rel, path, sizeof path);
    tdm_vae *vae;
    TDM_TRY(tdm_vae_load_dir(&vae, path, st));
    float *image = NULL, *latent = NULL;
    tdm_tensor ti, tl;
    vae_outputs o;
    memset(&o, 0, sizeof o);
    inter_ctx *ic = calloc(1, sizeof *ic);
    tdm_code rc = ic ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc) rc = tdm_check_input(c, "image", &image, &ti, st);
    if (!rc) rc = tdm_check_input(c, "latent", &latent, &tl, st);
    if (!rc) {
        ic->c = c;
        ic->B = ti.shape[0]; /* encode and decode batches are checked against it in on_inter's buffers */
        if (tl.ndim == 4 && tl.shape[0] != ti.shape[0])
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: image and latent batch sizes differ", c->dir);
    }
    if (!rc) {
        tdm_vae_set_debug(vae, on_inter, ic);
        rc = run_vae(c, vae, image, &ti, latent, &tl, &o, st);
        tdm_vae_set_debug(vae, NULL, NULL);
    }
    if (!rc) rc = tdm_check_compare(c, "mean", o.mean, o.n_lat, st);
    if (!rc) rc = tdm_check_compare(c, "logvar", o.logvar, o.n_lat, st);
    if (!rc && tdm_st_find(&c->io, "moments")) rc = tdm_check_compare(c, "moments", o.moments, 2 * o.n_lat, st);
    if (!rc) rc = tdm_check_compare(c, "decoded", o.decoded, o.n_dec, st);
    if (!rc) rc = check_single_file(c, &vae->cfg, image, &ti, latent, &tl, &o, st);
    outputs_free(&o);
    if (ic) inter_free(ic);
    free(ic);
    free(image);
    free(latent);
    tdm_vae_free(vae);
    return rc;
}
