#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tdm_code tdm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, tdm_status *st) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tdm_fail(st, TDM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return tdm_fail(st, TDM_ERR_IO, "%s: cannot seek", path);
    }
    long len = ftell(f);
    if (len < 0 || (unsigned long)len > max_bytes) {
        fclose(f);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: size %ld is over the limit of %zu bytes", path, len, max_bytes);
    }
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", path);
    }
    if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        fclose(f);
        return tdm_fail(st, TDM_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = (size_t)len;
    return TDM_OK;
}

/* Python's json module writes Infinity and -Infinity, which strict JSON (and cJSON) lacks.
 * Outside string literals they are rewritten in place to the same-length "1e999   ", which strtod
 * reads as inf. NaN is left alone and fails to parse (there is no honest value to put there). */
static void python_json_literals(char *s, size_t len) {
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\' && i + 1 < len) i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == 'I' && len - i >= 8 && memcmp(s + i, "Infinity", 8) == 0) {
            memcpy(s + i, "1e999   ", 8);
            i += 7;
        }
    }
}

tdm_code tdm_json_load(const char *path, cJSON **out, tdm_status *st) {
    char *text;
    size_t len;
    *out = NULL;
    TDM_TRY(tdm_read_file(path, (size_t)64 << 20, &text, &len, st));
    python_json_literals(text, len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        long off = end ? (long)(end - text) : -1;
        free(text);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: invalid JSON near byte %ld", path, off);
    }
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    return TDM_OK;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

tdm_code tdm_json_num(const cJSON *obj, const char *key, const char *what, int def_ok, double def, double lo,
                      double hi, double *out, tdm_status *st) {
    const cJSON *v = get(obj, key);
    if (!v) {
        if (!def_ok) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
        *out = def;
        return TDM_OK;
    }
    if (!cJSON_IsNumber(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be a number", what, key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' = %g is outside [%g, %g]", what, key, d, lo, hi);
    *out = d;
    return TDM_OK;
}

tdm_code tdm_json_int(const cJSON *obj, const char *key, const char *what, int def_ok, long def, long lo,
                      long hi, long *out, tdm_status *st) {
    const cJSON *v = get(obj, key);
    if (!v) {
        if (!def_ok) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
        *out = def;
        return TDM_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be an integer", what, key);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' = %.0f is outside [%ld, %ld]", what, key, d, lo, hi);
    *out = (long)d;
    return TDM_OK;
}

tdm_code tdm_json_bool(const cJSON *obj, const char *key, const char *what, int def_ok, int def, int *out,
                       tdm_status *st) {
    const cJSON *v = get(obj, key);
    if (!v) {
        if (!def_ok) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
        *out = def;
        return TDM_OK;
    }
    if (!cJSON_IsBool(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return TDM_OK;
}

tdm_code tdm_json_str(const cJSON *obj, const char *key, const char *what, int def_ok, const char *def,
                      char *buf, size_t bufsz, tdm_status *st) {
    const cJSON *v = get(obj, key);
    const char *s = def;
    if (!v) {
        if (!def_ok) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
    } else {
        if (!cJSON_IsString(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be a string", what, key);
        s = v->valuestring;
    }
    if (!s) s = "";
    if (strlen(s) >= bufsz) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' is too long", what, key);
    memcpy(buf, s, strlen(s) + 1);
    return TDM_OK;
}

tdm_code tdm_json_int_array(const cJSON *obj, const char *key, const char *what, int allow_scalar, long lo,
                            long hi, long *out, int max_n, int *n, tdm_status *st) {
    const cJSON *v = get(obj, key);
    if (!v) return tdm_fail(st, TDM_ERR_MISSING, "%s: field '%s' is missing", what, key);
    if (cJSON_IsNumber(v) && allow_scalar) {
        TDM_TRY(tdm_json_int(obj, key, what, 0, 0, lo, hi, out, st));
        *n = 1;
        return TDM_OK;
    }
    if (!cJSON_IsArray(v)) return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' must be an array of integers", what, key);
    int count = cJSON_GetArraySize(v);
    if (count < 1 || count > max_n)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s' has %d entries (expected 1..%d)", what, key, count, max_n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < (double)lo ||
            e->valuedouble > (double)hi)
            return tdm_fail(st, TDM_ERR_FORMAT, "%s: field '%s'[%d] must be an integer in [%ld, %ld]", what, key, i,
                            lo, hi);
        out[i++] = (long)e->valuedouble;
    }
    *n = count;
    return TDM_OK;
}
