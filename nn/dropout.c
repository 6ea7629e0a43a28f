/*
 * dropout.c: inverted dropout. While training, each value is dropped with
 * probability `rate` and the survivors are scaled by 1/(1-rate), so the
 * expected output equals the input and inference needs no rescaling (the
 * network simply skips this layer).
 *
 *   in (n) -> out (n), mask (n) in {0, 1/(1-rate)}
 *
 * One nn_rng_uniform draw per value, in index order, so a seed fixes the
 * mask. rate <= 0 draws nothing and gives a mask of ones: a "dropout0"
 * layer leaves both the values and the random stream untouched.
 */
#include "layers.h"

void dropout_forward(float *out, float *mask, const float *in, size_t n,
                     float rate, nn_rng *rng) {
    if (rate <= 0.0f) {
        for (size_t i = 0; i < n; i++) {
            mask[i] = 1.0f;
            out[i] = in[i];
        }
        return;
    }
    const float keep_scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) {
        mask[i] = nn_rng_uniform(rng) < rate ? 0.0f : keep_scale;
        out[i] = in[i] * mask[i];
    }
}

void dropout_backward(float *din, const float *dout, const float *mask,
                      size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * mask[i];
}
