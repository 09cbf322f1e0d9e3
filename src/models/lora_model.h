/* LoRA applied to whole models (docs/LORA.md): a UNet that shares a base UNet's weights and applies a
 * LoRA set at run time (or carries merged copies of only the targeted tensors), a text encoder with a
 * LoRA merged, and the stack of LoRA files a loaded model keeps. */
#ifndef TDM_MODELS_LORA_MODEL_H
#define TDM_MODELS_LORA_MODEL_H

#include "models/clip_text.h"
#include "models/lora.h"
#include "models/unet.h"

/* The weight store of a UNet (canonical diffusers names): what tdm_lora_bind resolves UNet LoRAs against. */
const tdm_weights *tdm_unet_weights(const tdm_unet *u);
/* The run-time LoRA set of a UNet (NULL: none). */
const tdm_lora_set *tdm_unet_lora(const tdm_unet *u);

/* A new UNet over base's weights (no weight is copied; the structure is rebuilt from views):
 *   merge 0: s (bound to base's store, may be NULL) is applied at run time; s is borrowed and must
 *            outlive *out;
 *   merge 1: the targets of s are merged into owned copies (in their dtype); s may be freed after.
 * base must outlive *out (free *out first). */
tdm_code tdm_unet_with_lora(const tdm_unet *base, const tdm_lora_set *s, int merge, tdm_unet **out, tdm_status *st);

/* A new text encoder over base's weights with the targets of s merged into owned copies (the CLIP text
 * model has no run-time hook). base must outlive *out. */
tdm_code tdm_clip_text_with_lora(const tdm_clip_text *base, const tdm_lora_set *s, tdm_clip_text **out,
                                 tdm_status *st);

/* The LoRA files applied to one model and what they need kept alive. */
typedef struct tdm_lora_stack {
    int n;
    tdm_lora **files;       /* [n], owned */
    float *scales;          /* [n] */
    int merged;             /* 1: UNet merged at load, 0: run-time */
    tdm_lora_set *unet_set; /* run-time set of the adapted UNet (owned; NULL when merged / no UNet modules) */
    tdm_unet *base_unet;    /* the base the adapted UNet views: owned when the stack replaced its owner's UNet */
    tdm_clip_text *base_te; /* same for the text encoder (merged) */
    int64_t unet_lora_params, unet_target_params, te_lora_params;
    int n_unet_targets, n_te_targets;
} tdm_lora_stack;

/* Opens specs[0..n) and adapts *unet (run-time unless merge) and *te (merged; only when a file has
 * text-encoder modules), either may be NULL. The adapted models replace *unet / *te; with own_base the
 * stack takes the original models (freed by tdm_lora_stack_free), else they stay the caller's (they must
 * outlive the adapted ones). A file with modules for a component that is not given (or SDXL's second text
 * encoder) is an error naming the file. On failure *unet / *te are unchanged. */
tdm_code tdm_lora_stack_apply(tdm_lora_stack **out, const tdm_lora_spec *specs, int n, int merge, tdm_unet **unet,
                              tdm_clip_text **te, int own_base, tdm_status *st);
/* Frees the stack (after the adapted models it serves). */
void tdm_lora_stack_free(tdm_lora_stack *s);

#endif
