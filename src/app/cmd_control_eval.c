/* `tandem control-eval` (docs/CONTROLNET.md "Shapes world evaluation"): the shapes-world ControlNet
 * evaluation: teacher + ControlNet, student + ControlNet and adaptive ControlNet generation on shapes-world
 * scenes, scored by the checker and the placement IoU. Uses only tandem.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/args.h"
#include "app/cli_eval_common.h"
#include "app/cli_preset.h"
#include "app/commands_adaptive.h"
#include "tandem.h"

int tdm_cmd_control_eval(int argc, char **argv);

static void control_eval_help(void) {
    printf("usage: tandem control-eval --model STUDENT [--teacher TEACHER] --controlnet PATH --out DIR [options]\n\n"
           "Shapes-world ControlNet evaluation: on N scenes of a world split, prompt = the scene's caption,\n"
           "ControlNet condition = its segmentation map (white where the scene's object-id mask is > 0, black\n"
           "elsewhere, at the output size). Per scene: the student and the teacher with the ControlNet and the\n"
           "teacher's refinement of the student's sample (the same ControlNet conditions both), each scored by\n"
           "the checker (the caption), the placement IoU (each condition object against the detected object of\n"
           "largest overlap) and the oracle; the adaptive methods at each k (refine, regenerate and their -best\n"
           "forms, the better image by the oracle as --keep-better) are derived from these runs.\n"
           "Writes DIR/samples.jsonl (resumable log) and DIR/table.md (printed at the end).\n\n"
           "  --controlnet PATH      the ControlNet (diffusers folder or .safetensors) (required)\n"
           "  --control-scale F      conditioning scale, 0..100 (default 1)\n"
           "  --control-start F, --control-end F   control window fractions (default 0, 1)\n"
           "  --out DIR              output folder, created when missing (required)\n"
           "  --n N                  scenes (default 300)\n"
           "  --split S              world split: test (default), val or train\n"
           "  --world-seed S         world seed (default 1001: the test scenes of the evaluation)\n"
           "  --start I              first scene index (default 0)\n"
           "  --seed S               noise seed of scene j is S + j (default 0)\n"
           "  --k LIST               percentiles for the adaptive methods (default 10,30,50)\n"
           "  --calibration FILE     tau_k from tandem calibrate's file (default: the k-th percentile of this\n"
           "                         evaluation's student oracle scores)\n"
           "  --restart              discard an existing DIR/samples.jsonl instead of resuming it\n"
           "student:\n"
           "  --model PATH, --student PATH   (required); --student-unet NAME, --steps N, --guidance F,\n"
           "  --sampler NAME, --eta F, --student-lora PATH[:SCALE] (the student is the model + this LoRA; on the\n"
           "  teacher's model it shares the teacher's weights; --student-lora-no-share: a merged copy)\n"
           "teacher and refinement:\n"
           "  --teacher PATH (default: the student's model), --teacher-unet NAME, --teacher-steps N,\n"
           "  --teacher-guidance F, --teacher-sampler NAME, --teacher-eta F, --refine-strength S (default 0.4)\n"
           "  | --refine-noise SIGMA, --refine-steps T (default --teacher-steps), --refine-through-pixels\n"
           "oracle:\n"
           "  --oracle NAME (default checker), --oracle-model PATH\n"
           "common:\n"
           "  --width N, --height N, --negative-prompt TEXT, --clip-skip N, --no-emphasis, --tokenizer DIR,\n"
           "  --threads N, -q/--quiet\n");
}

static int on_sample(void *user, const tdm_control_eval_progress *pg) {
    char detail[256];
    snprintf(detail, sizeof detail, "scene %llu  IoU: student %.3f teacher %.3f refine %.3f",
             (unsigned long long)pg->scene_index, (double)pg->iou[0], (double)pg->iou[1], (double)pg->iou[2]);
    return tdm_cli_progress_report(user, "control-eval", "scene", pg->done, pg->total, detail);
}

static int parse_u64(const char *cmd, const char *opt, const char *v, uint64_t *out) {
    int random = 0;
    if (!tdm_arg_seed(cmd, opt, v, out, &random)) return 0;
    if (random) {
        fprintf(stderr, "tandem %s: %s must be a fixed number\n", cmd, opt);
        return 0;
    }
    return 1;
}

int tdm_cmd_control_eval(int argc, char **argv) {
    const char *cmd = "control-eval";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    tdm_control_eval_params p;
    tdm_control_eval_params_init(&p);
    const char *cn_path = NULL;
    double k[TDM_CLI_MAX_K] = {10, 30, 50};
    int n_k = 3;
    tdm_cli_loras slora; /* --student-lora ... */
    memset(&slora, 0, sizeof slora);
    int lora_share = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
        if (strcmp(a, "--prompt") == 0 || strncmp(a, "--prompt=", 9) == 0 || strcmp(a, "--control-image") == 0) {
            fprintf(stderr, "tandem %s: %s: the prompts and conditions are the world scenes' (see --help)\n", cmd, a);
            return 2;
        }
        int r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, &lora_share);
        if (r < 0) return 2;
        if (r > 0) continue;
        r = tdm_cli_pair_parse(cmd, argc, argv, &i, &c, &t);
        if (r != 0) {
            if (r < 0) return 2;
            continue;
        }
#define COPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            control_eval_help();
            return 0;
        } else if (strcmp(a, "--restart") == 0) {
            p.restart = 1;
        } else if (COPT("--controlnet")) {
            if (err) return 2;
            cn_path = v;
        } else if (COPT("--control-scale")) {
            if (err || !tdm_arg_float(cmd, "--control-scale", v, 0.0, 100.0, &p.control_scale)) return 2;
        } else if (COPT("--control-start")) {
            if (err || !tdm_arg_float(cmd, "--control-start", v, 0.0, 1.0, &p.control_start)) return 2;
        } else if (COPT("--control-end")) {
            if (err || !tdm_arg_float(cmd, "--control-end", v, 0.0, 1.0, &p.control_end)) return 2;
        } else if (COPT("--out", "-o", "--output")) {
            if (err) return 2;
            p.out_dir = v;
        } else if (COPT("--n")) {
            if (err || !tdm_arg_int(cmd, "--n", v, 1, 1000000, &p.n)) return 2;
        } else if (COPT("--split")) {
            if (err) return 2;
            if (strcmp(v, "test") != 0 && strcmp(v, "val") != 0 && strcmp(v, "train") != 0) {
                fprintf(stderr, "tandem %s: --split: '%s' is not train, val or test\n", cmd, v);
                return 2;
            }
            p.split = v;
        } else if (COPT("--world-seed")) {
            if (err || !parse_u64(cmd, "--world-seed", v, &p.world_seed)) return 2;
        } else if (COPT("--start")) {
            if (err || !parse_u64(cmd, "--start", v, &p.start)) return 2;
        } else if (COPT("--calibration")) {
            if (err) return 2;
            p.calibration = v;
        } else if (COPT("--k")) {
            if (err || !tdm_cli_parse_k_list(cmd, v, k, &n_k)) return 2;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
#undef COPT
    }
    if (!c.model || !cn_path || !p.out_dir) {
        fprintf(stderr, "tandem %s: --model, --controlnet and --out are required\n", cmd);
        return 2;
    }
    if (c.seed_random) {
        fprintf(stderr, "tandem %s: --seed must be a fixed number (the evaluation is reproducible)\n", cmd);
        return 2;
    }
    if (p.control_start >= p.control_end) {
        fprintf(stderr, "tandem %s: --control-start %g must be below --control-end %g\n", cmd, (double)p.control_start,
                (double)p.control_end);
        return 2;
    }
    if (tdm_cli_teacher_check(cmd, &t)) return 2;

    tdm_status st = {0};
    tdm_engine *engine = NULL;
    tdm_model *student = NULL, *teacher = NULL;
    tdm_oracle *oracle = NULL;
    tdm_controlnet *cn = NULL;
    int exit_code = 1;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (tdm_cli_load_pair_lora(&c, &t, &slora, lora_share, &student, &teacher, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    if (tdm_controlnet_load(cn_path, &cn, &st)) goto fail;

    tdm_adaptive_params *s = &p.settings;
    tdm_cli_common_apply(&c, s);
    tdm_cli_teacher_apply(&t, s);
    s->progress = tdm_cli_cancel_on_signal;
    p.controlnet = cn;
    p.controlnet_name = cn_path;
    p.seed = c.seed;
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.k = k;
    p.n_k = n_k;
    tdm_cli_progress pg;
    tdm_cli_progress_init(&pg, c.quiet);
    p.on_sample = on_sample;
    p.user = &pg;
    tdm_control_eval_summary sum;
    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_control_eval(engine, student, teacher ? teacher : student, &p, &sum, &st);
    tdm_cli_sig_restore(&sg);
    if (rc == TDM_ERR_CANCELLED) {
        if (pg.tty && !c.quiet) fputc('\n', stderr);
        fprintf(stderr, "tandem %s: interrupted; rerun the same command to continue (%s/samples.jsonl)\n", cmd,
                p.out_dir);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    tdm_cli_print_warnings(cmd, sum.warnings);
    if (!c.quiet) {
        if (sum.n_resumed) fprintf(stderr, "resumed after %d of %d scenes\n", sum.n_resumed, sum.n_samples);
        tdm_cli_print_file(p.out_dir, "table.md");
        printf("\nwrote %s/table.md, %s/samples.jsonl (%d scenes)\n", p.out_dir, p.out_dir, sum.n_samples);
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_controlnet_free(cn);
    tdm_oracle_free(oracle);
    tdm_model_free(student); /* first: a student derived with --student-lora views the teacher's weights */
    tdm_model_free(teacher);
    tdm_engine_free(engine);
    return exit_code;
}
