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

/* As agon_net_add_layer, but the parameters *params_out points at keep
 * the planned network's absence of storage (data NULL): a core layer
 * initialises them only when they have storage. */
int agon__net_add_layer(agon_net *net, const agon_layer_ops *ops, void *state,
                        const agon_shape *out_shape, size_t n_params,
                        const char *const *param_names, const agon_shape *param_shapes,
                        agon_param **params_out, agon_error *err);

/* A core layer's bookkeeping (tables it writes while it is added): real
 * zeroed bytes from the network's arena, planned or not. */
void *agon__net_alloc(agon_net *net, size_t bytes, agon_error *err);

/* A core layer's own buffers (statistics, masks, scratch): n zeroed floats
 * from the network's arena; a planned network counts them and *out is
 * NULL.  0 or AGON_ENOMEM. */
int agon__net_floats(agon_net *net, float **out, int64_t n, agon_error *err);

#endif /* AGON_NN_INT_H */
