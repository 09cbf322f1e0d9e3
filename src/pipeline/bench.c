/* `tandem bench` driver: FMA peak, model building, timed runs (median of wall and process CPU time),
 * GFLOP/s against the FLOP counts of bench_flops.c, arena and process peak memory. */
#include "pipeline/bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/arena.h"
#include "base/numeric.h"
#include "base/rng.h"

void tdm_bench_opts_init(tdm_bench_opts *o) {
    memset(o, 0, sizeof *o);
    o->family = TDM_BENCH_SD15;
    o->wtype = TDM_F16;
    o->parts = TDM_BENCH_ALL;
    o->runs = 3;
    o->warmup = 1;
    o->seed = 1;
}

/* ---- clocks and memory ----------------------------------------------------------------------- */

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) { /* user + system time of all threads of the process */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* system CPU seconds and minor page faults of the process so far */
static void sys_faults_now(double *sys_s, double *minflt) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *sys_s = (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    *minflt = (double)ru.ru_minflt;
}

static int64_t proc_status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

int64_t tdm_bench_peak_rss(void) {
    int64_t kb = proc_status_kb("VmHWM");
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss; /* KiB on Linux */
    }
    return kb * 1024;
}

int64_t tdm_bench_cur_rss(void) {
    int64_t kb = proc_status_kb("VmRSS");
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- FMA peak -------------------------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
/* 12 independent FMA chains (FMA latency 4-5 cycles x 2 ports needs >= 10 in flight):
 * a_i = a_i * b + c converges (b < 1), so nothing overflows however long it runs. */
__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t iters) {
    const __m256 b = _mm256_set1_ps(0.99999f), c = _mm256_set1_ps(1e-3f);
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
        a[0] = _mm256_fmadd_ps(a[0], b, c);
        a[1] = _mm256_fmadd_ps(a[1], b, c);
        a[2] = _mm256_fmadd_ps(a[2], b, c);
        a[3] = _mm256_fmadd_ps(a[3], b, c);
        a[4] = _mm256_fmadd_ps(a[4], b, c);
        a[5] = _mm256_fmadd_ps(a[5], b, c);
        a[6] = _mm256_fmadd_ps(a[6], b, c);
        a[7] = _mm256_fmadd_ps(a[7], b, c);
        a[8] = _mm256_fmadd_ps(a[8], b, c);
        a[9] = _mm256_fmadd_ps(a[9], b, c);
        a[10] = _mm256_fmadd_ps(a[10], b, c);
        a[11] = _mm256_fmadd_ps(a[11], b, c);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
/* The same with 512-bit vectors (CPUs with AVX-512F: twice the FLOPs per instruction, and on cores with
 * 512-bit FMA units such as AMD Zen 5 twice the FLOPs per cycle). */
__attribute__((target("avx512f"))) static float fma_loop_avx512(int64_t iters) {
    const __m512 b = _mm512_set1_ps(0.99999f), c = _mm512_set1_ps(1e-3f);
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    return out[0];
}
#else
#define HAVE_X86 0
#endif

static float fma_loop_scalar(int64_t iters) { /* 12 lanes x 8 */
    float a[96];
    for (int i = 0; i < 96; i++) a[i] = (float)i;
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 96; i++) a[i] = fmaf(a[i], 0.99999f, 1e-3f);
    float s = 0;
    for (int i = 0; i < 96; i++) s += a[i];
    return s;
}

typedef struct fma_job {
    int64_t iters;
    int avx2, avx512;
    volatile float sink[256];
    double cpu[256]; /* thread CPU seconds of the last run, per thread */
} fma_job;

static double thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fma_task(void *ctx, int ith, int nth) {
    fma_job *J = ctx;
    float r;
    double c0 = thread_cpu_now();
#if HAVE_X86
    if (J->avx512) r = fma_loop_avx512(J->iters);
    else if (J->avx2) r = fma_loop_avx2(J->iters);
    else
#endif
        r = fma_loop_scalar(J->iters);
    J->sink[ith % 256] = r;
    J->cpu[ith % 256] = thread_cpu_now() - c0;
}

double tdm_bench_fma_peak(tdm_pool *pool, double seconds) { return tdm_bench_fma_peak2(pool, seconds, NULL); }

double tdm_bench_fma_peak2(tdm_pool *pool, double seconds, double *per_core) {
    tdm_cpu_features cf = tdm_cpu_detect();
    fma_job J;
    memset(&J, 0, sizeof J);
    J.avx2 = HAVE_X86 && cf.avx2 && cf.fma;
    J.avx512 = HAVE_X86 && cf.avx512f; /* the widest FMA the CPU has (the packed GEMM uses it) */
    const double flops_per_iter = (J.avx512 ? 16.0 : 8.0) * 12.0 * 2.0; /* 12 chains x lanes x FMA */
    int nth = pool ? tdm_pool_size(pool) : 1;
    /* calibrate on all threads, then run for about `seconds` and keep the best of 3 */
    J.iters = 1 << 16;
    double t0 = wall_now();
    tdm_pool_run(pool, fma_task, &J);
    double dt = wall_now() - t0;
    double rate = (double)J.iters / (dt > 1e-6 ? dt : 1e-6);
    J.iters = (int64_t)(rate * seconds / 3.0) + 1;
    double best = 0, best_core = 0;
    for (int k = 0; k < 3; k++) {
        t0 = wall_now();
        tdm_pool_run(pool, fma_task, &J);
        dt = wall_now() - t0;
        double g = flops_per_iter * (double)J.iters * nth / dt / 1e9;
        if (g > best) best = g;
        for (int i = 0; i < nth && i < 256; i++) { /* per core: FLOPs over the thread's own CPU time */
            double gc = flops_per_iter * (double)J.iters / (J.cpu[i] > 1e-9 ? J.cpu[i] : 1e-9) / 1e9;
            if (gc > best_core) best_core = gc;
        }
    }
    if (per_core) *per_core = best_core;
    return best;
}

/* ---- output ---------------------------------------------------------------------------------- */

typedef struct out {
    tdm_bench_print_fn print;
    void *user;
} out;

static void say(const out *o, const char *fmt, ...) TDM_PRINTF(2, 3);
static void say(const out *o, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->print) o->print(o->user, line);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- parts ----------------------------------------------------------------------------------- */

typedef struct bench_ctx {
    const tdm_bench_opts *o;
    tdm_exec ex;
    tdm_arena arena;
    tdm_status *st;
    out *po;
    double peak_gflops; /* all threads, wall clock */
    double peak_core;   /* one core, per CPU second (load-independent) */
    /* models */
    tdm_unet_config ucfg;
    tdm_vae_config vcfg;
    tdm_clip_text_config tcfg, tcfg2;
    int has_text2;
    tdm_unet *unet;
    tdm_vae *vae;
    tdm_clip_text *text, *text2;
    /* inputs / outputs (malloc) */
    int64_t lat_h, lat_w, img, Lc, ctx_dim;
    float *sample, *timesteps, *context, *text_embeds, *time_ids, *noise_out; /* batch 2 sized */
    float *image, *latent, *mean;
    int32_t *ids;
} bench_ctx;

typedef tdm_code (*run_fn)(bench_ctx *b, int batch);

static tdm_code run_text(bench_ctx *b, int batch) {
    (void)batch;
    tdm_clip_text_opts op;
    tdm_clip_text_opts_init(&op);
    if (b->has_text2) op.skip = 2, op.final_ln = 0; /* SDXL: penultimate layer */
    TDM_TRY(tdm_clip_text_forward(b->text, &b->ex, &b->arena, b->ids, 1, 77, &op, b->context, NULL, NULL, b->st));
    if (b->has_text2)
        TDM_TRY(tdm_clip_text_forward(b->text2, &b->ex, &b->arena, b->ids, 1, 77, &op, b->context, NULL,
                                      b->text_embeds, b->st));
    return TDM_OK;
}

static tdm_code run_unet(bench_ctx *b, int batch) {
    tdm_unet_inputs in;
    memset(&in, 0, sizeof in);
    in.B = batch;
    in.H = (int)b->lat_h;
    in.W = (int)b->lat_w;
    in.sample = b->sample;
    in.timesteps = b->timesteps;
    in.context = b->context;
    in.context_len = (int)b->Lc;
    if (b->ucfg.addition_text_time) {
        in.text_embeds = b->text_embeds;
        in.text_embeds_dim = b->ucfg.projection_class_embeddings_input_dim - 6 * b->ucfg.addition_time_embed_dim;
        in.time_ids = b->time_ids;
        in.n_time_ids = 6;
    }
    return tdm_unet_forward(b->unet, &b->ex, &b->arena, &in, b->noise_out, b->st);
}

static tdm_code run_unet1(bench_ctx *b, int batch) {
    (void)batch;
    return run_unet(b, 1);
}
static tdm_code run_unet2(bench_ctx *b, int batch) {
    (void)batch;
    return run_unet(b, 2);
}

static tdm_code run_vae_enc(bench_ctx *b, int batch) {
    (void)batch;
    return tdm_vae_encode(b->vae, &b->ex, &b->arena, b->image, 1, b->img, b->img, b->mean, NULL, NULL, b->st);
}

static tdm_code run_vae_dec(bench_ctx *b, int batch) {
    (void)batch;
    const int s = tdm_vae_latent_scale(&b->vcfg);
    return tdm_vae_decode(b->vae, &b->ex, &b->arena, b->latent, 1, b->img / s, b->img / s, b->image, b->st);
}

static tdm_code time_part(bench_ctx *b, const char *name, const char *shape, run_fn fn, const tdm_flops *fl) {
    const tdm_bench_opts *o = b->o;
    double *wall = calloc((size_t)o->runs, sizeof *wall), *cpu = calloc((size_t)o->runs, sizeof *cpu);
    double *sys = calloc((size_t)o->runs, sizeof *sys), *flt = calloc((size_t)o->runs, sizeof *flt);
    if (!wall || !cpu || !sys || !flt) {
        free(wall);
        free(cpu);
        free(sys);
        free(flt);
        return tdm_fail(b->st, TDM_ERR_NOMEM, "bench: out of memory");
    }
    tdm_code rc = TDM_OK;
    b->arena.peak = 0;
    for (int i = 0; !rc && i < o->warmup; i++) rc = fn(b, 1);
    for (int i = 0; !rc && i < o->runs; i++) {
        double w0 = wall_now(), c0 = cpu_now(), s0, f0, s1, f1;
        sys_faults_now(&s0, &f0);
        rc = fn(b, 1);
        wall[i] = wall_now() - w0;
        cpu[i] = cpu_now() - c0;
        sys_faults_now(&s1, &f1);
        sys[i] = s1 - s0, flt[i] = f1 - f0;
    }
    if (!rc) {
        double tot = tdm_flops_total(fl), wmin = wall[0];
        for (int i = 1; i < o->runs; i++) wmin = wall[i] < wmin ? wall[i] : wmin;
        double wm = median(wall, o->runs), cm = median(cpu, o->runs), sm = median(sys, o->runs);
        double fm = median(flt, o->runs);
        double gf = tot / wm / 1e9;
        say(b->po, "%-12s %-22s %8.1f %8.3f %8.3f %8.3f %8.1f %6.1f%% %6.1f%% %8.0f %7.3f %8.0f", name, shape, tot / 1e9,
            wm, wmin, cm, gf, 100.0 * gf / b->peak_gflops, 100.0 * tot / cm / 1e9 / b->peak_core,
            (double)b->arena.peak / 1048576.0, sm, fm);
    }
    free(wall);
    free(cpu);
    free(sys);
    free(flt);
    return rc;
}

static void flops_line(bench_ctx *b, const char *name, const tdm_flops *f) {
    double t = tdm_flops_total(f);
    if (t <= 0) return;
    say(b->po, "  %-10s %9.1f GFLOP: conv3x3 %4.1f%%, conv1x1 %4.1f%%, linear %4.1f%%, attention %4.1f%%", name,
        t / 1e9, 100 * f->conv3 / t, 100 * f->conv1 / t, 100 * f->linear / t, 100 * f->attention / t);
}

static void fill_normal(float *x, int64_t n, uint64_t seed) { tdm_randn(x, (size_t)n, seed, 0, 0); }

static tdm_code setup_inputs(bench_ctx *b) {
    const tdm_bench_opts *o = b->o;
    const tdm_unet_config *u = &b->ucfg;
    b->lat_h = b->lat_w = o->latent > 0 ? o->latent : (o->family == TDM_BENCH_QUICK ? 16 : u->sample_size);
    b->img = o->image > 0 ? o->image : (o->family == TDM_BENCH_QUICK ? 64 : o->family == TDM_BENCH_SDXL ? 1024 : 512);
    const int s = tdm_vae_latent_scale(&b->vcfg);
    if (b->img % s) return tdm_fail(b->st, TDM_ERR_INVALID_ARG, "bench: image size %lld is not a multiple of %d",
                                    (long long)b->img, s);
    b->Lc = 77;
    b->ctx_dim = u->cross_attention_dim;
    const int64_t hw = b->lat_h * b->lat_w, ih = b->img / s;
    b->sample = malloc((size_t)(2 * u->in_channels * hw) * sizeof(float));
    b->noise_out = malloc((size_t)(2 * u->out_channels * hw) * sizeof(float));
    b->timesteps = malloc(2 * sizeof(float));
    b->context = calloc((size_t)(2 * b->Lc * b->ctx_dim), sizeof(float));
    b->text_embeds = calloc((size_t)(2 * 4096), sizeof(float));
    b->time_ids = malloc(12 * sizeof(float));
    b->image = malloc((size_t)(3 * b->img * b->img) * sizeof(float));
    b->latent = malloc((size_t)(b->vcfg.latent_channels * ih * ih) * sizeof(float));
    b->mean = malloc((size_t)(b->vcfg.latent_channels * ih * ih) * sizeof(float));
    b->ids = malloc(77 * sizeof(int32_t));
    if (!b->sample || !b->noise_out || !b->timesteps || !b->context || !b->text_embeds || !b->time_ids || !b->image ||
        !b->latent || !b->mean || !b->ids)
        return tdm_fail(b->st, TDM_ERR_NOMEM, "bench: out of memory for inputs");
    fill_normal(b->sample, 2 * u->in_channels * hw, o->seed + 11);
    b->timesteps[0] = b->timesteps[1] = 500.0f;
    fill_normal(b->context, 2 * b->Lc * b->ctx_dim, o->seed + 12);
    fill_normal(b->text_embeds, 2 * 4096, o->seed + 13);
    const float ids6[6] = {1024, 1024, 0, 0, 1024, 1024};
    for (int i = 0; i < 12; i++) b->time_ids[i] = ids6[i % 6];
    fill_normal(b->image, 3 * b->img * b->img, o->seed + 14);
    for (int64_t i = 0; i < 3 * b->img * b->img; i++) b->image[i] = tanhf(b->image[i]); /* in [-1, 1] */
    fill_normal(b->latent, b->vcfg.latent_channels * ih * ih, o->seed + 15);
    int vocab = b->tcfg.vocab_size;
    b->ids[0] = vocab - 2; /* bos */
    for (int i = 1; i < 77; i++) b->ids[i] = i < 20 ? (i * 7919) % (vocab - 2) : vocab - 1; /* words, eos/pad */
    return TDM_OK;
}

static void bench_free(bench_ctx *b) {
    tdm_unet_free(b->unet);
    tdm_vae_free(b->vae);
    tdm_clip_text_free(b->text);
    tdm_clip_text_free(b->text2);
    free(b->sample), free(b->noise_out), free(b->timesteps), free(b->context), free(b->text_embeds);
    free(b->time_ids), free(b->image), free(b->latent), free(b->mean), free(b->ids);
    tdm_arena_free(&b->arena);
}

static const char *family_name(tdm_bench_family f) {
    return f == TDM_BENCH_SDXL ? "SDXL" : f == TDM_BENCH_QUICK ? "quick (tiny)" : "SD1.5";
}

static const char *dtype_name(tdm_dtype d) { return d == TDM_F32 ? "f32" : d == TDM_BF16 ? "bf16" : "f16"; }

static tdm_code bench_body(bench_ctx *b, tdm_pool *pool) {
    const tdm_bench_opts *o = b->o;
    const int parts = o->parts ? o->parts : TDM_BENCH_ALL;
    TDM_TRY(tdm_bench_configs(o->family, &b->ucfg, &b->vcfg, &b->tcfg, &b->tcfg2, &b->has_text2, b->st));
    TDM_TRY(setup_inputs(b));
    int64_t rss0 = tdm_bench_cur_rss();
    double t0 = wall_now();
    if (parts & TDM_BENCH_TEXT) {
        TDM_TRY(tdm_bench_build_clip(&b->tcfg, 0, o->wtype, o->seed + 1, pool, &b->text, b->st));
        if (b->has_text2) TDM_TRY(tdm_bench_build_clip(&b->tcfg2, 1, o->wtype, o->seed + 2, pool, &b->text2, b->st));
    }
    if (parts & (TDM_BENCH_UNET1 | TDM_BENCH_UNET2))
        TDM_TRY(tdm_bench_build_unet(&b->ucfg, o->wtype, o->seed + 3, pool, &b->unet, b->st));
    if (parts & (TDM_BENCH_VAE_ENC | TDM_BENCH_VAE_DEC))
        TDM_TRY(tdm_bench_build_vae(&b->vcfg, o->wtype, o->seed + 4, pool, &b->vae, b->st));
    int64_t rss1 = tdm_bench_cur_rss();
    say(b->po, "models built in %.1f s: %.0f MB of %s weights resident", wall_now() - t0,
        (double)(rss1 - rss0) / 1048576.0, dtype_name(o->wtype));

    tdm_flops ft = {0, 0, 0, 0}, fu1, fu2, fe, fd;
    tdm_bench_flops_clip(&b->tcfg, 1, 77, &ft);
    if (b->has_text2) {
        tdm_flops f2;
        tdm_bench_flops_clip(&b->tcfg2, 1, 77, &f2);
        ft.linear += f2.linear, ft.attention += f2.attention;
    }
    const int s = tdm_vae_latent_scale(&b->vcfg);
    tdm_bench_flops_unet(&b->ucfg, 1, b->lat_h, b->lat_w, b->Lc, &fu1);
    tdm_bench_flops_unet(&b->ucfg, 2, b->lat_h, b->lat_w, b->Lc, &fu2);
    tdm_bench_flops_vae_encode(&b->vcfg, 1, b->img, b->img, &fe);
    tdm_bench_flops_vae_decode(&b->vcfg, 1, b->img / s, b->img / s, &fd);
    say(b->po, "FLOP counts (matrix products; multiply-add = 2):");
    flops_line(b, "text", &ft);
    flops_line(b, "unet b1", &fu1);
    flops_line(b, "vae enc", &fe);
    flops_line(b, "vae dec", &fd);
    say(b->po, "%-12s %-22s %8s %8s %8s %8s %8s %7s %7s %8s %7s %8s", "part", "shape", "GFLOP", "wall_s", "min_s",
        "cpu_s", "GFLOP/s", "%peak", "%core", "arena_MB", "sys_s", "minflt");
    char shape[64];
    if (parts & TDM_BENCH_TEXT) TDM_TRY(time_part(b, "text", b->has_text2 ? "1x77 tokens (L + G)" : "1x77 tokens",
                                                  run_text, &ft));
    snprintf(shape, sizeof shape, "1x%dx%lldx%lld", b->ucfg.in_channels, (long long)b->lat_h, (long long)b->lat_w);
    if (parts & TDM_BENCH_UNET1) TDM_TRY(time_part(b, "unet b1", shape, run_unet1, &fu1));
    shape[0] = '2';
    if (parts & TDM_BENCH_UNET2) TDM_TRY(time_part(b, "unet b2", shape, run_unet2, &fu2));
    snprintf(shape, sizeof shape, "1x3x%lldx%lld", (long long)b->img, (long long)b->img);
    if (parts & TDM_BENCH_VAE_ENC) TDM_TRY(time_part(b, "vae encode", shape, run_vae_enc, &fe));
    if (parts & TDM_BENCH_VAE_DEC) TDM_TRY(time_part(b, "vae decode", shape, run_vae_dec, &fd));
    say(b->po, "peak RSS %.0f MB (all built models resident + largest activations)",
        (double)tdm_bench_peak_rss() / 1048576.0);
    return TDM_OK;
}

tdm_code tdm_bench_run(const tdm_bench_opts *o, tdm_bench_print_fn print, void *user, tdm_status *st) {
    if (o->runs < 1 || o->runs > 1000 || o->warmup < 0 || o->warmup > 100)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bench: runs must be 1..1000 and warm-up 0..100");
    if (o->latent < 0 || o->latent > 512 || o->image < 0 || o->image > 4096)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "bench: latent must be 0..512 and image 0..4096");
    out po = {print, user};
    tdm_pool *pool = NULL;
    TDM_TRY(tdm_pool_create(&pool, o->threads, st));
    bench_ctx b;
    memset(&b, 0, sizeof b);
    b.o = o;
    b.ex.pool = pool;
    b.ex.reference = o->reference;
    b.st = st;
    b.po = &po;
    tdm_arena_init(&b.arena, (size_t)64 << 20);
    double load[3] = {-1, -1, -1};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(lf);
    }
    say(&po, "tandem bench: %s shapes, %s weights, %d threads, median of %d runs after %d warm-up%s", family_name(o->family),
        dtype_name(o->wtype), tdm_pool_size(pool), o->runs, o->warmup, o->reference ? ", REFERENCE kernels" : "");
    say(&po, "load average before: %.2f %.2f %.2f (other processes share the cores: compare cpu_s with wall_s)",
        load[0], load[1], load[2]);
    b.peak_gflops = tdm_bench_fma_peak2(pool, o->family == TDM_BENCH_QUICK ? 0.05 : 0.6, &b.peak_core);
    {
        tdm_cpu_features cf = tdm_cpu_detect();
        say(&po, "FMA peak (%s): %.1f GFLOP/s on %d threads (wall), %.1f GFLOP/s per core per CPU second",
            cf.avx512f ? "AVX-512" : cf.avx2 && cf.fma ? "AVX2" : "scalar", b.peak_gflops, tdm_pool_size(pool),
            b.peak_core);
    }
    say(&po, "columns: GFLOP/s = GFLOP / median wall_s; %%peak = that / FMA peak (wall); %%core = GFLOP / median "
             "cpu_s / per-core peak (load-independent kernel efficiency); sys_s, minflt: median system CPU "
             "seconds and minor page faults per run");
    tdm_code rc = bench_body(&b, pool);
    bench_free(&b);
    tdm_pool_free(pool);
    return rc;
}
