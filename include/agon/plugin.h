/* agon/plugin.h — what a plugin author includes.
 *
 * A plugin is a shared object (.so) exporting one symbol, AGON_PLUGIN_ENTRY,
 * a function returning a pointer to a static const agon_plugin_descriptor.
 * The host checks the descriptor's first fields (ABI version, struct size,
 * float size) before it calls anything else in the plugin, then checks
 * every component (kind, vtable size, parameter schema), then calls the
 * optional init.  A plugin provides one or more components; each is a loss,
 * model, dataset, metric or optimizer, named in YAML by its registered name.
 *
 * Rules for plugin code: never exit(), never print to stdout, never call
 * H5close(); report failure by returning a negative agon status with an
 * agon_error message that says what is wrong and what to do.
 *
 * Declaring a plugin:
 *
 *     static const agon_loss_vtable my_loss = { sizeof(agon_loss_vtable), ... };
 *     static const agon_param_spec my_params[] = { ..., AGON_PARAM_END };
 *     AGON_PLUGIN("my_losses", "1.0.0", "Losses I am trying out",
 *                 AGON_LOSS("hinge", "Hinge loss", my_params, &my_loss));
 *
 * and building it with CMake: agon_add_plugin(my_losses SOURCES my_losses.c).
 */
#ifndef AGON_PLUGIN_H
#define AGON_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/config.h"
#include "agon/error.h"
#include "agon/export.h"
#include "agon/loss.h"
#include "agon/nn.h"
#include "agon/optim.h"
#include "agon/rng.h"
#include "agon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI major version: a plugin is loaded only when its abi_version
 * equals this.  Bumped on any incompatible change of this header
 * (2: agon_metric_vtable.declare, agon_dataset_info.split;
 *  3: agon_metric_vtable.prepare, the epoch place in agon_rng). */
#define AGON_ABI_VERSION 3

#define AGON_PLUGIN_ENTRY agon_plugin_entry
#define AGON_PLUGIN_ENTRY_NAME "agon_plugin_entry"

/* X(ENUM, "name").  Append only. */
#define AGON_KIND_MAP(X)                                                       \
    X(LOSS, "loss")                                                            \
    X(MODEL, "model")                                                          \
    X(DATASET, "dataset")                                                      \
    X(METRIC, "metric")                                                        \
    X(OPTIMIZER, "optimizer")

typedef enum agon_kind {
#define AGON__KIND_ENUM(e, s) AGON_KIND_##e,
    AGON_KIND_MAP(AGON__KIND_ENUM)
#undef AGON__KIND_ENUM
    AGON_KIND_COUNT
} agon_kind;

AGON_API const char *agon_kind_name(agon_kind kind);

/* ---- losses -------------------------------------------------------------
 * Work on discriminator logits l (D = sigmoid(l)).  Both functions return
 * the batch-mean loss and write its exact gradient with respect to each
 * logit (so the 1/n of the mean is included). */
typedef struct agon_loss_vtable {
    uint32_t struct_size;   /* sizeof(agon_loss_vtable) */
    /* Discriminator loss on n_real real and n_fake fake logits. */
    double (*d_loss)(const float *real_logits, size_t n_real,
                     const float *fake_logits, size_t n_fake,
                     float *d_real, float *d_fake);
    /* Generator loss on n fake logits. */
    double (*g_loss)(const float *fake_logits, size_t n, float *d_fake);
} agon_loss_vtable;

/* ---- models -------------------------------------------------------------
 * A model (architecture) appends layers to `net`, which the host created
 * for the role's per-sample input shape and maximum batch, so that the
 * network's output has per-sample shape `out_shape`.  It initialises its
 * parameters from `rng` (the run's "init" stream).  The host first calls
 * build on a planned network (agon/nn.h) to size the run before it
 * allocates, then on the real one, so build must do nothing but add
 * layers and initialise what they hand it. */
typedef enum agon_role {
    AGON_ROLE_GENERATOR,
    AGON_ROLE_DISCRIMINATOR,
    AGON_ROLE_COUNT
} agon_role;

AGON_API const char *agon_role_name(agon_role role);

typedef struct agon_model_vtable {
    uint32_t struct_size;   /* sizeof(agon_model_vtable) */
    int (*build)(const agon_node *cfg, agon_role role, const agon_shape *out_shape,
                 agon_net *net, agon_rng *rng, agon_error *err);
} agon_model_vtable;

/* ---- datasets -----------------------------------------------------------
 * What a dataset tells the host and the metrics.  Filled by create; the
 * arrays are owned by the dataset state and live until destroy. */
typedef struct agon_dataset_info {
    agon_shape sample_shape;    /* per sample, e.g. [2] or [1, 28, 28] */
    int64_t size;               /* number of samples, -1 for an infinite stream */
    int64_t n_classes;          /* > 0 when labels exist */
    /* Mode structure (mixtures), else n_modes = 0. */
    int64_t n_modes;
    const float *mode_centres;  /* [n_modes, numel(sample_shape)] */
    double mode_std;            /* per-coordinate std of each mode */
    /* Bounding box of the data (low-dimensional data), else NULL. */
    const float *bounds_lo, *bounds_hi;   /* [numel(sample_shape)] */
    /* Exact density p_data(x) at one sample, or NULL when unknown. */
    double (*density)(const void *state, const float *x);
    /* Which part of the data this is ("train", "test"), or NULL; metrics
     * record it as provenance of their real samples. */
    const char *split;
} agon_dataset_info;

typedef struct agon_dataset_vtable {
    uint32_t struct_size;   /* sizeof(agon_dataset_vtable) */
    int (*create)(const agon_node *cfg, void **state, agon_dataset_info *info,
                  agon_error *err);
    void (*destroy)(void *state);
    /* Fills out ([n, sample_shape...]) with the next n samples drawn using
     * `rng` (the run's "data" stream, or the metrics stream), and labels[0..n)
     * when labels is not NULL and the data has classes.  Must not allocate. */
    int (*next_batch)(void *state, agon_rng *rng, agon_tensor *out,
                      int32_t *labels, agon_error *err);
} agon_dataset_vtable;

/* ---- metrics ------------------------------------------------------------
 * A metric is evaluated at intervals on a context that can draw generator
 * samples, real samples, and run the discriminator; it reports named
 * scalar values.  Its declared outputs are the columns of its table in the
 * log (metrics/<name>/<output>); it must emit each of them at every
 * evaluation. */
typedef struct agon_metric_ctx agon_metric_ctx;

/* Fills out ([n, sample_shape...], any n) with generator samples from the
 * metrics stream (evaluation mode). */
AGON_API int agon_metric_fake(agon_metric_ctx *ctx, agon_tensor *out, agon_error *err);
/* Fills out with real samples drawn with the metrics stream. */
AGON_API int agon_metric_real(agon_metric_ctx *ctx, agon_tensor *out, agon_error *err);
/* Writes D's logits for x ([n, sample_shape...]) into logits[0..n). */
AGON_API int agon_metric_discriminate(agon_metric_ctx *ctx, const agon_tensor *x,
                                      float *logits, agon_error *err);
/* As agon_metric_fake, and labels[0..n) receives the class each sample was
 * generated for: drawn uniformly from the metrics stream when the run is
 * conditional (train.conditional), -1 otherwise. */
AGON_API int agon_metric_fake_labeled(agon_metric_ctx *ctx, agon_tensor *out,
                                      int32_t *labels, agon_error *err);
/* As agon_metric_real, with the samples' labels (AGON_EPLUGIN when the
 * dataset has none). */
AGON_API int agon_metric_real_labeled(agon_metric_ctx *ctx, agon_tensor *out,
                                      int32_t *labels, agon_error *err);
/* As agon_metric_discriminate for a conditional run: D sees x with the
 * given labels.  labels may be NULL for an unconditional run. */
AGON_API int agon_metric_discriminate_labeled(agon_metric_ctx *ctx, const agon_tensor *x,
                                              const int32_t *labels, float *logits,
                                              agon_error *err);
/* True when the run is conditional (G and D take class labels). */
AGON_API bool agon_metric_conditional(const agon_metric_ctx *ctx);
AGON_API const agon_dataset_info *agon_metric_dataset(const agon_metric_ctx *ctx);
/* The metrics stream (independent of training's streams). */
AGON_API agon_rng *agon_metric_rng(agon_metric_ctx *ctx);
AGON_API int64_t agon_metric_step(const agon_metric_ctx *ctx);
/* Records output `name` (one of the declared outputs). */
AGON_API int agon_metric_emit(agon_metric_ctx *ctx, const char *name, double value,
                              agon_error *err);
/* Records the tensor output `name` (declared with agon_metric_declare_tensor):
 * numel(shape) floats are copied from data. */
AGON_API int agon_metric_emit_tensor(agon_metric_ctx *ctx, const char *name,
                                     const float *data, agon_error *err);
/* p_data(x) at one sample x when the dataset knows its density
 * (agon_dataset_info.density), NAN otherwise. */
AGON_API double agon_metric_data_density(const agon_metric_ctx *ctx, const float *x);
/* Width of G's latent input z, without a conditional run's one-hot label. */
AGON_API int64_t agon_metric_latent_dim(const agon_metric_ctx *ctx);
/* Runs G on the caller's latent vectors z[n, latent_dim] (any n) into
 * out[n, sample_shape...], in the run's sampling mode (log.sample_mode).
 * labels[0..n) gives each row's class in a conditional run and must then
 * not be NULL; it is ignored otherwise. */
AGON_API int agon_metric_generate(agon_metric_ctx *ctx, const agon_tensor *z,
                                  const int32_t *labels, agon_tensor *out,
                                  agon_error *err);

/* Set-up of a metric's log entries, once, after create and before
 * training.  Tensor outputs are logged as a series
 * /metrics/<name>/tensors/<tensor> of shape [T, shape...] with its own
 * step column; the metric must emit every declared tensor at every
 * evaluation.  Attributes land on /metrics/<name> next to the metric's
 * settings: its provenance (feature extractor and its hash, sample counts,
 * bandwidths), which a value is only comparable with. */
typedef struct agon_metric_decl agon_metric_decl;

AGON_API int agon_metric_declare_tensor(agon_metric_decl *decl, const char *name,
                                        const agon_shape *shape, agon_error *err);
AGON_API int agon_metric_declare_attr(agon_metric_decl *decl, const char *key,
                                      const char *value, agon_error *err);
AGON_API int agon_metric_declare_attr_double(agon_metric_decl *decl, const char *key,
                                             double value, agon_error *err);
/* Width of G's latent input, as agon_metric_latent_dim. */
AGON_API int64_t agon_metric_decl_latent_dim(const agon_metric_decl *decl);

typedef struct agon_metric_vtable {
    uint32_t struct_size;   /* sizeof(agon_metric_vtable) */
    /* Names of the values it emits, NULL-terminated. */
    const char *const *outputs;
    int (*create)(const agon_node *cfg, const agon_dataset_info *data,
                  void **state, agon_error *err);
    void (*destroy)(void *state);
    int (*evaluate)(void *state, agon_metric_ctx *ctx, agon_error *err);
    /* Optional (may be NULL): declares tensor outputs and provenance
     * attributes.  A metric without scalar outputs (outputs = {NULL}) must
     * declare at least one tensor. */
    int (*declare)(void *state, agon_metric_decl *decl, agon_error *err);
    /* Optional (may be NULL): draws and computes, once, what the metric
     * keeps for the whole run (real samples and their features, fixed
     * latent vectors, a tabulated density), from its own stream, before
     * the first step; G and D are still at their initial parameters, so
     * only the data side belongs here.  Because a resumed run prepares
     * again from the same seed before it restores the checkpoint, a metric
     * that keeps such state only through prepare resumes exactly; one that
     * draws it lazily in evaluate would draw it again from a later point
     * of its stream. */
    int (*prepare)(void *state, agon_metric_ctx *ctx, agon_error *err);
} agon_metric_vtable;

/* ---- optimizers ---------------------------------------------------------
 * The host allocates n_state zeroed tensors per parameter and keeps them;
 * step updates all slots for update number t (1-based). */
typedef struct agon_optimizer_vtable {
    uint32_t struct_size;   /* sizeof(agon_optimizer_vtable) */
    uint32_t n_state;       /* <= AGON_OPTIM_MAX_STATE */
    int (*create)(const agon_node *cfg, void **state, agon_error *err);
    void (*destroy)(void *state);
    void (*step)(void *state, agon_optim_slot *slots, size_t n_slots, int64_t t);
} agon_optimizer_vtable;

/* ---- components and the descriptor -------------------------------------- */
typedef struct agon_component {
    uint32_t struct_size;           /* sizeof(agon_component) */
    agon_kind kind;
    const char *name;               /* registered name, [a-z0-9_]+ */
    const char *summary;            /* one line */
    const agon_param_spec *params;  /* schema (may be NULL: no parameters) */
    const void *vtable;             /* agon_<kind>_vtable */
} agon_component;

typedef struct agon_plugin_descriptor {
    uint32_t abi_version;           /* AGON_ABI_VERSION */
    uint32_t struct_size;           /* sizeof(agon_plugin_descriptor) */
    uint32_t float_size;            /* sizeof(float) */
    const char *name;
    const char *version;
    const char *summary;
    size_t n_components;
    const agon_component *components;
    /* Optional: called once after the checks pass; non-zero fails the load. */
    int (*init)(agon_error *err);
    /* Optional: called once before the plugin is unloaded. */
    void (*fini)(void);
} agon_plugin_descriptor;

#define AGON__COMPONENT(kind_, name_, summary_, params_, vtable_)              \
    {sizeof(agon_component), kind_, name_, summary_, params_, vtable_}
#define AGON_LOSS(name, summary, params, vt)                                   \
    AGON__COMPONENT(AGON_KIND_LOSS, name, summary, params, vt)
#define AGON_MODEL(name, summary, params, vt)                                  \
    AGON__COMPONENT(AGON_KIND_MODEL, name, summary, params, vt)
#define AGON_DATASET(name, summary, params, vt)                                \
    AGON__COMPONENT(AGON_KIND_DATASET, name, summary, params, vt)
#define AGON_METRIC(name, summary, params, vt)                                 \
    AGON__COMPONENT(AGON_KIND_METRIC, name, summary, params, vt)
#define AGON_OPTIMIZER(name, summary, params, vt)                              \
    AGON__COMPONENT(AGON_KIND_OPTIMIZER, name, summary, params, vt)

/* Declares the plugin with optional init/fini functions (may be NULL). */
#define AGON_PLUGIN_EX(name_, version_, summary_, init_, fini_, ...)           \
    static const agon_component agon__components[] = {__VA_ARGS__};            \
    static const agon_plugin_descriptor agon__descriptor = {                   \
        AGON_ABI_VERSION,                                                      \
        sizeof(agon_plugin_descriptor),                                        \
        sizeof(float),                                                         \
        name_,                                                                 \
        version_,                                                              \
        summary_,                                                              \
        sizeof(agon__components) / sizeof(agon__components[0]),                \
        agon__components,                                                      \
        init_,                                                                 \
        fini_};                                                                \
    AGON_PLUGIN_EXPORT const agon_plugin_descriptor *AGON_PLUGIN_ENTRY(void);  \
    AGON_PLUGIN_EXPORT const agon_plugin_descriptor *AGON_PLUGIN_ENTRY(void)   \
    {                                                                          \
        return &agon__descriptor;                                              \
    }

#define AGON_PLUGIN(name_, version_, summary_, ...)                            \
    AGON_PLUGIN_EX(name_, version_, summary_, NULL, NULL, __VA_ARGS__)

/* ===== host side: discovery and loading (used by the agon program) ======= */

typedef struct agon_registry agon_registry;

/* One loaded plugin file. */
typedef struct agon_plugin_record {
    const char *path;                       /* as opened */
    char sha256[65];                        /* hex digest of the file */
    const agon_plugin_descriptor *desc;     /* borrowed from the plugin */
} agon_plugin_record;

/* Creates an empty registry. */
AGON_API agon_registry *agon_registry_create(agon_error *err);

/* Unloads everything: calls each plugin's fini, then dlclose.  Callers
 * destroy every component instance first.  NULL is a no-op. */
AGON_API void agon_registry_destroy(agon_registry *reg);

/* Loads one plugin file: open (dlopen RTLD_NOW|RTLD_LOCAL), symbol
 * (AGON_PLUGIN_ENTRY_NAME), abi (abi_version, struct_size, float_size),
 * components (struct sizes, kinds, names, vtable sizes and functions,
 * schemas), duplicate (a component of the same kind and name already
 * registered from another file: the message names both files), init.
 * Every failure is one line:
 *     "PATH: plugin STEP failed: reason; what to do"
 * with PATH as given and STEP, in the order the checks run:
 *     trust       the file (after symlinks) is writable by every user, or
 *                 sits in a directory every user may write to without the
 *                 sticky bit: refused before dlopen runs any of its code
 *     open        the file is missing or dlopen failed (dlerror's text)
 *     symbol      no AGON_PLUGIN_ENTRY_NAME symbol
 *     descriptor  the entry returned NULL (checked before abi), or the
 *                 plugin has no name, version or components (after abi)
 *     abi         abi_version, struct_size or float_size differ
 *     component   "component N ('name'): why", N counting from 1
 *     duplicate   a kind and name also provided by another loaded file
 *                 (named as it was opened) or twice by this file
 *     init        the plugin's own message
 * Loading a file that is already loaded (same real path) does nothing and
 * returns 0.  Returns 0, AGON_EPLUGIN or AGON_ENOMEM; on failure nothing
 * is registered and the file is closed again. */
AGON_API int agon_registry_load_file(agon_registry *reg, const char *path,
                                     agon_error *err);

/* Loads every "*.so" in `dir` (sorted by name, for determinism), reporting
 * each failing file as one diag line and going on with the others.  A
 * directory that does not exist is skipped silently when `must_exist` is
 * false.  Returns 0 when every file loaded, else the first failure code. */
AGON_API int agon_registry_load_dir(agon_registry *reg, const char *dir,
                                    bool must_exist, agon_diag *diag);

/* The default search path after explicit directories:
 *   1. each directory of the AGON_PLUGIN_PATH environment variable (':'-separated)
 *   2. the build tree's plugin folder when libagon itself is the one in the
 *      build tree, otherwise <libdir>/agon/plugins of the installation.
 * Loads `explicit_dirs` (they must exist: a missing one is the diag line
 * "DIR: plugin directory does not exist") and then the defaults (empty
 * and missing entries skipped).  A directory reached twice (same real
 * path) is searched once.  Returns 0 or the first failure code. */
AGON_API int agon_registry_load_search_path(agon_registry *reg,
                                            const char *const *explicit_dirs,
                                            size_t n_explicit, agon_diag *diag);

/* Finds a component by kind and name; NULL when absent.  *owner (if not
 * NULL) receives the plugin record that provides it. */
AGON_API const agon_component *agon_registry_find(const agon_registry *reg,
                                                  agon_kind kind, const char *name,
                                                  const agon_plugin_record **owner);

/* Closest registered name of `kind` to `name` (did-you-mean), or NULL. */
AGON_API const char *agon_registry_suggest(const agon_registry *reg, agon_kind kind,
                                           const char *name);

AGON_API size_t agon_registry_plugin_count(const agon_registry *reg);
AGON_API const agon_plugin_record *agon_registry_plugin(const agon_registry *reg,
                                                        size_t i);

/* The directories searched so far by agon_registry_load_dir and
 * agon_registry_load_search_path, in order, as given (including those that
 * did not exist), each once; for `agon plugins` and "not found" hints.
 * Borrowed; NULL when i is out of range. */
AGON_API size_t agon_registry_dir_count(const agon_registry *reg);
AGON_API const char *agon_registry_dir(const agon_registry *reg, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* AGON_PLUGIN_H */
