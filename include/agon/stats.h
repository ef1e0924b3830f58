/* agon/stats.h — the numerics behind agon's metrics, in double precision.
 *
 * Metric plugins are thin: they draw samples, extract features and call
 * these functions, which the unit tests check against closed forms.  None
 * of them is on the training step's path, so they may allocate.
 *
 * Matrices are dense and row-major.  Functions return 0 or a negative agon
 * status (AGON_EDATA for bad input values, AGON_ENOMEM, AGON_ENUMERIC when a
 * decomposition fails) with a one-line message in err.
 */
#ifndef AGON_STATS_H
#define AGON_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- linear algebra (LAPACK; defined in core/blas.c) --------------------- */

/* Eigen-decomposition of the symmetric n x n matrix a (only its lower
 * triangle is read) by LAPACK's dsyevr: eigenvalues ascending into w[n],
 * and, when vectors is not NULL, the orthonormal eigenvectors as the
 * columns of vectors[n*n] (row-major: vectors[i*n + j] is component i of
 * eigenvector j).  a is not modified.  AGON_ENUMERIC when LAPACK reports
 * failure (info != 0), with info in the message. */
AGON_API int agon_sym_eigen(int64_t n, const double *a, double *w, double *vectors,
                            agon_error *err);

/* ---- Gaussian fits and the Fréchet distance ------------------------------- */

/* Mean[d] and unbiased covariance[d*d] (divided by n - 1) of the n rows of
 * x[n, d].  n >= 2. */
AGON_API int agon_gaussian_fit(const float *x, int64_t n, int64_t d, double *mean,
                               double *cov, agon_error *err);

/* Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):
 *     |mu1 - mu2|^2 + Tr(cov1) + Tr(cov2) - 2 Tr((cov1 cov2)^(1/2)).
 * The trace term is computed without iteration: with cov1 = V L V^T
 * (agon_sym_eigen), S = V L^(1/2) V^T, and Tr((cov1 cov2)^(1/2)) equals
 * the sum of the square roots of the eigenvalues of the symmetric matrix
 * S cov2 S.  Eigenvalues that rounding makes slightly negative are taken
 * as 0; eigenvalues below -1e-6 times the largest one mean an input is
 * not a covariance (AGON_ENUMERIC).  *out >= 0. */
AGON_API int agon_frechet_distance(int64_t d, const double *mu1, const double *cov1,
                                   const double *mu2, const double *cov2, double *out,
                                   agon_error *err);

/* ---- k-nearest-neighbour precision, recall, density, coverage ------------- */

typedef struct agon_prdc {
    double precision;   /* fakes inside some real k-NN ball (Kynkäänniemi et al. 2019) */
    double recall;      /* reals inside some fake k-NN ball (ibid.) */
    double density;     /* (1/(k M)) sum over fakes of the real balls holding it (Naeem et al. 2020) */
    double coverage;    /* reals whose own k-NN ball holds some fake (ibid.) */
} agon_prdc;

/* real[n_real, d] and fake[n_fake, d] are feature vectors.  A point's
 * radius is the Euclidean distance to its k-th nearest neighbour in its
 * own set, the point itself excluded (so k < n_real and k < n_fake); a
 * ball is closed (distance <= radius).  Distances are computed in double. */
AGON_API int agon_prdc_compute(const float *real, int64_t n_real, const float *fake,
                               int64_t n_fake, int64_t d, int64_t k, agon_prdc *out,
                               agon_error *err);

/* ---- densities on a grid, and divergences ---------------------------------- */

/* A regular grid over the box [lo, hi] in d = 1 or 2 dimensions with
 * `per_axis` points per axis (cell centres: lo + (i + 0.5) * (hi - lo) /
 * per_axis), so it holds per_axis^d points.  For d = 2 the first
 * coordinate varies slowest: point index = i0 * per_axis + i1. */
typedef struct agon_grid {
    int d;
    int64_t per_axis;
    double lo[2], hi[2];
} agon_grid;

AGON_API int64_t agon_grid_points(const agon_grid *grid);
/* Volume (length or area) of one cell. */
AGON_API double agon_grid_cell(const agon_grid *grid);
/* Coordinates of point i into x[d]. */
AGON_API void agon_grid_point(const agon_grid *grid, int64_t i, double *x);

/* Scott's rule for a Gaussian kernel: h = sigma * n^(-1/(d+4)), sigma the
 * mean over coordinates of the samples' standard deviations.  Returns 0
 * when the samples have no spread (the caller must then pick h). */
AGON_API double agon_kde_bandwidth_scott(const float *samples, int64_t n, int64_t d);

/* Gaussian kernel density estimate of samples[n, d] (isotropic kernel of
 * standard deviation h > 0) at every point of the grid: density[points]. */
AGON_API int agon_kde_grid(const float *samples, int64_t n, int64_t d, double h,
                           const agon_grid *grid, double *density, agon_error *err);

typedef struct agon_divergences {
    double js;      /* Jensen-Shannon, nats: 0 .. log 2 */
    double kl_pq;   /* KL(p || q), nats */
    double kl_qp;   /* KL(q || p), nats */
} agon_divergences;

/* Divergences between two densities tabulated on the same n grid cells of
 * volume `cell` (Riemann sums).  Each is first normalised to integrate to
 * 1 on the grid (the mass outside the grid is dropped).  A cell where one
 * density is 0 and the other is not adds nothing to JS's missing term and
 * makes the KL that divides by it +infinity.  AGON_EDATA when either has
 * no mass on the grid or a value is negative or not finite. */
AGON_API int agon_grid_divergences(const double *p, const double *q, int64_t n,
                                   double cell, agon_divergences *out, agon_error *err);

/* ---- classes ------------------------------------------------------------------ */

/* Histogram of labels[n] (each 0..n_classes-1, else AGON_EDATA) into
 * counts[n_classes]; *covered = classes with at least min_count samples;
 * *kl = KL(h || ref) in nats, h the normalised histogram and ref[n_classes]
 * a distribution (NULL: uniform).  A class with h > 0 and ref = 0 makes
 * the KL +infinity. */
AGON_API int agon_class_histogram(const int32_t *labels, int64_t n, int64_t n_classes,
                                  int64_t min_count, const double *ref, int64_t *counts,
                                  int64_t *covered, double *kl, agon_error *err);

/* The Inception-Score formula on class probabilities probs[n, c] (rows sum
 * to 1): exp(mean_i KL(p(y|x_i) || p(y))) with p(y) the mean of the rows;
 * terms with p(y|x_i) = 0 add nothing.  1 <= score <= c. */
AGON_API double agon_class_score(const float *probs, int64_t n, int64_t c);

#ifdef __cplusplus
}
#endif

#endif /* AGON_STATS_H */
