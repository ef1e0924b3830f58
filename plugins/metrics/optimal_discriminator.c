/* optimal_discriminator — how far the discriminator is from the optimal one
 * for the current generator, on 1-D and 2-D data with a known density.
 *
 * For a fixed G the value function
 *     V(D, G) = E_{x~p_data}[log D(x)] + E_{z}[log(1 - D(G(z)))]
 * is maximised by D*(x) = p_data(x) / (p_data(x) + p_g(x)), where it takes
 * the value  V(D*, G) = -log 4 + 2 JS(p_data || p_g)  (Goodfellow et al.
 * 2014, Proposition 1 and Theorem 1).  With G frozen (train.freeze_g_from)
 * D should converge to D*; this metric shows whether it does.
 *
 * Each evaluation draws n_samples generator samples and estimates p_g on a
 * grid exactly as the `divergence` metric does (Gaussian KDE, `bandwidth`
 * scott or a number, at least one grid cell; the grid covers the data's
 * bounding box widened by `margin` box widths per side, `grid` points per
 * axis), tabulates p_data exactly, and runs D on the grid points:
 *   D(x)     = sigmoid(l(x)), l the discriminator's logit;
 *   D*(x)    = p_data / (p_data + p_g), from the raw (not renormalised)
 *              densities: the KDE of all n samples is a density on the
 *              whole space, and p_data is exact.
 * Outputs:
 *   max_abs_err          max |D - D*| over the support S, the grid points
 *                        where p_data + p_g > support * max(p_data + p_g).
 *                        Outside S both densities are negligible, D* is a
 *                        ratio of two underflowing numbers and D there is
 *                        never trained: errors there mean nothing.
 *   mean_abs_err         sum |D - D*| m / sum m over all grid points, with
 *                        m = (p_data + p_g) / 2 (the mixture both
 *                        players' samples come from): the error where D is
 *                        actually used.
 *   mean_abs_err_uniform the plain mean of |D - D*| over S: every part of
 *                        the support counts alike, low-density regions
 *                        included.
 *   value                V(D, G) by Monte Carlo: n_samples real samples and
 *                        the same n_samples generator samples, with
 *                        log D = -softplus(-l) and log(1 - D) = -softplus(l)
 *                        (no overflow, no log 0).
 *   value_optimal        -log 4 + 2 js.  value <= value_optimal up to
 *                        sampling and estimation error; the gap is how
 *                        much D leaves on the table.
 *   js                   JS(p_data || p_g) on the grid, as `divergence`
 *                        computes it (densities floored at `floor` times
 *                        max p_data, renormalised on the box).
 * Tensor outputs, one value per grid point in agon_grid order ([grid] for
 * 1-D, [grid, grid] for 2-D with the first coordinate along the rows): d,
 * d_star, p_data and p_g.  The grid's coordinates are not logged: they
 * follow from the attributes grid_per_axis, lo_0, hi_0 (lo_1, hi_1):
 * point i of an axis sits at lo + (i + 0.5) (hi - lo) / grid_per_axis.
 *
 * The KDE's bias (it blurs p_g by the kernel) moves D* too: for a check of
 * D against D* give G a smooth distribution or a `bandwidth` well below
 * its features.  Conditional runs are refused: there D depends on the
 * label, and the dataset's density is that of x alone.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/loss.h"
#include "agon/plugin.h"
#include "agon/stats.h"
#include "lowdim.h"

#define OD_MAX_SAMPLES 10000000

typedef struct od_state {
    int d;
    int64_t n_samples;
    double fixed_h, floor_rel, support;
    agon_grid grid;
    int64_t points;
    agon_shape sample_shape;
    float *samples;         /* [n_samples, d] */
    float *logits;          /* [max(n_samples, points)] */
    float *xs;              /* [points, d]: the grid as samples */
    double *p_data, *p_g;   /* [points] */
    double *fp, *fq;        /* [points]: floored copies for the divergences */
    float *t_d, *t_star, *t_data, *t_g;  /* [points]: the tensor outputs */
    bool have_data;
    double floor_abs;
} od_state;

static void od_destroy(void *state)
{
    od_state *s = state;
    if (!s)
        return;
    free(s->samples);
    free(s->logits);
    free(s->xs);
    free(s->p_data);
    free(s->p_g);
    free(s->fp);
    free(s->fq);
    free(s->t_d);
    free(s->t_star);
    free(s->t_data);
    free(s->t_g);
    free(s);
}

static int od_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                     agon_error *err)
{
    lowdim_kde_opts o;
    double support;
    *state = NULL;
    int rc = lowdim_kde_options(cfg, data, "optimal_discriminator", OD_MAX_SAMPLES, &o, err);
    if (rc == 0)
        rc = agon_cfg_opt_float(cfg, "support", 1e-3, &support, err);
    if (rc != 0)
        return rc;
    if (!(support >= 0.0 && support < 1.0)) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "support"),
                               "must be >= 0 and < 1 (a fraction of the maximum of "
                               "p_data + p_g), got %g",
                               support);
    }
    if ((rc = lowdim_check_bandwidth(cfg, o.fixed_h, &o.grid, err)) != 0)
        return rc;
    const int d = o.d;
    const int64_t n_samples = o.n_samples;

    od_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "optimal_discriminator: out of memory");
    s->d = d;
    s->n_samples = n_samples;
    s->fixed_h = o.fixed_h;
    s->floor_rel = o.floor_rel;
    s->support = support;
    s->grid = o.grid;
    s->points = agon_grid_points(&o.grid);
    s->sample_shape = data->sample_shape;
    size_t points = (size_t)s->points;
    size_t n_logits = (size_t)(n_samples > s->points ? n_samples : s->points);
    s->samples = malloc((size_t)n_samples * (size_t)d * sizeof *s->samples);
    s->logits = malloc(n_logits * sizeof *s->logits);
    s->xs = malloc(points * (size_t)d * sizeof *s->xs);
    s->p_data = malloc(points * sizeof *s->p_data);
    s->p_g = malloc(points * sizeof *s->p_g);
    s->fp = malloc(points * sizeof *s->fp);
    s->fq = malloc(points * sizeof *s->fq);
    s->t_d = malloc(points * sizeof *s->t_d);
    s->t_star = malloc(points * sizeof *s->t_star);
    s->t_data = malloc(points * sizeof *s->t_data);
    s->t_g = malloc(points * sizeof *s->t_g);
    if (!s->samples || !s->logits || !s->xs || !s->p_data || !s->p_g || !s->fp || !s->fq ||
        !s->t_d || !s->t_star || !s->t_data || !s->t_g) {
        od_destroy(s);
        return agon_error_set(err, AGON_ENOMEM,
                              "optimal_discriminator: out of memory for %lld samples and %lld "
                              "grid points; lower n_samples or grid",
                              (long long)n_samples, (long long)points);
    }
    lowdim_grid_samples(&s->grid, s->xs);
    *state = s;
    return 0;
}

static int od_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    od_state *s = state;
    agon_shape shape = lowdim_grid_shape(&s->grid);
    static const char *const tensors[] = {"d", "d_star", "p_data", "p_g"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof tensors / sizeof tensors[0]; i++)
        rc = agon_metric_declare_tensor(decl, tensors[i], &shape, err);
    if (rc != 0 ||
        (rc = agon_metric_declare_attr(decl, "estimator", "gaussian_kde", err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "bandwidth_rule",
                                       s->fixed_h > 0.0 ? "fixed" : "scott, at least one cell",
                                       err)) != 0 ||
        (rc = agon_metric_declare_attr_double(decl, "floor_relative", s->floor_rel, err)) != 0)
        return rc;
    return lowdim_declare_grid(decl, &s->grid, err);
}

/* Tabulates p_data on the grid (once: it never changes). */
static int tabulate_data(od_state *s, agon_metric_ctx *ctx, agon_error *err)
{
    int rc = lowdim_tabulate_density(ctx, s->xs, s->points, s->d, "optimal_discriminator",
                                     s->floor_rel, s->p_data, &s->floor_abs, err);
    for (int64_t i = 0; rc == 0 && i < s->points; i++)
        s->t_data[i] = (float)s->p_data[i];
    return rc;
}

/* JS of p_data and p_g on the grid (floored and renormalised, as in the
 * divergence metric); log 2 when p_g has nothing above the floor. */
static int grid_js(od_state *s, double *js, agon_error *err)
{
    agon_divergences div;
    int rc = lowdim_floored_divergences(s->p_data, s->p_g, s->floor_abs, &s->grid, s->fp, s->fq,
                                        &div, err);
    if (rc < 0)
        return rc;
    *js = rc == 1 ? log(2.0) : div.js;
    return 0;
}

/* Mean of log(1 - D) over the logits (fake) or of log D (real). */
static double mean_log_d(const float *logits, int64_t n, bool real)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum -= agon_softplus(real ? -(double)logits[i] : (double)logits[i]);
    return sum / (double)n;
}

/* p_data on the grid does not change: tabulated once before the first
 * step. */
static int od_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    od_state *s = state;
    if (agon_metric_conditional(ctx))
        return 0;   /* evaluate says why the metric cannot run */
    int rc = tabulate_data(s, ctx, err);
    if (rc == 0)
        s->have_data = true;
    return rc;
}

static int od_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    od_state *s = state;
    int rc;
    if (agon_metric_conditional(ctx)) {
        return agon_error_set(err, AGON_ECONFIG,
                              "optimal_discriminator does not support conditional runs (D "
                              "depends on the label, the data density does not); remove the "
                              "metric or set train.conditional: none");
    }
    if (!s->have_data)
        return agon_error_set(err, AGON_EINTERNAL,
                              "optimal_discriminator: evaluated before prepare tabulated the "
                              "data");

    /* V(D, G): generator half first, on the samples the KDE uses next
     * (lowdim_kde reorders them, which the mean does not mind). */
    agon_tensor batch = {s->samples, agon_shape_batched(s->n_samples, &s->sample_shape)};
    if ((rc = agon_metric_fake(ctx, &batch, err)) != 0 ||
        (rc = agon_metric_discriminate(ctx, &batch, s->logits, err)) != 0)
        return rc;
    double value = mean_log_d(s->logits, s->n_samples, false);
    double h;
    int64_t n_finite;
    if ((rc = lowdim_kde(s->samples, s->n_samples, &s->grid, s->fixed_h, s->p_g, &h, &n_finite,
                         err)) != 0)
        return rc;
    if ((rc = agon_metric_real(ctx, &batch, err)) != 0 ||
        (rc = agon_metric_discriminate(ctx, &batch, s->logits, err)) != 0)
        return rc;
    value += mean_log_d(s->logits, s->n_samples, true);

    agon_tensor grid_x = {s->xs, agon_shape_batched(s->points, &s->sample_shape)};
    if ((rc = agon_metric_discriminate(ctx, &grid_x, s->logits, err)) != 0)
        return rc;

    double max_mass = 0.0;
    for (int64_t i = 0; i < s->points; i++)
        max_mass = fmax(max_mass, s->p_data[i] + s->p_g[i]);
    double threshold = s->support * max_mass;
    double max_err = 0.0, w_err = 0.0, w_sum = 0.0, u_err = 0.0;
    int64_t u_count = 0;
    for (int64_t i = 0; i < s->points; i++) {
        double p = s->p_data[i], q = s->p_g[i];
        double dv = agon_sigmoid((double)s->logits[i]);
        /* Where both densities underflow, D* is 0/0; 1/2 (no information
         * either way) is its limit for equal tails and keeps the logged
         * tensor finite.  Such points lie outside the support. */
        double star = p + q > 0.0 ? p / (p + q) : 0.5;
        double e = fabs(dv - star);
        s->t_d[i] = (float)dv;
        s->t_star[i] = (float)star;
        s->t_g[i] = (float)q;
        w_err += e * (p + q) / 2.0;
        w_sum += (p + q) / 2.0;
        if (p + q > threshold) {
            max_err = fmax(max_err, e);
            u_err += e;
            u_count++;
        }
    }
    double js;
    if ((rc = grid_js(s, &js, err)) != 0)
        return rc;
    double mean_err = w_sum > 0.0 ? w_err / w_sum : NAN;
    double mean_uniform = u_count > 0 ? u_err / (double)u_count : NAN;

    if ((rc = agon_metric_emit(ctx, "max_abs_err", max_err, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "mean_abs_err", mean_err, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "mean_abs_err_uniform", mean_uniform, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "value", value, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "value_optimal", -log(4.0) + 2.0 * js, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "js", js, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "d", s->t_d, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "d_star", s->t_star, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "p_data", s->t_data, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "p_g", s->t_g, err)) != 0)
        return rc;
    return 0;
}

static const char *const od_outputs[] = {"max_abs_err", "mean_abs_err", "mean_abs_err_uniform",
                                         "value",       "value_optimal", "js",
                                         NULL};

static const agon_metric_vtable od_vtable = {
    sizeof(agon_metric_vtable),
    od_outputs,
    od_create,
    od_destroy,
    od_evaluate,
    od_declare,
    od_prepare,
};

static const agon_param_spec od_params[] = {
    {"n_samples", AGON_PARAM_INT, "20000", 2, OD_MAX_SAMPLES, NULL,
     "generator samples (for the density estimate and V) and real samples (for V) "
     "per evaluation"},
    {"grid", AGON_PARAM_INT, "0", 0, LOWDIM_MAX_GRID_1D, NULL,
     "grid points per axis (0: 400 for 1-D data, 100 for 2-D; 2-D at most 1024)"},
    {"margin", AGON_PARAM_FLOAT, "0.1", 0.0, 10.0, NULL,
     "widen the data's bounding box by this fraction of its width on each side"},
    {"bandwidth", AGON_PARAM_STRING, "scott", AGON_NO_RANGE, NULL,
     "kernel std: 'scott' (Scott's rule, at least one grid cell) or a number > 0"},
    {"floor", AGON_PARAM_FLOAT, "1e-12", 0.0, 1.0, NULL,
     "for js: densities are floored at this fraction of p_data's maximum"},
    {"support", AGON_PARAM_FLOAT, "1e-3", 0.0, 1.0, NULL,
     "max_abs_err and mean_abs_err_uniform use grid points where p_data + p_g exceeds "
     "this fraction of its maximum"},
    AGON_PARAM_END,
};

AGON_PLUGIN("optimal_discriminator", "1.0.0",
            "The discriminator against D* = p_data / (p_data + p_g) on 1-D and 2-D data",
            AGON_METRIC("optimal_discriminator",
                        "|D - D*| on a grid, V(D, G) against -log 4 + 2 JS",
                        od_params, &od_vtable));
