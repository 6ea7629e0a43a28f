/*
 * conv.c: 2-D convolution, stride 1, zero padding, as torch.nn.Conv2d
 * (cross-correlation: the kernel is not flipped).
 *
 *   in (B,C,H,W), W (OC,C,K,K), b (OC) -> out (B,OC,OH,OW)
 *   OH = H + 2*pad - K + 1, OW = W + 2*pad - K + 1
 *
 * Method: im2col + GEMM. For one sample, col (C*K*K, OH*OW) holds in each
 * row (c,kh,kw) the input pixels that kernel tap meets at every output
 * position, so that
 *   out_b (OC, OH*OW) = W (OC, C*K*K) * col (C*K*K, OH*OW) + b
 *   dW   (OC, C*K*K) += dout_b (OC, OH*OW) * col^T
 *   dcol (C*K*K, OH*OW) = W^T * dout_b, then col2im adds dcol into din_b.
 *
 * Where conv_winograd_applies() (5x5 kernels with enough channels, such
 * as the default CNN's conv2), both passes go to Winograd's F(4x4, 5x5)
 * instead: conv_winograd.c's inference kernel for the forward pass (with
 * the activation when one is asked for, no pooling),
 * conv_winograd_grad.c for dW and din. They
 * equal im2col's up to a few 1e-6 of their scale (dW: about 1e-5), with
 * about a fifth of the multiplies; there dW differs between thread
 * counts by up to that error too, not only in the last bits. db is
 * summed here either way.
 *
 * Training runs an im2col convolution followed by a relu and a 2x2
 * pooling as one (conv_forward_pool, conv_backward_pool): each sample's
 * map (OC, OH*OW) lives in its chunk's scratch, in L2, between the
 * convolution and the pooling, and in backward between the pooling's
 * scatter and the GEMMs; the batch's map (12.8 MB for the default CNN's
 * first layer at batch 128) is never written or read.
 *
 * Threads. The batch is cut into `chunks` contiguous runs of samples; each
 * chunk owns one slice of scratch (its col buffer and its partial dW) and
 * calls nn_sgemm with one thread. When there are fewer samples than
 * threads (inference on one image), there is one chunk and nn_sgemm gets
 * all the threads instead. Chunks are fixed by (B, threads) alone, never by
 * how many threads OpenMP actually hands out, so:
 *   - out and din are identical for every thread count (each sample is
 *     computed alone, and nn_sgemm does not depend on its thread count);
 *   - db is identical for every thread count (summed per channel in
 *     sample order, in double);
 *   - dW is identical run to run for a given thread count (per-chunk
 *     partials added in chunk order), but differs in the last bits between
 *     thread counts, since the chunking changes the order of the sum.
 */
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers.h"

/* Each scratch slice is rounded up to 16 floats (64 bytes), so slices of
 * different threads never share a cache line when scratch is aligned. */
static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t col_floats(int C, int H, int W, int K, int pad) {
    size_t oh = (size_t)(H + 2 * pad - K + 1), ow = (size_t)(W + 2 * pad - K + 1);
    return round_up16((size_t)C * K * K * oh * ow);
}

/* A chunk's slice of scratch for im2col: col (C*K*K, OH*OW), reused as
 * dcol in backward, then a partial dW (OC, C*K*K). */
static size_t slice_floats(int C, int H, int W, int OC, int K, int pad) {
    return col_floats(C, H, W, K, pad) + round_up16((size_t)OC * C * K * K);
}

int conv_chunk_count(int B, int threads) {
    if (threads < 1) threads = 1;
    return B >= threads ? threads : 1;
}

/* Enough samples that the Winograd forward kernel's scratch is its
 * largest: it holds at most a few tens of samples whatever the batch. */
#define WINOGRAD_ANY_BATCH (1 << 20)

size_t conv_scratch_floats(int C, int H, int W, int OC, int K, int pad,
                           int threads) {
    if (threads < 1) threads = 1;
    if (conv_winograd_applies(C, H, W, OC, K, pad)) {
        size_t f = conv_winograd_scratch_floats(WINOGRAD_ANY_BATCH, C, H, W,
                                                OC, pad, false, false, threads);
        size_t g = conv_winograd_grad_scratch_floats(C, H, W, OC, pad, threads);
        return f > g ? f : g;
    }
    /* a slice per chunk, at most `threads` chunks */
    return (size_t)threads * slice_floats(C, H, W, OC, K, pad);
}

/* Output columns ow whose input column ow+kw-pad lies inside [0, W), for
 * kernel column kw: ow in [*lo, *hi), an empty range when the kernel is
 * wider than the padded image allows (then lo == hi). */
static void valid_cols(int W, int pad, int OW, int kw, int *lo, int *hi) {
    int l = pad - kw > 0 ? pad - kw : 0;
    int h = W + pad - kw < OW ? W + pad - kw : OW;
    if (l > OW) l = OW;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* A 1x1 kernel without padding needs no im2col: col is the input itself. */
static bool col_is_input(int K, int pad) { return K == 1 && pad == 0; }

/* in_b (C,H,W) -> col (C*K*K, OH*OW), zeros where the kernel hangs over
 * the border. Rows are filled by contiguous runs, so the inner loop is a
 * memcpy of the part of an output row that lands inside the image. */
static void im2col(float *col, const float *in_b, int C, int H, int W, int K,
                   int pad, int OH, int OW) {
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *row = col + ((size_t)(c * K + kh) * K + kw) * OH * OW;
                int lo, hi;
                valid_cols(W, pad, OW, kw, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    float *dst = row + (size_t)oh * OW;
                    int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof *dst);
                        continue;
                    }
                    const float *src = in_b + ((size_t)c * H + ih) * W;
                    /* Most runs have no zeros on one side or both; a call
                     * of length 0 still costs a call (memset and memcpy
                     * were 9% of CNN training). */
                    if (lo > 0) memset(dst, 0, (size_t)lo * sizeof *dst);
                    memcpy(dst + lo, src + lo + kw - pad,
                           (size_t)(hi - lo) * sizeof *dst);
                    if (hi < OW)
                        memset(dst + hi, 0, (size_t)(OW - hi) * sizeof *dst);
                }
            }
}

/* The adjoint of im2col: din_b (C,H,W) = sum over taps of dcol, the taps
 * that fell on padding dropped. din_b is overwritten. */
static void col2im(float *din_b, const float *dcol, int C, int H, int W, int K,
                   int pad, int OH, int OW) {
    memset(din_b, 0, (size_t)C * H * W * sizeof *din_b);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                const float *row =
                    dcol + ((size_t)(c * K + kh) * K + kw) * OH * OW;
                int lo, hi;
                valid_cols(W, pad, OW, kw, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh + kh - pad;
                    if (ih < 0 || ih >= H) continue;
                    const float *src = row + (size_t)oh * OW;
                    float *dst = din_b + ((size_t)c * H + ih) * W;
                    for (int ow = lo; ow < hi; ow++) dst[ow + kw - pad] += src[ow];
                }
            }
}

/* One sample by im2col: out_b (OC, OH*OW) = W * col(in_b) + b, then act;
 * col: the chunk's buffer. */
static void sample_forward(float *out_b, const float *in_b, const float *W,
                           const float *b, float *col, int C, int H, int Wd,
                           int OC, int K, int pad, act_forward_fn act,
                           int gemm_threads) {
    const int OH = H + 2 * pad - K + 1, OW = Wd + 2 * pad - K + 1;
    const int CKK = C * K * K, P = OH * OW;
    const float *src = in_b;
    if (!col_is_input(K, pad)) {
        im2col(col, in_b, C, H, Wd, K, pad, OH, OW);
        src = col;
    }
    /* out_b starts as the bias, then the GEMM adds W * col. */
    for (int oc = 0; oc < OC; oc++) {
        float *row = out_b + (size_t)oc * P;
        for (int p = 0; p < P; p++) row[p] = b[oc];
    }
    nn_sgemm(false, false, OC, P, CKK, 1.0f, W, CKK, src, P, 1.0f, out_b, P,
             gemm_threads);
    if (act) act(out_b, out_b, (size_t)OC * P);
}

/* Per chunk of the pooled fusion: the slice, then the sample's map (OC,
 * OH*OW) at slice_floats(): its output in forward, its gradient in
 * backward. */
static size_t pool_slice_floats(int C, int H, int W, int OC, int K, int pad) {
    const size_t P = (size_t)(H + 2 * pad - K + 1) * (size_t)(W + 2 * pad - K + 1);
    return slice_floats(C, H, W, OC, K, pad) + round_up16((size_t)OC * P);
}

/* The forward by im2col, each chunk of samples with its slice of scratch
 * (`stride` floats apart): into out, or with pooled (and argmax) into
 * the chunk's map and from there through the 2x2 pooling. */
static void im2col_forward(float *out, float *pooled, int32_t *argmax,
                           const float *in, const float *W, const float *b,
                           int B, int C, int H, int Wd, int OC, int K, int pad,
                           act_forward_fn act, float *scratch, size_t stride,
                           int threads) {
    const int OH = H + 2 * pad - K + 1, OW = Wd + 2 * pad - K + 1;
    const size_t in_size = (size_t)C * H * Wd, out_size = (size_t)OC * OH * OW;
    const size_t pooled_size = (size_t)OC * (OH / 2) * (OW / 2);
    const size_t at_map = slice_floats(C, H, Wd, OC, K, pad);
    const int chunks = conv_chunk_count(B, threads);
    const int gemm_threads = chunks == 1 && threads > 1 ? threads : 1;

#pragma omp parallel num_threads(chunks) if (chunks > 1)
    {
#ifdef _OPENMP
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        int tid = 0, team = 1;
#endif
        for (int ch = tid; ch < chunks; ch += team) {
            float *col = scratch + (size_t)ch * stride;
            int b0 = (int)((long)B * ch / chunks);
            int b1 = (int)((long)B * (ch + 1) / chunks);
            for (int s = b0; s < b1; s++) {
                float *map = pooled ? col + at_map : out + (size_t)s * out_size;
                sample_forward(map, in + (size_t)s * in_size, W, b, col, C, H,
                               Wd, OC, K, pad, act, gemm_threads);
                if (pooled)
                    maxpool2_forward_sample(pooled + (size_t)s * pooled_size,
                                            argmax + (size_t)s * pooled_size, map,
                                            OC, OH, OW, (int32_t)((size_t)s * out_size));
            }
        }
    }
}

void conv_forward(float *out, const float *in, const float *W, const float *b,
                  int B, int C, int H, int Wd, int OC, int K, int pad,
                  act_forward_fn act, float *scratch, int threads) {
    if (conv_winograd_applies(C, H, Wd, OC, K, pad)) {
        conv_winograd_variant(NULL, out, in, W, b, NULL, B, C, H, Wd, OC, pad,
                              act, false, scratch, threads);
        return;
    }
    im2col_forward(out, NULL, NULL, in, W, b, B, C, H, Wd, OC, K, pad, act, scratch,
                   slice_floats(C, H, Wd, OC, K, pad), threads);
}

void conv_forward_pool(float *pooled, int32_t *argmax, const float *in,
                       const float *W, const float *b, int B, int C, int H,
                       int Wd, int OC, int K, int pad, act_forward_fn act,
                       float *scratch, int threads) {
    im2col_forward(NULL, pooled, argmax, in, W, b, B, C, H, Wd, OC, K, pad, act,
                   scratch, pool_slice_floats(C, H, Wd, OC, K, pad), threads);
}

/* Independent partial sums for db: wide enough for one AVX-512 add. */
#define DB_LANES 16

/* db's partial sums of one row of dout (P values) in DB_LANES float lanes
 * (one vector add per step); the rows' lanes are then added in double in
 * sample order (B*OH*OW terms in all, about 10^5 for MNIST at batch 128),
 * an order that depends on nothing but the shapes. */
static void db_lanes(const float *row, int P, float lane[DB_LANES]) {
    for (int j = 0; j < DB_LANES; j++) lane[j] = 0;
    int p = 0;
    for (; p + DB_LANES <= P; p += DB_LANES)
        for (int j = 0; j < DB_LANES; j++) lane[j] += row[p + j];
    for (; p < P; p++) lane[0] += row[p];
}

/* Where the pooled fusion's backward gets each sample's dout: made in the
 * chunk's buffer from the pooling's gradient, never read from a
 * batch-sized map. */
typedef struct {
    const float *dpooled, *pooled; /* (B, OC, OH/2, OW/2) */
    const int32_t *argmax;         /* as the pooling's */
    float *lanes;                  /* (B, OC, DB_LANES): db's, per sample */
} pooled_grad;

/* dW and din by im2col, each chunk of samples with its slice of scratch
 * (`stride` floats apart); each sample's dout from dout, or from pg. */
static void im2col_backward(float *din, float *dW, const float *dout,
                            const pooled_grad *pg, const float *in,
                            const float *W, int B, int C, int H, int Wd,
                            int OC, int K, int pad, float *scratch,
                            size_t stride, int threads) {
    const int OH = H + 2 * pad - K + 1, OW = Wd + 2 * pad - K + 1;
    const int CKK = C * K * K, P = OH * OW;
    const size_t in_size = (size_t)C * H * Wd, out_size = (size_t)OC * P;
    const size_t pooled_size = (size_t)OC * (OH / 2) * (OW / 2);
    const size_t colf = col_floats(C, H, Wd, K, pad);
    const size_t at_map = slice_floats(C, H, Wd, OC, K, pad);
    const size_t n_dw = (size_t)OC * CKK;
    const int chunks = conv_chunk_count(B, threads);
    const int gemm_threads = chunks == 1 && threads > 1 ? threads : 1;
    const int team_max = threads > 1 ? threads : 1;
    /* dW's product transposed, (CKK, OC) = col * dout_b^T, when OC is
     * small: nn_sgemm runs it faster with the few output channels as its
     * columns. Measured on one core, depth P = 784 or 196, (OC, CKK) ->
     * (CKK, OC): 32 x 25 (the default CNN's first layer) 26 -> 60
     * GFLOP/s, 16 x 144 39 -> 74, 16 x 9 24 -> 27, 8 x 27 8 -> 19; at 64
     * x 800 it was 83 -> 79, so larger OC keep (OC, CKK). */
    const bool dw_t = OC <= 32;

#pragma omp parallel num_threads(chunks) if (chunks > 1)
    {
#ifdef _OPENMP
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        int tid = 0, team = 1;
#endif
        for (int ch = tid; ch < chunks; ch += team) {
            float *col = scratch + (size_t)ch * stride;
            /* Chunk 0 sums straight into dW (unless transposed), the others
             * into their slice. */
            float *part = ch == 0 && !dw_t ? dW : col + colf;
            float *map = col + at_map; /* pg's dout_b */
            int b0 = (int)((long)B * ch / chunks);
            int b1 = (int)((long)B * (ch + 1) / chunks);
            if (b0 == b1) memset(part, 0, n_dw * sizeof *part);
            for (int s = b0; s < b1; s++) {
                const float *in_b = in + (size_t)s * in_size;
                const float *dout_b = dout ? dout + (size_t)s * out_size : map;
                if (pg) {
                    const size_t at = (size_t)s * pooled_size;
                    maxpool2_backward_relu_sample(map, pg->dpooled + at, pg->argmax + at,
                                                 pg->pooled + at, OC, OH, OW,
                                                 (int32_t)((size_t)s * out_size));
                    for (int oc = 0; oc < OC; oc++)
                        db_lanes(map + (size_t)oc * P, P,
                                 pg->lanes + ((size_t)s * OC + oc) * DB_LANES);
                }
                const float *src = in_b;
                if (!col_is_input(K, pad)) {
                    im2col(col, in_b, C, H, Wd, K, pad, OH, OW);
                    src = col;
                }
                /* part (OC, CKK) (+)= dout_b (OC, P) * col^T (P, CKK),
                 * or its transpose (CKK, OC) = col * dout_b^T */
                if (dw_t)
                    nn_sgemm(false, true, CKK, OC, P, 1.0f, src, P, dout_b, P,
                             s == b0 ? 0.0f : 1.0f, part, OC, gemm_threads);
                else
                    nn_sgemm(false, true, OC, CKK, P, 1.0f, dout_b, P, src, P,
                             s == b0 ? 0.0f : 1.0f, part, CKK, gemm_threads);
                if (!din) continue;
                float *din_b = din + (size_t)s * in_size;
                /* dcol (CKK, P) = W^T (CKK, OC) * dout_b (OC, P); col is
                 * free again, so dcol reuses it. */
                if (col_is_input(K, pad)) {
                    nn_sgemm(true, false, CKK, P, OC, 1.0f, W, CKK, dout_b, P,
                             0.0f, din_b, P, gemm_threads);
                } else {
                    nn_sgemm(true, false, CKK, P, OC, 1.0f, W, CKK, dout_b, P,
                             0.0f, col, P, gemm_threads);
                    col2im(din_b, col, C, H, Wd, K, pad, OH, OW);
                }
            }
        }
    }

    /* dW = part_0 + part_1 + ... in chunk order, whatever the team size;
     * transposed partials are read across. */
    if (dw_t) {
#pragma omp parallel for num_threads(team_max) schedule(static)
        for (size_t i = 0; i < n_dw; i++) {
            const size_t at = i % CKK * OC + i / CKK;
            float sum = scratch[colf + at];
            for (int ch = 1; ch < chunks; ch++)
                sum += scratch[(size_t)ch * stride + colf + at];
            dW[i] = sum;
        }
    } else if (chunks > 1) {
#pragma omp parallel for num_threads(team_max) schedule(static)
        for (size_t i = 0; i < n_dw; i++) {
            float sum = dW[i];
            for (int ch = 1; ch < chunks; ch++)
                sum += scratch[(size_t)ch * stride + colf + i];
            dW[i] = sum;
        }
    }
}

void conv_backward(float *din, float *dW, float *db, const float *dout,
                   const float *in, const float *W, int B, int C, int H,
                   int Wd, int OC, int K, int pad, float *scratch,
                   int threads) {
    const int OH = H + 2 * pad - K + 1, OW = Wd + 2 * pad - K + 1;
    const int P = OH * OW;
    const size_t out_size = (size_t)OC * P;
    const int team_max = threads > 1 ? threads : 1;

#pragma omp parallel for num_threads(team_max) if (team_max > 1 && B > 1) \
    schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        double sum = 0;
        for (int s = 0; s < B; s++) {
            float lane[DB_LANES];
            db_lanes(dout + (size_t)s * out_size + (size_t)oc * P, P, lane);
            for (int j = 0; j < DB_LANES; j++) sum += lane[j];
        }
        db[oc] = (float)sum;
    }

    if (conv_winograd_applies(C, H, Wd, OC, K, pad)) {
        conv_winograd_backward(din, dW, dout, in, W, B, C, H, Wd, OC, pad,
                               scratch, threads);
        return;
    }
    im2col_backward(din, dW, dout, NULL, in, W, B, C, H, Wd, OC, K, pad, scratch,
                    slice_floats(C, H, Wd, OC, K, pad), threads);
}

void conv_backward_pool(float *din, float *dW, float *db, const float *dpooled,
                        const float *pooled, const int32_t *argmax,
                        const float *in, const float *W, int B, int C, int H,
                        int Wd, int OC, int K, int pad, float *scratch,
                        int threads) {
    const size_t stride = pool_slice_floats(C, H, Wd, OC, K, pad);
    const int chunks = conv_chunk_count(B, threads);
    pooled_grad pg = {dpooled, pooled, argmax, scratch + (size_t)chunks * stride};
    im2col_backward(din, dW, NULL, &pg, in, W, B, C, H, Wd, OC, K, pad, scratch,
                    stride, threads);
    /* db as conv_backward sums it, from the same lanes */
    for (int oc = 0; oc < OC; oc++) {
        double sum = 0;
        for (int s = 0; s < B; s++)
            for (int j = 0; j < DB_LANES; j++)
                sum += pg.lanes[((size_t)s * OC + oc) * DB_LANES + j];
        db[oc] = (float)sum;
    }
}

size_t conv_pool_scratch_floats(int B, int C, int H, int W, int OC, int K,
                                int pad, int threads) {
    if (threads < 1) threads = 1;
    return (size_t)threads * pool_slice_floats(C, H, W, OC, K, pad) +
           round_up16((size_t)B * OC * DB_LANES);
}

/* ================================================================== */
/* The convolution kind for the registry (layers.h)                    */
/* ================================================================== */

#define MAX_CHANNELS 4096
#define MAX_KERNEL 7

/* "5x32", "5x32:valid" or "5x32:same" (the default for odd kernels). */
static int conv_parse(const char *p, nn_layer *l) {
    if (layer_read_int(&p, MAX_KERNEL, &l->kernel) || *p++ != 'x' ||
        layer_read_int(&p, MAX_CHANNELS, &l->size))
        return -1;
    l->pad = l->kernel / 2; /* "same" for odd kernels */
    if (*p == ':') {
        p++;
        if (strcmp(p, "valid") == 0) l->pad = 0;
        else if (strcmp(p, "same") != 0) return -1;
        p += strlen(p);
    }
    return *p ? -1 : 0;
}

static int conv_describe(const nn_layer *l, char *buf, size_t size) {
    return snprintf(buf, size, "conv%dx%d%s", l->kernel, l->size,
                    l->pad == 0 && l->kernel > 1 ? ":valid"
                    : l->pad == l->kernel / 2   ? ""
                                                : ":custom");
}

static int conv_layout(nn_layer *l, const nn_layer *src, int index,
                       nn_error *err) {
    const nn_shape s = l->in;
    l->size = src->size;
    l->kernel = src->kernel;
    l->pad = src->pad;
    if (l->size < 1 || l->size > MAX_CHANNELS)
        return layer_bad_size(l, src->size, index, err);
    if (l->kernel < 1 || l->kernel > MAX_KERNEL)
        return nn_fail(err, "impossible dimensions: layer %d: kernel %d "
                       "(1 to %d allowed)", index, l->kernel, MAX_KERNEL);
    if (l->pad < 0 || l->pad >= l->kernel)
        return nn_fail(err, "impossible dimensions: layer %d: padding %d "
                       "with kernel %d", index, l->pad, l->kernel);
    int oh = s.h + 2 * l->pad - l->kernel + 1;
    int ow = s.w + 2 * l->pad - l->kernel + 1;
    if (oh < 1 || ow < 1)
        return nn_fail(err, "impossible dimensions: layer %d: a %dx%d kernel "
                       "does not fit a %dx%d input", index, l->kernel,
                       l->kernel, s.h, s.w);
    l->out = (nn_shape){l->size, oh, ow};
    l->n_weights = (size_t)l->size * s.c * l->kernel * l->kernel;
    l->n_biases = (size_t)l->size;
    return 0;
}

static void conv_fans(const nn_layer *l, size_t *fan_in, size_t *fan_out) {
    *fan_in = (size_t)l->in.c * l->kernel * l->kernel;
    *fan_out = (size_t)l->size * l->kernel * l->kernel;
}

static size_t conv_layer_scratch(const nn_layer *l, int B, int threads) {
    size_t f = conv_scratch_floats(l->in.c, l->in.h, l->in.w, l->size,
                                   l->kernel, l->pad, threads);
    if (conv_winograd_applies(l->in.c, l->in.h, l->in.w, l->size, l->kernel,
                              l->pad))
        return f;
    size_t g = conv_pool_scratch_floats(B, l->in.c, l->in.h, l->in.w, l->size,
                                        l->kernel, l->pad, threads);
    return f > g ? f : g;
}

static void conv_layer_forward_act(const nn_layer *l, const float *params,
                                   const float *in, float *out, int B,
                                   act_forward_fn act, float *scratch,
                                   int threads) {
    conv_forward(out, in, params + l->weights, params + l->biases, B, l->in.c,
                 l->in.h, l->in.w, l->size, l->kernel, l->pad, act, scratch,
                 threads);
}

static void conv_layer_forward(const nn_layer *l, const float *params,
                               const float *in, float *out, int B,
                               int32_t *argmax, float *mask, nn_rng *rng,
                               float *scratch, int threads) {
    (void)argmax, (void)mask, (void)rng;
    conv_layer_forward_act(l, params, in, out, B, NULL, scratch, threads);
}

static void conv_layer_backward(const nn_layer *l, const float *params,
                                float *grads, const float *in,
                                const float *out, const float *dout,
                                float *din, int B, const int32_t *argmax,
                                const float *mask, float *scratch,
                                int threads) {
    (void)out, (void)argmax, (void)mask;
    conv_backward(din, grads + l->weights, grads + l->biases, dout, in,
                  params + l->weights, B, l->in.c, l->in.h, l->in.w, l->size,
                  l->kernel, l->pad, scratch, threads);
}

/* Training's pooled fusion: an im2col convolution (Winograd needs each
 * sample's whole gradient map from memory anyway), then a relu, then a
 * 2x2 pooling. */
static bool conv_layer_pool_fused(const nn_net *net, int i) {
    const nn_layer *l = &net->layers[i];
    return i + 2 < net->n_layers && net->layers[i + 1].kind == NN_RELU &&
           net->layers[i + 2].kind == NN_MAXPOOL &&
           net->layers[i + 2].kernel == 2 &&
           !conv_winograd_applies(l->in.c, l->in.h, l->in.w, l->size,
                                  l->kernel, l->pad);
}

static void conv_layer_forward_pool(const nn_layer *l, const float *params,
                                    const float *in, float *pooled,
                                    int32_t *argmax, int B, act_forward_fn act,
                                    float *scratch, int threads) {
    conv_forward_pool(pooled, argmax, in, params + l->weights,
                      params + l->biases, B, l->in.c, l->in.h, l->in.w,
                      l->size, l->kernel, l->pad, act, scratch, threads);
}

static void conv_layer_backward_pool(const nn_layer *l, const float *params,
                                     float *grads, const float *in,
                                     const float *pooled, const float *dpooled,
                                     float *din, int B, const int32_t *argmax,
                                     float *scratch, int threads) {
    conv_backward_pool(din, grads + l->weights, grads + l->biases, dpooled,
                       pooled, argmax, in, params + l->weights, B, l->in.c,
                       l->in.h, l->in.w, l->size, l->kernel, l->pad, scratch,
                       threads);
}

/* How many layers from i on the inference kernel runs: the convolution,
 * the activation after it if any, then a 2x2 pooling if any. */
static int conv_fused(const nn_net *net, int i, act_forward_fn *act,
                      bool *pool) {
    int n = 1;
    *act = i + 1 < net->n_layers ? layer_activation_fn(&net->layers[i + 1])
                                 : NULL;
    n += *act != NULL;
    *pool = i + n < net->n_layers && net->layers[i + n].kind == NN_MAXPOOL &&
            net->layers[i + n].kernel == 2;
    return n + *pool;
}

static int conv_layer_infer_span(const nn_net *net, int i) {
    act_forward_fn act;
    bool pool;
    return conv_fused(net, i, &act, &pool);
}

static size_t conv_layer_infer_scratch(const nn_net *net, int i, int B,
                                       int threads) {
    const nn_layer *l = &net->layers[i];
    act_forward_fn act;
    bool pool;
    conv_fused(net, i, &act, &pool);
    return conv_infer_scratch_floats(B, l->in.c, l->in.h, l->in.w, l->size,
                                     l->kernel, l->pad, pool,
                                     net->prepared[i] != NULL, threads);
}

/* The Winograd transform of the filters, where conv_infer takes that
 * path. */
static int conv_layer_infer_prepare(const nn_net *net, int i, float **out) {
    const nn_layer *l = &net->layers[i];
    *out = NULL;
    if (!conv_winograd_applies(l->in.c, l->in.h, l->in.w, l->size, l->kernel,
                               l->pad))
        return 0;
    *out = conv_winograd_weights_create(NULL, net->params + l->weights,
                                        l->in.c, l->size);
    return *out ? 0 : -1;
}

static int conv_layer_infer(const nn_net *net, int i, const float *in,
                            float *out, int B, float *scratch, int threads) {
    const nn_layer *l = &net->layers[i];
    act_forward_fn act;
    bool pool;
    int n = conv_fused(net, i, &act, &pool);
    conv_infer(out, in, net->params + l->weights, net->params + l->biases,
               net->prepared[i], B, l->in.c, l->in.h, l->in.w, l->size,
               l->kernel, l->pad, act, pool, scratch, threads);
    return n;
}

const layer_kind_desc layer_conv_desc = {
    .kind = NN_CONV,
    .name = "conv",
    .syntax = "convKxC",
    .flags = LAYER_WEIGHTED,
    .parse = conv_parse,
    .describe = conv_describe,
    .layout = conv_layout,
    .fans = conv_fans,
    .scratch_floats = conv_layer_scratch,
    .forward = conv_layer_forward,
    .forward_act = conv_layer_forward_act,
    .backward = conv_layer_backward,
    .pool_fused = conv_layer_pool_fused,
    .forward_pool = conv_layer_forward_pool,
    .backward_pool = conv_layer_backward_pool,
    .infer = conv_layer_infer,
    .infer_prepare = conv_layer_infer_prepare,
    .infer_scratch_floats = conv_layer_infer_scratch,
    .infer_span = conv_layer_infer_span,
};
