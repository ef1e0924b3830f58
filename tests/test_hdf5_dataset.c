/* The hdf5 dataset plugin, loaded from the built hdf5_data.so, on small
 * files the test writes with the HDF5 C API: values and shapes read back
 * (float32, float64, uint8 with its [-1, 1] scaling, int16, 1-D data,
 * nested paths), labels and n_classes, every error word for word with
 * nothing printed to stderr, shuffled epochs, and no allocation in
 * next_batch. */
#include "test_util.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>

#include <hdf5.h>

#include "agon/plugin.h"
#include "alloc_count.h"

static void *plugin_handle;
static const agon_dataset_vtable *vt;
static const agon_param_spec *params;
static const char *dir;

static int setup(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/hdf5_data.so", AGON_TEST_PLUGIN_DIR);
    plugin_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!plugin_handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    void *sym = dlsym(plugin_handle, AGON_PLUGIN_ENTRY_NAME);
    if (!sym)
        return -1;
    const agon_plugin_descriptor *(*entry)(void);
    memcpy(&entry, &sym, sizeof entry);
    const agon_plugin_descriptor *desc = entry();
    if (desc->abi_version != AGON_ABI_VERSION || desc->n_components != 1 ||
        desc->components[0].kind != AGON_KIND_DATASET ||
        strcmp(desc->components[0].name, "hdf5") != 0)
        return -1;
    vt = desc->components[0].vtable;
    params = desc->components[0].params;
    dir = agon_test_tmpdir("h5ds");
    return vt->struct_size == sizeof(agon_dataset_vtable) ? 0 : -1;
}

static int teardown(void **state)
{
    dlclose(plugin_handle);
    return 0;
}

/* ---- writing HDF5 files --------------------------------------------------- */

static hid_t h5_create(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* Writes `data` (in memory type `mem`) as dataset `path` of file type
 * `file_type` and shape dims[0..rank); rank 0 is a scalar.  Intermediate
 * groups are created. */
static void h5_put(hid_t f, const char *path, hid_t file_type, hid_t mem, int rank,
                   const hsize_t *dims, const void *data)
{
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(f, path, file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    if (data)
        assert_true(H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
}

static void h5_put_float(hid_t f, const char *path, int rank, const hsize_t *dims,
                         const float *data)
{
    h5_put(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, dims, data);
}

static void h5_put_labels(hid_t f, const char *path, int rank, const hsize_t *dims,
                          const int32_t *data)
{
    h5_put(f, path, H5T_STD_I32LE, H5T_NATIVE_INT32, rank, dims, data);
}

/* ---- driving the plugin -------------------------------------------------- */

typedef struct h5_fixture {
    agon_config *cfg;
    void *state;
    agon_dataset_info info;
    agon_error err;
    char stderr_text[4096];
} h5_fixture;

/* Runs create on `dataset:\n  plugin: hdf5\n` + `body` after the host's
 * schema step (unless `raw`), with stderr captured into the fixture. */
static int h5_open_ex(h5_fixture *f, const char *body, bool raw)
{
    static const char *const host_keys[] = {"plugin", NULL};
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "dataset:\n  plugin: hdf5\n%s", body);
    agon_diag diag;
    agon_diag_init(&diag);
    memset(f, 0, sizeof *f);
    f->cfg = agon_config_parse(yaml, strlen(yaml), "h5.yaml", &diag);
    if (!f->cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *section = agon_node_get(agon_config_root(f->cfg), "dataset");
    assert_non_null(section);
    if (!raw && agon_schema_apply(f->cfg, section, params, host_keys, "dataset 'hdf5'",
                                  &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);

    fflush(stderr);
    int saved = dup(2);
    int fd = open("h5ds_stderr.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = vt->create(section, &f->state, &f->info, &f->err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = agon_test_read_file("h5ds_stderr.txt");
    snprintf(f->stderr_text, sizeof f->stderr_text, "%s", text ? text : "");
    free(text);
    return rc;
}

static int h5_open(h5_fixture *f, const char *body)
{
    int rc = h5_open_ex(f, body, false);
    if (rc != 0)
        fail_msg("create failed: %s", f->err.message);
    return rc;
}

static void h5_close(h5_fixture *f)
{
    vt->destroy(f->state);
    agon_config_destroy(f->cfg);
}

static void expect_error_ex(const char *body, bool raw, int code, const char *message)
{
    h5_fixture f;
    assert_int_equal(h5_open_ex(&f, body, raw), code);
    assert_null(f.state);
    assert_string_equal(f.err.message, message);
    /* HDF5's own error stack printing stays off. */
    assert_string_equal(f.stderr_text, "");
    agon_config_destroy(f.cfg);
}

static void expect_error(const char *body, int code, const char *message)
{
    expect_error_ex(body, false, code, message);
}

/* Draws n samples into a malloc'ed buffer (and labels when asked). */
static float *draw(h5_fixture *f, agon_rng *rng, int64_t n, int32_t *labels)
{
    int64_t numel = agon_shape_numel(&f->info.sample_shape);
    float *x = malloc((size_t)(n * numel) * sizeof *x);
    assert_non_null(x);
    agon_tensor t = {x, agon_shape_batched(n, &f->info.sample_shape)};
    agon_error err = {0};
    assert_int_equal(vt->next_batch(f->state, rng, &t, labels, &err), 0);
    return x;
}

static void assert_shape(const agon_shape *s, int ndim, const int64_t *dims)
{
    assert_int_equal(s->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(s->dim[i], dims[i]);
}

/* ---- tests --------------------------------------------------------------- */

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(params, &err), 0);
}

/* Five 2-D points (i/2, 10 + i/2) with labels {2, 0, 4, 2, 1}. */
static void write_points(const char *name)
{
    float x[10];
    int32_t y[5] = {2, 0, 4, 2, 1};
    for (int i = 0; i < 5; i++) {
        x[2 * i] = 0.5f * (float)i;
        x[2 * i + 1] = 10.0f + 0.5f * (float)i;
    }
    hid_t f = h5_create(name);
    hsize_t xd[2] = {5, 2}, yd[1] = {5};
    h5_put_float(f, "/x", 2, xd, x);
    h5_put_labels(f, "/y", 1, yd, y);
    H5Fclose(f);
}

static void test_float_with_labels(void **state)
{
    write_points("points.h5");
    h5_fixture f;
    h5_open(&f, "  file: tmp_h5ds/points.h5\n  labels: /y\n");
    static const int64_t two[1] = {2};
    assert_shape(&f.info.sample_shape, 1, two);
    assert_int_equal(f.info.size, 5);
    assert_int_equal(f.info.n_classes, 5);
    assert_int_equal(f.info.n_modes, 0);
    assert_null(f.info.bounds_lo);
    assert_null(f.info.density);
    assert_string_equal(f.stderr_text, "");

    static const int32_t want_labels[5] = {2, 0, 4, 2, 1};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "data");
    int32_t labels[5];
    float *x = draw(&f, &rng, 5, labels);
    bool seen[5] = {false};
    for (int k = 0; k < 5; k++) {
        int i = (int)(x[2 * k] * 2.0f);
        assert_true(i >= 0 && i < 5);
        assert_false(seen[i]);
        seen[i] = true;
        assert_true(x[2 * k] == 0.5f * (float)i);
        assert_true(x[2 * k + 1] == 10.0f + 0.5f * (float)i);
        assert_int_equal(labels[k], want_labels[i]);
    }
    free(x);
    h5_close(&f);

    /* n_classes given explicitly; no labels key: no classes. */
    h5_open(&f, "  file: tmp_h5ds/points.h5\n  labels: y\n  n_classes: 7\n");
    assert_int_equal(f.info.n_classes, 7);
    h5_close(&f);
    h5_open(&f, "  file: tmp_h5ds/points.h5\n");
    assert_int_equal(f.info.n_classes, 0);
    int32_t untouched[2] = {-5, -5};
    x = draw(&f, &rng, 2, untouched);
    assert_int_equal(untouched[0], -5);
    assert_int_equal(untouched[1], -5);
    free(x);
    h5_close(&f);
}

/* uint8 images [4, 1, 3, 3]: pixel p of image i is (60 i + p) mod 256
 * except image 0's first and last pixels, 0 and 255. */
static uint8_t image_pixel(int i, int p)
{
    if (i == 0 && p == 0)
        return 0;
    if (i == 0 && p == 8)
        return 255;
    return (uint8_t)((60 * i + p) % 256);
}

static void test_uint8_scaling(void **state)
{
    uint8_t img[4 * 9];
    for (int i = 0; i < 4; i++)
        for (int p = 0; p < 9; p++)
            img[i * 9 + p] = image_pixel(i, p);
    hid_t h = h5_create("images.h5");
    hsize_t d[4] = {4, 1, 3, 3};
    h5_put(h, "/data/images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, d, img);
    float imgf[4 * 9];
    for (int k = 0; k < 36; k++)
        imgf[k] = img[k];
    h5_put_float(h, "/data/as_float", 4, d, imgf);
    H5Fclose(h);

    static const int64_t chw[3] = {1, 3, 3};
    struct {
        const char *body;
        bool scaled;
    } cases[] = {
        {"  file: tmp_h5ds/images.h5\n  dataset: /data/images\n", true},
        {"  file: tmp_h5ds/images.h5\n  dataset: data/images\n  scale: uint8\n", true},
        {"  file: tmp_h5ds/images.h5\n  dataset: /data/images\n  scale: none\n", false},
        /* auto leaves float data alone; uint8 scales it anyway. */
        {"  file: tmp_h5ds/images.h5\n  dataset: /data/as_float\n", false},
        {"  file: tmp_h5ds/images.h5\n  dataset: /data/as_float\n  scale: uint8\n", true},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        h5_fixture f;
        h5_open(&f, cases[c].body);
        assert_shape(&f.info.sample_shape, 3, chw);
        assert_int_equal(f.info.size, 4);
        agon_rng rng;
        agon_rng_seed(&rng, 9, "data");
        float *x = draw(&f, &rng, 4, NULL);
        bool seen[4] = {false};
        for (int k = 0; k < 4; k++) {
            int i = -1;
            for (int cand = 0; cand < 4; cand++) {
                double v = image_pixel(cand, 1);
                float want = cases[c].scaled ? (float)(v / 127.5 - 1.0) : (float)v;
                if (x[k * 9 + 1] == want)
                    i = cand;
            }
            assert_true(i >= 0);
            assert_false(seen[i]);
            seen[i] = true;
            for (int p = 0; p < 9; p++) {
                double v = image_pixel(i, p);
                float want = cases[c].scaled ? (float)(v / 127.5 - 1.0) : (float)v;
                assert_true(x[k * 9 + p] == want);
            }
            if (i == 0 && cases[c].scaled) {
                assert_true(x[k * 9] == -1.0f);
                assert_true(x[k * 9 + 8] == 1.0f);
            }
        }
        free(x);
        h5_close(&f);
    }
}

static void test_other_types(void **state)
{
    /* 1-D float64: three samples of shape [1]. */
    hid_t h = h5_create("types.h5");
    double v[3] = {-1.25, 0.0, 3.5};
    hsize_t d1[1] = {3};
    h5_put(h, "/v", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, v);
    /* int16 [2, 3] with negative values, big-endian on disk. */
    int16_t w[6] = {-300, -1, 0, 1, 2, 32767};
    hsize_t d2[2] = {2, 3};
    h5_put(h, "/w", H5T_STD_I16BE, H5T_NATIVE_INT16, 2, d2, w);
    /* Labels [n, 1] as uint8. */
    uint8_t y[2] = {1, 0};
    hsize_t d3[2] = {2, 1};
    h5_put(h, "/w_labels", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, d3, y);
    H5Fclose(h);

    h5_fixture f;
    h5_open(&f, "  file: tmp_h5ds/types.h5\n  dataset: /v\n");
    static const int64_t one[1] = {1};
    assert_shape(&f.info.sample_shape, 1, one);
    assert_int_equal(f.info.size, 3);
    agon_rng rng;
    agon_rng_seed(&rng, 2, "data");
    float *x = draw(&f, &rng, 3, NULL);
    float sorted[3] = {x[0], x[1], x[2]};
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (sorted[b] < sorted[a]) {
                float t = sorted[a];
                sorted[a] = sorted[b];
                sorted[b] = t;
            }
    assert_true(sorted[0] == -1.25f && sorted[1] == 0.0f && sorted[2] == 3.5f);
    free(x);
    h5_close(&f);

    /* int16 is not 8-bit unsigned: auto keeps the values. */
    h5_open(&f, "  file: tmp_h5ds/types.h5\n  dataset: /w\n  labels: /w_labels\n");
    static const int64_t three[1] = {3};
    assert_shape(&f.info.sample_shape, 1, three);
    assert_int_equal(f.info.n_classes, 2);
    int32_t labels[2];
    x = draw(&f, &rng, 2, labels);
    for (int k = 0; k < 2; k++) {
        int i = x[3 * k] == -300.0f ? 0 : 1;
        for (int j = 0; j < 3; j++)
            assert_true(x[3 * k + j] == (float)w[3 * i + j]);
        assert_int_equal(labels[k], y[i]);
    }
    free(x);
    h5_close(&f);
}

static void test_errors(void **state)
{
    write_points("points.h5");
    hid_t h = h5_create("bad.h5");
    float x[12] = {0};
    x[7] = NAN;
    hsize_t d2[2] = {6, 2}, d0[2] = {0, 2}, d1[1] = {6}, d5[1] = {5};
    hsize_t d6[6] = {2, 1, 1, 1, 1, 1}, dl[2] = {6, 2};
    h5_put_float(h, "/nan", 2, d2, x);
    x[7] = 0.0f;
    h5_put_float(h, "/x", 2, d2, x);
    h5_put_float(h, "/scalar", 0, NULL, x);
    h5_put_float(h, "/empty", 2, d0, NULL);
    h5_put_float(h, "/rank6", 6, d6, x);
    h5_put_float(h, "/grp/inner", 1, d1, x);
    h5_put_float(h, "/float_labels", 1, d1, x);
    int32_t y[12] = {0, 1, 2, -3, 1, 0, 0, 0, 0, 0, 0, 0};
    h5_put_labels(h, "/neg", 1, d1, y);
    h5_put_labels(h, "/five", 1, d5, y + 4);
    h5_put_labels(h, "/wide", 2, dl, y);
    y[3] = 9;
    h5_put_labels(h, "/nine", 1, d1, y);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 4);
    h5_put(h, "/names", str, str, 1, d1, "aaa\0bbb\0ccc\0ddd\0eee\0fff");
    H5Tclose(str);
    H5Fclose(h);
    agon_test_write_file("tmp_h5ds/text.h5", "not an hdf5 file\n");

    expect_error("  file: tmp_h5ds/nope.h5\n", AGON_EIO,
                 "tmp_h5ds/nope.h5: no such file; check dataset.file (a relative path is "
                 "relative to the working directory)");
    expect_error("  file: tmp_h5ds\n", AGON_EIO,
                 "tmp_h5ds: is a directory; dataset.file must name an HDF5 file");
    expect_error("  file: tmp_h5ds/text.h5\n", AGON_EDATA,
                 "tmp_h5ds/text.h5: not an HDF5 file; dataset.file must name an HDF5 file "
                 "(e.g. one written with h5py)");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /images\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: no dataset '/images'; the file's root holds empty, "
                 "five, float_labels, grp/, names, nan, neg, nine, rank6, scalar, wide, x; "
                 "set dataset.dataset to the HDF5 path of the samples");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /grp/missing/deeper\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: no dataset '/grp/missing/deeper'; the file's root holds "
                 "empty, five, float_labels, grp/, names, nan, neg, nine, rank6, scalar, wide, "
                 "x; set dataset.dataset to the HDF5 path of the samples");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /grp\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/grp' is a group, not a dataset; set "
                 "dataset.dataset to the HDF5 path of an array");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /scalar\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/scalar' is a scalar; expected an array [n, ...] "
                 "with one sample per row");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /rank6\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/rank6' has shape [2, 1, 1, 1, 1, 1]; expected "
                 "[n, ...] with at most 4 dimensions per sample");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /empty\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/empty' has shape [0, 2]: it holds no samples");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /names\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/names' holds strings, not numbers; store the "
                 "samples as an integer or floating-point array");
    expect_error("  file: tmp_h5ds/bad.h5\n  dataset: /nan\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: dataset '/nan' holds NaN in sample 3; samples must be "
                 "finite float32 numbers");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /five\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: labels '/five' have 5 entries but dataset '/x' has 6 "
                 "samples; give one label per sample");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /neg\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: labels '/neg' hold -3 at index 3; class ids must be >= 0");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /nine\n  n_classes: 5\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: labels '/nine' hold 9 at index 3 but n_classes is 5; "
                 "raise dataset.n_classes or fix the labels");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /float_labels\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: labels '/float_labels' hold floating-point numbers; store "
                 "class ids as integers 0, 1, 2, ...");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /wide\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: labels '/wide' have shape [6, 2]; expected [n] (or [n, 1]) "
                 "with one class id per sample");
    expect_error("  file: tmp_h5ds/bad.h5\n  labels: /y\n", AGON_EDATA,
                 "tmp_h5ds/bad.h5: no labels '/y'; the file's root holds empty, five, "
                 "float_labels, grp/, names, nan, neg, nine, rank6, scalar, wide, x; set "
                 "dataset.labels to the HDF5 path of the labels");
    expect_error("  file: tmp_h5ds/points.h5\n  n_classes: 3\n", AGON_ECONFIG,
                 "h5.yaml:4:14: dataset.n_classes: is set but there are no labels; set "
                 "dataset.labels to the HDF5 path of the class ids");
    /* Without the host's schema step create checks the choice itself. */
    expect_error_ex("  file: tmp_h5ds/points.h5\n  scale: minmax\n", true, AGON_ECONFIG,
                    "h5.yaml:4:10: dataset.scale: unknown scale 'minmax'; choose auto, none "
                    "or uint8");

    /* An empty file says so instead of listing nothing. */
    h = h5_create("empty.h5");
    H5Fclose(h);
    expect_error("  file: tmp_h5ds/empty.h5\n", AGON_EDATA,
                 "tmp_h5ds/empty.h5: no dataset '/x': the file is empty; check dataset.file");
}

/* The host's HDF5 error handler is the same after create as before. */
static void test_error_handler_restored(void **state)
{
    write_points("points.h5");
    H5E_auto2_t before_fn, after_fn;
    void *before_data, *after_data;
    H5Eget_auto2(H5E_DEFAULT, &before_fn, &before_data);
    assert_non_null(before_fn);
    h5_fixture f;
    assert_int_equal(h5_open_ex(&f, "  file: tmp_h5ds/points.h5\n  dataset: /nothing\n", false),
                     AGON_EDATA);
    agon_config_destroy(f.cfg);
    H5Eget_auto2(H5E_DEFAULT, &after_fn, &after_data);
    assert_true(before_fn == after_fn);
    assert_true(before_data == after_data);
}

/* n samples, sample i = (i, -i), labels i mod 3. */
static void write_counting(const char *name, int n)
{
    float *x = malloc((size_t)n * 2 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int i = 0; i < n; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = (float)-i;
        y[i] = i % 3;
    }
    hid_t h = h5_create(name);
    hsize_t xd[2] = {(hsize_t)n, 2}, yd[1] = {(hsize_t)n};
    h5_put_float(h, "/x", 2, xd, x);
    h5_put_labels(h, "/y", 1, yd, y);
    H5Fclose(h);
    free(x);
    free(y);
}

/* Draws n samples in batches of `batch`; out[k] = which sample. */
static void draw_order(h5_fixture *f, agon_rng *rng, int64_t n, int64_t batch, int64_t *out)
{
    for (int64_t k = 0; k < n; k += batch) {
        int64_t m = n - k < batch ? n - k : batch;
        int32_t *labels = malloc((size_t)m * sizeof *labels);
        assert_non_null(labels);
        float *x = draw(f, rng, m, labels);
        for (int64_t i = 0; i < m; i++) {
            out[k + i] = (int64_t)x[2 * i];
            assert_true(x[2 * i + 1] == -x[2 * i]);
            assert_int_equal(labels[i], out[k + i] % 3);
        }
        free(x);
        free(labels);
    }
}

static void test_shuffled_epochs(void **state)
{
    write_counting("count40.h5", 40);
    h5_fixture f;
    h5_open(&f, "  file: tmp_h5ds/count40.h5\n  labels: /y\n");
    assert_int_equal(f.info.size, 40);
    assert_int_equal(f.info.n_classes, 3);

    enum { N = 120 };
    int64_t got[N], want[N];
    agon_rng rng, ref;
    agon_rng_seed(&rng, 42, "data");
    ref = rng;
    draw_order(&f, &rng, N, 9, got);
    agon_test_epoch_order(&ref, 40, want, N);
    assert_memory_equal(got, want, sizeof got);
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);
    for (int e = 0; e < 3; e++) {
        int count[40] = {0};
        for (int k = 0; k < 40; k++)
            count[got[e * 40 + k]]++;
        for (int i = 0; i < 40; i++)
            assert_int_equal(count[i], 1);
    }
    assert_true(memcmp(got, got + 40, 40 * sizeof got[0]) != 0);

    int64_t again[N], other[N];
    agon_rng same, diff;
    agon_rng_seed(&same, 42, "data");
    agon_rng_seed(&diff, 43, "data");
    draw_order(&f, &same, N, N, again);
    draw_order(&f, &diff, N, 11, other);
    assert_memory_equal(got, again, sizeof got);
    assert_true(memcmp(got, other, 40 * sizeof got[0]) != 0);
    h5_close(&f);

    /* Another rng's draws leave this rng's epoch where it was. */
    int64_t mixed[N], junk[30];
    h5_open(&f, "  file: tmp_h5ds/count40.h5\n  labels: /y\n");
    agon_rng_seed(&rng, 42, "data");
    agon_rng_seed(&diff, 42, "metrics");
    for (int k = 0; k < N; k += 10) {
        draw_order(&f, &rng, 10, 10, mixed + k);
        draw_order(&f, &diff, 30, 30, junk);
    }
    assert_memory_equal(got, mixed, sizeof got);
    h5_close(&f);
}

static void test_next_batch_does_not_allocate(void **state)
{
    write_counting("count40.h5", 40);
    h5_fixture f;
    long before = agon_test_allocs;
    h5_open(&f, "  file: tmp_h5ds/count40.h5\n  labels: /y\n");
    /* create allocates: a counter that did not move is not counting (a
     * sanitizer or valgrind supplies malloc), and the check says nothing. */
    bool counting = AGON_TEST_COUNTS_ALLOCS && agon_test_allocs > before;
    float x[16 * 2];
    int32_t labels[16];
    int64_t dims[2] = {16, 2};
    agon_tensor t = {x, agon_shape_make(2, dims)};
    agon_rng r1, r2;
    agon_rng_seed(&r1, 1, "data");
    agon_rng_seed(&r2, 1, "metrics");
    agon_error err = {0};
    before = agon_test_allocs;
    for (int k = 0; k < 20; k++) {
        assert_int_equal(vt->next_batch(f.state, &r1, &t, labels, &err), 0);
        assert_int_equal(vt->next_batch(f.state, &r2, &t, NULL, &err), 0);
    }
    if (counting)
        assert_int_equal(agon_test_allocs - before, 0);

    int64_t bad_dims[2] = {4, 3};
    float bad[12];
    agon_tensor b = {bad, agon_shape_make(2, bad_dims)};
    assert_int_equal(vt->next_batch(f.state, &r1, &b, NULL, &err), AGON_EINTERNAL);
    assert_string_equal(err.message, "hdf5: batch tensor has shape [4, 3], expected [n, 2]");
    h5_close(&f);
}

/* The point of the plugin: a user's file trains a GAN with no C written.
 * Two labelled blobs at x = -2 and x = +2 in a file the test writes; a
 * conditional GAN trains on it through the agon program, and the final
 * snapshot's rows (one per class) sit at their own blob. */
static void test_trains_on_user_file(void **state)
{
    enum { N = 2048 };
    static float x[2 * N];
    static int32_t y[N];
    agon_rng rng;
    agon_rng_seed(&rng, 7, "points");
    for (int i = 0; i < N; i++) {
        y[i] = (int32_t)(i % 2);
        x[2 * i] = (y[i] ? 2.0f : -2.0f) + 0.1f * (float)agon_rng_normal(&rng);
        x[2 * i + 1] = 0.1f * (float)agon_rng_normal(&rng);
    }
    hid_t f = h5_create("blobs.h5");
    hsize_t xd[2] = {N, 2}, yd[1] = {N};
    h5_put_float(f, "/data/points", 2, xd, x);
    h5_put_labels(f, "/data/labels", 1, yd, y);
    H5Fclose(f);

    char yaml[2048], path[1024], cmd[4096], err[4096];
    snprintf(yaml, sizeof yaml,
             "seed: 2\n"
             "dataset: {plugin: hdf5, file: %s/blobs.h5, dataset: /data/points, "
             "labels: /data/labels}\n"
             "generator: {plugin: mlp, hidden: [64, 64]}\n"
             "discriminator: {plugin: mlp, hidden: [64, 64], activation: leaky_relu}\n"
             "loss: {plugin: nonsaturating}\n"
             "g_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
             "d_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
             "train: {steps: 1000, batch_size: 128, latent_dim: 8, conditional: concat}\n"
             "log: {samples_every: 1000, n_samples: 20}\n",
             dir);
    snprintf(path, sizeof path, "%s/blobs.yaml", dir);
    agon_test_write_file(path, yaml);
    snprintf(cmd, sizeof cmd, "'%s' run '%s/blobs.yaml' -o '%s/blobs_run.h5' --progress none",
             AGON_CLI_PATH, dir, dir);
    int rc = agon_test_run(cmd, NULL, 0, err, sizeof err);
    if (rc != 0)
        fail_msg("agon run exited %d: %s", rc, err);

    snprintf(path, sizeof path, "%s/blobs_run.h5", dir);
    hid_t log = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(log >= 0);
    hid_t d = H5Dopen2(log, "/samples/x", H5P_DEFAULT);
    assert_true(d >= 0);
    static float s[2 * 20 * 2];     /* steps 0 and 1000, 20 samples of 2 */
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) >= 0);
    H5Dclose(d);
    H5Fclose(log);
    /* grid: row 0 (class 0) is samples 0..9, row 1 (class 1) 10..19 */
    const float *last = s + 20 * 2;
    int near = 0;
    for (int i = 0; i < 20; i++)
        near += fabsf(last[2 * i] - (i < 10 ? -2.0f : 2.0f)) < 0.75f;
    assert_true(near >= 18);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_float_with_labels),
        cmocka_unit_test(test_uint8_scaling),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_handler_restored),
        cmocka_unit_test(test_shuffled_epochs),
        cmocka_unit_test(test_next_batch_does_not_allocate),
        cmocka_unit_test(test_trains_on_user_file),
    };
    return cmocka_run_group_tests_name("hdf5_dataset", tests, setup, teardown);
}
