/* ImageReward: the imagereward-tiny and preprocessing fixtures through `tandem check` (skipped when
 * absent), then a synthetic model written with ImageReward's key names: scoring (batch = single,
 * thread count does not change the result, empty / huge prompts, 1x1 and extreme-aspect images),
 * ignored tensors (vision_proj, text_proj, position_ids), and load errors naming the missing,
 * unexpected or misshapen tensor and the bad config field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "io/image_ops.h"
#include "io/safetensors.h"
#include "models/imagereward.h"
#include "tandem.h"
#include "check_util.h"
#include "test_util.h"
#include "wfile_util.h"

/* synthetic dims */
enum { S = 32, PATCH = 16, DV = 8, DEPTH = 2, VH = 2, VF = 16, H = 8, LAYERS = 2, BH = 2, BI = 16, MAXP = 40 };
enum { T = 1 + (S / PATCH) * (S / PATCH) };
static const int HEAD[6] = {H, 6, 5, 4, 3, 1};
static const char *const VOCAB[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "##s", ","};
enum { NV = 10, VOCAB_SIZE = NV + 2 };

typedef tdm_test_wfile wfile;

static uint64_t rng = 11;

/* kind 0: weight (scaled by 1/sqrt(fan_in)), 1: bias, 2: norm gamma */
static void add(wfile *w, const char *name, int ndim, const int64_t *shape, int kind) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float sc = ndim >= 2 ? 1.0f / sqrtf((float)(n / shape[0])) : 1.0f;
    tdm_test_wfile_add(w, &rng, name, ndim, shape, kind, sc, NULL);
}

#define A1(nm, d0, k) add(w, nm, 1, (const int64_t[]){d0}, k)
#define A2(nm, d0, d1, k) add(w, nm, 2, (const int64_t[]){d0, d1}, k)

static void linear(wfile *w, const char *prefix, int64_t out, int64_t in) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", prefix);
    A2(n, out, in, 0);
    snprintf(n, sizeof n, "%s.bias", prefix);
    A1(n, out, 1);
}

static void norm(wfile *w, const char *prefix, int64_t d) {
    char n[200];
    snprintf(n, sizeof n, "%s.weight", prefix);
    A1(n, d, 2);
    snprintf(n, sizeof n, "%s.bias", prefix);
    A1(n, d, 1);
}

static void build(wfile *w) {
    char p[160];
    add(w, "blip.visual_encoder.patch_embed.proj.weight", 4, (const int64_t[]){DV, 3, PATCH, PATCH}, 0);
    A1("blip.visual_encoder.patch_embed.proj.bias", DV, 1);
    add(w, "blip.visual_encoder.cls_token", 3, (const int64_t[]){1, 1, DV}, 1);
    add(w, "blip.visual_encoder.pos_embed", 3, (const int64_t[]){1, T, DV}, 1);
    for (int i = 0; i < DEPTH; i++) {
#define B(s) (snprintf(p, sizeof p, "blip.visual_encoder.blocks.%d.%s", i, s), p)
        norm(w, B("norm1"), DV);
        linear(w, B("attn.qkv"), 3 * DV, DV);
        linear(w, B("attn.proj"), DV, DV);
        norm(w, B("norm2"), DV);
        linear(w, B("mlp.fc1"), VF, DV);
        linear(w, B("mlp.fc2"), DV, VF);
#undef B
    }
    norm(w, "blip.visual_encoder.norm", DV);
    A2("blip.text_encoder.embeddings.word_embeddings.weight", VOCAB_SIZE, H, 0);
    A2("blip.text_encoder.embeddings.position_embeddings.weight", MAXP, H, 0);
    norm(w, "blip.text_encoder.embeddings.LayerNorm", H);
    for (int i = 0; i < LAYERS; i++) {
#define L(s) (snprintf(p, sizeof p, "blip.text_encoder.encoder.layer.%d.%s", i, s), p)
        linear(w, L("attention.self.query"), H, H);
        linear(w, L("attention.self.key"), H, H);
        linear(w, L("attention.self.value"), H, H);
        linear(w, L("attention.output.dense"), H, H);
        norm(w, L("attention.output.LayerNorm"), H);
        linear(w, L("crossattention.self.query"), H, H);
        linear(w, L("crossattention.self.key"), H, DV);
        linear(w, L("crossattention.self.value"), H, DV);
        linear(w, L("crossattention.output.dense"), H, H);
        norm(w, L("crossattention.output.LayerNorm"), H);
        linear(w, L("intermediate.dense"), BI, H);
        linear(w, L("output.dense"), H, BI);
        norm(w, L("output.LayerNorm"), H);
#undef L
    }
    static const int idx[5] = {0, 2, 4, 6, 7};
    for (int k = 0; k < 5; k++) {
        snprintf(p, sizeof p, "mlp.layers.%d", idx[k]);
        linear(w, p, HEAD[k + 1], HEAD[k]);
    }
    /* present in ImageReward.pt, unused by score() */
    linear(w, "blip.vision_proj", 4, DV);
    linear(w, "blip.text_proj", 4, H);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Writes a model folder: weights minus `skip` (NULL: none), plus `extra` (a tensor name, or NULL);
 * `bad_shape` gets a [1] shape. config/med_config texts NULL = valid ones. */
static const char *write_model(const char *sub, const wfile *w, const char *skip, const char *extra,
                               const char *bad_shape, const char *config, const char *med, int vocab) {
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tdm_test_tmpdir(), sub);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) return NULL;
    const char *names[TDM_TEST_WFILE_MAX + 2];
    tdm_tensor ts[TDM_TEST_WFILE_MAX + 2];
    int k = 0;
    float one = 1.0f;
    for (int i = 0; i < w->n; i++) {
        if (skip && strcmp(w->name[i], skip) == 0) continue;
        names[k] = w->name[i];
        ts[k] = w->t[i];
        if (bad_shape && strcmp(w->name[i], bad_shape) == 0) ts[k] = tdm_tensor_view(TDM_F32, &one, 1, (const int64_t[]){1});
        k++;
    }
    int64_t pos_ids[MAXP];
    for (int i = 0; i < MAXP; i++) pos_ids[i] = i;
    names[k] = "blip.text_encoder.embeddings.position_ids";
    ts[k++] = tdm_tensor_view(TDM_I64, pos_ids, 2, (const int64_t[]){1, MAXP});
    if (extra) {
        names[k] = extra;
        ts[k++] = tdm_tensor_view(TDM_F32, &one, 1, (const int64_t[]){1});
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    tdm_status st;
    if (tdm_st_write(path, k, names, ts, &st)) {
        fprintf(stderr, "write: %s\n", st.msg);
        return NULL;
    }
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"image_size\": %d, \"vit\": {\"patch_size\": %d, \"width\": %d, \"depth\": %d, \"heads\": %d, "
             "\"mlp_ratio\": %g, \"layer_norm_eps\": 1e-6}, \"mlp_dims\": [%d, %d, %d, %d, %d, %d], "
             "\"reward_mean\": 0.16717362830052426, \"reward_std\": 1.0333394966054072}",
             S, PATCH, DV, DEPTH, VH, (double)VF / DV, HEAD[0], HEAD[1], HEAD[2], HEAD[3], HEAD[4], HEAD[5]);
    write_text(dir, "config.json", config ? config : cfg);
    char mc[1024];
    snprintf(mc, sizeof mc,
             "{\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"intermediate_size\": "
             "%d, \"vocab_size\": %d, \"max_position_embeddings\": %d, \"layer_norm_eps\": 1e-12, \"hidden_act\": "
             "\"gelu\", \"encoder_width\": 768, \"add_cross_attention\": true}",
             H, LAYERS, BH, BI, VOCAB_SIZE, MAXP);
    write_text(dir, "med_config.json", med ? med : mc);
    if (vocab) {
        char v[512] = "";
        for (int i = 0; i < NV; i++) strcat(strcat(v, VOCAB[i]), "\n");
        write_text(dir, "vocab.txt", v);
    }
    return dir;
}

static tdm_image make_image(int w, int h, int seed) {
    tdm_image img;
    tdm_status st;
    if (tdm_image_alloc(&img, w, h, &st)) memset(&img, 0, sizeof img);
    for (int i = 0; img.pixels && i < w * h * 3; i++) img.pixels[i] = (uint8_t)((i * 37 + seed * 101 + (i / 7) * 13) & 255);
    return img;
}

static void test_synthetic(void) {
    wfile *w = calloc(1, sizeof *w);
    build(w);
    tdm_status st;
    tdm_status_clear(&st);
    const char *dir = write_model("ok", w, NULL, NULL, NULL, NULL, NULL, 1);
    CHECK(dir != NULL);
    tdm_imagereward m;
    tdm_code rc = tdm_imagereward_load(&m, dir, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) {
        tdm_test_wfile_free(w);
        free(w);
        return;
    }
    CHECK(m.tok != NULL && tdm_imagereward_image_tokens(&m) == T);
    tdm_image imgs[4] = {make_image(40, 30, 1), make_image(1, 1, 2), make_image(1, 300, 3), make_image(33, 32, 4)};
    tdm_exec ex = {NULL, 0};
    float single[4], batch[4], threaded[4];
    for (int i = 0; i < 4; i++) {
        rc = tdm_imagereward_score(&m, &ex, "a cat, dogs", &imgs[i], &single[i], &st);
        CHECK_MSG(rc == TDM_OK && isfinite(single[i]), "image %d: %s", i, st.msg);
    }
    CHECK(tdm_imagereward_score_batch(&m, &ex, "a cat, dogs", imgs, 4, batch, &st) == TDM_OK);
    for (int i = 0; i < 4; i++) CHECK_MSG(fabsf(batch[i] - single[i]) <= 1e-5f, "%d: %g vs %g", i, batch[i], single[i]);
    tdm_pool *pool = NULL;
    if (tdm_pool_create(&pool, 2, &st) == TDM_OK) {
        tdm_exec ex2 = {pool, 0};
        CHECK(tdm_imagereward_score_batch(&m, &ex2, "a cat, dogs", imgs, 4, threaded, &st) == TDM_OK);
        for (int i = 0; i < 4; i++) CHECK_MSG(threaded[i] == batch[i], "threads change image %d", i);
        tdm_pool_free(pool);
    }
    /* the reference kernels agree */
    tdm_exec exr = {NULL, 1};
    float ref;
    CHECK(tdm_imagereward_score(&m, &exr, "a cat, dogs", &imgs[0], &ref, &st) == TDM_OK && fabsf(ref - single[0]) < 1e-4f);
    /* prompts: empty, unknown words, huge (truncated to 35 tokens) */
    float r;
    CHECK(tdm_imagereward_score(&m, &ex, "", &imgs[0], &r, &st) == TDM_OK && isfinite(r));
    CHECK(tdm_imagereward_score(&m, &ex, "zebra \xff\xfe \x01", &imgs[0], &r, &st) == TDM_OK && isfinite(r));
    char *huge = malloc(200001);
    if (huge) {
        for (int i = 0; i < 200000; i++) huge[i] = i % 4 == 3 ? ' ' : "cat"[i % 4];
        huge[200000] = '\0';
        CHECK(tdm_imagereward_score(&m, &ex, huge, &imgs[0], &r, &st) == TDM_OK && isfinite(r));
        free(huge);
    }
    CHECK(tdm_imagereward_score(&m, &ex, NULL, &imgs[0], &r, &st) == TDM_ERR_INVALID_ARG);
    tdm_image empty = {0, 0, 3, NULL};
    CHECK(tdm_imagereward_score(&m, &ex, "a", &empty, &r, &st) != TDM_OK);
    CHECK(tdm_imagereward_score_batch(&m, &ex, "a", imgs, 0, batch, &st) == TDM_OK);
    /* an image whose long side would exceed the limit after resizing */
    tdm_image thin = make_image(1, 600, 5); /* 32 x 19200 > 16384 */
    CHECK(tdm_imagereward_score(&m, &ex, "a", &thin, &r, &st) != TDM_OK && st.msg[0]);
    tdm_image_free(&thin);
    tdm_imagereward_free(&m);
    for (int i = 0; i < 4; i++) tdm_image_free(&imgs[i]);

    /* no vocab.txt: loads, refuses to score text */
    dir = write_model("novocab", w, NULL, NULL, NULL, NULL, NULL, 0);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_OK);
    tdm_image one = make_image(8, 8, 0);
    CHECK(tdm_imagereward_score(&m, &ex, "a", &one, &r, &st) == TDM_ERR_MISSING && strstr(st.msg, "vocab") != NULL);
    tdm_image_free(&one);
    tdm_imagereward_free(&m);

    /* load errors */
    const char *miss = "blip.text_encoder.encoder.layer.1.crossattention.self.key.weight";
    dir = write_model("missing", w, miss, NULL, NULL, NULL, NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_MISSING && strstr(st.msg, miss) != NULL);
    dir = write_model("extra", w, NULL, "blip.itm_head.weight", NULL, NULL, NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) != TDM_OK && strstr(st.msg, "blip.itm_head.weight") != NULL);
    dir = write_model("shape", w, NULL, NULL, "mlp.layers.4.weight", NULL, NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "mlp.layers.4.weight") != NULL);
    dir = write_model("cfgtype", w, NULL, NULL, NULL, "{\"image_size\": \"32\"}", NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "image_size") != NULL);
    dir = write_model("cfgvit", w, NULL, NULL, NULL, "{\"image_size\": 32, \"vit\": [1]}", NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "vit") != NULL);
    dir = write_model("cfgmlp", w, NULL, NULL, NULL, "{\"image_size\": 32, \"mlp_dims\": [8, 1]}", NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "mlp_dims") != NULL);
    dir = write_model("cfgpatch", w, NULL, NULL, NULL, "{\"image_size\": 30, \"vit\": {\"patch_size\": 16}}", NULL, 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "patch_size") != NULL);
    dir = write_model("medact", w, NULL, NULL, NULL, NULL, "{\"hidden_act\": \"relu\"}", 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_UNSUPPORTED && strstr(st.msg, "hidden_act") != NULL);
    dir = write_model("medtype", w, NULL, NULL, NULL, NULL, "{\"hidden_size\": 8.5}", 1);
    CHECK(tdm_imagereward_load(&m, dir, &st) == TDM_ERR_FORMAT && strstr(st.msg, "hidden_size") != NULL);
    CHECK(tdm_imagereward_load(&m, "/nonexistent/model", &st) != TDM_OK && strstr(st.msg, "config.json") != NULL);
    tdm_test_wfile_free(w);
    free(w);
}

static void test_preprocess_api(void) {
    int w, h;
    tdm_status st;
    CHECK(tdm_shortest_edge_size(768, 512, 224, &w, &h, &st) == TDM_OK && w == 336 && h == 224);
    CHECK(tdm_shortest_edge_size(10, 1000, 224, &w, &h, &st) != TDM_OK); /* 22400 > max side */
    CHECK(tdm_shortest_edge_size(0, 10, 224, &w, &h, &st) == TDM_ERR_INVALID_ARG);
    tdm_image img = make_image(11, 11, 0), c;
    CHECK(tdm_image_center_crop_mode(&img, 4, 4, TDM_CROP_TORCHVISION, &c, &st) == TDM_OK);
    CHECK(c.width == 4 && memcmp(c.pixels, img.pixels + (4 * 11 + 4) * 3, 12) == 0); /* round(3.5) = 4 */
    tdm_image_free(&c);
    CHECK(tdm_image_center_crop_mode(&img, 4, 4, TDM_CROP_TRANSFORMERS, &c, &st) == TDM_OK);
    CHECK(memcmp(c.pixels, img.pixels + (3 * 11 + 3) * 3, 12) == 0); /* floor */
    tdm_image_free(&c);
    CHECK(tdm_image_center_crop_mode(&img, 0, 4, TDM_CROP_TORCHVISION, &c, &st) == TDM_ERR_INVALID_ARG);
    tdm_image_free(&img);
}

static void test_fixtures(void) {
    const char *names[2] = {"imagereward-tiny", "preprocessing"};
    int min_pass[2] = {12, 40};
    for (int i = 0; i < 2; i++) {
        int np, nf;
        if (tdm_test_check_fixture(names[i], &np, &nf))
            CHECK_MSG(nf == 0 && np >= min_pass[i], "%s: %d passed, %d failed", names[i], np, nf);
    }
}

int main(void) {
    test_preprocess_api();
    test_synthetic();
    test_fixtures();
    return tdm_test_result();
}
