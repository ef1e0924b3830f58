/* Reading run logs for `agon show` and `agon export` (see cli_h5.h). */
#include "cli_h5.h"

#include <errno.h>
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
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file >= 0)
        return file;
    if (plain_why)
        agon__h5_why(plain_why);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_metadata_read_attempts(fapl, 3) >= 0)
        file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (file < 0 && agon_log_recover_finish(path, 3000)) {
        fprintf(stderr, "%s: its writer died while finishing it; cleared HDF5's "
                        "open-for-writing mark (no data changed)\n",
                path);
        file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
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
    char *text = NULL;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0) {
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
    if (ft >= 0)
        H5Tclose(ft);
    H5Dclose(ds);
    return text;
}
