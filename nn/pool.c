/*
 * pool.c: max-pooling with a K x K window and stride K (windows do not
 * overlap). Odd sizes are floored: the last H % K rows and W % K columns
 * of each plane are never looked at, and get a zero gradient.
 *
 *   in (B,C,H,W) -> out (B,C,OH,OW), OH = H / K, OW = W / K
 *
 * argmax (B,C,OH,OW) holds, for every output, the flat index into `in`
 * (counting over all of B*C*H*W) of the value that won, so backward is a
 * scatter. On ties the first maximum in row-major order wins, as in
 * PyTorch. A NaN wins its window (the first NaN, as in PyTorch), so a
 * diverging network shows NaN downstream instead of hiding it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers.h"

/* The common 2x2 case in two passes the compiler can vectorise: first
 * the larger of each vertical pair (contiguous rows), then of each
 * horizontal pair of those. A data-dependent branch per comparison, as in
 * the general loop below, is mispredicted half the time on real
 * activations and made pooling cost as much as a convolution. The selects
 * keep the rules above: ties go to the first in row-major order, and a
 * NaN wins unless an earlier one already did. */
static int later_wins(float later, float earlier) {
    return (later > earlier) | ((later != later) & (earlier == earlier));
}

static void maxpool2_forward(float *out, int32_t *argmax, const float *in,
                             size_t p0, size_t p1, int H, int W) {
    const int OH = H / 2, OW = W / 2;
    enum { MAXW = 1024 };
    float colmax[MAXW];
    int32_t colrow[MAXW]; /* 0: the upper row won, W: the lower one */
    for (size_t pl = p0; pl < p1; pl++) {
        const size_t base = pl * H * W;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = in + base + (size_t)(2 * oh) * W, *r1 = r0 + W;
            float *o = out + (pl * OH + oh) * OW;
            for (int x0 = 0; x0 < 2 * OW; x0 += MAXW) {
                int n = 2 * OW - x0 < MAXW ? 2 * OW - x0 : MAXW;
                for (int x = 0; x < n; x++) {
                    int t = later_wins(r1[x0 + x], r0[x0 + x]);
                    colmax[x] = t ? r1[x0 + x] : r0[x0 + x];
                    colrow[x] = t ? W : 0;
                }
                for (int k = 0; k < n / 2; k++) {
                    float a = colmax[2 * k], b = colmax[2 * k + 1];
                    /* On a tie the right column wins only when its
                     * value sits in the upper row and the left one's in
                     * the lower: then it comes first in row-major order. */
                    int t = later_wins(b, a) |
                            ((b == a) & (colrow[2 * k + 1] < colrow[2 * k]));
                    o[x0 / 2 + k] = t ? b : a;
                    if (argmax)
                        argmax[(pl * OH + oh) * OW + x0 / 2 + k] =
                            (int32_t)(base + (size_t)(2 * oh) * W) +
                            (t ? x0 + 2 * k + 1 + colrow[2 * k + 1]
                               : x0 + 2 * k + colrow[2 * k]);
                }
            }
        }
    }
}

/* Planes p0..p1-1 of in (B*C planes of H x W): out, argmax as for
 * maxpool_forward, indexed from the first plane. */
static void maxpool_planes(float *out, int32_t *argmax, const float *in,
                           size_t p0, size_t p1, int H, int W, int K) {
    const int OH = H / K, OW = W / K;
    if (K == 2) {
        maxpool2_forward(out, argmax, in, p0, p1, H, W);
        return;
    }
    for (size_t pl = p0; pl < p1; pl++) {
        const size_t base = pl * H * W; /* first index of this plane in `in` */
        float *out_p = out + pl * OH * OW;
        int32_t *arg_p = argmax ? argmax + pl * OH * OW : NULL;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                size_t best_i = base + (size_t)oh * K * W + (size_t)ow * K;
                float best = in[best_i];
                for (int kh = 0; kh < K; kh++) {
                    size_t row = base + (size_t)(oh * K + kh) * W + (size_t)ow * K;
                    for (int kw = 0; kw < K; kw++) {
                        float v = in[row + kw];
                        /* strict >: ties keep the first maximum */
                        if (v > best || (isnan(v) && !isnan(best))) {
                            best = v;
                            best_i = row + kw;
                        }
                    }
                }
                out_p[oh * OW + ow] = best;
                if (arg_p) arg_p[oh * OW + ow] = (int32_t)best_i;
            }
    }
}

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                     int C, int H, int W, int K) {
    maxpool_planes(out, argmax, in, 0, (size_t)B * C, H, W, K);
}

/* Planes p0..p1-1 of din zeroed, then each dout of those planes goes to
 * its argmax. Windows do not overlap, so every din gets at most one dout;
 * += keeps that true even for argmax written by hand. With relu_out (the
 * pooling's output, when its input is a relu's), a dout goes through only
 * where that output is > 0: the relu's derivative at the winner, whose
 * value the output is. Everywhere else the relu's backward would multiply
 * a zero. */
static void maxpool_backward_planes(float *din, const float *dout,
                                    const int32_t *argmax,
                                    const float *relu_out, size_t p0,
                                    size_t p1, int H, int W, int K) {
    const size_t in_plane = (size_t)H * W, out_plane = (size_t)(H / K) * (W / K);
    memset(din + p0 * in_plane, 0, (p1 - p0) * in_plane * sizeof *din);
    if (relu_out)
        for (size_t i = p0 * out_plane; i < p1 * out_plane; i++)
            din[argmax[i]] += relu_out[i] > 0 ? dout[i] : 0.0f;
    else
        for (size_t i = p0 * out_plane; i < p1 * out_plane; i++)
            din[argmax[i]] += dout[i];
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                      int B, int C, int H, int W, int K) {
    maxpool_backward_planes(din, dout, argmax, NULL, 0, (size_t)B * C, H, W,
                            K);
}

/* The pooling layer shares out planes among threads, each plane whole:
 * every value is computed as by one thread, and a plane's argmax points
 * into that plane only, so the scatter of backward does not race. */
static void plane_range(size_t planes, int part, int parts, size_t *p0,
                        size_t *p1) {
    *p0 = planes * (size_t)part / (size_t)parts;
    *p1 = planes * (size_t)(part + 1) / (size_t)parts;
}

/* ================================================================== */
/* The max-pooling kind for the registry (layers.h)                    */
/* ================================================================== */

static int pool_parse(const char *p, nn_layer *l) {
    return layer_read_int(&p, NN_SIDE, &l->kernel) || *p ? -1 : 0;
}

static int pool_describe(const nn_layer *l, char *buf, size_t size) {
    return snprintf(buf, size, "pool%d", l->kernel);
}

static int pool_layout(nn_layer *l, const nn_layer *src, int index,
                       nn_error *err) {
    const nn_shape s = l->in;
    l->kernel = src->kernel;
    if (l->kernel < 2 || l->kernel > s.h || l->kernel > s.w)
        return nn_fail(err, "impossible dimensions: layer %d: %dx%d pooling "
                       "of a %dx%d input", index, l->kernel, l->kernel, s.h,
                       s.w);
    l->out = (nn_shape){s.c, s.h / l->kernel, s.w / l->kernel};
    return 0;
}

static void pool_layer_forward(const nn_layer *l, const float *params,
                               const float *in, float *out, int B,
                               int32_t *argmax, float *mask, nn_rng *rng,
                               float *scratch, int threads) {
    (void)params, (void)mask, (void)rng, (void)scratch;
    const size_t planes = (size_t)B * l->in.c;
    const int parts = threads > 1 && planes >= (size_t)threads ? threads : 1;
#pragma omp parallel for num_threads(parts) if (parts > 1) schedule(static)
    for (int t = 0; t < parts; t++) {
        size_t p0, p1;
        plane_range(planes, t, parts, &p0, &p1);
        maxpool_planes(out, argmax, in, p0, p1, l->in.h, l->in.w, l->kernel);
    }
}

/* Backward of the layer; relu_out: as maxpool_backward_planes's. */
static void pool_backward_shared(const nn_layer *l, const float *relu_out,
                                 const float *dout, float *din, int B,
                                 const int32_t *argmax, int threads) {
    if (!din) return;
    const size_t planes = (size_t)B * l->in.c;
    const int parts = threads > 1 && planes >= (size_t)threads ? threads : 1;
#pragma omp parallel for num_threads(parts) if (parts > 1) schedule(static)
    for (int t = 0; t < parts; t++) {
        size_t p0, p1;
        plane_range(planes, t, parts, &p0, &p1);
        maxpool_backward_planes(din, dout, argmax, relu_out, p0, p1, l->in.h,
                                l->in.w, l->kernel);
    }
}

static void pool_layer_backward(const nn_layer *l, const float *params,
                                float *grads, const float *in,
                                const float *out, const float *dout,
                                float *din, int B, const int32_t *argmax,
                                const float *mask, float *scratch,
                                int threads) {
    (void)params, (void)grads, (void)in, (void)out, (void)mask,
        (void)scratch;
    pool_backward_shared(l, NULL, dout, din, B, argmax, threads);
}

static void pool_layer_backward_relu(const nn_layer *l, const float *in,
                                     const float *out, const float *dout,
                                     float *din, int B, const int32_t *argmax,
                                     int threads) {
    (void)in;
    pool_backward_shared(l, out, dout, din, B, argmax, threads);
}

const layer_kind_desc layer_maxpool_desc = {
    .kind = NN_MAXPOOL,
    .name = "pool",
    .syntax = "poolK",
    .flags = LAYER_INIT_SEE_THROUGH | LAYER_NEEDS_ARGMAX,
    .parse = pool_parse,
    .describe = pool_describe,
    .layout = pool_layout,
    .forward = pool_layer_forward,
    .backward = pool_layer_backward,
    .backward_relu = pool_layer_backward_relu,
};
