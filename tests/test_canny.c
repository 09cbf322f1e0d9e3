/* tdm_canny (ControlNet's Canny annotator = OpenCV cv2.Canny on the RGB image): a reference edge map
 * computed with OpenCV 4.6 cv2.Canny(img, 100, 200) on a synthetic 32x24 image (bit-exact), a filled
 * square's closed contour, threshold and hysteresis behaviour, the optional blur, tiny and huge sizes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "tandem.h"
#include "test_util.h"

static tdm_image make(int w, int h) {
    tdm_image im = {0};
    tdm_status st = {0};
    if (tdm_image_alloc(&im, w, h, &st)) exit(1);
    memset(im.pixels, 0, (size_t)w * h * 3);
    return im;
}

static void put(tdm_image *im, int x, int y, int v) {
    for (int c = 0; c < 3; c++) im->pixels[((size_t)y * im->width + x) * 3 + c] = (uint8_t)v;
}

static int edge(const tdm_image *e, int x, int y) { return e->pixels[((size_t)y * e->width + x) * 3] == 255; }

static int count(const tdm_image *e) {
    int n = 0;
    for (int y = 0; y < e->height; y++)
        for (int x = 0; x < e->width; x++) n += edge(e, x, y);
    return n;
}

static tdm_image canny(const tdm_image *in, float lo, float hi, float sigma) {
    tdm_image out = {0};
    tdm_status st = {0};
    tdm_code rc = tdm_canny(in, lo, hi, sigma, &out, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    return out;
}

/* The synthetic image (an LCG, a disc, a green step) and OpenCV's edge map, 1 bit per pixel row-major. */
static unsigned g_rng;
static unsigned lcg(void) {
    g_rng = g_rng * 1103515245u + 12345u;
    return (g_rng >> 16) & 0x7fff;
}

static const char *k_opencv_32x24 =
    "0040e30000c0010000803380010010c00100344002004220020080200200b5200200e8900200a6a00200ab600200a6a00100a840"
    "010041c000809e8000c0a5800060c300001c9c00000360000000800000008000000080000000800000008000";

static void test_opencv_reference(void) {
    const int w = 32, h = 24;
    tdm_image im = make(w, h);
    g_rng = 42;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int cx = x - w / 2, cy = y - h / 3;
                int v = (cx * cx + cy * cy < (w * w) / 10 ? 200 : 30) + (c == 1 ? (x > w / 2 ? 40 : 0) : 0) +
                        (int)(lcg() % 20);
                im.pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
            }
    tdm_image e = canny(&im, 100, 200, 0);
    int diffs = 0;
    for (int i = 0; i < w * h && e.pixels; i++) {
        unsigned byte = 0;
        sscanf(k_opencv_32x24 + (i / 8) * 2, "%2x", &byte);
        int want = (byte >> (7 - i % 8)) & 1;
        diffs += want != (e.pixels[i * 3] == 255);
        CHECK(e.pixels[i * 3] == e.pixels[i * 3 + 1] && e.pixels[i * 3] == e.pixels[i * 3 + 2]);
    }
    CHECK_MSG(diffs == 0, "%d pixels differ from OpenCV's cv2.Canny", diffs);
    /* swapped thresholds are the same call (OpenCV swaps them) */
    tdm_image e2 = canny(&im, 200, 100, 0);
    CHECK(e2.pixels && e.pixels && memcmp(e.pixels, e2.pixels, (size_t)w * h * 3) == 0);
    tdm_image_free(&e2);
    tdm_image_free(&e);
    tdm_image_free(&im);
}

/* Flood fill over non-edge pixels from (0, 0): reaches (cx, cy)? */
static int reaches(const tdm_image *e, int cx, int cy) {
    const int w = e->width, h = e->height;
    uint8_t *seen = calloc((size_t)w * h, 1);
    int *stack = malloc(sizeof(int) * (size_t)w * h), top = 0, found = 0;
    if (!seen || !stack) exit(1);
    stack[top++] = 0;
    seen[0] = 1;
    while (top) {
        int p = stack[--top], x = p % w, y = p / w;
        if (x == cx && y == cy) found = 1;
        const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
        for (int k = 0; k < 4; k++) { /* 4-connected fill: an 8-connected contour closes it */
            if (nx[k] < 0 || ny[k] < 0 || nx[k] >= w || ny[k] >= h) continue;
            int q = ny[k] * w + nx[k];
            if (!seen[q] && !edge(e, nx[k], ny[k])) {
                seen[q] = 1;
                stack[top++] = q;
            }
        }
    }
    free(seen);
    free(stack);
    return found;
}

static void test_square(void) {
    tdm_image im = make(64, 64);
    for (int y = 20; y < 44; y++)
        for (int x = 16; x < 48; x++) put(&im, x, y, 255);
    tdm_image e = canny(&im, 100, 200, 0);
    if (!e.pixels) return;
    /* edges only next to the border of the square, and a closed contour around it */
    int far = 0;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            int near = x >= 14 && x <= 48 && y >= 18 && y <= 44 && !(x >= 18 && x <= 45 && y >= 22 && y <= 41);
            far += edge(&e, x, y) && !near;
        }
    CHECK_MSG(far == 0, "%d edge pixels away from the square's border", far);
    CHECK(count(&e) >= 2 * (32 + 24) - 4);
    CHECK_MSG(!reaches(&e, 32, 32), "the contour around the square is not closed");
    /* with the Gaussian blur the contour stays closed */
    tdm_image b = canny(&im, 100, 200, 1.4f);
    CHECK(b.pixels && count(&b) > 0 && !reaches(&b, 32, 32));
    tdm_image_free(&b);
    tdm_image_free(&e);
    tdm_image_free(&im);
}

static void test_thresholds(void) {
    /* a horizontal step: rows >= 32 have value v (left half 255, right half 40). Sobel |dy| = 4 * step:
     * 1020 on the left, 160 on the right. The edge lies on row 31. */
    tdm_image im = make(64, 64);
    for (int y = 32; y < 64; y++)
        for (int x = 0; x < 64; x++) put(&im, x, y, x < 32 ? 255 : 40);
    tdm_image e = canny(&im, 100, 200, 0); /* right half weak (160 in (100, 200]) but joined to the strong */
    int right = 0;
    for (int x = 40; x < 60; x++) right += edge(&e, x, 31);
    CHECK_MSG(right == 20, "hysteresis: %d of 20 weak pixels joined", right);
    tdm_image_free(&e);
    e = canny(&im, 170, 200, 0); /* 160 <= low: the right half is no candidate */
    right = 0;
    for (int x = 40; x < 60; x++) right += edge(&e, x, 31);
    CHECK(right == 0 && edge(&e, 10, 31));
    tdm_image_free(&e);
    tdm_image_free(&im);

    /* only the weak step: no seed, no edges; with high < 160 it is an edge */
    im = make(64, 64);
    for (int y = 32; y < 64; y++)
        for (int x = 0; x < 64; x++) put(&im, x, y, 40);
    e = canny(&im, 100, 200, 0);
    CHECK(count(&e) == 0);
    tdm_image_free(&e);
    e = canny(&im, 100, 150, 0);
    CHECK(count(&e) == 64 && edge(&e, 0, 31) && edge(&e, 63, 31));
    tdm_image_free(&e);
    /* thresholds are floored: 159.9 -> 159 < 160 seeds; 160 does not */
    e = canny(&im, 100, 159.9f, 0);
    CHECK(count(&e) == 64);
    tdm_image_free(&e);
    e = canny(&im, 100, 160.0f, 0);
    CHECK(count(&e) == 0);
    tdm_image_free(&e);
    tdm_image_free(&im);

    /* a flat image has no edges; a noisy one has fewer after blurring */
    im = make(40, 30);
    tdm_image f = canny(&im, 0, 0, 0);
    CHECK(count(&f) == 0);
    tdm_image_free(&f);
    g_rng = 7;
    for (int i = 0; i < 40 * 30 * 3; i++) im.pixels[i] = (uint8_t)(lcg() & 255);
    tdm_image n0 = canny(&im, 100, 200, 0), n1 = canny(&im, 100, 200, 2.0f);
    CHECK(count(&n1) < count(&n0));
    tdm_image_free(&n0);
    tdm_image_free(&n1);
    tdm_image_free(&im);
}

static void test_sizes_and_errors(void) {
    tdm_status st = {0};
    tdm_image out = {0};
    for (int w = 1; w <= 3; w++)
        for (int h = 1; h <= 3; h++) {
            tdm_image im = make(w, h);
            im.pixels[0] = 255;
            CHECK(tdm_canny(&im, 100, 200, 1.0f, &out, &st) == TDM_OK && out.width == w && out.height == h);
            tdm_image_free(&out);
            tdm_image_free(&im);
        }
    uint8_t px[3] = {0};
    tdm_image huge = {20000, 10, 3, px};
    CHECK(tdm_canny(&huge, 100, 200, 0, &out, &st) == TDM_ERR_INVALID_ARG && out.pixels == NULL);
    CHECK(strstr(st.msg, "20000x10") != NULL);
    tdm_image big = {16384, 16384, 3, px}; /* 2^28 pixels: over the work limit, refused before any read */
    CHECK(tdm_canny(&big, 100, 200, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    tdm_image gray = {4, 4, 1, px};
    CHECK(tdm_canny(&gray, 100, 200, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    tdm_image one = {1, 1, 3, px};
    CHECK(tdm_canny(&one, -1, 200, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_canny(&one, 100, INFINITY, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_canny(&one, 100, 200, -1, &out, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_canny(NULL, 100, 200, 0, &out, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_canny(&one, 100, 200, 0, NULL, &st) == TDM_ERR_INVALID_ARG);
}

int main(void) {
    test_opencv_reference();
    test_square();
    test_thresholds();
    test_sizes_and_errors();
    return tdm_test_result();
}
