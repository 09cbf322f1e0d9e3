/* Random-weight safetensors files for model tests (see wfile_util.h). */
#include "wfile_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "test_util.h"

float tdm_test_urand(uint64_t *rng) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

float *tdm_test_wfile_add(tdm_test_wfile *w, uint64_t *rng, const char *name, int ndim, const int64_t *shape,
                          int kind, float weight_scale, const float *data) {
    if (w->n >= TDM_TEST_WFILE_MAX) {
        fprintf(stderr, "tdm_test_wfile_add: more than %d tensors\n", TDM_TEST_WFILE_MAX);
        exit(1);
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *d = malloc((size_t)n * sizeof(float)); /* [shape] */
    if (!d) exit(1);
    for (int64_t i = 0; i < n; i++) {
        float u = tdm_test_urand(rng);
        d[i] = data ? data[i] : kind == 0 ? u * weight_scale : kind == 1 ? 0.1f * u : 1.0f + 0.1f * u;
    }
    snprintf(w->name[w->n], sizeof w->name[0], "%s", name);
    w->t[w->n] = tdm_tensor_view(TDM_F32, d, ndim, shape);
    w->data[w->n] = d;
    w->n++;
    return d;
}

void tdm_test_wfile_free(tdm_test_wfile *w) {
    for (int i = 0; i < w->n; i++) free(w->data[i]);
    w->n = 0;
}

void tdm_test_wfile_write(const tdm_test_wfile *w, const char *path, const char *skip) {
    const char *names[TDM_TEST_WFILE_MAX];
    tdm_tensor ts[TDM_TEST_WFILE_MAX];
    int k = 0;
    for (int i = 0; i < w->n; i++) {
        if (skip && !strcmp(w->name[i], skip)) continue;
        names[k] = w->name[i];
        ts[k++] = w->t[i];
    }
    tdm_status st;
    tdm_status_clear(&st);
    CHECK_MSG(tdm_st_write(path, k, names, ts, &st) == TDM_OK, "%s", st.msg);
}
