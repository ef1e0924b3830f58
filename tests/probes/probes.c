/* Probe components for the game-loop tests (not installed):
 *   optimizer 'probe_sgd': plain SGD that also checks the update counter t
 *     it is given is 1, 2, 3, ...; on a wrong t it writes NaN into every
 *     parameter, so the run diverges and the test sees it.
 *   optimizer 'probe_segv': plain SGD that segfaults at a chosen update.
 *   metric 'probe': draws real and fake samples and runs D through the
 *     metric context, emitting their means, so tests can check that a
 *     metric's draws leave training untouched.
 *   dataset 'probe_clusters' and metric 'probe_labels': labelled data and
 *     the labelled metric context, for conditional runs.
 *   metric 'probe_pause': at its first evaluation, appends the step to
 *     the file `reached` (one line per run, so several runs can share it)
 *     and waits (up to `timeout` seconds) until the file `go` exists, so a
 *     test can act on a run at a known step however fast the machine is
 *     (signals, readers of a live log).
 *   metric 'probe_tensor': declares tensor outputs and attributes and runs
 *     G on latent vectors it chooses; `fault` makes it break the contract
 *     (no_emit: a declared tensor is not emitted; undeclared: it emits one
 *     it did not declare; clash: it declares an attribute that is one of its
 *     settings). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "agon/plugin.h"

typedef struct probe_sgd {
    double lr;
    int64_t expected_t;
} probe_sgd;

static int probe_sgd_create(const agon_node *cfg, void **state, agon_error *err)
{
    probe_sgd *s = malloc(sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "probe_sgd: out of memory");
    s->expected_t = 1;
    int rc = agon_cfg_opt_float(cfg, "lr", 0.01, &s->lr, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static void probe_sgd_step(void *state, agon_optim_slot *slots, size_t n, int64_t t)
{
    probe_sgd *s = state;
    float poison = t == s->expected_t ? 0.0f : NAN;
    s->expected_t++;
    for (size_t k = 0; k < n; k++) {
        int64_t numel = agon_tensor_numel(slots[k].value);
        for (int64_t i = 0; i < numel; i++)
            slots[k].value->data[i] -= (float)s->lr * slots[k].grad->data[i] + poison;
    }
}

static const agon_param_spec probe_sgd_params[] = {
    {"lr", AGON_PARAM_FLOAT, "0.01", 0.0, 1e6, NULL, "learning rate"},
    AGON_PARAM_END,
};

static const agon_optimizer_vtable probe_sgd_vtable = {
    sizeof(agon_optimizer_vtable), 0, probe_sgd_create, free, probe_sgd_step,
};

/* 'probe_segv': plain SGD that dereferences a null pointer at update
 * `segv_at` (0: never), a plugin crashing in one configuration. */
typedef struct probe_segv {
    double lr;
    int64_t segv_at;
} probe_segv;

static int probe_segv_create(const agon_node *cfg, void **state, agon_error *err)
{
    probe_segv *s = malloc(sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "probe_segv: out of memory");
    int rc = agon_cfg_opt_float(cfg, "lr", 0.01, &s->lr, err);
    if (rc == 0)
        rc = agon_cfg_opt_int(cfg, "segv_at", 0, &s->segv_at, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static void probe_segv_step(void *state, agon_optim_slot *slots, size_t n, int64_t t)
{
    probe_segv *s = state;
    if (t == s->segv_at) {
        /* An unmapped page, not NULL: UBSan would stop a null store itself
         * instead of letting the process take the SIGSEGV. */
        volatile uintptr_t unmapped = 64;
        *(volatile float *)unmapped = 1.0f;
    }
    for (size_t k = 0; k < n; k++) {
        int64_t numel = agon_tensor_numel(slots[k].value);
        for (int64_t i = 0; i < numel; i++)
            slots[k].value->data[i] -= (float)s->lr * slots[k].grad->data[i];
    }
}

static const agon_param_spec probe_segv_params[] = {
    {"lr", AGON_PARAM_FLOAT, "0.01", 0.0, 1e6, NULL, "learning rate"},
    {"segv_at", AGON_PARAM_INT, "0", 0.0, 1e12, NULL, "update at which to crash (0: never)"},
    AGON_PARAM_END,
};

static const agon_optimizer_vtable probe_segv_vtable = {
    sizeof(agon_optimizer_vtable), 0, probe_segv_create, free, probe_segv_step,
};

enum { PROBE_N = 64 };

typedef struct probe {
    float *x;
    float *logits;
    int64_t dim;
} probe;

static int probe_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                        agon_error *err)
{
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "probe: out of memory");
    p->dim = agon_shape_numel(&data->sample_shape);
    p->x = malloc((size_t)(PROBE_N * p->dim) * sizeof(float));
    p->logits = malloc(PROBE_N * sizeof(float));
    if (!p->x || !p->logits) {
        free(p->x);
        free(p->logits);
        free(p);
        return agon_error_set(err, AGON_ENOMEM, "probe: out of memory");
    }
    *state = p;
    return 0;
}

static void probe_destroy(void *state)
{
    probe *p = state;
    free(p->x);
    free(p->logits);
    free(p);
}

static double mean(const float *v, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    return s / (double)n;
}

static int probe_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    probe *p = state;
    int64_t dims[2] = {PROBE_N, p->dim};
    agon_tensor t = {.data = p->x, .shape = agon_shape_make(2, dims)};
    int rc = agon_metric_real(ctx, &t, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "real_mean", mean(p->x, PROBE_N * p->dim), err);
    if (rc == 0)
        rc = agon_metric_discriminate(ctx, &t, p->logits, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "real_logit", mean(p->logits, PROBE_N), err);
    if (rc == 0)
        rc = agon_metric_fake(ctx, &t, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "fake_mean", mean(p->x, PROBE_N * p->dim), err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "at_step", (double)agon_metric_step(ctx), err);
    return rc;
}

static const char *const probe_outputs[] = {"real_mean", "real_logit", "fake_mean", "at_step", NULL};

static const agon_metric_vtable probe_vtable = {
    sizeof(agon_metric_vtable), probe_outputs, probe_create, probe_destroy, probe_evaluate,
    NULL, NULL,
};

/* ---- dataset 'probe_clusters': labelled 2-D data -------------------------- *
 * Class c of K is a Gaussian blob (std 0.1) centred at (3c - 1.5(K-1), 0);
 * labels are drawn uniformly.  Conditional-GAN tests use it: a generator
 * that honours its label puts class c's samples near centre c. */
typedef struct clusters {
    int64_t k;
    int64_t label_shift;    /* added to the labels handed out (tests' bad labels) */
    float lo[2], hi[2];
} clusters;

static float cluster_centre(int64_t k, int64_t c)
{
    return 3.0f * (float)c - 1.5f * (float)(k - 1);
}

static int clusters_create(const agon_node *cfg, void **state, agon_dataset_info *info,
                           agon_error *err)
{
    clusters *c = calloc(1, sizeof *c);
    if (!c)
        return agon_error_set(err, AGON_ENOMEM, "probe_clusters: out of memory");
    int rc = agon_cfg_opt_int(cfg, "classes", 2, &c->k, err);
    if (rc == 0)
        rc = agon_cfg_opt_int(cfg, "label_shift", 0, &c->label_shift, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    int64_t two = 2;
    info->sample_shape = agon_shape_make(1, &two);
    info->size = -1;
    info->n_classes = c->k;
    c->lo[0] = cluster_centre(c->k, 0) - 1.0f;
    c->hi[0] = cluster_centre(c->k, c->k - 1) + 1.0f;
    c->lo[1] = -1.0f;
    c->hi[1] = 1.0f;
    info->bounds_lo = c->lo;
    info->bounds_hi = c->hi;
    *state = c;
    return 0;
}

static int clusters_next(void *state, agon_rng *rng, agon_tensor *out, int32_t *labels,
                         agon_error *err)
{
    const clusters *c = state;
    int64_t n = out->shape.dim[0];
    for (int64_t i = 0; i < n; i++) {
        int32_t label = (int32_t)agon_rng_below(rng, (uint64_t)c->k);
        out->data[2 * i] = cluster_centre(c->k, label) + 0.1f * (float)agon_rng_normal(rng);
        out->data[2 * i + 1] = 0.1f * (float)agon_rng_normal(rng);
        if (labels)
            labels[i] = label + (int32_t)c->label_shift;
    }
    return 0;
}

static const agon_param_spec clusters_params[] = {
    {"classes", AGON_PARAM_INT, "2", 1, 100, NULL, "number of classes (blobs)"},
    {"label_shift", AGON_PARAM_INT, "0", -100, 100, NULL, "added to every label handed out"},
    AGON_PARAM_END,
};

static const agon_dataset_vtable clusters_vtable = {
    sizeof(agon_dataset_vtable), clusters_create, free, clusters_next,
};

/* ---- metric 'probe_labels': the labelled side of the metric context ------- *
 * label_accuracy: share of conditional fake samples nearest to their own
 * class's centre; real_label_accuracy: the same for real samples (1 unless
 * labels are wrong); real_logit: D's mean logit on labelled real samples. */
typedef struct label_probe {
    float x[2 * PROBE_N];
    float logits[PROBE_N];
    int32_t labels[PROBE_N];
    int64_t k;
    int64_t shift;          /* added to the labels D is asked about (tests' bad labels) */
} label_probe;

static int label_probe_create(const agon_node *cfg, const agon_dataset_info *data,
                              void **state, agon_error *err)
{
    label_probe *p = calloc(1, sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "probe_labels: out of memory");
    p->k = data->n_classes;
    int rc = agon_cfg_opt_int(cfg, "shift", 0, &p->shift, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *state = p;
    return 0;
}

static double label_accuracy(const label_probe *p)
{
    int64_t hits = 0;
    for (int64_t i = 0; i < PROBE_N; i++) {
        int64_t best = 0;
        for (int64_t c = 1; c < p->k; c++) {
            if (fabsf(p->x[2 * i] - cluster_centre(p->k, c)) <
                fabsf(p->x[2 * i] - cluster_centre(p->k, best)))
                best = c;
        }
        hits += best == p->labels[i];
    }
    return (double)hits / PROBE_N;
}

static int label_probe_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    label_probe *p = state;
    int64_t dims[2] = {PROBE_N, 2};
    agon_tensor t = {.data = p->x, .shape = agon_shape_make(2, dims)};
    int rc = agon_metric_real_labeled(ctx, &t, p->labels, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "real_label_accuracy", label_accuracy(p), err);
    for (int64_t i = 0; i < PROBE_N; i++)
        p->labels[i] += (int32_t)p->shift;
    if (rc == 0)
        rc = agon_metric_discriminate_labeled(ctx, &t, p->labels, p->logits, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "real_logit", mean(p->logits, PROBE_N), err);
    if (rc == 0)
        rc = agon_metric_fake_labeled(ctx, &t, p->labels, err);
    if (rc == 0)
        rc = agon_metric_emit(ctx, "label_accuracy", label_accuracy(p), err);
    return rc;
}

static const char *const label_probe_outputs[] = {"real_label_accuracy", "real_logit",
                                                   "label_accuracy", NULL};

static const agon_param_spec label_probe_params[] = {
    {"shift", AGON_PARAM_INT, "0", -100, 100, NULL, "added to the labels given to D"},
    AGON_PARAM_END,
};

static const agon_metric_vtable label_probe_vtable = {
    sizeof(agon_metric_vtable), label_probe_outputs, label_probe_create, free,
    label_probe_evaluate, NULL, NULL,
};

/* ---- metric 'probe_tensor' ------------------------------------------------ *
 * Latent rows r = 0..3 hold the value (r - 1.5) / 2 in every coordinate,
 * so row r of "g_of_z" is G((r - 1.5)/2 * 1). */
enum { PT_ROWS = 4 };

typedef struct probe_tensor {
    int64_t dim, latent;
    float *z, *x;
    const char *fault;
} probe_tensor;

static void probe_tensor_destroy(void *state)
{
    probe_tensor *p = state;
    free(p->z);
    free(p->x);
    free(p);
}

static int probe_tensor_create(const agon_node *cfg, const agon_dataset_info *data,
                               void **state, agon_error *err)
{
    probe_tensor *p = calloc(1, sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "probe_tensor: out of memory");
    int rc = agon_cfg_opt_string(cfg, "fault", "none", &p->fault, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    p->dim = agon_shape_numel(&data->sample_shape);
    *state = p;
    return 0;
}

static int probe_tensor_declare(void *state, agon_metric_decl *decl, agon_error *err)
{
    probe_tensor *p = state;
    p->latent = agon_metric_decl_latent_dim(decl);
    p->z = malloc((size_t)(PT_ROWS * p->latent) * sizeof(float));
    p->x = malloc((size_t)(PT_ROWS * p->dim) * sizeof(float));
    if (!p->z || !p->x)
        return agon_error_set(err, AGON_ENOMEM, "probe_tensor: out of memory");
    for (int64_t r = 0; r < PT_ROWS; r++) {
        for (int64_t j = 0; j < p->latent; j++)
            p->z[r * p->latent + j] = ((float)r - 1.5f) / 2.0f;
    }
    int64_t gdims[2] = {PT_ROWS, p->dim}, zdims[2] = {PT_ROWS, p->latent};
    agon_shape gs = agon_shape_make(2, gdims), zs = agon_shape_make(2, zdims);
    int rc = agon_metric_declare_tensor(decl, "g_of_z", &gs, err);
    if (rc == 0)
        rc = agon_metric_declare_tensor(decl, "z", &zs, err);
    if (rc == 0)
        rc = agon_metric_declare_attr(decl, "origin", "probe", err);
    if (rc == 0)
        rc = agon_metric_declare_attr_double(decl, "scale", 2.5, err);
    if (rc == 0 && strcmp(p->fault, "clash") == 0)
        rc = agon_metric_declare_attr(decl, "fault", "x", err);
    return rc;
}

static int probe_tensor_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    probe_tensor *p = state;
    int64_t zdims[2] = {PT_ROWS, p->latent}, xdims[2] = {PT_ROWS, p->dim};
    agon_tensor z = {.data = p->z, .shape = agon_shape_make(2, zdims)};
    agon_tensor x = {.data = p->x, .shape = agon_shape_make(2, xdims)};
    int rc = agon_metric_generate(ctx, &z, NULL, &x, err);
    if (rc == 0)
        rc = agon_metric_emit_tensor(ctx, "g_of_z", p->x, err);
    if (rc == 0 && strcmp(p->fault, "no_emit") != 0)
        rc = agon_metric_emit_tensor(ctx, "z", p->z, err);
    if (rc == 0 && strcmp(p->fault, "undeclared") == 0)
        rc = agon_metric_emit_tensor(ctx, "extra", p->z, err);
    return rc;
}

static const char *const probe_tensor_outputs[] = {NULL};

static const agon_metric_vtable probe_tensor_vtable = {
    sizeof(agon_metric_vtable), probe_tensor_outputs, probe_tensor_create,
    probe_tensor_destroy, probe_tensor_evaluate, probe_tensor_declare, NULL,
};

static const agon_param_spec probe_tensor_params[] = {
    {"fault", AGON_PARAM_CHOICE, "none", AGON_NO_RANGE, "none|no_emit|undeclared|clash",
     "how to break the metric contract"},
    AGON_PARAM_END,
};

/* ---- metric 'probe_pause' ------------------------------------------------ */
typedef struct pause_probe {
    const char *reached, *go;
    double timeout;
    bool done;
} pause_probe;

static int pause_create(const agon_node *cfg, const agon_dataset_info *data, void **state,
                        agon_error *err)
{
    (void)data;
    pause_probe *p = calloc(1, sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "probe_pause: out of memory");
    int rc = agon_cfg_require_string(cfg, "reached", &p->reached, err);
    if (rc == 0)
        rc = agon_cfg_require_string(cfg, "go", &p->go, err);
    if (rc == 0)
        rc = agon_cfg_require_float(cfg, "timeout", &p->timeout, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *state = p;
    return 0;
}

static int pause_evaluate(void *state, agon_metric_ctx *ctx, agon_error *err)
{
    pause_probe *p = state;
    if (!p->done) {
        p->done = true;
        FILE *f = fopen(p->reached, "a");
        if (!f)
            return agon_error_set(err, AGON_EIO, "probe_pause: cannot create %s", p->reached);
        fprintf(f, "%lld\n", (long long)agon_metric_step(ctx));
        fclose(f);
        struct timespec tick = {0, 10 * 1000 * 1000};
        for (double waited = 0; access(p->go, F_OK) != 0; waited += 0.01) {
            if (waited > p->timeout)
                return agon_error_set(err, AGON_EIO, "probe_pause: %s did not appear in %g s",
                                      p->go, p->timeout);
            nanosleep(&tick, NULL);
        }
    }
    return agon_metric_emit(ctx, "evaluated_at", (double)agon_metric_step(ctx), err);
}

static const char *const pause_outputs[] = {"evaluated_at", NULL};

static const agon_metric_vtable pause_vtable = {
    sizeof(agon_metric_vtable), pause_outputs, pause_create, free, pause_evaluate, NULL, NULL,
};

static const agon_param_spec pause_params[] = {
    {"reached", AGON_PARAM_STRING, NULL, AGON_NO_RANGE, NULL,
     "file created when the run reaches the metric's first evaluation"},
    {"go", AGON_PARAM_STRING, NULL, AGON_NO_RANGE, NULL, "file the run waits for"},
    {"timeout", AGON_PARAM_FLOAT, "60", 0, 3600, NULL, "seconds to wait for `go` at most"},
    AGON_PARAM_END,
};

AGON_PLUGIN("probes", "1.0.0", "probe components for agon's own tests",
            AGON_OPTIMIZER("probe_sgd", "SGD that checks its update counter", probe_sgd_params,
                           &probe_sgd_vtable),
            AGON_OPTIMIZER("probe_segv", "SGD that crashes at a chosen update",
                           probe_segv_params, &probe_segv_vtable),
            AGON_METRIC("probe", "draws through the metric context", NULL, &probe_vtable),
            AGON_DATASET("probe_clusters", "labelled 2-D blobs", clusters_params,
                         &clusters_vtable),
            AGON_METRIC("probe_labels", "labelled draws through the metric context",
                         label_probe_params, &label_probe_vtable),
            AGON_METRIC("probe_tensor", "tensor outputs and G on chosen latents",
                        probe_tensor_params, &probe_tensor_vtable),
            AGON_METRIC("probe_pause", "waits for a file at its first evaluation",
                        pause_params, &pause_vtable))
