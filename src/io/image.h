/* Image files and pixel helpers: PNG (libpng) and JPEG (libjpeg) decoding to 8-bit RGB, PNG writing
 * with text chunks (A1111 "parameters"), and Pillow-compatible resampling.
 *
 * Decoding (format from the magic bytes, never the file name):
 *  - every PNG colour type / bit depth becomes RGB8: palette -> RGB, gray -> R=G=B, 16-bit -> high
 *    byte (as Pillow's convert("RGB")), alpha dropped without compositing (as Pillow's
 *    convert("RGB"), which diffusers' load_image uses);
 *  - JPEG: gray and YCbCr -> RGB; CMYK/YCCK are refused (TDM_ERR_UNSUPPORTED);
 *  - limits against hostile files: at most TDM_IMAGE_MAX_SIDE pixels a side and TDM_IMAGE_MAX_PIXELS
 *    pixels, files up to TDM_IMAGE_MAX_FILE bytes; corrupt or truncated data is TDM_ERR_FORMAT with
 *    the decoder's message (libpng/libjpeg errors are caught with setjmp; nothing exits).
 * tdm_image itself is declared in tandem.h (public). */
#ifndef TDM_IO_IMAGE_H
#define TDM_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define TDM_IMAGE_MAX_SIDE 16384
#define TDM_IMAGE_MAX_PIXELS (1L << 28)
#define TDM_IMAGE_MAX_FILE ((size_t)1 << 30)

typedef enum tdm_image_format { TDM_IMAGE_UNKNOWN = 0, TDM_IMAGE_PNG, TDM_IMAGE_JPEG } tdm_image_format;

/* Format from the first bytes (PNG signature / JPEG SOI marker). */
tdm_image_format tdm_image_sniff(const uint8_t *data, size_t n);

/* Allocates an RGB8 image (pixels uninitialised). Dimensions checked against the limits. */
tdm_code tdm_image_alloc(tdm_image *img, int width, int height, tdm_status *st);

/* Decodes a PNG or JPEG held in memory; `what` names the source in messages. */
tdm_code tdm_image_decode(const uint8_t *data, size_t n, const char *what, tdm_image *out, tdm_status *st);

/* One text chunk. Written as tEXt when the text is ASCII, else as uncompressed iTXt (UTF-8), as
 * Pillow's PngInfo.add_text does. Keys: 1..79 Latin-1 characters (PNG rule). */
typedef struct tdm_png_text {
    const char *key;
    const char *text;
} tdm_png_text;

/* Writes img (RGB8) as an 8-bit RGB PNG with the given text chunks. */
tdm_code tdm_png_write(const char *path, const tdm_image *img, const tdm_png_text *texts, int n_texts,
                       tdm_status *st);

/* Reads the text chunk `key` (tEXt, zTXt or iTXt) of a PNG file into a malloc'ed string (*out NULL
 * when the file has no such chunk). */
tdm_code tdm_png_read_text(const char *path, const char *key, char **out, tdm_status *st);

/* Resampling filters, as Pillow's Image.resize (libImaging/Resample.c): separable, horizontal pass then
 * vertical pass, filter support widened by the scale factor when downscaling (antialiasing), weights
 * normalised per output pixel and rounded to 22-bit fixed point, each pass rounded and clamped to 0..255.
 *  bilinear: triangle, support 1; bicubic: Keys a = -0.5, support 2; lanczos: sinc(x) sinc(x/3), support 3. */
typedef enum tdm_resample { TDM_RESAMPLE_BILINEAR = 0, TDM_RESAMPLE_BICUBIC, TDM_RESAMPLE_LANCZOS } tdm_resample;

/* dst = src resized to width x height (new buffer; dst must not alias src). Same size: a copy. */
tdm_code tdm_image_resize(const tdm_image *src, int width, int height, tdm_resample filter, tdm_image *dst,
                          tdm_status *st);

/* Float variant on one channel [h, w] (Pillow 'F' mode: the same weights in double, no rounding). */
tdm_code tdm_resize_f32(const float *src, int w, int h, float *dst, int out_w, int out_h, tdm_resample filter,
                        tdm_status *st);

/* Center crop to width x height: top = (H - h) / 2, left = (W - w) / 2 (floor, as transformers'
 * center_crop); zero padding where the crop is larger than the image. */
tdm_code tdm_image_center_crop(const tdm_image *src, int width, int height, tdm_image *dst, tdm_status *st);

/* Fills the pixels of an RGB8 image where hole [H, W] is nonzero with the colours around them, smoothly
 * interpolated (pull-push, image_fill.c); the rest unchanged. Only the pixels connected to the image border
 * outside the hole feed it (islands it encloses do not); none: mid gray. */
tdm_code tdm_image_fill_holes(tdm_image *img, const unsigned char *hole, tdm_status *st);

#endif
