/*
 * int8_vnni_body.h: the VNNI GEMM kernel's loops, written once over a few
 * vector operations and included twice by nn/int8_gemm.c: once with the
 * AVX512-VNNI intrinsics, once with plain C that does what each
 * instruction does. The second copy lets every machine test the loops,
 * the packing and the edge tiles of the first (many of ours have no
 * AVX-512); only the seven macro definitions differ between the two.
 *
 * The includer defines (and this file undefines at its end):
 *   VB_NAME(x)       a suffixed name, e.g. x##_vnni
 *   VB_ATTR          function attributes (the target)
 *   VB_T             16 int32 lanes
 *   VB_ZERO()        all lanes 0
 *   VB_LOAD(p)       64 bytes at p (no alignment needed)
 *   VB_SET1(x)       x (int32) in every lane
 *   VB_DP(acc, a, w) vpdpbusd: lane i += sum over t < 4 of
 *                    (uint8) byte 4i+t of a * (int8) byte 4i+t of w
 *   VB_STORE(p, v)   16 int32 to p (no alignment needed)
 *   VB_NONZERO(p, lda, mr, n)  bit i set when group i (bytes 4i..4i+3)
 *                    of any of the mr rows at p, lda apart, is not 0;
 *                    i < n <= 16, reading no byte past group n - 1
 *   VB_COMPRESS(nz, g, out)    writes g + i for each bit i of nz, in
 *                    order, to out (which has room for 16) and returns
 *                    their count
 *
 * Zero groups. A group of A that is 0 in every row of a tile adds
 * nothing, so a tile runs over the list of its other groups only. After
 * a ReLU most of a digit's activations are 0 (its background), and
 * nn/quantize.c lays the data out so that they fall in whole groups and
 * tiles: a pooled conv's 2x2 window is one tile, the channels that are 0
 * on a blank image are stored together. For the served CNN's conv2 on
 * MNIST test, 37% of its groups are skipped; the list costs about 4% when
 * none is.
 *
 * Packing (int8_gemm.c): W (N, Kp) becomes blocks of 16 outputs; block b,
 * reduction group g (4 values of k) holds 16 lanes x 4 bytes:
 *   packed[((b * G + g) * 16 + lane) * 4 + t] = W[16 b + lane][4 g + t]
 * so one 64-byte load gives the 4 weights of group g for 16 outputs, and
 * one broadcast of 4 activation bytes feeds them all.
 */

#define VB_MR 4 /* rows of A per tile */
#define VB_MAX_GROUPS 1024 /* groups of 4 columns per list (2 KiB of stack) */
#define VB_NB 4 /* blocks of 16 outputs per tile: 4 x 4 = 16 accumulators
                   of the 32 zmm registers, 4 for weights, 1 for A; with
                   6 x 4 gcc 12 spilled accumulators to the stack */

/* C (mr, 16 nb) = A (mr rows) x the nb blocks at W over the ng groups
 * listed (C plus that when add: a long reduction comes in several
 * lists). mr and nb are constants at every call (VB_NAME(tile_any)), so
 * the tests on them fold away. The 16 accumulators are named variables,
 * not an array: with an array gcc 12 -O3 copied every accumulator
 * between registers twice per instruction. */
#define VB_ROW_DP(r)                                                         \
    if (mr > r) {                                                            \
        int32_t a4;                                                          \
        memcpy(&a4, A + (size_t)r * lda + 4 * (size_t)g, 4);                 \
        VB_T a = VB_SET1(a4);                                                \
        c##r##0 = VB_DP(c##r##0, a, w0);                                     \
        if (nb > 1) c##r##1 = VB_DP(c##r##1, a, w1);                         \
        if (nb > 2) c##r##2 = VB_DP(c##r##2, a, w2);                         \
        if (nb > 3) c##r##3 = VB_DP(c##r##3, a, w3);                         \
    }
#define VB_ROW_LOAD(r)                                                       \
    if (mr > r) {                                                            \
        const int32_t *c = C + (size_t)r * ldc;                              \
        c##r##0 = VB_LOAD(c);                                                \
        if (nb > 1) c##r##1 = VB_LOAD(c + 16);                               \
        if (nb > 2) c##r##2 = VB_LOAD(c + 32);                               \
        if (nb > 3) c##r##3 = VB_LOAD(c + 48);                               \
    }
#define VB_ROW_STORE(r)                                                      \
    if (mr > r) {                                                            \
        int32_t *c = C + (size_t)r * ldc;                                    \
        VB_STORE(c, c##r##0);                                                \
        if (nb > 1) VB_STORE(c + 16, c##r##1);                               \
        if (nb > 2) VB_STORE(c + 32, c##r##2);                               \
        if (nb > 3) VB_STORE(c + 48, c##r##3);                               \
    }
static inline __attribute__((always_inline)) VB_ATTR void
VB_NAME(tile)(const uint8_t *A, size_t lda, const int8_t *W, size_t wstride,
              const uint16_t *groups, int ng, bool add, int32_t *C,
              size_t ldc, const int mr, const int nb) {
    VB_T c00 = VB_ZERO(), c01 = c00, c02 = c00, c03 = c00;
    VB_T c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    VB_T c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    VB_T c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const VB_T zero = c00;
    if (add) {
        VB_ROW_LOAD(0)
        VB_ROW_LOAD(1)
        VB_ROW_LOAD(2)
        VB_ROW_LOAD(3)
    }
    for (int j = 0; j < ng; j++) {
        const int g = groups[j];
        const int8_t *wg = W + (size_t)g * 64;
        VB_T w0 = VB_LOAD(wg);
        VB_T w1 = nb > 1 ? VB_LOAD(wg + wstride) : zero;
        VB_T w2 = nb > 2 ? VB_LOAD(wg + 2 * wstride) : zero;
        VB_T w3 = nb > 3 ? VB_LOAD(wg + 3 * wstride) : zero;
        VB_ROW_DP(0)
        VB_ROW_DP(1)
        VB_ROW_DP(2)
        VB_ROW_DP(3)
    }
    VB_ROW_STORE(0)
    VB_ROW_STORE(1)
    VB_ROW_STORE(2)
    VB_ROW_STORE(3)
}
#undef VB_ROW_DP
#undef VB_ROW_LOAD
#undef VB_ROW_STORE

/* One tile of any size mr 1..4, nb 1..4, each a separate specialisation. */
VB_ATTR static void VB_NAME(tile_any)(const uint8_t *A, size_t lda,
                                      const int8_t *W, size_t wstride,
                                      const uint16_t *groups, int ng,
                                      bool add, int32_t *C, size_t ldc,
                                      int mr, int nb) {
#define VB_CASE(R, B)                                                        \
    case R * 8 + B:                                                          \
        VB_NAME(tile)(A, lda, W, wstride, groups, ng, add, C, ldc, R, B);    \
        break;
#define VB_ROW(R) VB_CASE(R, 1) VB_CASE(R, 2) VB_CASE(R, 3) VB_CASE(R, 4)
    switch (mr * 8 + nb) {
        VB_ROW(1) VB_ROW(2) VB_ROW(3) VB_ROW(4)
    default: break; /* not reached: mr and nb are in range */
    }
#undef VB_ROW
#undef VB_CASE
}

/* See int8.h for the contract. Blocks of outputs outside, rows inside: a
 * tile's weights (nb x G x 64 bytes) stay in cache while A streams.
 * Columns [k0, k1) are groups [k0 / 4, k1 / 4) of every block. */
VB_ATTR static void VB_NAME(gemm)(const uint8_t *A, size_t lda, int M,
                                  const void *Wp, int N, int Kp, int k0, int k1,
                                  int32_t *C, size_t ldc) {
    const int G = k1 / 4 - k0 / 4, NB = (N + 15) / 16;
    uint16_t groups[VB_MAX_GROUPS + 16];
    const size_t wstride = (size_t)Kp / 4 * 64;
    A += k0;
    for (int b0 = 0; b0 < NB; b0 += VB_NB) {
        int nb = NB - b0 < VB_NB ? NB - b0 : VB_NB;
        const int8_t *W = (const int8_t *)Wp + (size_t)b0 * wstride + (size_t)k0 / 4 * 64;
        for (int m = 0; m < M; m += VB_MR) {
            int mr = M - m < VB_MR ? M - m : VB_MR;
            const uint8_t *At = A + (size_t)m * lda;
            /* lists of at most VB_MAX_GROUPS groups; one, empty, when
             * G is 0 (C is then 0) */
            for (int c0 = 0; c0 == 0 || c0 < G; c0 += VB_MAX_GROUPS) {
                const int c1 = G - c0 < VB_MAX_GROUPS ? G : c0 + VB_MAX_GROUPS;
                int ng = 0; /* groups listed from c0, so each < 1,024 */
                for (int g = c0; g < c1; g += 16) {
                    int n = c1 - g < 16 ? c1 - g : 16;
                    uint32_t nz = VB_NONZERO(At + 4 * (size_t)g, lda, mr, n);
                    ng += VB_COMPRESS(nz, g - c0, groups + ng);
                }
                VB_NAME(tile_any)(At + 4 * (size_t)c0, lda, W + (size_t)c0 * 64,
                                  wstride, groups, ng, c0 > 0,
                                  C + (size_t)m * ldc + (size_t)b0 * 16, ldc,
                                  mr, nb);
            }
        }
    }
}

#undef VB_MR
#undef VB_MAX_GROUPS
#undef VB_NB
/* the includer's parameters, so that the next inclusion defines its own */
#undef VB_NAME
#undef VB_ATTR
#undef VB_T
#undef VB_ZERO
#undef VB_LOAD
#undef VB_SET1
#undef VB_DP
#undef VB_STORE
#undef VB_NONZERO
#undef VB_COMPRESS
