/* libFuzzer harness for the IDX reader of the fashion_mnist dataset
 * (plugins/datasets/fashion_mnist.c), byte by byte: the fuzz input is the
 * content of the image file and of the label file, which the built plugin
 * (through agon's registry) opens as dataset.path of a config.
 *
 * Input: 8 bytes of options, then the two files.
 *   byte 0    bit 0: gzip the image bytes (else they are written as they
 *                    are: zlib reads a plain file through, or a gzip
 *                    stream the bytes themselves hold); bit 1: the same
 *                    for the labels; bit 2: split test (t10k-* files);
 *                    bit 3: stacked; bit 4: a classes list (bytes 1-2, a
 *                    mask of classes 0..9); bit 5: limit (byte 3, 0..255)
 *   bytes 4-7 big-endian length of the image file's bytes (clamped)
 *   then the image file's bytes, then the label file's bytes.
 *
 * Properties checked beyond "no crash, leak or hang" (the sanitizers and
 * libFuzzer's own limits find those):
 *   - the plugin agrees with an independent reading of the IDX format
 *     (header, magic numbers, 28x28, counts, labels 0..9, classes and
 *     limit, enough image bytes) on whether to accept the files and which
 *     file a refusal blames, whenever zlib reads both streams without a
 *     decompression error (with one, zlib's reads of other lengths may
 *     end elsewhere, so only the refusal's form is checked);
 *   - a refusal is one line and names the file at fault;
 *   - round trip: an accepted dataset has the size, shape and classes the
 *     files imply, and its batches give back the file's pixel bytes
 *     exactly through x/127.5 - 1 with their labels; one epoch returns
 *     every kept image once (a stacked sample is three kept images whose
 *     labels make its label).
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  Files go to a private directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "agon/agon.h"
#include "agon/plugin.h"
#include "fuzz_common.h"

#define PIXELS 784
#define CLASSES 10
/* One epoch is checked whole up to this size, else its first draws. */
#define MAX_DRAWS 4096

static char dir[4096];

/* Writes the bytes as they are, or gzip-compressed. */
static void write_idx(const char *path, const uint8_t *data, size_t n, bool gzip)
{
    if (!gzip) {
        fuzz_write_file(path, data, n);
        return;
    }
    gzFile gz = gzopen(path, "wb6");
    if (!gz || (n && gzwrite(gz, data, (unsigned)n) != (int)n) || gzclose(gz) != Z_OK)
        fuzz_fail("harness: cannot write %s", path);
}

/* What zlib reads from the file: every byte up to the end, or up to a
 * decompression error (*damaged); a truncated gzip stream is not damage,
 * only short. */
static uint8_t *read_all(const char *path, size_t *n, bool *damaged)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        fuzz_fail("harness: cannot reopen %s", path);
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        int got = gzread(gz, buf + len, (unsigned)(cap - len));
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    *damaged = zerr != Z_OK && zerr != Z_BUF_ERROR;
    gzclose(gz);
    *n = len;
    return buf;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The independent reading: what the plugin should keep. */
typedef struct expected {
    bool accept;
    const char *blame;      /* the file a refusal names */
    int64_t kept;
    uint32_t *index;        /* [kept] image index of each kept sample */
} expected;

static expected expect(const uint8_t *img, size_t ni, const uint8_t *lab, size_t nl,
                       const bool keep[CLASSES], int64_t limit, const char *images,
                       const char *labels)
{
    expected e = {false, images, 0, NULL};
    if (ni < 16 || be32(img) != 0x803 || be32(img + 8) != 28 || be32(img + 12) != 28)
        return e;
    e.blame = labels;
    if (nl < 8 || be32(lab) != 0x801)
        return e;
    uint32_t count = be32(img + 4);
    e.blame = images;       /* a count mismatch names both, images first */
    if (count != be32(lab + 4) || count == 0)
        return e;
    e.blame = labels;
    if (nl - 8 < count)
        return e;
    e.index = malloc(count * sizeof *e.index);
    int64_t last = -1;
    for (uint32_t i = 0; i < count; i++) {
        if (lab[8 + i] >= CLASSES)
            return e;
        if (keep[lab[8 + i]] && (limit == 0 || e.kept < limit)) {
            e.index[e.kept++] = i;
            last = i;
        }
    }
    if (e.kept == 0)
        return e;
    e.blame = images;
    if ((ni - 16) / PIXELS < (size_t)last + 1)
        return e;
    e.accept = true;
    e.blame = NULL;
    return e;
}

/* A sample's identity: its label and pixel bytes. */
static uint64_t sample_hash(uint8_t label, const uint8_t *pixels)
{
    return fuzz_hash(fuzz_hash(FUZZ_HASH_START, &label, 1), pixels, PIXELS);
}

/* The pixel byte a value came from, checking that it is exactly b/127.5 - 1. */
static uint8_t byte_of(float v)
{
    double b = ((double)v + 1.0) * 127.5;
    int k = (int)(b + 0.5);
    if (k < 0 || k > 255 || v != (float)((double)k / 127.5 - 1.0))
        fuzz_fail("a sample value %.9g is not x/127.5 - 1 for a pixel byte x", (double)v);
    return (uint8_t)k;
}

/* Draws from the dataset and checks every sample against the kept ones. */
static void check_batches(fuzz_dataset *d, const expected *e, const uint8_t *img,
                          const uint8_t *lab, bool stacked)
{
    int64_t n = e->kept;
    uint64_t *want = malloc((size_t)n * sizeof *want);
    for (int64_t k = 0; k < n; k++) {
        uint32_t i = e->index[k];
        want[k] = sample_hash(lab[8 + i], img + 16 + (size_t)i * PIXELS);
    }
    fuzz_sort_hashes(want, (size_t)n);
    int channels = stacked ? 3 : 1;
    int64_t draws = n * channels <= MAX_DRAWS ? n : MAX_DRAWS / channels;
    if (draws == 0)
        draws = 1;
    uint64_t *got = malloc((size_t)(draws * channels) * sizeof *got);
    enum { BATCH = 64 };
    float *x = malloc((size_t)BATCH * channels * PIXELS * sizeof *x);
    int32_t labels[BATCH];
    agon_rng rng;
    agon_rng_seed(&rng, 7, "data");
    for (int64_t done = 0; done < draws;) {
        int64_t b = draws - done < BATCH ? draws - done : BATCH;
        int64_t dims[4] = {b, channels, 28, 28};
        agon_tensor t = {x, agon_shape_make(4, dims)};
        agon_error err = {0};
        if (d->vt->next_batch(d->state, &rng, &t, labels, &err) != 0)
            fuzz_fail("next_batch failed: %s", err.message);
        for (int64_t s = 0; s < b; s++) {
            int32_t label = 0;
            for (int c = 0; c < channels; c++) {
                uint8_t bytes[PIXELS];
                const float *v = x + (s * channels + c) * PIXELS;
                for (int p = 0; p < PIXELS; p++)
                    bytes[p] = byte_of(v[p]);
                /* The channel's label is the digit of the sample's label. */
                int32_t rest = labels[s];
                for (int k = channels - 1; k > c; k--)
                    rest /= CLASSES;
                uint8_t l = (uint8_t)(rest % CLASSES);
                uint64_t h = sample_hash(l, bytes);
                if (!fuzz_find_hash(want, (size_t)n, h))
                    fuzz_fail("a drawn sample (label %d) is none of the kept images",
                              (int)labels[s]);
                got[(done + s) * channels + c] = h;
                label = label * CLASSES + l;
            }
            if (label != labels[s] || labels[s] < 0 || labels[s] >= d->info.n_classes)
                fuzz_fail("label %d does not fit its channels' labels or %lld classes",
                          (int)labels[s], (long long)d->info.n_classes);
        }
        done += b;
    }
    if (!stacked && draws == n) {
        fuzz_sort_hashes(got, (size_t)n);
        if (memcmp(got, want, (size_t)n * sizeof *got) != 0)
            fuzz_fail("one epoch of %lld draws did not return every kept image once",
                      (long long)n);
    }
    free(x);
    free(got);
    free(want);
}

/* Before the first input, so that libFuzzer sees the plugins' code. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "%s/data", fuzz_private_dir("idx"));
    if (mkdir(dir, 0700) != 0)
        abort();
    fuzz_registry();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    uint16_t mask = fuzz_u16(&in);
    uint8_t limit_byte = fuzz_u8(&in);
    uint32_t image_len = fuzz_u32(&in);
    if (image_len > in.n)
        image_len = (uint32_t)in.n;
    const uint8_t *image_bytes = in.p, *label_bytes = in.p + image_len;
    size_t label_len = in.n - image_len;

    bool test = flags & 4, stacked = flags & 8;
    const char *prefix = test ? "t10k" : "train";
    char images[4200], labels[4200];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    fuzz_empty_dir(dir);
    write_idx(images, image_bytes, image_len, flags & 1);
    write_idx(labels, label_bytes, label_len, flags & 2);

    bool keep[CLASSES];
    char classes[64] = "";
    size_t used = 0;
    for (int c = 0; c < CLASSES; c++) {
        keep[c] = !(flags & 16) || (mask & (1u << c)) || !(mask & 0x3ff);
        if ((flags & 16) && (mask & (1u << c)))
            used += (size_t)snprintf(classes + used, sizeof classes - used, "%s%d",
                                     used ? ", " : "", c);
    }
    int64_t limit = flags & 32 ? limit_byte : 0;
    char yaml[5000];
    snprintf(yaml, sizeof yaml,
             "dataset:\n  plugin: fashion_mnist\n  path: %s\n  split: %s\n  stacked: %s\n"
             "  classes: [%s]\n  limit: %lld\n",
             dir, test ? "test" : "train", stacked ? "true" : "false", classes,
             (long long)limit);

    size_t ni, nl;
    bool img_damaged, lab_damaged;
    uint8_t *img = read_all(images, &ni, &img_damaged);
    uint8_t *lab = read_all(labels, &nl, &lab_damaged);
    expected e = expect(img, ni, lab, nl, keep, limit, images, labels);
    bool damaged = img_damaged || lab_damaged;

    fuzz_dataset d;
    int rc = fuzz_dataset_open(&d, "fashion_mnist", yaml);
    fuzz_note("%s (the IDX reading: %s%s)", rc ? d.err.message : "accepted",
              e.accept ? "accept" : "refuse", damaged ? ", damaged stream" : "");
    if (rc != 0) {
        if (!damaged && e.accept)
            fuzz_fail("refused files that an IDX reading accepts (%lld samples kept): %s",
                      (long long)e.kept, d.err.message);
        fuzz_check_create_refusal(&d, rc, NULL);
        if (!strstr(d.err.message, images) && !strstr(d.err.message, labels))
            fuzz_fail("a refusal names neither file: %s", d.err.message);
        if (!damaged && !strstr(d.err.message, e.blame))
            fuzz_fail("a refusal does not name %s: %s", e.blame, d.err.message);
    } else {
        if (!e.accept && !damaged)
            fuzz_fail("accepted files that an IDX reading refuses (it blames %s)", e.blame);
        const agon_shape *sh = &d.info.sample_shape;
        if ((e.accept && d.info.size != e.kept) || d.info.size < 1 || sh->ndim != 3 ||
            sh->dim[0] != (stacked ? 3 : 1) || sh->dim[1] != 28 || sh->dim[2] != 28 ||
            d.info.n_classes != (stacked ? 1000 : CLASSES) ||
            strcmp(d.info.split, test ? "test" : "train") != 0)
            fuzz_fail("accepted with size %lld, %d dims, %lld classes; expected %lld samples",
                      (long long)d.info.size, sh->ndim, (long long)d.info.n_classes,
                      (long long)e.kept);
        /* With a decompression error, zlib may have given this reading
         * fewer bytes than the plugin's reads got before it. */
        if (e.accept)
            check_batches(&d, &e, img, lab, stacked);
    }
    fuzz_dataset_close(&d);
    free(e.index);
    free(img);
    free(lab);
    return 0;
}
