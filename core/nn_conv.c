/* 2-D convolution and transposed convolution, NCHW, as im2col + gemm.
 *
 * Both layers are one linear map read in two directions.  A conv2d takes
 * an "image" [C, H, W] to a "grid" [K, OH, OW]; conv_transpose2d is its
 * adjoint and takes a grid (its input) to an image (its output).  Its
 * weight [in, out, kh, kw] is then exactly the conv2d weight [K, C, kh, kw]
 * of that map, so one state describes both, always in conv2d terms:
 *
 *   image -> grid  (conv2d forward, conv_transpose2d din):
 *       cols = im2col(image)            [C*kh*kw, samples*OH*OW]
 *       grid = W cols                   W is [K, C*kh*kw]
 *   grid -> image  (conv2d din, conv_transpose2d forward):
 *       cols = W^T grid, image = col2im(cols)
 *   weight gradient (both):
 *       dW += grid cols^T               cols = im2col(image)
 *
 * The batch is processed in chunks of `chunk` samples, one gemm per chunk
 * and product.  The grid side is [samples, K, OH*OW] in the tensors but
 * [K, samples*OH*OW] in a gemm over several samples, so such chunks go
 * through a copy ("grid_t"); that costs about |grid| per sample, while a
 * gemm per sample (chunk 1) reads and writes the tensors in place but
 * repacks W (|W| = K*C*kh*kw) for each sample and has a short side.  So
 * layers with C*kh*kw <= OH*OW (few channels on a large grid, such as a
 * 1-channel image) go sample by sample; the others (deep layers on small
 * grids) take chunks just wide enough for gemm to run at full speed, which
 * also keeps a chunk's columns in cache between the gemm and im2col or
 * col2im on the other side.
 *
 * The weight gradient needs im2col of conv2d's input, and
 * conv_transpose2d's input as grid_t.  Backward recomputes both chunk by
 * chunk rather than keeping them from forward: they are then still in
 * cache for the gemm, only chunk-sized buffers exist, forwards that no
 * backward follows (the discriminator's in the generator step) write
 * nothing more, and backward can run any number of times per forward. */
#include "agon/nn.h"
#include "nn_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_state {
    bool bias;
    int64_t C, H, W;            /* image */
    int64_t K, OH, OW;          /* grid */
    int64_t kh, kw, sh, sw, ph, pw;
    int64_t ckk, hw, ohw;
    int64_t chunk;              /* samples per gemm */
    /* The padded image [H + 2*ph, W + 2*pw] split by stride phase: phase
     * (a, b) is the [Hq, Wq] plane of padded pixels (y*sh + a, u*sw + b).
     * Kernel tap (i, j) then reads grid position (oh, ow) from phase
     * (i % sh, j % sw) at (oh + i/sh, ow + j/sw): contiguous rows. */
    int64_t Hq, Wq;
    /* Image columns b0[b], b0[b] + sw, ... (cnt[b] of them) are padded
     * columns u*sw + b, for u = u0[b], u0[b] + 1, ... */
    const int64_t *b0, *u0, *cnt;   /* [sw] each */
    /* Where tap (i, j) starts reading: ((i % sh)*sw + j % sw)*Hq*Wq +
     * (i/sh)*Wq + j/sw, kept so the loops divide nothing. */
    const int64_t *tap_at;          /* [kh*kw] */
    float *phase_in;            /* im2col's phases; the padding stays 0 */
    float *phase_acc;           /* col2im's accumulator */
    /* One chunk of m samples each, as [rows, m*ohw] matrices. */
    float *cols;                /* [ckk, chunk*ohw] */
    float *grid_t;              /* [K, chunk*ohw] (NULL with chunk 1) */
} conv_state;

/* ---- im2col / col2im ---------------------------------------------------------
 * One image plane at a time, through its stride phases (see conv_state):
 * every tap's rows of cols are then plain copies (or sums) of contiguous
 * runs, with no bounds tests, while the small phase planes stay in L1. */

/* Grid rows are often short (7 or 14 floats), so runs are copied four
 * floats at a time, the last four overlapping the ones before.  The
 * clamped index also keeps the compiler from turning the loop into a
 * library call per run, which would cost more than the copy. */
static inline void copy_run(float *restrict d, const float *restrict s, int64_t n)
{
    if (n < 4) {
        if (n > 2)
            d[2] = s[2];
        if (n > 1)
            d[1] = s[1];
        if (n > 0)
            d[0] = s[0];
        return;
    }
    for (int64_t t = 0; t < n; t += 4) {
        const int64_t u = t + 4 <= n ? t : n - 4;
        float v[4];
        memcpy(v, s + u, sizeof v);
        memcpy(d + u, v, sizeof v);
    }
}

static void add_run(float *restrict d, const float *restrict s, int64_t n)
{
    for (int64_t t = 0; t < n; t++)
        d[t] += s[t];
}

/* Writes the kh*kw rows of one image plane `x` into cols: `dst` is the
 * plane's row (c, 0, 0) at the sample's first column, rows `ld` apart. */
static void im2col_plane(const conv_state *s, const float *x, float *dst, int64_t ld)
{
    const int64_t sh = s->sh, sw = s->sw, Wq = s->Wq, OW = s->OW, phase = s->Hq * Wq;
    /* Image row r is padded row r + ph: phase row (r + ph) / sh of the
     * phases (r + ph) % sh, tracked without dividing. */
    int64_t a = s->ph % sh, y = s->ph / sh;
    for (int64_t r = 0; r < s->H; r++) {
        float *q = s->phase_in + a * sw * phase + y * Wq;
        const float *xr = x + r * s->W;
        for (int64_t b = 0; b < sw; b++) {
            const int64_t n = s->cnt[b];
            if (n == 0)
                continue;
            float *restrict d = q + b * phase + s->u0[b];
            const float *restrict src = xr + s->b0[b];
            if (sw == 1) {
                copy_run(d, src, n);
            } else if (sw == 2) {
                for (int64_t t = 0; t < n; t++)
                    d[t] = src[2 * t];
            } else {
                for (int64_t t = 0; t < n; t++)
                    d[t] = src[t * sw];
            }
        }
        if (++a == sh) {
            a = 0;
            y++;
        }
    }
    const int64_t kk = s->kh * s->kw;
    for (int64_t tap = 0; tap < kk; tap++) {
        const float *src = s->phase_in + s->tap_at[tap];
        float *d = dst + tap * ld;
        for (int64_t oh = 0; oh < s->OH; oh++)
            copy_run(d + oh * OW, src + oh * Wq, OW);
    }
}

/* y = b + the sum of the plane's kh*kw rows of cols (at `src`, rows `ld`
 * apart) placed back where im2col took them from. */
static void col2im_plane(const conv_state *s, const float *src, int64_t ld, float *y, float b)
{
    const int64_t sh = s->sh, sw = s->sw, Wq = s->Wq, OW = s->OW, phase = s->Hq * Wq;
    memset(s->phase_acc, 0, (size_t)(sh * sw * phase) * sizeof(float));
    const int64_t kk = s->kh * s->kw;
    for (int64_t tap = 0; tap < kk; tap++) {
        float *d = s->phase_acc + s->tap_at[tap];
        const float *r = src + tap * ld;
        for (int64_t oh = 0; oh < s->OH; oh++)
            add_run(d + oh * Wq, r + oh * OW, OW);
    }
    int64_t pa = s->ph % sh, py = s->ph / sh;
    for (int64_t r = 0; r < s->H; r++) {
        const float *q = s->phase_acc + pa * sw * phase + py * Wq;
        float *yr = y + r * s->W;
        if (++pa == sh) {
            pa = 0;
            py++;
        }
        for (int64_t c = 0; c < sw; c++) {
            const int64_t n = s->cnt[c];
            if (n == 0)
                continue;
            const float *restrict a = q + c * phase + s->u0[c];
            float *restrict d = yr + s->b0[c];
            if (sw == 1) {
                for (int64_t t = 0; t < n; t++)
                    d[t] = a[t] + b;
            } else if (sw == 2) {
                for (int64_t t = 0; t < n; t++)
                    d[2 * t] = a[t] + b;
            } else {
                for (int64_t t = 0; t < n; t++)
                    d[t * sw] = a[t] + b;
            }
        }
    }
}

/* im2col of samples [n0, n0+m) of `image` into the [ckk, m*ohw] matrix
 * `cols`, channel by channel so that each row is written start to end. */
static void im2col_chunk(const conv_state *s, const float *image, int64_t n0, int64_t m,
                         float *cols)
{
    const int64_t ld = m * s->ohw, kk = s->kh * s->kw;
    for (int64_t c = 0; c < s->C; c++) {
        for (int64_t n = 0; n < m; n++)
            im2col_plane(s, image + ((n0 + n) * s->C + c) * s->hw, cols + c * kk * ld + n * s->ohw,
                         ld);
    }
}

/* Samples [n0, n0+m) of `image` = col2im of the [ckk, m*ohw] matrix
 * `cols`, plus the bias per channel when given. */
static void col2im_chunk(const conv_state *s, const float *cols, int64_t n0, int64_t m,
                         float *image, const float *bias)
{
    const int64_t ld = m * s->ohw, kk = s->kh * s->kw;
    for (int64_t c = 0; c < s->C; c++) {
        for (int64_t n = 0; n < m; n++)
            col2im_plane(s, cols + c * kk * ld + n * s->ohw, ld,
                         image + ((n0 + n) * s->C + c) * s->hw, bias ? bias[c] : 0.0f);
    }
}

/* ---- the grid side ------------------------------------------------------------------ */

/* Samples [n0, n0+m) of grid [batch, K, ohw] -> the [K, m*ohw] matrix t. */
static void grid_to_t(const conv_state *s, const float *grid, int64_t n0, int64_t m, float *t)
{
    const int64_t ld = m * s->ohw;
    for (int64_t k = 0; k < s->K; k++) {
        for (int64_t n = 0; n < m; n++)
            copy_run(t + k * ld + n * s->ohw, grid + ((n0 + n) * s->K + k) * s->ohw, s->ohw);
    }
}

/* The [K, m*ohw] matrix t -> samples [n0, n0+m) of grid, plus the bias. */
static void grid_from_t(const conv_state *s, const float *t, int64_t n0, int64_t m,
                        float *grid, const float *bias)
{
    const int64_t ld = m * s->ohw, ohw = s->ohw;
    for (int64_t n = 0; n < m; n++) {
        for (int64_t k = 0; k < s->K; k++) {
            float *restrict d = grid + ((n0 + n) * s->K + k) * ohw;
            const float *restrict src = t + k * ld + n * ohw;
            const float b = bias ? bias[k] : 0.0f;
            for (int64_t q = 0; q < ohw; q++)
                d[q] = src[q] + b;
        }
    }
}

/* Sum of n floats, in a fixed order of eight interleaved partial sums (so
 * that it vectorises and gives the same bits every time). */
static float sum_floats(const float *restrict x, int64_t n)
{
    float acc[8] = {0};
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
        for (int q = 0; q < 8; q++)
            acc[q] += x[t + q];
    }
    for (int q = 0; t < n; t++, q++)
        acc[q] += x[t];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* db[c] += sum of plane c over the batch, for [batch, channels, plane]. */
static void add_bias_grad(float *db, const float *x, int64_t batch, int64_t channels,
                          int64_t plane)
{
    for (int64_t n = 0; n < batch; n++) {
        for (int64_t c = 0; c < channels; c++)
            db[c] += sum_floats(x + (n * channels + c) * plane, plane);
    }
}

/* Samples per gemm for this batch: at most `chunk`, in chunks of equal
 * size (but the last), so that no chunk is much shorter than the others. */
static int64_t chunk_step(const conv_state *s, int64_t batch)
{
    int64_t n = (batch + s->chunk - 1) / s->chunk;
    return (batch + n - 1) / n;
}

/* ---- conv2d ------------------------------------------------------------------- */

static void conv_forward(void *state, agon_param *params, const agon_tensor *in,
                         agon_tensor *out, bool training)
{
    conv_state *s = state;
    const int64_t batch = in->shape.dim[0], K = s->K, ckk = s->ckk, ohw = s->ohw;
    const float *w = params[0].value.data;
    const float *bias = s->bias ? params[1].value.data : NULL;
    const int64_t step = chunk_step(s, batch);
    for (int64_t n0 = 0; n0 < batch; n0 += step) {
        const int64_t m = batch - n0 < step ? batch - n0 : step, ld = m * ohw;
        const float *cols = s->cols;
        im2col_chunk(s, in->data, n0, m, s->cols);
        if (s->chunk == 1) {
            float *y = out->data + n0 * K * ohw;
            for (int64_t k = 0; bias && k < K; k++) {
                for (int64_t q = 0; q < ohw; q++)
                    y[k * ohw + q] = bias[k];
            }
            agon_gemm(false, false, K, ohw, ckk, 1.0f, w, ckk, cols, ohw, bias ? 1.0f : 0.0f,
                      y, ohw);
        } else {
            agon_gemm(false, false, K, ld, ckk, 1.0f, w, ckk, cols, ld, 0.0f, s->grid_t, ld);
            grid_from_t(s, s->grid_t, n0, m, out->data, bias);
        }
    }
}

static void conv_backward(void *state, agon_param *params, const agon_tensor *in,
                          const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                          bool param_grads)
{
    conv_state *s = state;
    const int64_t batch = in->shape.dim[0], K = s->K, ckk = s->ckk, ohw = s->ohw;
    if (!param_grads && !din)
        return;
    if (param_grads && s->bias)
        add_bias_grad(params[1].grad.data, dout->data, batch, K, ohw);
    const int64_t step = chunk_step(s, batch);
    for (int64_t n0 = 0; n0 < batch; n0 += step) {
        const int64_t m = batch - n0 < step ? batch - n0 : step, ld = m * ohw;
        const float *dy = dout->data + n0 * K * ohw;
        if (s->chunk > 1) {
            grid_to_t(s, dout->data, n0, m, s->grid_t);
            dy = s->grid_t;
        }
        if (param_grads) {
            im2col_chunk(s, in->data, n0, m, s->cols);
            agon_gemm(false, true, K, ckk, ld, 1.0f, dy, ld, s->cols, ld, 1.0f,
                      params[0].grad.data, ckk);
        }
        if (din) {
            /* The weight gradient is done with this chunk's columns. */
            agon_gemm(true, false, ckk, ld, K, 1.0f, params[0].value.data, ckk, dy, ld, 0.0f,
                      s->cols, ld);
            col2im_chunk(s, s->cols, n0, m, din->data, NULL);
        }
    }
}

/* ---- conv_transpose2d --------------------------------------------------------- */

static void convt_forward(void *state, agon_param *params, const agon_tensor *in,
                          agon_tensor *out, bool training)
{
    conv_state *s = state;
    const int64_t batch = in->shape.dim[0], K = s->K, ckk = s->ckk, ohw = s->ohw;
    const float *bias = s->bias ? params[1].value.data : NULL;
    const int64_t step = chunk_step(s, batch);
    for (int64_t n0 = 0; n0 < batch; n0 += step) {
        const int64_t m = batch - n0 < step ? batch - n0 : step, ld = m * ohw;
        const float *x = in->data + n0 * K * ohw;
        if (s->chunk > 1) {
            grid_to_t(s, in->data, n0, m, s->grid_t);
            x = s->grid_t;
        }
        agon_gemm(true, false, ckk, ld, K, 1.0f, params[0].value.data, ckk, x, ld, 0.0f, s->cols,
                  ld);
        col2im_chunk(s, s->cols, n0, m, out->data, bias);
    }
}

static void convt_backward(void *state, agon_param *params, const agon_tensor *in,
                           const agon_tensor *out, const agon_tensor *dout, agon_tensor *din,
                           bool param_grads)
{
    conv_state *s = state;
    const int64_t batch = in->shape.dim[0], K = s->K, ckk = s->ckk, ohw = s->ohw;
    if (!param_grads && !din)
        return;
    if (param_grads && s->bias)
        add_bias_grad(params[1].grad.data, dout->data, batch, s->C, s->hw);
    const int64_t step = chunk_step(s, batch);
    for (int64_t n0 = 0; n0 < batch; n0 += step) {
        const int64_t m = batch - n0 < step ? batch - n0 : step, ld = m * ohw;
        im2col_chunk(s, dout->data, n0, m, s->cols);
        if (param_grads) {
            const float *x = in->data + n0 * K * ohw;
            if (s->chunk > 1) {
                grid_to_t(s, in->data, n0, m, s->grid_t);
                x = s->grid_t;
            }
            agon_gemm(false, true, K, ckk, ld, 1.0f, x, ld, s->cols, ld, 1.0f,
                      params[0].grad.data, ckk);
        }
        if (din) {
            /* The weight gradient is done with this chunk's grid_t. */
            float *dx = s->chunk > 1 ? s->grid_t : din->data + n0 * K * ohw;
            agon_gemm(false, false, K, ld, ckk, 1.0f, params[0].value.data, ckk, s->cols, ld,
                      0.0f, dx, ld);
            if (s->chunk > 1)
                grid_from_t(s, s->grid_t, n0, m, din->data, NULL);
        }
    }
}

static const agon_layer_ops conv_ops = {
    sizeof(agon_layer_ops), "conv2d", conv_forward, conv_backward, free,
};

static const agon_layer_ops convt_ops = {
    sizeof(agon_layer_ops), "conv_transpose2d", convt_forward, convt_backward, free,
};

/* ---- building ------------------------------------------------------------------ */

/* Samples per gemm (see the top of the file).  A chunk of CHUNK_COLUMNS
 * grid positions gives gemm a long enough side to run at full speed (on
 * the DCGAN layers, 1024 columns ran within a few percent of one gemm over
 * a batch of 64, and 49 columns, one sample, 20-40% slower), while its
 * columns ([C*kh*kw, CHUNK_COLUMNS], 4 MiB for C*kh*kw = 1024) stay in
 * cache. */
#define CHUNK_COLUMNS 1024

static int64_t chunk_samples(int64_t ckk, int64_t ohw, int64_t max_batch)
{
    if (ckk <= ohw)
        return 1;
    int64_t n = (CHUNK_COLUMNS + ohw - 1) / ohw;
    return n < max_batch ? n : max_batch;
}

static bool net_floats(agon_net *net, float **out, int64_t n, agon_error *err)
{
    return agon__net_floats(net, out, n, err) == 0;
}

static int image_too_large(size_t idx, const char *type, int64_t h, int64_t w, int64_t sh,
                           int64_t sw, agon_error *err)
{
    return agon_error_set(err, AGON_ECONFIG,
                          "layer %zu (%s): a %lldx%lld image with stride %lldx%lld has more "
                          "elements than 64-bit sizes can count; use a smaller input or stride",
                          idx, type, (long long)h, (long long)w, (long long)sh, (long long)sw);
}

static int check_spec(const agon_conv_spec *sp, const char *type, size_t idx,
                      bool transposed, agon_init init, float gain, agon_rng *rng,
                      agon_error *err)
{
    if (!sp)
        return agon_error_set(err, AGON_EINTERNAL, "layer %zu (%s): no convolution spec given",
                              idx, type);
    if (sp->out_channels < 1)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): out_channels must be at least 1, got %lld", idx,
                              type, (long long)sp->out_channels);
    if (sp->kernel_h < 1 || sp->kernel_w < 1)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): kernel must be at least 1x1, got %lldx%lld", idx,
                              type, (long long)sp->kernel_h, (long long)sp->kernel_w);
    /* Bounded so that no size computed from them overflows. */
    const int64_t sizes[] = {sp->out_channels, sp->kernel_h,     sp->kernel_w,
                             sp->stride_h,     sp->stride_w,     sp->pad_h,
                             sp->pad_w,        sp->output_pad_h, sp->output_pad_w};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i] > INT_MAX)
            return agon_error_set(err, AGON_ECONFIG,
                                  "layer %zu (%s): %lld is too large for a convolution size; "
                                  "use at most %d",
                                  idx, type, (long long)sizes[i], INT_MAX);
    }
    if (sp->stride_h < 1 || sp->stride_w < 1)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): stride must be at least 1x1, got %lldx%lld", idx,
                              type, (long long)sp->stride_h, (long long)sp->stride_w);
    if (sp->pad_h < 0 || sp->pad_w < 0 || sp->pad_h >= sp->kernel_h ||
        sp->pad_w >= sp->kernel_w)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): padding %lldx%lld must be at least 0 and less "
                              "than the kernel %lldx%lld",
                              idx, type, (long long)sp->pad_h, (long long)sp->pad_w,
                              (long long)sp->kernel_h, (long long)sp->kernel_w);
    if (!transposed && (sp->output_pad_h != 0 || sp->output_pad_w != 0))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): output_pad %lldx%lld applies to "
                              "conv_transpose2d only; set it to 0",
                              idx, type, (long long)sp->output_pad_h,
                              (long long)sp->output_pad_w);
    if (transposed && (sp->output_pad_h < 0 || sp->output_pad_w < 0 ||
                       sp->output_pad_h >= sp->stride_h || sp->output_pad_w >= sp->stride_w))
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): output_pad %lldx%lld must be at least 0 and "
                              "less than the stride %lldx%lld",
                              idx, type, (long long)sp->output_pad_h,
                              (long long)sp->output_pad_w, (long long)sp->stride_h,
                              (long long)sp->stride_w);
    if ((int)init < 0 || init >= AGON_INIT_COUNT)
        return agon_error_set(err, AGON_ECONFIG, "layer %zu (%s): unknown init scheme %d", idx,
                              type, (int)init);
    if (!isfinite(gain))
        return agon_error_set(err, AGON_ECONFIG, "layer %zu (%s): gain must be a finite number",
                              idx, type);
    if (!rng)
        return agon_error_set(err, AGON_EINTERNAL,
                              "layer %zu (%s): no random stream given for initialisation", idx,
                              type);
    return 0;
}

static int add_conv(agon_net *net, const agon_conv_spec *sp, bool transposed, agon_init init,
                    float gain, agon_rng *rng, agon_error *err)
{
    const char *type = transposed ? "conv_transpose2d" : "conv2d";
    size_t idx = agon_net_layer_count(net);
    int rc = check_spec(sp, type, idx, transposed, init, gain, rng, err);
    if (rc)
        return rc;

    agon_shape in_shape = agon_net_out_shape(net);
    char buf[128];
    if (in_shape.ndim != 3) {
        agon_shape_format(&in_shape, buf, sizeof buf);
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): input shape %s is not [channels, height, "
                              "width]; add a reshape before it",
                              idx, type, buf);
    }
    const int64_t in_c = in_shape.dim[0], in_h = in_shape.dim[1], in_w = in_shape.dim[2];
    const int64_t kh = sp->kernel_h, kw = sp->kernel_w, sh = sp->stride_h, sw = sp->stride_w;
    const int64_t ph = sp->pad_h, pw = sp->pad_w;
    int64_t out_h, out_w;
    if (!transposed) {
        if (in_h + 2 * ph < kh || in_w + 2 * pw < kw)
            return agon_error_set(err, AGON_ECONFIG,
                                  "layer %zu (%s): kernel %lldx%lld with padding %lldx%lld "
                                  "does not fit the %lldx%lld input; use a smaller kernel or "
                                  "more padding",
                                  idx, type, (long long)kh, (long long)kw, (long long)ph,
                                  (long long)pw, (long long)in_h, (long long)in_w);
        out_h = (in_h + 2 * ph - kh) / sh + 1;
        out_w = (in_w + 2 * pw - kw) / sw + 1;
    } else {
        /* In double first: a tall input times a large stride must not wrap. */
        if ((double)in_h * (double)sh + (double)kh > (double)INT64_MAX / 4 ||
            (double)in_w * (double)sw + (double)kw > (double)INT64_MAX / 4)
            return image_too_large(idx, type, in_h, in_w, sh, sw, err);
        out_h = (in_h - 1) * sh - 2 * ph + kh + sp->output_pad_h;
        out_w = (in_w - 1) * sw - 2 * pw + kw + sp->output_pad_w;
        if (out_h < 1 || out_w < 1)
            return agon_error_set(err, AGON_ECONFIG,
                                  "layer %zu (%s): padding %lldx%lld leaves a %lldx%lld output "
                                  "for the %lldx%lld input with kernel %lldx%lld and stride "
                                  "%lldx%lld; use less padding",
                                  idx, type, (long long)ph, (long long)pw, (long long)out_h,
                                  (long long)out_w, (long long)in_h, (long long)in_w,
                                  (long long)kh, (long long)kw, (long long)sh, (long long)sw);
    }

    /* In conv2d terms (see the top of the file). */
    const int64_t C = transposed ? sp->out_channels : in_c;
    const int64_t K = transposed ? in_c : sp->out_channels;
    const int64_t H = transposed ? out_h : in_h, W = transposed ? out_w : in_w;
    const int64_t OH = transposed ? in_h : out_h, OW = transposed ? in_w : out_w;
    const int64_t max_batch = agon_net_max_batch(net);
    /* gemm takes int dimensions (a chunk has fewer than CHUNK_COLUMNS +
     * ohw columns); checked in double so that nothing overflows. */
    if ((double)C * (double)kh * (double)kw > INT_MAX || (double)K > INT_MAX ||
        (double)OH * (double)OW + CHUNK_COLUMNS > INT_MAX)
        return agon_error_set(err, AGON_ECONFIG,
                              "layer %zu (%s): %lld channels with kernel %lldx%lld and a "
                              "%lldx%lld grid exceed gemm's int sizes; use fewer channels or "
                              "a smaller input",
                              idx, type, (long long)C, (long long)kh, (long long)kw,
                              (long long)OH, (long long)OW);
    const int64_t ckk = C * kh * kw, ohw = OH * OW;
    /* The image side and its stride phases (below) are sized from H and W,
     * which a large stride can make far larger than the grid. */
    const double phase_floats = (double)sh * (double)sw * ((double)(H + 2 * ph) / sh + 1) *
                                ((double)(W + 2 * pw) / sw + 1);
    if ((double)C * (double)H * (double)W * (double)max_batch > (double)INT64_MAX / 4 ||
        phase_floats > (double)INT64_MAX / 4)
        return image_too_large(idx, type, H, W, sh, sw, err);

    conv_state *s = calloc(1, sizeof *s);
    if (!s)
        return agon_error_set(err, AGON_ENOMEM, "out of memory adding a %s layer", type);
    s->bias = sp->bias;
    s->C = C;
    s->H = H;
    s->W = W;
    s->K = K;
    s->OH = OH;
    s->OW = OW;
    s->kh = kh;
    s->kw = kw;
    s->sh = sh;
    s->sw = sw;
    s->ph = ph;
    s->pw = pw;
    s->ckk = ckk;
    s->hw = H * W;
    s->ohw = ohw;
    /* The last tap reads padded row (OH-1)*sh + kh-1 <= H + 2*ph - 1, for
     * both layers' sizes, so the phases cover the padded image. */
    s->Hq = (H + 2 * ph + sh - 1) / sh;
    s->Wq = (W + 2 * pw + sw - 1) / sw;
    s->chunk = chunk_samples(ckk, ohw, max_batch);

    const int64_t chunk_cols = s->chunk * ohw;
    const int64_t phases = sh * sw * s->Hq * s->Wq;
    int64_t *tables = agon__net_alloc(net, (size_t)(3 * sw + kh * kw) * sizeof(int64_t), err);
    bool got = tables && net_floats(net, &s->phase_in, phases, err) &&
               net_floats(net, &s->phase_acc, phases, err) &&
               net_floats(net, &s->cols, ckk * chunk_cols, err) &&
               (s->chunk == 1 || net_floats(net, &s->grid_t, K * chunk_cols, err));
    if (!got) {
        free(s);
        return AGON_ENOMEM;
    }
    for (int64_t b = 0; b < sw; b++) {
        /* Image columns x with (x + pw) % sw == b. */
        int64_t first = ((b - pw) % sw + sw) % sw;
        tables[b] = first;
        tables[sw + b] = (first + pw) / sw;
        tables[2 * sw + b] = first < W ? (W - 1 - first) / sw + 1 : 0;
    }
    s->b0 = tables;
    s->u0 = tables + sw;
    s->cnt = tables + 2 * sw;
    int64_t *tap_at = tables + 3 * sw;
    for (int64_t i = 0; i < kh; i++) {
        for (int64_t j = 0; j < kw; j++)
            tap_at[i * kw + j] = ((i % sh) * sw + j % sw) * s->Hq * s->Wq +
                                 (i / sh) * s->Wq + j / sw;
    }
    s->tap_at = tap_at;

    static const char *const names[] = {"weight", "bias"};
    agon_shape shapes[2];
    shapes[0] = agon_shape_make(4, (int64_t[]){K, C, kh, kw});
    shapes[1] = agon_shape_make(1, (int64_t[]){sp->out_channels});
    agon_shape out_shape = agon_shape_make(3, (int64_t[]){sp->out_channels, out_h, out_w});
    agon_param *params = NULL;
    rc = agon__net_add_layer(net, transposed ? &convt_ops : &conv_ops, s, &out_shape,
                             sp->bias ? 2 : 1, names, shapes, &params, err);
    if (rc != 0)
        return rc;
    /* PyTorch's fans: dims 1 and 0 of the weight times the kernel area. */
    agon__init_layer_params(params, sp->bias, C * kh * kw, K * kh * kw, init, gain, rng);
    return 0;
}

int agon_net_add_conv2d(agon_net *net, const agon_conv_spec *spec, agon_init init, float gain,
                        agon_rng *rng, agon_error *err)
{
    return add_conv(net, spec, false, init, gain, rng, err);
}

int agon_net_add_conv_transpose2d(agon_net *net, const agon_conv_spec *spec, agon_init init,
                                  float gain, agon_rng *rng, agon_error *err)
{
    return add_conv(net, spec, true, init, gain, rng, err);
}
