/* Resumable JSON-lines logs (tandem calibrate's partial file, tandem eval's log): line 1 is a header naming
 * the settings, then one line per finished sample, each flushed as it is written, so a killed run leaves at
 * most one torn last line. */
#ifndef TDM_BASE_JSONL_LOG_H
#define TDM_BASE_JSONL_LOG_H

#include <stddef.h>

#include "base/error.h"

typedef struct tdm_jsonl_resume {
    const char *header;  /* the expected first line (without '\n') */
    size_t max_bytes;    /* the largest file read */
    const char *what;    /* sample errors read "<path>:<line>: not sample <i> of this <what>" */
    /* fails (returns the error) for a first line that is not `header` */
    tdm_code (*header_mismatch)(void *user, const char *path, const char *line, tdm_status *st);
    /* takes sample line `index` (0-based); 0: the line is not that sample */
    int (*sample)(void *user, const char *line, int index);
    void *user;
} tdm_jsonl_resume;

/* Reads an existing log: checks the header, passes the complete sample lines in order to r->sample,
 * truncates a torn last line (no newline). *done = samples taken; -1 when the file has no complete header
 * (the caller starts over and writes it). */
tdm_code tdm_jsonl_resume_read(const char *path, const tdm_jsonl_resume *r, int *done, tdm_status *st);

#endif
