/* ControlNet options of `tandem generate` / `tandem img2img` (cmd_control.c): each --controlnet starts a
 * control; the options after it set that control's image, scale, window and preprocessor. */
#ifndef TDM_APP_CMD_CONTROL_H
#define TDM_APP_CMD_CONTROL_H

#include "tandem.h"

#define TDM_CLI_MAX_CONTROLS 8

typedef struct tdm_cli_control {
    const char *model, *image;
    float scale, start, end;
    int canny;                   /* run tdm_canny on the image */
    float canny_low, canny_high; /* default 100 / 200 */
    float canny_blur;            /* Gaussian sigma before Canny, default 0 (ControlNet's annotator: none) */
    const char *save;            /* write the conditioning image actually used (after Canny) */
} tdm_cli_control;

typedef struct tdm_cli_controls {
    int n;
    tdm_cli_control o[TDM_CLI_MAX_CONTROLS];
    tdm_controlnet *cn[TDM_CLI_MAX_CONTROLS];
    tdm_image img[TDM_CLI_MAX_CONTROLS];
    tdm_control c[TDM_CLI_MAX_CONTROLS];
} tdm_cli_controls;

/* Help lines for the options. */
void tdm_cli_controls_help(void);
/* argv[*i] is a control option: 1 (consumed, *i advanced past its value), 0 not one, -1 error (printed). */
int tdm_cli_controls_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_controls *cc);
/* After parsing: every control has an image; 0 ok, 2 error (printed). */
int tdm_cli_controls_check(const char *cmd, const tdm_cli_controls *cc);
/* Loads the ControlNets and images (Canny when asked), fills cc->c. */
tdm_code tdm_cli_controls_load(tdm_cli_controls *cc, tdm_status *st);
void tdm_cli_controls_free(tdm_cli_controls *cc);

#endif
