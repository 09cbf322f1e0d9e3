/* Packed GEMM with dtype'd operands (tdm_gemm_mixed / tdm_gemm_packed_single, ops_gemm_packed.c) against
 * the scalar double reference (tdm_gemm_mixed_ref) on awkward shapes: 1, primes, sizes that are not
 * multiples of the micro-tile (6 x 16) or of the K block (256), every operand dtype (F32, F16, BF16) and
 * layout (row-major, transposed, general strides), alpha / beta (beta 0 must not read C); the AVX-512
 * (12 x 32, where the CPU has it), AVX2 and portable micro-kernels bit-identical; 1, 2 and 3 threads bit-identical; tdm_linear against its reference
 * (and thread-count identity) on the shapes the packed path is meant for; tdm_gemm_prepacked_single (operands
 * packed by the caller, the Winograd path) bit-identical to tdm_gemm_packed_single with alpha 1, beta 0.
 * Tolerance per element: |c - ref| <= 4 u K sum_k |a_ik b_kj| + 1e-30 (u = 2^-24: the FMA chain's
 * rounding bound, gamma_K, with margin; operands are exactly representable, so the reference is exact
 * up to double rounding). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "base/rng.h"
#include "tensor/ops.h"
#include "tensor/ops_internal.h"
#include "test_util.h"

static tdm_pool *pools[3];
static uint64_t seed_counter = 1;

static float *randn(int64_t n) { return tdm_test_randn((long)n, 777, seed_counter++); }

/* n values in dtype dt (rounded from normals); *f gets the exact f32 values. */
static void *make_data(tdm_dtype dt, int64_t n, float **f) {
    float *v = randn(n);
    if (dt == TDM_F32) {
        *f = v;
        float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        memcpy(c, v, (size_t)n * sizeof(float));
        return c;
    }
    uint16_t *h = malloc((size_t)(n > 0 ? n : 1) * 2);
    for (int64_t i = 0; i < n; i++) {
        h[i] = dt == TDM_F16 ? tdm_f32_to_f16(v[i]) : tdm_f32_to_bf16(v[i]);
        v[i] = dt == TDM_F16 ? tdm_f16_to_f32(h[i]) : tdm_bf16_to_f32(h[i]);
    }
    *f = v;
    return h;
}

/* layout 0: row-major (cs 1), 1: transposed (rs 1), 2: general strides (padded both ways). */
static tdm_gemm_operand make_operand(tdm_dtype dt, int64_t R, int64_t Cc, int layout, float **vals, int64_t *rs,
                                     int64_t *cs) {
    int64_t n;
    if (layout == 0) *rs = Cc + 3, *cs = 1, n = R * (Cc + 3);
    else if (layout == 1) *rs = 1, *cs = R + 5, n = Cc * (R + 5);
    else *rs = 2 * Cc + 1, *cs = 2, n = R * (2 * Cc + 1);
    tdm_gemm_operand op = {make_data(dt, n > 0 ? n : 1, vals), dt, *rs, *cs};
    return op;
}

static float val(const float *v, int64_t rs, int64_t cs, int64_t i, int64_t j) { return v[i * rs + j * cs]; }

static int64_t failures = 0;

static void check_shape(int64_t M, int64_t N, int64_t K, tdm_dtype da, tdm_dtype db, int la, int lb, float alpha,
                        float beta) {
    float *av, *bv;
    int64_t ars, acs, brs, bcs;
    tdm_gemm_operand A = make_operand(da, M, K, la, &av, &ars, &acs);
    tdm_gemm_operand B = make_operand(db, K, N, lb, &bv, &brs, &bcs);
    const int64_t ldc = N + 2;
    float *c0 = randn(M * ldc), *ref = malloc((size_t)(M * ldc + 1) * sizeof(float));
    float *c[3], *cg = malloc((size_t)(M * ldc + 1) * sizeof(float));
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * ldc; i++) c0[i] = NAN; /* beta 0: C must not be read */
    memcpy(ref, c0, (size_t)(M * ldc) * sizeof(float));
    CHECK(tdm_gemm_mixed_ref(M, N, K, alpha, &A, &B, beta, ref, ldc) == TDM_OK);
    for (int t = 0; t < 3; t++) {
        c[t] = malloc((size_t)(M * ldc + 1) * sizeof(float));
        memcpy(c[t], c0, (size_t)(M * ldc) * sizeof(float));
        tdm_exec ex = {pools[t], 0};
        CHECK(tdm_gemm_mixed(&ex, M, N, K, alpha, &A, &B, beta, c[t], ldc) == TDM_OK);
    }
    /* portable micro-kernel, single-threaded: the same bits */
    memcpy(cg, c0, (size_t)(M * ldc) * sizeof(float));
    float *ws = aligned_alloc(64, ((size_t)tdm_gemm_packed_ws_floats(N) * sizeof(float) + 63) / 64 * 64);
    tdm_gemm_packed_single_generic(M, N, K, alpha, &A, &B, beta, cg, ldc, ws);
    free(ws);
    int64_t bad = 0, diff_thr = 0, diff_gen = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double mag = 0;
            for (int64_t k = 0; k < K; k++) mag += fabs((double)val(av, ars, acs, i, k) * val(bv, brs, bcs, k, j));
            mag = fabs(alpha) * mag + (beta != 0.0f ? fabs((double)beta * c0[i * ldc + j]) : 0.0);
            double tol = 4.0 * ldexp(1.0, -24) * (double)(K + 2) * mag + 1e-30;
            float got = c[0][i * ldc + j];
            if (!(fabs((double)got - ref[i * ldc + j]) <= tol)) bad++;
            for (int t = 1; t < 3; t++)
                if (memcmp(&got, &c[t][i * ldc + j], sizeof got)) diff_thr++;
            if (memcmp(&got, &cg[i * ldc + j], sizeof got)) diff_gen++;
        }
    /* the padding columns of C are never written */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++)
            if (memcmp(&c[0][i * ldc + j], &c0[i * ldc + j], sizeof(float))) bad++;
    CHECK_MSG(bad == 0 && diff_thr == 0 && diff_gen == 0,
              "M=%lld N=%lld K=%lld dtypes %d/%d layouts %d/%d alpha %g beta %g: %lld out of tolerance, %lld differ "
              "across thread counts, %lld differ from the portable kernel",
              (long long)M, (long long)N, (long long)K, (int)da, (int)db, la, lb, alpha, beta, (long long)bad,
              (long long)diff_thr, (long long)diff_gen);
    failures += bad + diff_thr + diff_gen;
    free((void *)A.data), free((void *)B.data), free(av), free(bv), free(c0), free(ref), free(cg);
    for (int t = 0; t < 3; t++) free(c[t]);
}

static void test_shapes(void) {
    const int64_t sizes[][3] = {{1, 1, 1},   {1, 17, 5},   {7, 1, 3},     {6, 16, 256}, {5, 15, 257},
                                {13, 31, 97}, {37, 53, 300}, {61, 33, 513}, {77, 40, 64}, {130, 1030, 9},
                                {3, 5, 0}};
    const tdm_dtype dts[3] = {TDM_F32, TDM_F16, TDM_BF16};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int da = 0; da < 3; da++)
            for (int db = 0; db < 3; db++)
                for (int la = 0; la < 3; la++)
                    for (int lb = 0; lb < 3; lb++) {
                        /* all layouts on small shapes, the main ones on the large */
                        if (sizes[s][0] * sizes[s][1] * sizes[s][2] > 20000 && (la == 2 || lb == 2)) continue;
                        float alpha = (la + lb) % 2 ? 0.75f : 1.0f, beta = (da + db + la) % 3 == 0 ? 0.0f : 0.5f;
                        check_shape(sizes[s][0], sizes[s][1], sizes[s][2], dts[da], dts[db], la, lb, alpha, beta);
                    }
}

/* larger shapes: several units per thread count (row and column splits) */
static void test_threads(void) {
    check_shape(700, 333, 301, TDM_F32, TDM_F16, 0, 1, 1.0f, 0.0f); /* Linear layout */
    check_shape(100, 2100, 65, TDM_F16, TDM_F32, 0, 0, 1.0f, 0.0f); /* conv layout: W x col */
    check_shape(520, 1100, 40, TDM_F32, TDM_F32, 0, 0, 1.0f, 1.0f);
}

/* tdm_linear on both backends (OpenBLAS blocks, packed GEMM) against tdm_linear_ref, every weight dtype,
 * with and without bias. */
static void test_linear(void) {
    const int64_t shapes[][3] = {{1, 1, 1}, {77, 320, 768}, {600, 70, 33}, {5, 1281, 19}, {257, 13, 300}};
    const tdm_dtype dts[3] = {TDM_F32, TDM_F16, TDM_BF16};
    const tdm_linear_gemm backends[2] = {TDM_LINEAR_GEMM_BLAS, TDM_LINEAR_GEMM_PACKED};
    for (int be = 0; be < 2; be++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int d = 0; d < 3; d++) {
                const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *xv = randn(M * K), *wv, *bv;
                int64_t wshape[2] = {N, K}, bshape[1] = {N};
                tdm_tensor W = tdm_tensor_view(dts[d], make_data(dts[d], N * K, &wv), 2, wshape);
                tdm_tensor b = tdm_tensor_view(dts[d], make_data(dts[d], N, &bv), 1, bshape);
                float *y[3], *ref = malloc((size_t)(M * N) * sizeof(float));
                CHECK(tdm_linear_ref(xv, M, K, &W, d == 1 ? NULL : &b, ref) == TDM_OK);
                tdm_linear_set_gemm(backends[be]);
                for (int t = 0; t < 3; t++) {
                    y[t] = malloc((size_t)(M * N) * sizeof(float));
                    tdm_exec ex = {pools[t], 0};
                    CHECK(tdm_linear(&ex, xv, M, K, &W, d == 1 ? NULL : &b, y[t]) == TDM_OK);
                }
                tdm_linear_set_gemm(TDM_LINEAR_GEMM_DEFAULT);
                double md = 0, mr = 0;
                for (int64_t i = 0; i < M * N; i++) {
                    md = fmax(md, fabs((double)y[0][i] - ref[i]));
                    mr = fmax(mr, fabs((double)ref[i]));
                }
                CHECK_MSG(md <= 1e-6 * sqrt((double)K) * (mr + 1.0), "linear backend %d %lldx%lldx%lld dtype %d: max err %g (max %g)",
                          be, (long long)M, (long long)N, (long long)K, d, md, mr);
                CHECK(memcmp(y[0], y[1], (size_t)(M * N) * sizeof(float)) == 0);
                CHECK(memcmp(y[0], y[2], (size_t)(M * N) * sizeof(float)) == 0);
                for (int t = 0; t < 3; t++) free(y[t]);
                free(ref), free(xv), free(wv), free(bv), free((void *)W.data), free((void *)b.data);
            }
    }
}

/* tdm_gemm_prepacked_single on panels built here (A: [M/MR][K][MR], B: [N/NR][K][NR], padding filled with
 * finite junk, never stored) gives exactly tdm_gemm_packed_single's bits (alpha 1, beta 0), for both
 * micro-kernels, and leaves C's padding columns (ldc > N) alone. */
static void test_prepacked(void) {
    static const int64_t shp[][3] = {{1, 1, 1}, {7, 17, 5}, {13, 33, 255}, {6, 16, 256}, {121, 47, 257}, {5, 130, 300}};
    for (size_t s = 0; s < sizeof shp / sizeof shp[0]; s++) {
        const int64_t M = shp[s][0], N = shp[s][1], K = shp[s][2], ldc = N + 3;
        const int64_t Mp = (M + TDM_GP_MR - 1) / TDM_GP_MR * TDM_GP_MR, Np = (N + TDM_GP_NR - 1) / TDM_GP_NR * TDM_GP_NR;
        float *a = randn(M * K), *b = randn(K * N), *Ap = randn(Mp * K), *Bp = randn(Np * K); /* a [M,K], b [K,N] */
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) Ap[(i / TDM_GP_MR) * TDM_GP_MR * K + k * TDM_GP_MR + i % TDM_GP_MR] = a[i * K + k];
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++) Bp[(j / TDM_GP_NR) * TDM_GP_NR * K + k * TDM_GP_NR + j % TDM_GP_NR] = b[k * N + j];
        float *c0 = calloc((size_t)(M * ldc), sizeof(float)), *c1 = calloc((size_t)(M * ldc), sizeof(float));
        float *c2 = calloc((size_t)(M * ldc), sizeof(float));
        float *ws = aligned_alloc(64, ((size_t)tdm_gemm_packed_ws_floats(N) * sizeof(float) + 63) / 64 * 64);
        tdm_gemm_operand A = {a, TDM_F32, K, 1}, B = {b, TDM_F32, N, 1};
        tdm_gemm_packed_single(M, N, K, 1.0f, &A, &B, 0.0f, c0, ldc, ws);
        tdm_gemm_prepacked_single(M, N, K, Ap, Bp, c1, ldc, 0);
        tdm_gemm_prepacked_single(M, N, K, Ap, Bp, c2, ldc, 1);
        CHECK_MSG(memcmp(c0, c1, (size_t)(M * ldc) * sizeof(float)) == 0, "prepacked %lldx%lldx%lld differs from packed",
                  (long long)M, (long long)N, (long long)K);
        CHECK_MSG(memcmp(c1, c2, (size_t)(M * ldc) * sizeof(float)) == 0,
                  "prepacked %lldx%lldx%lld: portable and SIMD micro-kernels differ", (long long)M, (long long)N, (long long)K);
        free(a), free(b), free(Ap), free(Bp), free(c0), free(c1), free(c2), free(ws);
    }
}

int main(void) {
    tdm_status st = {0};
    for (int t = 0; t < 3; t++)
        if (tdm_pool_create(&pools[t], t + 1, &st) != TDM_OK) {
            fprintf(stderr, "pool: %s\n", st.msg);
            return 1;
        }
    /* with the 12 x 32 AVX-512 kernel where the CPU has it (the default), then with the 6 x 16 AVX2 kernel
     * alone: both must give the portable kernel's bits */
    for (int wide = 1; wide >= 0; wide--) {
        tdm_ops_allow_avx512(wide);
        test_shapes();
        test_threads();
        test_prepacked();
    }
    tdm_ops_allow_avx512(1);
    test_linear();
    /* invalid arguments */
    float c = 0;
    tdm_gemm_operand bad = {NULL, TDM_F32, 1, 1}, ok = {&c, TDM_F32, 1, 1};
    CHECK(tdm_gemm_mixed(NULL, 1, 1, 1, 1.0f, &bad, &ok, 0.0f, &c, 1) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_gemm_mixed(NULL, -1, 1, 1, 1.0f, &ok, &ok, 0.0f, &c, 1) == TDM_ERR_INVALID_ARG);
    for (int t = 0; t < 3; t++) tdm_pool_free(pools[t]);
    if (failures) fprintf(stderr, "%lld element failures\n", (long long)failures);
    return tdm_test_result();
}
