/*
 * conv_infer.c: the convolution of inference, for batches of 1 to a few
 * dozen: direct (no im2col, no GEMM), with the activation after it and a
 * following 2x2 max-pooling fused, so the full-size map is never written.
 * Training keeps conv.c (im2col + GEMM, faster for batches of 128).
 *
 *   in (B,C,H,W), W (OC,C,K,K), b (OC) -> out (B,OC,OH',OW')
 *   OH = H + 2*pad - K + 1, OW likewise; OH' = OH, or OH/2 when pooled.
 *
 * Method. Each sample is first copied into zero-bordered planes
 *   pad (C, HP, WP), HP = H + 2*pad + 1, WP = round_up(OW, 16) + K - 1
 * (the extra zero row serves the lower row of the last pair when OH is
 * odd), so every vector load below is in bounds and no tap tests a border.
 * The output columns of a row go into vector lanes (VL = 16 floats with
 * AVX-512, 8 with AVX2, 4 in plain code) and each weight is broadcast. A
 * tile is NO output channels x 2 output rows x VL columns, NO*2 registers,
 * summed over every tap (c, kh, kw) in that order; then the 2x2 windows are
 * pooled, the bias added, the activation applied, and the values stored.
 * Pooling first is exact: max(a + b, c + b) == max(a, c) + b in floating
 * point (rounding is monotonic) and ReLU, sigmoid and tanh are monotonic,
 * so this gives the values of conv -> activation -> pool while the
 * epilogue touches a quarter of them. NaN: the first NaN of a window wins,
 * as in pool.c.
 *
 * The weights are read as stored (OC,C,K,K): the NO channels of a tile are
 * NO streams of contiguous taps (NO*C*K*K floats, 25 KiB for the default
 * CNN's second layer with NO = 8: in L1), so there is nothing to pack and
 * nothing to prepare per net: training may change the weights between two
 * calls, and a shared net is only read.
 *
 * Threads. With at least as many samples as threads, each thread takes
 * whole samples (its own pad planes in scratch). With fewer (one image),
 * each sample's output channels are shared out in blocks of NO. Every
 * output value is computed by one thread in the same order whatever the
 * thread count, so results do not depend on it.
 */
#include <stddef.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers.h"
#include "simd.h"
#ifdef NN_SIMD_X86
#include <immintrin.h>
#endif

#define CI_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define CI_UNROLL                                                              \
    _Pragma("clang loop unroll(full) vectorize(disable) interleave_count(1)")
#else
#define CI_UNROLL _Pragma("GCC unroll 16")
#endif

#define CI_MAX_NO 8 /* output channels per tile, at most */
#define CI_MAX_VL 16

/* Everything about one call. */
typedef struct {
    int C, H, W, OC, K, pad;
    int OH, OW;   /* convolution output */
    int POH, POW; /* stored output: pooled or not */
    int HP, WP;   /* padded planes */
    bool pool;
    act_forward_fn act; /* NULL: none */
    const float *w, *b;
} ci_args;

static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

static size_t pad_floats(int C, int H, int W, int K, int pad) {
    size_t OW = (size_t)(W + 2 * pad - K + 1);
    size_t HP = (size_t)(H + 2 * pad + 1), WP = round_up16(OW) + (size_t)K - 1;
    return round_up16((size_t)C * HP * WP);
}

size_t conv_infer_direct_scratch_floats(int C, int H, int W, int K, int pad,
                                        int threads) {
    return (size_t)(threads > 1 ? threads : 1) * pad_floats(C, H, W, K, pad);
}

size_t conv_infer_scratch_floats(int B, int C, int H, int W, int OC, int K,
                                 int pad, bool pool, bool prepared,
                                 int threads) {
    if (conv_winograd_applies(C, H, W, OC, K, pad))
        return conv_winograd_scratch_floats(B, C, H, W, OC, pad, pool,
                                            prepared, threads);
    return conv_infer_direct_scratch_floats(C, H, W, K, pad, threads);
}

/* in_b (C,H,W) -> dst (C,HP,WP), zero outside the image. */
static void pad_sample(const ci_args *a, const float *in_b, float *dst) {
    memset(dst, 0, (size_t)a->C * a->HP * a->WP * sizeof *dst);
    for (int c = 0; c < a->C; c++)
        for (int h = 0; h < a->H; h++)
            memcpy(dst + ((size_t)c * a->HP + h + a->pad) * a->WP + a->pad,
                   in_b + ((size_t)c * a->H + h) * a->W,
                   (size_t)a->W * sizeof *dst);
}

/* First NaN wins, else the larger; ties keep the earlier. */
static inline float max_nan(float m, float v) {
    return (v > m) | ((v != v) & (m == m)) ? v : m;
}

/* t holds the tile: t[(j*2 + r)*VL + x] is channel oc0+j, output row
 * oh+r, column x0+x, without bias. Pools, adds the bias, activates and
 * stores the valid part into out_b (OC, POH, POW). */
static void epilogue(const ci_args *a, const float *t, int VL, int oc0,
                     int no, int oh, int x0, float *out_b) {
    const bool relu = a->act == relu_forward;
    for (int j = 0; j < no; j++) {
        const float bias = a->b[oc0 + j];
        const float *t0 = t + (size_t)(2 * j) * VL, *t1 = t0 + VL;
        float *plane = out_b + (size_t)(oc0 + j) * a->POH * a->POW;
        if (a->pool) {
            int ph = oh / 2, px0 = x0 / 2;
            if (ph >= a->POH) continue; /* the lone last row of an odd OH */
            int n = a->POW - px0 < VL / 2 ? a->POW - px0 : VL / 2;
            float *o = plane + (size_t)ph * a->POW + px0;
            for (int k = 0; k < n; k++) {
                float m = t0[2 * k];
                m = max_nan(m, t0[2 * k + 1]);
                m = max_nan(m, t1[2 * k]);
                m = max_nan(m, t1[2 * k + 1]);
                float v = m + bias;
                o[k] = relu ? (v > 0 ? v : 0) : v;
            }
            if (a->act && !relu) a->act(o, o, (size_t)n);
            continue;
        }
        int n = a->OW - x0 < VL ? a->OW - x0 : VL;
        for (int r = 0; r < 2 && oh + r < a->OH; r++) {
            const float *src = r ? t1 : t0;
            float *o = plane + (size_t)(oh + r) * a->POW + x0;
            for (int x = 0; x < n; x++) {
                float v = src[x] + bias;
                o[x] = relu ? (v > 0 ? v : 0) : v;
            }
            if (a->act && !relu) a->act(o, o, (size_t)n);
        }
    }
}

#ifdef NN_SIMD_X86
/* max_nan on 8 lanes: v where v > m, or where v is NaN and m is not. */
NN_TARGET_AVX2 CI_INLINE __m256 max_nan8(__m256 m, __m256 v) {
    __m256 nan_v = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    __m256 nan_m = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
    __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ),
                               _mm256_andnot_ps(nan_m, nan_v));
    return _mm256_blendv_ps(m, v, take);
}

/* epilogue for VL = 8 when pooling, in vectors: the scalar one's
 * data-dependent branches (which of four is the largest) mispredicted
 * often enough to cost more than the first layer's convolution itself.
 * Each window (r0[2k], r0[2k+1], r1[2k], r1[2k+1]) is reduced as
 * max_nan(max_nan(r0[2k], r0[2k+1]), max_nan(r1[2k], r1[2k+1])), which
 * picks the same element as the scalar left-to-right fold: the first
 * largest, or the first NaN. The ReLU is maxps(v, 0), which like
 * v > 0 ? v : 0 gives +0 for NaN and -0. */
NN_TARGET_AVX2 static void epilogue_avx2(const ci_args *a, const float *t,
                                            int VL, int oc0, int no, int oh,
                                            int x0, float *out_b) {
    if (!a->pool || VL != 8) {
        epilogue(a, t, VL, oc0, no, oh, x0, out_b);
        return;
    }
    const int ph = oh / 2, px0 = x0 / 2;
    if (ph >= a->POH) return; /* the lone last row of an odd OH */
    const int n = a->POW - px0 < 4 ? a->POW - px0 : 4;
    const bool relu = a->act == relu_forward;
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    for (int j = 0; j < no; j++) {
        const float *t0 = t + (size_t)(2 * j) * 8, *t1 = t0 + 8;
        __m256 r0 = _mm256_loadu_ps(t0), r1 = _mm256_loadu_ps(t1);
        /* lanes 2k: max_nan(x[2k], x[2k+1]) of each row */
        r0 = max_nan8(r0, _mm256_permute_ps(r0, 0xB1));
        r1 = max_nan8(r1, _mm256_permute_ps(r1, 0xB1));
        __m128 v = _mm256_castps256_ps128(
            _mm256_permutevar8x32_ps(max_nan8(r0, r1), even));
        v = _mm_add_ps(v, _mm_set1_ps(a->b[oc0 + j]));
        if (relu) v = _mm_max_ps(v, _mm_setzero_ps());
        float *o = out_b + (size_t)(oc0 + j) * a->POH * a->POW +
                   (size_t)ph * a->POW + px0;
        if (n == 4) {
            _mm_storeu_ps(o, v);
        } else {
            float tmp[4];
            _mm_storeu_ps(tmp, v);
            memcpy(o, tmp, (size_t)n * sizeof(float));
        }
        if (a->act && !relu) a->act(o, o, (size_t)n);
    }
}

/* max_nan on 16 lanes, as max_nan8. */
NN_TARGET_AVX512 CI_INLINE __m512 max_nan16(__m512 m, __m512 v) {
    __mmask16 nan_v = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __mmask16 nan_m = _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
    __mmask16 take = (__mmask16)(_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |
                                 (nan_v & (__mmask16)~nan_m));
    return _mm512_mask_blend_ps(take, m, v);
}

/* epilogue_avx2 for VL = 16: the same windows and the same fold, 8 pooled
 * values per channel (with the scalar epilogue the first layer took about
 * 82 us of a 367 us batch-1 pass on an AVX-512 machine; now about 14). */
NN_TARGET_AVX512 static void epilogue_avx512(const ci_args *a, const float *t,
                                             int VL, int oc0, int no, int oh,
                                             int x0, float *out_b) {
    if (!a->pool || VL != 16) {
        epilogue(a, t, VL, oc0, no, oh, x0, out_b);
        return;
    }
    const int ph = oh / 2, px0 = x0 / 2;
    if (ph >= a->POH) return; /* the lone last row of an odd OH */
    const int n = a->POW - px0 < 8 ? a->POW - px0 : 8;
    const bool relu = a->act == relu_forward;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2,
                                           4, 6, 8, 10, 12, 14);
    for (int j = 0; j < no; j++) {
        const float *t0 = t + (size_t)(2 * j) * 16, *t1 = t0 + 16;
        __m512 r0 = _mm512_loadu_ps(t0), r1 = _mm512_loadu_ps(t1);
        r0 = max_nan16(r0, _mm512_permute_ps(r0, 0xB1));
        r1 = max_nan16(r1, _mm512_permute_ps(r1, 0xB1));
        __m256 v = _mm512_castps512_ps256(
            _mm512_permutexvar_ps(even, max_nan16(r0, r1)));
        v = _mm256_add_ps(v, _mm256_set1_ps(a->b[oc0 + j]));
        if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
        float *o = out_b + (size_t)(oc0 + j) * a->POH * a->POW +
                   (size_t)ph * a->POW + px0;
        /* A row's last n < 8 values by a masked store (lanes past n are
         * neither written nor read): a memcpy of a variable length there
         * was a libc call per channel and row, 2% of the daemon's CPU. */
        _mm512_mask_storeu_ps(o, (__mmask16)((1u << n) - 1),
                              _mm512_castps256_ps512(v));
        if (a->act && !relu) a->act(o, o, (size_t)n);
    }
}
#endif

/* tile_VEC: sums NO channels x 2 rows x VL columns over every tap into t
 * (layout as in epilogue). p points at the padded input of row oh, column
 * x0 of channel 0; w at the weights of the tile's first channel. NO is a
 * constant once inlined, so the channel loops unroll and the accumulators
 * stay in registers; K is one too for the common sides (3, 5), and the
 * compilers unroll a loop of 3 or 5 taps by themselves (an unroll pragma
 * would be an error for the other sides, whose K is only known at run
 * time). */
#define CI_DEFINE_TILE(VEC)                                                    \
    CI_INLINE void tile_##VEC(const int NO, const int K,                       \
                              const float *restrict p, size_t plane, int WP,   \
                              int C, const float *restrict w, size_t CKK,      \
                              float *restrict t) {                             \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        VEC acc[CI_MAX_NO][2];                                                 \
        CI_UNROLL for (int j = 0; j < NO; j++) {                               \
            acc[j][0] = (VEC){0};                                              \
            acc[j][1] = (VEC){0};                                              \
        }                                                                      \
        for (int c = 0; c < C; c++) {                                          \
            const float *pc = p + (size_t)c * plane;                           \
            const float *wc = w + (size_t)c * K * K;                           \
            for (int kh = 0; kh < K; kh++) {                                   \
                const float *r0 = pc + (size_t)kh * WP, *r1 = r0 + WP;         \
                const float *wk = wc + kh * K;                                 \
                for (int kw = 0; kw < K; kw++) {                               \
                    VEC x0, x1;                                                \
                    VEC_LOAD(x0, r0 + kw);                                     \
                    VEC_LOAD(x1, r1 + kw);                                     \
                    CI_UNROLL for (int j = 0; j < NO; j++) {                   \
                        float wj = wk[(size_t)j * CKK + kw];                   \
                        acc[j][0] += wj * x0;                                  \
                        acc[j][1] += wj * x1;                                  \
                    }                                                          \
                }                                                              \
            }                                                                  \
        }                                                                      \
        CI_UNROLL for (int j = 0; j < NO; j++) {                               \
            VEC_STORE(t + (size_t)(2 * j) * VL, acc[j][0]);                    \
            VEC_STORE(t + (size_t)(2 * j + 1) * VL, acc[j][1]);                \
        }                                                                      \
    }

/* channels_VEC: output channels [oc_from, oc_to) of one sample, from its
 * padded planes pad, into out_b: blocks of NO channels, then of 4, then
 * single ones (a tile of fewer channels has too few independent sums to
 * keep the FMA pipes busy, so the remainder is kept small). The common
 * kernel sides get their own unrolled copies. */
#define CI_TILE_ANY_K(VEC, NO, p, plane, a, w, CKK, t)                         \
    do {                                                                       \
        if ((a)->K == 5)                                                       \
            tile_##VEC(NO, 5, p, plane, (a)->WP, (a)->C, w, CKK, t);           \
        else if ((a)->K == 3)                                                  \
            tile_##VEC(NO, 3, p, plane, (a)->WP, (a)->C, w, CKK, t);           \
        else                                                                   \
            tile_##VEC(NO, (a)->K, p, plane, (a)->WP, (a)->C, w, CKK, t);      \
    } while (0)

#define CI_DEFINE_CHANNELS(VEC, NO, EPILOGUE)                                  \
    CI_INLINE void block_##VEC(const int no, const ci_args *a,                 \
                               const float *pad, int oc0, float *out_b) {      \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        float t[CI_MAX_NO * 2 * CI_MAX_VL]                                     \
            __attribute__((aligned(64)));                                      \
        const size_t plane = (size_t)a->HP * a->WP;                            \
        const size_t CKK = (size_t)a->C * a->K * a->K;                         \
        const float *w = a->w + (size_t)oc0 * CKK;                             \
        for (int oh = 0; oh < a->OH; oh += 2) {                                \
            if (a->pool && oh / 2 >= a->POH) break;                            \
            for (int x0 = 0; x0 < a->OW; x0 += VL) {                           \
                const float *p = pad + (size_t)oh * a->WP + x0;                \
                CI_TILE_ANY_K(VEC, no, p, plane, a, w, CKK, t);                \
                EPILOGUE(a, t, VL, oc0, no, oh, x0, out_b);                    \
            }                                                                  \
        }                                                                      \
    }                                                                          \
    CI_INLINE void channels_##VEC(const ci_args *a, const float *pad,          \
                                  int oc_from, int oc_to, float *out_b) {      \
        int oc0 = oc_from;                                                     \
        /* Full blocks unless one would leave 2 or 3 channels: 32 is    \
         * 6+6+6+6+4+4, not 6*5+2, as a tile of under 4 channels waits on \
         * its few FMA chains (8 FMAs in flight keep both pipes busy). */ \
        for (; oc_to - oc0 >= NO; oc0 += NO) {                                 \
            int rest = oc_to - oc0 - NO;                                       \
            if (NO > 4 && (rest == 2 || rest == 3)) break;                     \
            block_##VEC(NO, a, pad, oc0, out_b);                               \
        }                                                                      \
        if (NO > 4)                                                            \
            for (; oc_to - oc0 >= 4; oc0 += 4)                                 \
                block_##VEC(4, a, pad, oc0, out_b);                            \
        for (; oc_to - oc0 >= 2; oc0 += 2)                                     \
            block_##VEC(2, a, pad, oc0, out_b);                                \
        for (; oc0 < oc_to; oc0++)                                             \
            block_##VEC(1, a, pad, oc0, out_b);                                \
    }

/* One variant: its tile and the channels per tile. */
typedef struct {
    const char *name;
    int no; /* output channels per tile */
    void (*channels)(const ci_args *a, const float *pad, int oc_from,
                     int oc_to, float *out_b);
} ci_impl;

/* Plain code: 4 channels x 2 rows of v4 = 8 of the 16 xmm registers. */
CI_DEFINE_TILE(v4)
CI_DEFINE_CHANNELS(v4, 4, epilogue)
static void channels_generic(const ci_args *a, const float *pad, int oc_from,
                             int oc_to, float *out_b) {
    channels_v4(a, pad, oc_from, oc_to, out_b);
}

#ifdef NN_SIMD_X86
/* AVX-512: 8 channels x 2 rows = 16 zmm accumulators; per tap 2 loads of
 * input and 8 broadcast weights feed 16 FMAs. */
CI_DEFINE_TILE(v16)
CI_DEFINE_CHANNELS(v16, 8, epilogue_avx512)
NN_TARGET_AVX512 static void channels_avx512(const ci_args *a,
                                             const float *pad, int oc_from,
                                             int oc_to, float *out_b) {
    channels_v16(a, pad, oc_from, oc_to, out_b);
}
/* AVX2: 6 channels x 2 rows = 12 of the 16 ymm registers: more
 * independent sums than the 8 that two FMA pipes of latency 4 need, and 8
 * loads per 12 FMAs. */
CI_DEFINE_TILE(v8)
CI_DEFINE_CHANNELS(v8, 6, epilogue_avx2)
NN_TARGET_AVX2 static void channels_avx2(const ci_args *a, const float *pad,
                                         int oc_from, int oc_to,
                                         float *out_b) {
    channels_v8(a, pad, oc_from, oc_to, out_b);
}
#endif

static const ci_impl ci_impls[] = {
#ifdef NN_SIMD_X86
    {"avx512", 8, channels_avx512},
    {"avx2", 6, channels_avx2},
#endif
    {"generic", 4, channels_generic},
};

static void run(const ci_impl *im, const ci_args *a, const float *in,
                float *out, int B, float *scratch, int threads) {
    const size_t in_size = (size_t)a->C * a->H * a->W;
    const size_t out_size = (size_t)a->OC * a->POH * a->POW;
    const size_t slice = pad_floats(a->C, a->H, a->W, a->K, a->pad);
    if (threads < 1) threads = 1;
    if (nn_serial(threads)) {
        for (int s = 0; s < B; s++) {
            pad_sample(a, in + (size_t)s * in_size, scratch);
            im->channels(a, scratch, 0, a->OC, out + (size_t)s * out_size);
        }
        return;
    }
    if (B >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int s = 0; s < B; s++) {
#ifdef _OPENMP
            float *pad = scratch + (size_t)omp_get_thread_num() * slice;
#else
            float *pad = scratch;
#endif
            pad_sample(a, in + (size_t)s * in_size, pad);
            im->channels(a, pad, 0, a->OC, out + (size_t)s * out_size);
        }
        return;
    }
    /* Fewer samples than threads: share each sample's channel blocks. */
    const int blocks = (a->OC + im->no - 1) / im->no;
    if (threads > blocks) threads = blocks;
    for (int s = 0; s < B; s++) {
        pad_sample(a, in + (size_t)s * in_size, scratch);
        float *out_b = out + (size_t)s * out_size;
#pragma omp parallel num_threads(threads)
        {
#ifdef _OPENMP
            int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
            int tid = 0, team = 1;
#endif
            int oc_from, oc_to;
            nn_share(a->OC, tid, team, im->no, &oc_from, &oc_to);
            if (oc_from < oc_to)
                im->channels(a, scratch, oc_from, oc_to, out_b);
        }
    }
}

int conv_infer_variant(const char *variant, float *out, const float *in,
                       const float *W, const float *b, int B, int C, int H,
                       int Wd, int OC, int K, int pad, act_forward_fn act,
                       bool pool, float *scratch, int threads) {
    ci_args a = {
        .C = C, .H = H, .W = Wd, .OC = OC, .K = K, .pad = pad,
        .OH = H + 2 * pad - K + 1, .OW = Wd + 2 * pad - K + 1,
        .HP = H + 2 * pad + 1,
        .pool = pool, .act = act, .w = W, .b = b,
    };
    a.WP = (int)round_up16((size_t)a.OW) + K - 1;
    a.POH = pool ? a.OH / 2 : a.OH;
    a.POW = pool ? a.OW / 2 : a.OW;
    for (size_t i = 0; i < sizeof ci_impls / sizeof ci_impls[0]; i++) {
        const ci_impl *im = &ci_impls[i];
        if (variant ? strcmp(im->name, variant) != 0
                    : !nn_simd_usable(im->name))
            continue;
        if (!nn_simd_usable(im->name)) return -1;
        if (B > 0) run(im, &a, in, out, B, scratch, threads);
        return 0;
    }
    return -1;
}

/* Winograd's F(4x4, 5x5) (nn/conv_winograd.c) where its rule says it
 * pays (conv_winograd_applies: 5x5, at least 8 input and 16 output
 * channels and C x OC >= 256; the default CNN's second layer, not its
 * first), else the direct kernel above. */
void conv_infer(float *out, const float *in, const float *W, const float *b,
                const float *prepared, int B, int C, int H, int Wd, int OC,
                int K, int pad, act_forward_fn act, bool pool, float *scratch,
                int threads) {
    if (conv_winograd_applies(C, H, Wd, OC, K, pad) &&
        conv_winograd_variant(NULL, out, in, W, b, prepared, B, C, H, Wd, OC,
                              pad, act, pool, scratch, threads) == 0)
        return;
    conv_infer_variant(NULL, out, in, W, b, B, C, H, Wd, OC, K, pad, act, pool,
                       scratch, threads);
}
