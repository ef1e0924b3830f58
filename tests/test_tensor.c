/* Shapes, tensor helpers, arenas and agon_gemm. */
#include "test_util.h"

#include <math.h>

#include "agon/rng.h"
#include "agon/tensor.h"

/* ---- shapes ---------------------------------------------------------------- */

static void test_shape_numel_make(void **st)
{
    (void)st;
    agon_shape scalar = agon_shape_make(0, NULL);
    assert_int_equal(scalar.ndim, 0);
    assert_int_equal(agon_shape_numel(&scalar), 1);

    agon_shape s = agon_shape_make(3, (int64_t[]){2, 3, 4});
    assert_int_equal(s.ndim, 3);
    assert_int_equal(s.dim[0], 2);
    assert_int_equal(s.dim[1], 3);
    assert_int_equal(s.dim[2], 4);
    assert_int_equal(agon_shape_numel(&s), 24);

    agon_tensor t = {NULL, s};
    assert_int_equal(agon_tensor_numel(&t), 24);
}

static void test_shape_batched_equal(void **st)
{
    (void)st;
    agon_shape img = agon_shape_make(3, (int64_t[]){1, 28, 28});
    agon_shape b = agon_shape_batched(64, &img);
    assert_int_equal(b.ndim, 4);
    assert_int_equal(b.dim[0], 64);
    assert_int_equal(b.dim[1], 1);
    assert_int_equal(b.dim[2], 28);
    assert_int_equal(b.dim[3], 28);
    assert_int_equal(agon_shape_numel(&b), 64 * 784);

    agon_shape scalar = agon_shape_make(0, NULL);
    agon_shape bs = agon_shape_batched(5, &scalar);
    assert_int_equal(bs.ndim, 1);
    assert_int_equal(bs.dim[0], 5);

    agon_shape a1 = agon_shape_make(2, (int64_t[]){2, 3});
    agon_shape a2 = agon_shape_make(2, (int64_t[]){2, 3});
    agon_shape a3 = agon_shape_make(2, (int64_t[]){3, 2});
    agon_shape a4 = agon_shape_make(3, (int64_t[]){2, 3, 1});
    assert_true(agon_shape_equal(&a1, &a2));
    assert_false(agon_shape_equal(&a1, &a3));
    /* Same numel and leading dims, different rank. */
    assert_false(agon_shape_equal(&a1, &a4));
    assert_true(agon_shape_equal(&scalar, &scalar));
    assert_false(agon_shape_equal(&scalar, &bs));
}

static void test_shape_format(void **st)
{
    (void)st;
    char buf[64];
    agon_shape s = agon_shape_make(2, (int64_t[]){2, 128});
    assert_string_equal(agon_shape_format(&s, buf, sizeof buf), "[2, 128]");
    agon_shape one = agon_shape_make(1, (int64_t[]){7});
    assert_string_equal(agon_shape_format(&one, buf, sizeof buf), "[7]");
    agon_shape scalar = agon_shape_make(0, NULL);
    assert_string_equal(agon_shape_format(&scalar, buf, sizeof buf), "[]");
    agon_shape big = agon_shape_make(5, (int64_t[]){10000000000LL, 1, 2, 3, 4});
    assert_string_equal(agon_shape_format(&big, buf, sizeof buf), "[10000000000, 1, 2, 3, 4]");

    /* Truncation keeps the buffer NUL-terminated and writes nothing past cap. */
    char small[8];
    memset(small, 'x', sizeof small);
    agon_shape_format(&s, small, 6);
    assert_string_equal(small, "[2, 1");
    assert_int_equal(small[6], 'x');
    assert_int_equal(small[7], 'x');
}

/* ---- tensor helpers ---------------------------------------------------------- */

static void test_tensor_helpers(void **st)
{
    (void)st;
    float data[12];
    for (int i = 0; i < 12; i++)
        data[i] = (float)(i + 1);
    agon_tensor t = {data, agon_shape_make(3, (int64_t[]){4, 3, 1})};

    agon_tensor r = agon_tensor_rows(&t, 1, 2);
    assert_ptr_equal(r.data, data + 3);
    assert_int_equal(r.shape.ndim, 3);
    assert_int_equal(r.shape.dim[0], 2);
    assert_int_equal(r.shape.dim[1], 3);
    assert_int_equal(agon_tensor_numel(&r), 6);
    assert_true(r.data[0] == 4.0f);

    /* 1^2 + ... + 12^2 = 12*13*25/6 = 650 */
    assert_true(agon_tensor_sumsq(&t) == 650.0);
    /* rows 1..2 hold 4..9: 16+25+36+49+64+81 = 271 */
    assert_true(agon_tensor_sumsq(&r) == 271.0);

    assert_true(agon_tensor_all_finite(&t));
    data[5] = NAN;
    assert_false(agon_tensor_all_finite(&t));
    data[5] = INFINITY;
    assert_false(agon_tensor_all_finite(&t));
    data[5] = -INFINITY;
    assert_false(agon_tensor_all_finite(&t));
    data[5] = 6.0f;

    agon_tensor_zero(&r);
    for (int i = 0; i < 12; i++)
        assert_true(data[i] == ((i >= 3 && i < 9) ? 0.0f : (float)(i + 1)));
}

/* ---- arenas ------------------------------------------------------------------ */

static void test_arena_alignment_and_zeroing(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_arena *a = agon_arena_create(4096, &err);
    assert_non_null(a);
    assert_int_equal(agon_arena_block_count(a), 0);
    assert_int_equal(agon_arena_used(a), 0);

    size_t sizes[] = {1, 3, 64, 65, 100, 7, 0, 200};
    size_t total = 0;
    unsigned char *prev_end = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = agon_arena_alloc(a, sizes[i], &err);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        if (prev_end)
            assert_true(p >= prev_end); /* no overlap */
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(p[j], 0);
        memset(p, 0xAB, sizes[i]);
        prev_end = p + sizes[i];
        total += sizes[i];
    }
    assert_int_equal(agon_arena_used(a), total);
    assert_int_equal(agon_arena_block_count(a), 1);

    /* After a reset the dirty memory is handed out again, zeroed. */
    agon_arena_reset(a);
    assert_int_equal(agon_arena_used(a), 0);
    unsigned char *p = agon_arena_alloc(a, 1000, &err);
    assert_non_null(p);
    for (size_t j = 0; j < 1000; j++)
        assert_int_equal(p[j], 0);
    assert_int_equal(agon_arena_block_count(a), 1);
    assert_int_equal(err.code, 0);
    agon_arena_destroy(a);
    agon_arena_destroy(NULL);
}

static void test_arena_blocks_and_reset(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_arena *a = agon_arena_create(4096, &err);
    assert_non_null(a);
    void *first[6];
    for (int round = 0; round < 3; round++) {
        /* 1000 bytes round up to 1024: four fill the 4096-byte block
         * exactly, the fifth needs a second block, then a 10000-byte
         * request gets a block of its own (larger than block_bytes). */
        for (int i = 0; i < 5; i++) {
            void *p = agon_arena_alloc(a, 1000, &err);
            assert_non_null(p);
            if (round == 0)
                first[i] = p;
            else
                assert_ptr_equal(p, first[i]); /* reset reuses the same storage */
            assert_int_equal(agon_arena_block_count(a), round > 0 ? 3 : i < 4 ? 1 : 2);
        }
        unsigned char *big = agon_arena_alloc(a, 10000, &err);
        assert_non_null(big);
        assert_int_equal((uintptr_t)big % 64, 0);
        for (int j = 0; j < 10000; j++)
            assert_int_equal(big[j], 0);
        memset(big, 0x5A, 10000);
        assert_int_equal(agon_arena_block_count(a), 3);
        if (round == 0)
            first[5] = big;
        else
            assert_ptr_equal(big, first[5]);
        assert_int_equal(agon_arena_used(a), 5 * 1000 + 10000);
        agon_arena_reset(a);
    }
    assert_int_equal(agon_arena_block_count(a), 3);
    agon_arena_destroy(a);
}

static void test_arena_default_block_size(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_arena *a = agon_arena_create(0, &err);
    assert_non_null(a);
    /* Exactly 1 MiB fits the default block; one more byte needs another. */
    assert_non_null(agon_arena_alloc(a, (size_t)1 << 20, &err));
    assert_int_equal(agon_arena_block_count(a), 1);
    assert_non_null(agon_arena_alloc(a, 1, &err));
    assert_int_equal(agon_arena_block_count(a), 2);
    agon_arena_destroy(a);
}

static void test_arena_tensor(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_arena *a = agon_arena_create(0, &err);
    agon_tensor t;
    agon_shape s = agon_shape_make(2, (int64_t[]){3, 5});
    assert_int_equal(agon_arena_tensor(a, &t, &s, &err), 0);
    assert_true(agon_shape_equal(&t.shape, &s));
    assert_int_equal((uintptr_t)t.data % 64, 0);
    for (int i = 0; i < 15; i++)
        assert_true(t.data[i] == 0.0f);
    assert_int_equal(agon_arena_used(a), 15 * sizeof(float));
    agon_arena_destroy(a);
}

static void test_arena_too_large(void **st)
{
    (void)st;
    agon_error err = {0};
    agon_arena *a = agon_arena_create(0, &err);
    assert_null(agon_arena_alloc(a, SIZE_MAX - 10, &err));
    assert_int_equal(err.code, AGON_ENOMEM);
    assert_int_equal(agon_arena_block_count(a), 0);
    agon_arena_destroy(a);
}

/* ---- gemm ---------------------------------------------------------------------- */

/* Element (i, j) of op(X) for X stored row-major with row stride ld. */
static double op_at(const float *x, int64_t ld, bool trans, int64_t i, int64_t j)
{
    return trans ? x[j * ld + i] : x[i * ld + j];
}

static void check_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       float beta, int64_t pad)
{
    /* Stored sizes: A is m x k (or k x m when transposed), likewise B. */
    int64_t a_rows = ta ? k : m, a_cols = ta ? m : k;
    int64_t b_rows = tb ? n : k, b_cols = tb ? k : n;
    int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
    float *a = malloc((size_t)(a_rows * lda) * sizeof(float));
    float *b = malloc((size_t)(b_rows * ldb) * sizeof(float));
    float *c = malloc((size_t)(m * ldc) * sizeof(float));
    double *want = malloc((size_t)(m * n) * sizeof(double));
    agon_rng rng;
    agon_rng_seed(&rng, 42, "gemm");
    /* Padding holds NaN in A and B: reading it would poison the result. */
    for (int64_t i = 0; i < a_rows * lda; i++)
        a[i] = (i % lda) < a_cols ? (float)(agon_rng_uniform(&rng) * 2.0 - 1.0) : NAN;
    for (int64_t i = 0; i < b_rows * ldb; i++)
        b[i] = (i % ldb) < b_cols ? (float)(agon_rng_uniform(&rng) * 2.0 - 1.0) : NAN;
    for (int64_t i = 0; i < m * ldc; i++)
        c[i] = (i % ldc) < n ? (float)(agon_rng_uniform(&rng) * 2.0 - 1.0) : 12345.0f;

    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < k; p++)
                s += op_at(a, lda, ta, i, p) * op_at(b, ldb, tb, p, j);
            want[i * n + j] = alpha * s + beta * c[i * ldc + j];
        }
    }
    agon_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (j >= n) {
                assert_true(got == 12345.0f); /* padding of C untouched */
                continue;
            }
            double w = want[i * n + j];
            if (fabs(got - w) > 1e-5 * (1.0 + fabs(w)))
                fail_msg("gemm ta=%d tb=%d m=%lld n=%lld k=%lld: C[%lld,%lld] = %.9g, "
                         "expected %.9g",
                         ta, tb, (long long)m, (long long)n, (long long)k, (long long)i,
                         (long long)j, (double)got, w);
        }
    }
    free(a);
    free(b);
    free(c);
    free(want);
}

static void test_gemm_all_transposes(void **st)
{
    (void)st;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(ta, tb, 5, 7, 3, 1.0f, 0.0f, 0);
            check_gemm(ta, tb, 5, 7, 3, 0.5f, -2.0f, 3);
            check_gemm(ta, tb, 1, 9, 13, -1.5f, 1.0f, 2);
            check_gemm(ta, tb, 33, 17, 65, 1.0f, 1.0f, 5);
        }
    }
}

static void test_gemm_empty_k(void **st)
{
    (void)st;
    float c[4] = {1, 2, 3, 4};
    float dummy = 0.0f;
    agon_gemm(false, false, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 3.0f, c, 2);
    assert_true(c[0] == 3.0f && c[1] == 6.0f && c[2] == 9.0f && c[3] == 12.0f);
    float d[4] = {NAN, 1, 2, 3};
    agon_gemm(false, false, 2, 2, 0, 1.0f, &dummy, 1, &dummy, 2, 0.0f, d, 2);
    assert_true(d[0] == 0.0f && d[1] == 0.0f && d[2] == 0.0f && d[3] == 0.0f);
}

static void test_gemm_deterministic(void **st)
{
    (void)st;
    enum { M = 64, N = 48, K = 80 };
    static float a[M * K], b[K * N], c1[M * N], c2[M * N];
    agon_rng rng;
    agon_rng_seed(&rng, 7, "det");
    agon_rng_fill_uniform(&rng, a, M * K, -1.0f, 1.0f);
    agon_rng_fill_uniform(&rng, b, K * N, -1.0f, 1.0f);
    agon_gemm(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c1, N);
    agon_gemm(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c2, N);
    assert_memory_equal(c1, c2, sizeof c1);
}

static void test_blas_threads_and_describe(void **st)
{
    (void)st;
    int before = agon_blas_get_threads();
    assert_true(before >= 1);
    agon_blas_set_threads(2);
    assert_int_equal(agon_blas_get_threads(), 2);
    agon_blas_set_threads(1);
    assert_int_equal(agon_blas_get_threads(), 1);
    agon_blas_set_threads(before);

    const char *d = agon_blas_describe();
    assert_non_null(d);
    assert_true(strncmp(d, "OpenBLAS ", 9) == 0);
    assert_non_null(strstr(d, " (core "));
    assert_int_equal(d[strlen(d) - 1], ')');
    assert_ptr_equal(agon_blas_describe(), d); /* static storage */
}

/* Products big enough to be cut into slabs (core/blas.c): every transpose
 * combination, cut along rows (m >= n) and along columns (m < n), sizes
 * that are not multiples of the slab alignment and padded leading
 * dimensions, against a double-precision reference; and the same bits at
 * 1, 2, 3 and 4 threads. */
static void test_gemm_slabs(void **st)
{
    (void)st;
    static const int64_t shapes[][3] = {{301, 77, 129}, {45, 333, 150}};
    enum { PAD = 3 };
    for (size_t s = 0; s < 2; s++) {
        const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int ta = 0; ta < 2; ta++) {
            for (int tb = 0; tb < 2; tb++) {
                const int64_t lda = (ta ? m : k) + PAD, ldb = (tb ? k : n) + PAD, ldc = n + PAD;
                float *a = malloc((size_t)((ta ? k : m) * lda) * sizeof(float));
                float *b = malloc((size_t)((tb ? n : k) * ldb) * sizeof(float));
                float *c[4];
                for (int i = 0; i < (ta ? k : m) * lda; i++)
                    a[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
                for (int i = 0; i < (tb ? n : k) * ldb; i++)
                    b[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
                for (int t = 0; t < 4; t++) {
                    c[t] = malloc((size_t)(m * ldc) * sizeof(float));
                    for (int64_t i = 0; i < m * ldc; i++)
                        c[t][i] = 0.5f;     /* beta = 2 must scale it; padding stays */
                    agon_blas_set_threads(t + 1);
                    agon_gemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, 2.0f, c[t], ldc);
                }
                agon_blas_set_threads(1);
                for (int64_t i = 0; i < m; i++) {
                    for (int64_t j = 0; j < ldc; j++) {
                        double want = 0.5;
                        if (j < n) {
                            double sum = 0.0;
                            for (int64_t p = 0; p < k; p++)
                                sum += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                                       (double)(tb ? b[j * ldb + p] : b[p * ldb + j]);
                            want = 0.75 * sum + 1.0;
                        }
                        if (fabs(c[0][i * ldc + j] - want) > 1e-3 * (1.0 + fabs(want)))
                            fail_msg("m=%lld n=%lld ta=%d tb=%d: C[%lld][%lld] = %g, want %g",
                                     (long long)m, (long long)n, ta, tb, (long long)i,
                                     (long long)j, (double)c[0][i * ldc + j], want);
                    }
                }
                for (int t = 1; t < 4; t++)
                    assert_memory_equal(c[0], c[t], (size_t)(m * ldc) * sizeof(float));
                for (int t = 0; t < 4; t++)
                    free(c[t]);
                free(a);
                free(b);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_numel_make),
        cmocka_unit_test(test_shape_batched_equal),
        cmocka_unit_test(test_shape_format),
        cmocka_unit_test(test_tensor_helpers),
        cmocka_unit_test(test_arena_alignment_and_zeroing),
        cmocka_unit_test(test_arena_blocks_and_reset),
        cmocka_unit_test(test_arena_default_block_size),
        cmocka_unit_test(test_arena_tensor),
        cmocka_unit_test(test_arena_too_large),
        cmocka_unit_test(test_gemm_all_transposes),
        cmocka_unit_test(test_gemm_empty_k),
        cmocka_unit_test(test_gemm_deterministic),
        cmocka_unit_test(test_blas_threads_and_describe),
        cmocka_unit_test(test_gemm_slabs),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
