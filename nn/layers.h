/*
 * layers.h: forward/backward kernels of every layer kind and of the loss,
 * internal to nn/. Each is a pair of plain functions over caller-owned
 * buffers (llm.c style); nothing here allocates.
 *
 * Shapes: B batch, I/O input/output features, C/OC channels, H/W height
 * and width, K kernel side. All buffers row-major float32.
 * Backward functions overwrite (never accumulate into) their gradients;
 * din may be NULL when the input gradient is not needed (first layer).
 */
#ifndef DIGITD_NN_LAYERS_H
#define DIGITD_NN_LAYERS_H

#ifdef _OPENMP
#include <omp.h>
#endif

#include "nn.h"

/* ---- sharing work between threads --------------------------------- */
/* [*from, *to) of n items for thread tid of a team of `team`: equal shares
 * of whole units of `align` items (the last unit may be short), so each
 * item belongs to one thread whatever the team. */
static inline void nn_share(int n, int tid, int team, int align, int *from,
                            int *to) {
    int units = (n + align - 1) / align;
    int f = (int)((long)units * tid / team) * align;
    int t = (int)((long)units * (tid + 1) / team) * align;
    *from = f < n ? f : n;
    *to = t < n ? t : n;
}

/* The units (a layer's outputs) thread tid owns in training, shared in
 * whole cache lines of 16 floats: dense.c computes their outputs and
 * gradients, optim.c updates their weights, on the same thread. */
static inline void nn_share_units(int n, int tid, int team, int *from,
                                  int *to) {
    nn_share(n, tid, team, 16, from, to);
}

/* nn_share for element-wise loops over n floats (n may pass INT_MAX):
 * whole runs of 16, a full vector of every variant of simd.h. */
static inline void nn_share_floats(size_t n, int tid, int team, size_t *from,
                                   size_t *to) {
    size_t vecs = (n + 15) / 16;
    size_t f = vecs * (size_t)tid / (size_t)team * 16;
    size_t t = vecs * (size_t)(tid + 1) / (size_t)team * 16;
    *from = f < n ? f : n;
    *to = t < n ? t : n;
}

/* Whether a team of `threads` should run on the calling thread alone,
 * without a parallel region. libgomp ends every region and every barrier,
 * even in a team of one, with a futex syscall: 0.3-0.5 us each in these
 * VMs, 8 of them in an 8 us int8 forward pass of the MLP. Inside an active
 * region of a caller's, a region of our own is still needed (or orphaned
 * barriers and `omp for` would bind to the caller's team). */
static inline bool nn_serial(int threads) {
#ifdef _OPENMP
    return threads <= 1 && !omp_in_parallel();
#else
    (void)threads;
    return true;
#endif
}

/* ---- GEMM variants (nn/gemm.c) ------------------------------------ */
/* Products below this many multiply-adds run on one thread (nn_sgemm, and
 * dense.c's training, which cuts a layer between threads itself): a
 * parallel region costs a few microseconds, which a product this small
 * does not repay. */
#define NN_PAR_MIN_FMAS (1 << 19)
/* nn_sgemm with a named kernel ("avx512", "avx2", "generic"), so tests and
 * benchmarks can check every variant on one machine. Returns -1 (and does
 * nothing) when the variant is unknown or this CPU cannot run it, else 0. */
int nn_sgemm_variant(const char *variant, bool trans_a, bool trans_b, int M,
                     int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc,
                     int threads);

/* C (M, N) = A (M, K) x B^T + beta C, B stored (N, K), for any M by the
 * direct path: every element is one dot product summed in an order that
 * depends on K alone (so inference answers do not depend on the batch),
 * and B is read from memory once per call. */
void nn_sgemm_dot(int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

/* C (M, N) = A (M, K) x B + beta C, B stored (K, N), by the direct path,
 * for an A that is mostly zeros (an image's background): a row of B is
 * read only where A's element is not 0, so a row of A with z non-zeros
 * costs z rows of B. Every element is summed over k in ascending order
 * (one chain per element), so the answer depends on neither M nor the
 * zeros skipped (0 * b adds nothing to a sum started at +0, for finite
 * B). */
void nn_sgemm_sparse_a(int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc);

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: a (rows,
 * cols) block of a row-major matrix into a (cols, rows) block of another,
 * by 8x8 blocks in registers. */
void nn_transpose(const float *src, size_t lds, float *dst, size_t ldd,
                  int rows, int cols);

/* ---- element-wise activations (nn/activations.c) ------------------ */
/* An element-wise function of n values; out may alias in. */
typedef void (*act_forward_fn)(float *out, const float *in, size_t n);
/* n values; backward uses the forward output `out`, so din = dout * f'(x)
 * is computed without keeping x. din may alias dout. */
void relu_forward(float *out, const float *in, size_t n);
void relu_backward(float *din, const float *dout, const float *out, size_t n);
/* sigmoid never overflows: exp is only taken of -|x|. */
void sigmoid_forward(float *out, const float *in, size_t n);
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
void tanh_forward(float *out, const float *in, size_t n);
void tanh_backward(float *din, const float *dout, const float *out, size_t n);
typedef void (*act_backward_fn)(float *din, const float *dout,
                                const float *out, size_t n);
/* relu's or sigmoid's two functions (kind "relu", "sigmoid") in a named
 * variant of simd.h ("avx512", "avx2", "generic"), so the tests can check
 * each on one machine: 0, or -1 when either name is unknown or this CPU
 * cannot run the variant. */
int act_variant(const char *kind, const char *variant, act_forward_fn *forward,
                act_backward_fn *backward);

/* ---- dense (nn/dense.c) ------------------------------------------- */
/* in (B,I), W (O,I), b (O) -> out (B,O), then act on out (NULL: none). */
void dense_forward(float *out, const float *in, const float *W, const float *b,
                   int B, int I, int O, act_forward_fn act, int threads);
/* dout (B,O), in (B,I), W (O,I) -> din (B,I) or NULL, dW (O,I), db (O);
 * act not NULL: din is then multiplied by the derivative of the activation
 * whose output `in` is (act_backward_fn, in place). */
void dense_backward(float *din, float *dW, float *db, const float *dout,
                    const float *in, const float *W, int B, int I, int O,
                    act_backward_fn act, int threads);
/* The same with the weights input-major, as training holds a first dense
 * layer's (nn_layer.input_major): W^T (I,O) cut into panels of
 * DENSE_PANEL columns (the last one narrower), each (I, width)
 * row-major, one after the other, so that the columns a thread owns
 * (nn_share_units: both halves of a 256-unit layer are whole panels) are
 * one run of memory; dense_to_wt and dense_from_wt convert W (O,I) to
 * this layout and back (also for gradients). An input that is mostly
 * zeros then skips them (the sparse path, beside the code), with the same
 * values up to the order of the sums. dense_backward_wt gives dWt (W's
 * gradient in this layout) and db, no input gradient; its sparse path
 * needs scratch of dense_scratch_floats(B, I, threads) floats (NULL: the
 * GEMM). */
#define DENSE_PANEL 128
void dense_to_wt(const float *W, float *Wt, int I, int O);
void dense_from_wt(const float *Wt, float *W, int I, int O);
void dense_forward_wt(float *out, const float *in, const float *Wt,
                      const float *b, int B, int I, int O, act_forward_fn act,
                      int threads);
size_t dense_scratch_floats(int B, int I, int threads);
void dense_backward_wt(float *dWt, float *db, const float *dout,
                       const float *in, int B, int I, int O, float *scratch,
                       int threads);

/* ---- softmax with cross-entropy (nn/loss.c) ----------------------- */
/* logits (B,C) -> probs (B,C); max subtracted first, so no overflow. */
void softmax_forward(float *probs, const float *logits, int B, int C);
/* Mean cross-entropy over the batch of probs (B,C) against labels (B),
 * computed as log-sum-exp from the logits: never log(0), never inf. */
float xent_loss(const float *logits, const uint8_t *labels, int B, int C);
/* logits (B,n_out) -> the ten digit probabilities (B,10): softmax of the
 * first ten logits divided by T (nn/verdict.c). With T == 1 each row is
 * exactly softmax_forward's. */
void digit_probs(float *probs, const float *logits, int B, int n_out, float T);
/* dlogits (B,C) = (probs - onehot(labels)) / B */
void softmax_xent_backward(float *dlogits, const float *probs,
                           const uint8_t *labels, int B, int C);

/* ---- convolution, stride 1 (nn/conv.c) ---------------------------- */
/* in (B,C,H,W), W (OC,C,K,K), b (OC) -> out (B,OC,OH,OW),
 * OH = H + 2*pad - K + 1, OW likewise, then act(out) unless act is NULL
 * (applied to each sample while it is still in cache: training fuses the
 * activation after a convolution this way). scratch holds
 * conv_scratch_floats(...) floats (im2col buffers for `threads` threads,
 * or Winograd's where conv_winograd_applies()). */
size_t conv_scratch_floats(int C, int H, int W, int OC, int K, int pad,
                           int threads);
void conv_forward(float *out, const float *in, const float *W, const float *b,
                  int B, int C, int H, int Wd, int OC, int K, int pad,
                  act_forward_fn act, float *scratch, int threads);
/* How conv_forward and conv_backward cut a batch of B among `threads`:
 * that many contiguous chunks of samples (one when B < threads, whose
 * GEMMs then get the threads). */
int conv_chunk_count(int B, int threads);
/* dout (B,OC,OH,OW) -> din (B,C,H,W) or NULL, dW (OC,C,K,K), db (OC).
 * Deterministic for a given thread count. */
void conv_backward(float *din, float *dW, float *db, const float *dout,
                   const float *in, const float *W, int B, int C, int H,
                   int Wd, int OC, int K, int pad, float *scratch,
                   int threads);
/* Training's fusion of an im2col convolution, the relu after it and a 2x2
 * pooling after that, one sample at a time, so that the convolution's map
 * (the default CNN's first: 12.8 MB at batch 128) is never written out:
 * forward writes only the pooling's out (B,OC,OH/2,OW/2) and argmax (as
 * maxpool_forward's over the (B,OC,OH,OW) map), act being the relu;
 * backward takes the pooling's dout (dpooled) and its out (pooled: the
 * relu's derivative at each winner) and gives din (or NULL), dW and db.
 * Both equal conv_forward (with act), maxpool_forward and conv_backward
 * after the pooling's backward_act, bit for bit. scratch holds
 * conv_pool_scratch_floats(B, ...) floats. */
void conv_forward_pool(float *pooled, int32_t *argmax, const float *in,
                       const float *W, const float *b, int B, int C, int H,
                       int Wd, int OC, int K, int pad, act_forward_fn act,
                       float *scratch, int threads);
void conv_backward_pool(float *din, float *dW, float *db, const float *dpooled,
                        const float *pooled, const int32_t *argmax,
                        const float *in, const float *W, int B, int C, int H,
                        int Wd, int OC, int K, int pad, float *scratch,
                        int threads);
size_t conv_pool_scratch_floats(int B, int C, int H, int W, int OC, int K,
                                int pad, int threads);

/* ---- max-pooling, window K, stride K (nn/pool.c) ------------------ */
/* in (B,C,H,W) -> out (B,C,H/K,W/K) (floor); argmax (B,C,H/K,W/K) holds
 * the index into in of each maximum (may be NULL for inference). */
void maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                     int C, int H, int W, int K);
/* maxpool_forward with K = 2 by a named kernel ("avx512", "avx2",
 * "generic"), so tests can check every variant on one machine. Returns -1
 * (and does nothing) when the variant is unknown or cannot run here. */
int maxpool2_forward_variant(const char *variant, float *out, int32_t *argmax,
                             const float *in, int B, int C, int H, int W);
/* din (B,C,H,W) is zeroed, then each dout goes to its argmax. */
void maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                      int B, int C, int H, int W, int K);
/* One sample of a batch, for training's fusion of a convolution, its relu
 * and a pooling (conv_forward_pool): in (C,H,W) -> out (C,H/2,W/2), argmax
 * as maxpool_forward's for the whole batch, where in[0] has the flat index
 * `first`. And the backward of the relu and the pooling: din (C,H,W)
 * zeroed, then each dout whose out (the relu's output, at its winner) is
 * > 0 goes to argmax - first, as the pooling's backward_act does. */
void maxpool2_forward_sample(float *out, int32_t *argmax, const float *in,
                             int C, int H, int W, int32_t first);
void maxpool2_backward_relu_sample(float *din, const float *dout,
                                   const int32_t *argmax, const float *out,
                                   int C, int H, int W, int32_t first);

/* ---- inverted dropout (nn/dropout.c) ------------------------------ */
/* mask (n) gets 0 or 1/(1-rate); out = in * mask. */
void dropout_forward(float *out, float *mask, const float *in, size_t n,
                     float rate, nn_rng *rng);
void dropout_backward(float *din, const float *dout, const float *mask,
                      size_t n);

/* ---- one layer of a network, whatever its kind (nn/network.c) ----- */
/* Scratch floats layer_forward/layer_backward need for this layer and
 * batches of up to B. */
size_t layer_scratch_floats(const nn_layer *l, int B, int threads);
/* in (B, l->in) -> out (B, l->out). params: the net's parameter array.
 * Training passes rng (dropout draws its mask into `mask`, pooling keeps
 * `argmax`); inference passes rng NULL and may pass NULL argmax/mask. */
void layer_forward(const nn_layer *l, const float *params, const float *in,
                   float *out, int B, int32_t *argmax, float *mask,
                   nn_rng *rng, float *scratch, int threads);
/* dout (B, l->out) -> din (B, l->in) or NULL; parameter gradients into
 * grads (same layout as params). in/out/argmax/mask from the forward. */
void layer_backward(const nn_layer *l, const float *params, float *grads,
                    const float *in, const float *out, const float *dout,
                    float *din, int B, const int32_t *argmax,
                    const float *mask, float *scratch, int threads);

/* ---- the layer registry (nn/layer_registry.c) --------------------- */
/* Everything about one layer kind lives in its descriptor, defined next to
 * the kind's kernels (dense.c, conv.c, pool.c, activations.c, dropout.c)
 * and listed once in nn/layer_registry.c. Adding a kind, or a kernel for
 * one, is one descriptor: network.c, train.c and model_file.c only ever ask
 * the registry. */

/* What a kind is, for the code that walks a network. */
enum {
    LAYER_ACTIVATION = 1 << 0, /* element-wise non-linearity: a valid value of
                                  --activation, and the kind inserted after
                                  weighted layers by default */
    LAYER_WEIGHTED = 1 << 1,   /* has parameters: the default activation
                                  follows it (unless it is the last layer) */
    LAYER_INIT_SEE_THROUGH = 1 << 2, /* looked through when a weighted layer
                                        picks its initialisation by the kind
                                        that follows it */
    LAYER_HE_INIT = 1 << 3,    /* weights feeding this kind get He's scale,
                                  others Glorot's */
    LAYER_NEEDS_ARGMAX = 1 << 4, /* training keeps an int32 per output */
    LAYER_NEEDS_MASK = 1 << 5,   /* training keeps a float per output */
};

typedef struct layer_kind_desc {
    nn_layer_kind kind;
    /* Name in messages and the start of its architecture token ("conv"). */
    const char *name;
    /* The token's form for error messages ("convKxC"). */
    const char *syntax;
    unsigned flags;
    /* Reads what follows `name` in a token ("5x32:valid" for "conv") into l
     * (already zeroed, l->kind set). Returns 0, or -1 when it is not a
     * token of this kind. NULL: the token is the name alone. */
    int (*parse)(const char *args, nn_layer *l);
    /* The canonical token of l into buf (snprintf's contract). NULL: the
     * name alone. */
    int (*describe)(const nn_layer *l, char *buf, size_t size);
    /* Copies the fields this kind uses from src into l, checks them against
     * l->in (set by the caller), and sets l->out, l->n_weights and
     * l->n_biases. `index` is the 1-based layer number for messages.
     * Returns 0, or -1 with err naming the impossible dimension. */
    int (*layout)(nn_layer *l, const nn_layer *src, int index, nn_error *err);
    /* Weighted kinds: fan-in and fan-out for the initialisation. */
    void (*fans)(const nn_layer *l, size_t *fan_in, size_t *fan_out);
    /* Scratch floats forward/backward need for batches of up to B; NULL:
     * none. */
    size_t (*scratch_floats)(const nn_layer *l, int B, int threads);
    /* As layer_forward / layer_backward below. */
    void (*forward)(const nn_layer *l, const float *params, const float *in,
                    float *out, int B, int32_t *argmax, float *mask,
                    nn_rng *rng, float *scratch, int threads);
    void (*backward)(const nn_layer *l, const float *params, float *grads,
                     const float *in, const float *out, const float *dout,
                     float *din, int B, const int32_t *argmax,
                     const float *mask, float *scratch, int threads);
    /* Fusions training makes (train.c) to save whole passes over
     * activations that do not fit in cache (the default CNN's first is
     * 12.8 MB at batch 128). NULL: this kind does not fuse.
     * forward_act: forward, then the element-wise act on out while each
     * part is still in cache. The activation layer after this one then
     * shares this one's output buffer and does nothing; so `backward` of
     * a kind with forward_act must not read its `out`.
     * backward_act: backward of a layer whose input is the output of an
     * activation of a kind in backward_act_kinds (bits 1 << kind), with
     * that activation's derivative `act` applied to din as well (computed
     * from that output, this layer's `in`); the activation layer's own
     * backward is then skipped. Its result equals the two backwards run
     * one after the other, bit for bit. */
    void (*forward_act)(const nn_layer *l, const float *params,
                        const float *in, float *out, int B,
                        act_forward_fn act, float *scratch, int threads);
    void (*backward_act)(const nn_layer *l, const float *params,
                         float *grads, const float *in, const float *out,
                         const float *dout, float *din, int B,
                         const int32_t *argmax, act_backward_fn act,
                         int threads);
    unsigned backward_act_kinds;
    /* pool_fused: whether training runs layers[i] of net, the relu after
     * it and the 2x2 pooling after that as one (NULL: never). Then
     * forward_pool writes only the pooling's out and argmax (the
     * pooling's buffers), and backward_pool takes the pooling's dout and
     * out and gives this layer's din (or NULL), weight and bias gradients:
     * the three layers' forwards and backwards, bit for bit, without the
     * maps between them (conv_forward_pool). */
    bool (*pool_fused)(const nn_net *net, int i);
    void (*forward_pool)(const nn_layer *l, const float *params,
                         const float *in, float *pooled, int32_t *argmax,
                         int B, act_forward_fn act, float *scratch,
                         int threads);
    void (*backward_pool)(const nn_layer *l, const float *params,
                          float *grads, const float *in, const float *pooled,
                          const float *dpooled, float *din, int B,
                          const int32_t *argmax, float *scratch, int threads);
    /* Inference kernel, or NULL to run `forward` without training state.
     * Runs layers[i] of net, and may fuse the layers after it (a
     * convolution takes its activation and 2x2 pooling along): in (B,
     * layers[i].in) -> out (B, layers[i + n - 1].out) where n, the number of
     * layers it ran, is returned. scratch holds infer_scratch_floats()
     * floats. Writes only out and scratch, so a shared net is never
     * touched. */
    int (*infer)(const nn_net *net, int i, const float *in, float *out, int B,
                 float *scratch, int threads);
    size_t (*infer_scratch_floats)(const nn_net *net, int i, int B,
                                   int threads);
    /* What `infer` can compute once from the weights of a net that is
     * only served from then on (nn_net_prepare): a buffer for
     * net->prepared[i] (to free()) into *out, or NULL for nothing. -1 when
     * out of memory. NULL: nothing to prepare. */
    int (*infer_prepare)(const nn_net *net, int i, float **out);
    /* How many layers `infer` runs from layers[i] (it decides from the
     * layers that follow), so nn_predict sizes its buffers by the outputs
     * it really writes. Required with `infer`. */
    int (*infer_span)(const nn_net *net, int i);
    /* LAYER_ACTIVATION kinds: the function itself, and its derivative
     * (din = dout * f'(x), from f's output). */
    act_forward_fn elementwise;
    act_backward_fn derivative;
} layer_kind_desc;

/* The descriptor of a kind, or NULL for a number that is no kind (a model
 * file may hold anything). */
const layer_kind_desc *layer_kind_find(int kind);
/* The descriptors in registry order (the order of the grammar's message);
 * *n gets their count. */
const layer_kind_desc *const *layer_kinds(int *n);

/* The descriptors, defined beside their kernels. */
extern const layer_kind_desc layer_dense_desc, layer_conv_desc,
    layer_maxpool_desc, layer_relu_desc, layer_sigmoid_desc, layer_tanh_desc,
    layer_dropout_desc;

/* Most outputs of a dense layer (nn/dense.c), also the most of an MLP
 * string's sizes: keeps every size computation far from overflow. */
#define LAYER_MAX_DENSE 65536

/* Reads a whole decimal number at *p (0..limit) into *out and advances *p;
 * -1 when there is no digit or the number exceeds limit. For parsers. */
int layer_read_int(const char **p, int limit, int *out);

/* Shared by the layout functions: "layer N (kind) has size S". */
int layer_bad_size(const nn_layer *l, int size, int index, nn_error *err);

/* The element-wise function of l when its kind is an activation (what an
 * inference kernel fuses after its own output), else NULL. */
act_forward_fn layer_activation_fn(const nn_layer *l);

/* ---- inference kernels -------------------------------------------- */
/* Convolution for inference (nn/conv_infer.c), with the activation `act`
 * (NULL: none) and, when pool, a 2x2 max-pooling fused:
 * in (B,C,H,W), W (OC,C,K,K), b (OC) -> out (B,OC,OH,OW), or
 * (B,OC,OH/2,OW/2) pooled; OH = H + 2*pad - K + 1, OW likewise. The values
 * are those of conv_forward, act and maxpool_forward in turn, up to the
 * order of the sums (a few units in the last place), or, where
 * conv_winograd_applies() and it runs Winograd's F(4x4, 5x5), up to a few
 * 1e-6 of the output scale. prepared: NULL, or on the Winograd path the
 * transformed weights conv_winograd_weights_create made of W (then not
 * redone per call, and not in scratch). scratch holds
 * conv_infer_scratch_floats() floats (it depends on B only on the
 * Winograd path), with prepared saying whether it will be passed. */
size_t conv_infer_scratch_floats(int B, int C, int H, int W, int OC, int K,
                                 int pad, bool pool, bool prepared,
                                 int threads);
void conv_infer(float *out, const float *in, const float *W, const float *b,
                const float *prepared, int B, int C, int H, int Wd, int OC,
                int K, int pad, act_forward_fn act, bool pool, float *scratch,
                int threads);
/* The direct kernel alone, with a named variant ("avx512", "avx2",
 * "generic"), for tests and benchmarks: -1 (nothing done) when unknown or
 * not runnable here. scratch holds conv_infer_direct_scratch_floats(). */
size_t conv_infer_direct_scratch_floats(int C, int H, int W, int K, int pad,
                                        int threads);
int conv_infer_variant(const char *variant, float *out, const float *in,
                       const float *W, const float *b, int B, int C, int H,
                       int Wd, int OC, int K, int pad, act_forward_fn act,
                       bool pool, float *scratch, int threads);

/* Winograd F(4x4, 5x5) for the same job (nn/conv_winograd.c), K = 5.
 * Whether conv_infer uses it for this shape (the rule and its reasons are
 * beside the code). */
bool conv_winograd_applies(int C, int H, int W, int OC, int K, int pad);
/* Scratch floats for a batch of B: the transformed weights (unless
 * prepared), input tiles of a few samples at a time and per-thread block
 * buffers. */
size_t conv_winograd_scratch_floats(int B, int C, int H, int W, int OC,
                                    int pad, bool pool, bool prepared,
                                    int threads);
/* The transformed weights of W (OC,C,5,5), made once for a net whose
 * weights no longer change, by a variant as conv_winograd_variant's (NULL:
 * the best): a 64-byte-aligned buffer to free(), or NULL when out of
 * memory or the variant is unknown or not runnable here. With them that
 * variant gives the values it gives without, bit for bit. */
float *conv_winograd_weights_create(const char *variant, const float *W,
                                    int C, int OC);
/* With a named variant as conv_infer_variant (NULL: the best this CPU
 * runs), for any shape with an output (where it does not pay too, for
 * the tests); u: NULL, or conv_winograd_weights_create(W, C, OC). -1
 * (nothing done) when the variant is unknown or not runnable here, or the
 * output would be empty. */
int conv_winograd_variant(const char *variant, float *out, const float *in,
                          const float *W, const float *b, const float *u,
                          int B, int C, int H, int Wd, int OC, int pad,
                          act_forward_fn act, bool pool, float *scratch,
                          int threads);

/* The gradients of the same convolution by Winograd F(4x4, 5x5), for
 * training (nn/conv_winograd_grad.c): dout (B,OC,OH,OW) -> dW
 * (OC,C,5,5), overwritten, and din (B,C,H,W) unless NULL, as
 * conv_backward's up to a few 1e-6 of their scale (din) and about 1e-5
 * (dW, a sum over the whole batch); db is conv_backward's
 * job. scratch holds conv_winograd_grad_scratch_floats() floats.
 * Deterministic for a given thread count; din does not depend on it. */
size_t conv_winograd_grad_scratch_floats(int C, int H, int W, int OC, int pad,
                                         int threads);
void conv_winograd_backward(float *din, float *dW, const float *dout,
                            const float *in, const float *W, int B, int C,
                            int H, int Wd, int OC, int pad, float *scratch,
                            int threads);

/* Dense layer for inference (nn/dense.c): dense_forward then act (NULL:
 * none). A few rows are matrix-vector products that read W once; with
 * threads > 1 the outputs are shared out, each thread streaming its own
 * rows of W, so one image uses both cores' caches. Given Wt (W
 * transposed, (I, O)), it is used instead, skipping the zeros of in (for
 * inputs that are mostly zeros). in (B,I), W (O,I), b (O) -> out (B,O). */
void dense_infer(float *out, const float *in, const float *W, const float *Wt,
                 const float *b, int B, int I, int O, act_forward_fn act,
                 int threads);

/* ---- a whole network's gradient (nn/train.c) ---------------------- */
/* Mean softmax cross-entropy of net on x (B,784) against labels (B), and
 * its gradient with respect to every parameter into grads (n_params, the
 * layout of net->params). Dropout is off. Used by the gradient checks
 * and the PyTorch comparison; training runs the same code per batch.
 * Returns the loss, or -1 with err when memory runs out. */
double net_gradients(const nn_net *net, const float *x, const uint8_t *labels,
                     int B, float *grads, int threads, nn_error *err);

/* *view = net as training holds it, its parameters in params (n_params
 * floats): a first dense layer input-major (nn_layer.input_major), its
 * weights W^T. view shares nothing with net and owns nothing. */
void train_layout(const nn_net *net, nn_net *view, float *params);
/* dst = src (parameters or gradients laid out as view's) in the layout of
 * the net view was made from. */
void net_layout(const nn_net *view, const float *src, float *dst);

/* ---- evaluation, whatever runs the model (nn/train.c) ------------- */
/* x (B, 784) -> probs (B, 10); 0, or -1 with err. */
typedef int (*eval_predict_fn)(const void *ctx, const float *x, int B, float *probs,
                               nn_error *err);
/* Accuracy of predict over d, confusion[true][predicted] counted (when not
 * NULL); -1 with err when predict fails or memory runs out. nn_evaluate
 * (float32) and nn_qnet_evaluate (int8) are this with their forward. */
double evaluate_with(eval_predict_fn predict, const void *ctx, const nn_dataset *d,
                     int confusion[NN_CLASSES][NN_CLASSES], nn_error *err);

/* ---- nn_net_build in two steps (nn/network.c) -------------------- */
/* nn_net_layout checks the layers and fills *net (layers, shapes, offsets,
 * n_layers, n_params, metadata defaults) without allocating anything:
 * net->params is NULL. Returns 0, or -1 with err naming the impossible
 * dimension. nn_net_alloc_params then allocates net->n_params zeroed
 * floats (0, or -1 with err). The model loader compares n_params with its
 * file in between, so a file cannot make it allocate for nothing. */
int nn_net_layout(nn_net *net, const nn_layer *src, int n_layers,
                  nn_error *err);
int nn_net_alloc_params(nn_net *net, nn_error *err);

/* n floats (at least one), zeroed, aligned to a cache line (64 bytes), to
 * free(); NULL when out of memory. A tensor that starts at a multiple of
 * 16 floats inside starts a line, and a vector load across two lines
 * costs twice the L2 traffic; threads that write their own runs of 16
 * floats never write the same line. */
float *nn_floats_alloc(size_t n);

#endif
