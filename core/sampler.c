/* Shuffled epochs with one cursor per rng (the contract is agon/sampler.h). */
#include "agon/sampler.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct cursor {
    const agon_rng *owner;  /* NULL: free */
    uint64_t last_use;      /* the sampler's use count at the owner's last draw */
    int64_t pos;            /* next index into perm; == size: the epoch is over */
    uint32_t *perm;         /* [size], inside the sampler's own allocation */
} cursor;

struct agon_epoch_sampler {
    int64_t size;
    uint64_t uses;
    cursor cursors[AGON_EPOCH_SAMPLER_STREAMS];
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
        s->cursors[i] = (cursor){NULL, 0, size, s->perms + (size_t)i * (size_t)size};
    return s;
}

void agon_epoch_sampler_destroy(agon_epoch_sampler *s)
{
    free(s);
}

/* The cursor of `rng`: its own, else the first free one, else the least
 * recently used one (which then starts a new epoch for this rng).  Cursor
 * 0 goes to the first rng that ever draws (in a run, training's) and is
 * never taken over. */
static cursor *cursor_for(agon_epoch_sampler *s, const agon_rng *rng)
{
    cursor *pick = NULL;
    for (int i = 0; i < AGON_EPOCH_SAMPLER_STREAMS; i++) {
        cursor *c = &s->cursors[i];
        if (c->owner == rng) {
            pick = c;
            break;
        }
        if (i == 0 && c->owner)
            continue;
        if (!pick || (pick->owner && (!c->owner || c->last_use < pick->last_use)))
            pick = c;
    }
    if (pick->owner != rng) {
        pick->owner = rng;
        pick->pos = s->size;
    }
    pick->last_use = ++s->uses;
    return pick;
}

static void new_epoch(cursor *c, int64_t size, agon_rng *rng)
{
    for (int64_t i = 0; i < size; i++)
        c->perm[i] = (uint32_t)i;
    for (int64_t i = size - 1; i > 0; i--) {
        int64_t j = (int64_t)agon_rng_below(rng, (uint64_t)(i + 1));
        uint32_t t = c->perm[i];
        c->perm[i] = c->perm[j];
        c->perm[j] = t;
    }
    c->pos = 0;
}

int64_t agon_epoch_sampler_next(agon_epoch_sampler *s, agon_rng *rng)
{
    cursor *c = cursor_for(s, rng);
    if (c->pos == s->size)
        new_epoch(c, s->size, rng);
    return c->perm[c->pos++];
}
