/* The one place agon talks to BLAS (OpenBLAS through CBLAS).
 *
 * Keeping every BLAS call here means the thread count and kernel choice,
 * which both change result bits, are controlled and recorded in one spot. */
#include "agon/tensor.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

void agon_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
               float *c, int64_t ldc)
{
    assert(m >= 0 && n >= 0 && k >= 0);
    assert(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX);
    assert(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
    assert(ldc >= (n > 1 ? n : 1));
    assert(lda >= ((trans_a ? m : k) > 1 ? (trans_a ? m : k) : 1));
    assert(ldb >= ((trans_b ? k : n) > 1 ? (trans_b ? k : n) : 1));
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        /* An empty product leaves beta * C; doing it here keeps the
         * beta == 0 case free of NaNs already sitting in C. */
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void agon_blas_set_threads(int threads)
{
    assert(threads >= 1);
    openblas_set_num_threads(threads);
}

int agon_blas_get_threads(void)
{
    return openblas_get_num_threads();
}

static char describe_buf[512];
static pthread_once_t describe_once = PTHREAD_ONCE_INIT;

static void describe_init(void)
{
    const char *config = openblas_get_config();
    const char *core = openblas_get_corename();
    int len = (int)strlen(config ? config : "OpenBLAS");
    /* OpenBLAS builds its config string from pieces that may leave a
     * trailing space. */
    while (config && len > 0 && isspace((unsigned char)config[len - 1]))
        len--;
    snprintf(describe_buf, sizeof describe_buf, "%.*s (core %s)", len,
             config ? config : "OpenBLAS", core ? core : "unknown");
}

const char *agon_blas_describe(void)
{
    pthread_once(&describe_once, describe_init);
    return describe_buf;
}
