/* Operator helpers (weight access, scratch) and the element-wise / normalisation operators.
 * GEMM + Linear: ops_gemm.c; conv2d: ops_conv.c; attention: ops_attention.c; references: ops_ref.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/numeric.h"
#include "tensor/ops_internal.h"
#include "tensor/ops_vec.h"

/* ---- helpers ------------------------------------------------------------------------------------ */

int tdm_ops_weight_ok(const tdm_tensor *t, int64_t numel) {
    if (!t || !t->data) return 0;
    if (t->dtype != TDM_F32 && t->dtype != TDM_F16 && t->dtype != TDM_BF16) return 0;
    return tdm_tensor_numel(t) == numel && tdm_tensor_is_contiguous(t);
}

int tdm_ops_opt_weight_ok(const tdm_tensor *t, int64_t numel) { return !t || tdm_ops_weight_ok(t, numel); }

int tdm_ops_env_choice(atomic_int *cache, const char *var, const char *const names[], const int values[], int n,
                       int dflt) {
    int v = atomic_load(cache);
    if (v >= 0) return v;
    const char *e = getenv(var);
    v = dflt;
    for (int i = 0; e && i < n; i++)
        if (strcmp(e, names[i]) == 0) {
            v = values[i];
            break;
        }
    int expect = -1;
    atomic_compare_exchange_strong(cache, &expect, v);
    return atomic_load(cache);
}

void tdm_ops_widen(const tdm_tensor *t, int64_t off, int64_t n, float *dst) {
    switch (t->dtype) {
    case TDM_F32: memcpy(dst, (const float *)t->data + off, (size_t)n * sizeof(float)); break;
    case TDM_F16: tdm_f16_to_f32_row((const uint16_t *)t->data + off, dst, (size_t)n); break;
    case TDM_BF16: tdm_bf16_to_f32_row((const uint16_t *)t->data + off, dst, (size_t)n); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break; /* rejected by tdm_ops_weight_ok */
    }
}

float tdm_ops_weight_at(const tdm_tensor *t, int64_t i, float dflt) {
    if (!t) return dflt;
    switch (t->dtype) {
    case TDM_F32: return ((const float *)t->data)[i];
    case TDM_F16: return tdm_f16_to_f32(((const uint16_t *)t->data)[i]);
    case TDM_BF16: return tdm_bf16_to_f32(((const uint16_t *)t->data)[i]);
    default: return dflt;
    }
}

tdm_code tdm_scratch_alloc(tdm_scratch *s, int nth, int64_t floats) {
    s->nth = 0;
    s->buf = calloc((size_t)nth, sizeof *s->buf);
    if (!s->buf) return TDM_ERR_NOMEM;
    s->nth = nth;
    size_t bytes = ((size_t)(floats > 0 ? floats : 1) * sizeof(float) + 63) / 64 * 64;
    for (int i = 0; i < nth; i++) {
        s->buf[i] = aligned_alloc(64, bytes);
        if (!s->buf[i]) {
            tdm_scratch_free(s);
            return TDM_ERR_NOMEM;
        }
    }
    return TDM_OK;
}

void tdm_scratch_free(tdm_scratch *s) {
    if (s->buf)
        for (int i = 0; i < s->nth; i++) free(s->buf[i]);
    free(s->buf);
    s->buf = NULL;
    s->nth = 0;
}

/* ---- group norm --------------------------------------------------------------------------------- */

typedef struct {
    const float *x;
    float *y;
    int64_t C, HW, cg, units;
    int groups, silu;
    float eps;
    const tdm_tensor *gamma, *beta;
    float *cab;        /* coefficients only: [N, C, 3] (c, a, b) instead of y; else NULL */
    atomic_llong next; /* next unit to take */
} gn_job;

static void gn_task(void *ctx, int ith, int nth) {
    gn_job *J = ctx;
    for (int64_t u; (u = tdm_take_unit(&J->next)) < J->units;) { /* unit = (sample n, group g), u = n * groups + g */
        int64_t g = u % J->groups, c0 = g * J->cg, cnt = J->cg * J->HW;
        const float *xg = J->x + (u / J->groups * J->C + c0) * J->HW;
        float *yg = J->y + (u / J->groups * J->C + c0) * J->HW;
        /* two-pass statistics, float lanes over short chunks summed in double; torch: biased
         * variance, eps inside the sqrt. var = E[(x - c)^2] - (mean - c)^2 with c = (float)mean. */
        double mean = 0, var = 0;
        if (cnt) tdm_vec_moments(xg, cnt, &mean, &var);
        float c = (float)mean;
        double rstd = 1.0 / sqrt(var + (double)J->eps);
        for (int64_t ch = 0; ch < J->cg; ch++) {
            double ga = tdm_ops_weight_at(J->gamma, c0 + ch, 1.0f);
            /* (x - mean) rstd ga + beta = (x - c) a + b, a = rstd ga, b = beta - (mean - c) a */
            float a = (float)(rstd * ga), b = (float)(tdm_ops_weight_at(J->beta, c0 + ch, 0.0f) - (mean - c) * rstd * ga);
            if (J->cab) {
                float *o = J->cab + (u / J->groups * J->C + c0 + ch) * 3;
                o[0] = c, o[1] = a, o[2] = b;
            } else {
                tdm_vec_affine(xg + ch * J->HW, yg + ch * J->HW, J->HW, c, a, b, J->silu);
            }
        }
    }
}

tdm_code tdm_group_norm(const tdm_exec *ex, const float *x, int64_t N, int64_t C, int64_t HW, int groups,
                        float eps, const tdm_tensor *gamma, const tdm_tensor *beta, int silu, float *y) {
    if (tdm_exec_ref(ex)) return tdm_group_norm_ref(x, N, C, HW, groups, eps, gamma, beta, silu, y);
    if (groups < 1 || C % groups != 0 || N < 0 || HW < 0) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_opt_weight_ok(gamma, C) || !tdm_ops_opt_weight_ok(beta, C)) return TDM_ERR_INVALID_ARG;
    gn_job J = {x, y, C, HW, C / groups, N * groups, groups, silu, eps, gamma, beta, NULL, 0};
    if (J.units <= 1 || tdm_exec_threads(ex) == 1)
        gn_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, gn_task, &J);
    return TDM_OK;
}

tdm_code tdm_group_norm_coeffs(const tdm_exec *ex, const float *x, int64_t N, int64_t C, int64_t HW, int groups,
                               float eps, const tdm_tensor *gamma, const tdm_tensor *beta, float *cab) {
    if (groups < 1 || C % groups != 0 || N < 0 || HW < 0 || !cab) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_opt_weight_ok(gamma, C) || !tdm_ops_opt_weight_ok(beta, C)) return TDM_ERR_INVALID_ARG;
    gn_job J = {x, NULL, C, HW, C / groups, N * groups, groups, 0, eps, gamma, beta, cab, 0};
    if (J.units <= 1 || tdm_exec_threads(ex) == 1)
        gn_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, gn_task, &J);
    return TDM_OK;
}

void tdm_conv_pre_apply(const tdm_conv_pre *pre, int64_t n, int64_t ci, int64_t Cin, const float *src, int64_t W,
                        float *dst) {
    if (pre->upsample2x) {
        for (int64_t i = 0; i < W; i++) dst[i] = src[i / 2];
        src = dst;
    }
    if (pre->cab) {
        const float *k = pre->cab + (n * Cin + ci) * 3;
        tdm_vec_affine(src, dst, W, k[0], k[1], k[2], pre->silu);
    } else if (src != dst) {
        memcpy(dst, src, (size_t)W * sizeof(float));
    }
}

/* ---- layer norm --------------------------------------------------------------------------------- */

enum { LN_ROWS = 16 }; /* rows per unit */

typedef struct {
    const float *x;
    float *y;
    int64_t M, C;
    float eps;
    const float *gamma, *beta; /* [C] widened, or NULL */
} ln_job;

static void ln_task(void *ctx, int ith, int nth) {
    const ln_job *J = ctx;
    long u0, u1;
    tdm_split_range((long)((J->M + LN_ROWS - 1) / LN_ROWS), ith, nth, &u0, &u1);
    int64_t r1 = (int64_t)u1 * LN_ROWS < J->M ? (int64_t)u1 * LN_ROWS : J->M;
    for (int64_t r = (int64_t)u0 * LN_ROWS; r < r1; r++) {
        const float *xr = J->x + r * J->C;
        float *yr = J->y + r * J->C;
        double mean, var;
        tdm_vec_moments(xr, J->C, &mean, &var);
        float fm = (float)mean;
        float rstd = (float)(1.0 / sqrt(var + (double)J->eps)), dm = (float)(mean - fm); /* x - mean = (x - fm) - dm */
        for (int64_t c = 0; c < J->C; c++) {
            float v = ((xr[c] - fm) - dm) * rstd;
            if (J->gamma) v *= J->gamma[c];
            if (J->beta) v += J->beta[c];
            yr[c] = v;
        }
    }
}

tdm_code tdm_layer_norm(const tdm_exec *ex, const float *x, int64_t M, int64_t C, float eps,
                        const tdm_tensor *gamma, const tdm_tensor *beta, float *y) {
    if (tdm_exec_ref(ex)) return tdm_layer_norm_ref(x, M, C, eps, gamma, beta, y);
    if (M < 0 || C < 1) return TDM_ERR_INVALID_ARG;
    if (!tdm_ops_opt_weight_ok(gamma, C) || !tdm_ops_opt_weight_ok(beta, C)) return TDM_ERR_INVALID_ARG;
    float *gb = malloc((size_t)C * 2 * sizeof(float)); /* [2, C]: gamma, beta widened */
    if (!gb) return TDM_ERR_NOMEM;
    if (gamma) tdm_ops_widen(gamma, 0, C, gb);
    if (beta) tdm_ops_widen(beta, 0, C, gb + C);
    ln_job J = {x, y, M, C, eps, gamma ? gb : NULL, beta ? gb + C : NULL};
    if (M <= LN_ROWS || tdm_exec_threads(ex) == 1)
        ln_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, ln_task, &J);
    free(gb);
    return TDM_OK;
}

/* ---- element-wise (kernels in ops_vec.c) ----------------------------------------------------------- */

void tdm_silu(float *x, int64_t n) { tdm_vec_act(TDM_ACT_SILU, x, n); }
void tdm_gelu(float *x, int64_t n) { tdm_vec_act(TDM_ACT_GELU, x, n); }
void tdm_gelu_tanh(float *x, int64_t n) { tdm_vec_act(TDM_ACT_GELU_TANH, x, n); }
void tdm_quick_gelu(float *x, int64_t n) { tdm_vec_act(TDM_ACT_QUICK_GELU, x, n); }

void tdm_geglu(const float *in, int64_t M, int64_t F, float *out) {
    for (int64_t m = 0; m < M; m++) tdm_vec_geglu(in + m * 2 * F, in + m * 2 * F + F, out + m * F, F);
}

void tdm_softmax_rows(float *x, int64_t rows, int64_t cols) { tdm_vec_softmax_rows(x, rows, cols, cols); }

enum { ACT_BLOCK = 16384 }; /* values per unit */

typedef struct {
    tdm_act act;
    float *x;
    int64_t n;
} act_job;

static void act_task(void *ctx, int ith, int nth) {
    const act_job *J = ctx;
    long u0, u1;
    tdm_split_range((long)((J->n + ACT_BLOCK - 1) / ACT_BLOCK), ith, nth, &u0, &u1);
    int64_t i0 = (int64_t)u0 * ACT_BLOCK, i1 = (int64_t)u1 * ACT_BLOCK < J->n ? (int64_t)u1 * ACT_BLOCK : J->n;
    if (i1 > i0) tdm_vec_act(J->act, J->x + i0, i1 - i0);
}

void tdm_activation(const tdm_exec *ex, tdm_act act, float *x, int64_t n) {
    if (tdm_exec_ref(ex)) {
        tdm_activation_ref(act, x, n);
        return;
    }
    act_job J = {act, x, n};
    if (n <= ACT_BLOCK || tdm_exec_threads(ex) == 1)
        act_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, act_task, &J);
}

typedef struct {
    float *y;
    const float *x;
    int64_t n;
} add_job;

static void add_task(void *ctx, int ith, int nth) {
    const add_job *J = ctx;
    long u0, u1;
    tdm_split_range((long)((J->n + ACT_BLOCK - 1) / ACT_BLOCK), ith, nth, &u0, &u1);
    int64_t i0 = (int64_t)u0 * ACT_BLOCK, i1 = (int64_t)u1 * ACT_BLOCK < J->n ? (int64_t)u1 * ACT_BLOCK : J->n;
    for (int64_t i = i0; i < i1; i++) J->y[i] += J->x[i];
}

void tdm_add_ex(const tdm_exec *ex, float *y, const float *x, int64_t n) {
    add_job J = {y, x, n};
    if (n <= 4 * ACT_BLOCK || tdm_exec_threads(ex) == 1) add_task(&J, 0, 1);
    else tdm_pool_run(ex->pool, add_task, &J);
}

typedef struct {
    const float *in; /* [M, 2F] */
    float *out;      /* [M, F] */
    int64_t M, F;
} geglu_job;

static void geglu_task(void *ctx, int ith, int nth) {
    const geglu_job *J = ctx;
    long m0, m1;
    tdm_split_range((long)J->M, ith, nth, &m0, &m1); /* rows are independent: any split is exact */
    if (m1 > m0) tdm_geglu(J->in + m0 * 2 * J->F, m1 - m0, J->F, J->out + m0 * J->F);
}

void tdm_geglu_ex(const tdm_exec *ex, const float *in, int64_t M, int64_t F, float *out) {
    if (tdm_exec_ref(ex)) {
        tdm_geglu_ref(in, M, F, out);
        return;
    }
    geglu_job J = {in, out, M, F};
    if (M * F <= ACT_BLOCK || tdm_exec_threads(ex) == 1)
        geglu_task(&J, 0, 1);
    else
        tdm_pool_run(ex->pool, geglu_task, &J);
}

void tdm_upsample_nearest2x(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, float *y) {
    for (int64_t p = 0; p < N * C; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * 4 * H * W;
        for (int64_t i = 0; i < H; i++) {
            float *r0 = yp + 2 * i * 2 * W, *r1 = r0 + 2 * W;
            for (int64_t j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = xp[i * W + j];
            memcpy(r1, r0, (size_t)(2 * W) * sizeof(float));
        }
    }
}
