/* ControlNet in the generation pipeline (diffusers StableDiffusionControlNetPipeline semantics):
 *   - the control image is resized to the output size with Lanczos (VaeImageProcessor, do_normalize
 *     False) and passed as RGB / 255 in [0, 1]; its embedding is computed once per run;
 *   - with classifier-free guidance the ControlNet gets the same batch of 2 as the UNet ([uncond; cond]
 *     context, the control image shared by both halves: diffusers duplicates it when not guess_mode);
 *   - step i of N (N = the steps actually run) is controlled by ControlNet k iff
 *     i / N >= start_k and (i + 1) / N <= end_k (controlnet_keep); outside, k is not run at all
 *     (diffusers runs it with scale 0: the same UNet input);
 *   - several ControlNets: residuals summed in order (MultiControlNetModel). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "pipeline/generate.h"

void tdm_control_init(tdm_control *c) {
    memset(c, 0, sizeof *c);
    c->scale = 1.0f;
    c->start = 0.0f;
    c->end = 1.0f;
}

/* The double a Python user would have written for this float (shortest repr): 0.3f -> 0.3. */
static double as_python_float(float v) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

int tdm_gen_control_active(int i, int n, float start, float end) {
    if (n < 1) return 0;
    const double s = as_python_float(start), e = as_python_float(end);
    return !((double)i / n < s || (double)(i + 1) / n > e);
}

tdm_code tdm_gen_controls_validate(const tdm_sd_model *m, const tdm_generate_params *p, tdm_status *st) {
    if (p->n_controls == 0) return TDM_OK;
    if (p->n_controls < 0 || p->n_controls > TDM_GEN_MAX_CONTROLS || !p->controls)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "controls: %d ControlNets given (0..%d, controls must not be NULL)",
                        p->n_controls, TDM_GEN_MAX_CONTROLS);
    const tdm_unet_config *uc = m->unet ? tdm_unet_get_config(m->unet) : NULL;
    for (int k = 0; k < p->n_controls; k++) {
        const tdm_control *c = &p->controls[k];
        char what[64];
        snprintf(what, sizeof what, "control %d", k);
        if (!c->controlnet) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: no ControlNet", what);
        const tdm_image *im = c->image;
        if (!im || !im->pixels || im->channels != 3 || im->width < 1 || im->height < 1)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: the conditioning image must be RGB8 with pixels", what);
        if (!isfinite(c->scale) || c->scale < 0.0f || c->scale > 100.0f)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: conditioning scale %g is out of range [0, 100]", what,
                            (double)c->scale);
        if (!isfinite(c->start) || !isfinite(c->end) || c->start < 0.0f || c->end > 1.0f || c->start >= c->end)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "%s: guidance start %g / end %g must satisfy 0 <= start < end <= 1 (diffusers)", what,
                            (double)c->start, (double)c->end);
        const tdm_controlnet_config *cc = tdm_controlnet_get_config(c->controlnet);
        if (cc->conditioning_channels != 3)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: the ControlNet takes %d conditioning channels (RGB images: 3)",
                            what, cc->conditioning_channels);
        if (uc) TDM_TRY(tdm_controlnet_check_unet(c->controlnet, uc, what, st));
    }
    return TDM_OK;
}

/* RGB8 -> [1, 3, H, W] RGB / 255 (resized with Lanczos when the size differs). */
static tdm_code control_tensor(const tdm_image *img, int W, int H, float *x, tdm_status *st) {
    tdm_image resized = {0};
    const tdm_image *src = img;
    if (img->width != W || img->height != H) {
        TDM_TRY(tdm_image_resize(img, W, H, TDM_RESAMPLE_LANCZOS, &resized, st));
        src = &resized;
    }
    const size_t hw = (size_t)W * H;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) x[c * hw + i] = (float)src->pixels[i * 3 + c] / 255.0f;
    tdm_image_free(&resized);
    return TDM_OK;
}

tdm_code tdm_gen_controls_prepare(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena,
                                  const tdm_generate_params *p, int W, int H, int h, int w, int B,
                                  tdm_gen_controls *gc, tdm_status *st) {
    memset(gc, 0, sizeof *gc);
    if (p->n_controls <= 0) return TDM_OK;
    TDM_TRY(tdm_gen_controls_validate(m, p, st));
    gc->n = p->n_controls;
    gc->c = p->controls;
    const tdm_controlnet *cn0 = gc->c[0].controlnet;
    const int64_t C0 = tdm_controlnet_get_config(cn0)->unet.block_out_channels[0];
    for (int k = 0; k < gc->n; k++) {
        const tdm_controlnet *cn = gc->c[k].controlnet;
        const int f = 1 << (tdm_controlnet_get_config(cn)->n_cond_levels - 1);
        if (W != w * f || H != h * f)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                            "control %d: the conditioning embedding downsamples %dx; the image %dx%d is not %dx the "
                            "latent %dx%d",
                            k, f, W, H, f, w, h);
        gc->emb[k] = tdm_arena_alloc(arena, sizeof(float) * (size_t)(C0 * h * w)); /* [1, C0, h, w] */
        if (!gc->emb[k]) return tdm_fail(st, TDM_ERR_NOMEM, "control %d: out of memory", k);
        tdm_arena_mark mk = tdm_arena_get_mark(arena);
        float *img = tdm_arena_alloc(arena, sizeof(float) * 3 * (size_t)W * H); /* [1, 3, H, W] */
        if (!img) return tdm_fail(st, TDM_ERR_NOMEM, "control %d: out of memory", k);
        TDM_TRY(control_tensor(gc->c[k].image, W, H, img, st));
        TDM_TRY(tdm_controlnet_embed_cond(cn, ex, arena, img, 1, H, W, gc->emb[k], st));
        tdm_arena_reset(arena, mk); /* the image tensor is not needed any more */
    }
    gc->n_down = tdm_controlnet_n_down(cn0);
    for (int i = 0; i <= gc->n_down; i++) {
        int64_t C, hh, ww;
        tdm_controlnet_residual_shape(cn0, i, h, w, &C, &hh, &ww);
        float *buf = tdm_arena_alloc(arena, sizeof(float) * (size_t)(B * C * hh * ww)); /* [B, C, hh, ww] */
        if (!buf) return tdm_fail(st, TDM_ERR_NOMEM, "controlnet residuals: out of memory");
        if (i < gc->n_down) gc->down[i] = buf;
        else gc->mid = buf;
    }
    return TDM_OK;
}

tdm_code tdm_gen_controls_step(tdm_gen_controls *gc, const tdm_exec *ex, tdm_arena *arena, int i, int n,
                               tdm_unet_inputs *in, tdm_status *st) {
    in->down_residuals = NULL;
    in->n_down_residuals = 0;
    in->mid_residual = NULL;
    int active = 0;
    for (int k = 0; k < gc->n; k++) {
        const tdm_control *c = &gc->c[k];
        if (!tdm_gen_control_active(i, n, c->start, c->end)) continue;
        tdm_controlnet_inputs ci;
        memset(&ci, 0, sizeof ci);
        ci.x = *in;
        ci.x.debug_fn = NULL;
        ci.cond_emb = gc->emb[k];
        ci.cond_batch = 1;
        ci.scale = c->scale;
        TDM_TRY(tdm_controlnet_forward(c->controlnet, ex, arena, &ci, gc->down, gc->mid, active > 0, st));
        gc->calls++;
        active++;
    }
    if (active) {
        in->down_residuals = (const float *const *)gc->down;
        in->n_down_residuals = gc->n_down;
        in->mid_residual = gc->mid;
    }
    return TDM_OK;
}
