/* Attention kernels (tdm_attention: the tiled OpenBLAS path and the flash kernel, ops_attention*.c)
 * against tdm_attention_ref on awkward shapes (Lq, Lk in {1, 7, 63, 64, 65, 77, 257}, D in {1, 3, 8, 40,
 * 41, 64, 80} and the SD1.5 head sizes 160 / 512; B 1-2, H 1-3; causal; additive masks with -inf and
 * finfo.min keys; padded row strides), the flash kernel's AVX-512 (where the CPU has it), AVX2 and portable
 * paths bit-identical, results
 * identical on 1, 2 and 3 threads, and the kernel choice ($TDM_ATTENTION / tdm_attention_set_kernel).
 * Tolerance: max |fast - ref| / max |ref| <= 1e-5, as tests/test_ops.c (the reference sums in double).
 * The basic tdm_attention cases (default kernel) are in tests/test_ops.c. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "tensor/ops.h"
#include "tensor/ops_internal.h"
#include "test_util.h"

#define TOL_REL 1e-5

static tdm_pool *pool1, *pool2, *pool3;
static double worst_flash, worst_tiled;

typedef struct {
    int64_t B, H, Lq, Lk, D, pad; /* pad: extra row stride of q / k / v (each different) */
    int causal, mask;             /* mask: 0 none, 1 random with -inf keys, 2 finfo.min keys, 3 all keys -inf in b 0 */
} att_case;

typedef struct {
    float *q, *k, *v, *mask; /* q [B, Lq, ldq], k / v [B, Lk, ldk / ldv], mask [B, Lk] */
    int64_t ldq, ldk, ldv, no;
    float scale;
} att_data;

static att_data make_data(const att_case *c, uint64_t seed) {
    att_data a;
    int64_t HD = c->H * c->D;
    a.ldq = HD + c->pad, a.ldk = HD + 2 * c->pad, a.ldv = HD + 3 * c->pad;
    a.q = tdm_test_randn((long)(c->B * c->Lq * a.ldq), seed, 1);
    a.k = tdm_test_randn((long)(c->B * c->Lk * a.ldk), seed, 2);
    a.v = tdm_test_randn((long)(c->B * c->Lk * a.ldv), seed, 3);
    a.mask = NULL;
    if (c->mask) {
        a.mask = tdm_test_randn((long)(c->B * c->Lk), seed, 4);
        for (int64_t j = 0; j < c->B * c->Lk; j++) {
            if (c->mask == 1 && j % 5 == 3) a.mask[j] = -INFINITY;
            if (c->mask == 2 && j % 3 == 1) a.mask[j] = -FLT_MAX; /* transformers' finfo.min */
            if (c->mask == 3 && j < c->Lk) a.mask[j] = -INFINITY; /* batch 0: every key masked, output 0 */
        }
    }
    a.no = c->B * c->Lq * HD;
    a.scale = 1.0f / sqrtf((float)c->D);
    return a;
}

static void free_data(att_data *a) { free(a->q), free(a->k), free(a->v), free(a->mask); }

/* out [B, Lq, H*D] (malloc'ed) with kernel kern on pool */
static float *run(const att_case *c, const att_data *a, tdm_att_kernel kern, tdm_pool *pool) {
    float *o = malloc((size_t)a->no * sizeof(float));
    for (int64_t i = 0; i < a->no; i++) o[i] = NAN; /* every output must be written */
    tdm_attention_set_kernel(kern);
    tdm_exec ex = {pool, 0};
    CHECK(tdm_attention(&ex, a->q, a->ldq, a->k, a->ldk, a->v, a->ldv, c->B, c->H, c->Lq, c->Lk, c->D, a->scale,
                        c->causal, a->mask, o) == TDM_OK);
    tdm_attention_set_kernel(TDM_ATT_AUTO);
    return o;
}

static double rel_err(const float *x, const float *ref, int64_t n) {
    double mx = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        double d = fabs((double)x[i] - ref[i]);
        if (!(d <= e)) e = d; /* NaN counts as infinite */
    }
    return e / (mx > 1e-30 ? mx : 1e-30);
}

static void check_case(const att_case *c, uint64_t seed) {
    att_data a = make_data(c, seed);
    float *r = malloc((size_t)a.no * sizeof(float));
    CHECK(tdm_attention_ref(a.q, a.ldq, a.k, a.ldk, a.v, a.ldv, c->B, c->H, c->Lq, c->Lk, c->D, a.scale, c->causal,
                            a.mask, r) == TDM_OK);
    float *f = run(c, &a, TDM_ATT_FLASH, pool2), *g = run(c, &a, TDM_ATT_FLASH_GENERIC, pool2);
    float *t = run(c, &a, TDM_ATT_TILED, pool2);
    double ef = rel_err(f, r, a.no), eg = rel_err(g, r, a.no), et = rel_err(t, r, a.no);
    if (ef > worst_flash) worst_flash = ef;
    if (et > worst_tiled) worst_tiled = et;
#define DESCR "B%lld H%lld Lq%lld Lk%lld D%lld pad%lld causal%d mask%d", (long long)c->B, (long long)c->H, \
              (long long)c->Lq, (long long)c->Lk, (long long)c->D, (long long)c->pad, c->causal, c->mask
    CHECK_MSG(ef <= TOL_REL && eg <= TOL_REL && et <= TOL_REL, DESCR);
    if (!(ef <= TOL_REL && eg <= TOL_REL && et <= TOL_REL))
        fprintf(stderr, "  rel error flash %g, flash-generic %g, tiled %g\n", ef, eg, et);
    /* the AVX2 and the portable flash paths do the same float operations */
    CHECK_MSG(memcmp(f, g, (size_t)a.no * sizeof(float)) == 0, "flash SIMD != generic: " DESCR);
    if (c->mask == 3) /* batch 0 fully masked: zeros, as the reference */
        for (int64_t i = 0; i < c->Lq * c->H * c->D; i++) CHECK_MSG(f[i] == 0.0f && t[i] == 0.0f, DESCR);
#undef DESCR
    free(r), free(f), free(g), free(t);
    free_data(&a);
}

static void test_shapes(void) {
    static const int64_t Ls[] = {1, 7, 63, 64, 65, 77, 257};
    static const int64_t Ds[] = {1, 3, 8, 40, 41, 64, 80};
    enum { NL = sizeof Ls / sizeof Ls[0], ND = sizeof Ds / sizeof Ds[0] };
    uint64_t seed = 100;
    int n = 0;
    for (int iq = 0; iq < NL; iq++)
        for (int ik = 0; ik < NL; ik++)
            for (int s = 0; s < 2; s++) { /* two D per (Lq, Lk), all D and variants cycled */
                int idx = (iq * NL + ik) * 2 + s;
                att_case c = {.B = 1 + idx % 2, .H = 1 + idx % 3, .Lq = Ls[iq], .Lk = Ls[ik], .D = Ds[(idx * 3 + s) % ND],
                              .pad = idx % 4 == 1 ? 5 : 0, .causal = idx % 4 == 2, .mask = idx % 5 == 3 ? 1 + idx % 2 : 0};
                check_case(&c, seed++);
                n++;
            }
    /* every D with every (causal, mask) variant at a multi-tile, multi-block shape */
    for (int id = 0; id < ND; id++)
        for (int var = 0; var < 4; var++) {
            att_case c = {.B = 2, .H = 2, .Lq = 257, .Lk = 257, .D = Ds[id], .pad = var == 1 ? 3 : 0,
                          .causal = var == 2 || var == 3, .mask = var == 3 ? 1 : var == 1 ? 3 : 0};
            check_case(&c, seed++);
            n++;
        }
    /* head sizes of SD1.5's inner levels and of the VAE mid block; cross-attention (Lk 77); CLIP (causal 77, D 64) */
    const att_case big[] = {
        {1, 2, 256, 256, 160, 0, 0, 0}, {2, 1, 130, 77, 160, 0, 0, 0}, {1, 1, 300, 300, 512, 0, 0, 0},
        {1, 3, 77, 77, 64, 0, 1, 0},    {2, 2, 77, 77, 64, 0, 0, 2},   {1, 1, 1100, 1030, 40, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++, n++) check_case(&big[i], seed++);
    printf("attention: %d cases, worst rel error flash %.3g, tiled %.3g (tolerance %g)\n", n, worst_flash, worst_tiled,
           TOL_REL);
}

/* Same bits on 1, 2 and 3 threads for both kernels. */
static void test_determinism(void) {
    const att_case cases[] = {{2, 3, 257, 300, 40, 2, 0, 1}, {1, 2, 200, 200, 41, 0, 1, 0}};
    tdm_pool *pools[3] = {pool1, pool2, pool3};
    tdm_att_kernel kerns[2] = {TDM_ATT_FLASH, TDM_ATT_TILED};
    for (size_t ci = 0; ci < 2; ci++)
        for (int kk = 0; kk < 2; kk++) {
            att_data a = make_data(&cases[ci], 7 + ci);
            float *o[3];
            for (int p = 0; p < 3; p++) o[p] = run(&cases[ci], &a, kerns[kk], pools[p]);
            CHECK_MSG(memcmp(o[0], o[1], (size_t)a.no * sizeof(float)) == 0, "case %zu kernel %d: 1 vs 2 threads", ci, kk);
            CHECK_MSG(memcmp(o[0], o[2], (size_t)a.no * sizeof(float)) == 0, "case %zu kernel %d: 1 vs 3 threads", ci, kk);
            for (int p = 0; p < 3; p++) free(o[p]);
            free_data(&a);
        }
}

/* The choice: set / get, the rule never answers AUTO, bad arguments refused by both kernels. */
static void test_choice(void) {
    tdm_attention_set_kernel(TDM_ATT_TILED);
    CHECK(tdm_attention_get_kernel() == TDM_ATT_TILED);
    CHECK(tdm_attention_pick(1, 8, 4096, 4096, 40, 0, NULL) == TDM_ATT_TILED);
    tdm_attention_set_kernel(TDM_ATT_AUTO);
    const int64_t shapes[][4] = {{4096, 4096, 40, 0}, {4096, 77, 40, 0}, {256, 256, 160, 0}, {4096, 4096, 512, 0},
                                 {77, 77, 64, 1},     {5, 5, 3, 0}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        tdm_att_kernel k = tdm_attention_pick(1, 8, shapes[i][0], shapes[i][1], shapes[i][2], (int)shapes[i][3], NULL);
        CHECK(k == TDM_ATT_TILED || k == TDM_ATT_FLASH);
        if (!tdm_attention_flash_avx2()) CHECK(k == TDM_ATT_TILED); /* no AVX2: the OpenBLAS path */
    }
    float x[8] = {0}, o[8];
    tdm_att_kernel kerns[2] = {TDM_ATT_FLASH, TDM_ATT_TILED};
    for (int kk = 0; kk < 2; kk++) {
        tdm_attention_set_kernel(kerns[kk]);
        CHECK(tdm_attention(NULL, x, 1, x, 1, x, 1, 1, 2, 1, 1, 1, 1.0f, 0, NULL, o) == TDM_ERR_INVALID_ARG); /* ld < H D */
        CHECK(tdm_attention(NULL, x, 1, x, 1, x, 1, 1, 1, 1, 0, 1, 1.0f, 0, NULL, o) == TDM_ERR_INVALID_ARG); /* Lk 0 */
        CHECK(tdm_attention(NULL, x, 1, x, 1, x, 1, 0, 1, 1, 1, 1, 1.0f, 0, NULL, o) == TDM_OK);              /* B 0 */
    }
    tdm_attention_set_kernel(TDM_ATT_AUTO);
}

int main(void) {
    tdm_status st;
    if (tdm_pool_create(&pool1, 1, &st) || tdm_pool_create(&pool2, 2, &st) || tdm_pool_create(&pool3, 3, &st)) {
        fprintf(stderr, "pool: %s\n", st.msg);
        return 1;
    }
    test_choice();
    /* with the AVX-512 tiles where the CPU has them (the default), then AVX2 alone: the portable bits both times */
    for (int wide = 1; wide >= 0; wide--) {
        tdm_ops_allow_avx512(wide);
        test_shapes();
        test_determinism();
    }
    tdm_ops_allow_avx512(1);
    tdm_pool_free(pool1), tdm_pool_free(pool2), tdm_pool_free(pool3);
    return tdm_test_result();
}
