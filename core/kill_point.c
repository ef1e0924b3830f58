/* The kill test's points (see kill_point_int.h). */
#include "kill_point_int.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

void agon__test_kill_point(const char *phase)
{
    const char *at = getenv("AGON_TEST_KILL_AT");
    if (at && strcmp(at, phase) == 0)
        raise(SIGKILL);
}

int64_t agon__test_kill_step(void)
{
    const char *at = getenv("AGON_TEST_KILL_AT");
    if (!at || strncmp(at, "step:", 5) != 0)
        return -1;
    char *end;
    long long n = strtoll(at + 5, &end, 10);
    return *end == '\0' && n > 0 ? (int64_t)n : -1;
}
