/* Private: helpers shared by the core layer kinds (nn_*.c). */
#ifndef AGON_NN_INT_H
#define AGON_NN_INT_H

#include "agon/nn.h"

/* Initialises a layer's weight params[0] and, when `bias`, its bias
 * params[1] with `init` (see AGON_INIT_MAP in agon/nn.h); fan_in and
 * fan_out as that comment counts them; gain <= 0 picks the scheme's
 * default.  Weights are drawn before the bias. */
void agon__init_layer_params(agon_param *params, bool bias, int64_t fan_in, int64_t fan_out,
                             agon_init init, float gain, agon_rng *rng);

#endif /* AGON_NN_INT_H */
