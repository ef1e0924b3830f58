/* agon/tensor.h — float32 tensors, arenas and the BLAS entry point.
 *
 * A tensor is a view: a data pointer plus a shape, dense and row-major
 * (C order).  It owns nothing; memory comes from an arena (parameters,
 * gradients, optimizer state, activation buffers), so that once a network
 * is built the training step allocates nothing.
 *
 * All matrix products in agon go through agon_gemm (core/blas.c is the only
 * file that calls BLAS).
 */
#ifndef AGON_TENSOR_H
#define AGON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AGON_MAX_DIMS 5

typedef struct agon_shape {
    int ndim;                       /* 0 .. AGON_MAX_DIMS; 0 is a scalar */
    int64_t dim[AGON_MAX_DIMS];     /* dim[i] >= 1 for i < ndim */
} agon_shape;

typedef struct agon_tensor {
    float *data;        /* borrowed; numel floats, contiguous */
    agon_shape shape;
} agon_tensor;

/* Product of the dims (1 for a scalar). */
AGON_API int64_t agon_shape_numel(const agon_shape *shape);
/* The same into *numel, checked: false (and *numel untouched) when the
 * product does not fit in an int64_t.  Sizes that come from users (layer
 * widths, batch sizes, data files) are multiplied through this. */
AGON_API bool agon_shape_numel_checked(const agon_shape *shape, int64_t *numel);
/* Builds a shape of `ndim` dims from the array `dims`. */
AGON_API agon_shape agon_shape_make(int ndim, const int64_t *dims);
/* A shape [batch, s...] from a per-sample shape s. */
AGON_API agon_shape agon_shape_batched(int64_t batch, const agon_shape *sample);
/* True when both shapes have the same ndim and dims. */
AGON_API bool agon_shape_equal(const agon_shape *a, const agon_shape *b);
/* Writes "[2, 128]" into buf (always NUL-terminated); returns buf. */
AGON_API char *agon_shape_format(const agon_shape *shape, char *buf, size_t cap);

AGON_API int64_t agon_tensor_numel(const agon_tensor *t);
/* A view of the first `rows` rows (along dim 0) of t. */
AGON_API agon_tensor agon_tensor_rows(const agon_tensor *t, int64_t first, int64_t rows);
AGON_API void agon_tensor_zero(agon_tensor *t);
/* Sum of squares of all elements, accumulated in double. */
AGON_API double agon_tensor_sumsq(const agon_tensor *t);
/* True when every element is finite. */
AGON_API bool agon_tensor_all_finite(const agon_tensor *t);

/* ---- arenas ------------------------------------------------------------
 * A bump allocator made of large blocks.  Allocations are 64-byte aligned
 * and zero-filled, live until agon_arena_reset or agon_arena_destroy, and
 * are never freed one by one. */
typedef struct agon_arena agon_arena;

/* Creates an empty arena; blocks are at least `block_bytes` (0: 1 MiB). */
AGON_API agon_arena *agon_arena_create(size_t block_bytes, agon_error *err);
/* Creates a planning arena, which sizes storage without holding it:
 * agon_arena_tensor counts the tensor's bytes and gives it no storage
 * (data NULL), while agon_arena_alloc hands out real memory as usual (for
 * bookkeeping written at once) and counts it too.  agon_arena_used then
 * says what a real arena given the same requests would hold, so a
 * network can be sized at any size before it is allocated. */
AGON_API agon_arena *agon_arena_create_planning(agon_error *err);
/* Frees every block.  NULL is a no-op. */
AGON_API void agon_arena_destroy(agon_arena *arena);
/* Returns `bytes` zeroed bytes, or NULL (err set to AGON_ENOMEM). */
AGON_API void *agon_arena_alloc(agon_arena *arena, size_t bytes, agon_error *err);
/* Points t->data at fresh zeroed storage for `shape` (NULL in a planning
 * arena); 0 or AGON_ENOMEM, also when the size does not fit in 64 bits. */
AGON_API int agon_arena_tensor(agon_arena *arena, agon_tensor *t,
                               const agon_shape *shape, agon_error *err);
/* Makes all storage reusable without returning it to the system. */
AGON_API void agon_arena_reset(agon_arena *arena);
/* Bytes handed out since creation or the last reset (in a planning
 * arena: counted; at most SIZE_MAX). */
AGON_API size_t agon_arena_used(const agon_arena *arena);
/* Number of blocks obtained from the system so far (tests use it to show
 * that steady-state training allocates nothing). */
AGON_API size_t agon_arena_block_count(const agon_arena *arena);

/* ---- BLAS ----------------------------------------------------------------
 * C = alpha * op(A) * op(B) + beta * C, row-major; op(X) is X or X^T.
 * op(A) is m x k, op(B) is k x n, C is m x n; lda/ldb/ldc are the row
 * strides of A, B and C as stored. */
AGON_API void agon_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float beta, float *c,
                        int64_t ldc);

/* ---- kernels ---------------------------------------------------------------
 * Which OpenBLAS kernel family computes the products (train.kernels).  The
 * family decides the rounding, so it decides the bits of a run:
 *   AGON_KERNELS_PORTABLE  OpenBLAS's Haswell kernels (AVX2 + FMA), whatever
 *                          the CPU or OPENBLAS_CORETYPE: the same bits on
 *                          every x86-64 machine with AVX2 and FMA.
 *   AGON_KERNELS_NATIVE    OpenBLAS's own choice for this CPU (an
 *                          OPENBLAS_CORETYPE in the environment applies):
 *                          the machine's fastest kernels, its own bits.
 * The family is chosen once per process, when OpenBLAS is loaded.  Append
 * only. */
typedef enum agon_kernels {
    AGON_KERNELS_PORTABLE,
    AGON_KERNELS_NATIVE,
    AGON_KERNELS_COUNT
} agon_kernels;

/* "portable", "native" ("unknown" for other values).  Static. */
AGON_API const char *agon_kernels_name(agon_kernels kernels);
/* The value named `name`: 0, or -1 when it names none. */
AGON_API int agon_kernels_parse(const char *name, agon_kernels *kernels);
/* 0 when this CPU can run `kernels`; AGON_ECONFIG with a one-line message
 * (without the key: the caller knows where the value came from) saying what
 * to set instead when portable kernels meet a CPU without AVX2 and FMA.
 * Loads nothing. */
AGON_API int agon_kernels_check(agon_kernels kernels, agon_error *err);

/* Loads OpenBLAS with `kernels` for the rest of the process (setting
 * OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS only while it loads, so call
 * it before starting threads that read the environment).  0 on success,
 * also when it is already loaded with the same kernels.  Fails with one
 * line when the CPU cannot run them (AGON_ECONFIG), when OpenBLAS was
 * loaded with other kernels earlier in the process (AGON_EUSAGE), or when
 * OpenBLAS is missing or ignores the choice (AGON_EPLUGIN).  A product
 * computed before any call loads the kernels the environment variable
 * AGON_KERNELS names, else the portable ones (native on a CPU without AVX2
 * and FMA; AGON_KERNELS=portable on such a CPU also gives native). */
AGON_API int agon_blas_init(agon_kernels kernels, agon_error *err);
/* The kernels in use (loading them as a product would). */
AGON_API agon_kernels agon_blas_kernels(void);
/* OpenBLAS's name of the kernel family in use, e.g. "Haswell",
 * "SkylakeX", "Zen" (openblas_get_corename).  Static. */
AGON_API const char *agon_blas_core(void);

/* The CPU's name as it reports it (cpuid brand string), e.g. "AMD EPYC";
 * "unknown" when it reports none.  Static. */
AGON_API const char *agon_cpu_model(void);

/* Sets the number of threads (>= 1; at most 4 are used) that matrix
 * products use, for the whole process.  agon splits large products into a
 * fixed number of slabs that depend on the shape only, so results are
 * bit-identical at any thread count (for one kernel family). */
AGON_API void agon_blas_set_threads(int threads);
AGON_API int agon_blas_get_threads(void);
/* "OpenBLAS 0.3.21 ... (core Haswell)": what the log records. Static. */
AGON_API const char *agon_blas_describe(void);

#ifdef __cplusplus
}
#endif

#endif /* AGON_TENSOR_H */
