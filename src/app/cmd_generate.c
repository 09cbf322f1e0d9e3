/* `tandem generate` (text to image) and `tandem img2img` (image to image). Uses only tandem.h. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/args.h"
#include "app/cmd_control.h"
#include "app/commands.h"
#include "app/commands_adaptive.h"
#include "tandem.h"

/* Set by SIGINT / SIGTERM; the progress callback then cancels the run cleanly. */
static volatile sig_atomic_t g_interrupted = 0;
static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct gen_opts {
    const char *model, *tokenizer, *prompt, *negative, *sampler, *init_image, *output, *prediction;
    const char *unet_component; /* --unet-component NAME / --student */
    int steps, width, height, clip_skip, emphasis, threads;
    float guidance, eta, strength;
    uint64_t seed;
    int seed_random;
    int quiet;
    tdm_cli_controls controls; /* --controlnet ... (cmd_control.c) */
    tdm_cli_loras loras;       /* --lora PATH[:SCALE] ... */
    int lora_merge;            /* --lora-merge */
    /* SDXL micro-conditioning: --original-size, --crop-top/--crop-left, --target-size, --aesthetic-score,
     * --negative-aesthetic-score (0 sizes: the output size) */
    int original_w, original_h, crop_top, crop_left, target_w, target_h;
    float aesthetic, negative_aesthetic;
} gen_opts;

static void print_help(const char *cmd, int img2img) {
    int n_samplers = 0;
    const char *const *samplers = tdm_sampler_names(&n_samplers);
    printf("usage: tandem %s --model PATH --prompt TEXT%s [options]\n\n", cmd,
           img2img ? " --init-image FILE" : "");
    printf(img2img ? "Generates an image from a starting image and a text prompt (Stable Diffusion 1.x / 2.x / XL, LCM).\n\n"
                   : "Generates an image from a text prompt (Stable Diffusion 1.x / 2.x / XL, LCM).\n\n");
    printf("options:\n"
           "  --model PATH           diffusers model folder (model_index.json) or single .safetensors\n"
           "                         checkpoint (required)\n"
           "  --tokenizer DIR        folder with vocab.json + merges.txt (default: <model>/tokenizer, then the\n"
           "                         Hugging Face cache)\n"
           "  --unet-component NAME  diffusers folders: load this model_index.json component as the UNet\n"
           "                         (default: unet)\n"
           "  --student              same as --unet-component unet_student (the consistency-distilled\n"
           "                         student of models/shapes; sample it with --sampler consistency)\n"
           "  --lora PATH[:SCALE]    apply a LoRA file (kohya lora_unet_* / lora_te_* or diffusers / PEFT\n"
           "                         unet.*.lora_A / lora_B) with this scale (default 1); repeatable.\n"
           "                         An LCM-LoRA (metadata tandem.kind, or \"lcm\" in its file or folder\n"
           "                         name) makes lcm, 4 steps, guidance 1 the defaults (docs/LORA.md)\n"
           "  --lora-merge           merge the LoRA into copies of the adapted weights at load (faster steps,\n"
           "                         more memory) instead of adding it at run time over the base weights\n"
           "  --prompt TEXT          what to draw (required; may be \"\"). A1111 emphasis syntax: (word),\n"
           "                         (word:1.3), [word]; prompts longer than 75 tokens are split in chunks\n"
           "  --negative-prompt TEXT what to avoid (default: \"\")\n"
           "  --steps N              sampler steps, 1..1000 (default: 20; LCM models: 4)\n"
           "  --guidance F, --cfg F  classifier-free guidance scale, 0..100 (default: 7.5; LCM models: 8.5);\n"
           "                         <= 1 runs the conditional pass only\n"
           "  --sampler NAME         sampler (default: the model's scheduler_config.json class when tandem\n"
           "                         has it, else euler_a; LCM models: lcm); one of:\n"
           "                        ");
    for (int i = 0; i < n_samplers; i++) printf("%s%s", i ? ", " : " ", samplers[i]);
    printf("\n"
           "  --eta F                DDIM eta, 0..1 (default: 0)\n"
           "  --seed N               random seed, 0..2^64-1, or -1 for a random one (default: -1; the seed\n"
           "                         used is printed and stored in the PNG)\n"
           "  --width N              image width, 64..4096 (default: %s)\n"
           "  --height N             image height, 64..4096 (default: %s); both multiples of 8\n",
           img2img ? "the init image width rounded down to a multiple of 8" : "the model's, 512 for SD1.x",
           img2img ? "the init image height rounded down to a multiple of 8" : "the model's, 512 for SD1.x");
    if (img2img)
        printf("  --init-image FILE      starting image, PNG or JPEG (required); resized to width x height\n"
               "                         (Lanczos)\n"
               "  --strength F           how much of the schedule is re-run, 0 < F <= 1 (default: 0.75):\n"
               "                         0.3 keeps the image close, 1 ignores it\n");
    printf("  --clip-skip N          CLIP text layers skipped from the end, 1..12 (default: 1 = last layer;\n"
           "                         2 = penultimate, A1111 convention)\n"
           "  --emphasis             parse the A1111 emphasis syntax (default)\n"
           "  --no-emphasis          take the prompt literally (brackets and weights are plain text)\n"
           "  --original-size WxH    SDXL micro-conditioning original_size (default: the output size)\n"
           "  --target-size WxH      SDXL base target_size (default: the output size)\n"
           "  --crop-top N, --crop-left N  SDXL crops_coords_top_left (default: 0, 0)\n"
           "  --aesthetic-score F    SDXL refiner aesthetic score (default: 6.0; negative prompt's row:\n"
           "                         --negative-aesthetic-score F, default 2.5)\n"
           "  --prediction TYPE      override the model's prediction type: epsilon | v_prediction\n"
           "                         (default: from the model's scheduler config or checkpoint)\n"
           "  --threads N            worker threads, 0..1024 (default: 0 = all CPUs)\n"
           "  -o, --output FILE      output PNG with the A1111 \"parameters\" text chunk (default: output.png)\n"
           "  -q, --quiet            no progress line and no summary\n"
           "  -h, --help             this help\n");
    tdm_cli_controls_help();
    printf("  --adaptive             student-teacher generation with an oracle (tandem generate --adaptive\n"
           "                         --help lists its options; docs/ADAPTIVE.md)\n"
           "\nThe same seed and options give a bit-identical image whatever --threads is.\n");
}

/* Progress line on a terminal: "\rdenoise 12/20  1.3 s/it". */
typedef struct progress_state {
    int tty;
    struct timespec t0;
    tdm_stage stage;
} progress_state;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static int on_progress(void *user, tdm_stage stage, int step, int total) {
    progress_state *ps = user;
    if (ps->tty) {
        if (step == 0) {
            clock_gettime(CLOCK_MONOTONIC, &ps->t0);
            ps->stage = stage;
        }
        double dt = seconds_since(&ps->t0);
        if (stage == TDM_STAGE_DENOISE && step > 0)
            fprintf(stderr, "\r%-12s %d/%d  %.2f s/it   ", tdm_stage_name(stage), step, total, dt / step);
        else
            fprintf(stderr, "\r%-12s %d/%d  %.1f s      ", tdm_stage_name(stage), step, total, dt);
        if (step == total) fputc('\n', stderr);
        fflush(stderr);
    }
    return g_interrupted ? 1 : 0;
}

int tdm_cli_lora_add(const char *cmd, const char *opt, const char *v, tdm_cli_loras *l) {
    if (l->n >= TDM_CLI_MAX_LORAS) {
        fprintf(stderr, "tandem %s: %s: at most %d LoRA files\n", cmd, opt, TDM_CLI_MAX_LORAS);
        return 0;
    }
    size_t len = strlen(v);
    float scale = 1.0f;
    const char *colon = strrchr(v, ':');
    if (colon && colon[1]) { /* a trailing ":<number>" is the scale; anything else belongs to the path */
        char *end = NULL;
        double d = strtod(colon + 1, &end);
        if (end && *end == '\0' && isfinite(d) && fabs(d) <= 1e6) {
            scale = (float)d;
            len = (size_t)(colon - v);
        }
    }
    if (len == 0 || len >= sizeof l->path[0]) {
        fprintf(stderr, "tandem %s: %s: '%s' is not PATH[:SCALE]\n", cmd, opt, v);
        return 0;
    }
    memcpy(l->path[l->n], v, len);
    l->path[l->n][len] = '\0';
    l->s[l->n].path = l->path[l->n];
    l->s[l->n].scale = scale;
    l->n++;
    return 1;
}

/* Parses argv; returns -1 to continue, else the exit status (help: 0, error: 2). */
static int parse(const char *cmd, int img2img, int argc, char **argv, gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->emphasis = 1;
    o->guidance = -1.0f;
    o->strength = 0.75f;
    o->output = "output.png";
    o->seed_random = 1;
    o->clip_skip = 1;
    o->aesthetic = 6.0f;
    o->negative_aesthetic = 2.5f;
    int n_samplers = 0;
    const char *const *samplers = tdm_sampler_names(&n_samplers);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int err = 0;
#define OPT(...) ((v = tdm_arg_value(cmd, argc, argv, &i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(cmd, img2img);
            return 0;
        } else if (strcmp(a, "--emphasis") == 0) {
            o->emphasis = 1;
        } else if (strcmp(a, "--no-emphasis") == 0) {
            o->emphasis = 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--student") == 0) {
            o->unet_component = "unet_student";
        } else if (strcmp(a, "--lora-merge") == 0) {
            o->lora_merge = 1;
        } else if (OPT("--lora")) {
            if (err || !tdm_cli_lora_add(cmd, "--lora", v, &o->loras)) return 2;
        } else if (OPT("--unet-component")) {
            if (err) return 2;
            o->unet_component = v;
        } else if (OPT("--model")) {
            if (err) return 2;
            o->model = v;
        } else if (OPT("--tokenizer")) {
            if (err) return 2;
            o->tokenizer = v;
        } else if (OPT("--prompt")) {
            if (err) return 2;
            o->prompt = v;
        } else if (OPT("--negative-prompt")) {
            if (err) return 2;
            o->negative = v;
        } else if (OPT("--steps")) {
            if (err || !tdm_arg_int(cmd, "--steps", v, 1, 1000, &o->steps)) return 2;
        } else if (OPT("--guidance", "--cfg")) {
            if (err || !tdm_arg_float(cmd, "--guidance", v, 0.0, 100.0, &o->guidance)) return 2;
        } else if (OPT("--sampler")) {
            if (err) return 2;
            int ok = 0;
            for (int k = 0; k < n_samplers; k++) ok |= strcmp(v, samplers[k]) == 0;
            if (!ok) {
                fprintf(stderr, "tandem %s: --sampler: unknown sampler '%s' (see tandem %s --help)\n", cmd, v, cmd);
                return 2;
            }
            o->sampler = v;
        } else if (OPT("--eta")) {
            if (err || !tdm_arg_float(cmd, "--eta", v, 0.0, 1.0, &o->eta)) return 2;
        } else if (OPT("--seed")) {
            if (err || !tdm_arg_seed(cmd, "--seed", v, &o->seed, &o->seed_random)) return 2;
        } else if (OPT("--width")) {
            if (err || !tdm_arg_int(cmd, "--width", v, 64, 4096, &o->width)) return 2;
        } else if (OPT("--height")) {
            if (err || !tdm_arg_int(cmd, "--height", v, 64, 4096, &o->height)) return 2;
        } else if (img2img && OPT("--strength")) {
            if (err || !tdm_arg_float(cmd, "--strength", v, 0.0, 1.0, &o->strength)) return 2;
            if (o->strength <= 0.0f) {
                fprintf(stderr, "tandem %s: --strength: must be greater than 0\n", cmd);
                return 2;
            }
        } else if (img2img && OPT("--init-image")) {
            if (err) return 2;
            o->init_image = v;
        } else if (OPT("--clip-skip")) {
            if (err || !tdm_arg_int(cmd, "--clip-skip", v, 1, 12, &o->clip_skip)) return 2;
        } else if (OPT("--threads")) {
            if (err || !tdm_arg_int(cmd, "--threads", v, 0, 1024, &o->threads)) return 2;
        } else if (OPT("--original-size", "--target-size")) {
            if (err) return 2;
            const int orig = strcmp(a, "--original-size") == 0 || strncmp(a, "--original-size=", 16) == 0;
            int *w = orig ? &o->original_w : &o->target_w, *h = orig ? &o->original_h : &o->target_h;
            char *x = NULL;
            long lw = strtol(v, &x, 10), lh = x && (*x == 'x' || *x == 'X') ? strtol(x + 1, &x, 10) : -1;
            if (!x || *x || lw < 1 || lh < 1 || lw > 65536 || lh > 65536) {
                fprintf(stderr, "tandem %s: %s: '%s' is not WIDTHxHEIGHT (1..65536)\n", cmd,
                        orig ? "--original-size" : "--target-size", v);
                return 2;
            }
            *w = (int)lw, *h = (int)lh;
        } else if (OPT("--crop-top")) {
            if (err || !tdm_arg_int(cmd, "--crop-top", v, 0, 65536, &o->crop_top)) return 2;
        } else if (OPT("--crop-left")) {
            if (err || !tdm_arg_int(cmd, "--crop-left", v, 0, 65536, &o->crop_left)) return 2;
        } else if (OPT("--aesthetic-score")) {
            if (err || !tdm_arg_float(cmd, "--aesthetic-score", v, -1000.0, 1000.0, &o->aesthetic)) return 2;
        } else if (OPT("--negative-aesthetic-score")) {
            if (err || !tdm_arg_float(cmd, "--negative-aesthetic-score", v, -1000.0, 1000.0, &o->negative_aesthetic))
                return 2;
        } else if (OPT("--prediction")) {
            if (err) return 2;
            if (strcmp(v, "epsilon") != 0 && strcmp(v, "v_prediction") != 0) {
                fprintf(stderr, "tandem %s: --prediction: '%s' is not epsilon or v_prediction\n", cmd, v);
                return 2;
            }
            o->prediction = v;
        } else if (OPT("-o", "--output")) {
            if (err) return 2;
            o->output = v;
        } else if ((err = tdm_cli_controls_parse(cmd, argc, argv, &i, &o->controls)) != 0) {
            if (err < 0) return 2;
        } else {
            if (!img2img && (strcmp(a, "--init-image") == 0 || strcmp(a, "--strength") == 0))
                fprintf(stderr, "tandem %s: %s belongs to 'tandem img2img'\n", cmd, a);
            else
                fprintf(stderr, "tandem %s: unknown option '%s' (see tandem %s --help)\n", cmd, a, cmd);
            return 2;
        }
#undef OPT
    }
    if (!o->model) {
        fprintf(stderr, "tandem %s: --model PATH is required\n", cmd);
        return 2;
    }
    if (!o->prompt) {
        fprintf(stderr, "tandem %s: --prompt TEXT is required\n", cmd);
        return 2;
    }
    if (img2img && !o->init_image) {
        fprintf(stderr, "tandem %s: --init-image FILE is required\n", cmd);
        return 2;
    }
    if ((o->width && o->width % 8) || (o->height && o->height % 8)) {
        fprintf(stderr, "tandem %s: --width and --height must be multiples of 8 (got %dx%d)\n", cmd, o->width,
                o->height);
        return 2;
    }
    if (!*o->output) {
        fprintf(stderr, "tandem %s: --output must not be empty\n", cmd);
        return 2;
    }
    if (tdm_cli_controls_check(cmd, &o->controls)) return 2;
    return -1;
}

/* Messages from the library are one line already; make sure nothing multi-line reaches the user. */
static void fail_line(const char *cmd, const tdm_status *st) {
    char msg[sizeof st->msg];
    snprintf(msg, sizeof msg, "%s", st->msg[0] ? st->msg : tdm_code_name(st->code));
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "tandem %s: %s\n", cmd, msg);
}

int tdm_cmd_generate(const char *cmd, int img2img, int argc, char **argv) {
    if (!img2img) /* tandem generate --adaptive: the student-teacher pipeline (cmd_adaptive.c) */
        for (int i = 0; i < argc; i++)
            if (strcmp(argv[i], "--adaptive") == 0) return tdm_cmd_adaptive_generate(cmd, argc, argv);
    gen_opts o;
    int rc = parse(cmd, img2img, argc, argv, &o);
    if (rc >= 0) return rc;
    if (o.seed_random) o.seed = tdm_arg_random_seed();

    tdm_status st = {0};
    tdm_image init = {0}, out = {0};
    tdm_engine *engine = NULL;
    tdm_model *model = NULL;
    char *params_text = NULL;
    int exit_code = 1;

    if (img2img && tdm_image_load(o.init_image, &init, &st) != TDM_OK) goto fail;

    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = o.model;
    mp.tokenizer_dir = o.tokenizer;
    mp.unet_component = o.unet_component;
    mp.loras = o.loras.s;
    mp.n_loras = o.loras.n;
    mp.lora_merge = o.lora_merge;
    if (o.prediction) mp.prediction = strcmp(o.prediction, "epsilon") == 0 ? TDM_PREDICTION_EPSILON : TDM_PREDICTION_V;
    if (tdm_model_load(&mp, &model, &st) != TDM_OK) goto fail;
    if (o.loras.n && !o.quiet) {
        char lora_line[512];
        tdm_model_lora_summary(model, lora_line, sizeof lora_line);
        fprintf(stderr, "%s\n", lora_line);
    }

    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = o.threads;
    if (tdm_engine_create(&ep, &engine, &st) != TDM_OK) goto fail;
    if (tdm_cli_controls_load(&o.controls, &st) != TDM_OK) goto fail;

    progress_state ps = {0};
    ps.tty = !o.quiet && isatty(STDERR_FILENO);
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = o.prompt;
    gp.negative_prompt = o.negative;
    gp.steps = o.steps;
    gp.guidance_scale = o.guidance;
    gp.sampler = o.sampler;
    gp.eta = o.eta;
    gp.seed = o.seed;
    gp.width = o.width;
    gp.height = o.height;
    gp.strength = o.strength;
    gp.original_width = o.original_w, gp.original_height = o.original_h;
    gp.target_width = o.target_w, gp.target_height = o.target_h;
    gp.crop_top = o.crop_top, gp.crop_left = o.crop_left;
    gp.aesthetic_score = o.aesthetic, gp.negative_aesthetic_score = o.negative_aesthetic;
    gp.init_image = img2img ? &init : NULL;
    gp.clip_skip = o.clip_skip;
    gp.emphasis = o.emphasis;
    gp.progress = on_progress;
    gp.progress_user = &ps;
    gp.controls = o.controls.c;
    gp.n_controls = o.controls.n;

    if (o.seed_random && !o.quiet) fprintf(stderr, "seed %llu\n", (unsigned long long)o.seed);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    tdm_generate_stats stats;
    tdm_code grc = tdm_generate(engine, model, &gp, &out, &stats, &st);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (ps.tty && grc != TDM_OK) fputc('\n', stderr);
    if (grc == TDM_ERR_CANCELLED) {
        fprintf(stderr, "tandem %s: cancelled\n", cmd);
        exit_code = 130;
        goto done;
    }
    if (grc != TDM_OK) goto fail;

    int need = tdm_format_parameters(model, &gp, NULL, 0);
    if (need >= 0) {
        params_text = malloc((size_t)need + 1);
        if (params_text) tdm_format_parameters(model, &gp, params_text, (size_t)need + 1);
    }
    if (tdm_image_save_png(o.output, &out, params_text, &st) != TDM_OK) goto fail;
    if (!o.quiet)
        fprintf(stderr, "wrote %s (%dx%d, seed %llu, %d steps, %.1f s)\n", o.output, out.width, out.height,
                (unsigned long long)o.seed, stats.steps_run,
                stats.seconds_encode + stats.seconds_denoise + stats.seconds_decode);
    exit_code = 0;
    goto done;
fail:
    fail_line(cmd, &st);
    exit_code = 1;
done:
    free(params_text);
    tdm_image_free(&out);
    tdm_image_free(&init);
    tdm_cli_controls_free(&o.controls);
    tdm_model_free(model);
    tdm_engine_free(engine);
    return exit_code;
}
