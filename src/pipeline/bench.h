/* `tandem bench`: builds SD-shaped models with seeded random weights in memory (no files), times the
 * text encoder, one UNet evaluation at batch 1 and 2, VAE encode and decode, and reports seconds
 * (median of N runs after warm-up; wall and process CPU time), GFLOP/s from a FLOP count of the
 * shapes, the ratio to an FMA peak measured in the same run, and peak RSS. docs/PERFORMANCE.md
 * describes the method and the FLOP counting. */
#ifndef TDM_PIPELINE_BENCH_H
#define TDM_PIPELINE_BENCH_H

#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "tensor/tensor.h"

/* Model families the bench builds. */
typedef enum tdm_bench_family {
    TDM_BENCH_SD15 = 0, /* SD1.5: UNet 64x64 latent, VAE 512x512, CLIP ViT-L text (77 tokens) */
    TDM_BENCH_SDXL,     /* SDXL base: UNet 128x128 latent, VAE 1024x1024, CLIP ViT-L + bigG text */
    TDM_BENCH_QUICK     /* tiny shapes for smoke tests (well under a second) */
} tdm_bench_family;

/* Parts to time (bit mask). */
enum {
    TDM_BENCH_TEXT = 1,
    TDM_BENCH_UNET1 = 2,
    TDM_BENCH_UNET2 = 4,
    TDM_BENCH_VAE_ENC = 8,
    TDM_BENCH_VAE_DEC = 16,
    TDM_BENCH_ALL = 31
};

typedef struct tdm_bench_opts {
    tdm_bench_family family;
    tdm_dtype wtype;  /* weight dtype: TDM_F16 (default), TDM_F32 or TDM_BF16 */
    int parts;        /* TDM_BENCH_* mask; 0 = all */
    int runs;         /* timed runs per part (median reported); >= 1 */
    int warmup;       /* untimed runs first; >= 0 */
    int threads;      /* <= 0: all CPUs */
    int latent;       /* UNet latent side override (0: family default) */
    int image;        /* VAE image side override (0: family default; multiple of 8) */
    uint64_t seed;
    int reference;    /* 1: scalar reference kernels (slow; for cross-checks) */
} tdm_bench_opts;

void tdm_bench_opts_init(tdm_bench_opts *o);

typedef void (*tdm_bench_print_fn)(void *user, const char *line);

/* Runs the bench, printing a table through print (one line per call). */
tdm_code tdm_bench_run(const tdm_bench_opts *o, tdm_bench_print_fn print, void *user, tdm_status *st);

/* ---- building blocks (also used by the tests) ------------------------------------------------ */

/* Configurations of the family (quick: tiny shapes). text2 is the second text encoder (SDXL bigG);
 * *has_text2 = 0 for families with one. */
tdm_code tdm_bench_configs(tdm_bench_family fam, tdm_unet_config *unet, tdm_vae_config *vae,
                           tdm_clip_text_config *text, tdm_clip_text_config *text2, int *has_text2, tdm_status *st);

/* Models with seeded uniform random weights (torch default-init scale: U(-1/sqrt(fan_in), +)), norm
 * gains near 1, stored in dtype wtype in memory owned by the model. pool may be NULL. */
tdm_code tdm_bench_build_unet(const tdm_unet_config *cfg, tdm_dtype wtype, uint64_t seed, tdm_pool *pool,
                              tdm_unet **out, tdm_status *st);
tdm_code tdm_bench_build_vae(const tdm_vae_config *cfg, tdm_dtype wtype, uint64_t seed, tdm_pool *pool,
                             tdm_vae **out, tdm_status *st);
tdm_code tdm_bench_build_clip(const tdm_clip_text_config *cfg, int with_projection, tdm_dtype wtype, uint64_t seed,
                              tdm_pool *pool, tdm_clip_text **out, tdm_status *st);

/* FLOP counts (multiply-add = 2 FLOPs; matrix products only: convolutions, linear layers, attention
 * q k^T and P v; element-wise work is not counted). Split by kind. */
typedef struct tdm_flops {
    double conv3, conv1, linear, attention; /* 3x3 (and other kxk) convs, 1x1 convs, Linear, attention */
} tdm_flops;
double tdm_flops_total(const tdm_flops *f);
void tdm_bench_flops_unet(const tdm_unet_config *c, int64_t B, int64_t H, int64_t W, int64_t Lc, tdm_flops *f);
void tdm_bench_flops_vae_decode(const tdm_vae_config *c, int64_t B, int64_t h, int64_t w, tdm_flops *f);
void tdm_bench_flops_vae_encode(const tdm_vae_config *c, int64_t B, int64_t H, int64_t W, tdm_flops *f);
void tdm_bench_flops_clip(const tdm_clip_text_config *c, int64_t B, int64_t L, tdm_flops *f);

/* FMA peak of the machine in GFLOP/s on all threads of pool (register-blocked AVX2 FMA loop; scalar
 * FMA when the CPU lacks AVX2), run for about `seconds`. */
double tdm_bench_fma_peak(tdm_pool *pool, double seconds);
/* Same; *per_core (may be NULL) = best per-thread rate over that thread's own CPU time (a figure that
 * does not drop when other processes share the cores). */
double tdm_bench_fma_peak2(tdm_pool *pool, double seconds, double *per_core);

/* Peak resident set size of the process in bytes (VmHWM, else ru_maxrss); current RSS (VmRSS). */
int64_t tdm_bench_peak_rss(void);
int64_t tdm_bench_cur_rss(void);

#endif
