/* agon/sampler.h — shuffled epochs over a finite dataset, for dataset
 * plugins.
 *
 * A dataset of `size` samples hands out its samples in epochs: every index
 * 0..size-1 exactly once per epoch, in a fresh random order each epoch, and
 * a batch may run across the end of one epoch into the next.  The order of
 * an epoch is the Fisher-Yates shuffle of the identity drawn with the rng
 * that asks for the first index of that epoch:
 *
 *     perm = 0, 1, ..., size-1
 *     for i = size-1 down to 1: swap(perm[i], perm[agon_rng_below(rng, i + 1)])
 *
 * so a run's batches are a function of its seed alone, and a dataset of one
 * sample draws nothing from the rng.
 *
 * The place lives in the rng.  Each rng walks its own epochs with its own
 * permutations, and its position in the current epoch is part of the rng
 * struct (agon_rng.epoch_*): training draws its batches with the run's
 * "data" stream, a metric draws real samples with its own stream, and
 * neither moves the other's place, however many streams draw.  Copying an
 * rng copies its place (the copy continues the same walk), and restoring
 * an rng from a checkpoint restores its place in the data exactly.  An
 * epoch's order is a function of the rng state it was drawn from, so the
 * sampler only caches the orders of up to AGON_EPOCH_SAMPLER_STREAMS
 * epochs; an order that is not cached (pushed out by other streams, or
 * never drawn in this process) is drawn again from that state, which costs
 * time but never changes a result.  An rng that draws from a sampler of
 * another size starts a new epoch there.
 *
 * Typical use in a dataset plugin: create in the dataset's create, call
 * agon_epoch_sampler_next once per sample in next_batch, destroy in the
 * dataset's destroy.  Not thread-safe: one sampler serves one thread.
 */
#ifndef AGON_SAMPLER_H
#define AGON_SAMPLER_H

#include <stdint.h>

#include "agon/error.h"
#include "agon/export.h"
#include "agon/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How many epochs' orders a sampler caches. */
#define AGON_EPOCH_SAMPLER_STREAMS 4

/* The largest size a sampler takes (indices are stored as uint32). */
#define AGON_EPOCH_SAMPLER_MAX_SIZE 4294967295LL

typedef struct agon_epoch_sampler agon_epoch_sampler;

/* Creates a sampler over the indices 0..size-1, allocating everything it
 * will ever need (AGON_EPOCH_SAMPLER_STREAMS permutations of `size`
 * uint32, 16 bytes per sample).  Returns the sampler (owned by the caller,
 * freed with agon_epoch_sampler_destroy), or NULL with err set: AGON_ENOMEM
 * when memory runs out, AGON_EINTERNAL when size is not in
 * 1..AGON_EPOCH_SAMPLER_MAX_SIZE (a dataset must check its size first). */
AGON_API agon_epoch_sampler *agon_epoch_sampler_create(int64_t size, agon_error *err);

/* Frees the sampler.  NULL is a no-op. */
AGON_API void agon_epoch_sampler_destroy(agon_epoch_sampler *s);

/* The next index in `rng`'s walk through the epochs, in 0..size-1.  The
 * first call for an rng (or for one whose last epoch was over, or of
 * another size), first draws a new permutation with `rng` (size-1 draws
 * of agon_rng_below); other calls draw nothing.  Never allocates and never
 * fails. */
AGON_API int64_t agon_epoch_sampler_next(agon_epoch_sampler *s, agon_rng *rng);

#ifdef __cplusplus
}
#endif

#endif /* AGON_SAMPLER_H */
