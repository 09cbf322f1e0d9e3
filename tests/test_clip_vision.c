/* CLIP vision tower and CLIP-based scores: the clip-vision-tiny fixture through `tandem check` (skipped
 * when absent); a synthetic tower written with transformers names and with OpenCLIP names (identical
 * outputs, reference vs fast kernels); CLIPImageProcessor sizes and errors (1x1 image, 16385-wide image,
 * bad preprocessor field); the LAION aesthetic head against a scalar double-precision MLP; the score
 * formulas; the oracles (clipscore, pickscore, hpsv2, aesthetic) end to end on a tiny CLIPModel with the
 * real CLIP tokenizer (skipped without the tokenizer-clip fixture); error messages naming the tensor or
 * field at fault. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/clip_scores.h"
#include "models/clip_vision.h"
#include "tandem.h"
#include "test_util.h"
#include "wfile_util.h"

enum { C = 8, NL = 2, I = 16, S = 16, PATCH = 8, T = (S / PATCH) * (S / PATCH) + 1, P = 6, VOCAB = 49408 };

typedef tdm_test_wfile wfile;

static uint64_t rng = 11;
static float urand(void) { return tdm_test_urand(&rng); }

/* Adds a tensor; data NULL: random (kind 0 weight, 1 bias, 2 norm gamma), else copied. */
static float *add(wfile *w, const char *name, int ndim, const int64_t *shape, int kind, const float *data) {
    return tdm_test_wfile_add(w, &rng, name, ndim, shape, kind, 0.5f, data);
}
static float *add1(wfile *w, const char *name, int64_t d0, int kind, const float *data) {
    const int64_t s[1] = {d0};
    return add(w, name, 1, s, kind, data);
}
static float *add2(wfile *w, const char *name, int64_t d0, int64_t d1, int kind, const float *data) {
    const int64_t s[2] = {d0, d1};
    return add(w, name, 2, s, kind, data);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Vision tower: hf (transformers names) and oc (OpenCLIP names, "visual." prefix) with the same values. */
static void make_vision(wfile *hf, wfile *oc) {
    char n[160], m[160];
    const int64_t pw[4] = {C, 3, PATCH, PATCH};
    float *d = add(hf, "vision_model.embeddings.patch_embedding.weight", 4, pw, 0, NULL);
    add(oc, "visual.conv1.weight", 4, pw, 0, d);
    d = add1(hf, "vision_model.embeddings.class_embedding", C, 0, NULL);
    add1(oc, "visual.class_embedding", C, 0, d);
    d = add2(hf, "vision_model.embeddings.position_embedding.weight", T, C, 0, NULL);
    add2(oc, "visual.positional_embedding", T, C, 0, d);
    const int64_t pid[2] = {1, T};
    add(hf, "vision_model.embeddings.position_ids", 2, pid, 0, NULL); /* dropped by the mapper (F32 here) */
    static const char *const wb[2] = {"weight", "bias"};
    for (int j = 0; j < 2; j++) {
        snprintf(n, sizeof n, "vision_model.pre_layrnorm.%s", wb[j]);
        d = add1(hf, n, C, j == 0 ? 2 : 1, NULL);
        snprintf(n, sizeof n, "visual.ln_pre.%s", wb[j]);
        add1(oc, n, C, 0, d);
        snprintf(n, sizeof n, "vision_model.post_layernorm.%s", wb[j]);
        d = add1(hf, n, C, j == 0 ? 2 : 1, NULL);
        snprintf(n, sizeof n, "visual.ln_post.%s", wb[j]);
        add1(oc, n, C, 0, d);
    }
    for (int l = 0; l < NL; l++) {
        float inw[3 * C * C], inb[3 * C];
        static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
        for (int j = 0; j < 3; j++) {
            snprintf(n, sizeof n, "vision_model.encoder.layers.%d.self_attn.%s.weight", l, qkv[j]);
            d = add2(hf, n, C, C, 0, NULL);
            memcpy(inw + j * C * C, d, C * C * sizeof(float));
            snprintf(n, sizeof n, "vision_model.encoder.layers.%d.self_attn.%s.bias", l, qkv[j]);
            d = add1(hf, n, C, 1, NULL);
            memcpy(inb + j * C, d, C * sizeof(float));
        }
        snprintf(n, sizeof n, "visual.transformer.resblocks.%d.attn.in_proj_weight", l);
        add2(oc, n, 3 * C, C, 0, inw);
        snprintf(n, sizeof n, "visual.transformer.resblocks.%d.attn.in_proj_bias", l);
        add1(oc, n, 3 * C, 0, inb);
        static const struct {
            const char *hf, *oc;
            int64_t d0, d1;
            int kind;
        } rest[] = {
            {"layer_norm1.weight", "ln_1.weight", C, 0, 2},  {"layer_norm1.bias", "ln_1.bias", C, 0, 1},
            {"self_attn.out_proj.weight", "attn.out_proj.weight", C, C, 0},
            {"self_attn.out_proj.bias", "attn.out_proj.bias", C, 0, 1},
            {"layer_norm2.weight", "ln_2.weight", C, 0, 2},  {"layer_norm2.bias", "ln_2.bias", C, 0, 1},
            {"mlp.fc1.weight", "mlp.c_fc.weight", I, C, 0},  {"mlp.fc1.bias", "mlp.c_fc.bias", I, 0, 1},
            {"mlp.fc2.weight", "mlp.c_proj.weight", C, I, 0}, {"mlp.fc2.bias", "mlp.c_proj.bias", C, 0, 1},
        };
        for (size_t j = 0; j < sizeof rest / sizeof rest[0]; j++) {
            snprintf(n, sizeof n, "vision_model.encoder.layers.%d.%s", l, rest[j].hf);
            snprintf(m, sizeof m, "visual.transformer.resblocks.%d.%s", l, rest[j].oc);
            if (rest[j].d1) {
                d = add2(hf, n, rest[j].d0, rest[j].d1, rest[j].kind, NULL);
                add2(oc, m, rest[j].d0, rest[j].d1, 0, d);
            } else {
                d = add1(hf, n, rest[j].d0, rest[j].kind, NULL);
                add1(oc, m, rest[j].d0, 0, d);
            }
        }
    }
    d = add2(hf, "visual_projection.weight", P, C, 0, NULL); /* [P, C]; OpenCLIP proj is [C, P] */
    float tr[C * P];
    for (int p = 0; p < P; p++)
        for (int c = 0; c < C; c++) tr[c * P + p] = d[p * C + c];
    add2(oc, "visual.proj", C, P, 0, tr);
}

/* Text tower (+ projection) with both namings, 1 layer, 77 positions, full vocabulary. */
static void make_text(wfile *hf, wfile *oc) {
    float *d = add2(hf, "text_model.embeddings.token_embedding.weight", VOCAB, C, 0, NULL);
    add2(oc, "token_embedding.weight", VOCAB, C, 0, d);
    d = add2(hf, "text_model.embeddings.position_embedding.weight", 77, C, 0, NULL);
    add2(oc, "positional_embedding", 77, C, 0, d);
    float inw[3 * C * C], inb[3 * C];
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    for (int j = 0; j < 3; j++) {
        char n[128];
        snprintf(n, sizeof n, "text_model.encoder.layers.0.self_attn.%s.weight", qkv[j]);
        d = add2(hf, n, C, C, 0, NULL);
        memcpy(inw + j * C * C, d, sizeof(float) * C * C);
        snprintf(n, sizeof n, "text_model.encoder.layers.0.self_attn.%s.bias", qkv[j]);
        d = add1(hf, n, C, 1, NULL);
        memcpy(inb + j * C, d, sizeof(float) * C);
    }
    add2(oc, "transformer.resblocks.0.attn.in_proj_weight", 3 * C, C, 0, inw);
    add1(oc, "transformer.resblocks.0.attn.in_proj_bias", 3 * C, 0, inb);
    static const struct {
        const char *hf, *oc;
        int64_t d0, d1;
        int kind;
    } rest[] = {
        {"encoder.layers.0.layer_norm1.weight", "transformer.resblocks.0.ln_1.weight", C, 0, 2},
        {"encoder.layers.0.layer_norm1.bias", "transformer.resblocks.0.ln_1.bias", C, 0, 1},
        {"encoder.layers.0.self_attn.out_proj.weight", "transformer.resblocks.0.attn.out_proj.weight", C, C, 0},
        {"encoder.layers.0.self_attn.out_proj.bias", "transformer.resblocks.0.attn.out_proj.bias", C, 0, 1},
        {"encoder.layers.0.layer_norm2.weight", "transformer.resblocks.0.ln_2.weight", C, 0, 2},
        {"encoder.layers.0.layer_norm2.bias", "transformer.resblocks.0.ln_2.bias", C, 0, 1},
        {"encoder.layers.0.mlp.fc1.weight", "transformer.resblocks.0.mlp.c_fc.weight", I, C, 0},
        {"encoder.layers.0.mlp.fc1.bias", "transformer.resblocks.0.mlp.c_fc.bias", I, 0, 1},
        {"encoder.layers.0.mlp.fc2.weight", "transformer.resblocks.0.mlp.c_proj.weight", C, I, 0},
        {"encoder.layers.0.mlp.fc2.bias", "transformer.resblocks.0.mlp.c_proj.bias", C, 0, 1},
        {"final_layer_norm.weight", "ln_final.weight", C, 0, 2},
        {"final_layer_norm.bias", "ln_final.bias", C, 0, 1},
    };
    for (size_t j = 0; j < sizeof rest / sizeof rest[0]; j++) {
        char n[160];
        snprintf(n, sizeof n, "text_model.%s", rest[j].hf);
        if (rest[j].d1) {
            d = add2(hf, n, rest[j].d0, rest[j].d1, rest[j].kind, NULL);
            add2(oc, rest[j].oc, rest[j].d0, rest[j].d1, 0, d);
        } else {
            d = add1(hf, n, rest[j].d0, rest[j].kind, NULL);
            add1(oc, rest[j].oc, rest[j].d0, 0, d);
        }
    }
    d = add2(hf, "text_projection.weight", P, C, 0, NULL);
    float tr[C * P];
    for (int p = 0; p < P; p++)
        for (int c = 0; c < C; c++) tr[c * P + p] = d[p * C + c];
    add2(oc, "text_projection", C, P, 0, tr);
    const float ls = logf(30.0f);
    add1(hf, "logit_scale", 1, 0, &ls);
    add1(oc, "logit_scale", 1, 0, &ls);
}

static const char *vision_config =
    "{\"architectures\": [\"CLIPVisionModelWithProjection\"], \"hidden_size\": 8, \"intermediate_size\": 16,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 1, \"image_size\": 16, \"patch_size\": 8,"
    " \"projection_dim\": 6, \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-05}";

static tdm_status st;

static void random_pixels(float *px, int n) {
    for (int i = 0; i < n; i++) px[i] = 1.5f * urand();
}

/* ---- the fixture ----------------------------------------------------------------------------- */

static void quiet(void *user, const char *line) {
    (void)user;
    if (getenv("TDM_TEST_VERBOSE") || !strncmp(line, "FAIL", 4)) printf("%s\n", line);
}

static void test_fixture(void) {
    const char *dir = tdm_test_fixture("clip-vision-tiny");
    if (!dir) {
        printf("note: fixture clip-vision-tiny absent, skipped\n");
        return;
    }
    int np = 0, nf = 0;
    tdm_status_clear(&st);
    tdm_code rc = tdm_check_fixture(dir, 2, quiet, NULL, &np, &nf, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(nf == 0 && np >= 16, "%d passed, %d failed", np, nf);
}

/* ---- synthetic tower: both namings, kernels ---------------------------------------------------- */

static void test_synthetic(void) {
    const char *tmp = tdm_test_tmpdir();
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/vision", tmp);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    wfile hf, oc;
    memset(&hf, 0, sizeof hf);
    memset(&oc, 0, sizeof oc);
    make_vision(&hf, &oc);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tdm_test_wfile_write(&hf, path, NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, vision_config);
    char ocpath[1200];
    snprintf(ocpath, sizeof ocpath, "%s/openclip.safetensors", tmp);
    tdm_test_wfile_write(&oc, ocpath, NULL);

    tdm_clip_vision *a = NULL, *b = NULL;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) == TDM_OK, "%s", st.msg);
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_openclip(&b, ocpath, "visual.", -1, &st) == TDM_OK, "%s", st.msg);
    if (a && b) {
        CHECK(b->cfg.hidden_size == C && b->cfg.patch_size == PATCH && b->cfg.image_size == S &&
              b->cfg.num_hidden_layers == NL && b->cfg.intermediate_size == I && b->cfg.projection_dim == P &&
              b->cfg.hidden_act == TDM_CLIP_ACT_GELU);
        b->cfg.num_attention_heads = 1;
        enum { B = 2 };
        float px[B * 3 * S * S], la[B * T * C], lb[B * T * C], pa[B * C], pb[B * C], ea[B * P], eb[B * P], er[B * P];
        random_pixels(px, B * 3 * S * S);
        tdm_arena arena;
        tdm_arena_init(&arena, 0);
        tdm_exec ex = {NULL, 0}, exr = {NULL, 1};
        tdm_status_clear(&st);
        CHECK_MSG(tdm_clip_vision_forward(a, &ex, &arena, px, B, NULL, NULL, la, pa, ea, &st) == TDM_OK, "%s", st.msg);
        CHECK_MSG(tdm_clip_vision_forward(b, &ex, &arena, px, B, NULL, NULL, lb, pb, eb, &st) == TDM_OK, "%s", st.msg);
        CHECK(!memcmp(la, lb, sizeof la) && !memcmp(pa, pb, sizeof pa) && !memcmp(ea, eb, sizeof ea));
        CHECK_MSG(tdm_clip_vision_forward(a, &exr, &arena, px, B, NULL, NULL, NULL, NULL, er, &st) == TDM_OK, "%s",
                  st.msg);
        CHECK_MSG(tdm_test_max_abs(ea, er, B * P) < 1e-5, "reference kernels differ by %g",
                  tdm_test_max_abs(ea, er, B * P));
        /* batch independence: image 1 alone gives the same embedding */
        float e1[P];
        CHECK(tdm_clip_vision_forward(a, &ex, &arena, px + 3 * S * S, 1, NULL, NULL, NULL, NULL, e1, &st) == TDM_OK);
        CHECK(tdm_test_max_abs(e1, ea + P, P) < 1e-6);
        /* pooled = post_layernorm(last_hidden_state[:, 0]) */
        float pp[C];
        CHECK(tdm_layer_norm(&ex, la, 1, C, 1e-5f, &a->post_ln_w, &a->post_ln_b, pp) == TDM_OK);
        CHECK(tdm_test_max_abs(pp, pa, C) < 1e-6);
        tdm_arena_free(&arena);
    }
    tdm_clip_vision_free(a);
    tdm_clip_vision_free(b);

    /* errors naming the tensor: missing, extra, wrong shape; bad config fields */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tdm_test_wfile_write(&hf, path, "vision_model.post_layernorm.weight");
    tdm_status_clear(&st);
    CHECK(tdm_clip_vision_load_dir(&a, dir, &st) == TDM_ERR_MISSING && strstr(st.msg, "post_layernorm.weight"));
    add1(&hf, "vision_model.unexpected.weight", 3, 0, NULL);
    tdm_test_wfile_write(&hf, path, NULL);
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) != TDM_OK && strstr(st.msg, "vision_model.unexpected.weight"),
              "%s", st.msg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"hidden_size\": 8, \"num_attention_heads\": 3}");
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "num_attention_heads"), "%s",
              st.msg);
    write_text(path, "{\"vision_config\": {\"hidden_act\": \"relu\"}}");
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) != TDM_OK && strstr(st.msg, "hidden_act"), "%s", st.msg);
    write_text(path, "{\"vision_config\": {\"patch_size\": \"8\"}}");
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) != TDM_OK && strstr(st.msg, "patch_size"), "%s", st.msg);
    write_text(path, "{\"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 1, \"image_size\": 16, \"patch_size\": 4, \"projection_dim\": 6}");
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_vision_load_dir(&a, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "patch_embedding.weight"),
              "%s", st.msg);
    tdm_test_wfile_free(&hf);
    tdm_test_wfile_free(&oc);
}

/* ---- preprocessing ----------------------------------------------------------------------------- */

static void test_preprocess(void) {
    tdm_clip_image_proc p;
    tdm_clip_image_proc_default(&p, 32);
    int w, h;
    tdm_status_clear(&st);
    CHECK(tdm_clip_image_proc_out_size(&p, 81, 60, &w, &h, &st) == TDM_OK && w == 32 && h == 32);
    /* 1x1: upsampled to 32x32, a constant image */
    tdm_image one;
    CHECK(tdm_image_alloc(&one, 1, 1, &st) == TDM_OK);
    one.pixels[0] = 255;
    one.pixels[1] = 0;
    one.pixels[2] = 128;
    float px[3 * 32 * 32];
    tdm_image res, crop;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_preprocess(&p, &one, px, &res, &crop, &st) == TDM_OK, "%s", st.msg);
    CHECK(res.width == 32 && res.height == 32 && crop.width == 32 && crop.height == 32);
    CHECK(fabsf(px[0] - (float)((1.0 - 0.48145466) / 0.26862954)) < 1e-5f);
    CHECK(fabsf(px[32 * 32 + 5] - (float)((0.0 - 0.4578275) / 0.26130258)) < 1e-5f);
    tdm_image_free(&res);
    tdm_image_free(&crop);
    tdm_image_free(&one);
    /* 16385 wide: refused (hand-made header, the allocator would refuse it too) */
    uint8_t *big = calloc((size_t)16385 * 3, 1);
    tdm_image wide = {16385, 1, 3, big};
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_preprocess(&p, &wide, px, NULL, NULL, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "16385"),
              "%s", st.msg);
    /* 16384 x 1: the long side would become 32 * 16384 px */
    wide.width = 16384;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_preprocess(&p, &wide, px, NULL, NULL, &st) != TDM_OK && strstr(st.msg, "16384"), "%s", st.msg);
    free(big);
    /* HPSv2 ResizeMaxSize: 40x20 -> 32x16, padded to 32x32 (8 rows of zeros on top) */
    tdm_clip_image_proc q;
    tdm_clip_image_proc_default(&q, 32);
    q.resize_mode = TDM_CLIP_RESIZE_LONGEST_PAD;
    q.do_center_crop = 0;
    tdm_image r;
    CHECK(tdm_image_alloc(&r, 40, 20, &st) == TDM_OK);
    memset(r.pixels, 200, 40 * 20 * 3);
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_preprocess(&q, &r, px, &res, &crop, &st) == TDM_OK, "%s", st.msg);
    CHECK(res.width == 32 && res.height == 16 && crop.width == 32 && crop.height == 32);
    CHECK(crop.pixels[0] == 0 && crop.pixels[(8 * 32) * 3] == 200 && crop.pixels[(24 * 32) * 3] == 0);
    tdm_image_free(&res);
    tdm_image_free(&crop);
    tdm_image_free(&r);
    /* preprocessor_config fields */
    cJSON *j = cJSON_Parse("{\"size\": {\"height\": 20, \"width\": 24}, \"crop_size\": 16, \"resample\": 2,"
                           " \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": 0.5}");
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_image_proc_from_json(j, "pp", 224, &q, &st) == TDM_OK, "%s", st.msg);
    CHECK(q.resize_mode == TDM_CLIP_RESIZE_EXACT && q.size_h == 20 && q.size_w == 24 && q.crop_h == 16 &&
          q.resample == TDM_RESAMPLE_BILINEAR && q.std[2] == 0.5);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"resample\": 0}");
    tdm_status_clear(&st);
    CHECK(tdm_clip_image_proc_from_json(j, "pp", 224, &q, &st) != TDM_OK && strstr(st.msg, "resample"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"image_std\": [0.5, 0, 0.5]}");
    tdm_status_clear(&st);
    CHECK(tdm_clip_image_proc_from_json(j, "pp", 224, &q, &st) != TDM_OK && strstr(st.msg, "image_std"));
    cJSON_Delete(j);
}

/* ---- aesthetic head ---------------------------------------------------------------------------- */

static void test_aesthetic(void) {
    static const int dims[6] = {12, 20, 9, 7, 5, 1}; /* 768, 1024, 128, 64, 16, 1 scaled down */
    static const int idx[5] = {0, 2, 4, 6, 7};
    wfile w;
    memset(&w, 0, sizeof w);
    float *W[5], *Bv[5];
    char n[64];
    for (int i = 0; i < 5; i++) {
        snprintf(n, sizeof n, "layers.%d.weight", idx[i]);
        W[i] = add2(&w, n, dims[i + 1], dims[i], 0, NULL);
        snprintf(n, sizeof n, "layers.%d.bias", idx[i]);
        Bv[i] = add1(&w, n, dims[i + 1], 1, NULL);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/aesthetic.safetensors", tdm_test_tmpdir());
    tdm_test_wfile_write(&w, path, NULL);
    tdm_aesthetic_head *h = NULL;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_aesthetic_head_load(&h, path, 12, &st) == TDM_OK, "%s", st.msg);
    enum { B = 3 };
    float emb[B * 12], got[B];
    for (int i = 0; i < B * 12; i++) emb[i] = 3.0f * urand();
    if (h) {
        tdm_exec ex = {NULL, 0};
        CHECK_MSG(tdm_aesthetic_head_forward(h, &ex, emb, B, got, &st) == TDM_OK, "%s", st.msg);
        for (int b = 0; b < B; b++) { /* scalar reference in double */
            double x[32], y[32], nn = 0;
            for (int j = 0; j < 12; j++) nn += (double)emb[b * 12 + j] * emb[b * 12 + j];
            for (int j = 0; j < 12; j++) x[j] = emb[b * 12 + j] / sqrt(nn);
            for (int l = 0; l < 5; l++) {
                for (int o = 0; o < dims[l + 1]; o++) {
                    double s = Bv[l][o];
                    for (int k = 0; k < dims[l]; k++) s += (double)W[l][o * dims[l] + k] * x[k];
                    y[o] = s;
                }
                memcpy(x, y, sizeof(double) * (size_t)dims[l + 1]);
            }
            CHECK_MSG(fabs(got[b] - x[0]) < 1e-5 * (1 + fabs(x[0])), "aesthetic %d: %g vs %g", b, got[b], x[0]);
        }
        /* scale invariance: the embedding is normalised first */
        float emb2[12], g2;
        for (int j = 0; j < 12; j++) emb2[j] = 7.0f * emb[j];
        CHECK(tdm_aesthetic_head_forward(h, &ex, emb2, 1, &g2, &st) == TDM_OK && fabsf(g2 - got[0]) < 1e-5f);
    }
    tdm_aesthetic_head_free(h);
    h = NULL;
    tdm_status_clear(&st);
    CHECK(tdm_aesthetic_head_load(&h, path, 768, &st) == TDM_ERR_FORMAT && strstr(st.msg, "layers.0.weight"));
    tdm_test_wfile_write(&w, path, "layers.4.bias");
    tdm_status_clear(&st);
    CHECK(tdm_aesthetic_head_load(&h, path, 12, &st) == TDM_ERR_MISSING && strstr(st.msg, "layers.4.bias"));
    tdm_test_wfile_free(&w);
    /* a broken chain: layers.2 takes 21 inputs but layers.0 gives 20 */
    memset(&w, 0, sizeof w);
    for (int i = 0; i < 5; i++) {
        snprintf(n, sizeof n, "layers.%d.weight", idx[i]);
        add2(&w, n, dims[i + 1], dims[i] + (i == 1), 0, NULL);
        snprintf(n, sizeof n, "layers.%d.bias", idx[i]);
        add1(&w, n, dims[i + 1], 1, NULL);
    }
    tdm_test_wfile_write(&w, path, NULL);
    tdm_status_clear(&st);
    CHECK(tdm_aesthetic_head_load(&h, path, 12, &st) == TDM_ERR_FORMAT && strstr(st.msg, "layers.2.weight"));
    tdm_test_wfile_free(&w);
}

/* ---- score formulas ---------------------------------------------------------------------------- */

static void test_formulas(void) {
    const float a[3] = {1, 0, 0}, b[3] = {1, 1, 0}, c[3] = {-1, 0, 0}, z[3] = {0, 0, 0};
    CHECK(fabs(tdm_clip_cosine(a, b, 3) - sqrt(0.5)) < 1e-12);
    CHECK(fabsf(tdm_clipscore(a, b, 3) - 100.0f * (float)sqrt(0.5)) < 1e-4f);
    CHECK(tdm_clipscore(a, c, 3) == 0.0f);
    CHECK(tdm_clip_cosine(a, z, 3) == 0.0);
    CHECK(fabsf(tdm_pickscore(a, b, 3, logf(100.0f)) - 100.0f * (float)sqrt(0.5)) < 1e-3f);
    CHECK(fabsf(tdm_hpsv2_score(a, c, 3) + 1.0f) < 1e-7f);
}

/* ---- oracles end to end ------------------------------------------------------------------------ */

static void test_oracles(void) {
    const char *tokdir = tdm_test_fixture("tokenizer-clip");
    if (!tokdir) {
        printf("note: fixture tokenizer-clip absent, oracle tests skipped\n");
        return;
    }
    char tok[1200];
    snprintf(tok, sizeof tok, "%s", tokdir);
    const char *tmp = tdm_test_tmpdir();
    char dir[1024], path[1200], cmd[1200];
    snprintf(dir, sizeof dir, "%s/clipmodel", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    wfile hf, oc;
    memset(&hf, 0, sizeof hf);
    memset(&oc, 0, sizeof oc);
    make_vision(&hf, &oc);
    make_text(&hf, &oc);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tdm_test_wfile_write(&hf, path, "vision_model.embeddings.position_ids");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"projection_dim\": 6, \"text_config\": {\"hidden_size\": 8, \"intermediate_size\": 16,"
                     " \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"hidden_act\": \"gelu\","
                     " \"eos_token_id\": 2}, \"vision_config\": {\"hidden_size\": 8, \"intermediate_size\": 16,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 1, \"image_size\": 16, \"patch_size\": 8,"
                     " \"hidden_act\": \"gelu\"}}");
    char ocpath[1200];
    snprintf(ocpath, sizeof ocpath, "%s/hps.safetensors", tmp);
    tdm_test_wfile_write(&oc, ocpath, NULL);

    tdm_image img;
    CHECK(tdm_image_alloc(&img, 24, 24, &st) == TDM_OK);
    for (int i = 0; i < 24 * 24 * 3; i++) img.pixels[i] = (uint8_t)((i * 37) % 251);
    const char *prompt = "a photo of a cat";
    tdm_exec ex = {NULL, 0};
    tdm_clip_oracle_paths paths = {dir, ocpath, NULL, tok};
    tdm_clip_oracle *cs = NULL, *ps = NULL, *hp = NULL;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_oracle_load(&cs, TDM_CLIP_ORACLE_CLIPSCORE, &paths, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_clip_oracle_load(&ps, TDM_CLIP_ORACLE_PICKSCORE, &paths, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_clip_oracle_load(&hp, TDM_CLIP_ORACLE_HPSV2, &paths, &st) == TDM_OK, "%s", st.msg);
    if (cs && ps && hp) {
        hp->vision->cfg.num_attention_heads = 1; /* shapes cannot tell; the HF config says 1 */
        float te[P], ie[P], te_ids[P], s_cs, s_ps, s_hp;
        CHECK_MSG(tdm_clip_oracle_text_embeds(cs, &ex, prompt, te, &st) == TDM_OK, "%s", st.msg);
        CHECK_MSG(tdm_clip_oracle_image_embeds(cs, &ex, &img, ie, &st) == TDM_OK, "%s", st.msg);
        /* the same text through known ids (docs: "a photo of a cat" -> 49406 320 1125 539 320 2368 49407) */
        int32_t ids[77];
        static const int32_t known[7] = {49406, 320, 1125, 539, 320, 2368, 49407};
        for (int i = 0; i < 77; i++) ids[i] = i < 7 ? known[i] : 49407;
        tdm_arena arena;
        tdm_arena_init(&arena, 0);
        CHECK(tdm_clip_text_forward(cs->text, &ex, &arena, ids, 1, 77, NULL, NULL, NULL, te_ids, &st) == TDM_OK);
        tdm_arena_free(&arena);
        CHECK(!memcmp(te, te_ids, sizeof te));
        const double cosv = tdm_clip_cosine(te, ie, P);
        CHECK_MSG(tdm_clip_oracle_score(cs, &ex, prompt, &img, &s_cs, &st) == TDM_OK, "%s", st.msg);
        CHECK_MSG(tdm_clip_oracle_score(ps, &ex, prompt, &img, &s_ps, &st) == TDM_OK, "%s", st.msg);
        CHECK_MSG(tdm_clip_oracle_score_cb(hp, &ex, prompt, &img, &s_hp, &st) == TDM_OK, "%s", st.msg);
        CHECK(fabsf(s_cs - (float)fmax(100 * cosv, 0)) < 1e-4f);
        CHECK_MSG(fabs(s_ps - 30.0 * cosv) < 1e-4, "pickscore %g vs %g", s_ps, 30.0 * cosv);
        /* square image: ResizeMaxSize = resize; same weights under OpenCLIP names -> the same cosine */
        CHECK_MSG(fabs(s_hp - cosv) < 1e-6, "hpsv2 %g vs %g", s_hp, cosv);
        /* emphasis syntax is stripped: "(a photo:1.3) of a cat" scores like the plain prompt */
        float s2;
        CHECK(tdm_clip_oracle_score(cs, &ex, "(a photo:1.3) of a cat", &img, &s2, &st) == TDM_OK && s2 == s_cs);
    }
    tdm_clip_oracle_free(cs);
    tdm_clip_oracle_free(ps);
    tdm_clip_oracle_free(hp);

    /* aesthetic: needs the head; with it, the score of a head whose last layers pass one value through */
    tdm_clip_oracle *ae = NULL;
    tdm_status_clear(&st);
    CHECK(tdm_clip_oracle_load(&ae, TDM_CLIP_ORACLE_AESTHETIC, &paths, &st) == TDM_ERR_INVALID_ARG &&
          strstr(st.msg, "head"));
    wfile w;
    memset(&w, 0, sizeof w);
    static const int dims[6] = {P, 4, 3, 3, 2, 1};
    static const int idx[5] = {0, 2, 4, 6, 7};
    for (int i = 0; i < 5; i++) {
        char n[64];
        snprintf(n, sizeof n, "layers.%d.weight", idx[i]);
        add2(&w, n, dims[i + 1], dims[i], 0, NULL);
        snprintf(n, sizeof n, "layers.%d.bias", idx[i]);
        add1(&w, n, dims[i + 1], 1, NULL);
    }
    snprintf(path, sizeof path, "%s/head.safetensors", tmp);
    tdm_test_wfile_write(&w, path, NULL);
    paths.aesthetic_head = path;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_clip_oracle_load(&ae, TDM_CLIP_ORACLE_AESTHETIC, &paths, &st) == TDM_OK, "%s", st.msg);
    if (ae) {
        float ie[P], want, got;
        CHECK(tdm_clip_oracle_image_embeds(ae, &ex, &img, ie, &st) == TDM_OK);
        CHECK(tdm_aesthetic_head_forward(ae->head, &ex, ie, 1, &want, &st) == TDM_OK);
        CHECK_MSG(tdm_clip_oracle_score(ae, &ex, NULL, &img, &got, &st) == TDM_OK, "%s", st.msg);
        CHECK(got == want && isfinite(got));
    }
    tdm_clip_oracle_free(ae);
    tdm_test_wfile_free(&w);
    /* a CLIPModel without logit_scale cannot be a PickScore */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tdm_test_wfile_write(&hf, path, "logit_scale");
    tdm_status_clear(&st);
    CHECK(tdm_clip_oracle_load(&ps, TDM_CLIP_ORACLE_PICKSCORE, &paths, &st) == TDM_ERR_MISSING &&
          strstr(st.msg, "logit_scale"));
    tdm_image_free(&img);
    tdm_test_wfile_free(&hf);
    tdm_test_wfile_free(&oc);
}

int main(void) {
    test_formulas();
    test_preprocess();
    test_aesthetic();
    test_synthetic();
    test_oracles();
    test_fixture();
    return tdm_test_result();
}
