/*
 * conv_winograd_grad.c: the gradients of a 5x5 convolution (stride 1, zero
 * padding) by Winograd's F(4x4, 5x5), for training. Where
 * conv_winograd_applies(), conv_backward (conv.c) calls this instead of
 * im2col + GEMM, and conv_forward calls the inference kernel
 * (conv_winograd.c) without activation or pooling. Why: with im2col the
 * default CNN's conv2 (32 -> 64 channels on 14x14) is 30 M of the 33.7 M
 * multiply-adds of a training step per image (forward, dW and din, 10 M
 * each), and its GEMMs already ran near the FMA peak; here each of the
 * three is 2.1 M multiply-adds of GEMM plus the transforms.
 *
 *   in (B,C,H,W), W (OC,C,5,5), dout (B,OC,OH,OW) -> dW (OC,C,5,5), and
 *   din (B,C,H,W) unless NULL; OH = H + 2*pad - 4, OW likewise.
 *
 * Method. The forward pass computes each 4x4 output tile as
 *   Y = A^T [sum over c of U * V] A,  U = G g G^T,  V = B^T d B
 * (winograd_matrices.h), d the tile's 8x8 input patch: tiles start every
 * 4 rows and columns of the padded input, so patches overlap by 4. Its
 * adjoint, with xi = 8*i + j one of the 64 points of a transformed tile:
 *   dM = A dY A^T                      dY: the tile's 4x4 of dout, zeros
 *                                          past OH, OW
 *   dU[xi] (C,OC) += V[xi]^T (C,T) x dM[xi] (T,OC)   over all T tiles
 *   dV[xi] (T,C)   = dM[xi] (T,OC) x U[xi]^T (OC,C)  U^T stored (OC,CP)
 *   din patch     += B dV B^T          overlaps summed, padding dropped
 *   dW             = G^T dU G
 * The two GEMMs per xi run on a register tile of their own (wg_gemm), over
 * blocks of about WG_TILES tiles (2 samples of 14x14), whose V (64, T, CP)
 * and dM (64, T, OCP) take 256 and 512 KiB, so they are still in L2 when
 * the GEMMs read them. Blocks of 128 tiles (3 MiB) ran conv2's backward
 * about 15% slower (bench_conv, 1 and 2 threads). The products are small
 * (32 x 64 x 32 for the default CNN's conv2): nn_sgemm's packing on every
 * call ran them at 53-88 GFLOP/s on one core.
 * The transforms read and write planes with the channels innermost
 * (HWC, channels rounded up to WG_LANES with zeros), so they are vector
 * code over WG_LANES channels at a time (one zmm, or two ymm), compiled
 * for AVX-512, AVX2 and plain x86-64 and picked at run time as nn/'s
 * other kernels.
 *
 * Threads and order, as conv.c's: the batch is cut into chunks by (B,
 * threads) alone; a chunk sums its partial dU over its samples in order,
 * and the partials are added in chunk order, so dW is the same run to run
 * for a thread count. din does not depend on the thread count: each
 * element of dV is one sum over the output channels in order, whatever
 * block its sample is in.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "layers.h"
#include "nn.h"
#include "simd.h"
#include "winograd_matrices.h"

/* Under AddressSanitizer (NN_SANITIZED) the loops stay rolled: see simd.h. */
#define WG_INLINE static inline __attribute__((always_inline))
#if defined(NN_SANITIZED)
#define WG_UNROLL
#elif defined(__clang__)
#define WG_UNROLL _Pragma("clang loop unroll(full)")
#else
#define WG_UNROLL _Pragma("GCC unroll 64")
#endif

enum {
    WG_LANES = 16,  /* channels per step of the transforms */
    WG_TILES = 32,  /* tiles per GEMM block, about */
};

/* Everything about one shape. */
typedef struct {
    int C, H, W, OC, pad, OH, OW;
    int TY, TX, tps; /* tiles per sample: TY x TX */
    int HT, WT;      /* input plane (HT, WT, CP): 4*TY + 4 x 4*TX + 4 */
    int CP, OCP;     /* channels rounded up to WG_LANES */
    int S;           /* samples per GEMM block */
    size_t vs, ms;   /* floats from V[xi] to V[xi + 1], dM likewise */
    size_t nu;       /* floats of a dU: 64 x (C, OCP) */
    size_t nut;      /* floats of U^T: 64 x (OCP, CP) */
    size_t in_plane, dy_plane, per_chunk;
    size_t m_off, du_off, in_off, dy_off; /* in a slice; V is at 0 */
} wg_shape;

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

static wg_shape shape_of(int C, int H, int W, int OC, int pad) {
    wg_shape s = {.C = C, .H = H, .W = W, .OC = OC, .pad = pad};
    s.OH = H + 2 * pad - 4;
    s.OW = W + 2 * pad - 4;
    s.TY = (s.OH + CW_O - 1) / CW_O;
    s.TX = (s.OW + CW_O - 1) / CW_O;
    s.tps = s.TY * s.TX;
    s.HT = CW_O * s.TY + 4;
    s.WT = CW_O * s.TX + 4;
    s.CP = (int)round_up((size_t)C, WG_LANES);
    s.OCP = (int)round_up((size_t)OC, WG_LANES);
    s.S = s.tps < WG_TILES ? WG_TILES / s.tps : 1;
    /* One cache line more than a block's rows, so that the 64 points of
     * a tile do not all fall into one set of L1 (see conv_winograd.c). */
    s.vs = (size_t)s.S * s.tps * s.CP + 16;
    s.ms = (size_t)s.S * s.tps * s.OCP + 16;
    s.nu = (size_t)CW_P * s.C * s.OCP;
    s.nut = (size_t)CW_P * s.OCP * s.CP;
    s.in_plane = (size_t)s.HT * s.WT * s.CP;
    s.dy_plane = (size_t)CW_O * s.TY * CW_O * s.TX * s.OCP;
    /* A chunk's slice: V, dM, its dU, the input (and din) plane, the
     * dout plane. */
    s.m_off = CW_P * s.vs;
    s.du_off = s.m_off + CW_P * s.ms;
    s.in_off = s.du_off + round_up(s.nu, 16);
    s.dy_off = s.in_off + round_up(s.in_plane, 16);
    s.per_chunk = s.dy_off + round_up(s.dy_plane, 16);
    return s;
}

size_t conv_winograd_grad_scratch_floats(int C, int H, int W, int OC, int pad,
                                         int threads) {
    wg_shape s = shape_of(C, H, W, OC, pad);
    /* U, U^T, then one slice per chunk; 15 more to align to 64 bytes. */
    return round_up(s.nu, 16) + round_up(s.nut, 16) +
           (size_t)(threads > 1 ? threads : 1) * s.per_chunk + 15;
}

/* ---- planes: NCHW samples to and from channels-innermost ----------- */

/* in_s (C,H,W) -> plane (HT,WT,CP), the image at (pad, pad), zeros
 * around it and in the padding channels. HT >= H + 2*pad, so every pixel
 * has its place. */
static void to_plane(const wg_shape *s, const float *in_s, float *plane) {
    memset(plane, 0, s->in_plane * sizeof *plane);
    for (int c = 0; c < s->C; c++)
        for (int h = 0; h < s->H; h++) {
            float *d = plane + ((size_t)(h + s->pad) * s->WT + s->pad) * s->CP + c;
            const float *r = in_s + ((size_t)c * s->H + h) * s->W;
            for (int w = 0; w < s->W; w++) d[(size_t)w * s->CP] = r[w];
        }
}

/* dout_s (OC,OH,OW) -> plane (4*TY, 4*TX, OCP), zeros past OH, OW. */
static void dy_to_plane(const wg_shape *s, const float *dout_s, float *plane) {
    memset(plane, 0, s->dy_plane * sizeof *plane);
    const size_t row = (size_t)CW_O * s->TX * s->OCP;
    for (int oc = 0; oc < s->OC; oc++)
        for (int h = 0; h < s->OH; h++) {
            float *d = plane + (size_t)h * row + oc;
            const float *r = dout_s + ((size_t)oc * s->OH + h) * s->OW;
            for (int w = 0; w < s->OW; w++) d[(size_t)w * s->OCP] = r[w];
        }
}

/* plane (HT,WT,CP) -> din_s (C,H,W): the image's part; what fell on the
 * padding is dropped. */
static void from_plane(const wg_shape *s, const float *plane, float *din_s) {
    for (int c = 0; c < s->C; c++)
        for (int h = 0; h < s->H; h++) {
            const float *p =
                plane + ((size_t)(h + s->pad) * s->WT + s->pad) * s->CP + c;
            float *r = din_s + ((size_t)c * s->H + h) * s->W;
            for (int w = 0; w < s->W; w++) r[w] = p[(size_t)w * s->CP];
        }
}

/* ---- the transforms, WG_LANES channels at a time --------------------- */
/* Each is written once as an always-inline body and compiled into an
 * AVX-512, an AVX2 and a plain variant below. Loops over the matrices are
 * unrolled, so the terms with a zero coefficient are dropped at compile
 * time. */

/* V[xi] rows of one tile: v[xi*vs + lane] = (B^T d B)[xi] for the 8x8
 * patch at p (row stride rs, pixel stride ps floats). */
WG_INLINE void input_tile(const float *p, size_t rs, size_t ps, float *v,
                          size_t vs) {
    float t[CW_T][CW_T][WG_LANES];
    WG_UNROLL for (int i = 0; i < CW_T; i++)
        WG_UNROLL for (int l = 0; l < CW_T; l++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int k = 0; k < CW_T; k++) {
                const float b = CW_BT[i][k];
                if (b == 0) continue;
                const float *q = p + k * rs + l * ps;
                for (int c = 0; c < WG_LANES; c++) acc[c] += b * q[c];
            }
            memcpy(t[i][l], acc, sizeof acc);
        }
    WG_UNROLL for (int i = 0; i < CW_T; i++)
        WG_UNROLL for (int j = 0; j < CW_T; j++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int l = 0; l < CW_T; l++) {
                const float b = CW_BT[j][l];
                if (b == 0) continue;
                for (int c = 0; c < WG_LANES; c++) acc[c] += b * t[i][l][c];
            }
            memcpy(v + (size_t)(i * CW_T + j) * vs, acc, sizeof acc);
        }
}

/* dM rows of one tile: m[xi*ms + lane] = (A dY A^T)[xi] for the 4x4 of
 * dout at p (row stride rs, pixel stride ps). */
WG_INLINE void dy_tile(const float *p, size_t rs, size_t ps, float *m,
                       size_t ms) {
    float t[CW_T][CW_O][WG_LANES];
    WG_UNROLL for (int k = 0; k < CW_T; k++)
        WG_UNROLL for (int j = 0; j < CW_O; j++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int i = 0; i < CW_O; i++) {
                const float a = CW_AT[i][k];
                if (a == 0) continue;
                const float *q = p + i * rs + j * ps;
                for (int c = 0; c < WG_LANES; c++) acc[c] += a * q[c];
            }
            memcpy(t[k][j], acc, sizeof acc);
        }
    WG_UNROLL for (int k = 0; k < CW_T; k++)
        WG_UNROLL for (int l = 0; l < CW_T; l++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int j = 0; j < CW_O; j++) {
                const float a = CW_AT[j][l];
                if (a == 0) continue;
                for (int c = 0; c < WG_LANES; c++) acc[c] += a * t[k][j][c];
            }
            memcpy(m + (size_t)(k * CW_T + l) * ms, acc, sizeof acc);
        }
}

/* The adjoint of input_tile: the patch at p (as there) += B dV B^T, dV
 * read from v[xi*vs + lane]. */
WG_INLINE void din_tile(const float *v, size_t vs, float *p, size_t rs,
                        size_t ps) {
    float t[CW_T][CW_T][WG_LANES];
    WG_UNROLL for (int k = 0; k < CW_T; k++)
        WG_UNROLL for (int j = 0; j < CW_T; j++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int i = 0; i < CW_T; i++) {
                const float b = CW_BT[i][k];
                if (b == 0) continue;
                const float *q = v + (size_t)(i * CW_T + j) * vs;
                for (int c = 0; c < WG_LANES; c++) acc[c] += b * q[c];
            }
            memcpy(t[k][j], acc, sizeof acc);
        }
    WG_UNROLL for (int k = 0; k < CW_T; k++)
        WG_UNROLL for (int l = 0; l < CW_T; l++) {
            float *q = p + k * rs + l * ps;
            float acc[WG_LANES];
            memcpy(acc, q, sizeof acc);
            WG_UNROLL for (int j = 0; j < CW_T; j++) {
                const float b = CW_BT[j][l];
                if (b == 0) continue;
                for (int c = 0; c < WG_LANES; c++) acc[c] += b * t[k][j][c];
            }
            memcpy(q, acc, sizeof acc);
        }
}

/* U[xi] (C, OCP), row c, output channels oc0.. oc0 + WG_LANES - 1 (zeros
 * past OC): G g G^T of the filters W[oc][c]. */
WG_INLINE void weights_tile(const wg_shape *s, const float *W, int c, int oc0,
                            float *u) {
    float g[5][5][WG_LANES] = {{{0}}};
    for (int o = 0; o < WG_LANES && oc0 + o < s->OC; o++)
        for (int k = 0; k < 25; k++)
            g[k / 5][k % 5][o] = W[((size_t)(oc0 + o) * s->C + c) * 25 + k];
    float t[CW_T][5][WG_LANES];
    WG_UNROLL for (int i = 0; i < CW_T; i++)
        WG_UNROLL for (int b = 0; b < 5; b++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int a = 0; a < 5; a++) {
                const float x = CW_G[i][a];
                if (x == 0) continue;
                for (int o = 0; o < WG_LANES; o++) acc[o] += x * g[a][b][o];
            }
            memcpy(t[i][b], acc, sizeof acc);
        }
    const size_t row = (size_t)c * s->OCP + oc0;
    WG_UNROLL for (int i = 0; i < CW_T; i++)
        WG_UNROLL for (int j = 0; j < CW_T; j++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int b = 0; b < 5; b++) {
                const float x = CW_G[j][b];
                if (x == 0) continue;
                for (int o = 0; o < WG_LANES; o++) acc[o] += x * t[i][b][o];
            }
            memcpy(u + (size_t)(i * CW_T + j) * s->C * s->OCP + row, acc,
                   sizeof acc);
        }
}

/* The adjoint of weights_tile: dW[oc][c] = G^T dU G for oc0.. (up to
 * OC), dU (64, C, OCP). */
WG_INLINE void weights_grad_tile(const wg_shape *s, const float *du, int c,
                                 int oc0, float *dW) {
    const size_t row = (size_t)c * s->OCP + oc0;
    float t[5][CW_T][WG_LANES];
    WG_UNROLL for (int a = 0; a < 5; a++)
        WG_UNROLL for (int j = 0; j < CW_T; j++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int i = 0; i < CW_T; i++) {
                const float x = CW_G[i][a];
                if (x == 0) continue;
                const float *q = du + (size_t)(i * CW_T + j) * s->C * s->OCP + row;
                for (int o = 0; o < WG_LANES; o++) acc[o] += x * q[o];
            }
            memcpy(t[a][j], acc, sizeof acc);
        }
    float g[5][5][WG_LANES];
    WG_UNROLL for (int a = 0; a < 5; a++)
        WG_UNROLL for (int b = 0; b < 5; b++) {
            float acc[WG_LANES] = {0};
            WG_UNROLL for (int j = 0; j < CW_T; j++) {
                const float x = CW_G[j][b];
                if (x == 0) continue;
                for (int o = 0; o < WG_LANES; o++) acc[o] += x * t[a][j][o];
            }
            memcpy(g[a][b], acc, sizeof acc);
        }
    for (int o = 0; o < WG_LANES && oc0 + o < s->OC; o++)
        for (int k = 0; k < 25; k++)
            dW[((size_t)(oc0 + o) * s->C + c) * 25 + k] = g[k / 5][k % 5][o];
}

/* ---- the GEMMs -------------------------------------------------------- */

/* wg_gemm_VEC: C (M, N) = A (M, K) x B (K, N), plus C's old values when
 * add, for N a multiple of WG_LANES. A is read one element at a time,
 * A[m][k] = a[m*am + k*ak], so V[xi]^T and dM[xi] are used where they
 * lie; B's rows (ldb apart) and C's (ldc) are contiguous. Register tile:
 * NV vectors of columns (up to 4) x ACC/NV rows, broadcasting A: 24 zmm
 * accumulators (6 x 64 or 12 x 32 columns) or 12 ymm/xmm (6 x 2
 * vectors). Each element is one sum over k in order, so a row's result
 * does not depend on the rows beside it. */
#define WG_DEFINE_GEMM(VEC)                                                    \
    WG_INLINE void gemm_tile_##VEC(const int NR, const int NV, int K,          \
                                   const float *a, size_t am, size_t ak,       \
                                   const float *b, size_t ldb, float *c,       \
                                   size_t ldc, bool add) {                     \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        VEC acc[12][4];                                                        \
        WG_UNROLL for (int r = 0; r < NR; r++)                                 \
            WG_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (VEC){0};       \
        for (int k = 0; k < K; k++) {                                          \
            VEC bv[4];                                                         \
            WG_UNROLL for (int v = 0; v < NV; v++)                             \
                VEC_LOAD(bv[v], b + (size_t)k * ldb + v * VL);                 \
            WG_UNROLL for (int r = 0; r < NR; r++) {                           \
                const float x = a[(size_t)r * am + (size_t)k * ak];            \
                WG_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += x * bv[v]; \
            }                                                                  \
        }                                                                      \
        WG_UNROLL for (int r = 0; r < NR; r++)                                 \
            WG_UNROLL for (int v = 0; v < NV; v++) {                           \
                float *cp = c + (size_t)r * ldc + v * VL;                      \
                VEC out = acc[r][v];                                           \
                if (add) {                                                     \
                    VEC old;                                                   \
                    VEC_LOAD(old, cp);                                         \
                    out = old + out;                                           \
                }                                                              \
                VEC_STORE(cp, out);                                            \
            }                                                                  \
    }                                                                          \
    /* Rows m0.. of columns n0.. (NV vectors): whole tiles, then rows one  */ \
    /* at a time. */                                                           \
    WG_INLINE void gemm_cols_##VEC(const int NV, int M, int K, const float *a, \
                                   size_t am, size_t ak, const float *b,       \
                                   size_t ldb, float *c, size_t ldc,           \
                                   bool add) {                                 \
        enum { VL = sizeof(VEC) / sizeof(float), ACC = VL == 16 ? 24 : 12 };   \
        const int MR = ACC / NV > 12 ? 12 : ACC / NV;                          \
        int m0 = 0;                                                            \
        for (; m0 + MR <= M; m0 += MR)                                         \
            gemm_tile_##VEC(MR, NV, K, a + (size_t)m0 * am, am, ak, b, ldb,    \
                            c + (size_t)m0 * ldc, ldc, add);                   \
        for (; m0 < M; m0++)                                                   \
            gemm_tile_##VEC(1, NV, K, a + (size_t)m0 * am, am, ak, b, ldb,     \
                            c + (size_t)m0 * ldc, ldc, add);                   \
    }                                                                          \
    WG_INLINE void wg_gemm_##VEC(int M, int N, int K, const float *a,          \
                                 size_t am, size_t ak, const float *b,         \
                                 size_t ldb, float *c, size_t ldc, bool add) { \
        enum { VL = sizeof(VEC) / sizeof(float), NVMAX = VL == 16 ? 4 : 2 };   \
        for (int n0 = 0; n0 < N;) {                                            \
            const int nv = (N - n0) / VL < NVMAX ? (N - n0) / VL : NVMAX;      \
            const float *bn = b + n0;                                          \
            float *cn = c + n0;                                                \
            if (nv >= 4)                                                       \
                gemm_cols_##VEC(4, M, K, a, am, ak, bn, ldb, cn, ldc, add);    \
            else if (nv == 3)                                                  \
                gemm_cols_##VEC(3, M, K, a, am, ak, bn, ldb, cn, ldc, add);    \
            else if (nv == 2)                                                  \
                gemm_cols_##VEC(2, M, K, a, am, ak, bn, ldb, cn, ldc, add);    \
            else                                                               \
                gemm_cols_##VEC(1, M, K, a, am, ak, bn, ldb, cn, ldc, add);    \
            n0 += (nv >= 4 ? 4 : nv) * VL;                                     \
        }                                                                      \
    }

WG_DEFINE_GEMM(v4)
#if defined(NN_SIMD_X86)
WG_DEFINE_GEMM(v8)
WG_DEFINE_GEMM(v16)
#endif

/* ---- per sample: all tiles and channel steps ------------------------ */

/* V rows r0.. of one sample from its input plane. */
WG_INLINE void input_sample(const wg_shape *s, const float *plane, float *v,
                            size_t r0) {
    const size_t rs = (size_t)s->WT * s->CP;
    for (int ty = 0; ty < s->TY; ty++)
        for (int tx = 0; tx < s->TX; tx++) {
            const size_t r = r0 + (size_t)ty * s->TX + tx;
            const float *p = plane + (size_t)CW_O * ty * rs + (size_t)CW_O * tx * s->CP;
            for (int c = 0; c < s->CP; c += WG_LANES)
                input_tile(p + c, rs, (size_t)s->CP, v + r * s->CP + c, s->vs);
        }
}

/* dM rows r0.. of one sample from its dout plane. */
WG_INLINE void dy_sample(const wg_shape *s, const float *plane, float *m,
                         size_t r0) {
    const size_t rs = (size_t)CW_O * s->TX * s->OCP;
    for (int ty = 0; ty < s->TY; ty++)
        for (int tx = 0; tx < s->TX; tx++) {
            const size_t r = r0 + (size_t)ty * s->TX + tx;
            const float *p = plane + (size_t)CW_O * ty * rs + (size_t)CW_O * tx * s->OCP;
            for (int c = 0; c < s->OCP; c += WG_LANES)
                dy_tile(p + c, rs, (size_t)s->OCP, m + r * s->OCP + c, s->ms);
        }
}

/* One sample's din plane (zeroed here) from its dV rows r0... */
WG_INLINE void din_sample(const wg_shape *s, const float *v, size_t r0,
                          float *plane) {
    memset(plane, 0, s->in_plane * sizeof *plane);
    const size_t rs = (size_t)s->WT * s->CP;
    for (int ty = 0; ty < s->TY; ty++)
        for (int tx = 0; tx < s->TX; tx++) {
            const size_t r = r0 + (size_t)ty * s->TX + tx;
            float *p = plane + (size_t)CW_O * ty * rs + (size_t)CW_O * tx * s->CP;
            for (int c = 0; c < s->CP; c += WG_LANES)
                din_tile(v + r * s->CP + c, s->vs, p + c, rs, (size_t)s->CP);
        }
}

typedef struct {
    void (*input)(const wg_shape *, const float *, float *, size_t);
    void (*dy)(const wg_shape *, const float *, float *, size_t);
    void (*din)(const wg_shape *, const float *, size_t, float *);
    void (*weights)(const wg_shape *, const float *, int, int, float *);
    void (*weights_grad)(const wg_shape *, const float *, int, int, float *);
    void (*gemm)(int, int, int, const float *, size_t, size_t, const float *,
                 size_t, float *, size_t, bool);
} wg_ops;

#define WG_DEFINE(NAME, ATTR, VEC)                                              \
    ATTR static void input_##NAME(const wg_shape *s, const float *pl,          \
                                  float *v, size_t r0) {                       \
        input_sample(s, pl, v, r0);                                            \
    }                                                                          \
    ATTR static void dy_##NAME(const wg_shape *s, const float *pl, float *m,   \
                               size_t r0) {                                    \
        dy_sample(s, pl, m, r0);                                               \
    }                                                                          \
    ATTR static void din_##NAME(const wg_shape *s, const float *v, size_t r0,  \
                                float *pl) {                                   \
        din_sample(s, v, r0, pl);                                              \
    }                                                                          \
    ATTR static void weights_##NAME(const wg_shape *s, const float *W, int c,  \
                                    int oc0, float *u) {                       \
        weights_tile(s, W, c, oc0, u);                                         \
    }                                                                          \
    ATTR static void weights_grad_##NAME(const wg_shape *s, const float *du,   \
                                         int c, int oc0, float *dW) {          \
        weights_grad_tile(s, du, c, oc0, dW);                                  \
    }                                                                          \
    ATTR static void gemm_##NAME(int M, int N, int K, const float *a,          \
                                 size_t am, size_t ak, const float *b,         \
                                 size_t ldb, float *c, size_t ldc, bool add) { \
        wg_gemm_##VEC(M, N, K, a, am, ak, b, ldb, c, ldc, add);                \
    }                                                                          \
    static const wg_ops ops_##NAME = {input_##NAME,   dy_##NAME,               \
                                      din_##NAME,     weights_##NAME,          \
                                      weights_grad_##NAME, gemm_##NAME};

WG_DEFINE(generic, , v4)
#if defined(NN_SIMD_X86)
#define WG_HAVE_X86 1
WG_DEFINE(avx2, NN_TARGET_AVX2, v8)
WG_DEFINE(avx512, NN_TARGET_AVX512, v16)
#endif

static const wg_ops *pick_ops(void) {
#ifdef WG_HAVE_X86
    if (nn_simd_usable("avx512")) return &ops_avx512;
    if (nn_simd_usable("avx2")) return &ops_avx2;
#endif
    return &ops_generic;
}

/* ---- the backward pass ------------------------------------------------ */

void conv_winograd_backward(float *din, float *dW, const float *dout,
                            const float *in, const float *W, int B, int C,
                            int H, int Wd, int OC, int pad, float *scratch,
                            int threads) {
    const wg_shape s = shape_of(C, H, Wd, OC, pad);
    const wg_ops *ops = pick_ops();
    const int chunks = conv_chunk_count(B, threads);
    /* one chunk on several threads: they share its 64 points instead */
    const int xi_threads = chunks == 1 && threads > 1 ? threads : 1;
    const int team_max = threads > 1 ? threads : 1;
    const size_t in_size = (size_t)C * H * Wd, out_size = (size_t)OC * s.OH * s.OW;
    const int oc_steps = s.OCP / WG_LANES;
    float *u = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *ut = u + round_up(s.nu, 16);
    float *slices = ut + round_up(s.nut, 16);

    /* U and its transpose U^T, needed for din only; U^T's padding
     * columns (c >= C) are zeros, so dV's are. */
    if (din) {
#pragma omp parallel num_threads(team_max) if (team_max > 1)
        {
#pragma omp for schedule(static)
            for (int k = 0; k < C * oc_steps; k++)
                ops->weights(&s, W, k / oc_steps, k % oc_steps * WG_LANES, u);
#pragma omp for schedule(static)
            for (int xi = 0; xi < CW_P; xi++) {
                const float *ux = u + (size_t)xi * C * s.OCP;
                float *utx = ut + (size_t)xi * s.OCP * s.CP;
                for (int oc = 0; oc < s.OCP; oc++) {
                    for (int c = 0; c < C; c++)
                        utx[(size_t)oc * s.CP + c] = ux[(size_t)c * s.OCP + oc];
                    for (int c = C; c < s.CP; c++)
                        utx[(size_t)oc * s.CP + c] = 0.0f;
                }
            }
        }
    }

#pragma omp parallel num_threads(chunks) if (chunks > 1)
    {
#ifdef _OPENMP
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        int tid = 0, team = 1;
#endif
        for (int ch = tid; ch < chunks; ch += team) {
            float *sl = slices + (size_t)ch * s.per_chunk;
            float *v = sl, *m = sl + s.m_off, *du = sl + s.du_off;
            float *plane = sl + s.in_off, *dy = sl + s.dy_off;
            const int b0 = (int)((long)B * ch / chunks);
            const int b1 = (int)((long)B * (ch + 1) / chunks);
            if (b0 == b1) memset(du, 0, s.nu * sizeof *du);
            for (int s0 = b0; s0 < b1; s0 += s.S) {
                const int ns = b1 - s0 < s.S ? b1 - s0 : s.S;
                const int T = ns * s.tps;
                for (int q = 0; q < ns; q++) {
                    const size_t r0 = (size_t)q * s.tps;
                    to_plane(&s, in + (size_t)(s0 + q) * in_size, plane);
                    ops->input(&s, plane, v, r0);
                    dy_to_plane(&s, dout + (size_t)(s0 + q) * out_size, dy);
                    ops->dy(&s, dy, m, r0);
                }
#pragma omp parallel for num_threads(xi_threads) if (xi_threads > 1) schedule(static)
                for (int xi = 0; xi < CW_P; xi++) {
                    float *vx = v + xi * s.vs, *mx = m + xi * s.ms;
                    /* dU[xi] (C, OCP) (+)= V[xi]^T (C, T) x dM[xi] (T, OCP) */
                    ops->gemm(C, s.OCP, T, vx, 1, (size_t)s.CP, mx,
                              (size_t)s.OCP, du + (size_t)xi * C * s.OCP,
                              (size_t)s.OCP, s0 != b0);
                    /* dV[xi] (T, CP) = dM[xi] (T, OC) x U^T[xi] (OC, CP),
                     * into V[xi], which the line above has read for the
                     * last time. */
                    if (din)
                        ops->gemm(T, s.CP, OC, mx, (size_t)s.OCP, 1,
                                  ut + (size_t)xi * s.OCP * s.CP, (size_t)s.CP,
                                  vx, (size_t)s.CP, false);
                }
                if (!din) continue;
                for (int q = 0; q < ns; q++) {
                    ops->din(&s, v, (size_t)q * s.tps, plane);
                    from_plane(&s, plane, din + (size_t)(s0 + q) * in_size);
                }
            }
        }
    }

    /* dU = the chunks' partials in chunk order, into chunk 0's; then dW. */
    float *du = slices + s.du_off;
    if (chunks > 1) {
#pragma omp parallel for num_threads(team_max) schedule(static)
        for (size_t i = 0; i < s.nu; i++) {
            float sum = du[i];
            for (int ch = 1; ch < chunks; ch++)
                sum += slices[(size_t)ch * s.per_chunk + s.du_off + i];
            du[i] = sum;
        }
    }
#pragma omp parallel for num_threads(team_max) if (team_max > 1) schedule(static)
    for (int k = 0; k < C * oc_steps; k++)
        ops->weights_grad(&s, du, k / oc_steps, k % oc_steps * WG_LANES, dW);
}
