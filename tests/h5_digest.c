/* h5_digest: SHA-256 digests of the numbers of a run log, to pin its bits.
 *
 *   h5_digest LOG.h5              prints the digest lines of the log
 *   h5_digest LOG.h5 --check F    compares them with the file F (written by
 *                                 the first form): exit 0 when every line
 *                                 matches, 1 naming the first difference
 *
 * A line is "PATH FIRST_ROW ROWS SHA256" and covers every dataset under
 * /scalars, /metrics and /final.  The tables and series (/scalars, /metrics)
 * are cut into blocks of BLOCK_ROWS rows, so that a difference is placed in
 * time: the first difference reported is the one at the earliest row, and
 * the step it starts at is read from the table's step column.  The bytes
 * hashed are the values in their stored type, little-endian as x86-64 holds
 * them in memory.  Lines in F that start with '#' are comments. */
#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256_int.h"

#define BLOCK_ROWS 50
#define MAX_LINES 4096

typedef struct line {
    char path[256];
    long long first, rows;
    char sha[65];
} line;

typedef struct digest {
    line *lines;
    size_t n;
} digest;

static int add_line(digest *d, const char *path, long long first, long long rows,
                    const char *sha)
{
    if (d->n == MAX_LINES) {
        fprintf(stderr, "h5_digest: more than %d lines\n", MAX_LINES);
        return -1;
    }
    line *l = &d->lines[d->n++];
    snprintf(l->path, sizeof l->path, "%s", path);
    l->first = first;
    l->rows = rows;
    snprintf(l->sha, sizeof l->sha, "%s", sha);
    return 0;
}

/* Tables and series grow along their first dimension. */
static bool is_growing(const char *path)
{
    return strncmp(path, "/scalars/", 9) == 0 || strncmp(path, "/metrics/", 9) == 0;
}

static int digest_dataset(hid_t file, const char *path, digest *d)
{
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t ftype = H5Dget_type(ds);
    hid_t mtype = H5Tget_native_type(ftype, H5T_DIR_ASCEND);
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK] = {0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    size_t elem = H5Tget_size(mtype);
    int rc = 0;
    /* Strings are not numbers; none is expected under these groups. */
    if (H5Tget_class(ftype) == H5T_STRING || rank < 0)
        goto done;
    hsize_t rows = rank == 0 ? 1 : dims[0];
    size_t row_bytes = elem;
    for (int i = 1; i < rank; i++)
        row_bytes *= dims[i];
    unsigned char *buf = malloc(rows * row_bytes + 1);
    if (!buf || (rows > 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
        free(buf);
        rc = -1;
        goto done;
    }
    hsize_t block = is_growing(path) && rank >= 1 ? BLOCK_ROWS : (rows ? rows : 1);
    /* An empty dataset still gets its line (of 0 rows). */
    hsize_t at = 0;
    do {
        hsize_t n = rows - at < block ? rows - at : block;
        char sha[65];
        agon__sha256_hex(buf + at * row_bytes, n * row_bytes, sha);
        rc = add_line(d, path, (long long)at, (long long)n, sha);
        at += block;
    } while (rc == 0 && at < rows);
    free(buf);
done:
    H5Sclose(space);
    H5Tclose(mtype);
    H5Tclose(ftype);
    H5Dclose(ds);
    return rc;
}

typedef struct walk {
    hid_t file;
    digest *d;
    int rc;
} walk;

static herr_t visit(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    (void)obj;
    walk *w = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    char path[256];
    snprintf(path, sizeof path, "/%s", name);
    if (strncmp(path, "/scalars/", 9) != 0 && strncmp(path, "/metrics/", 9) != 0 &&
        strncmp(path, "/final/", 7) != 0)
        return 0;
    if (digest_dataset(w->file, path, w->d) != 0) {
        fprintf(stderr, "h5_digest: cannot read %s\n", path);
        w->rc = -1;
        return 1;
    }
    return 0;
}

static hid_t open_log(const char *path)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        fprintf(stderr, "h5_digest: %s: cannot open as HDF5\n", path);
    return file;
}

static int digest_log(hid_t file, digest *d)
{
    walk w = {.file = file, .d = d};
    /* By name: the order, and so the file, does not depend on HDF5's
     * creation order. */
    if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, visit, &w) < 0 && w.rc == 0)
        return -1;
    return w.rc;
}

static int read_digest(const char *path, digest *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "h5_digest: cannot read %s\n", path);
        return -1;
    }
    char buf[512];
    while (fgets(buf, sizeof buf, f)) {
        if (buf[0] == '#' || buf[0] == '\n')
            continue;
        char p[256], sha[65];
        long long first, rows;
        if (sscanf(buf, "%255s %lld %lld %64s", p, &first, &rows, sha) != 4 ||
            add_line(d, p, first, rows, sha) != 0) {
            fprintf(stderr, "h5_digest: %s: bad line: %s", path, buf);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* The step of row `row` of the table holding `path`: its sibling "step". */
static long long step_of(hid_t file, const char *path, long long row)
{
    char step_path[300];
    snprintf(step_path, sizeof step_path, "%s", path);
    char *slash = strrchr(step_path, '/');
    if (!slash)
        return -1;
    snprintf(slash + 1, sizeof step_path - (size_t)(slash + 1 - step_path), "step");
    hid_t ds = H5Dopen2(file, step_path, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t space = H5Dget_space(ds);
    hsize_t at = (hsize_t)row, one = 1;
    long long v = -1;
    hid_t mem = H5Screate_simple(1, &one, NULL);
    if (H5Sselect_hyperslab(space, H5S_SELECT_SET, &at, NULL, &one, NULL) < 0 ||
        H5Dread(ds, H5T_NATIVE_LLONG, mem, space, H5P_DEFAULT, &v) < 0)
        v = -1;
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
    return v;
}

static const line *find(const digest *d, const char *path, long long first)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->lines[i].first == first && strcmp(d->lines[i].path, path) == 0)
            return &d->lines[i];
    }
    return NULL;
}

/* Rows of the tables come in the order of their steps; /final holds the
 * state after the last step, so it comes after every row. */
static bool earlier(hid_t file, const line *a, const line *b)
{
    bool fa = !is_growing(a->path), fb = !is_growing(b->path);
    if (fa != fb)
        return fb;
    long long sa = fa ? 0 : step_of(file, a->path, a->first);
    long long sb = fb ? 0 : step_of(file, b->path, b->first);
    if (sa != sb)
        return sa < sb;
    return strcmp(a->path, b->path) < 0;
}

static int check(hid_t file, const digest *now, const digest *want, const char *want_path)
{
    const line *first = NULL;
    const char *why = NULL;
    size_t differing = 0;
    /* Lines of either side that the other lacks or holds otherwise. */
    for (int side = 0; side < 2; side++) {
        const digest *a = side ? want : now, *b = side ? now : want;
        for (size_t i = 0; i < a->n; i++) {
            const line *l = &a->lines[i];
            const line *o = find(b, l->path, l->first);
            const char *reason = NULL;
            if (!o)
                reason = side ? "missing from the log" : "not in the digest file";
            else if (side == 0 && (o->rows != l->rows || strcmp(o->sha, l->sha) != 0))
                reason = "other bits";
            if (!reason)
                continue;
            differing++;
            if (!first || earlier(file, l, first)) {
                first = l;
                why = reason;
            }
        }
    }
    if (!first) {
        printf("h5_digest: %zu blocks equal %s\n", now->n, want_path);
        return 0;
    }
    long long step = is_growing(first->path) ? step_of(file, first->path, first->first) : -1;
    printf("h5_digest: %zu blocks differ from %s (%zu lines); the first: %s rows %lld-%lld",
           differing, want_path, want->n, first->path, first->first,
           first->first + first->rows - 1);
    if (step >= 0)
        printf(" (from step %lld)", step);
    printf(": %s\n", why);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--check") == 0)) {
        fprintf(stderr, "usage: h5_digest LOG.h5 [--check DIGEST]\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = open_log(argv[1]);
    if (file < 0)
        return 2;
    digest now = {.lines = calloc(MAX_LINES, sizeof(line))};
    digest want = {.lines = calloc(MAX_LINES, sizeof(line))};
    int rc = !now.lines || !want.lines || digest_log(file, &now) != 0 ? 2 : 0;
    if (rc == 0 && argc == 2) {
        printf("# h5_digest of %s: path, first row, rows, SHA-256 of the raw values\n",
               argv[1]);
        for (size_t i = 0; i < now.n; i++)
            printf("%s %lld %lld %s\n", now.lines[i].path, now.lines[i].first,
                   now.lines[i].rows, now.lines[i].sha);
    } else if (rc == 0) {
        rc = read_digest(argv[3], &want) != 0 ? 2 : check(file, &now, &want, argv[3]);
    }
    free(now.lines);
    free(want.lines);
    H5Fclose(file);
    return rc;
}
