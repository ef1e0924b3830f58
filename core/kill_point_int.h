/* Private: the kill test's points in a run's life (docs/reliability.md).
 *
 * With AGON_TEST_KILL_AT=<phase> in the environment, a run sends itself
 * SIGKILL when it reaches that phase, which is what a kill from outside at
 * that moment does, minus the luck of timing: the kill test
 * (tests/e2e_kill_phases.sh) aims at every phase, the milliseconds of
 * setup included.  AGON_TEST_KILL_AT=step:N kills it after step N.  The
 * phases, in order: start, claimed, building, checkpointed, live, step:N,
 * trained, finishing, final, closed. */
#ifndef AGON_KILL_POINT_INT_H
#define AGON_KILL_POINT_INT_H

#include <stdint.h>

void agon__test_kill_point(const char *phase);

/* The N of AGON_TEST_KILL_AT=step:N, or -1. */
int64_t agon__test_kill_step(void);

#endif /* AGON_KILL_POINT_INT_H */
