/* The adaptive pipeline's refinement plan (both sigma conventions, docs/ADAPTIVE.md) and the shared-VAE
 * test that picks the latent or the pixel hand-off (see adaptive.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/adaptive.h"

tdm_gen_streams tdm_adaptive_streams_refine(void) {
    tdm_gen_streams s = {TDM_STREAM_INIT_LATENT, TDM_STREAM_REFINE_SAMPLER_BASE, TDM_STREAM_REFINE_NOISE,
                         TDM_STREAM_REFINE_POSTERIOR};
    return s;
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
