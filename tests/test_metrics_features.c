/* The sample-quality metrics (plugins/metrics/sample_quality.c: frechet,
 * precision_recall, classifier_score, class_modes) end to end, through
 * runs of the library with the real plugins:
 *   - values against what the test recomputes independently: the Fréchet
 *     distance from the logged generator samples and the ring's exact
 *     moments; score_real, the reference class histograms (plain and
 *     stacked) and the KL from the test's own classification of the data;
 *   - behaviour on a GAN that learns (fd falls, recall rises);
 *   - provenance attributes and error lines word for word;
 *   - training bit-identical with and without the metrics.
 * The classifier is a tiny one the test trains on a synthetic 4-class
 * image set (a bright quadrant per class). */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "agon/agon.h"
#include "agon/classifier.h"
#include "agon/stats.h"
#include "test_h5.h"

#define DIR "tmp_metrics_features"
#define CLS_PATH DIR "/cls.h5"
#define K 4
#define SIDE 8
#define PLANE (SIDE * SIDE)
#define N_TRAIN 600
#define N_TEST 200
#define N_STACK 600

static agon_registry *reg;
static agon_classifier *cls;
/* The test's own classification of the data sets (argmax p(y|x)). */
static int32_t pred_digits[N_TRAIN];
static int32_t pred_stacked[N_STACK];     /* 16 c0 + 4 c1 + c2 */
static float probs_digits[N_TRAIN * K];

/* ---- data ------------------------------------------------------------------- */

/* Class c lights quadrant c of an 8x8 image, on noise. */
static void make_image(agon_rng *rng, int c, float *img)
{
    for (int y = 0; y < SIDE; y++) {
        for (int x = 0; x < SIDE; x++) {
            bool on = (y / 4) == c / 2 && (x / 4) == c % 2;
            img[y * SIDE + x] = (on ? 0.8f : -0.8f) + 0.25f * (float)agon_rng_normal(rng);
        }
    }
}

static void h5_put(hid_t f, const char *path, hid_t type, hid_t mem, int rank,
                   const hsize_t *dims, const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(space);
}

static float train_x[N_TRAIN * PLANE], test_x[N_TEST * PLANE], stack_x[N_STACK * 3 * PLANE];

/* digits.h5: /x [600, 1, 8, 8], /y; /x_test [200, 1, 8, 8], /y_test.
 * stacked.h5: /x [600, 3, 8, 8], each channel one of the training images,
 * /y = 16 l0 + 4 l1 + l2. */
static void write_data(void)
{
    agon_rng rng;
    agon_rng_seed(&rng, 11, "test/data");
    static int32_t train_y[N_TRAIN], test_y[N_TEST], stack_y[N_STACK];
    for (int i = 0; i < N_TRAIN; i++) {
        train_y[i] = i % K;
        make_image(&rng, train_y[i], train_x + i * PLANE);
    }
    for (int i = 0; i < N_TEST; i++) {
        test_y[i] = (i * 7) % K;
        make_image(&rng, test_y[i], test_x + i * PLANE);
    }
    for (int i = 0; i < N_STACK; i++) {
        stack_y[i] = 0;
        for (int c = 0; c < 3; c++) {
            int src = (int)agon_rng_below(&rng, N_TRAIN);
            memcpy(stack_x + (i * 3 + c) * PLANE, train_x + src * PLANE, PLANE * sizeof(float));
            stack_y[i] = stack_y[i] * K + train_y[src];
        }
    }
    hid_t f = H5Fcreate(DIR "/digits.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t dx[4] = {N_TRAIN, 1, SIDE, SIDE}, dy[1] = {N_TRAIN};
    h5_put(f, "/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dx, train_x);
    h5_put(f, "/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dy, train_y);
    dx[0] = dy[0] = N_TEST;
    h5_put(f, "/x_test", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dx, test_x);
    h5_put(f, "/y_test", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dy, test_y);
    H5Fclose(f);

    f = H5Fcreate(DIR "/stacked.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t sx[4] = {N_STACK, 3, SIDE, SIDE}, sy[1] = {N_STACK};
    h5_put(f, "/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, sx, stack_x);
    h5_put(f, "/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, sy, stack_y);
    H5Fclose(f);
}

static const char cls_yaml[] =
    "seed: 0\n"
    "dataset: {plugin: hdf5, file: " DIR "/digits.h5, dataset: /x, labels: /y}\n"
    "test_dataset: {plugin: hdf5, file: " DIR "/digits.h5, dataset: /x_test, labels: /y_test}\n"
    "model: {c1: 8, c2: 16, features: 16}\n"
    "train: {epochs: 4, batch_size: 32}\n"
    "optimizer: {plugin: adam, lr: 0.003}\n"
    "output: " CLS_PATH "\n";

static int32_t argmax(const float *p, int k)
{
    int best = 0;
    for (int j = 1; j < k; j++)
        best = p[j] > p[best] ? j : best;
    return best;
}

/* Classifies n images [n, 1, 8, 8] into probs[n, K] and classes[n]. */
static void classify(const float *x, int n, float *probs, int32_t *classes)
{
    int64_t dims[4] = {n, 1, SIDE, SIDE};
    agon_tensor t = {.data = (float *)x, .shape = agon_shape_make(4, dims)};
    agon_error err = {0};
    static float p[N_TRAIN * 3 * K];
    assert_true(n <= N_TRAIN * 3);
    if (agon_classifier_run(cls, &t, NULL, p, &err) != 0)
        fail_msg("%s", err.message);
    for (int i = 0; i < n; i++) {
        classes[i] = argmax(p + i * K, K);
        if (probs)
            memcpy(probs + i * K, p + i * K, K * sizeof(float));
    }
}

static int setup(void **state)
{
    (void)state;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    assert_int_equal(system("rm -rf " DIR " && mkdir -p " DIR), 0);
    write_data();

    reg = agon_test_registry(false);

    agon_test_write_file(DIR "/cls.yaml", cls_yaml);
    agon_classifier_report report;
    agon_test_train_classifier(reg, DIR "/cls.yaml", true, NULL, &report);
    /* The quadrants are far apart in pixel space: a working classifier
     * separates them (the known answers below need no accuracy, only
     * margins that the chunking of the runs cannot flip). */
    assert_true(report.test_accuracy >= 0.95);

    agon_error err = {0};
    cls = agon_classifier_load(CLS_PATH, 1000, &err);
    if (!cls)
        fail_msg("%s", err.message);
    classify(train_x, N_TRAIN, probs_digits, pred_digits);
    static int32_t ch[N_STACK * 3];
    static float planes[N_STACK * 3 * PLANE];
    for (int i = 0; i < N_STACK; i++)
        for (int c = 0; c < 3; c++)
            memcpy(planes + (c * N_STACK + i) * PLANE, stack_x + (i * 3 + c) * PLANE,
                   PLANE * sizeof(float));
    classify(planes, N_STACK * 3, NULL, ch);
    for (int i = 0; i < N_STACK; i++)
        pred_stacked[i] = 16 * ch[i] + 4 * ch[N_STACK + i] + ch[2 * N_STACK + i];
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    agon_classifier_destroy(cls);
    agon_registry_destroy(reg);
    return 0;
}

/* ---- running and reading back --------------------------------------------------- */

/* Runs the experiment text into `out`; returns the status, the error
 * message in msg. */
static int run_yaml(const char *yaml, const char *out, char *msg, size_t cap)
{
    agon_test_write_file(DIR "/exp.yaml", yaml);
    agon_error err = {0};
    int rc = agon_test_run_experiment(reg, DIR "/exp.yaml", NULL, 0, out, NULL, NULL, &err);
    if (msg)
        snprintf(msg, cap, "%s", err.message);
    return rc;
}

static void run_ok(const char *yaml, const char *out)
{
    char msg[1024];
    if (run_yaml(yaml, out, msg, sizeof msg) != 0)
        fail_msg("run %s: %s", out, msg);
}

static void assert_str_attr(const char *file, const char *obj, const char *name,
                            const char *want)
{
    char got[512];
    agon_test_read_string_attr(file, obj, name, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("%s %s@%s is '%s', expected '%s'", file, obj, name, got, want);
}

/* The names of the datasets in a group. */
static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    char(*names)[64] = data;
    for (int i = 0; i < 63; i++) {
        if (!names[i][0]) {
            snprintf(names[i], 64, "%s", name);
            return 0;
        }
    }
    return 1;
}

/* Every dataset of group `group` holds the same bits in both files. */
static void assert_group_same(const char *a, const char *b, const char *group)
{
    static char names[64][64];
    memset(names, 0, sizeof names);
    hid_t f = H5Fopen(a, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    assert_true(g >= 0);
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, names);
    H5Gclose(g);
    H5Fclose(f);
    int count = 0;
    static float x[1 << 20], y[1 << 20];
    for (int i = 0; names[i][0]; i++, count++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", group, names[i]);
        size_t n = agon_test_read_floats(a, path, x, 1 << 20);
        assert_int_equal(agon_test_read_floats(b, path, y, 1 << 20), n);
        if (memcmp(x, y, n * sizeof(float)) != 0)
            fail_msg("%s differs between %s and %s", path, a, b);
    }
    assert_true(count >= 2);
}

/* ---- the ring: raw features, a GAN that learns ------------------------------------ */

#define RING_STEPS 1000
#define RING_EVERY 250
#define RING_EVALS (RING_STEPS / RING_EVERY)
#define RING_SAMPLES 20000

static const char ring_head[] =
    "seed: 0\n"
    "dataset: {plugin: gaussian_mixture, layout: ring, modes: 8, radius: 2.0, std: 0.1}\n"
    "generator: {plugin: mlp, hidden: [64, 64]}\n"
    "discriminator: {plugin: mlp, hidden: [64, 64], activation: leaky_relu}\n"
    "loss: {plugin: nonsaturating}\n"
    "g_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
    "d_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
    "train: {steps: 1000, batch_size: 256, latent_dim: 16}\n"
    "log: {every: 10, samples_every: 250, n_samples: 20000, params_every: 0}\n";

/* Fréchet distance from N(0, c I) (the ring's exact moments) to the
 * unbiased Gaussian fit of n 2-D points, in closed form: for a 2x2 PSD S,
 * Tr S^(1/2) = sqrt(Tr S + 2 sqrt(det S)). */
static double fd_to_ring(const float *x, int n, double c, double *mean_term)
{
    double m[2] = {0, 0}, s[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        m[0] += x[2 * i];
        m[1] += x[2 * i + 1];
    }
    m[0] /= n;
    m[1] /= n;
    for (int i = 0; i < n; i++) {
        double a = x[2 * i] - m[0], b = x[2 * i + 1] - m[1];
        s[0] += a * a;
        s[1] += a * b;
        s[2] += b * b;
    }
    for (int j = 0; j < 3; j++)
        s[j] /= n - 1;
    double tr = s[0] + s[2], det = fmax(s[0] * s[2] - s[1] * s[1], 0.0);
    *mean_term = m[0] * m[0] + m[1] * m[1];
    return *mean_term + 2.0 * c + tr - 2.0 * sqrt(c) * sqrt(tr + 2.0 * sqrt(det));
}

static void test_ring_raw_features(void **state)
{
    (void)state;
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "%smetrics:\n"
             "  - {plugin: frechet, every: 250, n_real: 100000, n_fake: 20000}\n"
             "  - {plugin: precision_recall, every: 250, n_real: 1500, n_fake: 1500}\n",
             ring_head);
    run_ok(yaml, DIR "/ring.h5");
    snprintf(yaml, sizeof yaml, "%smetrics: []\n", ring_head);
    run_ok(yaml, DIR "/ring_base.h5");

    /* Training, snapshots included, does not see the metrics. */
    assert_group_same(DIR "/ring.h5", DIR "/ring_base.h5", "/scalars");
    assert_group_same(DIR "/ring.h5", DIR "/ring_base.h5", "/final/generator");
    assert_group_same(DIR "/ring.h5", DIR "/ring_base.h5", "/final/discriminator");
    assert_group_same(DIR "/ring.h5", DIR "/ring_base.h5", "/samples");

    const char *f = DIR "/ring.h5";
    double fd[RING_EVALS], mean_term[RING_EVALS], cov_term[RING_EVALS];
    assert_int_equal(agon_test_read_doubles(f, "/metrics/frechet/fd", fd, RING_EVALS), RING_EVALS);
    agon_test_read_doubles(f, "/metrics/frechet/fd_mean_term", mean_term, RING_EVALS);
    agon_test_read_doubles(f, "/metrics/frechet/fd_cov_term", cov_term, RING_EVALS);

    /* The metric's fakes and the snapshot at the same step come from the
     * same G; the real fit is of 100000 ring samples, whose exact
     * covariance is (r^2/2 + std^2) I.  Both sides are estimates, so the
     * agreement is to sampling error (measured spread about 0.01). */
    static float x[(RING_EVALS + 1) * RING_SAMPLES * 2];
    assert_int_equal(agon_test_read_floats(f, "/samples/x", x, sizeof x / sizeof x[0]),
                     (RING_EVALS + 1) * RING_SAMPLES * 2);
    const double c = 2.0 * 2.0 / 2.0 + 0.1 * 0.1;
    for (int t = 0; t < RING_EVALS; t++) {
        double mt;
        double want = fd_to_ring(x + (size_t)(t + 1) * RING_SAMPLES * 2, RING_SAMPLES, c, &mt);
        print_message("step %d: fd %.5f (recomputed %.5f), mean term %.5f (%.5f)\n",
                      (t + 1) * RING_EVERY, fd[t], want, mean_term[t], mt);
        assert_true(fd[t] >= 0.0);
        assert_true(fabs(fd[t] - want) <= 0.03 + 0.03 * want);
        assert_true(fabs(mean_term[t] - mt) <= 0.01 + 0.05 * mt);
        assert_float_equal(fd[t], mean_term[t] + cov_term[t], 1e-12 * (1.0 + fd[t]));
    }
    /* G learns the ring. */
    assert_true(fd[RING_EVALS - 1] < 0.5 * fd[0]);

    double p[RING_EVALS], r[RING_EVALS], d[RING_EVALS], cv[RING_EVALS];
    agon_test_read_doubles(f, "/metrics/precision_recall/precision", p, RING_EVALS);
    agon_test_read_doubles(f, "/metrics/precision_recall/recall", r, RING_EVALS);
    agon_test_read_doubles(f, "/metrics/precision_recall/density", d, RING_EVALS);
    agon_test_read_doubles(f, "/metrics/precision_recall/coverage", cv, RING_EVALS);
    for (int t = 0; t < RING_EVALS; t++) {
        print_message("step %d: precision %.4f recall %.4f density %.4f coverage %.4f\n",
                      (t + 1) * RING_EVERY, p[t], r[t], d[t], cv[t]);
        assert_true(p[t] >= 0.0 && p[t] <= 1.0 && r[t] >= 0.0 && r[t] <= 1.0);
        assert_true(cv[t] >= 0.0 && cv[t] <= 1.0 && d[t] >= 0.0);
    }
    /* By the end G spreads over the whole ring, gaps between the modes
     * included: nearly every real sample has a fake nearby (recall), while
     * most fakes lie off the modes (precision). */
    assert_true(r[0] < 0.2 && r[RING_EVALS - 1] > 0.9);
    assert_true(p[RING_EVALS - 1] < 0.5);
    assert_true(cv[RING_EVALS - 1] > cv[0]);

    /* Provenance: raw features; the sample counts are the settings. */
    assert_str_attr(f, "/metrics/frechet", "feature_extractor", "raw");
    assert_str_attr(f, "/metrics/frechet", "feature_path", "");
    assert_str_attr(f, "/metrics/frechet", "feature_sha256", "");
    assert_str_attr(f, "/metrics/frechet", "split", "unknown");
    assert_str_attr(f, "/metrics/frechet", "n_real", "100000");
    assert_str_attr(f, "/metrics/frechet", "n_fake", "20000");
    assert_str_attr(f, "/metrics/frechet", "features", "auto");
    assert_float_equal(agon_test_read_double_attr(f, "/metrics/frechet", "feature_dim"), 2.0, 0.0);
    assert_str_attr(f, "/metrics/precision_recall", "k", "3");
    assert_str_attr(f, "/metrics/precision_recall", "n_real", "1500");
    assert_float_equal(
        agon_test_read_double_attr(f, "/metrics/precision_recall", "feature_dim"), 2.0, 0.0);
}

/* ---- images and the classifier ---------------------------------------------------- */

#define IMG_EVALS 2

static const char img_head[] =
    "seed: 2\n"
    "dataset: {plugin: hdf5, file: " DIR "/%s.h5, dataset: /x, labels: /y}\n"
    "generator: {plugin: mlp, hidden: [32], output_activation: tanh}\n"
    "discriminator: {plugin: mlp, hidden: [32], activation: leaky_relu}\n"
    "loss: {plugin: nonsaturating}\n"
    "train: {steps: 30, batch_size: 32, latent_dim: 8, freeze_g_from: 1}\n"
    "log: {every: 1, samples_every: 0, params_every: 0}\n";

/* KL(h || ref) with the reference floored as documented: a class without
 * real samples counts 0.5. */
static double kl_floored(const float *hist, const float *ref, int n)
{
    double hs = 0.0, rs = 0.0, kl = 0.0;
    for (int c = 0; c < n; c++) {
        hs += hist[c];
        rs += ref[c] > 0.0f ? ref[c] : 0.5;
    }
    for (int c = 0; c < n; c++) {
        if (hist[c] > 0.0f) {
            double h = hist[c] / hs, q = (ref[c] > 0.0f ? ref[c] : 0.5) / rs;
            kl += h * log(h / q);
        }
    }
    return kl;
}

/* Checks the outputs and tensors of the class_modes metric `name` in one
 * run against each other, and its reference against the test's own
 * classes pred[] of the n_real real samples the metric drew: the samples
 * order[0..n_real) of the first epoch of its stream, or all of the data
 * (order NULL, n_real = the data's size; the order does not matter then).
 * *floored counts the fake classes that the reference lacks. */
static void check_class_modes(const char *f, const char *name, int n_modes, int n_fake,
                              const int32_t *pred, const int64_t *order, int n_real,
                              double *modes_out, int *floored)
{
    char path[256];
    double modes[IMG_EVALS], kl[IMG_EVALS], max_modes[IMG_EVALS];
    snprintf(path, sizeof path, "/metrics/%s/modes", name);
    assert_int_equal(agon_test_read_doubles(f, path, modes, IMG_EVALS), IMG_EVALS);
    snprintf(path, sizeof path, "/metrics/%s/kl", name);
    agon_test_read_doubles(f, path, kl, IMG_EVALS);
    snprintf(path, sizeof path, "/metrics/%s/max_modes", name);
    agon_test_read_doubles(f, path, max_modes, IMG_EVALS);
    static float hist[IMG_EVALS * 64], ref[IMG_EVALS * 64];
    snprintf(path, sizeof path, "/metrics/%s/tensors/histogram", name);
    assert_int_equal(agon_test_read_floats(f, path, hist, IMG_EVALS * 64),
                     (size_t)(IMG_EVALS * n_modes));
    snprintf(path, sizeof path, "/metrics/%s/tensors/reference", name);
    assert_int_equal(agon_test_read_floats(f, path, ref, IMG_EVALS * 64),
                     (size_t)(IMG_EVALS * n_modes));

    float want_ref[64] = {0};
    for (int i = 0; i < n_real; i++)
        want_ref[pred[order ? order[i] : i]] += 1.0f;
    *floored = 0;
    for (int t = 0; t < IMG_EVALS; t++) {
        const float *h = hist + t * n_modes, *r = ref + t * n_modes;
        assert_memory_equal(r, want_ref, (size_t)n_modes * sizeof(float));
        double total = 0.0, covered = 0.0;
        for (int c = 0; c < n_modes; c++) {
            total += h[c];
            covered += h[c] >= 1.0f;
            *floored += h[c] > 0.0f && r[c] == 0.0f;
        }
        assert_float_equal(total, n_fake, 0.0);
        assert_float_equal(modes[t], covered, 0.0);
        assert_float_equal(max_modes[t], n_modes, 0.0);
        assert_float_equal(kl[t], kl_floored(h, r, n_modes), 1e-9);
        print_message("%s: %g of %d modes, kl %.4f\n", name, modes[t], n_modes, kl[t]);
    }
    *modes_out = modes[IMG_EVALS - 1];
}

/* score over `splits` parts of probs in the order order[0..n). */
static double split_score(const int64_t *order, int n, int splits)
{
    static float p[N_TRAIN * K];
    for (int i = 0; i < n; i++)
        memcpy(p + i * K, probs_digits + order[i] * K, K * sizeof(float));
    double sum = 0.0;
    for (int s = 0; s < splits; s++) {
        int lo = s * n / splits, hi = (s + 1) * n / splits;
        sum += agon_class_score(p + lo * K, hi - lo, K);
    }
    return sum / splits;
}

static void test_classifier_metrics(void **state)
{
    (void)state;
    char yaml[4096];
    int len = snprintf(yaml, sizeof yaml, img_head, "digits");
    snprintf(yaml + len, sizeof yaml - len,
             "metrics:\n"
             "  - {plugin: frechet, every: 15, n_real: 600, n_fake: 500, classifier: " CLS_PATH
             "}\n"
             "  - {plugin: precision_recall, every: 15, n_real: 600, n_fake: 300, classifier: "
             CLS_PATH "}\n"
             "  - {plugin: classifier_score, every: 15, n_fake: 600, splits: 1, classifier: "
             CLS_PATH "}\n"
             "  - {plugin: classifier_score, name: score3, every: 15, n_fake: 500, splits: 3, "
             "classifier: " CLS_PATH "}\n"
             "  - {plugin: class_modes, every: 15, n_fake: 1000, n_real: 600, classifier: "
             CLS_PATH "}\n");
    const char *f = DIR "/img.h5";
    run_ok(yaml, f);

    /* Provenance, word for word. */
    const char *sha = agon_classifier_sha256(cls);
    assert_int_equal(strlen(sha), 64);
    const char *groups[] = {"/metrics/frechet", "/metrics/precision_recall",
                            "/metrics/classifier_score", "/metrics/class_modes"};
    for (int i = 0; i < 4; i++) {
        assert_str_attr(f, groups[i], "feature_extractor", "classifier");
        assert_str_attr(f, groups[i], "feature_path", CLS_PATH);
        assert_str_attr(f, groups[i], "feature_sha256", sha);
        assert_str_attr(f, groups[i], "split", "unknown");
        assert_float_equal(agon_test_read_double_attr(f, groups[i], "classifier_test_accuracy"),
                           agon_classifier_test_accuracy(cls), 0.0);
    }
    double fdim = (double)agon_classifier_feature_dim(cls);
    assert_float_equal(agon_test_read_double_attr(f, groups[0], "feature_dim"), fdim, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, groups[1], "feature_dim"), fdim, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, groups[2], "feature_dim"), K, 0.0);
    assert_str_attr(f, groups[0], "n_real", "600");
    assert_str_attr(f, groups[0], "n_fake", "500");
    assert_str_attr(f, groups[2], "n_fake", "600");
    assert_float_equal(agon_test_read_double_attr(f, groups[2], "n_real"), 600.0, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, groups[3], "n_real_used"), 600.0, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, groups[3], "stacked_channels"), 1.0, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, groups[3], "reference_floor"), 0.5, 0.0);

    /* score_real: the whole data set once.  With one split the order does
     * not matter; with three, the parts follow the first epoch of the
     * metric's own stream (agon/sampler.h), which the test replays. */
    double score[IMG_EVALS], std[IMG_EVALS], real[IMG_EVALS];
    agon_test_read_doubles(f, "/metrics/classifier_score/score", score, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/classifier_score/score_std", std, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/classifier_score/score_real", real, IMG_EVALS);
    int64_t order[N_TRAIN];
    for (int i = 0; i < N_TRAIN; i++)
        order[i] = i;
    double want1 = split_score(order, N_TRAIN, 1);
    agon_rng rng;
    agon_rng_seed(&rng, 2, "metrics/score3");
    agon_test_epoch_order(&rng, N_TRAIN, order, N_TRAIN);
    /* 500 samples in parts of 166, 167 and 167. */
    double want3 = split_score(order, 500, 3);
    double real3[IMG_EVALS], score3[IMG_EVALS], std3[IMG_EVALS];
    agon_test_read_doubles(f, "/metrics/score3/score_real", real3, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/score3/score", score3, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/score3/score_std", std3, IMG_EVALS);
    print_message("score_real %.6f (%.6f), 3 splits %.6f (%.6f); score %.4f\n", real[0], want1,
                  real3[0], want3, score[0]);
    /* Balanced, fairly confident predictions: well above 1, below K. */
    assert_true(want1 > 0.7 * K && want1 < K);
    assert_true(fabs(want1 - want3) > 1e-7);
    for (int t = 0; t < IMG_EVALS; t++) {
        assert_float_equal(real[t], want1, 1e-5);
        assert_float_equal(real3[t], want3, 1e-5);
        assert_true(score[t] >= 1.0 && score[t] <= K);
        assert_float_equal(std[t], 0.0, 0.0);
        assert_true(std3[t] > 0.0);
        /* A frozen untrained G makes no variety of classes. */
        assert_true(score[t] < 0.75 * real[t]);
    }

    double modes;
    int floored;
    check_class_modes(f, "class_modes", K, 1000, pred_digits, NULL, N_TRAIN, &modes, &floored);

    double fd[IMG_EVALS], mt[IMG_EVALS], ct[IMG_EVALS];
    agon_test_read_doubles(f, "/metrics/frechet/fd", fd, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/frechet/fd_mean_term", mt, IMG_EVALS);
    agon_test_read_doubles(f, "/metrics/frechet/fd_cov_term", ct, IMG_EVALS);
    double pr[4][IMG_EVALS];
    const char *prn[] = {"precision", "recall", "density", "coverage"};
    for (int j = 0; j < 4; j++) {
        char path[128];
        snprintf(path, sizeof path, "/metrics/precision_recall/%s", prn[j]);
        agon_test_read_doubles(f, path, pr[j], IMG_EVALS);
    }
    for (int t = 0; t < IMG_EVALS; t++) {
        print_message("fd %.4f (mean %.4f), precision %.3f recall %.3f\n", fd[t], mt[t],
                      pr[0][t], pr[1][t]);
        assert_true(fd[t] > 0.0 && mt[t] >= 0.0);
        assert_float_equal(fd[t], mt[t] + ct[t], 1e-12 * (1.0 + fd[t]));
        assert_true(pr[0][t] >= 0.0 && pr[0][t] <= 1.0 && pr[1][t] >= 0.0 && pr[1][t] <= 1.0);
        /* An untrained G's images are not the data's: most real samples
         * have no fake near them. */
        assert_true(pr[1][t] < 0.5);
    }
}

/* Training on images does not see any of the four metrics: each one
 * alone, and all four twice over (eight metrics drawing real samples, more
 * than a dataset has epoch cursors), leave the losses and final parameters
 * bit-identical. */
static void test_image_training_untouched(void **state)
{
    (void)state;
    static const char *const metrics[] = {
        "{plugin: frechet, every: 10, n_real: 300, n_fake: 300, classifier: " CLS_PATH "}",
        "{plugin: precision_recall, every: 10, n_real: 300, n_fake: 300, classifier: " CLS_PATH
        "}",
        "{plugin: classifier_score, every: 10, n_fake: 300, classifier: " CLS_PATH "}",
        "{plugin: class_modes, every: 10, n_fake: 300, classifier: " CLS_PATH "}",
    };
    char yaml[4096];
    snprintf(yaml, sizeof yaml, img_head, "digits");
    /* G must train too, so that its updates are compared as well. */
    char *frozen = strstr(yaml, ", freeze_g_from: 1");
    assert_non_null(frozen);
    memmove(frozen, frozen + strlen(", freeze_g_from: 1"),
            strlen(frozen + strlen(", freeze_g_from: 1")) + 1);
    size_t len = strlen(yaml);
    snprintf(yaml + len, sizeof yaml - len, "metrics: []\n");
    run_ok(yaml, DIR "/img_base.h5");
    for (int i = 0; i < 4; i++) {
        snprintf(yaml + len, sizeof yaml - len, "metrics: [%s]\n", metrics[i]);
        run_ok(yaml, DIR "/img_one.h5");
        assert_group_same(DIR "/img_one.h5", DIR "/img_base.h5", "/scalars");
        assert_group_same(DIR "/img_one.h5", DIR "/img_base.h5", "/final/generator");
        assert_group_same(DIR "/img_one.h5", DIR "/img_base.h5", "/final/discriminator");
    }
    snprintf(yaml + len, sizeof yaml - len,
             "metrics: [%s, %s, %s, %s,\n"
             "  {plugin: frechet, name: fd2, every: 10, n_real: 200, n_fake: 200, "
             "classifier: " CLS_PATH "},\n"
             "  {plugin: precision_recall, name: pr2, every: 10, n_real: 200, n_fake: 200, "
             "classifier: " CLS_PATH "},\n"
             "  {plugin: classifier_score, name: cs2, every: 10, n_fake: 200, "
             "classifier: " CLS_PATH "},\n"
             "  {plugin: class_modes, name: cm2, every: 10, n_fake: 200, "
             "classifier: " CLS_PATH "}]\n",
             metrics[0], metrics[1], metrics[2], metrics[3]);
    run_ok(yaml, DIR "/img_all.h5");
    assert_group_same(DIR "/img_all.h5", DIR "/img_base.h5", "/scalars");
    assert_group_same(DIR "/img_all.h5", DIR "/img_base.h5", "/final/generator");
    assert_group_same(DIR "/img_all.h5", DIR "/img_base.h5", "/final/discriminator");
}

/* Stacked data: three images as three channels, classified one channel
 * at a time into 4^3 = 64 modes, 16 c0 + 4 c1 + c2. */
static void test_stacked_class_modes(void **state)
{
    (void)state;
    char yaml[4096];
    int len = snprintf(yaml, sizeof yaml, img_head, "stacked");
    snprintf(yaml + len, sizeof yaml - len,
             "metrics:\n"
             "  - {plugin: class_modes, every: 15, n_fake: 2000, n_real: 600, classifier: "
             CLS_PATH "}\n"
             "  - {plugin: class_modes, name: few, every: 15, n_fake: 2000, n_real: 20, "
             "classifier: " CLS_PATH "}\n");
    const char *f = DIR "/stacked_run.h5";
    run_ok(yaml, f);
    assert_float_equal(
        agon_test_read_double_attr(f, "/metrics/class_modes", "stacked_channels"), 3.0, 0.0);
    assert_float_equal(agon_test_read_double_attr(f, "/metrics/few", "n_real_used"), 20.0, 0.0);
    double modes, few_modes;
    int floored;
    check_class_modes(f, "class_modes", 64, 2000, pred_stacked, NULL, N_STACK, &modes,
                      &floored);
    /* 20 real samples leave most classes out of the reference: the KL
     * then rests on the floor, which the check above recomputes. */
    int64_t order[N_STACK];
    agon_rng rng;
    agon_rng_seed(&rng, 2, "metrics/few");
    agon_test_epoch_order(&rng, N_STACK, order, 20);
    check_class_modes(f, "few", 64, 2000, pred_stacked, order, 20, &few_modes, &floored);
    assert_true(floored > 0);
    /* The data reach (nearly) every mode; a frozen untrained G few. */
    int covered = 0;
    int counts[64] = {0};
    for (int i = 0; i < N_STACK; i++)
        counts[pred_stacked[i]]++;
    for (int c = 0; c < 64; c++)
        covered += counts[c] > 0;
    assert_true(covered >= 60);
    assert_true(modes < covered / 2);
    /* Fakes are drawn afresh at every evaluation, the reference once. */
    static float hist[IMG_EVALS * 64];
    agon_test_read_floats(f, "/metrics/class_modes/tensors/histogram", hist, IMG_EVALS * 64);
    assert_true(memcmp(hist, hist + 64, 64 * sizeof(float)) != 0);
}

/* The dataset's split is recorded; raw features on images need asking. */
static void test_split_and_raw_images(void **state)
{
    (void)state;
    static const char yaml[] =
        "dataset: {plugin: fashion_mnist, split: test, limit: 200}\n"
        "generator: {plugin: mlp, hidden: [16], output_activation: tanh}\n"
        "discriminator: {plugin: mlp, hidden: [16]}\n"
        "loss: {plugin: nonsaturating}\n"
        "train: {steps: 1, batch_size: 16, latent_dim: 4}\n"
        "log: {samples_every: 0, params_every: 0}\n"
        "metrics:\n"
        "  - plugin: frechet\n"
        "    features: raw\n"
        "    n_real: 50\n"
        "    n_fake: 50\n";
    const char *f = DIR "/fm.h5";
    run_ok(yaml, f);
    assert_str_attr(f, "/metrics/frechet", "split", "test");
    assert_str_attr(f, "/metrics/frechet", "feature_extractor", "raw");
    assert_float_equal(agon_test_read_double_attr(f, "/metrics/frechet", "feature_dim"), 784.0,
                       0.0);
    double fd;
    agon_test_read_doubles(f, "/metrics/frechet/fd", &fd, 1);
    assert_true(fd > 0.0);

    char auto_yaml[1024];
    snprintf(auto_yaml, sizeof auto_yaml, "%.*s", (int)(strstr(yaml, "    features") - yaml),
             yaml);
    char msg[1024];
    assert_int_equal(run_yaml(auto_yaml, DIR "/fm_auto.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, DIR "/exp.yaml:8:5: metrics[0]: frechet would compare raw samples "
                             "of shape [1, 28, 28] (784 values), and raw pixels are a poor "
                             "feature space for images; set classifier: PATH (make one with "
                             "`agon classifier train experiments/classifiers/fmnist.yaml`), or "
                             "set features: raw to use the raw values anyway");
}

/* ---- errors ----------------------------------------------------------------------- */

/* Runs a small experiment on dataset `data` with the metric lines
 * `metric` (starting at line 9) and expects the status `code` and the
 * message `want`. */
static void expect_error(const char *data, const char *metric, int code, const char *want)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "seed: 2\n"
             "dataset: %s\n"
             "generator: {plugin: mlp, hidden: [8], output_activation: tanh}\n"
             "discriminator: {plugin: mlp, hidden: [8]}\n"
             "loss: {plugin: nonsaturating}\n"
             "train: {steps: 1, batch_size: 8, latent_dim: 4}\n"
             "log: {samples_every: 0, params_every: 0}\n"
             "metrics:\n"
             "%s",
             data, metric);
    char msg[1024];
    assert_int_equal(run_yaml(yaml, DIR "/err.h5", msg, sizeof msg), code);
    assert_string_equal(msg, want);
}

/* The same for a problem the schema catches when the experiment loads. */
static void expect_load_error(const char *metric, const char *want)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "dataset: {plugin: gaussian_mixture}\n"
             "generator: {plugin: mlp}\n"
             "discriminator: {plugin: mlp}\n"
             "loss: {plugin: nonsaturating}\n"
             "metrics:\n%s",
             metric);
    agon_test_write_file(DIR "/exp.yaml", yaml);
    agon_diag diag;
    agon_diag_init(&diag);
    assert_null(agon_experiment_load(reg, DIR "/exp.yaml", NULL, 0, false, &diag));
    assert_int_equal(diag.count, 1);
    assert_string_equal(diag.messages[0], want);
    agon_diag_fini(&diag);
}

static const char ring_data[] = "{plugin: gaussian_mixture}";
static const char digits_data[] = "{plugin: hdf5, file: " DIR "/digits.h5, dataset: /x, "
                                  "labels: /y}";
static const char stacked_data[] = "{plugin: hdf5, file: " DIR "/stacked.h5, dataset: /x}";

static void test_errors(void **state)
{
    (void)state;
    /* The loader's own line, positioned at the metric's classifier key. */
    agon_error lerr = {0};
    assert_null(agon_classifier_load(DIR "/missing.h5", 10, &lerr));
    char want[2048];
    snprintf(want, sizeof want, DIR "/exp.yaml:10:17: metrics[0].classifier: %s", lerr.message);
    expect_error(digits_data,
                 "  - plugin: frechet\n"
                 "    classifier: " DIR "/missing.h5\n",
                 lerr.code, want);

    expect_error(ring_data,
                 "  - plugin: classifier_score\n"
                 "    classifier: " CLS_PATH "\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:10:17: metrics[0].classifier: the classifier takes samples of "
                     "shape [1, 8, 8] and the dataset's samples have shape [2]; use a "
                     "classifier trained on this dataset's images");
    expect_error(ring_data,
                 "  - plugin: class_modes\n"
                 "    classifier: " CLS_PATH "\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:10:17: metrics[0].classifier: the classifier takes samples of "
                     "shape [1, 8, 8] and the dataset's samples have shape [2]; use a "
                     "classifier trained on this dataset's images (for stacked data, one whose "
                     "images have the size of one channel)");
    /* Stacked data is for class_modes only. */
    expect_error(stacked_data,
                 "  - plugin: frechet\n"
                 "    classifier: " CLS_PATH "\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:10:17: metrics[0].classifier: the classifier takes samples of "
                     "shape [1, 8, 8] and the dataset's samples have shape [3, 8, 8]; use a "
                     "classifier trained on this dataset's images");

    expect_error(digits_data, "  - plugin: classifier_score\n", AGON_ECONFIG,
                 DIR "/exp.yaml:9:5: metrics[0]: classifier_score needs a classifier: set "
                     "classifier: PATH to a file made by `agon classifier train "
                     "experiments/classifiers/fmnist.yaml`");
    expect_error(digits_data, "  - plugin: class_modes\n    n_fake: 100\n", AGON_ECONFIG,
                 DIR "/exp.yaml:9:5: metrics[0]: class_modes needs a classifier: set "
                     "classifier: PATH to a file made by `agon classifier train "
                     "experiments/classifiers/fmnist.yaml`");
    expect_error(stacked_data, "  - plugin: precision_recall\n", AGON_ECONFIG,
                 DIR "/exp.yaml:9:5: metrics[0]: precision_recall would compare raw samples "
                     "of shape [3, 8, 8] (192 values), and raw pixels are a poor feature space "
                     "for images; set classifier: PATH (make one with `agon classifier train "
                     "experiments/classifiers/fmnist.yaml`), or set features: raw to use the "
                     "raw values anyway");
    expect_error(ring_data,
                 "  - plugin: frechet\n"
                 "    features: classifier\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:10:15: metrics[0].features: features: classifier needs "
                     "classifier: PATH, a file made by `agon classifier train "
                     "experiments/classifiers/fmnist.yaml`; set it, or use features: raw");
    expect_error(digits_data,
                 "  - plugin: frechet\n"
                 "    features: raw\n"
                 "    classifier: " CLS_PATH "\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:10:15: metrics[0].features: features: raw does not use the "
                     "classifier '" CLS_PATH "'; remove classifier, or use features: "
                     "classifier");
    expect_error(ring_data,
                 "  - plugin: precision_recall\n"
                 "    n_real: 100\n"
                 "    n_fake: 3\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:9:5: metrics[0]: k = 3 needs more than k real and fake "
                     "samples, and n_real is 100, n_fake 3; lower k or raise the sample "
                     "counts");
    expect_error(ring_data,
                 "  - plugin: classifier_score\n"
                 "    n_fake: 5\n"
                 "    splits: 6\n"
                 "    classifier: " CLS_PATH "\n",
                 AGON_ECONFIG,
                 DIR "/exp.yaml:11:13: metrics[0].splits: 6 splits of 5 samples leave a split "
                     "empty; lower splits or raise n_fake");
    /* A Gaussian fit needs two samples; the bounds are in the schema. */
    expect_load_error("  - plugin: frechet\n    n_fake: 1\n",
                      DIR "/exp.yaml:7:13: metrics[0].n_fake: 1 is out of range [2, 1000000]; use a value from 2 to 1000000");
    expect_load_error("  - plugin: precision_recall\n    k: 0\n",
                      DIR "/exp.yaml:7:8: metrics[0].k: 0 is out of range [1, 1000000]; use a value from 1 to 1000000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_raw_features),
        cmocka_unit_test(test_classifier_metrics),
        cmocka_unit_test(test_image_training_untouched),
        cmocka_unit_test(test_stacked_class_modes),
        cmocka_unit_test(test_split_and_raw_images),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("metrics_features", tests, setup, teardown);
}
