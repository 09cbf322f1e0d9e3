/* Test helpers for the full-size tensor-name manifests ({tensor_name: [shape...]}, no dtypes): SPARSE
 * safetensors files (header written, then ftruncate to the full size: no weight bytes, so GB-sized files
 * cost nothing), JSON loading and folder creation. Used by test_manifests*.c, test_controlnet.c and
 * test_lora.c. */
#ifndef TDM_TESTS_MANIFEST_UTIL_H
#define TDM_TESTS_MANIFEST_UTIL_H

#include "base/json.h"

#if defined(__GNUC__)
#define TDM_TEST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TDM_TEST_PRINTF(a, b)
#endif

/* Edits applied while writing a sparse file (all NULL: the manifest as it is). */
typedef struct tdm_sparse_edit {
    const char *remove;     /* drop this tensor */
    const char *reshape;    /* change this tensor's first dim (+1) */
    const char *add;        /* add this tensor [4] */
    const char *add_i64;    /* add this int64 tensor [1, 77] (position_ids buffer) */
    const char *add_scalar; /* add this 0-dim tensor (logit_scale) */
} tdm_sparse_edit;

/* Writes the manifest object `man` (name -> shape) as a sparse safetensors file of dtype `dt` ("F32",
 * "F16", "BF16"), with the edits `ed` (NULL: none). Returns 0, or -1 when the file cannot be written. */
int tdm_test_write_sparse(const char *path, const cJSON *man, const char *dt, const tdm_sparse_edit *ed);

/* Loads dir/name (exits 1 with the error on failure). */
cJSON *tdm_test_load_json(const char *dir, const char *name);

/* mkdir of the formatted path (0755; an existing folder is fine). */
void tdm_test_mkdirf(const char *fmt, ...) TDM_TEST_PRINTF(1, 2);

/* Writes text / cJSON_Print(j) to the formatted path (exits 1 when it cannot be opened). */
void tdm_test_write_strf(const char *text, const char *fmt, ...) TDM_TEST_PRINTF(2, 3);
void tdm_test_write_jsonf(const cJSON *j, const char *fmt, ...) TDM_TEST_PRINTF(2, 3);

#endif
