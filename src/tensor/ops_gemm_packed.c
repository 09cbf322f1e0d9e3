/* Packed GEMM with operands in their stored dtype (F32, F16, BF16): C[M,N] = alpha A[M,K] B[K,N] + beta C.
 * Goto / BLIS structure (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", 2008):
 *   for each block of NC columns, for each block of KC of K:
 *     pack B[kc, nc] into panels of NR columns ([kc][NR], widened to f32 while packed, zero padded)
 *     for each block of MC rows: pack A[mc, kc] into panels of MR rows ([kc][MR], widened, zero padded)
 *       for each NR panel, for each MR panel: micro-kernel MR x NR over kc (register accumulators)
 * so an f16 weight is never copied whole to f32: only the KC x NC / MC x KC blocks being multiplied are.
 * Micro-kernel: 6 x 16 (12 AVX2 accumulators, 2 B loads and 6 broadcasts per k), FMA; a portable
 * kernel does the same float operations with fmaf (identical results). Where the CPU has AVX-512F, a
 * 12 x 32 kernel (two A panels x two B panels, 24 zmm accumulators, 2 B loads and 12 broadcasts per k)
 * covers the tiles it fits and the 6 x 16 one the edges: a CPU with 512-bit FMA units (AMD Zen 5, Intel
 * server cores) does twice the work per instruction. The panel layouts stay 6 x 16 and every element is
 * the same FMA chain, so all three kernels give identical bits.
 * Arithmetic per element of C, fixed by K alone (KC is a constant): for each KC block in order,
 * acc = fma chain over the block's k from 0, then C = fma(beta', C, alpha * acc) with beta' = beta for
 * the first block (C not read when beta = 0) and 1 after. The result therefore does not depend on M, N,
 * the blocking of M / N or on how callers split C among threads. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "base/numeric.h"
#include "tensor/ops_internal.h"
#include "tensor/simd_x86.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GP_X86 1
#define GP_AVX2 __attribute__((target("avx2,fma,f16c")))
#define GP_AVX512 __attribute__((target("avx512f")))
#else
#define GP_X86 0
#endif

enum { MR = TDM_GP_MR, NR = TDM_GP_NR, KC = TDM_GP_KC, MC = TDM_GP_MC, NC = TDM_GP_NC };

static int64_t b_block_floats(int64_t N) {
    int64_t nc = N < NC ? N : NC;
    return (int64_t)KC * ((nc + NR - 1) / NR * NR);
}

int64_t tdm_gemm_packed_ws_floats(int64_t N) {
    return b_block_floats(N) + (int64_t)MC * KC + 2 * NR; /* B block, A block, slack */
}

/* ---- widening runs --------------------------------------------------------------------------- */

/* dst[0..n) = elements base[off + i * step] widened. */
static inline float elem_at(const tdm_gemm_operand *X, int64_t idx) {
    switch (X->dtype) {
    case TDM_F16: return tdm_f16_to_f32(((const uint16_t *)X->data)[idx]);
    case TDM_BF16: return tdm_bf16_to_f32(((const uint16_t *)X->data)[idx]);
    default: return ((const float *)X->data)[idx];
    }
}

/* dst[0..n) = n contiguous elements from flat index off. */
static inline void widen_run(const tdm_gemm_operand *X, int64_t off, int64_t n, float *dst) {
    switch (X->dtype) {
    case TDM_F16: tdm_f16_to_f32_row((const uint16_t *)X->data + off, dst, (size_t)n); break;
    case TDM_BF16: tdm_bf16_to_f32_row((const uint16_t *)X->data + off, dst, (size_t)n); break;
    default: memcpy(dst, (const float *)X->data + off, (size_t)n * sizeof(float)); break;
    }
}

/* ---- packing ---------------------------------------------------------------------------------- */

#if GP_X86
GP_AVX2 static void tdm_avx2_transpose8(__m256 r[8]);
/* A panel [kc][MR] from a row-major (k contiguous) F32 / F16 operand, 8 k at a time: rows transposed in
 * registers, each k's MR values stored as 8 floats (the 2 extra land in the next slot, rewritten by the
 * next store; after the last k they land in the next panel or the workspace slack). kc % 8 == 0. */
GP_AVX2 static void pack_a_rows_avx2(const tdm_gemm_operand *A, int64_t i0, int64_t p0, int64_t kc, float *Ap) {
    for (int64_t k = 0; k < kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) {
            int64_t off = (i0 + (i < MR ? i : MR - 1)) * A->rs + p0 + k;
            if (A->dtype == TDM_F16)
                r[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)A->data + off)));
            else
                r[i] = _mm256_loadu_ps((const float *)A->data + off);
        }
        tdm_avx2_transpose8(r);
        for (int q = 0; q < 8; q++) _mm256_storeu_ps(Ap + (k + q) * MR, r[q]);
    }
}
#endif

/* Ap: panels of MR rows, [kc][MR] each, rows i0.. of A over k p0..p0+kc. */
static void pack_a(const tdm_gemm_operand *A, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *Ap, int avx2) {
    float run[KC];
    for (int64_t ir = 0; ir < mc; ir += MR, Ap += (int64_t)MR * kc) {
        const int64_t mr = mc - ir < MR ? mc - ir : MR;
#if GP_X86
        if (avx2 && A->cs == 1 && mr == MR && kc % 8 == 0 && (A->dtype == TDM_F32 || A->dtype == TDM_F16)) {
            pack_a_rows_avx2(A, i0 + ir, p0, kc, Ap);
            continue;
        }
#endif
        if (A->cs == 1) { /* k contiguous: one row at a time, scattered with stride MR */
            for (int64_t r = 0; r < mr; r++) {
                widen_run(A, (i0 + ir + r) * A->rs + p0, kc, run);
                for (int64_t k = 0; k < kc; k++) Ap[k * MR + r] = run[k];
            }
        } else if (A->rs == 1) { /* rows contiguous: one k at a time */
            for (int64_t k = 0; k < kc; k++) widen_run(A, (p0 + k) * A->cs + i0 + ir, mr, Ap + k * MR);
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t r = 0; r < mr; r++) Ap[k * MR + r] = elem_at(A, (i0 + ir + r) * A->rs + (p0 + k) * A->cs);
        }
        if (mr < MR)
            for (int64_t k = 0; k < kc; k++)
                for (int64_t r = mr; r < MR; r++) Ap[k * MR + r] = 0.0f;
    }
    (void)avx2;
}

#if GP_X86

/* B panel [kc][NR] from a k-contiguous operand (B(k, j) at j * cs + k: a torch Linear weight [N, K]),
 * 8 columns x 8 k at a time; F32 or F16 (F16C), full 16-column panels, kc a multiple of 8. */
GP_AVX2 static void pack_b_kcontig_avx2(const tdm_gemm_operand *B, int64_t j0, int64_t p0, int64_t kc, float *Bp) {
    for (int h = 0; h < 2; h++)
        for (int64_t k = 0; k < kc; k += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; j++) {
                int64_t off = (j0 + h * 8 + j) * B->cs + p0 + k;
                if (B->dtype == TDM_F16)
                    r[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)B->data + off)));
                else
                    r[j] = _mm256_loadu_ps((const float *)B->data + off);
            }
            tdm_avx2_transpose8(r);
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(Bp + (k + q) * NR + h * 8, r[q]);
        }
}
#endif

/* Bp: panels of NR columns, [kc][NR] each, columns j0.. of B over k p0..p0+kc. */
static void pack_b(const tdm_gemm_operand *B, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *Bp, int avx2) {
    float run[KC];
    for (int64_t jr = 0; jr < nc; jr += NR, Bp += (int64_t)NR * kc) {
        const int64_t nr = nc - jr < NR ? nc - jr : NR;
        if (B->cs == 1 && nr == NR && B->dtype == TDM_F32) { /* full panel of f32: 16 floats per k */
            const float *src = (const float *)B->data + p0 * B->rs + j0 + jr;
            for (int64_t k = 0; k < kc; k++) memcpy(Bp + k * NR, src + k * B->rs, NR * sizeof(float));
            continue;
        }
        if (B->cs == 1) { /* columns contiguous: one k at a time */
            for (int64_t k = 0; k < kc; k++) {
                widen_run(B, (p0 + k) * B->rs + j0 + jr, nr, Bp + k * NR);
                for (int64_t j = nr; j < NR; j++) Bp[k * NR + j] = 0.0f;
            }
            continue;
        }
        if (B->rs == 1) { /* k contiguous (Linear weights): one column at a time */
#if GP_X86
            if (avx2 && nr == NR && kc % 8 == 0 && (B->dtype == TDM_F16 || B->dtype == TDM_F32)) {
                pack_b_kcontig_avx2(B, j0 + jr, p0, kc, Bp);
                continue;
            }
#endif
            for (int64_t j = 0; j < nr; j++) {
                widen_run(B, (j0 + jr + j) * B->cs + p0, kc, run);
                for (int64_t k = 0; k < kc; k++) Bp[k * NR + j] = run[k];
            }
        } else {
            for (int64_t k = 0; k < kc; k++)
                for (int64_t j = 0; j < nr; j++) Bp[k * NR + j] = elem_at(B, (p0 + k) * B->rs + (j0 + jr + j) * B->cs);
        }
        for (int64_t k = 0; k < kc; k++)
            for (int64_t j = nr; j < NR; j++) Bp[k * NR + j] = 0.0f;
    }
    (void)avx2;
}

/* ---- micro-kernels ---------------------------------------------------------------------------- */

/* c[i][j] (i < mr, j < nr) = fma(beta, c, alpha * acc[i][j]); beta 0: c not read. */
static void store_tile(const float acc[MR][NR], float *c, int64_t ldc, int64_t mr, int64_t nr, float alpha, float beta) {
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) {
            float t = alpha * acc[i][j];
            c[i * ldc + j] = beta == 0.0f ? t : fmaf(beta, c[i * ldc + j], t);
        }
}

static void kernel_generic(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int64_t mr, int64_t nr,
                           float alpha, float beta) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    store_tile((const float(*)[NR])acc, c, ldc, mr, nr, alpha, beta);
}

#if GP_X86
GP_AVX2 static void kernel_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int64_t mr,
                                int64_t nr, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t i = 0; i < mr; i++) { /* the C tile arrives while the k loop runs */
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 av = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(av, b0, c40);
        c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(av, b0, c50);
        c51 = _mm256_fmadd_ps(av, b1, c51);
        a += MR;
        b += NR;
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (mr == MR && nr == NR) {
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        for (int i = 0; i < MR; i++)
            for (int h = 0; h < 2; h++) {
                float *cp = c + i * ldc + h * 8;
                __m256 t = _mm256_mul_ps(va, acc[i][h]);
                _mm256_storeu_ps(cp, beta == 0.0f ? t : _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp), t));
            }
        return;
    }
    float tile[MR][NR];
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(tile[i], acc[i][0]);
        _mm256_storeu_ps(tile[i] + 8, acc[i][1]);
    }
    store_tile((const float(*)[NR])tile, c, ldc, mr, nr, alpha, beta);
}

/* 12 x 32 tile: rows 0-5 from A panel a0, 6-11 from a1 ([kc][MR] each); columns 0-15 from B panel b0,
 * 16-31 from b1 ([kc][NR] each). Per element the FMA chain of kernel_avx2 (acc = a b + acc from 0, then
 * alpha acc, then fma(beta, c, .)): identical results. Full tiles only. */
GP_AVX512 static void kernel_avx512(int64_t kc, const float *a0, const float *a1, const float *b0, const float *b1,
                                    float *c, int64_t ldc, float alpha, float beta) {
    __m512 acc[2 * MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < 2 * MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int i = 0; i < 2 * MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        const __m512 v0 = _mm512_loadu_ps(b0 + k * NR), v1 = _mm512_loadu_ps(b1 + k * NR);
        tdm_avx512_fma6x32(acc, a0 + k * MR, 1, v0, v1);
        tdm_avx512_fma6x32(acc + MR, a1 + k * MR, 1, v0, v1);
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < 2 * MR; i++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            float *cp = c + i * ldc + h * NR;
            const __m512 t = _mm512_mul_ps(va, acc[i][h]);
            _mm512_storeu_ps(cp, beta == 0.0f ? t : _mm512_fmadd_ps(vb, _mm512_loadu_ps(cp), t));
        }
}
#endif

/* ---- driver ----------------------------------------------------------------------------------- */

static atomic_int avx512_allowed = -1; /* -1: not read from $TDM_AVX512 yet */

void tdm_ops_allow_avx512(int on) { atomic_store(&avx512_allowed, on ? 1 : 0); }

int tdm_ops_avx512(void) {
#if GP_X86
    static atomic_int cpu = -1;
    if (atomic_load(&cpu) < 0) atomic_store(&cpu, tdm_cpu_detect().avx512f);
    static const char *const names[] = {"0"};
    static const int values[] = {0};
    const int allowed = tdm_ops_env_choice(&avx512_allowed, "TDM_AVX512", names, values, 1, 1);
    return allowed && atomic_load(&cpu);
#else
    return 0;
#endif
}

static int use_avx2(void) {
#if GP_X86
    static int cached = -1;
    if (cached < 0) {
        tdm_cpu_features f = tdm_cpu_detect();
        cached = f.avx2 && f.fma && f.f16c;
    }
    return cached;
#else
    return 0;
#endif
}

void tdm_gemm_packed_single(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                            const tdm_gemm_operand *B, float beta, float *C, int64_t ldc, float *ws) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta C (beta 0: C not read) */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    const int avx2 = use_avx2(), avx512 = avx2 && tdm_ops_avx512();
    float *Bp = ws;                  /* [nc / NR][kc][NR] */
    float *Ap = ws + b_block_floats(N); /* [MC / MR][kc][MR], then slack (pack_a_avx2's overlapping stores) */
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = K - pc < KC ? K - pc : KC;
            const float bet = pc == 0 ? beta : 1.0f;
            pack_b(B, pc, kc, jc, nc, Bp, avx2);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = M - ic < MC ? M - ic : MC;
                pack_a(A, ic, mc, pc, kc, Ap, avx2);
                int64_t jr = 0;
#if GP_X86
                if (avx512) /* 12 x 32 tiles; the rows left over by the 6 x 16 kernel */
                    for (; jr + 2 * NR <= nc; jr += 2 * NR) {
                        const float *bp = Bp + jr * kc;
                        int64_t ir = 0;
                        for (; ir + 2 * MR <= mc; ir += 2 * MR)
                            kernel_avx512(kc, Ap + ir * kc, Ap + (ir + MR) * kc, bp, bp + NR * kc,
                                          C + (ic + ir) * ldc + jc + jr, ldc, alpha, bet);
                        for (; ir < mc; ir += MR)
                            for (int h = 0; h < 2; h++)
                                kernel_avx2(kc, Ap + ir * kc, bp + h * NR * kc, C + (ic + ir) * ldc + jc + jr + h * NR, ldc,
                                            mc - ir < MR ? mc - ir : MR, NR, alpha, bet);
                    }
#endif
                for (; jr < nc; jr += NR) {
                    const int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const float *bp = Bp + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t mr = mc - ir < MR ? mc - ir : MR;
                        float *cp = C + (ic + ir) * ldc + jc + jr;
#if GP_X86
                        if (avx2) kernel_avx2(kc, Ap + ir * kc, bp, cp, ldc, mr, nr, alpha, bet);
                        else
#endif
                            kernel_generic(kc, Ap + ir * kc, bp, cp, ldc, mr, nr, alpha, bet);
                    }
                }
            }
        }
    }
}

/* Forces the portable kernel (tests: the two kernels must agree bit for bit). */
void tdm_gemm_packed_single_generic(int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                                    const tdm_gemm_operand *B, float beta, float *C, int64_t ldc, float *ws) {
    if (M <= 0 || N <= 0 || K <= 0) {
        tdm_gemm_packed_single(M, N, K, alpha, A, B, beta, C, ldc, ws);
        return;
    }
    float *Bp = ws, *Ap = ws + b_block_floats(N);
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = K - pc < KC ? K - pc : KC;
            const float bet = pc == 0 ? beta : 1.0f;
            pack_b(B, pc, kc, jc, nc, Bp, 0);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = M - ic < MC ? M - ic : MC;
                pack_a(A, ic, mc, pc, kc, Ap, 0);
                for (int64_t jr = 0; jr < nc; jr += NR)
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        kernel_generic(kc, Ap + ir * kc, Bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                                       mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, alpha, bet);
            }
        }
    }
}

/* ---- GEMM on operands the caller packed (Winograd, ops_winograd.c) ----------------------------------- */

void tdm_gemm_prepacked_single(int64_t M, int64_t N, int64_t K, const float *Ap, const float *Bp, float *C, int64_t ldc,
                               int generic) {
    if (M <= 0 || N <= 0 || K <= 0) return;
#if GP_X86
    const int avx2 = !generic && use_avx2(), avx512 = avx2 && tdm_ops_avx512();
#else
    (void)generic;
#endif
    /* panel p of A starts at p MR K = (row p MR) K: rows ir.. at Ap + ir K; columns jr.. of B at Bp + jr K */
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = K - pc < KC ? K - pc : KC;
        const float bet = pc == 0 ? 0.0f : 1.0f;
        for (int64_t ic = 0; ic < M; ic += MC) { /* MC rows of A (L2) against every B micro-panel (L1) */
            const int64_t mc = M - ic < MC ? M - ic : MC;
            int64_t jr = 0;
#if GP_X86
            if (avx512) /* 12 x 32 tiles as in tdm_gemm_packed_single */
                for (; jr + 2 * NR <= N; jr += 2 * NR) {
                    const float *bp = Bp + jr * K + pc * NR;
                    int64_t ir = ic;
                    for (; ir + 2 * MR <= ic + mc; ir += 2 * MR) {
                        const float *ap = Ap + ir * K + pc * MR;
                        kernel_avx512(kc, ap, ap + MR * K, bp, bp + NR * K, C + ir * ldc + jr, ldc, 1.0f, bet);
                    }
                    for (; ir < ic + mc; ir += MR)
                        for (int h = 0; h < 2; h++)
                            kernel_avx2(kc, Ap + ir * K + pc * MR, bp + h * NR * K, C + ir * ldc + jr + h * NR, ldc,
                                        ic + mc - ir < MR ? ic + mc - ir : MR, NR, 1.0f, bet);
                }
#endif
            for (; jr < N; jr += NR) {
                const int64_t nr = N - jr < NR ? N - jr : NR;
                const float *bp = Bp + jr * K + pc * NR;
                for (int64_t ir = ic; ir < ic + mc; ir += MR) {
                    const int64_t mr = ic + mc - ir < MR ? ic + mc - ir : MR;
                    const float *ap = Ap + ir * K + pc * MR;
                    float *cp = C + ir * ldc + jr;
#if GP_X86
                    if (avx2) kernel_avx2(kc, ap, bp, cp, ldc, mr, nr, 1.0f, bet);
                    else
#endif
                        kernel_generic(kc, ap, bp, cp, ldc, mr, nr, 1.0f, bet);
                }
            }
        }
    }
}

/* ---- tdm_gemm_mixed: units of bm rows x bn columns (tdm_linear_blocks), any thread takes any unit -- */

typedef struct mixed_job {
    int64_t M, N, K, bm, bn, n_mb, units;
    float alpha, beta;
    const tdm_gemm_operand *A, *B;
    float *C;
    int64_t ldc;
    tdm_scratch ws; /* per thread packing workspace */
    atomic_llong next;
} mixed_job;

static void mixed_task(void *ctx, int ith, int nth) {
    mixed_job *J = ctx;
    (void)nth;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) {
        int64_t nb = u / J->n_mb, mb = u % J->n_mb;
        int64_t n0 = nb * J->bn, n = J->N - n0 < J->bn ? J->N - n0 : J->bn;
        int64_t m0 = mb * J->bm, m = J->M - m0 < J->bm ? J->M - m0 : J->bm;
        tdm_gemm_operand a = *J->A, b = *J->B;
        a.data = (const char *)a.data + m0 * a.rs * (int64_t)tdm_dtype_size(a.dtype);
        b.data = (const char *)b.data + n0 * b.cs * (int64_t)tdm_dtype_size(b.dtype);
        tdm_gemm_packed_single(m, n, J->K, J->alpha, &a, &b, J->beta, J->C + m0 * J->ldc + n0, J->ldc, J->ws.buf[ith]);
    }
}

static int operand_ok(const tdm_gemm_operand *X) {
    return X && X->data && (X->dtype == TDM_F32 || X->dtype == TDM_F16 || X->dtype == TDM_BF16) && X->rs >= 0 &&
           X->cs >= 0;
}

tdm_code tdm_gemm_mixed(const tdm_exec *ex, int64_t M, int64_t N, int64_t K, float alpha, const tdm_gemm_operand *A,
                        const tdm_gemm_operand *B, float beta, float *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0 || ldc < (N > 1 ? N : 1) || !operand_ok(A) || !operand_ok(B))
        return TDM_ERR_INVALID_ARG;
    if (tdm_exec_ref(ex)) return tdm_gemm_mixed_ref(M, N, K, alpha, A, B, beta, C, ldc);
    if (M == 0 || N == 0) return TDM_OK;
    mixed_job J;
    memset(&J, 0, sizeof J);
    J.M = M, J.N = N, J.K = K, J.alpha = alpha, J.beta = beta, J.A = A, J.B = B, J.C = C, J.ldc = ldc;
    tdm_linear_blocks(M, N, &J.bm, &J.bn);
    J.n_mb = (M + J.bm - 1) / J.bm;
    J.units = J.n_mb * ((N + J.bn - 1) / J.bn);
    atomic_init(&J.next, 0);
    int nth = J.units == 1 ? 1 : tdm_exec_threads(ex);
    if (tdm_scratch_alloc(&J.ws, nth, tdm_gemm_packed_ws_floats(J.bn)) != TDM_OK) return TDM_ERR_NOMEM;
    if (nth == 1) mixed_task(&J, 0, 1);
    else tdm_pool_run(ex->pool, mixed_task, &J);
    tdm_scratch_free(&J.ws);
    return TDM_OK;
}
