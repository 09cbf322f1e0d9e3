/* diffusers pipeline folders: model_index.json, per-component config and weight files, fp16
 * variants and sharded weights (index files). See model_dir.h. */
#include "io/model_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"

int tdm_path_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int tdm_path_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

tdm_code tdm_path_join(char *buf, size_t n, const char *a, const char *b, tdm_status *st) {
    size_t la = strlen(a);
    int sep = la > 0 && a[la - 1] != '/';
    int w = snprintf(buf, n, "%s%s%s", a, sep ? "/" : "", b);
    if (w < 0 || (size_t)w >= n) return tdm_fail(st, TDM_ERR_INVALID_ARG, "path too long: %s/%s", a, b);
    return TDM_OK;
}

const char *tdm_family_name(tdm_model_family f) {
    switch (f) {
    case TDM_FAMILY_SD1: return "sd1";
    case TDM_FAMILY_SD2: return "sd2";
    case TDM_FAMILY_SDXL: return "sdxl";
    case TDM_FAMILY_SDXL_REFINER: return "sdxl-refiner";
    default: return "unknown";
    }
}

/* ---- Hugging Face cache repo folders ---------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A hub cache repo folder (models--org--name) holds refs/main (the snapshot hash) and
 * snapshots/<hash>/. Resolves `repo` into its snapshot: refs/main when it names an existing snapshot
 * that satisfies want(dir) (NULL = any), else the first snapshot (by name) that does. 0 if none. */
int tdm_hf_snapshot(const char *repo, const char *subdir, int (*want)(const char *dir), char *out, size_t n) {
    char p[TDM_PATH_MAX], hash[128] = "";
    snprintf(p, sizeof p, "%s/refs/main", repo);
    FILE *f = fopen(p, "r");
    if (f) {
        if (fgets(hash, sizeof hash, f)) hash[strcspn(hash, " \r\n")] = 0;
        fclose(f);
    }
    if (hash[0] && !strchr(hash, '/') && hash[0] != '.') {
        int w = snprintf(out, n, "%s/snapshots/%s%s%s", repo, hash, subdir[0] ? "/" : "", subdir);
        if (w > 0 && (size_t)w < n && tdm_path_is_dir(out) && (!want || want(out))) return 1;
    }
    snprintf(p, sizeof p, "%s/snapshots", repo);
    DIR *d = opendir(p);
    if (!d) return 0;
    char **names = NULL;
    int cnt = 0, cap = 0, found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            char **q = realloc(names, (size_t)cap * sizeof *q);
            if (!q) break;
            names = q;
        }
        if (!(names[cnt] = strdup(de->d_name))) break;
        cnt++;
    }
    closedir(d);
    if (cnt > 1) qsort(names, (size_t)cnt, sizeof *names, cmp_str);
    for (int i = 0; i < cnt && !found; i++) {
        int w = snprintf(out, n, "%s/snapshots/%s%s%s", repo, names[i], subdir[0] ? "/" : "", subdir);
        found = w > 0 && (size_t)w < n && tdm_path_is_dir(out) && (!want || want(out));
    }
    for (int i = 0; i < cnt; i++) free(names[i]);
    free(names);
    return found;
}

static int has_model_index(const char *dir) {
    char p[TDM_PATH_MAX];
    snprintf(p, sizeof p, "%s/model_index.json", dir);
    return tdm_path_is_file(p);
}

/* ---- weight file lookup inside one component folder ------------------------------------------- */

static tdm_code add_weight_file(tdm_component_files *c, const char *path, tdm_status *st) {
    char **p = realloc(c->weight_files, (size_t)(c->n_weight_files + 1) * sizeof *p);
    if (!p) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", c->dir);
    c->weight_files = p;
    if (!(p[c->n_weight_files] = strdup(path))) return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", c->dir);
    c->n_weight_files++;
    return TDM_OK;
}

static void clear_weight_files(tdm_component_files *c) {
    for (int i = 0; i < c->n_weight_files; i++) free(c->weight_files[i]);
    free(c->weight_files);
    c->weight_files = NULL;
    c->n_weight_files = 0;
}

/* A shard name from an index must be a plain file name in the same folder (no path traversal). */
static int shard_name_ok(const char *s) {
    size_t n = strlen(s);
    return n > 12 && n < 256 && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') &&
           strcmp(s + n - 12, ".safetensors") == 0;
}

/* Reads a sharded index ({"weight_map": {tensor: shard}}) and lists its distinct shards (sorted),
 * each of which must exist next to the index. */
static tdm_code read_shard_index(tdm_component_files *c, const char *index_path, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(index_path, &j, st));
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    tdm_code rc = TDM_OK;
    char **shards = NULL;
    int n = 0;
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: 'weight_map' is missing, empty or not an object", index_path);
        goto done;
    }
    int total = cJSON_GetArraySize(wm);
    shards = calloc((size_t)total, sizeof *shards);
    if (!shards) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT,
                          "%s: weight_map['%s'] must name a .safetensors file in the same folder", index_path,
                          e->string);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = strcmp(shards[i], e->valuestring) == 0;
        if (!seen) {
            if (n == TDM_MAX_SHARDS) {
                rc = tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than %d shards", index_path, TDM_MAX_SHARDS);
                goto done;
            }
            shards[n++] = e->valuestring;
        }
    }
    qsort(shards, (size_t)n, sizeof *shards, cmp_str);
    for (int i = 0; i < n && rc == TDM_OK; i++) {
        char p[TDM_PATH_MAX];
        rc = tdm_path_join(p, sizeof p, c->dir, shards[i], st);
        if (rc == TDM_OK && !tdm_path_is_file(p))
            rc = tdm_fail(st, TDM_ERR_MISSING, "%s: shard '%s' listed in the index is missing (%s)", index_path,
                          shards[i], p);
        if (rc == TDM_OK) rc = add_weight_file(c, p, st);
    }
    if (rc == TDM_OK) snprintf(c->index_path, sizeof c->index_path, "%s", index_path);
done:
    free(shards);
    cJSON_Delete(j);
    if (rc) clear_weight_files(c);
    return rc;
}

/* Tries base[.variant].safetensors, then base.safetensors.index[.variant].json. 1 found, 0 not, <0 error. */
static int try_weights(tdm_component_files *c, const char *base, const char *variant, tdm_status *st) {
    char name[256], p[TDM_PATH_MAX];
    snprintf(name, sizeof name, "%s%s%s.safetensors", base, variant[0] ? "." : "", variant);
    if (tdm_path_join(p, sizeof p, c->dir, name, st)) return -1;
    if (tdm_path_is_file(p)) return add_weight_file(c, p, st) ? -1 : 1;
    snprintf(name, sizeof name, "%s.safetensors.index%s%s.json", base, variant[0] ? "." : "", variant);
    if (tdm_path_join(p, sizeof p, c->dir, name, st)) return -1;
    if (tdm_path_is_file(p)) return read_shard_index(c, p, st) ? -1 : 1;
    return 0;
}

/* Pickle weights that diffusers / transformers save when safetensors is off. */
static void find_pickle(tdm_component_files *c) {
    static const char *const names[] = {"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin",
                                        "pytorch_model.bin", "pytorch_model.fp16.bin",
                                        "diffusion_pytorch_model.bin.index.json", "pytorch_model.bin.index.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[TDM_PATH_MAX];
        int w = snprintf(p, sizeof p, "%s/%s", c->dir, names[i]);
        if (w > 0 && (size_t)w < sizeof p && tdm_path_is_file(p)) {
            snprintf(c->pickle_path, sizeof c->pickle_path, "%s", p);
            return;
        }
    }
}

static tdm_code locate_weights(tdm_component_files *c, int prefer_fp16, tdm_status *st) {
    static const char *const bases[] = {"diffusion_pytorch_model", "model"};
    const char *order[2] = {prefer_fp16 ? "fp16" : "", prefer_fp16 ? "" : "fp16"};
    for (int v = 0; v < 2; v++)
        for (int b = 0; b < 2; b++) {
            int r = try_weights(c, bases[b], order[v], st);
            if (r < 0) return st ? st->code : TDM_ERR_INTERNAL;
            if (r > 0) {
                c->has_weights = 1;
                c->is_fp16_variant = order[v][0] != 0;
                return TDM_OK;
            }
        }
    find_pickle(c);
    return TDM_OK;
}

/* ---- model_index.json ------------------------------------------------------------------------- */

static tdm_code add_component(tdm_model_dir *md, const char *name, const cJSON *v, const char *index_path,
                              const tdm_model_dir_opts *opts, tdm_status *st) {
    const cJSON *lib = cJSON_GetArrayItem(v, 0), *cls = cJSON_GetArrayItem(v, 1);
    if (cJSON_GetArraySize(v) != 2 || !(cJSON_IsString(lib) || cJSON_IsNull(lib)) ||
        !(cJSON_IsString(cls) || cJSON_IsNull(cls)))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: '%s' must be [library, class name] (strings or null)", index_path,
                        name);
    if (cJSON_IsNull(lib) && cJSON_IsNull(cls)) return TDM_OK; /* e.g. "safety_checker": [null, null] */
    if (strlen(name) >= sizeof md->comp[0].name || name[0] == '.' || strchr(name, '/'))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: component name '%.64s' is not a folder name", index_path, name);
    if (md->n_comp == TDM_MAX_COMPONENTS)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: more than %d components", index_path, TDM_MAX_COMPONENTS);
    tdm_component_files *c = &md->comp[md->n_comp++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (cJSON_IsString(lib)) snprintf(c->library, sizeof c->library, "%.63s", lib->valuestring);
    if (cJSON_IsString(cls)) snprintf(c->class_name, sizeof c->class_name, "%.127s", cls->valuestring);
    TDM_TRY(tdm_path_join(c->dir, sizeof c->dir, md->root, name, st));
    if (!tdm_path_is_dir(c->dir)) return TDM_OK; /* reported by tdm_model_dir_need when needed */
    const char *cfg = strcmp(name, "scheduler") == 0 ? "scheduler_config.json"
                      : strncmp(name, "tokenizer", 9) == 0 ? "tokenizer_config.json"
                                                           : "config.json";
    TDM_TRY(tdm_path_join(c->config_path, sizeof c->config_path, c->dir, cfg, st));
    c->has_config = tdm_path_is_file(c->config_path);
    if (!c->has_config) c->config_path[0] = 0;
    /* Only model components (config.json) carry weights. */
    if (c->has_config && strcmp(cfg, "config.json") == 0) TDM_TRY(locate_weights(c, opts && opts->prefer_fp16, st));
    return TDM_OK;
}

tdm_code tdm_model_dir_open(tdm_model_dir *md, const char *path, const tdm_model_dir_opts *opts, tdm_status *st) {
    memset(md, 0, sizeof *md);
    if (!path || !*path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "model path is empty");
    if (!tdm_path_is_dir(path)) return tdm_fail(st, TDM_ERR_IO, "%s: not a folder", path);
    if (has_model_index(path)) {
        if (strlen(path) >= sizeof md->root) return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: path too long", path);
        snprintf(md->root, sizeof md->root, "%s", path);
    } else if (!tdm_hf_snapshot(path, "", has_model_index, md->root, sizeof md->root)) {
        char p[TDM_PATH_MAX];
        snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", path);
        int component = tdm_path_is_file(p);
        snprintf(p, sizeof p, "%s/config.json", path);
        component |= tdm_path_is_file(p);
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: no model_index.json: not a diffusers pipeline folder%s (a single-file checkpoint is "
                        "given as the .safetensors file itself)",
                        path, component ? "; this looks like one component folder: give its parent, the folder "
                                          "holding model_index.json" : "");
    }
    char index_path[TDM_PATH_MAX];
    TDM_TRY(tdm_path_join(index_path, sizeof index_path, md->root, "model_index.json", st));
    cJSON *j;
    TDM_TRY(tdm_json_load(index_path, &j, st));
    tdm_code rc = tdm_json_str(j, "_class_name", index_path, 1, "", md->pipeline_class, sizeof md->pipeline_class, st);
    const cJSON *item;
    cJSON_ArrayForEach(item, j) {
        if (rc) break;
        if (item->string[0] == '_' || !cJSON_IsArray(item)) continue; /* metadata, requires_safety_checker */
        rc = add_component(md, item->string, item, index_path, opts, st);
    }
    cJSON_Delete(j);
    if (rc == TDM_OK && md->n_comp == 0)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: lists no components", index_path);
    if (rc) tdm_model_dir_free(md);
    return rc;
}

void tdm_model_dir_free(tdm_model_dir *md) {
    for (int i = 0; i < md->n_comp; i++) clear_weight_files(&md->comp[i]);
    md->n_comp = 0;
}

const tdm_component_files *tdm_model_dir_find(const tdm_model_dir *md, const char *name) {
    for (int i = 0; i < md->n_comp; i++)
        if (strcmp(md->comp[i].name, name) == 0) return &md->comp[i];
    return NULL;
}

tdm_code tdm_model_dir_need(const tdm_model_dir *md, const char *name, int need_weights,
                            const tdm_component_files **out, tdm_status *st) {
    const tdm_component_files *c = tdm_model_dir_find(md, name);
    *out = c;
    if (!c) return tdm_fail(st, TDM_ERR_MISSING, "%s/model_index.json: no '%s' component", md->root, name);
    if (!tdm_path_is_dir(c->dir))
        return tdm_fail(st, TDM_ERR_MISSING, "%s: folder of component '%s' is missing (listed in model_index.json)",
                        c->dir, name);
    int is_sched = strcmp(name, "scheduler") == 0;
    if (!c->has_config && (is_sched || need_weights))
        return tdm_fail(st, TDM_ERR_MISSING, "%s/%s is missing", c->dir, is_sched ? "scheduler_config.json" : "config.json");
    if (need_weights && !c->has_weights) {
        if (c->pickle_path[0])
            return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                            "%s: pickle weights are refused because loading them can execute code; convert this "
                            "file once with tools/convert_ckpt.py (run where PyTorch is installed) to a "
                            ".safetensors file next to it",
                            c->pickle_path);
        return tdm_fail(st, TDM_ERR_MISSING,
                        "%s: no weights: expected diffusion_pytorch_model.safetensors or model.safetensors (or an "
                        ".fp16 variant, or a *.safetensors.index.json with its shards)",
                        c->dir);
    }
    return TDM_OK;
}

/* ---- opening the weights ---------------------------------------------------------------------- */

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Checks the opened shards ws->files[first .. first + n) against the index. */
static tdm_code check_shards(const tdm_component_files *c, const tdm_weights *ws, int first, tdm_status *st) {
    cJSON *j;
    TDM_TRY(tdm_json_load(c->index_path, &j, st));
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    tdm_code rc = TDM_OK;
    const cJSON *e;
    /* every listed tensor is in the shard the index names */
    cJSON_ArrayForEach(e, wm) {
        const tdm_safetensors *f = NULL;
        for (int k = first; k < ws->n_files && !f; k++)
            if (strcmp(base_name(ws->files[k].path), e->valuestring) == 0) f = &ws->files[k];
        if (!f) {
            rc = tdm_fail(st, TDM_ERR_INTERNAL, "%s: shard '%s' was not opened", c->index_path, e->valuestring);
            break;
        }
        if (!tdm_st_find(f, e->string)) {
            const char *where = NULL;
            for (int k = first; k < ws->n_files && !where; k++)
                if (tdm_st_find(&ws->files[k], e->string)) where = ws->files[k].path;
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' is indexed in shard '%s' but %s", c->index_path,
                          e->string, e->valuestring, where ? "is stored in another shard:" : "no shard holds it");
            if (where) {
                size_t len = strlen(st ? st->msg : "");
                if (st && len + 2 < sizeof st->msg) snprintf(st->msg + len, sizeof st->msg - len, " %s", where);
            }
            break;
        }
    }
    /* and every tensor of every shard is listed, under that shard */
    for (int k = first; k < ws->n_files && rc == TDM_OK; k++) {
        const tdm_safetensors *f = &ws->files[k];
        for (int i = 0; i < f->n_entries; i++) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(wm, f->entries[i].name);
            if (!cJSON_IsString(s) || strcmp(s->valuestring, base_name(f->path)) != 0) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s' is not listed in the index %s%s%s", f->path,
                              f->entries[i].name, c->index_path, s ? " (it names shard " : "",
                              s ? s->valuestring : "");
                if (s && st) {
                    size_t len = strlen(st->msg);
                    if (len + 2 < sizeof st->msg) snprintf(st->msg + len, sizeof st->msg - len, ")");
                }
                break;
            }
        }
    }
    cJSON_Delete(j);
    return rc;
}

tdm_code tdm_component_add_weights(const tdm_component_files *c, tdm_weights *ws, tdm_name_mapper mapper,
                                   void *ctx, tdm_status *st) {
    if (!c->has_weights || c->n_weight_files < 1)
        return tdm_fail(st, TDM_ERR_MISSING, "%s: component '%s' has no weights", c->dir, c->name);
    int first = ws->n_files;
    for (int i = 0; i < c->n_weight_files; i++)
        TDM_TRY(tdm_weights_add_file(ws, c->weight_files[i], "", mapper, ctx, st));
    if (c->index_path[0]) TDM_TRY(check_shards(c, ws, first, st));
    return TDM_OK;
}
