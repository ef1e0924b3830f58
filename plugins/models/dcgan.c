/* dcgan — the convolutional generator and discriminator of Radford et al.
 * (2016), for images [C, H, W].
 *
 * With depth d, base width b and h = H/2^d, w = W/2^d (the "seed" size),
 * channels double at every halving of the resolution:
 *
 *   G: latent -> linear(b*2^(d-1) * h*w) -> BN1d -> ReLU -> reshape [b*2^(d-1), h, w]
 *        -> d-1 times [convT(c -> c/2, stride 2) -> BN2d -> ReLU]
 *        -> convT(b -> C, stride 2) -> tanh
 *   D: image -> conv(C' -> b, stride 2) -> LReLU
 *        -> d-1 times [conv(c -> 2c, stride 2) -> BN2d -> LReLU]
 *        -> flatten -> linear(1)
 *
 * The D input's C' may exceed the G output's C (label channels of a
 * conditional GAN), and G's latent may carry one-hot labels: only the
 * shapes the host hands over matter.  D ends in a raw logit because the
 * losses apply the sigmoid themselves.  Dropout, when asked for, follows
 * every LReLU of D.
 *
 * Every stride-2 layer doubles or halves the size exactly: an even kernel k
 * pads by (k-2)/2, an odd one by (k-1)/2 (plus output padding 1 in G).
 *
 * Parameters (see dcgan_params): base_width, depth, kernel, batchnorm,
 * bn_momentum, bn_eps, slope, init, init_gain, dropout, bias.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agon/plugin.h"

#define DCGAN_MAX_CHANNELS 4096
#define DCGAN_MAX_DEPTH 8
/* The automatic depth stops at 4 (DCGAN's 64x64 setting: 4 -> 64) and
 * keeps a seed of at least 3x3, so 28x28 gets 7x7 and 32x32 gets 4x4. */
#define DCGAN_AUTO_MAX_DEPTH 4
#define DCGAN_AUTO_MIN_SEED 3

typedef struct dcgan_cfg {
    int64_t base_width, depth, kernel;
    bool batchnorm, bias;
    double bn_momentum, bn_eps, slope, gain, dropout;
    agon_init init;
} dcgan_cfg;

/* The image side of the network: [C, H, W] and the geometry derived from it. */
typedef struct dcgan_geom {
    int64_t channels, height, width;
    int depth;
    int64_t top;                /* channels at the seed resolution */
    int64_t seed_h, seed_w;
} dcgan_geom;

/* Positions an error at `key` when the user wrote it, else at the whole
 * section: a schema default has no line, and the host would then prefix
 * the message with the section's position anyway. */
static const agon_node *key_node(const agon_node *cfg, const char *key)
{
    const agon_node *node = agon_node_get(cfg, key);
    return node && agon_node_line(node) > 0 ? node : cfg;
}

static int read_cfg(const agon_node *cfg, dcgan_cfg *c, agon_error *err)
{
    const char *init_name;
    int rc;
    if ((rc = agon_cfg_opt_int(cfg, "base_width", 64, &c->base_width, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "depth", 0, &c->depth, err)) != 0 ||
        (rc = agon_cfg_opt_int(cfg, "kernel", 4, &c->kernel, err)) != 0 ||
        (rc = agon_cfg_opt_bool(cfg, "batchnorm", true, &c->batchnorm, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "bn_momentum", 0.1, &c->bn_momentum, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "bn_eps", 1e-5, &c->bn_eps, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "slope", 0.2, &c->slope, err)) != 0 ||
        (rc = agon_cfg_opt_string(cfg, "init", "normal", &init_name, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "init_gain", 0.0, &c->gain, err)) != 0 ||
        (rc = agon_cfg_opt_float(cfg, "dropout", 0.0, &c->dropout, err)) != 0 ||
        (rc = agon_cfg_opt_bool(cfg, "bias", false, &c->bias, err)) != 0)
        return rc;

    /* The host has applied the schema's bounds already; these checks keep
     * the plugin safe when it is driven without the host, and add the
     * strict bounds a schema cannot express. */
    if (agon_init_parse(init_name, &c->init) != 0)
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "init"),
                               "unknown init '%s'; choose one of default, xavier_uniform, "
                               "kaiming_uniform, normal", init_name);
    if (c->base_width < 1 || c->base_width > DCGAN_MAX_CHANNELS)
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "base_width"),
                               "base_width must be 1 to %d, got %lld", DCGAN_MAX_CHANNELS,
                               (long long)c->base_width);
    if (c->depth < 0 || c->depth > DCGAN_MAX_DEPTH)
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "depth"),
                               "depth must be 1 to %d, or 0 to pick it from the image size; "
                               "got %lld", DCGAN_MAX_DEPTH, (long long)c->depth);
    if (c->kernel < 2 || c->kernel > 9)
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "kernel"),
                               "kernel must be 2 to 9, got %lld", (long long)c->kernel);
    if (!(c->bn_momentum >= 0.0 && c->bn_momentum <= 1.0))
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "bn_momentum"),
                               "bn_momentum must be in [0, 1], got %g", c->bn_momentum);
    if (!(c->bn_eps > 0.0 && c->bn_eps <= 1.0))
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "bn_eps"),
                               "bn_eps must be > 0 and <= 1, got %g", c->bn_eps);
    if (!isfinite(c->slope))
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "slope"),
                               "slope must be a finite number");
    if (!(c->gain >= 0.0 && isfinite(c->gain)))
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "init_gain"),
                               "init_gain must be >= 0 (0 picks the scheme's default), got %g",
                               c->gain);
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "dropout"),
                               "dropout is a drop probability in [0, 1), got %g", c->dropout);
    return 0;
}

/* Checks the shapes the host gives for `role` and takes the image size
 * from them: G's output, D's input. */
static int image_shape(const agon_node *cfg, agon_role role, const agon_shape *in,
                       const agon_shape *out, dcgan_geom *g, agon_error *err)
{
    char buf[96];
    const agon_shape *img;
    if (role == AGON_ROLE_GENERATOR) {
        if (out->ndim != 3)
            return agon_node_error(err, AGON_ECONFIG, cfg,
                                   "dcgan makes images: the generator's output must be "
                                   "[C, H, W], got %s; use mlp for flat data",
                                   agon_shape_format(out, buf, sizeof buf));
        if (in->ndim != 1)
            return agon_node_error(err, AGON_ECONFIG, cfg,
                                   "the dcgan generator takes a flat latent vector, got input "
                                   "shape %s", agon_shape_format(in, buf, sizeof buf));
        img = out;
    } else {
        if (out->ndim != 1 || out->dim[0] != 1)
            return agon_node_error(err, AGON_ECONFIG, cfg,
                                   "a dcgan discriminator outputs one logit per sample "
                                   "(output shape [1]), got %s",
                                   agon_shape_format(out, buf, sizeof buf));
        if (in->ndim != 3)
            return agon_node_error(err, AGON_ECONFIG, cfg,
                                   "the dcgan discriminator takes images [C, H, W], got input "
                                   "shape %s; use mlp for flat data",
                                   agon_shape_format(in, buf, sizeof buf));
        img = in;
    }
    g->channels = img->dim[0];
    g->height = img->dim[1];
    g->width = img->dim[2];
    return 0;
}

static bool depth_fits(const dcgan_geom *g, int d)
{
    int64_t f = (int64_t)1 << d;
    return g->height % f == 0 && g->width % f == 0;
}

/* "1, 2, 3" for the depths up to DCGAN_MAX_DEPTH that divide the image;
 * returns false when there is none. */
static bool fitting_depths(const dcgan_geom *g, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 1; d <= DCGAN_MAX_DEPTH && len < cap; d++) {
        if (depth_fits(g, d)) {
            int w = snprintf(buf + len, cap - len, "%s%d", len ? ", " : "", d);
            if (w < 0)
                break;
            len += (size_t)w;
        }
    }
    return len > 0;
}

static int pick_depth(const agon_node *cfg, const dcgan_cfg *c, dcgan_geom *g,
                      agon_error *err)
{
    char fits[64];
    long long h = (long long)g->height, w = (long long)g->width;
    if (g->height < 1 || g->width < 1)
        return agon_node_error(err, AGON_ECONFIG, cfg, "the image size %lldx%lld is empty",
                               h, w);
    bool any = fitting_depths(g, fits, sizeof fits);
    if (c->depth > 0) {
        int d = (int)c->depth;
        if (!depth_fits(g, d)) {
            if (!any)
                return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "depth"),
                                       "depth %d needs the image height and width divisible "
                                       "by 2^%d = %d, but the image is %lldx%lld, with an odd "
                                       "side; resize it to even sides",
                                       d, d, 1 << d, h, w);
            return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "depth"),
                                   "depth %d needs the image height and width divisible by "
                                   "2^%d = %d, but the image is %lldx%lld; depths that fit: %s",
                                   d, d, 1 << d, h, w, fits);
        }
        g->depth = d;
    } else {
        g->depth = 0;
        for (int d = DCGAN_AUTO_MAX_DEPTH; d >= 1 && g->depth == 0; d--) {
            if (depth_fits(g, d) && (g->height >> d) >= DCGAN_AUTO_MIN_SEED &&
                (g->width >> d) >= DCGAN_AUTO_MIN_SEED)
                g->depth = d;
        }
        if (g->depth == 0) {
            if (!any)
                return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "depth"),
                                       "dcgan halves the image size depth times, but the "
                                       "%lldx%lld image has an odd side; resize it so that "
                                       "height and width are divisible by 2^depth", h, w);
            return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "depth"),
                                   "no depth up to %d leaves a seed of at least %dx%d from the "
                                   "%lldx%lld image; set depth to one of: %s",
                                   DCGAN_AUTO_MAX_DEPTH, DCGAN_AUTO_MIN_SEED,
                                   DCGAN_AUTO_MIN_SEED, h, w, fits);
        }
    }
    g->seed_h = g->height >> g->depth;
    g->seed_w = g->width >> g->depth;
    g->top = c->base_width << (g->depth - 1);
    if (g->top > DCGAN_MAX_CHANNELS)
        return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "base_width"),
                               "base_width %lld doubles to %lld channels at depth %d; the "
                               "widest layer may have at most %d; lower base_width or depth",
                               (long long)c->base_width, (long long)g->top, g->depth,
                               DCGAN_MAX_CHANNELS);
    return 0;
}

/* A stride-2 layer that halves (conv) or doubles (transposed) the size. */
static agon_conv_spec stride2(const dcgan_cfg *c, int64_t out_channels, bool bias,
                              bool transposed)
{
    agon_conv_spec s;
    memset(&s, 0, sizeof s);
    int64_t k = c->kernel;
    bool odd = k % 2 != 0;
    s.out_channels = out_channels;
    s.kernel_h = s.kernel_w = k;
    s.stride_h = s.stride_w = 2;
    s.pad_h = s.pad_w = odd ? (k - 1) / 2 : (k - 2) / 2;
    s.output_pad_h = s.output_pad_w = transposed && odd ? 1 : 0;
    s.bias = bias;
    return s;
}

/* Batch norm after the layer just added.  DCGAN's reference code draws the
 * scale (gamma) from N(1, 0.02) along with the N(0, 0.02) weights; the
 * normal scheme does the same with its gain. */
static int add_bn(agon_net *net, const dcgan_cfg *c, agon_rng *rng, agon_error *err)
{
    int rc = agon_net_add_batchnorm(net, (float)c->bn_momentum, (float)c->bn_eps, true, err);
    if (rc != 0 || c->init != AGON_INIT_NORMAL)
        return rc;
    size_t n = agon_net_param_count(net);
    if (n < 2)
        return agon_error_set(err, AGON_EINTERNAL, "dcgan: batch norm added no parameters");
    agon_param *gamma = agon_net_param(net, n - 2);
    float std = c->gain > 0.0 ? (float)c->gain : 0.02f;
    agon_rng_fill_normal(rng, gamma->value.data, (size_t)agon_tensor_numel(&gamma->value),
                         1.0f, std);
    return 0;
}

static int build_generator(agon_net *net, const dcgan_cfg *c, const dcgan_geom *g,
                           agon_rng *rng, agon_error *err)
{
    float gain = (float)c->gain;
    bool inner_bias = c->bias || !c->batchnorm;
    int rc;
    if ((rc = agon_net_add_linear(net, g->top * g->seed_h * g->seed_w, inner_bias, c->init,
                                  gain, rng, err)) != 0)
        return rc;
    if (c->batchnorm && (rc = add_bn(net, c, rng, err)) != 0)
        return rc;
    agon_shape seed = agon_shape_make(3, (int64_t[]){g->top, g->seed_h, g->seed_w});
    if ((rc = agon_net_add_activation(net, AGON_ACT_RELU, 0.0f, err)) != 0 ||
        (rc = agon_net_add_reshape(net, &seed, err)) != 0)
        return rc;

    int64_t ch = g->top;
    for (int i = 1; i < g->depth; i++) {
        ch /= 2;
        agon_conv_spec s = stride2(c, ch, inner_bias, true);
        if ((rc = agon_net_add_conv_transpose2d(net, &s, c->init, gain, rng, err)) != 0)
            return rc;
        if (c->batchnorm && (rc = add_bn(net, c, rng, err)) != 0)
            return rc;
        if ((rc = agon_net_add_activation(net, AGON_ACT_RELU, 0.0f, err)) != 0)
            return rc;
    }
    agon_conv_spec s = stride2(c, g->channels, true, true);
    if ((rc = agon_net_add_conv_transpose2d(net, &s, c->init, gain, rng, err)) != 0)
        return rc;
    return agon_net_add_activation(net, AGON_ACT_TANH, 0.0f, err);
}

static int add_leaky(agon_net *net, const dcgan_cfg *c, agon_rng *rng, agon_error *err)
{
    int rc = agon_net_add_activation(net, AGON_ACT_LEAKY_RELU, (float)c->slope, err);
    if (rc == 0 && c->dropout > 0.0)
        rc = agon_net_add_dropout(net, (float)c->dropout, rng, err);
    return rc;
}

static int build_discriminator(agon_net *net, const dcgan_cfg *c, const dcgan_geom *g,
                               agon_rng *rng, agon_error *err)
{
    float gain = (float)c->gain;
    bool inner_bias = c->bias || !c->batchnorm;
    int rc;
    /* DCGAN leaves the first D layer without batch norm: normalising the
     * raw images made training unstable in the paper. */
    agon_conv_spec s = stride2(c, c->base_width, true, false);
    if ((rc = agon_net_add_conv2d(net, &s, c->init, gain, rng, err)) != 0 ||
        (rc = add_leaky(net, c, rng, err)) != 0)
        return rc;
    int64_t ch = c->base_width;
    for (int i = 1; i < g->depth; i++) {
        ch *= 2;
        s = stride2(c, ch, inner_bias, false);
        if ((rc = agon_net_add_conv2d(net, &s, c->init, gain, rng, err)) != 0)
            return rc;
        if (c->batchnorm && (rc = add_bn(net, c, rng, err)) != 0)
            return rc;
        if ((rc = add_leaky(net, c, rng, err)) != 0)
            return rc;
    }
    if ((rc = agon_net_add_flatten(net, err)) != 0)
        return rc;
    return agon_net_add_linear(net, 1, true, c->init, gain, rng, err);
}

static int dcgan_build(const agon_node *cfg, agon_role role, const agon_shape *out_shape,
                       agon_net *net, agon_rng *rng, agon_error *err)
{
    dcgan_cfg c;
    dcgan_geom g;
    memset(&g, 0, sizeof g);
    agon_shape in_shape = agon_net_in_shape(net);
    int rc;
    if ((rc = read_cfg(cfg, &c, err)) != 0 ||
        (rc = image_shape(cfg, role, &in_shape, out_shape, &g, err)) != 0 ||
        (rc = pick_depth(cfg, &c, &g, err)) != 0)
        return rc;
    if (role == AGON_ROLE_GENERATOR) {
        if (c.dropout > 0.0)
            return agon_node_error(err, AGON_ECONFIG, key_node(cfg, "dropout"),
                                   "dropout applies to the discriminator only; remove it from "
                                   "the generator's section");
        return build_generator(net, &c, &g, rng, err);
    }
    return build_discriminator(net, &c, &g, rng, err);
}

static const agon_model_vtable dcgan_vtable = {
    sizeof(agon_model_vtable),
    dcgan_build,
};

static const agon_param_spec dcgan_params[] = {
    {"base_width", AGON_PARAM_INT, "64", 1, DCGAN_MAX_CHANNELS, NULL,
     "channels at the image resolution; they double at every halving"},
    {"depth", AGON_PARAM_INT, "0", 0, DCGAN_MAX_DEPTH, NULL,
     "number of stride-2 convolutions (0 picks it from the image size)"},
    {"kernel", AGON_PARAM_INT, "4", 2, 9, NULL, "kernel size of every convolution"},
    {"batchnorm", AGON_PARAM_BOOL, "true", AGON_NO_RANGE, NULL,
     "batch norm after every layer except D's first and the output layers"},
    {"bn_momentum", AGON_PARAM_FLOAT, "0.1", 0, 1, NULL,
     "weight of the batch statistic in the running statistics"},
    {"bn_eps", AGON_PARAM_FLOAT, "1e-5", 0, 1, NULL,
     "added to the variance in batch norm (> 0)"},
    {"slope", AGON_PARAM_FLOAT, "0.2", AGON_NO_RANGE, NULL,
     "negative slope of the discriminator's leaky_relu"},
    {"init", AGON_PARAM_CHOICE, "normal", AGON_NO_RANGE,
     "default|xavier_uniform|kaiming_uniform|normal", "weight initialisation scheme"},
    {"init_gain", AGON_PARAM_FLOAT, "0", AGON_NO_RANGE, NULL,
     "gain of the init scheme (>= 0; 0 picks the scheme's default, 0.02 for normal)"},
    {"dropout", AGON_PARAM_FLOAT, "0", 0, 1, NULL,
     "drop probability after each leaky_relu of the discriminator (< 1; 0 for none)"},
    {"bias", AGON_PARAM_BOOL, "false", AGON_NO_RANGE, NULL,
     "give a bias to the layers followed by batch norm"},
    AGON_PARAM_END,
};

AGON_PLUGIN("dcgan", "1.0.0", "DCGAN convolutional generator / discriminator",
            AGON_MODEL("dcgan", "Strided (transposed) convolutions with batch norm (DCGAN)",
                       dcgan_params, &dcgan_vtable));
