/* Bench models: family configurations (as the published config.json files) and weight stores filled
 * with seeded random values in memory, named and shaped exactly as the loaders fetch them
 * (unet_load.c, vae.c, clip_text.c), so the real loaders build the models. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "pipeline/bench.h"

/* ---- configurations ---------------------------------------------------------------------------- */

/* runwayml/stable-diffusion-v1-5 unet/config.json (the fields that matter) */
static const char UNET_SD15[] =
    "{\"block_out_channels\":[320,640,1280,1280],\"layers_per_block\":2,\"in_channels\":4,\"out_channels\":4,"
    "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
    "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\"],"
    "\"cross_attention_dim\":768,\"attention_head_dim\":8,\"sample_size\":64,\"norm_num_groups\":32}";
/* stabilityai/stable-diffusion-xl-base-1.0 unet/config.json */
static const char UNET_SDXL[] =
    "{\"block_out_channels\":[320,640,1280],\"layers_per_block\":2,\"in_channels\":4,\"out_channels\":4,"
    "\"down_block_types\":[\"DownBlock2D\",\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\"],"
    "\"up_block_types\":[\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"UpBlock2D\"],"
    "\"cross_attention_dim\":2048,\"attention_head_dim\":[5,10,20],\"transformer_layers_per_block\":[1,2,10],"
    "\"use_linear_projection\":true,\"addition_embed_type\":\"text_time\",\"addition_time_embed_dim\":256,"
    "\"projection_class_embeddings_input_dim\":2816,\"sample_size\":128}";
static const char UNET_QUICK[] =
    "{\"block_out_channels\":[32,64],\"layers_per_block\":1,\"in_channels\":4,\"out_channels\":4,"
    "\"down_block_types\":[\"CrossAttnDownBlock2D\",\"DownBlock2D\"],"
    "\"up_block_types\":[\"UpBlock2D\",\"CrossAttnUpBlock2D\"],"
    "\"cross_attention_dim\":32,\"attention_head_dim\":2,\"sample_size\":16,\"norm_num_groups\":8}";
static const char VAE_SD[] =
    "{\"block_out_channels\":[128,256,512,512],\"layers_per_block\":2,\"in_channels\":3,\"out_channels\":3,"
    "\"latent_channels\":4,\"norm_num_groups\":32,\"scaling_factor\":0.18215}";
static const char VAE_QUICK[] =
    "{\"block_out_channels\":[16,32],\"layers_per_block\":1,\"in_channels\":3,\"out_channels\":3,"
    "\"latent_channels\":4,\"norm_num_groups\":8,\"scaling_factor\":0.18215}";
/* openai/clip-vit-large-patch14 text tower (SD1.5, SDXL text_encoder) */
static const char CLIP_L[] = "{\"vocab_size\":49408,\"hidden_size\":768,\"intermediate_size\":3072,"
                             "\"num_hidden_layers\":12,\"num_attention_heads\":12,\"max_position_embeddings\":77,"
                             "\"hidden_act\":\"quick_gelu\",\"projection_dim\":768,\"eos_token_id\":2}";
/* SDXL text_encoder_2 (OpenCLIP ViT-bigG) */
static const char CLIP_G[] = "{\"vocab_size\":49408,\"hidden_size\":1280,\"intermediate_size\":5120,"
                             "\"num_hidden_layers\":32,\"num_attention_heads\":20,\"max_position_embeddings\":77,"
                             "\"hidden_act\":\"gelu\",\"projection_dim\":1280,\"eos_token_id\":2}";
static const char CLIP_QUICK[] = "{\"vocab_size\":1000,\"hidden_size\":32,\"intermediate_size\":64,"
                                 "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"max_position_embeddings\":77,"
                                 "\"hidden_act\":\"quick_gelu\",\"projection_dim\":32,\"eos_token_id\":2}";

static tdm_code parse(const char *text, cJSON **out, tdm_status *st) {
    *out = cJSON_Parse(text);
    return *out ? TDM_OK : tdm_fail(st, TDM_ERR_INTERNAL, "bench: built-in config does not parse");
}

tdm_code tdm_bench_configs(tdm_bench_family fam, tdm_unet_config *unet, tdm_vae_config *vae,
                           tdm_clip_text_config *text, tdm_clip_text_config *text2, int *has_text2, tdm_status *st) {
    const char *u = fam == TDM_BENCH_SDXL ? UNET_SDXL : fam == TDM_BENCH_QUICK ? UNET_QUICK : UNET_SD15;
    const char *v = fam == TDM_BENCH_QUICK ? VAE_QUICK : VAE_SD;
    const char *t = fam == TDM_BENCH_QUICK ? CLIP_QUICK : CLIP_L;
    *has_text2 = fam == TDM_BENCH_SDXL;
    cJSON *j = NULL;
    tdm_code rc = parse(u, &j, st);
    if (!rc) rc = tdm_unet_config_from_json(j, "bench unet", unet, st);
    cJSON_Delete(j);
    if (!rc) rc = parse(v, &j, st);
    if (!rc) {
        rc = tdm_vae_config_from_json(j, "bench vae", vae, st);
        cJSON_Delete(j);
    }
    if (!rc) rc = parse(t, &j, st);
    if (!rc) {
        rc = tdm_clip_text_config_from_json(j, "bench text", text, st);
        cJSON_Delete(j);
    }
    if (!rc && *has_text2) {
        rc = parse(CLIP_G, &j, st);
        if (!rc) {
            rc = tdm_clip_text_config_from_json(j, "bench text 2", text2, st);
            cJSON_Delete(j);
        }
    }
    return rc;
}

/* ---- random weight stores ---------------------------------------------------------------------- */

typedef enum { W_MAT, W_BIAS, W_GAIN, W_EMB } wkind;

typedef struct gen {
    tdm_weights ws;
    tdm_dtype dt;
    uint64_t seed, tensor_no;
    tdm_pool *pool;
    tdm_status *st;
} gen;

static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum { FILL_BLOCK = 1 << 16 }; /* values per unit: results do not depend on the thread count */

typedef struct fill_job {
    void *data;
    tdm_dtype dt;
    int64_t n;
    uint64_t key;
    float lo, span; /* values lo + span * U[0, 1) */
} fill_job;

/* Values of one block: xorshift64* seeded per block (cheap; the block index fixes the stream, so the
 * values do not depend on the thread count), converted 8 at a time with F16C where the CPU has it. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
__attribute__((target("avx,f16c"))) static void to_f16_f16c(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = tdm_f32_to_f16(src[i]);
}
#define HAVE_F16C_PATH 1
#else
#define HAVE_F16C_PATH 0
#endif

static void fill_block(const fill_job *J, int64_t b, int f16c) {
    int64_t i0 = b * FILL_BLOCK, n = J->n - i0 < FILL_BLOCK ? J->n - i0 : FILL_BLOCK;
    uint64_t x = mix64(J->key + (uint64_t)b) | 1;
    float buf[1024];
    for (int64_t c = 0; c < n; c += 1024) {
        int64_t m = n - c < 1024 ? n - c : 1024;
        for (int64_t k = 0; k < m; k++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            buf[k] = J->lo + J->span * (float)((x * 0x2545F4914F6CDD1Dull) >> 40) * (1.0f / 16777216.0f);
        }
        int64_t o = i0 + c;
        if (J->dt == TDM_F32) memcpy((float *)J->data + o, buf, (size_t)m * sizeof(float));
#if HAVE_F16C_PATH
        else if (J->dt == TDM_F16 && f16c) to_f16_f16c(buf, (uint16_t *)J->data + o, m);
#endif
        else if (J->dt == TDM_F16)
            for (int64_t k = 0; k < m; k++) ((uint16_t *)J->data)[o + k] = tdm_f32_to_f16(buf[k]);
        else
            for (int64_t k = 0; k < m; k++) ((uint16_t *)J->data)[o + k] = tdm_f32_to_bf16(buf[k]);
    }
    (void)f16c;
}

static void fill_task(void *ctx, int ith, int nth) {
    const fill_job *J = ctx;
    tdm_cpu_features cf = tdm_cpu_detect();
    long u0, u1;
    tdm_split_range((long)((J->n + FILL_BLOCK - 1) / FILL_BLOCK), ith, nth, &u0, &u1);
    for (long b = u0; b < u1; b++) fill_block(J, b, cf.f16c && cf.avx);
}

static tdm_code emit(gen *g, wkind kind, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt,
                     ...) TDM_PRINTF(8, 9);
static tdm_code emit(gen *g, wkind kind, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt,
                     ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    size_t esz = g->dt == TDM_F32 ? 4 : 2;
    void *data = tdm_weights_alloc(&g->ws, (size_t)n * esz);
    if (!data) return tdm_fail(g->st, TDM_ERR_NOMEM, "bench: out of memory for weight %s", name);
    fill_job J = {data, g->dt, n, mix64(g->seed ^ mix64(++g->tensor_no)) , 0, 0};
    float a;
    switch (kind) {
    case W_MAT: a = (float)(1.0 / sqrt((double)(n / d0))); J.lo = -a, J.span = 2 * a; break; /* fan_in = n / d0 */
    case W_BIAS: J.lo = -0.02f, J.span = 0.04f; break;
    case W_GAIN: J.lo = 0.9f, J.span = 0.2f; break;
    case W_EMB: J.lo = -0.035f, J.span = 0.07f; break; /* std 0.02 */
    }
    if (n > FILL_BLOCK) tdm_pool_run(g->pool, fill_task, &J);
    else fill_task(&J, 0, 1);
    tdm_tensor t = tdm_tensor_view(g->dt, data, ndim, shape);
    return tdm_weights_emit(&g->ws, name, &t, g->st);
}

#define MAT2(n, k, ...) TDM_TRY(emit(g, W_MAT, 2, n, k, 0, 0, __VA_ARGS__))
#define BIAS(n, ...) TDM_TRY(emit(g, W_BIAS, 1, n, 0, 0, 0, __VA_ARGS__))
#define NORM(c, ...)                                                                                             \
    do {                                                                                                         \
        TDM_TRY(emit(g, W_GAIN, 1, c, 0, 0, 0, __VA_ARGS__, "weight"));                                          \
        TDM_TRY(emit(g, W_BIAS, 1, c, 0, 0, 0, __VA_ARGS__, "bias"));                                            \
    } while (0)
#define CONV(co, ci, k, ...)                                                                                     \
    do {                                                                                                         \
        TDM_TRY(emit(g, W_MAT, 4, co, ci, k, k, __VA_ARGS__, "weight"));                                         \
        TDM_TRY(emit(g, W_BIAS, 1, co, 0, 0, 0, __VA_ARGS__, "bias"));                                           \
    } while (0)
#define LIN(n, k, ...)                                                                                           \
    do {                                                                                                         \
        TDM_TRY(emit(g, W_MAT, 2, n, k, 0, 0, __VA_ARGS__, "weight"));                                           \
        TDM_TRY(emit(g, W_BIAS, 1, n, 0, 0, 0, __VA_ARGS__, "bias"));                                            \
    } while (0)

/* ---- UNet (names and shapes of unet_load.c) ------------------------------------------------------- */

static tdm_code unet_resnet(gen *g, const char *p, int cin, int cout, int T) {
    NORM(cin, "%snorm1.%s", p);
    CONV(cout, cin, 3, "%sconv1.%s", p);
    LIN(cout, T, "%stime_emb_proj.%s", p);
    NORM(cout, "%snorm2.%s", p);
    CONV(cout, cout, 3, "%sconv2.%s", p);
    if (cin != cout) CONV(cout, cin, 1, "%sconv_shortcut.%s", p);
    return TDM_OK;
}

static tdm_code unet_transformer(gen *g, const tdm_unet_config *c, const char *p, int C, int layers) {
    NORM(C, "%snorm.%s", p);
    if (c->use_linear_projection) {
        LIN(C, C, "%sproj_in.%s", p);
        LIN(C, C, "%sproj_out.%s", p);
    } else {
        CONV(C, C, 1, "%sproj_in.%s", p);
        CONV(C, C, 1, "%sproj_out.%s", p);
    }
    const int D = c->cross_attention_dim;
    for (int i = 0; i < layers; i++) {
        char b[300];
        snprintf(b, sizeof b, "%stransformer_blocks.%d.", p, i);
        for (int n = 1; n <= 3; n++) NORM(C, "%snorm%d.%s", b, n);
        MAT2(C, C, "%sattn1.to_q.weight", b);
        MAT2(C, C, "%sattn1.to_k.weight", b);
        MAT2(C, C, "%sattn1.to_v.weight", b);
        LIN(C, C, "%sattn1.to_out.0.%s", b);
        MAT2(C, C, "%sattn2.to_q.weight", b);
        MAT2(C, D, "%sattn2.to_k.weight", b);
        MAT2(C, D, "%sattn2.to_v.weight", b);
        LIN(C, C, "%sattn2.to_out.0.%s", b);
        LIN(8 * C, C, "%sff.net.0.proj.%s", b);
        LIN(C, 4 * C, "%sff.net.2.%s", b);
    }
    return TDM_OK;
}

static tdm_code unet_weights(gen *g, const tdm_unet_config *c) {
    const int L = c->n_levels, lpb = c->layers_per_block, T = c->time_embed_dim, C0 = c->block_out_channels[0];
    char p[256];
    CONV(C0, c->in_channels, 3, "%sconv_in.%s", "");
    LIN(T, C0, "%stime_embedding.linear_1.%s", "");
    LIN(T, T, "%stime_embedding.linear_2.%s", "");
    if (c->time_cond_proj_dim) MAT2(C0, c->time_cond_proj_dim, "time_embedding.cond_proj.weight");
    if (c->addition_text_time) {
        LIN(T, c->projection_class_embeddings_input_dim, "%sadd_embedding.linear_1.%s", "");
        LIN(T, T, "%sadd_embedding.linear_2.%s", "");
    }
    int out_ch = C0;
    for (int i = 0; i < L; i++) {
        int in_ch = out_ch;
        out_ch = c->block_out_channels[i];
        for (int j = 0; j < lpb; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d.", i, j);
            TDM_TRY(unet_resnet(g, p, j == 0 ? in_ch : out_ch, out_ch, T));
            if (c->down_attn[i]) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d.", i, j);
                TDM_TRY(unet_transformer(g, c, p, out_ch, c->transformer_layers[i]));
            }
        }
        if (i < L - 1) CONV(out_ch, out_ch, 3, "down_blocks.%d.downsamplers.0.conv.%s", i);
    }
    const int CL = c->block_out_channels[L - 1];
    TDM_TRY(unet_resnet(g, "mid_block.resnets.0.", CL, CL, T));
    TDM_TRY(unet_transformer(g, c, "mid_block.attentions.0.", CL, c->transformer_layers[L - 1]));
    TDM_TRY(unet_resnet(g, "mid_block.resnets.1.", CL, CL, T));
    int prev_out = CL;
    for (int i = 0; i < L; i++) {
        int o = c->block_out_channels[L - 1 - i];
        int in_ch = c->block_out_channels[L - 1 - (i + 1 < L ? i + 1 : L - 1)];
        for (int j = 0; j <= lpb; j++) {
            int skip = j == lpb ? in_ch : o, rin = j == 0 ? prev_out : o;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d.", i, j);
            TDM_TRY(unet_resnet(g, p, rin + skip, o, T));
            if (c->up_attn[i]) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d.", i, j);
                TDM_TRY(unet_transformer(g, c, p, o, c->transformer_layers_up[i]));
            }
        }
        if (i < L - 1) CONV(o, o, 3, "up_blocks.%d.upsamplers.0.conv.%s", i);
        prev_out = o;
    }
    NORM(C0, "%sconv_norm_out.%s", "");
    CONV(c->out_channels, C0, 3, "%sconv_out.%s", "");
    return TDM_OK;
}

/* ---- VAE (names and shapes of vae.c) -------------------------------------------------------------- */

static tdm_code vae_resnet(gen *g, const char *p, int cin, int cout) {
    NORM(cin, "%s.norm1.%s", p);
    CONV(cout, cin, 3, "%s.conv1.%s", p);
    NORM(cout, "%s.norm2.%s", p);
    CONV(cout, cout, 3, "%s.conv2.%s", p);
    if (cin != cout) CONV(cout, cin, 1, "%s.conv_shortcut.%s", p);
    return TDM_OK;
}

static tdm_code vae_mid(gen *g, const tdm_vae_config *c, const char *half, int C) {
    char p[256];
    snprintf(p, sizeof p, "%s.mid_block.resnets.0", half);
    TDM_TRY(vae_resnet(g, p, C, C));
    snprintf(p, sizeof p, "%s.mid_block.resnets.1", half);
    TDM_TRY(vae_resnet(g, p, C, C));
    if (!c->mid_block_add_attention) return TDM_OK;
    NORM(C, "%s.mid_block.attentions.0.group_norm.%s", half);
    LIN(C, C, "%s.mid_block.attentions.0.to_q.%s", half);
    LIN(C, C, "%s.mid_block.attentions.0.to_k.%s", half);
    LIN(C, C, "%s.mid_block.attentions.0.to_v.%s", half);
    LIN(C, C, "%s.mid_block.attentions.0.to_out.0.%s", half);
    return TDM_OK;
}

static tdm_code vae_weights(gen *g, const tdm_vae_config *c) {
    const int n = c->n_levels, *bo = c->block_out_channels, lat = c->latent_channels;
    char p[256];
    CONV(bo[0], c->in_channels, 3, "%sencoder.conv_in.%s", "");
    for (int i = 0; i < n; i++) {
        int cin = i == 0 ? bo[0] : bo[i - 1];
        for (int j = 0; j < c->layers_per_block; j++) {
            snprintf(p, sizeof p, "encoder.down_blocks.%d.resnets.%d", i, j);
            TDM_TRY(vae_resnet(g, p, j == 0 ? cin : bo[i], bo[i]));
        }
        if (i < n - 1) CONV(bo[i], bo[i], 3, "encoder.down_blocks.%d.downsamplers.0.conv.%s", i);
    }
    TDM_TRY(vae_mid(g, c, "encoder", bo[n - 1]));
    NORM(bo[n - 1], "%sencoder.conv_norm_out.%s", "");
    CONV(2 * lat, bo[n - 1], 3, "%sencoder.conv_out.%s", "");
    CONV(bo[n - 1], lat, 3, "%sdecoder.conv_in.%s", "");
    TDM_TRY(vae_mid(g, c, "decoder", bo[n - 1]));
    for (int i = 0; i < n; i++) {
        int out = bo[n - 1 - i], prev = i == 0 ? bo[n - 1] : bo[n - i];
        for (int j = 0; j <= c->layers_per_block; j++) {
            snprintf(p, sizeof p, "decoder.up_blocks.%d.resnets.%d", i, j);
            TDM_TRY(vae_resnet(g, p, j == 0 ? prev : out, out));
        }
        if (i < n - 1) CONV(out, out, 3, "decoder.up_blocks.%d.upsamplers.0.conv.%s", i);
    }
    NORM(bo[0], "%sdecoder.conv_norm_out.%s", "");
    CONV(c->out_channels, bo[0], 3, "%sdecoder.conv_out.%s", "");
    if (c->use_quant_conv) CONV(2 * lat, 2 * lat, 1, "%squant_conv.%s", "");
    if (c->use_post_quant_conv) CONV(lat, lat, 1, "%spost_quant_conv.%s", "");
    return TDM_OK;
}

/* ---- CLIP text (names and shapes of clip_text.c) ---------------------------------------------------- */

static tdm_code clip_weights(gen *g, const tdm_clip_text_config *c, int with_projection) {
    const int64_t C = c->hidden_size, I = c->intermediate_size;
    const char *p = "text_model.encoder.layers";
    TDM_TRY(emit(g, W_EMB, 2, c->vocab_size, C, 0, 0, "text_model.embeddings.token_embedding.weight"));
    TDM_TRY(emit(g, W_EMB, 2, c->max_position_embeddings, C, 0, 0, "text_model.embeddings.position_embedding.weight"));
    for (int i = 0; i < c->num_hidden_layers; i++) {
        NORM(C, "%s.%d.layer_norm1.%s", p, i);
        LIN(C, C, "%s.%d.self_attn.q_proj.%s", p, i);
        LIN(C, C, "%s.%d.self_attn.k_proj.%s", p, i);
        LIN(C, C, "%s.%d.self_attn.v_proj.%s", p, i);
        LIN(C, C, "%s.%d.self_attn.out_proj.%s", p, i);
        NORM(C, "%s.%d.layer_norm2.%s", p, i);
        LIN(I, C, "%s.%d.mlp.fc1.%s", p, i);
        LIN(C, I, "%s.%d.mlp.fc2.%s", p, i);
    }
    NORM(C, "%stext_model.final_layer_norm.%s", "");
    if (with_projection) MAT2(c->projection_dim, C, "text_projection.weight");
    return TDM_OK;
}

/* ---- builders -------------------------------------------------------------------------------------- */

static tdm_code gen_start(gen *g, const char *what, tdm_dtype wtype, uint64_t seed, tdm_pool *pool, tdm_status *st) {
    memset(g, 0, sizeof *g);
    tdm_weights_init(&g->ws, what);
    g->dt = wtype;
    g->seed = seed;
    g->pool = pool;
    g->st = st;
    if (wtype != TDM_F32 && wtype != TDM_F16 && wtype != TDM_BF16)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bench: weight dtype must be f32, f16 or bf16");
    return TDM_OK;
}

/* Finishes the store; on failure frees it and returns the code. */
static tdm_code gen_finish(gen *g, tdm_code rc) {
    if (!rc) rc = tdm_weights_finish(&g->ws, g->st);
    if (rc) tdm_weights_free(&g->ws);
    return rc;
}

tdm_code tdm_bench_build_unet(const tdm_unet_config *cfg, tdm_dtype wtype, uint64_t seed, tdm_pool *pool,
                              tdm_unet **out, tdm_status *st) {
    *out = NULL;
    gen g;
    tdm_code rc = gen_start(&g, "unet", wtype, seed, pool, st);
    TDM_TRY(gen_finish(&g, rc ? rc : unet_weights(&g, cfg)));
    return tdm_unet_load(out, cfg, &g.ws, st);
}

tdm_code tdm_bench_build_vae(const tdm_vae_config *cfg, tdm_dtype wtype, uint64_t seed, tdm_pool *pool,
                             tdm_vae **out, tdm_status *st) {
    *out = NULL;
    gen g;
    tdm_code rc = gen_start(&g, "vae", wtype, seed, pool, st);
    TDM_TRY(gen_finish(&g, rc ? rc : vae_weights(&g, cfg)));
    return tdm_vae_load(out, cfg, &g.ws, st);
}

tdm_code tdm_bench_build_clip(const tdm_clip_text_config *cfg, int with_projection, tdm_dtype wtype, uint64_t seed,
                              tdm_pool *pool, tdm_clip_text **out, tdm_status *st) {
    *out = NULL;
    gen g;
    tdm_code rc = gen_start(&g, "text encoder", wtype, seed, pool, st);
    TDM_TRY(gen_finish(&g, rc ? rc : clip_weights(&g, cfg, with_projection)));
    return tdm_clip_text_load(out, cfg, &g.ws, st);
}
