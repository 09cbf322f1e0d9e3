/* The tensor type: dtype, shape, strides (in elements) and a data pointer it does not own.
 * Storage belongs to whoever created it: a mapped weights file, a model, or a per-run arena. */
#ifndef TDM_TENSOR_TENSOR_H
#define TDM_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"

typedef enum tdm_dtype {
    TDM_F32 = 0,
    TDM_F16,
    TDM_BF16,
    TDM_F64,
    TDM_I64,
    TDM_I32,
    TDM_I16,
    TDM_I8,
    TDM_U8,
    TDM_BOOL,
    TDM_DTYPE_COUNT
} tdm_dtype;

#define TDM_MAX_DIMS 8

typedef struct tdm_tensor {
    tdm_dtype dtype;
    int ndim;
    int64_t shape[TDM_MAX_DIMS];
    int64_t stride[TDM_MAX_DIMS]; /* elements; contiguous row-major unless a view says otherwise */
    void *data;                   /* not owned */
} tdm_tensor;

size_t tdm_dtype_size(tdm_dtype t);
const char *tdm_dtype_name(tdm_dtype t);
int tdm_dtype_is_float(tdm_dtype t);

int64_t tdm_tensor_numel(const tdm_tensor *t);
int tdm_tensor_is_contiguous(const tdm_tensor *t);
/* A contiguous view over data (shape copied). */
tdm_tensor tdm_tensor_view(tdm_dtype dtype, void *data, int ndim, const int64_t *shape);
/* A contiguous f32 tensor in the arena; data NULL (and ndim 0) when out of memory. */
tdm_tensor tdm_tensor_arena_f32(tdm_arena *a, int ndim, const int64_t *shape);
/* Formats "[2, 4, 16, 16]" into buf. */
const char *tdm_shape_str(const tdm_tensor *t, char *buf, size_t n);
/* Same shape? */
int tdm_shape_equal(const tdm_tensor *a, const tdm_tensor *b);

/* Widens a contiguous float tensor (f32/f16/bf16/f64) or integer tensor into dst[numel]. */
tdm_code tdm_tensor_to_f32(const tdm_tensor *t, float *dst, tdm_status *st);
/* Reads element i (flat, contiguous) as double; for small tables (timesteps, ids). */
double tdm_tensor_get(const tdm_tensor *t, int64_t i);

#endif
