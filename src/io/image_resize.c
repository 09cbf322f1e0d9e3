/* Pillow-compatible resampling (libImaging/Resample.c semantics, reimplemented): for each output
 * coordinate x, center = (x + 0.5) * scale, support = filter_support * max(scale, 1), taps
 * xmin = (int)(center - support + 0.5) .. xmax = (int)(center + support + 0.5) clipped to the input,
 * weight(i) = filter((i - center + 0.5) / max(scale, 1)), normalised to sum 1. The uint8 path rounds
 * weights to 22-bit fixed point and each pass to 0..255; horizontal pass first. Center crop as
 * transformers' center_crop. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"

#define RESAMPLE_PRECISION_BITS 22

static double filter_bilinear(double x) {
    if (x < 0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_bicubic(double x) {
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= 3.14159265358979323846;
    return sin(x) / x;
}

static double filter_lanczos(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

typedef struct resample_coeffs {
    int ksize;     /* taps per output */
    int *bounds;   /* [out, 2]: first tap, tap count */
    double *w;     /* [out, ksize] normalised weights */
} resample_coeffs;

static tdm_code coeffs_make(int in_size, int out_size, tdm_resample filter, resample_coeffs *c, tdm_status *st) {
    double (*fn)(double) = filter == TDM_RESAMPLE_BILINEAR ? filter_bilinear
                           : filter == TDM_RESAMPLE_BICUBIC ? filter_bicubic
                                                            : filter_lanczos;
    double fsupport = filter == TDM_RESAMPLE_BILINEAR ? 1.0 : filter == TDM_RESAMPLE_BICUBIC ? 2.0 : 3.0;
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = fsupport * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->w = calloc((size_t)out_size * (size_t)c->ksize, sizeof(double));
    if (!c->bounds || !c->w) {
        free(c->bounds);
        free(c->w);
        return tdm_fail(st, TDM_ERR_NOMEM, "resize: out of memory");
    }
    for (int x = 0; x < out_size; x++) {
        double center = (x + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        int xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        int cnt = xmax - xmin;
        if (cnt > c->ksize) cnt = c->ksize;
        double *k = c->w + (size_t)x * c->ksize, sum = 0;
        for (int i = 0; i < cnt; i++) {
            k[i] = fn((i + xmin - center + 0.5) / filterscale);
            sum += k[i];
        }
        if (sum != 0.0)
            for (int i = 0; i < cnt; i++) k[i] /= sum;
        c->bounds[2 * x] = xmin;
        c->bounds[2 * x + 1] = cnt;
    }
    return TDM_OK;
}

static void coeffs_free(resample_coeffs *c) {
    free(c->bounds);
    free(c->w);
}

static int32_t *coeffs_fixed(const resample_coeffs *c, int out_size) {
    size_t n = (size_t)out_size * c->ksize;
    int32_t *k = malloc(n * sizeof *k);
    if (!k) return NULL;
    for (size_t i = 0; i < n; i++) {
        double v = c->w[i] * (1 << RESAMPLE_PRECISION_BITS);
        k[i] = (int32_t)(v < 0 ? -0.5 + v : 0.5 + v);
    }
    return k;
}

static uint8_t clip8(int64_t v) {
    v >>= RESAMPLE_PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One uint8 pass along x (horizontal: step between taps = 3 bytes) producing out_w x h. */
static tdm_code pass_u8(const uint8_t *in, int in_w, int in_h, uint8_t *out, int out_w, int out_h, int horizontal,
                        tdm_resample filter, tdm_status *st) {
    resample_coeffs c;
    TDM_TRY(coeffs_make(horizontal ? in_w : in_h, horizontal ? out_w : out_h, filter, &c, st));
    int32_t *k = coeffs_fixed(&c, horizontal ? out_w : out_h);
    if (!k) {
        coeffs_free(&c);
        return tdm_fail(st, TDM_ERR_NOMEM, "resize: out of memory");
    }
    for (int y = 0; y < out_h; y++) {
        for (int x = 0; x < out_w; x++) {
            int o = horizontal ? x : y;
            int lo = c.bounds[2 * o], cnt = c.bounds[2 * o + 1];
            const int32_t *kk = k + (size_t)o * c.ksize;
            for (int ch = 0; ch < 3; ch++) {
                int64_t acc = 1 << (RESAMPLE_PRECISION_BITS - 1);
                for (int i = 0; i < cnt; i++) {
                    size_t src = horizontal ? ((size_t)y * in_w + (size_t)(lo + i)) * 3 + ch
                                            : ((size_t)(lo + i) * in_w + (size_t)x) * 3 + ch;
                    acc += (int64_t)in[src] * kk[i];
                }
                out[((size_t)y * out_w + x) * 3 + ch] = clip8(acc);
            }
        }
    }
    free(k);
    coeffs_free(&c);
    return TDM_OK;
}

tdm_code tdm_image_resize(const tdm_image *src, int width, int height, tdm_resample filter, tdm_image *dst,
                          tdm_status *st) {
    if (!src || !src->pixels || src->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "resize: source must be an RGB8 image");
    TDM_TRY(tdm_image_alloc(dst, width, height, st));
    int need_h = width != src->width, need_v = height != src->height;
    if (!need_h && !need_v) {
        memcpy(dst->pixels, src->pixels, (size_t)width * height * 3);
        return TDM_OK;
    }
    tdm_code rc = TDM_OK;
    if (need_h && need_v) {
        uint8_t *tmp = malloc((size_t)width * src->height * 3); /* [H_in, W_out, 3] */
        if (!tmp) rc = tdm_fail(st, TDM_ERR_NOMEM, "resize: out of memory");
        if (!rc) rc = pass_u8(src->pixels, src->width, src->height, tmp, width, src->height, 1, filter, st);
        if (!rc) rc = pass_u8(tmp, width, src->height, dst->pixels, width, height, 0, filter, st);
        free(tmp);
    } else if (need_h) {
        rc = pass_u8(src->pixels, src->width, src->height, dst->pixels, width, height, 1, filter, st);
    } else {
        rc = pass_u8(src->pixels, src->width, src->height, dst->pixels, width, height, 0, filter, st);
    }
    if (rc) tdm_image_free(dst);
    return rc;
}

/* One float pass (Pillow 'F' mode): weights in double, accumulation in double, no rounding. */
static tdm_code pass_f32(const float *in, int in_w, int in_h, float *out, int out_w, int out_h, int horizontal,
                         tdm_resample filter, tdm_status *st) {
    resample_coeffs c;
    TDM_TRY(coeffs_make(horizontal ? in_w : in_h, horizontal ? out_w : out_h, filter, &c, st));
    for (int y = 0; y < out_h; y++)
        for (int x = 0; x < out_w; x++) {
            int o = horizontal ? x : y;
            int lo = c.bounds[2 * o], cnt = c.bounds[2 * o + 1];
            const double *kk = c.w + (size_t)o * c.ksize;
            double acc = 0;
            for (int i = 0; i < cnt; i++)
                acc += (horizontal ? in[(size_t)y * in_w + lo + i] : in[(size_t)(lo + i) * in_w + x]) * kk[i];
            out[(size_t)y * out_w + x] = (float)acc;
        }
    coeffs_free(&c);
    return TDM_OK;
}

tdm_code tdm_resize_f32(const float *src, int w, int h, float *dst, int out_w, int out_h, tdm_resample filter,
                        tdm_status *st) {
    if (w <= 0 || h <= 0 || out_w <= 0 || out_h <= 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "resize: invalid size %dx%d -> %dx%d", w, h, out_w, out_h);
    if (w == out_w && h == out_h) {
        memcpy(dst, src, sizeof(float) * (size_t)w * h);
        return TDM_OK;
    }
    if (w != out_w && h != out_h) {
        float *tmp = malloc(sizeof(float) * (size_t)out_w * h); /* [h, out_w] */
        if (!tmp) return tdm_fail(st, TDM_ERR_NOMEM, "resize: out of memory");
        tdm_code rc = pass_f32(src, w, h, tmp, out_w, h, 1, filter, st);
        if (!rc) rc = pass_f32(tmp, out_w, h, dst, out_w, out_h, 0, filter, st);
        free(tmp);
        return rc;
    }
    return pass_f32(src, w, h, dst, out_w, out_h, w != out_w, filter, st);
}

tdm_code tdm_image_center_crop(const tdm_image *src, int width, int height, tdm_image *dst, tdm_status *st) {
    if (!src || !src->pixels || src->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "center crop: source must be an RGB8 image");
    TDM_TRY(tdm_image_alloc(dst, width, height, st));
    memset(dst->pixels, 0, (size_t)width * height * 3);
    /* Crop window in source coordinates (may start negative when padding). */
    long top = ((long)src->height - height) / 2, left = ((long)src->width - width) / 2;
    if ((long)src->height - height < 0 && ((long)src->height - height) % 2) top -= 1; /* floor division */
    if ((long)src->width - width < 0 && ((long)src->width - width) % 2) left -= 1;
    for (int y = 0; y < height; y++) {
        long sy = top + y;
        if (sy < 0 || sy >= src->height) continue;
        for (int x = 0; x < width; x++) {
            long sx = left + x;
            if (sx < 0 || sx >= src->width) continue;
            memcpy(dst->pixels + ((size_t)y * width + x) * 3, src->pixels + ((size_t)sy * src->width + sx) * 3, 3);
        }
    }
    return TDM_OK;
}
