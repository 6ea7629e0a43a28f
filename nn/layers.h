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

#include "nn.h"

/* ---- GEMM variants (nn/gemm.c) ------------------------------------ */
/* nn_sgemm with a named kernel ("avx512", "avx2", "generic"), so tests and
 * benchmarks can check every variant on one machine. Returns -1 (and does
 * nothing) when the variant is unknown or this CPU cannot run it, else 0. */
int nn_sgemm_variant(const char *variant, bool trans_a, bool trans_b, int M,
                     int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc,
                     int threads);

/* ---- dense (nn/dense.c) ------------------------------------------- */
/* in (B,I), W (O,I), b (O) -> out (B,O) */
void dense_forward(float *out, const float *in, const float *W, const float *b,
                   int B, int I, int O, int threads);
/* dout (B,O), in (B,I), W (O,I) -> din (B,I) or NULL, dW (O,I), db (O) */
void dense_backward(float *din, float *dW, float *db, const float *dout,
                    const float *in, const float *W, int B, int I, int O,
                    int threads);

/* ---- element-wise activations (nn/activations.c) ------------------ */
/* n values; backward uses the forward output `out`, so din = dout * f'(x)
 * is computed without keeping x. din may alias dout. */
void relu_forward(float *out, const float *in, size_t n);
void relu_backward(float *din, const float *dout, const float *out, size_t n);
/* sigmoid never overflows: exp is only taken of -|x|. */
void sigmoid_forward(float *out, const float *in, size_t n);
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
void tanh_forward(float *out, const float *in, size_t n);
void tanh_backward(float *din, const float *dout, const float *out, size_t n);

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
 * OH = H + 2*pad - K + 1, OW likewise. scratch holds
 * conv_scratch_floats(...) floats (im2col buffers for `threads` threads). */
size_t conv_scratch_floats(int C, int H, int W, int OC, int K, int pad,
                           int threads);
void conv_forward(float *out, const float *in, const float *W, const float *b,
                  int B, int C, int H, int Wd, int OC, int K, int pad,
                  float *scratch, int threads);
/* dout (B,OC,OH,OW) -> din (B,C,H,W) or NULL, dW (OC,C,K,K), db (OC).
 * Deterministic for a given thread count. */
void conv_backward(float *din, float *dW, float *db, const float *dout,
                   const float *in, const float *W, int B, int C, int H,
                   int Wd, int OC, int K, int pad, float *scratch,
                   int threads);

/* ---- max-pooling, window K, stride K (nn/pool.c) ------------------ */
/* in (B,C,H,W) -> out (B,C,H/K,W/K) (floor); argmax (B,C,H/K,W/K) holds
 * the index into in of each maximum (may be NULL for inference). */
void maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                     int C, int H, int W, int K);
/* din (B,C,H,W) is zeroed, then each dout goes to its argmax. */
void maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                      int B, int C, int H, int W, int K);

/* ---- inverted dropout (nn/dropout.c) ------------------------------ */
/* mask (n) gets 0 or 1/(1-rate); out = in * mask. */
void dropout_forward(float *out, float *mask, const float *in, size_t n,
                     float rate, nn_rng *rng);
void dropout_backward(float *din, const float *dout, const float *mask,
                      size_t n);

/* ---- one layer of a network, whatever its kind (nn/network.c) ----- */
/* Scratch floats layer_forward/layer_backward need for this layer. */
size_t layer_scratch_floats(const nn_layer *l, int threads);
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

/* ---- a whole network's gradient (nn/train.c) ---------------------- */
/* Mean softmax cross-entropy of net on x (B,784) against labels (B), and
 * its gradient with respect to every parameter into grads (n_params, the
 * layout of net->params). Dropout is off. Used by the gradient checks
 * and the PyTorch comparison; training runs the same code per batch.
 * Returns the loss, or -1 with err when memory runs out. */
double net_gradients(const nn_net *net, const float *x, const uint8_t *labels,
                     int B, float *grads, int threads, nn_error *err);

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

#endif
