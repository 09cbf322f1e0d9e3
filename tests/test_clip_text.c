/* CLIP text encoder: the clip-text-tiny fixtures through `tandem check` (skipped when absent), then a
 * synthetic 3-layer encoder written with transformers names (+ the int64 position_ids buffer) and with
 * OpenCLIP names (stacked in_proj, transposed text_projection, an extra resblock that must be dropped):
 * identical outputs, clip skip / raw penultimate, causality, pooling rules, reference vs fast kernels and
 * error messages naming the tensor / field / value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/numeric.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "tandem.h"
#include "check_util.h"
#include "test_util.h"
#include "wfile_util.h"

enum { VOCAB = 50, C = 8, HEADS = 2, NL = 3, I = 16, MAXP = 10, P = 6, EOS = 49 };

typedef tdm_test_wfile wfile;

static uint64_t rng = 7;

/* Adds a tensor; data NULL: random (kind 0 weight, 1 bias, 2 norm gamma), else copied. */
static float *add(wfile *w, const char *name, int ndim, int64_t d0, int64_t d1, int kind, const float *data) {
    const int64_t shape[2] = {d0, d1};
    return tdm_test_wfile_add(w, &rng, name, ndim, shape, kind, 0.5f, data);
}

/* transformers-named weights (hf) and the same values under OpenCLIP names (oc). */
static void make_weights(wfile *hf, wfile *oc) {
    memset(hf, 0, sizeof *hf);
    memset(oc, 0, sizeof *oc);
    char n[160];
    float *d = add(hf, "text_model.embeddings.token_embedding.weight", 2, VOCAB, C, 0, NULL);
    add(oc, "token_embedding.weight", 2, VOCAB, C, 0, d);
    d = add(hf, "text_model.embeddings.position_embedding.weight", 2, MAXP, C, 0, NULL);
    add(oc, "positional_embedding", 2, MAXP, C, 0, d);
    for (int l = 0; l < NL; l++) {
        float inw[3 * C * C], inb[3 * C];
        static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
        static const char *const ln1[2] = {"weight", "bias"};
        for (int j = 0; j < 2; j++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.layer_norm1.%s", l, ln1[j]);
            d = add(hf, n, 1, C, 0, j == 0 ? 2 : 1, NULL);
            snprintf(n, sizeof n, "transformer.resblocks.%d.ln_1.%s", l, ln1[j]);
            add(oc, n, 1, C, 0, 0, d);
        }
        for (int j = 0; j < 3; j++) { /* OpenCLIP stacks q, k, v on dim 0 */
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.self_attn.%s.weight", l, qkv[j]);
            d = add(hf, n, 2, C, C, 0, NULL);
            memcpy(inw + j * C * C, d, C * C * sizeof(float));
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.self_attn.%s.bias", l, qkv[j]);
            d = add(hf, n, 1, C, 0, 1, NULL);
            memcpy(inb + j * C, d, C * sizeof(float));
        }
        snprintf(n, sizeof n, "transformer.resblocks.%d.attn.in_proj_weight", l);
        add(oc, n, 2, 3 * C, C, 0, inw);
        snprintf(n, sizeof n, "transformer.resblocks.%d.attn.in_proj_bias", l);
        add(oc, n, 1, 3 * C, 0, 0, inb);
        static const struct {
            const char *hf, *oc;
            int64_t d0, d1;
            int kind;
        } rest[] = {
            {"self_attn.out_proj.weight", "attn.out_proj.weight", C, C, 0},
            {"self_attn.out_proj.bias", "attn.out_proj.bias", C, 0, 1},
            {"layer_norm2.weight", "ln_2.weight", C, 0, 2},
            {"layer_norm2.bias", "ln_2.bias", C, 0, 1},
            {"mlp.fc1.weight", "mlp.c_fc.weight", I, C, 0},
            {"mlp.fc1.bias", "mlp.c_fc.bias", I, 0, 1},
            {"mlp.fc2.weight", "mlp.c_proj.weight", C, I, 0},
            {"mlp.fc2.bias", "mlp.c_proj.bias", C, 0, 1},
        };
        for (size_t j = 0; j < sizeof rest / sizeof rest[0]; j++) {
            snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", l, rest[j].hf);
            d = add(hf, n, rest[j].d1 ? 2 : 1, rest[j].d0, rest[j].d1, rest[j].kind, NULL);
            snprintf(n, sizeof n, "transformer.resblocks.%d.%s", l, rest[j].oc);
            add(oc, n, rest[j].d1 ? 2 : 1, rest[j].d0, rest[j].d1, 0, d);
        }
    }
    /* an extra resblock (SD2 checkpoints hold 24, the model uses 23): the mapper drops it */
    static const struct {
        const char *name;
        int64_t d0, d1;
    } extra[] = {
        {"ln_1.weight", C, 0},           {"ln_1.bias", C, 0},          {"attn.in_proj_weight", 3 * C, C},
        {"attn.in_proj_bias", 3 * C, 0}, {"attn.out_proj.weight", C, C}, {"attn.out_proj.bias", C, 0},
        {"ln_2.weight", C, 0},           {"ln_2.bias", C, 0},          {"mlp.c_fc.weight", I, C},
        {"mlp.c_fc.bias", I, 0},         {"mlp.c_proj.weight", C, I},  {"mlp.c_proj.bias", C, 0},
    };
    for (size_t j = 0; j < sizeof extra / sizeof extra[0]; j++) {
        snprintf(n, sizeof n, "transformer.resblocks.%d.%s", NL, extra[j].name);
        add(oc, n, extra[j].d1 ? 2 : 1, extra[j].d0, extra[j].d1, 0, NULL);
    }
    d = add(hf, "text_model.final_layer_norm.weight", 1, C, 0, 2, NULL);
    add(oc, "ln_final.weight", 1, C, 0, 0, d);
    d = add(hf, "text_model.final_layer_norm.bias", 1, C, 0, 1, NULL);
    add(oc, "ln_final.bias", 1, C, 0, 0, d);
    d = add(hf, "text_projection.weight", 2, P, C, 0, NULL); /* [P, C] */
    float tp[C * P];
    for (int c = 0; c < C; c++)
        for (int p = 0; p < P; p++) tp[c * P + p] = d[p * C + c];
    add(oc, "text_projection", 2, C, P, 0, tp); /* OpenCLIP: [C, P] */
    float ls = 4.6f;
    add(oc, "logit_scale", 1, 1, 0, 0, &ls);
}

static const char *CONFIG =
    "{\"vocab_size\": 50, \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 2, \"max_position_embeddings\": 10, \"hidden_act\": \"gelu\","
    " \"layer_norm_eps\": 1e-5, \"projection_dim\": 6, \"eos_token_id\": 49, \"bos_token_id\": 48,"
    " \"pad_token_id\": 0}";

static tdm_code config_from(const char *json, tdm_clip_text_config *cfg, tdm_status *st) {
    cJSON *j = cJSON_Parse(json);
    if (!j) return tdm_fail(st, TDM_ERR_FORMAT, "bad test json");
    tdm_code rc = tdm_clip_text_config_from_json(j, "config.json", cfg, st);
    cJSON_Delete(j);
    return rc;
}

static tdm_code load(const char *path, tdm_name_mapper mapper, void *ctx, const tdm_clip_text_config *cfg,
                     tdm_clip_text **out, tdm_status *st) {
    tdm_weights ws;
    tdm_weights_init(&ws, "text encoder");
    tdm_code rc = tdm_weights_add_file(&ws, path, "", mapper, ctx, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    return tdm_clip_text_load(out, cfg, &ws, st);
}

static float hs[NL + 1][2 * MAXP * C];
static void on_hidden(void *user, int index, const float *h, int64_t B, int64_t L, int64_t Cc) {
    (void)user;
    memcpy(hs[index], h, (size_t)(B * L * Cc) * sizeof(float));
}

static void test_synthetic(void) {
    const char *tmp = tdm_test_tmpdir();
    char phf[512], poc[512], pcfg[512];
    snprintf(phf, sizeof phf, "%s/model.safetensors", tmp);
    snprintf(poc, sizeof poc, "%s/openclip.safetensors", tmp);
    snprintf(pcfg, sizeof pcfg, "%s/config.json", tmp);
    wfile *hf = malloc(sizeof *hf), *oc = malloc(sizeof *oc);
    make_weights(hf, oc);
    /* transformers < 4.31 saves the int64 position_ids buffer: it must be ignored */
    int64_t pos_ids[MAXP];
    for (int i = 0; i < MAXP; i++) pos_ids[i] = i;
    const int64_t pshape[2] = {1, MAXP};
    snprintf(hf->name[hf->n], sizeof hf->name[0], "text_model.embeddings.position_ids");
    hf->t[hf->n] = tdm_tensor_view(TDM_I64, pos_ids, 2, pshape);
    hf->data[hf->n] = NULL;
    hf->n++;
    tdm_test_wfile_write(hf, phf, NULL);
    tdm_test_wfile_write(oc, poc, NULL);
    FILE *f = fopen(pcfg, "w");
    fputs(CONFIG, f);
    fclose(f);

    tdm_status st;
    tdm_status_clear(&st);
    /* config inference from shapes (single files) */
    tdm_safetensors sf;
    tdm_clip_text_config ic;
    CHECK(tdm_st_open(&sf, poc, &st) == TDM_OK);
    CHECK_MSG(tdm_clip_text_config_infer(&sf, "", 1, &ic, &st) == TDM_OK, "%s", st.msg);
    CHECK(ic.vocab_size == VOCAB && ic.hidden_size == C && ic.max_position_embeddings == MAXP);
    CHECK(ic.intermediate_size == I && ic.num_hidden_layers == NL + 1 && ic.projection_dim == P);
    CHECK(ic.hidden_act == TDM_CLIP_ACT_GELU && ic.eos_token_id == 2);
    CHECK(tdm_clip_text_config_infer(&sf, "", 0, &ic, &st) == TDM_ERR_MISSING);
    tdm_st_close(&sf);
    CHECK(tdm_st_open(&sf, phf, &st) == TDM_OK);
    CHECK_MSG(tdm_clip_text_config_infer(&sf, "", 0, &ic, &st) == TDM_OK, "%s", st.msg);
    CHECK(ic.num_hidden_layers == NL && ic.hidden_act == TDM_CLIP_ACT_QUICK_GELU && ic.projection_dim == P);
    tdm_st_close(&sf);
    tdm_clip_text *m = NULL, *mo = NULL, *mnp = NULL;
    tdm_code rc = tdm_clip_text_load_dir(&m, tmp, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    tdm_clip_openclip_map map = {NL, 1};
    if (m) {
        rc = load(poc, tdm_clip_text_openclip_mapper, &map, &m->cfg, &mo, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        tdm_clip_openclip_map map2 = {NL, 0};
        rc = load(poc, tdm_clip_text_openclip_mapper, &map2, &m->cfg, &mnp, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    }
    if (!m || !mo || !mnp) goto done;
    CHECK(m->has_projection && mo->has_projection && !mnp->has_projection);
    CHECK(m->cfg.hidden_act == TDM_CLIP_ACT_GELU && m->cfg.eos_token_id == EOS);

    /* two sequences: bos, tokens, eos, then padding (0 here) */
    enum { B = 2, L = MAXP };
    int32_t ids[B * L] = {48, 5, 7, 9, 49, 0, 0, 0, 0, 0, 48, 11, 49, 49, 49, 49, 49, 49, 49, 49};
    float last[B * L * C], last2[B * L * C], pooled[B * C], pooled2[B * C], emb[B * P], emb2[B * P];
    tdm_arena arena;
    tdm_arena_init(&arena, 1 << 16);
    tdm_exec ex = {NULL, 0};
    tdm_clip_text_opts o;
    tdm_clip_text_opts_init(&o);
    o.on_hidden = on_hidden;
    rc = tdm_clip_text_forward(m, &ex, &arena, ids, B, L, &o, last, pooled, emb, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK(arena.in_use == 0);
    rc = tdm_clip_text_forward(mo, &ex, &arena, ids, B, L, NULL, last2, pooled2, emb2, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    CHECK_MSG(!memcmp(last, last2, sizeof last) && !memcmp(pooled, pooled2, sizeof pooled) &&
                  !memcmp(emb, emb2, sizeof emb),
              "OpenCLIP-named weights must give identical outputs");
    /* pooled rows: eos_token_id 49 -> first 49: positions 4 and 2 */
    CHECK(!memcmp(pooled, last + 4 * C, C * sizeof(float)));
    CHECK(!memcmp(pooled + C, last + (L + 2) * C, C * sizeof(float)));
    /* text_embeds = pooled W^T */
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            double s = 0;
            const float *wp = (const float *)m->proj_w.data + p * C;
            for (int c = 0; c < C; c++) s += (double)pooled[b * C + c] * wp[c];
            CHECK(fabs(s - emb[b * P + p]) < 1e-5);
        }
    /* raw penultimate (SDXL) == hidden_states[NL - 1]; final LN of the last state == last_hidden_state */
    tdm_clip_text_opts_init(&o);
    o.skip = 2;
    o.final_ln = 0;
    rc = tdm_clip_text_forward(m, &ex, &arena, ids, B, L, &o, last2, NULL, NULL, &st);
    CHECK(rc == TDM_OK && !memcmp(last2, hs[NL - 1], sizeof last2));
    o.skip = NL + 1; /* hidden_states[0] = embeddings */
    rc = tdm_clip_text_forward(m, &ex, &arena, ids, B, L, &o, last2, NULL, NULL, &st);
    CHECK(rc == TDM_OK && !memcmp(last2, hs[0], sizeof last2));
    o.skip = NL + 2;
    CHECK(tdm_clip_text_forward(m, &ex, &arena, ids, B, L, &o, last2, NULL, NULL, &st) == TDM_ERR_INVALID_ARG);
    /* causality: changing the last token changes no earlier row */
    int32_t ids2[B * L];
    memcpy(ids2, ids, sizeof ids);
    ids2[L - 1] = 17;
    rc = tdm_clip_text_forward(m, &ex, &arena, ids2, B, L, NULL, last2, NULL, NULL, &st);
    CHECK(rc == TDM_OK && !memcmp(last2, last, (L - 1) * C * sizeof(float)));
    CHECK(memcmp(last2 + (L - 1) * C, last + (L - 1) * C, C * sizeof(float)) != 0);
    CHECK(!memcmp(last2 + L * C, last + L * C, L * C * sizeof(float)));
    /* reference kernels */
    tdm_exec exr = {NULL, 1};
    rc = tdm_clip_text_forward(m, &exr, &arena, ids, B, L, NULL, last2, pooled2, emb2, &st);
    CHECK(rc == TDM_OK);
    CHECK_MSG(tdm_test_max_abs(last, last2, B * L * C) < 1e-5, "ref vs fast %g",
              tdm_test_max_abs(last, last2, B * L * C));
    CHECK(tdm_test_max_abs(emb, emb2, B * P) < 1e-5);

    /* F16 weights (embedding rows widened on lookup, linears widened while packed): close to f32 */
    {
        char p16[512];
        snprintf(p16, sizeof p16, "%s/model_f16.safetensors", tmp);
        const char *names[TDM_TEST_WFILE_MAX];
        tdm_tensor ts[TDM_TEST_WFILE_MAX];
        uint16_t *h16[TDM_TEST_WFILE_MAX];
        int k = 0;
        for (int i = 0; i < hf->n; i++) {
            if (hf->t[i].dtype != TDM_F32) continue; /* position_ids */
            int64_t n = tdm_tensor_numel(&hf->t[i]);
            h16[k] = malloc((size_t)n * sizeof(uint16_t));
            for (int64_t j = 0; j < n; j++) h16[k][j] = tdm_f32_to_f16(((const float *)hf->t[i].data)[j]);
            names[k] = hf->name[i];
            ts[k] = tdm_tensor_view(TDM_F16, h16[k], hf->t[i].ndim, hf->t[i].shape);
            k++;
        }
        CHECK(tdm_st_write(p16, k, names, ts, &st) == TDM_OK);
        for (int i = 0; i < k; i++) free(h16[i]);
        tdm_clip_text *m16 = NULL;
        rc = load(p16, tdm_clip_text_hf_mapper, NULL, &m->cfg, &m16, &st);
        CHECK_MSG(rc == TDM_OK, "%s", st.msg);
        if (m16) {
            CHECK(m16->tok_emb.dtype == TDM_F16);
            rc = tdm_clip_text_forward(m16, &ex, &arena, ids, B, L, NULL, last2, pooled2, emb2, &st);
            CHECK_MSG(rc == TDM_OK, "%s", st.msg);
            CHECK_MSG(tdm_test_max_abs(last, last2, B * L * C) < 2e-2, "f16 vs f32 %g",
                      tdm_test_max_abs(last, last2, B * L * C));
            CHECK(tdm_test_max_abs(emb, emb2, B * P) < 2e-2);
        }
        tdm_clip_text_free(m16);
    }

    /* errors: ids out of range, too long, no projection */
    ids2[3] = VOCAB;
    rc = tdm_clip_text_forward(m, &ex, &arena, ids2, B, L, NULL, last2, NULL, NULL, &st);
    CHECK_MSG(rc == TDM_ERR_INVALID_ARG && strstr(st.msg, "50") && strstr(st.msg, "[0, 3]"), "%s", st.msg);
    ids2[3] = -1;
    rc = tdm_clip_text_forward(m, &ex, &arena, ids2, B, L, NULL, last2, NULL, NULL, &st);
    CHECK_MSG(rc == TDM_ERR_INVALID_ARG && strstr(st.msg, "-1"), "%s", st.msg);
    int32_t long_ids[MAXP + 1] = {0};
    rc = tdm_clip_text_forward(m, &ex, &arena, long_ids, 1, MAXP + 1, NULL, last2, NULL, NULL, &st);
    CHECK_MSG(rc == TDM_ERR_INVALID_ARG && strstr(st.msg, "max_position_embeddings"), "%s", st.msg);
    rc = tdm_clip_text_forward(mnp, &ex, &arena, ids, B, L, NULL, NULL, pooled2, emb2, &st);
    CHECK_MSG(rc == TDM_ERR_INVALID_ARG && strstr(st.msg, "text_projection"), "%s", st.msg);
    CHECK(arena.in_use == 0);
    tdm_arena_free(&arena);

    /* missing tensor / wrong shape / unknown OpenCLIP name: named */
    tdm_clip_text *bad = NULL;
    tdm_test_wfile_write(hf, phf, "text_model.encoder.layers.1.mlp.fc2.bias");
    rc = load(phf, tdm_clip_text_hf_mapper, NULL, &m->cfg, &bad, &st);
    CHECK_MSG(rc == TDM_ERR_MISSING && strstr(st.msg, "text_model.encoder.layers.1.mlp.fc2.bias"), "%s", st.msg);
    tdm_test_wfile_write(hf, phf, NULL);
    tdm_clip_text_config wrong = m->cfg;
    wrong.intermediate_size = 32;
    rc = load(phf, tdm_clip_text_hf_mapper, NULL, &wrong, &bad, &st);
    CHECK_MSG(rc == TDM_ERR_FORMAT && strstr(st.msg, "text_model.encoder.layers.0.mlp.fc1.weight"), "%s", st.msg);
    wrong = m->cfg;
    wrong.num_hidden_layers = 2; /* layer 2 left over: reported as unused */
    rc = load(phf, tdm_clip_text_hf_mapper, NULL, &wrong, &bad, &st);
    CHECK_MSG(rc == TDM_ERR_FORMAT && strstr(st.msg, "layers.2."), "%s", st.msg);
    CHECK(bad == NULL);
    tdm_weights ws;
    tdm_weights_init(&ws, "text encoder");
    rc = tdm_clip_text_openclip_mapper(&ws, "transformer.resblocks.0.attn.qkv.weight", &hf->t[0], &map, &st);
    CHECK_MSG(rc == TDM_ERR_FORMAT && strstr(st.msg, "transformer.resblocks.0.attn.qkv.weight"), "%s", st.msg);
    tdm_weights_free(&ws);

done:
    tdm_clip_text_free(m);
    tdm_clip_text_free(mo);
    tdm_clip_text_free(mnp);
    tdm_test_wfile_free(hf);
    tdm_test_wfile_free(oc);
    free(hf);
    free(oc);
}

static void test_config_and_pooling(void) {
    tdm_clip_text_config cfg;
    tdm_status st;
    tdm_status_clear(&st);
    CHECK_MSG(config_from(CONFIG, &cfg, &st) == TDM_OK, "%s", st.msg);
    /* a full CLIPModel config: text_config is used */
    const char *full = "{\"text_config\": {\"hidden_size\": 64, \"num_attention_heads\": 4}, \"projection_dim\": 9}";
    CHECK(config_from(full, &cfg, &st) == TDM_OK);
    CHECK(cfg.hidden_size == 64 && cfg.hidden_act == TDM_CLIP_ACT_QUICK_GELU && cfg.projection_dim == 512);
    struct {
        const char *json, *field;
    } bad[] = {
        {"{\"hidden_size\": 8, \"num_attention_heads\": 3}", "num_attention_heads"},
        {"{\"hidden_act\": \"relu\"}", "hidden_act"},
        {"{\"vocab_size\": \"many\"}", "vocab_size"},
        {"{\"num_hidden_layers\": 0}", "num_hidden_layers"},
        {"{\"layer_norm_eps\": -1}", "layer_norm_eps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tdm_code rc = config_from(bad[i].json, &cfg, &st);
        CHECK_MSG(rc != TDM_OK && strstr(st.msg, bad[i].field) != NULL, "case %zu: '%s'", i, st.msg);
    }
    /* pooling: eos_token_id 2 (legacy) -> first highest id; otherwise first eos; none -> 0 */
    const int32_t a[6] = {49406, 320, 49407, 49407, 49407, 49407}, z[6] = {49406, 320, 49407, 0, 0, 0};
    const int32_t none[3] = {5, 6, 7};
    tdm_clip_text_config_default(&cfg);
    CHECK(tdm_clip_text_pool_index(&cfg, a, 6) == 2 && tdm_clip_text_pool_index(&cfg, z, 6) == 2);
    CHECK(tdm_clip_text_pool_index(&cfg, none, 3) == 0);
    cfg.eos_token_id = 2;
    CHECK(tdm_clip_text_pool_index(&cfg, a, 6) == 2 && tdm_clip_text_pool_index(&cfg, none, 3) == 2);
    const int32_t hi[4] = {49406, 49407, 49408, 1};
    CHECK(tdm_clip_text_pool_index(&cfg, hi, 4) == 2);
}

static void test_fixtures(void) {
    static const char *const names[] = {"clip-text-tiny", "clip-text-tiny-gelu-proj"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int np, nf;
        if (tdm_test_check_fixture(names[i], &np, &nf))
            CHECK_MSG(nf == 0 && np >= 8, "%s: %d passed, %d failed", names[i], np, nf);
    }
}

int main(void) {
    test_config_and_pooling();
    test_synthetic();
    test_fixtures();
    return tdm_test_result();
}
