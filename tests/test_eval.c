/* tandem eval on tiny models assembled from the fixtures (student: the LCM tiny UNet, teacher: the SD1.5 tiny
 * UNet, both with vae-sd-tiny), brightness oracle, a deterministic clock: the samples are the ones
 * tdm_generate / tdm_adaptive_generate make, the methods' budgets add up, the adaptive decisions follow tau,
 * an interrupted-and-resumed run (also with a torn log line) writes the same files byte for byte, a
 * mismatched restart is refused, other k reuse a finished log, calibration files, seed lists, the CLI. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "pipeline/eval.h"
#include "tandem.h"
#include "cli_util.h"
#include "eval_test_util.h"
#include "test_util.h"





/* ---- seeds ---- */

static void test_seeds(void) {
    tdm_status st = {0};
    uint64_t *s = NULL;
    int n = 0;
    CHECK(tdm_eval_parse_seeds("0:3,10", &s, &n, &st) == TDM_OK && n == 4 && s[0] == 0 && s[2] == 2 && s[3] == 10);
    free(s);
    CHECK(tdm_eval_parse_seeds("18446744073709551615", &s, &n, &st) == TDM_OK && n == 1 && s[0] == UINT64_MAX);
    free(s);
    const char *bad[] = {"", "3:3", "5:2", "a", "1,,2", "1,", "-1", "18446744073709551616", "0:2000000", "1:2:3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = NULL;
        CHECK_MSG(tdm_eval_parse_seeds(bad[i], &s, &n, &st) == TDM_ERR_INVALID_ARG && s == NULL, "'%s' accepted", bad[i]);
    }
}

/* ---- the run ---- */

typedef struct models {
    tdm_engine *e;
    tdm_model *sd, *lcm;
    tdm_oracle *bright;
} models;

/* Deterministic clock: +0.25 s per reading. */
static double fake_clock(void *user) {
    double *t = user;
    *t += 0.25;
    return *t;
}

static int cancel_after(void *user, const tdm_eval_progress *pg) { return pg->done >= *(int *)user; }

static char g_prompts[PATH_MAX];
static const double g_k[3] = {25, 50, 75};

static void base_params(tdm_eval_params *p, const models *m, const char *out, double *clk) {
    static uint64_t seeds[2] = {3, 4};
    tdm_eval_params_init(p);
    p->prompts_file = g_prompts;
    p->seeds = seeds;
    p->n_seeds = 2;
    p->settings.width = p->settings.height = 64;
    p->settings.student.steps = 2;
    p->settings.teacher.steps = 3;
    p->settings.teacher.sampler = "ddim";
    p->settings.teacher.guidance = 7.5f;
    p->oracle = m->bright;
    p->k = g_k;
    p->n_k = 3;
    p->out_dir = out;
    *clk = 0;
    p->clock = fake_clock;
    p->clock_user = clk;
}

static tdm_code run(const models *m, const tdm_eval_params *p, tdm_eval_summary *sum) {
    tdm_status st = {0};
    tdm_code rc = tdm_eval(m->e, m->lcm, m->sd, p, sum, &st);
    if (rc && rc != TDM_ERR_CANCELLED) fprintf(stderr, "eval: %s\n", st.msg);
    return rc;
}

static float brightness_of(const models *m, const tdm_image *img) {
    float s = -1;
    tdm_status st = {0};
    tdm_oracle_score(m->bright, "", img, &s, &st);
    return s;
}

/* Checks results.jsonl of a 2 prompts x 2 seeds run against direct generations and the budget rules. */
static void check_results(const models *m, const char *dir) {
    char path[PATH_MAX];
    tdm_test_path_in(path, sizeof path, dir, "results.jsonl");
    char *text = tdm_test_read_text(path);
    CHECK(text != NULL);
    if (!text) return;
    const char *prompts[2] = {"a red circle on the left", "an astronaut riding a horse"};
    int lines = 0;
    double sum_evals[TDM_EVAL_N_METHODS][3] = {{0}};
    int routed[TDM_EVAL_N_METHODS][3] = {{0}};
    float student_oracle[4] = {0}, teacher_oracle[4] = {0}, refine_oracle[4] = {0};
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        cJSON *o = cJSON_Parse(line);
        CHECK(o != NULL);
        if (!o) continue;
        int i = cJSON_GetObjectItem(o, "sample")->valueint;
        int pi = cJSON_GetObjectItem(o, "prompt_index")->valueint;
        const char *meth = cJSON_GetObjectItem(o, "method")->valuestring;
        const cJSON *ck = cJSON_GetObjectItem(o, "checker"), *dec = cJSON_GetObjectItem(o, "decision");
        float orc = (float)cJSON_GetObjectItem(o, "oracle")->valuedouble;
        int evals = cJSON_GetObjectItem(o, "unet_evals")->valueint;
        int es = cJSON_GetObjectItem(o, "unet_evals_student")->valueint;
        int et = cJSON_GetObjectItem(o, "unet_evals_teacher")->valueint;
        double sec = cJSON_GetObjectItem(o, "seconds")->valuedouble;
        CHECK(i >= 0 && i < 4 && pi == i / 2 && strcmp(cJSON_GetObjectItem(o, "prompt")->valuestring, prompts[pi]) == 0);
        CHECK(cJSON_GetObjectItem(o, "seed")->valueint == 3 + i % 2);
        CHECK_MSG(pi == 0 ? cJSON_IsNumber(ck) : cJSON_IsNull(ck), "checker of sample %d", i); /* prompt 2: no caption */
        CHECK(evals == es + et);
        CHECK(sec == cJSON_GetObjectItem(o, "seconds_student")->valuedouble +
                         cJSON_GetObjectItem(o, "seconds_oracle")->valuedouble +
                         cJSON_GetObjectItem(o, "seconds_teacher")->valuedouble);
        /* budgets: student LCM 2 steps = 2 evals; teacher DDIM 3 guided steps = 6; refinement 3 guided = 6 */
        if (!strcmp(meth, "student")) {
            CHECK(es == 2 && et == 0 && cJSON_IsNull(dec) && sec == 0.25);
            student_oracle[i] = orc;
        } else if (!strcmp(meth, "teacher")) {
            CHECK(es == 0 && et == 6 && cJSON_IsNull(dec));
            teacher_oracle[i] = orc;
        } else if (!strcmp(meth, "refine-all")) {
            CHECK(es == 2 && et == 6 && !strcmp(dec->valuestring, "refine"));
            CHECK(cJSON_GetObjectItem(o, "seconds_oracle")->valuedouble == 0); /* no decision to make */
            refine_oracle[i] = orc;
        } else if (!strcmp(meth, "regenerate-all")) {
            CHECK(es == 2 && et == 6 && !strcmp(dec->valuestring, "regenerate") && orc == teacher_oracle[i]);
        } else {
            int mi = -1;
            for (int m2 = TDM_EVAL_ADAPTIVE_REFINE; m2 < TDM_EVAL_N_METHODS; m2++)
                if (!strcmp(meth, tdm_eval_method_name((tdm_eval_method)m2))) mi = m2;
            CHECK_MSG(mi >= 0, "method %s", meth);
            if (mi < 0) mi = TDM_EVAL_ADAPTIVE_REFINE;
            const int refine = mi == TDM_EVAL_ADAPTIVE_REFINE || mi == TDM_EVAL_ADAPTIVE_REFINE_BEST;
            const int best = mi >= TDM_EVAL_ADAPTIVE_REFINE_BEST;
            const double k = cJSON_GetObjectItem(o, "k")->valuedouble, tau = cJSON_GetObjectItem(o, "tau")->valuedouble;
            const int kj = k == 25 ? 0 : k == 50 ? 1 : 2;
            const int keep = student_oracle[i] >= tau;
            CHECK(!strcmp(dec->valuestring, keep ? "keep" : refine ? "refine" : "regenerate"));
            /* -best scores the teacher's image too: the oracle's seconds twice when the teacher ran */
            CHECK(es == 2 && et == (keep ? 0 : 6) &&
                  cJSON_GetObjectItem(o, "seconds_oracle")->valuedouble == (best && !keep ? 0.5 : 0.25));
            const float teacher_side = refine ? refine_oracle[i] : teacher_oracle[i];
            /* keep_better: the student's image when the oracle scores it higher than the teacher's */
            const float want = keep ? student_oracle[i]
                               : best && teacher_side < student_oracle[i] ? student_oracle[i] : teacher_side;
            CHECK_MSG(orc == want, "%s k %g sample %d", meth, k, i);
            const cJSON *sel = cJSON_GetObjectItem(o, "selected");
            const int student_kept = keep || (best && teacher_side < student_oracle[i]);
            CHECK(best ? cJSON_IsString(sel) && !strcmp(sel->valuestring, student_kept ? "student" : "teacher")
                       : sel == NULL);
            sum_evals[mi][kj] += evals;
            routed[mi][kj] += !keep;
        }
        cJSON_Delete(o);
    }
    CHECK_MSG(lines == 4 * (4 + 4 * 3), "%d records", lines);
    /* the adaptive budget = student + share x teacher; k = 50 of 4 scores routes exactly 2 */
    for (int mi = TDM_EVAL_ADAPTIVE_REFINE; mi < TDM_EVAL_N_METHODS; mi++)
        for (int j = 0; j < 3; j++) CHECK(sum_evals[mi][j] == 4 * 2 + routed[mi][j] * 6);
    CHECK(routed[TDM_EVAL_ADAPTIVE_REFINE][1] == 2 && routed[TDM_EVAL_ADAPTIVE_REFINE][0] == 1 &&
          routed[TDM_EVAL_ADAPTIVE_REFINE][2] == 3);
    free(text);

    /* the samples are tdm_generate's (student, teacher) and tdm_adaptive_generate's refinement */
    tdm_status st = {0};
    for (int i = 0; i < 4; i += 3) {
        tdm_generate_params gp;
        tdm_generate_params_init(&gp);
        gp.prompt = prompts[i / 2];
        gp.seed = 3 + i % 2;
        gp.width = gp.height = 64;
        gp.steps = 2;
        tdm_image img = {0};
        CHECK(tdm_generate(m->e, m->lcm, &gp, &img, NULL, &st) == TDM_OK && brightness_of(m, &img) == student_oracle[i]);
        tdm_image_free(&img);
        gp.steps = 3;
        gp.sampler = "ddim";
        gp.guidance_scale = 7.5f;
        CHECK(tdm_generate(m->e, m->sd, &gp, &img, NULL, &st) == TDM_OK && brightness_of(m, &img) == teacher_oracle[i]);
        tdm_image_free(&img);
        tdm_adaptive_params ap;
        tdm_adaptive_params_init(&ap);
        ap.prompt = prompts[i / 2];
        ap.seed = 3 + i % 2;
        ap.width = ap.height = 64;
        ap.student.steps = 2;
        ap.teacher.steps = 3;
        ap.teacher.sampler = "ddim";
        ap.teacher.guidance = 7.5f;
        ap.oracle = m->bright;
        ap.tau = INFINITY;
        tdm_adaptive_result r;
        CHECK(tdm_adaptive_generate(m->e, m->lcm, m->sd, &ap, &r, &st) == TDM_OK &&
              brightness_of(m, &r.image) == refine_oracle[i]);
        tdm_adaptive_result_free(&r);
    }
}

/* The table's row for a method (and k): its cells. */
static int table_row(const char *table, const char *method, const char *k, char cells[8][32]) {
    char key[96];
    snprintf(key, sizeof key, "| %s | %s |", method, k);
    const char *p = strstr(table, key);
    if (!p) return 0;
    int n = 0;
    p++;
    while (n < 8) {
        const char *e = strchr(p, '|');
        if (!e) break;
        int len = (int)(e - p);
        while (len > 0 && p[0] == ' ') p++, len--;
        while (len > 0 && p[len - 1] == ' ') len--;
        snprintf(cells[n++], 32, "%.*s", len, p);
        p = e + 1;
    }
    return n == 8;
}

static void check_table(const char *dir) {
    char path[PATH_MAX];
    tdm_test_path_in(path, sizeof path, dir, "table.md");
    char *t = tdm_test_read_text(path);
    CHECK(t != NULL);
    if (!t) return;
    char c[8][32];
    CHECK(table_row(t, "student", "", c) && !strcmp(c[3], "0.000") && !strcmp(c[6], "2.00") && !strcmp(c[7], "0.250"));
    CHECK(table_row(t, "teacher", "", c) && !strcmp(c[3], "-") && !strcmp(c[6], "6.00"));
    CHECK(table_row(t, "refine-all", "", c) && !strcmp(c[3], "1.000") && !strcmp(c[6], "8.00") && !strcmp(c[7], "0.500"));
    CHECK(table_row(t, "regenerate-all", "", c) && !strcmp(c[6], "8.00"));
    /* k = 50: half the samples routed: 2 + 0.5 x 6 evals, 0.25 + 0.25 + 0.5 x 0.25 s */
    CHECK(table_row(t, "adaptive-refine", "50", c) && !strcmp(c[3], "0.500") && !strcmp(c[6], "5.00") &&
          !strcmp(c[7], "0.625"));
    CHECK(table_row(t, "adaptive-regenerate", "75", c) && !strcmp(c[3], "0.750"));
    CHECK(strstr(t, "by the checker:") && strstr(t, "by the oracle:") && strstr(t, "(2 samples)") &&
          strstr(t, "(4 samples)"));
    free(t);
}

static void test_eval_run(const models *m) {
    tdm_status st = {0};
    snprintf(g_prompts, sizeof g_prompts, "%s/eval-prompts.txt", tdm_test_tmpdir());
    const char *prompts = "a red circle on the left\nan astronaut riding a horse\n";
    tdm_test_write_file(g_prompts, prompts, strlen(prompts));
    char a[PATH_MAX], b[PATH_MAX], fa[PATH_MAX], fb[PATH_MAX];
    snprintf(a, sizeof a, "%s/eval-a", tdm_test_tmpdir());
    snprintf(b, sizeof b, "%s/eval-b", tdm_test_tmpdir());
    tdm_eval_params p;
    tdm_eval_summary sum;
    double clk;

    /* uninterrupted */
    base_params(&p, m, a, &clk);
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_samples == 4 && sum.n_resumed == 0 && !sum.warnings[0]);
    check_results(m, a);
    check_table(a);

    /* interrupted after 1 sample, resumed: byte-identical files */
    int stop = 1;
    base_params(&p, m, b, &clk);
    p.on_sample = cancel_after;
    p.user = &stop;
    CHECK(run(m, &p, &sum) == TDM_ERR_CANCELLED);
    tdm_test_path_in(fb, sizeof fb, b, "results.jsonl");
    CHECK(access(fb, F_OK) != 0);
    stop = 3; /* again after the third */
    CHECK(run(m, &p, &sum) == TDM_ERR_CANCELLED && sum.n_resumed == 1);
    tdm_test_path_in(fb, sizeof fb, b, "samples.jsonl");
    FILE *f = fopen(fb, "a"); /* a torn line, as from a kill during a write */
    if (f) {
        fputs("{\"sample\":3,\"prompt_in", f);
        fclose(f);
    }
    p.on_sample = NULL;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 3);
    const char *files[3] = {"samples.jsonl", "results.jsonl", "table.md"};
    for (int i = 0; i < 3; i++) {
        tdm_test_path_in(fa, sizeof fa, a, files[i]);
        tdm_test_path_in(fb, sizeof fb, b, files[i]);
        CHECK_MSG(tdm_test_same_file(fa, fb), "%s differs after the resumed run", files[i]);
    }

    /* a finished log with other k: nothing generated, only the adaptive rows change */
    const double k2[1] = {50};
    base_params(&p, m, b, &clk);
    p.k = k2;
    p.n_k = 1;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 4 && clk == 0);
    tdm_test_path_in(fb, sizeof fb, b, "table.md");
    char *t = tdm_test_read_text(fb);
    CHECK(t && strstr(t, "| adaptive-refine | 50 |") && !strstr(t, "| adaptive-refine | 25 |"));
    free(t);

    /* other settings: refused, naming the setting; --restart starts over */
    base_params(&p, m, b, &clk);
    p.settings.teacher.steps = 2;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "other settings") &&
          strstr(st.msg, "'teacher'") && strstr(st.msg, "--restart"));
    p.restart = 1;
    p.seeds = (const uint64_t[]){3};
    p.n_seeds = 1;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 0 && sum.n_samples == 2);

    /* seed_per_prompt: prompt j runs with seed + j (logged), a log of the other rule is refused */
    char c_dir[PATH_MAX], fc[PATH_MAX];
    snprintf(c_dir, sizeof c_dir, "%s/eval-c", tdm_test_tmpdir());
    base_params(&p, m, c_dir, &clk);
    p.restart = 1;
    p.seeds = (const uint64_t[]){3};
    p.n_seeds = 1;
    p.seed_per_prompt = 1;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_samples == 2);
    tdm_test_path_in(fc, sizeof fc, c_dir, "samples.jsonl");
    char *spp = tdm_test_read_text(fc);
    CHECK(spp && strstr(spp, "seed seeds[i mod seeds] + i / seeds") && strstr(spp, "\"prompt_index\":0,\"seed\":3") &&
          strstr(spp, "\"prompt_index\":1,\"seed\":4"));
    free(spp);
    p.restart = 0;
    p.seed_per_prompt = 0;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "other settings"));

    /* a corrupt log line is an error, not a crash */
    base_params(&p, m, b, &clk);
    p.restart = 1;
    p.seeds = (const uint64_t[]){3};
    p.n_seeds = 1;
    p.settings.teacher.steps = 2;
    tdm_test_path_in(fb, sizeof fb, b, "samples.jsonl");
    char *log = tdm_test_read_text(fb); /* keep the header, then a line that is not sample 0 */
    char *nl = log ? strchr(log, '\n') : NULL;
    CHECK(nl != NULL);
    if (nl) {
        nl[1] = '\0';
        f = fopen(fb, "w");
        if (f) {
            fprintf(f, "%s{\"sample\":7}\n", log);
            fclose(f);
        }
    }
    free(log);
    p.restart = 0;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_FORMAT && strstr(st.msg, "not sample 0"));

    /* tau from a calibration file (made with other student settings: warned) */
    char cal[PATH_MAX];
    snprintf(cal, sizeof cal, "%s/eval-cal.json", tdm_test_tmpdir());
    tdm_calibrate_params cp;
    tdm_calibrate_params_init(&cp);
    cp.prompts_file = g_prompts;
    cp.n = 3;
    cp.width = cp.height = 64;
    cp.student.steps = 1;
    cp.oracle = m->bright;
    cp.out_path = cal;
    CHECK(tdm_calibrate(m->e, m->lcm, &cp, NULL, &st) == TDM_OK);
    base_params(&p, m, a, &clk);
    p.calibration = cal;
    CHECK(run(m, &p, &sum) == TDM_OK && sum.n_resumed == 4 && strstr(sum.warnings, "steps"));
    tdm_calibration *c = NULL;
    double tau50 = 0;
    CHECK(tdm_calibration_load(cal, &c, &st) == TDM_OK && tdm_calibration_tau(c, 50, &tau50, &st) == TDM_OK);
    tdm_calibration_free(c);
    tdm_test_path_in(fa, sizeof fa, a, "table.md");
    t = tdm_test_read_text(fa);
    char cell[64];
    snprintf(cell, sizeof cell, "| adaptive-refine | 50 | %.4g |", tau50);
    CHECK_MSG(t && strstr(t, cell) && strstr(t, "tau_k from calibration") && strstr(t, "warning:"), "%s", cell);
    free(t);

    /* bad input */
    base_params(&p, m, a, &clk);
    p.k = (const double[]){100};
    p.n_k = 1;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG && strstr(st.msg, "(0, 100)"));
    base_params(&p, m, a, &clk);
    p.calibration = "no/such/cal.json";
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_IO && strstr(st.msg, "no/such/cal.json"));
    base_params(&p, m, a, &clk);
    p.prompts_file = "no/such/prompts.txt";
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_IO);
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/eval-bad.txt", tdm_test_tmpdir());
    tdm_test_write_file(bad, "a red circle\n\n", strlen("a red circle\n\n"));
    base_params(&p, m, a, &clk);
    p.prompts_file = bad;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_FORMAT && strstr(st.msg, ":2: empty line"));
    base_params(&p, m, a, &clk);
    p.oracle = NULL;
    CHECK(tdm_eval(m->e, m->lcm, m->sd, &p, &sum, &st) == TDM_ERR_INVALID_ARG);
}

/* ---- CLI (build/tandem next to this test binary) ---- */

static char g_bin[PATH_MAX];

#define CLI(code, needle, args) TDM_TEST_CLI(g_bin, 1, code, needle, args)

static void test_cli(void) {
    if (access(g_bin, X_OK) != 0) {
        printf("CLI part skipped: %s is absent\n", g_bin);
        return;
    }
    const char *base = "eval --model tiny-lcm --teacher tiny-sd --prompts eval-prompts.txt --width 64 --height 64 "
                       "--steps 2 --teacher-steps 2 --oracle brightness";
    char args[2048];
    snprintf(args, sizeof args, "%s --seeds 0:2 --k 30,60 --out cli-eval -q", base);
    CLI(0, "", args);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/cli-eval/table.md", tdm_test_tmpdir());
    char *t = tdm_test_read_text(p);
    CHECK(t && strstr(t, "| adaptive-refine | 60 |") && strstr(t, "| regenerate-all |"));
    free(t);
    snprintf(args, sizeof args, "%s --seeds 0:2 --k 30,60 --out cli-eval", base); /* resumes, prints the table */
    CLI(0, "resumed after 4 of 4 samples", args);
    snprintf(p, sizeof p, "%s/cli.err.out", tdm_test_tmpdir());
    t = tdm_test_read_text(p);
    CHECK(t && strstr(t, "| method | k | tau |") && strstr(t, "wrote cli-eval/table.md"));
    free(t);
    snprintf(args, sizeof args, "%s --seeds 0:3 --out cli-eval", base);
    CLI(1, "other settings ('seeds' differs", args);
    snprintf(args, sizeof args, "%s --seeds 2:1 --out x", base);
    CLI(2, "--seeds: seeds: '2:1'", args);
    snprintf(args, sizeof args, "%s --seeds 0:2 --k 10,100 --out x", base);
    CLI(2, "--k: 100 is outside (0, 100)", args);
    snprintf(args, sizeof args, "%s --seeds 0:2", base);
    CLI(2, "are required", args);
    snprintf(args, sizeof args, "%s --seed 1 --seeds 0:2 --out x", base);
    CLI(2, "use --seeds", args);
    snprintf(args, sizeof args, "%s --seeds 0:2 --out x --oracle nonsense", base);
    CLI(1, "unknown oracle 'nonsense'", args);
    CLI(0, "", "eval --help");
}

/* The routing of every method on made-up samples, the -best methods (keep_better) included. */
static void test_records(void) {
    tdm_eval_sample s;
    memset(&s, 0, sizeof s);
    s.has_checker = 1;
    const float oracle[3] = {0.5f, 0.3f, 0.7f}; /* student, teacher, refinement */
    for (int r = 0; r < 3; r++) {
        s.oracle[r] = oracle[r];
        s.evals[r] = r == 0 ? 4 : 20;
        s.seconds[r] = 1.0;
    }
    s.seconds_oracle = 0.125;
    tdm_eval_record rec;
    /* routed (0.5 < tau 0.6): plain methods return the teacher's run; -best the better by the oracle */
    const struct {
        tdm_eval_method m;
        double tau;
        int run;
        double seconds_oracle;
    } cases[] = {
        {TDM_EVAL_ADAPTIVE_REFINE, 0.6, TDM_EVAL_RUN_REFINE, 0.125},
        {TDM_EVAL_ADAPTIVE_REGENERATE, 0.6, TDM_EVAL_RUN_TEACHER, 0.125},
        {TDM_EVAL_ADAPTIVE_REFINE_BEST, 0.6, TDM_EVAL_RUN_REFINE, 0.25},     /* 0.7 > 0.5 */
        {TDM_EVAL_ADAPTIVE_REGENERATE_BEST, 0.6, TDM_EVAL_RUN_STUDENT, 0.25}, /* 0.3 < 0.5 */
        {TDM_EVAL_ADAPTIVE_REGENERATE_BEST, 0.4, TDM_EVAL_RUN_STUDENT, 0.125}, /* kept: one scoring */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tdm_eval_record_make(&s, cases[c].m, 50, cases[c].tau, &rec);
        CHECK_MSG(rec.run == cases[c].run && rec.seconds_oracle == cases[c].seconds_oracle, "case %zu: run %d",
                  c, rec.run);
        CHECK(rec.teacher_ran == (cases[c].tau > 0.5) && rec.evals_teacher == (cases[c].tau > 0.5 ? 20 : 0));
        cJSON *o = cJSON_CreateObject();
        tdm_eval_record_add_decision(o, &rec);
        const cJSON *sel = cJSON_GetObjectItem(o, "selected");
        if (cases[c].m >= TDM_EVAL_ADAPTIVE_REFINE_BEST)
            CHECK(sel && !strcmp(sel->valuestring, rec.run == TDM_EVAL_RUN_STUDENT ? "student" : "teacher"));
        else
            CHECK(sel == NULL);
        cJSON_Delete(o);
    }
    /* a tie goes to the teacher */
    s.oracle[TDM_EVAL_RUN_TEACHER] = 0.5f;
    tdm_eval_record_make(&s, TDM_EVAL_ADAPTIVE_REGENERATE_BEST, 50, 0.6, &rec);
    CHECK(rec.run == TDM_EVAL_RUN_TEACHER);
    tdm_eval_method am[4];
    CHECK(tdm_eval_adaptive_methods(1, am) == 4 && am[3] == TDM_EVAL_ADAPTIVE_REGENERATE_BEST);
    CHECK(tdm_eval_adaptive_methods(0, am) == 2 && am[1] == TDM_EVAL_ADAPTIVE_REFINE_BEST);
    CHECK(!strcmp(tdm_eval_method_name(TDM_EVAL_ADAPTIVE_REFINE_BEST), "adaptive-refine-best"));
}

int main(int argc, char **argv) {
    (void)argc;
    tdm_test_cli_path(argv[0], 1, g_bin, sizeof g_bin); /* the CLI runs in the temp dir */
    test_seeds();
    test_records();
    if (!tdm_test_tiny_present()) {
        printf("tiny-model parts skipped: fixtures absent\n");
        return tdm_test_result();
    }
    models m = {0};
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = 2;
    tdm_status st = {0};
    CHECK(tdm_engine_create(&ep, &m.e, &st) == TDM_OK);
    tdm_test_tiny_pair(&m.sd, &m.lcm, &st);
    CHECK(tdm_oracle_open("brightness", NULL, m.e, &m.bright, &st) == TDM_OK);
    if (!m.sd || !m.lcm || !m.e || !m.bright) {
        fprintf(stderr, "setup: %s\n", st.msg);
        return 1;
    }
    test_eval_run(&m);
    test_cli();
    tdm_oracle_free(m.bright);
    tdm_model_free(m.sd);
    tdm_model_free(m.lcm);
    tdm_engine_free(m.e);
    return tdm_test_result();
}
