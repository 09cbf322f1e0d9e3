/* LoRA on loaded models (sd_model.h): --lora at load, and models derived from a loaded one that share its
 * weights (a student = teacher + LCM-LoRA), and the LCM-LoRA test behind the LCM defaults. Memory and the
 * LCM-LoRA rule: docs/LORA.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lora_model.h"
#include "pipeline/sd_model.h"

static void append_source(tdm_sd_model *m, const char *text) {
    size_t len = strlen(m->source);
    if (len + 3 < sizeof m->source) snprintf(m->source + len, sizeof m->source - len, "; %s", text);
}

tdm_code tdm_sd_model_apply_lora(tdm_sd_model *m, const tdm_sd_load_opts *o, tdm_status *st) {
    if (!o->n_loras) return TDM_OK;
    if (m->lora) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: the model has LoRA files applied already");
    TDM_TRY(tdm_lora_stack_apply(&m->lora, o->loras, o->n_loras, o->lora_merge, m->unet ? &m->unet : NULL,
                                 m->text_encoder ? &m->text_encoder : NULL, 1, st));
    char buf[512];
    tdm_sd_model_lora_summary(m, buf, sizeof buf);
    append_source(m, buf);
    return TDM_OK;
}

tdm_code tdm_sd_model_derive_lora(const tdm_sd_model *base, const tdm_lora_spec *specs, int n, int merge,
                                  tdm_sd_model **out, tdm_status *st) {
    *out = NULL;
    if (!base) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: no base model");
    if (base->unet && tdm_unet_lora(base->unet))
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "lora: the base model applies a LoRA at run time already: give all LoRA files to one model");
    tdm_sd_model *m = malloc(sizeof *m);
    if (!m) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    *m = *base; /* every component pointer is base's (borrowed) */
    memset(&m->single, 0, sizeof m->single);
    m->lora = NULL;
    m->lora_base = base;
    tdm_unet *u = base->unet;
    tdm_clip_text *te = base->text_encoder;
    tdm_code rc = tdm_lora_stack_apply(&m->lora, specs, n, merge, u ? &u : NULL, te ? &te : NULL, 0, st);
    if (rc) {
        free(m);
        return rc;
    }
    m->unet = u;          /* the adapted view (owned) or base's */
    m->text_encoder = te; /* merged copy (owned) or base's */
    char buf[512];
    tdm_sd_model_lora_summary(m, buf, sizeof buf);
    append_source(m, buf);
    *out = m;
    return TDM_OK;
}

void tdm_sd_model_free_derived(tdm_sd_model *m) {
    if (!m) return;
    const tdm_sd_model *b = m->lora_base;
    if (m->unet != b->unet) tdm_unet_free(m->unet);
    if (m->text_encoder != b->text_encoder) tdm_clip_text_free(m->text_encoder);
    tdm_lora_stack_free(m->lora);
    free(m);
}

int tdm_sd_model_lcm_lora(const tdm_sd_model *m) {
    const tdm_lora_stack *s = m ? m->lora : NULL;
    if (!s || !m->unet) return 0;
    for (int i = 0; i < s->n; i++)
        if (s->files[i]->is_lcm && s->files[i]->n_comp[TDM_LORA_UNET] > 0 && s->scales[i] != 0.0f) return 1;
    return 0;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int tdm_sd_model_lora_summary(const tdm_sd_model *m, char *buf, size_t n) {
    if (buf && n) buf[0] = '\0';
    const tdm_lora_stack *s = m ? m->lora : NULL;
    if (!s) return 0;
    char files[256] = "";
    size_t len = 0;
    for (int i = 0; i < s->n && len + 1 < sizeof files; i++) {
        int w = snprintf(files + len, sizeof files - len, "%s%s x%g%s", i ? ", " : "", base_name(s->files[i]->path),
                         (double)s->scales[i], s->files[i]->is_lcm ? " LCM-LoRA" : "");
        if (w < 0) break;
        len += (size_t)w;
    }
    char te[96] = "";
    if (s->n_te_targets) snprintf(te, sizeof te, ", %d text encoder weights merged", s->n_te_targets);
    return snprintf(buf, n, "LoRA: %d file%s (%s), %d UNet weights %s, %.2fM LoRA parameters over %.1fM base%s%s",
                    s->n, s->n == 1 ? "" : "s", files, s->n_unet_targets,
                    s->merged ? "merged at load" : "adapted at run time", (double)s->unet_lora_params / 1e6,
                    (double)s->unet_target_params / 1e6, te,
                    m->lora_base ? (s->merged ? ", other weights shared with the base model"
                                              : ", base weights shared with the base model")
                                 : "");
}
