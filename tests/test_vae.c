/* AutoencoderKL: the vae-sd-tiny fixture through `tandem check` (skipped when absent), then a synthetic
 * 2-level VAE (latent scale 2) written both with diffusers and with LDM names: identical outputs,
 * reference vs fast kernels, batch consistency, error messages naming the tensor / field, RGB8. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "tandem.h"
#include "check_util.h"
#include "test_util.h"

/* ---- synthetic weights ----------------------------------------------------------------------- */

#define MAX_T 256

typedef struct wlist {
    int n;
    char name[MAX_T][128];
    tdm_tensor t[MAX_T];
    float *data[MAX_T];
    uint64_t rng;
    int ldm; /* LDM single-file names instead of diffusers names */
} wlist;

static float urand(wlist *w) { /* uniform [-1, 1) */
    w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((w->rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

/* fan_in scales weights; kind 0 weight, 1 bias, 2 norm gamma */
static void add(wlist *w, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int kind) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    int64_t n = 1, fan = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int i = 1; i < ndim; i++) fan *= shape[i];
    float *d = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float u = urand(w);
        d[i] = kind == 0 ? u / sqrtf((float)fan) : kind == 1 ? 0.1f * u : 1.0f + 0.1f * u;
    }
    snprintf(w->name[w->n], sizeof w->name[0], "%s", name);
    w->t[w->n] = tdm_tensor_view(TDM_F32, d, ndim, shape);
    w->data[w->n] = d;
    w->n++;
}

static void add_conv(wlist *w, const char *p, int64_t cout, int64_t cin, int64_t k) {
    char n[256];
    snprintf(n, sizeof n, "%.200s.weight", p);
    add(w, n, 4, cout, cin, k, k, 0);
    snprintf(n, sizeof n, "%.200s.bias", p);
    add(w, n, 1, cout, 0, 0, 0, 1);
}

static void add_norm(wlist *w, const char *p, int64_t c) {
    char n[256];
    snprintf(n, sizeof n, "%.200s.weight", p);
    add(w, n, 1, c, 0, 0, 0, 2);
    snprintf(n, sizeof n, "%.200s.bias", p);
    add(w, n, 1, c, 0, 0, 0, 1);
}

static void add_linear(wlist *w, const char *p, int64_t c) {
    char n[256];
    snprintf(n, sizeof n, "%.200s.weight", p);
    if (w->ldm) add(w, n, 4, c, c, 1, 1, 0); /* LDM stores 1x1 conv kernels */
    else add(w, n, 2, c, c, 0, 0, 0);
    snprintf(n, sizeof n, "%.200s.bias", p);
    add(w, n, 1, c, 0, 0, 0, 1);
}

static void add_resnet(wlist *w, const char *p, int cin, int cout) {
    char n[256];
    snprintf(n, sizeof n, "%.200s.norm1", p);
    add_norm(w, n, cin);
    snprintf(n, sizeof n, "%.200s.conv1", p);
    add_conv(w, n, cout, cin, 3);
    snprintf(n, sizeof n, "%.200s.norm2", p);
    add_norm(w, n, cout);
    snprintf(n, sizeof n, "%.200s.conv2", p);
    add_conv(w, n, cout, cout, 3);
    if (cin != cout) {
        snprintf(n, sizeof n, "%.200s.%s", p, w->ldm ? "nin_shortcut" : "conv_shortcut");
        add_conv(w, n, cout, cin, 1);
    }
}

static void add_mid(wlist *w, const char *half, int c) {
    char n[256];
    for (int k = 0; k < 2; k++) {
        if (w->ldm) snprintf(n, sizeof n, "%s.mid.block_%d", half, k + 1);
        else snprintf(n, sizeof n, "%s.mid_block.resnets.%d", half, k);
        add_resnet(w, n, c, c);
    }
    static const char *const dn[5] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    static const char *const ln[5] = {"norm", "q", "k", "v", "proj_out"};
    for (int i = 0; i < 5; i++) {
        if (w->ldm) snprintf(n, sizeof n, "%s.mid.attn_1.%s", half, ln[i]);
        else snprintf(n, sizeof n, "%s.mid_block.attentions.0.%s", half, dn[i]);
        if (i == 0) add_norm(w, n, c);
        else add_linear(w, n, c);
    }
}

/* Every tensor of the VAE described by cfg, in a fixed order (same values for both namings). */
static void make_vae(wlist *w, const tdm_vae_config *c, int ldm, uint64_t seed) {
    memset(w, 0, sizeof *w);
    w->rng = seed;
    w->ldm = ldm;
    const int n = c->n_levels, *bo = c->block_out_channels, L = c->latent_channels;
    char p[256];
    add_conv(w, "encoder.conv_in", bo[0], c->in_channels, 3);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < c->layers_per_block; j++) {
            if (ldm) snprintf(p, sizeof p, "encoder.down.%d.block.%d", i, j);
            else snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            add_resnet(w, p, j == 0 ? (i ? bo[i - 1] : bo[0]) : bo[i], bo[i]);
        }
        if (i < n - 1) {
            if (ldm) snprintf(p, sizeof p, "encoder.down.%d.downsample.conv", i);
            else snprintf(p, sizeof p, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            add_conv(w, p, bo[i], bo[i], 3);
        }
    }
    add_mid(w, "encoder", bo[n - 1]);
    add_norm(w, ldm ? "encoder.norm_out" : "encoder.conv_norm_out", bo[n - 1]);
    add_conv(w, "encoder.conv_out", 2 * L, bo[n - 1], 3);
    add_conv(w, "decoder.conv_in", bo[n - 1], L, 3);
    add_mid(w, "decoder", bo[n - 1]);
    for (int i = 0; i < n; i++) {
        int out = bo[n - 1 - i], prev = i == 0 ? bo[n - 1] : bo[n - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            if (ldm) snprintf(p, sizeof p, "decoder.up.%d.block.%d", n - 1 - i, j);
            else snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            add_resnet(w, p, j == 0 ? prev : out, out);
        }
        if (i < n - 1) {
            if (ldm) snprintf(p, sizeof p, "decoder.up.%d.upsample.conv", n - 1 - i);
            else snprintf(p, sizeof p, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            add_conv(w, p, out, out, 3);
        }
    }
    add_norm(w, ldm ? "decoder.norm_out" : "decoder.conv_norm_out", bo[0]);
    add_conv(w, "decoder.conv_out", c->out_channels, bo[0], 3);
    add_conv(w, "quant_conv", 2 * L, 2 * L, 1);
    add_conv(w, "post_quant_conv", L, L, 1);
}

static void wlist_free(wlist *w) {
    for (int i = 0; i < w->n; i++) free(w->data[i]);
    w->n = 0;
}

/* Writes w (names prefixed) to path; skip: a name to leave out (NULL: none). */
static void write_w(const wlist *w, const char *path, const char *prefix, const char *skip) {
    const char *names[MAX_T + 1];
    tdm_tensor ts[MAX_T + 1];
    static char buf[MAX_T][200];
    int k = 0;
    for (int i = 0; i < w->n; i++) {
        if (skip && !strcmp(w->name[i], skip)) continue;
        snprintf(buf[k], sizeof buf[k], "%s%s", prefix, w->name[i]);
        names[k] = buf[k];
        ts[k] = w->t[i];
        k++;
    }
    tdm_status st;
    tdm_status_clear(&st);
    tdm_code rc = tdm_st_write(path, k, names, ts, &st);
    CHECK_MSG(rc == TDM_OK, "write %s: %s", path, st.msg);
}

static tdm_code load_from(const char *path, const char *prefix, tdm_name_mapper mapper, const tdm_vae_config *cfg,
                          tdm_vae **out, tdm_status *st) {
    tdm_weights ws;
    tdm_weights_init(&ws, "vae");
    tdm_code rc = tdm_weights_add_file(&ws, path, prefix, mapper, (void *)cfg, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    return tdm_vae_load(out, cfg, &ws, st);
}

static void tiny_config(tdm_vae_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 3;
    c->out_channels = 3;
    c->latent_channels = 4;
    c->n_levels = 2;
    c->block_out_channels[0] = 8;
    c->block_out_channels[1] = 16;
    c->layers_per_block = 1;
    c->norm_num_groups = 4;
    c->scaling_factor = 0.18215;
    c->sample_size = 16;
    c->mid_block_add_attention = 1;
    c->use_quant_conv = 1;
    c->use_post_quant_conv = 1;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_fixture(void) {
    int np, nf;
    if (!tdm_test_check_fixture("vae-sd-tiny", &np, &nf)) return;
    CHECK_MSG(nf == 0, "%d comparisons failed", nf);
    CHECK(np >= 20);
}

static double max_diff(const float *a, const float *b, int64_t n) { return tdm_test_max_abs(a, b, (long)n); }

static void test_synthetic(void) {
    const char *tmp = tdm_test_tmpdir();
    char pd[512], pl[512];
    snprintf(pd, sizeof pd, "%s/vae_diffusers.safetensors", tmp);
    snprintf(pl, sizeof pl, "%s/vae_ldm.safetensors", tmp);
    tdm_vae_config cfg;
    tiny_config(&cfg);
    CHECK(tdm_vae_latent_scale(&cfg) == 2);
    wlist *wd = malloc(sizeof *wd), *wl = malloc(sizeof *wl);
    make_vae(wd, &cfg, 0, 42);
    make_vae(wl, &cfg, 1, 42);
    write_w(wd, pd, "", NULL);
    write_w(wl, pl, "first_stage_model.", NULL);

    tdm_status st;
    tdm_status_clear(&st);
    tdm_vae *vd = NULL, *vl = NULL;
    tdm_code rc = load_from(pd, "", NULL, &cfg, &vd, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    rc = tdm_vae_load_single_file(&vl, pl, "first_stage_model.", NULL, &st); /* inferred config, 32 groups */
    CHECK_MSG(rc != TDM_OK, "inferred config should default to 32 groups (16 channels not divisible)");
    tdm_vae_config inf;
    memset(&inf, 0, sizeof inf);
    inf.norm_num_groups = 4;
    tdm_safetensors f;
    rc = tdm_st_open(&f, pl, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (!rc) {
        rc = tdm_vae_config_infer(&f, "first_stage_model.", &inf, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        tdm_st_close(&f);
        CHECK(inf.n_levels == 2 && inf.block_out_channels[0] == 8 && inf.block_out_channels[1] == 16);
        CHECK(inf.layers_per_block == 1 && inf.latent_channels == 4 && inf.in_channels == 3 && inf.out_channels == 3);
        CHECK(inf.norm_num_groups == 4 && inf.mid_block_add_attention && inf.use_quant_conv);
    }
    rc = tdm_vae_load_single_file(&vl, pl, "first_stage_model.", &inf, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (!vd || !vl) goto done;

    /* B = 2 images 16x12 (non-square) -> latents 8x6 */
    const int64_t B = 2, H = 16, W = 12, h = 8, w = 6;
    float img[2 * 3 * 16 * 12], mean[2][2 * 4 * 8 * 6], logv[2][2 * 4 * 8 * 6], mom[2 * 8 * 8 * 6];
    float dec[3][2 * 3 * 16 * 12];
    for (int i = 0; i < 2 * 3 * 16 * 12; i++) img[i] = urand(wd);
    tdm_arena arena;
    tdm_arena_init(&arena, 1 << 20);
    tdm_exec ex = {NULL, 0};
    rc = tdm_vae_encode(vd, &ex, &arena, img, B, H, W, mean[0], logv[0], mom, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    rc = tdm_vae_encode(vl, &ex, &arena, img, B, H, W, mean[1], logv[1], NULL, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(!memcmp(mean[0], mean[1], sizeof mean[0]) && !memcmp(logv[0], logv[1], sizeof logv[0]),
              "LDM-named weights must give identical encodings");
    CHECK(!memcmp(mom, mean[0], 4 * 8 * 6 * sizeof(float))); /* mean = moments[:, :4] of image 0 */
    for (int i = 0; i < 2 * 4 * 8 * 6; i++) CHECK(logv[0][i] >= -30 && logv[0][i] <= 20);
    CHECK(arena.in_use == 0);

    /* decode the means; the second image alone must give the same result (per-image processing) */
    rc = tdm_vae_decode(vd, &ex, &arena, mean[0], B, h, w, dec[0], &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    rc = tdm_vae_decode(vl, &ex, &arena, mean[0], B, h, w, dec[1], &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(!memcmp(dec[0], dec[1], sizeof dec[0]), "LDM-named weights must give identical decodings");
    rc = tdm_vae_decode(vd, &ex, &arena, mean[0] + 4 * 8 * 6, 1, h, w, dec[2], &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(!memcmp(dec[2], dec[0] + 3 * 16 * 12, 3 * 16 * 12 * sizeof(float)));

    /* reference kernels agree with the fast ones */
    tdm_exec exr = {NULL, 1};
    rc = tdm_vae_encode(vd, &exr, &arena, img, B, H, W, mean[1], logv[1], NULL, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(max_diff(mean[0], mean[1], 2 * 4 * 8 * 6) < 1e-4, "encode ref vs fast %g",
              max_diff(mean[0], mean[1], 2 * 4 * 8 * 6));
    rc = tdm_vae_decode(vd, &exr, &arena, mean[0], B, h, w, dec[1], &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(max_diff(dec[0], dec[1], 2 * 3 * 16 * 12) < 1e-4, "decode ref vs fast %g",
              max_diff(dec[0], dec[1], 2 * 3 * 16 * 12));

    /* image size not a multiple of the latent scale */
    rc = tdm_vae_encode(vd, &ex, &arena, img, 1, 15, 12, mean[1], logv[1], NULL, &st);
    CHECK(rc == TDM_ERR_INVALID_ARG);
    tdm_arena_free(&arena);

    /* missing tensor: named */
    write_w(wd, pd, "", "decoder.mid_block.attentions.0.to_q.weight");
    tdm_vae *bad = NULL;
    rc = load_from(pd, "", NULL, &cfg, &bad, &st);
    CHECK(rc == TDM_ERR_MISSING && bad == NULL);
    CHECK_MSG(strstr(st.msg, "decoder.mid_block.attentions.0.to_q.weight") != NULL, "%s", st.msg);
    /* wrong shape: named (config says 8 channels at level 0, weights have 16) */
    write_w(wd, pd, "", NULL);
    tdm_vae_config wrong = cfg;
    wrong.block_out_channels[0] = 16;
    rc = load_from(pd, "", NULL, &wrong, &bad, &st);
    CHECK(rc == TDM_ERR_FORMAT);
    CHECK_MSG(strstr(st.msg, "encoder.conv_in.weight") != NULL && strstr(st.msg, "[8, 3, 3, 3]") != NULL, "%s",
              st.msg);
    /* a tensor the model does not use */
    wrong = cfg;
    wrong.use_quant_conv = 0;
    rc = load_from(pd, "", NULL, &wrong, &bad, &st);
    CHECK(rc == TDM_ERR_FORMAT);
    CHECK_MSG(strstr(st.msg, "quant_conv") != NULL, "%s", st.msg);
    /* unknown LDM name: named */
    tdm_weights ws;
    tdm_weights_init(&ws, "vae");
    tdm_tensor t1 = wd->t[0];
    rc = tdm_vae_ldm_mapper(&ws, "encoder.mid.attn_2.q.weight", &t1, &cfg, &st);
    CHECK(rc == TDM_ERR_FORMAT);
    CHECK_MSG(strstr(st.msg, "encoder.mid.attn_2.q.weight") != NULL, "%s", st.msg);
    tdm_weights_free(&ws);

done:
    tdm_vae_free(vd);
    tdm_vae_free(vl);
    wlist_free(wd);
    wlist_free(wl);
    free(wd);
    free(wl);
}

static tdm_code config_from(const char *json, tdm_vae_config *cfg, tdm_status *st) {
    cJSON *j = cJSON_Parse(json);
    if (!j) return tdm_fail(st, TDM_ERR_FORMAT, "bad test json");
    tdm_code rc = tdm_vae_config_from_json(j, "config.json", cfg, st);
    cJSON_Delete(j);
    return rc;
}

static void test_config(void) {
    tdm_vae_config cfg;
    tdm_status st;
    tdm_status_clear(&st);
    tdm_code rc = config_from("{\"block_out_channels\": [16, 32, 32], \"norm_num_groups\": 8, \"layers_per_block\": 2,"
                              " \"shift_factor\": null, \"force_upcast\": true}",
                              &cfg, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(cfg.n_levels == 3 && tdm_vae_latent_scale(&cfg) == 4 && cfg.latent_channels == 4);
    CHECK(!cfg.has_shift_factor && cfg.scaling_factor == 0.18215 && cfg.in_channels == 3);
    rc = config_from("{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"shift_factor\": 0.0609,"
                     " \"scaling_factor\": 1.5305}",
                     &cfg, &st);
    CHECK(rc == TDM_OK && cfg.has_shift_factor && cfg.shift_factor == 0.0609 && cfg.scaling_factor == 1.5305);

    struct {
        const char *json, *field;
    } bad[] = {
        {"{\"norm_num_groups\": 8}", "block_out_channels"},
        {"{\"block_out_channels\": [12, 32], \"norm_num_groups\": 8}", "block_out_channels"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"layers_per_block\": 0}", "layers_per_block"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"latent_channels\": \"4\"}", "latent_channels"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"act_fn\": \"relu\"}", "act_fn"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16, 16],"
         " \"down_block_types\": [\"DownEncoderBlock2D\"]}",
         "down_block_types"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"up_block_types\": [\"AttnUpDecoderBlock2D\"]}",
         "up_block_types"},
        {"{\"norm_num_groups\": 8, \"block_out_channels\": [16], \"scaling_factor\": -1}", "scaling_factor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = config_from(bad[i].json, &cfg, &st);
        CHECK_MSG(rc != TDM_OK && strstr(st.msg, bad[i].field) != NULL, "case %zu: '%s'", i, st.msg);
    }
}

static void test_rgb8(void) {
    /* 1 image, 3 channels, 1x4 pixels: -1 -> 0, 1 -> 255, 0 -> 127.5 -> 128 (half to even), NaN -> 0 */
    const float img[12] = {-1, 1, 0, NAN, 2, -2, 0.2f, 1, 0, 0, 0, 0};
    uint8_t rgb[12];
    tdm_vae_to_rgb8(img, 1, 1, 4, rgb);
    CHECK(rgb[0] == 0 && rgb[3] == 255 && rgb[6] == 128 && rgb[9] == 0);   /* R of pixels 0..3 */
    CHECK(rgb[1] == 255 && rgb[4] == 0 && rgb[7] == 153 && rgb[10] == 255); /* G: 2, -2, 0.2 (0.6*255=153), 1 */
}

int main(void) {
    test_config();
    test_rgb8();
    test_synthetic();
    test_fixture();
    return tdm_test_result();
}
