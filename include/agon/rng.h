/* agon/rng.h — named, reproducible random streams.
 *
 * Every source of randomness in a run is a stream derived from (seed, name):
 * "init" (parameter initialisation), "data" (real batches), "latent" (z),
 * "metrics" (everything metrics draw).  Streams are independent, so turning
 * a metric on or off never changes what training draws.
 *
 * The generator is xoshiro256** seeded through splitmix64 from
 * seed ^ fnv1a64(name); normals use a 256-layer ziggurat in double
 * precision.  The whole state, including the place in a shuffled epoch of
 * data, is in the struct, so it can be copied, checkpointed and restored
 * bit-exactly.
 */
#ifndef AGON_RNG_H
#define AGON_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct agon_rng {
    uint64_t s[4];        /* xoshiro256** state */
    /* The stream's place in a shuffled epoch of an agon_epoch_sampler
     * (agon/sampler.h): the state s held when the epoch's order was drawn,
     * the epoch's length (0: no epoch under way) and the next position.
     * Kept here so that copying, checkpointing or restoring the struct
     * carries the place in the data with it. */
    uint64_t epoch_origin[4];
    int64_t epoch_size;
    int64_t epoch_pos;
} agon_rng;

/* Initialises `rng` as the stream `name` (not NULL) of `seed`. */
AGON_API void agon_rng_seed(agon_rng *rng, uint64_t seed, const char *name);

/* Next 64 random bits. */
AGON_API uint64_t agon_rng_u64(agon_rng *rng);

/* Uniform double in [0, 1) with 53 random bits. */
AGON_API double agon_rng_uniform(agon_rng *rng);

/* Uniform integer in [0, n); n > 0.  Unbiased (rejection sampling). */
AGON_API uint64_t agon_rng_below(agon_rng *rng, uint64_t n);

/* Standard normal N(0, 1). */
AGON_API double agon_rng_normal(agon_rng *rng);

/* Fills x[0..n) with mean + std * N(0,1), as floats. */
AGON_API void agon_rng_fill_normal(agon_rng *rng, float *x, size_t n,
                                   float mean, float std);

/* Fills x[0..n) with uniform values in [lo, hi). */
AGON_API void agon_rng_fill_uniform(agon_rng *rng, float *x, size_t n,
                                    float lo, float hi);

/* 64-bit FNV-1a of a NUL-terminated string (used to name streams). */
AGON_API uint64_t agon_hash_fnv1a64(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* AGON_RNG_H */
