/* The adversarial game (see agon/run.h and docs/architecture.md).
 *
 * Setup builds everything a run needs: the dataset, both networks, the
 * optimizers with their state, every buffer of the step, the log's tables.
 * The step itself then allocates nothing.
 *
 * One training step (alternating updates):
 *   d_steps times: draw a real batch and z, x_fake = G(z) (no gradient into
 *                  G), D on [x_real; x_fake] as one batch, the loss's D part,
 *                  back-propagate into D's parameters, update D;
 *   g_steps times: draw z, D(G(z)), the loss's G part, back-propagate
 *                  through D (D's parameter gradients untouched) into G,
 *                  update G.
 * Simultaneous updates compute both gradients from the same parameters and
 * then update both.  Freezing skips an optimizer's update from a given step
 * on (its loss and gradient norm are still computed and logged).
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agon/log.h"
#include "agon/loss.h"
#include "agon/run.h"
#include "experiment_int.h"
#include "kill_point_int.h"
#include "output_int.h"
#include "train_int.h"

/* ---- components ----------------------------------------------------------- */

typedef struct optimizer {
    const agon_optimizer_vtable *vt;
    void *state;
    agon_optim_slot *slots;     /* one per parameter, in the game arena */
    size_t n_slots;
    int64_t t;                  /* updates done */
} optimizer;

typedef struct game game;

/* Limits on what one metric declares: generous, and they keep the
 * declaration storage fixed-size. */
#define METRIC_MAX_TENSORS 16
#define METRIC_MAX_ATTRS 32
#define METRIC_NAME_MAX 64

typedef struct metric_tensor {
    char name[METRIC_NAME_MAX];
    agon_shape shape;
    float *data;                /* the current evaluation's value */
    bool emitted;
} metric_tensor;

/* A provenance attribute: text, or a number when is_double. */
typedef struct metric_attr {
    char key[METRIC_NAME_MAX];
    char *text;                 /* in the game arena */
    double number;
    bool is_double;
} metric_attr;

typedef struct metric {
    const agon__metric_choice *choice;
    const agon_metric_vtable *vt;
    void *state;
    size_t n_outputs;
    double *row;                /* n_outputs values of the current evaluation */
    bool *emitted;
    agon_log_table *table;      /* NULL for a metric with tensor outputs only */
    metric_tensor tensors[METRIC_MAX_TENSORS];
    size_t n_tensors;
    agon_log_series *series;    /* the tensor outputs, when n_tensors > 0 */
    metric_attr attrs[METRIC_MAX_ATTRS];
    size_t n_attrs;
    agon_rng rng;
} metric;

struct agon_metric_ctx {
    game *g;
    metric *m;
    int64_t step;
};

struct agon_metric_decl {
    game *g;
    metric *m;
};

typedef struct step_stats {
    double loss_d, loss_g, d_real, d_fake, grad_norm_d, grad_norm_g;
} step_stats;

struct game {
    const agon_experiment *exp;
    const agon__train_settings *ts;
    const agon_dataset_vtable *data_vt;
    void *data_state;
    agon_dataset_info info;
    int64_t sample_numel;
    agon_net *G, *D;
    const agon_loss_vtable *loss;
    optimizer opt_g, opt_d;
    metric *metrics;
    size_t n_metrics;
    agon_arena *arena;          /* every buffer of the step */
    agon_tensor z;              /* [batch, latent (+ n_classes)] */
    agon_tensor d_in;           /* [2*batch, D input...]: real rows, then fake rows */
    /* Conditional runs (n_classes > 0): D's input is a sample with its
     * one-hot label appended, so real samples are staged in real_x, and G's
     * share of D's input gradient is gathered into g_dx. */
    int64_t n_classes;          /* 0 for an unconditional run */
    int64_t d_in_numel;         /* per-sample numel of D's input */
    agon_tensor real_x;         /* [batch, sample...] (conditional only) */
    agon_tensor g_dx;           /* [batch, sample...] (conditional only) */
    int32_t *real_labels;       /* [batch] */
    int32_t *fake_labels;       /* [batch] */
    int64_t sample_cols;        /* grid columns of a conditional snapshot */
    float *d_grad;              /* [2*batch] dLoss/dlogit */
    float *g_grad;              /* [batch] */
    agon_tensor d_out_grad;     /* views of d_grad / g_grad as [n, 1] */
    agon_rng rng_init, rng_data, rng_latent, rng_samples;
    /* fixed latent batch for sample snapshots */
    agon_tensor sample_z;       /* [n_samples, latent] */
    agon_tensor sample_x;       /* [n_samples, sample...] */
    /* G's buffers (batch norm's running statistics) are saved here while
     * snapshots and metrics sample in training mode, and put back after:
     * logging must not change what training computes or logs. */
    float *g_buffers_saved;
    size_t g_buffers_numel;
    volatile sig_atomic_t *stop_flag;   /* may be NULL */
    agon_memory_estimate memory;        /* sized before anything large was allocated */
};

/* Long evaluations (metrics drawing many samples) check this between
 * chunks, so that Ctrl-C is honoured within one batch. */
static int check_stop(const game *g, agon_error *err)
{
    if (g->stop_flag && *g->stop_flag)
        return agon_error_set(err, AGON_EINTERRUPTED, "interrupted");
    return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void fill_latent(const game *g, agon_rng *rng, float *z, size_t n)
{
    if (g->ts->latent == AGON__LATENT_UNIFORM)
        agon_rng_fill_uniform(rng, z, n, -1.0f, 1.0f);
    else
        agon_rng_fill_normal(rng, z, n, 0.0f, 1.0f);
}

static void write_one_hot(float *dst, int64_t n_classes, int32_t label)
{
    memset(dst, 0, (size_t)n_classes * sizeof(float));
    dst[label] = 1.0f;
}

/* Fills the first `rows` rows of G's input z: fresh latents, followed in a
 * conditional run by the one-hot labels[i]. */
static void fill_g_input(const game *g, agon_rng *rng, agon_tensor *z, int64_t rows,
                         const int32_t *labels)
{
    const int64_t latent = g->ts->latent_dim;
    if (g->n_classes == 0) {
        fill_latent(g, rng, z->data, (size_t)(rows * latent));
        return;
    }
    const int64_t width = latent + g->n_classes;
    for (int64_t i = 0; i < rows; i++) {
        float *row = z->data + i * width;
        fill_latent(g, rng, row, (size_t)latent);
        write_one_hot(row + latent, g->n_classes, labels[i]);
    }
}

static void draw_labels(const game *g, agon_rng *rng, int32_t *labels, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int32_t)agon_rng_below(rng, (uint64_t)g->n_classes);
}

/* One row of a conditional D input: the sample, then its one-hot label as
 * n_classes extra features (vector data) or constant channels (images). */
static void pack_d_row(const game *g, float *dst, const float *x, int32_t label)
{
    const int64_t numel = g->sample_numel;
    memcpy(dst, x, (size_t)numel * sizeof(float));
    const int64_t plane = g->info.sample_shape.ndim > 1 ? numel / g->info.sample_shape.dim[0] : 1;
    float *extra = dst + numel;
    memset(extra, 0, (size_t)(g->n_classes * plane) * sizeof(float));
    for (int64_t j = 0; j < plane; j++)
        extra[label * plane + j] = 1.0f;
}

static void pack_d_rows(const game *g, float *dst, const float *x, const int32_t *labels,
                        int64_t rows)
{
    for (int64_t i = 0; i < rows; i++)
        pack_d_row(g, dst + i * g->d_in_numel, x + i * g->sample_numel, labels[i]);
}

/* Labels from plugins (a dataset's batch, a metric's request) index the
 * one-hot inputs, so they are checked before use.  The message names the
 * dataset when `from_dataset`; a metric's own prefix names the metric. */
static int check_labels(const game *g, const int32_t *labels, int64_t n, bool from_dataset,
                        agon_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= g->n_classes)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "%s%s%slabel %d is outside the dataset's classes 0 to %lld; "
                                  "this is a bug in the plugin that gave it",
                                  from_dataset ? "dataset '" : "",
                                  from_dataset ? g->exp->dataset.component->name : "",
                                  from_dataset ? "': " : "", (int)labels[i],
                                  (long long)g->n_classes - 1);
    }
    return 0;
}
static int optimizer_setup(game *g, optimizer *opt, const agon__choice *choice, agon_net *net,
                           agon_error *err)
{
    opt->vt = choice->component->vtable;
    int rc = opt->vt->create(choice->section, &opt->state, err);
    if (rc != 0) {
        opt->state = NULL;
        return rc;
    }
    opt->n_slots = agon_net_param_count(net);
    opt->slots = agon_arena_alloc(g->arena, opt->n_slots * sizeof *opt->slots + 1, err);
    if (!opt->slots)
        return AGON_ENOMEM;
    for (size_t i = 0; i < opt->n_slots; i++) {
        agon_param *p = agon_net_param(net, i);
        agon_optim_slot *slot = &opt->slots[i];
        slot->value = &p->value;
        slot->grad = &p->grad;
        for (uint32_t s = 0; s < opt->vt->n_state; s++) {
            rc = agon_arena_tensor(g->arena, &slot->state[s], &p->value.shape, err);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static void optimizer_teardown(optimizer *opt)
{
    if (opt->vt && opt->state)
        opt->vt->destroy(opt->state);
    opt->state = NULL;
}

static int build_net(game *g, const agon__choice *choice, agon_role role,
                     const agon_shape *in_shape, const agon_shape *out_shape,
                     int64_t max_batch, bool planned, agon_net **out, agon_error *err)
{
    *out = planned ? agon_net_create_planned(in_shape, max_batch, err)
                   : agon_net_create(in_shape, max_batch, err);
    if (!*out)
        return err && err->code ? err->code : AGON_ENOMEM;
    const agon_model_vtable *vt = choice->component->vtable;
    int rc = vt->build(choice->section, role, out_shape, *out, &g->rng_init, err);
    if (rc == 0 && planned)
        agon_net_finish_plan(*out);
    if (rc != 0) {
        /* Layer-level messages know no file; name the section that built them. */
        if (err && !strstr(err->message, agon_node_file(choice->section)))
            agon_error_prefix(err, "%s:%d:%d: %s", agon_node_file(choice->section),
                              agon_node_line(choice->section), agon_node_col(choice->section),
                              agon_node_path(choice->section));
        return rc;
    }
    agon_shape got = agon_net_out_shape(*out);
    if (agon_shape_numel(&got) != agon_shape_numel(out_shape)) {
        char want_s[64], got_s[64];
        return agon_node_error(err, AGON_EPLUGIN, choice->section,
                               "model '%s' built a %s with output %s, expected %s; "
                               "this is a bug in the model plugin",
                               choice->component->name, agon_role_name(role),
                               agon_shape_format(&got, got_s, sizeof got_s),
                               agon_shape_format(out_shape, want_s, sizeof want_s));
    }
    return 0;
}

static int metrics_setup(game *g, agon_error *err)
{
    const agon_experiment *exp = g->exp;
    g->n_metrics = exp->n_metrics;
    g->metrics = agon_arena_alloc(g->arena, (g->n_metrics + 1) * sizeof *g->metrics, err);
    if (!g->metrics)
        return AGON_ENOMEM;
    for (size_t i = 0; i < g->n_metrics; i++) {
        metric *m = &g->metrics[i];
        m->choice = &exp->metrics[i];
        m->vt = m->choice->choice.component->vtable;
        while (m->vt->outputs[m->n_outputs])
            m->n_outputs++;
        m->row = agon_arena_alloc(g->arena, m->n_outputs * sizeof *m->row, err);
        m->emitted = agon_arena_alloc(g->arena, m->n_outputs * sizeof *m->emitted, err);
        if (!m->row || !m->emitted)
            return AGON_ENOMEM;
        /* Each metric draws from its own stream, so adding or removing one
         * changes neither training nor the other metrics. */
        char stream[160];
        snprintf(stream, sizeof stream, "metrics/%s", m->choice->name);
        agon_rng_seed(&m->rng, exp->seed, stream);
        int rc = m->vt->create(m->choice->choice.section, &g->info, &m->state, err);
        if (rc != 0) {
            m->state = NULL;
            return rc;
        }
        if (m->vt->declare) {
            agon_metric_decl decl = {.g = g, .m = m};
            rc = m->vt->declare(m->state, &decl, err);
            if (rc != 0)
                return rc;
        }
        if (m->n_outputs == 0 && m->n_tensors == 0)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "metric '%s' declared no output: it has no scalar outputs "
                                  "and its declare added no tensor; this is a bug in the "
                                  "metric plugin",
                                  m->choice->name);
    }
    return 0;
}

static void game_teardown(game *g)
{
    for (size_t i = 0; g->metrics && i < g->n_metrics; i++) {
        if (g->metrics[i].state)
            g->metrics[i].vt->destroy(g->metrics[i].state);
    }
    optimizer_teardown(&g->opt_g);
    optimizer_teardown(&g->opt_d);
    agon_net_destroy(g->G);
    agon_net_destroy(g->D);
    if (g->data_vt && g->data_state)
        g->data_vt->destroy(g->data_state);
    agon_arena_destroy(g->arena);
    memset(g, 0, sizeof *g);
}

/* The per-sample shapes the networks are built for: G's input z (the
 * latent, with a conditional run's one-hot label) and D's input (a sample,
 * with the label as channels or features).  They come from the dataset,
 * so their sizes are checked before anything multiplies them. */
static int game_shapes(game *g, agon_shape *z_shape, agon_shape *d_shape, agon_error *err)
{
    const agon_experiment *exp = g->exp;
    *d_shape = g->info.sample_shape;
    if (exp->train.conditional) {
        if (g->info.n_classes <= 0) {
            const agon_node *train = agon_node_get(agon_config_root(exp->cfg), "train");
            return agon_node_error(err, AGON_ECONFIG, agon_node_get(train, "conditional"),
                                   "a conditional GAN needs class labels, and dataset '%s' "
                                   "has none; use conditional: none or a labelled dataset",
                                   exp->dataset.component->name);
        }
        g->n_classes = g->info.n_classes;
    }
    int64_t g_in;
    /* Labels join images as channels (dim 0) and vectors as features. */
    if (!agon_shape_numel_checked(&g->info.sample_shape, &g->sample_numel) ||
        __builtin_add_overflow(d_shape->dim[0], g->n_classes, &d_shape->dim[0]) ||
        !agon_shape_numel_checked(d_shape, &g->d_in_numel) ||
        __builtin_add_overflow(exp->train.latent_dim, g->n_classes, &g_in)) {
        char buf[128];
        return agon_node_error(err, AGON_ECONFIG, exp->dataset.section,
                               "dataset '%s': samples of shape %s with %lld classes have more "
                               "elements than 64-bit sizes can count; use smaller samples",
                               exp->dataset.component->name,
                               agon_shape_format(&g->info.sample_shape, buf, sizeof buf),
                               (long long)g->info.n_classes);
    }
    *z_shape = agon_shape_make(1, &g_in);
    return 0;
}

/* Arena bytes handed out since `mark`, which moves on to now (a planning
 * arena's count stops at SIZE_MAX, so this never wraps). */
static uint64_t arena_since(const agon_arena *arena, size_t *mark)
{
    size_t now = agon_arena_used(arena), since = now - *mark;
    *mark = now;
    return since;
}

/* Builds the networks and allocates everything the step holds, in this
 * order.  With `planned` the networks are planned and g->arena a planning
 * arena: nothing large gets storage, and *parts (when not NULL) receives
 * what each part takes. */
static int game_alloc(game *g, const agon_shape *z_shape, const agon_shape *d_shape,
                      bool planned, agon_memory_estimate *parts, agon_error *err)
{
    const agon_experiment *exp = g->exp;
    const int64_t batch = exp->train.batch_size;
    int64_t one = 1;
    agon_shape logit_shape = agon_shape_make(1, &one);
    int rc = build_net(g, &exp->generator, AGON_ROLE_GENERATOR, z_shape, &g->info.sample_shape,
                       batch, planned, &g->G, err);
    if (rc == 0)
        rc = build_net(g, &exp->discriminator, AGON_ROLE_DISCRIMINATOR, d_shape, &logit_shape,
                       2 * batch, planned, &g->D, err);
    if (rc != 0)
        return rc;

    size_t mark = agon_arena_used(g->arena);
    rc = optimizer_setup(g, &g->opt_g, &exp->g_optimizer, g->G, err);
    if (rc == 0)
        rc = optimizer_setup(g, &g->opt_d, &exp->d_optimizer, g->D, err);
    if (rc != 0)
        return rc;
    const uint64_t optimizers = arena_since(g->arena, &mark);

    agon_shape zb = agon_shape_batched(batch, z_shape);
    agon_shape db = agon_shape_batched(2 * batch, d_shape);
    if ((rc = agon_arena_tensor(g->arena, &g->z, &zb, err)) != 0 ||
        (rc = agon_arena_tensor(g->arena, &g->d_in, &db, err)) != 0)
        return rc;
    g->d_grad = agon_arena_alloc(g->arena, (size_t)(2 * batch) * sizeof(float), err);
    g->g_grad = agon_arena_alloc(g->arena, (size_t)batch * sizeof(float), err);
    g->real_labels = agon_arena_alloc(g->arena, (size_t)batch * sizeof(int32_t), err);
    g->fake_labels = agon_arena_alloc(g->arena, (size_t)batch * sizeof(int32_t), err);
    if (!g->d_grad || !g->g_grad || !g->real_labels || !g->fake_labels)
        return AGON_ENOMEM;
    if (g->n_classes > 0) {
        agon_shape xb = agon_shape_batched(batch, &g->info.sample_shape);
        if ((rc = agon_arena_tensor(g->arena, &g->real_x, &xb, err)) != 0 ||
            (rc = agon_arena_tensor(g->arena, &g->g_dx, &xb, err)) != 0)
            return rc;
    }
    for (size_t i = 0; i < agon_net_buffer_count(g->G); i++)
        g->g_buffers_numel += (size_t)agon_tensor_numel(&agon_net_buffer(g->G, i)->value);
    if (g->g_buffers_numel > 0) {
        agon_tensor saved;
        agon_shape shape = agon_shape_make(1, (int64_t[]){(int64_t)g->g_buffers_numel});
        if ((rc = agon_arena_tensor(g->arena, &saved, &shape, err)) != 0)
            return rc;
        g->g_buffers_saved = saved.data;
    }
    const uint64_t step = arena_since(g->arena, &mark);

    int64_t n_samples = exp->log.n_samples;
    agon_shape sz = agon_shape_batched(n_samples, z_shape);
    agon_shape sx = agon_shape_batched(n_samples, &g->info.sample_shape);
    if ((rc = agon_arena_tensor(g->arena, &g->sample_z, &sz, err)) != 0 ||
        (rc = agon_arena_tensor(g->arena, &g->sample_x, &sx, err)) != 0)
        return rc;
    if (parts) {
        parts->generator = agon_net_bytes(g->G);
        parts->discriminator = agon_net_bytes(g->D);
        parts->optimizers = optimizers;
        parts->step = step;
        parts->samples = arena_since(g->arena, &mark);
    }
    return 0;
}

static int game_setup(game *g, const agon_experiment *exp, agon_error *err)
{
    memset(g, 0, sizeof *g);
    g->exp = exp;
    g->ts = &exp->train;
    const int64_t latent = exp->train.latent_dim;
    int rc;

    agon_rng_seed(&g->rng_init, exp->seed, "init");
    agon_rng_seed(&g->rng_data, exp->seed, "data");
    agon_rng_seed(&g->rng_latent, exp->seed, "latent");
    agon_rng_seed(&g->rng_samples, exp->seed, "samples");

    g->arena = agon_arena_create(0, err);
    if (!g->arena)
        return AGON_ENOMEM;

    g->data_vt = exp->dataset.component->vtable;
    rc = g->data_vt->create(exp->dataset.section, &g->data_state, &g->info, err);
    if (rc != 0) {
        g->data_state = NULL;
        return rc;
    }
    agon_shape z_shape, d_shape;
    rc = game_shapes(g, &z_shape, &d_shape, err);
    /* Sized first, so that a run too large for this machine is refused
     * before it allocates. */
    if (rc == 0)
        rc = agon__experiment_check_memory(exp, &g->info, &g->memory, err);
    if (rc == 0)
        rc = game_alloc(g, &z_shape, &d_shape, false, NULL, err);
    if (rc != 0)
        return rc;
    g->loss = exp->loss.component->vtable;

    /* The fixed latent batch comes from its own stream so that snapshots
     * are comparable over time and leave training's draws alone. */
    const int64_t n_samples = exp->log.n_samples, g_in = z_shape.dim[0];
    if (g->n_classes == 0) {
        fill_latent(g, &g->rng_samples, g->sample_z.data,
                    (size_t)agon_tensor_numel(&g->sample_z));
    } else {
        /* A grid with one row per class; each column shares one z, so a
         * row differs from the next only by its label. */
        g->sample_cols = (n_samples + g->n_classes - 1) / g->n_classes;
        for (int64_t i = 0; i < n_samples; i++) {
            float *row = g->sample_z.data + i * g_in;
            if (i < g->sample_cols)
                fill_latent(g, &g->rng_samples, row, (size_t)latent);
            else
                memcpy(row, g->sample_z.data + (i % g->sample_cols) * g_in,
                       (size_t)latent * sizeof(float));
            write_one_hot(row + latent, g->n_classes, (int32_t)(i / g->sample_cols));
        }
    }
    return metrics_setup(g, err);
}

int agon__experiment_check_build(agon_experiment *exp, agon_error *err)
{
    game g;
    int rc = game_setup(&g, exp, err);
    if (rc == 0) {
        exp->memory = g.memory;
        exp->memory_known = true;
    }
    game_teardown(&g);
    return rc;
}

static int64_t ckpt_float_state(game *g, float *out, const float *in);

/* A plan may add up to more than 64 bits count: it stops at the most. */
static uint64_t add_saturated(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

int agon__game_plan(const agon_experiment *exp, const agon_dataset_info *info,
                    agon_memory_estimate *est, agon_error *err)
{
    game p;
    memset(&p, 0, sizeof p);
    memset(est, 0, sizeof *est);
    p.exp = exp;
    p.ts = &exp->train;
    p.info = *info;
    /* A model may draw while it builds (what it initialises itself). */
    agon_rng_seed(&p.rng_init, exp->seed, "init");
    agon_shape z_shape, d_shape;
    p.arena = agon_arena_create_planning(err);
    int rc = p.arena ? game_shapes(&p, &z_shape, &d_shape, err) : AGON_ENOMEM;
    if (rc == 0)
        rc = game_alloc(&p, &z_shape, &d_shape, true, est, err);
    if (rc == 0) {
        const uint64_t parts[] = {est->generator, est->discriminator, est->optimizers,
                                  est->step, est->samples};
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
            est->total = add_saturated(est->total, parts[i]);
        /* The checkpoint copies what the networks and optimizers hold, so
         * below 2^62 bytes of them its element count cannot wrap. */
        est->checkpoint = est->total < ((uint64_t)1 << 62)
                              ? (uint64_t)ckpt_float_state(&p, NULL, NULL) * sizeof(float) + 1
                              : est->total;
        est->total = add_saturated(est->total, est->checkpoint);
    }
    optimizer_teardown(&p.opt_g);
    optimizer_teardown(&p.opt_d);
    agon_net_destroy(p.G);
    agon_net_destroy(p.D);
    agon_arena_destroy(p.arena);
    return rc;
}

/* ---- the step ---------------------------------------------------------------- */

static double mean_sigmoid(const float *logits, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += agon_sigmoid(logits[i]);
    return sum / (double)n;
}

static agon_tensor logit_view(float *data, int64_t n)
{
    agon_tensor t = {.data = data};
    int64_t dims[2] = {n, 1};
    t.shape = agon_shape_make(2, dims);
    return t;
}

/* D's gradient on [x_real; x_fake] with fresh draws; leaves D's parameter
 * gradients in D and G's activations of x_fake in G. */
static int d_gradient(game *g, step_stats *st, agon_error *err)
{
    const int64_t n = g->ts->batch_size;
    const bool cond = g->n_classes > 0;
    agon_tensor real = cond ? g->real_x : agon_tensor_rows(&g->d_in, 0, n);
    int rc = g->data_vt->next_batch(g->data_state, &g->rng_data, &real,
                                    cond ? g->real_labels : NULL, err);
    if (rc == 0 && cond)
        rc = check_labels(g, g->real_labels, n, true, err);
    if (rc != 0)
        return rc;
    if (cond)
        draw_labels(g, &g->rng_latent, g->fake_labels, n);
    fill_g_input(g, &g->rng_latent, &g->z, n, g->fake_labels);
    const agon_tensor *fake = agon_net_forward(g->G, &g->z, true);
    if (cond) {
        pack_d_rows(g, g->d_in.data, real.data, g->real_labels, n);
        pack_d_rows(g, g->d_in.data + n * g->d_in_numel, fake->data, g->fake_labels, n);
    } else {
        agon_tensor fake_rows = agon_tensor_rows(&g->d_in, n, n);
        memcpy(fake_rows.data, fake->data, (size_t)agon_tensor_numel(fake) * sizeof(float));
    }

    agon_net_zero_grad(g->D);
    agon_net_set_batch_groups(g->D, g->ts->d_joint_stats ? 1 : 2);
    const agon_tensor *logits = agon_net_forward(g->D, &g->d_in, true);
    st->loss_d = g->loss->d_loss(logits->data, (size_t)n, logits->data + n, (size_t)n,
                                 g->d_grad, g->d_grad + n);
    st->d_real = mean_sigmoid(logits->data, n);
    st->d_fake = mean_sigmoid(logits->data + n, n);
    agon_tensor dout = logit_view(g->d_grad, 2 * n);
    agon_net_backward(g->D, &dout, true, false);
    st->grad_norm_d = agon_net_grad_norm(g->D);
    return 0;
}

/* G's gradient through D for a fresh z (or, when reuse_fake, for the z of
 * the last d_gradient, whose G activations are still in place). */
static void g_gradient(game *g, bool reuse_fake, step_stats *st)
{
    const int64_t n = g->ts->batch_size;
    const bool cond = g->n_classes > 0;
    agon_tensor d_view = agon_tensor_rows(&g->d_in, n, n);
    const agon_tensor *d_input = &d_view;
    if (!reuse_fake) {
        if (cond)
            draw_labels(g, &g->rng_latent, g->fake_labels, n);
        fill_g_input(g, &g->rng_latent, &g->z, n, g->fake_labels);
        const agon_tensor *fake = agon_net_forward(g->G, &g->z, true);
        if (cond)
            pack_d_rows(g, d_view.data, fake->data, g->fake_labels, n);
        else
            d_input = fake;
    }
    agon_net_set_batch_groups(g->D, 1);
    const agon_tensor *logits = agon_net_forward(g->D, d_input, true);
    st->loss_g = g->loss->g_loss(logits->data, (size_t)n, g->g_grad);
    agon_tensor dout = logit_view(g->g_grad, n);
    const agon_tensor *dx = agon_net_backward(g->D, &dout, false, true);
    if (cond) {
        /* G's output is the sample part of each D input row. */
        for (int64_t i = 0; i < n; i++)
            memcpy(g->g_dx.data + i * g->sample_numel, dx->data + i * g->d_in_numel,
                   (size_t)g->sample_numel * sizeof(float));
        dx = &g->g_dx;
    }
    agon_net_zero_grad(g->G);
    agon_net_backward(g->G, dx, true, false);
    st->grad_norm_g = agon_net_grad_norm(g->G);
}

static void optimizer_step(optimizer *opt)
{
    opt->t++;
    opt->vt->step(opt->state, opt->slots, opt->n_slots, opt->t);
}

/* Step number `step` is 1-based. */
static int game_step(game *g, int64_t step, step_stats *st, agon_error *err)
{
    const agon__train_settings *ts = g->ts;
    bool d_frozen = ts->freeze_d_from >= 0 && step >= ts->freeze_d_from;
    bool g_frozen = ts->freeze_g_from >= 0 && step >= ts->freeze_g_from;
    int rc;
    if (ts->update == AGON__UPDATE_SIMULTANEOUS) {
        if ((rc = d_gradient(g, st, err)) != 0)
            return rc;
        g_gradient(g, true, st);
        if (!d_frozen)
            optimizer_step(&g->opt_d);
        if (!g_frozen)
            optimizer_step(&g->opt_g);
        return 0;
    }
    for (int64_t k = 0; k < ts->d_steps; k++) {
        if ((rc = d_gradient(g, st, err)) != 0)
            return rc;
        if (!d_frozen)
            optimizer_step(&g->opt_d);
    }
    for (int64_t k = 0; k < ts->g_steps; k++) {
        g_gradient(g, false, st);
        if (!g_frozen)
            optimizer_step(&g->opt_g);
    }
    return 0;
}

/* ---- metric context ---------------------------------------------------------- */

/* G's mode when it samples for snapshots and metrics (log.sample_mode). */
static bool sample_training(const game *g)
{
    return g->exp->log.sample_training_mode;
}

/* Copies G's buffers out (save) or back in (restore).  Training mode
 * updates the running statistics on every forward pass; sampling for the
 * log must leave them as training left them. */
static void g_buffers_copy(game *g, bool save)
{
    if (!sample_training(g) || g->g_buffers_numel == 0)
        return;
    float *at = g->g_buffers_saved;
    for (size_t i = 0; i < agon_net_buffer_count(g->G); i++) {
        agon_tensor *t = &agon_net_buffer(g->G, i)->value;
        size_t bytes = (size_t)agon_tensor_numel(t) * sizeof(float);
        if (save)
            memcpy(at, t->data, bytes);
        else
            memcpy(t->data, at, bytes);
        at += agon_tensor_numel(t);
    }
}

/* G's forward pass for the log (snapshots, metrics). */
static const agon_tensor *sample_forward(game *g, const agon_tensor *z)
{
    g_buffers_copy(g, true);
    const agon_tensor *x = agon_net_forward(g->G, z, sample_training(g));
    g_buffers_copy(g, false);
    return x;
}

int agon_metric_fake_labeled(agon_metric_ctx *ctx, agon_tensor *out, int32_t *labels,
                             agon_error *err)
{
    game *g = ctx->g;
    int64_t n = out->shape.dim[0];
    int64_t chunk = g->ts->batch_size;
    for (int64_t i = 0; i < n; i += chunk) {
        int rc = check_stop(g, err);
        if (rc != 0)
            return rc;
        int64_t rows = min64(chunk, n - i);
        agon_tensor z = agon_tensor_rows(&g->z, 0, rows);
        if (g->n_classes > 0)
            draw_labels(g, &ctx->m->rng, g->fake_labels, rows);
        fill_g_input(g, &ctx->m->rng, &z, rows, g->fake_labels);
        const agon_tensor *x = sample_forward(g, &z);
        memcpy(out->data + i * g->sample_numel, x->data,
               (size_t)(rows * g->sample_numel) * sizeof(float));
        for (int64_t r = 0; labels && r < rows; r++)
            labels[i + r] = g->n_classes > 0 ? g->fake_labels[r] : -1;
    }
    return 0;
}

int agon_metric_fake(agon_metric_ctx *ctx, agon_tensor *out, agon_error *err)
{
    return agon_metric_fake_labeled(ctx, out, NULL, err);
}

int agon_metric_real_labeled(agon_metric_ctx *ctx, agon_tensor *out, int32_t *labels,
                             agon_error *err)
{
    game *g = ctx->g;
    int rc = check_stop(g, err);
    if (rc != 0)
        return rc;
    if (labels && g->info.n_classes <= 0)
        return agon_error_set(err, AGON_EPLUGIN,
                              "metric '%s' asked for labels, and dataset '%s' has none; "
                              "use it with a labelled dataset",
                              ctx->m->choice->name, g->exp->dataset.component->name);
    return g->data_vt->next_batch(g->data_state, &ctx->m->rng, out, labels, err);
}

int agon_metric_real(agon_metric_ctx *ctx, agon_tensor *out, agon_error *err)
{
    return agon_metric_real_labeled(ctx, out, NULL, err);
}

int agon_metric_discriminate_labeled(agon_metric_ctx *ctx, const agon_tensor *x,
                                     const int32_t *labels, float *logits, agon_error *err)
{
    game *g = ctx->g;
    if (g->n_classes > 0 && !labels)
        return agon_error_set(err, AGON_EPLUGIN,
                              "metric '%s' ran the conditional discriminator without labels; "
                              "it must call agon_metric_discriminate_labeled",
                              ctx->m->choice->name);
    int64_t n = x->shape.dim[0];
    if (g->n_classes > 0) {
        int rc = check_labels(g, labels, n, false, err);
        if (rc != 0)
            return rc;
    }
    int64_t chunk = agon_net_max_batch(g->D);
    agon_net_set_batch_groups(g->D, 1);
    for (int64_t i = 0; i < n; i += chunk) {
        int rc = check_stop(g, err);
        if (rc != 0)
            return rc;
        int64_t rows = min64(chunk, n - i);
        agon_tensor view = agon_tensor_rows(x, i, rows);
        if (g->n_classes > 0) {
            pack_d_rows(g, g->d_in.data, view.data, labels + i, rows);
            view = agon_tensor_rows(&g->d_in, 0, rows);
        }
        const agon_tensor *l = agon_net_forward(g->D, &view, false);
        memcpy(logits + i, l->data, (size_t)rows * sizeof(float));
    }
    return 0;
}

int agon_metric_discriminate(agon_metric_ctx *ctx, const agon_tensor *x, float *logits,
                             agon_error *err)
{
    return agon_metric_discriminate_labeled(ctx, x, NULL, logits, err);
}

bool agon_metric_conditional(const agon_metric_ctx *ctx)
{
    return ctx->g->n_classes > 0;
}

const agon_dataset_info *agon_metric_dataset(const agon_metric_ctx *ctx)
{
    return &ctx->g->info;
}

agon_rng *agon_metric_rng(agon_metric_ctx *ctx)
{
    return &ctx->m->rng;
}

int64_t agon_metric_step(const agon_metric_ctx *ctx)
{
    return ctx->step;
}

int agon_metric_emit(agon_metric_ctx *ctx, const char *name, double value, agon_error *err)
{
    metric *m = ctx->m;
    for (size_t i = 0; i < m->n_outputs; i++) {
        if (strcmp(m->vt->outputs[i], name) == 0) {
            m->row[i] = value;
            m->emitted[i] = true;
            return 0;
        }
    }
    return agon_error_set(err, AGON_EPLUGIN,
                          "metric '%s' emitted '%s', which it did not declare in its outputs",
                          m->choice->name, name);
}

int agon_metric_emit_tensor(agon_metric_ctx *ctx, const char *name, const float *data,
                            agon_error *err)
{
    metric *m = ctx->m;
    for (size_t i = 0; i < m->n_tensors; i++) {
        metric_tensor *t = &m->tensors[i];
        if (strcmp(t->name, name) == 0) {
            memcpy(t->data, data, (size_t)agon_shape_numel(&t->shape) * sizeof(float));
            t->emitted = true;
            return 0;
        }
    }
    return agon_error_set(err, AGON_EPLUGIN,
                          "metric '%s' emitted tensor '%s', which it did not declare",
                          m->choice->name, name);
}

int64_t agon_metric_latent_dim(const agon_metric_ctx *ctx)
{
    return ctx->g->ts->latent_dim;
}

double agon_metric_data_density(const agon_metric_ctx *ctx, const float *x)
{
    const game *g = ctx->g;
    return g->info.density ? g->info.density(g->data_state, x) : NAN;
}

int agon_metric_generate(agon_metric_ctx *ctx, const agon_tensor *z, const int32_t *labels,
                         agon_tensor *out, agon_error *err)
{
    game *g = ctx->g;
    const int64_t latent = g->ts->latent_dim;
    const int64_t n = z->shape.dim[0];
    if (z->shape.ndim != 2 || z->shape.dim[1] != latent || out->shape.dim[0] != n ||
        agon_tensor_numel(out) != n * g->sample_numel) {
        char zs[64], os[64];
        return agon_error_set(err, AGON_EPLUGIN,
                              "metric '%s' asked G for %s samples from z of shape %s; z "
                              "must be [n, %lld] and the output [n, sample...]",
                              ctx->m->choice->name,
                              agon_shape_format(&out->shape, os, sizeof os),
                              agon_shape_format(&z->shape, zs, sizeof zs), (long long)latent);
    }
    if (g->n_classes > 0) {
        if (!labels)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "metric '%s' ran the conditional generator without labels; "
                                  "pass one label per latent vector",
                                  ctx->m->choice->name);
        int rc = check_labels(g, labels, n, false, err);
        if (rc != 0)
            return rc;
    }
    const int64_t width = latent + g->n_classes;
    const int64_t chunk = g->ts->batch_size;
    for (int64_t i = 0; i < n; i += chunk) {
        int rc = check_stop(g, err);
        if (rc != 0)
            return rc;
        int64_t rows = min64(chunk, n - i);
        for (int64_t r = 0; r < rows; r++) {
            float *dst = g->z.data + r * width;
            memcpy(dst, z->data + (i + r) * latent, (size_t)latent * sizeof(float));
            if (g->n_classes > 0)
                write_one_hot(dst + latent, g->n_classes, labels[i + r]);
        }
        agon_tensor zin = agon_tensor_rows(&g->z, 0, rows);
        const agon_tensor *x = sample_forward(g, &zin);
        memcpy(out->data + i * g->sample_numel, x->data,
               (size_t)(rows * g->sample_numel) * sizeof(float));
    }
    return 0;
}

/* ---- metric declarations ------------------------------------------------------ */

/* Names of tensors and attributes become HDF5 names: the same alphabet as
 * outputs. */
static bool decl_name_ok(const char *name)
{
    if (!name || !name[0] || strlen(name) >= METRIC_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    }
    return true;
}

static int decl_bad_name(const agon_metric_decl *decl, const char *what, const char *name,
                         agon_error *err)
{
    return agon_error_set(err, AGON_EPLUGIN,
                          "metric '%s' declared %s '%s', which is not 1 to %d characters "
                          "of [a-z0-9_]; this is a bug in the metric plugin",
                          decl->m->choice->name, what, name ? name : "(null)",
                          METRIC_NAME_MAX - 1);
}

int agon_metric_declare_tensor(agon_metric_decl *decl, const char *name,
                               const agon_shape *shape, agon_error *err)
{
    metric *m = decl->m;
    if (!decl_name_ok(name) || strcmp(name, "step") == 0)
        return decl_bad_name(decl, "tensor", name, err);
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (strcmp(m->tensors[i].name, name) == 0)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "metric '%s' declared tensor '%s' twice; this is a bug in "
                                  "the metric plugin",
                                  m->choice->name, name);
    }
    if (m->n_tensors == METRIC_MAX_TENSORS)
        return agon_error_set(err, AGON_EPLUGIN,
                              "metric '%s' declared more than %d tensors; log fewer",
                              m->choice->name, METRIC_MAX_TENSORS);
    /* One more dimension (the snapshot index) must fit a series. */
    if (shape->ndim < 0 || shape->ndim >= AGON_MAX_DIMS || agon_shape_numel(shape) < 1) {
        char buf[96];
        return agon_error_set(err, AGON_EPLUGIN,
                              "metric '%s' declared tensor '%s' of shape %s; a tensor output "
                              "has 0 to %d dimensions and at least one element",
                              m->choice->name, name, agon_shape_format(shape, buf, sizeof buf),
                              AGON_MAX_DIMS - 1);
    }
    metric_tensor *t = &m->tensors[m->n_tensors];
    t->data = agon_arena_alloc(decl->g->arena,
                               (size_t)agon_shape_numel(shape) * sizeof(float), err);
    if (!t->data)
        return AGON_ENOMEM;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->shape = *shape;
    m->n_tensors++;
    return 0;
}

static metric_attr *decl_attr(agon_metric_decl *decl, const char *key, agon_error *err)
{
    metric *m = decl->m;
    if (!decl_name_ok(key) || strcmp(key, "plugin") == 0 || strcmp(key, "every") == 0) {
        decl_bad_name(decl, "attribute", key, err);
        return NULL;
    }
    /* A key the metric's settings already give would be overwritten
     * silently in the log. */
    if (agon_node_get(m->choice->choice.section, key)) {
        agon_error_set(err, AGON_EPLUGIN,
                       "metric '%s' declared attribute '%s', which is also one of its "
                       "settings; this is a bug in the metric plugin",
                       m->choice->name, key);
        return NULL;
    }
    for (size_t i = 0; i < m->n_attrs; i++) {
        if (strcmp(m->attrs[i].key, key) == 0)
            return &m->attrs[i];    /* a later declaration replaces the value */
    }
    if (m->n_attrs == METRIC_MAX_ATTRS) {
        agon_error_set(err, AGON_EPLUGIN, "metric '%s' declared more than %d attributes",
                       m->choice->name, METRIC_MAX_ATTRS);
        return NULL;
    }
    metric_attr *a = &m->attrs[m->n_attrs++];
    snprintf(a->key, sizeof a->key, "%s", key);
    return a;
}

int agon_metric_declare_attr(agon_metric_decl *decl, const char *key, const char *value,
                             agon_error *err)
{
    metric_attr *a = decl_attr(decl, key, err);
    if (!a)
        return err ? err->code : AGON_EPLUGIN;
    size_t len = strlen(value) + 1;
    a->text = agon_arena_alloc(decl->g->arena, len, err);
    if (!a->text)
        return AGON_ENOMEM;
    memcpy(a->text, value, len);
    a->is_double = false;
    return 0;
}

int agon_metric_declare_attr_double(agon_metric_decl *decl, const char *key, double value,
                                    agon_error *err)
{
    metric_attr *a = decl_attr(decl, key, err);
    if (!a)
        return err ? err->code : AGON_EPLUGIN;
    a->text = NULL;
    a->number = value;
    a->is_double = true;
    return 0;
}

int64_t agon_metric_decl_latent_dim(const agon_metric_decl *decl)
{
    return decl->g->ts->latent_dim;
}

static int evaluate_metric(game *g, metric *m, int64_t step, agon_error *err)
{
    agon_metric_ctx ctx = {.g = g, .m = m, .step = step};
    for (size_t i = 0; i < m->n_outputs; i++)
        m->emitted[i] = false;
    for (size_t i = 0; i < m->n_tensors; i++)
        m->tensors[i].emitted = false;
    int rc = m->vt->evaluate(m->state, &ctx, err);
    if (rc == 0)
        rc = check_stop(g, err);
    if (rc != 0) {
        if (rc != AGON_EINTERRUPTED)
            agon_error_prefix(err, "metric '%s' at step %lld", m->choice->name,
                              (long long)step);
        return rc;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        if (!m->emitted[i])
            return agon_error_set(err, AGON_EPLUGIN,
                                  "metric '%s' did not emit its output '%s' at step %lld",
                                  m->choice->name, m->vt->outputs[i], (long long)step);
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (!m->tensors[i].emitted)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "metric '%s' did not emit its tensor '%s' at step %lld",
                                  m->choice->name, m->tensors[i].name, (long long)step);
    }
    int rc2 = m->table ? agon_log_table_append(m->table, step, m->row, err) : 0;
    if (rc2 == 0 && m->series) {
        const float *ptrs[METRIC_MAX_TENSORS];
        for (size_t i = 0; i < m->n_tensors; i++)
            ptrs[i] = m->tensors[i].data;
        rc2 = agon_log_series_append(m->series, step, ptrs, err);
    }
    return rc2;
}

/* Runs every metric's prepare, in order, before the first step (also in a
 * resumed run, before the checkpoint restores the metrics' streams). */
static int metrics_prepare(game *g, agon_error *err)
{
    for (size_t i = 0; i < g->n_metrics; i++) {
        metric *m = &g->metrics[i];
        if (!m->vt->prepare)
            continue;
        agon_metric_ctx ctx = {.g = g, .m = m, .step = 0};
        int rc = m->vt->prepare(m->state, &ctx, err);
        if (rc == 0)
            rc = check_stop(g, err);
        if (rc != 0) {
            if (rc != AGON_EINTERRUPTED)
                agon_error_prefix(err, "metric '%s' before the first step", m->choice->name);
            return rc;
        }
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------- */

/* A checkpoint is two blocks per slot (docs/hdf5-layout.md):
 *   floats  G's and D's parameters and buffers, then both optimizers'
 *           state tensors, in a fixed order;
 *   words   CKPT_MAGIC, the step, the number of floats, the FNV-1a hash
 *           of the floats' bytes, both optimizers' update counts, every
 *           random stream (agon_rng, 10 words each), the log cursors (rows
 *           of every table and series), and last the FNV-1a hash of all
 *           the words before it.
 * Slots alternate, and the floats are written before the words that vouch
 * for them, so a write cut short by a crash leaves the other slot whole. */
#define CKPT_MAGIC 0x31706b636e6f6761ull   /* "agonckp1" */
enum { CKPT_HEADER = 6, RNG_WORDS = 10, CKPT_SLOTS = 2 };

/* What a resume found changed (with --force) and how many resumes the log
 * already records: written as the log's next /provenance/resumes record. */
typedef struct resume_note {
    int64_t n_resumes;
    char changes[2048];             /* "; "-separated, "" when nothing changed */
} resume_note;

static void note_change(resume_note *note, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_change(resume_note *note, const char *fmt, ...)
{
    size_t used = strlen(note->changes);
    if (used + 3 >= sizeof note->changes)
        return;
    if (used)
        used += (size_t)snprintf(note->changes + used, sizeof note->changes - used, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note->changes + used, sizeof note->changes - used, fmt, ap);
    va_end(ap);
}

typedef struct run_log {
    agon_log *log;
    agon_log_table *scalars;
    agon_log_series *samples;
    agon_log_series *params[AGON_ROLE_COUNT];
    const float **param_ptrs[AGON_ROLE_COUNT];  /* per role, one per parameter */
    /* Every table and series in declaration order: the log cursors. */
    agon_log_table **tables;
    size_t n_tables;
    agon_log_series **series;
    size_t n_series;
    /* How many tables the log has in all (count_outputs): a checkpoint
     * holds every table's cursor first, then every series', whatever
     * order they are declared in. */
    size_t tables_total;
    agon_rng **rngs;
    size_t n_rngs;
    agon_log_block *ckpt_words[CKPT_SLOTS], *ckpt_floats[CKPT_SLOTS];
    uint64_t *words;
    float *floats;
    int64_t n_words, n_floats;
    int next_slot;
} run_log;

static const char *const scalar_columns[] = {"loss_d", "loss_g", "d_real",
                                             "d_fake", "grad_norm_d", "grad_norm_g"};
enum { N_SCALARS = sizeof scalar_columns / sizeof scalar_columns[0] };

/* ---- checkpoints ------------------------------------------------------------------ */

static uint64_t fnv1a_bytes(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Walks the float state in checkpoint order: copies it out to `out`, or
 * in from `in` (one of them NULL; both NULL counts).  Returns the count. */
static int64_t ckpt_float_state(game *g, float *out, const float *in)
{
    int64_t at = 0;
    agon_net *nets[2] = {g->G, g->D};
    optimizer *opts[2] = {&g->opt_g, &g->opt_d};
#define CKPT_VISIT(t)                                                          \
    do {                                                                       \
        int64_t n_ = agon_tensor_numel(t);                                     \
        if (out)                                                               \
            memcpy(out + at, (t)->data, (size_t)n_ * sizeof(float));           \
        if (in)                                                                \
            memcpy((t)->data, in + at, (size_t)n_ * sizeof(float));            \
        at += n_;                                                              \
    } while (0)
    for (int r = 0; r < 2; r++) {
        for (size_t i = 0; i < agon_net_param_count(nets[r]); i++)
            CKPT_VISIT(&agon_net_param(nets[r], i)->value);
        for (size_t i = 0; i < agon_net_buffer_count(nets[r]); i++)
            CKPT_VISIT(&agon_net_buffer(nets[r], i)->value);
    }
    for (int o = 0; o < 2; o++) {
        for (size_t i = 0; i < opts[o]->n_slots; i++)
            for (uint32_t k = 0; k < opts[o]->vt->n_state; k++)
                CKPT_VISIT(&opts[o]->slots[i].state[k]);
    }
#undef CKPT_VISIT
    return at;
}

/* Every random stream of the run, in checkpoint order. */
static int collect_rngs(game *g, run_log *rl, agon_error *err)
{
    size_t n = 4 + g->n_metrics + agon_net_rng_count(g->G) + agon_net_rng_count(g->D);
    rl->rngs = agon_arena_alloc(g->arena, n * sizeof *rl->rngs, err);
    if (!rl->rngs)
        return AGON_ENOMEM;
    rl->rngs[0] = &g->rng_init;
    rl->rngs[1] = &g->rng_data;
    rl->rngs[2] = &g->rng_latent;
    rl->rngs[3] = &g->rng_samples;
    size_t at = 4;
    for (size_t i = 0; i < g->n_metrics; i++)
        rl->rngs[at++] = &g->metrics[i].rng;
    for (size_t i = 0; i < agon_net_rng_count(g->G); i++)
        rl->rngs[at++] = agon_net_rng(g->G, i);
    for (size_t i = 0; i < agon_net_rng_count(g->D); i++)
        rl->rngs[at++] = agon_net_rng(g->D, i);
    rl->n_rngs = at;
    return 0;
}

static void rng_to_words(const agon_rng *r, uint64_t *w)
{
    for (int i = 0; i < 4; i++) {
        w[i] = r->s[i];
        w[4 + i] = r->epoch_origin[i];
    }
    w[8] = (uint64_t)r->epoch_size;
    w[9] = (uint64_t)r->epoch_pos;
}

static void rng_from_words(agon_rng *r, const uint64_t *w)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = w[i];
        r->epoch_origin[i] = w[4 + i];
    }
    r->epoch_size = (int64_t)w[8];
    r->epoch_pos = (int64_t)w[9];
}

/* Sizes the checkpoint and declares its blocks (SETUP phase; a reopened
 * log's blocks must have these sizes). */
static int ckpt_declare(game *g, run_log *rl, agon_error *err)
{
    int rc = collect_rngs(g, rl, err);
    if (rc != 0)
        return rc;
    rl->n_floats = ckpt_float_state(g, NULL, NULL);
    rl->n_words = CKPT_HEADER + (int64_t)rl->n_rngs * RNG_WORDS + (int64_t)rl->n_tables +
                  (int64_t)rl->n_series + 1;
    rl->words = agon_arena_alloc(g->arena, (size_t)rl->n_words * sizeof *rl->words, err);
    rl->floats = agon_arena_alloc(g->arena, (size_t)rl->n_floats * sizeof *rl->floats + 1, err);
    if (!rl->words || !rl->floats)
        return AGON_ENOMEM;
    for (int s = 0; s < CKPT_SLOTS; s++) {
        char path[64];
        snprintf(path, sizeof path, "/checkpoint/%d/words", s);
        rl->ckpt_words[s] = agon_log_block_declare(rl->log, path, AGON_LOG_BLOCK_U64,
                                                   rl->n_words, err);
        snprintf(path, sizeof path, "/checkpoint/%d/floats", s);
        rl->ckpt_floats[s] = rl->ckpt_words[s]
                                 ? agon_log_block_declare(rl->log, path, AGON_LOG_BLOCK_F32,
                                                          rl->n_floats > 0 ? rl->n_floats : 1,
                                                          err)
                                 : NULL;
        if (!rl->ckpt_floats[s]) {
            if (err->code == AGON_EDATA)
                agon_error_prefix(err, "the log's checkpoint does not fit this experiment "
                                       "(other networks, optimizers or metrics)");
            return err->code ? err->code : AGON_EIO;
        }
    }
    return 0;
}

/* Writes the state after `step` into `slots` slots (1: the next one in
 * turn; 2: both), after flushing the log, so that the rows the cursors
 * count are on disk before the checkpoint that counts them. */
static int ckpt_write(game *g, run_log *rl, int64_t step, int slots, agon_error *err)
{
    int rc = agon_log_flush(rl->log, err);
    if (rc != 0)
        return rc;
    ckpt_float_state(g, rl->floats, NULL);
    uint64_t *w = rl->words;
    w[0] = CKPT_MAGIC;
    w[1] = (uint64_t)step;
    w[2] = (uint64_t)rl->n_floats;
    w[3] = fnv1a_bytes(rl->floats, (size_t)rl->n_floats * sizeof(float));
    w[4] = (uint64_t)g->opt_g.t;
    w[5] = (uint64_t)g->opt_d.t;
    int64_t at = CKPT_HEADER;
    for (size_t i = 0; i < rl->n_rngs; i++, at += RNG_WORDS)
        rng_to_words(rl->rngs[i], w + at);
    for (size_t i = 0; i < rl->n_tables; i++)
        w[at++] = (uint64_t)agon_log_table_rows(rl->tables[i]);
    for (size_t i = 0; i < rl->n_series; i++)
        w[at++] = (uint64_t)agon_log_series_rows(rl->series[i]);
    w[at] = fnv1a_bytes(w, (size_t)at * sizeof *w);
    for (int k = 0; k < slots && rc == 0; k++) {
        int s = rl->next_slot;
        rl->next_slot = (s + 1) % CKPT_SLOTS;
        rc = agon_log_block_write(rl->ckpt_floats[s], rl->floats, err);
        if (rc == 0)
            rc = agon_log_block_write(rl->ckpt_words[s], w, err);
    }
    return rc;
}

/* Reads slot s into rl->words / rl->floats; true when it holds a whole
 * checkpoint. */
static bool ckpt_read_slot(run_log *rl, int s, agon_error *err)
{
    if (agon_log_block_read(rl->ckpt_words[s], rl->words, err) != 0)
        return false;
    const uint64_t *w = rl->words;
    int64_t last = rl->n_words - 1;
    if (w[0] != CKPT_MAGIC || w[2] != (uint64_t)rl->n_floats ||
        w[last] != fnv1a_bytes(w, (size_t)last * sizeof *w))
        return false;
    if (agon_log_block_read(rl->ckpt_floats[s], rl->floats, err) != 0)
        return false;
    return w[3] == fnv1a_bytes(rl->floats, (size_t)rl->n_floats * sizeof(float));
}

/* Restores the latest whole checkpoint into the game: *step and the log
 * cursors (tables, then series) come back through the out arguments. */
static int ckpt_restore(game *g, run_log *rl, int64_t *step, int64_t *cursors,
                        agon_error *err)
{
    int best = -1;
    uint64_t best_step = 0;
    for (int s = 0; s < CKPT_SLOTS; s++) {
        agon_error ignored = {0};
        if (ckpt_read_slot(rl, s, &ignored) && (best < 0 || rl->words[1] > best_step)) {
            best = s;
            best_step = rl->words[1];
        }
    }
    if (best < 0)
        return agon_error_set(err, AGON_EDATA,
                              "%s: holds no whole checkpoint (both slots are damaged or "
                              "were never written); start the run again with --overwrite",
                              agon_log_path(rl->log));
    if (!ckpt_read_slot(rl, best, err))
        return err->code ? err->code : AGON_EDATA;
    const uint64_t *w = rl->words;
    ckpt_float_state(g, NULL, rl->floats);
    *step = (int64_t)w[1];
    g->opt_g.t = (int64_t)w[4];
    g->opt_d.t = (int64_t)w[5];
    int64_t at = CKPT_HEADER;
    for (size_t i = 0; i < rl->n_rngs; i++, at += RNG_WORDS)
        rng_from_words(rl->rngs[i], w + at);
    for (size_t i = 0; i < rl->n_tables + rl->n_series; i++)
        cursors[i] = (int64_t)w[at++];
    rl->next_slot = (best + 1) % CKPT_SLOTS;
    return 0;
}


static void iso_time(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The group <base>/<plugin> describing the plugin file `rec`. */
static int write_plugin_record(agon_log *log, const char *base, const agon_plugin_record *rec,
                               agon_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", base, rec->desc->name);
    int rc = agon_log_attr_string(log, path, "name", rec->desc->name, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, path, "version", rec->desc->version, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, path, "file", rec->path, err);
    if (rc == 0)
        rc = agon_log_attr_string(log, path, "sha256", rec->sha256, err);
    if (rc == 0) {
        char components[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < rec->desc->n_components && used < sizeof components; i++) {
            int w = snprintf(components + used, sizeof components - used, "%s%s:%s",
                             i ? "," : "", agon_kind_name(rec->desc->components[i].kind),
                             rec->desc->components[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
        rc = agon_log_attr_string(log, path, "components", components, err);
    }
    return rc;
}

int agon__write_provenance(agon_log *log, const agon__choice *choice, agon_error *err)
{
    return write_plugin_record(log, "/provenance/plugins", choice->owner, err);
}

/* Every plugin the experiment uses, once each (several components may come
 * from one file); returns how many. */
static size_t experiment_plugins(const agon_experiment *exp, const agon_plugin_record **out,
                                 size_t cap)
{
    const agon__choice *choices[] = {&exp->dataset,     &exp->generator,   &exp->discriminator,
                                     &exp->loss,        &exp->g_optimizer, &exp->d_optimizer};
    size_t n = 0;
    size_t total = sizeof choices / sizeof choices[0] + exp->n_metrics;
    for (size_t i = 0; i < total; i++) {
        const agon_plugin_record *rec = i < sizeof choices / sizeof choices[0]
                                            ? choices[i]->owner
                                            : exp->metrics[i - sizeof choices / sizeof choices[0]]
                                                  .choice.owner;
        bool seen = false;
        for (size_t k = 0; k < n; k++)
            seen = seen || out[k] == rec;
        if (!seen && n < cap)
            out[n++] = rec;
    }
    return n;
}

/* /provenance/resumes/<n>: where, with what and from which step a resumed
 * run went on, and what --force let change; the first steps keep the root
 * attributes and /provenance/plugins they were trained with. */
static int write_resume_record(agon_log *log, const game *g, const resume_note *note,
                               int64_t from_step, const char *when, const char *host,
                               bool forced, agon_error *err)
{
    char path[128];
    snprintf(path, sizeof path, "/provenance/resumes/%lld", (long long)note->n_resumes + 1);
    int rc = agon_log_attr_int(log, path, "from_step", from_step, err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "time", when, err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "host", host, err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "cpu", agon_cpu_model(), err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "blas", agon_blas_describe(), err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "kernels",
                                           agon_kernels_name(agon_blas_kernels()), err);
    if (rc == 0) rc = agon_log_attr_int(log, path, "forced", forced ? 1 : 0, err);
    if (rc == 0) rc = agon_log_attr_string(log, path, "changes", note->changes, err);
    const agon_plugin_record *recs[64];
    size_t n = experiment_plugins(g->exp, recs, sizeof recs / sizeof recs[0]);
    char base[160];
    snprintf(base, sizeof base, "%s/plugins", path);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = write_plugin_record(log, base, recs[i], err);
    return rc;
}

/* A metric's declared attribute naming a file's hash (a classifier's
 * feature_sha256) must be the one the run was trained with; --force
 * lets it change, and the change is noted. */
static int check_metric_hash(agon_log *log, const char *mpath, const char *metric,
                             const char *key, const char *now, const char *log_path,
                             bool force, resume_note *note, agon_error *err)
{
    size_t n = strlen(key);
    if (n < 6 || strcmp(key + n - 6, "sha256") != 0)
        return 0;
    char *was = agon_log_attr_read_string(log, mpath, key);
    int rc = 0;
    if (was && was[0] && strcmp(was, now) != 0) {
        if (!force)
            rc = agon_error_set(err, AGON_ECONFIG,
                                "%s: metric %s's %s is %.16s... now but %.16s... in the log: the "
                                "file it reads has changed since the run was trained; resume "
                                "with that file, or add --force to go on with the new one (the "
                                "log keeps both hashes)",
                                log_path, metric, key, now, was);
        else
            note_change(note, "metric %s %s %s (was %s)", metric, key, now, was);
    }
    free(was);
    return rc;
}

/* Declares a table of the log, or for a resumed run attaches to it and
 * cuts it back to the checkpoint's cursor; remembers it for the cursors. */
static agon_log_table *add_table(run_log *rl, const int64_t *cursors, const char *path,
                                 const char *const *columns, size_t n, agon_error *err)
{
    agon_log_table *t =
        cursors ? agon_log_table_attach(rl->log, path, columns, n, cursors[rl->n_tables], err)
                : agon_log_table_create(rl->log, path, columns, n, err);
    if (t)
        rl->tables[rl->n_tables++] = t;
    return t;
}

/* The same for a tensor series; its cursor follows every table's, also
 * those declared after it. */
static agon_log_series *add_series(run_log *rl, const int64_t *cursors, const char *path,
                                   const char *const *columns, const agon_shape *shapes,
                                   size_t n, agon_error *err)
{
    agon_log_series *s =
        cursors ? agon_log_series_attach(rl->log, path, columns, shapes, n,
                                         cursors[rl->tables_total + rl->n_series], err)
                : agon_log_series_create(rl->log, path, columns, shapes, n, err);
    if (s)
        rl->series[rl->n_series++] = s;
    return s;
}

/* Parameters, then buffers (batch norm's running statistics): together
 * they are the network's state. */
static int declare_params(game *g, run_log *rl, const int64_t *cursors, agon_role role,
                          agon_net *net, agon_error *err)
{
    size_t n_params = agon_net_param_count(net);
    size_t n = n_params + agon_net_buffer_count(net);
    const char **names = agon_arena_alloc(g->arena, (n + 1) * sizeof *names, err);
    agon_shape *shapes = agon_arena_alloc(g->arena, (n + 1) * sizeof *shapes, err);
    rl->param_ptrs[role] = agon_arena_alloc(g->arena, (n + 1) * sizeof(float *), err);
    if (!names || !shapes || !rl->param_ptrs[role])
        return AGON_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const agon_tensor *value;
        if (i < n_params) {
            agon_param *p = agon_net_param(net, i);
            name = p->name;
            value = &p->value;
        } else {
            agon_buffer *b = agon_net_buffer(net, i - n_params);
            name = b->name;
            value = &b->value;
        }
        names[i] = name;
        shapes[i] = value->shape;
        rl->param_ptrs[role][i] = value->data;
    }
    char path[64];
    snprintf(path, sizeof path, "/params/%s", agon_role_name(role));
    rl->params[role] = add_series(rl, cursors, path, names, shapes, n, err);
    return rl->params[role] ? 0 : (err->code ? err->code : AGON_EIO);
}

/* How many tables and series the log has (their cursors are part of a
 * checkpoint), allocating the arrays that keep them. */
static int count_outputs(game *g, run_log *rl, agon_error *err)
{
    const agon__log_settings *ls = &g->exp->log;
    size_t tables = 1, series = (ls->samples_every > 0) + 2 * (ls->params_every > 0);
    for (size_t i = 0; i < g->n_metrics; i++) {
        tables += g->metrics[i].n_outputs > 0;
        series += g->metrics[i].n_tensors > 0;
    }
    rl->tables = agon_arena_alloc(g->arena, tables * sizeof *rl->tables, err);
    rl->series = agon_arena_alloc(g->arena, (series + 1) * sizeof *rl->series, err);
    rl->n_tables = tables;
    rl->n_series = series;
    return rl->tables && rl->series ? 0 : AGON_ENOMEM;
}

/* Creates the log, or for a resumed run reopens it and restores the game
 * from its latest checkpoint (*start_step receives that step), then
 * enters the LIVE phase. */
static int open_log(game *g, const char *path, const agon_run_options *opts,
                    resume_note *note, run_log *rl, int64_t *start_step, agon_error *err)
{
    const agon_experiment *exp = g->exp;
    memset(rl, 0, sizeof *rl);
    *start_step = 0;
    /* A new log is built under a temporary name next to its path and moved
     * there once it is live: a writer killed during setup leaves no
     * half-created file at the path (only the empty file that claimed it). */
    char building[4200];
    snprintf(building, sizeof building, "%s.%ld.partial", path, (long)getpid());
    rl->log = opts->resume ? agon_log_reopen(path, err) : agon_log_create(building, err);
    if (!rl->log)
        return err->code ? err->code : AGON_EIO;
    agon__test_kill_point("building");
    agon_log *log = rl->log;
    int64_t *cursors = NULL;
    int rc = count_outputs(g, rl, err);
    if (rc == 0)
        rc = ckpt_declare(g, rl, err);
    if (rc == 0 && opts->resume) {
        cursors = agon_arena_alloc(g->arena, (rl->n_tables + rl->n_series) * sizeof *cursors,
                                   err);
        rc = cursors ? ckpt_restore(g, rl, start_step, cursors, err) : AGON_ENOMEM;
    }
    if (rc != 0)
        return rc;
    /* Counted again as they are declared. */
    rl->tables_total = rl->n_tables;
    rl->n_tables = rl->n_series = 0;
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    char started[32];
    iso_time(started, sizeof started);
    const char *desc = "";
    agon_cfg_opt_string(agon_config_root(exp->cfg), "description", "", &desc, NULL);
    if (rc == 0) rc = agon_log_attr_string(log, "/", "run_id", exp->run_id, err);
    if (rc == 0) rc = agon_log_attr_int(log, "/", "seed", (int64_t)exp->seed, err);
    if (rc == 0) rc = agon_log_attr_string(log, "/", "host", host, err);
    /* With host, the writer's process id lets a reader tell a run that is
     * still going from one whose writer died. */
    if (rc == 0) rc = agon_log_attr_int(log, "/", "pid", (int64_t)getpid(), err);
    if (rc == 0 && !opts->resume)
        rc = agon_log_attr_string(log, "/", "start_time", started, err);
    if (rc == 0) rc = agon_log_attr_int(log, "/", "steps_planned", g->ts->steps, err);
    if (rc == 0) rc = agon_log_attr_int(log, "/", "steps_done", *start_step, err);
    if (rc == 0 && opts->resume) {
        rc = agon_log_attr_string(log, "/", "status", "running", err);
        if (rc == 0)
            rc = agon_log_attr_string(log, "/", "status_message", "", err);
    }
    /* What trained the first steps stays; a resume adds its own record. */
    if (!opts->resume) {
        if (rc == 0) rc = agon_log_attr_string(log, "/", "blas", agon_blas_describe(), err);
        if (rc == 0) rc = agon_log_attr_string(log, "/", "kernels",
                                               agon_kernels_name(agon_blas_kernels()), err);
        if (rc == 0) rc = agon_log_attr_string(log, "/", "cpu", agon_cpu_model(), err);
    }
    if (rc == 0) rc = agon_log_attr_int(log, "/", "threads", g->ts->threads, err);
    if (rc == 0) rc = agon_log_attr_string(log, "/", "description", desc, err);
    if (rc == 0 && opts->command_line && !opts->resume)
        rc = agon_log_attr_string(log, "/", "command", opts->command_line, err);
    if (rc == 0 && opts->resume) {
        char note[96];
        snprintf(note, sizeof note, "from step %lld at %s", (long long)*start_step, started);
        rc = agon_log_attr_string(log, "/", "resumed", note, err);
    }
    if (rc == 0) rc = agon_log_write_string(log, "/config", exp->yaml, err);
    const agon_plugin_record *recs[64];
    size_t n_recs = opts->resume ? 0 : experiment_plugins(exp, recs, sizeof recs / sizeof recs[0]);
    for (size_t i = 0; rc == 0 && i < n_recs; i++)
        rc = write_plugin_record(log, "/provenance/plugins", recs[i], err);
    if (rc != 0)
        return rc;

    rl->scalars = add_table(rl, cursors, "/scalars", scalar_columns, N_SCALARS, err);
    if (!rl->scalars)
        return err->code;
    for (size_t i = 0; i < g->n_metrics; i++) {
        metric *m = &g->metrics[i];
        char path[256];
        snprintf(path, sizeof path, "/metrics/%s", m->choice->name);
        if (m->n_outputs > 0) {
            m->table = add_table(rl, cursors, path, m->vt->outputs, m->n_outputs, err);
            if (!m->table)
                return err->code;
        }
        if (m->n_tensors > 0) {
            const char *names[METRIC_MAX_TENSORS];
            agon_shape shapes[METRIC_MAX_TENSORS];
            for (size_t t = 0; t < m->n_tensors; t++) {
                names[t] = m->tensors[t].name;
                shapes[t] = m->tensors[t].shape;
            }
            char tpath[300];
            snprintf(tpath, sizeof tpath, "%s/tensors", path);
            m->series = add_series(rl, cursors, tpath, names, shapes, m->n_tensors, err);
            if (!m->series)
                return err->code;
        }
        rc = agon_log_attr_string(log, path, "plugin", m->choice->choice.component->name, err);
        if (rc == 0)
            rc = agon_log_attr_int(log, path, "every", m->choice->every, err);
        /* The metric's resolved settings (sample counts, thresholds) are its
         * provenance: a value is only comparable with its settings. */
        const agon_node *section = m->choice->choice.section;
        for (size_t k = 0; rc == 0 && k < agon_node_len(section); k++) {
            const char *key = agon_node_key_at(section, k);
            const char *text = agon_node_scalar(agon_node_at(section, k));
            if (text && strcmp(key, "plugin") != 0 && strcmp(key, "every") != 0)
                rc = agon_log_attr_string(log, path, key, text, err);
        }
        for (size_t k = 0; rc == 0 && k < m->n_attrs; k++) {
            const metric_attr *a = &m->attrs[k];
            if (opts->resume && !a->is_double)
                rc = check_metric_hash(log, path, m->choice->name, a->key, a->text,
                                       agon_log_path(log), opts->force, note, err);
            if (rc != 0)
                break;
            rc = a->is_double ? agon_log_attr_double(log, path, a->key, a->number, err)
                              : agon_log_attr_string(log, path, a->key, a->text, err);
        }
        if (rc != 0)
            return rc;
    }
    if (exp->log.samples_every > 0) {
        static const char *const cols[] = {"x"};
        agon_shape shape = agon_shape_batched(exp->log.n_samples, &g->info.sample_shape);
        rl->samples = add_series(rl, cursors, "/samples", cols, &shape, 1, err);
        if (!rl->samples)
            return err->code;
        rc = agon_log_attr_string(log, "/samples", "mode",
                                  exp->log.sample_training_mode ? "train" : "eval", err);
        if (rc == 0 && g->n_classes > 0) {
            rc = agon_log_attr_int(log, "/samples", "grid_cols", g->sample_cols, err);
            if (rc == 0)
                rc = agon_log_attr_int(log, "/samples", "n_classes", g->n_classes, err);
        }
        if (rc != 0)
            return rc;
    }
    if (exp->log.params_every > 0) {
        if ((rc = declare_params(g, rl, cursors, AGON_ROLE_GENERATOR, g->G, err)) != 0 ||
            (rc = declare_params(g, rl, cursors, AGON_ROLE_DISCRIMINATOR, g->D, err)) != 0)
            return rc;
    }
    if (opts->resume && (rc = write_resume_record(log, g, note, *start_step, started, host,
                                                  opts->force, err)) != 0)
        return rc;
    /* A checkpoint before the log goes live: a run killed at any moment
     * after setup can be resumed. */
    if (!opts->resume && (rc = ckpt_write(g, rl, 0, 1, err)) != 0)
        return rc;
    agon__test_kill_point("checkpointed");
    if ((rc = agon_log_start(log, err)) != 0)
        return rc;
    rc = opts->resume ? 0 : agon_log_move(log, path, err);
    agon__test_kill_point("live");
    return rc;
}

static int snapshot_samples(game *g, run_log *rl, int64_t step, agon_error *err)
{
    int64_t n = g->exp->log.n_samples;
    int64_t chunk = g->ts->batch_size;
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t rows = min64(chunk, n - i);
        agon_tensor z = agon_tensor_rows(&g->sample_z, i, rows);
        const agon_tensor *x = sample_forward(g, &z);
        memcpy(g->sample_x.data + i * g->sample_numel, x->data,
               (size_t)(rows * g->sample_numel) * sizeof(float));
    }
    const float *data[1] = {g->sample_x.data};
    return agon_log_series_append(rl->samples, step, data, err);
}

static int snapshot_params(run_log *rl, int64_t step, agon_error *err)
{
    for (int r = 0; r < AGON_ROLE_COUNT; r++) {
        int rc = agon_log_series_append(rl->params[r], step, rl->param_ptrs[r], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int write_final_params(agon_log *log, agon_net *net, agon_role role, agon_error *err)
{
    for (size_t i = 0; i < agon_net_param_count(net); i++) {
        agon_param *p = agon_net_param(net, i);
        char path[160];
        snprintf(path, sizeof path, "/final/%s/%s", agon_role_name(role), p->name);
        int rc = agon_log_write_tensor(log, path, &p->value, err);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < agon_net_buffer_count(net); i++) {
        agon_buffer *b = agon_net_buffer(net, i);
        char path[160];
        snprintf(path, sizeof path, "/final/%s/%s", agon_role_name(role), b->name);
        int rc = agon_log_write_tensor(log, path, &b->value, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Names the first non-finite value of a step, or NULL. */
static const char *non_finite_series(const step_stats *st)
{
    const double values[N_SCALARS] = {st->loss_d, st->loss_g, st->d_real,
                                      st->d_fake, st->grad_norm_d, st->grad_norm_g};
    for (int i = 0; i < N_SCALARS; i++) {
        if (!isfinite(values[i]))
            return scalar_columns[i];
    }
    return NULL;
}

/* The first tensor of G or D, after the step's updates, that holds a NaN
 * or infinity: a parameter ("discriminator/2.weight") before, with
 * `grads`, a gradient ("discriminator/2.weight.grad"), D before G.  Writes
 * "" when every one is finite.  Parameters are scanned every step (an
 * update can make them infinite while every scalar of that step is still
 * finite); gradients only once a run diverged, since a finite gradient
 * norm means finite gradients. */
static void non_finite_tensor(game *g, bool grads, char *buf, size_t cap)
{
    /* D first: it is updated first in a step, and a broken D passes its
     * NaNs on to G's gradients within the same step. */
    const agon_role order[AGON_ROLE_COUNT] = {AGON_ROLE_DISCRIMINATOR, AGON_ROLE_GENERATOR};
    agon_net *nets[AGON_ROLE_COUNT] = {g->D, g->G};
    buf[0] = '\0';
    for (int pass = 0; pass < (grads ? 2 : 1); pass++) {
        for (int r = 0; r < AGON_ROLE_COUNT; r++) {
            for (size_t i = 0; i < agon_net_param_count(nets[r]); i++) {
                agon_param *p = agon_net_param(nets[r], i);
                if (!agon_tensor_all_finite(pass == 0 ? &p->value : &p->grad)) {
                    snprintf(buf, cap, "%s/%s%s", agon_role_name(order[r]), p->name,
                             pass == 0 ? "" : ".grad");
                    return;
                }
            }
        }
    }
}

/* ---- disk space ------------------------------------------------------------------ */

/* What the log may still need to end cleanly from any step, besides what
 * was appended since the last flush (agon_log_pending_bytes): one more row
 * of every series, a new block of every table, /final (both networks'
 * parameters and buffers), and room for HDF5's metadata.  A disk that
 * fills inside an HDF5 write can leave the file unreadable, so a run stops
 * while this much is still free. */
static uint64_t log_reserve_bytes(game *g)
{
    const agon__log_settings *ls = &g->exp->log;
    uint64_t nets = 0;
    agon_net *both[2] = {g->G, g->D};
    for (int r = 0; r < 2; r++) {
        for (size_t i = 0; i < agon_net_param_count(both[r]); i++)
            nets += (uint64_t)agon_tensor_numel(&agon_net_param(both[r], i)->value);
        for (size_t i = 0; i < agon_net_buffer_count(both[r]); i++)
            nets += (uint64_t)agon_tensor_numel(&agon_net_buffer(both[r], i)->value);
    }
    uint64_t bytes = (ls->params_every > 0 ? 2 : 1) * nets * sizeof(float);
    if (ls->samples_every > 0)
        bytes += (uint64_t)ls->n_samples * (uint64_t)g->sample_numel * sizeof(float);
    bytes += (N_SCALARS + 1) * 1024 * sizeof(double);
    for (size_t i = 0; i < g->n_metrics; i++) {
        const metric *m = &g->metrics[i];
        if (m->n_outputs > 0)
            bytes += (m->n_outputs + 1) * 1024 * sizeof(double);
        for (size_t t = 0; t < m->n_tensors; t++)
            bytes += (uint64_t)agon_shape_numel(&m->tensors[t].shape) * sizeof(float);
    }
    return bytes + ((uint64_t)1 << 20);
}

/* Free bytes for an unprivileged writer on the file system of `path`;
 * UINT64_MAX when that cannot be told. */
static uint64_t free_bytes(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return UINT64_MAX;
    return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/* ---- progress ------------------------------------------------------------------ */

typedef struct progress {
    agon_progress mode;
    double start, last_print;
    int64_t first_step;     /* a resumed run's checkpoint step */
    int64_t last_step_printed;
} progress;

static void progress_print(progress *p, int64_t step, int64_t total, const step_stats *st,
                           bool final)
{
    if (p->mode == AGON_PROGRESS_NONE)
        return;
    double now = now_seconds();
    double elapsed = now - p->start;
    if (final && p->mode == AGON_PROGRESS_PLAIN && p->last_step_printed == step)
        return;
    if (!final) {
        if (p->mode == AGON_PROGRESS_TTY && now - p->last_print < 0.1)
            return;
        if (p->mode == AGON_PROGRESS_PLAIN && now - p->last_print < 10.0 &&
            step - p->last_step_printed < (total + 9) / 10)
            return;
    }
    double rate = elapsed > 0 ? (double)(step - p->first_step) / elapsed : 0.0;
    double eta = rate > 0 ? (double)(total - step) / rate : 0.0;
    char line[256];
    snprintf(line, sizeof line,
             "step %lld/%lld  %.0f steps/s  ETA %.0fs  loss_d %.4f  loss_g %.4f  "
             "D(x) %.3f  D(G(z)) %.3f",
             (long long)step, (long long)total, rate, eta, st->loss_d, st->loss_g,
             st->d_real, st->d_fake);
    if (p->mode == AGON_PROGRESS_TTY)
        fprintf(stdout, "\r%s\033[K%s", line, final ? "\n" : "");
    else
        fprintf(stdout, "%s\n", line);
    fflush(stdout);
    p->last_print = now;
    p->last_step_printed = step;
}

static int resume_check_provenance(const agon_experiment *exp, const char *path,
                                   const agon_log_summary *sum, bool force, resume_note *note,
                                   agon_error *err);

/* Whether the log at `path` may be continued with `exp` (see
 * agon_run_options.resume); checked before anything is built. */
static int resume_check(const agon_experiment *exp, const char *path,
                        const agon_run_options *opts, resume_note *note, agon_error *err)
{
    agon_log_summary sum;
    int rc = agon_log_summarize(path, &sum, err);
    if (rc != 0)
        return rc;
    note->n_resumes = sum.n_resumes;
    bool config_differs = strcmp(sum.config, exp->yaml) != 0;
    char keys[1024] = "";
    int n_keys = config_differs ? agon__config_diff(sum.config, exp->yaml, keys, sizeof keys) : 0;
    if (config_differs)
        note_change(note, "config: %s", keys);
    if (config_differs && !opts->force && !sum.kernels[0]) {
        /* Its config has no train.kernels, so it differs from any resolved
         * today: it ran on whatever kernels OpenBLAS picked (its blas). */
        rc = agon_error_set(err, AGON_ECONFIG,
                            "%s: written before agon chose its kernels (it trained with %s); "
                            "add --force to go on with the %s kernels of train.kernels, or "
                            "start the run again",
                            path, sum.blas[0] ? sum.blas : "unrecorded kernels",
                            agon_kernels_name(exp->train.kernels));
    } else if (config_differs && !opts->force) {
        rc = agon_error_set(err, AGON_ECONFIG,
                            "%s: the experiment differs from the run's config in %d key%s: %s; "
                            "resume without an experiment file to use the run's own config, or "
                            "add --force",
                            path, n_keys, n_keys == 1 ? "" : "s", keys);
    } else if (strcmp(sum.status, "diverged") == 0) {
        rc = agon_error_set(err, AGON_EUSAGE,
                            "%s: the run diverged at step %lld; resuming would diverge again, "
                            "so start a new run with other settings",
                            path, (long long)sum.steps_done);
    } else if (strcmp(sum.status, "completed") == 0 && !opts->force) {
        rc = agon_error_set(err, AGON_EUSAGE,
                            "%s: the run completed all %lld steps, so there is nothing to "
                            "resume; to train it further, raise train.steps with --set and "
                            "add --force",
                            path, (long long)sum.steps_done);
    } else {
        rc = agon__check_no_live_writer(path, &sum, opts->force || opts->writer_gone,
                                        "resume with --force", err);
    }
    if (rc == 0)
        rc = resume_check_provenance(exp, path, &sum, opts->force, note, err);
    free(sum.config);
    return rc;
}

/* The kernels and plugins a resume would continue with against those that
 * trained the latest steps: another OpenBLAS, kernel family or plugin file
 * gives other bits, so each is refused unless --force (and then noted). */
static int resume_check_provenance(const agon_experiment *exp, const char *path,
                                   const agon_log_summary *sum, bool force, resume_note *note,
                                   agon_error *err)
{
    const char *blas = agon_blas_describe();
    if (sum->blas[0] && strcmp(sum->blas, blas) != 0) {
        if (!force)
            return agon_error_set(err, AGON_ECONFIG,
                                  "%s: the run was trained with %s kernels, %s, and would go on "
                                  "with %s kernels, %s: the two parts would not add up to the "
                                  "bits of one run; resume where the same kernels run, or add "
                                  "--force",
                                  path, sum->kernels[0] ? sum->kernels : "unrecorded", sum->blas,
                                  agon_kernels_name(agon_blas_kernels()), blas);
        note_change(note, "blas: %s (was %s)", blas, sum->blas);
    }
    const agon_plugin_record *recs[64];
    size_t n = experiment_plugins(exp, recs, sizeof recs / sizeof recs[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sum->n_plugins; k++) {
            if (strcmp(sum->plugins[k].name, recs[i]->desc->name) != 0 ||
                strcmp(sum->plugins[k].sha256, recs[i]->sha256) == 0 ||
                !sum->plugins[k].sha256[0])
                continue;
            if (!force)
                return agon_error_set(err, AGON_ECONFIG,
                                      "%s: plugin %s (%s) is not the file the run was trained "
                                      "with: its sha256 is %.16s... now and %.16s... in the log; "
                                      "resume with the plugin it was trained with, or add --force "
                                      "to go on with this one (the log keeps both hashes)",
                                      path, recs[i]->desc->name, recs[i]->path, recs[i]->sha256,
                                      sum->plugins[k].sha256);
            note_change(note, "plugin %s sha256 %s (was %s)", recs[i]->desc->name,
                        recs[i]->sha256, sum->plugins[k].sha256);
        }
    }
    return 0;
}

static int ensure_parent_dir(const char *path, agon_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return agon_error_set(err, AGON_EIO, "%s: cannot create directory: %s", dir,
                              strerror(errno));
    return 0;
}

int agon_experiment_run(agon_experiment *exp, const agon_run_options *opts,
                        agon_run_result *result, agon_error *err)
{
    agon_run_options defaults = {0};
    if (!opts)
        opts = &defaults;
    char path[4096];
    if (opts->resume && !opts->output_path)
        return agon_error_set(err, AGON_EINTERNAL, "resuming needs the log's path");
    if (opts->output_path) {
        snprintf(path, sizeof path, "%s", opts->output_path);
    } else if (exp->log.output[0]) {
        snprintf(path, sizeof path, "%s", exp->log.output);
    } else {
        snprintf(path, sizeof path, "runs/%s.h5", exp->stem);
        int rc = ensure_parent_dir(path, err);
        if (rc != 0)
            return rc;
    }
    /* Checked before anything is built, so a mistake costs nothing; the
     * path is claimed (claim_output) only once the run can start. */
    /* Before anything computes a product (the kernels decide the bits),
     * and before a resume compares them with the log's. */
    int blas_rc = agon_blas_init(exp->train.kernels, err);
    if (blas_rc != 0)
        return blas_rc;
    const agon__output_rules out_rules = {.overwrite = opts->overwrite,
                                          .what = "HDF5 run log",
                                          .live_writer_check = true,
                                          .writer_gone = opts->writer_gone};
    resume_note note = {0};
    int out_rc = opts->resume ? resume_check(exp, path, opts, &note, err)
                              : agon__check_output(path, &out_rules, NULL, err);
    if (out_rc != 0)
        return out_rc;
    agon__test_kill_point("start");
    agon_run_result local;
    if (!result)
        result = &local;
    memset(result, 0, sizeof *result);
    snprintf(result->output_path, sizeof result->output_path, "%s", path);
    snprintf(result->status, sizeof result->status, "failed");

    agon_blas_set_threads((int)exp->train.threads);
    game g;
    run_log rl = {0};
    int64_t step = 0;
    int rc = game_setup(&g, exp, err);
    g.stop_flag = opts->stop_flag;
    if (rc == 0)
        rc = metrics_prepare(&g, err);
    /* The path is this run's from here until its log replaces what is
     * there (the claim: of two runs on one path exactly one gets it, and
     * a run killed meanwhile leaves nothing that stands in the way). */
    agon__claim claim = {.fd = -1};
    if (rc == 0 && !opts->resume)
        rc = agon__claim_output(path, &out_rules, &claim, err);
    agon__test_kill_point("claimed");
    if (rc == 0)
        rc = open_log(&g, path, opts, &note, &rl, &step, err);
    if (rc != 0) {
        if (rl.log) {
            agon_error ignored = {0};
            agon_log_finish(rl.log, "failed", err->message, &ignored);
            /* Set-up failed before the new log went live: it takes the
             * place of the empty file that claimed the path, with its
             * reason, but an old log being replaced stays as it was. */
            if (strcmp(agon_log_path(rl.log), path) != 0 &&
                (claim.replacing || agon_log_move(rl.log, path, &ignored) != 0))
                unlink(agon_log_path(rl.log));
            agon_log_close(rl.log, &ignored);
        }
        agon__claim_release(&claim);
        game_teardown(&g);
        return rc;
    }
    agon__claim_release(&claim);

    progress prog = {.mode = opts->progress};
    if (prog.mode == AGON_PROGRESS_AUTO)
        prog.mode = isatty(STDOUT_FILENO) ? AGON_PROGRESS_TTY : AGON_PROGRESS_PLAIN;
    prog.start = prog.last_print = now_seconds();
    double last_flush = prog.start, last_checkpoint = prog.start;
    /* The crash test's witness (docs/reliability.md): the step of every
     * flush that completed, appended to the file AGON_FLUSH_TRACE names. */
    const char *trace_path = getenv("AGON_FLUSH_TRACE");
    int flush_trace = trace_path && trace_path[0]
                          ? open(trace_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666)
                          : -1;
    prog.first_step = prog.last_step_printed = step;

    const agon__log_settings *ls = &exp->log;
    const int64_t steps = exp->train.steps;
    step_stats st = {0};
    const char *status = "completed";
    char message[AGON_ERROR_MESSAGE_MAX] = "";
    int diverged_step = -1;
    const char *diverged_series = NULL;
    char diverged_tensor[128] = "";

    /* The step-0 snapshots follow the step-0 checkpoint (open_log), so a
     * run resumed from it takes them again. */
    if (rl.samples && step == 0)
        rc = snapshot_samples(&g, &rl, 0, err);
    if (rc == 0 && rl.params[0] && step == 0)
        rc = snapshot_params(&rl, 0, err);
    /* A resumed run must stop where the checkpoint says it went on. */
    bool at_step_boundary = true;
    /* Stopped between two steps on purpose (a signal, a disk about to
     * fill): the state is whole, so it gets a final checkpoint. */
    bool stopped_between_steps = false;
    const uint64_t reserve = log_reserve_bytes(&g);
    const int64_t kill_step = agon__test_kill_step();

    const double loop_start = now_seconds();
    while (rc == 0 && step < steps) {
        if (opts->stop_flag && *opts->stop_flag) {
            status = "interrupted";
            snprintf(message, sizeof message, "stopped by a signal after step %lld",
                     (long long)step);
            rc = AGON_EINTERRUPTED;
            stopped_between_steps = true;
            break;
        }
        /* What the next flush still writes comes on top. */
        uint64_t need = reserve + agon_log_pending_bytes(rl.log);
        uint64_t left = free_bytes(path);
        if (left < need) {
            rc = agon_error_set(err, AGON_EIO,
                                "%s: the disk holding it has %.2f MB free, less than the %.2f MB "
                                "the log needs to end cleanly; stopped after step %lld with a "
                                "checkpoint; free some space, then continue with agon run "
                                "--resume %s",
                                path, (double)left / 1e6, (double)need / 1e6,
                                (long long)step, path);
            stopped_between_steps = true;
            break;
        }
        step++;
        at_step_boundary = false;
        rc = game_step(&g, step, &st, err);
        if (rc != 0)
            break;
        diverged_series = non_finite_series(&st);
        non_finite_tensor(&g, diverged_series != NULL, diverged_tensor, sizeof diverged_tensor);
        if (!diverged_series && diverged_tensor[0])
            diverged_series = "";   /* the scalars are finite, a parameter is not */
        bool last = step == steps || diverged_series;
        if (step % ls->every == 0 || last) {
            const double row[N_SCALARS] = {st.loss_d, st.loss_g, st.d_real,
                                           st.d_fake, st.grad_norm_d, st.grad_norm_g};
            rc = agon_log_table_append(rl.scalars, step, row, err);
        }
        if (diverged_series) {
            diverged_step = (int)step;
            status = "diverged";
            if (diverged_series[0] && diverged_tensor[0])
                snprintf(message, sizeof message,
                         "step %lld: %s is not finite, and the first non-finite tensor is %s; "
                         "lower the learning rates or check the data and the loss",
                         (long long)step, diverged_series, diverged_tensor);
            else if (diverged_series[0])
                snprintf(message, sizeof message,
                         "step %lld: %s is not finite while every parameter and gradient is; "
                         "check the data and the loss",
                         (long long)step, diverged_series);
            else
                snprintf(message, sizeof message,
                         "step %lld: %s is not finite; lower the learning rates or check the "
                         "data and the loss",
                         (long long)step, diverged_tensor);
            rc = AGON_EDIVERGED;
            break;
        }
        for (size_t i = 0; rc == 0 && i < g.n_metrics; i++) {
            if (step % g.metrics[i].choice->every == 0 || last)
                rc = evaluate_metric(&g, &g.metrics[i], step, err);
        }
        if (rc == 0 && rl.samples && (step % ls->samples_every == 0 || last))
            rc = snapshot_samples(&g, &rl, step, err);
        if (rc == 0 && rl.params[0] && (step % ls->params_every == 0 || last))
            rc = snapshot_params(&rl, step, err);
        if (rc != 0)
            break;
        at_step_boundary = true;
        double now = now_seconds();
        if (now - last_flush >= ls->flush_seconds) {
            if (now - last_checkpoint >= ls->checkpoint_seconds) {
                rc = ckpt_write(&g, &rl, step, 1, err);
                last_checkpoint = now;
            } else {
                rc = agon_log_flush(rl.log, err);
            }
            last_flush = now;
            if (rc == 0 && flush_trace >= 0)
                dprintf(flush_trace, "%lld\n", (long long)step);
        }
        progress_print(&prog, step, steps, &st, false);
        if (step == kill_step)
            agon__test_kill_point(getenv("AGON_TEST_KILL_AT"));
    }
    agon__test_kill_point("trained");
    /* The state after a whole step goes into both slots, so that the
     * final checkpoint does not depend on how many were written before
     * (a resumed run's log equals an uninterrupted one's). */
    if (at_step_boundary && (rc == 0 || stopped_between_steps)) {
        agon_error ck_err = {0};
        int crc = ckpt_write(&g, &rl, step, CKPT_SLOTS, &ck_err);
        if (crc != 0 && rc == 0) {
            rc = crc;
            *err = ck_err;
        }
    }
    if (rc == AGON_EINTERRUPTED && strcmp(status, "completed") == 0) {
        status = "interrupted";
        snprintf(message, sizeof message, "stopped by a signal during step %lld",
                 (long long)step);
    } else if (rc != 0 && strcmp(status, "completed") == 0) {
        status = "failed";
        snprintf(message, sizeof message, "%s", err->message);
    }
    if (flush_trace >= 0)
        close(flush_trace);
    const double train_seconds = now_seconds() - loop_start;
    progress_print(&prog, step, steps, &st, true);

    agon_error log_err = {0};
    int lrc = agon_log_finish(rl.log, status, message, &log_err);
    if (lrc == 0)
        lrc = agon_log_attr_int(rl.log, "/", "steps_done", step, &log_err);
    if (lrc == 0)
        lrc = agon_log_attr_double(rl.log, "/", "train_seconds", train_seconds, &log_err);
    if (lrc == 0 && diverged_step >= 0) {
        lrc = agon_log_attr_int(rl.log, "/diverged", "step", diverged_step, &log_err);
        if (lrc == 0)
            lrc = agon_log_attr_string(rl.log, "/diverged", "series", diverged_series,
                                       &log_err);
        if (lrc == 0)
            lrc = agon_log_attr_string(rl.log, "/diverged", "tensor", diverged_tensor,
                                       &log_err);
    }
    if (lrc == 0)
        lrc = write_final_params(rl.log, g.G, AGON_ROLE_GENERATOR, &log_err);
    if (lrc == 0)
        lrc = write_final_params(rl.log, g.D, AGON_ROLE_DISCRIMINATOR, &log_err);
    agon__test_kill_point("final");
    int crc = agon_log_close(rl.log, lrc == 0 ? &log_err : NULL);
    if (lrc == 0)
        lrc = crc;
    agon__test_kill_point("closed");

    result->steps_done = step;
    result->seconds = now_seconds() - prog.start;
    snprintf(result->status, sizeof result->status, "%s", status);
    game_teardown(&g);

    if (rc == AGON_EDIVERGED || rc == AGON_EINTERRUPTED) {
        agon_error_set(err, rc, "%s: %s", path, message);
    }
    if (rc == 0 && lrc != 0) {
        agon_error_set(err, lrc, "%s", log_err.message);
        return lrc;
    }
    return rc;
}
