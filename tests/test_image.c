/* Image I/O: PNG round trip with text chunks, colour-type conversions to RGB8, corrupt / truncated /
 * oversized PNG and JPEG files refused with a message, Pillow-compatible resize against the
 * preprocessing fixture; hole filling (pull-push). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "io/image.h"
#include "io/safetensors.h"
#include "test_util.h"

static char g_path[512];
static const char *tmp_path(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", tdm_test_tmpdir(), name);
    return g_path;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Writes a PNG of any colour type with libpng directly. rows: packed as the colour type needs. */
static void write_png_raw(const char *path, int w, int h, int bit_depth, int color_type, const uint8_t *data,
                          size_t row_bytes, const png_color *palette, int n_palette, const uint8_t *trns,
                          int n_trns) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        CHECK(!"libpng write failed");
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    if (trns) png_set_tRNS(png, info, trns, n_trns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_bytep)(data + (size_t)y * row_bytes));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png_roundtrip(void) {
    tdm_status st = {0};
    tdm_image img;
    CHECK(tdm_image_alloc(&img, 13, 7, &st) == TDM_OK);
    for (int i = 0; i < 13 * 7 * 3; i++) img.pixels[i] = (uint8_t)(i * 37 + 11);
    const char *params = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42";
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("rt.png"));
    CHECK(tdm_image_save_png(path, &img, params, &st) == TDM_OK);
    tdm_image back;
    CHECK_MSG(tdm_image_load(path, &back, &st) == TDM_OK, "%s", st.msg);
    CHECK(back.width == 13 && back.height == 7 && back.channels == 3);
    CHECK(back.pixels && memcmp(back.pixels, img.pixels, 13 * 7 * 3) == 0);
    char *text = NULL;
    CHECK(tdm_image_read_parameters(path, &text, &st) == TDM_OK);
    CHECK(text && strcmp(text, params) == 0);
    tdm_free(text);
    tdm_image_free(&back);

    /* UTF-8 text goes to iTXt and comes back unchanged. */
    const char *utf8 = "caf\xc3\xa9 \xe7\x8c\xab (masterpiece:1.2)\nSteps: 4";
    CHECK(tdm_image_save_png(path, &img, utf8, &st) == TDM_OK);
    text = NULL;
    CHECK(tdm_image_read_parameters(path, &text, &st) == TDM_OK);
    CHECK(text && strcmp(text, utf8) == 0);
    tdm_free(text);

    /* No text chunk: NULL. */
    CHECK(tdm_image_save_png(path, &img, NULL, &st) == TDM_OK);
    text = (char *)1;
    CHECK(tdm_image_read_parameters(path, &text, &st) == TDM_OK);
    CHECK(text == NULL);

    /* Format from magic bytes: a PNG named .jpg loads. */
    char jpgname[512];
    snprintf(jpgname, sizeof jpgname, "%s", tmp_path("really_png.jpg"));
    CHECK(tdm_image_save_png(jpgname, &img, NULL, &st) == TDM_OK);
    CHECK(tdm_image_load(jpgname, &back, &st) == TDM_OK);
    CHECK(back.pixels && memcmp(back.pixels, img.pixels, 13 * 7 * 3) == 0);
    tdm_image_free(&back);

    /* Write errors: missing folder. */
    CHECK(tdm_image_save_png("/nonexistent-dir/x.png", &img, NULL, &st) == TDM_ERR_IO);
    tdm_image_free(&img);
}

static void test_png_conversions(void) {
    tdm_status st = {0};
    tdm_image out;
    enum { W = 5, H = 3 };
    /* gray 8 */
    uint8_t gray[W * H];
    for (int i = 0; i < W * H; i++) gray[i] = (uint8_t)(i * 17);
    write_png_raw(tmp_path("g8.png"), W, H, 8, PNG_COLOR_TYPE_GRAY, gray, W, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    int ok = out.pixels != NULL;
    for (int i = 0; ok && i < W * H; i++)
        ok = out.pixels[3 * i] == gray[i] && out.pixels[3 * i + 1] == gray[i] && out.pixels[3 * i + 2] == gray[i];
    CHECK(ok);
    tdm_image_free(&out);

    /* gray 1-bit: 0 -> 0, 1 -> 255 */
    uint8_t g1[H] = {0xA8, 0x50, 0xF8}; /* 10101, 01010, 11111 */
    write_png_raw(tmp_path("g1.png"), W, H, 1, PNG_COLOR_TYPE_GRAY, g1, 1, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.pixels && out.pixels[0] == 255 && out.pixels[3] == 0 && out.pixels[(W * 2 + 4) * 3 + 2] == 255);
    tdm_image_free(&out);

    /* RGBA: alpha dropped, colour kept (no compositing) */
    uint8_t rgba[W * H * 4];
    for (int i = 0; i < W * H * 4; i++) rgba[i] = (uint8_t)(i * 7 + 3);
    write_png_raw(tmp_path("rgba.png"), W, H, 8, PNG_COLOR_TYPE_RGBA, rgba, W * 4, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    ok = out.pixels != NULL;
    for (int i = 0; ok && i < W * H; i++)
        ok = memcmp(out.pixels + 3 * i, rgba + 4 * i, 3) == 0;
    CHECK(ok);
    tdm_image_free(&out);

    /* gray+alpha */
    uint8_t ga[W * H * 2];
    for (int i = 0; i < W * H * 2; i++) ga[i] = (uint8_t)(i * 11);
    write_png_raw(tmp_path("ga.png"), W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, ga, W * 2, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.pixels && out.pixels[3 * 4] == ga[8] && out.pixels[3 * 4 + 2] == ga[8]);
    tdm_image_free(&out);

    /* 16-bit RGB: high byte */
    uint8_t rgb16[W * H * 6];
    for (int i = 0; i < W * H * 6; i++) rgb16[i] = (uint8_t)(i * 13 + 1);
    write_png_raw(tmp_path("rgb16.png"), W, H, 16, PNG_COLOR_TYPE_RGB, rgb16, W * 6, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    ok = out.pixels != NULL;
    for (int i = 0; ok && i < W * H * 3; i++) ok = out.pixels[i] == rgb16[2 * i];
    CHECK(ok);
    tdm_image_free(&out);

    /* 16-bit gray */
    uint8_t g16[W * H * 2];
    for (int i = 0; i < W * H * 2; i++) g16[i] = (uint8_t)(i * 29);
    write_png_raw(tmp_path("g16.png"), W, H, 16, PNG_COLOR_TYPE_GRAY, g16, W * 2, NULL, 0, NULL, 0);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.pixels && out.pixels[3 * 7 + 1] == g16[14]);
    tdm_image_free(&out);

    /* palette (4-bit) with tRNS: colours from the palette, transparency dropped */
    png_color pal[3] = {{10, 20, 30}, {200, 100, 50}, {1, 2, 3}};
    uint8_t trns[3] = {0, 128, 255};
    uint8_t idx[H * 3]; /* 4-bit, 5 px -> 3 bytes per row */
    for (int y = 0; y < H; y++) {
        idx[y * 3 + 0] = (uint8_t)((0 << 4) | 1);
        idx[y * 3 + 1] = (uint8_t)((2 << 4) | 1);
        idx[y * 3 + 2] = (uint8_t)(0 << 4);
    }
    write_png_raw(tmp_path("pal.png"), W, H, 4, PNG_COLOR_TYPE_PALETTE, idx, 3, pal, 3, trns, 3);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.pixels && out.pixels[0] == 10 && out.pixels[1] == 20 && out.pixels[2] == 30);
    CHECK(out.pixels && out.pixels[3] == 200 && out.pixels[4] == 100 && out.pixels[5] == 50);
    CHECK(out.pixels && out.pixels[6] == 1 && out.pixels[8] == 3);
    CHECK(out.width == W && out.height == H);
    tdm_image_free(&out);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_png_bad(void) {
    tdm_status st = {0};
    tdm_image out;
    tdm_image img;
    CHECK(tdm_image_alloc(&img, 32, 32, &st) == TDM_OK);
    for (int i = 0; i < 32 * 32 * 3; i++) img.pixels[i] = (uint8_t)(i * 7 ^ (i >> 5));
    char good[512];
    snprintf(good, sizeof good, "%s", tmp_path("good.png"));
    CHECK(tdm_image_save_png(good, &img, "x", &st) == TDM_OK);
    tdm_image_free(&img);
    size_t n = 0;
    uint8_t *bytes = read_bytes(good, &n);
    CHECK(bytes && n > 100);
    if (!bytes) return;

    /* truncated at several points */
    size_t cuts[] = {4, 8, 20, 33, 50, n / 2, n - 13};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(tmp_path("trunc.png"), bytes, cuts[i]);
        st.msg[0] = 0;
        tdm_code rc = tdm_image_load(g_path, &out, &st);
        CHECK_MSG(rc == TDM_ERR_FORMAT, "cut %zu: rc %d", cuts[i], rc);
        CHECK(strstr(st.msg, "trunc.png") != NULL);
        CHECK(out.pixels == NULL);
    }
    /* corrupted IDAT bytes (CRC mismatch on a critical chunk) */
    uint8_t *bad = malloc(n);
    memcpy(bad, bytes, n);
    for (size_t i = 60; i < 80 && i < n; i++) bad[i] ^= 0x5A;
    write_bytes(tmp_path("corrupt.png"), bad, n);
    CHECK(tdm_image_load(g_path, &out, &st) == TDM_ERR_FORMAT);
    CHECK_MSG(strstr(st.msg, "corrupt PNG") != NULL, "%s", st.msg);

    /* absurd dimensions in a valid IHDR (correct CRC): refused before any allocation */
    const uint32_t dims[][2] = {{100000, 10}, {10, 100000}, {0x7FFFFFFF, 0x7FFFFFFF}, {16385, 1}};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        memcpy(bad, bytes, n);
        put_be32(bad + 16, dims[k][0]);
        put_be32(bad + 20, dims[k][1]);
        put_be32(bad + 29, crc32_png(bad + 12, 17));
        write_bytes(tmp_path("huge.png"), bad, n);
        tdm_code rc = tdm_image_load(g_path, &out, &st);
        CHECK_MSG(rc == TDM_ERR_FORMAT || rc == TDM_ERR_UNSUPPORTED, "dims %u x %u: rc %d", dims[k][0],
                  dims[k][1], rc);
    }
    free(bad);
    free(bytes);

    /* not an image, empty file, missing file */
    write_bytes(tmp_path("text.png"), "hello world", 11);
    CHECK(tdm_image_load(g_path, &out, &st) == TDM_ERR_FORMAT);
    CHECK(strstr(st.msg, "not a PNG or JPEG") != NULL);
    write_bytes(tmp_path("empty.png"), "", 0);
    CHECK(tdm_image_load(g_path, &out, &st) == TDM_ERR_FORMAT);
    CHECK(tdm_image_load(tmp_path("missing.png"), &out, &st) != TDM_OK);
}

/* JPEG encoded with libjpeg into memory. */
static uint8_t *make_jpeg(int w, int h, int gray, unsigned long *size) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    jpeg_mem_dest(&c, &mem, size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    int comps = gray ? 1 : 3;
    uint8_t *row = malloc((size_t)w * comps);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * comps; x++) row[x] = (uint8_t)((x * 5 + c.next_scanline * 3) & 0xFF);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return mem;
}

static void test_jpeg(void) {
    tdm_status st = {0};
    tdm_image out;
    unsigned long sz = 0;
    uint8_t *jpg = make_jpeg(40, 24, 0, &sz);
    write_bytes(tmp_path("a.jpg"), jpg, sz);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.width == 40 && out.height == 24 && out.channels == 3);
    /* lossy but close: pixel (1, 2) channel 0 of row 2 = (3*5 + 2*3) */
    CHECK(out.pixels && abs((int)out.pixels[(2 * 40 + 1) * 3] - 21) < 12);
    tdm_image_free(&out);

    /* named .png: still decoded as JPEG */
    write_bytes(tmp_path("jpeg_named.png"), jpg, sz);
    CHECK(tdm_image_load(g_path, &out, &st) == TDM_OK);
    tdm_image_free(&out);

    /* truncated at several points */
    size_t cuts[] = {3, 10, 100, sz / 2, sz - 4};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(tmp_path("trunc.jpg"), jpg, cuts[i]);
        tdm_code rc = tdm_image_load(g_path, &out, &st);
        CHECK_MSG(rc == TDM_ERR_FORMAT, "jpeg cut %zu: rc %d (%s)", cuts[i], rc, st.msg);
        CHECK(out.pixels == NULL);
    }
    /* garbage in the header segments */
    uint8_t *bad = malloc(sz);
    memcpy(bad, jpg, sz);
    for (size_t i = 20; i < 200 && i < sz; i++) bad[i] = (uint8_t)(i * 31);
    write_bytes(tmp_path("corrupt.jpg"), bad, sz);
    CHECK(tdm_image_load(g_path, &out, &st) != TDM_OK);
    tdm_image_free(&out);

    /* absurd SOF dimensions: find the SOF0 marker and set 60000 x 60000 */
    memcpy(bad, jpg, sz);
    int patched = 0;
    for (size_t i = 2; i + 9 < sz; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {
            bad[i + 5] = 0xEA, bad[i + 6] = 0x60; /* height 60000 */
            bad[i + 7] = 0xEA, bad[i + 8] = 0x60; /* width */
            patched = 1;
            break;
        }
    CHECK(patched);
    write_bytes(tmp_path("huge.jpg"), bad, sz);
    tdm_code rc = tdm_image_load(g_path, &out, &st);
    CHECK_MSG(rc == TDM_ERR_UNSUPPORTED, "rc %d: %s", rc, st.msg);
    CHECK(strstr(st.msg, "limit") != NULL);
    free(bad);
    free(jpg);

    /* grayscale JPEG -> RGB with equal channels */
    jpg = make_jpeg(16, 8, 1, &sz);
    write_bytes(tmp_path("g.jpg"), jpg, sz);
    CHECK_MSG(tdm_image_load(g_path, &out, &st) == TDM_OK, "%s", st.msg);
    CHECK(out.pixels && out.pixels[30] == out.pixels[31] && out.pixels[31] == out.pixels[32]);
    tdm_image_free(&out);
    free(jpg);
}

/* Pillow bicubic resize: uint8 path must be exact, float path within 1e-5. */
static void test_resize_fixture(void) {
    const char *dir = tdm_test_fixture("preprocessing");
    if (!dir) {
        printf("preprocessing fixture absent: resize comparison skipped\n");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    tdm_safetensors f;
    tdm_status st = {0};
    CHECK_MSG(tdm_st_open(&f, path, &st) == TDM_OK, "%s", st.msg);
    int n_u8 = 0, n_f32 = 0;
    for (int i = 0; i < f.n_entries; i++) {
        const char *name = f.entries[i].name;
        size_t len = strlen(name);
        if (len < 3 || strcmp(name + len - 3, "/in") != 0) continue;
        char base[256], outname[300];
        snprintf(base, sizeof base, "%.*s", (int)(len - 3), name);
        snprintf(outname, sizeof outname, "%s/out", base);
        const tdm_st_entry *eo = tdm_st_find(&f, outname);
        if (!eo) continue;
        tdm_tensor ti = tdm_st_view(&f, &f.entries[i]), to = tdm_st_view(&f, eo);
        const float *in = ti.data, *ref = to.data;
        if (strncmp(name, "resize_u8/", 10) == 0) {
            tdm_image src;
            int ih = (int)ti.shape[0], iw = (int)ti.shape[1], oh = (int)to.shape[0], ow = (int)to.shape[1];
            CHECK(tdm_image_alloc(&src, iw, ih, &st) == TDM_OK);
            for (long k = 0; k < (long)iw * ih * 3; k++) src.pixels[k] = (uint8_t)in[k];
            tdm_image dst;
            CHECK(tdm_image_resize(&src, ow, oh, TDM_RESAMPLE_BICUBIC, &dst, &st) == TDM_OK);
            long bad = 0;
            for (long k = 0; k < (long)ow * oh * 3; k++) bad += dst.pixels[k] != (uint8_t)ref[k];
            CHECK_MSG(bad == 0, "%s: %ld pixels differ from Pillow", base, bad);
            tdm_image_free(&src);
            tdm_image_free(&dst);
            n_u8++;
        } else if (strncmp(name, "resize_f32/", 11) == 0) {
            int ih = (int)ti.shape[0], iw = (int)ti.shape[1], oh = (int)to.shape[0], ow = (int)to.shape[1];
            float *dst = malloc(sizeof(float) * (size_t)ow * oh);
            CHECK(tdm_resize_f32(in, iw, ih, dst, ow, oh, TDM_RESAMPLE_BICUBIC, &st) == TDM_OK);
            double m = tdm_test_max_abs(dst, ref, (long)ow * oh);
            CHECK_MSG(m < 1e-5, "%s: max abs %g", base, m);
            free(dst);
            n_f32++;
        } else if (strncmp(name, "center_crop/", 12) == 0 && !strstr(name, "larger")) {
            snprintf(outname, sizeof outname, "%s/transformers", base);
            eo = tdm_st_find(&f, outname);
            if (!eo) continue;
            to = tdm_st_view(&f, eo);
            ref = to.data;
            tdm_image src, dst;
            int ih = (int)ti.shape[0], iw = (int)ti.shape[1], oh = (int)to.shape[0], ow = (int)to.shape[1];
            CHECK(tdm_image_alloc(&src, iw, ih, &st) == TDM_OK);
            for (long k = 0; k < (long)iw * ih * 3; k++) src.pixels[k] = (uint8_t)in[k];
            CHECK(tdm_image_center_crop(&src, ow, oh, &dst, &st) == TDM_OK);
            long bad = 0;
            for (long k = 0; k < (long)ow * oh * 3; k++) bad += dst.pixels[k] != (uint8_t)ref[k];
            CHECK_MSG(bad == 0, "%s: center crop differs in %ld values", base, bad);
            tdm_image_free(&src);
            tdm_image_free(&dst);
        }
    }
    CHECK(n_u8 >= 5 && n_f32 >= 3);
    printf("resize: %d uint8 cases exact, %d float cases\n", n_u8, n_f32);
    tdm_st_close(&f);

    /* Lanczos: constant image stays constant, downscale 2x of a smooth ramp stays within range */
    tdm_image a, b;
    CHECK(tdm_image_alloc(&a, 64, 48, &st) == TDM_OK);
    memset(a.pixels, 77, 64 * 48 * 3);
    CHECK(tdm_image_resize(&a, 24, 40, TDM_RESAMPLE_LANCZOS, &b, &st) == TDM_OK);
    int same = 1;
    for (int k = 0; k < 24 * 40 * 3; k++) same &= b.pixels[k] == 77;
    CHECK(same);
    tdm_image_free(&a);
    tdm_image_free(&b);
}

/* tdm_image_fill_holes: a uniform surrounding fills the hole exactly; pixels outside the hole never change;
 * hole pixels stay within the range of the known colours and lean towards the nearer side; no known pixel:
 * mid gray; islands inside the hole do not feed it; awkward sizes (1 x 1, primes, one row). */
static void test_fill_holes(void) {
    static const int sizes[][2] = {{1, 1}, {7, 3}, {13, 1}, {1, 11}, {64, 64}, {37, 23}};
    tdm_status st = {0};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int W = sizes[t][0], H = sizes[t][1];
        tdm_image img = {0}, orig = {0};
        CHECK(tdm_image_alloc(&img, W, H, &st) == TDM_OK);
        CHECK(tdm_image_alloc(&orig, W, H, &st) == TDM_OK);
        unsigned char *hole = calloc((size_t)W * H, 1); /* [H, W] */
        CHECK(hole != NULL);
        if (!img.pixels || !orig.pixels || !hole) return;
        /* uniform surrounding, noise in the hole: the hole becomes the surrounding's colour */
        int n_hole = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int i = y * W + x, in = x >= W / 3 && x <= (2 * W) / 3 && y >= H / 3 && y <= (2 * H) / 3;
                hole[i] = (unsigned char)(in && W * H > 1);
                n_hole += hole[i];
                const uint8_t c[3] = {10, 200, 30};
                for (int ch = 0; ch < 3; ch++)
                    img.pixels[3 * i + ch] = hole[i] ? (uint8_t)((i * 37 + ch * 91) % 256) : c[ch];
            }
        CHECK(tdm_image_fill_holes(&img, hole, &st) == TDM_OK);
        int exact = 1;
        for (int i = 0; i < W * H; i++)
            exact &= img.pixels[3 * i] == 10 && img.pixels[3 * i + 1] == 200 && img.pixels[3 * i + 2] == 30;
        CHECK_MSG(exact, "%dx%d: a uniform surrounding fills the hole exactly (%d hole pixels)", W, H, n_hole);
        /* red left, blue right, random values inside the hole: outside unchanged, inside within range */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const int i = y * W + x;
                const int left = x < W / 2;
                img.pixels[3 * i] = hole[i] ? (uint8_t)(i * 13) : (uint8_t)(left ? 250 : 5 + (x * 7) % 20);
                img.pixels[3 * i + 1] = hole[i] ? (uint8_t)(i * 5) : (uint8_t)(y % 50);
                img.pixels[3 * i + 2] = hole[i] ? 0 : (uint8_t)(left ? 5 : 240);
            }
        memcpy(orig.pixels, img.pixels, (size_t)W * H * 3);
        CHECK(tdm_image_fill_holes(&img, hole, &st) == TDM_OK);
        int outside_same = 1, in_range = 1;
        for (int i = 0; i < W * H; i++) {
            if (!hole[i]) {
                outside_same &= memcmp(img.pixels + 3 * i, orig.pixels + 3 * i, 3) == 0;
            } else {
                in_range &= img.pixels[3 * i] >= 5 && img.pixels[3 * i] <= 250 && img.pixels[3 * i + 1] <= 49 &&
                            img.pixels[3 * i + 2] >= 5 && img.pixels[3 * i + 2] <= 240;
            }
        }
        CHECK_MSG(outside_same, "%dx%d: pixels outside the hole unchanged", W, H);
        CHECK_MSG(in_range, "%dx%d: filled pixels within the range of the known ones", W, H);
        if (W == 64) { /* the hole's left column is redder than its right column */
            long left_red = 0, right_red = 0;
            for (int y = H / 3; y <= (2 * H) / 3; y++) {
                left_red += img.pixels[3 * (y * W + W / 3)];
                right_red += img.pixels[3 * (y * W + (2 * W) / 3)];
            }
            CHECK_MSG(left_red > right_red + 50L * (H / 3), "fill leans to the nearer side (%ld vs %ld)", left_red,
                      right_red);
        }
        /* all hole: mid gray */
        memset(hole, 1, (size_t)W * H);
        CHECK(tdm_image_fill_holes(&img, hole, &st) == TDM_OK);
        int gray = 1;
        for (int i = 0; i < W * H * 3; i++) gray &= img.pixels[i] == 128;
        CHECK_MSG(gray, "%dx%d: nothing to fill from gives mid gray", W, H);
        free(hole);
        tdm_image_free(&img);
        tdm_image_free(&orig);
    }
    /* islands the hole encloses do not feed it: a blue frame, a hole ring, a red island in the middle -> the ring
     * is blue; with the hole over the frame too (a new background), nothing lies around it -> mid gray */
    {
        const int W = 21, H = 17;
        tdm_image img = {0};
        unsigned char *hole = calloc((size_t)W * H, 1); /* [H, W] */
        CHECK(tdm_image_alloc(&img, W, H, &st) == TDM_OK && hole);
        if (!img.pixels || !hole) return;
        for (int frame = 1; frame >= 0; frame--) {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const int i = y * W + x, edge = x < 2 || y < 2 || x >= W - 2 || y >= H - 2;
                    const int island = x >= 8 && x <= 12 && y >= 6 && y <= 10;
                    hole[i] = (unsigned char)(!island && (!edge || !frame));
                    const uint8_t c[3] = {(uint8_t)(island ? 230 : 10), 20, (uint8_t)(island ? 10 : 240)};
                    memcpy(img.pixels + 3 * i, c, 3);
                }
            CHECK(tdm_image_fill_holes(&img, hole, &st) == TDM_OK);
            const uint8_t *ring = img.pixels + 3 * (4 * W + 4), *mid = img.pixels + 3 * (8 * W + 6);
            if (frame)
                CHECK_MSG(ring[0] == 10 && ring[2] == 240 && mid[0] == 10 && mid[2] == 240,
                          "the ring is the frame's blue (%d %d %d)", ring[0], ring[1], ring[2]);
            else
                CHECK_MSG(ring[0] == 128 && ring[1] == 128 && ring[2] == 128 && img.pixels[3 * (8 * W + 10)] == 230,
                          "no frame: mid gray around the island, the island kept (%d %d %d)", ring[0], ring[1], ring[2]);
        }
        free(hole);
        tdm_image_free(&img);
    }
    tdm_image none = {0};
    unsigned char one = 1;
    CHECK(tdm_image_fill_holes(&none, &one, &st) == TDM_ERR_INVALID_ARG);
}

int main(void) {
    test_png_roundtrip();
    test_png_conversions();
    test_png_bad();
    test_jpeg();
    test_resize_fixture();
    test_fill_holes();
    return tdm_test_result();
}
