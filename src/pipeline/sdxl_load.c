/* SDXL base / refiner: the text side of the loaders and the width checks (sdxl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/clip_tokenizer.h"
#include "pipeline/sdxl.h"

int tdm_sdxl_family(tdm_model_family f) { return f == TDM_FAMILY_SDXL || f == TDM_FAMILY_SDXL_REFINER; }

/* Prefixes the message with `where` when it does not name it already. Returns rc. */
static tdm_code with_where(tdm_code rc, tdm_status *st, const char *where) {
    if (rc && st && where && !strstr(st->msg, where)) tdm_fail_context(st, "%s", where);
    return rc;
}

/* ---- diffusers folders ------------------------------------------------------------------------- */

tdm_code tdm_sdxl_detect_dir(tdm_sd_model *m, const tdm_model_dir *md, const tdm_unet_config *ucfg, int *is_xl,
                             tdm_status *st) {
    const int has_te2 = tdm_model_dir_find(md, "text_encoder_2") != NULL;
    const int text_time = ucfg && ucfg->addition_text_time;
    *is_xl = has_te2 || text_time;
    if (!*is_xl) return TDM_OK;
    char mi[TDM_PATH_MAX + 32];
    snprintf(mi, sizeof mi, "%s/model_index.json", md->root);
    if (!has_te2)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: the UNet is an SDXL UNet (addition_embed_type text_time) but model_index.json lists no "
                        "text_encoder_2 (SDXL conditions on the OpenCLIP ViT-bigG text_encoder_2 with projection)",
                        mi);
    if (ucfg && !text_time)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: an SDXL pipeline (text_encoder_2) whose UNet has no addition_embed_type 'text_time'", mi);
    m->family = tdm_model_dir_find(md, "text_encoder") ? TDM_FAMILY_SDXL : TDM_FAMILY_SDXL_REFINER;
    m->clip_skip = 2;     /* hidden_states[-2] */
    m->clip_final_ln = 0; /* raw, no final_layer_norm */
    /* diffusers StableDiffusionXL(Img2Img)Pipeline.__init__ defaults: force_zeros_for_empty_prompt True,
     * requires_aesthetics_score False; the published refiner sets them to false / true */
    cJSON *j = NULL;
    TDM_TRY(tdm_json_load(mi, &j, st));
    int fz = 1, ra = -1;
    tdm_code rc = tdm_json_bool(j, "force_zeros_for_empty_prompt", mi, 1, 1, &fz, st);
    if (!rc) rc = tdm_json_bool(j, "requires_aesthetics_score", mi, 1, -1, &ra, st);
    cJSON_Delete(j);
    TDM_TRY(rc);
    m->force_zeros_for_empty_prompt = fz;
    m->requires_aesthetics_score = ra; /* -1: not stated (tdm_sdxl_finish decides from the UNet) */
    return TDM_OK;
}

static tdm_code load_te(tdm_clip_text **out, const tdm_component_files *c, const char *what, int need_projection,
                        tdm_status *st) {
    tdm_clip_text_config cfg;
    TDM_TRY(tdm_clip_text_config_load(c->config_path, &cfg, st));
    tdm_weights ws;
    tdm_weights_init(&ws, what);
    tdm_code rc = tdm_component_add_weights(c, &ws, tdm_clip_text_mapper_for(&cfg), NULL, st);
    if (!rc) rc = tdm_weights_finish(&ws, st);
    if (rc) {
        tdm_weights_free(&ws);
        return rc;
    }
    TDM_TRY(with_where(tdm_clip_text_load(out, &cfg, &ws, st), st, c->weight_files[0]));
    if (need_projection && !(*out)->has_projection)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: %s has no text_projection.weight (SDXL needs CLIPTextModelWithProjection: its projected "
                        "pooled output is the UNet's text_embeds)",
                        c->weight_files[0], what);
    return TDM_OK;
}

/* Pad id of `token` in tok's vocabulary; fallback when tok is NULL (components without a tokenizer). */
static tdm_code pad_of(const tdm_clip_tokenizer *tok, const char *token, int fallback, const char *vocab_path,
                       int *out, tdm_status *st) {
    if (!tok) {
        *out = fallback;
        return TDM_OK;
    }
    int id = tdm_clip_token_id(tok, token);
    if (id < 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: pad token '%s' is not in vocab.json (%d tokens)", vocab_path, token,
                        tdm_clip_vocab_size(tok));
    *out = id;
    return TDM_OK;
}

/* Pad ids and split token. Base: tokenizer pads with its stated pad token (default "<|endoftext|>"),
 * tokenizer_2 (or, without its own files, the same vocabulary) with its stated one (default "!").
 * Refiner: its one tokenizer is tokenizer_2. stated2: tokenizer_2's stated pad token ("" = not stated). */
static tdm_code set_pads(tdm_sd_model *m, const char *stated1, const char *stated2, tdm_status *st) {
    const char *t1 = stated1 && *stated1 ? stated1 : "<|endoftext|>";
    const char *t2 = stated2 && *stated2 ? stated2 : "!";
    if (m->family == TDM_FAMILY_SDXL) TDM_TRY(pad_of(m->tokenizer, t1, 49407, m->tokenizer_files.vocab_path, &m->pad_id, st));
    const tdm_clip_tokenizer *tok2 = m->tokenizer_2 ? m->tokenizer_2 : m->tokenizer;
    const char *vocab2 = m->tokenizer_2 ? m->tokenizer_2_files.vocab_path : m->tokenizer_files.vocab_path;
    TDM_TRY(pad_of(tok2, t2, strcmp(t2, "!") == 0 ? 0 : 49407, vocab2, &m->pad_id_2, st));
    /* transformers CLIPTokenizer.from_pretrained makes the pad token a no-split token: with "!" every
     * literal '!' of the prompt becomes id 0 (the special tokens are cut out anyway) */
    snprintf(m->split_token_2, sizeof m->split_token_2, "%s", strlen(t2) < sizeof m->split_token_2 ? t2 : "");
    if (m->family == TDM_FAMILY_SDXL_REFINER) m->pad_id = m->pad_id_2;
    return TDM_OK;
}

tdm_code tdm_sdxl_load_dir_text(tdm_sd_model *m, const tdm_model_dir *md, const tdm_sd_load_opts *o, unsigned want,
                                tdm_status *st) {
    const tdm_component_files *c;
    const int base = m->family == TDM_FAMILY_SDXL;
    if (want & TDM_SD_TEXT_ENCODER) {
        if (base) {
            TDM_TRY(tdm_model_dir_need(md, "text_encoder", 1, &c, st));
            TDM_TRY(load_te(&m->text_encoder, c, "text_encoder", 0, st));
        }
        TDM_TRY(tdm_model_dir_need(md, "text_encoder_2", 1, &c, st));
        TDM_TRY(load_te(&m->text_encoder_2, c, "text_encoder_2", 1, st));
        m->loaded |= TDM_SD_TEXT_ENCODER;
    }
    char stated1[32] = "", stated2[32] = "";
    if (want & TDM_SD_TOKENIZER) {
        /* tokenizer/ (base) or tokenizer_2/ (refiner), --tokenizer, or the Hugging Face cache */
        TDM_TRY(tdm_tokenizer_find(m->family, o->tokenizer_dir, o->tokenizer_dir ? NULL : md->root, &m->tokenizer_files,
                                   st));
        TDM_TRY(tdm_clip_tokenizer_load_files(&m->tokenizer, m->tokenizer_files.vocab_path,
                                              m->tokenizer_files.merges_path, m->tokenizer_files.dir, st));
        m->loaded |= TDM_SD_TOKENIZER;
        const char *d1 = m->tokenizer_files.dir;
        size_t l1 = strlen(d1);
        const int found_tok2 = l1 >= 12 && strcmp(d1 + l1 - 12, "/tokenizer_2") == 0;
        if (found_tok2 || !base) {
            snprintf(stated2, sizeof stated2, "%s", m->tokenizer_files.pad_token);
        } else {
            snprintf(stated1, sizeof stated1, "%s", m->tokenizer_files.pad_token);
        }
        if (base && !found_tok2 && !o->tokenizer_dir) {
            char d2[TDM_PATH_MAX];
            TDM_TRY(tdm_path_join(d2, sizeof d2, md->root, "tokenizer_2", st));
            if (tdm_tokenizer_files_in(d2, d2, &m->tokenizer_2_files, NULL) == TDM_OK) {
                TDM_TRY(tdm_clip_tokenizer_load_files(&m->tokenizer_2, m->tokenizer_2_files.vocab_path,
                                                      m->tokenizer_2_files.merges_path, m->tokenizer_2_files.dir, st));
                snprintf(stated2, sizeof stated2, "%s", m->tokenizer_2_files.pad_token);
            }
        }
    }
    return set_pads(m, stated1, stated2, st);
}

/* ---- single files ------------------------------------------------------------------------------ */

tdm_code tdm_sdxl_load_single_text(tdm_sd_model *m, const tdm_sd_load_opts *o, unsigned want, tdm_status *st) {
    const tdm_safetensors *f = &m->single;
    const tdm_single_file_info *in = &m->single_info;
    m->clip_skip = 2;
    m->clip_final_ln = 0;
    /* sd_xl_base_1.0 / sd_xl_refiner_1.0 as their published diffusers folders configure them */
    m->force_zeros_for_empty_prompt = m->family == TDM_FAMILY_SDXL;
    m->requires_aesthetics_score = -1; /* from the UNet */
    if (want & TDM_SD_TEXT_ENCODER) {
        if (m->family == TDM_FAMILY_SDXL && in->text_encoder_kind != TDM_TE_HF_CLIP)
            return tdm_fail(st, TDM_ERR_MISSING,
                            "%s: no CLIP ViT-L text encoder in this SDXL file (conditioner.embedders.0.transformer."
                            "text_model.*)",
                            f->path);
        if (!in->text_encoder_2_prefix[0])
            return tdm_fail(st, TDM_ERR_MISSING,
                            "%s: no OpenCLIP ViT-bigG text encoder in this SDXL file (conditioner.embedders.%s.model.*)",
                            f->path, m->family == TDM_FAMILY_SDXL ? "1" : "0");
        if (m->family == TDM_FAMILY_SDXL) {
            tdm_clip_text_config cfg;
            TDM_TRY(tdm_clip_text_config_infer(f, in->text_encoder_prefix, 0, &cfg, st));
            tdm_weights ws;
            tdm_weights_init(&ws, "text_encoder");
            tdm_code rc = tdm_weights_add_opened(&ws, f, in->text_encoder_prefix, tdm_clip_text_hf_mapper, NULL, st);
            if (!rc) rc = tdm_weights_finish(&ws, st);
            if (rc) {
                tdm_weights_free(&ws);
                return rc;
            }
            TDM_TRY(with_where(tdm_clip_text_load(&m->text_encoder, &cfg, &ws, st), st, f->path));
        }
        tdm_clip_text_config cfg2;
        TDM_TRY(tdm_clip_text_config_infer(f, in->text_encoder_2_prefix, 1, &cfg2, st));
        /* every resblock (SDXL conditions on the penultimate state of all 32), projection kept (transposed) */
        tdm_clip_openclip_map oc = {cfg2.num_hidden_layers, 1};
        tdm_weights ws;
        tdm_weights_init(&ws, "text_encoder_2");
        tdm_code rc = tdm_weights_add_opened(&ws, f, in->text_encoder_2_prefix, tdm_clip_text_openclip_mapper, &oc, st);
        if (!rc) rc = tdm_weights_finish(&ws, st);
        if (rc) {
            tdm_weights_free(&ws);
            return rc;
        }
        TDM_TRY(with_where(tdm_clip_text_load(&m->text_encoder_2, &cfg2, &ws, st), st, f->path));
        if (!m->text_encoder_2->has_projection)
            return tdm_fail(st, TDM_ERR_MISSING, "%s: tensor '%stext_projection' is missing (SDXL's pooled text_embeds)",
                            f->path, in->text_encoder_2_prefix);
        m->loaded |= TDM_SD_TEXT_ENCODER;
    }
    if (want & TDM_SD_TOKENIZER) {
        TDM_TRY(tdm_tokenizer_find(m->family, o->tokenizer_dir, NULL, &m->tokenizer_files, st));
        TDM_TRY(tdm_clip_tokenizer_load_files(&m->tokenizer, m->tokenizer_files.vocab_path,
                                              m->tokenizer_files.merges_path, m->tokenizer_files.dir, st));
        m->loaded |= TDM_SD_TOKENIZER;
    }
    /* the training-time padding of each tower, whatever folder supplied the vocabulary */
    return set_pads(m, NULL, NULL, st);
}

/* ---- checks ------------------------------------------------------------------------------------ */

int tdm_text_towers(const tdm_sd_model *m, tdm_text_tower towers[2]) {
    int n = 0;
    if (m->text_encoder) {
        towers[n].tokenizer = m->tokenizer;
        towers[n].encoder = m->text_encoder;
        towers[n].pad_id = m->pad_id;
        towers[n].split_token = NULL;
        n++;
    }
    if (m->text_encoder_2) {
        towers[n].tokenizer = m->tokenizer_2 ? m->tokenizer_2 : m->tokenizer;
        towers[n].encoder = m->text_encoder_2;
        towers[n].pad_id = m->pad_id_2;
        towers[n].split_token = m->split_token_2[0] ? m->split_token_2 : NULL;
        n++;
    }
    return n;
}

int tdm_text_context_width(const tdm_sd_model *m) {
    return (m->text_encoder ? m->text_encoder->cfg.hidden_size : 0) +
           (m->text_encoder_2 ? m->text_encoder_2->cfg.hidden_size : 0);
}

tdm_code tdm_sdxl_finish(tdm_sd_model *m, tdm_status *st) {
    const char *where = m->source[0] ? m->source : "model";
    const int w1 = m->text_encoder ? m->text_encoder->cfg.hidden_size : 0;
    const int w2 = m->text_encoder_2 ? m->text_encoder_2->cfg.hidden_size : 0;
    if (m->text_encoder_2) m->text_embeds_dim = m->text_encoder_2->cfg.projection_dim;
    if (m->unet) {
        const tdm_unet_config *uc = tdm_unet_get_config(m->unet);
        m->cross_attention_dim = uc->cross_attention_dim;
        if (!uc->addition_text_time)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: SDXL model whose UNet has no text_time embedding", where);
        if (m->text_encoder_2 && w1 + w2 != uc->cross_attention_dim) {
            if (m->text_encoder)
                return tdm_fail(st, TDM_ERR_FORMAT,
                                "%s: text_encoder hidden_size %d + text_encoder_2 hidden_size %d = %d does not match the "
                                "UNet's cross_attention_dim %d",
                                where, w1, w2, w1 + w2, uc->cross_attention_dim);
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: text_encoder_2 hidden_size %d does not match the UNet's cross_attention_dim %d (an SDXL "
                            "refiner conditions on text_encoder_2 only)",
                            where, w2, uc->cross_attention_dim);
        }
        const int P = uc->projection_class_embeddings_input_dim, ad = uc->addition_time_embed_dim;
        if (m->text_encoder_2) {
            const int rest = P - m->text_embeds_dim;
            if (ad < 1 || rest <= 0 || rest % ad != 0 || (rest / ad != 5 && rest / ad != 6))
                return tdm_fail(st, TDM_ERR_FORMAT,
                                "%s: the UNet's projection_class_embeddings_input_dim %d is not text_encoder_2's "
                                "projection_dim %d + 6 (base) or 5 (refiner) time ids x addition_time_embed_dim %d",
                                where, P, m->text_embeds_dim, ad);
            m->n_time_ids = rest / ad;
        } else if (ad >= 1 && P % ad == 0) {
            /* no text encoder loaded: guess from the published widths (pooled 1280) */
            m->n_time_ids = (P - 1280) / ad == 5 ? 5 : 6;
        }
        if (m->n_time_ids && m->requires_aesthetics_score >= 0 && m->requires_aesthetics_score != (m->n_time_ids == 5))
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: model_index.json requires_aesthetics_score is %s but the UNet takes %d time ids (%s)",
                            where, m->requires_aesthetics_score ? "true" : "false", m->n_time_ids,
                            m->n_time_ids == 5 ? "refiner: with the aesthetic score" : "base: with the target size");
        if (m->n_time_ids) m->requires_aesthetics_score = m->n_time_ids == 5;
    }
    if (m->requires_aesthetics_score < 0) m->requires_aesthetics_score = m->family == TDM_FAMILY_SDXL_REFINER;
    return TDM_OK;
}

void tdm_sdxl_time_ids(const tdm_sd_model *m, const tdm_gen_plan *plan, int negative, float *out) {
    /* diffusers _get_add_time_ids: list(original_size + crops_coords_top_left + target_size) or
     * (+ aesthetic_score) with sizes as (height, width) */
    out[0] = (float)plan->original_height;
    out[1] = (float)plan->original_width;
    out[2] = (float)plan->crop_top;
    out[3] = (float)plan->crop_left;
    if (m->n_time_ids == 5) {
        out[4] = negative ? plan->negative_aesthetic_score : plan->aesthetic_score;
    } else {
        out[4] = (float)plan->target_height;
        out[5] = (float)plan->target_width;
    }
}
