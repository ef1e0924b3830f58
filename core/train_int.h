/* Private: the game's entry points used by experiment.c. */
#ifndef AGON_TRAIN_INT_H
#define AGON_TRAIN_INT_H

#include "agon/run.h"

/* Builds every component of a resolved experiment once and tears it down
 * again, so that errors only plugins can detect (shapes, dataset files,
 * plugin-specific checks) surface before training.  0 or a failure code. */
int agon__experiment_check_build(agon_experiment *exp, agon_error *err);

#endif /* AGON_TRAIN_INT_H */
