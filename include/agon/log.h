/* agon/log.h — the run log: one HDF5 file per run.
 *
 * docs/hdf5-layout.md is the contract for what lands where; this header is
 * the writer's API.  The file is readable by h5py, h5dump and HDFView
 * without agon.
 *
 * A log goes through three phases:
 *   SETUP   after agon_log_create: write attributes, strings and whole
 *           datasets; declare tables and tensor series (this creates their
 *           datasets).  Nothing can be created after SETUP while live.
 *   LIVE    after agon_log_start: the file is in SWMR-write mode (HDF5
 *           "libver latest"); only appends to declared tables/series and
 *           flushes.  A reader may open it with SWMR-read meanwhile, and a
 *           writer killed in this phase leaves every row up to its last
 *           agon_log_flush readable (h5py swmr=True).
 *   FINAL   after agon_log_finish: buffered rows are written, the file is
 *           closed and reopened without SWMR; attributes and datasets
 *           may be written again (final parameters, summaries) until
 *           agon_log_close, which sets the root attributes status and
 *           status_message last (end_time is set at once).
 *
 * Paths are absolute HDF5 paths ("/scalars", "/metrics/mode_coverage");
 * missing intermediate groups are created.  Strings are stored as
 * variable-length UTF-8.
 */
#ifndef AGON_LOG_H
#define AGON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"
#include "agon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the file layout written into the root attribute
 * "format_version".  Bumped when docs/hdf5-layout.md changes incompatibly. */
#define AGON_LOG_FORMAT_VERSION 1

typedef struct agon_log agon_log;
typedef struct agon_log_table agon_log_table;     /* borrowed from its log */
typedef struct agon_log_series agon_log_series;   /* borrowed from its log */

/* Creates (truncates) the file at `path`.  The parent directory must
 * exist and be writable: errors name the path and say so (AGON_EIO).
 * Sets root attributes format_version, agon_version, git_revision and
 * status="running". */
AGON_API agon_log *agon_log_create(const char *path, agon_error *err);

/* ---- SETUP and FINAL phases ---------------------------------------------- */
/* Root or group attribute on the object at `obj_path` (created as a group
 * if missing).  Replaces an existing attribute of that name. */
AGON_API int agon_log_attr_string(agon_log *log, const char *obj_path,
                                  const char *name, const char *value,
                                  agon_error *err);
/* The string attribute `name` of the object at `obj_path` of an open log,
 * malloc'ed (free() it), or NULL when there is none. */
AGON_API char *agon_log_attr_read_string(agon_log *log, const char *obj_path,
                                         const char *name);
AGON_API int agon_log_attr_int(agon_log *log, const char *obj_path,
                               const char *name, int64_t value, agon_error *err);
AGON_API int agon_log_attr_double(agon_log *log, const char *obj_path,
                                  const char *name, double value, agon_error *err);
/* A scalar string dataset (e.g. "/config"). */
AGON_API int agon_log_write_string(agon_log *log, const char *path,
                                   const char *value, agon_error *err);
/* A whole float32 dataset of t's shape (compressed when large). */
AGON_API int agon_log_write_tensor(agon_log *log, const char *path,
                                   const agon_tensor *t, agon_error *err);

/* Declares a table of scalar columns: a group `path` holding a 1-D int64
 * dataset "step" and one 1-D float64 dataset per column, all of the same
 * length, extendible and chunked.  Rows are buffered in memory and written
 * in blocks.  Column names must be unique and non-empty. */
AGON_API agon_log_table *agon_log_table_create(agon_log *log, const char *path,
                                               const char *const *columns,
                                               size_t n_columns, agon_error *err);

/* Declares a tensor series: a group `path` holding a 1-D int64 "step" and,
 * per column, a float32 dataset [T, shape...] (chunked one snapshot per
 * chunk, deflate-compressed), extendible along T. */
AGON_API agon_log_series *agon_log_series_create(agon_log *log, const char *path,
                                                 const char *const *columns,
                                                 const agon_shape *shapes,
                                                 size_t n_columns, agon_error *err);

/* Enters the LIVE phase (H5Fstart_swmr_write). */
AGON_API int agon_log_start(agon_log *log, agon_error *err);

/* ---- LIVE phase (also allowed in SETUP) ----------------------------------- */
/* Appends one row: values[0..n_columns).  Buffered; never allocates once
 * the table exists. */
AGON_API int agon_log_table_append(agon_log_table *table, int64_t step,
                                   const double *values, agon_error *err);
/* Appends one snapshot: data[c] points at numel(shapes[c]) floats. */
AGON_API int agon_log_series_append(agon_log_series *series, int64_t step,
                                    const float *const *data, agon_error *err);
/* Writes buffered rows and flushes every dataset to the file. */
AGON_API int agon_log_flush(agon_log *log, agon_error *err);

/* Bytes of rows and snapshots appended since the last agon_log_flush:
 * data HDF5 may still hold in its caches, which the next flush writes. */
AGON_API uint64_t agon_log_pending_bytes(const agon_log *log);

/* Rows appended to a table so far (written and buffered), snapshots
 * appended to a series: the log cursors a checkpoint records. */
AGON_API int64_t agon_log_table_rows(const agon_log_table *table);
AGON_API int64_t agon_log_series_rows(const agon_log_series *series);

/* ---- fixed blocks (checkpoints) --------------------------------------------
 * A block is a 1-D dataset of a fixed number of values, allocated when it
 * is declared, that may be overwritten in place in every phase (also
 * LIVE): checkpoints live in blocks.  A write reaches the file (H5Dflush)
 * before it returns, so a reader after a crash sees either the old or the
 * new content of each block, or, for a write cut short, a mix that only a
 * checksum stored elsewhere can tell (agon's checkpoints carry one). */
typedef struct agon_log_block agon_log_block;   /* borrowed from its log */

typedef enum agon_log_block_type {
    AGON_LOG_BLOCK_U64,     /* uint64 words */
    AGON_LOG_BLOCK_F32,     /* float32 values */
} agon_log_block_type;

/* Declares the block at `path` (SETUP phase): creates it, or opens the
 * existing one of a reopened log, which must have this type and length
 * (AGON_EDATA otherwise).  n >= 1. */
AGON_API agon_log_block *agon_log_block_declare(agon_log *log, const char *path,
                                                agon_log_block_type type, int64_t n,
                                                agon_error *err);
/* Overwrites the whole block with data[0..n) and flushes it. */
AGON_API int agon_log_block_write(agon_log_block *block, const void *data, agon_error *err);
/* Reads the whole block into data[0..n). */
AGON_API int agon_log_block_read(agon_log_block *block, void *data, agon_error *err);

/* ---- continuing a log --------------------------------------------------------- */
/* What a run log says about itself, read without changing the file (a log
 * whose writer was killed is read through SWMR).  config is malloc'ed (the
 * resolved YAML of /config; free() it), NULL when absent. */
#define AGON_LOG_SUMMARY_PLUGINS 64

typedef struct agon_log_summary {
    char status[32];            /* "running", "completed", ... */
    char host[256];
    int64_t pid;                /* 0 when not recorded */
    int64_t steps_done;
    char *config;
    /* What trained the latest steps: the root attributes blas and kernels
     * and /provenance/plugins, or, for a resumed run, the newest record of
     * /provenance/resumes.  Empty strings in logs from before they were
     * recorded. */
    char blas[512];
    char kernels[16];
    int64_t n_resumes;          /* records in /provenance/resumes */
    size_t n_plugins;
    struct {
        char name[64];
        char sha256[65];
    } plugins[AGON_LOG_SUMMARY_PLUGINS];
} agon_log_summary;

AGON_API int agon_log_summarize(const char *path, agon_log_summary *out, agon_error *err);

/* A log whose writer died while finishing it (after leaving SWMR mode)
 * carries HDF5's "open for writing" mark, which makes every reader refuse
 * it, with SWMR or without.  When both opens keep failing for that reason
 * for `patience_ms` (a live writer ends that phase in milliseconds), the
 * mark is cleared the way agon_log_reopen clears it, changing no data, and
 * true is returned; false when the file opens, or fails for another
 * reason. */
AGON_API bool agon_log_recover_finish(const char *path, int patience_ms);

/* Opens an existing run log read-write to continue it: the SETUP phase,
 * with tables and series attached (agon_log_table_attach) instead of
 * created.  A log whose SWMR writer was killed still carries HDF5's
 * "open for writing" marks; they are cleared the way `h5clear -s
 * --increment=0` does, which first moves the recorded end of the file to
 * its real end, so nothing written is cut off.  The caller must make sure
 * that no process still writes the file. */
AGON_API agon_log *agon_log_reopen(const char *path, agon_error *err);

/* Attaches to the table at `path` of a reopened log, which must have
 * exactly these columns, and cuts it to its first `rows` rows (AGON_EDATA
 * when it holds fewer). */
AGON_API agon_log_table *agon_log_table_attach(agon_log *log, const char *path,
                                               const char *const *columns, size_t n_columns,
                                               int64_t rows, agon_error *err);
/* The same for a tensor series and its snapshots. */
AGON_API agon_log_series *agon_log_series_attach(agon_log *log, const char *path,
                                                 const char *const *columns,
                                                 const agon_shape *shapes, size_t n_columns,
                                                 int64_t rows, agon_error *err);

/* ---- end ------------------------------------------------------------------ */
/* Writes what is buffered, leaves SWMR mode (close + reopen read-write),
 * sets end_time, and records status ("completed", "diverged", "failed",
 * "interrupted") and its message, which agon_log_close writes as its last
 * write, after whatever the FINAL phase adds: a writer that dies
 * while finishing leaves status "running", never a finished-looking log
 * that lacks its final data.  Tables and series are no longer usable. */
AGON_API int agon_log_finish(agon_log *log, const char *status, const char *message,
                             agon_error *err);

/* Writes the status recorded by agon_log_finish, closes the file and
 * frees the log.  A log that was not finished is flushed and closed with
 * status left as it was ("running").  NULL is a
 * no-op.  Returns 0 or the error of the final write. */
AGON_API int agon_log_close(agon_log *log, agon_error *err);

/* Moves the log's file to `path` (on the same file system), replacing a
 * file there atomically, and keeps writing it there.  A run builds its log
 * under a temporary name and moves it into place once it is live, so that
 * the path never holds a half-created file.  Returns 0 or AGON_EIO. */
AGON_API int agon_log_move(agon_log *log, const char *path, agon_error *err);

/* True when `path` is a readable HDF5 file (any HDF5 file, not only a run
 * log).  Never blocks: only regular files are probed. */
AGON_API bool agon_log_file_is_hdf5(const char *path);

/* 1 when `path` is an HDF5 file that agon wrote (a run log or a
 * classifier file: its root has the format_version attribute), 0 when it
 * is not (another file, or an HDF5 file without it), -1 when it is an
 * HDF5 file that cannot be read (damaged or truncated). */
AGON_API int agon_log_file_written_by_agon(const char *path);

/* What is at the path a run would write its log to.  A run claims a new
 * path with an empty file that it holds (an OFD write lock) until its log,
 * built under PATH.<pid>.partial, replaces it; a run killed in those
 * milliseconds leaves the empty file, which is then nothing. */
typedef enum agon_log_path_state {
    AGON_LOG_PATH_FREE,         /* nothing there */
    AGON_LOG_PATH_STALE_CLAIM,  /* an empty file whose run died during setup */
    AGON_LOG_PATH_SETTING_UP,   /* an empty file held by a run setting up */
    AGON_LOG_PATH_FILE,         /* anything else: a log, another file */
} agon_log_path_state;

AGON_API agon_log_path_state agon_log_path_state_of(const char *path);

/* For a reader of `path`: when it holds an empty claim (either kind), the
 * one-line answer in err and its code (AGON_EDATA for a claim left by a
 * killed run, which a plain `agon run` may take; AGON_EUSAGE while a run
 * sets up there); 0 otherwise.  agon_log_summarize starts with it. */
AGON_API int agon_log_claim_refusal(const char *path, agon_error *err);

/* A writer holds an exclusive lock on its log for the milliseconds in
 * which it records the final status (after SWMR writing), and a reader's
 * open fails meanwhile.  Waits up to `patience_ms` for such a lock on
 * `path` to go; true when there was one and it went (so an open is worth
 * trying again), false when there was none or it stayed. */
AGON_API bool agon_log_wait_unlocked(const char *path, int patience_ms);

/* How long agon's readers wait for that lock; a writer holds it for
 * milliseconds (longer only while it writes a large model's /final). */
#define AGON_LOG_LOCK_PATIENCE_MS 10000

/* Opens a log read-only as it may be: finished (a plain open), live or
 * killed while SWMR writing (a SWMR open), locked for a moment by a writer
 * recording its final status (opened again once the lock goes, within
 * AGON_LOG_LOCK_PATIENCE_MS), or killed while finishing (the mark cleared
 * by agon_log_recover_finish; *cleared_mark, which may be NULL, says so).
 * Returns the HDF5 file id (an hid_t) or a negative value; why (may be
 * NULL) receives HDF5's reason for the failed plain open. */
AGON_API int64_t agon_log_open_read(const char *path, char *why, size_t why_cap,
                                    bool *cleared_mark);

/* Path the log was created at (borrowed). */
AGON_API const char *agon_log_path(const agon_log *log);

#ifdef __cplusplus
}
#endif

#endif /* AGON_LOG_H */
