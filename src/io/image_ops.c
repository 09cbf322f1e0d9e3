/* Oracle image preprocessing: see image_ops.h. */
#include "io/image_ops.h"

#include <string.h>

const float tdm_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float tdm_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

tdm_code tdm_shortest_edge_size(int w, int h, int n, int *out_w, int *out_h, tdm_status *st) {
    if (w <= 0 || h <= 0 || n <= 0 || n > TDM_IMAGE_MAX_SIDE)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "resize: invalid sizes (image %dx%d, shortest edge %d)", w, h, n);
    int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    /* Python: int(size * long / short): the exact product, one correctly rounded division, truncation */
    double l = (double)((long long)n * lng) / (double)shrt;
    if (l > TDM_IMAGE_MAX_SIDE)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "resize: %dx%d with shortest edge %d gives a side of %.0f (max %d)",
                        w, h, n, l, TDM_IMAGE_MAX_SIDE);
    int nl = (int)l;
    *out_w = w <= h ? n : nl;
    *out_h = w <= h ? nl : n;
    return TDM_OK;
}

/* Python round(d / 2) for an integer d >= 0: half to even. */
static long half_round_even(long d) {
    long k = d / 2;
    if (d % 2 && k % 2) k++;
    return k;
}

static long floor_div2(long d) { return d >= 0 ? d / 2 : -((-d + 1) / 2); }

/* Copies src rows/cols [top, top + oh) x [left, left + ow) into dst (oh x ow), zeros outside src. */
static void copy_window(const tdm_image *src, long top, long left, tdm_image *dst) {
    memset(dst->pixels, 0, (size_t)dst->width * dst->height * 3);
    for (int y = 0; y < dst->height; y++) {
        long sy = top + y;
        if (sy < 0 || sy >= src->height) continue;
        for (int x = 0; x < dst->width; x++) {
            long sx = left + x;
            if (sx < 0 || sx >= src->width) continue;
            memcpy(dst->pixels + ((size_t)y * dst->width + x) * 3, src->pixels + ((size_t)sy * src->width + sx) * 3, 3);
        }
    }
}

tdm_code tdm_image_center_crop_mode(const tdm_image *src, int width, int height, tdm_crop_mode mode, tdm_image *dst,
                                    tdm_status *st) {
    memset(dst, 0, sizeof *dst);
    if (!src || !src->pixels || src->channels != 3 || src->width <= 0 || src->height <= 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "center crop: source must be an RGB8 image");
    if (width <= 0 || height <= 0)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "center crop: invalid crop size %dx%d", width, height);
    long H = src->height, W = src->width;
    long top, left, oh = height, ow = width;
    if (mode == TDM_CROP_TORCHVISION) {
        /* pad (ch - H) // 2 on top when larger; the padded dim then crops at 0 */
        top = height > H ? -((height - H) / 2) : half_round_even(H - height);
        left = width > W ? -((width - W) / 2) : half_round_even(W - width);
    } else if (mode == TDM_CROP_TRANSFORMERS) {
        top = floor_div2(H - height);
        left = floor_div2(W - width);
        long bottom = top + height, right = left + width;
        if (!(top >= 0 && bottom <= H && left >= 0 && right <= W)) {
            /* padding path: image placed at ((nh - H) // 2, (nw - W) // 2) of an nh x nw canvas, then
             * the window [max(0, top'), min(nh, bottom')) with top' = top + pad */
            long nh = height > H ? height : H, nw = width > W ? width : W;
            long tp = (nh - H) / 2, lp = (nw - W) / 2;
            long t0 = top + tp, b0 = bottom + tp, l0 = left + lp, r0 = right + lp;
            long t1 = t0 > 0 ? t0 : 0, b1 = b0 < nh ? b0 : nh, l1 = l0 > 0 ? l0 : 0, r1 = r0 < nw ? r0 : nw;
            oh = b1 - t1;
            ow = r1 - l1;
            top = t1 - tp; /* back to source coordinates */
            left = l1 - lp;
        }
    } else {
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "center crop: unknown mode %d", (int)mode);
    }
    if (oh <= 0 || ow <= 0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "center crop: empty result");
    TDM_TRY(tdm_image_alloc(dst, (int)ow, (int)oh, st));
    copy_window(src, top, left, dst);
    return TDM_OK;
}

void tdm_image_normalize_chw(const tdm_image *img, const float mean[3], const float std[3], float *out) {
    size_t hw = (size_t)img->width * img->height;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < hw; i++) {
            float x = (float)img->pixels[i * 3 + c] / 255.0f; /* ToTensor */
            out[c * hw + i] = (x - mean[c]) / std[c];          /* Normalize: sub_(mean).div_(std) */
        }
}

tdm_code tdm_preprocess_oracle(const tdm_image *src, int size, tdm_crop_mode mode, const float mean[3],
                               const float std[3], float *out, tdm_image *resized, tdm_image *cropped,
                               tdm_status *st) {
    if (!src || !src->pixels || src->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "preprocess: source must be an RGB8 image");
    int rw, rh;
    TDM_TRY(tdm_shortest_edge_size(src->width, src->height, size, &rw, &rh, st));
    tdm_image r, c;
    TDM_TRY(tdm_image_resize(src, rw, rh, TDM_RESAMPLE_BICUBIC, &r, st));
    tdm_code rc = tdm_image_center_crop_mode(&r, size, size, mode, &c, st);
    if (rc) {
        tdm_image_free(&r);
        return rc;
    }
    if (c.width != size || c.height != size) { /* cannot happen after a shortest-edge resize */
        tdm_image_free(&r);
        tdm_image_free(&c);
        return tdm_fail(st, TDM_ERR_INTERNAL, "preprocess: crop gave %dx%d", c.width, c.height);
    }
    tdm_image_normalize_chw(&c, mean, std, out);
    if (resized) *resized = r;
    else tdm_image_free(&r);
    if (cropped) *cropped = c;
    else tdm_image_free(&c);
    return TDM_OK;
}
