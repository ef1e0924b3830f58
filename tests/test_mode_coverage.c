/* The mode_coverage metric: its counting (modes captured, high-quality
 * percentage, KL to uniform) on hand-made sample sets, and create's checks.
 * The plugin source is included to reach count_modes directly. */
#include "test_util.h"

#include <math.h>

#include "../plugins/metrics/mode_coverage.c"

#define K 8
#define STD 0.02

static float centres[K * 2];

static int setup(void **state)
{
    /* The ring of 8 at radius 2. */
    for (int k = 0; k < K; k++) {
        centres[2 * k] = (float)(2.0 * cos(2.0 * 3.14159265358979323846 * k / K));
        centres[2 * k + 1] = (float)(2.0 * sin(2.0 * 3.14159265358979323846 * k / K));
    }
    return 0;
}

static coverage_result run(const float *samples, int64_t n, int64_t min_count,
                           int64_t *counts)
{
    coverage_result res;
    res.counts = counts;
    count_modes(samples, n, 2, centres, K, STD, 3.0, min_count, &res);
    return res;
}

/* Sample i sits at centre mode_of[i] shifted by (dx, dy). */
static void place(float *x, int64_t n, const int *mode_of, float dx, float dy)
{
    for (int64_t i = 0; i < n; i++) {
        x[2 * i] = centres[2 * mode_of[i]] + dx;
        x[2 * i + 1] = centres[2 * mode_of[i] + 1] + dy;
    }
}

static void test_all_modes_even(void **state)
{
    enum { N = 80 };
    float x[2 * N];
    int mode_of[N];
    int64_t counts[K];
    for (int i = 0; i < N; i++)
        mode_of[i] = i % K;
    /* A small offset (1 std) keeps every sample high quality. */
    place(x, N, mode_of, 0.02f, 0.0f);
    coverage_result r = run(x, N, 1, counts);
    assert_int_equal(r.modes, 8);
    assert_float_equal(r.high_quality, 100.0, 1e-12);
    /* p_k = 1/8 for every k: sum 1/8 log(8 * 1/8) = 0 */
    assert_float_equal(r.kl, 0.0, 1e-12);
    for (int k = 0; k < K; k++)
        assert_int_equal(counts[k], 10);
}

static void test_all_in_one_mode(void **state)
{
    enum { N = 50 };
    float x[2 * N];
    int mode_of[N];
    int64_t counts[K];
    for (int i = 0; i < N; i++)
        mode_of[i] = 3;
    place(x, N, mode_of, 0.0f, -0.03f);
    coverage_result r = run(x, N, 1, counts);
    assert_int_equal(r.modes, 1);
    assert_int_equal(counts[3], N);
    assert_float_equal(r.high_quality, 100.0, 1e-12);
    /* p_3 = 1: 1 * log(8 * 1) = log 8 = 2.0794415416798357 */
    assert_float_equal(r.kl, 2.0794415416798357, 1e-12);
}

static void test_half_far_away(void **state)
{
    enum { N = 32 };
    float x[2 * N];
    int mode_of[N];
    int64_t counts[K];
    for (int i = 0; i < N; i++)
        mode_of[i] = i % K;
    place(x, N, mode_of, 0.0f, 0.0f);
    /* The origin is 2 = 100 std from every centre. */
    for (int i = N / 2; i < N; i++)
        x[2 * i] = x[2 * i + 1] = 0.0f;
    coverage_result r = run(x, N, 1, counts);
    assert_float_equal(r.high_quality, 50.0, 1e-12);
    assert_int_equal(r.modes, 8);
    assert_float_equal(r.kl, 0.0, 1e-12);
}

/* Counts 5, 2, 1 in modes 0, 1, 2 (8 high-quality samples). */
static void test_min_count_and_kl(void **state)
{
    const int mode_of[8] = {0, 0, 0, 0, 0, 1, 1, 2};
    float x[16];
    int64_t counts[K];
    place(x, 8, mode_of, 0.01f, 0.01f);
    assert_int_equal(run(x, 8, 1, counts).modes, 3);
    assert_int_equal(run(x, 8, 2, counts).modes, 2);
    assert_int_equal(run(x, 8, 3, counts).modes, 1);
    assert_int_equal(run(x, 8, 5, counts).modes, 1);
    assert_int_equal(run(x, 8, 6, counts).modes, 0);
    /* p = (5/8, 2/8, 1/8, 0, ...): KL = 5/8 log(8 * 5/8) + 2/8 log(8 * 2/8) + 1/8 log 1
     *   = 0.625 log 5 + 0.25 log 2 = 1.005898822 + 0.173286795 = 1.179185490411299 */
    assert_float_equal(run(x, 8, 1, counts).kl, 1.179185490411299, 1e-12);
}

/* The quality radius is quality_stds * mode_std = 0.06 (Euclidean). */
static void test_quality_radius(void **state)
{
    const int mode_of[4] = {0, 1, 2, 3};
    float x[8];
    int64_t counts[K];
    place(x, 4, mode_of, 0.0f, 0.0f);
    /* 0.058 inside; 0.062 outside; the diagonal (0.045, 0.045) is 0.0636
     * away although each coordinate alone is within 0.06. */
    x[0] += 0.058f;
    x[2] += 0.062f;
    x[4] += 0.045f;
    x[5] += 0.045f;
    coverage_result r = run(x, 4, 1, counts);
    assert_float_equal(r.high_quality, 50.0, 1e-12);
    assert_int_equal(r.modes, 2);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[2], 0);
    assert_int_equal(counts[3], 1);
}

/* Nothing near any mode: no histogram, so kl is log K by definition (the
 * worst case), and NaN samples are never high quality. */
static void test_no_high_quality(void **state)
{
    float x[6] = {0.0f, 0.0f, 10.0f, -10.0f, NAN, 1.0f};
    int64_t counts[K];
    coverage_result r = run(x, 3, 1, counts);
    assert_int_equal(r.modes, 0);
    assert_float_equal(r.high_quality, 0.0, 0.0);
    assert_float_equal(r.kl, log(8.0), 1e-12);
}

/* Values exactly representable in float and double: std 0.5, quality_stds
 * 2, so the radius is exactly 1 and its square exactly 1. */
static const float two_centres[4] = {-1.0f, 0.0f, 1.0f, 0.0f};

/* A sample exactly quality_stds * std from its centre is inside: the
 * definition is <=.  (2, 0) and (1, 1) are exactly 1 from centre 1,
 * (-1, -1) exactly 1 from centre 0, and (2.5, 0) is outside. */
static void test_quality_boundary_is_inside(void **state)
{
    const float x[8] = {2.0f, 0.0f, 1.0f, 1.0f, 2.5f, 0.0f, -1.0f, -1.0f};
    int64_t counts[2];
    coverage_result r;
    r.counts = counts;
    count_modes(x, 4, 2, two_centres, 2, 0.5, 2.0, 1, &r);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 2);
    assert_float_equal(r.high_quality, 75.0, 1e-12);
    assert_int_equal(r.modes, 2);
}

/* Ties go to the lower index, in whichever order the centres are listed. */
static void test_tie_goes_to_lower_index(void **state)
{
    const float x[2] = {0.0f, 0.0f};
    int64_t counts[2];
    coverage_result r;
    r.counts = counts;
    count_modes(x, 1, 2, two_centres, 2, 0.5, 2.0, 1, &r);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);

    const float swapped[4] = {1.0f, 0.0f, -1.0f, 0.0f};
    count_modes(x, 1, 2, swapped, 2, 0.5, 2.0, 1, &r);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 0);
}

/* ---- create ------------------------------------------------------------------ */

static agon_config *parse(const char *yaml)
{
    static const char *const host_keys[] = {"plugin", "every", NULL};
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *cfg = agon_config_parse(yaml, strlen(yaml), "mc.yaml", &diag);
    if (!cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *section = agon_node_at(agon_node_get(agon_config_root(cfg), "metrics"), 0);
    assert_non_null(section);
    if (agon_schema_apply(cfg, section, mc_params, host_keys, "metric 'mode_coverage'",
                          &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    return cfg;
}

static const agon_node *section_of(agon_config *cfg)
{
    return agon_node_at(agon_node_get(agon_config_root(cfg), "metrics"), 0);
}

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(mc_params, &err), 0);
    assert_string_equal(mc_vtable.outputs[0], "modes");
    assert_string_equal(mc_vtable.outputs[1], "high_quality");
    assert_string_equal(mc_vtable.outputs[2], "kl");
    assert_null(mc_vtable.outputs[3]);
}

static void test_create_needs_modes(void **state)
{
    agon_config *cfg = parse("metrics:\n  - plugin: mode_coverage\n    every: 100\n");
    agon_dataset_info info;
    memset(&info, 0, sizeof info);
    int64_t d = 784;
    info.sample_shape = agon_shape_make(1, &d);
    info.size = 60000;
    void *st = (void *)1;
    agon_error err = {0};
    assert_int_equal(mc_vtable.create(section_of(cfg), &info, &st, &err), AGON_ECONFIG);
    assert_null(st);
    assert_string_equal(err.message,
                        "mc.yaml:2:5: metrics[0]: mode_coverage needs a dataset with known "
                        "modes (gaussian_mixture); remove the metric or change the dataset");
    agon_config_destroy(cfg);
}

static void test_create_with_modes(void **state)
{
    agon_config *cfg = parse("metrics:\n  - plugin: mode_coverage\n    n_samples: 300\n"
                             "    min_count: 4\n    quality_stds: 2.5\n");
    agon_dataset_info info;
    memset(&info, 0, sizeof info);
    int64_t d = 2;
    info.sample_shape = agon_shape_make(1, &d);
    info.size = -1;
    info.n_modes = K;
    info.mode_centres = centres;
    info.mode_std = STD;
    void *st = NULL;
    agon_error err = {0};
    assert_int_equal(mc_vtable.create(section_of(cfg), &info, &st, &err), 0);
    const mc_state *s = st;
    assert_int_equal(s->n_samples, 300);
    assert_int_equal(s->min_count, 4);
    assert_float_equal(s->quality_stds, 2.5, 0.0);
    assert_int_equal(s->dim, 2);
    assert_memory_equal(s->centres, centres, sizeof centres);
    mc_vtable.destroy(st);
    mc_vtable.destroy(NULL);
    agon_config_destroy(cfg);
}

/* ---- evaluate, through a metric context of our own ----------------------------
 * The host's agon_metric_* functions live in libagon; defining them here
 * makes evaluate call these instead (the executable's definitions come
 * first in symbol lookup).  They hand out a fixed sample set and record
 * what is emitted. */

enum { EVAL_N = 10, MAX_EMITS = 8 };

struct agon_metric_ctx {
    const float *samples;   /* [EVAL_N, 2] */
    int fake_calls;
    agon_dataset_info info;
    agon_rng rng;
    int n_emits;
    char names[MAX_EMITS][32];
    double values[MAX_EMITS];
};

__attribute__((visibility("default"))) int agon_metric_fake(agon_metric_ctx *ctx,
                                                              agon_tensor *out, agon_error *err)
{
    ctx->fake_calls++;
    if (out->shape.ndim != 2 || out->shape.dim[0] != EVAL_N || out->shape.dim[1] != 2)
        return agon_error_set(err, AGON_EINTERNAL, "fake: unexpected batch shape");
    memcpy(out->data, ctx->samples, EVAL_N * 2 * sizeof(float));
    return 0;
}

__attribute__((visibility("default"))) int agon_metric_emit(agon_metric_ctx *ctx,
                                                              const char *name, double value,
                                                              agon_error *err)
{
    if (ctx->n_emits == MAX_EMITS)
        return agon_error_set(err, AGON_EINTERNAL, "emit: too many values");
    snprintf(ctx->names[ctx->n_emits], sizeof ctx->names[0], "%s", name);
    ctx->values[ctx->n_emits++] = value;
    return 0;
}

__attribute__((visibility("default"))) const agon_dataset_info *
agon_metric_dataset(const agon_metric_ctx *ctx)
{
    return &ctx->info;
}

__attribute__((visibility("default"))) agon_rng *agon_metric_rng(agon_metric_ctx *ctx)
{
    return &ctx->rng;
}

__attribute__((visibility("default"))) int64_t agon_metric_step(const agon_metric_ctx *ctx)
{
    return 0;
}

/* The value emitted under `name`; fails when it was not emitted once. */
static double emitted(const agon_metric_ctx *ctx, const char *name)
{
    int found = -1;
    for (int i = 0; i < ctx->n_emits; i++) {
        if (strcmp(ctx->names[i], name) == 0) {
            assert_int_equal(found, -1);
            found = i;
        }
    }
    assert_true(found >= 0);
    return ctx->values[found];
}

static void test_evaluate_emits_counts(void **state)
{
    /* Counts 5, 2, 1 in modes 0, 1, 2 and two samples at the origin, far
     * from every mode: modes 3, high_quality 80, kl 1.179185490411299
     * (see test_min_count_and_kl): three different numbers, so emitting
     * one under another's name shows. */
    const int mode_of[EVAL_N] = {0, 0, 0, 0, 0, 1, 1, 2, 0, 0};
    float x[2 * EVAL_N];
    place(x, EVAL_N, mode_of, 0.01f, 0.01f);
    x[16] = x[17] = x[18] = x[19] = 0.0f;

    agon_config *cfg = parse("metrics:\n  - plugin: mode_coverage\n    n_samples: 10\n");
    agon_metric_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.samples = x;
    int64_t d = 2;
    ctx.info.sample_shape = agon_shape_make(1, &d);
    ctx.info.size = -1;
    ctx.info.n_modes = K;
    ctx.info.mode_centres = centres;
    ctx.info.mode_std = STD;
    void *st = NULL;
    agon_error err = {0};
    assert_int_equal(mc_vtable.create(section_of(cfg), &ctx.info, &st, &err), 0);
    assert_int_equal(mc_vtable.evaluate(st, &ctx, &err), 0);
    assert_int_equal(err.code, 0);
    assert_int_equal(ctx.fake_calls, 1);
    assert_int_equal(ctx.n_emits, 3);

    int64_t counts[K];
    coverage_result want = run(x, EVAL_N, 1, counts);
    assert_int_equal(want.modes, 3);
    assert_float_equal(want.high_quality, 80.0, 1e-12);
    assert_float_equal(want.kl, 1.179185490411299, 1e-12);
    assert_float_equal(emitted(&ctx, "modes"), (double)want.modes, 0.0);
    assert_float_equal(emitted(&ctx, "high_quality"), want.high_quality, 0.0);
    assert_float_equal(emitted(&ctx, "kl"), want.kl, 0.0);
    mc_vtable.destroy(st);
    agon_config_destroy(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_modes_even),
        cmocka_unit_test(test_all_in_one_mode),
        cmocka_unit_test(test_half_far_away),
        cmocka_unit_test(test_min_count_and_kl),
        cmocka_unit_test(test_quality_radius),
        cmocka_unit_test(test_no_high_quality),
        cmocka_unit_test(test_quality_boundary_is_inside),
        cmocka_unit_test(test_tie_goes_to_lower_index),
        cmocka_unit_test(test_evaluate_emits_counts),
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_create_needs_modes),
        cmocka_unit_test(test_create_with_modes),
    };
    return cmocka_run_group_tests_name("mode_coverage", tests, setup, NULL);
}
