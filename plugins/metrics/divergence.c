/* divergence — Jensen-Shannon and both Kullback-Leibler divergences between
 * the data and the generator on 1-D and 2-D data whose density is known
 * (gaussian_mixture).
 *
 * The GAN game with the optimal discriminator minimises
 *     C(G) = -log 4 + 2 JS(p_data || p_g)          (Goodfellow et al. 2014),
 * so JS is the quantity training is supposed to drive to 0; the two KLs
 * tell mode dropping (KL(p_data || p_g) is large where the data has mass
 * and G has none) from spurious mass (KL(p_g || p_data) is large where G
 * puts samples the data never has).
 *
 * Each evaluation:
 *   1. draws n_samples generator samples x_1..x_n;
 *   2. estimates p_g with a Gaussian kernel density estimate
 *          p_g(y) = 1/n sum_i N(y; x_i, h^2 I)
 *      at the points of a regular grid over the evaluation box (the
 *      dataset's bounding box widened by `margin` box widths per side;
 *      `grid` points per axis, cell centres: see lowdim.h).  h is
 *      `bandwidth` when a number, else Scott's rule
 *          h = sigma n^(-1/(d+4)),  sigma = mean per-coordinate std,
 *      raised to at least one grid cell;
 *   3. tabulates p_data exactly on the same grid;
 *   4. floors both tables at  f = floor * max_grid p_data  (p <- max(p, f));
 *   5. computes the divergences as Riemann sums over the grid cells, each
 *      density first renormalised to integrate to 1 on the box
 *      (agon_grid_divergences).
 *
 * Why the floor.  In double precision a Gaussian kernel is exactly 0 about
 * 38 bandwidths from every sample, and a narrow mixture's density is
 * exactly 0 between its modes (ring of 8, std 0.02: the centre is 100 stds
 * away).  Without a floor, KL(p_data || p_g) is +infinity whenever G
 * misses a region of the data by a few bandwidths, which is the very
 * regime one wants to measure, and the curve carries no information.  With
 * it, the log-ratio inside each KL is bounded by about log(1/floor)
 * (27.6 nats at the default 1e-12), so a KL near that size reads "G has
 * (next to) no mass where the data has some".  The floor is relative to
 * p_data's maximum so that it means the same for any scale of the data.
 * It moves JS by about floor * (grid points) relative mass, below 1e-8 at
 * the defaults.  `floor: 0` turns it off (KLs may then be +infinity).
 *
 * Reading the numbers.
 *   - The estimate is biased: a perfect generator scores the divergence
 *     between p_data and p_data blurred by the kernel.  Scott's rule
 *     assumes one Gaussian and oversmooths mixtures (ring of 8: h is about
 *     0.27 against a mode std of 0.02), so on narrow mixtures give
 *     `bandwidth` as a number, a fraction of the mode std, and a grid
 *     whose cells are smaller still (ring of 8: grid 600, bandwidth 0.01
 *     give js_real 0.007, against 0.63 at the defaults).  The output
 *     js_real is the same estimator applied to n_samples real samples
 *     (computed once, at the first evaluation): what a perfect generator
 *     would score, the floor under js.
 *   - Both densities are renormalised on the box, so the divergences
 *     compare their shapes inside it.  mass_outside is the fraction of
 *     generator samples outside the box (or not finite), which the
 *     divergences ignore; a small js with a large mass_outside means G is
 *     mostly elsewhere.  When G has no density above the floor anywhere on
 *     the grid (all of it far away), js is log 2, its limit for disjoint
 *     supports, and both KLs are NaN: there is nothing to estimate them
 *     from.
 *
 * Outputs (nats): js (0 .. log 2), kl_data_g = KL(p_data || p_g),
 * kl_g_data = KL(p_g || p_data), mass_outside (0 .. 1), bandwidth (h used
 * in this evaluation), js_real.  Attributes: estimator, bandwidth_rule,
 * the grid (grid_per_axis, lo_0, hi_0[, lo_1, hi_1]) and the floor rule.
 *
 * Cost: n_samples x points multiply-adds per evaluation (20000 x 10000 on
 * the default 2-D grid, well under a second; agon_kde_grid factorises the
 * kernel over the axes).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/plugin.h"
#include "agon/stats.h"
#include "lowdim.h"

#define DV_MAX_SAMPLES 10000000

typedef struct dv_state {
    int d;
    int64_t n_samples;
    double fixed_h;         /* 0: Scott's rule */
    double floor_rel;
    agon_grid grid;
    int64_t points;
    agon_shape sample_shape;
    float *samples;         /* [n_samples, d] */
    float *xs;              /* [points, d]: the grid as samples */
    double *p_data;         /* [points], tabulated at the first evaluation */
    double *p_g;            /* [points] */
    double *fp, *fq;        /* [points]: floored copies */
    bool have_data;
    double floor_abs;       /* floor_rel * max p_data */
    double js_real;
} dv_state;

static void dv_destroy(void *state)
{
    dv_state *s = state;
    if (!s)
        return;
    free(s->samples);
    free(s->xs);
    free(s->p_data);
    free(s->p_g);
    free(s->fp);
    free(s->fq);
    free(s);
}

static int dv_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                     agon_error *err)
{
    lowdim_kde_opts o;
    *state = NULL;
    int rc = lowdim_kde_options(cfg, data, "divergence", DV_MAX_SAMPLES, &o, err);
    if (rc != 0 || (rc = lowdim_check_bandwidth(cfg, o.fixed_h, &o.grid, err)) != 0)
        return rc;
    const int d = o.d;
    const int64_t n_samples = o.n_samples;

    dv_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "divergence: out of memory");
    s->d = d;
    s->n_samples = n_samples;
    s->fixed_h = o.fixed_h;
    s->floor_rel = o.floor_rel;
    s->grid = o.grid;
    s->points = agon_grid_points(&o.grid);
    s->sample_shape = data->sample_shape;
    size_t points = (size_t)s->points;
    s->samples = malloc((size_t)n_samples * (size_t)d * sizeof *s->samples);
    s->xs = malloc(points * (size_t)d * sizeof *s->xs);
    s->p_data = malloc(points * sizeof *s->p_data);
    s->p_g = malloc(points * sizeof *s->p_g);
    s->fp = malloc(points * sizeof *s->fp);
    s->fq = malloc(points * sizeof *s->fq);
    if (!s->samples || !s->xs || !s->p_data || !s->p_g || !s->fp || !s->fq) {
        dv_destroy(s);
        return agon_error_set(err, AGON_ENOMEM,
                              "divergence: out of memory for %lld samples and %lld grid "
                              "points; lower n_samples or grid",
                              (long long)n_samples, (long long)points);
    }
    lowdim_grid_samples(&s->grid, s->xs);
    *state = s;
    return 0;
}

static int dv_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    dv_state *s = state;
    int rc;
    if ((rc = agon_metric_declare_attr(decl, "estimator", "gaussian_kde", err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "bandwidth_rule",
                                       s->fixed_h > 0.0 ? "fixed" : "scott, at least one cell",
                                       err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "floor_rule",
                                       "p <- max(p, floor * max p_data on the grid), "
                                       "for p_data and p_g",
                                       err)) != 0 ||
        (rc = agon_metric_declare_attr_double(decl, "floor_relative", s->floor_rel, err)) != 0)
        return rc;
    return lowdim_declare_grid(decl, &s->grid, err);
}

/* Divergences of p_data from a KDE of the n_samples in s->samples, as
 * lowdim_floored_divergences; *h receives the kernel width. */
static int sample_divergences(dv_state *s, double *h, agon_divergences *div, agon_error *err)
{
    int64_t n_finite;
    int rc = lowdim_kde(s->samples, s->n_samples, &s->grid, s->fixed_h, s->p_g, h, &n_finite,
                        err);
    if (rc != 0)
        return rc;
    return lowdim_floored_divergences(s->p_data, s->p_g, s->floor_abs, &s->grid, s->fp, s->fq,
                                      div, err);
}

/* js_real: the estimator run on real samples instead of generator ones. */
static int baseline(dv_state *s, agon_metric_ctx *ctx, agon_error *err)
{
    agon_tensor batch = {s->samples, agon_shape_batched(s->n_samples, &s->sample_shape)};
    int rc = agon_metric_real(ctx, &batch, err);
    if (rc != 0)
        return rc;
    double h;
    agon_divergences div;
    rc = sample_divergences(s, &h, &div, err);
    if (rc < 0)
        return rc;
    s->js_real = rc == 1 ? log(2.0) : div.js;
    return 0;
}

/* The data side (p_data on the grid, the real-sample baseline) does not
 * change, so it is computed once before the first step. */
static int dv_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    dv_state *s = state;
    int rc;
    if ((rc = lowdim_tabulate_density(ctx, s->xs, s->points, s->d, "divergence", s->floor_rel,
                                      s->p_data, &s->floor_abs, err)) != 0 ||
        (rc = baseline(s, ctx, err)) != 0)
        return rc;
    s->have_data = true;
    return 0;
}

static int dv_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    dv_state *s = state;
    int rc;
    if (!s->have_data)
        return agon_error_set(err, AGON_EINTERNAL,
                              "divergence: evaluated before prepare tabulated the data");

    agon_tensor batch = {s->samples, agon_shape_batched(s->n_samples, &s->sample_shape)};
    if ((rc = agon_metric_fake(ctx, &batch, err)) != 0)
        return rc;
    double outside = lowdim_outside(s->samples, s->n_samples, &s->grid);
    double h;
    agon_divergences div;
    rc = sample_divergences(s, &h, &div, err);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        div.js = log(2.0);
        div.kl_pq = NAN;
        div.kl_qp = NAN;
    }
    if ((rc = agon_metric_emit(ctx, "js", div.js, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "kl_data_g", div.kl_pq, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "kl_g_data", div.kl_qp, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "mass_outside", outside, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "bandwidth", h, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "js_real", s->js_real, err)) != 0)
        return rc;
    return 0;
}

static const char *const dv_outputs[] = {"js",           "kl_data_g", "kl_g_data",
                                         "mass_outside", "bandwidth", "js_real",
                                         NULL};

static const agon_metric_vtable dv_vtable = {
    sizeof(agon_metric_vtable),
    dv_outputs,
    dv_create,
    dv_destroy,
    dv_evaluate,
    dv_declare,
    dv_prepare,
};

static const agon_param_spec dv_params[] = {
    {"n_samples", AGON_PARAM_INT, "20000", 2, DV_MAX_SAMPLES, NULL,
     "generator samples drawn per evaluation for the density estimate"},
    {"grid", AGON_PARAM_INT, "0", 0, LOWDIM_MAX_GRID_1D, NULL,
     "grid points per axis (0: 400 for 1-D data, 100 for 2-D; 2-D at most 1024)"},
    {"margin", AGON_PARAM_FLOAT, "0.1", 0.0, 10.0, NULL,
     "widen the data's bounding box by this fraction of its width on each side"},
    {"bandwidth", AGON_PARAM_STRING, "scott", AGON_NO_RANGE, NULL,
     "kernel std: 'scott' (Scott's rule, at least one grid cell) or a number > 0"},
    {"floor", AGON_PARAM_FLOAT, "1e-12", 0.0, 1.0, NULL,
     "densities are floored at this fraction of p_data's maximum, so KLs stay finite"},
    AGON_PARAM_END,
};

AGON_PLUGIN("divergence", "1.0.0", "JS and KL divergences on 1-D and 2-D data",
            AGON_METRIC("divergence",
                        "JS, KL(p_data||p_g), KL(p_g||p_data) from a KDE of generator samples",
                        dv_params, &dv_vtable));
