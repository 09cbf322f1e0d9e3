/* Test helper: a small safetensors file of random F32 weights built tensor by tensor (the tiny CLIP text,
 * CLIP vision and ImageReward models of test_clip_text.c, test_clip_vision.c, test_imagereward.c). */
#ifndef TDM_TESTS_WFILE_UTIL_H
#define TDM_TESTS_WFILE_UTIL_H

#include <stdint.h>

#include "tensor/tensor.h"

#define TDM_TEST_WFILE_MAX 256

/* Zero-initialise (memset / {0}); tdm_test_wfile_free releases the data. */
typedef struct tdm_test_wfile {
    int n;
    char name[TDM_TEST_WFILE_MAX][128];
    tdm_tensor t[TDM_TEST_WFILE_MAX];
    void *data[TDM_TEST_WFILE_MAX]; /* owned */
} tdm_test_wfile;

/* LCG step: uniform in [-1, 1) with 24-bit resolution. */
float tdm_test_urand(uint64_t *rng);

/* Adds an F32 tensor of `shape` named `name`; every element draws one tdm_test_urand(rng) value u and is
 * data[i] when data is given, else by kind: 0 weight u * weight_scale, 1 bias 0.1 u, 2 norm gamma 1 + 0.1 u.
 * Returns the tensor's data (owned by w). */
float *tdm_test_wfile_add(tdm_test_wfile *w, uint64_t *rng, const char *name, int ndim, const int64_t *shape,
                          int kind, float weight_scale, const float *data);

void tdm_test_wfile_free(tdm_test_wfile *w);

/* Writes w (minus the tensor named skip, NULL: none) to path; a failure is a CHECK failure. */
void tdm_test_wfile_write(const tdm_test_wfile *w, const char *path, const char *skip);

#endif
