/* The numerics behind agon's metrics (see agon/stats.h).
 *
 * Everything is accumulated in double.  The one place float arithmetic is
 * used is the bulk of the k-NN distances, where a float product only
 * decides the comparisons it can prove; every comparison it cannot prove
 * is redone exactly in double, so the results are those of an all-double
 * computation (see "k-NN" below). */
#include "agon/stats.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/tensor.h"

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int out_of_memory(agon_error *err, const char *what)
{
    return agon_error_set(err, AGON_ENOMEM,
                          "%s: out of memory; reduce the number of samples or the dimension", what);
}

/* ---- dense double products -------------------------------------------------
 * C[m, n] (+)= A[m, k] B[k, n], all contiguous; with lower_only (m == n) only
 * C's lower triangle is sure to be computed (some entries above it are
 * too, the others stay 0).  The innermost loop
 * runs along a row of B and of four rows of C, so it vectorises without
 * reassociating sums and loads each element of B once for four
 * multiply-adds; B is visited in tiles that stay in cache. */
static void dmatmul(int64_t m, int64_t n, int64_t k, const double *a, const double *b, double *c,
                    bool lower_only, bool accumulate)
{
    enum { KB = 128, JB = 256, RB = 4 };
    if (!accumulate)
        memset(c, 0, (size_t)m * (size_t)n * sizeof *c);
    for (int64_t j0 = 0; j0 < n; j0 += JB) {
        int64_t j1 = min64(j0 + JB, n);
        for (int64_t p0 = 0; p0 < k; p0 += KB) {
            int64_t p1 = min64(p0 + KB, k);
            int64_t i = lower_only ? j0 - j0 % RB : 0;
            for (; i + RB <= m; i += RB) {
                /* Rows i .. i+3 need columns up to i+3 at most. */
                int64_t jend = lower_only ? min64(j1, i + RB) : j1;
                double *c0 = c + i * n, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
                for (int64_t p = p0; p < p1; p++) {
                    double a0 = a[i * k + p], a1 = a[(i + 1) * k + p];
                    double a2 = a[(i + 2) * k + p], a3 = a[(i + 3) * k + p];
                    const double *bp = b + p * n;
                    for (int64_t j = j0; j < jend; j++) {
                        double bj = bp[j];
                        c0[j] += a0 * bj;
                        c1[j] += a1 * bj;
                        c2[j] += a2 * bj;
                        c3[j] += a3 * bj;
                    }
                }
            }
            for (; i < m; i++) {
                int64_t jend = lower_only ? min64(j1, i + 1) : j1;
                double *ci = c + i * n;
                for (int64_t p = p0; p < p1; p++) {
                    double aip = a[i * k + p];
                    const double *bp = b + p * n;
                    for (int64_t j = j0; j < jend; j++)
                        ci[j] += aip * bp[j];
                }
            }
        }
    }
}

/* ---- Gaussian fits ------------------------------------------------------------ */

int agon_gaussian_fit(const float *x, int64_t n, int64_t d, double *mean, double *cov,
                      agon_error *err)
{
    assert(x && mean && cov);
    if (d < 1)
        return agon_error_set(err, AGON_EDATA,
                              "gaussian fit: dimension %lld; pass at least one feature",
                              (long long)d);
    if (n < 2)
        return agon_error_set(err, AGON_EDATA,
                              "gaussian fit: %lld sample(s); a covariance needs at least 2",
                              (long long)n);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++) {
            if (!isfinite(x[i * d + j]))
                return agon_error_set(err, AGON_EDATA,
                                      "gaussian fit: x[%lld, %lld] is not finite; pass finite "
                                      "features",
                                      (long long)i, (long long)j);
        }
    }

    /* Two passes (mean, then centred products): no cancellation between
     * large raw second moments. */
    for (int64_t j = 0; j < d; j++)
        mean[j] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++)
            mean[j] += x[i * d + j];
    }
    for (int64_t j = 0; j < d; j++)
        mean[j] /= (double)n;

    /* Blocks of centred rows, and their transposes for the left factor:
     * cov += B^T B, lower triangle. */
    enum { ROWS = 128 };
    double *block = malloc((size_t)ROWS * (size_t)d * sizeof *block);
    double *block_t = malloc((size_t)ROWS * (size_t)d * sizeof *block_t);
    if (!block || !block_t) {
        free(block);
        free(block_t);
        return out_of_memory(err, "gaussian fit");
    }
    memset(cov, 0, (size_t)d * (size_t)d * sizeof *cov);
    for (int64_t i0 = 0; i0 < n; i0 += ROWS) {
        int64_t rows = min64(ROWS, n - i0);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < d; j++) {
                double c = (double)x[(i0 + r) * d + j] - mean[j];
                block[r * d + j] = c;
                block_t[j * rows + r] = c;
            }
        }
        dmatmul(d, d, rows, block_t, block, cov, true, true);
    }
    free(block_t);
    free(block);
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j <= i; j++) {
            cov[i * d + j] /= (double)(n - 1);
            cov[j * d + i] = cov[i * d + j];
        }
    }
    return 0;
}

/* ---- Fréchet distance ----------------------------------------------------------- */

/* Only the lower triangle of a covariance is read (as by agon_sym_eigen). */
static int check_finite_lower(const double *m, int64_t d, const char *name, agon_error *err)
{
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j <= i; j++) {
            if (!isfinite(m[i * d + j]))
                return agon_error_set(err, AGON_EDATA,
                                      "frechet distance: %s[%lld, %lld] = %g is not finite; pass "
                                      "finite means and covariances",
                                      name, (long long)i, (long long)j, m[i * d + j]);
        }
    }
    return 0;
}

static int check_psd(const double *w, int64_t d, int which, agon_error *err)
{
    double largest = w[d - 1];
    double tol = largest > 0.0 ? 1e-6 * largest : 0.0;
    if (w[0] < -tol)
        return agon_error_set(err, AGON_ENUMERIC,
                              "frechet distance: covariance %d is not positive semi-definite "
                              "(eigenvalue %g < -1e-06 x largest %g); pass a covariance matrix",
                              which, w[0], largest);
    return 0;
}

/* agon_sym_eigen's message, prefixed with what was being decomposed. */
static int eigen(int64_t d, const double *a, double *w, double *vectors, const char *what,
                 agon_error *err)
{
    agon_error inner = {0};
    int rc = agon_sym_eigen(d, a, w, vectors, &inner);
    if (rc != 0)
        return agon_error_set(err, rc, "frechet distance: %s: %s", what, inner.message);
    return 0;
}

int agon_frechet_distance(int64_t d, const double *mu1, const double *cov1, const double *mu2,
                          const double *cov2, double *out, agon_error *err)
{
    assert(mu1 && cov1 && mu2 && cov2 && out);
    if (d < 1)
        return agon_error_set(err, AGON_EDATA,
                              "frechet distance: dimension %lld; pass at least one feature",
                              (long long)d);
    int rc;
    for (int64_t i = 0; i < d; i++) {
        if (!isfinite(mu1[i]) || !isfinite(mu2[i]))
            return agon_error_set(err, AGON_EDATA,
                                  "frechet distance: mean component %lld is not finite (mu1 %g, "
                                  "mu2 %g); pass finite means",
                                  (long long)i, mu1[i], mu2[i]);
    }
    if ((rc = check_finite_lower(cov1, d, "cov1", err)) != 0 ||
        (rc = check_finite_lower(cov2, d, "cov2", err)) != 0)
        return rc;

    size_t dd = (size_t)d * (size_t)d;
    double *w1 = malloc((size_t)d * sizeof *w1);
    double *w2 = malloc((size_t)d * sizeof *w2);
    double *v = malloc(dd * sizeof *v);
    double *full2 = malloc(dd * sizeof *full2);
    double *t = malloc(dd * sizeof *t);
    if (!w1 || !w2 || !v || !full2 || !t) {
        rc = out_of_memory(err, "frechet distance");
        goto done;
    }

    /* cov1 = V L V^T.  Both inputs are checked to be PSD here, so that a
     * negative eigenvalue of the product below can only be rounding. */
    if ((rc = eigen(d, cov1, w1, v, "covariance 1", err)) != 0 ||
        (rc = check_psd(w1, d, 1, err)) != 0)
        goto done;
    if ((rc = eigen(d, cov2, w2, NULL, "covariance 2", err)) != 0 ||
        (rc = check_psd(w2, d, 2, err)) != 0)
        goto done;

    /* S cov2 S = V (L^1/2 V^T cov2 V L^1/2) V^T is orthogonally similar to
     * W^T cov2 W with W = V L^1/2, so the two have the same eigenvalues;
     * the latter costs two products instead of three. */
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j < d; j++)
            v[i * d + j] *= sqrt(w1[j] > 0.0 ? w1[j] : 0.0);
    }
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j <= i; j++)
            full2[i * d + j] = full2[j * d + i] = cov2[i * d + j];
    }
    dmatmul(d, d, d, full2, v, t, false, false);
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j < d; j++)
            full2[i * d + j] = v[j * d + i];
    }
    /* agon_sym_eigen reads only the lower triangle of the product. */
    dmatmul(d, d, d, full2, t, v, true, false);
    if ((rc = eigen(d, v, w2, NULL, "S cov2 S", err)) != 0)
        goto done;

    double trace_sqrt = 0.0, dist = 0.0;
    for (int64_t i = 0; i < d; i++) {
        trace_sqrt += sqrt(w2[i] > 0.0 ? w2[i] : 0.0);
        double dm = mu1[i] - mu2[i];
        dist += dm * dm + cov1[i * d + i] + cov2[i * d + i];
    }
    dist -= 2.0 * trace_sqrt;
    *out = dist > 0.0 ? dist : 0.0;

done:
    free(t);
    free(full2);
    free(v);
    free(w2);
    free(w1);
    return rc;
}

/* ---- k-NN precision, recall, density, coverage ----------------------------------
 * The float product trick: with a' and b' the points shifted by a common
 * centre, scaled by a power of two and rounded to float,
 *     D~ = (|a'|^2 + |b'|^2 - 2 a'.b') / s^2
 * with a'.b' from agon_gemm.  Its distance from the squared distance
 * computed exactly in double, D, is bounded by
 *     tol * (|a'|^2 + |b'|^2) / s^2,
 * tol = 2 x (the float dot product's gamma_d + the rounding to float of
 * both points + double rounding), so a comparison D <= R is decided by D~
 * whenever |D~ - R| exceeds that margin, and recomputed in double
 * otherwise.  Centring keeps |a'| close to the spread of the data, so
 * few comparisons are borderline. */

typedef struct knn_set {
    const float *x;     /* borrowed, [n, d], as given */
    int64_t n;
    float *c;           /* owned, centred and scaled copy */
    double *norm2;      /* owned, |c_i|^2 in double */
} knn_set;

typedef struct knn_ctx {
    int64_t d, k;
    double inv_s2;      /* 1 / s^2, a power of two */
    double tol;
    int64_t block;      /* real rows per agon_gemm in the real-fake pass */
    float *g;           /* block x n_fake products */
    double *approx, *margin;  /* n_fake each: one row of the real-fake pass */
} knn_ctx;

static double dist2_exact(const float *a, const float *b, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

/* The k-th smallest (k from 0) of v[0..n), by quickselect with a three-way
 * partition, so runs of equal values (duplicate points) cost no more than
 * distinct ones.  Reorders v. */
static double select_kth(double *v, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n - 1;
    assert(k >= 0 && k < n);
    while (lo < hi) {
        double a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            double x = v[i];
            if (x < pivot) {
                v[i++] = v[lt];
                v[lt++] = x;
            } else if (x > pivot) {
                v[i] = v[gt];
                v[gt--] = x;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt - 1;
        else if (k > gt)
            lo = gt + 1;
        else
            return pivot;
    }
    return v[lo];
}

/* ---- radii: the k-th nearest neighbour within one set
 * The products of a set with itself are symmetric, so only the tiles on
 * and above the diagonal are computed, and each serves the rows of both
 * its tiles.  Rows therefore see their columns in pieces, and keep per
 * point:
 *   - a max-heap of the k smallest upper bounds (D~ + margin) seen so
 *     far, whose top bounds the k-th smallest exact distance from above
 *     and only decreases;
 *   - the points whose lower bound (D~ - margin) was not above that top
 *     when their tile was seen (pruned against the current top whenever
 *     the list fills up).
 * Every point within the final top is in the list, so the radius is the
 * k-th smallest exact distance over the list alone, typically a little
 * more than k points. */

typedef struct knn_cand {
    int64_t j;
    double lo;
} knn_cand;

typedef struct knn_rows {
    int64_t k;
    double *heap;       /* [n, k] */
    knn_cand **cand;    /* [n], each owned, cap[i] entries */
    int64_t *count, *cap;
} knn_rows;

static void heap_replace_top(double *h, int64_t k, double v)
{
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= k)
            break;
        if (c + 1 < k && h[c + 1] > h[c])
            c++;
        if (h[c] <= v)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static inline void heap_offer(double *h, int64_t k, double v)
{
    if (v < h[0])
        heap_replace_top(h, k, v);
}

static int cand_push(knn_rows *rows, int64_t i, int64_t j, double lo)
{
    if (rows->count[i] == rows->cap[i]) {
        double upper = rows->heap[i * rows->k];
        knn_cand *c = rows->cand[i];
        int64_t kept = 0;
        for (int64_t t = 0; t < rows->count[i]; t++) {
            if (c[t].lo <= upper)
                c[kept++] = c[t];
        }
        rows->count[i] = kept;
        if (kept >= rows->cap[i] / 2) {
            int64_t cap = rows->cap[i] ? 2 * rows->cap[i] : 2 * rows->k + 16;
            c = realloc(c, (size_t)cap * sizeof *c);
            if (!c)
                return -1;
            rows->cand[i] = c;
            rows->cap[i] = cap;
        }
    }
    rows->cand[i][rows->count[i]++] = (knn_cand){j, lo};
    return 0;
}

/* For large k the heaps and lists would take n k entries: rows are then
 * done one block at a time against all columns, with two quickselects per
 * row (the k-th upper bound, then the k-th exact distance among the
 * points whose lower bound is within it). */
static int knn_radii_rows(const knn_ctx *ctx, const knn_set *s, double *radius2)
{
    int64_t n = s->n, d = ctx->d, k = ctx->k;
    int64_t block = min64(n, 64);
    float *g = malloc((size_t)block * (size_t)n * sizeof *g);
    double *approx = malloc((size_t)n * sizeof *approx);
    double *margin = malloc((size_t)n * sizeof *margin);
    double *scratch = malloc((size_t)n * sizeof *scratch);
    int rc = -1;
    if (!g || !approx || !margin || !scratch)
        goto done;
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        int64_t rows = min64(block, n - i0);
        agon_gemm(false, true, rows, n, d, 1.0f, s->c + i0 * d, d, s->c, d, 0.0f, g, n);
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = i0 + r, m = 0;
            double ni = s->norm2[i];
            for (int64_t j = 0; j < n; j++) {
                approx[j] = (ni + s->norm2[j] - 2.0 * (double)g[r * n + j]) * ctx->inv_s2;
                margin[j] = (ctx->tol * (ni + s->norm2[j]) + 1e-30) * ctx->inv_s2;
                if (j != i)
                    scratch[m++] = approx[j] + margin[j];
            }
            double upper = select_kth(scratch, m, k - 1);
            m = 0;
            for (int64_t j = 0; j < n; j++) {
                if (j != i && approx[j] - margin[j] <= upper)
                    scratch[m++] = dist2_exact(s->x + i * d, s->x + j * d, d);
            }
            assert(m >= k);
            radius2[i] = select_kth(scratch, m, k - 1);
        }
    }
    rc = 0;

done:
    free(scratch);
    free(margin);
    free(approx);
    free(g);
    return rc;
}

/* radius2[i]: squared distance from point i of s to its k-th nearest
 * neighbour in s, itself excluded.  0 or -1 (out of memory). */
static int knn_radii(const knn_ctx *ctx, const knn_set *s, double *radius2)
{
    if (ctx->k > 64)
        return knn_radii_rows(ctx, s, radius2);

    enum { TILE = 512 };
    int64_t n = s->n, d = ctx->d, k = ctx->k;
    int rc = -1;
    knn_rows rows = {.k = k};
    rows.heap = malloc((size_t)n * (size_t)k * sizeof *rows.heap);
    rows.cand = calloc((size_t)n, sizeof *rows.cand);
    rows.count = calloc((size_t)n, sizeof *rows.count);
    rows.cap = calloc((size_t)n, sizeof *rows.cap);
    float *g = malloc((size_t)TILE * TILE * sizeof *g);
    double *exact = NULL;
    if (!rows.heap || !rows.cand || !rows.count || !rows.cap || !g)
        goto done;
    for (int64_t t = 0; t < n * k; t++)
        rows.heap[t] = INFINITY;

    for (int64_t i0 = 0; i0 < n; i0 += TILE) {
        int64_t bi = min64(TILE, n - i0);
        for (int64_t j0 = i0; j0 < n; j0 += TILE) {
            int64_t bj = min64(TILE, n - j0);
            bool diagonal = i0 == j0;
            agon_gemm(false, true, bi, bj, d, 1.0f, s->c + i0 * d, d, s->c + j0 * d, d, 0.0f, g,
                      bj);
            /* Bounds first, over the whole tile, so that the candidates
             * are filtered by the tightest bound known.  Both sweeps run
             * along rows of the tile; the heap tops of its columns stay in
             * L1. */
            for (int64_t r = 0; r < bi; r++) {
                double ni = s->norm2[i0 + r], *hi_heap = rows.heap + (i0 + r) * k;
                for (int64_t c = diagonal ? r + 1 : 0; c < bj; c++) {
                    double nj = s->norm2[j0 + c];
                    double a = (ni + nj - 2.0 * (double)g[r * bj + c]) * ctx->inv_s2;
                    double upper = a + (ctx->tol * (ni + nj) + 1e-30) * ctx->inv_s2;
                    heap_offer(hi_heap, k, upper);
                    heap_offer(rows.heap + (j0 + c) * k, k, upper);
                }
            }
            for (int64_t r = 0; r < bi; r++) {
                double ni = s->norm2[i0 + r], row_upper = rows.heap[(i0 + r) * k];
                for (int64_t c = diagonal ? r + 1 : 0; c < bj; c++) {
                    double nj = s->norm2[j0 + c];
                    double a = (ni + nj - 2.0 * (double)g[r * bj + c]) * ctx->inv_s2;
                    double lo = a - (ctx->tol * (ni + nj) + 1e-30) * ctx->inv_s2;
                    if (lo <= row_upper && cand_push(&rows, i0 + r, j0 + c, lo) != 0)
                        goto done;
                    if (lo <= rows.heap[(j0 + c) * k] &&
                        cand_push(&rows, j0 + c, i0 + r, lo) != 0)
                        goto done;
                }
            }
        }
    }

    int64_t most = 0;
    for (int64_t i = 0; i < n; i++)
        most = rows.count[i] > most ? rows.count[i] : most;
    exact = malloc((size_t)most * sizeof *exact);
    if (!exact)
        goto done;
    for (int64_t i = 0; i < n; i++) {
        double upper = rows.heap[i * k];
        int64_t m = 0;
        for (int64_t t = 0; t < rows.count[i]; t++) {
            const knn_cand *c = &rows.cand[i][t];
            if (c->lo <= upper)
                exact[m++] = dist2_exact(s->x + i * d, s->x + c->j * d, d);
        }
        assert(m >= k);
        radius2[i] = select_kth(exact, m, k - 1);
    }
    rc = 0;

done:
    for (int64_t i = 0; rows.cand && i < n; i++)
        free(rows.cand[i]);
    free(exact);
    free(g);
    free(rows.cap);
    free(rows.count);
    free(rows.cand);
    free(rows.heap);
    return rc;
}

/* ---- the real-fake pass: rows of real points against all fakes. */

/* Products of rows [i0, i0 + rows) of a with all rows of b into ctx->g. */
static void knn_products(knn_ctx *ctx, const knn_set *a, int64_t i0, int64_t rows,
                         const knn_set *b)
{
    agon_gemm(false, true, rows, b->n, ctx->d, 1.0f, a->c + i0 * ctx->d, ctx->d, b->c, ctx->d,
              0.0f, ctx->g, b->n);
}

static void knn_row_approx(knn_ctx *ctx, const knn_set *a, int64_t i, int64_t r,
                           const knn_set *b)
{
    const float *g = ctx->g + r * b->n;
    double na = a->norm2[i];
    for (int64_t j = 0; j < b->n; j++) {
        ctx->approx[j] = (na + b->norm2[j] - 2.0 * (double)g[j]) * ctx->inv_s2;
        ctx->margin[j] = (ctx->tol * (na + b->norm2[j]) + 1e-30) * ctx->inv_s2;
    }
}

static int knn_set_init(knn_set *s, const float *x, int64_t n, int64_t d, const double *centre,
                        double scale)
{
    s->x = x;
    s->n = n;
    s->c = malloc((size_t)n * (size_t)d * sizeof *s->c);
    s->norm2 = malloc((size_t)n * sizeof *s->norm2);
    if (!s->c || !s->norm2)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        double sum = 0.0;
        for (int64_t j = 0; j < d; j++) {
            float c = (float)(((double)x[i * d + j] - centre[j]) * scale);
            s->c[i * d + j] = c;
            sum += (double)c * c;
        }
        s->norm2[i] = sum;
    }
    return 0;
}

static int check_features(const float *x, int64_t n, int64_t d, const char *name,
                          agon_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++) {
            if (!isfinite(x[i * d + j]))
                return agon_error_set(err, AGON_EDATA,
                                      "prdc: %s[%lld, %lld] is not finite; pass finite features",
                                      name, (long long)i, (long long)j);
        }
    }
    return 0;
}

int agon_prdc_compute(const float *real, int64_t n_real, const float *fake, int64_t n_fake,
                      int64_t d, int64_t k, agon_prdc *out, agon_error *err)
{
    assert(real && fake && out);
    if (d < 1)
        return agon_error_set(err, AGON_EDATA, "prdc: dimension %lld; pass at least one feature",
                              (long long)d);
    /* The error bound of the float products (d x 2^-24) must stay small. */
    if (d > 300000)
        return agon_error_set(err, AGON_EDATA,
                              "prdc: dimension %lld is above 300000; reduce the features first",
                              (long long)d);
    if (k < 1)
        return agon_error_set(err, AGON_EDATA, "prdc: k = %lld; pass k >= 1", (long long)k);
    if (k >= n_real || k >= n_fake)
        return agon_error_set(err, AGON_EDATA,
                              "prdc: k = %lld needs more than k samples per set (got %lld real, "
                              "%lld fake); lower k or pass more samples",
                              (long long)k, (long long)n_real, (long long)n_fake);
    int rc;
    if ((rc = check_features(real, n_real, d, "real", err)) != 0 ||
        (rc = check_features(fake, n_fake, d, "fake", err)) != 0)
        return rc;

    rc = 0;
    knn_set rs = {0}, fs = {0};
    knn_ctx ctx = {.d = d, .k = k};
    double *centre = calloc((size_t)d, sizeof *centre);
    double *real_r2 = malloc((size_t)n_real * sizeof *real_r2);
    double *fake_r2 = malloc((size_t)n_fake * sizeof *fake_r2);
    int64_t *holds = calloc((size_t)n_fake, sizeof *holds);
    unsigned char *covered = calloc((size_t)n_real, 1);
    unsigned char *recalled = calloc((size_t)n_real, 1);
    /* About 8 MB of products per agon_gemm. */
    ctx.block = ((int64_t)1 << 21) / n_fake;
    ctx.block = min64(n_real, ctx.block < 16 ? 16 : min64(ctx.block, 256));
    ctx.g = malloc((size_t)ctx.block * (size_t)n_fake * sizeof *ctx.g);
    ctx.approx = malloc((size_t)n_fake * sizeof *ctx.approx);
    ctx.margin = malloc((size_t)n_fake * sizeof *ctx.margin);
    if (!centre || !real_r2 || !fake_r2 || !holds || !covered || !recalled || !ctx.g ||
        !ctx.approx || !ctx.margin) {
        rc = out_of_memory(err, "prdc");
        goto done;
    }

    /* Common centre and power-of-two scale: the mean of all points, and
     * the largest centred coordinate brought into [0.5, 1). */
    for (int64_t i = 0; i < n_real; i++) {
        for (int64_t j = 0; j < d; j++)
            centre[j] += real[i * d + j];
    }
    for (int64_t i = 0; i < n_fake; i++) {
        for (int64_t j = 0; j < d; j++)
            centre[j] += fake[i * d + j];
    }
    double largest = 0.0;
    for (int64_t j = 0; j < d; j++)
        centre[j] /= (double)(n_real + n_fake);
    for (int64_t i = 0; i < n_real + n_fake; i++) {
        const float *p = i < n_real ? real + i * d : fake + (i - n_real) * d;
        for (int64_t j = 0; j < d; j++)
            largest = fmax(largest, fabs((double)p[j] - centre[j]));
    }
    int exponent = 0;
    if (largest > 0.0)
        frexp(largest, &exponent);
    double scale = ldexp(1.0, -exponent);
    ctx.inv_s2 = ldexp(1.0, 2 * exponent);
    const double u = FLT_EPSILON / 2.0, gamma = (double)d * u / (1.0 - (double)d * u);
    ctx.tol = 2.0 * (gamma + 5.0 * u + (double)(d + 8) * DBL_EPSILON);
    if (knn_set_init(&rs, real, n_real, d, centre, scale) != 0 ||
        knn_set_init(&fs, fake, n_fake, d, centre, scale) != 0) {
        rc = out_of_memory(err, "prdc");
        goto done;
    }

    if (knn_radii(&ctx, &rs, real_r2) != 0 || knn_radii(&ctx, &fs, fake_r2) != 0) {
        rc = out_of_memory(err, "prdc");
        goto done;
    }

    for (int64_t i0 = 0; i0 < n_real; i0 += ctx.block) {
        int64_t rows = min64(ctx.block, n_real - i0);
        knn_products(&ctx, &rs, i0, rows, &fs);
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = i0 + r;
            const float *xi = real + i * d;
            knn_row_approx(&ctx, &rs, i, r, &fs);
            for (int64_t j = 0; j < n_fake; j++) {
                double a = ctx.approx[j], m = ctx.margin[j], exact = -1.0;
                bool in_real_ball, in_fake_ball;
                if (a + m <= real_r2[i]) {
                    in_real_ball = true;
                } else if (a - m > real_r2[i]) {
                    in_real_ball = false;
                } else {
                    exact = dist2_exact(xi, fake + j * d, d);
                    in_real_ball = exact <= real_r2[i];
                }
                if (a + m <= fake_r2[j]) {
                    in_fake_ball = true;
                } else if (a - m > fake_r2[j]) {
                    in_fake_ball = false;
                } else {
                    if (exact < 0.0)
                        exact = dist2_exact(xi, fake + j * d, d);
                    in_fake_ball = exact <= fake_r2[j];
                }
                if (in_real_ball) {
                    holds[j]++;
                    covered[i] = 1;
                }
                if (in_fake_ball)
                    recalled[i] = 1;
            }
        }
    }

    int64_t precise = 0, held = 0, n_covered = 0, n_recalled = 0;
    for (int64_t j = 0; j < n_fake; j++) {
        precise += holds[j] > 0;
        held += holds[j];
    }
    for (int64_t i = 0; i < n_real; i++) {
        n_covered += covered[i];
        n_recalled += recalled[i];
    }
    out->precision = (double)precise / (double)n_fake;
    out->recall = (double)n_recalled / (double)n_real;
    out->density = (double)held / ((double)k * (double)n_fake);
    out->coverage = (double)n_covered / (double)n_real;

done:
    free(rs.c);
    free(rs.norm2);
    free(fs.c);
    free(fs.norm2);
    free(ctx.margin);
    free(ctx.approx);
    free(ctx.g);
    free(recalled);
    free(covered);
    free(holds);
    free(fake_r2);
    free(real_r2);
    free(centre);
    return rc;
}

/* ---- grids and kernel density estimates ------------------------------------------ */

static double grid_coord(const agon_grid *grid, int axis, int64_t t)
{
    return grid->lo[axis] +
           ((double)t + 0.5) * (grid->hi[axis] - grid->lo[axis]) / (double)grid->per_axis;
}

int64_t agon_grid_points(const agon_grid *grid)
{
    assert(grid && (grid->d == 1 || grid->d == 2));
    return grid->d == 1 ? grid->per_axis : grid->per_axis * grid->per_axis;
}

double agon_grid_cell(const agon_grid *grid)
{
    assert(grid && (grid->d == 1 || grid->d == 2));
    double cell = 1.0;
    for (int a = 0; a < grid->d; a++)
        cell *= (grid->hi[a] - grid->lo[a]) / (double)grid->per_axis;
    return cell;
}

void agon_grid_point(const agon_grid *grid, int64_t i, double *x)
{
    assert(grid && x && i >= 0 && i < agon_grid_points(grid));
    if (grid->d == 1) {
        x[0] = grid_coord(grid, 0, i);
    } else {
        x[0] = grid_coord(grid, 0, i / grid->per_axis);
        x[1] = grid_coord(grid, 1, i % grid->per_axis);
    }
}

/* The standard deviations are the unbiased ones (divided by n - 1), as in
 * Scott's rule as usually implemented.  Non-finite samples give NaN. */
double agon_kde_bandwidth_scott(const float *samples, int64_t n, int64_t d)
{
    assert(samples || n == 0);
    if (n < 2 || d < 1)
        return 0.0;
    double sigma = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double mean = 0.0, ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            mean += samples[i * d + j];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) {
            double t = samples[i * d + j] - mean;
            ss += t * t;
        }
        sigma += sqrt(ss / (double)(n - 1));
    }
    sigma /= (double)d;
    if (!isfinite(sigma))
        return NAN;
    if (sigma == 0.0)
        return 0.0;
    return sigma * pow((double)n, -1.0 / (double)(d + 4));
}

/* No truncation of the kernel: on a grid the Gaussian factorises over the
 * axes, so in 2-D one sample costs 2 x per_axis exponentials and
 * per_axis^2 multiply-adds, and every term is kept.  Sums run over blocks
 * of samples that are added to the total one block at a time, which keeps
 * the rounding of long sums of positive terms far below 1e-12. */
int agon_kde_grid(const float *samples, int64_t n, int64_t d, double h, const agon_grid *grid,
                  double *density, agon_error *err)
{
    assert(samples && grid && density);
    if (d != 1 && d != 2)
        return agon_error_set(err, AGON_EDATA,
                              "kde: samples have dimension %lld; only 1 and 2 are supported",
                              (long long)d);
    if (grid->d != d)
        return agon_error_set(err, AGON_EDATA,
                              "kde: grid has dimension %d but samples %lld; pass a grid of the "
                              "samples' dimension",
                              grid->d, (long long)d);
    if (grid->per_axis < 1)
        return agon_error_set(err, AGON_EDATA,
                              "kde: grid has %lld points per axis; pass at least 1",
                              (long long)grid->per_axis);
    for (int a = 0; a < grid->d; a++) {
        if (!isfinite(grid->lo[a]) || !isfinite(grid->hi[a]) || !(grid->lo[a] < grid->hi[a]))
            return agon_error_set(err, AGON_EDATA,
                                  "kde: grid axis %d spans [%g, %g]; pass finite lo < hi", a,
                                  grid->lo[a], grid->hi[a]);
    }
    if (!(h > 0.0) || !isfinite(h))
        return agon_error_set(err, AGON_EDATA,
                              "kde: bandwidth h = %g is not a positive finite number; pick h > 0 "
                              "(Scott's rule gives 0 when the samples have no spread)",
                              h);
    if (n < 1)
        return agon_error_set(err, AGON_EDATA, "kde: no samples; pass at least one");
    for (int64_t i = 0; i < n * d; i++) {
        if (!isfinite(samples[i]))
            return agon_error_set(err, AGON_EDATA,
                                  "kde: samples[%lld, %lld] is not finite; pass finite samples",
                                  (long long)(i / d), (long long)(i % d));
    }

    enum { BLOCK = 512 };
    int64_t per = grid->per_axis, points = agon_grid_points(grid);
    double scale = -0.5 / (h * h);
    double norm = 1.0 / ((double)n * pow(2.0 * M_PI * h * h, 0.5 * (double)d));
    double *coord = malloc((size_t)(2 * per) * sizeof *coord);
    double *ex = malloc((size_t)(2 * per) * sizeof *ex);
    double *partial = d == 2 ? malloc((size_t)points * sizeof *partial) : NULL;
    if (!coord || !ex || (d == 2 && !partial)) {
        free(coord);
        free(ex);
        free(partial);
        return out_of_memory(err, "kde");
    }
    for (int a = 0; a < d; a++) {
        for (int64_t t = 0; t < per; t++)
            coord[a * per + t] = grid_coord(grid, a, t);
    }
    memset(density, 0, (size_t)points * sizeof *density);

    if (d == 1) {
        for (int64_t g = 0; g < per; g++) {
            double x = coord[g], total = 0.0;
            for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
                int64_t i1 = min64(i0 + BLOCK, n);
                double sum = 0.0;
                for (int64_t i = i0; i < i1; i++) {
                    double t = x - samples[i];
                    sum += exp(scale * t * t);
                }
                total += sum;
            }
            density[g] = total * norm;
        }
    } else {
        double *ey = ex + per;
        for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
            int64_t i1 = min64(i0 + BLOCK, n);
            memset(partial, 0, (size_t)points * sizeof *partial);
            for (int64_t i = i0; i < i1; i++) {
                double s0 = samples[2 * i], s1 = samples[2 * i + 1];
                for (int64_t t = 0; t < per; t++) {
                    double t0 = coord[t] - s0, t1 = coord[per + t] - s1;
                    ex[t] = exp(scale * t0 * t0);
                    ey[t] = exp(scale * t1 * t1);
                }
                for (int64_t a = 0; a < per; a++) {
                    double e0 = ex[a];
                    if (e0 == 0.0)
                        continue;
                    double *row = partial + a * per;
                    for (int64_t b = 0; b < per; b++)
                        row[b] += e0 * ey[b];
                }
            }
            for (int64_t g = 0; g < points; g++)
                density[g] += partial[g];
        }
        for (int64_t g = 0; g < points; g++)
            density[g] *= norm;
    }
    free(partial);
    free(ex);
    free(coord);
    return 0;
}

/* ---- divergences ---------------------------------------------------------------- */

static int check_density(const double *p, int64_t n, const char *name, double *mass,
                         agon_error *err)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(p[i]))
            return agon_error_set(err, AGON_EDATA,
                                  "grid divergences: %s[%lld] = %g is not finite; pass finite "
                                  "densities",
                                  name, (long long)i, p[i]);
        if (p[i] < 0.0)
            return agon_error_set(err, AGON_EDATA,
                                  "grid divergences: %s[%lld] = %g is negative; pass densities "
                                  ">= 0",
                                  name, (long long)i, p[i]);
        sum += p[i];
    }
    if (!(sum > 0.0))
        return agon_error_set(err, AGON_EDATA,
                              "grid divergences: %s has no mass on the grid; widen the grid or "
                              "check the density",
                              name);
    *mass = sum;
    return 0;
}

int agon_grid_divergences(const double *p, const double *q, int64_t n, double cell,
                          agon_divergences *out, agon_error *err)
{
    assert(p && q && out);
    if (n < 1)
        return agon_error_set(err, AGON_EDATA, "grid divergences: empty grid; pass n >= 1");
    if (!(cell > 0.0) || !isfinite(cell))
        return agon_error_set(err, AGON_EDATA,
                              "grid divergences: cell volume %g is not a positive finite number; "
                              "pass the grid's cell volume",
                              cell);
    double sp, sq;
    int rc;
    if ((rc = check_density(p, n, "p", &sp, err)) != 0 ||
        (rc = check_density(q, n, "q", &sq, err)) != 0)
        return rc;

    /* With pn = p / (sp cell) the Riemann sum is sum cell pn log(pn / qn)
     * = sum P log(P / Q) with P = p / sp, the probability of each cell:
     * the cell volume cancels. */
    double js_p = 0.0, js_q = 0.0, kl_pq = 0.0, kl_qp = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = p[i] / sp, b = q[i] / sq;
        double m = 0.5 * (a + b);
        if (a > 0.0) {
            js_p += a * log(a / m);
            kl_pq += b > 0.0 ? a * log(a / b) : INFINITY;
        }
        if (b > 0.0) {
            js_q += b * log(b / m);
            kl_qp += a > 0.0 ? b * log(b / a) : INFINITY;
        }
    }
    double js = 0.5 * js_p + 0.5 * js_q;
    /* Rounding may step just outside the bounds the exact values obey. */
    out->js = js < 0.0 ? 0.0 : (js > M_LN2 ? M_LN2 : js);
    out->kl_pq = kl_pq > 0.0 ? kl_pq : 0.0;
    out->kl_qp = kl_qp > 0.0 ? kl_qp : 0.0;
    return 0;
}

/* ---- classes -------------------------------------------------------------------- */

int agon_class_histogram(const int32_t *labels, int64_t n, int64_t n_classes, int64_t min_count,
                         const double *ref, int64_t *counts, int64_t *covered, double *kl,
                         agon_error *err)
{
    assert(labels && counts && covered && kl);
    if (n_classes < 1)
        return agon_error_set(err, AGON_EDATA,
                              "class histogram: %lld classes; pass at least one",
                              (long long)n_classes);
    if (n < 1)
        return agon_error_set(err, AGON_EDATA, "class histogram: no labels; pass at least one");
    double ref_sum = 0.0;
    if (ref) {
        for (int64_t c = 0; c < n_classes; c++) {
            if (!isfinite(ref[c]) || ref[c] < 0.0)
                return agon_error_set(err, AGON_EDATA,
                                      "class histogram: ref[%lld] = %g is not a probability; "
                                      "pass a distribution",
                                      (long long)c, ref[c]);
            ref_sum += ref[c];
        }
        if (!(ref_sum > 0.0))
            return agon_error_set(err, AGON_EDATA,
                                  "class histogram: ref sums to 0; pass a distribution");
    }
    for (int64_t c = 0; c < n_classes; c++)
        counts[c] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes) {
            for (int64_t c = 0; c < n_classes; c++)
                counts[c] = 0;
            return agon_error_set(err, AGON_EDATA,
                                  "class histogram: labels[%lld] = %d is outside 0..%lld; pass "
                                  "labels below n_classes = %lld",
                                  (long long)i, (int)labels[i], (long long)(n_classes - 1),
                                  (long long)n_classes);
        }
        counts[labels[i]]++;
    }
    int64_t cov = 0;
    double div = 0.0;
    for (int64_t c = 0; c < n_classes; c++) {
        cov += counts[c] >= min_count;
        if (counts[c] == 0)
            continue;
        double h = (double)counts[c] / (double)n;
        /* A ref that sums to 1 up to rounding is taken as it is meant. */
        double r = ref ? ref[c] / ref_sum : 1.0 / (double)n_classes;
        div += r > 0.0 ? h * log(h / r) : INFINITY;
    }
    *covered = cov;
    *kl = div > 0.0 ? div : 0.0;
    return 0;
}

/* NaN when there are no rows or classes. */
double agon_class_score(const float *probs, int64_t n, int64_t c)
{
    if (n < 1 || c < 1)
        return NAN;
    assert(probs);
    double *marginal = calloc((size_t)c, sizeof *marginal);
    if (!marginal)
        return NAN;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < c; j++)
            marginal[j] += probs[i * c + j];
    }
    for (int64_t j = 0; j < c; j++)
        marginal[j] /= (double)n;
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double row = 0.0;
        for (int64_t j = 0; j < c; j++) {
            double p = probs[i * c + j];
            if (p > 0.0)
                row += p * log(p / marginal[j]);
        }
        total += row;
    }
    free(marginal);
    double score = exp(total / (double)n);
    return score < 1.0 ? 1.0 : (score > (double)c ? (double)c : score);
}
