/* Named random streams: determinism, independence, distributions. */
#include <math.h>
#include <string.h>

#include "agon/rng.h"
#include "test_util.h"

static void test_same_seed_same_stream(void **st)
{
    (void)st;
    agon_rng a, b;
    agon_rng_seed(&a, 42, "data");
    agon_rng_seed(&b, 42, "data");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(agon_rng_u64(&a), agon_rng_u64(&b));
    for (int i = 0; i < 1000; i++)
        assert_true(agon_rng_normal(&a) == agon_rng_normal(&b));
}

static void test_streams_differ(void **st)
{
    (void)st;
    const char *names[] = {"init", "data", "latent", "metrics/mode_coverage"};
    uint64_t first[8];
    int k = 0;
    for (int s = 0; s < 2; s++) {
        for (int n = 0; n < 4; n++) {
            agon_rng r;
            agon_rng_seed(&r, (uint64_t)s, names[n]);
            first[k++] = agon_rng_u64(&r);
        }
    }
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            assert_true(first[i] != first[j]);
}

/* Copying the struct is a checkpoint: the copy continues identically. */
static void test_state_is_the_struct(void **st)
{
    (void)st;
    agon_rng a;
    agon_rng_seed(&a, 7, "latent");
    for (int i = 0; i < 17; i++)
        agon_rng_normal(&a);
    agon_rng b;
    memcpy(&b, &a, sizeof a);
    for (int i = 0; i < 100; i++)
        assert_true(agon_rng_normal(&a) == agon_rng_normal(&b));
}

static void test_uniform_and_below(void **st)
{
    (void)st;
    agon_rng r;
    agon_rng_seed(&r, 1, "u");
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = agon_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(fabs(sum / n - 0.5) < 0.005);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t k = agon_rng_below(&r, 7);
        assert_true(k < 7);
        counts[k]++;
    }
    /* Each bin: 10000 expected, sd about 93. */
    for (int k = 0; k < 7; k++)
        assert_true(abs(counts[k] - 10000) < 500);
    float x[1000];
    agon_rng_fill_uniform(&r, x, 1000, -1.0f, 1.0f);
    for (int i = 0; i < 1000; i++)
        assert_true(x[i] >= -1.0f && x[i] < 1.0f);
}

/* Moments and tail probabilities of a million normals against N(0, 1):
 * a wrong ziggurat table or tail shows up in the kurtosis or the tails. */
static void test_normal_distribution(void **st)
{
    (void)st;
    agon_rng r;
    agon_rng_seed(&r, 3, "normal");
    const int n = 1000000;
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
    int beyond1 = 0, beyond2 = 0, beyond3 = 0, beyond_r = 0, negative = 0;
    for (int i = 0; i < n; i++) {
        double v = agon_rng_normal(&r);
        assert_true(isfinite(v));
        m1 += v;
        m2 += v * v;
        m3 += v * v * v;
        m4 += v * v * v * v;
        double a = fabs(v);
        beyond1 += a > 1.0;
        beyond2 += a > 2.0;
        beyond3 += a > 3.0;
        beyond_r += a > 3.6541528853610088;
        negative += v < 0;
    }
    m1 /= n;
    m2 /= n;
    m3 /= n;
    m4 /= n;
    assert_true(fabs(m1) < 0.005);
    assert_true(fabs(m2 - 1.0) < 0.006);
    assert_true(fabs(m3) < 0.02);
    assert_true(fabs(m4 - 3.0) < 0.05);
    /* P(|Z| > 1) = 0.317311, > 2 = 0.0455003, > 3 = 0.0026998,
     * > 3.6541529 = 0.000258; binomial sds 0.00047, 0.00021, 0.000052, 0.000016. */
    assert_true(fabs(beyond1 / (double)n - 0.317311) < 0.0025);
    assert_true(fabs(beyond2 / (double)n - 0.0455003) < 0.0011);
    assert_true(fabs(beyond3 / (double)n - 0.0026998) < 0.0003);
    assert_true(fabs(beyond_r / (double)n - 0.000258) < 0.0001);
    assert_true(fabs(negative / (double)n - 0.5) < 0.003);

    float x[10000];
    agon_rng_fill_normal(&r, x, 10000, 5.0f, 0.5f);
    double s = 0;
    for (int i = 0; i < 10000; i++)
        s += x[i];
    assert_true(fabs(s / 10000 - 5.0) < 0.03);
}

/* Only the tail algorithm produces |x| > r (every layer lies inside
 * [0, r)), so its sign is invisible to the moments and the two-sided tail
 * counts above.  Each side holds P(Z > r) = 1.29e-4 of the draws: about
 * 1290 of 10 million, binomial sd 36, so the two counts agree within 10%
 * unless the tail favours one side. */
static void test_normal_tail_sign(void **st)
{
    (void)st;
    const double r = 3.6541528853610088;
    agon_rng rng;
    agon_rng_seed(&rng, 11, "tail");
    long above = 0, below = 0;
    for (long i = 0; i < 10000000; i++) {
        double v = agon_rng_normal(&rng);
        above += v > r;
        below += v < -r;
    }
    print_message("above %ld, below %ld\n", above, below);
    assert_true(above > 1000 && below > 1000);
    long hi = above > below ? above : below;
    long lo = above > below ? below : above;
    assert_true((double)(hi - lo) <= 0.1 * (double)hi);
}

static void test_fnv1a(void **st)
{
    (void)st;
    /* Published FNV-1a 64 test values. */
    assert_true(agon_hash_fnv1a64("") == 0xcbf29ce484222325ull);
    assert_true(agon_hash_fnv1a64("a") == 0xaf63dc4c8601ec8cull);
    assert_true(agon_hash_fnv1a64("foobar") == 0x85944171f73967e8ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_stream),
        cmocka_unit_test(test_streams_differ),
        cmocka_unit_test(test_state_is_the_struct),
        cmocka_unit_test(test_uniform_and_below),
        cmocka_unit_test(test_normal_distribution),
        cmocka_unit_test(test_normal_tail_sign),
        cmocka_unit_test(test_fnv1a),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
