/* tests/alloc_count.h — counts heap allocations of the whole process.
 *
 * A test that includes this header (once, in its one .c file) interposes
 * malloc and friends: the executable's definitions have default visibility,
 * so every shared object (libagon, the plugins, OpenBLAS, HDF5) calls them,
 * and glibc's own entry points stay reachable as __libc_*.  Tests read
 * agon_test_allocs before and after the code under test.  Sanitizer builds
 * bring their own allocator, so counting is off there
 * (AGON_TEST_COUNTS_ALLOCS is 0) and such tests skip their assertion.
 *
 * Allocations that OpenBLAS makes itself (the caller's return address lies
 * in its code) are counted apart, in agon_test_blas_allocs: whether OpenBLAS
 * allocates inside a product depends on its kernel family (the SkylakeX
 * small-matrix kernels call malloc on every call; the portable Haswell ones
 * never do), so tests hold agon's own code to zero on every machine and
 * OpenBLAS to zero where the portable kernels run
 * (agon_test_blas_must_not_allocate). */
#ifndef AGON_TEST_ALLOC_COUNT_H
#define AGON_TEST_ALLOC_COUNT_H

#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agon/tensor.h"

static volatile long agon_test_allocs;
static volatile long agon_test_blas_allocs;

/* True when the portable kernels run: then nothing may allocate at all. */
static inline int agon_test_blas_must_not_allocate(void)
{
    return agon_blas_kernels() == AGON_KERNELS_PORTABLE;
}

#if defined(__SANITIZE_ADDRESS__)
#define AGON_TEST_COUNTS_ALLOCS 0
#else
#define AGON_TEST_COUNTS_ALLOCS 1
#define AGON_TEST_INTERPOSE __attribute__((visibility("default")))

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

/* OpenBLAS's executable segment, found once it is loaded (it never is
 * unloaded).  dl_iterate_phdr allocates nothing. */
static uintptr_t agon_test_blas_lo, agon_test_blas_hi;

static int agon_test_find_blas(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libopenblas"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            agon_test_blas_lo = info->dlpi_addr + ph->p_vaddr;
            agon_test_blas_hi = agon_test_blas_lo + ph->p_memsz;
        }
    }
    return 1;
}

static void agon_test_count(void *caller)
{
    if (!agon_test_blas_hi)
        dl_iterate_phdr(agon_test_find_blas, NULL);
    uintptr_t at = (uintptr_t)caller;
    if (at >= agon_test_blas_lo && at < agon_test_blas_hi)
        agon_test_blas_allocs++;
    else
        agon_test_allocs++;
}

AGON_TEST_INTERPOSE void *malloc(size_t n)
{
    agon_test_count(__builtin_return_address(0));
    return __libc_malloc(n);
}

AGON_TEST_INTERPOSE void *calloc(size_t n, size_t size)
{
    agon_test_count(__builtin_return_address(0));
    return __libc_calloc(n, size);
}

AGON_TEST_INTERPOSE void *realloc(void *p, size_t n)
{
    agon_test_count(__builtin_return_address(0));
    return __libc_realloc(p, n);
}

AGON_TEST_INTERPOSE void *aligned_alloc(size_t align, size_t n)
{
    agon_test_count(__builtin_return_address(0));
    return __libc_memalign(align, n);
}

AGON_TEST_INTERPOSE int posix_memalign(void **out, size_t align, size_t n)
{
    agon_test_count(__builtin_return_address(0));
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
#endif

#endif /* AGON_TEST_ALLOC_COUNT_H */
