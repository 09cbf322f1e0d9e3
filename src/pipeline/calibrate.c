/* Percentiles, calibration files, prompts files and the resumable calibration run (see calibrate.h,
 * docs/ADAPTIVE.md). */
#include "pipeline/calibrate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"

/* ---- percentiles ---- */

double tdm_percentile_sorted(const double *v, int n, double k) {
    if (n <= 0) return NAN;
    if (n == 1) return v[0];
    /* numpy: virtual index = q * (n - 1) with q = k / 100; _lerp(a, b, t) as numpy computes it */
    double rank = (k / 100.0) * (double)(n - 1);
    if (rank <= 0) return v[0];
    if (rank >= n - 1) return v[n - 1];
    int lo = (int)floor(rank);
    double t = rank - lo, a = v[lo], b = v[lo + 1], d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

tdm_code tdm_calibration_check_k(double k, tdm_status *st) {
    if (!isfinite(k) || !(k > 0.0 && k < 100.0))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "percentile k = %g is outside (0, 100)", k);
    return TDM_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- calibration files ---- */

void tdm_calibration_free(tdm_calibration *c) {
    if (!c) return;
    free(c->scores);
    free(c);
}

int tdm_calibration_count(const tdm_calibration *c) { return c ? c->n : 0; }

static void copy_str(const cJSON *obj, const char *key, char *buf, size_t n) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(it) && it->valuestring) snprintf(buf, n, "%s", it->valuestring);
}

static double get_num(const cJSON *obj, const char *key, double def) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(it) ? it->valuedouble : def;
}

/* The reference code's file: {"10": tau, "20": tau, ...}. */
static tdm_code load_table(const cJSON *root, const char *path, tdm_calibration *c, tdm_status *st) {
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        char *end = NULL;
        double k = strtod(it->string, &end);
        if (end == it->string || *end || !cJSON_IsNumber(it))
            return tdm_fail(st, TDM_ERR_FORMAT,
                            "%s: not a calibration file (no \"format\": \"%s\", and key '%s' is not a percentile "
                            "with a number)",
                            path, TDM_CALIBRATION_FORMAT, it->string);
        if (c->n_table >= (int)(sizeof c->table_k / sizeof c->table_k[0]))
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: too many percentile entries", path);
        c->table_k[c->n_table] = k;
        c->table_tau[c->n_table] = it->valuedouble;
        c->n_table++;
    }
    if (!c->n_table) return tdm_fail(st, TDM_ERR_FORMAT, "%s: empty calibration table", path);
    return TDM_OK;
}

tdm_code tdm_calibration_load(const char *path, tdm_calibration **out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_calibration_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "no calibration file given");
    cJSON *root = NULL;
    TDM_TRY(tdm_json_load(path, &root, st));
    tdm_calibration *c = calloc(1, sizeof *c);
    if (!c) {
        cJSON_Delete(root);
        return tdm_fail(st, TDM_ERR_NOMEM, "calibration: out of memory");
    }
    snprintf(c->path, sizeof c->path, "%s", path);
    c->guidance = NAN;
    c->eta = NAN;
    tdm_code rc = TDM_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!fmt) {
        rc = load_table(root, path, c, st);
        goto done;
    }
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, TDM_CALIBRATION_FORMAT) != 0) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: \"format\" is not \"%s\"", path, TDM_CALIBRATION_FORMAT);
        goto done;
    }
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(root, "scores");
    int n = cJSON_GetArraySize(scores);
    if (!cJSON_IsArray(scores) || n < 1) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: \"scores\" must be a non-empty array of numbers", path);
        goto done;
    }
    c->scores = malloc(sizeof(double) * (size_t)n);
    if (!c->scores) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "calibration: out of memory");
        goto done;
    }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, scores) {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: \"scores\"[%d] is not a finite number", path, i);
            goto done;
        }
        c->scores[i++] = it->valuedouble;
    }
    c->n = n;
    qsort(c->scores, (size_t)n, sizeof(double), cmp_double);
    const cJSON *stu = cJSON_GetObjectItemCaseSensitive(root, "student");
    const cJSON *orc = cJSON_GetObjectItemCaseSensitive(root, "oracle");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    if (cJSON_IsObject(stu)) {
        c->have_provenance = 1;
        copy_str(stu, "model", c->student_model, sizeof c->student_model);
        copy_str(stu, "sampler", c->sampler, sizeof c->sampler);
        copy_str(stu, "negative_prompt", c->negative, sizeof c->negative);
        c->steps = (int)get_num(stu, "steps", 0);
        c->guidance = (float)get_num(stu, "guidance", NAN);
        c->eta = (float)get_num(stu, "eta", NAN);
        c->width = (int)get_num(stu, "width", 0);
        c->height = (int)get_num(stu, "height", 0);
        c->clip_skip = (int)get_num(stu, "clip_skip", 0);
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(root, "scored_size"); /* absent: not resized */
        c->scored_width = cJSON_IsObject(sc) ? (int)get_num(sc, "width", 0) : c->width;
        c->scored_height = cJSON_IsObject(sc) ? (int)get_num(sc, "height", 0) : c->height;
    }
    if (cJSON_IsObject(orc)) {
        copy_str(orc, "name", c->oracle, sizeof c->oracle);
        copy_str(orc, "model", c->oracle_model, sizeof c->oracle_model);
    }
    if (cJSON_IsObject(pr)) copy_str(pr, "sha256", c->prompts_sha256, sizeof c->prompts_sha256);
done:
    cJSON_Delete(root);
    if (rc) {
        tdm_calibration_free(c);
        return rc;
    }
    *out = c;
    return TDM_OK;
}

tdm_code tdm_calibration_tau(const tdm_calibration *c, double k, double *tau, tdm_status *st) {
    if (!c || !tau) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_calibration_tau: NULL argument");
    TDM_TRY(tdm_calibration_check_k(k, st));
    if (c->n > 0) {
        *tau = tdm_percentile_sorted(c->scores, c->n, k);
        return TDM_OK;
    }
    for (int i = 0; i < c->n_table; i++)
        if (c->table_k[i] == k) {
            *tau = c->table_tau[i];
            return TDM_OK;
        }
    char keys[512] = "";
    size_t len = 0;
    for (int i = 0; i < c->n_table && len + 16 < sizeof keys; i++)
        len += (size_t)snprintf(keys + len, sizeof keys - len, "%s%g", i ? ", " : "", c->table_k[i]);
    return tdm_fail(st, TDM_ERR_INVALID_ARG,
                    "%s holds a percentile table without scores: k = %g is not one of its keys (%s)", c->path, k,
                    keys);
}

tdm_code tdm_calibration_tau_for_share(const tdm_calibration *c, double q, double *tau, double *share,
                                       tdm_status *st) {
    if (!c || !tau) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_calibration_tau_for_share: NULL argument");
    if (!isfinite(q) || q < 0 || q > 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "teacher share %g is outside [0, 1]", q);
    if (c->n < 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s holds no scores: a teacher share needs a tandem calibration file",
                        c->path);
    const int n = c->n;
    int m = (int)floor(q * n + 0.5); /* samples that go to the teacher: round(q n) */
    if (m < 0) m = 0;
    if (m > n) m = n;
    const double *v = c->scores;
    double t;
    if (m == 0) t = v[0];                                  /* none below the smallest */
    else if (m == n) t = nextafter(v[n - 1], INFINITY);    /* all below */
    else t = v[m - 1] == v[m] ? v[m] : 0.5 * (v[m - 1] + v[m]);
    int below = 0;
    for (int i = 0; i < n; i++) below += v[i] < t;
    *tau = t;
    if (share) *share = (double)below / n;
    return TDM_OK;
}

void tdm_calibration_compare(const tdm_calibration *c, const char *student_model, const char *sampler, int steps,
                             float guidance, int width, int height, int scored_width, int scored_height,
                             const char *oracle, int n_controls, char *warn, size_t size) {
    size_t len = 0;
    warn[0] = '\0';
#define W_ADD(...)                                                                                        \
    do {                                                                                                  \
        if (len < size) len += (size_t)snprintf(warn + len, size - len, __VA_ARGS__);                     \
    } while (0)
    if (!c->have_provenance) {
        W_ADD("calibration %s has no provenance (a reference-code table?): its settings cannot be checked\n", c->path);
        return;
    }
    if (student_model && strcmp(c->student_model, student_model) != 0)
        W_ADD("calibration %s was made with student model '%s', this run uses '%s'\n", c->path, c->student_model,
              student_model);
    if (sampler && strcmp(c->sampler, sampler) != 0)
        W_ADD("calibration %s was made with student sampler %s, this run uses %s\n", c->path, c->sampler, sampler);
    if (c->steps != steps)
        W_ADD("calibration %s was made with %d student steps, this run uses %d\n", c->path, c->steps, steps);
    if (!(c->guidance == guidance))
        W_ADD("calibration %s was made with student guidance %g, this run uses %g\n", c->path, (double)c->guidance,
              (double)guidance);
    if (c->width != width || c->height != height)
        W_ADD("calibration %s was made at %dx%d, this run is %dx%d\n", c->path, c->width, c->height, width, height);
    else if (c->scored_width != scored_width || c->scored_height != scored_height)
        W_ADD("calibration %s scored the student's images at %dx%d, this run scores them at %dx%d (the teacher's "
              "size: calibrate with the same --preset or --teacher-width / --teacher-height)\n",
              c->path, c->scored_width, c->scored_height, scored_width, scored_height);
    if (oracle && strcmp(c->oracle, oracle) != 0)
        W_ADD("calibration %s was made with oracle '%s', this run uses '%s'\n", c->path, c->oracle, oracle);
    if (n_controls > 0)
        W_ADD("calibration %s was made without a ControlNet, this run conditions the student on %d (its oracle "
              "scores differ: tau_k does not keep k%% of these samples)\n",
              c->path, n_controls);
#undef W_ADD
    if (len >= size && size > 0) warn[size - 1] = '\0';
}

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t k_sha[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + k_sha[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void tdm_sha256_hex(const void *data, size_t n, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha_block(h, p + i);
    uint8_t tail[128] = {0};
    size_t r = n - i;
    if (r) memcpy(tail, p + i, r);
    tail[r] = 0x80;
    size_t tl = r + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int b = 0; b < 8; b++) tail[tl - 1 - b] = (uint8_t)(bits >> (8 * b));
    sha_block(h, tail);
    if (tl == 128) sha_block(h, tail + 64);
    for (int j = 0; j < 8; j++) snprintf(out + 8 * j, 9, "%08x", h[j]);
}

/* ---- prompts files ---- */

/* Length of the valid UTF-8 sequence at s (strict: no overlongs, surrogates or > U+10FFFF); 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0) len = 2, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000, cp = c & 0x07;
    else return 0;
    if ((size_t)len > avail) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void tdm_prompts_free(tdm_prompts *p) {
    if (!p) return;
    free(p->line);
    free(p->storage);
    memset(p, 0, sizeof *p);
}

tdm_code tdm_prompts_load(const char *path, tdm_prompts *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    TDM_TRY(tdm_read_file(path, (size_t)1 << 28, &buf, &len, st));
    tdm_sha256_hex(buf, len, out->sha256);
    size_t start = 0;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB && (unsigned char)buf[2] == 0xBF)
        start = 3; /* UTF-8 byte order mark */
    int cap = 0;
    int lineno = 0;
    size_t i = start;
    tdm_code rc = TDM_OK;
    while (i < len) {
        lineno++;
        size_t b = i;
        while (i < len && buf[i] != '\n') i++;
        size_t e = i; /* [b, e) */
        if (i < len) i++; /* skip '\n' */
        if (e > b && buf[e - 1] == '\r') e--;
        for (size_t k = b; k < e;) {
            if (buf[k] == '\0') {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%d: NUL byte in the prompt (column %zu)", path, lineno, k - b + 1);
                goto fail;
            }
            int l = utf8_len((const unsigned char *)buf + k, e - k);
            if (!l) {
                rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%d: invalid UTF-8 at byte %zu of the line (0x%02x)", path, lineno,
                              k - b + 1, (unsigned char)buf[k]);
                goto fail;
            }
            k += (size_t)l;
        }
        int blank = 1;
        for (size_t k = b; k < e && blank; k++) blank = buf[k] == ' ' || buf[k] == '\t';
        if (blank) {
            rc = tdm_fail(st, TDM_ERR_FORMAT,
                          "%s:%d: empty line (one prompt per line; blank lines are not allowed, so that line n is "
                          "prompt n)",
                          path, lineno);
            goto fail;
        }
        buf[e] = '\0';
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nl = realloc(out->line, sizeof(char *) * (size_t)cap);
            if (!nl) {
                rc = tdm_fail(st, TDM_ERR_NOMEM, "prompts: out of memory");
                goto fail;
            }
            out->line = nl;
        }
        out->line[out->n++] = buf + b;
    }
    if (out->n == 0) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: no prompts (the file is empty)", path);
        goto fail;
    }
    out->storage = buf;
    return TDM_OK;
fail:
    free(out->line);
    free(buf);
    char sha[65];
    memcpy(sha, out->sha256, sizeof sha);
    memset(out, 0, sizeof *out);
    memcpy(out->sha256, sha, sizeof sha);
    return rc;
}
