/* Sizing before allocating: a planned network holds nothing and counts,
 * byte for byte, what the same network built holds; sizes past 64 bits are
 * refused, not wrapped; an experiment's estimate equals what its networks'
 * arenas hold when built and what its buffers take by their shapes.  (The
 * refusal itself, under a memory limit, is in tests/e2e_cli.sh.) */
#include <string.h>

#include "agon/agon.h"
#include "test_h5.h"

/* ---- a network of every core layer, and what a model plugin does -------- */

static agon_rng init_rng(void)
{
    agon_rng rng;
    agon_rng_seed(&rng, 1, "init");
    return rng;
}

static void noop_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    (void)state, (void)params, (void)in, (void)out, (void)training;
}

static void noop_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    (void)state, (void)params, (void)in, (void)out, (void)dout, (void)din, (void)param_grads;
}

static const agon_layer_ops model_own_ops = {
    sizeof(agon_layer_ops), "model_own", noop_forward, noop_backward, NULL,
};

/* Builds [3, 8, 8] images -> one logit through every core layer kind, plus
 * what a model plugin may do while it builds: a layer of its own whose
 * parameter it initialises, memory from the network's arena, a buffer it
 * writes, and a core layer's weight it initialises itself (as dcgan does
 * with batch norm's scale). */
static void build_every_layer(agon_net *net)
{
    agon_error err = {0};
    agon_rng rng = init_rng();
    agon_conv_spec down = {.out_channels = 6, .kernel_h = 4, .kernel_w = 4, .stride_h = 2,
                           .stride_w = 2, .pad_h = 1, .pad_w = 1, .bias = true};
    agon_conv_spec up = down;
    up.out_channels = 3;
    assert_int_equal(agon_net_add_conv2d(net, &down, AGON_INIT_NORMAL, 0, &rng, &err), 0);
    assert_int_equal(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), 0);
    assert_int_equal(agon_net_add_activation(net, AGON_ACT_LEAKY_RELU, 0.2f, &err), 0);
    assert_int_equal(agon_net_add_dropout(net, 0.25f, &rng, &err), 0);
    assert_int_equal(agon_net_add_conv_transpose2d(net, &up, AGON_INIT_DEFAULT_UNIFORM, 0,
                                                   &rng, &err),
                     0);
    assert_int_equal(agon_net_add_flatten(net, &err), 0);
    assert_int_equal(agon_net_add_linear(net, 32, true, AGON_INIT_KAIMING_UNIFORM, 0, &rng, &err),
                     0);
    assert_int_equal(agon_net_add_batchnorm(net, 0.1f, 1e-5f, true, &err), 0);
    assert_int_equal(agon_net_add_activation(net, AGON_ACT_TANH, 0, &err), 0);

    const char *const names[] = {"scale"};
    agon_shape shape = agon_net_out_shape(net);
    agon_param *own = NULL;
    assert_int_equal(agon_net_add_layer(net, &model_own_ops, NULL, &shape, 1, names, &shape,
                                        &own, &err),
                     0);
    for (int64_t i = 0; i < agon_tensor_numel(&own[0].value); i++)
        own[0].value.data[i] = 1.0f;
    agon_tensor buffer;
    assert_int_equal(agon_net_add_buffer(net, "seen", &shape, &buffer, &err), 0);
    buffer.data[0] = 1.0f;
    unsigned char *book = agon_arena_alloc(agon_net_arena(net), 1000, &err);
    assert_non_null(book);
    book[999] = 1;
    agon_param *scale = agon_net_param(net, 2);     /* the first batch norm's weight */
    assert_non_null(scale);
    scale->value.data[0] = 0.5f;

    assert_int_equal(agon_net_add_reshape(net, &(agon_shape){3, {2, 4, 4}}, &err), 0);
    assert_int_equal(agon_net_add_flatten(net, &err), 0);
    assert_int_equal(agon_net_add_linear(net, 1, true, AGON_INIT_XAVIER_UNIFORM, 0, &rng, &err),
                     0);
}

static void test_planned_network_counts_what_built_holds(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_shape image = {3, {3, 8, 8}};
    for (int64_t batch = 1; batch <= 64; batch *= 8) {
        agon_net *built = agon_net_create(&image, batch, &err);
        agon_net *planned = agon_net_create_planned(&image, batch, &err);
        assert_non_null(built);
        assert_non_null(planned);
        build_every_layer(built);
        build_every_layer(planned);
        agon_net_finish_plan(planned);
        /* Exactly: both arenas were asked for the same bytes. */
        assert_int_equal(agon_net_bytes(built), agon_arena_used(agon_net_arena(built)));
        assert_int_equal(agon_net_bytes(planned), agon_net_bytes(built));
        print_message("batch %lld: planned %zu bytes, built %zu bytes\n", (long long)batch,
                      agon_net_bytes(planned), agon_net_bytes(built));
        /* What the model did not reach has no storage, but its shape. */
        agon_param *w = agon_net_param(planned, 0);
        assert_null(w->value.data);
        assert_null(w->grad.data);
        assert_true(agon_shape_equal(&w->value.shape, &agon_net_param(built, 0)->value.shape));
        assert_non_null(agon_net_param(planned, 2)->value.data);
        assert_int_equal(agon_net_param_count(planned), agon_net_param_count(built));
        assert_int_equal(agon_net_param_numel(planned), agon_net_param_numel(built));
        agon_net_destroy(built);
        agon_net_destroy(planned);
    }
}

/* Networks far larger than this machine plan in no time and no memory. */
static void test_planned_network_allocates_nothing(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng = init_rng();
    /* latent_dim = batch_size = 1048576 through a 128-wide layer: 4 TiB
     * for each [batch, latent] buffer. */
    const int64_t B = 1048576, I = 1048576, H = 128;
    agon_shape in = {1, {I}};
    agon_net *net = agon_net_create_planned(&in, B, &err);
    assert_non_null(net);
    assert_int_equal(agon_net_add_linear(net, H, true, AGON_INIT_DEFAULT_UNIFORM, 0, &rng, &err), 0);
    assert_int_equal(agon_net_add_activation(net, AGON_ACT_RELU, 0, &err), 0);
    agon_net_finish_plan(net);
    /* input, then out, din, weight and bias with their gradients, then the
     * activation's out and din; the rest is layer bookkeeping. */
    const uint64_t tensors = 4 * (uint64_t)(B * I + B * H + B * I + 2 * H * I + 2 * H + 2 * B * H);
    print_message("planned %zu bytes, tensors %llu bytes\n", agon_net_bytes(net),
                  (unsigned long long)tensors);
    assert_true(agon_net_bytes(net) >= tensors);
    assert_true(agon_net_bytes(net) < tensors + 65536);
    agon_net_destroy(net);

    /* mlp hidden [65536, 65536]: 16 GiB for the weight, as much for its
     * gradient. */
    agon_shape z = {1, {2}};
    net = agon_net_create_planned(&z, 512, &err);
    assert_non_null(net);
    for (int i = 0; i < 2; i++)
        assert_int_equal(
            agon_net_add_linear(net, 65536, true, AGON_INIT_DEFAULT_UNIFORM, 0, &rng, &err), 0);
    assert_true(agon_net_bytes(net) > ((uint64_t)32 << 30));
    agon_net_destroy(net);
}

/* Sizes past 64 bits are refused with a message, or saturate a plan's
 * count; none wraps into a small number. */
static void test_sizes_past_64_bits_are_refused(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_rng rng = init_rng();
    int64_t n;
    assert_false(agon_shape_numel_checked(&(agon_shape){2, {(int64_t)1 << 32, (int64_t)1 << 32}},
                                          &n));
    assert_true(agon_shape_numel_checked(&(agon_shape){2, {3, 5}}, &n));
    assert_int_equal(n, 15);

    agon_shape wide = {1, {(int64_t)1 << 40}};
    assert_null(agon_net_create_planned(&wide, (int64_t)1 << 30, &err));
    assert_int_equal(err.code, AGON_ECONFIG);
    assert_string_equal(err.message, "network: input [1099511627776] for a batch of 1073741824 "
                                     "has more elements than 64-bit sizes can count; use a "
                                     "smaller input or batch");

    agon_error_clear(&err);
    agon_shape in = {1, {(int64_t)1 << 32}};
    agon_net *net = agon_net_create_planned(&in, 1, &err);
    assert_non_null(net);
    assert_int_equal(agon_net_add_linear(net, (int64_t)1 << 32, false, AGON_INIT_NORMAL, 0, &rng,
                                         &err),
                     AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (linear): parameter 'weight' of shape "
                                     "[4294967296, 4294967296] has more elements than 64-bit "
                                     "sizes can count; use smaller layers");
    agon_net_destroy(net);

    agon_error_clear(&err);
    agon_shape one = {1, {1}};
    net = agon_net_create_planned(&one, (int64_t)1 << 21, &err);
    assert_int_equal(agon_net_add_linear(net, (int64_t)1 << 42, false, AGON_INIT_NORMAL, 0, &rng,
                                         &err),
                     AGON_ECONFIG);
    assert_string_equal(err.message, "layer 0 (linear): output [4398046511104] for a batch of "
                                     "2097152 has more elements than 64-bit sizes can count; use "
                                     "smaller layers or a smaller batch");
    agon_net_destroy(net);

    /* Each buffer fits, their sum does not: the count stops at SIZE_MAX. */
    agon_error_clear(&err);
    net = agon_net_create_planned(&wide, (int64_t)1 << 20, &err);
    assert_non_null(net);
    for (int i = 0; i < 3; i++)
        assert_int_equal(agon_net_add_activation(net, AGON_ACT_RELU, 0, &err), 0);
    assert_int_equal(agon_net_bytes(net), SIZE_MAX);
    agon_net_destroy(net);

    /* A real arena refuses a tensor whose bytes would wrap to a few. */
    agon_arena *arena = agon_arena_create(0, &err);
    agon_tensor t;
    assert_int_equal(agon_arena_tensor(arena, &t, &(agon_shape){1, {(int64_t)1 << 62}}, &err),
                     AGON_ENOMEM);
    assert_string_equal(err.message, "out of memory: a tensor of shape [4611686018427387904] has "
                                     "more bytes than 64 bits can count");
    assert_int_equal(agon_arena_used(arena), 0);
    agon_arena_destroy(arena);
}

/* ---- experiments: the estimate against what building them holds -------- */

static int64_t cfg_int(const agon_node *root, const char *section, const char *key)
{
    int64_t v = 0;
    assert_int_equal(agon_cfg_require_int(agon_node_get(root, section), key, &v, NULL), 0);
    return v;
}

static const void *vtable_of(agon_registry *reg, agon_kind kind, const agon_node *section)
{
    const char *name = agon_node_scalar(agon_node_get(section, "plugin"));
    const agon_component *c = agon_registry_find(reg, kind, name, NULL);
    assert_non_null(c);
    return c->vtable;
}

/* Builds the experiment's networks for real, as the game does, and checks
 * the estimate against their arenas (exactly) and the rest against the
 * buffers' shapes (exactly: the arenas count requested bytes). */
static void check_estimate(agon_registry *reg, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/%s", AGON_TEST_SOURCE_DIR, file);
    agon_diag diag;
    agon_diag_init(&diag);
    agon_experiment *exp = agon_experiment_load(reg, path, NULL, 0, true, &diag);
    for (size_t i = 0; i < diag.count; i++)
        print_error("%s\n", diag.messages[i]);
    assert_non_null(exp);
    agon_diag_fini(&diag);
    const agon_memory_estimate *est = agon_experiment_memory(exp);
    assert_non_null(est);

    const agon_node *root = agon_config_root(agon_experiment_config(exp));
    agon_error err = {0};
    const agon_dataset_vtable *data_vt =
        vtable_of(reg, AGON_KIND_DATASET, agon_node_get(root, "dataset"));
    void *data = NULL;
    agon_dataset_info info;
    assert_int_equal(data_vt->create(agon_node_get(root, "dataset"), &data, &info, &err), 0);
    const int64_t batch = cfg_int(root, "train", "batch_size");
    const int64_t n_samples = cfg_int(root, "log", "n_samples");
    const char *conditional = "";
    agon_cfg_require_string(agon_node_get(root, "train"), "conditional", &conditional, NULL);
    const int64_t classes = strcmp(conditional, "concat") == 0 ? info.n_classes : 0;
    const int64_t g_in = cfg_int(root, "train", "latent_dim") + classes;
    const int64_t numel = agon_shape_numel(&info.sample_shape);
    agon_shape z = {1, {g_in}}, d = info.sample_shape, logit = {1, {1}};
    d.dim[0] += classes;

    agon_rng rng;
    agon_rng_seed(&rng, 0, "init");
    agon_net *G = agon_net_create(&z, batch, &err), *D = agon_net_create(&d, 2 * batch, &err);
    const agon_model_vtable *gm = vtable_of(reg, AGON_KIND_MODEL, agon_node_get(root, "generator"));
    const agon_model_vtable *dm =
        vtable_of(reg, AGON_KIND_MODEL, agon_node_get(root, "discriminator"));
    assert_int_equal(gm->build(agon_node_get(root, "generator"), AGON_ROLE_GENERATOR,
                               &info.sample_shape, G, &rng, &err),
                     0);
    assert_int_equal(dm->build(agon_node_get(root, "discriminator"), AGON_ROLE_DISCRIMINATOR,
                               &logit, D, &rng, &err),
                     0);
    const agon_optimizer_vtable *go =
        vtable_of(reg, AGON_KIND_OPTIMIZER, agon_node_get(root, "g_optimizer"));
    const agon_optimizer_vtable *dopt =
        vtable_of(reg, AGON_KIND_OPTIMIZER, agon_node_get(root, "d_optimizer"));

    uint64_t state = 0, params = 0, buffers = 0;
    agon_net *nets[2] = {G, D};
    const uint32_t n_state[2] = {go->n_state, dopt->n_state};
    for (int r = 0; r < 2; r++) {
        uint64_t p = (uint64_t)agon_net_param_numel(nets[r]);
        params += p;
        state += p * n_state[r] * sizeof(float) +
                 agon_net_param_count(nets[r]) * sizeof(agon_optim_slot) + 1;
        for (size_t i = 0; i < agon_net_buffer_count(nets[r]); i++)
            buffers += (uint64_t)agon_tensor_numel(&agon_net_buffer(nets[r], i)->value);
    }
    uint64_t g_buffers = 0;
    for (size_t i = 0; i < agon_net_buffer_count(G); i++)
        g_buffers += (uint64_t)agon_tensor_numel(&agon_net_buffer(G, i)->value);
    /* z, D's [real; fake] input, the logits' gradients, two label arrays,
     * a conditional run's staged samples and G's gradient share, G's saved
     * buffers. */
    const uint64_t step = sizeof(float) * ((uint64_t)batch * g_in +
                                           2 * (uint64_t)batch * agon_shape_numel(&d) +
                                           3 * (uint64_t)batch + (classes ? 2 * batch * numel : 0) +
                                           g_buffers) +
                          2 * (uint64_t)batch * sizeof(int32_t);
    const uint64_t samples = sizeof(float) * (uint64_t)n_samples * (g_in + numel);
    uint64_t ckpt_floats = params + buffers;
    for (int r = 0; r < 2; r++)
        ckpt_floats += (uint64_t)agon_net_param_numel(nets[r]) * n_state[r];
    const uint64_t checkpoint = ckpt_floats * sizeof(float) + 1;

    print_message("%s: estimate %llu bytes (G %llu, D %llu, optimizers %llu, checkpoint %llu, "
                  "step %llu, samples %llu); built G %zu, D %zu\n",
                  file, (unsigned long long)est->total, (unsigned long long)est->generator,
                  (unsigned long long)est->discriminator, (unsigned long long)est->optimizers,
                  (unsigned long long)est->checkpoint, (unsigned long long)est->step,
                  (unsigned long long)est->samples, agon_arena_used(agon_net_arena(G)),
                  agon_arena_used(agon_net_arena(D)));
    assert_int_equal(est->generator, agon_arena_used(agon_net_arena(G)));
    assert_int_equal(est->discriminator, agon_arena_used(agon_net_arena(D)));
    assert_int_equal(est->optimizers, state);
    assert_int_equal(est->step, step);
    assert_int_equal(est->samples, samples);
    assert_int_equal(est->checkpoint, checkpoint);
    assert_int_equal(est->total, est->generator + est->discriminator + est->optimizers +
                                     est->checkpoint + est->step + est->samples);
    char text[256];
    print_message("  # memory: %s\n", agon_memory_describe(est, text, sizeof text));

    agon_net_destroy(G);
    agon_net_destroy(D);
    data_vt->destroy(data);
    agon_experiment_destroy(exp);
}

static void test_estimate_matches_built_experiments(void **st)
{
    (void)st;
    agon_registry *reg = agon_test_registry(false);
    check_estimate(reg, "ring8.yaml");
    check_estimate(reg, "gaussian1d.yaml");
    check_estimate(reg, "fmnist_dcgan.yaml");
    check_estimate(reg, "fmnist_cdcgan.yaml");
    agon_registry_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planned_network_counts_what_built_holds),
        cmocka_unit_test(test_planned_network_allocates_nothing),
        cmocka_unit_test(test_sizes_past_64_bits_are_refused),
        cmocka_unit_test(test_estimate_matches_built_experiments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
