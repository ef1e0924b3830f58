/* core/cli_h5.h — reading run logs in the `agon` program (show, export,
 * compare, report): opening a log that may still be written, small HDF5
 * reading helpers, config keys and the statistics over runs.
 * Private to the program; never installed.  Callers turn HDF5's automatic
 * error printing off first (H5Eset_auto2): nothing here prints unless it
 * says so. */
#ifndef AGON_CLI_H5_H
#define AGON_CLI_H5_H

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

#include "agon/config.h"

/* Caller storage for one HDF5 error description. */
typedef struct agon__h5_detail {
    char text[256];
} agon__h5_detail;

/* Copies the innermost description on HDF5's error stack, the one that
 * names the cause ("truncated file: eof = 600, ..."), into d->text, or
 * "no detail from HDF5" when the stack is empty, and returns d->text.
 * Call it right after the failing call: every HDF5 API call clears the
 * stack. */
const char *agon__h5_why(agon__h5_detail *d);

/* Checks that `path` names a regular file.  Otherwise prints to stderr
 * "PATH: cannot open run log: STRERROR" followed by `stat_hint` (may be
 * "") when stat fails, or "PATH: not a regular file; give the path of a
 * run log (.h5)", and returns AGON_EIO.  Returns 0 when it is one. */
int agon__h5_check_regular(const char *path, const char *stat_hint);

/* Opens the HDF5 file at `path` read-only: plainly, which works for a
 * finished log, else for SWMR reading, which a log still being written
 * (or left by a killed writer) needs.  The SWMR attempt allows few
 * metadata retries: a SWMR reader retries a bad checksum, which on a
 * damaged file never succeeds.  When the plain open fails and `plain_why`
 * is not NULL, it receives that failure's description, the telling one
 * ("file is already open for write (may use <h5clear file> ...)"); the
 * SWMR attempt's calls clear the stack again.  A log whose writer died
 * while finishing it is recovered first (agon_log_recover_finish, after
 * waiting up to 3 s), with one line on stderr saying so.  Returns the
 * file, or H5I_INVALID_HID when both fail. */
hid_t agon__h5_open_read(const char *path, agon__h5_detail *plain_why);

/* True when `loc` has a link `name` to an object of type `type`. */
bool agon__h5_is_object(hid_t loc, const char *name, H5O_type_t type);

/* Reads the block of dataset `ds` (of rank `rank`) that starts at
 * start[0..rank) and spans count[0..rank) elements into `out`, as a flat
 * array of the product of `count` elements of `mem_type`.  False when HDF5
 * fails (out is then undefined). */
bool agon__h5_read_block(hid_t ds, int rank, const hsize_t *start, const hsize_t *count,
                         hid_t mem_type, void *out);

/* An open attribute with its file type and dataspace. */
typedef struct agon__h5_attr {
    hid_t attr, type, space;
} agon__h5_attr;

/* Opens attribute `name` of `obj` into *a: 1 when it and its type and
 * space are open (close them with agon__h5_attr_close), 0 when there is no
 * such attribute, -1 when HDF5 fails (nothing is left open then). */
int agon__h5_attr_open(hid_t obj, const char *name, agon__h5_attr *a);
void agon__h5_attr_close(agon__h5_attr *a);

/* A scalar integer attribute `name` of `obj` as int64: 1 when read into
 * *v, 0 when there is no such attribute, -1 when it is not a single
 * integer or cannot be read. */
int agon__h5_attr_int64(hid_t obj, const char *name, int64_t *v);

/* A scalar string attribute (variable or fixed length) as a malloc'ed
 * string, or NULL when absent or not a string. */
char *agon__h5_attr_string(hid_t obj, const char *name);

/* The scalar variable-length string dataset `name` of `loc` (a log's
 * /config) as a malloc'ed string, or NULL when absent or not one. */
char *agon__h5_read_string(hid_t loc, const char *name);

/* Elements [first, first + count) of the 1-D dataset `name` of `group`,
 * converted to `mem_type`, into `out`.  False when HDF5 fails. */
bool agon__h5_read_range(hid_t group, const char *name, int64_t first, int64_t count,
                         hid_t mem_type, void *out);

/* Length along dim 0 of the 1-D dataset `name` of `group`, or -1. */
int64_t agon__h5_dataset_length(hid_t group, const char *name);

/* The column names of a table group (docs/hdf5-layout.md, "Tables"). */
typedef struct agon__h5_columns {
    char **names;
    size_t count;
} agon__h5_columns;

/* The columns of a table: its "columns" attribute in writer order, or, for
 * files written by other tools, every dataset but "step" by name. */
void agon__h5_table_columns(hid_t group, agon__h5_columns *l);
void agon__h5_columns_fini(agon__h5_columns *l);

/* Rows every dataset of the table has: after a crash the datasets of a
 * table may end at different lengths, and only the common prefix counts. */
int64_t agon__h5_table_rows(hid_t group, const agon__h5_columns *l);

/* ---- run logs as inputs (compare, report) ------------------------------ */

/* Every *.h5 file of `dir` (not hidden, not recursive) as malloc'ed paths
 * "DIR/NAME" in name order: 0 with *paths (free with agon__paths_free) and
 * *n set, AGON_EIO after printing "DIR: cannot read the folder", or
 * AGON_ENOMEM. */
int agon__h5_list_dir(const char *dir, char ***paths, size_t *n);
void agon__paths_free(char **paths, size_t n);

/* Opens the run log at `path` for reading and parses its /config: 0 with
 * *file (close it) and *cfg (destroy it) set; 1 when it is not a readable
 * run log, with *why a static reason for a "PATH: skipped: WHY" line ("not
 * an HDF5 file", "cannot be opened", "no readable /config, so not an agon
 * run log").  Prints nothing itself except agon__h5_open_read's recovery
 * line. */
int agon__h5_open_run(const char *path, hid_t *file, agon_config **cfg, const char **why);

/* ---- config keys (compare --by, report) -------------------------------- */

/* The value at the dotted path `key` of a config ("loss.plugin",
 * "metrics[0].every", "generator.hidden") into out[cap]: a scalar's text
 * ("" for null), a list of scalars in flow style ("[128, 128]"), or
 * "(none)" when the config has no such key or it holds a map or a list of
 * maps. */
void agon__config_value(const agon_config *cfg, const char *key, char *out, size_t cap);

/* The leaves of a config: every key whose value agon__config_value prints
 * (scalars, nulls, lists of scalars, empty maps), in document order, with
 * that text.  Lists of maps are walked into ("metrics[0].every"). */
typedef struct agon__config_leaf {
    char *key, *value;
} agon__config_leaf;

typedef struct agon__config_leaves {
    agon__config_leaf *items;
    size_t count;
} agon__config_leaves;

/* 0, or AGON_ENOMEM (l is then empty).  Free with agon__config_leaves_fini. */
int agon__config_leaves_of(const agon_config *cfg, agon__config_leaves *l);
void agon__config_leaves_fini(agon__config_leaves *l);
/* The value of `key`, or NULL when the config has no such leaf. */
const char *agon__config_leaves_get(const agon__config_leaves *l, const char *key);

/* ---- statistics over runs (compare, report) ---------------------------- */

/* Two-sided 95% quantile of Student's t with df degrees of freedom (a
 * table to 30, then interpolated; 1.96 from 120 on); NaN for df 0. */
double agon__t975(size_t df);

/* n, mean, sample std (n - 1), half-width of the 95% CI of the mean
 * (t975(n - 1) * std / sqrt(n)), min and max of v[0..n), summed in order;
 * std and ci95 are NaN for n = 1 (docs/compare.md). */
typedef struct agon__run_stats {
    size_t n;
    double mean, std, ci95, min, max;
} agon__run_stats;

void agon__run_stats_of(const double *v, size_t n, agon__run_stats *out);

/* ---- /samples snapshots (cli_export.c; export --png and report) -------- */

typedef struct agon__samples agon__samples;

/* Opens /samples of the open log `file` and checks it as `agon export
 * --png` does (`path` names the log in messages): 0 with *out set (close
 * with agon__samples_close), or an agon status after one line on stderr. */
int agon__samples_open(hid_t file, const char *path, agon__samples **out);
void agon__samples_close(agon__samples *s);   /* NULL is a no-op */

/* Snapshots usable in every dataset, their logged steps (borrowed), the
 * samples per snapshot, the values per snapshot, and whether the samples
 * are 2-D points ([N, 2]) rather than images ([N, C, H, W]). */
int64_t agon__samples_rows(const agon__samples *s);
const int64_t *agon__samples_steps(const agon__samples *s);
int64_t agon__samples_count(const agon__samples *s);
uint64_t agon__samples_values(const agon__samples *s);
bool agon__samples_are_points(const agon__samples *s);

/* Snapshot `row` as float32 into buf[agon__samples_values(s)]: 0 or an
 * agon status after one line on stderr. */
int agon__samples_read(const agon__samples *s, int64_t row, float *buf);

/* Snapshot `row` of image samples (not agon__samples_are_points) drawn
 * as `agon export --png --scale 1` draws it, an image grid with the
 * default columns, and encoded as PNG in memory: 0 with *png (malloc'ed,
 * the caller frees it) and *size set, or an agon status after one line on
 * stderr.  2-D points are left to the caller, which draws them as it
 * likes (report: SVG). */
int agon__samples_png(const agon__samples *s, int64_t row, unsigned char **png, size_t *size);

/* `agon export --csv DIR` (cli_export_csv.c): DIR/scalars.csv and
 * DIR/metrics_<name>.csv for every table of the open log `file`; prints
 * each path written.  DIR must exist.  Returns 0 or an agon status after
 * printing one line. */
int agon__export_csv(hid_t file, const char *log_path, const char *dir);

#endif /* AGON_CLI_H5_H */
