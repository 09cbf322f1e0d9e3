/* LoRA on whole models: UNet views with a run-time set, merged copies, the per-model stack (lora_model.h). */
#include "models/lora_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet_internal.h"

const tdm_weights *tdm_unet_weights(const tdm_unet *u) { return u ? &u->ws : NULL; }
const tdm_lora_set *tdm_unet_lora(const tdm_unet *u) { return u ? u->lora : NULL; }

tdm_code tdm_unet_with_lora(const tdm_unet *base, const tdm_lora_set *s, int merge, tdm_unet **out, tdm_status *st) {
    *out = NULL;
    if (!base) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: no base UNet");
    if (s && s->comp != TDM_LORA_UNET)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: a %s LoRA set given for the UNet",
                        tdm_lora_component_name(s->comp));
    if (base->lora)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "lora: the base UNet carries a run-time LoRA already (give every file to one set)");
    /* a store of views of base's tensors (merge: the targets replaced by merged copies) */
    tdm_weights ws;
    TDM_TRY(tdm_lora_merge_store(&base->ws, merge ? s : NULL, "unet", &ws, st));
    tdm_unet *u = NULL;
    TDM_TRY(tdm_unet_load(&u, &base->cfg, &ws, st)); /* takes ws */
    if (!merge) u->lora = s && s->n ? s : NULL;
    *out = u;
    return TDM_OK;
}

tdm_code tdm_clip_text_with_lora(const tdm_clip_text *base, const tdm_lora_set *s, tdm_clip_text **out,
                                 tdm_status *st) {
    *out = NULL;
    if (!base) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: no base text encoder");
    tdm_weights ws;
    TDM_TRY(tdm_lora_merge_store(&base->ws, s, base->ws.what, &ws, st));
    return tdm_clip_text_load(out, &base->cfg, &ws, st);
}

/* ---- stack -------------------------------------------------------------------------------------- */

void tdm_lora_stack_free(tdm_lora_stack *s) {
    if (!s) return;
    tdm_lora_set_free(s->unet_set);
    tdm_unet_free(s->base_unet);
    tdm_clip_text_free(s->base_te);
    for (int i = 0; i < s->n; i++) tdm_lora_free(s->files[i]);
    free(s->files);
    free(s->scales);
    free(s);
}

tdm_code tdm_lora_stack_apply(tdm_lora_stack **out, const tdm_lora_spec *specs, int n, int merge, tdm_unet **unet,
                              tdm_clip_text **te, int own_base, tdm_status *st) {
    *out = NULL;
    if (n < 1 || n > 64 || !specs) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: %d files given (1..64)", n);
    tdm_lora_stack *s = calloc(1, sizeof *s);
    if (!s) return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    s->merged = merge != 0;
    s->files = calloc((size_t)n, sizeof *s->files);
    s->scales = calloc((size_t)n, sizeof *s->scales);
    tdm_code rc = s->files && s->scales ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    int has_unet = 0, has_te = 0;
    for (int i = 0; !rc && i < n; i++) {
        if (!specs[i].path || !*specs[i].path) {
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "lora %d: no file path given", i + 1);
            break;
        }
        s->scales[i] = specs[i].scale;
        rc = tdm_lora_open(&s->files[i], specs[i].path, st);
        if (rc) break;
        s->n = i + 1;
        const tdm_lora *l = s->files[i];
        if (l->n_comp[TDM_LORA_TEXT_ENCODER_2])
            rc = tdm_fail(st, TDM_ERR_UNSUPPORTED,
                          "lora: %s: %d modules for a second text encoder (lora_te2_ / text_encoder_2.: an SDXL "
                          "LoRA?); this model has one text encoder",
                          l->path, l->n_comp[TDM_LORA_TEXT_ENCODER_2]);
        else if (l->n_comp[TDM_LORA_UNET] && (!unet || !*unet))
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: %s: has UNet modules but no UNet is loaded", l->path);
        else if (l->n_comp[TDM_LORA_TEXT_ENCODER] && (!te || !*te))
            rc = tdm_fail(st, TDM_ERR_INVALID_ARG,
                          "lora: %s: has %d text encoder modules but no text encoder is loaded", l->path,
                          l->n_comp[TDM_LORA_TEXT_ENCODER]);
        has_unet |= l->n_comp[TDM_LORA_UNET] > 0;
        has_te |= l->n_comp[TDM_LORA_TEXT_ENCODER] > 0;
    }
    tdm_unet *new_unet = NULL;
    tdm_clip_text *new_te = NULL;
    tdm_lora_set *te_set = NULL;
    if (!rc && has_unet) {
        tdm_lora_set *us = NULL;
        rc = tdm_lora_bind(&us, tdm_unet_weights(*unet), TDM_LORA_UNET, s->files, s->scales, n, st);
        if (!rc) {
            s->unet_lora_params = us->lora_params;
            s->unet_target_params = us->target_params;
            s->n_unet_targets = us->n;
            rc = tdm_unet_with_lora(*unet, us, merge, &new_unet, st);
        }
        if (merge || rc) tdm_lora_set_free(us);
        else s->unet_set = us;
    }
    if (!rc && has_te) {
        rc = tdm_lora_bind(&te_set, &(*te)->ws, TDM_LORA_TEXT_ENCODER, s->files, s->scales, n, st);
        if (!rc) {
            s->te_lora_params = te_set->lora_params;
            s->n_te_targets = te_set->n;
            rc = tdm_clip_text_with_lora(*te, te_set, &new_te, st);
        }
        tdm_lora_set_free(te_set);
    }
    if (rc) {
        tdm_unet_free(new_unet);
        tdm_clip_text_free(new_te);
        tdm_lora_stack_free(s);
        return rc;
    }
    if (new_unet) {
        if (own_base) s->base_unet = *unet;
        *unet = new_unet;
    }
    if (new_te) {
        if (own_base) s->base_te = *te;
        *te = new_te;
    }
    *out = s;
    return TDM_OK;
}
