/* dense.c: the fully connected layer, out = in W^T + b, as GEMMs. */
#include <stdio.h>
#include <string.h>

#include "layers.h"

/* in (B,I), W (O,I), b (O) -> out (B,O) */
void dense_forward(float *out, const float *in, const float *W, const float *b,
                   int B, int I, int O, int threads) {
    /* Start each row from the bias, then add in W^T in one GEMM. */
    for (int r = 0; r < B; r++) memcpy(out + (size_t)r * O, b, O * sizeof(float));
    nn_sgemm(false, true, B, O, I, 1.0f, in, I, W, I, 1.0f, out, O, threads);
}

/* dout (B,O), in (B,I), W (O,I) -> din (B,I) or NULL, dW (O,I), db (O).
 * The chain rule in matrix form: dW = dout^T in, db = column sums of
 * dout, din = dout W. */
void dense_backward(float *din, float *dW, float *db, const float *dout,
                    const float *in, const float *W, int B, int I, int O,
                    int threads) {
    nn_sgemm(true, false, O, I, B, 1.0f, dout, O, in, I, 0.0f, dW, I, threads);
    for (int o = 0; o < O; o++) db[o] = 0;
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t)r * O;
        for (int o = 0; o < O; o++) db[o] += d[o];
    }
    if (din)
        nn_sgemm(false, false, B, I, O, 1.0f, dout, O, W, I, 0.0f, din, I,
                 threads);
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

static void dense_layer_forward(const nn_layer *l, const float *params,
                                const float *in, float *out, int B,
                                int32_t *argmax, float *mask, nn_rng *rng,
                                float *scratch, int threads) {
    (void)argmax, (void)mask, (void)rng, (void)scratch;
    dense_forward(out, in, params + l->weights, params + l->biases, B,
                  (int)nn_shape_size(l->in), l->size, threads);
}

static void dense_layer_backward(const nn_layer *l, const float *params,
                                 float *grads, const float *in,
                                 const float *out, const float *dout,
                                 float *din, int B, const int32_t *argmax,
                                 const float *mask, float *scratch,
                                 int threads) {
    (void)out, (void)argmax, (void)mask, (void)scratch;
    dense_backward(din, grads + l->weights, grads + l->biases, dout, in,
                   params + l->weights, B, (int)nn_shape_size(l->in), l->size,
                   threads);
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
    .forward = dense_layer_forward,
    .backward = dense_layer_backward,
};
