/* `tandem check` for the kinds "imagereward-*" (imagereward-tiny, imagereward-shapes): loads
 * model/ (config.json, med_config.json, model.safetensors; vocab from config "tokenizer.vocab"), then
 * compares the tokenizer output (input_ids, attention_mask, exact), the preprocessing intermediates
 * (image_resized_u8_k / image_cropped_u8_k exact, pixel_values), the vision tower (image_embeds, run
 * on the reference pixel_values), the text tower for every (prompt, image) pair
 * (text_last_hidden_state, text_cls), the head (head_raw) and reward, and finally reward again
 * end to end from the raw images through tdm_imagereward_score_batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image_ops.h"
#include "models/imagereward.h"
#include "pipeline/check.h"
#include "pipeline/check_preprocessing.h"

#define MAX_IMAGES 64
#define MAX_PROMPTS 64

typedef struct ir_run {
    tdm_imagereward m;
    int n_img, n_prompt, L;
    tdm_image raw[MAX_IMAGES];
    int32_t *ids, *mask; /* [P, L] */
    const char *prompts[MAX_PROMPTS];
    int have_text, have_raw; /* case.json inputs.prompts / io image_raw_k present */
} ir_run;

static tdm_code load_ids(tdm_check *c, const char *name, int P, int L, int32_t **out, tdm_status *st) {
    float *v;
    tdm_tensor t;
    TDM_TRY(tdm_check_input(c, name, &v, &t, st));
    tdm_code rc = TDM_OK;
    if (t.ndim != 2 || t.shape[0] != P || t.shape[1] != L)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: expected [%d, %d]", name, P, L);
    *out = rc ? NULL : malloc(sizeof(int32_t) * (size_t)P * L);
    if (!rc && !*out) rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < P * L; i++) (*out)[i] = (int32_t)v[i];
    free(v);
    return rc;
}

/* Tokenizes the prompts and compares with input_ids / attention_mask. */
static void check_tokens(tdm_check *c, ir_run *r) {
    if (!r->m.tok) {
        tdm_check_line(c, "INFO no vocab.txt found: input_ids taken from io.safetensors, tokenizer not compared");
        return;
    }
    int ok_ids = 1, ok_mask = 1;
    char detail[256] = "";
    for (int p = 0; p < r->n_prompt; p++) {
        int32_t ids[512], mask[512];
        tdm_status es;
        if (tdm_bert_encode(r->m.tok, r->prompts[p], strlen(r->prompts[p]), r->L, ids, mask, NULL, NULL, &es)) {
            ok_ids = ok_mask = 0;
            snprintf(detail, sizeof detail, "prompt %d: %.200s", p, es.msg);
            continue;
        }
        for (int i = 0; i < r->L; i++) {
            if (ids[i] != r->ids[p * r->L + i] && ok_ids) {
                ok_ids = 0;
                snprintf(detail, sizeof detail, "prompt %d position %d: got %d, expected %d", p, i, ids[i],
                         r->ids[p * r->L + i]);
            }
            if (mask[i] != r->mask[p * r->L + i]) ok_mask = 0;
        }
    }
    tdm_check_exact(c, "input_ids (tokenizer)", ok_ids, ok_ids ? "exact" : detail);
    tdm_check_exact(c, "attention_mask (tokenizer)", ok_mask, ok_mask ? "exact" : detail);
}

static tdm_code check_preprocess(tdm_check *c, ir_run *r, tdm_status *st) {
    const int S = r->m.cfg.image_size;
    const size_t per = (size_t)3 * S * S;
    float *pix = malloc(sizeof(float) * per * (size_t)r->n_img); /* [N, 3, S, S] */
    if (!pix) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    tdm_code rc = TDM_OK;
    for (int k = 0; !rc && k < r->n_img; k++) {
        tdm_image rs, cr;
        rc = tdm_preprocess_oracle(&r->raw[k], S, TDM_CROP_TORCHVISION, r->m.cfg.mean, r->m.cfg.std, pix + k * per, &rs,
                                   &cr, st);
        if (rc) break;
        char name[64];
        snprintf(name, sizeof name, "image_resized_u8_%d", k);
        if (tdm_st_find(&c->io, name)) rc = tdm_check_image_exact(c, name, &rs, st);
        snprintf(name, sizeof name, "image_cropped_u8_%d", k);
        if (!rc && tdm_st_find(&c->io, name)) rc = tdm_check_image_exact(c, name, &cr, st);
        tdm_image_free(&rs);
        tdm_image_free(&cr);
    }
    if (!rc) rc = tdm_check_compare(c, "pixel_values", pix, (int64_t)per * r->n_img, st);
    free(pix);
    return rc;
}

static tdm_code check_model(tdm_check *c, ir_run *r, tdm_status *st) {
    const tdm_imagereward_config *cfg = &r->m.cfg;
    const int N = r->n_img, P = r->n_prompt, L = r->L, T = tdm_imagereward_image_tokens(&r->m);
    const int64_t H = cfg->hidden, Dv = cfg->vit_width;
    float *pix;
    tdm_tensor pt;
    TDM_TRY(tdm_check_input(c, "pixel_values", &pix, &pt, st));
    float *emb = malloc(sizeof(float) * (size_t)N * T * Dv);     /* [N, T, Dv] */
    float *hid = malloc(sizeof(float) * (size_t)P * N * L * H);  /* [P, N, L, H] */
    float *cls = malloc(sizeof(float) * (size_t)P * N * H);      /* [P, N, H] */
    float *raw = malloc(sizeof(float) * (size_t)P * N);          /* [P, N] */
    float *rew = malloc(sizeof(float) * (size_t)P * N);          /* [P, N] */
    tdm_code rc = emb && hid && cls && raw && rew ? TDM_OK : tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    if (!rc && tdm_tensor_numel(&pt) != (int64_t)N * 3 * cfg->image_size * cfg->image_size)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "pixel_values: expected [%d, 3, %d, %d]", N, cfg->image_size, cfg->image_size);
    if (!rc) rc = tdm_imagereward_encode_image(&r->m, &c->ex, pix, N, emb, st);
    if (!rc) rc = tdm_check_compare(c, "image_embeds", emb, (int64_t)N * T * Dv, st);
    for (int p = 0; !rc && p < P; p++)
        rc = tdm_imagereward_encode_text(&r->m, &c->ex, r->ids + p * L, r->mask + p * L, L, emb, N,
                                         hid + (size_t)p * N * L * H, st);
    if (!rc) rc = tdm_check_compare(c, "text_last_hidden_state", hid, (int64_t)P * N * L * H, st);
    for (int i = 0; !rc && i < P * N; i++) memcpy(cls + (size_t)i * H, hid + (size_t)i * L * H, sizeof(float) * H);
    if (!rc) rc = tdm_check_compare(c, "text_cls", cls, (int64_t)P * N * H, st);
    if (!rc) rc = tdm_imagereward_head(&r->m, &c->ex, cls, P * N, raw, st);
    if (!rc) rc = tdm_check_compare(c, "head_raw", raw, (int64_t)P * N, st);
    for (int i = 0; !rc && i < P * N; i++) rew[i] = tdm_imagereward_normalize(&r->m, raw[i]);
    if (!rc) rc = tdm_check_compare(c, "reward", rew, (int64_t)P * N, st);
    /* end to end: prompt text + raw image -> reward */
    if (!rc && r->m.tok && r->have_text && r->have_raw) {
        for (int p = 0; !rc && p < P; p++)
            rc = tdm_imagereward_score_batch(&r->m, &c->ex, r->prompts[p], r->raw, N, rew + (size_t)p * N, st);
        if (!rc) {
            tdm_check_line(c, "end to end (tdm_imagereward_score_batch from the prompts and image_raw_k):");
            rc = tdm_check_compare(c, "reward", rew, (int64_t)P * N, st);
        }
        for (int p = 0; !rc && p < P; p++) {
            char line[512];
            int n = snprintf(line, sizeof line, "INFO prompt %d rewards:", p);
            for (int k = 0; k < N && n < (int)sizeof line - 16; k++) n += snprintf(line + n, sizeof line - n, " %.6f", rew[p * N + k]);
            tdm_check_line(c, "%s", line);
        }
    }
    free(pix);
    free(emb);
    free(hid);
    free(cls);
    free(raw);
    free(rew);
    return rc;
}

tdm_code tdm_check_imagereward(tdm_check *c, tdm_status *st) {
    ir_run *r = calloc(1, sizeof *r);
    if (!r) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
    char dir[4096];
    tdm_code rc = tdm_imagereward_load(&r->m, tdm_check_path(c, "model", dir, sizeof dir), st);
    if (rc) {
        free(r);
        return rc;
    }
    r->L = r->m.cfg.max_length;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(c->case_json, "inputs");
    const cJSON *prompts = cJSON_IsObject(inputs) ? cJSON_GetObjectItemCaseSensitive(inputs, "prompts") : NULL;
    const cJSON *e;
    if (prompts && !cJSON_IsArray(prompts))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "case.json: inputs.prompts must be an array of strings");
    cJSON_ArrayForEach(e, prompts) {
        if (rc) break;
        if (!cJSON_IsString(e) || r->n_prompt >= MAX_PROMPTS) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "case.json: inputs.prompts must be up to %d strings", MAX_PROMPTS);
            break;
        }
        r->prompts[r->n_prompt++] = e->valuestring;
    }
    for (int k = 0; !rc && k < MAX_IMAGES; k++) {
        char name[64];
        snprintf(name, sizeof name, "image_raw_%d", k);
        if (!tdm_st_find(&c->io, name)) break;
        rc = tdm_check_load_rgb8(c, name, &r->raw[k], st);
        if (!rc) r->n_img++;
    }
    /* Fixtures without the prompt texts / raw images (model-only, e.g. imagereward-shapes): the counts
     * come from input_ids [P, L] and pixel_values [N, 3, S, S]; tokenizer, preprocessing and the end to
     * end score are then not compared. */
    const tdm_st_entry *ids_e = c->io.map ? tdm_st_find(&c->io, "input_ids") : NULL;
    const tdm_st_entry *pix_e = c->io.map ? tdm_st_find(&c->io, "pixel_values") : NULL;
    if (!rc && r->n_prompt == 0) {
        if (!ids_e || ids_e->ndim != 2 || ids_e->shape[0] < 1 || ids_e->shape[0] > MAX_PROMPTS)
            rc = tdm_fail(st, TDM_ERR_FORMAT,
                          "case.json: inputs.prompts is missing and io.safetensors input_ids is not [P <= %d, L]",
                          MAX_PROMPTS);
        else r->n_prompt = (int)ids_e->shape[0];
    }
    r->have_text = r->n_prompt > 0 && r->prompts[0] != NULL;
    if (!rc && r->n_img == 0) {
        if (!pix_e || pix_e->ndim != 4 || pix_e->shape[0] < 1 || pix_e->shape[0] > MAX_IMAGES)
            rc = tdm_fail(st, TDM_ERR_MISSING, "io.safetensors: no image_raw_0 and no pixel_values [N <= %d, 3, S, S]",
                          MAX_IMAGES);
        else r->n_img = (int)pix_e->shape[0];
    } else if (!rc) {
        r->have_raw = 1;
    }
    if (!rc) rc = load_ids(c, "input_ids", r->n_prompt, r->L, &r->ids, st);
    if (!rc) rc = load_ids(c, "attention_mask", r->n_prompt, r->L, &r->mask, st);
    if (!rc) {
        tdm_check_line(c, "model: ViT %d/%d width %d depth %d, BERT hidden %d layers %d, head %d-%d-%d-%d-%d-%d; "
                          "%d prompts x %d images",
                       r->m.cfg.image_size, r->m.cfg.patch_size, r->m.cfg.vit_width, r->m.cfg.vit_depth,
                       r->m.cfg.hidden, r->m.cfg.layers, r->m.cfg.mlp_dims[0], r->m.cfg.mlp_dims[1],
                       r->m.cfg.mlp_dims[2], r->m.cfg.mlp_dims[3], r->m.cfg.mlp_dims[4], r->m.cfg.mlp_dims[5],
                       r->n_prompt, r->n_img);
        if (r->have_text) check_tokens(c, r);
        else
            tdm_check_line(c, "INFO case.json has no inputs.prompts: input_ids taken from io.safetensors, tokenizer "
                              "not compared");
        if (r->have_raw) rc = check_preprocess(c, r, st);
        else
            tdm_check_line(c, "INFO no image_raw_k: pixel_values taken from io.safetensors, preprocessing not "
                              "compared");
    }
    if (!rc) rc = check_model(c, r, st);
    for (int k = 0; k < r->n_img; k++) tdm_image_free(&r->raw[k]);
    free(r->ids);
    free(r->mask);
    tdm_imagereward_free(&r->m);
    free(r);
    return rc;
}
