#include "io/weights.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tdm_weights_init(tdm_weights *ws, const char *what) {
    memset(ws, 0, sizeof *ws);
    snprintf(ws->what, sizeof ws->what, "%s", what ? what : "weights");
}

void tdm_weights_free(tdm_weights *ws) {
    for (int i = 0; i < ws->n; i++) free(ws->w[i].name);
    free(ws->w);
    for (int i = 0; i < ws->n_files; i++) tdm_st_close(&ws->files[i]);
    free(ws->files);
    for (int i = 0; i < ws->n_owned; i++) free(ws->owned[i]);
    free(ws->owned);
    memset(ws, 0, sizeof *ws);
}

void *tdm_weights_alloc(tdm_weights *ws, size_t bytes) {
    if (ws->n_owned == ws->cap_owned) {
        int cap = ws->cap_owned ? 2 * ws->cap_owned : 16;
        void **p = realloc(ws->owned, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        ws->owned = p;
        ws->cap_owned = cap;
    }
    void *b = malloc(bytes ? bytes : 1);
    if (b) ws->owned[ws->n_owned++] = b;
    return b;
}

tdm_code tdm_weights_emit(tdm_weights *ws, const char *canonical, const tdm_tensor *t, tdm_status *st) {
    if (ws->n == ws->cap) {
        int cap = ws->cap ? 2 * ws->cap : 256;
        tdm_weight *p = realloc(ws->w, (size_t)cap * sizeof *p);
        if (!p) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
        ws->w = p;
        ws->cap = cap;
    }
    tdm_weight *w = &ws->w[ws->n];
    w->name = strdup(canonical);
    if (!w->name) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
    w->t = *t;
    w->src_file = ws->cur_file;
    w->src_name = ws->cur_name;
    w->used = 0;
    ws->n++;
    return TDM_OK;
}

tdm_code tdm_weights_add_opened(tdm_weights *ws, const tdm_safetensors *f, const char *prefix,
                                tdm_name_mapper mapper, void *ctx, tdm_status *st) {
    size_t plen = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < f->n_entries; i++) {
        const tdm_st_entry *e = &f->entries[i];
        if (plen && strncmp(e->name, prefix, plen) != 0) continue;
        tdm_tensor t = tdm_st_view(f, e);
        ws->cur_file = f->path;
        ws->cur_name = e->name;
        const char *rest = e->name + plen;
        tdm_code rc = mapper ? mapper(ws, rest, &t, ctx, st) : tdm_weights_emit(ws, rest, &t, st);
        if (rc) return rc;
    }
    ws->cur_file = ws->cur_name = NULL;
    return TDM_OK;
}

tdm_code tdm_weights_add_file(tdm_weights *ws, const char *path, const char *prefix, tdm_name_mapper mapper,
                              void *ctx, tdm_status *st) {
    if (ws->n_files == ws->cap_files) {
        int cap = ws->cap_files ? 2 * ws->cap_files : 4;
        tdm_safetensors *p = realloc(ws->files, (size_t)cap * sizeof *p);
        if (!p) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
        ws->files = p;
        ws->cap_files = cap;
    }
    TDM_TRY(tdm_st_open(&ws->files[ws->n_files], path, st));
    ws->n_files++;
    return tdm_weights_add_opened(ws, &ws->files[ws->n_files - 1], prefix, mapper, ctx, st);
}

tdm_code tdm_weights_open_file(tdm_weights *ws, const char *what, const char *path, const char *prefix,
                               tdm_name_mapper mapper, void *ctx, tdm_status *st) {
    tdm_weights_init(ws, what);
    tdm_code rc = tdm_weights_add_file(ws, path, prefix, mapper, ctx, st);
    if (!rc) rc = tdm_weights_finish(ws, st);
    if (rc) tdm_weights_free(ws);
    return rc;
}

static int cmp_weight(const void *a, const void *b) {
    return strcmp(((const tdm_weight *)a)->name, ((const tdm_weight *)b)->name);
}

tdm_code tdm_weights_finish(tdm_weights *ws, tdm_status *st) {
    if (ws->n > 1) qsort(ws->w, (size_t)ws->n, sizeof *ws->w, cmp_weight);
    for (int i = 1; i < ws->n; i++)
        if (strcmp(ws->w[i - 1].name, ws->w[i].name) == 0)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' is given twice (%s '%s' and %s '%s')", ws->what,
                            ws->w[i].name, ws->w[i - 1].src_file, ws->w[i - 1].src_name, ws->w[i].src_file,
                            ws->w[i].src_name);
    return TDM_OK;
}

static tdm_weight *find(const tdm_weights *ws, const char *name) {
    int lo = 0, hi = ws->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ws->w[mid].name, name);
        if (c == 0) return &ws->w[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const tdm_weight *tdm_weights_peek(const tdm_weights *ws, const char *name) { return find(ws, name); }

tdm_code tdm_weights_vgetf(tdm_weights *ws, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3, tdm_status *st, const char *fmt, va_list ap) {
    char name[512];
    vsnprintf(name, sizeof name, fmt, ap);
    const int64_t shape[4] = {d0, d1, d2, d3};
    return tdm_weights_get(ws, name, ndim, shape, out, st);
}

tdm_code tdm_weights_getf(tdm_weights *ws, tdm_tensor *out, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                          tdm_status *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tdm_code rc = tdm_weights_vgetf(ws, out, ndim, d0, d1, d2, d3, st, fmt, ap);
    va_end(ap);
    return rc;
}

tdm_code tdm_weights_get_opt(tdm_weights *ws, const char *name, int ndim, const int64_t *shape, tdm_tensor *out,
                             int *found, tdm_status *st) {
    tdm_weight *w = find(ws, name);
    *found = w != NULL;
    if (!w) return TDM_OK;
    int ok = w->t.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == w->t.shape[i];
    if (!ok) {
        tdm_tensor want = tdm_tensor_view(TDM_F32, NULL, ndim, shape);
        char a[128], b[128];
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: %s: tensor '%s' has shape %s, expected %s", ws->what,
                        w->src_file ? w->src_file : "?", w->src_name ? w->src_name : name,
                        tdm_shape_str(&w->t, a, sizeof a), tdm_shape_str(&want, b, sizeof b));
    }
    if (!tdm_dtype_is_float(w->t.dtype) || w->t.dtype == TDM_F64)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: %s: tensor '%s' has dtype %s (expected F32, F16 or BF16)",
                        ws->what, w->src_file ? w->src_file : "?", w->src_name ? w->src_name : name,
                        tdm_dtype_name(w->t.dtype));
    /* safetensors does not promise aligned data (older writers leave odd header lengths): kernels
     * read elements in place, so a misaligned tensor is copied once into storage the store owns. */
    size_t isz = tdm_dtype_size(w->t.dtype);
    if (isz > 1 && ((uintptr_t)w->t.data % isz) != 0) {
        size_t bytes = (size_t)tdm_tensor_numel(&w->t) * isz;
        void *copy = tdm_weights_alloc(ws, bytes);
        if (!copy) return tdm_fail(st, TDM_ERR_NOMEM, "%s: tensor '%s': out of memory", ws->what, name);
        memcpy(copy, w->t.data, bytes);
        w->t.data = copy;
    }
    w->used = 1;
    *out = w->t;
    return TDM_OK;
}

tdm_code tdm_weights_get(tdm_weights *ws, const char *name, int ndim, const int64_t *shape, tdm_tensor *out,
                         tdm_status *st) {
    int found;
    TDM_TRY(tdm_weights_get_opt(ws, name, ndim, shape, out, &found, st));
    if (!found) return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%s' is missing", ws->what, name);
    return TDM_OK;
}

tdm_code tdm_weights_check_unused(const tdm_weights *ws, tdm_status *st) {
    int count = 0;
    const tdm_weight *first = NULL;
    for (int i = 0; i < ws->n; i++)
        if (!ws->w[i].used) {
            if (!first) first = &ws->w[i];
            count++;
        }
    if (!first) return TDM_OK;
    return tdm_fail(st, TDM_ERR_FORMAT, "%s: %s: unexpected tensor '%s'%s (%d tensor%s not used by the model)",
                    ws->what, first->src_file ? first->src_file : "?", first->src_name ? first->src_name : first->name,
                    strcmp(first->src_name ? first->src_name : first->name, first->name) ? " (mapped name differs)" : "",
                    count, count == 1 ? "" : "s");
}
