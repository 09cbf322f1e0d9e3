/* PNG / JPEG decoding to RGB8 and PNG writing with text chunks. See image.h for the conversions.
 * libpng and libjpeg report errors through longjmp (libjpeg's default error handler ends the process):
 * both are overridden so a corrupt file becomes a tdm_status message. */
#include "io/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE */
#include <jerror.h>
#include <png.h>

#include "base/json.h"

tdm_image_format tdm_image_sniff(const uint8_t *data, size_t n) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(data, png_sig, 8) == 0) return TDM_IMAGE_PNG;
    if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return TDM_IMAGE_JPEG;
    return TDM_IMAGE_UNKNOWN;
}

static tdm_code check_dims(long w, long h, const char *what, tdm_status *st) {
    if (w <= 0 || h <= 0)
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: invalid image size %ldx%ld", what, w, h);
    if (w > TDM_IMAGE_MAX_SIDE || h > TDM_IMAGE_MAX_SIDE || w * h > TDM_IMAGE_MAX_PIXELS)
        return tdm_fail(st, TDM_ERR_UNSUPPORTED,
                        "%s: image size %ldx%ld exceeds the limit (%d px a side, %ld pixels)", what, w, h,
                        TDM_IMAGE_MAX_SIDE, (long)TDM_IMAGE_MAX_PIXELS);
    return TDM_OK;
}

tdm_code tdm_image_alloc(tdm_image *img, int width, int height, tdm_status *st) {
    memset(img, 0, sizeof *img);
    TDM_TRY(check_dims(width, height, "image", st));
    size_t bytes = (size_t)width * (size_t)height * 3;
    img->pixels = malloc(bytes);
    if (!img->pixels) return tdm_fail(st, TDM_ERR_NOMEM, "image %dx%d: out of memory", width, height);
    img->width = width;
    img->height = height;
    img->channels = 3;
    return TDM_OK;
}

void tdm_image_free(tdm_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---- PNG read --------------------------------------------------------------------------------- */

typedef struct png_err_ctx {
    jmp_buf jmp;
    char msg[256];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "libpng error");
    longjmp(e->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* benign (e.g. a bad ancillary chunk CRC): the chunk is skipped */
}

typedef struct png_mem_src {
    const uint8_t *data;
    size_t n, pos;
} png_mem_src;

static void png_mem_read(png_structp png, png_bytep out, png_size_t len) {
    png_mem_src *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "file is truncated");
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

/* Decodes a PNG in memory; want_key non-NULL: also returns that text chunk (malloc'ed or NULL). */
static tdm_code png_decode(const uint8_t *data, size_t n, const char *what, tdm_image *out, const char *want_key,
                           char **text_out, tdm_status *st) {
    png_err_ctx err;
    err.msg[0] = '\0';
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    if (!png) return tdm_fail(st, TDM_ERR_NOMEM, "%s: cannot create PNG decoder", what);
    png_infop info = png_create_info_struct(png);
    png_infop end_info = info ? png_create_info_struct(png) : NULL;
    if (!info || !end_info) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: cannot create PNG decoder", what);
    }
    png_mem_src src = {data, n, 0};
    /* Written between setjmp and longjmp: volatile so their values survive the jump. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile tdm_code limit_rc = TDM_OK;
    if (setjmp(err.jmp)) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, &end_info);
        if (limit_rc != TDM_OK) return limit_rc;
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: corrupt PNG: %s", what, err.msg);
    }
    png_set_read_fn(png, &src, png_mem_read);
    png_set_user_limits(png, TDM_IMAGE_MAX_SIDE, TDM_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    if (check_dims((long)w, (long)h, what, st) != TDM_OK) {
        limit_rc = st ? st->code : TDM_ERR_UNSUPPORTED;
        png_error(png, "size limit");
    }
    {
        /* -> RGB8: 16-bit keeps the high byte (Pillow), palette and low-depth gray expand, gray -> RGB,
         * alpha (and tRNS transparency) dropped without compositing (Pillow convert("RGB")). */
        if (bit_depth == 16) png_set_strip_16(png);
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
        if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) {
            png_set_tRNS_to_alpha(png);
            png_set_strip_alpha(png);
        }
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        if (png_get_rowbytes(png, info) != (size_t)w * 3 || png_get_channels(png, info) != 3)
            png_error(png, "unexpected row layout after conversion to RGB8");
        pixels = malloc((size_t)w * h * 3);
        rows = malloc(sizeof(png_bytep) * h);
        if (!pixels || !rows) {
            limit_rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory for %ux%u pixels", what, w, h);
            png_error(png, "out of memory");
        }
        for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
        png_read_image(png, rows);
    }
    if (want_key) {
        png_read_end(png, end_info);
        char *found = NULL;
        png_infop infos[2] = {info, end_info};
        for (int k = 0; k < 2 && !found; k++) {
            png_textp texts = NULL;
            int nt = 0;
            png_get_text(png, infos[k], &texts, &nt);
            for (int i = 0; i < nt; i++) {
                if (texts[i].key && strcmp(texts[i].key, want_key) == 0) {
                    size_t len = texts[i].compression >= PNG_ITXT_COMPRESSION_NONE ? texts[i].itxt_length
                                                                                   : texts[i].text_length;
                    found = malloc(len + 1);
                    if (!found) {
                        limit_rc = tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory", what);
                        png_error(png, "out of memory");
                    }
                    if (len) memcpy(found, texts[i].text, len);
                    found[len] = '\0';
                    break;
                }
            }
        }
        *text_out = found;
    }
    free(rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, &end_info);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = 3;
    out->pixels = pixels;
    return TDM_OK;
}

/* ---- JPEG read -------------------------------------------------------------------------------- */

typedef struct jpeg_err_ctx {
    struct jpeg_error_mgr mgr; /* first member: libjpeg casts cinfo->err to this struct */
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* Warnings: a truncated file ("Premature end of JPEG file") is an error; other corrupt-data warnings
 * (e.g. extraneous bytes before a marker, which many cameras write) are ignored as libjpeg does. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

static void jpeg_silent_output(j_common_ptr cinfo) { (void)cinfo; }

static tdm_code jpeg_decode(const uint8_t *data, size_t n, const char *what, tdm_image *out, tdm_status *st) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx err;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.emit_message = jpeg_on_message;
    err.mgr.output_message = jpeg_silent_output;
    err.msg[0] = '\0';
    uint8_t *volatile pixels = NULL;
    volatile tdm_code limit_rc = TDM_OK;
    if (setjmp(err.jmp)) {
        free(pixels);
        jpeg_destroy_decompress(&cinfo);
        if (limit_rc != TDM_OK) return limit_rc;
        return tdm_fail(st, TDM_ERR_FORMAT, "%s: corrupt JPEG: %s", what, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = 1024L * 1024 * 1024;
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (check_dims((long)cinfo.image_width, (long)cinfo.image_height, what, st) != TDM_OK) {
        limit_rc = st ? st->code : TDM_ERR_UNSUPPORTED;
        jpeg_destroy_decompress(&cinfo);
        return limit_rc;
    }
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: CMYK JPEG images are not supported (convert to RGB)", what);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        jpeg_destroy_decompress(&cinfo);
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: JPEG with %d output components", what,
                        cinfo.output_components);
    }
    size_t w = cinfo.output_width, h = cinfo.output_height;
    pixels = malloc(w * h * 3);
    if (!pixels) {
        jpeg_destroy_decompress(&cinfo);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: out of memory for %zux%zu pixels", what, w, h);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    out->width = (int)w;
    out->height = (int)h;
    out->channels = 3;
    out->pixels = pixels;
    return TDM_OK;
}

tdm_code tdm_image_decode(const uint8_t *data, size_t n, const char *what, tdm_image *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    switch (tdm_image_sniff(data, n)) {
    case TDM_IMAGE_PNG: return png_decode(data, n, what, out, NULL, NULL, st);
    case TDM_IMAGE_JPEG: return jpeg_decode(data, n, what, out, st);
    default: break;
    }
    return tdm_fail(st, TDM_ERR_FORMAT, "%s: not a PNG or JPEG file (unrecognised signature)", what);
}

tdm_code tdm_image_load(const char *path, tdm_image *out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_load: path is NULL");
    char *data = NULL;
    size_t n = 0;
    TDM_TRY(tdm_read_file(path, TDM_IMAGE_MAX_FILE, &data, &n, st));
    tdm_code rc = tdm_image_decode((const uint8_t *)data, n, path, out, st);
    free(data);
    return rc;
}

tdm_code tdm_png_read_text(const char *path, const char *key, char **out, tdm_status *st) {
    *out = NULL;
    char *data = NULL;
    size_t n = 0;
    TDM_TRY(tdm_read_file(path, TDM_IMAGE_MAX_FILE, &data, &n, st));
    tdm_code rc;
    if (tdm_image_sniff((const uint8_t *)data, n) != TDM_IMAGE_PNG)
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: not a PNG file", path);
    else {
        tdm_image img = {0};
        rc = png_decode((const uint8_t *)data, n, path, &img, key, out, st);
        tdm_image_free(&img);
    }
    free(data);
    return rc;
}

tdm_code tdm_image_read_parameters(const char *path, char **text, tdm_status *st) {
    if (!path || !text) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_read_parameters: NULL argument");
    return tdm_png_read_text(path, "parameters", text, st);
}

void tdm_free(void *p) { free(p); }

/* ---- PNG write -------------------------------------------------------------------------------- */

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

tdm_code tdm_png_write(const char *path, const tdm_image *img, const tdm_png_text *texts, int n_texts,
                       tdm_status *st) {
    if (!img || !img->pixels || img->channels != 3)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: image to write must be RGB8 with pixels", path);
    TDM_TRY(check_dims(img->width, img->height, path, st));
    for (int i = 0; i < n_texts; i++) {
        size_t kl = texts[i].key ? strlen(texts[i].key) : 0;
        if (kl < 1 || kl > 79 || !texts[i].text)
            return tdm_fail(st, TDM_ERR_INVALID_ARG, "%s: PNG text key must have 1..79 characters", path);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return tdm_fail(st, TDM_ERR_IO, "%s: cannot open for writing", path);
    png_err_ctx err;
    err.msg[0] = '\0';
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        fclose(f);
        remove(path);
        return tdm_fail(st, TDM_ERR_NOMEM, "%s: cannot create PNG encoder", path);
    }
    png_text *volatile pt = NULL;
    if (setjmp(err.jmp)) {
        free(pt);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(path);
        return tdm_fail(st, TDM_ERR_IO, "%s: writing PNG failed: %s", path, err.msg);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_texts > 0) {
        pt = calloc((size_t)n_texts, sizeof(png_text));
        if (!pt) png_error(png, "out of memory");
        for (int i = 0; i < n_texts; i++) {
            pt[i].key = (png_charp)texts[i].key;
            pt[i].text = (png_charp)texts[i].text;
            if (is_ascii(texts[i].text)) {
                pt[i].compression = PNG_TEXT_COMPRESSION_NONE;
                pt[i].text_length = strlen(texts[i].text);
            } else {
                pt[i].compression = PNG_ITXT_COMPRESSION_NONE;
                pt[i].itxt_length = strlen(texts[i].text);
                pt[i].lang = (png_charp) "";
                pt[i].lang_key = (png_charp) "";
            }
        }
        png_set_text(png, info, pt, n_texts);
    }
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) png_write_row(png, img->pixels + (size_t)y * img->width * 3);
    png_write_end(png, info);
    free(pt);
    pt = NULL;
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        remove(path);
        return tdm_fail(st, TDM_ERR_IO, "%s: write failed (disk full?)", path);
    }
    return TDM_OK;
}

tdm_code tdm_image_save_png(const char *path, const tdm_image *img, const char *parameters, tdm_status *st) {
    if (!path) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_save_png: path is NULL");
    tdm_png_text t = {"parameters", parameters};
    return tdm_png_write(path, img, &t, parameters ? 1 : 0, st);
}
