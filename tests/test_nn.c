/* Networks and their layers: forward values, finite-difference gradient
 * checks of every layer kind, the backward flags, steady-state allocation,
 * initialisation schemes and determinism. */
#include "test_util.h"

#include <errno.h>
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

/* Values in +-[lo, hi]: inputs kept away from 0 so that a finite
 * difference of size eps < lo never crosses a relu kink. */
static void fill_away_from_zero(agon_rng *rng, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) {
        double m = lo + (hi - lo) * agon_rng_uniform(rng);
        x[i] = (float)(agon_rng_uniform(rng) < 0.5 ? -m : m);
    }
}

static agon_tensor batch_tensor(float *data, const agon_net *net, int64_t batch)
{
    agon_shape s = agon_net_in_shape(net);
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

/* ---- gradient checks ------------------------------------------------------------
 * f = sum(out * u) for a fixed random upstream gradient u, so df/dθ is
 * exactly what backward computes when given dout = u. */
typedef struct gc_ctx {
    agon_net *net;
    float *x;           /* the input batch */
    int64_t batch;
    const float *u;     /* upstream gradient, [batch, out] */
} gc_ctx;

static double objective(void *vctx, float *ignored, size_t n)
{
    (void)ignored;
    (void)n;
    gc_ctx *c = vctx;
    agon_tensor in = batch_tensor(c->x, c->net, c->batch);
    const agon_tensor *y = agon_net_forward(c->net, &in, true);
    double f = 0.0;
    int64_t m = agon_tensor_numel(y);
    for (int64_t i = 0; i < m; i++)
        f += (double)y->data[i] * (double)c->u[i];
    return f;
}

/* eps 1e-2: float32 forward passes are noisy at ~1e-7 relative, so a
 * smaller step would drown the difference in rounding.  Central
 * differences of the smooth layers are then off by O(eps^2) ~ 1e-5, and of
 * piecewise-linear ones not at all, well inside atol 3e-4 / rtol 1e-3.  A
 * wrong formula (a missing factor, y instead of 1 - y^2, W instead of W^T,
 * a dropped slope) changes gradients of inputs and weights of order 1 by
 * 0.05 or more, which these tolerances reject. */
#define GC_EPS 1e-2
#define GC_ATOL 3e-4
#define GC_RTOL 1e-3

static void check_net_grads(agon_net *net, int64_t batch, uint64_t seed)
{
    agon_rng rng;
    agon_rng_seed(&rng, seed, "gradcheck");
    int64_t n_in = batch * sample_numel_in(net);
    int64_t n_out = batch * sample_numel_out(net);
    float *x = malloc((size_t)n_in * sizeof(float));
    float *u = malloc((size_t)n_out * sizeof(float));
    fill_away_from_zero(&rng, x, (size_t)n_in, 0.2, 2.0);
    agon_rng_fill_uniform(&rng, u, (size_t)n_out, -1.0f, 1.0f);

    gc_ctx ctx = {net, x, batch, u};
    agon_net_zero_grad(net);
    objective(&ctx, NULL, 0);
    agon_tensor dout = {u, agon_shape_make(1, (int64_t[]){n_out})};
    agon_shape os = agon_net_out_shape(net);
    dout.shape = agon_shape_batched(batch, &os);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_non_null(din);
    assert_int_equal(agon_tensor_numel(din), n_in);
    float *g = malloc((size_t)n_in * sizeof(float));
    memcpy(g, din->data, (size_t)n_in * sizeof(float));
    /* A check against an all-zero gradient would prove little. */
    double gsq = 0.0;
    for (int64_t i = 0; i < n_in; i++)
        gsq += (double)g[i] * g[i];
    assert_true(gsq > 1e-6);
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
        assert_true(psq > 1e-6);
        agon_test_check_grad(objective, &ctx, prm->value.data, (size_t)np, pg, GC_EPS,
                             GC_ATOL, GC_RTOL);
        free(pg);
    }
    free(x);
    free(u);
}

static agon_net *single_linear(bool bias, uint64_t seed)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    agon_net *net = make_net(1, (int64_t[]){4}, 5);
    ok(agon_net_add_linear(net, 3, bias, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    return net;
}

static void test_grad_linear_bias(void **st)
{
    (void)st;
    agon_net *net = single_linear(true, 1);
    assert_int_equal(agon_net_param_count(net), 2);
    check_net_grads(net, 3, 11);
    agon_net_destroy(net);
}

static void test_grad_linear_no_bias(void **st)
{
    (void)st;
    agon_net *net = single_linear(false, 2);
    assert_int_equal(agon_net_param_count(net), 1);
    check_net_grads(net, 3, 12);
    agon_net_destroy(net);
}

static void test_grad_linear_flattens_input(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 3, "init");
    agon_net *net = make_net(2, (int64_t[]){2, 3}, 4);
    ok(agon_net_add_linear(net, 2, true, AGON_INIT_KAIMING_UNIFORM, 0.0f, &rng, &err), &err);
    agon_param *w = agon_net_param(net, 0);
    assert_int_equal(w->value.shape.ndim, 2);
    assert_int_equal(w->value.shape.dim[0], 2);
    assert_int_equal(w->value.shape.dim[1], 6);
    /* Kaiming leaves the bias at zero; give it values so its gradient
     * check is not trivially about a zero parameter. */
    agon_rng_fill_uniform(&rng, agon_net_param(net, 1)->value.data, 2, -0.5f, 0.5f);
    check_net_grads(net, 4, 13);
    agon_net_destroy(net);
}

static agon_net *single_activation(agon_activation act, float slope)
{
    agon_error err = {0};
    agon_net *net = make_net(1, (int64_t[]){7}, 5);
    ok(agon_net_add_activation(net, act, slope, &err), &err);
    assert_int_equal(agon_net_layer_count(net), 1);
    assert_string_equal(agon_net_layer_type(net, 0), agon_activation_name(act));
    return net;
}

static void test_grad_activations(void **st)
{
    (void)st;
    struct {
        agon_activation act;
        float slope;
    } cases[] = {
        {AGON_ACT_RELU, 0.0f},
        {AGON_ACT_LEAKY_RELU, 0.2f},
        {AGON_ACT_LEAKY_RELU, -0.7f},
        {AGON_ACT_TANH, 0.0f},
        {AGON_ACT_SIGMOID, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        agon_net *net = single_activation(cases[i].act, cases[i].slope);
        check_net_grads(net, 3, 20 + i);
        agon_net_destroy(net);
    }
}

/* A custom layer through agon_net_add_layer: y = s * x with a scalar
 * parameter s.  It also records how backward was called. */
typedef struct probe_state {
    int calls;
    bool saw_null_din;
    bool saw_param_grads;
} probe_state;

static int probe_destroyed;

static void probe_forward(void *state, agon_param *params, const agon_tensor *in,
                          agon_tensor *out, bool training)
{
    float s = params[0].value.data[0];
    int64_t n = agon_tensor_numel(in);
    for (int64_t i = 0; i < n; i++)
        out->data[i] = s * in->data[i];
}

static void probe_backward(void *state, agon_param *params, const agon_tensor *in,
                           const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                           bool param_grads)
{
    probe_state *ps = state;
    ps->calls++;
    ps->saw_null_din = din == NULL;
    ps->saw_param_grads = param_grads;
    int64_t n = agon_tensor_numel(in);
    float s = params[0].value.data[0];
    if (param_grads) {
        double acc = 0.0;
        for (int64_t i = 0; i < n; i++)
            acc += (double)dout->data[i] * in->data[i];
        params[0].grad.data[0] += (float)acc;
    }
    if (din) {
        for (int64_t i = 0; i < n; i++)
            din->data[i] = s * dout->data[i];
    }
}

static void probe_destroy(void *state)
{
    probe_destroyed++;
    free(state);
}

static const agon_layer_ops probe_ops = {
    sizeof(agon_layer_ops), "probe", probe_forward, probe_backward, probe_destroy,
};

static probe_state *add_probe(agon_net *net, float scale)
{
    agon_error err = {0};
    probe_state *ps = calloc(1, sizeof *ps);
    static const char *const names[] = {"scale"};
    agon_shape pshape = agon_shape_make(1, (int64_t[]){1});
    agon_shape out = agon_net_out_shape(net);
    agon_param *params = NULL;
    ok(agon_net_add_layer(net, &probe_ops, ps, &out, 1, names, &pshape, &params, &err), &err);
    assert_non_null(params);
    params[0].value.data[0] = scale;
    return ps;
}

/* The whole 3-layer MLP, with a custom layer in front. */
static agon_net *build_mlp(uint64_t seed, int64_t max_batch, probe_state **probe)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    agon_net *net = make_net(1, (int64_t[]){5}, max_batch);
    probe_state *ps = add_probe(net, 0.8f);
    if (probe)
        *probe = ps;
    ok(agon_net_add_linear(net, 8, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_LEAKY_RELU, 0.2f, &err), &err);
    ok(agon_net_add_linear(net, 6, true, AGON_INIT_XAVIER_UNIFORM, 0.0f, &rng, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_TANH, 0.0f, &err), &err);
    ok(agon_net_add_linear(net, 3, false, AGON_INIT_KAIMING_UNIFORM, 1.0f, &rng, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_SIGMOID, 0.0f, &err), &err);
    /* Non-zero biases, so that their gradients check something. */
    agon_rng_fill_uniform(&rng, agon_net_param(net, 4)->value.data, 6, -0.3f, 0.3f);
    return net;
}

/* Seeds for which no pre-activation sits near the leaky_relu kink (the
 * test checks this rather than trusting it). */
#define MLP_SEED 6
#define MLP_X_SEED 30

static void test_grad_mlp(void **st)
{
    (void)st;
    agon_net *net = build_mlp(MLP_SEED, 6, NULL);
    assert_int_equal(agon_net_layer_count(net), 7);
    assert_int_equal(agon_net_param_count(net), 6);

    /* The leaky_relu kink: every pre-activation z = s W x + b of the first
     * linear layer must stay clear of 0 while one coordinate at a time is
     * moved by eps.  Moving x_j shifts z by eps s |W_ij| <= eps s 0.45,
     * W_ij by eps s |x_j| <= eps s 2, b_i by eps, and the probe's scale s
     * by eps |W x|_i; z must exceed the largest of these with room to
     * spare.  A prefix net with the same seed has the same first layers. */
    agon_rng rng;
    agon_rng_seed(&rng, MLP_SEED, "init");
    agon_error err = {0};
    agon_net *prefix = make_net(1, (int64_t[]){5}, 6);
    add_probe(prefix, 0.8f);
    ok(agon_net_add_linear(prefix, 8, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    const float *b1 = agon_net_param(prefix, 2)->value.data;
    agon_rng xr;
    agon_rng_seed(&xr, MLP_X_SEED, "gradcheck");
    float x[4 * 5];
    fill_away_from_zero(&xr, x, 20, 0.2, 2.0);
    agon_tensor in = batch_tensor(x, prefix, 4);
    const agon_tensor *z = agon_net_forward(prefix, &in, true);
    for (int64_t i = 0; i < agon_tensor_numel(z); i++) {
        double wx = fabs(z->data[i] - b1[i % 8]) / 0.8;
        double shift = GC_EPS * fmax(0.8 * 2.0, fmax(1.0, wx));
        if (!(fabs(z->data[i]) > 2.0 * shift))
            fail_msg("pre-activation %lld = %g is too close to the kink; pick another seed",
                     (long long)i, (double)z->data[i]);
    }
    agon_net_destroy(prefix);

    check_net_grads(net, 4, MLP_X_SEED);
    agon_net_destroy(net);
}

/* ---- forward values ------------------------------------------------------------ */

static void test_linear_forward_values(void **st)
{
    (void)st;
    agon_net *net = single_linear(true, 4);
    float *w = agon_net_param(net, 0)->value.data; /* [3, 4] */
    float *b = agon_net_param(net, 1)->value.data;
    float x[5 * 4];
    agon_rng rng;
    agon_rng_seed(&rng, 9, "x");
    agon_rng_fill_uniform(&rng, x, 20, -2.0f, 2.0f);
    agon_tensor in = batch_tensor(x, net, 5);
    const agon_tensor *y = agon_net_forward(net, &in, false);
    assert_int_equal(y->shape.ndim, 2);
    assert_int_equal(y->shape.dim[0], 5);
    assert_int_equal(y->shape.dim[1], 3);
    for (int r = 0; r < 5; r++) {
        for (int o = 0; o < 3; o++) {
            double want = b[o];
            for (int i = 0; i < 4; i++)
                want += (double)x[r * 4 + i] * w[o * 4 + i];
            assert_true(fabs(y->data[r * 3 + o] - want) < 1e-5);
        }
    }
    agon_net_destroy(net);
}

static void test_activation_forward_values(void **st)
{
    (void)st;
    float x[7] = {-1000.0f, -100.0f, -2.5f, -0.5f, 0.75f, 100.0f, 1000.0f};
    struct {
        agon_activation act;
        float slope;
    } cases[] = {{AGON_ACT_RELU, 0}, {AGON_ACT_LEAKY_RELU, 0.1f}, {AGON_ACT_TANH, 0},
                 {AGON_ACT_SIGMOID, 0}};
    for (size_t c = 0; c < 4; c++) {
        agon_net *net = single_activation(cases[c].act, cases[c].slope);
        agon_tensor in = batch_tensor(x, net, 1);
        const agon_tensor *y = agon_net_forward(net, &in, false);
        assert_true(agon_tensor_all_finite(y));
        for (int i = 0; i < 7; i++) {
            double v = x[i], want;
            switch (cases[c].act) {
            case AGON_ACT_RELU:
                want = v > 0 ? v : 0;
                break;
            case AGON_ACT_LEAKY_RELU:
                want = v > 0 ? v : 0.1f * v;
                break;
            case AGON_ACT_TANH:
                want = tanh(v);
                break;
            default:
                want = 1.0 / (1.0 + exp(-v));
                break;
            }
            if (fabs(y->data[i] - want) > 1e-6 * (1.0 + fabs(want)))
                fail_msg("%s(%g) = %.9g, expected %.9g", agon_activation_name(cases[c].act), v,
                         (double)y->data[i], want);
        }
        if (cases[c].act == AGON_ACT_SIGMOID) {
            /* Stable for large |x|: exactly 0 / 1 at the extremes, and the
             * tiny value at -100 (3.7e-44, a float subnormal) not flushed
             * into a NaN. */
            assert_true(y->data[0] == 0.0f);
            assert_true(y->data[6] == 1.0f);
            assert_true(y->data[1] > 0.0f && y->data[1] < 1e-43f);
            /* Backward at the extremes is finite (0). */
            float u[7] = {1, 1, 1, 1, 1, 1, 1};
            agon_tensor dout = {u, y->shape};
            const agon_tensor *din = agon_net_backward(net, &dout, true, true);
            assert_true(agon_tensor_all_finite(din));
            assert_true(din->data[0] == 0.0f && din->data[6] == 0.0f);
        }
        agon_net_destroy(net);
    }
}

static void test_empty_net_passes_through(void **st)
{
    (void)st;
    agon_net *net = make_net(1, (int64_t[]){3}, 2);
    agon_error err = {0};
    ok(agon_net_add_activation(net, AGON_ACT_NONE, 0.0f, &err), &err);
    assert_int_equal(agon_net_layer_count(net), 0);
    float x[3] = {1, -2, 3};
    agon_tensor in = batch_tensor(x, net, 1);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_memory_equal(y->data, x, sizeof x);
    float u[3] = {0.5f, 0.25f, 2};
    agon_tensor dout = {u, in.shape};
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_memory_equal(din->data, u, sizeof u);
    assert_null(agon_net_backward(net, &dout, true, false));
    agon_net_destroy(net);
}

/* ---- batches and backward flags ------------------------------------------------ */

static void test_smaller_batch(void **st)
{
    (void)st;
    agon_net *net = single_linear(true, 6);
    float big[5 * 4], small[2 * 4], u[2 * 3];
    agon_rng rng;
    agon_rng_seed(&rng, 10, "x");
    agon_rng_fill_uniform(&rng, big, 20, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, small, 8, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u, 6, -1.0f, 1.0f);

    /* A full batch first fills every row of the buffers; a later smaller
     * batch must see neither its rows in the output nor in the sums. */
    agon_tensor in_big = batch_tensor(big, net, 5);
    agon_net_forward(net, &in_big, true);
    agon_tensor in = batch_tensor(small, net, 2);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    assert_int_equal(y->shape.dim[0], 2);
    agon_tensor dout = {u, y->shape};
    agon_net_zero_grad(net);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_int_equal(din->shape.dim[0], 2);

    const float *w = agon_net_param(net, 0)->value.data;
    const float *dw = agon_net_param(net, 0)->grad.data;
    const float *db = agon_net_param(net, 1)->grad.data;
    for (int o = 0; o < 3; o++) {
        double sb = 0.0;
        for (int r = 0; r < 2; r++)
            sb += u[r * 3 + o];
        assert_true(fabs(db[o] - sb) < 1e-6);
        for (int i = 0; i < 4; i++) {
            double s = 0.0;
            for (int r = 0; r < 2; r++)
                s += (double)u[r * 3 + o] * small[r * 4 + i];
            assert_true(fabs(dw[o * 4 + i] - s) < 1e-6);
        }
    }
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 4; i++) {
            double s = 0.0;
            for (int o = 0; o < 3; o++)
                s += (double)u[r * 3 + o] * w[o * 4 + i];
            assert_true(fabs(din->data[r * 4 + i] - s) < 1e-6);
        }
    }
    agon_net_destroy(net);
}

static void fill_grads(agon_net *net, float v)
{
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++)
            prm->grad.data[i] = v;
    }
}

static void test_backward_flags(void **st)
{
    (void)st;
    probe_state *probe;
    agon_net *net = build_mlp(7, 4, &probe);
    float x[3 * 5], u[3 * 3];
    agon_rng rng;
    agon_rng_seed(&rng, 40, "x");
    agon_rng_fill_uniform(&rng, x, 15, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u, 9, -1.0f, 1.0f);
    agon_tensor in = batch_tensor(x, net, 3);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    agon_tensor dout = {u, y->shape};

    /* Reference: both flags on. */
    agon_net_zero_grad(net);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_non_null(din);
    assert_false(probe->saw_null_din);
    assert_true(probe->saw_param_grads);
    float din_ref[15];
    memcpy(din_ref, din->data, sizeof din_ref);
    int64_t numel = agon_net_param_numel(net);
    assert_int_equal(numel, 1 + (8 * 5 + 8) + (6 * 8 + 6) + 3 * 6);
    float *grads_ref = malloc((size_t)numel * sizeof(float));
    size_t off = 0;
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        size_t n = (size_t)agon_tensor_numel(&prm->grad);
        memcpy(grads_ref + off, prm->grad.data, n * sizeof(float));
        off += n;
    }

    /* Gradients accumulate: a second backward doubles them (up to
     * rounding: gemm adds its partial products onto the old value). */
    agon_net_backward(net, &dout, true, true);
    off = 0;
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++) {
            double want = 2.0 * grads_ref[off + (size_t)i];
            assert_true(fabs(prm->grad.data[i] - want) <= 1e-6 * (1.0 + fabs(want)));
        }
        off += (size_t)agon_tensor_numel(&prm->grad);
    }

    /* param_grads = false: the generator step through D. */
    fill_grads(net, 7.0f);
    din = agon_net_backward(net, &dout, false, true);
    assert_non_null(din);
    assert_false(probe->saw_param_grads);
    assert_memory_equal(din->data, din_ref, sizeof din_ref);
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++)
            assert_true(prm->grad.data[i] == 7.0f);
    }

    /* want_din = false: the first layer gets no din, the gradients are
     * the same bits. */
    agon_net_zero_grad(net);
    int calls = probe->calls;
    assert_null(agon_net_backward(net, &dout, true, false));
    assert_int_equal(probe->calls, calls + 1);
    assert_true(probe->saw_null_din);
    assert_true(probe->saw_param_grads);
    off = 0;
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        size_t n = (size_t)agon_tensor_numel(&prm->grad);
        assert_memory_equal(prm->grad.data, grads_ref + off, n * sizeof(float));
        off += n;
    }

    /* Both off: nothing to do at all. */
    fill_grads(net, 3.0f);
    calls = probe->calls;
    assert_null(agon_net_backward(net, &dout, false, false));
    assert_int_equal(probe->calls, calls);
    assert_true(agon_net_param(net, 1)->grad.data[0] == 3.0f);

    free(grads_ref);
    int destroyed = probe_destroyed;
    agon_net_destroy(net);
    assert_int_equal(probe_destroyed, destroyed + 1);
}

static void test_no_allocation_in_steady_state(void **st)
{
    (void)st;
    enum { MAXB = 16, IN = 5, OUT = 3 };
    agon_net *net = build_mlp(8, MAXB, NULL);
    float x[MAXB * IN], u[MAXB * OUT];
    agon_rng rng;
    agon_rng_seed(&rng, 50, "x");
    agon_rng_fill_uniform(&rng, x, MAXB * IN, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u, MAXB * OUT, -1.0f, 1.0f);
    agon_arena *arena = agon_net_arena(net);

    /* One warm-up call lets OpenBLAS set up whatever it sets up once. */
    agon_tensor in = batch_tensor(x, net, MAXB);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    agon_tensor dout = {u, y->shape};
    agon_net_backward(net, &dout, true, true);

    size_t blocks = agon_arena_block_count(arena);
    size_t used = agon_arena_used(arena);
    long allocs_before = agon_test_allocs;
    for (int it = 0; it < 100; it++) {
        int64_t b = 1 + it % MAXB;
        in = batch_tensor(x, net, b);
        y = agon_net_forward(net, &in, it % 2 == 0);
        dout.shape = y->shape;
        agon_net_backward(net, &dout, it % 3 != 0, it % 2 == 0);
        agon_net_zero_grad(net);
        (void)agon_net_grad_norm(net);
    }
    long allocs = agon_test_allocs - allocs_before;
    assert_int_equal(agon_arena_block_count(arena), blocks);
    assert_int_equal(agon_arena_used(arena), used);
    if (AGON_TEST_COUNTS_ALLOCS)
        assert_int_equal(allocs, 0);
    agon_net_destroy(net);
}

/* ---- metadata, names and errors ------------------------------------------------- */

static void test_net_metadata(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    agon_net *net = make_net(1, (int64_t[]){2}, 8);
    assert_int_equal(agon_net_max_batch(net), 8);
    agon_shape s = agon_net_out_shape(net);
    assert_int_equal(s.ndim, 1);
    assert_int_equal(s.dim[0], 2);
    ok(agon_net_add_linear(net, 16, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_NONE, 0.0f, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_RELU, 0.0f, &err), &err);
    ok(agon_net_add_linear(net, 1, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    assert_int_equal(agon_net_layer_count(net), 3);
    assert_string_equal(agon_net_layer_type(net, 0), "linear");
    assert_string_equal(agon_net_layer_type(net, 1), "relu");
    assert_string_equal(agon_net_layer_type(net, 2), "linear");
    assert_null(agon_net_layer_type(net, 3));
    assert_int_equal(agon_net_param_count(net), 4);
    assert_string_equal(agon_net_param(net, 0)->name, "0.weight");
    assert_string_equal(agon_net_param(net, 1)->name, "0.bias");
    assert_string_equal(agon_net_param(net, 2)->name, "2.weight");
    assert_string_equal(agon_net_param(net, 3)->name, "2.bias");
    assert_null(agon_net_param(net, 4));
    assert_int_equal(agon_net_param_numel(net), 16 * 2 + 16 + 16 + 1);
    s = agon_net_out_shape(net);
    assert_int_equal(s.ndim, 1);
    assert_int_equal(s.dim[0], 1);
    s = agon_net_in_shape(net);
    assert_int_equal(s.dim[0], 2);

    /* Grad norm: sqrt(3^2 + 4^2) = 5, accumulated over all parameters. */
    fill_grads(net, 0.0f);
    agon_net_param(net, 0)->grad.data[5] = 3.0f;
    agon_net_param(net, 3)->grad.data[0] = -4.0f;
    assert_true(agon_net_grad_norm(net) == 5.0);
    fill_grads(net, 1.0f);
    assert_true(fabs(agon_net_grad_norm(net) - sqrt(65.0)) < 1e-12);
    agon_net_zero_grad(net);
    assert_true(agon_net_grad_norm(net) == 0.0);
    agon_net_destroy(net);
    agon_net_destroy(NULL);
}

static void test_enum_names(void **st)
{
    (void)st;
    static const char *const acts[] = {"none", "relu", "leaky_relu", "tanh", "sigmoid"};
    assert_int_equal(AGON_ACT_COUNT, 5);
    for (int i = 0; i < AGON_ACT_COUNT; i++) {
        assert_string_equal(agon_activation_name((agon_activation)i), acts[i]);
        agon_activation a = AGON_ACT_COUNT;
        assert_int_equal(agon_activation_parse(acts[i], &a), 0);
        assert_int_equal(a, i);
    }
    agon_activation a = AGON_ACT_TANH;
    assert_int_equal(agon_activation_parse("Relu", &a), AGON_ECONFIG);
    assert_int_equal(agon_activation_parse("", &a), AGON_ECONFIG);
    assert_int_equal(agon_activation_parse(NULL, &a), AGON_ECONFIG);
    assert_int_equal(a, AGON_ACT_TANH);
    assert_null(agon_activation_name(AGON_ACT_COUNT));

    static const char *const inits[] = {"default", "xavier_uniform", "kaiming_uniform",
                                        "normal"};
    assert_int_equal(AGON_INIT_COUNT, 4);
    for (int i = 0; i < AGON_INIT_COUNT; i++) {
        assert_string_equal(agon_init_name((agon_init)i), inits[i]);
        agon_init v = AGON_INIT_COUNT;
        assert_int_equal(agon_init_parse(inits[i], &v), 0);
        assert_int_equal(v, i);
    }
    agon_init v;
    assert_int_equal(agon_init_parse("xavier", &v), AGON_ECONFIG);
    assert_null(agon_init_name(AGON_INIT_COUNT));
}

static void test_errors(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_shape s = agon_shape_make(1, (int64_t[]){3});
    assert_null(agon_net_create(&s, 0, &err));
    assert_int_equal(err.code, AGON_ECONFIG);
    assert_string_equal(err.message,
                        "network: max_batch must be at least 1, got 0; set a positive batch "
                        "size");

    agon_error_clear(&err);
    agon_shape bad = agon_shape_make(2, (int64_t[]){3, 0});
    assert_null(agon_net_create(&bad, 4, &err));
    assert_int_equal(err.code, AGON_ECONFIG);
    assert_string_equal(err.message,
                        "network: input shape [3, 0] is invalid; use at most 4 dimensions, "
                        "each at least 1");

    agon_net *net = make_net(1, (int64_t[]){3}, 4);
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    agon_error_clear(&err);
    assert_int_equal(agon_net_add_linear(net, 0, true, AGON_INIT_DEFAULT_UNIFORM, 0, &rng, &err),
                     AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (linear): out_features must be at least 1, got 0");

    agon_error_clear(&err);
    assert_int_equal(agon_net_add_linear(net, 2, true, (agon_init)9, 0, &rng, &err),
                     AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (linear): unknown init scheme 9");

    agon_error_clear(&err);
    assert_int_equal(agon_net_add_activation(net, (agon_activation)99, 0, &err), AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0: unknown activation 99");

    agon_error_clear(&err);
    assert_int_equal(agon_net_add_activation(net, AGON_ACT_LEAKY_RELU, NAN, &err), AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (leaky_relu): slope must be a finite number");

    /* A layer with an old, smaller ops struct is refused; its destroy
     * cannot be trusted, so the state is not touched. */
    agon_layer_ops old = probe_ops;
    old.struct_size = 8;
    agon_error_clear(&err);
    int destroyed = probe_destroyed;
    agon_shape out = agon_net_out_shape(net);
    assert_int_equal(agon_net_add_layer(net, &old, NULL, &out, 0, NULL, NULL, NULL, &err),
                     AGON_EPLUGIN);
    assert_string_equal(err.message,
                        "layer 0: agon_layer_ops.struct_size is 8, expected at least 40; "
                        "rebuild the plugin against this agon");
    assert_int_equal(probe_destroyed, destroyed);

    agon_error_clear(&err);
    static const char *const long_name[] = {
        "a_parameter_name_that_is_far_too_long_for_the_field"};
    agon_shape ps = agon_shape_make(1, (int64_t[]){1});
    assert_int_equal(agon_net_add_layer(net, &probe_ops, calloc(1, sizeof(probe_state)), &out, 1,
                                        long_name, &ps, NULL, &err),
                     AGON_EPLUGIN);
    assert_string_equal(err.message,
                        "layer 0 (probe): parameter name "
                        "'a_parameter_name_that_is_far_too_long_for_the_field' is too long; "
                        "'<layer>.<name>' must fit in 47 characters");
    assert_int_equal(probe_destroyed, destroyed + 1);

    agon_error_clear(&err);
    agon_shape zero = agon_shape_make(1, (int64_t[]){0});
    assert_int_equal(agon_net_add_layer(net, &probe_ops, calloc(1, sizeof(probe_state)), &zero,
                                        0, NULL, NULL, NULL, &err),
                     AGON_ECONFIG);
    assert_string_equal(err.message,
                        "layer 0 (probe): output shape [0] is invalid; use at most 4 "
                        "dimensions, each at least 1");
    assert_int_equal(probe_destroyed, destroyed + 2);

    /* Nothing was added by the failed calls. */
    assert_int_equal(agon_net_layer_count(net), 0);
    assert_int_equal(agon_net_param_count(net), 0);
    agon_net_destroy(net);
}

/* ---- initialisation ---------------------------------------------------------------- */

typedef struct stats {
    double mean, var, maxabs;
} stats;

static stats stats_of(const float *x, size_t n)
{
    stats s = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        s.mean += x[i];
    s.mean /= (double)n;
    for (size_t i = 0; i < n; i++) {
        s.var += (x[i] - s.mean) * (x[i] - s.mean);
        if (fabs(x[i]) > s.maxabs)
            s.maxabs = fabs(x[i]);
    }
    s.var /= (double)n;
    return s;
}

static agon_net *init_net(agon_init init, float gain, uint64_t seed)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    agon_net *net = make_net(1, (int64_t[]){256}, 1);
    ok(agon_net_add_linear(net, 128, true, init, gain, &rng, &err), &err);
    return net;
}

/* Uniform(-a, a) over 32768 weights: every |w| <= a, the extremes are
 * reached (max > 0.99 a), mean ~ 0 (sd of the mean ~ 0.0033 a), and the
 * variance a^2/3 within 3% (sd of the estimate ~ 0.5%). */
static void check_uniform(const agon_param *w, double a)
{
    size_t n = (size_t)agon_tensor_numel(&w->value);
    stats s = stats_of(w->value.data, n);
    assert_true(s.maxabs <= a * (1 + 1e-7));
    assert_true(s.maxabs > 0.99 * a);
    assert_true(fabs(s.mean) < 0.02 * a);
    assert_true(fabs(s.var / (a * a / 3.0) - 1.0) < 0.03);
}

static void check_zero(const agon_param *b)
{
    for (int64_t i = 0; i < agon_tensor_numel(&b->value); i++)
        assert_true(b->value.data[i] == 0.0f);
}

static void test_init_schemes(void **st)
{
    (void)st;
    /* fan_in 256, fan_out 128. */
    agon_net *net = init_net(AGON_INIT_DEFAULT_UNIFORM, 0.0f, 1);
    check_uniform(agon_net_param(net, 0), 1.0 / 16.0);
    stats sb = stats_of(agon_net_param(net, 1)->value.data, 128);
    assert_true(sb.maxabs <= 1.0 / 16.0 && sb.maxabs > 0.9 / 16.0);
    agon_net_destroy(net);

    net = init_net(AGON_INIT_XAVIER_UNIFORM, 0.0f, 2);
    check_uniform(agon_net_param(net, 0), sqrt(6.0 / 384.0));
    check_zero(agon_net_param(net, 1));
    agon_net_destroy(net);

    net = init_net(AGON_INIT_XAVIER_UNIFORM, 2.0f, 3);
    check_uniform(agon_net_param(net, 0), 2.0 * sqrt(6.0 / 384.0));
    agon_net_destroy(net);

    net = init_net(AGON_INIT_KAIMING_UNIFORM, 0.0f, 4);
    check_uniform(agon_net_param(net, 0), sqrt(2.0) * sqrt(3.0 / 256.0));
    check_zero(agon_net_param(net, 1));
    agon_net_destroy(net);

    /* Normal: sd of the sample sd ~ 0.4%; allow 3%. */
    net = init_net(AGON_INIT_NORMAL, 0.0f, 5);
    stats s = stats_of(agon_net_param(net, 0)->value.data, 32768);
    assert_true(fabs(sqrt(s.var) / 0.02 - 1.0) < 0.03);
    assert_true(fabs(s.mean) < 0.001);
    check_zero(agon_net_param(net, 1));
    agon_net_destroy(net);

    net = init_net(AGON_INIT_NORMAL, 0.5f, 6);
    s = stats_of(agon_net_param(net, 0)->value.data, 32768);
    assert_true(fabs(sqrt(s.var) / 0.5 - 1.0) < 0.03);
    agon_net_destroy(net);
}

/* The draws are exactly: weights row-major, then the bias, from the given
 * stream, and nothing else is taken from it. */
static void test_init_draw_order(void **st)
{
    (void)st;
    agon_error err = {0};
    for (int scheme = 0; scheme < 2; scheme++) {
        agon_rng rng, ref;
        agon_rng_seed(&rng, 77, "init");
        agon_rng_seed(&ref, 77, "init");
        agon_net *net = make_net(1, (int64_t[]){3}, 1);
        agon_init init = scheme == 0 ? AGON_INIT_DEFAULT_UNIFORM : AGON_INIT_NORMAL;
        ok(agon_net_add_linear(net, 2, true, init, 0.0f, &rng, &err), &err);
        float w[6], b[2] = {0, 0};
        if (scheme == 0) {
            float a = (float)(1.0 / sqrt(3.0));
            agon_rng_fill_uniform(&ref, w, 6, -a, a);
            agon_rng_fill_uniform(&ref, b, 2, -a, a);
        } else {
            agon_rng_fill_normal(&ref, w, 6, 0.0f, 0.02f);
        }
        assert_memory_equal(agon_net_param(net, 0)->value.data, w, sizeof w);
        assert_memory_equal(agon_net_param(net, 1)->value.data, b, sizeof b);
        assert_memory_equal(rng.s, ref.s, sizeof rng.s);
        agon_net_destroy(net);
    }
}

static void test_determinism(void **st)
{
    (void)st;
    agon_net *a = build_mlp(99, 4, NULL);
    agon_net *b = build_mlp(99, 4, NULL);
    agon_net *c = build_mlp(100, 4, NULL);
    bool any_diff = false;
    for (size_t p = 0; p < agon_net_param_count(a); p++) {
        agon_param *pa = agon_net_param(a, p), *pb = agon_net_param(b, p),
                   *pc = agon_net_param(c, p);
        size_t bytes = (size_t)agon_tensor_numel(&pa->value) * sizeof(float);
        assert_memory_equal(pa->value.data, pb->value.data, bytes);
        if (memcmp(pa->value.data, pc->value.data, bytes) != 0)
            any_diff = true;
    }
    assert_true(any_diff);

    float x[4 * 5], u[4 * 3];
    agon_rng rng;
    agon_rng_seed(&rng, 3, "x");
    agon_rng_fill_uniform(&rng, x, 20, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, u, 12, -1.0f, 1.0f);
    agon_net *nets[2] = {a, b};
    float out[2][12], din[2][20];
    for (int k = 0; k < 2; k++) {
        agon_tensor in = batch_tensor(x, nets[k], 4);
        const agon_tensor *y = agon_net_forward(nets[k], &in, true);
        memcpy(out[k], y->data, sizeof out[k]);
        agon_tensor dout = {u, y->shape};
        agon_net_zero_grad(nets[k]);
        memcpy(din[k], agon_net_backward(nets[k], &dout, true, true)->data, sizeof din[k]);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(din[0], din[1], sizeof din[0]);
    for (size_t p = 0; p < agon_net_param_count(a); p++) {
        agon_param *pa = agon_net_param(a, p), *pb = agon_net_param(b, p);
        assert_memory_equal(pa->grad.data, pb->grad.data,
                            (size_t)agon_tensor_numel(&pa->grad) * sizeof(float));
    }
    agon_net_destroy(a);
    agon_net_destroy(b);
    agon_net_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_linear_bias),
        cmocka_unit_test(test_grad_linear_no_bias),
        cmocka_unit_test(test_grad_linear_flattens_input),
        cmocka_unit_test(test_grad_activations),
        cmocka_unit_test(test_grad_mlp),
        cmocka_unit_test(test_linear_forward_values),
        cmocka_unit_test(test_activation_forward_values),
        cmocka_unit_test(test_empty_net_passes_through),
        cmocka_unit_test(test_smaller_batch),
        cmocka_unit_test(test_backward_flags),
        cmocka_unit_test(test_no_allocation_in_steady_state),
        cmocka_unit_test(test_net_metadata),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_init_schemes),
        cmocka_unit_test(test_init_draw_order),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
