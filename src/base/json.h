/* Typed access to JSON (cJSON) with errors that name the file and the field.
 * `what` is the file (or other context) used in messages, e.g. "unet/config.json". */
#ifndef TDM_BASE_JSON_H
#define TDM_BASE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/error.h"

/* Reads a whole file (at most max_bytes) into a NUL-terminated buffer the caller frees. */
tdm_code tdm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, tdm_status *st);

/* Parses a JSON file whose top level must be an object; the caller frees with cJSON_Delete. */
tdm_code tdm_json_load(const char *path, cJSON **out, tdm_status *st);

/* Getters: a missing key keeps *out = def and returns TDM_OK when def_ok, else TDM_ERR_MISSING.
 * Wrong types and values outside [lo, hi] are TDM_ERR_FORMAT naming `what` and the key. */
tdm_code tdm_json_int(const cJSON *obj, const char *key, const char *what, int def_ok, long def, long lo,
                      long hi, long *out, tdm_status *st);
tdm_code tdm_json_num(const cJSON *obj, const char *key, const char *what, int def_ok, double def, double lo,
                      double hi, double *out, tdm_status *st);
tdm_code tdm_json_bool(const cJSON *obj, const char *key, const char *what, int def_ok, int def, int *out,
                       tdm_status *st);
/* Copies into buf (truncation is an error). */
tdm_code tdm_json_str(const cJSON *obj, const char *key, const char *what, int def_ok, const char *def,
                      char *buf, size_t bufsz, tdm_status *st);
/* Integer array of length 1..max_n (or a single integer when allow_scalar: *n = 1). */
tdm_code tdm_json_int_array(const cJSON *obj, const char *key, const char *what, int allow_scalar, long lo,
                            long hi, long *out, int max_n, int *n, tdm_status *st);

#endif
