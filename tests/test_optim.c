/* The sgd and adam optimizer plugins, loaded straight from their .so files
 * and driven through their vtables, against values worked out by hand. */
#include "test_util.h"

#include <dlfcn.h>
#include <math.h>

#include "agon/config.h"
#include "agon/plugin.h"

/* ---- loading ---------------------------------------------------------------- */

typedef struct loaded {
    void *handle;
    const agon_component *comp;
    const agon_optimizer_vtable *vt;
} loaded;

static loaded load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", AGON_TEST_PLUGIN_DIR, name);
    loaded l = {0};
    l.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!l.handle)
        fail_msg("dlopen %s: %s", path, dlerror());
    const agon_plugin_descriptor *(*entry)(void);
    *(void **)&entry = dlsym(l.handle, AGON_PLUGIN_ENTRY_NAME);
    assert_non_null(entry);
    const agon_plugin_descriptor *d = entry();
    assert_int_equal(d->abi_version, AGON_ABI_VERSION);
    assert_int_equal(d->struct_size, sizeof(agon_plugin_descriptor));
    assert_int_equal(d->float_size, sizeof(float));
    for (size_t i = 0; i < d->n_components; i++) {
        const agon_component *c = &d->components[i];
        if (c->kind == AGON_KIND_OPTIMIZER && strcmp(c->name, name) == 0)
            l.comp = c;
    }
    if (!l.comp)
        fail_msg("%s: no optimizer component '%s'", path, name);
    l.vt = l.comp->vtable;
    assert_int_equal(l.vt->struct_size, sizeof(agon_optimizer_vtable));
    return l;
}

static void unload(loaded *l)
{
    dlclose(l->handle);
}

static agon_config *parse(const char *text)
{
    agon_diag diag;
    agon_diag_init(&diag);
    agon_config *cfg = agon_config_parse(text, strlen(text), "opt.yaml", &diag);
    if (!cfg)
        fail_msg("config: %s", diag.count ? diag.messages[0] : "?");
    agon_diag_fini(&diag);
    return cfg;
}

/* Creates an optimizer from YAML text (NULL: no section at all). */
static void *create(const loaded *l, const char *yaml)
{
    agon_error err = {0};
    agon_config *cfg = yaml ? parse(yaml) : NULL;
    void *state = NULL;
    int rc = l->vt->create(cfg ? agon_config_root(cfg) : NULL, &state, &err);
    if (rc != 0)
        fail_msg("create: %s", err.message);
    agon_config_destroy(cfg);
    return state;
}

/* Expects create to fail with AGON_ECONFIG and exactly `message`. */
static void create_fails(const loaded *l, const char *yaml, const char *message)
{
    agon_error err = {0};
    agon_config *cfg = parse(yaml);
    void *state = NULL;
    assert_int_equal(l->vt->create(agon_config_root(cfg), &state, &err), AGON_ECONFIG);
    assert_string_equal(err.message, message);
    assert_null(state);
    agon_config_destroy(cfg);
}

/* ---- one parameter with its gradient and state ------------------------------------ */

#define MAXN 8

typedef struct bench {
    float p[MAXN], g[MAXN], s[AGON_OPTIM_MAX_STATE][MAXN];
    agon_tensor value, grad;
    agon_optim_slot slot;
} bench;

static void bench_init(bench *b, int n, const float *p0)
{
    memset(b, 0, sizeof *b);
    agon_shape sh = agon_shape_make(1, (int64_t[]){n});
    memcpy(b->p, p0, (size_t)n * sizeof(float));
    b->value = (agon_tensor){b->p, sh};
    b->grad = (agon_tensor){b->g, sh};
    b->slot.value = &b->value;
    b->slot.grad = &b->grad;
    for (int i = 0; i < AGON_OPTIM_MAX_STATE; i++)
        b->slot.state[i] = (agon_tensor){b->s[i], sh};
}

static void expect_near(float got, double want, const char *what)
{
    if (fabs(got - want) > 1e-6 * (1.0 + fabs(want)))
        fail_msg("%s: got %.9g, expected %.9g", what, (double)got, want);
}

/* ---- descriptors and schemas ------------------------------------------------------- */

static void check_schema(const agon_component *c, const char *const *names,
                         const char *const *defaults)
{
    agon_error err = {0};
    if (agon_schema_check(c->params, &err) != 0)
        fail_msg("%s schema: %s", c->name, err.message);
    size_t i = 0;
    for (; c->params[i].name; i++) {
        assert_non_null(names[i]);
        assert_string_equal(c->params[i].name, names[i]);
        assert_string_equal(c->params[i].default_yaml, defaults[i]);
        const char *doc = c->params[i].doc;
        assert_non_null(doc);
        assert_true(strlen(doc) > 10);
        assert_null(strchr(doc, '\n'));
    }
    assert_null(names[i]);
}

static void test_descriptors_and_schemas(void **st)
{
    (void)st;
    loaded sgd = load("sgd");
    assert_int_equal(sgd.vt->n_state, 1);
    check_schema(sgd.comp,
                 (const char *const[]){"lr", "momentum", "nesterov", "weight_decay", NULL},
                 (const char *const[]){"0.01", "0", "false", "0"});
    unload(&sgd);

    loaded adam = load("adam");
    assert_int_equal(adam.vt->n_state, 2);
    check_schema(adam.comp,
                 (const char *const[]){"lr", "beta1", "beta2", "eps", "weight_decay", NULL},
                 (const char *const[]){"1e-3", "0.9", "0.999", "1e-8", "0"});
    const char *wd_doc = adam.comp->params[4].doc;
    assert_non_null(strstr(wd_doc, "PyTorch"));
    unload(&adam);
}

/* ---- sgd ------------------------------------------------------------------------------ */

static void test_sgd_defaults(void **st)
{
    (void)st;
    loaded l = load("sgd");
    /* Defaults, both without a section and with one that sets nothing of
     * ours: lr 0.01, no momentum, no decay.
     *   p = [1, -2, 0.5], g = [0.5, 1, -4]
     *   p - 0.01 g = [0.995, -2.01, 0.54] */
    const char *sections[] = {NULL, "plugin: sgd\n"};
    for (int k = 0; k < 2; k++) {
        void *s = create(&l, sections[k]);
        bench b;
        bench_init(&b, 3, (float[]){1.0f, -2.0f, 0.5f});
        memcpy(b.g, (float[]){0.5f, 1.0f, -4.0f}, 3 * sizeof(float));
        l.vt->step(s, &b.slot, 1, 1);
        expect_near(b.p[0], 0.995, "p[0]");
        expect_near(b.p[1], -2.01, "p[1]");
        expect_near(b.p[2], 0.54, "p[2]");
        l.vt->destroy(s);
    }
    unload(&l);
}

static void test_sgd_plain(void **st)
{
    (void)st;
    loaded l = load("sgd");
    void *s = create(&l, "lr: 0.1\n");
    bench b;
    bench_init(&b, 3, (float[]){1.0f, -2.0f, 0.5f});
    memcpy(b.g, (float[]){0.5f, 1.0f, -4.0f}, 3 * sizeof(float));
    /* step 1: p - 0.1 g = [1 - 0.05, -2 - 0.1, 0.5 + 0.4] = [0.95, -2.1, 0.9] */
    l.vt->step(s, &b.slot, 1, 1);
    expect_near(b.p[0], 0.95, "t1 p[0]");
    expect_near(b.p[1], -2.1, "t1 p[1]");
    expect_near(b.p[2], 0.9, "t1 p[2]");
    /* step 2, same g: [0.9, -2.2, 1.3] */
    l.vt->step(s, &b.slot, 1, 2);
    expect_near(b.p[0], 0.9, "t2 p[0]");
    expect_near(b.p[1], -2.2, "t2 p[1]");
    expect_near(b.p[2], 1.3, "t2 p[2]");
    l.vt->destroy(s);
    unload(&l);
}

static void test_sgd_momentum(void **st)
{
    (void)st;
    loaded l = load("sgd");
    void *s = create(&l, "lr: 0.1\nmomentum: 0.9\n");
    bench b;
    bench_init(&b, 1, (float[]){1.0f});
    const float g[3] = {1.0f, 0.5f, -1.0f};
    /* buf1 = 1                      p1 = 1    - 0.1 * 1    = 0.9
     * buf2 = 0.9 * 1   + 0.5 = 1.4  p2 = 0.9  - 0.1 * 1.4  = 0.76
     * buf3 = 0.9 * 1.4 - 1   = 0.26 p3 = 0.76 - 0.1 * 0.26 = 0.734 */
    const double want_p[3] = {0.9, 0.76, 0.734};
    const double want_buf[3] = {1.0, 1.4, 0.26};
    for (int t = 1; t <= 3; t++) {
        b.g[0] = g[t - 1];
        l.vt->step(s, &b.slot, 1, t);
        expect_near(b.p[0], want_p[t - 1], "p");
        expect_near(b.s[0][0], want_buf[t - 1], "momentum buffer (state 0)");
    }
    l.vt->destroy(s);
    unload(&l);
}

static void test_sgd_nesterov(void **st)
{
    (void)st;
    loaded l = load("sgd");
    void *s = create(&l, "lr: 0.1\nmomentum: 0.9\nnesterov: true\n");
    bench b;
    bench_init(&b, 1, (float[]){1.0f});
    const float g[3] = {1.0f, 0.5f, -1.0f};
    /* buf as with plain momentum (1, 1.4, 0.26); the step is g + 0.9 buf:
     * d1 =  1   + 0.9 * 1    =  1.9    p1 = 1     - 0.19   = 0.81
     * d2 =  0.5 + 0.9 * 1.4  =  1.76   p2 = 0.81  - 0.176  = 0.634
     * d3 = -1   + 0.9 * 0.26 = -0.766  p3 = 0.634 + 0.0766 = 0.7106 */
    const double want_p[3] = {0.81, 0.634, 0.7106};
    for (int t = 1; t <= 3; t++) {
        b.g[0] = g[t - 1];
        l.vt->step(s, &b.slot, 1, t);
        expect_near(b.p[0], want_p[t - 1], "p");
    }
    expect_near(b.s[0][0], 0.26, "momentum buffer");
    l.vt->destroy(s);
    unload(&l);
}

static void test_sgd_weight_decay(void **st)
{
    (void)st;
    loaded l = load("sgd");
    /* No momentum: g' = g + 0.1 p, g = 0.5
     * g'1 = 0.5 + 0.1 * 2    = 0.7     p1 = 2    - 0.1 * 0.7   = 1.93
     * g'2 = 0.5 + 0.1 * 1.93 = 0.693   p2 = 1.93 - 0.1 * 0.693 = 1.8607 */
    void *s = create(&l, "lr: 0.1\nweight_decay: 0.1\n");
    bench b;
    bench_init(&b, 1, (float[]){2.0f});
    b.g[0] = 0.5f;
    l.vt->step(s, &b.slot, 1, 1);
    expect_near(b.p[0], 1.93, "t1");
    l.vt->step(s, &b.slot, 1, 2);
    expect_near(b.p[0], 1.8607, "t2");
    l.vt->destroy(s);

    /* With momentum 0.5 the decay goes into the buffer (as in PyTorch):
     * g'1 = 0.7     buf1 = 0.7                     p1 = 2    - 0.07   = 1.93
     * g'2 = 0.693   buf2 = 0.5 * 0.7 + 0.693 = 1.043  p2 = 1.93 - 0.1043 = 1.8257 */
    s = create(&l, "lr: 0.1\nmomentum: 0.5\nweight_decay: 0.1\n");
    bench_init(&b, 1, (float[]){2.0f});
    b.g[0] = 0.5f;
    l.vt->step(s, &b.slot, 1, 1);
    expect_near(b.p[0], 1.93, "t1 momentum");
    l.vt->step(s, &b.slot, 1, 2);
    expect_near(b.p[0], 1.8257, "t2 momentum");
    expect_near(b.s[0][0], 1.043, "buffer");
    l.vt->destroy(s);
    unload(&l);
}

static void test_sgd_errors(void **st)
{
    (void)st;
    loaded l = load("sgd");
    create_fails(&l, "lr: 0\n",
                 "opt.yaml:1:5: lr: must be a finite number greater than 0, got 0; use a small "
                 "positive learning rate such as 0.01");
    create_fails(&l, "lr: 0.1\nmomentum: 1\n",
                 "opt.yaml:2:11: momentum: must be in [0, 1), got 1; 0.9 is the usual choice");
    create_fails(&l, "weight_decay: -0.5\n",
                 "opt.yaml:1:15: weight_decay: must be a finite number >= 0, got -0.5");
    create_fails(&l, "nesterov: true\n",
                 "opt.yaml:1:11: nesterov: Nesterov momentum needs momentum > 0; set momentum "
                 "(e.g. 0.9) or nesterov: false");
    unload(&l);
}

/* ---- adam ------------------------------------------------------------------------------- */

static void test_adam_first_step_is_lr_sign(void **st)
{
    (void)st;
    loaded l = load("adam");
    void *s = create(&l, NULL); /* lr 1e-3, betas 0.9 / 0.999, eps 1e-8 */
    bench b;
    bench_init(&b, 6, (float[]){0, 0, 0, 0, 0, 0});
    const float g[6] = {0.5f, -3.0f, 1e-4f, -1000.0f, 0.0f, 7e-3f};
    memcpy(b.g, g, sizeof g);
    l.vt->step(s, &b.slot, 1, 1);
    for (int i = 0; i < 6; i++) {
        /* m = 0.1 g and v = 0.001 g^2 corrected by 1 - 0.9 and 1 - 0.999
         * give back g and g^2, so the move is lr g / (|g| + eps). */
        double want = -1e-3 * g[i] / (fabs(g[i]) + 1e-8);
        expect_near(b.p[i], want, "first step");
        double sign = g[i] > 0 ? 1.0 : g[i] < 0 ? -1.0 : 0.0;
        /* about lr * sign(g), over six orders of magnitude of |g| */
        assert_true(fabs(b.p[i] + 1e-3 * sign) < 1e-3 * 1e-3);
        expect_near(b.s[0][i], 0.1 * g[i], "m (state 0)");
        assert_true(fabs(b.s[1][i] - 0.001 * (double)g[i] * g[i]) <= 1e-6 * (0.001 * g[i] * g[i]));
    }
    l.vt->destroy(s);
    unload(&l);
}

static void test_adam_three_steps(void **st)
{
    (void)st;
    loaded l = load("adam");
    void *s = create(&l, "lr: 0.1\n");
    bench b;
    bench_init(&b, 1, (float[]){1.0f});
    const float g[3] = {1.0f, -0.5f, 2.0f};
    /* beta1 0.9, beta2 0.999, eps 1e-8, p0 = 1:
     * t1: m = 0.1, v = 0.001; bias corrections 0.1 and 0.001 give mhat = 1,
     *     vhat = 1; p1 = 1 - 0.1 * 1 / (1 + 1e-8) = 0.900000001
     * t2: m = 0.09 - 0.05 = 0.04; v = 0.000999 + 0.00025 = 0.001249;
     *     1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999;
     *     mhat = 0.04 / 0.19 = 0.2105263158, vhat = 0.001249 / 0.001999 =
     *     0.6248124062, sqrt = 0.7904507614;
     *     p2 = 0.900000001 - 0.1 * 0.2105263158 / 0.7904507714 = 0.8733662974
     * t3: m = 0.036 + 0.2 = 0.236; v = 0.001247751 + 0.004 = 0.005247751;
     *     1 - 0.9^3 = 0.271, 1 - 0.999^3 = 0.002997001;
     *     mhat = 0.236 / 0.271 = 0.8708487085, vhat = 1.75100075,
     *     sqrt = 1.32325385;
     *     p3 = 0.8733662974 - 0.1 * 0.8708487085 / 1.32325386 = 0.8075551378 */
    const double want_p[3] = {0.900000001, 0.8733662974, 0.8075551378};
    const double want_m[3] = {0.1, 0.04, 0.236};
    const double want_v[3] = {0.001, 0.001249, 0.005247751};
    for (int t = 1; t <= 3; t++) {
        b.g[0] = g[t - 1];
        l.vt->step(s, &b.slot, 1, t);
        expect_near(b.p[0], want_p[t - 1], "p");
        expect_near(b.s[0][0], want_m[t - 1], "m");
        assert_true(fabs(b.s[1][0] - want_v[t - 1]) < 1e-6 * want_v[t - 1]);
    }
    l.vt->destroy(s);
    unload(&l);
}

static void test_adam_betas_and_weight_decay(void **st)
{
    (void)st;
    loaded l = load("adam");
    /* beta1 0.5, beta2 0.9, lr 0.01, g = 1 then -0.5:
     * t1: mhat = 1, vhat = 1, p1 = 1 - 0.01 / (1 + 1e-8) = 0.9900000001
     * t2: m = 0.5 * 0.5 + 0.5 * (-0.5) = 0, so p does not move. */
    void *s = create(&l, "lr: 0.01\nbeta1: 0.5\nbeta2: 0.9\n");
    bench b;
    bench_init(&b, 1, (float[]){1.0f});
    b.g[0] = 1.0f;
    l.vt->step(s, &b.slot, 1, 1);
    expect_near(b.p[0], 0.9900000001, "t1");
    float p1 = b.p[0];
    b.g[0] = -0.5f;
    l.vt->step(s, &b.slot, 1, 2);
    assert_true(b.p[0] == p1);
    expect_near(b.s[1][0], 0.115, "v = 0.9 * 0.1 + 0.1 * 0.25");
    l.vt->destroy(s);

    /* weight_decay 0.5, lr 0.1, g = 0, p0 = 2: the gradient is all decay.
     * t1: g' = 1; m = 0.1, v = 0.001, mhat = vhat = 1;
     *     p1 = 2 - 0.1 * 1 / (1 + 1e-8) = 1.900000001
     * t2: g' = 0.5 * 1.900000001 = 0.9500000005;
     *     m = 0.09 + 0.09500000005 = 0.18500000005;
     *     v = 0.000999 + 0.001 * 0.9025000009 = 0.0019015000009;
     *     mhat = m / 0.19 = 0.9736842108, vhat = v / 0.001999 = 0.9512256133,
     *     sqrt = 0.9753079582;
     *     p2 = 1.900000001 - 0.1 * 0.9736842108 / 0.9753079682 = 1.800166488 */
    s = create(&l, "lr: 0.1\nweight_decay: 0.5\n");
    bench_init(&b, 1, (float[]){2.0f});
    l.vt->step(s, &b.slot, 1, 1);
    expect_near(b.p[0], 1.900000001, "t1 decay");
    l.vt->step(s, &b.slot, 1, 2);
    expect_near(b.p[0], 1.800166488, "t2 decay");
    l.vt->destroy(s);
    unload(&l);
}

static void test_adam_errors(void **st)
{
    (void)st;
    loaded l = load("adam");
    create_fails(&l, "lr: -1\n",
                 "opt.yaml:1:5: lr: must be a finite number greater than 0, got -1; use a small "
                 "positive learning rate such as 0.0002");
    create_fails(&l, "beta1: 1.0\n",
                 "opt.yaml:1:8: beta1: must be in [0, 1), got 1; the usual values are beta1 0.9 "
                 "(0.5 for GANs) and beta2 0.999");
    create_fails(&l, "beta2: -0.1\n",
                 "opt.yaml:1:8: beta2: must be in [0, 1), got -0.1; the usual values are beta1 "
                 "0.9 (0.5 for GANs) and beta2 0.999");
    create_fails(&l, "eps: 0\n",
                 "opt.yaml:1:6: eps: must be a finite number greater than 0, got 0; 1e-8 is the "
                 "usual value");
    create_fails(&l, "weight_decay: -1\n",
                 "opt.yaml:1:15: weight_decay: must be a finite number >= 0, got -1");
    unload(&l);
}

/* Several slots of different sizes are updated independently, and the
 * same inputs give the same bits. */
static void test_many_slots_deterministic(void **st)
{
    (void)st;
    const char *names[] = {"sgd", "adam"};
    for (int k = 0; k < 2; k++) {
        loaded l = load(names[k]);
        void *s = create(&l, k == 0 ? "lr: 0.05\nmomentum: 0.8\nweight_decay: 0.01\n"
                                    : "lr: 0.01\nweight_decay: 0.01\n");
        bench runs[2][2];
        for (int r = 0; r < 2; r++) {
            bench_init(&runs[r][0], 5, (float[]){0.1f, -0.2f, 0.3f, -0.4f, 0.5f});
            bench_init(&runs[r][1], 2, (float[]){1.5f, -2.5f});
            agon_optim_slot slots[2] = {runs[r][0].slot, runs[r][1].slot};
            agon_rng rng;
            agon_rng_seed(&rng, 1, "grads");
            for (int t = 1; t <= 5; t++) {
                agon_rng_fill_uniform(&rng, runs[r][0].g, 5, -1.0f, 1.0f);
                agon_rng_fill_uniform(&rng, runs[r][1].g, 2, -1.0f, 1.0f);
                l.vt->step(s, slots, 2, t);
            }
        }
        assert_memory_equal(runs[0][0].p, runs[1][0].p, 5 * sizeof(float));
        assert_memory_equal(runs[0][1].p, runs[1][1].p, 2 * sizeof(float));
        assert_memory_equal(runs[0][0].s, runs[1][0].s, sizeof runs[0][0].s);

        /* The second slot alone, same gradients, ends in the same place. */
        bench solo;
        bench_init(&solo, 2, (float[]){1.5f, -2.5f});
        agon_rng rng;
        agon_rng_seed(&rng, 1, "grads");
        float skip[5];
        for (int t = 1; t <= 5; t++) {
            agon_rng_fill_uniform(&rng, skip, 5, -1.0f, 1.0f);
            agon_rng_fill_uniform(&rng, solo.g, 2, -1.0f, 1.0f);
            l.vt->step(s, &solo.slot, 1, t);
        }
        assert_memory_equal(solo.p, runs[0][1].p, 2 * sizeof(float));
        l.vt->destroy(s);
        unload(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors_and_schemas),
        cmocka_unit_test(test_sgd_defaults),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_sgd_errors),
        cmocka_unit_test(test_adam_first_step_is_lr_sign),
        cmocka_unit_test(test_adam_three_steps),
        cmocka_unit_test(test_adam_betas_and_weight_decay),
        cmocka_unit_test(test_adam_errors),
        cmocka_unit_test(test_many_slots_deterministic),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
