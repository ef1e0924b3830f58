/* d_landscape — the discriminator's output D(x) = sigmoid(l(x)) on a grid
 * over 1-D or 2-D data, logged as a tensor at every evaluation.
 *
 * What D believes is real, everywhere in the plane, is how one sees the
 * game at work: D's ridges around the modes G has not found yet, the
 * plateau of 1/2 where G matches the data (D* = p_data / (p_data + p_g)),
 * and, with D frozen (train.freeze_d_from), the fixed landscape G hops
 * across.  Plot it under the sample snapshots (/samples) of the same step.
 *
 * The grid covers the data's bounding box (agon_dataset_info bounds_lo/hi)
 * widened by `margin` box widths on each side (default 0.1: D's behaviour
 * just past the data is where a generator that overshoots ends up), with
 * `grid` points per axis at cell centres: point i of axis j sits at
 *     lo_j + (i + 0.5) (hi_j - lo_j) / grid,
 * lo_j and hi_j being the attributes of the metric's group.  Tensor "d" is
 * [grid] for 1-D data and [grid, grid] for 2-D data, where d[i0][i1] is D at
 * (x0 = point i0 of axis 0, x1 = point i1 of axis 1): the first coordinate
 * runs down the rows (agon_grid's order).  To show it with x0 across, as a
 * scatter plot of the samples does, plot the transpose, e.g.
 * imshow(d.T, origin="lower", extent=[lo_0, hi_0, lo_1, hi_1]).
 *
 * In a conditional run D is asked about class `label` at every point.  The
 * metric has no scalar outputs.  Cost: one forward pass of D over grid^d
 * points.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/loss.h"
#include "agon/plugin.h"
#include "agon/stats.h"
#include "lowdim.h"

typedef struct dl_state {
    agon_grid grid;
    int64_t points;
    int32_t label;
    agon_shape sample_shape;
    float *xs;          /* [points, d]: the grid as samples */
    float *values;      /* [points]: logits, then D */
    int32_t *labels;    /* [points], all `label` */
} dl_state;

static void dl_destroy(void *state)
{
    dl_state *s = state;
    if (!s)
        return;
    free(s->xs);
    free(s->values);
    free(s->labels);
    free(s);
}

static int dl_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                     agon_error *err)
{
    int64_t per_axis = 0;
    double margin;
    int32_t label = 0;
    int d = 0, rc;

    *state = NULL;
    if ((rc = lowdim_check_data(cfg, data, "d_landscape", false, &d, err)) != 0 ||
        (rc = lowdim_per_axis(cfg, d, 64, 64, &per_axis, err)) != 0 ||
        (rc = lowdim_margin(cfg, &margin, err)) != 0 ||
        (rc = lowdim_label(cfg, data, &label, err)) != 0)
        return rc;

    dl_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "d_landscape: out of memory");
    s->grid = lowdim_grid(data, d, margin, per_axis);
    s->points = agon_grid_points(&s->grid);
    s->label = label;
    s->sample_shape = data->sample_shape;
    s->xs = malloc((size_t)s->points * (size_t)d * sizeof *s->xs);
    s->values = malloc((size_t)s->points * sizeof *s->values);
    s->labels = malloc((size_t)s->points * sizeof *s->labels);
    if (!s->xs || !s->values || !s->labels) {
        dl_destroy(s);
        return agon_error_set(err, AGON_ENOMEM,
                              "d_landscape: out of memory for %lld grid points; lower grid",
                              (long long)agon_grid_points(&s->grid));
    }
    lowdim_grid_samples(&s->grid, s->xs);
    for (int64_t i = 0; i < s->points; i++)
        s->labels[i] = label;
    *state = s;
    return 0;
}

static int dl_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    dl_state *s = state;
    agon_shape shape = lowdim_grid_shape(&s->grid);
    int rc = agon_metric_declare_tensor(decl, "d", &shape, err);
    if (rc == 0)
        rc = agon_metric_declare_attr(decl, "layout",
                                      s->grid.d == 2 ? "d[i0][i1]: row i0 = first coordinate"
                                                     : "d[i]",
                                      err);
    if (rc == 0)
        rc = lowdim_declare_grid(decl, &s->grid, err);
    return rc;
}

static int dl_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    dl_state *s = state;
    agon_tensor x = {s->xs, agon_shape_batched(s->points, &s->sample_shape)};
    const int32_t *labels = agon_metric_conditional(ctx) ? s->labels : NULL;
    int rc = agon_metric_discriminate_labeled(ctx, &x, labels, s->values, err);
    if (rc != 0)
        return rc;
    for (int64_t i = 0; i < s->points; i++)
        s->values[i] = (float)agon_sigmoid((double)s->values[i]);
    return agon_metric_emit_tensor(ctx, "d", s->values, err);
}

static const char *const dl_outputs[] = {NULL};

static const agon_metric_vtable dl_vtable = {
    sizeof(agon_metric_vtable),
    dl_outputs,
    dl_create,
    dl_destroy,
    dl_evaluate,
    dl_declare,
    NULL,
};

static const agon_param_spec dl_params[] = {
    {"grid", AGON_PARAM_INT, "64", 2, LOWDIM_MAX_GRID_1D, NULL,
     "grid points per axis (2-D data: at most 1024)"},
    {"margin", AGON_PARAM_FLOAT, "0.1", 0.0, 10.0, NULL,
     "widen the data's bounding box by this fraction of its width on each side"},
    {"label", AGON_PARAM_INT, "0", 0, 2147483647.0, NULL,
     "conditional runs: the class D is asked about"},
    AGON_PARAM_END,
};

AGON_PLUGIN("d_landscape", "1.0.0", "The discriminator's output on a grid over 1-D or 2-D data",
            AGON_METRIC("d_landscape", "D(x) on a grid over the data's bounding box, as a tensor",
                        dl_params, &dl_vtable));
