/* Convolution layers: forward and backward against a direct-loop
 * reference, conv_transpose2d as the adjoint of conv2d, finite-difference
 * gradients of input, weight and bias, the backward flags, shapes, build
 * errors, initialisation and steady-state allocation. */
#include "test_util.h"

#include <math.h>

#include "agon/nn.h"

#include "alloc_count.h"

/* ---- helpers ------------------------------------------------------------------- */

/* One layer's geometry: the per-sample input [in_c, in_h, in_w] and the spec. */
typedef struct geom {
    int64_t in_c, in_h, in_w;
    int64_t out_c, kh, kw, sh, sw, ph, pw, oph, opw;
    bool bias;
    int64_t batch;
} geom;

static agon_conv_spec spec_of(const geom *g)
{
    agon_conv_spec sp = {
        .out_channels = g->out_c,
        .kernel_h = g->kh,
        .kernel_w = g->kw,
        .stride_h = g->sh,
        .stride_w = g->sw,
        .pad_h = g->ph,
        .pad_w = g->pw,
        .output_pad_h = g->oph,
        .output_pad_w = g->opw,
        .bias = g->bias,
    };
    return sp;
}

static void ok(int rc, const agon_error *err)
{
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err->message);
}

static agon_net *make_net(int64_t c, int64_t h, int64_t w, int64_t max_batch)
{
    agon_error err = {0};
    agon_shape s = agon_shape_make(3, (int64_t[]){c, h, w});
    agon_net *net = agon_net_create(&s, max_batch, &err);
    if (!net)
        fail_msg("agon_net_create: %s", err.message);
    return net;
}

/* A net of one conv2d (transposed = false) or conv_transpose2d layer,
 * initialised from `seed`, with a random bias (the init schemes but the
 * default leave it 0, which would make its checks weak). */
static agon_net *single_conv(const geom *g, bool transposed, int64_t max_batch, uint64_t seed)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    agon_net *net = make_net(g->in_c, g->in_h, g->in_w, max_batch);
    agon_conv_spec sp = spec_of(g);
    if (transposed)
        ok(agon_net_add_conv_transpose2d(net, &sp, AGON_INIT_KAIMING_UNIFORM, 0.0f, &rng, &err),
           &err);
    else
        ok(agon_net_add_conv2d(net, &sp, AGON_INIT_KAIMING_UNIFORM, 0.0f, &rng, &err), &err);
    if (g->bias)
        agon_rng_fill_uniform(&rng, agon_net_param(net, 1)->value.data, (size_t)g->out_c, -1.0f,
                              1.0f);
    return net;
}

static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t op, bool transposed)
{
    return transposed ? (in - 1) * s - 2 * p + k + op : (in + 2 * p - k) / s + 1;
}

static int64_t numel_in(const geom *g)
{
    return g->batch * g->in_c * g->in_h * g->in_w;
}

static int64_t numel_out(const geom *g, bool transposed)
{
    return g->batch * g->out_c * out_len(g->in_h, g->kh, g->sh, g->ph, g->oph, transposed) *
           out_len(g->in_w, g->kw, g->sw, g->pw, g->opw, transposed);
}

static agon_tensor in_tensor(const agon_net *net, float *data, int64_t batch)
{
    agon_shape s = agon_net_in_shape(net);
    agon_tensor t = {data, agon_shape_batched(batch, &s)};
    return t;
}

static agon_tensor out_tensor(const agon_net *net, float *data, int64_t batch)
{
    agon_shape s = agon_net_out_shape(net);
    agon_tensor t = {data, agon_shape_batched(batch, &s)};
    return t;
}

static float *random_floats(size_t n, uint64_t seed, const char *name)
{
    agon_rng rng;
    agon_rng_seed(&rng, seed, name);
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    agon_rng_fill_uniform(&rng, x, n, -1.0f, 1.0f);
    return x;
}

/* ---- direct-loop reference (double) --------------------------------------------- *
 * Both layers in conv2d terms: an image [C, H, W], a grid [K, OH, OW] and
 * W [K, C, kh, kw], linked by every kernel tap that lands inside the image:
 *     grid[n,k,oh,ow] ~ W[k,c,i,j] image[n,c,oh*s-p+i,ow*s-p+j].
 * conv2d's input is the image and its output the grid; conv_transpose2d's
 * input is the grid and its output the image.  With r = dL/dout, this
 * gives out, din and dW (and each entry's sum of |terms|, for tolerances). */

typedef struct ref_result {
    double *out, *out_mag, *din, *din_mag, *dw, *dw_mag, *db;
} ref_result;

static double *zeros(int64_t n)
{
    double *p = calloc((size_t)n, sizeof(double));
    assert_non_null(p);
    return p;
}

static ref_result reference(const geom *g, bool transposed, const float *x, const float *w,
                            const float *b, const float *r)
{
    int64_t OHo = out_len(g->in_h, g->kh, g->sh, g->ph, g->oph, transposed);
    int64_t OWo = out_len(g->in_w, g->kw, g->sw, g->pw, g->opw, transposed);
    int64_t C = transposed ? g->out_c : g->in_c, K = transposed ? g->in_c : g->out_c;
    int64_t H = transposed ? OHo : g->in_h, W = transposed ? OWo : g->in_w;
    int64_t OH = transposed ? g->in_h : OHo, OW = transposed ? g->in_w : OWo;
    int64_t n_image = g->batch * C * H * W, n_grid = g->batch * K * OH * OW;
    int64_t n_out = transposed ? n_image : n_grid, n_in = transposed ? n_grid : n_image;
    int64_t nw = K * C * g->kh * g->kw;
    ref_result res = {zeros(n_out), zeros(n_out), zeros(n_in), zeros(n_in),
                      zeros(nw),    zeros(nw),    zeros(g->out_c)};
    for (int64_t i = 0; b && i < n_out; i++) {
        int64_t ch = (i / (n_out / g->batch / g->out_c)) % g->out_c;
        res.out[i] = b[ch];
        res.out_mag[i] = fabs(b[ch]);
        res.db[ch] += r[i];
    }
    for (int64_t n = 0; n < g->batch; n++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++)
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++) {
                                int64_t ih = oh * g->sh - g->ph + i;
                                int64_t iw = ow * g->sw - g->pw + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                int64_t wi = ((k * C + c) * g->kh + i) * g->kw + j;
                                int64_t ii = ((n * C + c) * H + ih) * W + iw;
                                int64_t gi = ((n * K + k) * OH + oh) * OW + ow;
                                int64_t in_i = transposed ? gi : ii, out_i = transposed ? ii : gi;
                                double t = (double)w[wi] * x[in_i];
                                res.out[out_i] += t;
                                res.out_mag[out_i] += fabs(t);
                                t = (double)w[wi] * r[out_i];
                                res.din[in_i] += t;
                                res.din_mag[in_i] += fabs(t);
                                t = (double)x[in_i] * r[out_i];
                                res.dw[wi] += t;
                                res.dw_mag[wi] += fabs(t);
                            }
    return res;
}

static void free_reference(ref_result *r)
{
    free(r->out);
    free(r->out_mag);
    free(r->din);
    free(r->din_mag);
    free(r->dw);
    free(r->dw_mag);
    free(r->db);
}

/* float results of the same terms, summed in another order: a few ulps of
 * the terms' size. */
static void expect_close(const char *what, const geom *g, bool transposed, const float *got,
                         const double *want, const double *mag, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (fabs(got[i] - want[i]) > 1e-6 * (1.0 + mag[i]))
            fail_msg("%s, input [%lld,%lld,%lld] k %lldx%lld s %lldx%lld p %lldx%lld batch "
                     "%lld: %s[%lld] = %.9g, expected %.9g",
                     transposed ? "conv_transpose2d" : "conv2d", (long long)g->in_c,
                     (long long)g->in_h, (long long)g->in_w, (long long)g->kh,
                     (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->ph,
                     (long long)g->pw, (long long)g->batch, what, (long long)i,
                     (double)got[i], want[i]);
    }
}

/* The layers do one gemm per sample when C*kh*kw <= OH*OW (in conv2d
 * terms), else one per chunk of ceil(1024 / (OH*OW)) samples at most (see
 * core/nn_conv.c); the tables below cover all three: per sample, the whole
 * batch in one chunk, and several chunks with a shorter last one. */
static int64_t chunk_of(const geom *g, bool transposed, int64_t max_batch)
{
    int64_t c = transposed ? g->out_c : g->in_c;
    int64_t ohw = transposed ? g->in_h * g->in_w
                             : out_len(g->in_h, g->kh, g->sh, g->ph, 0, false) *
                                   out_len(g->in_w, g->kw, g->sw, g->pw, 0, false);
    if (c * g->kh * g->kw <= ohw)
        return 1;
    int64_t n = (1024 + ohw - 1) / ohw;
    return n < max_batch ? n : max_batch;
}

/* in_c,h,w  out_c  kh,kw  sh,sw  ph,pw  oph,opw  bias  batch */
static const geom conv_cases[] = {
    {1, 7, 7, 3, 3, 3, 1, 1, 0, 0, 0, 0, true, 1},
    {2, 8, 9, 4, 3, 2, 2, 2, 1, 1, 0, 0, false, 3},
    {3, 10, 7, 2, 2, 4, 3, 3, 1, 2, 0, 0, true, 3},
    {5, 6, 6, 1, 3, 3, 2, 2, 2, 2, 0, 0, true, 1},
    {1, 5, 4, 2, 5, 1, 1, 1, 2, 0, 0, 0, false, 3},
    {4, 4, 4, 3, 4, 4, 2, 2, 1, 1, 0, 0, true, 3},
    {2, 3, 3, 2, 3, 3, 1, 1, 2, 2, 0, 0, true, 2},
    {2, 5, 1, 2, 3, 3, 1, 1, 1, 1, 0, 0, true, 2},
    {3, 9, 9, 3, 2, 2, 3, 3, 0, 0, 0, 0, false, 3},
    {1, 12, 10, 4, 4, 4, 2, 2, 1, 1, 0, 0, true, 3},
};

static const geom convt_cases[] = {
    {3, 3, 3, 2, 4, 4, 2, 2, 1, 1, 0, 0, true, 3},
    {2, 4, 5, 1, 3, 2, 2, 2, 1, 0, 1, 1, false, 1},
    {1, 5, 4, 3, 2, 3, 3, 3, 1, 2, 2, 0, true, 3},
    {4, 2, 2, 5, 3, 3, 1, 1, 0, 0, 0, 0, true, 2},
    {2, 3, 3, 2, 5, 5, 1, 1, 2, 2, 0, 0, false, 3},
    {3, 6, 6, 2, 1, 1, 2, 2, 0, 0, 1, 1, true, 2},
    {4, 6, 6, 1, 4, 4, 2, 2, 1, 1, 0, 0, true, 3},
    {2, 1, 3, 3, 3, 3, 2, 1, 1, 0, 1, 0, true, 2},
};

/* Several chunks per batch: too large for finite differences, so their
 * gradients are checked against the reference only. */
static const geom big_conv_cases[] = {
    {32, 40, 40, 2, 4, 4, 2, 2, 1, 1, 0, 0, true, 5},
    {2, 24, 23, 2, 17, 17, 1, 1, 8, 8, 0, 0, false, 3},
};

static const geom big_convt_cases[] = {
    {2, 20, 20, 32, 4, 4, 2, 2, 1, 1, 0, 0, true, 5},
    {3, 23, 24, 2, 17, 17, 1, 1, 8, 8, 0, 0, true, 3},
};

#define N_CONV_CASES (sizeof conv_cases / sizeof conv_cases[0])
#define N_CONVT_CASES (sizeof convt_cases / sizeof convt_cases[0])
#define N_BIG_CASES 2

static void test_tables_cover_all_forms(void **st)
{
    (void)st;
    for (int t = 0; t < 2; t++) {
        bool tr = t == 1;
        const geom *cases = tr ? convt_cases : conv_cases;
        size_t n = tr ? N_CONVT_CASES : N_CONV_CASES;
        int per_sample = 0, one_chunk = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t c = chunk_of(&cases[i], tr, cases[i].batch);
            per_sample += c == 1;
            one_chunk += c > 1 && c >= cases[i].batch;
        }
        assert_true(per_sample >= 3);
        assert_true(one_chunk >= 3);
        const geom *big = tr ? big_convt_cases : big_conv_cases;
        for (size_t i = 0; i < N_BIG_CASES; i++) {
            int64_t c = chunk_of(&big[i], tr, big[i].batch);
            assert_true(c > 1 && c < big[i].batch && big[i].batch % c != 0);
        }
    }
}

/* ---- forward and backward against the reference ------------------------------------ */

/* Forward and backward against the reference.  A larger max_batch than
 * used, and a full batch first, so that a smaller batch after a larger one
 * is covered too. */
static void check_against_reference(const geom *g, bool transposed, uint64_t seed)
{
    int64_t max_batch = g->batch + 2;
    agon_net *net = single_conv(g, transposed, max_batch, seed);
    geom big = *g;
    big.batch = max_batch;
    float *xb = random_floats((size_t)numel_in(&big), seed, "xbig");
    agon_tensor in = in_tensor(net, xb, max_batch);
    agon_net_forward(net, &in, true);

    int64_t nx = numel_in(g), ny = numel_out(g, transposed);
    float *x = random_floats((size_t)nx, seed, "x");
    float *r = random_floats((size_t)ny, seed, "r");
    in = in_tensor(net, x, g->batch);
    const agon_tensor *y = agon_net_forward(net, &in, false);
    assert_int_equal(agon_tensor_numel(y), ny);
    assert_int_equal(y->shape.ndim, 4);
    assert_int_equal(y->shape.dim[0], g->batch);
    assert_int_equal(y->shape.dim[1], g->out_c);

    agon_param *w = agon_net_param(net, 0);
    const float *b = g->bias ? agon_net_param(net, 1)->value.data : NULL;
    ref_result ref = reference(g, transposed, x, w->value.data, b, r);
    expect_close("out", g, transposed, y->data, ref.out, ref.out_mag, ny);

    agon_net_zero_grad(net);
    agon_tensor dout = out_tensor(net, r, g->batch);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    expect_close("din", g, transposed, din->data, ref.din, ref.din_mag, nx);
    expect_close("dW", g, transposed, w->grad.data, ref.dw, ref.dw_mag,
                 agon_tensor_numel(&w->grad));
    if (g->bias) {
        /* db sums ny / out_c terms of size <= 1. */
        double *mag = zeros(g->out_c);
        for (int64_t k = 0; k < g->out_c; k++)
            mag[k] = (double)ny / (double)g->out_c;
        expect_close("db", g, transposed, agon_net_param(net, 1)->grad.data, ref.db, mag,
                     g->out_c);
        free(mag);
    }
    free_reference(&ref);
    free(x);
    free(r);
    free(xb);
    agon_net_destroy(net);
}

static void test_conv2d_reference(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONV_CASES; i++)
        check_against_reference(&conv_cases[i], false, 100 + i);
    for (size_t i = 0; i < N_BIG_CASES; i++)
        check_against_reference(&big_conv_cases[i], false, 150 + i);
}

static void test_conv_transpose2d_reference(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONVT_CASES; i++)
        check_against_reference(&convt_cases[i], true, 200 + i);
    for (size_t i = 0; i < N_BIG_CASES; i++)
        check_against_reference(&big_convt_cases[i], true, 250 + i);
}

/* The DCGAN layers the speed work was done for, on small batches. */
static void test_dcgan_shapes_reference(void **st)
{
    (void)st;
    const geom d1 = {1, 28, 28, 64, 4, 4, 2, 2, 1, 1, 0, 0, false, 4};
    const geom d2 = {64, 14, 14, 128, 4, 4, 2, 2, 1, 1, 0, 0, false, 2};
    const geom g1 = {128, 7, 7, 64, 4, 4, 2, 2, 1, 1, 0, 0, true, 2};
    const geom g2 = {64, 14, 14, 1, 4, 4, 2, 2, 1, 1, 0, 0, true, 4};
    check_against_reference(&d1, false, 300);
    check_against_reference(&d2, false, 301);
    check_against_reference(&g1, true, 302);
    check_against_reference(&g2, true, 303);
}

/* ---- adjoint: <conv(x), y> == <x, conv_transpose(y)> with shared weights ---- */

static void check_adjoint(const geom *g, uint64_t seed)
{
    geom cg = *g;
    cg.bias = false;
    cg.oph = cg.opw = 0;
    int64_t OH = out_len(g->in_h, g->kh, g->sh, g->ph, 0, false);
    int64_t OW = out_len(g->in_w, g->kw, g->sw, g->pw, 0, false);
    /* The transposed layer maps [K, OH, OW] back to [C, H, W]; output_pad
     * makes up for the rows and columns the stride's floor dropped. */
    geom tg = {g->out_c, OH, OW, g->in_c, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw,
               g->in_h + 2 * g->ph - g->kh - (OH - 1) * g->sh,
               g->in_w + 2 * g->pw - g->kw - (OW - 1) * g->sw, false, g->batch};
    agon_net *conv = single_conv(&cg, false, g->batch, seed);
    agon_net *convt = single_conv(&tg, true, g->batch, seed + 1);
    agon_param *wc = agon_net_param(conv, 0), *wt = agon_net_param(convt, 0);
    assert_true(agon_shape_equal(&wc->value.shape, &wt->value.shape));
    memcpy(wt->value.data, wc->value.data,
           (size_t)agon_tensor_numel(&wc->value) * sizeof(float));

    int64_t nx = numel_in(&cg), ny = numel_in(&tg);
    assert_int_equal(numel_out(&tg, true), nx);
    assert_int_equal(numel_out(&cg, false), ny);
    float *x = random_floats((size_t)nx, seed, "x");
    float *y = random_floats((size_t)ny, seed, "y");
    agon_tensor tx = in_tensor(conv, x, g->batch), ty = in_tensor(convt, y, g->batch);
    const float *cx = agon_net_forward(conv, &tx, true)->data;
    const float *ty_out = agon_net_forward(convt, &ty, true)->data;
    double lhs = 0.0, rhs = 0.0, mag = 0.0;
    for (int64_t i = 0; i < ny; i++) {
        lhs += (double)cx[i] * y[i];
        mag += fabs((double)cx[i] * y[i]);
    }
    for (int64_t i = 0; i < nx; i++)
        rhs += (double)x[i] * ty_out[i];
    if (fabs(lhs - rhs) > 1e-5 * (1.0 + mag))
        fail_msg("<conv(x), y> = %.9g but <x, conv_transpose(y)> = %.9g", lhs, rhs);
    free(x);
    free(y);
    agon_net_destroy(conv);
    agon_net_destroy(convt);
}

static void test_transpose_is_adjoint(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONV_CASES; i++)
        check_adjoint(&conv_cases[i], 400 + 2 * i);
    for (size_t i = 0; i < N_BIG_CASES; i++)
        check_adjoint(&big_conv_cases[i], 450 + 2 * i);
}

/* ---- gradients ---------------------------------------------------------------------
 * f = sum(out * r) for a fixed random r, so df/dθ is what backward computes
 * for dout = r.  The layers are linear in each of x, W and b, so central
 * differences are exact whatever the step: eps = 0.25 keeps float rounding
 * of f (~1e-6 of sum |out r|, a few units here) to ~1e-5 in the quotient.
 * atol 1e-4 and rtol 1e-4 are ten times that, while a wrong gradient (a
 * missed tap, a flipped kernel, a lost sample or channel) is off by O(0.1)
 * in some coordinate; test_gradient_tolerances_reject_small_errors shows
 * that even a 0.1% error in one coordinate is caught. */
#define GC_EPS 0.25
#define GC_ATOL 1e-4
#define GC_RTOL 1e-4

typedef struct gc_ctx {
    agon_net *net;
    float *x;
    int64_t batch;
    const float *r;
} gc_ctx;

static double objective(void *vctx, float *ignored, size_t n)
{
    (void)ignored;
    (void)n;
    gc_ctx *c = vctx;
    agon_tensor in = in_tensor(c->net, c->x, c->batch);
    const agon_tensor *y = agon_net_forward(c->net, &in, true);
    double f = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(y); i++)
        f += (double)y->data[i] * c->r[i];
    return f;
}

/* Largest |g - fd| / (atol + rtol |fd|) over the coordinates: above 1 is
 * what agon_test_check_grad rejects. */
static double fd_worst(gc_ctx *ctx, float *x, size_t n, const float *g)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = (float)(saved + GC_EPS);
        double fp = objective(ctx, NULL, 0);
        x[i] = (float)(saved - GC_EPS);
        double fm = objective(ctx, NULL, 0);
        x[i] = saved;
        double fd = (fp - fm) / (2.0 * GC_EPS);
        double q = fabs(g[i] - fd) / (GC_ATOL + GC_RTOL * fabs(fd));
        if (q > worst)
            worst = q;
    }
    return worst;
}

static float *copy_floats(const float *src, int64_t n)
{
    float *d = malloc((size_t)n * sizeof(float));
    assert_non_null(d);
    memcpy(d, src, (size_t)n * sizeof(float));
    return d;
}

static void assert_not_all_zero(const float *g, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    assert_true(s > 1e-6);
}

static void check_grads(const geom *g, bool transposed, uint64_t seed)
{
    agon_net *net = single_conv(g, transposed, g->batch, seed);
    int64_t nx = numel_in(g), ny = numel_out(g, transposed);
    float *x = random_floats((size_t)nx, seed, "x");
    float *r = random_floats((size_t)ny, seed, "r");
    gc_ctx ctx = {net, x, g->batch, r};
    agon_net_zero_grad(net);
    objective(&ctx, NULL, 0);
    agon_tensor dout = out_tensor(net, r, g->batch);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    assert_non_null(din);
    assert_int_equal(agon_tensor_numel(din), nx);
    float *gx = copy_floats(din->data, nx);
    assert_not_all_zero(gx, nx);
    agon_test_check_grad(objective, &ctx, x, (size_t)nx, gx, GC_EPS, GC_ATOL, GC_RTOL);
    free(gx);
    assert_int_equal(agon_net_param_count(net), g->bias ? 2 : 1);
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        int64_t np = agon_tensor_numel(&prm->value);
        float *gp = copy_floats(prm->grad.data, np);
        assert_not_all_zero(gp, np);
        agon_test_check_grad(objective, &ctx, prm->value.data, (size_t)np, gp, GC_EPS, GC_ATOL,
                             GC_RTOL);
        free(gp);
    }
    free(x);
    free(r);
    agon_net_destroy(net);
}

static void test_conv2d_gradients(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONV_CASES; i++)
        check_grads(&conv_cases[i], false, 500 + i);
}

static void test_conv_transpose2d_gradients(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONVT_CASES; i++)
        check_grads(&convt_cases[i], true, 600 + i);
}

static void test_gradient_tolerances_reject_small_errors(void **st)
{
    (void)st;
    for (int t = 0; t < 2; t++) {
        const geom *g = t ? &convt_cases[0] : &conv_cases[5];
        agon_net *net = single_conv(g, t == 1, g->batch, 700 + t);
        int64_t nx = numel_in(g), ny = numel_out(g, t == 1);
        float *x = random_floats((size_t)nx, 700, "x");
        float *r = random_floats((size_t)ny, 700, "r");
        gc_ctx ctx = {net, x, g->batch, r};
        agon_net_zero_grad(net);
        objective(&ctx, NULL, 0);
        agon_tensor dout = out_tensor(net, r, g->batch);
        agon_net_backward(net, &dout, true, false);
        agon_param *w = agon_net_param(net, 0);
        int64_t nw = agon_tensor_numel(&w->value);
        float *gw = copy_floats(w->grad.data, nw);
        /* The true gradient passes with room to spare... */
        assert_true(fd_worst(&ctx, w->value.data, (size_t)nw, gw) < 0.5);
        /* ...and 0.1% off in its largest coordinate fails. */
        int64_t big = 0;
        for (int64_t i = 1; i < nw; i++)
            if (fabsf(gw[i]) > fabsf(gw[big]))
                big = i;
        gw[big] *= 1.001f;
        assert_true(fd_worst(&ctx, w->value.data, (size_t)nw, gw) > 1.0);
        free(gw);
        free(x);
        free(r);
        agon_net_destroy(net);
    }
}

/* ---- backward flags ------------------------------------------------------------------ */

static void fill_grads(agon_net *net, float v)
{
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++)
            prm->grad.data[i] = v;
    }
}

static void assert_grads_equal(agon_net *net, float *const *ref)
{
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        assert_memory_equal(prm->grad.data, ref[p],
                            (size_t)agon_tensor_numel(&prm->grad) * sizeof(float));
    }
}

/* The layers keep im2col of the forward input (and, in the batched form,
 * the transposed layer's input) for backward; computing din reuses that
 * space.  Whatever the order of calls, every backward after one forward
 * must give the same bits. */
static void check_flags(const geom *g, bool transposed, uint64_t seed)
{
    agon_net *net = single_conv(g, transposed, g->batch, seed);
    int64_t nx = numel_in(g), ny = numel_out(g, transposed);
    float *x = random_floats((size_t)nx, seed, "x");
    float *r = random_floats((size_t)ny, seed, "r");
    agon_tensor in = in_tensor(net, x, g->batch);
    agon_net_forward(net, &in, true);
    agon_tensor dout = out_tensor(net, r, g->batch);

    /* Gradients only first (the discriminator step's first layer)... */
    agon_net_zero_grad(net);
    assert_null(agon_net_backward(net, &dout, true, false));
    float *ref[2] = {NULL, NULL};
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        ref[p] = copy_floats(prm->grad.data, agon_tensor_numel(&prm->grad));
        assert_not_all_zero(ref[p], agon_tensor_numel(&prm->grad));
    }

    /* ...then both: the same gradients, and din. */
    agon_net_zero_grad(net);
    const agon_tensor *din = agon_net_backward(net, &dout, true, true);
    float *din_ref = copy_floats(din->data, nx);
    assert_grads_equal(net, ref);

    /* din only (the generator step through D): same bits, grads untouched. */
    fill_grads(net, 7.0f);
    din = agon_net_backward(net, &dout, false, true);
    assert_memory_equal(din->data, din_ref, (size_t)nx * sizeof(float));
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++)
            assert_true(prm->grad.data[i] == 7.0f);
    }

    /* Gradients again after din overwrote the layer's scratch space. */
    agon_net_zero_grad(net);
    assert_null(agon_net_backward(net, &dout, true, false));
    assert_grads_equal(net, ref);
    agon_net_zero_grad(net);
    din = agon_net_backward(net, &dout, true, true);
    assert_grads_equal(net, ref);
    assert_memory_equal(din->data, din_ref, (size_t)nx * sizeof(float));

    /* A second backward adds the same again (up to rounding). */
    agon_net_backward(net, &dout, true, false);
    for (size_t p = 0; p < agon_net_param_count(net); p++) {
        agon_param *prm = agon_net_param(net, p);
        for (int64_t i = 0; i < agon_tensor_numel(&prm->grad); i++) {
            double want = 2.0 * ref[p][i];
            assert_true(fabs(prm->grad.data[i] - want) <= 1e-5 * (1.0 + fabs(want)));
        }
    }

    /* Neither: nothing changes. */
    fill_grads(net, 3.0f);
    assert_null(agon_net_backward(net, &dout, false, false));
    assert_true(agon_net_param(net, 0)->grad.data[0] == 3.0f);

    free(din_ref);
    free(ref[0]);
    free(ref[1]);
    free(x);
    free(r);
    agon_net_destroy(net);
}

static void test_backward_flags(void **st)
{
    (void)st;
    for (size_t i = 0; i < N_CONV_CASES; i++)
        check_flags(&conv_cases[i], false, 800 + i);
    for (size_t i = 0; i < N_CONVT_CASES; i++)
        check_flags(&convt_cases[i], true, 900 + i);
    for (size_t i = 0; i < N_BIG_CASES; i++) {
        check_flags(&big_conv_cases[i], false, 950 + i);
        check_flags(&big_convt_cases[i], true, 960 + i);
    }
}

/* ---- shapes, names and errors -------------------------------------------------------- */

static void assert_shape(const agon_shape *s, int ndim, const int64_t *dims)
{
    agon_shape want = agon_shape_make(ndim, dims);
    char a[64], b[64];
    if (!agon_shape_equal(s, &want))
        fail_msg("shape %s, expected %s", agon_shape_format(s, a, sizeof a),
                 agon_shape_format(&want, b, sizeof b));
}

static void test_shapes_and_names(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    /* The benchmark's discriminator and generator convolutions. */
    agon_net *d = make_net(1, 28, 28, 8);
    agon_conv_spec sp = {.out_channels = 64, .kernel_h = 4, .kernel_w = 4, .stride_h = 2,
                         .stride_w = 2, .pad_h = 1, .pad_w = 1, .bias = true};
    ok(agon_net_add_conv2d(d, &sp, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    agon_shape s = agon_net_out_shape(d);
    assert_shape(&s, 3, (int64_t[]){64, 14, 14});
    sp.out_channels = 128;
    sp.bias = false;
    ok(agon_net_add_conv2d(d, &sp, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    s = agon_net_out_shape(d);
    assert_shape(&s, 3, (int64_t[]){128, 7, 7});
    assert_string_equal(agon_net_layer_type(d, 0), "conv2d");
    assert_int_equal(agon_net_param_count(d), 3);
    assert_string_equal(agon_net_param(d, 0)->name, "0.weight");
    assert_string_equal(agon_net_param(d, 1)->name, "0.bias");
    assert_string_equal(agon_net_param(d, 2)->name, "1.weight");
    assert_shape(&agon_net_param(d, 0)->value.shape, 4, (int64_t[]){64, 1, 4, 4});
    assert_shape(&agon_net_param(d, 1)->value.shape, 1, (int64_t[]){64});
    assert_shape(&agon_net_param(d, 2)->value.shape, 4, (int64_t[]){128, 64, 4, 4});
    agon_net_destroy(d);

    agon_net *g = make_net(128, 7, 7, 8);
    sp.out_channels = 64;
    ok(agon_net_add_conv_transpose2d(g, &sp, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    s = agon_net_out_shape(g);
    assert_shape(&s, 3, (int64_t[]){64, 14, 14});
    sp.out_channels = 1;
    sp.bias = true;
    ok(agon_net_add_conv_transpose2d(g, &sp, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    s = agon_net_out_shape(g);
    assert_shape(&s, 3, (int64_t[]){1, 28, 28});
    assert_string_equal(agon_net_layer_type(g, 1), "conv_transpose2d");
    assert_string_equal(agon_net_param(g, 2)->name, "1.bias");
    /* [in_channels, out_channels, kh, kw], as PyTorch stores it. */
    assert_shape(&agon_net_param(g, 0)->value.shape, 4, (int64_t[]){128, 64, 4, 4});
    assert_shape(&agon_net_param(g, 1)->value.shape, 4, (int64_t[]){64, 1, 4, 4});
    assert_shape(&agon_net_param(g, 2)->value.shape, 1, (int64_t[]){1});
    agon_net_destroy(g);

    /* Non-square everything, and output_pad. */
    agon_net *n = make_net(3, 9, 11, 2);
    agon_conv_spec ns = {.out_channels = 5, .kernel_h = 3, .kernel_w = 2, .stride_h = 3,
                         .stride_w = 2, .pad_h = 1, .pad_w = 0, .bias = true};
    ok(agon_net_add_conv2d(n, &ns, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err), &err);
    s = agon_net_out_shape(n);
    assert_shape(&s, 3, (int64_t[]){5, 3, 5}); /* (9+2-3)/3+1, (11-2)/2+1 */
    ns.output_pad_h = 2;
    ns.output_pad_w = 1;
    ns.out_channels = 2;
    ok(agon_net_add_conv_transpose2d(n, &ns, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err),
       &err);
    s = agon_net_out_shape(n);
    assert_shape(&s, 3, (int64_t[]){2, 9, 11}); /* 2*3-2+3+2, 4*2-0+2+1 */
    agon_net_destroy(n);
}

static void expect_error(agon_net *net, const agon_conv_spec *sp, bool transposed,
                         agon_init init, const char *message)
{
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    size_t layers = agon_net_layer_count(net), params = agon_net_param_count(net);
    int rc = transposed ? agon_net_add_conv_transpose2d(net, sp, init, 0.0f, &rng, &err)
                        : agon_net_add_conv2d(net, sp, init, 0.0f, &rng, &err);
    assert_int_equal(rc, AGON_ECONFIG);
    assert_int_equal(err.code, AGON_ECONFIG);
    assert_string_equal(err.message, message);
    assert_int_equal(agon_net_layer_count(net), layers);
    assert_int_equal(agon_net_param_count(net), params);
}

#define DEF AGON_INIT_DEFAULT_UNIFORM

static void test_build_errors(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    agon_net *net = make_net(2, 4, 4, 2);
    agon_conv_spec sp = {.out_channels = 3, .kernel_h = 5, .kernel_w = 5, .stride_h = 1,
                         .stride_w = 1, .pad_h = 0, .pad_w = 0};
    expect_error(net, &sp, false, DEF,
                 "layer 0 (conv2d): kernel 5x5 with padding 0x0 does not fit the 4x4 input; "
                 "use a smaller kernel or more padding");
    sp.kernel_h = 3;
    sp.kernel_w = 7;
    sp.pad_w = 1;
    expect_error(net, &sp, false, DEF,
                 "layer 0 (conv2d): kernel 3x7 with padding 0x1 does not fit the 4x4 input; "
                 "use a smaller kernel or more padding");
    /* A kernel one column narrower fits exactly: one output column. */
    sp.kernel_w = 6;
    agon_net *fits = make_net(2, 4, 4, 2);
    ok(agon_net_add_conv2d(fits, &sp, DEF, 0.0f, &rng, &err), &err);
    agon_shape s = agon_net_out_shape(fits);
    assert_shape(&s, 3, (int64_t[]){3, 2, 1});
    agon_net_destroy(fits);

    sp = (agon_conv_spec){.out_channels = 3, .kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                          .stride_w = 1, .pad_h = 3, .pad_w = 1};
    expect_error(net, &sp, false, DEF,
                 "layer 0 (conv2d): padding 3x1 must be at least 0 and less than the kernel "
                 "3x3");
    sp.pad_h = -1;
    expect_error(net, &sp, true, DEF,
                 "layer 0 (conv_transpose2d): padding -1x1 must be at least 0 and less than "
                 "the kernel 3x3");
    sp.pad_h = 1;
    sp.stride_w = 0;
    expect_error(net, &sp, false, DEF, "layer 0 (conv2d): stride must be at least 1x1, got 1x0");
    sp.stride_w = 1;
    sp.kernel_h = 0;
    expect_error(net, &sp, false, DEF,
                 "layer 0 (conv2d): kernel must be at least 1x1, got 0x3");
    sp.kernel_h = (int64_t)1 << 40;
    expect_error(net, &sp, true, DEF,
                 "layer 0 (conv_transpose2d): 1099511627776 is too large for a convolution "
                 "size; use at most 2147483647");
    sp.kernel_h = 3;
    sp.out_channels = 0;
    expect_error(net, &sp, true, DEF,
                 "layer 0 (conv_transpose2d): out_channels must be at least 1, got 0");
    sp.out_channels = 3;
    sp.output_pad_w = 1;
    expect_error(net, &sp, false, DEF,
                 "layer 0 (conv2d): output_pad 0x1 applies to conv_transpose2d only; set it "
                 "to 0");
    sp.stride_h = 2;
    sp.output_pad_h = 2;
    expect_error(net, &sp, true, DEF,
                 "layer 0 (conv_transpose2d): output_pad 2x1 must be at least 0 and less than "
                 "the stride 2x1");
    sp.output_pad_h = 0;
    sp.output_pad_w = 0;
    expect_error(net, &sp, false, (agon_init)9, "layer 0 (conv2d): unknown init scheme 9");
    agon_net_destroy(net);

    /* A transposed layer whose padding eats its whole output. */
    agon_net *one = make_net(2, 1, 1, 2);
    sp = (agon_conv_spec){.out_channels = 3, .kernel_h = 3, .kernel_w = 2, .stride_h = 1,
                          .stride_w = 1, .pad_h = 2, .pad_w = 1};
    expect_error(one, &sp, true, DEF,
                 "layer 0 (conv_transpose2d): padding 2x1 leaves a -1x0 output for the 1x1 "
                 "input with kernel 3x2 and stride 1x1; use less padding");
    agon_net_destroy(one);

    agon_net *flat = make_net(1, 2, 2, 2);
    agon_shape four = agon_shape_make(1, (int64_t[]){4});
    ok(agon_net_add_reshape(flat, &four, &err), &err);
    sp = (agon_conv_spec){.out_channels = 1, .kernel_h = 1, .kernel_w = 1, .stride_h = 1,
                          .stride_w = 1};
    expect_error(flat, &sp, false, DEF,
                 "layer 1 (conv2d): input shape [4] is not [channels, height, width]; add a "
                 "reshape before it");
    agon_net_destroy(flat);
}

/* ---- initialisation ------------------------------------------------------------------ */

static void test_init(void **st)
{
    (void)st;
    agon_error err = {0};
    for (int t = 0; t < 2; t++) {
        bool transposed = t == 1;
        /* conv2d 6 -> 5 channels, conv_transpose2d 5 -> 6: fan_in is
         * 6*3*2 = 36 for the first (in_channels * kernel) and 6*3*2 for
         * the second too (out_channels * kernel, as PyTorch counts). */
        int64_t in_c = transposed ? 5 : 6, out_c = transposed ? 6 : 5;
        agon_conv_spec sp = {.out_channels = out_c, .kernel_h = 3, .kernel_w = 2,
                             .stride_h = 1, .stride_w = 1, .bias = true};
        agon_rng rng, ref;
        agon_rng_seed(&rng, 5, "init");
        agon_rng_seed(&ref, 5, "init");
        agon_net *net = make_net(in_c, 4, 4, 1);
        ok(transposed
               ? agon_net_add_conv_transpose2d(net, &sp, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng,
                                               &err)
               : agon_net_add_conv2d(net, &sp, AGON_INIT_DEFAULT_UNIFORM, 0.0f, &rng, &err),
           &err);
        /* Weights in storage order, then the bias, from the given stream
         * and nothing else, with bound 1/sqrt(fan_in) for both. */
        float w[180], b[6];
        float a = (float)(1.0 / sqrt(36.0));
        agon_rng_fill_uniform(&ref, w, 180, -a, a);
        agon_rng_fill_uniform(&ref, b, (size_t)out_c, -a, a);
        assert_int_equal(agon_tensor_numel(&agon_net_param(net, 0)->value), 180);
        assert_memory_equal(agon_net_param(net, 0)->value.data, w, sizeof w);
        assert_memory_equal(agon_net_param(net, 1)->value.data, b, (size_t)out_c * sizeof(float));
        assert_memory_equal(rng.s, ref.s, sizeof rng.s);
        agon_net_destroy(net);

        /* Xavier: fan_out is dim 0 of the weight times the kernel area
         * (30 here), and the bias stays 0. */
        agon_rng_seed(&rng, 6, "init");
        agon_rng_seed(&ref, 6, "init");
        net = make_net(in_c, 4, 4, 1);
        ok(transposed
               ? agon_net_add_conv_transpose2d(net, &sp, AGON_INIT_XAVIER_UNIFORM, 2.0f, &rng,
                                               &err)
               : agon_net_add_conv2d(net, &sp, AGON_INIT_XAVIER_UNIFORM, 2.0f, &rng, &err),
           &err);
        a = (float)(2.0 * sqrt(6.0 / (36.0 + 30.0)));
        agon_rng_fill_uniform(&ref, w, 180, -a, a);
        assert_memory_equal(agon_net_param(net, 0)->value.data, w, sizeof w);
        for (int64_t i = 0; i < out_c; i++)
            assert_true(agon_net_param(net, 1)->value.data[i] == 0.0f);
        agon_net_destroy(net);
    }
}

/* ---- steady state allocates nothing --------------------------------------------------- */

static void test_no_allocation_in_steady_state(void **st)
{
    (void)st;
    enum { MAXB = 5 };
    agon_error err = {0};
    agon_rng rng;
    agon_rng_seed(&rng, 9, "init");
    /* Both gemm forms of both layers: a small generator-like and
     * discriminator-like stack. */
    agon_net *net = make_net(4, 3, 3, MAXB);
    agon_conv_spec up = {.out_channels = 3, .kernel_h = 4, .kernel_w = 4, .stride_h = 2,
                         .stride_w = 2, .pad_h = 1, .pad_w = 1, .bias = true};
    ok(agon_net_add_conv_transpose2d(net, &up, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    up.out_channels = 1;
    ok(agon_net_add_conv_transpose2d(net, &up, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    agon_conv_spec down = up;
    down.out_channels = 3;
    ok(agon_net_add_conv2d(net, &down, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    ok(agon_net_add_activation(net, AGON_ACT_LEAKY_RELU, 0.2f, &err), &err);
    down.out_channels = 4;
    ok(agon_net_add_conv2d(net, &down, AGON_INIT_NORMAL, 0.0f, &rng, &err), &err);
    agon_shape s = agon_net_out_shape(net);
    assert_shape(&s, 3, (int64_t[]){4, 3, 3});

    float *x = random_floats(MAXB * 36, 1, "x");
    float *u = random_floats(MAXB * 36, 2, "u");
    agon_tensor in = in_tensor(net, x, MAXB);
    const agon_tensor *y = agon_net_forward(net, &in, true);
    agon_tensor dout = out_tensor(net, u, MAXB);
    agon_net_backward(net, &dout, true, true);

    agon_arena *arena = agon_net_arena(net);
    size_t blocks = agon_arena_block_count(arena), used = agon_arena_used(arena);
    long before = agon_test_allocs, blas_before = agon_test_blas_allocs;
    for (int it = 0; it < 40; it++) {
        int64_t b = 1 + it % MAXB;
        in = in_tensor(net, x, b);
        y = agon_net_forward(net, &in, it % 2 == 0);
        dout = out_tensor(net, u, b);
        agon_net_backward(net, &dout, it % 3 != 0, it % 2 == 0);
    }
    long allocs = agon_test_allocs - before;
    assert_true(agon_tensor_all_finite(y));
    assert_int_equal(agon_arena_block_count(arena), blocks);
    assert_int_equal(agon_arena_used(arena), used);
    if (AGON_TEST_COUNTS_ALLOCS)
        assert_int_equal(allocs, 0);
    if (AGON_TEST_COUNTS_ALLOCS && agon_test_blas_must_not_allocate())
        assert_int_equal(agon_test_blas_allocs - blas_before, 0);
    free(x);
    free(u);
    agon_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_cover_all_forms),
        cmocka_unit_test(test_conv2d_reference),
        cmocka_unit_test(test_conv_transpose2d_reference),
        cmocka_unit_test(test_dcgan_shapes_reference),
        cmocka_unit_test(test_transpose_is_adjoint),
        cmocka_unit_test(test_conv2d_gradients),
        cmocka_unit_test(test_conv_transpose2d_gradients),
        cmocka_unit_test(test_gradient_tolerances_reject_small_errors),
        cmocka_unit_test(test_backward_flags),
        cmocka_unit_test(test_shapes_and_names),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_no_allocation_in_steady_state),
    };
    return cmocka_run_group_tests_name("nn_conv", tests, NULL, NULL);
}
