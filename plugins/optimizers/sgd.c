/* sgd — stochastic gradient descent with optional (Nesterov) momentum and
 * L2 weight decay, with PyTorch's torch.optim.SGD semantics (dampening 0).
 * Per parameter element, at every step:
 *
 *   g   = grad + weight_decay * p
 *   buf = momentum * buf + g              (only when momentum > 0)
 *   d   = nesterov ? g + momentum * buf : buf     (d = g without momentum)
 *   p   = p - lr * d
 *
 * buf is the host-held state tensor 0; it starts at zero, so the first step
 * sets buf = g exactly as PyTorch does.
 */
#include <math.h>
#include <stdlib.h>

#include "agon/plugin.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define SGD_LR 0.01
#define SGD_MOMENTUM 0
#define SGD_WEIGHT_DECAY 0

typedef struct sgd {
    double lr, momentum, weight_decay;
    bool nesterov;
} sgd;

/* A NULL section means "all defaults" (handy for programs and tests that
 * drive the plugin without a config). */
static int opt_float(const agon_node *cfg, const char *key, double def, double *out,
                     agon_error *err)
{
    if (!cfg) {
        *out = def;
        return 0;
    }
    return agon_cfg_opt_float(cfg, key, def, out, err);
}

static const agon_node *node_of(const agon_node *cfg, const char *key)
{
    return cfg ? agon_node_get(cfg, key) : NULL;
}

static int sgd_create(const agon_node *cfg, void **state, agon_error *err)
{
    sgd s;
    int rc;
    s.nesterov = false;
    if ((rc = opt_float(cfg, "lr", SGD_LR, &s.lr, err)) != 0 ||
        (rc = opt_float(cfg, "momentum", SGD_MOMENTUM, &s.momentum, err)) != 0 ||
        (rc = opt_float(cfg, "weight_decay", SGD_WEIGHT_DECAY, &s.weight_decay, err)) != 0)
        return rc;
    if (cfg && (rc = agon_cfg_opt_bool(cfg, "nesterov", false, &s.nesterov, err)) != 0)
        return rc;

    /* The schema's bounds are inclusive; these are the strict ones. */
    if (!(s.lr > 0.0) || !isfinite(s.lr))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "lr"),
                               "must be a finite number greater than 0, got %g; use a small "
                               "positive learning rate such as 0.01",
                               s.lr);
    if (!(s.momentum >= 0.0 && s.momentum < 1.0))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "momentum"),
                               "must be in [0, 1), got %g; 0.9 is the usual choice", s.momentum);
    if (!(s.weight_decay >= 0.0) || !isfinite(s.weight_decay))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "weight_decay"),
                               "must be a finite number >= 0, got %g", s.weight_decay);
    if (s.nesterov && s.momentum == 0.0)
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "nesterov"),
                               "Nesterov momentum needs momentum > 0; set momentum (e.g. 0.9) "
                               "or nesterov: false");

    sgd *p = malloc(sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "sgd: out of memory");
    *p = s;
    *state = p;
    return 0;
}

static void sgd_destroy(void *state)
{
    free(state);
}

static void sgd_step(void *state, agon_optim_slot *slots, size_t n_slots, int64_t t)
{
    const sgd *s = state;
    for (size_t k = 0; k < n_slots; k++) {
        float *p = slots[k].value->data;
        const float *grad = slots[k].grad->data;
        float *buf = slots[k].state[0].data;
        int64_t n = agon_tensor_numel(slots[k].value);
        for (int64_t i = 0; i < n; i++) {
            double g = (double)grad[i] + s->weight_decay * (double)p[i];
            double d = g;
            if (s->momentum > 0.0) {
                double b = s->momentum * (double)buf[i] + g;
                buf[i] = (float)b;
                d = s->nesterov ? g + s->momentum * b : b;
            }
            p[i] = (float)((double)p[i] - s->lr * d);
        }
    }
}

static const agon_param_spec sgd_params[] = {
    {"lr", AGON_PARAM_FLOAT, STR(SGD_LR), 0.0, INFINITY, NULL,
     "learning rate (step size), greater than 0"},
    {"momentum", AGON_PARAM_FLOAT, STR(SGD_MOMENTUM), 0.0, 1.0, NULL,
     "momentum factor in [0, 1); 0 turns momentum off"},
    {"nesterov", AGON_PARAM_BOOL, "false", AGON_NO_RANGE, NULL,
     "use Nesterov momentum (needs momentum > 0)"},
    {"weight_decay", AGON_PARAM_FLOAT, STR(SGD_WEIGHT_DECAY), 0.0, INFINITY, NULL,
     "L2 penalty: weight_decay * param is added to the gradient"},
    AGON_PARAM_END,
};

static const agon_optimizer_vtable sgd_vtable = {
    sizeof(agon_optimizer_vtable), 1, sgd_create, sgd_destroy, sgd_step,
};

AGON_PLUGIN("sgd", "1.0.0", "Stochastic gradient descent",
            AGON_OPTIMIZER("sgd", "SGD with optional (Nesterov) momentum and weight decay",
                           sgd_params, &sgd_vtable));
