/* Private: the game's entry points used by experiment.c. */
#ifndef AGON_TRAIN_INT_H
#define AGON_TRAIN_INT_H

#include "agon/run.h"

/* Builds every component of a resolved experiment once and tears it down
 * again, so that errors only plugins can detect (shapes, dataset files,
 * plugin-specific checks) surface before training.  0 or a failure code. */
int agon__experiment_check_build(agon_experiment *exp, agon_error *err);

/* Sizes what a run of `exp` on data described by `info` holds (see
 * agon_memory_estimate), by building its networks planned and allocating
 * the step's buffers in a planning arena: nothing large is allocated.
 * 0, or the failure of a build that could not be planned (shapes that do
 * not fit in 64 bits among them). */
int agon__game_plan(const agon_experiment *exp, const agon_dataset_info *info,
                    agon_memory_estimate *est, agon_error *err);

#endif /* AGON_TRAIN_INT_H */
