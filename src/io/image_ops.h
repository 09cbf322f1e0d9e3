/* Oracle image preprocessing on top of image.h's Pillow-exact resize: the shortest-edge size rule,
 * the two centre-crop conventions and normalisation to NCHW float.
 *
 *  ImageReward (torchvision): Resize(n, BICUBIC) on a PIL image -> CenterCrop(n) with
 *      top = round((H - h) / 2), round half to even (zero-padding first when the crop is larger)
 *      -> ToTensor (x / 255) -> Normalize(mean, std).
 *  transformers CLIPImageProcessor: PIL bicubic resize of the shortest edge -> center_crop with
 *      top = (H - h) // 2 (floor) -> x * (1/255) -> normalize.
 * Both size the long edge int(n * long / short) (truncation). */
#ifndef TDM_IO_IMAGE_OPS_H
#define TDM_IO_IMAGE_OPS_H

#include "base/error.h"
#include "io/image.h"

/* OpenAI CLIP normalisation constants (ImageReward, CLIP, the LAION heads). */
extern const float tdm_clip_mean[3], tdm_clip_std[3];

/* torchvision / transformers shortest-edge rule: short -> n, long -> int(n * long / short).
 * Error when a side would exceed TDM_IMAGE_MAX_SIDE or the input is empty. */
tdm_code tdm_shortest_edge_size(int w, int h, int n, int *out_w, int *out_h, tdm_status *st);

typedef enum tdm_crop_mode {
    TDM_CROP_TORCHVISION = 0,  /* torchvision CenterCrop: round half to even; pads (ch-h)//2 top,
                                * (ch-h+1)//2 bottom when larger; result height x width */
    TDM_CROP_TRANSFORMERS = 1  /* transformers 4.30 image_transforms.center_crop: floor; when the crop
                                * is larger than the image, its padding path, whose result can be
                                * smaller than asked (reproduced as is) */
} tdm_crop_mode;

/* dst = centre crop of an RGB8 image (new buffer); dst's size may differ from width x height only
 * for TDM_CROP_TRANSFORMERS with a crop larger than the image. */
tdm_code tdm_image_center_crop_mode(const tdm_image *src, int width, int height, tdm_crop_mode mode, tdm_image *dst,
                                    tdm_status *st);

/* out [3, H, W] = (x / 255 - mean[c]) / std[c], each step in float32 as torchvision does. */
void tdm_image_normalize_chw(const tdm_image *img, const float mean[3], const float std[3], float *out);

/* Full oracle preprocessing of an RGB8 image: shortest edge -> size (bicubic), centre crop size x size
 * (mode), normalise. out [3, size, size]. resized / cropped (may be NULL) receive the intermediates
 * (caller frees with tdm_image_free). */
tdm_code tdm_preprocess_oracle(const tdm_image *src, int size, tdm_crop_mode mode, const float mean[3],
                               const float std[3], float *out, tdm_image *resized, tdm_image *cropped,
                               tdm_status *st);

#endif
