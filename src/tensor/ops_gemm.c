/* GEMM and Linear: the BLAS backend (one function) and the thread-pool blocking around it.
 * Determinism: BLAS runs single-threaded (set once, process-wide); we split the output into
 * blocks whose sizes depend only on the shapes, each block one single-threaded sgemm, so the
 * result is bit-identical for any pool size. */
#include <cblas.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops_internal.h"

/* ---- backend ---------------------------------------------------------------------------------- */

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

void tdm_sgemm_single(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) { /* C = beta C (beta 0: C not read) */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    pthread_once(&blas_once, blas_single_thread);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

int tdm_gemm_args_ok(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                     int64_t ldc) {
    if (M < 0 || N < 0 || K < 0 || M > INT_MAX || N > INT_MAX || K > INT_MAX) return 0;
    if (lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX) return 0;
    int64_t acols = trans_a ? M : K, bcols = trans_b ? K : N;
    if (lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) || ldc < (N > 1 ? N : 1)) return 0;
    return 1;
}

/* ---- tdm_gemm ----------------------------------------------------------------------------------- */

enum { GEMM_BLOCK = 128 }; /* rows of M (or columns of N) per unit; fixed, independent of threads */

typedef struct {
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int64_t lda, ldb, ldc;
    int split_m;   /* 1: blocks of rows of M; 0: blocks of columns of N */
    int64_t units;
    atomic_llong next; /* next unit to take */
} gemm_job;

static void gemm_unit(const gemm_job *g, int64_t u) {
    int64_t s0 = u * GEMM_BLOCK;
    if (g->split_m) {
        int64_t m = g->M - s0 < GEMM_BLOCK ? g->M - s0 : GEMM_BLOCK;
        const float *a = g->ta ? g->A + s0 : g->A + s0 * g->lda;
        tdm_sgemm_single(g->ta, g->tb, m, g->N, g->K, g->alpha, a, g->lda, g->B, g->ldb, g->beta, g->C + s0 * g->ldc,
                         g->ldc);
    } else {
        int64_t n = g->N - s0 < GEMM_BLOCK ? g->N - s0 : GEMM_BLOCK;
        const float *b = g->tb ? g->B + s0 * g->ldb : g->B + s0;
        tdm_sgemm_single(g->ta, g->tb, g->M, n, g->K, g->alpha, g->A, g->lda, b, g->ldb, g->beta, g->C + s0, g->ldc);
    }
}

static void gemm_task(void *ctx, int ith, int nth) {
    gemm_job *g = ctx;
    for (int64_t u; (u = tdm_take_unit(&g->next)) < g->units;) gemm_unit(g, u);
}

tdm_code tdm_gemm(const tdm_exec *ex, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (tdm_exec_ref(ex)) return tdm_gemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (!tdm_gemm_args_ok(trans_a, trans_b, M, N, K, lda, ldb, ldc)) return TDM_ERR_INVALID_ARG;
    if (M == 0 || N == 0) return TDM_OK;
    gemm_job g = {trans_a, trans_b, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, M >= N, 0, 0};
    int64_t len = g.split_m ? M : N;
    g.units = (len + GEMM_BLOCK - 1) / GEMM_BLOCK;
    if (g.units == 1 || tdm_exec_threads(ex) == 1)
        gemm_task(&g, 0, 1);
    else
        tdm_pool_run(ex->pool, gemm_task, &g);
    return TDM_OK;
}

/* ---- tdm_linear --------------------------------------------------------------------------------- */

/* Units: bm rows of x by bn output features, sizes a function of (M, N) only. Measured (one core,
 * OpenBLAS Zen kernel, docs/PERFORMANCE.md): sgemm runs at 40-45 GFLOP/s on 256 x 128 blocks and 70-80
 * on blocks >= 256 x 320, so blocks are as large as possible while giving >= LIN_UNITS units (dynamic
 * scheduling balances 2-4 threads): bn = N up to LIN_BN_MAX features (else N split evenly in blocks of
 * <= 512), bm = M split evenly into enough blocks of >= LIN_BM_MIN rows. Up to LIN_SMALL_M rows (text
 * encoders, the UNet's 8x8 / 16x16 levels) only the features are split (blocks of >= 128): widening the
 * f16 weights then costs as much as the product, and each block is widened by one thread only. */
enum { LIN_UNITS = 8, LIN_BN_MAX = 768, LIN_BN_SPLIT = 512, LIN_BM_MIN = 64, LIN_SMALL_M = 512 };

static int64_t round_up16(int64_t v) { return (v + 15) / 16 * 16; }

void tdm_linear_blocks(int64_t M, int64_t N, int64_t *bm, int64_t *bn) {
    int64_t n_nb, n_mb;
    if (M <= LIN_SMALL_M) { /* few rows: split the features only, so each weight block is widened once */
        n_nb = (N + 127) / 128;
        if (n_nb > LIN_UNITS) n_nb = LIN_UNITS;
        if (n_nb < (N + LIN_BN_SPLIT - 1) / LIN_BN_SPLIT) n_nb = (N + LIN_BN_SPLIT - 1) / LIN_BN_SPLIT;
        n_mb = 1;
    } else {
        n_nb = N <= LIN_BN_MAX ? 1 : (N + LIN_BN_SPLIT - 1) / LIN_BN_SPLIT;
        n_mb = (LIN_UNITS + n_nb - 1) / n_nb;
        int64_t max_mb = (M + LIN_BM_MIN - 1) / LIN_BM_MIN;
        if (n_mb > max_mb) n_mb = max_mb;
    }
    if (n_nb < 1) n_nb = 1;
    if (n_mb < 1) n_mb = 1;
    *bn = n_nb == 1 ? N : round_up16((N + n_nb - 1) / n_nb);
    *bm = n_mb == 1 ? M : round_up16((M + n_mb - 1) / n_mb);
    if (*bm < 1) *bm = 1;
    if (*bn < 1) *bn = 1;
}

typedef struct {
    const float *x; /* [M, K] */
    int64_t M, K, N;
    const tdm_tensor *W; /* [N, K] */
    const float *bias;   /* [N] widened, or NULL */
    float *y;            /* [M, N] */
    int64_t bm, bn, n_mb, units;
    tdm_scratch scratch; /* per thread [bn, K] widened tile of W (non-F32 weights) */
    atomic_llong next;   /* next unit to take */
} linear_job;

static void linear_task(void *ctx, int ith, int nth) {
    linear_job *L = ctx;
    int64_t widened = -1; /* n-tile currently in this thread's scratch */
    for (int64_t u; (u = tdm_take_unit(&L->next)) < L->units;) {
        int64_t nb = u / L->n_mb, mb = u % L->n_mb; /* n-tile major: consecutive units reuse the tile */
        int64_t n0 = nb * L->bn, n = L->N - n0 < L->bn ? L->N - n0 : L->bn;
        int64_t m0 = mb * L->bm, m = L->M - m0 < L->bm ? L->M - m0 : L->bm;
        const float *w; /* [n, K] */
        if (L->W->dtype == TDM_F32) {
            w = (const float *)L->W->data + n0 * L->K;
        } else {
            float *buf = L->scratch.buf[ith];
            if (widened != nb) tdm_ops_widen(L->W, n0 * L->K, n * L->K, buf);
            widened = nb;
            w = buf;
        }
        float *yb = L->y + m0 * L->N + n0;
        tdm_sgemm_single(0, 1, m, n, L->K, 1.0f, L->x + m0 * L->K, L->K, w, L->K, 0.0f, yb, L->N);
        if (L->bias)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) yb[i * L->N + j] += L->bias[n0 + j];
    }
}

/* ---- Linear backend choice ---------------------------------------------------------------------- */

static atomic_int linear_gemm = -1; /* -1: not read from the environment yet */

tdm_linear_gemm tdm_linear_get_gemm(void) {
    static const char *const names[] = {"blas", "packed"};
    static const int values[] = {TDM_LINEAR_GEMM_BLAS, TDM_LINEAR_GEMM_PACKED};
    return (tdm_linear_gemm)tdm_ops_env_choice(&linear_gemm, "TDM_LINEAR", names, values, 2, TDM_LINEAR_GEMM_DEFAULT);
}

void tdm_linear_set_gemm(tdm_linear_gemm g) { atomic_store(&linear_gemm, (int)g); }

/* y [M, N] = x [M, K] W^T + bias on the packed GEMM: A = x (row-major), B = W^T (element (k, n) at W[n K + k],
 * widened while packed), C pre-filled with the bias (beta 1: the bias enters with the first K block's sum,
 * where the BLAS path adds it after the whole product; the two round differently, within the tests'
 * bound). The pre-fill is one pass over y. */
static tdm_code linear_packed(const tdm_exec *ex, const float *x, int64_t M, int64_t K, int64_t N, const tdm_tensor *W,
                              const tdm_tensor *bias, float *y) {
    float beta = 0.0f;
    if (bias) {
        tdm_ops_widen(bias, 0, N, y);                                          /* row 0 = bias [N] */
        for (int64_t i = 1; i < M; i++) memcpy(y + i * N, y, (size_t)N * sizeof *y); /* [M, N] */
        beta = 1.0f;
    }
    tdm_gemm_operand a = {x, TDM_F32, K, 1}, b = {W->data, W->dtype, 1, K};
    return tdm_gemm_mixed(ex, M, N, K, 1.0f, &a, &b, beta, y, N);
}

tdm_code tdm_linear(const tdm_exec *ex, const float *x, int64_t M, int64_t K, const tdm_tensor *W,
                    const tdm_tensor *bias, float *y) {
    if (tdm_exec_ref(ex)) return tdm_linear_ref(x, M, K, W, bias, y);
    if (!W || W->ndim != 2 || W->shape[1] != K || M < 0) return TDM_ERR_INVALID_ARG;
    int64_t N = W->shape[0];
    if (!tdm_ops_weight_ok(W, N * K) || !tdm_ops_opt_weight_ok(bias, N)) return TDM_ERR_INVALID_ARG;
    if (!tdm_gemm_args_ok(0, 1, M, N, K, K, K, N)) return TDM_ERR_INVALID_ARG;
    if (M == 0 || N == 0) return TDM_OK;
    tdm_linear_gemm g = tdm_linear_get_gemm();
    if (g == TDM_LINEAR_GEMM_DEFAULT) g = TDM_LINEAR_GEMM_DEFAULT_KIND;
    if (g == TDM_LINEAR_GEMM_PACKED && (W->dtype == TDM_F32 || W->dtype == TDM_F16 || W->dtype == TDM_BF16))
        return linear_packed(ex, x, M, K, N, W, bias, y);
    linear_job L = {x, M, K, N, W, NULL, y, 0, 0, 0, 0, {NULL, 0}, 0};
    tdm_linear_blocks(M, N, &L.bm, &L.bn);
    L.n_mb = (M + L.bm - 1) / L.bm;
    L.units = L.n_mb * ((N + L.bn - 1) / L.bn);
    int nth = L.units == 1 ? 1 : tdm_exec_threads(ex);
    float *bf = NULL; /* [N] widened bias */
    if (bias) {
        bf = malloc((size_t)N * sizeof(float));
        if (!bf) return TDM_ERR_NOMEM;
        tdm_ops_widen(bias, 0, N, bf);
        L.bias = bf;
    }
    if (W->dtype != TDM_F32 && tdm_scratch_alloc(&L.scratch, nth, L.bn * K) != TDM_OK) {
        free(bf);
        return TDM_ERR_NOMEM;
    }
    if (nth == 1)
        linear_task(&L, 0, 1);
    else
        tdm_pool_run(ex->pool, linear_task, &L);
    tdm_scratch_free(&L.scratch);
    free(bf);
    return TDM_OK;
}
