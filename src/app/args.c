#include "app/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int tdm_arg_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || isspace((unsigned char)*s) || *end || errno == ERANGE) {
        fprintf(stderr, "tandem %s: %s: '%s' is not an integer\n", cmd, opt, s);
        return 0;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "tandem %s: %s: %ld is out of range [%ld, %ld]\n", cmd, opt, v, lo, hi);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int tdm_arg_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || isspace((unsigned char)*s) || *end || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "tandem %s: %s: '%s' is not a number\n", cmd, opt, s);
        return 0;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "tandem %s: %s: %g is out of range [%g, %g]\n", cmd, opt, v, lo, hi);
        return 0;
    }
    *out = (float)v;
    return 1;
}

int tdm_arg_seed(const char *cmd, const char *opt, const char *s, uint64_t *out, int *is_random) {
    *is_random = 0;
    if (strcmp(s, "-1") == 0) {
        *is_random = 1;
        *out = 0;
        return 1;
    }
    char *end = NULL;
    errno = 0;
    if (!isdigit((unsigned char)*s)) {
        fprintf(stderr, "tandem %s: %s: '%s' is not a seed (0..18446744073709551615, or -1 for random)\n", cmd,
                opt, s);
        return 0;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE) {
        fprintf(stderr, "tandem %s: %s: '%s' is not a seed (0..18446744073709551615, or -1 for random)\n", cmd,
                opt, s);
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

const char *tdm_arg_value(const char *cmd, int argc, char **argv, int *i, const char *const *names, int *err) {
    const char *a = argv[*i];
    for (int k = 0; names[k]; k++) {
        size_t n = strlen(names[k]);
        if (strncmp(a, names[k], n) != 0) continue;
        if (a[n] == '=') return a + n + 1;
        if (a[n] != '\0') continue;
        if (*i + 1 >= argc) {
            fprintf(stderr, "tandem %s: %s needs a value\n", cmd, names[k]);
            *err = 1;
            return NULL;
        }
        *i += 1;
        return argv[*i];
    }
    return NULL;
}

uint64_t tdm_arg_random_seed(void) {
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&s, sizeof s, 1, f) != 1) s = 0;
        fclose(f);
    }
    if (!s) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        s = (uint64_t)t.tv_sec * 1000000007ull ^ (uint64_t)t.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return s >> 1;
}
