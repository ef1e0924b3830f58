/* agon/nn.h — sequential networks of layers with forward and backward.
 *
 * A network is built once for a per-sample input shape and a maximum batch
 * size.  Building allocates everything it will ever need (parameters,
 * gradients, each layer's output and input-gradient buffers) from the
 * network's arena; forward and backward then allocate nothing.  Any batch
 * size from 1 to max_batch may be used per call.
 *
 * Data layout: row-major, batch first: [batch, features] for vectors,
 * [batch, C, H, W] for images.
 *
 * Gradients: agon_net_backward accumulates (+=) into each parameter's grad;
 * call agon_net_zero_grad before a fresh accumulation.
 */
#ifndef AGON_NN_H
#define AGON_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"
#include "agon/rng.h"
#include "agon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ENUM, "yaml name").  Append only. */
#define AGON_ACTIVATION_MAP(X)                                                 \
    X(NONE, "none")                                                            \
    X(RELU, "relu")                                                            \
    X(LEAKY_RELU, "leaky_relu")                                                \
    X(TANH, "tanh")                                                            \
    X(SIGMOID, "sigmoid")

typedef enum agon_activation {
#define AGON__ACT_ENUM(e, s) AGON_ACT_##e,
    AGON_ACTIVATION_MAP(AGON__ACT_ENUM)
#undef AGON__ACT_ENUM
    AGON_ACT_COUNT
} agon_activation;

/* "relu" for AGON_ACT_RELU; NULL when out of range. */
AGON_API const char *agon_activation_name(agon_activation act);
/* 0 and *out set when `name` is a known activation, else AGON_ECONFIG. */
AGON_API int agon_activation_parse(const char *name, agon_activation *out);

/* Weight initialisation of linear (and later convolution) layers.
 * fan_in / fan_out count inputs / outputs per output unit.
 *   DEFAULT_UNIFORM  W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's
 *                    nn.Linear default)
 *   XAVIER_UNIFORM   W ~ U(-a, a), a = gain*sqrt(6/(fan_in+fan_out)); b = 0
 *   KAIMING_UNIFORM  W ~ U(-a, a), a = gain*sqrt(3/fan_in)  (gain sqrt(2)
 *                    for ReLU); b = 0
 *   NORMAL           W ~ N(0, gain^2) (DCGAN uses gain 0.02); b = 0 */
#define AGON_INIT_MAP(X)                                                       \
    X(DEFAULT_UNIFORM, "default")                                              \
    X(XAVIER_UNIFORM, "xavier_uniform")                                        \
    X(KAIMING_UNIFORM, "kaiming_uniform")                                      \
    X(NORMAL, "normal")

typedef enum agon_init {
#define AGON__INIT_ENUM(e, s) AGON_INIT_##e,
    AGON_INIT_MAP(AGON__INIT_ENUM)
#undef AGON__INIT_ENUM
    AGON_INIT_COUNT
} agon_init;

AGON_API const char *agon_init_name(agon_init init);
AGON_API int agon_init_parse(const char *name, agon_init *out);

/* A trainable parameter: value and gradient have the same shape and live
 * in the network's arena. `name` is "<layer index>.<param>", e.g. "0.weight". */
typedef struct agon_param {
    char name[48];
    agon_tensor value;
    agon_tensor grad;
} agon_param;

/* The contract of a layer kind.  Core layers use it, and so may plugins
 * that bring their own layers.  `in` and `out` carry the batch dimension.
 * forward:  writes out = f(in).  `training` is false in evaluation mode.
 * backward: given dout = dL/dout (and the in/out of the last forward with
 *           this batch), writes din = dL/din when din is not NULL, and, when
 *           `param_grads` is true, adds dL/dparam into params[i].grad.
 * destroy:  frees `state` (may be NULL). */
typedef struct agon_layer_ops {
    uint32_t struct_size;   /* sizeof(agon_layer_ops) */
    const char *type;       /* "linear", "relu", ... */
    void (*forward)(void *state, agon_param *params, const agon_tensor *in,
                    agon_tensor *out, bool training);
    void (*backward)(void *state, agon_param *params, const agon_tensor *in,
                     const agon_tensor *out, const agon_tensor *dout,
                     agon_tensor *din, bool param_grads);
    void (*destroy)(void *state);
} agon_layer_ops;

typedef struct agon_net agon_net;

/* Creates an empty network taking per-sample inputs of `in_shape`, used with
 * batches of at most `max_batch` samples. */
AGON_API agon_net *agon_net_create(const agon_shape *in_shape, int64_t max_batch,
                                   agon_error *err);
/* Frees the network, its layers' states and its arena.  NULL is a no-op. */
AGON_API void agon_net_destroy(agon_net *net);

/* ---- planning ----------------------------------------------------------------
 * A planned network is built by the same calls as any other, but what
 * grows with its size has no storage: parameters, gradients, buffers,
 * activations, input gradients and layer scratch get their shapes and data
 * NULL.  It tells what the built network would hold (agon_net_bytes)
 * without holding it, so that a run can be sized, and refused, before it
 * allocates.  A model builds it unchanged: storage it reaches while it
 * builds (agon_net_param, agon_net_buffer, params_out of
 * agon_net_add_layer, out of agon_net_add_buffer) gets real memory, not
 * counted again, and what it takes from agon_net_arena is real and
 * counted.  A planned network cannot run forward or backward. */
AGON_API agon_net *agon_net_create_planned(const agon_shape *in_shape, int64_t max_batch,
                                           agon_error *err);
/* Called once the model has built a planned network: from then on
 * agon_net_param and agon_net_buffer hand out the planned tensors (data
 * NULL) without giving them storage, so that the host can size optimizer
 * state and checkpoints from their shapes. */
AGON_API void agon_net_finish_plan(agon_net *net);
/* Bytes the network's arena holds (agon_arena_used); for a planned
 * network, what a network built by the same calls holds. */
AGON_API size_t agon_net_bytes(const agon_net *net);

/* Per-sample shape of the current output (the input shape when empty). */
AGON_API agon_shape agon_net_out_shape(const agon_net *net);
AGON_API agon_shape agon_net_in_shape(const agon_net *net);
AGON_API int64_t agon_net_max_batch(const agon_net *net);
AGON_API size_t agon_net_layer_count(const agon_net *net);
/* Type name of layer i ("linear", ...). */
AGON_API const char *agon_net_layer_type(const agon_net *net, size_t i);
/* The network's arena: layers built by plugins may allocate their own
 * long-lived buffers from it (a planned network's real one, see above). */
AGON_API agon_arena *agon_net_arena(agon_net *net);

/* Appends a fully connected layer: out = in W^T + b, W is [out, in]
 * (in = numel of the current per-sample shape, which is flattened), b is
 * [out].  Parameters are initialised from `rng` with `init` and `gain`
 * (gain <= 0 picks the scheme's default: 1 for DEFAULT_UNIFORM and
 * XAVIER_UNIFORM, sqrt(2) for KAIMING_UNIFORM, 0.02 for NORMAL). */
AGON_API int agon_net_add_linear(agon_net *net, int64_t out_features, bool bias,
                                 agon_init init, float gain, agon_rng *rng,
                                 agon_error *err);

/* Appends an element-wise activation.  `slope` is the negative slope of
 * leaky_relu (ignored otherwise).  AGON_ACT_NONE adds nothing. */
AGON_API int agon_net_add_activation(agon_net *net, agon_activation act,
                                     float slope, agon_error *err);

/* Appends a layer of any kind.  `state` is owned by the network from this
 * call on, also on failure.  `out_shape` is the per-sample output shape.
 * The network allocates n_params parameters of the given shapes and names
 * (zero-filled) and, when params_out is not NULL, points *params_out at them
 * so the caller can initialise them. */
AGON_API int agon_net_add_layer(agon_net *net, const agon_layer_ops *ops,
                                void *state, const agon_shape *out_shape,
                                size_t n_params, const char *const *param_names,
                                const agon_shape *param_shapes,
                                agon_param **params_out, agon_error *err);

/* Runs every layer on `in` ([batch, in_shape...], 1 <= batch <= max_batch).
 * Returns the output, a view into the network's buffers (borrowed; valid
 * until the next forward). */
AGON_API const agon_tensor *agon_net_forward(agon_net *net, const agon_tensor *in,
                                             bool training);

/* Back-propagates dout ([batch, out_shape...], the batch of the last
 * forward).  Adds parameter gradients when `param_grads` is true.  Returns
 * dL/din (borrowed, valid until the next backward); computing it for the
 * first layer is skipped, and NULL returned, when `want_din` is false. */
AGON_API const agon_tensor *agon_net_backward(agon_net *net, const agon_tensor *dout,
                                              bool param_grads, bool want_din);

/* Layers with batch statistics (batch norm) compute them separately over
 * each of `groups` equal contiguous parts of the batch, exactly as if each
 * part had been its own forward pass, in order (running statistics are
 * updated once per part).  The batch of forward must then be a multiple of
 * `groups`.  1, the default, is one batch.  The game uses 2 for D's
 * [real; fake] batch. */
AGON_API void agon_net_set_batch_groups(agon_net *net, int64_t groups);
AGON_API int64_t agon_net_batch_groups(const agon_net *net);

AGON_API void agon_net_zero_grad(agon_net *net);
AGON_API size_t agon_net_param_count(const agon_net *net);
/* Parameter i (borrowed), in layer order; NULL when out of range (or when
 * a planned network cannot get it storage). */
AGON_API agon_param *agon_net_param(agon_net *net, size_t i);
/* Total number of scalar parameters. */
AGON_API int64_t agon_net_param_numel(const agon_net *net);
/* L2 norm of all parameter gradients (double accumulation). */
AGON_API double agon_net_grad_norm(const agon_net *net);


/* ---- convolutions -----------------------------------------------------------
 * Inputs and outputs are NCHW: per-sample shape [C, H, W].
 * conv2d:           W is [out_channels, in_channels, kernel_h, kernel_w],
 *                   out = (in + 2*pad - kernel) / stride + 1 (floor).
 * conv_transpose2d: W is [in_channels, out_channels, kernel_h, kernel_w]
 *                   (the gradient of conv2d with respect to its input),
 *                   out = (in - 1)*stride - 2*pad + kernel + output_pad.
 * b is [out_channels].  fan_in for initialisation is in_channels*kh*kw for
 * conv2d and out_channels*kh*kw for conv_transpose2d (as PyTorch counts
 * it), so DEFAULT_UNIFORM matches PyTorch's defaults. */
typedef struct agon_conv_spec {
    int64_t out_channels;
    int64_t kernel_h, kernel_w;     /* >= 1 */
    int64_t stride_h, stride_w;     /* >= 1 */
    int64_t pad_h, pad_w;           /* >= 0, < kernel */
    int64_t output_pad_h, output_pad_w; /* transposed only; < stride */
    bool bias;
} agon_conv_spec;

/* Appends a 2-D convolution.  The current per-sample shape must be
 * [C, H, W] and give an output of at least 1x1; errors say which. */
AGON_API int agon_net_add_conv2d(agon_net *net, const agon_conv_spec *spec,
                                 agon_init init, float gain, agon_rng *rng,
                                 agon_error *err);
/* Appends a 2-D transposed convolution ("deconvolution"). */
AGON_API int agon_net_add_conv_transpose2d(agon_net *net, const agon_conv_spec *spec,
                                           agon_init init, float gain,
                                           agon_rng *rng, agon_error *err);

/* ---- normalisation, shape and regularisation layers ------------------------ */

/* Batch normalisation over channel dim 0 of the per-sample shape: [F] is
 * BatchNorm1d over F features, [C, H, W] (or [C, L]) is BatchNorm2d (1d)
 * over C channels with statistics over batch and the remaining dims.
 * Training mode normalises with the batch's mean and biased variance and
 * updates the running statistics:
 *     running = (1 - momentum) * running + momentum * batch_stat,
 * with the unbiased variance for running_var (as PyTorch does).
 * Evaluation mode normalises with the running statistics.  With `affine`,
 * parameters "weight" (gamma, initialised to 1) and "bias" (beta, 0).
 * Buffers "running_mean" (0) and "running_var" (1) (see agon_net_buffer).
 * Training mode needs a batch of at least 2 when the per-channel count is 1. */
AGON_API int agon_net_add_batchnorm(agon_net *net, float momentum, float eps,
                                    bool affine, agon_error *err);

/* Appends a reshape to per-sample `shape` (same number of elements). */
AGON_API int agon_net_add_reshape(agon_net *net, const agon_shape *shape,
                                  agon_error *err);
/* Appends a flatten: [C, H, W] -> [C*H*W]. */
AGON_API int agon_net_add_flatten(agon_net *net, agon_error *err);

/* Appends inverted dropout with drop probability p in [0, 1): in training
 * mode each element is zeroed with probability p and the others scaled by
 * 1/(1-p); evaluation mode is the identity.  The layer's mask stream is
 * seeded from `rng` at build time, so runs are reproducible. */
AGON_API int agon_net_add_dropout(agon_net *net, float p, agon_rng *rng,
                                  agon_error *err);

/* ---- buffers ------------------------------------------------------------------
 * Non-trainable state of a layer (batch norm's running statistics): logged
 * and checkpointed with the parameters, never touched by optimizers. */
typedef struct agon_buffer {
    char name[48];          /* "<layer index>.<name>", e.g. "1.running_mean" */
    agon_tensor value;
} agon_buffer;

/* Registers a buffer of the most recently added layer, zero-filled, in the
 * network's arena; *out receives its storage (the layer's state keeps it). */
AGON_API int agon_net_add_buffer(agon_net *net, const char *name,
                                 const agon_shape *shape, agon_tensor *out,
                                 agon_error *err);
AGON_API size_t agon_net_buffer_count(const agon_net *net);
/* Buffer i (borrowed), in layer order; NULL when out of range. */
AGON_API agon_buffer *agon_net_buffer(agon_net *net, size_t i);

/* ---- random streams ---------------------------------------------------------
 * A layer that draws while it runs (dropout's masks) registers its stream,
 * which must live as long as the layer, so that checkpoints save it and a
 * resumed run draws the same masks. */
AGON_API int agon_net_add_rng(agon_net *net, agon_rng *rng, agon_error *err);
AGON_API size_t agon_net_rng_count(const agon_net *net);
/* Stream i (borrowed), in the order registered; NULL when out of range. */
AGON_API agon_rng *agon_net_rng(agon_net *net, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* AGON_NN_H */
