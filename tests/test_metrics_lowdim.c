/* The metrics on low-dimensional data — divergence, optimal_discriminator,
 * d_landscape, latent_interpolation and mode_coverage's histogram — run
 * through real short experiments and read back from the log.
 *
 * Where a value can be recomputed independently it is: the discriminator
 * and generator are re-evaluated here from the final parameters in /final
 * (an MLP forward pass in double), p_data from the mixture's formula, and
 * the divergence estimator's answer on real samples from a numerical
 * integral of the kernel-blurred mixture. */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "agon/agon.h"
#include "test_h5.h"

#define GAUSS1D AGON_TEST_SOURCE_DIR "/experiments/gaussian1d.yaml"
#define RING8 AGON_TEST_SOURCE_DIR "/experiments/ring8.yaml"

static const double pi = 3.14159265358979323846;

/* |a - b| <= tol in double (cmocka's assert_float_equal works in float). */
#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)

static void assert_near_at(double a, double b, double tol, const char *file, int line)
{
    if (!(fabs(a - b) <= tol))
        fail_msg("%s:%d: %.17g and %.17g differ by more than %g", file, line, a, b, tol);
}

/* Runs the experiment file `path` with overrides into `out`; returns the
 * status, with the error message in msg (when not NULL). */
static int run_file(const char *path, const char *out, const char *const *sets, size_t n_sets,
                    char *msg, size_t cap)
{
    agon_registry *reg = agon_test_registry(true);
    agon_error err = {0};
    int rc = agon_test_run_experiment(reg, path, sets, n_sets, out, NULL, NULL, &err);
    if (msg)
        snprintf(msg, cap, "%s", err.message);
    else if (rc != 0)
        print_error("%s\n", err.message);
    agon_registry_destroy(reg);
    return rc;
}

/* As run_file on an experiment text. */
static int run_text(const char *yaml, const char *out, char *msg, size_t cap)
{
    agon_test_write_file("lowdim.yaml", yaml);
    return run_file("lowdim.yaml", out, NULL, 0, msg, cap);
}

/* ---- reading the log ------------------------------------------------------------ */

typedef struct array {
    double *v;
    int ndim;
    hsize_t dim[8];
    size_t n;
} array;

/* A whole dataset, converted to double. */
static array read_array(const char *file, const char *path)
{
    array a;
    memset(&a, 0, sizeof a);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        fail_msg("%s: no dataset %s", file, path);
    hid_t sp = H5Dget_space(d);
    a.ndim = H5Sget_simple_extent_ndims(sp);
    assert_true(a.ndim >= 0 && a.ndim <= 8);
    H5Sget_simple_extent_dims(sp, a.dim, NULL);
    a.n = (size_t)H5Sget_simple_extent_npoints(sp);
    a.v = malloc((a.n ? a.n : 1) * sizeof *a.v);
    assert_non_null(a.v);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.v) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return a;
}

static void assert_dims(const array *a, int ndim, const hsize_t *dims)
{
    assert_int_equal(a->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(a->dim[i], dims[i]);
}

/* Every dataset directly under `group` is bit-identical in both files
 * (both files have the same members). */
typedef struct cmp_ctx {
    const char *other, *group;
    int count;
} cmp_ctx;

static herr_t compare_member(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    cmp_ctx *c = data;
    char path[512];
    hid_t f = H5Iget_file_id(g);
    char file[512];
    H5Fget_name(f, file, sizeof file);
    H5Fclose(f);
    snprintf(path, sizeof path, "%s/%s", c->group, name);
    array a = read_array(file, path), b = read_array(c->other, path);
    assert_int_equal(a.n, b.n);
    if (memcmp(a.v, b.v, a.n * sizeof(double)) != 0)
        fail_msg("%s differs between %s and %s", path, file, c->other);
    free(a.v);
    free(b.v);
    c->count++;
    return 0;
}

static int compare_group(const char *f1, const char *f2, const char *group)
{
    hid_t f = H5Fopen(f1, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    assert_true(g >= 0);
    cmp_ctx c = {f2, group, 0};
    assert_true(H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, compare_member, &c) >= 0);
    H5Gclose(g);
    H5Fclose(f);
    return c.count;
}

/* ---- networks re-evaluated from /final ------------------------------------------
 * mlp builds linear layers at indices 0, 2, 4, ... with an activation
 * after each hidden one; weights are [out, in] (PyTorch's layout). */
typedef struct mlp {
    int n_layers;
    array w[4], b[4];
    double slope;   /* 0: relu */
} mlp;

static mlp load_mlp(const char *file, const char *role, int n_layers, double slope)
{
    mlp m;
    memset(&m, 0, sizeof m);
    m.n_layers = n_layers;
    m.slope = slope;
    for (int k = 0; k < n_layers; k++) {
        char path[128];
        snprintf(path, sizeof path, "/final/%s/%d.weight", role, 2 * k);
        m.w[k] = read_array(file, path);
        snprintf(path, sizeof path, "/final/%s/%d.bias", role, 2 * k);
        m.b[k] = read_array(file, path);
    }
    return m;
}

static void free_mlp(mlp *m)
{
    for (int k = 0; k < m->n_layers; k++) {
        free(m->w[k].v);
        free(m->b[k].v);
    }
}

/* out[0..out_dim) = m(x[0..in_dim)) in double. */
static void mlp_forward(const mlp *m, const double *x, double *out)
{
    double a[1024], h[1024];
    size_t width = (size_t)m->w[0].dim[1];
    memcpy(a, x, width * sizeof *a);
    for (int k = 0; k < m->n_layers; k++) {
        size_t rows = (size_t)m->w[k].dim[0], cols = (size_t)m->w[k].dim[1];
        assert_int_equal(cols, width);
        for (size_t r = 0; r < rows; r++) {
            double s = m->b[k].v[r];
            for (size_t c = 0; c < cols; c++)
                s += m->w[k].v[r * cols + c] * a[c];
            if (k + 1 < m->n_layers && s < 0)
                s *= m->slope;
            h[r] = s;
        }
        memcpy(a, h, rows * sizeof *a);
        width = rows;
    }
    memcpy(out, a, width * sizeof *out);
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* gaussian1d's data: 0.5 N(-2, 0.25^2) + 0.5 N(2, 0.25^2), blurred by a
 * Gaussian kernel of std h (h = 0: the data itself). */
static double gauss1d_density(double x, double h)
{
    double s = sqrt(0.25 * 0.25 + h * h);
    double a = (x + 2.0) / s, b = (x - 2.0) / s;
    return 0.5 * (exp(-0.5 * a * a) + exp(-0.5 * b * b)) / (s * sqrt(2.0 * pi));
}

/* The grid's point i along axis j, from the metric's attributes, rounded
 * to float as the metrics hand it to D and to the density. */
static double grid_coord(const char *file, const char *group, int axis, int64_t i)
{
    char lo_key[8], hi_key[8];
    snprintf(lo_key, sizeof lo_key, "lo_%d", axis);
    snprintf(hi_key, sizeof hi_key, "hi_%d", axis);
    double lo = agon_test_read_double_attr(file, group, lo_key);
    double hi = agon_test_read_double_attr(file, group, hi_key);
    double n = agon_test_read_double_attr(file, group, "grid_per_axis");
    return (float)(lo + ((double)i + 0.5) * (hi - lo) / n);
}

/* ---- divergence ------------------------------------------------------------------ */

static const char *const dv_columns[] = {"js",        "kl_data_g", "kl_g_data",
                                         "mass_outside", "bandwidth", "js_real"};

/* With G frozen at its initial parameters: finite values in their ranges,
 * the same bits at 1 and 2 threads, the provenance attributes. */
static void test_divergence_frozen_g(void **st)
{
    (void)st;
    const char *sets[] = {"train.steps=40", "train.freeze_g_from=1", "log.samples_every=0",
                          "metrics=[{plugin: divergence, every: 20, n_samples: 5000}]",
                          "train.threads=1"};
    assert_int_equal(run_file(GAUSS1D, "dv_t1.h5", sets, 5, NULL, 0), 0);
    sets[4] = "train.threads=2";
    assert_int_equal(run_file(GAUSS1D, "dv_t2.h5", sets, 5, NULL, 0), 0);
    assert_int_equal(compare_group("dv_t1.h5", "dv_t2.h5", "/metrics/divergence"), 7);

    array step = read_array("dv_t1.h5", "/metrics/divergence/step");
    assert_int_equal(step.n, 2);
    assert_true(step.v[0] == 20 && step.v[1] == 40);
    array c[6];
    for (int k = 0; k < 6; k++) {
        char path[128];
        snprintf(path, sizeof path, "/metrics/divergence/%s", dv_columns[k]);
        c[k] = read_array("dv_t1.h5", path);
        assert_int_equal(c[k].n, 2);
        for (size_t i = 0; i < 2; i++)
            assert_true(isfinite(c[k].v[i]));
    }
    double cell = 7.2 / 400.0;
    for (size_t i = 0; i < 2; i++) {
        assert_true(c[0].v[i] >= 0.0 && c[0].v[i] <= log(2.0));
        assert_true(c[1].v[i] >= 0.0 && c[2].v[i] >= 0.0);
        assert_true(c[3].v[i] >= 0.0 && c[3].v[i] <= 1.0);
        assert_true(c[4].v[i] >= cell);
        /* An untrained G is far from the data; the estimator on real
         * samples is close to it. */
        assert_true(c[0].v[i] > 10.0 * c[5].v[i]);
    }
    /* The initial G puts all its samples within a grid cell or so of one
     * point between the modes, where p_data is below the floor: the
     * supports are disjoint, js is log 2, and KL(p_data || p_g) sits at
     * the cap the floor sets, -H(p_data) - log(floor * max p_data), with
     * H the mixture's entropy on the grid (Riemann sum, as the metric). */
    double entropy = 0, max_p = 0, cell_sum = 0;
    for (int i = 0; i < 400; i++) {
        double x = -3.6 + (i + 0.5) * cell, p = gauss1d_density(x, 0.0);
        max_p = fmax(max_p, p);
        cell_sum += p * cell;
    }
    for (int i = 0; i < 400; i++) {
        double p = gauss1d_density(-3.6 + (i + 0.5) * cell, 0.0) / cell_sum;
        entropy -= p > 0 ? p * log(p) * cell : 0.0;
    }
    double cap = -entropy - log(1e-12 * max_p);
    print_message("divergence: frozen initial G: js %.6f kl_data_g %.4f (cap %.4f) "
                  "kl_g_data %.4f bandwidth %.4f\n",
                  c[0].v[0], c[1].v[0], cap, c[2].v[0], c[4].v[0]);
    for (size_t i = 0; i < 2; i++) {
        assert_near(c[0].v[i], log(2.0), 1e-6);
        assert_near(c[1].v[i], cap, 0.01);
        assert_true(c[2].v[i] > 20.0 && c[2].v[i] < 40.0);
    }
    for (int k = 0; k < 6; k++)
        free(c[k].v);
    free(step.v);

    char text[256];
    agon_test_read_string_attr("dv_t1.h5", "/metrics/divergence", "estimator", text, sizeof text);
    assert_string_equal(text, "gaussian_kde");
    agon_test_read_string_attr("dv_t1.h5", "/metrics/divergence", "bandwidth_rule", text,
                               sizeof text);
    assert_string_equal(text, "scott, at least one cell");
    agon_test_read_string_attr("dv_t1.h5", "/metrics/divergence", "bandwidth", text, sizeof text);
    assert_string_equal(text, "scott");
    /* gaussian1d's box is [-3, 3] (4 stds past the centres), widened by
     * 10% of its width per side. */
    assert_near(agon_test_read_double_attr("dv_t1.h5", "/metrics/divergence", "lo_0"), -3.6, 1e-9);
    assert_near(agon_test_read_double_attr("dv_t1.h5", "/metrics/divergence", "hi_0"), 3.6, 1e-9);
    assert_near(agon_test_read_double_attr("dv_t1.h5", "/metrics/divergence", "grid_per_axis"),
                       400.0, 0.0);
    assert_near(agon_test_read_double_attr("dv_t1.h5", "/metrics/divergence", "floor_relative"),
                       1e-12, 0.0);
}

/* JS between gaussian1d's mixture and the same mixture blurred by a kernel
 * of std h, by the trapezoidal rule on [-3.6, 3.6] with both densities
 * renormalised there, as the metric does. */
static double blurred_js(double h)
{
    const int n = 200000;
    const double lo = -3.6, hi = 3.6, dx = (hi - lo) / n;
    double zp = 0, zq = 0;
    for (int i = 0; i <= n; i++) {
        double x = lo + i * dx, w = (i == 0 || i == n) ? 0.5 : 1.0;
        zp += w * gauss1d_density(x, 0.0) * dx;
        zq += w * gauss1d_density(x, h) * dx;
    }
    double js = 0;
    for (int i = 0; i <= n; i++) {
        double x = lo + i * dx, w = (i == 0 || i == n) ? 0.5 : 1.0;
        double p = gauss1d_density(x, 0.0) / zp, q = gauss1d_density(x, h) / zq;
        double m = 0.5 * (p + q);
        if (p > 0)
            js += w * 0.5 * p * log(p / m) * dx;
        if (q > 0)
            js += w * 0.5 * q * log(q / m) * dx;
    }
    return js;
}

/* Known answer: on real samples with a fixed kernel width h, the
 * estimator's JS is that of p_data and p_data blurred by the kernel. */
static void test_divergence_known_answer(void **st)
{
    (void)st;
    const char *sets[] = {"train.steps=1", "log.samples_every=0",
                          "metrics=[{plugin: divergence, every: 1, n_samples: 20000, "
                          "bandwidth: 0.25}]"};
    assert_int_equal(run_file(GAUSS1D, "dv_known.h5", sets, 3, NULL, 0), 0);
    array js_real = read_array("dv_known.h5", "/metrics/divergence/js_real");
    array h = read_array("dv_known.h5", "/metrics/divergence/bandwidth");
    assert_near(h.v[0], 0.25, 0.0);
    double want = blurred_js(0.25);
    print_message("divergence: js_real %.6f, blurred mixture %.6f\n", js_real.v[0], want);
    assert_true(want > 0.01);
    assert_true(fabs(js_real.v[0] - want) < 0.05 * want);
    free(js_real.v);
    free(h.v);
}

/* The run of gaussian1d.yaml as shipped (3000 steps), with divergence and
 * mode_coverage (min_count 50); run once, read by two tests. */
static const char *trained_run(void)
{
    static bool done;
    if (!done) {
        const char *sets[] = {"log.samples_every=0",
                              "metrics=[{plugin: divergence, every: 1500}, "
                              "{plugin: mode_coverage, every: 250, min_count: 50}]"};
        assert_int_equal(run_file(GAUSS1D, "trained.h5", sets, 2, NULL, 0), 0);
        done = true;
    }
    return "trained.h5";
}

/* Training G lowers JS far below that of the initial G (frozen from the
 * start, so its JS is the step-0 value) and near the estimator's floor. */
static void test_divergence_training_lowers_js(void **st)
{
    (void)st;
    const char *file = trained_run();
    const char *sets[] = {"train.steps=1", "train.freeze_g_from=1", "log.samples_every=0",
                          "metrics=[{plugin: divergence, every: 1}]"};
    assert_int_equal(run_file(GAUSS1D, "dv_init.h5", sets, 4, NULL, 0), 0);
    array init = read_array("dv_init.h5", "/metrics/divergence/js");
    array js = read_array(file, "/metrics/divergence/js");
    array js_real = read_array(file, "/metrics/divergence/js_real");
    array kl = read_array(file, "/metrics/divergence/kl_data_g");
    assert_int_equal(js.n, 2);
    print_message("divergence: js at step 0 %.4f, at 1500 %.4f, at 3000 %.4f (real %.4f), "
                  "kl_data_g %.4f\n",
                  init.v[0], js.v[0], js.v[1], js_real.v[1], kl.v[1]);
    assert_true(js.v[1] < init.v[0] / 10.0);
    assert_true(js.v[1] < 2.0 * js_real.v[1]);
    assert_true(isfinite(kl.v[1]) && kl.v[1] < 1.0);
    free(init.v);
    free(js.v);
    free(js_real.v);
    free(kl.v);
}

/* ---- mode_coverage's histogram ------------------------------------------------------ */

static void test_mode_coverage_histogram(void **st)
{
    (void)st;
    const char *file = trained_run();
    array h = read_array(file, "/metrics/mode_coverage/tensors/histogram");
    array hs = read_array(file, "/metrics/mode_coverage/tensors/step");
    array steps = read_array(file, "/metrics/mode_coverage/step");
    array modes = read_array(file, "/metrics/mode_coverage/modes");
    array hq = read_array(file, "/metrics/mode_coverage/high_quality");
    hsize_t dims[2] = {12, 2};
    assert_dims(&h, 2, dims);
    assert_int_equal(hs.n, 12);
    assert_memory_equal(hs.v, steps.v, 12 * sizeof(double));
    for (size_t t = 0; t < 12; t++) {
        double sum = h.v[2 * t] + h.v[2 * t + 1];
        int captured = (h.v[2 * t] >= 50) + (h.v[2 * t + 1] >= 50);
        assert_near(sum, round(hq.v[t] * 2500.0 / 100.0), 0.0);
        assert_int_equal(captured, (int)modes.v[t]);
    }
    /* The last evaluation has both modes, evenly enough. */
    assert_int_equal((int)modes.v[11], 2);
    assert_true(fabs(h.v[22] - h.v[23]) < 0.2 * (h.v[22] + h.v[23]));
    free(h.v);
    free(hs.v);
    free(steps.v);
    free(modes.v);
    free(hq.v);
}

/* Counts land in their own mode's entry: the initial generator puts its
 * samples near one point c (it does not depend on the data), so with
 * modes at c - 5 and c every sample is mode 1's. */
static void test_mode_coverage_histogram_per_mode(void **st)
{
    (void)st;
    const char *sets[] = {"train.steps=1", "train.freeze_g_from=1", "log.samples_every=1",
                          "metrics=[]", NULL};
    assert_int_equal(run_file(GAUSS1D, "mc_where.h5", sets, 4, NULL, 0), 0);
    array x = read_array("mc_where.h5", "/samples/x");
    double c = 0;
    for (size_t i = 0; i < x.n; i++)
        c += x.v[i] / (double)x.n;
    free(x.v);
    char means[128];
    snprintf(means, sizeof means, "dataset.means=[%.6f, %.6f]", c - 5.0, c);
    sets[2] = "log.samples_every=0";
    sets[3] = "metrics=[{plugin: mode_coverage, every: 1, n_samples: 1000}]";
    sets[4] = means;
    assert_int_equal(run_file(GAUSS1D, "mc_one.h5", sets, 5, NULL, 0), 0);
    array h = read_array("mc_one.h5", "/metrics/mode_coverage/tensors/histogram");
    array modes = read_array("mc_one.h5", "/metrics/mode_coverage/modes");
    hsize_t dims[2] = {1, 2};
    assert_dims(&h, 2, dims);
    assert_near(h.v[0], 0.0, 0.0);
    assert_near(h.v[1], 1000.0, 0.0);
    assert_near(modes.v[0], 1.0, 0.0);
    free(h.v);
    free(modes.v);
}

/* ---- optimal_discriminator ---------------------------------------------------------- */

/* G trained for 499 steps (when it has found one of the two modes), then
 * frozen while D trains on to step 4000: D approaches D* and V(D, G) the
 * optimum -log 4 + 2 JS (Goodfellow et al. 2014, Proposition 1). */
static void test_optimal_discriminator(void **st)
{
    (void)st;
    const char *sets[] = {"train.freeze_g_from=500", "train.steps=4000", "log.samples_every=0",
                          "metrics=[{plugin: optimal_discriminator, every: 1000}]"};
    const char *file = "od.h5";
    assert_int_equal(run_file(GAUSS1D, file, sets, 4, NULL, 0), 0);
    const char *g = "/metrics/optimal_discriminator";
    array max_err = read_array(file, "/metrics/optimal_discriminator/max_abs_err");
    array mean_err = read_array(file, "/metrics/optimal_discriminator/mean_abs_err");
    array mean_u = read_array(file, "/metrics/optimal_discriminator/mean_abs_err_uniform");
    array value = read_array(file, "/metrics/optimal_discriminator/value");
    array vopt = read_array(file, "/metrics/optimal_discriminator/value_optimal");
    array js = read_array(file, "/metrics/optimal_discriminator/js");
    assert_int_equal(value.n, 4);
    for (size_t t = 0; t < 4; t++) {
        print_message("optimal_discriminator @%zu: max_abs_err %.4f mean_abs_err %.4f "
                      "uniform %.4f value %.4f optimal %.4f js %.4f\n",
                      1000 * (t + 1), max_err.v[t], mean_err.v[t], mean_u.v[t], value.v[t],
                      vopt.v[t], js.v[t]);
        assert_near(vopt.v[t], -log(4.0) + 2.0 * js.v[t], 1e-12);
    }
    /* The same G throughout: only D changes, and its error shrinks. */
    assert_near(js.v[0], js.v[3], 0.01);
    assert_true(js.v[3] > 0.1);
    assert_true(mean_u.v[3] < mean_u.v[0] / 3.0);
    assert_true(max_err.v[3] < 0.25);
    assert_true(mean_err.v[3] < 0.02);
    assert_true(mean_u.v[3] < 0.03);
    assert_true(fabs(value.v[3] - vopt.v[3]) < 0.03);

    /* Tensors: [4, 400] each. */
    array d = read_array(file, "/metrics/optimal_discriminator/tensors/d");
    array star = read_array(file, "/metrics/optimal_discriminator/tensors/d_star");
    array p_data = read_array(file, "/metrics/optimal_discriminator/tensors/p_data");
    array p_g = read_array(file, "/metrics/optimal_discriminator/tensors/p_g");
    hsize_t dims[2] = {4, 400};
    assert_dims(&d, 2, dims);
    assert_dims(&star, 2, dims);
    assert_dims(&p_data, 2, dims);
    assert_dims(&p_g, 2, dims);
    /* The last row of d is the final D on the grid; p_data is the
     * mixture's density; d_star is p_data / (p_data + p_g). */
    mlp dn = load_mlp(file, "discriminator", 3, 0.2);
    double worst = 0, mass = 0;
    for (int64_t i = 0; i < 400; i++) {
        double x = grid_coord(file, g, 0, i), l;
        mlp_forward(&dn, &x, &l);
        worst = fmax(worst, fabs(d.v[3 * 400 + i] - sigmoid(l)));
        assert_near(p_data.v[3 * 400 + i], gauss1d_density(x, 0.0),
                           1e-6 * gauss1d_density(x, 0.0) + 1e-30);
        double p = p_data.v[3 * 400 + i], q = p_g.v[3 * 400 + i];
        if (p + q > 1e-20)
            assert_near(star.v[3 * 400 + i], p / (p + q), 1e-6);
        mass += q * 7.2 / 400.0;
    }
    assert_true(worst < 1e-5);
    /* The KDE of G is a density: nearly all of its mass is on the grid. */
    assert_true(mass > 0.95 && mass < 1.0 + 1e-6);
    free_mlp(&dn);
    array *all[] = {&max_err, &mean_err, &mean_u, &value, &vopt, &js, &d, &star, &p_data, &p_g};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        free(all[k]->v);
}

/* ---- d_landscape ---------------------------------------------------------------------- */

static void check_landscape_2d(const char *file, const char *group, int64_t per_axis,
                               size_t rows, int n_layers, const double *one_hot, int n_classes)
{
    char path[256];
    snprintf(path, sizeof path, "%s/tensors/d", group);
    array d = read_array(file, path);
    hsize_t dims[3] = {rows, (hsize_t)per_axis, (hsize_t)per_axis};
    assert_dims(&d, 3, dims);
    for (size_t i = 0; i < d.n; i++)
        assert_true(d.v[i] > 0.0 && d.v[i] < 1.0);
    /* The last row against D re-evaluated from /final: d[i0][i1] is D at
     * (point i0 of axis 0, point i1 of axis 1). */
    mlp dn = load_mlp(file, "discriminator", n_layers, 0.2);
    const double *last = d.v + (rows - 1) * (size_t)(per_axis * per_axis);
    double worst = 0;
    for (int64_t i0 = 0; i0 < per_axis; i0++) {
        for (int64_t i1 = 0; i1 < per_axis; i1++) {
            double x[2 + 16], l;
            x[0] = grid_coord(file, group, 0, i0);
            x[1] = grid_coord(file, group, 1, i1);
            for (int c = 0; c < n_classes; c++)
                x[2 + c] = one_hot[c];
            mlp_forward(&dn, x, &l);
            worst = fmax(worst, fabs(last[i0 * per_axis + i1] - sigmoid(l)));
        }
    }
    assert_true(worst < 1e-5);
    free_mlp(&dn);
    free(d.v);
}

static void test_d_landscape(void **st)
{
    (void)st;
    /* 2-D: the ring. */
    const char *sets[] = {"train.steps=20", "log.samples_every=0",
                          "metrics=[{plugin: d_landscape, every: 10, grid: 16}]"};
    assert_int_equal(run_file(RING8, "dl2.h5", sets, 3, NULL, 0), 0);
    check_landscape_2d("dl2.h5", "/metrics/d_landscape", 16, 2, 3, NULL, 0);
    /* The ring's box: radius 2 + 4 stds (0.08) = 2.08, widened by 10% of
     * its width (0.416) on each side. */
    assert_near(agon_test_read_double_attr("dl2.h5", "/metrics/d_landscape", "lo_0"), -2.496, 1e-6);
    assert_near(agon_test_read_double_attr("dl2.h5", "/metrics/d_landscape", "hi_1"), 2.496, 1e-6);
    assert_near(agon_test_read_double_attr("dl2.h5", "/metrics/d_landscape", "grid_per_axis"), 16,
                       0.0);
    array ts = read_array("dl2.h5", "/metrics/d_landscape/tensors/step");
    assert_int_equal(ts.n, 2);
    assert_true(ts.v[0] == 10 && ts.v[1] == 20);
    free(ts.v);

    /* 1-D: gaussian1d, default grid. */
    const char *sets1[] = {"train.steps=5", "log.samples_every=0",
                           "metrics=[{plugin: d_landscape, every: 5}]"};
    assert_int_equal(run_file(GAUSS1D, "dl1.h5", sets1, 3, NULL, 0), 0);
    array d = read_array("dl1.h5", "/metrics/d_landscape/tensors/d");
    hsize_t dims[2] = {1, 64};
    assert_dims(&d, 2, dims);
    mlp dn = load_mlp("dl1.h5", "discriminator", 3, 0.2);
    for (int64_t i = 0; i < 64; i++) {
        double x = grid_coord("dl1.h5", "/metrics/d_landscape", 0, i), l;
        mlp_forward(&dn, &x, &l);
        assert_near(d.v[i], sigmoid(l), 1e-5);
    }
    free_mlp(&dn);
    free(d.v);

    /* Conditional: D is asked about class `label` (one-hot after x). */
    const char cond[] =
        "seed: 3\n"
        "dataset: {plugin: probe_clusters, classes: 3}\n"
        "generator: {plugin: mlp, hidden: [32]}\n"
        "discriminator: {plugin: mlp, hidden: [32], activation: leaky_relu}\n"
        "loss: {plugin: nonsaturating}\n"
        "train: {steps: 10, batch_size: 32, latent_dim: 4, conditional: concat}\n"
        "log: {samples_every: 0}\n"
        "metrics: [{plugin: d_landscape, every: 10, grid: 8, label: 2}]\n";
    char msg[512];
    assert_int_equal(run_text(cond, "dl_cond.h5", msg, sizeof msg), 0);
    const double one_hot[3] = {0, 0, 1};
    check_landscape_2d("dl_cond.h5", "/metrics/d_landscape", 8, 1, 2, one_hot, 3);
}

/* ---- latent_interpolation ------------------------------------------------------------- */

/* Checks the last evaluation of `file` against G from /final (an MLP of
 * n_layers linear layers on a latent of width k, samples of sample_dim
 * values, G's input z followed by one_hot[n_classes]): point p is
 * G(z(t_p)) for the given path. */
static void check_path(const char *file, bool slerp, int points, int k, int sample_dim,
                       int n_layers, const double *one_hot, int n_classes)
{
    array ends = read_array(file, "/metrics/latent_interpolation/tensors/endpoints");
    array samples = read_array(file, "/metrics/latent_interpolation/tensors/samples");
    size_t rows = ends.dim[0];
    hsize_t edims[3] = {rows, 2, (hsize_t)k}, sdims[3] = {rows, (hsize_t)points,
                                                           (hsize_t)sample_dim};
    assert_dims(&ends, 3, edims);
    assert_dims(&samples, 3, sdims);
    /* The end points never change. */
    for (size_t t = 1; t < rows; t++)
        assert_memory_equal(ends.v, ends.v + t * 2 * k, 2 * (size_t)k * sizeof(double));
    const double *z0 = ends.v, *z1 = ends.v + k;
    double dot = 0, n0 = 0, n1 = 0;
    for (int j = 0; j < k; j++) {
        dot += z0[j] * z1[j];
        n0 += z0[j] * z0[j];
        n1 += z1[j] * z1[j];
    }
    double w = acos(dot / sqrt(n0 * n1));
    mlp gn = load_mlp(file, "generator", n_layers, 0.0);
    const double *last = samples.v + (rows - 1) * (size_t)(points * sample_dim);
    for (int p = 0; p < points; p++) {
        double t = (double)p / (points - 1), a, b;
        if (slerp) {
            a = sin((1 - t) * w) / sin(w);
            b = sin(t * w) / sin(w);
        } else {
            a = 1 - t;
            b = t;
        }
        double z[64], x[8];
        for (int j = 0; j < k; j++)
            z[j] = (double)(float)(a * z0[j] + b * z1[j]);
        for (int c = 0; c < n_classes; c++)
            z[k + c] = one_hot[c];
        mlp_forward(&gn, z, x);
        for (int j = 0; j < sample_dim; j++) {
            double got = last[p * sample_dim + j];
            if (fabs(got - x[j]) > 1e-5 * (1.0 + fabs(x[j])))
                fail_msg("%s: point %d coordinate %d is %.8g, G(z(%g)) is %.8g", file, p, j,
                         got, t, x[j]);
        }
    }
    free_mlp(&gn);
    free(ends.v);
    free(samples.v);
}

static void test_latent_interpolation(void **st)
{
    (void)st;
    const char *sets[] = {"train.steps=30", "log.samples_every=0",
                          "metrics=[{plugin: latent_interpolation, every: 10, points: 5}]"};
    assert_int_equal(run_file(GAUSS1D, "li_slerp.h5", sets, 3, NULL, 0), 0);
    check_path("li_slerp.h5", true, 5, 8, 1, 3, NULL, 0);
    char text[64];
    agon_test_read_string_attr("li_slerp.h5", "/metrics/latent_interpolation", "path", text,
                               sizeof text);
    assert_string_equal(text, "slerp");

    /* G trains between evaluations, so the decoded points move while the
     * end points stay. */
    array s = read_array("li_slerp.h5", "/metrics/latent_interpolation/tensors/samples");
    assert_true(memcmp(s.v, s.v + 5, 5 * sizeof(double)) != 0);
    free(s.v);

    /* linear: the same end points (the metric's own stream), a straight
     * path. */
    sets[2] = "metrics=[{plugin: latent_interpolation, every: 10, points: 7, path: linear}]";
    assert_int_equal(run_file(GAUSS1D, "li_linear.h5", sets, 3, NULL, 0), 0);
    check_path("li_linear.h5", false, 7, 8, 1, 3, NULL, 0);
    array e1 = read_array("li_slerp.h5", "/metrics/latent_interpolation/tensors/endpoints");
    array e2 = read_array("li_linear.h5", "/metrics/latent_interpolation/tensors/endpoints");
    assert_memory_equal(e1.v, e2.v, 16 * sizeof(double));
    free(e1.v);
    free(e2.v);

    /* Conditional: every point is decoded for class `label` (G's input is
     * z followed by the one-hot label). */
    const char cond[] =
        "seed: 3\n"
        "dataset: {plugin: probe_clusters, classes: 3}\n"
        "generator: {plugin: mlp, hidden: [32]}\n"
        "discriminator: {plugin: mlp, hidden: [32], activation: leaky_relu}\n"
        "loss: {plugin: nonsaturating}\n"
        "train: {steps: 10, batch_size: 32, latent_dim: 4, conditional: concat}\n"
        "log: {samples_every: 0}\n"
        "metrics: [{plugin: latent_interpolation, every: 5, points: 4, label: 1}]\n";
    char msg[512];
    assert_int_equal(run_text(cond, "li_cond.h5", msg, sizeof msg), 0);
    const double one_hot[3] = {0, 1, 0};
    check_path("li_cond.h5", true, 4, 4, 2, 2, one_hot, 3);
}

/* ---- configuration errors ---------------------------------------------------------------- */

static void expect_error(const char *path, const char *metric_set, int code, const char *want)
{
    const char *sets[] = {"train.steps=2", "log.samples_every=0", metric_set};
    char msg[1024];
    assert_int_equal(run_file(path, "err.h5", sets, 3, msg, sizeof msg), code);
    assert_string_equal(msg, want);
}

static void test_config_errors(void **st)
{
    (void)st;
    const char three_d[] =
        "dataset: {plugin: gaussian_mixture, layout: explicit, centres: [[0, 0, 0], [1, 1, 1]]}\n"
        "generator: {plugin: mlp}\n"
        "discriminator: {plugin: mlp}\n"
        "loss: {plugin: minimax}\n"
        "train: {steps: 2}\n"
        "metrics:\n"
        "  - plugin: divergence\n";
    char msg[1024];
    assert_int_equal(run_text(three_d, "err.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, "lowdim.yaml:7:5: metrics[0]: divergence works on 1-D or 2-D "
                             "samples, and the dataset's samples have shape [3]; remove the "
                             "metric or use 1-D or 2-D data");

    const char fmnist[] = "dataset: {plugin: fashion_mnist, limit: 64}\n"
                          "generator: {plugin: mlp}\n"
                          "discriminator: {plugin: mlp}\n"
                          "loss: {plugin: minimax}\n"
                          "train: {steps: 2}\n"
                          "log: {samples_every: 0}\n"
                          "metrics:\n"
                          "  - {plugin: %s, every: 1}\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, fmnist, "optimal_discriminator");
    assert_int_equal(run_text(yaml, "err.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, "lowdim.yaml:8:5: metrics[0]: optimal_discriminator needs a "
                             "dataset with a known density and bounding box (gaussian_mixture "
                             "with 1-D or 2-D samples); remove the metric or change the "
                             "dataset");
    snprintf(yaml, sizeof yaml, fmnist, "d_landscape");
    assert_int_equal(run_text(yaml, "err.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, "lowdim.yaml:8:5: metrics[0]: d_landscape needs a dataset with a "
                             "known bounding box (gaussian_mixture with 1-D or 2-D samples); "
                             "remove the metric or change the dataset");

    expect_error(GAUSS1D, "metrics=[{plugin: divergence, bandwidth: wide}]", AGON_ECONFIG,
                 "--set:3:1: metrics[0].bandwidth: expected 'scott' or a positive number, "
                 "got 'wide'");
    expect_error(GAUSS1D, "metrics=[{plugin: divergence, bandwidth: 0.001}]", AGON_ECONFIG,
                 "--set:3:1: metrics[0].bandwidth: 0.001 is narrower than one grid cell "
                 "(0.018); raise the bandwidth or the number of grid points");
    expect_error(RING8, "metrics=[{plugin: divergence, grid: 2000}]", AGON_ECONFIG,
                 "--set:3:1: metrics[0].grid: must be 2 to 1024 points per axis for 2-D data "
                 "(or 0 for the default), got 2000");
    expect_error(GAUSS1D, "metrics=[{plugin: d_landscape, label: 2}]", AGON_ECONFIG,
                 "--set:3:1: metrics[0].label: the dataset has no classes, so label must be "
                 "0, got 2; remove the key");

    const char cond[] = "dataset: {plugin: probe_clusters, classes: 3}\n"
                        "generator: {plugin: mlp}\n"
                        "discriminator: {plugin: mlp}\n"
                        "loss: {plugin: minimax}\n"
                        "train: {steps: 2, conditional: concat}\n"
                        "metrics:\n"
                        "  - plugin: latent_interpolation\n"
                        "    label: 3\n";
    assert_int_equal(run_text(cond, "err.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, "lowdim.yaml:8:12: metrics[0].label: must be a class of the "
                             "dataset, 0 to 2, got 3");
}

/* ---- training is unchanged by every metric --------------------------------------------- */

static void test_training_unchanged(void **st)
{
    (void)st;
    const char *base[] = {"train.steps=100", "log.samples_every=50", "log.params_every=50",
                          "metrics=[]"};
    assert_int_equal(run_file(GAUSS1D, "same_none.h5", base, 4, NULL, 0), 0);
    const char *with[] = {
        "metrics=[{plugin: divergence, every: 25, n_samples: 2000}]",
        "metrics=[{plugin: optimal_discriminator, every: 25, n_samples: 2000}]",
        "metrics=[{plugin: d_landscape, every: 25}]",
        "metrics=[{plugin: latent_interpolation, every: 25}]",
        "metrics=[{plugin: mode_coverage, every: 25}]",
    };
    for (size_t k = 0; k < sizeof with / sizeof with[0]; k++) {
        const char *sets[] = {base[0], base[1], base[2], with[k]};
        assert_int_equal(run_file(GAUSS1D, "same_with.h5", sets, 4, NULL, 0), 0);
        assert_int_equal(compare_group("same_none.h5", "same_with.h5", "/scalars"), 7);
        assert_true(compare_group("same_none.h5", "same_with.h5", "/final/generator") >= 6);
        assert_true(compare_group("same_none.h5", "same_with.h5", "/final/discriminator") >= 6);
        assert_true(compare_group("same_none.h5", "same_with.h5", "/params/generator") >= 7);
        assert_int_equal(compare_group("same_none.h5", "same_with.h5", "/samples"), 2);
    }
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_divergence_frozen_g),
        cmocka_unit_test(test_divergence_known_answer),
        cmocka_unit_test(test_divergence_training_lowers_js),
        cmocka_unit_test(test_mode_coverage_histogram),
        cmocka_unit_test(test_mode_coverage_histogram_per_mode),
        cmocka_unit_test(test_optimal_discriminator),
        cmocka_unit_test(test_d_landscape),
        cmocka_unit_test(test_latent_interpolation),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_training_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
