/* Drag-moves of an edit: objects cut out of the source and pasted at their new places before the edit, so
 * that the edit starts from a composite, as SDEdit's stroke and collage inputs (Meng et al., "SDEdit: Guided
 * image synthesis and editing with stochastic differential equations", ICLR 2022, Sec. 4): the models only
 * have to blend the moved object in, not redraw it from the caption.
 *
 * For drag d (pixel coordinates of the image):
 *   object_d = 4-connected pixels around (x0, y0) whose colour is within DRAG_TOLERANCE (largest channel
 *              difference) of the pixel at (x0, y0), grown by DRAG_GROW pixels (the anti-aliased rim)
 *   hole     = union of the objects, every object segmented in the source before anything moves
 *   image    = the source with the hole filled from the colours around it (tdm_image_fill_holes), then every
 *              object's source pixels pasted shifted by (x1 - x0, y1 - y0), in drag order (clipped at the
 *              border)
 *   region   = (region | hole | placed) & ~inner    placed: the pixels the pastes wrote; inner: the pasted
 *                                                  objects' interiors (object pixels with 4 object neighbours)
 * so the moved objects themselves are carried over as they are (with paste-back, pixel for pixel) and the models
 * fill their old places and blend the seams, as content-aware move tools do.
 * An object covering more than DRAG_MAX_SHARE of the image (a point on the background) is an error. */
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "pipeline/edit.h"

#define DRAG_TOLERANCE 48
#define DRAG_GROW 1
#define DRAG_MAX_SHARE 0.5

static int colour_near(const uint8_t *a, const uint8_t *b) {
    for (int c = 0; c < 3; c++)
        if (abs((int)a[c] - (int)b[c]) > DRAG_TOLERANCE) return 0;
    return 1;
}

/* obj [H, W] = the region of the drag at (x0, y0): 1 its pixels, 2 the grown rim, 0 elsewhere; queue [H W]
 * scratch. Returns the pixel count before growing. */
static int64_t segment(const tdm_image *img, int x0, int y0, unsigned char *obj, int32_t *queue) {
    const int W = img->width, H = img->height;
    const uint8_t *seed = img->pixels + 3 * ((int64_t)y0 * W + x0);
    int64_t head = 0, tail = 0;
    memset(obj, 0, (size_t)W * (size_t)H);
    obj[(int64_t)y0 * W + x0] = 1;
    queue[tail++] = (int32_t)((int64_t)y0 * W + x0);
    while (head < tail) {
        const int32_t i = queue[head++];
        const int x = i % W, y = i / W;
        const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
        for (int k = 0; k < 4; k++) {
            if (nx[k] < 0 || nx[k] >= W || ny[k] < 0 || ny[k] >= H) continue;
            const int64_t j = (int64_t)ny[k] * W + nx[k];
            if (obj[j] || !colour_near(img->pixels + 3 * j, seed)) continue;
            obj[j] = 1;
            queue[tail++] = (int32_t)j;
        }
    }
    /* grow by DRAG_GROW (square neighbourhood): the rim marked 2 */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (obj[(int64_t)y * W + x] != 1) continue;
            for (int dy = -DRAG_GROW; dy <= DRAG_GROW; dy++)
                for (int dx = -DRAG_GROW; dx <= DRAG_GROW; dx++) {
                    const int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W && !obj[(int64_t)yy * W + xx]) obj[(int64_t)yy * W + xx] = 2;
                }
        }
    return tail;
}

tdm_code tdm_edit_drags_apply(tdm_image *img, const tdm_edit_drag *drags, int n, unsigned char *region,
                              unsigned char *placed, tdm_status *st) {
    if (!img || !img->pixels || img->channels != 3 || !region || !placed || (n > 0 && !drags))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "drag: an RGB image, a region and drags are needed");
    if (n < 0 || n > TDM_EDIT_MAX_DRAGS)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "drag: %d drags (at most %d)", n, TDM_EDIT_MAX_DRAGS);
    const int W = img->width, H = img->height;
    const int64_t np = (int64_t)W * H;
    if (np > INT32_MAX) return tdm_fail(st, TDM_ERR_INVALID_ARG, "drag: the image is too large (%dx%d)", W, H);
    memset(placed, 0, (size_t)np);
    if (n == 0) return TDM_OK;
    for (int d = 0; d < n; d++) {
        const tdm_edit_drag *g = &drags[d];
        if (g->x0 < 0 || g->x0 >= W || g->y0 < 0 || g->y0 >= H || g->x1 < 0 || g->x1 >= W || g->y1 < 0 || g->y1 >= H)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "drag %d: (%d, %d) -> (%d, %d) leaves the %dx%d image", d + 1,
                            g->x0, g->y0, g->x1, g->y1, W, H);
    }
    /* the objects are segmented twice (for the hole, then for the paste) from the unchanged source: one mask
     * buffer instead of one per drag */
    unsigned char *obj = malloc((size_t)np);               /* [H, W] */
    unsigned char *hole = calloc((size_t)np, 1);           /* [H, W] */
    unsigned char *inner = calloc((size_t)np, 1);          /* [H, W] interiors of the pasted objects */
    int32_t *queue = malloc(sizeof(int32_t) * (size_t)np); /* [H W] */
    tdm_image out = {0};                                   /* [H, W, 3] */
    tdm_code rc = obj && hole && inner && queue ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "drag: out of memory");
    for (int d = 0; !rc && d < n; d++) {
        const int64_t area = segment(img, drags[d].x0, drags[d].y0, obj, queue);
        if ((double)area > DRAG_MAX_SHARE * (double)np)
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                          "drag %d: the region of nearly the colour at (%d, %d) covers %.0f%% of the image (the "
                          "background, not an object?)", d + 1, drags[d].x0, drags[d].y0, 100.0 * (double)area / (double)np);
        for (int64_t i = 0; !rc && i < np; i++) hole[i] |= obj[i] != 0;
    }
    if (!rc) rc = tdm_image_alloc(&out, W, H, st);
    if (!rc) {
        memcpy(out.pixels, img->pixels, (size_t)np * 3);
        rc = tdm_image_fill_holes(&out, hole, st);
    }
    for (int d = 0; !rc && d < n; d++) {
        segment(img, drags[d].x0, drags[d].y0, obj, queue);
        const int dx = drags[d].x1 - drags[d].x0, dy = drags[d].y1 - drags[d].y0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int xx = x + dx, yy = y + dy;
                if (!obj[(int64_t)y * W + x] || xx < 0 || xx >= W || yy < 0 || yy >= H) continue;
                const int64_t j = (int64_t)yy * W + xx;
                memcpy(out.pixels + 3 * j, img->pixels + 3 * ((int64_t)y * W + x), 3);
                placed[j] = 1;
                /* interior: an object pixel whose 4 neighbours are object pixels too (a later paste over it
                 * takes it back) */
                const int64_t i = (int64_t)y * W + x;
                inner[j] = obj[i] == 1 && x > 0 && x + 1 < W && y > 0 && y + 1 < H && obj[i - 1] == 1 &&
                           obj[i + 1] == 1 && obj[i - W] == 1 && obj[i + W] == 1;
            }
    }
    if (!rc) {
        for (int64_t i = 0; i < np; i++) region[i] = (region[i] || hole[i] || placed[i]) && !inner[i];
        memcpy(img->pixels, out.pixels, (size_t)np * 3);
    }
    tdm_image_free(&out);
    free(obj);
    free(hole);
    free(inner);
    free(queue);
    return rc;
}
