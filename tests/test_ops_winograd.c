/* Winograd F(2x2,3x3) / F(4x4,3x3) convolution against the scalar reference (tdm_conv2d_ref) on awkward
 * shapes (1, primes, sizes that are not multiples of the tile or SIMD width, several tile chunks and
 * output-channel blocks), all weight dtypes, padding 0 and 1, batches; bit-identical results on 1, 2
 * and 3 threads; tdm_conv2d's algorithm choice and routing; tdm_conv2d_pre (fused GroupNorm / upsampling
 * input) bit-identical to materialising its input.
 * Tolerance: max |wino - ref| / max |ref|: 2e-6 * sqrt(9 Cin) for F(2,3), max(3e-4, 1e-5 * sqrt(9 Cin)) for
 * F(4,3) (its GEMM roundings are amplified ~5-10x more by the output transform; see ops_winograd.c; the
 * 3e-4 floor is for single-channel 1x1 images, where one tap's product is computed from all nine).
 * The per-thread scratch is reused: repeated calls allocate nothing (tdm_ops_scratch_bytes).
 * Both GEMM backends (tdm_wino_gemm, H8) are run on every case: the OpenBLAS reference path and the packed
 * micro-kernel path (U / V written in panel layout) each meet the tolerance and are bit-identical on 1, 2
 * and 3 threads; the packed path's portable micro-kernel gives exactly the AVX2 one's bits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/numeric.h"
#include "base/rng.h"
#include "tensor/ops.h"
#include "tensor/ops_internal.h"
#include "test_util.h"

static tdm_pool *pools[3];
static uint64_t seed_counter = 1;

static float *randn(int64_t n) { return tdm_test_randn((long)n, 4321, seed_counter++); }

static tdm_tensor make_weight(tdm_dtype dt, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *f = randn(n);
    void *data = f;
    if (dt != TDM_F32) {
        uint16_t *h = malloc((size_t)(n > 0 ? n : 1) * 2);
        for (int64_t i = 0; i < n; i++) h[i] = dt == TDM_F16 ? tdm_f32_to_f16(f[i]) : tdm_f32_to_bf16(f[i]);
        free(f);
        data = h;
    }
    return tdm_tensor_view(dt, data, ndim, shape);
}

static double rel_err(const float *a, const float *ref, int64_t n) {
    double mx = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
    }
    return e / (mx > 1e-30 ? mx : 1e-30);
}

typedef struct {
    int64_t N, Cin, H, W, Cout;
    int pad;
} wcase;

static const wcase cases[] = {
    {1, 1, 1, 1, 1, 1},    {1, 1, 3, 3, 1, 0},    {1, 3, 7, 7, 5, 1},     {2, 4, 13, 9, 7, 1},
    {1, 5, 8, 8, 3, 1},    {1, 2, 5, 11, 3, 0},   {3, 7, 2, 2, 3, 1},     {1, 17, 31, 17, 67, 1},
    {2, 13, 9, 23, 33, 1}, {1, 1, 67, 67, 2, 1},  {1, 64, 16, 16, 64, 1}, {2, 33, 29, 31, 19, 0},
    {1, 3, 4, 4, 130, 1},  {1, 40, 97, 101, 3, 1}, /* several tile chunks at F(4,3) */
    {1, 300, 12, 12, 260, 1},                       /* several output-channel blocks */
    {1, 19, 33, 35, 21, 1},  {1, 320, 32, 32, 64, 1}, /* C not a multiple of 8; UNet-like channels */
    {2, 263, 11, 13, 127, 1},                         /* K > KC (2 blocks, prime), M > MC, tiles % 16 != 0 */
};

static void run_case(const wcase *c, int m, tdm_dtype dt, int with_bias) {
    int64_t ws[4] = {c->Cout, c->Cin, 3, 3};
    tdm_tensor W = make_weight(dt, 4, ws), bias = make_weight(dt, 1, &c->Cout);
    int64_t Ho = c->H + 2 * c->pad - 2, Wo = c->W + 2 * c->pad - 2;
    if (Ho < 1 || Wo < 1) {
        free(W.data), free(bias.data);
        return;
    }
    int64_t ny = c->N * c->Cout * Ho * Wo;
    float *x = randn(c->N * c->Cin * c->H * c->W), *r = randn(ny), *y[3];
    CHECK(tdm_conv2d_ref(x, c->N, c->Cin, c->H, c->W, &W, with_bias ? &bias : NULL, 1, c->pad, r) == TDM_OK);
    const tdm_wino_gemm saved = tdm_wino_get_gemm();
    static const tdm_wino_gemm kinds[2] = {TDM_WINO_GEMM_BLAS, TDM_WINO_GEMM_PACKED};
    static const char *kind_name[2] = {"blas", "packed"};
    for (int g = 0; g < 2; g++) {
        tdm_wino_set_gemm(kinds[g]);
        for (int p = 0; p < 3; p++) {
            y[p] = randn(ny);
            tdm_exec ex = {pools[p], 0};
            CHECK(tdm_conv2d_winograd(&ex, m, x, c->N, c->Cin, c->H, c->W, &W, with_bias ? &bias : NULL, c->pad, y[p]) ==
                  TDM_OK);
        }
        double tol = m == 2 ? 2e-6 * sqrt(9.0 * (double)c->Cin) : fmax(3e-4, 1e-5 * sqrt(9.0 * (double)c->Cin));
        double e = rel_err(y[1], r, ny);
        CHECK_MSG(e <= tol, "F(%d,3) %s N%lld Cin%lld %lldx%lld Cout%lld pad%d %s: rel %g > %g", m, kind_name[g],
                  (long long)c->N, (long long)c->Cin, (long long)c->H, (long long)c->W, (long long)c->Cout, c->pad,
                  tdm_dtype_name(dt), e, tol);
        CHECK_MSG(memcmp(y[0], y[1], (size_t)ny * sizeof(float)) == 0 && memcmp(y[0], y[2], (size_t)ny * sizeof(float)) == 0,
                  "F(%d,3) %s N%lld Cin%lld %lldx%lld Cout%lld: results differ between 1, 2 and 3 threads", m, kind_name[g],
                  (long long)c->N, (long long)c->Cin, (long long)c->H, (long long)c->W, (long long)c->Cout);
        if (kinds[g] == TDM_WINO_GEMM_PACKED) { /* the portable micro-kernel: the same bits */
            tdm_wino_set_gemm(TDM_WINO_GEMM_PACKED_GENERIC);
            tdm_exec ex = {pools[1], 0};
            float *z = randn(ny);
            CHECK(tdm_conv2d_winograd(&ex, m, x, c->N, c->Cin, c->H, c->W, &W, with_bias ? &bias : NULL, c->pad, z) ==
                  TDM_OK);
            CHECK_MSG(memcmp(z, y[1], (size_t)ny * sizeof(float)) == 0,
                      "F(%d,3) N%lld Cin%lld %lldx%lld Cout%lld: portable and AVX2 micro-kernels differ", m, (long long)c->N,
                      (long long)c->Cin, (long long)c->H, (long long)c->W, (long long)c->Cout);
            free(z);
        }
        if (getenv("TDM_VERBOSE"))
            printf("F(%d,3) %-6s N%lld Cin%lld %lldx%lld Cout%lld pad%d %s: rel %.3g (tol %.3g)\n", m, kind_name[g],
                   (long long)c->N, (long long)c->Cin, (long long)c->H, (long long)c->W, (long long)c->Cout, c->pad,
                   tdm_dtype_name(dt), e, tol);
        for (int p = 0; p < 3; p++) free(y[p]);
    }
    tdm_wino_set_gemm(saved);
    free(W.data), free(bias.data), free(x), free(r);
}

static void test_routing(void) {
    /* non-3x3 / strided shapes always take im2col; explicit choices are honoured */
    CHECK(tdm_conv_pick(1, 320, 320, 1, 1, 1, 64, 64) == TDM_CONV_IM2COL);
    CHECK(tdm_conv_pick(1, 320, 320, 3, 3, 2, 32, 32) == TDM_CONV_IM2COL);
    tdm_conv_algo saved = tdm_conv_get_algo();
    /* AUTO: F(4,3) from 64 4x4 tiles, F(2,3) from 64 2x2 tiles, im2col below or with < 16 channels */
    tdm_conv_set_algo(TDM_CONV_AUTO);
    CHECK(tdm_conv_pick(1, 320, 320, 3, 3, 1, 64, 64) == TDM_CONV_WINO4);
    CHECK(tdm_conv_pick(2, 512, 256, 3, 3, 1, 32, 32) == TDM_CONV_WINO4);
    CHECK(tdm_conv_pick(1, 1280, 1280, 3, 3, 1, 16, 16) == TDM_CONV_WINO2);
    CHECK(tdm_conv_pick(1, 1280, 1280, 3, 3, 1, 30, 27) == TDM_CONV_WINO2); /* 8 x 7 4x4 tiles */
    CHECK(tdm_conv_pick(1, 1280, 1280, 3, 3, 1, 31, 29) == TDM_CONV_WINO4); /* 8 x 8 */
    CHECK(tdm_conv_pick(1, 1280, 1280, 3, 3, 1, 8, 8) == TDM_CONV_IM2COL);
    CHECK(tdm_conv_pick(1, 4, 320, 3, 3, 1, 64, 64) == TDM_CONV_IM2COL);
    CHECK(tdm_conv_pick(1, 128, 3, 3, 3, 1, 512, 512) == TDM_CONV_IM2COL);
    tdm_conv_set_algo(TDM_CONV_WINO2);
    CHECK(tdm_conv_pick(1, 3, 3, 3, 3, 1, 5, 5) == TDM_CONV_WINO2);
    /* tdm_conv2d with a forced algorithm gives exactly tdm_conv2d_winograd */
    int64_t ws[4] = {6, 5, 3, 3};
    tdm_tensor W = make_weight(TDM_F16, 4, ws);
    float *x = randn(5 * 9 * 7), y[6 * 9 * 7], z[6 * 9 * 7];
    tdm_exec ex = {pools[1], 0};
    CHECK(tdm_conv2d(&ex, x, 1, 5, 9, 7, &W, NULL, 1, 1, y) == TDM_OK);
    CHECK(tdm_conv2d_winograd(&ex, 2, x, 1, 5, 9, 7, &W, NULL, 1, z) == TDM_OK);
    CHECK(memcmp(y, z, sizeof y) == 0);
    tdm_conv_set_algo(saved);
    /* invalid arguments */
    CHECK(tdm_conv2d_winograd(&ex, 3, x, 1, 5, 9, 7, &W, NULL, 1, z) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_conv2d_winograd(&ex, 2, x, 1, 4, 9, 7, &W, NULL, 1, z) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_conv2d_winograd(&ex, 2, x, 1, 5, 2, 2, &W, NULL, 0, z) == TDM_ERR_INVALID_ARG);
    free(W.data), free(x);
}

/* tdm_conv2d_pre (GroupNorm(+SiLU) coefficients and/or nearest 2x upsampling applied while loading)
 * equals materialising the pre-op and calling tdm_conv2d, bit for bit, on the Winograd and im2col paths. */
static void test_pre(void) {
    static const struct {
        int64_t N, Cin, Hs, Ws, Cout;
        int up, gn, silu, k;
    } pc[] = {
        {1, 32, 16, 16, 24, 0, 1, 1, 3}, {2, 32, 9, 13, 17, 1, 0, 0, 3}, {1, 16, 12, 12, 16, 1, 1, 0, 3},
        {1, 8, 5, 7, 3, 0, 1, 1, 3},     {1, 32, 8, 8, 16, 1, 1, 1, 1}, {2, 16, 10, 10, 20, 0, 1, 1, 3},
    };
    for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++) {
        const int64_t N = pc[i].N, Cin = pc[i].Cin, Cout = pc[i].Cout, up = pc[i].up;
        const int64_t H = up ? 2 * pc[i].Hs : pc[i].Hs, W = up ? 2 * pc[i].Ws : pc[i].Ws, k = pc[i].k;
        const int pad = k == 3 ? 1 : 0;
        int64_t ws[4] = {Cout, Cin, k, k};
        tdm_tensor Wt = make_weight(TDM_F16, 4, ws), bias = make_weight(TDM_F32, 1, &Cout);
        tdm_tensor gam = make_weight(TDM_F32, 1, &Cin), bet = make_weight(TDM_F16, 1, &Cin);
        const int64_t nx = N * Cin * pc[i].Hs * pc[i].Ws, nxp = N * Cin * H * W, ny = N * Cout * H * W;
        float *x = randn(nx), *xp = randn(nxp), *xg = randn(nx), *ref = randn(ny), *cab = randn(N * Cin * 3);
        tdm_exec ex1 = {pools[1], 0};
        /* materialised: GroupNorm(+SiLU) at the source size, then upsampling */
        const float *src = x;
        if (pc[i].gn) {
            CHECK(tdm_group_norm(&ex1, x, N, Cin, pc[i].Hs * pc[i].Ws, 4, 1e-6f, &gam, &bet, pc[i].silu, xg) == TDM_OK);
            CHECK(tdm_group_norm_coeffs(&ex1, x, N, Cin, pc[i].Hs * pc[i].Ws, 4, 1e-6f, &gam, &bet, cab) == TDM_OK);
            src = xg;
        }
        if (up) tdm_upsample_nearest2x(src, N, Cin, pc[i].Hs, pc[i].Ws, xp);
        else memcpy(xp, src, (size_t)nxp * sizeof(float));
        CHECK(tdm_conv2d(&ex1, xp, N, Cin, H, W, &Wt, &bias, 1, pad, ref) == TDM_OK);
        tdm_conv_pre pre = {pc[i].gn ? cab : NULL, pc[i].silu, (int)up};
        for (int p = 0; p < 3; p++) {
            float *y = randn(ny);
            tdm_exec ex = {pools[p], 0};
            CHECK(tdm_conv2d_pre(&ex, x, N, Cin, H, W, &Wt, &bias, 1, pad, &pre, y) == TDM_OK);
            CHECK_MSG(memcmp(y, ref, (size_t)ny * sizeof(float)) == 0,
                      "conv2d_pre case %zu (%lld threads): differs from the materialised pre-op", i, (long long)p + 1);
            free(y);
        }
        free(Wt.data), free(bias.data), free(gam.data), free(bet.data);
        free(x), free(xp), free(xg), free(ref), free(cab);
    }
}

/* Repeated calls reuse the calling thread's scratch: no growth after the first call of a shape. */
static void test_scratch_reuse(void) {
    int64_t ws[4] = {24, 20, 3, 3};
    tdm_tensor W = make_weight(TDM_F16, 4, ws), bias = make_weight(TDM_F32, 1, &ws[0]);
    float *x = randn(2 * 20 * 37 * 41), *y = randn(2 * 24 * 37 * 41), *z = randn(2 * 24 * 37 * 41);
    tdm_exec ex = {pools[2], 0};
    for (int m = 2; m <= 4; m += 2) CHECK(tdm_conv2d_winograd(&ex, m, x, 2, 20, 37, 41, &W, &bias, 1, y) == TDM_OK);
    CHECK(tdm_conv2d(&ex, x, 2, 20, 37, 41, &W, &bias, 1, 1, y) == TDM_OK);
    const size_t held = tdm_ops_scratch_bytes();
    CHECK(held > 0);
    for (int m = 2; m <= 4; m += 2) {
        CHECK(tdm_conv2d_winograd(&ex, m, x, 2, 20, 37, 41, &W, &bias, 1, z) == TDM_OK);
        CHECK(tdm_conv2d_winograd(&ex, m, x, 2, 20, 37, 41, &W, &bias, 1, y) == TDM_OK);
        CHECK(memcmp(y, z, (size_t)(2 * 24 * 37 * 41) * sizeof(float)) == 0); /* stale scratch does not leak in */
    }
    CHECK(tdm_conv2d(&ex, x, 2, 20, 37, 41, &W, &bias, 1, 1, z) == TDM_OK);
    CHECK(tdm_ops_scratch_bytes() == held);
    tdm_ops_scratch_release();
    CHECK(tdm_ops_scratch_bytes() == 0);
    CHECK(tdm_conv2d(&ex, x, 2, 20, 37, 41, &W, &bias, 1, 1, y) == TDM_OK); /* usable again after release */
    CHECK(memcmp(y, z, (size_t)(2 * 24 * 37 * 41) * sizeof(float)) == 0);
    free(W.data), free(bias.data), free(x), free(y), free(z);
}

/* The per-run arena keeps chunks released by a reset as spares: a repeated run gets the same memory back
 * (no new allocation, no page faults); a request no spare fits frees them all first. */
static void test_arena_spares(void) {
    tdm_arena a;
    tdm_arena_init(&a, 4096);
    CHECK(tdm_arena_alloc(&a, 100) != NULL);
    tdm_arena_mark m = tdm_arena_get_mark(&a);
    static const size_t sizes[4] = {10000, 3000, 3000, 5000};
    void *first[4], *again[4];
    for (int run = 0; run < 2; run++) {
        for (int i = 0; i < 4; i++) {
            void *p = tdm_arena_alloc(&a, sizes[i]);
            CHECK(p && ((uintptr_t)p & 63) == 0);
            if (p) memset(p, run + 1, sizes[i]);
            (run ? again : first)[i] = p;
        }
        tdm_arena_reset(&a, m);
        CHECK(a.spare != NULL);
    }
    for (int i = 0; i < 4; i++) CHECK(first[i] == again[i]);
    CHECK(tdm_arena_alloc(&a, 20000) != NULL); /* fits no spare: spares freed, new chunk */
    CHECK(a.spare == NULL);
    tdm_arena_free(&a);
    CHECK(a.head == NULL && a.spare == NULL && a.in_use == 0);
}

int main(void) {
    tdm_status st;
    for (int p = 0; p < 3; p++) CHECK(tdm_pool_create(&pools[p], p + 1, &st) == TDM_OK);
    static const tdm_dtype dts[] = {TDM_F32, TDM_F16, TDM_BF16};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int m = 2; m <= 4; m += 2) run_case(&cases[i], m, dts[(i + (size_t)m) % 3], (int)i % 2 == 0);
    test_routing();
    test_pre();
    test_scratch_reuse();
    test_arena_spares();
    for (int p = 0; p < 3; p++) tdm_pool_free(pools[p]);
    return tdm_test_result();
}
