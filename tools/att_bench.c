/* Attention micro-bench: tdm_attention on the SD1.5 / CLIP / BERT shapes with each kernel forced
 * (tiled = OpenBLAS score tiles, flash = ops_attention_flash.c), one thread, thread CPU seconds (the
 * machine is shared: wall time is noisy), best of --reps alternating runs; GFLOP = 4 B H Lq Lk D
 * (causal counted in full, as docs/PERFORMANCE.md). Also prints the kernel the AUTO rule picks.
 * Build (after `make`):
 *   cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Isrc tools/att_bench.c build/libtandem.a \
 *      -lopenblas -lcjson -lpng -ljpeg -lm -pthread -o build/att_bench
 * Run: build/att_bench [--reps N] [--quick] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "tensor/ops.h"
#include "tensor/ops_internal.h"

typedef struct {
    const char *name;
    int64_t B, H, Lq, Lk, D;
    int causal, mask;
} shape;

static const shape shapes[] = {
    {"unet self 64x64", 1, 8, 4096, 4096, 40, 0, 0}, {"unet cross 64x64", 1, 8, 4096, 77, 40, 0, 0},
    {"unet self 32x32", 1, 8, 1024, 1024, 80, 0, 0}, {"unet cross 32x32", 1, 8, 1024, 77, 80, 0, 0},
    {"unet self 16x16", 1, 8, 256, 256, 160, 0, 0},  {"unet cross 16x16", 1, 8, 256, 77, 160, 0, 0},
    {"unet self 8x8", 1, 8, 64, 64, 160, 0, 0},      {"unet cross 8x8", 1, 8, 64, 77, 160, 0, 0},
    {"unet self 64x64 b2", 2, 8, 4096, 4096, 40, 0, 0},
    {"vae mid 512", 1, 1, 4096, 4096, 512, 0, 0},    {"clip text", 1, 12, 77, 77, 64, 1, 0},
    {"bert masked", 1, 12, 40, 40, 64, 0, 1},
};

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int reps = 2, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
    }
    printf("%-20s %5s %5s %5s %4s  %9s %9s  %7s %7s  %6s %s\n", "shape", "H", "Lq", "Lk", "D", "tiled_s", "flash_s",
           "GF/s_t", "GF/s_f", "ratio", "auto");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        if (quick && s->Lq * s->Lk * s->D * s->B * s->H > 256LL * 256 * 160 * 8) continue;
        int64_t HD = s->H * s->D, nq = s->B * s->Lq * HD, nk = s->B * s->Lk * HD;
        float *q = malloc((size_t)nq * sizeof(float)), *k = malloc((size_t)nk * sizeof(float));
        float *v = malloc((size_t)nk * sizeof(float)), *o = malloc((size_t)nq * sizeof(float));
        float *mask = s->mask ? calloc((size_t)(s->B * s->Lk), sizeof(float)) : NULL;
        tdm_randn(q, (size_t)nq, 1, 1, 0), tdm_randn(k, (size_t)nk, 1, 2, 0), tdm_randn(v, (size_t)nk, 1, 3, 0);
        if (mask)
            for (int64_t j = s->Lk - 5; j < s->Lk; j++) mask[j] = -1e30f; /* padding keys */
        double best[2] = {1e30, 1e30};
        tdm_att_kernel kern[2] = {TDM_ATT_TILED, TDM_ATT_FLASH};
        for (int r = 0; r <= reps; r++) /* run 0: warm-up (scratch grown, pages touched) */
            for (int ki = 0; ki < 2; ki++) {
                tdm_attention_set_kernel(kern[ki]);
                double t0 = cpu_s();
                if (tdm_attention(NULL, q, HD, k, HD, v, HD, s->B, s->H, s->Lq, s->Lk, s->D, 0.125f, s->causal, mask, o)) {
                    fprintf(stderr, "attention failed\n");
                    return 1;
                }
                double dt = cpu_s() - t0;
                if (r > 0 && dt < best[ki]) best[ki] = dt;
            }
        tdm_attention_set_kernel(TDM_ATT_AUTO);
        tdm_att_kernel a = tdm_attention_pick(s->B, s->H, s->Lq, s->Lk, s->D, s->causal, mask);
        double gf = 4e-9 * (double)(s->B * s->H * s->Lq * s->Lk * s->D);
        printf("%-20s %5lld %5lld %5lld %4lld  %9.4f %9.4f  %7.1f %7.1f  %6.2f %s\n", s->name, (long long)s->H,
               (long long)s->Lq, (long long)s->Lk, (long long)s->D, best[0], best[1], gf / best[0], gf / best[1],
               best[1] / best[0], a == TDM_ATT_FLASH ? "flash" : "tiled");
        fflush(stdout);
        free(q), free(k), free(v), free(o), free(mask);
    }
    return 0;
}
