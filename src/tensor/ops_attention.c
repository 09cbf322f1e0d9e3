/* Multi-head attention: the kernel choice (tdm_attention_pick, $TDM_ATTENTION) and the tiled kernel;
 * the flash-style kernel is in ops_attention_flash.c.
 * Tiled: units of (batch b, head h, tile of ATT_QT query rows) over the pool.
 * Per unit: S[nq, nk] = scale q_tile k^T (+ mask, causal), row softmax, out_tile = S v (OpenBLAS); S lives
 * in a per-thread [ATT_QT, Lk] buffer, so memory is bounded by ATT_QT x Lk per thread, never Lq x Lk.
 * Units are fixed by the shapes, so the result does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops_internal.h"
#include "tensor/ops_vec.h"

enum { ATT_QT = 64 }; /* query rows per unit */

typedef struct {
    const float *q, *k, *v, *mask; /* q [B, Lq, ldq], k [B, Lk, ldk], v [B, Lk, ldv], mask [B, Lk] */
    int64_t ldq, ldk, ldv, B, H, Lq, Lk, D, n_qt;
    int64_t ldS; /* row stride of S: Lk rounded up to 16, plus 16 (avoids power-of-two strides) */
    float scale;
    int causal;
    float *out; /* [B, Lq, H*D] */
    tdm_scratch s;     /* per thread [ATT_QT, ldS] scores */
    atomic_llong next; /* next unit to take */
} att_job;

static void att_task(void *ctx, int ith, int nth) {
    att_job *J = ctx;
    float *S = J->s.buf[ith];
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->B * J->H * J->n_qt;) {
        int64_t t = u % J->n_qt, h = (u / J->n_qt) % J->H, b = u / (J->n_qt * J->H);
        int64_t i0 = t * ATT_QT, nq = J->Lq - i0 < ATT_QT ? J->Lq - i0 : ATT_QT;
        int64_t nk = J->causal && i0 + nq < J->Lk ? i0 + nq : J->Lk; /* causal: keys j <= i only */
        const float *qt = J->q + (b * J->Lq + i0) * J->ldq + h * J->D;
        const float *kb = J->k + b * J->Lk * J->ldk + h * J->D;
        const float *vb = J->v + b * J->Lk * J->ldv + h * J->D;
        int64_t ld = J->ldS;
        tdm_sgemm_single(0, 1, nq, nk, J->D, J->scale, qt, J->ldq, kb, J->ldk, 0.0f, S, ld); /* S [nq, nk] */
        if (J->mask) {
            const float *mb = J->mask + b * J->Lk;
            for (int64_t i = 0; i < nq; i++)
                for (int64_t j = 0; j < nk; j++) S[i * ld + j] += mb[j];
        }
        if (J->causal)
            for (int64_t i = 0; i < nq; i++)
                for (int64_t j = i0 + i + 1; j < nk; j++) S[i * ld + j] = -INFINITY;
        tdm_vec_softmax_rows(S, nq, nk, ld);
        float *ot = J->out + (b * J->Lq + i0) * J->H * J->D + h * J->D;
        tdm_sgemm_single(0, 0, nq, J->D, nk, 1.0f, S, ld, vb, J->ldv, 0.0f, ot, J->H * J->D);
    }
}

/* ---- kernel choice ------------------------------------------------------------------------------ */

static atomic_int att_kernel = -1; /* -1: not read from the environment yet */

tdm_att_kernel tdm_attention_get_kernel(void) {
    static const char *const names[] = {"tiled", "flash", "flash-generic"};
    static const int values[] = {TDM_ATT_TILED, TDM_ATT_FLASH, TDM_ATT_FLASH_GENERIC};
    return (tdm_att_kernel)tdm_ops_env_choice(&att_kernel, "TDM_ATTENTION", names, values, 3, TDM_ATT_AUTO);
}

void tdm_attention_set_kernel(tdm_att_kernel k) { atomic_store(&att_kernel, (int)k); }

tdm_att_kernel tdm_attention_pick(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int causal,
                                  const float *mask_add) {
    tdm_att_kernel a = tdm_attention_get_kernel();
    if (a != TDM_ATT_AUTO) return a;
    /* AUTO (the one place that decides; measured in docs/PERFORMANCE.md, history step 14, one thread):
     * - the flash kernel needs AVX2 + FMA (its portable path is for tests: no SIMD);
     * - FLASH when Lq > ATT_QT (64): 0.6x the tiled path's CPU time at 4096 tokens (head dim 40), 0.7-0.8x
     *   at 1024 (80), CLIP's 77 causal tokens and the VAE's 4096 x 512, 0.9x at 256 (160) and for the
     *   cross-attentions (Lk 77);
     * - TILED for Lq <= 64 (one tile of the tiled path per head; the flash kernel's K / V packing is then
     *   amortised over <= 64 rows): both within +-3% (SD1.5's 8x8 level, BERT's short captions).
     * Any head dim, causal or masked: both kernels support everything. */
    (void)B, (void)H, (void)Lk, (void)D, (void)causal, (void)mask_add;
    return tdm_attention_flash_avx2() && Lq > ATT_QT ? TDM_ATT_FLASH : TDM_ATT_TILED;
}

tdm_code tdm_attention(const tdm_exec *ex, const float *q, int64_t ldq, const float *k, int64_t ldk,
                       const float *v, int64_t ldv, int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                       float scale, int causal, const float *mask_add, float *out) {
    if (tdm_exec_ref(ex)) return tdm_attention_ref(q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, scale, causal, mask_add, out);
    if (B < 0 || H < 1 || Lq < 0 || Lk < 1 || D < 1 || ldq < H * D || ldk < H * D || ldv < H * D)
        return TDM_ERR_INVALID_ARG;
    if (!tdm_gemm_args_ok(0, 1, ATT_QT, Lk, D, ldq, ldk, Lk) || !tdm_gemm_args_ok(0, 0, ATT_QT, D, Lk, Lk, ldv, H * D))
        return TDM_ERR_INVALID_ARG;
    if (B == 0 || Lq == 0) return TDM_OK;
    tdm_att_kernel kern = tdm_attention_pick(B, H, Lq, Lk, D, causal, mask_add);
    if (kern == TDM_ATT_FLASH || kern == TDM_ATT_FLASH_GENERIC)
        return tdm_attention_flash(ex, q, ldq, k, ldk, v, ldv, B, H, Lq, Lk, D, scale, causal, mask_add, out,
                                   kern == TDM_ATT_FLASH_GENERIC);
    att_job J = {.q = q, .k = k, .v = v, .mask = mask_add, .ldq = ldq, .ldk = ldk, .ldv = ldv, .B = B, .H = H,
                 .Lq = Lq, .Lk = Lk, .D = D, .n_qt = (Lq + ATT_QT - 1) / ATT_QT, .scale = scale, .causal = causal,
                 .out = out, .next = 0};
    J.ldS = (Lk + 15) / 16 * 16 + 16;
    int64_t units = B * H * J.n_qt;
    int nth = units > 1 ? tdm_exec_threads(ex) : 1;
    if (tdm_scratch_alloc(&J.s, nth, ATT_QT * J.ldS) != TDM_OK) return TDM_ERR_NOMEM;
    if (nth == 1)
        att_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, att_task, &J);
    tdm_scratch_free(&J.s);
    return TDM_OK;
}
