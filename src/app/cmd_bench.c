/* `tandem bench`: see src/pipeline/bench.h and docs/PERFORMANCE.md. */
#include <stdio.h>
#include <string.h>

#include "app/args.h"
#include "app/commands_bench.h"
#include "pipeline/bench.h"

static void print_line(void *user, const char *line) {
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static const char HELP[] =
    "usage: tandem bench [--quick | --sdxl] [--f32 | --bf16] [--runs N] [--warmup N] [--threads N]\n"
    "                    [--parts LIST] [--latent N] [--image N] [--seed N] [--reference]\n"
    "Builds Stable Diffusion 1.5 shaped models with seeded random weights in memory (no files) and times\n"
    "the text encoder (77 tokens), one UNet evaluation at batch 1 and 2 (64x64 latent), VAE encode and\n"
    "decode (512x512): median wall and CPU seconds of N runs after warm-up, GFLOP/s from a FLOP count of\n"
    "the shapes, the ratio to an FMA peak measured in the same run, arena and process peak memory.\n"
    "  --quick       tiny shapes (CI smoke test, well under a second)\n"
    "  --sdxl        SDXL base shapes (128x128 latent, two text encoders, 1024x1024 VAE)\n"
    "  --f32/--bf16  weight dtype (default f16)\n"
    "  --runs N      timed runs per part (default 3); --warmup N untimed runs first (default 1)\n"
    "  --parts LIST  comma-separated subset of text,unet1,unet2,vae-enc,vae-dec (default all)\n"
    "  --latent N    UNet latent side; --image N VAE image side (multiple of 8)\n"
    "  --reference   scalar reference kernels (slow)\n";

static int parse_parts(const char *s, int *out) {
    *out = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "text") == 0) *out |= TDM_BENCH_TEXT;
        else if (strcmp(t, "unet1") == 0) *out |= TDM_BENCH_UNET1;
        else if (strcmp(t, "unet2") == 0) *out |= TDM_BENCH_UNET2;
        else if (strcmp(t, "unet") == 0) *out |= TDM_BENCH_UNET1 | TDM_BENCH_UNET2;
        else if (strcmp(t, "vae-enc") == 0) *out |= TDM_BENCH_VAE_ENC;
        else if (strcmp(t, "vae-dec") == 0) *out |= TDM_BENCH_VAE_DEC;
        else if (strcmp(t, "vae") == 0) *out |= TDM_BENCH_VAE_ENC | TDM_BENCH_VAE_DEC;
        else if (strcmp(t, "all") == 0) *out |= TDM_BENCH_ALL;
        else {
            fprintf(stderr, "tandem bench: --parts: unknown part '%s' (text, unet1, unet2, vae-enc, vae-dec)\n", t);
            return 0;
        }
    }
    return 1;
}

int tdm_cmd_bench(int argc, char **argv) {
    tdm_bench_opts o;
    tdm_bench_opts_init(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(HELP, stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) o.family = TDM_BENCH_QUICK;
        else if (strcmp(a, "--sdxl") == 0) o.family = TDM_BENCH_SDXL;
        else if (strcmp(a, "--f32") == 0) o.wtype = TDM_F32;
        else if (strcmp(a, "--bf16") == 0) o.wtype = TDM_BF16;
        else if (strcmp(a, "--f16") == 0) o.wtype = TDM_F16;
        else if (strcmp(a, "--reference") == 0) o.reference = 1;
        else if (v && strcmp(a, "--runs") == 0) {
            if (!tdm_arg_int("bench", a, argv[++i], 1, 1000, &o.runs)) return 2;
        } else if (v && strcmp(a, "--warmup") == 0) {
            if (!tdm_arg_int("bench", a, argv[++i], 0, 100, &o.warmup)) return 2;
        } else if (v && strcmp(a, "--threads") == 0) {
            if (!tdm_arg_int("bench", a, argv[++i], 0, 1024, &o.threads)) return 2;
        } else if (v && strcmp(a, "--latent") == 0) {
            if (!tdm_arg_int("bench", a, argv[++i], 8, 512, &o.latent)) return 2;
        } else if (v && strcmp(a, "--image") == 0) {
            if (!tdm_arg_int("bench", a, argv[++i], 8, 4096, &o.image)) return 2;
        } else if (v && strcmp(a, "--seed") == 0) {
            int seed;
            if (!tdm_arg_int("bench", a, argv[++i], 0, 2147483647, &seed)) return 2;
            o.seed = (uint64_t)seed;
        } else if (v && strcmp(a, "--parts") == 0) {
            if (!parse_parts(argv[++i], &o.parts)) return 2;
        } else {
            fprintf(stderr, "tandem bench: unknown option or missing value '%s' (see tandem bench --help)\n", a);
            return 2;
        }
    }
    tdm_status st = {0};
    tdm_code rc = tdm_bench_run(&o, print_line, NULL, &st);
    if (rc) {
        fprintf(stderr, "tandem bench: %s\n", st.msg);
        return 1;
    }
    return 0;
}
