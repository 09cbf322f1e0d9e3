/* Vectorised element-wise kernels (AVX2+FMA when the CPU has it, scalar otherwise), internal to
 * the operator files. Every output element is a pure function of its input element(s), whatever its
 * position (tails run through the same vector code), so any block split gives identical results. */
#ifndef TDM_TENSOR_OPS_VEC_H
#define TDM_TENSOR_OPS_VEC_H

#include <stdint.h>

#include "tensor/ops.h"

/* In place over n values. */
void tdm_vec_act(tdm_act act, float *x, int64_t n);
/* o[f] = a[f] * gelu(g[f]), f < F. */
void tdm_vec_geglu(const float *a, const float *g, float *o, int64_t F);
/* Row softmax in place, rows x cols with row stride ld; a row of all -inf gives zeros. */
void tdm_vec_softmax_rows(float *S, int64_t rows, int64_t cols, int64_t ld);
/* y[i] = (x[i] - c) * a + b, then SiLU when silu != 0. y may be x. */
void tdm_vec_affine(const float *x, float *y, int64_t n, float c, float a, float b, int silu);
/* sum of (x[i] - c) and sum of (x[i] - c)^2: float lanes over short chunks, accumulated in double
 * (a shift c near the mean keeps the float partial sums small). */
double tdm_vec_sum_dev(const float *x, int64_t n, float c);
double tdm_vec_sumsq_dev(const float *x, int64_t n, float c);
/* mean and biased variance of x[0..n), n > 0: shifted two-pass (see above); var >= 0. */
void tdm_vec_moments(const float *x, int64_t n, double *mean, double *var);

#endif
