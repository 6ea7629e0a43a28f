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
#include <string.h>

#include "layers.h"

void maxpool_forward(float *out, int32_t *argmax, const float *in, int B,
                     int C, int H, int W, int K) {
    const int OH = H / K, OW = W / K;
    const size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
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

void maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                      int B, int C, int H, int W, int K) {
    const size_t n_in = (size_t)B * C * H * W;
    const size_t n_out = (size_t)B * C * (H / K) * (W / K);
    memset(din, 0, n_in * sizeof *din);
    /* Windows do not overlap, so every din gets at most one dout; += keeps
     * that true even for argmax written by hand. */
    for (size_t i = 0; i < n_out; i++) din[argmax[i]] += dout[i];
}
