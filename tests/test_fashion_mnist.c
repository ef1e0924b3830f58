/* The fashion_mnist dataset plugin, loaded from the built .so: IDX parsing
 * and pixel scaling on small synthetic files the test writes (gzip with
 * stored deflate blocks, so the test needs no zlib), class subsets, limit,
 * splits, header and file errors word for word, shuffled epochs, no
 * allocation in next_batch, and the real data of Debian's
 * dataset-fashion-mnist package. */
#include "test_util.h"

#include <dlfcn.h>
#include <math.h>
#include <sys/resource.h>

#include "agon/plugin.h"
#include "alloc_count.h"

#define PIXELS 784
#define REAL_DIR "/usr/share/datasets/fashion-mnist"

static void *plugin_handle;
static const agon_dataset_vtable *vt;
static const agon_param_spec *params;

static int setup(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fashion_mnist.so", AGON_TEST_PLUGIN_DIR);
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
        strcmp(desc->components[0].name, "fashion_mnist") != 0)
        return -1;
    vt = desc->components[0].vtable;
    params = desc->components[0].params;
    return vt->struct_size == sizeof(agon_dataset_vtable) ? 0 : -1;
}

static int teardown(void **state)
{
    dlclose(plugin_handle);
    return 0;
}

/* ---- writing gzipped IDX files ------------------------------------------- */

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_le16(FILE *f, unsigned v)
{
    fputc((int)(v & 0xff), f);
    fputc((int)((v >> 8) & 0xff), f);
}

static void put_le32(FILE *f, uint32_t v)
{
    put_le16(f, v & 0xffff);
    put_le16(f, v >> 16);
}

/* A gzip member holding `data` in stored (uncompressed) deflate blocks;
 * `corrupt` breaks the first block's length check. */
static void write_gzip_ex(const char *path, const uint8_t *data, size_t n, bool corrupt)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    fwrite(header, 1, sizeof header, f);
    size_t off = 0;
    do {
        size_t len = n - off > 65535 ? 65535 : n - off;
        bool final = off + len == n;
        fputc(final ? 1 : 0, f);
        put_le16(f, (unsigned)len);
        put_le16(f, (unsigned)(~len & 0xffff) ^ (corrupt && off == 0 ? 1u : 0u));
        fwrite(data + off, 1, len, f);
        off += len;
    } while (off < n);
    put_le32(f, crc32_of(data, n));
    put_le32(f, (uint32_t)n);
    assert_int_equal(fclose(f), 0);
}

static void write_gzip(const char *path, const uint8_t *data, size_t n)
{
    write_gzip_ex(path, data, n, false);
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* Image i, pixel p has the value (13 i + p) mod 256: pixel 0 tells the
 * image apart, and image 0 holds both 0 and 255. */
static uint8_t pixel_of(int64_t i, int64_t p)
{
    return (uint8_t)((13 * i + p) % 256);
}

/* The description of one IDX pair; the header fields default to a valid
 * file of n images and labels. */
typedef struct idx_spec {
    const char *dir, *prefix;
    int n;                  /* images and labels written */
    const uint8_t *labels;  /* [n] */
    uint32_t image_magic, label_magic, rows, cols;
    uint32_t image_count, label_count;  /* in the headers */
    int image_bytes_cut;    /* bytes missing at the end of the image data */
} idx_spec;

static idx_spec idx_default(const char *dir, const char *prefix, int n, const uint8_t *labels)
{
    idx_spec s = {dir, prefix, n, labels, 0x803, 0x801, 28, 28, (uint32_t)n, (uint32_t)n, 0};
    return s;
}

static void write_idx(const idx_spec *s)
{
    char path[1024];
    size_t image_bytes = (size_t)s->n * PIXELS - (size_t)s->image_bytes_cut;
    uint8_t *img = malloc(16 + (size_t)s->n * PIXELS);
    assert_non_null(img);
    put_be32(img, s->image_magic);
    put_be32(img + 4, s->image_count);
    put_be32(img + 8, s->rows);
    put_be32(img + 12, s->cols);
    for (int i = 0; i < s->n; i++)
        for (int p = 0; p < PIXELS; p++)
            img[16 + (size_t)i * PIXELS + p] = pixel_of(i, p);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", s->dir, s->prefix);
    write_gzip(path, img, 16 + image_bytes);
    free(img);

    uint8_t *lab = malloc(8 + (size_t)s->n);
    assert_non_null(lab);
    put_be32(lab, s->label_magic);
    put_be32(lab + 4, s->label_count);
    memcpy(lab + 8, s->labels, (size_t)s->n);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", s->dir, s->prefix);
    write_gzip(path, lab, 8 + (size_t)s->n);
    free(lab);
}

static const uint8_t six_labels[6] = {3, 0, 9, 3, 7, 1};

/* A directory with a valid train pair of the six labels above. */
static const char *six_dir(const char *tag)
{
    const char *dir = agon_test_tmpdir(tag);
    idx_spec s = idx_default(dir, "train", 6, six_labels);
    write_idx(&s);
    return dir;
}

/* ---- driving the plugin -------------------------------------------------- */

typedef struct fm_fixture {
    agon_config *cfg;
    void *state;
    agon_dataset_info info;
    agon_error err;
} fm_fixture;

/* Runs create on the `dataset:` section of `yaml` after the host's schema
 * step (unless `raw`); returns create's status. */
static int fm_open_ex(fm_fixture *f, const char *yaml, bool raw)
{
    static const char *const host_keys[] = {"plugin", NULL};
    agon_diag diag;
    agon_diag_init(&diag);
    memset(f, 0, sizeof *f);
    f->cfg = agon_config_parse(yaml, strlen(yaml), "fm.yaml", &diag);
    if (!f->cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *section = agon_node_get(agon_config_root(f->cfg), "dataset");
    assert_non_null(section);
    if (!raw && agon_schema_apply(f->cfg, section, params, host_keys,
                                  "dataset 'fashion_mnist'", &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    return vt->create(section, &f->state, &f->info, &f->err);
}

/* The same with `path: DIR` and `extra` (more "  key: value\n" lines). */
static int fm_open_dir(fm_fixture *f, const char *dir, const char *extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "dataset:\n  plugin: fashion_mnist\n  path: %s\n%s", dir,
             extra ? extra : "");
    return fm_open_ex(f, yaml, false);
}

static void fm_close(fm_fixture *f)
{
    vt->destroy(f->state);
    agon_config_destroy(f->cfg);
}

static void expect_error_ex(const char *dir, const char *extra, bool raw, int code,
                            const char *message)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "dataset:\n  plugin: fashion_mnist\n  path: %s\n%s", dir,
             extra ? extra : "");
    fm_fixture f;
    assert_int_equal(fm_open_ex(&f, yaml, raw), code);
    assert_null(f.state);
    assert_string_equal(f.err.message, message);
    agon_config_destroy(f.cfg);
}

static void expect_error(const char *dir, const char *extra, int code, const char *message)
{
    expect_error_ex(dir, extra, false, code, message);
}

/* Draws n samples (and labels) into malloc'ed buffers. */
static float *draw(fm_fixture *f, agon_rng *rng, int64_t n, int32_t **labels)
{
    float *x = malloc((size_t)n * PIXELS * sizeof *x);
    assert_non_null(x);
    if (labels) {
        *labels = malloc((size_t)n * sizeof **labels);
        assert_non_null(*labels);
    }
    int64_t dims[4] = {n, 1, 28, 28};
    agon_tensor t = {x, agon_shape_make(4, dims)};
    agon_error err = {0};
    assert_int_equal(vt->next_batch(f->state, rng, &t, labels ? *labels : NULL, &err), 0);
    return x;
}

/* Which written image a drawn sample is (from its first pixel), after
 * checking every pixel against x/127.5 - 1. */
static int64_t image_of(const float *x, int64_t n_written)
{
    for (int64_t i = 0; i < n_written; i++) {
        if (x[0] != (float)(pixel_of(i, 0) / 127.5 - 1.0))
            continue;
        for (int p = 0; p < PIXELS; p++) {
            if (x[p] != (float)(pixel_of(i, p) / 127.5 - 1.0))
                fail_msg("image %lld pixel %d: %.9g, expected %u/127.5 - 1", (long long)i, p,
                         (double)x[p], (unsigned)pixel_of(i, p));
        }
        return i;
    }
    fail_msg("sample matches no written image (first pixel %.9g)", (double)x[0]);
    return -1;
}

/* ---- tests --------------------------------------------------------------- */

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(params, &err), 0);
}

static void test_parse_and_scale(void **state)
{
    const char *dir = six_dir("fm_parse");
    fm_fixture f;
    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    assert_int_equal(f.info.sample_shape.ndim, 3);
    assert_int_equal(f.info.sample_shape.dim[0], 1);
    assert_int_equal(f.info.sample_shape.dim[1], 28);
    assert_int_equal(f.info.sample_shape.dim[2], 28);
    assert_int_equal(f.info.size, 6);
    assert_int_equal(f.info.n_classes, 10);
    assert_int_equal(f.info.n_modes, 0);
    assert_null(f.info.mode_centres);
    assert_null(f.info.bounds_lo);
    assert_null(f.info.bounds_hi);
    assert_null(f.info.density);
    assert_non_null(f.info.split);
    assert_string_equal(f.info.split, "train");

    agon_rng rng;
    agon_rng_seed(&rng, 1, "data");
    int32_t *labels;
    float *x = draw(&f, &rng, 6, &labels);
    bool seen[6] = {false};
    for (int k = 0; k < 6; k++) {
        int64_t i = image_of(x + k * PIXELS, 6);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(labels[k], six_labels[i]);
        if (i == 0) {
            /* Pixel 0 of image 0 is 0 and pixel 255 is 255: exactly -1 and 1. */
            assert_true(x[k * PIXELS] == -1.0f);
            assert_true(x[k * PIXELS + 255] == 1.0f);
        }
    }
    free(x);
    free(labels);
    fm_close(&f);

    /* A trailing slash on the directory works too. */
    char with_slash[600];
    snprintf(with_slash, sizeof with_slash, "%s/", dir);
    assert_int_equal(fm_open_dir(&f, with_slash, NULL), 0);
    assert_int_equal(f.info.size, 6);
    fm_close(&f);
}

/* Draws one epoch and returns, per position, which written image it was. */
static void epoch_images(fm_fixture *f, int64_t n_written, int64_t *which, int32_t *labels)
{
    agon_rng rng;
    agon_rng_seed(&rng, 5, "data");
    int32_t *lab;
    float *x = draw(f, &rng, f->info.size, &lab);
    for (int64_t k = 0; k < f->info.size; k++) {
        which[k] = image_of(x + k * PIXELS, n_written);
        labels[k] = lab[k];
    }
    free(x);
    free(lab);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_classes_and_limit(void **state)
{
    const char *dir = six_dir("fm_classes");
    fm_fixture f;
    int64_t which[6];
    int32_t labels[6];

    /* Classes 3 and 7 are images 0, 3 (label 3) and 4 (label 7). */
    assert_int_equal(fm_open_dir(&f, dir, "  classes: [7, 3]\n"), 0);
    assert_int_equal(f.info.size, 3);
    assert_int_equal(f.info.n_classes, 10);
    epoch_images(&f, 6, which, labels);
    for (int k = 0; k < 3; k++)
        assert_int_equal(labels[k], six_labels[which[k]]);
    qsort(which, 3, sizeof which[0], cmp_i64);
    assert_int_equal(which[0], 0);
    assert_int_equal(which[1], 3);
    assert_int_equal(which[2], 4);
    fm_close(&f);

    /* limit keeps the first N after the filter. */
    assert_int_equal(fm_open_dir(&f, dir, "  classes: [7, 3]\n  limit: 2\n"), 0);
    assert_int_equal(f.info.size, 2);
    epoch_images(&f, 6, which, labels);
    qsort(which, 2, sizeof which[0], cmp_i64);
    assert_int_equal(which[0], 0);
    assert_int_equal(which[1], 3);
    fm_close(&f);

    assert_int_equal(fm_open_dir(&f, dir, "  limit: 4\n"), 0);
    assert_int_equal(f.info.size, 4);
    epoch_images(&f, 6, which, labels);
    qsort(which, 4, sizeof which[0], cmp_i64);
    for (int k = 0; k < 4; k++)
        assert_int_equal(which[k], k);
    fm_close(&f);

    /* A limit beyond the data keeps everything. */
    assert_int_equal(fm_open_dir(&f, dir, "  limit: 100\n"), 0);
    assert_int_equal(f.info.size, 6);
    fm_close(&f);

    expect_error(dir, "  classes: [2, 5]\n", AGON_ECONFIG,
                 "tmp_fm_classes/train-labels-idx1-ubyte.gz: no sample belongs to the "
                 "selected classes; check dataset.classes");
    expect_error(dir, "  classes: [3, 1, 3]\n", AGON_ECONFIG,
                 "fm.yaml:4:19: dataset.classes[2]: class 3 is listed twice; "
                 "list each class once");
    /* The host's schema rejects ids outside 0..9; create checks them too. */
    expect_error_ex(dir, "  classes: [1, 10]\n", true, AGON_ECONFIG,
                    "fm.yaml:4:16: dataset.classes[1]: class 10 does not exist; "
                    "class ids are 0..9");
    expect_error_ex(dir, "  classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]\n", true, AGON_ECONFIG,
                    "fm.yaml:4:12: dataset.classes: lists 11 classes but there are only 10; "
                    "list each class id 0..9 at most once");
    expect_error_ex(dir, "  limit: -1\n", true, AGON_ECONFIG,
                    "fm.yaml:4:10: dataset.limit: must be >= 0 (0 keeps every sample), got -1");
}

static void test_split(void **state)
{
    const char *dir = six_dir("fm_split");
    static const uint8_t test_labels[4] = {8, 2, 2, 5};
    idx_spec s = idx_default(dir, "t10k", 4, test_labels);
    write_idx(&s);

    fm_fixture f;
    int64_t which[6];
    int32_t labels[6];
    assert_int_equal(fm_open_dir(&f, dir, "  split: test\n"), 0);
    assert_int_equal(f.info.size, 4);
    assert_string_equal(f.info.split, "test");
    epoch_images(&f, 4, which, labels);
    bool seen[4] = {false};
    for (int k = 0; k < 4; k++) {
        assert_false(seen[which[k]]);
        seen[which[k]] = true;
        assert_int_equal(labels[k], test_labels[which[k]]);
    }
    fm_close(&f);

    assert_int_equal(fm_open_dir(&f, dir, "  split: train\n"), 0);
    assert_int_equal(f.info.size, 6);
    assert_string_equal(f.info.split, "train");
    fm_close(&f);
}

static void test_header_errors(void **state)
{
    const char *dir = agon_test_tmpdir("fm_bad");
    idx_spec s = idx_default(dir, "train", 6, six_labels);

    s.image_magic = 0x00000801;
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-images-idx3-ubyte.gz: bad IDX header: magic number "
                 "0x00000801, expected 0x00000803 for images (unsigned bytes, 3 dimensions); "
                 "the file is not a Fashion-MNIST image file or is damaged");

    s = idx_default(dir, "train", 6, six_labels);
    s.label_magic = 0x00000803;
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-labels-idx1-ubyte.gz: bad IDX header: magic number "
                 "0x00000803, expected 0x00000801 for labels (unsigned bytes, 1 dimension); "
                 "the file is not a Fashion-MNIST label file or is damaged");

    s = idx_default(dir, "train", 6, six_labels);
    s.rows = 32;
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-images-idx3-ubyte.gz: images are 32x28 pixels, expected "
                 "28x28; the file is not a Fashion-MNIST image file");

    s = idx_default(dir, "train", 6, six_labels);
    s.label_count = 5;
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-images-idx3-ubyte.gz holds 6 images but "
                 "tmp_fm_bad/train-labels-idx1-ubyte.gz holds 5 labels; the two files must "
                 "belong together (same split, undamaged)");

    /* The header promises 6 images; the data stops inside image 4. */
    s = idx_default(dir, "train", 6, six_labels);
    s.image_bytes_cut = PIXELS + 100;
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-images-idx3-ubyte.gz: the file ends in image 4 of 6; "
                 "the file is truncated or damaged");

    static const uint8_t bad_label[6] = {3, 0, 9, 12, 7, 1};
    s = idx_default(dir, "train", 6, bad_label);
    write_idx(&s);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-labels-idx1-ubyte.gz: label 12 at index 3 is not a class "
                 "id 0..9; the file is damaged");

    /* A gzip stream whose deflate data is broken. */
    s = idx_default(dir, "train", 6, six_labels);
    write_idx(&s);
    char path[1024];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    uint8_t lab[14] = {0, 0, 8, 1, 0, 0, 0, 6, 3, 0, 9, 3, 7, 1};
    write_gzip_ex(path, lab, sizeof lab, true);
    expect_error(dir, NULL, AGON_EDATA,
                 "tmp_fm_bad/train-labels-idx1-ubyte.gz: cannot decompress: invalid stored "
                 "block lengths; the file is damaged");
}

/* As expect_error for a refusal of the data (AGON_EDATA); without ASan
 * (which reserves terabytes of address space) also in a child process
 * that may map at most 1 GiB more than it has. */
static void expect_data_error_within_1gib(const char *dir, const char *message)
{
#if AGON_TEST_COUNTS_ALLOCS
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (!statm || fscanf(statm, "%ld", &pages) != 1)
            _exit(2);
        fclose(statm);
        struct rlimit rl;
        if (getrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        fm_fixture f;
        int rc = fm_open_dir(&f, dir, NULL);
        if (rc == AGON_EDATA && !f.state && strcmp(f.err.message, message) == 0)
            _exit(0);
        fprintf(stderr, "within 1 GiB more: %d, %s\n", rc, f.err.message);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
    expect_error(dir, NULL, AGON_EDATA, message);
}

/* The counts in the headers are only claims (tests/fuzz/regressions/idx):
 * memory is taken as the files deliver their bytes, so a count that the
 * file does not hold is refused as the truncation it is, not as "out of
 * memory" after reserving what the header promised. */
static void test_header_counts_are_claims(void **state)
{
    const char *dir = agon_test_tmpdir("fm_claims");
    /* 4294967295 images and labels claimed, one of each present. */
    static const uint8_t one_label[1] = {3};
    idx_spec s = idx_default(dir, "train", 1, one_label);
    s.image_count = s.label_count = 0xffffffffu;
    write_idx(&s);
    expect_data_error_within_1gib(dir, "tmp_fm_claims/train-labels-idx1-ubyte.gz: the file ends "
                                       "in the labels; the file is truncated or damaged");

    /* 3000000 labels present, but the image file stops after its header:
     * the 2.35 GB of pixels its count promises are not taken up front. */
    enum { N = 3000000 };
    uint8_t header[16];
    put_be32(header, 0x803);
    put_be32(header + 4, N);
    put_be32(header + 8, 28);
    put_be32(header + 12, 28);
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    write_gzip(path, header, sizeof header);
    uint8_t *lab = calloc(8 + N, 1);
    assert_non_null(lab);
    put_be32(lab, 0x801);
    put_be32(lab + 4, N);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    write_gzip(path, lab, 8 + N);
    free(lab);
    expect_data_error_within_1gib(dir, "tmp_fm_claims/train-images-idx3-ubyte.gz: the file ends "
                                       "in image 0 of 3000000; the file is truncated or damaged");
}

static void test_missing_files(void **state)
{
    const char *dir = agon_test_tmpdir("fm_missing");
    expect_error(dir, NULL, AGON_EIO,
                 "tmp_fm_missing/train-images-idx3-ubyte.gz: no such file; install Debian's "
                 "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set "
                 "dataset.path to a directory holding the Fashion-MNIST files");
    expect_error("tmp_fm_missing/nowhere", NULL, AGON_EIO,
                 "tmp_fm_missing/nowhere/train-images-idx3-ubyte.gz: no such file; install "
                 "Debian's dataset-fashion-mnist package (apt-get install "
                 "dataset-fashion-mnist) or set dataset.path to a directory holding the "
                 "Fashion-MNIST files");

    /* Only the labels are missing: the message names the labels file. */
    idx_spec s = idx_default(dir, "train", 6, six_labels);
    write_idx(&s);
    char path[1024];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    assert_int_equal(unlink(path), 0);
    expect_error(dir, NULL, AGON_EIO,
                 "tmp_fm_missing/train-labels-idx1-ubyte.gz: no such file; install Debian's "
                 "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set "
                 "dataset.path to a directory holding the Fashion-MNIST files");

    /* The test split is looked for under its own names. */
    expect_error(dir, "  split: test\n", AGON_EIO,
                 "tmp_fm_missing/t10k-images-idx3-ubyte.gz: no such file; install Debian's "
                 "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set "
                 "dataset.path to a directory holding the Fashion-MNIST files");
}

/* A file of 50 images with labels i mod 10. */
static const char *fifty_dir(void)
{
    uint8_t labels[50];
    for (int i = 0; i < 50; i++)
        labels[i] = (uint8_t)(i % 10);
    const char *dir = agon_test_tmpdir("fm_fifty");
    idx_spec s = idx_default(dir, "train", 50, labels);
    write_idx(&s);
    return dir;
}

/* Draws n samples in batches of `batch` and returns which images they were. */
static void draw_order(fm_fixture *f, agon_rng *rng, int64_t n, int64_t batch, int64_t *out)
{
    for (int64_t k = 0; k < n; k += batch) {
        int64_t m = n - k < batch ? n - k : batch;
        int32_t *labels;
        float *x = draw(f, rng, m, &labels);
        for (int64_t i = 0; i < m; i++) {
            out[k + i] = image_of(x + i * PIXELS, 50);
            assert_int_equal(labels[i], out[k + i] % 10);
        }
        free(x);
        free(labels);
    }
}

static void test_shuffled_epochs(void **state)
{
    const char *dir = fifty_dir();
    fm_fixture f;
    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    assert_int_equal(f.info.size, 50);

    /* Batches of 7 cross the epoch boundaries at 50 and 100. */
    enum { N = 150 };
    int64_t got[N], want[N];
    agon_rng rng, ref;
    agon_rng_seed(&rng, 42, "data");
    ref = rng;
    draw_order(&f, &rng, N, 7, got);
    agon_test_epoch_order(&ref, 50, want, N);
    assert_memory_equal(got, want, sizeof got);
    /* The rng advanced exactly as much as the three shuffles need. */
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);

    for (int e = 0; e < 3; e++) {
        int count[50] = {0};
        for (int k = 0; k < 50; k++)
            count[got[e * 50 + k]]++;
        for (int i = 0; i < 50; i++)
            assert_int_equal(count[i], 1);
    }
    /* Successive epochs are shuffled afresh. */
    assert_true(memcmp(got, got + 50, 50 * sizeof got[0]) != 0);

    /* The same seed gives the same order (in one batch or several), another
     * seed another order. */
    int64_t again[N], other[N];
    agon_rng same, diff;
    agon_rng_seed(&same, 42, "data");
    agon_rng_seed(&diff, 43, "data");
    draw_order(&f, &same, N, N, again);
    draw_order(&f, &diff, N, 13, other);
    assert_memory_equal(got, again, sizeof got);
    assert_true(memcmp(got, other, 50 * sizeof got[0]) != 0);
    fm_close(&f);
}

/* Draws with one rng do not move another rng's place in its epoch: a
 * metric drawing real samples leaves training's batches alone. */
static void test_streams_are_independent(void **state)
{
    const char *dir = fifty_dir();
    fm_fixture f;
    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    enum { N = 120 };
    int64_t alone[N], mixed[N], junk[40];
    agon_rng a, b, c;
    agon_rng_seed(&a, 3, "data");
    draw_order(&f, &a, N, 10, alone);
    fm_close(&f);

    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    agon_rng_seed(&a, 3, "data");
    agon_rng_seed(&b, 3, "metrics");
    agon_rng_seed(&c, 4, "metrics");
    for (int k = 0; k < N; k += 10) {
        draw_order(&f, &a, 10, 10, mixed + k);
        draw_order(&f, &b, 7, 7, junk);
        draw_order(&f, &c, 33, 11, junk);
    }
    assert_memory_equal(alone, mixed, sizeof alone);
    fm_close(&f);
}

static void test_next_batch_does_not_allocate(void **state)
{
    const char *dir = fifty_dir();
    fm_fixture f;
    long before = agon_test_allocs;
    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    /* create allocates: a counter that did not move is not counting (a
     * sanitizer or valgrind supplies malloc), and the check says nothing. */
    bool counting = AGON_TEST_COUNTS_ALLOCS && agon_test_allocs > before;

    float x[16 * PIXELS];
    int32_t labels[16];
    int64_t dims[4] = {16, 1, 28, 28};
    agon_tensor t = {x, agon_shape_make(4, dims)};
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
    fm_close(&f);
}

/* Stacked samples: channel c of sample i is image 3i + c of the reference
 * epoch order (the draws run across epoch ends), the label is
 * 100*l0 + 10*l1 + l2, and the rng advances exactly as for 3n images. */
static void check_stacked(fm_fixture *f, const uint8_t *image_labels, int64_t n_written,
                          uint64_t seed, int64_t n, int64_t batch)
{
    int64_t *want = malloc((size_t)(3 * n) * sizeof *want);
    assert_non_null(want);
    agon_rng rng, ref;
    agon_rng_seed(&rng, seed, "data");
    ref = rng;
    agon_test_epoch_order(&ref, f->info.size, want, 3 * n);
    float *x = malloc((size_t)batch * 3 * PIXELS * sizeof *x);
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    assert_non_null(x);
    assert_non_null(labels);
    for (int64_t k = 0; k < n; k += batch) {
        int64_t m = n - k < batch ? n - k : batch;
        int64_t dims[4] = {m, 3, 28, 28};
        agon_tensor t = {x, agon_shape_make(4, dims)};
        agon_error err = {0};
        assert_int_equal(vt->next_batch(f->state, &rng, &t, labels, &err), 0);
        for (int64_t i = 0; i < m; i++) {
            int32_t expect = 0;
            for (int c = 0; c < 3; c++) {
                /* want[] indexes the kept samples; with every image kept
                 * they are the written images in file order. */
                int64_t img = want[3 * (k + i) + c];
                assert_int_equal(image_of(x + (i * 3 + c) * PIXELS, n_written), img);
                expect = expect * 10 + image_labels[img];
            }
            assert_int_equal(labels[i], expect);
        }
    }
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);
    free(x);
    free(labels);
    free(want);
}

static void test_stacked(void **state)
{
    const char *dir = fifty_dir();
    uint8_t fifty_labels[50];
    for (int i = 0; i < 50; i++)
        fifty_labels[i] = (uint8_t)(i % 10);
    fm_fixture f;
    assert_int_equal(fm_open_dir(&f, dir, "  stacked: true\n"), 0);
    assert_int_equal(f.info.sample_shape.ndim, 3);
    assert_int_equal(f.info.sample_shape.dim[0], 3);
    assert_int_equal(f.info.sample_shape.dim[1], 28);
    assert_int_equal(f.info.sample_shape.dim[2], 28);
    assert_int_equal(f.info.size, 50);
    assert_int_equal(f.info.n_classes, 1000);
    assert_string_equal(f.info.split, "train");
    /* 40 samples are 120 images: they run through three epochs of 50. */
    check_stacked(&f, fifty_labels, 50, 11, 40, 7);
    fm_close(&f);

    /* The same seed in one batch gives the same samples. */
    assert_int_equal(fm_open_dir(&f, dir, "  stacked: true\n"), 0);
    check_stacked(&f, fifty_labels, 50, 11, 40, 40);
    fm_close(&f);

    /* Without labels, only the images are written. */
    assert_int_equal(fm_open_dir(&f, dir, "  stacked: true\n"), 0);
    float x[2 * 3 * PIXELS];
    int64_t dims[4] = {2, 3, 28, 28};
    agon_tensor t = {x, agon_shape_make(4, dims)};
    agon_rng rng;
    agon_rng_seed(&rng, 2, "data");
    agon_error err = {0};
    assert_int_equal(vt->next_batch(f.state, &rng, &t, NULL, &err), 0);
    fm_close(&f);

    /* A class subset keeps the original ids: labels stay in the 1000 ids
     * and n_classes stays 1000.  Classes 3 and 7 are images 0 and 3
     * (label 3) and 4 (label 7) of the six-label file. */
    const char *six = six_dir("fm_stacked_six");
    assert_int_equal(fm_open_dir(&f, six, "  stacked: true\n  classes: [3, 7]\n"), 0);
    assert_int_equal(f.info.size, 3);
    assert_int_equal(f.info.n_classes, 1000);
    int32_t labels[20];
    float y[20 * 3 * PIXELS];
    int64_t ydims[4] = {20, 3, 28, 28};
    agon_tensor ty = {y, agon_shape_make(4, ydims)};
    assert_int_equal(vt->next_batch(f.state, &rng, &ty, labels, &err), 0);
    for (int i = 0; i < 20; i++) {
        int32_t expect = 0;
        for (int c = 0; c < 3; c++) {
            int64_t img = image_of(y + (i * 3 + c) * PIXELS, 6);
            assert_true(img == 0 || img == 3 || img == 4);
            expect = expect * 10 + six_labels[img];
        }
        assert_int_equal(labels[i], expect);
        assert_true(labels[i] >= 333 && labels[i] <= 777);
    }
    fm_close(&f);

    /* The batch tensor must have three channels. */
    assert_int_equal(fm_open_dir(&f, six, "  stacked: true\n"), 0);
    int64_t one[4] = {2, 1, 28, 28};
    agon_tensor t1 = {x, agon_shape_make(4, one)};
    agon_error err2 = {0};
    assert_int_equal(vt->next_batch(f.state, &rng, &t1, NULL, &err2), AGON_EINTERNAL);
    assert_string_equal(err2.message, "fashion_mnist: batch tensor has shape [2, 1, 28, 28], "
                                      "expected [n, 3, 28, 28]");
    fm_close(&f);

    expect_error_ex(dir, "  stacked: 3\n", true, AGON_ECONFIG,
                    "fm.yaml:4:12: dataset.stacked: expected true or false, got '3'");
}

static void test_batch_shape_mismatch(void **state)
{
    const char *dir = six_dir("fm_shape");
    fm_fixture f;
    assert_int_equal(fm_open_dir(&f, dir, NULL), 0);
    float buf[2 * 28 * 27];
    int64_t dims[3] = {2, 28, 27};
    agon_tensor t = {buf, agon_shape_make(3, dims)};
    agon_rng rng;
    agon_rng_seed(&rng, 1, "data");
    agon_error err = {0};
    assert_int_equal(vt->next_batch(f.state, &rng, &t, NULL, &err), AGON_EINTERNAL);
    assert_string_equal(err.message, "fashion_mnist: batch tensor has shape [2, 28, 27], "
                                     "expected [n, 1, 28, 28]");
    fm_close(&f);
}

/* The installed package: sizes, the 6000 / 1000 samples per class of the
 * two splits, and the value range. */
static void check_real_split(const char *split, int64_t size)
{
    fm_fixture f;
    char extra[64];
    snprintf(extra, sizeof extra, "  split: %s\n", split);
    assert_int_equal(fm_open_dir(&f, REAL_DIR, extra), 0);
    assert_int_equal(f.info.size, size);
    assert_int_equal(f.info.n_classes, 10);
    agon_rng rng;
    agon_rng_seed(&rng, 7, "data");
    int64_t count[10] = {0};
    float lo = INFINITY, hi = -INFINITY;
    double sum = 0.0;
    for (int64_t k = 0; k < size; k += 1000) {
        int32_t *labels;
        float *x = draw(&f, &rng, 1000, &labels);
        for (int i = 0; i < 1000; i++) {
            assert_true(labels[i] >= 0 && labels[i] < 10);
            count[labels[i]]++;
        }
        for (int64_t p = 0; p < 1000 * PIXELS; p++) {
            lo = fminf(lo, x[p]);
            hi = fmaxf(hi, x[p]);
            sum += x[p];
        }
        free(x);
        free(labels);
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(count[c], size / 10);
    assert_true(lo == -1.0f);
    assert_true(hi == 1.0f);
    /* Mostly dark background: the mean pixel is about 73 of 255 -> -0.43. */
    double mean = sum / ((double)size * PIXELS);
    assert_true(mean > -0.5 && mean < -0.35);
    fm_close(&f);
}

static void test_real_data(void **state)
{
    struct stat st;
    if (stat(REAL_DIR, &st) != 0) {
        fail_msg("%s is missing: the package dataset-fashion-mnist is not installed; "
                 "install it (apt-get install dataset-fashion-mnist)",
                 REAL_DIR);
    }
    check_real_split("train", 60000);
    check_real_split("test", 10000);

    /* The default path is the package's directory. */
    fm_fixture f;
    assert_int_equal(fm_open_ex(&f, "dataset:\n  plugin: fashion_mnist\n  split: test\n"
                                    "  classes: [9]\n", false), 0);
    assert_int_equal(f.info.size, 1000);
    fm_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_parse_and_scale),
        cmocka_unit_test(test_classes_and_limit),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_header_counts_are_claims),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_shuffled_epochs),
        cmocka_unit_test(test_streams_are_independent),
        cmocka_unit_test(test_next_batch_does_not_allocate),
        cmocka_unit_test(test_batch_shape_mismatch),
        cmocka_unit_test(test_stacked),
        cmocka_unit_test(test_real_data),
    };
    return cmocka_run_group_tests_name("fashion_mnist", tests, setup, teardown);
}
