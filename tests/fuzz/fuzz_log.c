/* libFuzzer harness for everything that reads a run log: agon show,
 * export (--png, --csv), compare, report (core/cli_show.c, cli_export.c,
 * cli_export_csv.c, cli_compare.c, cli_report.c, cli_h5.c) and the checks
 * of `agon run --resume` (core/h5log.c's agon_log_summarize, reopening
 * and attaching, core/train.c's resume checks and checkpoint restore).
 *
 * Structure-aware: at setup the harness trains three real logs from
 * tests/experiments/tiny_ring.yaml and a tiny image experiment (a
 * completed ring run with samples, parameters and two metrics; the same
 * run resumed with --force to 40 steps and interrupted at once; a
 * conditional image run).  Their metrics have no `prepare` step, which
 * would honour the stop flag before the log is reopened.  The fuzz input
 * picks one, the commands to run, and up to 16 edits of a copy made
 * through the HDF5 API: delete or replace attributes (other types,
 * strings, arrays, null dataspaces), delete links, replace datasets (other
 * types, ranks, shapes, values), change row counts, overwrite values (NaN,
 * infinities, extremes), splice odd text into /config or replace it, put
 * groups, soft and hard links in the place of objects, and maybe cut the
 * file short.  A child process makes the edits (see make_run: libhdf5 has
 * memory errors of its own in some sequences of them), so that the
 * commands under test read the file as another program's log.  The
 * commands run through the agon program's own dispatch (core/main.c's
 * main, renamed agon_cli_main), with stdout to /dev/null and stderr
 * captured; a resume runs as `agon run --resume` does, with the stop flag
 * already set, so it goes through every check and the checkpoint restore
 * but trains no step.
 *
 * Input: byte 0 the log, byte 1 the commands (bit 0 show, 1 show
 * --no-config of two logs, 2 export --png, 3 export --csv, 4 compare,
 * 5 report, 6 resume, else 7 resume --force), byte 2 variants (compare's
 * metric and --best, export's step and --no-landscape), then edits (see
 * edit()).
 *
 * Properties checked beyond "no crash, leak or hang" (the sanitizers and
 * libFuzzer's own limits find those):
 *   - a log as agon wrote it is accepted by every command (checked at
 *     setup, and for every input whose edits all failed);
 *   - a command that fails says why on stderr, in lines that each name an
 *     input file or the command itself ("agon compare: ..."); show and
 *     export, which take one log, say it in exactly one line, naming the
 *     log;
 *   - a refused resume says why in one line naming the log;
 *   - HDF5 never prints its error stack, and every HDF5 object a command
 *     opened is closed again when it returns;
 *   - a log that show read before a resume, show reads after it (a
 *     refused or interrupted resume leaves a readable log).
 * A resume runs only when /config is as agon wrote it: with another
 * config it would build (and, with --force, train) whatever the text
 * says, which is the config loader's business (fuzz_config).
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  Files go to a private directory. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <sanitizer/common_interface_defs.h>

#include "agon/agon.h"
#include "cli_h5.h"
#include "fuzz_common.h"

int agon_cli_main(int argc, char **argv);

#define N_BASES 3
#define MAX_OBJECTS 256
#define MAX_EDITS 16

typedef struct base {
    char path[4200];
    char *config;                   /* /config as written */
    char *objects[MAX_OBJECTS];     /* "/", then every link, then a few absent */
    size_t n_objects;
    int show_rc, resume_rc, resume_force_rc;
} base;

static base bases[N_BASES];
static char dir[4096], run_path[4200], png_dir[4200], csv_dir[4200], report_path[4200];

/* Names the edits use: the root's and groups' attributes, where links go,
 * and string values. */
static const char *const attr_names[] = {
    "format_version", "agon_version", "git_revision", "run_id", "status", "status_message",
    "seed", "host", "pid", "start_time", "end_time", "steps_planned", "steps_done",
    "train_seconds", "blas", "kernels", "cpu", "threads", "description", "command", "resumed",
    "columns", "mode", "grid_cols", "n_classes", "plugin", "every", "from_step", "time",
    "forced", "changes", "name", "version", "file", "sha256", "components", NULL};
static const char *const link_names[] = {
    "/samples", "/scalars", "/metrics", "/metrics/extra", "/final", "/params", "/diverged",
    "/config", "/checkpoint", "/checkpoint/0", "/provenance/resumes/1", "/provenance/resumes/2",
    "/samples/x", "/scalars/extra", "/scalars/step", "/metrics/mode_coverage/tensors", NULL};
static const char *words[64];

/* ---- the real logs ----------------------------------------------------------- */

static const char ring_yaml[] =
    "base: " AGON_FUZZ_SOURCE_DIR "/tests/experiments/tiny_ring.yaml\n"
    "train: {steps: 30}\n"
    "log: {every: 5, samples_every: 10, n_samples: 16, params_every: 15}\n"
    "metrics:\n"
    "  - {plugin: mode_coverage, every: 10, n_samples: 100}\n"
    "  - {plugin: d_landscape, every: 15, grid: 8}\n";

static const char image_yaml[] =
    "seed: 2\n"
    "dataset: {plugin: hdf5, file: %s/tiny.h5, dataset: /x, labels: /y}\n"
    "generator: {plugin: mlp, hidden: [16], output_activation: tanh}\n"
    "discriminator: {plugin: mlp, hidden: [16], activation: leaky_relu}\n"
    "loss: {plugin: minimax}\n"
    "g_optimizer: {plugin: sgd, lr: 0.01}\n"
    "d_optimizer: {plugin: adam, lr: 1.0e-3}\n"
    "train: {batch_size: 8, latent_dim: 4, steps: 4, conditional: concat}\n"
    "log: {every: 1, samples_every: 2, n_samples: 6}\n"
    "metrics: []\n";

/* 16 grey 8x8 images in 3 classes for the image run. */
static void write_images(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tiny.h5", dir);
    uint8_t x[16 * 64];
    int32_t y[16];
    for (int i = 0; i < 16 * 64; i++)
        x[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 16; i++)
        y[i] = i % 3;
    hsize_t xd[4] = {16, 1, 8, 8}, yd = 16;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    fuzz_h5_write(f, "x", H5T_NATIVE_UINT8, 4, xd, x);
    fuzz_h5_write(f, "y", H5T_NATIVE_INT32, 1, &yd, y);
    if (H5Fclose(f) < 0)
        fuzz_fail("harness: cannot write %s", path);
}

/* `agon run` of the experiment text (or, with resume, `agon run --resume
 * --force` of the log with the stop flag set); returns the status. */
static int run_experiment(const char *yaml, const char *const *sets, size_t n_sets,
                          const char *log, bool resume, bool force, agon_error *err)
{
    char name[4200];
    snprintf(name, sizeof name, "%s/experiment.yaml", dir);
    fuzz_write_file(name, yaml, strlen(yaml));
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(fuzz_registry(), name, sets, n_sets, true, &diag);
    if (!exp)
        fuzz_fail("harness: %s", diag.count ? diag.messages[0] : "cannot load its experiment");
    agon_diag_fini(&diag);
    volatile sig_atomic_t stop = resume;
    agon_run_options opts = {.output_path = log,
                             .progress = AGON_PROGRESS_NONE,
                             .stop_flag = &stop,
                             .overwrite = !resume,
                             .resume = resume,
                             .force = force};
    agon_run_result result;
    int rc = agon_experiment_run(exp, &opts, &result, err);
    agon_experiment_destroy(exp);
    return rc;
}

static herr_t collect_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    base *b = data;
    if (b->n_objects < MAX_OBJECTS - 8) {
        char *p = malloc(strlen(name) + 2);
        sprintf(p, "/%s", name);
        b->objects[b->n_objects++] = p;
    }
    return 0;
}

/* /config as a string (agon's own reading), or NULL when it is not one
 * variable-length string. */
static char *read_config(hid_t f)
{
    char *text = NULL;
    H5E_BEGIN_TRY
    {
        text = agon__h5_read_string(f, "config");
    }
    H5E_END_TRY;
    return text;
}

static void describe_base(base *b)
{
    hid_t f = H5Fopen(b->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        fuzz_fail("harness: cannot open %s", b->path);
    b->objects[b->n_objects++] = strdup("/");
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_link, b);
    static const char *const absent[] = {"/diverged", "/provenance/resumes/2", "/samples/y",
                                         "/metrics/none"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        b->objects[b->n_objects++] = strdup(absent[i]);
    b->config = read_config(f);
    H5Fclose(f);
    if (!b->config)
        fuzz_fail("harness: %s has no /config", b->path);
}

/* ---- running the commands ------------------------------------------------------ */

typedef struct outcome {
    int rc;
    const char *err;    /* captured stderr */
} outcome;

/* Every line names one of the files or the command. */
static void check_lines(const char *what, const char *text, const char *const *files,
                        size_t n_files, const char *command)
{
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bool named = strncmp(line, command, strlen(command)) == 0;
        for (size_t i = 0; !named && i < n_files; i++) {
            const char *at = strstr(line, files[i]);
            named = at && at < line + len;
        }
        if (!named)
            fuzz_fail("%s printed a line that names neither a file nor the command:\n%.*s", what,
                      (int)len, line);
        line += len + (nl ? 1 : 0);
    }
}

static outcome cli(const char *what, int argc, const char **argv)
{
    char *args[16];
    args[0] = (char *)"agon";
    for (int i = 0; i < argc; i++)
        args[i + 1] = (char *)argv[i];
    args[argc + 1] = NULL;
    fuzz_capture_begin(false);
    int code = agon_cli_main(argc + 1, args);
    outcome o = {code, fuzz_capture_end()};
    fuzz_check_no_hdf5_stack(what, o.err);
    fuzz_check_hdf5_closed(what);
    if (code != 0 && !o.err[0])
        fuzz_fail("%s failed (exit %d) without a word on stderr", what, code);
    return o;
}

/* `agon run --resume RUN.h5 [--force]` as core/main.c runs it, stopping
 * before the first step. */
static outcome resume(const char *path, bool force, agon_error *err)
{
    static const char nothing[] = "";
    fuzz_capture_begin(false);
    agon_log_summary sum;
    int rc = agon_log_summarize(path, &sum, err);
    if (rc == 0) {
        char name[4300];
        snprintf(name, sizeof name, "%s:/config", path);
        agon_diag diag;
        agon_diag_init(&diag);
        agon_experiment *exp =
            agon_experiment_load_text(fuzz_registry(), name, sum.config, NULL, 0, true, &diag);
        free(sum.config);
        if (!exp) {
            fuzz_check_diag(&diag, true);
            agon_error_set(err, diag.code ? diag.code : AGON_ECONFIG, "%s", diag.messages[0]);
            rc = err->code;
        } else {
            volatile sig_atomic_t stop = 1;
            agon_run_options opts = {.output_path = path,
                                     .progress = AGON_PROGRESS_NONE,
                                     .stop_flag = &stop,
                                     .resume = true,
                                     .force = force};
            agon_run_result result;
            rc = agon_experiment_run(exp, &opts, &result, err);
            agon_experiment_destroy(exp);
        }
        agon_diag_fini(&diag);
    }
    outcome o = {rc, fuzz_capture_end()};
    fuzz_check_no_hdf5_stack("resume", o.err);
    fuzz_check_hdf5_closed("resume");
    if (o.err[0])
        fuzz_fail("resume printed on stderr:\n%s", o.err);
    o.err = nothing;
    return o;
}

static void check_resume_refusal(int rc, const agon_error *err, const char *path)
{
    if (rc == 0 || rc == AGON_EINTERRUPTED)
        return;
    if (err->code != rc || !err->message[0] || strchr(err->message, '\n'))
        fuzz_fail("a refused resume (%d) did not say why in one line: %s", rc, err->message);
    if (!strstr(err->message, path))
        fuzz_fail("a refused resume does not name the log: %s", err->message);
}

/* ---- edits ---------------------------------------------------------------------- */

enum {
    OP_DELETE_ATTR, OP_REPLACE_ATTR, OP_ADD_ATTR, OP_DELETE_LINK, OP_REPLACE_DATASET,
    OP_RESIZE, OP_OVERWRITE, OP_SPLICE_CONFIG, OP_REPLACE_CONFIG, OP_GROUP, OP_SOFT_LINK,
    OP_HARD_LINK, OP_TRUNCATE, N_OPS
};

/* Overwrites one value, or all, of a numeric dataset, or all strings of
 * a string dataset.  Each helper of edit() returns whether it called
 * HDF5 to change the file (whether or not that succeeded). */
static bool overwrite(fuzz_input *in, hid_t f, const char *path)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        return false;
    hid_t ft = H5Dget_type(d), fs = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(fs);
    H5T_class_t c = H5Tget_class(ft);
    bool touched = n > 0 && n <= 65536 && (c == H5T_INTEGER || c == H5T_FLOAT || c == H5T_STRING);
    if (touched) {
        hid_t mt = c == H5T_INTEGER ? H5Tcopy(H5T_NATIVE_INT64)
                   : c == H5T_FLOAT ? H5Tcopy(H5T_NATIVE_DOUBLE)
                                    : H5Tcopy(ft);
        size_t size = H5Tget_size(mt);
        bool one = c != H5T_STRING && (fuzz_u8(in) & 1);
        uint8_t *all = calloc((size_t)n, size);
        if (one && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0)
            memset(all, 0, (size_t)n * size);
        uint32_t at = fuzz_below(in, (uint32_t)n);
        void *v = fuzz_h5_values(in, mt, one ? 1 : (uint64_t)n, c == H5T_STRING ? 3 : 1, words);
        if (one)
            memcpy(all + (size_t)at * size, v, size);
        H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, one ? all : v);
        free(v);
        free(all);
        H5Tclose(mt);
    }
    H5Sclose(fs);
    H5Tclose(ft);
    H5Dclose(d);
    return touched;
}

static bool resize(fuzz_input *in, hid_t f, const char *path)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        return false;
    /* Only what HDF5 allows (a chunked dataset within its maximum): a
     * refused H5Dset_extent can leave HDF5's cache unable to close the
     * file ("can't insert duplicate key"). */
    hid_t s = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t dims[H5S_MAX_RANK], max[H5S_MAX_RANK];
    int rank = H5Sget_simple_extent_dims(s, dims, max);
    bool touched = rank >= 1 && H5Pget_layout(dcpl) == H5D_CHUNKED;
    if (touched) {
        dims[0] = fuzz_below(in, (uint32_t)(dims[0] < 1000 ? dims[0] + 4 : 1004));
        if (max[0] != H5S_UNLIMITED && dims[0] > max[0])
            dims[0] = max[0];
        H5Dset_extent(d, dims);
    }
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Dclose(d);
    return touched;
}

/* Splices input text into /config, or writes something else there. */
static bool edit_config(fuzz_input *in, hid_t f, hid_t lcpl, bool splice)
{
    static const char *const yaml_words[] = {
        "\n", ": ", "- ", "{", "}", "[", "]", "'", "\"", "#", "&a ", "*a", "base: ", "\t",
        "train:\n  steps: ", "metrics:\n  - plugin: ", "null", "~", "1e400", "-1",
        "99999999999999999999", "plugin: mlp", "\xff", "\xc2\x99", NULL};
    if (!splice) {
        H5Ldelete(f, "config", H5P_DEFAULT);
        fuzz_h5_dataset(in, f, "config", lcpl, 3, NULL, yaml_words);
        return true;
    }
    char *text = read_config(f);
    if (!text)
        return false;
    size_t len = strlen(text), at = fuzz_below(in, (uint32_t)len + 1);
    size_t cut = fuzz_below(in, 24);
    if (cut > len - at)
        cut = len - at;
    char *insert = fuzz_string(in, 40, yaml_words);
    char *edited = malloc(len + strlen(insert) + 1);
    sprintf(edited, "%.*s%s%s", (int)at, text, insert, text + at + cut);
    H5Ldelete(f, "config", H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, "config", t, s, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &edited);
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Tclose(t);
    free(insert);
    free(edited);
    free(text);
    return true;
}

/* The object an edit works on: the root (which holds most attributes) a
 * quarter of the time, else any. */
static const char *pick(fuzz_input *in, const base *b)
{
    return fuzz_u8(in) < 64 ? "/" : b->objects[fuzz_below(in, (uint32_t)b->n_objects)];
}

/* One edit; returns whether it called HDF5 to change the file.  *cut
 * receives a truncation point (a fraction of 65536) for OP_TRUNCATE. */
static bool edit(fuzz_input *in, hid_t f, hid_t lcpl, const base *b, uint32_t *cut)
{
    static const char *const op_names[] = {
        "delete attribute", "replace attribute", "add attribute", "delete link",
        "replace dataset", "resize", "overwrite", "splice config", "replace config",
        "group", "soft link", "hard link", "truncate"};
    unsigned op = fuzz_below(in, N_OPS);
    const char *path = pick(in, b);
    bool root = strcmp(path, "/") == 0;
    fuzz_note("edit: %s at %s", op_names[op], path);
    H5O_info_t oi;
    char name[256] = "";
    switch (op) {
    case OP_DELETE_ATTR:
    case OP_REPLACE_ATTR:
        if (H5Oget_info_by_name2(f, path, &oi, H5O_INFO_NUM_ATTRS, H5P_DEFAULT) < 0 ||
            oi.num_attrs == 0)
            return false;
        hsize_t k = fuzz_below(in, (uint32_t)oi.num_attrs);
        if (op == OP_DELETE_ATTR) {
            H5Adelete_by_idx(f, path, H5_INDEX_NAME, H5_ITER_INC, k, H5P_DEFAULT);
            return true;
        }
        if (H5Aget_name_by_idx(f, path, H5_INDEX_NAME, H5_ITER_INC, k, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return false;
        /* fall through */
    case OP_ADD_ATTR: {
        hid_t obj = H5Oopen(f, path, H5P_DEFAULT);
        char *chosen = name[0] ? strdup(name) : fuzz_string(in, 16, attr_names);
        bool touched = obj >= 0 && chosen[0];
        if (touched)
            fuzz_h5_attribute(in, obj, chosen, words);
        free(chosen);
        if (obj >= 0)
            H5Oclose(obj);
        return touched;
    }
    case OP_DELETE_LINK:
        return !root && H5Ldelete(f, path, H5P_DEFAULT) >= 0;
    case OP_REPLACE_DATASET:
        if (root)
            return false;
        H5Ldelete(f, path, H5P_DEFAULT);
        fuzz_h5_dataset(in, f, path, lcpl, 40, NULL, words);
        return true;
    case OP_RESIZE:
        return resize(in, f, path);
    case OP_OVERWRITE:
        return overwrite(in, f, path);
    case OP_SPLICE_CONFIG:
    case OP_REPLACE_CONFIG:
        return edit_config(in, f, lcpl, op == OP_SPLICE_CONFIG);
    case OP_GROUP:
        if (root || H5Ldelete(f, path, H5P_DEFAULT) < 0)
            return false;
        hid_t g = H5Gcreate2(f, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) {
            fuzz_h5_attributes(in, g, attr_names);
            H5Gclose(g);
        }
        return true;
    case OP_SOFT_LINK: {
        const char *target = fuzz_u8(in) & 1 ? "/nowhere" : pick(in, b);
        if (root || H5Ldelete(f, path, H5P_DEFAULT) < 0)
            return false;
        H5Lcreate_soft(target, f, path, lcpl, H5P_DEFAULT);
        return true;
    }
    case OP_HARD_LINK: {
        uint32_t n = 0;
        while (link_names[n])
            n++;
        const char *at = link_names[fuzz_below(in, n)];
        if (H5Lexists(f, at, H5P_DEFAULT) > 0)
            H5Ldelete(f, at, H5P_DEFAULT);
        H5Lcreate_hard(f, path, f, at, lcpl, H5P_DEFAULT);
        return true;
    }
    default:
        *cut = fuzz_u16(in);
        return true;
    }
}

/* A copy of the base with the input's edits. */
typedef enum copy_state {
    COPY_AS_WRITTEN,    /* no edit touched it */
    COPY_EDITED,
    COPY_UNWRITABLE,    /* HDF5 itself could not write the edits */
} copy_state;

/* The edits, in the child process of make_run. */
static copy_state edit_copy(fuzz_input *in, const base *b)
{
    uint32_t cut = 65536;
    int applied = 0;
    bool closed;
    agon__h5_detail why;
    H5E_BEGIN_TRY
    {
        hid_t f = H5Fopen(run_path, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0)
            fuzz_fail("harness: cannot open %s: %s", run_path, agon__h5_why(&why));
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        for (int i = 0; i < MAX_EDITS && in->n > 0; i++)
            applied += edit(in, f, lcpl, b, &cut);
        H5Pclose(lcpl);
        closed = H5Fclose(f) >= 0;
        if (!closed)
            fuzz_note("HDF5 cannot write the edits (%s); the input is skipped",
                      agon__h5_why(&why));
    }
    H5E_END_TRY;
    if (!closed)
        return COPY_UNWRITABLE;
    if (cut < 65536) {
        struct stat st;
        if (stat(run_path, &st) != 0 ||
            truncate(run_path, (off_t)((uint64_t)st.st_size * cut / 65536)) != 0)
            fuzz_fail("harness: cannot truncate %s", run_path);
    }
    return applied > 0 ? COPY_EDITED : COPY_AS_WRITTEN;
}

/* The edits run in a child process, the editor, forked once (and again
 * after it died): some sequences of edits make libhdf5 free a block of
 * its free-space manager twice when it closes the file, which then breaks
 * the next use of the same edits ("can't insert duplicate key") or even
 * H5close.  That is HDF5's business, not agon's, and a real log is never
 * edited by the process that reads it.  The editor runs with HDF5's free
 * lists off, so that such an error ends it at once (ASan); its stderr goes
 * to editor.log in the private directory. */
static pid_t editor = -1;
static int to_editor = -1, from_editor = -1;

static bool full_io(int fd, void *buf, size_t n, bool writing)
{
    for (size_t done = 0; done < n;) {
        ssize_t k = writing ? write(fd, (char *)buf + done, n - done)
                            : read(fd, (char *)buf + done, n - done);
        if (k <= 0)
            return false;
        done += (size_t)k;
    }
    return true;
}

static void editor_loop(int in, int out)
{
    char log[4200];
    snprintf(log, sizeof log, "%s/editor.log", dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0)
        dup2(fd, 2);
    /* Not libFuzzer's: a death here is no finding of the harness. */
    __sanitizer_set_death_callback(NULL);
    static const int deadly[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGINT, SIGTERM,
                                 SIGALRM, SIGUSR1, SIGUSR2, SIGXFSZ};
    for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++)
        signal(deadly[i], SIG_DFL);
    H5set_free_list_limits(0, 0, 0, 0, 0, 0);
    for (;;) {
        uint8_t which;
        uint32_t len;
        if (!full_io(in, &which, 1, false) || !full_io(in, &len, sizeof len, false))
            _exit(0);
        uint8_t *bytes = malloc(len ? len : 1);
        if (!full_io(in, bytes, len, false))
            _exit(0);
        fuzz_input input = {bytes, len};
        uint8_t state = (uint8_t)edit_copy(&input, &bases[which]);
        free(bytes);
        if (!full_io(out, &state, 1, true))
            _exit(0);
    }
}

static void start_editor(void)
{
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0)
        fuzz_fail("harness: cannot make pipes");
    fflush(NULL);
    editor = fork();
    if (editor < 0)
        fuzz_fail("harness: cannot fork");
    if (editor == 0) {
        close(down[1]);
        close(up[0]);
        editor_loop(down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    to_editor = down[1];
    from_editor = up[0];
}

/* Copies the base and has the editor edit the copy. */
static copy_state make_run(fuzz_input *in, const base *b)
{
    fuzz_copy_file(b->path, run_path);
    if (editor < 0)
        start_editor();
    uint8_t which = (uint8_t)(b - bases), state;
    uint32_t len = (uint32_t)in->n;
    if (full_io(to_editor, &which, 1, true) && full_io(to_editor, &len, sizeof len, true) &&
        full_io(to_editor, (void *)in->p, len, true) && full_io(from_editor, &state, 1, false))
        return (copy_state)state;
    int status = 0;
    close(to_editor);
    close(from_editor);
    waitpid(editor, &status, 0);
    editor = -1;
    fuzz_note("the editor ended (status %d, signal %d; see editor.log); the input is skipped",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return COPY_UNWRITABLE;
}

/* The commands of `mask` on the edited copy; `pristine` when it is the
 * base as written, whose outcomes setup recorded. */
static void run_commands(const base *b, const base *other, uint8_t mask, uint8_t variant,
                         bool pristine)
{
    static const char *const metrics[] = {"scalars/loss_d", "mode_coverage/modes",
                                          "scalars/d_real", "nothing/there"};
    const char *files[] = {run_path, other->path, png_dir, csv_dir, report_path};
    int show_rc = -1;
    if (mask & 1) {
        outcome o = cli("show", 2, (const char *[]){"show", run_path});
        show_rc = o.rc;
        if (o.rc)
            fuzz_check_refusal("show", o.err, run_path);
        if (pristine && o.rc != 0)
            fuzz_fail("show failed on a log as agon wrote it: %s", o.err);
    }
    if (mask & 2) {
        outcome o = cli("show --no-config", 4,
                        (const char *[]){"show", "--no-config", run_path, other->path});
        if (o.rc)
            fuzz_check_refusal("show --no-config", o.err, run_path);
    }
    if (mask & 4) {
        fuzz_empty_dir(png_dir);
        /* One step: a scatter plot is a 512x512 PNG. */
        const char *argv[] = {"export", run_path, "--png", png_dir, "--steps",
                              variant & 16 ? "0" : "last", "--no-landscape"};
        outcome o = cli("export --png", variant & 32 ? 7 : 6, argv);
        if (o.rc)
            fuzz_check_refusal("export --png", o.err, run_path);
        if (pristine && o.rc != 0)
            fuzz_fail("export --png failed on a log as agon wrote it: %s", o.err);
    }
    if (mask & 8) {
        fuzz_empty_dir(csv_dir);
        outcome o = cli("export --csv", 6, (const char *[]){"export", run_path, "--csv", csv_dir,
                                                          "--steps", "last"});
        if (o.rc)
            fuzz_check_refusal("export --csv", o.err, run_path);
        if (pristine && o.rc != 0)
            fuzz_fail("export --csv failed on a log as agon wrote it: %s", o.err);
    }
    if (mask & 16) {
        const char *metric = metrics[variant & 3];
        const char *argv[] = {"compare", run_path,  other->path, "--metric",
                              metric,    "--by",    "seed",      "--best",
                              variant & 4 ? "max" : "min"};
        outcome o = cli("compare", variant & 8 ? 9 : 7, argv);
        check_lines("compare", o.err, files, 2, "agon compare: ");
        if (pristine && o.rc != 0 && (variant & 3) < 2)
            fuzz_fail("compare failed on logs as agon wrote them: %s", o.err);
    }
    if (mask & 32) {
        outcome o = cli("report", 5,
                        (const char *[]){"report", run_path, other->path, "-o", report_path});
        check_lines("report", o.err, files, 5, "agon report: ");
        if (pristine && o.rc != 0)
            fuzz_fail("report failed on logs as agon wrote them: %s", o.err);
    }
    char *config = NULL;
    if (mask & (64 | 128)) {
        H5E_BEGIN_TRY
        {
            hid_t f = H5Fopen(run_path, H5F_ACC_RDONLY, H5P_DEFAULT);
            config = f >= 0 ? read_config(f) : NULL;
            if (f >= 0)
                H5Fclose(f);
        }
        H5E_END_TRY;
    }
    /* One resume at most, of the copy as edited. */
    if (config && strcmp(config, b->config) == 0 && (mask & (64 | 128))) {
        bool force = !(mask & 64);
        agon_error err = {0};
        outcome o = resume(run_path, force, &err);
        check_resume_refusal(o.rc, &err, run_path);
        if (pristine && o.rc != (force ? b->resume_force_rc : b->resume_rc))
            fuzz_fail("resume%s of a log as agon wrote it ended with %d, not %d: %s",
                      force ? " --force" : "", o.rc, force ? b->resume_force_rc : b->resume_rc,
                      err.message);
        if (show_rc == 0) {
            outcome again = cli("show after resume", 2, (const char *[]){"show", run_path});
            if (again.rc != 0)
                fuzz_fail("show read the log before a resume but not after it: %s", again.err);
        }
    }
    free(config);
}

/* ---- libFuzzer ----------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "%s", fuzz_private_dir("log"));
    snprintf(run_path, sizeof run_path, "%s/run.h5", dir);
    snprintf(png_dir, sizeof png_dir, "%s/png", dir);
    snprintf(csv_dir, sizeof csv_dir, "%s/csv", dir);
    snprintf(report_path, sizeof report_path, "%s/report.html", dir);
    if (mkdir(png_dir, 0700) != 0 || mkdir(csv_dir, 0700) != 0)
        abort();
    fuzz_registry();
    H5open();
    /* A write to an editor that died fails instead of killing the harness. */
    signal(SIGPIPE, SIG_IGN);
    write_images();

    /* The real logs. */
    agon_error err = {0};
    snprintf(bases[0].path, sizeof bases[0].path, "%s/ring.h5", dir);
    if (run_experiment(ring_yaml, NULL, 0, bases[0].path, false, false, &err) != 0)
        fuzz_fail("harness: the ring run failed: %s", err.message);
    snprintf(bases[1].path, sizeof bases[1].path, "%s/resumed.h5", dir);
    fuzz_copy_file(bases[0].path, bases[1].path);
    static const char *const longer[] = {"train.steps=40"};
    if (run_experiment(ring_yaml, longer, 1, bases[1].path, true, true, &err) !=
        AGON_EINTERRUPTED)
        fuzz_fail("harness: the resumed ring run did not stop: %s", err.message);
    char image[sizeof image_yaml + 4200];
    snprintf(image, sizeof image, image_yaml, dir);
    snprintf(bases[2].path, sizeof bases[2].path, "%s/image.h5", dir);
    if (run_experiment(image, NULL, 0, bases[2].path, false, false, &err) != 0)
        fuzz_fail("harness: the image run failed: %s", err.message);

    /* What string values the edits write. */
    static char host[256], blas[512];
    gethostname(host, sizeof host - 1);
    snprintf(blas, sizeof blas, "%s", agon_blas_describe());
    const char *w[] = {"running", "completed", "diverged", "failed", "interrupted", "train",
                       "eval", host, blas, "portable", "native", "0.1.0", "",
                       "loss_d,loss_g,d_real,d_fake,grad_norm_d,grad_norm_g", "x", "x,x", ",",
                       "step", "modes,high_quality,kl", "histogram", "d", "samples,endpoints",
                       "2026-12-04T21:34:45Z", "9999-99-99T99:99:99Z", "from step 3",
                       "0000000000000000000000000000000000000000000000000000000000000000",
                       "/nowhere/plugin.so", "mode_coverage", "loss:nonsaturating", NULL};
    memcpy(words, w, sizeof w);

    /* Each base as agon wrote it: every command accepts it.  Its resumes
     * end as they end (the interrupted run goes on, a completed one is
     * refused without --force), and for an unchanged log always so. */
    for (int i = 0; i < N_BASES; i++) {
        base *b = &bases[i];
        describe_base(b);
        char why[AGON_ERROR_MESSAGE_MAX] = "";
        for (int force = 0; force < 2; force++) {
            fuzz_copy_file(b->path, run_path);
            agon_error e = {0};
            int rc = resume(run_path, force, &e).rc;
            check_resume_refusal(rc, &e, run_path);
            *(force ? &b->resume_force_rc : &b->resume_rc) = rc;
            if (!force)
                snprintf(why, sizeof why, "%s", e.message);
        }
        if (b->resume_rc != (i == 1 ? AGON_EINTERRUPTED : AGON_EUSAGE))
            fuzz_fail("harness: resume of %s ended with %d: %s", b->path, b->resume_rc, why);
        static const uint8_t variants[] = {0, 5, 10, 15, 21, 42, 63};
        for (size_t k = 0; k < sizeof variants; k++) {
            fuzz_copy_file(b->path, run_path);
            run_commands(b, &bases[(i + 1) % N_BASES], k & 1 ? 0xff : 0xbf, variants[k], true);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    uint8_t which = fuzz_u8(&in), mask = fuzz_u8(&in), variant = fuzz_u8(&in);
    const base *b = &bases[which % N_BASES];
    copy_state state = make_run(&in, b);
    if (state != COPY_UNWRITABLE)
        run_commands(b, &bases[(which + 1) % N_BASES], mask, variant, state == COPY_AS_WRITTEN);
    return 0;
}
