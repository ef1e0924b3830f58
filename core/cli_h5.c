/* Reading run logs for `agon show`, `export`, `compare` and `report` (see
 * cli_h5.h). */
#include "cli_h5.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agon/error.h"
#include "agon/log.h"

static herr_t innermost_error(unsigned n, const H5E_error2_t *e, void *data)
{
    agon__h5_detail *d = data;
    if (n == 0 && e->desc && e->desc[0])
        snprintf(d->text, sizeof d->text, "%s", e->desc);
    return 0;
}

const char *agon__h5_why(agon__h5_detail *d)
{
    snprintf(d->text, sizeof d->text, "no detail from HDF5");
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, d);
    return d->text;
}

int agon__h5_check_regular(const char *path, const char *stat_hint)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: cannot open run log: %s%s\n", path, strerror(errno), stat_hint);
        return AGON_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: not a regular file; give the path of a run log (.h5)\n", path);
        return AGON_EIO;
    }
    return 0;
}

hid_t agon__h5_open_read(const char *path, agon__h5_detail *plain_why)
{
    bool cleared = false;
    hid_t file = agon_log_open_read(path, plain_why ? plain_why->text : NULL,
                                    plain_why ? sizeof plain_why->text : 0, &cleared);
    if (cleared)
        fprintf(stderr, "%s: its writer died while finishing it; cleared HDF5's "
                        "open-for-writing mark (no data changed)\n",
                path);
    return file;
}

bool agon__h5_is_object(hid_t loc, const char *name, H5O_type_t type)
{
    H5O_info_t oi;
    return H5Lexists(loc, name, H5P_DEFAULT) > 0 &&
           H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 &&
           oi.type == type;
}

bool agon__h5_read_block(hid_t ds, int rank, const hsize_t *start, const hsize_t *count,
                         hid_t mem_type, void *out)
{
    hsize_t flat = 1;
    for (int i = 0; i < rank; i++)
        flat *= count[i];
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(1, &flat, NULL);
    bool ok = fs >= 0 && ms >= 0 &&
              H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
              H5Dread(ds, mem_type, ms, fs, H5P_DEFAULT, out) >= 0;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return ok;
}

void agon__h5_attr_close(agon__h5_attr *a)
{
    if (a->space >= 0)
        H5Sclose(a->space);
    if (a->type >= 0)
        H5Tclose(a->type);
    if (a->attr >= 0)
        H5Aclose(a->attr);
    a->attr = a->type = a->space = H5I_INVALID_HID;
}

int agon__h5_attr_open(hid_t obj, const char *name, agon__h5_attr *a)
{
    a->attr = a->type = a->space = H5I_INVALID_HID;
    if (H5Aexists(obj, name) <= 0)
        return 0;
    a->attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (a->attr >= 0) {
        a->type = H5Aget_type(a->attr);
        a->space = H5Aget_space(a->attr);
    }
    if (a->type < 0 || a->space < 0) {
        agon__h5_attr_close(a);
        return -1;
    }
    return 1;
}

int agon__h5_attr_int64(hid_t obj, const char *name, int64_t *v)
{
    agon__h5_attr a;
    int found = agon__h5_attr_open(obj, name, &a);
    if (found <= 0)
        return found;
    bool ok = H5Tget_class(a.type) == H5T_INTEGER && H5Sget_simple_extent_npoints(a.space) == 1 &&
              H5Aread(a.attr, H5T_NATIVE_INT64, v) >= 0;
    agon__h5_attr_close(&a);
    return ok ? 1 : -1;
}

/* A scalar string attribute (variable or fixed length) as a malloc'ed
 * string, or NULL when absent or not a string. */
char *agon__h5_attr_string(hid_t obj, const char *name)
{
    agon__h5_attr a;
    if (agon__h5_attr_open(obj, name, &a) <= 0)
        return NULL;
    char *out = NULL;
    hid_t mt = H5I_INVALID_HID;
    if (H5Tget_class(a.type) != H5T_STRING || H5Sget_simple_extent_npoints(a.space) != 1)
        goto out;
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(a.type));
    if (H5Tis_variable_str(a.type) > 0) {
        char *p = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a.attr, mt, &p) >= 0) {
            out = strdup(p ? p : "");
            H5free_memory(p);
        }
    } else {
        size_t n = H5Tget_size(a.type);
        H5Tset_size(mt, n + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        out = calloc(n + 1, 1);
        if (out && H5Aread(a.attr, mt, out) < 0) {
            free(out);
            out = NULL;
        }
    }
out:
    if (mt >= 0)
        H5Tclose(mt);
    agon__h5_attr_close(&a);
    return out;
}

/* Length along dim 0 of a 1-D dataset, or -1. */
int64_t agon__h5_dataset_length(hid_t group, const char *name)
{
    if (H5Lexists(group, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    int64_t n = -1;
    hid_t sp = H5Dget_space(ds);
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1) {
        hsize_t dim;
        H5Sget_simple_extent_dims(sp, &dim, NULL);
        n = (int64_t)dim;
    }
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(ds);
    return n;
}

void agon__h5_columns_fini(agon__h5_columns *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->count = 0;
}

static bool columns_push(agon__h5_columns *l, const char *name, size_t len)
{
    char **grown = realloc(l->names, (l->count + 1) * sizeof *grown);
    if (!grown)
        return false;
    l->names = grown;
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    memcpy(copy, name, len);
    copy[len] = '\0';
    l->names[l->count++] = copy;
    return true;
}

static herr_t collect_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    agon__h5_columns *l = data;
    if (strcmp(name, "step") == 0 || !agon__h5_is_object(group, name, H5O_TYPE_DATASET))
        return 0;
    return columns_push(l, name, strlen(name)) ? 0 : -1;
}

/* The columns of a table: its "columns" attribute in writer order, or,
 * for files written by other tools, every dataset but "step" by name. */
void agon__h5_table_columns(hid_t group, agon__h5_columns *l)
{
    char *attr = agon__h5_attr_string(group, "columns");
    if (attr) {
        const char *p = attr;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len > 0)
                columns_push(l, p, len);
            p += len + (comma ? 1 : 0);
        }
        free(attr);
        return;
    }
    H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_dataset, l);
}

/* Rows every dataset of the table has: after a crash the datasets of a
 * table may end at different lengths, and only the common prefix counts. */
int64_t agon__h5_table_rows(hid_t group, const agon__h5_columns *l)
{
    int64_t n = agon__h5_dataset_length(group, "step");
    for (size_t i = 0; i < l->count && n > 0; i++) {
        int64_t k = agon__h5_dataset_length(group, l->names[i]);
        if (k < n)
            n = k < 0 ? 0 : k;
    }
    return n < 0 ? 0 : n;
}


char *agon__h5_read_string(hid_t loc, const char *name)
{
    if (!agon__h5_is_object(loc, name, H5O_TYPE_DATASET))
        return NULL;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0)
        return NULL;
    hid_t ft = H5Dget_type(ds);
    hid_t space = H5Dget_space(ds);
    char *text = NULL;
    /* One string: H5S_ALL reads every element into `p`. */
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0 &&
        space >= 0 && H5Sget_simple_extent_npoints(space) == 1) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *p = NULL;
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) >= 0 && p) {
            text = strdup(p);
            H5free_memory(p);
        }
        H5Tclose(mt);
    }
    if (space >= 0)
        H5Sclose(space);
    if (ft >= 0)
        H5Tclose(ft);
    H5Dclose(ds);
    return text;
}

/* ---- run logs as inputs ------------------------------------------------- */

void agon__paths_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int agon__h5_list_dir(const char *dir, char ***paths, size_t *count)
{
    *paths = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot read the folder\n", dir);
        return AGON_EIO;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0 || e->d_name[0] == '.')
            continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown) {
            rc = AGON_ENOMEM;
            break;
        }
        names = grown;
        if (!(names[n] = malloc(strlen(dir) + len + 2))) {
            rc = AGON_ENOMEM;
            break;
        }
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (rc != 0) {
        agon__paths_free(names, n);
        return rc;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    *paths = names;
    *count = n;
    return 0;
}

int agon__h5_open_run(const char *path, hid_t *file, agon_config **cfg, const char **why)
{
    *file = H5I_INVALID_HID;
    *cfg = NULL;
    if (H5Fis_hdf5(path) <= 0) {
        *why = "not an HDF5 file";
        return 1;
    }
    hid_t f = agon__h5_open_read(path, NULL);
    if (f < 0) {
        *why = "cannot be opened";
        return 1;
    }
    char *yaml = agon__h5_read_string(f, "config");
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *c = yaml ? agon_config_parse(yaml, strlen(yaml), path, &diag) : NULL;
    agon_diag_fini(&diag);
    free(yaml);
    if (!c) {
        H5Fclose(f);
        *why = "no readable /config, so not an agon run log";
        return 1;
    }
    *file = f;
    *cfg = c;
    return 0;
}

/* ---- config keys ---------------------------------------------------------- */

/* A list whose items are all scalars (or nulls) reads as one value. */
static bool is_scalar_list(const agon_node *n)
{
    if (agon_node_kind_of(n) != AGON_NODE_SEQ)
        return false;
    for (size_t i = 0; i < agon_node_len(n); i++) {
        agon_node_kind k = agon_node_kind_of(agon_node_at(n, i));
        if (k != AGON_NODE_SCALAR && k != AGON_NODE_NULL)
            return false;
    }
    return true;
}

static bool is_leaf(const agon_node *n)
{
    agon_node_kind k = agon_node_kind_of(n);
    return k == AGON_NODE_SCALAR || k == AGON_NODE_NULL || is_scalar_list(n) ||
           (k == AGON_NODE_MAP && agon_node_len(n) == 0);
}

/* The text of a leaf; truncated to cap - 1 bytes. */
static void leaf_text(const agon_node *n, char *out, size_t cap)
{
    agon_node_kind k = agon_node_kind_of(n);
    if (k == AGON_NODE_MAP) {
        snprintf(out, cap, "{}");
        return;
    }
    if (k != AGON_NODE_SEQ) {
        const char *text = agon_node_scalar(n);
        snprintf(out, cap, "%s", text ? text : "");
        return;
    }
    size_t used = (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < agon_node_len(n) && used < cap; i++) {
        const char *text = agon_node_scalar(agon_node_at(n, i));
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", text ? text : "");
    }
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

void agon__config_value(const agon_config *cfg, const char *key, char *out, size_t cap)
{
    const agon_node *n = agon_config_root(cfg);
    char *path = strdup(key);
    if (!path) {
        snprintf(out, cap, "(none)");
        return;
    }
    char *save = NULL;
    for (char *part = strtok_r(path, ".", &save); part && n; part = strtok_r(NULL, ".", &save)) {
        char *bracket = strchr(part, '[');
        if (bracket)
            *bracket = '\0';
        n = agon_node_get(n, part);
        /* "name[i][j]": items of a list, each index whole and in range. */
        while (bracket && n) {
            char *end = NULL;
            unsigned long long i = strtoull(bracket + 1, &end, 10);
            if (end == bracket + 1 || *end != ']' || agon_node_kind_of(n) != AGON_NODE_SEQ ||
                i >= agon_node_len(n)) {
                n = NULL;
                break;
            }
            n = agon_node_at(n, (size_t)i);
            bracket = end[1] == '[' ? end + 1 : NULL;
            if (!bracket && end[1] != '\0')
                n = NULL;
        }
    }
    free(path);
    if (n && is_leaf(n))
        leaf_text(n, out, cap);
    else
        snprintf(out, cap, "(none)");
}

static int leaves_push(agon__config_leaves *l, const agon_node *n, size_t *cap)
{
    if (l->count == *cap) {
        size_t grown_cap = *cap ? 2 * *cap : 64;
        agon__config_leaf *grown = realloc(l->items, grown_cap * sizeof *grown);
        if (!grown)
            return AGON_ENOMEM;
        l->items = grown;
        *cap = grown_cap;
    }
    char text[1024];
    leaf_text(n, text, sizeof text);
    agon__config_leaf *leaf = &l->items[l->count];
    leaf->key = strdup(agon_node_path(n));
    leaf->value = strdup(text);
    if (!leaf->key || !leaf->value) {
        free(leaf->key);
        free(leaf->value);
        return AGON_ENOMEM;
    }
    l->count++;
    return 0;
}

static int leaves_walk(agon__config_leaves *l, const agon_node *n, size_t *cap, int depth)
{
    if (depth > 0 && is_leaf(n))
        return leaves_push(l, n, cap);
    agon_node_kind k = agon_node_kind_of(n);
    if (k != AGON_NODE_MAP && k != AGON_NODE_SEQ)
        return 0;
    for (size_t i = 0; i < agon_node_len(n); i++) {
        int rc = leaves_walk(l, agon_node_at(n, i), cap, depth + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void agon__config_leaves_fini(agon__config_leaves *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

int agon__config_leaves_of(const agon_config *cfg, agon__config_leaves *l)
{
    l->items = NULL;
    l->count = 0;
    size_t cap = 0;
    int rc = leaves_walk(l, agon_config_root(cfg), &cap, 0);
    if (rc != 0)
        agon__config_leaves_fini(l);
    return rc;
}

const char *agon__config_leaves_get(const agon__config_leaves *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].key, key) == 0)
            return l->items[i].value;
    }
    return NULL;
}

/* ---- statistics over runs ------------------------------------------------- */

double agon__t975(size_t df)
{
    static const double table[] = {
        NAN,    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201,  2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
        2.074,  2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df < sizeof table / sizeof table[0])
        return table[df];
    if (df < 60)
        return 2.000 + (2.042 - 2.000) * (60.0 - (double)df) / 30.0;
    return df < 120 ? 1.980 + (2.000 - 1.980) * (120.0 - (double)df) / 60.0 : 1.960;
}

void agon__run_stats_of(const double *v, size_t n, agon__run_stats *out)
{
    double sum = 0.0;
    out->n = n;
    out->min = INFINITY;
    out->max = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        sum += v[i];
        out->min = fmin(out->min, v[i]);
        out->max = fmax(out->max, v[i]);
    }
    out->mean = sum / (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - out->mean) * (v[i] - out->mean);
    out->std = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
    out->ci95 = n > 1 ? agon__t975(n - 1) * out->std / sqrt((double)n) : NAN;
}

bool agon__h5_read_range(hid_t group, const char *name, int64_t first, int64_t count,
                         hid_t mem_type, void *out)
{
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    if (ds < 0)
        return false;
    hsize_t start = (hsize_t)first, n = (hsize_t)count;
    bool ok = agon__h5_read_block(ds, 1, &start, &n, mem_type, out);
    H5Dclose(ds);
    return ok;
}
