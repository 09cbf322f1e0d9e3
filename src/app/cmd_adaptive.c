/* `tandem generate --adaptive` and `tandem calibrate` (docs/ADAPTIVE.md). Uses only tandem.h. */
#include <errno.h>
#include <math.h>
#include <signal.h>
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

volatile sig_atomic_t tdm_cli_interrupted = 0;
static void on_signal(int sig) {
    (void)sig;
    tdm_cli_interrupted = 1;
}

void tdm_cli_sig_install(tdm_cli_sig_guard *g) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &g->old_int);
    sigaction(SIGTERM, &sa, &g->old_term);
}

void tdm_cli_sig_restore(tdm_cli_sig_guard *g) {
    sigaction(SIGINT, &g->old_int, NULL);
    sigaction(SIGTERM, &g->old_term, NULL);
}

void tdm_cli_fail_line(const char *cmd, const tdm_status *st) {
    char msg[sizeof st->msg];
    snprintf(msg, sizeof msg, "%s", st->msg[0] ? st->msg : tdm_code_name(st->code));
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "tandem %s: %s\n", cmd, msg);
}

/* A number in (lo, hi) (open_lo / open_hi: exclusive ends). */
int tdm_cli_arg_double(const char *cmd, const char *opt, const char *s, double lo, double hi, int open_lo, int open_hi,
                      double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "tandem %s: %s: '%s' is not a number\n", cmd, opt, s);
        return 0;
    }
    if ((open_lo ? v <= lo : v < lo) || (open_hi ? v >= hi : v > hi)) {
        fprintf(stderr, "tandem %s: %s: %g is outside %c%g, %g%c\n", cmd, opt, v, open_lo ? '(' : '[', lo, hi,
                open_hi ? ')' : ']');
        return 0;
    }
    *out = v;
    return 1;
}

int tdm_cli_sampler_ok(const char *cmd, const char *opt, const char *v) {
    int n = 0;
    const char *const *names = tdm_sampler_names(&n);
    for (int k = 0; k < n; k++)
        if (strcmp(v, names[k]) == 0) return 1;
    fprintf(stderr, "tandem %s: %s: unknown sampler '%s' (see tandem %s --help)\n", cmd, opt, v, cmd);
    return 0;
}

void tdm_cli_common_init(tdm_cli_common_opts *c) {
    memset(c, 0, sizeof *c);
    c->student.guidance = -1.0f;
    c->clip_skip = 1;
    c->emphasis = 1;
    c->oracle = "checker";
}

#define OPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)

/* 1: argv[*i] was a common option (consumed); 0: not one; -1: bad value (message printed). */
int tdm_cli_common_parse(const char *cmd, int argc, char **argv, int *ip, tdm_cli_common_opts *o) {
    int i = *ip, err = 0;
    const char *v, *a = argv[i];
    int r = 1;
    if (strcmp(a, "--no-emphasis") == 0) o->emphasis = 0;
    else if (strcmp(a, "--emphasis") == 0) o->emphasis = 1;
    else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) o->quiet = 1;
    else if (OPT("--model", "--student")) r = err ? -1 : (o->model = v, 1);
    else if (OPT("--tokenizer")) r = err ? -1 : (o->tokenizer = v, 1);
    else if (OPT("--negative-prompt")) r = err ? -1 : (o->negative = v, 1);
    else if (OPT("--steps")) r = err || !tdm_arg_int(cmd, "--steps", v, 1, 1000, &o->student.steps) ? -1 : 1;
    else if (OPT("--guidance", "--cfg")) r = err || !tdm_arg_float(cmd, "--guidance", v, 0, 100, &o->student.guidance) ? -1 : 1;
    else if (OPT("--sampler")) r = err || !tdm_cli_sampler_ok(cmd, "--sampler", v) ? -1 : (o->student.sampler = v, 1);
    else if (OPT("--eta")) r = err || !tdm_arg_float(cmd, "--eta", v, 0, 1, &o->student.eta) ? -1 : 1;
    else if (OPT("--seed")) r = err || !tdm_arg_seed(cmd, "--seed", v, &o->seed, &o->seed_random) ? -1 : 1;
    else if (OPT("--width")) r = err || !tdm_arg_int(cmd, "--width", v, 64, 4096, &o->width) ? -1 : 1;
    else if (OPT("--height")) r = err || !tdm_arg_int(cmd, "--height", v, 64, 4096, &o->height) ? -1 : 1;
    else if (OPT("--clip-skip")) r = err || !tdm_arg_int(cmd, "--clip-skip", v, 1, 12, &o->clip_skip) ? -1 : 1;
    else if (OPT("--threads")) r = err || !tdm_arg_int(cmd, "--threads", v, 0, 1024, &o->threads) ? -1 : 1;
    else if (OPT("--oracle")) r = err ? -1 : (o->oracle = v, 1);
    else if (OPT("--oracle-model")) r = err ? -1 : (o->oracle_model = v, 1);
    else if (OPT("--student-unet")) r = err ? -1 : (o->unet_component = v, 1);
    else r = 0;
    *ip = i;
    return r;
}

int tdm_cli_load_model(const char *path, const char *tokenizer, const char *unet_component, tdm_model **out,
                       tdm_status *st) {
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = path;
    mp.tokenizer_dir = tokenizer;
    mp.unet_component = unet_component;
    return tdm_model_load(&mp, out, st);
}

static int same_component(const char *a, const char *b) {
    return strcmp(a ? a : "unet", b ? b : "unet") == 0;
}

int tdm_cli_load_pair(const tdm_cli_common_opts *c, const tdm_cli_teacher_opts *t, tdm_model **student,
                      tdm_model **teacher, tdm_status *st) {
    *teacher = NULL;
    int rc = tdm_cli_load_model(c->model, c->tokenizer, c->unet_component, student, st);
    if (rc) return rc;
    const char *tpath = t->path ? t->path : c->model;
    if (strcmp(tpath, c->model) == 0 && same_component(c->unet_component, t->unet_component)) return 0;
    return tdm_cli_load_model(tpath, c->tokenizer, t->unet_component, teacher, st);
}

/* --student-lora: the student is the model + the LoRA files. When the student's model and UNet component are
 * the teacher's, the model is loaded once (the teacher) and the student derived from it: one copy of the
 * UNet weights serves both, the student adding the LoRA terms at run time (docs/LORA.md). Otherwise the
 * student is loaded on its own with the LoRA applied (share 0: merged into its own weight copies). */
int tdm_cli_load_pair_lora(const tdm_cli_common_opts *c, const tdm_cli_teacher_opts *t, const tdm_cli_loras *l,
                           int share, tdm_model **student, tdm_model **teacher, tdm_status *st) {
    if (!l->n) return tdm_cli_load_pair(c, t, student, teacher, st);
    *student = *teacher = NULL;
    const char *tpath = t->path ? t->path : c->model;
    int rc;
    if (share && strcmp(tpath, c->model) == 0 && same_component(c->unet_component, t->unet_component)) {
        if ((rc = tdm_cli_load_model(tpath, c->tokenizer, t->unet_component, teacher, st))) return rc;
        return tdm_model_derive_lora(*teacher, l->s, l->n, student, st);
    }
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = c->model;
    mp.tokenizer_dir = c->tokenizer;
    mp.unet_component = c->unet_component;
    mp.loras = l->s;
    mp.n_loras = l->n;
    mp.lora_merge = !share; /* --student-lora-no-share: the student's own merged copy of the adapted weights, as a
                               separately stored (merged) student checkpoint would need */
    if ((rc = tdm_model_load(&mp, student, st))) return rc;
    return tdm_cli_load_model(tpath, c->tokenizer, t->unet_component, teacher, st);
}

int tdm_cli_load_student_lora(const tdm_cli_common_opts *c, const tdm_cli_loras *l, tdm_model **student,
                              tdm_status *st) {
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = c->model;
    mp.tokenizer_dir = c->tokenizer;
    mp.unet_component = c->unet_component;
    mp.loras = l->n ? l->s : NULL;
    mp.n_loras = l->n; /* run time over the base weights (lora_merge 0): the same numbers as the adaptive run's */
    return tdm_model_load(&mp, student, st);
}

int tdm_cli_student_lora_parse(const char *cmd, int argc, char **argv, int *ip, tdm_cli_loras *l, int *share) {
    int i = *ip, err = 0, r = 1;
    const char *v, *a = argv[i];
    if (share && strcmp(a, "--student-lora-no-share") == 0) *share = 0;
    else if (OPT("--student-lora")) r = err || !tdm_cli_lora_add(cmd, "--student-lora", v, l) ? -1 : 1;
    else r = 0;
    *ip = i;
    return r;
}

void tdm_cli_student_lora_print(const tdm_model *student, const tdm_cli_loras *l, int quiet) {
    if (!l->n || quiet || !student) return;
    char line[512];
    tdm_model_lora_summary(student, line, sizeof line);
    fprintf(stderr, "student %s\n", line);
}

void tdm_cli_teacher_init(tdm_cli_teacher_opts *t) {
    memset(t, 0, sizeof *t);
    t->settings.guidance = -1.0f;
    t->strength = t->noise = NAN;
}

int tdm_cli_teacher_parse(const char *cmd, int argc, char **argv, int *ip, tdm_cli_teacher_opts *t) {
    int i = *ip, err = 0;
    const char *v, *a = argv[i];
    int r = 1;
    if (strcmp(a, "--refine-through-pixels") == 0) t->pixels = 1;
    else if (OPT("--teacher")) r = err ? -1 : (t->path = v, 1);
    else if (OPT("--teacher-unet")) r = err ? -1 : (t->unet_component = v, 1);
    else if (OPT("--teacher-steps"))
        r = err || !tdm_arg_int(cmd, "--teacher-steps", v, 1, 1000, &t->settings.steps) ? -1 : 1;
    else if (OPT("--teacher-guidance", "--teacher-cfg"))
        r = err || !tdm_arg_float(cmd, "--teacher-guidance", v, 0, 100, &t->settings.guidance) ? -1 : 1;
    else if (OPT("--teacher-sampler"))
        r = err || !tdm_cli_sampler_ok(cmd, "--teacher-sampler", v) ? -1 : (t->settings.sampler = v, 1);
    else if (OPT("--teacher-eta")) r = err || !tdm_arg_float(cmd, "--teacher-eta", v, 0, 1, &t->settings.eta) ? -1 : 1;
    else if (OPT("--refine-strength"))
        r = err || !tdm_cli_arg_double(cmd, "--refine-strength", v, 0, 1, 1, 0, &t->strength) ? -1 : 1;
    else if (OPT("--refine-steps"))
        r = err || !tdm_arg_int(cmd, "--refine-steps", v, 1, 1000, &t->refine_steps) ? -1 : 1;
    else if (OPT("--refine-noise"))
        r = err || !tdm_cli_arg_double(cmd, "--refine-noise", v, 0, 1, 1, 1, &t->noise) ? -1 : 1;
    else r = 0;
    *ip = i;
    return r;
}

int tdm_cli_teacher_check(const char *cmd, const tdm_cli_teacher_opts *t) {
    if (!isnan(t->strength) && !isnan(t->noise)) {
        fprintf(stderr, "tandem %s: give --refine-strength or --refine-noise, not both\n", cmd);
        return 2;
    }
    return 0;
}

void tdm_cli_common_apply(const tdm_cli_common_opts *c, tdm_adaptive_params *p) {
    p->negative_prompt = c->negative ? c->negative : "";
    p->width = c->width;
    p->height = c->height;
    p->clip_skip = c->clip_skip;
    p->emphasis = c->emphasis;
    p->student = c->student;
}

void tdm_cli_teacher_apply(const tdm_cli_teacher_opts *t, tdm_adaptive_params *p) {
    p->teacher = t->settings;
    if (!isnan(t->noise)) {
        p->refine_convention = TDM_REFINE_NOISE;
        p->refine_noise = (float)t->noise;
    } else if (!isnan(t->strength)) {
        p->refine_strength = (float)t->strength;
    }
    p->force_pixels = t->pixels;
    p->refine_steps = t->refine_steps;
}

/* ---- progress ---- */

typedef struct progress_state {
    int tty;
    int phase; /* 0 student, 1 teacher (a second text encode starts the teacher) */
    int seen_decode;
} progress_state;

static int on_progress(void *user, tdm_stage stage, int step, int total) {
    progress_state *ps = user;
    if (stage == TDM_STAGE_ENCODE_TEXT && step == 0 && ps->seen_decode) ps->phase = 1;
    if (stage == TDM_STAGE_DECODE && step == total) ps->seen_decode = 1;
    if (ps->tty) {
        fprintf(stderr, "\r%-8s %-12s %d/%d   ", ps->phase ? "teacher" : "student", tdm_stage_name(stage), step, total);
        if (stage == TDM_STAGE_DECODE && step == total) fputc('\n', stderr);
        fflush(stderr);
    }
    return tdm_cli_interrupted ? 1 : 0;
}

/* ---- tandem generate --adaptive ---- */

static void adaptive_help(const char *cmd) {
    printf("usage: tandem %s --adaptive --model STUDENT --teacher TEACHER --prompt TEXT\n"
           "                (--tau F | --k K --calibration FILE | --teacher-share Q --calibration FILE) [options]\n\n"
           "Adaptive student-teacher generation (docs/ADAPTIVE.md): the student makes an image, an oracle scores\n"
           "it; a score below tau sends it to the teacher, otherwise it is kept.\n\n"
           "student:\n"
           "  --model PATH, --student PATH   the student model (required)\n"
           "  --steps N, --guidance F, --sampler NAME, --eta F   its settings (defaults: the model's)\n"
           "teacher:\n"
           "  --teacher PATH         the teacher model (default: the student's model)\n"
           "  --student-unet NAME, --teacher-unet NAME\n"
           "                         UNet component of the model folder (default: unet; the shapes\n"
           "                         models keep the student as unet_student)\n"
           "  --teacher-steps N      teacher steps T actually run (default: the model's, 20)\n"
           "  --teacher-guidance F, --teacher-sampler NAME, --teacher-eta F\n"
           "  --student-lora PATH[:SCALE]  the student is the model + this LoRA (scale default 1; repeatable),\n"
           "                         e.g. an SD1.5 teacher + LCM-LoRA (which defaults to lcm, 4 steps, guidance 1).\n"
           "                         When the student and the teacher are the same model, it is loaded once:\n"
           "                         the student adds the LoRA at run time over the teacher's weights\n"
           "  --student-lora-no-share  load the student as a second model with the LoRA merged into its own\n"
           "                         copy of the adapted weights (as a merged student checkpoint; for memory\n"
           "                         comparisons, docs/LORA.md)\n"
           "oracle and threshold:\n"
           "  --oracle NAME          checker (default; shapes-world captions), imagereward, clipscore, aesthetic,\n"
           "                         pickscore, hpsv2, constant:V, brightness\n"
           "  --oracle-model PATH    weights of a model-backed oracle\n"
           "  --tau F                keep the student's image when score >= F\n"
           "  --k K                  tau = the K-th percentile (0 < K < 100) of the calibration scores: about K%%\n"
           "                         of samples go to the teacher\n"
           "  --teacher-share Q      tau such that a share Q (0..1) of the calibration samples go to the teacher\n"
           "  --calibration FILE     from tandem calibrate (a settings mismatch is warned about on stderr)\n"
           "improvement:\n"
           "  --strategy refine|regenerate   refine (default): the teacher denoises the re-noised student\n"
           "                         result; regenerate: the teacher samples from the student's initial noise\n"
           "  --refine-strength S    diffusers img2img strength, 0 < S <= 1 (default 0.4; reference code):\n"
           "                         a schedule of int(T/S + 1) steps of which the last T run\n"
           "  --refine-noise SIGMA   paper Algorithm 1, 0 < SIGMA < 1: x = sqrt(1-SIGMA) x0 + sqrt(SIGMA) z, i.e.\n"
           "                         start where 1 - alphabar_t = SIGMA (nearest grid point running T steps)\n"
           "  --refine-steps T       teacher steps of a refinement (default: --teacher-steps); e.g. refine in\n"
           "                         10 steps while the teacher alone would run 50\n"
           "  --refine-through-pixels  decode / re-encode even when the VAE is shared (default: latent hand-off)\n"
           "  --keep-better          when the teacher ran, the oracle scores its image too and the student's image\n"
           "                         is returned when it scores higher (one more oracle call, no UNet evaluation)\n"
           "common:\n"
           "  --prompt TEXT, --negative-prompt TEXT, --seed N (-1 random), --width N, --height N, --clip-skip N,\n"
           "  --no-emphasis, --tokenizer DIR, --threads N\n"
           "  -o, --output FILE      output PNG (default output.png): text chunks \"parameters\" (A1111) and\n"
           "                         \"tandem\" (JSON: oracle, score, tau, k, decision, settings, UNet evals, times)\n"
           "  --sidecar FILE         also write the JSON to FILE\n"
           "  --student-output FILE  also write the student's image\n"
           "  -q, --quiet            no progress and no summary\n"
           "ControlNet (the same controls condition the student and the teacher; each must fit both UNets):\n",
           cmd);
    tdm_cli_controls_help();
    tdm_cli_preset_help(1);
}

int tdm_cmd_adaptive_generate(const char *cmd, int argc, char **argv) {
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    const char *prompt = NULL, *output = "output.png", *sidecar = NULL, *student_out = NULL;
    tdm_cli_teacher_opts t;
    tdm_cli_teacher_init(&t);
    tdm_cli_threshold_opts th; /* --tau, --k, --teacher-share, --calibration, --strategy */
    tdm_cli_threshold_init(&th);
    tdm_cli_controls controls; /* --controlnet ... (cmd_control.c) */
    memset(&controls, 0, sizeof controls);
    tdm_cli_loras slora; /* --student-lora ... */
    memset(&slora, 0, sizeof slora);
    int lora_share = 1;
    tdm_cli_preset_opts po; /* --preset NAME, --teacher-width / --teacher-height */
    memset(&po, 0, sizeof po);
    c.seed_random = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
        int r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, &lora_share);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = tdm_cli_preset_parse(cmd, argc, argv, &i, 1, &po)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = tdm_cli_pair_parse(cmd, argc, argv, &i, &c, &t)) != 0 ||
            (r = tdm_cli_threshold_parse(cmd, argc, argv, &i, &th)) != 0 ||
            (r = tdm_cli_controls_parse(cmd, argc, argv, &i, &controls)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            adaptive_help(cmd);
            return 0;
        } else if (strcmp(a, "--adaptive") == 0) {
        } else if (OPT("--prompt")) {
            if (err) return 2;
            prompt = v;
        } else if (OPT("-o", "--output")) {
            if (err) return 2;
            output = v;
        } else if (OPT("--sidecar")) {
            if (err) return 2;
            sidecar = v;
        } else if (OPT("--student-output")) {
            if (err) return 2;
            student_out = v;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --adaptive --help)\n", cmd, a, cmd);
            return 2;
        }
    }
    double tau = th.tau, k = th.k, share = th.share;
    const char *calibration = th.calibration;
    const int strategy = th.strategy;
    const tdm_preset *preset = NULL;
    int pr = tdm_cli_preset_resolve(cmd, &po, &preset);
    if (pr >= 0) return pr; /* "--preset help" listed them (0), or an unknown name (2) */
    tdm_cli_preset_fill(preset, &c, &t, &po, &k, !isnan(tau) || !isnan(k) || !isnan(share));
    if (!c.model) {
        fprintf(stderr, "tandem %s: --model PATH (the student) is required\n", cmd);
        return 2;
    }
    if (!prompt) {
        fprintf(stderr, "tandem %s: --prompt TEXT is required\n", cmd);
        return 2;
    }
    if ((po.teacher_width > 0) != (po.teacher_height > 0)) {
        fprintf(stderr, "tandem %s: give both --teacher-width and --teacher-height\n", cmd);
        return 2;
    }
    int n_thr = !isnan(tau) + !isnan(k) + !isnan(share);
    if (n_thr != 1) {
        fprintf(stderr, "tandem %s: give exactly one of --tau, --k, --teacher-share (got %d)\n", cmd, n_thr);
        return 2;
    }
    if (isnan(tau) && !calibration) {
        if (preset && !isnan(k))
            fprintf(stderr, "tandem %s: preset %s sets k %g, which needs --calibration FILE (tandem calibrate --preset %s); "
                    "or give --tau F\n", cmd, preset->name, k, preset->name);
        else
            fprintf(stderr, "tandem %s: %s needs --calibration FILE (made by tandem calibrate)\n", cmd,
                    !isnan(k) ? "--k" : "--teacher-share");
        return 2;
    }
    if (tdm_cli_teacher_check(cmd, &t)) return 2;
    if (tdm_cli_controls_check(cmd, &controls)) return 2;
    if (c.seed_random) c.seed = tdm_arg_random_seed();

    tdm_status st = {0};
    tdm_engine *engine = NULL;
    tdm_model *student = NULL, *teacher_model = NULL;
    tdm_oracle *oracle = NULL;
    tdm_adaptive_result res;
    memset(&res, 0, sizeof res);
    int exit_code = 1;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_cli_load_pair_lora(&c, &t, &slora, lora_share, &student, &teacher_model, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    tdm_cli_preset_warn(cmd, preset, student, teacher_model ? teacher_model : student);
    if (tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (tdm_cli_controls_load(&controls, &st)) goto fail;

    tdm_adaptive_params p;
    tdm_adaptive_params_init(&p);
    p.prompt = prompt;
    p.seed = c.seed;
    tdm_cli_common_apply(&c, &p);
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.tau = tau;
    p.k = k;
    p.teacher_share = share;
    p.calibration = calibration;
    p.strategy = (tdm_adaptive_strategy)strategy;
    p.keep_better = th.keep_better;
    tdm_cli_teacher_apply(&t, &p);
    p.preset = preset ? preset->name : NULL;
    p.keep_student_image = student_out != NULL;
    p.controls = controls.c;
    p.n_controls = controls.n;
    p.teacher_width = po.teacher_width;
    p.teacher_height = po.teacher_height;
    progress_state ps = {0};
    ps.tty = !c.quiet && isatty(STDERR_FILENO);
    p.progress = on_progress;
    p.progress_user = &ps;
    if (c.seed_random && !c.quiet) fprintf(stderr, "seed %llu\n", (unsigned long long)c.seed);

    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_adaptive_generate(engine, student, teacher_model ? teacher_model : student, &p, &res, &st);
    tdm_cli_sig_restore(&sg);
    if (ps.tty && rc) fputc('\n', stderr);
    if (rc == TDM_ERR_CANCELLED) {
        fprintf(stderr, "tandem %s: cancelled\n", cmd);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    tdm_cli_print_warnings(cmd, res.warnings); /* one "warning:" line per mismatch */
    if (tdm_adaptive_save(&res, output, sidecar, &st)) goto fail;
    if (student_out && tdm_image_save_png(student_out, &res.student_image, NULL, &st)) goto fail;
    if (!c.quiet) {
        fprintf(stderr, "wrote %s: %s (oracle %s %.4g %s tau %.4g), UNet evals %d + %d, %.1f s (student %.1f, oracle "
                "%.2f, teacher %.1f)\n",
                output, tdm_adaptive_decision_name(res.decision), tdm_oracle_get_name(oracle), (double)res.oracle_score,
                res.decision == TDM_DECISION_KEEP ? ">=" : "<", res.tau, res.unet_evals_student, res.unet_evals_teacher,
                res.seconds_total, res.seconds_student, res.seconds_oracle, res.seconds_teacher);
        if (res.decision != TDM_DECISION_KEEP && !isnan(res.teacher_oracle_score))
            fprintf(stderr, "keep-better: the teacher's image scores %.4g, the %s's image is returned\n",
                    (double)res.teacher_oracle_score, res.selected_student ? "student" : "teacher");
        if (res.decision == TDM_DECISION_REFINE)
            fprintf(stderr, "refined through the %s (%s): %d of %d grid steps from t = %g (1 - alphabar = %.3f)\n",
                    res.handoff_latent ? "latent" : "pixels", res.handoff_reason, res.refine_steps, res.refine_grid_steps,
                    (double)res.refine_start_timestep, res.refine_sigma);
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_adaptive_result_free(&res);
    tdm_cli_controls_free(&controls);
    tdm_oracle_free(oracle);
    tdm_model_free(student); /* first: a student derived with --student-lora views the teacher's weights */
    tdm_model_free(teacher_model);
    tdm_engine_free(engine);
    return exit_code;
}

/* ---- tandem calibrate ---- */

static void calibrate_help(void) {
    printf("usage: tandem calibrate --model STUDENT --prompts FILE --n N --out calib.json [options]\n\n"
           "Generates N student samples (sample i: prompt i mod P of FILE, seed SEED + i) with the settings the\n"
           "adaptive run will use, scores them with the oracle and writes the scores and tau_k for k = 1..99\n"
           "(numpy's default percentile) with their provenance. Progress is appended to OUT.partial: an\n"
           "interrupted run continues where it stopped when rerun with the same options.\n\n"
           "  --model PATH           the student model (required)\n"
           "  --prompts FILE         UTF-8, one prompt per line, no blank lines (required)\n"
           "  --n N                  number of samples (required)\n"
           "  --out FILE             calibration JSON (required)\n"
           "  --seed N               first seed (default 0)\n"
           "  --steps N, --guidance F, --sampler NAME, --eta F, --width N, --height N, --negative-prompt TEXT,\n"
           "  --clip-skip N, --no-emphasis, --tokenizer DIR   student settings (defaults: the model's)\n"
           "  --oracle NAME          (default checker), --oracle-model PATH\n"
           "  --student-unet NAME    UNet component of the model folder (default: unet)\n"
           "  --student-lora PATH[:SCALE]  the student is the model + this LoRA (repeatable; applied at run time,\n"
           "                         as generate --adaptive / eval use it)\n"
           "  --teacher-share Q      also print the tau that sends a share Q of the samples to the teacher\n"
           "  --restart              discard an existing OUT.partial instead of resuming it\n"
           "  --threads N, -q/--quiet\n");
    tdm_cli_preset_help(1);
}

static int on_sample(void *user, int done, int total, float score) {
    char detail[64];
    snprintf(detail, sizeof detail, "score %.4g", (double)score);
    return tdm_cli_progress_report(user, "calibrate", "sample", done, total, detail);
}

int tdm_cmd_calibrate(int argc, char **argv) {
    const char *cmd = "calibrate";
    tdm_cli_common_opts c;
    tdm_cli_common_init(&c);
    const char *prompts = NULL, *out = NULL;
    int n = 0, restart = 0;
    double share = NAN;
    tdm_cli_loras slora; /* --student-lora ... */
    memset(&slora, 0, sizeof slora);
    tdm_cli_preset_opts po;
    memset(&po, 0, sizeof po);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
        int r = tdm_cli_student_lora_parse(cmd, argc, argv, &i, &slora, NULL);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((r = tdm_cli_preset_parse(cmd, argc, argv, &i, 1, &po)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        r = tdm_cli_common_parse(cmd, argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            calibrate_help();
            return 0;
        } else if (strcmp(a, "--restart") == 0) {
            restart = 1;
        } else if (OPT("--prompts")) {
            if (err) return 2;
            prompts = v;
        } else if (OPT("--n")) {
            if (err || !tdm_arg_int(cmd, "--n", v, 1, 10000000, &n)) return 2;
        } else if (OPT("--out", "-o", "--output")) {
            if (err) return 2;
            out = v;
        } else if (OPT("--teacher-share")) {
            if (err || !tdm_cli_arg_double(cmd, "--teacher-share", v, 0, 1, 0, 0, &share)) return 2;
        } else {
            fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
    }
    const tdm_preset *preset = NULL;
    int pr = tdm_cli_preset_resolve(cmd, &po, &preset);
    if (pr >= 0) return pr;
    tdm_cli_preset_fill(preset, &c, NULL, &po, NULL, 1); /* the student's settings, size and oracle */
    if (preset && !po.teacher_width && !po.teacher_height) { /* the oracle sees images at the teacher's size */
        po.teacher_width = preset->teacher_width;
        po.teacher_height = preset->teacher_height;
    }
    if ((po.teacher_width > 0) != (po.teacher_height > 0)) {
        fprintf(stderr, "tandem %s: give both --teacher-width and --teacher-height, or neither\n", cmd);
        return 2;
    }
    if (!c.model || !prompts || !n || !out) {
        fprintf(stderr, "tandem %s: --model, --prompts, --n and --out are required\n", cmd);
        return 2;
    }
    if (c.seed_random) {
        fprintf(stderr, "tandem %s: --seed must be a fixed number (calibration is reproducible)\n", cmd);
        return 2;
    }
    tdm_status st = {0};
    tdm_engine *engine = NULL;
    tdm_model *student = NULL;
    tdm_oracle *oracle = NULL;
    tdm_calibration *cal = NULL;
    int exit_code = 1;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = c.threads;
    if (tdm_engine_create(&ep, &engine, &st)) goto fail;
    if (tdm_oracle_open(c.oracle, c.oracle_model, engine, &oracle, &st)) goto fail;
    if (tdm_cli_load_student_lora(&c, &slora, &student, &st)) goto fail;
    tdm_cli_student_lora_print(student, &slora, c.quiet);
    tdm_cli_preset_warn(cmd, preset, student, NULL);
    tdm_calibrate_params p;
    tdm_calibrate_params_init(&p);
    p.prompts_file = prompts;
    p.n = n;
    p.seed = c.seed;
    p.negative_prompt = c.negative ? c.negative : "";
    p.width = c.width;
    p.height = c.height;
    p.clip_skip = c.clip_skip;
    p.emphasis = c.emphasis;
    p.student = c.student;
    p.score_width = po.teacher_width;
    p.score_height = po.teacher_height;
    p.oracle = oracle;
    p.oracle_model = c.oracle_model;
    p.out_path = out;
    p.restart = restart;
    tdm_cli_progress cp;
    tdm_cli_progress_init(&cp, c.quiet);
    p.on_sample = on_sample;
    p.user = &cp;
    int resumed = 0;
    tdm_cli_sig_guard sg;
    tdm_cli_sig_install(&sg);
    tdm_code rc = tdm_calibrate(engine, student, &p, &resumed, &st);
    tdm_cli_sig_restore(&sg);
    if (rc == TDM_ERR_CANCELLED) {
        if (cp.tty && !c.quiet) fputc('\n', stderr);
        fprintf(stderr, "tandem %s: interrupted; rerun the same command to continue (%s.partial)\n", cmd, out);
        exit_code = 130;
        goto done;
    }
    if (rc) goto fail;
    if (tdm_calibration_load(out, &cal, &st)) goto fail;
    if (!c.quiet) {
        if (resumed) fprintf(stderr, "resumed after %d samples\n", resumed);
        printf("wrote %s (%d samples)\n", out, tdm_calibration_count(cal));
        for (int kk = 10; kk <= 90; kk += 10) {
            double t = 0;
            tdm_calibration_tau(cal, kk, &t, &st);
            printf("  k = %2d: tau = %.6g\n", kk, t);
        }
    }
    if (!isnan(share)) {
        double t = 0, real = 0;
        if (tdm_calibration_tau_for_share(cal, share, &t, &real, &st)) goto fail;
        printf("teacher share %g: tau = %.9g (%.4g of the calibration samples score below it)\n", share, t, real);
    }
    exit_code = 0;
    goto done;
fail:
    tdm_cli_fail_line(cmd, &st);
    exit_code = 1;
done:
    tdm_calibration_free(cal);
    tdm_oracle_free(oracle);
    tdm_model_free(student);
    tdm_engine_free(engine);
    return exit_code;
}
