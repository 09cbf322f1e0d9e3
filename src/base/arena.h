/* Per-run bump allocator: activations live here and are released together.
 * Chunks are malloc'ed on demand; tdm_arena_mark/reset give stack-like scoping. */
#ifndef TDM_BASE_ARENA_H
#define TDM_BASE_ARENA_H

#include <stddef.h>

typedef struct tdm_arena_chunk tdm_arena_chunk;

typedef struct tdm_arena {
    tdm_arena_chunk *head;  /* current chunk (most recent) */
    size_t chunk_size;      /* default size of new chunks */
    size_t in_use;          /* bytes handed out and not yet reset */
    size_t peak;            /* high-water mark of in_use */
} tdm_arena;

typedef struct tdm_arena_mark {
    tdm_arena_chunk *chunk;
    size_t used;
    size_t in_use;
} tdm_arena_mark;

void tdm_arena_init(tdm_arena *a, size_t chunk_size);
void tdm_arena_free(tdm_arena *a);
/* 64-byte aligned; NULL when out of memory or on size overflow. Memory is not zeroed. */
void *tdm_arena_alloc(tdm_arena *a, size_t bytes);
/* Same, zero-filled. */
void *tdm_arena_calloc(tdm_arena *a, size_t count, size_t size);
tdm_arena_mark tdm_arena_get_mark(const tdm_arena *a);
/* Releases everything allocated after the mark (chunks allocated since are freed). */
void tdm_arena_reset(tdm_arena *a, tdm_arena_mark m);

#endif
