/* Vectorised element-wise kernels (see ops_vec.h). The AVX2 path is chosen at run time; tails go
 * through the same vector code with masked loads/stores, so an element's value never depends on
 * its position. Formulas:
 *   exp: Cephes expf (x = n ln2 + r, ln2 split in two parts, degree-6 polynomial), ~1-2 ulp;
 *        x < -87.3 gives 0, x > 88 gives +inf.
 *   silu(x) = x / (1 + exp(-x)); quick_gelu(x) = x / (1 + exp(-1.702 x));
 *   gelu_tanh(x) = 0.5x(1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi)(x + 0.044715 x^3);
 *   gelu(x) = x Phi(x), Phi(x) = 1 - h (x >= 0) or h (x < 0), h = erfc(|x|/sqrt2)/2 with the
 *        Chebyshev erfc of Numerical Recipes (erfcc, fractional error < 1.2e-7), which keeps the
 *        negative tail accurate (no 1 + erf cancellation). */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/numeric.h"
#include "tensor/ops_vec.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VEC_X86 1
#endif

/* ---- scalar versions (CPUs without AVX2) -------------------------------------------------------- */

static float s_gelu(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

static float s_act(tdm_act act, float v) {
    switch (act) {
    case TDM_ACT_SILU: return v / (1.0f + expf(-v));
    case TDM_ACT_GELU: return s_gelu(v);
    case TDM_ACT_GELU_TANH: {
        float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
        return v / (1.0f + expf(-2.0f * u));
    }
    case TDM_ACT_QUICK_GELU: return v / (1.0f + expf(-1.702f * v));
    }
    return v;
}

#ifdef VEC_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 v_exp(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.0f);
    __m256 dead = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); /* NaN passes through (second operand) */
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), big);
    return _mm256_andnot_ps(dead, y);
}

/* x / (1 + exp(-k)) */
AVX2 static inline __m256 v_xsig(__m256 x, __m256 k) {
    __m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), k));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static inline __m256 v_gelu(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.70710678118654752f));
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 h = _mm256_mul_ps(_mm256_mul_ps(t, _mm256_set1_ps(0.5f)), v_exp(_mm256_fnmadd_ps(z, z, p)));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), h), h, neg);
    return _mm256_mul_ps(x, phi);
}

AVX2 static inline __m256 v_act(tdm_act act, __m256 x) {
    switch (act) {
    case TDM_ACT_SILU: return v_xsig(x, x);
    case TDM_ACT_GELU: return v_gelu(x);
    case TDM_ACT_GELU_TANH: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        __m256 u = _mm256_mul_ps(_mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x), _mm256_set1_ps(0.79788456080286536f));
        return v_xsig(x, _mm256_add_ps(u, u));
    }
    case TDM_ACT_QUICK_GELU: return v_xsig(x, _mm256_mul_ps(x, _mm256_set1_ps(1.702f)));
    }
    return x;
}

/* lanes < rem active */
AVX2 static inline __m256i v_tail_mask(int64_t rem) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static void act_avx2(tdm_act act, float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, v_act(act, _mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = v_tail_mask(n - i);
        _mm256_maskstore_ps(x + i, m, v_act(act, _mm256_maskload_ps(x + i, m)));
    }
}

AVX2 static void geglu_avx2(const float *a, const float *g, float *o, int64_t F) {
    int64_t i = 0;
    for (; i + 8 <= F; i += 8)
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), v_gelu(_mm256_loadu_ps(g + i))));
    if (i < F) {
        __m256i m = v_tail_mask(F - i);
        _mm256_maskstore_ps(o + i, m, _mm256_mul_ps(_mm256_maskload_ps(a + i, m), v_gelu(_mm256_maskload_ps(g + i, m))));
    }
}

AVX2 static void affine_avx2(const float *x, float *y, int64_t n, float c, float a, float b, int silu) {
    __m256 vc = _mm256_set1_ps(c), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vc), va, vb);
        _mm256_storeu_ps(y + i, silu ? v_xsig(v, v) : v);
    }
    if (i < n) {
        __m256i m = v_tail_mask(n - i);
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vc), va, vb);
        _mm256_maskstore_ps(y + i, m, silu ? v_xsig(v, v) : v);
    }
}

enum { SUM_CHUNK = 256 }; /* floats per float-lane partial sum before adding into double */

AVX2 static double hsum_d(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return (((double)t[0] + t[1]) + ((double)t[2] + t[3])) + (((double)t[4] + t[5]) + ((double)t[6] + t[7]));
}

AVX2 static double sum_avx2(const float *x, int64_t n, int dev, float c) {
    double total = 0;
    __m256 vc = _mm256_set1_ps(c);
    for (int64_t i0 = 0; i0 < n; i0 += SUM_CHUNK) {
        int64_t i1 = n - i0 < SUM_CHUNK ? n : i0 + SUM_CHUNK, i = i0;
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= i1; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            v = _mm256_sub_ps(v, vc);
            acc = dev ? _mm256_fmadd_ps(v, v, acc) : _mm256_add_ps(acc, v);
        }
        if (i < i1) {
            __m256i m = v_tail_mask(i1 - i);
            __m256 v = _mm256_maskload_ps(x + i, m);
            v = _mm256_and_ps(_mm256_sub_ps(v, vc), _mm256_castsi256_ps(m));
            acc = dev ? _mm256_fmadd_ps(v, v, acc) : _mm256_add_ps(acc, v);
        }
        total += hsum_d(acc);
    }
    return total;
}

AVX2 static void softmax_avx2(float *S, int64_t rows, int64_t cols, int64_t ld) {
    int64_t full = cols / 8 * 8;
    __m256i mt = v_tail_mask(cols - full);
    for (int64_t r = 0; r < rows; r++) {
        float *x = S + r * ld;
        __m256 vm = _mm256_set1_ps(-INFINITY);
        for (int64_t c = 0; c < full; c += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + c));
        if (full < cols)
            vm = _mm256_max_ps(vm, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x + full, mt),
                                                    _mm256_castsi256_ps(mt)));
        float m8[8], mx = -INFINITY;
        _mm256_storeu_ps(m8, vm);
        for (int i = 0; i < 8; i++) mx = m8[i] > mx ? m8[i] : mx;
        if (mx == -INFINITY) { /* every key masked: zeros rather than NaN */
            memset(x, 0, (size_t)cols * sizeof(float));
            continue;
        }
        __m256 vmx = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
        for (int64_t c = 0; c < full; c += 8) {
            __m256 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + c), vmx));
            _mm256_storeu_ps(x + c, e);
            vs = _mm256_add_ps(vs, e);
        }
        if (full < cols) {
            __m256 e = _mm256_and_ps(v_exp(_mm256_sub_ps(_mm256_maskload_ps(x + full, mt), vmx)), _mm256_castsi256_ps(mt));
            _mm256_maskstore_ps(x + full, mt, e);
            vs = _mm256_add_ps(vs, e);
        }
        __m256 vinv = _mm256_set1_ps((float)(1.0 / hsum_d(vs)));
        for (int64_t c = 0; c < full; c += 8) _mm256_storeu_ps(x + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), vinv));
        if (full < cols) _mm256_maskstore_ps(x + full, mt, _mm256_mul_ps(_mm256_maskload_ps(x + full, mt), vinv));
    }
}
#endif /* VEC_X86 */

static int use_avx2(void) {
#ifdef VEC_X86
    static atomic_int has = -1;
    int h = atomic_load_explicit(&has, memory_order_relaxed);
    if (h < 0) {
        tdm_cpu_features f = tdm_cpu_detect();
        h = f.avx2 && f.fma;
        atomic_store_explicit(&has, h, memory_order_relaxed);
    }
    return h;
#else
    return 0;
#endif
}

/* ---- dispatch ----------------------------------------------------------------------------------- */

void tdm_vec_act(tdm_act act, float *x, int64_t n) {
#ifdef VEC_X86
    if (use_avx2()) {
        act_avx2(act, x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) x[i] = s_act(act, x[i]);
}

void tdm_vec_geglu(const float *a, const float *g, float *o, int64_t F) {
#ifdef VEC_X86
    if (use_avx2()) {
        geglu_avx2(a, g, o, F);
        return;
    }
#endif
    for (int64_t i = 0; i < F; i++) o[i] = a[i] * s_gelu(g[i]);
}

void tdm_vec_affine(const float *x, float *y, int64_t n, float c, float a, float b, int silu) {
#ifdef VEC_X86
    if (use_avx2()) {
        affine_avx2(x, y, n, c, a, b, silu);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - c) * a + b;
        y[i] = silu ? s_act(TDM_ACT_SILU, v) : v;
    }
}

double tdm_vec_sum_dev(const float *x, int64_t n, float c) {
#ifdef VEC_X86
    if (use_avx2()) return sum_avx2(x, n, 0, c);
#endif
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] - c;
    return s;
}

double tdm_vec_sumsq_dev(const float *x, int64_t n, float c) {
#ifdef VEC_X86
    if (use_avx2()) return sum_avx2(x, n, 1, c);
#endif
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)x[i] - c) * ((double)x[i] - c);
    return s;
}

void tdm_vec_moments(const float *x, int64_t n, double *mean, double *var) {
    float x0 = x[0]; /* shift: partial sums of x - x0 stay small when |mean| >> std */
    double m = x0 + tdm_vec_sum_dev(x, n, x0) / (double)n;
    float c = (float)m;
    double v = tdm_vec_sumsq_dev(x, n, c) / (double)n - (m - c) * (m - c);
    *mean = m;
    *var = v > 0 ? v : 0;
}

void tdm_vec_softmax_rows(float *S, int64_t rows, int64_t cols, int64_t ld) {
#ifdef VEC_X86
    if (use_avx2()) {
        softmax_avx2(S, rows, cols, ld);
        return;
    }
#endif
    for (int64_t r = 0; r < rows; r++) {
        float *x = S + r * ld;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mx = x[c] > mx ? x[c] : mx;
        if (mx == -INFINITY) {
            memset(x, 0, (size_t)cols * sizeof(float));
            continue;
        }
        double sum = 0;
        for (int64_t c = 0; c < cols; c++) {
            x[c] = expf(x[c] - mx);
            sum += x[c];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t c = 0; c < cols; c++) x[c] *= inv;
    }
}
