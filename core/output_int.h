/* Private: output paths, shared by the run log (train.c) and the
 * classifier file (classifier.c): whether a path may be written, and a
 * run's claim on its log path while it sets up. */
#ifndef AGON_OUTPUT_INT_H
#define AGON_OUTPUT_INT_H

#include <stdbool.h>

#include "agon/error.h"
#include "agon/log.h"

typedef struct agon__output_rules {
    bool overwrite;             /* --overwrite: an existing output may be replaced */
    /* Names the HDF5 file in the refusal of other files ("HDF5 run log":
     * "is not an HDF5 run log, so --overwrite will not replace it"). */
    const char *what;
    /* A run log: an empty claim at the path is looked at (free when left
     * by a killed run, refused while its run sets up), and a log whose
     * writer is alive is not replaced. */
    bool live_writer_check;
    bool writer_gone;           /* --writer-gone: the writer on another host is over */
} agon__output_rules;

/* Refuses (AGON_EUSAGE, in err) a log whose summary says a writer may
 * still be at it: status "running" and its pid alive on this host, or
 * written on another host, which cannot be checked, unless writer_gone.
 * `once_over` ends the refusal for the other host ("resume with
 * --force").  Shared by --resume and --overwrite. */
int agon__check_no_live_writer(const char *path, const agon_log_summary *sum,
                               bool writer_gone, const char *once_over, agon_error *err);

/* Whether `path` may become an output under `rules`: a missing path may;
 * an existing one only with overwrite, and only when it is an HDF5 file
 * that agon wrote (a format_version attribute), never another HDF5 file, a
 * text file or anything that is not a regular file.  *exists (may be
 * NULL) says whether the path holds something to replace.  No side
 * effects, so it can run before anything is built; agon__claim_output
 * checks again. */
int agon__check_output(const char *path, const agon__output_rules *rules, bool *exists,
                       agon_error *err);

/* A run's hold on its log path from setup until its new log is in place:
 * an OFD write lock on the file at the path, either the empty file the
 * claim created (or found there, left by a run killed during setup) or the
 * old log being replaced (replacing).  Of two runs claiming one path,
 * exactly one gets it; the other is refused at once.  With the claim held,
 * the PATH.<pid>.partial files of runs killed during setup are removed. */
typedef struct agon__claim {
    int fd;
    bool replacing;
} agon__claim;

int agon__claim_output(const char *path, const agon__output_rules *rules, agon__claim *claim,
                       agon_error *err);

/* Lets go of the claim (after the new log has replaced the file, or after
 * a failed setup); a claim with fd -1 is a no-op. */
void agon__claim_release(agon__claim *claim);

#endif /* AGON_OUTPUT_INT_H */
