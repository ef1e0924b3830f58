/* Resolving an experiment file: load, override, pick plugins, validate
 * every section against its schema, fill defaults (see agon/run.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "agon/run.h"
#include "config_int.h"
#include "experiment_int.h"
#include "sha256_int.h"
#include "train_int.h"

/* The host's own settings.  Every key documented here is listed in
 * docs/config.md; keep the two in step. */
static const agon_param_spec root_schema[] = {
    {"seed", AGON_PARAM_INT, "0", 0, 9007199254740992.0, NULL,
     "seed of every random stream of the run (init, data, latent, metrics)"},
    {"description", AGON_PARAM_STRING, "''", AGON_NO_RANGE, NULL,
     "free text describing the experiment, stored in the log"},
    AGON_PARAM_END,
};

static const agon_param_spec train_schema[] = {
    {"steps", AGON_PARAM_INT, "10000", 1, 1e12, NULL,
     "number of training steps (each: d_steps D updates, then g_steps G updates)"},
    {"batch_size", AGON_PARAM_INT, "64", 1, 1048576, NULL,
     "samples per batch, real and fake alike"},
    {"latent_dim", AGON_PARAM_INT, "64", 1, 1048576, NULL,
     "dimension of the generator's input z"},
    {"latent", AGON_PARAM_CHOICE, "normal", AGON_NO_RANGE, "normal|uniform",
     "distribution of z: normal N(0, 1) or uniform U(-1, 1) per coordinate"},
    {"d_steps", AGON_PARAM_INT, "1", 1, 1000, NULL,
     "discriminator updates per step (k in Goodfellow et al. 2014)"},
    {"g_steps", AGON_PARAM_INT, "1", 1, 1000, NULL, "generator updates per step"},
    {"update", AGON_PARAM_CHOICE, "alternating", AGON_NO_RANGE,
     "alternating|simultaneous",
     "alternating: D then G; simultaneous: both from the same parameters"},
    {"freeze_d_from", AGON_PARAM_INT, "-1", -1, 1e12, NULL,
     "from this step on D is no longer updated (-1: never)"},
    {"freeze_g_from", AGON_PARAM_INT, "-1", -1, 1e12, NULL,
     "from this step on G is no longer updated (-1: never)"},
    {"threads", AGON_PARAM_INT, "1", 1, 256, NULL,
     "threads of the matrix products (at most 4 are used); results are the same "
     "bits at any value"},
    {"kernels", AGON_PARAM_CHOICE, "portable", AGON_NO_RANGE, "portable|native",
     "OpenBLAS kernels of the matrix products: portable (the same bits on every x86-64 "
     "CPU with AVX2 and FMA) or native (this CPU's fastest, its own bits); "
     "AGON_KERNELS sets the default"},
    {"conditional", AGON_PARAM_CHOICE, "none", AGON_NO_RANGE, "none|concat",
     "condition G and D on the data's class labels: none, or concat (one-hot "
     "labels appended to z and to D's input as features or channels)"},
    {"d_batch_stats", AGON_PARAM_CHOICE, "separate", AGON_NO_RANGE, "separate|joint",
     "how D's batch-statistic layers (batch norm) see a D step: separate real and "
     "fake batches (as in DCGAN), or one joint batch"},
    AGON_PARAM_END,
};

static const agon_param_spec log_schema[] = {
    {"every", AGON_PARAM_INT, "1", 1, 1e12, NULL,
     "log the per-step scalars every this many steps"},
    {"samples_every", AGON_PARAM_INT, "1000", 0, 1e12, NULL,
     "snapshot generator samples every this many steps (0: never)"},
    {"n_samples", AGON_PARAM_INT, "512", 1, 1048576, NULL,
     "generator samples per snapshot, from a fixed latent batch"},
    {"params_every", AGON_PARAM_INT, "0", 0, 1e12, NULL,
     "snapshot all parameters every this many steps (0: never)"},
    {"flush_seconds", AGON_PARAM_FLOAT, "5", 0.001, 86400, NULL,
     "write buffered log data to disk at least this often"},
    {"checkpoint_seconds", AGON_PARAM_FLOAT, "60", 0, 1e6, NULL,
     "save a checkpoint (everything agon run --resume needs) at a flush at most this "
     "often, and at the end (0: at every flush)"},
    {"output", AGON_PARAM_STRING, "''", AGON_NO_RANGE, NULL,
     "log file; empty: runs/<experiment name>.h5 (-o overrides)"},
    {"sample_mode", AGON_PARAM_CHOICE, "train", AGON_NO_RANGE, "train|eval",
     "mode of the generator when sampling for snapshots and metrics: train (batch "
     "statistics, as DCGAN samples) or eval (batch norm's running statistics)"},
    AGON_PARAM_END,
};

/* Sections naming a plugin, in the order they are resolved. */
typedef struct section_def {
    const char *key;
    agon_kind kind;
    const char *default_plugin;     /* NULL: the section is required */
    size_t offset;                  /* of the agon__choice in agon_experiment */
} section_def;

static const section_def sections[] = {
    {"dataset", AGON_KIND_DATASET, NULL, offsetof(agon_experiment, dataset)},
    {"generator", AGON_KIND_MODEL, NULL, offsetof(agon_experiment, generator)},
    {"discriminator", AGON_KIND_MODEL, NULL, offsetof(agon_experiment, discriminator)},
    {"loss", AGON_KIND_LOSS, NULL, offsetof(agon_experiment, loss)},
    {"g_optimizer", AGON_KIND_OPTIMIZER, "adam", offsetof(agon_experiment, g_optimizer)},
    {"d_optimizer", AGON_KIND_OPTIMIZER, "adam", offsetof(agon_experiment, d_optimizer)},
};
#define N_SECTIONS (sizeof sections / sizeof sections[0])

/* In the order the "known keys" message lists them. */
static const char *const root_keys[] = {
    "seed", "description", "dataset", "generator", "discriminator", "loss",
    "g_optimizer", "d_optimizer", "train", "log", "metrics", NULL,
};

void agon__check_root_keys(const agon_node *root, const char *const *known, agon_diag *diag)
{
    for (size_t i = 0; i < agon_node_len(root); i++) {
        const char *key = agon_node_key_at(root, i);
        bool found = false;
        for (size_t k = 0; known[k]; k++)
            found = found || strcmp(key, known[k]) == 0;
        if (found)
            continue;
        const agon_node *value = agon_node_at(root, i);
        const char *close = agon_suggest(key, known);
        if (close) {
            agon_node_diag(diag, AGON_ECONFIG, value,
                           "unknown top-level key; did you mean '%s'?", close);
        } else {
            char list[512];
            size_t used = 0;
            list[0] = '\0';
            for (size_t k = 0; known[k] && used < sizeof list; k++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                         k ? ", " : "", known[k]);
            agon_node_diag(diag, AGON_ECONFIG, value, "unknown top-level key; known keys: %s",
                           list);
        }
    }
}

void agon__apply_root_schema(agon_config *cfg, const agon_node *root,
                             const agon_param_spec *schema, const char *what, agon_diag *diag)
{
    size_t n = agon_node_len(root);
    const char **host_keys = calloc(n + 1, sizeof *host_keys);
    if (!host_keys) {
        agon_diag_add(diag, AGON_ENOMEM, "out of memory while validating the config");
        return;
    }
    size_t h = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key = agon_node_key_at(root, i);
        bool scalar = false;
        for (size_t k = 0; schema[k].name; k++)
            scalar = scalar || strcmp(key, schema[k].name) == 0;
        if (!scalar)
            host_keys[h++] = key;
    }
    agon_schema_apply(cfg, root, schema, host_keys, what, diag);
    free(host_keys);
}

const agon_node *agon__host_section(agon_config *cfg, const char *key,
                                    const agon_param_spec *schema, agon_diag *diag)
{
    agon_error err = {0};
    const agon_node *node = agon_config_ensure_map(cfg, key, &err);
    if (!node) {
        agon_diag_add_error(diag, &err);
        return NULL;
    }
    return agon_schema_apply(cfg, node, schema, NULL, key, diag) == 0 ? node : NULL;
}

/* Lists the registered names of a kind, for "available: ..." messages. */
static void list_names(const agon_registry *reg, agon_kind kind, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t p = 0; p < agon_registry_plugin_count(reg); p++) {
        const agon_plugin_descriptor *d = agon_registry_plugin(reg, p)->desc;
        for (size_t c = 0; c < d->n_components; c++) {
            if (d->components[c].kind != kind)
                continue;
            int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
                             d->components[c].name);
            if (w < 0 || (size_t)w >= cap - used)
                return;
            used += (size_t)w;
        }
    }
    if (used == 0)
        snprintf(buf, cap, "none found; check the plugin search path (agon plugins)");
}

bool agon__resolve_choice(agon_registry *reg, agon_config *cfg, const agon_node *section,
                          agon_kind kind, const char *const *host_keys, agon__choice *out,
                          agon_diag *diag)
{
    memset(out, 0, sizeof *out);
    out->section = section;
    if (agon_node_kind_of(section) != AGON_NODE_MAP) {
        agon_node_diag(diag, AGON_ECONFIG, section,
                       "expected a map with a 'plugin' key naming the %s to use",
                       agon_kind_name(kind));
        return false;
    }
    const agon_node *plugin = agon_node_get(section, "plugin");
    if (!plugin || agon_node_kind_of(plugin) != AGON_NODE_SCALAR ||
        agon_node_scalar(plugin)[0] == '\0') {
        agon_node_diag(diag, AGON_ECONFIG, plugin ? plugin : section,
                       plugin ? "expected the name of the %s to use (agon plugins lists them)"
                              : "missing 'plugin: NAME' naming the %s to use (agon plugins "
                                "lists them)",
                       agon_kind_name(kind));
        return false;
    }
    const char *name = agon_node_scalar(plugin);
    out->component = agon_registry_find(reg, kind, name, &out->owner);
    if (!out->component) {
        const char *close = agon_registry_suggest(reg, kind, name);
        if (close) {
            agon_node_diag(diag, AGON_ECONFIG, plugin, "unknown %s '%s'; did you mean '%s'?",
                           agon_kind_name(kind), name, close);
        } else {
            char names[512];
            list_names(reg, kind, names, sizeof names);
            agon_node_diag(diag, AGON_ECONFIG, plugin, "unknown %s '%s'; available: %s",
                           agon_kind_name(kind), name, names);
        }
        return false;
    }
    char what[160];
    snprintf(what, sizeof what, "%s '%s'", agon_kind_name(kind), name);
    static const agon_param_spec no_params[] = {AGON_PARAM_END};
    const agon_param_spec *schema = out->component->params ? out->component->params : no_params;
    if (agon_schema_apply(cfg, section, schema, host_keys, what, diag) != 0) {
        out->component = NULL;
        return false;
    }
    return true;
}

static void resolve_sections(agon_experiment *exp, agon_diag *diag)
{
    static const char *const plugin_key[] = {"plugin", NULL};
    for (size_t i = 0; i < N_SECTIONS; i++) {
        const section_def *def = &sections[i];
        agon__choice *choice = (agon__choice *)((char *)exp + def->offset);
        const agon_node *root = agon_config_root(exp->cfg);
        const agon_node *section = agon_node_get(root, def->key);
        /* A missing section, or settings without a plugin (--set
         * g_optimizer.lr=1e-4), mean the default plugin; --set creates the
         * map when it is missing. */
        bool needs_default = !section || (agon_node_kind_of(section) == AGON_NODE_MAP &&
                                          !agon_node_get(section, "plugin"));
        if (def->default_plugin && needs_default) {
            char assignment[96];
            agon_error err = {0};
            snprintf(assignment, sizeof assignment, "%s.plugin=%s", def->key, def->default_plugin);
            if (agon_config_set(exp->cfg, assignment, 0, &err) != 0) {
                agon_diag_add_error(diag, &err);
                continue;
            }
            section = agon_node_get(agon_config_root(exp->cfg), def->key);
        }
        if (!section) {
            agon_node_diag(diag, AGON_ECONFIG, root,
                           "missing section '%s' (a map with 'plugin: NAME' naming the %s)",
                           def->key, agon_kind_name(def->kind));
            continue;
        }
        agon__resolve_choice(exp->reg, exp->cfg, section, def->kind, plugin_key, choice, diag);
    }
}

static void resolve_metrics(agon_experiment *exp, agon_diag *diag)
{
    static const char *const metric_host_keys[] = {"plugin", "every", "name", NULL};
    const agon_node *list = agon_node_get(agon_config_root(exp->cfg), "metrics");
    if (!list || agon_node_kind_of(list) == AGON_NODE_NULL)
        return;
    if (agon_node_kind_of(list) != AGON_NODE_SEQ) {
        agon_node_diag(diag, AGON_ECONFIG, list,
                       "expected a list of metrics, each a map with 'plugin: NAME'");
        return;
    }
    size_t n = agon_node_len(list);
    exp->metrics = calloc(n ? n : 1, sizeof *exp->metrics);
    if (!exp->metrics) {
        agon_diag_add(diag, AGON_ENOMEM, "out of memory while resolving metrics");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const agon_node *section = agon_node_at(list, i);
        agon__metric_choice *m = &exp->metrics[exp->n_metrics];
        if (!agon__resolve_choice(exp->reg, exp->cfg, section, AGON_KIND_METRIC,
                                  metric_host_keys, &m->choice, diag))
            continue;
        agon_error err = {0};
        if (!agon_node_get(section, "every")) {
            /* Record the default in the resolved config like every other. */
            char assignment[64];
            snprintf(assignment, sizeof assignment, "metrics[%zu].every=1000", i);
            if (agon_config_set(exp->cfg, assignment, 0, &err) != 0) {
                agon_diag_add_error(diag, &err);
                continue;
            }
            section = agon_node_at(agon_node_get(agon_config_root(exp->cfg), "metrics"), i);
            m->choice.section = section;
        }
        if (agon_cfg_opt_int(section, "every", 1000, &m->every, &err) != 0) {
            agon_diag_add_error(diag, &err);
            continue;
        }
        if (m->every < 1) {
            agon_node_diag(diag, AGON_ECONFIG, agon_node_get(section, "every"),
                           "%lld is out of range [1, 1e12]; metrics run every N >= 1 steps "
                           "and at the last step",
                           (long long)m->every);
            continue;
        }
        if (agon_cfg_opt_string(section, "name", m->choice.component->name, &m->name, &err) !=
            0) {
            agon_diag_add_error(diag, &err);
            continue;
        }
        /* The name becomes the log group /metrics/<name>. */
        bool well_formed = m->name[0] != '\0' && strlen(m->name) <= 64;
        for (const char *c = m->name; *c; c++)
            well_formed = well_formed && ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                                          *c == '_');
        if (!well_formed) {
            const agon_node *at = agon_node_get(section, "name");
            agon_node_diag(diag, AGON_ECONFIG, at ? at : section,
                           "metric name '%s' must be 1 to 64 of a-z, 0-9 and _ (it names the "
                           "log group /metrics/<name>)",
                           m->name);
            continue;
        }
        bool unique = true;
        for (size_t j = 0; j < exp->n_metrics; j++)
            unique = unique && strcmp(exp->metrics[j].name, m->name) != 0;
        if (!unique) {
            agon_node_diag(diag, AGON_ECONFIG, section,
                           "metric name '%s' is used twice; give one of them 'name: OTHER'",
                           m->name);
            continue;
        }
        exp->n_metrics++;
    }
}

void agon__apply_kernels_default(agon_config *cfg, const char *section, agon_diag *diag)
{
    const char *env = getenv("AGON_KERNELS");
    if (!env || !env[0])
        return;
    agon_kernels k;
    if (agon_kernels_parse(env, &k) != 0) {
        agon_diag_add(diag, AGON_ECONFIG,
                      "AGON_KERNELS: '%s' is neither portable nor native; set it to one of "
                      "them or unset it",
                      env);
        return;
    }
    const agon_node *sec = agon_node_get(agon_config_root(cfg), section);
    if (sec && agon_node_get(sec, "kernels"))
        return;
    char assignment[64];
    snprintf(assignment, sizeof assignment, "%s.kernels=%s", section, agon_kernels_name(k));
    agon_error err = {0};
    if (agon_config_set(cfg, assignment, 0, &err) != 0)
        agon_diag_add_error(diag, &err);
}

void agon__read_kernels(const agon_node *section, const char *section_name, const char *file,
                        agon_kernels *kernels, agon_diag *diag)
{
    const char *s = "portable";
    agon_cfg_require_string(section, "kernels", &s, NULL);
    if (agon_kernels_parse(s, kernels) != 0)
        *kernels = AGON_KERNELS_PORTABLE;
    agon_error err = {0};
    if (agon_kernels_check(*kernels, &err) != 0) {
        const agon_node *node = agon_node_get(section, "kernels");
        const char *text = err.message;
        /* A default has no place in the file: name the file instead. */
        if (node && agon_node_line(node) > 0)
            agon_node_diag(diag, err.code, node, "%s", text);
        else if (file)
            agon_diag_add(diag, err.code, "%s: %s.kernels (default portable): %s", file,
                          section_name, text);
        else
            agon_diag_add(diag, err.code, "%s.kernels: %s", section_name, text);
    }
}

static int64_t int_of(const agon_node *map, const char *key)
{
    int64_t v = 0;
    agon_cfg_require_int(map, key, &v, NULL);
    return v;
}

static void read_settings(agon_experiment *exp, const char *path, const agon_node *train,
                          const agon_node *log, agon_diag *diag)
{
    const agon_node *root = agon_config_root(exp->cfg);
    exp->seed = (uint64_t)int_of(root, "seed");
    agon__train_settings *t = &exp->train;
    t->steps = int_of(train, "steps");
    t->batch_size = int_of(train, "batch_size");
    t->latent_dim = int_of(train, "latent_dim");
    t->d_steps = int_of(train, "d_steps");
    t->g_steps = int_of(train, "g_steps");
    t->freeze_d_from = int_of(train, "freeze_d_from");
    t->freeze_g_from = int_of(train, "freeze_g_from");
    t->threads = int_of(train, "threads");
    agon__read_kernels(train, "train", path, &t->kernels, diag);
    const char *s = "";
    agon_cfg_require_string(train, "latent", &s, NULL);
    t->latent = strcmp(s, "uniform") == 0 ? AGON__LATENT_UNIFORM : AGON__LATENT_NORMAL;
    agon_cfg_require_string(train, "update", &s, NULL);
    t->update = strcmp(s, "simultaneous") == 0 ? AGON__UPDATE_SIMULTANEOUS
                                                : AGON__UPDATE_ALTERNATING;
    agon_cfg_require_string(train, "conditional", &s, NULL);
    t->conditional = strcmp(s, "concat") == 0;
    agon_cfg_require_string(train, "d_batch_stats", &s, NULL);
    t->d_joint_stats = strcmp(s, "joint") == 0;
    if (t->update == AGON__UPDATE_SIMULTANEOUS && (t->d_steps != 1 || t->g_steps != 1)) {
        agon_node_diag(diag, AGON_ECONFIG, agon_node_get(train, "update"),
                       "simultaneous updates take one D and one G step from the same "
                       "parameters; set d_steps and g_steps to 1 or use update: alternating");
    }
    agon__log_settings *l = &exp->log;
    l->every = int_of(log, "every");
    l->samples_every = int_of(log, "samples_every");
    l->n_samples = int_of(log, "n_samples");
    l->params_every = int_of(log, "params_every");
    agon_cfg_require_float(log, "flush_seconds", &l->flush_seconds, NULL);
    agon_cfg_require_float(log, "checkpoint_seconds", &l->checkpoint_seconds, NULL);
    agon_cfg_require_string(log, "output", &l->output, NULL);
    agon_cfg_require_string(log, "sample_mode", &s, NULL);
    l->sample_training_mode = strcmp(s, "eval") != 0;
}

char *agon__stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
        n -= 4;
    return strndup(base, n);
}

agon_config *agon__config_load_overridden(const char *path, const char *const *sets,
                                          size_t n_sets, agon_diag *diag)
{
    agon_config *cfg = agon_config_load(path, diag);
    if (!cfg)
        return NULL;
    for (size_t i = 0; i < n_sets; i++) {
        agon_error err = {0};
        if (agon_config_set(cfg, sets[i], (int)i + 1, &err) != 0)
            agon_diag_add_error(diag, &err);
    }
    if (diag->count) {
        agon_config_destroy(cfg);
        return NULL;
    }
    return cfg;
}

static agon_experiment *experiment_resolve(agon_experiment *exp, const char *path,
                                           bool instantiate, agon_diag *diag);

agon_experiment *agon_experiment_load(agon_registry *reg, const char *path,
                                      const char *const *sets, size_t n_sets,
                                      bool instantiate, agon_diag *diag)
{
    agon_experiment *exp = calloc(1, sizeof *exp);
    if (!exp) {
        agon_diag_add(diag, AGON_ENOMEM, "out of memory");
        return NULL;
    }
    exp->reg = reg;
    exp->stem = agon__stem_of(path);
    exp->path = strdup(path);
    exp->cfg = agon__config_load_overridden(path, sets, n_sets, diag);
    return experiment_resolve(exp, path, instantiate, diag);
}

agon_experiment *agon_experiment_load_text(agon_registry *reg, const char *name,
                                           const char *text, const char *const *sets,
                                           size_t n_sets, bool instantiate, agon_diag *diag)
{
    agon_experiment *exp = calloc(1, sizeof *exp);
    if (!exp) {
        agon_diag_add(diag, AGON_ENOMEM, "out of memory");
        return NULL;
    }
    exp->reg = reg;
    exp->stem = agon__stem_of(name);
    exp->path = strdup(name);
    exp->cfg = agon_config_parse(text, strlen(text), name, diag);
    for (size_t i = 0; exp->cfg && i < n_sets; i++) {
        agon_error err = {0};
        if (agon_config_set(exp->cfg, sets[i], (int)i + 1, &err) != 0)
            agon_diag_add_error(diag, &err);
    }
    return experiment_resolve(exp, name, instantiate, diag);
}

/* Validates and resolves a loaded config (exp->cfg, NULL when loading
 * failed) into the experiment; NULL on failure (reported). */
static agon_experiment *experiment_resolve(agon_experiment *exp, const char *path,
                                           bool instantiate, agon_diag *diag)
{
    if (!exp->cfg || !exp->stem || !exp->path || diag->count)
        goto fail;

    const agon_node *root = agon_config_root(exp->cfg);
    agon__check_root_keys(root, root_keys, diag);
    agon__apply_root_schema(exp->cfg, root, root_schema, "the experiment", diag);
    agon__apply_kernels_default(exp->cfg, "train", diag);
    const agon_node *train = agon__host_section(exp->cfg, "train", train_schema, diag);
    const agon_node *log = agon__host_section(exp->cfg, "log", log_schema, diag);
    resolve_sections(exp, diag);
    resolve_metrics(exp, diag);
    if (diag->count || !train || !log)
        goto fail;
    read_settings(exp, path, train, log, diag);
    if (diag->count)
        goto fail;

    agon_error err = {0};
    exp->yaml = agon_config_to_yaml(exp->cfg, &err);
    if (!exp->yaml) {
        agon_diag_add_error(diag, &err);
        goto fail;
    }
    char digest[65];
    agon__sha256_hex(exp->yaml, strlen(exp->yaml), digest);
    memcpy(exp->run_id, digest, 16);
    exp->run_id[16] = '\0';

    if (instantiate && agon__experiment_check_build(exp, &err) != 0) {
        agon_diag_add_error(diag, &err);
        goto fail;
    }
    return exp;

fail:
    if (diag->count == 0)
        agon_diag_add(diag, AGON_ECONFIG, "%s: invalid experiment", path);
    agon_experiment_destroy(exp);
    return NULL;
}

void agon_experiment_destroy(agon_experiment *exp)
{
    if (!exp)
        return;
    agon_config_destroy(exp->cfg);
    free(exp->yaml);
    free(exp->stem);
    free(exp->path);
    free(exp->metrics);
    free(exp);
}

const char *agon_experiment_yaml(const agon_experiment *exp)
{
    return exp->yaml;
}

const char *agon_experiment_run_id(const agon_experiment *exp)
{
    return exp->run_id;
}

const agon_config *agon_experiment_config(const agon_experiment *exp)
{
    return exp->cfg;
}

/* ---- memory ---------------------------------------------------------------------- */

const agon_memory_estimate *agon_experiment_memory(const agon_experiment *exp)
{
    return exp->memory_known ? &exp->memory : NULL;
}

/* "68.7 GB": decimal units, as disks and most tools count. */
static const char *format_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)bytes / 1e3;
    size_t u = 0;
    while (v >= 1e3 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1e3;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
    return buf;
}

char *agon_memory_describe(const agon_memory_estimate *est, char *buf, size_t cap)
{
    char t[32], g[32], d[32], o[32], c[32], st[32], sa[32];
    snprintf(buf, cap,
             "about %s (G %s, D %s, optimizer state %s, checkpoint %s, step %s, samples %s)",
             format_bytes(est->total, t, sizeof t), format_bytes(est->generator, g, sizeof g),
             format_bytes(est->discriminator, d, sizeof d),
             format_bytes(est->optimizers, o, sizeof o),
             format_bytes(est->checkpoint, c, sizeof c), format_bytes(est->step, st, sizeof st),
             format_bytes(est->samples, sa, sizeof sa));
    return buf;
}

/* A "Key:   123 kB" line of a /proc file, in bytes. */
static bool proc_bytes(const char *path, const char *key, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    size_t klen = strlen(key);
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
            sscanf(line + klen + 1, "%llu", &kb) == 1) {
            *out = kb > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t)kb * 1024;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* What this process can still get, and a phrase saying what bounds it:
 * the machine's available memory and swap, or what a resource limit
 * leaves after what the process holds already.  UINT64_MAX when nothing
 * tells. */
static uint64_t memory_available(const char **what)
{
    uint64_t best = UINT64_MAX, avail, swap = 0, used;
    *what = "this machine can give";
    if (proc_bytes("/proc/meminfo", "MemAvailable", &avail)) {
        proc_bytes("/proc/meminfo", "SwapFree", &swap);
        best = avail > UINT64_MAX - swap ? UINT64_MAX : avail + swap;
    }
    static const struct {
        int resource;
        const char *usage, *what;
    } limits[] = {
        {RLIMIT_AS, "VmSize", "the address-space limit leaves (ulimit -v)"},
        {RLIMIT_DATA, "VmData", "the data-size limit leaves (ulimit -d)"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i].resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
            continue;
        if (!proc_bytes("/proc/self/status", limits[i].usage, &used))
            used = 0;
        uint64_t left = rl.rlim_cur > used ? (uint64_t)rl.rlim_cur - used : 0;
        if (left < best) {
            best = left;
            *what = limits[i].what;
        }
    }
    return best;
}

/* A key a run's size grows with, and what halving it would save. */
typedef struct size_key {
    char path[160];             /* "generator.hidden" */
    const agon_node *node;      /* its value in the experiment's config */
    uint64_t saving;
} size_key;

/* The total of `exp` with one key halved: the host setting at `offset` in
 * agon_experiment (train.batch_size, ...), or, when `assignment` is given,
 * a key of a network's section set on a copy of the resolved config.  0
 * when the halved experiment cannot be planned. */
static uint64_t total_halved(const agon_experiment *exp, const agon_dataset_info *info,
                             size_t offset, const char *assignment)
{
    agon_experiment probe = *exp;
    agon_config *cfg = NULL;
    if (!assignment) {
        *(int64_t *)((char *)&probe + offset) /= 2;
    } else {
        agon_diag diag;
        agon_diag_init(&diag);
        agon_error err = {0};
        cfg = agon_config_parse(exp->yaml, strlen(exp->yaml), "probe", &diag);
        agon_diag_fini(&diag);
        if (!cfg || agon_config_set(cfg, assignment, 0, &err) != 0) {
            agon_config_destroy(cfg);
            return 0;
        }
        const agon_node *root = agon_config_root(cfg);
        probe.cfg = cfg;
        probe.generator.section = agon_node_get(root, "generator");
        probe.discriminator.section = agon_node_get(root, "discriminator");
        probe.g_optimizer.section = agon_node_get(root, "g_optimizer");
        probe.d_optimizer.section = agon_node_get(root, "d_optimizer");
    }
    agon_memory_estimate est;
    agon_error err = {0};
    uint64_t total = agon__game_plan(&probe, info, &est, &err) == 0 ? est.total : 0;
    agon_config_destroy(cfg);
    return total;
}

/* "generator.hidden=[32768, 32768]" for an integer or a list of integers
 * of at least 1 that halving changes; false for anything else. */
static bool halved_assignment(const char *path, const agon_node *v, char *buf, size_t cap)
{
    int64_t x;
    size_t used = (size_t)snprintf(buf, cap, "%s=", path);
    if (agon_node_kind_of(v) == AGON_NODE_SCALAR) {
        if (agon_node_quoted(v) || agon_node_to_int(v, &x, NULL) != 0 || x < 2)
            return false;
        snprintf(buf + used, cap - used, "%lld", (long long)(x / 2));
        return true;
    }
    if (agon_node_kind_of(v) != AGON_NODE_SEQ || agon_node_len(v) == 0)
        return false;
    bool changes = false;
    for (size_t i = 0; i < agon_node_len(v) && used < cap; i++) {
        const agon_node *item = agon_node_at(v, i);
        if (agon_node_kind_of(item) != AGON_NODE_SCALAR || agon_node_quoted(item) ||
            agon_node_to_int(item, &x, NULL) != 0 || x < 1)
            return false;
        changes = changes || x >= 2;
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "[",
                                 (long long)(x > 1 ? x / 2 : 1));
    }
    if (used + 2 > cap)
        return false;
    memcpy(buf + used, "]", 2);
    return changes;
}

/* Keeps the two keys that save the most, best first. */
static void rank_key(size_key best[2], const char *path, const agon_node *node, uint64_t total,
                     uint64_t halved)
{
    if (halved == 0 || halved >= total)
        return;
    size_key k = {.node = node, .saving = total - halved};
    snprintf(k.path, sizeof k.path, "%s", path);
    if (k.saving > best[0].saving) {
        best[1] = best[0];
        best[0] = k;
    } else if (k.saving > best[1].saving) {
        best[1] = k;
    }
}

int agon__experiment_check_memory(const agon_experiment *exp, const agon_dataset_info *info,
                                  agon_memory_estimate *est, agon_error *err)
{
    int rc = agon__game_plan(exp, info, est, err);
    if (rc != 0)
        return rc;
    const char *what;
    const uint64_t can = memory_available(&what);
    if (est->total <= can)
        return 0;

    /* Which keys the size grows with: each is halved in turn, and the one
     * that saves the most is named (the largest layer, or the batch). */
    const agon_node *root = agon_config_root(exp->cfg);
    size_key best[2] = {{.saving = 0}, {.saving = 0}};
    static const struct {
        const char *section, *key;
        size_t offset;
    } host[] = {
        {"train", "batch_size", offsetof(agon_experiment, train.batch_size)},
        {"train", "latent_dim", offsetof(agon_experiment, train.latent_dim)},
        {"log", "n_samples", offsetof(agon_experiment, log.n_samples)},
    };
    char path[160], assignment[1024];
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
        if (*(const int64_t *)((const char *)exp + host[i].offset) < 2)
            continue;
        snprintf(path, sizeof path, "%s.%s", host[i].section, host[i].key);
        rank_key(best, path, agon_node_get(agon_node_get(root, host[i].section), host[i].key),
                 est->total, total_halved(exp, info, host[i].offset, NULL));
    }
    const char *const nets[] = {"generator", "discriminator"};
    for (size_t n = 0; n < 2; n++) {
        const agon_node *section = agon_node_get(root, nets[n]);
        for (size_t i = 0; i < agon_node_len(section); i++) {
            const char *key = agon_node_key_at(section, i);
            snprintf(path, sizeof path, "%s.%s", nets[n], key);
            if (strcmp(key, "plugin") != 0 &&
                halved_assignment(path, agon_node_at(section, i), assignment, sizeof assignment))
                rank_key(best, path, agon_node_at(section, i), est->total,
                         total_halved(exp, info, 0, assignment));
        }
    }
    if (best[0].saving == 0) {
        /* Nothing halves: name the larger network's section. */
        const char *name = est->generator >= est->discriminator ? nets[0] : nets[1];
        snprintf(best[0].path, sizeof best[0].path, "%s", name);
        best[0].node = agon_node_get(root, name);
    }

    /* The key where it was written; a --set value, or a default, which
     * has no place in any file, after the experiment's file. */
    char need[32], have[32], at[512];
    const agon_node *node = best[0].node;
    const bool written = node && agon_node_line(node) > 0;
    if (written)
        agon__pos_prefix(at, sizeof at, agon_node_file(node), agon_node_line(node),
                         agon_node_col(node), best[0].path);
    else
        agon__pos_prefix(at, sizeof at, exp->path, 0, 0, best[0].path);
    const bool from_set = written && strcmp(agon_node_file(node), "--set") == 0;
    return agon_error_set(err, AGON_ECONFIG,
                          "%s%s%sa run would need about %s of memory for train.batch_size %lld, "
                          "more than the %s %s; lower %s%s%s",
                          from_set ? exp->path : "", from_set ? ": " : "", at, format_bytes(est->total, need, sizeof need),
                          (long long)exp->train.batch_size, format_bytes(can, have, sizeof have),
                          what, best[0].path, best[1].saving ? " or " : "", best[1].path);
}

/* ---- comparing configs --------------------------------------------------------- */

typedef struct diff_out {
    char *buf;
    size_t cap, used;
    int count;
} diff_out;

static void diff_add(diff_out *d, const char *path, const agon_node *a, const agon_node *b)
{
    d->count++;
    if (d->count > 8) {
        if (d->count == 9 && d->used < d->cap)
            d->used += (size_t)snprintf(d->buf + d->used, d->cap - d->used, ", ...");
        return;
    }
    const char *va = !a ? "(absent)" : agon_node_scalar(a) ? agon_node_scalar(a) : "(a section)";
    const char *vb = !b ? "(absent)" : agon_node_scalar(b) ? agon_node_scalar(b) : "(a section)";
    if (d->used < d->cap)
        d->used += (size_t)snprintf(d->buf + d->used, d->cap - d->used, "%s%s (log: %s, now: %s)",
                                    d->count > 1 ? ", " : "", path[0] ? path : "(root)", va, vb);
    if (d->used > d->cap)
        d->used = d->cap;
}

static void diff_nodes(diff_out *d, const char *path, const agon_node *a, const agon_node *b)
{
    agon_node_kind ka = agon_node_kind_of(a), kb = agon_node_kind_of(b);
    if (ka != kb) {
        diff_add(d, path, a, b);
        return;
    }
    char sub[512];
    if (ka == AGON_NODE_MAP) {
        for (size_t i = 0; i < agon_node_len(a); i++) {
            const char *key = agon_node_key_at(a, i);
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
            const agon_node *other = agon_node_get(b, key);
            if (other)
                diff_nodes(d, sub, agon_node_at(a, i), other);
            else
                diff_add(d, sub, agon_node_at(a, i), NULL);
        }
        for (size_t i = 0; i < agon_node_len(b); i++) {
            const char *key = agon_node_key_at(b, i);
            if (!agon_node_get(a, key)) {
                snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
                diff_add(d, sub, NULL, agon_node_at(b, i));
            }
        }
    } else if (ka == AGON_NODE_SEQ) {
        size_t na = agon_node_len(a), nb = agon_node_len(b);
        for (size_t i = 0; i < (na > nb ? na : nb); i++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, i + 1);
            if (i < na && i < nb)
                diff_nodes(d, sub, agon_node_at(a, i), agon_node_at(b, i));
            else
                diff_add(d, sub, i < na ? agon_node_at(a, i) : NULL,
                         i < nb ? agon_node_at(b, i) : NULL);
        }
    } else if (strcmp(agon_node_scalar(a) ? agon_node_scalar(a) : "",
                      agon_node_scalar(b) ? agon_node_scalar(b) : "") != 0) {
        diff_add(d, path, a, b);
    }
}

int agon__config_diff(const char *yaml_a, const char *yaml_b, char *out, size_t cap)
{
    out[0] = '\0';
    agon_diag da, db;
    agon_diag_init(&da);
    agon_diag_init(&db);
    agon_config *a = agon_config_parse(yaml_a, strlen(yaml_a), "log", &da);
    agon_config *b = agon_config_parse(yaml_b, strlen(yaml_b), "now", &db);
    diff_out d = {out, cap, 0, 0};
    if (a && b)
        diff_nodes(&d, "", agon_config_root(a), agon_config_root(b));
    else
        diff_add(&d, "", NULL, NULL);
    agon_config_destroy(a);
    agon_config_destroy(b);
    agon_diag_fini(&da);
    agon_diag_fini(&db);
    return d.count;
}
