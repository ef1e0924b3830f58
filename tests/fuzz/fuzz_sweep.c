/* libFuzzer harness for sweep files (core/cli_sweep.c): the fuzz input is
 * a sweep file, byte by byte, and the harness runs the real command,
 * `agon sweep FILE --dry-run --plugin-path <build plugins>`, through the
 * agon program's own dispatch (core/main.c's main, renamed
 * agon_cli_main): the sweep's keys (experiment, out, set, grid, zip,
 * random, seeds, slurm), its values turned into --set flow values, every
 * run's config resolved against the plugins' schemas, and each run's id
 * and state.  The file lies in experiments/sweeps/ of a private directory
 * holding a copy of the shipped experiments (and
 * tests/experiments/tiny_ring.yaml), so `experiment: ../ring8.yaml` and
 * `../../experiments/ring8.yaml` resolve as in the repository.
 *
 * A file whose axes make more than 64 runs is skipped: agon accepts up to
 * 100000, resolving each, which is slow by design rather than a hang.
 *
 * Properties checked beyond "no crash, leak or hang" (the sanitizers and
 * libFuzzer's own limits find those):
 *   - a refused sweep says why on stderr, in lines that each name the
 *     sweep file, the experiment, the sweep's folder or an option (each
 *     refusal one line);
 *   - HDF5 never prints its error stack;
 *   - round trip: every run's label (its --set assignments, printed by the
 *     dry run) gives back, read as --set reads it, the value the sweep
 *     file holds for that key, with the same meaning (a quoted scalar
 *     stays a string, a plain one keeps its type; a plain string may come
 *     back quoted);
 *   - consistency: the runs listed, plus the combinations reported as
 *     resolving to another's config, are the product of the axes' lengths,
 *     and no run id is listed twice.
 *
 * Built by tools/fuzz.sh (clang, -DAGON_FUZZ=ON); not part of the normal
 * build.  Files go to a private directory; the dry run creates nothing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agon/agon.h"
#include "fuzz_common.h"

int agon_cli_main(int argc, char **argv);

#define MAX_RUNS 64
#define MAX_KEYS 64

static char sweep_path[4200], experiments[4200];

/* Copies every *.yaml under src to dst, keeping the folders. */
static void copy_yaml_tree(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (!d)
        fuzz_fail("harness: cannot read %s", src);
    mkdir(dst, 0700);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        struct stat st;
        size_t len = strlen(e->d_name);
        if (stat(from, &st) == 0 && S_ISDIR(st.st_mode))
            copy_yaml_tree(from, to);
        else if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0)
            fuzz_copy_file(from, to);
    }
    closedir(d);
}

/* ---- what the file says --------------------------------------------------------- */

/* The axes as the sweep reads them: each run's label assigns, in order,
 * keys[0..n_keys) with one value of each; values[k] lists key k's values
 * (NULL for random draws, which the harness does not know, and seeds). */
typedef struct axes {
    uint64_t runs;              /* the product of the axes' lengths */
    const char *keys[MAX_KEYS];
    const agon_node *values[MAX_KEYS];
    size_t n_keys;
    bool known;                 /* every axis has the form agon accepts */
} axes;

static void add_key(axes *a, const char *key, const agon_node *values)
{
    if (a->n_keys < MAX_KEYS) {
        a->keys[a->n_keys] = key;
        a->values[a->n_keys++] = values;
    } else {
        a->known = false;
    }
}

static void multiply(axes *a, uint64_t n)
{
    a->runs = n && a->runs > UINT64_MAX / n ? UINT64_MAX : a->runs * n;
}

static void zip_group(axes *a, const agon_node *group)
{
    if (agon_node_kind_of(group) != AGON_NODE_MAP || agon_node_len(group) == 0) {
        a->known = false;
        return;
    }
    multiply(a, agon_node_len(agon_node_at(group, 0)));
    for (size_t i = 0; i < agon_node_len(group); i++)
        add_key(a, agon_node_key_at(group, i), agon_node_at(group, i));
}

/* The axes in the order the sweep takes them: grid, zip, random, seeds. */
static axes read_axes(const agon_node *root)
{
    axes a = {.runs = 1, .known = agon_node_kind_of(root) == AGON_NODE_MAP};
    const agon_node *grid = agon_node_get(root, "grid"), *zip = agon_node_get(root, "zip");
    const agon_node *random = agon_node_get(root, "random"), *seeds = agon_node_get(root, "seeds");
    if (grid && agon_node_kind_of(grid) == AGON_NODE_MAP) {
        for (size_t i = 0; i < agon_node_len(grid); i++) {
            multiply(&a, agon_node_len(agon_node_at(grid, i)));
            add_key(&a, agon_node_key_at(grid, i), agon_node_at(grid, i));
        }
    } else if (grid) {
        a.known = false;
    }
    if (zip && agon_node_kind_of(zip) == AGON_NODE_SEQ) {
        for (size_t i = 0; i < agon_node_len(zip); i++)
            zip_group(&a, agon_node_at(zip, i));
    } else if (zip) {
        zip_group(&a, zip);
    }
    if (random) {
        int64_t count = 0;
        const agon_node *params = agon_node_get(random, "params");
        if (agon_node_to_int(agon_node_get(random, "count"), &count, NULL) != 0 || count < 1)
            a.known = false;
        multiply(&a, count > 0 ? (uint64_t)count : 1);
        for (size_t i = 0; i < agon_node_len(params); i++)
            add_key(&a, agon_node_key_at(params, i), NULL);
    }
    if (seeds) {
        int64_t count = 0;
        if (agon_node_kind_of(seeds) == AGON_NODE_SEQ)
            count = (int64_t)agon_node_len(seeds);
        else if (agon_node_to_int(seeds, &count, NULL) != 0 || count < 1)
            a.known = false;
        multiply(&a, count > 0 ? (uint64_t)count : 1);
        /* Written back as the integers they parse to (0x10 as 16). */
        add_key(&a, "seed", NULL);
    }
    return a;
}

/* ---- the round trip of values ---------------------------------------------------- */

/* A plain scalar that agon reads as something other than a string. */
static bool typed(const agon_node *n)
{
    int64_t i;
    double f;
    bool b;
    return agon_node_to_int(n, &i, NULL) == 0 || agon_node_to_float(n, &f, NULL) == 0 ||
           agon_node_to_bool(n, &b, NULL) == 0;
}

/* The value a --set made means what the file's value means. */
static const char *same_value(const agon_node *file, const agon_node *set)
{
    agon_node_kind k = agon_node_kind_of(file);
    if (k != agon_node_kind_of(set))
        return "another kind of node";
    if (k == AGON_NODE_SCALAR) {
        if (strcmp(agon_node_scalar(file), agon_node_scalar(set)) != 0)
            return "another text";
        bool fq = agon_node_quoted(file), sq = agon_node_quoted(set);
        if (fq && !sq)
            return "a quoted string that became plain";
        if (!fq && sq && typed(file))
            return "a typed plain scalar that became a string";
        return NULL;
    }
    if (agon_node_len(file) != agon_node_len(set))
        return "another length";
    for (size_t i = 0; i < agon_node_len(file); i++) {
        if (k == AGON_NODE_MAP && strcmp(agon_node_key_at(file, i), agon_node_key_at(set, i)))
            return "another key";
        const char *why = same_value(agon_node_at(file, i), agon_node_at(set, i));
        if (why)
            return why;
    }
    return NULL;
}

/* A key the harness can follow through a scratch config. */
static bool plain_key(const char *key)
{
    return key[0] && !strpbrk(key, "[] \t\"'\\") && strchr(key, '.') != key;
}

/* The node at the dotted path `key` of cfg. */
static const agon_node *follow(const agon_config *cfg, const char *key)
{
    const agon_node *n = agon_config_root(cfg);
    char part[256];
    for (const char *p = key; n && *p;) {
        size_t len = strcspn(p, ".");
        snprintf(part, sizeof part, "%.*s", (int)len, p);
        n = agon_node_get(n, part);
        p += len + (p[len] == '.');
    }
    return n;
}

/* One run's label: the assignments of a->keys in order, space-separated.
 * Checks each value against the file's values of its key. */
static void check_label(const axes *a, const char *label, size_t len)
{
    const char *p = label, *end = label + len;
    for (size_t k = 0; k < a->n_keys; k++) {
        size_t klen = strlen(a->keys[k]);
        if ((size_t)(end - p) < klen + 1 || strncmp(p, a->keys[k], klen) != 0 || p[klen] != '=')
            fuzz_fail("a run's label does not assign %s where expected: %.*s", a->keys[k],
                      (int)len, label);
        const char *value = p + klen + 1, *stop = end;
        if (k + 1 < a->n_keys) {
            /* The next assignment: unambiguous only when " next=" occurs once. */
            char next[300];
            snprintf(next, sizeof next, " %s=", a->keys[k + 1]);
            const char *at = strstr(value, next);
            if (!at || at >= end)
                fuzz_fail("a run's label lacks %s: %.*s", next, (int)len, label);
            const char *again = strstr(at + 1, next);
            if (again && again < end)
                return;
            stop = at;
        }
        if (a->values[k] && plain_key(a->keys[k])) {
            char *assignment = strndup(p, (size_t)(stop - p));
            agon_diag diag;
            agon_diag_init(&diag);
            agon_config *scratch = agon_config_parse("{}", 2, "scratch.yaml", &diag);
            agon_diag_fini(&diag);
            agon_error err = {0};
            if (agon_config_set(scratch, assignment, 1, &err) != 0)
                fuzz_fail("--set cannot read back the sweep's assignment %s: %s", assignment,
                          err.message);
            const agon_node *got = follow(scratch, a->keys[k]);
            const char *why = "no such value in the file";
            for (size_t i = 0; why && got && i < agon_node_len(a->values[k]); i++)
                why = same_value(agon_node_at(a->values[k], i), got);
            if (why)
                fuzz_fail("the sweep's assignment %s is none of the file's values for %s (%s)",
                          assignment, a->keys[k], why);
            fuzz_note("read back %s", assignment);
            agon_config_destroy(scratch);
            free(assignment);
        }
        p = stop + (stop < end);
    }
}

/* The dry run's listing: one line per run (id, state, label), then the
 * summary "N runs in DIR: ...". */
static void check_listing(const axes *a, const char *out, const char *err)
{
    enum { LABEL_AT = 16 + 2 + 11 + 1 };
    char ids[MAX_RUNS][17];
    size_t listed = 0;
    const char *line = out;
    for (; *line && strncmp(line + strcspn(line, " "), " runs in ", 9) != 0;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len < LABEL_AT - 1 || listed == MAX_RUNS)
            fuzz_fail("the dry run printed an unexpected line: %.*s", (int)len, line);
        for (size_t i = 0; i < listed; i++) {
            if (strncmp(ids[i], line, 16) == 0)
                fuzz_fail("run %.16s is listed twice", line);
        }
        snprintf(ids[listed++], sizeof ids[0], "%.16s", line);
        if (len >= LABEL_AT)
            check_label(a, line + LABEL_AT, len - LABEL_AT);
        line += len + (nl ? 1 : 0);
    }
    unsigned long long n = 0, dups = 0;
    if (sscanf(line, "%llu runs in ", &n) != 1 || n != listed)
        fuzz_fail("the summary does not count the %zu runs listed: %s", listed, line);
    const char *d = strstr(err, " combinations resolve to the config of another");
    if (d) {
        while (d > err && d[-1] >= '0' && d[-1] <= '9')
            d--;
        dups = strtoull(d, NULL, 10);
    }
    if (n + dups != a->runs)
        fuzz_fail("%llu runs and %llu duplicates, but the axes make %llu combinations", n, dups,
                  (unsigned long long)a->runs);
}

/* Each line of a refusal names the sweep file, the experiment, the
 * sweep's folder (`out`) or an option. */
static void check_refusal_lines(const char *err, const char *out_dir)
{
    if (!err[0])
        fuzz_fail("the sweep failed without a word on stderr");
    for (const char *line = err; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char text[8192];
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        if (!strstr(text, "input.yaml") && !strstr(text, experiments) &&
            !(out_dir && out_dir[0] && strstr(text, out_dir)) &&
            strncmp(text, "agon sweep", 10) != 0 && strncmp(text, "--set ", 6) != 0)
            fuzz_fail("a refused sweep printed a line naming neither the sweep file nor the "
                      "experiment:\n%s",
                      text);
        line += len + (nl ? 1 : 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_private_dir("sweep");
    snprintf(experiments, sizeof experiments, "%s/experiments", dir);
    copy_yaml_tree(AGON_FUZZ_SOURCE_DIR "/experiments", experiments);
    char path[4300];
    snprintf(path, sizeof path, "%s/tiny_ring.yaml", experiments);
    fuzz_copy_file(AGON_FUZZ_SOURCE_DIR "/tests/experiments/tiny_ring.yaml", path);
    snprintf(sweep_path, sizeof sweep_path, "%s/sweeps/input.yaml", experiments);
    fuzz_registry();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *cfg = agon_config_parse((const char *)data, size, "input.yaml", &diag);
    agon_diag_fini(&diag);
    axes a = cfg ? read_axes(agon_config_root(cfg)) : (axes){.runs = 1};
    if (a.runs > MAX_RUNS) {
        agon_config_destroy(cfg);
        return 0;
    }
    fuzz_write_file(sweep_path, data, size);
    const char *argv[] = {"agon", "sweep", sweep_path, "--dry-run", "--plugin-path",
                          AGON_FUZZ_PLUGIN_DIR, NULL};
    fuzz_capture_begin(true);
    int code = agon_cli_main(6, (char **)argv);
    const char *err = fuzz_capture_end();
    const char *out = fuzz_captured_stdout();
    fuzz_note("exit %d, %zu lines out, %zu lines err%s%.200s", code, fuzz_count_lines(out),
              fuzz_count_lines(err), err[0] ? ": " : "", err);
    fuzz_check_no_hdf5_stack("sweep --dry-run", err);
    const agon_node *out_node = cfg ? agon_node_get(agon_config_root(cfg), "out") : NULL;
    if (code != 0)
        check_refusal_lines(err, agon_node_kind_of(out_node) == AGON_NODE_SCALAR
                                     ? agon_node_scalar(out_node)
                                     : NULL);
    else if (a.known)
        check_listing(&a, out, err);
    agon_config_destroy(cfg);
    return 0;
}
