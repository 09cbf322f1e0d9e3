#include "base/threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct tdm_pool {
    int n;                 /* total threads including the caller */
    pthread_t *threads;    /* [n-1] workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    tdm_task_fn fn;
    void *ctx;
    unsigned long generation; /* bumped for each run */
    int pending;              /* workers still running the current generation */
    int stop;
};

typedef struct {
    tdm_pool *pool;
    int ith;
} tdm_worker_arg;

static void *tdm_worker_main(void *arg_) {
    tdm_worker_arg *arg = arg_;
    tdm_pool *p = arg->pool;
    int ith = arg->ith;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        tdm_task_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, ith, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

tdm_code tdm_pool_create(tdm_pool **out, int n_threads, tdm_status *st) {
    *out = NULL;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 256) return tdm_fail(st, TDM_ERR_INVALID_ARG, "threads %d: at most 256", n_threads);
    tdm_pool *p = calloc(1, sizeof *p);
    if (!p) return tdm_fail(st, TDM_ERR_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return tdm_fail(st, TDM_ERR_NOMEM, "thread pool: out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        tdm_worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->pool = p;
            a->ith = i;
        }
        if (!a || pthread_create(&p->threads[i - 1], NULL, tdm_worker_main, a) != 0) {
            free(a);
            p->n = i; /* workers 1..i-1 exist */
            tdm_pool_free(p);
            return tdm_fail(st, TDM_ERR_NOMEM, "thread pool: cannot start thread %d", i);
        }
    }
    *out = p;
    return TDM_OK;
}

void tdm_pool_free(tdm_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->threads);
    free(p);
}

int tdm_pool_size(const tdm_pool *p) { return p ? p->n : 1; }

void tdm_pool_run(tdm_pool *p, tdm_task_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void tdm_split_range(long n, int ith, int nth, long *begin, long *end) {
    long per = n / nth, rem = n % nth;
    *begin = ith * per + (ith < rem ? ith : rem);
    *end = *begin + per + (ith < rem ? 1 : 0);
}
