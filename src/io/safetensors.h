/* safetensors reader: the file is mmapped read-only and tensors are views into the mapping.
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
 * "__metadata__": {str: str}}, then the data section; offsets are relative to the data section.
 * Every field is validated (see tdm_st_open); a file that passes can be read without bounds errors. */
#ifndef TDM_IO_SAFETENSORS_H
#define TDM_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "tensor/tensor.h"

typedef struct tdm_st_entry {
    char *name;
    tdm_dtype dtype;
    int ndim;
    int64_t shape[TDM_MAX_DIMS];
    uint64_t begin, end; /* byte offsets in the data section */
} tdm_st_entry;

typedef struct tdm_safetensors {
    char *path;
    const unsigned char *map; /* whole file, PROT_READ */
    size_t map_size;
    size_t data_offset; /* 8 + header length */
    tdm_st_entry *entries; /* sorted by name */
    int n_entries;
} tdm_safetensors;

/* Opens and validates: header length within the file (and at most 100 MB), valid JSON object,
 * known dtype, shape entries non-negative integers with at most 8 dims, numel x itemsize without
 * overflow and equal to end-begin, offsets inside the data section, no two tensors overlapping,
 * no duplicate names. Errors name the file and the tensor. */
tdm_code tdm_st_open(tdm_safetensors *st_file, const char *path, tdm_status *st);
void tdm_st_close(tdm_safetensors *st_file);

/* Binary search by name; NULL when absent. */
const tdm_st_entry *tdm_st_find(const tdm_safetensors *f, const char *name);
/* tdm_st_find of prefix + name; NULL when absent or longer than 511 bytes. */
const tdm_st_entry *tdm_st_find_prefixed(const tdm_safetensors *f, const char *prefix, const char *name);
/* A view of the entry's bytes (contiguous). */
tdm_tensor tdm_st_view(const tdm_safetensors *f, const tdm_st_entry *e);

/* Writes a safetensors file (used by tests and tools). names[i], tensors[i] contiguous. */
tdm_code tdm_st_write(const char *path, int n, const char *const *names, const tdm_tensor *tensors,
                      tdm_status *st);

#endif
