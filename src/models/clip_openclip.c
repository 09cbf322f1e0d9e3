/* OpenCLIP resblock / projection name mapping shared by the CLIP text and visual towers. */
#include "models/clip_openclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tdm_code tdm_openclip_bad_name(tdm_weights *ws, const char *name, const char *why, tdm_status *st) {
    return tdm_fail(st, TDM_ERR_FORMAT, "%s: %s: tensor '%s' %s", ws->what, ws->cur_file ? ws->cur_file : "?",
                    ws->cur_name ? ws->cur_name : name, why);
}

tdm_code tdm_openclip_emit_transposed(tdm_weights *ws, const char *out, const char *name, const tdm_tensor *t,
                                      tdm_status *st) {
    if (t->ndim != 2 || !tdm_tensor_is_contiguous(t) || !tdm_dtype_is_float(t->dtype))
        return tdm_openclip_bad_name(ws, name, "must be a contiguous 2-D float tensor", st);
    const int64_t R = t->shape[0], C = t->shape[1];
    const size_t es = tdm_dtype_size(t->dtype);
    char *dst = tdm_weights_alloc(ws, (size_t)(R * C) * es); /* [C, R] */
    if (!dst) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", ws->what);
    const char *src = t->data; /* [R, C] */
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) memcpy(dst + (size_t)(c * R + r) * es, src + (size_t)(r * C + c) * es, es);
    const int64_t shape[2] = {C, R};
    tdm_tensor tt = tdm_tensor_view(t->dtype, dst, 2, shape);
    return tdm_weights_emit(ws, out, &tt, st);
}

tdm_code tdm_openclip_resblock(tdm_weights *ws, const char *name, const char *unknown, long *layer,
                               const char **tail, tdm_status *st) {
    const char *pre = "transformer.resblocks.";
    if (strncmp(name, pre, strlen(pre)) != 0) return tdm_openclip_bad_name(ws, name, unknown, st);
    const char *p = name + strlen(pre);
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || *end != '.' || n < 0 || n > 100000) return tdm_openclip_bad_name(ws, name, unknown, st);
    *layer = n;
    *tail = end + 1;
    return TDM_OK;
}

/* A view of rows [r0, r0 + n) of a contiguous tensor (dim 0). */
static tdm_tensor row_slice(const tdm_tensor *t, int64_t r0, int64_t n) {
    int64_t shape[TDM_MAX_DIMS];
    int64_t row = 1;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    for (int i = 1; i < t->ndim; i++) row *= t->shape[i];
    shape[0] = n;
    return tdm_tensor_view(t->dtype, (char *)t->data + (size_t)(r0 * row) * tdm_dtype_size(t->dtype), t->ndim, shape);
}

tdm_code tdm_openclip_emit_resblock(tdm_weights *ws, const char *name, const char *layers_prefix, long layer,
                                    const char *tail, const tdm_tensor *t, const char *unknown, tdm_status *st) {
    char lp[128], out[512];
    snprintf(lp, sizeof lp, "%s%ld.", layers_prefix, layer);
    if (!strcmp(tail, "attn.in_proj_weight") || !strcmp(tail, "attn.in_proj_bias")) {
        /* [3C, C] / [3C]: rows q | k | v */
        if (t->ndim < 1 || t->shape[0] % 3 != 0 || !tdm_tensor_is_contiguous(t))
            return tdm_openclip_bad_name(ws, name, "must be contiguous with a first dimension divisible by 3", st);
        const int64_t C = t->shape[0] / 3;
        const char *kind = strstr(tail, "weight") ? "weight" : "bias";
        static const char *const proj[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++) {
            tdm_tensor s = row_slice(t, i * C, C);
            snprintf(out, sizeof out, "%sself_attn.%s.%s", lp, proj[i], kind);
            TDM_TRY(tdm_weights_emit(ws, out, &s, st));
        }
        return TDM_OK;
    }
    static const struct {
        const char *oc, *hf;
    } m2[] = {
        {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
        {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."},
    };
    for (size_t i = 0; i < sizeof m2 / sizeof m2[0]; i++) {
        size_t n = strlen(m2[i].oc);
        if (!strncmp(tail, m2[i].oc, n) && (!strcmp(tail + n, "weight") || !strcmp(tail + n, "bias"))) {
            snprintf(out, sizeof out, "%s%s%s", lp, m2[i].hf, tail + n);
            return tdm_weights_emit(ws, out, t, st);
        }
    }
    return tdm_openclip_bad_name(ws, name, unknown, st);
}
