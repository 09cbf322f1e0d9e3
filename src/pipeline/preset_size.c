/* The adaptive pipeline's teacher-size hand-over (pipeline/preset.h): a student sampled at one size, a
 * teacher working at another (sdxl-turbo preset: 512 -> 1024), joined through pixels. */
#include "pipeline/preset.h"

#include "io/image.h"

int tdm_adaptive_sizes_differ(const tdm_adaptive_setup *s) {
    return s->sp.width != s->tp.width || s->sp.height != s->tp.height;
}

tdm_code tdm_adaptive_student_to_teacher_size(const tdm_adaptive_setup *s, tdm_gen_result *student, tdm_status *st) {
    if (!tdm_adaptive_sizes_differ(s)) return TDM_OK;
    if (!student->image.pixels) return tdm_fail(st, TDM_ERR_INVALID_ARG, "teacher size: no student image to resize");
    tdm_image big = {0};
    /* reference code: student(...).images[0].resize((1024, 1024)), PIL's default resample (bicubic) */
    TDM_TRY(tdm_image_resize(&student->image, s->tp.width, s->tp.height, TDM_RESAMPLE_BICUBIC, &big, st));
    tdm_image_free(&student->image);
    student->image = big;
    return TDM_OK;
}
