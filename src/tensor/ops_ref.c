/* Scalar reference kernels: plain loops, double accumulation, single-threaded. They define the
 * contracts in ops.h and are what the fast variants are tested against (tests/test_ops.c). */
#include <math.h>
#include <stdlib.h>

#include "base/numeric.h"
#include "tensor/ops_internal.h"

tdm_code tdm_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (!tdm_gemm_args_ok(trans_a, trans_b, M, N, K, lda, ldb, ldc)) return TDM_ERR_INVALID_ARG;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = trans_a ? A[k * lda + i] : A[i * lda + k];
                double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j]; /* beta 0: C not read (BLAS) */
            C[i * ldc + j] = (float)((double)alpha * s + c);
        }
    }
    return TDM_OK;
}

tdm_code tdm_linear_ref(const float *x, int64_t M, int64_t K, const tdm_tensor *W, const tdm_tensor *bias,
                        float *y) {
    if (!W || W->ndim != 2 || W->shape[1] != K || M < 0) return TDM_ERR_INVALID_ARG;
    int64_t N = W->shape[0];
    if (!tdm_ops_weight_ok(W, N * K) || !tdm_ops_opt_weight_ok(bias, N)) return TDM_ERR_INVALID_ARG;
    float *wrow = malloc((size_t)(K > 0 ? K : 1) * sizeof(float)); /* [K] one widened row of W */
    if (!wrow) return TDM_ERR_NOMEM;
    for (int64_t n = 0; n < N; n++) {
        tdm_ops_widen(W, n * K, K, wrow);
        double b = tdm_ops_weight_at(bias, n, 0.0f);
        for (int64_t m = 0; m < M; m++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)x[m * K + k] * wrow[k];
            y[m * N + n] = (float)(s + b);
        }
    }
    free(wrow);
    return TDM_OK;
}

tdm_code tdm_conv2d_ref(const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W, const tdm_tensor *weight,
                        const tdm_tensor *bias, int stride, int pad, float *y) {
    if (!weight || weight->ndim != 4 || weight->shape[1] != Cin || stride < 1 || pad < 0) return TDM_ERR_INVALID_ARG;
    int64_t Cout = weight->shape[0], kh = weight->shape[2], kw = weight->shape[3];
    if (kh < 1 || kw < 1 || H + 2 * pad < kh || W + 2 * pad < kw) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_weight_ok(weight, Cout * Cin * kh * kw) || !tdm_ops_opt_weight_ok(bias, Cout))
        return TDM_ERR_INVALID_ARG;
    int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    int64_t K = Cin * kh * kw;
    float *wf = malloc((size_t)(K > 0 ? K : 1) * sizeof(float)); /* [Cin, kh, kw] one output channel */
    if (!wf) return TDM_ERR_NOMEM;
    for (int64_t co = 0; co < Cout; co++) {
        tdm_ops_widen(weight, co * K, K, wf);
        double b = tdm_ops_weight_at(bias, co, 0.0f);
        for (int64_t n = 0; n < N; n++) {
            for (int64_t oy = 0; oy < Ho; oy++) {
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double s = b;
                    for (int64_t ci = 0; ci < Cin; ci++) {
                        const float *xc = x + (n * Cin + ci) * H * W;
                        for (int64_t ky = 0; ky < kh; ky++) {
                            int64_t iy = oy * stride - pad + ky;
                            if (iy < 0 || iy >= H) continue;
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t ix = ox * stride - pad + kx;
                                if (ix < 0 || ix >= W) continue;
                                s += (double)xc[iy * W + ix] * wf[(ci * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y[((n * Cout + co) * Ho + oy) * Wo + ox] = (float)s;
                }
            }
        }
    }
    free(wf);
    return TDM_OK;
}

tdm_code tdm_group_norm_ref(const float *x, int64_t N, int64_t C, int64_t HW, int groups, float eps,
                            const tdm_tensor *gamma, const tdm_tensor *beta, int silu, float *y) {
    if (groups < 1 || C % groups != 0 || N < 0 || HW < 0) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_opt_weight_ok(gamma, C) || !tdm_ops_opt_weight_ok(beta, C)) return TDM_ERR_INVALID_ARG;
    int64_t cg = C / groups, cnt = cg * HW;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + (n * C + g * cg) * HW;
            float *yg = y + (n * C + g * cg) * HW;
            double mean = 0, var = 0; /* torch: biased variance, eps inside the sqrt */
            for (int64_t i = 0; i < cnt; i++) mean += xg[i];
            mean = cnt ? mean / (double)cnt : 0;
            for (int64_t i = 0; i < cnt; i++) var += ((double)xg[i] - mean) * ((double)xg[i] - mean);
            var = cnt ? var / (double)cnt : 0;
            double rstd = 1.0 / sqrt(var + (double)eps);
            for (int64_t c = 0; c < cg; c++) {
                double ga = tdm_ops_weight_at(gamma, g * cg + c, 1.0f), be = tdm_ops_weight_at(beta, g * cg + c, 0.0f);
                for (int64_t i = 0; i < HW; i++) {
                    double v = ((double)xg[c * HW + i] - mean) * rstd * ga + be;
                    if (silu) v = v / (1.0 + exp(-v));
                    yg[c * HW + i] = (float)v;
                }
            }
        }
    }
    return TDM_OK;
}

tdm_code tdm_layer_norm_ref(const float *x, int64_t M, int64_t C, float eps, const tdm_tensor *gamma,
                            const tdm_tensor *beta, float *y) {
    if (M < 0 || C < 1) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_opt_weight_ok(gamma, C) || !tdm_ops_opt_weight_ok(beta, C)) return TDM_ERR_INVALID_ARG;
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * C;
        float *yr = y + m * C;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < C; c++) mean += xr[c];
        mean /= (double)C;
        for (int64_t c = 0; c < C; c++) var += ((double)xr[c] - mean) * ((double)xr[c] - mean);
        var /= (double)C;
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int64_t c = 0; c < C; c++)
            yr[c] = (float)(((double)xr[c] - mean) * rstd * tdm_ops_weight_at(gamma, c, 1.0f) +
                            tdm_ops_weight_at(beta, c, 0.0f));
    }
    return TDM_OK;
}

tdm_code tdm_attention_ref(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                           int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, float scale, int causal,
                           const float *mask_add, float *out) {
    if (B < 0 || H < 1 || Lq < 0 || Lk < 1 || D < 1 || ldq < H * D || ldk < H * D || ldv < H * D)
        return TDM_ERR_INVALID_ARG;
    double *s = malloc((size_t)Lk * sizeof(double)); /* [Lk] scores of one query row */
    if (!s) return TDM_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < Lq; i++) {
                const float *qi = q + (b * Lq + i) * ldq + h * D;
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; j++) {
                    if (causal && j > i) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const float *kj = k + (b * Lk + j) * ldk + h * D;
                    double d = 0;
                    for (int64_t e = 0; e < D; e++) d += (double)qi[e] * kj[e];
                    s[j] = d * scale + (mask_add ? mask_add[b * Lk + j] : 0.0f);
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < Lk; j++) {
                    s[j] = mx == -INFINITY ? 0.0 : exp(s[j] - mx); /* fully masked row: output 0 */
                    sum += s[j];
                }
                float *o = out + (b * Lq + i) * H * D + h * D;
                for (int64_t e = 0; e < D; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; j++)
                        if (s[j] != 0.0) acc += s[j] * v[(b * Lk + j) * ldv + h * D + e];
                    o[e] = sum > 0 ? (float)(acc / sum) : 0.0f;
                }
            }
        }
    }
    free(s);
    return TDM_OK;
}

static double act_ref(tdm_act act, double v) {
    switch (act) {
    case TDM_ACT_SILU: return v / (1.0 + exp(-v));
    case TDM_ACT_GELU: return 0.5 * v * erfc(-v * 0.70710678118654752440); /* x Phi(x) */
    case TDM_ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));
    case TDM_ACT_QUICK_GELU: return v / (1.0 + exp(-1.702 * v));
    }
    return v;
}

void tdm_activation_ref(tdm_act act, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)act_ref(act, x[i]);
}

void tdm_geglu_ref(const float *in, int64_t M, int64_t F, float *out) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t f = 0; f < F; f++)
            out[m * F + f] = (float)(in[m * 2 * F + f] * act_ref(TDM_ACT_GELU, in[m * 2 * F + F + f]));
}

/* ---- H5: GEMM with dtype'd operands --------------------------------------------------------------- */

static double gemm_operand_at(const tdm_gemm_operand *X, int64_t i, int64_t j) {
    int64_t idx = i * X->rs + j * X->cs;
    switch (X->dtype) {
    case TDM_F16: return tdm_f16_to_f32(((const uint16_t *)X->data)[idx]);
    case TDM_BF16: return tdm_bf16_to_f32(((const uint16_t *)X->data)[idx]);
    default: return ((const float *)X->data)[idx];
    }
}

tdm_code tdm_gemm_mixed_ref(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                            const tdm_gemm_operand *B, float beta, float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0 || !A || !B || ldc < (N > 1 ? N : 1)) return TDM_ERR_INVALID_ARG;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += gemm_operand_at(A, i, k) * gemm_operand_at(B, k, j);
            double c = beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j]; /* beta 0: C not read */
            C[i * ldc + j] = (float)((double)alpha * s + c);
        }
    return TDM_OK;
}
