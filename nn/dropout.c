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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ================================================================== */
/* The dropout kind for the registry (layers.h)                        */
/* ================================================================== */

static int dropout_parse(const char *p, nn_layer *l) {
    char *end;
    l->rate = strtof(p, &end);
    return (end == p || *end) ? -1 : 0;
}

static int dropout_describe(const nn_layer *l, char *buf, size_t size) {
    return snprintf(buf, size, "dropout%g", l->rate);
}

static int dropout_layout(nn_layer *l, const nn_layer *src, int index,
                          nn_error *err) {
    l->rate = src->rate;
    if (!(l->rate >= 0.0f && l->rate < 1.0f))
        return nn_fail(err, "impossible dimensions: layer %d: dropout rate "
                       "must be in [0, 1)", index);
    l->out = l->in;
    return 0;
}

static void dropout_layer_forward(const nn_layer *l, const float *params,
                                  const float *in, float *out, int B,
                                  int32_t *argmax, float *mask, nn_rng *rng,
                                  float *scratch, int threads) {
    (void)params, (void)argmax, (void)scratch, (void)threads;
    size_t n = (size_t)B * nn_shape_size(l->out);
    if (rng && l->rate > 0) {
        dropout_forward(out, mask, in, n, l->rate, rng);
    } else {
        /* Inference: identity. A mask still set to ones lets the backward
         * pass run (the gradient checks use this). */
        memcpy(out, in, n * sizeof(float));
        if (mask)
            for (size_t k = 0; k < n; k++) mask[k] = 1.0f;
    }
}

static void dropout_layer_backward(const nn_layer *l, const float *params,
                                   float *grads, const float *in,
                                   const float *out, const float *dout,
                                   float *din, int B, const int32_t *argmax,
                                   const float *mask, float *scratch,
                                   int threads) {
    (void)params, (void)grads, (void)in, (void)out, (void)argmax,
        (void)scratch, (void)threads;
    size_t n = (size_t)B * nn_shape_size(l->out);
    if (din) {
        if (l->rate > 0) dropout_backward(din, dout, mask, n);
        else memcpy(din, dout, n * sizeof(float));
    }
}

const layer_kind_desc layer_dropout_desc = {
    .kind = NN_DROPOUT,
    .name = "dropout",
    .syntax = "dropoutP",
    .flags = LAYER_INIT_SEE_THROUGH | LAYER_NEEDS_MASK,
    .parse = dropout_parse,
    .describe = dropout_describe,
    .layout = dropout_layout,
    .forward = dropout_layer_forward,
    .backward = dropout_layer_backward,
};
