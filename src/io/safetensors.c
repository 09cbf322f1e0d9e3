#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TDM_ST_MAX_HEADER ((uint64_t)100 << 20)

static const struct {
    const char *name;
    tdm_dtype dtype;
} st_dtypes[] = {
    {"F32", TDM_F32}, {"F16", TDM_F16}, {"BF16", TDM_BF16}, {"F64", TDM_F64}, {"I64", TDM_I64},
    {"I32", TDM_I32}, {"I16", TDM_I16}, {"I8", TDM_I8},     {"U8", TDM_U8},   {"BOOL", TDM_BOOL},
};

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const tdm_st_entry *)a)->name, ((const tdm_st_entry *)b)->name);
}

static int cmp_entry_begin(const void *a, const void *b) {
    const tdm_st_entry *x = *(const tdm_st_entry *const *)a, *y = *(const tdm_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static tdm_code parse_entry(const char *path, const cJSON *item, tdm_st_entry *e, uint64_t data_size,
                            tdm_status *st) {
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': 'dtype' missing or not a string", path, name);
    int found = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dt->valuestring, st_dtypes[i].name) == 0) {
            e->dtype = st_dtypes[i].dtype;
            found = 1;
        }
    if (!found) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", path, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': 'shape' missing or not an array", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > TDM_MAX_DIMS) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': %d dims (at most %d)", path, name, nd, TDM_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
        if (v < 0 || v != floor(v) || v > 9.0e15)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        uint64_t dim = (uint64_t)v;
        if (dim != 0 && numel > UINT64_MAX / dim)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': shape product overflows", path, name);
        numel *= dim;
        e->shape[i++] = (int64_t)dim;
    }
    uint64_t isz = tdm_dtype_size(e->dtype);
    if (numel > UINT64_MAX / isz || numel * isz > (uint64_t)INT64_MAX)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': shape x itemsize overflows", path, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b < 0 ||
        en < 0 || b != floor(b) || en != floor(en) || b > 1.8e19 || en > 1.8e19)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->begin > e->end || e->end > data_size)
        return tdm_fail(st, TDM_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %llu bytes", path,
                        name, (unsigned long long)e->begin, (unsigned long long)e->end,
                        (unsigned long long)data_size);
    if (e->end - e->begin != numel * isz)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': %llu bytes stored but shape x %s needs %llu", path,
                        name, (unsigned long long)(e->end - e->begin), dt->valuestring,
                        (unsigned long long)(numel * isz));
    return TDM_OK;
}

tdm_code tdm_st_open(tdm_safetensors *f, const char *path, tdm_status *st) {
    memset(f, 0, sizeof *f);
    size_t plen = strlen(path);
    if ((plen >= 5 && strcmp(path + plen - 5, ".ckpt") == 0) || (plen >= 3 && strcmp(path + plen - 3, ".pt") == 0) ||
        (plen >= 4 && (strcmp(path + plen - 4, ".pth") == 0 || strcmp(path + plen - 4, ".bin") == 0)))
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: pickle checkpoints are refused because loading them can execute code; convert it "
                        "once with tools/convert_ckpt.py (run where PyTorch is installed) to .safetensors",
                        path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tdm_fail(st, TDM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tdm_fail(st, TDM_ERR_IO, "%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        close(fd);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: truncated: %llu bytes, too short for a safetensors header", path,
                        (unsigned long long)fsize);
    }
    void *map = mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return tdm_fail(st, TDM_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    f->map = map;
    f->map_size = (size_t)fsize;
    f->path = strdup(path);
    if (!f->path) {
        tdm_st_close(f);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > fsize - 8 || hlen > TDM_ST_MAX_HEADER) {
        tdm_st_close(f);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: header length %llu runs past the end of the %llu-byte file "
                        "(truncated or not a safetensors file)", path, (unsigned long long)hlen, (unsigned long long)fsize);
    }
    f->data_offset = 8 + (size_t)hlen;
    uint64_t data_size = fsize - 8 - hlen;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)f->map + 8, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        long at = root ? 0 : (end ? (long)(end - ((const char *)f->map + 8)) : -1);
        cJSON_Delete(root);
        tdm_st_close(f);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: header is not a valid JSON object (error near header byte %ld)",
                        path, at);
    }
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) if (strcmp(item->string, "__metadata__") != 0) n++;
    f->entries = calloc(n ? (size_t)n : 1, sizeof *f->entries);
    if (!f->entries) {
        cJSON_Delete(root);
        tdm_st_close(f);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    tdm_code rc = TDM_OK;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item)) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: '__metadata__' is not an object", path);
                break;
            }
            continue;
        }
        tdm_st_entry *e = &f->entries[f->n_entries];
        e->name = strdup(item->string);
        if (!e->name) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        f->n_entries++;
        rc = parse_entry(path, item, e, data_size, st);
        if (rc) break;
    }
    cJSON_Delete(root);
    if (rc) {
        tdm_st_close(f);
        return rc;
    }
    qsort(f->entries, (size_t)f->n_entries, sizeof *f->entries, cmp_entry_name);
    for (int i = 1; i < f->n_entries; i++)
        if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, f->entries[i].name);
            tdm_st_close(f);
            return rc;
        }
    /* Overlap check on a by-offset ordering. Zero-sized tensors occupy nothing. */
    tdm_st_entry **by_off = malloc((size_t)(f->n_entries ? f->n_entries : 1) * sizeof *by_off);
    if (!by_off) {
        tdm_st_close(f);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < f->n_entries; i++) by_off[i] = &f->entries[i];
    qsort(by_off, (size_t)f->n_entries, sizeof *by_off, cmp_entry_begin);
    const tdm_st_entry *prev = NULL;
    for (int i = 0; i < f->n_entries; i++) {
        const tdm_st_entry *e = by_off[i];
        if (e->begin == e->end) continue;
        if (prev && e->begin < prev->end) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path,
                          prev->name, e->name);
            break;
        }
        prev = e;
    }
    free(by_off);
    if (rc) tdm_st_close(f);
    return rc;
}

void tdm_st_close(tdm_safetensors *f) {
    if (f->map) munmap((void *)f->map, f->map_size);
    for (int i = 0; i < f->n_entries; i++) free(f->entries[i].name);
    free(f->entries);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const tdm_st_entry *tdm_st_find_prefixed(const tdm_safetensors *f, const char *prefix, const char *name) {
    char full[512];
    int w = snprintf(full, sizeof full, "%s%s", prefix, name);
    if (w < 0 || (size_t)w >= sizeof full) return NULL;
    return tdm_st_find(f, full);
}

const tdm_st_entry *tdm_st_find(const tdm_safetensors *f, const char *name) {
    int lo = 0, hi = f->n_entries - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->entries[mid].name, name);
        if (c == 0) return &f->entries[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

tdm_tensor tdm_st_view(const tdm_safetensors *f, const tdm_st_entry *e) {
    return tdm_tensor_view(e->dtype, (void *)(f->map + f->data_offset + e->begin), e->ndim, e->shape);
}

tdm_code tdm_st_write(const char *path, int n, const char *const *names, const tdm_tensor *tensors,
                      tdm_status *st) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, names[i]);
        cJSON_AddStringToObject(e, "dtype", tdm_dtype_name(tensors[i].dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < tensors[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)tensors[i].shape[d]));
        uint64_t bytes = (uint64_t)tdm_tensor_numel(&tensors[i]) * tdm_dtype_size(tensors[i].dtype);
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(hdr);
        return tdm_fail(st, TDM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hl, fp) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = (size_t)tdm_tensor_numel(&tensors[i]) * tdm_dtype_size(tensors[i].dtype);
        ok = bytes == 0 || fwrite(tensors[i].data, 1, bytes, fp) == bytes;
    }
    free(hdr);
    if (fclose(fp) != 0 || !ok) return tdm_fail(st, TDM_ERR_IO, "%s: write failed", path);
    return TDM_OK;
}
