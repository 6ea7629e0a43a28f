/* dense.c: the fully connected layer, out = in W^T + b, as GEMMs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers.h"
#include "simd.h"

/* Training cuts a dense layer between threads by its output units: thread
 * t of a team of nt owns units [o0, o1) = nn_share_units(O, t, nt): it
 * computes their outputs (and their activation, fused), their weight and
 * bias gradients, and optim.c updates their weights on the same thread.
 * Rows o0..o1 of W, dW and Adam's moments (in an input-major layer, its
 * panels of W^T's columns: layers.h) so stay in the cache of the core
 * that reads and writes them: on these VMs the two vCPUs are at times in
 * different core complexes, where a cache line written by the other core
 * costs 300-500 ns instead of ~60 ns (bench_pingpong), and the MLP's
 * training lost a third of its speed to weights, moments and activations
 * that crossed (bench/README). The input gradient is cut by input units
 * the same way, so it lands (with the previous activation's derivative)
 * on the thread that owns those units of the layer before.
 * Every element is still summed by one nn_sgemm call over the same depth
 * blocks, so the results do not depend on the team. */

static int dense_team(int B, int I, int O, int threads) {
    return (double)B * I * O < NN_PAR_MIN_FMAS ? 1 : threads;
}

/* An input-major layer (training's first dense layer, W^T in panels) whose
 * batch is mostly zeros (an image's background: 81% of MNIST's pixels)
 * takes the sparse path: out = in W^T is nn_sgemm_sparse_a, which reads a
 * row of W^T only for an input that is not 0, and dW^T = in^T dout
 * likewise with in transposed (a pixel is not 0 in about a fifth of the
 * batch), each thread making its own copy of in^T so that nothing it
 * writes is read by the other core. The first layer of an MLP on MNIST so
 * does a fifth of the multiply-adds. Below half zeros, listing them would
 * cost about what it saves. */
#define DENSE_SPARSE_MIN_ZEROS 0.5

static void count_zeros_body(const float *x, size_t n, size_t *zeros) {
    size_t z = 0;
    for (size_t i = 0; i < n; i++)
        z += x[i] == 0.0f;
    *zeros = z;
}
NN_SIMD_VARIANTS(count_zeros, (const float *x, size_t n, size_t *zeros),
                 (x, n, zeros))

/* Scratch of the sparse path: in^T (I, B) for each thread, 16-float
 * aligned, in floats. */
static size_t dense_xt_floats(int B, int I) {
    return ((size_t)I * B + 15) & ~(size_t)15;
}
size_t dense_scratch_floats(int B, int I, int threads) {
    return (size_t)threads * dense_xt_floats(B, I);
}

/* Most weights for the sparse path: W^T is read once per input that is
 * not 0, which keeps up from a core's L2 (1 MiB here; the MLP's first
 * layer is 784 KiB) but not from L3, where the packed GEMM is faster: the
 * default CNN's dense256 (3.1 MiB) trained 6% slower by the sparse path. */
#define DENSE_SPARSE_MAX_WEIGHTS (1 << 18)

/* Whether a product over in (B, I) into O outputs takes the sparse path.
 * Decided on the whole batch, so every thread and team decides alike. */
static bool dense_sparse(const float *in, int B, int I, int O) {
    if ((size_t)I * O > DENSE_SPARSE_MAX_WEIGHTS)
        return false;
    size_t n = (size_t)B * I, zeros;
    count_zeros_best()(in, n, &zeros);
    return (double)zeros >= DENSE_SPARSE_MIN_ZEROS * (double)n;
}

/* The input-major layout (layers.h): W^T cut into panels of
 * DENSE_PANEL columns, each (I, width) row-major and stored whole, one
 * after the other. Column o of row i is at panel_start(o) + i * width +
 * o % DENSE_PANEL, where panel_start(o) = (o - o % DENSE_PANEL) * I. */
static int dense_panel_width(int O, int p0) {
    return O - p0 < DENSE_PANEL ? O - p0 : DENSE_PANEL;
}

/* The part of columns [c0, o1) that lies in one panel: [c0, return),
 * the panel starting at column *p0 with *w columns. */
static int dense_panel_part(int O, int c0, int o1, int *p0, int *w) {
    *p0 = c0 - c0 % DENSE_PANEL;
    *w = dense_panel_width(O, *p0);
    return *p0 + *w < o1 ? *p0 + *w : o1;
}

void dense_to_wt(const float *W, float *Wt, int I, int O) {
    for (int p0 = 0; p0 < O; p0 += DENSE_PANEL) {
        const int w = dense_panel_width(O, p0);
        nn_transpose(W + (size_t)p0 * I, (size_t)I, Wt + (size_t)p0 * I,
                     (size_t)w, w, I);
    }
}

void dense_from_wt(const float *Wt, float *W, int I, int O) {
    for (int p0 = 0; p0 < O; p0 += DENSE_PANEL) {
        const int w = dense_panel_width(O, p0);
        nn_transpose(Wt + (size_t)p0 * I, (size_t)w, W + (size_t)p0 * I,
                     (size_t)I, I, w);
    }
}

/* How a dense layer's weights are held and multiplied in training. */
typedef enum {
    DENSE_W,        /* W (O, I): the packed GEMM */
    DENSE_WT,       /* W^T in panels: the packed GEMM */
    DENSE_WT_SPARSE /* W^T in panels: zero inputs skipped */
} dense_path;

/* Units [o0, o1) of dense_forward. */
static void dense_forward_part(float *out, const float *in, const float *W,
                               dense_path path, const float *b, int B, int I,
                               int O, act_forward_fn act, int o0, int o1) {
    if (o0 >= o1) return;
    const size_t n = (size_t)(o1 - o0);
    for (int r = 0; r < B; r++)
        memcpy(out + (size_t)r * O + o0, b + o0, n * sizeof(float));
    if (path == DENSE_W) {
        nn_sgemm(false, true, B, o1 - o0, I, 1.0f, in, I, W + (size_t)o0 * I,
                 I, 1.0f, out + o0, O, 1);
    } else {
        /* by the panels' parts in [o0, o1) */
        for (int c0 = o0, c1, p0, w; c0 < o1; c0 = c1) {
            c1 = dense_panel_part(O, c0, o1, &p0, &w);
            const float *Wp = W + (size_t)p0 * I + (c0 - p0);
            if (path == DENSE_WT_SPARSE)
                nn_sgemm_sparse_a(B, c1 - c0, I, in, I, Wp, w, 1.0f, out + c0,
                                  O);
            else
                nn_sgemm(false, false, B, c1 - c0, I, 1.0f, in, I, Wp, w, 1.0f,
                         out + c0, O, 1);
        }
    }
    if (act)
        for (int r = 0; r < B; r++)
            act(out + (size_t)r * O + o0, out + (size_t)r * O + o0, n);
}

static void dense_forward_path(float *out, const float *in, const float *W,
                               dense_path path, const float *b, int B, int I,
                               int O, act_forward_fn act, int threads) {
    threads = dense_team(B, I, O, threads);
    if (nn_serial(threads)) {
        dense_forward_part(out, in, W, path, b, B, I, O, act, 0, O);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        int o0, o1;
        nn_share_units(O, omp_get_thread_num(), omp_get_num_threads(), &o0, &o1);
        dense_forward_part(out, in, W, path, b, B, I, O, act, o0, o1);
    }
#endif
}

void dense_forward(float *out, const float *in, const float *W, const float *b,
                   int B, int I, int O, act_forward_fn act, int threads) {
    dense_forward_path(out, in, W, DENSE_W, b, B, I, O, act, threads);
}

void dense_forward_wt(float *out, const float *in, const float *Wt,
                      const float *b, int B, int I, int O, act_forward_fn act,
                      int threads) {
    dense_forward_path(out, in, Wt,
                       dense_sparse(in, B, I, O) ? DENSE_WT_SPARSE : DENSE_WT,
                       b, B, I, O, act, threads);
}

/* db (O) = column sums of dout (B, O), units [o0, o1). */
static void dense_bias_grad(float *db, const float *dout, int B, int O, int o0,
                            int o1) {
    for (int o = o0; o < o1; o++) db[o] = 0;
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * O;
        for (int o = o0; o < o1; o++) db[o] += d[o];
    }
}

/* One thread's part of dense_backward: the gradients of units [o0, o1)
 * and the input gradient's columns [i0, i1). */
static void dense_backward_part(float *din, float *dW, float *db,
                                const float *dout, const float *in,
                                const float *W, int B, int I, int O,
                                act_backward_fn act, int o0, int o1, int i0,
                                int i1) {
    if (o0 < o1) {
        nn_sgemm(true, false, o1 - o0, I, B, 1.0f, dout + o0, O, in, I, 0.0f,
                 dW + (size_t)o0 * I, I, 1);
        dense_bias_grad(db, dout, B, O, o0, o1);
    }
    if (!din || i0 >= i1) return;
    nn_sgemm(false, false, B, i1 - i0, O, 1.0f, dout, O, W + i0, I, 0.0f,
             din + i0, I, 1);
    if (act)
        for (int r = 0; r < B; r++) {
            float *d = din + (size_t)r * I + i0;
            act(d, d, in + (size_t)r * I + i0, (size_t)(i1 - i0));
        }
}

/* The chain rule in matrix form: dW = dout^T in, db = column sums of
 * dout, din = dout W, then (act not NULL) din *= act'(in). */
void dense_backward(float *din, float *dW, float *db, const float *dout,
                    const float *in, const float *W, int B, int I, int O,
                    act_backward_fn act, int threads) {
    threads = dense_team(B, I, O, threads);
    if (nn_serial(threads)) {
        dense_backward_part(din, dW, db, dout, in, W, B, I, O, act, 0, O, 0, I);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int o0, o1, i0, i1;
        nn_share_units(O, t, nt, &o0, &o1);
        nn_share_units(I, t, nt, &i0, &i1);
        dense_backward_part(din, dW, db, dout, in, W, B, I, O, act, o0, o1, i0,
                            i1);
    }
#endif
}

/* Units [o0, o1) of dense_backward_wt; Xt: NULL, or this thread's in^T
 * for the sparse path. */
static void dense_backward_wt_part(float *dWt, float *db, const float *dout,
                                   const float *in, int B, int I, int O,
                                   float *Xt, int o0, int o1) {
    if (o0 >= o1) return;
    if (Xt) nn_transpose(in, I, Xt, B, B, I);
    for (int c0 = o0, c1, p0, w; c0 < o1; c0 = c1) {
        c1 = dense_panel_part(O, c0, o1, &p0, &w);
        float *dWp = dWt + (size_t)p0 * I + (c0 - p0);
        if (Xt)
            nn_sgemm_sparse_a(I, c1 - c0, B, Xt, B, dout + c0, O, 0.0f, dWp, w);
        else
            nn_sgemm(true, false, I, c1 - c0, B, 1.0f, in, I, dout + c0, O,
                     0.0f, dWp, w, 1);
    }
    dense_bias_grad(db, dout, B, O, o0, o1);
}

/* dW^T (I, O) = in^T dout and db; no input gradient: an input-major layer
 * is a first layer. */
void dense_backward_wt(float *dWt, float *db, const float *dout,
                       const float *in, int B, int I, int O, float *scratch,
                       int threads) {
    threads = dense_team(B, I, O, threads);
    const bool sparse = scratch && dense_sparse(in, B, I, O);
    if (nn_serial(threads)) {
        dense_backward_wt_part(dWt, db, dout, in, B, I, O,
                               sparse ? scratch : NULL, 0, O);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int o0, o1;
        nn_share_units(O, t, nt, &o0, &o1);
        dense_backward_wt_part(
            dWt, db, dout, in, B, I, O,
            sparse ? scratch + (size_t)t * dense_xt_floats(B, I) : NULL, o0,
            o1);
    }
#endif
}

/* Weights from which a few rows are worth a parallel region (a few
 * microseconds): below, one thread streams W faster than two start. */
#define DENSE_PAR_MIN_WEIGHTS (1 << 17)
/* Weights from which a later dense layer reads W transposed and skips the
 * zeros of its ReLU input: 2 MiB of float32 weights, one core's L2 on
 * the Xeons, from which W comes from L3 on every call. */
#define DENSE_SPARSE_MIN_WEIGHTS (1 << 19)

/* Outputs [o0, o1) of dense_infer, for one thread. */
static void dense_infer_part(float *out, const float *in, const float *W,
                             const float *Wt, const float *b, int B, int I,
                             int O, act_forward_fn act, int o0, int o1) {
    if (o0 >= o1) return;
    for (int r = 0; r < B; r++)
        memcpy(out + (size_t)r * O + o0, b + o0, (size_t)(o1 - o0) * sizeof(float));
    if (Wt)
        nn_sgemm_sparse_a(B, o1 - o0, I, in, I, Wt + o0, O, 1.0f, out + o0, O);
    else
        nn_sgemm_dot(B, o1 - o0, I, in, I, W + (size_t)o0 * I, I, 1.0f,
                     out + o0, O);
    if (act)
        for (int r = 0; r < B; r++)
            act(out + (size_t)r * O + o0, out + (size_t)r * O + o0, (size_t)(o1 - o0));
}

/* Inference answers must not depend on which other inputs share the batch
 * (the daemon's dynamic batcher groups requests as they arrive): every
 * element is summed in an order that depends only on I, and W is read
 * from memory at most once per input.
 *   Wt NULL: W (O, I); each element is one dot product (nn_sgemm_dot), W
 *            read once per call whatever B.
 *   Wt (I, O), W transposed: each element is a sum over the inputs in
 *            order, skipping zero inputs (nn_sgemm_sparse_a), so an input
 *            row with z non-zeros reads z rows of Wt: an MNIST-like image
 *            is about 80% background zeros. */
void dense_infer(float *out, const float *in, const float *W, const float *Wt,
                 const float *b, int B, int I, int O, act_forward_fn act,
                 int threads) {
    if (threads > 1 && (size_t)I * O < DENSE_PAR_MIN_WEIGHTS) threads = 1;
    /* Output blocks of 16 (one cache line of out), shared by the actual
     * team: each thread streams its part of W. */
    const int blocks = (O + 15) / 16;
    if (threads > blocks) threads = blocks;
    if (nn_serial(threads)) {
        dense_infer_part(out, in, W, Wt, b, B, I, O, act, 0, O);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        int o0, o1;
        nn_share(O, omp_get_thread_num(), omp_get_num_threads(), 16, &o0, &o1);
        dense_infer_part(out, in, W, Wt, b, B, I, O, act, o0, o1);
    }
#endif
}

/* W (O, I) -> Wt (I, O). */
static void transpose(float *Wt, const float *W, int I, int O) {
    nn_transpose(W, (size_t)I, Wt, (size_t)O, O, I);
}

/* ================================================================== */
/* The dense kind for the registry (layers.h)                          */
/* ================================================================== */

static int dense_parse(const char *p, nn_layer *l) {
    return layer_read_int(&p, LAYER_MAX_DENSE, &l->size) || *p ? -1 : 0;
}

static int dense_describe(const nn_layer *l, char *buf, size_t size) {
    return snprintf(buf, size, "dense%d", l->size);
}

static int dense_layout(nn_layer *l, const nn_layer *src, int index,
                        nn_error *err) {
    l->size = src->size;
    if (l->size < 1 || l->size > LAYER_MAX_DENSE)
        return layer_bad_size(l, src->size, index, err);
    l->out = (nn_shape){l->size, 1, 1};
    l->n_weights = (size_t)l->size * nn_shape_size(l->in);
    l->n_biases = (size_t)l->size;
    return 0;
}

static void dense_fans(const nn_layer *l, size_t *fan_in, size_t *fan_out) {
    *fan_in = nn_shape_size(l->in);
    *fan_out = (size_t)l->size;
}

static size_t dense_layer_scratch(const nn_layer *l, int B, int threads) {
    return l->input_major
               ? dense_scratch_floats(B, (int)nn_shape_size(l->in), threads)
               : 0;
}

static void dense_layer_forward_act(const nn_layer *l, const float *params,
                                    const float *in, float *out, int B,
                                    act_forward_fn act, float *scratch,
                                    int threads) {
    (void)scratch;
    const int I = (int)nn_shape_size(l->in);
    (l->input_major ? dense_forward_wt : dense_forward)(
        out, in, params + l->weights, params + l->biases, B, I, l->size, act,
        threads);
}

static void dense_layer_forward(const nn_layer *l, const float *params,
                                const float *in, float *out, int B,
                                int32_t *argmax, float *mask, nn_rng *rng,
                                float *scratch, int threads) {
    (void)argmax, (void)mask, (void)rng;
    dense_layer_forward_act(l, params, in, out, B, NULL, scratch, threads);
}

static void dense_layer_backward(const nn_layer *l, const float *params,
                                 float *grads, const float *in,
                                 const float *out, const float *dout,
                                 float *din, int B, const int32_t *argmax,
                                 const float *mask, float *scratch,
                                 int threads) {
    (void)out, (void)argmax, (void)mask;
    const int I = (int)nn_shape_size(l->in);
    if (l->input_major) /* a first layer: din is NULL */
        dense_backward_wt(grads + l->weights, grads + l->biases, dout, in, B,
                          I, l->size, scratch, threads);
    else
        dense_backward(din, grads + l->weights, grads + l->biases, dout, in,
                       params + l->weights, B, I, l->size, NULL, threads);
}

/* Never input-major: only a layer after an activation applies its
 * derivative, and an input-major layer is a first layer. */
static void dense_layer_backward_act(const nn_layer *l, const float *params,
                                     float *grads, const float *in,
                                     const float *out, const float *dout,
                                     float *din, int B, const int32_t *argmax,
                                     act_backward_fn act, int threads) {
    (void)out, (void)argmax;
    dense_backward(din, grads + l->weights, grads + l->biases, dout, in,
                   params + l->weights, B, (int)nn_shape_size(l->in), l->size,
                   act, threads);
}

/* The activation after layers[i], fused into its inference, or NULL. */
static act_forward_fn dense_fused_act(const nn_net *net, int i) {
    return i + 1 < net->n_layers ? layer_activation_fn(&net->layers[i + 1])
                                 : NULL;
}

static int dense_layer_infer_span(const nn_net *net, int i) {
    return dense_fused_act(net, i) ? 2 : 1;
}

/* Whether layers[i] takes the sparse path (W transposed, zero inputs
 * skipped): when it reads the image itself (its background is zeros) or,
 * with weights beyond L2's reach (3.2 MB in the CNN's dense256), a ReLU's
 * map through max-pooling and dropout (80% zeros after the CNN's
 * convolutions). Its Wt is made once by nn_net_prepare, else per call in
 * scratch. Elsewhere reading W once per batch is cheaper. */
static bool dense_sparse_input(const nn_net *net, int i) {
    if (i == 0)
        return true;
    const nn_layer *l = &net->layers[i];
    if (l->n_weights < DENSE_SPARSE_MIN_WEIGHTS)
        return false;
    for (int k = i - 1; k >= 0; k--) {
        nn_layer_kind kind = net->layers[k].kind;
        if (kind == NN_RELU)
            return true;
        if (kind != NN_MAXPOOL && kind != NN_DROPOUT)
            return false;
    }
    return false;
}

static size_t dense_layer_infer_scratch(const nn_net *net, int i, int B,
                                        int threads) {
    (void)B;
    (void)threads;
    return dense_sparse_input(net, i) && !net->prepared[i]
               ? net->layers[i].n_weights
               : 0;
}

static int dense_layer_infer_prepare(const nn_net *net, int i, float **out) {
    const nn_layer *l = &net->layers[i];
    *out = NULL;
    if (!dense_sparse_input(net, i))
        return 0;
    *out = malloc(l->n_weights * sizeof(float));
    if (!*out)
        return -1;
    transpose(*out, net->params + l->weights, (int)nn_shape_size(l->in),
              l->size);
    return 0;
}

static int dense_layer_infer(const nn_net *net, int i, const float *in,
                             float *out, int B, float *scratch, int threads) {
    const nn_layer *l = &net->layers[i];
    const int I = (int)nn_shape_size(l->in);
    const float *W = net->params + l->weights, *Wt = NULL;
    if (dense_sparse_input(net, i)) {
        Wt = net->prepared[i];
        if (!Wt) {
            transpose(scratch, W, I, l->size);
            Wt = scratch;
        }
    }
    act_forward_fn act = dense_fused_act(net, i);
    dense_infer(out, in, W, Wt, net->params + l->biases, B, I, l->size, act,
                threads);
    return act ? 2 : 1;
}

const layer_kind_desc layer_dense_desc = {
    .kind = NN_DENSE,
    .name = "dense",
    .syntax = "denseN",
    .flags = LAYER_WEIGHTED,
    .parse = dense_parse,
    .describe = dense_describe,
    .layout = dense_layout,
    .fans = dense_fans,
    .scratch_floats = dense_layer_scratch,
    .forward = dense_layer_forward,
    .backward = dense_layer_backward,
    .forward_act = dense_layer_forward_act,
    .backward_act = dense_layer_backward_act,
    .backward_act_kinds = 1u << NN_RELU | 1u << NN_SIGMOID | 1u << NN_TANH,
    .infer = dense_layer_infer,
    .infer_span = dense_layer_infer_span,
    .infer_scratch_floats = dense_layer_infer_scratch,
    .infer_prepare = dense_layer_infer_prepare,
};
