/* Loader coverage against the full-size tensor-name manifests (../shared/fixtures/manifest-sd15,
 * manifest-sd21): SPARSE safetensors files with exactly the published names and shapes (header written,
 * then ftruncate to the full size: no weight bytes, so GB-sized files cost nothing) are laid out as a
 * diffusers folder and as a single file and loaded through tdm_sd_model_load; every tensor must be
 * mapped, none missing, none unused. Variants with a tensor removed, a shape changed or an extra tensor
 * must fail naming that tensor. Manifest format: {tensor_name: [shape...]} (no dtypes). */
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

/* ---- folders ----------------------------------------------------------------------------------- */

static char g_fix[1024];

static const char *SCHED =
    "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
    "\"beta_start\": 0.00085, \"clip_sample\": false, \"num_train_timesteps\": 1000, \"set_alpha_to_one\": false, "
    "\"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null}";

typedef struct pipe_edits {
    edit unet, vae, te;
    int shard_unet; /* unet as two shards + index */
} pipe_edits;

/* A diffusers folder from a manifest case (unet, vae, text_encoder, scheduler; no tokenizer). */
static void build_diffusers(const char *root, const char *case_dir, const char *dt, const pipe_edits *pe) {
    cJSON *cs = tdm_test_load_json(case_dir, "case.json");
    const cJSON *cfg = cJSON_GetObjectItem(cs, "config");
    tdm_test_mkdirf("%s", root);
    tdm_test_write_strf(
        "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.27.2\", "
        "\"scheduler\": [\"diffusers\", \"PNDMScheduler\"], \"text_encoder\": [\"transformers\", \"CLIPTextModel\"], "
        "\"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], "
        "\"vae\": [\"diffusers\", \"AutoencoderKL\"], \"safety_checker\": [null, null]}",
        "%s/model_index.json", root);
    const char *comps[3] = {"unet", "vae", "text_encoder"};
    const edit *eds[3] = {&pe->unet, &pe->vae, &pe->te};
    for (int i = 0; i < 3; i++) {
        tdm_test_mkdirf("%s/%s", root, comps[i]);
        tdm_test_write_jsonf(cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, comps[i]), "config"), "%s/%s/config.json",
                             root, comps[i]);
        char mf[64], p[2048];
        snprintf(mf, sizeof mf, "%s.json", comps[i]);
        cJSON *man = tdm_test_load_json(case_dir, mf);
        if (i == 0 && pe->shard_unet) {
            /* names < "mid" in shard 1, the rest in shard 2 */
            cJSON *a = cJSON_CreateObject(), *b = cJSON_CreateObject(), *idx = cJSON_CreateObject();
            cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
            const cJSON *e;
            cJSON_ArrayForEach(e, man) {
                int first = strcmp(e->string, "mid") < 0;
                cJSON_AddItemToObject(first ? a : b, e->string, cJSON_Duplicate(e, 1));
                cJSON_AddStringToObject(wm, e->string, first ? "diffusion_pytorch_model-00001-of-00002.safetensors"
                                                             : "diffusion_pytorch_model-00002-of-00002.safetensors");
            }
            snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model-00001-of-00002.safetensors", root);
            CHECK(tdm_test_write_sparse(p, a, dt, eds[i]) == 0);
            snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model-00002-of-00002.safetensors", root);
            CHECK(tdm_test_write_sparse(p, b, dt, NULL) == 0);
            tdm_test_write_jsonf(idx, "%s/unet/diffusion_pytorch_model.safetensors.index.json", root);
            cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(idx);
        } else {
            snprintf(p, sizeof p, "%s/%s/%s", root, comps[i],
                     i == 2 ? "model.safetensors" : "diffusion_pytorch_model.safetensors");
            CHECK(tdm_test_write_sparse(p, man, dt, eds[i]) == 0);
        }
        cJSON_Delete(man);
    }
    tdm_test_mkdirf("%s/scheduler", root);
    tdm_test_write_strf(SCHED, "%s/scheduler/scheduler_config.json", root);
    cJSON_Delete(cs);
}

static tdm_code load(const char *path, const char *prediction, tdm_sd_model **m, tdm_status *st) {
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = path;
    o.prediction = prediction;
    o.components = TDM_SD_TEXT_ENCODER | TDM_SD_UNET | TDM_SD_VAE | TDM_SD_SCHEDULER; /* no tokenizer */
    return tdm_sd_model_load(m, &o, st);
}

static int manifest_count(const char *case_dir, const char *name) {
    cJSON *j = tdm_test_load_json(case_dir, name);
    int n = cJSON_GetArraySize(j);
    cJSON_Delete(j);
    return n;
}

/* Loads and checks that every tensor of the components' manifests was taken. */
static void expect_ok(int line, const char *path, const char *case_dir, tdm_model_family fam, int te_extra,
                      tdm_sd_model **keep) {
    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = load(path, NULL, &m, &st);
    CHECK_MSG(rc == TDM_OK, "line %d: %s", line, st.msg);
    if (rc) return;
    CHECK(m->family == fam);
    CHECK(m->loaded == (TDM_SD_TEXT_ENCODER | TDM_SD_UNET | TDM_SD_VAE | TDM_SD_SCHEDULER));
    CHECK(m->unet && m->vae && m->text_encoder && !m->tokenizer);
    /* the stores: every entry used (check_unused passed inside the loaders), counts as the manifest
     * (the position_ids buffer is dropped by the mapper; OpenCLIP q/k/v are split, layer 23 dropped) */
    int n_vae = manifest_count(case_dir, "vae.json"), n_te = manifest_count(case_dir, "text_encoder.json");
    CHECK_MSG(m->vae->ws.n == n_vae, "line %d: vae store %d tensors, manifest %d", line, m->vae->ws.n, n_vae);
    CHECK_MSG(m->text_encoder->ws.n == n_te, "line %d: text encoder store %d tensors, manifest %d", line,
              m->text_encoder->ws.n, n_te);
    for (int i = 0; i < m->vae->ws.n; i++) CHECK(m->vae->ws.w[i].used);
    for (int i = 0; i < m->text_encoder->ws.n; i++) CHECK(m->text_encoder->ws.w[i].used);
    (void)te_extra;
    CHECK(m->cross_attention_dim == (fam == TDM_FAMILY_SD1 ? 768 : 1024));
    CHECK(m->vae_scale == 8 && m->latent_channels == 4);
    CHECK(m->pad_id == tdm_family_default_pad_id(fam));
    const tdm_unet_config *uc = tdm_unet_get_config(m->unet);
    CHECK(uc && uc->cross_attention_dim == m->cross_attention_dim && uc->n_levels == 4 && uc->block_out_channels[3] == 1280);
    CHECK(uc && uc->use_linear_projection == (fam == TDM_FAMILY_SD2));
    if (uc && fam == TDM_FAMILY_SD2) CHECK(uc->num_heads[0] == 5 && uc->num_heads[3] == 20);
    CHECK(m->text_encoder->cfg.num_hidden_layers == (fam == TDM_FAMILY_SD1 ? 12 : 23));
    CHECK(m->text_encoder->cfg.hidden_act == (fam == TDM_FAMILY_SD1 ? TDM_CLIP_ACT_QUICK_GELU : TDM_CLIP_ACT_GELU));
    CHECK(m->scheduler.steps_offset == 1 && m->scheduler.beta_schedule == TDM_BETAS_SCALED_LINEAR);
    CHECK(m->source[0] != 0);
    if (getenv("TDM_TEST_VERBOSE")) printf("loaded: %s\n", m->source);
    if (keep) *keep = m;
    else tdm_sd_model_free(m);
}

static void expect_fail(int line, const char *path, tdm_code code, const char *s1, const char *s2) {
    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = load(path, NULL, &m, &st);
    if (getenv("TDM_TEST_VERBOSE")) printf("expected failure: %s\n", st.msg);
    CHECK_MSG(rc == code, "line %d: code %s, expected %s: %s", line, tdm_code_name(rc), tdm_code_name(code), st.msg);
    CHECK_MSG(strstr(st.msg, s1) != NULL, "line %d: message lacks '%s': %s", line, s1, st.msg);
    if (s2) CHECK_MSG(strstr(st.msg, s2) != NULL, "line %d: message lacks '%s': %s", line, s2, st.msg);
    CHECK(m == NULL);
    if (m) tdm_sd_model_free(m);
}

/* ---- SD 1.5 ------------------------------------------------------------------------------------ */

static void test_sd15_diffusers(const char *cd) {
    char root[1024];
    pipe_edits pe = {0};
    snprintf(root, sizeof root, "%s/sd15", tdm_test_tmpdir());
    build_diffusers(root, cd, "F16", &pe);
    expect_ok(__LINE__, root, cd, TDM_FAMILY_SD1, 0, NULL);

    /* transformers < 4.31 text encoder files hold position_ids: accepted and ignored; F32 weights */
    snprintf(root, sizeof root, "%s/sd15-posids", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.te.add_i64 = "text_model.embeddings.position_ids";
    build_diffusers(root, cd, "F32", &pe);
    expect_ok(__LINE__, root, cd, TDM_FAMILY_SD1, 1, NULL);

    /* one tensor removed / one shape changed / one extra: each named */
    const char *t = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    snprintf(root, sizeof root, "%s/sd15-missing", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.unet.remove = t;
    build_diffusers(root, cd, "F16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, t, "unet/diffusion_pytorch_model.safetensors");

    snprintf(root, sizeof root, "%s/sd15-shape", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.unet.reshape = "up_blocks.2.resnets.1.conv1.weight";
    build_diffusers(root, cd, "F16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "up_blocks.2.resnets.1.conv1.weight", "diffusion_pytorch_model.safetensors");

    snprintf(root, sizeof root, "%s/sd15-extra", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.vae.add = "decoder.extra.bias";
    build_diffusers(root, cd, "F16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "decoder.extra.bias", "vae");

    snprintf(root, sizeof root, "%s/sd15-te-missing", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.te.remove = "text_model.encoder.layers.5.mlp.fc2.bias";
    build_diffusers(root, cd, "F16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_MISSING, "text_model.encoder.layers.5.mlp.fc2.bias", "text_encoder/model.safetensors");

    snprintf(root, sizeof root, "%s/sd15-te-shape", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.te.reshape = "text_model.embeddings.position_embedding.weight";
    build_diffusers(root, cd, "F16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "text_model.embeddings.position_embedding.weight", "model.safetensors");

    /* bad config.json values are named */
    snprintf(root, sizeof root, "%s/sd15", tdm_test_tmpdir());
    char cfgp[1200];
    snprintf(cfgp, sizeof cfgp, "%s/unet/config.json", root);
    cJSON *cfg = NULL;
    tdm_status st = {0};
    CHECK(tdm_json_load(cfgp, &cfg, &st) == TDM_OK);
    char *orig = cJSON_Print(cfg);
    cJSON_ReplaceItemInObject(cfg, "cross_attention_dim", cJSON_CreateString("768"));
    tdm_test_write_jsonf(cfg, "%s", cfgp);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "cross_attention_dim", "unet/config.json");
    cJSON_ReplaceItemInObject(cfg, "cross_attention_dim", cJSON_CreateNumber(2048));
    tdm_test_write_jsonf(cfg, "%s", cfgp);
    expect_fail(__LINE__, root, TDM_ERR_UNSUPPORTED, "2048", NULL);
    tdm_test_write_strf(orig, "%s", cfgp);
    free(orig);
    cJSON_Delete(cfg);
}

static void test_sd15_single(const char *cd) {
    char p[1024];
    cJSON *man = tdm_test_load_json(cd, "single_file.json");
    snprintf(p, sizeof p, "%s/v1-5-sparse.safetensors", tdm_test_tmpdir());
    /* real files also hold position_ids and schedule buffers outside the components */
    edit ed = {.add_i64 = "cond_stage_model.transformer.text_model.embeddings.position_ids", .add = "alphas_cumprod"};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_ok(__LINE__, p, cd, TDM_FAMILY_SD1, 1, NULL);

    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    CHECK(load(p, "v", &m, &st) == TDM_OK);
    if (m) {
        CHECK(m->scheduler.prediction_type == TDM_PRED_V && strstr(m->prediction_source, "--prediction"));
        CHECK(m->layout == TDM_LAYOUT_SINGLE_FILE && strstr(m->source, "single file"));
        tdm_sd_model_free(m);
    }
    CHECK(load(p, "x-pred", &m, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "x-pred"));

    /* with the tokenizer: an explicit folder (the shared CLIP tokenizer fixture), else a clear error */
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = p;
    o.components = TDM_SD_TOKENIZER | TDM_SD_UNET;
    char empty[1024];
    snprintf(empty, sizeof empty, "%s/empty-hub", tdm_test_tmpdir());
    mkdir(empty, 0755);
    setenv("HF_HUB_CACHE", empty, 1);
    tdm_code rc = tdm_sd_model_load(&m, &o, &st);
    CHECK_MSG(rc == TDM_ERR_MISSING && strstr(st.msg, "--tokenizer") && strstr(st.msg, "openai/clip-vit-large-patch14"),
              "%s", st.msg);
    const char *tok = tdm_test_fixture("tokenizer-clip");
    if (tok) {
        o.tokenizer_dir = tok;
        rc = tdm_sd_model_load(&m, &o, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        if (rc == TDM_OK) {
            CHECK(m->tokenizer != NULL && m->loaded == (TDM_SD_TOKENIZER | TDM_SD_UNET) && m->pad_id == 49407);
            CHECK(strstr(m->source, "--tokenizer") != NULL);
            tdm_sd_model_free(m);
        }
    }
    unsetenv("HF_HUB_CACHE");

    /* early SD1 files: cond_stage_model.transformer.embeddings.* (no "text_model." level) */
    {
        cJSON *old = cJSON_CreateObject();
        const cJSON *e;
        const char *pre = "cond_stage_model.transformer.text_model.";
        cJSON_ArrayForEach(e, man) {
            char nm[512];
            if (!strncmp(e->string, pre, strlen(pre)))
                snprintf(nm, sizeof nm, "cond_stage_model.transformer.%s", e->string + strlen(pre));
            else
                snprintf(nm, sizeof nm, "%s", e->string);
            cJSON_AddItemToObject(old, nm, cJSON_Duplicate(e, 1));
        }
        snprintf(p, sizeof p, "%s/v1-old-names.safetensors", tdm_test_tmpdir());
        CHECK(tdm_test_write_sparse(p, old, "F16", NULL) == 0);
        expect_ok(__LINE__, p, cd, TDM_FAMILY_SD1, 0, NULL);
        cJSON_Delete(old);
    }

    const char *t = "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn1.to_q.weight";
    snprintf(p, sizeof p, "%s/v1-5-missing.safetensors", tdm_test_tmpdir());
    ed = (edit){.remove = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    /* reported under its diffusers name, with the file */
    expect_fail(__LINE__, p, TDM_ERR_MISSING, "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_q.weight", p);

    t = "first_stage_model.decoder.mid.attn_1.q.weight";
    snprintf(p, sizeof p, "%s/v1-5-shape.safetensors", tdm_test_tmpdir());
    ed = (edit){.reshape = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_FORMAT, t, NULL);

    t = "cond_stage_model.transformer.text_model.encoder.layers.11.self_attn.v_proj.bias";
    snprintf(p, sizeof p, "%s/v1-5-te.safetensors", tdm_test_tmpdir());
    ed = (edit){.remove = t};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_MISSING, "text_model.encoder.layers.11.self_attn.v_proj.bias", NULL);

    snprintf(p, sizeof p, "%s/v1-5-extra.safetensors", tdm_test_tmpdir());
    ed = (edit){.add = "model.diffusion_model.input_blocks.1.1.extra.weight"};
    CHECK(tdm_test_write_sparse(p, man, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_FORMAT, "input_blocks.1.1.extra.weight", NULL);
    cJSON_Delete(man);
}

/* ---- SD 2.1 ------------------------------------------------------------------------------------ */

static void test_sd21_diffusers(const char *cd) {
    char root[1024];
    pipe_edits pe = {0};
    snprintf(root, sizeof root, "%s/sd21", tdm_test_tmpdir());
    pe.shard_unet = 1;
    build_diffusers(root, cd, "F16", &pe);
    expect_ok(__LINE__, root, cd, TDM_FAMILY_SD2, 0, NULL);

    snprintf(root, sizeof root, "%s/sd21-shape", tdm_test_tmpdir());
    pe = (pipe_edits){0};
    pe.unet.reshape = "down_blocks.0.attentions.0.proj_in.weight";
    build_diffusers(root, cd, "BF16", &pe);
    expect_fail(__LINE__, root, TDM_ERR_FORMAT, "down_blocks.0.attentions.0.proj_in.weight", NULL);
}

/* An SD2.x single file (v2-1_768-ema-pruned layout) derived from the manifests: UNet and VAE names of
 * the SD1.5 single file with SD2 shapes (linear proj_in/proj_out, 1024-wide context), and the OpenCLIP
 * ViT-H text tower (24 resblocks, in_proj stacked q|k|v, text_projection, logit_scale). */
static void test_sd21_single(const char *cd15, const char *cd21) {
    cJSON *man = tdm_test_load_json(cd15, "single_file.json");
    cJSON *out = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, man) {
        const char *n = e->string;
        if (!strncmp(n, "cond_stage_model.", 17)) continue;
        cJSON *shape = cJSON_Duplicate(e, 1);
        size_t len = strlen(n);
        if (strstr(n, "model.diffusion_model.") && (strstr(n, ".proj_in.weight") || strstr(n, ".proj_out.weight")) &&
            cJSON_GetArraySize(shape) == 4) {
            cJSON_DeleteItemFromArray(shape, 3);
            cJSON_DeleteItemFromArray(shape, 2);
        }
        if (len > 17 && (!strcmp(n + len - 17, "attn2.to_k.weight") || !strcmp(n + len - 17, "attn2.to_v.weight")))
            cJSON_ReplaceItemInArray(shape, 1, cJSON_CreateNumber(1024));
        cJSON_AddItemToObject(out, n, shape);
    }
    const int C = 1024, I = 4096;
    char name[256];
#define ADD(nm, ...)                                                                               \
    cJSON_AddItemToObject(out, nm, cJSON_CreateIntArray((const int[]){__VA_ARGS__}, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))))
    ADD("cond_stage_model.model.token_embedding.weight", 49408, C);
    ADD("cond_stage_model.model.positional_embedding", 77, C);
    ADD("cond_stage_model.model.ln_final.weight", C);
    ADD("cond_stage_model.model.ln_final.bias", C);
    ADD("cond_stage_model.model.text_projection", C, C);
    cJSON_AddItemToObject(out, "cond_stage_model.model.logit_scale", cJSON_CreateArray());
    for (int l = 0; l < 24; l++) {
        const char *parts[][3] = {{"ln_1.weight", "", ""}, {"ln_1.bias", "", ""}, {"ln_2.weight", "", ""},
                                  {"ln_2.bias", "", ""}};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.%s", l, parts[k][0]);
            ADD(name, C);
        }
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_weight", l);
        ADD(name, 3 * C, C);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.attn.in_proj_bias", l);
        ADD(name, 3 * C);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.attn.out_proj.weight", l);
        ADD(name, C, C);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.attn.out_proj.bias", l);
        ADD(name, C);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.mlp.c_fc.weight", l);
        ADD(name, I, C);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.mlp.c_fc.bias", l);
        ADD(name, I);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.mlp.c_proj.weight", l);
        ADD(name, C, I);
        snprintf(name, sizeof name, "cond_stage_model.model.transformer.resblocks.%d.mlp.c_proj.bias", l);
        ADD(name, C);
    }
#undef ADD
    char p[1024];
    snprintf(p, sizeof p, "%s/v2-1-sparse.safetensors", tdm_test_tmpdir());
    CHECK(tdm_test_write_sparse(p, out, "F16", NULL) == 0);
    tdm_sd_model *m = NULL;
    expect_ok(__LINE__, p, cd21, TDM_FAMILY_SD2, 0, &m);
    if (m) {
        /* all-zero (sparse) norm bias: the heuristic says epsilon, and says it is a guess */
        CHECK(m->scheduler.prediction_type == TDM_PRED_EPSILON && strstr(m->prediction_source, "--prediction"));
        CHECK(m->single_info.text_encoder_kind == TDM_TE_OPEN_CLIP);
        tdm_sd_model_free(m);
    }
    const char *t = "cond_stage_model.model.transformer.resblocks.7.attn.in_proj_weight";
    snprintf(p, sizeof p, "%s/v2-1-missing.safetensors", tdm_test_tmpdir());
    edit ed = {.remove = t};
    CHECK(tdm_test_write_sparse(p, out, "F16", &ed) == 0);
    expect_fail(__LINE__, p, TDM_ERR_MISSING, "text_model.encoder.layers.7.self_attn", NULL);
    cJSON_Delete(out);
    cJSON_Delete(man);
}

int main(void) {
    const char *f15 = tdm_test_fixture("manifest-sd15");
    if (!f15) tdm_test_skip("fixtures ../shared/fixtures/manifest-sd15 not found (set TDM_FIXTURES)");
    snprintf(g_fix, sizeof g_fix, "%s", f15);
    char cd15[1024], cd21[1024];
    snprintf(cd15, sizeof cd15, "%s", f15);
    const char *f21 = tdm_test_fixture("manifest-sd21");
    if (!f21) tdm_test_skip("fixtures ../shared/fixtures/manifest-sd21 not found (set TDM_FIXTURES)");
    snprintf(cd21, sizeof cd21, "%s", f21);
    test_sd15_diffusers(cd15);
    test_sd15_single(cd15);
    test_sd21_diffusers(cd21);
    test_sd21_single(cd15, cd21);
    return tdm_test_result();
}
