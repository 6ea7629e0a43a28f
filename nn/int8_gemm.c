/*
 * int8_gemm.c: C (M, Npad) int32 = A (M, Kp) uint8 x W (N, Kp)^T int8,
 * the product under every int8 layer (contract in nn/int8.h).
 *
 * Three variants, picked at run time with __builtin_cpu_supports like
 * nn/gemm.c, so one binary runs on any x86-64:
 *   vnni     AVX512-VNNI vpdpbusd: 64 multiply-adds of uint8 x int8 into
 *            16 int32 lanes per instruction (loops in int8_vnni_body.h),
 *            skipping the groups of 4 columns that are 0 in a whole row
 *            tile (after a ReLU, a digit's background);
 *   avx2     vpmaddwd on 16-bit halves: the weights are stored widened to
 *            int16 and each 4-byte group of A is split into its even and
 *            odd bytes, so every product and pair sum is exact (vpmaddubsw
 *            would be twice as fast but saturates at 32767, and
 *            255 * 127 * 2 does not fit);
 *   generic  plain C.
 * All three sum exact int32 products, so they agree bit for bit; the
 * requantisation that follows (nn/quantize.c) is one shared function.
 */
#include <stdbool.h>
#include <string.h>

#include "int8.h"

#if defined(__x86_64__) || defined(__i386__)
#define INT8_X86 1
#include <immintrin.h>
#endif

static size_t npad16(int N) { return ((size_t)N + 15) / 16 * 16; }

/* ------------------------------------------------------------------ */
/* generic: W kept as it is, (N, Kp) row-major                         */
/* ------------------------------------------------------------------ */

static size_t packed_bytes_generic(int N, int Kp) {
    return (size_t)N * (size_t)Kp;
}

static void pack_generic(const int8_t *W, int N, int Kp, void *out) {
    memcpy(out, W, (size_t)N * (size_t)Kp);
}

static void gemm_generic(const uint8_t *A, size_t lda, int M, const void *Wp,
                         int N, int Kp, int k0, int k1, int32_t *C, size_t ldc) {
    const int8_t *W = Wp;
    const int np = (int)npad16(N);
    for (int m = 0; m < M; m++) {
        const uint8_t *a = A + (size_t)m * lda;
        int32_t *c = C + (size_t)m * ldc;
        for (int n = 0; n < N; n++) {
            const int8_t *w = W + (size_t)n * Kp;
            int32_t s = 0;
            for (int k = k0; k < k1; k++) s += (int32_t)a[k] * (int32_t)w[k];
            c[n] = s;
        }
        for (int n = N; n < np; n++) c[n] = 0;
    }
}

/* ------------------------------------------------------------------ */
/* VNNI layout (also used by the emulated VNNI kernel)                 */
/* ------------------------------------------------------------------ */

static size_t packed_bytes_vnni(int N, int Kp) {
    return npad16(N) * (size_t)Kp;
}

/* packed[((b * G + g) * 16 + lane) * 4 + t] = W[16 b + lane][4 g + t],
 * zero for the padding outputs past N. */
static void pack_vnni(const int8_t *W, int N, int Kp, void *out) {
    int8_t *p = out;
    const int G = Kp / 4, NB = (int)(npad16(N) / 16);
    for (int b = 0; b < NB; b++)
        for (int g = 0; g < G; g++)
            for (int lane = 0; lane < 16; lane++, p += 4) {
                int n = 16 * b + lane;
                if (n < N) memcpy(p, W + (size_t)n * Kp + 4 * (size_t)g, 4);
                else memset(p, 0, 4);
            }
}

/* The VNNI loops with each instruction done in plain C (see
 * int8_vnni_body.h): slow, for tests only. */
typedef struct {
    int32_t v[16];
} emu_v16;

static inline emu_v16 emu_zero(void) {
    emu_v16 r;
    memset(&r, 0, sizeof r);
    return r;
}
static inline emu_v16 emu_load(const void *p) {
    emu_v16 r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}
static inline emu_v16 emu_set1(int32_t x) {
    emu_v16 r;
    for (int i = 0; i < 16; i++) r.v[i] = x;
    return r;
}
static inline emu_v16 emu_dpbusd(emu_v16 acc, emu_v16 a, emu_v16 w) {
    for (int i = 0; i < 16; i++) {
        uint8_t ab[4];
        int8_t wb[4];
        memcpy(ab, &a.v[i], 4);
        memcpy(wb, &w.v[i], 4);
        for (int t = 0; t < 4; t++) acc.v[i] += (int32_t)ab[t] * (int32_t)wb[t];
    }
    return acc;
}
static inline void emu_store(int32_t *p, emu_v16 v) {
    memcpy(p, v.v, sizeof v.v);
}
static inline uint32_t emu_nonzero(const uint8_t *p, size_t lda, int mr, int n) {
    uint32_t nz = 0;
    for (int r = 0; r < mr; r++)
        for (int i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, p + (size_t)r * lda + 4 * i, 4);
            if (v) nz |= 1u << i;
        }
    return nz;
}
static inline int emu_compress(uint32_t nz, int g, uint16_t *out) {
    int n = 0;
    for (; nz; nz &= nz - 1) out[n++] = (uint16_t)(g + __builtin_ctz(nz));
    return n;
}

#define VB_NAME(x) x##_emu
#define VB_ATTR
#define VB_T emu_v16
#define VB_ZERO() emu_zero()
#define VB_LOAD(p) emu_load(p)
#define VB_SET1(x) emu_set1(x)
#define VB_DP(acc, a, w) emu_dpbusd(acc, a, w)
#define VB_STORE(p, v) emu_store(p, v)
#define VB_NONZERO(p, lda, mr, n) emu_nonzero(p, lda, mr, n)
#define VB_COMPRESS(nz, g, out) emu_compress(nz, g, out)
#include "int8_vnni_body.h"

#ifdef INT8_X86
static inline __attribute__((always_inline, target("avx512f,avx512vnni"))) uint32_t
vnni_nonzero(const uint8_t *p, size_t lda, int mr, int n) {
    const __mmask16 k = (__mmask16)((1u << n) - 1);
    __m512i v = _mm512_maskz_loadu_epi32(k, p);
    for (int r = 1; r < mr; r++)
        v = _mm512_or_si512(v, _mm512_maskz_loadu_epi32(k, p + (size_t)r * lda));
    return _mm512_test_epi32_mask(v, v);
}
static inline __attribute__((always_inline, target("avx512f,avx512vnni"))) int
vnni_compress(uint32_t nz, int g, uint16_t *out) {
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(g),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __m512i c = _mm512_maskz_compress_epi32((__mmask16)nz, idx);
    _mm256_storeu_si256((__m256i *)out, _mm512_cvtepi32_epi16(c));
    return __builtin_popcount(nz);
}
/* The real one. */
#define VB_NAME(x) x##_vnni
#define VB_ATTR __attribute__((target("avx512f,avx512vnni")))
#define VB_T __m512i
#define VB_ZERO() _mm512_setzero_si512()
#define VB_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define VB_SET1(x) _mm512_set1_epi32(x)
#define VB_DP(acc, a, w) _mm512_dpbusd_epi32(acc, a, w)
#define VB_STORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define VB_NONZERO(p, lda, mr, n) vnni_nonzero(p, lda, mr, n)
#define VB_COMPRESS(nz, g, out) vnni_compress(nz, g, out)
#include "int8_vnni_body.h"

/* ------------------------------------------------------------------ */
/* AVX2: int16 weights, vpmaddwd                                       */
/* ------------------------------------------------------------------ */

#define AVX2_ATTR __attribute__((target("avx2")))
#define AV_MR 4 /* rows per tile; 2 blocks of 8 outputs: 8 accumulators,
                   4 weight and 2 activation registers of 16 ymm */

static size_t packed_bytes_avx2(int N, int Kp) {
    return npad16(N) * (size_t)Kp * sizeof(int16_t);
}

/* Blocks of 8 outputs; block b, group g holds two 8-lane vectors of int16
 * pairs: the even half (W[k0], W[k2]) then the odd half (W[k1], W[k3]),
 * k = 4 g + t:
 *   packed[((b * G + g) * 2 + h) * 16 + lane * 2 + p] = W[8 b + lane][4 g + h + 2 p]
 * matching A's 4 bytes split into (a0, a2) and (a1, a3) 16-bit lanes. */
static void pack_avx2(const int8_t *W, int N, int Kp, void *out) {
    int16_t *p = out;
    const int G = Kp / 4, NB = (int)(npad16(N) / 8);
    for (int b = 0; b < NB; b++)
        for (int g = 0; g < G; g++)
            for (int h = 0; h < 2; h++)
                for (int lane = 0; lane < 8; lane++)
                    for (int q = 0; q < 2; q++) {
                        int n = 8 * b + lane;
                        *p++ = n < N ? W[(size_t)n * Kp + 4 * (size_t)g + h + 2 * q]
                                     : 0;
                    }
}

/* C (mr, 16) = A (mr rows, 4 G) x two 8-output blocks at W, the second
 * wstride int16 after the first. */
static inline __attribute__((always_inline)) AVX2_ATTR void
tile_avx2(const uint8_t *A, size_t lda, const int16_t *W, size_t wstride,
          int G, int32_t *C, size_t ldc, const int mr) {
    const __m256i even_bytes = _mm256_set1_epi32(0x00ff00ff);
    __m256i acc[AV_MR][2];
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int g = 0; g < G; g++) {
        __m256i we[2], wo[2];
        for (int j = 0; j < 2; j++) {
            const int16_t *w = W + (size_t)j * wstride + (size_t)g * 32;
            we[j] = _mm256_loadu_si256((const __m256i *)w);
            wo[j] = _mm256_loadu_si256((const __m256i *)(w + 16));
        }
        for (int r = 0; r < mr; r++) {
            int32_t a4;
            memcpy(&a4, A + (size_t)r * lda + 4 * (size_t)g, 4);
            __m256i a = _mm256_set1_epi32(a4);
            __m256i ae = _mm256_and_si256(a, even_bytes); /* (a0, a2) */
            __m256i ao = _mm256_srli_epi16(a, 8);         /* (a1, a3) */
            for (int j = 0; j < 2; j++)
                acc[r][j] = _mm256_add_epi32(
                    acc[r][j], _mm256_add_epi32(_mm256_madd_epi16(ae, we[j]),
                                                _mm256_madd_epi16(ao, wo[j])));
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < 2; j++)
            _mm256_storeu_si256((__m256i *)(C + (size_t)r * ldc + 8 * j),
                                acc[r][j]);
}

AVX2_ATTR static void gemm_avx2(const uint8_t *A, size_t lda, int M,
                                const void *Wp, int N, int Kp, int k0, int k1,
                                int32_t *C, size_t ldc) {
    const int NB16 = (int)(npad16(N) / 16), G = k1 / 4 - k0 / 4;
    const size_t wstride = (size_t)Kp / 4 * 32; /* int16 per 8-output block */
    A += k0;
    for (int b = 0; b < NB16; b++) {
        const int16_t *W = (const int16_t *)Wp + (size_t)b * 2 * wstride + (size_t)k0 / 4 * 32;
        int32_t *Cb = C + (size_t)b * 16;
        int m = 0;
        for (; m + AV_MR <= M; m += AV_MR)
            tile_avx2(A + (size_t)m * lda, lda, W, wstride, G,
                      Cb + (size_t)m * ldc, ldc, AV_MR);
        for (; m < M; m++)
            tile_avx2(A + (size_t)m * lda, lda, W, wstride, G,
                      Cb + (size_t)m * ldc, ldc, 1);
    }
}
#endif

/* ------------------------------------------------------------------ */
/* Choice                                                              */
/* ------------------------------------------------------------------ */

static const int8_kernel kernels[] = {
#ifdef INT8_X86
    {"vnni", packed_bytes_vnni, pack_vnni, gemm_vnni, false},
    {"avx2", packed_bytes_avx2, pack_avx2, gemm_avx2, false},
#endif
    {"generic", packed_bytes_generic, pack_generic, gemm_generic, true},
    {"vnni-emulated", packed_bytes_vnni, pack_vnni, gemm_emu, false},
};

/* Whether this CPU runs the kernel. Read-only: no state is kept. */
static bool kernel_usable(const int8_kernel *k) {
#ifdef INT8_X86
    if (strcmp(k->name, "vnni") == 0)
        /* avx512bw: nn/quantize.c runs the rest of the forward pass
         * with AVX-512 byte operations beside this kernel. */
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    if (strcmp(k->name, "avx2") == 0) return __builtin_cpu_supports("avx2");
#endif
    (void)k;
    return true;
}

const int8_kernel *int8_kernel_find(const char *name) {
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
        if (strcmp(kernels[i].name, name) == 0)
            return kernel_usable(&kernels[i]) ? &kernels[i] : NULL;
    return NULL;
}

const int8_kernel *int8_kernel_best(void) {
    const int8_kernel *k = kernels;
    while (!kernel_usable(k)) k++; /* "generic" is always usable */
    return k;
}
