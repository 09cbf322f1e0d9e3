/* 2-D convolution (NCHW) as GEMM: per sample, y[Cout, HoWo] = W[Cout, K] col[K, HoWo], K = Cin kh kw.
 * 1x1 / stride 1 / no padding: col is the input itself. Otherwise im2col over bounded tiles of output
 * pixels (col buffer <= CONV_COL_BYTES whatever the image size). Each tile: pass 1 fills col (rows of
 * K split over the pool), pass 2 runs units of (bco output channels x bpx pixels, sized as tdm_linear's blocks), each a
 * single-threaded sgemm with its slice of W widened to f32 in per-thread scratch. All block sizes
 * depend on shapes only, so results are identical for any thread count. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops_internal.h"

#define CONV_COL_BYTES ((int64_t)16 << 20) /* im2col tile budget */
#define CONV_W_FLOATS ((int64_t)1 << 20)    /* widened weight block per thread (4 MB) */
#ifndef TDM_CONV_WINO4_MIN_TILES
#define TDM_CONV_WINO4_MIN_TILES 64 /* AUTO: F(4,3) from this many 4x4 tiles per image (tdm_conv_pick) */
#endif
#ifndef TDM_CONV_WINO_MIN_CH
#define TDM_CONV_WINO_MIN_CH 16 /* AUTO: Winograd from this many input and output channels */
#endif
#define CONV_PRE_KEEP_BYTES ((size_t)32 << 20) /* tdm_conv2d_pre inputs kept as reusable scratch */

typedef struct {
    /* geometry */
    int64_t Cin, H, W, Cout, kh, kw, Ho, Wo, K;
    int stride, pad;
    const tdm_tensor *weight; /* [Cout, K] */
    const float *bias;        /* [Cout] widened, or NULL */
    float *wscr;              /* per thread (stride wstride) [bco, K] (non-F32 weights) */
    int64_t wstride;
    int64_t bco, bpx;         /* unit: output channels x pixels (functions of the shapes) */
    /* current tile */
    const float *xn; /* [Cin, H, W] input of this sample */
    float *yn;       /* [Cout, Ho*Wo] output of this sample */
    const float *col; /* [K, ldcol] columns of this tile (im2col buffer or the input for 1x1) */
    float *colbuf;    /* [K, P] im2col buffer */
    int64_t ldcol, p0, P, n_px;
    atomic_llong next; /* next unit of the current tile to take */
} conv_job;

/* dst[0..P) = im2col row k = (ci, ky, kx) for output pixels [p0, p0+P). */
static void im2col_row(const conv_job *J, int64_t k, float *dst) {
    int64_t kx = k % J->kw, ky = (k / J->kw) % J->kh, ci = k / (J->kw * J->kh);
    const float *xc = J->xn + ci * J->H * J->W;
    int64_t s = J->stride, off = kx - J->pad;
    /* output columns o with 0 <= o*s + off <= W-1 read the input; others are padding */
    int64_t o_lo = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t o_hi = J->W - 1 - off >= 0 ? (J->W - 1 - off) / s : -1; /* inclusive */
    int64_t p = J->p0, end = J->p0 + J->P;
    while (p < end) {
        int64_t oy = p / J->Wo, ox = p % J->Wo;
        int64_t run = J->Wo - ox < end - p ? J->Wo - ox : end - p;
        int64_t iy = oy * s - J->pad + ky;
        if (iy < 0 || iy >= J->H) {
            memset(dst, 0, (size_t)run * sizeof(float));
        } else {
            const float *xr = xc + iy * J->W; /* input row; column of output o is o*s + off */
            int64_t e = ox + run;
            int64_t a = o_lo > ox ? o_lo : ox, b = o_hi + 1 < e ? o_hi + 1 : e; /* valid outputs [a, b) */
            if (a > e) a = e;
            if (b < a) b = a;
            for (int64_t o = ox; o < a; o++) dst[o - ox] = 0.0f;
            if (s == 1 && b > a)
                memcpy(dst + (a - ox), xr + (a + off), (size_t)(b - a) * sizeof(float));
            else if (s != 1)
                for (int64_t o = a; o < b; o++) dst[o - ox] = xr[o * s + off];
            for (int64_t o = b; o < e; o++) dst[o - ox] = 0.0f;
        }
        dst += run;
        p += run;
    }
}

static void im2col_task(void *ctx, int ith, int nth) {
    const conv_job *J = ctx;
    long k0, k1;
    tdm_split_range((long)J->K, ith, nth, &k0, &k1); /* plain copies: any split gives the same col */
    for (long k = k0; k < k1; k++) im2col_row(J, k, J->colbuf + k * J->P);
}

static void gemm_task(void *ctx, int ith, int nth) {
    conv_job *J = ctx;
    int64_t units = (J->Cout + J->bco - 1) / J->bco * J->n_px;
    int64_t widened = -1; /* co-block in this thread's scratch */
    for (int64_t u; (u = tdm_take_unit(&J->next)) < units;) {
        int64_t cb = u / J->n_px, pb = u % J->n_px; /* co-block major: consecutive units share W tile */
        int64_t co0 = cb * J->bco, nco = J->Cout - co0 < J->bco ? J->Cout - co0 : J->bco;
        int64_t q0 = pb * J->bpx, npx = J->P - q0 < J->bpx ? J->P - q0 : J->bpx;
        const float *w; /* [nco, K] */
        if (J->weight->dtype == TDM_F32) {
            w = (const float *)J->weight->data + co0 * J->K;
        } else {
            float *buf = J->wscr + ith * J->wstride;
            if (widened != cb) tdm_ops_widen(J->weight, co0 * J->K, nco * J->K, buf);
            widened = cb;
            w = buf;
        }
        int64_t HoWo = J->Ho * J->Wo;
        float *yb = J->yn + co0 * HoWo + J->p0 + q0; /* [nco, npx] with row stride HoWo */
        tdm_sgemm_single(0, 0, nco, npx, J->K, 1.0f, w, J->K, J->col + q0, J->ldcol, 0.0f, yb, HoWo);
        if (J->bias)
            for (int64_t c = 0; c < nco; c++)
                for (int64_t i = 0; i < npx; i++) yb[c * HoWo + i] += J->bias[co0 + c];
    }
}

/* ---- algorithm choice ----------------------------------------------------------------------------- */

static atomic_int conv_algo = -1; /* -1: not read from the environment yet */

tdm_conv_algo tdm_conv_get_algo(void) {
    static const char *const names[] = {"im2col", "wino2", "wino4"};
    static const int values[] = {TDM_CONV_IM2COL, TDM_CONV_WINO2, TDM_CONV_WINO4};
    return (tdm_conv_algo)tdm_ops_env_choice(&conv_algo, "TDM_CONV", names, values, 3, TDM_CONV_AUTO);
}

void tdm_conv_set_algo(tdm_conv_algo algo) { atomic_store(&conv_algo, (int)algo); }

tdm_conv_algo tdm_conv_pick(int64_t N, int64_t Cin, int64_t Cout, int64_t kh, int64_t kw, int stride, int64_t Ho,
                            int64_t Wo) {
    if (kh != 3 || kw != 3 || stride != 1) return TDM_CONV_IM2COL;
    tdm_conv_algo a = tdm_conv_get_algo();
    if (a != TDM_CONV_AUTO) return a;
    /* AUTO (the one place that decides; measured in docs/PERFORMANCE.md, history step 11):
     * - fewer than 16 input or output channels (conv_in / conv_out): im2col (little work; Winograd's
     *   error relative to the result is largest when few channels are summed);
     * - F(4,3) when the image has >= 64 F(4,3) tiles (32x32 and larger): 0.7-0.9x the CPU time of F(2,3);
     *   below that the weight transform (36 / 16 of F(2,3)'s, per call) costs more than the GEMMs save;
     * - F(2,3) when the image has >= 64 F(2,3) tiles (16x16 and larger);
     * - im2col otherwise (8x8: the transformed weights cost more memory traffic than the GEMMs save).
     * F(4,3)'s error is ~5-10x F(2,3)'s (ops_winograd.c); with this rule every fixture passes (margins in
     * docs/PERFORMANCE.md). Per-image sizes only, so a sample's result does not depend on its batch. */
    (void)N;
    if (Cin < TDM_CONV_WINO_MIN_CH || Cout < TDM_CONV_WINO_MIN_CH) return TDM_CONV_IM2COL;
    if (((Ho + 3) / 4) * ((Wo + 3) / 4) >= TDM_CONV_WINO4_MIN_TILES) return TDM_CONV_WINO4;
    if (((Ho + 1) / 2) * ((Wo + 1) / 2) >= 64) return TDM_CONV_WINO2;
    return TDM_CONV_IM2COL;
}

static void run_pool(const tdm_exec *ex, int parallel, tdm_task_fn fn, void *ctx) {
    if (parallel && tdm_exec_threads(ex) > 1)
        tdm_pool_run(ex->pool, fn, ctx);
    else
        fn(ctx, 0, 1);
}

tdm_code tdm_conv2d(const tdm_exec *ex, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                    const tdm_tensor *weight, const tdm_tensor *bias, int stride, int pad, float *y) {
    if (tdm_exec_ref(ex)) return tdm_conv2d_ref(x, N, Cin, H, W, weight, bias, stride, pad, y);
    if (!weight || weight->ndim != 4 || weight->shape[1] != Cin || stride < 1 || pad < 0 || N < 0)
        return TDM_ERR_INVALID_ARG;
    conv_job J;
    memset(&J, 0, sizeof J);
    atomic_init(&J.next, 0);
    J.Cin = Cin, J.H = H, J.W = W, J.Cout = weight->shape[0], J.kh = weight->shape[2], J.kw = weight->shape[3];
    J.stride = stride, J.pad = pad, J.weight = weight;
    if (J.kh < 1 || J.kw < 1 || H + 2 * pad < J.kh || W + 2 * pad < J.kw) return TDM_ERR_INVALID_ARG;
    J.K = Cin * J.kh * J.kw;
    if (!tdm_ops_weight_ok(weight, J.Cout * J.K) || !tdm_ops_opt_weight_ok(bias, J.Cout)) return TDM_ERR_INVALID_ARG;
    J.Ho = (H + 2 * pad - J.kh) / stride + 1, J.Wo = (W + 2 * pad - J.kw) / stride + 1;
    int64_t HoWo = J.Ho * J.Wo;
    if (!tdm_gemm_args_ok(0, 0, J.Cout, HoWo, J.K, J.K, HoWo, HoWo)) return TDM_ERR_INVALID_ARG;
    if (N == 0 || J.Cout == 0 || HoWo == 0) return TDM_OK;

    tdm_conv_algo algo = tdm_conv_pick(N, Cin, J.Cout, J.kh, J.kw, stride, J.Ho, J.Wo);
    if (algo == TDM_CONV_WINO2 || algo == TDM_CONV_WINO4)
        return tdm_conv2d_winograd(ex, algo == TDM_CONV_WINO2 ? 2 : 4, x, N, Cin, H, W, weight, bias, pad, y);

    int direct = J.kh == 1 && J.kw == 1 && stride == 1 && pad == 0; /* 1x1: col = input */
    int64_t P = HoWo;
    if (!direct) { /* pixels per im2col tile, a function of the shapes only */
        int64_t fit = CONV_COL_BYTES / (J.K * (int64_t)sizeof(float));
        P = fit >= 16 ? fit / 16 * 16 : 16;
        if (P > HoWo) P = HoWo;
    }
    int nth = tdm_exec_threads(ex);
    /* unit sizes from the output channels and the pixels of a full tile; the widened weight block is
     * bounded (CONV_W_FLOATS) */
    tdm_linear_blocks(J.Cout, P, &J.bco, &J.bpx);
    {
        int64_t cap = CONV_W_FLOATS / J.K;
        cap = cap >= 16 ? cap / 16 * 16 : 16;
        if (J.bco > cap) J.bco = cap;
    }
    /* scratch: the calling thread's reusable buffers (ops_workspace.c), no per-call allocation */
    tdm_workspace *ws = tdm_ops_workspace();
    float *bf = NULL; /* [Cout] widened bias */
    if (bias) {
        if (!(bf = tdm_workspace_get(ws, TDM_WS_BIAS, (size_t)J.Cout * sizeof(float)))) return TDM_ERR_NOMEM;
        tdm_ops_widen(bias, 0, J.Cout, bf);
        J.bias = bf;
    }
    if (weight->dtype != TDM_F32 && !(J.wscr = tdm_ops_ws_per_thread(TDM_WS_CONV_W, nth, J.bco * J.K, &J.wstride)))
        return TDM_ERR_NOMEM;
    if (!direct && !(J.colbuf = tdm_workspace_get(ws, TDM_WS_CONV_COL, (size_t)(J.K * P) * sizeof(float))))
        return TDM_ERR_NOMEM;

    for (int64_t n = 0; n < N; n++) {
        J.xn = x + n * Cin * H * W;
        J.yn = y + n * J.Cout * HoWo;
        for (int64_t p0 = 0; p0 < HoWo; p0 += P) {
            J.p0 = p0;
            J.P = HoWo - p0 < P ? HoWo - p0 : P;
            J.n_px = (J.P + J.bpx - 1) / J.bpx;
            if (direct) {
                J.col = J.xn + p0;
                J.ldcol = HoWo;
            } else {
                run_pool(ex, J.K * J.P >= 16384, im2col_task, &J);
                J.col = J.colbuf;
                J.ldcol = J.P;
            }
            int64_t units = (J.Cout + J.bco - 1) / J.bco * J.n_px;
            atomic_store(&J.next, 0);
            run_pool(ex, units > 1, gemm_task, &J);
        }
    }
    return TDM_OK;
}

/* ---- convolution with an input pre-op (GroupNorm+SiLU, nearest 2x upsampling) ----------------------- */

tdm_code tdm_conv2d_pre(const tdm_exec *ex, const float *x, int64_t N, int64_t Cin, int64_t H, int64_t W,
                        const tdm_tensor *weight, const tdm_tensor *bias, int stride, int pad, const tdm_conv_pre *pre,
                        float *y) {
    if (!pre || (!pre->cab && !pre->upsample2x)) return tdm_conv2d(ex, x, N, Cin, H, W, weight, bias, stride, pad, y);
    if (!weight || weight->ndim != 4 || weight->shape[1] != Cin || stride < 1 || pad < 0 || N < 0 || H < 1 || W < 1)
        return TDM_ERR_INVALID_ARG;
    if (pre->upsample2x && (H % 2 || W % 2)) return TDM_ERR_INVALID_ARG;
    const int64_t kh = weight->shape[2], kw = weight->shape[3];
    if (kh < 1 || kw < 1 || H + 2 * pad < kh || W + 2 * pad < kw) return TDM_ERR_INVALID_ARG;
    const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    tdm_conv_algo algo = tdm_conv_pick(N, Cin, weight->shape[0], kh, kw, stride, Ho, Wo);
    if (!tdm_exec_ref(ex) && (algo == TDM_CONV_WINO2 || algo == TDM_CONV_WINO4))
        return tdm_conv2d_winograd_pre(ex, algo == TDM_CONV_WINO2 ? 2 : 4, x, N, Cin, H, W, weight, bias, pad, pre, y);
    /* other algorithms: materialise x' */
    /* [N, Cin, H, W]: reusable scratch up to CONV_PRE_KEEP_BYTES, larger ones are not kept after the call */
    const size_t xbytes = (size_t)(N * Cin * H * W) * sizeof(float);
    const int keep = xbytes <= CONV_PRE_KEEP_BYTES;
    float *xp = keep ? tdm_workspace_get(tdm_ops_workspace(), TDM_WS_CONV_PRE, xbytes) : malloc(xbytes);
    if (!xp) return TDM_ERR_NOMEM;
    const int64_t Hs = pre->upsample2x ? H / 2 : H, Ws = pre->upsample2x ? W / 2 : W;
    for (int64_t n = 0; n < N; n++)
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int64_t iy = 0; iy < H; iy++)
                tdm_conv_pre_apply(pre, n, ci, Cin, x + ((n * Cin + ci) * Hs + (pre->upsample2x ? iy / 2 : iy)) * Ws, W,
                                   xp + ((n * Cin + ci) * H + iy) * W);
    tdm_code rc = tdm_conv2d(ex, xp, N, Cin, H, W, weight, bias, stride, pad, y);
    if (!keep) free(xp);
    return rc;
}
