/* One denoising stage of the adaptive pipeline (see adaptive.h): the loop of tdm_gen_run (generate.c)
 * with a choice of start (noise, clean latent, pixels) and of noise streams, returning the final latent.
 * Also the refinement plan (both sigma conventions) and the shared-VAE test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "io/image.h"
#include "pipeline/adaptive.h"

tdm_stage_streams tdm_stage_streams_generate(void) {
    tdm_stage_streams s = {TDM_STREAM_INIT_LATENT, TDM_STREAM_SAMPLER_BASE, TDM_STREAM_IMG2IMG_NOISE,
                           TDM_STREAM_VAE_POSTERIOR};
    return s;
}

tdm_stage_streams tdm_stage_streams_refine(void) {
    tdm_stage_streams s = {TDM_STREAM_INIT_LATENT, TDM_STREAM_REFINE_SAMPLER_BASE, TDM_STREAM_REFINE_NOISE,
                           TDM_STREAM_REFINE_POSTERIOR};
    return s;
}

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

double tdm_alphabar_at(const float *ac, int n_train, double t) {
    if (!(t > 0)) return ac[0];
    if (t >= n_train - 1) return ac[n_train - 1];
    int i = (int)floor(t);
    double f = t - i;
    return (1.0 - f) * ac[i] + f * ac[i + 1];
}

typedef struct stage_ctx {
    const tdm_stage_job *job;
    const tdm_generate_params *p;
    tdm_gen_plan plan;
    tdm_arena arena;
    tdm_sampler *sampler;
    tdm_generate_stats stats;
    int h, w, Cl;
    int64_t n; /* Cl * h * w */
} stage_ctx;

/* init image -> [1, 3, H, W] in [-1, 1], Lanczos-resized when its size differs (as generate.c). */
static tdm_code image_tensor(const tdm_image *init, int W, int H, float *x, tdm_status *st) {
    tdm_image resized = {0};
    const tdm_image *src = init;
    if (init->width != W || init->height != H) {
        TDM_TRY(tdm_image_resize(init, W, H, TDM_RESAMPLE_LANCZOS, &resized, st));
        src = &resized;
    }
    const size_t hw = (size_t)W * H;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++) x[c * hw + i] = 2.0f * ((float)src->pixels[i * 3 + c] / 255.0f) - 1.0f;
    tdm_image_free(&resized);
    return TDM_OK;
}

/* x[n] = the starting latent. */
static tdm_code prepare(stage_ctx *g, float *x, tdm_status *st) {
    const tdm_stage_job *j = g->job;
    const uint64_t seed = g->plan.seed;
    if (j->start == TDM_START_NOISE) {
        tdm_randn(x, (size_t)g->n, seed, j->streams.init, 0);
        const float sigma = tdm_sampler_init_noise_sigma(g->sampler);
        for (int64_t i = 0; i < g->n; i++) x[i] *= sigma;
        return TDM_OK;
    }
    tdm_arena_mark mk = tdm_arena_get_mark(&g->arena);
    float *x0 = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n);    /* [1, Cl, h, w] */
    float *noise = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n); /* [1, Cl, h, w] */
    if (!x0 || !noise) return tdm_fail(st, TDM_ERR_NOMEM, "refine: out of memory");
    if (j->start == TDM_START_LATENT) {
        memcpy(x0, j->x0, sizeof(float) * (size_t)g->n);
    } else {
        TDM_TRY(report(g->p, TDM_STAGE_ENCODE_IMAGE, 0, 1, st));
        double t0 = now_seconds();
        const tdm_vae *vae = g->job->m->vae;
        const int W = g->plan.width, H = g->plan.height;
        float *img = tdm_arena_alloc(&g->arena, sizeof(float) * 3 * (size_t)W * H); /* [1, 3, H, W] */
        float *logvar = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n);   /* [1, Cl, h, w] */
        if (!img || !logvar) return tdm_fail(st, TDM_ERR_NOMEM, "refine: out of memory");
        TDM_TRY(image_tensor(j->init, W, H, img, st));
        TDM_TRY(tdm_vae_encode(vae, g->job->ex, &g->arena, img, 1, H, W, x0, logvar, NULL, st));
        /* DiagonalGaussianDistribution.sample: z = mean + exp(logvar / 2) eps; latents = scaling * z */
        tdm_randn(noise, (size_t)g->n, seed, j->streams.posterior, 0);
        const float sf = (float)vae->cfg.scaling_factor;
        for (int64_t i = 0; i < g->n; i++) x0[i] = sf * (x0[i] + expf(0.5f * logvar[i]) * noise[i]);
        g->stats.seconds_encode += now_seconds() - t0;
        TDM_TRY(report(g->p, TDM_STAGE_ENCODE_IMAGE, 1, 1, st));
    }
    tdm_randn(noise, (size_t)g->n, seed, j->streams.add_noise, 0);
    tdm_sampler_add_noise(g->sampler, x0, noise, x, g->n);
    tdm_arena_reset(&g->arena, mk);
    return TDM_OK;
}

/* The sampler loop (generate.c denoise()); x[n] holds the result (LCM: the last denoised output). */
static tdm_code denoise(stage_ctx *g, const tdm_text_cond *tc, float *x, tdm_status *st) {
    const tdm_gen_plan *pl = &g->plan;
    const tdm_unet_config *uc = tdm_unet_get_config(g->job->m->unet);
    const int B = pl->use_cfg ? 2 : 1;
    const int64_t n = g->n;
    const int N = tdm_sampler_n_steps(g->sampler);
    tdm_arena *a = &g->arena;
    float *xin = tdm_arena_alloc(a, sizeof(float) * (size_t)(B * n));  /* [B, Cl, h, w] */
    float *pred = tdm_arena_alloc(a, sizeof(float) * (size_t)(B * n)); /* [B, Cl, h, w] */
    float tsteps[2];
    const float *context = tc->cond; /* [B, len, C] */
    if (!xin || !pred) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
    if (B == 2) { /* [uncond; cond], the diffusers order */
        float *ctx2 = tdm_arena_alloc(a, sizeof(float) * 2 * (size_t)tc->len * tc->C);
        if (!ctx2) return tdm_fail(st, TDM_ERR_NOMEM, "denoise: out of memory");
        memcpy(ctx2, tc->uncond, sizeof(float) * (size_t)tc->len * tc->C);
        memcpy(ctx2 + (size_t)tc->len * tc->C, tc->cond, sizeof(float) * (size_t)tc->len * tc->C);
        context = ctx2;
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

    tdm_seeded_noise sn = {pl->seed, g->job->streams.sampler_base};
    tdm_noise_source noise = tdm_noise_source_seeded(&sn);
    TDM_TRY(report(g->p, TDM_STAGE_DENOISE, 0, N, st));
    double t0 = now_seconds();
    for (int i = 0; i < N; i++) {
        tdm_sampler_scale_model_input(g->sampler, i, x, xin, n);
        if (B == 2) memcpy(xin + n, xin, sizeof(float) * (size_t)n);
        tsteps[0] = tsteps[1] = tdm_sampler_timestep(g->sampler, i);
        TDM_TRY(tdm_unet_forward(g->job->m->unet, g->job->ex, a, &in, pred, st));
        g->stats.unet_calls++;
        g->stats.unet_batch = B;
        if (B == 2) { /* eps = eps_u + g (eps_c - eps_u) */
            const float gs = pl->guidance;
            for (int64_t k = 0; k < n; k++) pred[k] = pred[k] + gs * (pred[n + k] - pred[k]);
        }
        TDM_TRY(tdm_sampler_step(g->sampler, i, pred, x, n, &noise, st));
        g->stats.steps_run = i + 1;
        g->stats.seconds_denoise = now_seconds() - t0;
        TDM_TRY(report(g->p, TDM_STAGE_DENOISE, i + 1, N, st));
    }
    if (tdm_sampler_get_kind(g->sampler) == TDM_SAMPLER_LCM) {
        const float *den = tdm_sampler_denoised(g->sampler);
        if (!den) return tdm_fail(st, TDM_ERR_INTERNAL, "LCM sampler returned no denoised sample");
        memcpy(x, den, sizeof(float) * (size_t)n);
    }
    return TDM_OK;
}

static tdm_code decode(stage_ctx *g, const float *x, tdm_image *out, tdm_status *st) {
    TDM_TRY(report(g->p, TDM_STAGE_DECODE, 0, 1, st));
    double t0 = now_seconds();
    const tdm_vae *vae = g->job->m->vae;
    const int W = g->plan.width, H = g->plan.height;
    float *z = tdm_arena_alloc(&g->arena, sizeof(float) * (size_t)g->n);         /* [1, Cl, h, w] */
    float *img = tdm_arena_alloc(&g->arena, sizeof(float) * 3 * (size_t)W * H); /* [1, 3, H, W] */
    if (!z || !img) return tdm_fail(st, TDM_ERR_NOMEM, "decode: out of memory");
    const float sf = (float)vae->cfg.scaling_factor;
    const float shift = vae->cfg.has_shift_factor ? (float)vae->cfg.shift_factor : 0.0f;
    for (int64_t i = 0; i < g->n; i++) z[i] = x[i] / sf + shift;
    TDM_TRY(tdm_vae_decode(vae, g->job->ex, &g->arena, z, 1, g->h, g->w, img, st));
    TDM_TRY(tdm_image_alloc(out, W, H, st));
    tdm_vae_to_rgb8(img, 1, H, W, out->pixels);
    g->stats.seconds_decode = now_seconds() - t0;
    tdm_code rc = report(g->p, TDM_STAGE_DECODE, 1, 1, st);
    if (rc) tdm_image_free(out);
    return rc;
}

void tdm_stage_result_free(tdm_stage_result *r) {
    if (!r) return;
    tdm_image_free(&r->image);
    free(r->latent);
    r->latent = NULL;
}

tdm_code tdm_stage_run(const tdm_stage_job *job, tdm_stage_result *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    out->start_sigma = NAN;
    const tdm_sd_model *m = job->m;
    const unsigned need = TDM_SD_TOKENIZER | TDM_SD_TEXT_ENCODER | TDM_SD_UNET | TDM_SD_VAE | TDM_SD_SCHEDULER;
    if (!m || (m->loaded & need) != need || !m->unet || !m->vae)
        return tdm_fail(st, TDM_ERR_MISSING, "adaptive: a model lacks a component (tokenizer, text encoder, UNet, "
                                             "VAE or scheduler)");
    if (job->start == TDM_START_LATENT && !job->x0) return tdm_fail(st, TDM_ERR_INVALID_ARG, "stage: no latent");
    if (job->start == TDM_START_PIXELS && (!job->init || !job->init->pixels))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "stage: no init image");
    stage_ctx g;
    memset(&g, 0, sizeof g);
    g.job = job;
    g.p = job->p;
    tdm_generate_params p = *job->p;
    p.init_image = NULL;
    TDM_TRY(tdm_gen_resolve(m, &p, &g.plan, st));
    double strength = 1.0;
    if (job->start != TDM_START_NOISE) {
        g.plan.steps = job->grid_steps;
        g.plan.img2img = 1;
        strength = job->strength;
        g.plan.strength = (float)strength;
    }
    const tdm_unet_config *uc = tdm_unet_get_config(m->unet);
    const tdm_vae_config *vc = &m->vae->cfg;
    if (uc->in_channels != vc->latent_channels || uc->out_channels != vc->latent_channels)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "UNet in/out channels %d/%d do not match the VAE latent channels %d",
                        uc->in_channels, uc->out_channels, vc->latent_channels);
    if (uc->addition_text_time)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "SDXL UNets (text_time embedding) are not supported yet");
    const int s = tdm_vae_latent_scale(vc);
    g.Cl = vc->latent_channels;
    g.h = g.plan.height / s;
    g.w = g.plan.width / s;
    g.n = (int64_t)g.Cl * g.h * g.w;

    tdm_scheduler_config cfg = m->scheduler;
    cfg.use_karras_sigmas = g.plan.karras;
    cfg.eta = g.plan.eta;
    tdm_arena_init(&g.arena, (size_t)32 << 20);
    tdm_code rc = tdm_sampler_create_ex(&g.sampler, g.plan.kind, &cfg, g.plan.steps, strength,
                                        job->start == TDM_START_NOISE ? TDM_IMG2IMG_AUTO : TDM_IMG2IMG_GET_TIMESTEPS,
                                        st);
    if (rc) goto done;
    out->first_timestep = tdm_sampler_timestep(g.sampler, 0);
    if (job->start != TDM_START_NOISE)
        out->start_sigma = 1.0 - tdm_alphabar_at(tdm_sampler_alphas_cumprod(g.sampler), cfg.num_train_timesteps,
                                                 out->first_timestep);

    rc = report(g.p, TDM_STAGE_ENCODE_TEXT, 0, 1, st);
    if (rc) goto done;
    double t0 = now_seconds();
    tdm_text_cond tc;
    rc = tdm_gen_encode_text(m, job->ex, &g.arena, &g.plan, g.plan.use_cfg, &tc, st);
    if (rc) goto done;
    g.stats.prompt_chunks = tc.n_windows;
    g.stats.seconds_encode = now_seconds() - t0;
    rc = report(g.p, TDM_STAGE_ENCODE_TEXT, 1, 1, st);
    if (rc) goto done;

    float *x = tdm_arena_alloc(&g.arena, sizeof(float) * (size_t)g.n); /* [1, Cl, h, w] */
    if (!x) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "latents: out of memory");
        goto done;
    }
    rc = prepare(&g, x, st);
    if (!rc) rc = denoise(&g, &tc, x, st);
    if (!rc && job->want_latent) {
        out->latent = malloc(sizeof(float) * (size_t)g.n);
        if (!out->latent) rc = tdm_fail(st, TDM_ERR_NOMEM, "latents: out of memory");
        else memcpy(out->latent, x, sizeof(float) * (size_t)g.n);
    }
    if (!rc) rc = decode(&g, x, &out->image, st);
    out->Cl = g.Cl;
    out->h = g.h;
    out->w = g.w;
done:
    g.stats.arena_peak = g.arena.peak;
    out->stats = g.stats;
    tdm_sampler_free(g.sampler);
    tdm_arena_free(&g.arena);
    if (rc) tdm_stage_result_free(out);
    return rc;
}

/* ---- refinement plan ---- */

/* Creates the teacher's sampler for (N, strength) with the get_timesteps rule; *t0 = first timestep,
 * *kept = steps run, *ab = alphabar(t0). */
static tdm_code probe(const tdm_sd_model *m, tdm_sampler_kind kind, int karras, float eta, int N, double strength,
                      float *t0, int *kept, double *ab, tdm_status *st) {
    tdm_scheduler_config cfg = m->scheduler;
    cfg.use_karras_sigmas = karras;
    cfg.eta = eta;
    tdm_sampler *s = NULL;
    TDM_TRY(tdm_sampler_create_ex(&s, kind, &cfg, N, strength, TDM_IMG2IMG_GET_TIMESTEPS, st));
    *t0 = tdm_sampler_timestep(s, 0);
    *kept = tdm_sampler_n_steps(s);
    *ab = tdm_alphabar_at(tdm_sampler_alphas_cumprod(s), cfg.num_train_timesteps, *t0);
    tdm_sampler_free(s);
    return TDM_OK;
}

tdm_code tdm_refine_plan_make(const tdm_sd_model *m, const char *sampler, float eta, int T,
                              tdm_refine_convention conv, double value, tdm_refine_plan *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    out->target_timestep = NAN;
    tdm_sampler_kind kind;
    int karras = 0;
    TDM_TRY(tdm_sampler_kind_parse(sampler, &kind, &karras, st));
    const int n_train = m->scheduler.num_train_timesteps > 0 ? m->scheduler.num_train_timesteps : 1000;
    if (T < 1 || T > n_train)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine: teacher steps %d out of range [1, %d]", T, n_train);
    float t0 = 0;
    int kept = 0;
    double ab = 0;
    if (conv == TDM_REFINE_STRENGTH) {
        const double s = value;
        if (!(s > 0 && s <= 1)) return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine strength %g is out of range (0, 1]", s);
        /* reference code: num_all_steps = int(T / sigma + 1) */
        int N = (int)(T / s + 1.0);
        int found = 0;
        for (int d = 0; d <= n_train && !found; d++) /* nearest N keeping exactly T */
            for (int sign = -1; sign <= 1 && !found; sign += 2) {
                int c = N + sign * d;
                if (c < T || c > n_train) continue;
                int k = (int)(c * s);
                if (k > c) k = c;
                if (k == T) {
                    N = c;
                    found = 1;
                }
            }
        if (!found)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine strength %g: no schedule length keeps exactly %d steps", s,
                            T);
        TDM_TRY(probe(m, kind, karras, eta, N, s, &t0, &kept, &ab, st));
        out->grid_steps = N;
        out->strength = s;
    } else {
        const double sigma = value;
        if (!(sigma > 0 && sigma < 1))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine noise sigma %g is out of range (0, 1)", sigma);
        /* t* : 1 - alphabar(t*) = sigma (alphabar decreases with t) */
        tdm_sampler *s0 = NULL;
        tdm_scheduler_config cfg = m->scheduler;
        TDM_TRY(tdm_sampler_create_ex(&s0, kind, &cfg, 1, 1.0, TDM_IMG2IMG_GET_TIMESTEPS, st));
        const float *ac = tdm_sampler_alphas_cumprod(s0);
        double target = 1.0 - sigma, tstar;
        if (target >= ac[0]) tstar = 0;
        else if (target <= ac[n_train - 1]) tstar = n_train - 1;
        else {
            int i = 0;
            while (i + 1 < n_train && ac[i + 1] > target) i++;
            tstar = i + (ac[i] - target) / (ac[i] - ac[i + 1]);
        }
        tdm_sampler_free(s0);
        out->target_timestep = tstar;
        int bestN = -1;
        double best = INFINITY;
        for (int N = T; N <= n_train; N++) {
            double strength = N == T ? 1.0 : (T + 0.5) / N;
            float tt;
            int kk;
            double aa;
            tdm_status ignore = {0};
            if (probe(m, kind, karras, eta, N, strength, &tt, &kk, &aa, &ignore) || kk != T) continue;
            double d = fabs((double)tt - tstar);
            if (d < best) {
                best = d;
                bestN = N;
            }
        }
        if (bestN < 0)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "refine noise sigma %g: no schedule runs exactly %d steps", sigma, T);
        out->grid_steps = bestN;
        out->strength = bestN == T ? 1.0 : (T + 0.5) / bestN;
        TDM_TRY(probe(m, kind, karras, eta, bestN, out->strength, &t0, &kept, &ab, st));
    }
    out->steps = kept;
    out->first_timestep = t0;
    out->start_sigma = 1.0 - ab;
    return TDM_OK;
}

/* ---- shared VAE ---- */

int tdm_vae_shared(const tdm_sd_model *a, const tdm_sd_model *b, char *reason, size_t size) {
    if (a->vae == b->vae) {
        snprintf(reason, size, "same VAE (one model)");
        return 1;
    }
    const tdm_vae_config *ca = &a->vae->cfg, *cb = &b->vae->cfg;
    if (ca->latent_channels != cb->latent_channels || ca->scaling_factor != cb->scaling_factor ||
        ca->has_shift_factor != cb->has_shift_factor || ca->shift_factor != cb->shift_factor ||
        ca->n_levels != cb->n_levels) {
        snprintf(reason, size, "VAE configs differ (latent channels, scaling/shift factor or levels)");
        return 0;
    }
    const tdm_weights *wa = &a->vae->ws, *wb = &b->vae->ws;
    if (wa->n != wb->n) {
        snprintf(reason, size, "VAE weights differ (%d vs %d tensors)", wa->n, wb->n);
        return 0;
    }
    size_t bytes = 0;
    for (int i = 0; i < wa->n; i++) { /* both sorted by name (tdm_weights_finish) */
        const tdm_weight *x = &wa->w[i], *y = &wb->w[i];
        const size_t nb = (size_t)tdm_tensor_numel(&x->t) * tdm_dtype_size(x->t.dtype);
        const int same_layout = strcmp(x->name, y->name) == 0 && x->t.dtype == y->t.dtype && x->t.ndim == y->t.ndim &&
                                memcmp(x->t.shape, y->t.shape, sizeof(x->t.shape[0]) * (size_t)x->t.ndim) == 0 &&
                                tdm_tensor_is_contiguous(&x->t) && tdm_tensor_is_contiguous(&y->t);
        if (!same_layout || (x->t.data != y->t.data && memcmp(x->t.data, y->t.data, nb) != 0)) {
            snprintf(reason, size, "VAE weights differ (first at '%s')", x->name);
            return 0;
        }
        bytes += nb;
    }
    snprintf(reason, size, "identical VAE (%d tensors, %zu bytes compared)", wa->n, bytes);
    return 1;
}
