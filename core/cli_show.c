/* `agon show RUN.h5`: a few lines summarising a run log (layout in
 * docs/hdf5-layout.md).  The file is opened for SWMR reading so that a run
 * still being written, or one whose writer was killed, can be shown. */
#include "cli.h"
#include "cli_h5.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5.h>

#include "agon/error.h"
#include "agon/log.h"

static const char show_usage[] =
    "usage: agon show [--no-config] RUN.h5... | agon show --follow [--wait SECONDS] RUN.h5";

/* ---- reading attributes and datasets, tolerant of what h5py writes ---- */

/* A scalar numeric attribute converted to int64 (a float one, as h5py may
 * write it, only when it is a whole number in int64's range); false when
 * absent, an array or anything else. */
static bool attr_int(hid_t obj, const char *name, int64_t *v)
{
    agon__h5_attr a;
    if (agon__h5_attr_open(obj, name, &a) <= 0)
        return false;
    bool ok = false;
    if (H5Sget_simple_extent_npoints(a.space) == 1) {
        H5T_class_t cls = H5Tget_class(a.type);
        double x;
        if (cls == H5T_INTEGER) {
            ok = H5Aread(a.attr, H5T_NATIVE_INT64, v) >= 0;
        } else if (cls == H5T_FLOAT && H5Aread(a.attr, H5T_NATIVE_DOUBLE, &x) >= 0 &&
                   x >= -9.2e18 && x <= 9.2e18 && x == floor(x)) {
            *v = (int64_t)x;
            ok = true;
        }
    }
    agon__h5_attr_close(&a);
    return ok;
}


/* ---- column groups (tables) --------------------------------------------- */

typedef struct scalar_label {
    const char *column;
    const char *label;
    const char *format;
} scalar_label;

/* The training scalars in the order a reader scans them; other columns
 * follow with their own names. */
static const scalar_label scalar_labels[] = {
    {"loss_d", "loss_d", "%.4f"},     {"loss_g", "loss_g", "%.4f"},
    {"d_real", "D(x)", "%.3f"},       {"d_fake", "D(G(z))", "%.3f"},
    {"grad_norm_g", "|grad G|", "%.3g"}, {"grad_norm_d", "|grad D|", "%.3g"},
};

/* Prints "label value", two spaces apart from the previous pair. */
static void print_value(const char **sep, const char *label, const char *format, double v)
{
    char num[64];
    snprintf(num, sizeof num, format, v);
    printf("%s%s %s", *sep, label, num);
    *sep = "  ";
}

/* Last row of a table, or -1 when it has none.  Prints nothing. */
static int64_t table_last_row(hid_t group, const agon__h5_columns *cols, int64_t *step)
{
    int64_t rows = agon__h5_table_rows(group, cols);
    if (rows <= 0 || !agon__h5_read_range(group, "step", rows - 1, 1, H5T_NATIVE_INT64, step))
        return -1;
    return rows - 1;
}

static double column_value(hid_t group, const char *name, int64_t row)
{
    double v = NAN;
    agon__h5_read_range(group, name, row, 1, H5T_NATIVE_DOUBLE, &v);
    return v;
}

/* Row `row` of /scalars: "<prefix>step S: loss_d ... D(x) ...", the
 * training scalars first in the order a reader scans them. */
static void print_scalar_row(hid_t g, const agon__h5_columns *cols, int64_t row, int64_t step,
                             const char *prefix)
{
    printf("%sstep %lld: ", prefix, (long long)step);
    const char *sep = "";
    bool *done = calloc(cols->count ? cols->count : 1, sizeof *done);
    for (size_t k = 0; k < sizeof scalar_labels / sizeof scalar_labels[0]; k++) {
        for (size_t i = 0; i < cols->count; i++) {
            if (strcmp(cols->names[i], scalar_labels[k].column) != 0)
                continue;
            print_value(&sep, scalar_labels[k].label, scalar_labels[k].format,
                        column_value(g, cols->names[i], row));
            if (done)
                done[i] = true;
        }
    }
    for (size_t i = 0; i < cols->count; i++) {
        if (!done || !done[i])
            print_value(&sep, cols->names[i], "%.4g", column_value(g, cols->names[i], row));
    }
    free(done);
    printf("\n");
}

/* "last step S: loss_d ...".  Returns the last step, or -1 without rows. */
static int64_t show_scalars(hid_t file)
{
    if (H5Lexists(file, "scalars", H5P_DEFAULT) <= 0)
        return -1;
    hid_t g = H5Gopen2(file, "scalars", H5P_DEFAULT);
    if (g < 0)
        return -1;
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    int64_t step = -1;
    int64_t row = table_last_row(g, &cols, &step);
    if (row < 0) {
        printf("no steps logged yet\n");
        step = -1;
    } else {
        print_scalar_row(g, &cols, row, step, "last ");
    }
    agon__h5_columns_fini(&cols);
    H5Gclose(g);
    return step;
}

/* A metric's tensor outputs (its series "tensors"), as
 * "d [64, 64], samples [10, 2]" into buf; *step receives the step of the
 * last snapshot.  False when the metric has no tensor snapshot yet. */
static bool tensor_summary(hid_t metric, int64_t *step, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!agon__h5_is_object(metric, "tensors", H5O_TYPE_GROUP))
        return false;
    hid_t g = H5Gopen2(metric, "tensors", H5P_DEFAULT);
    if (g < 0)
        return false;
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    /* As for tables, only snapshots every column has count (a killed
     * writer may leave the datasets at different lengths). */
    int64_t rows = agon__h5_dataset_length(g, "step");
    enum { MAX_RANK = 8 };
    hsize_t(*dims)[MAX_RANK] = calloc(cols.count + 1, sizeof *dims);
    int *ranks = calloc(cols.count + 1, sizeof *ranks);
    for (size_t i = 0; dims && ranks && i < cols.count; i++) {
        ranks[i] = -1;
        hid_t ds = H5Dopen2(g, cols.names[i], H5P_DEFAULT);
        if (ds >= 0) {
            hid_t sp = H5Dget_space(ds);
            if (sp >= 0) {
                ranks[i] = H5Sget_simple_extent_ndims(sp);
                if (ranks[i] > 0 && ranks[i] <= MAX_RANK)
                    H5Sget_simple_extent_dims(sp, dims[i], NULL);
                else
                    ranks[i] = -1;
                H5Sclose(sp);
            }
            H5Dclose(ds);
        }
        if (ranks[i] < 1 || (int64_t)dims[i][0] < rows)
            rows = ranks[i] < 1 ? 0 : (int64_t)dims[i][0];
    }
    bool any = dims && ranks && cols.count > 0 && rows > 0 &&
               agon__h5_read_range(g, "step", rows - 1, 1, H5T_NATIVE_INT64, step);
    size_t used = 0;
    for (size_t i = 0; any && i < cols.count && used < cap; i++) {
        int rank = ranks[i];
        const hsize_t *dim = dims[i];
        used += (size_t)snprintf(buf + used, cap - used, "%s%s [", i ? ", " : "", cols.names[i]);
        /* dims[0] counts the snapshots; the rest is one snapshot's shape. */
        for (int d = 1; d < rank && used < cap; d++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%llu", d > 1 ? ", " : "",
                                     (unsigned long long)dim[d]);
        if (used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "]");
    }
    free(dims);
    free(ranks);
    agon__h5_columns_fini(&cols);
    H5Gclose(g);
    return any;
}

static herr_t show_metric(hid_t metrics, const char *name, const H5L_info_t *info, void *data)
{
    if (!agon__h5_is_object(metrics, name, H5O_TYPE_GROUP))
        return 0;
    hid_t g = H5Gopen2(metrics, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    int64_t step = -1, tensor_step = -1;
    int64_t row = table_last_row(g, &cols, &step);
    char tensors[512];
    bool has_tensors = tensor_summary(g, &tensor_step, tensors, sizeof tensors);
    if (row < 0 && !has_tensors) {
        printf("metric %s: no values yet\n", name);
    } else {
        printf("metric %s @ step %lld: ", name, (long long)(row >= 0 ? step : tensor_step));
        const char *sep = "";
        for (size_t i = 0; row >= 0 && i < cols.count; i++)
            print_value(&sep, cols.names[i], "%.4g", column_value(g, cols.names[i], row));
        if (has_tensors)
            printf("%stensors %s", sep, tensors);
        printf("\n");
    }
    agon__h5_columns_fini(&cols);
    H5Gclose(g);
    return 0;
}

static void show_metrics(hid_t file)
{
    if (H5Lexists(file, "metrics", H5P_DEFAULT) <= 0)
        return;
    hid_t g = H5Gopen2(file, "metrics", H5P_DEFAULT);
    if (g < 0)
        return;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, show_metric, NULL);
    H5Gclose(g);
}

void agon__cli_print_indented(const char *text)
{
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        if (len > 0)
            printf("  %.*s\n", len, line);
        else
            printf("\n");
        line += len + (nl ? 1 : 0);
    }
}

static void show_config(hid_t file)
{
    char *text = agon__h5_read_string(file, "config");
    if (!text)
        return;
    printf("config:\n");
    agon__cli_print_indented(text);
    free(text);
}

/* Seconds since the epoch of "YYYY-MM-DDTHH:MM:SSZ"; false if malformed. */
static bool parse_utc(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char z = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z) != 7 || z != 'Z')
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

static void format_duration(long long s, char *buf, size_t cap)
{
    if (s < 60)
        snprintf(buf, cap, "%lld s", s);
    else
        snprintf(buf, cap, "%lld s (%lld:%02lld:%02lld)", s, s / 3600, s / 60 % 60, s % 60);
}

/* A log whose status is still "running": its writer is alive, or it was
 * killed.  The log names the writer's host and process id; on the same
 * host a process that no longer exists settles it (a reused pid can make
 * a dead run look alive, never the other way round). */
static void show_running(const char *path, hid_t file, int64_t done)
{
    char *host = agon__h5_attr_string(file, "host");
    int64_t pid = 0;
    char here[256] = "";
    gethostname(here, sizeof here - 1);
    if (host && attr_int(file, "pid", &pid) && pid > 0 && pid <= INT32_MAX) {
        if (strcmp(host, here) != 0) {
            printf("%s: running on %s (pid %lld) or interrupted there, %lld steps so far\n",
                   path, host, (long long)pid, (long long)done);
        } else if (kill((pid_t)pid, 0) == 0 || errno == EPERM) {
            printf("%s: running (pid %lld), %lld steps so far\n", path, (long long)pid,
                   (long long)done);
        } else {
            printf("%s: interrupted at step %lld (its writer, pid %lld, is gone); the log "
                   "holds every step up to its last flush\n",
                   path, (long long)done, (long long)pid);
        }
    } else {
        printf("%s: running (or interrupted), %lld steps so far\n", path, (long long)done);
    }
    free(host);
}

/* The status line: "<file>: completed, 10000/10000 steps, 42 s". */
static void show_status(const char *path, hid_t file, int64_t last_step)
{
    char *status = agon__h5_attr_string(file, "status");
    char *message = agon__h5_attr_string(file, "status_message");
    char *start = agon__h5_attr_string(file, "start_time");
    char *end = agon__h5_attr_string(file, "end_time");
    int64_t done = 0, planned = 0;
    /* Steps count completed training steps, so the last logged step is a
     * lower bound; steps_done is final only once the run has ended (a
     * live log cannot update attributes). */
    bool have_done = attr_int(file, "steps_done", &done);
    bool have_planned = attr_int(file, "steps_planned", &planned);
    if (!have_done || done < last_step)
        done = last_step > 0 ? last_step : 0;

    if (!status || strcmp(status, "running") == 0) {
        show_running(path, file, done);
    } else {
        printf("%s: %s", path, status);
        if (message && message[0] && strcmp(status, "completed") != 0)
            printf(" (%s)", message);
        printf(", %lld", (long long)done);
        if (have_planned)
            printf("/%lld", (long long)planned);
        printf(" steps");
        time_t t0, t1;
        if (parse_utc(start, &t0) && parse_utc(end, &t1) && t1 >= t0) {
            char dur[64];
            format_duration((long long)(t1 - t0), dur, sizeof dur);
            printf(", %s", dur);
        }
        printf("\n");
    }
    free(status);
    free(message);
    free(start);
    free(end);
}

/* "run ID  seed S  agon V (rev R)  started T", leaving out what is absent. */
static void show_identity(hid_t file)
{
    char *run_id = agon__h5_attr_string(file, "run_id");
    char *version = agon__h5_attr_string(file, "agon_version");
    char *rev = agon__h5_attr_string(file, "git_revision");
    char *start = agon__h5_attr_string(file, "start_time");
    int64_t seed = 0;
    bool have_seed = attr_int(file, "seed", &seed);
    const char *sep = "";
    if (run_id) {
        printf("%srun %s", sep, run_id);
        sep = "  ";
    }
    if (have_seed) {
        printf("%sseed %lld", sep, (long long)seed);
        sep = "  ";
    }
    if (version) {
        printf("%sagon %s", sep, version);
        if (rev)
            printf(" (rev %s)", rev);
        sep = "  ";
    }
    if (start) {
        printf("%sstarted %s", sep, start);
        sep = "  ";
    }
    if (sep[0])
        printf("\n");
    free(run_id);
    free(version);
    free(rev);
    free(start);
}

/* "kernels portable, OpenBLAS 0.3.21 ... (core Haswell), on AMD EPYC", then
 * one line per resume: where it went on, with what, and what --force let
 * change.  Logs from before kernels were recorded print only blas. */
static void show_machine(hid_t file)
{
    char *kernels = agon__h5_attr_string(file, "kernels");
    char *blas = agon__h5_attr_string(file, "blas");
    char *cpu = agon__h5_attr_string(file, "cpu");
    if (blas)
        printf("kernels %s, %s%s%s\n", kernels ? kernels : "unrecorded", blas,
               cpu ? ", on " : "", cpu ? cpu : "");
    free(kernels);
    free(blas);
    free(cpu);
    /* H5Lexists fails (< 0) where a group on the way is missing. */
    for (int k = 1;; k++) {
        char path[64];
        snprintf(path, sizeof path, "/provenance/resumes/%d", k);
        if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
            break;
        hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
        if (g < 0)
            break;
        int64_t from = 0, forced = 0;
        attr_int(g, "from_step", &from);
        attr_int(g, "forced", &forced);
        char *when = agon__h5_attr_string(g, "time");
        char *host = agon__h5_attr_string(g, "host");
        char *rk = agon__h5_attr_string(g, "kernels");
        char *rblas = agon__h5_attr_string(g, "blas");
        char *changes = agon__h5_attr_string(g, "changes");
        printf("resumed from step %lld at %s on %s, kernels %s, %s", (long long)from,
               when ? when : "?", host ? host : "?", rk ? rk : "?", rblas ? rblas : "?");
        if (changes && changes[0])
            printf("; with --force: %s", changes);
        else if (forced)
            printf("; with --force, nothing changed");
        printf("\n");
        free(when);
        free(host);
        free(rk);
        free(rblas);
        free(changes);
        H5Gclose(g);
    }
}

static hid_t open_log(const char *path, int *code)
{
    if ((*code = agon__h5_check_regular(path, "")) != 0)
        return H5I_INVALID_HID;
    agon_error claim = {0};
    if ((*code = agon_log_claim_refusal(path, &claim)) != 0) {
        fprintf(stderr, "%s\n", claim.message);
        return H5I_INVALID_HID;
    }
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 == 0) {
        fprintf(stderr, "%s: not an HDF5 file, so not an agon run log; give the .h5 file that "
                        "agon run wrote\n",
                path);
        *code = AGON_EDATA;
        return H5I_INVALID_HID;
    }
    agon__h5_detail d;
    hid_t file = agon__h5_open_read(path, &d);
    if (file < 0) {
        /* The plain open's reason is the telling one (a writer that still
         * holds the file, or crashed holding it). */
        const char *hint = strstr(d.text, "h5clear")
                               ? "; if its writer crashed, repair a copy with "
                                 "`h5clear -s --increment=0 FILE` (never plain `h5clear -s`)"
                               : "; check that it is a complete run log";
        fprintf(stderr, "%s: cannot open HDF5 file (HDF5: %s)%s\n", path, d.text, hint);
        *code = AGON_EIO;
        return H5I_INVALID_HID;
    }
    if (H5Aexists(file, "format_version") <= 0) {
        fprintf(stderr, "%s: not an agon run log (no format_version attribute); give the .h5 "
                        "file that agon run wrote\n",
                path);
        H5Fclose(file);
        *code = AGON_EDATA;
        return H5I_INVALID_HID;
    }
    return file;
}

/* The step of the last row of /scalars, or -1. */
static int64_t last_scalar_step(hid_t file)
{
    int64_t last_step = -1;
    if (H5Lexists(file, "scalars", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(file, "scalars", H5P_DEFAULT);
        if (g >= 0) {
            agon__h5_columns cols = {0};
            agon__h5_table_columns(g, &cols);
            table_last_row(g, &cols, &last_step);
            agon__h5_columns_fini(&cols);
            H5Gclose(g);
        }
    }
    return last_step;
}

static int show_one(const char *path, bool with_config)
{
    int code = 0;
    if (agon_log_path_state_of(path) == AGON_LOG_PATH_SETTING_UP) {
        printf("%s: setting up: a run has claimed this path and has not started training "
               "yet\n",
               path);
        return 0;
    }
    hid_t file = open_log(path, &code);
    if (file < 0)
        return code;
    int64_t version = 0;
    if (attr_int(file, "format_version", &version) && version > AGON_LOG_FORMAT_VERSION)
        fprintf(stderr, "%s: written with log format %lld, newer than this agon's %d; "
                "showing what this version understands\n", path, (long long)version,
                AGON_LOG_FORMAT_VERSION);
    /* The status line needs the last step, which is printed after it. */
    show_status(path, file, last_scalar_step(file));
    show_identity(file);
    show_machine(file);
    show_scalars(file);
    show_metrics(file);
    if (with_config)
        show_config(file);
    fflush(stdout);
    H5Fclose(file);
    return 0;
}

/* ---- following a run ------------------------------------------------------ */

enum { FOLLOW_MAX_TABLES = 65, FOLLOW_POLL_US = 500000 };
/* How long --follow waits for a log that is not there yet, by default. */
enum { FOLLOW_WAIT_SECONDS = 60, FOLLOW_WAIT_POLL_MS = 50 };

/* How many rows of each table (/scalars first, then the metrics by name)
 * have been printed. */
typedef struct follow_state {
    hid_t file;
    int64_t printed[FOLLOW_MAX_TABLES];
    size_t n_metric;
    bool quiet;         /* the first pass: remember where the tables end */
} follow_state;

/* Prints the rows of the table `g` that appeared since the last pass; the
 * first pass prints only the last row ("last step ..."), as tail -f does.
 * A SWMR reader sees rows appended since it opened the file only after it
 * refreshes the datasets, which stay open while they are read. */
static void follow_table(hid_t g, const char *metric, int64_t *printed, bool first)
{
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    hid_t ids[FOLLOW_MAX_TABLES + 1];
    size_t n_ids = 0;
    for (size_t i = 0; i <= cols.count && n_ids < sizeof ids / sizeof ids[0]; i++) {
        hid_t ds = H5Dopen2(g, i < cols.count ? cols.names[i] : "step", H5P_DEFAULT);
        if (ds >= 0) {
            H5Drefresh(ds);
            ids[n_ids++] = ds;
        }
    }
    int64_t rows = agon__h5_table_rows(g, &cols);
    int64_t from = first ? (rows > 0 ? rows - 1 : 0) : *printed;
    for (int64_t r = from; r < rows; r++) {
        int64_t step = -1;
        if (!agon__h5_read_range(g, "step", r, 1, H5T_NATIVE_INT64, &step))
            break;
        if (!metric) {
            print_scalar_row(g, &cols, r, step, first ? "last " : "");
        } else {
            printf("metric %s @ step %lld: ", metric, (long long)step);
            const char *sep = "";
            for (size_t i = 0; i < cols.count; i++)
                print_value(&sep, cols.names[i], "%.4g", column_value(g, cols.names[i], r));
            printf("\n");
        }
    }
    if (rows > *printed)
        *printed = rows;
    for (size_t i = 0; i < n_ids; i++)
        H5Dclose(ids[i]);
    agon__h5_columns_fini(&cols);
}

static herr_t follow_metric(hid_t metrics, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    follow_state *st = data;
    if (st->n_metric + 1 >= FOLLOW_MAX_TABLES || !agon__h5_is_object(metrics, name, H5O_TYPE_GROUP))
        return 0;
    hid_t g = H5Gopen2(metrics, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    if (agon__h5_is_object(g, "step", H5O_TYPE_DATASET))
        follow_table(g, name, &st->printed[1 + st->n_metric++], st->quiet);
    H5Gclose(g);
    return 0;
}

static void follow_pass(follow_state *st)
{
    if (agon__h5_is_object(st->file, "scalars", H5O_TYPE_GROUP)) {
        hid_t g = H5Gopen2(st->file, "scalars", H5P_DEFAULT);
        if (g >= 0) {
            follow_table(g, NULL, &st->printed[0], st->quiet);
            H5Gclose(g);
        }
    }
    st->n_metric = 0;
    if (agon__h5_is_object(st->file, "metrics", H5O_TYPE_GROUP)) {
        hid_t m = H5Gopen2(st->file, "metrics", H5P_DEFAULT);
        if (m >= 0) {
            H5Literate(m, H5_INDEX_NAME, H5_ITER_INC, NULL, follow_metric, st);
            H5Gclose(m);
        }
    }
    fflush(stdout);
}

/* True while the process that writes the log may still be running: its
 * status is "running" and, on this host, its pid exists.  A writer on
 * another host cannot be checked, so it is followed until Ctrl-C. */
static bool writer_alive(hid_t file)
{
    char *status = agon__h5_attr_string(file, "status");
    bool running = !status || strcmp(status, "running") == 0;
    free(status);
    if (!running)
        return false;
    char *host = agon__h5_attr_string(file, "host");
    int64_t pid = 0;
    char here[256] = "";
    gethostname(here, sizeof here - 1);
    bool alive = true;
    if (host && strcmp(host, here) == 0 && attr_int(file, "pid", &pid) && pid > 0 &&
        pid <= INT32_MAX)
        alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
    free(host);
    return alive;
}

/* `agon show --follow RUN.h5`: the status, then the scalars and metric
 * values of a run as its writer flushes them, until the writer ends. */
static int follow(const char *path, double wait_seconds)
{
    int code = 0;
    /* A run started a moment ago may not have created its log yet, or be
     * setting it up: wait for it, within a bound. */
    agon_log_path_state state = agon_log_path_state_of(path);
    if (state == AGON_LOG_PATH_FREE || state == AGON_LOG_PATH_SETTING_UP) {
        printf("%s: waiting for the run's log to appear (at most %g s)\n", path,
               wait_seconds);
        fflush(stdout);
        for (double waited_ms = 0; state == AGON_LOG_PATH_FREE || state == AGON_LOG_PATH_SETTING_UP;
             waited_ms += FOLLOW_WAIT_POLL_MS) {
            if (waited_ms >= wait_seconds * 1000) {
                fprintf(stderr,
                        "%s: no run log appeared here within %g s; check the path, start the "
                        "run first, or wait longer with --wait SECONDS\n",
                        path, wait_seconds);
                return AGON_EIO;
            }
            usleep(FOLLOW_WAIT_POLL_MS * 1000);
            state = agon_log_path_state_of(path);
        }
    }
    follow_state st = {.file = open_log(path, &code), .quiet = true};
    if (st.file < 0)
        return code;
    show_status(path, st.file, last_scalar_step(st.file));
    show_identity(st.file);
    follow_pass(&st);
    st.quiet = false;
    while (writer_alive(st.file)) {
        usleep(FOLLOW_POLL_US);
        follow_pass(&st);
    }
    /* The rows flushed last, then the final status, which a SWMR reader
     * only sees in a file opened again. */
    follow_pass(&st);
    H5Fclose(st.file);
    hid_t file = open_log(path, &code);
    if (file < 0)
        return code;
    show_status(path, file, last_scalar_step(file));
    H5Fclose(file);
    fflush(stdout);
    return 0;
}

int agon_cli_show(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    bool with_config = true, follow_run = false, wait_given = false;
    double wait_seconds = FOLLOW_WAIT_SECONDS;
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) {
        fprintf(stderr, "agon show: out of memory\n");
        return AGON_ENOMEM;
    }
    int n_files = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-config") == 0) {
            with_config = false;
        } else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
            follow_run = true;
        } else if (strcmp(a, "--wait") == 0) {
            char *end = NULL;
            wait_seconds = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
            if (i + 1 >= argc || end == argv[i + 1] || *end != '\0' || !(wait_seconds >= 0) ||
                wait_seconds > 1e6) {
                fprintf(stderr, "agon show: --wait needs a number of seconds from 0 to "
                                "1000000; %s\n",
                        show_usage);
                rc = AGON_EUSAGE;
            }
            i++;
            wait_given = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("%s\n", show_usage);
            free(files);
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "agon show: unknown option '%s'; %s\n", a, show_usage);
            rc = AGON_EUSAGE;
        } else {
            files[n_files++] = a;
        }
    }
    if (rc == 0 && n_files == 0) {
        fprintf(stderr, "agon show: no run log given; %s\n", show_usage);
        rc = AGON_EUSAGE;
    } else if (rc == 0 && follow_run && n_files > 1) {
        fprintf(stderr, "agon show: --follow follows one run log; %s\n", show_usage);
        rc = AGON_EUSAGE;
    } else if (rc == 0 && wait_given && !follow_run) {
        fprintf(stderr, "agon show: --wait only applies to --follow; %s\n", show_usage);
        rc = AGON_EUSAGE;
    }
    if (rc == 0 && follow_run) {
        rc = follow(files[0], wait_seconds);
    } else if (rc == 0) {
        for (int i = 0; i < n_files; i++) {
            if (i > 0)
                printf("\n");
            int one = show_one(files[i], with_config);
            if (one && !rc)
                rc = one;
        }
    }
    free(files);
    return rc;
}
