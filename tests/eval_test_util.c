/* Test helpers shared by the adaptive / evaluation tests (see eval_test_util.h). */
#include "eval_test_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "test_util.h"
#include "tiny_sd_model.h"

char *tdm_test_read_text(const char *path) {
    char *buf = NULL;
    size_t n = 0;
    tdm_status st = {0};
    if (tdm_read_file(path, (size_t)1 << 26, &buf, &n, &st)) return NULL;
    return buf;
}

int tdm_test_same_file(const char *a, const char *b) {
    char *x = tdm_test_read_text(a), *y = tdm_test_read_text(b);
    int same = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

void tdm_test_path_in(char *out, size_t n, const char *dir, const char *name) {
    if (snprintf(out, n, "%s/%s", dir, name) >= (int)n) out[0] = '\0';
}

void tdm_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

int tdm_test_same_image(const tdm_image *a, const tdm_image *b) {
    return a->pixels && b->pixels && a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

int tdm_test_tiny_present(void) { return tiny_sd_fixtures_present(1); }

void tdm_test_tiny_engines(tdm_engine **e1, tdm_engine **e2) { tiny_sd_engines(e1, e2); }

void tdm_test_tiny_pair(tdm_model **sd, tdm_model **lcm, tdm_status *st) {
    char dir[PATH_MAX], lcm_dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir());
    snprintf(lcm_dir, sizeof lcm_dir, "%s/tiny-lcm", tdm_test_tmpdir());
    tiny_sd_make_model(dir, "unet-sd15-tiny", "DDIMScheduler");
    tiny_sd_make_model(lcm_dir, "unet-lcm-tiny", "LCMScheduler");
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = dir;
    CHECK(tdm_model_load(&mp, sd, st) == TDM_OK);
    mp.path = lcm_dir;
    CHECK(tdm_model_load(&mp, lcm, st) == TDM_OK);
}
