/* Test helper: `tandem check` (tdm_check_fixture) on one shared fixture, quietly. */
#ifndef TDM_TESTS_CHECK_UTIL_H
#define TDM_TESTS_CHECK_UTIL_H

/* Runs tdm_check_fixture (2 threads) on fixture `name`, printing only its FAIL lines (to stderr). Returns 0,
 * with a note on stdout, when the fixture is absent; else 1 with *passed / *failed filled (an error of the
 * check itself is a CHECK failure). */
int tdm_test_check_fixture(const char *name, int *passed, int *failed);

#endif
