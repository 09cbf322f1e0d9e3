/* Tokenizer lookup (explicit folder, pipeline tokenizer/, Hugging Face cache) and per-family
 * scheduler defaults. See model_dir.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "io/model_dir.h"

int tdm_family_default_pad_id(tdm_model_family f) {
    /* SD1.x pads with <|endoftext|> (openai CLIP tokenizer); SD2.x with "!" = id 0 (OpenCLIP) */
    /* SDXL: tokenizer (CLIP ViT-L) pads with <|endoftext|>, tokenizer_2 (the refiner's only one) with "!" */
    return f == TDM_FAMILY_SD2 || f == TDM_FAMILY_SDXL_REFINER ? 0 : 49407;
}

static int has_tokenizer_files(const char *dir) {
    char p[TDM_PATH_MAX];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    if (!tdm_path_is_file(p)) return 0;
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    return tdm_path_is_file(p);
}

/* pad_token from a tokenizer JSON: a string, or {"content": string} (AddedToken). */
static int read_pad_token(const char *path, char *buf, size_t n) {
    if (!tdm_path_is_file(path)) return 0;
    cJSON *j = NULL;
    if (tdm_json_load(path, &j, NULL) != TDM_OK) return 0;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pad_token");
    if (cJSON_IsObject(p)) p = cJSON_GetObjectItemCaseSensitive(p, "content");
    int ok = cJSON_IsString(p) && strlen(p->valuestring) < n;
    if (ok) snprintf(buf, n, "%s", p->valuestring);
    cJSON_Delete(j);
    return ok;
}

static tdm_code fill(tdm_tokenizer_files *out, const char *dir, const char *source, tdm_status *st) {
    memset(out, 0, sizeof *out);
    if (strlen(dir) >= sizeof out->dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: path too long", dir);
    snprintf(out->dir, sizeof out->dir, "%s", dir);
    TDM_TRY(tdm_path_join(out->vocab_path, sizeof out->vocab_path, dir, "vocab.json", st));
    TDM_TRY(tdm_path_join(out->merges_path, sizeof out->merges_path, dir, "merges.txt", st));
    snprintf(out->source, sizeof out->source, "%s", source);
    out->pad_id = -1;
    char p[TDM_PATH_MAX];
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    int have = read_pad_token(p, out->pad_token, sizeof out->pad_token);
    if (!have) {
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        have = read_pad_token(p, out->pad_token, sizeof out->pad_token);
    }
    if (!have) return TDM_OK;
    /* pad_id here is only the conventional id of the two well-known pad tokens (openai CLIP and OpenCLIP
     * vocabularies), kept for callers that do not load the vocabulary. A tokenizer with its own
     * vocabulary (the shapes world's 627 ids) numbers them differently: the model loader
     * (pipeline/sd_model.c resolve_pad_id) looks pad_token up in the loaded vocab.json, which is
     * what counts for encoding. */
    if (strcmp(out->pad_token, "<|endoftext|>") == 0) out->pad_id = 49407;
    else if (strcmp(out->pad_token, "!") == 0) out->pad_id = 0;
    else {
        /* another pad token: its id from vocab.json */
        cJSON *v = NULL;
        if (tdm_json_load(out->vocab_path, &v, NULL) == TDM_OK) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, out->pad_token);
            if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 1e7) out->pad_id = (int)id->valuedouble;
            cJSON_Delete(v);
        }
        if (out->pad_id < 0)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: pad token '%s' is not in vocab.json", dir, out->pad_token);
    }
    return TDM_OK;
}

/* Hub cache roots in the order huggingface_hub uses them. n_roots returned. */
static int cache_roots(char roots[4][TDM_PATH_MAX]) {
    int n = 0;
    const char *e;
    if ((e = getenv("HF_HUB_CACHE")) && *e) snprintf(roots[n++], TDM_PATH_MAX, "%s", e);
    else if ((e = getenv("HUGGINGFACE_HUB_CACHE")) && *e) snprintf(roots[n++], TDM_PATH_MAX, "%s", e);
    else if ((e = getenv("HF_HOME")) && *e) snprintf(roots[n++], TDM_PATH_MAX, "%s/hub", e);
    else if ((e = getenv("XDG_CACHE_HOME")) && *e) snprintf(roots[n++], TDM_PATH_MAX, "%s/huggingface/hub", e);
    else if ((e = getenv("HOME")) && *e) snprintf(roots[n++], TDM_PATH_MAX, "%s/.cache/huggingface/hub", e);
    return n;
}

typedef struct {
    const char *repo, *subdir;
} hub_repo;

static const hub_repo sd1_repos[] = {
    {"openai/clip-vit-large-patch14", ""},
    {"stable-diffusion-v1-5/stable-diffusion-v1-5", "tokenizer"},
    {"runwayml/stable-diffusion-v1-5", "tokenizer"},
    {"CompVis/stable-diffusion-v1-4", "tokenizer"},
    {NULL, NULL},
};
/* SDXL: tokenizer and tokenizer_2 hold the same vocab.json / merges.txt (the CLIP ViT-L BPE); the pad
 * tokens differ (the loader sets them by family) */
static const hub_repo sdxl_repos[] = {
    {"stabilityai/stable-diffusion-xl-base-1.0", "tokenizer"},
    {"stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2"},
    {"stabilityai/sdxl-turbo", "tokenizer"},
    {"openai/clip-vit-large-patch14", ""},
    {NULL, NULL},
};
static const hub_repo sdxl_refiner_repos[] = {
    {"stabilityai/stable-diffusion-xl-refiner-1.0", "tokenizer_2"},
    {"stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2"},
    {NULL, NULL},
};
static const hub_repo sd2_repos[] = {
    {"stabilityai/stable-diffusion-2-1", "tokenizer"},
    {"stabilityai/stable-diffusion-2-1-base", "tokenizer"},
    {"stabilityai/stable-diffusion-2", "tokenizer"},
    {"stabilityai/stable-diffusion-2-base", "tokenizer"},
    {"laion/CLIP-ViT-H-14-laion2B-s32B-b79K", ""},
    {NULL, NULL},
};

tdm_code tdm_tokenizer_find(tdm_model_family family, const char *explicit_dir, const char *pipeline_dir,
                            tdm_tokenizer_files *out, tdm_status *st) {
    char p[TDM_PATH_MAX], src[TDM_PATH_MAX + 64];
    memset(out, 0, sizeof *out);
    if (explicit_dir && *explicit_dir) {
        if (has_tokenizer_files(explicit_dir)) {
            snprintf(src, sizeof src, "--tokenizer %s", explicit_dir);
            return fill(out, explicit_dir, src, st);
        }
        snprintf(p, sizeof p, "%s/tokenizer", explicit_dir);
        if (has_tokenizer_files(p)) {
            snprintf(src, sizeof src, "--tokenizer %s", explicit_dir);
            return fill(out, p, src, st);
        }
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: tokenizer folder holds no vocab.json + merges.txt (nor a tokenizer/ subfolder with them)",
                        explicit_dir);
    }
    if (pipeline_dir && *pipeline_dir) {
        snprintf(p, sizeof p, "%s/tokenizer", pipeline_dir);
        if (has_tokenizer_files(p)) return fill(out, p, p, st);
        if (family == TDM_FAMILY_SDXL || family == TDM_FAMILY_SDXL_REFINER) { /* the refiner has tokenizer_2 only */
            snprintf(p, sizeof p, "%s/tokenizer_2", pipeline_dir);
            if (has_tokenizer_files(p)) return fill(out, p, p, st);
            snprintf(p, sizeof p, "%s/tokenizer", pipeline_dir);
        }
        /* else: the Hugging Face cache below, for the known families */
        if (family == TDM_FAMILY_UNKNOWN)
            return tdm_fail(st, TDM_ERR_MISSING,
                            "%s: vocab.json and merges.txt are missing (the pipeline's tokenizer); give --tokenizer DIR",
                            p);
    }
    const hub_repo *repos = family == TDM_FAMILY_SD1             ? sd1_repos
                            : family == TDM_FAMILY_SD2           ? sd2_repos
                            : family == TDM_FAMILY_SDXL          ? sdxl_repos
                            : family == TDM_FAMILY_SDXL_REFINER ? sdxl_refiner_repos
                                                                 : NULL;
    char roots[4][TDM_PATH_MAX];
    int n_roots = cache_roots(roots);
    for (int r = 0; repos && r < n_roots; r++)
        for (int i = 0; repos[i].repo; i++) {
            char repo_dir[TDM_PATH_MAX], snap[TDM_PATH_MAX];
            char folded[256] = "models--"; /* org/name -> models--org--name */
            size_t k = strlen(folded);
            for (const char *c = repos[i].repo; *c && k + 3 < sizeof folded; c++) {
                if (*c == '/') folded[k++] = '-';
                folded[k++] = *c == '/' ? '-' : *c;
            }
            folded[k] = 0;
            int w = snprintf(repo_dir, sizeof repo_dir, "%s/%s", roots[r], folded);
            if (w < 0 || (size_t)w >= sizeof repo_dir) continue;
            if (tdm_hf_snapshot(repo_dir, repos[i].subdir, has_tokenizer_files, snap, sizeof snap)) {
                snprintf(src, sizeof src, "Hugging Face cache: %s%s%s", repos[i].repo, repos[i].subdir[0] ? "/" : "",
                         repos[i].subdir);
                return fill(out, snap, src, st);
            }
        }
    const char *where = n_roots ? roots[0] : "~/.cache/huggingface/hub (HOME is not set)";
    if (family == TDM_FAMILY_SD2)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "no tokenizer for this SD2.x model: give --tokenizer DIR, a folder holding vocab.json and "
                        "merges.txt of the OpenCLIP tokenizer (the tokenizer/ folder of stabilityai/"
                        "stable-diffusion-2-1 on huggingface.co, or laion/CLIP-ViT-H-14-laion2B-s32B-b79K); "
                        "looked in the Hugging Face cache %s",
                        where);
    if (family == TDM_FAMILY_SDXL || family == TDM_FAMILY_SDXL_REFINER)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "no tokenizer for this SDXL%s model: give --tokenizer DIR, a folder holding vocab.json and "
                        "merges.txt of the CLIP tokenizer (the tokenizer/ or tokenizer_2/ folder of "
                        "stabilityai/stable-diffusion-xl-base-1.0 on huggingface.co, or openai/clip-vit-large-patch14); "
                        "looked in the Hugging Face cache %s",
                        family == TDM_FAMILY_SDXL_REFINER ? " refiner" : "", where);
    if (family == TDM_FAMILY_SD1)
        return tdm_fail(st, TDM_ERR_MISSING,
                        "no tokenizer for this SD1.x model: give --tokenizer DIR, a folder holding vocab.json and "
                        "merges.txt of the CLIP ViT-L/14 tokenizer (from openai/clip-vit-large-patch14 on "
                        "huggingface.co, or the tokenizer/ folder of stable-diffusion-v1-5/stable-diffusion-v1-5); "
                        "looked in the Hugging Face cache %s",
                        where);
    return tdm_fail(st, TDM_ERR_MISSING, "no tokenizer: give --tokenizer DIR (a folder with vocab.json and merges.txt)");
}

cJSON *tdm_default_scheduler_config(tdm_model_family family, const char *prediction) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    /* runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1 and stabilityai/stable-diffusion-xl-base-1.0
     * (and -refiner-1.0) scheduler_config.json */
    const int xl = family == TDM_FAMILY_SDXL || family == TDM_FAMILY_SDXL_REFINER;
    const char *cls = xl ? "EulerDiscreteScheduler" : family == TDM_FAMILY_SD2 ? "DDIMScheduler" : "PNDMScheduler";
    int ok = cJSON_AddStringToObject(j, "_class_name", cls) &&
             cJSON_AddNumberToObject(j, "num_train_timesteps", 1000) &&
             cJSON_AddNumberToObject(j, "beta_start", 0.00085) && cJSON_AddNumberToObject(j, "beta_end", 0.012) &&
             cJSON_AddStringToObject(j, "beta_schedule", "scaled_linear") &&
             cJSON_AddNullToObject(j, "trained_betas") && cJSON_AddFalseToObject(j, "clip_sample") &&
             cJSON_AddFalseToObject(j, "set_alpha_to_one") && cJSON_AddTrueToObject(j, "skip_prk_steps") &&
             cJSON_AddNumberToObject(j, "steps_offset", 1) &&
             cJSON_AddStringToObject(j, "timestep_spacing", "leading") &&
             cJSON_AddStringToObject(j, "prediction_type", prediction && *prediction ? prediction : "epsilon") &&
             (!xl || (cJSON_AddStringToObject(j, "interpolation_type", "linear") &&
                      cJSON_AddFalseToObject(j, "use_karras_sigmas")));
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

tdm_code tdm_tokenizer_files_in(const char *dir, const char *source, tdm_tokenizer_files *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    out->pad_id = -1;
    if (!has_tokenizer_files(dir))
        return tdm_fail(st, TDM_ERR_MISSING, "%s: vocab.json and merges.txt are missing", dir);
    return fill(out, dir, source ? source : dir, st);
}
