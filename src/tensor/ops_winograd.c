/* 3x3 stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3), m = 2 or 4 (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016). With alpha = m + 2:
 *   input tile d [alpha, alpha] (zero outside the image)  ->  V = B^T d B
 *   weight g [3, 3]                                       ->  U = G g G^T
 *   per transform point xi = (i, j):  M[xi][co][t] = sum_ci U[xi][co][ci] V[xi][ci][t]   (alpha^2 GEMMs)
 *   output tile y [m, m] = A^T M A (+ bias), cropped at the image edge.
 * Multiplications per output: alpha^2 / m^2 per (ci, co) instead of 9: 4 (F(2,3), 2.25x fewer) or
 * 2.25 (F(4,3), 4x fewer).
 * Numerical error (u = 2^-24, gamma_n = n u / (1 - n u)): with direct / im2col convolution
 * |y^ - y| <= gamma_{9 Cin} sum |w| |x|. Winograd rounds in the transforms too and sums transformed values:
 *   |y^ - y| <= gamma_{Cin + c} |A^T| (sum_ci |U_ci| (.) |V_ci|) |A|, with |U| <= |G| |g| |G^T|, |V| <= |B^T| |d| |B|
 * (c = a few roundings per transform level). F(2,3): B, A in {0, +-1}, G in {0, +-1/2, 1} (exact in
 * binary), every row of |B^T| and |A^T| sums to <= 3: the bound is a small constant (<= ~4) times the
 * direct one, and measured errors are the same as im2col (1e-7 to 7e-7 of max |y|, tests/test_ops_winograd.c).
 * F(4,3): points (0, 1, -1, 1/2, -2, inf) (Barabasz et al., "Error analysis and improving the accuracy
 * of Winograd convolution for deep neural networks", 2020: mixing 1/2 and -2 beats (0, +-1, +-2) and
 * (0, +-1, +-1/2)). Matrices computed exactly in rational arithmetic (Toom-Cook: A^T[i][j] = p_j^i,
 * G[j] = (1, p_j, p_j^2) / prod_{k != j} (p_j - p_k), the inf column / row selecting the last tap;
 * B^T solved from sum_j A^T[i][j] G[j][k] B^T[j][l] = [l == i + k]); B^T and A^T are dyadic (exact in
 * binary), G has thirds and fifteenths (rounded once; only applied to the weights). In the bound above,
 * rows of |A^T| sum to <= 11.1, of |B^T| to <= 7, of |G| to <= 1.9: a worst case ~(11.1 7 1.9)^2 / 9
 * ~ 2e3 times the direct bound (loose: the terms do not all align). In practice the error is that of the
 * f32 GEMM sums (over Cin, of U V) amplified by the output transform: rounding the transforms in double
 * instead changes nothing measurable, summing the GEMMs in double brings it to im2col's. Measured (Python
 * float32 model and tests/test_ops_winograd.c, relative to max |y|, random GroupNorm+SiLU-like input
 * and torch-init weights, Cin 4-1280): 1e-6 to 6e-6, vs 2e-6 to 1.2e-5 for the points (0, +-1, +-2)
 * and 3e-7 to 6e-7 for F(2,3) and im2col. tdm_conv_pick (ops_conv.c) decides where that is used.
 * Memory: tiles are processed in chunks (V [alpha^2, Cin, tc] <= WINO_V_BYTES) and output channels in
 * blocks (U [alpha^2, cb, Cin] and M [alpha^2, cb, tc] <= WINO_U_BYTES each); weights are transformed
 * per call from their stored dtype (never kept as a transformed copy). These buffers are the calling
 * thread's reusable scratch (ops_workspace.c): no allocation or page faults once they reached their size.
 * Work is split into units fixed by the shapes (channel x tile groups, point x tile blocks), so results
 * are identical for any thread count.
 * GEMM backend (H8, tdm_wino_gemm in ops_internal.h; default PACKED): the transforms write V and U straight
 * into the panel layout of the packed GEMM's 6 x 16 micro-kernel (ops_gemm_packed.c) - V as B panels of
 * 16 tiles [Cin][16], U as A panels of 6 output channels [Cin][6], f16 / bf16 weights widened per panel -
 * and tdm_gemm_prepacked_single runs the micro-kernel on them: no packing copy, no C zeroing. With AVX2 its
 * weight transform uses compile-time G coefficients (wt_panel_fixed; the same values as wt_lanes up to the
 * sign of zero results). BLAS keeps the row-major U / V and OpenBLAS sgemm: the reference path the tests
 * compare against (both meet the same error bound; they differ in the order of the GEMM sums). */
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "tensor/ops_internal.h"
#include "tensor/simd_x86.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WINO_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#else
#define WINO_X86 0
#endif

#define WINO_V_BYTES ((int64_t)32 << 20)
#define WINO_U_BYTES ((int64_t)24 << 20)
enum { LANES = 8, TGRP = 64, GEMM_TB = 512, WT_CO = 4 };
/* Packed GEMM layout (H8): V [a2][tcp / PNR][Cin][PNR] (B panels of 16 tiles), U [a2][cbp / PMR][Cin][PMR]
 * (A panels of 6 output channels), tcp / cbp = tc / cbn rounded up (padding zero). */
enum { PMR = TDM_GP_MR, PNR = TDM_GP_NR, CIB = 16 /* input channels per packed input-transform unit */ };

/* F(2,3) */
static const float BT2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float G2[12] = {1, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, 1};
static const float AT2[8] = {1, 1, 1, 0, 0, 1, -1, -1};
/* F(4,3), points (0, 1, -1, 1/2, -2, inf) (see the top): exact values; B^T and A^T are applied by the
 * fixed-coefficient code below (in_lanes_f4, out_lanes_f4), G by wt_lanes. */
static const float BT4[36] = {1, -1.5f, -2, 1.5f, 1, 0, 0, -1, 0.5f, 2.5f, 1, 0, 0, 1, -2.5f, 0.5f, 1, 0,
                              0, -2, -1, 2, 1, 0, 0, 0.5f, -1, -0.5f, 1, 0, 0, 1, -1.5f, -2, 1.5f, 1};
static const float G4[18] = {1, 0, 0,
                             1.0f / 3, 1.0f / 3, 1.0f / 3,
                             -1.0f / 3, 1.0f / 3, -1.0f / 3,
                             -16.0f / 15, -8.0f / 15, -4.0f / 15,
                             1.0f / 15, -2.0f / 15, 4.0f / 15,
                             0, 0, 1};
static const float AT4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 0.5f, -2, 0, 0, 1, 1, 0.25f, 4, 0, 0, 1, -1, 0.125f, -8, 1};

typedef struct wino_job {
    /* geometry */
    int m, a, a2;
    const float *BT, *G, *AT; /* [a, a], [a, 3], [m, a] */
    const float *x;           /* [N, Cin, H, W] ([N, Cin, H/2, W/2] with pre->upsample2x) */
    const tdm_conv_pre *pre;  /* applied to input rows as they are loaded, or NULL */
    float *y;                 /* [N, Cout, Ho, Wo] */
    int64_t N, Cin, H, W, Cout, Ho, Wo, pad, tyn, txn, T;
    const tdm_tensor *weight; /* [Cout, Cin, 3, 3] */
    const float *bias;        /* [Cout] widened or NULL */
    /* current chunk of tiles and block of output channels */
    int64_t t0, tc;   /* tiles [t0, t0 + tc) */
    int64_t cb0, cbn; /* output channels [cb0, cb0 + cbn) */
    float *V;         /* [a2, Cin, tc] */
    float *U;         /* [a2, cbn, Cin] */
    float *M;         /* [a2, cbn, tc] */
    int gemm;           /* tdm_wino_gemm resolved: BLAS, PACKED or PACKED_GENERIC */
    int packed;         /* V and U in the packed GEMM layout (see PMR / PNR) */
    int64_t tcp, cbp;   /* tc rounded up to PNR, cbn rounded up to PMR (packed) */
    int64_t wtco;       /* output channels per weight transform unit */
    float *wscr;        /* per thread (stride wstride) [WT_CO, Cin * 9] widened weights */
    float *rowscr;      /* per thread (stride rstride) [a, ldp] padded input rows */
    int64_t wstride, rstride;
    int64_t ldp;        /* W + 2 pad + 2 LANES m (reads past the last tile stay inside) */
    int avx2;
    int64_t units;
    atomic_llong next;
} wino_job;

/* ---- input transform: V[xi][ci][t] = (B^T d B)[xi], LANES tiles of one tile row side by side ---------
 * The a input rows of a tile row are first copied with their zero padding into prow [a, ldp] (column
 * k = input x - pad + ... so tile tx column j is prow[i][m tx + j]); the transforms then read without
 * bounds checks. The AVX2 kernel (F(2,3)) and the generic loops do the same operations in the same order
 * (coefficients +-1 only, zero terms skipped), so they give identical results. */

typedef struct tile_pos {
    int64_t n, ty, tx; /* image, tile row, tile column of a global tile index */
} tile_pos;

static tile_pos tile_at(const wino_job *J, int64_t g) {
    tile_pos p;
    p.n = g / (J->tyn * J->txn);
    int64_t r = g % (J->tyn * J->txn);
    p.ty = r / J->txn;
    p.tx = r % J->txn;
    return p;
}

/* prow[i][k] = x'[n, ci, ty m - pad + i, k - pad] (0 outside), k < ldp; x' = pre(x) when pre is set. */
static void fill_rows(const wino_job *J, int64_t n, int64_t ci, int64_t ty, float *prow, int64_t ldp) {
    const int up = J->pre && J->pre->upsample2x;
    const int64_t Ws = up ? J->W / 2 : J->W, Hs = up ? J->H / 2 : J->H;
    const float *xc = J->x + (n * J->Cin + ci) * Hs * Ws;
    for (int i = 0; i < J->a; i++) {
        float *r = prow + i * ldp;
        int64_t iy = ty * J->m - J->pad + i;
        memset(r, 0, (size_t)ldp * sizeof(float));
        if (iy < 0 || iy >= J->H) continue;
        const float *src = xc + (up ? iy / 2 : iy) * Ws;
        if (J->pre) tdm_conv_pre_apply(J->pre, n, ci, J->Cin, src, J->W, r + J->pad);
        else memcpy(r + J->pad, src, (size_t)J->W * sizeof(float));
    }
}

static void in_lanes_generic(const wino_job *J, const float *prow, int64_t ldp, int64_t tx0, float *v, int64_t ldv,
                             int64_t nl) {
    const int a = J->a, m = J->m;
    float d[6][6][LANES], t[6][6][LANES];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++)
            for (int l = 0; l < LANES; l++) d[i][j][l] = prow[i * ldp + m * (tx0 + (l < nl ? l : 0)) + j];
    for (int i = 0; i < a; i++) /* t = B^T d */
        for (int j = 0; j < a; j++) {
            float s[LANES] = {0};
            for (int k = 0; k < a; k++) {
                float c = J->BT[i * a + k];
                if (c == 0.0f) continue;
                for (int l = 0; l < LANES; l++) s[l] += c * d[k][j][l];
            }
            memcpy(t[i][j], s, sizeof s);
        }
    for (int i = 0; i < a; i++) /* V = t B */
        for (int j = 0; j < a; j++) {
            float s[LANES] = {0};
            for (int k = 0; k < a; k++) {
                float c = J->BT[j * a + k];
                if (c == 0.0f) continue;
                for (int l = 0; l < LANES; l++) s[l] += c * t[i][k][l];
            }
            float *vo = v + (int64_t)(i * a + j) * ldv;
            for (int64_t l = 0; l < nl; l++) vo[l] = s[l];
        }
}

#if WINO_X86
/* evens / odds of 16 consecutive floats lo|hi */
AVX2 static inline __m256 even8(__m256 lo, __m256 hi) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xd8));
}
AVX2 static inline __m256 odd8(__m256 lo, __m256 hi) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xdd)), 0xd8));
}

/* F(2,3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
AVX2 static void in_lanes_f2(const float *prow, int64_t ldp, int64_t tx0, float *v, int64_t ldv, int64_t nl) {
    __m256 d[4][4];
    for (int i = 0; i < 4; i++) {
        const float *p = prow + i * ldp + 2 * tx0;
        __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
        __m256 lo2 = _mm256_loadu_ps(p + 2), hi2 = _mm256_loadu_ps(p + 10);
        d[i][0] = even8(lo, hi), d[i][1] = odd8(lo, hi), d[i][2] = even8(lo2, hi2), d[i][3] = odd8(lo2, hi2);
    }
    __m256 t[4][4];
    for (int j = 0; j < 4; j++) {
        t[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
        t[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
        t[2][j] = _mm256_add_ps(_mm256_sub_ps(_mm256_setzero_ps(), d[1][j]), d[2][j]);
        t[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
    }
    for (int i = 0; i < 4; i++) {
        __m256 o[4];
        o[0] = _mm256_sub_ps(t[i][0], t[i][2]);
        o[1] = _mm256_add_ps(t[i][1], t[i][2]);
        o[2] = _mm256_add_ps(_mm256_sub_ps(_mm256_setzero_ps(), t[i][1]), t[i][2]);
        o[3] = _mm256_sub_ps(t[i][1], t[i][3]);
        for (int j = 0; j < 4; j++) {
            float *vo = v + (int64_t)(i * 4 + j) * ldv;
            if (nl == LANES) {
                _mm256_storeu_ps(vo, o[j]);
            } else {
                float tmp[LANES];
                _mm256_storeu_ps(tmp, o[j]);
                memcpy(vo, tmp, (size_t)nl * sizeof(float));
            }
        }
    }
}
#endif

/* F(4,3): fixed coefficients (B^T = BT4, A^T = AT4), plain C over the LANES tiles. The AVX2 builds
 * (*_avx2) vectorise the same per-lane operations in the same order (no reassociation; -std=c11 implies
 * -ffp-contract=off, so no FMA contraction): the portable and AVX2 paths compute the same values. */
#define F4_ALWAYS_INLINE __attribute__((always_inline)) static inline

/* y_r = sum_k B^T[r][k] x_k for r < 6, per lane */
F4_ALWAYS_INLINE void bt4_apply(const float *x0, const float *x1, const float *x2, const float *x3, const float *x4,
                                const float *x5, float *y0, float *y1, float *y2, float *y3, float *y4, float *y5) {
    for (int l = 0; l < LANES; l++) {
        const float a0 = x0[l], a1 = x1[l], a2 = x2[l], a3 = x3[l], a4 = x4[l], a5 = x5[l];
        y0[l] = a0 - 1.5f * a1 - 2.0f * a2 + 1.5f * a3 + a4;
        y1[l] = -a1 + 0.5f * a2 + 2.5f * a3 + a4;
        y2[l] = a1 - 2.5f * a2 + 0.5f * a3 + a4;
        y3[l] = -2.0f * a1 - a2 + 2.0f * a3 + a4;
        y4[l] = 0.5f * a1 - a2 - 0.5f * a3 + a4;
        y5[l] = a1 - 1.5f * a2 - 2.0f * a3 + 1.5f * a4 + a5;
    }
}

/* V for LANES tiles of one tile row: tile tx0 + l reads prow[i][4 (tx0 + l) + j] (lanes beyond nl stay
 * inside prow's ldp columns and are not stored). */
F4_ALWAYS_INLINE void in_lanes_f4_body(const float *prow, int64_t ldp, int64_t tx0, float *v, int64_t ldv, int64_t nl) {
    float d[6][6][LANES], t[6][6][LANES], o[6][LANES]; /* [row][col][lane] */
    for (int i = 0; i < 6; i++)
        for (int l = 0; l < LANES; l++) {
            const float *p = prow + i * ldp + 4 * (tx0 + l);
            for (int j = 0; j < 6; j++) d[i][j][l] = p[j];
        }
    for (int j = 0; j < 6; j++) /* t = B^T d */
        bt4_apply(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j], t[0][j], t[1][j], t[2][j], t[3][j], t[4][j],
                  t[5][j]);
    for (int i = 0; i < 6; i++) { /* V = t B */
        bt4_apply(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[0], o[1], o[2], o[3], o[4], o[5]);
        for (int j = 0; j < 6; j++) memcpy(v + (int64_t)(i * 6 + j) * ldv, o[j], (size_t)nl * sizeof(float));
    }
}

static void in_lanes_f4(const float *prow, int64_t ldp, int64_t tx0, float *v, int64_t ldv, int64_t nl) {
    in_lanes_f4_body(prow, ldp, tx0, v, ldv, nl);
}
#if WINO_X86
AVX2 static void in_lanes_f4_avx2(const float *prow, int64_t ldp, int64_t tx0, float *v, int64_t ldv, int64_t nl) {
    in_lanes_f4_body(prow, ldp, tx0, v, ldv, nl);
}
#endif

/* V of nl tiles of one tile row, tile tx first, from the padded rows prow of one input channel. */
static void in_lanes(const wino_job *J, const float *prow, int64_t ldp, int64_t tx, float *v, int64_t ldv, int64_t nl) {
#if WINO_X86
    if (J->m == 4 && J->avx2) in_lanes_f4_avx2(prow, ldp, tx, v, ldv, nl);
    else if (J->m == 2 && J->avx2) in_lanes_f2(prow, ldp, tx, v, ldv, nl);
    else
#endif
        if (J->m == 4) in_lanes_f4(prow, ldp, tx, v, ldv, nl);
    else in_lanes_generic(J, prow, ldp, tx, v, ldv, nl);
}

/* Packed layout: tiles [g0, g1) of the chunk for input channels [c0, c1) (<= CIB), channels inner so that
 * the writes of one point fill adjacent [ci][PNR] rows of a B panel; prow holds CIB channels' rows. */
static void in_range_packed(const wino_job *J, int64_t c0, int64_t c1, int64_t g0, int64_t g1, float *prow,
                            int64_t ldp) {
    const int64_t rows = J->a * ldp; /* floats per channel in prow */
    int64_t cached = -1;             /* (n, ty) in prow */
    for (int64_t t = g0; t < g1;) {
        tile_pos p = tile_at(J, J->t0 + t);
        int64_t nl = J->txn - p.tx;
        if (nl > g1 - t) nl = g1 - t;
        if (nl > LANES) nl = LANES;
        if (nl > PNR - t % PNR) nl = PNR - t % PNR; /* lanes stay inside one B panel */
        int64_t key = p.n * J->tyn + p.ty;
        if (key != cached)
            for (int64_t ci = c0; ci < c1; ci++) fill_rows(J, p.n, ci, p.ty, prow + (ci - c0) * rows, ldp);
        cached = key;
        float *v = J->V + (t / PNR) * J->Cin * PNR + t % PNR;
        for (int64_t ci = c0; ci < c1; ci++)
            in_lanes(J, prow + (ci - c0) * rows, ldp, p.tx, v + ci * PNR, J->Cin * J->tcp, nl);
        t += nl;
    }
}

/* Tiles [g0, g1) of the chunk (local indices) for input channel ci. */
static void in_range(const wino_job *J, int64_t ci, int64_t g0, int64_t g1, float *prow, int64_t ldp) {
    int64_t cached = -1; /* (n, ty) in prow */
    for (int64_t t = g0; t < g1;) {
        tile_pos p = tile_at(J, J->t0 + t);
        int64_t nl = J->txn - p.tx; /* lanes left in this tile row */
        if (nl > g1 - t) nl = g1 - t;
        if (nl > LANES) nl = LANES;
        int64_t key = p.n * J->tyn + p.ty;
        if (key != cached) fill_rows(J, p.n, ci, p.ty, prow, ldp);
        cached = key;
        in_lanes(J, prow, ldp, p.tx, J->V + ci * J->tc + t, J->Cin * J->tc, nl);
        t += nl;
    }
}

static void in_task(void *ctx, int ith, int nth) {
    wino_job *J = ctx;
    int64_t ngrp = (J->tc + TGRP - 1) / TGRP;
    float *prow = J->rowscr + ith * J->rstride;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        int64_t ci = u / ngrp, g0 = u % ngrp * TGRP, g1 = g0 + TGRP < J->tc ? g0 + TGRP : J->tc;
        if (J->packed) { /* unit: CIB input channels */
            int64_t c0 = ci * CIB, c1 = c0 + CIB < J->Cin ? c0 + CIB : J->Cin;
            in_range_packed(J, c0, c1, g0, g1, prow, J->ldp);
        } else {
            in_range(J, ci, g0, g1, prow, J->ldp);
        }
    }
}

/* ---- weight transform: U[xi][co - cb0][ci] = (G g G^T)[xi], LANES input channels side by side ---------- */

/* g9 [9][LANES] (kernel tap major) -> U values u[xi * ldu + l] for LANES lanes (input channels of one
 * output channel, or output channels of one input channel: see wt_panel). */
__attribute__((always_inline)) static inline void wt_lanes(const wino_job *J, float g9[9][LANES], float *u, int64_t ldu, int64_t nl) {
    const int a = J->a;
    float t[6][3][LANES];
    for (int i = 0; i < a; i++) /* t = G g */
        for (int j = 0; j < 3; j++) {
            const float c0 = J->G[i * 3], c1 = J->G[i * 3 + 1], c2 = J->G[i * 3 + 2];
            for (int l = 0; l < LANES; l++) t[i][j][l] = c0 * g9[j][l] + c1 * g9[3 + j][l] + c2 * g9[6 + j][l];
        }
    for (int i = 0; i < a; i++) /* U = t G^T */
        for (int j = 0; j < a; j++) {
            const float c0 = J->G[j * 3], c1 = J->G[j * 3 + 1], c2 = J->G[j * 3 + 2];
            float o[LANES];
            for (int l = 0; l < LANES; l++) o[l] = t[i][0][l] * c0 + t[i][1][l] * c1 + t[i][2][l] * c2;
            memcpy(u + (int64_t)(i * a + j) * ldu, o, (size_t)nl * sizeof(float));
        }
}

__attribute__((always_inline)) static inline void wt_block(const wino_job *J, const float *wf, int64_t c0, int64_t c1) {
    const int64_t ldu = J->cbn * J->Cin;
    for (int64_t co = c0; co < c1; co++)
        for (int64_t ci = 0; ci < J->Cin; ci += LANES) {
            int64_t nl = J->Cin - ci < LANES ? J->Cin - ci : LANES;
            float g9[9][LANES];
            for (int64_t l = 0; l < LANES; l++) {
                const float *g = wf + ((co - c0) * J->Cin + ci + (l < nl ? l : 0)) * 9;
                for (int k = 0; k < 9; k++) g9[k][l] = g[k];
            }
            wt_lanes(J, g9, J->U + co * J->Cin + ci, ldu, nl);
        }
}

#if WINO_X86
AVX2 static void wt_block_avx2(const wino_job *J, const float *wf, int64_t c0, int64_t c1) { wt_block(J, wf, c0, c1); }
#endif

/* Packed: one A panel up [a2][Cin][PMR] (point xi at up + xi * ldu) from the widened weights wf [nr][Cin * 9]
 * of nr <= PMR output channels. Lanes = output channels (PMR of LANES used; lanes >= nr repeat channel 0:
 * finite values in rows the micro-kernel never stores), so each point's PMR values of an input channel
 * are contiguous. Per value the same operations as wt_block. */
__attribute__((always_inline)) static inline void wt_panel_body(const wino_job *J, const float *wf, int64_t nr, float *up,
                                                                int64_t ldu) {
    for (int64_t ci = 0; ci < J->Cin; ci++) {
        float g9[9][LANES];
        for (int64_t l = 0; l < LANES; l++) {
            const float *g = wf + ((l < nr ? l : 0) * J->Cin + ci) * 9;
            for (int k = 0; k < 9; k++) g9[k][l] = g[k];
        }
        if (ci + 1 < J->Cin) wt_lanes(J, g9, up + ci * PMR, ldu, LANES); /* as wt_panel_avx2 */
        else wt_lanes(J, g9, up + ci * PMR, ldu, PMR);
    }
}

static void wt_panel(const wino_job *J, const float *wf, int64_t nr, float *up, int64_t ldu) {
    wt_panel_body(J, wf, nr, up, ldu);
}
#if WINO_X86

/* c0 x0 + c1 x1 + c2 x2 in that order with compile-time coefficients: zero terms skipped, unit ones not
 * multiplied (the same value as wt_lanes' sum up to the sign of a zero result). */
AVX2 __attribute__((always_inline)) static inline __m256 lincomb3(float c0, __m256 x0, float c1, __m256 x1, float c2,
                                                                 __m256 x2) {
    const float c[3] = {c0, c1, c2};
    const __m256 x[3] = {x0, x1, x2};
    __m256 s = _mm256_setzero_ps();
    int any = 0;
#pragma GCC unroll 3
    for (int k = 0; k < 3; k++) {
        if (c[k] == 0.0f) continue;
        __m256 term = c[k] == 1.0f ? x[k] : c[k] == -1.0f ? _mm256_sub_ps(_mm256_setzero_ps(), x[k])
                                                          : _mm256_mul_ps(_mm256_set1_ps(c[k]), x[k]);
        s = any ? _mm256_add_ps(s, term) : term;
        any = 1;
    }
    return s;
}

/* wt_panel with fixed coefficients (G = G2 or G4, a = m + 2 known at compile time) in registers: the 9 taps
 * of the 8 lanes gathered by an 8 x 8 register transpose (taps 0-7) plus the ninth element-wise. Whole
 * 8-lane stores: lanes PMR.. land in input channel ci + 1's slots and are rewritten by the next one (the
 * last channel stores PMR lanes). */
AVX2 __attribute__((always_inline)) static inline void wt_panel_fixed(const float *Gm, const int a, const wino_job *J,
                                                                     const float *wf, int64_t nr, float *up,
                                                                     int64_t ldu) {
    const float *row[LANES];
    for (int64_t ci = 0; ci < J->Cin; ci++) {
        for (int64_t l = 0; l < LANES; l++) row[l] = wf + ((l < nr ? l : 0) * J->Cin + ci) * 9;
        __m256 g[9];
        for (int l = 0; l < 8; l++) g[l] = _mm256_loadu_ps(row[l]);
        tdm_avx2_transpose8(g);
        g[8] = _mm256_set_ps(row[7][8], row[6][8], row[5][8], row[4][8], row[3][8], row[2][8], row[1][8], row[0][8]);
        __m256 t[6][3];
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) /* t = G g */
#pragma GCC unroll 3
            for (int j = 0; j < 3; j++) t[i][j] = lincomb3(Gm[i * 3], g[j], Gm[i * 3 + 1], g[3 + j], Gm[i * 3 + 2], g[6 + j]);
        float *u = up + ci * PMR;
        const int last = ci + 1 == J->Cin;
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) /* U = t G^T */
#pragma GCC unroll 6
            for (int j = 0; j < a; j++) {
                __m256 o = lincomb3(Gm[j * 3], t[i][0], Gm[j * 3 + 1], t[i][1], Gm[j * 3 + 2], t[i][2]);
                float *uo = u + (int64_t)(i * a + j) * ldu;
                if (!last) {
                    _mm256_storeu_ps(uo, o);
                } else {
                    float tmp[LANES];
                    _mm256_storeu_ps(tmp, o);
                    memcpy(uo, tmp, PMR * sizeof(float));
                }
            }
    }
}

AVX2 static void wt_panel_avx2(const wino_job *J, const float *wf, int64_t nr, float *up, int64_t ldu) {
    if (J->m == 2) wt_panel_fixed(G2, 4, J, wf, nr, up, ldu);
    else wt_panel_fixed(G4, 6, J, wf, nr, up, ldu);
}
#endif

static void wt_task(void *ctx, int ith, int nth) {
    wino_job *J = ctx;
    float *wf = J->wscr + ith * J->wstride; /* [wtco, Cin * 9] */
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        int64_t c0 = u * J->wtco, c1 = c0 + J->wtco < J->cbn ? c0 + J->wtco : J->cbn;
        tdm_ops_widen(J->weight, (J->cb0 + c0) * J->Cin * 9, (c1 - c0) * J->Cin * 9, wf);
        if (J->packed) { /* one A panel (wtco = PMR) */
#if WINO_X86
            if (J->avx2) wt_panel_avx2(J, wf, c1 - c0, J->U + c0 * J->Cin, J->cbp * J->Cin);
            else
#endif
                wt_panel(J, wf, c1 - c0, J->U + c0 * J->Cin, J->cbp * J->Cin);
            continue;
        }
#if WINO_X86
        if (J->avx2) wt_block_avx2(J, wf, c0, c1);
        else
#endif
            wt_block(J, wf, c0, c1);
    }
}

/* ---- GEMMs: M[xi] = U[xi] V[xi], units (xi, block of GEMM_TB tiles) --------------------------------- */

static void gemm_task(void *ctx, int ith, int nth) {
    wino_job *J = ctx;
    int64_t ntb = (J->tc + GEMM_TB - 1) / GEMM_TB;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        int64_t xi = u / ntb, tb0 = u % ntb * GEMM_TB, nt = J->tc - tb0 < GEMM_TB ? J->tc - tb0 : GEMM_TB;
        if (J->packed) { /* B panels of tiles tb0.. start at tb0 Cin (tb0 a multiple of PNR) */
            tdm_gemm_prepacked_single(J->cbn, nt, J->Cin, J->U + xi * J->cbp * J->Cin,
                                      J->V + xi * J->Cin * J->tcp + tb0 * J->Cin, J->M + xi * J->cbn * J->tc + tb0,
                                      J->tc, J->gemm == TDM_WINO_GEMM_PACKED_GENERIC);
            continue;
        }
        tdm_sgemm_single(0, 0, J->cbn, nt, J->Cin, 1.0f, J->U + xi * J->cbn * J->Cin, J->Cin,
                         J->V + xi * J->Cin * J->tc + tb0, J->tc, 0.0f, J->M + xi * J->cbn * J->tc + tb0, J->tc);
    }
}

/* ---- output transform: y tile = A^T M A + bias, LANES tiles of one tile row side by side -------------- */

/* Writes an [m, m] tile per lane: o[i][j][l] -> y at (m ty + i, m (tx0 + l) + j), cropped. */
static void store_tiles(const wino_job *J, float *yc, int64_t ty, int64_t tx0, int64_t nl, float o[4][4][LANES]) {
    const int m = J->m;
    for (int i = 0; i < m; i++) {
        int64_t oy = ty * m + i;
        if (oy >= J->Ho) break;
        float *yr = yc + oy * J->Wo;
        for (int64_t l = 0; l < nl; l++)
            for (int j = 0; j < m; j++) {
                int64_t ox = (tx0 + l) * m + j;
                if (ox < J->Wo) yr[ox] = o[i][j][l];
            }
    }
}

static void out_lanes_generic(const wino_job *J, const float *mm0, int64_t ldm, float b, float o[4][4][LANES]) {
    const int a = J->a, m = J->m;
    float mm[6][6][LANES], t[4][6][LANES];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < a; j++) memcpy(mm[i][j], mm0 + (int64_t)(i * a + j) * ldm, sizeof mm[i][j]);
    for (int i = 0; i < m; i++) /* t = A^T M */
        for (int j = 0; j < a; j++) {
            float s[LANES] = {0};
            for (int k = 0; k < a; k++) {
                float c = J->AT[i * a + k];
                if (c == 0.0f) continue;
                for (int l = 0; l < LANES; l++) s[l] += c * mm[k][j][l];
            }
            memcpy(t[i][j], s, sizeof s);
        }
    for (int i = 0; i < m; i++) /* y = t A + b */
        for (int j = 0; j < m; j++) {
            float s[LANES] = {0};
            for (int k = 0; k < a; k++) {
                float c = J->AT[j * a + k];
                if (c == 0.0f) continue;
                for (int l = 0; l < LANES; l++) s[l] += c * t[i][k][l];
            }
            for (int l = 0; l < LANES; l++) o[i][j][l] = s[l] + b;
        }
}

#if WINO_X86
/* F(2,3): A^T = [1 1 1 0; 0 1 -1 -1]; writes the 2 output rows directly when the 8 tiles are inside. */
AVX2 static void out_lanes_f2(const wino_job *J, const float *mm0, int64_t ldm, float b, float *yc, int64_t ty,
                              int64_t tx0, int64_t nl) {
    __m256 mm[4][4];
    for (int k = 0; k < 16; k++) mm[k / 4][k % 4] = _mm256_loadu_ps(mm0 + (int64_t)k * ldm);
    __m256 t[2][4];
    for (int j = 0; j < 4; j++) {
        t[0][j] = _mm256_add_ps(_mm256_add_ps(mm[0][j], mm[1][j]), mm[2][j]);
        t[1][j] = _mm256_sub_ps(_mm256_sub_ps(mm[1][j], mm[2][j]), mm[3][j]);
    }
    const __m256 bv = _mm256_set1_ps(b);
    __m256 o[2][2];
    for (int i = 0; i < 2; i++) {
        o[i][0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[i][0], t[i][1]), t[i][2]), bv);
        o[i][1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(t[i][1], t[i][2]), t[i][3]), bv);
    }
    if (nl == LANES && ty * 2 + 1 < J->Ho && (tx0 + LANES) * 2 <= J->Wo) {
        for (int i = 0; i < 2; i++) { /* interleave columns 0 and 1 of the 8 tiles: 16 contiguous outputs */
            __m256 lo = _mm256_unpacklo_ps(o[i][0], o[i][1]), hi = _mm256_unpackhi_ps(o[i][0], o[i][1]);
            float *yr = yc + (ty * 2 + i) * J->Wo + tx0 * 2;
            _mm256_storeu_ps(yr, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(yr + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
        return;
    }
    float ob[4][4][LANES];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) _mm256_storeu_ps(ob[i][j], o[i][j]);
    store_tiles(J, yc, ty, tx0, nl, ob);
}
#endif

/* F(4,3) output transform: y_r = sum_k A^T[r][k] x_k for r < 4, per lane */
F4_ALWAYS_INLINE void at4_apply(const float *x0, const float *x1, const float *x2, const float *x3, const float *x4,
                                const float *x5, float *y0, float *y1, float *y2, float *y3) {
    for (int l = 0; l < LANES; l++) {
        const float a0 = x0[l], a1 = x1[l], a2 = x2[l], a3 = x3[l], a4 = x4[l], a5 = x5[l];
        y0[l] = a0 + a1 + a2 + a3 + a4;
        y1[l] = a1 - a2 + 0.5f * a3 - 2.0f * a4;
        y2[l] = a1 + a2 + 0.25f * a3 + 4.0f * a4;
        y3[l] = a1 - a2 + 0.125f * a3 - 8.0f * a4 + a5;
    }
}

/* LANES tiles of one tile row: y = A^T M A + b, written as 4 rows of 32 contiguous outputs when the 8 tiles
 * are inside the image (cropped per element otherwise). */
F4_ALWAYS_INLINE void out_lanes_f4_body(const wino_job *J, const float *mm0, int64_t ldm, float b, float *yc,
                                        int64_t ty, int64_t tx0, int64_t nl) {
    float mm[6][6][LANES], t[4][6][LANES], o[4][4][LANES]; /* [row][col][lane] */
    for (int k = 0; k < 36; k++) memcpy(mm[k / 6][k % 6], mm0 + (int64_t)k * ldm, sizeof mm[0][0]);
    for (int j = 0; j < 6; j++) /* t = A^T M */
        at4_apply(mm[0][j], mm[1][j], mm[2][j], mm[3][j], mm[4][j], mm[5][j], t[0][j], t[1][j], t[2][j], t[3][j]);
    for (int i = 0; i < 4; i++) { /* y = t A + b */
        at4_apply(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[i][0], o[i][1], o[i][2], o[i][3]);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < LANES; l++) o[i][j][l] += b;
    }
    if (nl == LANES && ty * 4 + 3 < J->Ho && (tx0 + LANES) * 4 <= J->Wo) {
        for (int i = 0; i < 4; i++) {
            float *yr = yc + (ty * 4 + i) * J->Wo + tx0 * 4;
            for (int l = 0; l < LANES; l++)
                for (int j = 0; j < 4; j++) yr[l * 4 + j] = o[i][j][l];
        }
        return;
    }
    store_tiles(J, yc, ty, tx0, nl, o);
}

static void out_lanes_f4(const wino_job *J, const float *mm0, int64_t ldm, float b, float *yc, int64_t ty, int64_t tx0,
                         int64_t nl) {
    out_lanes_f4_body(J, mm0, ldm, b, yc, ty, tx0, nl);
}
#if WINO_X86
AVX2 static void out_lanes_f4_avx2(const wino_job *J, const float *mm0, int64_t ldm, float b, float *yc, int64_t ty,
                                   int64_t tx0, int64_t nl) {
    out_lanes_f4_body(J, mm0, ldm, b, yc, ty, tx0, nl);
}
#endif

static void out_range(const wino_job *J, int64_t co, int64_t g0, int64_t g1) {
    const float b = J->bias ? J->bias[J->cb0 + co] : 0.0f;
    const int64_t ldm = J->cbn * J->tc;
    for (int64_t t = g0; t < g1;) {
        tile_pos p = tile_at(J, J->t0 + t);
        int64_t nl = J->txn - p.tx;
        if (nl > g1 - t) nl = g1 - t;
        if (nl > LANES) nl = LANES;
        const float *mm0 = J->M + co * J->tc + t; /* lanes beyond nl read stale values of M: not stored */
        float *yc = J->y + (p.n * J->Cout + J->cb0 + co) * J->Ho * J->Wo;
#if WINO_X86
        if (J->m == 4 && J->avx2) {
            out_lanes_f4_avx2(J, mm0, ldm, b, yc, p.ty, p.tx, nl);
        } else if (J->m == 2 && J->avx2) {
            out_lanes_f2(J, mm0, ldm, b, yc, p.ty, p.tx, nl);
        } else
#endif
            if (J->m == 4) {
            out_lanes_f4(J, mm0, ldm, b, yc, p.ty, p.tx, nl);
        } else {
            float o[4][4][LANES];
            out_lanes_generic(J, mm0, ldm, b, o);
            store_tiles(J, yc, p.ty, p.tx, nl, o);
        }
        t += nl;
    }
}

static void out_task(void *ctx, int ith, int nth) {
    wino_job *J = ctx;
    int64_t ngrp = (J->tc + TGRP - 1) / TGRP;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        int64_t co = u / ngrp, g0 = u % ngrp * TGRP, g1 = g0 + TGRP < J->tc ? g0 + TGRP : J->tc;
        out_range(J, co, g0, g1);
    }
}

/* ---- GEMM backend choice (H8) ------------------------------------------------------------------------ */

static atomic_int wino_gemm = -1; /* -1: not read from the environment yet */

tdm_wino_gemm tdm_wino_get_gemm(void) {
    static const char *const names[] = {"blas", "packed"};
    static const int values[] = {TDM_WINO_GEMM_BLAS, TDM_WINO_GEMM_PACKED};
    return (tdm_wino_gemm)tdm_ops_env_choice(&wino_gemm, "TDM_WINO_GEMM", names, values, 2, TDM_WINO_GEMM_DEFAULT);
}

void tdm_wino_set_gemm(tdm_wino_gemm g) { atomic_store(&wino_gemm, (int)g); }

static tdm_wino_gemm wino_gemm_resolve(void) {
    tdm_wino_gemm g = tdm_wino_get_gemm();
    return g == TDM_WINO_GEMM_DEFAULT ? TDM_WINO_GEMM_DEFAULT_KIND : g;
}

static int64_t round_up(int64_t v, int64_t q) { return (v + q - 1) / q * q; }

static void run_phase(const tdm_exec *ex, wino_job *J, int64_t units, tdm_task_fn fn) {
    J->units = units;
    atomic_store(&J->next, 0);
    if (units > 1 && tdm_exec_threads(ex) > 1) tdm_pool_run(ex->pool, fn, J);
    else fn(J, 0, 1);
}

tdm_code tdm_conv2d_winograd(const tdm_exec *ex, int m, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                             const tdm_tensor *weight, const tdm_tensor *bias, int pad, float *y) {
    return tdm_conv2d_winograd_pre(ex, m, x, N, Cin, H, W, weight, bias, pad, NULL, y);
}

tdm_code tdm_conv2d_winograd_pre(const tdm_exec *ex, int m, const float *x, int64_t N, int64_t Cin, int64_t H,
                                 int64_t W, const tdm_tensor *weight, const tdm_tensor *bias, int pad,
                                 const tdm_conv_pre *pre, float *y) {
    if (m != 2 && m != 4) return TDM_ERR_INVALID_ARG;
    if (pre && pre->upsample2x && (H % 2 || W % 2)) return TDM_ERR_INVALID_ARG;
    if (!weight || weight->ndim != 4 || weight->shape[1] != Cin || weight->shape[2] != 3 || weight->shape[3] != 3 ||
        pad < 0 || N < 0 || Cin < 1 || H < 1 || W < 1 || H + 2 * pad < 3 || W + 2 * pad < 3)
        return TDM_ERR_INVALID_ARG;
    const int64_t Cout = weight->shape[0];
    if (!tdm_ops_weight_ok(weight, Cout * Cin * 9) || !tdm_ops_opt_weight_ok(bias, Cout)) return TDM_ERR_INVALID_ARG;
    if (Cin > INT32_MAX / 64 || Cout > INT32_MAX / 64) return TDM_ERR_INVALID_ARG;
    wino_job J;
    memset(&J, 0, sizeof J);
    J.m = m, J.a = m + 2, J.a2 = J.a * J.a;
    J.BT = m == 2 ? BT2 : BT4, J.G = m == 2 ? G2 : G4, J.AT = m == 2 ? AT2 : AT4;
    J.x = x, J.pre = pre, J.y = y, J.N = N, J.Cin = Cin, J.H = H, J.W = W, J.Cout = Cout, J.pad = pad, J.weight = weight;
    J.Ho = H + 2 * pad - 2, J.Wo = W + 2 * pad - 2;
    J.tyn = (J.Ho + m - 1) / m, J.txn = (J.Wo + m - 1) / m, J.T = N * J.tyn * J.txn;
    if (N == 0 || Cout == 0) return TDM_OK;
    J.gemm = wino_gemm_resolve();
    J.packed = J.gemm != TDM_WINO_GEMM_BLAS;
    J.wtco = J.packed ? PMR : WT_CO;
    /* chunk of tiles (V bounded) and block of output channels (U, M bounded): shapes only */
    int64_t tcmax = WINO_V_BYTES / (J.a2 * Cin * (int64_t)sizeof(float));
    tcmax = tcmax >= GEMM_TB ? tcmax / GEMM_TB * GEMM_TB : (tcmax >= LANES ? tcmax / LANES * LANES : LANES);
    if (tcmax > J.T) tcmax = J.T;
    int64_t cbmax = WINO_U_BYTES / (J.a2 * (Cin > tcmax ? Cin : tcmax) * (int64_t)sizeof(float));
    const int64_t cq = J.packed ? 8 * PMR : 16; /* block granule (whole A panels when packed) */
    cbmax = cbmax >= cq ? cbmax / cq * cq : (cbmax >= J.wtco ? cbmax / J.wtco * J.wtco : J.wtco);
    if (cbmax < Cout) { /* even blocks: no small last block (GEMMs with few rows run slowly) */
        int64_t nb = (Cout + cbmax - 1) / cbmax;
        cbmax = round_up((Cout + nb - 1) / nb, J.wtco);
    }
    if (cbmax > Cout) cbmax = Cout;
    int nth = tdm_exec_threads(ex);
    /* scratch: the calling thread's reusable buffers (ops_workspace.c), no per-call allocation */
    tdm_workspace *ws = tdm_ops_workspace();
    const int64_t tcmax_v = J.packed ? round_up(tcmax, PNR) : tcmax, cbmax_u = J.packed ? round_up(cbmax, PMR) : cbmax;
    J.V = tdm_workspace_get(ws, TDM_WS_WINO_V, (size_t)(J.a2 * Cin * tcmax_v) * sizeof(float));
    J.U = tdm_workspace_get(ws, TDM_WS_WINO_U, (size_t)(J.a2 * cbmax_u * Cin) * sizeof(float));
    J.M = tdm_workspace_get(ws, TDM_WS_WINO_M, (size_t)(J.a2 * cbmax * tcmax + LANES) * sizeof(float)); /* + LANES: see out_range */
    J.wscr = tdm_ops_ws_per_thread(TDM_WS_WINO_WT, nth, J.wtco * Cin * 9, &J.wstride);
    J.ldp = (J.txn + LANES) * m + 8; /* every column a lane group may read, zero beyond the input */
    if (J.ldp < W + 2 * pad) J.ldp = W + 2 * pad;
    J.rowscr = tdm_ops_ws_per_thread(TDM_WS_WINO_ROWS, nth, (J.packed ? CIB : 1) * J.a * J.ldp, &J.rstride);
    float *bf = bias ? tdm_workspace_get(ws, TDM_WS_BIAS, (size_t)Cout * sizeof(float)) : NULL;
    if (!J.V || !J.U || !J.M || !J.wscr || !J.rowscr || (bias && !bf)) return TDM_ERR_NOMEM;
    tdm_cpu_features cf = tdm_cpu_detect();
    J.avx2 = cf.avx2 && cf.fma;
    if (bias) {
        tdm_ops_widen(bias, 0, Cout, bf);
        J.bias = bf;
    }
    for (J.t0 = 0; J.t0 < J.T; J.t0 += tcmax) {
        J.tc = J.T - J.t0 < tcmax ? J.T - J.t0 : tcmax;
        const int64_t ngrp = (J.tc + TGRP - 1) / TGRP;
        J.tcp = round_up(J.tc, PNR);
        if (J.packed && J.tcp > J.tc) /* zero the padding tiles of the last B panel (not stored, kept finite) */
            for (int64_t xi = 0; xi < J.a2; xi++)
                for (int64_t ci = 0; ci < Cin; ci++) /* V[xi][last panel][ci][tc % PNR ..] */
                    memset(J.V + xi * Cin * J.tcp + (J.tcp - PNR) * Cin + ci * PNR + J.tc % PNR, 0,
                           (size_t)(J.tcp - J.tc) * sizeof(float));
        run_phase(ex, &J, (J.packed ? (Cin + CIB - 1) / CIB : Cin) * ngrp, in_task);
        for (J.cb0 = 0; J.cb0 < Cout; J.cb0 += cbmax) {
            J.cbn = Cout - J.cb0 < cbmax ? Cout - J.cb0 : cbmax;
            J.cbp = round_up(J.cbn, PMR);
            run_phase(ex, &J, (J.cbn + J.wtco - 1) / J.wtco, wt_task);
            run_phase(ex, &J, J.a2 * ((J.tc + GEMM_TB - 1) / GEMM_TB), gemm_task);
            memset(J.M + J.a2 * J.cbn * J.tc, 0, LANES * sizeof(float)); /* read by the last lane group */
            run_phase(ex, &J, J.cbn * ngrp, out_task);
        }
    }
    return TDM_OK;
}
