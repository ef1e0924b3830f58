/* The one place agon talks to BLAS (OpenBLAS through CBLAS).
 *
 * Keeping every BLAS call here means the thread count and kernel choice,
 * which both change result bits, are controlled and recorded in one spot. */
#include "agon/tensor.h"

#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

/* ---- opt-in GEMM trace ----------------------------------------------------
 * When the environment variable AGON_GEMM_TRACE names a file, every
 * agon_gemm call appends one line "ta tb m n k" to it (ta, tb are 0 or 1),
 * so that bench/gemm_bound.c can count a training step's FLOPs and replay
 * its products alone.  The file is opened once, lazily, with O_APPEND, and
 * each line is one write(2): nothing sits in a buffer when the process
 * ends, whichever way it ends, and lines of concurrent callers never
 * interleave (their order is then unspecified).  A file that cannot be
 * opened turns tracing off silently: library code never prints, and the
 * benchmark notices the missing lines.
 *
 * Unset, the cost is one relaxed load and a branch that always goes the
 * same way: the environment is read once (pthread_once), on the first call. */
enum { TRACE_UNKNOWN, TRACE_OFF, TRACE_ON };
static atomic_int trace_state = TRACE_UNKNOWN;
static pthread_once_t trace_once = PTHREAD_ONCE_INIT;
static int trace_fd = -1;

static void trace_init(void)
{
    const char *path = getenv("AGON_GEMM_TRACE");
    if (path && path[0])
        trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    atomic_store_explicit(&trace_state, trace_fd >= 0 ? TRACE_ON : TRACE_OFF,
                          memory_order_release);
}

static void trace_call(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k)
{
    pthread_once(&trace_once, trace_init);
    if (trace_fd < 0)
        return;
    char line[80];
    int len = snprintf(line, sizeof line, "%d %d %lld %lld %lld\n", trans_a ? 1 : 0,
                       trans_b ? 1 : 0, (long long)m, (long long)n, (long long)k);
    if (len > 0 && (size_t)len < sizeof line && write(trace_fd, line, (size_t)len) != len) {
        /* A full disk: stop rather than leave a trace with holes in it. */
        atomic_store_explicit(&trace_state, TRACE_OFF, memory_order_relaxed);
    }
}

/* ---- threads ---------------------------------------------------------------
 * agon runs OpenBLAS single-threaded and splits a large product itself:
 * C is cut into SLABS slabs of whole rows (or whole columns, whichever
 * dimension is longer), rounded to multiples of GEMM_ALIGN, and each slab
 * is one single-threaded cblas_sgemm; thread t of T computes slabs t, t+T,
 * ...  on a small persistent pool.
 *   - Why: OpenBLAS's kernels round differently at different positions of
 *     a product (measured: splitting a product in two changes some bits),
 *     so its 1- and 2-thread results differ.  Here the cut depends on the
 *     product's shape only, never on the thread count, so each element is
 *     computed the same way and a run gives the same bits at any number of
 *     threads.
 *   - Workers spin briefly between products and only then sleep, since a
 *     GAN step issues hundreds of products in quick succession.
 * Products under PARALLEL_MIN_FLOPS stay on the calling thread. */
#define SLABS 4
#define GEMM_ALIGN 16
#define PARALLEL_MIN_FLOPS 2.0e6
#define SPIN_ROUNDS 200000

typedef struct gemm_job {
    bool trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int64_t lda, ldb, ldc;
    bool split_rows;
    int64_t cut[SLABS + 1];         /* slab s is [cut[s], cut[s+1]) */
} gemm_job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    int threads;                    /* including the caller */
    int started;                    /* workers running */
    gemm_job job;
    atomic_uint_fast64_t generation;
    atomic_int pending;             /* workers still on the current job */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
           .done = PTHREAD_COND_INITIALIZER, .threads = 1};

/* OpenBLAS's own threads are never used (see above), whatever
 * OPENBLAS_NUM_THREADS says. */
static pthread_once_t single_once = PTHREAD_ONCE_INIT;

static void make_openblas_single(void)
{
    openblas_set_num_threads(1);
}

static void sgemm_plain(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

/* Slab t of the job: rows of C come from rows of op(A), columns of C from
 * columns of op(B). */
static void run_slab(const gemm_job *j, int t)
{
    int64_t lo = j->cut[t], len = j->cut[t + 1] - lo;
    assert(t < SLABS);
    if (len <= 0)
        return;
    if (j->split_rows) {
        const float *a = j->trans_a ? j->a + lo : j->a + lo * j->lda;
        sgemm_plain(j->trans_a, j->trans_b, len, j->n, j->k, j->alpha, a, j->lda, j->b, j->ldb,
                    j->beta, j->c + lo * j->ldc, j->ldc);
    } else {
        const float *b = j->trans_b ? j->b + lo * j->ldb : j->b + lo;
        sgemm_plain(j->trans_a, j->trans_b, j->m, len, j->k, j->alpha, j->a, j->lda, b, j->ldb,
                    j->beta, j->c + lo, j->ldc);
    }
}

static void *worker_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t gen = atomic_load_explicit(&pool.generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < SPIN_ROUNDS; spin++)
            gen = atomic_load_explicit(&pool.generation, memory_order_acquire);
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((gen = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        for (int slab = t; t < pool.threads && slab < SLABS; slab += pool.threads)
            run_slab(&pool.job, slab);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Cuts [0, len) into `parts` slabs of multiples of GEMM_ALIGN (the last
 * takes the rest). */
static void cut_evenly(int64_t *cut, int64_t len, int parts)
{
    int64_t blocks = (len + GEMM_ALIGN - 1) / GEMM_ALIGN;
    for (int t = 0; t <= parts; t++) {
        int64_t at = (blocks * t / parts) * GEMM_ALIGN;
        cut[t] = at < len ? at : len;
    }
}

static void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc)
{
    gemm_job *j = &pool.job;
    *j = (gemm_job){.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k,
                    .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c,
                    .lda = lda, .ldb = ldb, .ldc = ldc, .split_rows = m >= n};
    cut_evenly(j->cut, j->split_rows ? m : n, SLABS);
    if (pool.threads == 1) {
        for (int slab = 0; slab < SLABS; slab++)
            run_slab(j, slab);
        return;
    }
    int workers = pool.started;
    atomic_store_explicit(&pool.pending, workers, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int slab = 0; slab < SLABS; slab += pool.threads)
        run_slab(j, slab);
    /* Spin first: the other slabs usually finish at about the same time. */
    for (int spin = 0; spin < SPIN_ROUNDS; spin++) {
        if (atomic_load_explicit(&pool.pending, memory_order_acquire) == 0)
            return;
    }
    pthread_mutex_lock(&pool.lock);
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
}

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
    if (atomic_load_explicit(&trace_state, memory_order_relaxed) != TRACE_OFF)
        trace_call(trans_a, trans_b, m, n, k);
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
    pthread_once(&single_once, make_openblas_single);
    if (2.0 * (double)m * (double)n * (double)k >= PARALLEL_MIN_FLOPS &&
        (m >= n ? m : n) >= SLABS * GEMM_ALIGN)
        gemm_parallel(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        sgemm_plain(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void agon_blas_set_threads(int threads)
{
    assert(threads >= 1);
    /* More threads than slabs would have nothing to do. */
    if (threads > SLABS)
        threads = SLABS;
    pthread_once(&single_once, make_openblas_single);
    pthread_mutex_lock(&pool.lock);
    /* Workers are started once and kept; with fewer threads the extra
     * ones skip every job. */
    while (pool.started < threads - 1) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, worker_main, (void *)(intptr_t)(pool.started + 1)) != 0)
            break;
        pthread_detach(tid);
        pool.started++;
    }
    pool.threads = pool.started + 1 < threads ? pool.started + 1 : threads;
    pthread_mutex_unlock(&pool.lock);
}

int agon_blas_get_threads(void)
{
    return pool.threads;
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

/* ---- symmetric eigen-decomposition (LAPACK dsyevr) -------------------------
 * dsyevr (relatively robust representations) is the fastest of LAPACK's
 * symmetric drivers when all eigenpairs are wanted, and accurate for the
 * covariance matrices the metrics feed it.  OpenBLAS exports the Fortran
 * symbol; there is no LAPACKE here, so it is called directly: every
 * argument by reference, and gfortran's hidden lengths of the three
 * character arguments at the end. */
#include <float.h>
#include <math.h>

#include "agon/stats.h"

void dsyevr_(const char *jobz, const char *range, const char *uplo, const blasint *n, double *a,
             const blasint *lda, const double *vl, const double *vu, const blasint *il,
             const blasint *iu, const double *abstol, blasint *m, double *w, double *z,
             const blasint *ldz, blasint *isuppz, double *work, const blasint *lwork,
             blasint *iwork, const blasint *liwork, blasint *info, size_t jobz_len,
             size_t range_len, size_t uplo_len);

int agon_sym_eigen(int64_t n, const double *a, double *w, double *vectors, agon_error *err)
{
    assert(n >= 0 && (n == 0 || (a && w)));
    if (n == 0)
        return 0;
    if (n > INT_MAX || (uint64_t)n > SIZE_MAX / sizeof(double) / (uint64_t)n)
        return agon_error_set(err, AGON_ENOMEM,
                              "symmetric eigen-decomposition: a %lld x %lld matrix is too large "
                              "for LAPACK; reduce the dimension",
                              (long long)n, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j <= i; j++) {
            if (!isfinite(a[i * n + j]))
                return agon_error_set(err, AGON_EDATA,
                                      "symmetric eigen-decomposition: a[%lld, %lld] = %g is not "
                                      "finite; pass a matrix of finite values",
                                      (long long)i, (long long)j, a[i * n + j]);
        }
    }

    size_t nn = (size_t)n * (size_t)n;
    double *acopy = malloc(nn * sizeof *acopy);
    double *z = vectors ? malloc(nn * sizeof *z) : NULL;
    blasint *isuppz = malloc(2 * (size_t)n * sizeof *isuppz);
    double *work = NULL;
    blasint *iwork = NULL;
    int rc = 0;
    if (!acopy || (vectors && !z) || !isuppz) {
        rc = agon_error_set(err, AGON_ENOMEM,
                            "symmetric eigen-decomposition: out of memory for a %lld x %lld "
                            "matrix; reduce the dimension",
                            (long long)n, (long long)n);
        goto done;
    }
    /* Row-major lower triangle = column-major upper triangle. */
    memcpy(acopy, a, nn * sizeof *acopy);

    const char jobz = vectors ? 'V' : 'N', range = 'A', uplo = 'U';
    const blasint bn = (blasint)n, ldz = vectors ? (blasint)n : 1, zero = 0;
    const double vzero = 0.0;
    /* The safe minimum asks for the highest accuracy dsyevr can give. */
    const double abstol = DBL_MIN;
    blasint found = 0, info = 0, query = -1, liwork, lwork;
    double work_size = 0.0;
    blasint iwork_size = 0;
    double zdummy = 0.0;
    dsyevr_(&jobz, &range, &uplo, &bn, acopy, &bn, &vzero, &vzero, &zero, &zero, &abstol, &found,
            w, z ? z : &zdummy, &ldz, isuppz, &work_size, &query, &iwork_size, &query, &info, 1,
            1, 1);
    if (info != 0) {
        rc = agon_error_set(err, AGON_ENUMERIC,
                            "symmetric eigen-decomposition: LAPACK dsyevr workspace query failed "
                            "(info %d) for n = %lld; this is a bug in agon, please report it",
                            (int)info, (long long)n);
        goto done;
    }
    lwork = (blasint)work_size;
    liwork = iwork_size;
    work = malloc((size_t)lwork * sizeof *work);
    iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        rc = agon_error_set(err, AGON_ENOMEM,
                            "symmetric eigen-decomposition: out of memory for LAPACK's workspace "
                            "(n = %lld); reduce the dimension",
                            (long long)n);
        goto done;
    }
    dsyevr_(&jobz, &range, &uplo, &bn, acopy, &bn, &vzero, &vzero, &zero, &zero, &abstol, &found,
            w, z ? z : &zdummy, &ldz, isuppz, work, &lwork, iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || found != bn) {
        rc = agon_error_set(err, AGON_ENUMERIC,
                            "symmetric eigen-decomposition: LAPACK dsyevr failed (info %d, %d of "
                            "%lld eigenvalues found); check the matrix for extreme values",
                            (int)info, (int)found, (long long)n);
        goto done;
    }
    if (vectors) {
        /* z is column-major: z[j*n + i] is component i of eigenvector j. */
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n; j++)
                vectors[i * n + j] = z[j * n + i];
        }
    }

done:
    free(iwork);
    free(work);
    free(isuppz);
    free(z);
    free(acopy);
    return rc;
}
