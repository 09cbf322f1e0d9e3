/* Flash-style multi-head attention (Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact
 * Attention with IO-Awareness", Algorithm 1) on the CPU: the scores of a group of MR = 6 query rows
 * against a block of bc keys are made, exponentiated and multiplied into the output while they sit in L1;
 * neither the [Lq, Lk] matrix nor the tiled path's [64, Lk] one exists.
 *
 * Pack phase (once per call, units of (b, h, 256 keys)): K^T as panels of NR = 16 keys, kp [Lkp / 16][D][16]
 * (kp[p][d][jj] = k[p*16 + jj][d], zero past Lk); V as column panels, vp = [Dv / 16][Lkp][16] then one
 * [Lkp][8] panel when Dv % 16 == 8 (Dv = D rounded up to 8, zero padded); the mask (if any) in log2 units,
 * ml2 [B][Lkp] = mask log2(e) (a finite mask that overflows becomes -FLT_MAX, not -inf), -inf past Lk.
 * Attention units (b, h, tile of FA_QT = 96 query rows; fixed by the shapes, so the result does not depend
 * on the thread count): Q packed as [96 / MR][D][MR]; O [96][Dv] = 0, m = -inf, l = 0 per row; then for
 * each block of bc keys (Algorithm 1, lines 5-13; log2 domain, c = scale log2(e)), per row group:
 *   y[6][bc] = c (Q_g K_blk^T) (+ ml2)      6 x 16 register micro-kernel over D (FMA chain from 0); its
 *                                           epilogue scales, adds the mask, sets keys past the block to
 *                                           -inf and keeps the row maxima (8 lanes per row)
 *   causal: keys j > i set to -inf (the row's max then recomputed)
 *   m_new = max(m, max_j y_j);  alpha = 2^(m - m_new);  P_j = 2^(y_j - m_new);  l = alpha l + sum_j P_j
 *   O_g = alpha O_g + P V_blk               6 x 16 (6 x 8 for the last 8 columns) register micro-kernel
 * and out = O (1 / l) (l = 0, every key masked: 0, as tdm_attention_ref). A row whose max is -inf uses 0
 * in place of m_new (no -inf - -inf).
 * 2^t (t <= 0): n = round(t) (by adding 1.5 2^23), f = t - n exactly, 2^f by a degree-6 polynomial fitted
 * to relative error on [-1/2, 1/2] (7.9e-8 in float, ~1.3 ulp), times 2^n built in the exponent bits;
 * t < -125 gives 0 (so -inf gives exactly 0), NaN stays NaN.
 * The portable path does the same float operations in the same order (fmaf where the AVX2 code uses FMA;
 * row sums as 8 lane partials combined ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7))), so both give identical bits
 * (tests/test_ops_attention.c). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "tensor/ops_internal.h"
#include "tensor/simd_x86.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FA_X86 1
#define FA_AVX2 __attribute__((target("avx2,fma")))
#define FA_AVX512 __attribute__((target("avx512f")))
#else
#define FA_X86 0
#endif

enum {
    MR = 6,         /* query rows per micro-tile (row group) */
    QS = 8,         /* stride of a Q panel per d: [D][8], rows 6 and 7 unused (whole 8-float stores) */
    NR = 16,        /* keys per K panel, columns per V panel */
    FA_QT = 96,     /* query rows per unit (16 row groups) */
    PACK_KEYS = 256 /* keys per pack unit */
};

/* Keys per block: K and V blocks (2 bc D floats) about 64 KB, in L2 while the unit's 16 row groups pass
 * over them; a multiple of 16, 64..256 (D 40: 192, 64: 128, 80: 96, 160 and 512: 64). Measured (one
 * thread, docs/PERFORMANCE.md step 14): 64..256 within the noise at D 40 / 80; at D 160 / 512, 64 beat
 * 32 by 12% / 4% and 96..192 were no better. */
static int64_t flash_block_keys(int64_t D) {
    int64_t bc = 8192 / (D > 0 ? D : 1) / NR * NR;
    return bc < 64 ? 64 : bc > 256 ? 256 : bc;
}

static int64_t round_up(int64_t v, int64_t q) { return (v + q - 1) / q * q; }

/* ---- 2^t and the row statistics (both paths) ------------------------------------------------------ */

#define FA_T_LO (-125.0f)      /* below: 2^t is 0 */
#define FA_MAGIC 12582912.0f   /* 1.5 2^23: t + FA_MAGIC rounds t to an integer (half to even) */
#define FA_LOG2E 1.44269504088896341f
#define FA_C1 0.6931471824645996f /* 2^f ~ 1 + f (C1 + f (C2 + ... + f C6)), |f| <= 1/2 */
#define FA_C2 0.24022647738456726f
#define FA_C3 0.055503327399492264f
#define FA_C4 0.009618427604436874f
#define FA_C5 0.0013398815644904971f
#define FA_C6 0.00015356125368271023f

static float fa_exp2(float t) {
    if (t != t) return t;
    if (t < FA_T_LO) return 0.0f;
    float ym = t + FA_MAGIC, n = ym - FA_MAGIC, f = t - n;
    float p = fmaf(FA_C6, f, FA_C5);
    p = fmaf(p, f, FA_C4);
    p = fmaf(p, f, FA_C3);
    p = fmaf(p, f, FA_C2);
    p = fmaf(p, f, FA_C1);
    p = fmaf(p, f, 1.0f);
    union {
        uint32_t u;
        float f;
    } e = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return p * e.f;
}

/* ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)): the AVX2 horizontal sum's order */
static float lane_sum(const float a[8]) {
    float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
    return (t0 + t2) + (t1 + t3);
}

/* max of 8 lanes (exact: order does not matter) */
static float lane_max(const float a[8]) {
    float mx = a[0];
    for (int i = 1; i < 8; i++) mx = a[i] > mx ? a[i] : mx;
    return mx;
}

/* Row statistics before the exponentials, per row r of a group: cnt[r] valid keys of nbg (cnt < nbg:
 * causal; y[cnt..nbg) set to -inf and the max taken again over y[0..cnt)); rmx the epilogue's lane
 * maxima. Sets m_use[r] (m_new, or 0 when it is -inf) and t_alpha[r] = m_old - m_use (0 for a row
 * without keys: alpha 1), m[r] = m_new. */
static void group_max(float *y, int64_t ldS, const int64_t *cnt, int64_t nbg, const float *rmx, float *m,
                      float *m_use, float *t_alpha) {
    for (int r = 0; r < MR; r++) {
        if (cnt[r] <= 0) {
            m_use[r] = 0.0f, t_alpha[r] = 0.0f;
            continue;
        }
        float mx = lane_max(rmx + r * 8);
        if (cnt[r] < nbg) {
            float *yr = y + r * ldS;
            for (int64_t j = cnt[r]; j < nbg; j++) yr[j] = -INFINITY;
            mx = -INFINITY;
            for (int64_t j = 0; j < cnt[r]; j++) mx = yr[j] > mx ? yr[j] : mx;
        }
        float m_new = m[r] > mx ? m[r] : mx;
        m_use[r] = m_new == -INFINITY ? 0.0f : m_new;
        t_alpha[r] = m[r] - m_use[r];
        m[r] = m_new;
    }
}

/* ---- portable micro-kernels ---------------------------------------------------------------------- */

/* y[i][jj] (i < MR, jj < NR, row stride ldS) = c (sum_d qp[d][i] kp[d][jj]) (qp [D][QS]) (+ ml2[jj]), -inf for
 * jj >= nvalid; rmx[i][l] = max(max(y[i][l], y[i][l+8]), rmx[i][l]). The sum is an FMA chain over d. */
static void qk_tile_generic(int64_t D, const float *qp, const float *kp, float *y, int64_t ldS, float c,
                            const float *ml2, int64_t nvalid, float *rmx) {
    float acc[MR][NR] = {{0}};
    for (int64_t d = 0; d < D; d++, qp += QS, kp += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(qp[i], kp[j], acc[i][j]);
    for (int i = 0; i < MR; i++) {
        float *yi = y + i * ldS;
        for (int j = 0; j < NR; j++) {
            float v = ml2 ? fmaf(acc[i][j], c, ml2[j]) : acc[i][j] * c;
            yi[j] = j < nvalid ? v : -INFINITY;
        }
        for (int l = 0; l < 8; l++) {
            float t = yi[l] > yi[l + 8] ? yi[l] : yi[l + 8];
            rmx[i * 8 + l] = t > rmx[i * 8 + l] ? t : rmx[i * 8 + l];
        }
    }
}

/* Row r (cnt[r] > 0): y[0..n) = P = 2^(y - m_use), l = alpha l + sum P (8 lane partials); n a multiple of 16. */
static void group_exp_generic(float *y, int64_t ldS, const int64_t *cnt, int64_t n, const float *m_use,
                              const float *alpha, float *l) {
    for (int r = 0; r < MR; r++) {
        if (cnt[r] <= 0) continue;
        float *yr = y + r * ldS, part[8] = {0};
        for (int64_t j = 0; j < n; j++) {
            yr[j] = fa_exp2(yr[j] - m_use[r]);
            part[j % 8] += yr[j];
        }
        l[r] = l[r] * alpha[r] + lane_sum(part);
    }
}

/* O[i][c] (i < MR, c < w, row stride ldO) = alpha[i] O[i][c], then an FMA chain over j < n of
 * P[i][j] vp[j][c] (P row stride ldP; vp a [n][w] panel). w = 8: two chains, the even keys onto
 * alpha O and the odd ones from 0, added at the end (12 independent accumulators in the AVX2 kernel). */
static void pv_tile_generic(int64_t n, int w, const float *P, int64_t ldP, const float *vp, float *O, int64_t ldO,
                            const float *alpha) {
    for (int i = 0; i < MR; i++)
        for (int c = 0; c < w; c++) {
            float o = alpha[i] * O[i * ldO + c];
            if (w == 8) {
                float e = 0.0f;
                int64_t j = 0;
                for (; j + 2 <= n; j += 2) {
                    o = fmaf(P[i * ldP + j], vp[j * w + c], o);
                    e = fmaf(P[i * ldP + j + 1], vp[(j + 1) * w + c], e);
                }
                if (j < n) o = fmaf(P[i * ldP + j], vp[j * w + c], o);
                O[i * ldO + c] = o + e;
                continue;
            }
            for (int64_t j = 0; j < n; j++) o = fmaf(P[i * ldP + j], vp[j * w + c], o);
            O[i * ldO + c] = o;
        }
}

/* ---- AVX2 + FMA micro-kernels -------------------------------------------------------------------- */

#if FA_X86
/* fa_exp2 on 8 lanes */
FA_AVX2 static inline __m256 v_exp2(__m256 t) {
    const __m256 zero = _mm256_cmp_ps(t, _mm256_set1_ps(FA_T_LO), _CMP_LT_OQ);
    const __m256 tc = _mm256_max_ps(_mm256_set1_ps(FA_T_LO - 1.0f), t); /* NaN: t (second operand) */
    const __m256 ym = _mm256_add_ps(tc, _mm256_set1_ps(FA_MAGIC));
    const __m256 f = _mm256_sub_ps(tc, _mm256_sub_ps(ym, _mm256_set1_ps(FA_MAGIC)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(FA_C6), f, _mm256_set1_ps(FA_C5));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FA_C4));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FA_C3));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FA_C2));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(FA_C1));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    /* the low bits of ym hold n (two's complement, plus 0x400000 << 0 that the shift drops): (n + 127) << 23 */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(ym), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(zero, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

#define FA_FMA2(i)                                                                                         \
    do {                                                                                                   \
        const __m256 a_ = _mm256_broadcast_ss(qp + (i));                                                   \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);                                                        \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);                                                        \
    } while (0)
#define FA_QK_OUT(i, masked)                                                                               \
    do {                                                                                                   \
        __m256 y0 = (masked) ? _mm256_fmadd_ps(c##i##0, vc, mv0) : _mm256_mul_ps(c##i##0, vc);             \
        __m256 y1 = (masked) ? _mm256_fmadd_ps(c##i##1, vc, mv1) : _mm256_mul_ps(c##i##1, vc);             \
        if (nvalid < NR) {                                                                                 \
            y0 = _mm256_blendv_ps(ninf, y0, k0);                                                           \
            y1 = _mm256_blendv_ps(ninf, y1, k1);                                                           \
        }                                                                                                  \
        _mm256_storeu_ps(y + (i)*ldS, y0);                                                                 \
        _mm256_storeu_ps(y + (i)*ldS + 8, y1);                                                             \
        const __m256 t_ = _mm256_max_ps(y0, y1);                                                           \
        _mm256_storeu_ps(rmx + (i)*8, _mm256_max_ps(t_, _mm256_loadu_ps(rmx + (i)*8)));                    \
    } while (0)

/* qk_tile_generic with 12 register accumulators (2 K loads and 6 broadcasts per d). */
FA_AVX2 static void qk_tile_avx2(int64_t D, const float *qp, const float *kp, float *y, int64_t ldS, float c,
                                 const float *ml2, int64_t nvalid, float *rmx) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
    for (int64_t d = 0; d < D; d++, qp += QS, kp += NR) {
        const __m256 b0 = _mm256_loadu_ps(kp), b1 = _mm256_loadu_ps(kp + 8);
        FA_FMA2(0);
        FA_FMA2(1);
        FA_FMA2(2);
        FA_FMA2(3);
        FA_FMA2(4);
        FA_FMA2(5);
    }
    const __m256 vc = _mm256_set1_ps(c), ninf = _mm256_set1_ps(-INFINITY);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), nv = _mm256_set1_epi32((int)nvalid);
    const __m256 k0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, iota)); /* lanes jj < nvalid */
    const __m256 k1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, _mm256_add_epi32(iota, _mm256_set1_epi32(8))));
    if (ml2) {
        const __m256 mv0 = _mm256_loadu_ps(ml2), mv1 = _mm256_loadu_ps(ml2 + 8);
        FA_QK_OUT(0, 1);
        FA_QK_OUT(1, 1);
        FA_QK_OUT(2, 1);
        FA_QK_OUT(3, 1);
        FA_QK_OUT(4, 1);
        FA_QK_OUT(5, 1);
    } else {
        const __m256 mv0 = ninf, mv1 = ninf; /* unused */
        FA_QK_OUT(0, 0);
        FA_QK_OUT(1, 0);
        FA_QK_OUT(2, 0);
        FA_QK_OUT(3, 0);
        FA_QK_OUT(4, 0);
        FA_QK_OUT(5, 0);
    }
}
#undef FA_FMA2
#undef FA_QK_OUT

/* group_exp_generic with vectors. */
FA_AVX2 static void group_exp_avx2(float *y, int64_t ldS, const int64_t *cnt, int64_t n, const float *m_use,
                                   const float *alpha, float *l) {
    for (int r = 0; r < MR; r++) {
        if (cnt[r] <= 0) continue;
        float *yr = y + r * ldS;
        const __m256 vm = _mm256_set1_ps(m_use[r]);
        __m256 acc = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; j += 8) {
            const __m256 p = v_exp2(_mm256_sub_ps(_mm256_loadu_ps(yr + j), vm));
            _mm256_storeu_ps(yr + j, p);
            acc = _mm256_add_ps(acc, p);
        }
        float part[8];
        _mm256_storeu_ps(part, acc);
        l[r] = l[r] * alpha[r] + lane_sum(part);
    }
}

/* alpha[0..MR) = 2^t[0..MR) (t has 8 entries) */
FA_AVX2 static void alpha_avx2(const float *t, float *alpha) {
    float a[8];
    _mm256_storeu_ps(a, v_exp2(_mm256_loadu_ps(t)));
    memcpy(alpha, a, MR * sizeof(float));
}

#define FA_PV_LOAD(i)                                                                                      \
    __m256 c##i##0 = _mm256_mul_ps(_mm256_set1_ps(alpha[i]), _mm256_loadu_ps(O + (i)*ldO)),              \
           c##i##1 = _mm256_mul_ps(_mm256_set1_ps(alpha[i]), _mm256_loadu_ps(O + (i)*ldO + 8))
#define FA_PV_FMA(i)                                                                                       \
    do {                                                                                                   \
        const __m256 a_ = _mm256_broadcast_ss(P + (i)*ldP + j);                                            \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);                                                        \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);                                                        \
    } while (0)
#define FA_PV_STORE(i) _mm256_storeu_ps(O + (i)*ldO, c##i##0), _mm256_storeu_ps(O + (i)*ldO + 8, c##i##1)

/* pv_tile_generic for a 16-wide panel. */
FA_AVX2 static void pv_tile16_avx2(int64_t n, const float *P, int64_t ldP, const float *vp, float *O, int64_t ldO,
                                   const float *alpha) {
    FA_PV_LOAD(0);
    FA_PV_LOAD(1);
    FA_PV_LOAD(2);
    FA_PV_LOAD(3);
    FA_PV_LOAD(4);
    FA_PV_LOAD(5);
#pragma GCC unroll 4
    for (int64_t j = 0; j < n; j++, vp += 16) {
        const __m256 b0 = _mm256_loadu_ps(vp), b1 = _mm256_loadu_ps(vp + 8);
        FA_PV_FMA(0);
        FA_PV_FMA(1);
        FA_PV_FMA(2);
        FA_PV_FMA(3);
        FA_PV_FMA(4);
        FA_PV_FMA(5);
    }
    FA_PV_STORE(0);
    FA_PV_STORE(1);
    FA_PV_STORE(2);
    FA_PV_STORE(3);
    FA_PV_STORE(4);
    FA_PV_STORE(5);
}
#undef FA_PV_LOAD
#undef FA_PV_FMA
#undef FA_PV_STORE

/* pv_tile_generic for an 8-wide panel: even keys into c_i, odd keys into e_i (12 FMA chains: 6 would
 * leave the FMA units idle for their latency). */
#define FA_PV8(i)                                                                                          \
    do {                                                                                                   \
        c##i = _mm256_fmadd_ps(_mm256_broadcast_ss(P + (i)*ldP + j), b0, c##i);                            \
        e##i = _mm256_fmadd_ps(_mm256_broadcast_ss(P + (i)*ldP + j + 1), b1, e##i);                        \
    } while (0)
FA_AVX2 static void pv_tile8_avx2(int64_t n, const float *P, int64_t ldP, const float *vp, float *O, int64_t ldO,
                                  const float *alpha) {
    __m256 c0 = _mm256_mul_ps(_mm256_set1_ps(alpha[0]), _mm256_loadu_ps(O));
    __m256 c1 = _mm256_mul_ps(_mm256_set1_ps(alpha[1]), _mm256_loadu_ps(O + ldO));
    __m256 c2 = _mm256_mul_ps(_mm256_set1_ps(alpha[2]), _mm256_loadu_ps(O + 2 * ldO));
    __m256 c3 = _mm256_mul_ps(_mm256_set1_ps(alpha[3]), _mm256_loadu_ps(O + 3 * ldO));
    __m256 c4 = _mm256_mul_ps(_mm256_set1_ps(alpha[4]), _mm256_loadu_ps(O + 4 * ldO));
    __m256 c5 = _mm256_mul_ps(_mm256_set1_ps(alpha[5]), _mm256_loadu_ps(O + 5 * ldO));
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, e4 = e0, e5 = e0;
    int64_t j = 0;
#pragma GCC unroll 2
    for (; j + 2 <= n; j += 2, vp += 16) {
        const __m256 b0 = _mm256_loadu_ps(vp), b1 = _mm256_loadu_ps(vp + 8);
        FA_PV8(0);
        FA_PV8(1);
        FA_PV8(2);
        FA_PV8(3);
        FA_PV8(4);
        FA_PV8(5);
    }
    if (j < n) {
        const __m256 b = _mm256_loadu_ps(vp);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + j), b, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + ldP + j), b, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 2 * ldP + j), b, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 3 * ldP + j), b, c3);
        c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 4 * ldP + j), b, c4);
        c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(P + 5 * ldP + j), b, c5);
    }
    _mm256_storeu_ps(O, _mm256_add_ps(c0, e0)), _mm256_storeu_ps(O + ldO, _mm256_add_ps(c1, e1));
    _mm256_storeu_ps(O + 2 * ldO, _mm256_add_ps(c2, e2)), _mm256_storeu_ps(O + 3 * ldO, _mm256_add_ps(c3, e3));
    _mm256_storeu_ps(O + 4 * ldO, _mm256_add_ps(c4, e4)), _mm256_storeu_ps(O + 5 * ldO, _mm256_add_ps(c5, e5));
}
#undef FA_PV8

/* AVX-512: two 16-key K panels (qk) or two 16-column V panels (P v) per call, 12 zmm accumulators; per
 * element the same FMA chain and epilogue as the AVX2 tiles, so the same bits. */

/* qk_tile_avx2 over keys jp .. jp + 32 (K panels kp0, kp1); nvalid <= 32 valid keys. */
FA_AVX512 static void qk_tile2_avx512(int64_t D, const float *qp, const float *kp0, const float *kp1, float *y,
                                      int64_t ldS, float c, const float *ml2, int64_t nvalid, float *rmx) {
    __m512 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int64_t d = 0; d < D; d++, qp += QS) {
        const __m512 v0 = _mm512_loadu_ps(kp0 + d * NR), v1 = _mm512_loadu_ps(kp1 + d * NR);
        tdm_avx512_fma6x32(acc, qp, 1, v0, v1);
    }
    const __m512 vc = _mm512_set1_ps(c), ninf = _mm512_set1_ps(-INFINITY);
    const __mmask16 k0 = nvalid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nvalid) - 1u);
    const __mmask16 k1 = nvalid >= 32 ? (__mmask16)0xFFFF : nvalid <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nvalid - 16)) - 1u);
    const __m512 mv0 = ml2 ? _mm512_loadu_ps(ml2) : ninf, mv1 = ml2 ? _mm512_loadu_ps(ml2 + 16) : ninf;
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        __m512 y0 = ml2 ? _mm512_fmadd_ps(acc[i][0], vc, mv0) : _mm512_mul_ps(acc[i][0], vc);
        __m512 y1 = ml2 ? _mm512_fmadd_ps(acc[i][1], vc, mv1) : _mm512_mul_ps(acc[i][1], vc);
        y0 = _mm512_mask_blend_ps(k0, ninf, y0); /* keys past nvalid: -inf */
        y1 = _mm512_mask_blend_ps(k1, ninf, y1);
        _mm512_storeu_ps(y + i * ldS, y0);
        _mm512_storeu_ps(y + i * ldS + 16, y1);
        const __m512 t = _mm512_max_ps(y0, y1); /* lane maxima folded to 8 lanes (max is exact) */
        const __m256 t8 = _mm256_max_ps(_mm512_castps512_ps256(t),
                                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
        _mm256_storeu_ps(rmx + i * 8, _mm256_max_ps(t8, _mm256_loadu_ps(rmx + i * 8)));
    }
}

/* pv_tile16_avx2 over columns c0 .. c0 + 32 (V panels vp0, vp1 at the block's first key). */
FA_AVX512 static void pv_tile32_avx512(int64_t n, const float *P, int64_t ldP, const float *vp0, const float *vp1,
                                       float *O, int64_t ldO, const float *alpha) {
    __m512 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        const __m512 a = _mm512_set1_ps(alpha[i]);
        acc[i][0] = _mm512_mul_ps(a, _mm512_loadu_ps(O + i * ldO));
        acc[i][1] = _mm512_mul_ps(a, _mm512_loadu_ps(O + i * ldO + 16));
    }
#pragma GCC unroll 2
    for (int64_t j = 0; j < n; j++) {
        const __m512 v0 = _mm512_loadu_ps(vp0 + j * 16), v1 = _mm512_loadu_ps(vp1 + j * 16);
        tdm_avx512_fma6x32(acc, P + j, ldP, v0, v1);
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(O + i * ldO, acc[i][0]);
        _mm512_storeu_ps(O + i * ldO + 16, acc[i][1]);
    }
}
#endif

/* ---- driver -------------------------------------------------------------------------------------- */

typedef struct {
    const float *q, *k, *v, *mask; /* q [B, Lq, ldq], k [B, Lk, ldk], v [B, Lk, ldv], mask [B, Lk] or NULL */
    int64_t ldq, ldk, ldv, B, H, Lq, Lk, D;
    float c; /* scale log2(e) */
    int causal, avx2, avx512;
    float *out;   /* [B, Lq, H*D] */
    int64_t Dv;   /* D rounded up to 8: width of the packed V rows and of O */
    int64_t Lkp;  /* Lk rounded up to NR */
    int64_t bc;   /* keys per block (multiple of NR) */
    int64_t ldS;  /* row stride of the score / P buffer: bc + 16 */
    int64_t n_qt; /* query tiles per (b, h) */
    float *kp;    /* per (b, h), at bh * Lkp * (D + Dv): [Lkp / NR][D][NR], then vp (file comment) */
    float *ml2;   /* [B][Lkp] mask in log2 units (after every (b, h)'s K / V), or NULL */
    float *thr;   /* per thread (stride thr_stride): qp [FA_QT / MR][D][QS], y [MR][ldS], O [FA_QT][Dv], m, l [FA_QT] */
    int64_t thr_stride;
    int64_t units;
    atomic_llong next;
} flash_job;

static const float *kp_of(const flash_job *J, int64_t bh) { return J->kp + bh * J->Lkp * (J->D + J->Dv); }

#if FA_X86

FA_AVX2 static void transpose_rows_avx2(const float *const rows[8], int64_t D, float *dst, int64_t ld) {
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = rows[i] ? _mm256_loadu_ps(rows[i] + d) : _mm256_setzero_ps();
        tdm_avx2_transpose8(r);
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (d + i) * ld, r[i]);
    }
    for (; d < D; d++)
        for (int i = 0; i < 8; i++) dst[d * ld + i] = rows[i] ? rows[i][d] : 0.0f;
}

FA_AVX2 static void scale_row_avx2(const float *x, int64_t n, float s, float *dst) {
    int64_t c = 0;
    const __m256 vs = _mm256_set1_ps(s);
    for (; c + 8 <= n; c += 8) _mm256_storeu_ps(dst + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), vs));
    for (; c < n; c++) dst[c] = x[c] * s;
}
#endif

/* dst[d * ld + i] = rows[i][d] for d < D, i < 8 (rows[i] NULL: zeros): 8 rows transposed into panel columns. */
static void transpose_rows(const float *const rows[8], int64_t D, float *dst, int64_t ld, int avx2) {
#if FA_X86
    if (avx2) {
        transpose_rows_avx2(rows, D, dst, ld);
        return;
    }
#endif
    for (int64_t d = 0; d < D; d++)
        for (int i = 0; i < 8; i++) dst[d * ld + i] = rows[i] ? rows[i][d] : 0.0f;
    (void)avx2;
}

/* Q panel qp [D][QS] of a row group (rows[r] NULL past the tile; lanes MR..QS-1 zero). */
static void pack_q(const float *const rows[MR], int64_t D, float *qp, int avx2) {
    const float *r8[8] = {rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], NULL, NULL};
    transpose_rows(r8, D, qp, QS, avx2);
}

/* dst[0..n) = x[0..n) s */
static void scale_row(const float *x, int64_t n, float s, float *dst, int avx2) {
#if FA_X86
    if (avx2) {
        scale_row_avx2(x, n, s, dst);
        return;
    }
#endif
    for (int64_t c = 0; c < n; c++) dst[c] = x[c] * s;
    (void)avx2;
}

/* Pack unit u: (b, h) = u / n_chunks, keys [c * PACK_KEYS, +PACK_KEYS) of K^T and V (zeros past Lk);
 * the h = 0 units also convert the mask. */
static void pack_task(void *ctx, int ith, int nth) {
    flash_job *J = ctx;
    const int64_t n_chunks = (J->Lkp + PACK_KEYS - 1) / PACK_KEYS, D = J->D, Dv = J->Dv, Lkp = J->Lkp;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        const int64_t bh = u / n_chunks, b = bh / J->H, h = bh % J->H, j0 = (u % n_chunks) * PACK_KEYS;
        const int64_t j1 = j0 + PACK_KEYS < Lkp ? j0 + PACK_KEYS : Lkp;
        float *kp = (float *)kp_of(J, bh), *vp = kp + Lkp * D;
        for (int64_t jp = j0; jp < j1; jp += NR) { /* K^T panel jp / NR: 8 keys at a time */
            for (int half = 0; half < 2; half++) {
                const float *rows[8]; /* k rows jp + half 8 + r, NULL past Lk */
                for (int r = 0; r < 8; r++) {
                    const int64_t j = jp + half * 8 + r;
                    rows[r] = j < J->Lk ? J->k + (b * J->Lk + j) * J->ldk + h * D : NULL;
                }
                transpose_rows(rows, D, kp + jp * D + half * 8, NR, J->avx2);
            }
        }
        for (int64_t j = j0; j < j1; j++) { /* V rows into the column panels (zeros past Lk and D) */
            const float *vs = j < J->Lk ? J->v + (b * J->Lk + j) * J->ldv + h * D : NULL;
            for (int64_t c0 = 0; c0 < Dv; c0 += NR) {
                const int64_t w = Dv - c0 < NR ? Dv - c0 : NR, nc = !vs ? 0 : D - c0 < w ? D - c0 : w;
                float *vd = vp + c0 * Lkp + j * w; /* panel c0 / NR, row j */
                if (nc > 0) memcpy(vd, vs + c0, (size_t)nc * sizeof(float));
                memset(vd + nc, 0, (size_t)(w - nc) * sizeof(float));
            }
        }
        if (J->ml2 && h == 0)
            for (int64_t j = j0; j < j1; j++) {
                float mk = j < J->Lk ? J->mask[b * J->Lk + j] : -INFINITY, t = mk * FA_LOG2E;
                J->ml2[b * Lkp + j] = t == -INFINITY && mk != -INFINITY ? -FLT_MAX : t;
            }
    }
    (void)ith, (void)nth;
}

/* Prefetch the cache lines of x[0..n) (rw 1: for writing). */
static inline void prefetch_row(const float *x, int64_t n, int rw) {
    for (int64_t c = 0; c < n; c += 16) {
        if (rw) __builtin_prefetch(x + c, 1, 3);
        else __builtin_prefetch(x + c, 0, 3);
    }
    if (rw) __builtin_prefetch(x + n - 1, 1, 3);
    else __builtin_prefetch(x + n - 1, 0, 3);
}

/* Attention unit u = (b, h, query tile t): Algorithm 1 over the key blocks, MR rows at a time. */
static void att_task(void *ctx, int ith, int nth) {
    flash_job *J = ctx;
    const int64_t D = J->D, Dv = J->Dv, Lkp = J->Lkp, ldS = J->ldS;
    float *qp = J->thr + ith * J->thr_stride;  /* [FA_QT / MR][D][QS] */
    float *y = qp + FA_QT / MR * D * QS;       /* [MR][ldS] scores, then P */
    float *O = y + MR * ldS;                   /* [FA_QT][Dv] unnormalised output */
    float *m = O + FA_QT * Dv, *l = m + FA_QT; /* [FA_QT] running max (log2 units) and sum */
    float rmx[MR * 8];                         /* [MR][8] lane maxima of the group's y */
    float m_use[MR], t_alpha[8] = {0}, alpha[MR];
    int64_t cnt[MR];
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        const int64_t t = u % J->n_qt, bh = u / J->n_qt, b = bh / J->H, h = bh % J->H;
        const int64_t i0 = t * FA_QT, nq = J->Lq - i0 < FA_QT ? J->Lq - i0 : FA_QT;
        const int64_t ng = (nq + MR - 1) / MR;
        const int64_t nk = J->causal && i0 + nq < J->Lk ? i0 + nq : J->Lk; /* causal: keys j <= i only */
        const float *kp = kp_of(J, bh), *vp = kp + Lkp * D;
        const float *ml2 = J->ml2 ? J->ml2 + b * Lkp : NULL;
        /* the tile's q rows (strided, in L3 or memory) fetched in parallel rather than one miss at a time */
        for (int64_t i = 0; i < nq; i++) prefetch_row(J->q + (b * J->Lq + i0 + i) * J->ldq + h * D, D, 0);
        for (int64_t g = 0; g < ng; g++) {
            const float *rows[MR]; /* q rows i0 + g MR + r, NULL past nq */
            for (int r = 0; r < MR; r++)
                rows[r] = g * MR + r < nq ? J->q + (b * J->Lq + i0 + g * MR + r) * J->ldq + h * D : NULL;
            pack_q(rows, D, qp + g * D * QS, J->avx2);
        }
        memset(O, 0, (size_t)(ng * MR * Dv) * sizeof(float));
        for (int64_t i = 0; i < ng * MR; i++) m[i] = -INFINITY, l[i] = 0.0f;
        for (int64_t kb = 0; kb < nk; kb += J->bc) {
            const int64_t nb = nk - kb < J->bc ? nk - kb : J->bc;
            if (kb + nb == nk) /* last block: the output rows, written at the end */
                for (int64_t i = 0; i < nq; i++) prefetch_row(J->out + (b * J->Lq + i0 + i) * J->H * D + h * D, D, 1);
            for (int64_t g = 0; g < ng; g++) {
                const int64_t r0 = g * MR, mr = nq - r0 < MR ? nq - r0 : MR;
                if (J->causal && kb > i0 + r0 + mr - 1) continue; /* every key of the block follows the rows */
                /* keys of this block per row: nb, or (causal) up to the row's own index; nbg the most */
                int64_t nbg = 0;
                for (int r = 0; r < MR; r++) {
                    cnt[r] = r < mr ? nb : 0;
                    if (J->causal && r < mr && i0 + r0 + r - kb + 1 < cnt[r]) cnt[r] = i0 + r0 + r - kb + 1;
                    if (cnt[r] > nbg) nbg = cnt[r];
                }
                const int64_t n16 = round_up(nbg, NR);
                const float *qg = qp + g * D * QS;
                for (int i = 0; i < MR * 8; i++) rmx[i] = -INFINITY;
                for (int64_t jp = 0; jp < n16; jp += NR) {
                    const float *kpp = kp + (kb + jp) / NR * D * NR, *mk = ml2 ? ml2 + kb + jp : NULL;
                    const int64_t nv = nbg - jp < NR ? nbg - jp : NR;
#if FA_X86
                    if (J->avx512 && jp + 2 * NR <= n16) { /* two K panels */
                        qk_tile2_avx512(D, qg, kpp, kpp + D * NR, y + jp, ldS, J->c, mk, nbg - jp < 2 * NR ? nbg - jp : 2 * NR,
                                        rmx);
                        jp += NR;
                    } else if (J->avx2) {
                        qk_tile_avx2(D, qg, kpp, y + jp, ldS, J->c, mk, nv, rmx);
                    } else
#endif
                        qk_tile_generic(D, qg, kpp, y + jp, ldS, J->c, mk, nv, rmx);
                }
                group_max(y, ldS, cnt, nbg, rmx, m + r0, m_use, t_alpha);
#if FA_X86
                if (J->avx2) {
                    alpha_avx2(t_alpha, alpha);
                    group_exp_avx2(y, ldS, cnt, n16, m_use, alpha, l + r0);
                } else
#endif
                {
                    for (int r = 0; r < MR; r++) alpha[r] = fa_exp2(t_alpha[r]);
                    group_exp_generic(y, ldS, cnt, n16, m_use, alpha, l + r0);
                }
                for (int r = 0; r < MR; r++) /* rows without keys here: P = 0 (alpha is 1) */
                    if (cnt[r] <= 0) memset(y + r * ldS, 0, (size_t)nbg * sizeof(float));
                for (int64_t c0 = 0; c0 < Dv; c0 += NR) {
                    const int w = Dv - c0 < NR ? (int)(Dv - c0) : NR;
                    const float *vpp = vp + c0 * Lkp + kb * w; /* panel c0 / NR, row kb */
                    float *Og = O + r0 * Dv + c0;
#if FA_X86
                    if (J->avx512 && c0 + 2 * NR <= Dv) { /* two 16-column panels */
                        pv_tile32_avx512(nbg, y, ldS, vpp, vpp + NR * Lkp, Og, Dv, alpha);
                        c0 += NR;
                    } else if (J->avx2 && w == 16) pv_tile16_avx2(nbg, y, ldS, vpp, Og, Dv, alpha);
                    else if (J->avx2) pv_tile8_avx2(nbg, y, ldS, vpp, Og, Dv, alpha);
                    else
#endif
                        pv_tile_generic(nbg, w, y, ldS, vpp, Og, Dv, alpha);
                }
            }
        }
        for (int64_t i = 0; i < nq; i++) { /* out = O (1 / l) */
            float *o = J->out + (b * J->Lq + i0 + i) * J->H * D + h * D;
            const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
            scale_row(O + i * Dv, D, inv, o, J->avx2);
        }
    }
    (void)nth;
}

static void run_phase(const tdm_exec *ex, flash_job *J, int64_t units, tdm_task_fn fn) {
    J->units = units;
    atomic_store(&J->next, 0);
    if (units > 1 && tdm_exec_threads(ex) > 1) tdm_pool_run(ex->pool, fn, J);
    else fn(J, 0, 1);
}

int tdm_attention_flash_avx2(void) {
#if FA_X86
    static int cached = -1;
    if (cached < 0) {
        tdm_cpu_features f = tdm_cpu_detect();
        cached = f.avx2 && f.fma;
    }
    return cached;
#else
    return 0;
#endif
}

tdm_code tdm_attention_flash(const tdm_exec *ex, const float *q, int64_t ldq, const float *k, int64_t ldk,
                             const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                             float scale, int causal, const float *mask_add, float *out, int generic) {
    if (B < 0 || H < 1 || Lq < 0 || Lk < 1 || D < 1 || ldq < H * D || ldk < H * D || ldv < H * D)
        return TDM_ERR_INVALID_ARG;
    if (B == 0 || Lq == 0) return TDM_OK;
    flash_job J = {.q = q, .k = k, .v = v, .mask = mask_add, .ldq = ldq, .ldk = ldk, .ldv = ldv, .B = B, .H = H,
                   .Lq = Lq, .Lk = Lk, .D = D, .c = scale * FA_LOG2E, .causal = causal, .out = out};
    J.avx2 = !generic && tdm_attention_flash_avx2();
    J.avx512 = J.avx2 && tdm_ops_avx512();
    J.Dv = round_up(D, 8);
    J.Lkp = round_up(Lk, NR);
    J.bc = flash_block_keys(D);
    J.ldS = J.bc + 16;
    J.n_qt = (Lq + FA_QT - 1) / FA_QT;
    /* sizes: the packed K / V of every (b, h) and the mask, and per thread a unit's buffers (overflow checked) */
    const int64_t lim = INT64_MAX / 8;
    if (D > lim / 4 || J.Lkp > lim / (D + J.Dv) || B > lim / H || B * H > lim / (J.Lkp * (D + J.Dv) + J.Lkp) ||
        FA_QT * (D + J.Dv) > lim / 2)
        return TDM_ERR_INVALID_ARG;
    const int64_t kv_floats = B * H * J.Lkp * (D + J.Dv), ml2_floats = mask_add ? B * J.Lkp : 0;
    const int nth = B * H * J.n_qt > 1 ? tdm_exec_threads(ex) : 1;
    J.kp = tdm_workspace_get(tdm_ops_workspace(), TDM_WS_ATT_KV, (size_t)(kv_floats + ml2_floats) * sizeof(float));
    J.ml2 = mask_add && J.kp ? J.kp + kv_floats : NULL;
    J.thr = tdm_ops_ws_per_thread(TDM_WS_ATT_THREAD, nth, FA_QT / MR * D * QS + MR * J.ldS + FA_QT * J.Dv + 2 * FA_QT,
                                  &J.thr_stride);
    if (!J.kp || !J.thr) return TDM_ERR_NOMEM;
    run_phase(ex, &J, B * H * ((J.Lkp + PACK_KEYS - 1) / PACK_KEYS), pack_task);
    run_phase(ex, &J, B * H * J.n_qt, att_task);
    return TDM_OK;
}
