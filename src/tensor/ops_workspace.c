/* Per-thread reusable scratch of the tensor ops (H7): one tdm_workspace per calling thread, in
 * thread-local storage, freed by a thread-exit destructor or tdm_ops_scratch_release. Replaces the
 * per-call malloc/free of large scratch buffers (each a fresh mmap, page-faulted on every call). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "tensor/ops_internal.h"

static _Thread_local tdm_workspace tls_ws; /* zero-initialised per thread */
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;

static void ws_thread_exit(void *p) { tdm_workspace_free((tdm_workspace *)p); }

static void ws_key_init(void) { ws_key_ok = pthread_key_create(&ws_key, ws_thread_exit) == 0; }

tdm_workspace *tdm_ops_workspace(void) {
    pthread_once(&ws_once, ws_key_init);
    if (ws_key_ok && !pthread_getspecific(ws_key)) pthread_setspecific(ws_key, &tls_ws); /* exit hook */
    return &tls_ws;
}

float *tdm_ops_ws_per_thread(int slot, int nth, int64_t floats, int64_t *stride) {
    int64_t s = (floats + 15) / 16 * 16; /* 64-byte aligned slices */
    if (s < 16) s = 16;
    if (nth < 1 || s > INT64_MAX / 4 / nth) return NULL;
    *stride = s;
    return tdm_workspace_get(tdm_ops_workspace(), slot, (size_t)(s * nth) * sizeof(float));
}

void tdm_ops_scratch_release(void) { tdm_workspace_free(&tls_ws); }

size_t tdm_ops_scratch_bytes(void) { return tdm_workspace_bytes(&tls_ws); }

