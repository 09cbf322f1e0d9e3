/* tandem bench: the quick (tiny-shape) bench runs through the library and the CLI in well under a few
 * seconds; the FLOP counts match the figures of issue 7 for SD1.5 (UNet 803 GFLOP at 64x64, VAE decode
 * 2515 GFLOP at 512x512, CLIP text 13 GFLOP) and SDXL configs build; the random-weight models load
 * through the real loaders (every tensor named and shaped as they expect). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pipeline/bench.h"
#include "test_util.h"

static int lines;
static int saw_unet, saw_peak;

static void collect(void *user, const char *line) {
    (void)user;
    lines++;
    if (strncmp(line, "unet b2", 7) == 0) saw_unet = 1;
    if (strncmp(line, "peak RSS", 8) == 0) saw_peak = 1;
    if (getenv("TDM_VERBOSE")) printf("%s\n", line);
}

static void test_flops(void) {
    tdm_unet_config u;
    tdm_vae_config v;
    tdm_clip_text_config t, t2;
    int has2 = 0;
    tdm_status st;
    CHECK(tdm_bench_configs(TDM_BENCH_SD15, &u, &v, &t, &t2, &has2, &st) == TDM_OK);
    CHECK(!has2);
    tdm_flops f;
    tdm_bench_flops_unet(&u, 1, 64, 64, 77, &f);
    double g = tdm_flops_total(&f) / 1e9;
    CHECK_MSG(g > 800 && g < 807, "SD1.5 UNet: %.1f GFLOP (issue 7: 803)", g);
    CHECK_MSG(f.conv3 / tdm_flops_total(&f) > 0.49 && f.conv3 / tdm_flops_total(&f) < 0.51, "conv3x3 share %.3f",
              f.conv3 / tdm_flops_total(&f));
    tdm_bench_flops_vae_decode(&v, 1, 64, 64, &f);
    g = tdm_flops_total(&f) / 1e9;
    CHECK_MSG(g > 2505 && g < 2525, "SD VAE decode 512: %.1f GFLOP (issue 7: 2515)", g);
    tdm_bench_flops_clip(&t, 1, 77, &f);
    g = tdm_flops_total(&f) / 1e9;
    CHECK_MSG(g > 12.5 && g < 14, "CLIP ViT-L text: %.1f GFLOP (issue 7: 13)", g);
    CHECK(tdm_bench_configs(TDM_BENCH_SDXL, &u, &v, &t, &t2, &has2, &st) == TDM_OK);
    CHECK(has2 && u.addition_text_time && u.cross_attention_dim == 2048 && t2.hidden_size == 1280);
}

static void test_quick_lib(void) {
    tdm_bench_opts o;
    tdm_bench_opts_init(&o);
    o.family = TDM_BENCH_QUICK;
    o.runs = 1;
    o.threads = 2;
    tdm_status st;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_bench_run(&o, collect, NULL, &st) == TDM_OK, "%s", st.msg);
    CHECK(saw_unet && saw_peak && lines >= 10);
    o.runs = 0;
    CHECK(tdm_bench_run(&o, collect, NULL, &st) == TDM_ERR_INVALID_ARG);
}

static void test_quick_cli(const char *argv0) {
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", argv0); /* <build>/tests/test_bench -> <build>/tandem */
    char *slash = strrchr(bin, '/');
    if (!slash) return;
    *slash = '\0';
    slash = strrchr(bin, '/');
    if (!slash) return;
    snprintf(slash + 1, sizeof bin - (size_t)(slash + 1 - bin), "tandem");
    FILE *f = fopen(bin, "rb");
    if (!f) {
        printf("%s absent: CLI part skipped\n", bin);
        return;
    }
    fclose(f);
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "'%s' bench --quick --runs 1 >/dev/null 2>&1", bin);
    int rc = system(cmd);
    CHECK_MSG(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "tandem bench --quick failed (%d)", rc);
    snprintf(cmd, sizeof cmd, "'%s' bench --quick --parts nonsense >/dev/null 2>&1", bin);
    rc = system(cmd);
    CHECK_MSG(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad --parts should exit 2 (%d)", rc);
}

int main(int argc, char **argv) {
    (void)argc;
    test_flops();
    test_quick_lib();
    test_quick_cli(argv[0]);
    return tdm_test_result();
}
