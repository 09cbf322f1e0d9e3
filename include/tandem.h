/* tandem: text-to-image diffusion engine with an adaptive student-teacher pipeline.
 * Public C API. One header; everything a program needs is declared here.
 *
 * Conventions:
 *  - Every call that can fail returns a tdm_code (0 = TDM_OK) and fills a tdm_status
 *    with a one-line message naming the file, tensor, field or value at fault.
 *  - Parameter structs have a tdm_*_params_init() that sets documented defaults.
 *  - No global mutable state: every context is an explicit object with _open/_free.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tdm_code {
    TDM_OK = 0,
    TDM_ERR_IO = 1,          /* file missing, unreadable, short read */
    TDM_ERR_FORMAT = 2,      /* malformed file: header, JSON, image, tensor layout */
    TDM_ERR_INVALID_ARG = 3, /* bad parameter from the caller */
    TDM_ERR_NOMEM = 4,       /* allocation failed */
    TDM_ERR_UNSUPPORTED = 5, /* valid input the engine does not handle (yet) */
    TDM_ERR_MISSING = 6,     /* a required tensor, file or field is absent */
    TDM_ERR_CANCELLED = 7,   /* the progress callback asked to stop */
    TDM_ERR_INTERNAL = 8     /* a bug: please report */
} tdm_code;

/* Status of a failed call: the code plus a message for the user. */
typedef struct tdm_status {
    tdm_code code;
    char msg[1024];
} tdm_status;

const char *tdm_code_name(tdm_code code);

/* ---- Fixture check (tandem check) ------------------------------------------------------------ */

/* Receives one report line (no trailing newline). */
typedef void (*tdm_check_line_fn)(void *user, const char *line);

/* Runs the fixture folder `dir` (case.json + io.safetensors + model folders, the format of the
 * reference fixtures) and reports per output tensor max-abs and relative-L2 error against the
 * expected values with PASS/FAIL. n_threads <= 0: all CPUs. *n_fail counts failed comparisons.
 * A fixture kind the engine does not handle returns TDM_ERR_UNSUPPORTED. */
tdm_code tdm_check_fixture(const char *dir, int n_threads, tdm_check_line_fn line_fn, void *user, int *n_pass,
                           int *n_fail, tdm_status *st);

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
