/* LoRA files: key styles, parsing, binding to a model's weights (lora.h). */
#include "models/lora.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

const char *tdm_lora_component_name(tdm_lora_component c) {
    switch (c) {
    case TDM_LORA_UNET: return "unet";
    case TDM_LORA_TEXT_ENCODER: return "text_encoder";
    case TDM_LORA_TEXT_ENCODER_2: return "text_encoder_2";
    default: return "?";
    }
}

/* ---- key parsing -------------------------------------------------------------------------------- */

typedef enum role { ROLE_DOWN = 0, ROLE_UP, ROLE_ALPHA } role;

typedef struct parsed_key {
    tdm_lora_component comp;
    tdm_lora_style style;
    role role;
    char key[512];  /* module key (file name minus the role suffix) */
    char path[512]; /* module path after the component prefix (dotted, or kohya-flattened) */
} parsed_key;

static int ends_with(const char *s, size_t n, const char *suf, size_t *stem) {
    size_t l = strlen(suf);
    if (n < l || memcmp(s + n - l, suf, l) != 0) return 0;
    *stem = n - l;
    return 1;
}

static int copy_part(char *dst, size_t cap, const char *src, size_t n) {
    if (n >= cap) return 0;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 1;
}

/* Variants of other adapter families (LyCORIS, kohya), refused by name. */
static const char *unsupported_variant(const char *name) {
    static const char *const inner[][2] = {
        {".hada_", "LoHa"}, {".lokr_", "LoKr"}, {".lora_mid.", "LoCon CP decomposition"}};
    static const char *const tail[][2] = {{".dora_scale", "DoRA"}, {".diff", "full-weight difference"},
                                          {".diff_b", "bias difference"}};
    size_t stem, n = strlen(name);
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++)
        if (strstr(name, inner[i][0])) return inner[i][1];
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        if (ends_with(name, n, tail[i][0], &stem)) return tail[i][1];
    return NULL;
}

/* Returns 1 and fills pk for a LoRA key, 0 when the key is of no known style. */
static int parse_key(const char *name, parsed_key *pk) {
    const size_t n = strlen(name);
    size_t stem;
    memset(pk, 0, sizeof *pk);
    /* kohya: lora_<comp>_<flattened path>.{lora_down.weight, lora_up.weight, alpha} */
    static const struct { const char *prefix; tdm_lora_component comp; } kohya[] = {
        {"lora_unet_", TDM_LORA_UNET},
        {"lora_te1_", TDM_LORA_TEXT_ENCODER},
        {"lora_te2_", TDM_LORA_TEXT_ENCODER_2},
        {"lora_te_", TDM_LORA_TEXT_ENCODER}};
    for (size_t i = 0; i < sizeof kohya / sizeof kohya[0]; i++) {
        size_t pl = strlen(kohya[i].prefix);
        if (strncmp(name, kohya[i].prefix, pl) != 0) continue;
        const char *dot = strchr(name, '.');
        if (!dot) return 0;
        const char *suf = dot + 1;
        if (strcmp(suf, "lora_down.weight") == 0) pk->role = ROLE_DOWN;
        else if (strcmp(suf, "lora_up.weight") == 0) pk->role = ROLE_UP;
        else if (strcmp(suf, "alpha") == 0) pk->role = ROLE_ALPHA;
        else return 0;
        pk->comp = kohya[i].comp;
        pk->style = TDM_LORA_STYLE_KOHYA;
        return copy_part(pk->key, sizeof pk->key, name, (size_t)(dot - name)) &&
               copy_part(pk->path, sizeof pk->path, name + pl, (size_t)(dot - name) - pl) && pk->path[0];
    }
    /* diffusers / PEFT: <comp>.<module>.<suffix> */
    static const struct { const char *prefix; tdm_lora_component comp; } dif[] = {
        {"unet.", TDM_LORA_UNET},
        {"text_encoder.", TDM_LORA_TEXT_ENCODER},
        {"text_encoder_2.", TDM_LORA_TEXT_ENCODER_2},
        /* attention-processor files of diffusers < 0.14 hold UNet paths without a prefix */
        {"", TDM_LORA_UNET}};
    size_t pl = 0;
    size_t di = 0;
    for (; di < sizeof dif / sizeof dif[0]; di++) {
        pl = strlen(dif[di].prefix);
        if (strncmp(name, dif[di].prefix, pl) == 0) break;
    }
    if (pl == 0 && strncmp(name, "down_blocks.", 12) != 0 && strncmp(name, "mid_block.", 10) != 0 &&
        strncmp(name, "up_blocks.", 10) != 0)
        return 0;
    pk->comp = dif[di].comp;
    pk->style = TDM_LORA_STYLE_DIFFUSERS;
    static const struct { const char *suffix; role role; } sufs[] = {
        {".lora_A.weight", ROLE_DOWN},     {".lora_B.weight", ROLE_UP},     /* PEFT */
        {".lora.down.weight", ROLE_DOWN},  {".lora.up.weight", ROLE_UP},    /* LoRACompatibleLinear/Conv */
        {".lora_linear_layer.down.weight", ROLE_DOWN}, {".lora_linear_layer.up.weight", ROLE_UP},
        {".down.weight", ROLE_DOWN},       {".up.weight", ROLE_UP},         /* attention processors */
        {".alpha", ROLE_ALPHA}};
    for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++) {
        if (!ends_with(name, n, sufs[i].suffix, &stem) || stem <= pl) continue;
        pk->role = sufs[i].role;
        if (!copy_part(pk->key, sizeof pk->key, name, stem)) return 0;
        char path[512];
        if (!copy_part(path, sizeof path, name + pl, stem - pl)) return 0;
        /* <attn>.processor.to_q_lora -> <attn>.to_q (to_out_lora -> to_out.0) */
        char *proc = strstr(path, ".processor.");
        if (proc) {
            const char *what = proc + 11;
            static const char *const map[][2] = {
                {"to_q_lora", "to_q"}, {"to_k_lora", "to_k"}, {"to_v_lora", "to_v"}, {"to_out_lora", "to_out.0"}};
            size_t k = 0;
            for (; k < 4; k++)
                if (strcmp(what, map[k][0]) == 0) break;
            if (k == 4) return 0;
            *proc = '\0';
            const size_t pl2 = strlen(path), ml = strlen(map[k][1]);
            if (pl2 + 1 + ml >= sizeof pk->path) return 0;
            memcpy(pk->path, path, pl2);
            pk->path[pl2] = '.';
            memcpy(pk->path + pl2 + 1, map[k][1], ml + 1);
        } else {
            if (sufs[i].role != ROLE_ALPHA && (strcmp(sufs[i].suffix, ".down.weight") == 0 ||
                                               strcmp(sufs[i].suffix, ".up.weight") == 0))
                return 0; /* plain ".down.weight" only in processor files */
            memcpy(pk->path, path, strlen(path) + 1); /* same capacity */
        }
        return pk->path[0] != '\0';
    }
    return 0;
}

/* ---- files -------------------------------------------------------------------------------------- */

void tdm_lora_free(tdm_lora *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) {
        free(l->m[i].key);
        free(l->m[i].path);
    }
    free(l->m);
    tdm_weights_free(&l->ws);
    free(l);
}

static tdm_lora_module *find_module(tdm_lora *l, const parsed_key *pk) {
    for (int i = l->n - 1; i >= 0; i--) /* keys of one module are usually adjacent */
        if (l->m[i].comp == pk->comp && strcmp(l->m[i].key, pk->key) == 0) return &l->m[i];
    return NULL;
}

static tdm_code parse_file(tdm_lora *l, tdm_status *st) {
    tdm_weights *ws = &l->ws;
    l->m = calloc((size_t)(ws->n > 0 ? ws->n : 1), sizeof *l->m); /* at most one module per tensor */
    if (!l->m) return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    for (int i = 0; i < ws->n; i++) {
        const tdm_weight *w = &ws->w[i];
        const char *variant = unsupported_variant(w->name);
        if (variant)
            return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                            "lora: %s: tensor '%s' belongs to a %s adapter (only LoRA is supported)", l->path, w->name,
                            variant);
        parsed_key pk;
        if (!parse_key(w->name, &pk))
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "lora: %s: tensor '%s' is not a LoRA key (expected kohya lora_unet_* / lora_te_* with "
                            ".lora_down.weight, .lora_up.weight, .alpha, or diffusers unet.* / text_encoder.* with "
                            ".lora_A.weight / .lora_B.weight)",
                            l->path, w->name);
        tdm_lora_module *m = find_module(l, &pk);
        if (!m) {
            m = &l->m[l->n++];
            m->comp = pk.comp;
            m->style = pk.style;
            m->key = strdup(pk.key);
            m->path = strdup(pk.path);
            if (!m->key || !m->path) return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
        }
        int64_t any[TDM_MAX_DIMS] = {-1, -1, -1, -1, -1, -1, -1, -1};
        tdm_tensor t;
        TDM_TRY(tdm_weights_get(ws, w->name, w->t.ndim, any, &t, st)); /* aligned view, dtype checked */
        if (pk.role == ROLE_ALPHA) {
            if (tdm_tensor_numel(&t) != 1)
                return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: alpha '%s' has %lld values, expected one", l->path,
                                w->name, (long long)tdm_tensor_numel(&t));
            double a = tdm_tensor_get(&t, 0);
            if (!isfinite(a))
                return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: alpha '%s' is not finite", l->path, w->name);
            m->alpha = (float)a;
            m->has_alpha = 1;
            continue;
        }
        tdm_tensor *slot = pk.role == ROLE_DOWN ? &m->down : &m->up;
        if (slot->data)
            return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: module '%s' has two %s weights (second: '%s')", l->path,
                            pk.key, pk.role == ROLE_DOWN ? "down" : "up", w->name);
        if (t.ndim != 2 && t.ndim != 4)
            return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: tensor '%s' has %d dims, expected 2 (Linear) or 4 (Conv)",
                            l->path, w->name, t.ndim);
        *slot = t;
    }
    for (int i = 0; i < l->n; i++) {
        tdm_lora_module *m = &l->m[i];
        const int down_style = m->style == TDM_LORA_STYLE_KOHYA;
        if (!m->down.data || !m->up.data)
            return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: module '%s' has no %s weight", l->path, m->key,
                            !m->down.data ? (down_style ? "lora_down" : "lora_A / down")
                                          : (down_style ? "lora_up" : "lora_B / up"));
        char a[96], b[96];
        if (m->down.shape[0] < 1 || m->down.shape[0] != m->up.shape[1] ||
            (m->up.ndim == 4 && (m->up.shape[2] != 1 || m->up.shape[3] != 1)))
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "lora: %s: module '%s': down %s and up %s do not agree on the rank (down [r, in, ...], "
                            "up [out, r(, 1, 1)])",
                            l->path, m->key, tdm_shape_str(&m->down, a, sizeof a), tdm_shape_str(&m->up, b, sizeof b));
        m->rank = (int)m->down.shape[0];
        if (!m->has_alpha) m->alpha = (float)m->rank; /* diffusers / PEFT: alpha = rank (factor 1) */
        l->n_comp[m->comp]++;
    }
    if (l->n == 0) return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: the file holds no LoRA tensors", l->path);
    return TDM_OK;
}

/* ---- LCM-LoRA detection ------------------------------------------------------------------------- */

static int has_lcm(const char *s, size_t n) {
    for (size_t i = 0; i + 3 <= n; i++)
        if (tolower((unsigned char)s[i]) == 'l' && tolower((unsigned char)s[i + 1]) == 'c' &&
            tolower((unsigned char)s[i + 2]) == 'm')
            return 1;
    return 0;
}

/* The k-th path component from the end (0: the file), empty components skipped; 0 when there is none. */
static int component_from_end(const char *path, int k, const char **start, size_t *len) {
    size_t end = strlen(path);
    for (int i = 0;; i++) {
        while (end > 0 && path[end - 1] == '/') end--;
        if (end == 0) return 0;
        size_t b = end;
        while (b > 0 && path[b - 1] != '/') b--;
        if (i == k) {
            *start = path + b;
            *len = end - b;
            return 1;
        }
        end = b;
    }
}

const char *tdm_lora_name_lcm_rule(const char *path) {
    const char *c;
    size_t n;
    if (!path) return NULL;
    if (component_from_end(path, 0, &c, &n) && has_lcm(c, n)) return "file name";
    if (component_from_end(path, 1, &c, &n) && has_lcm(c, n)) return "folder name";
    /* Hugging Face cache: models--org--name/snapshots/<revision>/<file> */
    if (component_from_end(path, 2, &c, &n) && n == 9 && memcmp(c, "snapshots", 9) == 0 &&
        component_from_end(path, 3, &c, &n) && n > 8 && memcmp(c, "models--", 8) == 0 && has_lcm(c, n))
        return "hub repo name";
    return NULL;
}

/* l->kind from the header's __metadata__ "tandem.kind" (the header passed tdm_st_open's checks). */
static tdm_code read_kind(tdm_lora *l, tdm_status *st) {
    if (l->ws.n_files < 1) return TDM_OK;
    const tdm_safetensors *f = &l->ws.files[0];
    if (f->data_offset < 8 || f->data_offset > f->map_size) return TDM_OK;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)f->map + 8, f->data_offset - 8, NULL, 0);
    if (!root) return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: the header is not valid JSON", l->path);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    const cJSON *kind = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "tandem.kind") : NULL;
    tdm_code rc = TDM_OK;
    if (kind && !cJSON_IsString(kind))
        rc = tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: __metadata__ 'tandem.kind' is not a string", l->path);
    else if (kind)
        snprintf(l->kind, sizeof l->kind, "%s", kind->valuestring);
    cJSON_Delete(root);
    return rc;
}

static void detect_lcm(tdm_lora *l) {
    if (l->kind[0]) {
        l->is_lcm = strcmp(l->kind, TDM_LORA_KIND_LCM) == 0;
        l->lcm_rule = l->is_lcm ? "metadata" : NULL;
        return;
    }
    l->lcm_rule = tdm_lora_name_lcm_rule(l->path);
    l->is_lcm = l->lcm_rule != NULL;
}

tdm_code tdm_lora_open(tdm_lora **out, const char *path, tdm_status *st) {
    *out = NULL;
    if (!path || !*path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: no file path given");
    tdm_lora *l = calloc(1, sizeof *l);
    if (!l) return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    snprintf(l->path, sizeof l->path, "%s", path);
    tdm_code rc = tdm_weights_open_file(&l->ws, "lora", path, "", NULL, NULL, st);
    if (rc && st) tdm_fail_context(st, "LoRA file");
    if (!rc) rc = parse_file(l, st);
    if (!rc) rc = read_kind(l, st);
    if (rc) {
        tdm_lora_free(l);
        return rc;
    }
    detect_lcm(l);
    *out = l;
    return TDM_OK;
}

/* ---- binding ------------------------------------------------------------------------------------ */

typedef struct flat_entry {
    char *flat; /* module path with '.' -> '_' */
    int idx;    /* weight index in the store; -1: two modules flatten to this name */
} flat_entry;

static int cmp_flat(const void *a, const void *b) {
    return strcmp(((const flat_entry *)a)->flat, ((const flat_entry *)b)->flat);
}

/* Kohya lookup table: every 2-D / 4-D "<module>.weight" of the store, flattened. */
static tdm_code build_flat(const tdm_weights *ws, flat_entry **out, int *n_out, tdm_status *st) {
    flat_entry *f = calloc((size_t)(ws->n > 0 ? ws->n : 1), sizeof *f);
    if (!f) return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
    int n = 0;
    size_t stem;
    for (int i = 0; i < ws->n; i++) {
        const tdm_weight *w = &ws->w[i];
        if ((w->t.ndim != 2 && w->t.ndim != 4) || !ends_with(w->name, strlen(w->name), ".weight", &stem)) continue;
        char *s = malloc(stem + 1);
        if (!s) {
            for (int k = 0; k < n; k++) free(f[k].flat);
            free(f);
            return tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
        }
        for (size_t k = 0; k < stem; k++) s[k] = w->name[k] == '.' ? '_' : w->name[k];
        s[stem] = '\0';
        f[n++] = (flat_entry){s, i};
    }
    if (n > 1) qsort(f, (size_t)n, sizeof *f, cmp_flat);
    for (int i = 1; i < n; i++)
        if (strcmp(f[i - 1].flat, f[i].flat) == 0) f[i - 1].idx = f[i].idx = -1;
    *out = f;
    *n_out = n;
    return TDM_OK;
}

static void free_flat(flat_entry *f, int n) {
    for (int i = 0; i < n; i++) free(f[i].flat);
    free(f);
}

/* Weight index of module m in ws: >= 0, -1 absent, -2 ambiguous (kohya). */
static int resolve(const tdm_weights *ws, const flat_entry *flat, int n_flat, const tdm_lora_module *m) {
    if (m->style == TDM_LORA_STYLE_KOHYA) {
        flat_entry key = {m->path, 0};
        const flat_entry *e = n_flat ? bsearch(&key, flat, (size_t)n_flat, sizeof *flat, cmp_flat) : NULL;
        return !e ? -1 : e->idx < 0 ? -2 : e->idx;
    }
    char name[600];
    snprintf(name, sizeof name, "%s.weight", m->path);
    const tdm_weight *w = tdm_weights_peek(ws, name);
    return w ? (int)(w - ws->w) : -1;
}

/* Checks m against the base weight and fills the delta's views. */
static tdm_code make_delta(const tdm_lora *l, const tdm_lora_module *m, const tdm_weight *bw, float scale,
                           tdm_lora_delta *d, tdm_status *st) {
    const tdm_tensor *W = &bw->t, *dn = &m->down, *up = &m->up;
    const int64_t out = W->shape[0], cin = W->shape[1];
    const int64_t kh = W->ndim == 4 ? W->shape[2] : 1, kw = W->ndim == 4 ? W->shape[3] : 1;
    const int64_t r = m->rank;
    int ok = up->shape[0] == out && up->shape[1] == r;
    if (dn->ndim == 2) ok = ok && kh == 1 && kw == 1 && dn->shape[1] == cin;
    else ok = ok && dn->shape[1] == cin && dn->shape[2] == kh && dn->shape[3] == kw;
    if (!ok) {
        char a[96], b[96], c[96];
        return tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: module '%s': down %s / up %s do not fit %s weight '%s' %s",
                        l->path, m->key, tdm_shape_str(dn, a, sizeof a), tdm_shape_str(up, b, sizeof b),
                        tdm_lora_component_name(m->comp), bw->name, tdm_shape_str(W, c, sizeof c));
    }
    d->down_mat = tdm_tensor_view(dn->dtype, dn->data, 2, (int64_t[]){r, cin * kh * kw});
    d->down_conv = tdm_tensor_view(dn->dtype, dn->data, 4, (int64_t[]){r, cin, kh, kw});
    d->up_mat = tdm_tensor_view(up->dtype, up->data, 2, (int64_t[]){out, r});
    d->up_conv = tdm_tensor_view(up->dtype, up->data, 4, (int64_t[]){out, r, 1, 1});
    d->factor = (float)((double)scale * (double)m->alpha / (double)r);
    return TDM_OK;
}

typedef struct pending {
    int widx; /* base weight index */
    tdm_lora_delta d;
} pending;

static int cmp_pending(const void *a, const void *b) {
    const pending *x = a, *y = b;
    return x->widx < y->widx ? -1 : x->widx > y->widx;
}

static int cmp_target(const void *a, const void *b) {
    const tdm_lora_target *x = a, *y = b;
    return (uintptr_t)x->key < (uintptr_t)y->key ? -1 : (uintptr_t)x->key > (uintptr_t)y->key;
}

void tdm_lora_set_free(tdm_lora_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->t[i].d);
    free(s->t);
    free(s);
}

tdm_code tdm_lora_bind(tdm_lora_set **out, const tdm_weights *ws, tdm_lora_component comp, tdm_lora *const *loras,
                       const float *scales, int n, tdm_status *st) {
    *out = NULL;
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (!loras[i]) return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: file %d is NULL", i);
        if (!isfinite(scales[i]))
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "lora: %s: scale is not finite", loras[i]->path);
        total += loras[i]->n_comp[comp];
    }
    tdm_lora_set *s = calloc(1, sizeof *s);
    pending *p = calloc((size_t)(total > 0 ? total : 1), sizeof *p);
    flat_entry *flat = NULL;
    int n_flat = 0, np = 0;
    tdm_code rc = TDM_OK;
    if (!s || !p) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
        goto done;
    }
    s->comp = comp;
    if ((rc = build_flat(ws, &flat, &n_flat, st))) goto done;
    for (int i = 0; i < n; i++) {
        const tdm_lora *l = loras[i];
        int unmatched = 0;
        const tdm_lora_module *first = NULL;
        int first_code = 0;
        for (int j = 0; j < l->n; j++) {
            const tdm_lora_module *m = &l->m[j];
            if (m->comp != comp) continue;
            int widx = resolve(ws, flat, n_flat, m);
            if (widx < 0) {
                if (!first) {
                    first = m;
                    first_code = widx;
                }
                unmatched++;
                continue;
            }
            p[np].widx = widx;
            if ((rc = make_delta(l, m, &ws->w[widx], scales[i], &p[np].d, st))) goto done;
            s->lora_params += tdm_tensor_numel(&m->down) + tdm_tensor_numel(&m->up);
            np++;
        }
        if (first) {
            char how[768];
            const char *cn = tdm_lora_component_name(comp);
            if (first_code == -2)
                snprintf(how, sizeof how, "is ambiguous: two weights of the %s flatten to '%.200s'", cn, first->path);
            else if (first->style == TDM_LORA_STYLE_KOHYA)
                snprintf(how, sizeof how, "names no weight of this %s (no '<module>.weight' flattens to '%.200s')", cn,
                         first->path);
            else
                snprintf(how, sizeof how, "names no weight of this %s (no '%.200s.weight')", cn, first->path);
            rc = tdm_fail(st, TDM_ERR_FORMAT, "lora: %s: module '%s' %s; %d of the file's %d %s modules fit no weight: "
                          "a LoRA for another model?",
                          l->path, first->key, how, unmatched, l->n_comp[comp], cn);
            goto done;
        }
    }
    /* group the deltas by base weight */
    if (np > 1) qsort(p, (size_t)np, sizeof *p, cmp_pending);
    s->t = calloc((size_t)(np > 0 ? np : 1), sizeof *s->t);
    if (!s->t) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
        goto done;
    }
    for (int i = 0; i < np;) {
        int j = i;
        while (j < np && p[j].widx == p[i].widx) j++;
        const tdm_weight *w = &ws->w[p[i].widx];
        tdm_lora_target *t = &s->t[s->n];
        t->d = malloc((size_t)(j - i) * sizeof *t->d);
        if (!t->d) {
            rc = tdm_fail(st, TDM_ERR_NOMEM, "lora: out of memory");
            goto done;
        }
        s->n++;
        t->key = w->t.data;
        t->name = w->name;
        t->base = w->t;
        t->n = j - i;
        for (int k = i; k < j; k++) t->d[k - i] = p[k].d;
        t->out = w->t.shape[0];
        t->in = tdm_tensor_numel(&w->t) / (w->t.shape[0] > 0 ? w->t.shape[0] : 1);
        t->kh = w->t.ndim == 4 ? (int)w->t.shape[2] : 1;
        t->kw = w->t.ndim == 4 ? (int)w->t.shape[3] : 1;
        s->target_params += tdm_tensor_numel(&w->t);
        i = j;
    }
    if (s->n > 1) qsort(s->t, (size_t)s->n, sizeof *s->t, cmp_target);
    for (int i = 1; i < s->n; i++)
        if (s->t[i].key == s->t[i - 1].key) {
            rc = tdm_fail(st, TDM_ERR_INTERNAL, "lora: weights '%s' and '%s' share storage", s->t[i - 1].name,
                          s->t[i].name);
            goto done;
        }
done:
    free(p);
    free_flat(flat, n_flat);
    if (rc) {
        tdm_lora_set_free(s);
        return rc;
    }
    *out = s;
    return TDM_OK;
}

const tdm_lora_target *tdm_lora_find(const tdm_lora_set *s, const tdm_tensor *w) {
    if (!s || !w || s->n == 0) return NULL;
    int lo = 0, hi = s->n - 1;
    const uintptr_t k = (uintptr_t)w->data;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        uintptr_t m = (uintptr_t)s->t[mid].key;
        if (m == k) return &s->t[mid];
        if (m < k) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}
