#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TDM_ARENA_ALIGN 64

struct tdm_arena_chunk {
    tdm_arena_chunk *prev;
    size_t size; /* usable bytes in data */
    size_t used;
    unsigned char *data; /* aligned start */
};

void tdm_arena_init(tdm_arena *a, size_t chunk_size) {
    memset(a, 0, sizeof *a);
    a->chunk_size = chunk_size ? chunk_size : ((size_t)64 << 20);
}

void tdm_arena_free(tdm_arena *a) {
    tdm_arena_chunk *c = a->head;
    while (c) {
        tdm_arena_chunk *p = c->prev;
        free(c);
        c = p;
    }
    a->head = NULL;
    a->in_use = 0;
}

void *tdm_arena_alloc(tdm_arena *a, size_t bytes) {
    if (bytes > SIZE_MAX - 2 * TDM_ARENA_ALIGN) return NULL;
    size_t need = (bytes + TDM_ARENA_ALIGN - 1) & ~(size_t)(TDM_ARENA_ALIGN - 1);
    if (need == 0) need = TDM_ARENA_ALIGN;
    tdm_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        if (size > SIZE_MAX - sizeof(tdm_arena_chunk) - TDM_ARENA_ALIGN) return NULL;
        tdm_arena_chunk *n = malloc(sizeof(tdm_arena_chunk) + size + TDM_ARENA_ALIGN);
        if (!n) return NULL;
        uintptr_t p = (uintptr_t)(n + 1);
        p = (p + TDM_ARENA_ALIGN - 1) & ~(uintptr_t)(TDM_ARENA_ALIGN - 1);
        n->data = (unsigned char *)p;
        n->size = size;
        n->used = 0;
        n->prev = c;
        a->head = c = n;
    }
    void *out = c->data + c->used;
    c->used += need;
    a->in_use += need;
    if (a->in_use > a->peak) a->peak = a->in_use;
    return out;
}

void *tdm_arena_calloc(tdm_arena *a, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = tdm_arena_alloc(a, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

tdm_arena_mark tdm_arena_get_mark(const tdm_arena *a) {
    tdm_arena_mark m = {a->head, a->head ? a->head->used : 0, a->in_use};
    return m;
}

void tdm_arena_reset(tdm_arena *a, tdm_arena_mark m) {
    while (a->head && a->head != m.chunk) {
        tdm_arena_chunk *p = a->head->prev;
        free(a->head);
        a->head = p;
    }
    if (a->head) a->head->used = m.used;
    a->in_use = m.in_use;
}
