/* Refusing to overwrite what is not ours (see output_int.h). */
#include <sys/stat.h>

#include "agon/log.h"
#include "output_int.h"

int agon__check_output(const char *path, bool overwrite, const char *what, bool *exists,
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
    if (!overwrite)
        return agon_error_set(err, AGON_EIO,
                              "%s: already exists; choose another output path (-o) or pass "
                              "--overwrite to replace it",
                              path);
    if (!agon_log_file_is_hdf5(path))
        return agon_error_set(err, AGON_EIO,
                              "%s: is not an %s, so --overwrite will not replace it; choose "
                              "another output path (-o)",
                              path, what);
    return 0;
}
