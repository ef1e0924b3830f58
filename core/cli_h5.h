/* core/cli_h5.h — reading run logs in the `agon` program (show, export):
 * opening a log that may still be written, and small HDF5 reading helpers.
 * Private to the program; never installed.  Callers turn HDF5's automatic
 * error printing off first (H5Eset_auto2): nothing here prints unless it
 * says so. */
#ifndef AGON_CLI_H5_H
#define AGON_CLI_H5_H

#include <stdbool.h>
#include <stdint.h>

#include <hdf5.h>

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

/* `agon export --csv DIR` (cli_export_csv.c): DIR/scalars.csv and
 * DIR/metrics_<name>.csv for every table of the open log `file`; prints
 * each path written.  DIR must exist.  Returns 0 or an agon status after
 * printing one line. */
int agon__export_csv(hid_t file, const char *log_path, const char *dir);

#endif /* AGON_CLI_H5_H */
