/* fashion_mnist — Zalando's Fashion-MNIST (Xiao, Rasul and Vollgraf 2017):
 * 28x28 grey-scale images of clothing in 10 classes, 60000 for training and
 * 10000 for testing, read from the gzipped IDX files that Debian's
 * dataset-fashion-mnist package installs in /usr/share/datasets/fashion-mnist.
 *
 *   train: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz
 *   test:  t10k-images-idx3-ubyte.gz,  t10k-labels-idx1-ubyte.gz
 *
 * IDX: big-endian header, then the bytes in row-major order.  Images:
 * magic 0x00000803 (unsigned bytes, 3 dimensions), count, rows, cols.
 * Labels: magic 0x00000801, count.
 *
 * Samples are [1, 28, 28] with pixel x in 0..255 mapped to x/127.5 - 1 in
 * [-1, 1] (a tanh generator's range).  The pixels stay uint8 in memory
 * (47 MB for the training split instead of 188 MB as floats) and are scaled
 * through a 256-entry table as a batch is copied out.  `classes` keeps a
 * subset; labels stay the original class ids and n_classes stays 10, so a
 * classifier trained on all classes and conditioning agree on the ids.
 * `limit` keeps the first N samples (after the class filter), in file order.
 *
 * `stacked: true` is the Stacked MNIST protocol of VEEGAN (Srivastava et al.
 * 2017) and PacGAN (Lin et al. 2018) on Fashion-MNIST: every sample is three
 * images drawn independently, one after another through the epoch sampler
 * with the caller's rng, stacked as the channels of a [3, 28, 28] sample.
 * Its label is 100*l0 + 10*l1 + l2 for the channels' labels l0, l1, l2, one
 * of 1000 modes, so n_classes is 1000.  With a `classes` subset the labels
 * keep their original ids, so the label space stays the 1000 ids (only
 * K^3 of them occur).  `size` stays the number of underlying images.
 *
 * Batches: shuffled epochs from agon_epoch_sampler (agon/sampler.h), which
 * documents the order: a fresh Fisher-Yates permutation per epoch drawn
 * from the caller's rng, and a position in the epoch per rng, so drawing
 * real samples for a metric never moves training's position.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "agon/plugin.h"
#include "agon/sampler.h"

#define FM_ROWS 28
#define FM_COLS 28
#define FM_PIXELS (FM_ROWS * FM_COLS)
#define FM_CLASSES 10
#define FM_DEFAULT_PATH "/usr/share/datasets/fashion-mnist"
#define FM_IMAGES_MAGIC 0x00000803u
#define FM_LABELS_MAGIC 0x00000801u

typedef struct fm_state {
    int64_t size;
    uint8_t *pixels;        /* [size, 784] */
    uint8_t *labels;        /* [size] */
    float scale[256];       /* pixel byte -> value */
    bool stacked;           /* three images per sample as channels */
    agon_epoch_sampler *order;
} fm_state;

static void fm_destroy(void *state)
{
    fm_state *s = state;
    if (!s)
        return;
    agon_epoch_sampler_destroy(s->order);
    free(s->pixels);
    free(s->labels);
    free(s);
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static int open_gz(const char *path, gzFile *out, agon_error *err)
{
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return agon_error_set(err, AGON_EIO,
                                  "%s: no such file; install Debian's dataset-fashion-mnist "
                                  "package (apt-get install dataset-fashion-mnist) or set "
                                  "dataset.path to a directory holding the Fashion-MNIST files",
                                  path);
        }
        if (errno == 0)
            return agon_error_set(err, AGON_ENOMEM, "fashion_mnist: out of memory");
        return agon_error_set(err, AGON_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    /* Larger reads than zlib's 8 KiB default: the training images are 47 MB. */
    gzbuffer(gz, 1u << 17);
    *out = gz;
    return 0;
}

/* Reads exactly `len` bytes; `what` names them in the message when the file
 * ends early ("the header", "image 12"). */
static int read_exact(gzFile gz, const char *path, void *buf, unsigned len, const char *what,
                      agon_error *err)
{
    int got = gzread(gz, buf, len);
    if (got == (int)len)
        return 0;
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
        /* zlib's message starts with the path, which ours names already. */
        size_t plen = strlen(path);
        if (msg && strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
            msg += plen + 2;
        return agon_error_set(err, AGON_EDATA, "%s: cannot decompress: %s; the file is damaged",
                              path, msg ? msg : "unknown zlib error");
    }
    return agon_error_set(err, AGON_EDATA,
                          "%s: the file ends in %s; the file is truncated or damaged", path,
                          what);
}

/* Opens the image file and checks its header; *count receives the number
 * of images. */
static int open_images(const char *path, gzFile *gz, uint32_t *count, agon_error *err)
{
    int rc = open_gz(path, gz, err);
    if (rc != 0)
        return rc;
    unsigned char h[16];
    if ((rc = read_exact(*gz, path, h, sizeof h, "the header", err)) != 0)
        return rc;
    uint32_t magic = be32(h), rows = be32(h + 8), cols = be32(h + 12);
    if (magic != FM_IMAGES_MAGIC) {
        return agon_error_set(err, AGON_EDATA,
                              "%s: bad IDX header: magic number 0x%08x, expected 0x%08x for "
                              "images (unsigned bytes, 3 dimensions); the file is not a "
                              "Fashion-MNIST image file or is damaged",
                              path, (unsigned)magic, FM_IMAGES_MAGIC);
    }
    if (rows != FM_ROWS || cols != FM_COLS) {
        return agon_error_set(err, AGON_EDATA,
                              "%s: images are %ux%u pixels, expected %dx%d; the file is not a "
                              "Fashion-MNIST image file",
                              path, (unsigned)rows, (unsigned)cols, FM_ROWS, FM_COLS);
    }
    *count = be32(h + 4);
    return 0;
}

static int open_labels(const char *path, gzFile *gz, uint32_t *count, agon_error *err)
{
    int rc = open_gz(path, gz, err);
    if (rc != 0)
        return rc;
    unsigned char h[8];
    if ((rc = read_exact(*gz, path, h, sizeof h, "the header", err)) != 0)
        return rc;
    uint32_t magic = be32(h);
    if (magic != FM_LABELS_MAGIC) {
        return agon_error_set(err, AGON_EDATA,
                              "%s: bad IDX header: magic number 0x%08x, expected 0x%08x for "
                              "labels (unsigned bytes, 1 dimension); the file is not a "
                              "Fashion-MNIST label file or is damaged",
                              path, (unsigned)magic, FM_LABELS_MAGIC);
    }
    *count = be32(h + 4);
    return 0;
}

/* The user's `classes` list as a mask; all classes when it is empty. */
static int read_classes(const agon_node *cfg, bool keep[FM_CLASSES], agon_error *err)
{
    int64_t ids[FM_CLASSES + 1];
    size_t n = 0;
    const agon_node *list = agon_node_get(cfg, "classes");
    if (list && agon_node_kind_of(list) == AGON_NODE_SEQ && agon_node_len(list) > FM_CLASSES) {
        return agon_node_error(err, AGON_ECONFIG, list,
                               "lists %zu classes but there are only %d; list each class id "
                               "0..9 at most once",
                               agon_node_len(list), FM_CLASSES);
    }
    int rc = agon_cfg_opt_int_list(cfg, "classes", ids, FM_CLASSES, &n, err);
    if (rc != 0)
        return rc;
    for (int c = 0; c < FM_CLASSES; c++)
        keep[c] = n == 0;
    for (size_t i = 0; i < n; i++) {
        const agon_node *item = agon_node_at(list, i);
        if (ids[i] < 0 || ids[i] >= FM_CLASSES) {
            return agon_node_error(err, AGON_ECONFIG, item,
                                   "class %lld does not exist; class ids are 0..9",
                                   (long long)ids[i]);
        }
        if (keep[ids[i]]) {
            return agon_node_error(err, AGON_ECONFIG, item,
                                   "class %lld is listed twice; list each class once",
                                   (long long)ids[i]);
        }
        keep[ids[i]] = true;
    }
    return 0;
}

/* The counts in the headers are only what the files claim: the buffers
 * grow with the bytes that actually arrive (from 1 MiB, doubling), so a
 * damaged header (a count of 4294967295 in a file of 8 bytes) costs what
 * the file holds, not what it claims.  Grows *buf of *cap bytes to at
 * least `need` and at most `limit` bytes. */
#define FM_CHUNK ((size_t)1 << 20)

static int grow(uint8_t **buf, size_t *cap, size_t need, size_t limit, agon_error *err)
{
    if (need <= *cap)
        return 0;
    size_t want = *cap < FM_CHUNK ? FM_CHUNK : 2 * *cap;
    if (want < need)
        want = need;
    if (want > limit)
        want = limit;
    uint8_t *grown = realloc(*buf, want);
    if (!grown)
        return agon_error_set(err, AGON_ENOMEM, "fashion_mnist: out of memory");
    *buf = grown;
    *cap = want;
    return 0;
}

/* Reads the n labels into a malloc'ed *out, a chunk at a time. */
static int read_labels(gzFile gz, const char *path, uint32_t n, uint8_t **out, agon_error *err)
{
    size_t cap = 0;
    int rc = 0;
    for (size_t have = 0; rc == 0 && have < n;) {
        size_t len = n - have < FM_CHUNK ? n - have : FM_CHUNK;
        rc = grow(out, &cap, have + len, n, err);
        if (rc == 0)
            rc = read_exact(gz, path, *out + have, (unsigned)len, "the labels", err);
        have += len;
    }
    return rc;
}

/* Reads the labels, picks the samples to keep, then reads only the images
 * up to the last kept one. */
static int load(fm_state *s, const char *images_path, const char *labels_path,
                const bool keep[FM_CLASSES], int64_t limit, agon_error *err)
{
    gzFile gi = NULL, gl = NULL;
    uint32_t n_images = 0, n_labels = 0;
    uint8_t *all_labels = NULL;
    int rc = open_images(images_path, &gi, &n_images, err);
    if (rc == 0)
        rc = open_labels(labels_path, &gl, &n_labels, err);
    if (rc == 0 && n_images != n_labels) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s holds %u images but %s holds %u labels; the two files must "
                            "belong together (same split, undamaged)",
                            images_path, (unsigned)n_images, labels_path, (unsigned)n_labels);
    }
    if (rc == 0 && n_images == 0)
        rc = agon_error_set(err, AGON_EDATA, "%s: holds no images", images_path);
    if (rc == 0)
        rc = read_labels(gl, labels_path, n_labels, &all_labels, err);

    int64_t kept = 0, last = -1;
    for (uint32_t i = 0; rc == 0 && i < n_labels; i++) {
        if (all_labels[i] >= FM_CLASSES) {
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: label %u at index %u is not a class id 0..9; the file is "
                                "damaged",
                                labels_path, (unsigned)all_labels[i], (unsigned)i);
        } else if (keep[all_labels[i]] && (limit == 0 || kept < limit)) {
            kept++;
            last = i;
        }
    }
    if (rc == 0 && kept == 0) {
        rc = agon_error_set(err, AGON_ECONFIG,
                            "%s: no sample belongs to the selected classes; check dataset.classes",
                            labels_path);
    }
    if (rc == 0) {
        s->labels = malloc((size_t)kept);
        if (!s->labels)
            rc = agon_error_set(err, AGON_ENOMEM, "fashion_mnist: out of memory");
    }
    int64_t j = 0;
    size_t cap = 0;
    uint8_t skip[FM_PIXELS];
    for (int64_t i = 0; rc == 0 && i <= last; i++) {
        bool take = keep[all_labels[i]] && j < kept;
        if (take)
            rc = grow(&s->pixels, &cap, (size_t)(j + 1) * FM_PIXELS, (size_t)kept * FM_PIXELS,
                      err);
        if (rc != 0)
            break;
        uint8_t *dst = take ? s->pixels + j * FM_PIXELS : skip;
        char what[64];
        snprintf(what, sizeof what, "image %lld of %u", (long long)i, (unsigned)n_images);
        rc = read_exact(gi, images_path, dst, FM_PIXELS, what, err);
        if (rc == 0 && take)
            s->labels[j++] = all_labels[i];
    }
    s->size = kept;
    free(all_labels);
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    return rc;
}

static int fm_create(const agon_node *cfg, void **state, agon_dataset_info *info,
                     agon_error *err)
{
    const char *dir, *split;
    int64_t limit;
    bool keep[FM_CLASSES];
    bool stacked;
    int rc;

    *state = NULL;
    if ((rc = agon_cfg_opt_string(cfg, "path", FM_DEFAULT_PATH, &dir, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "split", "train", &split, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "limit", 0, &limit, err)) != 0 ||
        (rc = agon_cfg_opt_bool(cfg, "stacked", false, &stacked, err)) != 0 ||
        (rc = read_classes(cfg, keep, err)) != 0)
        return rc;
    const char *prefix;
    const char *split_name;     /* static: info->split outlives the config */
    if (strcmp(split, "train") == 0) {
        prefix = "train";
        split_name = "train";
    } else if (strcmp(split, "test") == 0) {
        prefix = "t10k";
        split_name = "test";
    } else {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "split"),
                               "unknown split '%s'; choose train or test", split);
    }
    if (limit < 0) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "limit"),
                               "must be >= 0 (0 keeps every sample), got %lld",
                               (long long)limit);
    }

    char images_path[4096], labels_path[4096];
    size_t len = strlen(dir);
    const char *sep = len == 0 || dir[len - 1] == '/' ? "" : "/";
    if (snprintf(images_path, sizeof images_path, "%s%s%s-images-idx3-ubyte.gz", dir, sep,
                 prefix) >= (int)sizeof images_path ||
        snprintf(labels_path, sizeof labels_path, "%s%s%s-labels-idx1-ubyte.gz", dir, sep,
                 prefix) >= (int)sizeof labels_path) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "path"),
                               "the directory name is too long (%zu characters)", len);
    }

    fm_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "fashion_mnist: out of memory");
    rc = load(s, images_path, labels_path, keep, limit, err);
    if (rc == 0 && !(s->order = agon_epoch_sampler_create(s->size, NULL)))
        rc = agon_error_set(err, AGON_ENOMEM, "fashion_mnist: out of memory");
    if (rc != 0) {
        fm_destroy(s);
        return rc;
    }
    for (int v = 0; v < 256; v++)
        s->scale[v] = (float)((double)v / 127.5 - 1.0);
    s->stacked = stacked;

    const int64_t shape[3] = {stacked ? 3 : 1, FM_ROWS, FM_COLS};
    memset(info, 0, sizeof *info);
    info->sample_shape = agon_shape_make(3, shape);
    info->size = s->size;
    info->n_classes = stacked ? FM_CLASSES * FM_CLASSES * FM_CLASSES : FM_CLASSES;
    info->split = split_name;
    *state = s;
    return 0;
}

static int fm_next_batch(void *state, agon_rng *rng, agon_tensor *out, int32_t *labels,
                         agon_error *err)
{
    fm_state *s = state;
    const int channels = s->stacked ? 3 : 1;
    int64_t numel = agon_tensor_numel(out);
    if (out->shape.ndim < 1 || numel != out->shape.dim[0] * channels * FM_PIXELS) {
        char buf[96];
        return agon_error_set(err, AGON_EINTERNAL,
                              "fashion_mnist: batch tensor has shape %s, expected [n, %d, 28, 28]",
                              agon_shape_format(&out->shape, buf, sizeof buf), channels);
    }
    int64_t n = out->shape.dim[0];
    for (int64_t i = 0; i < n; i++) {
        int32_t label = 0;
        for (int c = 0; c < channels; c++) {
            int64_t k = agon_epoch_sampler_next(s->order, rng);
            const uint8_t *src = s->pixels + (size_t)k * FM_PIXELS;
            float *dst = out->data + (i * channels + c) * FM_PIXELS;
            for (int p = 0; p < FM_PIXELS; p++)
                dst[p] = s->scale[src[p]];
            label = label * FM_CLASSES + s->labels[k];
        }
        if (labels)
            labels[i] = label;
    }
    return 0;
}

static const agon_dataset_vtable fm_vtable = {
    sizeof(agon_dataset_vtable),
    fm_create,
    fm_destroy,
    fm_next_batch,
};

static const agon_param_spec fm_params[] = {
    {"path", AGON_PARAM_STRING, FM_DEFAULT_PATH, AGON_NO_RANGE, NULL,
     "directory with the gzipped IDX files (Debian package dataset-fashion-mnist)"},
    {"split", AGON_PARAM_CHOICE, "train", AGON_NO_RANGE, "train|test",
     "train (60000 samples) or test (10000 samples)"},
    {"classes", AGON_PARAM_INT_LIST, "[]", 0, FM_CLASSES - 1, NULL,
     "class ids to keep, each once ([] keeps all); labels keep their original ids"},
    {"limit", AGON_PARAM_INT, "0", 0, 1e9, NULL,
     "use only the first N samples after the class filter (0: all)"},
    {"stacked", AGON_PARAM_BOOL, "false", AGON_NO_RANGE, NULL,
     "Stacked MNIST: three independently drawn images as channels [3, 28, 28], label "
     "100*l0 + 10*l1 + l2 of 1000"},
    AGON_PARAM_END,
};

AGON_PLUGIN("fashion_mnist", "1.0.0", "Fashion-MNIST images from the IDX files",
            AGON_DATASET("fashion_mnist",
                         "Fashion-MNIST: 28x28 clothing images in 10 classes, scaled to [-1, 1]",
                         fm_params, &fm_vtable));
