/* `tandem edit` and `tandem edit-eval` (docs/EDITING.md). Uses only tandem.h and the option helpers of the
 * adaptive commands (commands_adaptive.h). */
#include "app/cmd_edit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/args.h"
#include "app/cli_eval_common.h"
#include "app/cli_preset.h"
#include "app/cmd_control.h"
#include "app/commands_adaptive.h"
#include "tandem.h"

#define OPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)

/* Masked-editing options shared by edit and edit-eval (edit_mask.c defaults: 4 maps, strength 0.5,
 * threshold 0.5, dilation 1). */
typedef struct mask_opts {
    int maps, dilate, paste, fill;
    double strength, threshold;
} mask_opts;

static void mask_opts_init(mask_opts *m) {
    m->maps = 4;
    m->dilate = 1;
    m->strength = 0.5;
    m->threshold = 0.5;
    m->paste = 0;
    m->fill = 0;
}

/* 1: argv[*pi] was a mask option (consumed), 0: not one, -1: a bad value (message printed). */
static int mask_opts_parse(const char *cmd, int argc, char **argv, int *pi, mask_opts *m) {
    int i = *pi, err = 0, r = 0;
    const char *v;
    if (strcmp(argv[i], "--mask-paste") == 0) r = (m->paste = 1);
    else if (strcmp(argv[i], "--mask-fill") == 0) r = (m->fill = 1);
    else if (OPT("--mask-maps")) r = !err && tdm_arg_int(cmd, "--mask-maps", v, 1, 64, &m->maps) ? 1 : -1;
    else if (OPT("--mask-strength"))
        r = !err && tdm_cli_arg_double(cmd, "--mask-strength", v, 0, 1, 1, 1, &m->strength) ? 1 : -1;
    else if (OPT("--mask-threshold"))
        r = !err && tdm_cli_arg_double(cmd, "--mask-threshold", v, 0, 1, 1, 1, &m->threshold) ? 1 : -1;
    else if (OPT("--mask-dilate")) r = !err && tdm_arg_int(cmd, "--mask-dilate", v, 0, 16, &m->dilate) ? 1 : -1;
    *pi = i;
    return r;
}

static void mask_opts_apply(const mask_opts *m, tdm_adaptive_params *p) {
    p->mask_maps = m->maps;
    p->mask_dilate = m->dilate;
    p->mask_strength = (float)m->strength;
    p->mask_threshold = (float)m->threshold;
    p->mask_paste = m->paste;
    p->mask_fill = m->fill;
}

#define MASK_HELP                                                                                                 \
    "  --mask-maps N          masked editing: noise samples of the region estimate (1..64, default 4)\n"         \
    "  --mask-strength S      their noise level, a fraction of the timesteps (default 0.5)\n"                   \
    "  --mask-threshold T     DiffEdit binarisation of the map clamped at 3x its mean (default 0.5)\n"          \
    "  --mask-dilate N        latent pixels added around the region (0..16, default 1)\n"                     \
    "  --mask-paste           paste the source's pixels back outside the region after decoding (a given\n"     \
    "                         region: its pixels; an estimate: its latent blocks), as inpainting tools do\n"     \
    "  --mask-fill            the edit starts inside the region from the colours around it (pull-push fill),\n"  \
    "                         not from what the region held (inpainting's \"fill\" masked content)\n"

/* --drag X0,Y0,X1,Y1: four integers, pixels of the source image; 0 on a bad value (message printed). */
static int parse_drag(const char *cmd, const char *v, tdm_edit_drag *d) {
    int x[4], used = 0;
    if (sscanf(v, "%d,%d,%d,%d%n", &x[0], &x[1], &x[2], &x[3], &used) != 4 || v[used] != '\0' || x[0] < 0 ||
        x[1] < 0 || x[2] < 0 || x[3] < 0) {
        fprintf(stderr, "tandem %s: --drag '%s': give X0,Y0,X1,Y1 (pixels of the source image, >= 0)\n", cmd, v);
        return 0;
    }
    *d = (tdm_edit_drag){x[0], x[1], x[2], x[3]};
    return 1;
}

static int on_progress(void *user, tdm_stage stage, int step, int total) {
    const int *tty = user;
    if (*tty) {
        fprintf(stderr, "\r%-12s %d/%d   ", tdm_stage_name(stage), step, total);
        if (stage == TDM_STAGE_DECODE && step == total) fputc('\n', stderr);
        fflush(stderr);
    }
    return tdm_cli_interrupted ? 1 : 0;
}

/* ---- tandem edit ---- */

static void edit_help(void) {
    printf("usage: tandem edit --image IN --prompt TEXT --model STUDENT [--teacher TEACHER]\n"
           "                   (--tau F | --k K --calibration FILE | --teacher-share Q --calibration FILE)\n"
           "                   [--strength S] [-o OUT.png] [options]\n"
           "       tandem edit --student-only | --teacher-only --image IN --prompt TEXT --model STUDENT ...\n\n"
           "Adaptive SDEdit editing (docs/EDITING.md): the student edits the image (VAE-encode, noise to the\n"
           "strength, denoise with the prompt as the description of the wanted image), the oracle scores the edit;\n"
           "a score below tau sends it to the teacher (refine: the teacher refines the student's edit; regenerate:\n"
           "the teacher edits the source from the same noise), otherwise the student's edit is kept.\n\n"
           "  --image FILE           source image, PNG or JPEG of any size (size rule: kept when both sides are\n"
           "                         multiples of 8 and at most twice the model's default side; otherwise the\n"
           "                         short side is scaled to the default side and the long side centre-cropped)\n"
           "  --prompt TEXT          the target description (e.g. a shapes-world caption of the edited scene)\n"
           "  --strength S           SDEdit strength, 0 < S <= 1 (diffusers img2img; default 0.75)\n"
           "  --source-prompt TEXT   masked editing: a description of the source image; the region where the\n"
           "                         student's predictions for --prompt and TEXT differ is edited (DiffEdit), the\n"
           "                         rest kept from the source by every stage\n"
           "  --mask-image FILE      masked editing in a painted region instead: an image of the source's size,\n"
           "                         white (luma > 127) = edit; dilated by --mask-dilate; not with --source-prompt\n"
           MASK_HELP
           "  --drag X0,Y0,X1,Y1     move the object under (X0, Y0) (a connected area of nearly its colour) so\n"
           "                         that point lands on (X1, Y1), before the edit: cut out, its hole filled from\n"
           "                         the colours around it, pasted; the edit region gains the old place and the\n"
           "                         new one's seam, the moved object is kept as it is (repeatable, at most 16;\n"
           "                         pixels of the source image)\n"
           "  --student-only         the student's edit alone (baseline; no threshold needed)\n"
           "  --teacher-only         the teacher's edit alone (baseline; at the student's size)\n"
           "  --similarity-model DIR a CLIP vision tower (transformers folder): report the cosine similarity of\n"
           "                         the source's and the edit's image embeddings\n"
           "  -o, --out FILE         output PNG (default edit.png; chunks \"parameters\" and \"tandem\" JSON)\n"
           "  --sidecar FILE         also write the JSON to FILE\n"
           "  --student-output FILE  also write the student's edit\n"
           "ControlNet (layout-guided editing: the same controls condition the student and the teacher, e.g. the\n"
           "segmentation map of the wanted layout; here the size comes from the source's size rule and every\n"
           "control image is resized to it):\n");
    tdm_cli_controls_help();
    printf("the student, teacher, oracle, threshold and refinement options of tandem generate --adaptive:\n"
           "  --model PATH, --steps N, --guidance F, --sampler NAME, --eta F, --student-unet NAME\n"
           "  --student-lora PATH[:SCALE] (repeatable; on the teacher's model it shares the teacher's weights),\n"
           "  --student-lora-no-share\n"
           "  --teacher PATH, --teacher-steps N, --teacher-guidance F, --teacher-sampler NAME, --teacher-eta F,\n"
           "  --teacher-unet NAME, --strategy refine|regenerate, --keep-better, --refine-strength S | --refine-noise SIGMA,\n"
           "  --refine-steps T, --refine-through-pixels, --oracle NAME (default checker; none: no score in the one-model modes),\n"
           "  --oracle-model PATH, --tau F, --k K, --teacher-share Q, --calibration FILE\n"
           "  --negative-prompt TEXT, --seed N (-1 random, the default), --width N --height N (force a size),\n"
           "  --clip-skip N, --no-emphasis, --tokenizer DIR, --threads N, -q\n"
           "The summary reports the oracle score, the shapes-world checker on the prompt (when it is a caption)\n"
           "and the preservation of the attributes the prompt did not ask to change.\n");
}

int tdm_cmd_edit(int argc, char **argv) {
    const char *cmd = "edit";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    const char *image = NULL, *prompt = NULL, *output = "edit.png", *sidecar = NULL, *student_out = NULL;
    const char *sim_dir = NULL;
    tdm_cli_threshold_opts th; /* --tau, --k, --teacher-share, --calibration, --strategy */
    tdm_cli_threshold_init(&th);
    double strength = 0.75;
    int mode = TDM_EDIT_ADAPTIVE, n_modes = 0;
    const char *source_prompt = NULL, *mask_path = NULL;
    mask_opts mo;
    mask_opts_init(&mo);
    tdm_cli_controls controls; /* --controlnet ... (cmd_control.c) */
    memset(&controls, 0, sizeof controls);
    tdm_edit_drag drags[TDM_EDIT_MAX_DRAGS];
    int n_drags = 0;
    tdm_cli_loras slora; /* --student-lora ... (cli_preset.h) */
    memset(&slora, 0, sizeof slora);
    int lora_share = 1;
    c.seed_random = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
        int r = tdm_cli_pair_parse(cmd, argc, argv, &i, &c, &t);
        if (r == 0) r = tdm_cli_threshold_parse(cmd, argc, argv, &i, &th);
        if (r == 0) r = mask_opts_parse(cmd, argc, argv, &i, &mo);
        if (r == 0) r = tdm_cli_controls_parse(cmd, argc, argv, &i, &controls);
        if (r == 0) r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, &lora_share);
        if (r != 0) {
            if (r < 0) return 2;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            edit_help();
            return 0;
        } else if (strcmp(a, "--student-only") == 0) {
            mode = TDM_EDIT_STUDENT_ONLY;
            n_modes++;
        } else if (strcmp(a, "--teacher-only") == 0) {
            mode = TDM_EDIT_TEACHER_ONLY;
            n_modes++;
        } else if (OPT("--image", "-i")) {
            if (err) return 2;
            image = v;
        } else if (OPT("--prompt")) {
            if (err) return 2;
            prompt = v;
        } else if (OPT("--source-prompt")) {
            if (err) return 2;
            source_prompt = v;
        } else if (OPT("--mask-image")) {
            if (err) return 2;
            mask_path = v;
        } else if (OPT("--strength")) {
            if (err || !tdm_cli_arg_double(cmd, "--strength", v, 0, 1, 1, 0, &strength)) return 2;
        } else if (OPT("--drag")) {
            if (err) return 2;
            if (n_drags == TDM_EDIT_MAX_DRAGS) {
                fprintf(stderr, "tandem %s: at most %d --drag\n", cmd, TDM_EDIT_MAX_DRAGS);
                return 2;
            }
            if (!parse_drag(cmd, v, &drags[n_drags++])) return 2;
        } else if (OPT("--similarity-model")) {
            if (err) return 2;
            sim_dir = v;
        } else if (OPT("-o", "--out", "--output")) {
            if (err) return 2;
            output = v;
        } else if (OPT("--sidecar")) {
            if (err) return 2;
            sidecar = v;
        } else if (OPT("--student-output")) {
            if (err) return 2;
            student_out = v;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
    }
    if (!c.model || !image || !prompt) {
        fprintf(stderr, "tandem %s: --model PATH (the student), --image FILE and --prompt TEXT are required\n", cmd);
        return 2;
    }
    if (n_modes > 1) {
        fprintf(stderr, "tandem %s: give --student-only or --teacher-only, not both\n", cmd);
        return 2;
    }
    const double tau = th.tau, k = th.k, share = th.share;
    const char *calibration = th.calibration;
    const int n_thr = !isnan(tau) + !isnan(k) + !isnan(share);
    if (mode == TDM_EDIT_ADAPTIVE) {
        if (n_thr != 1) {
            fprintf(stderr, "tandem %s: give exactly one of --tau, --k, --teacher-share (got %d), or --student-only / "
                            "--teacher-only\n",
                    cmd, n_thr);
            return 2;
        }
        if (isnan(tau) && !calibration) {
            fprintf(stderr, "tandem %s: %s needs --calibration FILE (made by tandem calibrate)\n", cmd,
                    !isnan(k) ? "--k" : "--teacher-share");
            return 2;
        }
    } else if (n_thr) {
        fprintf(stderr, "tandem %s: --%s-only takes no threshold (--tau, --k, --teacher-share)\n", cmd,
                mode == TDM_EDIT_STUDENT_ONLY ? "student" : "teacher");
        return 2;
    }
    if ((c.width > 0) != (c.height > 0)) {
        fprintf(stderr, "tandem %s: give both --width and --height, or neither\n", cmd);
        return 2;
    }
    if (tdm_cli_teacher_check(cmd, &t)) return 2;
    if (tdm_cli_controls_check(cmd, &controls)) return 2;
    if (c.seed_random) c.seed = tdm_arg_random_seed();

    tdm_status st = {0};
    tdm_engine *engine = NULL;
    tdm_model *student = NULL, *teacher_model = NULL;
    tdm_oracle *oracle = NULL;
    tdm_image_similarity *sim = NULL;
    tdm_image src = {0};
    tdm_adaptive_result res;
    memset(&res, 0, sizeof res);
    int exit_code = 1;
    tdm_image mask_img = {0};
    if (tdm_image_load(image, &src, &st)) goto fail;
    if (mask_path && tdm_image_load(mask_path, &mask_img, &st)) goto fail;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_cli_load_pair_lora(&c, &t, &slora, lora_share, &student, &teacher_model, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    const int no_oracle = strcmp(c.oracle, "none") == 0;
    if (no_oracle && mode == TDM_EDIT_ADAPTIVE) {
        fprintf(stderr, "tandem %s: the adaptive mode needs an oracle (--oracle none is for the one-model modes)\n", cmd);
        exit_code = 2;
        goto done;
    }
    if (!no_oracle && tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (sim_dir && tdm_image_similarity_open(sim_dir, engine, &sim, &st)) goto fail;
    if (tdm_cli_controls_load(&controls, &st)) goto fail;

    tdm_adaptive_params p;
    tdm_adaptive_params_init(&p);
    p.prompt = prompt;
    p.seed = c.seed;
    tdm_cli_common_apply(&c, &p);
    tdm_cli_teacher_apply(&t, &p);
    p.oracle = oracle;
    p.oracle_name = no_oracle ? NULL : c.oracle;
    p.oracle_model = c.oracle_model;
    p.tau = tau;
    p.k = k;
    p.teacher_share = share;
    p.calibration = calibration;
    p.strategy = (tdm_adaptive_strategy)th.strategy;
    p.keep_better = th.keep_better;
    p.keep_student_image = student_out != NULL;
    p.init_image = &src;
    p.strength = (float)strength;
    p.source_prompt = source_prompt;
    p.mask_image = mask_path ? &mask_img : NULL;
    mask_opts_apply(&mo, &p);
    p.drags = drags;
    p.n_drags = n_drags;
    p.controls = controls.c;
    p.n_controls = controls.n;
    int tty = !c.quiet && isatty(STDERR_FILENO);
    p.progress = on_progress;
    p.progress_user = &tty;
    if (c.seed_random && !c.quiet) fprintf(stderr, "seed %llu\n", (unsigned long long)c.seed);

    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_edit(engine, student, teacher_model ? teacher_model : student, &p, (tdm_edit_mode)mode, &res, &st);
    tdm_cli_sig_restore(&sg);
    if (rc == TDM_ERR_CANCELLED) {
        fprintf(stderr, "tandem %s: cancelled\n", cmd);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    tdm_cli_print_warnings(cmd, res.warnings);
    tdm_edit_quality q;
    if (tdm_edit_measure(&src, &res.image, prompt, sim, &q, &st)) goto fail;
    if (tdm_edit_attach_quality(&res, &q, &st)) goto fail;
    if (tdm_adaptive_save(&res, output, sidecar, &st)) goto fail;
    if (student_out && res.student_image.pixels && tdm_image_save_png(student_out, &res.student_image, NULL, &st))
        goto fail;
    if (!c.quiet) {
        fprintf(stderr, "wrote %s (%dx%d from %dx%d, strength %g): %s %s", output, res.image.width, res.image.height,
                src.width, src.height, strength, tdm_edit_mode_name((tdm_edit_mode)mode),
                mode == TDM_EDIT_ADAPTIVE ? tdm_adaptive_decision_name(res.decision) : "edit");
        if (oracle) fprintf(stderr, ", oracle %s %.4g", tdm_oracle_get_name(oracle), (double)res.oracle_score);
        if (mode == TDM_EDIT_ADAPTIVE) fprintf(stderr, " (tau %.4g)", res.tau);
        if (mode == TDM_EDIT_ADAPTIVE && res.decision != TDM_DECISION_KEEP && !isnan(res.teacher_oracle_score))
            fprintf(stderr, ", keep-better: teacher %.4g, the %s's edit returned", (double)res.teacher_oracle_score,
                    res.selected_student ? "student" : "teacher");
        fprintf(stderr, ", UNet evals %d + %d, %.1f s\n", res.unet_evals_student, res.unet_evals_teacher,
                res.seconds_total);
        if (q.has_checker) fprintf(stderr, "checker on the prompt: %.3f%s\n", (double)q.checker, q.checker >= 1 ? " (success)" : "");
        if (isfinite(q.similarity)) fprintf(stderr, "similarity to the source (CLIP image embeddings): %.4f\n", q.similarity);
        if (q.world_preserved >= 0)
            fprintf(stderr, "preservation: %d of %d unchanged attributes kept%s%s (asked to change: %s)\n", q.world_kept,
                    q.world_checked, q.world_lost[0] ? "; lost: " : "", q.world_lost,
                    q.world_changed[0] ? q.world_changed : "nothing");
        else if (q.has_checker)
            fprintf(stderr, "preservation not measured: %s\n", q.world_note);
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_adaptive_result_free(&res);
    tdm_image_similarity_free(sim);
    tdm_oracle_free(oracle);
    tdm_model_free(student); /* first: a student derived with --student-lora views the teacher's weights */
    tdm_model_free(teacher_model);
    tdm_engine_free(engine);
    tdm_cli_controls_free(&controls);
    tdm_image_free(&src);
    tdm_image_free(&mask_img);
    return exit_code;
}

/* ---- tandem edit-eval ---- */

static void edit_eval_help(void) {
    printf("usage: tandem edit-eval --model STUDENT --teacher TEACHER --n N --out DIR [options]\n\n"
           "The shapes-world edit evaluation (docs/EDITING.md): N test-split scenes (world seed 1001), each with one\n"
           "attribute changed (colour, position, size or background). Per pair: the student's edit, the teacher-only\n"
           "edit and the teacher's refinement of the student's edit, scored by the checker on the target caption\n"
           "(success), preservation of the unchanged attributes, the oracle, UNet evaluations and seconds; then the\n"
           "methods student, teacher, refine-all, regenerate-all and adaptive-refine / -regenerate at each k (and\n"
           "their -best forms: the better edit by the oracle, as tandem edit --keep-better).\n"
           "Writes DIR/pairs.jsonl (resumable log), DIR/results.jsonl and DIR/table.md (also printed).\n\n"
           "  --n N                  number of pairs (required)\n"
           "  --out DIR              output folder (required)\n"
           "  --world-seed N         world seed of the scenes (default 1001)\n"
           "  --seed N               noise seed of pair 0 (pair i: seed + i; default 0)\n"
           "  --strength S           SDEdit strength (default 0.75)\n"
           "  --k LIST               percentiles of the adaptive methods (default 10,30,50)\n"
           "  --calibration FILE     tau_k from this file (default: the evaluation's own student oracle scores)\n"
           "  --similarity-model DIR CLIP vision tower: also the embedding cosine of source and edit\n"
           "  --mask                 masked editing (tandem edit --source-prompt) with each pair's source caption\n"
           "  --mask-given           masked editing in a given region: where the pair's source and target renders\n"
           "                         differ (what a user would paint), dilated by --mask-dilate; no estimate\n"
           MASK_HELP
           "  --controlnet PATH      layout-guided editing: every run conditioned by this ControlNet with the\n"
           "                         target scene's segmentation map (the layout the edit asks for)\n"
           "  --control-scale F, --control-start F, --control-end F   its scale and window (1, 0, 1)\n"
           "  --drag                 with --mask-given: position edits move their objects first (drag-moves from\n"
           "                         each object's source centre to its target centre; tandem edit --drag)\n"
           "  --save-images          also write DIR/images/pairNNNNN_{source,student,teacher,refine}.png\n"
           "  --restart              discard an existing log instead of resuming it\n"
           "  the student / teacher / refinement / oracle options of tandem edit, --student-lora included\n"
           "  (--oracle default checker),\n"
           "  --width N --height N (default: the student's size), --threads N, -q\n");
}

typedef struct eeval_progress {
    int quiet, tty;
} eeval_progress;

static int on_pair(void *user, const tdm_edit_eval_progress *pg) {
    const eeval_progress *ep = user;
    if (!ep->quiet)
        fprintf(stderr, "%spair %d/%d  %-40.40s checker s %.2f t %.2f r %.2f  %.1f s%s", ep->tty ? "\r" : "", pg->done,
                pg->total, pg->instruction, (double)pg->student_checker, (double)pg->teacher_checker,
                (double)pg->refine_checker, pg->seconds, ep->tty ? "   " : "\n");
    if (!ep->quiet && ep->tty && pg->done == pg->total) fputc('\n', stderr);
    return tdm_cli_interrupted ? 1 : 0;
}

int tdm_cmd_edit_eval(int argc, char **argv) {
    const char *cmd = "edit-eval";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    const char *out = NULL, *calibration = NULL, *sim_dir = NULL;
    int n = 0, restart = 0, save_images = 0, drag = 0, n_k = 3;
    double k[TDM_CLI_MAX_K] = {10, 30, 50}, strength = 0.75;
    uint64_t world_seed = 1001;
    int masked = 0, mask_given = 0;
    const char *cn_path = NULL;
    float control_scale = 1.0f, control_start = 0.0f, control_end = 1.0f;
    mask_opts mo;
    mask_opts_init(&mo);
    tdm_cli_loras slora; /* --student-lora ... (cli_preset.h) */
    memset(&slora, 0, sizeof slora);
    int lora_share = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0, rnd = 0;
        int r = tdm_cli_pair_parse(cmd, argc, argv, &i, &c, &t);
        if (r == 0) r = mask_opts_parse(cmd, argc, argv, &i, &mo);
        if (r == 0) r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, &lora_share);
        if (r != 0) {
            if (r < 0) return 2;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            edit_eval_help();
            return 0;
        } else if (strcmp(a, "--restart") == 0) {
            restart = 1;
        } else if (strcmp(a, "--save-images") == 0) {
            save_images = 1;
        } else if (strcmp(a, "--drag") == 0) {
            drag = 1;
        } else if (strcmp(a, "--mask") == 0) {
            masked = 1;
        } else if (strcmp(a, "--mask-given") == 0) {
            masked = mask_given = 1;
        } else if (OPT("--n")) {
            if (err || !tdm_arg_int(cmd, "--n", v, 1, 100000, &n)) return 2;
        } else if (OPT("--out", "-o", "--output")) {
            if (err) return 2;
            out = v;
        } else if (OPT("--world-seed")) {
            if (err || !tdm_arg_seed(cmd, "--world-seed", v, &world_seed, &rnd)) return 2;
            if (rnd) {
                fprintf(stderr, "tandem %s: --world-seed must be a fixed number\n", cmd);
                return 2;
            }
        } else if (OPT("--strength")) {
            if (err || !tdm_cli_arg_double(cmd, "--strength", v, 0, 1, 1, 0, &strength)) return 2;
        } else if (OPT("--k")) {
            if (err || !tdm_cli_parse_k_list(cmd, v, k, &n_k)) return 2;
        } else if (OPT("--calibration")) {
            if (err) return 2;
            calibration = v;
        } else if (OPT("--similarity-model")) {
            if (err) return 2;
            sim_dir = v;
        } else if (OPT("--controlnet")) {
            if (err) return 2;
            cn_path = v;
        } else if (OPT("--control-scale")) {
            if (err || !tdm_arg_float(cmd, "--control-scale", v, 0.0, 100.0, &control_scale)) return 2;
        } else if (OPT("--control-start")) {
            if (err || !tdm_arg_float(cmd, "--control-start", v, 0.0, 1.0, &control_start)) return 2;
        } else if (OPT("--control-end")) {
            if (err || !tdm_arg_float(cmd, "--control-end", v, 0.0, 1.0, &control_end)) return 2;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
    }
    if (!c.model || !n || !out) {
        fprintf(stderr, "tandem %s: --model, --n and --out are required\n", cmd);
        return 2;
    }
    if (c.seed_random) {
        fprintf(stderr, "tandem %s: --seed must be a fixed number (the evaluation is reproducible)\n", cmd);
        return 2;
    }
    if (tdm_cli_teacher_check(cmd, &t)) return 2;
    tdm_status st = {0};
    tdm_engine *engine = NULL;
    tdm_model *student = NULL, *teacher_model = NULL;
    tdm_oracle *oracle = NULL;
    tdm_image_similarity *sim = NULL;
    tdm_controlnet *cn = NULL;
    int exit_code = 1;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_cli_load_pair_lora(&c, &t, &slora, lora_share, &student, &teacher_model, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    if (tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (sim_dir && tdm_image_similarity_open(sim_dir, engine, &sim, &st)) goto fail;
    if (cn_path && tdm_controlnet_load(cn_path, &cn, &st)) goto fail;
    tdm_edit_eval_params p;
    tdm_edit_eval_params_init(&p);
    p.world_seed = world_seed;
    p.n = n;
    p.seed = c.seed;
    tdm_cli_common_apply(&c, &p.settings);
    tdm_cli_teacher_apply(&t, &p.settings);
    p.settings.strength = (float)strength;
    mask_opts_apply(&mo, &p.settings);
    p.masked = masked;
    p.mask_given = mask_given;
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.k = k;
    p.n_k = n_k;
    p.calibration = calibration;
    p.similarity = sim;
    p.controlnet = cn;
    p.controlnet_name = cn_path;
    p.control_scale = control_scale;
    p.control_start = control_start;
    p.control_end = control_end;
    p.out_dir = out;
    p.restart = restart;
    p.save_images = save_images;
    p.drag = drag;
    eeval_progress pr = {c.quiet, !c.quiet && isatty(STDERR_FILENO)};
    p.on_pair = on_pair;
    p.user = &pr;
    tdm_eval_summary sum;
    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_edit_eval(engine, student, teacher_model ? teacher_model : student, &p, &sum, &st);
    tdm_cli_sig_restore(&sg);
    if (rc == TDM_ERR_CANCELLED) {
        fprintf(stderr, "\ntandem %s: interrupted; rerun the same command to continue (%s/pairs.jsonl)\n", cmd, out);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    tdm_cli_print_warnings(cmd, sum.warnings);
    if (!c.quiet) {
        if (sum.n_resumed) fprintf(stderr, "resumed after %d pairs\n", sum.n_resumed);
        tdm_cli_print_file(out, "table.md");
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_controlnet_free(cn);
    tdm_image_similarity_free(sim);
    tdm_oracle_free(oracle);
    tdm_model_free(student); /* first: a student derived with --student-lora views the teacher's weights */
    tdm_model_free(teacher_model);
    tdm_engine_free(engine);
    return exit_code;
}
