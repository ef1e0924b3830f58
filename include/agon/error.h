/* agon/error.h — status codes, error values and diagnostic lists.
 *
 * Convention: 0 is success, a negative status is failure.  A function that
 * returns a pointer reports failure through an `agon_error *` out-parameter
 * (which may be NULL when the caller does not care).  Messages are one line,
 * without a trailing newline, and carry their own context
 * ("file:line:col: key.path: what went wrong; what to do").
 */
#ifndef AGON_ERROR_H
#define AGON_ERROR_H

#include <stddef.h>

#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, exit code of the `agon` CLI, short description).
 * Append only.  The CLI maps a failing status to the exit code listed here;
 * `agon --help` and the README print this table. */
#define AGON_STATUS_MAP(X)                                                     \
    X(OK, 0, 0, "success")                                                     \
    X(ENOMEM, -1, 1, "out of memory")                                          \
    X(EINTERNAL, -2, 1, "internal error (a bug in agon; please report it)")    \
    X(EUSAGE, -3, 2, "bad command line")                                       \
    X(ECONFIG, -4, 3, "invalid experiment configuration")                      \
    X(EPLUGIN, -5, 4, "plugin could not be loaded or failed")                  \
    X(EIO, -6, 5, "file could not be read or written")                         \
    X(EDATA, -7, 5, "input file has the wrong content or layout")              \
    X(EDIVERGED, -8, 6, "training diverged (non-finite value)")                \
    X(EINTERRUPTED, -9, 130, "interrupted by a signal")                       \
    X(ENUMERIC, -10, 7, "numerical failure (a matrix decomposition failed)")   \
    X(ERUNS, -11, 8, "some runs of a sweep failed (the others completed)")

typedef enum agon_status {
#define AGON__STATUS_ENUM(name, value, exit_code, text) AGON_##name = value,
    AGON_STATUS_MAP(AGON__STATUS_ENUM)
#undef AGON__STATUS_ENUM
    AGON_STATUS_COUNT = 12 /* number of entries in AGON_STATUS_MAP */
} agon_status;

/* "ECONFIG" for AGON_ECONFIG; "EUNKNOWN" for a value not in the map. */
AGON_API const char *agon_status_name(int status);
/* The description column of AGON_STATUS_MAP. */
AGON_API const char *agon_status_text(int status);
/* The CLI exit code for a status (0 for AGON_OK, 1 for unknown values). */
AGON_API int agon_status_exit_code(int status);

#define AGON_ERROR_MESSAGE_MAX 1024

/* One error: a status code and a one-line message.  Caller storage;
 * zero-initialise (or agon_error_clear) before use. */
typedef struct agon_error {
    int code;                               /* 0 when no error was set */
    char message[AGON_ERROR_MESSAGE_MAX];   /* NUL-terminated, one line */
} agon_error;

AGON_API void agon_error_clear(agon_error *err);

/* Sets err (when err is not NULL and no error is set yet: the first cause
 * wins) and returns `code`, so that `return agon_error_set(err, ...)` works.
 * Newlines in the formatted text are replaced by spaces. */
AGON_API int agon_error_set(agon_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an already set message with "prefix: " (e.g. a file name). */
AGON_API void agon_error_prefix(agon_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A list of diagnostics, for operations that report every problem they
 * find rather than the first (config validation, plugin discovery).
 * Caller storage: agon_diag_init before use, agon_diag_fini after. */
typedef struct agon_diag {
    size_t count;       /* number of messages */
    char **messages;    /* owned; each one line */
    int code;           /* status of the first message, 0 when empty */
} agon_diag;

AGON_API void agon_diag_init(agon_diag *diag);
AGON_API void agon_diag_fini(agon_diag *diag);
/* Appends a formatted message; returns `code`.  On allocation failure the
 * message is dropped but diag->code still records the failure. */
AGON_API int agon_diag_add(agon_diag *diag, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends err's message (no-op when err->code == 0); returns err->code. */
AGON_API int agon_diag_add_error(agon_diag *diag, const agon_error *err);

#ifdef __cplusplus
}
#endif

#endif /* AGON_ERROR_H */
