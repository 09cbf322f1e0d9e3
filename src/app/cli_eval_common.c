/* CLI pieces shared by the adaptive and evaluation commands (see cli_eval_common.h). */
#include "app/cli_eval_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/args.h"

/* ---- progress ---- */

void tdm_cli_progress_init(tdm_cli_progress *p, int quiet) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
}

int tdm_cli_progress_report(tdm_cli_progress *p, const char *what, const char *unit, int done, int total,
                            const char *detail) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (!p->seen) {
        p->seen = 1;
        p->first = done - 1;
    }
    const double dt = (double)(t.tv_sec - p->t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - p->t0.tv_nsec);
    const int n_run = done - p->first;
    const double per = n_run > 0 ? dt / n_run : 0;
    if (!p->quiet) {
        const int step = total / 20 > 0 ? total / 20 : 1;
        if (p->tty)
            fprintf(stderr, "\r%s %d/%d  %s  %.2f s/%s  eta %.0f s   ", what, done, total, detail, per, unit,
                    per * (total - done));
        else if (done % step == 0 || done == total)
            fprintf(stderr, "%s %d/%d  %.2f s/%s\n", what, done, total, per, unit);
        if (p->tty && done == total) fputc('\n', stderr);
    }
    return tdm_cli_interrupted ? 1 : 0;
}

int tdm_cli_cancel_on_signal(void *user, tdm_stage stage, int step, int total) {
    (void)user;
    (void)stage;
    (void)step;
    (void)total;
    return tdm_cli_interrupted ? 1 : 0;
}

/* ---- option groups ---- */

int tdm_cli_pair_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_common_opts *c,
                       tdm_cli_teacher_opts *t) {
    int r = tdm_cli_common_parse(cmd, argc, argv, i, c);
    if (r != 0 || !t) return r;
    return tdm_cli_teacher_parse(cmd, argc, argv, i, t);
}

void tdm_cli_threshold_init(tdm_cli_threshold_opts *o) {
    o->tau = o->k = o->share = NAN;
    o->calibration = NULL;
    o->strategy = TDM_ADAPTIVE_REFINE;
    o->keep_better = 0;
}

int tdm_cli_threshold_parse(const char *cmd, int argc, char **argv, int *i, tdm_cli_threshold_opts *o) {
    const char *v;
    int err = 0;
#define TOPT(...) ((v = tdm_arg_value(cmd, argc, argv, i, (const char *const[]){__VA_ARGS__, NULL}, &err)) || err)
    if (strcmp(argv[*i], "--keep-better") == 0) {
        o->keep_better = 1;
    } else if (TOPT("--tau")) {
        if (err || !tdm_cli_arg_double(cmd, "--tau", v, -1e30, 1e30, 0, 0, &o->tau)) return -1;
    } else if (TOPT("--k")) {
        if (err || !tdm_cli_arg_double(cmd, "--k", v, 0, 100, 1, 1, &o->k)) return -1;
    } else if (TOPT("--teacher-share")) {
        if (err || !tdm_cli_arg_double(cmd, "--teacher-share", v, 0, 1, 0, 0, &o->share)) return -1;
    } else if (TOPT("--calibration")) {
        if (err) return -1;
        o->calibration = v;
    } else if (TOPT("--strategy")) {
        if (err) return -1;
        if (strcmp(v, "refine") == 0) o->strategy = TDM_ADAPTIVE_REFINE;
        else if (strcmp(v, "regenerate") == 0) o->strategy = TDM_ADAPTIVE_REGENERATE;
        else {
            fprintf(stderr, "tandem %s: --strategy: '%s' is not refine or regenerate\n", cmd, v);
            return -1;
        }
    } else {
        return 0;
    }
#undef TOPT
    return 1;
}

int tdm_cli_parse_k_list(const char *cmd, const char *s, double *k, int *n) {
    *n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item || *n >= TDM_CLI_MAX_K) {
            fprintf(stderr, "tandem %s: --k: '%s' is not a list of percentiles (e.g. 10,30,50)\n", cmd, s);
            return 0;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!tdm_cli_arg_double(cmd, "--k", item, 0, 100, 1, 1, &k[*n])) return 0;
        (*n)++;
        if (!e) break;
        p = e + 1;
        if (!*p) {
            fprintf(stderr, "tandem %s: --k: '%s' ends with a comma\n", cmd, s);
            return 0;
        }
    }
    if (!*n) {
        fprintf(stderr, "tandem %s: --k: empty list\n", cmd);
        return 0;
    }
    return 1;
}

/* ---- printing ---- */

void tdm_cli_print_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
}

void tdm_cli_print_warnings(const char *cmd, char *warnings) {
    for (char *line = strtok(warnings, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "tandem %s: warning: %s\n", cmd, line);
}
