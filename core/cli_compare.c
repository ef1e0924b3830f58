/* `agon compare LOGS_OR_DIRS... --by KEYS --metric TABLE/COLUMN`: one value
 * per run log (its last row, or its best), grouped by config keys, with
 * mean, standard deviation, 95% confidence interval and n per group
 * (docs/compare.md). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agon/config.h"
#include "agon/error.h"
#include "cli.h"
#include "cli_h5.h"

static const char compare_usage[] =
    "usage: agon compare RUN.h5|DIR... --metric TABLE/COLUMN [--by KEY[,KEY...]]\n"
    "                    [--best max|min] [--format text|csv|markdown]";

enum { MAX_KEYS = 8, MAX_VALUE = 256 };

typedef enum compare_format { FORMAT_TEXT, FORMAT_CSV, FORMAT_MARKDOWN } compare_format;

typedef struct compare_opts {
    const char **inputs;
    size_t n_inputs;
    char table[256], column[256];   /* "/metrics/<name>" or "/scalars", and the column */
    const char *metric;             /* as given */
    char *keys[MAX_KEYS];
    size_t n_keys;
    char *keys_text;                /* owned copy that keys point into */
    int best;                       /* 0: last row; 1: max; -1: min */
    compare_format format;
} compare_opts;

/* One run: its group's key values and its value. */
typedef struct run_value {
    char key[MAX_KEYS][MAX_VALUE];
    double value;
} run_value;

typedef struct run_list {
    run_value *items;
    size_t count, cap;
} run_list;

static int usage_fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "agon compare: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; %s\n", compare_usage);
    return AGON_EUSAGE;
}

static int parse_metric(compare_opts *o, const char *text)
{
    const char *slash = strrchr(text, '/');
    if (!slash || slash == text || !slash[1] || strchr(text, '/') != slash)
        return usage_fail("--metric takes TABLE/COLUMN (mode_coverage/modes or scalars/loss_d), "
                          "not '%s'", text);
    size_t n = (size_t)(slash - text);
    if (n >= 200 || strlen(slash + 1) >= sizeof ((compare_opts *)0)->column)
        return usage_fail("--metric '%s' is too long", text);
    if (n == 7 && strncmp(text, "scalars", 7) == 0)
        snprintf(o->table, sizeof o->table, "/scalars");
    else
        snprintf(o->table, sizeof o->table, "/metrics/%.*s", (int)n, text);
    snprintf(o->column, sizeof o->column, "%s", slash + 1);
    o->metric = text;
    return 0;
}

static int parse_args(int argc, char **argv, compare_opts *o)
{
    o->inputs = calloc((size_t)argc, sizeof *o->inputs);
    if (!o->inputs)
        return AGON_ENOMEM;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            printf("%s\n", compare_usage);
            return 1;
        }
        bool takes = strcmp(a, "--metric") == 0 || strcmp(a, "--by") == 0 ||
                     strcmp(a, "--best") == 0 || strcmp(a, "--format") == 0;
        if (!takes) {
            if (a[0] == '-' && a[1] != '\0')
                return usage_fail("unknown option '%s'", a);
            o->inputs[o->n_inputs++] = a;
            continue;
        }
        if (i + 1 >= argc)
            return usage_fail("option '%s' needs a value", a);
        const char *v = argv[++i];
        int rc = 0;
        if (strcmp(a, "--metric") == 0) {
            rc = parse_metric(o, v);
        } else if (strcmp(a, "--by") == 0) {
            free(o->keys_text);
            o->keys_text = strdup(v);
            o->n_keys = 0;
            for (char *k = o->keys_text ? strtok(o->keys_text, ",") : NULL; k;
                 k = strtok(NULL, ",")) {
                if (o->n_keys == MAX_KEYS)
                    return usage_fail("--by takes at most 8 keys, not '%s'", v);
                o->keys[o->n_keys++] = k;
            }
            if (o->n_keys == 0)
                return usage_fail("--by takes config keys such as loss.plugin, not '%s'", v);
        } else if (strcmp(a, "--best") == 0) {
            if (strcmp(v, "max") == 0)
                o->best = 1;
            else if (strcmp(v, "min") == 0)
                o->best = -1;
            else
                return usage_fail("--best takes max or min, not '%s'", v);
        } else if (strcmp(v, "text") == 0) {
            o->format = FORMAT_TEXT;
        } else if (strcmp(v, "csv") == 0) {
            o->format = FORMAT_CSV;
        } else if (strcmp(v, "markdown") == 0) {
            o->format = FORMAT_MARKDOWN;
        } else {
            return usage_fail("--format takes text, csv or markdown, not '%s'", v);
        }
        if (rc != 0)
            return rc;
    }
    if (o->n_inputs == 0)
        return usage_fail("%s", "no run logs or folders given");
    if (!o->metric)
        return usage_fail("%s", "--metric TABLE/COLUMN is missing");
    return 0;
}

/* The run's value: the column's last row, or its largest or smallest
 * finite value.  0 when found, 1 when the log lacks it (told on stderr). */
static int run_metric(hid_t file, const char *path, const compare_opts *o, double *value)
{
    hid_t g = H5Lexists(file, o->table + 1, H5P_DEFAULT) > 0 ? H5Gopen2(file, o->table, H5P_DEFAULT)
                                                              : H5I_INVALID_HID;
    if (g < 0) {
        fprintf(stderr, "%s: skipped: no table %s\n", path, o->table);
        return 1;
    }
    agon__h5_columns cols = {0};
    agon__h5_table_columns(g, &cols);
    bool has = false;
    for (size_t i = 0; i < cols.count; i++)
        has = has || strcmp(cols.names[i], o->column) == 0;
    int64_t rows = has ? agon__h5_table_rows(g, &cols) : 0;
    int rc = 1;
    if (!has) {
        fprintf(stderr, "%s: skipped: %s has no column '%s'\n", path, o->table, o->column);
    } else if (rows <= 0) {
        fprintf(stderr, "%s: skipped: %s/%s has no rows yet\n", path, o->table, o->column);
    } else {
        double *v = malloc((size_t)rows * sizeof *v);
        hid_t ds = H5Dopen2(g, o->column, H5P_DEFAULT);
        hsize_t start = 0, count = (hsize_t)rows;
        if (v && ds >= 0 && agon__h5_read_block(ds, 1, &start, &count, H5T_NATIVE_DOUBLE, v)) {
            *value = v[rows - 1];
            if (o->best != 0) {
                *value = NAN;
                for (int64_t r = 0; r < rows; r++) {
                    if (isfinite(v[r]) &&
                        (isnan(*value) || (o->best > 0 ? v[r] > *value : v[r] < *value)))
                        *value = v[r];
                }
            }
            rc = 0;
        } else {
            fprintf(stderr, "%s: skipped: %s/%s cannot be read\n", path, o->table, o->column);
        }
        if (ds >= 0)
            H5Dclose(ds);
        free(v);
    }
    agon__h5_columns_fini(&cols);
    H5Gclose(g);
    return rc;
}

static int add_run(run_list *l, const char *path, const compare_opts *o)
{
    hid_t file;
    agon_config *cfg;
    const char *why;
    if (agon__h5_open_run(path, &file, &cfg, &why) != 0) {
        fprintf(stderr, "%s: skipped: %s\n", path, why);
        return 0;
    }
    run_value rv;
    if (run_metric(file, path, o, &rv.value) == 0) {
        for (size_t k = 0; k < o->n_keys; k++)
            agon__config_value(cfg, o->keys[k], rv.key[k], MAX_VALUE);
        if (l->count == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 16;
            run_value *grown = realloc(l->items, cap * sizeof *grown);
            if (!grown) {
                agon_config_destroy(cfg);
                H5Fclose(file);
                return AGON_ENOMEM;
            }
            l->items = grown;
            l->cap = cap;
        }
        l->items[l->count++] = rv;
    }
    agon_config_destroy(cfg);
    H5Fclose(file);
    return 0;
}

/* Every *.h5 file of `dir`, in name order. */
static int add_dir(run_list *l, const char *dir, const compare_opts *o)
{
    char **names;
    size_t n;
    int rc = agon__h5_list_dir(dir, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = add_run(l, names[i], o);
    if (names)
        agon__paths_free(names, n);
    return rc;
}

/* Groups in order of first appearance (runs come in file-name order). */
static bool same_group(const run_value *a, const run_value *b, size_t n_keys)
{
    for (size_t k = 0; k < n_keys; k++) {
        if (strcmp(a->key[k], b->key[k]) != 0)
            return false;
    }
    return true;
}

typedef struct group_row {
    const run_value *first;
    size_t n;
    double mean, std, ci, min, max;
} group_row;

static void print_cell(const compare_opts *o, const char *text, int width, bool first, bool right)
{
    if (o->format == FORMAT_CSV) {
        bool quote = strpbrk(text, ",\"\n") != NULL;
        printf("%s", first ? "" : ",");
        if (!quote) {
            printf("%s", text);
            return;
        }
        putchar('"');
        for (const char *c = text; *c; c++) {
            if (*c == '"')
                putchar('"');
            putchar(*c);
        }
        putchar('"');
    } else if (o->format == FORMAT_MARKDOWN) {
        printf("| %s ", text);
    } else {
        printf("%s%*s", first ? "" : "  ", right ? width : -width, text);
    }
}

static void print_table(const compare_opts *o, const group_row *rows, size_t n_rows)
{
    enum { STAT_COLS = 6 };
    static const char *const stat_names[STAT_COLS] = {"n", "mean", "std", "ci95", "min", "max"};
    size_t n_cols = o->n_keys + STAT_COLS;
    char(*cells)[MAX_VALUE] = calloc((n_rows + 1) * n_cols, sizeof *cells);
    int *width = calloc(n_cols, sizeof *width);
    if (!cells || !width) {
        free(cells);
        free(width);
        return;
    }
    for (size_t k = 0; k < o->n_keys; k++)
        snprintf(cells[k], MAX_VALUE, "%s", o->keys[k]);
    for (size_t s = 0; s < STAT_COLS; s++)
        snprintf(cells[o->n_keys + s], MAX_VALUE, "%s", stat_names[s]);
    const char *num = o->format == FORMAT_CSV ? "%.17g" : "%.4g";
    for (size_t r = 0; r < n_rows; r++) {
        char(*row)[MAX_VALUE] = cells + (r + 1) * n_cols;
        for (size_t k = 0; k < o->n_keys; k++)
            snprintf(row[k], MAX_VALUE, "%s", rows[r].first->key[k]);
        const double stats[STAT_COLS - 1] = {rows[r].mean, rows[r].std, rows[r].ci, rows[r].min,
                                             rows[r].max};
        snprintf(row[o->n_keys], MAX_VALUE, "%zu", rows[r].n);
        for (size_t s = 0; s < STAT_COLS - 1; s++)
            snprintf(row[o->n_keys + 1 + s], MAX_VALUE, num, stats[s]);
    }
    for (size_t r = 0; r <= n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++) {
            int w = (int)strlen(cells[r * n_cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r <= n_rows; r++) {
        for (size_t c = 0; c < n_cols; c++)
            print_cell(o, cells[r * n_cols + c], width[c], c == 0, c >= o->n_keys);
        printf(o->format == FORMAT_MARKDOWN ? "|\n" : "\n");
        if (r == 0 && o->format == FORMAT_MARKDOWN) {
            for (size_t c = 0; c < n_cols; c++)
                printf("| %s ", c >= o->n_keys ? "---:" : "---");
            printf("|\n");
        }
    }
    free(cells);
    free(width);
}

int agon_cli_compare(int argc, char **argv)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    compare_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    run_list runs = {0};
    for (size_t i = 0; rc == 0 && i < o.n_inputs; i++) {
        struct stat st;
        if (stat(o.inputs[i], &st) != 0) {
            fprintf(stderr, "%s: no such file or folder; give run logs or folders of them\n",
                    o.inputs[i]);
            rc = AGON_EIO;
        } else {
            rc = S_ISDIR(st.st_mode) ? add_dir(&runs, o.inputs[i], &o)
                                     : add_run(&runs, o.inputs[i], &o);
        }
    }
    if (rc == 0 && runs.count == 0) {
        fprintf(stderr, "agon compare: no run log with %s; give logs written by agon run\n",
                o.metric);
        rc = AGON_EDATA;
    }
    group_row *rows = rc == 0 ? calloc(runs.count, sizeof *rows) : NULL;
    if (rc == 0 && !rows)
        rc = AGON_ENOMEM;
    size_t n_rows = 0;
    for (size_t i = 0; rc == 0 && i < runs.count; i++) {
        size_t g = 0;
        while (g < n_rows && !same_group(rows[g].first, &runs.items[i], o.n_keys))
            g++;
        if (g == n_rows)
            rows[n_rows++].first = &runs.items[i];
    }
    double *values = rc == 0 ? malloc(runs.count * sizeof *values) : NULL;
    if (rc == 0 && !values)
        rc = AGON_ENOMEM;
    for (size_t g = 0; rc == 0 && g < n_rows; g++) {
        group_row *row = &rows[g];
        size_t n = 0;
        for (size_t i = 0; i < runs.count; i++) {
            if (same_group(row->first, &runs.items[i], o.n_keys))
                values[n++] = runs.items[i].value;
        }
        agon__run_stats st;
        agon__run_stats_of(values, n, &st);
        row->n = st.n;
        row->mean = st.mean;
        row->std = st.std;
        row->ci = st.ci95;
        row->min = st.min;
        row->max = st.max;
    }
    free(values);
    if (rc == 0)
        print_table(&o, rows, n_rows);
    free(rows);
    free(runs.items);
    free(o.inputs);
    free(o.keys_text);
    return rc > 0 ? 0 : rc;
}
