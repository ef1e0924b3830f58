/* Reading run logs for `agon show` and `agon export` (see cli_h5.h). */
#include "cli_h5.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agon/error.h"

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
