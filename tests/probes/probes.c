/* Probe components for the game-loop tests (not installed):
 *   optimizer 'probe_sgd': plain SGD that also checks the update counter t
 *     it is given is 1, 2, 3, ...; on a wrong t it writes NaN into every
 *     parameter, so the run diverges and the test sees it.
 *   metric 'probe': draws real and fake samples and runs D through the
 *     metric context, emitting their means, so tests can check that a
 *     metric's draws leave training untouched. */
#include <math.h>
#include <stdlib.h>

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
};

AGON_PLUGIN("probes", "1.0.0", "probe components for agon's own tests",
            AGON_OPTIMIZER("probe_sgd", "SGD that checks its update counter", probe_sgd_params,
                           &probe_sgd_vtable),
            AGON_METRIC("probe", "draws through the metric context", NULL, &probe_vtable))
