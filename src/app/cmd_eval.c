/* `tandem eval` (docs/ADAPTIVE.md "Evaluation"): student, teacher, refine-all, regenerate-all and the
 * adaptive methods at several k on the same prompts and seeds. Uses only tandem.h. */
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

static void eval_help(void) {
    printf("usage: tandem eval --model STUDENT --teacher TEACHER --prompts FILE --seeds SEEDS --out DIR [options]\n\n"
           "Runs, on every prompt of FILE with every seed: the student, the teacher alone, refine-all,\n"
           "regenerate-all and adaptive refine / regenerate at each k (and their -best forms: the better image by\n"
           "the oracle, as --keep-better); every sample is generated once (student, teacher-only, refinement)\n"
           "and reused by every method. Writes DIR/samples.jsonl (resumable log),\n"
           "DIR/results.jsonl (one record per sample and method) and DIR/table.md (printed at the end).\n"
           "An interrupted run continues where it stopped when rerun with the same options.\n\n"
           "  --prompts FILE         UTF-8, one prompt per line, no blank lines (required)\n"
           "  --seeds SEEDS          A:B (A .. B-1), a list 1,5,9, or both: 0:10,42 (required)\n"
           "  --seed-per-prompt      prompt j runs with each seed + j: its own initial noise (as calibrate)\n"
           "  --out DIR              output folder, created when missing (required)\n"
           "  --k LIST               percentiles for the adaptive methods (default 10,30,50)\n"
           "  --calibration FILE     tau_k from tandem calibrate's file (default: the k-th percentile of this\n"
           "                         evaluation's student oracle scores)\n"
           "  --restart              discard an existing DIR/samples.jsonl instead of resuming it\n"
           "student:\n"
           "  --model PATH, --student PATH   (required); --steps N, --guidance F, --sampler NAME, --eta F\n"
           "teacher and refinement:\n"
           "  --teacher PATH (default: the student's model), --teacher-steps N, --teacher-guidance F,\n"
           "  --teacher-sampler NAME, --teacher-eta F, --refine-strength S (default 0.4) | --refine-noise SIGMA,\n"
           "  --refine-steps T (teacher steps of a refinement; default --teacher-steps), --refine-through-pixels\n"
           "oracle:\n"
           "  --oracle NAME (default checker), --oracle-model PATH\n"
           "  --student-unet NAME, --teacher-unet NAME   UNet components (default: unet)\n"
           "  --student-lora PATH[:SCALE]  the student is the model + this LoRA (repeatable); on the teacher's\n"
           "                         model it shares the teacher's weights (--student-lora-no-share: a merged copy)\n"
           "common:\n"
           "  --width N, --height N, --negative-prompt TEXT, --clip-skip N, --no-emphasis, --tokenizer DIR,\n"
           "  --threads N, -q/--quiet\n");
    tdm_cli_preset_help(1);
}

static int on_sample(void *user, const tdm_eval_progress *pg) {
    char detail[256];
    snprintf(detail, sizeof detail, "prompt %d seed %llu  oracle: student %.4g teacher %.4g refine %.4g",
             pg->prompt_index + 1, (unsigned long long)pg->seed, (double)pg->student_oracle,
             (double)pg->teacher_oracle, (double)pg->refine_oracle);
    return tdm_cli_progress_report(user, "eval", "sample", pg->done, pg->total, detail);
}

int tdm_cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    const char *prompts = NULL, *seeds_spec = NULL, *out = NULL, *calibration = NULL;
    double k[TDM_CLI_MAX_K] = {10, 30, 50};
    int n_k = 3, restart = 0, seed_per_prompt = 0;
    tdm_cli_loras slora; /* --student-lora ... */
    memset(&slora, 0, sizeof slora);
    int lora_share = 1;
    tdm_cli_preset_opts po; /* --preset NAME, --teacher-width / --teacher-height */
    memset(&po, 0, sizeof po);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
        if (strcmp(a, "--seed") == 0 || strncmp(a, "--seed=", 7) == 0) {
            fprintf(stderr, "tandem %s: use --seeds (a list or a range A:B), not --seed\n", cmd);
            return 2;
        }
        int r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, &lora_share);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = tdm_cli_preset_parse(cmd, argc, argv, &i, 1, &po)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = tdm_cli_pair_parse(cmd, argc, argv, &i, &c, &t)) != 0) {
            if (r < 0) return 2;
            continue;
        }
#define EOPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            eval_help();
            return 0;
        } else if (strcmp(a, "--restart") == 0) {
            restart = 1;
        } else if (strcmp(a, "--seed-per-prompt") == 0) {
            seed_per_prompt = 1;
        } else if (EOPT("--prompts")) {
            if (err) return 2;
            prompts = v;
        } else if (EOPT("--seeds")) {
            if (err) return 2;
            seeds_spec = v;
        } else if (EOPT("--out", "-o", "--output")) {
            if (err) return 2;
            out = v;
        } else if (EOPT("--calibration")) {
            if (err) return 2;
            calibration = v;
        } else if (EOPT("--k")) {
            if (err || !tdm_cli_parse_k_list(cmd, v, k, &n_k)) return 2;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
#undef EOPT
    }
    const tdm_preset *preset = NULL;
    int pr = tdm_cli_preset_resolve(cmd, &po, &preset);
    if (pr >= 0) return pr;
    tdm_cli_preset_fill(preset, &c, &t, &po, NULL, 1); /* the k list stays --k's (default 10,30,50) */
    if ((po.teacher_width > 0) != (po.teacher_height > 0)) {
        fprintf(stderr, "tandem %s: give both --teacher-width and --teacher-height\n", cmd);
        return 2;
    }
    if (!c.model || !prompts || !seeds_spec || !out) {
        fprintf(stderr, "tandem %s: --model, --prompts, --seeds and --out are required\n", cmd);
        return 2;
    }
    if (tdm_cli_teacher_check(cmd, &t)) return 2;
    tdm_status st = {0};
    uint64_t *seeds = NULL;
    int n_seeds = 0;
    if (tdm_eval_parse_seeds(seeds_spec, &seeds, &n_seeds, &st)) {
        fprintf(stderr, "tandem %s: --seeds: %s\n", cmd, st.msg);
        return 2;
    }

    tdm_engine *engine = NULL;
    tdm_model *student = NULL, *teacher = NULL;
    tdm_oracle *oracle = NULL;
    int exit_code = 1;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (tdm_cli_load_pair_lora(&c, &t, &slora, lora_share, &student, &teacher, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    tdm_cli_preset_warn(cmd, preset, student, teacher ? teacher : student);

    tdm_eval_params p;
    tdm_eval_params_init(&p);
    p.prompts_file = prompts;
    p.seeds = seeds;
    p.n_seeds = n_seeds;
    tdm_adaptive_params *s = &p.settings;
    tdm_cli_common_apply(&c, s);
    tdm_cli_teacher_apply(&t, s);
    s->teacher_width = po.teacher_width;
    s->teacher_height = po.teacher_height;
    s->preset = preset ? preset->name : NULL;
    s->progress = tdm_cli_cancel_on_signal;
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.k = k;
    p.n_k = n_k;
    p.calibration = calibration;
    p.out_dir = out;
    p.restart = restart;
    p.seed_per_prompt = seed_per_prompt;
    tdm_cli_progress pg;
    tdm_cli_progress_init(&pg, c.quiet);
    p.on_sample = on_sample;
    p.user = &pg;
    tdm_eval_summary sum;
    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_eval(engine, student, teacher ? teacher : student, &p, &sum, &st);
    tdm_cli_sig_restore(&sg);
    if (rc == TDM_ERR_CANCELLED) {
        if (pg.tty && !c.quiet) fputc('\n', stderr);
        fprintf(stderr, "tandem %s: interrupted; rerun the same command to continue (%s/samples.jsonl)\n", cmd, out);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    tdm_cli_print_warnings(cmd, sum.warnings);
    if (!c.quiet) {
        if (sum.n_resumed) fprintf(stderr, "resumed after %d of %d samples\n", sum.n_resumed, sum.n_samples);
        tdm_cli_print_file(out, "table.md");
        printf("\nwrote %s/table.md, %s/results.jsonl (%d samples)\n", out, out, sum.n_samples);
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_oracle_free(oracle);
    tdm_model_free(student); /* first: a student derived with --student-lora views the teacher's weights */
    tdm_model_free(teacher);
    tdm_engine_free(engine);
    tdm_free(seeds);
    return exit_code;
}
