/* Runs `tandem check` (tdm_check_fixture) on EVERY folder of the shared fixtures: each fixture of a
 * kind the engine supports must pass all comparisons; kinds not supported yet are listed as skipped.
 * New fixtures in the same format are picked up without changes here. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem.h"
#include "test_util.h"

static void quiet(void *user, const char *line) {
    (void)user;
    if (strncmp(line, "FAIL", 4) == 0) fprintf(stderr, "  %s\n", line);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    const char *root = tdm_test_fixtures();
    DIR *d = opendir(root);
    if (!d) tdm_test_skip("shared fixtures folder ../shared/fixtures not found (set TDM_FIXTURES)");
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int ran = 0, unsupported = 0;
    for (int i = 0; i < n; i++) {
        char dir[4096], cj[4200];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        snprintf(cj, sizeof cj, "%s/case.json", dir);
        FILE *f = fopen(cj, "r");
        if (!f) {
            free(names[i]);
            continue;
        }
        fclose(f);
        tdm_status st = {0};
        int np = 0, nf = 0;
        tdm_code rc = tdm_check_fixture(dir, 2, quiet, NULL, &np, &nf, &st);
        if (rc == TDM_ERR_UNSUPPORTED && np == 0 && nf == 0) {
            printf("unsupported: %s (%s)\n", names[i], st.msg);
            unsupported++;
        } else {
            CHECK_MSG(rc == TDM_OK, "%s: %s", names[i], st.msg);
            CHECK_MSG(nf == 0, "%s: %d comparisons failed", names[i], nf);
            CHECK_MSG(np > 0, "%s: nothing compared", names[i]);
            printf("%-34s %5d passed %d failed\n", names[i], np, nf);
            ran++;
        }
        free(names[i]);
    }
    printf("%d fixtures checked, %d of unsupported kinds\n", ran, unsupported);
    CHECK(ran > 0);
    return tdm_test_result();
}
