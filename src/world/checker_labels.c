/* Placement IoU of a segmentation against a condition's object masks (checker.h; tandem control-eval,
 * docs/CONTROLNET.md "Shapes world evaluation"). The label map itself comes from tdm_world_analyze_labels
 * (checker_segment.c). */
#include <stdlib.h>
#include <string.h>

#include "world/checker.h"

tdm_code tdm_world_placement_iou(const uint8_t *cond_ids, const uint8_t *labels, size_t n_px, int n_cond,
                                 float *per_object, float *mean, tdm_status *st) {
    *mean = 0.0f;
    if (n_cond < 0 || n_cond > 255) return tdm_fail(st, TDM_ERR_INVALID_ARG, "placement IoU: %d condition objects "
                                                                             "(0..255)", n_cond);
    if (n_cond == 0) return TDM_OK;
    if (!cond_ids || !labels) return tdm_fail(st, TDM_ERR_INVALID_ARG, "placement IoU: no mask given");
    size_t *overlap = calloc((size_t)n_cond * 256, sizeof *overlap); /* [n_cond, 256] |cond k & label d| */
    size_t area_cond[256] = {0}, area_label[256] = {0};
    if (!overlap) return tdm_fail(st, TDM_ERR_NOMEM, "placement IoU: out of memory");
    for (size_t i = 0; i < n_px; i++) {
        const int k = cond_ids[i], d = labels[i];
        area_cond[k]++;
        area_label[d]++;
        if (k >= 1 && k <= n_cond && d >= 1) overlap[(size_t)(k - 1) * 256 + d]++;
    }
    double sum = 0.0;
    for (int k = 1; k <= n_cond; k++) {
        const size_t *ov = overlap + (size_t)(k - 1) * 256;
        size_t best_ov = 0;
        double best_iou = 0.0;
        for (int d = 1; d < 256; d++) {
            if (ov[d] == 0 || ov[d] < best_ov) continue;
            const double iou = (double)ov[d] / (double)(area_cond[k] + area_label[d] - ov[d]);
            if (ov[d] > best_ov || iou > best_iou) best_ov = ov[d], best_iou = iou;
        }
        if (per_object) per_object[k - 1] = (float)best_iou;
        sum += best_iou;
    }
    free(overlap);
    *mean = (float)(sum / n_cond);
    return TDM_OK;
}
