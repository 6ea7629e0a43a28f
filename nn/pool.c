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
#include "simd.h"

#ifdef NN_SIMD_X86
#include <immintrin.h>
#endif

/* The common 2x2 case. Each window is folded in row-major order (upper
 * left, upper right, lower left, lower right), a later value taking over
 * when later_wins: so ties go to the first in row-major order and the
 * first NaN wins, the order of conv_infer.c's pooled epilogue. The fold
 * is selects, not branches (a data-dependent branch is mispredicted half
 * the time on real activations), VL windows at a time in vectors: the
 * even and odd columns of 2*VL inputs by two shuffles, then three compares
 * and selects of values and of argmax offsets. Compiled for AVX-512 (VL
 * 16), AVX2 (8) and plain x86-64 (scalar), picked at run time as nn/'s
 * other kernels. Training pools 4.8 M floats a batch of the default CNN,
 * most of them out of cache; the previous loop, which GCC left scalar,
 * was 5.6% of a training step. */
static inline int later_wins(float later, float earlier) {
    return (later > earlier) | ((later != later) & (earlier == earlier));
}

/* The OW windows of one row, plain: input rows r0 and r1 = r0 + W, whose
 * first element has the flat index `first`. */
static void pool2_row_generic(const float *r0, const float *r1, float *o,
                              int32_t *arg, int32_t first, int W, int OW) {
    for (int k = 0; k < OW; k++) {
        const float v[4] = {r0[2 * k], r0[2 * k + 1], r1[2 * k], r1[2 * k + 1]};
        const int32_t off[4] = {0, 1, W, W + 1};
        float best = v[0];
        int32_t at = 0;
        for (int q = 1; q < 4; q++)
            if (later_wins(v[q], best)) best = v[q], at = off[q];
        o[k] = best;
        if (arg) arg[k] = first + 2 * k + at;
    }
}

#ifdef NN_SIMD_X86
typedef int32_t v16i __attribute__((vector_size(64)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define POOL_SHUF __builtin_shufflevector
/* The even and odd lanes of x and y, read as one row of 2*VL floats. */
#define POOL_EVEN16(x, y) POOL_SHUF(x, y, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define POOL_ODD16(x, y) POOL_SHUF(x, y, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define POOL_EVEN8(x, y) POOL_SHUF(x, y, 0, 2, 4, 6, 8, 10, 12, 14)
#define POOL_ODD8(x, y) POOL_SHUF(x, y, 1, 3, 5, 7, 9, 11, 13, 15)

/* VL windows of the rows' 2*VL inputs (x0 x1: upper row, y0 y1: lower),
 * the first window's flat index first2k: into *best and *idx. */
#define POOL2_VECTOR_ROW(NAME, TARGET, VEC, VECI, VL, EVEN, ODD, TAIL)         \
    TARGET static inline void NAME##_windows(VEC x0, VEC x1, VEC y0, VEC y1,   \
                                             int32_t first2k, int W,          \
                                             VEC *best_out, VECI *idx_out) {  \
        const VEC v[4] = {EVEN(x0, x1), ODD(x0, x1), EVEN(y0, y1),            \
                          ODD(y0, y1)};                                       \
        const int32_t off[4] = {0, 1, W, W + 1};                              \
        VEC best = v[0];                                                      \
        VECI at = {0};                                                        \
        for (int q = 1; q < 4; q++) {                                         \
            const VECI t = (v[q] > best) | ((v[q] != v[q]) & (best == best)); \
            best = (VEC)(((VECI)v[q] & t) | ((VECI)best & ~t));               \
            at = (at & ~t) | (off[q] & t);                                    \
        }                                                                     \
        VECI lane;                                                            \
        for (int j = 0; j < VL; j++) lane[j] = 2 * j;                         \
        *best_out = best;                                                     \
        *idx_out = at + lane + first2k;                                       \
    }                                                                         \
    /* A row of OW windows; the last, short vector by masked loads and       \
     * stores (rows of the default CNN are 14 and 7 windows wide). */        \
    TARGET static void NAME(const float *r0, const float *r1, float *o,       \
                            int32_t *arg, int32_t first, int W, int OW) {     \
        VEC x0, x1, y0, y1, best;                                             \
        VECI idx;                                                             \
        int k = 0;                                                            \
        for (; k + VL <= OW; k += VL) {                                       \
            VEC_LOAD(x0, r0 + 2 * k);                                         \
            VEC_LOAD(x1, r0 + 2 * k + VL);                                    \
            VEC_LOAD(y0, r1 + 2 * k);                                         \
            VEC_LOAD(y1, r1 + 2 * k + VL);                                    \
            NAME##_windows(x0, x1, y0, y1, first + 2 * k, W, &best, &idx);    \
            VEC_STORE(o + k, best);                                           \
            if (arg) VEC_STORE(arg + k, idx);                                 \
        }                                                                     \
        if (k < OW) TAIL(r0 + 2 * k, r1 + 2 * k, o + k, arg ? arg + k : NULL,  \
                         first + 2 * k, W, OW - k);                           \
    }

/* The last n < VL windows of a row, masked: lanes past the row are
 * neither read nor written. */
NN_TARGET_AVX512 static inline void
pool2_tail_avx512(const float *r0, const float *r1, float *o, int32_t *arg,
                  int32_t first2k, int W, int n);
NN_TARGET_AVX2 static inline void pool2_tail_avx2(const float *r0,
                                                  const float *r1, float *o,
                                                  int32_t *arg, int32_t first2k,
                                                  int W, int n);
POOL2_VECTOR_ROW(pool2_row_avx512, NN_TARGET_AVX512, v16, v16i, 16, POOL_EVEN16,
                 POOL_ODD16, pool2_tail_avx512)
POOL2_VECTOR_ROW(pool2_row_avx2, NN_TARGET_AVX2, v8, v8i, 8, POOL_EVEN8,
                 POOL_ODD8, pool2_tail_avx2)

NN_TARGET_AVX512 static inline void
pool2_tail_avx512(const float *r0, const float *r1, float *o, int32_t *arg,
                  int32_t first2k, int W, int n) {
    const int lo = 2 * n < 16 ? 2 * n : 16;
    const __mmask16 m0 = (__mmask16)((1u << lo) - 1);
    const __mmask16 m1 = (__mmask16)((1u << (2 * n - lo)) - 1);
    const __mmask16 mo = (__mmask16)((1u << n) - 1);
    v16 best;
    v16i idx;
    pool2_row_avx512_windows((v16)_mm512_maskz_loadu_ps(m0, r0),
                             (v16)_mm512_maskz_loadu_ps(m1, r0 + 16),
                             (v16)_mm512_maskz_loadu_ps(m0, r1),
                             (v16)_mm512_maskz_loadu_ps(m1, r1 + 16), first2k,
                             W, &best, &idx);
    _mm512_mask_storeu_ps(o, mo, (__m512)best);
    if (arg) _mm512_mask_storeu_epi32(arg, mo, (__m512i)idx);
}

NN_TARGET_AVX2 static inline void pool2_tail_avx2(const float *r0,
                                                  const float *r1, float *o,
                                                  int32_t *arg, int32_t first2k,
                                                  int W, int n) {
    const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
    /* all bits set in the lanes to touch: maskload's sign bits */
    const __m256i m0 = (__m256i)(lane < 2 * n), m1 = (__m256i)(lane + 8 < 2 * n);
    const __m256i mo = (__m256i)(lane < n);
    v8 best;
    v8i idx;
    pool2_row_avx2_windows((v8)_mm256_maskload_ps(r0, m0),
                           (v8)_mm256_maskload_ps(r0 + 8, m1),
                           (v8)_mm256_maskload_ps(r1, m0),
                           (v8)_mm256_maskload_ps(r1 + 8, m1), first2k, W,
                           &best, &idx);
    _mm256_maskstore_ps(o, mo, (__m256)best);
    if (arg) _mm256_maskstore_epi32(arg, mo, (__m256i)idx);
}
#endif

typedef void (*pool2_row_fn)(const float *r0, const float *r1, float *o,
                             int32_t *arg, int32_t first, int W, int OW);

/* The row kernel of a variant, or NULL when unknown or not runnable. */
static pool2_row_fn pool2_row_variant(const char *variant) {
    if (!nn_simd_usable(variant)) return NULL;
#ifdef NN_SIMD_X86
    if (strcmp(variant, "avx512") == 0) return pool2_row_avx512;
    if (strcmp(variant, "avx2") == 0) return pool2_row_avx2;
#endif
    return strcmp(variant, "generic") == 0 ? pool2_row_generic : NULL;
}

/* Planes p0..p1-1; argmax gets indices into in plus `first`, the flat
 * index of in[0] in the map the indices count over. */
static void pool2_planes(pool2_row_fn row_fn, float *out, int32_t *argmax,
                         const float *in, size_t p0, size_t p1, int H, int W,
                         int32_t first) {
    const int OH = H / 2, OW = W / 2;
    for (size_t pl = p0; pl < p1; pl++)
        for (int oh = 0; oh < OH; oh++) {
            const size_t row = pl * H * W + (size_t)(2 * oh) * W;
            const size_t o = (pl * OH + oh) * OW;
            row_fn(in + row, in + row + W, out + o, argmax ? argmax + o : NULL,
                   first + (int32_t)row, W, OW);
        }
}

static void maxpool2_forward(float *out, int32_t *argmax, const float *in,
                             size_t p0, size_t p1, int H, int W,
                             int32_t first) {
    pool2_row_fn f = pool2_row_variant("avx512");
    if (!f) f = pool2_row_variant("avx2");
    if (!f) f = pool2_row_generic;
    pool2_planes(f, out, argmax, in, p0, p1, H, W, first);
}

void maxpool2_forward_sample(float *out, int32_t *argmax, const float *in,
                             int C, int H, int W, int32_t first) {
    maxpool2_forward(out, argmax, in, 0, (size_t)C, H, W, first);
}

int maxpool2_forward_variant(const char *variant, float *out, int32_t *argmax,
                             const float *in, int B, int C, int H, int W) {
    pool2_row_fn f = pool2_row_variant(variant);
    if (!f) return -1;
    pool2_planes(f, out, argmax, in, 0, (size_t)B * C, H, W, 0);
    return 0;
}

/* Planes p0..p1-1 of in (B*C planes of H x W): out, argmax as for
 * maxpool_forward, indexed from the first plane. */
static void maxpool_planes(float *out, int32_t *argmax, const float *in,
                           size_t p0, size_t p1, int H, int W, int K) {
    const int OH = H / K, OW = W / K;
    if (K == 2) {
        maxpool2_forward(out, argmax, in, p0, p1, H, W, 0);
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
 * a zero. (Writing each 2x2 window's four values in one pass of vector
 * stores instead was no faster: both are bound by the stores of din.)
 * din[0] is the element of flat index `first` (argmax counts from there). */
static void maxpool_backward_planes(float *din, const float *dout,
                                    const int32_t *argmax,
                                    const float *relu_out, size_t p0,
                                    size_t p1, int H, int W, int K,
                                    int32_t first) {
    const size_t in_plane = (size_t)H * W, out_plane = (size_t)(H / K) * (W / K);
    memset(din + p0 * in_plane, 0, (p1 - p0) * in_plane * sizeof *din);
    /* the relu's test as a mask, not a branch: mispredicted about half the
     * time on real activations, it made this loop 8% of CNN training */
    if (relu_out)
        for (size_t i = p0 * out_plane; i < p1 * out_plane; i++) {
            uint32_t g;
            memcpy(&g, &dout[i], sizeof g);
            g &= -(uint32_t)(relu_out[i] > 0);
            float v;
            memcpy(&v, &g, sizeof v);
            din[argmax[i] - first] += v;
        }
    else
        for (size_t i = p0 * out_plane; i < p1 * out_plane; i++)
            din[argmax[i] - first] += dout[i];
}

void maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                      int B, int C, int H, int W, int K) {
    maxpool_backward_planes(din, dout, argmax, NULL, 0, (size_t)B * C, H, W,
                            K, 0);
}

void maxpool2_backward_relu_sample(float *din, const float *dout,
                                   const int32_t *argmax, const float *out,
                                   int C, int H, int W, int32_t first) {
    maxpool_backward_planes(din, dout, argmax, out, 0, (size_t)C, H, W, 2,
                            first);
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
    if (nn_serial(parts)) {
        maxpool_planes(out, argmax, in, 0, planes, l->in.h, l->in.w, l->kernel);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static)
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
    if (nn_serial(parts)) {
        maxpool_backward_planes(din, dout, argmax, relu_out, 0, planes,
                                l->in.h, l->in.w, l->kernel, 0);
        return;
    }
#pragma omp parallel for num_threads(parts) schedule(static)
    for (int t = 0; t < parts; t++) {
        size_t p0, p1;
        plane_range(planes, t, parts, &p0, &p1);
        maxpool_backward_planes(din, dout, argmax, relu_out, p0, p1, l->in.h,
                                l->in.w, l->kernel, 0);
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

/* The relu's derivative only (backward_act_kinds): din = 0 where the
 * maximum was not > 0, read from this layer's output. */
static void pool_layer_backward_relu(const nn_layer *l, const float *params,
                                     float *grads, const float *in,
                                     const float *out, const float *dout,
                                     float *din, int B, const int32_t *argmax,
                                     act_backward_fn act, int threads) {
    (void)params, (void)grads, (void)in, (void)act;
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
    .backward_act = pool_layer_backward_relu,
    .backward_act_kinds = 1u << NN_RELU,
};
