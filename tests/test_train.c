/* The game loop in process: no allocation per step, freezing, d_steps,
 * simultaneous updates, stopping, divergence. */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "agon/agon.h"
#include "test_util.h"

/* ---- malloc counting ------------------------------------------------------
 * The executable interposes malloc and friends so that a whole run can be
 * counted, in libagon, the plugins, OpenBLAS and HDF5 alike.  Sanitizer
 * builds bring their own allocator, so the counting test is skipped there. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_MALLOC 0
#else
#define COUNT_MALLOC 1
/* Default visibility, so that the executable's definitions interpose the C
 * library's for every shared object (the build hides symbols by default). */
#define INTERPOSE __attribute__((visibility("default")))
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static volatile long n_allocs;

INTERPOSE void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

INTERPOSE void *calloc(size_t n, size_t size)
{
    n_allocs++;
    return __libc_calloc(n, size);
}

INTERPOSE void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}
#endif

static agon_registry *registry(void)
{
    agon_error err = {0};
    agon_registry *reg = agon_registry_create(&err);
    assert_non_null(reg);
    agon_diag diag;
    agon_diag_init(&diag);
    const char *dirs[] = {AGON_TEST_PLUGIN_DIR};
    assert_int_equal(agon_registry_load_dir(reg, dirs[0], true, &diag), 0);
    agon_diag_fini(&diag);
    return reg;
}

/* Runs ring8 with the given overrides into `out`; returns the status. */
static int run(agon_registry *reg, const char *out, const char *const *sets, size_t n_sets,
               volatile sig_atomic_t *stop, agon_run_result *result)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(reg, AGON_TEST_SOURCE_DIR "/experiments/ring8.yaml",
                                                sets, n_sets, false, &diag);
    for (size_t i = 0; i < diag.count; i++)
        print_error("%s\n", diag.messages[i]);
    assert_non_null(exp);
    agon_diag_fini(&diag);
    agon_run_options opts = {
        .output_path = out, .progress = AGON_PROGRESS_NONE, .stop_flag = stop, .overwrite = true};
    agon_error err = {0};
    int rc = agon_experiment_run(exp, &opts, result, &err);
    agon_experiment_destroy(exp);
    return rc;
}

/* Reads a whole float dataset (at most cap values); returns the count. */
static size_t read_floats(const char *file, const char *path, float *out, size_t cap)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    assert_true(n > 0 && (size_t)n <= cap);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (size_t)n;
}

/* No logging, metrics or snapshots during the steps: whatever a longer run
 * allocates more than a shorter one, the step allocated. */
static const char *const quiet_sets[] = {
    "metrics=[]",        "log.every=100000",          "log.samples_every=0",
    "log.params_every=0", "log.flush_seconds=86400", "train.batch_size=64",
};

static void test_step_allocates_nothing(void **st)
{
    (void)st;
#if COUNT_MALLOC
    agon_registry *reg = registry();
    const char *sets_short[8], *sets_long[8];
    size_t n = sizeof quiet_sets / sizeof quiet_sets[0];
    for (size_t i = 0; i < n; i++)
        sets_short[i] = sets_long[i] = quiet_sets[i];
    sets_short[n] = "train.steps=10";
    sets_long[n] = "train.steps=210";
    agon_run_result r;
    /* A first run warms up lazily initialised library state. */
    assert_int_equal(run(reg, "alloc_warm.h5", sets_short, n + 1, NULL, &r), 0);
    long before = n_allocs;
    assert_int_equal(run(reg, "alloc_short.h5", sets_short, n + 1, NULL, &r), 0);
    long short_run = n_allocs - before;
    before = n_allocs;
    assert_int_equal(run(reg, "alloc_long.h5", sets_long, n + 1, NULL, &r), 0);
    long long_run = n_allocs - before;
    assert_int_equal(r.steps_done, 210);
    /* Setup and teardown vary by an allocation or two (text of different
     * lengths); one allocation per step would add 200. */
    if (long_run > short_run + 5)
        fail_msg("210 steps made %ld allocations, 10 steps made %ld: the step allocates",
                 long_run, short_run);
    agon_registry_destroy(reg);
#else
    skip();
#endif
}

/* freeze_d_from: 1 means D is never updated: its final parameters are its
 * initial ones, while G's moved (and the other way round). */
static void test_freeze(void **st)
{
    (void)st;
    agon_registry *reg = registry();
    /* /params holds [T, ...] with T = 2 (step 0 and the last step); row 0
     * is the initial value. */
    static float first[40000], last[40000];
    agon_run_result r;
    const char *freeze_d[] = {"train.steps=30", "log.params_every=1000", "metrics=[]",
                              "train.freeze_d_from=1"};
    assert_int_equal(run(reg, "freeze_d.h5", freeze_d, 4, NULL, &r), 0);
    size_t n = read_floats("freeze_d.h5", "/final/discriminator/2.weight", last, 40000);
    read_floats("freeze_d.h5", "/params/discriminator/2.weight", first, 40000);
    assert_memory_equal(first, last, n * sizeof(float));
    n = read_floats("freeze_d.h5", "/final/generator/0.weight", last, 40000);
    read_floats("freeze_d.h5", "/params/generator/0.weight", first, 40000);
    assert_true(memcmp(first, last, n * sizeof(float)) != 0);

    const char *freeze_g[] = {"train.steps=30", "log.params_every=1000", "metrics=[]",
                              "train.freeze_g_from=1"};
    assert_int_equal(run(reg, "freeze_g.h5", freeze_g, 4, NULL, &r), 0);
    n = read_floats("freeze_g.h5", "/final/generator/0.weight", last, 40000);
    read_floats("freeze_g.h5", "/params/generator/0.weight", first, 40000);
    assert_memory_equal(first, last, n * sizeof(float));
    agon_registry_destroy(reg);
}

/* d_steps and the update scheme change the trajectory; each still runs. */
static void test_schedules_differ(void **st)
{
    (void)st;
    agon_registry *reg = registry();
    static float a[200], b[200], c[200];
    agon_run_result r;
    const char *base[] = {"train.steps=20", "metrics=[]"};
    const char *two[] = {"train.steps=20", "metrics=[]", "train.d_steps=2"};
    const char *sim[] = {"train.steps=20", "metrics=[]", "train.update=simultaneous"};
    assert_int_equal(run(reg, "sched_a.h5", base, 2, NULL, &r), 0);
    assert_int_equal(run(reg, "sched_b.h5", two, 3, NULL, &r), 0);
    assert_int_equal(run(reg, "sched_c.h5", sim, 3, NULL, &r), 0);
    size_t n = read_floats("sched_a.h5", "/scalars/loss_g", a, 200);
    assert_int_equal(read_floats("sched_b.h5", "/scalars/loss_g", b, 200), n);
    assert_int_equal(read_floats("sched_c.h5", "/scalars/loss_g", c, 200), n);
    /* Alternating updates D before G's loss is taken; simultaneous takes it
     * from the same D: the curves differ from the first step on. */
    assert_true(memcmp(a, b, n * sizeof(float)) != 0);
    assert_true(memcmp(a, c, n * sizeof(float)) != 0);
    for (size_t i = 0; i < n; i++)
        assert_true(isfinite(a[i]) && isfinite(b[i]) && isfinite(c[i]));
    agon_registry_destroy(reg);
}

/* A raised stop flag ends the run after the current step with status
 * "interrupted" and a readable log. */
static void test_stop_flag(void **st)
{
    (void)st;
    agon_registry *reg = registry();
    volatile sig_atomic_t stop = 1;
    agon_run_result r;
    const char *sets[] = {"train.steps=50", "metrics=[]"};
    assert_int_equal(run(reg, "stopped.h5", sets, 2, &stop, &r), AGON_EINTERRUPTED);
    assert_string_equal(r.status, "interrupted");
    assert_int_equal(r.steps_done, 0);
    char out[4096];
    assert_int_equal(agon_test_run(AGON_CLI_PATH " show stopped.h5 --no-config", out, sizeof out,
                                   NULL, 0),
                     0);
    assert_non_null(strstr(out, "interrupted"));
    agon_registry_destroy(reg);
}

/* A non-finite loss stops the run as diverged, naming the step. */
static void test_divergence(void **st)
{
    (void)st;
    agon_registry *reg = registry();
    agon_run_result r;
    const char *sets[] = {"train.steps=100", "metrics=[]", "d_optimizer={plugin: sgd, lr: 1e30}",
                          "g_optimizer={plugin: sgd, lr: 1e30}"};
    assert_int_equal(run(reg, "diverged.h5", sets, 4, NULL, &r), AGON_EDIVERGED);
    assert_string_equal(r.status, "diverged");
    assert_true(r.steps_done >= 1 && r.steps_done < 100);
    float loss[100];
    size_t n = read_floats("diverged.h5", "/scalars/loss_d", loss, 100);
    /* The diverging step's row is logged too. */
    assert_int_equal((int64_t)n, r.steps_done);
    agon_registry_destroy(reg);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_allocates_nothing),
        cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_schedules_differ),
        cmocka_unit_test(test_stop_flag),
        cmocka_unit_test(test_divergence),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
