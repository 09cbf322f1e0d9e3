/* Presets (public API: tandem.h "presets" block; docs/PRESETS.md) and the teacher-size hand-over of the
 * adaptive pipeline that the sdxl-turbo preset needs (a student at 512x512, a teacher at 1024x1024).
 *
 *  preset.c       the preset table, lookup, apply, model checks
 *  preset_size.c  student -> teacher size: the student's image resized with Pillow's bicubic filter, as the
 *                 reference code's `student_out.resize((1024, 1024))` (Pillow >= 7 default resample) */
#ifndef TDM_PIPELINE_PRESET_H
#define TDM_PIPELINE_PRESET_H

#include "pipeline/adaptive.h"

/* 1 when the setup's teacher size differs from the student's (tdm_adaptive_params.teacher_width/height). */
int tdm_adaptive_sizes_differ(const tdm_adaptive_setup *s);

/* When the sizes differ: replaces student->image by its bicubic resize to the teacher's size (what the
 * oracle scores, what a kept result is, and what the teacher's pixel hand-off encodes). No-op otherwise. */
tdm_code tdm_adaptive_student_to_teacher_size(const tdm_adaptive_setup *s, tdm_gen_result *student, tdm_status *st);

#endif
