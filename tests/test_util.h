/* tests/test_util.h — small helpers shared by agon's cmocka tests
 * (header-only so that every test stays one .c file). */
#ifndef AGON_TEST_UTIL_H
#define AGON_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agon/rng.h"

#define AGON_TEST_UNUSED __attribute__((unused))

/* Reads a whole file into a malloc'ed NUL-terminated buffer (NULL if absent). */
static AGON_TEST_UNUSED char *agon_test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static AGON_TEST_UNUSED void agon_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* A fresh empty directory "tmp_<tag>" under the working directory;
 * returns a static buffer. */
static AGON_TEST_UNUSED const char *agon_test_tmpdir(const char *tag)
{
    static char path[512];
    char cmd[1200];
    snprintf(path, sizeof path, "tmp_%s", tag);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    assert_int_equal(system(cmd), 0);
    return path;
}

/* Runs `cmd` with /bin/sh; stdout and stderr are captured into out / errbuf
 * (either may be NULL), each NUL-terminated.  Returns the exit status, or
 * 128 + signal number when killed by a signal. */
static AGON_TEST_UNUSED int agon_test_run(const char *cmd, char *out, size_t out_cap,
                                          char *errbuf, size_t err_cap)
{
    char full[8192];
    static int counter;
    char out_path[64], err_path[64];
    snprintf(out_path, sizeof out_path, "run_%d_%d.out", (int)getpid(), counter);
    snprintf(err_path, sizeof err_path, "run_%d_%d.err", (int)getpid(), counter++);
    snprintf(full, sizeof full, "(%s) >%s 2>%s", cmd, out_path, err_path);
    int st = system(full);
    int rc = -1;
    if (st != -1) {
        if (WIFEXITED(st))
            rc = WEXITSTATUS(st);
        else if (WIFSIGNALED(st))
            rc = 128 + WTERMSIG(st);
    }
    char *o = agon_test_read_file(out_path);
    char *e = agon_test_read_file(err_path);
    if (out && out_cap) {
        snprintf(out, out_cap, "%s", o ? o : "");
    }
    if (errbuf && err_cap) {
        snprintf(errbuf, err_cap, "%s", e ? e : "");
    }
    free(o);
    free(e);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

/* Central finite difference of a scalar function f(x) in every coordinate
 * of x[0..n), compared with the analytic gradient g: asserts
 * |g - fd| <= atol + rtol * |fd| for every coordinate. */
typedef double (*agon_test_scalar_fn)(void *ctx, float *x, size_t n);

static AGON_TEST_UNUSED void agon_test_check_grad(agon_test_scalar_fn f, void *ctx,
                                                  float *x, size_t n, const float *g,
                                                  double eps, double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = (float)(saved + eps);
        double fp = f(ctx, x, n);
        x[i] = (float)(saved - eps);
        double fm = f(ctx, x, n);
        x[i] = saved;
        double fd = (fp - fm) / (2.0 * eps);
        double tol = atol + rtol * (fd < 0 ? -fd : fd);
        double diff = g[i] - fd;
        if (diff < 0)
            diff = -diff;
        if (diff > tol) {
            fail_msg("gradient mismatch at %zu: analytic %.8g, finite difference %.8g",
                     i, (double)g[i], fd);
        }
    }
}

/* The order in which a dataset built on agon_epoch_sampler hands out sample
 * indices for `rng` (see agon/sampler.h), written independently of it: per
 * epoch, Fisher-Yates on the identity with agon_rng_below(rng, i + 1) for
 * i = size-1 down to 1.  Fills out[0..n). */
static AGON_TEST_UNUSED void agon_test_epoch_order(agon_rng *rng, int64_t size, int64_t *out,
                                                   int64_t n)
{
    int64_t *perm = malloc((size_t)size * sizeof *perm);
    assert_non_null(perm);
    int64_t pos = size;
    for (int64_t k = 0; k < n; k++) {
        if (pos == size) {
            for (int64_t i = 0; i < size; i++)
                perm[i] = i;
            for (int64_t i = size - 1; i > 0; i--) {
                int64_t j = (int64_t)agon_rng_below(rng, (uint64_t)(i + 1));
                int64_t t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            pos = 0;
        }
        out[k] = perm[pos++];
    }
    free(perm);
}

#endif /* AGON_TEST_UTIL_H */
