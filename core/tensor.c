/* Shapes, tensor views and arenas (see agon/tensor.h). */
#include "agon/tensor.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes ---------------------------------------------------------------- */

int64_t agon_shape_numel(const agon_shape *shape)
{
    int64_t n = 1;
    for (int i = 0; i < shape->ndim; i++)
        n *= shape->dim[i];
    return n;
}

bool agon_shape_numel_checked(const agon_shape *shape, int64_t *numel)
{
    int64_t n = 1;
    for (int i = 0; i < shape->ndim; i++) {
        if (__builtin_mul_overflow(n, shape->dim[i], &n))
            return false;
    }
    *numel = n;
    return true;
}

agon_shape agon_shape_make(int ndim, const int64_t *dims)
{
    assert(ndim >= 0 && ndim <= AGON_MAX_DIMS);
    agon_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s.dim[i] = dims[i];
    return s;
}

agon_shape agon_shape_batched(int64_t batch, const agon_shape *sample)
{
    assert(sample->ndim < AGON_MAX_DIMS);
    agon_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = sample->ndim + 1;
    s.dim[0] = batch;
    for (int i = 0; i < sample->ndim; i++)
        s.dim[i + 1] = sample->dim[i];
    return s;
}

bool agon_shape_equal(const agon_shape *a, const agon_shape *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++) {
        if (a->dim[i] != b->dim[i])
            return false;
    }
    return true;
}

char *agon_shape_format(const agon_shape *shape, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    size_t len = 0;
    buf[0] = '\0';
    /* snprintf truncates safely; once the buffer is full the remaining
     * pieces are skipped. */
    for (int i = 0; i <= shape->ndim && len < cap; i++) {
        const char *sep = i == 0 ? "[" : ", ";
        int w = i < shape->ndim
                    ? snprintf(buf + len, cap - len, "%s%" PRId64, sep, shape->dim[i])
                    : snprintf(buf + len, cap - len, "%s]", i == 0 ? "[" : "");
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

/* ---- tensors --------------------------------------------------------------- */

int64_t agon_tensor_numel(const agon_tensor *t)
{
    return agon_shape_numel(&t->shape);
}

agon_tensor agon_tensor_rows(const agon_tensor *t, int64_t first, int64_t rows)
{
    assert(t->shape.ndim >= 1);
    assert(first >= 0 && rows >= 0 && first + rows <= t->shape.dim[0]);
    int64_t row_numel = t->shape.dim[0] > 0 ? agon_tensor_numel(t) / t->shape.dim[0] : 0;
    agon_tensor v = *t;
    v.data = t->data + first * row_numel;
    v.shape.dim[0] = rows;
    return v;
}

void agon_tensor_zero(agon_tensor *t)
{
    int64_t n = agon_tensor_numel(t);
    if (n > 0)
        memset(t->data, 0, (size_t)n * sizeof(float));
}

double agon_tensor_sumsq(const agon_tensor *t)
{
    int64_t n = agon_tensor_numel(t);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)t->data[i] * (double)t->data[i];
    return s;
}

bool agon_tensor_all_finite(const agon_tensor *t)
{
    int64_t n = agon_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(t->data[i]))
            return false;
    }
    return true;
}

/* ---- arenas ---------------------------------------------------------------
 * Blocks form a list in the order they were obtained.  Allocation bumps
 * within `cur`; when it does not fit, the next block is used if it is large
 * enough, otherwise a new block is inserted right after `cur`.  Blocks after
 * `cur` are always empty, so after a reset the same sequence of requests
 * lands in the same blocks and obtains nothing new from the system. */

#define ARENA_ALIGN 64
#define ARENA_DEFAULT_BLOCK ((size_t)1 << 20)

typedef struct arena_block {
    struct arena_block *next;
    unsigned char *data;    /* ARENA_ALIGN-aligned */
    size_t size;
    size_t used;
} arena_block;

struct agon_arena {
    size_t block_bytes;
    arena_block *first;
    arena_block *cur;
    size_t used;
    size_t n_blocks;
    bool planning;          /* tensors are counted, not held */
};

static size_t round_up(size_t n)
{
    return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
}

agon_arena *agon_arena_create(size_t block_bytes, agon_error *err)
{
    agon_arena *a = calloc(1, sizeof *a);
    if (!a) {
        agon_error_set(err, AGON_ENOMEM, "out of memory creating an arena");
        return NULL;
    }
    a->block_bytes = round_up(block_bytes ? block_bytes : ARENA_DEFAULT_BLOCK);
    return a;
}

agon_arena *agon_arena_create_planning(agon_error *err)
{
    agon_arena *a = agon_arena_create(0, err);
    if (a)
        a->planning = true;
    return a;
}

void agon_arena_destroy(agon_arena *arena)
{
    if (!arena)
        return;
    arena_block *b = arena->first;
    while (b) {
        arena_block *next = b->next;
        free(b->data);
        free(b);
        b = next;
    }
    free(arena);
}

/* Saturating: a plan may add up to more than any memory holds. */
static void count_used(agon_arena *arena, size_t bytes)
{
    arena->used = bytes > SIZE_MAX - arena->used ? SIZE_MAX : arena->used + bytes;
}

static arena_block *block_new(size_t size)
{
    arena_block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->data = aligned_alloc(ARENA_ALIGN, size);
    if (!b->data) {
        free(b);
        return NULL;
    }
    b->size = size;
    return b;
}

void *agon_arena_alloc(agon_arena *arena, size_t bytes, agon_error *err)
{
    if (bytes > SIZE_MAX / 2) {
        agon_error_set(err, AGON_ENOMEM, "out of memory: arena request of %zu bytes is too large",
                       bytes);
        return NULL;
    }
    size_t need = round_up(bytes);
    arena_block *b = arena->cur;
    if (!b || b->size - b->used < need) {
        arena_block *next = b ? b->next : arena->first;
        if (next && next->size >= need) {
            b = next;
        } else {
            size_t size = need > arena->block_bytes ? need : arena->block_bytes;
            arena_block *nb = block_new(size);
            if (!nb) {
                agon_error_set(err, AGON_ENOMEM,
                               "out of memory allocating an arena block of %zu bytes", size);
                return NULL;
            }
            if (b) {
                nb->next = b->next;
                b->next = nb;
            } else {
                nb->next = arena->first;
                arena->first = nb;
            }
            arena->n_blocks++;
            b = nb;
        }
        arena->cur = b;
    }
    void *p = b->data + b->used;
    /* Blocks are reused after a reset, so zeroing happens here rather than
     * once when the block is obtained. */
    if (bytes)
        memset(p, 0, bytes);
    b->used += need;
    count_used(arena, bytes);
    return p;
}

int agon_arena_tensor(agon_arena *arena, agon_tensor *t, const agon_shape *shape,
                      agon_error *err)
{
    int64_t n;
    if (!agon_shape_numel_checked(shape, &n) || (uint64_t)n > SIZE_MAX / sizeof(float)) {
        char buf[128];
        return agon_error_set(err, AGON_ENOMEM,
                              "out of memory: a tensor of shape %s has more bytes than 64 bits "
                              "can count",
                              agon_shape_format(shape, buf, sizeof buf));
    }
    assert(n >= 0);
    const size_t bytes = (size_t)n * sizeof(float);
    if (arena->planning) {
        count_used(arena, bytes);
        t->data = NULL;
        t->shape = *shape;
        return 0;
    }
    float *p = agon_arena_alloc(arena, bytes, err);
    if (!p)
        return AGON_ENOMEM;
    t->data = p;
    t->shape = *shape;
    return 0;
}

void agon_arena_reset(agon_arena *arena)
{
    for (arena_block *b = arena->first; b; b = b->next)
        b->used = 0;
    arena->cur = arena->first;
    arena->used = 0;
}

size_t agon_arena_used(const agon_arena *arena)
{
    return arena->used;
}

size_t agon_arena_block_count(const agon_arena *arena)
{
    return arena->n_blocks;
}
