/*
 * gemm.c: single-precision matrix product C = alpha*op(A)*op(B) + beta*C
 * (nn_sgemm), where the training of every dense and conv layer spends its
 * time.
 *
 * Blocking scheme (after Goto & van de Geijn, "Anatomy of high-performance
 * matrix multiplication", simplified for the NN's shapes):
 *
 *   for each depth block k0 (KC deep, the same split whatever the threads)
 *     pack op(A) rows of this slice x KC into MR-row panels      (L2)
 *     for each column block j0 (NC wide)
 *       pack op(B) KC x NC into NR-column panels                 (L2)
 *       for each MR panel of A      (one A panel, MR x KC, sits in L1)
 *         for each NR panel of B
 *           micro-kernel: an MR x NR tile of C in registers, summed over
 *           the KC depth in order, then C = alpha*tile + beta*C
 *
 * Packing copies each operand once into the order the micro-kernel reads
 * (for every k: MR values of A, NR values of B, contiguous), so the four
 * transpose cases differ only in the packing routines and the kernel runs
 * on unit-stride, aligned data. Panels at the edges are zero-padded; the
 * kernel stores only the valid part of its tile.
 *
 * Micro-kernel: written once with GCC vector extensions and compiled for
 * three targets: AVX-512 (8 x 32 tile of 16-float vectors, 16 zmm
 * accumulators), AVX2 (6 x 16, 12 ymm) and plain code (4 x 8, SSE2 on
 * x86-64), picked at run time with __builtin_cpu_supports so one binary
 * runs on any x86-64. The build must allow contraction (-ffp-contract=fast,
 * set in CMakeLists.txt) so that `acc += a * b` becomes one FMA.
 *
 * A few rows (M <= GEMM_DIRECT_MAX_M, e.g. inference of one digit) skip
 * packing: a direct row-times-matrix loop reads B once per row, while
 * packing B alone would cost more than the whole product.
 *
 * Threads: C is cut into slices of whole tiles along M or N, one slice per
 * thread, each with its own packing buffers. Every element of C is then
 * computed by one thread, by the same kernel, over the same depth blocks
 * in the same order: results are bitwise identical whatever the thread
 * count. Small products run on the calling thread only.
 */
#include "layers.h"
#include "nn.h"
#include "simd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef NN_SIMD_X86
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------ */
/* Tuning constants                                                    */
/* ------------------------------------------------------------------ */

/* Deepest packed block. K is cut into equal blocks of at most this depth
 * (784 -> 2 x 392), which depends on K only, never on threads. One A panel
 * (8 x 512 floats = 16 KiB) fits L1 beside the B data streaming through. */
#define GEMM_KC 512
/* Widest packed block of B: KC x NC floats = 512 KiB at most, in L2. */
#define GEMM_NC 256
/* Up to this many rows of op(A), skip packing (see the top comment):
 * measured faster than packing for 1..4 rows of the MLP's shapes. */
#define GEMM_DIRECT_MAX_M 4
/* Packing buffers up to this many floats live on the stack (32 KiB). */
#define GEMM_STACK_FLOATS 8192

/* Largest tile any kernel instantiation uses: rows, vectors per row. */
#define GEMM_MAX_MR 8
#define GEMM_MAX_NV 2

/* Forced inline, so the tile sizes become constants; not under the
 * sanitizers (NN_SANITIZED, see simd.h). */
#if defined(NN_SANITIZED)
#define GEMM_INLINE static inline
#else
#define GEMM_INLINE static inline __attribute__((always_inline))
#endif

/* Unrolls a loop of constant trip count (at most 16) completely: loops over
 * the accumulators must, or they stay in memory instead of registers.
 * clang would otherwise interleave a one-vector-wide loop by 2 first and
 * then leave it rolled (measured: 3x slower 8 x 16 kernel). */
#if defined(NN_SANITIZED)
#define GEMM_UNROLL
#elif defined(__clang__)
#define GEMM_UNROLL                                                            \
    _Pragma("clang loop unroll(full) vectorize(disable) interleave_count(1)")
#else
#define GEMM_UNROLL _Pragma("GCC unroll 16")
#endif

/* Every argument of one call, so the inner functions take one pointer. */
typedef struct {
    bool ta, tb;
    int N, K; /* N: columns of the whole C, not of one thread's slice */
    float alpha, beta;
    const float *A;
    const float *B;
    float *C;
    size_t lda, ldb, ldc;
} gemm_args;

/* op(A)[i][k], for the direct path. */
GEMM_INLINE float a_at(const gemm_args *g, int i, int k) {
    return g->ta ? g->A[(size_t)k * g->lda + i] : g->A[(size_t)i * g->lda + k];
}

/* C = alpha * s + beta * C for one element; beta == 0 never reads C. */
GEMM_INLINE void c_update(float *c, float s, float alpha, float beta) {
    *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
}

/* ------------------------------------------------------------------ */
/* Vectors                                                             */
/* ------------------------------------------------------------------ */

/* v16, v8, v4, VEC_LOAD and VEC_STORE: nn/simd.h. */

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define GEMM_HAVE_SHUFFLE 1
#endif
#endif

/* dst[j*ldd + i] = src[i*lds + j] for i, j < 8: an 8x8 block transposed
 * in registers, the building block of the transposing packs. */
GEMM_INLINE void transpose8x8(const float *src, size_t lds, float *dst,
                              size_t ldd) {
#ifdef GEMM_HAVE_SHUFFLE
    v8 r[8], t[8], u[8], o[8];
    for (int i = 0; i < 8; i++)
        memcpy(&r[i], src + (size_t)i * lds, sizeof(v8));
    /* 32-bit interleave of row pairs: t0 = a0 b0 a1 b1 | a4 b4 a5 b5 */
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1],
                                       0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1],
                                           2, 10, 3, 11, 6, 14, 7, 15);
    }
    /* 64-bit interleave: u0 = a0 b0 c0 d0 | a4 b4 c4 d4, u1 = ..1 | ..5 */
    for (int h = 0; h < 8; h += 4) {
        u[h + 0] = __builtin_shufflevector(t[h], t[h + 2],
                                           0, 1, 8, 9, 4, 5, 12, 13);
        u[h + 1] = __builtin_shufflevector(t[h], t[h + 2],
                                           2, 3, 10, 11, 6, 7, 14, 15);
        u[h + 2] = __builtin_shufflevector(t[h + 1], t[h + 3],
                                           0, 1, 8, 9, 4, 5, 12, 13);
        u[h + 3] = __builtin_shufflevector(t[h + 1], t[h + 3],
                                           2, 3, 10, 11, 6, 7, 14, 15);
    }
    /* 128-bit halves: column j of the block is o[j]. */
    for (int j = 0; j < 4; j++) {
        o[j] = __builtin_shufflevector(u[j], u[j + 4],
                                       0, 1, 2, 3, 8, 9, 10, 11);
        o[j + 4] = __builtin_shufflevector(u[j], u[j + 4],
                                           4, 5, 6, 7, 12, 13, 14, 15);
    }
    for (int j = 0; j < 8; j++)
        memcpy(dst + (size_t)j * ldd, &o[j], sizeof(v8));
#else
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
#endif
}

/* dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols (nn_transpose):
 * 8x8 blocks in registers, the edges one by one. */
GEMM_INLINE void transpose_any(const float *src, size_t lds, float *dst,
                               size_t ldd, int rows, int cols) {
    int i = 0;
    for (; i + 8 <= rows; i += 8) {
        int j = 0;
        for (; j + 8 <= cols; j += 8)
            transpose8x8(src + (size_t)i * lds + j, lds,
                         dst + (size_t)j * ldd + i, ldd);
        for (; j < cols; j++)
            for (int r = i; r < i + 8; r++)
                dst[(size_t)j * ldd + r] = src[(size_t)r * lds + j];
    }
    for (; i < rows; i++)
        for (int j = 0; j < cols; j++)
            dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
}

/* ------------------------------------------------------------------ */
/* Packing                                                             */
/* ------------------------------------------------------------------ */

/* Packs op(A) rows i0..i0+mlen-1, depth k0..k0+kc-1, into panels of MR
 * rows: panel p holds, for each k, the MR values op(A)[i0+p*MR+r][k0+k]
 * at dst[p*MR*kc + k*MR + r]. Rows past mlen are zero. */
GEMM_INLINE void pack_a(const int MR, const gemm_args *g, int i0, int mlen,
                        int k0, int kc, float *restrict dst) {
    for (int p = 0; p < mlen; p += MR) {
        int rows = mlen - p < MR ? mlen - p : MR;
        float *d = dst + (size_t)p * kc;
        if (g->ta) {
            /* A stored (K, M): the MR values of one k are contiguous. */
            for (int k = 0; k < kc; k++) {
                const float *s = g->A + (size_t)(k0 + k) * g->lda + i0 + p;
                for (int r = 0; r < MR; r++)
                    d[(size_t)k * MR + r] = r < rows ? s[r] : 0.0f;
            }
            continue;
        }
        /* A stored (M, K): a transpose, by 8x8 blocks where it can. */
        const float *s = g->A + (size_t)(i0 + p) * g->lda + k0;
        int k = 0;
        if (MR % 8 == 0 && rows == MR)
            for (; k + 8 <= kc; k += 8)
                for (int r = 0; r < MR; r += 8)
                    transpose8x8(s + (size_t)r * g->lda + k, g->lda,
                                 d + (size_t)k * MR + r, MR);
        for (; k < kc; k++)
            for (int r = 0; r < MR; r++)
                d[(size_t)k * MR + r] =
                    r < rows ? s[(size_t)r * g->lda + k] : 0.0f;
    }
}

/* Packs op(B) depth k0..k0+kc-1, columns j0..j0+nlen-1, into panels of NR
 * columns: panel q holds, for each k, op(B)[k0+k][j0+q*NR+c] at
 * dst[q*NR*kc + k*NR + c]. Columns past nlen are zero. */
GEMM_INLINE void pack_b(const int NR, const gemm_args *g, int j0, int nlen,
                        int k0, int kc, float *restrict dst) {
    for (int q = 0; q < nlen; q += NR) {
        int cols = nlen - q < NR ? nlen - q : NR;
        float *d = dst + (size_t)q * kc;
        if (!g->tb) {
            /* B stored (K, N): each k is a contiguous run of NR values. */
            for (int k = 0; k < kc; k++) {
                const float *s = g->B + (size_t)(k0 + k) * g->ldb + j0 + q;
                if (cols == NR) {
                    memcpy(d + (size_t)k * NR, s, NR * sizeof(float));
                } else {
                    for (int c = 0; c < NR; c++)
                        d[(size_t)k * NR + c] = c < cols ? s[c] : 0.0f;
                }
            }
            continue;
        }
        /* B stored (N, K): a transpose, by 8x8 blocks where it can. */
        const float *s = g->B + (size_t)(j0 + q) * g->ldb + k0;
        int k = 0;
        if (NR % 8 == 0 && cols == NR)
            for (; k + 8 <= kc; k += 8)
                for (int c = 0; c < NR; c += 8)
                    transpose8x8(s + (size_t)c * g->ldb + k, g->ldb,
                                 d + (size_t)k * NR + c, NR);
        for (; k < kc; k++)
            for (int c = 0; c < NR; c++)
                d[(size_t)k * NR + c] =
                    c < cols ? s[(size_t)c * g->ldb + k] : 0.0f;
    }
}

/* ------------------------------------------------------------------ */
/* Micro-kernel and direct path, once per vector width                 */
/* ------------------------------------------------------------------ */

/* Both bodies are written once, as macros over the vector type VEC (VL
 * floats), and defined for v16, v8 and v4: a compiler cannot keep a
 * 64-byte vector in AVX2's registers (it goes through memory at every
 * step, ten times slower), so AVX2 uses v8 and plain code v4. */

/* micro_kernel_VEC: one MR x NR tile (NR = VL*NV). a is a packed A panel
 * (kc, MR), b a packed B panel (kc, NR), aligned to a whole vector (the
 * buffer is 64-byte aligned and panels are NR*kc floats apart). Sums over
 * k in order into registers, then writes C[0..mr)[0..nr) = alpha*sum +
 * beta*C (beta == 0: C unread). MR and NV are constants once inlined, so the
 * loops unroll completely and the accumulators stay in registers. */
#define GEMM_DEFINE_MICRO_KERNEL(VEC)                                          \
    GEMM_INLINE void micro_kernel_##VEC(                                       \
        const int MR, const int NV, int kc, const float *restrict a,           \
        const float *restrict b, float *restrict c, size_t ldc, int mr,        \
        int nr, float alpha, float beta) {                                     \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const int NR = VL * NV;                                                \
        VEC acc[GEMM_MAX_MR][GEMM_MAX_NV];                                     \
        GEMM_UNROLL for (int i = 0; i < MR; i++)                               \
            GEMM_UNROLL for (int v = 0; v < NV; v++)                           \
                acc[i][v] = (VEC){0};                                          \
        b = __builtin_assume_aligned(b, sizeof(VEC));                          \
        for (int k = 0; k < kc; k++) {                                         \
            VEC bv[GEMM_MAX_NV];                                               \
            GEMM_UNROLL for (int v = 0; v < NV; v++)                           \
                bv[v] = *(const VEC *)(b + (size_t)k * NR + VL * v);           \
            GEMM_UNROLL for (int i = 0; i < MR; i++) {                         \
                float ai = a[(size_t)k * MR + i];                              \
                GEMM_UNROLL for (int v = 0; v < NV; v++)                       \
                    acc[i][v] += ai * bv[v];                                   \
            }                                                                  \
        }                                                                      \
        if (mr == MR && nr == NR) {                                            \
            GEMM_UNROLL for (int i = 0; i < MR; i++)                           \
                GEMM_UNROLL for (int v = 0; v < NV; v++) {                     \
                    float *p = c + (size_t)i * ldc + VL * v;                   \
                    VEC out = alpha * acc[i][v];                               \
                    if (beta != 0.0f) {                                        \
                        VEC old;                                               \
                        VEC_LOAD(old, p);                                      \
                        out = alpha * acc[i][v] + beta * old;                  \
                    }                                                          \
                    VEC_STORE(p, out);                                         \
                }                                                              \
            return;                                                            \
        }                                                                      \
        /* Edge tile: through memory, element by element. */                   \
        float tile[GEMM_MAX_MR * GEMM_MAX_NV * 16];                            \
        GEMM_UNROLL for (int i = 0; i < MR; i++)                               \
            GEMM_UNROLL for (int v = 0; v < NV; v++)                           \
                VEC_STORE(tile + i * NR + VL * v, acc[i][v]);                  \
        for (int i = 0; i < mr; i++)                                           \
            for (int j = 0; j < nr; j++)                                       \
                c_update(c + (size_t)i * ldc + j, tile[i * NR + j], alpha,     \
                         beta);                                                \
    }

/* dot_rows_VEC: C[i0 + r][j + o] for r < R, o < nb <= NO, with B stored
 * (N, K): each element a dot product along k, VL lanes of k per vector
 * accumulator; the lanes are summed in order at the end and the k tail is
 * added last, so an element's value does not depend on R (on which rows
 * share the call). R and NO are constants once inlined. */
#define GEMM_DEFINE_DOT_ROWS(VEC)                                              \
    GEMM_INLINE void dot_rows_##VEC(const gemm_args *g, const int R,           \
                                    const int NO, int i0, int j, int nb,       \
                                    float *crow0) {                            \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const int K = g->K, KV = K - K % VL;                                   \
        /* The rows as locals, so that they stay in registers. */              \
        const float *ar[4], *br[4];                                            \
        GEMM_UNROLL for (int r = 0; r < R; r++)                                \
            ar[r] = g->A + (size_t)(i0 + r) * g->lda;                          \
        GEMM_UNROLL for (int o = 0; o < NO; o++)                               \
            br[o] = g->B + (size_t)(j + (o < nb ? o : 0)) * g->ldb;            \
        VEC acc[4][4];                                                         \
        GEMM_UNROLL for (int r = 0; r < R; r++)                                \
            GEMM_UNROLL for (int o = 0; o < NO; o++) acc[r][o] = (VEC){0};     \
        for (int k = 0; k < KV; k += VL) {                                     \
            VEC av[4];                                                         \
            GEMM_UNROLL for (int r = 0; r < R; r++) {                          \
                if (!g->ta) {                                                  \
                    VEC_LOAD(av[r], ar[r] + k);                                \
                } else {                                                       \
                    float col[VL];                                             \
                    for (int l = 0; l < VL; l++)                               \
                        col[l] = g->A[(size_t)(k + l) * g->lda + i0 + r];      \
                    VEC_LOAD(av[r], col);                                      \
                }                                                              \
            }                                                                  \
            GEMM_UNROLL for (int o = 0; o < NO; o++) {                         \
                if (o < nb) {                                                  \
                    VEC bv;                                                    \
                    VEC_LOAD(bv, br[o] + k);                                   \
                    GEMM_UNROLL for (int r = 0; r < R; r++)                    \
                        acc[r][o] += av[r] * bv;                               \
                }                                                              \
            }                                                                  \
        }                                                                      \
        GEMM_UNROLL for (int r = 0; r < R; r++) {                              \
            float *crow = crow0 + (size_t)r * g->ldc;                          \
            GEMM_UNROLL for (int o = 0; o < NO; o++) {                         \
                if (o >= nb)                                                   \
                    break;                                                     \
                /* lanes summed as a tree: a chain of VL adds per              \
                 * output was half of a batch-1 dense layer */                 \
                float h[VL];                                                   \
                VEC_STORE(h, acc[r][o]);                                       \
                for (int w = VL / 2; w > 0; w /= 2)                            \
                    for (int l = 0; l < w; l++)                                \
                        h[l] += h[l + w];                                      \
                float s = h[0];                                                \
                for (int k = KV; k < K; k++)                                   \
                    s += a_at(g, i0 + r, k) * br[o][k];                        \
                c_update(crow + j + o, s, g->alpha, g->beta);                  \
            }                                                                  \
        }                                                                      \
    }

/* dot_block_VEC: C rows m0..m1-1, columns n0..n1-1 with B stored (N, K),
 * by dot_rows. Four B rows (outputs) at a time, against every row of A in
 * groups of up to 4: the B rows are read from memory once per call and
 * then from L1/L2 for the other groups (a batch through a dense layer
 * streams the weights once, not once per input). 4 rows x 4 outputs would
 * not fit 16 ymm beside the row vectors, so 4 rows take 2 outputs twice.
 * nb is a constant in the common cases so that no test runs per k. */
#define GEMM_DEFINE_DOT_BLOCK(VEC)                                             \
    GEMM_INLINE void dot_block_##VEC(const gemm_args *g0, const bool ta,       \
                                     int m0, int m1, int n0, int n1) {         \
        gemm_args gc = *g0;                                                    \
        gc.ta = ta;                                                            \
        const gemm_args *g = &gc;                                              \
        for (int j = n0; j < n1; j += 4) {                                     \
            const int nb = n1 - j < 4 ? n1 - j : 4;                            \
            for (int i = m0; i < m1;) {                                        \
                const int R = m1 - i < 4 ? m1 - i : 4;                         \
                float *crow = g->C + (size_t)i * g->ldc;                       \
                if (nb == 4 && R == 4) {                                       \
                    dot_rows_##VEC(g, 4, 2, i, j, 2, crow);                    \
                    dot_rows_##VEC(g, 4, 2, i, j + 2, 2, crow);                \
                } else if (nb == 4 && R == 3) {                                \
                    dot_rows_##VEC(g, 3, 4, i, j, 4, crow);                    \
                } else if (nb == 4 && R == 2) {                                \
                    dot_rows_##VEC(g, 2, 4, i, j, 4, crow);                    \
                } else if (nb == 4) {                                          \
                    dot_rows_##VEC(g, 1, 4, i, j, 4, crow);                    \
                } else { /* the last outputs, one row at a time */             \
                    for (int r = 0; r < R; r++)                                \
                        dot_rows_##VEC(g, 1, 4, i + r, j, nb,                  \
                                       crow + (size_t)r * g->ldc);             \
                }                                                              \
                i += R;                                                        \
            }                                                                  \
        }                                                                      \
    }

/* direct_rows_VEC: C rows m0..m1-1, columns n0..n1-1, straight from A and
 * B, no packing. Used for a few rows (where packing B would cost as
 * much as the product) and as the fallback when packing memory cannot be
 * allocated. Each element is still summed in a fixed order that depends
 * only on the shapes.
 *   B (K, N): C row = sum over k of a[k] * B row k, 8*VL columns at once.
 *   B stored (N, K): dot_block. */
#define GEMM_DEFINE_DIRECT_ROWS(VEC)                                           \
    GEMM_INLINE void direct_rows_##VEC(const gemm_args *g, int m0, int m1,     \
                                       int n0, int n1) {                       \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const int K = g->K;                                                    \
        const float alpha = g->alpha, beta = g->beta;                          \
        if (g->tb) { /* a constant ta: no test per k */                        \
            if (g->ta)                                                         \
                dot_block_##VEC(g, true, m0, m1, n0, n1);                      \
            else                                                               \
                dot_block_##VEC(g, false, m0, m1, n0, n1);                     \
            return;                                                            \
        }                                                                      \
        for (int i = m0; i < m1; i++) {                                        \
            float *crow = g->C + (size_t)i * g->ldc;                           \
            int j = n0;                                                        \
            for (; j + 8 * VL <= n1; j += 8 * VL) {                            \
                VEC acc[8];                                                    \
                GEMM_UNROLL for (int v = 0; v < 8; v++)                        \
                    acc[v] = (VEC){0};                                         \
                for (int k = 0; k < K; k++) {                                  \
                    float s = a_at(g, i, k);                                   \
                    const float *brow = g->B + (size_t)k * g->ldb + j;         \
                    GEMM_UNROLL for (int v = 0; v < 8; v++) {                  \
                        VEC bv;                                                \
                        VEC_LOAD(bv, brow + VL * v);                           \
                        acc[v] += s * bv;                                      \
                    }                                                          \
                }                                                              \
                GEMM_UNROLL for (int v = 0; v < 8; v++) {                      \
                    VEC out = alpha * acc[v];                                  \
                    if (beta != 0.0f) {                                        \
                        VEC old;                                               \
                        VEC_LOAD(old, crow + j + VL * v);                      \
                        out = alpha * acc[v] + beta * old;                     \
                    }                                                          \
                    VEC_STORE(crow + j + VL * v, out);                         \
                }                                                              \
            }                                                                  \
            for (; j + VL <= n1; j += VL) {                                    \
                VEC acc = {0};                                                 \
                for (int k = 0; k < K; k++) {                                  \
                    VEC bv;                                                    \
                    VEC_LOAD(bv, g->B + (size_t)k * g->ldb + j);               \
                    acc += a_at(g, i, k) * bv;                                 \
                }                                                              \
                VEC out = alpha * acc;                                         \
                if (beta != 0.0f) {                                            \
                    VEC old;                                                   \
                    VEC_LOAD(old, crow + j);                                   \
                    out = alpha * acc + beta * old;                            \
                }                                                              \
                VEC_STORE(crow + j, out);                                      \
            }                                                                  \
            for (; j < n1; j++) {                                              \
                float s = 0.0f;                                                \
                for (int k = 0; k < K; k++)                                    \
                    s += a_at(g, i, k) * g->B[(size_t)k * g->ldb + j];         \
                c_update(crow + j, s, alpha, beta);                            \
            }                                                                  \
        }                                                                      \
    }

/* sparse_rows_VEC: C rows m0..m1-1, columns n0..n1-1, C = A B + beta C
 * with B stored (K, N), reading a row of B only where A's element is not
 * zero (nn_sgemm_sparse_a). Per block of columns, A's row is scanned in
 * segments: the non-zero positions are listed without branches (LIST),
 * then each listed row of B is added, so the zeros cost no load and no
 * mispredicted branch. Every element is summed over k in ascending order
 * whatever the blocks. ATTR: the variant's target, which LIST may need. */
enum { SPARSE_SEG = 512 };

/* The positions k0 + k (k < kn) where a0[k0 + k] != 0 or, with R == 2,
 * a1[k0 + k] != 0, ascending, into idx (room for kn + 16); returns their
 * count. One element at a time. */
GEMM_INLINE int list_nonzeros(const int R, const float *a0, const float *a1,
                              int k0, int kn, int *idx) {
    int nz = 0;
    for (int k = 0; k < kn; k++) {
        idx[nz] = k0 + k;
        nz += a0[k0 + k] != 0.0f || (R == 2 && a1[k0 + k] != 0.0f);
    }
    return nz;
}

#ifdef NN_SIMD_X86
/* list_nonzeros 16 elements at a time: a compare and a compress (a
 * third of the first dense layer's time in training when one by one). It
 * stores 16 positions whatever the count, hence idx's room. */
NN_TARGET_AVX512 GEMM_INLINE int list_nonzeros_avx512(const int R,
                                                      const float *a0,
                                                      const float *a1, int k0,
                                                      int kn, int *idx) {
    const __m512 zero = _mm512_setzero_ps();
    __m512i pos = _mm512_add_epi32(
        _mm512_set1_epi32(k0),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    int nz = 0;
    for (int k = 0; k < kn; k += 16) {
        const __mmask16 in =
            kn - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - k)) - 1);
        /* NEQ_UQ: true for NaN, as C's != */
        __mmask16 m = _mm512_mask_cmp_ps_mask(
            in, _mm512_maskz_loadu_ps(in, a0 + k0 + k), zero, _CMP_NEQ_UQ);
        if (R == 2)
            m |= _mm512_mask_cmp_ps_mask(
                in, _mm512_maskz_loadu_ps(in, a1 + k0 + k), zero, _CMP_NEQ_UQ);
        _mm512_storeu_si512((void *)(idx + nz), _mm512_maskz_compress_epi32(m, pos));
        nz += __builtin_popcount(m);
        pos = _mm512_add_epi32(pos, _mm512_set1_epi32(16));
    }
    return nz;
}
#define SPARSE_ATTR_v16 NN_TARGET_AVX512
#define SPARSE_LIST_v16 list_nonzeros_avx512
#define SPARSE_ATTR_v8 NN_TARGET_AVX2
#else
#define SPARSE_ATTR_v16
#define SPARSE_LIST_v16 list_nonzeros
#define SPARSE_ATTR_v8
#endif
#define SPARSE_LIST_v8 list_nonzeros
#define SPARSE_ATTR_v4
#define SPARSE_LIST_v4 list_nonzeros
/* Rows of A in pairs: AVX-512's 32 registers hold two rows' 8 vectors of
 * sums; AVX2's and SSE's 16 do not. The loads of B (from L2) bound this
 * kernel, not the multiply-adds, and rows that share non-zero positions
 * (images share pixels; neighbouring pixels, the rows of in^T, share
 * images) share them: the classic network trained 7% faster on one
 * thread (bench/README). */
#define SPARSE_PAIRS_v16 1
#define SPARSE_PAIRS_v8 0
#define SPARSE_PAIRS_v4 0

#define GEMM_DEFINE_SPARSE_ROWS(VEC)                                           \
    /* R (1 or 2) rows of A at once: their non-zero positions are listed  \
     * together, and each listed row of B, loaded once, is added to both   \
     * rows of C (times 0 where that row's element is 0, which leaves its  \
     * sum as it was). */                                                  \
    SPARSE_ATTR_##VEC GEMM_INLINE void sparse_block_##VEC(                     \
        const gemm_args *g, const int NV, const int R, const float *a0,       \
        const float *a1, int j, float *c0, float *c1) {                        \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        const float *arow[2] = {a0, a1};                                       \
        float *crow[2] = {c0, c1};                                             \
        VEC acc[2][8];                                                         \
        GEMM_UNROLL for (int r = 0; r < R; r++)                                \
            GEMM_UNROLL for (int v = 0; v < NV; v++)                           \
                acc[r][v] = (VEC){0};                                          \
        int idx[SPARSE_SEG + 16];                                              \
        for (int k0 = 0; k0 < g->K; k0 += SPARSE_SEG) {                        \
            const int kn = g->K - k0 < SPARSE_SEG ? g->K - k0 : SPARSE_SEG;    \
            const int nz = SPARSE_LIST_##VEC(R, a0, a1, k0, kn, idx);          \
            for (int t = 0; t < nz; t++) {                                     \
                float s[2];                                                    \
                GEMM_UNROLL for (int r = 0; r < R; r++)                        \
                    s[r] = arow[r][idx[t]];                                    \
                const float *brow = g->B + (size_t)idx[t] * g->ldb + j;        \
                GEMM_UNROLL for (int v = 0; v < NV; v++) {                     \
                    VEC bv;                                                    \
                    VEC_LOAD(bv, brow + VL * v);                               \
                    GEMM_UNROLL for (int r = 0; r < R; r++)                    \
                        acc[r][v] += s[r] * bv;                                \
                }                                                              \
            }                                                                  \
        }                                                                      \
        GEMM_UNROLL for (int r = 0; r < R; r++)                                \
            GEMM_UNROLL for (int v = 0; v < NV; v++) {                         \
                VEC out = acc[r][v];                                           \
                if (g->beta != 0.0f) {                                         \
                    VEC old;                                                   \
                    VEC_LOAD(old, crow[r] + j + VL * v);                       \
                    out = acc[r][v] + g->beta * old;                           \
                }                                                              \
                VEC_STORE(crow[r] + j + VL * v, out);                          \
            }                                                                  \
    }                                                                          \
    /* Rows i0.. of A against the panel of NV vectors at column j: in      \
     * pairs where the variant has the registers (SPARSE_PAIRS). */          \
    SPARSE_ATTR_##VEC GEMM_INLINE void sparse_panel_##VEC(                     \
        const gemm_args *g, const int NV, int m0, int m1, int j) {             \
        int i = m0;                                                            \
        if (SPARSE_PAIRS_##VEC)                                                \
            for (; i + 2 <= m1; i += 2)                                        \
                sparse_block_##VEC(g, NV, 2, g->A + (size_t)i * g->lda,        \
                                   g->A + (size_t)(i + 1) * g->lda, j,         \
                                   g->C + (size_t)i * g->ldc,                  \
                                   g->C + (size_t)(i + 1) * g->ldc);           \
        for (; i < m1; i++)                                                    \
            sparse_block_##VEC(g, NV, 1, g->A + (size_t)i * g->lda, NULL, j,   \
                               g->C + (size_t)i * g->ldc, NULL);               \
    }                                                                          \
    /* Panels of 8 vectors outside, rows inside: a panel's rows of B (8 VL  \
     * floats each, at most K of them: 1.6 MB for the CNN's dense256 in      \
     * AVX-512) stay in L2 from one row of A to the next, so a call reads    \
     * from memory the rows of B that any of its rows needs, once. */        \
    SPARSE_ATTR_##VEC GEMM_INLINE void sparse_rows_##VEC(                      \
        const gemm_args *g, int m0, int m1, int n0, int n1) {                  \
        enum { VL = sizeof(VEC) / sizeof(float) };                             \
        int j = n0;                                                            \
        for (; j + 8 * VL <= n1; j += 8 * VL)                                  \
            sparse_panel_##VEC(g, 8, m0, m1, j);                               \
        for (; j + VL <= n1; j += VL)                                          \
            sparse_panel_##VEC(g, 1, m0, m1, j);                               \
        for (; j < n1; j++)                                                    \
            for (int i = m0; i < m1; i++) {                                    \
                const float *arow = g->A + (size_t)i * g->lda;                 \
                float s = 0.0f;                                                \
                for (int k = 0; k < g->K; k++)                                 \
                    if (arow[k] != 0.0f)                                       \
                        s += arow[k] * g->B[(size_t)k * g->ldb + j];           \
                c_update(g->C + (size_t)i * g->ldc + j, s, 1.0f, g->beta);     \
            }                                                                  \
    }

GEMM_DEFINE_MICRO_KERNEL(v16)
GEMM_DEFINE_MICRO_KERNEL(v8)
GEMM_DEFINE_MICRO_KERNEL(v4)
GEMM_DEFINE_DOT_ROWS(v16)
GEMM_DEFINE_DOT_ROWS(v8)
GEMM_DEFINE_DOT_ROWS(v4)
GEMM_DEFINE_DOT_BLOCK(v16)
GEMM_DEFINE_DOT_BLOCK(v8)
GEMM_DEFINE_DOT_BLOCK(v4)
GEMM_DEFINE_DIRECT_ROWS(v16)
GEMM_DEFINE_DIRECT_ROWS(v8)
GEMM_DEFINE_DIRECT_ROWS(v4)
GEMM_DEFINE_SPARSE_ROWS(v16)
GEMM_DEFINE_SPARSE_ROWS(v8)
GEMM_DEFINE_SPARSE_ROWS(v4)

/* The width is a constant in every caller, so these choices fold away. */
GEMM_INLINE void micro_kernel(const int VL, const int MR, const int NV, int kc,
                              const float *a, const float *b, float *c,
                              size_t ldc, int mr, int nr, float alpha,
                              float beta) {
    if (VL == 16)
        micro_kernel_v16(MR, NV, kc, a, b, c, ldc, mr, nr, alpha, beta);
    else if (VL == 8)
        micro_kernel_v8(MR, NV, kc, a, b, c, ldc, mr, nr, alpha, beta);
    else
        micro_kernel_v4(MR, NV, kc, a, b, c, ldc, mr, nr, alpha, beta);
}

GEMM_INLINE void direct_rows(const int VL, const gemm_args *g, int m0, int m1,
                             int n0, int n1) {
    if (VL == 16)
        direct_rows_v16(g, m0, m1, n0, n1);
    else if (VL == 8)
        direct_rows_v8(g, m0, m1, n0, n1);
    else
        direct_rows_v4(g, m0, m1, n0, n1);
}


/* ------------------------------------------------------------------ */
/* Blocked product of one slice of C                                   */
/* ------------------------------------------------------------------ */

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

/* C rows m0..m1-1, columns n0..n1-1 (a slice whose origin sits on the
 * MR x NR tile grid of the whole C), with packing buffers of its own. */
GEMM_INLINE void blocked_slice(const int VL, const int MR, const int NV,
                               const gemm_args *g, int m0, int m1, int n0,
                               int n1) {
    const int NR = VL * NV;
    const int K = g->K;
    const int nkb = (K + GEMM_KC - 1) / GEMM_KC;
    const int kcb = (K + nkb - 1) / nkb; /* depth of every block but the last */
    const int ms = m1 - m0;
    const int ms_pad = (ms + MR - 1) / MR * MR;
    const int ns = n1 - n0;
    const int nc_max = ns < GEMM_NC ? (ns + NR - 1) / NR * NR : GEMM_NC;
    /* A buffer (ms_pad, kcb), then B buffer (nc_max, kcb) from the next
     * 64-byte boundary, for the kernel's aligned B loads. */
    const size_t a_len = (size_t)ms_pad * kcb;
    const size_t b_off = (a_len + 15) & ~(size_t)15;
    const size_t need = b_off + (size_t)nc_max * kcb;

    float stack_buf[GEMM_STACK_FLOATS] __attribute__((aligned(64)));
    float *heap = NULL, *buf = stack_buf;
    if (need > GEMM_STACK_FLOATS) {
        heap = alloc_floats(need);
        if (!heap) {
            direct_rows(VL, g, m0, m1, n0, n1);
            return;
        }
        buf = heap;
    }
    float *apack = buf, *bpack = buf + b_off;

    for (int k0 = 0; k0 < K; k0 += kcb) {
        const int kc = K - k0 < kcb ? K - k0 : kcb;
        /* Later depth blocks add to what the earlier ones wrote. */
        const float beta = k0 == 0 ? g->beta : 1.0f;
        pack_a(MR, g, m0, ms, k0, kc, apack);
        for (int j0 = n0; j0 < n1; j0 += GEMM_NC) {
            const int nc = n1 - j0 < GEMM_NC ? n1 - j0 : GEMM_NC;
            pack_b(NR, g, j0, nc, k0, kc, bpack);
            for (int ip = 0; ip < ms; ip += MR) {
                const int mr = ms - ip < MR ? ms - ip : MR;
                float *crow = g->C + (size_t)(m0 + ip) * g->ldc + j0;
                for (int jp = 0; jp < nc; jp += NR) {
                    const int nr = nc - jp < NR ? nc - jp : NR;
                    micro_kernel(VL, MR, NV, kc, apack + (size_t)ip * kc,
                                 bpack + (size_t)jp * kc, crow + jp, g->ldc,
                                 mr, nr, g->alpha, beta);
                }
            }
        }
    }
    free(heap);
}

/* ------------------------------------------------------------------ */
/* Instruction-set variants and their choice                           */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int mr, nr; /* tile of the micro-kernel */
    void (*slice)(const gemm_args *g, int m0, int m1, int n0, int n1);
    void (*direct)(const gemm_args *g, int m0, int m1, int n0, int n1);
    void (*sparse)(const gemm_args *g, int m0, int m1, int n0, int n1);
    void (*transpose)(const float *src, size_t lds, float *dst, size_t ldd,
                      int rows, int cols);
} gemm_impl;

/* Each variant has a second, one-vector-wide tile for a C of at most one
 * vector's width (the 10 logits): the usual tile would compute mostly
 * padding. The choice depends on the whole C, so every thread count uses
 * the same tiles. */

/* Plain code (SSE2 on x86-64): 4 x 8 tile of v4 = 8 of the 16 xmm
 * registers as accumulators. */
static void slice_generic(const gemm_args *g, int m0, int m1, int n0, int n1) {
    if (g->N <= 4)
        blocked_slice(4, 4, 1, g, m0, m1, n0, n1);
    else
        blocked_slice(4, 4, 2, g, m0, m1, n0, n1);
}
static void direct_generic(const gemm_args *g, int m0, int m1, int n0, int n1) {
    direct_rows(4, g, m0, m1, n0, n1);
}
static void sparse_generic(const gemm_args *g, int m0, int m1, int n0,
                           int n1) {
    sparse_rows_v4(g, m0, m1, n0, n1);
}
static void transpose_generic(const float *src, size_t lds, float *dst,
                              size_t ldd, int rows, int cols) {
    transpose_any(src, lds, dst, ldd, rows, cols);
}

#ifdef NN_SIMD_X86
#define GEMM_X86 1
#define GEMM_TARGET_AVX512 NN_TARGET_AVX512
#define GEMM_TARGET_AVX2 NN_TARGET_AVX2

/* AVX-512: 8 x 32 tile of v16 = 16 zmm accumulators, 2 for B, 1 for the
 * broadcast A value; 16 FMAs per 10 loads keep both FMA pipes busy. */
GEMM_TARGET_AVX512 static void slice_avx512(const gemm_args *g, int m0, int m1,
                                            int n0, int n1) {
    if (g->N <= 16)
        blocked_slice(16, 8, 1, g, m0, m1, n0, n1);
    else
        blocked_slice(16, 8, 2, g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX512 static void direct_avx512(const gemm_args *g, int m0,
                                             int m1, int n0, int n1) {
    direct_rows(16, g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX512 static void sparse_avx512(const gemm_args *g, int m0,
                                             int m1, int n0, int n1) {
    sparse_rows_v16(g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX512 static void transpose_avx512(const float *src, size_t lds,
                                                float *dst, size_t ldd,
                                                int rows, int cols) {
    transpose_any(src, lds, dst, ldd, rows, cols);
}

/* AVX2: 6 x 16 tile of v8 = 12 of the 16 ymm registers as accumulators. */
GEMM_TARGET_AVX2 static void slice_avx2(const gemm_args *g, int m0, int m1,
                                        int n0, int n1) {
    if (g->N <= 8)
        blocked_slice(8, 6, 1, g, m0, m1, n0, n1);
    else
        blocked_slice(8, 6, 2, g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX2 static void direct_avx2(const gemm_args *g, int m0, int m1,
                                         int n0, int n1) {
    direct_rows(8, g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX2 static void sparse_avx2(const gemm_args *g, int m0, int m1,
                                         int n0, int n1) {
    sparse_rows_v8(g, m0, m1, n0, n1);
}
GEMM_TARGET_AVX2 static void transpose_avx2(const float *src, size_t lds,
                                            float *dst, size_t ldd, int rows,
                                            int cols) {
    transpose_any(src, lds, dst, ldd, rows, cols);
}
#endif

static const gemm_impl gemm_impls[] = {
#ifdef GEMM_X86
    {"avx512", 8, 32, slice_avx512, direct_avx512, sparse_avx512,
     transpose_avx512},
    {"avx2", 6, 16, slice_avx2, direct_avx2, sparse_avx2, transpose_avx2},
#endif
    {"generic", 4, 8, slice_generic, direct_generic, sparse_generic,
     transpose_generic},
};

/* Whether this CPU runs the variant. Read-only: no state is kept. */
static bool gemm_impl_usable(const gemm_impl *im) {
    return nn_simd_usable(im->name);
}

/* ------------------------------------------------------------------ */
/* Threads and the public entry                                        */
/* ------------------------------------------------------------------ */

/* Multiplies C by beta (beta == 0: zeroes it, whatever it held). */
static void scale_c(float *C, size_t ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++)
                c[j] *= beta;
    }
}

/* Part t of n equal shares of `tiles` tiles: [*first, *end). */
static void share(int tiles, int t, int n, int *first, int *end) {
    int base = tiles / n, extra = tiles % n;
    *first = t * base + (t < extra ? t : extra);
    *end = *first + base + (t < extra ? 1 : 0);
}

static void sgemm_run(const gemm_impl *im, const gemm_args *g, int M, int N,
                      int threads) {
    if (M <= GEMM_DIRECT_MAX_M) {
        im->direct(g, 0, M, 0, N);
        return;
    }
    int nt = threads;
    if ((double)M * N * g->K < NN_PAR_MIN_FMAS)
        nt = 1;
    if (nt <= 1) {
        im->slice(g, 0, M, 0, N);
        return;
    }
    const int tiles_m = (M + im->mr - 1) / im->mr;
    const int tiles_n = (N + im->nr - 1) / im->nr;
    /* Cut the dimension whose busiest thread gets the least work; on a tie
     * cut the longer one (each thread packs all of the other operand). */
    const double cost_m = (double)((tiles_m + nt - 1) / nt) * im->mr * N;
    const double cost_n = (double)((tiles_n + nt - 1) / nt) * im->nr * M;
    const bool cut_m = cost_m < cost_n || (cost_m == cost_n && M > N);
    const int tiles = cut_m ? tiles_m : tiles_n;
    if (nt > tiles)
        nt = tiles;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    {
        /* The team may be smaller than asked (nested regions, limits):
         * share by its actual size. */
        int first, end;
        share(tiles, omp_get_thread_num(), omp_get_num_threads(), &first, &end);
        if (cut_m) {
            int m1 = end * im->mr < M ? end * im->mr : M;
            if (first * im->mr < m1)
                im->slice(g, first * im->mr, m1, 0, N);
        } else {
            int n1 = end * im->nr < N ? end * im->nr : N;
            if (first * im->nr < n1)
                im->slice(g, 0, M, first * im->nr, n1);
        }
    }
#else
    im->slice(g, 0, M, 0, N);
#endif
}

static void sgemm_with(const gemm_impl *im, bool trans_a, bool trans_b, int M,
                       int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc,
                       int threads) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(C, (size_t)ldc, M, N, beta);
        return;
    }
    gemm_args g = {
        .ta = trans_a, .tb = trans_b, .N = N, .K = K,
        .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C,
        .lda = (size_t)lda, .ldb = (size_t)ldb, .ldc = (size_t)ldc,
    };
    sgemm_run(im, &g, M, N, threads);
}

/* The fastest variant this CPU runs. */
static const gemm_impl *best_impl(void) {
    const gemm_impl *im = &gemm_impls[0];
    while (!gemm_impl_usable(im))
        im++; /* the last one, plain code, is always usable */
    return im;
}

void nn_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc, int threads) {
    sgemm_with(best_impl(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
               beta, C, ldc, threads);
}

/* The arguments of a direct-path product C (M, N) = A (M, K) op(B) + beta C
 * with B stored (N, K) (tb) or (K, N). */
static gemm_args direct_args(bool tb, int N, int K, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C,
                             int ldc) {
    return (gemm_args){
        .ta = false, .tb = tb, .N = N, .K = K, .alpha = 1.0f, .beta = beta,
        .A = A, .B = B, .C = C,
        .lda = (size_t)lda, .ldb = (size_t)ldb, .ldc = (size_t)ldc,
    };
}

/* C (M, N) = A (M, K) B^T + beta C by the direct path whatever M:
 * declared in layers.h. */
void nn_sgemm_dot(int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    gemm_args g = direct_args(true, N, K, A, lda, B, ldb, beta, C, ldc);
    best_impl()->direct(&g, 0, M, 0, N);
}

/* C (M, N) = A (M, K) B + beta C, B stored (K, N), skipping A's zeros:
 * declared in layers.h. */
void nn_sgemm_sparse_a(int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    gemm_args g = direct_args(false, N, K, A, lda, B, ldb, beta, C, ldc);
    best_impl()->sparse(&g, 0, M, 0, N);
}

/* dst (cols, rows) = src (rows, cols) transposed: declared in layers.h. */
void nn_transpose(const float *src, size_t lds, float *dst, size_t ldd,
                  int rows, int cols) {
    best_impl()->transpose(src, lds, dst, ldd, rows, cols);
}

/* nn_sgemm with a named variant: declared in layers.h. */
int nn_sgemm_variant(const char *variant, bool trans_a, bool trans_b, int M,
                     int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc,
                     int threads) {
    for (size_t i = 0; i < sizeof gemm_impls / sizeof gemm_impls[0]; i++) {
        const gemm_impl *im = &gemm_impls[i];
        if (strcmp(im->name, variant) == 0) {
            if (!gemm_impl_usable(im))
                return -1;
            sgemm_with(im, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                       beta, C, ldc, threads);
            return 0;
        }
    }
    return -1;
}
