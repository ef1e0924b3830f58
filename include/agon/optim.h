/* agon/optim.h — the optimizer contract.
 *
 * Optimizers are plugins (plugins/optimizers/).  The host owns all
 * optimizer state as tensors next to the parameters, so that it can be
 * checkpointed and restored; an optimizer only says how many state tensors
 * it needs per parameter (each the parameter's shape, zero-initialised) and
 * updates parameters in place.
 */
#ifndef AGON_OPTIM_H
#define AGON_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "agon/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AGON_OPTIM_MAX_STATE 4

/* One parameter as the optimizer sees it. */
typedef struct agon_optim_slot {
    agon_tensor *value;                         /* updated in place */
    const agon_tensor *grad;                    /* same shape */
    agon_tensor state[AGON_OPTIM_MAX_STATE];    /* n_state tensors, same shape */
} agon_optim_slot;

#ifdef __cplusplus
}
#endif

#endif /* AGON_OPTIM_H */
