/* SDXL end to end on tiny models assembled in a temporary folder: the unet-sdxl-tiny fixture (context 32,
 * text_embeds 32 + 6 time ids x 8), vae-sd-tiny, the CLIP tokenizer fixture (tokenizer/ pad
 * <|endoftext|>, tokenizer_2/ pad "!"), and two random-weight text encoders written here: text_encoder
 * (CLIPTextModel, quick_gelu, hidden 16) and text_encoder_2 (CLIPTextModelWithProjection, gelu, hidden 16,
 * projection 32), so that the concatenated context is 16 + 16 = 32 and the pooled text_embeds 32.
 * Checks: the conditioning layout (channels [0,16) = text_encoder's raw hidden_states[-2], [16,32) =
 * text_encoder_2's, pooled = its text_embeds, tokenizer_2's '!' quirk), the force_zeros_for_empty_prompt
 * rule, txt2img / img2img through tdm_generate, bit-identical on 1 and 2 threads, the time ids reaching the
 * UNet (original size, crop and target change the image), a refiner-shaped model (text_encoder_2 only,
 * 5 time ids with the aesthetic score), and named errors for wrong widths. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/image.h"
#include "models/clip_tokenizer.h"
#include "pipeline/adaptive.h"
#include "pipeline/generate.h"
#include "pipeline/sdxl.h"
#include "tandem.h"
#include "test_util.h"

#define MUST(x) tiny_must((x), #x)
static void tiny_must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "setup failed: %s\n", what);
        exit(1);
    }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    MUST(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void link_fixture(const char *rel, const char *link_path) {
    char src[PATH_MAX], target[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", tdm_test_fixtures(), rel);
    MUST(realpath(src, target) != NULL);
    MUST(symlink(target, link_path) == 0);
}

/* ---- random text encoders ---------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float urand(void) { /* uniform in [-1, 1) */
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

typedef struct te_spec {
    int hidden, inter, layers, heads, proj; /* proj 0: CLIPTextModel */
    int gelu;
} te_spec;

typedef struct tensor_list {
    int n;
    char *names[128];
    tdm_tensor t[128];
    float *data[128];
} tensor_list;

static void tl_add(tensor_list *l, const char *name, int nd, int64_t d0, int64_t d1, float scale, float offset) {
    MUST(l->n < 128);
    int64_t shape[2] = {d0, d1};
    int64_t n = nd == 1 ? d0 : d0 * d1;
    float *v = malloc(sizeof(float) * (size_t)n);
    MUST(v != NULL);
    for (int64_t i = 0; i < n; i++) v[i] = offset + scale * urand();
    l->names[l->n] = strdup(name);
    l->data[l->n] = v;
    l->t[l->n] = tdm_tensor_view(TDM_F32, v, nd, shape);
    l->n++;
}

static void tl_free(tensor_list *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]), free(l->data[i]);
    l->n = 0;
}

/* <dir>/config.json + model.safetensors of a transformers CLIP text model with random weights. */
static void write_text_encoder(const char *dir, const te_spec *s) {
    MUST(mkdir(dir, 0755) == 0);
    char p[PATH_MAX + 64], cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"model_type\": \"clip_text_model\", \"vocab_size\": 49408,\n"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d,\n"
             " \"max_position_embeddings\": 77, \"hidden_act\": \"%s\", \"layer_norm_eps\": 1e-05,\n"
             " \"projection_dim\": %d, \"bos_token_id\": 0, \"eos_token_id\": 2, \"pad_token_id\": 1}\n",
             s->proj ? "CLIPTextModelWithProjection" : "CLIPTextModel", s->hidden, s->inter, s->layers, s->heads,
             s->gelu ? "gelu" : "quick_gelu", s->proj ? s->proj : 768);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    tensor_list l = {0};
    const int C = s->hidden, I = s->inter;
    tl_add(&l, "text_model.embeddings.token_embedding.weight", 2, 49408, C, 0.5f, 0);
    tl_add(&l, "text_model.embeddings.position_embedding.weight", 2, 77, C, 0.2f, 0);
    char n[256];
    for (int i = 0; i < s->layers; i++) {
        const char *ln[2] = {"layer_norm1", "layer_norm2"};
        for (int k = 0; k < 2; k++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.weight", i, ln[k]);
            tl_add(&l, n, 1, C, 0, 0.1f, 1.0f);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s.bias", i, ln[k]);
            tl_add(&l, n, 1, C, 0, 0.05f, 0);
        }
        const char *pr[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int k = 0; k < 4; k++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.self_attn.%s.weight", i, pr[k]);
            tl_add(&l, n, 2, C, C, 0.3f, 0);
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.self_attn.%s.bias", i, pr[k]);
            tl_add(&l, n, 1, C, 0, 0.05f, 0);
        }
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc1.weight", i);
        tl_add(&l, n, 2, I, C, 0.3f, 0);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc1.bias", i);
        tl_add(&l, n, 1, I, 0, 0.05f, 0);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc2.weight", i);
        tl_add(&l, n, 2, C, I, 0.2f, 0);
        snprintf(n, sizeof n, "text_model.encoder.layers.%d.mlp.fc2.bias", i);
        tl_add(&l, n, 1, C, 0, 0.05f, 0);
    }
    tl_add(&l, "text_model.final_layer_norm.weight", 1, C, 0, 0.1f, 1.0f);
    tl_add(&l, "text_model.final_layer_norm.bias", 1, C, 0, 0.05f, 0);
    if (s->proj) tl_add(&l, "text_projection.weight", 2, s->proj, C, 0.3f, 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    tdm_status st = {0};
    tdm_code rc = tdm_st_write(p, l.n, (const char *const *)l.names, l.t, &st);
    if (rc) fprintf(stderr, "%s\n", st.msg);
    MUST(rc == TDM_OK);
    tl_free(&l);
}

/* unet-sdxl-tiny reshaped as a refiner: add_embedding.linear_1 takes 32 + 5 x 8 = 72 inputs. */
static void write_refiner_unet(const char *dir) {
    MUST(mkdir(dir, 0755) == 0);
    char src[PATH_MAX], p[PATH_MAX + 64];
    snprintf(src, sizeof src, "%s/unet-sdxl-tiny/model/config.json", tdm_test_fixtures());
    FILE *f = fopen(src, "r");
    MUST(f != NULL);
    static char cfg[16384];
    size_t len = fread(cfg, 1, sizeof cfg - 1, f);
    fclose(f);
    cfg[len] = 0;
    char *at = strstr(cfg, "\"projection_class_embeddings_input_dim\": 80");
    MUST(at != NULL);
    at[strlen("\"projection_class_embeddings_input_dim\": ") + 1] = '2'; /* 80 -> 72 */
    at[strlen("\"projection_class_embeddings_input_dim\": ")] = '7';
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    tdm_safetensors in;
    tdm_status st = {0};
    snprintf(src, sizeof src, "%s/unet-sdxl-tiny/model/diffusion_pytorch_model.safetensors", tdm_test_fixtures());
    MUST(tdm_st_open(&in, src, &st) == TDM_OK);
    const char **names = calloc((size_t)in.n_entries, sizeof *names);
    tdm_tensor *ts = calloc((size_t)in.n_entries, sizeof *ts);
    MUST(names && ts);
    tensor_list l = {0};
    for (int i = 0; i < in.n_entries; i++) {
        names[i] = in.entries[i].name;
        if (strcmp(names[i], "add_embedding.linear_1.weight") == 0) {
            tl_add(&l, names[i], 2, in.entries[i].shape[0], 72, 0.1f, 0);
            ts[i] = l.t[0];
        } else {
            ts[i] = tdm_st_view(&in, &in.entries[i]);
        }
    }
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    MUST(tdm_st_write(p, in.n_entries, names, ts, &st) == TDM_OK);
    tl_free(&l);
    free(names);
    free(ts);
    tdm_st_close(&in);
}

static const char *SCHED =
    "{\"_class_name\": \"EulerDiscreteScheduler\", \"_diffusers_version\": \"0.27.2\", \"beta_start\": 0.00085,\n"
    " \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 1000,\n"
    " \"prediction_type\": \"epsilon\", \"steps_offset\": 1, \"timestep_spacing\": \"leading\",\n"
    " \"interpolation_type\": \"linear\", \"use_karras_sigmas\": false, \"clip_sample\": false,\n"
    " \"set_alpha_to_one\": false}\n";

typedef struct xl_opts {
    int refiner;
    te_spec te, te2;
} xl_opts;

static void make_tokenizer(const char *root, const char *name, const char *pad) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", root, name);
    MUST(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/%s/vocab.json", root, name);
    link_fixture("tokenizer-clip/vocab.json", p);
    snprintf(p, sizeof p, "%s/%s/merges.txt", root, name);
    link_fixture("tokenizer-clip/merges.txt", p);
    char t[128];
    snprintf(t, sizeof t, "{\"pad_token\": \"%s\"}\n", pad);
    snprintf(p, sizeof p, "%s/%s/special_tokens_map.json", root, name);
    write_text(p, t);
}

static void make_xl(const char *root, const xl_opts *o) {
    char p[PATH_MAX];
    MUST(mkdir(root, 0755) == 0);
    snprintf(p, sizeof p, "%s/model_index.json", root);
    write_text(p, o->refiner
                      ? "{\"_class_name\": \"StableDiffusionXLImg2ImgPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                        " \"force_zeros_for_empty_prompt\": false, \"requires_aesthetics_score\": true,\n"
                        " \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"], \"text_encoder\": [null, null],\n"
                        " \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
                        " \"tokenizer\": [null, null], \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
                        " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n"
                      : "{\"_class_name\": \"StableDiffusionXLPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                        " \"force_zeros_for_empty_prompt\": true,\n"
                        " \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
                        " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                        " \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
                        " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                        " \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
                        " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n");
    snprintf(p, sizeof p, "%s/unet", root);
    if (o->refiner) write_refiner_unet(p);
    else link_fixture("unet-sdxl-tiny/model", p);
    snprintf(p, sizeof p, "%s/vae", root);
    link_fixture("vae-sd-tiny/model", p);
    if (!o->refiner) {
        snprintf(p, sizeof p, "%s/text_encoder", root);
        write_text_encoder(p, &o->te);
        make_tokenizer(root, "tokenizer", "<|endoftext|>");
    }
    snprintf(p, sizeof p, "%s/text_encoder_2", root);
    write_text_encoder(p, &o->te2);
    make_tokenizer(root, "tokenizer_2", "!");
    snprintf(p, sizeof p, "%s/scheduler", root);
    MUST(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", root);
    write_text(p, SCHED);
}

static const te_spec TE1 = {16, 32, 3, 2, 0, 0};  /* CLIP ViT-L stand-in: quick_gelu, no projection */
static const te_spec TE2 = {16, 48, 3, 2, 32, 1}; /* OpenCLIP bigG stand-in: gelu, projection 32 */

/* ---- helpers ----------------------------------------------------------------------------------- */

static tdm_model *load_model(const char *path) {
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = path;
    tdm_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = tdm_model_load(&mp, &m, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    return m;
}

static tdm_code gen(tdm_engine *e, const tdm_model *m, const tdm_generate_params *p, tdm_image *out,
                    tdm_generate_stats *stats) {
    tdm_status st = {0};
    tdm_code rc = tdm_generate(e, m, p, out, stats, &st);
    if (rc) fprintf(stderr, "generate: %s\n", st.msg);
    return rc;
}

static int same_image(const tdm_image *a, const tdm_image *b) {
    return a->pixels && b->pixels && a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

static int all_zero(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0.0f) return 0;
    return 1;
}

/* Window ids of text for one tower (as the pipeline tokenizes it). */
static void tower_ids(const tdm_text_tower *tw, const char *text, int split, int32_t *ids) {
    tdm_clip_encode_opts o;
    tdm_clip_encode_opts_init(&o);
    o.truncate = 1;
    o.pad_id = tw->pad_id;
    o.text.split_token = split ? tw->split_token : NULL;
    tdm_clip_windows w;
    tdm_status st = {0};
    MUST(tdm_clip_encode_windows(tw->tokenizer, text, &o, &w, &st) == TDM_OK);
    memcpy(ids, w.ids, sizeof(int32_t) * 77);
    tdm_clip_windows_free(&w);
}

/* ---- conditioning ------------------------------------------------------------------------------ */

static void test_conditioning(tdm_engine *e, const tdm_model *model) {
    const tdm_sd_model *m = tdm_model_sd(model);
    const tdm_exec *ex = tdm_engine_exec(e);
    CHECK(m->family == TDM_FAMILY_SDXL && m->n_time_ids == 6 && m->text_embeds_dim == 32);
    CHECK(m->cross_attention_dim == 32 && m->pad_id == 49407 && m->pad_id_2 == 0);
    CHECK(m->force_zeros_for_empty_prompt == 1 && m->requires_aesthetics_score == 0);
    tdm_model_info info;
    tdm_model_get_info(model, &info);
    CHECK(strcmp(info.family, "sdxl") == 0 && info.default_width == 128 && info.default_guidance == 5.0f);
    CHECK(strcmp(info.default_sampler, "euler") == 0);

    tdm_text_tower tw[2];
    CHECK(tdm_text_towers(m, tw) == 2 && tw[1].split_token && strcmp(tw[1].split_token, "!") == 0);
    tdm_arena arena;
    tdm_arena_init(&arena, (size_t)8 << 20);
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a cat!! on a mat";
    p.negative_prompt = "";
    p.guidance_scale = 5.0f;
    tdm_status st = {0};
    tdm_text_cond tc;
    tdm_code rc = tdm_gen_encode_params(m, ex, &arena, &p, &tc, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) return;
    CHECK(tc.C == 32 && tc.len == 77 && tc.n_windows == 1 && tc.pooled_dim == 32);
    /* force_zeros_for_empty_prompt: empty negative prompt -> zeros */
    CHECK(all_zero(tc.uncond, 77 * 32) && all_zero(tc.pooled_uncond, 32));
    CHECK(!all_zero(tc.cond, 77 * 32) && !all_zero(tc.pooled_cond, 32));

    /* the layout: [text_encoder hidden_states[-2] | text_encoder_2 hidden_states[-2]], pooled text_embeds */
    int32_t ids1[77], ids2[77], ids2_nosplit[77];
    tower_ids(&tw[0], p.prompt, 0, ids1);
    tower_ids(&tw[1], p.prompt, 1, ids2);
    tower_ids(&tw[1], p.prompt, 0, ids2_nosplit);
    int zeros_in_text = 0;
    for (int i = 1; i < 8; i++) zeros_in_text += ids2[i] == 0;
    CHECK(zeros_in_text == 2); /* "!!" -> two id-0 tokens (tokenizer_2's quirk) */
    CHECK(memcmp(ids2, ids2_nosplit, sizeof ids2) != 0);
    CHECK(ids1[76] == 49407 && ids2[76] == 0); /* pads */
    float h1[77 * 16], h2[77 * 16], te[32];
    tdm_clip_text_opts to;
    tdm_clip_text_opts_init(&to);
    to.skip = 2;
    to.final_ln = 0;
    CHECK(tdm_clip_text_forward(m->text_encoder, ex, &arena, ids1, 1, 77, &to, h1, NULL, NULL, &st) == TDM_OK);
    CHECK(tdm_clip_text_forward(m->text_encoder_2, ex, &arena, ids2, 1, 77, &to, h2, NULL, te, &st) == TDM_OK);
    double d1 = 0, d2 = 0;
    for (int t = 0; t < 77; t++)
        for (int c = 0; c < 16; c++) {
            double a = tc.cond[t * 32 + c] - h1[t * 16 + c], b = tc.cond[t * 32 + 16 + c] - h2[t * 16 + c];
            d1 = a * a > d1 ? a * a : d1;
            d2 = b * b > d2 ? b * b : d2;
        }
    CHECK_MSG(d1 == 0 && d2 == 0, "context layout: max sq diff %g / %g", d1, d2);
    CHECK(tdm_test_max_abs(tc.pooled_cond, te, 32) == 0);

    /* a negative prompt is encoded; without force_zeros the empty negative is encoded too */
    p.negative_prompt = "blurry";
    tdm_text_cond tn;
    CHECK(tdm_gen_encode_params(m, ex, &arena, &p, &tn, &st) == TDM_OK);
    CHECK(!all_zero(tn.uncond, 77 * 32) && !all_zero(tn.pooled_uncond, 32));
    /* the same prompt (encoded in a batch of 2 here: gemm blocking may round differently) */
    CHECK_MSG(tdm_test_max_abs(tn.cond, tc.cond, 77 * 32) < 1e-5, "cond moved by %g",
              tdm_test_max_abs(tn.cond, tc.cond, 77 * 32));
    p.negative_prompt = NULL;
    ((tdm_sd_model *)m)->force_zeros_for_empty_prompt = 0;
    tdm_text_cond te0;
    CHECK(tdm_gen_encode_params(m, ex, &arena, &p, &te0, &st) == TDM_OK);
    CHECK(!all_zero(te0.uncond, 77 * 32) && !all_zero(te0.pooled_uncond, 32));
    ((tdm_sd_model *)m)->force_zeros_for_empty_prompt = 1;
    /* guidance <= 1: no unconditional pass */
    p.guidance_scale = 1.0f;
    tdm_text_cond t1;
    CHECK(tdm_gen_encode_params(m, ex, &arena, &p, &t1, &st) == TDM_OK);
    CHECK(t1.uncond == NULL && t1.pooled_uncond == NULL && t1.pooled_cond != NULL);
    /* long prompts: windows on both towers */
    char longp[2048] = "";
    for (int i = 0; i < 40; i++) strcat(longp, "red cube, ");
    p.prompt = longp;
    tdm_text_cond tl;
    CHECK(tdm_gen_encode_params(m, ex, &arena, &p, &tl, &st) == TDM_OK);
    CHECK(tl.n_windows == 2 && tl.len == 154 && tl.C == 32);
    tdm_arena_free(&arena);
}

/* ---- generation -------------------------------------------------------------------------------- */

static void test_generate(tdm_engine *e1, tdm_engine *e2, const tdm_model *m) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a photograph of an astronaut riding a horse!";
    p.steps = 3;
    p.seed = 7;
    p.width = p.height = 64;
    tdm_image a = {0}, b = {0}, c = {0}, d = {0}, f = {0}, g = {0};
    tdm_generate_stats s;
    CHECK(gen(e1, m, &p, &a, &s) == TDM_OK);
    CHECK(a.width == 64 && a.height == 64 && s.unet_calls == 3 && s.unet_batch == 2);
    CHECK(gen(e2, m, &p, &b, NULL) == TDM_OK);
    CHECK_MSG(same_image(&a, &b), "1 vs 2 threads differ");
    /* the time ids reach the UNet: original size, crop, target size */
    p.original_width = p.original_height = 1024;
    CHECK(gen(e2, m, &p, &c, NULL) == TDM_OK);
    CHECK(c.pixels && !same_image(&a, &c));
    p.original_width = p.original_height = 0;
    p.crop_top = 32;
    CHECK(gen(e2, m, &p, &d, NULL) == TDM_OK);
    CHECK(d.pixels && !same_image(&a, &d));
    p.crop_top = 0;
    p.target_width = 96;
    CHECK(gen(e2, m, &p, &f, NULL) == TDM_OK);
    CHECK(f.pixels && !same_image(&a, &f));
    p.target_width = 0;
    /* explicit defaults give the same image; the aesthetic score does not apply to the base model */
    p.original_width = p.original_height = p.target_width = p.target_height = 64;
    p.aesthetic_score = 9.0f;
    CHECK(gen(e2, m, &p, &g, NULL) == TDM_OK);
    CHECK(same_image(&a, &g));
    tdm_image_free(&c), tdm_image_free(&d), tdm_image_free(&f), tdm_image_free(&g);

    /* img2img from the txt2img result, strength 0.3 */
    tdm_generate_params q;
    tdm_generate_params_init(&q);
    q.prompt = p.prompt;
    q.init_image = &a;
    q.strength = 0.3f;
    q.steps = 10;
    q.seed = 3;
    tdm_image r1 = {0}, r2 = {0};
    CHECK(gen(e1, m, &q, &r1, &s) == TDM_OK);
    CHECK(r1.width == 64 && s.steps_run == 3 && s.unet_calls == 3);
    CHECK(gen(e2, m, &q, &r2, NULL) == TDM_OK);
    CHECK(same_image(&r1, &r2));
    tdm_image_free(&r1), tdm_image_free(&r2);

    /* out-of-range micro-conditioning is named */
    q.crop_left = -1;
    tdm_status st = {0};
    CHECK(tdm_generate(e1, m, &q, &r1, NULL, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "crop left"));
    tdm_image_free(&a), tdm_image_free(&b);
}

static void test_refiner(tdm_engine *e1, tdm_engine *e2, const char *root) {
    xl_opts o = {.refiner = 1, .te2 = {32, 64, 2, 2, 32, 1}};
    make_xl(root, &o);
    tdm_model *model = load_model(root);
    if (!model) return;
    const tdm_sd_model *m = tdm_model_sd(model);
    CHECK(m->family == TDM_FAMILY_SDXL_REFINER && !m->text_encoder && m->text_encoder_2);
    CHECK(m->n_time_ids == 5 && m->requires_aesthetics_score == 1 && m->force_zeros_for_empty_prompt == 0);
    CHECK(m->pad_id == 0 && m->pad_id_2 == 0 && strcmp(m->split_token_2, "!") == 0);
    tdm_model_info info;
    tdm_model_get_info(model, &info);
    CHECK(strcmp(info.family, "sdxl-refiner") == 0);

    /* time ids: (orig h, orig w, crop top, crop left, aesthetic) / negative aesthetic */
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.width = 64, p.height = 48;
    tdm_gen_plan plan;
    tdm_status st = {0};
    CHECK(tdm_gen_resolve(m, &p, &plan, &st) == TDM_OK);
    float ids[6] = {0}, nids[6] = {0};
    tdm_sdxl_time_ids(m, &plan, 0, ids);
    tdm_sdxl_time_ids(m, &plan, 1, nids);
    CHECK(ids[0] == 48 && ids[1] == 64 && ids[2] == 0 && ids[3] == 0 && ids[4] == 6.0f && nids[4] == 2.5f);

    tdm_image init = {0};
    MUST(tdm_image_alloc(&init, 64, 64, &st) == TDM_OK);
    for (int i = 0; i < 64 * 64 * 3; i++) init.pixels[i] = (uint8_t)((i * 37) & 0xff);
    p.prompt = "a sharp photo";
    p.init_image = &init;
    p.strength = 0.3f;
    p.steps = 10;
    p.width = p.height = 0;
    tdm_image a = {0}, b = {0}, c = {0};
    tdm_generate_stats s;
    CHECK(gen(e1, model, &p, &a, &s) == TDM_OK);
    CHECK(a.width == 64 && s.steps_run == 3 && s.unet_batch == 2);
    CHECK(gen(e2, model, &p, &b, NULL) == TDM_OK);
    CHECK(same_image(&a, &b));
    p.aesthetic_score = 2.0f; /* the aesthetic score reaches the UNet */
    CHECK(gen(e2, model, &p, &c, NULL) == TDM_OK);
    CHECK(c.pixels && !same_image(&a, &c));
    tdm_image_free(&a), tdm_image_free(&b), tdm_image_free(&c);
    tdm_image_free(&init);
    tdm_model_free(model);
}

static void expect_load_fail(const char *root, tdm_code code, const char *s1, const char *s2) {
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = root;
    tdm_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = tdm_model_load(&mp, &m, &st);
    if (getenv("TDM_TEST_VERBOSE")) printf("expected failure: %s\n", st.msg);
    CHECK_MSG(rc == code, "code %s: %s", tdm_code_name(rc), st.msg);
    CHECK_MSG(strstr(st.msg, s1) != NULL, "message lacks '%s': %s", s1, st.msg);
    if (s2) CHECK_MSG(strstr(st.msg, s2) != NULL, "message lacks '%s': %s", s2, st.msg);
    tdm_model_free(m);
}

static void test_errors(void) {
    char root[PATH_MAX];
    /* concatenated width 16 + 24 = 40 != the UNet's 32 */
    snprintf(root, sizeof root, "%s/xl-wide", tdm_test_tmpdir());
    xl_opts o = {.te = TE1, .te2 = {24, 48, 2, 2, 32, 1}};
    make_xl(root, &o);
    expect_load_fail(root, TDM_ERR_FORMAT, "16 + text_encoder_2 hidden_size 24", "cross_attention_dim 32");
    /* projection 24: 80 - 24 = 56 is not 6 or 5 time ids x 8 */
    snprintf(root, sizeof root, "%s/xl-proj", tdm_test_tmpdir());
    o = (xl_opts){.te = TE1, .te2 = {16, 48, 2, 2, 24, 1}};
    make_xl(root, &o);
    expect_load_fail(root, TDM_ERR_FORMAT, "projection_class_embeddings_input_dim 80", "projection_dim 24");
    /* text_encoder_2 without projection */
    snprintf(root, sizeof root, "%s/xl-noproj", tdm_test_tmpdir());
    o = (xl_opts){.te = TE1, .te2 = {16, 48, 2, 2, 0, 1}};
    make_xl(root, &o);
    expect_load_fail(root, TDM_ERR_MISSING, "text_projection", "text_encoder_2");
    /* refiner without text_encoder_2 weights */
    snprintf(root, sizeof root, "%s/xl-no-te2", tdm_test_tmpdir());
    o = (xl_opts){.te = TE1, .te2 = TE2};
    make_xl(root, &o);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/text_encoder_2/model.safetensors", root);
    MUST(unlink(p) == 0);
    expect_load_fail(root, TDM_ERR_MISSING, "text_encoder_2", NULL);
}

int main(void) {
    if (!tdm_test_fixture("unet-sdxl-tiny") || !tdm_test_fixture("vae-sd-tiny") || !tdm_test_fixture("tokenizer-clip"))
        tdm_test_skip("fixtures unet-sdxl-tiny / vae-sd-tiny / tokenizer-clip not found (set TDM_FIXTURES)");
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/xl", tdm_test_tmpdir());
    xl_opts o = {.te = TE1, .te2 = TE2};
    make_xl(root, &o);
    tdm_engine *e1 = NULL, *e2 = NULL;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    tdm_status st = {0};
    ep.n_threads = 1;
    MUST(tdm_engine_create(&ep, &e1, &st) == TDM_OK);
    ep.n_threads = 2;
    MUST(tdm_engine_create(&ep, &e2, &st) == TDM_OK);
    tdm_model *m = load_model(root);
    if (m) {
        test_conditioning(e2, m);
        test_generate(e1, e2, m);
        tdm_model_free(m);
    }
    snprintf(root, sizeof root, "%s/xl-refiner", tdm_test_tmpdir());
    test_refiner(e1, e2, root);
    test_errors();
    tdm_engine_free(e1);
    tdm_engine_free(e2);
    return tdm_test_result();
}
