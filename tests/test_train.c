/* The game loop in process: no allocation per step, freezing, d_steps,
 * simultaneous updates, stopping, divergence. */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "agon/agon.h"
#include "test_h5.h"

#include "alloc_count.h"

/* Runs ring8 with the given overrides into `out`; returns the status. */
static int run(agon_registry *reg, const char *out, const char *const *sets, size_t n_sets,
               volatile sig_atomic_t *stop, agon_run_result *result)
{
    agon_error err = {0};
    return agon_test_run_experiment(reg, AGON_TEST_SOURCE_DIR "/experiments/ring8.yaml", sets,
                                    n_sets, out, stop, result, &err);
}

static int64_t read_root_int(const char *file, const char *name)
{
    return agon_test_read_int_attr(file, "/", name);
}

static void assert_steps(const char *file, const char *path, const int64_t *want, size_t n)
{
    int64_t got[64];
    size_t m = agon_test_read_ints(file, path, got, 64);
    assert_int_equal(m, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], want[i]);
}

/* No logging, metrics or snapshots during the steps: whatever a longer run
 * allocates more than a shorter one, the step allocated. */
static const char *const quiet_sets[] __attribute__((unused)) = {
    "metrics=[]",        "log.every=100000",          "log.samples_every=0",
    "log.params_every=0", "log.flush_seconds=86400", "train.batch_size=64",
};

static void test_step_allocates_nothing(void **st)
{
    (void)st;
#if AGON_TEST_COUNTS_ALLOCS
    agon_registry *reg = agon_test_registry(true);
    const char *sets_short[8], *sets_long[8];
    size_t n = sizeof quiet_sets / sizeof quiet_sets[0];
    for (size_t i = 0; i < n; i++)
        sets_short[i] = sets_long[i] = quiet_sets[i];
    sets_short[n] = "train.steps=10";
    sets_long[n] = "train.steps=210";
    agon_run_result r;
    /* A first run warms up lazily initialised library state. */
    assert_int_equal(run(reg, "alloc_warm.h5", sets_short, n + 1, NULL, &r), 0);
    long before = agon_test_allocs, blas_before = agon_test_blas_allocs;
    assert_int_equal(run(reg, "alloc_short.h5", sets_short, n + 1, NULL, &r), 0);
    long short_run = agon_test_allocs - before;
    long blas_short = agon_test_blas_allocs - blas_before;
    before = agon_test_allocs;
    blas_before = agon_test_blas_allocs;
    assert_int_equal(run(reg, "alloc_long.h5", sets_long, n + 1, NULL, &r), 0);
    long long_run = agon_test_allocs - before;
    long blas_long = agon_test_blas_allocs - blas_before;
    assert_int_equal(r.steps_done, 210);
    /* Setup and teardown vary by an allocation or two (text of different
     * lengths); one allocation per step would add 200. */
    if (long_run > short_run + 5)
        fail_msg("210 steps made %ld allocations, 10 steps made %ld: the step allocates",
                 long_run, short_run);
    if (agon_test_blas_must_not_allocate() && blas_long > blas_short + 5)
        fail_msg("with the portable kernels OpenBLAS made %ld allocations in 210 steps and %ld "
                 "in 10: its products allocate",
                 blas_long, blas_short);
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
    agon_registry *reg = agon_test_registry(true);
    /* /params holds [T, ...] with T = 2 (step 0 and the last step); row 0
     * is the initial value. */
    static float first[40000], last[40000];
    agon_run_result r;
    const char *freeze_d[] = {"train.steps=30", "log.params_every=1000", "metrics=[]",
                              "train.freeze_d_from=1"};
    assert_int_equal(run(reg, "freeze_d.h5", freeze_d, 4, NULL, &r), 0);
    size_t n = agon_test_read_floats("freeze_d.h5", "/final/discriminator/2.weight", last, 40000);
    agon_test_read_floats("freeze_d.h5", "/params/discriminator/2.weight", first, 40000);
    assert_memory_equal(first, last, n * sizeof(float));
    n = agon_test_read_floats("freeze_d.h5", "/final/generator/0.weight", last, 40000);
    agon_test_read_floats("freeze_d.h5", "/params/generator/0.weight", first, 40000);
    assert_true(memcmp(first, last, n * sizeof(float)) != 0);

    const char *freeze_g[] = {"train.steps=30", "log.params_every=1000", "metrics=[]",
                              "train.freeze_g_from=1"};
    assert_int_equal(run(reg, "freeze_g.h5", freeze_g, 4, NULL, &r), 0);
    n = agon_test_read_floats("freeze_g.h5", "/final/generator/0.weight", last, 40000);
    agon_test_read_floats("freeze_g.h5", "/params/generator/0.weight", first, 40000);
    assert_memory_equal(first, last, n * sizeof(float));
    agon_registry_destroy(reg);
}

/* d_steps and the update scheme change the trajectory; each still runs. */
static void test_schedules_differ(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    static float a[200], b[200], c[200];
    agon_run_result r;
    const char *base[] = {"train.steps=20", "metrics=[]"};
    const char *two[] = {"train.steps=20", "metrics=[]", "train.d_steps=2"};
    const char *sim[] = {"train.steps=20", "metrics=[]", "train.update=simultaneous"};
    const char *g2[] = {"train.steps=20", "metrics=[]", "train.g_steps=2"};
    assert_int_equal(run(reg, "sched_a.h5", base, 2, NULL, &r), 0);
    assert_int_equal(run(reg, "sched_b.h5", two, 3, NULL, &r), 0);
    assert_int_equal(run(reg, "sched_c.h5", sim, 3, NULL, &r), 0);
    static float d[200];
    assert_int_equal(run(reg, "sched_d.h5", g2, 3, NULL, &r), 0);
    size_t n = agon_test_read_floats("sched_a.h5", "/scalars/loss_g", a, 200);
    assert_int_equal(agon_test_read_floats("sched_b.h5", "/scalars/loss_g", b, 200), n);
    assert_int_equal(agon_test_read_floats("sched_c.h5", "/scalars/loss_g", c, 200), n);
    /* Alternating updates D before G's loss is taken; simultaneous takes it
     * from the same D: the curves differ from the first step on. */
    assert_true(memcmp(a, b, n * sizeof(float)) != 0);
    assert_true(memcmp(a, c, n * sizeof(float)) != 0);
    assert_int_equal(agon_test_read_floats("sched_d.h5", "/scalars/loss_g", d, 200), n);
    assert_true(memcmp(a, d, n * sizeof(float)) != 0);
    for (size_t i = 0; i < n; i++)
        assert_true(isfinite(a[i]) && isfinite(b[i]) && isfinite(c[i]));
    agon_registry_destroy(reg);
}

/* A raised stop flag ends the run after the current step with status
 * "interrupted" and a readable log. */
static void test_stop_flag(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
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
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=100", "metrics=[]", "d_optimizer={plugin: sgd, lr: 1e30}",
                          "g_optimizer={plugin: sgd, lr: 1e30}"};
    assert_int_equal(run(reg, "diverged.h5", sets, 4, NULL, &r), AGON_EDIVERGED);
    assert_string_equal(r.status, "diverged");
    assert_true(r.steps_done >= 1 && r.steps_done < 100);
    float loss[100];
    size_t n = agon_test_read_floats("diverged.h5", "/scalars/loss_d", loss, 100);
    /* The diverging step's row is logged too, and the log says how far it got. */
    assert_int_equal((int64_t)n, r.steps_done);
    assert_int_equal(read_root_int("diverged.h5", "steps_done"), r.steps_done);
    /* The log names the scalar and the first non-finite tensor, and that
     * tensor really is non-finite in /final. */
    char series[64], tensor[128], message[512], want[512], path[200];
    agon_test_read_string_attr("diverged.h5", "/diverged", "series", series, sizeof series);
    agon_test_read_string_attr("diverged.h5", "/diverged", "tensor", tensor, sizeof tensor);
    agon_test_read_string_attr("diverged.h5", "/", "status_message", message, sizeof message);
    assert_true(strcmp(series, "loss_d") == 0 || strcmp(series, "loss_g") == 0);
    assert_true(strncmp(tensor, "discriminator/", 14) == 0 || strncmp(tensor, "generator/", 10) == 0);
    snprintf(want, sizeof want,
             "step %lld: %s is not finite, and the first non-finite tensor is %s; lower the "
             "learning rates or check the data and the loss",
             (long long)r.steps_done, series, tensor);
    assert_string_equal(message, want);
    static float values[1 << 16];
    snprintf(path, sizeof path, "/final/%s", tensor);
    size_t m = agon_test_read_floats("diverged.h5", path, values, 1 << 16);
    bool finite = true;
    for (size_t i = 0; i < m; i++)
        finite = finite && isfinite(values[i]);
    assert_false(finite);
    agon_registry_destroy(reg);
}


/* With G frozen, D learns to tell the ring from G's initial output: the
 * D update really runs, on the right halves, and d_real/d_fake are logged
 * from the right halves. */
static void test_d_learns_against_frozen_g(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=200", "train.batch_size=128", "metrics=[]",
                          "train.freeze_g_from=1", "log.params_every=1000"};
    assert_int_equal(run(reg, "d_only.h5", sets, 5, NULL, &r), 0);
    static float d_real[200], d_fake[200];
    size_t n = agon_test_read_floats("d_only.h5", "/scalars/d_real", d_real, 200);
    agon_test_read_floats("d_only.h5", "/scalars/d_fake", d_fake, 200);
    assert_true(d_real[n - 1] > 0.9f);
    assert_true(d_fake[n - 1] < 0.1f);
    static float first[40000], last[40000];
    n = agon_test_read_floats("d_only.h5", "/final/discriminator/0.weight", last, 40000);
    agon_test_read_floats("d_only.h5", "/params/discriminator/0.weight", first, 40000);
    assert_true(memcmp(first, last, n * sizeof(float)) != 0);
    agon_registry_destroy(reg);
}

/* The generator's backward pass through D must not touch D's gradients:
 * after one step with G frozen, D is the same whether G's gradient was
 * taken before D's update (simultaneous) or after it (alternating). */
static void test_g_step_leaves_d_gradients(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *alt[] = {"train.steps=1", "metrics=[]", "train.freeze_g_from=1"};
    const char *sim[] = {"train.steps=1", "metrics=[]", "train.freeze_g_from=1",
                         "train.update=simultaneous"};
    assert_int_equal(run(reg, "leak_alt.h5", alt, 3, NULL, &r), 0);
    assert_int_equal(run(reg, "leak_sim.h5", sim, 4, NULL, &r), 0);
    static float a[40000], b[40000];
    const char *params[] = {"/final/discriminator/0.weight", "/final/discriminator/2.weight",
                            "/final/discriminator/4.weight", "/final/discriminator/4.bias"};
    for (size_t i = 0; i < 4; i++) {
        size_t n = agon_test_read_floats("leak_alt.h5", params[i], a, 40000);
        assert_int_equal(agon_test_read_floats("leak_sim.h5", params[i], b, 40000), n);
        assert_memory_equal(a, b, n * sizeof(float));
    }
    agon_registry_destroy(reg);
}

/* Simultaneous updates take G's loss on the same fake batch and the same
 * D as the D loss: with one sample, loss_g = -log d_fake at every step
 * (non-saturating loss). */
static void test_simultaneous_uses_one_fake_batch(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=30", "metrics=[]", "train.batch_size=1",
                          "train.update=simultaneous"};
    assert_int_equal(run(reg, "sim_one.h5", sets, 4, NULL, &r), 0);
    float loss_g[30], d_fake[30];
    size_t n = agon_test_read_floats("sim_one.h5", "/scalars/loss_g", loss_g, 30);
    assert_int_equal(agon_test_read_floats("sim_one.h5", "/scalars/d_fake", d_fake, 30), n);
    for (size_t i = 0; i < n; i++) {
        double want = -log((double)d_fake[i]);
        if (fabs(loss_g[i] - want) > 1e-5 * (1.0 + fabs(want)))
            fail_msg("step %zu: loss_g %.9g, -log d_fake %.9g", i + 1, (double)loss_g[i], want);
    }
    agon_registry_destroy(reg);
}

/* With both networks frozen, every step sees fresh batches from the same
 * networks: gradient norms stay level (gradients are zeroed each step, not
 * accumulated) and D's view of the fakes varies (fresh fakes reach D). */
static void test_frozen_networks_fresh_batches(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=50", "metrics=[]", "train.batch_size=128",
                          "train.freeze_d_from=1", "train.freeze_g_from=1"};
    assert_int_equal(run(reg, "frozen.h5", sets, 5, NULL, &r), 0);
    float gn[2][50], d_fake[50];
    size_t n = agon_test_read_floats("frozen.h5", "/scalars/grad_norm_g", gn[0], 50);
    agon_test_read_floats("frozen.h5", "/scalars/grad_norm_d", gn[1], 50);
    agon_test_read_floats("frozen.h5", "/scalars/d_fake", d_fake, 50);
    for (int k = 0; k < 2; k++) {
        float lo = gn[k][0], hi = gn[k][0];
        for (size_t i = 1; i < n; i++) {
            lo = fminf(lo, gn[k][i]);
            hi = fmaxf(hi, gn[k][i]);
        }
        assert_true(lo > 0.0f && hi / lo < 2.0f);
    }
    bool varies = false;
    for (size_t i = 1; i < n; i++)
        varies = varies || d_fake[i] != d_fake[0];
    assert_true(varies);
    agon_registry_destroy(reg);
}

/* A linear generator x = W z (no bias, latent_dim 2) lets the test recover
 * the fixed latent batch from the step-0 snapshot: z = W^-1 x.  Uniform
 * latents lie in [-1, 1]; normal ones do not. */
static double max_abs_latent(agon_registry *reg, const char *out, const char *latent)
{
    agon_run_result r;
    char latent_set[64];
    snprintf(latent_set, sizeof latent_set, "train.latent=%s", latent);
    const char *sets[] = {"train.steps=1", "metrics=[]", "train.latent_dim=2",
                          "generator={plugin: mlp, hidden: [], bias: false}",
                          "log.params_every=1000", "log.n_samples=512", latent_set};
    assert_int_equal(run(reg, out, sets, 7, NULL, &r), 0);
    static float x[2 * 512 * 2];
    float w[2 * 4];
    size_t n = agon_test_read_floats(out, "/samples/x", x, sizeof x / sizeof x[0]);
    assert_int_equal(n, 2 * 512 * 2);
    agon_test_read_floats(out, "/params/generator/0.weight", w, 8);
    double det = (double)w[0] * w[3] - (double)w[1] * w[2];
    assert_true(fabs(det) > 1e-6);
    double worst = 0.0;
    for (int i = 0; i < 512; i++) {
        double x0 = x[2 * i], x1 = x[2 * i + 1];
        double z0 = (w[3] * x0 - w[1] * x1) / det, z1 = (-w[2] * x0 + w[0] * x1) / det;
        worst = fmax(worst, fmax(fabs(z0), fabs(z1)));
    }
    return worst;
}

static void test_latent_distribution(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    assert_true(max_abs_latent(reg, "latent_uniform.h5", "uniform") <= 1.0 + 1e-4);
    assert_true(max_abs_latent(reg, "latent_normal.h5", "normal") > 2.0);
    agon_registry_destroy(reg);
}

/* Snapshots draw their latents from their own stream, and a metric's real
 * and fake draws and D evaluations come from the metric's stream: neither
 * changes training. */
static void test_side_draws_leave_training_alone(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *base[] = {"train.steps=40", "metrics=[]", "log.samples_every=10"};
    const char *fewer[] = {"train.steps=40", "metrics=[]", "log.samples_every=10",
                           "log.n_samples=100"};
    const char *probed[] = {"train.steps=40", "metrics=[{plugin: probe, every: 10}]",
                            "log.samples_every=10"};
    assert_int_equal(run(reg, "side_base.h5", base, 3, NULL, &r), 0);
    assert_int_equal(run(reg, "side_fewer.h5", fewer, 4, NULL, &r), 0);
    assert_int_equal(run(reg, "side_probed.h5", probed, 3, NULL, &r), 0);
    const char *series[] = {"/scalars/loss_d", "/scalars/loss_g", "/scalars/grad_norm_g"};
    for (size_t i = 0; i < 3; i++) {
        float a[40], b[40], c[40];
        size_t n = agon_test_read_floats("side_base.h5", series[i], a, 40);
        assert_int_equal(agon_test_read_floats("side_fewer.h5", series[i], b, 40), n);
        assert_int_equal(agon_test_read_floats("side_probed.h5", series[i], c, 40), n);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_memory_equal(a, c, n * sizeof(float));
    }
    const int64_t probe_steps[] = {10, 20, 30, 40};
    assert_steps("side_probed.h5", "/metrics/probe/step", probe_steps, 4);
    agon_registry_destroy(reg);
}

/* Intervals: rows at every multiple of the interval and always at the last
 * step; snapshots also at step 0. */
static void test_intervals_and_last_step(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=10", "log.every=7", "log.samples_every=7",
                          "log.params_every=4", "metrics=[{plugin: probe, every: 7}]"};
    assert_int_equal(run(reg, "intervals.h5", sets, 5, NULL, &r), 0);
    const int64_t scalars[] = {7, 10}, samples[] = {0, 7, 10}, params[] = {0, 4, 8, 10};
    assert_steps("intervals.h5", "/scalars/step", scalars, 2);
    assert_steps("intervals.h5", "/samples/step", samples, 3);
    assert_steps("intervals.h5", "/params/generator/step", params, 4);
    assert_steps("intervals.h5", "/metrics/probe/step", scalars, 2);
    /* The context reports the step a metric is evaluated at. */
    float at_step[2];
    agon_test_read_floats("intervals.h5", "/metrics/probe/at_step", at_step, 2);
    assert_true(at_step[0] == 7.0f && at_step[1] == 10.0f);
    assert_int_equal(read_root_int("intervals.h5", "steps_done"), 10);
    agon_registry_destroy(reg);
}

/* Optimizers get their update counter t = 1, 2, 3, ... for every update,
 * D's d_steps included (the probe optimizer poisons the run otherwise). */
static void test_optimizer_counter(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=5", "metrics=[]", "train.d_steps=3", "train.g_steps=2",
                          "d_optimizer={plugin: probe_sgd, lr: 0.001}",
                          "g_optimizer={plugin: probe_sgd, lr: 0.001}"};
    assert_int_equal(run(reg, "counter.h5", sets, 6, NULL, &r), 0);
    assert_string_equal(r.status, "completed");
    agon_registry_destroy(reg);
}

/* Runs `yaml` (an experiment text) into `out`; returns the status and the
 * error message in *msg. */
static int run_text(agon_registry *reg, const char *yaml, const char *out, char *msg,
                    size_t cap)
{
    agon_test_write_file("cond.yaml", yaml);
    agon_error err = {0};
    int rc = agon_test_run_experiment(reg, "cond.yaml", NULL, 0, out, NULL, NULL, &err);
    snprintf(msg, cap, "%s", err.message);
    return rc;
}

static const char cond_yaml[] =
    "seed: 3\n"
    "dataset: {plugin: probe_clusters, classes: 3}\n"
    "generator: {plugin: mlp, hidden: [64, 64]}\n"
    "discriminator: {plugin: mlp, hidden: [64, 64], activation: leaky_relu}\n"
    "loss: {plugin: nonsaturating}\n"
    "g_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
    "d_optimizer: {plugin: adam, lr: 1.0e-3, beta1: 0.5}\n"
    "train: {steps: 1500, batch_size: 128, latent_dim: 8, conditional: concat}\n"
    "log: {every: 10, samples_every: 500, n_samples: 30, params_every: 1500}\n"
    "metrics: [{plugin: probe_labels, every: 500}]\n";

static double read_last(const char *file, const char *path)
{
    static float v[4096];
    size_t n = agon_test_read_floats(file, path, v, 4096);
    return v[n - 1];
}

/* A conditional GAN learns to put each class where its data is: the
 * generator's samples for label c end up nearest to blob c. */
static void test_conditional_follows_labels(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    char msg[512];
    assert_int_equal(run_text(reg, cond_yaml, "cond.h5", msg, sizeof msg), 0);
    /* G's input is z (8) + one-hot (3), D's is x (2) + one-hot (3). */
    static float w[64 * 11];
    assert_int_equal(agon_test_read_floats("cond.h5", "/final/generator/0.weight", w, 64 * 11),
                     64 * 11);
    assert_int_equal(
        agon_test_read_floats("cond.h5", "/final/discriminator/0.weight", w, 64 * 11), 64 * 5);
    assert_true(read_last("cond.h5", "/metrics/probe_labels/real_label_accuracy") == 1.0);
    assert_true(read_last("cond.h5", "/metrics/probe_labels/label_accuracy") >= 0.9);

    /* The snapshot grid: 3 rows (classes) of 10; row c near centre 3c - 3. */
    assert_int_equal(agon_test_read_int_attr("cond.h5", "/samples", "grid_cols"), 10);
    assert_int_equal(agon_test_read_int_attr("cond.h5", "/samples", "n_classes"), 3);
    static float x[4 * 30 * 2];
    size_t n = agon_test_read_floats("cond.h5", "/samples/x", x, 4 * 30 * 2);
    assert_int_equal(n, 4 * 30 * 2);
    const float *last = x + 3 * 30 * 2;
    int near = 0;
    for (int i = 0; i < 30; i++)
        near += fabsf(last[2 * i] - (3.0f * (float)(i / 10) - 3.0f)) < 1.0f;
    assert_true(near >= 27);
    agon_registry_destroy(reg);
}

static void test_conditional_needs_labels(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    char msg[512];
    const char yaml[] = "dataset: {plugin: gaussian_mixture}\n"
                        "generator: {plugin: mlp}\n"
                        "discriminator: {plugin: mlp}\n"
                        "loss: {plugin: minimax}\n"
                        "train:\n"
                        "  steps: 2\n"
                        "  conditional: concat\n";
    assert_int_equal(run_text(reg, yaml, "nolabels.h5", msg, sizeof msg), AGON_ECONFIG);
    assert_string_equal(msg, "cond.yaml:7:16: train.conditional: a conditional GAN needs "
                             "class labels, and dataset 'gaussian_mixture' has none; use "
                             "conditional: none or a labelled dataset");

    /* A plugin's label outside the classes is refused, not written past
     * the one-hot input. */
    const char bad[] = "dataset: {plugin: probe_clusters, classes: 3}\n"
                       "generator: {plugin: mlp}\n"
                       "discriminator: {plugin: mlp}\n"
                       "loss: {plugin: minimax}\n"
                       "train: {steps: 2, conditional: concat}\n"
                       "metrics: [{plugin: probe_labels, every: 1, shift: 3}]\n";
    assert_int_equal(run_text(reg, bad, "badlabels.h5", msg, sizeof msg), AGON_EPLUGIN);
    assert_string_equal(msg, "metric 'probe_labels' at step 1: label 4 is outside the "
                             "dataset's classes 0 to 2; this is a bug in the plugin that "
                             "gave it");
    const char bad_data[] = "dataset: {plugin: probe_clusters, classes: 3, label_shift: -3}\n"
                            "generator: {plugin: mlp}\n"
                            "discriminator: {plugin: mlp}\n"
                            "loss: {plugin: minimax}\n"
                            "train: {steps: 2, conditional: concat}\n";
    assert_int_equal(run_text(reg, bad_data, "badlabels.h5", msg, sizeof msg), AGON_EPLUGIN);
    assert_string_equal(msg, "dataset 'probe_clusters': label -3 is outside the dataset's "
                             "classes 0 to 2; this is a bug in the plugin that gave it");
    agon_registry_destroy(reg);
}

/* Matrix products are cut by shape, never by thread count (core/blas.c), so
 * a run gives the same bits at 1 and 2 threads: MLPs on the ring, and the
 * convolutions and batch norms of a DCGAN. */
static void assert_same_dataset(const char *f1, const char *f2, const char *path)
{
    static float a[1 << 20], b[1 << 20];
    size_t n = agon_test_read_floats(f1, path, a, 1 << 20);
    assert_int_equal(agon_test_read_floats(f2, path, b, 1 << 20), n);
    if (memcmp(a, b, n * sizeof(float)) != 0)
        fail_msg("%s differs between %s and %s", path, f1, f2);
}

static void test_threads_same_bits(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *one[] = {"train.steps=30", "metrics=[]", "train.threads=1"};
    const char *two[] = {"train.steps=30", "metrics=[]", "train.threads=2"};
    assert_int_equal(run(reg, "thr1.h5", one, 3, NULL, &r), 0);
    assert_int_equal(run(reg, "thr2.h5", two, 3, NULL, &r), 0);
    assert_same_dataset("thr1.h5", "thr2.h5", "/scalars/loss_d");
    assert_same_dataset("thr1.h5", "thr2.h5", "/scalars/loss_g");
    assert_same_dataset("thr1.h5", "thr2.h5", "/final/discriminator/2.weight");

    char msg[512];
    const char dcgan[] = "seed: 5\n"
                         "dataset: {plugin: fashion_mnist, limit: 512}\n"
                         "generator: {plugin: dcgan}\n"
                         "discriminator: {plugin: dcgan}\n"
                         "loss: {plugin: nonsaturating}\n"
                         "train: {steps: 3, batch_size: 64, latent_dim: 100, threads: %d}\n"
                         "log: {samples_every: 0}\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, dcgan, 1);
    assert_int_equal(run_text(reg, yaml, "dc1.h5", msg, sizeof msg), 0);
    snprintf(yaml, sizeof yaml, dcgan, 2);
    assert_int_equal(run_text(reg, yaml, "dc2.h5", msg, sizeof msg), 0);
    assert_same_dataset("dc1.h5", "dc2.h5", "/scalars/loss_d");
    assert_same_dataset("dc1.h5", "dc2.h5", "/final/generator/4.weight");
    assert_same_dataset("dc1.h5", "dc2.h5", "/final/discriminator/2.weight");
    assert_same_dataset("dc1.h5", "dc2.h5", "/final/discriminator/3.running_var");
    agon_registry_destroy(reg);
}

/* A metric's tensor outputs and attributes land in the log, and G runs on
 * the latent vectors the metric chooses: with a linear G (no hidden
 * layer), row r of g_of_z is W z_r + b for the final W and b. */
static void test_metric_tensors(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    agon_run_result r;
    const char *sets[] = {"train.steps=30", "generator={plugin: mlp, hidden: []}",
                          "metrics=[{plugin: probe_tensor, every: 10}]"};
    assert_int_equal(run(reg, "tensors.h5", sets, 3, NULL, &r), 0);
    const int64_t steps[] = {10, 20, 30};
    assert_steps("tensors.h5", "/metrics/probe_tensor/tensors/step", steps, 3);
    static float w[2 * 64], b[2], gz[3 * 4 * 2], z[3 * 4 * 64];
    assert_int_equal(agon_test_read_floats("tensors.h5", "/final/generator/0.weight", w, 2 * 64),
                     2 * 64);
    assert_int_equal(agon_test_read_floats("tensors.h5", "/final/generator/0.bias", b, 2), 2);
    assert_int_equal(agon_test_read_floats("tensors.h5", "/metrics/probe_tensor/tensors/g_of_z", gz,
                                 3 * 4 * 2), 3 * 4 * 2);
    assert_int_equal(agon_test_read_floats("tensors.h5", "/metrics/probe_tensor/tensors/z", z,
                                 3 * 4 * 64), 3 * 4 * 64);
    const float *last = gz + 2 * 4 * 2;
    for (int row = 0; row < 4; row++) {
        double v = (row - 1.5) / 2.0;
        assert_true(z[2 * 4 * 64 + row * 64 + 63] == (float)v);
        for (int o = 0; o < 2; o++) {
            double want = b[o];
            for (int j = 0; j < 64; j++)
                want += (double)w[o * 64 + j] * v;
            assert_float_equal(last[row * 2 + o], want, 1e-5);
        }
    }
    char text[64];
    agon_test_read_string_attr("tensors.h5", "/metrics/probe_tensor", "origin", text, sizeof text);
    assert_string_equal(text, "probe");
    assert_true(agon_test_read_double_attr("tensors.h5", "/metrics/probe_tensor", "scale") == 2.5);
    /* Only tensor outputs: no scalar table. */
    hid_t f = H5Fopen("tensors.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(H5Lexists(f, "/metrics/probe_tensor/step", H5P_DEFAULT) == 0);
    H5Fclose(f);

    char msg[512];
    const struct {
        const char *fault;
        int code;
        const char *msg;
    } faults[] = {
        {"no_emit", AGON_EPLUGIN, "metric 'probe_tensor' did not emit its tensor 'z' at step 2"},
        {"undeclared", AGON_EPLUGIN,
         "metric 'probe_tensor' at step 2: metric 'probe_tensor' emitted tensor 'extra', which "
         "it did not declare"},
        {"clash", AGON_EPLUGIN,
         "metric 'probe_tensor' declared attribute 'fault', which is also one of its settings; "
         "this is a bug in the metric plugin"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "dataset: {plugin: gaussian_mixture}\n"
                 "generator: {plugin: mlp}\n"
                 "discriminator: {plugin: mlp}\n"
                 "loss: {plugin: minimax}\n"
                 "train: {steps: 3}\n"
                 "metrics: [{plugin: probe_tensor, every: 2, fault: %s}]\n",
                 faults[i].fault);
        assert_int_equal(run_text(reg, yaml, "fault.h5", msg, sizeof msg), faults[i].code);
        assert_string_equal(msg, faults[i].msg);
    }
    agon_registry_destroy(reg);
}

/* Sampling in training mode (snapshots, metrics) updates batch norm's
 * running statistics as a side effect of the forward pass; agon puts G's
 * back, so logging more or less leaves every logged value of training
 * unchanged, running statistics included. */
static void test_sampling_leaves_running_stats(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(true);
    char msg[512];
    const char dcgan[] = "seed: 5\n"
                         "dataset: {plugin: fashion_mnist, limit: 512}\n"
                         "generator: {plugin: dcgan, base_width: 8}\n"
                         "discriminator: {plugin: dcgan, base_width: 8}\n"
                         "loss: {plugin: nonsaturating}\n"
                         "train: {steps: 4, batch_size: 32, latent_dim: 16}\n"
                         "log: {samples_every: %d, n_samples: 16, sample_mode: train}\n"
                         "metrics: [%s]\n";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, dcgan, 0, "");
    assert_int_equal(run_text(reg, yaml, "bn_quiet.h5", msg, sizeof msg), 0);
    snprintf(yaml, sizeof yaml, dcgan, 1, "{plugin: probe_tensor, every: 1}");
    assert_int_equal(run_text(reg, yaml, "bn_logged.h5", msg, sizeof msg), 0);
    assert_same_dataset("bn_quiet.h5", "bn_logged.h5", "/scalars/loss_g");
    assert_same_dataset("bn_quiet.h5", "bn_logged.h5", "/final/generator/1.running_mean");
    assert_same_dataset("bn_quiet.h5", "bn_logged.h5", "/final/generator/1.running_var");
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
        cmocka_unit_test(test_d_learns_against_frozen_g),
        cmocka_unit_test(test_g_step_leaves_d_gradients),
        cmocka_unit_test(test_simultaneous_uses_one_fake_batch),
        cmocka_unit_test(test_frozen_networks_fresh_batches),
        cmocka_unit_test(test_latent_distribution),
        cmocka_unit_test(test_side_draws_leave_training_alone),
        cmocka_unit_test(test_intervals_and_last_step),
        cmocka_unit_test(test_optimizer_counter),
        cmocka_unit_test(test_conditional_follows_labels),
        cmocka_unit_test(test_conditional_needs_labels),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_metric_tensors),
        cmocka_unit_test(test_sampling_leaves_running_stats),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
