/* Shuffled epochs whose place lives in the rng (the contract is
 * agon/sampler.h).
 *
 * An epoch's order is a function of the rng state it was drawn from (its
 * origin), so the sampler only caches orders: a cache miss (an order
 * pushed out by other streams, or a process that restored an rng from a
 * checkpoint) redraws the order from a copy of the origin and gets the
 * same permutation.  What a stream draws therefore never depends on which
 * other streams drew, or on the cache. */
#include "agon/sampler.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct order {
    bool used;
    uint64_t origin[4];     /* the rng state the permutation was drawn from */
    uint64_t last_use;      /* the sampler's use count at its last lookup */
    uint32_t *perm;         /* [size], inside the sampler's own allocation */
} order;

struct agon_epoch_sampler {
    int64_t size;
    uint64_t uses;
    order orders[AGON_EPOCH_SAMPLER_STREAMS];
    uint32_t perms[];       /* [AGON_EPOCH_SAMPLER_STREAMS * size] */
};

agon_epoch_sampler *agon_epoch_sampler_create(int64_t size, agon_error *err)
{
    if (size < 1 || size > AGON_EPOCH_SAMPLER_MAX_SIZE) {
        agon_error_set(err, AGON_EINTERNAL,
                       "agon_epoch_sampler_create: size %lld is not in 1..%lld; a dataset "
                       "must check its number of samples before it creates a sampler",
                       (long long)size, AGON_EPOCH_SAMPLER_MAX_SIZE);
        return NULL;
    }
    const size_t per_sample = AGON_EPOCH_SAMPLER_STREAMS * sizeof(uint32_t);
    agon_epoch_sampler *s = NULL;
    /* Only a 32-bit size_t can fall short of 16 bytes times 2^32 samples. */
    if ((uint64_t)size <= (SIZE_MAX - sizeof *s) / per_sample)
        s = malloc(sizeof *s + (size_t)size * per_sample);
    if (!s) {
        agon_error_set(err, AGON_ENOMEM,
                       "agon_epoch_sampler_create: out of memory for the permutations of %lld "
                       "samples (%.0f MB)",
                       (long long)size, (double)size * (double)per_sample / 1e6);
        return NULL;
    }
    s->size = size;
    s->uses = 0;
    for (int i = 0; i < AGON_EPOCH_SAMPLER_STREAMS; i++)
        s->orders[i] = (order){.perm = s->perms + (size_t)i * (size_t)size};
    return s;
}

void agon_epoch_sampler_destroy(agon_epoch_sampler *s)
{
    free(s);
}

/* Fisher-Yates from the identity with `rng` (agon/sampler.h). */
static void shuffle(uint32_t *perm, int64_t size, agon_rng *rng)
{
    for (int64_t i = 0; i < size; i++)
        perm[i] = (uint32_t)i;
    for (int64_t i = size - 1; i > 0; i--) {
        int64_t j = (int64_t)agon_rng_below(rng, (uint64_t)(i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* The cached order drawn from `origin`, or NULL. */
static order *find_order(agon_epoch_sampler *s, const uint64_t origin[4])
{
    for (int i = 0; i < AGON_EPOCH_SAMPLER_STREAMS; i++) {
        order *o = &s->orders[i];
        if (o->used && memcmp(o->origin, origin, sizeof o->origin) == 0)
            return o;
    }
    return NULL;
}

/* A free cache entry, else the least recently used one. */
static order *spare_order(agon_epoch_sampler *s)
{
    order *pick = &s->orders[0];
    for (int i = 0; i < AGON_EPOCH_SAMPLER_STREAMS; i++) {
        order *o = &s->orders[i];
        if (!o->used)
            return o;
        if (o->last_use < pick->last_use)
            pick = o;
    }
    return pick;
}

int64_t agon_epoch_sampler_next(agon_epoch_sampler *s, agon_rng *rng)
{
    order *o;
    if (rng->epoch_size != s->size || rng->epoch_pos < 0 || rng->epoch_pos >= s->size) {
        /* A new epoch: its order is drawn from the rng itself. */
        memcpy(rng->epoch_origin, rng->s, sizeof rng->epoch_origin);
        rng->epoch_size = s->size;
        rng->epoch_pos = 0;
        o = find_order(s, rng->epoch_origin);
        if (!o)
            o = spare_order(s);
        shuffle(o->perm, s->size, rng);
        memcpy(o->origin, rng->epoch_origin, sizeof o->origin);
        o->used = true;
    } else if (!(o = find_order(s, rng->epoch_origin))) {
        /* The order was pushed out of the cache (or never was in this
         * process): redraw it from its origin, leaving the rng alone. */
        o = spare_order(s);
        agon_rng replay = *rng;
        memcpy(replay.s, rng->epoch_origin, sizeof replay.s);
        shuffle(o->perm, s->size, &replay);
        memcpy(o->origin, rng->epoch_origin, sizeof o->origin);
        o->used = true;
    }
    o->last_use = ++s->uses;
    return o->perm[rng->epoch_pos++];
}
