/* libFuzzer harness for the hdf5 dataset plugin's checks
 * (plugins/datasets/hdf5_data.c), structure-aware: mutating the bytes of
 * whole HDF5 files mostly exercises libhdf5's own format parser, so the
 * fuzz input is decoded into a description of a file instead (objects at
 * a few paths: datasets of 21 datatypes, from uint8 to big-endian float64,
 * strings, compounds, enums, arrays, bit fields, opaque data, half floats
 * and 3-byte integers; scalar, null and simple dataspaces of rank 1 to 6;
 * contiguous, chunked, deflated, compact or external storage; values from
 * the input or the ones that break code; groups, soft, hard and external
 * links; attributes; maybe a truncation point), the harness writes that
 * file with the HDF5 C API, and the built plugin (through agon's
 * registry) opens it from a config naming the samples and labels paths,
 * n_classes and scale.
 *
 * Input: byte 0 options (bits 0-1 scale, bit 2 labels, bit 3 n_classes,
 * bit 4 truncate), the dataset and labels paths, n_classes, then up to
 * five objects, each a path, a kind and its details (see add_object).
 *
 * Properties checked beyond "no crash, leak or hang" (the sanitizers and
 * libFuzzer's own limits find those):
 *   - the plugin agrees with an independent check of the file (read
 *     through HDF5 by the harness) on whether to accept it: the samples a
 *     dataset of numbers, rank 1 to 5, no dimension 0, every value finite
 *     as float32; the labels integers, [n] or [n, 1], one per sample,
 *     0 <= id < n_classes (when given) and < 1048576;
 *   - a refusal leaves no state, is one line, and names the file (or, for
 *     n_classes without labels, is the config's one line);
 *   - HDF5 prints nothing (agon turns its error printing off around every
 *     call) and every HDF5 object the plugin opened is closed again;
 *   - accepted data reads fully: size, sample shape and n_classes as the
 *     file implies, and one epoch of batches returns every sample once,
 *     each exactly as HDF5 converts it to float32 (mapped by x/127.5 - 1
 *     for scale uint8, or auto on 8-bit unsigned data), with its label.
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  Files go to a private directory. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "agon/agon.h"
#include "agon/plugin.h"
#include "fuzz_common.h"

#define MAX_CLASSES 1048576

static const char *const paths[] = {"/x", "/y", "/labels", "/g/x", "/g/labels", "/g"};
#define N_PATHS (sizeof paths / sizeof paths[0])

static char file_path[4096], other_path[4096], raw_path[4096];

/* ---- writing the file ------------------------------------------------------ */

/* One object at one of the paths: a dataset, a group, or a link. */
static void add_object(fuzz_input *in, hid_t file, hid_t lcpl)
{
    /* A path already taken, or under a "/g" that is no group, makes the
     * creation fail, which is fine. */
    const char *path = paths[fuzz_below(in, N_PATHS)];
    uint8_t kind = fuzz_below(in, 8);
    const char *target = paths[fuzz_below(in, N_PATHS)];
    if (kind <= 3) {
        fuzz_h5_dataset(in, file, path, lcpl, 9, raw_path, NULL);
    } else if (kind == 4) {
        hid_t g = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) {
            fuzz_h5_attributes(in, g, NULL);
            H5Gclose(g);
        }
    } else if (kind == 5) {
        H5Lcreate_soft(target, file, path, lcpl, H5P_DEFAULT);
    } else if (kind == 6) {
        /* other.h5 holds /x [3, 2] float32 and /labels [3]; /y is missing. */
        static const char *const ext[] = {"/x", "/labels", "/y"};
        H5Lcreate_external(fuzz_u8(in) & 1 ? other_path : "/nonexistent/missing.h5",
                           ext[fuzz_below(in, 3)], file, path, lcpl, H5P_DEFAULT);
    } else {
        H5Lcreate_hard(file, target, file, path, lcpl, H5P_DEFAULT);
    }
}

static void write_other(void)
{
    hsize_t xd[2] = {3, 2}, ld = 3;
    const float x[6] = {0, 1, 2, 3, 4, 5};
    const int labels[3] = {0, 1, 2};
    hid_t f = H5Fcreate(other_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    fuzz_h5_write(f, "x", H5T_NATIVE_FLOAT, 2, xd, x);
    fuzz_h5_write(f, "labels", H5T_NATIVE_INT, 1, &ld, labels);
    if (H5Fclose(f) < 0)
        fuzz_fail("harness: cannot write other.h5");
}

/* ---- the independent check ------------------------------------------------- */

typedef struct expected {
    bool accept;
    const char *why;    /* the first rule broken */
    int64_t n, numel;
    float *x;           /* [n, numel] as agon should hold them */
    int32_t *labels;    /* [n], NULL without labels */
    int64_t n_classes;
    int rank;
    hsize_t dims[H5S_MAX_RANK];
} expected;

/* Opens the dataset at path, its rank and dims (-1 when not simple). */
static hid_t open_array(hid_t file, const char *path, int *rank, hsize_t *dims)
{
    hid_t d = H5Oopen(file, path, H5P_DEFAULT);
    if (d < 0)
        return -1;
    if (H5Iget_type(d) != H5I_DATASET) {
        H5Oclose(d);
        return -1;
    }
    hid_t s = H5Dget_space(d);
    *rank = H5Sget_simple_extent_type(s) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(s) : -1;
    if (*rank > 0)
        H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    return d;
}

static const char *check_samples(hid_t file, const char *path, const char *scale, expected *e)
{
    hid_t d = open_array(file, path, &e->rank, e->dims);
    if (d < 0)
        return "no dataset at the samples path";
    const char *why = NULL;
    hid_t t = H5Dget_type(d);
    H5T_class_t c = H5Tget_class(t);
    e->numel = 1;
    for (int i = 1; i < e->rank; i++)
        e->numel *= (int64_t)e->dims[i];
    if (e->rank < 1)
        why = "samples are a scalar or empty";
    else if (e->rank > AGON_MAX_DIMS)
        why = "samples have more than 5 dimensions";
    else if (e->dims[0] == 0 || e->numel == 0)
        why = "samples have a dimension 0";
    else if (c != H5T_INTEGER && c != H5T_FLOAT)
        why = "samples are not numbers";
    if (!why) {
        e->n = (int64_t)e->dims[0];
        e->x = malloc((size_t)(e->n * e->numel) * sizeof *e->x);
        if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, e->x) < 0)
            why = "HDF5 cannot read the samples";
    }
    bool to_unit = strcmp(scale, "uint8") == 0 ||
                   (strcmp(scale, "auto") == 0 && c == H5T_INTEGER && H5Tget_size(t) == 1 &&
                    H5Tget_sign(t) == H5T_SGN_NONE);
    for (int64_t i = 0; !why && i < e->n * e->numel; i++) {
        if (!isfinite(e->x[i]))
            why = "a sample is not finite";
        else if (to_unit)
            e->x[i] = (float)((double)e->x[i] / 127.5 - 1.0);
    }
    H5Tclose(t);
    H5Dclose(d);
    return why;
}

static const char *check_labels(hid_t file, const char *path, int64_t n_classes, expected *e)
{
    int rank;
    hsize_t dims[H5S_MAX_RANK];
    hid_t d = open_array(file, path, &rank, dims);
    if (d < 0)
        return "no dataset at the labels path";
    const char *why = NULL;
    hid_t t = H5Dget_type(d);
    if (rank < 1 || rank > 2 || (rank == 2 && dims[1] != 1))
        why = "labels are not [n] or [n, 1]";
    else if ((int64_t)dims[0] != e->n)
        why = "not one label per sample";
    else if (H5Tget_class(t) != H5T_INTEGER)
        why = "labels are not integers";
    long long *raw = why ? NULL : malloc((size_t)e->n * sizeof *raw);
    if (raw && H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
        why = "HDF5 cannot read the labels";
    long long max = -1;
    if (!why)
        e->labels = malloc((size_t)e->n * sizeof *e->labels);
    for (int64_t i = 0; !why && i < e->n; i++) {
        if (raw[i] < 0 || (n_classes > 0 && raw[i] >= n_classes) || raw[i] >= MAX_CLASSES)
            why = "a label is out of range";
        else
            e->labels[i] = (int32_t)raw[i];
        if (!why)
            max = raw[i] > max ? raw[i] : max;
    }
    e->n_classes = n_classes > 0 ? n_classes : max + 1;
    free(raw);
    H5Tclose(t);
    H5Dclose(d);
    return why;
}

static expected expect(const char *dataset, const char *labels, int64_t n_classes,
                       const char *scale)
{
    expected e = {0};
    hid_t file = -1;
    H5E_BEGIN_TRY
    {
        file = H5Fis_hdf5(file_path) > 0 ? H5Fopen(file_path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
        e.why = file < 0 ? "the file does not open" : check_samples(file, dataset, scale, &e);
        if (!e.why && labels[0])
            e.why = check_labels(file, labels, n_classes, &e);
        if (file >= 0)
            H5Fclose(file);
    }
    H5E_END_TRY;
    e.accept = !e.why;
    return e;
}

/* ---- the plugin against the check ------------------------------------------ */

static uint64_t sample_hash(const float *x, int64_t numel, int32_t label)
{
    return fuzz_hash(fuzz_hash(FUZZ_HASH_START, &label, sizeof label), x,
                     (size_t)numel * sizeof *x);
}

static void check_accepted(fuzz_dataset *d, const expected *e, const char *labels)
{
    const agon_shape *sh = &d->info.sample_shape;
    int want_rank = e->rank > 1 ? e->rank - 1 : 1;
    bool shape_ok = d->info.size == e->n && sh->ndim == want_rank;
    for (int i = 0; shape_ok && i < want_rank; i++)
        shape_ok = sh->dim[i] == (e->rank > 1 ? (int64_t)e->dims[i + 1] : 1);
    if (!shape_ok || d->info.n_classes != (labels[0] ? e->n_classes : 0))
        fuzz_fail("accepted as %lld samples of %d dims with %lld classes; the file has %lld "
                  "and %lld classes",
                  (long long)d->info.size, sh->ndim, (long long)d->info.n_classes,
                  (long long)e->n, (long long)(labels[0] ? e->n_classes : 0));
    uint64_t *want = malloc((size_t)e->n * sizeof *want), *got = malloc((size_t)e->n * sizeof *got);
    for (int64_t i = 0; i < e->n; i++)
        want[i] = sample_hash(e->x + i * e->numel, e->numel, e->labels ? e->labels[i] : -1);
    float *x = malloc((size_t)(e->n * e->numel) * sizeof *x);
    int32_t *l = malloc((size_t)e->n * sizeof *l);
    int64_t dims[AGON_MAX_DIMS + 1] = {e->n};
    for (int i = 0; i < sh->ndim; i++)
        dims[i + 1] = sh->dim[i];
    agon_tensor t = {x, agon_shape_make(sh->ndim + 1, dims)};
    agon_rng rng;
    agon_rng_seed(&rng, 3, "data");
    agon_error err = {0};
    if (d->vt->next_batch(d->state, &rng, &t, labels[0] ? l : NULL, &err) != 0)
        fuzz_fail("next_batch failed: %s", err.message);
    for (int64_t i = 0; i < e->n; i++)
        got[i] = sample_hash(x + i * e->numel, e->numel, labels[0] ? l[i] : -1);
    fuzz_sort_hashes(want, (size_t)e->n);
    fuzz_sort_hashes(got, (size_t)e->n);
    if (memcmp(want, got, (size_t)e->n * sizeof *want) != 0)
        fuzz_fail("one epoch of %lld samples is not the file's samples, each once, as HDF5 "
                  "converts them (with their labels)",
                  (long long)e->n);
    free(x);
    free(l);
    free(want);
    free(got);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_private_dir("hdf5_data");
    snprintf(file_path, sizeof file_path, "%s/data.h5", dir);
    snprintf(other_path, sizeof other_path, "%s/other.h5", dir);
    snprintf(raw_path, sizeof raw_path, "%s/raw.bin", dir);
    fuzz_registry();
    H5open();
    write_other();
    fuzz_check_hdf5_closed("setup");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const scales[] = {"auto", "none", "uint8", "auto"};
    fuzz_input in = {data, size};
    uint8_t opts = fuzz_u8(&in);
    const char *scale = scales[opts & 3];
    const char *dataset = paths[fuzz_below(&in, N_PATHS)];
    const char *labels = opts & 4 ? paths[fuzz_below(&in, N_PATHS)] : "";
    uint8_t k = fuzz_u8(&in);
    int64_t n_classes = opts & 8 ? (k < 250 ? k + 1 : MAX_CLASSES) : 0;
    uint16_t cut = fuzz_u16(&in);

    unlink(raw_path);
    H5E_BEGIN_TRY
    {
        hid_t file = H5Fcreate(file_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        for (unsigned n = fuzz_below(&in, 6); n > 0; n--)
            add_object(&in, file, lcpl);
        H5Pclose(lcpl);
        if (file < 0 || H5Fclose(file) < 0)
            fuzz_fail("harness: cannot write %s", file_path);
    }
    H5E_END_TRY;
    if (opts & 16) {
        FILE *f = fopen(file_path, "rb");
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fclose(f);
        if (truncate(file_path, (off_t)((uint64_t)len * cut / 65536)) != 0)
            fuzz_fail("harness: cannot truncate %s", file_path);
    }
    expected e = expect(dataset, labels, n_classes, scale);
    fuzz_check_hdf5_closed("the harness's check");

    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "dataset:\n  plugin: hdf5\n  file: %s\n  dataset: %s\n  labels: \"%s\"\n"
             "  n_classes: %lld\n  scale: %s\n",
             file_path, dataset, labels, (long long)n_classes, scale);
    fuzz_dataset d;
    fuzz_capture_begin(false);
    int rc = fuzz_dataset_open(&d, "hdf5", yaml);
    const char *printed = fuzz_capture_end();
    if (printed[0])
        fuzz_fail("create printed on stderr:\n%s", printed);
    bool config_refusal = n_classes > 0 && !labels[0];
    fuzz_note("%s (the check: %s)", rc ? d.err.message : "accepted", e.why ? e.why : "accept");
    if (rc != 0) {
        fuzz_check_create_refusal(&d, rc, config_refusal ? "n_classes" : file_path);
        if (e.accept && !config_refusal)
            fuzz_fail("refused a file the check accepts: %s", d.err.message);
    } else {
        if (config_refusal)
            fuzz_fail("accepted n_classes without labels");
        if (!e.accept)
            fuzz_fail("accepted a file the check refuses (%s)", e.why);
        check_accepted(&d, &e, labels);
    }
    fuzz_dataset_close(&d);
    fuzz_check_hdf5_closed("the plugin");
    free(e.x);
    free(e.labels);
    return 0;
}
