/*
 * int8.h: the int8 GEMM kernels (nn/int8_gemm.c) and the parts of the
 * int8 network (nn/quantize.c) that tests reach, internal to nn/.
 *
 * The one product every int8 layer needs, over reduction columns
 * [k0, k1) (a conv's edge rows leave out the patch rows that fall on the
 * padding: nn/quantize.c, conv_sums):
 *   C (M, Npad) int32 = A (M, k0:k1) uint8  x  W (N, k0:k1) int8 transposed
 * A is row-major with leading dimension lda (bytes), column 0 at A; Kp is
 * a multiple of 4 (callers pad the reduction with zero weights), and so
 * are k0 < k1 <= Kp; C has leading dimension
 * ldc >= Npad = N rounded up to 16, and every variant writes columns
 * [0, Npad) (columns past N hold the product with zero weights: 0).
 * W is packed once per layer into the variant's own layout. Every variant
 * computes exact int32 sums (no saturation anywhere), so all of them give
 * the same C bit for bit; tests/unit/test_quantize.c checks it.
 */
#ifndef DIGITD_NN_INT8_H
#define DIGITD_NN_INT8_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

typedef struct {
    const char *name; /* "vnni", "avx2", "generic", "vnni-emulated" */
    /* Bytes the packed form of W (N, Kp) takes. */
    size_t (*packed_bytes)(int N, int Kp);
    /* W (N, Kp) row-major int8 -> out (packed_bytes(N, Kp) bytes). */
    void (*pack)(const int8_t *W, int N, int Kp, void *out);
    void (*gemm)(const uint8_t *A, size_t lda, int M, const void *Wp, int N,
                 int Kp, int k0, int k1, int32_t *C, size_t ldc);
    /* Whether a conv's edge rows still multiply the padding's patch rows
     * (zero points) instead of leaving them out: "generic", the plain
     * reference that the tests compare every other kernel with. */
    bool full_patches;
} int8_kernel;

/* The kernel of that name when this CPU runs it, else NULL. "vnni-emulated"
 * runs the VNNI kernel's code (same loops, same packing) with each AVX-512
 * instruction replaced by plain C, so machines without AVX512-VNNI still
 * test that code. */
const int8_kernel *int8_kernel_find(const char *name);
/* The fastest kernel this CPU runs (never NULL). */
const int8_kernel *int8_kernel_best(void);

/* nn_qnet_create on a named kernel (NULL with err when unknown or this
 * CPU cannot run it). */
nn_qnet *int8_qnet_create_with(const nn_net *net, const char *kernel,
                               nn_error *err);
/* The forward pass without the softmax: x (B, 784) -> logits (B,
 * nn_qnet_outputs(q)), no temperature, on `threads` threads. */
int int8_qnet_logits(const nn_qnet *q, const float *x, int B, float *logits,
                     int threads, nn_error *err);

#endif
