/* The domain classifier (see agon/classifier.h and docs/classifier.md):
 * training from a YAML file, the file it is saved in, and loading it back
 * for the image metrics.
 *
 * The network is held as two agon_nets: the body (input -> features, the
 * spec's layers 0..8) and the head (the last linear layer, features ->
 * logits).  The metrics need the penultimate activations, which a single
 * sequential net does not hand out; with two nets the body's output is
 * the features, and training back-propagates the head's input gradient
 * into the body.  In the file, parameters are named by their layer's index
 * in the whole network ("9.weight" is the head's weight), so the layout
 * does not depend on this split.
 *
 * The file is written through agon's log writer (core/h5log.c is the only
 * writer of HDF5) to a temporary name next to the output and renamed into
 * place, so a reader never sees half a classifier.  Reading uses the HDF5
 * C API directly, with HDF5's error printing off: the library never prints.
 */
#include "agon/classifier.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "agon/log.h"
#include "agon/nn.h"
#include "agon/optim.h"
#include "classifier_int.h"
#include "experiment_int.h"
#include "output_int.h"
#include "sha256_int.h"

#define CLS_FORMAT 1
#define CLS_KIND "classifier"
/* PyTorch's BatchNorm defaults; eps is stored in the file because eval
 * mode depends on it. */
#define CLS_BN_MOMENTUM 0.1
#define CLS_BN_EPS 1e-5
/* Evaluation runs in chunks of at least this many samples: larger matrix
 * products, and eval mode makes the result independent of the chunking. */
#define CLS_EVAL_BATCH 256
/* Parameters and buffers of the network: 10 + 4. */
#define CLS_MAX_TENSORS 32

/* ---- the loss ------------------------------------------------------------------ */

double agon__softmax_xent(const float *logits, const int32_t *labels, int64_t n, int64_t k,
                          float *dlogits)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits + i * k;
        double max = row[0];
        for (int64_t j = 1; j < k; j++)
            max = row[j] > max ? row[j] : max;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++)
            sum += exp((double)row[j] - max);
        double log_z = max + log(sum);
        total += log_z - (double)row[labels[i]];
        if (dlogits) {
            float *d = dlogits + i * k;
            for (int64_t j = 0; j < k; j++) {
                double p = exp((double)row[j] - log_z);
                d[j] = (float)((p - (j == labels[i] ? 1.0 : 0.0)) / (double)n);
            }
        }
    }
    return total / (double)n;
}

static void softmax_rows(const float *logits, int64_t n, int64_t k, float *probs)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = logits + i * k;
        float *out = probs + i * k;
        double max = row[0];
        for (int64_t j = 1; j < k; j++)
            max = row[j] > max ? row[j] : max;
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++)
            sum += exp((double)row[j] - max);
        for (int64_t j = 0; j < k; j++)
            out[j] = (float)(exp((double)row[j] - max) / sum);
    }
}

static int64_t argmax_row(const float *row, int64_t k)
{
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++) {
        if (row[j] > row[best])
            best = j;
    }
    return best;
}

/* ---- the network ------------------------------------------------------------- */

typedef struct cls_arch {
    int64_t in_c, in_h, in_w;
    int64_t n_classes, c1, c2, features;
    double slope, bn_momentum, bn_eps;
} cls_arch;

typedef struct cls_nets {
    agon_net *body;     /* input -> features */
    agon_net *head;     /* features -> logits */
} cls_nets;

static void nets_destroy(cls_nets *n)
{
    agon_net_destroy(n->body);
    agon_net_destroy(n->head);
    n->body = n->head = NULL;
}

/* The network of agon/classifier.h.  Training and loading both build it
 * here, so a saved file rebuilds exactly.  Layers followed by batch norm
 * have no bias (batch norm's shift makes it redundant). */
static int build_nets(const cls_arch *a, int64_t max_batch, agon_rng *rng, cls_nets *out,
                      agon_error *err)
{
    memset(out, 0, sizeof *out);
    const int64_t in_dims[3] = {a->in_c, a->in_h, a->in_w};
    agon_shape in = agon_shape_make(3, in_dims);
    const float slope = (float)a->slope;
    const float momentum = (float)a->bn_momentum, eps = (float)a->bn_eps;
    agon_conv_spec conv1 = {.out_channels = a->c1, .kernel_h = 4, .kernel_w = 4,
                            .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .bias = true};
    agon_conv_spec conv2 = conv1;
    conv2.out_channels = a->c2;
    conv2.bias = false;
    int rc = 0;
    out->body = agon_net_create(&in, max_batch, err);
    if (!out->body)
        return err && err->code ? err->code : AGON_ENOMEM;
    agon_net *b = out->body;
    if ((rc = agon_net_add_conv2d(b, &conv1, AGON_INIT_DEFAULT_UNIFORM, 0.0f, rng, err)) != 0 ||
        (rc = agon_net_add_activation(b, AGON_ACT_LEAKY_RELU, slope, err)) != 0 ||
        (rc = agon_net_add_conv2d(b, &conv2, AGON_INIT_DEFAULT_UNIFORM, 0.0f, rng, err)) != 0 ||
        (rc = agon_net_add_batchnorm(b, momentum, eps, true, err)) != 0 ||
        (rc = agon_net_add_activation(b, AGON_ACT_LEAKY_RELU, slope, err)) != 0 ||
        (rc = agon_net_add_flatten(b, err)) != 0 ||
        (rc = agon_net_add_linear(b, a->features, false, AGON_INIT_DEFAULT_UNIFORM, 0.0f, rng,
                                  err)) != 0 ||
        (rc = agon_net_add_batchnorm(b, momentum, eps, true, err)) != 0 ||
        (rc = agon_net_add_activation(b, AGON_ACT_LEAKY_RELU, slope, err)) != 0)
        goto fail;
    const int64_t feat_dims[1] = {a->features};
    agon_shape feat = agon_shape_make(1, feat_dims);
    out->head = agon_net_create(&feat, max_batch, err);
    if (!out->head) {
        rc = err && err->code ? err->code : AGON_ENOMEM;
        goto fail;
    }
    rc = agon_net_add_linear(out->head, a->n_classes, true, AGON_INIT_DEFAULT_UNIFORM, 0.0f, rng,
                             err);
    if (rc == 0)
        return 0;
fail:
    nets_destroy(out);
    return rc;
}

/* A parameter or buffer with its name in the whole network. */
typedef struct cls_tensor {
    char name[64];
    agon_tensor *t;
} cls_tensor;

/* "<i>.<rest>" of a layer of a net that starts at layer `offset`. */
static void full_name(const char *name, size_t offset, char *buf, size_t cap)
{
    char *dot = NULL;
    long idx = strtol(name, &dot, 10);
    snprintf(buf, cap, "%ld%s", idx + (long)offset, dot ? dot : "");
}

/* Every parameter and buffer, body first; returns the count. */
static size_t collect_tensors(cls_nets *nets, cls_tensor *out)
{
    size_t n = 0;
    agon_net *parts[2] = {nets->body, nets->head};
    size_t offset = 0;
    for (int p = 0; p < 2; p++) {
        agon_net *net = parts[p];
        for (size_t i = 0; i < agon_net_param_count(net) && n < CLS_MAX_TENSORS; i++) {
            agon_param *par = agon_net_param(net, i);
            full_name(par->name, offset, out[n].name, sizeof out[n].name);
            out[n++].t = &par->value;
        }
        for (size_t i = 0; i < agon_net_buffer_count(net) && n < CLS_MAX_TENSORS; i++) {
            agon_buffer *buf = agon_net_buffer(net, i);
            full_name(buf->name, offset, out[n].name, sizeof out[n].name);
            out[n++].t = &buf->value;
        }
        offset += agon_net_layer_count(net);
    }
    return n;
}

/* ---- loading -------------------------------------------------------------------- */

struct agon_classifier {
    char *path;
    char sha256[65];
    cls_arch arch;
    agon_shape in_shape;
    double test_accuracy;
    int64_t max_batch;
    cls_nets nets;
};

static const char not_written_hint[] = "give a file written by agon classifier train";
static const char damaged_hint[] = "the file is damaged or incomplete; train the classifier again";

/* An open root attribute or dataset with its file type and dataspace; an
 * id is negative when HDF5 could not open it. */
typedef struct h5_item {
    hid_t obj, type, space;
    bool is_dataset;
} h5_item;

static h5_item item_open(hid_t file, const char *name, bool is_dataset)
{
    h5_item it = {.obj = is_dataset ? H5Dopen2(file, name, H5P_DEFAULT)
                                    : H5Aopen(file, name, H5P_DEFAULT),
                  .type = H5I_INVALID_HID,
                  .space = H5I_INVALID_HID,
                  .is_dataset = is_dataset};
    if (it.obj >= 0) {
        it.type = is_dataset ? H5Dget_type(it.obj) : H5Aget_type(it.obj);
        it.space = is_dataset ? H5Dget_space(it.obj) : H5Aget_space(it.obj);
    }
    return it;
}

static void item_close(const h5_item *it)
{
    if (it->space >= 0)
        H5Sclose(it->space);
    if (it->type >= 0)
        H5Tclose(it->type);
    if (it->obj >= 0 && it->is_dataset)
        H5Dclose(it->obj);
    else if (it->obj >= 0)
        H5Aclose(it->obj);
}

/* A scalar string attribute of the root as a malloc'ed string: 1 when read,
 * 0 when absent, -1 when present but not a string (or unreadable). */
static int read_attr_string(hid_t file, const char *name, char **out)
{
    *out = NULL;
    if (H5Aexists(file, name) <= 0)
        return 0;
    h5_item at = item_open(file, name, false);
    hid_t mt = H5I_INVALID_HID;
    int rc = -1;
    if (at.type < 0 || at.space < 0 || H5Tget_class(at.type) != H5T_STRING ||
        H5Sget_simple_extent_npoints(at.space) != 1)
        goto done;
    mt = H5Tcopy(H5T_C_S1);
    /* HDF5 converts no strings between character sets. */
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(at.type)) < 0)
        goto done;
    if (H5Tis_variable_str(at.type) > 0) {
        char *p = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(at.obj, mt, &p) >= 0) {
            *out = strdup(p ? p : "");
            H5free_memory(p);
            rc = *out ? 1 : -1;
        }
    } else {
        size_t n = H5Tget_size(at.type);
        char *buf = calloc(n + 1, 1);
        if (buf && H5Tset_size(mt, n + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
            H5Aread(at.obj, mt, buf) >= 0) {
            *out = buf;
            rc = 1;
        } else {
            free(buf);
        }
    }
done:
    if (mt >= 0)
        H5Tclose(mt);
    item_close(&at);
    return rc;
}

/* A scalar numeric attribute of the root as double: 1, 0 (absent), -1. */
static int read_attr_number(hid_t file, const char *name, double *v)
{
    if (H5Aexists(file, name) <= 0)
        return 0;
    h5_item at = item_open(file, name, false);
    int rc = -1;
    if (at.type >= 0 && at.space >= 0 && H5Sget_simple_extent_npoints(at.space) == 1) {
        H5T_class_t c = H5Tget_class(at.type);
        if ((c == H5T_INTEGER || c == H5T_FLOAT) && H5Aread(at.obj, H5T_NATIVE_DOUBLE, v) >= 0)
            rc = 1;
    }
    item_close(&at);
    return rc;
}

static int require_number(hid_t file, const char *path, const char *name, double *v,
                          agon_error *err)
{
    int found = read_attr_number(file, name, v);
    if (found > 0 && isfinite(*v))
        return 0;
    if (found == 0)
        return agon_error_set(err, AGON_EDATA,
                              "%s: classifier file has no root attribute '%s'; %s", path, name,
                              damaged_hint);
    return agon_error_set(err, AGON_EDATA,
                          "%s: classifier file's root attribute '%s' is not a number; %s", path,
                          name, damaged_hint);
}

/* A positive whole-number attribute (a size of the network). */
static int require_size(hid_t file, const char *path, const char *name, int64_t max,
                        int64_t *out, agon_error *err)
{
    double v;
    int rc = require_number(file, path, name, &v, err);
    if (rc != 0)
        return rc;
    if (!(v >= 1 && v <= (double)max && v == floor(v)))
        return agon_error_set(err, AGON_EDATA,
                              "%s: classifier file's root attribute %s = %g is not a size from 1 "
                              "to %lld; %s",
                              path, name, v, (long long)max, damaged_hint);
    *out = (int64_t)v;
    return 0;
}

static int check_kind(hid_t file, const char *path, agon_error *err)
{
    char *kind = NULL;
    int found = read_attr_string(file, "kind", &kind);
    int rc = 0;
    if (found == 0)
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: not a classifier file (it has no root attribute 'kind'); %s",
                            path, not_written_hint);
    else if (found < 0)
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: not a classifier file (its root attribute 'kind' is not a "
                            "string); %s",
                            path, not_written_hint);
    else if (strcmp(kind, CLS_KIND) != 0)
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: not a classifier file (its kind is '%s'); %s", path, kind,
                            not_written_hint);
    free(kind);
    if (rc != 0)
        return rc;
    double format;
    rc = require_number(file, path, "classifier_format", &format, err);
    if (rc == 0 && format != CLS_FORMAT)
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: classifier format %g cannot be read by this agon (it reads "
                            "format %d); train the classifier again with this agon",
                            path, format, CLS_FORMAT);
    return rc;
}

static int read_arch(hid_t file, const char *path, cls_arch *a, double *accuracy,
                     agon_error *err)
{
    const int64_t big = 1 << 20;
    int rc;
    if ((rc = require_size(file, path, "input_channels", 4096, &a->in_c, err)) != 0 ||
        (rc = require_size(file, path, "input_height", big, &a->in_h, err)) != 0 ||
        (rc = require_size(file, path, "input_width", big, &a->in_w, err)) != 0 ||
        (rc = require_size(file, path, "n_classes", big, &a->n_classes, err)) != 0 ||
        (rc = require_size(file, path, "c1", big, &a->c1, err)) != 0 ||
        (rc = require_size(file, path, "c2", big, &a->c2, err)) != 0 ||
        (rc = require_size(file, path, "features", big, &a->features, err)) != 0 ||
        (rc = require_number(file, path, "slope", &a->slope, err)) != 0 ||
        (rc = require_number(file, path, "bn_momentum", &a->bn_momentum, err)) != 0 ||
        (rc = require_number(file, path, "bn_eps", &a->bn_eps, err)) != 0 ||
        (rc = require_number(file, path, "test_accuracy", accuracy, err)) != 0)
        return rc;
    if (!(a->bn_eps > 0))
        return agon_error_set(err, AGON_EDATA,
                              "%s: classifier file's root attribute bn_eps = %g is not "
                              "positive; %s",
                              path, a->bn_eps, damaged_hint);
    return 0;
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

/* Reads /params/<name> into t, which has the shape the network expects. */
static int read_tensor(hid_t file, const char *path, const cls_tensor *ct, agon_error *err)
{
    char h5path[96];
    snprintf(h5path, sizeof h5path, "/params/%.63s", ct->name);
    H5O_info_t oi;
    if (H5Lexists(file, "/params", H5P_DEFAULT) <= 0 ||
        H5Lexists(file, h5path, H5P_DEFAULT) <= 0 ||
        H5Oget_info_by_name2(file, h5path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
        return agon_error_set(err, AGON_EDATA, "%s: classifier file has no dataset %s; %s",
                              path, h5path, damaged_hint);
    h5_item ds = item_open(file, h5path, true);
    int rc = 0;
    const agon_shape *want = &ct->t->shape;
    hsize_t dims[H5S_MAX_RANK];
    int rank = ds.space >= 0 ? H5Sget_simple_extent_ndims(ds.space) : -1;
    if (ds.obj < 0 || ds.space < 0 || ds.type < 0 || rank < 0 || rank > H5S_MAX_RANK ||
        H5Sget_simple_extent_dims(ds.space, dims, NULL) < 0) {
        rc = agon_error_set(err, AGON_EDATA, "%s: cannot read dataset %s; %s", path, h5path,
                            damaged_hint);
        goto done;
    }
    bool same = rank == want->ndim;
    for (int i = 0; same && i < rank; i++)
        same = dims[i] == (hsize_t)want->dim[i];
    if (!same) {
        char got[128], exp[64];
        format_dims(rank, dims, got, sizeof got);
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: dataset %s has shape %s, but the network in the file's "
                            "attributes needs %s; %s",
                            path, h5path, got, agon_shape_format(want, exp, sizeof exp),
                            damaged_hint);
        goto done;
    }
    if (H5Tget_class(ds.type) != H5T_FLOAT ||
        H5Dread(ds.obj, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ct->t->data) < 0) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: cannot read dataset %s as floating-point numbers; %s", path,
                            h5path, damaged_hint);
        goto done;
    }
    if (!agon_tensor_all_finite(ct->t))
        rc = agon_error_set(err, AGON_EDATA, "%s: dataset %s holds non-finite values; %s", path,
                            h5path, damaged_hint);
done:
    item_close(&ds);
    return rc;
}

/* "classifiers/fmnist.h5" comes from experiments/classifiers/fmnist.yaml;
 * a file elsewhere is made with -o. */
static int missing_file_error(const char *path, agon_error *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".h5") == 0)
        n -= 3;
    char standard[4200];
    snprintf(standard, sizeof standard, "classifiers/%.*s.h5", (int)n, base);
    bool is_standard = strcmp(path, standard) == 0;
    return agon_error_set(err, AGON_EIO,
                          "%s: classifier file not found; train one with: agon classifier train "
                          "experiments/classifiers/%.*s.yaml%s%s",
                          path, (int)n, base, is_standard ? "" : " -o ",
                          is_standard ? "" : path);
}

agon_classifier *agon_classifier_load(const char *path, int64_t max_batch, agon_error *err)
{
    if (!path || !path[0]) {
        agon_error_set(err, AGON_EINTERNAL, "agon_classifier_load: no path given");
        return NULL;
    }
    if (max_batch < 1) {
        agon_error_set(err, AGON_EINTERNAL,
                       "%s: agon_classifier_load needs max_batch >= 1, got %lld", path,
                       (long long)max_batch);
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            missing_file_error(path, err);
        else
            agon_error_set(err, AGON_EIO, "%s: cannot open classifier file: %s", path,
                           strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        agon_error_set(err, AGON_EIO, "%s: not a regular file; give the path of a classifier "
                                      "file (.h5)", path);
        return NULL;
    }
    agon_classifier *cls = calloc(1, sizeof *cls);
    if (!cls || !(cls->path = strdup(path))) {
        free(cls);
        agon_error_set(err, AGON_ENOMEM, "%s: out of memory loading the classifier", path);
        return NULL;
    }
    cls->max_batch = max_batch;
    if (agon__sha256_file(path, cls->sha256) != 0) {
        agon_error_set(err, AGON_EIO, "%s: cannot read classifier file: %s", path,
                       strerror(errno));
        agon_classifier_destroy(cls);
        return NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) {
        agon_error_set(err, AGON_EDATA, "%s: not an HDF5 file; %s", path, not_written_hint);
        agon_classifier_destroy(cls);
        return NULL;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        agon_error_set(err, AGON_EDATA, "%s: cannot open the HDF5 file; %s", path, damaged_hint);
        agon_classifier_destroy(cls);
        return NULL;
    }
    int rc = check_kind(file, path, err);
    if (rc == 0)
        rc = read_arch(file, path, &cls->arch, &cls->test_accuracy, err);
    if (rc == 0) {
        agon_rng rng;
        agon_rng_seed(&rng, 0, "classifier/load");
        agon_error build_err = {0};
        rc = build_nets(&cls->arch, max_batch, &rng, &cls->nets, &build_err);
        if (rc != 0)
            agon_error_set(err, rc == AGON_ENOMEM ? AGON_ENOMEM : AGON_EDATA,
                           "%s: the network in the file's attributes cannot be built: %s", path,
                           build_err.message);
    }
    if (rc == 0) {
        cls_tensor tensors[CLS_MAX_TENSORS];
        size_t n = collect_tensors(&cls->nets, tensors);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = read_tensor(file, path, &tensors[i], err);
    }
    H5Fclose(file);
    if (rc != 0) {
        agon_classifier_destroy(cls);
        return NULL;
    }
    const int64_t dims[3] = {cls->arch.in_c, cls->arch.in_h, cls->arch.in_w};
    cls->in_shape = agon_shape_make(3, dims);
    return cls;
}

void agon_classifier_destroy(agon_classifier *cls)
{
    if (!cls)
        return;
    nets_destroy(&cls->nets);
    free(cls->path);
    free(cls);
}

const char *agon_classifier_path(const agon_classifier *cls)
{
    return cls->path;
}

const char *agon_classifier_sha256(const agon_classifier *cls)
{
    return cls->sha256;
}

const agon_shape *agon_classifier_input_shape(const agon_classifier *cls)
{
    return &cls->in_shape;
}

int64_t agon_classifier_n_classes(const agon_classifier *cls)
{
    return cls->arch.n_classes;
}

int64_t agon_classifier_feature_dim(const agon_classifier *cls)
{
    return cls->arch.features;
}

double agon_classifier_test_accuracy(const agon_classifier *cls)
{
    return cls->test_accuracy;
}

int agon_classifier_run(agon_classifier *cls, const agon_tensor *x, float *features,
                        float *probs, agon_error *err)
{
    const agon_shape *s = &cls->in_shape;
    bool ok = x && x->shape.ndim == 4 && x->shape.dim[0] >= 1;
    for (int i = 0; ok && i < 3; i++)
        ok = x->shape.dim[i + 1] == s->dim[i];
    if (!ok) {
        char want[64], got[96];
        agon_shape_format(s, want, sizeof want);
        if (x)
            agon_shape_format(&x->shape, got, sizeof got);
        return agon_error_set(err, AGON_EDATA,
                              "%s: the classifier takes images of shape %s (a batch [n, %lld, "
                              "%lld, %lld]), got a batch of shape %s",
                              cls->path, want, (long long)s->dim[0], (long long)s->dim[1],
                              (long long)s->dim[2], x ? got : "(none)");
    }
    const int64_t n = x->shape.dim[0];
    const int64_t f = cls->arch.features, k = cls->arch.n_classes;
    for (int64_t i = 0; i < n; i += cls->max_batch) {
        int64_t rows = n - i < cls->max_batch ? n - i : cls->max_batch;
        agon_tensor view = agon_tensor_rows(x, i, rows);
        const agon_tensor *feat = agon_net_forward(cls->nets.body, &view, false);
        if (features)
            memcpy(features + i * f, feat->data, (size_t)(rows * f) * sizeof(float));
        if (probs) {
            const agon_tensor *logits = agon_net_forward(cls->nets.head, feat, false);
            softmax_rows(logits->data, rows, k, probs + i * k);
        }
    }
    return 0;
}

/* ---- the training file ----------------------------------------------------------- */

/* Every key documented here is listed in docs/classifier.md. */
static const agon_param_spec root_schema[] = {
    {"seed", AGON_PARAM_INT, "0", 0, 9007199254740992.0, NULL,
     "seed of the classifier's random streams (init, data, test)"},
    {"description", AGON_PARAM_STRING, "''", AGON_NO_RANGE, NULL,
     "free text describing the classifier"},
    {"output", AGON_PARAM_STRING, "''", AGON_NO_RANGE, NULL,
     "classifier file; empty: classifiers/<training file name>.h5 (-o overrides)"},
    AGON_PARAM_END,
};

static const agon_param_spec model_schema[] = {
    {"c1", AGON_PARAM_INT, "32", 1, 4096, NULL, "channels of the first convolution"},
    {"c2", AGON_PARAM_INT, "64", 1, 4096, NULL, "channels of the second convolution"},
    {"features", AGON_PARAM_INT, "128", 1, 65536, NULL,
     "width of the feature layer (the penultimate layer the metrics use)"},
    {"slope", AGON_PARAM_FLOAT, "0.2", 0, 1, NULL, "negative slope of the leaky ReLUs"},
    AGON_PARAM_END,
};

static const agon_param_spec train_schema[] = {
    {"epochs", AGON_PARAM_INT, "5", 1, 100000, NULL,
     "passes over the training data (each size/batch_size batches)"},
    {"batch_size", AGON_PARAM_INT, "64", 2, 65536, NULL, "samples per training batch"},
    {"threads", AGON_PARAM_INT, "1", 1, 256, NULL,
     "threads of the matrix products (at most 4 are used)"},
    {"kernels", AGON_PARAM_CHOICE, "portable", AGON_NO_RANGE, "portable|native",
     "OpenBLAS kernels of the matrix products, as train.kernels of an experiment"},
    AGON_PARAM_END,
};

/* In the order the "known keys" message lists them. */
static const char *const root_keys[] = {"seed",  "description", "dataset", "test_dataset",
                                        "model", "train",       "optimizer", "output", NULL};

typedef struct cls_job {
    agon_registry *reg;
    agon_config *cfg;
    char *yaml;
    char *stem;
    uint64_t seed;
    agon__choice data, test_data, optim;
    cls_arch arch;              /* model part; input and classes from the data */
    int64_t epochs, batch, threads;
    agon_kernels kernels;
    const char *output;
} cls_job;

/* Resolves `plugin:` of a section and validates the section with that
 * component's schema. */
static void resolve_choice(cls_job *job, const agon_node *section, agon_kind kind,
                           agon__choice *out, agon_diag *diag)
{
    static const char *const host_keys[] = {"plugin", NULL};
    agon__resolve_choice(job->reg, job->cfg, section, kind, host_keys, out, diag);
}

/* ---- copying a section as a flow value (the default test_dataset) ---- */

static bool plain_ok(const char *s)
{
    if (!s[0] || s[0] == ' ' || s[strlen(s) - 1] == ' ' || strchr("&*!|>%@`?", s[0]))
        return false;
    for (const char *c = s; *c; c++) {
        if (strchr(",[]{}#:'\"\t\n", *c))
            return false;
    }
    return true;
}

static void flow_write(FILE *out, const agon_node *node)
{
    switch (agon_node_kind_of(node)) {
    case AGON_NODE_SCALAR: {
        const char *s = agon_node_scalar(node);
        if (!agon_node_quoted(node) && plain_ok(s)) {
            fputs(s, out);
            break;
        }
        fputc('\'', out);
        for (const char *c = s; *c; c++) {
            if (*c == '\'')
                fputc('\'', out);
            fputc(*c, out);
        }
        fputc('\'', out);
        break;
    }
    case AGON_NODE_SEQ:
        fputc('[', out);
        for (size_t i = 0; i < agon_node_len(node); i++) {
            if (i)
                fputs(", ", out);
            flow_write(out, agon_node_at(node, i));
        }
        fputc(']', out);
        break;
    case AGON_NODE_MAP:
        fputc('{', out);
        for (size_t i = 0; i < agon_node_len(node); i++) {
            const char *key = agon_node_key_at(node, i);
            fprintf(out, "%s%s: ", i ? ", " : "", key);
            flow_write(out, agon_node_at(node, i));
        }
        fputc('}', out);
        break;
    default:
        fputc('~', out);
        break;
    }
}

static bool schema_has(const agon_param_spec *schema, const char *key)
{
    for (size_t i = 0; schema && schema[i].name; i++) {
        if (strcmp(schema[i].name, key) == 0)
            return true;
    }
    return false;
}

/* The test data defaults to the training data's section with split: test. */
static void default_test_dataset(cls_job *job, agon_diag *diag)
{
    const agon_node *root = agon_config_root(job->cfg);
    if (!schema_has(job->data.component->params, "split")) {
        agon_node_diag(diag, AGON_ECONFIG, root,
                       "missing section 'test_dataset': dataset '%s' has no 'split' key, so "
                       "the test data cannot be derived from it; add test_dataset (a map with "
                       "'plugin: NAME' and the held-out data)",
                       job->data.component->name);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) {
        agon_diag_add(diag, AGON_ENOMEM, "out of memory while validating the config");
        return;
    }
    fputs("test_dataset=", mem);
    flow_write(mem, job->data.section);
    if (fclose(mem) != 0 || !text) {
        free(text);
        agon_diag_add(diag, AGON_ENOMEM, "out of memory while validating the config");
        return;
    }
    agon_error err = {0};
    if (agon_config_set(job->cfg, text, 0, &err) != 0 ||
        agon_config_set(job->cfg, "test_dataset.split=test", 0, &err) != 0)
        agon_diag_add_error(diag, &err);
    free(text);
}

static void resolve_sections(cls_job *job, agon_diag *diag)
{
    const agon_node *root = agon_config_root(job->cfg);
    const agon_node *data = agon_node_get(root, "dataset");
    if (!data)
        agon_node_diag(diag, AGON_ECONFIG, root,
                       "missing section 'dataset' (a map with 'plugin: NAME' naming the "
                       "labelled image data to train on)");
    else
        resolve_choice(job, data, AGON_KIND_DATASET, &job->data, diag);

    const agon_node *opt = agon_node_get(root, "optimizer");
    if (!opt || (agon_node_kind_of(opt) == AGON_NODE_MAP && !agon_node_get(opt, "plugin"))) {
        agon_error err = {0};
        if (agon_config_set(job->cfg, "optimizer.plugin=adam", 0, &err) != 0)
            agon_diag_add_error(diag, &err);
    }
    opt = agon_node_get(agon_config_root(job->cfg), "optimizer");
    if (opt)
        resolve_choice(job, opt, AGON_KIND_OPTIMIZER, &job->optim, diag);

    if (!job->data.component)
        return;
    if (!agon_node_get(agon_config_root(job->cfg), "test_dataset"))
        default_test_dataset(job, diag);
    const agon_node *test = agon_node_get(agon_config_root(job->cfg), "test_dataset");
    if (test)
        resolve_choice(job, test, AGON_KIND_DATASET, &job->test_data, diag);
}

static int64_t int_of(const agon_node *map, const char *key)
{
    int64_t v = 0;
    agon_cfg_require_int(map, key, &v, NULL);
    return v;
}

static void job_free(cls_job *job)
{
    agon_config_destroy(job->cfg);
    free(job->yaml);
    free(job->stem);
    memset(job, 0, sizeof *job);
}

/* Loads, overrides, validates; every problem goes to diag. */
static int job_load(cls_job *job, agon_registry *reg, const char *path,
                    const char *const *sets, size_t n_sets, agon_diag *diag)
{
    memset(job, 0, sizeof *job);
    job->reg = reg;
    job->stem = agon__stem_of(path);
    job->cfg = agon__config_load_overridden(path, sets, n_sets, diag);
    if (!job->cfg || !job->stem)
        goto fail;
    const agon_node *root = agon_config_root(job->cfg);
    agon__check_root_keys(root, root_keys, diag);
    agon__apply_root_schema(job->cfg, root, root_schema, "the classifier", diag);
    const agon_node *model = agon__host_section(job->cfg, "model", model_schema, diag);
    agon__apply_kernels_default(job->cfg, "train", diag);
    const agon_node *train = agon__host_section(job->cfg, "train", train_schema, diag);
    resolve_sections(job, diag);
    if (diag->count || !model || !train)
        goto fail;

    root = agon_config_root(job->cfg);
    job->seed = (uint64_t)int_of(root, "seed");
    agon_cfg_require_string(root, "output", &job->output, NULL);
    job->arch.c1 = int_of(model, "c1");
    job->arch.c2 = int_of(model, "c2");
    job->arch.features = int_of(model, "features");
    agon_cfg_require_float(model, "slope", &job->arch.slope, NULL);
    job->arch.bn_momentum = CLS_BN_MOMENTUM;
    job->arch.bn_eps = CLS_BN_EPS;
    job->epochs = int_of(train, "epochs");
    job->batch = int_of(train, "batch_size");
    job->threads = int_of(train, "threads");
    agon__read_kernels(train, "train", path, &job->kernels, diag);
    if (diag->count)
        goto fail;

    agon_error err = {0};
    job->yaml = agon_config_to_yaml(job->cfg, &err);
    if (!job->yaml) {
        agon_diag_add_error(diag, &err);
        goto fail;
    }
    return 0;
fail:
    if (diag->count == 0)
        agon_diag_add(diag, AGON_ECONFIG, "%s: invalid classifier training file", path);
    return diag->code ? diag->code : AGON_ECONFIG;
}

/* ---- training ------------------------------------------------------------------- */

typedef struct trainer {
    const cls_job *job;
    const agon_dataset_vtable *dvt, *tvt;
    void *dstate, *tstate;
    agon_dataset_info dinfo, tinfo;
    cls_arch arch;
    cls_nets nets;
    const agon_optimizer_vtable *ovt;
    void *ostate;
    agon_optim_slot *slots;
    size_t n_slots;
    int64_t t;
    agon_arena *arena;
    int64_t eval_batch;
    agon_tensor x;              /* [batch, C, H, W] */
    agon_tensor tx;             /* [eval_batch, C, H, W] */
    agon_tensor dlogits;        /* [batch, n_classes] */
    int32_t *labels, *tlabels;
    /* Each lives at one address for the whole training: the datasets'
     * epoch samplers keep their place per rng address. */
    agon_rng rng_init, rng_data, rng_test;
} trainer;

static void trainer_teardown(trainer *tr)
{
    if (tr->ovt && tr->ostate)
        tr->ovt->destroy(tr->ostate);
    nets_destroy(&tr->nets);
    if (tr->dvt && tr->dstate)
        tr->dvt->destroy(tr->dstate);
    if (tr->tvt && tr->tstate)
        tr->tvt->destroy(tr->tstate);
    agon_arena_destroy(tr->arena);
}

/* Checks that a dataset can train or test a classifier. */
static int check_data(const agon__choice *c, const agon_dataset_info *info, agon_error *err)
{
    const char *name = c->component->name;
    if (info->n_classes <= 0)
        return agon_node_error(err, AGON_ECONFIG, c->section,
                               "dataset '%s' has no class labels; a classifier needs labelled "
                               "data",
                               name);
    if (info->size < 1)
        return agon_node_error(err, AGON_ECONFIG, c->section,
                               "dataset '%s' is an endless stream; a classifier trains and tests "
                               "in epochs over a finite labelled dataset",
                               name);
    if (info->sample_shape.ndim != 3) {
        char s[64];
        return agon_node_error(err, AGON_ECONFIG, c->section,
                               "dataset '%s' has samples of shape %s; the classifier takes "
                               "images [C, H, W]",
                               name, agon_shape_format(&info->sample_shape, s, sizeof s));
    }
    return 0;
}

static int check_labels(const trainer *tr, const int32_t *labels, int64_t n, const char *which,
                        agon_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= tr->arch.n_classes)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "%s: label %d is outside the classes 0 to %lld; this is a bug "
                                  "in the dataset plugin",
                                  which, (int)labels[i], (long long)tr->arch.n_classes - 1);
    }
    return 0;
}

static int trainer_setup(trainer *tr, const cls_job *job, agon_error *err)
{
    memset(tr, 0, sizeof *tr);
    tr->job = job;
    agon_rng_seed(&tr->rng_init, job->seed, "classifier/init");
    agon_rng_seed(&tr->rng_data, job->seed, "classifier/data");
    agon_rng_seed(&tr->rng_test, job->seed, "classifier/test");
    tr->arena = agon_arena_create(0, err);
    if (!tr->arena)
        return AGON_ENOMEM;

    tr->dvt = job->data.component->vtable;
    int rc = tr->dvt->create(job->data.section, &tr->dstate, &tr->dinfo, err);
    if (rc != 0) {
        tr->dstate = NULL;
        return rc;
    }
    tr->tvt = job->test_data.component->vtable;
    rc = tr->tvt->create(job->test_data.section, &tr->tstate, &tr->tinfo, err);
    if (rc != 0) {
        tr->tstate = NULL;
        return rc;
    }
    if ((rc = check_data(&job->data, &tr->dinfo, err)) != 0 ||
        (rc = check_data(&job->test_data, &tr->tinfo, err)) != 0)
        return rc;
    if (!agon_shape_equal(&tr->dinfo.sample_shape, &tr->tinfo.sample_shape)) {
        char a[64], b[64];
        return agon_node_error(err, AGON_ECONFIG, job->test_data.section,
                               "test samples have shape %s but training samples %s; test on "
                               "data of the same kind",
                               agon_shape_format(&tr->tinfo.sample_shape, a, sizeof a),
                               agon_shape_format(&tr->dinfo.sample_shape, b, sizeof b));
    }
    if (tr->tinfo.n_classes > tr->dinfo.n_classes)
        return agon_node_error(err, AGON_ECONFIG, job->test_data.section,
                               "the test data has %lld classes but the training data only "
                               "%lld; test on the same classes",
                               (long long)tr->tinfo.n_classes, (long long)tr->dinfo.n_classes);
    if (job->batch > tr->dinfo.size) {
        const agon_node *train = agon_node_get(agon_config_root(job->cfg), "train");
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(train, "batch_size"),
                               "%lld is larger than the training data (%lld samples); use a "
                               "smaller batch",
                               (long long)job->batch, (long long)tr->dinfo.size);
    }

    tr->arch = job->arch;
    tr->arch.in_c = tr->dinfo.sample_shape.dim[0];
    tr->arch.in_h = tr->dinfo.sample_shape.dim[1];
    tr->arch.in_w = tr->dinfo.sample_shape.dim[2];
    tr->arch.n_classes = tr->dinfo.n_classes;
    tr->eval_batch = job->batch > CLS_EVAL_BATCH ? job->batch : CLS_EVAL_BATCH;
    if (tr->eval_batch > tr->tinfo.size)
        tr->eval_batch = tr->tinfo.size > job->batch ? tr->tinfo.size : job->batch;
    rc = build_nets(&tr->arch, tr->eval_batch, &tr->rng_init, &tr->nets, err);
    if (rc != 0) {
        const agon_node *model = agon_node_get(agon_config_root(job->cfg), "model");
        agon_error_prefix(err, "%s:%d:%d: model", agon_node_file(model), agon_node_line(model),
                          agon_node_col(model));
        return rc;
    }

    tr->ovt = job->optim.component->vtable;
    rc = tr->ovt->create(job->optim.section, &tr->ostate, err);
    if (rc != 0) {
        tr->ostate = NULL;
        return rc;
    }
    size_t nb = agon_net_param_count(tr->nets.body), nh = agon_net_param_count(tr->nets.head);
    tr->n_slots = nb + nh;
    tr->slots = agon_arena_alloc(tr->arena, tr->n_slots * sizeof *tr->slots, err);
    if (!tr->slots)
        return AGON_ENOMEM;
    for (size_t i = 0; i < tr->n_slots; i++) {
        agon_param *p = i < nb ? agon_net_param(tr->nets.body, i)
                               : agon_net_param(tr->nets.head, i - nb);
        tr->slots[i].value = &p->value;
        tr->slots[i].grad = &p->grad;
        for (uint32_t s = 0; s < tr->ovt->n_state; s++) {
            if ((rc = agon_arena_tensor(tr->arena, &tr->slots[i].state[s], &p->value.shape,
                                        err)) != 0)
                return rc;
        }
    }
    agon_shape xb = agon_shape_batched(job->batch, &tr->dinfo.sample_shape);
    agon_shape tb = agon_shape_batched(tr->eval_batch, &tr->dinfo.sample_shape);
    const int64_t ld[2] = {job->batch, tr->arch.n_classes};
    agon_shape lb = agon_shape_make(2, ld);
    if ((rc = agon_arena_tensor(tr->arena, &tr->x, &xb, err)) != 0 ||
        (rc = agon_arena_tensor(tr->arena, &tr->tx, &tb, err)) != 0 ||
        (rc = agon_arena_tensor(tr->arena, &tr->dlogits, &lb, err)) != 0)
        return rc;
    tr->labels = agon_arena_alloc(tr->arena, (size_t)job->batch * sizeof(int32_t), err);
    tr->tlabels = agon_arena_alloc(tr->arena, (size_t)tr->eval_batch * sizeof(int32_t), err);
    return tr->labels && tr->tlabels ? 0 : AGON_ENOMEM;
}

/* One pass of size/batch batches; *loss receives the mean batch loss. */
static int train_epoch(trainer *tr, int64_t epoch, double *loss, agon_error *err)
{
    const int64_t n = tr->job->batch, k = tr->arch.n_classes;
    const int64_t steps = tr->dinfo.size / n;
    double total = 0.0;
    for (int64_t s = 0; s < steps; s++) {
        int rc = tr->dvt->next_batch(tr->dstate, &tr->rng_data, &tr->x, tr->labels, err);
        if (rc == 0)
            rc = check_labels(tr, tr->labels, n, "dataset", err);
        if (rc != 0)
            return rc;
        const agon_tensor *feat = agon_net_forward(tr->nets.body, &tr->x, true);
        const agon_tensor *logits = agon_net_forward(tr->nets.head, feat, true);
        double l = agon__softmax_xent(logits->data, tr->labels, n, k, tr->dlogits.data);
        if (!isfinite(l))
            return agon_error_set(err, AGON_EDIVERGED,
                                  "epoch %lld, batch %lld: the training loss is not finite; "
                                  "lower optimizer.lr",
                                  (long long)epoch, (long long)s + 1);
        total += l;
        agon_net_zero_grad(tr->nets.body);
        agon_net_zero_grad(tr->nets.head);
        const agon_tensor *dfeat = agon_net_backward(tr->nets.head, &tr->dlogits, true, true);
        agon_net_backward(tr->nets.body, dfeat, true, false);
        tr->t++;
        tr->ovt->step(tr->ostate, tr->slots, tr->n_slots, tr->t);
    }
    *loss = total / (double)steps;
    return 0;
}

/* Accuracy on the whole test split in evaluation mode.  Exactly `size`
 * samples are drawn with the test stream, whose epoch sampler then hands
 * out every test sample once (agon/sampler.h): each evaluation is one
 * whole epoch of the test data. */
static int evaluate(trainer *tr, double *accuracy, agon_error *err)
{
    const int64_t size = tr->tinfo.size, k = tr->arch.n_classes;
    int64_t correct = 0;
    for (int64_t i = 0; i < size; i += tr->eval_batch) {
        int64_t rows = size - i < tr->eval_batch ? size - i : tr->eval_batch;
        agon_tensor view = agon_tensor_rows(&tr->tx, 0, rows);
        int rc = tr->tvt->next_batch(tr->tstate, &tr->rng_test, &view, tr->tlabels, err);
        if (rc == 0)
            rc = check_labels(tr, tr->tlabels, rows, "test_dataset", err);
        if (rc != 0)
            return rc;
        const agon_tensor *feat = agon_net_forward(tr->nets.body, &view, false);
        const agon_tensor *logits = agon_net_forward(tr->nets.head, feat, false);
        for (int64_t r = 0; r < rows; r++)
            correct += argmax_row(logits->data + r * k, k) == tr->tlabels[r];
    }
    *accuracy = (double)correct / (double)size;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the output file ------------------------------------------------------------- */

/* mkdir -p of the directory part of `path`. */
static int make_parent_dirs(const char *path, agon_error *err)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return agon_error_set(err, AGON_EIO, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; ; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(dir, 0777) != 0 && errno != EEXIST)
                return agon_error_set(err, AGON_EIO,
                                      "%s: cannot create directory: %s; choose another output "
                                      "path (-o)",
                                      dir, strerror(errno));
            if (end)
                break;
            *p = '/';
        }
    }
    return 0;
}

typedef struct epoch_row {
    double loss, accuracy, seconds;
} epoch_row;

static int write_contents(agon_log *log, trainer *tr, const epoch_row *rows, int64_t epochs,
                          double accuracy, double seconds, agon_error *err)
{
    const cls_job *job = tr->job;
    const cls_arch *a = &tr->arch;
    const char *desc = "";
    agon_cfg_opt_string(agon_config_root(job->cfg), "description", "", &desc, NULL);
    struct {
        const char *name;
        int64_t value;
    } ints[] = {
        {"classifier_format", CLS_FORMAT},
        {"input_channels", a->in_c},
        {"input_height", a->in_h},
        {"input_width", a->in_w},
        {"n_classes", a->n_classes},
        {"c1", a->c1},
        {"c2", a->c2},
        {"features", a->features},
        {"epochs", epochs},
        {"batch_size", job->batch},
        {"train_samples", tr->dinfo.size},
        {"test_samples", tr->tinfo.size},
        {"seed", (int64_t)job->seed},
    };
    struct {
        const char *name;
        double value;
    } reals[] = {
        {"slope", a->slope},
        {"bn_momentum", a->bn_momentum},
        {"bn_eps", a->bn_eps},
        {"test_accuracy", accuracy},
        {"train_seconds", seconds},
    };
    int rc = agon_log_attr_string(log, "/", "kind", CLS_KIND, err);
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; i++)
        rc = agon_log_attr_int(log, "/", ints[i].name, ints[i].value, err);
    for (size_t i = 0; rc == 0 && i < sizeof reals / sizeof reals[0]; i++)
        rc = agon_log_attr_double(log, "/", reals[i].name, reals[i].value, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, "/", "description", desc, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, "/", "dataset", job->data.component->name, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, "/", "blas", agon_blas_describe(), err);
    if (rc == 0)
        rc = agon_log_attr_string(log, "/", "kernels", agon_kernels_name(agon_blas_kernels()),
                                  err);
    if (rc == 0)
        rc = agon_log_attr_string(log, "/", "cpu", agon_cpu_model(), err);
    if (rc == 0 && tr->dinfo.split)
        rc = agon_log_attr_string(log, "/", "train_split", tr->dinfo.split, err);
    if (rc == 0 && tr->tinfo.split)
        rc = agon_log_attr_string(log, "/", "test_split", tr->tinfo.split, err);
    if (rc == 0)
        rc = agon_log_write_string(log, "/config", job->yaml, err);
    if (rc == 0)
        rc = agon__write_provenance(log, &job->data, err);
    if (rc == 0 && job->test_data.owner != job->data.owner)
        rc = agon__write_provenance(log, &job->test_data, err);
    if (rc == 0)
        rc = agon__write_provenance(log, &job->optim, err);
    if (rc != 0)
        return rc;

    static const char *const columns[] = {"train_loss", "test_accuracy", "seconds"};
    agon_log_table *history = agon_log_table_create(log, "/history", columns, 3, err);
    if (!history)
        return err->code ? err->code : AGON_EIO;
    for (int64_t e = 0; rc == 0 && e < epochs; e++) {
        const double row[3] = {rows[e].loss, rows[e].accuracy, rows[e].seconds};
        rc = agon_log_table_append(history, e + 1, row, err);
    }
    cls_tensor tensors[CLS_MAX_TENSORS];
    size_t n = collect_tensors(&tr->nets, tensors);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[96];
        snprintf(path, sizeof path, "/params/%.63s", tensors[i].name);
        rc = agon_log_write_tensor(log, path, tensors[i].t, err);
    }
    return rc;
}

/* Writes the classifier to a temporary file beside `path` and renames it
 * into place. */
static int save(trainer *tr, const char *path, bool overwrite, const epoch_row *rows,
                int64_t epochs, double accuracy, double seconds, agon_error *err)
{
    int rc = make_parent_dirs(path, err);
    if (rc != 0)
        return rc;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    agon_log *log = agon_log_create(tmp, err);
    if (!log)
        return err->code ? err->code : AGON_EIO;
    rc = write_contents(log, tr, rows, epochs, accuracy, seconds, err);
    if (rc == 0)
        rc = agon_log_finish(log, "completed", "", err);
    int crc = agon_log_close(log, rc == 0 ? err : NULL);
    if (rc == 0)
        rc = crc;
    /* Checked again: the output may have appeared while training ran. */
    if (rc == 0)
        rc = agon__check_output(path, &(agon__output_rules){.overwrite = overwrite,
                                                            .what = "HDF5 file"},
                                NULL, err);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = agon_error_set(err, AGON_EIO, "%s: cannot move the finished classifier into place: "
                                           "%s",
                            path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int agon_classifier_train_file(agon_registry *reg, const char *path, const char *const *sets,
                               size_t n_sets, const char *output_path, bool overwrite,
                               void (*progress)(const char *line, void *user), void *user,
                               agon_classifier_report *report, agon_diag *diag,
                               agon_error *err)
{
    agon_classifier_report local;
    if (!report)
        report = &local;
    memset(report, 0, sizeof *report);
    cls_job job;
    int rc = job_load(&job, reg, path, sets, n_sets, diag);
    if (rc != 0) {
        if (err)
            err->code = rc;
        job_free(&job);
        return rc;
    }
    char out[4096];
    if (output_path)
        snprintf(out, sizeof out, "%s", output_path);
    else if (job.output[0])
        snprintf(out, sizeof out, "%s", job.output);
    else
        snprintf(out, sizeof out, "classifiers/%s.h5", job.stem);
    snprintf(report->output_path, sizeof report->output_path, "%s", out);
    rc = agon__check_output(out, &(agon__output_rules){.overwrite = overwrite, .what = "HDF5 file"},
                            NULL, err);
    if (rc != 0) {
        job_free(&job);
        return rc;
    }

    rc = agon_blas_init(job.kernels, err);
    if (rc != 0) {
        job_free(&job);
        return rc;
    }
    const int saved_threads = agon_blas_get_threads();
    agon_blas_set_threads((int)job.threads);
    trainer *tr = calloc(1, sizeof *tr);
    epoch_row *rows = calloc((size_t)job.epochs, sizeof *rows);
    if (!tr || !rows) {
        rc = agon_error_set(err, AGON_ENOMEM, "out of memory");
    } else {
        rc = trainer_setup(tr, &job, err);
    }
    const double start = now_seconds();
    double accuracy = 0.0;
    for (int64_t e = 0; rc == 0 && e < job.epochs; e++) {
        const double t0 = now_seconds();
        rc = train_epoch(tr, e + 1, &rows[e].loss, err);
        if (rc == 0)
            rc = evaluate(tr, &accuracy, err);
        if (rc != 0)
            break;
        rows[e].accuracy = accuracy;
        rows[e].seconds = now_seconds() - t0;
        if (progress) {
            char line[256];
            snprintf(line, sizeof line,
                     "epoch %lld/%lld  train loss %.4f  test accuracy %.4f  %.1f s",
                     (long long)e + 1, (long long)job.epochs, rows[e].loss, accuracy,
                     rows[e].seconds);
            progress(line, user);
        }
    }
    const double seconds = now_seconds() - start;
    if (rc == 0)
        rc = save(tr, out, overwrite, rows, job.epochs, accuracy, seconds, err);
    if (rc == 0) {
        report->epochs = job.epochs;
        report->train_samples = tr->dinfo.size;
        report->test_samples = tr->tinfo.size;
        report->test_accuracy = accuracy;
        report->seconds = seconds;
    }
    if (tr)
        trainer_teardown(tr);
    free(tr);
    free(rows);
    agon_blas_set_threads(saved_threads);
    job_free(&job);
    return rc;
}
