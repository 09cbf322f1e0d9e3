/* `--preset NAME` for generate --adaptive, calibrate and eval (app/cli_preset.h, docs/PRESETS.md).
 * Uses only tandem.h. */
#include "app/cli_preset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "app/args.h"

int tdm_cli_preset_parse(const char *cmd, int argc, char **argv, int *ip, int with_teacher, tdm_cli_preset_opts *o) {
    int i = *ip, err = 0, r = 1;
    const char *v, *a = argv[i];
    if (strcmp(a, "--oracle") == 0 || strncmp(a, "--oracle=", 9) == 0) {
        o->oracle_given = 1;
        return 0; /* parsed by tdm_cli_common_parse */
    }
    if ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){"--preset", NULL}, &err)) || err)
        r = err ? -1 : (o->name = v, 1);
    else if (with_teacher &&
             ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){"--teacher-width", NULL}, &err)) || err))
        r = err || !tdm_arg_int(cmd, "--teacher-width", v, 64, 4096, &o->teacher_width) ? -1 : 1;
    else if (with_teacher &&
             ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){"--teacher-height", NULL}, &err)) || err))
        r = err || !tdm_arg_int(cmd, "--teacher-height", v, 64, 4096, &o->teacher_height) ? -1 : 1;
    else r = 0;
    *ip = i;
    return r;
}

static void list_presets(void) {
    int n = 0;
    const tdm_preset *ps = tdm_presets(&n);
    printf("presets (docs/PRESETS.md; explicit options override a preset's settings):\n");
    for (int i = 0; i < n; i++) {
        printf("\n  %s\n    %s\n    models: %s\n", ps[i].name, ps[i].summary, ps[i].models);
        printf("    oracle %s (the paper's; give --oracle-model, or --oracle NAME), k %g (needs --calibration, or "
               "give --tau)\n",
               ps[i].oracle, ps[i].k);
    }
}

int tdm_cli_preset_resolve(const char *cmd, const tdm_cli_preset_opts *o, const tdm_preset **out) {
    *out = NULL;
    if (!o->name) return -1;
    if (strcmp(o->name, "help") == 0 || strcmp(o->name, "list") == 0) {
        list_presets();
        return 0;
    }
    tdm_status st = {0};
    if (tdm_preset_find(o->name, out, &st)) {
        fprintf(stderr, "tandem %s: --preset: %s\n", cmd, st.msg);
        return 2;
    }
    return -1;
}

void tdm_cli_preset_fill(const tdm_preset *pr, tdm_cli_common_opts *c, tdm_cli_teacher_opts *t,
                         tdm_cli_preset_opts *o, double *k, int have_threshold) {
    if (!pr) return;
    /* the options' "not given" values: steps 0, guidance < 0, sampler NULL, size 0, strength / noise NAN */
    if (!c->student.steps) c->student.steps = pr->student.steps;
    if (c->student.guidance < 0) c->student.guidance = pr->student.guidance;
    if (!c->student.sampler) c->student.sampler = pr->student.sampler;
    if (!c->width) c->width = pr->width;
    if (!c->height) c->height = pr->height;
    if (!o->oracle_given && pr->oracle) c->oracle = pr->oracle;
    if (t) {
        if (!t->settings.steps) t->settings.steps = pr->teacher.steps;
        if (t->settings.guidance < 0) t->settings.guidance = pr->teacher.guidance;
        if (!t->settings.sampler) t->settings.sampler = pr->teacher.sampler;
        if (isnan(t->strength) && isnan(t->noise)) {
            if (pr->refine_convention == TDM_REFINE_NOISE) t->noise = pr->refine_value;
            else t->strength = pr->refine_value;
        }
        if (!o->teacher_width && !o->teacher_height) {
            o->teacher_width = pr->teacher_width;
            o->teacher_height = pr->teacher_height;
        }
    }
    if (k && !have_threshold) *k = pr->k;
}

void tdm_cli_preset_warn(const char *cmd, const tdm_preset *pr, const tdm_model *student, const tdm_model *teacher) {
    if (!pr) return;
    char warn[2048];
    if (!tdm_preset_check(pr, student, teacher, warn, sizeof warn)) return;
    for (char *line = strtok(warn, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "tandem %s: warning: %s\n", cmd, line);
}

void tdm_cli_preset_help(int with_teacher) {
    printf("preset (docs/PRESETS.md):\n"
           "  --preset NAME          the paper's released configurations: lcm-sdxl, sdxl-turbo, sd15-cd,\n"
           "                         sd15-lcm-lora (--preset help lists them with the model options each needs);\n"
           "                         sets the settings a run leaves unset; explicit options override them\n");
    if (with_teacher)
        printf("  --teacher-width N, --teacher-height N   the teacher's size (default: the preset's, else the\n"
               "                         student's); a different size upscales the student's image (bicubic)\n"
               "                         before the oracle and hands over through pixels\n");
}
