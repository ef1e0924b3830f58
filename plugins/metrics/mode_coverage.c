/* mode_coverage — how many modes of a mixture the generator reaches, and how
 * close its samples land (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et
 * al. 2018).
 *
 * Needs a dataset that knows its modes (gaussian_mixture): centres c_k,
 * k = 1..K, and the per-coordinate std s of a mode.
 *
 * Each evaluation draws n_samples generator samples x_i and assigns each to
 * its nearest centre k(i) = argmin_k ||x_i - c_k|| (Euclidean; ties go to
 * the lower index).  Definitions:
 *   high quality  ||x_i - c_k(i)|| <= quality_stds * s.  With the default
 *                 3 std this admits 98.9% of the samples of a true 2-D mode
 *                 (the distance/s of a 2-D isotropic normal is Rayleigh:
 *                 P = 1 - exp(-9/2)).
 *   captured      mode k is the nearest centre of at least min_count
 *                 high-quality samples.
 * Outputs:
 *   modes         number of captured modes (0..K)
 *   high_quality  percentage (0..100) of all samples that are high quality
 *   kl            KL(p || u) in nats, where p is the histogram of the
 *                 high-quality samples over the K modes and u the uniform
 *                 distribution: sum_k p_k log(K p_k), with 0 log 0 = 0.
 *                 0 when the good samples are spread evenly, log K when
 *                 they all sit in one mode.  With no high-quality sample
 *                 there is no histogram; we report log K, the worst value
 *                 the KL can take (all mass on one mode), so that a
 *                 generator that misses every mode never scores better
 *                 than one that finds a single mode, and curves stay finite.
 * Tensor output:
 *   histogram     [K] the high-quality samples per mode (counts, as
 *                 floats), summing to high_quality * n_samples / 100.  Its
 *                 series over the run shows mode hopping: G's mass moving
 *                 from mode to mode while `modes` stays the same.
 *                 Emitted when the host declared it (every agon run does;
 *                 a caller that drives the vtable without declare gets
 *                 the scalar outputs only).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agon/plugin.h"

#define MC_MAX_SAMPLES 10000000

typedef struct coverage_result {
    int64_t *counts;        /* [n_modes], caller storage: high-quality samples per mode */
    int64_t modes;          /* captured modes */
    double high_quality;    /* percent of all samples */
    double kl;              /* nats */
} coverage_result;

static void count_modes(const float *samples, int64_t n, int64_t dim, const float *centres,
                        int64_t n_modes, double mode_std, double quality_stds,
                        int64_t min_count, coverage_result *out)
{
    double radius = quality_stds * mode_std;
    double radius_sq = radius * radius;
    int64_t good = 0;

    memset(out->counts, 0, (size_t)n_modes * sizeof *out->counts);
    for (int64_t i = 0; i < n; i++) {
        const float *x = samples + i * dim;
        int64_t best = 0;
        double best_sq = INFINITY;
        for (int64_t k = 0; k < n_modes; k++) {
            const float *c = centres + k * dim;
            double sq = 0.0;
            for (int64_t j = 0; j < dim; j++) {
                double d = (double)x[j] - (double)c[j];
                sq += d * d;
            }
            if (sq < best_sq) {
                best_sq = sq;
                best = k;
            }
        }
        /* A NaN sample compares false everywhere and is never high quality. */
        if (best_sq <= radius_sq) {
            out->counts[best]++;
            good++;
        }
    }

    out->modes = 0;
    double kl = 0.0;
    for (int64_t k = 0; k < n_modes; k++) {
        if (out->counts[k] >= min_count)
            out->modes++;
        if (out->counts[k] > 0) {
            double p = (double)out->counts[k] / (double)good;
            kl += p * log((double)n_modes * p);
        }
    }
    out->high_quality = n > 0 ? 100.0 * (double)good / (double)n : 0.0;
    out->kl = good > 0 ? kl : log((double)n_modes);
}

typedef struct mc_state {
    int64_t n_samples, min_count, dim, n_modes;
    double quality_stds, mode_std;
    agon_shape sample_shape;
    float *samples;     /* [n_samples, dim] */
    float *centres;     /* [n_modes, dim], a copy of the dataset's */
    int64_t *counts;    /* [n_modes] */
    float *histogram;   /* [n_modes], counts as floats for the log */
    bool histogram_declared;
} mc_state;

static void mc_destroy(void *state)
{
    mc_state *s = state;
    if (!s)
        return;
    free(s->samples);
    free(s->centres);
    free(s->counts);
    free(s->histogram);
    free(s);
}

static int mc_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                     agon_error *err)
{
    int64_t n_samples, min_count;
    double quality_stds;
    int rc;

    *state = NULL;
    if ((rc = agon_cfg_opt_int(cfg, "n_samples", 2500, &n_samples, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "min_count", 1, &min_count, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "quality_stds", 3.0, &quality_stds, err)) != 0)
        return rc;
    if (n_samples < 1 || n_samples > MC_MAX_SAMPLES) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "n_samples"),
                               "must be 1 to %d, got %lld", MC_MAX_SAMPLES,
                               (long long)n_samples);
    }
    if (min_count < 1) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "min_count"),
                               "must be >= 1, got %lld", (long long)min_count);
    }
    if (!(quality_stds > 0.0) || !isfinite(quality_stds)) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "quality_stds"),
                               "must be a positive number, got %g", quality_stds);
    }
    if (!data || data->n_modes <= 0 || !data->mode_centres || !(data->mode_std > 0.0)) {
        return agon_node_error(err, AGON_ECONFIG, cfg,
                               "mode_coverage needs a dataset with known modes "
                               "(gaussian_mixture); remove the metric or change the dataset");
    }

    mc_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "mode_coverage: out of memory");
    s->n_samples = n_samples;
    s->min_count = min_count;
    s->quality_stds = quality_stds;
    s->mode_std = data->mode_std;
    s->n_modes = data->n_modes;
    s->sample_shape = data->sample_shape;
    s->dim = agon_shape_numel(&data->sample_shape);
    s->samples = malloc((size_t)(n_samples * s->dim) * sizeof *s->samples);
    s->centres = malloc((size_t)(s->n_modes * s->dim) * sizeof *s->centres);
    s->counts = malloc((size_t)s->n_modes * sizeof *s->counts);
    s->histogram = malloc((size_t)s->n_modes * sizeof *s->histogram);
    if (!s->samples || !s->centres || !s->counts || !s->histogram) {
        mc_destroy(s);
        return agon_error_set(err, AGON_ENOMEM,
                              "mode_coverage: out of memory for %lld samples; lower n_samples",
                              (long long)n_samples);
    }
    memcpy(s->centres, data->mode_centres, (size_t)(s->n_modes * s->dim) * sizeof *s->centres);
    *state = s;
    return 0;
}

static int mc_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    mc_state *s = state;
    agon_tensor batch;
    batch.data = s->samples;
    batch.shape = agon_shape_batched(s->n_samples, &s->sample_shape);
    int rc = agon_metric_fake(ctx, &batch, err);
    if (rc != 0)
        return rc;

    coverage_result res;
    res.counts = s->counts;
    count_modes(s->samples, s->n_samples, s->dim, s->centres, s->n_modes, s->mode_std,
                s->quality_stds, s->min_count, &res);
    if ((rc = agon_metric_emit(ctx, "modes", (double)res.modes, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "high_quality", res.high_quality, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "kl", res.kl, err)) != 0)
        return rc;
    if (s->histogram_declared) {
        for (int64_t k = 0; k < s->n_modes; k++)
            s->histogram[k] = (float)s->counts[k];
        return agon_metric_emit_tensor(ctx, "histogram", s->histogram, err);
    }
    return 0;
}

static int mc_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    mc_state *s = state;
    agon_shape shape = agon_shape_make(1, &s->n_modes);
    int rc = agon_metric_declare_tensor(decl, "histogram", &shape, err);
    if (rc == 0)
        s->histogram_declared = true;
    return rc;
}

static const char *const mc_outputs[] = {"modes", "high_quality", "kl", NULL};

static const agon_metric_vtable mc_vtable = {
    sizeof(agon_metric_vtable),
    mc_outputs,
    mc_create,
    mc_destroy,
    mc_evaluate,
    mc_declare,
    NULL,
};

static const agon_param_spec mc_params[] = {
    {"n_samples", AGON_PARAM_INT, "2500", 1, MC_MAX_SAMPLES, NULL,
     "generator samples drawn per evaluation"},
    {"min_count", AGON_PARAM_INT, "1", 1, MC_MAX_SAMPLES, NULL,
     "high-quality samples a mode needs to count as captured"},
    {"quality_stds", AGON_PARAM_FLOAT, "3.0", AGON_NO_RANGE, NULL,
     "a sample is high quality within this many mode stds of its nearest centre (> 0)"},
    AGON_PARAM_END,
};

AGON_PLUGIN("mode_coverage", "1.1.0", "Modes captured and sample quality on mixtures",
            AGON_METRIC("mode_coverage",
                        "Captured modes, % high-quality samples, KL to uniform over modes",
                        mc_params, &mc_vtable));
