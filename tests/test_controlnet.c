/* ControlNet: the controlnet-sd15-tiny fixture at both conditioning scales (tandem check handler, 1 and 2
 * threads), multi-ControlNet sums, guess-mode scales, the single-file (control_model.*) layout built from
 * the fixtures, the full-size manifest-controlnet-sd15 tensor list from a sparse file (every tensor mapped;
 * a missing, misshapen or extra tensor named), config errors, and generation with the tiny SD pipeline:
 * bit-identical on 1 and 2 threads, scale 0 / empty window = no control, two half-scale ControlNets = one at
 * full scale, the start/end window, resized control images, errors. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "io/image.h"
#include "models/controlnet.h"
#include "pipeline/generate.h"
#include "tandem.h"
#include "manifest_util.h"
#include "test_util.h"
#include "tiny_sd_model.h"

static char g_cn_dir[PATH_MAX]; /* controlnet-sd15-tiny/model */

static void noop_line(void *user, const char *line) {
    (void)user;
    (void)line;
}

static void test_fixture(void) {
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny");
    for (int threads = 1; threads <= 2; threads++) {
        tdm_status st = {0};
        int np = 0, nf = 0;
        tdm_code rc = tdm_check_fixture(fx, threads, noop_line, NULL, &np, &nf, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        CHECK_MSG(np == 29 && nf == 0, "%d passed, %d failed (%d threads)", np, nf, threads);
    }
}

/* ---- direct model API ----------------------------------------------------------------------------- */

typedef struct residuals {
    int n;
    float *r[TDM_CONTROLNET_MAX_RESIDUALS + 1]; /* down 0..n-1, mid n */
    int64_t numel[TDM_CONTROLNET_MAX_RESIDUALS + 1];
} residuals;

static void res_alloc(residuals *r, const tdm_controlnet *cn, int B, int H, int W) {
    r->n = tdm_controlnet_n_down(cn);
    for (int i = 0; i <= r->n; i++) {
        int64_t C, h, w;
        tdm_controlnet_residual_shape(cn, i, H, W, &C, &h, &w);
        r->numel[i] = (int64_t)B * C * h * w;
        r->r[i] = calloc((size_t)r->numel[i], sizeof(float));
    }
}

static void res_free(residuals *r) {
    for (int i = 0; i <= r->n; i++) free(r->r[i]);
}

static int res_equal(const residuals *a, const residuals *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i <= a->n; i++)
        if (a->numel[i] != b->numel[i] || memcmp(a->r[i], b->r[i], (size_t)a->numel[i] * sizeof(float))) return 0;
    return 1;
}

typedef struct io_inputs {
    tdm_safetensors io;
    float *sample, *t, *ctx, *cond; /* views into io (F32) */
} io_inputs;

static float *io_f32(const tdm_safetensors *io, const char *name) {
    const tdm_st_entry *e = tdm_st_find(io, name);
    if (!e || e->dtype != TDM_F32) return NULL;
    return (float *)tdm_st_view(io, e).data;
}

static int run(const tdm_controlnet *cn, const io_inputs *x, tdm_arena *a, float scale, int guess, residuals *r,
               int accumulate) {
    tdm_status st = {0};
    const int64_t C0 = tdm_controlnet_get_config(cn)->unet.block_out_channels[0];
    float *emb = malloc((size_t)C0 * 16 * 16 * sizeof(float)); /* [1, C0, 16, 16] */
    tdm_exec ex = {0};
    tdm_code rc = tdm_controlnet_embed_cond(cn, &ex, a, x->cond, 1, 128, 128, emb, &st);
    tdm_controlnet_inputs in;
    memset(&in, 0, sizeof in);
    in.x.B = 1;
    in.x.H = in.x.W = 16;
    in.x.sample = x->sample;
    in.x.timesteps = x->t;
    in.x.context = x->ctx;
    in.x.context_len = 77;
    in.cond_emb = emb;
    in.cond_batch = 1;
    in.scale = scale;
    in.guess_mode = guess;
    if (!rc) rc = tdm_controlnet_forward(cn, &ex, a, &in, r->r, r->r[r->n], accumulate, &st);
    if (rc) fprintf(stderr, "controlnet: %s\n", st.msg);
    free(emb);
    return rc == TDM_OK;
}

static void test_model_api(const io_inputs *x) {
    tdm_status st = {0};
    tdm_controlnet *cn = NULL;
    CHECK_MSG(tdm_controlnet_load_file(&cn, g_cn_dir, NULL, &st) == TDM_OK, "%s", st.msg);
    if (!cn) return;
    CHECK(tdm_controlnet_n_down(cn) == 12);
    tdm_arena a;
    tdm_arena_init(&a, 1 << 20);
    residuals full, half2, guess;
    res_alloc(&full, cn, 1, 16, 16);
    res_alloc(&half2, cn, 1, 16, 16);
    res_alloc(&guess, cn, 1, 16, 16);
    CHECK(run(cn, x, &a, 1.0f, 0, &full, 0));
    /* two ControlNets at 0.5 summed (accumulate) = one at 1.0, bit for bit (x/2 + x/2 = x) */
    CHECK(run(cn, x, &a, 0.5f, 0, &half2, 0));
    CHECK(run(cn, x, &a, 0.5f, 0, &half2, 1));
    CHECK_MSG(res_equal(&full, &half2), "0.5 + 0.5 differs from 1.0");
    /* the stored residuals at scale 1 */
    char name[96];
    for (int i = 0; i <= full.n; i++) {
        if (i < full.n) snprintf(name, sizeof name, "cs1_0.down_block_res_samples.%d", i);
        else snprintf(name, sizeof name, "cs1_0.mid_block_res_sample");
        const float *ref = io_f32(&x->io, name);
        CHECK(ref && tdm_test_max_abs(full.r[i], ref, (long)full.numel[i]) < 1e-5);
    }
    /* guess mode: down residual i times 10^(-1 + i/12), the mid residual unscaled */
    CHECK(run(cn, x, &a, 1.0f, 1, &guess, 0));
    for (int i = 0; i <= guess.n; i++) {
        const double f = i == guess.n ? 1.0 : pow(10.0, -1.0 + i / 12.0);
        double worst = 0.0;
        for (int64_t k = 0; k < guess.numel[i]; k++) {
            double d = fabs(guess.r[i][k] - f * full.r[i][k]);
            if (d > worst) worst = d;
        }
        CHECK_MSG(worst < 1e-5, "guess-mode residual %d off by %g", i, worst);
    }
    /* a UNet that does not fit */
    tdm_unet_config uc = tdm_controlnet_get_config(cn)->unet;
    CHECK(tdm_controlnet_check_unet(cn, &uc, "unet", &st) == TDM_OK);
    uc.block_out_channels[1] = 64;
    CHECK(tdm_controlnet_check_unet(cn, &uc, "unet", &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "does not fit"));
    /* conditioning image not a multiple of 8 */
    float dummy[3 * 12 * 12] = {0}, out[16 * 2 * 2];
    CHECK(tdm_controlnet_embed_cond(cn, &(tdm_exec){0}, &a, dummy, 1, 12, 12, out, &st) == TDM_ERR_INVALID_ARG);
    res_free(&full);
    res_free(&half2);
    res_free(&guess);
    tdm_arena_free(&a);
    tdm_controlnet_free(cn);
}

/* ---- single file with the original names -------------------------------------------------------- */

static void test_single_file(const io_inputs *x) {
    char p[PATH_MAX + 64], cfgp[PATH_MAX + 64];
    tdm_status st = {0};
    tdm_safetensors u, c;
    snprintf(p, sizeof p, "%s/model-single-file/model.safetensors", tdm_test_fixture("unet-sd15-tiny"));
    if (tdm_st_open(&u, p, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        return;
    }
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", g_cn_dir);
    if (tdm_st_open(&c, p, &st)) {
        CHECK_MSG(0, "%s", st.msg);
        tdm_st_close(&u);
        return;
    }
    int cap = u.n_entries + c.n_entries, n = 0;
    char **names = calloc((size_t)cap, sizeof *names);
    tdm_tensor *ts = calloc((size_t)cap, sizeof *ts);
    const char *pre = "model.diffusion_model.";
    for (int i = 0; i < u.n_entries; i++) { /* the encoder: the UNet's own weights (from_unet copies them) */
        const char *nm = u.entries[i].name;
        if (strncmp(nm, pre, strlen(pre))) continue;
        const char *r = nm + strlen(pre);
        if (strncmp(r, "input_blocks.", 13) && strncmp(r, "middle_block.", 13) && strncmp(r, "time_embed.", 11))
            continue;
        names[n] = malloc(strlen(r) + 32);
        sprintf(names[n], "control_model.%s", r);
        ts[n++] = tdm_st_view(&u, &u.entries[i]);
    }
    for (int i = 0; i < c.n_entries; i++) {
        const char *nm = c.entries[i].name;
        char buf[256];
        int k;
        char rest[128];
        if (sscanf(nm, "controlnet_down_blocks.%d.%127s", &k, rest) == 2)
            snprintf(buf, sizeof buf, "control_model.zero_convs.%d.0.%s", k, rest);
        else if (sscanf(nm, "controlnet_mid_block.%127s", rest) == 1)
            snprintf(buf, sizeof buf, "control_model.middle_block_out.0.%s", rest);
        else if (sscanf(nm, "controlnet_cond_embedding.conv_in.%127s", rest) == 1)
            snprintf(buf, sizeof buf, "control_model.input_hint_block.0.%s", rest);
        else if (sscanf(nm, "controlnet_cond_embedding.blocks.%d.%127s", &k, rest) == 2)
            snprintf(buf, sizeof buf, "control_model.input_hint_block.%d.%s", 2 * k + 2, rest);
        else if (sscanf(nm, "controlnet_cond_embedding.conv_out.%127s", rest) == 1)
            snprintf(buf, sizeof buf, "control_model.input_hint_block.14.%s", rest);
        else
            continue;
        names[n] = strdup(buf);
        ts[n++] = tdm_st_view(&c, &c.entries[i]);
    }
    CHECK(n > 100);
    snprintf(p, sizeof p, "%s/cn-ldm.safetensors", tdm_test_tmpdir());
    CHECK_MSG(tdm_st_write(p, n, (const char *const *)names, ts, &st) == TDM_OK, "%s", st.msg);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ts);
    tdm_st_close(&u);
    tdm_st_close(&c);

    snprintf(cfgp, sizeof cfgp, "%s/config.json", g_cn_dir);
    tdm_controlnet *a = NULL, *b = NULL;
    CHECK_MSG(tdm_controlnet_load_file(&a, g_cn_dir, NULL, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_controlnet_load_file(&b, p, cfgp, &st) == TDM_OK, "%s", st.msg);
    /* without a config: the SD 1.x ControlNet config does not fit the tiny weights, naming a tensor */
    tdm_controlnet *d = NULL;
    CHECK(tdm_controlnet_load(p, &d, &st) != TDM_OK && d == NULL && strstr(st.msg, "weight"));
    if (a && b) {
        tdm_arena ar;
        tdm_arena_init(&ar, 1 << 20);
        residuals ra, rb;
        res_alloc(&ra, a, 1, 16, 16);
        res_alloc(&rb, b, 1, 16, 16);
        CHECK(run(a, x, &ar, 1.0f, 0, &ra, 0));
        CHECK(run(b, x, &ar, 1.0f, 0, &rb, 0));
        CHECK_MSG(res_equal(&ra, &rb), "single-file and folder ControlNets differ");
        res_free(&ra);
        res_free(&rb);
        tdm_arena_free(&ar);
    }
    tdm_controlnet_free(a);
    tdm_controlnet_free(b);
}

/* ---- full-size manifest from a sparse file ------------------------------------------------------- */

static tdm_code load_sparse(const char *dir, const cJSON *man, const char *drop, const char *grow, const char *extra,
                            tdm_status *st) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", dir);
    tdm_sparse_edit ed = {.remove = drop, .reshape = grow, .add = extra};
    if (tdm_test_write_sparse(p, man, "F16", &ed)) return tdm_fail(st, TDM_ERR_IO, "cannot write %s", p);
    tdm_controlnet *cn = NULL;
    tdm_code rc = tdm_controlnet_load(dir, &cn, st);
    if (!rc) {
        CHECK(tdm_controlnet_n_down(cn) == 12);
        const tdm_controlnet_config *c = tdm_controlnet_get_config(cn);
        CHECK(c->unet.block_out_channels[3] == 1280 && c->cond_channels[3] == 256 && c->conditioning_channels == 3);
    }
    tdm_controlnet_free(cn);
    return rc;
}

static void test_manifest(void) {
    const char *fx = tdm_test_fixture("manifest-controlnet-sd15");
    if (!fx) {
        printf("manifest-controlnet-sd15 absent: skipped\n");
        return;
    }
    char p[PATH_MAX + 64], dir[PATH_MAX];
    tdm_status st = {0};
    cJSON *man = NULL, *cas = NULL;
    snprintf(p, sizeof p, "%s/controlnet.json", fx);
    CHECK(tdm_json_load(p, &man, &st) == TDM_OK);
    snprintf(p, sizeof p, "%s/case.json", fx);
    CHECK(tdm_json_load(p, &cas, &st) == TDM_OK);
    if (!man || !cas) return;
    CHECK(cJSON_GetArraySize(man) == 340);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cas, "config"), "controlnet"), "config");
    snprintf(dir, sizeof dir, "%s/cn-sd15", tdm_test_tmpdir());
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = cJSON_Print(cfg);
    FILE *f = fopen(p, "w");
    if (f && text) fputs(text, f);
    if (f) fclose(f);
    free(text);

    CHECK_MSG(load_sparse(dir, man, NULL, NULL, NULL, &st) == TDM_OK, "%s", st.msg);
    CHECK(load_sparse(dir, man, "controlnet_down_blocks.7.weight", NULL, NULL, &st) == TDM_ERR_MISSING &&
          strstr(st.msg, "controlnet_down_blocks.7.weight"));
    CHECK(load_sparse(dir, man, NULL, "controlnet_cond_embedding.blocks.3.weight", NULL, &st) == TDM_ERR_FORMAT &&
          strstr(st.msg, "controlnet_cond_embedding.blocks.3.weight"));
    CHECK(load_sparse(dir, man, NULL, NULL, "controlnet_down_blocks.12.bias", &st) != TDM_OK &&
          strstr(st.msg, "controlnet_down_blocks.12.bias"));
    CHECK(load_sparse(dir, man, "mid_block.attentions.0.proj_in.weight", NULL, NULL, &st) == TDM_ERR_MISSING);
    cJSON_Delete(man);
    cJSON_Delete(cas);
}

static void test_config_errors(void) {
    tdm_status st = {0};
    tdm_controlnet_config c;
    const char *bad[][2] = {
        {"{\"block_out_channels\": [32, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
         " \"norm_num_groups\": 8, \"cross_attention_dim\": 32, \"controlnet_conditioning_channel_order\": \"xyz\"}",
         "controlnet_conditioning_channel_order"},
        {"{\"block_out_channels\": [32, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
         " \"norm_num_groups\": 8, \"cross_attention_dim\": 32, \"conditioning_embedding_out_channels\": [16, -1]}",
         "conditioning_embedding_out_channels"},
        {"{\"block_out_channels\": [32, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"Foo\"],"
         " \"norm_num_groups\": 8, \"cross_attention_dim\": 32}",
         "down_block_types"},
        {"{\"block_out_channels\": [32, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
         " \"norm_num_groups\": 8, \"cross_attention_dim\": 32, \"class_embed_type\": \"timestep\"}",
         "class_embed_type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i][0]);
        CHECK(j && tdm_controlnet_config_from_json(j, "cfg", &c, &st) != TDM_OK);
        CHECK_MSG(strstr(st.msg, bad[i][1]) != NULL, "%s", st.msg);
        cJSON_Delete(j);
    }
    cJSON *j = cJSON_Parse("{\"block_out_channels\": [32, 32], \"down_block_types\": [\"CrossAttnDownBlock2D\","
                           " \"DownBlock2D\"], \"norm_num_groups\": 8, \"cross_attention_dim\": 32,"
                           " \"controlnet_conditioning_channel_order\": \"bgr\", \"global_pool_conditions\": true}");
    CHECK(j && tdm_controlnet_config_from_json(j, "cfg", &c, &st) == TDM_OK);
    CHECK(c.bgr == 1 && c.global_pool_conditions == 1 && c.n_cond_levels == 4 && c.cond_channels[3] == 256);
    CHECK(c.unet.up_attn[0] == 0 && c.unet.up_attn[1] == 1);
    cJSON_Delete(j);
    tdm_controlnet *cn = NULL;
    CHECK(tdm_controlnet_load("/nonexistent/controlnet", &cn, &st) != TDM_OK && cn == NULL);
}

/* ---- generation ---------------------------------------------------------------------------------- */

static int same(const tdm_image *a, const tdm_image *b) {
    return a->pixels && b->pixels && a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

static tdm_code gen(tdm_engine *e, const tdm_model *m, const tdm_control *cs, int n, tdm_image *out,
                    tdm_generate_stats *stats, int size) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a red circle";
    p.steps = 4;
    p.sampler = "euler_a";
    p.seed = 7;
    p.width = p.height = size;
    p.controls = cs;
    p.n_controls = n;
    tdm_status st = {0};
    tdm_code rc = tdm_generate(e, m, &p, out, stats, &st);
    if (rc) fprintf(stderr, "generate: %s\n", st.msg);
    return rc;
}

static void test_generate(void) {
    if (!tiny_sd_fixtures_present(0)) {
        printf("tiny SD fixtures absent: generation skipped\n");
        return;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir());
    tiny_sd_make_model(dir, "unet-sd15-tiny", "EulerDiscreteScheduler");
    tdm_status st = {0};
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = dir;
    tdm_model *m = NULL;
    tdm_controlnet *cn = NULL;
    tdm_engine *e1 = NULL, *e2 = NULL;
    tiny_sd_engines(&e1, &e2);
    CHECK_MSG(tdm_model_load(&mp, &m, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_controlnet_load(g_cn_dir, &cn, &st) == TDM_OK, "%s", st.msg);
    if (!m || !cn || !e1 || !e2) goto out;

    /* a control image: white square on black, edges by Canny */
    tdm_image sq = {0}, edges = {0};
    CHECK(tdm_image_alloc(&sq, 64, 64, &st) == TDM_OK);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            for (int c = 0; c < 3; c++) sq.pixels[(y * 64 + x) * 3 + c] = (x >= 16 && x < 48 && y >= 20 && y < 44) ? 255 : 0;
    CHECK(tdm_canny(&sq, 100, 200, 0, &edges, &st) == TDM_OK);

    tdm_control c[2];
    tdm_control_init(&c[0]);
    CHECK(c[0].scale == 1.0f && c[0].start == 0.0f && c[0].end == 1.0f);
    c[0].controlnet = cn;
    c[0].image = &edges;
    tdm_image none = {0}, a = {0}, b = {0}, t = {0};
    tdm_generate_stats s;
    CHECK(gen(e1, m, NULL, 0, &none, &s, 64) == TDM_OK && s.controlnet_calls == 0);
    CHECK(gen(e1, m, c, 1, &a, &s, 64) == TDM_OK);
    CHECK(s.controlnet_calls == 4 && s.unet_calls == 4 && s.unet_batch == 2);
    CHECK_MSG(a.pixels && none.pixels && !same(&a, &none), "the ControlNet changed nothing");
    CHECK(gen(e2, m, c, 1, &b, &s, 64) == TDM_OK);
    CHECK_MSG(same(&a, &b), "1-thread and 2-thread ControlNet images differ");
    tdm_image_free(&b);

    /* scale 0 = no control (residuals 0) */
    c[0].scale = 0.0f;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_OK && same(&t, &none));
    tdm_image_free(&t);
    /* two ControlNets at 0.5 = one at 1.0 */
    c[0].scale = 0.5f;
    c[1] = c[0];
    CHECK(gen(e1, m, c, 2, &t, &s, 64) == TDM_OK && s.controlnet_calls == 8);
    CHECK_MSG(same(&t, &a), "0.5 + 0.5 differs from 1.0");
    tdm_image_free(&t);
    c[0].scale = 1.0f;

    /* window: 4 steps; [0, 0.5): steps 0, 1; [0.9, 1]: none (i/4 >= 0.9 never holds) */
    CHECK(tdm_gen_control_active(0, 4, 0.0f, 0.5f) && tdm_gen_control_active(1, 4, 0.0f, 0.5f) &&
          !tdm_gen_control_active(2, 4, 0.0f, 0.5f));
    CHECK(!tdm_gen_control_active(2, 10, 0.3f, 1.0f) && tdm_gen_control_active(3, 10, 0.3f, 1.0f)); /* 3/10 >= 0.3 */
    CHECK(tdm_gen_control_active(6, 10, 0.0f, 0.7f) && !tdm_gen_control_active(7, 10, 0.0f, 0.7f)); /* 7/10 <= 0.7 */
    c[0].end = 0.5f;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_OK && s.controlnet_calls == 2);
    CHECK(t.pixels && !same(&t, &a) && !same(&t, &none));
    tdm_image_free(&t);
    c[0].start = 0.9f;
    c[0].end = 1.0f;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_OK && s.controlnet_calls == 0 && same(&t, &none));
    tdm_image_free(&t);
    c[0].start = 0.0f;

    /* a control image of another size is resized (Lanczos); without width/height its size is used */
    tdm_image big = {0};
    CHECK(tdm_image_resize(&edges, 100, 60, TDM_RESAMPLE_BILINEAR, &big, &st) == TDM_OK);
    c[0].image = &big;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_OK && t.width == 64 && t.height == 64);
    tdm_image_free(&t);
    CHECK(gen(e1, m, c, 1, &t, &s, 0) == TDM_OK && t.width == 96 && t.height == 56);
    tdm_image_free(&t);
    c[0].image = &edges;

    /* errors */
    c[0].start = 0.6f;
    c[0].end = 0.4f;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_ERR_INVALID_ARG);
    c[0].start = 0.0f;
    c[0].end = 1.0f;
    c[0].scale = -1.0f;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_ERR_INVALID_ARG);
    c[0].scale = 1.0f;
    c[0].controlnet = NULL;
    CHECK(gen(e1, m, c, 1, &t, &s, 64) == TDM_ERR_INVALID_ARG);
    c[0].controlnet = cn;
    CHECK(gen(e1, m, NULL, 1, &t, &s, 64) == TDM_ERR_INVALID_ARG);
    CHECK(gen(e1, m, c, 99, &t, &s, 64) == TDM_ERR_INVALID_ARG);

    tdm_image_free(&big);
    tdm_image_free(&none);
    tdm_image_free(&a);
    tdm_image_free(&sq);
    tdm_image_free(&edges);
out:
    tdm_controlnet_free(cn);
    tdm_model_free(m);
    tdm_engine_free(e1);
    tdm_engine_free(e2);
}

/* ---- CLI ----------------------------------------------------------------------------------------- */

static int sh(const char *bin, const char *args) {
    static char cmd[40000];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", bin, args);
    int rc = system(cmd);
    return rc >= 0 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(const char *argv0) {
    static char args[32768];
    char bin[PATH_MAX], dir[PATH_MAX + 32], png[PATH_MAX + 32], edges[PATH_MAX + 32];
    const char *env = getenv("TDM_TANDEM");
    if (env) snprintf(bin, sizeof bin, "%s", env);
    else { /* <build>/tests/test_controlnet -> <build>/tandem */
        snprintf(bin, sizeof bin, "%s", argv0);
        char *slash = strrchr(bin, '/');
        if (slash) *slash = '\0';
        slash = strrchr(bin, '/');
        if (slash) strcpy(slash + 1, "tandem");
        else snprintf(bin, sizeof bin, "build/tandem");
    }
    if (access(bin, X_OK) != 0) {
        printf("%s absent: CLI part skipped\n", bin);
        return;
    }
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir()); /* made by test_generate */
    snprintf(png, sizeof png, "%s/cli-a.png", tdm_test_tmpdir());
    snprintf(edges, sizeof edges, "%s/cli-edges.png", tdm_test_tmpdir());
    snprintf(args, sizeof args, "generate --model '%s' --prompt x --steps 2 --seed 3 --width 64 --height 64 -q -o '%s'",
             dir, png);
    CHECK(sh(bin, args) == 0);
    snprintf(args, sizeof args,
             "generate --model '%s' --prompt x --steps 2 --seed 3 -q -o '%s/cli-b.png' --controlnet '%s' "
             "--control-image '%s' --canny --canny-low 50 --save-control '%s' --control-scale 0.7 --control-end 0.5 "
             "--controlnet '%s' --control-image '%s'",
             dir, tdm_test_tmpdir(), g_cn_dir, png, edges, g_cn_dir, png);
    CHECK(sh(bin, args) == 0);
    tdm_image e = {0};
    tdm_status st = {0};
    CHECK_MSG(tdm_image_load(edges, &e, &st) == TDM_OK && e.width == 64 && e.height == 64, "%s", st.msg);
    tdm_image_free(&e);
    snprintf(args, sizeof args, "generate --model '%s' --prompt x --control-image '%s'", dir, png);
    CHECK(sh(bin, args) == 2); /* no --controlnet before it */
    snprintf(args, sizeof args, "generate --model '%s' --prompt x --controlnet '%s'", dir, g_cn_dir);
    CHECK(sh(bin, args) == 2); /* no image */
    snprintf(args, sizeof args,
             "generate --model '%s' --prompt x --controlnet '%s' --control-image '%s' --control-start 0.5 "
             "--control-end 0.5", dir, g_cn_dir, png);
    CHECK(sh(bin, args) == 2);
    snprintf(args, sizeof args, "generate --model '%s' --prompt x --controlnet '%s/nope' --control-image '%s' -q",
             dir, tdm_test_tmpdir(), png);
    CHECK(sh(bin, args) == 1);
}

int main(int argc, char **argv) {
    (void)argc;
    if (!tdm_test_fixture("unet-sd15-tiny")) tdm_test_skip("unet-sd15-tiny absent");
    const char *fx = tdm_test_fixture("controlnet-sd15-tiny"); /* static buffer: used before the next call */
    if (!fx) tdm_test_skip("controlnet-sd15-tiny absent");
    snprintf(g_cn_dir, sizeof g_cn_dir, "%s/model", fx);
    test_fixture();

    io_inputs x;
    memset(&x, 0, sizeof x);
    char p[PATH_MAX];
    tdm_status st = {0};
    snprintf(p, sizeof p, "%s/io.safetensors", fx);
    CHECK_MSG(tdm_st_open(&x.io, p, &st) == TDM_OK, "%s", st.msg);
    x.sample = io_f32(&x.io, "sample");
    x.t = io_f32(&x.io, "timestep");
    x.ctx = io_f32(&x.io, "encoder_hidden_states");
    x.cond = io_f32(&x.io, "controlnet_cond");
    CHECK(x.sample && x.t && x.ctx && x.cond);
    if (x.sample && x.t && x.ctx && x.cond) {
        test_model_api(&x);
        test_single_file(&x);
    }
    if (x.io.map) tdm_st_close(&x.io);
    test_manifest();
    test_config_errors();
    test_generate();
    test_cli(argv[0]);
    return tdm_test_result();
}
