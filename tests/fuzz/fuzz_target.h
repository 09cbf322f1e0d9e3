/* One fuzz input -> the parsers that read untrusted files: the safetensors reader (tdm_st_open, then
 * the weight store and widening of every float tensor) and the JSON config loaders (UNet, VAE, CLIP
 * text, scheduler, model_index.json). Header-only so that both the libFuzzer driver (fuzz_main.c) and the
 * deterministic standalone runner (tests/test_fuzz_safetensors.c) use the same code.
 *
 * Input layout: byte 0 selects the target (mod 6), the rest is the file content:
 *   0, 1  safetensors file            2  UNet config.json      3  VAE config.json
 *   4     CLIP text config.json       5  scheduler_config.json + model_index.json
 * Crashes, sanitizer reports and violated invariants (abort) are the failures; errors are not. */
#ifndef TDM_TESTS_FUZZ_TARGET_H
#define TDM_TESTS_FUZZ_TARGET_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io/model_dir.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sampling/schedule.h"

#define TDM_FUZZ_TARGETS 6

static void tdm_fuzz_invariant(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz invariant violated: %s\n", what);
        abort();
    }
}

/* Every message must be a terminated, non-empty string. */
static void tdm_fuzz_check_status(tdm_code rc, const tdm_status *st) {
    if (rc == TDM_OK) return;
    tdm_fuzz_invariant(st->code == rc, "status code matches the return code");
    tdm_fuzz_invariant(memchr(st->msg, 0, sizeof st->msg) != NULL && st->msg[0] != 0, "message set and terminated");
}

static int tdm_fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && w == size ? 0 : -1;
}

static void tdm_fuzz_safetensors(const char *path) {
    tdm_safetensors f;
    tdm_status st = {0};
    tdm_code rc = tdm_st_open(&f, path, &st);
    tdm_fuzz_check_status(rc, &st);
    if (rc) return;
    /* invariants of an accepted file: sorted unique names, entries inside the data section */
    size_t data_size = f.map_size - f.data_offset;
    for (int i = 0; i < f.n_entries; i++) {
        const tdm_st_entry *e = &f.entries[i];
        tdm_fuzz_invariant(e->begin <= e->end && e->end <= data_size, "entry inside the data section");
        tdm_fuzz_invariant(e->ndim >= 0 && e->ndim <= TDM_MAX_DIMS, "ndim in range");
        if (i) tdm_fuzz_invariant(strcmp(f.entries[i - 1].name, e->name) < 0, "names sorted and unique");
        tdm_fuzz_invariant(tdm_st_find(&f, e->name) == e, "binary search finds every entry");
        /* touch every byte (a bad bound would fault outside the mapping) */
        tdm_tensor t = tdm_st_view(&f, e);
        const unsigned char *b = t.data;
        unsigned sum = 0;
        for (uint64_t k = 0; k < e->end - e->begin; k++) sum += b[k];
        (void)sum;
        /* widening reads typed values: only on naturally aligned data (safetensors does not promise
         * alignment; the weight store's lookup below makes an aligned copy) */
        int aligned = ((uintptr_t)t.data % tdm_dtype_size(e->dtype)) == 0;
        if (aligned && tdm_dtype_is_float(e->dtype) && tdm_tensor_numel(&t) <= (1 << 16)) {
            float *v = malloc((size_t)(tdm_tensor_numel(&t) + 1) * sizeof *v);
            if (v) {
                tdm_code r2 = tdm_tensor_to_f32(&t, v, &st);
                tdm_fuzz_check_status(r2, &st);
                free(v);
            }
        }
    }
    /* the weight store over the same file: duplicates, lookups, unused report */
    tdm_weights ws;
    tdm_weights_init(&ws, "fuzz");
    rc = tdm_weights_add_opened(&ws, &f, "", NULL, NULL, &st);
    if (!rc) rc = tdm_weights_finish(&ws, &st);
    tdm_fuzz_check_status(rc, &st);
    if (!rc && ws.n > 0) {
        tdm_tensor t;
        int64_t any[TDM_MAX_DIMS] = {-1, -1, -1, -1, -1, -1, -1, -1};
        rc = tdm_weights_get(&ws, ws.w[0].name, ws.w[0].t.ndim, any, &t, &st);
        tdm_fuzz_check_status(rc, &st);
        if (!rc && tdm_tensor_numel(&t) <= (1 << 16)) { /* the store's view is aligned: widen it */
            tdm_fuzz_invariant(((uintptr_t)t.data % tdm_dtype_size(t.dtype)) == 0, "store views are aligned");
            float *v = malloc((size_t)(tdm_tensor_numel(&t) + 1) * sizeof *v);
            if (v) {
                tdm_code r2 = tdm_tensor_to_f32(&t, v, &st);
                tdm_fuzz_check_status(r2, &st);
                free(v);
            }
        }
        rc = tdm_weights_check_unused(&ws, &st);
        tdm_fuzz_check_status(rc, &st);
    }
    tdm_weights_free(&ws);
    /* single-file detection must not trip on odd names or shapes */
    tdm_single_file_info info;
    rc = tdm_single_file_detect(&f, &info, &st);
    tdm_fuzz_check_status(rc, &st);
    tdm_st_close(&f);
}

static void tdm_fuzz_config(int target, const uint8_t *data, size_t size, const char *dir) {
    tdm_status st = {0};
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return;
    tdm_code rc = TDM_OK;
    if (target == 2) {
        tdm_unet_config c;
        rc = tdm_unet_config_from_json(j, "fuzz unet config", &c, &st);
        if (!rc) tdm_fuzz_invariant(tdm_unet_config_validate(&c, "fuzz", &st) == TDM_OK, "accepted UNet config validates");
    } else if (target == 3) {
        tdm_vae_config c;
        rc = tdm_vae_config_from_json(j, "fuzz vae config", &c, &st);
        if (!rc) tdm_fuzz_invariant(tdm_vae_config_validate(&c, "fuzz", &st) == TDM_OK, "accepted VAE config validates");
    } else if (target == 4) {
        tdm_clip_text_config c;
        rc = tdm_clip_text_config_from_json(j, "fuzz clip config", &c, &st);
        if (!rc)
            tdm_fuzz_invariant(tdm_clip_text_config_validate(&c, "fuzz", &st) == TDM_OK, "accepted CLIP config validates");
    } else {
        tdm_scheduler_config c;
        rc = tdm_scheduler_config_from_json(j, "fuzz scheduler config", &c, &st);
        tdm_fuzz_check_status(rc, &st);
        /* the same bytes as a pipeline's model_index.json */
        if (dir) {
            char p[1024];
            snprintf(p, sizeof p, "%s/model_index.json", dir);
            if (tdm_fuzz_write(p, data, size) == 0) {
                tdm_model_dir md;
                rc = tdm_model_dir_open(&md, dir, NULL, &st);
                tdm_fuzz_check_status(rc, &st);
                if (!rc) {
                    for (int i = 0; i < md.n_comp; i++) {
                        const tdm_component_files *c2;
                        tdm_code r2 = tdm_model_dir_need(&md, md.comp[i].name, 1, &c2, &st);
                        tdm_fuzz_check_status(r2, &st);
                    }
                    tdm_model_dir_free(&md);
                }
            }
        }
        rc = TDM_OK;
    }
    tdm_fuzz_check_status(rc, &st);
    cJSON_Delete(j);
}

/* scratch_dir: a writable folder for this process (the file target writes scratch_dir/fuzz.safetensors). */
static int tdm_fuzz_one(const uint8_t *data, size_t size, const char *scratch_dir) {
    if (size < 1) return 0;
    int target = data[0] % TDM_FUZZ_TARGETS;
    data++, size--;
    if (target <= 1) {
        char p[1024];
        snprintf(p, sizeof p, "%s/fuzz.safetensors", scratch_dir);
        if (tdm_fuzz_write(p, data, size) == 0) tdm_fuzz_safetensors(p);
    } else {
        tdm_fuzz_config(target, data, size, scratch_dir);
    }
    return 0;
}

#endif
