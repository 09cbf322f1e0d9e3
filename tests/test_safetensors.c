/* safetensors reader against hostile files: every malformed header must be refused with the right
 * code and a message naming the file and (where there is one) the tensor; plus a tdm_st_write round trip. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/schedule.h"
#include "test_util.h"

static char g_path[512];

/* Writes u64 header length `hlen` (little-endian), the header text, then n_data zero bytes. */
static const char *write_raw(const char *name, uint64_t hlen, const char *header, size_t n_data) {
    snprintf(g_path, sizeof g_path, "%s/%s", tdm_test_tmpdir(), name);
    FILE *f = fopen(g_path, "wb");
    if (!f) {
        perror(g_path);
        exit(1);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < n_data; i++) fputc(0, f);
    fclose(f);
    return g_path;
}

/* Header with the right length. */
static const char *write_hdr(const char *name, const char *header, size_t n_data) {
    return write_raw(name, strlen(header), header, n_data);
}

static const char *write_bytes(const char *name, const void *bytes, size_t n) {
    snprintf(g_path, sizeof g_path, "%s/%s", tdm_test_tmpdir(), name);
    FILE *f = fopen(g_path, "wb");
    if (!f) exit(1);
    fwrite(bytes, 1, n, f);
    fclose(f);
    return g_path;
}

/* Opens path expecting failure with `code` and a message that names the file and contains each of
 * the given substrings (NULL-terminated list). */
static void expect_fail_(int line, const char *path, tdm_code code, const char *const *subs) {
    tdm_safetensors f;
    tdm_status st = {0};
    tdm_code rc = tdm_st_open(&f, path, &st);
    if (rc == TDM_OK) {
        fprintf(stderr, "line %d: %s opened but should have been refused\n", line, path);
        tdm_test_failures++;
        tdm_st_close(&f);
        return;
    }
    CHECK_MSG(rc == code, "line %d: code %s, expected %s (%s)", line, tdm_code_name(rc), tdm_code_name(code), st.msg);
    CHECK_MSG(st.code == rc, "line %d: status code mismatch", line);
    CHECK_MSG(strstr(st.msg, path) != NULL, "line %d: message does not name the file: %s", line, st.msg);
    for (int i = 0; subs[i]; i++)
        CHECK_MSG(strstr(st.msg, subs[i]) != NULL, "line %d: message lacks '%s': %s", line, subs[i], st.msg);
    CHECK(f.map == NULL && f.entries == NULL && f.path == NULL); /* closed on failure */
}
#define EXPECT_FAIL(path, code, ...)                                                               \
    do {                                                                                           \
        const char *subs_[] = {__VA_ARGS__, NULL};                                                 \
        expect_fail_(__LINE__, path, code, subs_);                                                 \
    } while (0)

static void test_truncated(void) {
    EXPECT_FAIL(write_bytes("empty.safetensors", "", 0), TDM_ERR_FORMAT, "truncated");
    EXPECT_FAIL(write_bytes("short.safetensors", "\x10\0\0", 3), TDM_ERR_FORMAT, "truncated");
    /* valid header, data section cut short: 16 bytes declared, 8 present */
    EXPECT_FAIL(write_hdr("cut.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8),
                TDM_ERR_FORMAT, "'w'", "outside the data section");
    /* header itself cut short: length says 200, file holds 20 */
    EXPECT_FAIL(write_raw("hdrcut.safetensors", 200, "{\"w\":{\"dtype\":\"F32\"", 0), TDM_ERR_FORMAT, "header length");
}

static void test_header_length(void) {
    EXPECT_FAIL(write_raw("past.safetensors", 1000, "{}", 16), TDM_ERR_FORMAT, "header length 1000");
    EXPECT_FAIL(write_raw("huge.safetensors", UINT64_MAX, "{}", 16), TDM_ERR_FORMAT, "header length");
    EXPECT_FAIL(write_raw("huge2.safetensors", (uint64_t)1 << 62, "{}", 16), TDM_ERR_FORMAT, "header length");
    /* header length 0: no JSON at all */
    EXPECT_FAIL(write_raw("zero.safetensors", 0, "", 16), TDM_ERR_FORMAT, "JSON");
}

static void test_json(void) {
    EXPECT_FAIL(write_hdr("badjson.safetensors", "{\"w\": {\"dtype\": \"F32\",", 0), TDM_ERR_FORMAT, "JSON");
    EXPECT_FAIL(write_hdr("notobj.safetensors", "[1, 2, 3]", 0), TDM_ERR_FORMAT, "not a valid JSON object");
    EXPECT_FAIL(write_hdr("str.safetensors", "\"hello\"", 0), TDM_ERR_FORMAT, "JSON object");
    EXPECT_FAIL(write_hdr("entry.safetensors", "{\"w\": 5}", 0), TDM_ERR_FORMAT, "'w'", "not an object");
    EXPECT_FAIL(write_hdr("meta.safetensors", "{\"__metadata__\": [1]}", 0), TDM_ERR_FORMAT, "__metadata__");
    EXPECT_FAIL(write_hdr("meta2.safetensors", "{\"__metadata__\": \"x\", \"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                TDM_ERR_FORMAT, "__metadata__");
    /* deeply nested header: must fail cleanly, not overflow the stack */
    static char deep[20010];
    memset(deep, '[', 20000);
    deep[20000] = 0;
    EXPECT_FAIL(write_hdr("deep.safetensors", deep, 0), TDM_ERR_FORMAT, "JSON");
}

static void test_offsets(void) {
    EXPECT_FAIL(write_hdr("overlap.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24),
                TDM_ERR_FORMAT, "'a'", "'b'", "overlap");
    EXPECT_FAIL(write_hdr("same.safetensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                TDM_ERR_FORMAT, "overlap");
    EXPECT_FAIL(write_hdr("range.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[100,116]}}", 16),
                TDM_ERR_FORMAT, "'w'", "outside");
    EXPECT_FAIL(write_hdr("range2.safetensors",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[18446744073709551600,18446744073709551616]}}", 16),
                TDM_ERR_FORMAT, "'w'");
    EXPECT_FAIL(write_hdr("backwards.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,0]}}", 16),
                TDM_ERR_FORMAT, "'w'", "[16, 0]");
    EXPECT_FAIL(write_hdr("negoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16),
                TDM_ERR_FORMAT, "'w'", "data_offsets");
    EXPECT_FAIL(write_hdr("stroff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 16),
                TDM_ERR_FORMAT, "'w'", "data_offsets");
    EXPECT_FAIL(write_hdr("fracoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4.5]}}", 16),
                TDM_ERR_FORMAT, "'w'", "data_offsets");
    EXPECT_FAIL(write_hdr("oneoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 16),
                TDM_ERR_FORMAT, "'w'", "data_offsets");
    EXPECT_FAIL(write_hdr("nooff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 16), TDM_ERR_FORMAT, "'w'",
                "data_offsets");
    EXPECT_FAIL(write_hdr("count.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24),
                TDM_ERR_FORMAT, "'w'", "20 bytes", "24");
    EXPECT_FAIL(write_hdr("count16.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "F16");
}

static void test_dtype_shape(void) {
    EXPECT_FAIL(write_hdr("dtype.safetensors", "{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "unknown dtype 'Q4_K'");
    EXPECT_FAIL(write_hdr("dtype2.safetensors", "{\"w\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "dtype");
    EXPECT_FAIL(write_hdr("neg.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "shape[0]");
    EXPECT_FAIL(write_hdr("frac.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,1.5],\"data_offsets\":[0,24]}}", 24),
                TDM_ERR_FORMAT, "'w'", "shape[1]");
    EXPECT_FAIL(write_hdr("strdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "shape[0]");
    EXPECT_FAIL(write_hdr("nulldim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "shape[0]");
    EXPECT_FAIL(write_hdr("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "shape");
    EXPECT_FAIL(write_hdr("bigdim.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "shape[0]");
    /* 2^40 x 2^40 elements: the product overflows 64 bits */
    EXPECT_FAIL(write_hdr("overflow.safetensors",
                          "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'", "overflows");
    /* fits in 64 bits as elements, not as bytes */
    EXPECT_FAIL(write_hdr("overflow2.safetensors",
                          "{\"w\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,16]}}", 16),
                TDM_ERR_FORMAT, "'w'");
    EXPECT_FAIL(write_hdr("dims.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4),
                TDM_ERR_FORMAT, "'w'", "9 dims");
    EXPECT_FAIL(write_hdr("dup.safetensors",
                          "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                TDM_ERR_FORMAT, "'w'", "twice");
}

static void test_pickle_refused(void) {
    const char *exts[] = {"model.ckpt", "model.pt", "model.pth", "pytorch_model.bin"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tdm_test_tmpdir(), exts[i]);
        write_bytes(exts[i], "PK\3\4", 4);
        EXPECT_FAIL(p, TDM_ERR_UNSUPPORTED, "convert_ckpt.py", "pickle");
    }
    /* a missing file is an I/O error naming it */
    char p[512];
    snprintf(p, sizeof p, "%s/no-such-file.safetensors", tdm_test_tmpdir());
    EXPECT_FAIL(p, TDM_ERR_IO, "cannot open");
    /* a directory is not a weights file */
    EXPECT_FAIL(tdm_test_tmpdir(), TDM_ERR_IO, "not a regular file");
}

static void test_valid_edge_cases(void) {
    tdm_safetensors f;
    tdm_status st = {0};
    /* empty header object; __metadata__ with strings; zero-sized tensors may share offsets; 0-dim */
    const char *p = write_hdr("edge.safetensors",
                              "{\"__metadata__\":{\"format\":\"pt\"},"
                              "\"e1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                              "\"e2\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]},"
                              "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                              "\"i\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[8,24]}}   ",
                              24);
    tdm_code rc = tdm_st_open(&f, p, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc == TDM_OK) {
        CHECK(f.n_entries == 4);
        const tdm_st_entry *s = tdm_st_find(&f, "s");
        CHECK(s && s->ndim == 0 && s->end - s->begin == 4);
        CHECK(tdm_st_find(&f, "__metadata__") == NULL);
        CHECK(tdm_st_find(&f, "missing") == NULL);
        tdm_st_close(&f);
    }
    p = write_hdr("emptyhdr.safetensors", "{}", 0);
    rc = tdm_st_open(&f, p, &st);
    CHECK_MSG(rc == TDM_OK && f.n_entries == 0, "%s", st.msg);
    if (rc == TDM_OK) tdm_st_close(&f);
}

static void test_round_trip(void) {
    float a[6] = {1, -2, 3.5f, 0, 1e-8f, -7};                 /* [2, 3] */
    uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};          /* [4] f16 */
    uint16_t b[2] = {0x3f80, 0xc2f7};                          /* [1, 2] bf16 */
    int64_t ids[3] = {49406, -1, 49407};                       /* [3] */
    float scalar = 0.18215f;                                   /* [] */
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s12[2] = {1, 2}, s3[1] = {3}, s0[1] = {0};
    const char *names[] = {"z.weight", "a.half", "m.bf16", "ids", "scale", "empty"};
    tdm_tensor ts[6] = {
        tdm_tensor_view(TDM_F32, a, 2, s23),   tdm_tensor_view(TDM_F16, h, 1, s4),
        tdm_tensor_view(TDM_BF16, b, 2, s12),  tdm_tensor_view(TDM_I64, ids, 1, s3),
        tdm_tensor_view(TDM_F32, &scalar, 0, NULL), tdm_tensor_view(TDM_F32, a, 1, s0),
    };
    char path[512];
    snprintf(path, sizeof path, "%s/roundtrip.safetensors", tdm_test_tmpdir());
    tdm_status st = {0};
    CHECK_MSG(tdm_st_write(path, 6, names, ts, &st) == TDM_OK, "%s", st.msg);
    tdm_safetensors f;
    tdm_code rc = tdm_st_open(&f, path, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) return;
    CHECK(f.n_entries == 6);
    CHECK(f.data_offset % 8 == 0); /* header padded to 8 bytes */
    for (int i = 0; i < 6; i++) {
        const tdm_st_entry *e = tdm_st_find(&f, names[i]);
        CHECK_MSG(e != NULL, "tensor %s lost", names[i]);
        if (!e) continue;
        tdm_tensor v = tdm_st_view(&f, e);
        CHECK(v.dtype == ts[i].dtype && v.ndim == ts[i].ndim);
        CHECK(tdm_shape_equal(&v, &ts[i]));
        size_t bytes = (size_t)tdm_tensor_numel(&v) * tdm_dtype_size(v.dtype);
        CHECK_MSG(bytes == 0 || memcmp(v.data, ts[i].data, bytes) == 0, "tensor %s bytes differ", names[i]);
    }
    /* entries sorted by name for binary search */
    for (int i = 1; i < f.n_entries; i++) CHECK(strcmp(f.entries[i - 1].name, f.entries[i].name) < 0);
    tdm_st_close(&f);
    /* writing into a missing folder is an I/O error naming the path */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", tdm_test_tmpdir());
    CHECK(tdm_st_write(path, 1, names, ts, &st) == TDM_ERR_IO && strstr(st.msg, path));
}


/* ---- component config.json files: wrong types and absurd values ------------------------------------ */

static const char *UNET_CFG =
    "{\"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"cross_attention_dim\": 768, "
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
    "\"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"norm_eps\": 1e-05, "
    "\"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64, "
    "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";
static const char *VAE_CFG =
    "{\"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
    "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, \"layers_per_block\": 2, "
    "\"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 512, \"scaling_factor\": 0.18215, \"up_block_types\": "
    "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";
static const char *CLIP_CFG =
    "{\"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, \"intermediate_size\": 3072, \"layer_norm_eps\": 1e-05, "
    "\"max_position_embeddings\": 77, \"num_attention_heads\": 12, \"num_hidden_layers\": 12, \"projection_dim\": 768, "
    "\"vocab_size\": 49408, \"bos_token_id\": 0, \"eos_token_id\": 2, \"pad_token_id\": 1}";
static const char *SCHED_CFG =
    "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, "
    "\"num_train_timesteps\": 1000, \"steps_offset\": 1, \"prediction_type\": \"epsilon\", \"timestep_spacing\": \"leading\"}";

/* Loads `base` with field `key` replaced by the JSON `value` through config.json on disk; expects an
 * error naming config.json and the field. kind: 0 unet, 1 vae, 2 clip, 3 scheduler. */
static void config_case(int line, int kind, const char *key, const char *value) {
    const char *bases[4] = {UNET_CFG, VAE_CFG, CLIP_CFG, SCHED_CFG};
    cJSON *j = cJSON_Parse(bases[kind]);
    cJSON *v = cJSON_Parse(value);
    if (!j || !v) {
        fprintf(stderr, "line %d: bad test JSON\n", line);
        exit(1);
    }
    if (cJSON_GetObjectItem(j, key)) cJSON_ReplaceItemInObject(j, key, v);
    else cJSON_AddItemToObject(j, key, v);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tdm_test_tmpdir());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    tdm_status st = {0};
    tdm_code rc;
    if (kind == 0) {
        tdm_unet_config c;
        rc = tdm_unet_config_load(path, &c, &st);
    } else if (kind == 1) {
        tdm_vae_config c;
        rc = tdm_vae_config_load(path, &c, &st);
    } else if (kind == 2) {
        tdm_clip_text_config c;
        rc = tdm_clip_text_config_load(path, &c, &st);
    } else {
        tdm_scheduler_config c;
        rc = tdm_scheduler_config_load(path, &c, &st);
    }
    CHECK_MSG(rc == TDM_ERR_FORMAT || rc == TDM_ERR_UNSUPPORTED || rc == TDM_ERR_MISSING,
              "line %d: %s = %s accepted (rc %d)", line, key, value, rc);
    if (rc) {
        CHECK_MSG(strstr(st.msg, "config.json") != NULL, "line %d: message does not name the file: %s", line, st.msg);
        CHECK_MSG(strstr(st.msg, key) != NULL, "line %d: message does not name '%s': %s", line, key, st.msg);
    }
}
#define CONFIG_CASE(kind, key, value) config_case(__LINE__, kind, key, value)

static void test_configs(void) {
    /* the unmodified configs load */
    tdm_status st = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tdm_test_tmpdir());
    const char *bases[4] = {UNET_CFG, VAE_CFG, CLIP_CFG, SCHED_CFG};
    for (int k = 0; k < 4; k++) {
        FILE *f = fopen(path, "w");
        fputs(bases[k], f);
        fclose(f);
        tdm_unet_config u;
        tdm_vae_config v;
        tdm_clip_text_config c;
        tdm_scheduler_config s;
        tdm_code rc = k == 0 ? tdm_unet_config_load(path, &u, &st) : k == 1 ? tdm_vae_config_load(path, &v, &st)
                      : k == 2 ? tdm_clip_text_config_load(path, &c, &st) : tdm_scheduler_config_load(path, &s, &st);
        CHECK_MSG(rc == TDM_OK, "config %d: %s", k, st.msg);
    }
    /* UNet */
    CONFIG_CASE(0, "block_out_channels", "\"320\"");
    CONFIG_CASE(0, "block_out_channels", "[]");
    CONFIG_CASE(0, "block_out_channels", "[320, -640, 1280, 1280]");
    CONFIG_CASE(0, "block_out_channels", "[320, 640, 1e12, 1280]");
    CONFIG_CASE(0, "block_out_channels", "[320, 640.5, 1280, 1280]");
    CONFIG_CASE(0, "block_out_channels", "[320, 640, 1280]");
    CONFIG_CASE(0, "layers_per_block", "1000000000");
    CONFIG_CASE(0, "layers_per_block", "0");
    CONFIG_CASE(0, "cross_attention_dim", "-768");
    CONFIG_CASE(0, "cross_attention_dim", "\"768\"");
    CONFIG_CASE(0, "attention_head_dim", "0");
    CONFIG_CASE(0, "attention_head_dim", "7");
    CONFIG_CASE(0, "norm_num_groups", "0");
    CONFIG_CASE(0, "norm_num_groups", "7");
    CONFIG_CASE(0, "norm_eps", "\"small\"");
    CONFIG_CASE(0, "norm_eps", "-1");
    CONFIG_CASE(0, "in_channels", "0");
    CONFIG_CASE(0, "in_channels", "1e30");
    CONFIG_CASE(0, "down_block_types", "[\"CrossAttnDownBlock2D\", \"Foo\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"]");
    CONFIG_CASE(0, "down_block_types", "\"CrossAttnDownBlock2D\"");
    CONFIG_CASE(0, "up_block_types", "[\"UpBlock2D\"]");
    CONFIG_CASE(0, "freq_shift", "100000");
    CONFIG_CASE(0, "flip_sin_to_cos", "\"yes\"");
    /* VAE */
    CONFIG_CASE(1, "latent_channels", "0");
    CONFIG_CASE(1, "latent_channels", "-4");
    CONFIG_CASE(1, "block_out_channels", "[128, 256]");
    CONFIG_CASE(1, "block_out_channels", "{}");
    CONFIG_CASE(1, "norm_num_groups", "1000");
    CONFIG_CASE(1, "scaling_factor", "\"x\"");
    CONFIG_CASE(1, "layers_per_block", "100000");
    CONFIG_CASE(1, "in_channels", "-3");
    /* CLIP text */
    CONFIG_CASE(2, "hidden_size", "100");         /* 12 heads do not divide it */
    CONFIG_CASE(2, "num_hidden_layers", "1000000");
    CONFIG_CASE(2, "num_hidden_layers", "-1");
    CONFIG_CASE(2, "vocab_size", "-1");
    CONFIG_CASE(2, "hidden_act", "\"relu6\"");
    CONFIG_CASE(2, "hidden_act", "3");
    CONFIG_CASE(2, "max_position_embeddings", "0");
    CONFIG_CASE(2, "num_attention_heads", "0");
    CONFIG_CASE(2, "layer_norm_eps", "\"tiny\"");
    /* scheduler */
    CONFIG_CASE(3, "num_train_timesteps", "0");
    CONFIG_CASE(3, "num_train_timesteps", "-5");
    CONFIG_CASE(3, "prediction_type", "\"x0\"");
    CONFIG_CASE(3, "prediction_type", "1");
    CONFIG_CASE(3, "timestep_spacing", "5");
    CONFIG_CASE(3, "beta_schedule", "\"cosine\"");
    CONFIG_CASE(3, "beta_start", "\"0.1\"");
    CONFIG_CASE(3, "steps_offset", "-1");
    CONFIG_CASE(3, "trained_betas", "[0.1, 0.2]");
}

int main(void) {
    test_truncated();
    test_header_length();
    test_json();
    test_offsets();
    test_dtype_shape();
    test_pickle_refused();
    test_valid_edge_cases();
    test_round_trip();
    test_configs();
    return tdm_test_result();
}
