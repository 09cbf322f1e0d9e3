/* Helpers shared by the operator files (ops*.c); not part of the public operator API.
 * Weight access (validation, widening F16/BF16 slices to f32), the single-threaded GEMM backend
 * and per-thread scratch. */
#ifndef TDM_TENSOR_OPS_INTERNAL_H
#define TDM_TENSOR_OPS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "tensor/ops.h"

/* 1 when t is a contiguous F32/F16/BF16 tensor with numel elements (t NULL: 0). */
int tdm_ops_weight_ok(const tdm_tensor *t, int64_t numel);
/* Same, and NULL is accepted (optional bias/beta). */
int tdm_ops_opt_weight_ok(const tdm_tensor *t, int64_t numel);
/* dst[0..n) = t's flat elements [off, off+n) widened to f32 (t contiguous F32/F16/BF16). */
void tdm_ops_widen(const tdm_tensor *t, int64_t off, int64_t n, float *dst);
/* Flat element i as f32; t NULL gives dflt. */
float tdm_ops_weight_at(const tdm_tensor *t, int64_t i, float dflt);

/* Process-wide backend switches ($TDM_LINEAR, $TDM_CONV, ...): *cache holds the choice, -1 until the
 * first call reads the environment variable var: the value of the first names[i] equal to it
 * (values[i]), else dflt (unset or unknown). Thread-safe; a setter simply stores into *cache. */
int tdm_ops_env_choice(atomic_int *cache, const char *var, const char *const names[], const int values[], int n,
                       int dflt);

/* Single-threaded SGEMM backend (row-major, same contract as tdm_gemm, dimensions already
 * validated). The one place that calls BLAS; sets the BLAS library to 1 thread on first use.
 * Callers split work over the pool themselves. */
void tdm_sgemm_single(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* 1 when the dimensions fit the backend (BLAS int) and the leading dimensions are valid. */
int tdm_gemm_args_ok(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                     int64_t ldc);

/* Block sizes of tdm_linear's units for x [M, K] -> y [M, N] (functions of M and N only). */
void tdm_linear_blocks(int64_t M, int64_t N, int64_t *bm, int64_t *bn);

/* tdm_conv2d_winograd with an input pre-op (see tdm_conv2d_pre; pre may be NULL). */
tdm_code tdm_conv2d_winograd_pre(const tdm_exec *ex, int m, const float *x, int64_t N, int64_t Cin, int64_t H,
                                 int64_t W, const tdm_tensor *weight, const tdm_tensor *bias, int pad,
                                 const tdm_conv_pre *pre, float *y);

/* Per-thread scratch: nth buffers of `floats` floats each (64-byte aligned). */
typedef struct tdm_scratch {
    float **buf; /* [nth][floats] */
    int nth;
} tdm_scratch;
tdm_code tdm_scratch_alloc(tdm_scratch *s, int nth, int64_t floats);
void tdm_scratch_free(tdm_scratch *s);

/* Dynamic scheduling: pool threads take unit indices in turn from a shared counter (reset to 0
 * before each tdm_pool_run). Only which thread runs a unit varies, never the unit's arithmetic, so
 * results stay identical on any thread count while a slow or descheduled thread is covered. */
static inline int64_t tdm_take_unit(atomic_llong *next) {
    return (int64_t)atomic_fetch_add_explicit(next, 1, memory_order_relaxed);
}

static inline int tdm_exec_threads(const tdm_exec *ex) { return ex && ex->pool ? tdm_pool_size(ex->pool) : 1; }
static inline int tdm_exec_ref(const tdm_exec *ex) { return ex && ex->reference; }


/* ---- packed GEMM (ops_gemm_packed.c) ------------------------------------------------------------ */

/* Blocking of the packed GEMM: micro-tile MR x NR, KC of K per pass (fixes the summation order),
 * MC rows of A and up to NC columns of B packed at a time. */
#define TDM_GP_MR 6
#define TDM_GP_NR 16
#define TDM_GP_KC 256
#define TDM_GP_MC 120
#define TDM_GP_NC 1024

/* Workspace (floats, 64-byte aligned by the caller) of tdm_gemm_packed_single for N columns. */
int64_t tdm_gemm_packed_ws_floats(int64_t N);
/* Single-threaded C[M,N] = alpha A B + beta C (beta 0: C not read) with operands in their stored dtype,
 * widened while packed. Dimensions valid (not checked). Results do not depend on M / N blocking. */
void tdm_gemm_packed_single(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                            const tdm_gemm_operand *B, float beta, float *C, int64_t ldc, float *ws);
/* AVX-512 kernels (the packed GEMM's 12 x 32 micro-kernel, flash attention's 6 x 32 tiles) where the CPU
 * has AVX-512F: tdm_ops_avx512() says whether they run; on by default, $TDM_AVX512=0 turns them off at
 * start, tdm_ops_allow_avx512 at any time (benchmarks, tests: they give the AVX2 kernels' bits). */
int tdm_ops_avx512(void);
void tdm_ops_allow_avx512(int on);
/* Same with the portable micro-kernel forced (identical results; for tests). */
void tdm_gemm_packed_single_generic(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                                    const tdm_gemm_operand *B, float beta, float *C, int64_t ldc, float *ws);

/* C[M,N] = A B (C not read) from operands packed by the caller (H8, Winograd): Ap = ceil(M / MR) panels
 * [K][MR] (row panel p at Ap + p MR K, rows past M zero), Bp = ceil(N / NR) panels [K][NR] (column panel q
 * at Bp + q NR K). Exactly the arithmetic of tdm_gemm_packed_single with alpha 1, beta 0 (FMA chains per
 * KC block, blocks added in order), so results do not depend on M / N blocking. generic: force the
 * portable micro-kernel (identical results; tests). */
void tdm_gemm_prepacked_single(int64_t M, int64_t N, int64_t K, const float *Ap, const float *Bp, float *C, int64_t ldc,
                               int generic);

/* Winograd GEMM backend (H8, ops_winograd.c): BLAS = OpenBLAS sgemm on f32 U / V (the reference the
 * tests compare against); PACKED = the weight / input transforms write U / V in the packed panel layout
 * and tdm_gemm_prepacked_single runs the micro-kernel (no repacking); PACKED_GENERIC = the same with the
 * portable micro-kernel (tests). DEFAULT resolves to TDM_WINO_GEMM_DEFAULT_KIND. Process-wide; the
 * initial value comes from $TDM_WINO_GEMM (blas, packed), else DEFAULT. */
typedef enum tdm_wino_gemm {
    TDM_WINO_GEMM_DEFAULT = 0,
    TDM_WINO_GEMM_BLAS,
    TDM_WINO_GEMM_PACKED,
    TDM_WINO_GEMM_PACKED_GENERIC
} tdm_wino_gemm;
#define TDM_WINO_GEMM_DEFAULT_KIND TDM_WINO_GEMM_PACKED
void tdm_wino_set_gemm(tdm_wino_gemm g);
tdm_wino_gemm tdm_wino_get_gemm(void);

/* Linear backend (ops_gemm.c): BLAS = OpenBLAS sgemm on fixed blocks of the weight widened per block
 * (the reference the tests compare against); PACKED = tdm_gemm_mixed (f16 / bf16 weights widened while
 * packed, 6 x 16 micro-kernel; docs/PERFORMANCE.md history step 15). DEFAULT resolves to
 * TDM_LINEAR_GEMM_DEFAULT_KIND. Process-wide; the initial value comes from $TDM_LINEAR (blas, packed). */
typedef enum tdm_linear_gemm { TDM_LINEAR_GEMM_DEFAULT = 0, TDM_LINEAR_GEMM_BLAS, TDM_LINEAR_GEMM_PACKED } tdm_linear_gemm;
#define TDM_LINEAR_GEMM_DEFAULT_KIND TDM_LINEAR_GEMM_PACKED
void tdm_linear_set_gemm(tdm_linear_gemm g);
tdm_linear_gemm tdm_linear_get_gemm(void);

/* ---- per-thread reusable scratch (ops_workspace.c, H7) -------------------------------------------- */

#include "base/arena.h"

/* Slots of the calling thread's workspace: one per buffer that can be live at the same time
 * (tdm_conv2d_pre's materialised input stays live while tdm_conv2d runs on it). */
enum tdm_ops_ws_slot {
    TDM_WS_WINO_V = 0, /* Winograd transformed input tiles */
    TDM_WS_WINO_U,     /* Winograd transformed weights */
    TDM_WS_WINO_M,     /* Winograd GEMM outputs */
    TDM_WS_WINO_WT,    /* per pool thread: widened weights of the weight transform */
    TDM_WS_WINO_ROWS,  /* per pool thread: padded input rows */
    TDM_WS_BIAS,       /* widened bias (any convolution) */
    TDM_WS_CONV_COL,   /* im2col column tile */
    TDM_WS_CONV_W,     /* per pool thread: widened weight block of the im2col GEMM units */
    TDM_WS_CONV_PRE,   /* tdm_conv2d_pre's materialised input (other algorithms than Winograd) */
};
/* The calling thread's workspace (created empty on first use; its buffers are freed when the thread
 * exits or by tdm_ops_scratch_release). The ops fill it from the thread that calls them and hand its
 * buffers to the pool threads for the duration of the call. */
tdm_workspace *tdm_ops_workspace(void);
/* Per-thread slices of one slot: nth buffers of `floats` floats (rounded up to 64 bytes) at
 * base + ith * (*stride). NULL when out of memory. */
float *tdm_ops_ws_per_thread(int slot, int nth, int64_t floats, int64_t *stride);

/* ---- Additions (flash attention, ops_attention.c / ops_attention_flash.c) ------------------------- */

/* Workspace slots of the flash attention (after the convolutions' ones; see enum tdm_ops_ws_slot). */
enum {
    TDM_WS_ATT_KV = TDM_WS_CONV_PRE + 1, /* packed K^T / V panels of every (b, h) */
    TDM_WS_ATT_THREAD                     /* per pool thread: a unit's Q panels, scores, output, max, sum */
};

/* Attention kernel: TILED = OpenBLAS on [64, Lk] score tiles (ops_attention.c); FLASH = the flash-style
 * kernel (ops_attention_flash.c; AVX2 + FMA, else its portable path); FLASH_GENERIC = the flash kernel's
 * portable path (tests; same bits as FLASH). AUTO: tdm_attention_pick's rule. Process-wide; the initial
 * value comes from $TDM_ATTENTION (tiled, flash, flash-generic), else AUTO. */
typedef enum tdm_att_kernel { TDM_ATT_AUTO = 0, TDM_ATT_TILED, TDM_ATT_FLASH, TDM_ATT_FLASH_GENERIC } tdm_att_kernel;
void tdm_attention_set_kernel(tdm_att_kernel k);
tdm_att_kernel tdm_attention_get_kernel(void);
/* The kernel tdm_attention runs for these shapes (never AUTO; the rule is documented there). */
tdm_att_kernel tdm_attention_pick(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int causal,
                                  const float *mask_add);
/* 1 when the flash kernel's AVX2 + FMA path can run on this CPU. */
int tdm_attention_flash_avx2(void);
/* tdm_attention's contract with the flash kernel; generic: force its portable path. Scratch from the
 * calling thread's workspace (slots TDM_WS_ATT_*). */
tdm_code tdm_attention_flash(const tdm_exec *ex, const float *q, int64_t ldq, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                             float scale, int causal, const float *mask_add, float *out, int generic);

#endif
