/* Shapes world renderer: flat colours, anti-aliased by supersampling (see world.h). */
#include <stdlib.h>
#include <string.h>

#include "world/world.h"

/* Inside test in pixel units: (dx, dy) from the object's centre, e = half-extent in pixels.
 * circle: dx^2 + dy^2 <= e^2; square: |dx|, |dy| <= e; triangle (apex up, base = height = 2e):
 * -e <= dy <= e and |dx| <= (dy + e) / 2. */
static int inside(int shape, double dx, double dy, double e) {
    switch (shape) {
    case TDM_CIRCLE: return dx * dx + dy * dy <= e * e;
    case TDM_SQUARE: return dx >= -e && dx <= e && dy >= -e && dy <= e;
    default: return dy >= -e && dy <= e && 2.0 * (dx < 0 ? -dx : dx) <= dy + e;
    }
}

/* Index of the object covering pixel-unit point (x, y), or -1. Later objects are drawn on top. */
static int object_at(const tdm_world_scene *sc, const double *cx, const double *cy, const double *e, double x,
                     double y) {
    int hit = -1;
    for (int k = 0; k < sc->n_objects; k++)
        if (inside(sc->obj[k].shape, x - cx[k], y - cy[k], e[k])) hit = k;
    return hit;
}

tdm_code tdm_world_render(const tdm_world_scene *sc, int width, int height, int supersample, uint8_t *rgb,
                          uint8_t *mask, tdm_status *st) {
    if (width < 8 || height < 8 || width > 8192 || height > 8192)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "world render: size %dx%d outside 8..8192", width, height);
    if (supersample < 1 || supersample > 16)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "world render: supersample %d outside 1..16", supersample);
    if (sc->n_objects < 0 || sc->n_objects > 2)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "world render: %d objects (0..2)", sc->n_objects);
    uint8_t pal[3][3] = {{0}}; /* [background, object 0, object 1][RGB] */
    tdm_colour_rgb(sc->background, pal[0]);
    double cx[2] = {0}, cy[2] = {0}, e[2] = {0}; /* object centres and half-extents in pixel units */
    double unit = width < height ? width : height;
    for (int k = 0; k < sc->n_objects; k++) {
        tdm_colour_rgb(sc->obj[k].colour, pal[k + 1]);
        cx[k] = sc->obj[k].cx * width;
        cy[k] = sc->obj[k].cy * height;
        e[k] = sc->obj[k].extent * unit;
    }
    int ss = supersample;
    for (int i = 0; i < height; i++) {
        for (int j = 0; j < width; j++) {
            int count[3] = {0, 0, 0}; /* samples per palette entry */
            for (int v = 0; v < ss; v++)
                for (int u = 0; u < ss; u++) {
                    double x = j + (u + 0.5) / ss, y = i + (v + 0.5) / ss;
                    count[object_at(sc, cx, cy, e, x, y) + 1]++;
                }
            uint8_t *p = rgb + ((size_t)i * width + j) * 3;
            for (int c = 0; c < 3; c++) {
                int acc = 0;
                for (int k = 0; k < 3; k++) acc += count[k] * pal[k][c];
                p[c] = (uint8_t)((acc + ss * ss / 2) / (ss * ss));
            }
            if (mask) mask[(size_t)i * width + j] = (uint8_t)(object_at(sc, cx, cy, e, j + 0.5, i + 0.5) + 1);
        }
    }
    return TDM_OK;
}
