/* Generation pipeline (see generate.h for the flow and the noise streams). */
#include "pipeline/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "io/image.h"
#include "pipeline/sdxl.h"

/* Public sampler names (NULL-terminated) and, at the same index, their A1111 labels (infotext
 * "Sampler:" field). */
static const char *const k_sampler_names[] = {"ddim", "euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras",
                                              "unipc", "ddpm", "lcm", "consistency", NULL};
static const char *const k_sampler_labels[] = {"DDIM", "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras",
                                               "UniPC", "DDPM", "LCM", "Consistency"};
#define N_SAMPLERS ((int)(sizeof k_sampler_labels / sizeof k_sampler_labels[0]))

const char *const *tdm_sampler_names(int *n) {
    if (n) *n = N_SAMPLERS;
    return k_sampler_names;
}

const char *tdm_gen_sampler_label(const char *sampler) {
    for (int i = 0; i < N_SAMPLERS; i++)
        if (strcmp(sampler, k_sampler_names[i]) == 0) return k_sampler_labels[i];
    return sampler;
}

/* The sampler the model's scheduler_config.json names, when tandem has it; else euler_a. */
static const char *sampler_from_class(const tdm_scheduler_config *c) {
    const char *cls = c->class_name;
    if (strcmp(cls, "DDIMScheduler") == 0) return "ddim";
    if (strcmp(cls, "EulerDiscreteScheduler") == 0) return "euler";
    if (strcmp(cls, "EulerAncestralDiscreteScheduler") == 0) return "euler_a";
    if (strcmp(cls, "DPMSolverMultistepScheduler") == 0) return c->use_karras_sigmas ? "dpmpp_2m_karras" : "dpmpp_2m";
    if (strcmp(cls, "UniPCMultistepScheduler") == 0) return "unipc";
    if (strcmp(cls, "DDPMScheduler") == 0) return "ddpm";
    if (strcmp(cls, "LCMScheduler") == 0) return "lcm";
    return "euler_a"; /* PNDM (the SD 1.x default) and anything else tandem does not implement */
}

void tdm_gen_model_defaults(const tdm_sd_model *m, tdm_gen_defaults *d) {
    memset(d, 0, sizeof *d);
    const tdm_unet_config *uc = m->unet ? tdm_unet_get_config(m->unet) : NULL;
    int vs = m->vae_scale > 0 ? m->vae_scale : 8;
    d->lcm = uc && uc->time_cond_proj_dim > 0;
    d->lcm_lora = !d->lcm && tdm_sd_model_lcm_lora(m); /* docs/LORA.md "LCM-LoRA defaults" */
    /* the VAE's scale: the UNet accepts any latent size (odd sizes are upsampled to the skip's size,
     * as diffusers does), so images need only be multiples of 8 for SD */
    d->size_multiple = vs;
    int side = uc && uc->sample_size > 0 ? uc->sample_size * vs : 512;
    if (side % d->size_multiple) side -= side % d->size_multiple;
    if (side < d->size_multiple) side = d->size_multiple;
    d->width = d->height = side;
    d->steps = d->lcm || d->lcm_lora ? 4 : 20;
    /* LCM-LoRA: guidance 1 (no CFG pass; LCM-LoRA's documented use); SDXL: diffusers' 5.0 */
    d->guidance = d->lcm_lora ? 1.0f : d->lcm ? 8.5f : tdm_sdxl_family(m->family) ? 5.0f : 7.5f;
    d->sampler = d->lcm || d->lcm_lora ? "lcm" : sampler_from_class(&m->scheduler);
}

tdm_code tdm_gen_resolve(const tdm_sd_model *m, const tdm_generate_params *p, tdm_gen_plan *plan, tdm_status *st) {
    memset(plan, 0, sizeof *plan);
    if (!p) return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: params is NULL");
    if (!p->prompt) return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: prompt is NULL (use \"\" for none)");
    tdm_gen_defaults d;
    tdm_gen_model_defaults(m, &d);
    plan->prompt = p->prompt;
    plan->negative = p->negative_prompt ? p->negative_prompt : "";
    plan->lcm = d.lcm;

    plan->steps = p->steps == 0 ? d.steps : p->steps;
    if (plan->steps < 1 || plan->steps > 1000)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "steps %d is out of range [1, 1000]", p->steps);
    plan->guidance = p->guidance_scale < 0 ? d.guidance : p->guidance_scale;
    if (!isfinite(plan->guidance) || plan->guidance > 100.0f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "guidance scale %g is out of range [0, 100]", p->guidance_scale);

    plan->sampler = p->sampler && *p->sampler ? p->sampler : d.sampler;
    int known = 0;
    for (int i = 0; i < N_SAMPLERS; i++)
        if (strcmp(plan->sampler, k_sampler_names[i]) == 0) {
            plan->sampler = k_sampler_names[i]; /* static storage */
            known = 1;
        }
    if (!known) {
        char list[256] = "";
        for (int i = 0; i < N_SAMPLERS; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, k_sampler_names[i], sizeof list - strlen(list) - 1);
        }
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown sampler '%s' (%s)", plan->sampler, list);
    }
    TDM_TRY(tdm_sampler_kind_parse(plan->sampler, &plan->kind, &plan->karras, st));

    plan->eta = p->eta;
    if (!isfinite(plan->eta) || plan->eta < 0.0f || plan->eta > 1.0f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "eta %g is out of range [0, 1]", p->eta);
    plan->seed = p->seed;

    plan->img2img = p->init_image != NULL;
    const tdm_image *init = p->init_image;
    if (init && (!init->pixels || init->channels != 3 || init->width <= 0 || init->height <= 0))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "init image must be RGB8 with pixels (got %dx%d, %d channels)",
                        init->width, init->height, init->channels);
    int mult = d.size_multiple;
    int dw = d.width, dh = d.height;
    TDM_TRY(tdm_gen_controls_validate(m, p, st));
    /* diffusers: the init image size rounded down (here to the model's size multiple); ControlNet
     * text-to-image: the first control image's */
    const tdm_image *size_src = init ? init : p->n_controls > 0 ? p->controls[0].image : NULL;
    if (size_src) {
        dw = size_src->width - size_src->width % mult;
        dh = size_src->height - size_src->height % mult;
        if (dw < mult) dw = mult;
        if (dh < mult) dh = mult;
    }
    plan->width = p->width ? p->width : dw;
    plan->height = p->height ? p->height : dh;
    if (plan->width <= 0 || plan->height <= 0 || plan->width > 4096 || plan->height > 4096)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "image size %dx%d is out of range (1..4096 a side)", plan->width,
                        plan->height);
    if (plan->width % mult || plan->height % mult)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "image size %dx%d: width and height must be multiples of %d for this model",
                        plan->width, plan->height, mult);

    plan->strength = 1.0f;
    if (plan->img2img) {
        plan->strength = p->strength;
        if (!isfinite(plan->strength) || plan->strength <= 0.0f || plan->strength > 1.0f)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "strength %g is out of range (0, 1]", p->strength);
    }
    plan->clip_skip = p->clip_skip <= 0 ? 1 : p->clip_skip;
    if (plan->clip_skip > 48) return tdm_fail(st, TDM_ERR_INVALID_ARG, "clip skip %d is out of range", p->clip_skip);
    plan->emphasis = p->emphasis != 0;
    plan->use_cfg = !plan->lcm && plan->guidance > 1.0f;
    /* SDXL micro-conditioning: diffusers defaults original_size = target_size = (height, width), crop (0, 0) */
    plan->original_width = p->original_width ? p->original_width : plan->width;
    plan->original_height = p->original_height ? p->original_height : plan->height;
    plan->target_width = p->target_width ? p->target_width : plan->width;
    plan->target_height = p->target_height ? p->target_height : plan->height;
    plan->crop_left = p->crop_left;
    plan->crop_top = p->crop_top;
    plan->aesthetic_score = p->aesthetic_score;
    plan->negative_aesthetic_score = p->negative_aesthetic_score;
    const int sizes[6] = {plan->original_width, plan->original_height, plan->target_width, plan->target_height,
                          plan->crop_left, plan->crop_top};
    static const char *const size_names[6] = {"original width", "original height", "target width", "target height",
                                              "crop left", "crop top"};
    for (int i = 0; i < 6; i++)
        if (sizes[i] < (i < 4 ? 1 : 0) || sizes[i] > 65536)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "SDXL %s %d is out of range [%d, 65536]", size_names[i], sizes[i],
                            i < 4 ? 1 : 0);
    if (!isfinite(plan->aesthetic_score) || !isfinite(plan->negative_aesthetic_score) ||
        fabsf(plan->aesthetic_score) > 1000.0f || fabsf(plan->negative_aesthetic_score) > 1000.0f)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "SDXL aesthetic scores %g / %g must be finite (|score| <= 1000)",
                        p->aesthetic_score, p->negative_aesthetic_score);
    return TDM_OK;
}

/* ---- run -------------------------------------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static tdm_code report(const tdm_generate_params *p, tdm_stage stage, int step, int total, tdm_status *st) {
    if (p->progress && p->progress(p->progress_user, stage, step, total))
        return tdm_fail(st, TDM_ERR_CANCELLED, "generation cancelled by the progress callback (%s %d/%d)",
                        tdm_stage_name(stage), step, total);
    return TDM_OK;
}

/* img2img: init image -> [1, 3, H, W] in [-1, 1] (diffusers VaeImageProcessor: u8 / 255, then 2x - 1,
 * float32), resized with Lanczos (Pillow semantics) when its size differs from the target. */
static tdm_code init_image_tensor(const tdm_image *init, int W, int H, float *x, tdm_status *st) {
    tdm_image resized = {0};
    const tdm_image *src = init;
    if (init->width != W || init->height != H) {
        TDM_TRY(tdm_image_resize(init, W, H, TDM_RESAMPLE_LANCZOS, &resized, st));
        src = &resized;
    }
    const size_t hw = (size_t)W * H;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) {
            float v = (float)src->pixels[i * 3 + c] / 255.0f;
            x[c * hw + i] = 2.0f * v - 1.0f;
        }
    tdm_image_free(&resized);
    return TDM_OK;
}

tdm_code tdm_gen_encode_image(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_image *init,
                              int W, int H, uint64_t seed, uint64_t stream, float *x0, tdm_status *st) {
    const tdm_vae *vae = m->vae;
    const int s = tdm_vae_latent_scale(&vae->cfg);
    const size_t n = (size_t)vae->cfg.latent_channels * (size_t)(H / s) * (size_t)(W / s);
    tdm_arena_mark mk = tdm_arena_get_mark(arena);
    float *img = tdm_arena_alloc(arena, sizeof(float) * 3 * (size_t)W * H); /* [1, 3, H, W] */
    float *logvar = tdm_arena_alloc(arena, sizeof(float) * n);              /* [1, Cl, h, w] */
    float *eps = tdm_arena_alloc(arena, sizeof(float) * n);                 /* [1, Cl, h, w] */
    if (!img || !logvar || !eps) return tdm_fail(st, TDM_ERR_NOMEM, "img2img: out of memory");
    tdm_code rc = init_image_tensor(init, W, H, img, st);
    if (!rc) rc = tdm_vae_encode(vae, ex, arena, img, 1, H, W, x0, logvar, NULL, st);
    if (!rc) { /* z = mean + std * eps (DiagonalGaussianDistribution.sample), latents = scaling_factor * z. */
        tdm_randn(eps, n, seed, stream, 0);
        const float sf = (float)vae->cfg.scaling_factor;
        for (size_t i = 0; i < n; i++) {
            float stdv = expf(0.5f * logvar[i]);
            x0[i] = sf * (x0[i] + stdv * eps[i]);
        }
    }
    tdm_arena_reset(arena, mk);
    return rc;
}

tdm_gen_streams tdm_gen_streams_generate(void) {
    tdm_gen_streams s = {TDM_STREAM_INIT_LATENT, TDM_STREAM_SAMPLER_BASE, TDM_STREAM_IMG2IMG_NOISE,
                         TDM_STREAM_VAE_POSTERIOR};
    return s;
}

void tdm_gen_request_init(tdm_gen_request *r, const tdm_generate_params *p) {
    memset(r, 0, sizeof *r);
    r->p = p;
    r->start = TDM_GEN_START_NOISE;
    r->strength = NAN;
    r->rule = TDM_IMG2IMG_AUTO;
    r->streams = tdm_gen_streams_generate();
}

void tdm_gen_result_free(tdm_gen_result *r) {
    if (!r) return;
    tdm_image_free(&r->image);
    free(r->latent);
    r->latent = NULL;
}

double tdm_alphabar_at(const float *ac, int n_train, double t) {
    if (!(t > 0)) return ac[0];
    if (t >= n_train - 1) return ac[n_train - 1];
    int i = (int)floor(t);
    double f = t - i;
    return (1.0 - f) * ac[i] + f * ac[i + 1];
}

/* release_note (memory, docs/PERFORMANCE.md): a component's weights are needed in one stage only (text
 * encoder, UNet loop, VAE), so after each stage the resident pages of its MAPPED weights are dropped
 * (tdm_sd_model_release_pages: madvise on the read-only file mapping; the model is unchanged and may be
 * shared, pages come back from the page cache on next use, ~0.1 s per GB of minor faults). Peak RSS is
 * then the largest stage's weights plus its activations instead of all weights plus the largest
 * activations. Weights in process memory (LoRA merges, in-memory models) are not touched. */
typedef struct gen_ctx {
    const tdm_sd_model *m;
    const tdm_exec *ex;
    const tdm_generate_params *p;
    const tdm_gen_request *req;
    tdm_gen_plan plan;
    tdm_arena arena;
    tdm_sampler *sampler;
    tdm_generate_stats stats;
    int h, w;   /* latent size */
    int64_t n;  /* latent values: C * h * w */
    int Cl;     /* latent channels */
    float *keep_x0, *keep_noise; /* masked editing: the start's x0 and its added noise [Cl, h, w] (arena) */
} gen_ctx;

/* Initial latents x[n]: noise (NOISE), or a clean latent (LATENT: given; PIXELS: the VAE-encoded image)
 * noised to the first kept step. */
static tdm_code prepare_latents(gen_ctx *g, float *x, tdm_status *st) {
    const tdm_gen_plan *pl = &g->plan;
    const tdm_gen_request *rq = g->req;
    if (rq->start == TDM_GEN_START_NOISE) {
        tdm_randn(x, (size_t)g->n, pl->seed, rq->streams.init, 0);
        float sigma = tdm_sampler_init_noise_sigma(g->sampler);
        for (int64_t i = 0; i < g->n; i++) x[i] *= sigma;
        return TDM_OK;
    }
    tdm_arena_mark mk = tdm_arena_get_mark(&g->arena);
    float *x0 = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n);    /* [1, Cl, h, w] */
    float *noise = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n); /* [1, Cl, h, w] */
    float *start = NULL; /* [1, Cl, h, w] region fill: the start's latent where it differs from x0 */
    if (!x0 || !noise) return tdm_fail(st, TDM_ERR_NOMEM, "initial latents: out of memory");
    if (rq->start == TDM_GEN_START_LATENT) {
        memcpy(x0, rq->x0, sizeof(float) * (size_t)g->n);
    } else {
        TDM_TRY(report(g->p, TDM_STAGE_ENCODE_IMAGE, 0, 1, st));
        double t0 = now_seconds();
        TDM_TRY(tdm_gen_encode_image(g->m, g->ex, &g->arena, rq->init, pl->width, pl->height, pl->seed,
                                     rq->streams.posterior, x0, st));
        if (rq->region_init && rq->edit_mask) { /* the region starts from region_init's latent */
            float *x0f = noise; /* [1, Cl, h, w] scratch until the noise is drawn */
            TDM_TRY(tdm_gen_encode_image(g->m, g->ex, &g->arena, rq->region_init, pl->width, pl->height, pl->seed,
                                         rq->streams.posterior, x0f, st));
            start = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n); /* [1, Cl, h, w] */
            if (!start) return tdm_fail(st, TDM_ERR_NOMEM, "initial latents: out of memory");
            const int64_t hw = (int64_t)g->h * g->w;
            for (int64_t k = 0; k < g->n; k++) {
                const float m = rq->edit_mask[k % hw];
                start[k] = m * x0f[k] + (1.0f - m) * x0[k];
            }
        }
        g->stats.seconds_encode += now_seconds() - t0;
        tdm_sd_model_release_pages(g->m, TDM_SD_VAE);
        TDM_TRY(report(g->p, TDM_STAGE_ENCODE_IMAGE, 1, 1, st));
    }
    tdm_randn(noise, (size_t)g->n, pl->seed, rq->streams.add_noise, 0);
    tdm_sampler_add_noise(g->sampler, start ? start : x0, noise, x, g->n);
    if (rq->edit_mask) { /* kept for the blending: the arena is not reset */
        g->keep_x0 = x0;
        g->keep_noise = noise;
        return TDM_OK;
    }
    tdm_arena_reset(&g->arena, mk);
    return TDM_OK;
}

/* Masked editing after step i: x = m x + (1 - m) x0 noised to the level of step i + 1 (generate.h). */
static void blend_kept(gen_ctx *g, int i, float *x, float *tmp) {
    const int64_t hw = (int64_t)g->h * g->w;
    const float *m = g->req->edit_mask; /* [h, w] */
    tdm_sampler_add_noise_at(g->sampler, i + 1, g->keep_x0, g->keep_noise, tmp, g->n);
    for (int c = 0; c < g->Cl; c++)
        for (int64_t j = 0; j < hw; j++) {
            const int64_t k = c * hw + j;
            x[k] = m[j] * x[k] + (1.0f - m[j]) * tmp[k];
        }
}

/* The sampler loop; x[n] holds the result on return (LCM: the last denoised prediction). */
static tdm_code denoise(gen_ctx *g, const tdm_text_cond *tc, float *x, tdm_status *st) {
    const tdm_gen_plan *pl = &g->plan;
    const tdm_unet_config *uc = tdm_unet_get_config(g->m->unet);
    const int B = pl->use_cfg ? 2 : 1;
    const int64_t n = g->n;
    const int N = tdm_sampler_n_steps(g->sampler);
    tdm_arena *a = &g->arena;
    float *xin = tdm_arena_alloc(a, sizeof(float) * (size_t)(B * n));  /* [B, Cl, h, w] */
    float *pred = tdm_arena_alloc(a, sizeof(float) * (size_t)(B * n)); /* [B, Cl, h, w] */
    float *kept = g->keep_x0 ? tdm_arena_alloc(a, sizeof(float) * (size_t)n) : NULL; /* [Cl, h, w] masked editing */
    float tsteps[2];
    if (g->keep_x0 && !kept) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
    const float *context = tc->cond; /* [B, len, C] */
    if (!xin || !pred) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
    if (B == 2) { /* [uncond; cond], the diffusers order */
        float *ctx2 = tdm_arena_alloc(a, sizeof(float) * 2 * (size_t)tc->len * tc->C);
        if (!ctx2) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
        memcpy(ctx2, tc->uncond, sizeof(float) * (size_t)tc->len * tc->C);
        memcpy(ctx2 + (size_t)tc->len * tc->C, tc->cond, sizeof(float) * (size_t)tc->len * tc->C);
        context = ctx2;
    }
    float *text_embeds = NULL, *time_ids = NULL; /* SDXL: [B, pooled_dim], [B, n_time_ids] ([uncond; cond]) */
    if (uc->addition_text_time) {
        const int P = tc->pooled_dim, nid = g->m->n_time_ids;
        if (P < 1 || !tc->pooled_cond || (B == 2 && !tc->pooled_uncond) || nid < 5 || nid > 6)
            return tdm_fail(st, TDM_ERR_INVALID_ARG,
                            "denoise: the UNet has a text_time embedding (SDXL) but the model gives no pooled text "
                            "embedding or time ids (family %s)",
                            tdm_family_name(g->m->family));
        text_embeds = tdm_arena_alloc(a, sizeof(float) * (size_t)B * P);
        time_ids = tdm_arena_alloc(a, sizeof(float) * (size_t)B * nid);
        if (!text_embeds || !time_ids) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
        for (int b = 0; b < B; b++) {
            const int neg = B == 2 && b == 0;
            memcpy(text_embeds + (size_t)b * P, neg ? tc->pooled_uncond : tc->pooled_cond, sizeof(float) * (size_t)P);
            tdm_sdxl_time_ids(g->m, pl, neg, time_ids + (size_t)b * nid);
        }
    }
    float *wcond = NULL; /* LCM: [B, time_cond_proj_dim] guidance embedding of w = g - 1 */
    if (uc->time_cond_proj_dim > 0) {
        wcond = tdm_arena_alloc(a, sizeof(float) * (size_t)B * uc->time_cond_proj_dim);
        if (!wcond) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
        float w[2] = {pl->guidance - 1.0f, pl->guidance - 1.0f};
        tdm_guidance_scale_embedding(w, B, uc->time_cond_proj_dim, wcond);
    }
    tdm_unet_inputs in;
    memset(&in, 0, sizeof in);
    in.B = B;
    in.H = g->h;
    in.W = g->w;
    in.sample = xin;
    in.timesteps = tsteps;
    in.context = context;
    in.context_len = tc->len;
    in.timestep_cond = wcond;
    in.text_embeds = text_embeds;
    in.text_embeds_dim = tc->pooled_dim;
    in.time_ids = time_ids;
    in.n_time_ids = g->m->n_time_ids;

    tdm_gen_controls gc; /* ControlNet: embeddings and residual buffers for the run */
    TDM_TRY(tdm_gen_controls_prepare(g->m, g->ex, a, g->p, pl->width, pl->height, g->h, g->w, B, &gc, st));

    tdm_seeded_noise sn = {pl->seed, g->req->streams.sampler_base};
    tdm_noise_source noise = tdm_noise_source_seeded(&sn);
    TDM_TRY(report(g->p, TDM_STAGE_DENOISE, 0, N, st));
    double t0 = now_seconds();
    for (int i = 0; i < N; i++) {
        tdm_sampler_scale_model_input(g->sampler, i, x, xin, n);
        if (B == 2) memcpy(xin + n, xin, sizeof(float) * (size_t)n);
        tsteps[0] = tsteps[1] = tdm_sampler_timestep(g->sampler, i);
        TDM_TRY(tdm_gen_controls_step(&gc, g->ex, a, i, N, &in, st));
        g->stats.controlnet_calls = gc.calls;
        TDM_TRY(tdm_unet_forward(g->m->unet, g->ex, a, &in, pred, st));
        g->stats.unet_calls++;
        g->stats.unet_batch = B;
        if (B == 2) { /* eps = eps_u + g (eps_c - eps_u) */
            const float gs = pl->guidance;
            for (int64_t k = 0; k < n; k++) pred[k] = pred[k] + gs * (pred[n + k] - pred[k]);
        }
        TDM_TRY(tdm_sampler_step(g->sampler, i, pred, x, n, &noise, st));
        if (kept && i + 1 < N) blend_kept(g, i, x, kept);
        g->stats.steps_run = i + 1;
        g->stats.seconds_denoise = now_seconds() - t0;
        TDM_TRY(report(g->p, TDM_STAGE_DENOISE, i + 1, N, st));
    }
    if (tdm_sampler_get_kind(g->sampler) == TDM_SAMPLER_LCM) {
        const float *den = tdm_sampler_denoised(g->sampler);
        if (!den) return tdm_fail(st, TDM_ERR_INTERNAL, "LCM sampler returned no denoised sample");
        memcpy(x, den, sizeof(float) * (size_t)n);
    }
    if (kept) blend_kept(g, N - 1, x, kept); /* the result: x0 itself outside the mask */
    return TDM_OK;
}

static tdm_code decode(gen_ctx *g, const float *x, tdm_image *out, tdm_status *st) {
    TDM_TRY(report(g->p, TDM_STAGE_DECODE, 0, 1, st));
    double t0 = now_seconds();
    const tdm_vae *vae = g->m->vae;
    const int W = g->plan.width, H = g->plan.height;
    float *z = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n);         /* [1, Cl, h, w] */
    float *img = tdm_arena_alloc(&g->arena, sizeof(float) * 3 * (size_t)W * H); /* [1, 3, H, W] */
    if (!z || !img) return tdm_fail(st, TDM_ERR_NOMEM, "decode: out of memory");
    /* diffusers: latents / scaling_factor (+ shift_factor for VAEs that have one). */
    const float sf = (float)vae->cfg.scaling_factor;
    const float shift = vae->cfg.has_shift_factor ? (float)vae->cfg.shift_factor : 0.0f;
    for (int64_t i = 0; i < g->n; i++) z[i] = x[i] / sf + shift;
    TDM_TRY(tdm_vae_decode(vae, g->ex, &g->arena, z, 1, g->h, g->w, img, st));
    TDM_TRY(tdm_image_alloc(out, W, H, st));
    tdm_vae_to_rgb8(img, 1, H, W, out->pixels);
    g->stats.seconds_decode = now_seconds() - t0;
    tdm_code rc = report(g->p, TDM_STAGE_DECODE, 1, 1, st);
    if (rc) tdm_image_free(out);
    return rc;
}

static tdm_code check_model(const tdm_sd_model *m, tdm_status *st) {
    const unsigned need = TDM_SD_TOKENIZER | TDM_SD_TEXT_ENCODER | TDM_SD_UNET | TDM_SD_VAE | TDM_SD_SCHEDULER;
    if (!m || (m->loaded & need) != need || !m->tokenizer || !(m->text_encoder || m->text_encoder_2) || !m->unet ||
        !m->vae)
        return tdm_fail(st, TDM_ERR_MISSING, "generate: the model lacks a component (tokenizer, text encoder, UNet, "
                                             "VAE or scheduler)");
    return TDM_OK;
}

/* Request checks that need the resolved plan: the start's inputs and the pre-encoded conditioning. */
static tdm_code check_request(const gen_ctx *g, tdm_status *st) {
    const tdm_gen_request *rq = g->req;
    switch (rq->start) {
    case TDM_GEN_START_NOISE: break;
    case TDM_GEN_START_LATENT:
        if (!rq->x0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: a latent start needs a latent");
        break;
    case TDM_GEN_START_PIXELS:
        if (!rq->init || !rq->init->pixels || rq->init->channels != 3 || rq->init->width <= 0 || rq->init->height <= 0)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: an image start needs an RGB8 image with pixels");
        break;
    default: return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: unknown start %d", (int)rq->start);
    }
    if (rq->region_init && (!rq->edit_mask || rq->start != TDM_GEN_START_PIXELS || !rq->region_init->pixels ||
                            rq->region_init->channels != 3 || rq->region_init->width != rq->init->width ||
                            rq->region_init->height != rq->init->height))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: a region fill needs an image start, an edit mask and an "
                                                 "RGB8 image of the start image's size");
    if (rq->edit_mask && rq->start == TDM_GEN_START_NOISE)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: an edit mask needs a start image or latent (img2img)");
    if (rq->paste_region && (!rq->paste_source || !rq->paste_source->pixels || rq->paste_source->channels != 3 ||
                             rq->paste_source->width != g->plan.width || rq->paste_source->height != g->plan.height))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: paste-back needs an RGB8 source of the output's size (%dx%d)",
                        g->plan.width, g->plan.height);
    if (rq->start != TDM_GEN_START_NOISE && (rq->grid_steps < 0 || rq->grid_steps > 1000))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: schedule length %d is out of range [1, 1000]", rq->grid_steps);
    const tdm_text_cond *tc = rq->text;
    if (tc && (!tc->cond || tc->len < 1 || tc->C != tdm_text_context_width(g->m) ||
               (g->plan.use_cfg && !tc->uncond) ||
               (g->m->text_encoder_2 && (tc->pooled_dim != g->m->text_embeds_dim || !tc->pooled_cond ||
                                         (g->plan.use_cfg && !tc->pooled_uncond)))))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: the pre-encoded conditioning does not fit this model and "
                                                 "these settings (width %d, %s negative prompt)",
                        tc->C, tc->uncond ? "with" : "without");
    return TDM_OK;
}

tdm_code tdm_gen_execute(const tdm_sd_model *m, const tdm_exec *ex, const tdm_gen_request *req, tdm_gen_result *out,
                         tdm_status *st) {
    memset(out, 0, sizeof *out);
    out->start_sigma = NAN;
    if (!req || !req->p) return tdm_fail(st, TDM_ERR_INVALID_ARG, "generate: no request or params");
    TDM_TRY(check_model(m, st));
    gen_ctx g;
    memset(&g, 0, sizeof g);
    g.m = m;
    g.ex = ex;
    g.p = req->p;
    g.req = req;
    TDM_TRY(tdm_gen_resolve(m, req->p, &g.plan, st));
    TDM_TRY(check_request(&g, st));
    const int from_image = req->start != TDM_GEN_START_NOISE;
    double strength = 1.0;
    tdm_img2img_rule rule = TDM_IMG2IMG_AUTO;
    if (from_image) { /* the schedule: grid_steps (or the steps) of which a share `strength` is kept */
        if (req->grid_steps > 0) g.plan.steps = req->grid_steps;
        strength = isnan(req->strength) ? (double)g.plan.strength : req->strength;
        if (!(strength > 0.0 && strength <= 1.0))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "strength %g is out of range (0, 1]", strength);
        g.plan.strength = (float)strength;
        g.plan.img2img = 1;
        rule = req->rule;
    }
    const tdm_unet_config *uc = tdm_unet_get_config(m->unet);
    const tdm_vae_config *vc = &m->vae->cfg;
    if (uc->in_channels != vc->latent_channels || uc->out_channels != vc->latent_channels)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "UNet in/out channels %d/%d do not match the VAE latent channels %d (inpainting and "
                        "other conditioned UNets are not supported)",
                        uc->in_channels, uc->out_channels, vc->latent_channels);
    const int s = tdm_vae_latent_scale(vc);
    g.Cl = vc->latent_channels;
    g.h = g.plan.height / s;
    g.w = g.plan.width / s;
    g.n = (int64_t)g.Cl * g.h * g.w;
    out->Cl = g.Cl;
    out->h = g.h;
    out->w = g.w;

    tdm_scheduler_config cfg = m->scheduler;
    /* The sampler name decides Karras sigmas (only dpmpp_2m_karras), whatever the model's config says. */
    cfg.use_karras_sigmas = g.plan.karras;
    cfg.eta = g.plan.eta;
    tdm_arena_init(&g.arena, (size_t)32 << 20);
    tdm_code rc = tdm_sampler_create_ex(&g.sampler, g.plan.kind, &cfg, g.plan.steps, strength, rule, st);
    if (rc) goto done;
    if (tdm_sampler_n_steps(g.sampler) < 1) {
        rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "strength %g with %d steps leaves no step to run", strength,
                      g.plan.steps);
        goto done;
    }
    out->first_timestep = tdm_sampler_timestep(g.sampler, 0);
    if (from_image)
        out->start_sigma = 1.0 - tdm_alphabar_at(tdm_sampler_alphas_cumprod(g.sampler), cfg.num_train_timesteps,
                                                 out->first_timestep);

    /* 1. text */
    tdm_text_cond own_tc;
    const tdm_text_cond *tc = req->text;
    if (!tc) {
        rc = report(g.p, TDM_STAGE_ENCODE_TEXT, 0, 1, st);
        if (rc) goto done;
        double t0 = now_seconds();
        rc = tdm_gen_encode_text(m, ex, &g.arena, &g.plan, g.plan.use_cfg, &own_tc, st);
        if (rc) goto done;
        g.stats.seconds_encode = now_seconds() - t0;
        tdm_sd_model_release_pages(m, TDM_SD_TEXT_ENCODER); /* memory: see release_note */
        rc = report(g.p, TDM_STAGE_ENCODE_TEXT, 1, 1, st);
        if (rc) goto done;
        tc = &own_tc;
    }
    g.stats.prompt_chunks = tc->n_windows;

    /* 2. latents */
    float *x = tdm_arena_alloc(&g.arena, sizeof(float) * (size_t)g.n); /* [1, Cl, h, w] */
    if (!x) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "latents: out of memory");
        goto done;
    }
    rc = prepare_latents(&g, x, st);
    /* 3. loop, 4. decode */
    if (!rc) rc = denoise(&g, tc, x, st);
    if (!rc && req->want_latent) {
        out->latent = malloc(sizeof(float) * (size_t)g.n);
        if (!out->latent) rc = tdm_fail(st, TDM_ERR_NOMEM, "latents: out of memory");
        else memcpy(out->latent, x, sizeof(float) * (size_t)g.n);
    }
    if (!rc) {
        tdm_sd_model_release_pages(m, TDM_SD_UNET);
        rc = decode(&g, x, &out->image, st);
        tdm_sd_model_release_pages(m, TDM_SD_VAE);
    }
    if (!rc && req->paste_region) { /* masked editing: the source's pixels outside the region */
        const int64_t npx = (int64_t)out->image.width * out->image.height;
        for (int64_t i = 0; i < npx; i++)
            if (!req->paste_region[i]) memcpy(out->image.pixels + 3 * i, req->paste_source->pixels + 3 * i, 3);
    }
done:
    g.stats.arena_peak = g.arena.peak;
    out->stats = g.stats;
    tdm_sampler_free(g.sampler);
    tdm_arena_free(&g.arena);
    if (rc) tdm_gen_result_free(out);
    return rc;
}

tdm_code tdm_gen_run(const tdm_sd_model *m, const tdm_exec *ex, const tdm_generate_params *p, tdm_image *out,
                     tdm_generate_stats *stats, tdm_status *st) {
    memset(out, 0, sizeof *out);
    if (stats) memset(stats, 0, sizeof *stats);
    tdm_gen_request rq;
    tdm_gen_request_init(&rq, p);
    if (p && p->init_image) { /* img2img: the sampler's own rule (LCM: LCMScheduler's) */
        rq.start = TDM_GEN_START_PIXELS;
        rq.init = p->init_image;
    }
    tdm_gen_result r;
    tdm_code rc = tdm_gen_execute(m, ex, &rq, &r, st);
    if (stats) *stats = r.stats;
    *out = r.image; /* empty on failure */
    return rc;
}
