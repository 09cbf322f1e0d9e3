/* `tandem check` for kind "preprocessing": the oracle image preprocessing (io/image_ops.h) against
 * PIL 9.4 / torchvision 0.14 / transformers 4.30: Pillow bicubic resize of RGB8 (exact), its ToTensor
 * (/255), Pillow 'F' mode resize (tolerance), both centre-crop conventions (exact, shape included) and
 * the shortest-edge size rule (exact). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "io/image_ops.h"
#include "pipeline/check.h"
#include "pipeline/check_preprocessing.h"

/* io tensor `name` (HWC, uint8 values stored as float) -> RGB8 image. */
tdm_code tdm_check_load_rgb8(tdm_check *c, const char *name, tdm_image *img, tdm_status *st) {
    float *v;
    tdm_tensor t;
    memset(img, 0, sizeof *img);
    TDM_TRY(tdm_check_input(c, name, &v, &t, st));
    tdm_code rc = TDM_OK;
    if (t.ndim != 3 || t.shape[2] != 3 || t.shape[0] > TDM_IMAGE_MAX_SIDE || t.shape[1] > TDM_IMAGE_MAX_SIDE)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: expected an [H, W, 3] image", name);
    if (!rc) rc = tdm_image_alloc(img, (int)t.shape[1], (int)t.shape[0], st);
    for (int64_t i = 0; !rc && i < t.shape[0] * t.shape[1] * 3; i++) {
        if (!(v[i] >= 0 && v[i] <= 255) || v[i] != floorf(v[i])) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: value %g at %lld is not a uint8", name, v[i], (long long)i);
            tdm_image_free(img);
            break;
        }
        img->pixels[i] = (uint8_t)v[i];
    }
    free(v);
    return rc;
}

/* Exact comparison of an RGB8 image with io tensor `name` ([H, W, 3] floats): shape and every value. */
tdm_code tdm_check_image_exact(tdm_check *c, const char *name, const tdm_image *img, tdm_status *st) {
    float *v;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, name, &v, &t, st));
    char detail[256];
    if (t.ndim != 3 || t.shape[0] != img->height || t.shape[1] != img->width || t.shape[2] != 3) {
        snprintf(detail, sizeof detail, "shape: got [%d, %d, 3], expected [%lld, %lld, %lld]", img->height, img->width,
                 (long long)t.shape[0], (long long)(t.ndim > 1 ? t.shape[1] : 0),
                 (long long)(t.ndim > 2 ? t.shape[2] : 0));
        tdm_check_exact(c, name, 0, detail);
        free(v);
        return TDM_OK;
    }
    int64_t n = (int64_t)img->width * img->height * 3, bad = 0;
    double max_abs = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)img->pixels[i] - v[i]);
        if (d > 0) bad++;
        if (d > max_abs) max_abs = d;
    }
    snprintf(detail, sizeof detail, "[%d, %d, 3] exact: %lld/%lld values differ (max_abs %g)", img->height, img->width,
             (long long)bad, (long long)n, max_abs);
    tdm_check_exact(c, name, bad == 0, detail);
    free(v);
    return TDM_OK;
}

static tdm_code case_hw(const cJSON *cs, const char *key, int hw[2], tdm_status *st) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cs, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(a, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(a, 1)))
        return tdm_fail(st, TDM_ERR_FORMAT, "case.json: '%s' must be [h, w]", key);
    for (int k = 0; k < 2; k++) {
        double d = cJSON_GetArrayItem(a, k)->valuedouble;
        if (!(d >= 1 && d <= 1e6)) return tdm_fail(st, TDM_ERR_FORMAT, "case.json: '%s' out of range", key);
        hw[k] = (int)d;
    }
    return TDM_OK;
}

static const char *case_name(const cJSON *cs) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cs, "name");
    return cJSON_IsString(n) ? n->valuestring : NULL;
}

static tdm_code run_resize_u8(tdm_check *c, const cJSON *cs, tdm_status *st) {
    const char *nm = case_name(cs);
    int out_hw[2];
    if (!nm) return tdm_fail(st, TDM_ERR_FORMAT, "case.json: resize_u8 case without a name");
    TDM_TRY(case_hw(cs, "out_hw", out_hw, st));
    char name[512];
    tdm_image in, out;
    snprintf(name, sizeof name, "resize_u8/%s/in", nm);
    TDM_TRY(tdm_check_load_rgb8(c, name, &in, st));
    tdm_code rc = tdm_image_resize(&in, out_hw[1], out_hw[0], TDM_RESAMPLE_BICUBIC, &out, st);
    tdm_image_free(&in);
    if (rc) return rc;
    snprintf(name, sizeof name, "resize_u8/%s/out", nm);
    rc = tdm_check_image_exact(c, name, &out, st);
    /* ToTensor: CHW float32 u8 / 255 */
    size_t hw = (size_t)out.width * out.height;
    float *chw = rc ? NULL : malloc(hw * 3 * sizeof *chw);
    if (!rc && !chw) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc) {
        for (int ch = 0; ch < 3; ch++)
            for (size_t i = 0; i < hw; i++) chw[ch * hw + i] = (float)out.pixels[i * 3 + ch] / 255.0f;
        snprintf(name, sizeof name, "resize_u8/%s/out_totensor", nm);
        rc = tdm_check_compare(c, name, chw, (int64_t)hw * 3, st);
    }
    free(chw);
    tdm_image_free(&out);
    return rc;
}

static tdm_code run_resize_f32(tdm_check *c, const cJSON *cs, tdm_status *st) {
    const char *nm = case_name(cs);
    int out_hw[2];
    if (!nm) return tdm_fail(st, TDM_ERR_FORMAT, "case.json: resize_f32 case without a name");
    TDM_TRY(case_hw(cs, "out_hw", out_hw, st));
    char name[512];
    float *in;
    tdm_tensor t;
    snprintf(name, sizeof name, "resize_f32/%s/in", nm);
    TDM_TRY(tdm_check_input(c, name, &in, &t, st));
    if (t.ndim != 2 || t.shape[0] > TDM_IMAGE_MAX_SIDE || t.shape[1] > TDM_IMAGE_MAX_SIDE) {
        free(in);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: expected [H, W]", name);
    }
    float *out = malloc((size_t)out_hw[0] * out_hw[1] * sizeof *out); /* [out_h, out_w] */
    tdm_code rc = out ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc)
        rc = tdm_resize_f32(in, (int)t.shape[1], (int)t.shape[0], out, out_hw[1], out_hw[0], TDM_RESAMPLE_BICUBIC, st);
    snprintf(name, sizeof name, "resize_f32/%s/out", nm);
    if (!rc) rc = tdm_check_compare(c, name, out, (int64_t)out_hw[0] * out_hw[1], st);
    free(in);
    free(out);
    return rc;
}

static tdm_code run_center_crop(tdm_check *c, const cJSON *cs, tdm_status *st) {
    const char *nm = case_name(cs);
    int crop_hw[2];
    if (!nm) return tdm_fail(st, TDM_ERR_FORMAT, "case.json: center_crop case without a name");
    TDM_TRY(case_hw(cs, "crop_hw", crop_hw, st));
    char name[512];
    tdm_image in;
    snprintf(name, sizeof name, "center_crop/%s/in", nm);
    TDM_TRY(tdm_check_load_rgb8(c, name, &in, st));
    const char *labels[2] = {"torchvision", "transformers"};
    tdm_code rc = TDM_OK;
    for (int m = 0; m < 2 && !rc; m++) {
        tdm_image out;
        rc = tdm_image_center_crop_mode(&in, crop_hw[1], crop_hw[0], m ? TDM_CROP_TRANSFORMERS : TDM_CROP_TORCHVISION,
                                        &out, st);
        snprintf(name, sizeof name, "center_crop/%s/%s", nm, labels[m]);
        if (!rc) rc = tdm_check_image_exact(c, name, &out, st);
        tdm_image_free(&out);
    }
    tdm_image_free(&in);
    return rc;
}

static tdm_code run_size_rule(tdm_check *c, const cJSON *rules, tdm_status *st) {
    int n = 0, ok = 0;
    char first[256] = "";
    const cJSON *cs;
    cJSON_ArrayForEach(cs, rules) {
        int in_hw[2], out_hw[2], ow = 0, oh = 0;
        TDM_TRY(case_hw(cs, "in_hw", in_hw, st));
        TDM_TRY(case_hw(cs, "out_hw", out_hw, st));
        long edge;
        TDM_TRY(tdm_json_int(cs, "shortest_edge", "case.json resize_size_rule", 0, 0, 1, 1 << 20, &edge, st));
        n++;
        /* the size rule itself (no resize): sides beyond TDM_IMAGE_MAX_SIDE are valid sizes here */
        int shrt = in_hw[1] <= in_hw[0] ? in_hw[1] : in_hw[0], lng = in_hw[1] <= in_hw[0] ? in_hw[0] : in_hw[1];
        tdm_status es;
        if (tdm_shortest_edge_size(in_hw[1], in_hw[0], (int)edge, &ow, &oh, &es)) {
            int nl = (int)((double)((long long)edge * lng) / (double)shrt);
            ow = in_hw[1] <= in_hw[0] ? (int)edge : nl;
            oh = in_hw[1] <= in_hw[0] ? nl : (int)edge;
        }
        if (oh == out_hw[0] && ow == out_hw[1]) ok++;
        else if (!first[0])
            snprintf(first, sizeof first, "; first mismatch: %dx%d edge %ld: got %dx%d, expected %dx%d", in_hw[0],
                     in_hw[1], edge, oh, ow, out_hw[0], out_hw[1]);
    }
    char detail[400];
    snprintf(detail, sizeof detail, "%d/%d agree%s", ok, n, first);
    tdm_check_exact(c, "resize_size_rule (h, w)", ok == n, detail);
    return TDM_OK;
}

tdm_code tdm_check_preprocessing(tdm_check *c, tdm_status *st) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(c->case_json, "cases");
    if (!cJSON_IsObject(cases)) return tdm_fail(st, TDM_ERR_FORMAT, "%s/case.json: 'cases' must be an object", c->dir);
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(cases, "resize_u8")) TDM_TRY(run_resize_u8(c, cs, st));
    cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(cases, "resize_f32")) TDM_TRY(run_resize_f32(c, cs, st));
    cJSON_ArrayForEach(cs, cJSON_GetObjectItemCaseSensitive(cases, "center_crop")) TDM_TRY(run_center_crop(c, cs, st));
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(cases, "resize_size_rule");
    if (cJSON_IsArray(rules)) TDM_TRY(run_size_rule(c, rules, st));
    return TDM_OK;
}
