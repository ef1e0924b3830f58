/* The HDF5 run log (see agon/log.h; the file layout is docs/hdf5-layout.md).
 *
 * Crash safety rests on three HDF5 facts measured in
 * shared/notes/dependencies.md sections 2-3:
 *   - a file written without SWMR and killed mid-write is often unopenable,
 *     so the LIVE phase runs in SWMR-write mode (libver latest) and every
 *     dataset is created before H5Fstart_swmr_write;
 *   - under SWMR, data survives a kill -9 exactly up to the last H5Dflush
 *     of each dataset, so agon_log_flush flushes every dataset;
 *   - a compressed partial chunk is relocated on every rewrite, so the
 *     frequently flushed tables stay uncompressed (their chunks are
 *     rewritten in place) and only the rarely written tensor series use
 *     deflate.
 */
#include "agon/log.h"
#include "agon/version.h"
#include "kill_point_int.h"

#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

enum {
    TABLE_BLOCK_ROWS = 1024,      /* rows buffered per table == chunk length */
    SERIES_STEP_CHUNK = 256,      /* snapshots are rare: a small step chunk */
    TENSOR_COMPRESS_MIN = 1024,   /* elements from which a tensor is deflated */
    DEFLATE_LEVEL = 4,
};

/* Chunks of whole tensors are capped near this size so that one
 * agon_log_write_tensor of a large parameter does not create a single
 * huge chunk (HDF5 limits a chunk to 4 GiB and caches 1 MiB). */
#define TENSOR_CHUNK_BYTES ((hsize_t)1 << 20)
#define MAX_CHUNK_BYTES ((hsize_t)0xFFFFFFFFu)

typedef enum log_phase {
    PHASE_SETUP,
    PHASE_LIVE,
    PHASE_FINAL,
    PHASE_BROKEN, /* the file could not be reopened after SWMR writing */
} log_phase;

struct agon_log_table {
    agon_log *log;
    char *path;
    size_t n_columns;
    char **columns;
    hid_t step_ds;
    hid_t *col_ds;
    int64_t *steps;
    /* Column-major so that each column's block is one contiguous write. */
    double *values;
    size_t buffered;
    hsize_t rows_written;
    bool closed;
};

struct agon_log_series {
    agon_log *log;
    char *path;
    size_t n_columns;
    char **columns;
    hsize_t (*block)[AGON_MAX_DIMS + 1]; /* per column: [1, shape...] */
    int *rank;                           /* per column: 1 + ndim */
    hid_t step_ds;
    hid_t *col_ds;
    hsize_t rows_written;
    bool closed;
};

struct agon_log_block {
    agon_log *log;
    char *path;
    hid_t ds;
    hid_t mem_type;
    int64_t n;
};

struct agon_log {
    char *path;
    /* A descriptor of the file itself, held from creation (or reopening)
     * to the end: the final phase reopens the file through it, never by
     * name, so a writer whose path was replaced meanwhile (moved, or
     * removed by hand) finishes its own file and never writes into
     * another run's log.  -1 when not open. */
    int hold_fd;
    char hold_path[32];     /* "/proc/self/fd/N" */
    hid_t file;
    hid_t fapl;
    hid_t lcpl;
    hid_t str_type;
    log_phase phase;
    agon_log_table **tables;
    size_t n_tables;
    agon_log_series **series;
    size_t n_series;
    agon_log_block **blocks;
    size_t n_blocks;
    uint64_t pending;       /* bytes appended since the last flush */
    /* The final status, written by agon_log_close as the very last thing,
     * so that a writer that dies while finishing leaves "running". */
    char *final_status, *final_message;
};

/* ---- errors ----------------------------------------------------------- */

/* HDF5 is told to stay quiet so that every failure reaches the user as one
 * agon line.  The setting is per thread in this thread-safe build, so every
 * entry point that may fail repeats it (it costs a few nanoseconds). */
static void h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

typedef struct h5_detail {
    char text[256];
} h5_detail;

static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data)
{
    h5_detail *d = data;
    if (n == 0 && e->desc && e->desc[0])
        snprintf(d->text, sizeof d->text, "%s", e->desc);
    return 0;
}

/* The description HDF5 recorded where the last failure was detected.  Must
 * run right after the failing call: the next HDF5 call clears the stack. */
static void h5_capture(h5_detail *d)
{
    snprintf(d->text, sizeof d->text, "no detail from HDF5");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, d);
    /* HDF5 reports a failed write(2) with its errno among buffer addresses;
     * a full disk is the case a user can always act on, so say it plainly. */
    if (strstr(d->text, "errno = 28"))
        snprintf(d->text, sizeof d->text,
                 "no space left on the device; free some space or write the log to another "
                 "disk with -o");
}

static int log_error(agon_error *err, int code, const agon_log *log, const char *obj,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "<file>: <object>: <what>", the shape of every error this file reports. */
static int log_error(agon_error *err, int code, const agon_log *log, const char *obj,
                     const char *fmt, ...)
{
    char what[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (obj)
        return agon_error_set(err, code, "%s: %s: %s", log->path, obj, what);
    return agon_error_set(err, code, "%s: %s", log->path, what);
}

static int log_h5_error(agon_error *err, const agon_log *log, const char *obj,
                        const char *what, const h5_detail *d)
{
    return log_error(err, AGON_EIO, log, obj, "%s (HDF5: %s)", what, d->text);
}

static int log_nomem(agon_error *err, const agon_log *log, const char *obj)
{
    return log_error(err, AGON_ENOMEM, log, obj, "out of memory");
}

/* ---- small helpers ------------------------------------------------------ */

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void utc_now_iso(char buf[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* An absolute HDF5 path without empty, "." or ".." components. */
static bool valid_path(const char *path)
{
    if (!path || path[0] != '/')
        return false;
    if (path[1] == '\0')
        return true;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

/* 1 when every component of `path` exists, 0 when one is missing, -1 on an
 * HDF5 failure.  H5Lexists alone fails on a missing intermediate group. */
static int path_exists(hid_t file, const char *path)
{
    if (strcmp(path, "/") == 0)
        return 1;
    char buf[1024];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = saved;
        if (e < 0)
            return -1;
        if (e == 0)
            return 0;
    }
    return 1;
}

static const char *phase_rule(void)
{
    return "create objects and attributes before agon_log_start or after agon_log_finish";
}

/* Objects and attributes may be written in SETUP and FINAL only. */
static int check_writable(agon_log *log, const char *obj, agon_error *err)
{
    if (log->phase == PHASE_LIVE)
        return log_error(err, AGON_EINTERNAL, log, obj,
                         "cannot write while the log is live (SWMR writing); %s", phase_rule());
    if (log->phase == PHASE_BROKEN)
        return log_error(err, AGON_EIO, log, obj,
                         "the log file could not be reopened after training; "
                         "nothing more can be written");
    return 0;
}

static int check_path(agon_log *log, const char *path, agon_error *err)
{
    if (!valid_path(path))
        return log_error(err, AGON_EINTERNAL, log, path ? path : "(null)",
                         "not an absolute HDF5 path (expected e.g. \"/metrics/name\")");
    if (strlen(path) >= 1024)
        return log_error(err, AGON_EINTERNAL, log, path, "HDF5 path longer than 1023 bytes");
    return 0;
}

/* Opens the object at `path`, creating a group (and its parents) when it
 * does not exist.  Returns an id to close with H5Oclose, or < 0. */
static hid_t open_or_create_object(agon_log *log, const char *path, agon_error *err)
{
    h5_detail d;
    int e = path_exists(log->file, path);
    if (e < 0) {
        h5_capture(&d);
        log_h5_error(err, log, path, "cannot look up the object", &d);
        return H5I_INVALID_HID;
    }
    if (e == 0) {
        hid_t g = H5Gcreate2(log->file, path, log->lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            h5_capture(&d);
            log_h5_error(err, log, path, "cannot create the group", &d);
            return H5I_INVALID_HID;
        }
        H5Gclose(g);
    }
    hid_t o = H5Oopen(log->file, path, H5P_DEFAULT);
    if (o < 0) {
        h5_capture(&d);
        log_h5_error(err, log, path, "cannot open the object", &d);
    }
    return o;
}

/* Writes a scalar attribute, replacing one of the same name. */
static int write_attr(agon_log *log, const char *obj_path, const char *name, hid_t file_type,
                      hid_t mem_type, const void *value, agon_error *err)
{
    if (!name || !name[0])
        return log_error(err, AGON_EINTERNAL, log, obj_path, "attribute name is empty");
    hid_t obj = open_or_create_object(log, obj_path, err);
    if (obj < 0)
        return err ? err->code : AGON_EIO;
    h5_detail d;
    int rc = 0;
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    htri_t exists = H5Aexists(obj, name);
    if (exists > 0 && H5Adelete(obj, name) < 0)
        exists = -1;
    if (exists < 0) {
        h5_capture(&d);
        rc = log_error(err, AGON_EIO, log, obj_path,
                       "cannot replace attribute '%s' (HDF5: %s)", name, d.text);
        goto out;
    }
    space = H5Screate(H5S_SCALAR);
    attr = space < 0 ? H5I_INVALID_HID
                     : H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, mem_type, value) < 0) {
        h5_capture(&d);
        rc = log_error(err, AGON_EIO, log, obj_path,
                       "cannot write attribute '%s' (HDF5: %s)", name, d.text);
    }
out:
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    H5Oclose(obj);
    return rc;
}

static int write_attr_string(agon_log *log, const char *obj_path, const char *name,
                             const char *value, agon_error *err)
{
    const char *v = value ? value : "";
    return write_attr(log, obj_path, name, log->str_type, log->str_type, &v, err);
}

/* Removes a dataset at `path` so that it can be written again; a group
 * there is an error (it would take its children with it). */
static int remove_old_dataset(agon_log *log, const char *path, agon_error *err)
{
    h5_detail d;
    int e = path_exists(log->file, path);
    if (e == 0)
        return 0;
    if (e < 0) {
        h5_capture(&d);
        return log_h5_error(err, log, path, "cannot look up the object", &d);
    }
    hid_t o = H5Oopen(log->file, path, H5P_DEFAULT);
    if (o < 0) {
        h5_capture(&d);
        return log_h5_error(err, log, path, "cannot open the existing object", &d);
    }
    H5I_type_t type = H5Iget_type(o);
    H5Oclose(o);
    if (type != H5I_DATASET)
        return log_error(err, AGON_EINTERNAL, log, path,
                         "a group exists at this path; choose another dataset name");
    if (H5Ldelete(log->file, path, H5P_DEFAULT) < 0) {
        h5_capture(&d);
        return log_h5_error(err, log, path, "cannot replace the existing dataset", &d);
    }
    return 0;
}

/* An extendible dataset [0, inner...] with chunk [chunk0, inner...]. */
static hid_t create_extendible(agon_log *log, const char *path, hid_t type, int rank,
                               const hsize_t *inner, hsize_t chunk0, bool compress,
                               agon_error *err)
{
    hsize_t dims[AGON_MAX_DIMS + 1], maxdims[AGON_MAX_DIMS + 1], chunk[AGON_MAX_DIMS + 1];
    dims[0] = 0;
    maxdims[0] = H5S_UNLIMITED;
    chunk[0] = chunk0;
    for (int i = 1; i < rank; i++)
        dims[i] = maxdims[i] = chunk[i] = inner[i - 1];
    h5_detail d;
    hid_t ds = H5I_INVALID_HID;
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0)
        goto fail;
    if (compress && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, DEFLATE_LEVEL) < 0))
        goto fail;
    ds = H5Dcreate2(log->file, path, type, space, log->lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0)
        goto fail;
    H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
fail:
    h5_capture(&d);
    log_h5_error(err, log, path, "cannot create the dataset", &d);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return H5I_INVALID_HID;
}

/* Extends `ds` along dim 0 to first + block[0] and writes `buf` (block
 * dims) at row `first`.  Idempotent, so a failed append can be retried. */
static int extend_and_write(hid_t ds, int rank, hsize_t first, const hsize_t *block,
                            hid_t mem_type, const void *buf, h5_detail *d)
{
    hsize_t dims[AGON_MAX_DIMS + 1], start[AGON_MAX_DIMS + 1];
    for (int i = 0; i < rank; i++) {
        dims[i] = block[i];
        start[i] = 0;
    }
    dims[0] = first + block[0];
    start[0] = first;
    int rc = -1;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    if (H5Dset_extent(ds, dims) < 0)
        goto out;
    fs = H5Dget_space(ds);
    if (fs < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, block, NULL) < 0)
        goto out;
    ms = H5Screate_simple(rank, block, NULL);
    if (ms < 0 || H5Dwrite(ds, mem_type, ms, fs, H5P_DEFAULT, buf) < 0)
        goto out;
    rc = 0;
out:
    if (rc < 0)
        h5_capture(d);
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return rc;
}

/* Validates table/series column names: each becomes a dataset name next
 * to "step" and an item of the comma-separated "columns" attribute. */
static int check_columns(agon_log *log, const char *path, const char *const *columns,
                         size_t n, agon_error *err)
{
    if (n == 0)
        return log_error(err, AGON_EINTERNAL, log, path, "no columns given");
    for (size_t i = 0; i < n; i++) {
        const char *c = columns[i];
        if (!c || !c[0])
            return log_error(err, AGON_EINTERNAL, log, path, "column %zu has an empty name", i);
        if (strchr(c, '/') || strchr(c, ',') || strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
            return log_error(err, AGON_EINTERNAL, log, path,
                             "column name '%s' is not allowed (no '/', ',', '.' or '..')", c);
        if (strcmp(c, "step") == 0)
            return log_error(err, AGON_EINTERNAL, log, path,
                             "column name 'step' is reserved for the step index");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(columns[j], c) == 0)
                return log_error(err, AGON_EINTERNAL, log, path, "column '%s' appears twice", c);
        }
    }
    return 0;
}

static char *join_columns(const char *const *columns, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(columns[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    char *p = s;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(columns[i]);
        if (i > 0)
            *p++ = ',';
        memcpy(p, columns[i], k);
        p += k;
        *p = '\0';
    }
    return s;
}

static char **copy_columns(const char *const *columns, size_t n)
{
    char **c = calloc(n, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        c[i] = dup_string(columns[i]);
        if (!c[i]) {
            for (size_t j = 0; j < i; j++)
                free(c[j]);
            free(c);
            return NULL;
        }
    }
    return c;
}

static void free_columns(char **c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        free(c[i]);
    free(c);
}

/* Creates the group of a table or series with its "columns" attribute;
 * the group must not exist yet. */
static int create_column_group(agon_log *log, const char *path, const char *const *columns,
                               size_t n, agon_error *err)
{
    h5_detail d;
    int e = path_exists(log->file, path);
    if (e < 0) {
        h5_capture(&d);
        return log_h5_error(err, log, path, "cannot look up the object", &d);
    }
    if (e > 0)
        return log_error(err, AGON_EINTERNAL, log, path,
                         "already exists; a table or series needs a new group");
    hid_t g = H5Gcreate2(log->file, path, log->lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        h5_capture(&d);
        return log_h5_error(err, log, path, "cannot create the group", &d);
    }
    H5Gclose(g);
    char *joined = join_columns(columns, n);
    if (!joined)
        return log_nomem(err, log, path);
    int rc = write_attr_string(log, path, "columns", joined, err);
    free(joined);
    return rc;
}

static int check_declarable(agon_log *log, const char *path, agon_error *err)
{
    int rc = check_path(log, path, err);
    if (rc)
        return rc;
    if (log->phase != PHASE_SETUP)
        return log_error(err, AGON_EINTERNAL, log, path,
                         "tables and series can only be declared before agon_log_start");
    return 0;
}

static char *child_path(const char *group, const char *name)
{
    size_t a = strlen(group), b = strlen(name);
    bool root = strcmp(group, "/") == 0;
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    snprintf(p, a + b + 2, "%s/%s", root ? "" : group, name);
    return p;
}

/* Creates the datasets of a column group: step plus one per column.
 * `ids` receives the column dataset ids; returns the step dataset id. */
static hid_t create_column_datasets(agon_log *log, const char *path, const char *const *columns,
                                    size_t n, hid_t type, const int *rank,
                                    hsize_t (*inner)[AGON_MAX_DIMS + 1], hsize_t chunk0,
                                    hsize_t step_chunk, bool compress, hid_t *ids,
                                    agon_error *err)
{
    for (size_t c = 0; c < n; c++) {
        char *p = child_path(path, columns[c]);
        if (!p) {
            log_nomem(err, log, path);
            return H5I_INVALID_HID;
        }
        ids[c] = create_extendible(log, p, type, rank[c], inner[c] + 1, chunk0, compress, err);
        free(p);
        if (ids[c] < 0)
            return H5I_INVALID_HID;
    }
    char *p = child_path(path, "step");
    if (!p) {
        log_nomem(err, log, path);
        return H5I_INVALID_HID;
    }
    hid_t step = create_extendible(log, p, H5T_STD_I64LE, 1, NULL, step_chunk, false, err);
    free(p);
    return step;
}

/* ---- lifecycle ---------------------------------------------------------- */

static const char *create_hint(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return "create the directory or choose another -o path";
    case EACCES:
    case EPERM:
    case EROFS:
        return "make the directory writable or choose another -o path";
    default:
        return "choose another -o path";
    }
}

/* The memory of a table or series (NULL-safe; its datasets are closed
 * elsewhere). */
static void table_free(agon_log_table *t)
{
    if (!t)
        return;
    free(t->path);
    free_columns(t->columns, t->n_columns);
    free(t->col_ds);
    free(t->steps);
    free(t->values);
    free(t);
}

static void series_free(agon_log_series *s)
{
    if (!s)
        return;
    free(s->path);
    free_columns(s->columns, s->n_columns);
    free(s->block);
    free(s->rank);
    free(s->col_ds);
    free(s);
}

static void log_free(agon_log *log)
{
    for (size_t i = 0; i < log->n_tables; i++)
        table_free(log->tables[i]);
    for (size_t i = 0; i < log->n_series; i++)
        series_free(log->series[i]);
    for (size_t i = 0; i < log->n_blocks; i++) {
        free(log->blocks[i]->path);
        free(log->blocks[i]);
    }
    free(log->tables);
    free(log->series);
    free(log->blocks);
    free(log->final_status);
    free(log->final_message);
    if (log->str_type >= 0)
        H5Tclose(log->str_type);
    if (log->lcpl >= 0)
        H5Pclose(log->lcpl);
    if (log->fapl >= 0)
        H5Pclose(log->fapl);
    if (log->hold_fd >= 0)
        close(log->hold_fd);
    free(log->path);
    free(log);
}

/* Takes hold of the file just opened at log->path (see hold_fd). */
static int hold_file(agon_log *log, agon_error *err)
{
    log->hold_fd = open(log->path, O_RDONLY | O_CLOEXEC);
    if (log->hold_fd < 0)
        return agon_error_set(err, AGON_EIO, "%s: cannot open the log file: %s", log->path,
                              strerror(errno));
    snprintf(log->hold_path, sizeof log->hold_path, "/proc/self/fd/%d", log->hold_fd);
    return 0;
}

/* The log's memory and HDF5 property lists, in the SETUP phase, no file
 * open yet. */
static agon_log *log_new(const char *path, agon_error *err)
{
    agon_log *log = calloc(1, sizeof *log);
    if (!log || !(log->path = dup_string(path))) {
        free(log);
        agon_error_set(err, AGON_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    log->file = log->fapl = log->lcpl = log->str_type = H5I_INVALID_HID;
    log->hold_fd = -1;
    log->phase = PHASE_SETUP;

    h5_detail d;
    log->fapl = H5Pcreate(H5P_FILE_ACCESS);
    log->lcpl = H5Pcreate(H5P_LINK_CREATE);
    log->str_type = H5Tcopy(H5T_C_S1);
    if (log->fapl < 0 || log->lcpl < 0 || log->str_type < 0 ||
        H5Pset_libver_bounds(log->fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_fclose_degree(log->fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_create_intermediate_group(log->lcpl, 1) < 0 ||
        H5Pset_char_encoding(log->lcpl, H5T_CSET_UTF8) < 0 ||
        H5Tset_size(log->str_type, H5T_VARIABLE) < 0 ||
        H5Tset_cset(log->str_type, H5T_CSET_UTF8) < 0) {
        h5_capture(&d);
        log_error(err, AGON_EIO, log, NULL, "cannot set up HDF5 properties (HDF5: %s)", d.text);
        log_free(log);
        return NULL;
    }
    return log;
}

agon_log *agon_log_create(const char *path, agon_error *err)
{
    h5_quiet();
    /* HDF5 does not say why a create failed in terms a user can act on;
     * opening the file ourselves first gives the errno for the message. */
    bool existed = access(path, F_OK) == 0;
    int fd = open(path, O_WRONLY | O_CREAT, 0666);
    if (fd < 0) {
        int e = errno;
        agon_error_set(err, AGON_EIO, "%s: cannot create log file: %s; %s", path, strerror(e),
                       create_hint(e));
        return NULL;
    }
    close(fd);

    agon_log *log = log_new(path, err);
    if (!log)
        return NULL;
    h5_detail d;
    log->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, log->fapl);
    if (log->file < 0) {
        h5_capture(&d);
        log_error(err, AGON_EIO, log, NULL,
                  "cannot create log file: HDF5 refused (%s); close programs that have it open "
                  "or choose another -o path", d.text);
        if (!existed)
            unlink(path);
        log_free(log);
        return NULL;
    }
    if (hold_file(log, err) != 0) {
        H5Fclose(log->file);
        log_free(log);
        return NULL;
    }

    char now[32];
    utc_now_iso(now);
    int64_t fmt = AGON_LOG_FORMAT_VERSION;
    int rc = agon_log_attr_int(log, "/", "format_version", fmt, err);
    if (!rc)
        rc = agon_log_attr_string(log, "/", "agon_version", agon_version(), err);
    if (!rc)
        rc = agon_log_attr_string(log, "/", "git_revision", agon_git_revision(), err);
    if (!rc)
        rc = agon_log_attr_string(log, "/", "status", "running", err);
    if (!rc)
        rc = agon_log_attr_string(log, "/", "status_message", "", err);
    if (!rc)
        rc = agon_log_attr_string(log, "/", "start_time", now, err);
    if (rc) {
        H5Fclose(log->file);
        log_free(log);
        return NULL;
    }
    return log;
}

bool agon_log_file_is_hdf5(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    h5_quiet();
    return H5Fis_hdf5(path) > 0;
}

const char *agon_log_path(const agon_log *log)
{
    return log->path;
}

int agon_log_move(agon_log *log, const char *path, agon_error *err)
{
    char *copy = dup_string(path);
    if (!copy)
        return log_nomem(err, log, NULL);
    if (rename(log->path, path) != 0) {
        int e = errno;
        free(copy);
        return agon_error_set(err, AGON_EIO, "%s: cannot move the new log here from %s: %s",
                              path, log->path, strerror(e));
    }
    free(log->path);
    log->path = copy;
    return 0;
}

/* ---- attributes and whole datasets ---------------------------------------- */

static int attr_prologue(agon_log *log, const char *obj_path, agon_error *err)
{
    h5_quiet();
    int rc = check_path(log, obj_path, err);
    return rc ? rc : check_writable(log, obj_path, err);
}

int agon_log_attr_string(agon_log *log, const char *obj_path, const char *name,
                         const char *value, agon_error *err)
{
    int rc = attr_prologue(log, obj_path, err);
    return rc ? rc : write_attr_string(log, obj_path, name, value, err);
}

/* Whether the attribute (is_attr) or dataset `id` holds exactly one
 * element: agon's readers read a value into one variable, and a file
 * written by another tool may hold an array where agon writes a scalar
 * (H5S_ALL would write every element into that variable). */
static bool holds_one(hid_t id, bool is_attr)
{
    hid_t space = is_attr ? H5Aget_space(id) : H5Dget_space(id);
    bool one = space >= 0 && H5Sget_simple_extent_npoints(space) == 1;
    if (space >= 0)
        H5Sclose(space);
    return one;
}

char *agon_log_attr_read_string(agon_log *log, const char *obj_path, const char *name)
{
    h5_quiet();
    if (!valid_path(obj_path) || H5Aexists_by_name(log->file, obj_path, name, H5P_DEFAULT) <= 0)
        return NULL;
    hid_t a = H5Aopen_by_name(log->file, obj_path, name, H5P_DEFAULT, H5P_DEFAULT);
    char *v = NULL, *out = NULL;
    if (a >= 0 && holds_one(a, true) && H5Aread(a, log->str_type, &v) >= 0 && v) {
        out = dup_string(v);
        H5free_memory(v);
    }
    if (a >= 0)
        H5Aclose(a);
    return out;
}

int agon_log_attr_int(agon_log *log, const char *obj_path, const char *name, int64_t value,
                      agon_error *err)
{
    int rc = attr_prologue(log, obj_path, err);
    return rc ? rc
              : write_attr(log, obj_path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err);
}

int agon_log_attr_double(agon_log *log, const char *obj_path, const char *name, double value,
                         agon_error *err)
{
    int rc = attr_prologue(log, obj_path, err);
    return rc ? rc
              : write_attr(log, obj_path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
}

int agon_log_write_string(agon_log *log, const char *path, const char *value, agon_error *err)
{
    int rc = attr_prologue(log, path, err);
    if (!rc)
        rc = remove_old_dataset(log, path, err);
    if (rc)
        return rc;
    h5_detail d;
    const char *v = value ? value : "";
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t ds = space < 0 ? H5I_INVALID_HID
                         : H5Dcreate2(log->file, path, log->str_type, space, log->lcpl,
                                      H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, log->str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0) {
        h5_capture(&d);
        rc = log_h5_error(err, log, path, "cannot write the string dataset", &d);
    }
    if (ds >= 0)
        H5Dclose(ds);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* Chunk of a whole tensor: its shape, cut along the leading dims until a
 * chunk is about TENSOR_CHUNK_BYTES. */
static void tensor_chunk(int rank, const hsize_t *dims, hsize_t *chunk)
{
    hsize_t bytes = sizeof(float);
    for (int i = 0; i < rank; i++) {
        chunk[i] = dims[i];
        bytes *= dims[i];
    }
    for (int i = 0; i < rank && bytes > TENSOR_CHUNK_BYTES; i++) {
        hsize_t row = bytes / chunk[i];
        hsize_t keep = TENSOR_CHUNK_BYTES / row;
        chunk[i] = keep > 0 ? keep : 1;
        bytes = row * chunk[i];
    }
}

static bool shape_ok(const agon_shape *s, hsize_t *numel)
{
    if (s->ndim < 0 || s->ndim > AGON_MAX_DIMS)
        return false;
    hsize_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->dim[i] < 1)
            return false;
        n *= (hsize_t)s->dim[i];
    }
    *numel = n;
    return true;
}

int agon_log_write_tensor(agon_log *log, const char *path, const agon_tensor *t,
                          agon_error *err)
{
    int rc = attr_prologue(log, path, err);
    if (rc)
        return rc;
    hsize_t numel = 0;
    if (!t || !t->data || !shape_ok(&t->shape, &numel))
        return log_error(err, AGON_EINTERNAL, log, path, "invalid tensor (no data or bad shape)");
    rc = remove_old_dataset(log, path, err);
    if (rc)
        return rc;
    int rank = t->shape.ndim;
    hsize_t dims[AGON_MAX_DIMS], chunk[AGON_MAX_DIMS];
    for (int i = 0; i < rank; i++)
        dims[i] = (hsize_t)t->shape.dim[i];
    h5_detail d;
    hid_t ds = H5I_INVALID_HID;
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    bool ok = space >= 0 && dcpl >= 0;
    if (ok && rank > 0 && numel >= TENSOR_COMPRESS_MIN) {
        tensor_chunk(rank, dims, chunk);
        ok = H5Pset_chunk(dcpl, rank, chunk) >= 0 && H5Pset_shuffle(dcpl) >= 0 &&
             H5Pset_deflate(dcpl, DEFLATE_LEVEL) >= 0;
    }
    if (ok)
        ds = H5Dcreate2(log->file, path, H5T_IEEE_F32LE, space, log->lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
        h5_capture(&d);
        rc = log_h5_error(err, log, path, "cannot write the tensor", &d);
    }
    if (ds >= 0)
        H5Dclose(ds);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* ---- tables ------------------------------------------------------------- */

/* A table's memory, registered with the log (so that log_free frees it
 * whatever happens next) before any dataset exists. */
static agon_log_table *table_new(agon_log *log, const char *path, const char *const *columns,
                                 size_t n_columns, agon_error *err)
{
    agon_log_table **grown = realloc(log->tables, (log->n_tables + 1) * sizeof *grown);
    if (!grown) {
        log_nomem(err, log, path);
        return NULL;
    }
    log->tables = grown;
    agon_log_table *t = calloc(1, sizeof *t);
    if (t) {
        t->log = log;
        t->n_columns = n_columns;
        t->step_ds = H5I_INVALID_HID;
        t->path = dup_string(path);
        t->columns = copy_columns(columns, n_columns);
        t->col_ds = malloc(n_columns * sizeof *t->col_ds);
        t->steps = malloc(TABLE_BLOCK_ROWS * sizeof *t->steps);
        t->values = malloc(n_columns * TABLE_BLOCK_ROWS * sizeof *t->values);
    }
    if (!t || !t->path || !t->columns || !t->col_ds || !t->steps || !t->values) {
        log_nomem(err, log, path);
        table_free(t);
        return NULL;
    }
    for (size_t c = 0; c < n_columns; c++)
        t->col_ds[c] = H5I_INVALID_HID;
    log->tables[log->n_tables++] = t;
    return t;
}

/* Marks a table or series whose datasets could not all be created or
 * opened as unusable, closing the ones that were. */
static void columns_failed(bool *closed, hid_t *col_ds, size_t n, hid_t *step_ds)
{
    *closed = true;
    for (size_t c = 0; c < n; c++) {
        if (col_ds[c] >= 0)
            H5Dclose(col_ds[c]);
        col_ds[c] = H5I_INVALID_HID;
    }
    if (*step_ds >= 0)
        H5Dclose(*step_ds);
    *step_ds = H5I_INVALID_HID;
}

agon_log_table *agon_log_table_create(agon_log *log, const char *path,
                                      const char *const *columns, size_t n_columns,
                                      agon_error *err)
{
    h5_quiet();
    if (check_declarable(log, path, err) || check_columns(log, path, columns, n_columns, err))
        return NULL;
    int *rank = calloc(n_columns, sizeof *rank);
    hsize_t (*inner)[AGON_MAX_DIMS + 1] = calloc(n_columns, sizeof *inner);
    agon_log_table *t = rank && inner ? table_new(log, path, columns, n_columns, err) : NULL;
    if (!rank || !inner)
        log_nomem(err, log, path);
    if (t) {
        for (size_t c = 0; c < n_columns; c++)
            rank[c] = 1;
        if (create_column_group(log, path, columns, n_columns, err) == 0)
            t->step_ds = create_column_datasets(log, path, columns, n_columns, H5T_IEEE_F64LE,
                                                rank, inner, TABLE_BLOCK_ROWS, TABLE_BLOCK_ROWS,
                                                false, t->col_ds, err);
        if (t->step_ds < 0) {
            columns_failed(&t->closed, t->col_ds, n_columns, &t->step_ds);
            t = NULL;
        }
    }
    free(rank);
    free(inner);
    return t;
}

static int table_write_block(agon_log_table *t, agon_error *err)
{
    if (t->buffered == 0)
        return 0;
    h5_quiet();
    hsize_t block = t->buffered;
    h5_detail d;
    /* Columns before "step": a reader that trusts the length of "step"
     * then never sees a step whose values are missing. */
    for (size_t c = 0; c < t->n_columns; c++) {
        if (extend_and_write(t->col_ds[c], 1, t->rows_written, &block, H5T_NATIVE_DOUBLE,
                             t->values + c * TABLE_BLOCK_ROWS, &d) < 0)
            return log_error(err, AGON_EIO, t->log, t->path,
                             "cannot append rows to column '%s' (HDF5: %s)", t->columns[c],
                             d.text);
    }
    if (extend_and_write(t->step_ds, 1, t->rows_written, &block, H5T_NATIVE_INT64, t->steps,
                         &d) < 0)
        return log_error(err, AGON_EIO, t->log, t->path,
                         "cannot append rows to 'step' (HDF5: %s)", d.text);
    t->rows_written += block;
    t->buffered = 0;
    return 0;
}

int agon_log_table_append(agon_log_table *t, int64_t step, const double *values,
                          agon_error *err)
{
    if (t->closed)
        return log_error(err, AGON_EINTERNAL, t->log, t->path,
                         "table no longer accepts rows (the log was finished or the table "
                         "could not be created)");
    if (t->buffered == TABLE_BLOCK_ROWS) {
        int rc = table_write_block(t, err);
        if (rc)
            return rc;
    }
    size_t row = t->buffered++;
    t->log->pending += (t->n_columns + 1) * sizeof(double);
    t->steps[row] = step;
    for (size_t c = 0; c < t->n_columns; c++)
        t->values[c * TABLE_BLOCK_ROWS + row] = values[c];
    return t->buffered == TABLE_BLOCK_ROWS ? table_write_block(t, err) : 0;
}

/* ---- tensor series ---------------------------------------------------------- */

/* Checks a series' shapes: each a valid tensor shape whose snapshot fits
 * one HDF5 chunk. */
static int check_shapes(agon_log *log, const char *path, const char *const *columns,
                        const agon_shape *shapes, size_t n_columns, agon_error *err)
{
    for (size_t c = 0; c < n_columns; c++) {
        hsize_t numel = 0;
        if (!shape_ok(&shapes[c], &numel))
            return log_error(err, AGON_EINTERNAL, log, path,
                             "column '%s' has an invalid shape (ndim 0..%d, every dim >= 1)",
                             columns[c], AGON_MAX_DIMS);
        if (numel * sizeof(float) > MAX_CHUNK_BYTES)
            return log_error(err, AGON_EINTERNAL, log, path,
                             "column '%s': one snapshot exceeds the 4 GiB HDF5 chunk limit",
                             columns[c]);
    }
    return 0;
}

/* A series' memory, registered with the log before any dataset exists. */
static agon_log_series *series_new(agon_log *log, const char *path, const char *const *columns,
                                   const agon_shape *shapes, size_t n_columns, agon_error *err)
{
    agon_log_series **grown = realloc(log->series, (log->n_series + 1) * sizeof *grown);
    if (!grown) {
        log_nomem(err, log, path);
        return NULL;
    }
    log->series = grown;
    agon_log_series *s = calloc(1, sizeof *s);
    if (s) {
        s->log = log;
        s->n_columns = n_columns;
        s->step_ds = H5I_INVALID_HID;
        s->path = dup_string(path);
        s->columns = copy_columns(columns, n_columns);
        s->col_ds = malloc(n_columns * sizeof *s->col_ds);
        s->block = calloc(n_columns, sizeof *s->block);
        s->rank = calloc(n_columns, sizeof *s->rank);
    }
    if (!s || !s->path || !s->columns || !s->col_ds || !s->block || !s->rank) {
        log_nomem(err, log, path);
        series_free(s);
        return NULL;
    }
    for (size_t c = 0; c < n_columns; c++) {
        s->col_ds[c] = H5I_INVALID_HID;
        s->rank[c] = 1 + shapes[c].ndim;
        s->block[c][0] = 1;
        for (int i = 0; i < shapes[c].ndim; i++)
            s->block[c][i + 1] = (hsize_t)shapes[c].dim[i];
    }
    log->series[log->n_series++] = s;
    return s;
}

agon_log_series *agon_log_series_create(agon_log *log, const char *path,
                                        const char *const *columns, const agon_shape *shapes,
                                        size_t n_columns, agon_error *err)
{
    h5_quiet();
    if (check_declarable(log, path, err) || check_columns(log, path, columns, n_columns, err) ||
        check_shapes(log, path, columns, shapes, n_columns, err))
        return NULL;
    agon_log_series *s = series_new(log, path, columns, shapes, n_columns, err);
    if (!s)
        return NULL;
    if (create_column_group(log, path, columns, n_columns, err) == 0)
        s->step_ds = create_column_datasets(log, path, columns, n_columns, H5T_IEEE_F32LE,
                                            s->rank, s->block, 1, SERIES_STEP_CHUNK, true,
                                            s->col_ds, err);
    if (s->step_ds < 0) {
        columns_failed(&s->closed, s->col_ds, n_columns, &s->step_ds);
        return NULL;
    }
    return s;
}

int agon_log_series_append(agon_log_series *s, int64_t step, const float *const *data,
                           agon_error *err)
{
    if (s->closed)
        return log_error(err, AGON_EINTERNAL, s->log, s->path,
                         "series no longer accepts snapshots (the log was finished or the "
                         "series could not be created)");
    h5_quiet();
    h5_detail d;
    for (size_t c = 0; c < s->n_columns; c++) {
        if (extend_and_write(s->col_ds[c], s->rank[c], s->rows_written, s->block[c],
                             H5T_NATIVE_FLOAT, data[c], &d) < 0)
            return log_error(err, AGON_EIO, s->log, s->path,
                             "cannot append a snapshot to column '%s' (HDF5: %s)",
                             s->columns[c], d.text);
    }
    hsize_t one = 1;
    if (extend_and_write(s->step_ds, 1, s->rows_written, &one, H5T_NATIVE_INT64, &step, &d) < 0)
        return log_error(err, AGON_EIO, s->log, s->path,
                         "cannot append to 'step' (HDF5: %s)", d.text);
    s->rows_written++;
    s->log->pending += sizeof(int64_t);
    for (size_t c = 0; c < s->n_columns; c++) {
        uint64_t numel = 1;
        for (int i = 1; i < s->rank[c]; i++)
            numel *= s->block[c][i];
        s->log->pending += numel * sizeof(float);
    }
    return 0;
}

/* ---- flushing, finishing, closing -------------------------------------------- */

static int write_all_blocks(agon_log *log, agon_error *err)
{
    int first = 0;
    for (size_t i = 0; i < log->n_tables; i++) {
        if (log->tables[i]->closed)
            continue;
        int rc = table_write_block(log->tables[i], err);
        if (rc && !first)
            first = rc;
    }
    return first;
}

static int flush_dataset(agon_log *log, const char *group, const char *name, hid_t ds,
                         agon_error *err)
{
    if (H5Dflush(ds) >= 0)
        return 0;
    h5_detail d;
    h5_capture(&d);
    return log_error(err, AGON_EIO, log, group, "cannot flush '%s' (HDF5: %s)", name, d.text);
}

/* Under SWMR only H5Dflush makes appended rows visible and crash-safe;
 * outside SWMR a file flush does the same for the whole file. */
static int flush_datasets(agon_log *log, agon_error *err)
{
    if (log->phase != PHASE_LIVE) {
        if (H5Fflush(log->file, H5F_SCOPE_LOCAL) >= 0)
            return 0;
        h5_detail d;
        h5_capture(&d);
        return log_h5_error(err, log, NULL, "cannot flush the file", &d);
    }
    int first = 0, rc;
    for (size_t i = 0; i < log->n_tables; i++) {
        agon_log_table *t = log->tables[i];
        if (t->closed)
            continue;
        for (size_t c = 0; c < t->n_columns; c++) {
            if ((rc = flush_dataset(log, t->path, t->columns[c], t->col_ds[c], err)) && !first)
                first = rc;
        }
        if ((rc = flush_dataset(log, t->path, "step", t->step_ds, err)) && !first)
            first = rc;
    }
    for (size_t i = 0; i < log->n_series; i++) {
        agon_log_series *s = log->series[i];
        if (s->closed)
            continue;
        for (size_t c = 0; c < s->n_columns; c++) {
            if ((rc = flush_dataset(log, s->path, s->columns[c], s->col_ds[c], err)) && !first)
                first = rc;
        }
        if ((rc = flush_dataset(log, s->path, "step", s->step_ds, err)) && !first)
            first = rc;
    }
    return first;
}

int agon_log_flush(agon_log *log, agon_error *err)
{
    h5_quiet();
    if (log->phase == PHASE_BROKEN)
        return check_writable(log, NULL, err);
    int rc = write_all_blocks(log, err);
    int rc2 = flush_datasets(log, err);
    if (rc == 0 && rc2 == 0)
        log->pending = 0;
    return rc ? rc : rc2;
}

int agon_log_start(agon_log *log, agon_error *err)
{
    h5_quiet();
    if (log->phase != PHASE_SETUP)
        return log_error(err, AGON_EINTERNAL, log, NULL,
                         "agon_log_start called twice or after agon_log_finish");
    if (H5Fstart_swmr_write(log->file) < 0) {
        h5_detail d;
        h5_capture(&d);
        return log_h5_error(err, log, NULL, "cannot start SWMR writing", &d);
    }
    log->phase = PHASE_LIVE;
    return 0;
}

static void close_datasets(agon_log *log)
{
    for (size_t i = 0; i < log->n_blocks; i++) {
        if (log->blocks[i]->ds >= 0)
            H5Dclose(log->blocks[i]->ds);
        log->blocks[i]->ds = H5I_INVALID_HID;
    }
    for (size_t i = 0; i < log->n_tables; i++) {
        agon_log_table *t = log->tables[i];
        if (!t->closed) {
            for (size_t c = 0; c < t->n_columns; c++)
                H5Dclose(t->col_ds[c]);
            H5Dclose(t->step_ds);
        }
        t->closed = true;
    }
    for (size_t i = 0; i < log->n_series; i++) {
        agon_log_series *s = log->series[i];
        if (!s->closed) {
            for (size_t c = 0; c < s->n_columns; c++)
                H5Dclose(s->col_ds[c]);
            H5Dclose(s->step_ds);
        }
        s->closed = true;
    }
}

/* Reopens the file read-write without SWMR.  A SWMR reader (`agon show`, a
 * live plot) holds a shared lock that makes a plain read-write open fail,
 * and the final status matters more than the lock: the reader only reads,
 * and it sees the new attributes once it reopens the file. */
static hid_t reopen_final(agon_log *log, h5_detail *d)
{
    const char *file = log->hold_fd >= 0 ? log->hold_path : log->path;
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, log->fapl);
    if (f >= 0)
        return f;
    h5_capture(d);
    hid_t unlocked = H5Pcopy(log->fapl);
    if (unlocked >= 0 && H5Pset_file_locking(unlocked, 0, 1) >= 0) {
        f = H5Fopen(file, H5F_ACC_RDWR, unlocked);
        if (f < 0)
            h5_capture(d);
    }
    if (unlocked >= 0)
        H5Pclose(unlocked);
    return f;
}

static bool valid_final_status(const char *s)
{
    static const char *const ok[] = {"completed", "diverged", "failed", "interrupted"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (s && strcmp(s, ok[i]) == 0)
            return true;
    }
    return false;
}

int agon_log_finish(agon_log *log, const char *status, const char *message, agon_error *err)
{
    h5_quiet();
    if (!valid_final_status(status))
        return log_error(err, AGON_EINTERNAL, log, "/",
                         "invalid final status '%s' (expected completed, diverged, failed "
                         "or interrupted)", status ? status : "(null)");
    if (log->phase != PHASE_SETUP && log->phase != PHASE_LIVE)
        return log_error(err, AGON_EINTERNAL, log, NULL, "agon_log_finish called twice");

    /* Whatever goes wrong with the last rows, the status still has to
     * reach the file; the first error is reported at the end. */
    int first = write_all_blocks(log, err);
    close_datasets(log);
    h5_detail d;
    herr_t closed = H5Fclose(log->file);
    log->file = H5I_INVALID_HID;
    if (closed < 0) {
        h5_capture(&d);
        log->phase = PHASE_BROKEN;
        log_h5_error(err, log, NULL, "cannot close the file after training", &d);
        return first ? first : AGON_EIO;
    }
    agon__test_kill_point("finishing");
    log->file = reopen_final(log, &d);
    if (log->file < 0) {
        log->phase = PHASE_BROKEN;
        log_h5_error(err, log, NULL, "cannot reopen the file to record the final status", &d);
        return first ? first : AGON_EIO;
    }
    log->phase = PHASE_FINAL;
    free(log->final_status);
    free(log->final_message);
    log->final_status = dup_string(status);
    log->final_message = dup_string(message ? message : "");
    if (!log->final_status || !log->final_message)
        return first ? first : log_nomem(err, log, "/");
    char now[32];
    utc_now_iso(now);
    int rc = write_attr_string(log, "/", "end_time", now, err);
    return first ? first : rc;
}

/* The status attributes, last of all (see agon_log_finish). */
static int write_final_status(agon_log *log, agon_error *err)
{
    int rc = write_attr_string(log, "/", "status", log->final_status, err);
    if (!rc)
        rc = write_attr_string(log, "/", "status_message", log->final_message, err);
    return rc;
}

int agon_log_close(agon_log *log, agon_error *err)
{
    if (!log)
        return 0;
    h5_quiet();
    int rc = 0;
    if (log->phase == PHASE_SETUP || log->phase == PHASE_LIVE)
        rc = write_all_blocks(log, err);
    if (log->phase == PHASE_FINAL && log->final_status)
        rc = write_final_status(log, err);
    close_datasets(log);
    if (log->file >= 0 && H5Fclose(log->file) < 0) {
        h5_detail d;
        h5_capture(&d);
        int rc2 = log_h5_error(err, log, NULL, "cannot close the file", &d);
        if (!rc)
            rc = rc2;
    }
    log->file = H5I_INVALID_HID;
    log_free(log);
    return rc;
}

/* ---- cursors -------------------------------------------------------------------- */

uint64_t agon_log_pending_bytes(const agon_log *log)
{
    return log->pending;
}

int64_t agon_log_table_rows(const agon_log_table *t)
{
    return (int64_t)(t->rows_written + t->buffered);
}

int64_t agon_log_series_rows(const agon_log_series *s)
{
    return (int64_t)s->rows_written;
}

/* ---- fixed blocks ------------------------------------------------------------------ */

static hid_t block_file_type(agon_log_block_type type)
{
    return type == AGON_LOG_BLOCK_U64 ? H5T_STD_U64LE : H5T_IEEE_F32LE;
}

/* Opens the dataset at `path`, which must be 1-D of n values of `type`'s
 * class and size. */
static hid_t open_block(agon_log *log, const char *path, agon_log_block_type type, int64_t n,
                        agon_error *err)
{
    h5_detail d;
    hid_t ds = H5Dopen2(log->file, path, H5P_DEFAULT);
    if (ds < 0) {
        h5_capture(&d);
        log_h5_error(err, log, path, "cannot open the block", &d);
        return H5I_INVALID_HID;
    }
    hid_t ft = H5Dget_type(ds), sp = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    bool ok = ft >= 0 && sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
              H5Sget_simple_extent_dims(sp, dims, NULL) == 1 && dims[0] == (hsize_t)n &&
              H5Tget_class(ft) == (type == AGON_LOG_BLOCK_U64 ? H5T_INTEGER : H5T_FLOAT) &&
              H5Tget_size(ft) == (type == AGON_LOG_BLOCK_U64 ? 8u : 4u);
    if (ft >= 0)
        H5Tclose(ft);
    if (sp >= 0)
        H5Sclose(sp);
    if (!ok) {
        H5Dclose(ds);
        log_error(err, AGON_EDATA, log, path,
                  "holds %llu values of another type than the %lld %s this run needs",
                  (unsigned long long)dims[0], (long long)n,
                  type == AGON_LOG_BLOCK_U64 ? "64-bit words" : "floats");
        return H5I_INVALID_HID;
    }
    return ds;
}

/* A contiguous dataset allocated at creation, so that overwriting it while
 * live changes no metadata. */
static hid_t create_block(agon_log *log, const char *path, agon_log_block_type type, int64_t n,
                          agon_error *err)
{
    h5_detail d;
    hsize_t dims[1] = {(hsize_t)n};
    hid_t ds = H5I_INVALID_HID;
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space >= 0 && dcpl >= 0 && H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0 &&
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0)
        ds = H5Dcreate2(log->file, path, block_file_type(type), space, log->lcpl, dcpl,
                        H5P_DEFAULT);
    if (ds < 0) {
        h5_capture(&d);
        log_h5_error(err, log, path, "cannot create the block", &d);
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return ds;
}

agon_log_block *agon_log_block_declare(agon_log *log, const char *path, agon_log_block_type type,
                                       int64_t n, agon_error *err)
{
    h5_quiet();
    if (check_declarable(log, path, err))
        return NULL;
    if (n < 1) {
        log_error(err, AGON_EINTERNAL, log, path, "a block holds at least one value");
        return NULL;
    }
    agon_log_block **grown = realloc(log->blocks, (log->n_blocks + 1) * sizeof *grown);
    if (!grown) {
        log_nomem(err, log, path);
        return NULL;
    }
    log->blocks = grown;
    agon_log_block *b = calloc(1, sizeof *b);
    if (!b || !(b->path = dup_string(path))) {
        free(b);
        log_nomem(err, log, path);
        return NULL;
    }
    b->log = log;
    b->n = n;
    b->ds = H5I_INVALID_HID;
    b->mem_type = type == AGON_LOG_BLOCK_U64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_FLOAT;
    log->blocks[log->n_blocks++] = b;
    h5_detail d;
    int e = path_exists(log->file, path);
    if (e < 0) {
        h5_capture(&d);
        log_h5_error(err, log, path, "cannot look up the object", &d);
        return NULL;
    }
    b->ds = e ? open_block(log, path, type, n, err) : create_block(log, path, type, n, err);
    return b->ds >= 0 ? b : NULL;
}

int agon_log_block_write(agon_log_block *b, const void *data, agon_error *err)
{
    h5_quiet();
    if (b->ds < 0)
        return log_error(err, AGON_EINTERNAL, b->log, b->path,
                         "block no longer writable (the log was finished)");
    h5_detail d;
    if (H5Dwrite(b->ds, b->mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ||
        H5Dflush(b->ds) < 0) {
        h5_capture(&d);
        return log_h5_error(err, b->log, b->path, "cannot write the block", &d);
    }
    return 0;
}

int agon_log_block_read(agon_log_block *b, void *data, agon_error *err)
{
    h5_quiet();
    h5_detail d;
    if (b->ds < 0 || H5Dread(b->ds, b->mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        h5_capture(&d);
        return log_error(err, AGON_EDATA, b->log, b->path,
                         "cannot read the block (HDF5: %s); the log is damaged", d.text);
    }
    return 0;
}

/* ---- continuing a log ---------------------------------------------------------------- */

/* Reads a scalar string attribute of the root into buf ("" when absent). */
static void read_root_string(hid_t file, const char *name, hid_t str_type, char *buf,
                             size_t cap)
{
    buf[0] = '\0';
    if (H5Aexists(file, name) <= 0)
        return;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    char *v = NULL;
    if (a >= 0 && holds_one(a, true) && H5Aread(a, str_type, &v) >= 0 && v) {
        snprintf(buf, cap, "%s", v);
        H5free_memory(v);
    }
    if (a >= 0)
        H5Aclose(a);
}

static int64_t read_root_int(hid_t file, const char *name)
{
    int64_t v = 0;
    if (H5Aexists(file, name) <= 0)
        return 0;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    if (a < 0 || !holds_one(a, true) || H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
        v = 0;
    if (a >= 0)
        H5Aclose(a);
    return v;
}

/* The plugins of /provenance/plugins, then what the newest record of
 * /provenance/resumes says trained the latest steps. */
typedef struct plugin_walk {
    hid_t str_type;
    agon_log_summary *out;
} plugin_walk;

static herr_t visit_plugin(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    plugin_walk *w = data;
    agon_log_summary *out = w->out;
    size_t i = 0;
    while (i < out->n_plugins && strcmp(out->plugins[i].name, name) != 0)
        i++;
    if (i == out->n_plugins) {
        if (i == AGON_LOG_SUMMARY_PLUGINS || strlen(name) >= sizeof out->plugins[i].name)
            return 0;
        snprintf(out->plugins[i].name, sizeof out->plugins[i].name, "%s", name);
        out->plugins[i].sha256[0] = '\0';
        out->n_plugins++;
    }
    hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
    if (g >= 0) {
        read_root_string(g, "sha256", w->str_type, out->plugins[i].sha256,
                         sizeof out->plugins[i].sha256);
        H5Gclose(g);
    }
    return 0;
}

/* H5Lexists fails (< 0) where a group on the way is missing. */
static void walk_plugins(hid_t file, const char *path, plugin_walk *w)
{
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return;
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0)
        return;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_plugin, w);
    H5Gclose(g);
}

static void summarize_plugins(hid_t file, hid_t str_type, agon_log_summary *out)
{
    plugin_walk w = {.str_type = str_type, .out = out};
    walk_plugins(file, "/provenance/plugins", &w);
    if (H5Lexists(file, "/provenance/resumes", H5P_DEFAULT) <= 0)
        return;
    hid_t g = H5Gopen2(file, "/provenance/resumes", H5P_DEFAULT);
    H5G_info_t gi;
    if (g >= 0 && H5Gget_info(g, &gi) >= 0)
        out->n_resumes = (int64_t)gi.nlinks;
    if (g >= 0)
        H5Gclose(g);
    if (out->n_resumes > 0) {
        /* Records are named 1, 2, ...: the newest is the count. */
        char path[96];
        snprintf(path, sizeof path, "/provenance/resumes/%lld", (long long)out->n_resumes);
        if (H5Lexists(file, path, H5P_DEFAULT) > 0) {
            hid_t r = H5Gopen2(file, path, H5P_DEFAULT);
            if (r >= 0) {
                read_root_string(r, "blas", str_type, out->blas, sizeof out->blas);
                read_root_string(r, "kernels", str_type, out->kernels, sizeof out->kernels);
                H5Gclose(r);
            }
            snprintf(path, sizeof path, "/provenance/resumes/%lld/plugins",
                     (long long)out->n_resumes);
            walk_plugins(file, path, &w);
        }
    }
}

/* Opens `path` read-only, plainly (a finished log) or else through SWMR
 * (a live log, or one whose SWMR writer was killed); d (may be NULL)
 * receives HDF5's reason for the failed plain open. */
static hid_t open_plain_or_swmr(const char *path, h5_detail *d)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file >= 0)
        return file;
    if (d)
        h5_capture(d);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_metadata_read_attempts(fapl, 3) >= 0)
        file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    return file;
}

int64_t agon_log_open_read(const char *path, char *why, size_t why_cap, bool *cleared_mark)
{
    h5_quiet();
    if (cleared_mark)
        *cleared_mark = false;
    h5_detail d = {.text = ""};
    hid_t file = H5I_INVALID_HID;
    for (int attempt = 0; attempt < 50; attempt++) {
        file = open_plain_or_swmr(path, &d);
        if (file >= 0 || !agon_log_wait_unlocked(path, AGON_LOG_LOCK_PATIENCE_MS))
            break;
    }
    if (why)
        snprintf(why, why_cap, "%s", d.text);
    if (file < 0) {
        /* Marked open for writing: its writer finishes within the wait,
         * or it died finishing and the mark is cleared; either way the
         * file opens now. */
        bool cleared = agon_log_recover_finish(path, 3000);
        file = open_plain_or_swmr(path, NULL);
        if (cleared_mark)
            *cleared_mark = cleared && file >= 0;
    }
    return file;
}

int agon_log_file_written_by_agon(const char *path)
{
    h5_quiet();
    if (!agon_log_file_is_hdf5(path))
        return 0;
    hid_t file = agon_log_open_read(path, NULL, 0, NULL);
    if (file < 0)
        return -1;
    int is = H5Aexists(file, "format_version") > 0;
    H5Fclose(file);
    return is;
}

int agon_log_summarize(const char *path, agon_log_summary *out, agon_error *err)
{
    h5_quiet();
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0)
        return agon_error_set(err, AGON_EIO, "%s: cannot open run log: %s", path,
                              strerror(errno));
    if (!S_ISREG(st.st_mode))
        return agon_error_set(err, AGON_EIO,
                              "%s: not a regular file; give the path of a run log (.h5)", path);
    int claim_rc = agon_log_claim_refusal(path, err);
    if (claim_rc != 0)
        return claim_rc;
    hid_t file = agon_log_open_read(path, NULL, 0, NULL);
    if (file < 0)
        return agon_error_set(err, AGON_EDATA,
                              "%s: not a readable HDF5 file (truncated, damaged or another "
                              "format); give the path of an agon run log",
                              path);
    hid_t str_type = H5Tcopy(H5T_C_S1);
    H5Tset_size(str_type, H5T_VARIABLE);
    H5Tset_cset(str_type, H5T_CSET_UTF8);
    int rc = 0;
    if (H5Aexists(file, "format_version") <= 0 || H5Lexists(file, "config", H5P_DEFAULT) <= 0) {
        rc = agon_error_set(err, AGON_EDATA,
                            "%s: an HDF5 file but not an agon run log (no format_version or "
                            "/config); give the path of a log written by agon run",
                            path);
    } else {
        read_root_string(file, "status", str_type, out->status, sizeof out->status);
        read_root_string(file, "blas", str_type, out->blas, sizeof out->blas);
        read_root_string(file, "kernels", str_type, out->kernels, sizeof out->kernels);
        summarize_plugins(file, str_type, out);
        read_root_string(file, "host", str_type, out->host, sizeof out->host);
        out->pid = read_root_int(file, "pid");
        out->steps_done = read_root_int(file, "steps_done");
        hid_t ds = H5Dopen2(file, "config", H5P_DEFAULT);
        char *v = NULL;
        if (ds >= 0 && holds_one(ds, false) &&
            H5Dread(ds, str_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0 && v) {
            out->config = dup_string(v);
            H5free_memory(v);
        }
        if (ds >= 0)
            H5Dclose(ds);
        if (!out->config)
            rc = agon_error_set(err, AGON_EDATA,
                                "%s: /config cannot be read; the log is damaged", path);
    }
    H5Tclose(str_type);
    H5Fclose(file);
    return rc;
}

/* Clears the marks a killed SWMR writer left, as `h5clear -s
 * --increment=0` does: the status flags go, and the end of allocation
 * recorded in the superblock (stale while SWMR writing) moves to the end
 * of the file, which a plain clear would truncate the file to. */
static hid_t open_clearing_marks(agon_log *log, h5_detail *d)
{
    hid_t fapl = H5Pcopy(log->fapl);
    hbool_t clear = 1;
    hid_t f = H5I_INVALID_HID;
    if (fapl >= 0 && H5Pset(fapl, "clear_status_flags", &clear) >= 0)
        f = H5Fopen(log->path, H5F_ACC_RDWR, fapl);
    if (f < 0)
        h5_capture(d);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (f >= 0 && H5Fincrement_filesize(f, 0) < 0) {
        h5_capture(d);
        H5Fclose(f);
        f = H5I_INVALID_HID;
    }
    return f;
}

/* 1 when the file opens for reading (plainly or through SWMR), 0 when
 * both are refused because it is marked open for writing, -1 otherwise. */
static int probe_read(const char *path)
{
    h5_detail d = {.text = ""};
    hid_t f = open_plain_or_swmr(path, &d);
    if (f >= 0)
        return H5Fclose(f), 1;
    return strstr(d.text, "already open for write") ? 0 : -1;
}

bool agon_log_recover_finish(const char *path, int patience_ms)
{
    h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || H5Fis_hdf5(path) <= 0)
        return false;
    for (int waited = 0;; waited += 100) {
        int r = probe_read(path);
        if (r != 0)
            return false;
        if (waited >= patience_ms)
            break;
        usleep(100 * 1000);
    }
    agon_error ignored = {0};
    agon_log *log = log_new(path, &ignored);
    if (!log)
        return false;
    h5_detail d;
    hid_t f = open_clearing_marks(log, &d);
    bool ok = f >= 0 && H5Fclose(f) >= 0;
    log_free(log);
    return ok;
}

agon_log *agon_log_reopen(const char *path, agon_error *err)
{
    h5_quiet();
    if (access(path, R_OK | W_OK) != 0) {
        int e = errno;
        agon_error_set(err, AGON_EIO, "%s: cannot open the log to continue it: %s; %s", path,
                       strerror(e),
                       e == ENOENT ? "give the path of an existing run log"
                                   : "make it readable and writable");
        return NULL;
    }
    agon_log *log = log_new(path, err);
    if (!log)
        return NULL;
    h5_detail d;
    log->file = H5Fopen(path, H5F_ACC_RDWR, log->fapl);
    if (log->file < 0)
        log->file = open_clearing_marks(log, &d);
    if (log->file < 0) {
        log_error(err, AGON_EDATA, log, NULL,
                  "cannot open the log to continue it (HDF5: %s); is it an agon run log, and "
                  "has every program that had it open exited?",
                  d.text);
        log_free(log);
        return NULL;
    }
    if (hold_file(log, err) != 0) {
        H5Fclose(log->file);
        log_free(log);
        return NULL;
    }
    return log;
}

/* Opens the datasets of an existing column group: its "columns" attribute
 * must list exactly `columns`; each column (and step) must hold at least
 * `rows` rows, and is cut to that. */
static int attach_columns(agon_log *log, const char *path, const char *const *columns, size_t n,
                          int64_t rows, hid_t *col_ds, hid_t *step_ds, agon_error *err)
{
    h5_detail d;
    char found[4096] = "";
    hid_t g = H5Oopen(log->file, path, H5P_DEFAULT);
    if (g >= 0) {
        read_root_string(g, "columns", log->str_type, found, sizeof found);
        H5Oclose(g);
    }
    char *want = join_columns(columns, n);
    if (!want)
        return log_nomem(err, log, path);
    bool same = strcmp(found, want) == 0;
    int rc = 0;
    if (!same)
        rc = log_error(err, AGON_EDATA, log, path,
                       "holds columns '%s', this run writes '%s'; the log was written by "
                       "another experiment",
                       found, want);
    free(want);
    for (size_t c = 0; rc == 0 && c <= n; c++) {
        const char *name = c < n ? columns[c] : "step";
        char *p = child_path(path, name);
        if (!p)
            return log_nomem(err, log, path);
        hid_t ds = H5Dopen2(log->file, p, H5P_DEFAULT);
        free(p);
        if (ds < 0) {
            h5_capture(&d);
            return log_h5_error(err, log, path, "cannot open a column", &d);
        }
        if (c < n)
            col_ds[c] = ds;
        else
            *step_ds = ds;
        hid_t sp = H5Dget_space(ds);
        int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        hsize_t dims[AGON_MAX_DIMS + 1];
        if (rank < 1 || rank > AGON_MAX_DIMS + 1 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
            rank = -1;
        if (sp >= 0)
            H5Sclose(sp);
        if (rank < 0)
            return log_error(err, AGON_EDATA, log, path, "column '%s' is damaged", name);
        if (dims[0] < (hsize_t)rows)
            return log_error(err, AGON_EDATA, log, path,
                             "column '%s' holds %llu rows, fewer than the %lld the checkpoint "
                             "recorded; the log was cut short and cannot be continued",
                             name, (unsigned long long)dims[0], (long long)rows);
        dims[0] = (hsize_t)rows;
        if (H5Dset_extent(ds, dims) < 0) {
            h5_capture(&d);
            return log_h5_error(err, log, path, "cannot cut a column back to the checkpoint",
                                &d);
        }
    }
    return rc;
}

agon_log_table *agon_log_table_attach(agon_log *log, const char *path, const char *const *columns,
                                      size_t n_columns, int64_t rows, agon_error *err)
{
    h5_quiet();
    if (check_declarable(log, path, err) || check_columns(log, path, columns, n_columns, err))
        return NULL;
    agon_log_table *t = table_new(log, path, columns, n_columns, err);
    if (!t)
        return NULL;
    if (attach_columns(log, path, columns, n_columns, rows, t->col_ds, &t->step_ds, err) != 0) {
        columns_failed(&t->closed, t->col_ds, n_columns, &t->step_ds);
        return NULL;
    }
    t->rows_written = (hsize_t)rows;
    return t;
}

agon_log_series *agon_log_series_attach(agon_log *log, const char *path,
                                        const char *const *columns, const agon_shape *shapes,
                                        size_t n_columns, int64_t rows, agon_error *err)
{
    h5_quiet();
    if (check_declarable(log, path, err) || check_columns(log, path, columns, n_columns, err) ||
        check_shapes(log, path, columns, shapes, n_columns, err))
        return NULL;
    agon_log_series *s = series_new(log, path, columns, shapes, n_columns, err);
    if (!s)
        return NULL;
    if (attach_columns(log, path, columns, n_columns, rows, s->col_ds, &s->step_ds, err) != 0) {
        columns_failed(&s->closed, s->col_ds, n_columns, &s->step_ds);
        return NULL;
    }
    s->rows_written = (hsize_t)rows;
    return s;
}
