/* dense.c: the fully connected layer, out = in W^T + b, as GEMMs. */
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
