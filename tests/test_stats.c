/* The metric numerics of agon/stats.h against closed forms and hand-worked
 * cases: symmetric eigen-decomposition, Gaussian fits and the Fréchet
 * distance, k-NN precision/recall/density/coverage (also against a plain
 * double brute force), grids, kernel density estimates, divergences, class
 * histograms and the Inception-Score formula, and their errors word for
 * word. */
#include "test_util.h"

#include <math.h>

#include "agon/stats.h"

/* ---- helpers ------------------------------------------------------------------- */

static void near(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g, want %.17g (tolerance %g)", what, got, want, tol);
}

static void ok(int rc, const agon_error *err)
{
    if (rc != 0)
        fail_msg("unexpected failure %d: %s", rc, err->message);
}

static void fails(int rc, int want_rc, const agon_error *err, const char *message)
{
    assert_int_equal(rc, want_rc);
    assert_int_equal(err->code, want_rc);
    assert_string_equal(err->message, message);
}

/* A random symmetric positive definite d x d matrix B B^T + d/10 I. */
static void random_spd(agon_rng *rng, int64_t d, double *a)
{
    double *b = malloc((size_t)(d * d) * sizeof *b);
    assert_non_null(b);
    for (int64_t i = 0; i < d * d; i++)
        b[i] = agon_rng_normal(rng);
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j < d; j++) {
            double s = i == j ? 0.1 * (double)d : 0.0;
            for (int64_t k = 0; k < d; k++)
                s += b[i * d + k] * b[j * d + k];
            a[i * d + j] = s;
        }
    }
    free(b);
}

/* ---- symmetric eigen-decomposition ------------------------------------------------ */

static void test_sym_eigen_2x2(void **state)
{
    (void)state;
    /* [[2, 1], [1, 2]]: eigenvalues 1 and 3 with eigenvectors (1, -1)/sqrt 2
     * and (1, 1)/sqrt 2.  The upper triangle holds garbage that must not be
     * read. */
    double a[4] = {2.0, 99.0, 1.0, 2.0}, saved[4], w[2], v[4], w_only[2];
    memcpy(saved, a, sizeof a);
    agon_error err = {0};
    ok(agon_sym_eigen(2, a, w, v, &err), &err);
    assert_memory_equal(a, saved, sizeof a);
    near(w[0], 1.0, 1e-14, "w[0]");
    near(w[1], 3.0, 1e-14, "w[1]");
    double r = 1.0 / sqrt(2.0);
    /* Column j is eigenvector j, up to its sign. */
    near(fabs(v[0 * 2 + 0]), r, 1e-14, "|v00|");
    near(fabs(v[1 * 2 + 0]), r, 1e-14, "|v10|");
    assert_true(v[0 * 2 + 0] * v[1 * 2 + 0] < 0.0);
    near(fabs(v[0 * 2 + 1]), r, 1e-14, "|v01|");
    near(fabs(v[1 * 2 + 1]), r, 1e-14, "|v11|");
    assert_true(v[0 * 2 + 1] * v[1 * 2 + 1] > 0.0);
    ok(agon_sym_eigen(2, a, w_only, NULL, &err), &err);
    near(w_only[0], 1.0, 1e-14, "values only w[0]");
    near(w_only[1], 3.0, 1e-14, "values only w[1]");
}

static void test_sym_eigen_random_6x6(void **state)
{
    (void)state;
    enum { N = 6 };
    agon_rng rng;
    agon_rng_seed(&rng, 11, "eigen");
    double a[N * N], lower[N * N], w[N], v[N * N], w2[N], v2[N * N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j <= i; j++)
            a[i * N + j] = a[j * N + i] = agon_rng_normal(&rng);
    }
    /* Only the lower triangle is read: NaN above the diagonal changes nothing. */
    memcpy(lower, a, sizeof a);
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++)
            lower[i * N + j] = NAN;
    }
    agon_error err = {0};
    ok(agon_sym_eigen(N, a, w, v, &err), &err);
    ok(agon_sym_eigen(N, lower, w2, v2, &err), &err);
    assert_memory_equal(w, w2, sizeof w);
    assert_memory_equal(v, v2, sizeof v);
    for (int j = 1; j < N; j++)
        assert_true(w[j - 1] <= w[j]);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            double rec = 0.0, dot = 0.0;
            for (int k = 0; k < N; k++) {
                rec += v[i * N + k] * w[k] * v[j * N + k];
                dot += v[k * N + i] * v[k * N + j];
            }
            near(rec, a[i * N + j], 1e-10, "V diag(w) V^T");
            near(dot, i == j ? 1.0 : 0.0, 1e-10, "V^T V");
        }
    }
}

static void test_sym_eigen_not_finite(void **state)
{
    (void)state;
    double a[4] = {1.0, 0.0, NAN, 1.0}, w[2];
    agon_error err = {0};
    fails(agon_sym_eigen(2, a, w, NULL, &err), AGON_EDATA, &err,
          "symmetric eigen-decomposition: a[1, 0] = nan is not finite; pass a matrix of finite "
          "values");
}

/* ---- Gaussian fits ------------------------------------------------------------------ */

static void test_gaussian_fit_hand(void **state)
{
    (void)state;
    /* Rows (0, 0), (1, 2), (2, 1), (3, 5): mean (1.5, 2); centred rows
     * (-1.5, -2), (-0.5, 0), (0.5, -1), (1.5, 3), so with n - 1 = 3
     *   var x  = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3,
     *   var y  = (4 + 0 + 1 + 9) / 3 = 14/3,
     *   cov xy = (3 + 0 - 0.5 + 4.5) / 3 = 7/3. */
    const float x[8] = {0, 0, 1, 2, 2, 1, 3, 5};
    double mean[2], cov[4];
    agon_error err = {0};
    ok(agon_gaussian_fit(x, 4, 2, mean, cov, &err), &err);
    near(mean[0], 1.5, 1e-15, "mean x");
    near(mean[1], 2.0, 1e-15, "mean y");
    near(cov[0], 5.0 / 3.0, 1e-15, "var x");
    near(cov[3], 14.0 / 3.0, 1e-15, "var y");
    near(cov[1], 7.0 / 3.0, 1e-15, "cov xy");
    near(cov[2], 7.0 / 3.0, 1e-15, "cov yx");

    fails(agon_gaussian_fit(x, 1, 2, mean, cov, &err), AGON_EDATA, &err,
          "gaussian fit: 1 sample(s); a covariance needs at least 2");
}

/* Against the definition, with more rows and columns than the blocks the
 * fit works in. */
static void test_gaussian_fit_large(void **state)
{
    (void)state;
    enum { N = 300, D = 260 };
    agon_rng rng;
    agon_rng_seed(&rng, 7, "fit");
    float *x = malloc(N * D * sizeof *x);
    double *mean = malloc(D * sizeof *mean), *cov = malloc(D * D * sizeof *cov);
    assert_true(x && mean && cov);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)(agon_rng_normal(&rng) * (1.0 + j % 5) + 0.01 * j);
    }
    agon_error err = {0};
    ok(agon_gaussian_fit(x, N, D, mean, cov, &err), &err);
    for (int j = 0; j < D; j++) {
        double m = 0.0;
        for (int i = 0; i < N; i++)
            m += x[i * D + j];
        near(mean[j], m / N, 1e-12, "mean");
    }
    for (int a = 0; a < D; a += 7) {
        for (int b = 0; b < D; b++) {
            double c = 0.0;
            for (int i = 0; i < N; i++)
                c += (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]);
            near(cov[a * D + b], c / (N - 1), 1e-11, "covariance");
            assert_true(cov[a * D + b] == cov[b * D + a]);
        }
    }
    free(x);
    free(mean);
    free(cov);
}

/* ---- Fréchet distance ---------------------------------------------------------------- */

static double frechet(int64_t d, const double *mu1, const double *cov1, const double *mu2,
                      const double *cov2)
{
    agon_error err = {0};
    double fd = -1.0;
    ok(agon_frechet_distance(d, mu1, cov1, mu2, cov2, &fd, &err), &err);
    assert_true(fd >= 0.0);
    return fd;
}

static void test_frechet_identical(void **state)
{
    (void)state;
    enum { D = 6 };
    agon_rng rng;
    agon_rng_seed(&rng, 5, "frechet");
    double mu[D], cov[D * D];
    for (int i = 0; i < D; i++)
        mu[i] = agon_rng_normal(&rng);
    random_spd(&rng, D, cov);
    near(frechet(D, mu, cov, mu, cov), 0.0, 1e-9, "FD of identical Gaussians");
}

/* Large enough for the blocked products in double to use several tiles. */
static void test_frechet_scaled_large(void **state)
{
    (void)state;
    /* For C2 = c^2 C1: Tr sqrt(C1 C2) = c Tr C1, so FD = (1 - c)^2 Tr C1,
     * here with c = 3 and equal means: 4 Tr C1. */
    enum { D = 300 };
    agon_rng rng;
    agon_rng_seed(&rng, 6, "frechet");
    double *c1 = malloc(D * D * sizeof *c1), *c2 = malloc(D * D * sizeof *c2);
    double mu[D] = {0}, trace = 0.0;
    assert_true(c1 && c2);
    random_spd(&rng, D, c1);
    for (int i = 0; i < D * D; i++)
        c2[i] = 9.0 * c1[i];
    for (int i = 0; i < D; i++)
        trace += c1[i * D + i];
    near(frechet(D, mu, c1, mu, c2), 4.0 * trace, 1e-9 * trace, "FD(C, 9 C)");
    near(frechet(D, mu, c2, mu, c1), 4.0 * trace, 1e-9 * trace, "FD(9 C, C)");
    free(c1);
    free(c2);
}

static void test_frechet_diagonal(void **state)
{
    (void)state;
    /* Commuting (diagonal) covariances: Tr sqrt(C1 C2) = sum sqrt(a_i b_i),
     * so FD = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.  A zero
     * variance (a singular cov2) is allowed. */
    enum { D = 3 };
    const double a[D] = {1.0, 4.0, 9.0}, b[D] = {4.0, 1.0, 0.0};
    const double mu1[D] = {0.0, 1.0, -2.0}, mu2[D] = {0.5, -1.0, 1.0};
    double cov1[D * D] = {0}, cov2[D * D] = {0}, want = 0.0;
    for (int i = 0; i < D; i++) {
        cov1[i * D + i] = a[i];
        cov2[i * D + i] = b[i];
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) +
                (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    near(frechet(D, mu1, cov1, mu2, cov2), want, 1e-12, "diagonal FD");
    near(frechet(D, mu2, cov2, mu1, cov1), want, 1e-12, "diagonal FD, swapped");
}

static void test_frechet_noncommuting_2d(void **state)
{
    (void)state;
    /* S1 = [[2, 1], [1, 2]] and S2 = [[1, 0], [0, 3]] do not commute.  The
     * eigenvalues l1, l2 of M = S1 S2 are those of S1^1/2 S2 S1^1/2 >= 0, so
     * Tr sqrt(M) = sqrt(l1) + sqrt(l2) = sqrt(tr M + 2 sqrt(det M)), with
     * M = [[2, 3], [1, 6]]: tr M = 8, det M = det S1 det S2 = 3 x 3 = 9,
     * Tr sqrt(M) = sqrt(14).  With mu2 - mu1 = (1, 2):
     * FD = 5 + 4 + 4 - 2 sqrt(14). */
    const double s1[4] = {2.0, 1.0, 1.0, 2.0}, s2[4] = {1.0, 0.0, 0.0, 3.0};
    const double mu1[2] = {0.0, 0.0}, mu2[2] = {1.0, 2.0};
    double m[4];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++)
            m[i * 2 + j] = s1[i * 2 + 0] * s2[0 * 2 + j] + s1[i * 2 + 1] * s2[1 * 2 + j];
    }
    double tr_m = m[0] + m[3], det_m = m[0] * m[3] - m[1] * m[2];
    near(tr_m, 8.0, 0.0, "tr S1 S2");
    near(det_m, 9.0, 0.0, "det S1 S2");
    double want = 5.0 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2.0 * sqrt(tr_m + 2.0 * sqrt(det_m));
    near(want, 13.0 - 2.0 * sqrt(14.0), 1e-15, "closed form");
    near(frechet(2, mu1, s1, mu2, s2), want, 1e-12, "FD(S1, S2)");
    near(frechet(2, mu2, s2, mu1, s1), want, 1e-12, "FD(S2, S1)");
}

/* Mean FD over `reps` pairs of independent n-sample fits of N(mu, L L^T). */
static double sampled_frechet(agon_rng *rng, int64_t n, int reps)
{
    enum { D = 4 };
    const double mu[D] = {1.0, -2.0, 0.5, 3.0};
    const double l[D * D] = {1.0, 0.0, 0.0, 0.0, 0.5, 2.0, 0.0, 0.0,
                             -0.3, 0.4, 0.7, 0.0, 0.2, -1.0, 0.3, 1.5};
    float *x = malloc((size_t)(n * D) * sizeof *x);
    assert_non_null(x);
    double total = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        double m[2][D], c[2][D * D];
        for (int set = 0; set < 2; set++) {
            for (int64_t i = 0; i < n; i++) {
                double z[D];
                for (int k = 0; k < D; k++)
                    z[k] = agon_rng_normal(rng);
                for (int r = 0; r < D; r++) {
                    double s = mu[r];
                    for (int k = 0; k < D; k++)
                        s += l[r * D + k] * z[k];
                    x[i * D + r] = (float)s;
                }
            }
            agon_error err = {0};
            ok(agon_gaussian_fit(x, n, D, m[set], c[set], &err), &err);
        }
        total += frechet(D, m[0], c[0], m[1], c[1]);
    }
    free(x);
    return total / reps;
}

static void test_frechet_from_samples(void **state)
{
    (void)state;
    agon_rng rng;
    agon_rng_seed(&rng, 21, "frechet samples");
    /* Sampling noise makes E[FD] ~ (a constant) / n, here of order 1 / n
     * for the trace 8.35 of the covariance; 16 x more samples should cut
     * it by about 16. */
    double small = sampled_frechet(&rng, 500, 4);
    double large = sampled_frechet(&rng, 8000, 4);
    assert_true(small > 0.0);
    if (!(small < 0.2))
        fail_msg("FD of 500-sample fits of one Gaussian is %g, want < 0.2", small);
    if (!(large < small / 4.0))
        fail_msg("FD did not shrink with n: %g at n = 500, %g at n = 8000", small, large);
}

static void test_frechet_not_psd(void **state)
{
    (void)state;
    const double mu[2] = {0.0, 0.0}, good[4] = {1.0, 0.0, 0.0, 1.0};
    const double bad1[4] = {2.0, 0.0, 0.0, -0.5}, bad2[4] = {1.0, 2.0, 2.0, 1.0};
    double fd;
    agon_error err = {0};
    fails(agon_frechet_distance(2, mu, bad1, mu, good, &fd, &err), AGON_ENUMERIC, &err,
          "frechet distance: covariance 1 is not positive semi-definite (eigenvalue -0.5 < "
          "-1e-06 x largest 2); pass a covariance matrix");
    agon_error_clear(&err);
    fails(agon_frechet_distance(2, mu, good, mu, bad2, &fd, &err), AGON_ENUMERIC, &err,
          "frechet distance: covariance 2 is not positive semi-definite (eigenvalue -1 < "
          "-1e-06 x largest 3); pass a covariance matrix");

    /* A rounding-sized negative eigenvalue is taken as 0 under the square
     * root (the trace keeps it): diag(1, -1e-9) against the identity gives
     * Tr = (1 - 1e-9) + 2 and Tr sqrt(C1 C2) = 1 + 0, so FD = 1 - 1e-9. */
    const double tiny[4] = {1.0, 0.0, 0.0, -1e-9};
    near(frechet(2, mu, tiny, mu, good), 1.0 - 1e-9, 1e-12, "FD with a -1e-9 eigenvalue");
}

/* ---- precision, recall, density, coverage ---------------------------------------------- */

static agon_prdc prdc(const float *real, int64_t nr, const float *fake, int64_t nf, int64_t d,
                      int64_t k)
{
    agon_prdc p = {-1, -1, -1, -1};
    agon_error err = {0};
    ok(agon_prdc_compute(real, nr, fake, nf, d, k, &p, &err), &err);
    return p;
}

static void test_prdc_self(void **state)
{
    (void)state;
    enum { N = 200, D = 8, K = 5 };
    agon_rng rng;
    agon_rng_seed(&rng, 3, "prdc");
    float *x = malloc(N * D * sizeof *x);
    assert_non_null(x);
    agon_rng_fill_normal(&rng, x, N * D, 0.0f, 1.0f);
    agon_prdc p = prdc(x, N, x, N, D, K);
    assert_true(p.precision == 1.0);
    assert_true(p.recall == 1.0);
    assert_true(p.coverage == 1.0);
    /* Without ties each real ball holds its own copy and its K nearest
     * neighbours: N (K + 1) memberships over K N. */
    near(p.density, (K + 1.0) / K, 1e-12, "density of a set against itself");
    free(x);
}

static void test_prdc_far_apart(void **state)
{
    (void)state;
    enum { N = 100, D = 3, K = 3 };
    agon_rng rng;
    agon_rng_seed(&rng, 4, "prdc");
    float real[N * D], fake[N * D];
    agon_rng_fill_normal(&rng, real, N * D, 0.0f, 1.0f);
    agon_rng_fill_normal(&rng, fake, N * D, 1000.0f, 1.0f);
    agon_prdc p = prdc(real, N, fake, N, D, K);
    assert_true(p.precision == 0.0);
    assert_true(p.recall == 0.0);
    assert_true(p.density == 0.0);
    assert_true(p.coverage == 0.0);
}

static void test_prdc_hand_1d(void **state)
{
    (void)state;
    /* k = 1.  real {0, 1, 3, 10, 11}, radii (nearest other real)
     *   {1, 1, 2, 1, 1};  fake {0.5, 5, 14, 20}, radii {4.5, 4.5, 6, 6}.
     * |real - fake|:      0.5    5     14    20
     *            0        0.5    5     14    20
     *            1        0.5    4     13    19
     *            3        2.5    2     11    17
     *           10        9.5    5      4    10
     *           11       10.5    6      3     9
     * Real balls holding each fake: 0.5 in those of 0 and 1; 5 in that of 3
     * (distance 2 = radius 2: balls are closed); 14 and 20 in none.
     *   precision = 2/4, density = (2 + 1 + 0 + 0) / (1 x 4) = 3/4,
     *   coverage: reals 0, 1, 3 hold a fake, 10 and 11 do not = 3/5.
     * Fake balls: 0.5 (4.5) holds 0, 1, 3; 14 (6) holds 10 and 11:
     *   recall = 5/5. */
    const float real[5] = {0, 1, 3, 10, 11}, fake[4] = {0.5f, 5, 14, 20};
    agon_prdc p = prdc(real, 5, fake, 4, 1, 1);
    near(p.precision, 0.5, 0.0, "precision");
    near(p.recall, 1.0, 0.0, "recall");
    near(p.density, 0.75, 0.0, "density");
    near(p.coverage, 0.6, 0.0, "coverage");
}

static void test_prdc_hand_2d(void **state)
{
    (void)state;
    /* k = 2.  real A(0,0) B(2,0) C(0,3) D(2,3) E(10,0).  Sorted distances
     * to the other reals: A {2, 3, sqrt13, 10}, B {2, 3, sqrt13, 8},
     * C {2, 3, sqrt13, sqrt109}, D {2, 3, sqrt13, sqrt73},
     * E {8, sqrt73, 10, sqrt109}: radii (2nd) 3, 3, 3, 3, sqrt73 = 8.544.
     * fake P(1,1.5) Q(3,0) S(10,9) T(10,11): PQ 2.5, PS sqrt137.25,
     * PT sqrt171.25, QS sqrt130, QT sqrt170, ST 2: radii sqrt137.25 = 11.72,
     * sqrt130 = 11.40, sqrt130, sqrt170 = 13.04.
     * |real - fake|:  P        Q        S         T
     *   A           1.80     3        13.45     14.87
     *   B           1.80     1        12.04     13.60
     *   C           1.80     4.24     11.66     12.81
     *   D           1.80     3.16     10        11.31
     *   E           9.12     7         9        11
     * P is in the balls of A, B, C, D (1.80 <= 3); Q in those of A (3 <= 3,
     * closed), B and E (7 <= 8.544); S and T in none:
     *   precision 2/4, density (4 + 3) / (2 x 4) = 7/8.
     * Every real holds P or (E) Q: coverage 1.  P's ball (11.72) holds all
     * reals: recall 1.  With k = 1 the radii shrink to 2, 2, 2, 2, 8 and Q
     * drops out of A's ball: density (4 + 2) / 4 = 3/2, and E is in no fake
     * ball (P's radius is 2.5 now; Q's 2.5 < 7; S's and T's 2 < 9, 11):
     * recall 4/5. */
    const float real[10] = {0, 0, 2, 0, 0, 3, 2, 3, 10, 0};
    const float fake[8] = {1, 1.5f, 3, 0, 10, 9, 10, 11};
    agon_prdc p = prdc(real, 5, fake, 4, 2, 2);
    near(p.precision, 0.5, 0.0, "k=2 precision");
    near(p.recall, 1.0, 0.0, "k=2 recall");
    near(p.density, 0.875, 0.0, "k=2 density");
    near(p.coverage, 1.0, 0.0, "k=2 coverage");
    p = prdc(real, 5, fake, 4, 2, 1);
    near(p.precision, 0.5, 0.0, "k=1 precision");
    near(p.recall, 0.8, 0.0, "k=1 recall");
    near(p.density, 1.5, 0.0, "k=1 density");
    near(p.coverage, 1.0, 0.0, "k=1 coverage");
}

/* The definitions computed directly: every squared distance in double,
 * radii by sorting. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double d2(const float *a, const float *b, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

static void brute_radii(const float *x, int64_t n, int64_t d, int64_t k, double *r2)
{
    double *row = malloc((size_t)n * sizeof *row);
    assert_non_null(row);
    for (int64_t i = 0; i < n; i++) {
        int64_t m = 0;
        for (int64_t j = 0; j < n; j++) {
            if (j != i)
                row[m++] = d2(x + i * d, x + j * d, d);
        }
        qsort(row, (size_t)m, sizeof *row, cmp_double);
        r2[i] = row[k - 1];
    }
    free(row);
}

static agon_prdc brute_prdc(const float *real, int64_t nr, const float *fake, int64_t nf,
                            int64_t d, int64_t k)
{
    double *rr = malloc((size_t)nr * sizeof *rr), *fr = malloc((size_t)nf * sizeof *fr);
    assert_true(rr && fr);
    brute_radii(real, nr, d, k, rr);
    brute_radii(fake, nf, d, k, fr);
    int64_t precise = 0, held = 0, covered = 0, recalled = 0;
    for (int64_t j = 0; j < nf; j++) {
        int64_t in = 0;
        for (int64_t i = 0; i < nr; i++)
            in += d2(real + i * d, fake + j * d, d) <= rr[i];
        precise += in > 0;
        held += in;
    }
    for (int64_t i = 0; i < nr; i++) {
        bool cov = false, rec = false;
        for (int64_t j = 0; j < nf; j++) {
            double t = d2(real + i * d, fake + j * d, d);
            cov = cov || t <= rr[i];
            rec = rec || t <= fr[j];
        }
        covered += cov;
        recalled += rec;
    }
    free(rr);
    free(fr);
    return (agon_prdc){(double)precise / nf, (double)recalled / nr,
                       (double)held / ((double)k * nf), (double)covered / nr};
}

static void check_against_brute(const float *real, int64_t nr, const float *fake, int64_t nf,
                                int64_t d, int64_t k, const char *what)
{
    agon_prdc got = prdc(real, nr, fake, nf, d, k), want = brute_prdc(real, nr, fake, nf, d, k);
    if (got.precision != want.precision || got.recall != want.recall ||
        got.density != want.density || got.coverage != want.coverage)
        fail_msg("%s, k = %lld: got p %.17g r %.17g d %.17g c %.17g, brute force p %.17g "
                 "r %.17g d %.17g c %.17g",
                 what, (long long)k, got.precision, got.recall, got.density, got.coverage,
                 want.precision, want.recall, want.density, want.coverage);
    /* Results that are all 0 or all 1 would not show much. */
    bool inside = (want.precision > 0.0 && want.precision < 1.0) ||
                  (want.recall > 0.0 && want.recall < 1.0);
    if (!inside || want.density == 0.0)
        fail_msg("%s, k = %lld: degenerate case p %g r %g d %g c %g", what, (long long)k,
                 want.precision, want.recall, want.density, want.coverage);
}

static void test_prdc_matches_brute_force(void **state)
{
    (void)state;
    enum { NR = 300, NF = 260, D = 16 };
    agon_rng rng;
    agon_rng_seed(&rng, 8, "prdc brute");
    float *real = malloc(NR * D * sizeof *real), *fake = malloc(NF * D * sizeof *fake);
    assert_true(real && fake);

    /* Overlapping Gaussians of different spread. */
    agon_rng_fill_normal(&rng, real, NR * D, 0.0f, 1.0f);
    agon_rng_fill_normal(&rng, fake, NF * D, 0.3f, 1.4f);
    check_against_brute(real, NR, fake, NF, D, 3, "gaussians");
    check_against_brute(real, NR, fake, NF, D, 10, "gaussians");
    /* k > 64 takes the search for large k. */
    check_against_brute(real, NR, fake, NF, D, 80, "gaussians");

    /* The same far from the origin, where a distance is a small
     * difference of large norms. */
    for (int i = 0; i < NR * D; i++)
        real[i] += 3000.0f;
    for (int i = 0; i < NF * D; i++)
        fake[i] += 3000.0f;
    check_against_brute(real, NR, fake, NF, D, 5, "offset gaussians");

    /* Points on small integer lattices, the fakes' shifted: duplicates and
     * exact ties between distances and radii everywhere. */
    for (int i = 0; i < NR * 3; i++)
        real[i] = (float)agon_rng_below(&rng, 4);
    for (int i = 0; i < NF * 3; i++)
        fake[i] = (float)(2 + agon_rng_below(&rng, 5));
    check_against_brute(real, NR, fake, NF, 3, 4, "lattice");
    check_against_brute(real, NR, fake, NF, 3, 40, "lattice");
    check_against_brute(real, NR, fake, NF, 3, 80, "lattice");
    free(real);
    free(fake);
}

/* Sets larger than the tiles in which the radius search visits the
 * products of a set with itself (512 x 512), so that rows see their
 * neighbours across several tiles, from either side of the diagonal. */
static void test_prdc_matches_brute_force_large(void **state)
{
    (void)state;
    enum { NR = 1300, NF = 1100, D = 4 };
    agon_rng rng;
    agon_rng_seed(&rng, 12, "prdc brute");
    float *real = malloc(NR * D * sizeof *real), *fake = malloc(NF * D * sizeof *fake);
    assert_true(real && fake);
    agon_rng_fill_normal(&rng, real, NR * D, 0.0f, 1.0f);
    agon_rng_fill_normal(&rng, fake, NF * D, 0.5f, 0.8f);
    check_against_brute(real, NR, fake, NF, D, 5, "large gaussians");
    check_against_brute(real, NR, fake, NF, D, 70, "large gaussians");
    for (int i = 0; i < NR * D; i++)
        real[i] = (float)agon_rng_below(&rng, 6);
    for (int i = 0; i < NF * D; i++)
        fake[i] = (float)(3 + agon_rng_below(&rng, 6));
    check_against_brute(real, NR, fake, NF, D, 7, "large lattice");
    free(real);
    free(fake);
}

static void test_prdc_errors(void **state)
{
    (void)state;
    const float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    agon_prdc p;
    agon_error err = {0};
    fails(agon_prdc_compute(x, 4, x, 8, 1, 4, &p, &err), AGON_EDATA, &err,
          "prdc: k = 4 needs more than k samples per set (got 4 real, 8 fake); lower k or pass "
          "more samples");
    agon_error_clear(&err);
    fails(agon_prdc_compute(x, 8, x, 3, 1, 5, &p, &err), AGON_EDATA, &err,
          "prdc: k = 5 needs more than k samples per set (got 8 real, 3 fake); lower k or pass "
          "more samples");
    agon_error_clear(&err);
    fails(agon_prdc_compute(x, 8, x, 8, 1, 0, &p, &err), AGON_EDATA, &err,
          "prdc: k = 0; pass k >= 1");
    const float nan_x[4] = {0, 1, NAN, 3};
    agon_error_clear(&err);
    fails(agon_prdc_compute(x, 4, nan_x, 2, 2, 1, &p, &err), AGON_EDATA, &err,
          "prdc: fake[1, 0] is not finite; pass finite features");
}

/* ---- grids and kernel density estimates --------------------------------------------------- */

static void test_grid_layout(void **state)
{
    (void)state;
    agon_grid g1 = {.d = 1, .per_axis = 4, .lo = {-2.0}, .hi = {2.0}};
    assert_int_equal(agon_grid_points(&g1), 4);
    near(agon_grid_cell(&g1), 1.0, 0.0, "1-D cell");
    double x[2];
    agon_grid_point(&g1, 0, x);
    near(x[0], -1.5, 0.0, "1-D point 0");
    agon_grid_point(&g1, 3, x);
    near(x[0], 1.5, 0.0, "1-D point 3");

    /* 2-D: the first coordinate varies slowest. */
    agon_grid g2 = {.d = 2, .per_axis = 5, .lo = {0.0, -1.0}, .hi = {10.0, 1.5}};
    assert_int_equal(agon_grid_points(&g2), 25);
    near(agon_grid_cell(&g2), 2.0 * 0.5, 1e-15, "2-D cell");
    agon_grid_point(&g2, 1 * 5 + 3, x);
    near(x[0], 3.0, 1e-15, "2-D point (1, 3) x");
    near(x[1], 0.75, 1e-15, "2-D point (1, 3) y");
}

static void test_kde_scott_hand(void **state)
{
    (void)state;
    /* 1-D {0, 1, 2, 3}: unbiased variance (2.25 + 0.25 + 0.25 + 2.25) / 3
     * = 5/3, h = sqrt(5/3) 4^(-1/5). */
    const float x1[4] = {0, 1, 2, 3};
    near(agon_kde_bandwidth_scott(x1, 4, 1), sqrt(5.0 / 3.0) * pow(4.0, -0.2), 1e-15,
         "1-D Scott");
    /* 2-D rows (0, 0), (2, 0), (0, 4), (2, 4): standard deviations
     * sqrt(4/3) and sqrt(16/3), mean 1.5 sqrt(4/3); h = that x 4^(-1/6). */
    const float x2[8] = {0, 0, 2, 0, 0, 4, 2, 4};
    near(agon_kde_bandwidth_scott(x2, 4, 2), 1.5 * sqrt(4.0 / 3.0) * pow(4.0, -1.0 / 6.0), 1e-15,
         "2-D Scott");
    const float same[3] = {2, 2, 2};
    near(agon_kde_bandwidth_scott(same, 3, 1), 0.0, 0.0, "no spread");
}

static double kde_direct(const float *s, int64_t n, int d, double h, const double *x)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double r2 = 0.0;
        for (int j = 0; j < d; j++)
            r2 += (x[j] - s[i * d + j]) * (x[j] - s[i * d + j]);
        sum += exp(-r2 / (2.0 * h * h)) / pow(2.0 * M_PI * h * h, d / 2.0);
    }
    return sum / (double)n;
}

static void test_kde_1d(void **state)
{
    (void)state;
    enum { N = 500, P = 2000 };
    agon_rng rng;
    agon_rng_seed(&rng, 9, "kde");
    float s[N];
    agon_rng_fill_normal(&rng, s, N, 1.0f, 2.0f);
    double h = agon_kde_bandwidth_scott(s, N, 1);
    assert_true(h > 0.0);
    agon_grid g = {.d = 1, .per_axis = P, .lo = {-15.0}, .hi = {17.0}};
    double *dens = malloc(P * sizeof *dens);
    assert_non_null(dens);
    agon_error err = {0};
    ok(agon_kde_grid(s, N, 1, h, &g, dens, &err), &err);
    double mass = 0.0;
    for (int i = 0; i < P; i++)
        mass += dens[i] * agon_grid_cell(&g);
    near(mass, 1.0, 1e-9, "1-D KDE mass");
    const int at[4] = {0, 700, 1031, 1999};
    for (int t = 0; t < 4; t++) {
        double x[1];
        agon_grid_point(&g, at[t], x);
        double want = kde_direct(s, N, 1, h, x);
        near(dens[at[t]], want, 1e-12 * want, "1-D KDE against the direct sum");
    }
    free(dens);
}

static void test_kde_2d(void **state)
{
    (void)state;
    enum { N = 700, P = 160 };
    agon_rng rng;
    agon_rng_seed(&rng, 10, "kde");
    float s[N * 2];
    for (int i = 0; i < N; i++) {
        s[2 * i] = (float)agon_rng_normal(&rng);
        s[2 * i + 1] = (float)(0.5 * agon_rng_normal(&rng) + 2.0);
    }
    double h = agon_kde_bandwidth_scott(s, N, 2);
    agon_grid g = {.d = 2, .per_axis = P, .lo = {-7.0, -4.0}, .hi = {7.0, 8.0}};
    double *dens = malloc(P * P * sizeof *dens);
    assert_non_null(dens);
    agon_error err = {0};
    ok(agon_kde_grid(s, N, 2, h, &g, dens, &err), &err);
    double mass = 0.0;
    for (int i = 0; i < P * P; i++)
        mass += dens[i] * agon_grid_cell(&g);
    near(mass, 1.0, 1e-6, "2-D KDE mass");
    const int at[4] = {0, 80 * P + 100, 57 * P + 3, P * P - 1};
    for (int t = 0; t < 4; t++) {
        double x[2];
        agon_grid_point(&g, at[t], x);
        double want = kde_direct(s, N, 2, h, x);
        near(dens[at[t]], want, 1e-12 * want, "2-D KDE against the direct sum");
    }
    free(dens);
}

static void test_kde_errors(void **state)
{
    (void)state;
    const float s[2] = {1, 2};
    double dens[4];
    agon_grid g = {.d = 1, .per_axis = 4, .lo = {0.0}, .hi = {1.0}};
    agon_error err = {0};
    fails(agon_kde_grid(s, 2, 1, 0.0, &g, dens, &err), AGON_EDATA, &err,
          "kde: bandwidth h = 0 is not a positive finite number; pick h > 0 (Scott's rule gives 0 "
          "when the samples have no spread)");
    agon_error_clear(&err);
    fails(agon_kde_grid(s, 1, 2, 0.5, &g, dens, &err), AGON_EDATA, &err,
          "kde: grid has dimension 1 but samples 2; pass a grid of the samples' dimension");
}

/* ---- divergences ------------------------------------------------------------------------ */

static agon_divergences divergences(const double *p, const double *q, int64_t n, double cell)
{
    agon_divergences dv = {-1, -1, -1};
    agon_error err = {0};
    ok(agon_grid_divergences(p, q, n, cell, &dv, &err), &err);
    return dv;
}

static void test_divergences_identical_and_disjoint(void **state)
{
    (void)state;
    const double p[6] = {0.1, 0.4, 0.2, 0.3, 0.0, 0.0};
    /* q is p at a different scale: identical once normalised. */
    const double q[6] = {0.2, 0.8, 0.4, 0.6, 0.0, 0.0};
    agon_divergences dv = divergences(p, q, 6, 0.5);
    assert_true(dv.js == 0.0);
    assert_true(dv.kl_pq == 0.0);
    assert_true(dv.kl_qp == 0.0);

    const double r[6] = {0.0, 0.0, 0.0, 0.0, 1.0, 3.0};
    dv = divergences(p, r, 6, 0.5);
    near(dv.js, log(2.0), 1e-12, "disjoint JS");
    assert_true(isinf(dv.kl_pq) && dv.kl_pq > 0);
    assert_true(isinf(dv.kl_qp) && dv.kl_qp > 0);

    /* Partly overlapping, by hand: P = (1/2, 1/2, 0), Q = (0, 1/2, 1/2),
     * M = (1/4, 1/2, 1/4): KL(P||M) = 1/2 log 2 = KL(Q||M), JS = 1/2 log 2;
     * both KLs are infinite. */
    const double a[3] = {1, 1, 0}, b[3] = {0, 2, 2};
    dv = divergences(a, b, 3, 1.0);
    near(dv.js, 0.5 * log(2.0), 1e-15, "half-overlapping JS");
    assert_true(isinf(dv.kl_pq) && isinf(dv.kl_qp));
}

static void test_divergences_gaussians(void **state)
{
    (void)state;
    enum { N = 30000 };
    const double m1 = 0.0, s1 = 1.0, m2 = 1.0, s2 = 1.5, lo = -15.0, hi = 16.0;
    double *p = malloc(N * sizeof *p), *q = malloc(N * sizeof *q);
    assert_true(p && q);
    double cell = (hi - lo) / N;
    for (int i = 0; i < N; i++) {
        double x = lo + (i + 0.5) * cell;
        p[i] = exp(-0.5 * (x - m1) * (x - m1) / (s1 * s1)) / (s1 * sqrt(2.0 * M_PI));
        q[i] = exp(-0.5 * (x - m2) * (x - m2) / (s2 * s2)) / (s2 * sqrt(2.0 * M_PI));
    }
    agon_divergences pq = divergences(p, q, N, cell), qp = divergences(q, p, N, cell);
    double want_pq = log(s2 / s1) + (s1 * s1 + (m1 - m2) * (m1 - m2)) / (2.0 * s2 * s2) - 0.5;
    double want_qp = log(s1 / s2) + (s2 * s2 + (m1 - m2) * (m1 - m2)) / (2.0 * s1 * s1) - 0.5;
    near(pq.kl_pq, want_pq, 1e-4, "KL(p||q)");
    near(pq.kl_qp, want_qp, 1e-4, "KL(q||p)");
    near(qp.kl_pq, pq.kl_qp, 1e-15, "KL swapped");
    near(qp.js, pq.js, 1e-15, "JS symmetric");
    assert_true(pq.js > 0.0 && pq.js < log(2.0));
    free(p);
    free(q);
}

static void test_divergences_errors(void **state)
{
    (void)state;
    const double p[3] = {0.5, 0.5, 0.0}, neg[3] = {0.5, -0.25, 1.0}, zero[3] = {0, 0, 0};
    agon_divergences dv;
    agon_error err = {0};
    fails(agon_grid_divergences(p, neg, 3, 1.0, &dv, &err), AGON_EDATA, &err,
          "grid divergences: q[1] = -0.25 is negative; pass densities >= 0");
    agon_error_clear(&err);
    fails(agon_grid_divergences(zero, p, 3, 1.0, &dv, &err), AGON_EDATA, &err,
          "grid divergences: p has no mass on the grid; widen the grid or check the density");
}

/* ---- classes ---------------------------------------------------------------------------- */

static void test_class_histogram(void **state)
{
    (void)state;
    /* Labels {0, 0, 1, 2, 2, 2} over 4 classes: counts {2, 1, 3, 0};
     * classes with >= 2 samples: 0 and 2.  h = (1/3, 1/6, 1/2, 0) against
     * the uniform 1/4: KL = 1/3 log(4/3) + 1/6 log(2/3) + 1/2 log 2. */
    const int32_t labels[6] = {0, 0, 1, 2, 2, 2};
    int64_t counts[4], covered;
    double kl;
    agon_error err = {0};
    ok(agon_class_histogram(labels, 6, 4, 2, NULL, counts, &covered, &kl, &err), &err);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 3);
    assert_int_equal(counts[3], 0);
    assert_int_equal(covered, 2);
    near(kl, log(4.0 / 3.0) / 3.0 + log(2.0 / 3.0) / 6.0 + log(2.0) / 2.0, 1e-15,
         "KL against uniform");

    /* Against ref (1/2, 1/4, 1/4, 0) with min_count 1: 3 classes covered,
     * KL = 1/3 log(2/3) + 1/6 log(2/3) + 1/2 log 2 = 1/2 log(4/3). */
    const double ref[4] = {0.5, 0.25, 0.25, 0.0};
    ok(agon_class_histogram(labels, 6, 4, 1, ref, counts, &covered, &kl, &err), &err);
    assert_int_equal(covered, 3);
    near(kl, 0.5 * log(4.0 / 3.0), 1e-15, "KL against ref");

    /* A class the reference gives no mass makes the KL infinite. */
    const double ref0[4] = {0.5, 0.5, 0.0, 0.0};
    ok(agon_class_histogram(labels, 6, 4, 1, ref0, counts, &covered, &kl, &err), &err);
    assert_true(isinf(kl) && kl > 0.0);

    const int32_t bad[3] = {0, 3, 4};
    fails(agon_class_histogram(bad, 3, 4, 1, NULL, counts, &covered, &kl, &err), AGON_EDATA,
          &err, "class histogram: labels[2] = 4 is outside 0..3; pass labels below n_classes = 4");
}

static void test_class_score(void **state)
{
    (void)state;
    enum { C = 4, N = 12 };
    float probs[N * C] = {0};
    for (int i = 0; i < N; i++)
        probs[i * C + i % C] = 1.0f;
    near(agon_class_score(probs, N, C), (double)C, 1e-12, "one-hot, evenly spread");

    for (int i = 0; i < N; i++) {
        probs[i * C + 0] = 0.1f;
        probs[i * C + 1] = 0.2f;
        probs[i * C + 2] = 0.3f;
        probs[i * C + 3] = 0.4f;
    }
    near(agon_class_score(probs, N, C), 1.0, 1e-12, "identical rows");

    /* Rows (1, 0) and (1/2, 1/2): p(y) = (3/4, 1/4); KLs log(4/3) and
     * 1/2 log(2/3) + 1/2 log 2 = 1/2 log(4/3); score (4/3)^(3/4). */
    const float two[4] = {1.0f, 0.0f, 0.5f, 0.5f};
    near(agon_class_score(two, 2, 2), pow(4.0 / 3.0, 0.75), 1e-15, "two rows by hand");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sym_eigen_2x2),
        cmocka_unit_test(test_sym_eigen_random_6x6),
        cmocka_unit_test(test_sym_eigen_not_finite),
        cmocka_unit_test(test_gaussian_fit_hand),
        cmocka_unit_test(test_gaussian_fit_large),
        cmocka_unit_test(test_frechet_identical),
        cmocka_unit_test(test_frechet_diagonal),
        cmocka_unit_test(test_frechet_scaled_large),
        cmocka_unit_test(test_frechet_noncommuting_2d),
        cmocka_unit_test(test_frechet_from_samples),
        cmocka_unit_test(test_frechet_not_psd),
        cmocka_unit_test(test_prdc_self),
        cmocka_unit_test(test_prdc_far_apart),
        cmocka_unit_test(test_prdc_hand_1d),
        cmocka_unit_test(test_prdc_hand_2d),
        cmocka_unit_test(test_prdc_matches_brute_force),
        cmocka_unit_test(test_prdc_matches_brute_force_large),
        cmocka_unit_test(test_prdc_errors),
        cmocka_unit_test(test_grid_layout),
        cmocka_unit_test(test_kde_scott_hand),
        cmocka_unit_test(test_kde_1d),
        cmocka_unit_test(test_kde_2d),
        cmocka_unit_test(test_kde_errors),
        cmocka_unit_test(test_divergences_identical_and_disjoint),
        cmocka_unit_test(test_divergences_gaussians),
        cmocka_unit_test(test_divergences_errors),
        cmocka_unit_test(test_class_histogram),
        cmocka_unit_test(test_class_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
