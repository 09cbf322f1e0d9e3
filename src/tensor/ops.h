/* Operators on f32 activations. Layouts: images NCHW contiguous; token sequences [B, L, C] row-major.
 * Weights are tdm_tensor views in their stored dtype (F32, F16 or BF16) and are widened while packed,
 * never copied whole to f32. Every operator has a scalar reference (ops_ref.c) next to its fast
 * variant; tdm_exec.reference = 1 selects the references (tests compare the two).
 * Work is split into fixed-size blocks over the thread pool so results do not depend on the
 * thread count. Operators return TDM_ERR_NOMEM when scratch memory cannot be had. */
#ifndef TDM_TENSOR_OPS_H
#define TDM_TENSOR_OPS_H

#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "tensor/tensor.h"

typedef struct tdm_exec {
    tdm_pool *pool; /* NULL: single-threaded */
    int reference;  /* 1: use the scalar reference kernels */
} tdm_exec;

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major f32; op(X) = X or X^T (trans flags).
 * lda/ldb/ldc are row strides of A, B, C as stored. */
tdm_code tdm_gemm(const tdm_exec *ex, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* y[M,N] = x[M,K] W^T + b; W [N,K] (torch Linear layout) any float dtype; bias [N] or NULL. */
tdm_code tdm_linear(const tdm_exec *ex, const float *x, int64_t M, int64_t K, const tdm_tensor *W,
                    const tdm_tensor *bias, float *y);

/* 2-D convolution, NCHW. W [Cout, Cin, kh, kw]; bias [Cout] or NULL; symmetric zero padding.
 * y [N, Cout, Ho, Wo], Ho = (H + 2 pad - kh) / stride + 1. */
tdm_code tdm_conv2d(const tdm_exec *ex, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                    const tdm_tensor *weight, const tdm_tensor *bias, int stride, int pad, float *y);

/* Group norm over (C/groups) x HW per sample; gamma, beta [C]; then SiLU when silu != 0. y may be x. */
tdm_code tdm_group_norm(const tdm_exec *ex, const float *x, int64_t N, int64_t C, int64_t HW, int groups,
                        float eps, const tdm_tensor *gamma, const tdm_tensor *beta, int silu, float *y);

/* Layer norm over the last dim C of x [M, C]; gamma, beta [C] (beta may be NULL). y may be x. */
tdm_code tdm_layer_norm(const tdm_exec *ex, const float *x, int64_t M, int64_t C, float eps,
                        const tdm_tensor *gamma, const tdm_tensor *beta, float *y);

/* In-place activations over n values.
 * silu(x) = x sigmoid(x); gelu(x) = x Phi(x) (erf); gelu_tanh(x) = 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)));
 * quick_gelu(x) = x sigmoid(1.702 x) (CLIP). */
void tdm_silu(float *x, int64_t n);
void tdm_gelu(float *x, int64_t n);
void tdm_gelu_tanh(float *x, int64_t n);
void tdm_quick_gelu(float *x, int64_t n);

/* GEGLU (diffusers GEGLU): in [M, 2F] = [a | g] -> out [M, F] = a * gelu(g). */
void tdm_geglu(const float *in, int64_t M, int64_t F, float *out);

/* Row softmax in place, x [rows, cols], max-subtracted. */
void tdm_softmax_rows(float *x, int64_t rows, int64_t cols);

/* Nearest-neighbour 2x upsampling: x [N, C, H, W] -> y [N, C, 2H, 2W]. */
void tdm_upsample_nearest2x(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, float *y);

/* Multi-head attention, softmax(scale q k^T + mask) v, per batch b and head h.
 * q: [B, Lq, *] with row stride ldq, head h at columns h*D..h*D+D-1 (same for k, v with ldk, ldv over Lk);
 * out: [B, Lq, H*D] contiguous. causal: key j > query i is masked (CLIP text).
 * mask_add: [B, Lk] additive key mask or NULL. The score matrix is processed in bounded query tiles
 * (never Lq x Lk at once). */
tdm_code tdm_attention(const tdm_exec *ex, const float *q, int64_t ldq, const float *k, int64_t ldk,
                       const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                       float scale, int causal, const float *mask_add, float *out);

/* Reference kernels (scalar, single-threaded), same contracts. */
tdm_code tdm_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
tdm_code tdm_linear_ref(const float *x, int64_t M, int64_t K, const tdm_tensor *W, const tdm_tensor *bias, float *y);
tdm_code tdm_conv2d_ref(const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W, const tdm_tensor *weight,
                        const tdm_tensor *bias, int stride, int pad, float *y);
tdm_code tdm_group_norm_ref(const float *x, int64_t N, int64_t C, int64_t HW, int groups, float eps,
                            const tdm_tensor *gamma, const tdm_tensor *beta, int silu, float *y);
tdm_code tdm_layer_norm_ref(const float *x, int64_t M, int64_t C, float eps, const tdm_tensor *gamma,
                            const tdm_tensor *beta, float *y);
tdm_code tdm_attention_ref(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale, int causal,
                           const float *mask_add, float *out);

/* ---- Additions (ops helper): pooled element-wise operators --------------------------------------- */

typedef enum tdm_act { TDM_ACT_SILU = 0, TDM_ACT_GELU, TDM_ACT_GELU_TANH, TDM_ACT_QUICK_GELU } tdm_act;

/* In-place activation over n values, split over ex->pool (ex may be NULL); the same values as
 * tdm_silu / tdm_gelu / tdm_gelu_tanh / tdm_quick_gelu. */
void tdm_activation(const tdm_exec *ex, tdm_act act, float *x, int64_t n);
/* tdm_geglu split over ex->pool by rows (same values). */
void tdm_geglu_ex(const tdm_exec *ex, const float *in, int64_t M, int64_t F, float *out);
/* Scalar references in double (used when ex->reference is set, and by the tests). */
void tdm_activation_ref(tdm_act act, float *x, int64_t n);
void tdm_geglu_ref(const float *in, int64_t M, int64_t F, float *out);

/* ---- Additions (performance): Winograd convolution and the convolution algorithm choice ---------- */

/* 3x3 stride-1 convolution by Winograd F(m x m, 3 x 3), m = 2 or 4; same contract as tdm_conv2d for a
 * [Cout, Cin, 3, 3] weight with symmetric zero padding pad (ops_winograd.c states the error bound). */
tdm_code tdm_conv2d_winograd(const tdm_exec *ex, int m, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                             const tdm_tensor *weight, const tdm_tensor *bias, int pad, float *y);

/* Algorithm tdm_conv2d uses for 3x3 stride-1 convolutions. AUTO picks by shape (docs/PERFORMANCE.md).
 * Process-wide; the initial value comes from $TDM_CONV (auto, im2col, wino2, wino4), else AUTO. */
typedef enum tdm_conv_algo { TDM_CONV_AUTO = 0, TDM_CONV_IM2COL, TDM_CONV_WINO2, TDM_CONV_WINO4 } tdm_conv_algo;
void tdm_conv_set_algo(tdm_conv_algo algo);
tdm_conv_algo tdm_conv_get_algo(void);
/* The algorithm tdm_conv2d runs for these shapes (resolves AUTO; IM2COL for non-3x3 / strided). */
tdm_conv_algo tdm_conv_pick(int64_t N, int64_t Cin, int64_t Cout, int64_t kh, int64_t kw, int stride, int64_t Ho,
                            int64_t Wo);


/* ---- Additions (performance): group norm fused into the next convolution -------------------------- */

/* tdm_group_norm's per-channel affine without applying it: cab [N, C, 3] = (c, a, b) such that
 * y = (x - c) a + b (then SiLU) is exactly what tdm_group_norm writes (same float operations; the
 * statistics are always those of the fast path, also when ex->reference is set). */
tdm_code tdm_group_norm_coeffs(const tdm_exec *ex, const float *x, int64_t N, int64_t C, int64_t HW, int groups,
                               float eps, const tdm_tensor *gamma, const tdm_tensor *beta, float *cab);

/* What tdm_conv2d_pre applies to its input before convolving: x' = silu?((up(x) - c) a + b). */
typedef struct tdm_conv_pre {
    const float *cab; /* [N, Cin, 3] from tdm_group_norm_coeffs, or NULL (no affine) */
    int silu;         /* with cab: SiLU after the affine (GroupNorm + SiLU) */
    int upsample2x;   /* x is [N, Cin, H/2, W/2], read as its nearest-neighbour 2x upsampling */
} tdm_conv_pre;

/* tdm_conv2d of x' (H, W: the size x' has, even when upsample2x). The result is bit-identical to
 * materialising x' (tdm_group_norm / tdm_upsample_nearest2x) and calling tdm_conv2d; the Winograd path
 * applies pre while loading input rows (no full-size x' buffer); other paths materialise x'. */
tdm_code tdm_conv2d_pre(const tdm_exec *ex, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                        const tdm_tensor *weight, const tdm_tensor *bias, int stride, int pad, const tdm_conv_pre *pre,
                        float *y);
/* y[i] += x[i], i < n, split over ex->pool in fixed blocks (ex may be NULL). */
void tdm_add_ex(const tdm_exec *ex, float *y, const float *x, int64_t n);

/* One row of x': dst[0..W) for sample n, channel ci from the source row src (W/2 values when upsample2x). */
void tdm_conv_pre_apply(const tdm_conv_pre *pre, int64_t n, int64_t ci, int64_t Cin, const float *src, int64_t W,
                        float *dst);


/* ---- Additions (H5, performance): GEMM with operands in their stored dtype -------------------------- */

/* A matrix operand: element (i, j) at ((dtype *)data)[i * rs + j * cs], dtype F32, F16 or BF16. */
typedef struct tdm_gemm_operand {
    const void *data;
    tdm_dtype dtype;
    int64_t rs, cs;
} tdm_gemm_operand;

/* C[M,N] = alpha A[M,K] B[K,N] + beta C (beta 0: C not read), C row-major with row stride ldc. F16 / BF16
 * operands are widened to f32 while packed into cache-sized panels (no f32 copy of a whole operand);
 * packed AVX2/FMA micro-kernel (portable kernel otherwise, same results), split over ex->pool in blocks
 * fixed by the shapes: identical results on any thread count (ops_gemm_packed.c). */
tdm_code tdm_gemm_mixed(const tdm_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                        const tdm_gemm_operand *B, float beta, float *C, int64_t ldc);
/* Scalar reference (double accumulation), same contract. */
tdm_code tdm_gemm_mixed_ref(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                            const tdm_gemm_operand *B, float beta, float *C, int64_t ldc);

/* ---- Additions (H7, performance): reusable per-thread scratch ---------------------------------------- */

/* The convolutions keep their scratch (Winograd tiles, im2col columns, widened weight blocks) in buffers
 * of the calling thread that grow and are reused by later calls, so steady-state calls allocate nothing
 * and cause no page faults. These are freed when the thread exits; tdm_ops_scratch_release frees the
 * calling thread's buffers now (e.g. after a generation, to return the memory). */
#include <stddef.h>
void tdm_ops_scratch_release(void);
/* Bytes of scratch the calling thread holds now. */
size_t tdm_ops_scratch_bytes(void);

#endif
