/* activations.c: element-wise non-linearities. Backward passes use the
 * forward output, so the pre-activation never has to be kept. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "layers.h"
#include "simd.h"

/* The loops are compiled for each variant of simd.h and the best is run:
 * at the baseline (SSE2) sigmoid's polynomial ran 4 floats at a time. */
#define ACT_INLINE static inline __attribute__((always_inline))

/* No restrict: out may be in, and din may be dout (layers.h). */
ACT_INLINE void relu_forward_body(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0;
}

ACT_INLINE void relu_backward_body(float *din, const float *dout,
                                   const float *out, size_t n) {
    /* Load unconditionally, then select: a conditional load compiles to a
     * branch that is mispredicted on half the units. */
    for (size_t i = 0; i < n; i++) {
        float d = dout[i];
        din[i] = out[i] > 0 ? d : 0.0f;
    }
}

/* e^x for x <= 0, written so the compiler can vectorise it (libm's expf
 * is a call per element). x = k ln2 + r with |r| <= ln2/2, e^r by its
 * Taylor polynomial to r^7 (relative error < 2e-7), 2^k built in the
 * exponent bits. Below -87.3 the result would be denormal: it is 0.
 * k is rounded to the nearest integer by adding and subtracting 1.5*2^23
 * (the addition pushes the fraction bits out), not by floorf: floorf has
 * no SSE2 instruction, and with it the loops below stayed scalar
 * (measured: sigmoid took a quarter of the classic network's training
 * time). The sum is exact for |k| < 2^22, and the build never reassociates
 * floating point. */
ACT_INLINE float exp_nonpositive(float x0) {
    float x = x0 < -87.3f ? -87.3f : x0;
    float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145752f - k * 1.42860677e-6f; /* ln2, split */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x0 < -87.3f ? 0.0f : p * scale;
}

/* exp is only ever taken of -|x| <= 0, so it cannot overflow; for large
 * |x| the result saturates cleanly at 0 or 1. sigmoid(x) = 1/(1+e^-x) for
 * x >= 0 and e^x/(1+e^x) below, with e = e^-|x|: one division, and
 * selects rather than branches so the loop vectorises. */
ACT_INLINE void sigmoid_forward_body(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float e = exp_nonpositive(-fabsf(x));
        float r = 1.0f / (1.0f + e);
        out[i] = x >= 0 ? r : e * r;
    }
}

ACT_INLINE void sigmoid_backward_body(float *din, const float *dout,
                                      const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * out[i] * (1.0f - out[i]);
}

#define ACT_FORWARD_VARIANTS(NAME)                                             \
    NN_SIMD_VARIANTS(NAME, (float *out, const float *in, size_t n),            \
                     (out, in, n))                                             \
    void NAME(float *out, const float *in, size_t n) { NAME##_best()(out, in, n); }
#define ACT_BACKWARD_VARIANTS(NAME)                                            \
    NN_SIMD_VARIANTS(NAME,                                                     \
                     (float *din, const float *dout, const float *out,         \
                      size_t n),                                               \
                     (din, dout, out, n))                                      \
    void NAME(float *din, const float *dout, const float *out, size_t n) {     \
        NAME##_best()(din, dout, out, n);                                      \
    }
ACT_FORWARD_VARIANTS(relu_forward)
ACT_BACKWARD_VARIANTS(relu_backward)
ACT_FORWARD_VARIANTS(sigmoid_forward)
ACT_BACKWARD_VARIANTS(sigmoid_backward)

int act_variant(const char *kind, const char *variant, act_forward_fn *forward,
                act_backward_fn *backward) {
    if (strcmp(kind, "relu") == 0) {
        *forward = relu_forward_named(variant);
        *backward = relu_backward_named(variant);
    } else if (strcmp(kind, "sigmoid") == 0) {
        *forward = sigmoid_forward_named(variant);
        *backward = sigmoid_backward_named(variant);
    } else {
        return -1;
    }
    return *forward && *backward ? 0 : -1;
}

void tanh_forward(float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] = dout[i] * (1.0f - out[i] * out[i]);
}

/* ================================================================== */
/* The activation kinds for the registry (layers.h)                    */
/* ================================================================== */

/* Element-wise work is shared out in equal runs of whole vectors (16
 * floats), one per thread, once it is large enough to pay for waking the
 * threads: the CNN's activations are 1.6-3.2 M floats at batch 128, the
 * MLP's 16-32 K (sharing those too made the MLP's and the classic
 * network's training 0-7% faster, bench_train A/B, 3 runs each). Each
 * value is computed alone, so the thread count changes nothing. */
#define ACT_PARALLEL_MIN 8192

static int act_parts(size_t n, int threads) {
    return threads > 1 && n >= ACT_PARALLEL_MIN ? threads : 1;
}

/* Forward and backward of an element-wise kind through its descriptor's
 * functions: backward needs only the forward output. */
static void act_layer_forward(const nn_layer *l, const float *params,
                              const float *in, float *out, int B,
                              int32_t *argmax, float *mask, nn_rng *rng,
                              float *scratch, int threads) {
    (void)params, (void)argmax, (void)mask, (void)rng, (void)scratch;
    const act_forward_fn f = layer_kind_find(l->kind)->elementwise;
    const size_t n = (size_t)B * nn_shape_size(l->out);
    const int parts = act_parts(n, threads);
#pragma omp parallel for num_threads(parts) if (parts > 1) schedule(static)
    for (int t = 0; t < parts; t++) {
        size_t i0, i1;
        nn_share_floats(n, t, parts, &i0, &i1);
        f(out + i0, in + i0, i1 - i0);
    }
}

static int act_layout(nn_layer *l, const nn_layer *src, int index,
                      nn_error *err) {
    (void)src, (void)index, (void)err;
    l->out = l->in;
    return 0;
}

static void act_backward_shared(act_backward_fn f, float *din,
                                const float *dout, const float *out, size_t n,
                                int threads) {
    const int parts = act_parts(n, threads);
#pragma omp parallel for num_threads(parts) if (parts > 1) schedule(static)
    for (int t = 0; t < parts; t++) {
        size_t i0, i1;
        nn_share_floats(n, t, parts, &i0, &i1);
        f(din + i0, dout + i0, out + i0, i1 - i0);
    }
}

#define ACT_BACKWARD(NAME)                                                    \
    static void NAME##_layer_backward(                                        \
        const nn_layer *l, const float *params, float *grads,                 \
        const float *in, const float *out, const float *dout, float *din,     \
        int B, const int32_t *argmax, const float *mask, float *scratch,      \
        int threads) {                                                        \
        (void)params, (void)grads, (void)in, (void)argmax, (void)mask,        \
            (void)scratch;                                                    \
        if (din)                                                              \
            act_backward_shared(NAME##_backward, din, dout, out,              \
                                (size_t)B * nn_shape_size(l->out), threads);  \
    }
ACT_BACKWARD(relu)
ACT_BACKWARD(sigmoid)
ACT_BACKWARD(tanh)

const layer_kind_desc layer_relu_desc = {
    .kind = NN_RELU,
    .name = "relu",
    .syntax = "relu",
    .flags = LAYER_ACTIVATION | LAYER_HE_INIT,
    .layout = act_layout,
    .forward = act_layer_forward,
    .backward = relu_layer_backward,
    .elementwise = relu_forward,
    .derivative = relu_backward,
};

const layer_kind_desc layer_sigmoid_desc = {
    .kind = NN_SIGMOID,
    .name = "sigmoid",
    .syntax = "sigmoid",
    .flags = LAYER_ACTIVATION,
    .layout = act_layout,
    .forward = act_layer_forward,
    .backward = sigmoid_layer_backward,
    .elementwise = sigmoid_forward,
    .derivative = sigmoid_backward,
};

const layer_kind_desc layer_tanh_desc = {
    .kind = NN_TANH,
    .name = "tanh",
    .syntax = "tanh",
    .flags = LAYER_ACTIVATION,
    .layout = act_layout,
    .forward = act_layer_forward,
    .backward = tanh_layer_backward,
    .elementwise = tanh_forward,
    .derivative = tanh_backward,
};
