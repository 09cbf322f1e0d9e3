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

static void free_chunks(tdm_arena_chunk *c) {
    while (c) {
        tdm_arena_chunk *p = c->prev;
        free(c);
        c = p;
    }
}

void tdm_arena_free(tdm_arena *a) {
    free_chunks(a->head);
    free_chunks(a->spare);
    a->head = NULL;
    a->spare = NULL;
    a->in_use = 0;
}

/* The smallest spare chunk with at least `need` usable bytes, unlinked from the spare list; NULL when
 * none fits (all spares are then freed: the caller mallocs a new chunk). */
static tdm_arena_chunk *take_spare(tdm_arena *a, size_t need) {
    tdm_arena_chunk **best = NULL;
    for (tdm_arena_chunk **pp = &a->spare; *pp; pp = &(*pp)->prev)
        if ((*pp)->size >= need && (!best || (*pp)->size < (*best)->size)) best = pp;
    if (!best) {
        free_chunks(a->spare);
        a->spare = NULL;
        return NULL;
    }
    tdm_arena_chunk *c = *best;
    *best = c->prev;
    c->used = 0;
    return c;
}

void *tdm_arena_alloc(tdm_arena *a, size_t bytes) {
    if (bytes > SIZE_MAX - 2 * TDM_ARENA_ALIGN) return NULL;
    size_t need = (bytes + TDM_ARENA_ALIGN - 1) & ~(size_t)(TDM_ARENA_ALIGN - 1);
    if (need == 0) need = TDM_ARENA_ALIGN;
    tdm_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        tdm_arena_chunk *n = take_spare(a, need);
        if (n) {
            n->prev = c;
            a->head = c = n;
        }
    }
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
    while (a->head && a->head != m.chunk) { /* chunks allocated since the mark become spares */
        tdm_arena_chunk *p = a->head->prev;
        a->head->prev = a->spare;
        a->spare = a->head;
        a->head = p;
    }
    if (a->head) a->head->used = m.used;
    a->in_use = m.in_use;
}

/* ---- reusable scratch buffers ---------------------------------------------------------------------- */

void *tdm_workspace_get(tdm_workspace *w, int slot, size_t bytes) {
    if (slot < 0 || slot >= TDM_WORKSPACE_SLOTS) return NULL;
    if (bytes == 0) bytes = 1;
    if (w->buf[slot] && w->size[slot] >= bytes) return w->buf[slot];
    const size_t page = 4096;
    size_t grow = w->size[slot] + w->size[slot] / 4; /* at least 1/4 more: few reallocations */
    size_t want = bytes > grow ? bytes : grow;
    if (want > SIZE_MAX - page) return NULL;
    want = (want + page - 1) / page * page;
    free(w->buf[slot]);
    w->buf[slot] = aligned_alloc(TDM_ARENA_ALIGN, want);
    w->size[slot] = w->buf[slot] ? want : 0;
    w->grows++;
    return w->buf[slot];
}

void tdm_workspace_free(tdm_workspace *w) {
    for (int i = 0; i < TDM_WORKSPACE_SLOTS; i++) {
        free(w->buf[i]);
        w->buf[i] = NULL;
        w->size[i] = 0;
    }
}

size_t tdm_workspace_bytes(const tdm_workspace *w) {
    size_t n = 0;
    for (int i = 0; i < TDM_WORKSPACE_SLOTS; i++) n += w->size[i];
    return n;
}
