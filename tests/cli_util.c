/* Running the tandem CLI from tests (see cli_util.h). */
#include "cli_util.h"

#include <limits.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"

void tdm_test_cli_path(const char *argv0, int absolute, char *out, size_t n) {
    snprintf(out, n, "%s", argv0);
    char *slash = strrchr(out, '/');
    if (slash) *slash = '\0';
    slash = strrchr(out, '/');
    if (slash) snprintf(slash + 1, n - (size_t)(slash + 1 - out), "tandem");
    else snprintf(out, n, "build/tandem");
    if (absolute && out[0] != '/') {
        char cwd[PATH_MAX], rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s", out);
        if (getcwd(cwd, sizeof cwd) && snprintf(out, n, "%s/%s", cwd, rel) >= (int)n) snprintf(out, n, "%s", rel);
    }
}

int tdm_test_cli_run(const char *bin, int keep_stdout, char **err, const char *args) {
    char cmd[16384], ef[PATH_MAX], of[PATH_MAX + 8];
    *err = NULL;
    if (snprintf(ef, sizeof ef, "%s/cli.err", tdm_test_tmpdir()) >= (int)sizeof ef) return -1;
    if (keep_stdout) snprintf(of, sizeof of, "'%s.out'", ef);
    else snprintf(of, sizeof of, "/dev/null");
    if (snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >%s 2>'%s' </dev/null", tdm_test_tmpdir(), bin, args, of, ef) >=
        (int)sizeof cmd)
        return -1;
    int rc = system(cmd);
    size_t n = 0;
    tdm_status st = {0};
    tdm_read_file(ef, 1 << 20, err, &n, &st);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}
