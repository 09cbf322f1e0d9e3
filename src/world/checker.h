/* Shapes world checker: measures whether an RGB8 image matches a parsed caption.
 *
 * Analysis (docs/WORLD.md has the details and the thresholds):
 *  1. background = per-channel median of the border pixels, named by the nearest palette colour;
 *  2. core pixels, judged on the 3x3 mean m: the nearest of the palette colours (but the
 *     background's) and the measured background is a palette colour within 72, and m is within 48 of
 *     each 4-neighbour's m (flat: anti-aliased edges never form regions of a mixed colour);
 *  3. 8-connected components of core pixels of one colour, grown into neighbouring pixels that are at
 *     least half-way from the background to the component's mean colour (alpha >= 0.5 on the line
 *     background -> mean colour, off the line by <= max(40, 0.35 |mean - background|)); touching
 *     components of one colour are merged, and a touching component whose colour lies between the
 *     background and its neighbour's (a blurred fringe) is folded into that neighbour;
 *  4. components under 0.6% of the image or thinner than max(2.5 px, 4% of min(W, H)) (area / longest
 *     side) are dropped;
 *  5. per object, from the soft coverage c = clip((alpha - 0.15) / 0.7, 0, 1) over the object and a
 *     ring of max(2, 3% of min(W, H)) pixels around it: width / height = sums of the column / row maxima of c,
 *     centre = their centroids, fill = sum(c) / (width * height), top share = coverage above the
 *     centre line, corner fill = mean c where |dx| / (w/2) + |dy| / (h/2) > 1.5.
 *     colour = palette colour nearest the mean; shape = nearest prototype (fill, top share, corner
 *     fill) in L1: circle (0.78, 0.5, 0), square (0.93, 0.5, 0.55), triangle (0.58, 0.29, 0.33);
 *     size = large when the half-extent max(w, h) / 2 / min(W, H) > 0.155; position = the thirds cell
 *     of the centre; relations from the centre difference along its dominant axis.
 * Scoring: the caption's objects are matched to detected objects (injective, the assignment that
 * satisfies the most attributes); score = 0 if a caption object has no detected object, otherwise
 * satisfied / stated over: each object's stated colour, shape, size and position, the relation, the
 * stated background, and the object count (detected == stated). */
#ifndef TDM_WORLD_CHECKER_H
#define TDM_WORLD_CHECKER_H

#include "world/caption.h"

#define TDM_WORLD_MAX_DETECTIONS 16

typedef struct tdm_world_detection {
    int colour, shape, size, position;
    float cx, cy;    /* centre (coverage-profile centroids), relative */
    float extent;    /* half of the longer soft side, in units of min(W, H) */
    float fill;      /* soft area / (soft width * soft height) */
    float top_share; /* share of the area in the upper half of the bounding box */
    float corner_fill; /* filled share of the box's corners (|dx| / rx + |dy| / ry > 1.5) */
    int area;        /* pixels */
    uint8_t mean_rgb[3];
} tdm_world_detection;

typedef struct tdm_world_analysis {
    int background;        /* nearest palette colour of the border median */
    uint8_t background_rgb[3];
    int n_detections;      /* objects found (at most TDM_WORLD_MAX_DETECTIONS kept, largest first) */
    tdm_world_detection det[TDM_WORLD_MAX_DETECTIONS];
} tdm_world_analysis;

/* Segments and measures an RGB8 image [height, width, 3] (any size >= 8x8). */
tdm_code tdm_world_analyze(const uint8_t *rgb, int width, int height, tdm_world_analysis *out, tdm_status *st);

#define TDM_WORLD_MAX_ATTRS 16

typedef struct tdm_world_attr_result {
    char name[24];     /* "object1.present", "object1.colour", ..., "relation", "background", "count" */
    char expected[24]; /* the caption's value */
    char found[24];    /* the image's value ("none" when the object is absent) */
    int ok;
} tdm_world_attr_result;

typedef struct tdm_world_check_result {
    float score;     /* in [0, 1] */
    int n_satisfied; /* attributes satisfied among n_stated (presence not counted) */
    int n_stated;
    int all_present;
    int match[2]; /* detection index of each caption object, -1 absent */
    int n_attrs;
    tdm_world_attr_result attr[TDM_WORLD_MAX_ATTRS];
    tdm_world_analysis analysis;
} tdm_world_check_result;

tdm_code tdm_world_check(const tdm_world_query *q, const uint8_t *rgb, int width, int height,
                         tdm_world_check_result *res, tdm_status *st);

/* Scores a query against an existing analysis (no image work). */
void tdm_world_score(const tdm_world_query *q, const tdm_world_analysis *an, tdm_world_check_result *res);

/* The relation "a REL b" that detection centres satisfy (dominant axis of b - a). */
int tdm_world_relation_of(const tdm_world_detection *a, const tdm_world_detection *b);

/* ---- label maps and placement IoU (checker_segment.c, checker_labels.c; used by tandem control-eval) ---- */

/* tdm_world_analyze, and the label map of its objects: labels [height, width] receives 0 for background
 * (and for dropped components), d + 1 for the pixels of detection out->det[d] (its hard mask: the core
 * pixels and the pixels grown into, the segmentation tdm_world_analyze measures). */
tdm_code tdm_world_analyze_labels(const uint8_t *rgb, int width, int height, tdm_world_analysis *out,
                                  uint8_t *labels, tdm_status *st);

/* Placement IoU of a label map against a condition: condition object k = 1..n_cond are the pixels with
 * cond_ids == k; each is matched to the label d >= 1 of largest overlap with it (ties: the larger IoU, then
 * the smaller label; several condition objects may match one label); its IoU is |A & B| / |A | B|, 0 when
 * no label overlaps it. per_object [n_cond] (may be NULL) receives the IoUs, *mean their mean (0 for
 * n_cond = 0). n_cond in 0..255; both maps have n_px pixels. */
tdm_code tdm_world_placement_iou(const uint8_t *cond_ids, const uint8_t *labels, size_t n_px, int n_cond,
                                 float *per_object, float *mean, tdm_status *st);

#endif
