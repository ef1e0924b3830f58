/* The dcgan model plugin, loaded from the built dcgan.so: the exact layers,
 * parameter shapes and counts of the 28x28 benchmark workload (W2) and of
 * 32x32 colour images, the automatic depth, the initialisation statistics,
 * forward and backward passes in training and evaluation mode, the options,
 * and the configuration errors word for word. */
#include "test_util.h"

#include <dlfcn.h>
#include <math.h>

#include "agon/plugin.h"

static void *plugin_handle;
static const agon_model_vtable *dcgan;
static const agon_param_spec *dcgan_schema;

static int setup(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dcgan.so", AGON_TEST_PLUGIN_DIR);
    plugin_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!plugin_handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    typedef const agon_plugin_descriptor *(*entry_fn)(void);
    entry_fn entry;
    void *sym = dlsym(plugin_handle, AGON_PLUGIN_ENTRY_NAME);
    if (!sym)
        return -1;
    memcpy(&entry, &sym, sizeof entry);
    const agon_plugin_descriptor *desc = entry();
    if (desc->abi_version != AGON_ABI_VERSION || desc->n_components != 1 ||
        desc->components[0].kind != AGON_KIND_MODEL ||
        strcmp(desc->components[0].name, "dcgan") != 0)
        return -1;
    dcgan = desc->components[0].vtable;
    dcgan_schema = desc->components[0].params;
    if (dcgan->struct_size != sizeof(agon_model_vtable))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    dlclose(plugin_handle);
    return 0;
}

typedef struct built {
    agon_config *cfg;
    agon_net *net;
    agon_error err;
    int rc;
} built;

enum { MAX_BATCH = 8 };

/* Parses `yaml`, applies the schema to `section` as the host does (unless
 * `raw`, to reach the plugin's own checks), creates a net for `in_shape`
 * and runs the plugin's build for `role`. */
static built build_ex(const char *yaml, const char *section, agon_role role,
                      const agon_shape *in_shape, const agon_shape *out_shape, bool raw,
                      uint64_t seed)
{
    static const char *const host_keys[] = {"plugin", NULL};
    built b;
    memset(&b, 0, sizeof b);
    agon_diag diag;
    agon_diag_init(&diag);
    b.cfg = agon_config_parse(yaml, strlen(yaml), "dcgan.yaml", &diag);
    if (!b.cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    const agon_node *node = agon_node_get(agon_config_root(b.cfg), section);
    assert_non_null(node);
    if (!raw &&
        agon_schema_apply(b.cfg, node, dcgan_schema, host_keys, "model 'dcgan'", &diag) != 0)
        fail_msg("schema: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    b.net = agon_net_create(in_shape, MAX_BATCH, &b.err);
    assert_non_null(b.net);
    agon_rng rng;
    agon_rng_seed(&rng, seed, "init");
    b.rc = dcgan->build(node, role, out_shape, b.net, &rng, &b.err);
    return b;
}

static built build(const char *yaml, const char *section, agon_role role,
                   const agon_shape *in_shape, const agon_shape *out_shape)
{
    return build_ex(yaml, section, role, in_shape, out_shape, false, 5);
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

static agon_shape img(int64_t c, int64_t h, int64_t w)
{
    return agon_shape_make(3, (int64_t[]){c, h, w});
}

static void expect_layers(const agon_net *net, const char *const *types, size_t n)
{
    size_t got = agon_net_layer_count(net);
    for (size_t i = 0; i < n && i < got; i++) {
        if (strcmp(agon_net_layer_type(net, i), types[i]) != 0)
            fail_msg("layer %zu is '%s', expected '%s'", i, agon_net_layer_type(net, i),
                     types[i]);
    }
    assert_int_equal(got, n);
}

/* `spec` lists "name dim dim ..." per parameter, in order. */
static void expect_params(agon_net *net, const char *const *spec, size_t n)
{
    assert_int_equal(agon_net_param_count(net), n);
    for (size_t i = 0; i < n; i++) {
        const agon_param *p = agon_net_param(net, i);
        char got[128], dims[96];
        snprintf(got, sizeof got, "%s %s", p->name,
                 agon_shape_format(&p->value.shape, dims, sizeof dims));
        assert_string_equal(got, spec[i]);
    }
}

static void expect_out_shape(const agon_net *net, const agon_shape *want)
{
    agon_shape got = agon_net_out_shape(net);
    char g[64], w[64];
    if (!agon_shape_equal(&got, want))
        fail_msg("output shape %s, expected %s", agon_shape_format(&got, g, sizeof g),
                 agon_shape_format(want, w, sizeof w));
}

static const char *const defaults_yaml =
    "generator:\n"
    "  plugin: dcgan\n"
    "discriminator:\n"
    "  plugin: dcgan\n";

static void test_schema_is_valid(void **state)
{
    agon_error err = {0};
    assert_int_equal(agon_schema_check(dcgan_schema, &err), 0);
}

/* ---- W2: 28x28 greyscale, every default ----------------------------------------
 * PyTorch's count of the same generator (latent 100), bias=False before BN:
 *   Linear(100, 128*7*7, bias=False)        100*6272              = 627200
 *   BatchNorm1d(6272)                       2*6272                =  12544
 *   ConvTranspose2d(128, 64, 4, 2, 1, bias=False)  128*64*4*4     = 131072
 *   BatchNorm2d(64)                         2*64                  =    128
 *   ConvTranspose2d(64, 1, 4, 2, 1)         64*1*4*4 + 1          =   1025
 *   total                                                           771969 */
static void test_w2_generator(void **state)
{
    agon_shape in = vec(100), out = img(1, 28, 28);
    built b = build(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const types[] = {"linear",           "batchnorm", "relu",
                                 "reshape",          "conv_transpose2d", "batchnorm",
                                 "relu",             "conv_transpose2d", "tanh"};
    expect_layers(b.net, types, 9);
    const char *const params[] = {
        "0.weight [6272, 100]", "1.weight [6272]", "1.bias [6272]",
        "4.weight [128, 64, 4, 4]", "5.weight [64]", "5.bias [64]",
        "7.weight [64, 1, 4, 4]", "7.bias [1]",
    };
    expect_params(b.net, params, 8);
    assert_int_equal(agon_net_param_numel(b.net), 771969);
    expect_out_shape(b.net, &out);

    /* Running statistics of both batch norms are buffers. */
    assert_int_equal(agon_net_buffer_count(b.net), 4);
    assert_string_equal(agon_net_buffer(b.net, 0)->name, "1.running_mean");
    assert_string_equal(agon_net_buffer(b.net, 3)->name, "5.running_var");
    release(&b);
}

/* PyTorch's count of the same discriminator:
 *   Conv2d(1, 64, 4, 2, 1)                  64*1*4*4 + 64         =   1088
 *   Conv2d(64, 128, 4, 2, 1, bias=False)    128*64*4*4            = 131072
 *   BatchNorm2d(128)                        2*128                 =    256
 *   Linear(128*7*7, 1)                      6272 + 1              =   6273
 *   total                                                           138689 */
static void test_w2_discriminator(void **state)
{
    agon_shape in = img(1, 28, 28), out = vec(1);
    built b = build(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const types[] = {"conv2d",     "leaky_relu", "conv2d", "batchnorm",
                                 "leaky_relu", "flatten",    "linear"};
    expect_layers(b.net, types, 7);
    const char *const params[] = {
        "0.weight [64, 1, 4, 4]", "0.bias [64]", "2.weight [128, 64, 4, 4]",
        "3.weight [128]", "3.bias [128]", "6.weight [1, 6272]", "6.bias [1]",
    };
    expect_params(b.net, params, 7);
    assert_int_equal(agon_net_param_numel(b.net), 138689);
    expect_out_shape(b.net, &out);
    release(&b);
}

/* ---- 32x32 colour: depth 3, seed 4x4 ---------------------------------------------
 * G (latent 100): 100*256*16 + 2*4096 + 256*128*16 + 2*128 + 128*64*16 + 2*64
 *                 + 64*3*16 + 3
 *   = 409600 + 8192 + 524288 + 256 + 131072 + 128 + 3075 = 1076611
 * D (13 channels: 3 image + 10 label planes): 13*64*16 + 64 + 64*128*16 + 2*128
 *                 + 128*256*16 + 2*256 + 256*16 + 1
 *   = 13376 + 131072 + 256 + 524288 + 512 + 4097 = 673601 */
static void test_rgb_32(void **state)
{
    agon_shape in = vec(100), out = img(3, 32, 32);
    built b = build(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const g_types[] = {
        "linear", "batchnorm", "relu", "reshape",
        "conv_transpose2d", "batchnorm", "relu",
        "conv_transpose2d", "batchnorm", "relu",
        "conv_transpose2d", "tanh"};
    expect_layers(b.net, g_types, 12);
    const char *const g_params[] = {
        "0.weight [4096, 100]", "1.weight [4096]", "1.bias [4096]",
        "4.weight [256, 128, 4, 4]", "5.weight [128]", "5.bias [128]",
        "7.weight [128, 64, 4, 4]", "8.weight [64]", "8.bias [64]",
        "10.weight [64, 3, 4, 4]", "10.bias [3]",
    };
    expect_params(b.net, g_params, 11);
    assert_int_equal(agon_net_param_numel(b.net), 1076611);
    expect_out_shape(b.net, &out);
    release(&b);

    agon_shape d_in = img(13, 32, 32), d_out = vec(1);
    b = build(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &d_in, &d_out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const d_types[] = {
        "conv2d", "leaky_relu",
        "conv2d", "batchnorm", "leaky_relu",
        "conv2d", "batchnorm", "leaky_relu",
        "flatten", "linear"};
    expect_layers(b.net, d_types, 10);
    const char *const d_params[] = {
        "0.weight [64, 13, 4, 4]", "0.bias [64]",
        "2.weight [128, 64, 4, 4]", "3.weight [128]", "3.bias [128]",
        "5.weight [256, 128, 4, 4]", "6.weight [256]", "6.bias [256]",
        "9.weight [1, 4096]", "9.bias [1]",
    };
    expect_params(b.net, d_params, 10);
    assert_int_equal(agon_net_param_numel(b.net), 673601);
    release(&b);
}

/* The automatic depth: the largest d <= 4 dividing H and W with at least
 * 3 pixels left.  The seed size shows in G's first linear layer (out =
 * channels * seed area) and D's last (in = the same). */
static void expect_auto_depth(int64_t h, int64_t w, int64_t seed_features, size_t g_layers)
{
    agon_shape in = vec(8), out = img(1, h, w);
    built b = build("generator:\n  plugin: dcgan\n  base_width: 4\n", "generator",
                    AGON_ROLE_GENERATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build %lldx%lld: %s", (long long)h, (long long)w, b.err.message);
    assert_int_equal(agon_net_param(b.net, 0)->value.shape.dim[0], seed_features);
    assert_int_equal(agon_net_layer_count(b.net), g_layers);
    expect_out_shape(b.net, &out);
    release(&b);

    agon_shape d_in = img(1, h, w), d_out = vec(1);
    b = build("discriminator:\n  plugin: dcgan\n  base_width: 4\n", "discriminator",
              AGON_ROLE_DISCRIMINATOR, &d_in, &d_out);
    if (b.rc != 0)
        fail_msg("build D %lldx%lld: %s", (long long)h, (long long)w, b.err.message);
    size_t n = agon_net_param_count(b.net);
    assert_int_equal(agon_net_param(b.net, n - 2)->value.shape.dim[1], seed_features);
    release(&b);
}

static void test_auto_depth(void **state)
{
    /* 28: 7x7 at depth 2 (3.5 at 3); 8 channels = 4*2^(2-1).  G has
     * 6 + 3*(d-1) layers. */
    expect_auto_depth(28, 28, 8 * 7 * 7, 9);
    /* 32: 4x4 at depth 3 (2 at depth 4 is below 3); 16 channels. */
    expect_auto_depth(32, 32, 16 * 4 * 4, 12);
    /* 64: capped at depth 4, seed 4x4, 32 channels. */
    expect_auto_depth(64, 64, 32 * 4 * 4, 15);
    /* 256: still 4, seed 16x16. */
    expect_auto_depth(256, 256, 32 * 16 * 16, 15);
    /* Non-square 16x24: depth 2 (seed 4x6); depth 3 would leave 2x3. */
    expect_auto_depth(16, 24, 8 * 4 * 6, 9);
    /* 6x6: depth 1, seed 3x3. */
    expect_auto_depth(6, 6, 4 * 3 * 3, 6);
}

/* ---- initialisation ------------------------------------------------------------- */

static void moments(const agon_param *p, double *mean, double *std)
{
    int64_t n = agon_tensor_numel(&p->value);
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        s += p->value.data[i];
        ss += (double)p->value.data[i] * p->value.data[i];
    }
    *mean = s / (double)n;
    *std = sqrt(ss / (double)n - *mean * *mean);
}

/* Weights N(0, 0.02); batch-norm scales N(1, 0.02) as DCGAN's reference
 * code draws them; biases and batch-norm shifts 0.  Standard errors of
 * the std estimate are below 1% for every tensor checked with 5%. */
static void test_init_statistics(void **state)
{
    agon_shape in = vec(100), out = img(1, 28, 28);
    built b = build(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const size_t weights[] = {0, 3, 6};     /* linear, convT, convT */
    for (size_t i = 0; i < 3; i++) {
        double mean, std;
        agon_param *p = agon_net_param(b.net, weights[i]);
        moments(p, &mean, &std);
        if (fabs(std - 0.02) > 0.05 * 0.02 + (i == 2 ? 0.002 : 0.0) ||
            fabs(mean) > 0.003)
            fail_msg("%s: mean %g, std %g; expected N(0, 0.02)", p->name, mean, std);
    }
    double mean, std;
    moments(agon_net_param(b.net, 1), &mean, &std);   /* BN1d gamma, 6272 values */
    assert_true(fabs(mean - 1.0) < 0.002 && fabs(std - 0.02) < 0.002);
    moments(agon_net_param(b.net, 2), &mean, &std);   /* BN1d beta */
    assert_true(mean == 0.0 && std == 0.0);
    moments(agon_net_param(b.net, 7), &mean, &std);   /* output bias */
    assert_true(mean == 0.0 && std == 0.0);
    release(&b);

    /* init_gain sets the std. */
    b = build("generator:\n  plugin: dcgan\n  init_gain: 0.05\n", "generator",
              AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    moments(agon_net_param(b.net, 0), &mean, &std);
    assert_true(fabs(std - 0.05) < 0.0025);
    moments(agon_net_param(b.net, 1), &mean, &std);
    assert_true(fabs(mean - 1.0) < 0.005 && fabs(std - 0.05) < 0.005);
    release(&b);

    /* init: default is PyTorch's default: the linear's weights are
     * U(-1/sqrt(100), 1/sqrt(100)) = U(-0.1, 0.1), std 0.1/sqrt(3); the
     * batch-norm scale stays 1. */
    b = build("generator:\n  plugin: dcgan\n  init: default\n", "generator",
              AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    moments(agon_net_param(b.net, 0), &mean, &std);
    assert_true(fabs(std - 0.1 / sqrt(3.0)) < 0.002);
    moments(agon_net_param(b.net, 1), &mean, &std);
    assert_true(mean == 1.0 && std == 0.0);
    release(&b);
}

/* Same config and init seed: identical parameters; another seed differs. */
static void test_deterministic_init(void **state)
{
    agon_shape in = img(1, 28, 28), out = vec(1);
    built a = build_ex(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out,
                       false, 5);
    built b = build_ex(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out,
                       false, 5);
    built c = build_ex(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out,
                       false, 6);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(c.rc, 0);
    for (size_t i = 0; i < agon_net_param_count(a.net); i++) {
        const agon_param *pa = agon_net_param(a.net, i), *pb = agon_net_param(b.net, i);
        assert_memory_equal(pa->value.data, pb->value.data,
                            (size_t)agon_tensor_numel(&pa->value) * sizeof(float));
    }
    const agon_param *pa = agon_net_param(a.net, 0), *pc = agon_net_param(c.net, 0);
    assert_memory_not_equal(pa->value.data, pc->value.data,
                            (size_t)agon_tensor_numel(&pa->value) * sizeof(float));
    release(&a);
    release(&b);
    release(&c);
}

/* ---- forward and backward ------------------------------------------------------- */

enum { BATCH = 4 };

static void fill_normal(float *x, size_t n, uint64_t seed)
{
    agon_rng rng;
    agon_rng_seed(&rng, seed, "test");
    agon_rng_fill_normal(&rng, x, n, 0.0f, 1.0f);
}

/* G's output: [4, 1, 28, 28], in (-1, 1), and not constant across samples. */
static void check_images(const agon_tensor *y)
{
    assert_int_equal(y->shape.ndim, 4);
    assert_int_equal(y->shape.dim[0], BATCH);
    assert_int_equal(y->shape.dim[1], 1);
    assert_int_equal(y->shape.dim[2], 28);
    assert_int_equal(y->shape.dim[3], 28);
    int64_t n = agon_tensor_numel(y), per = n / BATCH;
    double diff = 0.0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(y->data[i] > -1.0f && y->data[i] < 1.0f);
        if (i >= per)
            diff += fabs(y->data[i] - y->data[i - per]);
    }
    assert_true(diff > 0.0);
}

static void test_generator_forward_backward(void **state)
{
    agon_shape in = vec(100), out = img(1, 28, 28);
    built b = build(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    static float z[BATCH * 100], dy[BATCH * 28 * 28];
    fill_normal(z, BATCH * 100, 1);
    fill_normal(dy, BATCH * 28 * 28, 2);
    agon_tensor zt = {z, agon_shape_batched(BATCH, &in)};

    for (int mode = 0; mode < 2; mode++) {
        bool training = mode == 0;
        const agon_tensor *y = agon_net_forward(b.net, &zt, training);
        check_images(y);
        agon_tensor dout = {dy, y->shape};
        agon_net_zero_grad(b.net);
        const agon_tensor *dz = agon_net_backward(b.net, &dout, true, true);
        assert_non_null(dz);
        assert_int_equal(dz->shape.ndim, 2);
        assert_int_equal(dz->shape.dim[0], BATCH);
        assert_int_equal(dz->shape.dim[1], 100);
        assert_true(agon_tensor_all_finite(dz));
        double g = agon_net_grad_norm(b.net);
        assert_true(isfinite(g) && g > 0.0);
        /* Every parameter tensor receives a gradient. */
        for (size_t i = 0; i < agon_net_param_count(b.net); i++)
            assert_true(agon_tensor_sumsq(&agon_net_param(b.net, i)->grad) > 0.0);
    }

    /* Training mode moved the running mean of the first batch norm. */
    const agon_buffer *rm = agon_net_buffer(b.net, 0);
    assert_true(agon_tensor_sumsq(&rm->value) > 0.0);
    release(&b);
}

static void test_discriminator_forward_backward(void **state)
{
    agon_shape in = img(1, 28, 28), out = vec(1);
    built b = build(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    assert_int_equal(b.rc, 0);
    static float x[BATCH * 28 * 28];
    fill_normal(x, BATCH * 28 * 28, 3);
    float dl[BATCH] = {0.25f, -0.5f, 1.0f, -0.125f};
    agon_tensor xt = {x, agon_shape_batched(BATCH, &in)};

    for (int mode = 0; mode < 2; mode++) {
        bool training = mode == 0;
        const agon_tensor *y = agon_net_forward(b.net, &xt, training);
        assert_int_equal(y->shape.ndim, 2);
        assert_int_equal(y->shape.dim[0], BATCH);
        assert_int_equal(y->shape.dim[1], 1);
        assert_true(agon_tensor_all_finite(y));
        agon_tensor dout = {dl, y->shape};
        agon_net_zero_grad(b.net);
        const agon_tensor *dx = agon_net_backward(b.net, &dout, true, true);
        assert_non_null(dx);
        assert_int_equal(dx->shape.ndim, 4);
        assert_int_equal(dx->shape.dim[0], BATCH);
        assert_int_equal(dx->shape.dim[3], 28);
        assert_true(agon_tensor_all_finite(dx));
        assert_true(agon_tensor_sumsq(dx) > 0.0);
        for (size_t i = 0; i < agon_net_param_count(b.net); i++)
            assert_true(agon_tensor_sumsq(&agon_net_param(b.net, i)->grad) > 0.0);
    }
    release(&b);
}

/* Finite differences through a small composed network check the wiring
 * (reshape, flatten, channel counts) end to end, in both modes.  G's
 * ReLUs are kinks a step can cross, so its step is small; D is built with
 * slope 1 (no kinks), where a larger step keeps float noise down. */
typedef struct fd_ctx {
    agon_net *net;
    const float *weights;   /* the scalar is sum(weights * output) */
    int64_t batch;
    bool training;
} fd_ctx;

static double weighted_output(void *ctx, float *x, size_t n)
{
    fd_ctx *c = ctx;
    agon_shape in_shape = agon_net_in_shape(c->net);
    agon_tensor t = {x, agon_shape_batched(c->batch, &in_shape)};
    const agon_tensor *y = agon_net_forward(c->net, &t, c->training);
    double s = 0.0;
    for (int64_t i = 0; i < agon_tensor_numel(y); i++)
        s += (double)c->weights[i] * y->data[i];
    return s;
}

static void check_input_gradient(agon_net *net, float *x, size_t nx, const float *w,
                                 bool training, double eps)
{
    fd_ctx ctx = {net, w, BATCH, training};
    agon_shape in_shape = agon_net_in_shape(net);
    agon_tensor t = {x, agon_shape_batched(BATCH, &in_shape)};
    const agon_tensor *y = agon_net_forward(net, &t, training);
    agon_tensor dout = {(float *)w, y->shape};
    const agon_tensor *din = agon_net_backward(net, &dout, false, true);
    assert_non_null(din);
    float *g = malloc(nx * sizeof *g);
    assert_non_null(g);
    memcpy(g, din->data, nx * sizeof *g);
    agon_test_check_grad(weighted_output, &ctx, x, nx, g, eps, 2e-3, 2e-2);
    free(g);
}

static void test_small_gradients(void **state)
{
    /* 8x8 images, two channels, depth 2, base width 3: G 6 -> [6,2,2] -> [3,4,4] -> [2,8,8]. */
    const char *yaml = "generator:\n  plugin: dcgan\n  base_width: 3\n  depth: 2\n"
                       "  init_gain: 0.3\n"
                       "discriminator:\n  plugin: dcgan\n  base_width: 3\n  depth: 2\n"
                       "  init_gain: 0.3\n  slope: 1\n";
    agon_shape z = vec(5), im = img(2, 8, 8), logit = vec(1);
    enum { NZ = BATCH * 5, NX = BATCH * 2 * 8 * 8 };
    float zx[NZ], x[NX], gw[NX], dw[BATCH] = {1.0f, -0.5f, 0.75f, 2.0f};
    fill_normal(zx, NZ, 11);
    fill_normal(x, NX, 12);
    fill_normal(gw, NX, 13);

    built g = build(yaml, "generator", AGON_ROLE_GENERATOR, &z, &im);
    if (g.rc != 0)
        fail_msg("build: %s", g.err.message);
    expect_out_shape(g.net, &im);
    check_input_gradient(g.net, zx, NZ, gw, false, 1e-3);
    check_input_gradient(g.net, zx, NZ, gw, true, 1e-3);
    release(&g);

    built d = build(yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &im, &logit);
    if (d.rc != 0)
        fail_msg("build: %s", d.err.message);
    check_input_gradient(d.net, x, NX, dw, false, 1e-2);
    check_input_gradient(d.net, x, NX, dw, true, 1e-2);
    release(&d);
}

/* ---- options -------------------------------------------------------------------- */

/* Without batch norm every layer has a bias: G 8 -> [8,2,2] -> [4,4,4] -> [1,8,8]
 *   8*32 + 32 + 8*4*16 + 4 + 4*1*16 + 1 = 256 + 32 + 512 + 4 + 64 + 1 = 869 */
static void test_without_batchnorm(void **state)
{
    agon_shape in = vec(8), out = img(1, 8, 8);
    built b = build("generator:\n  plugin: dcgan\n  base_width: 4\n  depth: 2\n"
                    "  batchnorm: false\n",
                    "generator", AGON_ROLE_GENERATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const types[] = {"linear", "relu", "reshape", "conv_transpose2d", "relu",
                                 "conv_transpose2d", "tanh"};
    expect_layers(b.net, types, 7);
    const char *const params[] = {"0.weight [32, 8]", "0.bias [32]",
                                  "3.weight [8, 4, 4, 4]", "3.bias [4]",
                                  "5.weight [4, 1, 4, 4]", "5.bias [1]"};
    expect_params(b.net, params, 6);
    assert_int_equal(agon_net_param_numel(b.net), 869);
    assert_int_equal(agon_net_buffer_count(b.net), 0);
    release(&b);
}

/* bias: true adds biases before batch norm; dropout follows each leaky_relu. */
static void test_bias_and_dropout(void **state)
{
    agon_shape in = img(1, 8, 8), out = vec(1);
    built b = build("discriminator:\n  plugin: dcgan\n  base_width: 4\n  depth: 2\n"
                    "  bias: true\n  dropout: 0.3\n",
                    "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const types[] = {"conv2d", "leaky_relu", "dropout", "conv2d", "batchnorm",
                                 "leaky_relu", "dropout", "flatten", "linear"};
    expect_layers(b.net, types, 9);
    const char *const params[] = {"0.weight [4, 1, 4, 4]", "0.bias [4]",
                                  "3.weight [8, 4, 4, 4]", "3.bias [8]",
                                  "4.weight [8]", "4.bias [8]",
                                  "8.weight [1, 32]", "8.bias [1]"};
    expect_params(b.net, params, 8);

    /* Dropout acts in training mode only: two evaluation passes agree, two
     * training passes (same input, so the same batch statistics) draw
     * different masks. */
    static float x[BATCH * 64], y1[BATCH], y2[BATCH];
    fill_normal(x, BATCH * 64, 4);
    agon_tensor t = {x, agon_shape_batched(BATCH, &in)};
    memcpy(y1, agon_net_forward(b.net, &t, false)->data, sizeof y1);
    memcpy(y2, agon_net_forward(b.net, &t, false)->data, sizeof y2);
    assert_memory_equal(y1, y2, sizeof y1);
    memcpy(y1, agon_net_forward(b.net, &t, true)->data, sizeof y1);
    memcpy(y2, agon_net_forward(b.net, &t, true)->data, sizeof y2);
    assert_memory_not_equal(y1, y2, sizeof y1);
    release(&b);
}

/* A 1-channel 2x2 image through conv(k2, s2) -> leaky_relu -> linear with
 * unit weights and zero biases: an all -1 input gives the conv output -4
 * and the logit -4 * slope, so the configured slope must reach D. */
static void test_slope(void **state)
{
    agon_shape in = img(1, 2, 2), out = vec(1);
    built b = build("discriminator:\n  plugin: dcgan\n  base_width: 1\n  depth: 1\n"
                    "  kernel: 2\n  batchnorm: false\n  slope: 0.5\n",
                    "discriminator", AGON_ROLE_DISCRIMINATOR, &in, &out);
    if (b.rc != 0)
        fail_msg("build: %s", b.err.message);
    const char *const types[] = {"conv2d", "leaky_relu", "flatten", "linear"};
    expect_layers(b.net, types, 4);
    const char *const params[] = {"0.weight [1, 1, 2, 2]", "0.bias [1]", "3.weight [1, 1]",
                                  "3.bias [1]"};
    expect_params(b.net, params, 4);
    for (size_t i = 0; i < 4; i++) {
        agon_param *p = agon_net_param(b.net, i);
        for (int64_t j = 0; j < agon_tensor_numel(&p->value); j++)
            p->value.data[j] = i % 2 == 0 ? 1.0f : 0.0f;
    }
    float x[4] = {-1.0f, -1.0f, -1.0f, -1.0f};
    agon_tensor t = {x, agon_shape_batched(1, &in)};
    const agon_tensor *y = agon_net_forward(b.net, &t, false);
    assert_int_equal(agon_tensor_numel(y), 1);
    assert_float_equal(y->data[0], -2.0, 1e-6);
    release(&b);
}

/* Odd and larger kernels still double and halve exactly. */
static void test_kernels(void **state)
{
    const char *const kernels[] = {"3", "5", "2", "6"};
    for (size_t i = 0; i < 4; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "generator:\n  plugin: dcgan\n  base_width: 4\n  kernel: %s\n"
                 "discriminator:\n  plugin: dcgan\n  base_width: 4\n  kernel: %s\n",
                 kernels[i], kernels[i]);
        agon_shape z = vec(8), im = img(3, 16, 12), logit = vec(1);
        built g = build(yaml, "generator", AGON_ROLE_GENERATOR, &z, &im);
        if (g.rc != 0)
            fail_msg("kernel %s: %s", kernels[i], g.err.message);
        expect_out_shape(g.net, &im);
        int64_t k = atoi(kernels[i]);
        assert_int_equal(agon_net_param(g.net, 3)->value.shape.dim[3], k);
        release(&g);
        /* 16x12, depth 2: D's last linear sees 8 channels of 4x3. */
        built d = build(yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &im, &logit);
        if (d.rc != 0)
            fail_msg("kernel %s: %s", kernels[i], d.err.message);
        size_t n = agon_net_param_count(d.net);
        assert_int_equal(agon_net_param(d.net, n - 2)->value.shape.dim[1], 8 * 4 * 3);
        release(&d);
    }
}

/* ---- errors --------------------------------------------------------------------- */

static void expect_error(const char *yaml, const char *section, agon_role role,
                         const agon_shape *in, const agon_shape *out, bool raw,
                         const char *message)
{
    built b = build_ex(yaml, section, role, in, out, raw, 5);
    assert_int_equal(b.rc, AGON_ECONFIG);
    assert_string_equal(b.err.message, message);
    release(&b);
}

static void test_errors(void **state)
{
    agon_shape z = vec(100), mnist = img(1, 28, 28), logit = vec(1);

    /* A depth that does not divide the image names the depths that do. */
    expect_error("generator:\n  plugin: dcgan\n  depth: 3\n", "generator",
                 AGON_ROLE_GENERATOR, &z, &mnist, false,
                 "dcgan.yaml:3:10: generator.depth: depth 3 needs the image height and width "
                 "divisible by 2^3 = 8, but the image is 28x28; depths that fit: 1, 2");

    /* An image with an odd side fits no depth. */
    agon_shape odd = img(1, 28, 27);
    expect_error("discriminator:\n  plugin: dcgan\n", "discriminator",
                 AGON_ROLE_DISCRIMINATOR, &odd, &logit, false,
                 "dcgan.yaml:2:3: discriminator: dcgan halves the image size depth times, but "
                 "the 28x27 image has an odd side; resize it so that height and width are "
                 "divisible by 2^depth");
    expect_error("discriminator:\n  plugin: dcgan\n  depth: 1\n", "discriminator",
                 AGON_ROLE_DISCRIMINATOR, &odd, &logit, false,
                 "dcgan.yaml:3:10: discriminator.depth: depth 1 needs the image height and "
                 "width divisible by 2^1 = 2, but the image is 28x27, with an odd side; resize "
                 "it to even sides");

    /* 4x4 is divisible, but no automatic depth leaves a 3x3 seed. */
    agon_shape tiny = img(1, 4, 4);
    expect_error("generator:\n  plugin: dcgan\n", "generator", AGON_ROLE_GENERATOR, &z,
                 &tiny, false,
                 "dcgan.yaml:2:3: generator: no depth up to 4 leaves a seed of at least 3x3 "
                 "from the 4x4 image; set depth to one of: 1, 2");

    /* Depth out of range, through the schema (the host) and the plugin. */
    {
        const char *yaml = "generator:\n  plugin: dcgan\n  depth: 9\n";
        agon_diag diag;
        agon_diag_init(&diag);
        agon_config *cfg = agon_config_parse(yaml, strlen(yaml), "dcgan.yaml", &diag);
        assert_non_null(cfg);
        const agon_node *node = agon_node_get(agon_config_root(cfg), "generator");
        static const char *const host_keys[] = {"plugin", NULL};
        assert_int_equal(agon_schema_apply(cfg, node, dcgan_schema, host_keys,
                                           "model 'dcgan'", &diag),
                         AGON_ECONFIG);
        assert_int_equal(diag.count, 1);
        assert_non_null(strstr(diag.messages[0], "dcgan.yaml:3:10: generator.depth:"));
        agon_diag_fini(&diag);
        agon_config_destroy(cfg);
    }
    expect_error("generator:\n  plugin: dcgan\n  depth: 9\n", "generator",
                 AGON_ROLE_GENERATOR, &z, &mnist, true,
                 "dcgan.yaml:3:10: generator.depth: depth must be 1 to 8, or 0 to pick it "
                 "from the image size; got 9");

    /* Too wide: 4096 channels are allowed (shown on a 2x2 image to keep
     * the network small); 64x64 picks depth 4, where 1024 doubles to 8192. */
    agon_shape small = img(3, 2, 2), big = img(3, 64, 64);
    built ok = build("generator:\n  plugin: dcgan\n  base_width: 4096\n  depth: 1\n",
                     "generator", AGON_ROLE_GENERATOR, &z, &small);
    if (ok.rc != 0)
        fail_msg("build: %s", ok.err.message);
    release(&ok);
    expect_error("generator:\n  plugin: dcgan\n  base_width: 1024\n", "generator",
                 AGON_ROLE_GENERATOR, &z, &big, false,
                 "dcgan.yaml:3:15: generator.base_width: base_width 1024 doubles to 8192 "
                 "channels at depth 4; the widest layer may have at most 4096; lower "
                 "base_width or depth");

    /* Roles and shapes. */
    agon_shape two = vec(2);
    expect_error(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &mnist, &two, false,
                 "dcgan.yaml:4:3: discriminator: a dcgan discriminator outputs one logit per "
                 "sample (output shape [1]), got [2]");
    expect_error(defaults_yaml, "discriminator", AGON_ROLE_DISCRIMINATOR, &z, &logit, false,
                 "dcgan.yaml:4:3: discriminator: the dcgan discriminator takes images "
                 "[C, H, W], got input shape [100]; use mlp for flat data");
    expect_error(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &mnist, &mnist, false,
                 "dcgan.yaml:2:3: generator: the dcgan generator takes a flat latent vector, "
                 "got input shape [1, 28, 28]");
    expect_error(defaults_yaml, "generator", AGON_ROLE_GENERATOR, &z, &two, false,
                 "dcgan.yaml:2:3: generator: dcgan makes images: the generator's output must "
                 "be [C, H, W], got [2]; use mlp for flat data");
    expect_error("generator:\n  plugin: dcgan\n  dropout: 0.5\n", "generator",
                 AGON_ROLE_GENERATOR, &z, &mnist, false,
                 "dcgan.yaml:3:12: generator.dropout: dropout applies to the discriminator "
                 "only; remove it from the generator's section");
    expect_error("discriminator:\n  plugin: dcgan\n  dropout: 1\n", "discriminator",
                 AGON_ROLE_DISCRIMINATOR, &mnist, &logit, false,
                 "dcgan.yaml:3:12: discriminator.dropout: dropout is a drop probability in "
                 "[0, 1), got 1");
    expect_error("discriminator:\n  plugin: dcgan\n  bn_eps: 0\n", "discriminator",
                 AGON_ROLE_DISCRIMINATOR, &mnist, &logit, false,
                 "dcgan.yaml:3:11: discriminator.bn_eps: bn_eps must be > 0 and <= 1, got 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_is_valid),
        cmocka_unit_test(test_w2_generator),
        cmocka_unit_test(test_w2_discriminator),
        cmocka_unit_test(test_rgb_32),
        cmocka_unit_test(test_auto_depth),
        cmocka_unit_test(test_init_statistics),
        cmocka_unit_test(test_deterministic_init),
        cmocka_unit_test(test_generator_forward_backward),
        cmocka_unit_test(test_discriminator_forward_backward),
        cmocka_unit_test(test_small_gradients),
        cmocka_unit_test(test_without_batchnorm),
        cmocka_unit_test(test_bias_and_dropout),
        cmocka_unit_test(test_slope),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("dcgan", tests, setup, teardown);
}
