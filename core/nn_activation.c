/* Element-wise activation layers.  The loops go through restrict locals so
 * that the compiler vectorises them: they are a large share of a small
 * MLP's step. */
#include "agon/nn.h"

#include <math.h>
#include <stdlib.h>

typedef struct leaky_state {
    float slope;
} leaky_state;

/* ---- relu ---- */

static void relu_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    int64_t n = agon_tensor_numel(in);
    const float *restrict x = in->data;
    float *restrict y = out->data;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    if (!din)
        return;
    int64_t n = agon_tensor_numel(in);
    const float *restrict x = in->data;
    const float *restrict dy = dout->data;
    float *restrict dx = din->data;
    for (int64_t i = 0; i < n; i++) {
        /* Unconditional loads let the compiler turn the choice into a blend. */
        float g = dy[i];
        dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
}

/* ---- leaky relu ---- */

static void leaky_forward(void *state, agon_param *params, const agon_tensor *in,
                          agon_tensor *out, bool training)
{
    float slope = ((const leaky_state *)state)->slope;
    int64_t n = agon_tensor_numel(in);
    const float *restrict x = in->data;
    float *restrict y = out->data;
    /* Written as two selects against zero, which vectorise; a select
     * between v and slope * v does not (GCC will not if-convert it). */
    for (int64_t i = 0; i < n; i++) {
        float pos = x[i] > 0.0f ? x[i] : 0.0f;
        float neg = x[i] > 0.0f ? 0.0f : x[i];
        y[i] = pos + slope * neg;
    }
}

static void leaky_backward(void *state, agon_param *params, const agon_tensor *in,
                           const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                           bool param_grads)
{
    if (!din)
        return;
    float slope = ((const leaky_state *)state)->slope;
    int64_t n = agon_tensor_numel(in);
    const float *restrict x = in->data;
    const float *restrict dy = dout->data;
    float *restrict dx = din->data;
    for (int64_t i = 0; i < n; i++) {
        float g = dy[i];
        float pos = x[i] > 0.0f ? g : 0.0f;
        float neg = x[i] > 0.0f ? 0.0f : g;
        dx[i] = pos + slope * neg;
    }
}

/* ---- tanh ---- */

static void tanh_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    int64_t n = agon_tensor_numel(in);
    for (int64_t i = 0; i < n; i++)
        out->data[i] = tanhf(in->data[i]);
}

static void tanh_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    if (!din)
        return;
    int64_t n = agon_tensor_numel(in);
    for (int64_t i = 0; i < n; i++) {
        float y = out->data[i];
        din->data[i] = dout->data[i] * (1.0f - y * y);
    }
}

/* ---- sigmoid ---- */

static void sigmoid_forward(void *state, agon_param *params, const agon_tensor *in,
                            agon_tensor *out, bool training)
{
    int64_t n = agon_tensor_numel(in);
    for (int64_t i = 0; i < n; i++) {
        float x = in->data[i];
        /* exp of a non-positive number only: no overflow for large |x|. */
        if (x >= 0.0f) {
            out->data[i] = 1.0f / (1.0f + expf(-x));
        } else {
            float e = expf(x);
            out->data[i] = e / (1.0f + e);
        }
    }
}

static void sigmoid_backward(void *state, agon_param *params, const agon_tensor *in,
                             const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                             bool param_grads)
{
    if (!din)
        return;
    int64_t n = agon_tensor_numel(in);
    for (int64_t i = 0; i < n; i++) {
        float y = out->data[i];
        din->data[i] = dout->data[i] * y * (1.0f - y);
    }
}

static const agon_layer_ops relu_ops = {
    sizeof(agon_layer_ops), "relu", relu_forward, relu_backward, NULL,
};
static const agon_layer_ops leaky_ops = {
    sizeof(agon_layer_ops), "leaky_relu", leaky_forward, leaky_backward, free,
};
static const agon_layer_ops tanh_ops = {
    sizeof(agon_layer_ops), "tanh", tanh_forward, tanh_backward, NULL,
};
static const agon_layer_ops sigmoid_ops = {
    sizeof(agon_layer_ops), "sigmoid", sigmoid_forward, sigmoid_backward, NULL,
};

int agon_net_add_activation(agon_net *net, agon_activation act, float slope, agon_error *err)
{
    size_t idx = agon_net_layer_count(net);
    agon_shape shape = agon_net_out_shape(net);
    switch (act) {
    case AGON_ACT_NONE:
        return 0;
    case AGON_ACT_RELU:
        return agon_net_add_layer(net, &relu_ops, NULL, &shape, 0, NULL, NULL, NULL, err);
    case AGON_ACT_TANH:
        return agon_net_add_layer(net, &tanh_ops, NULL, &shape, 0, NULL, NULL, NULL, err);
    case AGON_ACT_SIGMOID:
        return agon_net_add_layer(net, &sigmoid_ops, NULL, &shape, 0, NULL, NULL, NULL, err);
    case AGON_ACT_LEAKY_RELU: {
        if (!isfinite(slope))
            return agon_error_set(err, AGON_ECONFIG,
                                  "layer %zu (leaky_relu): slope must be a finite number", idx);
        leaky_state *s = malloc(sizeof *s);
        if (!s)
            return agon_error_set(err, AGON_ENOMEM, "out of memory adding a leaky_relu layer");
        s->slope = slope;
        return agon_net_add_layer(net, &leaky_ops, s, &shape, 0, NULL, NULL, NULL, err);
    }
    default:
        return agon_error_set(err, AGON_ECONFIG, "layer %zu: unknown activation %d", idx,
                              (int)act);
    }
}
