/* err.h — error codes shared by every module.
 *
 * Functions that can fail return 0 or a negative SIYU_E* code; siyu_strerror()
 * names it. Detail for humans travels in a caller-owned siyu_err. */
#ifndef SIYU_ERR_H
#define SIYU_ERR_H

#include <stddef.h>

enum {
    SIYU_OK = 0,
    SIYU_ENOMEM = -1,    /* allocation failed */
    SIYU_EINVAL = -2,    /* bad input; siyu_err names the field */
    SIYU_ENOTFOUND = -3, /* no such record (in this tenant) */
    SIYU_ECONFLICT = -4, /* unique constraint or state conflict */
    SIYU_EIO = -5,       /* store or file I/O failed */
    SIYU_EBUSY = -6,     /* queue full, try later */
    SIYU_ECLOSED = -7,   /* shutting down */
    SIYU_EDENIED = -8,   /* not allowed for this token */
    SIYU_ETOOBIG = -9,   /* input exceeds a limit */
    SIYU_ECRYPTO = -10,  /* signature or decryption failed */
    SIYU_EREMOTE = -11,  /* the WeCom API refused or could not be reached (see wecom_res) */
};

typedef struct siyu_err {
    int code;
    char field[64];    /* the offending field or key, "" if none */
    char msg[256];     /* human-readable, never contains secrets or PII */
} siyu_err;

/* Name of a SIYU_E* code ("ok", "invalid", ...). Never NULL. */
const char *siyu_strerror(int code);

/* Fill err (if not NULL) and return code. field may be NULL. */
int siyu_err_set(siyu_err *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void siyu_err_clear(siyu_err *err);

#endif
