/* `agon export RUN.h5 --csv DIR`: every table of a run log (/scalars and
 * each /metrics/<name>) as a CSV file with a step column, for pandas,
 * spreadsheets and R (docs/export.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agon/error.h"
#include "cli_h5.h"

/* The table of `group` (named `what` in messages) as CSV text in `out`:
 * the header "step,<columns>", then one line per row every dataset has.
 * Doubles are printed with 17 significant digits, so that reading the file
 * back gives the logged values exactly. */
static int write_table(hid_t group, const char *log_path, const char *what, FILE *out)
{
    agon__h5_columns cols = {0};
    agon__h5_table_columns(group, &cols);
    int64_t rows = agon__h5_table_rows(group, &cols);
    int rc = 0;
    int64_t *steps = malloc((size_t)(rows > 0 ? rows : 1) * sizeof *steps);
    double *values = malloc((size_t)(rows > 0 ? rows : 1) * (cols.count + 1) * sizeof *values);
    if (!steps || !values) {
        fprintf(stderr, "%s: %s: out of memory for %lld rows\n", log_path, what,
                (long long)rows);
        rc = AGON_ENOMEM;
        goto out;
    }
    hsize_t start = 0, count = (hsize_t)rows;
    for (size_t c = 0; c <= cols.count && rows > 0; c++) {
        const char *name = c == 0 ? "step" : cols.names[c - 1];
        hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
        bool ok = ds >= 0 &&
                  agon__h5_read_block(ds, 1, &start, &count,
                                      c == 0 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE,
                                      c == 0 ? (void *)steps : (void *)(values + (c - 1) * rows));
        if (ds >= 0)
            H5Dclose(ds);
        if (!ok) {
            agon__h5_detail d;
            fprintf(stderr, "%s: %s/%s cannot be read (HDF5: %s); the log is damaged\n",
                    log_path, what, name, agon__h5_why(&d));
            rc = AGON_EDATA;
            goto out;
        }
    }
    fputs("step", out);
    for (size_t c = 0; c < cols.count; c++)
        fprintf(out, ",%s", cols.names[c]);
    fputc('\n', out);
    for (int64_t r = 0; r < rows; r++) {
        fprintf(out, "%" PRId64, steps[r]);
        for (size_t c = 0; c < cols.count; c++)
            fprintf(out, ",%.17g", values[c * (size_t)rows + (size_t)r]);
        fputc('\n', out);
    }
out:
    free(steps);
    free(values);
    agon__h5_columns_fini(&cols);
    return rc;
}

/* Writes DIR/<file> from the table `group` through a temporary file, so
 * that a CSV on disk is always whole. */
static int export_table(hid_t group, const char *log_path, const char *what, const char *dir,
                        const char *file)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", dir, file, (long)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fprintf(stderr, "%s: cannot write: %s; choose a --csv folder you can write to\n", path,
                strerror(errno));
        return AGON_EIO;
    }
    int rc = write_table(group, log_path, what, out);
    bool written = !ferror(out);
    int e = errno;
    if (fclose(out) != 0 && written) {
        written = false;
        e = errno;
    }
    if (rc == 0 && !written) {
        fprintf(stderr, "%s: cannot write: %s; check the space and permissions of the --csv "
                "folder\n", path, strerror(e));
        rc = AGON_EIO;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        fprintf(stderr, "%s: cannot write: %s; check the permissions of the --csv folder\n",
                path, strerror(errno));
        rc = AGON_EIO;
    }
    if (rc != 0)
        unlink(tmp);
    else
        printf("%s\n", path);
    return rc;
}

typedef struct metric_walk {
    const char *log_path;
    const char *dir;
    int rc;
} metric_walk;

static herr_t export_metric(hid_t metrics, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    metric_walk *w = data;
    if (!agon__h5_is_object(metrics, name, H5O_TYPE_GROUP))
        return 0;
    hid_t g = H5Gopen2(metrics, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    /* A metric with tensor outputs only has no table. */
    if (agon__h5_is_object(g, "step", H5O_TYPE_DATASET)) {
        char what[512], file[512];
        snprintf(what, sizeof what, "/metrics/%s", name);
        snprintf(file, sizeof file, "metrics_%s.csv", name);
        int rc = export_table(g, w->log_path, what, w->dir, file);
        if (rc != 0 && w->rc == 0)
            w->rc = rc;
    }
    H5Gclose(g);
    return 0;
}

int agon__export_csv(hid_t file, const char *log_path, const char *dir)
{
    if (!agon__h5_is_object(file, "scalars", H5O_TYPE_GROUP)) {
        fprintf(stderr, "%s: no /scalars table; this is not an agon run log (docs/hdf5-layout.md), "
                "so there is nothing to export\n", log_path);
        return AGON_EDATA;
    }
    hid_t g = H5Gopen2(file, "scalars", H5P_DEFAULT);
    int rc = g >= 0 ? export_table(g, log_path, "/scalars", dir, "scalars.csv") : AGON_EDATA;
    if (g >= 0)
        H5Gclose(g);
    metric_walk w = {log_path, dir, 0};
    if (agon__h5_is_object(file, "metrics", H5O_TYPE_GROUP)) {
        hid_t m = H5Gopen2(file, "metrics", H5P_DEFAULT);
        if (m >= 0) {
            H5Literate(m, H5_INDEX_NAME, H5_ITER_INC, NULL, export_metric, &w);
            H5Gclose(m);
        }
    }
    return rc != 0 ? rc : w.rc;
}
