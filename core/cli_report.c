/* `agon report LOGS_OR_DIRS... -o REPORT.html`: a sweep of run logs as one
 * self-contained HTML page (docs/report.md): the runs grouped by config
 * keys, one chart of curves per logged series (mean over the seeds of a
 * group with a min..max band), the final values with 95% confidence
 * intervals exactly as `agon compare` computes them, the generator's
 * samples, and each run's config against the sweep's base.
 *
 * Everything is read first (the prepare phase, which may fail), then the
 * page is written in one pass into a temporary file beside -o that is
 * renamed into place, so a reader never sees half a page.  The page is
 * inline SVG and CSS: it must open from a cluster's scratch folder, an
 * e-mail attachment or an archive without any network. */
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

#include "agon/agon.h"
#include "cli.h"
#include "cli_h5.h"

static const char report_usage[] =
    "usage: agon report RUN.h5|DIR... -o REPORT.html [--by KEY[,KEY...]] "
    "[--steps first,last|all|LIST] [--title TEXT]";

static const char report_help[] =
    "\n"
    "Writes one self-contained HTML page (inline SVG, no network) about a sweep of\n"
    "run logs: groups of runs by config keys, one chart per logged series (mean over\n"
    "the seeds of each group, band = min..max over the seeds), final values with 95%\n"
    "confidence intervals, generator samples, and each run's config differences.\n"
    "\n"
    "  -o REPORT.html  the page to write (replaced atomically)\n"
    "  --by KEYS       group by these dotted config keys (default: every config key\n"
    "                  whose value differs between the runs, except seed)\n"
    "  --steps WHICH   sample snapshots to show per group: first,last (default), all,\n"
    "                  or a comma-separated list of steps, first and last\n"
    "  --title TEXT    the page title\n"
    "\n"
    "docs/report.md describes the page.\n";

enum {
    MAX_VALUE = 512,        /* bytes of one config value */
    MAX_POINTS = 400,       /* points per drawn line; longer series are thinned */
    MAX_SCATTER = 1024,     /* points per drawn scatter plot */
    MAX_STEP_TOKENS = 64,
    LABEL_CHARS = 36,       /* group labels longer than this are shortened in charts */
    PALETTE = 10,
};

/* Ten hues that stay apart on white and on each other's bands; past ten
 * groups they repeat, and the legends and tables name every group. */
static const char *const palette[PALETTE] = {"#1f6fd1", "#e8710a", "#1e9e5a", "#d03a3a",
                                             "#7b4fc9", "#8c5a2b", "#d6469b", "#5f6b7a",
                                             "#a5a10a", "#0e9aaa"};

/* ---- data ---------------------------------------------------------------- */

typedef struct report_opts {
    const char **inputs;
    size_t n_inputs;
    const char *output;
    char *keys_text;        /* owned copy that keys point into */
    char **keys;
    size_t n_keys;
    bool by_given;
    char *steps_text;       /* owned copy that steps point into */
    const char *steps_arg;  /* --steps as given, for the page */
    const char *steps[MAX_STEP_TOKENS];
    size_t n_steps;
    const char *title;
} report_opts;

/* One table column of one run: rows every dataset of the table has. */
typedef struct run_series {
    size_t series;          /* index into report.series */
    int64_t *steps;
    double *values;
    size_t n;
} run_series;

typedef struct run {
    char *path;
    const char *file_name;  /* into path */
    size_t input;           /* the command-line input it came from */
    char *run_id, *status, *status_message;
    int64_t seed, steps_done, steps_planned;
    bool has_seed, has_done, has_planned, has_samples;
    agon_config *cfg;
    agon__config_leaves leaves;
    char **key;             /* [report.n_keys] values of the grouping keys */
    size_t group;
    run_series *cols;
    size_t n_cols;
} run;

/* A drawable series: TABLE/COLUMN, TABLE "scalars" or a metric's name. */
typedef struct series {
    char *table, *column;
} series;

/* One snapshot shown in the samples section. */
typedef struct sample_view {
    int64_t step;
    bool points;
    float *xy;              /* [n, 2] when points */
    int64_t n;
    unsigned char *png;     /* when an image grid */
    size_t png_size;
    uint32_t png_w, png_h;
} sample_view;

typedef struct group {
    size_t *runs;           /* indices into report.runs, by seed */
    size_t n;
    char *label;            /* the key values, ", "-joined */
    sample_view *views;
    size_t n_views;
    char *samples_note;     /* why no or fewer samples are shown, or NULL */
} group;

typedef struct skipped {
    char *path;
    const char *why;
} skipped;

typedef struct report {
    report_opts o;
    run *runs;
    size_t n_runs, cap_runs;
    series *series;
    size_t n_series;
    group *groups;
    size_t n_groups;
    skipped *skipped;
    size_t n_skipped;
    char **keys;            /* the grouping keys (owned) */
    size_t n_keys;
    agon_config **base;     /* per input: DIR/base.yaml, or NULL */
    agon__config_leaves *base_leaves;
    agon__config_leaves majority; /* per key, the value most runs share */
    size_t n_charts, n_finals, n_views;
} report;

/* ---- small helpers --------------------------------------------------------- */

static int usage_fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon report: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", report_usage);
    return AGON_EUSAGE;
}

static int out_of_memory(void)
{
    fprintf(stderr, "agon report: out of memory\n");
    return AGON_ENOMEM;
}

/* `items` (of `size` bytes each) grown to hold at least `need`: the new
 * array (the old one is then gone), or NULL with `items` untouched. */
static void *grow(void *items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return items;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(items, n * size);
    if (p)
        *cap = n;
    return p;
}

/* HTML text and attribute values: every string from a log goes through
 * here, so a config value cannot inject markup. */
static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A config value as shown: an empty one (an empty string or YAML's null)
 * as "", so that it is visible. */
static void esc_value(FILE *f, const char *v)
{
    esc(f, v[0] ? v : "\"\"");
}

/* The first `max` characters of a label (UTF-8 aware) with an ellipsis. */
static void esc_short(FILE *f, const char *s, size_t max)
{
    size_t chars = 0, i = 0;
    for (; s[i] && chars < max; chars++) {
        i++;
        while ((s[i] & 0xC0) == 0x80)
            i++;
    }
    if (!s[i]) {
        esc(f, s);
        return;
    }
    char *cut = strndup(s, i);
    if (cut) {
        esc(f, cut);
        free(cut);
    }
    fputs("&hellip;", f);
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += (*s & 0xC0) != 0x80;
    return n;
}

/* Numbers in tables: 6 significant digits to read, the exact double in
 * data-value for scripts. */
static void put_number_cell(FILE *f, double v)
{
    fprintf(f, "<td class=\"num\" data-value=\"%.17g\">%.6g</td>", v, v);
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        fputc(digits[v >> 18 & 63], f);
        fputc(digits[v >> 12 & 63], f);
        fputc(i + 1 < n ? digits[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? digits[v & 63] : '=', f);
    }
}

/* ---- command line ------------------------------------------------------------ */

static int parse_steps(report_opts *o, const char *text)
{
    free(o->steps_text);
    o->steps_arg = text;
    o->steps_text = strdup(text);
    if (!o->steps_text)
        return out_of_memory();
    o->n_steps = 0;
    char *save = NULL;
    for (char *t = strtok_r(o->steps_text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool number = t[0] != '\0';
        for (const char *c = t; *c; c++)
            number = number && *c >= '0' && *c <= '9';
        if (!number && strcmp(t, "first") != 0 && strcmp(t, "last") != 0 &&
            strcmp(t, "all") != 0)
            return usage_fail("--steps takes first, last, all or a comma-separated list of "
                              "steps such as first,1000,last, not '%s'", text);
        if (strlen(t) > 18)
            return usage_fail("--steps: a step is a whole number below 10^18, not '%s'", t);
        if (o->n_steps == MAX_STEP_TOKENS)
            return usage_fail("--steps takes at most 64 entries, not '%s'", text);
        o->steps[o->n_steps++] = t;
    }
    if (o->n_steps == 0)
        return usage_fail("--steps takes first, last, all or a comma-separated list of "
                          "steps such as first,1000,last, not '%s'", text);
    for (size_t i = 0; i < o->n_steps; i++) {
        if (strcmp(o->steps[i], "all") == 0 && o->n_steps > 1)
            return usage_fail("--steps all stands alone, not in '%s'", text);
    }
    return 0;
}

static int parse_by(report_opts *o, const char *text)
{
    free(o->keys_text);
    free(o->keys);
    o->keys = NULL;
    o->n_keys = 0;
    o->keys_text = strdup(text);
    o->keys = calloc(strlen(text) / 2 + 1, sizeof *o->keys);
    if (!o->keys_text || !o->keys)
        return out_of_memory();
    char *save = NULL;
    for (char *k = strtok_r(o->keys_text, ",", &save); k; k = strtok_r(NULL, ",", &save))
        o->keys[o->n_keys++] = k;
    if (o->n_keys == 0)
        return usage_fail("--by takes config keys such as loss.plugin, not '%s'", text);
    o->by_given = true;
    return 0;
}

/* 0, 1 after --help, or a negative status after one line on stderr. */
static int parse_args(int argc, char **argv, report_opts *o)
{
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    if (!o->inputs)
        return out_of_memory();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("%s\n%s", report_usage, report_help);
            return 1;
        }
        if (a[0] != '-' || a[1] == '\0') {
            o->inputs[o->n_inputs++] = a;
            continue;
        }
        char name[16];
        const char *value = NULL;
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", strlen(a) < sizeof name ? a : "?");
        }
        bool known = strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0 ||
                     strcmp(name, "--by") == 0 || strcmp(name, "--steps") == 0 ||
                     strcmp(name, "--title") == 0;
        if (!known)
            return usage_fail("unknown option '%s'", a);
        if (!value) {
            if (i + 1 >= argc)
                return usage_fail("option '%s' needs a value", a);
            value = argv[++i];
        }
        int rc = 0;
        if (strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0) {
            if (!value[0])
                return usage_fail("%s needs a file name, not an empty string", name);
            o->output = value;
        } else if (strcmp(name, "--by") == 0) {
            rc = parse_by(o, value);
        } else if (strcmp(name, "--steps") == 0) {
            rc = parse_steps(o, value);
        } else {
            o->title = value;
        }
        if (rc != 0)
            return rc;
    }
    if (!o->output)
        return usage_fail("%s", "-o REPORT.html is missing");
    if (o->n_inputs == 0)
        return usage_fail("%s", "no run logs or folders given");
    if (o->n_steps == 0)
        return parse_steps(o, "first,last");
    return 0;
}

/* ---- reading the logs ------------------------------------------------------- */

static size_t series_index(report *r, const char *table, const char *column, int *rc)
{
    for (size_t i = 0; i < r->n_series; i++) {
        if (strcmp(r->series[i].table, table) == 0 && strcmp(r->series[i].column, column) == 0)
            return i;
    }
    series *grown = realloc(r->series, (r->n_series + 1) * sizeof *grown);
    if (!grown) {
        *rc = AGON_ENOMEM;
        return 0;
    }
    r->series = grown;
    series *s = &r->series[r->n_series];
    s->table = strdup(table);
    s->column = strdup(column);
    if (!s->table || !s->column) {
        free(s->table);
        free(s->column);
        *rc = AGON_ENOMEM;
        return 0;
    }
    return r->n_series++;
}

/* A 1-D dataset of numbers (integers or floats); strings and tensors are
 * not drawn. */
static bool numeric_column(hid_t g, const char *name)
{
    if (!agon__h5_is_object(g, name, H5O_TYPE_DATASET))
        return false;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0)
        return false;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    bool ok = sp >= 0 && (c == H5T_FLOAT || c == H5T_INTEGER) &&
              H5Sget_simple_extent_ndims(sp) == 1;
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    H5Dclose(ds);
    return ok;
}

/* Every numeric column of the table at `h5path` ("/scalars",
 * "/metrics/NAME") into run->cols; a group without a `step` dataset is not
 * a table (a metric with only tensor outputs) and is passed over. */
static int read_table(report *r, run *run, hid_t file, const char *h5path, const char *table)
{
    if (!agon__h5_is_object(file, h5path, H5O_TYPE_GROUP))
        return 0;
    hid_t g = H5Gopen2(file, h5path, H5P_DEFAULT);
    if (g < 0)
        return 0;
    if (!agon__h5_is_object(g, "step", H5O_TYPE_DATASET)) {
        H5Gclose(g);
        return 0;
    }
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    int64_t rows = agon__h5_table_rows(g, &cols);
    int rc = 0;
    int64_t *steps = rows > 0 ? malloc((size_t)rows * sizeof *steps) : NULL;
    if (rows > 0 && !steps) {
        rc = AGON_ENOMEM;
    } else if (rows > 0 && !agon__h5_read_range(g, "step", 0, rows, H5T_NATIVE_INT64, steps)) {
        fprintf(stderr, "%s: %s/step cannot be read; the table is left out of the report\n",
                run->path, h5path);
        rows = 0;
    }
    for (size_t c = 0; rc == 0 && c < cols.count; c++) {
        if (!numeric_column(g, cols.names[c]))
            continue;
        size_t s = series_index(r, table, cols.names[c], &rc);
        if (rc != 0)
            break;
        run_series *grown = realloc(run->cols, (run->n_cols + 1) * sizeof *grown);
        if (!grown) {
            rc = AGON_ENOMEM;
            break;
        }
        run->cols = grown;
        run_series *rs = &run->cols[run->n_cols];
        *rs = (run_series){.series = s};
        if (rows > 0) {
            rs->steps = malloc((size_t)rows * sizeof *rs->steps);
            rs->values = malloc((size_t)rows * sizeof *rs->values);
            if (!rs->steps || !rs->values) {
                free(rs->steps);
                free(rs->values);
                rc = AGON_ENOMEM;
                break;
            }
            memcpy(rs->steps, steps, (size_t)rows * sizeof *steps);
            if (agon__h5_read_range(g, cols.names[c], 0, rows, H5T_NATIVE_DOUBLE, rs->values)) {
                rs->n = (size_t)rows;
            } else {
                fprintf(stderr, "%s: %s/%s cannot be read; it is left out of the report\n",
                        run->path, h5path, cols.names[c]);
                free(rs->steps);
                free(rs->values);
                rs->steps = NULL;
                rs->values = NULL;
            }
        }
        run->n_cols++;
    }
    free(steps);
    agon__h5_columns_fini(&cols);
    H5Gclose(g);
    return rc;
}

typedef struct name_list {
    char **names;
    size_t count;
    bool failed;
} name_list;

static herr_t collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    name_list *l = data;
    char **grown = realloc(l->names, (l->count + 1) * sizeof *grown);
    if (!grown || !(grown[l->count] = strdup(name))) {
        if (grown)
            l->names = grown;
        l->failed = true;
        return -1;
    }
    l->names = grown;
    l->count++;
    return 0;
}

static int read_tables(report *r, run *run, hid_t file)
{
    int rc = read_table(r, run, file, "/scalars", "scalars");
    if (rc != 0 || !agon__h5_is_object(file, "metrics", H5O_TYPE_GROUP))
        return rc;
    hid_t m = H5Gopen2(file, "metrics", H5P_DEFAULT);
    if (m < 0)
        return 0;
    name_list names = {0};
    H5Literate(m, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &names);
    H5Gclose(m);
    if (names.failed)
        rc = AGON_ENOMEM;
    for (size_t i = 0; rc == 0 && i < names.count; i++) {
        char path[1024];
        snprintf(path, sizeof path, "/metrics/%s", names.names[i]);
        rc = read_table(r, run, file, path, names.names[i]);
    }
    agon__paths_free(names.names, names.count);
    return rc;
}

static void run_fini(run *run, size_t n_keys)
{
    free(run->path);
    free(run->run_id);
    free(run->status);
    free(run->status_message);
    agon_config_destroy(run->cfg);
    agon__config_leaves_fini(&run->leaves);
    if (run->key) {
        for (size_t k = 0; k < n_keys; k++)
            free(run->key[k]);
        free(run->key);
    }
    for (size_t i = 0; i < run->n_cols; i++) {
        free(run->cols[i].steps);
        free(run->cols[i].values);
    }
    free(run->cols);
}

static int add_skipped(report *r, const char *path, const char *why)
{
    fprintf(stderr, "%s: skipped: %s\n", path, why);
    skipped *grown = realloc(r->skipped, (r->n_skipped + 1) * sizeof *grown);
    if (!grown)
        return AGON_ENOMEM;
    r->skipped = grown;
    if (!(r->skipped[r->n_skipped].path = strdup(path)))
        return AGON_ENOMEM;
    r->skipped[r->n_skipped++].why = why;
    return 0;
}

static int add_run(report *r, const char *path, size_t input)
{
    hid_t file;
    agon_config *cfg;
    const char *why;
    if (agon__h5_open_run(path, &file, &cfg, &why) != 0)
        return add_skipped(r, path, why);
    run *grown = grow(r->runs, &r->cap_runs, r->n_runs + 1, sizeof *r->runs);
    if (!grown) {
        agon_config_destroy(cfg);
        H5Fclose(file);
        return AGON_ENOMEM;
    }
    r->runs = grown;
    run *run = &r->runs[r->n_runs++];
    *run = (struct run){.input = input, .cfg = cfg};
    run->path = strdup(path);
    int rc = run->path ? 0 : AGON_ENOMEM;
    if (rc == 0) {
        const char *slash = strrchr(run->path, '/');
        run->file_name = slash ? slash + 1 : run->path;
        run->run_id = agon__h5_attr_string(file, "run_id");
        run->status = agon__h5_attr_string(file, "status");
        run->status_message = agon__h5_attr_string(file, "status_message");
        run->has_seed = agon__h5_attr_int64(file, "seed", &run->seed) > 0;
        run->has_done = agon__h5_attr_int64(file, "steps_done", &run->steps_done) > 0;
        run->has_planned = agon__h5_attr_int64(file, "steps_planned", &run->steps_planned) > 0;
        run->has_samples = agon__h5_is_object(file, "samples", H5O_TYPE_GROUP);
        rc = agon__config_leaves_of(cfg, &run->leaves);
    }
    if (rc == 0)
        rc = read_tables(r, run, file);
    H5Fclose(file);
    return rc;
}

/* DIR/base.yaml, which `agon sweep` writes: the resolved base experiment
 * the runs' configs are diffed against. */
static int load_base(report *r, size_t input)
{
    const char *dir = r->o.inputs[input];
    char *path = malloc(strlen(dir) + 16);
    if (!path)
        return AGON_ENOMEM;
    sprintf(path, "%s/base.yaml", dir);
    struct stat st;
    int rc = 0;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        agon_diag diag;
        agon_diag_init(&diag);
        r->base[input] = agon_config_load(path, &diag);
        if (!r->base[input]) {
            fprintf(stderr, "%s: cannot be read (%s); the runs' configs are compared with the "
                    "values most runs share instead\n", path,
                    diag.count ? diag.messages[0] : "no detail");
        } else {
            rc = agon__config_leaves_of(r->base[input], &r->base_leaves[input]);
        }
        agon_diag_fini(&diag);
    }
    free(path);
    return rc;
}

static int read_inputs(report *r)
{
    r->base = calloc(r->o.n_inputs, sizeof *r->base);
    r->base_leaves = calloc(r->o.n_inputs, sizeof *r->base_leaves);
    if (!r->base || !r->base_leaves)
        return AGON_ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->o.n_inputs; i++) {
        const char *in = r->o.inputs[i];
        struct stat st;
        if (stat(in, &st) != 0) {
            fprintf(stderr, "%s: no such file or folder; give run logs or folders of them\n", in);
            return AGON_EIO;
        }
        if (!S_ISDIR(st.st_mode)) {
            rc = add_run(r, in, i);
            continue;
        }
        char **names;
        size_t n;
        rc = agon__h5_list_dir(in, &names, &n);
        for (size_t k = 0; rc == 0 && k < n; k++)
            rc = add_run(r, names[k], i);
        if (names)
            agon__paths_free(names, n);
        if (rc == 0)
            rc = load_base(r, i);
    }
    return rc;
}

/* ---- groups -------------------------------------------------------------------- */

static const char *leaf_or_none(const agon__config_leaves *l, const char *key)
{
    const char *v = agon__config_leaves_get(l, key);
    return v ? v : "(none)";
}

/* Every leaf key of any run, in order of first appearance. */
static int union_keys(const report *r, char ***out, size_t *n)
{
    char **keys = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; i < r->n_runs; i++) {
        const agon__config_leaves *l = &r->runs[i].leaves;
        for (size_t k = 0; k < l->count; k++) {
            bool seen = false;
            for (size_t j = 0; j < count && !seen; j++)
                seen = strcmp(keys[j], l->items[k].key) == 0;
            if (seen)
                continue;
            char **grown = grow(keys, &cap, count + 1, sizeof *keys);
            if (grown)
                keys = grown;
            if (!grown || !(keys[count] = strdup(l->items[k].key))) {
                agon__paths_free(keys, count);
                return AGON_ENOMEM;
            }
            count++;
        }
    }
    *out = keys;
    *n = count;
    return 0;
}

/* The --by keys, or every key whose value differs between runs except the
 * top-level seed: then each group holds the seeds of one setting. */
static int choose_keys(report *r)
{
    if (r->o.by_given) {
        r->keys = calloc(r->o.n_keys, sizeof *r->keys);
        if (!r->keys)
            return AGON_ENOMEM;
        for (size_t k = 0; k < r->o.n_keys; k++) {
            if (!(r->keys[k] = strdup(r->o.keys[k])))
                return AGON_ENOMEM;
            r->n_keys++;
        }
        return 0;
    }
    char **all;
    size_t n;
    int rc = union_keys(r, &all, &n);
    if (rc != 0)
        return rc;
    r->keys = calloc(n ? n : 1, sizeof *r->keys);
    if (!r->keys) {
        agon__paths_free(all, n);
        return AGON_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        bool differs = false;
        const char *first = leaf_or_none(&r->runs[0].leaves, all[k]);
        for (size_t i = 1; i < r->n_runs && !differs; i++)
            differs = strcmp(first, leaf_or_none(&r->runs[i].leaves, all[k])) != 0;
        if (differs && strcmp(all[k], "seed") != 0) {
            r->keys[r->n_keys++] = all[k];
            all[k] = NULL;
        }
    }
    agon__paths_free(all, n);
    return 0;
}

static bool same_group(const run *a, const run *b, size_t n_keys)
{
    for (size_t k = 0; k < n_keys; k++) {
        if (strcmp(a->key[k], b->key[k]) != 0)
            return false;
    }
    return true;
}

static int64_t run_seed(const run *run)
{
    return run->has_seed ? run->seed : INT64_MAX;
}

/* Groups in order of their first run; within a group the runs by seed, so
 * that "the first run" of a group is its lowest seed. */
static int make_groups(report *r)
{
    for (size_t i = 0; i < r->n_runs; i++) {
        run *run = &r->runs[i];
        run->key = calloc(r->n_keys ? r->n_keys : 1, sizeof *run->key);
        if (!run->key)
            return AGON_ENOMEM;
        for (size_t k = 0; k < r->n_keys; k++) {
            char v[MAX_VALUE];
            agon__config_value(run->cfg, r->keys[k], v, sizeof v);
            if (!(run->key[k] = strdup(v)))
                return AGON_ENOMEM;
        }
    }
    r->groups = calloc(r->n_runs, sizeof *r->groups);
    if (!r->groups)
        return AGON_ENOMEM;
    for (size_t i = 0; i < r->n_runs; i++) {
        size_t g = 0;
        while (g < r->n_groups &&
               !same_group(&r->runs[r->groups[g].runs[0]], &r->runs[i], r->n_keys))
            g++;
        group *gr = &r->groups[g];
        if (g == r->n_groups) {
            r->n_groups++;
            gr->runs = malloc(r->n_runs * sizeof *gr->runs);
            if (!gr->runs)
                return AGON_ENOMEM;
        }
        /* Insertion by seed; equal seeds keep their input order. */
        size_t at = gr->n;
        while (at > 0 && run_seed(&r->runs[gr->runs[at - 1]]) > run_seed(&r->runs[i])) {
            gr->runs[at] = gr->runs[at - 1];
            at--;
        }
        gr->runs[at] = i;
        gr->n++;
        r->runs[i].group = g;
    }
    for (size_t g = 0; g < r->n_groups; g++) {
        const run *first = &r->runs[r->groups[g].runs[0]];
        size_t len = 16;
        for (size_t k = 0; k < r->n_keys; k++)
            len += strlen(first->key[k]) + 4;   /* ", " and "" for an empty value */
        char *label = malloc(len);
        if (!label)
            return AGON_ENOMEM;
        label[0] = '\0';
        if (r->n_keys == 0)
            strcpy(label, "all runs");
        for (size_t k = 0; k < r->n_keys; k++) {
            if (k)
                strcat(label, ", ");
            strcat(label, first->key[k][0] ? first->key[k] : "\"\"");
        }
        r->groups[g].label = label;
    }
    return 0;
}

/* Per key, the value most runs share (ties: the one met first), for runs
 * with no DIR/base.yaml to diff against. */
static int majority_base(report *r)
{
    char **all;
    size_t n;
    int rc = union_keys(r, &all, &n);
    if (rc != 0)
        return rc;
    r->majority.items = calloc(n ? n : 1, sizeof *r->majority.items);
    if (!r->majority.items) {
        agon__paths_free(all, n);
        return AGON_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        const char *best = NULL;
        size_t best_count = 0;
        for (size_t i = 0; i < r->n_runs; i++) {
            const char *v = leaf_or_none(&r->runs[i].leaves, all[k]);
            size_t count = 0;
            for (size_t j = 0; j < r->n_runs; j++)
                count += strcmp(v, leaf_or_none(&r->runs[j].leaves, all[k])) == 0;
            if (count > best_count) {
                best = v;
                best_count = count;
            }
        }
        agon__config_leaf *leaf = &r->majority.items[r->majority.count];
        leaf->key = all[k];
        all[k] = NULL;
        leaf->value = strdup(best);
        r->majority.count++;
        if (!leaf->value) {
            rc = AGON_ENOMEM;
            break;
        }
    }
    agon__paths_free(all, n);
    return rc;
}

/* ---- samples ----------------------------------------------------------------------- */

/* The rows of `steps` that --steps picks, in log order, without repeats,
 * or SIZE_MAX when out of memory; names the steps the log lacks in
 * missing[cap]. */
static size_t pick_rows(const report_opts *o, const int64_t *steps, int64_t rows, int64_t *out,
                        char *missing, size_t cap)
{
    missing[0] = '\0';
    size_t used = 0;
    bool *want = calloc((size_t)rows, sizeof *want);
    if (!want)
        return SIZE_MAX;
    for (size_t t = 0; t < o->n_steps; t++) {
        const char *tok = o->steps[t];
        if (strcmp(tok, "all") == 0) {
            for (int64_t i = 0; i < rows; i++)
                want[i] = true;
        } else if (strcmp(tok, "first") == 0) {
            want[0] = true;
        } else if (strcmp(tok, "last") == 0) {
            want[rows - 1] = true;
        } else {
            int64_t s = strtoll(tok, NULL, 10);
            int64_t found = -1;
            for (int64_t i = 0; i < rows && found < 0; i++)
                found = steps[i] == s ? i : -1;
            if (found >= 0)
                want[found] = true;
            else if (used < cap)
                used += (size_t)snprintf(missing + used, cap - used, "%s%" PRId64,
                                         used ? ", " : "", s);
        }
    }
    size_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        if (want[i])
            out[n++] = i;
    }
    free(want);
    return n;
}

static int set_note(group *g, const char *fmt, const char *a, const char *b)
{
    size_t len = strlen(fmt) + strlen(a) + strlen(b) + 1;
    free(g->samples_note);
    g->samples_note = malloc(len);
    if (!g->samples_note)
        return AGON_ENOMEM;
    snprintf(g->samples_note, len, fmt, a, b);
    return 0;
}

/* PNG width and height from its IHDR chunk (bytes 16..23). */
static void png_size(sample_view *v)
{
    const unsigned char *p = v->png + 16;
    if (v->png_size < 24)
        return;
    v->png_w = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    v->png_h = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
}

/* The snapshots of the group's first run at the --steps: 2-D points kept
 * for an SVG scatter plot, images drawn by export's grid code as PNG.  A
 * log without usable samples gets a note, not a failure: the rest of the
 * report stands on its own. */
static int group_samples(report *r, group *g)
{
    const run *run = &r->runs[g->runs[0]];
    if (!run->has_samples)
        return set_note(g, "%s has no /samples (log.samples_every: 0)%s", run->file_name, "");
    hid_t file = agon__h5_open_read(run->path, NULL);
    if (file < 0)
        return set_note(g, "%s cannot be opened again%s", run->file_name, "");
    agon__samples *s = NULL;
    int rc = 0;
    if (agon__samples_open(file, run->path, &s) != 0) {
        rc = set_note(g, "the samples of %s cannot be drawn%s", run->file_name, "");
        H5Fclose(file);
        return rc;
    }
    int64_t rows = agon__samples_rows(s);
    int64_t *pick = malloc((size_t)rows * sizeof *pick);
    g->views = calloc((size_t)rows, sizeof *g->views);
    char missing[256];
    if (!pick || !g->views) {
        rc = AGON_ENOMEM;
        goto out;
    }
    size_t n = pick_rows(&r->o, agon__samples_steps(s), rows, pick, missing, sizeof missing);
    if (n == SIZE_MAX)
        rc = AGON_ENOMEM;
    else if (missing[0])
        rc = set_note(g, "not logged by %s: step %s", run->file_name, missing);
    bool points = agon__samples_are_points(s);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        sample_view *v = &g->views[g->n_views];
        v->step = agon__samples_steps(s)[pick[k]];
        v->points = points;
        if (points) {
            v->xy = malloc(agon__samples_values(s) * sizeof *v->xy);
            if (!v->xy) {
                rc = AGON_ENOMEM;
                break;
            }
            v->n = agon__samples_count(s);
            if (agon__samples_read(s, pick[k], v->xy) != 0) {
                free(v->xy);
                v->xy = NULL;
                continue;
            }
        } else {
            if (agon__samples_png(s, pick[k], &v->png, &v->png_size) != 0)
                continue;
            png_size(v);
        }
        g->n_views++;
    }
out:
    free(pick);
    agon__samples_close(s);
    H5Fclose(file);
    return rc;
}

/* ---- numbers for the charts ------------------------------------------------------ */

/* One group's line in one chart: at each drawn point the step, the mean
 * over the seeds and the min..max band. */
typedef struct curve {
    double *x, *mean, *lo, *hi;
    size_t n;           /* drawn points */
    size_t steps;       /* shared steps before thinning */
    size_t seeds;
} curve;

static void curve_fini(curve *c)
{
    free(c->x);
    free(c->mean);
    free(c->lo);
    free(c->hi);
    *c = (curve){0};
}

static const run_series *find_series(const run *run, size_t s)
{
    for (size_t i = 0; i < run->n_cols; i++) {
        if (run->cols[i].series == s && run->cols[i].n > 0)
            return &run->cols[i];
    }
    return NULL;
}

/* The steps every seed of the group logged (steps increase through a
 * table), each with the mean, min and max over the seeds' finite values
 * (NaN where none is finite: a gap in the line); then, past MAX_POINTS,
 * buckets of consecutive steps, each drawn as the mean step, the mean of
 * the means and the min..max envelope of the bands. */
static int group_curve(const report *r, const group *g, size_t s, curve *c)
{
    *c = (curve){0};
    const run_series **rs = calloc(g->n, sizeof *rs);
    size_t *at = calloc(g->n, sizeof *at);
    int rc = 0;
    if (!rs || !at) {
        rc = AGON_ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        const run_series *col = find_series(&r->runs[g->runs[i]], s);
        if (col)
            rs[k++] = col;
    }
    c->seeds = k;
    if (k == 0)
        goto out;
    size_t cap = rs[0]->n;
    c->x = malloc(cap * sizeof *c->x);
    c->mean = malloc(cap * sizeof *c->mean);
    c->lo = malloc(cap * sizeof *c->lo);
    c->hi = malloc(cap * sizeof *c->hi);
    if (!c->x || !c->mean || !c->lo || !c->hi) {
        rc = AGON_ENOMEM;
        goto out;
    }
    for (size_t t = 0; t < rs[0]->n; t++) {
        int64_t step = rs[0]->steps[t];
        bool shared = true;
        for (size_t j = 1; j < k && shared; j++) {
            while (at[j] < rs[j]->n && rs[j]->steps[at[j]] < step)
                at[j]++;
            shared = at[j] < rs[j]->n && rs[j]->steps[at[j]] == step;
        }
        if (!shared)
            continue;
        double sum = 0.0, lo = INFINITY, hi = -INFINITY;
        size_t finite = 0;
        for (size_t j = 0; j < k; j++) {
            double v = j == 0 ? rs[0]->values[t] : rs[j]->values[at[j]];
            if (!isfinite(v))
                continue;
            sum += v;
            finite++;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        c->x[c->n] = (double)step;
        c->mean[c->n] = finite ? sum / (double)finite : NAN;
        c->lo[c->n] = finite ? lo : NAN;
        c->hi[c->n] = finite ? hi : NAN;
        c->n++;
    }
    c->steps = c->n;
    if (c->n <= MAX_POINTS)
        goto out;
    for (size_t b = 0; b < MAX_POINTS; b++) {
        size_t from = b * c->steps / MAX_POINTS, to = (b + 1) * c->steps / MAX_POINTS;
        double xs = 0.0, ms = 0.0, lo = INFINITY, hi = -INFINITY;
        size_t finite = 0;
        for (size_t i = from; i < to; i++) {
            xs += c->x[i];
            if (isfinite(c->mean[i])) {
                ms += c->mean[i];
                finite++;
                lo = fmin(lo, c->lo[i]);
                hi = fmax(hi, c->hi[i]);
            }
        }
        /* b <= from: bucket b only overwrites entries already read. */
        c->x[b] = xs / (double)(to - from);
        c->mean[b] = finite ? ms / (double)finite : NAN;
        c->lo[b] = finite ? lo : NAN;
        c->hi[b] = finite ? hi : NAN;
    }
    c->n = MAX_POINTS;
out:
    free(rs);
    free(at);
    if (rc != 0)
        curve_fini(c);
    return rc;
}

/* An axis from lo to hi with ticks at round numbers (1, 2 or 5 times a
 * power of ten). */
typedef struct axis {
    double lo, hi, step;
} axis;

static axis make_axis(double lo, double hi, bool integer, bool pad)
{
    if (!(lo <= hi)) {
        lo = 0.0;
        hi = 1.0;
    }
    /* A diverging run can log values near DBL_MAX: keep the span finite. */
    if (!isfinite(hi - lo)) {
        lo = fmax(lo, -1e300);
        hi = fmin(hi, 1e300);
    }
    if (hi - lo <= 0.0) {
        double d = fabs(lo) > 0.0 ? fabs(lo) * 0.1 : 1.0;
        lo -= d;
        hi += d;
    } else if (pad) {
        double d = (hi - lo) * 0.05;
        lo -= d;
        hi += d;
    }
    double raw = (hi - lo) / 5.0;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double step = (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
    if (integer && step < 1.0)
        step = 1.0;
    return (axis){lo, hi, step};
}

static void tick_label(const axis *a, double v, char *buf, size_t cap)
{
    if (fabs(v) < a->step * 1e-9)
        v = 0.0;
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (big >= 1e6 || a->step < 1e-4) {
        snprintf(buf, cap, "%.3g", v);
        return;
    }
    int decimals = a->step >= 1.0 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
    snprintf(buf, cap, "%.*f", decimals, v);
}

/* Chart geometry (SVG user units; the page scales the charts). */
enum { CW = 640, CL = 70, CR = 18, CT = 34, PH = 250, LEGEND_ROW = 18 };

typedef struct frame {
    axis x, y;
    double left, top, width, height;
} frame;

static double fx(const frame *f, double v)
{
    return f->left + (v - f->x.lo) / (f->x.hi - f->x.lo) * f->width;
}

static double fy(const frame *f, double v)
{
    return f->top + f->height - (v - f->y.lo) / (f->y.hi - f->y.lo) * f->height;
}

/* Grid lines and tick labels of both axes, and the axis titles. */
static void draw_axes(FILE *f, const frame *fr, const char *x_title, bool y_grid, bool x_grid)
{
    char buf[64];
    fputs("<g class=\"axis\">", f);
    double first = ceil(fr->y.lo / fr->y.step - 1e-9);
    for (int i = 0; y_grid && i < 40; i++) {
        double v = (first + i) * fr->y.step;
        if (v > fr->y.hi + fr->y.step * 1e-9)
            break;
        double y = fy(fr, v);
        tick_label(&fr->y, v, buf, sizeof buf);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                fr->left, fr->left + fr->width, y, y, fr->left - 6, y + 4, buf);
    }
    first = ceil(fr->x.lo / fr->x.step - 1e-9);
    for (int i = 0; i < 40; i++) {
        double v = (first + i) * fr->x.step;
        if (v > fr->x.hi + fr->x.step * 1e-9)
            break;
        double x = fx(fr, v);
        tick_label(&fr->x, v, buf, sizeof buf);
        if (x_grid)
            fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", x,
                    x, fr->top, fr->top + fr->height);
        fprintf(f, "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                x, x, fr->top + fr->height, fr->top + fr->height + 4, x,
                fr->top + fr->height + 17, buf);
    }
    fprintf(f, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
            fr->left, fr->top, fr->width, fr->height);
    if (x_title)
        fprintf(f, "<text class=\"axis-title\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
                   "</text>", fr->left + fr->width / 2, fr->top + fr->height + 34, x_title);
    fputs("</g>", f);
}

/* Legend entries laid out in rows under the plot; widths are estimated
 * from the character count (SVG cannot measure text before rendering). */
typedef struct legend {
    double x, y, right;
    int rows;
} legend;

static double legend_width(const char *label, const char *suffix)
{
    size_t n = utf8_chars(label);
    n = (n > LABEL_CHARS ? LABEL_CHARS + 1 : n) + utf8_chars(suffix);
    return 30.0 + 6.6 * (double)n + 14.0;
}

static void legend_next(legend *l, double w)
{
    if (l->x + w > l->right && l->x > CL) {
        l->x = CL;
        l->y += LEGEND_ROW;
        l->rows++;
    }
}

/* An entry: a swatch of the band's colour crossed by the line (no colour:
 * the band alone), and the label, shortened, with its suffix. */
static void legend_entry(FILE *f, legend *l, const char *colour, const char *label,
                         const char *suffix)
{
    double w = legend_width(label, suffix);
    legend_next(l, w);
    if (f) {
        fputs("<g class=\"legend-item\"><title>", f);
        esc(f, label);
        esc(f, suffix);
        fprintf(f, "</title><rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"10\" "
                   "fill=\"%s\" fill-opacity=\"0.22\"/>", l->x, l->y - 9,
                colour ? colour : "#5f6b7a");
        if (colour)
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"2.2\"/>", l->x, l->x + 22, l->y - 4, l->y - 4, colour);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", l->x + 28, l->y);
        esc_short(f, label, LABEL_CHARS);
        esc(f, suffix);
        fputs("</text></g>", f);
    }
    l->x += w;
}

/* Points of a polyline: the maximal runs of finite values. */
static void draw_curve(FILE *f, const frame *fr, const curve *c, const char *colour)
{
    /* The band: for each run of finite bounds, the upper edge forward and
     * the lower edge back. */
    for (size_t i = 0; i < c->n;) {
        if (!isfinite(c->lo[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < c->n && isfinite(c->lo[j]))
            j++;
        if (j - i >= 2 && c->seeds > 1) {
            fprintf(f, "<polygon class=\"band\" fill=\"%s\" points=\"", colour);
            for (size_t k = i; k < j; k++)
                fprintf(f, "%.1f,%.1f ", fx(fr, c->x[k]), fy(fr, c->hi[k]));
            for (size_t k = j; k-- > i;)
                fprintf(f, "%.1f,%.1f ", fx(fr, c->x[k]), fy(fr, c->lo[k]));
            fputs("\"/>", f);
        }
        i = j;
    }
    for (size_t i = 0; i < c->n;) {
        if (!isfinite(c->mean[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < c->n && isfinite(c->mean[j]))
            j++;
        fprintf(f, "<polyline class=\"line\" stroke=\"%s\" points=\"", colour);
        for (size_t k = i; k < j; k++)
            fprintf(f, "%.1f,%.1f ", fx(fr, c->x[k]), fy(fr, c->mean[k]));
        fputs("\"/>", f);
        i = j;
    }
    /* Few points (a metric evaluated now and then): mark each one, and a
     * band of one point as an error bar. */
    if (c->steps > 40)
        return;
    for (size_t k = 0; k < c->n; k++) {
        if (!isfinite(c->mean[k]))
            continue;
        if (c->seeds > 1 && c->hi[k] > c->lo[k])
            fprintf(f, "<line class=\"whisker\" stroke=\"%s\" x1=\"%.1f\" x2=\"%.1f\" "
                       "y1=\"%.1f\" y2=\"%.1f\"/>", colour, fx(fr, c->x[k]), fx(fr, c->x[k]),
                    fy(fr, c->lo[k]), fy(fr, c->hi[k]));
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.8\" fill=\"%s\"/>", fx(fr, c->x[k]),
                fy(fr, c->mean[k]), colour);
    }
}

static void series_name(const series *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", s->table, s->column);
}

static const char band_label[] = "band: min..max over the seeds";

/* The legend of a chart, or with f NULL only its layout; returns its rows. */
static int chart_legend(FILE *f, const report *r, const curve *cv, double y)
{
    legend lg = {CL, y, CW - CR, 1};
    for (size_t g = 0; g < r->n_groups; g++) {
        if (cv[g].seeds == 0)
            continue;
        char suffix[32];
        snprintf(suffix, sizeof suffix, " (n=%zu)", cv[g].seeds);
        legend_entry(f, &lg, palette[g % PALETTE], r->groups[g].label, suffix);
    }
    legend_entry(f, &lg, NULL, band_label, "");
    return lg.rows;
}

static int write_chart(FILE *f, report *r, size_t s)
{
    curve *cv = calloc(r->n_groups, sizeof *cv);
    if (!cv)
        return AGON_ENOMEM;
    int rc = 0;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    size_t max_steps = 0, thinned = 0;
    for (size_t g = 0; rc == 0 && g < r->n_groups; g++) {
        rc = group_curve(r, &r->groups[g], s, &cv[g]);
        for (size_t k = 0; rc == 0 && k < cv[g].n; k++) {
            x0 = fmin(x0, cv[g].x[k]);
            x1 = fmax(x1, cv[g].x[k]);
            if (isfinite(cv[g].lo[k])) {
                y0 = fmin(y0, cv[g].lo[k]);
                y1 = fmax(y1, cv[g].hi[k]);
            }
        }
        max_steps = cv[g].steps > max_steps ? cv[g].steps : max_steps;
        thinned += cv[g].steps > MAX_POINTS;
    }
    if (rc != 0)
        goto out;
    char name[600];
    series_name(&r->series[s], name, sizeof name);
    int rows = chart_legend(NULL, r, cv, 0);
    double height = CT + PH + 44 + rows * LEGEND_ROW + 6;
    frame fr = {make_axis(x0, x1, true, false), make_axis(y0, y1, false, true), CL, CT,
                CW - CL - CR, PH};
    fputs("<figure class=\"chart\"><svg class=\"agon-chart\" data-series=\"", f);
    esc(f, name);
    fprintf(f, "\" viewBox=\"0 0 %d %.0f\" role=\"img\"><title>", CW, height);
    esc(f, name);
    fprintf(f, ": mean over the seeds of each group, band min..max</title>"
               "<text class=\"chart-title\" x=\"%d\" y=\"20\">", CL);
    esc(f, r->series[s].column);
    fputs(" <tspan class=\"table\">", f);
    esc(f, r->series[s].table);
    fputs("</tspan></text>", f);
    draw_axes(f, &fr, "step", true, true);
    if (!(y0 <= y1))
        fprintf(f, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no finite "
                   "value at the steps shared by a group's seeds</text>",
                fr.left + fr.width / 2, fr.top + fr.height / 2);
    for (size_t g = 0; g < r->n_groups; g++) {
        if (cv[g].n > 0)
            draw_curve(f, &fr, &cv[g], palette[g % PALETTE]);
    }
    chart_legend(f, r, cv, CT + PH + 44 + LEGEND_ROW - 4);
    fputs("</svg><figcaption>Line: mean over the seeds of each group (n = seeds) at the steps "
          "all its seeds logged; shaded band: min..max over the seeds.", f);
    if (thinned)
        fprintf(f, " Thinned for drawing: %zu steps in %d buckets of consecutive steps; each "
                   "point is the bucket mean of the line, and the band spans the min..max over "
                   "the bucket.", max_steps, MAX_POINTS);
    fputs("</figcaption></figure>\n", f);
    r->n_charts++;
out:
    for (size_t g = 0; g < r->n_groups; g++)
        curve_fini(&cv[g]);
    free(cv);
    return rc;
}

/* The final value of each run with the series: its last row, as agon
 * compare takes it. */
static size_t final_values(const report *r, const group *g, size_t s, double *v,
                           const run **who)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n; i++) {
        const run *run = &r->runs[g->runs[i]];
        const run_series *col = find_series(run, s);
        if (!col)
            continue;
        who[n] = run;
        v[n++] = col->values[col->n - 1];
    }
    return n;
}

enum { FL = 190, FR = 24, FT = 40, FROW = 30 };

static int write_final(FILE *f, report *r, size_t s)
{
    double *v = malloc(r->n_runs * sizeof *v);
    const run **who = malloc(r->n_runs * sizeof *who);
    agon__run_stats *st = calloc(r->n_groups, sizeof *st);
    if (!v || !who || !st) {
        free(v);
        free(who);
        free(st);
        return AGON_ENOMEM;
    }
    double x0 = INFINITY, x1 = -INFINITY;
    size_t shown = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        size_t n = final_values(r, &r->groups[g], s, v, who);
        if (n == 0)
            continue;
        shown++;
        agon__run_stats_of(v, n, &st[g]);
        for (size_t i = 0; i < n; i++) {
            if (isfinite(v[i])) {
                x0 = fmin(x0, v[i]);
                x1 = fmax(x1, v[i]);
            }
        }
        if (isfinite(st[g].mean) && isfinite(st[g].ci95)) {
            x0 = fmin(x0, st[g].mean - st[g].ci95);
            x1 = fmax(x1, st[g].mean + st[g].ci95);
        }
    }
    char name[600];
    series_name(&r->series[s], name, sizeof name);
    double height = FT + FROW * (double)shown + 44;
    frame fr = {make_axis(x0, x1, false, true), {0, 1, 1}, FL, FT, CW - FL - FR,
                FROW * (double)shown};
    fputs("<figure class=\"final\"><svg class=\"agon-final\" data-series=\"", f);
    esc(f, name);
    fprintf(f, "\" viewBox=\"0 0 %d %.0f\" role=\"img\"><title>", CW, height);
    esc(f, name);
    fputs(": final value per group, mean with 95% CI and the runs</title>", f);
    fprintf(f, "<text class=\"chart-title\" x=\"14\" y=\"20\">");
    esc(f, r->series[s].column);
    fputs(" <tspan class=\"table\">", f);
    esc(f, r->series[s].table);
    fputs("</tspan> <tspan class=\"table\">final value</tspan></text>", f);
    draw_axes(f, &fr, NULL, false, true);
    size_t row = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        size_t n = final_values(r, &r->groups[g], s, v, who);
        if (n == 0)
            continue;
        const char *colour = palette[g % PALETTE];
        double y = FT + FROW * ((double)row + 0.5);
        fprintf(f, "<g class=\"row\"><text class=\"group\" x=\"%d\" y=\"%.1f\" "
                   "text-anchor=\"end\"><title>", FL - 10, y + 4);
        esc(f, r->groups[g].label);
        fputs("</title>", f);
        esc_short(f, r->groups[g].label, 26);
        fputs("</text>", f);
        const agon__run_stats *t = &st[g];
        if (isfinite(t->mean) && isfinite(t->ci95)) {
            double a = fx(&fr, t->mean - t->ci95), b = fx(&fr, t->mean + t->ci95);
            fprintf(f, "<path class=\"ci\" stroke=\"%s\" d=\"M%.1f %.1fH%.1fM%.1f %.1fv10M%.1f "
                       "%.1fv10\"/>", colour, a, y, b, a, y - 5, b, y - 5);
        }
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(v[i]))
                continue;
            double jitter = ((double)(i % 5) - 2.0) * 2.5;
            fprintf(f, "<circle class=\"seed\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.6\" fill=\"%s\" "
                       "stroke=\"%s\"><title>", fx(&fr, v[i]), y + jitter, colour, colour);
            esc(f, who[i]->file_name);
            fprintf(f, ": %.6g</title></circle>", v[i]);
        }
        if (isfinite(t->mean))
            fprintf(f, "<path class=\"mean\" fill=\"%s\" d=\"M%.1f %.1fl6 6l-6 6l-6 -6z\"/>",
                    colour, fx(&fr, t->mean), y - 6);
        fputs("</g>", f);
        row++;
    }
    fputs("</svg><table class=\"stats\"><thead><tr><th>group</th><th>n</th><th>mean</th>"
          "<th>std</th><th>ci95</th><th>min</th><th>max</th></tr></thead><tbody>", f);
    for (size_t g = 0; g < r->n_groups; g++) {
        if (st[g].n == 0)
            continue;
        fprintf(f, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>",
                palette[g % PALETTE]);
        esc(f, r->groups[g].label);
        fprintf(f, "</td><td class=\"num\">%zu</td>", st[g].n);
        put_number_cell(f, st[g].mean);
        put_number_cell(f, st[g].std);
        put_number_cell(f, st[g].ci95);
        put_number_cell(f, st[g].min);
        put_number_cell(f, st[g].max);
        fputs("</tr>", f);
    }
    fputs("</tbody></table><figcaption>Each run's last logged value. Diamond: mean over the "
          "group's runs; bar: 95% confidence interval of the mean, t(0.975, n&minus;1) "
          "&middot; std / &radic;n as agon compare computes it (none for n = 1); dots: the "
          "individual runs (seeds).</figcaption></figure>\n", f);
    r->n_finals++;
    free(v);
    free(who);
    free(st);
    return 0;
}

/* ---- the page ------------------------------------------------------------------------ */

static const char page_style[] =
    ":root{--fg:#1b2330;--muted:#5a6473;--line:#dde2e8;--bg:#f4f6f8;--card:#fff}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}"
    "main{max-width:1280px;margin:0 auto;padding:26px 30px 70px}"
    "h1{font-size:27px;margin:0 0 2px;letter-spacing:-.01em}"
    "h2{font-size:21px;margin:40px 0 6px;padding-bottom:6px;border-bottom:2px solid var(--line)}"
    "h3{font-size:15px;margin:22px 0 8px;color:var(--muted);font-weight:600}"
    "p.lead{color:var(--muted);margin:2px 0 14px}"
    "nav{margin:10px 0 4px}nav a{color:#1f6fd1;text-decoration:none;margin-right:16px;"
    "font-weight:600}"
    "code{font:13px/1.4 ui-monospace,'DejaVu Sans Mono',monospace;background:#eef1f4;"
    "padding:1px 4px;border-radius:4px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:10px 18px;min-width:120px}"
    ".card b{display:block;font-size:26px;line-height:1.2}.card span{color:var(--muted);"
    "font-size:13px}"
    "table{border-collapse:collapse;background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;font-size:14px}"
    "th,td{padding:5px 12px;border-bottom:1px solid var(--line);text-align:left;"
    "vertical-align:top}"
    "figure table{font-size:13px}figure th,figure td{padding:4px 7px}"
    "figure td:first-child{max-width:210px;overflow:hidden;text-overflow:ellipsis;"
    "white-space:nowrap}"
    "th{background:#eef1f4;font-weight:600}td.num{text-align:right;"
    "font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".sw{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:7px;"
    "vertical-align:-1px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:18px}"
    "figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:12px 14px}"
    "figure svg{display:block;width:100%;height:auto}"
    "figcaption{font-size:12.5px;color:var(--muted);margin-top:6px}"
    "figure table{margin-top:10px;width:100%}"
    "svg text{font-size:12px;fill:#4a5463}"
    "svg .chart-title{font-size:15px;font-weight:600;fill:var(--fg)}"
    "svg .chart-title .table{font-size:12px;font-weight:400;fill:var(--muted)}"
    "svg .axis-title{fill:var(--muted)}svg .empty{fill:#b03030}"
    "svg .grid{stroke:#e7eaee;stroke-width:1}svg .tick{stroke:#9aa3ae}"
    "svg .frame{fill:none;stroke:#b9c0c8}"
    "svg .line{fill:none;stroke-width:1.8;stroke-linejoin:round}"
    "svg .band{fill-opacity:.18;stroke:none}svg .whisker{stroke-width:1.2;stroke-opacity:.6}"
    "svg .ci{stroke-width:2.2;fill:none}svg .seed{fill-opacity:.35;stroke-width:1.2}"
    "svg .mean{stroke:#fff;stroke-width:1}svg .group{font-size:13px;fill:var(--fg)}"
    ".samples{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;margin-bottom:18px}"
    ".samples figure{padding:8px 10px}"
    ".samples svg{width:250px}"
    ".samples img{image-rendering:pixelated;display:block}"
    ".note{color:var(--muted);font-style:italic}"
    ".status{font-weight:600}.status-completed{color:#1a7f37}.status-diverged{color:#c0392b}"
    ".status-failed{color:#c0392b}.status-interrupted{color:#b7791f}"
    ".status-running{color:#1f6fd1}"
    "ul.diff{margin:0;padding-left:18px}ul.skipped li{margin:2px 0}"
    "footer{margin-top:50px;color:var(--muted);font-size:12.5px}";

static const char *const statuses[] = {"completed", "diverged", "failed", "interrupted",
                                       "running"};

static void put_status(FILE *f, const char *status)
{
    fputs("<span class=\"status status-", f);
    esc(f, status);
    fputs("\">", f);
    esc(f, status);
    fputs("</span>", f);
}

static void write_header(FILE *f, const report *r)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
          "<meta name=\"generator\" content=\"agon report ", f);
    esc(f, agon_version());
    fputs("\"><title>", f);
    esc(f, r->o.title);
    fprintf(f, "</title><style>%s</style></head><body><main>\n<h1>", page_style);
    esc(f, r->o.title);
    fputs("</h1><p class=\"lead\">", f);
    for (size_t i = 0; i < r->o.n_inputs; i++) {
        fputs(i ? ", <code>" : "<code>", f);
        esc(f, r->o.inputs[i]);
        fputs("</code>", f);
    }
    fprintf(f, " &middot; agon %s</p><nav><a href=\"#runs\">Runs</a><a href=\"#curves\">Curves"
               "</a><a href=\"#final\">Final values</a><a href=\"#samples\">Samples</a>"
               "<a href=\"#configs\">Configs</a></nav>\n",
            agon_version());

    size_t counts[5] = {0}, other = 0;
    for (size_t i = 0; i < r->n_runs; i++) {
        size_t k = 0;
        while (k < 5 && !(r->runs[i].status && strcmp(r->runs[i].status, statuses[k]) == 0))
            k++;
        if (k < 5)
            counts[k]++;
        else
            other++;
    }
    fprintf(f, "<section id=\"runs\"><div class=\"cards\"><div class=\"card\"><b>%zu</b>"
               "<span>runs</span></div><div class=\"card\"><b>%zu</b><span>groups</span></div>",
            r->n_runs, r->n_groups);
    for (size_t k = 0; k < 5; k++)
        fprintf(f, "<div class=\"card\"><b class=\"status-%s\">%zu</b><span>%s</span></div>",
                statuses[k], counts[k], statuses[k]);
    if (other)
        fprintf(f, "<div class=\"card\"><b>%zu</b><span>other status</span></div>", other);
    fprintf(f, "<div class=\"card\"><b>%zu</b><span>files skipped</span></div></div>\n",
            r->n_skipped);

    fputs("<h2>Groups</h2><p class=\"lead\">", f);
    if (r->n_keys == 0)
        fputs("All runs share one config (apart from the seed): one group.", f);
    else if (r->o.by_given)
        fputs("Runs grouped by the <code>--by</code> keys.", f);
    else
        fputs("Runs grouped by every config key whose value differs between them, the seed "
              "aside: each group holds the seeds of one setting.", f);
    fputs("</p><table class=\"groups\"><thead><tr><th>group</th>", f);
    for (size_t k = 0; k < r->n_keys; k++) {
        fputs("<th><code>", f);
        esc(f, r->keys[k]);
        fputs("</code></th>", f);
    }
    fputs("<th>n</th><th>seeds</th><th>status</th></tr></thead><tbody>", f);
    for (size_t g = 0; g < r->n_groups; g++) {
        const group *gr = &r->groups[g];
        const run *first = &r->runs[gr->runs[0]];
        fprintf(f, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>G%zu</td>",
                palette[g % PALETTE], g + 1);
        for (size_t k = 0; k < r->n_keys; k++) {
            fputs("<td>", f);
            esc_value(f, first->key[k]);
            fputs("</td>", f);
        }
        fprintf(f, "<td class=\"num\">%zu</td><td>", gr->n);
        for (size_t i = 0; i < gr->n; i++) {
            const run *run = &r->runs[gr->runs[i]];
            if (run->has_seed)
                fprintf(f, "%s%" PRId64, i ? ", " : "", run->seed);
            else
                fprintf(f, "%s?", i ? ", " : "");
        }
        fputs("</td><td>", f);
        for (size_t i = 0; i < gr->n; i++) {
            const char *st = r->runs[gr->runs[i]].status;
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++) {
                const char *o = r->runs[gr->runs[j]].status;
                seen = (o && st && strcmp(o, st) == 0) || (!o && !st);
            }
            if (seen)
                continue;
            size_t n = 0;
            for (size_t j = 0; j < gr->n; j++) {
                const char *o = r->runs[gr->runs[j]].status;
                n += (o && st && strcmp(o, st) == 0) || (!o && !st);
            }
            if (i)
                fputs(", ", f);
            put_status(f, st ? st : "unknown");
            fprintf(f, " %zu", n);
        }
        fputs("</td></tr>", f);
    }
    fputs("</tbody></table>\n", f);
    if (r->n_skipped) {
        fprintf(f, "<h3>Skipped files (%zu)</h3><ul class=\"skipped\">", r->n_skipped);
        for (size_t i = 0; i < r->n_skipped; i++) {
            fputs("<li><code>", f);
            esc(f, r->skipped[i].path);
            fputs("</code>: ", f);
            esc(f, r->skipped[i].why);
            fputs("</li>", f);
        }
        fputs("</ul>\n", f);
    }
    fputs("</section>\n", f);
}

/* One heading per table: the training scalars first, then each metric. */
static int write_series_sections(FILE *f, report *r, bool finals)
{
    for (size_t s = 0; s < r->n_series; s++) {
        bool new_table = s == 0 || strcmp(r->series[s].table, r->series[s - 1].table) != 0;
        if (new_table) {
            if (s)
                fputs("</div>", f);
            if (strcmp(r->series[s].table, "scalars") == 0)
                fputs("<h3>Training scalars <code>/scalars</code></h3>", f);
            else {
                fputs("<h3>Metric <code>/metrics/", f);
                esc(f, r->series[s].table);
                fputs("</code></h3>", f);
            }
            fputs("<div class=\"grid\">", f);
        }
        int rc = finals ? write_final(f, r, s) : write_chart(f, r, s);
        if (rc != 0)
            return rc;
    }
    if (r->n_series)
        fputs("</div>", f);
    else
        fputs("<p class=\"note\">No run has a table with numeric columns.</p>", f);
    return 0;
}

/* Same range for every scatter plot: centred on all points shown, with 5%
 * of their larger extent as margin, one scale for both axes.  False when
 * there is no finite 2-D point to show. */
static bool scatter_range(const report *r, double *x0, double *y0, double *span)
{
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    for (size_t g = 0; g < r->n_groups; g++) {
        for (size_t v = 0; v < r->groups[g].n_views; v++) {
            const sample_view *sv = &r->groups[g].views[v];
            for (int64_t i = 0; sv->points && i < sv->n && i < MAX_SCATTER; i++) {
                const float *p = sv->xy + 2 * i;
                if (!isfinite(p[0]) || !isfinite(p[1]))
                    continue;
                for (int k = 0; k < 2; k++) {
                    lo[k] = fmin(lo[k], p[k]);
                    hi[k] = fmax(hi[k], p[k]);
                }
            }
        }
    }
    if (!(lo[0] <= hi[0])) {
        *x0 = *y0 = -1.0;
        *span = 2.0;
        return false;
    }
    double extent = fmax(hi[0] - lo[0], hi[1] - lo[1]);
    if (!isfinite(extent * 1.1))
        extent = 1e300;
    *span = (extent > 0.0 ? extent : 1.0) * 1.1;
    *x0 = (lo[0] + hi[0]) / 2.0 - *span / 2.0;
    *y0 = (lo[1] + hi[1]) / 2.0 - *span / 2.0;
    return true;
}

enum { SS = 250, SP = 6 };  /* scatter side and padding */

static void write_scatter(FILE *f, const sample_view *v, const char *colour, double x0, double y0,
                          double span)
{
    const double inner = SS - 2 * SP;
    fprintf(f, "<svg class=\"agon-samples\" data-step=\"%" PRId64 "\" viewBox=\"0 0 %d %d\" "
               "role=\"img\"><title>generator samples at step %" PRId64 "</title>"
               "<rect class=\"frame\" x=\"0.5\" y=\"0.5\" width=\"%d\" height=\"%d\"/>",
            v->step, SS, SS, v->step, SS - 1, SS - 1);
    if (x0 < 0.0 && x0 + span > 0.0) {
        double x = SP + (0.0 - x0) / span * inner;
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%d\"/>", x, x, SS);
    }
    if (y0 < 0.0 && y0 + span > 0.0) {
        double y = SP + inner - (0.0 - y0) / span * inner;
        fprintf(f, "<line class=\"grid\" x1=\"0\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", SS, y, y);
    }
    /* Zero-length segments with round caps: one path of dots, a fraction
     * of the bytes of one <circle> per point. */
    fprintf(f, "<path stroke=\"%s\" stroke-width=\"3.2\" stroke-linecap=\"round\" "
               "stroke-opacity=\"0.75\" fill=\"none\" d=\"", colour);
    for (int64_t i = 0; i < v->n && i < MAX_SCATTER; i++) {
        const float *p = v->xy + 2 * i;
        if (!isfinite(p[0]) || !isfinite(p[1]))
            continue;
        fprintf(f, "M%.1f %.1fh0", SP + (p[0] - x0) / span * inner,
                SP + inner - (p[1] - y0) / span * inner);
    }
    fputs("\"/></svg>", f);
}

static void write_samples(FILE *f, report *r)
{
    fputs("<section id=\"samples\"><h2>Samples</h2><p class=\"lead\">Generator samples of each "
          "group's first run (its lowest seed) at the chosen steps (<code>--steps ", f);
    esc(f, r->o.steps_arg);
    fputs("</code>).", f);
    bool capped = false, images = false;
    for (size_t g = 0; g < r->n_groups; g++) {
        for (size_t v = 0; v < r->groups[g].n_views; v++) {
            const sample_view *sv = &r->groups[g].views[v];
            capped = capped || (sv->points && sv->n > MAX_SCATTER);
            images = images || !sv->points;
        }
    }
    double x0, y0, span;
    if (scatter_range(r, &x0, &y0, &span))
        fprintf(f, " 2-D samples: every plot shows x from %.4g to %.4g and y from %.4g to %.4g "
                   "(one scale for both axes; grey lines: x = 0 and y = 0).", x0, x0 + span, y0,
                y0 + span);
    if (capped)
        fprintf(f, " Of each 2-D snapshot the first %d samples are drawn.", MAX_SCATTER);
    if (images)
        fputs(" Image samples: grids as <code>agon export --png</code> draws them.", f);
    fputs("</p>\n", f);
    for (size_t g = 0; g < r->n_groups; g++) {
        const group *gr = &r->groups[g];
        const run *first = &r->runs[gr->runs[0]];
        fprintf(f, "<h3><span class=\"sw\" style=\"background:%s\"></span>", palette[g % PALETTE]);
        esc(f, gr->label);
        fputs(" &middot; <code>", f);
        esc(f, first->file_name);
        fputs("</code>", f);
        if (first->has_seed)
            fprintf(f, " (seed %" PRId64 ")", first->seed);
        fputs("</h3>", f);
        if (gr->samples_note) {
            fputs("<p class=\"note\">", f);
            esc(f, gr->samples_note);
            fputs("</p>", f);
        }
        if (gr->n_views == 0)
            continue;
        fputs("<div class=\"samples\">", f);
        for (size_t v = 0; v < gr->n_views; v++) {
            const sample_view *sv = &gr->views[v];
            fputs("<figure>", f);
            if (sv->points) {
                write_scatter(f, sv, palette[g % PALETTE], x0, y0, span);
            } else {
                /* Small tiles (28x28) are shown twice their size, pixelated. */
                unsigned zoom = sv->png_w && sv->png_w <= 300 ? 2 : 1;
                fprintf(f, "<img class=\"agon-samples\" data-step=\"%" PRId64 "\" width=\"%u\" "
                           "height=\"%u\" alt=\"generator samples at step %" PRId64 "\" "
                           "src=\"data:image/png;base64,",
                        sv->step, sv->png_w * zoom, sv->png_h * zoom, sv->step);
                base64(f, sv->png, sv->png_size);
                fputs("\">", f);
            }
            fprintf(f, "<figcaption>step %" PRId64 "</figcaption></figure>", sv->step);
            r->n_views++;
        }
        fputs("</div>\n", f);
    }
    fputs("</section>\n", f);
}

/* The run's config keys that differ from its base, as "key: base -> run". */
static void write_diff(FILE *f, const run *run, const agon__config_leaves *base)
{
    size_t shown = 0;
    fputs("<ul class=\"diff\">", f);
    for (int pass = 0; pass < 2; pass++) {
        /* Keys of the run, then keys only the base has. */
        const agon__config_leaves *l = pass == 0 ? &run->leaves : base;
        for (size_t i = 0; i < l->count; i++) {
            const char *key = l->items[i].key;
            if (pass == 1 && agon__config_leaves_get(&run->leaves, key))
                continue;
            const char *b = leaf_or_none(base, key);
            const char *v = leaf_or_none(&run->leaves, key);
            if (strcmp(b, v) == 0)
                continue;
            fputs("<li><code>", f);
            esc(f, key);
            fputs("</code>: ", f);
            esc_value(f, b);
            fputs(" -&gt; ", f);
            esc_value(f, v);
            fputs("</li>", f);
            shown++;
        }
    }
    fputs("</ul>", f);
    if (shown == 0)
        fputs("<span class=\"note\">same as the base</span>", f);
}

static void write_configs(FILE *f, const report *r)
{
    bool any_base = false, any_majority = false;
    for (size_t i = 0; i < r->n_runs; i++) {
        bool has = r->base[r->runs[i].input] != NULL;
        any_base = any_base || has;
        any_majority = any_majority || !has;
    }
    fputs("<section id=\"configs\"><h2>Configs</h2><p class=\"lead\">Each run's config keys that "
          "differ from the base, as <code>key: base -&gt; run</code>. The base is ", f);
    if (any_base) {
        fputs("the sweep's <code>base.yaml</code> (", f);
        for (size_t i = 0, n = 0; i < r->o.n_inputs; i++) {
            if (!r->base[i])
                continue;
            fputs(n++ ? ", <code>" : "<code>", f);
            esc(f, r->o.inputs[i]);
            fputs("/base.yaml</code>", f);
        }
        fputs(")", f);
        if (any_majority)
            fputs(" for the runs of that folder; for the others, ", f);
    }
    if (any_majority)
        fputs("per key, the value most runs share", f);
    fputs(". <code>(none)</code>: the key is absent.</p><table class=\"configs\"><thead><tr>"
          "<th>group</th><th>run id</th><th>file</th><th>status</th><th>steps</th>"
          "<th>differences</th></tr></thead><tbody>\n", f);
    for (size_t g = 0; g < r->n_groups; g++) {
        for (size_t k = 0; k < r->groups[g].n; k++) {
            const run *run = &r->runs[r->groups[g].runs[k]];
            fprintf(f, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>G%zu</td>"
                       "<td><code>", palette[g % PALETTE], g + 1);
            esc(f, run->run_id ? run->run_id : "?");
            fputs("</code></td><td>", f);
            esc(f, run->file_name);
            fputs("</td><td>", f);
            put_status(f, run->status ? run->status : "unknown");
            if (run->status_message && run->status_message[0]) {
                fputs("<br><span class=\"note\">", f);
                esc(f, run->status_message);
                fputs("</span>", f);
            }
            fputs("</td><td class=\"num\">", f);
            if (run->has_done)
                fprintf(f, "%" PRId64, run->steps_done);
            else
                fputs("?", f);
            if (run->has_planned)
                fprintf(f, "/%" PRId64, run->steps_planned);
            fputs("</td><td>", f);
            const agon__config_leaves *base =
                r->base[run->input] ? &r->base_leaves[run->input] : &r->majority;
            write_diff(f, run, base);
            fputs("</td></tr>\n", f);
        }
    }
    fputs("</tbody></table></section>\n", f);
}

static int write_page(FILE *f, report *r)
{
    write_header(f, r);
    fputs("<section id=\"curves\"><h2>Curves</h2><p class=\"lead\">One chart per logged series. "
          "Each line is a group: the mean over its seeds at every step they all logged; the "
          "shaded band spans the min..max over the seeds.</p>\n", f);
    int rc = write_series_sections(f, r, false);
    if (rc != 0)
        return rc;
    fputs("</section>\n<section id=\"final\"><h2>Final values</h2><p class=\"lead\">The last "
          "logged value of every run, per group: mean, standard deviation and 95% confidence "
          "interval as <code>agon compare</code> prints them.</p>\n", f);
    rc = write_series_sections(f, r, true);
    if (rc != 0)
        return rc;
    fputs("</section>\n", f);
    write_samples(f, r);
    write_configs(f, r);
    fputs("<footer>Written by <code>agon report</code>. Every chart is inline SVG; the page "
          "needs no network.</footer></main></body></html>\n", f);
    return 0;
}

/* Writes the page through a temporary file beside -o and a rename. */
static int write_report(report *r)
{
    const char *out = r->o.output;
    const char *slash = strrchr(out, '/');
    size_t dir_len = slash ? (size_t)(slash - out) + 1 : 0;
    char *tmp = malloc(strlen(out) + 16);
    if (!tmp)
        return out_of_memory();
    sprintf(tmp, "%.*s.%s.XXXXXX", (int)dir_len, out, out + dir_len);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot write report: %s; choose a folder you can write to\n", out,
                strerror(errno));
        free(tmp);
        return AGON_EIO;
    }
    /* mkstemp makes the file private; a report is as readable as any file
     * the user creates. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "w");
    int rc = 0, saved = 0;
    if (!f) {
        saved = errno;
        close(fd);
        rc = AGON_EIO;
    } else {
        errno = 0;
        rc = write_page(f, r);
        if (rc == 0 && (fflush(f) != 0 || ferror(f))) {
            saved = errno ? errno : EIO;
            rc = AGON_EIO;
        }
        if (fclose(f) != 0 && rc == 0) {
            saved = errno;
            rc = AGON_EIO;
        }
    }
    if (rc == 0 && rename(tmp, out) != 0) {
        saved = errno;
        rc = AGON_EIO;
    }
    if (rc != 0) {
        unlink(tmp);
        if (rc == AGON_EIO)
            fprintf(stderr, "%s: cannot write report: %s; check the space and permissions of "
                    "its folder\n", out, strerror(saved));
        else
            out_of_memory();
    }
    free(tmp);
    return rc;
}

static void report_fini(report *r)
{
    for (size_t i = 0; i < r->n_runs; i++)
        run_fini(&r->runs[i], r->n_keys);
    free(r->runs);
    for (size_t i = 0; i < r->n_series; i++) {
        free(r->series[i].table);
        free(r->series[i].column);
    }
    free(r->series);
    for (size_t g = 0; r->groups && g < r->n_groups; g++) {
        group *gr = &r->groups[g];
        for (size_t v = 0; v < gr->n_views; v++) {
            free(gr->views[v].xy);
            free(gr->views[v].png);
        }
        free(gr->views);
        free(gr->runs);
        free(gr->label);
        free(gr->samples_note);
    }
    free(r->groups);
    for (size_t i = 0; i < r->n_skipped; i++)
        free(r->skipped[i].path);
    free(r->skipped);
    if (r->keys)
        agon__paths_free(r->keys, r->n_keys);
    for (size_t i = 0; r->base && i < r->o.n_inputs; i++) {
        agon_config_destroy(r->base[i]);
        agon__config_leaves_fini(&r->base_leaves[i]);
    }
    free(r->base);
    free(r->base_leaves);
    agon__config_leaves_fini(&r->majority);
    free(r->o.inputs);
    free(r->o.keys_text);
    free(r->o.keys);
    free(r->o.steps_text);
}

/* "agon report: INPUT, INPUT" when --title is not given. */
static char *default_title(const report_opts *o)
{
    size_t len = 32;
    for (size_t i = 0; i < o->n_inputs; i++)
        len += strlen(o->inputs[i]) + 2;
    char *t = malloc(len);
    if (!t)
        return NULL;
    strcpy(t, "agon report: ");
    for (size_t i = 0; i < o->n_inputs; i++) {
        if (i)
            strcat(t, ", ");
        strcat(t, o->inputs[i]);
    }
    return t;
}

int agon_cli_report(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    report r = {0};
    char *title = NULL;
    int rc = parse_args(argc, argv, &r.o);
    if (rc == 0)
        rc = read_inputs(&r);
    if (rc == 0 && r.n_runs == 0) {
        fprintf(stderr, "agon report: no usable run log among the inputs; give logs written by "
                "agon run or folders of them\n");
        rc = AGON_EDATA;
    }
    if (rc == 0)
        rc = choose_keys(&r);
    if (rc == 0)
        rc = make_groups(&r);
    if (rc == 0)
        rc = majority_base(&r);
    for (size_t g = 0; rc == 0 && g < r.n_groups; g++)
        rc = group_samples(&r, &r.groups[g]);
    if (rc == 0 && !r.o.title) {
        title = default_title(&r.o);
        r.o.title = title;
        if (!title)
            rc = AGON_ENOMEM;
    }
    if (rc == AGON_ENOMEM)
        out_of_memory();
    if (rc == 0)
        rc = write_report(&r);
    if (rc == 0) {
        printf("%s\n", r.o.output);
        printf("%zu run%s in %zu group%s, %zu file%s skipped: %zu curve charts, %zu "
               "final-value charts, %zu sample views\n",
               r.n_runs, r.n_runs == 1 ? "" : "s", r.n_groups, r.n_groups == 1 ? "" : "s",
               r.n_skipped, r.n_skipped == 1 ? "" : "s", r.n_charts, r.n_finals, r.n_views);
    }
    free(title);
    report_fini(&r);
    return rc > 0 ? 0 : rc;
}
