/* The domain classifier (core/classifier.c): training through the hdf5
 * dataset and adam optimizer plugins on a synthetic 4-class image set the
 * test writes (a bright quadrant per class, plus noise), the saved file
 * read back (layout, accuracy reproduced by agon_classifier_run, softmax
 * rows, features bit for bit across loads, SHA-256), the softmax
 * cross-entropy gradient against finite differences, error lines word for
 * word, and no allocation in agon_classifier_run. */
#include "test_h5.h"

#include <hdf5.h>
#include <math.h>

#include "agon/agon.h"
#include "agon/classifier.h"
#include "alloc_count.h"
#include "classifier_int.h"

#define DIR "tmp_classifier"
#define CLS_PATH DIR "/cls.h5"
#define K 4
#define SIDE 8
#define PLANE (SIDE * SIDE)
#define N_TRAIN 400
#define N_TEST 200
#define FEATURES 16
#define EPOCHS 4

static float train_x[N_TRAIN * PLANE], test_x[N_TEST * PLANE];
static int32_t train_y[N_TRAIN], test_y[N_TEST];
static agon_registry *reg;
static agon_classifier_report report;
static int progress_lines;

/* Class c lights quadrant c (value 1 on a background of -1), and every
 * pixel gets N(0, 0.4^2) noise. */
static void make_images(agon_rng *rng, float *x, int32_t *y, int n)
{
    for (int i = 0; i < n; i++) {
        int c = i % K;
        y[i] = c;
        for (int r = 0; r < SIDE; r++) {
            for (int col = 0; col < SIDE; col++) {
                int q = (r >= SIDE / 2) * 2 + (col >= SIDE / 2);
                x[i * PLANE + r * SIDE + col] =
                    (q == c ? 1.0f : -1.0f) + 0.4f * (float)agon_rng_normal(rng);
            }
        }
    }
}

static void write_array(hid_t file, const char *name, hid_t type, int rank,
                        const hsize_t *dims, const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

static void write_data(void)
{
    agon_rng rng;
    agon_rng_seed(&rng, 9, "test data");
    make_images(&rng, train_x, train_y, N_TRAIN);
    make_images(&rng, test_x, test_y, N_TEST);
    hid_t f = H5Fcreate(DIR "/quadrants.h5", H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hsize_t xd[4] = {N_TRAIN, 1, SIDE, SIDE}, yd[1] = {N_TRAIN};
    write_array(f, "x", H5T_NATIVE_FLOAT, 4, xd, train_x);
    write_array(f, "y", H5T_NATIVE_INT32, 1, yd, train_y);
    xd[0] = yd[0] = N_TEST;
    write_array(f, "x_test", H5T_NATIVE_FLOAT, 4, xd, test_x);
    write_array(f, "y_test", H5T_NATIVE_INT32, 1, yd, test_y);
    H5Fclose(f);
}

static const char cls_yaml[] =
    "seed: 5\n"
    "dataset: {plugin: hdf5, file: " DIR "/quadrants.h5, dataset: /x, labels: /y}\n"
    "test_dataset: {plugin: hdf5, file: " DIR "/quadrants.h5, dataset: /x_test, labels: "
    "/y_test}\n"
    "model: {c1: 8, c2: 16, features: 16}\n"
    "train: {epochs: 4, batch_size: 32}\n"
    "optimizer: {plugin: adam, lr: 0.003}\n"
    "output: " CLS_PATH "\n";

static void count_progress(const char *line, void *user)
{
    (void)user;
    char want[32];
    snprintf(want, sizeof want, "epoch %d/%d  train loss ", progress_lines + 1, EPOCHS);
    if (strncmp(line, want, strlen(want)) != 0 || !strstr(line, "  test accuracy "))
        fail_msg("progress line '%s' does not start with '%s'", line, want);
    progress_lines++;
}

static void load_plugin(const char *name)
{
    char path[1024];
    agon_error err = {0};
    snprintf(path, sizeof path, "%s/%s.so", AGON_TEST_PLUGIN_DIR, name);
    if (agon_registry_load_file(reg, path, &err) != 0)
        fail_msg("%s", err.message);
}

static int setup(void **state)
{
    (void)state;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    assert_int_equal(system("rm -rf " DIR " && mkdir -p " DIR), 0);
    write_data();
    agon_error err = {0};
    reg = agon_registry_create(&err);
    assert_non_null(reg);
    load_plugin("hdf5_data");
    load_plugin("adam");

    agon_test_write_file(DIR "/cls.yaml", cls_yaml);
    agon_test_train_classifier(reg, DIR "/cls.yaml", false, count_progress, &report);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    agon_registry_destroy(reg);
    return 0;
}

/* ---- the trained classifier ------------------------------------------------------ */

static void test_report(void **state)
{
    (void)state;
    assert_int_equal(progress_lines, EPOCHS);
    assert_int_equal(report.epochs, EPOCHS);
    assert_int_equal(report.train_samples, N_TRAIN);
    assert_int_equal(report.test_samples, N_TEST);
    assert_string_equal(report.output_path, CLS_PATH);
    assert_true(report.seconds > 0.0);
    print_message("quadrants: test accuracy %.4f in %.2f s\n", report.test_accuracy,
                  report.seconds);
    assert_true(report.test_accuracy >= 0.95);
}

static agon_classifier *load_ok(const char *path, int64_t max_batch)
{
    agon_error err = {0};
    agon_classifier *cls = agon_classifier_load(path, max_batch, &err);
    if (!cls)
        fail_msg("%s", err.message);
    return cls;
}

static agon_tensor test_batch(void)
{
    int64_t dims[4] = {N_TEST, 1, SIDE, SIDE};
    agon_tensor t = {test_x, agon_shape_make(4, dims)};
    return t;
}

static void test_load_and_run(void **state)
{
    (void)state;
    agon_classifier *cls = load_ok(CLS_PATH, 48);
    assert_string_equal(agon_classifier_path(cls), CLS_PATH);
    const agon_shape *in = agon_classifier_input_shape(cls);
    assert_int_equal(in->ndim, 3);
    assert_int_equal(in->dim[0], 1);
    assert_int_equal(in->dim[1], SIDE);
    assert_int_equal(in->dim[2], SIDE);
    assert_int_equal(agon_classifier_n_classes(cls), K);
    assert_int_equal(agon_classifier_feature_dim(cls), FEATURES);
    assert_true(agon_classifier_test_accuracy(cls) == report.test_accuracy);

    /* The hash is that of the file's bytes. */
    char out[256];
    assert_int_equal(agon_test_run("sha256sum " CLS_PATH, out, sizeof out, NULL, 0), 0);
    assert_int_equal(strlen(agon_classifier_sha256(cls)), 64);
    assert_memory_equal(out, agon_classifier_sha256(cls), 64);

    /* The saved accuracy is reproduced on the test images, in chunks of
     * 48 (the file's test pass used other chunks; eval mode does not care). */
    static float probs[N_TEST * K], feat[N_TEST * FEATURES], feat2[N_TEST * FEATURES];
    agon_tensor x = test_batch();
    agon_error err = {0};
    assert_int_equal(agon_classifier_run(cls, &x, feat, probs, &err), 0);
    int correct = 0;
    for (int i = 0; i < N_TEST; i++) {
        double sum = 0.0;
        int best = 0;
        for (int c = 0; c < K; c++) {
            float p = probs[i * K + c];
            assert_true(p >= 0.0f && p <= 1.0f);
            sum += p;
            best = p > probs[i * K + best] ? c : best;
        }
        assert_float_equal(sum, 1.0, 1e-6);
        correct += best == test_y[i];
    }
    assert_true((double)correct / N_TEST == report.test_accuracy);

    /* Features alone (no probs) are the same, and a second load gives the
     * same bits. */
    agon_classifier *again = load_ok(CLS_PATH, 48);
    memset(feat2, 0, sizeof feat2);
    assert_int_equal(agon_classifier_run(again, &x, feat2, NULL, &err), 0);
    assert_memory_equal(feat, feat2, sizeof feat);
    /* Features are the output of a leaky ReLU after batch norm: some
     * negative (scaled by 0.2), not all equal. */
    bool negative = false, varied = false;
    for (int i = 0; i < N_TEST * FEATURES; i++) {
        negative = negative || feat[i] < 0.0f;
        varied = varied || feat[i] != feat[0];
    }
    assert_true(negative && varied);
    agon_classifier_destroy(again);
    agon_classifier_destroy(cls);
}

static hid_t open_file(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* A number among the classifier file's root attributes. */
static double root_number(const char *name)
{
    return agon_test_read_number_attr(CLS_PATH, "/", name);
}

static void expect_dims(hid_t f, const char *name, int rank, const hsize_t *want)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        fail_msg("no dataset %s", name);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    assert_int_equal(H5Sget_simple_extent_ndims(sp), rank);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < rank; i++)
        assert_int_equal(dims[i], want[i]);
    H5Sclose(sp);
    H5Dclose(ds);
}

static void test_file_layout(void **state)
{
    (void)state;
    hid_t f = open_file(CLS_PATH);
    char s[64];
    agon_test_read_string_attr(CLS_PATH, "/", "kind", s, sizeof s);
    assert_string_equal(s, "classifier");
    agon_test_read_string_attr(CLS_PATH, "/", "status", s, sizeof s);
    assert_string_equal(s, "completed");
    struct {
        const char *name;
        double value;
    } numbers[] = {
        {"classifier_format", 1}, {"input_channels", 1}, {"input_height", SIDE},
        {"input_width", SIDE},    {"n_classes", K},      {"c1", 8},
        {"c2", 16},               {"features", FEATURES}, {"slope", 0.2},
        {"epochs", EPOCHS},       {"seed", 5},           {"train_samples", N_TRAIN},
        {"test_samples", N_TEST}, {"bn_eps", 1e-5},      {"batch_size", 32},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (root_number(numbers[i].name) != numbers[i].value)
            fail_msg("attribute %s is %g, expected %g", numbers[i].name,
                     root_number(numbers[i].name), numbers[i].value);
    }
    assert_true(root_number("test_accuracy") == report.test_accuracy);

    /* Parameters by their index in the whole network, and the running
     * statistics of both batch norms. */
    const hsize_t w0[4] = {8, 1, 4, 4}, b0[1] = {8}, w2[4] = {16, 8, 4, 4}, c16[1] = {16};
    const hsize_t w6[2] = {FEATURES, 16 * 2 * 2}, f1[1] = {FEATURES}, w9[2] = {K, FEATURES};
    const hsize_t b9[1] = {K};
    expect_dims(f, "/params/0.weight", 4, w0);
    expect_dims(f, "/params/0.bias", 1, b0);
    expect_dims(f, "/params/2.weight", 4, w2);
    expect_dims(f, "/params/3.weight", 1, c16);
    expect_dims(f, "/params/3.running_var", 1, c16);
    expect_dims(f, "/params/6.weight", 2, w6);
    expect_dims(f, "/params/7.running_mean", 1, f1);
    expect_dims(f, "/params/9.weight", 2, w9);
    expect_dims(f, "/params/9.bias", 1, b9);
    assert_true(H5Lexists(f, "/params/2.bias", H5P_DEFAULT) == 0);
    assert_true(H5Lexists(f, "/params/6.bias", H5P_DEFAULT) == 0);

    /* The resolved config, and one history row per epoch. */
    hid_t ds = H5Dopen2(f, "/config", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *config = NULL;
    assert_true(H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &config) >= 0);
    assert_non_null(strstr(config, "slope: 0.2"));
    assert_non_null(strstr(config, "threads: 1"));
    H5free_memory(config);
    H5Tclose(mt);
    H5Dclose(ds);
    const hsize_t epochs[1] = {EPOCHS};
    expect_dims(f, "/history/test_accuracy", 1, epochs);
    H5Fclose(f);
}

static void test_output_not_replaced(void **state)
{
    (void)state;
    agon_diag diag;
    agon_diag_init(&diag);
    agon_error err = {0};
    agon_classifier_report r;
    assert_int_equal(agon_classifier_train_file(reg, DIR "/cls.yaml", NULL, 0, NULL, false,
                                                NULL, NULL, &r, &diag, &err),
                     AGON_EIO);
    assert_string_equal(err.message, CLS_PATH ": already exists; choose another output path "
                                              "(-o) or pass --overwrite to replace it");
    agon_diag_fini(&diag);
}

/* ---- the loss -------------------------------------------------------------------- */

typedef struct xent_ctx {
    const int32_t *labels;
    int64_t n, k;
} xent_ctx;

static double xent_value(void *ctx, float *x, size_t n)
{
    (void)n;
    xent_ctx *c = ctx;
    return agon__softmax_xent(x, c->labels, c->n, c->k, NULL);
}

static void test_softmax_xent(void **state)
{
    (void)state;
    /* Two equal logits: log 2, gradient (1/2 - 1, 1/2). */
    float two[2] = {0.3f, 0.3f}, g2[2];
    int32_t zero = 0;
    assert_float_equal(agon__softmax_xent(two, &zero, 1, 2, g2), log(2.0), 1e-12);
    assert_float_equal(g2[0], -0.5, 1e-7);
    assert_float_equal(g2[1], 0.5, 1e-7);

    /* Rows with large logits stay finite (the maximum is subtracted). */
    float x[3 * 5] = {0.1f, -0.4f, 2.0f,  0.7f, -1.3f,  /* */
                      50.f, 48.f,  -30.f, 49.f, 50.5f,  /* */
                      -2.f, -2.5f, -1.0f, -3.f, -2.2f};
    int32_t labels[3] = {2, 3, 0};
    float g[15];
    xent_ctx ctx = {labels, 3, 5};
    double l = agon__softmax_xent(x, labels, 3, 5, g);
    /* Row 1 by hand: log-sum-exp minus the label's logit. */
    double lse1 = 0.0;
    for (int j = 0; j < 5; j++)
        lse1 += exp(x[5 + j] - 50.5);
    lse1 = 50.5 + log(lse1);
    double lse0 = 0.0, lse2 = 0.0;
    for (int j = 0; j < 5; j++) {
        lse0 += exp(x[j]);
        lse2 += exp(x[10 + j]);
    }
    double want = ((log(lse0) - x[2]) + (lse1 - x[8]) + (log(lse2) - x[10])) / 3.0;
    assert_float_equal(l, want, 1e-9);
    for (int i = 0; i < 3; i++) {
        double row = 0.0;
        for (int j = 0; j < 5; j++)
            row += g[i * 5 + j];
        assert_float_equal(row, 0.0, 1e-7);
    }
    agon_test_check_grad(xent_value, &ctx, x, 15, g, 1e-2, 1e-5, 1e-3);
}

/* ---- errors ---------------------------------------------------------------------- */

static void expect_load_error(const char *path, int code, const char *want)
{
    agon_error err = {0};
    assert_null(agon_classifier_load(path, 8, &err));
    assert_int_equal(err.code, code);
    assert_string_equal(err.message, want);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_error(DIR "/missing.h5", AGON_EIO,
                      DIR "/missing.h5: classifier file not found; train one with: agon "
                          "classifier train experiments/classifiers/missing.yaml -o " DIR
                          "/missing.h5");
    /* The standard place names the standard training file alone. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(DIR), 0);
    expect_load_error("classifiers/fmnist.h5", AGON_EIO,
                      "classifiers/fmnist.h5: classifier file not found; train one with: agon "
                      "classifier train experiments/classifiers/fmnist.yaml");
    assert_int_equal(chdir(cwd), 0);

    agon_test_write_file(DIR "/text.h5", "not an HDF5 file\n");
    expect_load_error(DIR "/text.h5", AGON_EDATA,
                      DIR "/text.h5: not an HDF5 file; give a file written by agon classifier "
                          "train");
    expect_load_error(DIR, AGON_EIO,
                      DIR ": not a regular file; give the path of a classifier file (.h5)");

    /* An HDF5 file of another kind: the training data. */
    expect_load_error(DIR "/quadrants.h5", AGON_EDATA,
                      DIR "/quadrants.h5: not a classifier file (it has no root attribute "
                          "'kind'); give a file written by agon classifier train");

    /* A classifier with a parameter missing, or of the wrong shape. */
    copy_file(CLS_PATH, DIR "/broken.h5");
    hid_t f = H5Fopen(DIR "/broken.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, "/params/9.bias", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    expect_load_error(DIR "/broken.h5", AGON_EDATA,
                      DIR "/broken.h5: classifier file has no dataset /params/9.bias; the file is "
                          "damaged or incomplete; train the classifier again");
    copy_file(CLS_PATH, DIR "/broken.h5");
    f = H5Fopen(DIR "/broken.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "/params/9.bias", H5P_DEFAULT) >= 0);
    hsize_t five[1] = {5};
    float zeros[5] = {0};
    write_array(f, "/params/9.bias", H5T_NATIVE_FLOAT, 1, five, zeros);
    assert_true(H5Adelete(f, "c2") >= 0);
    H5Fclose(f);
    expect_load_error(DIR "/broken.h5", AGON_EDATA,
                      DIR "/broken.h5: classifier file has no root attribute 'c2'; the file is "
                          "damaged or incomplete; train the classifier again");
    copy_file(CLS_PATH, DIR "/broken.h5");
    f = H5Fopen(DIR "/broken.h5", H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "/params/9.bias", H5P_DEFAULT) >= 0);
    write_array(f, "/params/9.bias", H5T_NATIVE_FLOAT, 1, five, zeros);
    H5Fclose(f);
    expect_load_error(DIR "/broken.h5", AGON_EDATA,
                      DIR "/broken.h5: dataset /params/9.bias has shape [5], but the network in "
                          "the file's attributes needs [4]; the file is damaged or incomplete; "
                          "train the classifier again");
}

static void test_run_shape_mismatch(void **state)
{
    (void)state;
    agon_classifier *cls = load_ok(CLS_PATH, 8);
    static float buf[2 * 3 * PLANE];
    int64_t dims[4] = {2, 3, SIDE, SIDE};
    agon_tensor x = {buf, agon_shape_make(4, dims)};
    agon_error err = {0};
    float probs[2 * K];
    assert_int_equal(agon_classifier_run(cls, &x, NULL, probs, &err), AGON_EDATA);
    assert_string_equal(err.message, CLS_PATH ": the classifier takes images of shape [1, 8, 8] "
                                              "(a batch [n, 1, 8, 8]), got a batch of shape "
                                              "[2, 3, 8, 8]");
    int64_t flat[2] = {2, PLANE};
    agon_tensor y = {buf, agon_shape_make(2, flat)};
    agon_error err2 = {0};
    assert_int_equal(agon_classifier_run(cls, &y, NULL, probs, &err2), AGON_EDATA);
    assert_string_equal(err2.message, CLS_PATH ": the classifier takes images of shape [1, 8, 8] "
                                               "(a batch [n, 1, 8, 8]), got a batch of shape "
                                               "[2, 64]");
    agon_classifier_destroy(cls);
}

/* Runs a training file `yaml` (written to DIR/bad.yaml) that fails
 * validation; expects exactly the lines `want` (joined by newlines). */
static void expect_config_error(const char *yaml, const char *const *sets, size_t n_sets,
                                const char *want)
{
    agon_test_write_file(DIR "/bad.yaml", yaml);
    agon_diag diag;
    agon_diag_init(&diag);
    agon_error err = {0};
    int rc = agon_classifier_train_file(reg, DIR "/bad.yaml", sets, n_sets, DIR "/bad.h5",
                                        false, NULL, NULL, NULL, &diag, &err);
    assert_int_equal(rc, AGON_ECONFIG);
    assert_int_equal(err.code, AGON_ECONFIG);
    char got[4096] = "";
    for (size_t i = 0; i < diag.count; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "\n" : "",
                 diag.messages[i]);
    assert_string_equal(got, want);
    agon_diag_fini(&diag);
    struct stat st;
    assert_int_not_equal(stat(DIR "/bad.h5", &st), 0);
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_config_error("seed: 1\n"
                        "dataset: {plugin: hdf5, file: x.h5}\n"
                        "modle: {c1: 4}\n"
                        "train:\n"
                        "  epohcs: 3\n"
                        "  batch_size: many\n",
                        NULL, 0,
                        DIR "/bad.yaml:3:8: modle: unknown top-level key; did you mean 'model'?\n"
                        DIR "/bad.yaml:5:3: train.epohcs: unknown key 'epohcs' for train; did "
                            "you mean 'epochs'?\n"
                        DIR "/bad.yaml:6:15: train.batch_size: expected an integer, got 'many'\n"
                        DIR "/bad.yaml:1:1: missing section 'test_dataset': dataset 'hdf5' has "
                            "no 'split' key, so the test data cannot be derived from it; add "
                            "test_dataset (a map with 'plugin: NAME' and the held-out data)");
    static const char *const sets[] = {"train.threads=2", "dataset.plugin=hdf"};
    expect_config_error(cls_yaml, sets, 2,
                        "--set:2:1: dataset.plugin: unknown dataset 'hdf'; did you mean "
                        "'hdf5'?");

    /* What only a plugin can check comes as one line in err. */
    static const char *const lr[] = {"optimizer.lr=0"};
    agon_diag diag;
    agon_diag_init(&diag);
    agon_error err = {0};
    assert_int_equal(agon_classifier_train_file(reg, DIR "/cls.yaml", lr, 1, DIR "/bad.h5",
                                                false, NULL, NULL, NULL, &diag, &err),
                     AGON_ECONFIG);
    assert_int_equal(diag.count, 0);
    assert_string_equal(err.message, "--set:1:1: optimizer.lr: must be a finite number greater "
                                     "than 0, got 0; use a small positive learning rate such "
                                     "as 0.0002");
    agon_diag_fini(&diag);
    struct stat st;
    assert_int_not_equal(stat(DIR "/bad.h5", &st), 0);
}

/* ---- allocation ------------------------------------------------------------------ */

static void test_run_allocates_nothing(void **state)
{
    (void)state;
    long before = agon_test_allocs;
    agon_classifier *cls = load_ok(CLS_PATH, 64);
    bool counting = AGON_TEST_COUNTS_ALLOCS && agon_test_allocs > before;
    static float probs[N_TEST * K], feat[N_TEST * FEATURES];
    agon_tensor x = test_batch();
    agon_error err = {0};
    assert_int_equal(agon_classifier_run(cls, &x, feat, probs, &err), 0);
    before = agon_test_allocs;
    long blas_before = agon_test_blas_allocs;
    for (int k = 0; k < 5; k++) {
        assert_int_equal(agon_classifier_run(cls, &x, feat, probs, &err), 0);
        agon_tensor part = agon_tensor_rows(&x, 3, 70);
        assert_int_equal(agon_classifier_run(cls, &part, NULL, probs, &err), 0);
        assert_int_equal(agon_classifier_run(cls, &part, feat, NULL, &err), 0);
    }
    if (counting)
        assert_int_equal(agon_test_allocs - before, 0);
    if (counting && agon_test_blas_must_not_allocate())
        assert_int_equal(agon_test_blas_allocs - blas_before, 0);
    agon_classifier_destroy(cls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_load_and_run),
        cmocka_unit_test(test_file_layout),
        cmocka_unit_test(test_output_not_replaced),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_run_shape_mismatch),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_run_allocates_nothing),
    };
    return cmocka_run_group_tests_name("classifier", tests, setup, teardown);
}
