/* Persistent thread pool with ggml-style (ith, nth) work splitting.
 * tdm_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) for ith = 0..nth-1, the caller running ith 0,
 * and returns when all are done. Kernels must split work so that the result does not depend on
 * nth (fixed-size blocks assigned round-robin), which keeps outputs identical on any thread count. */
#ifndef TDM_BASE_THREADPOOL_H
#define TDM_BASE_THREADPOOL_H

#include "base/error.h"

typedef void (*tdm_task_fn)(void *ctx, int ith, int nth);

typedef struct tdm_pool tdm_pool;

/* n_threads <= 0: number of online CPUs. */
tdm_code tdm_pool_create(tdm_pool **out, int n_threads, tdm_status *st);
void tdm_pool_free(tdm_pool *pool);
int tdm_pool_size(const tdm_pool *pool);
/* pool may be NULL: runs fn(ctx, 0, 1) inline. Not reentrant: a task must not call tdm_pool_run. */
void tdm_pool_run(tdm_pool *pool, tdm_task_fn fn, void *ctx);

/* Split [0, n) into nth contiguous ranges; thread ith gets [*begin, *end). */
void tdm_split_range(long n, int ith, int nth, long *begin, long *end);

#endif
