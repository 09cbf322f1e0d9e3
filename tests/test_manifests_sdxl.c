/* SDXL loader coverage against the full-size tensor-name manifests (../shared/fixtures/manifest-sdxl-base,
 * manifest-sdxl-refiner, manifest-lcm-sdxl): SPARSE safetensors files with exactly the published names and
 * shapes (header written, then ftruncate to the full size: no weight bytes) laid out as diffusers folders
 * (base, refiner, LCM-SDXL UNet) and as the sd_xl_base_1.0 single file, loaded through tdm_sd_model_load:
 * every tensor mapped, none missing, none unused. Variants with one tensor removed or a shape changed fail
 * naming that tensor; an SDXL folder without text_encoder_2 and a refiner whose model_index.json contradicts
 * its UNet are named errors. (The same sparse-file technique as test_manifests.c.) */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "pipeline/sd_model.h"
#include "manifest_util.h"
#include "test_util.h"

typedef tdm_sparse_edit edit;

static int manifest_count(const char *case_dir, const char *name) {
    cJSON *j = tdm_test_load_json(case_dir, name);
    int n = cJSON_GetArraySize(j);
    cJSON_Delete(j);
    return n;
}

/* stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json */
static const char *SCHED_XL =
    "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
    "\"beta_start\": 0.00085, \"clip_sample\": false, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000, "
    "\"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "
    "\"steps_offset\": 1, \"timestep_spacing\": \"leading\", \"trained_betas\": null, \"use_karras_sigmas\": false}";

static char g_base[1024], g_refiner[1024], g_lcm[1024];

typedef struct xl_folder {
    int refiner;           /* text_encoder / tokenizer [null, null], refiner UNet */
    int lcm;               /* LCM-SDXL UNet */
    int no_te2;            /* model_index.json without text_encoder_2 */
    const char *extra_index; /* extra model_index.json members (",\"key\": value") */
    edit unet, te, te2;
} xl_folder;

/* One component: config from case.json (config.<name>.config) + sparse weights from <manifest>. */
static void component(const char *root, const char *name, const char *case_dir, const char *cfg_name,
                      const char *manifest, const char *file, const edit *ed) {
    cJSON *cs = tdm_test_load_json(case_dir, "case.json");
    tdm_test_mkdirf("%s/%s", root, name);
    const cJSON *cfg = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "config"), cfg_name), "config");
    tdm_test_write_jsonf(cfg, "%s/%s/config.json", root, name);
    cJSON *man = tdm_test_load_json(case_dir, manifest);
    char p[2048];
    snprintf(p, sizeof p, "%s/%s/%s", root, name, file);
    CHECK(tdm_test_write_sparse(p, man, "F16", ed) == 0);
    cJSON_Delete(man);
    cJSON_Delete(cs);
}

static void build_xl(const char *root, const xl_folder *x) {
    tdm_test_mkdirf("%s", root);
    char idx[2048];
    snprintf(idx, sizeof idx,
             "{\"_class_name\": \"%s\", \"_diffusers_version\": \"0.27.2\", %s"
             "\"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"], "
             "\"text_encoder\": %s, \"tokenizer\": %s, %s"
             "\"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"], "
             "\"unet\": [\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]%s}",
             x->refiner ? "StableDiffusionXLImg2ImgPipeline" : "StableDiffusionXLPipeline",
             x->refiner ? "\"force_zeros_for_empty_prompt\": false, \"requires_aesthetics_score\": true, "
                        : "\"force_zeros_for_empty_prompt\": true, ",
             x->refiner ? "[null, null]" : "[\"transformers\", \"CLIPTextModel\"]",
             x->refiner ? "[null, null]" : "[\"transformers\", \"CLIPTokenizer\"]",
             x->no_te2 ? "" : "\"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"], ",
             x->extra_index ? x->extra_index : "");
    tdm_test_write_strf(idx, "%s/model_index.json", root);
    const char *ucase = x->refiner ? g_refiner : x->lcm ? g_lcm : g_base;
    component(root, "unet", ucase, "unet", "unet.json", "diffusion_pytorch_model.safetensors", &x->unet);
    component(root, "vae", g_base, "vae", "vae.json", "diffusion_pytorch_model.safetensors", NULL);
    if (!x->refiner) component(root, "text_encoder", g_base, "text_encoder", "text_encoder.json", "model.safetensors", &x->te);
    if (!x->no_te2)
        component(root, "text_encoder_2", g_base, "text_encoder_2", "text_encoder_2.json", "model.safetensors", &x->te2);
    tdm_test_mkdirf("%s/scheduler", root);
    tdm_test_write_strf(SCHED_XL, "%s/scheduler/scheduler_config.json", root);
}

/* Tokenizer folders from the shared CLIP vocabulary (symlinks; nothing copied), with the pad tokens the
 * published SDXL folders state. */
static int add_tokenizers(const char *root, int base) {
    const char *tok = tdm_test_fixture("tokenizer-clip");
    if (!tok) return 0;
    char src[1024], dst[2048];
    const char *dirs[2] = {"tokenizer", "tokenizer_2"};
    for (int i = base ? 0 : 1; i < 2; i++) {
        tdm_test_mkdirf("%s/%s", root, dirs[i]);
        const char *files[2] = {"vocab.json", "merges.txt"};
        for (int k = 0; k < 2; k++) {
            char rel[1100];
            snprintf(rel, sizeof rel, "%s/%s", tok, files[k]);
            if (!realpath(rel, src)) return 0;
            snprintf(dst, sizeof dst, "%s/%s/%s", root, dirs[i], files[k]);
            unlink(dst);
            if (symlink(src, dst) != 0) return 0;
        }
        tdm_test_write_strf(i == 0 ? "{\"pad_token\": \"<|endoftext|>\"}" : "{\"pad_token\": \"!\"}",
                            "%s/%s/special_tokens_map.json", root, dirs[i]);
    }
    return 1;
}

static tdm_code load(const char *path, unsigned comps, tdm_sd_model **m, tdm_status *st) {
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = path;
    o.components = comps;
    return tdm_sd_model_load(m, &o, st);
}

#define NO_TOK (TDM_SD_TEXT_ENCODER | TDM_SD_UNET | TDM_SD_VAE | TDM_SD_SCHEDULER)

static void all_used(const tdm_weights *ws, const char *what, int expect_n, int line) {
    CHECK_MSG(expect_n < 0 || ws->n == expect_n, "line %d: %s store %d tensors, manifest %d", line, what, ws->n, expect_n);
    for (int i = 0; i < ws->n; i++) CHECK_MSG(ws->w[i].used, "line %d: %s: '%s' unused", line, what, ws->w[i].name);
}

/* Loads and checks every store against the manifests. */
static tdm_sd_model *expect_ok(int line, const char *path, tdm_model_family fam) {
    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = load(path, NO_TOK, &m, &st);
    CHECK_MSG(rc == TDM_OK, "line %d: %s", line, st.msg);
    if (rc) return NULL;
    if (getenv("TDM_TEST_VERBOSE")) printf("loaded: %s\n", m->source);
    CHECK_MSG(m->family == fam, "line %d: family %s", line, tdm_family_name(m->family));
    CHECK(m->loaded == NO_TOK && m->unet && m->vae && m->text_encoder_2 && !m->tokenizer);
    const int refiner = fam == TDM_FAMILY_SDXL_REFINER;
    CHECK(refiner ? m->text_encoder == NULL : m->text_encoder != NULL);
    /* the UNet loader itself refuses unused or missing tensors */
    all_used(&m->vae->ws, "vae", manifest_count(g_base, "vae.json"), line);
    all_used(&m->text_encoder_2->ws, "text_encoder_2", manifest_count(g_base, "text_encoder_2.json"), line);
    if (m->text_encoder) all_used(&m->text_encoder->ws, "text_encoder", manifest_count(g_base, "text_encoder.json"), line);
    CHECK(m->cross_attention_dim == (refiner ? 1280 : 2048));
    CHECK(m->text_embeds_dim == 1280 && m->n_time_ids == (refiner ? 5 : 6));
    CHECK(m->requires_aesthetics_score == refiner && m->force_zeros_for_empty_prompt == !refiner);
    CHECK(m->clip_skip == 2 && m->clip_final_ln == 0);
    CHECK(m->text_encoder_2->cfg.num_hidden_layers == 32 && m->text_encoder_2->cfg.hidden_act == TDM_CLIP_ACT_GELU);
    CHECK(m->text_encoder_2->has_projection && m->text_encoder_2->cfg.projection_dim == 1280);
    CHECK(m->vae_scale == 8 && m->latent_channels == 4 && m->vae_scaling_factor == 0.13025);
    const tdm_unet_config *uc = tdm_unet_get_config(m->unet);
    CHECK(uc->addition_text_time && uc->addition_time_embed_dim == 256);
    CHECK(uc->projection_class_embeddings_input_dim == (refiner ? 2560 : 2816));
    CHECK(strcmp(m->scheduler.class_name, "EulerDiscreteScheduler") == 0);
    return m;
}

static void expect_fail(int line, const char *path, tdm_code code, const char *s1, const char *s2) {
    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = load(path, NO_TOK, &m, &st);
    if (getenv("TDM_TEST_VERBOSE")) printf("expected failure: %s\n", st.msg);
    CHECK_MSG(rc == code, "line %d: code %s, expected %s: %s", line, tdm_code_name(rc), tdm_code_name(code), st.msg);
    CHECK_MSG(strstr(st.msg, s1) != NULL, "line %d: message lacks '%s': %s", line, s1, st.msg);
    if (s2) CHECK_MSG(strstr(st.msg, s2) != NULL, "line %d: message lacks '%s': %s", line, s2, st.msg);
    CHECK(m == NULL);
    if (m) tdm_sd_model_free(m);
}

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tdm_test_tmpdir(), name); }

/* ---- SDXL base, diffusers folder ---------------------------------------------------------------- */

static void test_base_diffusers(void) {
    char root[1024];
    xl_folder x = {0};
    /* published text encoder files (transformers < 4.31) also hold position_ids: accepted and ignored */
    x.te.add_i64 = "text_model.embeddings.position_ids";
    x.te2.add_i64 = "text_model.embeddings.position_ids";
    path_of(root, sizeof root, "sdxl-base");
    build_xl(root, &x);
    tdm_sd_model *m = expect_ok(__LINE__, root, TDM_FAMILY_SDXL);
    if (m) {
        CHECK(strstr(m->source, "StableDiffusionXLPipeline") != NULL);
        tdm_sd_model_free(m);
    }

    /* with the tokenizers: tokenizer pads with <|endoftext|>, tokenizer_2 with "!" (split quirk) */
    if (add_tokenizers(root, 1)) {
        tdm_status st = {0};
        tdm_code rc = load(root, TDM_SD_TOKENIZER | TDM_SD_SCHEDULER, &m, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        if (!rc) {
            CHECK(m->tokenizer && m->tokenizer_2 && m->pad_id == 49407 && m->pad_id_2 == 0);
            CHECK(strcmp(m->split_token_2, "!") == 0);
            CHECK(strstr(m->source, "tokenizer_2") != NULL);
            tdm_sd_model_free(m);
        }
    }

    /* one tensor removed / one shape changed: each named with its file */
    const char *t = "text_model.encoder.layers.17.self_attn.k_proj.weight";
    path_of(root, sizeof root, "sdxl-te2-missing");
    x = (xl_folder){0};
    x.te2.remove = t;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, t, "text_encoder_2/model.safetensors");

    t = "text_projection.weight";
    path_of(root, sizeof root, "sdxl-te2-proj");
    x = (xl_folder){0};
    x.te2.reshape = t;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, t, "text_encoder_2");

    t = "add_embedding.linear_1.weight";
    path_of(root, sizeof root, "sdxl-unet-shape");
    x = (xl_folder){0};
    x.unet.reshape = t;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, t, "unet/diffusion_pytorch_model.safetensors");

    t = "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_v.weight";
    path_of(root, sizeof root, "sdxl-unet-missing");
    x = (xl_folder){0};
    x.unet.remove = t;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, t, "unet/diffusion_pytorch_model.safetensors");

    t = "text_model.final_layer_norm.bias";
    path_of(root, sizeof root, "sdxl-te-missing");
    x = (xl_folder){0};
    x.te.remove = t;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, t, "text_encoder/model.safetensors");

    /* an SDXL UNet without text_encoder_2 */
    path_of(root, sizeof root, "sdxl-no-te2");
    x = (xl_folder){0};
    x.no_te2 = 1;
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, "text_encoder_2", "model_index.json");
}

/* ---- SDXL refiner and LCM-SDXL UNets ------------------------------------------------------------- */

static void test_refiner_and_lcm(void) {
    char root[1024];
    xl_folder x = {0};
    x.refiner = 1;
    path_of(root, sizeof root, "sdxl-refiner");
    build_xl(root, &x);
    tdm_sd_model *m = expect_ok(__LINE__, root, TDM_FAMILY_SDXL_REFINER);
    if (m) tdm_sd_model_free(m);
    if (add_tokenizers(root, 0)) { /* tokenizer_2 only */
        tdm_status st = {0};
        tdm_code rc = load(root, TDM_SD_TOKENIZER, &m, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        if (!rc) {
            CHECK(m->tokenizer && !m->tokenizer_2 && m->pad_id == 0 && m->pad_id_2 == 0);
            CHECK(strcmp(m->split_token_2, "!") == 0 && strstr(m->tokenizer_files.dir, "tokenizer_2"));
            tdm_sd_model_free(m);
        }
    }
    /* model_index.json contradicting the UNet's time ids */
    path_of(root, sizeof root, "sdxl-base-aesthetic");
    x = (xl_folder){0};
    x.extra_index = ", \"requires_aesthetics_score\": true";
    build_xl(root, &x);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "requires_aesthetics_score", "6 time ids");

    path_of(root, sizeof root, "lcm-sdxl");
    x = (xl_folder){0};
    x.lcm = 1;
    build_xl(root, &x);
    m = expect_ok(__LINE__, root, TDM_FAMILY_SDXL);
    if (m) {
        CHECK(tdm_unet_get_config(m->unet)->time_cond_proj_dim == 256);
        tdm_sd_model_free(m);
    }
}

/* ---- SDXL base single file ---------------------------------------------------------------------- */

static void test_base_single(void) {
    cJSON *man = tdm_test_load_json(g_base, "single_file.json");
    char p[1024];
    path_of(p, sizeof p, "sd_xl_base_sparse.safetensors");
    /* the published file also holds position_ids (embedders.0) and logit_scale (embedders.1) */
    edit ed = {.add_i64 = "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
               .add_scalar = "conditioner.embedders.1.model.logit_scale"};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    tdm_sd_model *m = expect_ok(__LINE__, p, TDM_FAMILY_SDXL);
    if (m) {
        CHECK(m->layout == TDM_LAYOUT_SINGLE_FILE && strstr(m->source, "sdxl"));
        CHECK(strcmp(m->single_info.text_encoder_2_prefix, "conditioner.embedders.1.model.") == 0);
        CHECK(m->text_encoder->cfg.num_hidden_layers == 12 && m->text_encoder->cfg.hidden_act == TDM_CLIP_ACT_QUICK_GELU);
        tdm_sd_model_free(m);
    }

    /* OpenCLIP names are reported under their transformers names (q/k/v split from in_proj) */
    const char *t = "conditioner.embedders.1.model.transformer.resblocks.7.attn.in_proj_weight";
    path_of(p, sizeof p, "sdxl-single-missing.safetensors");
    ed = (edit){.remove = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_MISSING, "text_model.encoder.layers.7.self_attn", p);

    t = "conditioner.embedders.1.model.text_projection";
    path_of(p, sizeof p, "sdxl-single-proj.safetensors");
    ed = (edit){.reshape = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_FORMAT, "text_projection", p);

    t = "conditioner.embedders.0.transformer.text_model.encoder.layers.3.mlp.fc1.bias";
    path_of(p, sizeof p, "sdxl-single-te.safetensors");
    ed = (edit){.remove = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_MISSING, "text_model.encoder.layers.3.mlp.fc1.bias", p);

    t = "model.diffusion_model.label_emb.0.0.weight";
    path_of(p, sizeof p, "sdxl-single-unet.safetensors");
    ed = (edit){.reshape = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_FORMAT, t, p);

    path_of(p, sizeof p, "sdxl-single-extra.safetensors");
    ed = (edit){.add = "conditioner.embedders.1.model.transformer.resblocks.3.extra"};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_FORMAT, "resblocks.3.extra", NULL);
    cJSON_Delete(man);
}

int main(void) {
    const char *f = tdm_test_fixture("manifest-sdxl-base");
    if (!f) tdm_test_skip("fixtures ../shared/fixtures/manifest-sdxl-base not found (set TDM_FIXTURES)");
    snprintf(g_base, sizeof g_base, "%s", f);
    if (!(f = tdm_test_fixture("manifest-sdxl-refiner"))) tdm_test_skip("manifest-sdxl-refiner not found");
    snprintf(g_refiner, sizeof g_refiner, "%s", f);
    if (!(f = tdm_test_fixture("manifest-lcm-sdxl"))) tdm_test_skip("manifest-lcm-sdxl not found");
    snprintf(g_lcm, sizeof g_lcm, "%s", f);
    test_base_diffusers();
    test_refiner_and_lcm();
    test_base_single();
    return tdm_test_result();
}
