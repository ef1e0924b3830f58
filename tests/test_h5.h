/* tests/test_h5.h — helpers of the tests that run experiments or train
 * classifiers through the library and read back the HDF5 files they write
 * (header-only, like test_util.h).  Every reader fails the test, naming
 * the file and the object, when what it reads is missing. */
#ifndef AGON_TEST_H5_H
#define AGON_TEST_H5_H

#include <math.h>
#include <signal.h>
#include <stdbool.h>

#include <hdf5.h>

#include "agon/agon.h"
#include "agon/classifier.h"
#include "test_util.h"

/* A registry with the built-in plugins, and the test probes when `probes`. */
static AGON_TEST_UNUSED agon_registry *agon_test_registry(bool probes)
{
    agon_error err = {0};
    agon_registry *reg = agon_registry_create(&err);
    assert_non_null(reg);
    agon_diag diag;
    agon_diag_init(&diag);
    assert_int_equal(agon_registry_load_dir(reg, AGON_TEST_PLUGIN_DIR, true, &diag), 0);
    if (probes)
        assert_int_equal(agon_registry_load_dir(reg, AGON_TEST_PROBE_DIR, true, &diag), 0);
    agon_diag_fini(&diag);
    return reg;
}

/* Loads the experiment file `path` with the overrides (the test fails,
 * printing every diagnostic, when it does not load) and runs it into
 * `out`, replacing it, without progress output.  `stop` and `result` may
 * be NULL.  Returns the run's status, with its error in *err. */
static AGON_TEST_UNUSED int agon_test_run_experiment(agon_registry *reg, const char *path,
                                                     const char *const *sets, size_t n_sets,
                                                     const char *out,
                                                     volatile sig_atomic_t *stop,
                                                     agon_run_result *result, agon_error *err)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(reg, path, sets, n_sets, false, &diag);
    for (size_t i = 0; i < diag.count; i++)
        print_error("%s\n", diag.messages[i]);
    if (!exp)
        fail_msg("%s: experiment did not load", path);
    agon_diag_fini(&diag);
    agon_run_options opts = {.output_path = out, .progress = AGON_PROGRESS_NONE,
                             .stop_flag = stop, .overwrite = true};
    int rc = agon_experiment_run(exp, &opts, result, err);
    agon_experiment_destroy(exp);
    return rc;
}

/* Trains the classifier of the training file `path` into its `output`;
 * the test fails when training does. */
static AGON_TEST_UNUSED void agon_test_train_classifier(
    agon_registry *reg, const char *path, bool overwrite,
    void (*progress)(const char *line, void *user), agon_classifier_report *report)
{
    agon_error err = {0};
    agon_diag diag;
    agon_diag_init(&diag);
    int rc = agon_classifier_train_file(reg, path, NULL, 0, NULL, overwrite, progress, NULL,
                                        report, &diag, &err);
    if (rc != 0)
        fail_msg("classifier training: %s", diag.count ? diag.messages[0] : err.message);
    agon_diag_fini(&diag);
}

/* Reads the whole dataset `path` of `file` as mem_type into out (1 to cap
 * values); returns the count. */
static AGON_TEST_UNUSED size_t agon_test_read_dataset(const char *file, const char *path,
                                                      hid_t mem_type, void *out, size_t cap)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        fail_msg("%s: cannot open the file", file);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        fail_msg("%s: no dataset %s", file, path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    assert_true(n > 0 && (size_t)n <= cap);
    assert_true(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (size_t)n;
}

static AGON_TEST_UNUSED size_t agon_test_read_floats(const char *file, const char *path,
                                                     float *out, size_t cap)
{
    return agon_test_read_dataset(file, path, H5T_NATIVE_FLOAT, out, cap);
}

static AGON_TEST_UNUSED size_t agon_test_read_doubles(const char *file, const char *path,
                                                      double *out, size_t cap)
{
    return agon_test_read_dataset(file, path, H5T_NATIVE_DOUBLE, out, cap);
}

static AGON_TEST_UNUSED size_t agon_test_read_ints(const char *file, const char *path,
                                                   int64_t *out, size_t cap)
{
    return agon_test_read_dataset(file, path, H5T_NATIVE_INT64, out, cap);
}

/* Reads attribute `name` of the object `obj` of `file` as mem_type into
 * out, after checking that its class is want_class (H5T_NO_CLASS: any). */
static AGON_TEST_UNUSED void agon_test_read_attr(const char *file, const char *obj,
                                                 const char *name, H5T_class_t want_class,
                                                 hid_t mem_type, void *out)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        fail_msg("%s: cannot open the file", file);
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        fail_msg("%s: %s has no attribute %s", file, obj, name);
    hid_t t = H5Aget_type(a);
    if (want_class != H5T_NO_CLASS)
        assert_int_equal(H5Tget_class(t), want_class);
    /* The log's contract: strings are variable-length. */
    if (want_class == H5T_STRING)
        assert_true(H5Tis_variable_str(t) > 0);
    assert_true(H5Aread(a, mem_type, out) >= 0);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* A floating-point attribute. */
static AGON_TEST_UNUSED double agon_test_read_double_attr(const char *file, const char *obj,
                                                          const char *name)
{
    double v = NAN;
    agon_test_read_attr(file, obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, &v);
    return v;
}

/* A numeric attribute of any type, as double. */
static AGON_TEST_UNUSED double agon_test_read_number_attr(const char *file, const char *obj,
                                                          const char *name)
{
    double v = NAN;
    agon_test_read_attr(file, obj, name, H5T_NO_CLASS, H5T_NATIVE_DOUBLE, &v);
    return v;
}

/* An integer attribute. */
static AGON_TEST_UNUSED int64_t agon_test_read_int_attr(const char *file, const char *obj,
                                                        const char *name)
{
    int64_t v = 0;
    agon_test_read_attr(file, obj, name, H5T_INTEGER, H5T_NATIVE_INT64, &v);
    return v;
}

/* A variable-length string attribute, into buf (cut to cap - 1 bytes). */
static AGON_TEST_UNUSED void agon_test_read_string_attr(const char *file, const char *obj,
                                                        const char *name, char *buf, size_t cap)
{
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5T_CSET_UTF8);
    char *s = NULL;
    agon_test_read_attr(file, obj, name, H5T_STRING, mem, &s);
    snprintf(buf, cap, "%s", s ? s : "");
    H5free_memory(s);
    H5Tclose(mem);
}

#endif /* AGON_TEST_H5_H */
