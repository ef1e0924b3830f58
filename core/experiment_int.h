/* Private: the resolved experiment shared by experiment.c (loading and
 * validation) and train.c (the game). */
#ifndef AGON_EXPERIMENT_INT_H
#define AGON_EXPERIMENT_INT_H

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
    agon__latent latent;
    agon__update update;
    bool conditional;               /* one-hot labels concatenated to G's and D's inputs */
    bool d_joint_stats;             /* D's batch statistics over [real; fake] together */
} agon__train_settings;

typedef struct agon__log_settings {
    int64_t every, samples_every, n_samples, params_every;
    double flush_seconds;
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
};

#endif /* AGON_EXPERIMENT_INT_H */
