#include "base/numeric.h"

#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TDM_X86 1
#endif

tdm_cpu_features tdm_cpu_detect(void) {
    tdm_cpu_features f = {0, 0, 0, 0, 0};
#ifdef TDM_X86
    __builtin_cpu_init();
    f.avx = __builtin_cpu_supports("avx");
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = f.avx && __builtin_cpu_supports("avx2"); /* F16C ships with every AVX2 CPU */
    f.avx512f = __builtin_cpu_supports("avx512f");
#endif
    return f;
}

#ifdef TDM_X86
__attribute__((target("avx,f16c"))) static void f16_row_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) dst[i] = tdm_f16_to_f32(src[i]);
}
#endif

void tdm_f16_to_f32_row(const uint16_t *src, float *dst, size_t n) {
#ifdef TDM_X86
    static atomic_int has = -1; /* CPU feature cache: every thread computes the same value */
    if (has < 0) has = tdm_cpu_detect().f16c;
    if (has) {
        f16_row_f16c(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = tdm_f16_to_f32(src[i]);
}

void tdm_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = tdm_bf16_to_f32(src[i]);
}
