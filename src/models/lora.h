/* LoRA (low-rank adaptation) files for the UNet and the CLIP text encoder (docs/LORA.md).
 *
 * A LoRA module adapts one Linear or Conv2d weight W [out, in(, kh, kw)] of a base model with two small
 * matrices, down (A) [r, in(, kh, kw)] and up (B) [out, r(, 1, 1)], and a scalar alpha:
 *   y = W x + b + scale * (alpha / r) * up(down(x))
 * (diffusers LoRACompatibleLinear / LoRACompatibleConv, kohya sd-scripts networks/lora.py): for a conv
 * target, down is a conv with the base conv's kernel, stride and padding and up a 1x1 conv. The same
 * adaptation merged into the weight (diffusers fuse_lora):
 *   W' = W + scale * (alpha / r) * (up.flatten(1) @ down.flatten(1)).reshape(W.shape)
 *
 * Key styles read (one file may mix components, not styles of one module):
 *   kohya (LCM-LoRA release, sd-scripts): lora_unet_<module path, '.' -> '_'>.{lora_down.weight,
 *       lora_up.weight, alpha}; lora_te_<...> for the text encoder (lora_te1_ / lora_te2_: SDXL's two).
 *       The flattened path is resolved by converting every weight name of the model to the kohya form
 *       and looking it up (never by guessing where the dots were).
 *   diffusers / PEFT: unet.<module>.lora_A.weight / lora_B.weight (text_encoder.<module>... for the text
 *       encoder); no alpha stored = alpha is the rank (factor 1); an optional <module>.alpha is honoured.
 *   older diffusers: unet.<module>.lora.down.weight / lora.up.weight, and attention-processor files
 *       (<attn>.processor.to_{q,k,v,out}_lora.{down,up}.weight -> <attn>.to_q ... to_out.0).
 *
 * Use: tdm_lora_open parses a file; tdm_lora_bind resolves its modules (for one component) against the
 * component's weight store with per-file scales, giving a tdm_lora_set: the targets, keyed by the base
 * weight's data pointer. A set is applied at run time (the UNet calls tdm_lora_linear_add /
 * tdm_lora_conv_add after each targeted operator: the base weights are never copied), or merged into a
 * new weight store (tdm_lora_merge_store: views of the base weights, owned merged copies of only the
 * targeted tensors). Sets borrow the tdm_lora objects (and those their mapped files): free sets first. */
#ifndef TDM_MODELS_LORA_H
#define TDM_MODELS_LORA_H

#include <stdint.h>

#include "base/arena.h"
#include "base/error.h"
#include "io/weights.h"
#include "tensor/ops.h"

/* Component a LoRA module belongs to. */
typedef enum tdm_lora_component {
    TDM_LORA_UNET = 0,
    TDM_LORA_TEXT_ENCODER,   /* lora_te_ / lora_te1_ / text_encoder. */
    TDM_LORA_TEXT_ENCODER_2, /* lora_te2_ / text_encoder_2. (SDXL) */
    TDM_LORA_N_COMPONENTS
} tdm_lora_component;

const char *tdm_lora_component_name(tdm_lora_component c); /* "unet", "text_encoder", "text_encoder_2" */

typedef enum tdm_lora_style { TDM_LORA_STYLE_KOHYA = 0, TDM_LORA_STYLE_DIFFUSERS } tdm_lora_style;

/* One module of a file. */
typedef struct tdm_lora_module {
    tdm_lora_component comp;
    tdm_lora_style style;
    char *key;      /* module key as in the file, without the suffix (for messages), e.g.
                       "lora_unet_down_blocks_0_resnets_0_conv1" or "unet.down_blocks.0.resnets.0.conv1" */
    char *path;     /* diffusers style: the dotted module path inside the component; kohya: the flattened
                       path after the component prefix (resolved by tdm_lora_bind) */
    tdm_tensor down, up; /* views (aligned) into the file: [r, in(, kh, kw)], [out, r(, 1, 1)] */
    int rank;
    float alpha;    /* = rank when the file stores none */
    int has_alpha;
} tdm_lora_module;

typedef struct tdm_lora {
    char path[1024];
    tdm_weights ws; /* the file's tensors (owned) */
    tdm_lora_module *m;
    int n;
    int n_comp[TDM_LORA_N_COMPONENTS]; /* modules per component */
    /* LCM-LoRA detection (docs/LORA.md "LCM-LoRA defaults"), set by tdm_lora_open */
    char kind[32];        /* the file's __metadata__ "tandem.kind" ("" when absent; longer values cut) */
    int is_lcm;           /* 1: an LCM-LoRA (models derived with it get the LCM defaults) */
    const char *lcm_rule; /* what decided is_lcm: "metadata", "file name", "folder name", "hub repo name";
                             NULL when not an LCM-LoRA (static strings) */
} tdm_lora;

/* Parses a LoRA .safetensors file. A key that is not a LoRA key of a known style, a module with a
 * down but no up (or the reverse), ranks that differ between down and up, a non-scalar alpha or an
 * unsupported variant (LoHa, LoKr, DoRA, CP-decomposed "lora_mid") is an error naming the key. */
tdm_code tdm_lora_open(tdm_lora **out, const char *path, tdm_status *st);
void tdm_lora_free(tdm_lora *l);

/* LCM-LoRA rule (docs/LORA.md): a file whose safetensors __metadata__ has "tandem.kind" is an LCM-LoRA
 * iff that value is "lcm-lora" (the metadata wins over the name); without it, iff the name rule holds. */
#define TDM_LORA_KIND_LCM "lcm-lora"
/* The name rule: "lcm" (any case) in the file's base name or in its folder's name; for a file in a
 * Hugging Face cache snapshot (<models--org--name>/snapshots/<revision>/<file>) the repo folder's name
 * counts as the folder's. Returns "file name", "folder name" or "hub repo name" (static), or NULL. */
const char *tdm_lora_name_lcm_rule(const char *path);

/* ---- sets bound to one component ------------------------------------------------------------- */

typedef struct tdm_lora_delta {
    tdm_tensor down_mat; /* [r, in*kh*kw] (the down weight viewed 2-D) */
    tdm_tensor down_conv; /* [r, in, kh, kw] (conv targets; 1x1 for Linear-as-conv) */
    tdm_tensor up_mat;   /* [out, r] */
    tdm_tensor up_conv;  /* [out, r, 1, 1] */
    float factor;        /* scale * alpha / rank */
} tdm_lora_delta;

typedef struct tdm_lora_target {
    const void *key;     /* data pointer of the base weight (what the model's tdm_tensor views) */
    const char *name;    /* base weight name, e.g. "down_blocks.0.resnets.0.conv1.weight" (the store's) */
    tdm_tensor base;     /* the base weight view */
    int n;
    tdm_lora_delta *d;   /* [n]: one per LoRA file adapting this weight */
    int64_t out, in;     /* base rows, base columns (in*kh*kw) */
    int kh, kw;          /* 1 for Linear */
} tdm_lora_target;

typedef struct tdm_lora_set {
    tdm_lora_component comp;
    tdm_lora_target *t; /* sorted by key */
    int n;
    int64_t lora_params;   /* down + up elements bound */
    int64_t target_params; /* elements of the targeted base weights */
} tdm_lora_set;

/* Binds the modules of component `comp` of the n files (scales[i]: the user's scale of file i; any
 * finite value) to the weights in ws (a finished store with canonical names: the component's model
 * store). A module naming no weight is an error naming its key (and how many of the file's modules do
 * not fit: a LoRA for another model), a module whose shapes do not fit the weight names both shapes.
 * A file without modules for comp contributes nothing. */
tdm_code tdm_lora_bind(tdm_lora_set **out, const tdm_weights *ws, tdm_lora_component comp, tdm_lora *const *loras,
                       const float *scales, int n, tdm_status *st);
void tdm_lora_set_free(tdm_lora_set *s);

/* The target adapting the weight w (by data pointer), or NULL (also when s is NULL). */
const tdm_lora_target *tdm_lora_find(const tdm_lora_set *s, const tdm_tensor *w);

/* Run-time application after the base operator (y already holds its output):
 * Linear: y [M, out] += sum_d factor_d * (x [M, K] down_d^T) up_d^T; K must be the target's `in`. */
tdm_code tdm_lora_linear_add(const tdm_lora_target *t, const tdm_exec *ex, tdm_arena *a, const float *x, int64_t M,
                             int64_t K, float *y);
/* Conv: y [N, out, Ho, Wo] += sum_d factor_d * conv1x1(up_d, conv(down_d, x', stride, pad)); x' is x
 * with `pre` applied as tdm_conv2d_pre does (NULL: x itself). */
tdm_code tdm_lora_conv_add(const tdm_lora_target *t, const tdm_exec *ex, tdm_arena *a, const float *x, int64_t N,
                           int64_t Cin, int64_t H, int64_t W, int stride, int pad, const tdm_conv_pre *pre, float *y);

/* Merge: *out becomes a finished store (label `what`) with a view of every tensor of base and, for each
 * target of s (may be NULL: plain views), an owned merged copy W' (in the base weight's dtype; computed
 * in f32). base (and its files) must outlive *out; entries keep base's used flags cleared. */
tdm_code tdm_lora_merge_store(const tdm_weights *base, const tdm_lora_set *s, const char *what, tdm_weights *out,
                              tdm_status *st);

#endif
