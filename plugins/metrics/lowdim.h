/* lowdim.h — what the metrics on 1-D and 2-D data share: the check that a
 * dataset is such data, the evaluation box around it, the grid over that
 * box, the `bandwidth` and `label` options, a kernel density estimate
 * of generator samples on the grid, and, for the metrics that compare
 * that estimate with the data's density, their options, the tabulated
 * density and the floored divergences.
 *
 * Private to divergence, optimal_discriminator, d_landscape and
 * latent_interpolation.  Header-only, because every plugin is a shared
 * object of its own and none may depend on another.
 *
 * The box.  A dataset that knows its bounding box (agon_dataset_info's
 * bounds_lo/hi; gaussian_mixture's reaches 4 mode stds past the outer
 * centres) is widened by `margin` times its width on each side, so that a
 * generator that spills a little past the data is still seen, and grid
 * points lie on cell centres (agon_grid), so the box edges themselves are
 * never evaluated.
 */
#ifndef AGON_PLUGINS_METRICS_LOWDIM_H
#define AGON_PLUGINS_METRICS_LOWDIM_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agon/plugin.h"
#include "agon/stats.h"

#define LOWDIM_UNUSED __attribute__((unused))

/* Largest grid: per axis in 1-D, and per axis in 2-D (a million points). */
#define LOWDIM_MAX_GRID_1D 1000000
#define LOWDIM_MAX_GRID_2D 1024

/* The node the user wrote for `key`, or `fallback` when the key is absent
 * or came from the schema default (whose position, <default>:0:0, would
 * not help anyone find the problem). */
static LOWDIM_UNUSED const agon_node *lowdim_node(const agon_node *cfg, const char *key)
{
    const agon_node *node = agon_node_get(cfg, key);
    const char *file = node ? agon_node_file(node) : NULL;
    if (!file || strcmp(file, "<default>") == 0)
        return cfg;
    return node;
}

/* Checks that `data` is 1-D or 2-D with a bounding box (and a density when
 * need_density) and sets *d.  The messages name the metric and say what to
 * do; they are positioned at the metric's section. */
static LOWDIM_UNUSED int lowdim_check_data(const agon_node *cfg, const agon_dataset_info *data,
                                           const char *metric, bool need_density, int *d,
                                           agon_error *err)
{
    if (!data || !data->bounds_lo || !data->bounds_hi || (need_density && !data->density)) {
        return agon_node_error(err, AGON_ECONFIG, cfg,
                               "%s needs a dataset with a known %s (gaussian_mixture with 1-D "
                               "or 2-D samples); remove the metric or change the dataset",
                               metric, need_density ? "density and bounding box" : "bounding box");
    }
    int64_t numel = agon_shape_numel(&data->sample_shape);
    if (numel != 1 && numel != 2) {
        char shape[96];
        return agon_node_error(err, AGON_ECONFIG, cfg,
                               "%s works on 1-D or 2-D samples, and the dataset's samples have "
                               "shape %s; remove the metric or use 1-D or 2-D data",
                               metric, agon_shape_format(&data->sample_shape, shape, sizeof shape));
    }
    for (int64_t j = 0; j < numel; j++) {
        double lo = data->bounds_lo[j], hi = data->bounds_hi[j];
        if (!isfinite(lo) || !isfinite(hi) || !(hi > lo)) {
            return agon_node_error(err, AGON_ECONFIG, cfg,
                                   "%s: the dataset's bounding box [%g, %g] on coordinate %lld "
                                   "is empty or not finite; use a dataset with a proper box",
                                   metric, lo, hi, (long long)j);
        }
    }
    *d = (int)numel;
    return 0;
}

/* Reads `margin` (>= 0, at most 10 box widths). */
static LOWDIM_UNUSED int lowdim_margin(const agon_node *cfg, double *margin, agon_error *err)
{
    int rc = agon_cfg_opt_float(cfg, "margin", 0.1, margin, err);
    if (rc != 0)
        return rc;
    if (!(*margin >= 0.0 && *margin <= 10.0)) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "margin"),
                               "must be 0 to 10 (a fraction of the box width per side), got %g",
                               *margin);
    }
    return 0;
}

/* Reads `grid` (points per axis); 0 picks def_1d or def_2d by dimension. */
static LOWDIM_UNUSED int lowdim_per_axis(const agon_node *cfg, int d, int64_t def_1d,
                                         int64_t def_2d, int64_t *per_axis, agon_error *err)
{
    int64_t v;
    int rc = agon_cfg_opt_int(cfg, "grid", 0, &v, err);
    if (rc != 0)
        return rc;
    int64_t max = d == 1 ? LOWDIM_MAX_GRID_1D : LOWDIM_MAX_GRID_2D;
    if (v == 0)
        v = d == 1 ? def_1d : def_2d;
    if (v < 2 || v > max) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "grid"),
                               "must be 2 to %lld points per axis for %d-D data (or 0 for the "
                               "default), got %lld",
                               (long long)max, d, (long long)v);
    }
    *per_axis = v;
    return 0;
}

/* The grid over the dataset's box widened by `margin` box widths per side. */
static LOWDIM_UNUSED agon_grid lowdim_grid(const agon_dataset_info *data, int d, double margin,
                                           int64_t per_axis)
{
    agon_grid g;
    memset(&g, 0, sizeof g);
    g.d = d;
    g.per_axis = per_axis;
    for (int j = 0; j < d; j++) {
        double lo = data->bounds_lo[j], hi = data->bounds_hi[j];
        double w = hi - lo;
        g.lo[j] = lo - margin * w;
        g.hi[j] = hi + margin * w;
    }
    return g;
}

/* The smaller of the grid's cell widths. */
static LOWDIM_UNUSED double lowdim_cell_width(const agon_grid *g)
{
    double w = (g->hi[0] - g->lo[0]) / (double)g->per_axis;
    if (g->d == 2)
        w = fmin(w, (g->hi[1] - g->lo[1]) / (double)g->per_axis);
    return w;
}

/* Grid point coordinates as float samples: xs[points, d]. */
static LOWDIM_UNUSED void lowdim_grid_samples(const agon_grid *g, float *xs)
{
    int64_t n = agon_grid_points(g);
    double x[2];
    for (int64_t i = 0; i < n; i++) {
        agon_grid_point(g, i, x);
        for (int j = 0; j < g->d; j++)
            xs[i * g->d + j] = (float)x[j];
    }
}

/* The shape of a tensor holding one value per grid point: [per_axis] or
 * [per_axis, per_axis] (row = first coordinate, agon_grid's order). */
static LOWDIM_UNUSED agon_shape lowdim_grid_shape(const agon_grid *g)
{
    int64_t dims[2] = {g->per_axis, g->per_axis};
    return agon_shape_make(g->d, dims);
}

/* Records the box and grid as attributes: lo_0, hi_0 (lo_1, hi_1 for 2-D)
 * and grid_per_axis, from which a reader rebuilds the coordinates of point
 * i along an axis: lo + (i + 0.5) * (hi - lo) / grid_per_axis. */
static LOWDIM_UNUSED int lowdim_declare_grid(agon_metric_decl *decl, const agon_grid *g,
                                             agon_error *err)
{
    static const char *const lo_keys[] = {"lo_0", "lo_1"}, *const hi_keys[] = {"hi_0", "hi_1"};
    int rc = agon_metric_declare_attr_double(decl, "grid_per_axis", (double)g->per_axis, err);
    for (int j = 0; rc == 0 && j < g->d; j++) {
        rc = agon_metric_declare_attr_double(decl, lo_keys[j], g->lo[j], err);
        if (rc == 0)
            rc = agon_metric_declare_attr_double(decl, hi_keys[j], g->hi[j], err);
    }
    return rc;
}

/* Reads `bandwidth`: "scott" (*fixed = 0) or a positive number (*fixed). */
static LOWDIM_UNUSED int lowdim_bandwidth(const agon_node *cfg, double *fixed, agon_error *err)
{
    const char *text;
    int rc = agon_cfg_opt_string(cfg, "bandwidth", "scott", &text, err);
    if (rc != 0)
        return rc;
    *fixed = 0.0;
    if (strcmp(text, "scott") == 0)
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || !(v > 0.0)) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "bandwidth"),
                               "expected 'scott' or a positive number, got '%s'", text);
    }
    *fixed = v;
    return 0;
}

/* A fixed kernel width must not be narrower than a grid cell (see
 * lowdim_kde). */
static LOWDIM_UNUSED int lowdim_check_bandwidth(const agon_node *cfg, double fixed,
                                                const agon_grid *g, agon_error *err)
{
    double cell = lowdim_cell_width(g);
    if (fixed > 0.0 && fixed < cell) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "bandwidth"),
                               "%g is narrower than one grid cell (%g); raise the bandwidth or "
                               "the number of grid points",
                               fixed, cell);
    }
    return 0;
}

/* Reads `label` (the class a conditional run's G and D are asked about):
 * 0 to n_classes - 1, or 0 for data without classes. */
static LOWDIM_UNUSED int lowdim_label(const agon_node *cfg, const agon_dataset_info *data,
                                      int32_t *label, agon_error *err)
{
    int64_t v;
    int rc = agon_cfg_opt_int(cfg, "label", 0, &v, err);
    if (rc != 0)
        return rc;
    int64_t n_classes = data ? data->n_classes : 0;
    if (n_classes <= 0 && v != 0) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "label"),
                               "the dataset has no classes, so label must be 0, got %lld; "
                               "remove the key",
                               (long long)v);
    }
    if (n_classes > 0 && (v < 0 || v >= n_classes)) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "label"),
                               "must be a class of the dataset, 0 to %lld, got %lld",
                               (long long)(n_classes - 1), (long long)v);
    }
    *label = (int32_t)v;
    return 0;
}

/* Kernel density estimate p_g of the n samples xs[n, d] at every grid
 * point into density[points], as a density of all n samples: samples that
 * are not finite are left out of the kernel sum but still count in n, so
 * they are mass the grid never sees (like samples far outside the box).
 * The kernel width is `fixed` when > 0, else Scott's rule on the finite
 * samples, raised to at least one grid cell: a kernel narrower than a cell
 * falls between grid points and the grid's Riemann sums would miss its
 * mass (a generator collapsed to a point has no spread at all).  xs is
 * reordered (finite samples first).  *h receives the width used, and
 * *n_finite the finite samples; with none, density is all 0. */
static LOWDIM_UNUSED int lowdim_kde(float *xs, int64_t n, const agon_grid *g, double fixed,
                                    double *density, double *h, int64_t *n_finite,
                                    agon_error *err)
{
    int d = g->d;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        bool ok = true;
        for (int j = 0; j < d; j++)
            ok = ok && isfinite(xs[i * d + j]);
        if (ok) {
            if (m != i)
                memcpy(xs + m * d, xs + i * d, (size_t)d * sizeof *xs);
            m++;
        }
    }
    *n_finite = m;
    double cell = lowdim_cell_width(g);
    *h = fixed > 0.0 ? fixed : fmax(m >= 2 ? agon_kde_bandwidth_scott(xs, m, d) : 0.0, cell);
    int64_t points = agon_grid_points(g);
    if (m == 0) {
        memset(density, 0, (size_t)points * sizeof *density);
        return 0;
    }
    int rc = agon_kde_grid(xs, m, d, *h, g, density, err);
    if (rc != 0)
        return rc;
    double scale = (double)m / (double)n;
    for (int64_t i = 0; scale != 1.0 && i < points; i++)
        density[i] *= scale;
    return 0;
}

/* The options of the metrics that compare a KDE of generator samples with
 * the data's density on the grid (divergence, optimal_discriminator). */
typedef struct lowdim_kde_opts {
    int d;
    int64_t n_samples;
    double fixed_h;         /* 0: Scott's rule */
    double floor_rel;
    agon_grid grid;
} lowdim_kde_opts;

/* Reads and checks n_samples (2 to max_samples), grid, margin, bandwidth
 * and floor of `metric` on `data`, which needs a density, and builds the
 * grid.  The bandwidth is not yet checked against the grid: the caller
 * does that (lowdim_check_bandwidth) after its own options, whose
 * messages come first. */
static LOWDIM_UNUSED int lowdim_kde_options(const agon_node *cfg, const agon_dataset_info *data,
                                            const char *metric, int max_samples,
                                            lowdim_kde_opts *o, agon_error *err)
{
    int64_t per_axis = 0;
    double margin;
    int rc;
    memset(o, 0, sizeof *o);
    if ((rc = lowdim_check_data(cfg, data, metric, true, &o->d, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "n_samples", 20000, &o->n_samples, err)) != 0 ||
        (rc = lowdim_per_axis(cfg, o->d, 400, 100, &per_axis, err)) != 0 ||
        (rc = lowdim_margin(cfg, &margin, err)) != 0 ||
        (rc = lowdim_bandwidth(cfg, &o->fixed_h, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "floor", 1e-12, &o->floor_rel, err)) != 0)
        return rc;
    if (o->n_samples < 2 || o->n_samples > max_samples) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "n_samples"),
                               "must be 2 to %d, got %lld", max_samples,
                               (long long)o->n_samples);
    }
    if (!(o->floor_rel >= 0.0 && o->floor_rel < 1.0)) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "floor"),
                               "must be >= 0 and < 1 (a fraction of the data density's "
                               "maximum), got %g",
                               o->floor_rel);
    }
    o->grid = lowdim_grid(data, o->d, margin, per_axis);
    return 0;
}

/* Tabulates the data's density at the grid points xs[points, d] into
 * p_data, and sets *floor_abs to floor_rel times its maximum.  The
 * messages name `metric`. */
static LOWDIM_UNUSED int lowdim_tabulate_density(agon_metric_ctx *ctx, const float *xs,
                                                 int64_t points, int d, const char *metric,
                                                 double floor_rel, double *p_data,
                                                 double *floor_abs, agon_error *err)
{
    double max = 0.0;
    for (int64_t i = 0; i < points; i++) {
        double p = agon_metric_data_density(ctx, xs + i * d);
        if (!isfinite(p) || p < 0.0) {
            return agon_error_set(err, AGON_EPLUGIN,
                                  "%s: the dataset's density is %g at a grid point; the "
                                  "metric needs a dataset with a known density",
                                  metric, p);
        }
        p_data[i] = p;
        max = fmax(max, p);
    }
    if (!(max > 0.0)) {
        return agon_error_set(err, AGON_EPLUGIN,
                              "%s: the dataset's density is 0 on the whole grid; check the "
                              "dataset's bounding box",
                              metric);
    }
    *floor_abs = floor_rel * max;
    return 0;
}

/* Divergences of p from q (one value per grid point) after both are
 * floored at floor_abs into fp and fq.  Returns 1 when q has nothing above
 * the floor (the caller reports the limits), 0 when *out is set, or a
 * negative status. */
static LOWDIM_UNUSED int lowdim_floored_divergences(const double *p, const double *q,
                                                    double floor_abs, const agon_grid *g,
                                                    double *fp, double *fq,
                                                    agon_divergences *out, agon_error *err)
{
    int64_t points = agon_grid_points(g);
    double max_q = 0.0;
    for (int64_t i = 0; i < points; i++) {
        max_q = fmax(max_q, q[i]);
        fp[i] = fmax(p[i], floor_abs);
        fq[i] = fmax(q[i], floor_abs);
    }
    if (!(max_q > floor_abs))
        return 1;
    return agon_grid_divergences(fp, fq, points, agon_grid_cell(g), out, err);
}

/* Fraction of the n samples xs[n, d] that are not inside the grid's box
 * (not finite, or beyond lo/hi on some coordinate).  Call it before
 * lowdim_kde, which reorders the samples. */
static LOWDIM_UNUSED double lowdim_outside(const float *xs, int64_t n, const agon_grid *g)
{
    int64_t out = 0;
    for (int64_t i = 0; i < n; i++) {
        bool in = true;
        for (int j = 0; j < g->d; j++) {
            double v = xs[i * g->d + j];
            in = in && v >= g->lo[j] && v <= g->hi[j];
        }
        out += !in;
    }
    return n > 0 ? (double)out / (double)n : 0.0;
}

#endif /* AGON_PLUGINS_METRICS_LOWDIM_H */
