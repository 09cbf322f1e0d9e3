/* Test helpers for running the tandem CLI (build/tandem next to the test binaries). */
#ifndef TDM_TESTS_CLI_UTIL_H
#define TDM_TESTS_CLI_UTIL_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* out = the tandem binary next to the test binary argv0 (<build>/tests/test_x -> <build>/tandem;
 * "build/tandem" when argv0 has no folder); absolute 1: made absolute against the working folder (for
 * tdm_test_cli_run, which runs it in the temp dir). */
void tdm_test_cli_path(const char *argv0, int absolute, char *out, size_t n);

/* Runs `'bin' args` in tdm_test_tmpdir() with stdin /dev/null, stderr to <tmp>/cli.err (its text in *err,
 * malloc'd, NULL when unreadable) and stdout to <tmp>/cli.err.out (keep_stdout) or /dev/null. Returns the
 * exit status; -1: crashed or not run. */
int tdm_test_cli_run(const char *bin, int keep_stdout, char **err, const char *args);

/* CHECKs that `tandem args` exits with `code` and, for a non-empty needle, that stderr contains it. */
#define TDM_TEST_CLI(bin, keep_stdout, code, needle, args)                                               \
    do {                                                                                                 \
        char *e_ = NULL;                                                                                 \
        int rc_ = tdm_test_cli_run(bin, keep_stdout, &e_, args);                                         \
        CHECK_MSG(rc_ == (code) && (!(needle)[0] || (e_ && strstr(e_, needle))), "tandem %s: exit %d: %s", \
                  args, rc_, e_ ? e_ : "");                                                             \
        free(e_);                                                                                        \
    } while (0)

#endif
