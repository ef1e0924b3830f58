/* What the libFuzzer harnesses share (fuzz_common.h). */
#include "fuzz_common.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

static char private_dir[4096];
static agon_registry *registry;
static FILE *real_stdout, *real_stderr, *dev_null, *captured, *captured_stdout;
static char *captured_text, *captured_out;
static size_t captured_len, captured_out_len;

static void remove_private_dir(void)
{
    fuzz_empty_dir(private_dir);
    rmdir(private_dir);
}

const char *fuzz_private_dir(const char *name)
{
    if (private_dir[0])
        return private_dir;
    snprintf(private_dir, sizeof private_dir, "/tmp/agon-fuzz-%s-XXXXXX", name);
    if (!mkdtemp(private_dir))
        abort();
    atexit(remove_private_dir);
    return private_dir;
}

agon_registry *fuzz_registry(void)
{
    if (registry)
        return registry;
    agon_error err = {0};
    registry = agon_registry_create(&err);
    agon_diag diag;
    agon_diag_init(&diag);
    if (!registry || agon_registry_load_dir(registry, AGON_FUZZ_PLUGIN_DIR, true, &diag) != 0)
        fuzz_fail("cannot load the plugins of %s: %s", AGON_FUZZ_PLUGIN_DIR,
                  diag.count ? diag.messages[0] : err.message);
    agon_diag_fini(&diag);
    return registry;
}

void fuzz_note(const char *fmt, ...)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("AGON_FUZZ_VERBOSE") != NULL;
    if (!verbose)
        return;
    FILE *out = real_stderr ? real_stderr : stderr;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
}

void fuzz_fail(const char *fmt, ...)
{
    if (real_stderr)
        stderr = real_stderr;
    if (real_stdout)
        stdout = real_stdout;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

void fuzz_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        fuzz_fail("harness: cannot write %s", path);
}

void fuzz_copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        fuzz_fail("harness: cannot read %s", src);
    FILE *out = fopen(dst, "wb");
    if (!out)
        fuzz_fail("harness: cannot write %s", dst);
    char buf[1 << 16];
    for (size_t got; (got = fread(buf, 1, sizeof buf, in)) > 0;) {
        if (fwrite(buf, 1, got, out) != got)
            fuzz_fail("harness: cannot write %s", dst);
    }
    fclose(in);
    if (fclose(out) != 0)
        fuzz_fail("harness: cannot write %s", dst);
}

void fuzz_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            fuzz_empty_dir(path);
            rmdir(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
}

void fuzz_check_diag(const agon_diag *diag, bool expect_some)
{
    if (expect_some && diag->count == 0)
        fuzz_fail("a failed load reported nothing");
    for (size_t i = 0; i < diag->count; i++) {
        if (strchr(diag->messages[i], '\n'))
            fuzz_fail("a diagnostic spans lines: %s", diag->messages[i]);
    }
}

int fuzz_dataset_open(fuzz_dataset *d, const char *component, const char *yaml)
{
    static const char *const host_keys[] = {"plugin", NULL};
    memset(d, 0, sizeof *d);
    const agon_component *c =
        agon_registry_find(fuzz_registry(), AGON_KIND_DATASET, component, NULL);
    if (!c)
        fuzz_fail("harness: no dataset '%s' among the plugins", component);
    d->vt = c->vtable;
    agon_diag diag;
    agon_diag_init(&diag);
    d->cfg = agon_config_parse(yaml, strlen(yaml), "fuzz.yaml", &diag);
    const agon_node *section = d->cfg ? agon_node_get(agon_config_root(d->cfg), "dataset") : NULL;
    if (!section ||
        agon_schema_apply(d->cfg, section, c->params, host_keys, component, &diag) != 0)
        fuzz_fail("harness: the config it wrote is invalid: %s\n%s",
                  diag.count ? diag.messages[0] : "no dataset section", yaml);
    agon_diag_fini(&diag);
    return d->vt->create(section, &d->state, &d->info, &d->err);
}

void fuzz_dataset_close(fuzz_dataset *d)
{
    if (d->state)
        d->vt->destroy(d->state);
    agon_config_destroy(d->cfg);
    memset(d, 0, sizeof *d);
}

void fuzz_check_create_refusal(const fuzz_dataset *d, int rc, const char *name)
{
    if (d->state)
        fuzz_fail("create failed (%d) but left a state", rc);
    if (d->err.code != rc || !d->err.message[0])
        fuzz_fail("create failed (%d) without a message (error code %d)", rc, d->err.code);
    if (strchr(d->err.message, '\n'))
        fuzz_fail("create's message spans lines: %s", d->err.message);
    if (name && !strstr(d->err.message, name))
        fuzz_fail("create's message does not name %s: %s", name, d->err.message);
}

void fuzz_capture_begin(bool keep_stdout)
{
    if (!real_stderr) {
        real_stdout = stdout;
        real_stderr = stderr;
        dev_null = fopen("/dev/null", "w");
        if (!dev_null)
            abort();
    }
    free(captured_text);
    free(captured_out);
    captured_text = captured_out = NULL;
    captured_len = captured_out_len = 0;
    captured = open_memstream(&captured_text, &captured_len);
    captured_stdout = keep_stdout ? open_memstream(&captured_out, &captured_out_len) : NULL;
    if (!captured || (keep_stdout && !captured_stdout))
        abort();
    fflush(real_stdout);
    fflush(real_stderr);
    /* glibc's stdout and stderr are variables a program may set. */
    stdout = keep_stdout ? captured_stdout : dev_null;
    stderr = captured;
}

const char *fuzz_capture_end(void)
{
    fflush(dev_null);
    clearerr(dev_null);
    stdout = real_stdout;
    stderr = real_stderr;
    fclose(captured);
    captured = NULL;
    if (captured_stdout)
        fclose(captured_stdout);
    captured_stdout = NULL;
    return captured_text ? captured_text : "";
}

const char *fuzz_captured_stdout(void)
{
    return captured_out ? captured_out : "";
}

size_t fuzz_count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n + (text[0] && text[strlen(text) - 1] != '\n');
}

void fuzz_check_refusal(const char *what, const char *text, const char *name)
{
    if (fuzz_count_lines(text) != 1)
        fuzz_fail("%s failed with %zu lines on stderr instead of one:\n%s", what,
                  fuzz_count_lines(text), text);
    if (name && !strstr(text, name))
        fuzz_fail("%s failed without naming %s: %s", what, name, text);
}

void fuzz_check_no_hdf5_stack(const char *what, const char *text)
{
    /* HDF5's stack starts a line of its own; agon's messages start with a
     * path or "agon", and may quote an input that holds the words. */
    static const char mark[] = "HDF5-DIAG: Error detected in HDF5";
    for (const char *p = strstr(text, mark); p; p = strstr(p + 1, mark)) {
        if (p == text || p[-1] == '\n')
            fuzz_fail("%s let HDF5 print its error stack:\n%s", what, text);
    }
}

void fuzz_check_hdf5_closed(const char *what)
{
    static const struct {
        unsigned types;
        const char *name;
    } kinds[] = {{H5F_OBJ_FILE, "files"},         {H5F_OBJ_GROUP, "groups"},
                 {H5F_OBJ_DATASET, "datasets"},   {H5F_OBJ_ATTR, "attributes"},
                 {H5F_OBJ_DATATYPE, "named datatypes"}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, kinds[i].types);
        if (n != 0)
            fuzz_fail("%s left %zd HDF5 %s open", what, n, kinds[i].name);
    }
}

uint64_t fuzz_hash(uint64_t h, const void *bytes, size_t n)
{
    const uint8_t *b = bytes;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void fuzz_sort_hashes(uint64_t *h, size_t n)
{
    qsort(h, n, sizeof *h, cmp_u64);
}

bool fuzz_find_hash(const uint64_t *sorted, size_t n, uint64_t h)
{
    return bsearch(&h, sorted, n, sizeof *sorted, cmp_u64) != NULL;
}

/* ---- the fuzz input as a stream of choices ------------------------------ */

uint8_t fuzz_u8(fuzz_input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

uint16_t fuzz_u16(fuzz_input *in)
{
    uint16_t hi = fuzz_u8(in);
    return (uint16_t)(hi << 8 | fuzz_u8(in));
}

uint32_t fuzz_u32(fuzz_input *in)
{
    uint32_t hi = fuzz_u16(in);
    return hi << 16 | fuzz_u16(in);
}

uint64_t fuzz_u64(fuzz_input *in)
{
    uint64_t hi = fuzz_u32(in);
    return hi << 32 | fuzz_u32(in);
}

uint32_t fuzz_below(fuzz_input *in, uint32_t n)
{
    if (n <= 1)
        return 0;
    uint32_t v = n <= 256 ? fuzz_u8(in) : n <= 65536 ? fuzz_u16(in) : fuzz_u32(in);
    return v % n;
}

double fuzz_double(fuzz_input *in)
{
    static const double special[] = {0.0,     -0.0,     1.0,     -1.0,    0.5,
                                     NAN,     INFINITY, -INFINITY, 3.4e38, -3.4e38,
                                     1e300,   -1e300,   1e-45,   255.0,   1e9};
    uint8_t k = fuzz_u8(in);
    if (k < sizeof special / sizeof special[0])
        return special[k];
    if (k < 128)
        return (double)(int)(k - 64);
    uint64_t bits = fuzz_u64(in);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

int64_t fuzz_int64(fuzz_input *in)
{
    static const int64_t special[] = {0, 1, -1, INT64_MAX, INT64_MIN, INT32_MAX, 100000, 1000000000};
    uint8_t k = fuzz_u8(in);
    if (k < sizeof special / sizeof special[0])
        return special[k];
    if (k < 160)
        return (int64_t)k - 8;
    return (int64_t)fuzz_u64(in);
}

char *fuzz_string(fuzz_input *in, size_t max, const char *const *words)
{
    uint8_t len = fuzz_u8(in);
    size_t n_words = 0;
    while (words && words[n_words])
        n_words++;
    if (n_words && len >= 256 - n_words)
        return strdup(words[255 - len]);
    size_t n = len < max ? len : max;
    if (n > in->n)
        n = in->n;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, in->p, n);
    s[n] = '\0';
    in->p += n;
    in->n -= n;
    return s;
}

/* ---- HDF5 objects from the fuzz input ----------------------------------- */

static const char *const default_words[] = {"", "1", "nan", "x", "step", NULL};

hid_t fuzz_h5_type(unsigned k)
{
    switch (k) {
    case 0: return H5Tcopy(H5T_NATIVE_UINT8);
    case 1: return H5Tcopy(H5T_NATIVE_INT8);
    case 2: return H5Tcopy(H5T_STD_U16BE);
    case 3: return H5Tcopy(H5T_NATIVE_INT16);
    case 4: return H5Tcopy(H5T_NATIVE_INT32);
    case 5: return H5Tcopy(H5T_STD_U32LE);
    case 6: return H5Tcopy(H5T_NATIVE_INT64);
    case 7: return H5Tcopy(H5T_NATIVE_UINT64);
    case 8: return H5Tcopy(H5T_NATIVE_FLOAT);
    case 9: return H5Tcopy(H5T_NATIVE_DOUBLE);
    case 10: return H5Tcopy(H5T_IEEE_F64BE);
    case 11: return H5Tcopy(H5T_IEEE_F32BE);
    default: break;
    }
    hid_t t = H5I_INVALID_HID;
    switch (k) {
    case 12:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 16);
        break;
    case 13:
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        break;
    case 14:
        t = H5Tcreate(H5T_COMPOUND, sizeof(float));
        H5Tinsert(t, "f", 0, H5T_NATIVE_FLOAT);
        break;
    case 15: {
        t = H5Tenum_create(H5T_NATIVE_INT8);
        int8_t a = 0, b = 1;
        H5Tenum_insert(t, "a", &a);
        H5Tenum_insert(t, "b", &b);
        break;
    }
    case 16: {
        hsize_t two = 2;
        t = H5Tarray_create2(H5T_NATIVE_FLOAT, 1, &two);
        break;
    }
    case 17:
        t = H5Tcopy(H5T_NATIVE_B8);
        break;
    case 18:
        t = H5Tcreate(H5T_OPAQUE, 4);
        H5Tset_tag(t, "fuzz");
        break;
    case 19:    /* IEEE half precision, which HDF5 converts in software */
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
        break;
    default:    /* a 3-byte signed integer */
        t = H5Tcopy(H5T_NATIVE_INT32);
        H5Tset_precision(t, 24);
        H5Tset_size(t, 3);
        break;
    }
    return t;
}

void *fuzz_h5_values(fuzz_input *in, hid_t type, uint64_t n, unsigned mode,
                     const char *const *words)
{
    /* The strings of the last call. */
    static char **strings;
    static uint64_t n_strings;
    for (uint64_t i = 0; i < n_strings; i++)
        free(strings[i]);
    free(strings);
    strings = NULL;
    n_strings = 0;
    hid_t t = type;
    size_t size = H5Tget_size(t);
    H5T_class_t c = H5Tget_class(t);
    if (!words)
        words = default_words;
    uint32_t n_words = 0;
    while (words[n_words])
        n_words++;
    if (c == H5T_STRING) {
        bool vlen = H5Tis_variable_str(t) > 0;
        void *v = calloc(n ? n : 1, vlen ? sizeof(char *) : size);
        strings = calloc(n ? n : 1, sizeof *strings);
        for (uint64_t i = 0; i < n; i++) {
            char *s = mode == 0 ? fuzz_string(in, 40, NULL) : strdup(words[fuzz_below(in, n_words)]);
            strings[n_strings++] = s;
            if (vlen)
                ((char **)v)[i] = s;
            else
                strncpy((char *)v + i * size, s, size);
        }
        return v;
    }
    uint8_t *v = calloc(n ? n : 1, size);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *e = v + i * size;
        if (mode == 0) {
            for (size_t b = 0; b < size; b++)
                e[b] = fuzz_u8(in);
        } else if (H5Tequal(t, H5T_NATIVE_DOUBLE) > 0) {
            double d = mode == 1 ? fuzz_double(in) : (double)i;
            memcpy(e, &d, sizeof d);
        } else if (H5Tequal(t, H5T_NATIVE_FLOAT) > 0) {
            float f = mode == 1 ? (float)fuzz_double(in) : (float)i;
            memcpy(e, &f, sizeof f);
        } else if (H5Tequal(t, H5T_NATIVE_INT64) > 0) {
            int64_t k = mode == 1 ? fuzz_int64(in) : (int64_t)i;
            memcpy(e, &k, sizeof k);
        } else {
            /* The low byte in the type's own order. */
            e[H5Tget_order(t) == H5T_ORDER_BE ? size - 1 : 0] =
                (uint8_t)(mode == 1 ? fuzz_u8(in) : i);
        }
    }
    return v;
}

void fuzz_h5_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                   const void *data)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        fuzz_fail("harness: cannot write the dataset %s", name);
    H5Dclose(d);
    H5Sclose(s);
}

void fuzz_h5_attribute(fuzz_input *in, hid_t obj, const char *name, const char *const *words)
{
    hid_t t = fuzz_h5_type(fuzz_below(in, FUZZ_H5_TYPES));
    unsigned shape = fuzz_below(in, 4);
    hsize_t len = shape;
    hid_t space = shape == 0   ? H5Screate(H5S_SCALAR)
                  : shape == 3 ? H5Screate(H5S_NULL)
                               : H5Screate_simple(1, &len, NULL);
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && shape != 3) {
        void *v = fuzz_h5_values(in, t, shape ? len : 1, fuzz_below(in, 4), words);
        H5Awrite(a, t, v);
        free(v);
    }
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    H5Tclose(t);
}

void fuzz_h5_attributes(fuzz_input *in, hid_t obj, const char *const *words)
{
    for (unsigned n = fuzz_below(in, 3); n > 0; n--) {
        char *name = fuzz_string(in, 12, words ? words : default_words);
        if (name[0])
            fuzz_h5_attribute(in, obj, name, words);
        free(name);
    }
}

void fuzz_h5_dataset(fuzz_input *in, hid_t loc, const char *path, hid_t lcpl,
                     unsigned max_rows, const char *raw_path, const char *const *words)
{
    enum { MAX_ELEMENTS = 4096 };
    hid_t t = fuzz_h5_type(fuzz_below(in, FUZZ_H5_TYPES));
    unsigned rank = fuzz_below(in, 8);   /* 0 scalar, 7 null */
    hsize_t dims[6], maxdims[6], chunk[6], n = 1;
    for (unsigned i = 0; i < rank && i < 6; i++) {
        dims[i] = fuzz_below(in, i == 0 ? max_rows : 5);
        if (n * dims[i] > MAX_ELEMENTS)
            dims[i] = 1;
        n *= dims[i];
        maxdims[i] = H5S_UNLIMITED;
        chunk[i] = dims[i] ? dims[i] : 1;
    }
    if (rank == 7)
        n = 0;
    hid_t space = rank == 0   ? H5Screate(H5S_SCALAR)
                  : rank == 7 ? H5Screate(H5S_NULL)
                              : H5Screate_simple((int)rank, dims, NULL);
    uint8_t layout = fuzz_u8(in);
    unsigned mode = fuzz_below(in, 5);      /* 4: not written (fill values) */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (rank >= 1 && rank <= 6 && (layout & 1)) {
        H5Sset_extent_simple(space, (int)rank, dims, maxdims);
        H5Pset_chunk(dcpl, (int)rank, chunk);
        if (layout & 2)
            H5Pset_deflate(dcpl, 4);
    } else if ((layout & 4) && raw_path) {
        H5Pset_external(dcpl, raw_path, 0, (hsize_t)H5Tget_size(t) * (n ? n : 1));
    } else if (layout & 8) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    }
    hid_t d = H5Dcreate2(loc, path, t, space, lcpl, dcpl, H5P_DEFAULT);
    if (d >= 0) {
        if (mode != 4 && (n > 0 || rank == 0)) {
            void *v = fuzz_h5_values(in, t, rank == 0 ? 1 : n, mode, words);
            H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
        fuzz_h5_attributes(in, d, words);
        H5Dclose(d);
    }
    /* External raw data that is gone or short. */
    if ((layout & 4) && (layout & 16) && raw_path && truncate(raw_path, fuzz_below(in, 64)) != 0)
        unlink(raw_path);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(t);
}
