/* Hole filling by pull-push (Gortler et al., "The Lumigraph", SIGGRAPH 1996, Sec. 3.3; the mip-map fill of
 * sparse samples): the colours around a hole, smoothly interpolated into it.
 *
 *   level 0:   c = pixel * k, k = 1 for the pixels that lie around the hole: outside it and 4-connected to the
 *              image border through pixels outside it; 0 inside the hole and on islands the hole encloses (an
 *              object inside a painted background is not what lies around the hole)  (premultiplied by weight)
 *   pull:      level l+1 (ceil(w/2) x ceil(h/2)) sums c and k over each 2x2 block of level l, until 1x1
 *   push:      from the top down, colour_l = c / k where k > 0, else colour_{l+1} sampled bilinearly at
 *              ((x + 0.5) / 2 - 0.5, (y + 0.5) / 2 - 0.5) (edge-clamped); the top without any weight is
 *              mid gray (nothing to fill from)
 *   result:    hole pixels = round(colour_0), others unchanged.
 * A hole that reaches all around the image (a new background) has nothing around it: it is filled mid gray.
 * What inpainting front ends call "fill" as the masked content: the region starts from its surroundings'
 * colours, not from what was painted over. Deterministic, O(W H). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"

typedef struct fill_level {
    int w, h;
    float *c; /* [h, w, 3] weighted colour sums, after the push: colours */
    float *k; /* [h, w] weights */
} fill_level;

/* colour of level `up` (already pushed) sampled bilinearly at level-below pixel (x, y), into rgb[3] */
static void sample_up(const fill_level *up, int x, int y, float *rgb) {
    const float fx = fminf(fmaxf(((float)x + 0.5f) * 0.5f - 0.5f, 0.0f), (float)(up->w - 1));
    const float fy = fminf(fmaxf(((float)y + 0.5f) * 0.5f - 0.5f, 0.0f), (float)(up->h - 1));
    const int x0 = (int)fx, y0 = (int)fy;
    const int x1 = x0 + 1 < up->w ? x0 + 1 : x0, y1 = y0 + 1 < up->h ? y0 + 1 : y0;
    const float ax = fx - (float)x0, ay = fy - (float)y0;
    for (int ch = 0; ch < 3; ch++) {
        const float a = up->c[3 * ((int64_t)y0 * up->w + x0) + ch], b = up->c[3 * ((int64_t)y0 * up->w + x1) + ch];
        const float c = up->c[3 * ((int64_t)y1 * up->w + x0) + ch], d = up->c[3 * ((int64_t)y1 * up->w + x1) + ch];
        rgb[ch] = (1 - ay) * ((1 - ax) * a + ax * b) + ay * ((1 - ax) * c + ax * d);
    }
}

/* k [H, W] = 1 for the pixels outside the hole 4-connected to the image border through such pixels, else 0. */
static tdm_code around_hole(int W, int H, const unsigned char *hole, float *k, tdm_status *st) {
    const int64_t n = (int64_t)W * H;
    int64_t *queue = malloc(sizeof(int64_t) * (size_t)n); /* [H W] */
    if (!queue) return tdm_fail(st, TDM_ERR_NOMEM, "fill: out of memory");
    int64_t head = 0, tail = 0;
    for (int64_t i = 0; i < n; i++) {
        const int x = (int)(i % W), y = (int)(i / W);
        k[i] = 0.0f;
        if (!hole[i] && (x == 0 || y == 0 || x == W - 1 || y == H - 1)) {
            k[i] = 1.0f;
            queue[tail++] = i;
        }
    }
    while (head < tail) {
        const int64_t i = queue[head++];
        const int x = (int)(i % W), y = (int)(i / W);
        const int64_t nb[4] = {x > 0 ? i - 1 : -1, x + 1 < W ? i + 1 : -1, y > 0 ? i - W : -1, y + 1 < H ? i + W : -1};
        for (int j = 0; j < 4; j++)
            if (nb[j] >= 0 && !hole[nb[j]] && k[nb[j]] == 0.0f) {
                k[nb[j]] = 1.0f;
                queue[tail++] = nb[j];
            }
    }
    free(queue);
    return TDM_OK;
}

tdm_code tdm_image_fill_holes(tdm_image *img, const unsigned char *hole, tdm_status *st) {
    if (!img || !img->pixels || img->channels != 3 || img->width < 1 || img->height < 1 || !hole)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "fill: an RGB image and a hole mask are needed");
    fill_level lv[40];
    int n_lv = 0;
    tdm_code rc = TDM_OK;
    for (int w = img->width, h = img->height;; w = (w + 1) / 2, h = (h + 1) / 2) {
        fill_level *L = &lv[n_lv++];
        L->w = w;
        L->h = h;
        L->c = calloc((size_t)w * (size_t)h * 3, sizeof(float));
        L->k = calloc((size_t)w * (size_t)h, sizeof(float));
        if (!L->c || !L->k) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "fill: out of memory");
            goto done;
        }
        if (w == 1 && h == 1) break;
    }
    /* level 0: the weights (outside the hole and connected to the border), then the pull */
    const int64_t n0 = (int64_t)img->width * img->height;
    rc = around_hole(img->width, img->height, hole, lv[0].k, st);
    if (rc) goto done;
    for (int64_t i = 0; i < n0; i++) {
        const float k = lv[0].k[i];
        for (int ch = 0; ch < 3; ch++) lv[0].c[3 * i + ch] = k * (float)img->pixels[3 * i + ch];
    }
    for (int l = 0; l + 1 < n_lv; l++) {
        const fill_level *D = &lv[l];
        fill_level *U = &lv[l + 1];
        for (int y = 0; y < D->h; y++)
            for (int x = 0; x < D->w; x++) {
                const int64_t i = (int64_t)y * D->w + x, j = (int64_t)(y / 2) * U->w + x / 2;
                U->k[j] += D->k[i];
                for (int ch = 0; ch < 3; ch++) U->c[3 * j + ch] += D->c[3 * i + ch];
            }
    }
    /* the push */
    for (int l = n_lv - 1; l >= 0; l--) {
        fill_level *L = &lv[l];
        for (int y = 0; y < L->h; y++)
            for (int x = 0; x < L->w; x++) {
                const int64_t i = (int64_t)y * L->w + x;
                float *c = &L->c[3 * i];
                if (L->k[i] > 0) {
                    for (int ch = 0; ch < 3; ch++) c[ch] /= L->k[i];
                } else if (l + 1 < n_lv) {
                    sample_up(&lv[l + 1], x, y, c);
                } else {
                    c[0] = c[1] = c[2] = 127.5f;
                }
            }
    }
    for (int64_t i = 0; i < n0; i++)
        if (hole[i])
            for (int ch = 0; ch < 3; ch++) {
                const float v = lv[0].c[3 * i + ch] + 0.5f;
                img->pixels[3 * i + ch] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : (int)v);
            }
done:
    for (int l = 0; l < n_lv; l++) {
        free(lv[l].c);
        free(lv[l].k);
    }
    return rc;
}
