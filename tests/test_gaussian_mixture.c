/* The gaussian_mixture dataset plugin: mode layouts, sampling statistics,
 * weights, the exact density, determinism and config errors.  The plugin
 * source is included so its vtable and schema are reachable directly; the
 * config goes through agon_config_parse and agon_schema_apply as the host
 * does it. */
#include "test_util.h"

#include <math.h>

#include "../plugins/datasets/gaussian_mixture.c"

static const double test_pi = 3.14159265358979323846;

typedef struct gm_fixture {
    agon_config *cfg;
    void *state;
    agon_dataset_info info;
    agon_error err;
} gm_fixture;

/* Parses `yaml` (a document with a `dataset:` section), applies the schema
 * (unless `raw`) and runs create.  Returns create's status; the fixture
 * keeps the error. */
static int gm_open_ex(gm_fixture *f, const char *yaml, bool raw)
{
    static const char *const host_keys[] = {"plugin", NULL};
    agon_diag diag;
    agon_diag_init(&diag);
    memset(f, 0, sizeof *f);
    f->cfg = agon_config_parse(yaml, strlen(yaml), "gm.yaml", &diag);
    if (!f->cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *section = agon_node_get(agon_config_root(f->cfg), "dataset");
    assert_non_null(section);
    if (!raw && agon_schema_apply(f->cfg, section, gm_params, host_keys,
                                  "dataset 'gaussian_mixture'", &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    return gm_vtable.create(section, &f->state, &f->info, &f->err);
}

static int gm_open(gm_fixture *f, const char *yaml)
{
    return gm_open_ex(f, yaml, false);
}

static void gm_close(gm_fixture *f)
{
    gm_vtable.destroy(f->state);
    agon_config_destroy(f->cfg);
}

static void expect_error_ex(const char *yaml, bool raw, const char *message)
{
    gm_fixture f;
    assert_int_equal(gm_open_ex(&f, yaml, raw), AGON_ECONFIG);
    assert_null(f.state);
    assert_string_equal(f.err.message, message);
    agon_config_destroy(f.cfg);
}

static void expect_error(const char *yaml, const char *message)
{
    expect_error_ex(yaml, false, message);
}

/* Draws n samples into a malloc'ed [n, dim] buffer. */
static float *draw(gm_fixture *f, agon_rng *rng, int64_t n)
{
    int64_t dim = f->info.sample_shape.dim[0];
    float *buf = malloc((size_t)(n * dim) * sizeof *buf);
    assert_non_null(buf);
    int64_t dims[2] = {n, dim};
    agon_tensor t = {buf, agon_shape_make(2, dims)};
    agon_error err = {0};
    assert_int_equal(gm_vtable.next_batch(f->state, rng, &t, NULL, &err), 0);
    return buf;
}

static int64_t nearest(const gm_fixture *f, const float *x)
{
    int64_t dim = f->info.sample_shape.dim[0], best = -1;
    double best_sq = INFINITY;
    for (int64_t k = 0; k < f->info.n_modes; k++) {
        double sq = 0.0;
        for (int64_t j = 0; j < dim; j++) {
            double d = x[j] - f->info.mode_centres[k * dim + j];
            sq += d * d;
        }
        if (sq < best_sq) {
            best_sq = sq;
            best = k;
        }
    }
    return best;
}

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(gm_params, &err), 0);
}

static void test_ring(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"), 0);
    assert_int_equal(f.info.sample_shape.ndim, 1);
    assert_int_equal(f.info.sample_shape.dim[0], 2);
    assert_int_equal(f.info.size, -1);
    assert_int_equal(f.info.n_classes, 0);
    assert_int_equal(f.info.n_modes, 8);
    assert_float_equal(f.info.mode_std, 0.02, 1e-12);
    for (int k = 0; k < 8; k++) {
        assert_float_equal(f.info.mode_centres[2 * k], 2.0 * cos(2.0 * test_pi * k / 8), 1e-6);
        assert_float_equal(f.info.mode_centres[2 * k + 1], 2.0 * sin(2.0 * test_pi * k / 8),
                           1e-6);
    }
    /* Centres span [-2, 2] in both coordinates; 4 std = 0.08 beyond. */
    for (int j = 0; j < 2; j++) {
        assert_float_equal(f.info.bounds_lo[j], -2.08, 1e-6);
        assert_float_equal(f.info.bounds_hi[j], 2.08, 1e-6);
    }
    assert_non_null(f.info.density);
    gm_close(&f);

    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"
                                 "  modes: 5\n  radius: 3\n  std: 0.1\n"), 0);
    assert_int_equal(f.info.n_modes, 5);
    assert_float_equal(f.info.mode_std, 0.1, 1e-12);
    for (int k = 0; k < 5; k++) {
        assert_float_equal(f.info.mode_centres[2 * k], 3.0 * cos(2.0 * test_pi * k / 5), 1e-6);
        assert_float_equal(f.info.mode_centres[2 * k + 1], 3.0 * sin(2.0 * test_pi * k / 5),
                           1e-6);
    }
    gm_close(&f);
}

static void test_grid(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: grid\n"), 0);
    assert_int_equal(f.info.n_modes, 25);
    assert_int_equal(f.info.sample_shape.dim[0], 2);
    /* Mode r*5 + c at ((c - 2) * 2, (r - 2) * 2): -4, -2, 0, 2, 4 on each axis. */
    for (int r = 0; r < 5; r++) {
        for (int c = 0; c < 5; c++) {
            int k = r * 5 + c;
            assert_float_equal(f.info.mode_centres[2 * k], (c - 2) * 2.0, 1e-6);
            assert_float_equal(f.info.mode_centres[2 * k + 1], (r - 2) * 2.0, 1e-6);
        }
    }
    for (int j = 0; j < 2; j++) {
        assert_float_equal(f.info.bounds_lo[j], -4.08, 1e-6);
        assert_float_equal(f.info.bounds_hi[j], 4.08, 1e-6);
    }
    gm_close(&f);

    /* 2 x 3 with spacing 1: x in {-1, 0, 1}, y in {-0.5, 0.5}. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: grid\n"
                                 "  rows: 2\n  cols: 3\n  spacing: 1\n"), 0);
    assert_int_equal(f.info.n_modes, 6);
    const float want[12] = {-1, -0.5f, 0, -0.5f, 1, -0.5f, -1, 0.5f, 0, 0.5f, 1, 0.5f};
    for (int i = 0; i < 12; i++)
        assert_float_equal(f.info.mode_centres[i], want[i], 1e-6);
    gm_close(&f);
}

static void test_line(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"), 0);
    assert_int_equal(f.info.sample_shape.ndim, 1);
    assert_int_equal(f.info.sample_shape.dim[0], 1);
    assert_int_equal(f.info.n_modes, 2);
    assert_float_equal(f.info.mode_centres[0], -2.0, 0.0);
    assert_float_equal(f.info.mode_centres[1], 2.0, 0.0);
    assert_float_equal(f.info.mode_std, 0.02, 1e-12);
    gm_close(&f);

    /* Per-mode stds: mode_std reports the largest, and the bounds use it. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [-2, 0, 3]\n  stds: [0.1, 0.5, 0.2]\n"), 0);
    assert_int_equal(f.info.n_modes, 3);
    assert_float_equal(f.info.mode_std, 0.5, 1e-12);
    assert_float_equal(f.info.bounds_lo[0], -2.0 - 4 * 0.5, 1e-6);
    assert_float_equal(f.info.bounds_hi[0], 3.0 + 4 * 0.5, 1e-6);
    gm_close(&f);
}

static void test_explicit(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: explicit\n"
                                 "  centres: [[0, 0, 1], [2, -2, 2.5]]\n  std: 0.5\n"), 0);
    assert_int_equal(f.info.sample_shape.dim[0], 3);
    assert_int_equal(f.info.n_modes, 2);
    const float want[6] = {0, 0, 1, 2, -2, 2.5f};
    for (int i = 0; i < 6; i++)
        assert_float_equal(f.info.mode_centres[i], want[i], 0.0);
    const float lo[3] = {-2, -4, -1}, hi[3] = {4, 2, 4.5f};
    for (int j = 0; j < 3; j++) {
        assert_float_equal(f.info.bounds_lo[j], lo[j], 1e-6);
        assert_float_equal(f.info.bounds_hi[j], hi[j], 1e-6);
    }
    gm_close(&f);
}

/* Per mode: the sample mean is the centre within 5 standard errors and the
 * sample std is the configured std within 3% (its relative standard error
 * is 1/sqrt(2 n) = 0.7% at n = 10000). */
static void check_mode_statistics(gm_fixture *f, int64_t n, const double *want_std,
                                  const double *want_frac)
{
    agon_rng rng;
    agon_rng_seed(&rng, 7, "data");
    float *x = draw(f, &rng, n);
    int64_t dim = f->info.sample_shape.dim[0], K = f->info.n_modes;
    double *sum = calloc((size_t)(K * dim), sizeof *sum);
    double *sumsq = calloc((size_t)(K * dim), sizeof *sumsq);
    int64_t *count = calloc((size_t)K, sizeof *count);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = nearest(f, x + i * dim);
        count[k]++;
        for (int64_t j = 0; j < dim; j++) {
            double d = x[i * dim + j] - f->info.mode_centres[k * dim + j];
            sum[k * dim + j] += d;
            sumsq[k * dim + j] += d * d;
        }
    }
    for (int64_t k = 0; k < K; k++) {
        /* Binomial count within 5 standard deviations. */
        double expect = want_frac[k] * (double)n;
        double sd = sqrt((double)n * want_frac[k] * (1.0 - want_frac[k]));
        assert_true(fabs((double)count[k] - expect) <= 5.0 * sd + 0.5);
        if (count[k] < 1000)
            continue;
        for (int64_t j = 0; j < dim; j++) {
            double mean = sum[k * dim + j] / (double)count[k];
            double var = sumsq[k * dim + j] / (double)count[k] - mean * mean;
            assert_true(fabs(mean) <= 5.0 * want_std[k] / sqrt((double)count[k]));
            assert_float_equal(sqrt(var), want_std[k], 0.03 * want_std[k]);
        }
    }
    free(sum);
    free(sumsq);
    free(count);
    free(x);
}

static void test_sample_statistics_ring(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"), 0);
    double stds[8], frac[8];
    for (int k = 0; k < 8; k++) {
        stds[k] = 0.02;
        frac[k] = 1.0 / 8;
    }
    check_mode_statistics(&f, 80000, stds, frac);
    gm_close(&f);
}

static void test_sample_statistics_line_stds(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [-4, 4]\n  stds: [0.1, 0.6]\n"), 0);
    const double stds[2] = {0.1, 0.6}, frac[2] = {0.5, 0.5};
    check_mode_statistics(&f, 40000, stds, frac);
    gm_close(&f);
}

/* Weights [1, 0, 3] are normalised to 1/4, 0, 3/4; a zero weight is never drawn. */
static void test_weights(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [-2, 0, 2]\n  std: 0.1\n  weights: [1, 0, 3]\n"), 0);
    const double stds[3] = {0.1, 0.1, 0.1}, frac[3] = {0.25, 0.0, 0.75};
    check_mode_statistics(&f, 40000, stds, frac);
    gm_close(&f);

    /* A zero-weight last mode is never drawn either. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"
                                 "  modes: 3\n  weights: [2, 2, 0]\n"), 0);
    const double stds2[3] = {0.02, 0.02, 0.02}, frac2[3] = {0.5, 0.5, 0.0};
    check_mode_statistics(&f, 20000, stds2, frac2);
    gm_close(&f);
}

/* The inverse of an odd number modulo 2^64 (Newton's iteration; each step
 * doubles the correct low bits, starting from 3). */
static uint64_t inverse_mod_2_64(uint64_t a)
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

/* Sets the xoshiro256** state so that the next agon_rng_u64 returns `r`:
 * its output is rotl(s[1] * 5, 7) * 9, which can be solved for s[1]. */
static void rng_next_u64_is(agon_rng *rng, uint64_t r)
{
    agon_rng_seed(rng, 99, "forced");
    uint64_t v = r * inverse_mod_2_64(9);
    v = (v >> 7) | (v << 57);
    rng->s[1] = v * inverse_mod_2_64(5);
}

/* Draws one sample with the largest uniform the rng can return,
 * 1 - 2^-53, as the mode pick, and returns the mode it came from. */
static int64_t mode_of_top_uniform(gm_fixture *f)
{
    agon_rng rng;
    rng_next_u64_is(&rng, UINT64_MAX);
    agon_rng probe = rng;
    assert_true(agon_rng_uniform(&probe) == 1.0 - 0x1.0p-53);
    float *x = draw(f, &rng, 1);
    int64_t k = nearest(f, x);
    free(x);
    return k;
}

/* Ten weights 0.1 and a trailing 0.  The cumulative weights must reach
 * exactly 1 at the last positive-weight mode (a uniform draw is < 1, so it
 * then never passes beyond it), and the zero-weight mode is never drawn. */
static void test_trailing_zero_weight(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]\n"
                                 "  std: 0.1\n"
                                 "  weights: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, "
                                 "0.1, 0]\n"), 0);
    const gm_state *s = f.state;
    assert_int_equal(s->n_modes, 11);
    assert_true(s->cum[10] == 1.0);
    assert_true(s->cum[9] == 1.0);
    assert_true(s->weight[10] == 0.0);

    enum { N = 100000 };
    agon_rng rng;
    agon_rng_seed(&rng, 21, "data");
    float *x = draw(&f, &rng, N);
    int64_t count[11] = {0};
    for (int64_t i = 0; i < N; i++)
        count[nearest(&f, x + i)]++;
    free(x);
    assert_int_equal(count[10], 0);
    /* The others: 10000 each, binomial sd 95. */
    for (int k = 0; k < 10; k++)
        assert_true(count[k] > 10000 - 475 && count[k] < 10000 + 475);
    assert_int_equal(mode_of_top_uniform(&f), 9);
    gm_close(&f);

    /* Five weights 0.3 normalise to a cumulative sum that rounds to
     * 1 - 2^-53, not 1: the top uniform would land beyond it, in the
     * zero-weight mode, unless the cumulative weights are pinned to 1. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [0, 10, 20, 30, 40, 50]\n  std: 0.1\n"
                                 "  weights: [0.3, 0.3, 0.3, 0.3, 0.3, 0]\n"), 0);
    s = f.state;
    assert_true(s->cum[5] == 1.0);
    assert_true(s->cum[4] == 1.0);
    assert_int_equal(mode_of_top_uniform(&f), 4);
    gm_close(&f);
}

/* Midpoint rule over the bounding box with a step of half a std: for a
 * Gaussian that rule is accurate far beyond the tolerance, and the mass
 * outside the box (beyond 4 std) is about 2e-5. */
static void test_density_integrates_to_one(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"), 0);
    const int steps = 416;
    double hx = (f.info.bounds_hi[0] - f.info.bounds_lo[0]) / steps;
    double hy = (f.info.bounds_hi[1] - f.info.bounds_lo[1]) / steps;
    double total = 0.0;
    for (int a = 0; a < steps; a++) {
        for (int b = 0; b < steps; b++) {
            float x[2] = {(float)(f.info.bounds_lo[0] + (a + 0.5) * hx),
                          (float)(f.info.bounds_lo[1] + (b + 0.5) * hy)};
            total += f.info.density(f.state, x) * hx * hy;
        }
    }
    assert_float_equal(total, 1.0, 1e-4);
    gm_close(&f);
}

static void test_density_formula(void **state)
{
    gm_fixture f;
    /* Ring: at a centre the other modes are >= 1.53 = 76 std away, so
     * p = (1/8) / (2 pi 0.02^2) = 49.735919716217296. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"), 0);
    float c[2] = {f.info.mode_centres[4], f.info.mode_centres[5]};
    assert_float_equal(f.info.density(f.state, c), 49.735919716217296, 1e-6 * 49.7);
    gm_close(&f);

    /* Line, means [-1, 1], std 1, weights [1, 3] -> 1/4, 3/4; at x = 0.5:
     * p = (0.25 exp(-1.5^2/2) + 0.75 exp(-0.5^2/2)) / sqrt(2 pi). */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                                 "  means: [-1, 1]\n  std: 1\n  weights: [1, 3]\n"), 0);
    float x = 0.5f;
    double want = (0.25 * exp(-1.125) + 0.75 * exp(-0.125)) / sqrt(2.0 * test_pi);
    assert_float_equal(f.info.density(f.state, &x), want, 1e-12);
    gm_close(&f);

    /* Explicit 3-D, one mode, std 0.5: the product of three 1-D pdfs. */
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: explicit\n"
                                 "  centres: [[1, 2, 3]]\n  std: 0.5\n"), 0);
    float y[3] = {1.5f, 2.0f, 2.0f};
    double z2 = (0.5 / 0.5) * (0.5 / 0.5) + 0.0 + (1.0 / 0.5) * (1.0 / 0.5);
    want = exp(-0.5 * z2) / pow(0.5 * sqrt(2.0 * test_pi), 3);
    assert_float_equal(f.info.density(f.state, y), want, 1e-12);
    gm_close(&f);
}

static void test_determinism(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n  layout: grid\n"), 0);
    agon_rng r1, r2, r3;
    agon_rng_seed(&r1, 123, "data");
    agon_rng_seed(&r2, 123, "data");
    agon_rng_seed(&r3, 124, "data");
    float *a = draw(&f, &r1, 1000);
    float *b = draw(&f, &r2, 1000);
    float *c = draw(&f, &r3, 1000);
    assert_memory_equal(a, b, 2000 * sizeof(float));
    assert_true(memcmp(a, c, 2000 * sizeof(float)) != 0);
    /* The stream continues identically from the same state. */
    free(a);
    free(b);
    a = draw(&f, &r1, 10);
    b = draw(&f, &r2, 10);
    assert_memory_equal(a, b, 20 * sizeof(float));
    free(a);
    free(b);
    free(c);
    gm_close(&f);
}

static void test_batch_shape_mismatch(void **state)
{
    gm_fixture f;
    assert_int_equal(gm_open(&f, "dataset:\n  plugin: gaussian_mixture\n"), 0);
    float buf[12];
    int64_t dims[2] = {4, 3};
    agon_tensor t = {buf, agon_shape_make(2, dims)};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "data");
    agon_error err = {0};
    assert_int_equal(gm_vtable.next_batch(f.state, &rng, &t, NULL, &err), AGON_EINTERNAL);
    assert_string_equal(err.message,
                        "gaussian_mixture: batch tensor has shape [4, 3], expected [n, 2]");
    gm_close(&f);
}

static void test_config_errors(void **state)
{
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: explicit\n",
                 "gm.yaml:3:11: dataset.layout: layout 'explicit' needs at least one centre; "
                 "give centres, e.g. centres: [[0, 0], [2, 2]]");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: explicit\n  centres: []\n",
                 "gm.yaml:4:12: dataset.centres: layout 'explicit' needs at least one centre; "
                 "give centres, e.g. centres: [[0, 0], [2, 2]]");
    /* The host's schema check rejects ragged rows before create runs; the
     * plugin's own check covers create called without it. */
    expect_error_ex("dataset:\n  plugin: gaussian_mixture\n  layout: explicit\n"
                    "  centres: [[0, 0], [1, 2, 3]]\n",
                    true,
                    "gm.yaml:4:21: dataset.centres[1]: has 3 coordinates but centres[0] has "
                    "2; give every centre the same dimension");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                 "  means: [-1, 0, 1]\n  stds: [0.1, 0.2]\n",
                 "gm.yaml:5:9: dataset.stds: has 2 entries but means has 3; "
                 "give one std per mode, or [] to use std for every mode");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                 "  means: [-1, 1]\n  stds: [0.1]\n",
                 "gm.yaml:5:9: dataset.stds: has 1 entry but means has 2; "
                 "give one std per mode, or [] to use std for every mode");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n"
                 "  means: [-1, 1]\n  stds: [0.1, 0]\n",
                 "gm.yaml:5:15: dataset.stds[1]: a std must be a positive number, got 0");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n  means: []\n",
                 "gm.yaml:4:10: dataset.means: layout 'line' needs at least one mode; "
                 "give means, e.g. means: [-2, 2]");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  weights: [1, 2]\n",
                 "gm.yaml:3:12: dataset.weights: has 2 entries but the layout has 8 modes; "
                 "give one weight per mode, or [] for uniform weights");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n  weights: [1, -1]\n",
                 "gm.yaml:4:16: dataset.weights[1]: a weight must be a finite number >= 0, "
                 "got -1");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: line\n  weights: [0, 0]\n",
                 "gm.yaml:4:12: dataset.weights: the weights sum to 0; "
                 "give at least one positive weight");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  std: -1\n",
                 "gm.yaml:3:8: dataset.std: must be a positive number, got -1");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  radius: 0\n",
                 "gm.yaml:3:11: dataset.radius: must be a positive number, got 0");
    expect_error("dataset:\n  plugin: gaussian_mixture\n  layout: grid\n  spacing: -2\n",
                 "gm.yaml:4:12: dataset.spacing: must be a positive number, got -2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_explicit),
        cmocka_unit_test(test_sample_statistics_ring),
        cmocka_unit_test(test_sample_statistics_line_stds),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_trailing_zero_weight),
        cmocka_unit_test(test_density_integrates_to_one),
        cmocka_unit_test(test_density_formula),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_batch_shape_mismatch),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests_name("gaussian_mixture", tests, NULL, NULL);
}
