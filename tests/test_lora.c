/* LoRA (models/lora.h, lora_model.h, pipeline/sd_lora.c): the lora-sd15-tiny fixture with both key
 * styles at scales 1.0 and 0.5, run-time vs merged agreement, 1 vs 2 threads, the LCM-LoRA SD1.5 name
 * lists mapped onto the SD1.5 UNet manifest (sparse files: no weights), errors (unknown key, wrong
 * shape, missing alpha, missing up, unsupported adapters, a LoRA for another model), a text-encoder
 * LoRA merged, models derived with tdm_model_derive_lora sharing the base weights, and the LCM-LoRA rule
 * (metadata "tandem.kind", file / folder / hub repo name) with the LCM defaults it selects. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "models/lora_model.h"
#include "pipeline/adaptive.h"
#include "pipeline/sd_model.h"
#include "tandem.h"
#include "manifest_util.h"
#include "cli_util.h"
#include "test_util.h"
#include "tiny_sd_model.h"

static char g_fix[PATH_MAX];

static void fixture_path(char *buf, size_t n, const char *fmt, ...) {
    char rel[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(buf, n, "%.3000s/%.1000s", g_fix, rel);
}

static tdm_unet *load_unet_fixture(const char *name) {
    char cfgp[PATH_MAX], wp[PATH_MAX];
    fixture_path(cfgp, sizeof cfgp, "%s/model/config.json", name);
    fixture_path(wp, sizeof wp, "%s/model/diffusion_pytorch_model.safetensors", name);
    tdm_status st = {0};
    tdm_unet_config cfg;
    tdm_weights ws;
    tdm_unet *u = NULL;
    if (tdm_unet_config_load(cfgp, &cfg, &st) || tdm_weights_open_file(&ws, "unet", wp, "", NULL, NULL, &st) ||
        tdm_unet_load(&u, &cfg, &ws, &st)) {
        fprintf(stderr, "%s: %s\n", name, st.msg);
        return NULL;
    }
    return u;
}

/* io.safetensors tensor as f32 (malloc). */
static float *io_tensor(const tdm_safetensors *io, const char *name, tdm_tensor *shape) {
    const tdm_st_entry *e = tdm_st_find(io, name);
    if (!e) return NULL;
    tdm_tensor t = tdm_st_view(io, e);
    float *p = malloc((size_t)tdm_tensor_numel(&t) * sizeof(float));
    if (p && tdm_tensor_to_f32(&t, p, NULL)) {
        free(p);
        return NULL;
    }
    if (shape) *shape = t;
    return p;
}

static double rel_l2(const float *a, const float *b, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- fixture ------------------------------------------------------------------------------------ */

typedef struct fx {
    tdm_safetensors io;
    float *sample, *t, *ctx;
    tdm_unet_inputs in;
    long n_out;
} fx;

static int fx_open(fx *f) {
    char p[PATH_MAX];
    tdm_status st = {0};
    fixture_path(p, sizeof p, "lora-sd15-tiny/io.safetensors");
    if (tdm_st_open(&f->io, p, &st)) return 0;
    tdm_tensor ts, tc;
    f->sample = io_tensor(&f->io, "sample", &ts);
    f->t = io_tensor(&f->io, "timestep", NULL);
    f->ctx = io_tensor(&f->io, "encoder_hidden_states", &tc);
    if (!f->sample || !f->t || !f->ctx) return 0;
    memset(&f->in, 0, sizeof f->in);
    f->in.B = (int)ts.shape[0];
    f->in.H = (int)ts.shape[2];
    f->in.W = (int)ts.shape[3];
    f->in.sample = f->sample;
    f->in.timesteps = f->t;
    f->in.context = f->ctx;
    f->in.context_len = (int)tc.shape[1];
    f->n_out = (long)tdm_tensor_numel(&ts);
    return 1;
}

static void fx_close(fx *f) {
    free(f->sample);
    free(f->t);
    free(f->ctx);
    tdm_st_close(&f->io);
}

static float *forward(const tdm_unet *u, const fx *f, int threads) {
    tdm_pool *pool = NULL;
    tdm_status st = {0};
    if (threads > 1 && tdm_pool_create(&pool, threads, &st)) return NULL;
    tdm_exec ex = {pool, 0};
    tdm_arena a;
    tdm_arena_init(&a, (size_t)16 << 20);
    float *out = malloc((size_t)f->n_out * sizeof(float));
    if (out && tdm_unet_forward(u, &ex, &a, &f->in, out, &st)) {
        fprintf(stderr, "forward: %s\n", st.msg);
        free(out);
        out = NULL;
    }
    tdm_arena_free(&a);
    tdm_pool_free(pool);
    return out;
}

static void test_fixture(void) {
    fx f;
    CHECK(fx_open(&f));
    tdm_unet *base = load_unet_fixture("unet-sd15-tiny");
    CHECK(base != NULL);
    if (!base || !f.sample) return;
    const char *files[2] = {"model-kohya/lora.safetensors", "model-diffusers-peft/pytorch_lora_weights.safetensors"};
    const float scales[2] = {1.0f, 0.5f};
    const char *outs[2] = {"noise_pred_lora_1_0", "noise_pred_lora_0_5"};
    float *base_out = forward(base, &f, 1);
    float *ref_base = io_tensor(&f.io, "noise_pred_base", NULL);
    CHECK(base_out && ref_base && rel_l2(base_out, ref_base, f.n_out) < 3e-6);
    for (int fi = 0; fi < 2; fi++) {
        char p[PATH_MAX];
        fixture_path(p, sizeof p, "lora-sd15-tiny/%s", files[fi]);
        tdm_status st = {0};
        tdm_lora *l = NULL;
        CHECK_MSG(tdm_lora_open(&l, p, &st) == TDM_OK, "%s", st.msg);
        if (!l) continue;
        CHECK(l->n == 277 && l->n_comp[TDM_LORA_UNET] == 277 && l->m[0].rank == 4);
        CHECK(l->m[0].alpha == (fi == 0 ? 2.0f : 4.0f) && l->m[0].has_alpha == (fi == 0));
        for (int si = 0; si < 2; si++) {
            float *ref = io_tensor(&f.io, outs[si], NULL);
            tdm_lora_set *s = NULL;
            tdm_unet *rt = NULL, *mg = NULL;
            CHECK_MSG(tdm_lora_bind(&s, tdm_unet_weights(base), TDM_LORA_UNET, &l, &scales[si], 1, &st) == TDM_OK,
                      "%s", st.msg);
            if (!s) continue;
            CHECK(s->n == 277);
            CHECK(tdm_unet_with_lora(base, s, 0, &rt, &st) == TDM_OK);
            CHECK(tdm_unet_with_lora(base, s, 1, &mg, &st) == TDM_OK);
            /* the run-time view shares every weight with the base; the merged one only the untargeted ones */
            const tdm_weights *wb = tdm_unet_weights(base), *wr = tdm_unet_weights(rt), *wm = tdm_unet_weights(mg);
            int shared_rt = 0, shared_mg = 0;
            for (int i = 0; i < wb->n && wr->n == wb->n && wm->n == wb->n; i++) {
                shared_rt += wr->w[i].t.data == wb->w[i].t.data;
                shared_mg += wm->w[i].t.data == wb->w[i].t.data;
            }
            CHECK(shared_rt == wb->n);
            CHECK(shared_mg == wb->n - 277);
            CHECK(tdm_unet_lora(rt) == s && tdm_unet_lora(mg) == NULL && tdm_unet_lora(base) == NULL);
            float *o_rt = forward(rt, &f, 1), *o_rt2 = forward(rt, &f, 2), *o_mg = forward(mg, &f, 1);
            CHECK(o_rt && o_rt2 && o_mg && ref);
            if (o_rt && o_rt2 && o_mg && ref) {
                double e_rt = rel_l2(o_rt, ref, f.n_out), e_mg = rel_l2(o_mg, ref, f.n_out);
                double a_rt = tdm_test_max_abs(o_rt, ref, f.n_out), a_mg = tdm_test_max_abs(o_mg, ref, f.n_out);
                printf("%s scale %.1f: run-time max_abs %.2e rel_l2 %.2e; merged max_abs %.2e rel_l2 %.2e; "
                       "run-time vs merged %.2e\n",
                       files[fi], (double)scales[si], a_rt, e_rt, a_mg, e_mg, tdm_test_max_abs(o_rt, o_mg, f.n_out));
                CHECK(e_rt < 3.3e-6 && a_rt < 6e-6);
                CHECK(e_mg < 3.3e-6 && a_mg < 6e-6);
                CHECK(tdm_test_max_abs(o_rt, o_mg, f.n_out) < 5e-6);
                CHECK(memcmp(o_rt, o_rt2, (size_t)f.n_out * sizeof(float)) == 0); /* 1 vs 2 threads */
                CHECK(rel_l2(o_rt, base_out, f.n_out) > 0.1);                   /* the LoRA does something */
            }
            /* the base is untouched by the views */
            float *again = forward(base, &f, 1);
            CHECK(again && base_out && memcmp(again, base_out, (size_t)f.n_out * sizeof(float)) == 0);
            free(again);
            free(o_rt);
            free(o_rt2);
            free(o_mg);
            free(ref);
            tdm_unet_free(rt);
            tdm_unet_free(mg);
            tdm_lora_set_free(s);
        }
        tdm_lora_free(l);
    }
    /* both files together at 0.5 each = one at 1.0 (same deltas) */
    {
        char p0[PATH_MAX], p1[PATH_MAX];
        fixture_path(p0, sizeof p0, "lora-sd15-tiny/%s", files[0]);
        fixture_path(p1, sizeof p1, "lora-sd15-tiny/%s", files[1]);
        tdm_status st = {0};
        tdm_lora *ls[2] = {NULL, NULL};
        CHECK(tdm_lora_open(&ls[0], p0, &st) == TDM_OK && tdm_lora_open(&ls[1], p1, &st) == TDM_OK);
        const float half[2] = {0.5f, 0.5f};
        tdm_lora_set *s = NULL;
        tdm_unet *rt = NULL;
        CHECK(ls[0] && ls[1] && tdm_lora_bind(&s, tdm_unet_weights(base), TDM_LORA_UNET, ls, half, 2, &st) == TDM_OK);
        CHECK(s && s->n == 277 && s->t[0].n == 2);
        CHECK(s && tdm_unet_with_lora(base, s, 0, &rt, &st) == TDM_OK);
        float *o = rt ? forward(rt, &f, 1) : NULL, *ref = io_tensor(&f.io, "noise_pred_lora_1_0", NULL);
        CHECK(o && ref && rel_l2(o, ref, f.n_out) < 3.3e-6);
        free(o);
        free(ref);
        tdm_unet_free(rt);
        tdm_lora_set_free(s);
        tdm_lora_free(ls[0]);
        tdm_lora_free(ls[1]);
    }
    free(base_out);
    free(ref_base);
    tdm_unet_free(base);
    fx_close(&f);
}

/* ---- errors ------------------------------------------------------------------------------------- */

static uint32_t g_rng = 12345;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffff) / 65536.0f - 0.5f;
}

typedef struct tfile {
    int n;
    const char *names[16];
    tdm_tensor t[16];
    float *data[16];
} tfile;

static void tf_add(tfile *f, const char *name, int ndim, const int64_t *shape) {
    tdm_tensor t = tdm_tensor_view(TDM_F32, NULL, ndim, shape);
    int64_t n = tdm_tensor_numel(&t);
    float *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) d[i] = frand();
    t.data = d;
    f->names[f->n] = name;
    f->data[f->n] = d;
    f->t[f->n++] = t;
}

static void tf_alpha(tfile *f, const char *name, float v) {
    tf_add(f, name, 0, NULL);
    f->data[f->n - 1][0] = v;
}

static const char *tf_write(tfile *f, const char *file) {
    static char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", tdm_test_tmpdir(), file);
    tdm_status st = {0};
    if (tdm_st_write(p, f->n, f->names, f->t, &st)) fprintf(stderr, "write %s: %s\n", p, st.msg);
    for (int i = 0; i < f->n; i++) free(f->data[i]);
    f->n = 0;
    return p;
}

/* open (+ bind to ws when given) must fail with code, the message containing s1 and s2. */
static void expect_fail(int line, const char *path, const tdm_weights *ws, tdm_code code, const char *s1,
                        const char *s2) {
    tdm_status st = {0};
    tdm_lora *l = NULL;
    tdm_lora_set *s = NULL;
    float one = 1.0f;
    tdm_code rc = tdm_lora_open(&l, path, &st);
    if (!rc && ws) rc = tdm_lora_bind(&s, ws, TDM_LORA_UNET, &l, &one, 1, &st);
    CHECK_MSG(rc == code, "line %d: code %d (want %d): %s", line, rc, code, st.msg);
    CHECK_MSG(!s1 || strstr(st.msg, s1), "line %d: '%s' not in: %s", line, s1, st.msg);
    CHECK_MSG(!s2 || strstr(st.msg, s2), "line %d: '%s' not in: %s", line, s2, st.msg);
    if (rc) printf("expected error (line %d): %s\n", line, st.msg);
    tdm_lora_set_free(s);
    tdm_lora_free(l);
}

static void test_errors(void) {
    tdm_unet *base = load_unet_fixture("unet-sd15-tiny");
    CHECK(base != NULL);
    if (!base) return;
    const tdm_weights *ws = tdm_unet_weights(base);
    tfile f = {0};
    const char *K = "lora_unet_down_blocks_0_resnets_0_conv1";
    char dn[128], up[128], al[128];
    snprintf(dn, sizeof dn, "%s.lora_down.weight", K);
    snprintf(up, sizeof up, "%s.lora_up.weight", K);
    snprintf(al, sizeof al, "%s.alpha", K);

    /* unknown key named */
    tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
    tf_add(&f, up, 4, (int64_t[]){16, 2, 1, 1});
    tf_add(&f, "model.diffusion_model.foo.weight", 1, (int64_t[]){4});
    expect_fail(__LINE__, tf_write(&f, "unknown.safetensors"), NULL, TDM_ERR_FORMAT, "model.diffusion_model.foo.weight",
                "not a LoRA key");
    /* module that names no weight */
    tf_add(&f, "lora_unet_down_blocks_0_resnets_7_conv1.lora_down.weight", 2, (int64_t[]){2, 16});
    tf_add(&f, "lora_unet_down_blocks_0_resnets_7_conv1.lora_up.weight", 2, (int64_t[]){16, 2});
    expect_fail(__LINE__, tf_write(&f, "nomodule.safetensors"), ws, TDM_ERR_FORMAT,
                "lora_unet_down_blocks_0_resnets_7_conv1", "names no weight");
    /* wrong shape: both named */
    tf_add(&f, dn, 4, (int64_t[]){2, 17, 3, 3});
    tf_add(&f, up, 4, (int64_t[]){16, 2, 1, 1});
    expect_fail(__LINE__, tf_write(&f, "shape.safetensors"), ws, TDM_ERR_FORMAT, "down [2, 17, 3, 3]",
                "'down_blocks.0.resnets.0.conv1.weight' [16, 16, 3, 3]");
    /* ranks that disagree */
    tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
    tf_add(&f, up, 4, (int64_t[]){16, 3, 1, 1});
    expect_fail(__LINE__, tf_write(&f, "rank.safetensors"), NULL, TDM_ERR_FORMAT, K, "rank");
    /* missing up */
    tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
    tf_alpha(&f, al, 1.0f);
    expect_fail(__LINE__, tf_write(&f, "noup.safetensors"), NULL, TDM_ERR_FORMAT, K, "no lora_up");
    /* non-scalar alpha */
    tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
    tf_add(&f, up, 4, (int64_t[]){16, 2, 1, 1});
    tf_add(&f, al, 1, (int64_t[]){2});
    expect_fail(__LINE__, tf_write(&f, "alpha2.safetensors"), NULL, TDM_ERR_FORMAT, al, "expected one");
    /* LoHa refused by name */
    tf_add(&f, "lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a", 2, (int64_t[]){2, 16});
    expect_fail(__LINE__, tf_write(&f, "loha.safetensors"), NULL, TDM_ERR_UNSUPPORTED, "hada_w1_a", "LoHa");
    /* empty of LoRA tensors */
    expect_fail(__LINE__, tf_write(&f, "empty.safetensors"), NULL, TDM_ERR_FORMAT, "no LoRA tensors", NULL);

    /* missing alpha: alpha = rank (factor = scale), the same result as alpha = rank written out */
    {
        g_rng = 777;
        tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
        tf_add(&f, up, 4, (int64_t[]){16, 2, 1, 1});
        char p1[PATH_MAX];
        snprintf(p1, sizeof p1, "%s", tf_write(&f, "noalpha.safetensors"));
        g_rng = 777; /* the same values, with alpha = rank written out */
        tf_add(&f, dn, 4, (int64_t[]){2, 16, 3, 3});
        tf_add(&f, up, 4, (int64_t[]){16, 2, 1, 1});
        tf_alpha(&f, al, 2.0f);
        const char *p2 = tf_write(&f, "alpha_rank.safetensors");
        tdm_status st = {0};
        tdm_lora *a = NULL, *b = NULL;
        CHECK(tdm_lora_open(&a, p1, &st) == TDM_OK && tdm_lora_open(&b, p2, &st) == TDM_OK);
        if (a && b) {
            CHECK(a->m[0].has_alpha == 0 && a->m[0].alpha == 2.0f && a->m[0].rank == 2);
            CHECK(b->m[0].has_alpha == 1 && b->m[0].alpha == 2.0f);
            float sc = 0.75f;
            tdm_lora_set *sa = NULL;
            CHECK(tdm_lora_bind(&sa, ws, TDM_LORA_UNET, &a, &sc, 1, &st) == TDM_OK);
            CHECK(sa && sa->n == 1 && sa->t[0].d[0].factor == 0.75f);
            tdm_lora_set_free(sa);
        }
        tdm_lora_free(a);
        tdm_lora_free(b);
    }

    /* diffusers attention-processor names (older files) map to to_q / to_out.0 */
    {
        tf_add(&f, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight", 2,
               (int64_t[]){2, 16});
        tf_add(&f, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight", 2,
               (int64_t[]){16, 2});
        tf_add(&f, "unet.mid_block.resnets.0.time_emb_proj.lora.down.weight", 2, (int64_t[]){2, 64});
        tf_add(&f, "unet.mid_block.resnets.0.time_emb_proj.lora.up.weight", 2, (int64_t[]){32, 2});
        const char *p = tf_write(&f, "procs.safetensors");
        tdm_status st = {0};
        tdm_lora *l = NULL;
        tdm_lora_set *s = NULL;
        float one = 1.0f;
        CHECK_MSG(tdm_lora_open(&l, p, &st) == TDM_OK, "%s", st.msg);
        CHECK_MSG(l && tdm_lora_bind(&s, ws, TDM_LORA_UNET, &l, &one, 1, &st) == TDM_OK, "%s", st.msg);
        CHECK(s && s->n == 2);
        for (int i = 0; s && i < s->n; i++)
            CHECK(strcmp(s->t[i].name, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight") == 0 ||
                  strcmp(s->t[i].name, "mid_block.resnets.0.time_emb_proj.weight") == 0);
        tdm_lora_set_free(s);
        tdm_lora_free(l);
    }

    /* a LoRA for another model: the SD1.5-tiny LoRA on the SDXL-tiny UNet is refused, naming the key */
    tdm_unet *xl = load_unet_fixture("unet-sdxl-tiny");
    if (xl) {
        char p[PATH_MAX];
        fixture_path(p, sizeof p, "lora-sd15-tiny/model-kohya/lora.safetensors");
        expect_fail(__LINE__, p, tdm_unet_weights(xl), TDM_ERR_FORMAT, "lora_unet_", "lora.safetensors");
        tdm_unet_free(xl);
    }
    /* an SDXL LoRA (second text encoder) on a one-encoder model */
    {
        tf_add(&f, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", 2, (int64_t[]){2, 32});
        tf_add(&f, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", 2, (int64_t[]){32, 2});
        tdm_lora_spec spec = {tf_write(&f, "te2.safetensors"), 1.0f};
        tdm_status st = {0};
        tdm_lora_stack *stack = NULL;
        tdm_unet *u = base;
        CHECK(tdm_lora_stack_apply(&stack, &spec, 1, 0, &u, NULL, 0, &st) == TDM_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(st.msg, "second text encoder") && strstr(st.msg, "te2.safetensors"), "%s", st.msg);
        CHECK(u == base && stack == NULL);
    }
    /* a run-time view cannot take a second set on top (all files go into one set) */
    {
        char p[PATH_MAX];
        fixture_path(p, sizeof p, "lora-sd15-tiny/model-kohya/lora.safetensors");
        tdm_status st = {0};
        tdm_lora *l = NULL;
        tdm_lora_set *s = NULL;
        tdm_unet *v = NULL, *v2 = NULL;
        float one = 1.0f;
        CHECK(tdm_lora_open(&l, p, &st) == TDM_OK);
        CHECK(l && tdm_lora_bind(&s, ws, TDM_LORA_UNET, &l, &one, 1, &st) == TDM_OK);
        CHECK(s && tdm_unet_with_lora(base, s, 0, &v, &st) == TDM_OK);
        CHECK(v && tdm_unet_with_lora(v, s, 0, &v2, &st) == TDM_ERR_INVALID_ARG && !v2);
        tdm_unet_free(v);
        tdm_lora_set_free(s);
        tdm_lora_free(l);
    }
    tdm_unet_free(base);
}

/* ---- text encoder LoRA (merged) ----------------------------------------------------------------- */

static void test_text_encoder(void) {
    char dir[PATH_MAX];
    fixture_path(dir, sizeof dir, "clip-text-tiny/model");
    tdm_status st = {0};
    tdm_clip_text *te = NULL;
    if (tdm_clip_text_load_dir(&te, dir, &st)) {
        fprintf(stderr, "clip-text-tiny: %s\n", st.msg);
        tdm_test_failures++;
        return;
    }
    const int C = te->cfg.hidden_size;
    tfile f = {0};
    tf_add(&f, "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", 2, (int64_t[]){2, C});
    tf_add(&f, "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", 2, (int64_t[]){C, 2});
    tf_alpha(&f, "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", 1.0f);
    tdm_lora_spec spec = {tf_write(&f, "te.safetensors"), 2.0f};
    tdm_clip_text *te2 = te;
    tdm_lora_stack *stack = NULL;
    CHECK_MSG(tdm_lora_stack_apply(&stack, &spec, 1, 0, NULL, &te2, 0, &st) == TDM_OK, "%s", st.msg);
    CHECK(stack && te2 != te && stack->n_te_targets == 1 && stack->base_te == NULL);
    if (stack && te2 != te) {
        /* W' = W + 2 * (1 / 2) * up @ down on q_proj only; every other tensor shared */
        const tdm_lora *l = stack->files[0];
        const tdm_weight *wb = tdm_weights_peek(&te->ws, "text_model.encoder.layers.0.self_attn.q_proj.weight");
        const tdm_weight *wm = tdm_weights_peek(&te2->ws, "text_model.encoder.layers.0.self_attn.q_proj.weight");
        CHECK(wb && wm && wb->t.data != wm->t.data);
        double err = 0;
        const float *W = wb->t.data, *Wm = wm->t.data, *D = l->m[0].down.data, *U = l->m[0].up.data;
        for (int o = 0; o < C; o++)
            for (int i = 0; i < C; i++) {
                double want = W[o * C + i] + 1.0 * (U[o * 2] * D[i] + U[o * 2 + 1] * D[C + i]);
                double e = fabs(want - Wm[o * C + i]);
                if (e > err) err = e;
            }
        CHECK_MSG(err < 1e-6, "merged q_proj off by %g", err);
        int shared = 0;
        for (int i = 0; i < te->ws.n; i++) shared += te->ws.w[i].t.data == te2->ws.w[i].t.data;
        CHECK(shared == te->ws.n - 1);
        tdm_clip_text_free(te2);
    }
    tdm_lora_stack_free(stack);
    tdm_clip_text_free(te);
}

/* ---- manifests: LCM-LoRA SD1.5 names on the SD1.5 UNet (sparse files) --------------------------- */

static cJSON *fixture_json(const char *rel) {
    char p[PATH_MAX];
    fixture_path(p, sizeof p, "%s", rel);
    cJSON *j = NULL;
    tdm_status st = {0};
    if (tdm_json_load(p, &j, &st)) fprintf(stderr, "%s\n", st.msg);
    return j;
}

static void test_manifest(void) {
    cJSON *un = fixture_json("manifest-sd15/unet.json"), *cs = fixture_json("manifest-sd15/case.json");
    cJSON *lk = fixture_json("manifest-lcm-lora-sd15/lora.json");
    cJSON *lp = fixture_json("manifest-lcm-lora-sd15/lora_peft.json");
    CHECK(un && cs && lk && lp);
    if (!un || !cs || !lk || !lp) goto done;
    char up[PATH_MAX], kp[PATH_MAX], pp[PATH_MAX];
    snprintf(up, sizeof up, "%s/sd15_unet.safetensors", tdm_test_tmpdir());
    snprintf(kp, sizeof kp, "%s/lcm_lora_kohya.safetensors", tdm_test_tmpdir());
    snprintf(pp, sizeof pp, "%s/lcm_lora_peft.safetensors", tdm_test_tmpdir());
    CHECK(tdm_test_write_sparse(up, un, "F16", NULL) == 0 && tdm_test_write_sparse(kp, lk, "F16", NULL) == 0 &&
          tdm_test_write_sparse(pp, lp, "F16", NULL) == 0);
    tdm_status st = {0};
    tdm_unet_config cfg;
    const cJSON *ucfg = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "config"), "unet"), "config");
    tdm_weights ws;
    tdm_unet *u = NULL;
    CHECK_MSG(tdm_unet_config_from_json(ucfg, "manifest-sd15 unet config", &cfg, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_weights_open_file(&ws, "unet", up, "", NULL, NULL, &st) == TDM_OK &&
                  tdm_unet_load(&u, &cfg, &ws, &st) == TDM_OK,
              "%s", st.msg);
    if (!u) goto done;
    int64_t base_params = 0;
    for (int i = 0; i < tdm_unet_weights(u)->n; i++) base_params += tdm_tensor_numel(&tdm_unet_weights(u)->w[i].t);
    const char *paths[2] = {kp, pp};
    const int n_tensors[2] = {cJSON_GetArraySize(lk), cJSON_GetArraySize(lp)};
    for (int k = 0; k < 2; k++) {
        tdm_lora *l = NULL;
        tdm_lora_set *s = NULL;
        tdm_unet *v = NULL;
        float one = 1.0f;
        CHECK_MSG(tdm_lora_open(&l, paths[k], &st) == TDM_OK, "%s", st.msg);
        if (!l) continue;
        /* every key is a module part: 3 per module (kohya: down, up, alpha), 2 (PEFT) */
        CHECK(l->n * (k == 0 ? 3 : 2) == n_tensors[k]);
        CHECK(l->n == 278 && l->n_comp[TDM_LORA_UNET] == 278 && l->m[0].rank == 64);
        CHECK_MSG(tdm_lora_bind(&s, tdm_unet_weights(u), TDM_LORA_UNET, &l, &one, 1, &st) == TDM_OK, "%s", st.msg);
        if (s) {
            CHECK(s->n == 278);                   /* every module matched a distinct UNet weight */
            CHECK(s->lora_params == 67252224);    /* the manifest's count (alphas excluded) */
            CHECK(tdm_unet_with_lora(u, s, 0, &v, &st) == TDM_OK); /* run-time view: no weight read */
            printf("LCM-LoRA SD1.5 (%s naming): %d modules -> %d UNet weights; LoRA %.3fM params, targeted base "
                   "%.1fM of %.1fM params\n",
                   k == 0 ? "kohya" : "PEFT", l->n, s->n, (double)s->lora_params / 1e6,
                   (double)s->target_params / 1e6, (double)base_params / 1e6);
        }
        tdm_unet_free(v);
        tdm_lora_set_free(s);
        tdm_lora_free(l);
    }
    CHECK(base_params == 859520964);
    tdm_unet_free(u);
done:
    cJSON_Delete(un);
    cJSON_Delete(cs);
    cJSON_Delete(lk);
    cJSON_Delete(lp);
}

/* ---- models: tdm_model_params.loras, tdm_model_derive_lora ------------------------------------- */

static int gen(tdm_engine *e, const tdm_model *m, tdm_image *img) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a red square";
    p.steps = 2;
    p.width = p.height = 64;
    p.seed = 7;
    p.guidance_scale = 3.0f;
    tdm_status st = {0};
    tdm_code rc = tdm_generate(e, m, &p, img, NULL, &st);
    if (rc) fprintf(stderr, "generate: %s\n", st.msg);
    return rc == TDM_OK;
}

static int same_image(const tdm_image *a, const tdm_image *b) {
    return a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

static void test_models(void) {
    char dir[PATH_MAX], lora[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir());
    tiny_sd_make_model(dir, "unet-sd15-tiny", "EulerDiscreteScheduler");
    fixture_path(lora, sizeof lora, "lora-sd15-tiny/model-kohya/lora.safetensors");
    tdm_status st = {0};
    tdm_engine *e1 = NULL, *e2 = NULL;
    tiny_sd_engines(&e1, &e2);
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = dir;
    tdm_model *base = NULL, *derived = NULL, *loaded = NULL, *merged = NULL;
    CHECK_MSG(tdm_model_load(&mp, &base, &st) == TDM_OK, "%s", st.msg);
    tdm_lora_spec spec = {lora, 0.8f};
    mp.loras = &spec;
    mp.n_loras = 1;
    CHECK_MSG(tdm_model_load(&mp, &loaded, &st) == TDM_OK, "%s", st.msg);
    mp.lora_merge = 1;
    CHECK_MSG(tdm_model_load(&mp, &merged, &st) == TDM_OK, "%s", st.msg);
    if (base) CHECK_MSG(tdm_model_derive_lora(base, &spec, 1, &derived, &st) == TDM_OK, "%s", st.msg);
    if (!base || !derived || !loaded || !merged || !e1 || !e2) goto done;
    char line[512];
    tdm_model_lora_summary(derived, line, sizeof line);
    printf("derived: %s\n", line);
    CHECK(strstr(line, "277 UNet weights adapted at run time") && strstr(line, "shared"));
    tdm_model_lora_summary(merged, line, sizeof line);
    CHECK(strstr(line, "merged at load"));
    CHECK(tdm_model_lora_summary(base, line, sizeof line) == 0 && line[0] == '\0');
    /* the derived model shares every component and every UNet weight with the base */
    const tdm_sd_model *sb = tdm_model_sd(base), *sd = tdm_model_sd(derived);
    CHECK(sd->vae == sb->vae && sd->text_encoder == sb->text_encoder && sd->tokenizer == sb->tokenizer);
    CHECK(sd->unet != sb->unet);
    const tdm_weights *wb = tdm_unet_weights(sb->unet), *wd = tdm_unet_weights(sd->unet);
    int shared = wb->n == wd->n;
    for (int i = 0; shared && i < wb->n; i++) shared = wb->w[i].t.data == wd->w[i].t.data;
    CHECK(shared);

    tdm_image ib = {0}, ib2 = {0}, id = {0}, id2 = {0}, il = {0}, im = {0};
    CHECK(gen(e1, base, &ib) && gen(e1, derived, &id) && gen(e2, derived, &id2) && gen(e1, loaded, &il) &&
          gen(e1, merged, &im) && gen(e1, base, &ib2));
    if (ib.pixels && ib2.pixels && id.pixels && id2.pixels && il.pixels && im.pixels) {
        CHECK(same_image(&ib, &ib2));  /* the base still generates without the LoRA */
        CHECK(!same_image(&ib, &id));  /* the LoRA changes the image */
        CHECK(same_image(&id, &id2));  /* 1 vs 2 threads */
        CHECK(same_image(&id, &il));   /* derived = loaded with the LoRA */
        int mx = 0;                    /* merged vs run time: rounding only */
        for (long i = 0; i < (long)im.width * im.height * 3; i++) {
            int d = abs((int)im.pixels[i] - (int)id.pixels[i]);
            if (d > mx) mx = d;
        }
        CHECK_MSG(mx <= 2, "merged vs run-time image differ by %d levels", mx);
    }
    tdm_image_free(&ib);
    tdm_image_free(&ib2);
    tdm_image_free(&id);
    tdm_image_free(&id2);
    tdm_image_free(&il);
    tdm_image_free(&im);
    /* a derived model on top of a run-time LoRA model is refused */
    tdm_model *bad = NULL;
    CHECK(tdm_model_derive_lora(loaded, &spec, 1, &bad, &st) == TDM_ERR_INVALID_ARG && !bad);
    /* a bad LoRA path is named */
    tdm_lora_spec missing = {"/nonexistent/lora.safetensors", 1.0f};
    CHECK(tdm_model_derive_lora(base, &missing, 1, &bad, &st) != TDM_OK &&
          strstr(st.msg, "/nonexistent/lora.safetensors"));
done:
    tdm_model_free(derived); /* before its base */
    tdm_model_free(base);
    tdm_model_free(loaded);
    tdm_model_free(merged);
    tdm_engine_free(e1);
    tdm_engine_free(e2);
}

/* ---- LCM-LoRA detection and defaults (docs/LORA.md "LCM-LoRA defaults") ------------------------- */

static void test_lcm_name_rule(void) {
    static const struct { const char *path, *rule; } cases[] = {
        {"lcm-lora-sdv1-5.safetensors", "file name"},
        {"/m/LCM_LoRA_SDXL.safetensors", "file name"},
        {"/m/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors", "folder name"},
        {"models/shapes/lcm_lora/pytorch_lora_weights.safetensors", "folder name"},
        {"/m/Lcm-Lora-sdv1-5//pytorch_lora_weights.safetensors", "folder name"},
        {"/hub/models--latent-consistency--lcm-lora-sdv1-5/snapshots/0123abc/pytorch_lora_weights.safetensors",
         "hub repo name"},
        {"/m/lcm/loras/style.safetensors", NULL}, /* only the file's own folder counts */
        {"/hub/models--org--style/snapshots/0123abc/pytorch_lora_weights.safetensors", NULL},
        {"/m/lora-sd15-tiny/model-kohya/lora.safetensors", NULL},
        {"style.safetensors", NULL},
        {"", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *r = tdm_lora_name_lcm_rule(cases[i].path);
        CHECK_MSG((r == NULL) == (cases[i].rule == NULL) && (!r || strcmp(r, cases[i].rule) == 0),
                  "'%s': rule '%s', want '%s'", cases[i].path, r ? r : "(none)",
                  cases[i].rule ? cases[i].rule : "(none)");
    }
    CHECK(tdm_lora_name_lcm_rule(NULL) == NULL);
}

/* Copies the safetensors file src to dst, with __metadata__ {"tandem.kind": kind} when kind is given
 * (NULL: an exact copy). Returns 1 on success. */
static int copy_lora_with_kind(const char *src, const char *dst, const char *kind) {
    char *buf = NULL;
    size_t len = 0;
    tdm_status st = {0};
    if (tdm_read_file(src, (size_t)1 << 30, &buf, &len, &st)) return 0;
    int ok = 0;
    FILE *f = NULL;
    cJSON *hdr = NULL;
    char *text = NULL;
    uint64_t hl = 0;
    if (len < 8) goto done;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)buf[i];
    if (hl > len - 8) goto done;
    f = fopen(dst, "wb");
    if (!f) goto done;
    if (!kind) {
        ok = fwrite(buf, 1, len, f) == len;
        goto done;
    }
    hdr = cJSON_ParseWithLength(buf + 8, (size_t)hl);
    if (!hdr) goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(hdr, "__metadata__");
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    if (!meta || !cJSON_AddStringToObject(meta, "tandem.kind", kind) || !cJSON_AddStringToObject(meta, "format", "pt"))
        goto done;
    text = cJSON_PrintUnformatted(hdr);
    if (!text) goto done;
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    unsigned char n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    ok = fwrite(n8, 1, 8, f) == 8 && fwrite(text, 1, tl, f) == tl;
    for (size_t i = tl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fwrite(buf + 8 + hl, 1, len - 8 - (size_t)hl, f) == len - 8 - (size_t)hl;
done:
    if (f && fclose(f) != 0) ok = 0;
    free(text);
    cJSON_Delete(hdr);
    free(buf);
    return ok;
}

static int lora_is_lcm(const char *path, const char **rule, char *kind, size_t kn) {
    tdm_status st = {0};
    tdm_lora *l = NULL;
    if (tdm_lora_open(&l, path, &st)) {
        fprintf(stderr, "%s\n", st.msg);
        return -1;
    }
    int r = l->is_lcm;
    if (rule) *rule = l->lcm_rule;
    if (kind) snprintf(kind, kn, "%s", l->kind);
    tdm_lora_free(l);
    return r;
}

/* The model's defaults as tdm_format_parameters resolves them (steps, sampler label, CFG scale). */
static void defaults_line(const tdm_model *m, char *buf, size_t n) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "x";
    char text[1024] = "";
    tdm_format_parameters(m, &p, text, sizeof text);
    const char *s = strstr(text, "Steps:");
    const char *e = s ? strstr(s, ", Seed:") : NULL;
    snprintf(buf, n, "%.*s", s && e ? (int)(e - s) : 0, s ? s : "");
}

static void test_lcm_lora(void) {
    const char *tmp = tdm_test_tmpdir();
    char src[PATH_MAX], meta_lcm[PATH_MAX], meta_other[PATH_MAX], by_name[PATH_MAX], by_folder[PATH_MAX],
        plain[PATH_MAX], dir[PATH_MAX];
    fixture_path(src, sizeof src, "lora-sd15-tiny/model-kohya/lora.safetensors");
    snprintf(meta_lcm, sizeof meta_lcm, "%s/shapes-student.safetensors", tmp);
    snprintf(meta_other, sizeof meta_other, "%s/lcm-named-style.safetensors", tmp); /* metadata says "lora" */
    snprintf(by_name, sizeof by_name, "%s/lcm-lora-tiny.safetensors", tmp);
    snprintf(dir, sizeof dir, "%s/lcm-lora-tiny", tmp);
    snprintf(by_folder, sizeof by_folder, "%s/lcm-lora-tiny/pytorch_lora_weights.safetensors", tmp);
    snprintf(plain, sizeof plain, "%s/style.safetensors", tmp);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) CHECK_MSG(0, "mkdir %s", dir);
    CHECK(copy_lora_with_kind(src, meta_lcm, TDM_LORA_KIND_LCM) && copy_lora_with_kind(src, meta_other, "lora") &&
          copy_lora_with_kind(src, by_name, NULL) && copy_lora_with_kind(src, by_folder, NULL) &&
          copy_lora_with_kind(src, plain, NULL));
    const char *rule = NULL;
    char kind[32];
    CHECK(lora_is_lcm(meta_lcm, &rule, kind, sizeof kind) == 1 && rule && strcmp(rule, "metadata") == 0 &&
          strcmp(kind, "lcm-lora") == 0);
    CHECK(lora_is_lcm(meta_other, &rule, kind, sizeof kind) == 0 && !rule && strcmp(kind, "lora") == 0);
    CHECK(lora_is_lcm(by_name, &rule, kind, sizeof kind) == 1 && rule && strcmp(rule, "file name") == 0 && !kind[0]);
    CHECK(lora_is_lcm(by_folder, &rule, NULL, 0) == 1 && rule && strcmp(rule, "folder name") == 0);
    CHECK(lora_is_lcm(plain, &rule, NULL, 0) == 0 && !rule);
    CHECK(lora_is_lcm(src, NULL, NULL, 0) == 0); /* the fixture LoRA is not an LCM-LoRA */

    /* models: derived / loaded with an LCM-LoRA get the LCM defaults; a plain LoRA keeps the base's */
    char mdir[PATH_MAX];
    snprintf(mdir, sizeof mdir, "%s/tiny-sd-lcm", tmp);
    tiny_sd_make_model(mdir, "unet-sd15-tiny", "EulerDiscreteScheduler");
    tdm_status st = {0};
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = mdir;
    tdm_model *base = NULL, *lcm = NULL, *lcm_name = NULL, *other = NULL, *zero = NULL, *loaded = NULL;
    CHECK_MSG(tdm_model_load(&mp, &base, &st) == TDM_OK, "%s", st.msg);
    if (!base) return;
    tdm_lora_spec s_lcm = {meta_lcm, 1.0f}, s_name = {by_folder, 1.0f}, s_other = {plain, 1.0f},
                  s_zero = {meta_lcm, 0.0f};
    CHECK_MSG(tdm_model_derive_lora(base, &s_lcm, 1, &lcm, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_model_derive_lora(base, &s_name, 1, &lcm_name, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_model_derive_lora(base, &s_other, 1, &other, &st) == TDM_OK, "%s", st.msg);
    CHECK_MSG(tdm_model_derive_lora(base, &s_zero, 1, &zero, &st) == TDM_OK, "%s", st.msg);
    mp.loras = &s_lcm;
    mp.n_loras = 1;
    CHECK_MSG(tdm_model_load(&mp, &loaded, &st) == TDM_OK, "%s", st.msg);
    if (lcm && lcm_name && other && zero && loaded) {
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(lcm)) == 1);
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(lcm_name)) == 1);
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(loaded)) == 1);
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(other)) == 0);
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(zero)) == 0); /* scale 0: no LoRA term */
        CHECK(tdm_sd_model_lcm_lora(tdm_model_sd(base)) == 0);
        char line[512];
        tdm_model_lora_summary(lcm, line, sizeof line);
        CHECK_MSG(strstr(line, "shapes-student.safetensors x1 LCM-LoRA"), "%s", line);
        tdm_model_lora_summary(other, line, sizeof line);
        CHECK_MSG(!strstr(line, "LCM-LoRA"), "%s", line);
        tdm_model_info ib, il, io, iz, ild;
        tdm_model_get_info(base, &ib);
        tdm_model_get_info(lcm, &il);
        tdm_model_get_info(other, &io);
        tdm_model_get_info(zero, &iz);
        tdm_model_get_info(loaded, &ild);
        /* a non-LCM LoRA (and scale 0) keeps every base default */
        CHECK(!ib.is_lcm && !io.is_lcm && !iz.is_lcm && ib.default_steps == 20 && io.default_steps == 20 &&
              iz.default_steps == 20 && io.default_guidance == ib.default_guidance &&
              strcmp(io.default_sampler, ib.default_sampler) == 0 && strcmp(iz.default_sampler, ib.default_sampler) == 0);
        char db[128], dl[128], dd[128];
        defaults_line(base, db, sizeof db);
        defaults_line(lcm, dl, sizeof dl);
        defaults_line(other, dd, sizeof dd);
        printf("defaults: base '%s'; LCM-LoRA '%s'; plain LoRA '%s'\n", db, dl, dd);
        CHECK(strcmp(db, dd) == 0);
        /* LCM-LoRA: sampler lcm, 4 steps, guidance 1, is_lcm 1 (tdm_gen_model_defaults) */
        CHECK_MSG(il.is_lcm == 1 && il.default_steps == 4 && il.default_guidance == 1.0f &&
                      strcmp(il.default_sampler, "lcm") == 0,
                  "LCM-LoRA defaults: is_lcm %d, %d steps, guidance %g, sampler %s", il.is_lcm, il.default_steps,
                  (double)il.default_guidance, il.default_sampler);
        CHECK(ild.is_lcm == 1 && ild.default_steps == 4 && ild.default_guidance == 1.0f);
        CHECK_MSG(strcmp(dl, "Steps: 4, Sampler: LCM, CFG scale: 1.0") == 0, "%s", dl);
    }
    tdm_model_free(lcm);
    tdm_model_free(lcm_name);
    tdm_model_free(other);
    tdm_model_free(zero);
    tdm_model_free(loaded);
    tdm_model_free(base);
}

/* ---- CLI: --lora on generate, --student-lora on the adaptive command ----------------------------- */

static char g_bin[PATH_MAX];

/* Runs `tandem <args>` with stderr into *err (malloc); returns the exit status (-1: did not exit). */
static int run_cli(char **err, const char *args) {
    char cmd[8192], ep[PATH_MAX];
    snprintf(ep, sizeof ep, "%s/cli.err", tdm_test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%.1000s' %.6000s >/dev/null 2>'%.1000s' </dev/null", g_bin, args, ep);
    int rc = system(cmd);
    *err = NULL;
    FILE *f = fopen(ep, "rb");
    if (f) {
        *err = calloc(1, 8192);
        if (*err && fread(*err, 1, 8191, f) == 0) (*err)[0] = '\0';
        fclose(f);
    }
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

/* Runs `tandem <args>`: the exit status must be want and stderr hold has1 and has2 (each NULL: anything). */
static void expect_cli(int want, const char *has1, const char *has2, const char *args) {
    char *err = NULL;
    int rc = run_cli(&err, args);
    CHECK_MSG(rc == want && (!has1 || (err && strstr(err, has1))) && (!has2 || (err && strstr(err, has2))),
              "rc %d (want %d): %s", rc, want, err ? err : "");
    free(err);
}

static void test_cli(void) {
    FILE *bf = fopen(g_bin, "rb");
    if (!bf) {
        printf("CLI part skipped: %s absent\n", g_bin);
        return;
    }
    fclose(bf);
    char dir[PATH_MAX], lora[PATH_MAX], args[6144];
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir()); /* made by test_models */
    fixture_path(lora, sizeof lora, "lora-sd15-tiny/model-kohya/lora.safetensors");
    const char *tmp = tdm_test_tmpdir();
    snprintf(args, sizeof args,
             "generate --model '%.1000s' --prompt x --steps 1 --width 64 --height 64 --lora '%.1000s:0.5' "
             "-o '%.1000s/l.png'",
             dir, lora, tmp);
    expect_cli(0, "LoRA: 1 file (lora.safetensors x0.5)", NULL, args);
    snprintf(args, sizeof args,
             "generate --model '%.1000s' --prompt x --lora '%.1000s/none.safetensors' -o '%.1000s/l.png'", dir, tmp,
             tmp);
    expect_cli(1, "none.safetensors", NULL, args);
    snprintf(args, sizeof args,
             "generate --adaptive --model '%.1000s' --student-lora '%.1000s' --sampler lcm --steps 1 --guidance 1 "
             "--teacher-steps 1 --tau 2 --oracle brightness --prompt x --width 64 --height 64 --seed 1 "
             "-o '%.1000s/a.png'",
             dir, lora, tmp);
    expect_cli(0, "base weights shared", "refine", args);
    /* --student-lora on the editing commands: the adaptive image above as the source */
    snprintf(args, sizeof args,
             "edit --model '%.1000s' --student-lora '%.1000s' --sampler lcm --steps 2 --guidance 1 --teacher-steps 1 "
             "--tau 2 --oracle brightness --image '%.1000s/a.png' --prompt x --seed 1 -o '%.1000s/e.png'",
             dir, lora, tmp, tmp);
    expect_cli(0, "base weights shared", "refine", args);
    snprintf(args, sizeof args,
             "edit --model '%.1000s' --student-lora '%.1000s/none.safetensors' --tau 2 --oracle brightness "
             "--image '%.1000s/a.png' --prompt x -o '%.1000s/e.png'",
             dir, tmp, tmp, tmp);
    expect_cli(1, "none.safetensors", NULL, args);
    /* edit-eval: the log's header names the student's LoRA, so that a run without it is not resumed */
    const char *ee = "edit-eval --model '%.1000s' %.1100s--sampler lcm --steps 1 --guidance 1 --teacher-steps 2 --n 1 "
                     "--width 64 --height 64 --oracle brightness --k 50 --out '%.1000s/ee_lora' -q";
    char with[PATH_MAX + 32];
    snprintf(with, sizeof with, "--student-lora '%.1000s' ", lora);
    snprintf(args, sizeof args, ee, dir, with, tmp);
    expect_cli(0, NULL, NULL, args);
    char path[PATH_MAX], *log = NULL;
    size_t len = 0;
    tdm_status st = {0};
    snprintf(path, sizeof path, "%s/ee_lora/pairs.jsonl", tmp);
    CHECK(tdm_read_file(path, (size_t)1 << 20, &log, &len, &st) == TDM_OK && log &&
          strstr(log, "\"lora\":\"LoRA: 1 file (lora.safetensors x1)"));
    free(log);
    snprintf(args, sizeof args, ee, dir, "", tmp);
    expect_cli(1, "'student'", NULL, args);
}

int main(int argc, char **argv) {
    (void)argc;
    tdm_test_cli_path(argv[0], 0, g_bin, sizeof g_bin); /* <build>/tests/test_lora -> <build>/tandem */
    if (!tdm_test_fixture("lora-sd15-tiny")) tdm_test_skip("fixture lora-sd15-tiny absent");
    snprintf(g_fix, sizeof g_fix, "%s", tdm_test_fixtures());
    test_fixture();
    test_errors();
    test_lcm_name_rule();
    test_text_encoder();
    if (tdm_test_fixture("manifest-lcm-lora-sd15") && tdm_test_fixture("manifest-sd15")) test_manifest();
    else printf("manifest part skipped: fixtures absent\n");
    if (tdm_test_fixture("vae-sd-tiny") && tdm_test_fixture("clip-text-tiny") && tdm_test_fixture("tokenizer-clip")) {
        test_models();
        test_lcm_lora();
        test_cli();
    } else printf("model part skipped: fixtures absent\n");
    return tdm_test_result();
}
