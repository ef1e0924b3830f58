/* Output paths: refusing to overwrite what is not ours, and a run's claim
 * on its log path (see output_int.h). */
#define _GNU_SOURCE     /* F_OFD_SETLK, F_OFD_GETLK */

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agon/log.h"
#include "output_int.h"

/* ---- claims ----------------------------------------------------------------- */

/* A claim is an open file description of the file at the path holding an
 * OFD write lock on it (fcntl, not flock: HDF5 uses flock on the logs it
 * opens, and the two kinds of lock do not see each other on Linux).  The
 * lock belongs to the run that took it and ends with its process, so a
 * claim left by a run killed during setup is recognised by the lock being
 * free. */
static struct flock whole_file_lock(short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fl;
}

/* Whether another process holds a claim on the file open at fd. */
static bool claim_held_elsewhere(int fd)
{
    struct flock fl = whole_file_lock(F_WRLCK);
    return fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

agon_log_path_state agon_log_path_state_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return AGON_LOG_PATH_FREE;
    if (!S_ISREG(st.st_mode) || st.st_size > 0)
        return AGON_LOG_PATH_FILE;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return AGON_LOG_PATH_FILE;
    bool held = claim_held_elsewhere(fd);
    close(fd);
    return held ? AGON_LOG_PATH_SETTING_UP : AGON_LOG_PATH_STALE_CLAIM;
}

int agon_log_claim_refusal(const char *path, agon_error *err)
{
    switch (agon_log_path_state_of(path)) {
    case AGON_LOG_PATH_STALE_CLAIM:
        return agon_error_set(err, AGON_EDATA,
                              "%s: an empty file left by a run killed while setting up, before "
                              "its first step; nothing was lost, and agon run may write a log "
                              "here again (no --overwrite needed)",
                              path);
    case AGON_LOG_PATH_SETTING_UP:
        return agon_error_set(err, AGON_EUSAGE,
                              "%s: a run is setting up its log here right now (it has not "
                              "started training); wait a moment, or give other runs their own "
                              "output path (-o)",
                              path);
    default:
        return 0;
    }
}

/* Removes PATH.<pid>.partial files: the logs being built by runs that
 * claimed PATH.  Called with the claim held, so none of them is still
 * being built (a builder holds the claim until its log replaces it). */
static void remove_partials(const char *path)
{
    char pattern[4200];
    size_t n = 0;
    /* glob's own metacharacters in the path are escaped. */
    for (const char *c = path; *c && n + 3 < sizeof pattern - 16; c++) {
        if (strchr("*?[\\", *c))
            pattern[n++] = '\\';
        pattern[n++] = *c;
    }
    snprintf(pattern + n, sizeof pattern - n, ".*.partial");
    glob_t g;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        /* Only "<path>.<digits>.partial", the names train.c gives them. */
        const char *tail = g.gl_pathv[i] + strlen(path) + 1;
        size_t digits = strspn(tail, "0123456789");
        if (digits > 0 && strcmp(tail + digits, ".partial") == 0)
            unlink(g.gl_pathv[i]);
    }
    globfree(&g);
}

int agon__check_no_live_writer(const char *path, const agon_log_summary *sum,
                               bool writer_gone, const char *once_over, agon_error *err)
{
    if (strcmp(sum->status, "running") != 0 || sum->pid <= 0)
        return 0;
    char here[256] = "";
    gethostname(here, sizeof here - 1);
    if (strcmp(sum->host, here) != 0)
        return writer_gone ? 0
                           : agon_error_set(err, AGON_EUSAGE,
                                            "%s: written by pid %lld on host %s, which cannot "
                                            "be checked from here; once that run is over, %s",
                                            path, (long long)sum->pid, sum->host, once_over);
    if (sum->pid <= INT32_MAX && (kill((pid_t)sum->pid, 0) == 0 || errno == EPERM))
        return agon_error_set(err, AGON_EUSAGE,
                              "%s: still being written by pid %lld; stop that run first "
                              "(Ctrl-C finishes its log as interrupted) or wait for it",
                              path, (long long)sum->pid);
    return 0;
}

/* The log at `path`, if it reads as one, must have no live writer. */
static int check_no_live_writer(const char *path, bool writer_gone, agon_error *err)
{
    agon_log_summary sum;
    agon_error ignored = {0};
    if (agon_log_summarize(path, &sum, &ignored) != 0)
        return 0;
    int rc = agon__check_no_live_writer(path, &sum, writer_gone,
                                        "add --writer-gone to replace it", err);
    free(sum.config);
    return rc;
}

/* The refusal of an existing, non-empty file at `path` as an output, or
 * 0 when --overwrite may replace it. */
static int check_replaceable(const char *path, const agon__output_rules *rules,
                             agon_error *err)
{
    if (!rules->overwrite)
        return agon_error_set(err, AGON_EIO,
                              "%s: already exists; choose another output path (-o) or pass "
                              "--overwrite to replace it",
                              path);
    if (!agon_log_file_is_hdf5(path))
        return agon_error_set(err, AGON_EIO,
                              "%s: is not an %s, so --overwrite will not replace it; choose "
                              "another output path (-o)",
                              path, rules->what);
    int by_agon = agon_log_file_written_by_agon(path);
    if (by_agon < 0)
        return agon_error_set(err, AGON_EIO,
                              "%s: an HDF5 file that cannot be read (damaged or truncated), so "
                              "agon cannot tell whose it is and --overwrite will not replace "
                              "it; remove it yourself if it is yours, or choose another output "
                              "path (-o)",
                              path);
    if (by_agon == 0)
        return agon_error_set(err, AGON_EIO,
                              "%s: is an HDF5 file that agon did not write (no format_version "
                              "attribute), so --overwrite will not replace it; choose another "
                              "output path (-o)",
                              path);
    return rules->live_writer_check ? check_no_live_writer(path, rules->writer_gone, err) : 0;
}

int agon__check_output(const char *path, const agon__output_rules *rules, bool *exists,
                       agon_error *err)
{
    struct stat st;
    bool found = lstat(path, &st) == 0;
    if (exists)
        *exists = found;
    if (!found)
        return 0;
    if (!S_ISREG(st.st_mode))
        return agon_error_set(err, AGON_EIO,
                              "%s: exists and is not a regular file; choose another output "
                              "path (-o)",
                              path);
    if (st.st_size == 0 && rules->live_writer_check) {
        agon_log_path_state state = agon_log_path_state_of(path);
        if (state == AGON_LOG_PATH_SETTING_UP)
            return agon_error_set(err, AGON_EUSAGE,
                                  "%s: another run is setting up its log here right now; give "
                                  "each run its own output path (-o)",
                                  path);
        if (state == AGON_LOG_PATH_STALE_CLAIM) {
            if (exists)
                *exists = false;
            return 0;
        }
    }
    return check_replaceable(path, rules, err);
}

int agon__claim_output(const char *path, const agon__output_rules *rules, agon__claim *claim,
                       agon_error *err)
{
    claim->fd = -1;
    claim->replacing = false;
    /* Each pass opens what is at the path and locks it; a file replaced
     * between the open and the lock is looked at again. */
    for (int attempt = 0; attempt < 8; attempt++) {
        bool created = false;
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            created = true;
        } else if (errno == EEXIST) {
            struct stat st;
            if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
                return agon__check_output(path, rules, NULL, err);
            fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 && errno == ENOENT)
                continue;   /* removed meanwhile */
            if (fd < 0 && (errno == EACCES || errno == EPERM)) {
                int rc = agon__check_output(path, rules, NULL, err);
                if (rc != 0)
                    return rc;
                return agon_error_set(err, AGON_EIO,
                                      "%s: is read-only, so --overwrite will not replace it; "
                                      "make it writable (chmod u+w) or choose another output "
                                      "path (-o)",
                                      path);
            }
        }
        if (fd < 0) {
            int e = errno;
            return agon_error_set(err, AGON_EIO, "%s: cannot create log file: %s; %s", path,
                                  strerror(e),
                                  e == ENOENT || e == ENOTDIR
                                      ? "create the directory or choose another output path (-o)"
                                      : "make the directory writable or choose another output "
                                        "path (-o)");
        }
        struct flock fl = whole_file_lock(F_WRLCK);
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
            int e = errno;
            struct stat st;
            bool empty = fstat(fd, &st) == 0 && st.st_size == 0;
            close(fd);
            if (e != EAGAIN && e != EACCES)
                return agon_error_set(err, AGON_EIO, "%s: cannot lock the log file: %s", path,
                                      strerror(e));
            return agon_error_set(err, AGON_EUSAGE,
                                  empty ? "%s: another run is setting up its log here right "
                                          "now; give each run its own output path (-o)"
                                        : "%s: another run is replacing this log right now; "
                                          "give each run its own output path (-o)",
                                  path);
        }
        /* Locked: is it still the file at the path? */
        struct stat held, now;
        if (fstat(fd, &held) != 0 || lstat(path, &now) != 0 || held.st_ino != now.st_ino ||
            held.st_dev != now.st_dev) {
            close(fd);
            continue;
        }
        if (!created && held.st_size > 0) {
            int rc = check_replaceable(path, rules, err);
            if (rc != 0) {
                close(fd);
                return rc;
            }
            claim->replacing = true;
        }
        /* An empty file whose lock was free is a claim left by a run
         * killed during setup: it is ours now, like a new one. */
        remove_partials(path);
        claim->fd = fd;
        return 0;
    }
    return agon_error_set(err, AGON_EIO,
                          "%s: the file there kept changing while agon claimed it; give each "
                          "run its own output path (-o)",
                          path);
}

void agon__claim_release(agon__claim *claim)
{
    if (claim->fd >= 0)
        close(claim->fd);
    claim->fd = -1;
}

/* ---- readers ---------------------------------------------------------------- */

bool agon_log_wait_unlocked(const char *path, int patience_ms)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return false;
    bool waited = false;
    for (int ms = 0;; ms += 10) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            flock(fd, LOCK_UN);
            break;
        }
        if (errno != EWOULDBLOCK || ms >= patience_ms) {
            waited = false;
            break;
        }
        waited = true;
        usleep(10 * 1000);
    }
    close(fd);
    return waited;
}
