/* agon_epoch_sampler: every index once per epoch, the documented
 * Fisher-Yates order across epoch boundaries, determinism, the place in
 * the epoch carried by the rng, argument errors word for word,
 * and no allocation in next. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agon/sampler.h"
#include "alloc_count.h"
#include "test_util.h"

/* The documented order of one epoch, written out independently. */
static void reference_epoch(agon_rng *rng, int64_t size, int64_t *perm)
{
    for (int64_t i = 0; i < size; i++)
        perm[i] = i;
    for (int64_t i = size - 1; i > 0; i--) {
        int64_t j = (int64_t)agon_rng_below(rng, (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static agon_epoch_sampler *create_ok(int64_t size)
{
    agon_error err = {0};
    agon_epoch_sampler *s = agon_epoch_sampler_create(size, &err);
    assert_non_null(s);
    assert_int_equal(err.code, 0);
    return s;
}

static void draw(agon_epoch_sampler *s, agon_rng *rng, int64_t n, int64_t *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = agon_epoch_sampler_next(s, rng);
}

static void test_each_index_once_per_epoch(void **st)
{
    (void)st;
    enum { SIZE = 37, EPOCHS = 5 };
    agon_epoch_sampler *s = create_ok(SIZE);
    agon_rng rng;
    agon_rng_seed(&rng, 11, "data");
    int64_t got[EPOCHS * SIZE];
    draw(s, &rng, EPOCHS * SIZE, got);
    int shuffled = 0;
    for (int e = 0; e < EPOCHS; e++) {
        int seen[SIZE] = {0};
        for (int i = 0; i < SIZE; i++) {
            int64_t k = got[e * SIZE + i];
            assert_true(k >= 0 && k < SIZE);
            seen[k]++;
            shuffled += k != i;
        }
        for (int k = 0; k < SIZE; k++)
            assert_int_equal(seen[k], 1);
    }
    assert_true(shuffled > 0);
    /* Each epoch is shuffled afresh. */
    for (int e = 1; e < EPOCHS; e++)
        assert_memory_not_equal(got, got + e * SIZE, SIZE * sizeof got[0]);
    agon_epoch_sampler_destroy(s);
}

/* Three and a half epochs match the reference, and the rng has made
 * exactly the draws of four permutations: nothing else. */
static void test_order_across_epoch_boundaries(void **st)
{
    (void)st;
    enum { SIZE = 10, N = 35 };
    agon_epoch_sampler *s = create_ok(SIZE);
    agon_rng rng, ref;
    agon_rng_seed(&rng, 42, "data");
    agon_rng_seed(&ref, 42, "data");
    int64_t got[N], want[4 * SIZE];
    draw(s, &rng, N, got);
    for (int e = 0; e < 4; e++)
        reference_epoch(&ref, SIZE, want + e * SIZE);
    assert_memory_equal(got, want, sizeof got);
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);
    /* The rest of the fourth epoch draws nothing; its end starts a fifth. */
    int64_t rest[SIZE - N % SIZE];
    draw(s, &rng, SIZE - N % SIZE, rest);
    assert_memory_equal(rest, want + N, sizeof rest);
    assert_memory_equal(rng.s, ref.s, sizeof rng.s);
    int64_t fifth[SIZE];
    reference_epoch(&ref, SIZE, fifth);
    assert_int_equal(agon_epoch_sampler_next(s, &rng), fifth[0]);
    agon_epoch_sampler_destroy(s);
}

static void test_same_seed_same_order(void **st)
{
    (void)st;
    enum { SIZE = 20, N = 70 };
    agon_epoch_sampler *s1 = create_ok(SIZE), *s2 = create_ok(SIZE);
    agon_rng a, b, c;
    agon_rng_seed(&a, 7, "data");
    agon_rng_seed(&b, 7, "data");
    agon_rng_seed(&c, 8, "data");
    int64_t x[N], y[N], z[N];
    draw(s1, &a, N, x);
    draw(s2, &b, N, y);
    assert_memory_equal(x, y, sizeof x);
    agon_epoch_sampler_destroy(s2);
    s2 = create_ok(SIZE);
    draw(s2, &c, N, z);
    assert_memory_not_equal(x, z, sizeof x);
    agon_epoch_sampler_destroy(s1);
    agon_epoch_sampler_destroy(s2);
}

/* Draws with other rngs, some crossing their own epochs, leave one rng's
 * walk exactly as it is alone. */
static void test_rngs_are_independent(void **st)
{
    (void)st;
    enum { SIZE = 50, N = 120 };
    int64_t alone[N], mixed[N], junk[40];
    agon_rng a, b, c;
    agon_epoch_sampler *s = create_ok(SIZE);
    agon_rng_seed(&a, 3, "data");
    draw(s, &a, N, alone);
    agon_epoch_sampler_destroy(s);

    s = create_ok(SIZE);
    agon_rng_seed(&a, 3, "data");
    agon_rng_seed(&b, 3, "metrics");
    agon_rng_seed(&c, 4, "metrics");
    for (int k = 0; k < N; k += 10) {
        draw(s, &a, 10, mixed + k);
        draw(s, &b, 7, junk);
        draw(s, &c, 33, junk);
    }
    assert_memory_equal(alone, mixed, sizeof alone);
    agon_epoch_sampler_destroy(s);
}

/* Many more rngs than cached orders draw in turn: each walks its own
 * epochs exactly as if it drew alone, since the place lives in the rng and
 * an order pushed out of the cache is drawn again from its origin. */
static void test_many_rngs_keep_their_place(void **st)
{
    (void)st;
    enum { SIZE = 10, K = 3 * AGON_EPOCH_SAMPLER_STREAMS };
    agon_epoch_sampler *s = create_ok(SIZE);
    agon_rng r[K], ref[K];
    int64_t want[K][2 * SIZE];
    for (int i = 0; i < K; i++) {
        agon_rng_seed(&r[i], (uint64_t)i, "metrics");
        ref[i] = r[i];
        reference_epoch(&ref[i], SIZE, want[i]);
        reference_epoch(&ref[i], SIZE, want[i] + SIZE);
    }
    /* Uneven turns, across the epoch boundary. */
    int64_t pos[K] = {0};
    for (int round = 0; round < 2 * SIZE; round++) {
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < 1 + (i + round) % 2 && pos[i] < 2 * SIZE; j++)
                assert_int_equal(agon_epoch_sampler_next(s, &r[i]), want[i][pos[i]++]);
        }
    }
    agon_epoch_sampler_destroy(s);
}

/* A saved copy of an rng, restored later (as from a checkpoint) or used by
 * another sampler of the same data (as in a resumed process), continues
 * exactly where the original was. */
static void test_restored_rng_continues(void **st)
{
    (void)st;
    enum { SIZE = 12 };
    agon_epoch_sampler *s = create_ok(SIZE);
    agon_rng rng;
    agon_rng_seed(&rng, 9, "data");
    int64_t a[3 * SIZE], b[3 * SIZE];
    draw(s, &rng, 5, a);
    agon_rng saved = rng;
    draw(s, &rng, 2 * SIZE, a + 5);
    /* The same sampler, its cache since overwritten by other streams. */
    agon_rng other[AGON_EPOCH_SAMPLER_STREAMS];
    for (int i = 0; i < AGON_EPOCH_SAMPLER_STREAMS; i++) {
        agon_rng_seed(&other[i], (uint64_t)(50 + i), "metrics");
        agon_epoch_sampler_next(s, &other[i]);
    }
    agon_rng restored = saved;
    draw(s, &restored, 2 * SIZE, b + 5);
    assert_memory_equal(a + 5, b + 5, 2 * SIZE * sizeof(int64_t));
    assert_memory_equal(&restored, &rng, sizeof rng);
    /* A fresh sampler (another process). */
    agon_epoch_sampler *fresh = create_ok(SIZE);
    restored = saved;
    draw(fresh, &restored, 2 * SIZE, b + 5);
    assert_memory_equal(a + 5, b + 5, 2 * SIZE * sizeof(int64_t));
    assert_memory_equal(&restored, &rng, sizeof rng);
    agon_epoch_sampler_destroy(fresh);
    agon_epoch_sampler_destroy(s);
}

/* One sample: always index 0, and nothing is drawn from the rng. */
static void test_size_one(void **st)
{
    (void)st;
    agon_epoch_sampler *s = create_ok(1);
    agon_rng rng, fresh;
    agon_rng_seed(&rng, 5, "data");
    fresh = rng;
    for (int i = 0; i < 5; i++)
        assert_int_equal(agon_epoch_sampler_next(s, &rng), 0);
    assert_memory_equal(rng.s, fresh.s, sizeof rng.s);
    agon_epoch_sampler_destroy(s);
}

static void expect_size_error(int64_t size, const char *shown)
{
    agon_error err = {0};
    char want[256];
    assert_null(agon_epoch_sampler_create(size, &err));
    assert_int_equal(err.code, AGON_EINTERNAL);
    snprintf(want, sizeof want,
             "agon_epoch_sampler_create: size %s is not in 1..4294967295; a dataset must "
             "check its number of samples before it creates a sampler",
             shown);
    assert_string_equal(err.message, want);
}

static void test_create_errors(void **st)
{
    (void)st;
    expect_size_error(0, "0");
    expect_size_error(-3, "-3");
    expect_size_error(AGON_EPOCH_SAMPLER_MAX_SIZE + 1, "4294967296");
    assert_null(agon_epoch_sampler_create(0, NULL));
    agon_epoch_sampler_destroy(NULL);
}

static void test_next_does_not_allocate(void **st)
{
    (void)st;
    enum { SIZE = 64, K = AGON_EPOCH_SAMPLER_STREAMS + 1 };
    long before = agon_test_allocs;
    agon_epoch_sampler *s = create_ok(SIZE);
    /* create allocates: a counter that did not move is not counting (a
     * sanitizer or valgrind supplies malloc), and the check says nothing. */
    bool counting = AGON_TEST_COUNTS_ALLOCS && agon_test_allocs > before;
    agon_rng r[K];
    for (int i = 0; i < K; i++)
        agon_rng_seed(&r[i], (uint64_t)i, "data");
    int64_t sum = 0;
    before = agon_test_allocs;
    /* Epoch ends and orders pushed out of the cache included. */
    for (int k = 0; k < 2000; k++)
        sum += agon_epoch_sampler_next(s, &r[k % 7 % K]);
    if (counting)
        assert_int_equal(agon_test_allocs - before, 0);
    assert_true(sum > 0);
    agon_epoch_sampler_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_index_once_per_epoch),
        cmocka_unit_test(test_order_across_epoch_boundaries),
        cmocka_unit_test(test_same_seed_same_order),
        cmocka_unit_test(test_rngs_are_independent),
        cmocka_unit_test(test_many_rngs_keep_their_place),
        cmocka_unit_test(test_restored_rng_continues),
        cmocka_unit_test(test_size_one),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_next_does_not_allocate),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
