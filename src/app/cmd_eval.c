/* `tandem eval` (docs/ADAPTIVE.md "Evaluation"): student, teacher, refine-all, regenerate-all and the
 * adaptive methods at several k on the same prompts and seeds. Uses only tandem.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/args.h"
#include "app/cli_preset.h"
#include "app/commands_adaptive.h"
#include "tandem.h"

#define EVAL_MAX_K 128

static void eval_help(void) {
    printf("usage: tandem eval --model STUDENT --teacher TEACHER --prompts FILE --seeds SEEDS --out DIR [options]\n\n"
           "Runs, on every prompt of FILE with every seed: the student, the teacher alone, refine-all,\n"
           "regenerate-all and adaptive refine / regenerate at each k; every sample is generated once (student,\n"
           "teacher-only, refinement) and reused by every method. Writes DIR/samples.jsonl (resumable log),\n"
           "DIR/results.jsonl (one record per sample and method) and DIR/table.md (printed at the end).\n"
           "An interrupted run continues where it stopped when rerun with the same options.\n\n"
           "  --prompts FILE         UTF-8, one prompt per line, no blank lines (required)\n"
           "  --seeds SEEDS          A:B (A .. B-1), a list 1,5,9, or both: 0:10,42 (required)\n"
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

/* "10,30,50" -> k[] (each in (0, 100)). */
static int parse_k_list(const char *s, double *k, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item || *n >= EVAL_MAX_K) {
            fprintf(stderr, "tandem eval: --k: '%s' is not a list of percentiles (e.g. 10,30,50)\n", s);
            return 0;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!tdm_cli_arg_double("eval", "--k", item, 0, 100, 1, 1, &k[*n])) return 0;
        (*n)++;
        p += len + (e ? 1 : 0);
        if (e && !*p) {
            fprintf(stderr, "tandem eval: --k: '%s' ends with a comma\n", s);
            return 0;
        }
    }
    if (!*n) {
        fprintf(stderr, "tandem eval: --k: empty list\n");
        return 0;
    }
    return 1;
}

typedef struct eval_progress {
    int tty, quiet;
    struct timespec t0;
    int first; /* samples done before this process (resumed) */
    int seen;
} eval_progress;

static int on_sample(void *user, const tdm_eval_progress *pg) {
    eval_progress *ep = user;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (!ep->seen) {
        ep->seen = 1;
        ep->first = pg->done - 1;
    }
    double dt = (double)(t.tv_sec - ep->t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - ep->t0.tv_nsec);
    int n_run = pg->done - ep->first;
    double per = n_run > 0 ? dt / n_run : 0;
    if (!ep->quiet) {
        int step = pg->total / 20 > 0 ? pg->total / 20 : 1;
        if (ep->tty)
            fprintf(stderr, "\reval %d/%d  prompt %d seed %llu  oracle: student %.4g teacher %.4g refine %.4g  "
                    "%.2f s/sample  eta %.0f s   ",
                    pg->done, pg->total, pg->prompt_index + 1, (unsigned long long)pg->seed, (double)pg->student_oracle,
                    (double)pg->teacher_oracle, (double)pg->refine_oracle, per, per * (pg->total - pg->done));
        else if (pg->done % step == 0 || pg->done == pg->total)
            fprintf(stderr, "eval %d/%d  %.2f s/sample\n", pg->done, pg->total, per);
        if (ep->tty && pg->done == pg->total) fputc('\n', stderr);
    }
    return tdm_cli_interrupted ? 1 : 0;
}

static int on_stage(void *user, tdm_stage stage, int step, int total) {
    (void)user;
    (void)stage;
    (void)step;
    (void)total;
    return tdm_cli_interrupted ? 1 : 0;
}

static void print_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
}

int tdm_cmd_eval(int argc, char **argv) {
    const char *cmd = "eval";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    const char *prompts = NULL, *seeds_spec = NULL, *out = NULL, *calibration = NULL;
    double k[EVAL_MAX_K] = {10, 30, 50};
    int n_k = 3, restart = 0;
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
        r = tdm_cli_common_parse(cmd, argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = tdm_cli_teacher_parse(cmd, argc, argv, &i, &t)) != 0) {
            if (r < 0) return 2;
            continue;
        }
#define EOPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            eval_help();
            return 0;
        } else if (strcmp(a, "--restart") == 0) {
            restart = 1;
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
            if (err || !parse_k_list(v, k, &n_k)) return 2;
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
    s->progress = on_stage;
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.k = k;
    p.n_k = n_k;
    p.calibration = calibration;
    p.out_dir = out;
    p.restart = restart;
    eval_progress pg = {0};
    pg.tty = isatty(STDERR_FILENO);
    pg.quiet = c.quiet;
    clock_gettime(CLOCK_MONOTONIC, &pg.t0);
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
    if (sum.warnings[0]) {
        for (char *line = strtok(sum.warnings, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, "tandem %s: warning: %s\n", cmd, line);
    }
    if (!c.quiet) {
        if (sum.n_resumed) fprintf(stderr, "resumed after %d of %d samples\n", sum.n_resumed, sum.n_samples);
        print_file(out, "table.md");
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
