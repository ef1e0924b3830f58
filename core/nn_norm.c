/* Batch normalisation (PyTorch's BatchNorm1d/2d semantics, see agon/nn.h).
 *
 * A batch is viewed as [N, C, S]: C channels (dim 0 of the per-sample
 * shape) and S values per channel and sample (the remaining dims; 1 for
 * BatchNorm1d).  Each channel's statistics run over M = N * S values.
 *
 * The work goes block by block of channels.  In a block of nc channels each
 * sample holds L = nc * S contiguous "slots"; both directions take two
 * passes over the block: one for sums, one element-wise pass
 * y = (x - mean) a + beta (forward) or dx = A dy + B (x - mean) + D
 * (backward) with the per-channel coefficients spread over the slots, so no
 * element needs a division.  Blocks are small enough that the second pass
 * finds the block in cache, and wide enough for long vectorised rows.  Sums
 * run down the batch slot by slot in float (element-wise, so they
 * vectorise), and each channel's slots are then added in double: no float
 * sum runs over more than N terms.
 *
 * Backward does not keep the normalised input: it recomputes x - mean from
 * its `in` (the input of the last forward) and the mean and inverse standard
 * deviation that forward saved.  Backward therefore always follows the
 * statistics of the last forward, which is what the game needs when D sees a
 * real batch and a fake batch in turn.
 *
 * With batch groups (agon_net_set_batch_groups) a training forward treats
 * each contiguous part of the batch as a batch of its own, one after the
 * other, and backward takes each part with its part's statistics.
 *
 * A channel with a single value in training mode (batch 1 through
 * BatchNorm1d) has variance 0: the output is beta, the input gradient 0 and
 * running_var is left unchanged (the unbiased estimate would divide by 0).
 * PyTorch refuses such a batch; forward cannot fail here, so model builders
 * must not ask for it. */
#include "agon/nn.h"
#include "nn_int.h"

#include <math.h>
#include <stdlib.h>

/* A block of the batch should stay in L2 between the two passes: about
 * BLOCK_FLOATS values per tensor.  Rows shorter than MIN_SLOTS would spend
 * more time in loop overhead than in arithmetic. */
#define BLOCK_FLOATS 8192
#define MIN_SLOTS 64

typedef struct bn_state {
    const agon_net *net;        /* borrowed: the network owns the layer */
    int64_t channels;
    int64_t inner;              /* S: values per channel and sample */
    float momentum, eps;
    bool affine;
    bool last_training;         /* mode of the last forward */
    int64_t last_groups;        /* batch groups of the last forward */
    agon_tensor running_mean;   /* [C] buffers, owned by the network */
    agon_tensor running_var;
    /* In the network's arena.  mean and invstd are [max_batch, C]: what
     * the last forward normalised each batch group with (there are at most
     * max_batch groups). */
    float *mean;
    float *invstd;
    int64_t slots;              /* capacity of the slot arrays below */
    float *t1, *t2;             /* sums down the batch, per slot */
    float *sm, *sa, *sb, *sd;   /* per-slot coefficients of a pass */
} bn_state;

static int64_t block_channels(const bn_state *s, int64_t batch)
{
    int64_t S = s->inner;
    int64_t nc = BLOCK_FLOATS / (batch * S);
    int64_t min_nc = (MIN_SLOTS + S - 1) / S;
    if (nc < min_nc)
        nc = min_nc;
    if (nc * S > s->slots)
        nc = s->slots / S;
    if (nc > s->channels)
        nc = s->channels;
    return nc < 1 ? 1 : nc;
}

/* Slot capacity for any batch: what block_channels can ask for. */
static int64_t slot_capacity(int64_t C, int64_t S)
{
    int64_t cap = BLOCK_FLOATS > MIN_SLOTS + S - 1 ? BLOCK_FLOATS : MIN_SLOTS + S - 1;
    return cap < C * S ? cap : C * S;
}

/* ---- kernels over one block: `batch` rows of L slots, `stride` apart ---- */

static void zero_slots(float *restrict a, float *restrict b, int64_t L)
{
    for (int64_t i = 0; i < L; i++) {
        a[i] = 0.0f;
        b[i] = 0.0f;
    }
}

/* t1 = sum(x - k), t2 = sum((x - k)^2) down the batch. */
static void block_moments(const float *restrict x, int64_t batch, int64_t stride, int64_t L,
                          const float *restrict k, float *restrict t1, float *restrict t2)
{
    zero_slots(t1, t2, L);
    for (int64_t n = 0; n < batch; n++) {
        const float *restrict xr = x + n * stride;
        for (int64_t i = 0; i < L; i++) {
            float d = xr[i] - k[i];
            t1[i] += d;
            t2[i] += d * d;
        }
    }
}

/* t1 = sum(dy), t2 = sum(dy (x - m)) down the batch. */
static void block_grad_sums(const float *restrict dy, const float *restrict x, int64_t batch,
                            int64_t stride, int64_t L, const float *restrict m,
                            float *restrict t1, float *restrict t2)
{
    zero_slots(t1, t2, L);
    for (int64_t n = 0; n < batch; n++) {
        const float *restrict gr = dy + n * stride, *restrict xr = x + n * stride;
        for (int64_t i = 0; i < L; i++) {
            t1[i] += gr[i];
            t2[i] += gr[i] * (xr[i] - m[i]);
        }
    }
}

/* y = (x - m) a + b.  Subtracting the mean first, rather than folding it
 * into one constant, keeps the output exact where x is close to the mean
 * (a constant channel gives exactly beta). */
static void block_affine(const float *restrict x, float *restrict y, int64_t batch,
                         int64_t stride, int64_t L, const float *restrict m,
                         const float *restrict a, const float *restrict b)
{
    for (int64_t n = 0; n < batch; n++) {
        const float *restrict xr = x + n * stride;
        float *restrict yr = y + n * stride;
        for (int64_t i = 0; i < L; i++)
            yr[i] = (xr[i] - m[i]) * a[i] + b[i];
    }
}

/* dx = dy a + b (x - m) + d. */
static void block_dx(const float *restrict dy, const float *restrict x, float *restrict dx,
                     int64_t batch, int64_t stride, int64_t L, const float *restrict m,
                     const float *restrict a, const float *restrict b, const float *restrict d)
{
    for (int64_t n = 0; n < batch; n++) {
        const float *restrict gr = dy + n * stride, *restrict xr = x + n * stride;
        float *restrict dr = dx + n * stride;
        for (int64_t i = 0; i < L; i++)
            dr[i] = gr[i] * a[i] + b[i] * (xr[i] - m[i]) + d[i];
    }
}

static void block_scale(const float *restrict dy, float *restrict dx, int64_t batch,
                        int64_t stride, int64_t L, const float *restrict a)
{
    for (int64_t n = 0; n < batch; n++) {
        const float *restrict gr = dy + n * stride;
        float *restrict dr = dx + n * stride;
        for (int64_t i = 0; i < L; i++)
            dr[i] = gr[i] * a[i];
    }
}

/* Channel j's S slots of t1 and t2, added in double. */
static void channel_sums(const bn_state *s, int64_t j, double *s1, double *s2)
{
    int64_t S = s->inner;
    const float *r1 = s->t1 + j * S, *r2 = s->t2 + j * S;
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < S; i++) {
        a += r1[i];
        b += r2[i];
    }
    *s1 = a;
    *s2 = b;
}

static void fill(float *p, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
}

/* ---- forward ---- */

/* Training forward of one batch group of `batch` samples: normalises with
 * the group's statistics, saves them in mean / invstd ([C]) and updates the
 * running statistics. */
static void train_group(bn_state *s, const float *gamma, const float *beta, const float *x,
                        float *y, int64_t batch, float *mean, float *invstd)
{
    int64_t C = s->channels, S = s->inner, stride = C * S;
    int64_t nc = block_channels(s, batch);
    float *rm = s->running_mean.data, *rv = s->running_var.data;
    int64_t m = batch * S;
    double inv_m = 1.0 / (double)m;
    double unbias = m > 1 ? (double)m / (double)(m - 1) : 0.0;
    double mom = s->momentum;

    for (int64_t c0 = 0; c0 < C; c0 += nc) {
        int64_t n_c = c0 + nc <= C ? nc : C - c0;
        int64_t L = n_c * S;
        const float *xb = x + c0 * S;
        /* Sums are taken about the channel's first value, which keeps
         * E[d^2] - E[d]^2 clear of cancellation when |mean| >> std. */
        for (int64_t j = 0; j < n_c; j++)
            fill(s->sm + j * S, S, xb[j * S]);
        block_moments(xb, batch, stride, L, s->sm, s->t1, s->t2);

        for (int64_t j = 0; j < n_c; j++) {
            int64_t c = c0 + j;
            double s1, s2;
            channel_sums(s, j, &s1, &s2);
            double d1 = s1 * inv_m;
            double var = s2 * inv_m - d1 * d1;
            if (var < 0.0)
                var = 0.0;
            double mu = (double)s->sm[j * S] + d1;
            double inv = 1.0 / sqrt(var + (double)s->eps);
            mean[c] = (float)mu;
            invstd[c] = (float)inv;
            fill(s->sm + j * S, S, (float)mu);
            fill(s->sa + j * S, S, (float)((gamma ? gamma[c] : 1.0) * inv));
            fill(s->sb + j * S, S, beta ? beta[c] : 0.0f);
            rm[c] = (float)((1.0 - mom) * rm[c] + mom * mu);
            if (m > 1)
                rv[c] = (float)((1.0 - mom) * rv[c] + mom * var * unbias);
        }
        block_affine(xb, y + c0 * S, batch, stride, L, s->sm, s->sa, s->sb);
    }
}

static void eval_forward(bn_state *s, const float *gamma, const float *beta, const float *x,
                         float *y, int64_t batch)
{
    int64_t C = s->channels, S = s->inner, stride = C * S;
    int64_t nc = block_channels(s, batch);
    const float *rm = s->running_mean.data, *rv = s->running_var.data;
    for (int64_t c0 = 0; c0 < C; c0 += nc) {
        int64_t n_c = c0 + nc <= C ? nc : C - c0;
        for (int64_t j = 0; j < n_c; j++) {
            int64_t c = c0 + j;
            double inv = 1.0 / sqrt((double)rv[c] + (double)s->eps);
            s->mean[c] = rm[c];
            s->invstd[c] = (float)inv;
            fill(s->sm + j * S, S, rm[c]);
            fill(s->sa + j * S, S, (float)((gamma ? gamma[c] : 1.0) * inv));
            fill(s->sb + j * S, S, beta ? beta[c] : 0.0f);
        }
        block_affine(x + c0 * S, y + c0 * S, batch, stride, n_c * S, s->sm, s->sa, s->sb);
    }
}

static void bn_forward(void *state, agon_param *params, const agon_tensor *in,
                       agon_tensor *out, bool training)
{
    bn_state *s = state;
    int64_t batch = in->shape.dim[0];
    const float *gamma = s->affine ? params[0].value.data : NULL;
    const float *beta = s->affine ? params[1].value.data : NULL;
    s->last_training = training;
    if (!training) {
        /* Fixed statistics: groups make no difference. */
        s->last_groups = 1;
        eval_forward(s, gamma, beta, in->data, out->data, batch);
        return;
    }
    int64_t groups = agon_net_batch_groups(s->net);
    if (groups < 1 || batch % groups != 0)
        groups = 1;
    s->last_groups = groups;
    int64_t C = s->channels, gb = batch / groups, gstride = gb * C * s->inner;
    for (int64_t g = 0; g < groups; g++)
        train_group(s, gamma, beta, in->data + g * gstride, out->data + g * gstride, gb,
                    s->mean + g * C, s->invstd + g * C);
}

/* ---- backward ---- */

/* Backward of one batch group normalised with mean / invstd ([C]).
 * Training: dx = A/M (M dy - sum(dy) - xhat sum(dy xhat)) with
 * A = gamma invstd and xhat = (x - mean) invstd, that is
 * dx = A dy + B (x - mean) + D with B = -A invstd^2 sum(dy (x - mean)) / M
 * and D = -A sum(dy) / M.  Evaluation: dx = A dy. */
static void backward_group(bn_state *s, agon_param *params, const float *x, const float *dy,
                           float *dx, int64_t batch, const float *mean, const float *invstd,
                           bool param_grads)
{
    int64_t C = s->channels, S = s->inner, stride = C * S;
    int64_t nc = block_channels(s, batch);
    const float *gamma = s->affine ? params[0].value.data : NULL;
    bool want_pgrads = param_grads && s->affine;
    bool train = s->last_training;
    bool need_sums = want_pgrads || (dx && train);
    double inv_m = 1.0 / (double)(batch * S);

    for (int64_t c0 = 0; c0 < C; c0 += nc) {
        int64_t n_c = c0 + nc <= C ? nc : C - c0;
        int64_t L = n_c * S, off = c0 * S;
        for (int64_t j = 0; j < n_c; j++)
            fill(s->sm + j * S, S, mean[c0 + j]);
        if (need_sums)
            block_grad_sums(dy + off, x + off, batch, stride, L, s->sm, s->t1, s->t2);
        for (int64_t j = 0; j < n_c; j++) {
            int64_t c = c0 + j;
            double sdy = 0.0, sdyxc = 0.0;
            if (need_sums)
                channel_sums(s, j, &sdy, &sdyxc);
            double inv = invstd[c];
            if (want_pgrads) {
                params[0].grad.data[c] += (float)(sdyxc * inv);
                params[1].grad.data[c] += (float)sdy;
            }
            if (!dx)
                continue;
            double a = (gamma ? gamma[c] : 1.0) * inv;
            fill(s->sa + j * S, S, (float)a);
            if (train) {
                fill(s->sb + j * S, S, (float)(-a * inv * inv * sdyxc * inv_m));
                fill(s->sd + j * S, S, (float)(-a * sdy * inv_m));
            }
        }
        if (!dx)
            continue;
        if (train)
            block_dx(dy + off, x + off, dx + off, batch, stride, L, s->sm, s->sa, s->sb, s->sd);
        else
            block_scale(dy + off, dx + off, batch, stride, L, s->sa);
    }
}

static void bn_backward(void *state, agon_param *params, const agon_tensor *in,
                        const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                        bool param_grads)
{
    bn_state *s = state;
    if (!din && !(param_grads && s->affine))
        return;
    int64_t C = s->channels;
    int64_t groups = s->last_groups;
    int64_t gb = in->shape.dim[0] / groups, gstride = gb * C * s->inner;
    for (int64_t g = 0; g < groups; g++)
        backward_group(s, params, in->data + g * gstride, dout->data + g * gstride,
                       din ? din->data + g * gstride : NULL, gb, s->mean + g * C,
                       s->invstd + g * C, param_grads);
}

static const agon_layer_ops bn_ops = {
    sizeof(agon_layer_ops), "batchnorm", bn_forward, bn_backward, free,
};

int agon_net_add_batchnorm(agon_net *net, float momentum, float eps, bool affine,
                           agon_error *err)
{
    size_t idx = agon_net_layer_count(net);
    agon_shape shape = agon_net_out_shape(net);
    char buf[128];
    if (shape.ndim < 1) {
        agon_shape_format(&shape, buf, sizeof buf);
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (batchnorm): input shape %s has no channel dimension; "
                              "batch norm needs [features] or [channels, ...]",
                              idx, buf);
    }
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (batchnorm): momentum must be in [0, 1], got %g", idx,
                              (double)momentum);
    if (!(eps > 0.0f) || !isfinite(eps))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (batchnorm): eps must be a positive finite number, "
                              "got %g",
                              idx, (double)eps);

    int64_t C = shape.dim[0];
    int64_t S = agon_shape_numel(&shape) / C;
    int64_t slots = slot_capacity(C, S);
    size_t stats = (size_t)agon_net_max_batch(net) * (size_t)C;
    float *f;
    int rc = agon__net_floats(net, &f, (int64_t)(2 * stats + 6 * (size_t)slots), err);
    if (rc != 0)
        return rc;
    bn_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "out of memory adding a batchnorm layer");
    s->net = net;
    s->channels = C;
    s->inner = S;
    s->momentum = momentum;
    s->eps = eps;
    s->affine = affine;
    s->last_groups = 1;
    s->slots = slots;
    if (f) {    /* a planned network has none */
        s->mean = f;
        s->invstd = f + stats;
        float *p = f + 2 * stats;
        float **slot_arrays[] = {&s->t1, &s->t2, &s->sm, &s->sa, &s->sb, &s->sd};
        for (size_t i = 0; i < sizeof slot_arrays / sizeof slot_arrays[0]; i++, p += slots)
            *slot_arrays[i] = p;
    }

    static const char *const names[] = {"weight", "bias"};
    agon_shape cs = agon_shape_make(1, &C);
    agon_shape shapes[2] = {cs, cs};
    agon_param *params = NULL;
    rc = agon__net_add_layer(net, &bn_ops, s, &shape, affine ? 2 : 0, names, shapes, &params,
                             err);
    if (rc != 0)
        return rc;
    if (affine && params[0].value.data)
        fill(params[0].value.data, C, 1.0f);
    /* The layer is in the network from here on: a failure leaves it without
     * running statistics, and the caller has to destroy the network. */
    if ((rc = agon_net_add_buffer(net, "running_mean", &cs, &s->running_mean, err)) != 0 ||
        (rc = agon_net_add_buffer(net, "running_var", &cs, &s->running_var, err)) != 0)
        return rc;
    fill(s->running_var.data, C, 1.0f);
    return 0;
}
