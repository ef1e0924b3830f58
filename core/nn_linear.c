/* The fully connected layer: y = x W^T + b, W is [out, in]. */
#include "agon/nn.h"
#include "nn_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct linear_state {
    int64_t in, out;
    bool bias;
} linear_state;

static void linear_forward(void *state, agon_param *params, const agon_tensor *in,
                           agon_tensor *out, bool training)
{
    const linear_state *s = state;
    int64_t batch = in->shape.dim[0];
    const float *w = params[0].value.data;
    float beta = 0.0f;
    if (s->bias) {
        /* Seeding every row with b lets one gemm (beta = 1) add x W^T. */
        const float *b = params[1].value.data;
        for (int64_t r = 0; r < batch; r++)
            memcpy(out->data + r * s->out, b, (size_t)s->out * sizeof(float));
        beta = 1.0f;
    }
    agon_gemm(false, true, batch, s->out, s->in, 1.0f, in->data, s->in, w, s->in, beta,
              out->data, s->out);
}

static void linear_backward(void *state, agon_param *params, const agon_tensor *in,
                            const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                            bool param_grads)
{
    const linear_state *s = state;
    int64_t batch = in->shape.dim[0];
    const float *dy = dout->data;
    if (param_grads) {
        /* dW += dy^T x */
        agon_gemm(true, false, s->out, s->in, batch, 1.0f, dy, s->out, in->data, s->in, 1.0f,
                  params[0].grad.data, s->in);
        if (s->bias) {
            /* Rows are added in order, so the sum is the same every time. */
            float *db = params[1].grad.data;
            for (int64_t r = 0; r < batch; r++) {
                const float *row = dy + r * s->out;
                for (int64_t j = 0; j < s->out; j++)
                    db[j] += row[j];
            }
        }
    }
    if (din) {
        /* dx = dy W */
        agon_gemm(false, false, batch, s->in, s->out, 1.0f, dy, s->out, params[0].value.data,
                  s->in, 0.0f, din->data, s->in);
    }
}

static const agon_layer_ops linear_ops = {
    sizeof(agon_layer_ops), "linear", linear_forward, linear_backward, free,
};

/* Default gains, in AGON_INIT_MAP order (see agon/nn.h). */
static double default_gain(agon_init init)
{
    switch (init) {
    case AGON_INIT_DEFAULT_UNIFORM:
    case AGON_INIT_XAVIER_UNIFORM:
        return 1.0;
    case AGON_INIT_KAIMING_UNIFORM:
        /* The ReLU gain: keeps activations' variance through ReLU layers. */
        return sqrt(2.0);
    case AGON_INIT_NORMAL:
        return 0.02;
    default:
        return 1.0;
    }
}

/* Draws weights (in storage order) and then the bias, so that a given rng
 * state always gives the same parameters.  For DEFAULT_UNIFORM the gain
 * scales the weights' bound only; with gain 1 this is PyTorch's nn.Linear
 * (and its convolutions, given their fans). */
void agon__init_layer_params(agon_param *params, bool bias, int64_t fan_in, int64_t fan_out,
                             agon_init init, float gain_or_default, agon_rng *rng)
{
    const double gain = gain_or_default > 0.0f ? (double)gain_or_default : default_gain(init);
    float *w = params[0].value.data;
    if (!w)
        return;     /* a planned network: nothing to initialise */
    size_t nw = (size_t)agon_tensor_numel(&params[0].value);
    switch (init) {
    case AGON_INIT_DEFAULT_UNIFORM: {
        double bound = 1.0 / sqrt((double)fan_in);
        float a = (float)(gain * bound);
        agon_rng_fill_uniform(rng, w, nw, -a, a);
        if (bias)
            agon_rng_fill_uniform(rng, params[1].value.data,
                                  (size_t)agon_tensor_numel(&params[1].value), (float)-bound,
                                  (float)bound);
        return;
    }
    case AGON_INIT_XAVIER_UNIFORM: {
        float a = (float)(gain * sqrt(6.0 / (double)(fan_in + fan_out)));
        agon_rng_fill_uniform(rng, w, nw, -a, a);
        break;
    }
    case AGON_INIT_KAIMING_UNIFORM: {
        float a = (float)(gain * sqrt(3.0 / (double)fan_in));
        agon_rng_fill_uniform(rng, w, nw, -a, a);
        break;
    }
    case AGON_INIT_NORMAL:
        agon_rng_fill_normal(rng, w, nw, 0.0f, (float)gain);
        break;
    default:
        break;
    }
    /* The bias of the non-default schemes stays zero (the arena zeroes). */
}

int agon_net_add_linear(agon_net *net, int64_t out_features, bool bias, agon_init init,
                        float gain, agon_rng *rng, agon_error *err)
{
    size_t idx = agon_net_layer_count(net);
    if (out_features < 1)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (linear): out_features must be at least 1, got %lld",
                              idx, (long long)out_features);
    if ((int)init < 0 || init >= AGON_INIT_COUNT)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (linear): unknown init scheme %d", idx, (int)init);
    if (!isfinite(gain))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (linear): gain must be a finite number", idx);
    if (!rng)
        return agon_error_set(err, AGON_EINTERNAL,
                              "layer %zu (linear): no random stream given for initialisation",
                              idx);

    agon_shape in_shape = agon_net_out_shape(net);
    int64_t in_features = agon_shape_numel(&in_shape);

    linear_state *s = malloc(sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "out of memory adding a linear layer");
    s->in = in_features;
    s->out = out_features;
    s->bias = bias;

    static const char *const names[] = {"weight", "bias"};
    agon_shape shapes[2];
    shapes[0] = agon_shape_make(2, (int64_t[]){out_features, in_features});
    shapes[1] = agon_shape_make(1, &out_features);
    agon_shape out_shape = agon_shape_make(1, &out_features);
    agon_param *params = NULL;
    int rc = agon__net_add_layer(net, &linear_ops, s, &out_shape, bias ? 2 : 1, names, shapes,
                                 &params, err);
    if (rc != 0)
        return rc;
    agon__init_layer_params(params, bias, in_features, out_features, init, gain, rng);
    return 0;
}
