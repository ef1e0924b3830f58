/* The mlp model plugin: the layers and parameter counts its build produces
 * from a parsed config, the discriminator's logit rule, reshaping to an
 * image-shaped output, and gradients through the built network.  The
 * plugin source is included to reach its vtable and schema. */
#include "test_util.h"

#include <math.h>

#include "../plugins/models/mlp.c"

typedef struct built {
    agon_config *cfg;
    agon_net *net;
    agon_error err;
    int rc;
} built;

/* Parses `yaml`, applies the schema to `section` as the host does, creates
 * a net for `in_shape` and runs the plugin's build for `role`. */
static built build(const char *yaml, const char *section, agon_role role,
                   const agon_shape *in_shape, const agon_shape *out_shape)
{
    static const char *const host_keys[] = {"plugin", NULL};
    built b;
    memset(&b, 0, sizeof b);
    agon_diag diag;
    agon_diag_init(&diag);
    b.cfg = agon_config_parse(yaml, strlen(yaml), "mlp.yaml", &diag);
    if (!b.cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *node = agon_node_get(agon_config_root(b.cfg), section);
    assert_non_null(node);
    if (agon_schema_apply(b.cfg, node, mlp_params, host_keys, "model 'mlp'", &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    b.net = agon_net_create(in_shape, 16, &b.err);
    assert_non_null(b.net);
    agon_rng rng;
    agon_rng_seed(&rng, 5, "init");
    b.rc = mlp_vtable.build(node, role, out_shape, b.net, &rng, &b.err);
    return b;
}

static void release(built *b)
{
    agon_net_destroy(b->net);
    agon_config_destroy(b->cfg);
}

static agon_shape vec(int64_t n)
{
    return agon_shape_make(1, &n);
}

static void expect_layers(const agon_net *net, const char *const *types, size_t n)
{
    assert_int_equal(agon_net_layer_count(net), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(agon_net_layer_type(net, i), types[i]);
}

static const char *const cfg_text =
    "generator:\n"
    "  plugin: mlp\n"
    "  hidden: [128, 128]\n"
    "discriminator:\n"
    "  plugin: mlp\n";

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(mlp_params, &err), 0);
}

/* G: 64 -> 128 -> 128 -> 2.  Parameters:
 * 64*128 + 128 + 128*128 + 128 + 128*2 + 2 = 8192 + 128 + 16384 + 128 + 256 + 2 = 25090 */
static void test_generator(void **state)
{
    agon_shape in = vec(64), out = vec(2);
    built b = build(cfg_text, "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "relu", "linear", "relu", "linear"};
    expect_layers(b.net, types, 5);
    assert_int_equal(agon_net_param_count(b.net), 6);
    assert_int_equal(agon_net_param_numel(b.net), 25090);
    agon_shape got = agon_net_out_shape(b.net);
    assert_true(agon_shape_equal(&got, &out));
    release(&b);
}

/* D (defaults: hidden [128, 128], relu): 2 -> 128 -> 128 -> 1.  Parameters:
 * 2*128 + 128 + 128*128 + 128 + 128*1 + 1 = 256 + 128 + 16384 + 128 + 128 + 1 = 17025 */
static void test_discriminator(void **state)
{
    agon_shape in = vec(2), out = vec(1);
    built b = build(cfg_text, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "relu", "linear", "relu", "linear"};
    expect_layers(b.net, types, 5);
    assert_int_equal(agon_net_param_numel(b.net), 17025);

    float x[6] = {0.5f, -1.0f, 2.0f, 0.0f, -3.0f, 1.5f};
    int64_t dims[2] = {3, 2};
    agon_tensor t = {x, agon_shape_make(2, dims)};
    const agon_tensor *y = agon_net_forward(b.net, &t, false);
    assert_int_equal(y->shape.ndim, 2);
    assert_int_equal(y->shape.dim[0], 3);
    assert_int_equal(y->shape.dim[1], 1);
    assert_true(agon_tensor_all_finite(y));
    release(&b);
}

static void test_discriminator_output_activation_error(void **state)
{
    agon_shape in = vec(2), out = vec(1);
    built b = build("discriminator:\n"
                    "  plugin: mlp\n"
                    "  hidden: [32]\n"
                    "  output_activation: sigmoid\n",
                    "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    assert_int_equal(b.rc, AGON_ECONFIG);
    assert_string_equal(b.err.message,
                        "mlp.yaml:4:22: discriminator.output_activation: a discriminator "
                        "outputs a logit; use output_activation: none (the loss applies the "
                        "sigmoid)");
    release(&b);

    b = build("generator:\n  plugin: mlp\n  init_gain: -1\n", "generator",
              AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, AGON_ECONFIG);
    assert_string_equal(b.err.message, "mlp.yaml:3:14: generator.init_gain: must be >= 0 "
                                       "(0 picks the scheme's default), got -1");
    release(&b);

    /* The same setting is fine for a generator. */
    b = build("generator:\n  plugin: mlp\n  hidden: [32]\n  output_activation: sigmoid\n",
              "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "relu", "linear", "sigmoid"};
    expect_layers(b.net, types, 4);
    release(&b);
}

/* leaky_relu, tanh output, no bias: 64*16 + 16*8 + 8*3 = 1024 + 128 + 24 = 1176 */
static void test_options(void **state)
{
    agon_shape in = vec(64), out = vec(3);
    built b = build("generator:\n"
                    "  plugin: mlp\n"
                    "  hidden: [16, 8]\n"
                    "  activation: leaky_relu\n"
                    "  slope: 0.1\n"
                    "  output_activation: tanh\n"
                    "  init: xavier_uniform\n"
                    "  bias: false\n",
                    "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "leaky_relu", "linear", "leaky_relu", "linear",
                                 "tanh"};
    expect_layers(b.net, types, 6);
    assert_int_equal(agon_net_param_count(b.net), 3);
    assert_int_equal(agon_net_param_numel(b.net), 1176);
    /* Xavier bound for the first layer: sqrt(6 / (64 + 16)) = 0.273861 */
    const agon_param *w = agon_net_param(b.net, 0);
    double bound = sqrt(6.0 / 80.0), max_abs = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(&w->value); i++)
        max_abs = fmax(max_abs, fabs(w->value.data[i]));
    assert_true(max_abs <= bound && max_abs > 0.5 * bound);
    release(&b);

    /* hidden: [] is a linear model. */
    b = build("generator:\n  plugin: mlp\n  hidden: []\n", "generator", AGON_ROLE_GENERATOR,
              &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const linear_only[] = {"linear"};
    expect_layers(b.net, linear_only, 1);
    assert_int_equal(agon_net_param_numel(b.net), 64 * 3 + 3);
    release(&b);
}

/* 1 -> 1 -> 1 with unit weights and zero biases is leaky_relu(x) itself:
 * at x = -2 the output is -2 * slope, so the configured slope must reach
 * the activation layer. */
static float leaky_output(const char *slope)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml,
             "generator:\n  plugin: mlp\n  hidden: [1]\n  activation: leaky_relu\n"
             "  slope: %s\n", slope);
    agon_shape in = vec(1), out = vec(1);
    built b = build(yaml, "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "leaky_relu", "linear"};
    expect_layers(b.net, types, 3);
    const char *const names[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    assert_int_equal(agon_net_param_count(b.net), 4);
    for (size_t i = 0; i < 4; i++) {
        agon_param *p = agon_net_param(b.net, i);
        assert_string_equal(p->name, names[i]);
        assert_int_equal(agon_tensor_numel(&p->value), 1);
        p->value.data[0] = i % 2 == 0 ? 1.0f : 0.0f;
    }
    float x = -2.0f;
    int64_t dims[2] = {1, 1};
    agon_tensor t = {&x, agon_shape_make(2, dims)};
    const agon_tensor *y = agon_net_forward(b.net, &t, false);
    assert_int_equal(agon_tensor_numel(y), 1);
    float v = y->data[0];
    release(&b);
    return v;
}

static void test_leaky_relu_slope(void **state)
{
    assert_float_equal(leaky_output("0.5"), -1.0, 1e-6);
    assert_float_equal(leaky_output("0.2"), -0.4, 1e-6);
}

/* Same config and init seed: identical parameters. */
static void test_deterministic_init(void **state)
{
    agon_shape in = vec(64), out = vec(2);
    built a = build(cfg_text, "generator", AGON_ROLE_GENERATOR, &in, &out);
    built b = build(cfg_text, "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    for (size_t i = 0; i < agon_net_param_count(a.net); i++) {
        const agon_param *pa = agon_net_param(a.net, i), *pb = agon_net_param(b.net, i);
        assert_memory_equal(pa->value.data, pb->value.data,
                            (size_t)agon_tensor_numel(&pa->value) * sizeof(float));
    }
    release(&a);
    release(&b);
}

/* ---- reshape to an image shape, with gradients -------------------------------- */

typedef struct fd_ctx {
    agon_net *net;
    const float *weights;   /* the scalar is sum(weights * output) */
    int64_t batch, in_numel;
} fd_ctx;

static double weighted_output(void *ctx, float *x, size_t n)
{
    fd_ctx *c = ctx;
    agon_shape in_shape = agon_net_in_shape(c->net);
    agon_tensor t = {x, agon_shape_batched(c->batch, &in_shape)};
    const agon_tensor *y = agon_net_forward(c->net, &t, false);
    double s = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(y); i++)
        s += (double)c->weights[i] * y->data[i];
    return s;
}

static void test_image_output_and_gradient(void **state)
{
    int64_t img[3] = {1, 2, 2};
    agon_shape in = vec(3), out = agon_shape_make(3, img);
    built b = build("generator:\n  plugin: mlp\n  hidden: [5]\n  activation: tanh\n"
                    "  output_activation: tanh\n",
                    "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    const char *const types[] = {"linear", "tanh", "linear", "tanh", "reshape"};
    expect_layers(b.net, types, 5);
    agon_shape got = agon_net_out_shape(b.net);
    assert_true(agon_shape_equal(&got, &out));

    enum { BATCH = 2 };
    float x[BATCH * 3] = {0.3f, -0.7f, 1.1f, -0.2f, 0.5f, 0.9f};
    float w[BATCH * 4] = {1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 0.25f, 2.0f, -0.5f};
    fd_ctx ctx = {b.net, w, BATCH, 3};

    agon_tensor t = {x, agon_shape_batched(BATCH, &in)};
    const agon_tensor *y = agon_net_forward(b.net, &t, true);
    assert_int_equal(y->shape.ndim, 4);
    assert_int_equal(y->shape.dim[0], BATCH);
    assert_int_equal(y->shape.dim[1], 1);
    assert_int_equal(y->shape.dim[2], 2);
    assert_int_equal(y->shape.dim[3], 2);
    agon_tensor dout = {w, y->shape};
    agon_net_zero_grad(b.net);
    const agon_tensor *din = agon_net_backward(b.net, &dout, true, true);
    assert_non_null(din);
    float g[BATCH * 3];
    memcpy(g, din->data, sizeof g);
    agon_test_check_grad(weighted_output, &ctx, x, BATCH * 3, g, 1e-2, 1e-3, 1e-2);
    release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_generator),
        cmocka_unit_test(test_discriminator),
        cmocka_unit_test(test_discriminator_output_activation_error),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_leaky_relu_slope),
        cmocka_unit_test(test_deterministic_init),
        cmocka_unit_test(test_image_output_and_gradient),
    };
    return cmocka_run_group_tests_name("mlp", tests, NULL, NULL);
}
