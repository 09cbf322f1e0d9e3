/* Locating model files: diffusers folders (variants, shards, pickle refusal, hub cache layout),
 * single-file family detection, tokenizer lookup and scheduler defaults. Builds small folders in
 * the test's temporary directory. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/model_dir.h"
#include "test_util.h"

static char g_buf[1024];

static const char *tmp_path(const char *fmt, ...) {
    char rel[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(g_buf, sizeof g_buf, "%s/%s", tdm_test_tmpdir(), rel);
    return g_buf;
}

/* out = a/b (a function so the compiler does not second-guess buffer sizes) */
static void cat(char *out, size_t n, const char *a, const char *b) {
    if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) {
        fprintf(stderr, "path too long\n");
        exit(1);
    }
}

static void mkdirs(const char *path) {
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            mkdir(p, 0755);
            *c = '/';
        }
    mkdir(p, 0755);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* A small safetensors file: n tensors "name:d0,d1,..." in F32 filled with `fill`. */
static void write_st(const char *path, float fill, int n, const char *const *specs) {
    const char *names[64] = {NULL};
    tdm_tensor ts[64];
    memset(ts, 0, sizeof ts);
    char namebuf[64][256];
    void *bufs[64];
    for (int i = 0; i < n; i++) {
        const char *colon = strchr(specs[i], ':');
        snprintf(namebuf[i], sizeof namebuf[i], "%.*s", (int)(colon - specs[i]), specs[i]);
        names[i] = namebuf[i];
        int64_t shape[8];
        int nd = 0;
        for (const char *s = colon + 1; *s; nd++) {
            shape[nd] = strtoll(s, (char **)&s, 10);
            if (*s == ',') s++;
        }
        int64_t numel = 1;
        for (int d = 0; d < nd; d++) numel *= shape[d];
        float *b = malloc((size_t)(numel ? numel : 1) * sizeof *b);
        for (int64_t k = 0; k < numel; k++) b[k] = fill;
        bufs[i] = b;
        ts[i] = tdm_tensor_view(TDM_F32, b, nd, shape);
    }
    tdm_status st = {0};
    if (tdm_st_write(path, n, names, ts, &st)) {
        fprintf(stderr, "%s\n", st.msg);
        exit(1);
    }
    for (int i = 0; i < n; i++) free(bufs[i]);
}

#define CHECK_FAIL(rc, st, want_code, ...)                                                         \
    do {                                                                                           \
        const char *subs_[] = {__VA_ARGS__, NULL};                                                 \
        CHECK_MSG((rc) == (want_code), "code %s, expected %s: %s", tdm_code_name(rc), tdm_code_name(want_code), \
                  (st).msg);                                                                       \
        for (int k_ = 0; subs_[k_]; k_++)                                                          \
            CHECK_MSG(strstr((st).msg, subs_[k_]) != NULL, "message lacks '%s': %s", subs_[k_], (st).msg); \
    } while (0)

static const char *MODEL_INDEX =
    "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
    " \"feature_extractor\": [\"transformers\", \"CLIPImageProcessor\"],\n"
    " \"requires_safety_checker\": false, \"safety_checker\": [null, null],\n"
    " \"scheduler\": [\"diffusers\", \"PNDMScheduler\"], \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}";

static const char *const TE_SHARD1[] = {"text_model.embeddings.token_embedding.weight:10,4", "text_model.a:2"};
static const char *const TE_SHARD2[] = {"text_model.b:3"};
static const char *TE_INDEX =
    "{\"metadata\": {\"total_size\": 180}, \"weight_map\": {\"text_model.embeddings.token_embedding.weight\": "
    "\"model-00001-of-00002.safetensors\", \"text_model.a\": \"model-00001-of-00002.safetensors\", "
    "\"text_model.b\": \"model-00002-of-00002.safetensors\"}}";

/* root/{model_index.json, unet (plain + fp16), vae (fp16 only), text_encoder (sharded), tokenizer,
 * scheduler, feature_extractor (no weights)} */
static void build_pipeline(const char *root) {
    char p[1024];
    mkdirs(root);
    cat(p, sizeof p, root, "model_index.json");
    write_text(p, MODEL_INDEX);
    const char *dirs[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler", "feature_extractor"};
    for (int i = 0; i < 6; i++) {
        cat(p, sizeof p, root, dirs[i]);
        mkdirs(p);
    }
    const char *const unet[] = {"conv_in.weight:4,4,3,3"};
    cat(p, sizeof p, root, "unet/config.json"), write_text(p, "{\"in_channels\": 4}");
    cat(p, sizeof p, root, "unet/diffusion_pytorch_model.safetensors"), write_st(p, 0, 1, unet);
    cat(p, sizeof p, root, "unet/diffusion_pytorch_model.fp16.safetensors"), write_st(p, 0, 1, unet);
    cat(p, sizeof p, root, "vae/config.json"), write_text(p, "{}");
    cat(p, sizeof p, root, "vae/diffusion_pytorch_model.fp16.safetensors"), write_st(p, 0, 1, unet);
    cat(p, sizeof p, root, "text_encoder/config.json"), write_text(p, "{}");
    cat(p, sizeof p, root, "text_encoder/model.safetensors.index.json"), write_text(p, TE_INDEX);
    cat(p, sizeof p, root, "text_encoder/model-00001-of-00002.safetensors"), write_st(p, 0, 2, TE_SHARD1);
    cat(p, sizeof p, root, "text_encoder/model-00002-of-00002.safetensors"), write_st(p, 0, 1, TE_SHARD2);
    cat(p, sizeof p, root, "tokenizer/vocab.json"), write_text(p, "{\"!\": 0, \"a</w>\": 1}");
    cat(p, sizeof p, root, "tokenizer/merges.txt"), write_text(p, "#version: 0.2\n");
    cat(p, sizeof p, root, "tokenizer/special_tokens_map.json"), write_text(p, "{\"pad_token\": \"!\"}");
    cat(p, sizeof p, root, "scheduler/scheduler_config.json"), write_text(p, "{\"_class_name\": \"PNDMScheduler\"}");
    cat(p, sizeof p, root, "feature_extractor/preprocessor_config.json"), write_text(p, "{}");
}

static void test_pipeline_folder(void) {
    char root[1024];
    snprintf(root, sizeof root, "%s", tmp_path("pipe"));
    build_pipeline(root);
    tdm_model_dir md;
    tdm_status st = {0};
    tdm_code rc = tdm_model_dir_open(&md, root, NULL, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) return;
    CHECK(strcmp(md.pipeline_class, "StableDiffusionPipeline") == 0);
    CHECK(md.n_comp == 6); /* safety_checker [null, null] skipped */
    CHECK(tdm_model_dir_find(&md, "safety_checker") == NULL);
    const tdm_component_files *c;
    CHECK(tdm_model_dir_need(&md, "unet", 1, &c, &st) == TDM_OK);
    CHECK(c && c->n_weight_files == 1 && !c->is_fp16_variant && strstr(c->weight_files[0], "unet/diffusion_pytorch_model.safetensors"));
    CHECK(strcmp(c->class_name, "UNet2DConditionModel") == 0 && strcmp(c->library, "diffusers") == 0);
    CHECK(tdm_model_dir_need(&md, "vae", 1, &c, &st) == TDM_OK);
    CHECK(c && c->is_fp16_variant && strstr(c->weight_files[0], ".fp16.safetensors")); /* only the variant exists */
    CHECK(tdm_model_dir_need(&md, "text_encoder", 1, &c, &st) == TDM_OK);
    CHECK(c && c->n_weight_files == 2 && c->index_path[0]);
    CHECK(strstr(c->weight_files[0], "model-00001-of-00002.safetensors") != NULL);
    CHECK(tdm_model_dir_need(&md, "scheduler", 0, &c, &st) == TDM_OK && c && strstr(c->config_path, "scheduler_config.json"));
    CHECK(tdm_model_dir_need(&md, "tokenizer", 0, &c, &st) == TDM_OK && c && !c->has_weights);
    CHECK(tdm_model_dir_need(&md, "feature_extractor", 0, &c, &st) == TDM_OK && c && !c->has_weights);
    CHECK_FAIL(tdm_model_dir_need(&md, "text_encoder_2", 1, &c, &st), st, TDM_ERR_MISSING, "text_encoder_2", "model_index.json");

    /* sharded weights open as one store and agree with the index */
    CHECK(tdm_model_dir_need(&md, "text_encoder", 1, &c, &st) == TDM_OK);
    tdm_weights ws;
    tdm_weights_init(&ws, "text_encoder");
    rc = tdm_component_add_weights(c, &ws, NULL, NULL, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(ws.n == 3 && ws.n_files == 2);
    tdm_weights_free(&ws);
    tdm_model_dir_free(&md);

    /* fp16 preferred */
    tdm_model_dir_opts o = {.prefer_fp16 = 1};
    rc = tdm_model_dir_open(&md, root, &o, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc == TDM_OK) {
        c = tdm_model_dir_find(&md, "unet");
        CHECK(c && c->is_fp16_variant && strstr(c->weight_files[0], "diffusion_pytorch_model.fp16.safetensors"));
        c = tdm_model_dir_find(&md, "text_encoder"); /* no fp16 variant: falls back to the default */
        CHECK(c && !c->is_fp16_variant && c->n_weight_files == 2);
        tdm_model_dir_free(&md);
    }
}

static void open_te(const char *root, tdm_code want, const char *s1, const char *s2) {
    tdm_model_dir md;
    tdm_status st = {0};
    tdm_code rc = tdm_model_dir_open(&md, root, NULL, &st);
    if (rc == TDM_OK) {
        const tdm_component_files *c;
        rc = tdm_model_dir_need(&md, "text_encoder", 1, &c, &st);
        if (rc == TDM_OK) {
            tdm_weights ws;
            tdm_weights_init(&ws, "text_encoder");
            rc = tdm_component_add_weights(c, &ws, NULL, NULL, &st);
            tdm_weights_free(&ws);
        }
        tdm_model_dir_free(&md);
    }
    CHECK_FAIL(rc, st, want, s1, s2);
}

static void test_bad_shards(void) {
    char root[1024], p[1024];
    snprintf(root, sizeof root, "%s", tmp_path("pipe-shards"));
    build_pipeline(root);
    char idx[1024];
    cat(idx, sizeof idx, root, "text_encoder/model.safetensors.index.json");
    /* tensor indexed in the wrong shard */
    write_text(idx, "{\"weight_map\": {\"text_model.embeddings.token_embedding.weight\": \"model-00001-of-00002.safetensors\", "
                    "\"text_model.a\": \"model-00002-of-00002.safetensors\", \"text_model.b\": \"model-00002-of-00002.safetensors\"}}");
    open_te(root, TDM_ERR_FORMAT, "'text_model.a'", "model-00002-of-00002.safetensors");
    /* a shard holds a tensor the index does not list */
    write_text(idx, "{\"weight_map\": {\"text_model.embeddings.token_embedding.weight\": \"model-00001-of-00002.safetensors\", "
                    "\"text_model.b\": \"model-00002-of-00002.safetensors\"}}");
    open_te(root, TDM_ERR_FORMAT, "'text_model.a'", "not listed");
    /* indexed tensor that no shard holds */
    write_text(idx, "{\"weight_map\": {\"text_model.embeddings.token_embedding.weight\": \"model-00001-of-00002.safetensors\", "
                    "\"text_model.a\": \"model-00001-of-00002.safetensors\", \"text_model.b\": \"model-00002-of-00002.safetensors\", "
                    "\"text_model.c\": \"model-00002-of-00002.safetensors\"}}");
    open_te(root, TDM_ERR_FORMAT, "'text_model.c'", "no shard holds it");
    /* missing shard */
    write_text(idx, "{\"weight_map\": {\"text_model.a\": \"model-00003-of-00003.safetensors\"}}");
    open_te(root, TDM_ERR_MISSING, "model-00003-of-00003.safetensors", "missing");
    /* path traversal in a shard name */
    write_text(idx, "{\"weight_map\": {\"text_model.a\": \"../unet/diffusion_pytorch_model.safetensors\"}}");
    open_te(root, TDM_ERR_FORMAT, "text_model.a", "same folder");
    write_text(idx, "{\"weight_map\": {\"text_model.a\": 5}}");
    open_te(root, TDM_ERR_FORMAT, "text_model.a", "weight_map");
    write_text(idx, "{\"weight_map\": []}");
    open_te(root, TDM_ERR_FORMAT, "weight_map", idx);
    write_text(idx, "{\"weight_map\": {\"text_model.a\": ");
    open_te(root, TDM_ERR_FORMAT, "invalid JSON", idx);
    /* a corrupt shard is reported by the safetensors reader, naming the shard */
    write_text(idx, TE_INDEX);
    cat(p, sizeof p, root, "text_encoder/model-00002-of-00002.safetensors");
    write_text(p, "xx");
    open_te(root, TDM_ERR_FORMAT, "model-00002-of-00002.safetensors", "truncated");
}

static void test_pickle_and_errors(void) {
    char root[1024], p[1024];
    snprintf(root, sizeof root, "%s", tmp_path("pipe-pickle"));
    build_pipeline(root);
    cat(p, sizeof p, root, "unet/diffusion_pytorch_model.safetensors"), remove(p);
    cat(p, sizeof p, root, "unet/diffusion_pytorch_model.fp16.safetensors"), remove(p);
    cat(p, sizeof p, root, "unet/diffusion_pytorch_model.bin"), write_text(p, "PK");
    tdm_model_dir md;
    tdm_status st = {0};
    tdm_code rc = tdm_model_dir_open(&md, root, NULL, &st); /* locating is fine: the unet may not be needed */
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc == TDM_OK) {
        const tdm_component_files *c;
        rc = tdm_model_dir_need(&md, "unet", 1, &c, &st);
        CHECK_FAIL(rc, st, TDM_ERR_UNSUPPORTED, "unet/diffusion_pytorch_model.bin", "convert_ckpt.py");
        CHECK(tdm_model_dir_need(&md, "vae", 1, &c, &st) == TDM_OK);
        tdm_model_dir_free(&md);
    }
    remove(p);
    rc = tdm_model_dir_open(&md, root, NULL, &st);
    if (rc == TDM_OK) {
        const tdm_component_files *c;
        rc = tdm_model_dir_need(&md, "unet", 1, &c, &st);
        CHECK_FAIL(rc, st, TDM_ERR_MISSING, "unet", "diffusion_pytorch_model.safetensors");
        tdm_model_dir_free(&md);
    }
    /* missing component folder / config */
    cat(p, sizeof p, root, "vae/config.json"), remove(p);
    rc = tdm_model_dir_open(&md, root, NULL, &st);
    if (rc == TDM_OK) {
        const tdm_component_files *c;
        CHECK_FAIL(tdm_model_dir_need(&md, "vae", 1, &c, &st), st, TDM_ERR_MISSING, "vae/config.json");
        tdm_model_dir_free(&md);
    }
    /* model_index.json hostile cases */
    char idx[1024];
    cat(idx, sizeof idx, root, "model_index.json");
    struct {
        const char *text;
        tdm_code code;
        const char *sub;
    } cases[] = {
        {"[1]", TDM_ERR_FORMAT, "not a JSON object"},
        {"{\"unet\": [\"diffusers\"]}", TDM_ERR_FORMAT, "'unet'"},
        {"{\"unet\": [\"diffusers\", 3]}", TDM_ERR_FORMAT, "'unet'"},
        {"{\"../../etc\": [\"diffusers\", \"X\"]}", TDM_ERR_FORMAT, "not a folder name"},
        {"{\"_class_name\": 5, \"unet\": [\"diffusers\", \"X\"]}", TDM_ERR_FORMAT, "_class_name"},
        {"{\"_class_name\": \"P\"}", TDM_ERR_FORMAT, "no components"},
        {"{\"unet\": [\"diffusers\", \"UNet2DConditionModel\"", TDM_ERR_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(idx, cases[i].text);
        rc = tdm_model_dir_open(&md, root, NULL, &st);
        CHECK_FAIL(rc, st, cases[i].code, cases[i].sub);
        if (rc == TDM_OK) tdm_model_dir_free(&md);
        else CHECK_MSG(strstr(st.msg, "model_index.json") != NULL, "message does not name the file: %s", st.msg);
    }
    /* not a pipeline folder */
    rc = tdm_model_dir_open(&md, tmp_path("pipe-pickle/unet"), NULL, &st);
    CHECK_FAIL(rc, st, TDM_ERR_MISSING, "model_index.json", "its parent");
    rc = tdm_model_dir_open(&md, tmp_path("nowhere"), NULL, &st);
    CHECK_FAIL(rc, st, TDM_ERR_IO, "nowhere");
}

static void test_hub_cache_layout(void) {
    char repo[1024], p[1024];
    snprintf(repo, sizeof repo, "%s", tmp_path("hub/models--org--pipe"));
    cat(p, sizeof p, repo, "snapshots/0123abcd");
    build_pipeline(p);
    cat(p, sizeof p, repo, "snapshots/ffff"); /* an older, incomplete snapshot */
    mkdirs(p);
    cat(p, sizeof p, repo, "refs"), mkdirs(p);
    cat(p, sizeof p, repo, "refs/main"), write_text(p, "0123abcd\n");
    tdm_model_dir md;
    tdm_status st = {0};
    tdm_code rc = tdm_model_dir_open(&md, repo, NULL, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc == TDM_OK) {
        CHECK(strstr(md.root, "snapshots/0123abcd") != NULL);
        tdm_model_dir_free(&md);
    }
    /* refs/main naming a missing snapshot: the complete one is found by scanning */
    cat(p, sizeof p, repo, "refs/main"), write_text(p, "deadbeef");
    rc = tdm_model_dir_open(&md, repo, NULL, &st);
    CHECK_MSG(rc == TDM_OK && strstr(md.root, "0123abcd"), "%s", st.msg);
    if (rc == TDM_OK) tdm_model_dir_free(&md);
}

/* ---- single files ------------------------------------------------------------------------------ */

static tdm_code detect(const char *path, tdm_single_file_info *info, tdm_status *st) {
    tdm_safetensors f;
    TDM_TRY(tdm_st_open(&f, path, st));
    tdm_code rc = tdm_single_file_detect(&f, info, st);
    tdm_st_close(&f);
    return rc;
}

static void test_single_file_detect(void) {
    tdm_single_file_info info;
    tdm_status st = {0};
    const char *p;
    const char *const sd1[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
        "model.diffusion_model.input_blocks.1.1.proj_in.weight:8,8,1,1",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight:8,768",
        "first_stage_model.decoder.conv_in.weight:8,4,3,3",
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight:3,768",
        "model_ema.decay:1", "alphas_cumprod:4"};
    p = tmp_path("sd1.safetensors");
    write_st(p, 0, 7, sd1);
    tdm_code rc = detect(p, &info, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(info.family == TDM_FAMILY_SD1 && info.context_dim == 768 && info.in_channels == 4 && !info.linear_proj_in);
    CHECK(strcmp(info.unet_prefix, "model.diffusion_model.") == 0 && strcmp(info.vae_prefix, "first_stage_model.") == 0);
    CHECK(info.text_encoder_kind == TDM_TE_HF_CLIP && strcmp(info.text_encoder_prefix, "cond_stage_model.transformer.") == 0);
    CHECK(!info.text_model_prefix_missing && strcmp(tdm_family_name(info.family), "sd1") == 0);

    const char *const sd1_old[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,9,3,3",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight:8,768",
        "cond_stage_model.transformer.embeddings.token_embedding.weight:3,768"};
    p = tmp_path("sd1-old.safetensors");
    write_st(p, 0, 3, sd1_old);
    rc = detect(p, &info, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(info.family == TDM_FAMILY_SD1 && info.text_model_prefix_missing && info.in_channels == 9);
    CHECK(info.vae_prefix[0] == 0); /* no VAE in this file */

    const char *const sd2[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
        "model.diffusion_model.input_blocks.1.1.proj_in.weight:8,8",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight:8,1024",
        "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias:8",
        "first_stage_model.encoder.conv_in.weight:8,3,3,3",
        "cond_stage_model.model.token_embedding.weight:3,1024"};
    p = tmp_path("sd2.safetensors");
    write_st(p, 0, 6, sd2);
    rc = detect(p, &info, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(info.family == TDM_FAMILY_SD2 && info.context_dim == 1024 && info.linear_proj_in);
    CHECK(info.text_encoder_kind == TDM_TE_OPEN_CLIP && strcmp(info.text_encoder_prefix, "cond_stage_model.model.") == 0);
    CHECK(info.v_stat == 0 && !info.v_prediction_guess); /* constant bias: std 0 -> epsilon */

    /* v-prediction heuristic: a norm bias with spread > 0.09 */
    {
        float vals[8] = {0.3f, -0.3f, 0.2f, -0.2f, 0.25f, -0.25f, 0.1f, -0.1f};
        const char *names[] = {"model.diffusion_model.input_blocks.0.0.weight",
                               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                               "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"};
        static float big[8 * 1024];
        int64_t s0[4] = {1, 4, 1, 1}, s1[2] = {8, 1024}, s2[1] = {8};
        tdm_tensor ts[3] = {tdm_tensor_view(TDM_F32, big, 4, s0), tdm_tensor_view(TDM_F32, big, 2, s1),
                            tdm_tensor_view(TDM_F32, vals, 1, s2)};
        p = tmp_path("sd2v.safetensors");
        CHECK(tdm_st_write(p, 3, names, ts, &st) == TDM_OK);
        rc = detect(p, &info, &st);
        CHECK_MSG(rc == TDM_OK && info.v_prediction_guess && info.v_stat > 0.09, "%s (stat %g)", st.msg, info.v_stat);
    }

    const char *const sdxl[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight:8,2048",
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight:3,768",
        "conditioner.embedders.1.model.token_embedding.weight:3,1280"};
    p = tmp_path("sdxl.safetensors");
    write_st(p, 0, 4, sdxl);
    rc = detect(p, &info, &st);
    /* SDXL (sgm layout): two text towers, 768 + 1280 = the UNet's 2048 (test_manifests_sdxl.c loads them) */
    CHECK_MSG(rc == TDM_OK && info.family == TDM_FAMILY_SDXL, "%s", st.msg);
    CHECK(strcmp(info.text_encoder_prefix, "conditioner.embedders.0.transformer.") == 0 &&
          strcmp(info.text_encoder_2_prefix, "conditioner.embedders.1.model.") == 0);
    const char *const sdxl_bad[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight:8,2048",
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight:3,768",
        "conditioner.embedders.1.model.token_embedding.weight:3,1024"};
    p = tmp_path("sdxl-bad.safetensors");
    write_st(p, 0, 4, sdxl_bad);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "conditioner.embedders.1.model.token_embedding.weight", "2048");

    const char *const mismatch[] = {
        "model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight:8,768",
        "cond_stage_model.model.token_embedding.weight:3,1024"};
    p = tmp_path("mismatch.safetensors");
    write_st(p, 0, 3, mismatch);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "cond_stage_model.model.token_embedding.weight", "1024");

    const char *const diffusers_unet[] = {"conv_in.weight:8,4,3,3", "time_embedding.linear_1.weight:8,8"};
    p = tmp_path("unet-only.safetensors");
    write_st(p, 0, 2, diffusers_unet);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "model_index.json", p);
    const char *const vae_only[] = {"encoder.conv_in.weight:8,3,3,3", "decoder.conv_in.weight:8,4,3,3"};
    p = tmp_path("vae-only.safetensors");
    write_st(p, 0, 2, vae_only);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "VAE only");
    const char *const lora[] = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight:4,8"};
    p = tmp_path("lora.safetensors");
    write_st(p, 0, 1, lora);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "LoRA");
    const char *const odd[] = {"model.diffusion_model.input_blocks.0.0.weight:8,4,3,3",
                               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight:8,512"};
    p = tmp_path("odd.safetensors");
    write_st(p, 0, 2, odd);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_UNSUPPORTED, "512");
    const char *const bad_conv[] = {"model.diffusion_model.input_blocks.0.0.weight:8"};
    p = tmp_path("badconv.safetensors");
    write_st(p, 0, 1, bad_conv);
    CHECK_FAIL(detect(p, &info, &st), st, TDM_ERR_FORMAT, "input_blocks.0.0.weight");
}

/* ---- tokenizer lookup -------------------------------------------------------------------------- */

static void test_tokenizer_find(void) {
    tdm_tokenizer_files tf;
    tdm_status st = {0};
    char d[1024], p[1024];
    snprintf(d, sizeof d, "%s", tmp_path("tok-explicit"));
    mkdirs(d);
    cat(p, sizeof p, d, "vocab.json"), write_text(p, "{\"!\": 0}");
    cat(p, sizeof p, d, "merges.txt"), write_text(p, "#version: 0.2\n");
    tdm_code rc = tdm_tokenizer_find(TDM_FAMILY_SD1, d, NULL, &tf, &st);
    CHECK_MSG(rc == TDM_OK && strcmp(tf.dir, d) == 0 && tf.pad_id == -1, "%s", st.msg);
    CHECK(strstr(tf.vocab_path, "vocab.json") && strstr(tf.merges_path, "merges.txt"));
    /* a pipeline folder given as --tokenizer: its tokenizer/ subfolder */
    char pipe[1024];
    snprintf(pipe, sizeof pipe, "%s", tmp_path("pipe"));
    rc = tdm_tokenizer_find(TDM_FAMILY_SD2, pipe, NULL, &tf, &st);
    CHECK_MSG(rc == TDM_OK && strstr(tf.dir, "pipe/tokenizer") && tf.pad_id == 0, "%s", st.msg);
    rc = tdm_tokenizer_find(TDM_FAMILY_SD2, NULL, pipe, &tf, &st);
    CHECK_MSG(rc == TDM_OK && tf.pad_id == 0 && strcmp(tf.pad_token, "!") == 0, "%s", st.msg);
    CHECK_FAIL(tdm_tokenizer_find(TDM_FAMILY_SD1, tmp_path("nowhere"), NULL, &tf, &st), st, TDM_ERR_MISSING,
               "nowhere", "vocab.json");

    /* Hugging Face cache: $HF_HUB_CACHE first */
    char hub[1024];
    snprintf(hub, sizeof hub, "%s", tmp_path("hfhome/hub"));
    cat(p, sizeof p, hub, "models--openai--clip-vit-large-patch14/snapshots/abc123");
    mkdirs(p);
    cat(d, sizeof d, p, "vocab.json"), write_text(d, "{\"<|endoftext|>\": 5}");
    cat(d, sizeof d, p, "merges.txt"), write_text(d, "#version: 0.2\n");
    cat(d, sizeof d, p, "special_tokens_map.json"),
        write_text(d, "{\"pad_token\": {\"content\": \"<|endoftext|>\", \"lstrip\": false}}");
    cat(p, sizeof p, hub, "models--openai--clip-vit-large-patch14/refs"), mkdirs(p);
    cat(d, sizeof d, p, "main"), write_text(d, "abc123");
    setenv("HF_HUB_CACHE", hub, 1);
    rc = tdm_tokenizer_find(TDM_FAMILY_SD1, NULL, NULL, &tf, &st);
    CHECK_MSG(rc == TDM_OK && strstr(tf.dir, "snapshots/abc123") && tf.pad_id == 49407, "%s", st.msg);
    CHECK(strstr(tf.source, "openai/clip-vit-large-patch14") != NULL);
    /* SD2: not in this cache -> a message saying what to provide */
    rc = tdm_tokenizer_find(TDM_FAMILY_SD2, NULL, NULL, &tf, &st);
    CHECK_FAIL(rc, st, TDM_ERR_MISSING, "--tokenizer", "stabilityai/stable-diffusion-2-1", "vocab.json", hub);
    /* SD2 via the laion repo (no refs/main: scans snapshots), found through $HF_HOME/hub */
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", tmp_path("hfhome"), 1);
    cat(p, sizeof p, hub, "models--laion--CLIP-ViT-H-14-laion2B-s32B-b79K/snapshots/s1");
    mkdirs(p);
    cat(d, sizeof d, p, "vocab.json"), write_text(d, "{\"!\": 0}");
    cat(d, sizeof d, p, "merges.txt"), write_text(d, "#version: 0.2\n");
    cat(d, sizeof d, p, "tokenizer_config.json"), write_text(d, "{\"pad_token\": \"!\"}");
    rc = tdm_tokenizer_find(TDM_FAMILY_SD2, NULL, NULL, &tf, &st);
    CHECK_MSG(rc == TDM_OK && tf.pad_id == 0 && strstr(tf.source, "laion"), "%s", st.msg);
    /* an unknown pad token is looked up in vocab.json */
    cat(d, sizeof d, p, "tokenizer_config.json"), write_text(d, "{\"pad_token\": \"<pad>\"}");
    CHECK_FAIL(tdm_tokenizer_find(TDM_FAMILY_SD2, NULL, NULL, &tf, &st), st, TDM_ERR_FORMAT, "<pad>");
    cat(d, sizeof d, p, "vocab.json"), write_text(d, "{\"!\": 0, \"<pad>\": 7}");
    rc = tdm_tokenizer_find(TDM_FAMILY_SD2, NULL, NULL, &tf, &st);
    CHECK_MSG(rc == TDM_OK && tf.pad_id == 7, "%s", st.msg);
    unsetenv("HF_HOME");
    setenv("XDG_CACHE_HOME", tmp_path("empty-xdg"), 1);
    CHECK_FAIL(tdm_tokenizer_find(TDM_FAMILY_SD1, NULL, NULL, &tf, &st), st, TDM_ERR_MISSING,
               "openai/clip-vit-large-patch14", "empty-xdg/huggingface/hub");
    unsetenv("XDG_CACHE_HOME");
    CHECK(tdm_family_default_pad_id(TDM_FAMILY_SD1) == 49407 && tdm_family_default_pad_id(TDM_FAMILY_SD2) == 0);
}

static void test_scheduler_defaults(void) {
    cJSON *j = tdm_default_scheduler_config(TDM_FAMILY_SD2, "v_prediction");
    CHECK(j != NULL);
    if (!j) return;
    CHECK(strcmp(cJSON_GetObjectItem(j, "prediction_type")->valuestring, "v_prediction") == 0);
    CHECK(cJSON_GetObjectItem(j, "beta_start")->valuedouble == 0.00085);
    CHECK(cJSON_GetObjectItem(j, "beta_end")->valuedouble == 0.012);
    CHECK(strcmp(cJSON_GetObjectItem(j, "beta_schedule")->valuestring, "scaled_linear") == 0);
    CHECK(cJSON_GetObjectItem(j, "steps_offset")->valueint == 1);
    CHECK(strcmp(cJSON_GetObjectItem(j, "timestep_spacing")->valuestring, "leading") == 0);
    cJSON_Delete(j);
    j = tdm_default_scheduler_config(TDM_FAMILY_SD1, NULL);
    CHECK(j && strcmp(cJSON_GetObjectItem(j, "prediction_type")->valuestring, "epsilon") == 0);
    CHECK(j && strcmp(cJSON_GetObjectItem(j, "_class_name")->valuestring, "PNDMScheduler") == 0);
    cJSON_Delete(j);
}

int main(void) {
    test_pipeline_folder();
    test_bad_shards();
    test_pickle_and_errors();
    test_hub_cache_layout();
    test_single_file_detect();
    test_tokenizer_find();
    test_scheduler_defaults();
    return tdm_test_result();
}
