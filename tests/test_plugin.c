/* The plugin loader: every failure step with its exact message (broken
 * fixture plugins from tests/fixtures), directories and the search path,
 * file hashes, lookup, and the real plugins of the build tree.
 *
 * Paths are relative to AGON_TEST_FIXTURE_DIR (main changes into it), so
 * messages read as a user would see them. */
#include "test_util.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>

#include "agon/agon.h"
#include "fixtures/bad_schema_spec.h"

#define FIXTURE_LOG "AGON_FIXTURE_LOG"

static agon_registry *new_registry(void)
{
    agon_error err = {0};
    agon_registry *reg = agon_registry_create(&err);
    assert_non_null(reg);
    assert_int_equal(err.code, 0);
    return reg;
}

/* The hex SHA-256 of a file according to coreutils' sha256sum. */
static void sha256sum(const char *path, char hex[65])
{
    char cmd[1200], out[512];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    assert_true(strlen(out) > 64);
    memcpy(hex, out, 64);
    hex[64] = '\0';
}

/* True when the file is mapped into this process (dlopen'ed and not
 * closed again). */
static bool is_mapped(const char *path)
{
    char *real = realpath(path, NULL);
    assert_non_null(real);
    /* /proc files have no size to seek to: read line by line. */
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, real) != NULL;
    fclose(f);
    free(real);
    return found;
}

static void expect_failure(const char *path, int code, const char *expected)
{
    agon_registry *reg = new_registry();
    agon_error err = {0};
    int rc = agon_registry_load_file(reg, path, &err);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.message, expected);
    assert_int_equal(agon_registry_plugin_count(reg), 0);
    assert_null(agon_registry_plugin(reg, 0));
    /* Without an error to fill in, the result is the same. */
    assert_int_equal(agon_registry_load_file(reg, path, NULL), code);
    assert_int_equal(agon_registry_plugin_count(reg), 0);
    agon_registry_destroy(reg);
}

static void test_names(void **state)
{
    assert_string_equal(agon_kind_name(AGON_KIND_LOSS), "loss");
    assert_string_equal(agon_kind_name(AGON_KIND_MODEL), "model");
    assert_string_equal(agon_kind_name(AGON_KIND_DATASET), "dataset");
    assert_string_equal(agon_kind_name(AGON_KIND_METRIC), "metric");
    assert_string_equal(agon_kind_name(AGON_KIND_OPTIMIZER), "optimizer");
    assert_null(agon_kind_name(AGON_KIND_COUNT));
    assert_null(agon_kind_name((agon_kind)-1));
    assert_string_equal(agon_role_name(AGON_ROLE_GENERATOR), "generator");
    assert_string_equal(agon_role_name(AGON_ROLE_DISCRIMINATOR), "discriminator");
    assert_null(agon_role_name(AGON_ROLE_COUNT));
}

static void test_good_plugin(void **state)
{
    unsetenv(FIXTURE_LOG);
    agon_registry *reg = new_registry();
    agon_error err = {0};
    assert_int_equal(agon_registry_load_file(reg, "good/good.so", &err), 0);
    assert_int_equal(err.code, 0);
    assert_string_equal(getenv(FIXTURE_LOG), "init good;");
    assert_int_equal(agon_registry_plugin_count(reg), 1);

    const agon_plugin_record *rec = agon_registry_plugin(reg, 0);
    assert_non_null(rec);
    assert_string_equal(rec->path, "good/good.so");
    assert_string_equal(rec->desc->name, "fixture_good");
    assert_string_equal(rec->desc->version, "1.2.3");
    char hex[65];
    sha256sum("good/good.so", hex);
    assert_string_equal(rec->sha256, hex);

    static const struct {
        agon_kind kind;
        const char *name;
    } provided[] = {
        {AGON_KIND_LOSS, "fixture_loss"},       {AGON_KIND_MODEL, "fixture_model"},
        {AGON_KIND_DATASET, "fixture_data"},    {AGON_KIND_METRIC, "fixture_metric"},
        {AGON_KIND_OPTIMIZER, "fixture_optim"},
    };
    for (size_t i = 0; i < sizeof provided / sizeof provided[0]; i++) {
        const agon_plugin_record *owner = NULL;
        const agon_component *c =
            agon_registry_find(reg, provided[i].kind, provided[i].name, &owner);
        assert_non_null(c);
        assert_ptr_equal(c, &rec->desc->components[i]);
        assert_int_equal(c->kind, provided[i].kind);
        assert_ptr_equal(owner, rec);
        assert_non_null(agon_registry_find(reg, provided[i].kind, provided[i].name, NULL));
    }
    /* A name is looked up within its kind only. */
    const agon_plugin_record *owner = rec;
    assert_null(agon_registry_find(reg, AGON_KIND_MODEL, "fixture_loss", &owner));
    assert_null(owner);
    assert_null(agon_registry_find(reg, AGON_KIND_LOSS, "fixture_los", NULL));

    assert_string_equal(agon_registry_suggest(reg, AGON_KIND_LOSS, "fixture_los"),
                        "fixture_loss");
    assert_string_equal(agon_registry_suggest(reg, AGON_KIND_OPTIMIZER, "fixtur_optim"),
                        "fixture_optim");
    assert_null(agon_registry_suggest(reg, AGON_KIND_LOSS, "fixture_optim_xyz"));
    assert_null(agon_registry_suggest(reg, AGON_KIND_LOSS, "hinge"));
    /* Only names of the asked kind are candidates. */
    assert_null(agon_registry_suggest(reg, AGON_KIND_DATASET, "fixture_los"));

    /* The same file under another name is the same plugin: no second load,
     * no duplicate error, no second init. */
    assert_int_equal(agon_registry_load_file(reg, "./good/../good/good.so", &err), 0);
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    assert_string_equal(getenv(FIXTURE_LOG), "init good;");

    assert_true(is_mapped("good/good.so"));
    agon_registry_destroy(reg);
    assert_string_equal(getenv(FIXTURE_LOG), "init good;fini good;");
    assert_false(is_mapped("good/good.so"));
}

static void test_fini_reverse_order(void **state)
{
    unsetenv(FIXTURE_LOG);
    agon_registry *reg = new_registry();
    assert_int_equal(agon_registry_load_file(reg, "good/good.so", NULL), 0);
    assert_int_equal(agon_registry_load_file(reg, "dup_b/dup_b.so", NULL), 0);
    assert_string_equal(agon_registry_plugin(reg, 1)->path, "dup_b/dup_b.so");
    agon_registry_destroy(reg);
    assert_string_equal(getenv(FIXTURE_LOG), "init good;fini dup_b;fini good;");
    agon_registry_destroy(NULL);
}

static void test_open_failures(void **state)
{
    expect_failure("missing/missing.so", AGON_EPLUGIN,
                   "missing/missing.so: plugin open failed: No such file or directory; "
                   "check the path");
    expect_failure("undefined/undefined.so", AGON_EPLUGIN,
                   "undefined/undefined.so: plugin open failed: undefined symbol: "
                   "agon_fixture_function_that_does_not_exist; check that the file is an "
                   "agon plugin built for this machine");

    const char *dir = agon_test_tmpdir("notelf");
    char path[600];
    snprintf(path, sizeof path, "%s/notes.so", dir);
    agon_test_write_file(path, "These are notes that happen to end in .so, not a shared "
                               "object.  They are long enough to hold an ELF header.\n");
    expect_failure(path, AGON_EPLUGIN,
                   "tmp_notelf/notes.so: plugin open failed: not an ELF shared object "
                   "(109 bytes, no ELF header); give the path of a plugin built with "
                   "agon_add_plugin");

    /* A bare file name is the file in the current directory, not a
     * library looked up on the system's library path. */
    assert_int_equal(chdir("good"), 0);
    agon_registry *reg = new_registry();
    agon_error err = {0};
    int rc = agon_registry_load_file(reg, "good.so", &err);
    assert_int_equal(chdir(".."), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(agon_registry_plugin(reg, 0)->path, "good.so");
    agon_registry_destroy(reg);
}

static void expect_loads(const char *path)
{
    agon_registry *reg = new_registry();
    agon_error err = {0};
    assert_int_equal(agon_registry_load_file(reg, path, &err), 0);
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    agon_registry_destroy(reg);
}

/* A plugin someone else could change is refused before dlopen runs its
 * code: a file writable by every user or by a group with other members, a
 * file owned by another user, or a file in a directory like that (unless
 * the sticky bit keeps others from replacing files they do not own). */
static void test_untrusted_files(void **state)
{
    const char *dir = agon_test_tmpdir("trust");
    char path[600], cmd[1400], out[256];
    snprintf(path, sizeof path, "%s/good.so", dir);
    snprintf(cmd, sizeof cmd, "cp good/good.so '%s' && chmod 0757 '%s'", path, path);
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    expect_failure(path, AGON_EPLUGIN,
                   "tmp_trust/good.so: plugin trust failed: the file (mode 0757) can be "
                   "changed by every user, so someone else could change the code agon would "
                   "run; make it yours and private (chown, chmod go-w) or copy it to a folder "
                   "of your own");
    assert_false(is_mapped(path));
    assert_int_equal(chmod(path, 0755), 0);
    expect_loads(path);

    /* The same through a symbolic link: the file it points at counts. */
    char link[600];
    snprintf(link, sizeof link, "%s/link.so", dir);
    assert_int_equal(symlink("good.so", link), 0);
    assert_int_equal(chmod(path, 0777), 0);
    expect_failure(link, AGON_EPLUGIN,
                   "tmp_trust/link.so: plugin trust failed: the file (mode 0777) can be "
                   "changed by every user, so someone else could change the code agon would "
                   "run; make it yours and private (chown, chmod go-w) or copy it to a folder "
                   "of your own");
    assert_int_equal(chmod(path, 0755), 0);

    /* Group-writable, in a group that is not only the owner's: its
     * members could change it.  (The test gives the file a group other
     * than the user's private group: "adm" exists on every Debian.) */
    struct group *adm = getgrnam("adm");
    bool can_chown = geteuid() == 0;
    if (adm && can_chown) {
        assert_int_equal(chown(path, geteuid(), adm->gr_gid), 0);
        assert_int_equal(chmod(path, 0775), 0);
        expect_failure(path, AGON_EPLUGIN,
                       "tmp_trust/good.so: plugin trust failed: the file (mode 0775) can be "
                       "changed by the members of group adm, so someone else could change the "
                       "code agon would run; make it yours and private (chown, chmod go-w) or "
                       "copy it to a folder of your own");
        assert_false(is_mapped(path));
        assert_int_equal(chmod(path, 0755), 0);
        expect_loads(path);
        assert_int_equal(chown(path, geteuid(), getegid()), 0);
    }
    /* Owned by another user (not root): its owner could change it. */
    struct passwd *nobody = getpwnam("nobody");
    if (nobody && can_chown) {
        assert_int_equal(chown(path, nobody->pw_uid, getegid()), 0);
        expect_failure(path, AGON_EPLUGIN,
                       "tmp_trust/good.so: plugin trust failed: the file (mode 0755) can be "
                       "changed by its owner nobody, so someone else could change the code "
                       "agon would run; make it yours and private (chown, chmod go-w) or copy "
                       "it to a folder of your own");
        assert_int_equal(chown(path, geteuid(), getegid()), 0);
        expect_loads(path);
    }

    assert_int_equal(chmod(dir, 0777), 0);
    char *real_dir = realpath(dir, NULL);
    assert_non_null(real_dir);
    char want[1200];
    snprintf(want, sizeof want,
             "tmp_trust/good.so: plugin trust failed: its directory %s (mode 0777) can be "
             "changed by every user, so someone else could replace the file; move the plugin "
             "to a folder of your own or make the directory private (chmod go-w)",
             real_dir);
    expect_failure(path, AGON_EPLUGIN, want);
    if (adm && can_chown) {
        assert_int_equal(chown(dir, geteuid(), adm->gr_gid), 0);
        assert_int_equal(chmod(dir, 0775), 0);
        snprintf(want, sizeof want,
                 "tmp_trust/good.so: plugin trust failed: its directory %s (mode 0775) can be "
                 "changed by the members of group adm, so someone else could replace the file; "
                 "move the plugin to a folder of your own or make the directory private "
                 "(chmod go-w)",
                 real_dir);
        expect_failure(path, AGON_EPLUGIN, want);
        assert_int_equal(chown(dir, geteuid(), getegid()), 0);
    }
    free(real_dir);
    /* /tmp's rule: with the sticky bit only a file's owner may replace it. */
    assert_int_equal(chmod(dir, 01777), 0);
    expect_loads(path);
    assert_int_equal(chmod(dir, 0755), 0);
    expect_loads(path);
}

/* A plugin file cut short (an interrupted copy) is refused before dlopen,
 * which would map its segments past the end of the file and die of
 * SIGBUS on touching them; so are ELF files of another kind. */
static void test_damaged_files(void **state)
{
    const char *dir = agon_test_tmpdir("damaged");
    char path[600], cmd[1400], out[256];
    snprintf(path, sizeof path, "%s/cut.so", dir);
    long size = 0;
    snprintf(cmd, sizeof cmd, "stat -c %%s good/good.so");
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    size = strtol(out, NULL, 10);
    assert_true(size > 8192);
    static const long cuts[] = {10, 1000, 4096, -1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        long keep = cuts[i] > 0 ? cuts[i] : size - 1;
        snprintf(cmd, sizeof cmd, "head -c %ld good/good.so > '%s'", keep, path);
        assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
        agon_registry *reg = new_registry();
        agon_error err = {0};
        assert_int_equal(agon_registry_load_file(reg, path, &err), AGON_EPLUGIN);
        char want[200];
        snprintf(want, sizeof want, "tmp_damaged/cut.so: plugin open failed: truncated: ");
        assert_memory_equal(err.message, want, strlen(want));
        assert_non_null(strstr(err.message, "; copy the plugin again (an interrupted copy "
                                            "leaves such a file) or rebuild it"));
        assert_null(strchr(err.message, '\n'));
        assert_false(is_mapped(path));
        agon_registry_destroy(reg);
    }
    snprintf(cmd, sizeof cmd, "head -c 1000 good/good.so > '%s'", path);
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    snprintf(cmd, sizeof cmd, "readelf -h good/good.so | sed -n 's/.*Start of section headers: *\\([0-9]*\\).*/\\1/p'");
    assert_int_equal(agon_test_run(cmd, out, sizeof out, NULL, 0), 0);
    char want[400];
    snprintf(want, sizeof want,
             "tmp_damaged/cut.so: plugin open failed: truncated: its section headers (at byte "
             "%ld) end past its 1000 bytes; copy the plugin again (an interrupted copy leaves "
             "such a file) or rebuild it",
             strtol(out, NULL, 10));
    expect_failure(path, AGON_EPLUGIN, want);

    /* A 32-bit object: the header is whole, the kind is wrong. */
    unsigned char image[64] = {0x7f, 'E', 'L', 'F', 1 /* ELFCLASS32 */, 1, 1};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(image, 1, sizeof image, f), sizeof image);
    fclose(f);
    expect_failure(path, AGON_EPLUGIN,
                   "tmp_damaged/cut.so: plugin open failed: built for another machine (ELF "
                   "class 1, data 1, machine 0), not 64-bit little-endian x86-64; rebuild it on "
                   "this machine");
}

static void test_symbol_and_descriptor_failures(void **state)
{
    char expected[1024];
    expect_failure("no_entry/no_entry.so", AGON_EPLUGIN,
                   "no_entry/no_entry.so: plugin symbol failed: no agon_plugin_entry "
                   "symbol; is this an agon plugin (declared with AGON_PLUGIN)?");
    expect_failure("wrong_abi/wrong_abi.so", AGON_EPLUGIN,
                   "wrong_abi/wrong_abi.so: plugin abi failed: built for agon plugin ABI "
                   "999, this agon has ABI 3; rebuild the plugin against this agon's "
                   "headers");
    snprintf(expected, sizeof expected,
             "descriptor/wrong_size.so: plugin abi failed: the descriptor is %zu bytes, "
             "this agon expects %zu; rebuild the plugin against this agon's headers",
             sizeof(agon_plugin_descriptor) + 8, sizeof(agon_plugin_descriptor));
    expect_failure("descriptor/wrong_size.so", AGON_EPLUGIN, expected);
    expect_failure("descriptor/wrong_float.so", AGON_EPLUGIN,
                   "descriptor/wrong_float.so: plugin abi failed: built with 8-byte "
                   "floats, this agon uses 4-byte floats; rebuild the plugin for this "
                   "machine");
    expect_failure("descriptor/null_entry.so", AGON_EPLUGIN,
                   "descriptor/null_entry.so: plugin descriptor failed: agon_plugin_entry "
                   "returned NULL; declare the plugin with AGON_PLUGIN");
    expect_failure("descriptor/no_version.so", AGON_EPLUGIN,
                   "descriptor/no_version.so: plugin descriptor failed: the plugin has no "
                   "version; declare it with AGON_PLUGIN(name, version, summary, ...)");
    expect_failure("descriptor/no_components.so", AGON_EPLUGIN,
                   "descriptor/no_components.so: plugin descriptor failed: the plugin "
                   "provides no components; list at least one in AGON_PLUGIN");
    /* A rejected file is closed again. */
    assert_false(is_mapped("wrong_abi/wrong_abi.so"));
    assert_false(is_mapped("descriptor/wrong_float.so"));
}

static void test_component_failures(void **state)
{
    char expected[1024];
    const char *pre = "plugin component failed: component 2";
    snprintf(expected, sizeof expected,
             "component/comp_size.so: %s: agon_component struct_size is %zu, this agon "
             "expects %zu; rebuild the plugin against this agon's headers",
             pre, sizeof(agon_component) - 8, sizeof(agon_component));
    expect_failure("component/comp_size.so", AGON_EPLUGIN, expected);
    expect_failure("component/no_name.so", AGON_EPLUGIN,
                   "component/no_name.so: plugin component failed: component 2: the name "
                   "is missing; name every component with [a-z0-9_]");
    expect_failure("component/bad_name.so", AGON_EPLUGIN,
                   "component/bad_name.so: plugin component failed: component 2 "
                   "('Bad-Name'): the name is not made of [a-z0-9_]; use lowercase "
                   "letters, digits and '_'");
    expect_failure("component/bad_kind.so", AGON_EPLUGIN,
                   "component/bad_kind.so: plugin component failed: component 2 "
                   "('fixture_bad'): unknown kind 42 (this agon knows 0 to 4); rebuild "
                   "the plugin against this agon's headers");
    expect_failure("component/null_vtable.so", AGON_EPLUGIN,
                   "component/null_vtable.so: plugin component failed: component 2 "
                   "('fixture_bad'): the vtable is NULL; point the component at its "
                   "agon_loss_vtable");
    snprintf(expected, sizeof expected,
             "component/vtable_size.so: %s ('fixture_bad'): agon_loss_vtable struct_size "
             "is 4, this agon expects %zu; set it to sizeof(agon_loss_vtable) and "
             "rebuild against this agon's headers",
             pre, sizeof(agon_loss_vtable));
    expect_failure("component/vtable_size.so", AGON_EPLUGIN, expected);
    /* Larger is as wrong as smaller: the plugin was built against other headers. */
    snprintf(expected, sizeof expected,
             "component/vtable_big.so: %s ('fixture_bad'): agon_loss_vtable struct_size "
             "is %zu, this agon expects %zu; set it to sizeof(agon_loss_vtable) and "
             "rebuild against this agon's headers",
             pre, sizeof(agon_loss_vtable) + 8, sizeof(agon_loss_vtable));
    expect_failure("component/vtable_big.so", AGON_EPLUGIN, expected);
    expect_failure("component/no_g_loss.so", AGON_EPLUGIN,
                   "component/no_g_loss.so: plugin component failed: component 2 "
                   "('fixture_bad'): agon_loss_vtable.g_loss is NULL; a loss must "
                   "implement d_loss and g_loss");
    expect_failure("component/no_next_batch.so", AGON_EPLUGIN,
                   "component/no_next_batch.so: plugin component failed: component 2 "
                   "('fixture_bad'): agon_dataset_vtable.next_batch is NULL; a dataset "
                   "must implement create, destroy and next_batch");
    expect_failure("component/big_state.so", AGON_EPLUGIN,
                   "component/big_state.so: plugin component failed: component 2 "
                   "('fixture_bad'): n_state is 5, more than AGON_OPTIM_MAX_STATE (4); an "
                   "optimizer may keep at most 4 state tensors per parameter");
    expect_failure("component/no_outputs.so", AGON_EPLUGIN,
                   "component/no_outputs.so: plugin component failed: component 2 "
                   "('fixture_bad'): agon_metric_vtable.outputs is empty and declare is "
                   "NULL; list the names the metric emits, ended by NULL, or declare "
                   "tensor outputs");
    expect_failure("component/step_output.so", AGON_EPLUGIN,
                   "component/step_output.so: plugin component failed: component 2 "
                   "('fixture_bad'): output 'step' clashes with the step column of the "
                   "metric's log table; rename the output");
    expect_failure("component/twice_output.so", AGON_EPLUGIN,
                   "component/twice_output.so: plugin component failed: component 2 "
                   "('fixture_bad'): output 'value' is listed twice; each output needs "
                   "its own name");
    expect_failure("component/bad_output.so", AGON_EPLUGIN,
                   "component/bad_output.so: plugin component failed: component 2 "
                   "('fixture_bad'): output 2 ('Spread') is not made of [a-z0-9_]; use "
                   "lowercase letters, digits and '_'");
    expect_failure("component/dup_in_file.so", AGON_EPLUGIN,
                   "component/dup_in_file.so: plugin duplicate failed: loss "
                   "'component_ok' is provided twice by this file (components 1 and 2); "
                   "rename one of them");
}

static void test_bad_schema(void **state)
{
    /* The reason is agon_schema_check's own message for the same schema. */
    agon_error serr = {0};
    assert_int_equal(agon_schema_check(fx_bad_schema, &serr), AGON_EPLUGIN);
    assert_non_null(strstr(serr.message, "momentum"));
    char expected[2048];
    snprintf(expected, sizeof expected,
             "bad_schema/bad_schema.so: plugin component failed: component 2 "
             "('bad_schema_optim'): %s",
             serr.message);
    expect_failure("bad_schema/bad_schema.so", AGON_EPLUGIN, expected);
}

static void test_init_failure(void **state)
{
    unsetenv(FIXTURE_LOG);
    expect_failure("init_fails/init_fails.so", AGON_EPLUGIN,
                   "init_fails/init_fails.so: plugin init failed: the fixture's licence "
                   "file is missing; set FIXTURE_LICENCE");
    /* Init ran (twice: expect_failure loads twice); fini never runs for a
     * plugin whose init failed. */
    assert_string_equal(getenv(FIXTURE_LOG), "init init_fails;init init_fails;");
    assert_false(is_mapped("init_fails/init_fails.so"));
}

static void test_duplicate(void **state)
{
    agon_registry *reg = new_registry();
    agon_error err = {0};
    assert_int_equal(agon_registry_load_file(reg, "dup_a/dup_a.so", &err), 0);
    assert_int_equal(agon_registry_load_file(reg, "dup_b/dup_b.so", &err), AGON_EPLUGIN);
    assert_string_equal(err.message,
                        "dup_b/dup_b.so: plugin duplicate failed: loss 'dup_loss' is also "
                        "provided by dup_a/dup_a.so; remove one from the plugin search "
                        "path or rename it");
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    /* Nothing of the rejected file is registered, not even its other
     * components. */
    assert_null(agon_registry_find(reg, AGON_KIND_MODEL, "dup_b_model", NULL));
    const agon_plugin_record *owner;
    assert_non_null(agon_registry_find(reg, AGON_KIND_LOSS, "dup_loss", &owner));
    assert_string_equal(owner->path, "dup_a/dup_a.so");
    agon_registry_destroy(reg);

    /* Loaded the other way round, the other file is named. */
    reg = new_registry();
    agon_error_clear(&err);
    assert_int_equal(agon_registry_load_file(reg, "dup_b/dup_b.so", &err), 0);
    assert_int_equal(agon_registry_load_file(reg, "dup_a/dup_a.so", &err), AGON_EPLUGIN);
    assert_string_equal(err.message,
                        "dup_a/dup_a.so: plugin duplicate failed: loss 'dup_loss' is also "
                        "provided by dup_b/dup_b.so; remove one from the plugin search "
                        "path or rename it");
    assert_non_null(agon_registry_find(reg, AGON_KIND_MODEL, "dup_b_model", NULL));
    agon_registry_destroy(reg);
}

/* Names are unique per kind: a loss 'x' and a metric 'x' in one file load,
 * and each is found under its own kind. */
static void test_same_name_two_kinds(void **state)
{
    agon_registry *reg = new_registry();
    agon_error err = {0};
    assert_int_equal(agon_registry_load_file(reg, "same_name/same_name.so", &err), 0);
    assert_int_equal(err.code, 0);
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    const agon_plugin_record *rec = agon_registry_plugin(reg, 0);
    const agon_plugin_record *owner = NULL;
    const agon_component *loss = agon_registry_find(reg, AGON_KIND_LOSS, "x", &owner);
    assert_non_null(loss);
    assert_int_equal(loss->kind, AGON_KIND_LOSS);
    assert_ptr_equal(loss, &rec->desc->components[0]);
    assert_ptr_equal(owner, rec);
    const agon_component *metric = agon_registry_find(reg, AGON_KIND_METRIC, "x", &owner);
    assert_non_null(metric);
    assert_int_equal(metric->kind, AGON_KIND_METRIC);
    assert_ptr_equal(metric, &rec->desc->components[1]);
    assert_ptr_equal(owner, rec);
    assert_null(agon_registry_find(reg, AGON_KIND_MODEL, "x", NULL));
    agon_registry_destroy(reg);
}

static void test_load_dir(void **state)
{
    /* b.so sorts after a.so whatever order the directory lists them in. */
    const char *dir = agon_test_tmpdir("sorted");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && ln -s ../dup_a/dup_a.so b.so && ln -s ../dup_b/dup_b.so a.so && "
             "cp ../good/good.so good.so.1 && echo notes > README && mkdir dir.so && "
             "ln -s ../nothing_here.so dangling.so",
             dir);
    assert_int_equal(system(cmd), 0);
    agon_registry *reg = new_registry();
    agon_diag diag;
    agon_diag_init(&diag);
    assert_int_equal(agon_registry_load_dir(reg, dir, true, &diag), AGON_EPLUGIN);
    assert_int_equal(diag.count, 1);
    assert_int_equal(diag.code, AGON_EPLUGIN);
    assert_string_equal(diag.messages[0],
                        "tmp_sorted/b.so: plugin duplicate failed: loss 'dup_loss' is "
                        "also provided by tmp_sorted/a.so; remove one from the plugin "
                        "search path or rename it");
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    assert_string_equal(agon_registry_plugin(reg, 0)->path, "tmp_sorted/a.so");
    assert_int_equal(agon_registry_dir_count(reg), 1);
    assert_string_equal(agon_registry_dir(reg, 0), "tmp_sorted");
    assert_null(agon_registry_dir(reg, 1));

    /* A directory already searched (here with a trailing '/') is skipped:
     * no second report of the same failure. */
    agon_diag_fini(&diag);
    assert_int_equal(agon_registry_load_dir(reg, "tmp_sorted/", true, &diag), 0);
    assert_int_equal(diag.count, 0);
    assert_int_equal(agon_registry_dir_count(reg), 1);
    agon_registry_destroy(reg);

    /* Every broken file is reported, in name order, and the rest loads. */
    reg = new_registry();
    static const char *const variants[] = {
        "bad_kind",    "bad_name",     "bad_output",  "big_state",    "comp_size",
        "dup_in_file", "no_g_loss",    "no_name",     "no_next_batch", "no_outputs",
        "null_vtable", "step_output",  "twice_output", "vtable_big",   "vtable_size"};
    size_t n_variants = sizeof variants / sizeof variants[0];
    assert_int_equal(agon_registry_load_dir(reg, "component", true, &diag), AGON_EPLUGIN);
    assert_int_equal(diag.count, n_variants);
    for (size_t i = 0; i < n_variants; i++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "component/%s.so: plugin ", variants[i]);
        assert_memory_equal(diag.messages[i], prefix, strlen(prefix));
    }
    assert_int_equal(agon_registry_plugin_count(reg), 0);
    agon_diag_fini(&diag);

    assert_int_equal(agon_registry_load_dir(reg, "good/", true, &diag), 0);
    assert_int_equal(diag.count, 0);
    assert_int_equal(agon_registry_plugin_count(reg), 1);
    assert_string_equal(agon_registry_plugin(reg, 0)->path, "good/good.so");
    agon_registry_destroy(reg);

    /* Missing directories. */
    reg = new_registry();
    assert_int_equal(agon_registry_load_dir(reg, "no_such_dir", false, &diag), 0);
    assert_int_equal(diag.count, 0);
    assert_int_equal(agon_registry_load_dir(reg, "no_such_dir_2", true, &diag),
                     AGON_EPLUGIN);
    assert_int_equal(diag.count, 1);
    assert_string_equal(diag.messages[0], "no_such_dir_2: plugin directory does not exist");
    assert_int_equal(agon_registry_load_dir(reg, "good/good.so", true, &diag),
                     AGON_EPLUGIN);
    assert_int_equal(diag.count, 2);
    assert_string_equal(diag.messages[1],
                        "good/good.so: plugin directory cannot be read: Not a directory; "
                        "give a readable directory of plugin .so files");
    assert_int_equal(agon_registry_plugin_count(reg), 0);
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);
}

/* Loads the search path with `env` as AGON_PLUGIN_PATH (NULL: unset). */
static agon_registry *load_search(const char *const *dirs, size_t n, const char *env,
                                  agon_diag *diag)
{
    if (env)
        setenv("AGON_PLUGIN_PATH", env, 1);
    else
        unsetenv("AGON_PLUGIN_PATH");
    agon_registry *reg = new_registry();
    agon_diag_init(diag);
    agon_registry_load_search_path(reg, dirs, n, diag);
    unsetenv("AGON_PLUGIN_PATH");
    return reg;
}

static void test_search_path(void **state)
{
    agon_diag diag;
    /* Explicit directories come before AGON_PLUGIN_PATH. */
    const char *const a_first[] = {"dup_a"};
    agon_registry *reg = load_search(a_first, 1, ":dup_b::no_such_dir:", &diag);
    assert_int_equal(diag.count, 1);
    assert_string_equal(diag.messages[0],
                        "dup_b/dup_b.so: plugin duplicate failed: loss 'dup_loss' is also "
                        "provided by dup_a/dup_a.so; remove one from the plugin search "
                        "path or rename it");
    assert_string_equal(agon_registry_plugin(reg, 0)->path, "dup_a/dup_a.so");
    /* Empty entries are ignored; missing ones are skipped silently but
     * listed; the build tree's plugin folder comes last. */
    assert_int_equal(agon_registry_dir_count(reg), 4);
    assert_string_equal(agon_registry_dir(reg, 0), "dup_a");
    assert_string_equal(agon_registry_dir(reg, 1), "dup_b");
    assert_string_equal(agon_registry_dir(reg, 2), "no_such_dir");
    assert_string_equal(agon_registry_dir(reg, 3), AGON_TEST_PLUGIN_DIR);
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);

    const char *const b_first[] = {"dup_b"};
    reg = load_search(b_first, 1, "dup_a", &diag);
    assert_int_equal(diag.count, 1);
    assert_string_equal(diag.messages[0],
                        "dup_a/dup_a.so: plugin duplicate failed: loss 'dup_loss' is also "
                        "provided by dup_b/dup_b.so; remove one from the plugin search "
                        "path or rename it");
    assert_non_null(agon_registry_find(reg, AGON_KIND_MODEL, "dup_b_model", NULL));
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);

    /* AGON_PLUGIN_PATH entries keep their order. */
    reg = load_search(NULL, 0, "dup_b:dup_a", &diag);
    assert_int_equal(diag.count, 1);
    assert_memory_equal(diag.messages[0], "dup_a/dup_a.so: plugin duplicate failed",
                        strlen("dup_a/dup_a.so: plugin duplicate failed"));
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);

    /* An explicit directory must exist; the others still load. */
    const char *const missing[] = {"no_such_dir", "good"};
    reg = load_search(missing, 2, NULL, &diag);
    assert_int_equal(diag.count, 1);
    assert_int_equal(diag.code, AGON_EPLUGIN);
    assert_string_equal(diag.messages[0], "no_such_dir: plugin directory does not exist");
    assert_non_null(agon_registry_find(reg, AGON_KIND_LOSS, "fixture_loss", NULL));
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);

    /* One directory under several names is searched once. */
    const char *const twice[] = {"good", "./good/../good", "good/"};
    reg = load_search(twice, 3, "good", &diag);
    assert_int_equal(diag.count, 0);
    assert_int_equal(agon_registry_dir_count(reg), 2);
    assert_string_equal(agon_registry_dir(reg, 0), "good");
    assert_string_equal(agon_registry_dir(reg, 1), AGON_TEST_PLUGIN_DIR);
    assert_string_equal(agon_registry_plugin(reg, 0)->path, "good/good.so");
    for (size_t i = 1; i < agon_registry_plugin_count(reg); i++) {
        const char *path = agon_registry_plugin(reg, i)->path;
        assert_memory_equal(path, AGON_TEST_PLUGIN_DIR "/", strlen(AGON_TEST_PLUGIN_DIR) + 1);
    }
    agon_diag_fini(&diag);
    agon_registry_destroy(reg);
}

static int count_so_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len > 3 && strcmp(ent->d_name + len - 3, ".so") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void test_real_plugins(void **state)
{
    agon_registry *reg = new_registry();
    agon_diag diag;
    agon_diag_init(&diag);
    int rc = agon_registry_load_dir(reg, AGON_TEST_PLUGIN_DIR, true, &diag);
    for (size_t i = 0; i < diag.count; i++)
        print_error("%s\n", diag.messages[i]);
    assert_int_equal(rc, 0);
    assert_int_equal(diag.count, 0);
    agon_diag_fini(&diag);

    assert_int_equal(agon_registry_plugin_count(reg), count_so_files(AGON_TEST_PLUGIN_DIR));
    for (size_t i = 0; i < agon_registry_plugin_count(reg); i++) {
        const agon_plugin_record *rec = agon_registry_plugin(reg, i);
        char hex[65];
        sha256sum(rec->path, hex);
        assert_string_equal(rec->sha256, hex);
        assert_int_equal(rec->desc->abi_version, AGON_ABI_VERSION);
        /* Sorted by file name. */
        if (i > 0)
            assert_true(strcmp(agon_registry_plugin(reg, i - 1)->path, rec->path) < 0);
    }
    const agon_plugin_record *owner;
    assert_non_null(agon_registry_find(reg, AGON_KIND_OPTIMIZER, "sgd", &owner));
    assert_string_equal(owner->path, AGON_TEST_PLUGIN_DIR "/sgd.so");
    assert_non_null(agon_registry_find(reg, AGON_KIND_OPTIMIZER, "adam", &owner));
    assert_string_equal(owner->path, AGON_TEST_PLUGIN_DIR "/adam.so");
    assert_string_equal(agon_registry_suggest(reg, AGON_KIND_OPTIMIZER, "adma"), "adam");
    agon_registry_destroy(reg);
}

static void test_null_registry(void **state)
{
    assert_int_equal(agon_registry_plugin_count(NULL), 0);
    assert_null(agon_registry_plugin(NULL, 0));
    assert_int_equal(agon_registry_dir_count(NULL), 0);
    assert_null(agon_registry_dir(NULL, 0));
    assert_null(agon_registry_find(NULL, AGON_KIND_LOSS, "x", NULL));
    assert_null(agon_registry_suggest(NULL, AGON_KIND_LOSS, "x"));
    agon_registry *reg = new_registry();
    assert_null(agon_registry_find(reg, AGON_KIND_LOSS, "x", NULL));
    assert_null(agon_registry_suggest(reg, AGON_KIND_LOSS, "x"));
    agon_registry_destroy(reg);
}

int main(void)
{
    if (chdir(AGON_TEST_FIXTURE_DIR) != 0) {
        fprintf(stderr, "cannot enter %s; build the test fixtures first\n",
                AGON_TEST_FIXTURE_DIR);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_good_plugin),
        cmocka_unit_test(test_fini_reverse_order),
        cmocka_unit_test(test_open_failures),
        cmocka_unit_test(test_untrusted_files),
        cmocka_unit_test(test_damaged_files),
        cmocka_unit_test(test_symbol_and_descriptor_failures),
        cmocka_unit_test(test_component_failures),
        cmocka_unit_test(test_bad_schema),
        cmocka_unit_test(test_init_failure),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_same_name_two_kinds),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_search_path),
        cmocka_unit_test(test_real_plugins),
        cmocka_unit_test(test_null_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
