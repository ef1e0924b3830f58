/* tests/alloc_count.h — counts heap allocations of the whole process.
 *
 * A test that includes this header (once, in its one .c file) interposes
 * malloc and friends: the executable's definitions have default visibility,
 * so every shared object (libagon, the plugins, OpenBLAS, HDF5) calls them,
 * and glibc's own entry points stay reachable as __libc_*.  Tests read
 * agon_test_allocs before and after the code under test.  Sanitizer builds
 * bring their own allocator, so counting is off there
 * (AGON_TEST_COUNTS_ALLOCS is 0) and such tests skip their assertion. */
#ifndef AGON_TEST_ALLOC_COUNT_H
#define AGON_TEST_ALLOC_COUNT_H

#include <errno.h>
#include <stddef.h>

static volatile long agon_test_allocs;

#if defined(__SANITIZE_ADDRESS__)
#define AGON_TEST_COUNTS_ALLOCS 0
#else
#define AGON_TEST_COUNTS_ALLOCS 1
#define AGON_TEST_INTERPOSE __attribute__((visibility("default")))

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

AGON_TEST_INTERPOSE void *malloc(size_t n)
{
    agon_test_allocs++;
    return __libc_malloc(n);
}

AGON_TEST_INTERPOSE void *calloc(size_t n, size_t size)
{
    agon_test_allocs++;
    return __libc_calloc(n, size);
}

AGON_TEST_INTERPOSE void *realloc(void *p, size_t n)
{
    agon_test_allocs++;
    return __libc_realloc(p, n);
}

AGON_TEST_INTERPOSE void *aligned_alloc(size_t align, size_t n)
{
    agon_test_allocs++;
    return __libc_memalign(align, n);
}

AGON_TEST_INTERPOSE int posix_memalign(void **out, size_t align, size_t n)
{
    agon_test_allocs++;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
#endif

#endif /* AGON_TEST_ALLOC_COUNT_H */
