/* UNet2DConditionModel: fixtures (SD1.5 incl. f16 and single-file, non-square, SD2, LCM, SDXL), weight
 * errors (missing / wrong shape / extra tensor named), config.json errors naming the field, the
 * ControlNet residual hook, thread-count independence and input validation. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/threadpool.h"
#include "models/unet.h"
#include "tandem.h"
#include "test_util.h"

static void quiet(void *user, const char *line) {
    (void)user;
    if (strncmp(line, "FAIL", 4) == 0 || getenv("TDM_VERBOSE")) printf("  %s\n", line);
}

static int run_fixtures(void) {
    static const char *const names[] = {"unet-sd15-tiny", "unet-sd15-tiny-nonsquare", "unet-sd2-tiny", "unet-lcm-tiny",
                                        "unet-sdxl-tiny"};
    int ran = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *p = tdm_test_fixture(names[i]);
        if (!p) {
            printf("fixture %s absent: skipped\n", names[i]);
            continue;
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", p);
        int np = 0, nf = 0;
        tdm_status st;
        tdm_status_clear(&st);
        tdm_code rc = tdm_check_fixture(dir, 2, quiet, NULL, &np, &nf, &st);
        CHECK_MSG(rc == TDM_OK, "%s: %s", names[i], st.msg);
        CHECK_MSG(nf == 0, "%s: %d failures", names[i], nf);
        CHECK_MSG(np >= 10, "%s: only %d comparisons passed", names[i], np);
        printf("%-28s %d passed, %d failed\n", names[i], np, nf);
        ran++;
    }
    return ran;
}

/* ---- weight errors ----------------------------------------------------------------------------- */

typedef struct tensor_list {
    const char *names[1024];
    tdm_tensor t[1024];
    int n;
} tensor_list;

static void list_file(const tdm_safetensors *f, tensor_list *l) {
    l->n = 0;
    for (int i = 0; i < f->n_entries && l->n < 1024; i++) {
        l->names[l->n] = f->entries[i].name;
        l->t[l->n] = tdm_st_view(f, &f->entries[i]);
        l->n++;
    }
}

/* Writes l to a file, loads it as a UNet with cfg: returns the code and the message in st. */
static tdm_code load_list(const tensor_list *l, const char *file, const tdm_unet_config *cfg, tdm_status *st) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tdm_test_tmpdir(), file);
    tdm_code rc = tdm_st_write(path, l->n, l->names, l->t, st);
    if (rc) return rc;
    tdm_weights ws;
    tdm_weights_init(&ws, "unet");
    rc = tdm_weights_add_file(&ws, path, "", NULL, NULL, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    tdm_unet *u = NULL;
    rc = tdm_unet_load(&u, cfg, &ws, st);
    tdm_weights_free(&ws); /* moved into the unet: must be harmless */
    tdm_unet_free(u);
    return rc;
}

static int find_name(const tensor_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return i;
    return -1;
}

static void test_weight_errors(const char *model_dir) {
    char path[4096];
    tdm_status st;
    tdm_unet_config cfg;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    CHECK(tdm_unet_config_load(path, &cfg, &st) == TDM_OK);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", model_dir);
    tdm_safetensors f;
    if (tdm_st_open(&f, path, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    static tensor_list l;
    list_file(&f, &l);

    /* unmodified: loads */
    CHECK_MSG(load_list(&l, "ok.safetensors", &cfg, &st) == TDM_OK, "%s", st.msg);

    /* missing tensor */
    const char *victim = "mid_block.resnets.1.conv2.bias";
    int vi = find_name(&l, victim);
    CHECK(vi >= 0);
    if (vi >= 0) {
        tensor_list *m = malloc(sizeof *m);
        *m = l;
        m->names[vi] = m->names[m->n - 1];
        m->t[vi] = m->t[m->n - 1];
        m->n--;
        tdm_code rc = load_list(m, "missing.safetensors", &cfg, &st);
        CHECK(rc == TDM_ERR_MISSING);
        CHECK_MSG(strstr(st.msg, victim) != NULL, "message: %s", st.msg);
        free(m);
    }
    /* wrong shape: conv_in.weight [16, 4, 3, 3] stored as [16, 4, 9, 1] */
    int ci = find_name(&l, "conv_in.weight");
    CHECK(ci >= 0);
    if (ci >= 0) {
        tensor_list *m = malloc(sizeof *m);
        *m = l;
        tdm_tensor t = m->t[ci];
        m->t[ci] = tdm_tensor_view(t.dtype, t.data, 4, (int64_t[]){t.shape[0], t.shape[1], 9, 1});
        tdm_code rc = load_list(m, "shape.safetensors", &cfg, &st);
        CHECK(rc == TDM_ERR_FORMAT);
        CHECK_MSG(strstr(st.msg, "conv_in.weight") && strstr(st.msg, "[16, 4, 9, 1]"), "message: %s", st.msg);
        free(m);
    }
    /* extra tensor */
    {
        tensor_list *m = malloc(sizeof *m);
        *m = l;
        m->names[m->n] = "down_blocks.0.resnets.0.extra_gain";
        m->t[m->n] = l.t[0];
        m->n++;
        tdm_code rc = load_list(m, "extra.safetensors", &cfg, &st);
        CHECK(rc == TDM_ERR_FORMAT);
        CHECK_MSG(strstr(st.msg, "down_blocks.0.resnets.0.extra_gain") != NULL, "message: %s", st.msg);
        free(m);
    }
    /* F16 conversion of a weight is accepted by shape (dtype F16 widened by the operators) - covered by
     * the fixture's model-f16; a BF16 / integer tensor of the right shape: integer must be refused */
    {
        tensor_list *m = malloc(sizeof *m);
        *m = l;
        tdm_tensor t = m->t[ci];
        t.dtype = TDM_I32; /* same byte size as F32 */
        m->t[ci] = t;
        tdm_code rc = load_list(m, "dtype.safetensors", &cfg, &st);
        CHECK(rc != TDM_OK);
        CHECK_MSG(strstr(st.msg, "conv_in.weight") != NULL, "message: %s", st.msg);
        free(m);
    }
    tdm_st_close(&f);
}

/* ---- config errors ------------------------------------------------------------------------------ */

/* Loads config.json with `key` replaced by the JSON text `value` (NULL: deleted); expects an error
 * whose message contains `field`. */
static void config_case(const cJSON *base, const char *key, const char *value, const char *field) {
    cJSON *j = cJSON_Duplicate(base, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value) cJSON_AddItemToObject(j, key, cJSON_Parse(value));
    char *text = cJSON_Print(j);
    char path[512];
    snprintf(path, sizeof path, "%s/config_%s.json", tdm_test_tmpdir(), key);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    tdm_unet_config cfg;
    tdm_status st;
    tdm_status_clear(&st);
    tdm_code rc = tdm_unet_config_load(path, &cfg, &st);
    CHECK_MSG(rc != TDM_OK, "%s = %s accepted", key, value ? value : "(deleted)");
    CHECK_MSG(strstr(st.msg, field) != NULL, "%s = %s: message '%s' does not name '%s'", key,
              value ? value : "(deleted)", st.msg, field);
    free(text);
    cJSON_Delete(j);
}

static void test_config_errors(const char *model_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    cJSON *base;
    tdm_status st;
    if (tdm_json_load(path, &base, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    config_case(base, "norm_num_groups", "7", "norm_num_groups");
    config_case(base, "norm_num_groups", "0", "norm_num_groups");
    config_case(base, "attention_head_dim", "5", "attention_head_dim");
    config_case(base, "attention_head_dim", "[8, 8]", "attention_head_dim");
    config_case(base, "attention_head_dim", "\"eight\"", "attention_head_dim");
    config_case(base, "block_out_channels", "[16, -32, 32, 32]", "block_out_channels");
    config_case(base, "block_out_channels", "[16, 32, 32, 32, 32, 32, 32, 32]", "block_out_channels");
    config_case(base, "block_out_channels", "[16, 32, 32, 1000000000]", "block_out_channels");
    config_case(base, "block_out_channels", NULL, "block_out_channels");
    config_case(base, "down_block_types", "[\"CrossAttnDownBlock2D\", \"DownBlock2D\"]", "down_block_types");
    config_case(base, "down_block_types",
                "[\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\"]",
                "down_block_types");
    config_case(base, "up_block_types", "[\"UpBlock2D\"]", "up_block_types");
    config_case(base, "mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type");
    config_case(base, "layers_per_block", "1000", "layers_per_block");
    config_case(base, "layers_per_block", "2.5", "layers_per_block");
    config_case(base, "cross_attention_dim", "\"wide\"", "cross_attention_dim");
    config_case(base, "cross_attention_dim", "-3", "cross_attention_dim");
    config_case(base, "transformer_layers_per_block", "[1, 2]", "transformer_layers_per_block");
    config_case(base, "transformer_layers_per_block", "100000", "transformer_layers_per_block");
    config_case(base, "norm_eps", "-1", "norm_eps");
    config_case(base, "in_channels", "0", "in_channels");
    config_case(base, "use_linear_projection", "3", "use_linear_projection");
    config_case(base, "addition_embed_type", "\"image\"", "addition_embed_type");
    config_case(base, "class_embed_type", "\"timestep\"", "class_embed_type");
    config_case(base, "resnet_time_scale_shift", "\"scale_shift\"", "resnet_time_scale_shift");
    config_case(base, "time_cond_proj_dim", "-5", "time_cond_proj_dim");
    /* text_time needs its dims */
    {
        cJSON *j = cJSON_Duplicate(base, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "projection_class_embeddings_input_dim");
        config_case(j, "addition_embed_type", "\"text_time\"", "addition_time_embed_dim");
        cJSON_Delete(j);
    }
    cJSON_Delete(base);
}

/* ---- forward: ControlNet hook, thread independence, input checks ---------------------------------- */

static float *io_tensor(const tdm_safetensors *io, const char *name, int64_t *numel) {
    const tdm_st_entry *e = tdm_st_find(io, name);
    if (!e) return NULL;
    tdm_tensor t = tdm_st_view(io, e);
    int64_t n = tdm_tensor_numel(&t);
    float *p = malloc((size_t)n * sizeof(float));
    tdm_status st;
    if (p && tdm_tensor_to_f32(&t, p, &st)) {
        free(p);
        return NULL;
    }
    if (numel) *numel = n;
    return p;
}

static tdm_unet *load_dir(const char *model_dir) {
    char path[4096];
    tdm_status st;
    tdm_unet_config cfg;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    if (tdm_unet_config_load(path, &cfg, &st)) return NULL;
    tdm_weights ws;
    tdm_weights_init(&ws, "unet");
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", model_dir);
    if (tdm_weights_add_file(&ws, path, "", NULL, NULL, &st) || tdm_weights_finish(&ws, &st)) {
        tdm_weights_free(&ws);
        return NULL;
    }
    tdm_unet *u = NULL;
    if (tdm_unet_load(&u, &cfg, &ws, &st)) return NULL;
    return u;
}

static double rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_controlnet_hook(const char *cn_dir, const tdm_unet *u) {
    char path[4096];
    tdm_status st;
    snprintf(path, sizeof path, "%s/io.safetensors", cn_dir);
    tdm_safetensors io;
    if (tdm_st_open(&io, path, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    int64_t n_out = 0, n_ctx = 0;
    float *sample = io_tensor(&io, "sample", &n_out), *t = io_tensor(&io, "timestep", NULL);
    float *ctx = io_tensor(&io, "encoder_hidden_states", &n_ctx);
    float *expect = io_tensor(&io, "cs1_0.noise_pred", NULL), *base = io_tensor(&io, "noise_pred_nocontrol", NULL);
    int ns = tdm_unet_n_skips(u);
    CHECK(ns == 12);
    float *res[32] = {0};
    int ok = sample && t && ctx && expect && base && ns <= 32;
    for (int i = 0; ok && i < ns; i++) {
        char name[64];
        snprintf(name, sizeof name, "cs1_0.down_block_res_samples.%d", i);
        res[i] = io_tensor(&io, name, NULL);
        ok = res[i] != NULL;
    }
    float *mid = ok ? io_tensor(&io, "cs1_0.mid_block_res_sample", NULL) : NULL;
    CHECK(ok && mid);
    if (ok && mid) {
        tdm_unet_inputs in;
        memset(&in, 0, sizeof in);
        in.B = 1;
        in.H = in.W = 16;
        in.sample = sample;
        in.timesteps = t;
        in.context = ctx;
        in.context_len = (int)(n_ctx / 32);
        float *out = malloc((size_t)n_out * sizeof(float));
        tdm_arena a;
        tdm_arena_init(&a, 1 << 20);
        tdm_exec ex = {NULL, 0};
        CHECK(tdm_unet_forward(u, &ex, &a, &in, out, &st) == TDM_OK);
        double r0 = rel_l2(out, base, n_out);
        CHECK_MSG(r0 < 2e-5, "no-control rel_l2 %.3e", r0);
        in.down_residuals = (const float *const *)res;
        in.n_down_residuals = ns;
        in.mid_residual = mid;
        CHECK(tdm_unet_forward(u, &ex, &a, &in, out, &st) == TDM_OK);
        double r1 = rel_l2(out, expect, n_out);
        CHECK_MSG(r1 < 2e-5, "controlnet residuals rel_l2 %.3e", r1);
        printf("controlnet hook: nocontrol rel_l2 %.3e, cs1_0 rel_l2 %.3e\n", r0, r1);
        /* wrong residual count is refused */
        in.n_down_residuals = ns - 1;
        CHECK(tdm_unet_forward(u, &ex, &a, &in, out, &st) == TDM_ERR_INVALID_ARG);
        tdm_arena_free(&a);
        free(out);
    }
    for (int i = 0; i < 32; i++) free(res[i]);
    free(mid);
    free(sample);
    free(t);
    free(ctx);
    free(expect);
    free(base);
    tdm_st_close(&io);
}

static void test_threads_and_inputs(const char *fx_dir, const tdm_unet *u) {
    char path[4096];
    tdm_status st;
    snprintf(path, sizeof path, "%s/io.safetensors", fx_dir);
    tdm_safetensors io;
    if (tdm_st_open(&io, path, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    int64_t n_out = 0, n_ctx = 0;
    float *sample = io_tensor(&io, "sample", &n_out), *t = io_tensor(&io, "timestep", NULL);
    float *ctx = io_tensor(&io, "encoder_hidden_states", &n_ctx);
    CHECK(sample && t && ctx);
    if (sample && t && ctx) {
        tdm_unet_inputs in;
        memset(&in, 0, sizeof in);
        in.B = 2;
        in.H = in.W = 16;
        in.sample = sample;
        in.timesteps = t;
        in.context = ctx;
        in.context_len = (int)(n_ctx / (2 * 32));
        float *o1 = malloc((size_t)n_out * sizeof(float)), *o3 = malloc((size_t)n_out * sizeof(float));
        tdm_arena a;
        tdm_arena_init(&a, 1 << 20);
        tdm_exec ex1 = {NULL, 0};
        tdm_pool *pool = NULL;
        CHECK(tdm_pool_create(&pool, 3, &st) == TDM_OK);
        tdm_exec ex3 = {pool, 0};
        CHECK(tdm_unet_forward(u, &ex1, &a, &in, o1, &st) == TDM_OK);
        CHECK(tdm_unet_forward(u, &ex3, &a, &in, o3, &st) == TDM_OK);
        CHECK_MSG(memcmp(o1, o3, (size_t)n_out * sizeof(float)) == 0, "1 vs 3 threads differ");
        CHECK_MSG(a.in_use == 0, "arena not released: %zu bytes", a.in_use);
        /* latent side not a multiple of 2^(levels-1) = 8 (diffusers' forward_upsample_size path):
         * 12 -> 6 -> 3 -> 2 down, then upsampled to each skip's size (2 -> 3 -> 6 -> 12) */
        in.H = 12;
        const int64_t n12 = n_out / 16 * 12;
        tdm_code rc = tdm_unet_forward(u, &ex1, &a, &in, o1, &st);
        CHECK_MSG(rc == TDM_OK, "odd latent: %s", st.msg);
        CHECK(tdm_unet_forward(u, &ex3, &a, &in, o3, &st) == TDM_OK);
        CHECK_MSG(memcmp(o1, o3, (size_t)n12 * sizeof(float)) == 0, "odd latent: 1 vs 3 threads differ");
        int finite = 1;
        for (int64_t i = 0; i < n12; i++) finite &= isfinite(o1[i]) != 0;
        CHECK(finite);
        in.H = 16;
        in.context = NULL;
        CHECK(tdm_unet_forward(u, &ex1, &a, &in, o1, &st) == TDM_ERR_INVALID_ARG);
        tdm_pool_free(pool);
        tdm_arena_free(&a);
        free(o1);
        free(o3);
    }
    free(sample);
    free(t);
    free(ctx);
    tdm_st_close(&io);
}


/* ---- single-file round trip: diffusers names -> LDM names (inverse of the mapper, written
 * independently from diffusers' convert_diffusers_to_original_stable_diffusion.py tables) ---------- */

static const char *const ldm_resnet[][2] = {{"norm1.", "in_layers.0."},         {"conv1.", "in_layers.2."},
                                            {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
                                            {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."}};

static void ldm_res(char *out, size_t n, const char *pre, const char *rest) {
    for (size_t i = 0; i < sizeof ldm_resnet / sizeof ldm_resnet[0]; i++)
        if (strncmp(rest, ldm_resnet[i][0], strlen(ldm_resnet[i][0])) == 0) {
            snprintf(out, n, "%s%s%s", pre, ldm_resnet[i][1], rest + strlen(ldm_resnet[i][0]));
            return;
        }
    snprintf(out, n, "%s%s", pre, rest);
}

static void to_ldm(const tdm_unet_config *c, const char *d, char *out, size_t n) {
    const int k = c->layers_per_block + 1;
    int i, j, off = 0;
    char pre[128];
    static const char *const simple[][2] = {{"time_embedding.linear_1.", "time_embed.0."},
                                            {"time_embedding.linear_2.", "time_embed.2."},
                                            {"add_embedding.linear_1.", "label_emb.0.0."},
                                            {"add_embedding.linear_2.", "label_emb.0.2."},
                                            {"conv_in.", "input_blocks.0.0."},
                                            {"conv_norm_out.", "out.0."},
                                            {"conv_out.", "out.2."}};
    for (size_t s = 0; s < sizeof simple / sizeof simple[0]; s++)
        if (strncmp(d, simple[s][0], strlen(simple[s][0])) == 0) {
            snprintf(out, n, "model.diffusion_model.%s%s", simple[s][1], d + strlen(simple[s][0]));
            return;
        }
    if (sscanf(d, "down_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off) {
        snprintf(pre, sizeof pre, "model.diffusion_model.input_blocks.%d.0.", k * i + j + 1);
        ldm_res(out, n, pre, d + off);
    } else if (off = 0, sscanf(d, "down_blocks.%d.attentions.%d.%n", &i, &j, &off) == 2 && off) {
        snprintf(out, n, "model.diffusion_model.input_blocks.%d.1.%s", k * i + j + 1, d + off);
    } else if (off = 0, sscanf(d, "down_blocks.%d.downsamplers.0.conv.%n", &i, &off) == 1 && off) {
        snprintf(out, n, "model.diffusion_model.input_blocks.%d.0.op.%s", k * (i + 1), d + off);
    } else if (off = 0, sscanf(d, "mid_block.resnets.%d.%n", &j, &off) == 1 && off) {
        snprintf(pre, sizeof pre, "model.diffusion_model.middle_block.%d.", 2 * j);
        ldm_res(out, n, pre, d + off);
    } else if (off = 0, sscanf(d, "mid_block.attentions.0.%n", &off) == 0 && off) {
        snprintf(out, n, "model.diffusion_model.middle_block.1.%s", d + off);
    } else if (off = 0, sscanf(d, "up_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off) {
        snprintf(pre, sizeof pre, "model.diffusion_model.output_blocks.%d.0.", k * i + j);
        ldm_res(out, n, pre, d + off);
    } else if (off = 0, sscanf(d, "up_blocks.%d.attentions.%d.%n", &i, &j, &off) == 2 && off) {
        snprintf(out, n, "model.diffusion_model.output_blocks.%d.1.%s", k * i + j, d + off);
    } else if (off = 0, sscanf(d, "up_blocks.%d.upsamplers.0.%n", &i, &off) == 1 && off) {
        snprintf(out, n, "model.diffusion_model.output_blocks.%d.%d.%s", k * i + k - 1, 1 + c->up_attn[i], d + off);
    } else {
        snprintf(out, n, "model.diffusion_model.%s", d);
    }
}

/* Writes fixture `name`'s diffusers weights under LDM names, loads them back through the mapper (config.json
 * config, and the inferred one with heads / norm groups from config.json) and compares noise_pred. */
static void test_single_file_roundtrip(const char *name) {
    const char *p = tdm_test_fixture(name);
    if (!p) return;
    char dir[2048], path[2200], out_path[512];
    snprintf(dir, sizeof dir, "%s", p);
    tdm_status st;
    tdm_unet_config cfg;
    snprintf(path, sizeof path, "%s/model/config.json", dir);
    if (tdm_unet_config_load(path, &cfg, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    snprintf(path, sizeof path, "%s/model/diffusion_pytorch_model.safetensors", dir);
    tdm_safetensors f;
    if (tdm_st_open(&f, path, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    static tensor_list l;
    static char names[1024][160];
    list_file(&f, &l);
    for (int i = 0; i < l.n; i++) {
        to_ldm(&cfg, l.names[i], names[i], sizeof names[i]);
        l.names[i] = names[i];
    }
    snprintf(out_path, sizeof out_path, "%s/%s-ldm.safetensors", tdm_test_tmpdir(), name);
    CHECK_MSG(tdm_st_write(out_path, l.n, l.names, l.t, &st) == TDM_OK, "%s", st.msg);

    tdm_safetensors lf;
    tdm_unet_config icfg;
    CHECK(tdm_st_open(&lf, out_path, &st) == TDM_OK);
    tdm_code rc = tdm_unet_config_infer(&lf, "model.diffusion_model.", &icfg, &st);
    tdm_st_close(&lf);
    CHECK_MSG(rc == TDM_OK, "%s: infer: %s", name, st.msg);
    if (rc == TDM_OK) {
        CHECK(icfg.n_levels == cfg.n_levels && icfg.layers_per_block == cfg.layers_per_block);
        CHECK(icfg.use_linear_projection == cfg.use_linear_projection);
        CHECK(icfg.cross_attention_dim == cfg.cross_attention_dim);
        CHECK(icfg.addition_text_time == cfg.addition_text_time);
        CHECK(icfg.projection_class_embeddings_input_dim == cfg.projection_class_embeddings_input_dim);
        CHECK(icfg.time_cond_proj_dim == cfg.time_cond_proj_dim);
        for (int i = 0; i < cfg.n_levels; i++) {
            CHECK(icfg.block_out_channels[i] == cfg.block_out_channels[i]);
            CHECK(icfg.down_attn[i] == cfg.down_attn[i] && icfg.up_attn[i] == cfg.up_attn[i]);
            if (cfg.down_attn[i]) CHECK(icfg.transformer_layers[i] == cfg.transformer_layers[i]);
            if (cfg.up_attn[i]) CHECK(icfg.transformer_layers_up[i] == cfg.transformer_layers_up[i]);
            icfg.num_heads[i] = cfg.num_heads[i]; /* tiny head dims are not the real 64 */
        }
        icfg.norm_num_groups = cfg.norm_num_groups;
        icfg.addition_time_embed_dim = cfg.addition_time_embed_dim;
    }

    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    tdm_safetensors io;
    CHECK(tdm_st_open(&io, path, &st) == TDM_OK);
    int64_t n_out = 0, n_ctx = 0, n_te = 0, n_ti = 0;
    float *sample = io_tensor(&io, "sample", &n_out), *t = io_tensor(&io, "timestep", NULL);
    float *ctx = io_tensor(&io, "encoder_hidden_states", &n_ctx), *expect = io_tensor(&io, "noise_pred", NULL);
    float *te = io_tensor(&io, "text_embeds", &n_te), *ti = io_tensor(&io, "time_ids", &n_ti);
    float *tc = io_tensor(&io, "timestep_cond", NULL);
    const tdm_st_entry *se = tdm_st_find(&io, "sample");
    for (int pass = 0; pass < 2 && se && sample && t && ctx && expect; pass++) {
        const tdm_unet_config *use = pass == 0 ? &cfg : &icfg;
        if (pass == 1 && rc != TDM_OK) break;
        tdm_weights ws;
        tdm_weights_init(&ws, "unet");
        tdm_code lrc = tdm_weights_add_file(&ws, out_path, "model.diffusion_model.", tdm_unet_ldm_mapper, (void *)use, &st);
        if (!lrc) lrc = tdm_weights_finish(&ws, &st);
        tdm_unet *u = NULL;
        if (!lrc) lrc = tdm_unet_load(&u, use, &ws, &st);
        else tdm_weights_free(&ws);
        CHECK_MSG(lrc == TDM_OK, "%s: %s", name, st.msg);
        if (lrc) break;
        tdm_unet_inputs in;
        memset(&in, 0, sizeof in);
        in.B = (int)se->shape[0];
        in.H = (int)se->shape[2];
        in.W = (int)se->shape[3];
        in.sample = sample;
        in.timesteps = t;
        in.context = ctx;
        in.context_len = (int)(n_ctx / (in.B * cfg.cross_attention_dim));
        if (te && ti) {
            in.text_embeds = te;
            in.text_embeds_dim = (int)(n_te / in.B);
            in.time_ids = ti;
            in.n_time_ids = (int)(n_ti / in.B);
        }
        in.timestep_cond = tc;
        float *out = malloc((size_t)n_out * sizeof(float));
        tdm_arena a;
        tdm_arena_init(&a, 1 << 20);
        tdm_exec ex = {NULL, 0};
        CHECK_MSG(tdm_unet_forward(u, &ex, &a, &in, out, &st) == TDM_OK, "%s", st.msg);
        double r = rel_l2(out, expect, n_out);
        CHECK_MSG(r < 2e-5, "%s single-file pass %d rel_l2 %.3e", name, pass, r);
        printf("%s single-file round trip (%s config): rel_l2 %.3e\n", name, pass ? "inferred" : "config.json", r);
        tdm_arena_free(&a);
        free(out);
        tdm_unet_free(u);
    }
    /* an LDM tensor with no diffusers equivalent is reported by name */
    {
        l.names[l.n] = "model.diffusion_model.input_blocks.1.0.bogus.weight";
        l.t[l.n] = l.t[0];
        l.n++;
        snprintf(out_path, sizeof out_path, "%s/%s-ldm-extra.safetensors", tdm_test_tmpdir(), name);
        CHECK(tdm_st_write(out_path, l.n, l.names, l.t, &st) == TDM_OK);
        tdm_weights ws;
        tdm_weights_init(&ws, "unet");
        tdm_code lrc = tdm_weights_add_file(&ws, out_path, "model.diffusion_model.", tdm_unet_ldm_mapper, &cfg, &st);
        if (!lrc) lrc = tdm_weights_finish(&ws, &st);
        tdm_unet *u = NULL;
        if (!lrc) lrc = tdm_unet_load(&u, &cfg, &ws, &st);
        else tdm_weights_free(&ws);
        CHECK(lrc != TDM_OK);
        CHECK_MSG(strstr(st.msg, "input_blocks.1.0.bogus.weight") != NULL, "message: %s", st.msg);
        tdm_unet_free(u);
    }
    free(sample);
    free(t);
    free(ctx);
    free(expect);
    free(te);
    free(ti);
    free(tc);
    tdm_st_close(&io);
    tdm_st_close(&f);
}


/* ---- real-model manifests: names + shapes of released checkpoints (no weights) ------------------- */

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const tdm_st_entry *)a)->name, ((const tdm_st_entry *)b)->name);
}

/* An in-memory "file" holding only names and shapes (views point at a dummy byte, never read). */
static int fake_file(const cJSON *manifest, const char *prefix, tdm_safetensors *f) {
    static unsigned char dummy[64];
    memset(f, 0, sizeof *f);
    f->path = "manifest";
    f->map = dummy;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, manifest) if (strncmp(e->string, prefix, strlen(prefix)) == 0) n++;
    f->entries = calloc((size_t)(n ? n : 1), sizeof *f->entries);
    if (!f->entries) return 0;
    cJSON_ArrayForEach(e, manifest) {
        if (strncmp(e->string, prefix, strlen(prefix)) != 0) continue;
        tdm_st_entry *en = &f->entries[f->n_entries++];
        en->name = e->string;
        en->dtype = TDM_F16;
        const cJSON *d;
        cJSON_ArrayForEach(d, e) if (en->ndim < TDM_MAX_DIMS) en->shape[en->ndim++] = (int64_t)d->valuedouble;
    }
    qsort(f->entries, (size_t)f->n_entries, sizeof *f->entries, cmp_entry);
    return 1;
}

static tdm_code load_fake(const tdm_safetensors *f, const char *prefix, tdm_name_mapper mapper,
                          const tdm_unet_config *cfg, tdm_status *st) {
    tdm_weights ws;
    tdm_weights_init(&ws, "unet");
    tdm_code rc = tdm_weights_add_opened(&ws, f, prefix, mapper, (void *)cfg, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    tdm_unet *u = NULL;
    rc = tdm_unet_load(&u, cfg, &ws, st);
    tdm_unet_free(u);
    return rc;
}

static void test_manifest(const char *name, const char *single_file) {
    const char *p = tdm_test_fixture(name);
    if (!p) return;
    char dir[2048], path[2200];
    snprintf(dir, sizeof dir, "%s", p);
    tdm_status st;
    cJSON *cj = NULL, *mj = NULL;
    snprintf(path, sizeof path, "%s/case.json", dir);
    CHECK(tdm_json_load(path, &cj, &st) == TDM_OK);
    snprintf(path, sizeof path, "%s/unet.json", dir);
    CHECK(tdm_json_load(path, &mj, &st) == TDM_OK);
    const cJSON *cfgj = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cj, "config"), "unet"), "config");
    tdm_unet_config cfg;
    tdm_code rc = cfgj ? tdm_unet_config_from_json(cfgj, name, &cfg, &st) : TDM_ERR_MISSING;
    CHECK_MSG(rc == TDM_OK, "%s: config: %s", name, st.msg);
    tdm_safetensors f;
    if (!rc && mj && fake_file(mj, "", &f)) {
        rc = load_fake(&f, "", NULL, &cfg, &st);
        CHECK_MSG(rc == TDM_OK, "%s: unet.json: %s", name, st.msg);
        printf("%s: unet.json (%d tensors) loads\n", name, f.n_entries);
        free(f.entries);
    }
    if (!rc && single_file) {
        cJSON *sj = NULL;
        snprintf(path, sizeof path, "%s/%s", dir, single_file);
        CHECK(tdm_json_load(path, &sj, &st) == TDM_OK);
        if (sj && fake_file(sj, "model.diffusion_model.", &f)) {
            tdm_unet_config icfg;
            rc = tdm_unet_config_infer(&f, "model.diffusion_model.", &icfg, &st);
            CHECK_MSG(rc == TDM_OK, "%s: infer: %s", name, st.msg);
            if (!rc) {
                /* every field the loader uses is inferred exactly for released models */
                CHECK(icfg.n_levels == cfg.n_levels && icfg.layers_per_block == cfg.layers_per_block);
                CHECK(icfg.norm_num_groups == cfg.norm_num_groups && icfg.time_embed_dim == cfg.time_embed_dim);
                CHECK(icfg.cross_attention_dim == cfg.cross_attention_dim);
                CHECK(icfg.use_linear_projection == cfg.use_linear_projection);
                CHECK(icfg.addition_text_time == cfg.addition_text_time &&
                      icfg.addition_time_embed_dim == cfg.addition_time_embed_dim &&
                      icfg.projection_class_embeddings_input_dim == cfg.projection_class_embeddings_input_dim);
                for (int i = 0; i < cfg.n_levels; i++) {
                    CHECK(icfg.block_out_channels[i] == cfg.block_out_channels[i]);
                    CHECK_MSG(icfg.num_heads[i] == cfg.num_heads[i], "%s heads[%d] %d vs %d", name, i,
                              icfg.num_heads[i], cfg.num_heads[i]);
                    CHECK(icfg.down_attn[i] == cfg.down_attn[i] && icfg.up_attn[i] == cfg.up_attn[i]);
                    if (cfg.down_attn[i]) CHECK(icfg.transformer_layers[i] == cfg.transformer_layers[i]);
                    if (cfg.up_attn[i]) CHECK(icfg.transformer_layers_up[i] == cfg.transformer_layers_up[i]);
                }
                rc = load_fake(&f, "model.diffusion_model.", tdm_unet_ldm_mapper, &icfg, &st);
                CHECK_MSG(rc == TDM_OK, "%s: %s via LDM mapper: %s", name, single_file, st.msg);
                printf("%s: %s (%d UNet tensors) infers and loads\n", name, single_file, f.n_entries);
            }
            free(f.entries);
        }
        cJSON_Delete(sj);
    }
    cJSON_Delete(cj);
    cJSON_Delete(mj);
}

static void test_embeddings(void) {
    /* timestep embedding, dim 4, no flip: [sin(t), sin(t e^(-ln(1e4)/2)), cos(t), cos(...)] */
    float t = 10.0f, o[5];
    tdm_timestep_embedding(&t, 1, 4, 0, 0, o);
    float f1 = expf((float)(-log(10000.0)) / 2.0f);
    CHECK(fabsf(o[0] - sinf(10.0f)) < 1e-6f && fabsf(o[2] - cosf(10.0f)) < 1e-6f);
    CHECK(fabsf(o[1] - sinf(10.0f * f1)) < 1e-6f && fabsf(o[3] - cosf(10.0f * f1)) < 1e-6f);
    tdm_timestep_embedding(&t, 1, 5, 1, 0, o); /* flip: cos first; odd dim: zero pad */
    CHECK(fabsf(o[0] - cosf(10.0f)) < 1e-6f && fabsf(o[2] - sinf(10.0f)) < 1e-6f && o[4] == 0.0f);
    float w = 0.0f, g[6];
    tdm_guidance_scale_embedding(&w, 1, 6, g); /* w = 0: sin 0, cos 1 */
    CHECK(g[0] == 0.0f && g[2] == 0.0f && g[3] == 1.0f && g[5] == 1.0f);
}

int main(void) {
    test_embeddings();
    const char *p = tdm_test_fixture("unet-sd15-tiny");
    if (!p) tdm_test_skip("fixture unet-sd15-tiny absent");
    char sd15[2048], model_dir[2048 + 16];
    snprintf(sd15, sizeof sd15, "%s", p);
    snprintf(model_dir, sizeof model_dir, "%s/model", sd15);

    int ran = run_fixtures();
    CHECK(ran >= 1);
    test_weight_errors(model_dir);
    test_config_errors(model_dir);
    test_single_file_roundtrip("unet-sdxl-tiny");
    test_single_file_roundtrip("unet-sd2-tiny");
    test_single_file_roundtrip("unet-lcm-tiny");
    test_manifest("manifest-sd15", "single_file.json");
    test_manifest("manifest-sd21", NULL);
    test_manifest("manifest-sdxl-base", "single_file.json");
    test_manifest("manifest-sdxl-refiner", NULL);
    test_manifest("manifest-lcm-dreamshaper-v7", NULL);
    test_manifest("manifest-lcm-sdxl", NULL);
    tdm_unet *u = load_dir(model_dir);
    CHECK(u != NULL);
    if (u) {
        test_threads_and_inputs(sd15, u);
        const char *cn = tdm_test_fixture("controlnet-sd15-tiny");
        if (cn) {
            char cn_dir[2048];
            snprintf(cn_dir, sizeof cn_dir, "%s", cn);
            test_controlnet_hook(cn_dir, u);
        }
        tdm_unet_free(u);
    }
    return tdm_test_result();
}
