/* sample_quality — how good and how varied generator samples are, measured
 * in a feature space: four metrics that share how they get their features.
 *
 *   frechet           Fréchet distance between Gaussians fitted to real and
 *                     fake features (FID when the features come from a
 *                     classifier; Heusel et al. 2017).
 *   precision_recall  k-nearest-neighbour precision and recall
 *                     (Kynkäänniemi et al. 2019), density and coverage
 *                     (Naeem et al. 2020).
 *   classifier_score  the Inception-Score formula on the domain classifier's
 *                     p(y|x) (Salimans et al. 2016).
 *   class_modes       classes (modes) the generator reaches according to the
 *                     classifier, and the KL of its class histogram from the
 *                     data's; with stacked images (one image per channel) the
 *                     Stacked-MNIST protocol of VEEGAN and PacGAN.
 *
 * Features.  `features: raw` uses a sample's coordinates, flattened: right
 * for 1-D and 2-D data, poor for images (pixel distances say little about
 * what an image shows), so `auto` refuses samples of more than 64 values
 * unless a classifier is given.  `features: classifier` uses the
 * penultimate layer of the domain classifier (agon/classifier.h) named by
 * `classifier`.  classifier_score and class_modes always use the
 * classifier's softmax.  The classifier's SHA-256 is recorded with every
 * value: numbers from different classifiers are not comparable.
 *
 * Sampling.  Real samples come from the metric's own stream; they are drawn
 * once, by prepare before the first step, and what is computed from them (the real Gaussian
 * fit, real features, score_real, the reference class histogram) is kept,
 * since the data do not change.  Fake samples are drawn fresh at every
 * evaluation.  Samples go through the classifier in chunks of SQ_CHUNK, so
 * only features (not images) are held for all samples.  Every buffer is
 * allocated in create; an evaluation allocates only inside agon/stats.h.
 * Fakes that are not finite (a generator gone bad) make that evaluation's
 * values NaN, not an error: the run's scalars tell the story.
 *
 * docs/metrics.md ("Sample-quality metrics") gives the definitions, the
 * defaults and why.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agon/classifier.h"
#include "agon/plugin.h"
#include "agon/stats.h"

#define SQ_MAX_SAMPLES 1000000
#define SQ_CHUNK 500
/* Above this many values per sample, raw features need `features: raw`. */
#define SQ_RAW_AUTO_MAX 64
/* Largest class space of class_modes (K^C for stacked data). */
#define SQ_MAX_MODES (1 << 20)
/* Count given to a class the reference histogram lacks, so KL stays finite. */
#define SQ_REFERENCE_FLOOR 0.5
#define SQ_TRAIN_HINT "agon classifier train experiments/classifiers/fmnist.yaml"

typedef enum sq_kind { SQ_FRECHET, SQ_PRDC, SQ_SCORE, SQ_MODES } sq_kind;

static const char *const sq_names[] = {"frechet", "precision_recall", "classifier_score",
                                       "class_modes"};

typedef struct sq_state {
    sq_kind kind;
    agon_classifier *cls;       /* NULL: raw features */
    agon_shape sample_shape;
    int64_t sample_numel;
    int64_t dim;                /* width of a feature row, or of a probability row */
    int64_t n_real, n_fake, chunk;
    char split[64];
    bool real_done;

    float *x;                   /* [chunk, sample...]: a chunk for the classifier */
    float *real_rows;           /* [n_real, dim] (frechet: shared with fake_rows) */
    float *fake_rows;           /* [n_fake, dim] */

    /* frechet */
    double *mu_r, *cov_r, *mu_f, *cov_f;

    /* precision_recall */
    int64_t k;

    /* classifier_score */
    int64_t splits;
    double score_real;

    /* class_modes */
    int64_t n_classes;          /* K, the classifier's classes */
    int64_t channels;           /* classified separately: 1, or C for stacked data */
    int64_t n_modes;            /* K^channels */
    int64_t min_count;
    float *channel;             /* [chunk, 1, H, W] (stacked data) */
    float *probs;               /* [chunk, K] */
    int32_t *classes;           /* [max(n_real, n_fake)] */
    int64_t *counts;            /* [n_modes] */
    double *reference;          /* [n_modes], the floored real distribution */
    float *hist;                /* [n_modes] fake counts, the tensor output */
    float *ref_counts;          /* [n_modes] real counts, the tensor output */
} sq_state;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The node the user wrote for `key`, or the metric's section when the key
 * came from the schema default (whose <default>:0:0 position helps no one). */
static const agon_node *user_node(const agon_node *cfg, const char *key)
{
    const agon_node *node = agon_node_get(cfg, key);
    const char *file = node ? agon_node_file(node) : NULL;
    if (!file || strcmp(file, "<default>") == 0)
        return cfg;
    return node;
}

static void sq_destroy(void *state)
{
    sq_state *s = state;
    if (!s)
        return;
    agon_classifier_destroy(s->cls);
    free(s->x);
    free(s->real_rows);
    if (s->fake_rows != s->real_rows)
        free(s->fake_rows);
    free(s->mu_r);
    free(s->cov_r);
    free(s->mu_f);
    free(s->cov_f);
    free(s->channel);
    free(s->probs);
    free(s->classes);
    free(s->counts);
    free(s->reference);
    free(s->hist);
    free(s->ref_counts);
    free(s);
}

static int sq_nomem(const sq_state *s, agon_error *err)
{
    return agon_error_set(err, AGON_ENOMEM,
                          "%s: out of memory for %lld real and %lld fake samples of %lld "
                          "features; lower n_real and n_fake",
                          sq_names[s->kind], (long long)s->n_real, (long long)s->n_fake,
                          (long long)s->dim);
}

/* Loads the classifier at `path` for batches of s->chunk. */
static int load_classifier(sq_state *s, const agon_node *cfg, const char *path, agon_error *err)
{
    agon_error lerr = {0};
    s->cls = agon_classifier_load(path, s->chunk, &lerr);
    if (!s->cls) {
        return agon_node_error(err, lerr.code ? lerr.code : AGON_EIO,
                               user_node(cfg, "classifier"), "%s", lerr.message);
    }
    return 0;
}

/* The classifier must take the dataset's samples as they are. */
static int check_same_shape(const sq_state *s, const agon_node *cfg, agon_error *err)
{
    const agon_shape *in = agon_classifier_input_shape(s->cls);
    if (agon_shape_equal(in, &s->sample_shape))
        return 0;
    char a[96], b[96];
    return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "classifier"),
                           "the classifier takes samples of shape %s and the dataset's samples "
                           "have shape %s; use a classifier trained on this dataset's images",
                           agon_shape_format(in, a, sizeof a),
                           agon_shape_format(&s->sample_shape, b, sizeof b));
}

/* class_modes also takes C-channel data whose every channel has the
 * classifier's [1, H, W] shape (stacked images): sets s->channels. */
static int check_modes_shape(sq_state *s, const agon_node *cfg, agon_error *err)
{
    const agon_shape *in = agon_classifier_input_shape(s->cls);
    const agon_shape *d = &s->sample_shape;
    s->channels = 1;
    if (agon_shape_equal(in, d))
        return 0;
    if (in->ndim == 3 && d->ndim == 3 && in->dim[0] == 1 && d->dim[0] > 1 &&
        in->dim[1] == d->dim[1] && in->dim[2] == d->dim[2]) {
        s->channels = d->dim[0];
        return 0;
    }
    char a[96], b[96];
    return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "classifier"),
                           "the classifier takes samples of shape %s and the dataset's samples "
                           "have shape %s; use a classifier trained on this dataset's images "
                           "(for stacked data, one whose images have the size of one channel)",
                           agon_shape_format(in, a, sizeof a),
                           agon_shape_format(d, b, sizeof b));
}

/* `features` and `classifier` of frechet and precision_recall. */
static int setup_features(sq_state *s, const agon_node *cfg, agon_error *err)
{
    const char *features, *path;
    int rc;
    if ((rc = agon_cfg_opt_string(cfg, "features", "auto", &features, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "classifier", "", &path, err)) != 0)
        return rc;
    bool raw;
    if (strcmp(features, "auto") == 0) {
        raw = path[0] == '\0';
    } else if (strcmp(features, "raw") == 0) {
        if (path[0] != '\0') {
            return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "features"),
                                   "features: raw does not use the classifier '%s'; remove "
                                   "classifier, or use features: classifier",
                                   path);
        }
        raw = true;
    } else if (strcmp(features, "classifier") == 0) {
        if (path[0] == '\0') {
            return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "features"),
                                   "features: classifier needs classifier: PATH, a file made "
                                   "by `" SQ_TRAIN_HINT "`; set it, or use features: raw");
        }
        raw = false;
    } else {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "features"),
                               "unknown features '%s'; choose auto, raw or classifier",
                               features);
    }

    if (raw) {
        if (strcmp(features, "auto") == 0 && s->sample_numel > SQ_RAW_AUTO_MAX) {
            char shape[96];
            return agon_node_error(
                err, AGON_ECONFIG, cfg,
                "%s would compare raw samples of shape %s (%lld values), and raw pixels are a "
                "poor feature space for images; set classifier: PATH (make one with `"
                SQ_TRAIN_HINT "`), or set features: raw to use the raw values anyway",
                sq_names[s->kind], agon_shape_format(&s->sample_shape, shape, sizeof shape),
                (long long)s->sample_numel);
        }
        s->dim = s->sample_numel;
        return 0;
    }
    if ((rc = load_classifier(s, cfg, path, err)) != 0 ||
        (rc = check_same_shape(s, cfg, err)) != 0)
        return rc;
    s->dim = agon_classifier_feature_dim(s->cls);
    return 0;
}

/* The classifier of classifier_score and class_modes, which cannot do
 * without one. */
static int setup_required_classifier(sq_state *s, const agon_node *cfg, agon_error *err)
{
    const char *path;
    int rc = agon_cfg_opt_string(cfg, "classifier", "", &path, err);
    if (rc != 0)
        return rc;
    if (path[0] == '\0') {
        return agon_node_error(err, AGON_ECONFIG, cfg,
                               "%s needs a classifier: set classifier: PATH to a file made by `"
                               SQ_TRAIN_HINT "`",
                               sq_names[s->kind]);
    }
    if ((rc = load_classifier(s, cfg, path, err)) != 0)
        return rc;
    s->n_classes = agon_classifier_n_classes(s->cls);
    s->dim = s->n_classes;
    return s->kind == SQ_MODES ? check_modes_shape(s, cfg, err) : check_same_shape(s, cfg, err);
}

/* Reads an int setting and checks lo <= v <= hi. */
static int opt_count(const agon_node *cfg, const char *key, int64_t def, int64_t lo, int64_t hi,
                     int64_t *out, agon_error *err)
{
    int rc = agon_cfg_opt_int(cfg, key, def, out, err);
    if (rc != 0)
        return rc;
    if (*out < lo || *out > hi) {
        return agon_node_error(err, AGON_ECONFIG, user_node(cfg, key),
                               "must be %lld to %lld, got %lld", (long long)lo, (long long)hi,
                               (long long)*out);
    }
    return 0;
}

static int read_settings(sq_state *s, const agon_node *cfg, agon_error *err)
{
    int rc = 0;
    switch (s->kind) {
    case SQ_FRECHET:
        if ((rc = opt_count(cfg, "n_real", 10000, 2, SQ_MAX_SAMPLES, &s->n_real, err)) != 0 ||
            (rc = opt_count(cfg, "n_fake", 10000, 2, SQ_MAX_SAMPLES, &s->n_fake, err)) != 0)
            return rc;
        break;
    case SQ_PRDC:
        if ((rc = opt_count(cfg, "n_real", 5000, 2, SQ_MAX_SAMPLES, &s->n_real, err)) != 0 ||
            (rc = opt_count(cfg, "n_fake", 5000, 2, SQ_MAX_SAMPLES, &s->n_fake, err)) != 0 ||
            (rc = opt_count(cfg, "k", 3, 1, SQ_MAX_SAMPLES, &s->k, err)) != 0)
            return rc;
        if (s->k >= s->n_real || s->k >= s->n_fake) {
            return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "k"),
                                   "k = %lld needs more than k real and fake samples, and "
                                   "n_real is %lld, n_fake %lld; lower k or raise the sample "
                                   "counts",
                                   (long long)s->k, (long long)s->n_real,
                                   (long long)s->n_fake);
        }
        break;
    case SQ_SCORE:
        if ((rc = opt_count(cfg, "n_fake", 10000, 1, SQ_MAX_SAMPLES, &s->n_fake, err)) != 0 ||
            (rc = opt_count(cfg, "splits", 10, 1, SQ_MAX_SAMPLES, &s->splits, err)) != 0)
            return rc;
        if (s->splits > s->n_fake) {
            return agon_node_error(err, AGON_ECONFIG, user_node(cfg, "splits"),
                                   "%lld splits of %lld samples leave a split empty; lower "
                                   "splits or raise n_fake",
                                   (long long)s->splits, (long long)s->n_fake);
        }
        s->n_real = s->n_fake;
        break;
    case SQ_MODES:
        if ((rc = opt_count(cfg, "n_fake", 10000, 1, SQ_MAX_SAMPLES, &s->n_fake, err)) != 0 ||
            (rc = opt_count(cfg, "n_real", 0, 0, SQ_MAX_SAMPLES, &s->n_real, err)) != 0 ||
            (rc = opt_count(cfg, "min_count", 1, 1, SQ_MAX_SAMPLES, &s->min_count, err)) != 0)
            return rc;
        if (s->n_real == 0)
            s->n_real = s->n_fake;
        break;
    }
    return 0;
}

static int alloc_buffers(sq_state *s, agon_error *err)
{
    size_t numel = (size_t)s->sample_numel, dim = (size_t)s->dim;
    size_t chunk = (size_t)s->chunk;
    bool ok = true;
    if (s->cls)
        ok = ok && (s->x = malloc(chunk * numel * sizeof *s->x));
    switch (s->kind) {
    case SQ_FRECHET: {
        /* The real rows are needed only until the real fit is made. */
        size_t rows = (size_t)(s->n_real > s->n_fake ? s->n_real : s->n_fake);
        ok = ok && (s->real_rows = malloc(rows * dim * sizeof *s->real_rows));
        s->fake_rows = s->real_rows;
        ok = ok && (s->mu_r = malloc(dim * sizeof(double))) &&
             (s->mu_f = malloc(dim * sizeof(double))) &&
             (s->cov_r = malloc(dim * dim * sizeof(double))) &&
             (s->cov_f = malloc(dim * dim * sizeof(double)));
        break;
    }
    case SQ_PRDC:
        ok = ok && (s->real_rows = malloc((size_t)s->n_real * dim * sizeof *s->real_rows)) &&
             (s->fake_rows = malloc((size_t)s->n_fake * dim * sizeof *s->fake_rows));
        break;
    case SQ_SCORE:
        /* score_real is computed on the same buffer before the fakes need it. */
        ok = ok && (s->fake_rows = malloc((size_t)s->n_fake * dim * sizeof *s->fake_rows));
        break;
    case SQ_MODES: {
        size_t rows = (size_t)(s->n_real > s->n_fake ? s->n_real : s->n_fake);
        size_t modes = (size_t)s->n_modes;
        size_t plane = numel / (size_t)s->channels;
        if (s->channels > 1)
            ok = ok && (s->channel = malloc(chunk * plane * sizeof *s->channel));
        ok = ok && (s->probs = malloc(chunk * dim * sizeof *s->probs)) &&
             (s->classes = malloc(rows * sizeof *s->classes)) &&
             (s->counts = malloc(modes * sizeof *s->counts)) &&
             (s->reference = malloc(modes * sizeof *s->reference)) &&
             (s->hist = malloc(modes * sizeof *s->hist)) &&
             (s->ref_counts = malloc(modes * sizeof *s->ref_counts));
        break;
    }
    }
    return ok ? 0 : sq_nomem(s, err);
}

static int sq_create(sq_kind kind, const agon_node *cfg, const agon_dataset_info *data,
                     void **state, agon_error *err)
{
    *state = NULL;
    sq_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "%s: out of memory", sq_names[kind]);
    s->kind = kind;
    s->sample_shape = data->sample_shape;
    s->sample_numel = agon_shape_numel(&data->sample_shape);
    snprintf(s->split, sizeof s->split, "%s", data->split ? data->split : "unknown");

    int rc = read_settings(s, cfg, err);
    if (rc == 0) {
        s->chunk = min64(SQ_CHUNK, s->n_real > s->n_fake ? s->n_real : s->n_fake);
        rc = kind == SQ_FRECHET || kind == SQ_PRDC ? setup_features(s, cfg, err)
                                                  : setup_required_classifier(s, cfg, err);
    }
    if (rc == 0 && kind == SQ_MODES) {
        s->n_modes = 1;
        for (int64_t c = 0; c < s->channels; c++) {
            if (s->n_modes > SQ_MAX_MODES / s->n_classes) {
                rc = agon_node_error(err, AGON_ECONFIG, user_node(cfg, "classifier"),
                                     "%lld channels of %lld classes make more than %d modes; "
                                     "use data with fewer channels or a classifier with fewer "
                                     "classes",
                                     (long long)s->channels, (long long)s->n_classes,
                                     SQ_MAX_MODES);
                break;
            }
            s->n_modes *= s->n_classes;
        }
    }
    if (rc == 0)
        rc = alloc_buffers(s, err);
    if (rc != 0) {
        sq_destroy(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int frechet_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                          agon_error *err)
{
    return sq_create(SQ_FRECHET, cfg, data, state, err);
}

static int prdc_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                       agon_error *err)
{
    return sq_create(SQ_PRDC, cfg, data, state, err);
}

static int score_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                        agon_error *err)
{
    return sq_create(SQ_SCORE, cfg, data, state, err);
}

static int modes_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                        agon_error *err)
{
    return sq_create(SQ_MODES, cfg, data, state, err);
}

/* ---- provenance ---------------------------------------------------------------- */

static int sq_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    sq_state *s = state;
    const char *extractor = s->cls ? "classifier" : "raw";
    const char *path = s->cls ? agon_classifier_path(s->cls) : "";
    const char *sha = s->cls ? agon_classifier_sha256(s->cls) : "";
    int rc;
    /* n_real, n_fake and k are settings, which the log records already. */
    if ((rc = agon_metric_declare_attr(decl, "feature_extractor", extractor, err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "feature_path", path, err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "feature_sha256", sha, err)) != 0 ||
        (rc = agon_metric_declare_attr_double(decl, "feature_dim", (double)s->dim, err)) != 0 ||
        (rc = agon_metric_declare_attr(decl, "split", s->split, err)) != 0)
        return rc;
    if (s->cls &&
        (rc = agon_metric_declare_attr_double(decl, "classifier_test_accuracy",
                                              agon_classifier_test_accuracy(s->cls), err)) != 0)
        return rc;
    if (s->kind == SQ_SCORE &&
        (rc = agon_metric_declare_attr_double(decl, "n_real", (double)s->n_real, err)) != 0)
        return rc;
    if (s->kind == SQ_MODES) {
        int64_t dims[1] = {s->n_modes};
        agon_shape shape = agon_shape_make(1, dims);
        if ((rc = agon_metric_declare_tensor(decl, "histogram", &shape, err)) != 0 ||
            (rc = agon_metric_declare_tensor(decl, "reference", &shape, err)) != 0 ||
            (rc = agon_metric_declare_attr_double(decl, "n_real_used", (double)s->n_real,
                                                  err)) != 0 ||
            (rc = agon_metric_declare_attr_double(decl, "stacked_channels",
                                                  (double)s->channels, err)) != 0 ||
            (rc = agon_metric_declare_attr_double(decl, "reference_floor", SQ_REFERENCE_FLOOR,
                                                  err)) != 0 ||
            (rc = agon_metric_declare_attr(decl, "kl_reference",
                                           "classifier's class histogram of n_real_used real "
                                           "samples; a class it lacks counts reference_floor",
                                           err)) != 0)
            return rc;
    }
    return 0;
}

/* ---- drawing -------------------------------------------------------------------- */

static int draw(agon_metric_ctx *ctx, bool real, agon_tensor *x, agon_error *err)
{
    return real ? agon_metric_real(ctx, x, err) : agon_metric_fake(ctx, x, err);
}

/* n samples' feature rows (frechet, precision_recall) or probability rows
 * (classifier_score) into rows[n, dim]. */
static int draw_rows(sq_state *s, agon_metric_ctx *ctx, bool real, int64_t n, float *rows,
                     agon_error *err)
{
    for (int64_t i = 0; i < n; i += s->chunk) {
        int64_t m = min64(s->chunk, n - i);
        float *out = rows + i * s->dim;
        agon_tensor x;
        x.shape = agon_shape_batched(m, &s->sample_shape);
        /* Raw features are the samples themselves. */
        x.data = s->cls ? s->x : out;
        int rc = draw(ctx, real, &x, err);
        if (rc == 0 && s->cls) {
            rc = s->kind == SQ_SCORE ? agon_classifier_run(s->cls, &x, NULL, out, err)
                                     : agon_classifier_run(s->cls, &x, out, NULL, err);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Index of the largest of p[0..k); the lowest on ties (and 0 for NaN rows). */
static int32_t argmax(const float *p, int64_t k)
{
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++) {
        if (p[j] > p[best])
            best = j;
    }
    return (int32_t)best;
}

/* The class of each of n samples: argmax p(y|x), and for stacked data the
 * channels' classes as the digits of a base-K number, first channel most
 * significant (100 c0 + 10 c1 + c2 for three channels of ten classes). */
static int draw_classes(sq_state *s, agon_metric_ctx *ctx, bool real, int64_t n,
                        int32_t *classes, agon_error *err)
{
    const int64_t k = s->n_classes;
    const int64_t plane = s->sample_numel / s->channels;
    for (int64_t i = 0; i < n; i += s->chunk) {
        int64_t m = min64(s->chunk, n - i);
        agon_tensor x;
        x.shape = agon_shape_batched(m, &s->sample_shape);
        x.data = s->x;
        int rc = draw(ctx, real, &x, err);
        if (rc != 0)
            return rc;
        for (int64_t r = 0; r < m; r++)
            classes[i + r] = 0;
        for (int64_t c = 0; c < s->channels; c++) {
            agon_tensor in = x;
            if (s->channels > 1) {
                for (int64_t r = 0; r < m; r++)
                    memcpy(s->channel + r * plane, s->x + r * s->sample_numel + c * plane,
                           (size_t)plane * sizeof *s->channel);
                in.data = s->channel;
                in.shape = agon_shape_batched(m, agon_classifier_input_shape(s->cls));
            }
            if ((rc = agon_classifier_run(s->cls, &in, NULL, s->probs, err)) != 0)
                return rc;
            for (int64_t r = 0; r < m; r++)
                classes[i + r] = classes[i + r] * (int32_t)k + argmax(s->probs + r * k, k);
        }
    }
    return 0;
}

static bool all_finite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return false;
    }
    return true;
}

/* Real feature rows must be finite: the dataset plugins promise it, and a
 * classifier that breaks it is broken. */
static int check_real_rows(const sq_state *s, const float *rows, int64_t n, agon_error *err)
{
    if (all_finite(rows, n * s->dim))
        return 0;
    return agon_error_set(err, AGON_EDATA,
                          "%s: the real samples' %s are not all finite; check the dataset "
                          "and the classifier file",
                          sq_names[s->kind], s->cls ? "classifier outputs" : "values");
}

/* ---- evaluation ------------------------------------------------------------------ */

static int emit_all_nan(agon_metric_ctx *ctx, const char *const *names, agon_error *err)
{
    for (size_t i = 0; names[i]; i++) {
        int rc = agon_metric_emit(ctx, names[i], NAN, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The real side is drawn once, before training, by the metric's prepare. */
static int not_prepared(agon_error *err)
{
    return agon_error_set(err, AGON_EINTERNAL,
                          "sample_quality: evaluated before prepare drew the real samples");
}

static const char *const frechet_outputs[] = {"fd", "fd_mean_term", "fd_cov_term", NULL};

static int frechet_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    const int64_t d = s->dim;
    if ((rc = draw_rows(s, ctx, true, s->n_real, s->real_rows, err)) != 0 ||
        (rc = check_real_rows(s, s->real_rows, s->n_real, err)) != 0 ||
        (rc = agon_gaussian_fit(s->real_rows, s->n_real, d, s->mu_r, s->cov_r, err)) != 0)
        return rc;
    s->real_done = true;
    return 0;
}

static int frechet_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    const int64_t d = s->dim;
    int rc;
    if (!s->real_done)
        return not_prepared(err);
    if ((rc = draw_rows(s, ctx, false, s->n_fake, s->fake_rows, err)) != 0)
        return rc;
    /* A generator gone non-finite has no Gaussian fit; the scalars show why. */
    if (!all_finite(s->fake_rows, s->n_fake * d))
        return emit_all_nan(ctx, frechet_outputs, err);
    double fd = 0.0, mean_term = 0.0;
    if ((rc = agon_gaussian_fit(s->fake_rows, s->n_fake, d, s->mu_f, s->cov_f, err)) != 0 ||
        (rc = agon_frechet_distance(d, s->mu_r, s->cov_r, s->mu_f, s->cov_f, &fd, err)) != 0)
        return rc;
    for (int64_t j = 0; j < d; j++) {
        double diff = s->mu_r[j] - s->mu_f[j];
        mean_term += diff * diff;
    }
    if ((rc = agon_metric_emit(ctx, "fd", fd, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "fd_mean_term", mean_term, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "fd_cov_term", fd - mean_term, err)) != 0)
        return rc;
    return 0;
}

static const char *const prdc_outputs[] = {"precision", "recall", "density", "coverage", NULL};

static int prdc_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    if ((rc = draw_rows(s, ctx, true, s->n_real, s->real_rows, err)) != 0 ||
        (rc = check_real_rows(s, s->real_rows, s->n_real, err)) != 0)
        return rc;
    s->real_done = true;
    return 0;
}

static int prdc_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    if (!s->real_done)
        return not_prepared(err);
    if ((rc = draw_rows(s, ctx, false, s->n_fake, s->fake_rows, err)) != 0)
        return rc;
    if (!all_finite(s->fake_rows, s->n_fake * s->dim))
        return emit_all_nan(ctx, prdc_outputs, err);
    agon_prdc r;
    if ((rc = agon_prdc_compute(s->real_rows, s->n_real, s->fake_rows, s->n_fake, s->dim, s->k,
                                &r, err)) != 0)
        return rc;
    if ((rc = agon_metric_emit(ctx, "precision", r.precision, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "recall", r.recall, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "density", r.density, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "coverage", r.coverage, err)) != 0)
        return rc;
    return 0;
}

/* Mean and (population) standard deviation of the score over `splits`
 * consecutive parts of probs[n, k]; part i is rows [i n / splits,
 * (i + 1) n / splits), so part sizes differ by at most one. */
static void split_scores(const float *probs, int64_t n, int64_t k, int64_t splits,
                         double *mean, double *std)
{
    double sum = 0.0, sumsq = 0.0;
    for (int64_t i = 0; i < splits; i++) {
        int64_t lo = i * n / splits, hi = (i + 1) * n / splits;
        double v = agon_class_score(probs + lo * k, hi - lo, k);
        sum += v;
        sumsq += v * v;
    }
    *mean = sum / (double)splits;
    double var = sumsq / (double)splits - *mean * *mean;
    *std = var > 0.0 ? sqrt(var) : 0.0;
}

static int score_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    double std;
    if ((rc = draw_rows(s, ctx, true, s->n_real, s->fake_rows, err)) != 0 ||
        (rc = check_real_rows(s, s->fake_rows, s->n_real, err)) != 0)
        return rc;
    split_scores(s->fake_rows, s->n_real, s->n_classes, s->splits, &s->score_real, &std);
    s->real_done = true;
    return 0;
}

static int score_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    double mean, std;
    int rc;
    if (!s->real_done)
        return not_prepared(err);
    if ((rc = draw_rows(s, ctx, false, s->n_fake, s->fake_rows, err)) != 0)
        return rc;
    if (all_finite(s->fake_rows, s->n_fake * s->dim)) {
        split_scores(s->fake_rows, s->n_fake, s->n_classes, s->splits, &mean, &std);
    } else {
        mean = std = NAN;
    }
    if ((rc = agon_metric_emit(ctx, "score", mean, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "score_std", std, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "score_real", s->score_real, err)) != 0)
        return rc;
    return 0;
}

/* The reference distribution: the classifier's class histogram of the real
 * samples, each missing class raised to SQ_REFERENCE_FLOOR counts. */
static int make_reference(sq_state *s, agon_metric_ctx *ctx, agon_error *err)
{
    int64_t covered;
    double kl;
    int rc = draw_classes(s, ctx, true, s->n_real, s->classes, err);
    if (rc == 0)
        rc = agon_class_histogram(s->classes, s->n_real, s->n_modes, 1, NULL, s->counts,
                                  &covered, &kl, err);
    if (rc != 0)
        return rc;
    double total = 0.0;
    for (int64_t c = 0; c < s->n_modes; c++) {
        s->ref_counts[c] = (float)s->counts[c];
        s->reference[c] = s->counts[c] > 0 ? (double)s->counts[c] : SQ_REFERENCE_FLOOR;
        total += s->reference[c];
    }
    for (int64_t c = 0; c < s->n_modes; c++)
        s->reference[c] /= total;
    return 0;
}

static const char *const modes_outputs[] = {"modes", "kl", "max_modes", NULL};

static int modes_prepare(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    if ((rc = make_reference(s, ctx, err)) != 0)
        return rc;
    s->real_done = true;
    return 0;
}

static int modes_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    sq_state *s = state;
    int rc;
    if (!s->real_done)
        return not_prepared(err);
    int64_t covered;
    double kl;
    if ((rc = draw_classes(s, ctx, false, s->n_fake, s->classes, err)) != 0 ||
        (rc = agon_class_histogram(s->classes, s->n_fake, s->n_modes, s->min_count, s->reference,
                                   s->counts, &covered, &kl, err)) != 0)
        return rc;
    for (int64_t c = 0; c < s->n_modes; c++)
        s->hist[c] = (float)s->counts[c];
    if ((rc = agon_metric_emit(ctx, "modes", (double)covered, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "kl", kl, err)) != 0 ||
        (rc = agon_metric_emit(ctx, "max_modes", (double)s->n_modes, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "histogram", s->hist, err)) != 0 ||
        (rc = agon_metric_emit_tensor(ctx, "reference", s->ref_counts, err)) != 0)
        return rc;
    return 0;
}

/* ---- components -------------------------------------------------------------------- */

static const char *const score_outputs[] = {"score", "score_std", "score_real", NULL};

static const agon_metric_vtable frechet_vtable = {
    sizeof(agon_metric_vtable), frechet_outputs, frechet_create, sq_destroy,
    frechet_evaluate,           sq_declare, frechet_prepare,
};
static const agon_metric_vtable prdc_vtable = {
    sizeof(agon_metric_vtable), prdc_outputs, prdc_create, sq_destroy, prdc_evaluate, sq_declare,
    prdc_prepare,
};
static const agon_metric_vtable score_vtable = {
    sizeof(agon_metric_vtable), score_outputs, score_create, sq_destroy, score_evaluate,
    sq_declare, score_prepare,
};
static const agon_metric_vtable modes_vtable = {
    sizeof(agon_metric_vtable), modes_outputs, modes_create, sq_destroy, modes_evaluate,
    sq_declare, modes_prepare,
};

#define SQ_PARAM_FEATURES                                                                  \
    {"features", AGON_PARAM_CHOICE, "auto", AGON_NO_RANGE, "auto|raw|classifier",          \
     "feature space: raw sample values, the classifier's penultimate layer, or auto "      \
     "(classifier when one is set, else raw, refused above 64 values per sample)"}
#define SQ_PARAM_CLASSIFIER(doc)                                                           \
    {"classifier", AGON_PARAM_STRING, "\"\"", AGON_NO_RANGE, NULL, doc}

static const agon_param_spec frechet_params[] = {
    {"n_real", AGON_PARAM_INT, "10000", 2, SQ_MAX_SAMPLES, NULL,
     "real samples of the real Gaussian fit (drawn once)"},
    {"n_fake", AGON_PARAM_INT, "10000", 2, SQ_MAX_SAMPLES, NULL,
     "generator samples drawn per evaluation"},
    SQ_PARAM_FEATURES,
    SQ_PARAM_CLASSIFIER("classifier file (agon classifier train) for features: classifier"),
    AGON_PARAM_END,
};

static const agon_param_spec prdc_params[] = {
    {"n_real", AGON_PARAM_INT, "5000", 2, SQ_MAX_SAMPLES, NULL,
     "real samples (drawn once)"},
    {"n_fake", AGON_PARAM_INT, "5000", 2, SQ_MAX_SAMPLES, NULL,
     "generator samples drawn per evaluation"},
    {"k", AGON_PARAM_INT, "3", 1, SQ_MAX_SAMPLES, NULL,
     "neighbourhood size of all four values (< n_real and < n_fake)"},
    SQ_PARAM_FEATURES,
    SQ_PARAM_CLASSIFIER("classifier file (agon classifier train) for features: classifier"),
    AGON_PARAM_END,
};

static const agon_param_spec score_params[] = {
    {"n_fake", AGON_PARAM_INT, "10000", 1, SQ_MAX_SAMPLES, NULL,
     "generator samples per evaluation (and real samples for score_real, once)"},
    {"splits", AGON_PARAM_INT, "10", 1, SQ_MAX_SAMPLES, NULL,
     "parts the samples are scored in separately (<= n_fake)"},
    SQ_PARAM_CLASSIFIER("classifier file (agon classifier train); required"),
    AGON_PARAM_END,
};

static const agon_param_spec modes_params[] = {
    {"n_fake", AGON_PARAM_INT, "10000", 1, SQ_MAX_SAMPLES, NULL,
     "generator samples classified per evaluation"},
    {"n_real", AGON_PARAM_INT, "0", 0, SQ_MAX_SAMPLES, NULL,
     "real samples of the reference histogram, drawn once (0: as many as n_fake)"},
    {"min_count", AGON_PARAM_INT, "1", 1, SQ_MAX_SAMPLES, NULL,
     "samples a class needs to count as a covered mode"},
    SQ_PARAM_CLASSIFIER("classifier file (agon classifier train); required"),
    AGON_PARAM_END,
};

AGON_PLUGIN("sample_quality", "1.0.0",
            "Sample quality in a feature space: Fréchet distance, precision/recall, "
            "classifier score, class modes",
            AGON_METRIC("frechet", "Fréchet distance between Gaussian fits of real and fake "
                                   "features (FID with a classifier)",
                        frechet_params, &frechet_vtable),
            AGON_METRIC("precision_recall", "k-NN precision, recall, density and coverage",
                        prdc_params, &prdc_vtable),
            AGON_METRIC("classifier_score", "Inception-Score formula on the domain "
                                            "classifier's p(y|x)",
                        score_params, &score_vtable),
            AGON_METRIC("class_modes", "classes covered by generator samples and KL of their "
                                       "histogram from the data's (Stacked MNIST)",
                        modes_params, &modes_vtable));
