/* Masked editing: the edit region, estimated as DiffEdit does (Couairon et al., "DiffEdit: Diffusion-based
 * semantic image editing with mask guidance", ICLR 2023, Sec. 3.1; defaults of diffusers'
 * StableDiffusionDiffEditPipeline.generate_mask), and kept fixed for every stage of the edit, which then
 * blends the source back outside it after each step (generate.h, "Masked editing").
 *
 *   x0     = the source's latent as the PIXELS start encodes it (VAE posterior sample, stream 2^32 + 1)
 *   t      = the first timestep of a DDIM-50 schedule at img2img strength `strength` (0.5: t = 481 for SD)
 *   for j < maps:  x_j = sqrt(abar_t) x0 + sqrt(1 - abar_t) z_j          z_j: stream TDM_STREAM_EDIT_MASK + j
 *                  d_j = |eps(x_j, t, prompt) - eps(x_j, t, source_prompt)|      (one batch-2 UNet call)
 *   map    = mean of d_j over j and the latent channels                                     [h, w]
 *   clamp  = 3 mean(map);  mask = (min(map, clamp) / clamp > threshold)      (DiffEdit's thresholding)
 *   then dilated by `dilate` latent pixels (square neighbourhood), so that object edges are inside.
 * Classifier-free guidance is not run: DiffEdit's guided difference is g (eps_target - eps_source), a
 * constant factor that the clamp relative to the mean removes. LCM UNets get their guidance embedding
 * (w = guidance - 1). Not for SDXL (pooled text embeddings and micro-conditioning are not wired here).
 *
 * A given region (tdm_adaptive_setup_mask_given: a painted mask; in edit-eval --mask-given, where the pair's
 * source and target renders differ) replaces the estimate: a latent pixel is in the mask when any pixel of
 * its block is, then the same dilation; no UNet evaluation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "io/image.h"
#include "pipeline/adaptive.h"
#include "pipeline/generate.h"

#define TDM_STREAM_EDIT_MASK (5ull << 32) /* map j draws stream 5 * 2^32 + j */
#define MASK_CLAMP_RATIO 3.0f             /* DiffEdit / diffusers mask_thresholding_ratio */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void tdm_adaptive_setup_clear_mask(tdm_adaptive_setup *s) {
    if (!s) return;
    free(s->mask.mask);
    free(s->mask.paste);
    tdm_image_free(&s->mask.fill);
    memset(&s->mask, 0, sizeof s->mask);
}

/* 1 when image pixel (x, y) lies in a latent pixel of the mask (sc: the VAE's scale). */
static int in_latent_mask(const tdm_edit_mask_info *mi, int sc, int x, int y) {
    return mi->mask[(int64_t)(y / sc) * mi->w + x / sc] > 0.5f;
}

tdm_code tdm_adaptive_setup_mask_fill(tdm_adaptive_setup *s, const unsigned char *keep, tdm_status *st) {
    tdm_edit_mask_info *mi = &s->mask;
    const tdm_image *src = s->sgp.init_image;
    if (!mi->active) return tdm_fail(st, TDM_ERR_INVALID_ARG, "region fill: no edit region");
    if (!src || !src->pixels) return tdm_fail(st, TDM_ERR_INVALID_ARG, "region fill: no source image");
    const int sc = tdm_vae_latent_scale(&s->sm->vae->cfg);
    if (src->width != mi->w * sc || src->height != mi->h * sc)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "region fill: the %dx%d source does not match the %dx%d latent mask",
                        src->width, src->height, mi->w, mi->h);
    tdm_image_free(&mi->fill);
    tdm_image fill = {0}; /* [H, W, 3] */
    TDM_TRY(tdm_image_alloc(&fill, src->width, src->height, st));
    memcpy(fill.pixels, src->pixels, (size_t)src->width * (size_t)src->height * 3);
    unsigned char *hole = malloc((size_t)src->width * (size_t)src->height); /* [H, W] */
    tdm_code rc = hole ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "region fill: out of memory");
    if (!rc) {
        for (int y = 0; y < src->height; y++)
            for (int x = 0; x < src->width; x++) {
                const int64_t i = (int64_t)y * src->width + x;
                hole[i] = in_latent_mask(mi, sc, x, y) && !(keep && keep[i]);
            }
        rc = tdm_image_fill_holes(&fill, hole, st);
    }
    free(hole);
    if (rc) {
        tdm_image_free(&fill);
        return rc;
    }
    mi->fill = fill;
    return TDM_OK;
}

tdm_code tdm_adaptive_setup_mask_paste(tdm_adaptive_setup *s, const unsigned char *region, int width, int height,
                                       tdm_status *st) {
    tdm_edit_mask_info *mi = &s->mask;
    if (!mi->active) return tdm_fail(st, TDM_ERR_INVALID_ARG, "paste-back: no edit region");
    if (width != s->sp.width || height != s->sp.height)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "paste-back: the region is %dx%d, the edit %dx%d", width, height,
                        s->sp.width, s->sp.height);
    const int sc = tdm_vae_latent_scale(&s->sm->vae->cfg);
    if (!region && (mi->h * sc != height || mi->w * sc != width))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "paste-back: the %dx%d latent mask does not cover the %dx%d edit",
                        mi->w, mi->h, width, height);
    unsigned char *paste = malloc((size_t)width * (size_t)height); /* [H, W] */
    if (!paste) return tdm_fail(st, TDM_ERR_NOMEM, "paste-back: out of memory");
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            const int64_t i = (int64_t)y * width + x;
            paste[i] = region ? region[i] != 0 : in_latent_mask(mi, sc, x, y);
        }
    free(mi->paste);
    mi->paste = paste;
    return TDM_OK;
}

static tdm_code check_mask_params(const tdm_adaptive_params *p, tdm_status *st) {
    if (p->mask_maps < 1 || p->mask_maps > 64)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "mask maps %d out of range [1, 64]", p->mask_maps);
    if (!(p->mask_strength > 0.0f && p->mask_strength < 1.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "mask strength %g out of range (0, 1)", (double)p->mask_strength);
    if (!(p->mask_threshold > 0.0f && p->mask_threshold < 1.0f))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "mask threshold %g out of range (0, 1)", (double)p->mask_threshold);
    if (p->mask_dilate < 0 || p->mask_dilate > 16)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "mask dilation %d out of range [0, 16]", p->mask_dilate);
    return TDM_OK;
}

/* core [h, w] (0/1) -> mask [h, w] (1.0 / 0.0), dilated by `dilate` latent pixels (square neighbourhood);
 * returns the area share. */
static double dilate_core(const unsigned char *core, int h, int w, int dilate, float *mask) {
    const int64_t hw = (int64_t)h * w;
    int64_t on = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int hit = 0;
            for (int dy = -dilate; dy <= dilate && !hit; dy++)
                for (int dx = -dilate; dx <= dilate && !hit; dx++) {
                    const int yy = y + dy, xx = x + dx;
                    hit = yy >= 0 && yy < h && xx >= 0 && xx < w && core[(int64_t)yy * w + xx];
                }
            mask[(int64_t)y * w + x] = hit ? 1.0f : 0.0f;
            on += hit;
        }
    return (double)on / (double)hw;
}

/* map [h, w] -> binary mask [h, w] (threshold of the clamped map, then dilation); returns the area share. */
static double binarise(const float *map, int h, int w, float threshold, int dilate, float *mask) {
    const int64_t hw = (int64_t)h * w;
    double mean = 0;
    for (int64_t i = 0; i < hw; i++) mean += map[i];
    mean /= (double)hw;
    const double clamp = MASK_CLAMP_RATIO * mean;
    unsigned char *core = calloc((size_t)hw, 1); /* [h, w] */
    if (!core) return -1;
    for (int64_t i = 0; i < hw; i++) core[i] = clamp > 0 && fmin(map[i], clamp) / clamp > threshold;
    const double area = dilate_core(core, h, w, dilate, mask);
    free(core);
    return area;
}

tdm_code tdm_adaptive_setup_mask_given(tdm_adaptive_setup *s, const unsigned char *region, int width, int height,
                                       int dilate, tdm_status *st) {
    tdm_adaptive_setup_clear_mask(s);
    if (!region) return tdm_fail(st, TDM_ERR_INVALID_ARG, "masked editing: no region given");
    if (dilate < 0 || dilate > 16)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "mask dilation %d out of range [0, 16]", dilate);
    const tdm_gen_plan *sp = &s->sp;
    if (width != sp->width || height != sp->height)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "masked editing: the region is %dx%d, the edit %dx%d", width, height,
                        sp->width, sp->height);
    const int sc = tdm_vae_latent_scale(&s->sm->vae->cfg);
    const int h = height / sc, w = width / sc;
    const int64_t hw = (int64_t)h * w;
    unsigned char *core = calloc((size_t)hw, 1);          /* [h, w] */
    float *mask = calloc((size_t)hw, sizeof(float));       /* [h, w] */
    if (!core || !mask) {
        free(core);
        free(mask);
        return tdm_fail(st, TDM_ERR_NOMEM, "masked editing: out of memory");
    }
    /* a latent pixel is in the region when any pixel of its sc x sc block is */
    for (int y = 0; y < h * sc; y++)
        for (int x = 0; x < w * sc; x++)
            if (region[(int64_t)y * width + x]) core[(int64_t)(y / sc) * w + x / sc] = 1;
    tdm_edit_mask_info *mi = &s->mask;
    mi->active = 1;
    mi->given = 1;
    mi->mask = mask;
    mi->h = h;
    mi->w = w;
    mi->dilate = dilate;
    mi->area = dilate_core(core, h, w, dilate, mask);
    free(core);
    return TDM_OK;
}

tdm_code tdm_adaptive_setup_mask(tdm_adaptive_setup *s, const tdm_adaptive_params *p, const char *source_prompt,
                                 tdm_status *st) {
    tdm_adaptive_setup_clear_mask(s);
    if (!source_prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "masked editing: no source prompt");
    if (!s->sgp.init_image) return tdm_fail(st, TDM_ERR_INVALID_ARG, "masked editing: no source image");
    TDM_TRY(check_mask_params(p, st));
    const tdm_sd_model *m = s->sm;
    if (m->text_encoder_2)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "masked editing: not available for SDXL models (two text encoders)");
    const double t_start = now_seconds();
    const tdm_gen_plan *sp = &s->sp;
    const int sc = tdm_vae_latent_scale(&m->vae->cfg), Cl = m->vae->cfg.latent_channels;
    const int h = sp->height / sc, w = sp->width / sc;
    const int64_t hw = (int64_t)h * w, n = (int64_t)Cl * hw;
    const tdm_unet_config *uc = tdm_unet_get_config(m->unet);

    /* the text: [source; target] as one batch, padded to the same number of windows (the prompt pair of a
     * guided run, with the source prompt in the negative's place) */
    tdm_gen_plan tp = *sp;
    tp.negative = source_prompt;
    tdm_sampler *sampler = NULL;
    tdm_arena arena;
    tdm_arena_init(&arena, (size_t)8 << 20);
    tdm_text_cond tc;
    float *mask = calloc((size_t)hw, sizeof(float)); /* [h, w] */
    tdm_code rc = mask ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "masked editing: out of memory");
    if (!rc) rc = tdm_gen_encode_text(m, s->ex, &arena, &tp, 1, &tc, st);
    float *ctx = NULL, *x0 = NULL, *xin = NULL, *pred = NULL, *map = NULL, *z = NULL, *wcond = NULL;
    if (!rc) {
        const size_t lc = (size_t)tc.len * tc.C;
        ctx = tdm_arena_alloc(&arena, sizeof(float) * 2 * lc);         /* [2, len, C]: source, target */
        x0 = tdm_arena_alloc(&arena, sizeof(float) * (size_t)n);       /* [Cl, h, w] */
        z = tdm_arena_alloc(&arena, sizeof(float) * (size_t)n);        /* [Cl, h, w] */
        xin = tdm_arena_alloc(&arena, sizeof(float) * 2 * (size_t)n);  /* [2, Cl, h, w] */
        pred = tdm_arena_alloc(&arena, sizeof(float) * 2 * (size_t)n); /* [2, Cl, h, w] */
        map = tdm_arena_alloc(&arena, sizeof(float) * (size_t)hw);     /* [h, w] */
        if (uc->time_cond_proj_dim > 0) wcond = tdm_arena_alloc(&arena, sizeof(float) * 2 * uc->time_cond_proj_dim);
        if (!ctx || !x0 || !z || !xin || !pred || !map || (uc->time_cond_proj_dim > 0 && !wcond))
            rc = tdm_fail(st, TDM_ERR_NOMEM, "masked editing: out of memory");
        else {
            memcpy(ctx, tc.uncond, sizeof(float) * lc);
            memcpy(ctx + lc, tc.cond, sizeof(float) * lc);
            memset(map, 0, sizeof(float) * (size_t)hw);
        }
    }
    if (!rc && wcond) {
        float wv[2] = {sp->guidance - 1.0f, sp->guidance - 1.0f};
        tdm_guidance_scale_embedding(wv, 2, uc->time_cond_proj_dim, wcond);
    }
    /* the source's latent, exactly as the PIXELS start of the edit encodes it */
    if (!rc)
        rc = tdm_gen_encode_image(m, s->ex, &arena, s->sgp.init_image, sp->width, sp->height, sp->seed,
                                  tdm_gen_streams_generate().posterior, x0, st);
    /* the noise level: DDIM-50 at img2img strength `strength` */
    tdm_scheduler_config cfg = m->scheduler;
    cfg.use_karras_sigmas = 0;
    if (!rc) rc = tdm_sampler_create_ex(&sampler, TDM_SAMPLER_DDIM, &cfg, 50, p->mask_strength, TDM_IMG2IMG_AUTO, st);
    float tsteps[2] = {0, 0};
    if (!rc) tsteps[0] = tsteps[1] = tdm_sampler_timestep(sampler, 0);
    tdm_unet_inputs in;
    memset(&in, 0, sizeof in);
    in.B = 2;
    in.H = h;
    in.W = w;
    in.sample = xin;
    in.timesteps = tsteps;
    in.context = ctx;
    in.context_len = rc ? 0 : tc.len;
    in.timestep_cond = wcond;
    for (int j = 0; !rc && j < p->mask_maps; j++) {
        tdm_randn(z, (size_t)n, sp->seed, TDM_STREAM_EDIT_MASK + (uint64_t)j, 0);
        tdm_sampler_add_noise(sampler, x0, z, xin, n);
        memcpy(xin + n, xin, sizeof(float) * (size_t)n);
        rc = tdm_unet_forward(m->unet, s->ex, &arena, &in, pred, st);
        for (int c = 0; !rc && c < Cl; c++)
            for (int64_t i = 0; i < hw; i++) map[i] += fabsf(pred[n + c * hw + i] - pred[c * hw + i]);
    }
    if (!rc) {
        const double area = binarise(map, h, w, p->mask_threshold, p->mask_dilate, mask);
        if (area < 0) rc = tdm_fail(st, TDM_ERR_NOMEM, "masked editing: out of memory");
        else {
            tdm_edit_mask_info *mi = &s->mask;
            mi->active = 1;
            mi->mask = mask;
            mask = NULL;
            mi->h = h;
            mi->w = w;
            mi->maps = p->mask_maps;
            mi->dilate = p->mask_dilate;
            mi->strength = p->mask_strength;
            mi->threshold = p->mask_threshold;
            mi->timestep = (int)tsteps[0];
            mi->area = area;
            mi->unet_evals = 2 * p->mask_maps;
            mi->seconds = now_seconds() - t_start;
        }
    }
    if (rc) tdm_fail_context(st, "edit mask");
    free(mask);
    tdm_sampler_free(sampler);
    tdm_arena_free(&arena);
    return rc;
}
