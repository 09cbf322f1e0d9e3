/* `tandem check` on a shared fixture from tests (see check_util.h). */
#include "check_util.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "tandem.h"
#include "test_util.h"

static void print_fail_lines(void *user, const char *line) {
    (void)user;
    if (strncmp(line, "FAIL", 4) == 0) fprintf(stderr, "%s\n", line);
}

int tdm_test_check_fixture(const char *name, int *passed, int *failed) {
    *passed = *failed = 0;
    const char *dir = tdm_test_fixture(name);
    if (!dir) {
        printf("note: fixture %s absent, skipped\n", name);
        return 0;
    }
    tdm_status st;
    tdm_status_clear(&st);
    tdm_code rc = tdm_check_fixture(dir, 2, print_fail_lines, NULL, passed, failed, &st);
    CHECK_MSG(rc == TDM_OK, "%s: %s", name, st.msg);
    return 1;
}
