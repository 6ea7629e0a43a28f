/* activations.c: element-wise non-linearities. Backward passes use the
 * forward output, so the pre-activation never has to be kept. */
#include <math.h>

#include "layers.h"

void relu_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0;
}

void relu_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = out[i] > 0 ? dout[i] : 0;
}

/* exp is only ever taken of -|x| <= 0, so it cannot overflow; for large
 * |x| the result saturates cleanly at 0 or 1. */
void sigmoid_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float e = expf(-fabsf(x));
        out[i] = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void sigmoid_backward(float *din, const float *dout, const float *out,
                      size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * out[i] * (1.0f - out[i]);
}

void tanh_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * (1.0f - out[i] * out[i]);
}
