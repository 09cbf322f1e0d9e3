/* Resumable JSON-lines logs (see jsonl_log.h). */
#include "base/jsonl_log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"

tdm_code tdm_jsonl_resume_read(const char *path, const tdm_jsonl_resume *r, int *done, tdm_status *st) {
    *done = 0;
    char *buf = NULL;
    size_t len = 0;
    TDM_TRY(tdm_read_file(path, r->max_bytes, &buf, &len, st));
    tdm_code rc = TDM_OK;
    size_t i = 0, good_end = 0;
    int lineno = 0;
    while (i < len) {
        size_t b = i;
        while (i < len && buf[i] != '\n') i++;
        if (i >= len) break; /* torn last line (no newline): dropped */
        buf[i] = '\0';
        i++;
        lineno++;
        if (lineno == 1) {
            if (strcmp(buf + b, r->header) != 0) {
                rc = r->header_mismatch(r->user, path, buf + b, st);
                goto done;
            }
            good_end = i;
            continue;
        }
        if (!r->sample(r->user, buf + b, *done)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s:%d: not sample %d of this %s", path, lineno, *done, r->what);
            goto done;
        }
        (*done)++;
        good_end = i;
    }
    if (lineno == 0) good_end = 0; /* no complete header: start over */
    if (good_end < len && truncate(path, (off_t)good_end) != 0)
        rc = tdm_fail(st, TDM_ERR_IO, "%s: cannot drop the incomplete last line", path);
    if (lineno == 0) *done = -1;
done:
    free(buf);
    return rc;
}
