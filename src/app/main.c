/* tandem command-line program. Uses only the public API (tandem.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/args.h"
#include "app/cmd_edit.h"
#include "app/commands.h"
#include "app/commands_adaptive.h"
#include "app/commands_bench.h"
#include "app/commands_world.h"
#include "tandem.h"

int tdm_cmd_control_eval(int argc, char **argv); /* cmd_control_eval.c */

static void print_line(void *user, const char *line) {
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static int cmd_check(int argc, char **argv) {
    const char *dir = NULL;
    int threads = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--fixture") == 0 && i + 1 < argc) dir = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (!tdm_arg_int("check", "--threads", argv[++i], 0, 1024, &threads)) return 2;
        }
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: tandem check --fixture DIR [--threads N]\n"
                   "Runs a reference fixture folder and prints, per output tensor, max-abs and relative-L2\n"
                   "error with PASS/FAIL against its tolerance. Exit 0 when all pass.\n");
            return 0;
        } else {
            fprintf(stderr, "tandem check: unknown option '%s' (see tandem check --help)\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "tandem check: --fixture DIR is required\n");
        return 2;
    }
    tdm_status st = {0};
    int n_pass = 0, n_fail = 0;
    tdm_code rc = tdm_check_fixture(dir, threads, print_line, NULL, &n_pass, &n_fail, &st);
    if (rc) {
        fprintf(stderr, "tandem check: %s\n", st.msg);
        return rc == TDM_ERR_UNSUPPORTED ? 3 : 1;
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: tandem COMMAND [options]\n\ncommands:\n"
               "  generate  text to image (Stable Diffusion 1.x / 2.x, LCM)\n"
               "  img2img   image to image\n"
               "  check     run a reference fixture folder and compare outputs\n"
               "  world     shapes-world dataset: world sample|captions\n"
               "  score     score an image against a caption (--checker)\n"
               "  calibrate oracle-score percentiles of student samples for generate --adaptive\n"
               "  eval      student, teacher, refine / regenerate-all and adaptive methods on prompts x seeds\n"
               "  edit      adaptive SDEdit image editing (student, oracle, teacher)\n"
               "  edit-eval shapes-world edit evaluation (success, preservation, UNet evaluations)\n"
               "  control-eval  shapes-world ControlNet evaluation: placement IoU, checker, adaptive ControlNet\n"
               "  bench     time the models on SD-shaped random weights (speed, memory)\n"
               "\n  --version  print the version\n"
               "Run 'tandem COMMAND --help' for the options of a command.\n");
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("tandem %s\n", tdm_version());
        return 0;
    }
    if (strcmp(argv[1], "check") == 0) return cmd_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "world") == 0) return tdm_cmd_world(argc - 2, argv + 2);
    if (strcmp(argv[1], "score") == 0) return tdm_cmd_score(argc - 2, argv + 2);
    if (strcmp(argv[1], "calibrate") == 0) return tdm_cmd_calibrate(argc - 2, argv + 2);
    if (strcmp(argv[1], "eval") == 0) return tdm_cmd_eval(argc - 2, argv + 2);
    if (strcmp(argv[1], "edit") == 0) return tdm_cmd_edit(argc - 2, argv + 2);
    if (strcmp(argv[1], "edit-eval") == 0) return tdm_cmd_edit_eval(argc - 2, argv + 2);
    if (strcmp(argv[1], "control-eval") == 0) return tdm_cmd_control_eval(argc - 2, argv + 2);
    if (strcmp(argv[1], "bench") == 0) return tdm_cmd_bench(argc - 2, argv + 2);
    if (strcmp(argv[1], "generate") == 0 || strcmp(argv[1], "txt2img") == 0)
        return tdm_cmd_generate(argv[1], 0, argc - 2, argv + 2);
    if (strcmp(argv[1], "img2img") == 0) return tdm_cmd_generate("img2img", 1, argc - 2, argv + 2);
    fprintf(stderr, "tandem: unknown command '%s' (see tandem --help)\n", argv[1]);
    return 2;
}
