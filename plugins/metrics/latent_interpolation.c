/* latent_interpolation — the generator decoded along a path between two
 * fixed latent points, at every evaluation.
 *
 * A generator that has learned a smooth map turns a straight walk in z
 * into a gradual change of the sample; jumps show where G folds the latent
 * space onto separate modes, and a generator that memorised its data shows
 * abrupt switches between training samples (Radford et al. 2016, section
 * 6.1).  Because the two end points stay fixed for the whole run, the rows
 * of the logged series can be compared across steps.
 *
 * Before the first step two latent vectors z0, z1 ~ N(0, I) are drawn
 * from the metric's own stream; they never change afterwards.  Every
 * evaluation decodes `points` latents z(t_k), t_k = k / (points - 1), so
 * that z(0) = z0 and z(1) = z1 exactly:
 *   linear  z(t) = (1 - t) z0 + t z1
 *   slerp   z(t) = sin((1 - t) W) / sin W z0 + sin(t W) / sin W z1, with W
 *           the angle between z0 and z1 (Shoemake 1985; for GANs White
 *           2016, "Sampling generative networks").
 * slerp is the default because the end points are normal: in d dimensions
 * a normal vector's norm concentrates at sqrt(d), and the midpoint of the
 * straight line between two of them has norm about sqrt(d/2), a latent G
 * never sees in training; slerp keeps the norm near sqrt(d) all the way.
 * (The metric draws normal end points whatever train.latent is; for a
 * uniform latent, linear is the natural path.)  When z0 and z1 are
 * (anti)parallel, sin W is 0 and slerp falls back to linear.
 *
 * Tensors: "samples" [points, sample shape...] (G's outputs in the run's
 * sampling mode, log.sample_mode) and "endpoints" [2, latent_dim] (z0 and
 * z1; the same at every evaluation, logged with each so that a row stands
 * on its own).  In a conditional run every point is decoded for class
 * `label`.  No scalar outputs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/plugin.h"
#include "lowdim.h"

#define LI_MAX_POINTS 10000

typedef struct li_state {
    int64_t points;
    bool slerp;
    int32_t label;
    agon_shape sample_shape;
    int64_t latent_dim;     /* set by declare */
    bool drawn;             /* z0, z1 drawn */
    float *endpoints;       /* [2, latent_dim] */
    float *z;               /* [points, latent_dim] */
    float *samples;         /* [points, sample numel] */
    int32_t *labels;        /* [points], all `label` */
} li_state;

static void li_destroy(void *state)
{
    li_state *s = state;
    if (!s)
        return;
    free(s->endpoints);
    free(s->z);
    free(s->samples);
    free(s->labels);
    free(s);
}

static int li_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                     agon_error *err)
{
    int64_t points;
    const char *path;
    int32_t label = 0;
    int rc;

    *state = NULL;
    if ((rc = agon_cfg_opt_int(cfg, "points", 10, &points, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "path", "slerp", &path, err)) != 0 ||
        (rc = lowdim_label(cfg, data, &label, err)) != 0)
        return rc;
    if (points < 2 || points > LI_MAX_POINTS) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "points"),
                               "must be 2 to %d, got %lld", LI_MAX_POINTS, (long long)points);
    }
    if (strcmp(path, "linear") != 0 && strcmp(path, "slerp") != 0) {
        return agon_node_error(err, AGON_ECONFIG, lowdim_node(cfg, "path"),
                               "unknown path '%s'; choose linear or slerp", path);
    }
    if (!data) {
        return agon_node_error(err, AGON_ECONFIG, cfg,
                               "latent_interpolation needs the dataset's sample shape");
    }

    li_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "latent_interpolation: out of memory");
    s->points = points;
    s->slerp = strcmp(path, "slerp") == 0;
    s->label = label;
    s->sample_shape = data->sample_shape;
    s->samples = malloc((size_t)(points * agon_shape_numel(&data->sample_shape)) *
                        sizeof *s->samples);
    s->labels = malloc((size_t)points * sizeof *s->labels);
    if (!s->samples || !s->labels) {
        li_destroy(s);
        return agon_error_set(err, AGON_ENOMEM,
                              "latent_interpolation: out of memory for %lld samples; "
                              "lower points",
                              (long long)points);
    }
    for (int64_t i = 0; i < points; i++)
        s->labels[i] = label;
    *state = s;
    return 0;
}

/* The latent width is known only here, so the latent buffers are made
 * here. */
static int li_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    li_state *s = state;
    int64_t k = agon_metric_decl_latent_dim(decl);
    if (k < 1)
        return agon_error_set(err, AGON_EINTERNAL,
                              "latent_interpolation: the host reports latent_dim %lld",
                              (long long)k);
    s->latent_dim = k;
    free(s->endpoints);
    free(s->z);
    s->endpoints = malloc((size_t)(2 * k) * sizeof *s->endpoints);
    s->z = malloc((size_t)(s->points * k) * sizeof *s->z);
    if (!s->endpoints || !s->z)
        return agon_error_set(err, AGON_ENOMEM,
                              "latent_interpolation: out of memory for %lld latents of %lld; "
                              "lower points",
                              (long long)s->points, (long long)k);

    agon_shape samples = agon_shape_batched(s->points, &s->sample_shape);
    int64_t edims[2] = {2, k};
    agon_shape endpoints = agon_shape_make(2, edims);
    int rc;
    if ((rc = agon_metric_declare_tensor(decl, "samples", &samples, err)) != 0 ||
        (rc = agon_metric_declare_tensor(decl, "endpoints", &endpoints, err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "endpoint_distribution", "normal", err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "t", "k / (points - 1), k = 0 .. points - 1",
                                       err)) != 0)
        return rc;
    return 0;
}

/* z(t) for every point, from the fixed end points. */
static void fill_path(li_state *s)
{
    int64_t k = s->latent_dim;
    const float *z0 = s->endpoints, *z1 = s->endpoints + k;
    double dot = 0.0, n0 = 0.0, n1 = 0.0;
    for (int64_t j = 0; j < k; j++) {
        dot += (double)z0[j] * z1[j];
        n0 += (double)z0[j] * z0[j];
        n1 += (double)z1[j] * z1[j];
    }
    double c = n0 > 0.0 && n1 > 0.0 ? dot / sqrt(n0 * n1) : 1.0;
    double w = acos(fmax(-1.0, fmin(1.0, c)));
    double sw = sin(w);
    bool slerp = s->slerp && sw > 1e-6;
    for (int64_t i = 0; i < s->points; i++) {
        double t = (double)i / (double)(s->points - 1);
        double a, b;
        if (slerp) {
            a = sin((1.0 - t) * w) / sw;
            b = sin(t * w) / sw;
        } else {
            a = 1.0 - t;
            b = t;
        }
        /* At t = 0 and t = 1 the weights are exactly (1, 0) and (0, 1), so
         * the end points are decoded as they are. */
        if (i == 0) {
            a = 1.0;
            b = 0.0;
        } else if (i == s->points - 1) {
            a = 0.0;
            b = 1.0;
        }
        float *z = s->z + i * k;
        for (int64_t j = 0; j < k; j++)
            z[j] = (float)(a * z0[j] + b * z1[j]);
    }
}

static int li_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    li_state *s = state;
    if (!s->endpoints || !s->z)
        return agon_error_set(err, AGON_EINTERNAL,
                              "latent_interpolation: prepared before it was declared");
    agon_rng_fill_normal(agon_metric_rng(ctx), s->endpoints, (size_t)(2 * s->latent_dim), 0.0f,
                         1.0f);
    fill_path(s);
    s->drawn = true;
    return 0;
}

static int li_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    li_state *s = state;
    if (!s->endpoints || !s->z)
        return agon_error_set(err, AGON_EINTERNAL,
                              "latent_interpolation: evaluated before it was declared");
    if (!s->drawn)
        return agon_error_set(err, AGON_EINTERNAL,
                              "latent_interpolation: evaluated before prepare drew z0 and z1");
    int64_t zdims[2] = {s->points, s->latent_dim};
    agon_tensor z = {s->z, agon_shape_make(2, zdims)};
    agon_tensor out = {s->samples, agon_shape_batched(s->points, &s->sample_shape)};
    const int32_t *labels = agon_metric_conditional(ctx) ? s->labels : NULL;
    int rc = agon_metric_generate(ctx, &z, labels, &out, err);
    if (rc == 0)
        rc = agon_metric_emit_tensor(ctx, "samples", s->samples, err);
    if (rc == 0)
        rc = agon_metric_emit_tensor(ctx, "endpoints", s->endpoints, err);
    return rc;
}

static const char *const li_outputs[] = {NULL};

static const agon_metric_vtable li_vtable = {
    sizeof(agon_metric_vtable),
    li_outputs,
    li_create,
    li_destroy,
    li_evaluate,
    li_declare,
    li_prepare,
};

static const agon_param_spec li_params[] = {
    {"points", AGON_PARAM_INT, "10", 2, LI_MAX_POINTS, NULL,
     "samples decoded along the path, both end points included"},
    {"path", AGON_PARAM_CHOICE, "slerp", AGON_NO_RANGE, "linear|slerp",
     "linear: straight line in z; slerp: great circle (keeps a normal latent's norm)"},
    {"label", AGON_PARAM_INT, "0", 0, 2147483647.0, NULL,
     "conditional runs: the class every point is decoded for"},
    AGON_PARAM_END,
};

AGON_PLUGIN("latent_interpolation", "1.0.0",
            "Generator samples along a path between two fixed latent points",
            AGON_METRIC("latent_interpolation",
                        "G decoded on a linear or slerp path between two fixed z, as a tensor",
                        li_params, &li_vtable));
