/* Sparse safetensors files from tensor-name manifests, JSON loading, folders (see manifest_util.h). */
#include "manifest_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One header entry {dtype, shape, data_offsets} at *off (advanced by numel * isz). */
static void add_entry(cJSON *hdr, const char *name, const char *dt, const long long *shape, int nd, size_t isz,
                      unsigned long long *off) {
    cJSON *t = cJSON_AddObjectToObject(hdr, name);
    cJSON_AddStringToObject(t, "dtype", dt);
    cJSON *sh = cJSON_AddArrayToObject(t, "shape");
    unsigned long long numel = 1;
    for (int i = 0; i < nd; i++) {
        cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
        numel *= (unsigned long long)shape[i];
    }
    cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)*off));
    *off += numel * isz;
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)*off));
}

int tdm_test_write_sparse(const char *path, const cJSON *man, const char *dt, const tdm_sparse_edit *ed) {
    cJSON *hdr = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    unsigned long long off = 0;
    size_t isz = strcmp(dt, "F32") == 0 ? 4 : 2;
    const cJSON *e;
    cJSON_ArrayForEach(e, man) {
        if (ed && ed->remove && strcmp(ed->remove, e->string) == 0) continue;
        long long shape[16];
        int nd = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, e) if (nd < 16) shape[nd++] = (long long)d->valuedouble;
        if (nd && ed && ed->reshape && strcmp(ed->reshape, e->string) == 0) shape[0] += 1;
        add_entry(hdr, e->string, dt, shape, nd, isz, &off);
    }
    if (ed && ed->add) add_entry(hdr, ed->add, dt, (const long long[]){4}, 1, isz, &off);
    if (ed && ed->add_i64) add_entry(hdr, ed->add_i64, "I64", (const long long[]){1, 77}, 2, 8, &off);
    if (ed && ed->add_scalar) add_entry(hdr, ed->add_scalar, dt, NULL, 0, isz, &off);
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    size_t hl = strlen(text), padded = (hl + 7) & ~(size_t)7;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        free(text);
        return -1;
    }
    unsigned char len8[8]; /* little-endian header length */
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((unsigned long long)padded >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(text, 1, hl, f);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    free(text);
    fflush(f);
    int rc = ftruncate(fileno(f), (off_t)(8 + padded + off)); /* the data section: a hole */
    fclose(f);
    return rc;
}

cJSON *tdm_test_load_json(const char *dir, const char *name) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    cJSON *j = NULL;
    tdm_status st = {0};
    if (tdm_json_load(p, &j, &st)) {
        fprintf(stderr, "%s\n", st.msg);
        exit(1);
    }
    return j;
}

void tdm_test_mkdirf(const char *fmt, ...) {
    char p[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    mkdir(p, 0755);
}

static void write_text(const char *text, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fputs(text, f);
    fclose(f);
}

void tdm_test_write_strf(const char *text, const char *fmt, ...) {
    char p[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    write_text(text, p);
}

void tdm_test_write_jsonf(const cJSON *j, const char *fmt, ...) {
    char p[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    char *text = cJSON_Print(j);
    write_text(text, p);
    free(text);
}
