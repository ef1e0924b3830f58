/* Private: the resolved experiment shared by experiment.c (loading and
 * validation) and train.c (the game), and the config resolution that
 * classifier.c's training file shares with experiment files. */
#ifndef AGON_EXPERIMENT_INT_H
#define AGON_EXPERIMENT_INT_H

#include "agon/log.h"
#include "agon/run.h"

/* A component chosen by a config section. */
typedef struct agon__choice {
    const agon_component *component;
    const agon_plugin_record *owner;
    const agon_node *section;       /* the section map (plugin key included) */
} agon__choice;

typedef struct agon__metric_choice {
    agon__choice choice;
    const char *name;               /* `name:` or the plugin name */
    int64_t every;
} agon__metric_choice;

typedef enum agon__update { AGON__UPDATE_ALTERNATING, AGON__UPDATE_SIMULTANEOUS } agon__update;
typedef enum agon__latent { AGON__LATENT_NORMAL, AGON__LATENT_UNIFORM } agon__latent;

typedef struct agon__train_settings {
    int64_t steps, batch_size, latent_dim, d_steps, g_steps;
    int64_t freeze_d_from, freeze_g_from;   /* -1: never */
    int64_t threads;
    agon_kernels kernels;           /* OpenBLAS kernel family (train.kernels) */
    agon__latent latent;
    agon__update update;
    bool conditional;               /* one-hot labels concatenated to G's and D's inputs */
    bool d_joint_stats;             /* D's batch statistics over [real; fake] together */
} agon__train_settings;

typedef struct agon__log_settings {
    int64_t every, samples_every, n_samples, params_every;
    double flush_seconds, checkpoint_seconds;
    const char *output;             /* "" when unset */
    bool sample_training_mode;      /* G in training mode for samples and metrics */
} agon__log_settings;

struct agon_experiment {
    agon_registry *reg;             /* borrowed */
    agon_config *cfg;               /* owned */
    char *yaml;                     /* owned: resolved YAML */
    char run_id[17];
    char *stem;                     /* experiment file name without .yaml */
    uint64_t seed;
    agon__choice dataset, generator, discriminator, loss, g_optimizer, d_optimizer;
    agon__metric_choice *metrics;   /* owned array */
    size_t n_metrics;
    agon__train_settings train;
    agon__log_settings log;
    char *path;                     /* the experiment file, as given */
    agon_memory_estimate memory;    /* valid when memory_known (an instantiating load) */
    bool memory_known;
};

/* Sizes a run of `exp` (agon__game_plan) into *est and refuses it, in one
 * line naming the key whose halving saves the most, when it needs more
 * memory than this process can get (AGON_ECONFIG); the game calls it
 * before it allocates its networks. */
int agon__experiment_check_memory(const agon_experiment *exp, const agon_dataset_info *info,
                                  agon_memory_estimate *est, agon_error *err);

/* When the environment sets AGON_KERNELS and the config's section
 * `section` (train) does not set `kernels`, writes the environment's value
 * into the config, before defaults are filled in: the resolved config, the
 * run id and the log then say which kernels ran.  A value that is neither
 * portable nor native is reported. */
void agon__apply_kernels_default(agon_config *cfg, const char *section, agon_diag *diag);

/* Reads `kernels` of a resolved host section into *kernels and checks that
 * this CPU can run them: a diagnostic at the key's place, or naming `file`
 * when the default applies. */
void agon__read_kernels(const agon_node *section, const char *section_name, const char *file,
                        agon_kernels *kernels, agon_diag *diag);

/* Compares two resolved configs key by key: returns how many keys differ
 * and lists the first of them in out ("train.steps (log: 1000, now:
 * 2000), ..."). */
int agon__config_diff(const char *yaml_log, const char *yaml_now, char *out, size_t cap);

/* The file name of `path` without its .yaml or .yml (malloc'ed; NULL when
 * out of memory). */
char *agon__stem_of(const char *path);

/* Loads the YAML file `path` and applies the --set overrides (numbered from
 * 1 in messages); NULL when the file or any override fails (reported). */
agon_config *agon__config_load_overridden(const char *path, const char *const *sets,
                                          size_t n_sets, agon_diag *diag);

/* Reports each key of the root map that is not in `known` (NULL-ended),
 * with the closest known key or else the list of them all. */
void agon__check_root_keys(const agon_node *root, const char *const *known, agon_diag *diag);

/* Validates the root against `schema`, which covers the root's scalar
 * keys; every other key present is a host key (sections, and unknown keys
 * agon__check_root_keys reported).  `what` names the file in messages
 * ("the experiment"). */
void agon__apply_root_schema(agon_config *cfg, const agon_node *root,
                             const agon_param_spec *schema, const char *what, agon_diag *diag);

/* The root's map `key` (created when missing, so defaults are recorded),
 * validated against `schema`; NULL when it is unusable (reported). */
const agon_node *agon__host_section(agon_config *cfg, const char *key,
                                    const agon_param_spec *schema, agon_diag *diag);

/* Resolves the `plugin:` of a section to a component of `kind` in `reg`
 * and validates the section against that component's schema, the keys in
 * `host_keys` (NULL-ended) excepted.  Returns false, with out->component
 * NULL, when the section is unusable (reported). */
bool agon__resolve_choice(agon_registry *reg, agon_config *cfg, const agon_node *section,
                          agon_kind kind, const char *const *host_keys, agon__choice *out,
                          agon_diag *diag);

/* Writes the provenance of the plugin that provides `choice` (name,
 * version, file, SHA-256, components) under /provenance/plugins/<name>;
 * defined in train.c, shared with the classifier's file. */
int agon__write_provenance(agon_log *log, const agon__choice *choice, agon_error *err);

#endif /* AGON_EXPERIMENT_INT_H */
