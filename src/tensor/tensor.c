#include "tensor/tensor.h"

#include <stdio.h>
#include <string.h>

#include "base/numeric.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[TDM_DTYPE_COUNT] = {
    [TDM_F32] = {"F32", 4}, [TDM_F16] = {"F16", 2}, [TDM_BF16] = {"BF16", 2}, [TDM_F64] = {"F64", 8},
    [TDM_I64] = {"I64", 8}, [TDM_I32] = {"I32", 4}, [TDM_I16] = {"I16", 2},   [TDM_I8] = {"I8", 1},
    [TDM_U8] = {"U8", 1},   [TDM_BOOL] = {"BOOL", 1},
};

size_t tdm_dtype_size(tdm_dtype t) { return (unsigned)t < TDM_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *tdm_dtype_name(tdm_dtype t) { return (unsigned)t < TDM_DTYPE_COUNT ? dtype_info[t].name : "?"; }
int tdm_dtype_is_float(tdm_dtype t) { return t == TDM_F32 || t == TDM_F16 || t == TDM_BF16 || t == TDM_F64; }

int64_t tdm_tensor_numel(const tdm_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int tdm_tensor_is_contiguous(const tdm_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

tdm_tensor tdm_tensor_view(tdm_dtype dtype, void *data, int ndim, const int64_t *shape) {
    tdm_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    t.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

tdm_tensor tdm_tensor_arena_f32(tdm_arena *a, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    void *p = tdm_arena_alloc(a, (size_t)n * sizeof(float));
    tdm_tensor t = tdm_tensor_view(TDM_F32, p, p ? ndim : 0, shape);
    return t;
}

const char *tdm_shape_str(const tdm_tensor *t, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

int tdm_shape_equal(const tdm_tensor *a, const tdm_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

tdm_code tdm_tensor_to_f32(const tdm_tensor *t, float *dst, tdm_status *st) {
    if (!tdm_tensor_is_contiguous(t)) return tdm_fail(st, TDM_ERR_INTERNAL, "tdm_tensor_to_f32: not contiguous");
    size_t n = (size_t)tdm_tensor_numel(t);
    switch (t->dtype) {
    case TDM_F32: memcpy(dst, t->data, n * 4); return TDM_OK;
    case TDM_F16: tdm_f16_to_f32_row(t->data, dst, n); return TDM_OK;
    case TDM_BF16: tdm_bf16_to_f32_row(t->data, dst, n); return TDM_OK;
    default:
        for (size_t i = 0; i < n; i++) dst[i] = (float)tdm_tensor_get(t, (int64_t)i);
        return TDM_OK;
    }
}

double tdm_tensor_get(const tdm_tensor *t, int64_t i) {
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case TDM_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case TDM_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return tdm_f16_to_f32(v); }
    case TDM_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return tdm_bf16_to_f32(v); }
    case TDM_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case TDM_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case TDM_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case TDM_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); return v; }
    case TDM_I8: return (double)(int8_t)p[i];
    case TDM_U8: case TDM_BOOL: return p[i];
    default: return 0;
    }
}
