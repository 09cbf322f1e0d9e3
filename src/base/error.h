/* Error reporting for library code: functions return a tdm_code and fill a tdm_status.
 * Usage:  if (n < 0) return tdm_fail(st, TDM_ERR_FORMAT, "%s: tensor '%s': negative dim", path, name);
 * The library never exits or aborts on bad input. */
#ifndef TDM_BASE_ERROR_H
#define TDM_BASE_ERROR_H

#include "tandem.h"

#if defined(__GNUC__)
#define TDM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TDM_PRINTF(a, b)
#endif

/* Sets st (if non-NULL) to code + formatted message; returns code. */
tdm_code tdm_fail(tdm_status *st, tdm_code code, const char *fmt, ...) TDM_PRINTF(3, 4);

/* Prepends "prefix: " to an existing message (for adding context on the way up); returns st->code. */
tdm_code tdm_fail_context(tdm_status *st, const char *fmt, ...) TDM_PRINTF(2, 3);

void tdm_status_clear(tdm_status *st);

/* Propagate a non-zero code: TDM_TRY(call(...)); */
#define TDM_TRY(expr)                                                                              \
    do {                                                                                           \
        tdm_code tdm_try_rc_ = (expr);                                                             \
        if (tdm_try_rc_ != TDM_OK) return tdm_try_rc_;                                             \
    } while (0)

#endif
