/* Batch norm, reshape, flatten and dropout layers, and network buffers:
 * forward values against hand-computed ones, running statistics,
 * finite-difference gradients, masks, errors and steady-state allocation. */
#include "test_util.h"

#include <math.h>

#include "agon/nn.h"

#include "alloc_count.h"

/* ---- helpers ------------------------------------------------------------------- */

static agon_net *make_net(int ndim, const int64_t *dims, int64_t max_batch)
{
    agon_error err = {0};
    agon_shape s = agon_shape_make(ndim, dims);
    agon_net *net = agon_net_create(&s, max_batch, &err);
    if (!net)
        fail_msg("agon_net_create: %s", err.message);
    return net;
}

static void ok(int rc, const agon_error *err)
{
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err->message);
}

static agon_tensor batch_tensor(float *data, const agon_net *net, int64_t batch)
{
    agon_shape s = agon_net_in_shape(net);
    agon_tensor t = {data, agon_shape_batched(batch, &s)};
    return t;
}

static agon_tensor out_tensor(float *data, const agon_net *net, int64_t batch)
{
    agon_shape s = agon_net_out_shape(net);
    agon_tensor t = {data, agon_shape_batched(batch, &s)};
    return t;
}

static int64_t sample_numel_in(const agon_net *net)
{
    agon_shape s = agon_net_in_shape(net);
    return agon_shape_numel(&s);
}

static int64_t sample_numel_out(const agon_net *net)
{
    agon_shape s = agon_net_out_shape(net);
    return agon_shape_numel(&s);
}

static void assert_close(double got, double want, double tol, const char *what, int i)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s[%d] = %.9g, expected %.9g", what, i, got, want);
}

static agon_net *bn_net(int ndim, const int64_t *dims, int64_t max_batch, bool affine)
{
    agon_error err = {0};
    agon_net *net = make_net(ndim, dims, max_batch);
    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, affine, &err), &err);
    assert_string_equal(agon_net_layer_type(net, 0), "batchnorm");
    return net;
}

/* ---- batch norm: values ------------------------------------------------------------ */

#define BN_EPS 1e-5

/* BatchNorm1d over 3 features, batch 4 (max_batch 6, so that the batch is
 * a smaller view).  Per feature, x and its statistics by hand:
 *   f0: 1, 2, 3, 4      mean 2.5  biased var 1.25  unbiased 5/3
 *   f1: -1, 1, -1, 1    mean 0    biased var 1     unbiased 4/3
 *   f2: 10, 10, 10, 14  mean 11   biased var 3     unbiased 4
 * Second batch:
 *   f0: 0, 0, 2, 2      mean 1    biased var 1     unbiased 4/3
 *   f1: 3, 3, 3, 3      mean 3    biased var 0     unbiased 0
 *   f2: -2, 0, 2, 4     mean 1    biased var 5     unbiased 20/3
 * Running statistics with momentum 0.1 from (0, 1):
 *   after 1: mean 0.1 m1 = (0.25, 0, 1.1)
 *            var 0.9 + 0.1 u1 = (1.0666667, 1.0333333, 1.3)
 *   after 2: mean 0.9 (0.25, 0, 1.1) + 0.1 (1, 3, 1) = (0.325, 0.3, 1.09)
 *            var 0.9 (1.0666667, 1.0333333, 1.3) + 0.1 (4/3, 0, 20/3)
 *              = (1.0933333, 0.93, 1.8366667) */
static const float bn1_x1[4 * 3] = {1, -1, 10, 2, 1, 10, 3, -1, 10, 4, 1, 14};
static const float bn1_x2[4 * 3] = {0, 3, -2, 0, 3, 0, 2, 3, 2, 2, 3, 4};
static const double bn1_gamma[3] = {2.0, 0.5, -1.0};
static const double bn1_beta[3] = {0.1, -1.0, 0.0};

static void set_affine(agon_net *net, const double *gamma, const double *beta, int64_t c)
{
    for (int64_t i = 0; i < c; i++) {
        agon_net_param(net, 0)->value.data[i] = (float)gamma[i];
        agon_net_param(net, 1)->value.data[i] = (float)beta[i];
    }
}

static void test_bn1d_train_values(void **st)
{
    (void)st;
    agon_net *net = bn_net(1, (int64_t[]){3}, 6, true);
    assert_int_equal(agon_net_param_count(net), 2);
    assert_string_equal(agon_net_param(net, 0)->name, "0.weight");
    assert_string_equal(agon_net_param(net, 1)->name, "0.bias");
    for (int c = 0; c < 3; c++) {
        assert_true(agon_net_param(net, 0)->value.data[c] == 1.0f);
        assert_true(agon_net_param(net, 1)->value.data[c] == 0.0f);
    }
    set_affine(net, bn1_gamma, bn1_beta, 3);

    float x[12];
    memcpy(x, bn1_x1, sizeof x);
    agon_tensor in = batch_tensor(x, net, 4);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_int_equal(y->shape.dim[0], 4);
    const double mean1[3] = {2.5, 0.0, 11.0}, var1[3] = {1.25, 1.0, 3.0};
    for (int i = 0; i < 12; i++) {
        int c = i % 3;
        double want = bn1_gamma[c] * (x[i] - mean1[c]) / sqrt(var1[c] + BN_EPS) + bn1_beta[c];
        assert_close(y->data[i], want, 1e-5, "y1", i);
    }
    float *rm = agon_net_buffer(net, 0)->value.data;
    float *rv = agon_net_buffer(net, 1)->value.data;
    const double rm1[3] = {0.25, 0.0, 1.1}, rv1[3] = {1.0666667, 1.0333333, 1.3};
    for (int c = 0; c < 3; c++) {
        assert_close(rm[c], rm1[c], 1e-6, "running_mean after 1", c);
        assert_close(rv[c], rv1[c], 1e-6, "running_var after 1", c);
    }

    memcpy(x, bn1_x2, sizeof x);
    y = agon_net_forward(net, &in, true);
    const double mean2[3] = {1.0, 3.0, 1.0}, var2[3] = {1.0, 0.0, 5.0};
    for (int i = 0; i < 12; i++) {
        int c = i % 3;
        double want = bn1_gamma[c] * (x[i] - mean2[c]) / sqrt(var2[c] + BN_EPS) + bn1_beta[c];
        assert_close(y->data[i], want, 1e-5, "y2", i);
    }
    /* A constant feature normalises to exactly beta. */
    assert_true(y->data[1] == -1.0f && y->data[10] == -1.0f);
    const double rm2[3] = {0.325, 0.3, 1.09}, rv2[3] = {1.0933333, 0.93, 1.8366667};
    for (int c = 0; c < 3; c++) {
        assert_close(rm[c], rm2[c], 1e-6, "running_mean after 2", c);
        assert_close(rv[c], rv2[c], 1e-6, "running_var after 2", c);
    }

    /* Evaluation mode: the running statistics, which it leaves alone. */
    float xe[2 * 3] = {1.0f, -2.0f, 3.0f, 0.5f, 0.3f, -4.0f};
    agon_tensor ine = batch_tensor(xe, net, 2);
    y = agon_net_forward(net, &ine, false);
    for (int i = 0; i < 6; i++) {
        int c = i % 3;
        double want = bn1_gamma[c] * (xe[i] - rm2[c]) / sqrt(rv2[c] + BN_EPS) + bn1_beta[c];
        assert_close(y->data[i], want, 1e-5, "eval y", i);
    }
    for (int c = 0; c < 3; c++) {
        assert_close(rm[c], rm2[c], 1e-6, "running_mean after eval", c);
        assert_close(rv[c], rv2[c], 1e-6, "running_var after eval", c);
    }
    agon_net_destroy(net);
}

/* BatchNorm2d over 2 channels of 1x2 images, batch 2: each channel's
 * statistics run over batch and width (4 values):
 *   c0: 1, 3 | 5, 7      mean 4  biased var 5  unbiased 20/3
 *   c1: -2, 2 | 0, 0     mean 0  biased var 2  unbiased 8/3
 * running after one step: mean (0.4, 0), var (0.9 + 2/3, 0.9 + 0.8/3)
 *   = (1.5666667, 1.1666667). */
static void test_bn2d_train_eval_values(void **st)
{
    (void)st;
    agon_net *net = bn_net(3, (int64_t[]){2, 1, 2}, 2, true);
    const double gamma[2] = {1.5, -0.5}, beta[2] = {0.25, 2.0};
    set_affine(net, gamma, beta, 2);
    /* [n][c][w] */
    float x[8] = {1, 3, -2, 2, 5, 7, 0, 0};
    agon_tensor in = batch_tensor(x, net, 2);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_int_equal(y->shape.ndim, 4);
    const double mean[2] = {4.0, 0.0}, var[2] = {5.0, 2.0};
    for (int i = 0; i < 8; i++) {
        int c = (i / 2) % 2;
        double want = gamma[c] * (x[i] - mean[c]) / sqrt(var[c] + BN_EPS) + beta[c];
        assert_close(y->data[i], want, 1e-5, "y", i);
    }
    const double rm[2] = {0.4, 0.0}, rv[2] = {1.5666667, 1.1666667};
    for (int c = 0; c < 2; c++) {
        assert_close(agon_net_buffer(net, 0)->value.data[c], rm[c], 1e-6, "running_mean", c);
        assert_close(agon_net_buffer(net, 1)->value.data[c], rv[c], 1e-6, "running_var", c);
    }
    float xe[4] = {0.4f, 1.0f, 3.0f, -1.0f};
    agon_tensor ine = batch_tensor(xe, net, 1);
    y = agon_net_forward(net, &ine, false);
    for (int i = 0; i < 4; i++) {
        int c = i / 2;
        double want = gamma[c] * (xe[i] - rm[c]) / sqrt(rv[c] + BN_EPS) + beta[c];
        assert_close(y->data[i], want, 1e-5, "eval y", i);
    }
    agon_net_destroy(net);
}

/* A reference in double for larger shapes: channels whose mean is far
 * from zero relative to their spread (the case a one-pass E[x^2] - E[x]^2
 * in float gets wrong), rows long enough for the vectorised sums plus a
 * tail, and a batch smaller than max_batch after a full one. */
static void test_bn_matches_reference(void **st)
{
    (void)st;
    const int64_t C = 3, S = 21, N = 5;
    agon_net *net = bn_net(3, (int64_t[]){C, 3, 7}, 8, false);
    agon_rng rng;
    agon_rng_seed(&rng, 5, "x");
    float full[8 * 3 * 21];
    agon_rng_fill_uniform(&rng, full, sizeof full / sizeof full[0], -1.0f, 1.0f);
    agon_tensor in_full = batch_tensor(full, net, 8);
    agon_net_forward(net, &in_full, true);

    float x[5 * 3 * 21];
    const double offset[3] = {1000.0, -3.0, 0.0}, spread[3] = {0.05, 2.0, 1e-2};
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < S; i++)
                x[(n * C + c) * S + i] =
                    (float)(offset[c] + spread[c] * (2.0 * agon_rng_uniform(&rng) - 1.0));
    agon_tensor in = batch_tensor(x, net, N);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    for (int64_t c = 0; c < C; c++) {
        double m = 0.0, v = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++)
                m += x[(n * C + c) * S + i];
        m /= (double)(N * S);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                double d = x[(n * C + c) * S + i] - m;
                v += d * d;
            }
        v /= (double)(N * S);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (n * C + c) * S + i;
                /* A mean near 1000 is held in float (rounding 3e-5),
                 * which normalisation by a std of 0.03 magnifies to 1e-3. */
                double tol = offset[c] > 100.0 ? 1e-2 : 1e-4;
                assert_close(y->data[k], (x[k] - m) / sqrt(v + BN_EPS), tol, "y", (int)k);
            }
    }
    agon_net_destroy(net);
}

/* Without affine there are no parameters: the output is the normalised
 * input; running statistics are still kept. */
static void test_bn_no_affine(void **st)
{
    (void)st;
    agon_net *net = bn_net(1, (int64_t[]){3}, 4, false);
    assert_int_equal(agon_net_param_count(net), 0);
    assert_int_equal(agon_net_buffer_count(net), 2);
    float x[12];
    memcpy(x, bn1_x1, sizeof x);
    agon_tensor in = batch_tensor(x, net, 4);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    const double mean1[3] = {2.5, 0.0, 11.0}, var1[3] = {1.25, 1.0, 3.0};
    for (int i = 0; i < 12; i++) {
        int c = i % 3;
        assert_close(y->data[i], (x[i] - mean1[c]) / sqrt(var1[c] + BN_EPS), 1e-5, "y", i);
    }
    assert_close(agon_net_buffer(net, 0)->value.data[2], 1.1, 1e-6, "running_mean", 2);
    agon_net_destroy(net);
}

/* Batch 1 through BatchNorm1d in training mode is a user error that must
 * not crash: the variance is 0, the output beta, the input gradient 0, and
 * running_var keeps its value. */
static void test_bn_single_value_per_channel(void **st)
{
    (void)st;
    agon_net *net = bn_net(1, (int64_t[]){2}, 4, true);
    const double gamma[2] = {3.0, 1.0}, beta[2] = {0.5, -0.5};
    set_affine(net, gamma, beta, 2);
    float x[2] = {7.0f, -2.0f};
    agon_tensor in = batch_tensor(x, net, 1);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_true(y->data[0] == 0.5f && y->data[1] == -0.5f);
    assert_close(agon_net_buffer(net, 0)->value.data[0], 0.7, 1e-6, "running_mean", 0);
    assert_true(agon_net_buffer(net, 1)->value.data[0] == 1.0f);
    float u[2] = {1.0f, -2.0f};
    agon_tensor dout = out_tensor(u, net, 1);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_true(agon_tensor_all_finite(din));
    assert_true(fabsf(din->data[0]) < 1e-6f && fabsf(din->data[1]) < 1e-6f);
    agon_net_destroy(net);
}

/* ---- batch norm: gradients ------------------------------------------------------
 * f = sum(out * r) for a fixed random r, so df/dθ is what backward computes
 * from dout = r.  In training mode every evaluation of f is a training
 * forward (batch statistics; the running statistics it updates do not
 * enter the output), in evaluation mode an evaluation forward. */
typedef struct gc_ctx {
    agon_net *net;
    float *x;
    int64_t batch;
    const float *r;
    bool training;
} gc_ctx;

static double objective(void *vctx, float *ignored, size_t n)
{
    (void)ignored;
    (void)n;
    gc_ctx *c = vctx;
    agon_tensor in = batch_tensor(c->x, c->net, c->batch);
    const agon_tensor *y = agon_net_forward(c->net, &in, c->training);
    double f = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(y); i++)
        f += (double)y->data[i] * (double)c->r[i];
    return f;
}

/* Step 1e-2 on inputs of spread ~1 (per-channel std >= 0.4 by
 * construction): the train-mode output is smooth with third derivatives of
 * order invstd^3 / M, so the central difference is off by ~1e-5, and float
 * rounding in f (~1e-6 over ~100 terms) adds ~1e-4 / 2e-2 = 5e-5 at most.
 * atol 3e-4 + rtol 1e-3 sits above both.  The wrong formulas it has to
 * reject change dx by much more: dropping the sum(dy) or the xhat term of
 * the training backward, or using the evaluation-mode gradient in training
 * mode, moves dx by |mean(r)| or |mean(r xhat)| invstd, ~0.05-0.3 for a
 * random r in [-1, 1] over M <= 30 values; a missing or extra factor of
 * invstd, gamma or M is off by a factor. */
#define GC_EPS 1e-2
#define GC_ATOL 3e-4
#define GC_RTOL 1e-3

static void check_bn_grads(agon_net *net, int64_t batch, bool training, uint64_t seed)
{
    agon_rng rng;
    agon_rng_seed(&rng, seed, "gradcheck");
    int64_t n_in = batch * sample_numel_in(net);
    int64_t n_out = batch * sample_numel_out(net);
    float *x = malloc((size_t)n_in * sizeof(float));
    float *r = malloc((size_t)n_out * sizeof(float));
    agon_rng_fill_uniform(&rng, x, (size_t)n_in, -2.0f, 2.0f);
    agon_rng_fill_uniform(&rng, r, (size_t)n_out, -1.0f, 1.0f);

    gc_ctx ctx = {net, x, batch, r, training};
    agon_net_zero_grad(net);
    objective(&ctx, NULL, 0);
    agon_tensor dout = out_tensor(r, net, batch);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_non_null(din);
    float *g = malloc((size_t)n_in * sizeof(float));
    memcpy(g, din->data, (size_t)n_in * sizeof(float));
    double gsq = 0.0;
    for (int64_t i = 0; i < n_in; i++)
        gsq += (double)g[i] * g[i];
    assert_true(gsq > 1e-4);
    agon_test_check_grad(objective, &ctx, x, (size_t)n_in, g, GC_EPS, GC_ATOL, GC_RTOL);
    free(g);

    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        int64_t np = agon_tensor_numel(&prm->value);
        float *pg = malloc((size_t)np * sizeof(float));
        memcpy(pg, prm->grad.data, (size_t)np * sizeof(float));
        double psq = 0.0;
        for (int64_t i = 0; i < np; i++)
            psq += (double)pg[i] * pg[i];
        assert_true(psq > 1e-4);
        agon_test_check_grad(objective, &ctx, prm->value.data, (size_t)np, pg, GC_EPS,
                             GC_ATOL, GC_RTOL);
        free(pg);
    }
    free(x);
    free(r);
}

/* Non-trivial gamma and beta, and for evaluation mode running statistics
 * that are neither 0 / 1 nor the batch's own. */
static agon_net *bn_grad_net(int ndim, const int64_t *dims, int64_t max_batch, uint64_t seed)
{
    agon_net *net = bn_net(ndim, dims, max_batch, true);
    agon_rng rng;
    agon_rng_seed(&rng, seed, "params");
    int64_t C = dims[0];
    for (int64_t c = 0; c < C; c++) {
        double m = 0.5 + agon_rng_uniform(&rng);
        agon_net_param(net, 0)->value.data[c] = (float)(agon_rng_uniform(&rng) < 0.5 ? -m : m);
        agon_net_param(net, 1)->value.data[c] = (float)(2.0 * agon_rng_uniform(&rng) - 1.0);
    }
    int64_t n = max_batch * sample_numel_in(net);
    float *x = malloc((size_t)n * sizeof(float));
    for (int it = 0; it < 5; it++) {
        agon_rng_fill_uniform(&rng, x, (size_t)n, -1.0f, 3.0f);
        agon_tensor in = batch_tensor(x, net, max_batch);
        agon_net_forward(net, &in, true);
    }
    free(x);
    return net;
}

static void test_bn1d_grads(void **st)
{
    (void)st;
    agon_net *net = bn_grad_net(1, (int64_t[]){5}, 6, 1);
    check_bn_grads(net, 6, true, 11);
    check_bn_grads(net, 4, true, 12);
    check_bn_grads(net, 4, false, 13);
    agon_net_destroy(net);
}

static void test_bn2d_grads(void **st)
{
    (void)st;
    /* 10 values per channel and sample: the vectorised row sums and their
     * scalar tail both take part. */
    agon_net *net = bn_grad_net(3, (int64_t[]){3, 2, 5}, 3, 2);
    check_bn_grads(net, 3, true, 21);
    check_bn_grads(net, 2, true, 22);
    check_bn_grads(net, 3, false, 23);
    agon_net_destroy(net);

    /* [C, L] is BatchNorm1d over channels with a length. */
    net = bn_grad_net(2, (int64_t[]){2, 3}, 4, 3);
    check_bn_grads(net, 4, true, 24);
    check_bn_grads(net, 4, false, 25);
    agon_net_destroy(net);
}

/* Layers wide enough to be processed in several channel blocks, the last
 * one partial, against a double reference of the forward and of the
 * training backward dx = gamma invstd / M (M dy - sum(dy) - xhat sum(dy xhat)),
 * dgamma = sum(dy xhat), dbeta = sum(dy). */
static void check_bn_reference(int ndim, const int64_t *dims, int64_t batch, uint64_t seed)
{
    agon_net *net = bn_grad_net(ndim, dims, batch, seed);
    int64_t C = dims[0], per = sample_numel_in(net), S = per / C, M = batch * S;
    size_t n = (size_t)(batch * per);
    float *x = malloc(n * sizeof(float)), *u = malloc(n * sizeof(float));
    float *y = malloc(n * sizeof(float));
    agon_rng rng;
    agon_rng_seed(&rng, seed, "x");
    agon_rng_fill_uniform(&rng, x, n, -1.0f, 2.0f);
    agon_rng_fill_uniform(&rng, u, n, -1.0f, 1.0f);
    agon_net_zero_grad(net);
    agon_tensor in = batch_tensor(x, net, batch);
    memcpy(y, agon_net_forward(net, &in, true)->data, n * sizeof(float));
    agon_tensor dout = out_tensor(u, net, batch);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    const float *gamma = agon_net_param(net, 0)->value.data;
    const float *beta = agon_net_param(net, 1)->value.data;
    for (int64_t c = 0; c < C; c++) {
        double mean = 0.0, var = 0.0, sdy = 0.0, sdyx = 0.0;
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < S; i++)
                mean += x[(b * C + c) * S + i];
        mean /= (double)M;
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < S; i++) {
                double d = x[(b * C + c) * S + i] - mean;
                var += d * d;
            }
        var /= (double)M;
        double inv = 1.0 / sqrt(var + BN_EPS);
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (b * C + c) * S + i;
                sdy += u[k];
                sdyx += u[k] * (x[k] - mean) * inv;
            }
        assert_close(agon_net_param(net, 0)->grad.data[c], sdyx, 1e-4, "dgamma", (int)c);
        assert_close(agon_net_param(net, 1)->grad.data[c], sdy, 1e-4, "dbeta", (int)c);
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < S; i++) {
                int64_t k = (b * C + c) * S + i;
                double xhat = (x[k] - mean) * inv;
                assert_close(y[k], gamma[c] * xhat + beta[c], 1e-5, "y", (int)k);
                double dx = gamma[c] * inv / (double)M * ((double)M * u[k] - sdy - xhat * sdyx);
                assert_close(din->data[k], dx, 1e-5, "dx", (int)k);
            }
    }

    /* Evaluation mode over the same blocks. */
    const agon_tensor *ye = agon_net_forward(net, &in, false);
    memcpy(y, ye->data, n * sizeof(float));
    din = agon_net_backward(net, &dout, false, true);
    const float *rm = agon_net_buffer(net, 0)->value.data;
    const float *rv = agon_net_buffer(net, 1)->value.data;
    for (size_t k = 0; k < n; k++) {
        int64_t c = (int64_t)(k / (size_t)S) % C;
        double inv = 1.0 / sqrt(rv[c] + BN_EPS);
        assert_close(y[k], gamma[c] * (x[k] - rm[c]) * inv + beta[c], 1e-5, "eval y", (int)k);
        assert_close(din->data[k], gamma[c] * inv * u[k], 1e-5, "eval dx", (int)k);
    }
    free(x);
    free(u);
    free(y);
    agon_net_destroy(net);
}

static void test_bn_many_channels(void **st)
{
    (void)st;
    check_bn_reference(1, (int64_t[]){2100}, 5, 1);
    check_bn_reference(2, (int64_t[]){700, 3}, 5, 2);
    check_bn_reference(3, (int64_t[]){5, 40, 40}, 3, 3);
}

/* What the game does with D: forward a real batch, backward, forward a fake
 * batch, backward, with parameter gradients accumulating.  The second
 * backward must use the statistics of the second forward: its input
 * gradient is bit for bit that of a fresh network that only saw the fake
 * batch, and the parameter gradients are the sum of the two passes taken
 * on fresh networks. */
static void test_bn_backward_uses_last_forward(void **st)
{
    (void)st;
    enum { B = 4, F = 3 };
    agon_net *a = bn_grad_net(1, (int64_t[]){F}, B, 4);
    agon_net *b = bn_grad_net(1, (int64_t[]){F}, B, 4);
    agon_net *c = bn_grad_net(1, (int64_t[]){F}, B, 4);
    float x1[B * F], x2[B * F], u1[B * F], u2[B * F];
    agon_rng rng;
    agon_rng_seed(&rng, 6, "x");
    agon_rng_fill_uniform(&rng, x1, B * F, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, x2, B * F, 2.0f, 5.0f);
    agon_rng_fill_uniform(&rng, u1, B * F, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u2, B * F, -1.0f, 1.0f);
    agon_tensor in1 = batch_tensor(x1, a, B), in2 = batch_tensor(x2, a, B);
    agon_tensor d1 = out_tensor(u1, a, B), d2 = out_tensor(u2, a, B);

    agon_net_zero_grad(a);
    agon_net_forward(a, &in1, true);
    agon_net_backward(a, &d1, true, true);
    agon_net_forward(a, &in2, true);
    float din_a[B * F];
    memcpy(din_a, agon_net_backward(a, &d2, true, true)->data, sizeof din_a);

    agon_net_zero_grad(b);
    agon_net_forward(b, &in1, true);
    agon_net_backward(b, &d1, true, false);
    agon_net_zero_grad(c);
    agon_net_forward(c, &in2, true);
    const agon_tensor *din_c = agon_net_backward(c, &d2, true, true);

    assert_memory_equal(din_a, din_c->data, sizeof din_a);
    for (size_t p = 0; p < 2; p++) {
        const float *ga = agon_net_param(a, p)->grad.data;
        const float *gb = agon_net_param(b, p)->grad.data;
        const float *gc = agon_net_param(c, p)->grad.data;
        for (int k = 0; k < F; k++) {
            assert_true(gb[k] != 0.0f && gc[k] != 0.0f);
            assert_close(ga[k], (double)gb[k] + gc[k], 1e-6, "accumulated grad", k);
        }
    }

    /* After an evaluation forward, backward is the evaluation one:
     * dx = gamma / sqrt(running_var + eps) dy. */
    agon_net_forward(c, &in2, false);
    const agon_tensor *din = agon_net_backward(c, &d2, false, true);
    for (int i = 0; i < B * F; i++) {
        int k = i % F;
        double g = agon_net_param(c, 0)->value.data[k] /
                   sqrt(agon_net_buffer(c, 1)->value.data[k] + BN_EPS);
        assert_close(din->data[i], g * u2[i], 1e-6, "eval din", i);
    }
    agon_net_destroy(a);
    agon_net_destroy(b);
    agon_net_destroy(c);
}

/* Batch groups: a training forward of [x1; x2] with 2 groups is exactly a
 * forward of x1 followed by one of x2 (outputs and running statistics, bit
 * for bit), and its backward is the two backward passes, each with its own
 * part's statistics (gradients accumulated in the same order). */
static void test_bn_batch_groups(void **st)
{
    (void)st;
    enum { H = 3, F = 2 * 3 * 3 };
    const int64_t dims[3] = {2, 3, 3};
    agon_net *net = bn_grad_net(3, dims, 2 * H, 7);
    agon_net *ref = bn_grad_net(3, dims, 2 * H, 7);
    assert_int_equal(agon_net_batch_groups(net), 1);
    agon_net_set_batch_groups(net, 2);
    assert_int_equal(agon_net_batch_groups(net), 2);

    float x[2 * H * F], u[2 * H * F];
    agon_rng rng;
    agon_rng_seed(&rng, 8, "x");
    agon_rng_fill_uniform(&rng, x, H * F, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, x + H * F, H * F, 1.0f, 4.0f);
    agon_rng_fill_uniform(&rng, u, 2 * H * F, -1.0f, 1.0f);

    agon_net_zero_grad(net);
    agon_tensor in = batch_tensor(x, net, 2 * H);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    float y_net[2 * H * F], din_net[2 * H * F];
    memcpy(y_net, y->data, sizeof y_net);
    agon_tensor dout = out_tensor(u, net, 2 * H);
    memcpy(din_net, agon_net_backward(net, &dout, true, true)->data, sizeof din_net);

    float y_ref[2 * H * F], din_ref[2 * H * F];
    agon_net_zero_grad(ref);
    for (int g = 0; g < 2; g++) {
        agon_tensor half = batch_tensor(x + g * H * F, ref, H);
        memcpy(y_ref + g * H * F, agon_net_forward(ref, &half, true)->data,
               H * F * sizeof(float));
        agon_tensor dhalf = out_tensor(u + g * H * F, ref, H);
        memcpy(din_ref + g * H * F, agon_net_backward(ref, &dhalf, true, true)->data,
               H * F * sizeof(float));
    }
    assert_memory_equal(y_net, y_ref, sizeof y_net);
    assert_memory_equal(din_net, din_ref, sizeof din_net);
    for (size_t p = 0; p < 2; p++)
        assert_memory_equal(agon_net_param(net, p)->grad.data, agon_net_param(ref, p)->grad.data,
                            2 * sizeof(float));
    for (size_t b = 0; b < 2; b++)
        assert_memory_equal(agon_net_buffer(net, b)->value.data,
                            agon_net_buffer(ref, b)->value.data, 2 * sizeof(float));

    /* Both parts normalised together would differ: the halves have
     * different means. */
    agon_net_set_batch_groups(ref, 1);
    in = batch_tensor(x, ref, 2 * H);
    assert_memory_not_equal(agon_net_forward(ref, &in, true)->data, y_net, sizeof y_net);

    /* Evaluation mode does not depend on groups. */
    agon_net_forward(ref, &in, false);
    memcpy(y_ref, agon_net_forward(ref, &in, false)->data, sizeof y_ref);
    for (size_t b = 0; b < 2; b++)
        memcpy(agon_net_buffer(net, b)->value.data, agon_net_buffer(ref, b)->value.data,
               2 * sizeof(float));
    in = batch_tensor(x, net, 2 * H);
    assert_memory_equal(agon_net_forward(net, &in, false)->data, y_ref, sizeof y_ref);

    /* And the groups' gradients against finite differences. */
    check_bn_grads(net, 2 * H, true, 31);
    agon_net_destroy(net);
    agon_net_destroy(ref);

    /* At least 3 values per group: with 2, the output is +-gamma + beta
     * whatever x is, and the input gradient (almost) vanishes. */
    net = bn_grad_net(1, (int64_t[]){4}, 9, 8);
    agon_net_set_batch_groups(net, 2);
    check_bn_grads(net, 8, true, 32);
    agon_net_set_batch_groups(net, 3);
    check_bn_grads(net, 9, true, 33);
    agon_net_destroy(net);
}

/* ---- buffers -------------------------------------------------------------------- */

static void noop_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    memcpy(out->data, in->data, (size_t)agon_tensor_numel(in) * sizeof(float));
}

static void noop_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    if (din)
        memcpy(din->data, dout->data, (size_t)agon_tensor_numel(dout) * sizeof(float));
}

static const agon_layer_ops noop_ops = {
    sizeof(agon_layer_ops), "noop", noop_forward, noop_backward, NULL,
};

static void test_buffers(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    agon_net *net = make_net(3, (int64_t[]){2, 4, 4}, 3);

    /* A buffer belongs to a layer. */
    agon_shape s3 = agon_shape_make(1, (int64_t[]){3});
    agon_tensor t = {0};
    assert_int_equal(agon_net_add_buffer(net, "count", &s3, &t, &err), AGON_EINTERNAL);
    assert_string_equal(err.message,
                        "buffer 'count': a buffer belongs to a layer; add the layer first");
    assert_int_equal(agon_net_buffer_count(net), 0);
    assert_null(agon_net_buffer(net, 0));

    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), &err);
    ok(agon_net_add_flatten(net, &err), &err);
    ok(agon_net_add_linear(net, 5, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, false, &err), &err);
    agon_shape same = agon_net_out_shape(net);
    ok(agon_net_add_layer(net, &noop_ops, NULL, &same, 0, NULL, NULL, NULL, &err), &err);
    agon_shape s23 = agon_shape_make(2, (int64_t[]){2, 3});
    ok(agon_net_add_buffer(net, "count", &s23, &t, &err), &err);

    static const char *const names[] = {"0.running_mean", "0.running_var", "3.running_mean",
                                        "3.running_var", "4.count"};
    static const int64_t sizes[] = {2, 2, 5, 5, 6};
    assert_int_equal(agon_net_buffer_count(net), 5);
    for (size_t i = 0; i < 5; i++) {
        agon_buffer *b = agon_net_buffer(net, i);
        assert_non_null(b);
        assert_string_equal(b->name, names[i]);
        assert_int_equal(agon_tensor_numel(&b->value), sizes[i]);
        float init = strstr(b->name, "running_var") ? 1.0f : 0.0f;
        for (int64_t k = 0; k < sizes[i]; k++)
            assert_true(b->value.data[k] == init);
    }
    assert_null(agon_net_buffer(net, 5));
    agon_error_clear(&err);
    agon_buffer *cb = agon_net_buffer(net, 4);
    assert_ptr_equal(cb->value.data, t.data);
    assert_true(agon_shape_equal(&cb->value.shape, &s23));
    /* Buffers are not parameters: optimizers never see them. */
    assert_int_equal(agon_net_param_count(net), 4);

    static const char long_name[] = "a_buffer_name_that_is_far_too_long_for_the_field";
    assert_int_equal(agon_net_add_buffer(net, long_name, &s3, NULL, &err), AGON_EPLUGIN);
    assert_string_equal(err.message,
                        "layer 4 (noop): buffer name "
                        "'a_buffer_name_that_is_far_too_long_for_the_field' is too long; "
                        "'<layer>.<name>' must fit in 47 characters");
    agon_error_clear(&err);
    agon_shape bad = agon_shape_make(2, (int64_t[]){2, 0});
    assert_int_equal(agon_net_add_buffer(net, "b", &bad, NULL, &err), AGON_EPLUGIN);
    assert_string_equal(err.message, "layer 4 (noop): buffer 'b' has invalid shape [2, 0]");
    assert_int_equal(agon_net_buffer_count(net), 5);

    /* Running statistics live in the buffers: training moves them. */
    float x[3 * 32];
    agon_rng_fill_uniform(&rng, x, 96, 1.0f, 3.0f);
    agon_tensor in = batch_tensor(x, net, 3);
    agon_net_forward(net, &in, true);
    assert_true(agon_net_buffer(net, 0)->value.data[0] > 0.1f);
    assert_true(agon_net_buffer(net, 1)->value.data[0] != 1.0f);
    agon_net_destroy(net);
}

/* ---- batch norm: errors ---------------------------------------------------------- */

static void test_bn_errors(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_net *net = make_net(1, (int64_t[]){4}, 2);
    assert_int_equal(agon_net_add_batchnorm(net, 1.5f, 1e-5f, true, &err), AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (batchnorm): momentum must be in [0, 1], got 1.5");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_batchnorm(net, NAN, 1e-5f, true, &err), AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (batchnorm): momentum must be in [0, 1], got nan");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_batchnorm(net, 0.1f, 0.0f, true, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (batchnorm): eps must be a positive finite number, got 0");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_batchnorm(net, 0.1f, INFINITY, true, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (batchnorm): eps must be a positive finite number, got inf");
    assert_int_equal(agon_net_layer_count(net), 0);
    assert_int_equal(agon_net_buffer_count(net), 0);
    agon_net_destroy(net);

    net = make_net(0, NULL, 2);
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (batchnorm): input shape [] has no channel dimension; batch "
                        "norm needs [features] or [channels, ...]");
    agon_net_destroy(net);
}

/* ---- reshape and flatten ---------------------------------------------------------- */

typedef struct copy_ctx {
    agon_net *net;
    float *x;
    int64_t batch;
    const float *r;
} copy_ctx;

static double copy_objective(void *vctx, float *ignored, size_t n)
{
    (void)ignored;
    (void)n;
    copy_ctx *c = vctx;
    agon_tensor in = batch_tensor(c->x, c->net, c->batch);
    const agon_tensor *y = agon_net_forward(c->net, &in, true);
    double f = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(y); i++)
        f += (double)y->data[i] * c->r[i];
    return f;
}

static void test_reshape_flatten(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_net *net = make_net(3, (int64_t[]){2, 3, 4}, 3);
    ok(agon_net_add_flatten(net, &err), &err);
    agon_shape s = agon_net_out_shape(net);
    assert_int_equal(s.ndim, 1);
    assert_int_equal(s.dim[0], 24);
    agon_shape target = agon_shape_make(3, (int64_t[]){4, 1, 6});
    ok(agon_net_add_reshape(net, &target, &err), &err);
    s = agon_net_out_shape(net);
    assert_true(agon_shape_equal(&s, &target));
    agon_shape target2 = agon_shape_make(2, (int64_t[]){12, 2});
    ok(agon_net_add_reshape(net, &target2, &err), &err);
    ok(agon_net_add_flatten(net, &err), &err);
    /* Flattening a vector is allowed and changes nothing. */
    ok(agon_net_add_flatten(net, &err), &err);
    s = agon_net_out_shape(net);
    assert_int_equal(s.ndim, 1);
    assert_int_equal(s.dim[0], 24);
    assert_int_equal(agon_net_layer_count(net), 5);
    assert_string_equal(agon_net_layer_type(net, 0), "flatten");
    assert_string_equal(agon_net_layer_type(net, 1), "reshape");
    assert_int_equal(agon_net_param_count(net), 0);

    float x[2 * 24], r[2 * 24];
    agon_rng rng;
    agon_rng_seed(&rng, 3, "x");
    agon_rng_fill_uniform(&rng, x, 48, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, r, 48, -1.0f, 1.0f);
    agon_tensor in = batch_tensor(x, net, 2);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_int_equal(y->shape.ndim, 2);
    assert_int_equal(y->shape.dim[0], 2);
    assert_int_equal(y->shape.dim[1], 24);
    assert_memory_equal(y->data, x, sizeof x);
    agon_tensor dout = out_tensor(r, net, 2);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_int_equal(din->shape.ndim, 4);
    assert_int_equal(din->shape.dim[1], 2);
    assert_int_equal(din->shape.dim[3], 4);
    assert_memory_equal(din->data, r, sizeof r);
    float g[48];
    memcpy(g, din->data, sizeof g);
    copy_ctx ctx = {net, x, 2, r};
    agon_test_check_grad(copy_objective, &ctx, x, 48, g, 1e-2, 1e-5, 1e-5);
    agon_net_destroy(net);
}

static void test_reshape_errors(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_net *net = make_net(2, (int64_t[]){2, 3}, 2);
    agon_shape four = agon_shape_make(1, (int64_t[]){4});
    assert_int_equal(agon_net_add_reshape(net, &four, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (reshape): cannot reshape [2, 3] (6 elements) to [4] (4 "
                        "elements); the element counts must match");
    agon_error_clear(&err);
    agon_shape zero = agon_shape_make(3, (int64_t[]){2, 0, 3});
    assert_int_equal(agon_net_add_reshape(net, &zero, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (reshape): output shape [2, 0, 3] is invalid; use at most 4 "
                        "dimensions, each at least 1");
    agon_error_clear(&err);
    agon_shape five = agon_shape_make(5, (int64_t[]){1, 1, 2, 3, 1});
    assert_int_equal(agon_net_add_reshape(net, &five, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (reshape): output shape [1, 1, 2, 3, 1] is invalid; use at "
                        "most 4 dimensions, each at least 1");
    assert_int_equal(agon_net_layer_count(net), 0);
    agon_net_destroy(net);
}

/* ---- dropout ------------------------------------------------------------------ */

static agon_net *dropout_net(int64_t features, int64_t max_batch, float p, uint64_t seed)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    agon_net *net = make_net(1, &features, max_batch);
    ok(agon_net_add_dropout(net, p, &rng, &err), &err);
    assert_string_equal(agon_net_layer_type(net, 0), "dropout");
    return net;
}

/* Inputs in [0.5, 1.5]: never 0, so a 0 in the output is a drop. */
static void fill_positive(float *x, size_t n, uint64_t seed)
{
    agon_rng rng;
    agon_rng_seed(&rng, seed, "x");
    agon_rng_fill_uniform(&rng, x, n, 0.5f, 1.5f);
}

/* The layer's mask stream is registered with the network, and putting
 * back a saved copy of it (as a resumed run does) repeats the masks. */
static void test_dropout_stream_restored(void **st)
{
    (void)st;
    enum { F = 64, B = 8 };
    float x[F * B], first[F * B];
    fill_positive(x, F * B, 6);
    agon_net *net = dropout_net(F, B, 0.5f, 7);
    assert_int_equal(agon_net_rng_count(net), 1);
    assert_null(agon_net_rng(net, 1));
    agon_rng *stream = agon_net_rng(net, 0);
    assert_non_null(stream);
    agon_rng saved = *stream;
    agon_tensor in = batch_tensor(x, net, B);
    memcpy(first, agon_net_forward(net, &in, true)->data, sizeof first);
    assert_memory_not_equal(stream->s, saved.s, sizeof saved.s);
    assert_memory_not_equal(agon_net_forward(net, &in, true)->data, first, sizeof first);
    *stream = saved;
    assert_memory_equal(agon_net_forward(net, &in, true)->data, first, sizeof first);
    agon_net_destroy(net);
}

static void test_dropout_eval_and_p0(void **st)
{
    (void)st;
    enum { F = 50, B = 4 };
    float x[F * B], u[F * B];
    fill_positive(x, F * B, 1);
    fill_positive(u, F * B, 2);
    agon_net *net = dropout_net(F, B, 0.5f, 1);
    agon_tensor in = batch_tensor(x, net, B);
    const agon_tensor *y = agon_net_forward(net, &in, false);
    assert_memory_equal(y->data, x, sizeof x);
    agon_tensor dout = out_tensor(u, net, B);
    assert_memory_equal(agon_net_backward(net, &dout, true, true)->data, u, sizeof u);
    agon_net_destroy(net);

    net = dropout_net(F, B, 0.0f, 1);
    y = agon_net_forward(net, &in, true);
    assert_memory_equal(y->data, x, sizeof x);
    assert_memory_equal(agon_net_backward(net, &dout, true, true)->data, u, sizeof u);
    agon_net_destroy(net);
}

static void test_dropout_train(void **st)
{
    (void)st;
    enum { F = 1000, B = 100, N = F * B };
    const double p = 0.3;
    float *x = malloc(N * sizeof(float));
    float *u = malloc(N * sizeof(float));
    float *y1 = malloc(N * sizeof(float));
    fill_positive(x, N, 3);
    fill_positive(u, N, 4);
    agon_net *net = dropout_net(F, B, (float)p, 5);
    agon_tensor in = batch_tensor(x, net, B);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    long dropped = 0;
    for (int i = 0; i < N; i++) {
        if (y->data[i] == 0.0f) {
            dropped++;
        } else if (fabs(y->data[i] - x[i] / (1.0 - p)) > 1e-6 * fabs(y->data[i])) {
            fail_msg("kept element %d is %.9g, expected %.9g", i, (double)y->data[i],
                     x[i] / (1.0 - p));
        }
    }
    /* Binomial(N, p): sd sqrt(N p (1 - p)) ~ 145; allow 5 sd. */
    double sd = sqrt(N * p * (1.0 - p));
    if (fabs((double)dropped - N * p) > 5.0 * sd)
        fail_msg("%ld of %d dropped, expected %.0f +- %.0f", dropped, N, N * p, 5.0 * sd);
    memcpy(y1, y->data, N * sizeof(float));

    /* Backward applies the same mask. */
    agon_tensor dout = out_tensor(u, net, B);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    for (int i = 0; i < N; i++) {
        double want = y1[i] == 0.0f ? 0.0 : u[i] / (1.0 - p);
        if (fabs(din->data[i] - want) > 1e-6 * fabs(want))
            fail_msg("din[%d] = %.9g, expected %.9g", i, (double)din->data[i], want);
    }

    /* The next forward draws a new mask. */
    y = agon_net_forward(net, &in, true);
    assert_memory_not_equal(y->data, y1, N * sizeof(float));
    agon_net_destroy(net);

    /* The same seed gives the same masks; another seed other ones. */
    net = dropout_net(F, B, (float)p, 5);
    in = batch_tensor(x, net, B);
    assert_memory_equal(agon_net_forward(net, &in, true)->data, y1, N * sizeof(float));
    agon_net_destroy(net);
    net = dropout_net(F, B, (float)p, 6);
    in = batch_tensor(x, net, B);
    assert_memory_not_equal(agon_net_forward(net, &in, true)->data, y1, N * sizeof(float));
    agon_net_destroy(net);
    free(x);
    free(u);
    free(y1);
}

/* Building takes exactly 64 bits from the given stream, so the layer's
 * stream is independent of what the caller draws afterwards. */
static void test_dropout_seeding(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng, ref;
    agon_rng_seed(&rng, 9, "init");
    agon_rng_seed(&ref, 9, "init");
    agon_net *net = make_net(1, (int64_t[]){8}, 2);
    ok(agon_net_add_dropout(net, 0.5f, &rng, &err), &err);
    (void)agon_rng_u64(&ref);
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);
    agon_net_destroy(net);
}

static void test_dropout_errors(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    agon_net *net = make_net(1, (int64_t[]){8}, 2);
    assert_int_equal(agon_net_add_dropout(net, 1.0f, &rng, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (dropout): p must be in [0, 1), got 1; use 0 to keep "
                        "everything");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_dropout(net, -0.25f, &rng, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (dropout): p must be in [0, 1), got -0.25; use 0 to keep "
                        "everything");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_dropout(net, NAN, &rng, &err), AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (dropout): p must be in [0, 1), got nan; use 0 to keep "
                        "everything");
    assert_int_equal(agon_net_layer_count(net), 0);
    agon_net_destroy(net);
}

/* ---- steady state ------------------------------------------------------------------ */

static void test_no_allocation_in_steady_state(void **st)
{
    (void)st;
    enum { MAXB = 8 };
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 2, "init");
    agon_net *net = make_net(3, (int64_t[]){4, 5, 5}, MAXB);
    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), &err);
    ok(agon_net_add_flatten(net, &err), &err);
    ok(agon_net_add_dropout(net, 0.25f, &rng, &err), &err);
    ok(agon_net_add_linear(net, 16, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, false, &err), &err);
    agon_shape rs = agon_shape_make(2, (int64_t[]){4, 4});
    ok(agon_net_add_reshape(net, &rs, &err), &err);
    ok(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), &err);
    ok(agon_net_add_flatten(net, &err), &err);

    float x[MAXB * 100], u[MAXB * 16];
    agon_rng_fill_uniform(&rng, x, MAXB * 100, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u, MAXB * 16, -1.0f, 1.0f);
    agon_tensor in = batch_tensor(x, net, MAXB);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    agon_tensor dout = out_tensor(u, net, MAXB);
    agon_net_backward(net, &dout, true, true);

    agon_arena *arena = agon_net_arena(net);
    size_t blocks = agon_arena_block_count(arena);
    size_t used = agon_arena_used(arena);
    long allocs_before = agon_test_allocs;
    for (int it = 0; it < 60; it++) {
        int64_t b = 2 + it % (MAXB - 1);
        in = batch_tensor(x, net, b);
        y = agon_net_forward(net, &in, it % 3 != 0);
        dout.shape = y->shape;
        agon_net_backward(net, &dout, it % 2 == 0, it % 4 != 1);
    }
    long allocs = agon_test_allocs - allocs_before;
    assert_true(agon_tensor_all_finite(y));
    assert_int_equal(agon_arena_block_count(arena), blocks);
    assert_int_equal(agon_arena_used(arena), used);
    if (AGON_TEST_COUNTS_ALLOCS)
        assert_int_equal(allocs, 0);
    agon_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn1d_train_values),
        cmocka_unit_test(test_bn2d_train_eval_values),
        cmocka_unit_test(test_bn_matches_reference),
        cmocka_unit_test(test_bn_many_channels),
        cmocka_unit_test(test_bn_no_affine),
        cmocka_unit_test(test_bn_single_value_per_channel),
        cmocka_unit_test(test_bn1d_grads),
        cmocka_unit_test(test_bn2d_grads),
        cmocka_unit_test(test_bn_backward_uses_last_forward),
        cmocka_unit_test(test_bn_batch_groups),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_bn_errors),
        cmocka_unit_test(test_reshape_flatten),
        cmocka_unit_test(test_reshape_errors),
        cmocka_unit_test(test_dropout_eval_and_p0),
        cmocka_unit_test(test_dropout_stream_restored),
        cmocka_unit_test(test_dropout_train),
        cmocka_unit_test(test_dropout_seeding),
        cmocka_unit_test(test_dropout_errors),
        cmocka_unit_test(test_no_allocation_in_steady_state),
    };
    return cmocka_run_group_tests_name("nn_layers", tests, NULL, NULL);
}
