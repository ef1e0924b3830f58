/* mlp — a fully connected network usable as generator or discriminator.
 *
 *   input (flattened) -> [linear(h_i) -> activation] for each h_i in hidden
 *                     -> linear(numel(out_shape)) -> output_activation
 *
 * The output is reshaped to out_shape when that is not a flat vector (e.g.
 * a generator of [1, 28, 28] images).  A discriminator must end in a raw
 * logit: the losses apply the sigmoid themselves, in a numerically stable
 * form, so a sigmoid here would squash it twice and a tanh would bound it.
 *
 * Parameters (see mlp_params): hidden, activation, slope, output_activation,
 * init, init_gain, bias.
 */
#include <string.h>

#include "agon/plugin.h"

#define MLP_MAX_HIDDEN 64
#define MLP_MAX_WIDTH 65536

static const int64_t mlp_default_hidden[] = {128, 128};

static const char *const mlp_activations[] = {"relu", "leaky_relu", "tanh", "sigmoid", NULL};
static const char *const mlp_output_activations[] = {"none", "tanh", "sigmoid", NULL};
static const char *const mlp_inits[] = {"default", "xavier_uniform", "kaiming_uniform",
                                        "normal", NULL};

/* The host validates choices against the schema before build runs; this
 * check keeps the plugin safe when it is driven without the host. */
static int opt_choice(const agon_node *cfg, const char *key, const char *def,
                      const char *const *choices, const char **out, agon_error *err)
{
    int rc = agon_cfg_opt_string(cfg, key, def, out, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; choices[i]; i++) {
        if (strcmp(*out, choices[i]) == 0)
            return 0;
    }
    char list[256] = "";
    for (size_t i = 0; choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, key),
                           "unknown value '%s'; choose one of %s", *out, list);
}

/* A missing or null key takes the default; an explicit [] is honoured (no
 * hidden layer: a linear model, e.g. logistic regression as D). */
static int read_hidden(const agon_node *cfg, int64_t *hidden, size_t *n, agon_error *err)
{
    const agon_node *node = agon_node_get(cfg, "hidden");
    if (!node || agon_node_kind_of(node) == AGON_NODE_NULL) {
        *n = sizeof mlp_default_hidden / sizeof mlp_default_hidden[0];
        memcpy(hidden, mlp_default_hidden, sizeof mlp_default_hidden);
        return 0;
    }
    int rc = agon_cfg_opt_int_list(cfg, "hidden", hidden, MLP_MAX_HIDDEN, n, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        if (hidden[i] < 1 || hidden[i] > MLP_MAX_WIDTH) {
            return agon_node_error(err, AGON_ECONFIG, agon_node_at(node, i),
                                   "layer width %lld is out of range; use 1 to %d",
                                   (long long)hidden[i], MLP_MAX_WIDTH);
        }
    }
    return 0;
}

static int mlp_build(const agon_node *cfg, agon_role role, const agon_shape *out_shape,
                     agon_net *net, agon_rng *rng, agon_error *err)
{
    int64_t hidden[MLP_MAX_HIDDEN];
    size_t n_hidden = 0;
    const char *act_name, *out_name, *init_name;
    double slope, gain;
    bool bias;
    int rc;

    if ((rc = read_hidden(cfg, hidden, &n_hidden, err)) != 0 ||
        (rc = opt_choice(cfg, "activation", "relu", mlp_activations, &act_name, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "slope", 0.2, &slope, err)) != 0 ||
        (rc = opt_choice(cfg, "output_activation", "none", mlp_output_activations,
                         &out_name, err)) != 0 ||
        (rc = opt_choice(cfg, "init", "default", mlp_inits, &init_name, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "init_gain", 0.0, &gain, err)) != 0 ||
        (rc = agon_cfg_opt_bool(cfg, "bias", true, &bias, err)) != 0)
        return rc;

    if (gain < 0.0) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "init_gain"),
                               "must be >= 0 (0 picks the scheme's default), got %g", gain);
    }
    if (role == AGON_ROLE_DISCRIMINATOR && strcmp(out_name, "none") != 0) {
        return agon_node_error(err, AGON_ECONFIG, agon_node_get(cfg, "output_activation"),
                               "a discriminator outputs a logit; use output_activation: "
                               "none (the loss applies the sigmoid)");
    }

    agon_activation act, out_act;
    agon_init init;
    if (agon_activation_parse(act_name, &act) != 0 ||
        agon_activation_parse(out_name, &out_act) != 0 ||
        agon_init_parse(init_name, &init) != 0) {
        return agon_error_set(err, AGON_EINTERNAL,
                              "mlp: libagon does not know activation '%s', '%s' or init '%s'",
                              act_name, out_name, init_name);
    }

    for (size_t i = 0; i < n_hidden; i++) {
        if ((rc = agon_net_add_linear(net, hidden[i], bias, init, (float)gain, rng, err)) != 0 ||
            (rc = agon_net_add_activation(net, act, (float)slope, err)) != 0)
            return rc;
    }
    int64_t out_numel = agon_shape_numel(out_shape);
    if ((rc = agon_net_add_linear(net, out_numel, bias, init, (float)gain, rng, err)) != 0 ||
        (rc = agon_net_add_activation(net, out_act, (float)slope, err)) != 0)
        return rc;

    agon_shape flat = agon_net_out_shape(net);
    return agon_shape_equal(&flat, out_shape) ? 0 : agon_net_add_reshape(net, out_shape, err);
}

static const agon_model_vtable mlp_vtable = {
    sizeof(agon_model_vtable),
    mlp_build,
};

static const agon_param_spec mlp_params[] = {
    {"hidden", AGON_PARAM_INT_LIST, "[128, 128]", 1, MLP_MAX_WIDTH, NULL,
     "widths of the hidden layers, input side first ([] for none)"},
    {"activation", AGON_PARAM_CHOICE, "relu", AGON_NO_RANGE,
     "relu|leaky_relu|tanh|sigmoid", "activation after each hidden layer"},
    {"slope", AGON_PARAM_FLOAT, "0.2", AGON_NO_RANGE, NULL,
     "negative slope of leaky_relu"},
    {"output_activation", AGON_PARAM_CHOICE, "none", AGON_NO_RANGE, "none|tanh|sigmoid",
     "activation on the output (must be none for a discriminator)"},
    {"init", AGON_PARAM_CHOICE, "default", AGON_NO_RANGE,
     "default|xavier_uniform|kaiming_uniform|normal", "weight initialisation scheme"},
    {"init_gain", AGON_PARAM_FLOAT, "0", AGON_NO_RANGE, NULL,
     "gain of the init scheme (>= 0; 0 picks the scheme's default)"},
    {"bias", AGON_PARAM_BOOL, "true", AGON_NO_RANGE, NULL, "give linear layers a bias"},
    AGON_PARAM_END,
};

AGON_PLUGIN("mlp", "1.0.0", "Multilayer perceptron generator / discriminator",
            AGON_MODEL("mlp", "Fully connected network: linear + activation per hidden layer",
                       mlp_params, &mlp_vtable));
