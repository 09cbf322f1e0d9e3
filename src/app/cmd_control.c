/* ControlNet options of the generation commands. Uses only tandem.h. */
#include "app/cmd_control.h"

#include <stdio.h>
#include <string.h>

#include "app/args.h"

void tdm_cli_controls_help(void) {
    printf("  --controlnet PATH      ControlNet (diffusers folder or .safetensors, control_model.* names\n"
           "                         accepted); repeatable: each --controlnet starts a control that the\n"
           "                         options below configure; their residuals are summed\n"
           "  --control-image FILE   the control's conditioning image, PNG or JPEG (required per control);\n"
           "                         resized to the output size (Lanczos); without --width/--height the\n"
           "                         first control image's size (rounded down to a multiple of 8) is used\n"
           "  --control-scale F      conditioning scale, 0..100 (default: 1)\n"
           "  --control-start F      fraction of the steps before the control starts, 0..1 (default: 0)\n"
           "  --control-end F        fraction of the steps after which it stops, 0..1 (default: 1)\n"
           "  --canny                run the Canny edge detector on the control image first (OpenCV\n"
           "                         cv2.Canny as ControlNet's annotator: thresholds 100 / 200)\n"
           "  --canny-low N, --canny-high N  Canny thresholds (default: 100, 200)\n"
           "  --canny-blur SIGMA     Gaussian blur before Canny (default: 0 = none, as the annotator)\n"
           "  --save-control FILE    write the conditioning image used (e.g. the Canny edges) as PNG\n");
}

int tdm_cli_controls_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_controls *cc) {
    const char *a = argv[*i], *v;
    int err = 0;
    tdm_cli_control *cur = cc->n > 0 ? &cc->o[cc->n - 1] : NULL;
#define COPT(name) ((v = tdm_arg_value(cmd, argc, argv, i, (const char *const[]){name, NULL}, &err)) || err)
#define NEED_CUR(name)                                                                             \
    do {                                                                                           \
        if (!cur) {                                                                                \
            fprintf(stderr, "tandem %s: %s must follow a --controlnet PATH\n", cmd, name);         \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    if (strcmp(a, "--canny") == 0) {
        NEED_CUR("--canny");
        cur->canny = 1;
        return 1;
    }
    if (COPT("--controlnet")) {
        if (err) return -1;
        if (cc->n >= TDM_CLI_MAX_CONTROLS) {
            fprintf(stderr, "tandem %s: at most %d --controlnet\n", cmd, TDM_CLI_MAX_CONTROLS);
            return -1;
        }
        cur = &cc->o[cc->n++];
        memset(cur, 0, sizeof *cur);
        cur->model = v;
        cur->scale = 1.0f;
        cur->end = 1.0f;
        cur->canny_low = 100.0f;
        cur->canny_high = 200.0f;
        return 1;
    }
    if (COPT("--control-image")) {
        if (err) return -1;
        NEED_CUR("--control-image");
        cur->image = v;
        return 1;
    }
    if (COPT("--control-scale")) {
        NEED_CUR("--control-scale");
        return !err && tdm_arg_float(cmd, "--control-scale", v, 0.0, 100.0, &cur->scale) ? 1 : -1;
    }
    if (COPT("--control-start")) {
        NEED_CUR("--control-start");
        return !err && tdm_arg_float(cmd, "--control-start", v, 0.0, 1.0, &cur->start) ? 1 : -1;
    }
    if (COPT("--control-end")) {
        NEED_CUR("--control-end");
        return !err && tdm_arg_float(cmd, "--control-end", v, 0.0, 1.0, &cur->end) ? 1 : -1;
    }
    if (COPT("--canny-low")) {
        NEED_CUR("--canny-low");
        return !err && tdm_arg_float(cmd, "--canny-low", v, 0.0, 100000.0, &cur->canny_low) ? 1 : -1;
    }
    if (COPT("--canny-high")) {
        NEED_CUR("--canny-high");
        return !err && tdm_arg_float(cmd, "--canny-high", v, 0.0, 100000.0, &cur->canny_high) ? 1 : -1;
    }
    if (COPT("--canny-blur")) {
        NEED_CUR("--canny-blur");
        return !err && tdm_arg_float(cmd, "--canny-blur", v, 0.0, 100.0, &cur->canny_blur) ? 1 : -1;
    }
    if (COPT("--save-control")) {
        if (err) return -1;
        NEED_CUR("--save-control");
        cur->save = v;
        return 1;
    }
#undef COPT
#undef NEED_CUR
    return 0;
}

int tdm_cli_controls_check(const char *cmd, const tdm_cli_controls *cc) {
    for (int k = 0; k < cc->n; k++) {
        const tdm_cli_control *o = &cc->o[k];
        if (!o->image) {
            fprintf(stderr, "tandem %s: --controlnet %s has no --control-image\n", cmd, o->model);
            return 2;
        }
        if (o->start >= o->end) {
            fprintf(stderr, "tandem %s: --control-start %g must be below --control-end %g\n", cmd, (double)o->start,
                    (double)o->end);
            return 2;
        }
    }
    return 0;
}

tdm_code tdm_cli_controls_load(tdm_cli_controls *cc, tdm_status *st) {
    for (int k = 0; k < cc->n; k++) {
        const tdm_cli_control *o = &cc->o[k];
        tdm_code rc = tdm_controlnet_load(o->model, &cc->cn[k], st);
        if (!rc) rc = tdm_image_load(o->image, &cc->img[k], st);
        if (rc) return rc;
        if (o->canny) {
            tdm_image edges = {0};
            rc = tdm_canny(&cc->img[k], o->canny_low, o->canny_high, o->canny_blur, &edges, st);
            if (rc) return rc;
            tdm_image_free(&cc->img[k]);
            cc->img[k] = edges;
        }
        if (o->save && (rc = tdm_image_save_png(o->save, &cc->img[k], NULL, st)) != TDM_OK) return rc;
        tdm_control_init(&cc->c[k]);
        cc->c[k].controlnet = cc->cn[k];
        cc->c[k].image = &cc->img[k];
        cc->c[k].scale = o->scale;
        cc->c[k].start = o->start;
        cc->c[k].end = o->end;
    }
    return TDM_OK;
}

void tdm_cli_controls_free(tdm_cli_controls *cc) {
    for (int k = 0; k < cc->n; k++) {
        tdm_controlnet_free(cc->cn[k]);
        cc->cn[k] = NULL;
        tdm_image_free(&cc->img[k]);
    }
}
