/* Status codes, error values and diagnostic lists (see agon/error.h). */
#include "agon/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(AGON_STATUS_COUNT ==
#define AGON__COUNT_ONE(name, value, exit_code, text) +1
                   (0 AGON_STATUS_MAP(AGON__COUNT_ONE)),
#undef AGON__COUNT_ONE
               "AGON_STATUS_COUNT must match AGON_STATUS_MAP");

const char *agon_status_name(int status)
{
    switch (status) {
#define AGON__NAME_CASE(name, value, exit_code, text) case value: return #name;
        AGON_STATUS_MAP(AGON__NAME_CASE)
#undef AGON__NAME_CASE
    default:
        return "EUNKNOWN";
    }
}

const char *agon_status_text(int status)
{
    switch (status) {
#define AGON__TEXT_CASE(name, value, exit_code, text) case value: return text;
        AGON_STATUS_MAP(AGON__TEXT_CASE)
#undef AGON__TEXT_CASE
    default:
        return "unknown status";
    }
}

int agon_status_exit_code(int status)
{
    switch (status) {
#define AGON__EXIT_CASE(name, value, exit_code, text) case value: return exit_code;
        AGON_STATUS_MAP(AGON__EXIT_CASE)
#undef AGON__EXIT_CASE
    default:
        return 1;
    }
}

void agon_error_clear(agon_error *err)
{
    if (err) {
        err->code = 0;
        err->message[0] = '\0';
    }
}

/* Messages are single lines: a newline from a foreign library (libyaml,
 * dlerror) must not break the one-line-per-error contract. */
static void flatten_lines(char *s)
{
    for (; *s; s++) {
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    }
}

int agon_error_set(agon_error *err, int code, const char *fmt, ...)
{
    if (!err || err->code != 0)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    flatten_lines(err->message);
    err->code = code;
    return code;
}

void agon_error_prefix(agon_error *err, const char *fmt, ...)
{
    if (!err || err->code == 0)
        return;
    char prefix[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[AGON_ERROR_MESSAGE_MAX];
    memcpy(old, err->message, sizeof old);
    /* Truncation is acceptable: the message stays one NUL-terminated line. */
    size_t n = strlen(prefix);
    if (n > sizeof err->message - 3)
        n = sizeof err->message - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t room = sizeof err->message - n - 2;
    size_t m = strnlen(old, room - 1);
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
    flatten_lines(err->message);
}

void agon_diag_init(agon_diag *diag)
{
    diag->count = 0;
    diag->messages = NULL;
    diag->code = 0;
}

void agon_diag_fini(agon_diag *diag)
{
    if (!diag)
        return;
    for (size_t i = 0; i < diag->count; i++)
        free(diag->messages[i]);
    free(diag->messages);
    agon_diag_init(diag);
}

static int diag_push(agon_diag *diag, int code, const char *text)
{
    if (diag->code == 0)
        diag->code = code;
    char *copy = strdup(text);
    char **grown = copy ? realloc(diag->messages, (diag->count + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return code;
    }
    flatten_lines(copy);
    grown[diag->count++] = copy;
    diag->messages = grown;
    return code;
}

int agon_diag_add(agon_diag *diag, int code, const char *fmt, ...)
{
    char buf[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!diag)
        return code;
    return diag_push(diag, code, buf);
}

int agon_diag_add_error(agon_diag *diag, const agon_error *err)
{
    if (!err || err->code == 0)
        return 0;
    if (diag)
        diag_push(diag, err->code, err->message);
    return err->code;
}
