/* hdf5 — a user's own data from an HDF5 file (written with h5py, MATLAB,
 * the HDF5 C API, ...).
 *
 *   dataset  HDF5 path of the samples, an array [n, ...]: the first dimension
 *            counts samples and the rest (at most 4 dimensions) is the shape
 *            of one sample, e.g. [n, 2] points or [n, 1, 28, 28] images; a
 *            1-D array [n] is n samples of shape [1].  Any integer or
 *            floating-point type; HDF5 converts it to float32 as it reads.
 *   labels   optional HDF5 path of one integer class id >= 0 per sample
 *            ([n] or [n, 1]); n_classes is max label + 1 unless given.
 *   scale    auto: 8-bit unsigned data is mapped as x/127.5 - 1 (0..255 to
 *            [-1, 1], a tanh generator's range), any other type is used as
 *            stored; uint8: that mapping whatever the type; none: as stored.
 *
 * The whole dataset is read into memory as float32 at create and the file is
 * closed again.  Non-finite values are rejected there, so a NaN in the file
 * cannot surface later as a diverged run.
 *
 * Batches: shuffled epochs from agon_epoch_sampler (agon/sampler.h), which
 * documents the order: a fresh Fisher-Yates permutation per epoch drawn
 * from the caller's rng, and a position in the epoch per rng, so a metric
 * drawing real samples never moves training's position.
 *
 * HDF5's automatic error printing is off around every call made here (the
 * library never prints); failures are turned into one-line messages that
 * name the file and the HDF5 path.  Never calls H5close(): the host's own
 * HDF5 objects would die with it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "agon/plugin.h"
#include "agon/sampler.h"

#define H5D_MAX_CLASSES 1048576
#define H5D_MAX_SAMPLES AGON_EPOCH_SAMPLER_MAX_SIZE

typedef struct h5d_state {
    int64_t size;
    agon_shape sample;
    int64_t sample_numel;
    float *x;               /* [size, sample_numel] */
    int32_t *labels;        /* [size], NULL without labels */
    agon_epoch_sampler *order;
} h5d_state;

/* What create reads from the config. */
typedef struct h5d_options {
    const char *file, *dataset, *labels, *scale;
    int64_t n_classes;
} h5d_options;

static void h5d_destroy(void *state)
{
    h5d_state *s = state;
    if (!s)
        return;
    agon_epoch_sampler_destroy(s->order);
    free(s->x);
    free(s->labels);
    free(s);
}

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0)
        snprintf(data, 256, "%s", e->desc ? e->desc : "");
    return 0;
}

/* The most specific description on HDF5's error stack (e.g. "unable to lock
 * the file"), for failures no check here anticipated. */
static const char *h5_reason(char buf[256])
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
    return buf[0] ? buf : "no reason given";
}

static void format_dims(int rank, const hsize_t *dims, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%llu", i ? ", " : "",
                                (unsigned long long)dims[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

/* Names at the root of the file, groups marked with a trailing '/'. */
typedef struct root_list {
    char text[320];
    size_t count;
} root_list;

static herr_t root_cb(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    root_list *list = data;
    size_t len = strlen(list->text);
    if (len > 250) {
        if (!strstr(list->text, ", ..."))
            snprintf(list->text + len, sizeof list->text - len, ", ...");
        return 1;
    }
    const char *mark = "";
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj >= 0) {
        if (H5Iget_type(obj) == H5I_GROUP)
            mark = "/";
        H5Oclose(obj);
    }
    snprintf(list->text + len, sizeof list->text - len, "%s%s%s", list->count ? ", " : "",
             name, mark);
    list->count++;
    return 0;
}

/* Opens the dataset at `path` ("dataset" or "labels" in `what`). */
static int open_dataset(hid_t file, const char *file_name, const char *what, const char *path,
                        hid_t *out, agon_error *err)
{
    hid_t obj = H5Oopen(file, path, H5P_DEFAULT);
    if (obj < 0) {
        root_list list = {{0}, 0};
        hsize_t idx = 0;
        H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &idx, root_cb, &list);
        if (list.count == 0) {
            return agon_error_set(err, AGON_EDATA,
                                  "%s: no %s '%s': the file is empty; check dataset.file",
                                  file_name, what, path);
        }
        return agon_error_set(err, AGON_EDATA,
                              "%s: no %s '%s'; the file's root holds %s; set dataset.%s to the "
                              "HDF5 path of the %s",
                              file_name, what, path, list.text, what,
                              strcmp(what, "labels") == 0 ? "labels" : "samples");
    }
    H5I_type_t type = H5Iget_type(obj);
    if (type != H5I_DATASET) {
        H5Oclose(obj);
        return agon_error_set(err, AGON_EDATA,
                              "%s: %s '%s' is a %s, not a dataset; set dataset.%s to the HDF5 "
                              "path of an array",
                              file_name, what, path,
                              type == H5I_GROUP ? "group" : "named datatype", what);
    }
    *out = obj;
    return 0;
}

static const char *class_text(H5T_class_t c)
{
    switch (c) {
    case H5T_STRING: return "strings";
    case H5T_COMPOUND: return "compound records";
    case H5T_ENUM: return "enum values";
    case H5T_ARRAY: return "array-typed elements";
    case H5T_VLEN: return "variable-length sequences";
    case H5T_REFERENCE: return "references";
    case H5T_OPAQUE: return "opaque data";
    case H5T_BITFIELD: return "bit fields";
    case H5T_TIME: return "time values";
    default: return "values of an unknown type";
    }
}

/* Rank and dims of `d`; only simple dataspaces have them. */
static int get_dims(hid_t d, const char *file_name, const char *what, const char *path,
                    int *rank, hsize_t dims[H5S_MAX_RANK], agon_error *err)
{
    char why[256];
    hid_t space = H5Dget_space(d);
    int r = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (r >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        r = -1;
    if (r < 0) {
        h5_reason(why);
        if (space >= 0)
            H5Sclose(space);
        return agon_error_set(err, AGON_EDATA, "%s: HDF5 could not read the shape of %s '%s' (%s)",
                              file_name, what, path, why);
    }
    H5S_class_t sclass = H5Sget_simple_extent_type(space);
    H5Sclose(space);
    if (sclass == H5S_NULL)
        r = 0;
    *rank = r;
    return 0;
}

static int read_samples(hid_t file, const h5d_options *o, h5d_state *s, agon_shape *shape,
                        agon_error *err)
{
    char why[256], dims_text[160];
    hid_t d = -1, type = -1;
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    int rc = open_dataset(file, o->file, "dataset", o->dataset, &d, err);
    if (rc == 0)
        rc = get_dims(d, o->file, "dataset", o->dataset, &rank, dims, err);
    if (rc == 0 && rank == 0) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: dataset '%s' is a scalar; expected an array [n, ...] with one "
                            "sample per row",
                            o->file, o->dataset);
    }
    if (rc == 0)
        format_dims(rank, dims, dims_text, sizeof dims_text);
    if (rc == 0 && rank > AGON_MAX_DIMS) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: dataset '%s' has shape %s; expected [n, ...] with at most %d "
                            "dimensions per sample",
                            o->file, o->dataset, dims_text, AGON_MAX_DIMS - 1);
    }
    if (rc == 0 && dims[0] == 0) {
        rc = agon_error_set(err, AGON_EDATA, "%s: dataset '%s' has shape %s: it holds no samples",
                            o->file, o->dataset, dims_text);
    }
    if (rc == 0 && dims[0] > (hsize_t)H5D_MAX_SAMPLES) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: dataset '%s' has shape %s: more than %lld samples are not "
                            "supported",
                            o->file, o->dataset, dims_text, H5D_MAX_SAMPLES);
    }
    int64_t sample_dims[AGON_MAX_DIMS];
    int sample_rank = rank > 1 ? rank - 1 : 1;
    uint64_t numel = 1;
    sample_dims[0] = 1;
    for (int i = 1; rc == 0 && i < rank; i++) {
        if (dims[i] == 0) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: dataset '%s' has shape %s: a sample dimension is 0",
                                o->file, o->dataset, dims_text);
            break;
        }
        if (numel > (uint64_t)INT64_MAX / dims[i]) {
            rc = agon_error_set(err, AGON_ENOMEM,
                                "%s: dataset '%s' has shape %s: too large to hold in memory",
                                o->file, o->dataset, dims_text);
            break;
        }
        sample_dims[i - 1] = (int64_t)dims[i];
        numel *= dims[i];
    }
    /* The total must fit a size_t of floats and an int64 element count. */
    if (rc == 0 && (numel > (uint64_t)INT64_MAX / dims[0] ||
                    numel * dims[0] > SIZE_MAX / sizeof(float))) {
        rc = agon_error_set(err, AGON_ENOMEM,
                            "%s: dataset '%s' has shape %s: too large to hold in memory",
                            o->file, o->dataset, dims_text);
    }
    if (rc == 0) {
        type = H5Dget_type(d);
        if (type < 0) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: HDF5 could not read the type of dataset '%s' (%s)", o->file,
                                o->dataset, h5_reason(why));
        }
    }
    H5T_class_t tclass = rc == 0 ? H5Tget_class(type) : H5T_NO_CLASS;
    if (rc == 0 && tclass != H5T_INTEGER && tclass != H5T_FLOAT) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: dataset '%s' holds %s, not numbers; store the samples as an "
                            "integer or floating-point array",
                            o->file, o->dataset, class_text(tclass));
    }
    bool to_unit = false;
    if (rc == 0) {
        bool is_u8 = tclass == H5T_INTEGER && H5Tget_size(type) == 1 &&
                     H5Tget_sign(type) == H5T_SGN_NONE;
        to_unit = strcmp(o->scale, "uint8") == 0 || (strcmp(o->scale, "auto") == 0 && is_u8);
    }
    size_t total = (size_t)(numel * (rc == 0 ? dims[0] : 0));
    if (rc == 0) {
        s->x = malloc(total * sizeof *s->x);
        if (!s->x) {
            rc = agon_error_set(err, AGON_ENOMEM,
                                "%s: dataset '%s' needs %.0f MB as float32, which could not be "
                                "allocated",
                                o->file, o->dataset, (double)total * sizeof(float) / 1e6);
        }
    }
    if (rc == 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->x) < 0) {
        rc = agon_error_set(err, AGON_EDATA, "%s: HDF5 could not read dataset '%s' (%s)",
                            o->file, o->dataset, h5_reason(why));
    }
    for (size_t i = 0; rc == 0 && i < total; i++) {
        if (!isfinite(s->x[i])) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: dataset '%s' holds %s in sample %llu; samples must be "
                                "finite float32 numbers",
                                o->file, o->dataset, isnan(s->x[i]) ? "NaN" : "an infinity",
                                (unsigned long long)(i / numel));
        } else if (to_unit) {
            s->x[i] = (float)((double)s->x[i] / 127.5 - 1.0);
        }
    }
    if (type >= 0)
        H5Tclose(type);
    if (d >= 0)
        H5Dclose(d);
    if (rc == 0) {
        s->size = (int64_t)dims[0];
        s->sample_numel = (int64_t)numel;
        s->sample = agon_shape_make(sample_rank, sample_dims);
        *shape = s->sample;
    }
    return rc;
}

/* Reads the labels and sets *n_classes (the given one, or max label + 1). */
static int read_labels(hid_t file, const h5d_options *o, h5d_state *s, int64_t *n_classes,
                       agon_error *err)
{
    char why[256], dims_text[160];
    hid_t d = -1, type = -1;
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    long long *raw = NULL;
    int rc = open_dataset(file, o->file, "labels", o->labels, &d, err);
    if (rc == 0)
        rc = get_dims(d, o->file, "labels", o->labels, &rank, dims, err);
    if (rc == 0) {
        format_dims(rank, dims, dims_text, sizeof dims_text);
        if (rank < 1 || rank > 2 || (rank == 2 && dims[1] != 1)) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: labels '%s' have shape %s; expected [n] (or [n, 1]) with "
                                "one class id per sample",
                                o->file, o->labels, rank ? dims_text : "[] (a scalar)");
        }
    }
    if (rc == 0 && (int64_t)dims[0] != s->size) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: labels '%s' have %llu entries but dataset '%s' has %lld "
                            "samples; give one label per sample",
                            o->file, o->labels, (unsigned long long)dims[0], o->dataset,
                            (long long)s->size);
    }
    if (rc == 0) {
        type = H5Dget_type(d);
        if (type < 0) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: HDF5 could not read the type of labels '%s' (%s)", o->file,
                                o->labels, h5_reason(why));
        }
    }
    if (rc == 0 && H5Tget_class(type) != H5T_INTEGER) {
        H5T_class_t c = H5Tget_class(type);
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: labels '%s' hold %s; store class ids as integers 0, 1, 2, ...",
                            o->file, o->labels,
                            c == H5T_FLOAT ? "floating-point numbers" : class_text(c));
    }
    if (rc == 0) {
        raw = malloc((size_t)s->size * sizeof *raw);
        s->labels = malloc((size_t)s->size * sizeof *s->labels);
        if (!raw || !s->labels)
            rc = agon_error_set(err, AGON_ENOMEM, "hdf5: out of memory");
    }
    if (rc == 0 && H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
        rc = agon_error_set(err, AGON_EDATA, "%s: HDF5 could not read labels '%s' (%s)",
                            o->file, o->labels, h5_reason(why));
    }
    long long max = -1;
    for (int64_t i = 0; rc == 0 && i < s->size; i++) {
        if (raw[i] < 0) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: labels '%s' hold %lld at index %lld; class ids must be "
                                ">= 0",
                                o->file, o->labels, raw[i], (long long)i);
        } else if (o->n_classes > 0 && raw[i] >= o->n_classes) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: labels '%s' hold %lld at index %lld but n_classes is %lld; "
                                "raise dataset.n_classes or fix the labels",
                                o->file, o->labels, raw[i], (long long)i,
                                (long long)o->n_classes);
        } else if (raw[i] >= H5D_MAX_CLASSES) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: labels '%s' hold %lld at index %lld; at most %d classes "
                                "are supported",
                                o->file, o->labels, raw[i], (long long)i, H5D_MAX_CLASSES);
        } else {
            s->labels[i] = (int32_t)raw[i];
            max = raw[i] > max ? raw[i] : max;
        }
    }
    free(raw);
    if (type >= 0)
        H5Tclose(type);
    if (d >= 0)
        H5Dclose(d);
    if (rc == 0)
        *n_classes = o->n_classes > 0 ? o->n_classes : max + 1;
    return rc;
}

/* Everything that touches HDF5; runs with HDF5's error printing off. */
static int load(const h5d_options *o, h5d_state *s, agon_dataset_info *info, agon_error *err)
{
    char why[256];
    htri_t is_h5 = H5Fis_hdf5(o->file);
    if (is_h5 == 0) {
        return agon_error_set(err, AGON_EDATA,
                              "%s: not an HDF5 file; dataset.file must name an HDF5 file "
                              "(e.g. one written with h5py)",
                              o->file);
    }
    hid_t file = is_h5 > 0 ? H5Fopen(o->file, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    if (file < 0) {
        return agon_error_set(err, AGON_EIO,
                              "%s: HDF5 could not open the file (%s); check that the file is "
                              "complete and not being written",
                              o->file, h5_reason(why));
    }
    int rc = read_samples(file, o, s, &info->sample_shape, err);
    if (rc == 0 && o->labels[0])
        rc = read_labels(file, o, s, &info->n_classes, err);
    H5Fclose(file);
    return rc;
}

static int h5d_create(const agon_node *cfg, void **state, agon_dataset_info *info,
                      agon_error *err)
{
    h5d_options o;
    int rc;

    *state = NULL;
    if ((rc = agon_cfg_require_string(cfg, "file", &o.file, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "dataset", "/x", &o.dataset, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "labels", "", &o.labels, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "n_classes", 0, &o.n_classes, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "scale", "auto", &o.scale, err)) != 0)
        return rc;
    const agon_node *n_classes_node = agon_node_get(cfg, "n_classes");
    if (strcmp(o.scale, "auto") != 0 && strcmp(o.scale, "none") != 0 &&
        strcmp(o.scale, "uint8") != 0) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "scale"),
                               "unknown scale '%s'; choose auto, none or uint8", o.scale);
    }
    if (o.file[0] == '\0') {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "file"),
                               "is empty; give the path of an HDF5 file");
    }
    if (o.dataset[0] == '\0') {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "dataset"),
                               "is empty; give the HDF5 path of the samples, e.g. /x");
    }
    if (o.n_classes < 0 || o.n_classes > H5D_MAX_CLASSES) {
        return agon_node_error(err, AGON_ECONFIG, n_classes_node,
                               "must be 0 (max label + 1) or 1 to %d, got %lld",
                               H5D_MAX_CLASSES, (long long)o.n_classes);
    }
    if (o.n_classes > 0 && o.labels[0] == '\0') {
        return agon_node_error(err, AGON_ECONFIG, n_classes_node,
                               "is set but there are no labels; set dataset.labels to the HDF5 "
                               "path of the class ids");
    }

    /* Checked here rather than left to HDF5, whose messages for a missing
     * file are about its drivers. */
    struct stat st;
    if (stat(o.file, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return agon_error_set(err, AGON_EIO,
                                  "%s: no such file; check dataset.file (a relative path is "
                                  "relative to the working directory)",
                                  o.file);
        }
        return agon_error_set(err, AGON_EIO, "%s: cannot open: %s", o.file, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        return agon_error_set(err, AGON_EIO,
                              "%s: is a directory; dataset.file must name an HDF5 file", o.file);
    }

    h5d_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "hdf5: out of memory");
    memset(info, 0, sizeof *info);
    H5E_BEGIN_TRY
    {
        rc = load(&o, s, info, err);
    }
    H5E_END_TRY;
    if (rc == 0 && !(s->order = agon_epoch_sampler_create(s->size, NULL)))
        rc = agon_error_set(err, AGON_ENOMEM, "hdf5: out of memory");
    if (rc != 0) {
        h5d_destroy(s);
        memset(info, 0, sizeof *info);
        return rc;
    }
    info->size = s->size;
    *state = s;
    return 0;
}

static int h5d_next_batch(void *state, agon_rng *rng, agon_tensor *out, int32_t *labels,
                          agon_error *err)
{
    h5d_state *s = state;
    int64_t numel = agon_tensor_numel(out);
    if (out->shape.ndim < 1 || numel != out->shape.dim[0] * s->sample_numel) {
        char got[96], want[96];
        agon_shape_format(&s->sample, want, sizeof want);
        return agon_error_set(err, AGON_EINTERNAL,
                              "hdf5: batch tensor has shape %s, expected [n, %s",
                              agon_shape_format(&out->shape, got, sizeof got), want + 1);
    }
    int64_t n = out->shape.dim[0];
    size_t bytes = (size_t)s->sample_numel * sizeof(float);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = agon_epoch_sampler_next(s->order, rng);
        memcpy(out->data + i * s->sample_numel, s->x + (size_t)k * (size_t)s->sample_numel,
               bytes);
        if (labels && s->labels)
            labels[i] = s->labels[k];
    }
    return 0;
}

static const agon_dataset_vtable h5d_vtable = {
    sizeof(agon_dataset_vtable),
    h5d_create,
    h5d_destroy,
    h5d_next_batch,
};

static const agon_param_spec h5d_params[] = {
    {"file", AGON_PARAM_STRING, NULL, AGON_NO_RANGE, NULL,
     "the HDF5 file (relative paths start at the working directory)"},
    {"dataset", AGON_PARAM_STRING, "/x", AGON_NO_RANGE, NULL,
     "HDF5 path of the samples, an array [n, ...] (at most 4 dims per sample)"},
    {"labels", AGON_PARAM_STRING, "\"\"", AGON_NO_RANGE, NULL,
     "HDF5 path of integer class ids >= 0, one per sample (\"\": no labels)"},
    {"n_classes", AGON_PARAM_INT, "0", 0, H5D_MAX_CLASSES, NULL,
     "number of classes (0: max label + 1); needs labels"},
    {"scale", AGON_PARAM_CHOICE, "auto", AGON_NO_RANGE, "auto|none|uint8",
     "uint8: x/127.5 - 1; none: as stored; auto: uint8 for 8-bit unsigned data, else none"},
    AGON_PARAM_END,
};

AGON_PLUGIN("hdf5_data", "1.0.0", "Datasets read from HDF5 files",
            AGON_DATASET("hdf5", "Samples (and optional labels) from an array in an HDF5 file",
                         h5d_params, &h5d_vtable));
