/* Canny edge detector for ControlNet conditioning images (public: tdm_canny in tandem.h).
 *
 * What runs (OpenCV cv2.Canny(img, low, high), apertureSize 3, L2gradient false, on the RGB image as
 * ControlNet's annotator passes it; scalar, single-threaded, written for clarity):
 *   0. optional Gaussian blur (blur_sigma > 0; not part of cv2.Canny): each channel convolved with a
 *      normalised separable kernel exp(-d^2 / (2 sigma^2)), size round(6 sigma + 1) | 1 (OpenCV's
 *      choice for 8-bit images), borders reflected without repeating the edge pixel (BORDER_REFLECT_101,
 *      cv2.GaussianBlur's default), computed in float and rounded to 8 bits (OpenCV uses fixed point:
 *      values may differ by one grey level);
 *   1. per channel: Sobel 3x3 gradients dx = [-1 0 1; -2 0 2; -1 0 1] * img, dy = its transpose, with
 *      replicated borders (BORDER_REPLICATE), magnitude |dx| + |dy|; per pixel the channel with the
 *      largest magnitude is kept (the first on ties), with its dx and dy (OpenCV's multi-channel rule:
 *      a grey image gives plain grey Canny);
 *   2. thresholds low = floor(low), high = floor(high) (swapped when low > high);
 *   3. non-maximum suppression (magnitudes outside the image are 0), direction from dx, dy with
 *      tan(22.5 deg) in 15-bit fixed point (13573): horizontal gradient: m > left && m >= right;
 *      vertical: m > above && m >= below; diagonal: m > the neighbour above at column -s and
 *      m > the one below at column +s, s = -1 when dx and dy have opposite signs, else +1;
 *      a surviving pixel with m > low is a candidate, with m > high a seed;
 *   4. hysteresis: every candidate 8-connected (through candidates) to a seed becomes an edge;
 *   5. output 255 on edges, 0 elsewhere, as RGB (R = G = B: ControlNet's HWC3).
 * This is the same edge set OpenCV 4 produces (its push order differs, the result does not). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"

#define CANNY_MAX_PIXELS (1L << 26) /* 13 bytes of work per pixel: 8192 x 8192 at most */

static int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

/* In-place separable Gaussian blur of an interleaved RGB8 image. */
static tdm_code gaussian_blur(uint8_t *px, int w, int h, float sigma, tdm_status *st) {
    int k = (int)lround(sigma * 6.0 + 1.0) | 1;
    if (k > 1001) k = 1001;
    const int r = k / 2;
    float *ker = malloc((size_t)k * sizeof(float));           /* [k] */
    float *tmp = malloc((size_t)w * h * 3 * sizeof(float));   /* horizontal pass [h, w, 3] */
    if (!ker || !tmp) {
        free(ker);
        free(tmp);
        return tdm_fail(st, TDM_ERR_NOMEM, "canny: out of memory for the blur");
    }
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        const double d = i - r;
        ker[i] = (float)exp(-d * d / (2.0 * (double)sigma * sigma));
        sum += ker[i];
    }
    for (int i = 0; i < k; i++) ker[i] = (float)(ker[i] / sum);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0.0f;
                for (int i = 0; i < k; i++) a += ker[i] * px[((size_t)y * w + reflect101(x + i - r, w)) * 3 + c];
                tmp[((size_t)y * w + x) * 3 + c] = a;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float a = 0.0f;
                for (int i = 0; i < k; i++) a += ker[i] * tmp[((size_t)reflect101(y + i - r, h) * w + x) * 3 + c];
                long v = lroundf(a);
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    free(ker);
    free(tmp);
    return TDM_OK;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

tdm_code tdm_canny(const tdm_image *in, float low_f, float high_f, float blur_sigma, tdm_image *out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "canny: out is NULL");
    memset(out, 0, sizeof *out);
    if (!in || !in->pixels || in->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "canny: the input must be an RGB8 image with pixels");
    const int w = in->width, h = in->height;
    if (w < 1 || h < 1 || w > TDM_IMAGE_MAX_SIDE || h > TDM_IMAGE_MAX_SIDE || (int64_t)w * h > CANNY_MAX_PIXELS)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "canny: image %dx%d is out of range (sides 1..%d, at most %ld pixels)",
                        w, h, TDM_IMAGE_MAX_SIDE, CANNY_MAX_PIXELS);
    if (!isfinite(low_f) || !isfinite(high_f) || low_f < 0.0f || high_f < 0.0f || low_f > 1e6f || high_f > 1e6f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "canny: thresholds %g / %g must be in [0, 1e6]", (double)low_f,
                        (double)high_f);
    if (!isfinite(blur_sigma) || blur_sigma < 0.0f || blur_sigma > 100.0f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "canny: blur sigma %g is out of range [0, 100]", (double)blur_sigma);
    if (low_f > high_f) {
        float t = low_f;
        low_f = high_f;
        high_f = t;
    }
    const int low = (int)floorf(low_f), high = (int)floorf(high_f);
    const size_t n = (size_t)w * h;
    const int mw = w + 2; /* padded map / magnitude width */
    const size_t mn = (size_t)mw * (h + 2);
    uint8_t *src = malloc(n * 3);                  /* [h, w, 3] (blurred copy) */
    int16_t *gx = malloc(n * sizeof(int16_t));     /* dx of the chosen channel [h, w] */
    int16_t *gy = malloc(n * sizeof(int16_t));     /* dy [h, w] */
    int32_t *mag = calloc(mn, sizeof(int32_t));    /* |dx|+|dy| [h+2, w+2], zero border */
    uint8_t *map = malloc(mn);                     /* 0 candidate, 1 not an edge, 2 edge [h+2, w+2] */
    int32_t *stack = malloc(mn * sizeof(int32_t)); /* hysteresis stack of map indices (each pushed once) */
    tdm_code rc = TDM_OK;
    if (!src || !gx || !gy || !mag || !map || !stack) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "canny: out of memory for a %dx%d image", w, h);
        goto done;
    }
    memcpy(src, in->pixels, n * 3);
    if (blur_sigma > 0.0f && (rc = gaussian_blur(src, w, h, blur_sigma, st))) goto done;

    /* 1. Sobel per channel (replicated borders), keep the strongest channel */
    for (int y = 0; y < h; y++) {
        const int ym = clampi(y - 1, 0, h - 1), yp = clampi(y + 1, 0, h - 1);
        for (int x = 0; x < w; x++) {
            const int xm = clampi(x - 1, 0, w - 1), xp = clampi(x + 1, 0, w - 1);
            int best = -1, bdx = 0, bdy = 0;
            for (int c = 0; c < 3; c++) {
#define P(yy, xx) ((int)src[((size_t)(yy) * w + (xx)) * 3 + c])
                const int dx = (P(ym, xp) - P(ym, xm)) + 2 * (P(y, xp) - P(y, xm)) + (P(yp, xp) - P(yp, xm));
                const int dy = (P(yp, xm) - P(ym, xm)) + 2 * (P(yp, x) - P(ym, x)) + (P(yp, xp) - P(ym, xp));
#undef P
                const int m = abs(dx) + abs(dy);
                if (m > best) {
                    best = m;
                    bdx = dx;
                    bdy = dy;
                }
            }
            gx[(size_t)y * w + x] = (int16_t)bdx;
            gy[(size_t)y * w + x] = (int16_t)bdy;
            mag[(size_t)(y + 1) * mw + x + 1] = best;
        }
    }

    /* 3. non-maximum suppression and seeds */
    size_t top = 0;
    memset(map, 1, mn);
    const int TG22 = 13573; /* (int)(tan(22.5 deg) * 2^15 + 0.5) */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t j = (size_t)(y + 1) * mw + x + 1;
            const int m = mag[j];
            if (m <= low) continue;
            const int xs = gx[(size_t)y * w + x], ys = gy[(size_t)y * w + x];
            const int64_t ax = abs(xs), ay = (int64_t)abs(ys) << 15;
            const int64_t tg22x = ax * TG22, tg67x = tg22x + (ax << 16);
            int keep;
            if (ay < tg22x) keep = m > mag[j - 1] && m >= mag[j + 1];
            else if (ay > tg67x) keep = m > mag[j - mw] && m >= mag[j + mw];
            else {
                const int s = (xs ^ ys) < 0 ? -1 : 1;
                keep = m > mag[j - mw - s] && m > mag[j + mw + s];
            }
            if (!keep) continue;
            if (m > high) {
                map[j] = 2;
                stack[top++] = (int32_t)j;
            } else {
                map[j] = 0;
            }
        }

    /* 4. hysteresis: grow the seeds through 8-connected candidates (the padded border is 1) */
    const long nb[8] = {-1, 1, -mw - 1, -mw, -mw + 1, mw - 1, mw, mw + 1};
    while (top > 0) {
        const size_t j = (size_t)stack[--top];
        for (int k = 0; k < 8; k++) {
            const size_t q = (size_t)((long)j + nb[k]);
            if (map[q] == 0) {
                map[q] = 2;
                stack[top++] = (int32_t)q;
            }
        }
    }

    /* 5. output */
    if ((rc = tdm_image_alloc(out, w, h, st))) goto done;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t v = map[(size_t)(y + 1) * mw + x + 1] == 2 ? 255 : 0;
            uint8_t *o = out->pixels + ((size_t)y * w + x) * 3;
            o[0] = o[1] = o[2] = v;
        }
done:
    free(src);
    free(gx);
    free(gy);
    free(mag);
    free(map);
    free(stack);
    return rc;
}
