/* The one place agon talks to BLAS (OpenBLAS through CBLAS).
 *
 * Keeping every BLAS call here means the thread count and kernel choice,
 * which both change result bits, are controlled and recorded in one spot. */
#include "agon/tensor.h"

#include <assert.h>
#include <ctype.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <sys/platform/x86.h>
#endif

/* Only the types and constants of cblas.h are used: libagon does not link
 * OpenBLAS, it loads it (see "loading OpenBLAS" below). */
#include <cblas.h>

/* ---- loading OpenBLAS -------------------------------------------------------
 * OpenBLAS chooses its kernel family once, in its constructor, from the CPU
 * or from OPENBLAS_CORETYPE, and the family decides the rounding of every
 * product (measured: the same ring8 run ends at other figures with the
 * SkylakeX or Cooperlake kernels than with the Haswell ones).  To choose the
 * family itself, agon does not link OpenBLAS: it dlopens it on first use,
 * with OPENBLAS_CORETYPE set for the duration of the dlopen only.
 *   - portable: the Haswell kernels (AVX2 + FMA).  Every x86-64 CPU with AVX2
 *     and FMA runs them with the same results, so a run gives the same bits
 *     on Intel since Haswell and AMD since Zen, whatever kernels OpenBLAS
 *     would pick for the machine.
 *   - native: OpenBLAS's own choice for this CPU (an OPENBLAS_CORETYPE in the
 *     environment still applies), the fastest kernels of the machine.
 * OPENBLAS_NUM_THREADS=1 is set for the dlopen as well: agon never uses
 * OpenBLAS's threads (see "threads" below), so it need not start a pool.
 * The library is looked up at the path the build found it at, then by
 * soname. */
#ifndef AGON_OPENBLAS_LIBRARY
#define AGON_OPENBLAS_LIBRARY "libopenblas.so.0"
#endif
#define OPENBLAS_SONAME "libopenblas.so.0"
#define PORTABLE_CORE "Haswell"

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint,
                         blasint, blasint, float, const float *, blasint, const float *, blasint,
                         float, float *, blasint);
typedef void (*dsyevr_fn)(const char *, const char *, const char *, const blasint *, double *,
                          const blasint *, const double *, const double *, const blasint *,
                          const blasint *, const double *, blasint *, double *, double *,
                          const blasint *, blasint *, double *, const blasint *, blasint *,
                          const blasint *, blasint *, size_t, size_t, size_t);

static struct {
    pthread_mutex_t lock;
    atomic_bool loaded;
    agon_kernels kernels;
    sgemm_fn sgemm;
    dsyevr_fn dsyevr;
    char core[64];
    char describe[512];
} ob = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const kernel_names[AGON_KERNELS_COUNT] = {"portable", "native"};

const char *agon_kernels_name(agon_kernels kernels)
{
    return (unsigned)kernels < AGON_KERNELS_COUNT ? kernel_names[kernels] : "unknown";
}

int agon_kernels_parse(const char *name, agon_kernels *kernels)
{
    for (int k = 0; k < AGON_KERNELS_COUNT; k++) {
        if (strcmp(name, kernel_names[k]) == 0) {
            *kernels = (agon_kernels)k;
            return 0;
        }
    }
    return -1;
}

/* What the CPU lacks of AVX2 and FMA, as glibc sees it: the same view that
 * picks libm's FMA variants, and one that GLIBC_TUNABLES=glibc.cpu.hwcaps
 * can narrow (the tests emulate an older CPU that way). */
static const char *portable_missing(void)
{
#if defined(__x86_64__)
    bool avx2 = CPU_FEATURE_ACTIVE(AVX2), fma = CPU_FEATURE_ACTIVE(FMA);
    if (avx2 && fma)
        return NULL;
    return !avx2 && !fma ? "AVX2 and FMA" : !avx2 ? "AVX2" : "FMA";
#else
    return "an x86-64 CPU";
#endif
}

int agon_kernels_check(agon_kernels kernels, agon_error *err)
{
    const char *missing = kernels == AGON_KERNELS_PORTABLE ? portable_missing() : NULL;
    if (!missing)
        return 0;
    return agon_error_set(err, AGON_ECONFIG,
                          "portable kernels need a CPU with AVX2 and FMA, and "
                          "this one lacks %s; set train.kernels: native (--set "
                          "train.kernels=native) to use this machine's own kernels, whose results "
                          "other machines do not reproduce",
                          missing);
}

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static char cpu_model[64];
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_model_init(void)
{
    snprintf(cpu_model, sizeof cpu_model, "unknown");
#if defined(__x86_64__)
    unsigned regs[12];
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u)
        return;
    for (unsigned i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                    &regs[4 * i + 3]);
    char brand[49];
    memcpy(brand, regs, 48);
    brand[48] = '\0';
    /* The brand string is padded with spaces on either side. */
    char *b = brand;
    while (*b == ' ')
        b++;
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == ' ')
        n--;
    if (n > 0)
        snprintf(cpu_model, sizeof cpu_model, "%.*s", (int)n, b);
#endif
}

const char *agon_cpu_model(void)
{
    pthread_once(&cpu_once, cpu_model_init);
    return cpu_model;
}

static char *saved_env(const char *name)
{
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    free(value);
}

static void *open_openblas(agon_kernels kernels)
{
    char *coretype = saved_env("OPENBLAS_CORETYPE");
    char *threads = saved_env("OPENBLAS_NUM_THREADS");
    if (kernels == AGON_KERNELS_PORTABLE)
        setenv("OPENBLAS_CORETYPE", PORTABLE_CORE, 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    void *h = dlopen(AGON_OPENBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen(OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    restore_env("OPENBLAS_NUM_THREADS", threads);
    restore_env("OPENBLAS_CORETYPE", coretype);
    return h;
}

static void set_describe(void *h)
{
    char *(*get_config)(void) = (char *(*)(void))dlsym(h, "openblas_get_config");
    const char *config = get_config ? get_config() : "OpenBLAS";
    int len = (int)strlen(config);
    /* OpenBLAS builds its config string from pieces that may leave a
     * trailing space. */
    while (len > 0 && isspace((unsigned char)config[len - 1]))
        len--;
    snprintf(ob.describe, sizeof ob.describe, "%.*s (core %s)", len, config, ob.core);
}

static int load_locked(agon_kernels kernels, agon_error *err)
{
    /* Already in the process (another library linked it): its kernels were
     * chosen before agon could, so they are checked instead. */
    void *h = dlopen(AGON_OPENBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h)
        h = dlopen(OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    bool preloaded = h != NULL;
    if (!h)
        h = open_openblas(kernels);
    if (!h)
        return agon_error_set(err, AGON_EPLUGIN,
                              "cannot load OpenBLAS (%s): %s; install Debian's libopenblas0 "
                              "(bash tools/deps.sh)",
                              AGON_OPENBLAS_LIBRARY, dlerror());
    sgemm_fn sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    dsyevr_fn dsyevr = (dsyevr_fn)dlsym(h, "dsyevr_");
    void (*set_threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    char *(*get_core)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    if (!sgemm || !dsyevr || !set_threads || !get_core) {
        dlclose(h);
        return agon_error_set(err, AGON_EPLUGIN,
                              "%s lacks cblas_sgemm, dsyevr_, openblas_set_num_threads or "
                              "openblas_get_corename: it is not OpenBLAS with LAPACK; install "
                              "Debian's libopenblas0",
                              AGON_OPENBLAS_LIBRARY);
    }
    const char *core = get_core();
    snprintf(ob.core, sizeof ob.core, "%s", core ? core : "unknown");
    if (kernels == AGON_KERNELS_PORTABLE && strcmp(ob.core, PORTABLE_CORE) != 0) {
        dlclose(h);
        return agon_error_set(err, AGON_EPLUGIN,
                              "OpenBLAS runs its %s kernels although agon asked for %s (%s); "
                              "portable results need an OpenBLAS built with DYNAMIC_ARCH "
                              "that agon loads itself; use Debian's libopenblas0-pthread, or set "
                              "train.kernels: native",
                              ob.core, PORTABLE_CORE,
                              preloaded ? "it was loaded before agon could choose"
                                        : "the build ignores OPENBLAS_CORETYPE");
    }
    set_threads(1);
    ob.sgemm = sgemm;
    ob.dsyevr = dsyevr;
    ob.kernels = kernels;
    set_describe(h);
    atomic_store_explicit(&ob.loaded, true, memory_order_release);
    return 0;
}

int agon_blas_init(agon_kernels kernels, agon_error *err)
{
    assert((unsigned)kernels < AGON_KERNELS_COUNT);
    int rc = agon_kernels_check(kernels, err);
    if (rc != 0) {
        agon_error_prefix(err, "train.kernels");
        return rc;
    }
    pthread_mutex_lock(&ob.lock);
    if (atomic_load_explicit(&ob.loaded, memory_order_acquire)) {
        if (ob.kernels != kernels)
            rc = agon_error_set(err, AGON_EUSAGE,
                                "train.kernels: this process already runs the %s kernels (%s) "
                                "and cannot switch to %s ones; run each experiment in its own "
                                "process, as agon run does",
                                agon_kernels_name(ob.kernels), ob.core,
                                agon_kernels_name(kernels));
    } else {
        rc = load_locked(kernels, err);
    }
    pthread_mutex_unlock(&ob.lock);
    return rc;
}

/* Products before any agon_blas_init (tests, library users) get the
 * kernels AGON_KERNELS names, else the portable ones where the CPU has
 * them. */
static void ensure_loaded(void)
{
    if (atomic_load_explicit(&ob.loaded, memory_order_acquire))
        return;
    agon_error err = {0};
    agon_kernels k = AGON_KERNELS_PORTABLE;
    const char *env = getenv("AGON_KERNELS");
    if (env && env[0] && agon_kernels_parse(env, &k) != 0)
        k = AGON_KERNELS_PORTABLE;
    /* The Haswell kernels would stop such a CPU at their first product. */
    if (k == AGON_KERNELS_PORTABLE && portable_missing())
        k = AGON_KERNELS_NATIVE;
    pthread_mutex_lock(&ob.lock);
    int rc = atomic_load_explicit(&ob.loaded, memory_order_acquire) ? 0 : load_locked(k, &err);
    pthread_mutex_unlock(&ob.lock);
    if (rc != 0) {
        /* No product can be computed and agon_gemm has no way to fail:
         * the installation is broken. */
        fprintf(stderr, "agon: %s\n", err.message);
        abort();
    }
}

agon_kernels agon_blas_kernels(void)
{
    ensure_loaded();
    return ob.kernels;
}

const char *agon_blas_core(void)
{
    ensure_loaded();
    return ob.core;
}

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

static void sgemm_plain(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                        float *c, int64_t ldc)
{
    ob.sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
             trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha,
             a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
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
    ensure_loaded();
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

const char *agon_blas_describe(void)
{
    ensure_loaded();
    return ob.describe;
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

    ensure_loaded();
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
    ob.dsyevr(&jobz, &range, &uplo, &bn, acopy, &bn, &vzero, &vzero, &zero, &zero, &abstol, &found,
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
    ob.dsyevr(&jobz, &range, &uplo, &bn, acopy, &bn, &vzero, &vzero, &zero, &zero, &abstol, &found,
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
