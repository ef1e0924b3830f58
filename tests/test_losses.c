/* The minimax and nonsaturating loss plugins, loaded from the built .so
 * files: hand-computed values, finite-difference gradients, the saturation
 * that motivates the non-saturating loss, and extreme logits. */
#include "test_util.h"

#include <dlfcn.h>
#include <math.h>

#include "agon/plugin.h"

typedef struct loaded_loss {
    void *handle;
    const agon_loss_vtable *vt;
} loaded_loss;

static loaded_loss minimax, nonsaturating;

static int load_loss(loaded_loss *out, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", AGON_TEST_PLUGIN_DIR, name);
    out->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!out->handle) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    typedef const agon_plugin_descriptor *(*entry_fn)(void);
    entry_fn entry;
    void *sym = dlsym(out->handle, AGON_PLUGIN_ENTRY_NAME);
    if (!sym)
        return -1;
    memcpy(&entry, &sym, sizeof entry);
    const agon_plugin_descriptor *desc = entry();
    if (desc->abi_version != AGON_ABI_VERSION || desc->n_components != 1 ||
        desc->components[0].kind != AGON_KIND_LOSS ||
        strcmp(desc->components[0].name, name) != 0)
        return -1;
    out->vt = desc->components[0].vtable;
    if (out->vt->struct_size != sizeof(agon_loss_vtable))
        return -1;
    return 0;
}

static int setup(void **state)
{
    if (load_loss(&minimax, "minimax") != 0 || load_loss(&nonsaturating, "nonsaturating") != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    dlclose(minimax.handle);
    dlclose(nonsaturating.handle);
    return 0;
}

/* softplus(0) = log 2         = 0.693147180559945
 * softplus(-2) = log(1+e^-2)  = 0.126928011042972
 * softplus(-1) = log(1+e^-1)  = 0.313261687518223
 * softplus(1) = 1 + softplus(-1) = 1.313261687518223
 * softplus(3) = 3 + log(1+e^-3) = 3.048587351573742
 * softplus(-3) = log(1+e^-3)  = 0.048587351573742
 * softplus(4) = 4 + log(1+e^-4) = 4.018149927917809
 * sigmoid(0) = 0.5, sigmoid(-2) = 0.119202922022118, sigmoid(-1) = 0.268941421369995,
 * sigmoid(1) = 0.731058578630005, sigmoid(3) = 0.952574126822433,
 * sigmoid(-3) = 0.047425873177567, sigmoid(4) = 0.982013790037908 */

/* Real logits {0, 2}, fake logits {0, -1, 4}:
 * L_D = (softplus(-0) + softplus(-2))/2 + (softplus(0) + softplus(-1) + softplus(4))/3
 *     = (0.693147180559945 + 0.126928011042972)/2
 *       + (0.693147180559945 + 0.313261687518223 + 4.018149927917809)/3
 *     = 0.410037595801459 + 1.674852931998659 = 2.084890527800118
 * dL/dl_real = -sigmoid(-l)/2: {-0.25, -0.119202922022118/2 = -0.059601461011059}
 * dL/dl_fake =  sigmoid(l)/3:  {0.166666666666667, 0.268941421369995/3 = 0.089647140456665,
 *                               0.982013790037908/3 = 0.327337930012636} */
static void check_d_loss_values(const agon_loss_vtable *vt)
{
    const float real[2] = {0.0f, 2.0f};
    const float fake[3] = {0.0f, -1.0f, 4.0f};
    float dr[2], df[3];
    double loss = vt->d_loss(real, 2, fake, 3, dr, df);
    assert_float_equal(loss, 2.084890527800118, 1e-9);
    assert_float_equal(dr[0], -0.25, 1e-7);
    assert_float_equal(dr[1], -0.059601461011059, 1e-7);
    assert_float_equal(df[0], 0.166666666666667, 1e-7);
    assert_float_equal(df[1], 0.089647140456665, 1e-7);
    assert_float_equal(df[2], 0.327337930012636, 1e-7);
    /* The value does not depend on whether gradients are wanted. */
    assert_float_equal(vt->d_loss(real, 2, fake, 3, NULL, NULL), loss, 0.0);
}

static void test_d_loss_values(void **state)
{
    check_d_loss_values(minimax.vt);
    check_d_loss_values(nonsaturating.vt);
}

/* Minimax G on fake logits {0, -1, 3}: L_G = -mean softplus(l)
 *   = -(0.693147180559945 + 0.313261687518223 + 3.048587351573742)/3
 *   = -4.054996219651910/3 = -1.351665406550637
 * dL/dl = -sigmoid(l)/3 = {-0.5/3 = -0.166666666666667, -0.268941421369995/3 = -0.089647140456665,
 *                          -0.952574126822433/3 = -0.317524708940811} */
static void test_minimax_g_values(void **state)
{
    const float fake[3] = {0.0f, -1.0f, 3.0f};
    float g[3];
    double loss = minimax.vt->g_loss(fake, 3, g);
    assert_float_equal(loss, -1.351665406550637, 1e-9);
    assert_float_equal(g[0], -0.166666666666667, 1e-7);
    assert_float_equal(g[1], -0.089647140456665, 1e-7);
    assert_float_equal(g[2], -0.317524708940811, 1e-7);
}

/* Non-saturating G on fake logits {0, -1, 3}: L_G = mean softplus(-l)
 *   = (0.693147180559945 + 1.313261687518223 + 0.048587351573742)/3
 *   = 2.054996219651910/3 = 0.684998739883970
 * dL/dl = -sigmoid(-l)/3 = {-0.166666666666667, -0.731058578630005/3 = -0.243686192876668,
 *                           -0.047425873177567/3 = -0.015808624392522} */
static void test_nonsaturating_g_values(void **state)
{
    const float fake[3] = {0.0f, -1.0f, 3.0f};
    float g[3];
    double loss = nonsaturating.vt->g_loss(fake, 3, g);
    assert_float_equal(loss, 0.684998739883970, 1e-9);
    assert_float_equal(g[0], -0.166666666666667, 1e-7);
    assert_float_equal(g[1], -0.243686192876668, 1e-7);
    assert_float_equal(g[2], -0.015808624392522, 1e-7);
}

/* ---- finite differences ---------------------------------------------------- */

typedef struct fd_ctx {
    const agon_loss_vtable *vt;
    size_t n_real;      /* d_loss: x = real logits then fake logits */
} fd_ctx;

static double d_loss_fn(void *ctx, float *x, size_t n)
{
    fd_ctx *c = ctx;
    return c->vt->d_loss(x, c->n_real, x + c->n_real, n - c->n_real, NULL, NULL);
}

static double g_loss_fn(void *ctx, float *x, size_t n)
{
    fd_ctx *c = ctx;
    return c->vt->g_loss(x, n, NULL);
}

/* Logits over the range where the sigmoid bends, with n_real != n_fake so a
 * wrong 1/n would show.  eps = 2^-7 keeps x +- eps exact in float for
 * |x| < 8, so the difference quotient only carries its O(eps^2) error. */
static void check_grads(const agon_loss_vtable *vt)
{
    enum { NR = 5, NF = 7 };
    float x[NR + NF];
    float g[NR + NF];
    agon_rng rng;
    agon_rng_seed(&rng, 42, "test_losses");
    agon_rng_fill_uniform(&rng, x, NR + NF, -6.0f, 6.0f);

    fd_ctx ctx = {vt, NR};
    vt->d_loss(x, NR, x + NR, NF, g, g + NR);
    agon_test_check_grad(d_loss_fn, &ctx, x, NR + NF, g, 0.0078125, 1e-6, 1e-4);

    vt->g_loss(x, NF, g);
    agon_test_check_grad(g_loss_fn, &ctx, x, NF, g, 0.0078125, 1e-6, 1e-4);
}

static void test_gradients_minimax(void **state)
{
    check_grads(minimax.vt);
}

static void test_gradients_nonsaturating(void **state)
{
    check_grads(nonsaturating.vt);
}

/* D(G(z)) = 0.01, i.e. logit log(0.01/0.99): the minimax generator gets a
 * per-sample gradient of -D = -0.01, the non-saturating one -(1-D) = -0.99. */
static void test_saturation(void **state)
{
    const float l = (float)log(0.01 / 0.99);
    float g;
    minimax.vt->g_loss(&l, 1, &g);
    assert_float_equal(g, -0.01, 1e-6);
    nonsaturating.vt->g_loss(&l, 1, &g);
    assert_float_equal(g, -0.99, 1e-6);
    /* log(1 - 0.01) = -0.010050335853501 and -log(0.01) = 4.605170185988091 */
    assert_float_equal(minimax.vt->g_loss(&l, 1, NULL), -0.010050335853501, 1e-6);
    assert_float_equal(nonsaturating.vt->g_loss(&l, 1, NULL), 4.605170185988091, 1e-6);
}

/* At |l| = 1000 a naive sigmoid or log(1 + exp(l)) overflows.  softplus(1000)
 * = 1000 and softplus(-1000) = 0 exactly in double; sigmoid(+-1000) = 1, 0. */
static void test_extreme_logits(void **state)
{
    const float pos = 1000.0f, neg = -1000.0f;
    const loaded_loss *losses[2] = {&minimax, &nonsaturating};
    for (int i = 0; i < 2; i++) {
        const agon_loss_vtable *vt = losses[i]->vt;
        float dr, df;
        /* D confidently right: no loss, no gradient. */
        assert_float_equal(vt->d_loss(&pos, 1, &neg, 1, &dr, &df), 0.0, 1e-12);
        assert_float_equal(dr, 0.0, 1e-12);
        assert_float_equal(df, 0.0, 1e-12);
        /* D confidently wrong: loss 1000 + 1000, gradients -1 and +1. */
        assert_float_equal(vt->d_loss(&neg, 1, &pos, 1, &dr, &df), 2000.0, 1e-9);
        assert_float_equal(dr, -1.0, 1e-12);
        assert_float_equal(df, 1.0, 1e-12);
        float g;
        assert_true(isfinite(vt->g_loss(&pos, 1, &g)) && isfinite(g));
        assert_true(isfinite(vt->g_loss(&neg, 1, &g)) && isfinite(g));
    }
    float g;
    /* minimax: L = -softplus(l) */
    assert_float_equal(minimax.vt->g_loss(&pos, 1, &g), -1000.0, 1e-9);
    assert_float_equal(g, -1.0, 1e-12);
    assert_float_equal(minimax.vt->g_loss(&neg, 1, &g), 0.0, 1e-12);
    assert_float_equal(g, 0.0, 1e-12);
    /* nonsaturating: L = softplus(-l) */
    assert_float_equal(nonsaturating.vt->g_loss(&pos, 1, &g), 0.0, 1e-12);
    assert_float_equal(g, 0.0, 1e-12);
    assert_float_equal(nonsaturating.vt->g_loss(&neg, 1, &g), 1000.0, 1e-9);
    assert_float_equal(g, -1.0, 1e-12);
}

/* The two plugins differ only in the generator loss. */
static void test_same_d_loss(void **state)
{
    float real[4] = {-3.5f, 0.25f, 1.0f, 9.0f};
    float fake[2] = {-0.5f, 2.0f};
    float dr1[4], df1[2], dr2[4], df2[2];
    double a = minimax.vt->d_loss(real, 4, fake, 2, dr1, df1);
    double b = nonsaturating.vt->d_loss(real, 4, fake, 2, dr2, df2);
    assert_float_equal(a, b, 0.0);
    assert_memory_equal(dr1, dr2, sizeof dr1);
    assert_memory_equal(df1, df2, sizeof df1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_d_loss_values),
        cmocka_unit_test(test_minimax_g_values),
        cmocka_unit_test(test_nonsaturating_g_values),
        cmocka_unit_test(test_gradients_minimax),
        cmocka_unit_test(test_gradients_nonsaturating),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_extreme_logits),
        cmocka_unit_test(test_same_d_loss),
    };
    return cmocka_run_group_tests_name("losses", tests, setup, teardown);
}
