/* tests/fuzz/fuzz_common.h — what the libFuzzer harnesses of tests/fuzz
 * share: a private directory, the plugin registry, a reader that turns the
 * fuzz input into choices, HDF5 objects made from it, capture of what a
 * command prints, and the property checks the harnesses make ("a failure
 * says why, in one line"; "every HDF5 object agon opens is closed
 * again").
 *
 * A property that fails prints what happened on the real stderr and
 * aborts, which libFuzzer reports as a crash with the input saved. */
#ifndef AGON_FUZZ_COMMON_H
#define AGON_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "agon/agon.h"
#include "agon/plugin.h"

/* libFuzzer's entry points, which every harness defines (Initialize may
 * be left out). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Creates /tmp/agon-fuzz-<name>-XXXXXX and returns its absolute path (once;
 * later calls return the same); a normal exit removes it, a crash leaves
 * it.  Harnesses name their files by absolute paths and leave the working
 * directory alone, so that libFuzzer's relative paths (inputs, corpus,
 * artifacts) keep working; fuzz_config alone works in its directory, so
 * that `base:` paths of an input stay inside it. */
const char *fuzz_private_dir(const char *name);

/* The registry of every built plugin (AGON_FUZZ_PLUGIN_DIR), loaded once
 * and kept for the whole run: a plugin loaded again by a command under
 * test is then the same loaded object, not a second copy. */
agon_registry *fuzz_registry(void);

/* With AGON_FUZZ_VERBOSE set in the environment, prints a line on the
 * real stderr saying what became of an input (to see what seeds and
 * crash inputs decode to); otherwise nothing. */
void fuzz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints on the real stderr (even while capturing) and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Writes data[0..n) to path, replacing it; aborts when it cannot. */
void fuzz_write_file(const char *path, const void *data, size_t n);
/* Copies the file src to dst; aborts when it cannot. */
void fuzz_copy_file(const char *src, const char *dst);
/* Removes everything inside dir (not dir itself). */
void fuzz_empty_dir(const char *dir);

/* A failed load reports at least one diagnostic (when expect_some), and
 * every diagnostic is one line. */
void fuzz_check_diag(const agon_diag *diag, bool expect_some);

/* While capturing, stderr goes into memory, and stdout too when
 * keep_stdout, else to /dev/null.  fuzz_capture_end restores both and
 * returns what was written to stderr, fuzz_captured_stdout what was
 * written to stdout (both valid until the next fuzz_capture_begin). */
void fuzz_capture_begin(bool keep_stdout);
const char *fuzz_capture_end(void);
const char *fuzz_captured_stdout(void);
/* Lines of text (a last line without '\n' counts). */
size_t fuzz_count_lines(const char *text);
/* The property of every refusal: exactly one line of stderr, containing
 * `name` when it is not NULL.  `what` names the call in the report. */
void fuzz_check_refusal(const char *what, const char *text, const char *name);
/* No HDF5 error stack printed: agon turns HDF5's printing off. */
void fuzz_check_no_hdf5_stack(const char *what, const char *text);
/* Every HDF5 file, group, dataset, attribute and named datatype agon
 * opened is closed again (after the harness closed its own).  Dataspaces,
 * transient datatypes and property lists cannot be counted through
 * HDF5's API. */
void fuzz_check_hdf5_closed(const char *what);

/* A dataset component opened as agon opens it: the `dataset:` section of
 * `yaml` checked against the component's schema (which must pass: the
 * harness writes valid configs), then its create. */
typedef struct fuzz_dataset {
    agon_config *cfg;
    const agon_dataset_vtable *vt;
    void *state;            /* NULL when create failed */
    agon_dataset_info info;
    agon_error err;         /* create's error */
} fuzz_dataset;

/* Returns create's status. */
int fuzz_dataset_open(fuzz_dataset *d, const char *component, const char *yaml);
void fuzz_dataset_close(fuzz_dataset *d);
/* A create that failed left no state, said why in one line and, when
 * `name` is not NULL, named it (the file at fault). */
void fuzz_check_create_refusal(const fuzz_dataset *d, int rc, const char *name);

/* FNV-1a of n bytes, continuing from h (start with FUZZ_HASH_START): the
 * identity of a sample, for comparing what a dataset returns with what a
 * file holds. */
#define FUZZ_HASH_START 1469598103934665603ull
uint64_t fuzz_hash(uint64_t h, const void *bytes, size_t n);
/* Sorts n hashes and compares two sorted lists. */
void fuzz_sort_hashes(uint64_t *h, size_t n);
bool fuzz_find_hash(const uint64_t *sorted, size_t n, uint64_t h);

/* ---- the fuzz input as a stream of choices ------------------------------ */
/* Reads past the end give zeros, so every input decodes to something. */
typedef struct fuzz_input {
    const uint8_t *p;
    size_t n;
} fuzz_input;

uint8_t fuzz_u8(fuzz_input *in);
uint16_t fuzz_u16(fuzz_input *in);
uint32_t fuzz_u32(fuzz_input *in);
uint64_t fuzz_u64(fuzz_input *in);
/* A value in [0, n) (0 when n is 0). */
uint32_t fuzz_below(fuzz_input *in, uint32_t n);
/* A double that is often one of the values that break code: 0, -0, 1, -1,
 * NaN, infinities, the extremes of float and double, else raw bits. */
double fuzz_double(fuzz_input *in);
/* An int64 that is often 0, 1, -1, the extremes or a small number. */
int64_t fuzz_int64(fuzz_input *in);
/* A malloc'ed string of at most max bytes (a length byte, then bytes), or
 * one of `words` (NULL-terminated, may be NULL) when the length byte says
 * so.  NUL bytes in the input end the string early. */
char *fuzz_string(fuzz_input *in, size_t max, const char *const *words);

/* ---- HDF5 objects from the fuzz input (fuzz_hdf5_data, fuzz_log) -------- */
/* The file datatypes the harnesses write: 0 uint8, 1 int8, 2 uint16 BE,
 * 3 int16, 4 int32, 5 uint32 LE, 6 int64, 7 uint64, 8 float32, 9 float64,
 * 10 float64 BE, 11 float32 BE, 12 fixed string (16 bytes), 13 variable
 * string (UTF-8), 14 compound {f: float32}, 15 enum, 16 array float32[2],
 * 17 bit field, 18 opaque, 19 IEEE half float, 20 3-byte integer. */
#define FUZZ_H5_TYPES 21
/* A new id (close it) of datatype k (< FUZZ_H5_TYPES). */
hid_t fuzz_h5_type(unsigned k);
/* Values for n elements of `type` (malloc'ed; for variable strings an array
 * of char pointers whose strings live until the next call): mode 0 the
 * input's bytes, 1 the values that break code (fuzz_double, fuzz_int64),
 * 2 the sequence 0, 1, 2, ..., 3 strings from `words` (NULL-terminated,
 * may be NULL). */
void *fuzz_h5_values(fuzz_input *in, hid_t type, uint64_t n, unsigned mode,
                     const char *const *words);
/* Attribute `name` of obj, replaced by one of a datatype, dataspace
 * (scalar, [1], [2] or null) and values the input chooses. */
void fuzz_h5_attribute(fuzz_input *in, hid_t obj, const char *name, const char *const *words);
/* Zero to two attributes, their names from `words` or the input. */
void fuzz_h5_attributes(fuzz_input *in, hid_t obj, const char *const *words);
/* Writes a whole dataset `name` of loc, of `type` in the file and in
 * memory, shape dims[0..rank); aborts when HDF5 fails (harness setup). */
void fuzz_h5_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                   const void *data);
/* A dataset at `path` of loc (created with lcpl): a datatype, a scalar,
 * null or simple dataspace of rank 1 to 6 (dimension 0 up to max_rows - 1,
 * the others up to 4, at most 4096 elements), contiguous, chunked and
 * extendible (maybe deflated), compact or external storage (in
 * raw_path, maybe cut short), values, and attributes. */
void fuzz_h5_dataset(fuzz_input *in, hid_t loc, const char *path, hid_t lcpl,
                     unsigned max_rows, const char *raw_path, const char *const *words);

#endif /* AGON_FUZZ_COMMON_H */
