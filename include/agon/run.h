/* agon/run.h — experiments: resolve a YAML file into components, and play
 * the adversarial game into a run log.
 *
 * The experiment file's top level (docs/config.md lists every key):
 *   seed, description            scalars
 *   dataset, generator, discriminator, loss, g_optimizer, d_optimizer
 *                                maps with a `plugin:` key naming a
 *                                component of the matching kind, plus that
 *                                component's own parameters
 *   metrics                      a list of such maps (plus `every`, `name`)
 *   train, log                   the host's own settings
 */
#ifndef AGON_RUN_H
#define AGON_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/config.h"
#include "agon/error.h"
#include "agon/export.h"
#include "agon/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct agon_experiment agon_experiment;

/* Loads `path`, applies the `sets` overrides ("key.path=value") in order,
 * resolves every plugin in `reg` (borrowed; must outlive the experiment),
 * validates every section against its schema and fills in the defaults.
 * Reports all problems it finds in `diag` (each a positioned line).  When
 * `instantiate` is true it also builds every component once (datasets,
 * networks, optimizers, metrics) so that errors only a plugin can detect
 * are found too; before it allocates the networks it sizes the run
 * (agon_experiment_memory) and refuses one that needs more memory than
 * this process can get (see agon_memory_estimate).  Returns NULL on
 * failure. */
AGON_API agon_experiment *agon_experiment_load(agon_registry *reg, const char *path,
                                               const char *const *sets, size_t n_sets,
                                               bool instantiate, agon_diag *diag);

/* As agon_experiment_load, for YAML text in memory (a run log's /config);
 * `name` stands for the file name in positions. */
AGON_API agon_experiment *agon_experiment_load_text(agon_registry *reg, const char *name,
                                                    const char *text,
                                                    const char *const *sets, size_t n_sets,
                                                    bool instantiate, agon_diag *diag);

AGON_API void agon_experiment_destroy(agon_experiment *exp);

/* The fully resolved configuration as YAML (borrowed). */
AGON_API const char *agon_experiment_yaml(const agon_experiment *exp);
/* 16 hex characters: the start of the SHA-256 of the resolved YAML. */
AGON_API const char *agon_experiment_run_id(const agon_experiment *exp);
/* The resolved tree (borrowed). */
AGON_API const agon_config *agon_experiment_config(const agon_experiment *exp);

/* What a run of an experiment holds in memory, in bytes: what its arenas
 * hand out, sized from the networks' shapes by building them planned (see
 * agon/nn.h), so nothing large is allocated to know it.  The arenas (G's,
 * D's, the game's) take memory in blocks of at least 1 MiB, so each may
 * hold up to 1 MiB more than it hands out.  Not counted: the dataset's
 * own copy of the data, what metric and optimizer plugins allocate
 * themselves, HDF5's caches, the program.
 *
 * Before a run (and an instantiating load) allocates its networks, it
 * compares `total` with what this process can get: the smaller of
 * MemAvailable + SwapFree (/proc/meminfo) and what RLIMIT_AS and
 * RLIMIT_DATA leave of their limits (ulimit -v, ulimit -d).  A larger
 * total is refused with AGON_ECONFIG in one line naming the key whose
 * halving would save the most (e.g. generator.hidden or
 * train.batch_size), before anything large is allocated; so are shapes
 * whose sizes do not fit in 64 bits. */
typedef struct agon_memory_estimate {
    uint64_t generator;     /* G's arena: parameters, gradients, buffers, activations and
                               input gradients for train.batch_size samples, layer scratch */
    uint64_t discriminator; /* D's, for 2 x train.batch_size samples */
    uint64_t optimizers;    /* both optimizers' state tensors */
    uint64_t checkpoint;    /* the checkpoint's copy of parameters, buffers and optimizer
                               state */
    uint64_t step;          /* the step's own buffers: z, D's input, the logits' gradients,
                               labels */
    uint64_t samples;       /* the snapshot batch: log.n_samples latents and samples */
    uint64_t total;         /* their sum, at most UINT64_MAX */
} agon_memory_estimate;

/* The estimate of an experiment loaded with `instantiate` (borrowed);
 * NULL otherwise. */
AGON_API const agon_memory_estimate *agon_experiment_memory(const agon_experiment *exp);

/* Writes "about 1.2 GB (G 0.3 GB, D 0.4 GB, optimizer state ..., checkpoint
 * ..., step ..., samples ...)" into buf (always NUL-terminated); returns
 * buf.  Decimal units: 1 GB is 1e9 bytes. */
AGON_API char *agon_memory_describe(const agon_memory_estimate *est, char *buf, size_t cap);

typedef enum agon_progress {
    AGON_PROGRESS_AUTO,     /* TTY line on a terminal, plain lines otherwise */
    AGON_PROGRESS_TTY,      /* one line rewritten in place */
    AGON_PROGRESS_PLAIN,    /* a line every 10% of the run or 10 s */
    AGON_PROGRESS_NONE
} agon_progress;

typedef struct agon_run_options {
    /* Log file; NULL uses log.output from the config, and when that is
     * empty runs/<experiment file name without .yaml>.h5. */
    const char *output_path;
    agon_progress progress;
    /* Set asynchronously (e.g. by a SIGINT handler) to stop the run after
     * the current step; the log is then finished as "interrupted". */
    volatile sig_atomic_t *stop_flag;
    /* Free text recorded in the log as the root attribute "command". */
    const char *command_line;
    /* An existing file at the output path is replaced only when this is
     * true; otherwise the run fails before writing anything (AGON_EIO), so
     * that no earlier log is lost by accident. */
    bool overwrite;
    /* Continue the run logged at output_path (which must be set) from its
     * latest checkpoint instead of starting a new log.  The log must be
     * interrupted, failed or killed (status still "running" with its
     * writer gone).  Its config must equal the experiment's resolved
     * config (AGON_ECONFIG names the keys that differ) unless `force`;
     * `force` also resumes a run that completed (to train it further
     * after raising train.steps) or whose writer ran on another host,
     * and goes on with other kernels or plugin files than the log
     * recorded (each noted in /provenance/resumes). */
    bool resume;
    bool force;
    /* Resume a log whose writer ran on another host, known to be gone (a
     * sweep's Slurm task that left the queue), without the rest of what
     * `force` allows. */
    bool writer_gone;
} agon_run_options;

/* The outcome of a run. */
typedef struct agon_run_result {
    char output_path[4096];
    int64_t steps_done;
    double seconds;
    char status[16];        /* completed, diverged, failed, interrupted */
} agon_run_result;

/* Trains and logs.  Returns 0 when the run completed; AGON_EDIVERGED when a
 * non-finite value stopped it (the log is finished with status "diverged",
 * naming the step and the series); AGON_EINTERRUPTED when stop_flag was
 * raised; other codes for setup and I/O failures (err set).  `result` may
 * be NULL. */
AGON_API int agon_experiment_run(agon_experiment *exp, const agon_run_options *opts,
                                 agon_run_result *result, agon_error *err);

#ifdef __cplusplus
}
#endif

#endif /* AGON_RUN_H */
