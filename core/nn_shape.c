/* Shape layers (reshape, flatten) and inverted dropout.
 *
 * Data is dense and row-major, so a reshape leaves every value where it
 * is: the layer only copies, because each layer owns its output buffer. */
#include "agon/nn.h"
#include "nn_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reshape and flatten ---- */

static void copy_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    memcpy(out->data, in->data, (size_t)agon_tensor_numel(in) * sizeof(float));
}

static void copy_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    if (din)
        memcpy(din->data, dout->data, (size_t)agon_tensor_numel(dout) * sizeof(float));
}

static const agon_layer_ops reshape_ops = {
    sizeof(agon_layer_ops), "reshape", copy_forward, copy_backward, NULL,
};
static const agon_layer_ops flatten_ops = {
    sizeof(agon_layer_ops), "flatten", copy_forward, copy_backward, NULL,
};

int agon_net_add_reshape(agon_net *net, const agon_shape *shape, agon_error *err)
{
    size_t idx = agon_net_layer_count(net);
    if (!shape)
        return agon_error_set(err, AGON_EINTERNAL, "layer %zu (reshape): no shape given", idx);
    /* A malformed target is left to agon_net_add_layer, which reports it;
     * only a well-formed one has an element count worth comparing. */
    bool well_formed = shape->ndim >= 0 && shape->ndim < AGON_MAX_DIMS;
    for (int d = 0; well_formed && d < shape->ndim; d++)
        well_formed = shape->dim[d] >= 1;
    agon_shape cur = agon_net_out_shape(net);
    if (well_formed && agon_shape_numel(shape) != agon_shape_numel(&cur)) {
        char from[128], to[128];
        agon_shape_format(&cur, from, sizeof from);
        agon_shape_format(shape, to, sizeof to);
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (reshape): cannot reshape %s (%lld elements) to %s "
                              "(%lld elements); the element counts must match",
                              idx, from, (long long)agon_shape_numel(&cur), to,
                              (long long)agon_shape_numel(shape));
    }
    return agon_net_add_layer(net, &reshape_ops, NULL, shape, 0, NULL, NULL, NULL, err);
}

int agon_net_add_flatten(agon_net *net, agon_error *err)
{
    agon_shape cur = agon_net_out_shape(net);
    int64_t n = agon_shape_numel(&cur);
    agon_shape flat = agon_shape_make(1, &n);
    return agon_net_add_layer(net, &flatten_ops, NULL, &flat, 0, NULL, NULL, NULL, err);
}

/* ---- dropout ---- */

typedef struct dropout_state {
    agon_rng rng;           /* the layer's own mask stream */
    uint32_t threshold;     /* a 32-bit draw below it drops the element */
    float scale;            /* 1 / (1 - p) */
    bool identity;          /* the last forward copied (eval mode or p = 0) */
    float *mask;            /* [max_batch * numel]: 0 or scale, in the arena */
} dropout_state;

static void dropout_forward(void *state, agon_param *params, const agon_tensor *in,
                            agon_tensor *out, bool training)
{
    dropout_state *s = state;
    int64_t n = agon_tensor_numel(in);
    s->identity = !training || s->threshold == 0;
    if (s->identity) {
        memcpy(out->data, in->data, (size_t)n * sizeof(float));
        return;
    }
    /* Two 32-bit draws per 64-bit output of the generator. */
    float *restrict mask = s->mask;
    uint32_t t = s->threshold;
    float keep = s->scale;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t r = agon_rng_u64(&s->rng);
        mask[i] = (uint32_t)r < t ? 0.0f : keep;
        mask[i + 1] = (uint32_t)(r >> 32) < t ? 0.0f : keep;
    }
    if (i < n)
        mask[i] = (uint32_t)agon_rng_u64(&s->rng) < t ? 0.0f : keep;

    const float *restrict x = in->data;
    float *restrict y = out->data;
    for (i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
}

static void dropout_backward(void *state, agon_param *params, const agon_tensor *in,
                             const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                             bool param_grads)
{
    const dropout_state *s = state;
    if (!din)
        return;
    int64_t n = agon_tensor_numel(dout);
    if (s->identity) {
        memcpy(din->data, dout->data, (size_t)n * sizeof(float));
        return;
    }
    const float *restrict mask = s->mask;
    const float *restrict dy = dout->data;
    float *restrict dx = din->data;
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * mask[i];
}

static const agon_layer_ops dropout_ops = {
    sizeof(agon_layer_ops), "dropout", dropout_forward, dropout_backward, free,
};

int agon_net_add_dropout(agon_net *net, float p, agon_rng *rng, agon_error *err)
{
    size_t idx = agon_net_layer_count(net);
    if (!(p >= 0.0f && p < 1.0f))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (dropout): p must be in [0, 1), got %g; use 0 to "
                              "keep everything",
                              idx, (double)p);
    if (!rng)
        return agon_error_set(err, AGON_EINTERNAL,
                              "layer %zu (dropout): no random stream given for the mask", idx);
    agon_shape shape = agon_net_out_shape(net);
    /* The network checked that its layers' batched outputs fit in 64 bits. */
    int64_t n = agon_net_max_batch(net) * agon_shape_numel(&shape);
    float *mask;
    int rc = agon__net_floats(net, &mask, n, err);
    if (rc != 0)
        return rc;
    dropout_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "out of memory adding a dropout layer");
    agon_rng_seed(&s->rng, agon_rng_u64(rng), "dropout");
    /* p < 1, so the product stays below 2^32. */
    s->threshold = (uint32_t)llround((double)p * 4294967296.0);
    s->scale = (float)(1.0 / (1.0 - (double)p));
    s->mask = mask;
    rc = agon_net_add_layer(net, &dropout_ops, s, &shape, 0, NULL, NULL, NULL, err);
    /* The layer owns s from here on, also when registering fails. */
    return rc != 0 ? rc : agon_net_add_rng(net, &s->rng, err);
}
