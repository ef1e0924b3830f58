/* `agon sweep SWEEP.yaml`: many runs of one experiment, over axes of config
 * values, as child processes on this machine or as one Slurm job array
 * (docs/sweep.md).
 *
 * Every run is `agon run EXPERIMENT --set ...` (or `agon run --resume` for
 * a run that was stopped), so a sweep's logs are ordinary run logs.  A
 * run's name is its run id, the hash of its resolved config: the state of
 * a sweep is the set of files in its folder, and relaunching the same
 * sweep file finds what is done without any bookkeeping of its own.  What
 * the log cannot say (that its process crashed) is recorded beside it in
 * <id>.exit, the shell-style exit status of the run's last process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agon/agon.h"
#include "cli.h"

/* A bound against a typo that multiplies axes into millions of runs. */
#define MAX_RUNS 100000

/* ---- small helpers ------------------------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)w < b->cap) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap ? b->cap : 64;
        while (cap <= b->len + (size_t)w)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

/* The buffer's string (owned by the caller), or NULL when out of memory. */
static char *sb_take(sbuf *b)
{
    if (b->oom || !b->s) {
        free(b->s);
        return b->oom ? NULL : strdup("");
    }
    return b->s;
}

static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void utc_stamp(char *buf, size_t cap, const char *format)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, format, &tm);
}

static void format_duration(char *buf, size_t cap, double seconds)
{
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, cap, "%lds", s);
}

/* mkdir -p; 0 or errno. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return errno;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* Writes `text` to `path` through a temp file and a rename. */
static int write_file_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return errno;
    fputs(text, f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int e = errno ? errno : EIO;
        unlink(tmp);
        return e;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

/* ---- the sweep file ----------------------------------------------------- */

/* One assignment of a config key path: the text of a --set. */
typedef struct assign {
    char *set;                  /* "key.path=value" */
    const agon_node *origin;    /* where the value came from; NULL: the command line */
} assign;

/* One point of an axis: the assignments it makes together. */
typedef struct point {
    assign *a;
    size_t n;
} point;

/* An axis: a list of points.  Runs are the cartesian product of axes. */
typedef struct axis {
    point *points;
    size_t n;
} axis;

typedef enum run_state {
    ST_PENDING,         /* never started */
    ST_COMPLETED,
    ST_DIVERGED,        /* a whole log; training hit a non-finite value */
    ST_RUNNING,         /* its writer is alive (or its Slurm task is) */
    ST_QUEUED,          /* its Slurm task waits in the queue */
    ST_INTERRUPTED,     /* stopped with a checkpoint: resumable */
    ST_FAILED,          /* error or crash: started over on relaunch */
} run_state;

static const char *const state_names[] = {"pending",     "completed", "diverged", "running",
                                          "queued",      "interrupted", "failed"};

typedef struct run {
    assign *sets;       /* common assignments, then the axes' */
    size_t n_sets;
    char *label;        /* the axes' assignments, space-separated */
    char id[17];
    run_state state;
    char detail[512];   /* why it failed or stopped */
    bool resume_force;  /* its log names another host's writer, known to be gone */
    /* while a local child runs it */
    pid_t pid;
    double started;
    long err_offset;
} run;

typedef struct sweep {
    const char *file;           /* the sweep file as given */
    agon_config *cfg;
    char experiment[PATH_MAX];  /* absolute */
    char out[PATH_MAX];         /* absolute */
    assign *common;
    size_t n_common;
    axis *axes;
    size_t n_axes;
    run *runs;
    size_t n_runs;
    size_t duplicates;
    /* Slurm settings: the file's `slurm:` map, then the flags */
    const char *partition, *time_limit, *job_name;
    int64_t cpus, throttle;
    const char *sbatch_extra[64];
    size_t n_sbatch_extra;
    bool slurm;                 /* --backend slurm: the folder's path goes into a job script */
} sweep;

static void out_path(const sweep *sw, const char *name, char *buf, size_t cap);

static int node_error(const agon_node *node, int code, const char *fmt, ...)
{
    char msg[AGON_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    agon_error err = {0};
    agon_node_error(&err, code, node, "%s", msg);
    fprintf(stderr, "%s\n", err.message);
    return code;
}

/* The first control character of `s` (a byte below 0x20, or DEL), or 0.
 * In a value written into the Slurm job script such a byte would end or
 * garble its line: after a newline in an #SBATCH or comment line, the rest
 * of the value runs as bash on the compute node. */
static int control_char(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return *p;
    }
    return 0;
}

/* Refuses a value of the job script that holds a control character, with
 * one line naming where it came from: its node in the sweep file when it
 * has one, else `what` (a flag, the file's name).  A NULL value is not
 * set: 0. */
static int refuse_control(const char *value, const agon_node *origin, const char *what)
{
    static const char why[] = "values written into the Slurm job script must be printable "
                              "text on one line";
    int c = value ? control_char(value) : 0;
    if (!c)
        return 0;
    if (origin)
        return node_error(origin, AGON_ECONFIG, "holds a control character (0x%02x); %s", c, why);
    fprintf(stderr, "agon sweep: %s holds a control character (0x%02x); %s\n", what, c, why);
    return AGON_ECONFIG;
}

/* A scalar that must be written quoted in a flow value to read back as the
 * same string. */
static bool needs_quotes(const char *s)
{
    if (!s[0])
        return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]))
        return true;
    for (const char *p = s; *p; p++) {
        if (strchr(",[]{}#\"\\", *p) || (*p == ':' && (p[1] == ' ' || p[1] == '\0')) ||
            (unsigned char)*p < 0x20)
            return true;
    }
    return s[strlen(s) - 1] == ' ';
}

static void quoted(sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            sb_printf(b, "\\x%02x", *p);
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

/* A node as a YAML flow value that --set reads back as the same node: a
 * quoted scalar stays a string, a plain one keeps its type. */
static void flow_value(sbuf *b, const agon_node *n)
{
    switch (agon_node_kind_of(n)) {
    case AGON_NODE_SCALAR: {
        const char *s = agon_node_scalar(n);
        /* A plain scalar that needs quotes in a flow value is a string
         * anyway, except a negative number ("-3", "-.inf"). */
        char *end;
        strtod(s, &end);
        bool negative_number = s[0] == '-' && (!*end || strcmp(s, "-.inf") == 0);
        if (agon_node_quoted(n) || (needs_quotes(s) && !negative_number))
            quoted(b, s);
        else
            sb_printf(b, "%s", s);
        break;
    }
    case AGON_NODE_SEQ:
        sb_printf(b, "[");
        for (size_t i = 0; i < agon_node_len(n); i++) {
            sb_printf(b, i ? ", " : "");
            flow_value(b, agon_node_at(n, i));
        }
        sb_printf(b, "]");
        break;
    case AGON_NODE_MAP:
        sb_printf(b, "{");
        for (size_t i = 0; i < agon_node_len(n); i++) {
            sb_printf(b, i ? ", " : "");
            const char *k = agon_node_key_at(n, i);
            if (needs_quotes(k))
                quoted(b, k);
            else
                sb_printf(b, "%s", k);
            sb_printf(b, ": ");
            flow_value(b, agon_node_at(n, i));
        }
        sb_printf(b, "}");
        break;
    default:
        sb_printf(b, "null");
        break;
    }
}

static char *make_set(const char *key, const agon_node *value)
{
    sbuf b = {0};
    sb_printf(&b, "%s=", key);
    flow_value(&b, value);
    return sb_take(&b);
}

static int axis_add_point(axis *ax, const char *set, const agon_node *origin)
{
    point *p = realloc(ax->points, (ax->n + 1) * sizeof *p);
    if (!p)
        return AGON_ENOMEM;
    ax->points = p;
    point *pt = &ax->points[ax->n++];
    pt->n = 0;
    pt->a = NULL;
    if (!set)
        return 0;
    pt->a = malloc(sizeof *pt->a);
    char *copy = strdup(set);
    if (!pt->a || !copy) {
        free(copy);
        return AGON_ENOMEM;
    }
    pt->a[0] = (assign){copy, origin};
    pt->n = 1;
    return 0;
}

static int point_add(point *pt, char *set, const agon_node *origin)
{
    if (!set)
        return AGON_ENOMEM;
    assign *a = realloc(pt->a, (pt->n + 1) * sizeof *a);
    if (!a) {
        free(set);
        return AGON_ENOMEM;
    }
    pt->a = a;
    pt->a[pt->n++] = (assign){set, origin};
    return 0;
}

static axis *new_axis(sweep *sw)
{
    axis *a = realloc(sw->axes, (sw->n_axes + 1) * sizeof *a);
    if (!a)
        return NULL;
    sw->axes = a;
    sw->axes[sw->n_axes] = (axis){0};
    return &sw->axes[sw->n_axes++];
}

static bool is_dotted_path(const char *key)
{
    if (!key[0] || key[0] == '.' || key[strlen(key) - 1] == '.' || strstr(key, ".."))
        return false;
    return strchr(key, '=') == NULL;
}

/* grid: {KEY: [v1, v2, ...], ...}; one axis per key, in file order. */
static int parse_grid(sweep *sw, const agon_node *grid)
{
    if (agon_node_kind_of(grid) != AGON_NODE_MAP)
        return node_error(grid, AGON_ECONFIG,
                          "expected a map of config key paths to lists of values");
    for (size_t i = 0; i < agon_node_len(grid); i++) {
        const char *key = agon_node_key_at(grid, i);
        const agon_node *values = agon_node_at(grid, i);
        if (!is_dotted_path(key))
            return node_error(values, AGON_ECONFIG, "'%s' is not a config key path such as "
                                                    "loss.plugin", key);
        if (agon_node_kind_of(values) != AGON_NODE_SEQ || agon_node_len(values) == 0)
            return node_error(values, AGON_ECONFIG,
                              "expected a non-empty list of values, e.g. [minimax, nonsaturating]");
        axis *ax = new_axis(sw);
        if (!ax)
            return AGON_ENOMEM;
        for (size_t j = 0; j < agon_node_len(values); j++) {
            const agon_node *v = agon_node_at(values, j);
            char *set = make_set(key, v);
            int rc = set ? axis_add_point(ax, set, v) : AGON_ENOMEM;
            free(set);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* zip: {KEY: [...], KEY2: [...]} (lists of one length, taken together), or a
 * list of such maps, each one axis. */
static int parse_zip_group(sweep *sw, const agon_node *group)
{
    if (agon_node_kind_of(group) != AGON_NODE_MAP || agon_node_len(group) == 0)
        return node_error(group, AGON_ECONFIG,
                          "expected a map of config key paths to lists of equal length");
    size_t len = 0;
    for (size_t i = 0; i < agon_node_len(group); i++) {
        const agon_node *values = agon_node_at(group, i);
        const char *key = agon_node_key_at(group, i);
        if (!is_dotted_path(key))
            return node_error(values, AGON_ECONFIG, "'%s' is not a config key path such as "
                                                    "dataset.layout", key);
        if (agon_node_kind_of(values) != AGON_NODE_SEQ || agon_node_len(values) == 0)
            return node_error(values, AGON_ECONFIG, "expected a non-empty list of values");
        if (i == 0)
            len = agon_node_len(values);
        else if (agon_node_len(values) != len)
            return node_error(values, AGON_ECONFIG,
                              "has %zu values but %s has %zu; zipped lists are taken together "
                              "and must have equal lengths",
                              agon_node_len(values), agon_node_key_at(group, 0), len);
    }
    axis *ax = new_axis(sw);
    if (!ax)
        return AGON_ENOMEM;
    for (size_t j = 0; j < len; j++) {
        int rc = axis_add_point(ax, NULL, NULL);
        for (size_t i = 0; rc == 0 && i < agon_node_len(group); i++) {
            const agon_node *v = agon_node_at(agon_node_at(group, i), j);
            rc = point_add(&ax->points[j], make_set(agon_node_key_at(group, i), v), v);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* seeds: N (seeds 0..N-1) or a list of integers. */
static int parse_seeds(sweep *sw, const agon_node *seeds)
{
    axis *ax = new_axis(sw);
    if (!ax)
        return AGON_ENOMEM;
    agon_error err = {0};
    if (agon_node_kind_of(seeds) == AGON_NODE_SEQ) {
        for (size_t i = 0; i < agon_node_len(seeds); i++) {
            int64_t s;
            const agon_node *v = agon_node_at(seeds, i);
            if (agon_node_to_int(v, &s, &err) != 0 || s < 0)
                return node_error(v, AGON_ECONFIG, "expected a non-negative integer seed");
            char set[64];
            snprintf(set, sizeof set, "seed=%lld", (long long)s);
            if (axis_add_point(ax, set, v))
                return AGON_ENOMEM;
        }
        if (ax->n == 0)
            return node_error(seeds, AGON_ECONFIG, "expected at least one seed");
        return 0;
    }
    int64_t count;
    if (agon_node_to_int(seeds, &count, &err) != 0 || count < 1 || count > MAX_RUNS)
        return node_error(seeds, AGON_ECONFIG,
                          "expected a number of seeds (1 to %d, giving seeds 0, 1, ...) or a "
                          "list of seeds",
                          MAX_RUNS);
    for (int64_t s = 0; s < count; s++) {
        char set[64];
        snprintf(set, sizeof set, "seed=%lld", (long long)s);
        if (axis_add_point(ax, set, seeds))
            return AGON_ENOMEM;
    }
    return 0;
}

/* random: {count: N, seed: S, params: {KEY: {uniform|log_uniform: [lo, hi]}
 * | {choice: [...]}}}: one axis of N points drawn with the sweep's own
 * stream, so the same file always gives the same samples. */
static int parse_random(sweep *sw, const agon_node *random)
{
    static const char *const keys[] = {"count", "seed", "params", NULL};
    if (agon_node_kind_of(random) != AGON_NODE_MAP)
        return node_error(random, AGON_ECONFIG, "expected a map with count, seed and params");
    for (size_t i = 0; i < agon_node_len(random); i++) {
        const char *k = agon_node_key_at(random, i);
        bool known = false;
        for (size_t j = 0; keys[j]; j++)
            known |= strcmp(k, keys[j]) == 0;
        if (!known) {
            const char *close = agon_suggest(k, keys);
            return node_error(agon_node_at(random, i), AGON_ECONFIG,
                              "unknown key '%s'%s%s%s; random takes count, seed and params", k,
                              close ? " (did you mean '" : "", close ? close : "",
                              close ? "'?)" : "");
        }
    }
    agon_error err = {0};
    int64_t count, seed;
    const agon_node *params = NULL;
    if (agon_cfg_require_int(random, "count", &count, &err) != 0 ||
        agon_cfg_opt_int(random, "seed", 0, &seed, &err) != 0 ||
        agon_cfg_require_map(random, "params", &params, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return AGON_ECONFIG;
    }
    if (count < 1 || count > MAX_RUNS)
        return node_error(agon_node_get(random, "count"), AGON_ECONFIG,
                          "expected a count from 1 to %d", MAX_RUNS);
    if (agon_node_len(params) == 0)
        return node_error(params, AGON_ECONFIG, "expected at least one parameter to sample");
    /* Check every distribution before drawing. */
    for (size_t i = 0; i < agon_node_len(params); i++) {
        const char *key = agon_node_key_at(params, i);
        const agon_node *d = agon_node_at(params, i);
        if (!is_dotted_path(key))
            return node_error(d, AGON_ECONFIG, "'%s' is not a config key path", key);
        const char *kind = agon_node_kind_of(d) == AGON_NODE_MAP && agon_node_len(d) == 1
                               ? agon_node_key_at(d, 0)
                               : "";
        const agon_node *arg = agon_node_kind_of(d) == AGON_NODE_MAP ? agon_node_at(d, 0) : NULL;
        if (strcmp(kind, "choice") == 0) {
            if (agon_node_kind_of(arg) != AGON_NODE_SEQ || agon_node_len(arg) == 0)
                return node_error(arg, AGON_ECONFIG, "choice takes a non-empty list of values");
        } else if (strcmp(kind, "uniform") == 0 || strcmp(kind, "log_uniform") == 0) {
            double lo, hi;
            if (agon_node_kind_of(arg) != AGON_NODE_SEQ || agon_node_len(arg) != 2 ||
                agon_node_to_float(agon_node_at(arg, 0), &lo, &err) != 0 ||
                agon_node_to_float(agon_node_at(arg, 1), &hi, &err) != 0 || !isfinite(lo) ||
                !isfinite(hi) || !(lo < hi))
                return node_error(arg, AGON_ECONFIG,
                                  "%s takes [low, high] with finite numbers, low < high", kind);
            if (kind[0] == 'l' && !(lo > 0))
                return node_error(arg, AGON_ECONFIG,
                                  "log_uniform needs 0 < low < high, e.g. [1.0e-5, 1.0e-3]");
        } else {
            return node_error(d, AGON_ECONFIG,
                              "expected one of {uniform: [low, high]}, {log_uniform: [low, high]} "
                              "or {choice: [values]}");
        }
    }
    axis *ax = new_axis(sw);
    if (!ax)
        return AGON_ENOMEM;
    agon_rng rng;
    agon_rng_seed(&rng, (uint64_t)seed, "sweep.random");
    for (int64_t s = 0; s < count; s++) {
        if (axis_add_point(ax, NULL, NULL))
            return AGON_ENOMEM;
        point *pt = &ax->points[ax->n - 1];
        for (size_t i = 0; i < agon_node_len(params); i++) {
            const char *key = agon_node_key_at(params, i);
            const agon_node *d = agon_node_at(params, i);
            const char *kind = agon_node_key_at(d, 0);
            const agon_node *arg = agon_node_at(d, 0);
            char *set;
            if (strcmp(kind, "choice") == 0) {
                uint64_t k = agon_rng_below(&rng, agon_node_len(arg));
                set = make_set(key, agon_node_at(arg, (size_t)k));
            } else {
                double lo, hi;
                agon_node_to_float(agon_node_at(arg, 0), &lo, &err);
                agon_node_to_float(agon_node_at(arg, 1), &hi, &err);
                double u = agon_rng_uniform(&rng);
                double v = kind[0] == 'l' ? exp(log(lo) + u * (log(hi) - log(lo)))
                                          : lo + u * (hi - lo);
                set = xprintf("%s=%.17g", key, v);
            }
            if (point_add(pt, set, d))
                return AGON_ENOMEM;
        }
    }
    return 0;
}

static int parse_slurm(sweep *sw, const agon_node *slurm)
{
    static const char *const keys[] = {"partition", "time",   "cpus", "throttle",
                                       "sbatch",    "job_name", NULL};
    if (agon_node_kind_of(slurm) != AGON_NODE_MAP)
        return node_error(slurm, AGON_ECONFIG,
                          "expected a map (partition, time, cpus, throttle, sbatch, job_name)");
    for (size_t i = 0; i < agon_node_len(slurm); i++) {
        const char *k = agon_node_key_at(slurm, i);
        bool known = false;
        for (size_t j = 0; keys[j]; j++)
            known |= strcmp(k, keys[j]) == 0;
        if (!known) {
            const char *close = agon_suggest(k, keys);
            return node_error(agon_node_at(slurm, i), AGON_ECONFIG,
                              "unknown key '%s'%s%s%s; slurm takes partition, time, cpus, "
                              "throttle, sbatch and job_name",
                              k, close ? " (did you mean '" : "", close ? close : "",
                              close ? "'?)" : "");
        }
    }
    agon_error err = {0};
    if (agon_cfg_opt_string(slurm, "partition", NULL, &sw->partition, &err) != 0 ||
        agon_cfg_opt_string(slurm, "time", NULL, &sw->time_limit, &err) != 0 ||
        agon_cfg_opt_string(slurm, "job_name", NULL, &sw->job_name, &err) != 0 ||
        agon_cfg_opt_int(slurm, "cpus", 1, &sw->cpus, &err) != 0 ||
        agon_cfg_opt_int(slurm, "throttle", 0, &sw->throttle, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return AGON_ECONFIG;
    }
    /* Each is written on an #SBATCH line of the job script. */
    static const char *const line_keys[] = {"partition", "time", "job_name"};
    for (size_t i = 0; i < sizeof line_keys / sizeof line_keys[0]; i++) {
        const agon_node *v = agon_node_get(slurm, line_keys[i]);
        int rc = v ? refuse_control(agon_node_scalar(v), v, line_keys[i]) : 0;
        if (rc)
            return rc;
    }
    if (sw->cpus < 1)
        return node_error(agon_node_get(slurm, "cpus"), AGON_ECONFIG,
                          "expected at least 1 CPU per run");
    if (sw->throttle < 0)
        return node_error(agon_node_get(slurm, "throttle"), AGON_ECONFIG,
                          "expected 0 (no limit) or the most tasks to run at once");
    const agon_node *extra = agon_node_get(slurm, "sbatch");
    if (extra) {
        if (agon_node_kind_of(extra) != AGON_NODE_SEQ)
            return node_error(extra, AGON_ECONFIG,
                              "expected a list of sbatch options, e.g. [\"--mem=4G\"]");
        for (size_t i = 0; i < agon_node_len(extra); i++) {
            const agon_node *v = agon_node_at(extra, i);
            const char *s = agon_node_scalar(v);
            if (agon_node_kind_of(v) != AGON_NODE_SCALAR || !s[0])
                return node_error(v, AGON_ECONFIG, "expected one sbatch option per item");
            int rc = refuse_control(s, v, "an sbatch option");
            if (rc)
                return rc;
            if (sw->n_sbatch_extra == sizeof sw->sbatch_extra / sizeof sw->sbatch_extra[0])
                return node_error(v, AGON_ECONFIG, "too many sbatch options (at most 64)");
            sw->sbatch_extra[sw->n_sbatch_extra++] = s;
        }
    }
    return 0;
}

static int add_common(sweep *sw, char *set, const agon_node *origin)
{
    if (!set)
        return AGON_ENOMEM;
    assign *a = realloc(sw->common, (sw->n_common + 1) * sizeof *a);
    if (!a) {
        free(set);
        return AGON_ENOMEM;
    }
    sw->common = a;
    sw->common[sw->n_common++] = (assign){set, origin};
    return 0;
}

/* Refuses the sweep's folder `out_dir` (free of control characters) when
 * its absolute path `abs` holds one. */
static int refuse_folder_path(const char *out_dir, const char *abs)
{
    char *what = xprintf("the absolute path of %s", out_dir);
    int rc = refuse_control(abs, NULL, what ? what : "the absolute path of the sweep's folder");
    free(what);
    return rc;
}

/* Reads the sweep file: the experiment, the common settings and the axes.
 * `out_flag` and `cli_sets` come from the command line and win. */
static int parse_sweep(sweep *sw, const char *out_flag, bool create_out,
                       const char *const *cli_sets, size_t n_cli_sets)
{
    static const char *const keys[] = {"description", "experiment", "out",    "set",  "grid",
                                       "zip",         "seeds",      "random", "slurm", NULL};
    agon_diag diag;
    agon_diag_init(&diag);
    sw->cfg = agon_config_load(sw->file, &diag);
    if (!sw->cfg) {
        for (size_t i = 0; i < diag.count; i++)
            fprintf(stderr, "%s\n", diag.messages[i]);
        int code = diag.code ? diag.code : AGON_ECONFIG;
        agon_diag_fini(&diag);
        return code;
    }
    agon_diag_fini(&diag);
    const agon_node *root = agon_config_root(sw->cfg);
    for (size_t i = 0; i < agon_node_len(root); i++) {
        const char *k = agon_node_key_at(root, i);
        bool known = false;
        for (size_t j = 0; keys[j]; j++)
            known |= strcmp(k, keys[j]) == 0;
        if (!known) {
            const char *close = agon_suggest(k, keys);
            return node_error(agon_node_at(root, i), AGON_ECONFIG,
                              "unknown key '%s'%s%s%s; a sweep file has experiment, out, set, "
                              "grid, zip, seeds, random, slurm and description",
                              k, close ? " (did you mean '" : "", close ? close : "",
                              close ? "'?)" : "");
        }
    }
    agon_error err = {0};
    const char *experiment = NULL, *out = NULL, *description = NULL;
    if (agon_cfg_require_string(root, "experiment", &experiment, &err) != 0 ||
        agon_cfg_opt_string(root, "out", NULL, &out, &err) != 0 ||
        agon_cfg_opt_string(root, "description", "", &description, &err) != 0) {
        if (!agon_node_get(root, "experiment"))
            fprintf(stderr, "%s: experiment: missing; name the experiment file the runs start "
                            "from, e.g. experiment: ../ring8.yaml\n",
                    sw->file);
        else
            fprintf(stderr, "%s\n", err.message);
        return AGON_ECONFIG;
    }
    /* The experiment is relative to the sweep file, like `base:`. */
    char joined[PATH_MAX];
    const char *slash = strrchr(sw->file, '/');
    if (experiment[0] == '/' || !slash)
        snprintf(joined, sizeof joined, "%s", experiment);
    else
        snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - sw->file), sw->file, experiment);
    if (!realpath(joined, sw->experiment))
        return node_error(agon_node_get(root, "experiment"), AGON_EIO,
                          "cannot open '%s': %s; the path is relative to the sweep file", joined,
                          strerror(errno));

    /* The folder of the runs: -o, else out:, else runs/<sweep name>. */
    char out_dir[PATH_MAX];
    if (out_flag) {
        snprintf(out_dir, sizeof out_dir, "%s", out_flag);
    } else if (out && out[0]) {
        snprintf(out_dir, sizeof out_dir, "%s", out);
    } else {
        const char *base = slash ? slash + 1 : sw->file;
        size_t n = strlen(base);
        if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
            n -= 5;
        else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
            n -= 4;
        snprintf(out_dir, sizeof out_dir, "runs/%.*s", (int)n, base);
    }
    /* The folder's path goes into the job script.  Its other sources, -o
     * and the file's name, are checked with the command line; here the
     * out: value, then the current directory a relative path is under,
     * before anything is made in it. */
    if (sw->slurm && !out_flag && out && out[0]) {
        int rc = refuse_control(out, agon_node_get(root, "out"), "out");
        if (rc)
            return rc;
    }
    char cwd_now[PATH_MAX];
    if (sw->slurm && out_dir[0] != '/' && getcwd(cwd_now, sizeof cwd_now) &&
        control_char(cwd_now))
        return refuse_folder_path(out_dir, cwd_now);
    /* A dry run creates nothing: a folder that does not exist yet holds no
     * runs, and its name is only made absolute. */
    int e = create_out ? make_dirs(out_dir) : 0;
    if (e != 0) {
        fprintf(stderr, "%s: cannot create the sweep's folder: %s; choose another with -o DIR\n",
                out_dir, strerror(e));
        return AGON_EIO;
    }
    if (!realpath(out_dir, sw->out)) {
        int why = errno;
        char cwd[PATH_MAX] = "";
        bool absent = !create_out && why == ENOENT;
        if (absent && out_dir[0] != '/' && !getcwd(cwd, sizeof cwd))
            why = errno, absent = false;
        if (!absent) {
            fprintf(stderr, "%s: %s\n", out_dir, strerror(why));
            return AGON_EIO;
        }
        int w = out_dir[0] == '/' ? snprintf(sw->out, sizeof sw->out, "%s", out_dir)
                                  : snprintf(sw->out, sizeof sw->out, "%s/%s", cwd, out_dir);
        if (w < 0 || w >= (int)sizeof sw->out)
            sw->out[0] = '\0';
    }
    if (!sw->out[0] || strlen(sw->out) > PATH_MAX - 128) {
        fprintf(stderr, "%s: the folder's path is too long for the runs' file names; choose a "
                        "shorter one with -o DIR\n",
                out_dir);
        return AGON_EUSAGE;
    }
    /* Where a symbolic link in the path leads. */
    if (sw->slurm && control_char(sw->out))
        return refuse_folder_path(out_dir, sw->out);

    const agon_node *set = agon_node_get(root, "set");
    if (set) {
        if (agon_node_kind_of(set) != AGON_NODE_MAP)
            return node_error(set, AGON_ECONFIG,
                              "expected a map of config key paths to values, e.g. "
                              "train.steps: 2000");
        for (size_t i = 0; i < agon_node_len(set); i++) {
            const char *key = agon_node_key_at(set, i);
            if (!is_dotted_path(key))
                return node_error(agon_node_at(set, i), AGON_ECONFIG,
                                  "'%s' is not a config key path such as train.steps", key);
            int rc = add_common(sw, make_set(key, agon_node_at(set, i)), agon_node_at(set, i));
            if (rc)
                return rc;
        }
    }
    for (size_t i = 0; i < n_cli_sets; i++) {
        int rc = add_common(sw, strdup(cli_sets[i]), NULL);
        if (rc)
            return rc;
    }

    int rc = 0;
    const agon_node *n;
    if ((n = agon_node_get(root, "grid")) != NULL)
        rc = parse_grid(sw, n);
    if (rc == 0 && (n = agon_node_get(root, "zip")) != NULL) {
        if (agon_node_kind_of(n) == AGON_NODE_SEQ) {
            for (size_t i = 0; rc == 0 && i < agon_node_len(n); i++)
                rc = parse_zip_group(sw, agon_node_at(n, i));
        } else {
            rc = parse_zip_group(sw, n);
        }
    }
    if (rc == 0 && (n = agon_node_get(root, "random")) != NULL)
        rc = parse_random(sw, n);
    /* Seeds last: a group's seeds are neighbours in the run order. */
    if (rc == 0 && (n = agon_node_get(root, "seeds")) != NULL)
        rc = parse_seeds(sw, n);
    if (rc == 0 && (n = agon_node_get(root, "slurm")) != NULL)
        rc = parse_slurm(sw, n);
    else if (rc == 0)
        sw->cpus = 1;
    return rc;
}

/* A --set override of the experiment is positioned "--set:K:1: ..."; in a
 * sweep the K-th override is a value of the sweep file, so the message is
 * given that value's position instead. */
static void print_run_diag(const run *r, const char *msg)
{
    int k = 0, used = 0;
    if (sscanf(msg, "--set:%d:1: %n", &k, &used) == 1 && used > 0 && k >= 1 &&
        (size_t)k <= r->n_sets) {
        const agon_node *origin = r->sets[k - 1].origin;
        if (origin)
            fprintf(stderr, "%s:%d:%d: %s (run %s)\n", agon_node_file(origin),
                    agon_node_line(origin), agon_node_col(origin), msg + used,
                    r->label[0] ? r->label : "without overrides");
        else
            fprintf(stderr, "--set %s: %s\n", r->sets[k - 1].set, msg + used);
        return;
    }
    fprintf(stderr, "%s\n", msg);
}

/* Builds every run (the product of the axes), resolves its config and
 * names it by its run id.  Every invalid run is reported; none starts. */
static int build_runs(sweep *sw, agon_registry *reg)
{
    size_t total = 1;
    for (size_t a = 0; a < sw->n_axes; a++) {
        if (sw->axes[a].n > MAX_RUNS / total) {
            fprintf(stderr, "%s: the axes make more than %d runs; split the sweep\n", sw->file,
                    MAX_RUNS);
            return AGON_ECONFIG;
        }
        total *= sw->axes[a].n;
    }
    sw->runs = calloc(total, sizeof *sw->runs);
    if (!sw->runs)
        return AGON_ENOMEM;
    size_t *digit = calloc(sw->n_axes + 1, sizeof *digit);
    const char **sets = NULL;
    if (!digit)
        return AGON_ENOMEM;
    int status = 0;
    for (size_t i = 0; i < total; i++) {
        /* Mixed-radix counter, the last axis fastest. */
        size_t rem = i;
        for (size_t a = sw->n_axes; a-- > 0;) {
            digit[a] = rem % sw->axes[a].n;
            rem /= sw->axes[a].n;
        }
        run *r = &sw->runs[sw->n_runs];
        size_t n = sw->n_common;
        for (size_t a = 0; a < sw->n_axes; a++)
            n += sw->axes[a].points[digit[a]].n;
        r->sets = malloc(n * sizeof *r->sets);
        if (!r->sets) {
            status = AGON_ENOMEM;
            break;
        }
        sbuf label = {0};
        for (size_t k = 0; k < sw->n_common; k++)
            r->sets[r->n_sets++] = sw->common[k];
        for (size_t a = 0; a < sw->n_axes; a++) {
            const point *pt = &sw->axes[a].points[digit[a]];
            for (size_t k = 0; k < pt->n; k++) {
                r->sets[r->n_sets++] = pt->a[k];
                sb_printf(&label, "%s%s", label.len ? " " : "", pt->a[k].set);
            }
        }
        r->label = sb_take(&label);
        if (!r->label) {
            status = AGON_ENOMEM;
            break;
        }
        const char **s = realloc(sets, (r->n_sets ? r->n_sets : 1) * sizeof *s);
        if (!s) {
            status = AGON_ENOMEM;
            break;
        }
        sets = s;
        for (size_t k = 0; k < r->n_sets; k++)
            sets[k] = r->sets[k].set;
        agon_diag diag;
        agon_diag_init(&diag);
        agon_experiment *exp =
            agon_experiment_load(reg, sw->experiment, sets, r->n_sets, false, &diag);
        if (!exp) {
            for (size_t k = 0; k < diag.count; k++)
                print_run_diag(r, diag.messages[k]);
            if (!status)
                status = diag.code ? diag.code : AGON_ECONFIG;
            agon_diag_fini(&diag);
            sw->n_runs++;
            continue;
        }
        agon_diag_fini(&diag);
        memcpy(r->id, agon_experiment_run_id(exp), 17);
        agon_experiment_destroy(exp);
        /* Two points that resolve to one config are one run. */
        bool dup = false;
        for (size_t k = 0; k < sw->n_runs && !dup; k++)
            dup = strcmp(sw->runs[k].id, r->id) == 0;
        if (dup) {
            free(r->sets);
            free(r->label);
            memset(r, 0, sizeof *r);
            sw->duplicates++;
            continue;
        }
        sw->n_runs++;
    }
    free(digit);
    free(sets);
    return status;
}

/* The resolved experiment with the common settings only, the base every
 * run's config differs from by its axes' keys (agon report diffs
 * against it). */
static int write_base(const sweep *sw, agon_registry *reg)
{
    const char **sets = malloc((sw->n_common ? sw->n_common : 1) * sizeof *sets);
    if (!sets)
        return AGON_ENOMEM;
    for (size_t k = 0; k < sw->n_common; k++)
        sets[k] = sw->common[k].set;
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(reg, sw->experiment, sets, sw->n_common, false,
                                                &diag);
    free(sets);
    int rc = 0;
    if (!exp) {
        for (size_t k = 0; k < diag.count; k++)
            fprintf(stderr, "%s\n", diag.messages[k]);
        rc = diag.code ? diag.code : AGON_ECONFIG;
    } else {
        char path[PATH_MAX];
        out_path(sw, "base.yaml", path, sizeof path);
        int e = write_file_atomic(path, agon_experiment_yaml(exp));
        if (e) {
            fprintf(stderr, "%s: cannot write: %s; make the sweep's folder writable or choose "
                            "another with -o DIR\n",
                    path, strerror(e));
            rc = AGON_EIO;
        }
        agon_experiment_destroy(exp);
    }
    agon_diag_fini(&diag);
    return rc;
}

static void sweep_fini(sweep *sw)
{
    for (size_t i = 0; i < sw->n_runs; i++) {
        free(sw->runs[i].sets);
        free(sw->runs[i].label);
    }
    free(sw->runs);
    for (size_t a = 0; a < sw->n_axes; a++) {
        for (size_t p = 0; p < sw->axes[a].n; p++) {
            for (size_t k = 0; k < sw->axes[a].points[p].n; k++)
                free(sw->axes[a].points[p].a[k].set);
            free(sw->axes[a].points[p].a);
        }
        free(sw->axes[a].points);
    }
    free(sw->axes);
    for (size_t k = 0; k < sw->n_common; k++)
        free(sw->common[k].set);
    free(sw->common);
    agon_config_destroy(sw->cfg);
}

/* ---- the state of a run, from its files --------------------------------- */

/* parse_sweep keeps the folder's name short enough for every file name
 * below to fit. */
static void out_path(const sweep *sw, const char *name, char *buf, size_t cap)
{
    if (snprintf(buf, cap, "%s/%s", sw->out, name) >= (int)cap)
        buf[0] = '\0';
}

static void run_path(const sweep *sw, const run *r, const char *ext, char *buf, size_t cap)
{
    if (snprintf(buf, cap, "%s/%s.%s", sw->out, r->id, ext) >= (int)cap)
        buf[0] = '\0';
}

/* The shell-style exit status of the run's last process (128 + N for
 * signal N), or -1 when there is no record. */
static int read_exit_record(const sweep *sw, const run *r)
{
    char path[PATH_MAX];
    run_path(sw, r, "exit", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int code = -1;
    if (fscanf(f, "%d", &code) != 1)
        code = -1;
    fclose(f);
    return code;
}

static void describe_exit(int code, char *buf, size_t cap)
{
    if (code > 128 && code < 128 + 65)
        snprintf(buf, cap, "killed by signal %d (%s)", code - 128, strsignal(code - 128));
    else
        snprintf(buf, cap, "exit code %d", code);
}

/* A signal that stops a run the way Ctrl-C does: its log holds a
 * checkpoint to resume from.  Any other death is a crash. */
static bool is_stop_signal(int code)
{
    int sig = code - 128;
    return code > 128 && (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGKILL);
}

/* `slurm_busy` (may be NULL): per run, 1 queued, 2 running in Slurm. */
static void classify(const sweep *sw, run *r, const unsigned char *slurm_busy, size_t index)
{
    char h5[PATH_MAX];
    run_path(sw, r, "h5", h5, sizeof h5);
    r->detail[0] = '\0';
    r->resume_force = false;
    if (slurm_busy && slurm_busy[index]) {
        r->state = slurm_busy[index] == 1 ? ST_QUEUED : ST_RUNNING;
        return;
    }
    int exit_code = read_exit_record(sw, r);
    if (access(h5, F_OK) != 0) {
        if (exit_code > 0) {
            r->state = ST_FAILED;
            describe_exit(exit_code, r->detail, sizeof r->detail);
        } else {
            r->state = ST_PENDING;
        }
        return;
    }
    /* The empty claim of a run killed during setup is nothing yet; one
     * still held is a run setting up (see agon_log_path_state_of). */
    agon_log_path_state at_path = agon_log_path_state_of(h5);
    if (at_path == AGON_LOG_PATH_STALE_CLAIM) {
        r->state = ST_PENDING;
        return;
    }
    if (at_path == AGON_LOG_PATH_SETTING_UP) {
        r->state = ST_RUNNING;
        snprintf(r->detail, sizeof r->detail, "setting up");
        return;
    }
    agon_log_summary sum;
    agon_error err = {0};
    if (agon_log_summarize(h5, &sum, &err) != 0) {
        r->state = ST_FAILED;
        snprintf(r->detail, sizeof r->detail, "its log cannot be read: %.400s", err.message);
        return;
    }
    free(sum.config);
    if (strcmp(sum.status, "completed") == 0) {
        r->state = ST_COMPLETED;
    } else if (strcmp(sum.status, "diverged") == 0) {
        r->state = ST_DIVERGED;
    } else if (strcmp(sum.status, "interrupted") == 0) {
        r->state = ST_INTERRUPTED;
        snprintf(r->detail, sizeof r->detail, "stopped after step %lld",
                 (long long)sum.steps_done);
    } else if (strcmp(sum.status, "running") == 0) {
        char here[256] = {0};
        gethostname(here, sizeof here - 1);
        bool same_host = strcmp(here, sum.host) == 0;
        if (exit_code >= 0 && !is_stop_signal(exit_code)) {
            /* Its exit record says the writer ended: a log it left on
             * another host may be replaced (--writer-gone). */
            r->state = ST_FAILED;
            r->resume_force = !same_host;
            describe_exit(exit_code, r->detail, sizeof r->detail);
        } else if (exit_code < 0 && same_host && sum.pid > 0 &&
                   (kill((pid_t)sum.pid, 0) == 0 || errno == EPERM)) {
            r->state = ST_RUNNING;
            snprintf(r->detail, sizeof r->detail, "pid %lld", (long long)sum.pid);
        } else if (exit_code < 0 && !same_host && !slurm_busy) {
            /* Without Slurm's view, a writer on another host may well be
             * alive: leave it alone. */
            r->state = ST_RUNNING;
            snprintf(r->detail, sizeof r->detail, "on host %s (pid %lld)", sum.host,
                     (long long)sum.pid);
        } else {
            r->state = ST_INTERRUPTED;
            r->resume_force = !same_host;
            snprintf(r->detail, sizeof r->detail, "its writer is gone");
        }
    } else {
        r->state = ST_FAILED;
        snprintf(r->detail, sizeof r->detail, "status %s", sum.status);
    }
}

/* The command line of a run's next attempt: a resume for a stopped run, a
 * fresh start otherwise (replacing a failed log, never a completed one,
 * which is never started again). */
static char **run_argv(const sweep *sw, const run *r, const char *self,
                       const char *const *plugin_dirs, size_t n_plugin_dirs)
{
    size_t cap = 16 + 2 * r->n_sets + 2 * n_plugin_dirs;
    char **argv = calloc(cap, sizeof *argv);
    if (!argv)
        return NULL;
    char h5[PATH_MAX];
    run_path(sw, r, "h5", h5, sizeof h5);
    size_t n = 0;
    argv[n++] = strdup(self);
    argv[n++] = strdup("run");
    if (r->state == ST_INTERRUPTED) {
        argv[n++] = strdup("--resume");
        argv[n++] = strdup(h5);
        /* Only the writer's host is let pass: other kernels or plugin
         * files than the log recorded still stop the resume. */
        if (r->resume_force)
            argv[n++] = strdup("--writer-gone");
    } else {
        argv[n++] = strdup(sw->experiment);
        for (size_t k = 0; k < r->n_sets; k++) {
            argv[n++] = strdup("--set");
            argv[n++] = strdup(r->sets[k].set);
        }
        argv[n++] = strdup("-o");
        argv[n++] = strdup(h5);
        if (r->state != ST_PENDING)
            argv[n++] = strdup("--overwrite");
        if (r->state != ST_PENDING && r->resume_force)
            argv[n++] = strdup("--writer-gone");
    }
    for (size_t k = 0; k < n_plugin_dirs; k++) {
        argv[n++] = strdup("--plugin-path");
        argv[n++] = strdup(plugin_dirs[k]);
    }
    argv[n++] = strdup("--progress");
    argv[n++] = strdup("plain");
    for (size_t k = 0; k < n; k++) {
        if (!argv[k]) {
            for (size_t j = 0; j < n; j++)
                free(argv[j]);
            free(argv);
            return NULL;
        }
    }
    return argv;
}

static void free_argv(char **argv)
{
    if (!argv)
        return;
    for (size_t k = 0; argv[k]; k++)
        free(argv[k]);
    free(argv);
}

static bool needs_run(run_state s)
{
    return s == ST_PENDING || s == ST_INTERRUPTED || s == ST_FAILED;
}

/* ---- the local backend -------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

typedef struct tally {
    size_t completed, diverged, failed, interrupted, running, left;
} tally;

static void write_exit_record(const sweep *sw, const run *r, int code)
{
    char path[PATH_MAX], text[32];
    run_path(sw, r, "exit", path, sizeof path);
    snprintf(text, sizeof text, "%d\n", code);
    write_file_atomic(path, text);
}

/* The last line the run wrote to its .err since `offset` that is neither
 * a progress line nor the closing "PATH: STATUS, N steps in S s": its own
 * one-line error. */
static void last_error_line(const sweep *sw, const run *r, char *buf, size_t cap)
{
    buf[0] = '\0';
    char path[PATH_MAX];
    run_path(sw, r, "err", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, r->err_offset, SEEK_SET) == 0) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            if (line[0] && strncmp(line, "step ", 5) != 0 && !strstr(line, " steps in "))
                snprintf(buf, cap, "%.*s", (int)cap - 1, line);
        }
    }
    fclose(f);
}

static pid_t start_child(const sweep *sw, run *r, char **argv)
{
    char err_path[PATH_MAX], exit_path[PATH_MAX];
    run_path(sw, r, "err", err_path, sizeof err_path);
    run_path(sw, r, "exit", exit_path, sizeof exit_path);
    unlink(exit_path);
    int fd = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(r->detail, sizeof r->detail, "cannot open %.300s: %s", err_path, strerror(errno));
        return -1;
    }
    struct stat st;
    r->err_offset = fstat(fd, &st) == 0 ? (long)st.st_size : 0;
    /* A header per attempt: the file keeps the history of the run. */
    char stamp[32];
    utc_stamp(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ");
    sbuf head = {0};
    sb_printf(&head, "---- %s agon sweep:", stamp);
    for (size_t k = 0; argv[k]; k++)
        sb_printf(&head, " %s", argv[k]);
    sb_printf(&head, "\n");
    if (!head.oom && head.s && write(fd, head.s, head.len) < 0)
        head.oom = true;
    free(head.s);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->detail, sizeof r->detail, "cannot start a process: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        /* Its own process group: Ctrl-C reaches the sweep, which stops the
         * runs itself; and if the sweep dies, the run is stopped cleanly. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(128 + SIGTERM);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        /* One BLAS thread per run, the runs being the parallelism, unless
         * the environment says otherwise. */
        setenv("OPENBLAS_NUM_THREADS", "1", 0);
        execv(argv[0], argv);
        dprintf(STDERR_FILENO, "agon sweep: cannot start %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    return pid;
}

static void print_status_line(const tally *t, size_t total, double elapsed, size_t finished_now,
                              int jobs, bool tty)
{
    char eta[32] = "?";
    size_t todo = t->left + t->running;
    if (finished_now > 0 && todo > 0) {
        double per_run = elapsed * (double)jobs / (double)finished_now;
        format_duration(eta, sizeof eta, per_run * (double)todo / (double)jobs);
    } else if (todo == 0) {
        snprintf(eta, sizeof eta, "0s");
    }
    printf("%s[sweep] %zu/%zu done, %zu running, %zu failed, %zu left, ETA %s%s",
           tty ? "\r\033[K" : "", t->completed + t->diverged, total, t->running, t->failed,
           t->left, eta, tty ? "" : "\n");
    fflush(stdout);
}

static void count_states(const sweep *sw, tally *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < sw->n_runs; i++) {
        switch (sw->runs[i].state) {
        case ST_COMPLETED: t->completed++; break;
        case ST_DIVERGED: t->diverged++; break;
        case ST_FAILED: t->failed++; break;
        case ST_INTERRUPTED: t->interrupted++; break;
        case ST_RUNNING:
        case ST_QUEUED: t->running++; break;
        case ST_PENDING: t->left++; break;
        }
    }
}

/* Runs every run that needs it, `jobs` at a time.  Returns 0, AGON_ERUNS
 * when some failed, or AGON_EINTERRUPTED after a stop signal. */
static int run_local(sweep *sw, int jobs, const char *self, const char *const *plugin_dirs,
                     size_t n_plugin_dirs)
{
    /* Which runs this launch starts; the others keep their state. */
    size_t *todo = malloc((sw->n_runs ? sw->n_runs : 1) * sizeof *todo);
    if (!todo)
        return AGON_ENOMEM;
    size_t n_todo = 0;
    for (size_t i = 0; i < sw->n_runs; i++) {
        if (needs_run(sw->runs[i].state))
            todo[n_todo++] = i;
    }
    struct sigaction sa, old_int, old_term, old_hup;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);

    bool tty = isatty(STDOUT_FILENO);
    double t0 = now_seconds(), last_line = -1e9, stop_sent = 0;
    size_t next = 0, running = 0, finished_now = 0;
    bool changed = true;
    int rc = 0;
    for (;;) {
        if (stop_signal && stop_sent == 0) {
            stop_sent = now_seconds();
            for (size_t k = 0; k < next; k++) {
                run *r = &sw->runs[todo[k]];
                if (r->pid > 0)
                    kill(r->pid, SIGINT);
            }
        }
        /* A run that does not stop within two minutes of Ctrl-C is killed;
         * its log stays resumable from its last checkpoint. */
        if (stop_sent > 0 && now_seconds() - stop_sent > 120) {
            for (size_t k = 0; k < next; k++) {
                if (sw->runs[todo[k]].pid > 0)
                    kill(sw->runs[todo[k]].pid, SIGKILL);
            }
        }
        while (!stop_signal && running < (size_t)jobs && next < n_todo) {
            run *r = &sw->runs[todo[next++]];
            char **argv = run_argv(sw, r, self, plugin_dirs, n_plugin_dirs);
            pid_t pid = argv ? start_child(sw, r, argv) : -1;
            free_argv(argv);
            if (pid < 0) {
                r->state = ST_FAILED;
                if (!r->detail[0])
                    snprintf(r->detail, sizeof r->detail, "out of memory");
                continue;
            }
            r->pid = pid;
            r->started = now_seconds();
            r->state = ST_RUNNING;
            running++;
        }
        if (changed || (tty && now_seconds() - last_line > 1.0) ||
            (!tty && now_seconds() - last_line > 60.0)) {
            tally t;
            count_states(sw, &t);
            print_status_line(&t, sw->n_runs, now_seconds() - t0, finished_now, jobs, tty);
            last_line = now_seconds();
            changed = false;
        }
        int status;
        pid_t done;
        while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
            run *r = NULL;
            for (size_t k = 0; k < next && !r; k++) {
                if (sw->runs[todo[k]].pid == done)
                    r = &sw->runs[todo[k]];
            }
            if (!r)
                continue;
            int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            write_exit_record(sw, r, code);
            r->pid = 0;
            running--;
            finished_now++;
            classify(sw, r, NULL, 0);
            if (r->state == ST_FAILED || r->state == ST_INTERRUPTED) {
                char why[512];
                last_error_line(sw, r, why, sizeof why);
                if (code > 128 && !is_stop_signal(code))
                    describe_exit(code, r->detail, sizeof r->detail);
                else if (why[0])
                    snprintf(r->detail, sizeof r->detail, "%s", why);
                if (r->state == ST_INTERRUPTED && !stop_signal)
                    r->state = ST_FAILED;
            }
            if (tty)
                printf("\r\033[K");
            printf("%-11s %s  %s  (%.1f s)%s%s\n", state_names[r->state], r->id, r->label,
                   now_seconds() - r->started, r->detail[0] ? "  " : "", r->detail);
            changed = true;
        }
        if (running == 0 && (next == n_todo || stop_signal))
            break;
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    if (tty)
        printf("\r\033[K");
    fflush(stdout);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    free(todo);
    if (stop_signal)
        rc = AGON_EINTERRUPTED;
    return rc;
}

/* ---- the Slurm backend -------------------------------------------------- */

static void shell_quote(sbuf *b, const char *s)
{
    sb_printf(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_printf(b, "'\\''");
        else
            sb_printf(b, "%c", *p);
    }
    sb_printf(b, "'");
}

/* "#SBATCH --OPTION=VALUE" for a value of agon's, as sbatch reads it
 * back: sbatch splits those lines at blanks, takes quotes and backslashes
 * as a shell does and ends them at an unquoted #, so a value holding any
 * of these is written in double quotes with " and \ escaped.  (A control
 * character never gets here: it is refused.) */
static void sbatch_line(sbuf *b, const char *option, const char *value)
{
    sb_printf(b, "#SBATCH --%s=", option);
    if (!value[strcspn(value, " \"'\\#")]) {
        sb_printf(b, "%s\n", value);
        return;
    }
    sb_printf(b, "\"");
    for (const char *p = value; *p; p++)
        sb_printf(b, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    sb_printf(b, "\"\n");
}

/* Runs `command` through the shell and returns its output (malloc'ed), or
 * NULL when it cannot be started; *exit_code gets its exit status. */
static char *capture(const char *command, int *exit_code)
{
    FILE *p = popen(command, "r");
    if (!p)
        return NULL;
    sbuf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk - 1, p)) > 0) {
        chunk[got] = '\0';
        sb_printf(&b, "%s", chunk);
    }
    int st = pclose(p);
    *exit_code = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return sb_take(&b);
}

/* The submissions of this sweep folder: job id, task index, run id. */
typedef struct submission {
    long long job;
    long index;
    char id[17];
} submission;

static size_t read_submissions(const sweep *sw, submission **out)
{
    *out = NULL;
    char path[PATH_MAX];
    out_path(sw, "slurm/jobs.tsv", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = 0, cap = 0;
    submission s;
    while (fscanf(f, "%lld %ld %16s", &s.job, &s.index, s.id) == 3) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            submission *g = realloc(*out, cap * sizeof *g);
            if (!g)
                break;
            *out = g;
        }
        (*out)[n++] = s;
    }
    fclose(f);
    return n;
}

/* Marks, per run, whether Slurm still holds its task (1 queued, 2
 * running), from squeue: without slurmdbd, sacct knows nothing, and a
 * task's own files are the record of how it ended.  Returns 0, or
 * AGON_EIO when squeue cannot be run. */
static int slurm_busy_runs(const sweep *sw, unsigned char *busy)
{
    memset(busy, 0, sw->n_runs ? sw->n_runs : 1);
    submission *subs;
    size_t n = read_submissions(sw, &subs);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = subs[j].job == subs[i].job;
        if (seen)
            continue;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "squeue -h -r -j %lld -o '%%K %%T' 2>/dev/null", subs[i].job);
        int code;
        char *text = capture(cmd, &code);
        if (!text || code == 127) {
            fprintf(stderr, "agon sweep: cannot run squeue; is Slurm's client (slurm-client) "
                            "installed and SLURM_CONF set?\n");
            free(text);
            rc = AGON_EIO;
            break;
        }
        /* squeue fails for a job it no longer knows: nothing is queued. */
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            long index;
            char state[64];
            if (sscanf(line, "%ld %63s", &index, state) != 2)
                continue;
            for (size_t k = 0; k < n; k++) {
                if (subs[k].job != subs[i].job || subs[k].index != index)
                    continue;
                for (size_t r = 0; r < sw->n_runs; r++) {
                    if (strcmp(sw->runs[r].id, subs[k].id) == 0)
                        busy[r] = strcmp(state, "PENDING") == 0 ? 1 : 2;
                }
            }
        }
        free(text);
    }
    free(subs);
    return rc;
}

/* Writes the job-array script for the runs in `todo` and submits it;
 * appends the tasks to slurm/jobs.tsv.  Returns 0 or an agon status after
 * one line on stderr. */
static int slurm_submit(sweep *sw, const size_t *todo, size_t n_todo, const char *self,
                        const char *const *plugin_dirs, size_t n_plugin_dirs, long long *job)
{
    char dir[PATH_MAX], script[PATH_MAX], stamp[32];
    out_path(sw, "slurm", dir, sizeof dir);
    int e = make_dirs(dir);
    if (e) {
        fprintf(stderr, "%s: cannot create: %s\n", dir, strerror(e));
        return AGON_EIO;
    }
    utc_stamp(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ");
    char name[96];
    snprintf(name, sizeof name, "slurm/array-%s-%ld.sh", stamp, (long)getpid());
    out_path(sw, name, script, sizeof script);
    const char *slash = strrchr(sw->file, '/');
    sbuf b = {0};
    sb_printf(&b, "#!/bin/bash\n");
    /* Every value on a comment or #SBATCH line has no control character
     * (parse_slurm, parse_sweep and the command line refuse them), so
     * none can start a line of its own; the values of the shell lines
     * below are single-quoted words. */
    sb_printf(&b, "# agon sweep %s: %zu runs, one task each.\n", sw->file, n_todo);
    char *job_name = sw->job_name ? strdup(sw->job_name)
                                  : xprintf("agon-%s", slash ? slash + 1 : sw->file);
    /* A % in the folder's path is literal in sbatch's file name pattern. */
    sbuf output = {0};
    for (const char *p = dir; *p; p++)
        sb_printf(&output, *p == '%' ? "%%%%" : "%c", *p);
    sb_printf(&output, "/%%A_%%a.out");
    char *output_pattern = sb_take(&output);
    if (!job_name || !output_pattern) {
        free(job_name);
        free(output_pattern);
        free(b.s);
        return AGON_ENOMEM;
    }
    sbatch_line(&b, "job-name", job_name);
    sb_printf(&b, "#SBATCH --array=0-%zu", n_todo - 1);
    if (sw->throttle > 0)
        sb_printf(&b, "%%%lld", (long long)sw->throttle);
    sb_printf(&b, "\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=%lld\n", (long long)sw->cpus);
    sbatch_line(&b, "output", output_pattern);
    free(job_name);
    free(output_pattern);
    if (sw->partition)
        sbatch_line(&b, "partition", sw->partition);
    if (sw->time_limit)
        sbatch_line(&b, "time", sw->time_limit);
    for (size_t k = 0; k < sw->n_sbatch_extra; k++) {
        const char *x = sw->sbatch_extra[k];
        sb_printf(&b, "%s%s\n", strncmp(x, "#SBATCH", 7) == 0 ? "" : "#SBATCH ", x);
    }
    sb_printf(&b, "\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (size_t k = 0; k < n_todo; k++) {
        run *r = &sw->runs[todo[k]];
        char **argv = run_argv(sw, r, self, plugin_dirs, n_plugin_dirs);
        if (!argv) {
            free(b.s);
            return AGON_ENOMEM;
        }
        sb_printf(&b, "%zu) id=%s; set --", k, r->id);
        for (size_t j = 1; argv[j]; j++) {
            sb_printf(&b, " ");
            shell_quote(&b, argv[j]);
        }
        sb_printf(&b, " ;;\n");
        free_argv(argv);
    }
    sb_printf(&b, "*) echo \"agon sweep: no run for task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\n"
                  "esac\n");
    sb_printf(&b, "out=");
    shell_quote(&b, sw->out);
    sb_printf(&b, "\nrm -f \"$out/$id.exit\"\n");
    sb_printf(&b, "export OPENBLAS_NUM_THREADS=\"${OPENBLAS_NUM_THREADS:-1}\"\n");
    sb_printf(&b, "echo \"---- $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) agon sweep: Slurm task "
                  "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)\" >> "
                  "\"$out/$id.err\"\n");
    shell_quote(&b, self);
    sb_printf(&b, " \"$@\" >> \"$out/$id.err\" 2>&1\n");
    sb_printf(&b, "code=$?\n"
                  "echo \"$code\" > \"$out/$id.exit.$$\" && mv \"$out/$id.exit.$$\" "
                  "\"$out/$id.exit\"\n"
                  "exit \"$code\"\n");
    char *text = sb_take(&b);
    if (!text)
        return AGON_ENOMEM;
    e = write_file_atomic(script, text);
    free(text);
    if (e || chmod(script, 0755) != 0) {
        fprintf(stderr, "%s: cannot write the job script: %s\n", script, strerror(e ? e : errno));
        return AGON_EIO;
    }
    sbuf cmd = {0};
    sb_printf(&cmd, "sbatch --parsable ");
    shell_quote(&cmd, script);
    char *command = sb_take(&cmd);
    if (!command)
        return AGON_ENOMEM;
    int code;
    char *reply = capture(command, &code);
    free(command);
    *job = reply ? atoll(reply) : 0;
    free(reply);
    if (code != 0 || *job <= 0) {
        fprintf(stderr, "agon sweep: sbatch %s failed (%s %d); see its message above%s\n", script,
                code == 127 ? "command not found, exit" : "exit", code,
                code == 127 ? "; install Slurm's client (slurm-client)" : "");
        return AGON_EIO;
    }
    char tsv[PATH_MAX];
    out_path(sw, "slurm/jobs.tsv", tsv, sizeof tsv);
    FILE *f = fopen(tsv, "a");
    if (!f) {
        fprintf(stderr, "%s: cannot record job %lld: %s\n", tsv, *job, strerror(errno));
        return AGON_EIO;
    }
    for (size_t k = 0; k < n_todo; k++)
        fprintf(f, "%lld\t%zu\t%s\n", *job, k, sw->runs[todo[k]].id);
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: cannot record job %lld: %s\n", tsv, *job, strerror(errno));
        return AGON_EIO;
    }
    return 0;
}

/* Why Slurm ended the task of a run that left no record of its own
 * (cancelled while queued, time limit before start): from `scontrol show
 * job`, which remembers finished jobs for MinJobAge seconds. */
static void slurm_task_outcome(const sweep *sw, run *r)
{
    submission *subs;
    size_t n = read_submissions(sw, &subs);
    for (size_t i = n; i-- > 0;) {
        if (strcmp(subs[i].id, r->id) != 0)
            continue;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "scontrol -o show job %lld 2>/dev/null", subs[i].job);
        int code;
        char *text = capture(cmd, &code);
        char want[64];
        snprintf(want, sizeof want, "ArrayTaskId=%ld ", subs[i].index);
        char *save = NULL;
        for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            char *state = strstr(line, "JobState=");
            if (!strstr(line, want) || !state)
                continue;
            snprintf(r->detail, sizeof r->detail, "Slurm task %lld_%ld: %.*s", subs[i].job,
                     subs[i].index, (int)strcspn(state, " "), state);
        }
        free(text);
        break;
    }
    free(subs);
}

/* ---- the command -------------------------------------------------------- */

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon sweep: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see agon sweep --help)\n");
    return AGON_EUSAGE;
}

static const char sweep_help[] =
    "usage: agon sweep SWEEP.yaml [-j N] [-o DIR] [--set KEY.PATH=VALUE]... [--dry-run]\n"
    "       agon sweep SWEEP.yaml --backend slurm [--partition P] [--time T] [--cpus N]\n"
    "                  [--throttle N] [--sbatch OPTION]... [--wait]\n"
    "Runs the experiment of the sweep file once per combination of its axes (grid,\n"
    "zip, random, seeds); each run's log is DIR/<run id>.h5, with its output in\n"
    "DIR/<run id>.err.  Completed runs are never run again; interrupted runs are\n"
    "resumed, failed ones started over.\n"
    "  -j N            runs at once on this machine (default: the number of cores)\n"
    "  -o DIR          the sweep's folder (default: the file's out, else runs/<name>)\n"
    "  --set K=V       one more setting for every run (changes their ids)\n"
    "  --dry-run       list the runs (id, state, settings) and start nothing\n"
    "  --backend slurm submit the runs that need it as one Slurm job array\n"
    "  --wait          (slurm) wait for the sweep's tasks and report every run\n"
    "exit: 0 when every run completed or diverged, 8 when some failed, 130 on Ctrl-C\n"
    "(docs/sweep.md)\n";

int agon_cli_sweep(int argc, char **argv)
{
    const char *file = NULL, *out_flag = NULL, *out_flag_name = NULL, *backend = "local";
    const char *plugin_dirs[64];
    size_t n_plugin_dirs = 0;
    const char *sets[256];
    size_t n_sets = 0;
    long jobs = 0;
    bool dry_run = false, wait = false;
    const char *partition = NULL, *time_limit = NULL;
    long cpus = 0, throttle = -1;
    const char *sbatch[64];
    size_t n_sbatch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        bool takes = strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0 || strcmp(a, "-o") == 0 ||
                     strcmp(a, "--out") == 0 || strcmp(a, "--set") == 0 || strcmp(a, "-s") == 0 ||
                     strcmp(a, "--backend") == 0 || strcmp(a, "--plugin-path") == 0 ||
                     strcmp(a, "--partition") == 0 || strcmp(a, "--time") == 0 ||
                     strcmp(a, "--cpus") == 0 || strcmp(a, "--throttle") == 0 ||
                     strcmp(a, "--sbatch") == 0;
        if (takes) {
            if (i + 1 >= argc)
                return usage("option '%s' needs a value", a);
            v = argv[++i];
        }
        char *end;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(sweep_help, stdout);
            return 0;
        } else if (strcmp(a, "-j") == 0 || strcmp(a, "--jobs") == 0) {
            jobs = strtol(v, &end, 10);
            if (*end || jobs < 1 || jobs > 4096)
                return usage("-j takes a number of runs at once (1 to 4096), not '%s'", v);
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (!v[0])
                return usage("%s needs a folder, not an empty string", a);
            out_flag = v;
            out_flag_name = a;
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "-s") == 0) {
            if (!strchr(v, '=') || v[0] == '=')
                return usage("--set takes KEY.PATH=VALUE, not '%s'", v);
            if (n_sets == sizeof sets / sizeof sets[0])
                return usage("too many %s options", "--set");
            sets[n_sets++] = v;
        } else if (strcmp(a, "--backend") == 0) {
            if (strcmp(v, "local") != 0 && strcmp(v, "slurm") != 0)
                return usage("--backend takes local or slurm, not '%s'", v);
            backend = v;
        } else if (strcmp(a, "--plugin-path") == 0) {
            if (n_plugin_dirs == sizeof plugin_dirs / sizeof plugin_dirs[0])
                return usage("too many %s options", "--plugin-path");
            char *abs = realpath(v, NULL);
            if (!abs) {
                fprintf(stderr, "agon sweep: --plugin-path %s: %s; give an existing folder\n", v,
                        strerror(errno));
                for (size_t k = 0; k < n_plugin_dirs; k++)
                    free((char *)plugin_dirs[k]);
                return AGON_EUSAGE;
            }
            plugin_dirs[n_plugin_dirs++] = abs;
        } else if (strcmp(a, "--partition") == 0) {
            partition = v;
        } else if (strcmp(a, "--time") == 0) {
            time_limit = v;
        } else if (strcmp(a, "--cpus") == 0) {
            cpus = strtol(v, &end, 10);
            if (*end || cpus < 1)
                return usage("--cpus takes a number of CPUs per run, not '%s'", v);
        } else if (strcmp(a, "--throttle") == 0) {
            throttle = strtol(v, &end, 10);
            if (*end || throttle < 0)
                return usage("--throttle takes the most tasks at once (0: no limit), not '%s'", v);
        } else if (strcmp(a, "--sbatch") == 0) {
            if (n_sbatch == sizeof sbatch / sizeof sbatch[0])
                return usage("too many %s options", "--sbatch");
            sbatch[n_sbatch++] = v;
        } else if (strcmp(a, "--dry-run") == 0 || strcmp(a, "-n") == 0) {
            dry_run = true;
        } else if (strcmp(a, "--wait") == 0) {
            wait = true;
        } else if (a[0] == '-' && a[1]) {
            return usage("unknown option '%s'", a);
        } else if (!file) {
            file = a;
        } else {
            return usage("takes one sweep file; '%s' is a second one", a);
        }
    }
    int rc = 0;
    bool slurm = strcmp(backend, "slurm") == 0;
    if (!file)
        rc = usage("%s needs a sweep file", "sweep");
    else if (!slurm && (wait || partition || time_limit || cpus || throttle >= 0 || n_sbatch))
        rc = usage("%s applies to --backend slurm only", wait ? "--wait"
                                                           : partition ? "--partition"
                                                           : time_limit ? "--time"
                                                           : cpus ? "--cpus"
                                                           : throttle >= 0 ? "--throttle"
                                                                           : "--sbatch");
    else if (slurm && jobs)
        rc = usage("%s applies to the local backend; Slurm decides how many run at once "
                   "(limit it with --throttle)",
                   "-j");
    /* What reaches the job script's lines from the command line. */
    if (rc == 0 && slurm) {
        const char *const values[] = {file, out_flag, partition, time_limit};
        const char *const names[] = {"the sweep file's name", out_flag_name, "--partition",
                                     "--time"};
        for (size_t k = 0; rc == 0 && k < sizeof values / sizeof values[0]; k++)
            rc = refuse_control(values[k], NULL, names[k]);
        for (size_t k = 0; rc == 0 && k < n_sbatch; k++)
            rc = refuse_control(sbatch[k], NULL, "--sbatch");
    }
    if (rc) {
        for (size_t k = 0; k < n_plugin_dirs; k++)
            free((char *)plugin_dirs[k]);
        return rc;
    }
    if (jobs == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        jobs = cores > 0 ? cores : 1;
    }

    sweep sw;
    memset(&sw, 0, sizeof sw);
    sw.file = file;
    sw.slurm = slurm;
    agon_registry *reg = NULL;
    unsigned char *busy = NULL;
    size_t *todo = NULL;
    int lock_fd = -1;
    rc = parse_sweep(&sw, out_flag, !dry_run, sets, n_sets);
    /* One sweep process per folder: two would start the same runs.  The
     * lock is taken as soon as the folder exists, before anything is
     * written into it (base.yaml, slurm/), so that a refused launch leaves
     * the running sweep's files as they are.  A dry run writes nothing,
     * not even the lock. */
    if (rc == 0 && !dry_run) {
        char lock[PATH_MAX];
        out_path(&sw, ".sweep.lock", lock, sizeof lock);
        lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
            fprintf(stderr, "%s: %s; wait for the other agon sweep of this folder to end\n",
                    sw.out, lock_fd < 0 ? strerror(errno) : "another agon sweep is running here");
            rc = AGON_EIO;
        }
    }
    if (rc == 0) {
        if (partition)
            sw.partition = partition;
        if (time_limit)
            sw.time_limit = time_limit;
        if (cpus)
            sw.cpus = cpus;
        if (throttle >= 0)
            sw.throttle = throttle;
        for (size_t k = 0; k < n_sbatch && sw.n_sbatch_extra < 64; k++)
            sw.sbatch_extra[sw.n_sbatch_extra++] = sbatch[k];
        reg = agon__cli_load_registry(plugin_dirs, n_plugin_dirs);
        if (!reg)
            rc = AGON_EPLUGIN;
    }
    if (rc == 0)
        rc = build_runs(&sw, reg);
    if (rc == 0 && sw.n_runs == 0)
        rc = AGON_ECONFIG;
    if (rc == 0 && !dry_run)
        rc = write_base(&sw, reg);
    busy = calloc(sw.n_runs ? sw.n_runs : 1, 1);
    todo = malloc((sw.n_runs ? sw.n_runs : 1) * sizeof *todo);
    if (rc == 0 && (!busy || !todo))
        rc = AGON_ENOMEM;
    if (rc == 0 && slurm)
        rc = slurm_busy_runs(&sw, busy);
    for (size_t i = 0; rc == 0 && i < sw.n_runs; i++)
        classify(&sw, &sw.runs[i], slurm ? busy : NULL, i);

    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (rc == 0 && len <= 0) {
        fprintf(stderr, "agon sweep: cannot find the agon program: %s\n", strerror(errno));
        rc = AGON_EIO;
    }
    if (len > 0)
        self[len] = '\0';

    size_t n_todo = 0;
    for (size_t i = 0; rc == 0 && i < sw.n_runs; i++) {
        if (needs_run(sw.runs[i].state))
            todo[n_todo++] = i;
    }
    if (rc == 0 && sw.duplicates)
        fprintf(stderr, "%s: %zu combinations resolve to the config of another and are run once\n",
                file, sw.duplicates);
    tally before;
    if (rc == 0)
        count_states(&sw, &before);
    if (rc == 0 && dry_run) {
        for (size_t i = 0; i < sw.n_runs; i++) {
            const run *r = &sw.runs[i];
            const char *action = r->state == ST_INTERRUPTED ? ", will resume"
                                 : r->state == ST_FAILED    ? ", will start over"
                                                            : "";
            printf("%s  %-11s %s%s%s%s%s\n", r->id, state_names[r->state], r->label,
                   r->detail[0] || action[0] ? "  [" : "", r->detail, action,
                   r->detail[0] || action[0] ? "]" : "");
        }
        printf("%zu runs in %s: %zu completed, %zu diverged, %zu running, %zu to run (%zu new, "
               "%zu to resume, %zu to start over)\n",
               sw.n_runs, sw.out, before.completed, before.diverged, before.running, n_todo,
               before.left, before.interrupted, before.failed);
    } else if (rc == 0 && !slurm) {
        printf("agon sweep: %zu runs in %s: %zu already done, %zu to run on %ld processes\n",
               sw.n_runs, sw.out, before.completed + before.diverged, n_todo, jobs);
        fflush(stdout);
        double t0 = now_seconds();
        rc = run_local(&sw, (int)jobs, self, plugin_dirs, n_plugin_dirs);
        tally after;
        count_states(&sw, &after);
        for (size_t i = 0; i < sw.n_runs; i++) {
            const run *r = &sw.runs[i];
            if (r->state == ST_FAILED)
                fprintf(stderr, "%s/%s.h5: failed: %s; run %s; its output is in %s/%s.err\n",
                        sw.out, r->id, r->detail[0] ? r->detail : "no message", r->label, sw.out,
                        r->id);
        }
        char took[32];
        format_duration(took, sizeof took, now_seconds() - t0);
        printf("agon sweep: %zu runs: %zu completed, %zu diverged, %zu failed, %zu interrupted, "
               "%zu running elsewhere, %zu not started (this launch took %s)\n",
               sw.n_runs, after.completed, after.diverged, after.failed, after.interrupted,
               after.running, after.left, took);
        if (rc == AGON_EINTERRUPTED)
            fprintf(stderr, "agon sweep: interrupted; the stopped runs are marked interrupted "
                            "and resume when the same sweep is launched again\n");
        else if (rc == 0 && after.failed)
            rc = AGON_ERUNS;
    } else if (rc == 0) {
        long long job = 0;
        if (n_todo > 0) {
            rc = slurm_submit(&sw, todo, n_todo, self, plugin_dirs, n_plugin_dirs, &job);
            if (rc == 0)
                printf("agon sweep: submitted %zu of %zu runs as Slurm job array %lld (%zu "
                       "already done, %zu still queued or running)\n",
                       n_todo, sw.n_runs, job, before.completed + before.diverged, before.running);
        } else {
            printf("agon sweep: nothing to submit: %zu of %zu runs done, %zu queued or running\n",
                   before.completed + before.diverged, sw.n_runs, before.running);
        }
        fflush(stdout);
        if (rc == 0 && wait) {
            bool tty = isatty(STDOUT_FILENO);
            double delay = 0.2, last_line = -1e9;
            for (;;) {
                rc = slurm_busy_runs(&sw, busy);
                if (rc)
                    break;
                size_t active = 0;
                for (size_t i = 0; i < sw.n_runs; i++)
                    active += busy[i] != 0;
                if (active == 0)
                    break;
                if (tty || now_seconds() - last_line > 60) {
                    size_t queued = 0;
                    for (size_t i = 0; i < sw.n_runs; i++)
                        queued += busy[i] == 1;
                    printf("%s[sweep] Slurm: %zu queued, %zu running%s", tty ? "\r\033[K" : "",
                           queued, active - queued, tty ? "" : "\n");
                    fflush(stdout);
                    last_line = now_seconds();
                }
                struct timespec nap = {(time_t)delay, (long)((delay - (long)delay) * 1e9)};
                nanosleep(&nap, NULL);
                if (delay < 2.0)
                    delay *= 1.5;
            }
            if (tty)
                printf("\r\033[K");
            tally after = {0};
            if (rc == 0) {
                for (size_t i = 0; i < sw.n_runs; i++) {
                    run *r = &sw.runs[i];
                    classify(&sw, r, NULL, i);
                    /* A task that left neither a log nor an exit record
                     * ended in Slurm's hands. */
                    if (r->state == ST_PENDING)
                        slurm_task_outcome(&sw, r);
                    if (r->state == ST_PENDING)
                        r->state = ST_FAILED;
                    printf("%-11s %s  %s%s%s\n", state_names[r->state], r->id, r->label,
                           r->detail[0] ? "  " : "", r->detail);
                }
                count_states(&sw, &after);
                for (size_t i = 0; i < sw.n_runs; i++) {
                    const run *r = &sw.runs[i];
                    if (r->state == ST_FAILED)
                        fprintf(stderr,
                                "%s/%s.h5: failed: %s; run %s; its output is in %s/%s.err; "
                                "launch the sweep again to resubmit it\n",
                                sw.out, r->id, r->detail[0] ? r->detail : "no record of its end",
                                r->label, sw.out, r->id);
                }
                printf("agon sweep: %zu runs: %zu completed, %zu diverged, %zu failed, %zu "
                       "interrupted\n",
                       sw.n_runs, after.completed, after.diverged, after.failed,
                       after.interrupted + after.running);
                if (after.failed || after.interrupted || after.running)
                    rc = AGON_ERUNS;
            }
        }
    }
    if (lock_fd >= 0)
        close(lock_fd);
    free(busy);
    free(todo);
    sweep_fini(&sw);
    agon_registry_destroy(reg);
    for (size_t k = 0; k < n_plugin_dirs; k++)
        free((char *)plugin_dirs[k]);
    return rc;
}
