/*
 * conv_winograd.c: the 5x5 convolution of inference by Winograd's minimal
 * filtering F(4x4, 5x5), with the activation and a following 2x2
 * max-pooling fused as in conv_infer.c. It does the work of the default
 * CNN's second layer (32 -> 64 channels on 14x14: 10.0 M multiply-adds of
 * the 11.4 M per image) with 64 multiplies per 4x4 outputs and channel
 * pair instead of 400: conv_infer.c's direct kernel already runs near the
 * FMA peak, so only fewer multiplies make it faster. (F(2x2, 5x5), used
 * before, needs 36 per 2x2 outputs: on the 14x14 map 49 tiles x 36 points
 * against 16 x 64 here, 1.7x the GEMM work; the forward pass of the
 * default CNN at batch 5 went from 196 to 143 us with this change.)
 *
 *   in (B,C,H,W), W (OC,C,5,5), b (OC) -> out (B,OC,OH',OW')
 *   OH = H + 2*pad - 4, OW likewise; OH' = OH, or OH/2 when pooled.
 *
 * Method. The output is cut into 4x4 tiles (TY x TX per sample:
 * ceil(OH'/2) x ceil(OW'/2) pooled, ceil(OH/4) x ceil(OW/4) unpooled, the
 * part beyond the output computed from zeros and dropped); tile (ty, tx)
 * reads the 8x8 input patch d at padded rows 4ty.., columns 4tx... Per
 * call:
 *   1. weights: U = G g G^T (8x8) per (c, oc)      -> U (64, CP, OCP)
 *      (U[xi] padded by one cache line, see make_args)
 *   2. per block of tiles (any samples): V = B^T d B per tile and c
 *                                                  -> V (64, tiles, CP)
 *   3. 64 independent GEMMs M[xi] = V[xi] x U[xi]  -> M (64, tiles, OCP)
 *   4. per tile and oc: Y = A^T M A (4x4), then as conv_infer.c's epilogue:
 *      pooled, the max of each of the 4 windows (tiles start at rows and
 *      columns that are multiples of 4, so they hold whole windows) +
 *      bias, activation, 4 stores; unpooled, + bias, activation, 16 stores.
 * xi = 8*i + j indexes the 64 points of the transformed tile; CP and OCP
 * are C and OC rounded up to the widest vector pair (16 and 32, whatever
 * the variant, so the scratch size does not depend on it); the padding is
 * zeros. Output channels are in vector lanes everywhere after step 1, so
 * the transforms of steps 2 and 4 and the GEMM's columns are plain vector
 * code; step 2 reads the sample as zero-bordered HWC planes
 * (HT, WT, CP), HT = 4*TY + 4, WT = 4*TX + 4, made once per sample.
 *
 * The GEMM (step 3) is where the time goes: per xi, a block of rows
 * (tiles) x C x OC, in register tiles of 6 rows x 2 vectors of output
 * channels (12 accumulators, 2 loads of U and 6 broadcasts of V per 12
 * FMAs with AVX2), summed over c in order. A block holds at most
 * CW_TB_MAX tiles (one sample of the default CNN), so its V and M
 * (64 x 16 x 32 and 64 x 16 x 64 floats: 128 and 256 KiB) stay in L2
 * beside U (512 KiB); the slice of U one register tile reads (32 x 16
 * floats) stays in L1 over the block's rows.
 *
 * The weights are transformed per call (step 1), since training changes
 * them between calls, unless the caller passes U made beforehand by
 * conv_winograd_weights_create (nn_net_prepare does, for a net that is
 * only served from then on). Per call its cost was 5% of the forward pass
 * at batch 5, and U half of the scratch.
 *
 * Interpolation points: 0, 1, -1, 1/2, -1/2, 2, -2 and infinity, the
 * best of the sets tools/winograd_matrices.py compares (0, +-1, +-2, +-3:
 * 100x the error); that script derives the matrices below (Toom-Cook,
 * exact rationals) and checks them. Its float32 estimate for a
 * 32-channel sum is 7.6e-6 of the output scale (F(2x2, 5x5): 3.4e-6),
 * against a few ulp for direct summation; tests/unit/test_conv_infer.c
 * states the bound and prints the worst error it sees (6e-6).
 *
 * Threads. Step 1 shares out (c, oc vector) pairs, step 2's HWC planes
 * the samples, steps 2-4 the tile blocks. Each output value is computed
 * by one thread with the same operations in the same order whatever the
 * thread count, block or batch, so results do not depend on any of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers.h"
#include "simd.h"
#include "winograd_matrices.h"

#define CW_INLINE static inline __attribute__((always_inline))
#if defined(__clang__)
#define CW_UNROLL _Pragma("clang loop unroll(full)")
#else
#define CW_UNROLL _Pragma("GCC unroll 64")
#endif

enum {
    CW_MR = 6,      /* GEMM register tile: rows (tiles) */
    CW_TB_MAX = 16, /* tiles per block, at most */
    CW_GROUP = 32,  /* samples whose HWC planes are held at once, at most */
    CW_CPAD = 16,   /* C rounded up to this (the widest vector) */
    CW_OCPAD = 32,  /* OC rounded up to this (two of the widest vectors) */
};

/* Everything about one call. */
typedef struct {
    int C, H, W, OC, pad;
    int OH, OW;   /* convolution output */
    int POH, POW; /* stored output: pooled or not */
    int TY, TX;   /* tiles per sample */
    int HT, WT;   /* HWC planes */
    int CP, OCP;  /* padded channel counts */
    size_t US;    /* floats from U[xi] to U[xi + 1] */
    bool pool;
    act_forward_fn act; /* NULL: none */
    const float *w, *b;
} cw_args;

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

static cw_args make_args(int C, int H, int W, int OC, int pad, bool pool) {
    cw_args a = {.C = C, .H = H, .W = W, .OC = OC, .pad = pad, .pool = pool};
    a.OH = H + 2 * pad - 4;
    a.OW = W + 2 * pad - 4;
    a.POH = pool ? a.OH / 2 : a.OH;
    a.POW = pool ? a.OW / 2 : a.OW;
    /* A pooled tile's 4x4 outputs are 2x2 whole pooling windows. */
    a.TY = pool ? (a.POH + 1) / 2 : (a.OH + CW_O - 1) / CW_O;
    a.TX = pool ? (a.POW + 1) / 2 : (a.OW + CW_O - 1) / CW_O;
    a.HT = CW_O * a.TY + 4;
    a.WT = CW_O * a.TX + 4;
    a.CP = (int)round_up((size_t)C, CW_CPAD);
    a.OCP = (int)round_up((size_t)OC, CW_OCPAD);
    /* One cache line more than CP * OCP: the weight transform stores 64
     * vectors a U[xi] apart, and at 32 x 64 channels (8 KiB) they would
     * all fall in one set of L1 and evict each other. */
    a.US = (size_t)a.CP * a.OCP + 16;
    return a;
}

/* Floats from V[xi] to V[xi + 1] and from M[xi] to M[xi + 1]: one
 * cache line more than a block's rows, as for U. Without it, 16 tiles of
 * 64 output channels put M's 64 points of a tile exactly 4 KiB apart, in
 * one set of L1, and reading them back for the output transform took
 * more time than the GEMMs. */
static size_t v_stride(const cw_args *a) {
    return (size_t)CW_TB_MAX * a->CP + 16;
}
static size_t m_stride(const cw_args *a) {
    return (size_t)CW_TB_MAX * a->OCP + 16;
}

/* Scratch layout, in floats, each part a multiple of 16 (64 bytes). */
typedef struct {
    size_t u, bias, hwc, per_thread, v, m, total;
    int group, threads;
} cw_layout;

static cw_layout layout(const cw_args *a, int B, bool prepared,
                        int threads) {
    cw_layout l;
    l.threads = threads > 1 ? threads : 1;
    /* Enough samples for two full blocks per thread, no more: the planes
     * are 50 KiB a sample for the default CNN, and 32 of them made most
     * of a worker's memory at batch 16. */
    const int tps = a->TY * a->TX;
    int group = (2 * CW_TB_MAX * l.threads + tps - 1) / tps;
    if (group > CW_GROUP) group = CW_GROUP;
    l.group = B < group ? (B > 0 ? B : 1) : group;
    l.u = prepared ? 0 : CW_P * a->US;
    l.bias = (size_t)a->OCP;
    l.hwc = round_up((size_t)a->HT * a->WT * a->CP, 16);
    l.v = (size_t)CW_P * v_stride(a);
    l.m = (size_t)CW_P * m_stride(a);
    l.per_thread = l.v + l.m;
    l.total = l.u + l.bias + (size_t)l.group * l.hwc +
              (size_t)l.threads * l.per_thread + 15; /* to align, in run */
    return l;
}

bool conv_winograd_applies(int C, int H, int W, int OC, int K, int pad) {
    /* Winograd is for 5x5 kernels (stride 1, as all of ours). It pays
     * when the GEMMs are most of the work, which takes channels on both
     * sides: measured with F(2x2, 5x5) at one thread (bench figures in
     * bench/README.md; F(4x4, 5x5) does fewer multiplies on each of these
     * shapes, so the rule stays a safe side of its break-even),
     * 14x14 inputs, batch 1 / 8, direct time over Winograd's: C x OC =
     * 32 x 64: 1.65 / 2.04, 16 x 16: 1.17 / 1.34, 8 x 32: 1.16 / 1.33,
     * 8 x 16: 0.98 / 1.13, 8 x 8: 0.89 / 1.03, and 32 x 8: 0.95 / 1.08
     * (8 output channels fill half of a GEMM register tile's 16 lanes).
     * So: at least 8 input and 16 output channels, and C x OC >= 256, so
     * the per-call weight transform (proportional to C x OC) is spread
     * over enough multiplies saved. conv1 (C = 1) stays direct. Output
     * sides under 2 would be mostly padding. */
    return K == 5 && C >= 8 && OC >= 16 && C * OC >= 256 &&
           H + 2 * pad - 4 >= 2 && W + 2 * pad - 4 >= 2;
}

size_t conv_winograd_scratch_floats(int B, int C, int H, int W, int OC, int pad,
                                    bool pool, bool prepared, int threads) {
    cw_args a = make_args(C, H, W, OC, pad, pool);
    return layout(&a, B, prepared, threads).total;
}

/* in_s (C,H,W) -> dst (HT,WT,CP): channels innermost, zero outside the
 * image and in the padding channels. Rows and columns past HT, WT are
 * read by no tile (an odd pooled side's last row). */
static void to_hwc(const cw_args *a, const float *in_s, float *dst) {
    memset(dst, 0, (size_t)a->HT * a->WT * a->CP * sizeof *dst);
    const int h_end = a->H < a->HT - a->pad ? a->H : a->HT - a->pad;
    const int w_end = a->W < a->WT - a->pad ? a->W : a->WT - a->pad;
    for (int h = 0; h < h_end; h++)
        for (int w = 0; w < w_end; w++) {
            float *d =
                dst + ((size_t)(h + a->pad) * a->WT + w + a->pad) * a->CP;
            const float *s = in_s + (size_t)h * a->W + w;
            for (int c = 0; c < a->C; c++) d[c] = s[(size_t)c * a->H * a->W];
        }
}

/* ---- per vector type: transforms and the GEMM ----------------------- */

/* Loads and stores of vectors in scratch, which run() aligns to 64 bytes
 * and lays out in multiples of 16 floats, so every vector there is
 * aligned. They are plain vector accesses (through types that may alias
 * float) rather than memcpy: GCC 12's generic tuning copies a 256-bit
 * memcpy as two 128-bit moves, and stored the GEMM's accumulators through
 * the stack that way. */
typedef v4 cw_v4 __attribute__((may_alias));
typedef v8 cw_v8 __attribute__((may_alias));
typedef v16 cw_v16 __attribute__((may_alias));
#define CW_LOADA(VEC, dst, p)                                                  \
    ((dst) = *(const cw_##VEC *)__builtin_assume_aligned((p), sizeof(VEC)))
#define CW_STOREA(VEC, p, src)                                                 \
    (*(cw_##VEC *)__builtin_assume_aligned((p), sizeof(VEC)) = (src))

/* 25 taps of zeros (and 7 more, for gather_v8's overlapping load): the
 * weights of the output channels past OC. */
static const float cw_zeros[32];

/* gv[k] = tap k of the VL filters rows[0..VL-1] (25 floats each): the
 * transposition that puts output channels in lanes. Plain copies for the
 * generic and AVX-512 variants. */
#define CW_DEFINE_GATHER(VEC)                                                  \
    CW_INLINE void gather_##VEC(const float *const *rows, VEC *gv) {           \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        float g[25][VL];                                                       \
        for (int j = 0; j < VL; j++)                                           \
            for (int k = 0; k < 25; k++) g[k][j] = rows[j][k];                 \
        for (int k = 0; k < 25; k++) VEC_LOAD(gv[k], g[k]);                    \
    }
CW_DEFINE_GATHER(v4)
#ifdef NN_SIMD_X86
CW_DEFINE_GATHER(v16)

/* The same for AVX2 by 8x8 transpositions in registers (unpack, shuffle,
 * swap of 128-bit halves: 24 shuffles per 64 floats), a quarter of the
 * instructions of the plain copy, which at batch 1 was the largest part
 * of the weight transform. Taps 0-7, 8-15, 16-23, and 17-24 for tap 24
 * (the overlapping load stays inside the filter). */
#define CW_SHUF __builtin_shufflevector
CW_INLINE void transpose_v8(const v8 *r, v8 *o) {
    v8 t[8], q[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = CW_SHUF(r[2 * k], r[2 * k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[2 * k + 1] =
            CW_SHUF(r[2 * k], r[2 * k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int k = 0; k < 2; k++)
        for (int h = 0; h < 2; h++) {
            const v8 x = t[4 * k + h], y = t[4 * k + h + 2];
            q[4 * k + 2 * h] = CW_SHUF(x, y, 0, 1, 8, 9, 4, 5, 12, 13);
            q[4 * k + 2 * h + 1] = CW_SHUF(x, y, 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int k = 0; k < 4; k++) {
        o[k] = CW_SHUF(q[k], q[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        o[k + 4] = CW_SHUF(q[k], q[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}
CW_INLINE void gather_v8(const float *const *rows, v8 *gv) {
    v8 r[8], o[8];
    CW_UNROLL for (int b = 0; b < 4; b++) {
        const int k0 = b < 3 ? 8 * b : 17;
        CW_UNROLL for (int j = 0; j < 8; j++) VEC_LOAD(r[j], rows[j] + k0);
        transpose_v8(r, o);
        if (b < 3)
            for (int k = 0; k < 8; k++) gv[k0 + k] = o[k];
        else
            gv[24] = o[7];
    }
}
#endif

/* y[i*ys] = sum_j M[i][j] x[j*xs] for a constant matrix M (ROWS x COLS):
 * one transform of 6 (or 5) vectors. */
#define CW_APPLY(VEC, M, ROWS, COLS, y, ys, x, xs)                             \
    do {                                                                       \
        CW_UNROLL for (int i_ = 0; i_ < (ROWS); i_++) {                        \
            VEC s_ = {0};                                                      \
            CW_UNROLL for (int j_ = 0; j_ < (COLS); j_++) if (M[i_][j_] != 0)  \
                s_ += M[i_][j_] * (x)[j_ * (xs)];                              \
            (y)[i_ * (ys)] = s_;                                               \
        }                                                                      \
    } while (0)

/* Lane-wise a where mask, else b (mask from a vector comparison). */
#define CW_SELECT(VEC, mask, a, b)                                             \
    ((VEC)(((__typeof__(mask))(a) & (mask)) |                                  \
           ((__typeof__(mask))(b) & ~(mask))))

/* TARGET: the variant's target on every helper too. GCC lowers a vector
 * comparison by the target of the function it is written in, before
 * inlining: without it the AVX-512 pooling compiled to scalar code, half
 * of the layer's time. */
#define CW_DEFINE(VEC, TARGET)                                                 \
    /* Weights of channel c, output channels oc0.. (one vector, zero past      \
     * OC) -> U[xi][c][oc0..]. */                                              \
    TARGET                                                                     \
    CW_INLINE void weights_##VEC(const cw_args *a, int c, int oc0, float *u) { \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const float *rows[VL];                                                 \
        for (int j = 0; j < VL; j++)                                           \
            rows[j] = oc0 + j < a->OC                                          \
                          ? a->w + ((size_t)(oc0 + j) * a->C + c) * 25         \
                          : cw_zeros;                                          \
        VEC gv[25], t[CW_T * 5], r[CW_P];                                      \
        gather_##VEC(rows, gv);                                                \
        /* t = G g (8x5): columns of g; then r = t G^T (8x8): rows of t. */    \
        for (int col = 0; col < 5; col++)                                      \
            CW_APPLY(VEC, CW_G, CW_T, 5, t + col, 5, gv + col, 5);             \
        for (int row = 0; row < CW_T; row++)                                   \
            CW_APPLY(VEC, CW_G, CW_T, 5, r + row * CW_T, 1, t + row * 5, 1);   \
        const size_t xs = a->US;                                               \
        for (int xi = 0; xi < CW_P; xi++)                                      \
            CW_STOREA(VEC, u + xi * xs + (size_t)c * a->OCP + oc0, r[xi]);     \
    }                                                                          \
                                                                               \
    /* The input tile at hwc (row 0, column 0 of its 8x8 patch), channels      \
     * c0.. (one vector) -> v[xi * vs] (64 vectors). */                        \
    TARGET                                                                     \
    CW_INLINE void input_##VEC(const cw_args *a, const float *hwc, int c0,     \
                               float *v, size_t vs) {                          \
        VEC d[CW_P], t[CW_P], r[CW_P];                                         \
        for (int i = 0; i < CW_T; i++)                                         \
            for (int j = 0; j < CW_T; j++)                                     \
                CW_LOADA(VEC, d[i * CW_T + j],                                 \
                         hwc + ((size_t)i * a->WT + j) * a->CP + c0);          \
        for (int col = 0; col < CW_T; col++)                                   \
            CW_APPLY(VEC, CW_BT, CW_T, CW_T, t + col, CW_T, d + col, CW_T);    \
        for (int row = 0; row < CW_T; row++)                                   \
            CW_APPLY(VEC, CW_BT, CW_T, CW_T, r + row * CW_T, 1,                \
                     t + row * CW_T, 1);                                       \
        for (int xi = 0; xi < CW_P; xi++) CW_STOREA(VEC, v + xi * vs, r[xi]);  \
    }                                                                          \
                                                                               \
    /* GEMM register tile: rows r0..r0+NR-1 of M[xi] (stride OCP), output      \
     * channels oc0.. (two vectors) = V rows (stride CP) x U[xi]. */           \
    TARGET                                                                     \
    CW_INLINE void gemm_tile_##VEC(const int NR, const float *restrict v,      \
                                   const float *restrict u, int C, int CP,     \
                                   int OCP, float *restrict m) {               \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        VEC acc[CW_MR][2];                                                     \
        CW_UNROLL for (int r = 0; r < NR; r++) acc[r][0] = acc[r][1] =         \
            (VEC){0};                                                          \
        for (int c = 0; c < C; c++) {                                          \
            VEC u0, u1;                                                        \
            CW_LOADA(VEC, u0, u + (size_t)c * OCP);                            \
            CW_LOADA(VEC, u1, u + (size_t)c * OCP + VL);                       \
            CW_UNROLL for (int r = 0; r < NR; r++) {                           \
                const float x = v[(size_t)r * CP + c];                         \
                acc[r][0] += x * u0;                                           \
                acc[r][1] += x * u1;                                           \
            }                                                                  \
        }                                                                      \
        CW_UNROLL for (int r = 0; r < NR; r++) {                               \
            CW_STOREA(VEC, m + (size_t)r * OCP, acc[r][0]);                    \
            CW_STOREA(VEC, m + (size_t)r * OCP + VL, acc[r][1]);               \
        }                                                                      \
    }                                                                          \
                                                                               \
    /* M of tile tl (64 vectors at m + xi*ms), channels oc0.. -> the 4x4      \
     * outputs of sample s's tile (ty, tx) in out, or their 2x2 pooled ones. */\
    TARGET                                                                     \
    CW_INLINE void output_##VEC(const cw_args *a, const float *m, size_t ms,   \
                                const float *bias, int oc0, int s, int ty,     \
                                int tx, float *out) {                          \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        VEC x[CW_P], t[CW_O * CW_T], y[CW_O * CW_O];                           \
        for (int xi = 0; xi < CW_P; xi++) CW_LOADA(VEC, x[xi], m + xi * ms);   \
        for (int col = 0; col < CW_T; col++)                                   \
            CW_APPLY(VEC, CW_AT, CW_O, CW_T, t + col, CW_T, x + col, CW_T);    \
        for (int row = 0; row < CW_O; row++)                                   \
            CW_APPLY(VEC, CW_AT, CW_O, CW_T, y + row * CW_O, 1,                \
                     t + row * CW_T, 1);                                       \
        VEC bv;                                                                \
        CW_LOADA(VEC, bv, bias + oc0);                                         \
        const bool relu = a->act == relu_forward;                              \
        const int n = a->OC - oc0 < VL ? a->OC - oc0 : VL;                     \
        const size_t plane = (size_t)a->POH * a->POW;                          \
        float *o = out + ((size_t)s * a->OC + oc0) * plane;                    \
        float lanes[VL];                                                       \
        int outputs = CW_O * CW_O, side = CW_O;                                \
        if (a->pool) {                                                         \
            /* Window (py, px): y[(2py + dy) * 4 + 2px + dx], folded with      \
             * conv_infer.c's max_nan in its order (dy, dx) = (0,0), (0,1),    \
             * (1,0), (1,1): the first NaN wins, else the larger. */           \
            for (int k = 0; k < 4; k++) {                                      \
                const VEC *w0 = y + (k / 2) * 2 * CW_O + (k % 2) * 2;          \
                const VEC win[4] = {w0[0], w0[1], w0[CW_O], w0[CW_O + 1]};     \
                VEC mx = win[0];                                               \
                for (int q = 1; q < 4; q++) {                                  \
                    __typeof__(mx > win[q]) take =                             \
                        (win[q] > mx) | ((win[q] != win[q]) & (mx == mx));     \
                    mx = CW_SELECT(VEC, take, win[q], mx);                     \
                }                                                              \
                x[k] = mx; /* x is free again */                               \
            }                                                                  \
            for (int k = 0; k < 4; k++) y[k] = x[k];                           \
            outputs = 4;                                                       \
            side = 2;                                                          \
        }                                                                      \
        for (int k = 0; k < outputs; k++) {                                    \
            const int oh = side * ty + k / side;                               \
            const int ow = side * tx + k % side;                               \
            if (oh >= a->POH || ow >= a->POW) continue;                        \
            VEC val = y[k] + bv;                                               \
            if (relu) val = CW_SELECT(VEC, val > 0, val, (VEC){0});            \
            VEC_STORE(lanes, val);                                             \
            if (a->act && !relu) a->act(lanes, lanes, (size_t)n);              \
            float *p = o + (size_t)oh * a->POW + ow;                           \
            for (int j = 0; j < n; j++) p[(size_t)j * plane] = lanes[j];       \
        }                                                                      \
    }                                                                          \
                                                                               \
    /* Tiles [t0, t0 + n) of the group whose first sample is s0 (HWC           \
     * planes at hwc), through steps 2 to 4; v, m: this thread's block         \
     * buffers (64, CW_TB_MAX, CP) and (64, CW_TB_MAX, OCP). */                \
    TARGET                                                                     \
    CW_INLINE void block_##VEC(const cw_args *a, const float *u,               \
                               const float *bias, const float *hwc,            \
                               size_t hwc_size, int s0, int t0, int n,         \
                               float *v, float *m, float *out) {               \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const int tps = a->TY * a->TX;                                         \
        const size_t vs = v_stride(a), ms = m_stride(a);                       \
        for (int tl = 0; tl < n; tl++) {                                       \
            const int t = t0 + tl, s = t / tps;                                \
            const int ty = t % tps / a->TX, tx = t % tps % a->TX;              \
            const float *p = hwc + s * hwc_size +                              \
                             ((size_t)CW_O * ty * a->WT + CW_O * tx) * a->CP;  \
            for (int c0 = 0; c0 < a->C; c0 += VL)                              \
                input_##VEC(a, p, c0, v + (size_t)tl * a->CP + c0, vs);        \
        }                                                                      \
        const int oc_end = (int)round_up((size_t)a->OC, 2 * VL);               \
        for (int xi = 0; xi < CW_P; xi++) {                                    \
            const float *vx = v + xi * vs;                                     \
            float *mx = m + xi * ms;                                           \
            for (int oc0 = 0; oc0 < oc_end; oc0 += 2 * VL) {                   \
                const float *ux = u + (size_t)xi * a->US + oc0;                \
                int r0 = 0;                                                    \
                for (; n - r0 >= CW_MR; r0 += CW_MR)                           \
                    gemm_tile_##VEC(CW_MR, vx + (size_t)r0 * a->CP, ux, a->C,  \
                                    a->CP, a->OCP,                             \
                                    mx + (size_t)r0 * a->OCP + oc0);           \
                switch (n - r0) {                                              \
                case 5:                                                        \
                    CW_GEMM_REST(VEC, 5);                                      \
                    break;                                                     \
                case 4:                                                        \
                    CW_GEMM_REST(VEC, 4);                                      \
                    break;                                                     \
                case 3:                                                        \
                    CW_GEMM_REST(VEC, 3);                                      \
                    break;                                                     \
                case 2:                                                        \
                    CW_GEMM_REST(VEC, 2);                                      \
                    break;                                                     \
                case 1:                                                        \
                    CW_GEMM_REST(VEC, 1);                                      \
                    break;                                                     \
                default:                                                       \
                    break;                                                     \
                }                                                              \
            }                                                                  \
        }                                                                      \
        for (int tl = 0; tl < n; tl++) {                                       \
            const int t = t0 + tl, s = t / tps;                                \
            const int ty = t % tps / a->TX, tx = t % tps % a->TX;              \
            for (int oc0 = 0; oc0 < a->OC; oc0 += VL)                          \
                output_##VEC(a, m + (size_t)tl * a->OCP + oc0, ms, bias, oc0,  \
                             s0 + s, ty, tx, out);                             \
        }                                                                      \
    }
#define CW_GEMM_REST(VEC, NR)                                                  \
    gemm_tile_##VEC(NR, vx + (size_t)r0 * a->CP, ux, a->C, a->CP, a->OCP,      \
                    mx + (size_t)r0 * a->OCP + oc0)

/* One variant: the steps for its vector type. */
typedef struct {
    const char *name;
    int vl; /* floats per vector */
    void (*weights)(const cw_args *a, int c, int oc0, float *u);
    void (*block)(const cw_args *a, const float *u, const float *bias,
                  const float *hwc, size_t hwc_size, int s0, int t0, int n,
                  float *v, float *m, float *out);
} cw_impl;

#define CW_WRAP(VEC, NAME, TARGET)                                             \
    TARGET static void weights_##NAME(const cw_args *a, int c, int oc0,        \
                                      float *u) {                              \
        weights_##VEC(a, c, oc0, u);                                           \
    }                                                                          \
    TARGET static void block_##NAME(const cw_args *a, const float *u,          \
                                    const float *bias, const float *hwc,       \
                                    size_t hwc_size, int s0, int t0, int n,    \
                                    float *v, float *m, float *out) {          \
        block_##VEC(a, u, bias, hwc, hwc_size, s0, t0, n, v, m, out);          \
    }

CW_DEFINE(v4, )
CW_WRAP(v4, generic, )
#ifdef NN_SIMD_X86
CW_DEFINE(v16, NN_TARGET_AVX512)
CW_WRAP(v16, avx512, NN_TARGET_AVX512)
CW_DEFINE(v8, NN_TARGET_AVX2)
CW_WRAP(v8, avx2, NN_TARGET_AVX2)
#endif

static const cw_impl cw_impls[] = {
#ifdef NN_SIMD_X86
    {"avx512", 16, weights_avx512, block_avx512},
    {"avx2", 8, weights_avx2, block_avx2},
#endif
    {"generic", 4, weights_generic, block_generic},
};

/* The variant named (NULL: the best this CPU runs), or NULL when it is
 * unknown or not runnable here. */
static const cw_impl *find_impl(const char *variant) {
    for (size_t i = 0; i < sizeof cw_impls / sizeof cw_impls[0]; i++) {
        const cw_impl *im = &cw_impls[i];
        if (variant ? strcmp(im->name, variant) != 0
                    : !nn_simd_usable(im->name))
            continue;
        return nn_simd_usable(im->name) ? im : NULL;
    }
    return NULL;
}

/* Step 1 alone, for every (c, oc vector) of U up to OCP (zeros past OC,
 * which a wider variant's GEMM reads). The variants round differently (FMA
 * or not), so U is made by the one that will read it: then the results
 * are those of a call without U, bit for bit. */
float *conv_winograd_weights_create(const char *variant, const float *W,
                                    int C, int OC) {
    const cw_impl *im = find_impl(variant);
    if (C < 1 || OC < 1 || !im) return NULL;
    cw_args a = make_args(C, 5, 5, OC, 0, false);
    a.w = W;
    float *u = nn_floats_alloc(CW_P * a.US);
    if (!u) return NULL;
    const int oc_vecs = a.OCP / im->vl;
    for (int k = 0; k < C * oc_vecs; k++)
        im->weights(&a, k / oc_vecs, k % oc_vecs * im->vl, u);
    return u;
}

/* What one call of the forward pass shares between its threads. */
typedef struct {
    const cw_impl *im;
    const cw_args *a;
    const cw_layout *l;
    const float *u_ready; /* prepared U, or NULL: made in u */
    float *u, *bias, *hwc, *per_thread;
    const float *in;
    float *out;
    int B;
} cw_call;

/* Thread tid's part of the pass. The `omp for` loops bind to the
 * caller's team, or run whole when there is none (nn_serial). */
static void run_part(const cw_call *c, int tid) {
    const cw_impl *im = c->im;
    const cw_args *a = c->a;
    const cw_layout *l = c->l;
    const float *uw = c->u_ready ? c->u_ready : c->u; /* the U the GEMMs read */
    const size_t in_size = (size_t)a->C * a->H * a->W;
    const int tps = a->TY * a->TX;
    /* U's rows past C are never read, its columns up to the GEMM's last
     * pair of vectors are (as zeros). */
    const int oc_vecs =
        (int)round_up((size_t)a->OC, 2 * (size_t)im->vl) / im->vl;
    float *v = c->per_thread + (size_t)tid * l->per_thread, *m = v + l->v;
    /* Step 1, once per call unless prepared: every (c, oc vector) of U. */
    if (!c->u_ready) {
#pragma omp for schedule(static)
        for (int k = 0; k < a->C * oc_vecs; k++)
            im->weights(a, k / oc_vecs, k % oc_vecs * im->vl, c->u);
    }
    for (int s0 = 0; s0 < c->B; s0 += l->group) {
        const int g = c->B - s0 < l->group ? c->B - s0 : l->group;
#pragma omp for schedule(static)
        for (int s = 0; s < g; s++)
            to_hwc(a, c->in + (size_t)(s0 + s) * in_size, c->hwc + s * l->hwc);
        /* Blocks: as few as CW_TB_MAX allows, a multiple of the thread
         * count, of equal size (to one tile). */
        const int tiles = g * tps;
        int blocks = (tiles + CW_TB_MAX - 1) / CW_TB_MAX;
        blocks = (blocks + l->threads - 1) / l->threads * l->threads;
        if (blocks > tiles) blocks = tiles;
#pragma omp for schedule(static)
        for (int k = 0; k < blocks; k++) {
            const int t0 = (int)((long)tiles * k / blocks);
            const int t1 = (int)((long)tiles * (k + 1) / blocks);
            im->block(a, uw, c->bias, c->hwc, l->hwc, s0, t0, t1 - t0, v, m,
                      c->out);
        }
    }
}

static void run(const cw_impl *im, const cw_args *a, const float *u_ready,
                const float *in, float *out, int B, float *scratch,
                int threads) {
    const cw_layout l = layout(a, B, u_ready != NULL, threads);
    cw_call c = {.im = im, .a = a, .l = &l, .u_ready = u_ready, .in = in,
                 .out = out, .B = B};
    c.u = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    c.bias = c.u + l.u;
    c.hwc = c.bias + l.bias;
    c.per_thread = c.hwc + (size_t)l.group * l.hwc;
    memset(c.bias, 0, l.bias * sizeof *c.bias);
    memcpy(c.bias, a->b, (size_t)a->OC * sizeof *c.bias);
    if (nn_serial(l.threads)) {
        run_part(&c, 0);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(l.threads)
    run_part(&c, omp_get_thread_num());
#endif
}

int conv_winograd_variant(const char *variant, float *out, const float *in,
                          const float *W, const float *b, const float *u,
                          int B, int C, int H, int Wd, int OC, int pad,
                          act_forward_fn act, bool pool, float *scratch,
                          int threads) {
    /* Any shape with an output is computed; whether it pays is
     * conv_winograd_applies's question, not this one's. */
    if (C < 1 || OC < 1 || H + 2 * pad - 4 < 1 || Wd + 2 * pad - 4 < 1)
        return -1;
    cw_args a = make_args(C, H, Wd, OC, pad, pool);
    a.act = act;
    a.w = W;
    a.b = b;
    const cw_impl *im = find_impl(variant);
    if (!im) return -1;
    if (B > 0) run(im, &a, u, in, out, B, scratch, threads);
    return 0;
}
