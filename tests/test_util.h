/* Minimal test helpers: CHECK macros, fixture lookup, skip. A test binary exits 0 (pass),
 * 1 (failures) or 77 (skipped, with a reason on stdout). Run from the project root. */
#ifndef TDM_TEST_UTIL_H
#define TDM_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern int tdm_test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            tdm_test_failures++;                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            tdm_test_failures++;                                                                   \
        }                                                                                          \
    } while (0)

/* The shared fixtures folder: $TDM_FIXTURES or ../shared/fixtures. */
const char *tdm_test_fixtures(void);
/* Path of fixture `name` (static buffer); NULL when the folder is absent. */
const char *tdm_test_fixture(const char *name);
/* Prints the reason and exits 77. */
void tdm_test_skip(const char *why);
/* A fresh temporary directory for this test (removed by run.sh). */
const char *tdm_test_tmpdir(void);
/* Exit code for main: 1 when any CHECK failed. */
int tdm_test_result(void);

/* max |a-b| over n */
double tdm_test_max_abs(const float *a, const float *b, long n);

/* n >= 0 standard-normal floats (tdm_randn(seed, stream, 0)); malloc'ed (at least one element), caller frees */
float *tdm_test_randn(long n, unsigned long long seed, unsigned long long stream);

#endif
