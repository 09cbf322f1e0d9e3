/* Single-file checkpoints: which family a file is and where each component's tensors live, from
 * tensor names and shapes only (LDM / sgm key layouts). See model_dir.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model_dir.h"

static int has_prefix(const tdm_safetensors *f, const char *prefix) {
    size_t n = strlen(prefix);
    /* entries are sorted by name: binary search for the first name >= prefix */
    int lo = 0, hi = f->n_entries;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(f->entries[mid].name, prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->n_entries && strncmp(f->entries[lo].name, prefix, n) == 0;
}

/* First entry under prefix whose name ends with suffix. */
static const tdm_st_entry *find_suffix(const tdm_safetensors *f, const char *prefix, const char *suffix) {
    size_t np = strlen(prefix), ns = strlen(suffix);
    for (int i = 0; i < f->n_entries; i++) {
        const char *n = f->entries[i].name;
        size_t len = strlen(n);
        if (strncmp(n, prefix, np) == 0 && len >= np + ns && strcmp(n + len - ns, suffix) == 0) return &f->entries[i];
    }
    return NULL;
}

/* Population standard deviation of a small float tensor; -1 when it cannot be read. */
static double tensor_std(const tdm_safetensors *f, const tdm_st_entry *e) {
    tdm_tensor t = tdm_st_view(f, e);
    int64_t n = tdm_tensor_numel(&t);
    if (n < 1 || n > (1 << 20) || !tdm_dtype_is_float(t.dtype)) return -1;
    float *v = malloc((size_t)n * sizeof *v);
    /* safetensors does not promise aligned data: widen from an aligned copy */
    size_t bytes = (size_t)n * tdm_dtype_size(t.dtype);
    void *copy = malloc(bytes);
    if (!v || !copy) {
        free(v);
        free(copy);
        return -1;
    }
    memcpy(copy, t.data, bytes);
    t.data = copy;
    double sd = -1;
    if (tdm_tensor_to_f32(&t, v, NULL) == TDM_OK) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++) mean += v[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) var += ((double)v[i] - mean) * ((double)v[i] - mean);
        sd = sqrt(var / (double)n);
        if (!isfinite(sd)) sd = -1;
    }
    free(copy);
    free(v);
    return sd;
}

/* Explains what a file without LDM UNet names is, when it is recognisable. */
static tdm_code not_a_checkpoint(const tdm_safetensors *f, tdm_status *st) {
    const char *what = NULL;
    if (tdm_st_find(f, "conv_in.weight") && tdm_st_find(f, "time_embedding.linear_1.weight"))
        what = "it holds a diffusers UNet (unet/diffusion_pytorch_model.safetensors): give the pipeline folder that "
               "holds model_index.json instead";
    else if (tdm_st_find(f, "encoder.conv_in.weight") && tdm_st_find(f, "decoder.conv_in.weight"))
        what = "it holds a VAE only (standalone VAE files are not a whole model)";
    else if (tdm_st_find(f, "text_model.embeddings.token_embedding.weight"))
        what = "it holds a text encoder only (transformers CLIPTextModel)";
    else if (f->n_entries > 0 && (strstr(f->entries[0].name, "lora") || find_suffix(f, "", ".lora_A.weight") ||
                                  find_suffix(f, "", ".lora_down.weight")))
        what = "it looks like a LoRA file (it adapts a model, it is not one)";
    else if (has_prefix(f, "double_blocks.") || has_prefix(f, "joint_blocks.") ||
             has_prefix(f, "model.diffusion_model.joint_blocks.") || has_prefix(f, "transformer_blocks."))
        what = "it looks like an SD3 / Flux transformer checkpoint (not supported)";
    return tdm_fail(st, TDM_ERR_FORMAT,
                    "%s: not a Stable Diffusion single-file checkpoint: no model.diffusion_model.* UNet tensors%s%s",
                    f->path, what ? "; " : "", what ? what : "");
}

/* SDXL single files (sgm layout, sd_xl_base_1.0.safetensors / sd_xl_refiner_1.0.safetensors):
 *   base:    conditioner.embedders.0.transformer.text_model.* (CLIP ViT-L/14, transformers names, 768)
 *            conditioner.embedders.1.model.* (OpenCLIP ViT-bigG/14 + text_projection, 1280); context
 *            768 + 1280 = 2048
 *   refiner: conditioner.embedders.0.model.* (OpenCLIP ViT-bigG/14 only); context 1280.
 * The family follows the UNet's cross-attention width; the text towers' widths must add up to it. */
static tdm_code detect_sdxl(const tdm_safetensors *f, tdm_single_file_info *info, const tdm_st_entry *to_k,
                            tdm_status *st) {
    const int ctx = info->context_dim;
    if (info->text_encoder_kind != TDM_TE_NONE)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: a cond_stage_model.* text encoder (%s) with a %d-wide UNet ('%s'): not a known model "
                        "family (SD1.x has 768, SD2.x 1024; SDXL files use conditioner.embedders.*)",
                        f->path, info->text_encoder_prefix, ctx, to_k->name);
    const char *p1 = "conditioner.embedders.0.transformer.";
    const tdm_st_entry *tok1 = tdm_st_find_prefixed(f, p1, "text_model.embeddings.token_embedding.weight");
    const tdm_st_entry *tok2 = tdm_st_find(f, "conditioner.embedders.1.model.token_embedding.weight");
    const tdm_st_entry *tok2r = tdm_st_find(f, "conditioner.embedders.0.model.token_embedding.weight");
    if (tok1 || tok2) {
        info->family = TDM_FAMILY_SDXL;
        if (tok2) snprintf(info->text_encoder_2_prefix, sizeof info->text_encoder_2_prefix, "conditioner.embedders.1.model.");
    } else if (tok2r) {
        info->family = TDM_FAMILY_SDXL_REFINER;
        tok2 = tok2r;
        snprintf(info->text_encoder_2_prefix, sizeof info->text_encoder_2_prefix, "conditioner.embedders.0.model.");
    } else if (ctx == 2048 || ctx == 1280) {
        info->family = ctx == 2048 ? TDM_FAMILY_SDXL : TDM_FAMILY_SDXL_REFINER; /* a file without text encoders */
    } else {
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: unknown model family: conditioner.embedders.* (SDXL layout) without a known text encoder "
                        "and a cross-attention width of %d ('%s'); SDXL has 2048, the SDXL refiner 1280",
                        f->path, ctx, to_k->name);
    }
    if (tok1) {
        info->text_encoder_kind = TDM_TE_HF_CLIP;
        snprintf(info->text_encoder_prefix, sizeof info->text_encoder_prefix, "%s", p1);
    }
    int64_t w1 = tok1 ? (tok1->ndim == 2 ? tok1->shape[1] : -1) : 0;
    int64_t w2 = tok2 ? (tok2->ndim == 2 ? tok2->shape[1] : -1) : 0;
    if (w1 < 0 || w2 < 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' must have 2 dims", f->path, (w1 < 0 ? tok1 : tok2)->name);
    if (tok1 && !tok2)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: SDXL file with the CLIP ViT-L text encoder ('%s') but without the OpenCLIP ViT-bigG one "
                        "(conditioner.embedders.1.model.*)",
                        f->path, tok1->name);
    if (tok2 && w1 + w2 != ctx) {
        char widths[1200];
        if (tok1)
            snprintf(widths, sizeof widths, "widths %lld ('%s') + %lld ('%s')", (long long)w1, tok1->name,
                     (long long)w2, tok2->name);
        else snprintf(widths, sizeof widths, "width %lld ('%s')", (long long)w2, tok2->name);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: text encoder %s do not match the UNet cross-attention width %d ('%s')",
                        f->path, widths, ctx, to_k->name);
    }
    return TDM_OK;
}

tdm_code tdm_single_file_detect(const tdm_safetensors *f, tdm_single_file_info *info, tdm_status *st) {
    memset(info, 0, sizeof *info);
    info->v_stat = -1;
    const char *up = "model.diffusion_model.";
    const tdm_st_entry *conv_in = tdm_st_find_prefixed(f, up, "input_blocks.0.0.weight");
    if (!conv_in) return not_a_checkpoint(f, st);
    snprintf(info->unet_prefix, sizeof info->unet_prefix, "%s", up);
    if (conv_in->ndim != 4)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' must have 4 dims (conv kernel)", f->path, conv_in->name);
    info->in_channels = (int)conv_in->shape[1];
    const tdm_st_entry *to_k = find_suffix(f, up, "attn2.to_k.weight");
    if (!to_k || to_k->ndim != 2)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: no cross-attention key projection (%s...attn2.to_k.weight, 2 dims)",
                        f->path, up);
    info->context_dim = (int)to_k->shape[1];
    const tdm_st_entry *proj_in = find_suffix(f, up, ".proj_in.weight");
    info->linear_proj_in = proj_in && proj_in->ndim == 2;

    /* VAE */
    if (tdm_st_find(f, "first_stage_model.decoder.conv_in.weight") ||
        tdm_st_find(f, "first_stage_model.encoder.conv_in.weight"))
        snprintf(info->vae_prefix, sizeof info->vae_prefix, "first_stage_model.");

    /* text encoder and family */
    const tdm_st_entry *tok = NULL;
    int sgm = has_prefix(f, "conditioner.embedders.");
    if ((tok = tdm_st_find(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"))) {
        info->text_encoder_kind = TDM_TE_HF_CLIP;
        snprintf(info->text_encoder_prefix, sizeof info->text_encoder_prefix, "cond_stage_model.transformer.");
    } else if ((tok = tdm_st_find(f, "cond_stage_model.transformer.embeddings.token_embedding.weight"))) {
        info->text_encoder_kind = TDM_TE_HF_CLIP;
        info->text_model_prefix_missing = 1;
        snprintf(info->text_encoder_prefix, sizeof info->text_encoder_prefix, "cond_stage_model.transformer.");
    } else if ((tok = tdm_st_find(f, "cond_stage_model.model.token_embedding.weight"))) {
        info->text_encoder_kind = TDM_TE_OPEN_CLIP;
        snprintf(info->text_encoder_prefix, sizeof info->text_encoder_prefix, "cond_stage_model.model.");
    } else if (sgm && info->context_dim == 1024 &&
               (tok = tdm_st_find(f, "conditioner.embedders.0.model.token_embedding.weight"))) {
        /* SD2 saved in the sgm (SDXL codebase) layout */
        info->text_encoder_kind = TDM_TE_OPEN_CLIP;
        snprintf(info->text_encoder_prefix, sizeof info->text_encoder_prefix, "conditioner.embedders.0.model.");
        sgm = 0;
    }
    if (sgm || info->context_dim == 2048 || info->context_dim == 1280) return detect_sdxl(f, info, to_k, st);
    if (info->context_dim == 768) info->family = TDM_FAMILY_SD1;
    else if (info->context_dim == 1024) info->family = TDM_FAMILY_SD2;
    else
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: unknown model family: cross-attention width %d ('%s'); SD1.x has 768, SD2.x 1024",
                        f->path, info->context_dim, to_k->name);
    if (tok) {
        int64_t width = tok->ndim == 2 ? tok->shape[1] : -1;
        if (width != info->context_dim)
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: text encoder width %lld ('%s') does not match the UNet cross-attention width %d ('%s')",
                            f->path, (long long)width, tok->name, info->context_dim, to_k->name);
        if (info->family == TDM_FAMILY_SD1 && info->text_encoder_kind != TDM_TE_HF_CLIP)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: SD1.x UNet with an OpenCLIP text encoder ('%s')", f->path,
                            tok->name);
    }
    /* SD2 v-prediction: weights cannot say for sure; ComfyUI's heuristic (non-inpainting SD2 only). */
    if (info->family == TDM_FAMILY_SD2 && info->in_channels == 4) {
        const tdm_st_entry *nb = tdm_st_find_prefixed(f, up, "output_blocks.11.1.transformer_blocks.0.norm1.bias");
        if (nb) info->v_stat = tensor_std(f, nb);
        info->v_prediction_guess = info->v_stat > 0.09;
    }
    return TDM_OK;
}
