/* AVX2 / AVX-512 helpers shared by the x86 kernels (ops_winograd.c, ops_gemm_packed.c, ops_attention_flash.c).
 * Compiled with per-function target attributes (no global -mavx2): callers check the CPU at run time. */
#ifndef TDM_TENSOR_SIMD_X86_H
#define TDM_TENSOR_SIMD_X86_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* 8 x 8 transpose of rows r[0..7] of floats, in place (unpack, shuffle, 128-bit permute). */
__attribute__((target("avx2"))) static inline void tdm_avx2_transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One step of a 6 x 32 register tile: acc[i][h] = fma(a[i * stride], v_h, acc[i][h]) for rows i < 6 and
 * halves h < 2 (the rank-1 update of the AVX-512 micro-kernels: packed GEMM, flash attention). */
__attribute__((target("avx512f"), always_inline)) static inline void tdm_avx512_fma6x32(__m512 acc[6][2], const float *a,
                                                                                       long stride, __m512 v0,
                                                                                       __m512 v1) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        const __m512 av = _mm512_set1_ps(a[i * stride]);
        acc[i][0] = _mm512_fmadd_ps(av, v0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(av, v1, acc[i][1]);
    }
}
#endif

#endif
