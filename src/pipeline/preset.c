/* Presets: the paper's released student-teacher configurations (tandem.h "presets" block,
 * docs/PRESETS.md), defined once here. Sources (../shared/docs/paper-notes.md):
 *   lcm-sdxl, sdxl-turbo   the reference repo's README examples 1 and 2 (paper notes 2.1, 1.4)
 *   sd15-cd, sd15-lcm-lora the paper's SD1.5 setting (paper notes 2.2, 3.2): CD-SD1.5 5 steps with real CFG
 *                          w = 8, SD1.5 teacher with DPM-Solver++ (2M); the teacher's steps follow the budget
 *                          arithmetic of the headline point (5 + 50% x 10 = 10 steps); the strength is not
 *                          in any retrievable source (appendix D.2): 0.6, inside the README's 0.5-0.8 range
 *                          for a base-model teacher. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/adaptive.h"
#include "pipeline/preset.h"

static const tdm_preset g_presets[] = {
    {
        .name = "lcm-sdxl",
        .summary = "LCM-SDXL (lcm, 4 steps, guidance 8 as w-embedding) -> SDXL base (UniPC, 12 steps, guidance 8, "
                   "strength 0.7), 1024x1024, k 50",
        .source = "reference code README example 1 (yandex-research/adaptive-diffusion e36646b): "
                  "num_inference_steps_student=4, student_guidance=8.0, num_inference_steps_teacher=12, "
                  "teacher_guidance=8.0, sigma=0.7, k=50; teacher StableDiffusionXLImg2ImgPipeline + UniPC",
        .models = "--model SDXL_BASE --student-unet unet_lcm (LCM-SDXL's unet/ added to the base folder as the "
                  "component unet_lcm), or --student LCM_SDXL_FOLDER (the base folder with LCM-SDXL's unet/) "
                  "--teacher SDXL_BASE",
        .student = {4, 8.0f, "lcm", 0.0f},
        .teacher = {12, 8.0f, "unipc", 0.0f},
        .width = 1024,
        .height = 1024,
        .strategy = TDM_ADAPTIVE_REFINE,
        .refine_convention = TDM_REFINE_STRENGTH,
        .refine_value = 0.7f,
        .k = 50,
        .oracle = "imagereward",
        .student_family = "sdxl",
        .teacher_family = "sdxl",
        .student_lcm = 1,
    },
    {
        .name = "sdxl-turbo",
        .summary = "SDXL-Turbo (euler_a trailing, 2 steps, guidance 0) at 512x512, upscaled to 1024x1024 -> SDXL "
                   "refiner (UniPC, 4 steps, guidance 8, strength 0.3), k 50",
        .source = "reference code README example 2: AutoPipelineForText2Image stabilityai/sdxl-turbo "
                  "(EulerAncestral, trailing), num_inference_steps_student=2, student_guidance=0.0, output "
                  ".resize((1024, 1024)); teacher stable-diffusion-xl-refiner-1.0 img2img + UniPC, "
                  "num_inference_steps_teacher=4, sigma=0.3, teacher_guidance=8.0 (default), k=50",
        .models = "--student SDXL_TURBO (stabilityai/sdxl-turbo folder: its scheduler config has trailing spacing) "
                  "--teacher SDXL_REFINER",
        .student = {2, 0.0f, "euler_a", 0.0f},
        .teacher = {4, 8.0f, "unipc", 0.0f},
        .width = 512,
        .height = 512,
        .teacher_width = 1024,
        .teacher_height = 1024,
        .strategy = TDM_ADAPTIVE_REFINE,
        .refine_convention = TDM_REFINE_STRENGTH,
        .refine_value = 0.3f,
        .k = 50,
        .oracle = "imagereward",
        .student_family = "sdxl",
        .teacher_family = "sdxl-refiner",
        .student_trailing = 1,
    },
    {
        .name = "sd15-cd",
        .summary = "CD-SD1.5 (consistency, 5 steps, CFG 8) -> SD1.5 (DPM++ 2M, 10 steps, guidance 8, strength 0.6), "
                   "512x512, k 50",
        .source = "paper SD1.5 setting: cd_sd_v1.5_bs512_w8 student, 5 steps, real CFG w=8 (cm/diffusion.py "
                  "sample, 'stochastic'); SD1.5 teacher with DPM-Solver (2nd-order multistep), guidance 8; teacher "
                  "steps 10 from the budget 5 + 50% x 10 = 10 (the paper's 'Ours, NFE 10'); strength 0.6 is "
                  "tandem's choice (appendix D.2 not retrievable)",
        .models = "--student CD_SD15 (an SD1.5 folder whose unet/ is the converted cd_sd_v1.5 checkpoint, "
                  "tools/convert_ckpt.py) --teacher SD15, or --model SD15 --student-unet unet_cd",
        .student = {5, 8.0f, "consistency", 0.0f},
        .teacher = {10, 8.0f, "dpmpp_2m", 0.0f},
        .width = 512,
        .height = 512,
        .strategy = TDM_ADAPTIVE_REFINE,
        .refine_convention = TDM_REFINE_STRENGTH,
        .refine_value = 0.6f,
        .k = 50,
        .oracle = "imagereward",
        .student_family = "sd1",
        .teacher_family = "sd1",
    },
    {
        .name = "sd15-lcm-lora",
        .summary = "SD1.5 + LCM-LoRA (lcm, 4 steps, guidance 1) -> SD1.5 (DPM++ 2M, 10 steps, guidance 8, strength "
                   "0.6), 512x512, k 50",
        .source = "LCM-LoRA model card defaults (latent-consistency/lcm-lora-sdv1-5: LCMScheduler, 4 steps, "
                  "guidance 1); teacher as sd15-cd (the paper's SD1.5 teacher)",
        .models = "--model SD15 --student-lora lcm-lora-sdv1-5.safetensors (the student is the teacher + LCM-LoRA; "
                  "one copy of the UNet weights serves both)",
        .student = {4, 1.0f, "lcm", 0.0f},
        .teacher = {10, 8.0f, "dpmpp_2m", 0.0f},
        .width = 512,
        .height = 512,
        .strategy = TDM_ADAPTIVE_REFINE,
        .refine_convention = TDM_REFINE_STRENGTH,
        .refine_value = 0.6f,
        .k = 50,
        .oracle = "imagereward",
        .student_family = "sd1",
        .teacher_family = "sd1",
        .student_lora = 1,
    },
};

#define N_PRESETS ((int)(sizeof g_presets / sizeof g_presets[0]))

const tdm_preset *tdm_presets(int *n) {
    if (n) *n = N_PRESETS;
    return g_presets;
}

tdm_code tdm_preset_find(const char *name, const tdm_preset **out, tdm_status *st) {
    if (out) *out = NULL;
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_preset_find: out is NULL");
    for (int i = 0; name && i < N_PRESETS; i++)
        if (strcmp(name, g_presets[i].name) == 0) {
            *out = &g_presets[i];
            return TDM_OK;
        }
    char names[256] = "";
    size_t len = 0;
    for (int i = 0; i < N_PRESETS; i++)
        len += (size_t)snprintf(names + len, len < sizeof names ? sizeof names - len : 0, "%s%s", i ? ", " : "",
                                g_presets[i].name);
    return tdm_fail(st, TDM_ERR_INVALID_ARG, "unknown preset '%.64s' (known: %s)", name ? name : "(null)", names);
}

void tdm_preset_apply(const tdm_preset *pr, tdm_adaptive_params *p) {
    if (!pr || !p) return;
    p->student = pr->student;
    p->teacher = pr->teacher;
    p->width = pr->width;
    p->height = pr->height;
    p->teacher_width = pr->teacher_width;
    p->teacher_height = pr->teacher_height;
    p->strategy = pr->strategy;
    p->refine_convention = pr->refine_convention;
    if (pr->refine_convention == TDM_REFINE_NOISE) p->refine_noise = pr->refine_value;
    else p->refine_strength = pr->refine_value;
    p->k = pr->k;
    p->oracle_name = pr->oracle;
    p->preset = pr->name;
}

/* Appends one formatted line (+ '\n') to warn and counts it. */
static void add_line(char *warn, size_t size, int *n, const char *fmt, ...) TDM_PRINTF(4, 5);
static void add_line(char *warn, size_t size, int *n, const char *fmt, ...) {
    size_t len = strlen(warn);
    va_list ap;
    va_start(ap, fmt);
    if (len < size) vsnprintf(warn + len, size - len, fmt, ap);
    va_end(ap);
    len = strlen(warn);
    if (len + 1 < size) {
        warn[len] = '\n';
        warn[len + 1] = '\0';
    }
    (*n)++;
}

int tdm_preset_check(const tdm_preset *pr, const tdm_model *student, const tdm_model *teacher, char *warn,
                     size_t size) {
    if (warn && size) warn[0] = '\0';
    if (!pr || !student || !warn || !size) return 0;
    int n = 0;
    tdm_model_info si;
    tdm_model_get_info(student, &si);
    if (pr->student_family && strcmp(si.family, pr->student_family) != 0)
        add_line(warn, size, &n, "preset %s: the student is a '%s' model, the preset expects '%s'", pr->name,
                 si.family, pr->student_family);
    if (pr->student_lcm && !si.is_lcm)
        add_line(warn, size, &n, "preset %s: the student's UNet has no guidance embedding (time_cond_proj_dim): "
                 "not an LCM UNet", pr->name);
    if (pr->student_trailing && tdm_model_sd(student)->scheduler.timestep_spacing != TDM_SPACING_TRAILING)
        add_line(warn, size, &n, "preset %s: the student's scheduler config does not use trailing spacing "
                 "(SDXL-Turbo's does: 2 steps are 999, 499)", pr->name);
    if (pr->student_lora && tdm_model_lora_summary(student, NULL, 0) == 0)
        add_line(warn, size, &n, "preset %s: the student has no LoRA (expected the teacher + LCM-LoRA: "
                 "--student-lora FILE)", pr->name);
    if (teacher && pr->teacher_family) {
        tdm_model_info ti;
        tdm_model_get_info(teacher, &ti);
        if (strcmp(ti.family, pr->teacher_family) != 0)
            add_line(warn, size, &n, "preset %s: the teacher is a '%s' model, the preset expects '%s'", pr->name,
                     ti.family, pr->teacher_family);
    }
    return n;
}
