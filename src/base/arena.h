/* Per-run bump allocator: activations live here and are released together.
 * Chunks are malloc'ed on demand; tdm_arena_mark/reset give stack-like scoping. Chunks released by a
 * reset are kept as spares and reused by later chunk requests they fit (the smallest that fits), so a
 * model run repeated on the same arena allocates (and page-faults) nothing new; when a request fits no
 * spare, all spares are freed before the new chunk is malloc'ed, so the arena never holds more chunk
 * memory than its own high-water mark. tdm_arena_free releases everything. */
#ifndef TDM_BASE_ARENA_H
#define TDM_BASE_ARENA_H

#include <stddef.h>

typedef struct tdm_arena_chunk tdm_arena_chunk;

typedef struct tdm_arena {
    tdm_arena_chunk *head;  /* current chunk (most recent) */
    size_t chunk_size;      /* default size of new chunks */
    size_t in_use;          /* bytes handed out and not yet reset */
    size_t peak;            /* high-water mark of in_use */
    tdm_arena_chunk *spare; /* chunks released by tdm_arena_reset, kept for reuse (list) */
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
/* Releases everything allocated after the mark (chunks allocated since become spares, see above). */
void tdm_arena_reset(tdm_arena *a, tdm_arena_mark m);

/* ---- Additions (H7): reusable scratch buffers ---------------------------------------------------- */

/* A fixed set of slots, each one buffer that grows (by at least 1/4, in whole pages) and is reused by
 * later requests: once every slot has reached its largest size, steady-state calls allocate nothing and
 * touch no new pages (no page faults). Contents are undefined on each get. One owner at a time (the
 * tensor ops keep one per calling thread, tensor/ops_internal.h). Zero-initialise before first use. */
enum { TDM_WORKSPACE_SLOTS = 16 };
typedef struct tdm_workspace {
    void *buf[TDM_WORKSPACE_SLOTS];  /* 64-byte aligned, or NULL */
    size_t size[TDM_WORKSPACE_SLOTS]; /* bytes usable in buf[i] */
    size_t grows;                     /* number of (re)allocations so far (tests, diagnostics) */
} tdm_workspace;

/* Slot `slot` with at least `bytes` bytes (64-byte aligned). NULL when out of memory, on size overflow
 * or for a slot outside [0, TDM_WORKSPACE_SLOTS); the slot then keeps no buffer. */
void *tdm_workspace_get(tdm_workspace *w, int slot, size_t bytes);
/* Frees every slot; w can be used again afterwards. */
void tdm_workspace_free(tdm_workspace *w);
/* Bytes held by all slots. */
size_t tdm_workspace_bytes(const tdm_workspace *w);

#endif
