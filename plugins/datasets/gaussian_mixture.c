/* gaussian_mixture — an infinite stream from a mixture of isotropic normals
 * with known modes: the toy data on which mode collapse is measured
 * (ring of 8: Metz et al. 2016; grid of 25: Srivastava et al. 2017).
 *
 *   p(x) = sum_k w_k prod_j N(x_j; c_kj, s_k^2)
 *
 * Layouts:
 *   ring      `modes` centres at radius `radius`, angles 2*pi*k/modes   (2-D)
 *   grid      rows x cols centres `spacing` apart, centred on the origin;
 *             mode r*cols + c sits at ((c - (cols-1)/2) * spacing,
 *                                      (r - (rows-1)/2) * spacing)     (2-D)
 *   line      centres `means`, per-mode stds `stds` (or `std` for all) (1-D)
 *   explicit  centres `centres` (every row the same length)
 * Weights: `weights` (one non-negative value per mode, normalised) or
 * uniform.  Every mode has std `std` except line layouts with `stds`.
 *
 * What it tells metrics: the mode centres; mode_std = the common std, or for
 * a line with per-mode stds the largest of them (a mode-coverage threshold
 * built on it then admits samples of every mode); the bounding box
 * [min centre - 4 max std, max centre + 4 max std] per coordinate; and the
 * exact density above.
 *
 * Sampling uses only the caller's rng: per sample one uniform picks the mode
 * against the cumulative weights, then one normal per coordinate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/plugin.h"

#define GM_MAX_MODES 65536
#define GM_MAX_DIM 4096

static const double gm_pi = 3.14159265358979323846;

typedef struct gm_state {
    int64_t dim;
    int64_t n_modes;
    float *centres;     /* [n_modes, dim] */
    double *weight;     /* [n_modes], sums to 1 */
    double *cum;        /* [n_modes], cumulative weight; cum[n_modes-1] = 1 */
    double *std;        /* [n_modes] */
    float *lo, *hi;     /* [dim] */
} gm_state;

static void gm_destroy(void *state)
{
    gm_state *s = state;
    if (!s)
        return;
    free(s->centres);
    free(s->weight);
    free(s->cum);
    free(s->std);
    free(s->lo);
    free(s->hi);
    free(s);
}

/* A node the user wrote, or `fallback` when the key is absent or was filled
 * in from the schema default (whose position, <default>:0:0, would not help
 * anyone find the problem). */
static const agon_node *user_node(const agon_node *cfg, const char *key,
                                  const agon_node *fallback)
{
    const agon_node *node = agon_node_get(cfg, key);
    const char *file = node ? agon_node_file(node) : NULL;
    if (!file || strcmp(file, "<default>") == 0)
        return fallback ? fallback : cfg;
    return node;
}

static const char *entries(size_t n)
{
    return n == 1 ? "entry" : "entries";
}

static const char *coordinates(size_t n)
{
    return n == 1 ? "coordinate" : "coordinates";
}

/* Reads a float list of any length into a malloc'ed array (NULL when the
 * list is empty or absent). */
static int read_float_list(const agon_node *cfg, const char *key, double **out, size_t *n,
                           agon_error *err)
{
    const agon_node *node = agon_node_get(cfg, key);
    size_t cap = node ? agon_node_len(node) : 0;
    double *buf = malloc((cap ? cap : 1) * sizeof *buf);
    if (!buf)
        return agon_error_set(err, AGON_ENOMEM, "gaussian_mixture: out of memory");
    int rc = agon_cfg_opt_float_list(cfg, key, buf, cap, n, err);
    if (rc != 0 || *n == 0) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

static int gm_alloc(gm_state *s, int64_t n_modes, int64_t dim, agon_error *err)
{
    s->n_modes = n_modes;
    s->dim = dim;
    s->centres = calloc((size_t)(n_modes * dim), sizeof *s->centres);
    s->weight = calloc((size_t)n_modes, sizeof *s->weight);
    s->cum = calloc((size_t)n_modes, sizeof *s->cum);
    s->std = calloc((size_t)n_modes, sizeof *s->std);
    s->lo = calloc((size_t)dim, sizeof *s->lo);
    s->hi = calloc((size_t)dim, sizeof *s->hi);
    if (!s->centres || !s->weight || !s->cum || !s->std || !s->lo || !s->hi)
        return agon_error_set(err, AGON_ENOMEM, "gaussian_mixture: out of memory");
    return 0;
}

static int layout_ring(const agon_node *cfg, const agon_node *layout_node, gm_state *s,
                       agon_error *err)
{
    int64_t modes;
    double radius;
    int rc;
    if ((rc = agon_cfg_opt_int(cfg, "modes", 8, &modes, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "radius", 2.0, &radius, err)) != 0)
        return rc;
    if (modes < 1 || modes > GM_MAX_MODES) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "modes", layout_node),
                               "a ring needs 1 to %d modes, got %lld", GM_MAX_MODES,
                               (long long)modes);
    }
    if (!(radius > 0.0) || !isfinite(radius)) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "radius", layout_node),
                               "must be a positive number, got %g", radius);
    }
    if ((rc = gm_alloc(s, modes, 2, err)) != 0)
        return rc;
    for (int64_t k = 0; k < modes; k++) {
        double angle = 2.0 * gm_pi * (double)k / (double)modes;
        s->centres[2 * k] = (float)(radius * cos(angle));
        s->centres[2 * k + 1] = (float)(radius * sin(angle));
    }
    return 0;
}

static int layout_grid(const agon_node *cfg, const agon_node *layout_node, gm_state *s,
                       agon_error *err)
{
    int64_t rows, cols;
    double spacing;
    int rc;
    if ((rc = agon_cfg_opt_int(cfg, "rows", 5, &rows, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "cols", 5, &cols, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "spacing", 2.0, &spacing, err)) != 0)
        return rc;
    if (rows < 1 || rows > 256) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "rows", layout_node),
                               "must be 1 to 256, got %lld", (long long)rows);
    }
    if (cols < 1 || cols > 256) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "cols", layout_node),
                               "must be 1 to 256, got %lld", (long long)cols);
    }
    if (!(spacing > 0.0) || !isfinite(spacing)) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "spacing", layout_node),
                               "must be a positive number, got %g", spacing);
    }
    if ((rc = gm_alloc(s, rows * cols, 2, err)) != 0)
        return rc;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            int64_t k = r * cols + c;
            s->centres[2 * k] = (float)(((double)c - (double)(cols - 1) / 2.0) * spacing);
            s->centres[2 * k + 1] = (float)(((double)r - (double)(rows - 1) / 2.0) * spacing);
        }
    }
    return 0;
}

static int layout_line(const agon_node *cfg, const agon_node *layout_node, double std,
                       gm_state *s, agon_error *err)
{
    double *means = NULL, *stds = NULL;
    size_t n_means = 0, n_stds = 0;
    int rc = read_float_list(cfg, "means", &means, &n_means, err);
    if (rc == 0 && !agon_node_get(cfg, "means")) {
        /* Driven without the host's schema defaults: use the documented default. */
        free(means);
        means = malloc(2 * sizeof *means);
        if (!means)
            return agon_error_set(err, AGON_ENOMEM, "gaussian_mixture: out of memory");
        means[0] = -2.0;
        means[1] = 2.0;
        n_means = 2;
    }
    if (rc == 0 && n_means == 0) {
        rc = agon_node_error(err, AGON_ECONFIG, user_node(cfg, "means", layout_node),
                             "layout 'line' needs at least one mode; give means, "
                             "e.g. means: [-2, 2]");
    }
    if (rc == 0 && n_means > GM_MAX_MODES) {
        rc = agon_node_error(err, AGON_ECONFIG, user_node(cfg, "means", layout_node),
                             "at most %d modes are supported, got %zu", GM_MAX_MODES, n_means);
    }
    if (rc == 0)
        rc = read_float_list(cfg, "stds", &stds, &n_stds, err);
    if (rc == 0 && n_stds != 0 && n_stds != n_means) {
        rc = agon_node_error(err, AGON_ECONFIG, user_node(cfg, "stds", layout_node),
                             "has %zu %s but means has %zu; give one std per mode, "
                             "or [] to use std for every mode",
                             n_stds, entries(n_stds), n_means);
    }
    for (size_t k = 0; rc == 0 && k < n_means; k++) {
        if (!isfinite(means[k])) {
            rc = agon_node_error(err, AGON_ECONFIG,
                                 agon_node_at(agon_node_get(cfg, "means"), k),
                                 "a mode centre must be finite, got %g", means[k]);
        }
    }
    for (size_t k = 0; rc == 0 && k < n_stds; k++) {
        if (!(stds[k] > 0.0) || !isfinite(stds[k])) {
            rc = agon_node_error(err, AGON_ECONFIG,
                                 agon_node_at(agon_node_get(cfg, "stds"), k),
                                 "a std must be a positive number, got %g", stds[k]);
        }
    }
    if (rc == 0)
        rc = gm_alloc(s, (int64_t)n_means, 1, err);
    for (size_t k = 0; rc == 0 && k < n_means; k++) {
        s->centres[k] = (float)means[k];
        s->std[k] = n_stds ? stds[k] : std;
    }
    free(means);
    free(stds);
    return rc;
}

static int layout_explicit(const agon_node *cfg, const agon_node *layout_node, gm_state *s,
                           agon_error *err)
{
    const agon_node *rows = agon_node_get(cfg, "centres");
    if (rows && agon_node_kind_of(rows) != AGON_NODE_SEQ &&
        agon_node_kind_of(rows) != AGON_NODE_NULL) {
        return agon_node_error(err, AGON_ECONFIG, rows,
                               "expected a list of centres, e.g. [[0, 0], [2, 2]]");
    }
    size_t n_modes = rows ? agon_node_len(rows) : 0;
    if (n_modes == 0) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "centres", layout_node),
                               "layout 'explicit' needs at least one centre; give centres, "
                               "e.g. centres: [[0, 0], [2, 2]]");
    }
    if (n_modes > GM_MAX_MODES) {
        return agon_node_error(err, AGON_ECONFIG, rows,
                               "at most %d modes are supported, got %zu", GM_MAX_MODES,
                               n_modes);
    }
    size_t dim = 0;
    for (size_t k = 0; k < n_modes; k++) {
        const agon_node *row = agon_node_at(rows, k);
        if (agon_node_kind_of(row) != AGON_NODE_SEQ) {
            return agon_node_error(err, AGON_ECONFIG, row,
                                   "expected a centre as a list of numbers, e.g. [0, 0]");
        }
        size_t len = agon_node_len(row);
        if (len == 0 || len > GM_MAX_DIM) {
            return agon_node_error(err, AGON_ECONFIG, row,
                                   "a centre needs 1 to %d coordinates, got %zu", GM_MAX_DIM,
                                   len);
        }
        if (k == 0) {
            dim = len;
        } else if (len != dim) {
            return agon_node_error(err, AGON_ECONFIG, row,
                                   "has %zu %s but centres[0] has %zu; "
                                   "give every centre the same dimension",
                                   len, coordinates(len), dim);
        }
    }
    int rc = gm_alloc(s, (int64_t)n_modes, (int64_t)dim, err);
    for (size_t k = 0; rc == 0 && k < n_modes; k++) {
        const agon_node *row = agon_node_at(rows, k);
        for (size_t j = 0; rc == 0 && j < dim; j++) {
            const agon_node *item = agon_node_at(row, j);
            double v;
            rc = agon_node_to_float(item, &v, err);
            if (rc == 0 && !isfinite(v)) {
                rc = agon_node_error(err, AGON_ECONFIG, item,
                                     "a mode centre must be finite, got %g", v);
            }
            if (rc == 0)
                s->centres[k * dim + j] = (float)v;
        }
    }
    return rc;
}

static int set_weights(const agon_node *cfg, gm_state *s, agon_error *err)
{
    double *w = NULL;
    size_t n = 0;
    int rc = read_float_list(cfg, "weights", &w, &n, err);
    if (rc != 0)
        return rc;
    if (n == 0) {
        for (int64_t k = 0; k < s->n_modes; k++)
            s->weight[k] = 1.0 / (double)s->n_modes;
    } else {
        const agon_node *node = agon_node_get(cfg, "weights");
        double total = 0.0;
        if ((int64_t)n != s->n_modes) {
            rc = agon_node_error(err, AGON_ECONFIG, node,
                                 "has %zu %s but the layout has %lld mode%s; give one "
                                 "weight per mode, or [] for uniform weights",
                                 n, entries(n), (long long)s->n_modes,
                                 s->n_modes == 1 ? "" : "s");
        }
        for (size_t k = 0; rc == 0 && k < n; k++) {
            if (!(w[k] >= 0.0) || !isfinite(w[k])) {
                rc = agon_node_error(err, AGON_ECONFIG, agon_node_at(node, k),
                                     "a weight must be a finite number >= 0, got %g", w[k]);
            }
            total += w[k];
        }
        if (rc == 0 && !(total > 0.0)) {
            rc = agon_node_error(err, AGON_ECONFIG, node,
                                 "the weights sum to 0; give at least one positive weight");
        }
        for (size_t k = 0; rc == 0 && k < n; k++)
            s->weight[k] = w[k] / total;
    }
    free(w);
    if (rc != 0)
        return rc;
    double acc = 0.0;
    for (int64_t k = 0; k < s->n_modes; k++) {
        acc += s->weight[k];
        s->cum[k] = acc;
    }
    /* Rounding must not leave a gap at the top that a uniform draw could
     * fall into; zero-weight trailing modes keep a cum equal to their
     * predecessor's and so are never drawn. */
    for (int64_t k = s->n_modes - 1; k >= 0 && s->cum[k] >= acc; k--)
        s->cum[k] = 1.0;
    return 0;
}

static double gm_density(const void *state, const float *x)
{
    const gm_state *s = state;
    const double log_sqrt_2pi = 0.5 * log(2.0 * gm_pi);
    double p = 0.0;
    for (int64_t k = 0; k < s->n_modes; k++) {
        if (s->weight[k] == 0.0)
            continue;
        const float *c = s->centres + k * s->dim;
        double sq = 0.0;
        for (int64_t j = 0; j < s->dim; j++) {
            double z = ((double)x[j] - (double)c[j]) / s->std[k];
            sq += z * z;
        }
        double log_pdf = -0.5 * sq - (double)s->dim * (log(s->std[k]) + log_sqrt_2pi);
        p += s->weight[k] * exp(log_pdf);
    }
    return p;
}

static int gm_create(const agon_node *cfg, void **state, agon_dataset_info *info,
                     agon_error *err)
{
    static const char *const layouts[] = {"ring", "grid", "line", "explicit", NULL};
    const char *layout;
    double std;
    int rc;

    *state = NULL;
    if ((rc = agon_cfg_opt_string(cfg, "layout", "ring", &layout, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "std", 0.02, &std, err)) != 0)
        return rc;
    const agon_node *layout_node = user_node(cfg, "layout", cfg);
    size_t which = 0;
    while (layouts[which] && strcmp(layouts[which], layout) != 0)
        which++;
    if (!layouts[which]) {
        return agon_node_error(err, AGON_ECONFIG, layout_node,
                               "unknown layout '%s'; choose one of ring, grid, line, explicit",
                               layout);
    }
    if (!(std > 0.0) || !isfinite(std)) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "std", cfg),
                               "must be a positive number, got %g", std);
    }

    gm_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "gaussian_mixture: out of memory");
    switch (which) {
    case 0: rc = layout_ring(cfg, layout_node, s, err); break;
    case 1: rc = layout_grid(cfg, layout_node, s, err); break;
    case 2: rc = layout_line(cfg, layout_node, std, s, err); break;
    default: rc = layout_explicit(cfg, layout_node, s, err); break;
    }
    if (rc == 0 && which != 2) {
        for (int64_t k = 0; k < s->n_modes; k++)
            s->std[k] = std;
    }
    if (rc == 0)
        rc = set_weights(cfg, s, err);
    if (rc != 0) {
        gm_destroy(s);
        return rc;
    }

    double max_std = 0.0;
    for (int64_t k = 0; k < s->n_modes; k++)
        max_std = fmax(max_std, s->std[k]);
    for (int64_t j = 0; j < s->dim; j++) {
        float lo = s->centres[j], hi = s->centres[j];
        for (int64_t k = 1; k < s->n_modes; k++) {
            lo = fminf(lo, s->centres[k * s->dim + j]);
            hi = fmaxf(hi, s->centres[k * s->dim + j]);
        }
        s->lo[j] = (float)(lo - 4.0 * max_std);
        s->hi[j] = (float)(hi + 4.0 * max_std);
    }

    memset(info, 0, sizeof *info);
    info->sample_shape = agon_shape_make(1, &s->dim);
    info->size = -1;
    info->n_classes = 0;
    info->n_modes = s->n_modes;
    info->mode_centres = s->centres;
    info->mode_std = max_std;
    info->bounds_lo = s->lo;
    info->bounds_hi = s->hi;
    info->density = gm_density;
    *state = s;
    return 0;
}

static int gm_next_batch(void *state, agon_rng *rng, agon_tensor *out, int32_t *labels,
                         agon_error *err)
{
    const gm_state *s = state;
    int64_t numel = agon_tensor_numel(out);
    if (out->shape.ndim < 1 || numel != out->shape.dim[0] * s->dim) {
        char buf[96];
        return agon_error_set(err, AGON_EINTERNAL,
                              "gaussian_mixture: batch tensor has shape %s, expected [n, %lld]",
                              agon_shape_format(&out->shape, buf, sizeof buf),
                              (long long)s->dim);
    }
    int64_t n = out->shape.dim[0];
    for (int64_t i = 0; i < n; i++) {
        double u = agon_rng_uniform(rng);
        /* First mode whose cumulative weight exceeds u. */
        int64_t lo = 0, hi = s->n_modes - 1;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (u < s->cum[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        const float *c = s->centres + lo * s->dim;
        float *x = out->data + i * s->dim;
        for (int64_t j = 0; j < s->dim; j++)
            x[j] = (float)((double)c[j] + s->std[lo] * agon_rng_normal(rng));
    }
    return 0;
}

static const agon_dataset_vtable gm_vtable = {
    sizeof(agon_dataset_vtable),
    gm_create,
    gm_destroy,
    gm_next_batch,
};

static const agon_param_spec gm_params[] = {
    {"layout", AGON_PARAM_CHOICE, "ring", AGON_NO_RANGE, "ring|grid|line|explicit",
     "where the modes sit"},
    {"modes", AGON_PARAM_INT, "8", 1, GM_MAX_MODES, NULL, "ring: number of modes"},
    {"radius", AGON_PARAM_FLOAT, "2.0", AGON_NO_RANGE, NULL,
     "ring: radius of the circle (> 0)"},
    {"rows", AGON_PARAM_INT, "5", 1, 256, NULL, "grid: number of rows"},
    {"cols", AGON_PARAM_INT, "5", 1, 256, NULL, "grid: number of columns"},
    {"spacing", AGON_PARAM_FLOAT, "2.0", AGON_NO_RANGE, NULL,
     "grid: distance between neighbouring centres (> 0; grid centred on the origin)"},
    {"means", AGON_PARAM_FLOAT_LIST, "[-2, 2]", AGON_NO_RANGE, NULL,
     "line: 1-D mode centres"},
    {"stds", AGON_PARAM_FLOAT_LIST, "[]", AGON_NO_RANGE, NULL,
     "line: per-mode std (> 0), one per mean ([] uses std for every mode)"},
    {"centres", AGON_PARAM_FLOAT_ROWS, "[]", AGON_NO_RANGE, NULL,
     "explicit: mode centres, one list per mode, all the same length"},
    {"weights", AGON_PARAM_FLOAT_LIST, "[]", AGON_NO_RANGE, NULL,
     "mode weights, one >= 0 per mode, normalised ([] for uniform)"},
    {"std", AGON_PARAM_FLOAT, "0.02", AGON_NO_RANGE, NULL,
     "per-coordinate std of each mode (> 0)"},
    AGON_PARAM_END,
};

AGON_PLUGIN("gaussian_mixture", "1.0.0", "Mixtures of isotropic Gaussians with known modes",
            AGON_DATASET("gaussian_mixture",
                         "Gaussian mixture on a ring, grid, line or explicit centres",
                         gm_params, &gm_vtable));
