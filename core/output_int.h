/* Private: the check that an output path may be written, shared by the
 * run log (train.c) and the classifier file (classifier.c). */
#ifndef AGON_OUTPUT_INT_H
#define AGON_OUTPUT_INT_H

#include <stdbool.h>

#include "agon/error.h"

/* Whether `path` may become an output: a missing path may; an existing one
 * only with `overwrite`, and only when it is an HDF5 file, never a text
 * file or anything that is not a regular file.  `what` names the HDF5 file
 * in the refusal ("HDF5 run log": "is not an HDF5 run log, so --overwrite
 * will not replace it").  *exists (may be NULL) says whether the path
 * exists.  No side effects, so it can run before anything is built. */
int agon__check_output(const char *path, bool overwrite, const char *what, bool *exists,
                       agon_error *err);

#endif /* AGON_OUTPUT_INT_H */
