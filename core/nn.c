/* Sequential networks: the layer list, buffers, parameters and the
 * forward/backward driver (see agon/nn.h).  The layer kinds themselves live
 * in the other nn_*.c files. */
#include "agon/nn.h"
#include "nn_int.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- enum names ------------------------------------------------------------ */

#define NAME_ENTRY(e, s) s,
static const char *const activation_names[] = {AGON_ACTIVATION_MAP(NAME_ENTRY)};
static const char *const init_names[] = {AGON_INIT_MAP(NAME_ENTRY)};
#undef NAME_ENTRY

_Static_assert(sizeof activation_names / sizeof activation_names[0] == AGON_ACT_COUNT,
               "AGON_ACTIVATION_MAP and AGON_ACT_COUNT disagree");
_Static_assert(sizeof init_names / sizeof init_names[0] == AGON_INIT_COUNT,
               "AGON_INIT_MAP and AGON_INIT_COUNT disagree");

const char *agon_activation_name(agon_activation act)
{
    if ((int)act < 0 || act >= AGON_ACT_COUNT)
        return NULL;
    return activation_names[act];
}

int agon_activation_parse(const char *name, agon_activation *out)
{
    for (int i = 0; name && i < AGON_ACT_COUNT; i++) {
        if (strcmp(name, activation_names[i]) == 0) {
            *out = (agon_activation)i;
            return 0;
        }
    }
    return AGON_ECONFIG;
}

const char *agon_init_name(agon_init init)
{
    if ((int)init < 0 || init >= AGON_INIT_COUNT)
        return NULL;
    return init_names[init];
}

int agon_init_parse(const char *name, agon_init *out)
{
    for (int i = 0; name && i < AGON_INIT_COUNT; i++) {
        if (strcmp(name, init_names[i]) == 0) {
            *out = (agon_init)i;
            return 0;
        }
    }
    return AGON_ECONFIG;
}

/* ---- the network ----------------------------------------------------------- */

typedef struct net_layer {
    const agon_layer_ops *ops;  /* borrowed: static in core or in a plugin */
    void *state;                /* owned */
    agon_shape in_shape;        /* per sample */
    agon_shape out_shape;       /* per sample */
    agon_tensor out_buf;        /* [max_batch, out_shape...] */
    agon_tensor din_buf;        /* [max_batch, in_shape...] */
    /* Views of the buffers for the current batch, kept here so that the
     * pointers handed out by forward/backward stay valid between calls. */
    agon_tensor out_view;
    agon_tensor din_view;
    agon_param *params;         /* in the arena */
    size_t n_params;
} net_layer;

struct agon_net {
    agon_shape in_shape;
    int64_t max_batch;
    agon_arena *arena;
    /* The input of the last forward is copied, so backward does not depend
     * on the caller keeping its batch untouched in between. */
    agon_tensor in_buf;
    agon_tensor in_view;
    agon_tensor dout_view;      /* returned by backward of an empty net */
    int64_t batch;              /* of the last forward; 0 before the first */
    int64_t batch_groups;       /* see agon_net_set_batch_groups */
    /* Arrays of pointers into the arena: they grow while the network is
     * built, but what they point at never moves. */
    net_layer **layers;
    size_t n_layers, cap_layers;
    agon_param **params;
    size_t n_params, cap_params;
    agon_buffer **buffers;
    size_t n_buffers, cap_buffers;
    agon_rng **rngs;
    size_t n_rngs, cap_rngs;
    /* A planned network (agon_net_create_planned): `arena` is a planning
     * arena; what a model takes through agon_net_arena is real and comes
     * from `model_arena` (the arena itself when not planned), and storage a
     * model reaches while it builds from `reached`, which is not counted
     * (the planning arena counted it). */
    bool planned, plan_finished;
    agon_arena *model_arena;
    agon_arena *reached;
};

static bool sample_shape_ok(const agon_shape *s)
{
    /* One dimension is reserved for the batch. */
    if (s->ndim < 0 || s->ndim >= AGON_MAX_DIMS)
        return false;
    for (int i = 0; i < s->ndim; i++) {
        if (s->dim[i] < 1)
            return false;
    }
    return true;
}

/* True when [batch, s...] floats (or s alone, batch 1) can be counted in
 * elements and bytes without overflowing 64 bits. */
static bool fits_64_bits(int64_t batch, const agon_shape *s)
{
    int64_t n;
    return agon_shape_numel_checked(s, &n) && !__builtin_mul_overflow(n, batch, &n) &&
           n <= INT64_MAX / (int64_t)sizeof(float);
}

static void format_dims(const agon_shape *s, char *buf, size_t cap)
{
    /* The shape may be malformed (that is what is being reported), so it
     * is printed without trusting ndim. */
    agon_shape c = *s;
    if (c.ndim < 0)
        c.ndim = 0;
    if (c.ndim > AGON_MAX_DIMS)
        c.ndim = AGON_MAX_DIMS;
    agon_shape_format(&c, buf, cap);
}

static agon_net *net_create(const agon_shape *in_shape, int64_t max_batch, bool planned,
                            agon_error *err)
{
    char buf[128];
    if (!sample_shape_ok(in_shape)) {
        format_dims(in_shape, buf, sizeof buf);
        agon_error_set(err, AGON_ECONFIG,
                       "network: input shape %s is invalid; use at most %d dimensions, "
                       "each at least 1",
                       buf, AGON_MAX_DIMS - 1);
        return NULL;
    }
    if (max_batch < 1) {
        agon_error_set(err, AGON_ECONFIG,
                       "network: max_batch must be at least 1, got %lld; set a positive "
                       "batch size",
                       (long long)max_batch);
        return NULL;
    }
    if (!fits_64_bits(max_batch, in_shape)) {
        format_dims(in_shape, buf, sizeof buf);
        agon_error_set(err, AGON_ECONFIG,
                       "network: input %s for a batch of %lld has more elements than 64-bit "
                       "sizes can count; use a smaller input or batch",
                       buf, (long long)max_batch);
        return NULL;
    }
    agon_net *net = calloc(1, sizeof *net);
    if (!net) {
        agon_error_set(err, AGON_ENOMEM, "out of memory creating a network");
        return NULL;
    }
    net->in_shape = *in_shape;
    net->max_batch = max_batch;
    net->batch_groups = 1;
    net->planned = planned;
    net->arena = planned ? agon_arena_create_planning(err) : agon_arena_create(0, err);
    net->model_arena = planned && net->arena ? agon_arena_create(0, err) : net->arena;
    if (!net->arena || !net->model_arena) {
        agon_net_destroy(net);
        return NULL;
    }
    agon_shape batched = agon_shape_batched(max_batch, in_shape);
    if (agon_arena_tensor(net->arena, &net->in_buf, &batched, err) != 0) {
        agon_net_destroy(net);
        return NULL;
    }
    return net;
}

agon_net *agon_net_create(const agon_shape *in_shape, int64_t max_batch, agon_error *err)
{
    return net_create(in_shape, max_batch, false, err);
}

agon_net *agon_net_create_planned(const agon_shape *in_shape, int64_t max_batch,
                                  agon_error *err)
{
    return net_create(in_shape, max_batch, true, err);
}

void agon_net_finish_plan(agon_net *net)
{
    net->plan_finished = true;
}

size_t agon_net_bytes(const agon_net *net)
{
    size_t core = agon_arena_used(net->arena);
    size_t model = net->model_arena != net->arena ? agon_arena_used(net->model_arena) : 0;
    return model > SIZE_MAX - core ? SIZE_MAX : core + model;
}

void agon_net_destroy(agon_net *net)
{
    if (!net)
        return;
    for (size_t i = 0; i < net->n_layers; i++) {
        net_layer *l = net->layers[i];
        if (l->ops->destroy)
            l->ops->destroy(l->state);
    }
    free(net->layers);
    free(net->params);
    free(net->buffers);
    free(net->rngs);
    if (net->model_arena != net->arena)
        agon_arena_destroy(net->model_arena);
    agon_arena_destroy(net->arena);
    agon_arena_destroy(net->reached);
    free(net);
}

agon_shape agon_net_out_shape(const agon_net *net)
{
    if (net->n_layers == 0)
        return net->in_shape;
    return net->layers[net->n_layers - 1]->out_shape;
}

agon_shape agon_net_in_shape(const agon_net *net)
{
    return net->in_shape;
}

int64_t agon_net_max_batch(const agon_net *net)
{
    return net->max_batch;
}

size_t agon_net_layer_count(const agon_net *net)
{
    return net->n_layers;
}

const char *agon_net_layer_type(const agon_net *net, size_t i)
{
    if (i >= net->n_layers)
        return NULL;
    return net->layers[i]->ops->type;
}

agon_arena *agon_net_arena(agon_net *net)
{
    return net->model_arena;
}

void *agon__net_alloc(agon_net *net, size_t bytes, agon_error *err)
{
    return agon_arena_alloc(net->arena, bytes, err);
}

int agon__net_floats(agon_net *net, float **out, int64_t n, agon_error *err)
{
    agon_tensor t;
    agon_shape shape = agon_shape_make(1, &n);
    int rc = agon_arena_tensor(net->arena, &t, &shape, err);
    *out = rc == 0 ? t.data : NULL;
    return rc;
}

/* Gives a tensor of a planned network real zeroed storage, once: a model
 * that reaches it while building may write it (initialise a parameter). */
static int reach(agon_net *net, agon_tensor *t, agon_error *err)
{
    if (!net->planned || t->data)
        return 0;
    if (!net->reached && !(net->reached = agon_arena_create(0, err)))
        return AGON_ENOMEM;
    /* The planning arena accepted the size, so it fits in bytes. */
    t->data = agon_arena_alloc(net->reached, (size_t)agon_tensor_numel(t) * sizeof(float), err);
    return t->data ? 0 : AGON_ENOMEM;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem, agon_error *err)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return agon_error_set(err, AGON_ENOMEM, "out of memory growing a network");
    *arr = p;
    *cap = ncap;
    return 0;
}

static int check_ops(const agon_layer_ops *ops, size_t idx, agon_error *err)
{
    if (!ops)
        return agon_error_set(err, AGON_EPLUGIN, "layer %zu: no layer ops given", idx);
    if (ops->struct_size < sizeof(agon_layer_ops))
        return agon_error_set(err, AGON_EPLUGIN,
                              "layer %zu: agon_layer_ops.struct_size is %u, expected at "
                              "least %zu; rebuild the plugin against this agon",
                              idx, (unsigned)ops->struct_size, sizeof(agon_layer_ops));
    if (!ops->type || !ops->forward || !ops->backward)
        return agon_error_set(err, AGON_EPLUGIN,
                              "layer %zu: agon_layer_ops must set type, forward and backward",
                              idx);
    return 0;
}

static int add_layer(agon_net *net, const agon_layer_ops *ops, void *state,
                     const agon_shape *out_shape, size_t n_params,
                     const char *const *param_names, const agon_shape *param_shapes,
                     agon_param **params_out, agon_error *err)
{
    size_t idx = net->n_layers;
    char buf[128];
    int rc = check_ops(ops, idx, err);
    if (rc)
        return rc;
    if (!sample_shape_ok(out_shape)) {
        format_dims(out_shape, buf, sizeof buf);
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): output shape %s is invalid; use at most %d "
                              "dimensions, each at least 1",
                              idx, ops->type, buf, AGON_MAX_DIMS - 1);
    }
    if (!fits_64_bits(net->max_batch, out_shape)) {
        format_dims(out_shape, buf, sizeof buf);
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): output %s for a batch of %lld has more elements "
                              "than 64-bit sizes can count; use smaller layers or a smaller "
                              "batch",
                              idx, ops->type, buf, (long long)net->max_batch);
    }
    assert(n_params == 0 || param_shapes);
    for (size_t p = 0; p < n_params; p++) {
        const char *pn = param_names ? param_names[p] : NULL;
        if (!pn || !*pn)
            return agon_error_set(err, AGON_EPLUGIN,
                                  "layer %zu (%s): parameter %zu has no name", idx, ops->type,
                                  p);
        int w = snprintf(buf, sizeof buf, "%zu.%s", idx, pn);
        if (w < 0 || (size_t)w >= sizeof(((agon_param *)0)->name))
            return agon_error_set(err, AGON_EPLUGIN,
                                  "layer %zu (%s): parameter name '%s' is too long; "
                                  "'<layer>.<name>' must fit in %zu characters",
                                  idx, ops->type, pn, sizeof(((agon_param *)0)->name) - 1);
        const agon_shape *ps = &param_shapes[p];
        bool shape_ok = ps->ndim >= 0 && ps->ndim <= AGON_MAX_DIMS;
        for (int d = 0; shape_ok && d < ps->ndim; d++)
            shape_ok = ps->dim[d] >= 1;
        if (!shape_ok) {
            format_dims(ps, buf, sizeof buf);
            return agon_error_set(err, AGON_EPLUGIN,
                                  "layer %zu (%s): parameter '%s' has invalid shape %s", idx,
                                  ops->type, pn, buf);
        }
        if (!fits_64_bits(1, ps)) {
            format_dims(ps, buf, sizeof buf);
            return agon_error_set(err, AGON_ECONFIG,
                                  "layer %zu (%s): parameter '%s' of shape %s has more elements "
                                  "than 64-bit sizes can count; use smaller layers",
                                  idx, ops->type, pn, buf);
        }
    }
    if ((rc = grow((void **)&net->layers, &net->cap_layers, net->n_layers + 1,
                   sizeof *net->layers, err)) != 0)
        return rc;
    if ((rc = grow((void **)&net->params, &net->cap_params, net->n_params + n_params,
                   sizeof *net->params, err)) != 0)
        return rc;

    net_layer *l = agon_arena_alloc(net->arena, sizeof *l, err);
    if (!l)
        return AGON_ENOMEM;
    l->ops = ops;
    l->in_shape = agon_net_out_shape(net);
    l->out_shape = *out_shape;
    agon_shape ob = agon_shape_batched(net->max_batch, &l->out_shape);
    agon_shape ib = agon_shape_batched(net->max_batch, &l->in_shape);
    if ((rc = agon_arena_tensor(net->arena, &l->out_buf, &ob, err)) != 0 ||
        (rc = agon_arena_tensor(net->arena, &l->din_buf, &ib, err)) != 0)
        return rc;
    if (n_params) {
        l->params = agon_arena_alloc(net->arena, n_params * sizeof *l->params, err);
        if (!l->params)
            return AGON_ENOMEM;
    }
    l->n_params = n_params;
    for (size_t p = 0; p < n_params; p++) {
        agon_param *prm = &l->params[p];
        snprintf(prm->name, sizeof prm->name, "%zu.%s", idx, param_names[p]);
        if ((rc = agon_arena_tensor(net->arena, &prm->value, &param_shapes[p], err)) != 0 ||
            (rc = agon_arena_tensor(net->arena, &prm->grad, &param_shapes[p], err)) != 0)
            return rc;
    }

    /* Commit only once nothing can fail any more. */
    l->state = state;
    net->layers[net->n_layers++] = l;
    for (size_t p = 0; p < n_params; p++)
        net->params[net->n_params++] = &l->params[p];
    net->batch = 0;
    if (params_out)
        *params_out = l->params;
    return 0;
}

int agon__net_add_layer(agon_net *net, const agon_layer_ops *ops, void *state,
                        const agon_shape *out_shape, size_t n_params,
                        const char *const *param_names, const agon_shape *param_shapes,
                        agon_param **params_out, agon_error *err)
{
    int rc = add_layer(net, ops, state, out_shape, n_params, param_names, param_shapes,
                       params_out, err);
    if (rc != 0 && ops && ops->struct_size >= sizeof(agon_layer_ops) && ops->destroy)
        ops->destroy(state);
    return rc;
}

int agon_net_add_layer(agon_net *net, const agon_layer_ops *ops, void *state,
                       const agon_shape *out_shape, size_t n_params,
                       const char *const *param_names, const agon_shape *param_shapes,
                       agon_param **params_out, agon_error *err)
{
    int rc = agon__net_add_layer(net, ops, state, out_shape, n_params, param_names,
                                 param_shapes, params_out, err);
    /* The model initialises what it is handed, planned or not. */
    for (size_t p = 0; rc == 0 && params_out && p < n_params; p++) {
        if ((rc = reach(net, &(*params_out)[p].value, err)) == 0)
            rc = reach(net, &(*params_out)[p].grad, err);
    }
    return rc;
}

/* ---- forward and backward ---------------------------------------------------- */

static agon_tensor batch_view(const agon_tensor *buf, int64_t batch)
{
    return agon_tensor_rows(buf, 0, batch);
}

const agon_tensor *agon_net_forward(agon_net *net, const agon_tensor *in, bool training)
{
    assert(!net->planned && "a planned network cannot run");
    assert(in && in->shape.ndim >= 1);
    int64_t batch = in->shape.dim[0];
    assert(batch >= 1 && batch <= net->max_batch);
    assert(agon_tensor_numel(in) == batch * agon_shape_numel(&net->in_shape));
    assert(batch % net->batch_groups == 0 && "the batch must be a multiple of the groups");

    net->in_view = batch_view(&net->in_buf, batch);
    if (in->data != net->in_view.data)
        memcpy(net->in_view.data, in->data, (size_t)agon_tensor_numel(in) * sizeof(float));
    net->batch = batch;

    const agon_tensor *x = &net->in_view;
    for (size_t i = 0; i < net->n_layers; i++) {
        net_layer *l = net->layers[i];
        l->out_view = batch_view(&l->out_buf, batch);
        l->ops->forward(l->state, l->params, x, &l->out_view, training);
        x = &l->out_view;
    }
    return x;
}

const agon_tensor *agon_net_backward(agon_net *net, const agon_tensor *dout, bool param_grads,
                                     bool want_din)
{
    int64_t batch = net->batch;
    assert(batch >= 1 && "agon_net_backward needs a forward first");
    assert(dout && dout->shape.ndim >= 1 && dout->shape.dim[0] == batch);
#ifndef NDEBUG
    agon_shape out_shape = agon_net_out_shape(net);
    assert(agon_tensor_numel(dout) == batch * agon_shape_numel(&out_shape));
#endif

    if (net->n_layers == 0) {
        if (!want_din)
            return NULL;
        net->dout_view = *dout;
        return &net->dout_view;
    }
    if (!param_grads && !want_din)
        return NULL;

    /* The layer sees dout with its own output shape, whatever shape the
     * caller's tensor had. */
    net_layer *last = net->layers[net->n_layers - 1];
    net->dout_view = batch_view(&last->out_buf, batch);
    net->dout_view.data = dout->data;

    const agon_tensor *dy = &net->dout_view;
    for (size_t i = net->n_layers; i-- > 0;) {
        net_layer *l = net->layers[i];
        const agon_tensor *x = i == 0 ? &net->in_view : &net->layers[i - 1]->out_view;
        agon_tensor *dx = NULL;
        if (i > 0 || want_din) {
            l->din_view = batch_view(&l->din_buf, batch);
            dx = &l->din_view;
        }
        l->ops->backward(l->state, l->params, x, &l->out_view, dy, dx, param_grads);
        dy = dx;
    }
    return dy;
}

void agon_net_set_batch_groups(agon_net *net, int64_t groups)
{
    assert(groups >= 1 && groups <= net->max_batch);
    net->batch_groups = groups;
}

int64_t agon_net_batch_groups(const agon_net *net)
{
    return net->batch_groups;
}

void agon_net_zero_grad(agon_net *net)
{
    for (size_t i = 0; i < net->n_params; i++)
        agon_tensor_zero(&net->params[i]->grad);
}

size_t agon_net_param_count(const agon_net *net)
{
    return net->n_params;
}

agon_param *agon_net_param(agon_net *net, size_t i)
{
    if (i >= net->n_params)
        return NULL;
    agon_param *p = net->params[i];
    if (net->plan_finished)
        return p;
    return reach(net, &p->value, NULL) == 0 && reach(net, &p->grad, NULL) == 0 ? p : NULL;
}

int64_t agon_net_param_numel(const agon_net *net)
{
    int64_t n = 0;
    for (size_t i = 0; i < net->n_params; i++)
        n += agon_tensor_numel(&net->params[i]->value);
    return n;
}

double agon_net_grad_norm(const agon_net *net)
{
    double s = 0.0;
    for (size_t i = 0; i < net->n_params; i++)
        s += agon_tensor_sumsq(&net->params[i]->grad);
    return sqrt(s);
}

/* ---- buffers ------------------------------------------------------------------- */

int agon_net_add_buffer(agon_net *net, const char *name, const agon_shape *shape,
                        agon_tensor *out, agon_error *err)
{
    char buf[128];
    if (net->n_layers == 0)
        return agon_error_set(err, AGON_EINTERNAL,
                              "buffer '%s': a buffer belongs to a layer; add the layer first",
                              name ? name : "");
    size_t idx = net->n_layers - 1;
    const char *type = net->layers[idx]->ops->type;
    if (!name || !*name)
        return agon_error_set(err, AGON_EPLUGIN, "layer %zu (%s): buffer has no name", idx,
                              type);
    int w = snprintf(buf, sizeof buf, "%zu.%s", idx, name);
    if (w < 0 || (size_t)w >= sizeof(((agon_buffer *)0)->name))
        return agon_error_set(err, AGON_EPLUGIN,
                              "layer %zu (%s): buffer name '%s' is too long; "
                              "'<layer>.<name>' must fit in %zu characters",
                              idx, type, name, sizeof(((agon_buffer *)0)->name) - 1);
    bool shape_ok = shape && shape->ndim >= 0 && shape->ndim <= AGON_MAX_DIMS;
    for (int d = 0; shape_ok && d < shape->ndim; d++)
        shape_ok = shape->dim[d] >= 1;
    if (!shape_ok) {
        if (shape)
            format_dims(shape, buf, sizeof buf);
        else
            snprintf(buf, sizeof buf, "(none)");
        return agon_error_set(err, AGON_EPLUGIN,
                              "layer %zu (%s): buffer '%s' has invalid shape %s", idx, type,
                              name, buf);
    }
    int rc = grow((void **)&net->buffers, &net->cap_buffers, net->n_buffers + 1,
                  sizeof *net->buffers, err);
    if (rc)
        return rc;
    agon_buffer *b = agon_arena_alloc(net->arena, sizeof *b, err);
    if (!b)
        return AGON_ENOMEM;
    if ((rc = agon_arena_tensor(net->arena, &b->value, shape, err)) != 0)
        return rc;
    snprintf(b->name, sizeof b->name, "%zu.%s", idx, name);
    net->buffers[net->n_buffers++] = b;
    if (out && (rc = reach(net, &b->value, err)) != 0)
        return rc;
    if (out)
        *out = b->value;
    return 0;
}

size_t agon_net_buffer_count(const agon_net *net)
{
    return net->n_buffers;
}

agon_buffer *agon_net_buffer(agon_net *net, size_t i)
{
    if (i >= net->n_buffers)
        return NULL;
    agon_buffer *b = net->buffers[i];
    if (net->plan_finished)
        return b;
    return reach(net, &b->value, NULL) == 0 ? b : NULL;
}

/* ---- random streams -------------------------------------------------------------- */

int agon_net_add_rng(agon_net *net, agon_rng *rng, agon_error *err)
{
    if (!rng)
        return agon_error_set(err, AGON_EINTERNAL, "agon_net_add_rng: no stream given");
    int rc = grow((void **)&net->rngs, &net->cap_rngs, net->n_rngs + 1, sizeof *net->rngs, err);
    if (rc != 0)
        return rc;
    net->rngs[net->n_rngs++] = rng;
    return 0;
}

size_t agon_net_rng_count(const agon_net *net)
{
    return net->n_rngs;
}

agon_rng *agon_net_rng(agon_net *net, size_t i)
{
    return i < net->n_rngs ? net->rngs[i] : NULL;
}
