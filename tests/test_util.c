#include "test_util.h"

#include "base/rng.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tdm_test_failures = 0;

const char *tdm_test_fixtures(void) {
    const char *e = getenv("TDM_FIXTURES");
    return e && *e ? e : "../shared/fixtures";
}

const char *tdm_test_fixture(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", tdm_test_fixtures(), name);
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NULL;
    return buf;
}

void tdm_test_skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

const char *tdm_test_tmpdir(void) {
    static char buf[256];
    if (!buf[0]) {
        const char *base = getenv("TDM_TEST_TMP");
        snprintf(buf, sizeof buf, "%s/tdm-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(buf)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return buf;
}

int tdm_test_result(void) {
    if (tdm_test_failures) fprintf(stderr, "%d check(s) failed\n", tdm_test_failures);
    return tdm_test_failures ? 1 : 0;
}

double tdm_test_max_abs(const float *a, const float *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

float *tdm_test_randn(long n, unsigned long long seed, unsigned long long stream) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p && n > 0) tdm_randn(p, (size_t)n, seed, stream, 0);
    return p;
}
