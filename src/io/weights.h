/* A model component's weights: canonical (diffusers / transformers) names -> tensor views into
 * mmapped safetensors files. Single-file checkpoints are mapped to the canonical names on load by a
 * name mapper, so model code reads one naming only. Every lookup marks the tensor used; after a
 * model is built, tdm_weights_check_unused reports anything the model did not take. */
#ifndef TDM_IO_WEIGHTS_H
#define TDM_IO_WEIGHTS_H

#include <stdarg.h>

#include "base/error.h"
#include "io/safetensors.h"
#include "tensor/tensor.h"

typedef struct tdm_weight {
    char *name;           /* canonical name (owned) */
    tdm_tensor t;         /* view into a mapped file or into owned storage */
    const char *src_file; /* file path, for messages (owned by the file) */
    const char *src_name; /* name inside the file (owned by the file) */
    int used;
} tdm_weight;

/* Emits canonical entries for one tensor of a file. A mapper calls tdm_weights_emit 0..k times
 * (0 = the tensor is a known extra that the component ignores, e.g. position_ids buffers);
 * returns TDM_OK or an error naming the tensor. */
typedef struct tdm_weights tdm_weights;
typedef tdm_code (*tdm_name_mapper)(tdm_weights *ws, const char *name, const tdm_tensor *t, void *ctx,
                                    tdm_status *st);

struct tdm_weights {
    tdm_safetensors *files; /* owned (opened by tdm_weights_add_file) */
    int n_files, cap_files;
    tdm_weight *w;  /* sorted by name after tdm_weights_finish */
    int n, cap;
    void **owned; /* extra buffers owned by the store (converted tensors) */
    int n_owned, cap_owned;
    /* current source while mapping */
    const char *cur_file, *cur_name;
    char what[256]; /* component label for messages, e.g. "unet" */
};

void tdm_weights_init(tdm_weights *ws, const char *what);
void tdm_weights_free(tdm_weights *ws);

/* Opens a safetensors file and maps every tensor whose name starts with prefix ("" for all):
 * the prefix is stripped and the rest passed to mapper (NULL = identity). */
tdm_code tdm_weights_add_file(tdm_weights *ws, const char *path, const char *prefix, tdm_name_mapper mapper,
                              void *ctx, tdm_status *st);
/* One-file store: tdm_weights_init(ws, what) + add_file + finish; on failure ws is freed. */
tdm_code tdm_weights_open_file(tdm_weights *ws, const char *what, const char *path, const char *prefix,
                               tdm_name_mapper mapper, void *ctx, tdm_status *st);
/* Same, over a file already opened by another store (not owned; must outlive ws). */
tdm_code tdm_weights_add_opened(tdm_weights *ws, const tdm_safetensors *f, const char *prefix,
                                tdm_name_mapper mapper, void *ctx, tdm_status *st);
/* Called by mappers: adds a canonical entry. */
tdm_code tdm_weights_emit(tdm_weights *ws, const char *canonical, const tdm_tensor *t, tdm_status *st);
/* Storage the store frees with itself (for mappers that must build a converted tensor). */
void *tdm_weights_alloc(tdm_weights *ws, size_t bytes);
/* Sorts and rejects duplicate canonical names. Call after all files are added. */
tdm_code tdm_weights_finish(tdm_weights *ws, tdm_status *st);

/* Looks up name and checks its shape (ndim dims; a shape entry < 0 matches any size).
 * Missing -> TDM_ERR_MISSING naming the tensor; wrong shape -> TDM_ERR_FORMAT naming both shapes. */
tdm_code tdm_weights_get(tdm_weights *ws, const char *name, int ndim, const int64_t *shape, tdm_tensor *out,
                         tdm_status *st);
/* tdm_weights_get with a printf-formatted name (up to 511 bytes) and the shape given inline: the first
 * ndim of d0..d3 (the others are ignored). */
tdm_code tdm_weights_getf(tdm_weights *ws, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                          tdm_status *st, const char *fmt, ...) TDM_PRINTF(9, 10);
tdm_code tdm_weights_vgetf(tdm_weights *ws, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3, tdm_status *st, const char *fmt, va_list ap);
/* Like get, but absence is not an error: *found = 0. */
tdm_code tdm_weights_get_opt(tdm_weights *ws, const char *name, int ndim, const int64_t *shape, tdm_tensor *out,
                             int *found, tdm_status *st);
/* Entry by name without marking it used (for config inference); NULL if absent. */
const tdm_weight *tdm_weights_peek(const tdm_weights *ws, const char *name);
/* Error naming the first tensor no lookup took (and how many there are). */
tdm_code tdm_weights_check_unused(const tdm_weights *ws, tdm_status *st);

#endif
