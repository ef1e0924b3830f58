/* `agon export RUN.h5 --png DIR`: the generator samples of a run log
 * (/samples, docs/hdf5-layout.md) drawn as one PNG per logged step.
 * docs/export.md is the user's description; the choices that readers of
 * the pictures rely on (pixel mapping, grid geometry, plot range) are
 * documented there and tested in tests/test_export.c. */
#include "cli.h"
#include "cli_h5.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <png.h>

#include "agon/error.h"

static const char export_usage[] =
    "usage: agon export RUN.h5 [--png DIR] [--csv DIR] [--steps all|last|S1,S2,...] [--cols N]\n"
    "                   [--scale K] [--no-landscape]";

static const char export_help[] =
    "\n"
    "Draws the generator samples logged in /samples as one PNG per logged step,\n"
    "DIR/samples_step<STEP>.png (STEP zero-padded to the digits of the run's\n"
    "planned steps), and prints the path of every file written.\n"
    "  image samples [1, H, W] or [3, H, W]: a grid of tiles, 8-bit grey or RGB,\n"
    "      values mapped from [-1, 1] to 0..255 (clamped; NaN is 0);\n"
    "  2-D samples [2]: a 512x512 scatter plot, the same axis range for every step,\n"
    "      drawn over D's landscape (grey, darker where D is higher) when the log\n"
    "      has a d_landscape metric: its last evaluation at or before the step.\n"
    "\n"
    "  --png DIR      folder for the PNG files, created if missing; PNG files\n"
    "                 of the same names in it are replaced\n"
    "  --csv DIR      also (or instead) write every table as CSV with a step column:\n"
    "                 DIR/scalars.csv and DIR/metrics_<name>.csv for each metric with\n"
    "                 scalar outputs; values with 17 significant digits (exact)\n"
    "  --steps WHICH  all (default), last, or a comma-separated list of logged steps\n"
    "  --cols N       images per grid row (default: the log's grid_cols attribute,\n"
    "                 else the smallest N with N*N >= the number of samples)\n"
    "  --scale K      enlarge every pixel to K x K (1 to 64; default 1)\n"
    "  --no-landscape scatter plots without D's landscape\n"
    "\n"
    "docs/export.md describes the pictures exactly.\n";

enum {
    GRID_PAD = 2,               /* pixels around and between tiles */
    PAD_VALUE = 255,            /* white: tanh images mostly have dark backgrounds */
    PLOT_SIZE = 512,            /* scatter plot side at --scale 1 */
    PLOT_DOT = 1,               /* dot half-width at --scale 1: 3x3 pixels */
    PLOT_BACKGROUND = 255,
    PLOT_AXIS = 200,
    PLOT_INK = 0,
    LANDSCAPE_DEPTH = 96,       /* grey of D = 1 is 255 - 96: dots and axes stay visible */
    MAX_SCALE = 64,
    MAX_SIDE = 65535,
};

/* Caps that keep a hostile or mistaken file from exhausting memory: a
 * snapshot of 2^28 floats (1 GiB) and a picture of 2^27 pixels are far
 * beyond any sample grid anyone looks at. */
#define MAX_ROW_VALUES ((uint64_t)1 << 28)
#define MAX_PIXELS ((uint64_t)1 << 27)

typedef enum steps_mode { STEPS_ALL, STEPS_LAST, STEPS_LIST } steps_mode;

typedef struct export_opts {
    const char *log_path;
    const char *dir;
    const char *csv_dir;
    steps_mode steps;
    int64_t *list;          /* owned; STEPS_LIST only */
    size_t n_list;
    int64_t cols;           /* 0 when --cols was not given */
    int64_t scale;
    bool no_landscape;
} export_opts;

typedef enum sample_kind { KIND_GREY, KIND_RGB, KIND_POINTS } sample_kind;

/* The usable part of /samples: the first `rows` snapshots, which both
 * `step` and `x` have (after a crash they may end at different lengths). */
typedef struct agon__samples {
    const char *path;       /* the log, for messages */
    hid_t group, x;
    int64_t rows;
    int64_t n;              /* samples per snapshot */
    int x_rank;
    hsize_t x_dims[H5S_MAX_RANK];
    int64_t *steps;         /* [rows], owned */
    int64_t planned;        /* root attribute steps_planned, else 0 */
    uint64_t row_values;    /* n * values per sample */
    sample_kind kind;
} samples;

/* ---- messages --------------------------------------------------------- */

static int usage_fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon export: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", export_usage);
    return AGON_EUSAGE;
}

/* "[a, b, c]" for dims[0..rank). */
static void format_shape(const hsize_t *dims, int rank, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

/* The logged steps for a "no snapshot at step S" message: all of them
 * when few, else the first and last three. */
static void format_steps(const int64_t *steps, int64_t rows, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < rows && used < cap; i++) {
        if (rows > 8 && i == 3) {
            used += (size_t)snprintf(buf + used, cap - used, ", ...");
            i = rows - 4;
            continue;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "", steps[i]);
    }
    if (rows > 8 && used < cap)
        snprintf(buf + used, cap - used, " (%" PRId64 " snapshots)", rows);
}

/* ---- command line ------------------------------------------------------ */

/* A decimal integer in [lo, hi], the whole string. */
static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s[0] || s[0] == ' ' || s[0] == '+')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_steps(const char *text, export_opts *o)
{
    if (strcmp(text, "all") == 0) {
        o->steps = STEPS_ALL;
        return 0;
    }
    if (strcmp(text, "last") == 0) {
        o->steps = STEPS_LAST;
        return 0;
    }
    size_t n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    int64_t *list = malloc(n * sizeof *list);
    char *copy = strdup(text);
    if (!list || !copy) {
        free(list);
        free(copy);
        fprintf(stderr, "agon export: out of memory\n");
        return AGON_ENOMEM;
    }
    size_t k = 0;
    char *item = copy;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (!parse_int(item, 0, INT64_MAX, &list[k++])) {
            free(list);
            free(copy);
            return usage_fail("--steps takes all, last or a comma-separated list of steps "
                              "(integers >= 0), not '%s'",
                              text);
        }
        if (!comma)
            break;
        item = comma + 1;
    }
    free(copy);
    free(o->list);
    o->list = list;
    o->n_list = k;
    o->steps = STEPS_LIST;
    return 0;
}

/* Returns 0, 1 when help was printed, or a negative status. */
static int parse_export_args(int argc, char **argv, export_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name = arg, *value = NULL;
        char opt[16];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            printf("%s\n%s", export_usage, export_help);
            return 1;
        }
        if (strcmp(arg, "--no-landscape") == 0) {
            o->no_landscape = true;
            continue;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (o->log_path)
                return usage_fail("give one run log; '%s' is a second one", arg);
            o->log_path = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq && (size_t)(eq - arg) < sizeof opt) {
            memcpy(opt, arg, (size_t)(eq - arg));
            opt[eq - arg] = '\0';
            name = opt;
            value = eq + 1;
        }
        bool takes_value = strcmp(name, "--png") == 0 || strcmp(name, "--csv") == 0 ||
                           strcmp(name, "--steps") == 0 ||
                           strcmp(name, "--cols") == 0 || strcmp(name, "--scale") == 0;
        if (!takes_value)
            return usage_fail("unknown option '%s'", arg);
        if (!value) {
            if (i + 1 >= argc)
                return usage_fail("option '%s' needs a value", arg);
            value = argv[++i];
        }
        if (strcmp(name, "--png") == 0 || strcmp(name, "--csv") == 0) {
            if (!value[0])
                return usage_fail("%s needs a folder name, not an empty string", name);
            if (name[2] == 'p')
                o->dir = value;
            else
                o->csv_dir = value;
        } else if (strcmp(name, "--steps") == 0) {
            int rc = parse_steps(value, o);
            if (rc != 0)
                return rc;
        } else if (strcmp(name, "--cols") == 0) {
            if (!parse_int(value, 1, MAX_SIDE, &o->cols))
                return usage_fail("--cols takes a whole number from 1 to 65535, not '%s'", value);
        } else if (!parse_int(value, 1, MAX_SCALE, &o->scale)) {
            return usage_fail("--scale takes a whole number from 1 to 64, not '%s'", value);
        }
    }
    if (!o->log_path)
        return usage_fail("%s", "no run log given");
    if (!o->dir && !o->csv_dir)
        return usage_fail("%s", "give --png DIR (sample pictures) or --csv DIR (tables), or both");
    return 0;
}

/* ---- reading the log --------------------------------------------------- */

static hid_t open_log(const char *path, int *code)
{
    *code = AGON_EIO;
    if (agon__h5_check_regular(path, "; check the path") != 0)
        return H5I_INVALID_HID;
    if (H5Fis_hdf5(path) <= 0) {
        fprintf(stderr, "%s: not an HDF5 file, so not an agon run log; give the .h5 file "
                "that agon run wrote\n", path);
        *code = AGON_EDATA;
        return H5I_INVALID_HID;
    }
    agon__h5_detail d;
    hid_t file = agon__h5_open_read(path, &d);
    if (file < 0) {
        const char *why = d.text;
        const char *hint = strstr(why, "h5clear")
                               ? "if its writer crashed, repair a copy with "
                                 "`h5clear -s --increment=0 FILE` (never plain `h5clear -s`)"
                               : "check that it is a complete run log";
        fprintf(stderr, "%s: cannot open HDF5 file (HDF5: %s); %s\n", path, why, hint);
        return H5I_INVALID_HID;
    }
    return file;
}

static int damaged(const samples *s, const char *what)
{
    fprintf(stderr, "%s: /samples/%s; this log does not follow the agon layout "
            "(docs/hdf5-layout.md), so there is nothing to export\n", s->path, what);
    return AGON_EDATA;
}

/* Rank and dims of a dataset of the given type classes; false otherwise. */
static bool dataset_shape(hid_t ds, H5T_class_t a, H5T_class_t b, int *rank, hsize_t *dims)
{
    hid_t t = H5Dget_type(ds);
    hid_t sp = H5Dget_space(ds);
    bool ok = false;
    if (t >= 0 && sp >= 0) {
        H5T_class_t c = H5Tget_class(t);
        *rank = H5Sget_simple_extent_ndims(sp);
        ok = (c == a || c == b) && *rank >= 0 && *rank <= H5S_MAX_RANK &&
             H5Sget_simple_extent_dims(sp, dims, NULL) >= 0;
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    return ok;
}

static void samples_close(samples *s)
{
    if (s->x >= 0)
        H5Dclose(s->x);
    if (s->group >= 0)
        H5Gclose(s->group);
    free(s->steps);
    s->x = s->group = H5I_INVALID_HID;
    s->steps = NULL;
}

static int read_steps(samples *s, hid_t step_ds)
{
    s->steps = malloc((size_t)s->rows * sizeof *s->steps);
    if (!s->steps) {
        fprintf(stderr, "%s: out of memory reading /samples/step\n", s->path);
        return AGON_ENOMEM;
    }
    hsize_t start = 0, count = (hsize_t)s->rows;
    if (!agon__h5_read_block(step_ds, 1, &start, &count, H5T_NATIVE_INT64, s->steps)) {
        agon__h5_detail d;
        fprintf(stderr, "%s: /samples/step: cannot read (HDF5: %s); the log may be damaged\n",
                s->path, agon__h5_why(&d));
        return AGON_EIO;
    }
    for (int64_t i = 0; i < s->rows; i++) {
        if (s->steps[i] < 0) {
            char what[96];
            snprintf(what, sizeof what, "step: entry %" PRId64 " is %" PRId64
                     ", but steps are never negative", i, s->steps[i]);
            return damaged(s, what);
        }
    }
    return 0;
}

/* The kind of picture for the per-sample shape of x, and the size of one
 * snapshot, which must fit in memory comfortably. */
static int check_shape(samples *s)
{
    const hsize_t *sd = s->x_dims + 2;
    int sr = s->x_rank - 2;
    char shape[128];
    format_shape(sd, sr, shape, sizeof shape);
    if (sr == 3 && (sd[0] == 1 || sd[0] == 3) && sd[1] > 0 && sd[2] > 0) {
        s->kind = sd[0] == 1 ? KIND_GREY : KIND_RGB;
    } else if (sr == 1 && sd[0] == 2) {
        s->kind = KIND_POINTS;
    } else {
        fprintf(stderr, "%s: /samples/x: samples of shape %s cannot be drawn; export draws "
                "images [1, H, W] or [3, H, W] and 2-D points [2]\n", s->path, shape);
        return AGON_EDATA;
    }
    if (s->x_dims[1] == 0) {
        fprintf(stderr, "%s: /samples/x holds 0 samples per snapshot; run the experiment with "
                "log.n_samples >= 1\n", s->path);
        return AGON_EDATA;
    }
    /* One factor at a time, each at most 2^28, so the product never wraps. */
    uint64_t values = s->x_dims[1];
    for (int i = 0; i < sr && values <= MAX_ROW_VALUES; i++)
        values = sd[i] > MAX_ROW_VALUES ? MAX_ROW_VALUES + 1 : values * sd[i];
    if (values > MAX_ROW_VALUES) {
        fprintf(stderr, "%s: /samples/x: one snapshot of %llu samples of shape %s is too large "
                "to draw (more than 2^28 values)\n", s->path, (unsigned long long)s->x_dims[1],
                shape);
        return AGON_EDATA;
    }
    s->row_values = values;
    s->n = (int64_t)s->x_dims[1];
    return 0;
}

/* The root attribute steps_planned, or 0 when absent or not an integer. */
static int64_t steps_planned(hid_t file)
{
    int64_t v = 0;
    return agon__h5_attr_int64(file, "steps_planned", &v) > 0 && v >= 0 ? v : 0;
}

/* Opens /samples and checks everything export relies on, so that drawing
 * cannot meet a surprise. */
static int samples_open(hid_t file, samples *s)
{
    if (H5Lexists(file, "samples", H5P_DEFAULT) <= 0) {
        fprintf(stderr, "%s: no /samples in this log; run the experiment with "
                "log.samples_every > 0 (the default is 1000) to log generator samples\n",
                s->path);
        return AGON_EDATA;
    }
    if (!agon__h5_is_object(file, "samples", H5O_TYPE_GROUP)) {
        fprintf(stderr, "%s: /samples is not a group; this log does not follow the agon layout "
                "(docs/hdf5-layout.md), so there is nothing to export\n", s->path);
        return AGON_EDATA;
    }
    s->group = H5Gopen2(file, "samples", H5P_DEFAULT);
    if (s->group < 0) {
        agon__h5_detail d;
        fprintf(stderr, "%s: /samples: cannot open (HDF5: %s); the log may be damaged\n",
                s->path, agon__h5_why(&d));
        return AGON_EIO;
    }
    if (!agon__h5_is_object(s->group, "step", H5O_TYPE_DATASET))
        return damaged(s, "step is missing");
    if (!agon__h5_is_object(s->group, "x", H5O_TYPE_DATASET))
        return damaged(s, "x is missing");
    hid_t step_ds = H5Dopen2(s->group, "step", H5P_DEFAULT);
    s->x = H5Dopen2(s->group, "x", H5P_DEFAULT);
    if (step_ds < 0 || s->x < 0) {
        agon__h5_detail d;
        fprintf(stderr, "%s: /samples/%s: cannot open (HDF5: %s); the log may be damaged\n",
                s->path, step_ds < 0 ? "step" : "x", agon__h5_why(&d));
        if (step_ds >= 0)
            H5Dclose(step_ds);
        return AGON_EIO;
    }
    int step_rank = 0;
    hsize_t step_dims[H5S_MAX_RANK];
    int rc = 0;
    if (!dataset_shape(step_ds, H5T_INTEGER, H5T_INTEGER, &step_rank, step_dims) ||
        step_rank != 1)
        rc = damaged(s, "step is not a 1-D integer dataset");
    else if (!dataset_shape(s->x, H5T_FLOAT, H5T_INTEGER, &s->x_rank, s->x_dims) ||
             s->x_rank < 2)
        rc = damaged(s, "x is not a numeric dataset [T, N, sample dims...]");
    if (rc != 0) {
        H5Dclose(step_ds);
        return rc;
    }
    rc = check_shape(s);
    hsize_t rows = step_dims[0] < s->x_dims[0] ? step_dims[0] : s->x_dims[0];
    if (rc == 0 && rows == 0) {
        fprintf(stderr, "%s: /samples holds no snapshot yet; export again once the run has "
                "logged one (at step 0 and every log.samples_every steps)\n", s->path);
        rc = AGON_EDATA;
    } else if (rc == 0 && rows > MAX_ROW_VALUES) {
        rc = damaged(s, "step has more than 2^28 entries");
    }
    if (rc == 0) {
        s->rows = (int64_t)rows;
        rc = read_steps(s, step_ds);
    }
    s->planned = steps_planned(file);
    H5Dclose(step_ds);
    return rc;
}

/* Snapshot `row` of x as float32 into buf[row_values]. */
static int read_row(const samples *s, int64_t row, float *buf)
{
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    start[0] = (hsize_t)row;
    count[0] = 1;
    for (int i = 1; i < s->x_rank; i++)
        count[i] = s->x_dims[i];
    if (!agon__h5_read_block(s->x, s->x_rank, start, count, H5T_NATIVE_FLOAT, buf)) {
        agon__h5_detail d;
        fprintf(stderr, "%s: /samples/x: cannot read the snapshot of step %" PRId64
                " (HDF5: %s); the log may be damaged\n", s->path, s->steps[row],
                agon__h5_why(&d));
        return AGON_EIO;
    }
    return 0;
}

/* The rows to draw, in log order, into *out (owned by the caller). */
static int select_rows(const samples *s, const export_opts *o, int64_t **out, size_t *count)
{
    size_t n = o->steps == STEPS_ALL ? (size_t)s->rows : o->steps == STEPS_LAST ? 1 : o->n_list;
    int64_t *rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows) {
        fprintf(stderr, "agon export: out of memory\n");
        return AGON_ENOMEM;
    }
    if (o->steps == STEPS_ALL) {
        for (size_t i = 0; i < n; i++)
            rows[i] = (int64_t)i;
    } else if (o->steps == STEPS_LAST) {
        rows[0] = s->rows - 1;
    } else {
        for (size_t k = 0; k < n; k++) {
            int64_t found = -1;
            for (int64_t i = 0; i < s->rows; i++)
                if (s->steps[i] == o->list[k])
                    found = i;
            if (found < 0) {
                char logged[256];
                format_steps(s->steps, s->rows, logged, sizeof logged);
                fprintf(stderr, "%s: /samples has no snapshot at step %" PRId64
                        "; logged steps: %s\n", s->path, o->list[k], logged);
                free(rows);
                return AGON_EUSAGE;
            }
            rows[k] = found;
        }
    }
    *out = rows;
    *count = n;
    return 0;
}

/* The log's preferred grid width: 0 when it has none, -1 after an error. */
static int64_t attr_grid_cols(const samples *s)
{
    int64_t v = -1;
    int found = agon__h5_attr_int64(s->group, "grid_cols", &v);
    if (found == 0)
        return 0;
    if (found < 0 || v < 1) {
        fprintf(stderr, "%s: /samples: attribute grid_cols is not a positive integer; pass "
                "--cols N to choose the grid width\n", s->path);
        return -1;
    }
    return v;
}

/* ---- writing PNG files ------------------------------------------------- */

typedef struct picture {
    uint8_t *pix;           /* [height, width, channels] */
    uint32_t width, height;
    int channels;           /* 1 grey, 3 RGB */
} picture;

typedef struct png_failure {
    char text[200];
} png_failure;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_failure *f = png_get_error_ptr(png);
    snprintf(f->text, sizeof f->text, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* A growing buffer that libpng writes a PNG into (agon__samples_png). */
typedef struct png_memory {
    unsigned char *data;
    size_t size, cap;
} png_memory;

static void png_memory_write(png_structp png, png_bytep bytes, png_size_t n)
{
    png_memory *m = png_get_io_ptr(png);
    if (n > m->cap - m->size) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap - m->size < n)
            cap *= 2;
        unsigned char *grown = realloc(m->data, cap);
        if (!grown)
            png_error(png, "out of memory");
        m->data = grown;
        m->cap = cap;
    }
    memcpy(m->data + m->size, bytes, n);
    m->size += n;
}

static void png_memory_flush(png_structp png)
{
    (void)png;
}

/* Encodes the picture into the file `out`, or, when `out` is NULL, into
 * `mem`. */
static bool png_encode(FILE *out, png_memory *mem, const picture *p, png_failure *fail)
{
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, fail, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        snprintf(fail->text, sizeof fail->text, "out of memory");
        png_destroy_write_struct(&png, NULL);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return false;
    }
    if (out)
        png_init_io(png, out);
    else
        png_set_write_fn(png, mem, png_memory_write, png_memory_flush);
    png_set_IHDR(png, info, p->width, p->height, 8,
                 p->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)p->width * (size_t)p->channels;
    for (uint32_t y = 0; y < p->height; y++)
        png_write_row(png, p->pix + (size_t)y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return true;
}

/* Writes `path` through a temporary file in the same folder and a rename:
 * a reader never sees half a picture, and an existing entry of that name
 * (even a symbolic link) is replaced rather than written through.  `tmp`
 * is caller storage of strlen(path) + 16 bytes; `base` is where the file
 * name starts in `path`. */
static int write_png(const char *path, size_t base, char *tmp, const picture *p)
{
    sprintf(tmp, "%.*s.%s.XXXXXX", (int)base, path, path + base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot write: %s; choose a --png folder you can write to\n", path,
                strerror(errno));
        return AGON_EIO;
    }
    /* mkstemp creates the file private (0600); a picture is as readable as
     * any other file the user creates. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    png_failure fail = {"no detail"};
    bool ok = false;
    int saved = 0;
    FILE *out = fdopen(fd, "wb");
    if (!out) {
        saved = errno;
        close(fd);
    } else {
        errno = 0;
        ok = png_encode(out, NULL, p, &fail);
        saved = ok ? 0 : errno; /* a failed fwrite inside libpng leaves errno */
        if (fflush(out) != 0 && ok) {
            ok = false;
            saved = errno;
        }
        if (fclose(out) != 0 && ok) {
            ok = false;
            saved = errno;
        }
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        fprintf(stderr, "%s: cannot write: %s; check the space and permissions of the --png "
                "folder\n", path, saved ? strerror(saved) : fail.text);
        return AGON_EIO;
    }
    printf("%s\n", path);
    return 0;
}

/* mkdir -p: creates every missing folder of `dir`. */
/* Creates `dir` and its parents; `option` ("--png") names it in messages. */
static int make_dir(const char *dir, const char *option)
{
    char *p = strdup(dir);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", dir);
        return AGON_ENOMEM;
    }
    size_t len = strlen(p);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        /* An existing folder may answer EACCES or EROFS instead of EEXIST. */
        struct stat st;
        int e = mkdir(p, 0777) == 0 ? 0 : errno;
        if (e != 0 && e != EEXIST && !(stat(p, &st) == 0 && S_ISDIR(st.st_mode))) {
            fprintf(stderr, "%s: cannot create the %s folder: %s; choose another folder\n", p,
                    option, strerror(e));
            free(p);
            return AGON_EIO;
        }
        p[i] = saved;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: exists and is not a folder; give %s a folder (it is created if "
                "missing)\n", dir, option);
        return AGON_EIO;
    }
    return 0;
}

/* ---- drawing ------------------------------------------------------------ */

/* [-1, 1] to 0..255, rounding half up, so 0 becomes 128; values outside
 * are clamped, and NaN, which has no brightness, is black. */
static uint8_t to_byte(float v)
{
    if (!(v > -1.0f))
        return 0;
    if (v >= 1.0f)
        return 255;
    return (uint8_t)floor(((double)v + 1.0) * 127.5 + 0.5);
}

typedef struct grid {
    int64_t cols, rows, scale;
    int64_t c, h, w;        /* per sample */
} grid;

static void draw_grid(const grid *g, const float *x, int64_t n, picture *p)
{
    memset(p->pix, PAD_VALUE, (size_t)p->width * p->height * (size_t)p->channels);
    int64_t plane = g->h * g->w, tile_w = g->w * g->scale, tile_h = g->h * g->scale;
    for (int64_t i = 0; i < n; i++) {
        const float *img = x + i * g->c * plane;
        int64_t x0 = GRID_PAD + (i % g->cols) * (tile_w + GRID_PAD);
        int64_t y0 = GRID_PAD + (i / g->cols) * (tile_h + GRID_PAD);
        for (int64_t py = 0; py < tile_h; py++) {
            const int64_t sy = py / g->scale;
            uint8_t *row = p->pix + ((size_t)(y0 + py) * p->width + (size_t)x0) * (size_t)g->c;
            for (int64_t px = 0; px < tile_w; px++) {
                const int64_t src = sy * g->w + px / g->scale;
                for (int64_t ch = 0; ch < g->c; ch++)
                    row[px * g->c + ch] = to_byte(img[ch * plane + src]);
            }
        }
    }
}

/* Side lengths in pixels; false when the picture would be absurdly large. */
static bool picture_size(uint64_t w, uint64_t h, picture *p)
{
    if (w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS)
        return false;
    p->width = (uint32_t)w;
    p->height = (uint32_t)h;
    return true;
}

typedef struct plot_range {
    double x0, y0, span;    /* lower-left corner and side, equal on both axes */
} plot_range;

/* Both axes on one scale (a ring stays round), centred on the points of
 * every snapshot with 5% of the larger extent as margin on each side, so
 * that all frames of a run share the same axes. */
static int scan_range(const samples *s, float *buf, plot_range *r)
{
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (int64_t t = 0; t < s->rows; t++) {
        int rc = read_row(s, t, buf);
        if (rc != 0)
            return rc;
        for (int64_t i = 0; i < s->n; i++) {
            const float *pt = buf + 2 * i;
            if (!isfinite(pt[0]) || !isfinite(pt[1]))
                continue;
            for (int k = 0; k < 2; k++) {
                lo[k] = fmin(lo[k], pt[k]);
                hi[k] = fmax(hi[k], pt[k]);
            }
        }
    }
    if (!(lo[0] <= hi[0])) {
        r->x0 = r->y0 = -1.0;
        r->span = 2.0;
        return 0;
    }
    double extent = fmax(hi[0] - lo[0], hi[1] - lo[1]);
    if (extent <= 0.0)
        extent = 1.0;
    r->span = extent * 1.1;
    r->x0 = (lo[0] + hi[0]) / 2.0 - r->span / 2.0;
    r->y0 = (lo[1] + hi[1]) / 2.0 - r->span / 2.0;
    return 0;
}

/* Pixel column (or row from the bottom) of coordinate v. */
static int64_t plot_pixel(double v, double origin, double span, int64_t size)
{
    double f = floor((v - origin) / span * (double)size);
    return f < 0 ? 0 : f >= (double)size ? size - 1 : (int64_t)f;
}

static void fill_rect(picture *p, int64_t x0, int64_t y0, int64_t x1, int64_t y1, uint8_t v)
{
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 >= p->width ? p->width - 1 : x1;
    y1 = y1 >= p->height ? p->height - 1 : y1;
    for (int64_t y = y0; y <= y1; y++)
        memset(p->pix + (size_t)y * p->width + (size_t)x0, v, (size_t)(x1 - x0 + 1));
}

/* D on a grid over a box, from a d_landscape metric (docs/metrics.md):
 * d[i0 * per_axis + i1] at cell centre (lo0 + (i0 + 0.5) * (hi0 - lo0) /
 * per_axis, likewise for the second coordinate). */
typedef struct landscape {
    hid_t d;                /* [T, per_axis, per_axis], or H5I_INVALID_HID: none */
    int64_t rows;           /* snapshots every dataset has */
    int64_t *steps;         /* [rows] */
    int64_t per_axis;
    double lo[2], hi[2];
    float *row;             /* [per_axis^2]: the snapshot being drawn */
} landscape;

static void landscape_close(landscape *l)
{
    if (l->d >= 0)
        H5Dclose(l->d);
    free(l->steps);
    free(l->row);
    l->d = H5I_INVALID_HID;
    l->steps = NULL;
    l->row = NULL;
}

static bool attr_number(hid_t obj, const char *name, double *out)
{
    if (H5Aexists(obj, name) <= 0)
        return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return false;
    hid_t t = H5Aget_type(a);
    hid_t sp = H5Aget_space(a);
    bool ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_FLOAT &&
              H5Sget_simple_extent_npoints(sp) == 1 &&
              H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0 && isfinite(*out);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return ok;
}

/* The first metric group (in name order) written by d_landscape on 2-D
 * data with a well-formed grid; false (and l->d invalid) when there is
 * none.  A malformed one is skipped, not an error: the landscape is an
 * extra, the samples are the point. */
static herr_t find_landscape(hid_t metrics, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    landscape *l = data;
    if (!agon__h5_is_object(metrics, name, H5O_TYPE_GROUP))
        return 0;
    hid_t g = H5Gopen2(metrics, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    char *plugin = NULL;
    agon__h5_attr a;
    if (agon__h5_attr_open(g, "plugin", &a) == 1) {
        if (H5Tget_class(a.type) == H5T_STRING && H5Tis_variable_str(a.type) > 0 &&
            H5Sget_simple_extent_npoints(a.space) == 1 && H5Aread(a.attr, a.type, &plugin) < 0)
            plugin = NULL;
        agon__h5_attr_close(&a);
    }
    double per_axis = 0;
    bool ok = plugin && strcmp(plugin, "d_landscape") == 0 &&
              attr_number(g, "grid_per_axis", &per_axis) && per_axis >= 1 && per_axis <= 4096 &&
              attr_number(g, "lo_0", &l->lo[0]) && attr_number(g, "hi_0", &l->hi[0]) &&
              attr_number(g, "lo_1", &l->lo[1]) && attr_number(g, "hi_1", &l->hi[1]) &&
              l->lo[0] < l->hi[0] && l->lo[1] < l->hi[1] &&
              agon__h5_is_object(g, "tensors/d", H5O_TYPE_DATASET) &&
              agon__h5_is_object(g, "tensors/step", H5O_TYPE_DATASET);
    H5free_memory(plugin);
    if (!ok) {
        H5Gclose(g);
        return 0;
    }
    l->per_axis = (int64_t)per_axis;
    hid_t d = H5Dopen2(g, "tensors/d", H5P_DEFAULT);
    hid_t st = H5Dopen2(g, "tensors/step", H5P_DEFAULT);
    hsize_t dims[3] = {0}, sdim = 0;
    bool shaped = false;
    if (d >= 0 && st >= 0) {
        hid_t sp = H5Dget_space(d), ssp = H5Dget_space(st);
        shaped = sp >= 0 && ssp >= 0 && H5Sget_simple_extent_ndims(sp) == 3 &&
                 H5Sget_simple_extent_ndims(ssp) == 1 &&
                 H5Sget_simple_extent_dims(sp, dims, NULL) == 3 &&
                 H5Sget_simple_extent_dims(ssp, &sdim, NULL) == 1 &&
                 (int64_t)dims[1] == l->per_axis && (int64_t)dims[2] == l->per_axis;
        if (sp >= 0)
            H5Sclose(sp);
        if (ssp >= 0)
            H5Sclose(ssp);
    }
    l->rows = shaped ? (int64_t)(dims[0] < sdim ? dims[0] : sdim) : 0;
    if (l->rows > 0) {
        l->steps = malloc((size_t)l->rows * sizeof *l->steps);
        l->row = malloc((size_t)(l->per_axis * l->per_axis) * sizeof *l->row);
        hsize_t start = 0, count = (hsize_t)l->rows;
        if (l->steps && l->row &&
            agon__h5_read_block(st, 1, &start, &count, H5T_NATIVE_INT64, l->steps)) {
            l->d = d;
            d = H5I_INVALID_HID;
        } else {
            free(l->steps);
            free(l->row);
            l->steps = NULL;
            l->row = NULL;
        }
    }
    if (d >= 0)
        H5Dclose(d);
    if (st >= 0)
        H5Dclose(st);
    H5Gclose(g);
    return l->d >= 0 ? 1 : 0;   /* 1 stops the iteration */
}

static void landscape_open(hid_t file, landscape *l)
{
    l->d = H5I_INVALID_HID;
    if (H5Lexists(file, "metrics", H5P_DEFAULT) <= 0)
        return;
    hid_t m = H5Gopen2(file, "metrics", H5P_DEFAULT);
    if (m < 0)
        return;
    H5Literate(m, H5_INDEX_NAME, H5_ITER_INC, NULL, find_landscape, l);
    H5Gclose(m);
}

/* Reads the landscape of the last evaluation at or before `step` into
 * l->row; false when there is none (the plot then has a white ground). */
static bool landscape_at(landscape *l, int64_t step)
{
    int64_t pick = -1;
    for (int64_t i = 0; l->d >= 0 && i < l->rows; i++) {
        if (l->steps[i] <= step)
            pick = i;
    }
    if (pick < 0)
        return false;
    hsize_t start[3] = {(hsize_t)pick, 0, 0};
    hsize_t count[3] = {1, (hsize_t)l->per_axis, (hsize_t)l->per_axis};
    return agon__h5_read_block(l->d, 3, start, count, H5T_NATIVE_FLOAT, l->row);
}

/* Shades every pixel whose centre lies in the landscape's box by D there:
 * grey 255 - D * LANDSCAPE_DEPTH, D clamped to [0, 1]. */
static void draw_landscape(const plot_range *r, const landscape *l, picture *p)
{
    const int64_t size = p->width, n = l->per_axis;
    for (int64_t row = 0; row < size; row++) {
        double y = r->y0 + ((double)(size - 1 - row) + 0.5) / (double)size * r->span;
        double f1 = (y - l->lo[1]) / (l->hi[1] - l->lo[1]) * (double)n;
        if (!(f1 >= 0.0 && f1 < (double)n))
            continue;
        int64_t i1 = (int64_t)f1;
        for (int64_t col = 0; col < size; col++) {
            double x = r->x0 + ((double)col + 0.5) / (double)size * r->span;
            double f0 = (x - l->lo[0]) / (l->hi[0] - l->lo[0]) * (double)n;
            if (!(f0 >= 0.0 && f0 < (double)n))
                continue;
            float v = l->row[(int64_t)f0 * n + i1];
            v = isnan(v) ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            p->pix[(size_t)row * (size_t)size + (size_t)col] =
                (uint8_t)(PLOT_BACKGROUND - (int)lrintf(v * (float)LANDSCAPE_DEPTH));
        }
    }
}

static void draw_points(const plot_range *r, int64_t scale, const float *pts, int64_t n,
                        const landscape *ground, picture *p)
{
    const int64_t size = p->width, dot = PLOT_DOT * scale;
    memset(p->pix, PLOT_BACKGROUND, (size_t)size * (size_t)size);
    if (ground)
        draw_landscape(r, ground, p);
    if (r->x0 <= 0.0 && 0.0 < r->x0 + r->span) {
        int64_t c = plot_pixel(0.0, r->x0, r->span, size);
        fill_rect(p, c, 0, c, size - 1, PLOT_AXIS);
    }
    if (r->y0 <= 0.0 && 0.0 < r->y0 + r->span) {
        int64_t row = size - 1 - plot_pixel(0.0, r->y0, r->span, size);
        fill_rect(p, 0, row, size - 1, row, PLOT_AXIS);
    }
    for (int64_t i = 0; i < n; i++) {
        const float *pt = pts + 2 * i;
        if (!isfinite(pt[0]) || !isfinite(pt[1]))
            continue;
        int64_t c = plot_pixel(pt[0], r->x0, r->span, size);
        int64_t row = size - 1 - plot_pixel(pt[1], r->y0, r->span, size);
        fill_rect(p, c - dot, row - dot, c + dot, row + dot, PLOT_INK);
    }
}

/* ---- the command ---------------------------------------------------------- */

/* The geometry of the pictures of `s` (the grid for images) at `cols`
 * tiles per row (0: the log's grid_cols, else the smallest square) and
 * `scale`: 0, or an agon status after one line on stderr. */
static int plan_picture(const samples *s, int64_t cols, int64_t scale, grid *g, picture *pic)
{
    pic->channels = s->kind == KIND_RGB ? 3 : 1;
    g->scale = scale;
    bool sized;
    if (s->kind == KIND_POINTS) {
        sized = picture_size((uint64_t)PLOT_SIZE * (uint64_t)scale,
                             (uint64_t)PLOT_SIZE * (uint64_t)scale, pic);
    } else {
        g->c = (int64_t)s->x_dims[2];
        g->h = (int64_t)s->x_dims[3];
        g->w = (int64_t)s->x_dims[4];
        g->cols = cols;
        if (g->cols == 0) {
            g->cols = attr_grid_cols(s);
            if (g->cols < 0)
                return AGON_EDATA;
        }
        if (g->cols == 0)
            while (g->cols * g->cols < s->n)
                g->cols++;
        if (g->cols > s->n)
            g->cols = s->n;
        g->rows = (s->n + g->cols - 1) / g->cols;
        /* cols, rows, H and W are at most 2^28 (the snapshot cap) and the
         * tile sides at most 65535 once checked: no product wraps. */
        uint64_t tw = (uint64_t)g->w * (uint64_t)g->scale, th = (uint64_t)g->h * (uint64_t)g->scale;
        sized = tw <= MAX_SIDE && th <= MAX_SIDE &&
                picture_size((uint64_t)g->cols * tw + (uint64_t)(g->cols + 1) * GRID_PAD,
                             (uint64_t)g->rows * th + (uint64_t)(g->rows + 1) * GRID_PAD, pic);
    }
    if (!sized) {
        fprintf(stderr, "%s: the picture of one snapshot would exceed 65535 pixels a side or "
                "2^27 pixels; lower --scale or choose --cols\n", s->path);
        return AGON_EDATA;
    }
    return 0;
}

static int export_all(const samples *s, const export_opts *o, const int64_t *rows, size_t n_rows,
                      landscape *ground)
{
    picture pic = {0};
    grid g = {0};
    if (plan_picture(s, o->cols, o->scale, &g, &pic) != 0)
        return AGON_EDATA;
    int rc = make_dir(o->dir, "--png");
    if (rc != 0)
        return rc;

    float *buf = malloc((size_t)s->row_values * sizeof *buf);
    pic.pix = malloc((size_t)pic.width * pic.height * (size_t)pic.channels);
    /* DIR without trailing slashes, then "samples_step" and the step padded
     * to the digits of the last step (at most 19): the planned one when the
     * log says, so that the names stay the same while a run goes on. */
    size_t dir_len = strlen(o->dir);
    while (dir_len > 1 && o->dir[dir_len - 1] == '/')
        dir_len--;
    const char *sep = dir_len == 1 && o->dir[0] == '/' ? "" : "/";
    size_t base = dir_len + strlen(sep);
    char *path = malloc(base + 64);
    char *tmp = malloc(base + 64 + 16);
    if (!buf || !pic.pix || !path || !tmp) {
        fprintf(stderr, "%s: out of memory for a picture of %" PRIu32 "x%" PRIu32 " pixels\n",
                s->path, pic.width, pic.height);
        rc = AGON_ENOMEM;
        goto out;
    }
    int64_t largest = s->planned;
    for (int64_t i = 0; i < s->rows; i++)
        largest = s->steps[i] > largest ? s->steps[i] : largest;
    int digits = snprintf(NULL, 0, "%" PRId64, largest);

    plot_range range = {0};
    if (s->kind == KIND_POINTS && (rc = scan_range(s, buf, &range)) != 0)
        goto out;
    for (size_t k = 0; k < n_rows && rc == 0; k++) {
        if ((rc = read_row(s, rows[k], buf)) != 0)
            break;
        if (s->kind == KIND_POINTS)
            draw_points(&range, o->scale, buf, s->n,
                        landscape_at(ground, s->steps[rows[k]]) ? ground : NULL, &pic);
        else
            draw_grid(&g, buf, s->n, &pic);
        snprintf(path, base + 64, "%.*s%ssamples_step%0*" PRId64 ".png", (int)dir_len, o->dir,
                 sep, digits, s->steps[rows[k]]);
        rc = write_png(path, base, tmp, &pic);
    }
out:
    free(tmp);
    free(path);
    free(pic.pix);
    free(buf);
    return rc;
}

int agon_cli_export(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    export_opts o = {.steps = STEPS_ALL, .scale = 1};
    int rc = parse_export_args(argc, argv, &o);
    if (rc != 0) {
        free(o.list);
        return rc > 0 ? 0 : rc;
    }
    hid_t file = open_log(o.log_path, &rc);
    if (file < 0) {
        free(o.list);
        return rc;
    }
    if (o.csv_dir) {
        rc = make_dir(o.csv_dir, "--csv");
        if (rc == 0)
            rc = agon__export_csv(file, o.log_path, o.csv_dir);
        if (rc != 0 || !o.dir) {
            H5Fclose(file);
            free(o.list);
            return rc;
        }
    }
    samples s = {.path = o.log_path, .group = H5I_INVALID_HID, .x = H5I_INVALID_HID};
    int64_t *rows = NULL;
    size_t n_rows = 0;
    rc = samples_open(file, &s);
    if (rc == 0)
        rc = select_rows(&s, &o, &rows, &n_rows);
    landscape ground = {.d = H5I_INVALID_HID};
    if (rc == 0 && s.kind == KIND_POINTS && !o.no_landscape)
        landscape_open(file, &ground);
    if (rc == 0)
        rc = export_all(&s, &o, rows, n_rows, &ground);
    landscape_close(&ground);
    free(rows);
    samples_close(&s);
    H5Fclose(file);
    free(o.list);
    return rc;
}

/* ---- snapshots for other commands (cli_h5.h) ------------------------------ */

int agon__samples_open(hid_t file, const char *path, agon__samples **out)
{
    *out = NULL;
    samples *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "%s: out of memory reading /samples\n", path);
        return AGON_ENOMEM;
    }
    s->path = path;
    s->group = s->x = H5I_INVALID_HID;
    int rc = samples_open(file, s);
    if (rc != 0) {
        agon__samples_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void agon__samples_close(agon__samples *s)
{
    if (!s)
        return;
    samples_close(s);
    free(s);
}

int64_t agon__samples_rows(const agon__samples *s)
{
    return s->rows;
}

const int64_t *agon__samples_steps(const agon__samples *s)
{
    return s->steps;
}

int64_t agon__samples_count(const agon__samples *s)
{
    return s->n;
}

uint64_t agon__samples_values(const agon__samples *s)
{
    return s->row_values;
}

bool agon__samples_are_points(const agon__samples *s)
{
    return s->kind == KIND_POINTS;
}

int agon__samples_read(const agon__samples *s, int64_t row, float *buf)
{
    return read_row(s, row, buf);
}

int agon__samples_png(const agon__samples *s, int64_t row, unsigned char **png, size_t *size)
{
    assert(s->kind != KIND_POINTS);
    *png = NULL;
    *size = 0;
    picture pic = {0};
    grid g = {0};
    int rc = plan_picture(s, 0, 1, &g, &pic);
    if (rc != 0)
        return rc;
    float *buf = malloc((size_t)s->row_values * sizeof *buf);
    pic.pix = malloc((size_t)pic.width * pic.height * (size_t)pic.channels);
    png_memory mem = {0};
    if (!buf || !pic.pix) {
        fprintf(stderr, "%s: out of memory for a picture of %" PRIu32 "x%" PRIu32 " pixels\n",
                s->path, pic.width, pic.height);
        rc = AGON_ENOMEM;
        goto out;
    }
    if ((rc = read_row(s, row, buf)) != 0)
        goto out;
    draw_grid(&g, buf, s->n, &pic);
    png_failure fail = {"no detail"};
    if (!png_encode(NULL, &mem, &pic, &fail)) {
        fprintf(stderr, "%s: cannot encode the snapshot of step %" PRId64 " as PNG: %s\n",
                s->path, s->steps[row], fail.text);
        free(mem.data);
        rc = AGON_ENOMEM;
        goto out;
    }
    *png = mem.data;
    *size = mem.size;
out:
    free(pic.pix);
    free(buf);
    return rc;
}
