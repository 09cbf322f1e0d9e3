#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *tdm_code_name(tdm_code code) {
    switch (code) {
    case TDM_OK: return "ok";
    case TDM_ERR_IO: return "i/o error";
    case TDM_ERR_FORMAT: return "format error";
    case TDM_ERR_INVALID_ARG: return "invalid argument";
    case TDM_ERR_NOMEM: return "out of memory";
    case TDM_ERR_UNSUPPORTED: return "unsupported";
    case TDM_ERR_MISSING: return "missing";
    case TDM_ERR_CANCELLED: return "cancelled";
    case TDM_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

tdm_code tdm_fail(tdm_status *st, tdm_code code, const char *fmt, ...) {
    if (st) {
        va_list ap;
        va_start(ap, fmt);
        st->code = code;
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

tdm_code tdm_fail_context(tdm_status *st, const char *fmt, ...) {
    if (!st) return TDM_ERR_INTERNAL;
    char old[sizeof st->msg];
    memcpy(old, st->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 2 < sizeof st->msg) {
        st->msg[used++] = ':';
        st->msg[used++] = ' ';
        size_t room = sizeof st->msg - used - 1, len = strnlen(old, sizeof old - 1);
        if (len > room) len = room;
        memcpy(st->msg + used, old, len);
        st->msg[used + len] = '\0';
    }
    return st->code;
}

void tdm_status_clear(tdm_status *st) {
    if (!st) return;
    st->code = TDM_OK;
    st->msg[0] = '\0';
}
