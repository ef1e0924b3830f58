/* What portable bits rest on, each checked rather than assumed:
 *   - the kernels: agon loads OpenBLAS's Haswell kernels itself, whatever
 *     OPENBLAS_CORETYPE says, and their products have the pinned bits at
 *     1 and 2 threads;
 *   - agon's own arithmetic: no multiply-add is fused into an FMA, even in
 *     code compiled for a CPU that has FMA (-ffp-contract=off);
 *   - libm: the functions agon calls give the pinned bits.  glibc picks
 *     their FMA variants on every CPU with AVX2 and FMA (the CPUs portable
 *     mode requires); its SSE2 variants, used on older CPUs, round some
 *     values otherwise (docs/architecture.md, "Portable bits").
 * A digest here is FNV-1a over the raw bits; when one changes on purpose
 * (another glibc, another OpenBLAS), say so in the commit. */
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/platform/x86.h>

#include "agon/tensor.h"

static uint64_t fnv_init(void)
{
    return 1469598103934665603ull;
}

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static bool cpu_is_portable(void)
{
    return CPU_FEATURE_ACTIVE(AVX2) && CPU_FEATURE_ACTIVE(FMA);
}

/* ---- kernels ---------------------------------------------------------------- */

static void test_portable_kernels_whatever_the_environment(void **st)
{
    (void)st;
    if (!cpu_is_portable()) {
        print_message("this CPU lacks AVX2 or FMA: portable kernels cannot run here\n");
        skip();
    }
    /* The first test of this program, so OpenBLAS is not loaded yet: agon
     * must not take the environment's choice. */
    setenv("OPENBLAS_CORETYPE", "Sandybridge", 1);
    agon_error err = {0};
    assert_int_equal(agon_blas_init(AGON_KERNELS_PORTABLE, &err), 0);
    assert_int_equal(agon_blas_kernels(), AGON_KERNELS_PORTABLE);
    assert_string_equal(agon_blas_core(), "Haswell");
    assert_non_null(strstr(agon_blas_describe(), "(core Haswell)"));
    /* It was set only while OpenBLAS loaded. */
    const char *env = getenv("OPENBLAS_CORETYPE");
    assert_string_equal(env ? env : "(unset)", "Sandybridge");
    assert_string_equal(agon_kernels_name(AGON_KERNELS_NATIVE), "native");
    agon_kernels k;
    assert_int_equal(agon_kernels_parse("native", &k), 0);
    assert_int_equal(k, AGON_KERNELS_NATIVE);
    assert_int_equal(agon_kernels_parse("fast", &k), -1);
}

static void test_switching_kernels_is_refused(void **st)
{
    (void)st;
    if (!cpu_is_portable())
        skip();
    agon_error err = {0};
    assert_int_equal(agon_blas_init(AGON_KERNELS_PORTABLE, &err), 0);
    assert_int_equal(agon_blas_init(AGON_KERNELS_NATIVE, &err), AGON_EUSAGE);
    assert_string_equal(err.message,
                        "train.kernels: this process already runs the portable kernels "
                        "(Haswell) and cannot switch to native ones; run each experiment in its "
                        "own process, as agon run does");
}

/* Products of the shapes a GAN step issues (small ones on the calling
 * thread, large ones cut into slabs), in every transpose combination. */
static uint64_t gemm_digest(int threads)
{
    static const int64_t shapes[][3] = {{64, 128, 2},  {64, 2, 128},   {128, 128, 64},
                                        {3, 2000, 150}, {500, 7, 400},  {128, 784, 96},
                                        {256, 256, 256}};
    agon_blas_set_threads(threads);
    uint64_t h = fnv_init();
    uint32_t x = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(sizeof(float) * (size_t)(m * k));
        float *b = malloc(sizeof(float) * (size_t)(k * n));
        float *c = malloc(sizeof(float) * (size_t)(m * n));
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        for (int64_t i = 0; i < m * k; i++) {
            x = x * 1664525u + 1013904223u;
            a[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
        for (int64_t i = 0; i < k * n; i++) {
            x = x * 1664525u + 1013904223u;
            b[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            memset(c, 0, sizeof(float) * (size_t)(m * n));
            agon_gemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.5f, c, n);
            h = fnv(h, c, sizeof(float) * (size_t)(m * n));
        }
        free(a);
        free(b);
        free(c);
    }
    agon_blas_set_threads(1);
    return h;
}

static void test_gemm_bits_pinned(void **st)
{
    (void)st;
    if (!cpu_is_portable())
        skip();
    agon_error err = {0};
    assert_int_equal(agon_blas_init(AGON_KERNELS_PORTABLE, &err), 0);
    uint64_t one = gemm_digest(1), two = gemm_digest(2);
    print_message("agon_gemm digest %016llx (1 thread), %016llx (2 threads)\n",
                  (unsigned long long)one, (unsigned long long)two);
    assert_true(one == two);
    assert_true(one == 0x0ea55ecd154c7f68ull);
}

/* ---- agon's own arithmetic ------------------------------------------------------ */

/* Compiled for FMA, so that a fused multiply-add is there to be had: the
 * flags of the build must keep it apart. */
__attribute__((target("fma"), noinline)) static float square_minus(float x, float c)
{
    return x * x - c;
}

static void test_no_fma_contraction(void **st)
{
    (void)st;
    if (!CPU_FEATURE_ACTIVE(FMA))
        skip();
    /* x*x = 1 + 2^-11 + 2^-24 exactly; rounded to float it is 1 + 2^-11
     * (a tie to even), so the unfused result is 0 and the fused one 2^-24. */
    volatile float x = 1.0f + 0x1p-12f, c = 1.0f + 0x1p-11f;
    float r = square_minus(x, c);
    if (r != 0.0f)
        fail_msg("x*x - c gave %a: the compiler fused it into an FMA, so results would "
                 "depend on the CPU the code was built for; build with -ffp-contract=off",
                 (double)r);
}

/* ---- libm ----------------------------------------------------------------------- */

typedef struct libm_case {
    const char *name;
    uint64_t digest;
} libm_case;

/* glibc 2.36's FMA variants (Debian 12), on AVX2 + FMA CPUs. */
static const libm_case libm_cases[] = {
    {"exp", 0x955d49e067d15f1dull},   {"log", 0x6e5eb987c5b786ceull},
    {"pow", 0xbfe588316c007d90ull},   {"sin", 0x2adb27bda3d3c0ceull},
    {"cos", 0x5b879316a9e0af0cull},   {"log1p", 0x0b9b2dc174523d4dull},
    {"expf", 0x680d2c740c4c4470ull},  {"tanhf", 0x2b11409ce93b8be9ull},
};

static uint64_t mix64(uint64_t h, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return (h ^ u) * 1099511628211ull;
}

static uint64_t mix32(uint64_t h, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (h ^ u) * 1099511628211ull;
}

/* 200,000 arguments over [-50, 50] (sin and cos over [-500, 500]). */
static uint64_t libm_digest(int f)
{
    uint64_t h = fnv_init();
    for (int i = 0; i < 200000; i++) {
        double x = (i - 100000) / 2000.0 + i * 1e-9;
        double ax = fabs(x) + 1e-300;
        switch (f) {
        case 0: h = mix64(h, exp(x)); break;
        case 1: h = mix64(h, log(ax)); break;
        case 2: h = mix64(h, pow(ax, 0.37 + x * 0.001)); break;
        case 3: h = mix64(h, sin(x * 10)); break;
        case 4: h = mix64(h, cos(x * 10)); break;
        case 5: h = mix64(h, log1p(ax)); break;
        case 6: h = mix32(h, expf((float)x)); break;
        default: h = mix32(h, tanhf((float)x)); break;
        }
    }
    return h;
}

static void test_libm_bits_pinned(void **st)
{
    (void)st;
    if (!cpu_is_portable()) {
        print_message("this CPU lacks AVX2 or FMA: glibc uses other libm variants here\n");
        skip();
    }
    int differ = 0;
    for (int f = 0; f < (int)(sizeof libm_cases / sizeof libm_cases[0]); f++) {
        uint64_t got = libm_digest(f);
        if (got != libm_cases[f].digest) {
            print_error("libm %s: digest %016llx, pinned %016llx\n", libm_cases[f].name,
                        (unsigned long long)got, (unsigned long long)libm_cases[f].digest);
            differ++;
        }
    }
    if (differ)
        fail_msg("%d libm functions round otherwise than the pinned glibc 2.36 FMA variants: "
                 "this libm gives runs other bits than tests/digests expect",
                 differ);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_portable_kernels_whatever_the_environment),
        cmocka_unit_test(test_switching_kernels_is_refused),
        cmocka_unit_test(test_gemm_bits_pinned),
        cmocka_unit_test(test_no_fma_contraction),
        cmocka_unit_test(test_libm_bits_pinned),
    };
    return cmocka_run_group_tests_name("portability", tests, NULL, NULL);
}
