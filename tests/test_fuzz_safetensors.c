/* Deterministic fuzzing (part of `make check`, seconds): thousands of mutated copies of a valid small
 * safetensors file and of valid config.json / scheduler_config.json / model_index.json texts run
 * through the same target as the libFuzzer driver (tests/fuzz/fuzz_target.h). Failure = crash,
 * sanitizer report or a violated invariant (abort). TDM_FUZZ_ITERS scales the number of mutations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_target.h"
#include "test_util.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* One random edit of buf[*n] (capacity cap). is_st: also mutate the 8-byte header length. */
static void mutate(uint8_t *buf, size_t *n, size_t cap, int is_st) {
    static const char interesting[] = ",:[]{}\"0123456789-.eE \\nul";
    int kind = (int)rnd_below(is_st ? 8 : 7);
    size_t len = *n;
    if (len == 0) return;
    size_t at = rnd_below(len);
    switch (kind) {
    case 0: buf[at] ^= (uint8_t)(1u << rnd_below(8)); break;
    case 1: buf[at] = (uint8_t)interesting[rnd_below(sizeof interesting - 1)]; break;
    case 2: buf[at] = (uint8_t)(rnd_below(4) == 0 ? 0 : rnd_below(3) == 0 ? 0xff : rnd()); break;
    case 3: *n = rnd_below(len + 1); break; /* truncate */
    case 4: {                                /* duplicate a chunk */
        size_t from = rnd_below(len), cnt = 1 + rnd_below(32);
        if (from + cnt > len) cnt = len - from;
        if (len + cnt > cap) break;
        uint8_t chunk[32];
        memcpy(chunk, buf + from, cnt);
        memmove(buf + at + cnt, buf + at, len - at);
        memcpy(buf + at, chunk, cnt);
        *n = len + cnt;
        break;
    }
    case 5: { /* insert digits (big numbers, long shapes) */
        size_t cnt = 1 + rnd_below(20);
        if (len + cnt > cap) break;
        memmove(buf + at + cnt, buf + at, len - at);
        for (size_t i = 0; i < cnt; i++) buf[at + i] = (uint8_t)('0' + rnd_below(10));
        *n = len + cnt;
        break;
    }
    case 6: { /* delete a chunk */
        size_t cnt = 1 + rnd_below(16);
        if (at + cnt > len) cnt = len - at;
        memmove(buf + at, buf + at + cnt, len - at - cnt);
        *n = len - cnt;
        break;
    }
    default: { /* header length field */
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = (h << 8) | buf[i];
        uint64_t choices[] = {h + 1, h - 1, h + 8, (uint64_t)len, (uint64_t)len - 8, rnd(), 0, UINT64_MAX, h >> 1};
        h = choices[rnd_below(sizeof choices / sizeof choices[0])];
        for (int i = 0; i < 8 && (size_t)i < len; i++) buf[i] = (uint8_t)(h >> (8 * i));
        break;
    }
    }
}

/* Runs iters mutated copies of seed (target byte prepended). */
static void run_mutations(int target, const uint8_t *seed, size_t seed_len, int iters, const char *dir) {
    size_t cap = seed_len * 2 + 256;
    uint8_t *buf = malloc(cap + 1);
    for (int it = 0; it < iters; it++) {
        buf[0] = (uint8_t)target;
        memcpy(buf + 1, seed, seed_len);
        size_t n = seed_len;
        int edits = 1 + (int)rnd_below(it % 7 == 0 ? 12 : 3);
        for (int e = 0; e < edits; e++) mutate(buf + 1, &n, cap - 1, target <= 1);
        tdm_fuzz_one(buf, n + 1, dir);
    }
    /* the unmutated seed too */
    buf[0] = (uint8_t)target;
    memcpy(buf + 1, seed, seed_len);
    tdm_fuzz_one(buf, seed_len + 1, dir);
    free(buf);
}

/* Each top-level field of a JSON seed replaced by each hostile value. */
static void run_field_swaps(int target, const char *seed_json, const char *dir) {
    static const char *const hostile[] = {
        "null", "true", "-1", "0", "1", "3.5", "1e300", "-1e300", "2147483648", "9223372036854775808", "\"\"",
        "\"x\"", "[]", "{}", "[0]", "[-1, 2]", "[1e12, 1e12, 1e12, 1e12]", "[\"a\", 1, null]",
        "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", "[[1, 2], [3]]"};
    cJSON *base = cJSON_Parse(seed_json);
    CHECK(base != NULL);
    if (!base) return;
    int n_fields = cJSON_GetArraySize(base);
    for (int f = 0; f < n_fields; f++) {
        for (size_t h = 0; h < sizeof hostile / sizeof hostile[0]; h++) {
            cJSON *j = cJSON_Duplicate(base, 1);
            cJSON *item = cJSON_GetArrayItem(j, f);
            cJSON_ReplaceItemViaPointer(j, item, cJSON_Parse(hostile[h]));
            char *text = cJSON_PrintUnformatted(j);
            size_t len = strlen(text);
            uint8_t *buf = malloc(len + 1);
            buf[0] = (uint8_t)target;
            memcpy(buf + 1, text, len);
            tdm_fuzz_one(buf, len + 1, dir);
            free(buf);
            free(text);
            cJSON_Delete(j);
        }
    }
    cJSON_Delete(base);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Published SD 1.5 configs (diffusers / transformers field names). */
static const char *UNET_CFG =
    "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\", \"attention_head_dim\": 8, "
    "\"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false, \"cross_attention_dim\": 768, "
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
    "\"downsample_padding\": 1, \"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, "
    "\"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64, "
    "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";
static const char *VAE_CFG =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [128, 256, 512, 512], "
    "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], "
    "\"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": 3, "
    "\"sample_size\": 512, \"scaling_factor\": 0.18215, "
    "\"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";
static const char *CLIP_CFG =
    "{\"architectures\": [\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0, \"eos_token_id\": 2, "
    "\"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, \"initializer_factor\": 1.0, \"intermediate_size\": 3072, "
    "\"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": \"clip_text_model\", "
    "\"num_attention_heads\": 12, \"num_hidden_layers\": 12, \"pad_token_id\": 1, \"projection_dim\": 768, "
    "\"torch_dtype\": \"float32\", \"vocab_size\": 49408}";
static const char *SCHED_CFG =
    "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
    "\"clip_sample\": false, \"num_train_timesteps\": 1000, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "
    "\"steps_offset\": 1, \"trained_betas\": null, \"prediction_type\": \"epsilon\", \"timestep_spacing\": \"leading\"}";
static const char *INDEX_CFG =
    "{\"_class_name\": \"StableDiffusionPipeline\", \"scheduler\": [\"diffusers\", \"PNDMScheduler\"], "
    "\"text_encoder\": [\"transformers\", \"CLIPTextModel\"], \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], "
    "\"vae\": [\"diffusers\", \"AutoencoderKL\"], \"safety_checker\": [null, null]}";

int main(void) {
    const char *dir = tdm_test_tmpdir();
    int scale = 1;
    const char *e = getenv("TDM_FUZZ_ITERS");
    if (e && atoi(e) > 0) scale = atoi(e);

    /* seed file: several dtypes, a 0-dim and an empty tensor, metadata, LDM-style names */
    float w[24];
    for (int i = 0; i < 24; i++) w[i] = (float)i * 0.25f - 3;
    uint16_t h[6] = {0x3c00, 0xbc00, 0x7c00, 0xfc00, 0x7e00, 0x0001}; /* 1, -1, inf, -inf, nan, denormal */
    int64_t ids[4] = {0, 1, 2, 49407};
    int64_t s_conv[4] = {2, 1, 3, 4}, s_h[1] = {6}, s_bf[2] = {2, 3}, s_ids[2] = {1, 4}, s_empty[2] = {0, 5};
    const char *names[] = {"model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.bias",
                           "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
                           "cond_stage_model.transformer.text_model.embeddings.position_ids", "scale", "empty"};
    tdm_tensor ts[6] = {tdm_tensor_view(TDM_F32, w, 4, s_conv), tdm_tensor_view(TDM_F16, h, 1, s_h),
                        tdm_tensor_view(TDM_BF16, h, 2, s_bf),  tdm_tensor_view(TDM_I64, ids, 2, s_ids),
                        tdm_tensor_view(TDM_F32, w, 0, NULL),   tdm_tensor_view(TDM_F32, w, 2, s_empty)};
    char seed_path[512];
    snprintf(seed_path, sizeof seed_path, "%s/seed.safetensors", dir);
    tdm_status st = {0};
    CHECK_MSG(tdm_st_write(seed_path, 6, names, ts, &st) == TDM_OK, "%s", st.msg);
    size_t seed_len = 0;
    uint8_t *seed = read_all(seed_path, &seed_len);
    CHECK(seed != NULL && seed_len > 8);
    if (!seed) return tdm_test_result();

    run_mutations(0, seed, seed_len, 3000 * scale, dir);
    const char *cfgs[4] = {UNET_CFG, VAE_CFG, CLIP_CFG, SCHED_CFG};
    for (int t = 2; t <= 5; t++) {
        run_mutations(t, (const uint8_t *)cfgs[t - 2], strlen(cfgs[t - 2]), 400 * scale, dir);
        run_field_swaps(t, cfgs[t - 2], dir);
    }
    run_mutations(5, (const uint8_t *)INDEX_CFG, strlen(INDEX_CFG), 400 * scale, dir);
    run_field_swaps(5, INDEX_CFG, dir);
    free(seed);
    printf("fuzz: %d safetensors + %d config mutations, no crash\n", 3000 * scale, 2000 * scale);
    return tdm_test_result();
}
