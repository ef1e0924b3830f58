/* gemm_bound — FLOPs of one agon training step and the speed its matrix
 * products alone allow (bench/run.sh; docs/performance.md).
 *
 *   gemm_bound TRACE STEPS [--threads T] [--seconds S] [--shapes]
 *
 * TRACE is the file AGON_GEMM_TRACE wrote (core/blas.c: one line
 * "ta tb m n k" per agon_gemm call) during a run of exactly STEPS steps
 * that did nothing else with agon_gemm: no metrics, no sample snapshots.
 * The calls are split into STEPS equal steps, and every step must repeat
 * the first one call for call; otherwise the trace is refused, since the
 * per-step figures would not mean anything.
 *
 * The bound replays one step's calls, in order, through agon_gemm (so the
 * same OpenBLAS, kernel and thread count as agon) on buffers allocated and
 * filled once, for at least S seconds after one untimed step.  All calls
 * share one A, one B and one C buffer of the largest size needed, with
 * tight leading dimensions and beta = 0: the products run on warm memory
 * with nothing in between, so the result is an upper bound on the steps
 * per second any implementation making these calls can reach.
 *
 * Output (one line each, machine-readable):
 *   FLOPS calls_per_step=N flops_per_step=F
 *   BOUND threads=T steps=R seconds=S steps_per_s=X gflops=G
 * With --shapes, a table follows: each distinct call shape with its count
 * per step, its share of the FLOPs and of the time (every call timed on
 * its own for another S seconds). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agon/tensor.h"

typedef struct call {
    int ta, tb;
    int64_t m, n, k;
} call;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(void)
{
    fprintf(stderr, "usage: gemm_bound TRACE STEPS [--threads T] [--seconds S] [--shapes]\n");
    return 2;
}

static bool same_call(const call *a, const call *b)
{
    return a->ta == b->ta && a->tb == b->tb && a->m == b->m && a->n == b->n && a->k == b->k;
}

/* Reads every line of `path`; returns the number of calls or -1. */
static int64_t read_trace(const char *path, call **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "gemm_bound: %s: cannot open: %s; run agon with "
                        "AGON_GEMM_TRACE=%s first\n", path, strerror(errno), path);
        return -1;
    }
    size_t cap = 1024, n = 0;
    call *calls = malloc(cap * sizeof *calls);
    char line[256];
    int64_t lineno = 0;
    while (calls && fgets(line, sizeof line, f)) {
        lineno++;
        call c;
        long long m, nn, k;
        char extra;
        if (sscanf(line, "%d %d %lld %lld %lld %c", &c.ta, &c.tb, &m, &nn, &k, &extra) != 5 ||
            (c.ta != 0 && c.ta != 1) || (c.tb != 0 && c.tb != 1) || m < 0 || nn < 0 || k < 0) {
            fprintf(stderr, "gemm_bound: %s:%" PRId64 ": expected \"ta tb m n k\" "
                            "(ta, tb 0 or 1; sizes >= 0); is this an AGON_GEMM_TRACE file?\n",
                    path, lineno);
            free(calls);
            fclose(f);
            return -1;
        }
        c.m = m;
        c.n = nn;
        c.k = k;
        if (n == cap) {
            cap *= 2;
            call *grown = realloc(calls, cap * sizeof *calls);
            if (!grown) {
                free(calls);
                calls = NULL;
                break;
            }
            calls = grown;
        }
        calls[n++] = c;
    }
    fclose(f);
    if (!calls) {
        fprintf(stderr, "gemm_bound: out of memory reading %s\n", path);
        return -1;
    }
    *out = calls;
    return (int64_t)n;
}

/* One line per distinct call shape: count per step, FLOPs and, from
 * `ms` (the time of each call of the step, averaged over replays), where
 * the bound's time goes. */
static void print_shapes(const call *step, int64_t per_step, double flops, const double *ms)
{
    double total_ms = 0.0;
    for (int64_t i = 0; i < per_step; i++)
        total_ms += ms[i];
    bool *done = calloc((size_t)per_step, sizeof *done);
    if (!done)
        return;
    printf("%-3s %-3s %8s %8s %8s %6s %12s %7s %10s %7s %8s\n", "ta", "tb", "m", "n", "k",
           "count", "MFLOP/step", "FLOPs", "ms/step", "time", "GFLOP/s");
    for (int64_t i = 0; i < per_step; i++) {
        if (done[i])
            continue;
        int64_t count = 0;
        double t = 0.0;
        for (int64_t j = i; j < per_step; j++) {
            if (!done[j] && same_call(&step[i], &step[j])) {
                done[j] = true;
                count++;
                t += ms[j];
            }
        }
        const call *c = &step[i];
        double f = 2.0 * (double)c->m * (double)c->n * (double)c->k * (double)count;
        printf("%-3d %-3d %8" PRId64 " %8" PRId64 " %8" PRId64 " %6" PRId64
               " %12.3f %6.1f%% %10.3f %6.1f%% %8.1f\n",
               c->ta, c->tb, c->m, c->n, c->k, count, f / 1e6, flops > 0 ? 100.0 * f / flops : 0.0,
               t, total_ms > 0 ? 100.0 * t / total_ms : 0.0, t > 0 ? f / (t * 1e6) : 0.0);
    }
    free(done);
}

static float *filled(size_t n, uint32_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    /* Small values of both signs: no overflow, no denormals. */
    for (size_t i = 0; p && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    return p;
}

static void replay(const call *step, int64_t per_step, const float *a, const float *b, float *c)
{
    for (int64_t i = 0; i < per_step; i++) {
        const call *x = &step[i];
        int64_t lda = x->ta ? x->m : x->k;
        int64_t ldb = x->tb ? x->k : x->n;
        agon_gemm(x->ta, x->tb, x->m, x->n, x->k, 1.0f, a, lda > 1 ? lda : 1, b,
                  ldb > 1 ? ldb : 1, 0.0f, c, x->n > 1 ? x->n : 1);
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long long steps = 0;
    int threads = 1;
    double seconds = 2.0;
    bool shapes = false;
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 256)
                return usage();
            threads = (int)t;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0))
                return usage();
        } else if (strcmp(argv[i], "--shapes") == 0) {
            shapes = true;
        } else if (argv[i][0] == '-') {
            return usage();
        } else if (positional == 0) {
            path = argv[i];
            positional++;
        } else if (positional == 1) {
            steps = strtoll(argv[i], &end, 10);
            if (*end || steps < 1)
                return usage();
            positional++;
        } else {
            return usage();
        }
    }
    if (positional != 2)
        return usage();
    /* The replay goes through agon_gemm, which would append to the very
     * trace being read. */
    unsetenv("AGON_GEMM_TRACE");

    call *calls = NULL;
    int64_t total = read_trace(path, &calls);
    if (total < 0)
        return 1;
    if (total == 0 || total % steps != 0) {
        fprintf(stderr,
                "gemm_bound: %s: %" PRId64 " calls do not split into %lld equal steps; trace "
                "a fresh file (it is appended to) over a run of exactly %lld steps with no "
                "metrics and no sample snapshots\n",
                path, total, steps, steps);
        free(calls);
        return 1;
    }
    int64_t per_step = total / steps;
    for (int64_t i = per_step; i < total; i++) {
        if (!same_call(&calls[i], &calls[i % per_step])) {
            fprintf(stderr,
                    "gemm_bound: %s:%" PRId64 ": step %" PRId64 " differs from step 1 at its "
                    "call %" PRId64 "; the run did matrix products outside the step (metrics? "
                    "snapshots?) or its steps differ\n",
                    path, i + 1, i / per_step + 1, i % per_step + 1);
            free(calls);
            return 1;
        }
    }

    double flops = 0.0;
    size_t max_a = 0, max_b = 0, max_c = 0;
    for (int64_t i = 0; i < per_step; i++) {
        const call *c = &calls[i];
        flops += 2.0 * (double)c->m * (double)c->n * (double)c->k;
        size_t sa = (size_t)(c->m * c->k), sb = (size_t)(c->k * c->n), sc = (size_t)(c->m * c->n);
        max_a = sa > max_a ? sa : max_a;
        max_b = sb > max_b ? sb : max_b;
        max_c = sc > max_c ? sc : max_c;
    }
    printf("FLOPS calls_per_step=%" PRId64 " flops_per_step=%.0f\n", per_step, flops);
    fflush(stdout);

    float *a = filled(max_a, 1), *b = filled(max_b, 2), *c = filled(max_c, 3);
    if (!a || !b || !c) {
        fprintf(stderr, "gemm_bound: out of memory for the replay buffers\n");
        return 1;
    }
    agon_blas_set_threads(threads);
    replay(calls, per_step, a, b, c);
    int64_t reps = 0;
    double t0 = now_seconds(), elapsed;
    do {
        replay(calls, per_step, a, b, c);
        reps++;
        elapsed = now_seconds() - t0;
    } while (elapsed < seconds);
    printf("BOUND threads=%d steps=%" PRId64 " seconds=%.3f steps_per_s=%.3f gflops=%.2f "
           "kernels=%s core=%s\n",
           threads, reps, elapsed, (double)reps / elapsed, flops * (double)reps / elapsed / 1e9,
           agon_kernels_name(agon_blas_kernels()), agon_blas_core());
    if (shapes) {
        /* Timing every call adds two clock reads per call: fine for shares. */
        double *ms = calloc((size_t)per_step, sizeof *ms);
        if (!ms) {
            fprintf(stderr, "gemm_bound: out of memory\n");
            return 1;
        }
        int64_t timed = 0;
        t0 = now_seconds();
        do {
            for (int64_t i = 0; i < per_step; i++) {
                double t = now_seconds();
                replay(&calls[i], 1, a, b, c);
                ms[i] += (now_seconds() - t) * 1e3;
            }
            timed++;
        } while (now_seconds() - t0 < seconds);
        for (int64_t i = 0; i < per_step; i++)
            ms[i] /= (double)timed;
        print_shapes(calls, per_step, flops, ms);
        free(ms);
    }
    free(a);
    free(b);
    free(c);
    free(calls);
    return 0;
}
