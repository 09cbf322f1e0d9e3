/* Shapes world checker, image side: background, object segmentation and per-object measures
 * (algorithm in checker.h and docs/WORLD.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "world/checker.h"

#define CORE_DISTANCE 72.0  /* a core pixel (3x3 mean) lies within this of its palette colour */
#define FLAT_DISTANCE 48.0  /* ... and within this of each 4-neighbour's 3x3 mean */
#define GROW_ALPHA 0.5      /* grown pixels are at least half-way from the background to the object colour */
#define GROW_RESIDUAL 40.0  /* ... and off that line by at most max(this, GROW_RESIDUAL_REL |colour - bg|) */
#define GROW_RESIDUAL_REL 0.35
#define MIN_AREA_SHARE 0.006 /* smallest object: share of the image's pixels */
#define MIN_THICKNESS 2.5    /* area / longest bounding-box side, pixels (or 4% of min(W, H) if larger) */
#define LARGE_EXTENT 0.155f  /* half-extent threshold between small (0.10-0.12) and large (0.19-0.22) */

static double dist3(const double *a, const double *b) {
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

static void palette_d(int c, double out[3]) {
    uint8_t p[3];
    tdm_colour_rgb(c, p);
    for (int k = 0; k < 3; k++) out[k] = p[k];
}

static int nearest_colour(const double rgb[3]) {
    int best = 0;
    double bd = 1e30;
    for (int c = 0; c < TDM_N_COLOURS; c++) {
        double p[3];
        palette_d(c, p);
        double d = dist3(rgb, p);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

/* Per-channel median of the pixels on the image border. */
static void border_median(const uint8_t *rgb, int w, int h, double out[3]) {
    for (int c = 0; c < 3; c++) {
        long hist[256] = {0}, n = 0;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                if (i != 0 && i != h - 1 && j != 0 && j != w - 1) continue;
                hist[rgb[((size_t)i * w + j) * 3 + c]]++;
                n++;
            }
        long half = (n + 1) / 2, acc = 0;
        int v = 0;
        for (; v < 255; v++) {
            acc += hist[v];
            if (acc >= half) break;
        }
        out[c] = v;
    }
}

typedef struct component {
    int label;      /* palette colour of its core pixels */
    long n_core;    /* core pixels */
    double sum[3];  /* sum of core pixel colours */
    double mean[3]; /* mean core colour */
    double dir[3];  /* mean - background */
    double dir2;    /* |dir|^2 (at least 1) */
    double residual; /* growth bound */
    long area;      /* pixels after growth */
    int x0, x1, y0, y1;
} component;

static void component_finish(component *c, const double bg[3]) {
    for (int k = 0; k < 3; k++) {
        c->mean[k] = c->sum[k] / (double)(c->n_core > 0 ? c->n_core : 1);
        c->dir[k] = c->mean[k] - bg[k];
    }
    c->dir2 = c->dir[0] * c->dir[0] + c->dir[1] * c->dir[1] + c->dir[2] * c->dir[2];
    double len = sqrt(c->dir2);
    c->residual = GROW_RESIDUAL > GROW_RESIDUAL_REL * len ? GROW_RESIDUAL : GROW_RESIDUAL_REL * len;
    if (c->dir2 < 1.0) c->dir2 = 1.0;
}

static void pixel_d(const uint8_t *rgb, size_t idx, double out[3]) {
    for (int k = 0; k < 3; k++) out[k] = rgb[idx * 3 + k];
}

/* 1 when pixel idx may join component c: alpha >= 0.5 on the line bg -> mean, residual within bound. */
static int grows_into(const component *c, const double bg[3], const uint8_t *rgb, size_t idx) {
    double p[3], v[3];
    pixel_d(rgb, idx, p);
    for (int k = 0; k < 3; k++) v[k] = p[k] - bg[k];
    double alpha = (v[0] * c->dir[0] + v[1] * c->dir[1] + v[2] * c->dir[2]) / c->dir2;
    if (alpha < GROW_ALPHA) return 0;
    double a = alpha > 1.0 ? 1.0 : alpha, r2 = 0;
    for (int k = 0; k < 3; k++) {
        double d = v[k] - a * c->dir[k];
        r2 += d * d;
    }
    return sqrt(r2) <= c->residual;
}

/* Coverage of pixel idx by component c: alpha on the line bg -> mean colour, mapped by
 * (alpha - 0.15) / 0.7 and clipped to [0, 1] (the map is symmetric about 0.5, so it keeps the area of
 * an anti-aliased edge on average while flattening the noise of background pixels). */
static double coverage(const component *c, const double bg[3], const uint8_t *rgb, size_t idx) {
    double v = 0;
    for (int k = 0; k < 3; k++) v += ((double)rgb[idx * 3 + k] - bg[k]) * c->dir[k];
    double a = (v / c->dir2 - 0.15) / 0.7;
    return a < 0 ? 0 : a > 1 ? 1 : a;
}

/* Core pixels: label[idx] = palette colour, or -1. Decided on the 3x3 mean m of the image (smooth
 * [H, W, 3], computed here): the nearest of the palette colours (all but the background's) and the
 * measured background must be a palette colour within CORE_DISTANCE, and m must be within
 * FLAT_DISTANCE of each 4-neighbour's m (anti-aliased edges are not flat, so they never form
 * regions of a "mixed" colour). */
static void find_core(const uint8_t *rgb, int w, int h, const double bg[3], int bg_colour, float *smooth,
                      int *label) {
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double acc[3] = {0, 0, 0};
            int cnt = 0;
            for (int ii = i - 1; ii <= i + 1; ii++)
                for (int jj = j - 1; jj <= j + 1; jj++) {
                    if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                    for (int k = 0; k < 3; k++) acc[k] += rgb[((size_t)ii * w + jj) * 3 + k];
                    cnt++;
                }
            for (int k = 0; k < 3; k++) smooth[((size_t)i * w + j) * 3 + k] = (float)(acc[k] / cnt);
        }
    double pal[TDM_N_COLOURS][3];
    for (int c = 0; c < TDM_N_COLOURS; c++) palette_d(c, pal[c]);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            size_t idx = (size_t)i * w + j;
            label[idx] = -1;
            double p[3] = {smooth[idx * 3], smooth[idx * 3 + 1], smooth[idx * 3 + 2]};
            double best = dist3(p, bg);
            int lab = -1;
            for (int c = 0; c < TDM_N_COLOURS; c++) {
                if (c == bg_colour) continue;
                double d = dist3(p, pal[c]);
                if (d < best) best = d, lab = c;
            }
            if (lab < 0 || best > CORE_DISTANCE) continue;
            static const int di[4] = {-1, 1, 0, 0}, dj[4] = {0, 0, -1, 1};
            int flat = 1;
            for (int q = 0; q < 4 && flat; q++) {
                int ii = i + di[q], jj = j + dj[q];
                if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                const float *o = smooth + ((size_t)ii * w + jj) * 3;
                double od[3] = {o[0], o[1], o[2]};
                if (dist3(p, od) > FLAT_DISTANCE) flat = 0;
            }
            if (flat) label[idx] = lab;
        }
}

/* 8-connected components of core pixels of one colour: comp[idx] = index, *out / *n_out the list. */
static tdm_code label_components(const uint8_t *rgb, int w, int h, const double bg[3], const int *label, int *comp,
                                 int *queue, component **out, size_t *n_out, tdm_status *st) {
    size_t n = (size_t)w * h, n_comp = 0, cap = 0;
    component *cs = NULL;
    for (size_t s = 0; s < n; s++) comp[s] = -1;
    for (size_t s = 0; s < n; s++) {
        if (label[s] < 0 || comp[s] >= 0) continue;
        if (n_comp == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            component *ncs = realloc(cs, ncap * sizeof *ncs);
            if (!ncs) {
                free(cs);
                return tdm_fail(st, TDM_ERR_NOMEM, "checker: out of memory for components");
            }
            cs = ncs, cap = ncap;
        }
        component *c = &cs[n_comp];
        memset(c, 0, sizeof *c);
        c->label = label[s];
        size_t head = 0, tail = 0;
        queue[tail++] = (int)s;
        comp[s] = (int)n_comp;
        while (head < tail) {
            int idx = queue[head++];
            int i = idx / w, j = idx % w;
            c->n_core++;
            for (int k = 0; k < 3; k++) c->sum[k] += rgb[(size_t)idx * 3 + k];
            for (int di = -1; di <= 1; di++)
                for (int dj = -1; dj <= 1; dj++) {
                    int ii = i + di, jj = j + dj;
                    if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                    size_t nb = (size_t)ii * w + jj;
                    if (comp[nb] >= 0 || label[nb] != c->label) continue;
                    comp[nb] = (int)n_comp;
                    queue[tail++] = (int)nb;
                }
        }
        component_finish(c, bg);
        n_comp++;
    }
    *out = cs;
    *n_out = n_comp;
    return TDM_OK;
}

/* Grows every component at once (multi-source BFS from every core pixel, in scan order) into free
 * non-core pixels that pass grows_into. */
static void grow_components(const uint8_t *rgb, int w, int h, const double bg[3], const int *label, int *comp,
                            int *queue, const component *cs) {
    size_t n = (size_t)w * h, head = 0, tail = 0;
    for (size_t s = 0; s < n; s++)
        if (comp[s] >= 0) queue[tail++] = (int)s;
    while (head < tail) {
        int idx = queue[head++];
        int i = idx / w, j = idx % w;
        const component *c = &cs[comp[idx]];
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                int ii = i + di, jj = j + dj;
                if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
                size_t nb = (size_t)ii * w + jj;
                if (comp[nb] >= 0 || label[nb] >= 0 || !grows_into(c, bg, rgb, nb)) continue;
                comp[nb] = comp[idx];
                queue[tail++] = (int)nb;
            }
    }
}

static int find_root(int *parent, int k) {
    while (parent[k] != k) k = parent[k] = parent[parent[k]];
    return k;
}

/* Merges 8-adjacent components of the same colour (an object split by noise); the lower index is
 * the root. parent: scratch [n_comp]. */
static void merge_components(int w, int h, const double bg[3], int *comp, component *cs, size_t n_comp, int *parent) {
    for (size_t k = 0; k < n_comp; k++) parent[k] = (int)k;
    static const int di[4] = {0, 1, 1, 1}, dj[4] = {1, -1, 0, 1};
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int a = comp[(size_t)i * w + j];
            if (a < 0) continue;
            for (int q = 0; q < 4; q++) {
                int ii = i + di[q], jj = j + dj[q];
                if (ii >= h || jj < 0 || jj >= w) continue;
                int b = comp[(size_t)ii * w + jj];
                if (b < 0 || b == a || cs[a].label != cs[b].label) continue;
                int ra = find_root(parent, a), rb = find_root(parent, b);
                if (ra == rb) continue;
                if (ra < rb) parent[rb] = ra;
                else parent[ra] = rb;
            }
        }
    for (size_t k = 0; k < n_comp; k++) {
        int r = find_root(parent, (int)k);
        if (r == (int)k) continue;
        cs[r].n_core += cs[k].n_core;
        for (int c = 0; c < 3; c++) cs[r].sum[c] += cs[k].sum[c];
        cs[k].n_core = 0;
    }
    for (size_t k = 0; k < n_comp; k++)
        if (cs[k].n_core > 0) component_finish(&cs[k], bg);
    for (size_t s = 0; s < (size_t)w * h; s++)
        if (comp[s] >= 0) comp[s] = find_root(parent, comp[s]);
}

/* 1 when component a looks like the anti-aliased or blurred fringe of component b: a's mean colour
 * lies between the background and b's colour (alpha in (0.05, 0.95), off the line by at most
 * max(24, 0.2 |b - bg|)) and b has more core pixels. */
static int is_fringe_of(const component *a, const component *b, const double bg[3]) {
    if (a->n_core >= b->n_core) return 0;
    double v[3], dot = 0;
    for (int k = 0; k < 3; k++) v[k] = a->mean[k] - bg[k], dot += v[k] * b->dir[k];
    double alpha = dot / b->dir2, r2 = 0;
    if (alpha <= 0.05 || alpha >= 0.95) return 0;
    for (int k = 0; k < 3; k++) {
        double d = v[k] - alpha * b->dir[k];
        r2 += d * d;
    }
    double bound = 0.2 * sqrt(b->dir2);
    return sqrt(r2) <= (bound > 24.0 ? bound : 24.0);
}

/* Folds fringe components (is_fringe_of) into the component they touch (8-adjacency); the host keeps
 * its own colour statistics. parent: scratch [n_comp]. */
static void merge_fringes(int w, int h, const double bg[3], int *comp, component *cs, size_t n_comp, int *parent) {
    for (size_t k = 0; k < n_comp; k++) parent[k] = (int)k;
    static const int di[4] = {0, 1, 1, 1}, dj[4] = {1, -1, 0, 1};
    int merged = 0;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int a = comp[(size_t)i * w + j];
            if (a < 0) continue;
            for (int q = 0; q < 4; q++) {
                int ii = i + di[q], jj = j + dj[q];
                if (ii >= h || jj < 0 || jj >= w) continue;
                int b = comp[(size_t)ii * w + jj];
                if (b < 0 || b == a || cs[a].label == cs[b].label) continue;
                int ra = find_root(parent, a), rb = find_root(parent, b);
                if (ra == rb) continue;
                if (is_fringe_of(&cs[ra], &cs[rb], bg)) parent[ra] = rb, merged = 1;
                else if (is_fringe_of(&cs[rb], &cs[ra], bg)) parent[rb] = ra, merged = 1;
            }
        }
    if (!merged) return;
    for (size_t s = 0; s < (size_t)w * h; s++)
        if (comp[s] >= 0) comp[s] = find_root(parent, comp[s]);
}

/* Soft (sub-pixel) measures of component k over its hard mask and a ring of `ring` pixels around it
 * (pixels of other components excluded):
 *   width  = sum over columns of the column's maximum coverage (likewise height over rows),
 *   centre = the coverage-profile centroids, area = sum of coverages, fill = area / (width * height),
 *   top_share = coverage above the centre line / area,
 *   corner_fill = mean coverage of the pixel centres with |dx| / (width/2) + |dy| / (height/2) > 1.5
 *   inside the soft box.
 * colmax [W], rowmax [H]: scratch. */
static void soft_measure(const component *c, int k, const int *comp, const uint8_t *rgb, int w, int h,
                         const double bg[3], int ring, float *colmax, float *rowmax, tdm_world_detection *d) {
    int x0 = c->x0 - ring < 0 ? 0 : c->x0 - ring, x1 = c->x1 + ring >= w ? w - 1 : c->x1 + ring;
    int y0 = c->y0 - ring < 0 ? 0 : c->y0 - ring, y1 = c->y1 + ring >= h ? h - 1 : c->y1 + ring;
    for (int j = x0; j <= x1; j++) colmax[j] = 0;
    for (int i = y0; i <= y1; i++) rowmax[i] = 0;
    double area = 0;
    /* pass 0: profiles and area; pass 1: the shares */
    for (int pass = 0; pass < 2; pass++) {
        double sw = 0, sh = 0, mx = 0, my = 0, xc = 0, yc = 0, top = 0, corner = 0;
        long n_corner = 0;
        if (pass == 1) {
            for (int j = x0; j <= x1; j++) sw += colmax[j], mx += (j + 0.5) * colmax[j];
            for (int i = y0; i <= y1; i++) sh += rowmax[i], my += (i + 0.5) * rowmax[i];
            if (sw <= 0 || sh <= 0 || area <= 0) return;
            xc = mx / sw, yc = my / sh;
            double unit = w < h ? w : h;
            d->cx = (float)(xc / w);
            d->cy = (float)(yc / h);
            d->extent = (float)((sw > sh ? sw : sh) * 0.5 / unit);
            d->fill = (float)(area / (sw * sh));
        }
        for (int i = y0; i <= y1; i++)
            for (int j = x0; j <= x1; j++) {
                size_t idx = (size_t)i * w + j;
                int in = comp[idx] == k; /* hard mask, or free and within `ring` (Chebyshev) of it */
                if (!in && comp[idx] < 0)
                    for (int ii = i - ring; ii <= i + ring && !in; ii++)
                        for (int jj = j - ring; jj <= j + ring && !in; jj++)
                            in = ii >= 0 && ii < h && jj >= 0 && jj < w && comp[(size_t)ii * w + jj] == k;
                double a = in ? coverage(c, bg, rgb, idx) : 0.0;
                if (pass == 0) {
                    area += a;
                    if (a > colmax[j]) colmax[j] = (float)a;
                    if (a > rowmax[i]) rowmax[i] = (float)a;
                    continue;
                }
                double above = yc - i; /* share of row [i, i+1) above the centre line */
                top += a * (above <= 0 ? 0 : above >= 1 ? 1 : above);
                double u = fabs(j + 0.5 - xc) / (0.5 * sw), v = fabs(i + 0.5 - yc) / (0.5 * sh);
                if (u <= 1 && v <= 1 && u + v > 1.5) corner += a, n_corner++;
            }
        if (pass == 1) {
            d->top_share = (float)(top / area);
            d->corner_fill = n_corner ? (float)(corner / (double)n_corner) : 0.0f;
        }
    }
}

/* Nearest prototype in L1 over (fill, upper-half share, corner fill). Ideal sharp shapes give circle
 * (pi/4, 1/2, 0), square (1, 1/2, 1), apex-up triangle (1/2, 1/4, 1/3: empty upper corners, lower
 * ones 2/3 full); blur rounds corners and fills in the triangle's apex, so the prototypes sit between
 * the sharp and the blurred values measured on the world's renders (docs/WORLD.md). */
static int shape_of(float fill, float top, float corner) {
    static const float proto[TDM_N_SHAPES][3] = {{0.78f, 0.5f, 0.0f}, {0.93f, 0.5f, 0.55f}, {0.58f, 0.29f, 0.33f}};
    int best = 0;
    float bd = 1e30f;
    for (int s = 0; s < TDM_N_SHAPES; s++) {
        float d = fabsf(fill - proto[s][0]) + fabsf(top - proto[s][1]) + fabsf(corner - proto[s][2]);
        if (d < bd) bd = d, best = s;
    }
    return best;
}

static int cell_of(float v) { return v < 1.0f / 3.0f ? 0 : v < 2.0f / 3.0f ? 1 : 2; }

static int position_of(float cx, float cy) {
    int c = cell_of(cx), r = cell_of(cy);
    if (r == 1) return c == 0 ? TDM_POS_LEFT : c == 2 ? TDM_POS_RIGHT : TDM_POS_CENTRE;
    if (c == 1) return r == 0 ? TDM_POS_TOP : TDM_POS_BOTTOM;
    return TDM_POS_NONE;
}

static int cmp_det_area(const void *a, const void *b) {
    const tdm_world_detection *x = a, *y = b;
    if (x->area != y->area) return x->area > y->area ? -1 : 1;
    if (x->cy != y->cy) return x->cy < y->cy ? -1 : 1;
    return x->cx < y->cx ? -1 : x->cx > y->cx ? 1 : 0;
}

/* A measured object and the component it came from (for the label map). */
typedef struct kept_det {
    tdm_world_detection d;
    int comp;
} kept_det;

static int cmp_kept_area(const void *a, const void *b) {
    return cmp_det_area(&((const kept_det *)a)->d, &((const kept_det *)b)->d);
}

/* Bounding boxes and areas of the hard masks, then the objects that pass the size filters.
 * kept_comp [TDM_WORLD_MAX_DETECTIONS] (may be NULL) receives the component index of each detection. */
static tdm_code measure_objects(const uint8_t *rgb, int w, int h, const double bg[3], const int *comp,
                                component *cs, size_t n_comp, tdm_world_analysis *out, int *kept_comp,
                                tdm_status *st) {
    for (size_t k = 0; k < n_comp; k++) {
        cs[k].area = 0;
        cs[k].x0 = w, cs[k].y0 = h, cs[k].x1 = -1, cs[k].y1 = -1;
    }
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int k = comp[(size_t)i * w + j];
            if (k < 0) continue;
            component *c = &cs[k];
            c->area++;
            if (j < c->x0) c->x0 = j;
            if (j > c->x1) c->x1 = j;
            if (i < c->y0) c->y0 = i;
            if (i > c->y1) c->y1 = i;
        }
    double unit = w < h ? w : h;
    double min_area = MIN_AREA_SHARE * (double)w * h, min_thick = 0.04 * unit;
    if (min_thick < MIN_THICKNESS) min_thick = MIN_THICKNESS;
    int ring = (int)lround(0.03 * unit);
    if (ring < 2) ring = 2;
    float *prof = malloc(((size_t)w + h) * sizeof *prof); /* [W] column maxima, then [H] row maxima */
    if (!prof) return tdm_fail(st, TDM_ERR_NOMEM, "checker: out of memory");
    kept_det all[TDM_WORLD_MAX_DETECTIONS * 4];
    int n_all = 0;
    for (size_t k = 0; k < n_comp; k++) {
        const component *c = &cs[k];
        if (c->area == 0) continue;
        int bw = c->x1 - c->x0 + 1, bh = c->y1 - c->y0 + 1;
        if ((double)c->area < min_area || (double)c->area / (bw > bh ? bw : bh) < min_thick) continue;
        tdm_world_detection d;
        memset(&d, 0, sizeof d);
        d.area = (int)c->area;
        d.colour = nearest_colour(c->mean);
        for (int q = 0; q < 3; q++) d.mean_rgb[q] = (uint8_t)(c->mean[q] + 0.5);
        soft_measure(c, (int)k, comp, rgb, w, h, bg, ring, prof, prof + w, &d);
        d.shape = shape_of(d.fill, d.top_share, d.corner_fill);
        d.size = d.extent > LARGE_EXTENT ? TDM_LARGE : TDM_SMALL;
        d.position = position_of(d.cx, d.cy);
        if (n_all < (int)(sizeof all / sizeof all[0])) {
            all[n_all].d = d;
            all[n_all++].comp = (int)k;
        } else { /* full: replace the smallest kept */
            int smallest = 0;
            for (int q = 1; q < n_all; q++)
                if (all[q].d.area < all[smallest].d.area) smallest = q;
            if (d.area > all[smallest].d.area) all[smallest].d = d, all[smallest].comp = (int)k;
        }
    }
    free(prof);
    qsort(all, (size_t)n_all, sizeof all[0], cmp_kept_area);
    out->n_detections = n_all < TDM_WORLD_MAX_DETECTIONS ? n_all : TDM_WORLD_MAX_DETECTIONS;
    for (int q = 0; q < out->n_detections; q++) {
        out->det[q] = all[q].d;
        if (kept_comp) kept_comp[q] = all[q].comp;
    }
    return TDM_OK;
}

/* tdm_world_analyze, and with labels (non-NULL, [H, W]) the label map of the kept detections. */
static tdm_code analyze(const uint8_t *rgb, int width, int height, tdm_world_analysis *out, uint8_t *labels,
                        tdm_status *st) {
    memset(out, 0, sizeof *out);
    if (!rgb || width < 8 || height < 8 || width > 16384 || height > 16384)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "checker: image size %dx%d outside 8..16384", width, height);
    const int w = width, h = height;
    const size_t n = (size_t)w * h;
    double bg[3];
    border_median(rgb, w, h, bg);
    out->background = nearest_colour(bg);
    for (int k = 0; k < 3; k++) out->background_rgb[k] = (uint8_t)bg[k];

    int *label = malloc(n * sizeof *label); /* [H, W] core palette colour or -1 */
    int *comp = malloc(n * sizeof *comp);   /* [H, W] component index or -1 */
    int *queue = malloc(n * sizeof *queue); /* [H*W] BFS queue of pixel indices; later union-find parents */
    float *smooth = malloc(n * 3 * sizeof *smooth); /* [H, W, 3] 3x3 mean */
    component *cs = NULL;
    size_t n_comp = 0;
    tdm_code rc = TDM_OK;
    if (!label || !comp || !queue || !smooth) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "checker: out of memory for a %dx%d image", w, h);
    } else {
        find_core(rgb, w, h, bg, out->background, smooth, label);
        rc = label_components(rgb, w, h, bg, label, comp, queue, &cs, &n_comp, st);
    }
    if (rc == TDM_OK && n_comp > 0) {
        grow_components(rgb, w, h, bg, label, comp, queue, cs);
        merge_components(w, h, bg, comp, cs, n_comp, queue);
        merge_fringes(w, h, bg, comp, cs, n_comp, queue);
        int kept_comp[TDM_WORLD_MAX_DETECTIONS];
        rc = measure_objects(rgb, w, h, bg, comp, cs, n_comp, out, kept_comp, st);
        if (rc == TDM_OK && labels) { /* comp[] holds root components; a root maps to at most one detection */
            for (size_t s = 0; s < n_comp; s++) queue[s] = 0; /* component -> detection + 1 (n_comp <= n) */
            for (int d = 0; d < out->n_detections; d++) queue[kept_comp[d]] = d + 1;
            for (size_t s = 0; s < n; s++) labels[s] = comp[s] >= 0 ? (uint8_t)queue[comp[s]] : 0;
        }
    } else if (rc == TDM_OK && labels) {
        memset(labels, 0, n);
    }
    free(cs);
    free(label);
    free(comp);
    free(queue);
    free(smooth);
    return rc;
}

tdm_code tdm_world_analyze(const uint8_t *rgb, int width, int height, tdm_world_analysis *out, tdm_status *st) {
    return analyze(rgb, width, height, out, NULL, st);
}

tdm_code tdm_world_analyze_labels(const uint8_t *rgb, int width, int height, tdm_world_analysis *out,
                                  uint8_t *labels, tdm_status *st) {
    if (!labels) return tdm_fail(st, TDM_ERR_INVALID_ARG, "checker: no label map buffer");
    return analyze(rgb, width, height, out, labels, st);
}
