/* err.c — error names and the siyu_err detail carrier. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *siyu_strerror(int code) {
    switch (code) {
    case SIYU_OK: return "ok";
    case SIYU_ENOMEM: return "out_of_memory";
    case SIYU_EINVAL: return "invalid";
    case SIYU_ENOTFOUND: return "not_found";
    case SIYU_ECONFLICT: return "conflict";
    case SIYU_EIO: return "io_error";
    case SIYU_EBUSY: return "busy";
    case SIYU_ECLOSED: return "closed";
    case SIYU_EDENIED: return "forbidden";
    case SIYU_ETOOBIG: return "too_large";
    case SIYU_ECRYPTO: return "crypto";
    case SIYU_EREMOTE: return "wecom_error";
    }
    return "unknown";
}

int siyu_err_set(siyu_err *err, int code, const char *field, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void siyu_err_clear(siyu_err *err) {
    if (err) memset(err, 0, sizeof *err);
}
