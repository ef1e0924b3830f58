/* adam — Adam (Kingma & Ba, 2015) with bias correction, as PyTorch's
 * torch.optim.Adam (amsgrad off).  Per parameter element, at update t
 * (1-based):
 *
 *   g = grad + weight_decay * p       (L2 penalty in the gradient, as in
 *                                      PyTorch's Adam; not AdamW's
 *                                      decoupled decay)
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 *
 * m and v are the host-held state tensors 0 and 1, zero at t = 1.  Thanks
 * to the bias correction the first update is lr * g / (|g| + eps), about
 * lr * sign(g), whatever the scale of the gradient.
 */
#include <math.h>
#include <stdlib.h>

#include "agon/plugin.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define ADAM_LR 1e-3
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8
#define ADAM_WEIGHT_DECAY 0

typedef struct adam {
    double lr, beta1, beta2, eps, weight_decay;
} adam;

/* A NULL section means "all defaults". */
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

static int check_beta(const agon_node *cfg, const char *key, double beta, agon_error *err)
{
    if (beta >= 0.0 && beta < 1.0)
        return 0;
    return agon_node_error(err, AGON_ECONFIG, node_of(cfg, key),
                           "must be in [0, 1), got %g; the usual values are beta1 0.9 (0.5 "
                           "for GANs) and beta2 0.999",
                           beta);
}

static int adam_create(const agon_node *cfg, void **state, agon_error *err)
{
    adam s;
    int rc;
    if ((rc = opt_float(cfg, "lr", ADAM_LR, &s.lr, err)) != 0 ||
        (rc = opt_float(cfg, "beta1", ADAM_BETA1, &s.beta1, err)) != 0 ||
        (rc = opt_float(cfg, "beta2", ADAM_BETA2, &s.beta2, err)) != 0 ||
        (rc = opt_float(cfg, "eps", ADAM_EPS, &s.eps, err)) != 0 ||
        (rc = opt_float(cfg, "weight_decay", ADAM_WEIGHT_DECAY, &s.weight_decay, err)) != 0)
        return rc;

    /* The schema's bounds are inclusive; these are the strict ones. */
    if (!(s.lr > 0.0) || !isfinite(s.lr))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "lr"),
                               "must be a finite number greater than 0, got %g; use a small "
                               "positive learning rate such as 0.0002",
                               s.lr);
    if ((rc = check_beta(cfg, "beta1", s.beta1, err)) != 0 ||
        (rc = check_beta(cfg, "beta2", s.beta2, err)) != 0)
        return rc;
    if (!(s.eps > 0.0) || !isfinite(s.eps))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "eps"),
                               "must be a finite number greater than 0, got %g; 1e-8 is the "
                               "usual value",
                               s.eps);
    if (!(s.weight_decay >= 0.0) || !isfinite(s.weight_decay))
        return agon_node_error(err, AGON_ECONFIG, node_of(cfg, "weight_decay"),
                               "must be a finite number >= 0, got %g", s.weight_decay);

    adam *p = malloc(sizeof *p);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "adam: out of memory");
    *p = s;
    *state = p;
    return 0;
}

static void adam_destroy(void *state)
{
    free(state);
}

/* Float arithmetic with the bias corrections folded into two scalars, as
 * PyTorch does for float32 parameters: the loop vectorises, which matters
 * because the update touches every parameter every step. */
static void adam_step(void *state, agon_optim_slot *slots, size_t n_slots, int64_t t)
{
    const adam *s = state;
    double bc1 = 1.0 - pow(s->beta1, (double)t);
    double bc2 = 1.0 - pow(s->beta2, (double)t);
    const float beta1 = (float)s->beta1, beta2 = (float)s->beta2;
    const float one_m_beta1 = (float)(1.0 - s->beta1), one_m_beta2 = (float)(1.0 - s->beta2);
    const float step_size = (float)(s->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float eps = (float)s->eps, decay = (float)s->weight_decay;
    for (size_t k = 0; k < n_slots; k++) {
        float *restrict p = slots[k].value->data;
        const float *restrict grad = slots[k].grad->data;
        float *restrict m = slots[k].state[0].data;
        float *restrict v = slots[k].state[1].data;
        int64_t n = agon_tensor_numel(slots[k].value);
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i] + decay * p[i];
            float mi = beta1 * m[i] + one_m_beta1 * g;
            float vi = beta2 * v[i] + one_m_beta2 * g * g;
            m[i] = mi;
            v[i] = vi;
            p[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
        }
    }
}

static const agon_param_spec adam_params[] = {
    {"lr", AGON_PARAM_FLOAT, STR(ADAM_LR), 0.0, INFINITY, NULL,
     "learning rate (step size), greater than 0"},
    {"beta1", AGON_PARAM_FLOAT, STR(ADAM_BETA1), 0.0, 1.0, NULL,
     "decay of the gradient's running mean, in [0, 1) (DCGAN uses 0.5)"},
    {"beta2", AGON_PARAM_FLOAT, STR(ADAM_BETA2), 0.0, 1.0, NULL,
     "decay of the squared gradient's running mean, in [0, 1)"},
    {"eps", AGON_PARAM_FLOAT, STR(ADAM_EPS), 0.0, INFINITY, NULL,
     "added to the denominator for numerical stability, greater than 0"},
    {"weight_decay", AGON_PARAM_FLOAT, STR(ADAM_WEIGHT_DECAY), 0.0, INFINITY, NULL,
     "L2 penalty added to the gradient as in PyTorch's Adam (not decoupled as in AdamW)"},
    AGON_PARAM_END,
};

static const agon_optimizer_vtable adam_vtable = {
    sizeof(agon_optimizer_vtable), 2, adam_create, adam_destroy, adam_step,
};

AGON_PLUGIN("adam", "1.0.0", "Adam optimizer",
            AGON_OPTIMIZER("adam", "Adam with bias correction (PyTorch semantics)", adam_params,
                           &adam_vtable));
