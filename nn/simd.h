/*
 * simd.h: the vector types and instruction-set variants shared by nn/'s
 * hand-vectorised kernels (gemm.c, conv_infer.c), internal to nn/.
 *
 * A kernel is written once, as a macro over a vector type, and compiled
 * for three targets: AVX-512 (v16, one zmm), AVX2 with FMA (v8, one ymm)
 * and plain code (v4: SSE2 on x86-64, NEON elsewhere). One binary runs on
 * any x86-64; the variant is chosen at run time per call with
 * nn_simd_usable, which keeps no state.
 */
#ifndef DIGITD_NN_SIMD_H
#define DIGITD_NN_SIMD_H

#include <stdbool.h>
#include <string.h>

/* GCC/clang vector extensions. Unaligned loads and stores go through
 * memcpy, which compiles to one move; they are macros because a vector
 * passed by value would change the ABI between the targets (-Wpsabi). */
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

#define VEC_LOAD(dst, p) memcpy(&(dst), (p), sizeof(dst))
#define VEC_STORE(p, src) memcpy((p), &(src), sizeof(src))

#if defined(__x86_64__) || defined(__i386__)
#define NN_SIMD_X86 1
#define NN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define NN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

/* NN_SIMD_VARIANTS(NAME, PARAMS, ARGS): the always-inline function
 * NAME_body, of the parameter list PARAMS, compiled once per variant;
 * NAME_variants[] lists them, best first, as {name, fn}; NAME_best()
 * returns the best this CPU runs, and NAME_named(variant) the named one
 * (NULL when unknown or not runnable here: for the tests). ARGS names
 * PARAMS' arguments in order.
 * For element-wise loops, which the compiler vectorises for each target. */
#ifdef NN_SIMD_X86
#define NN_SIMD_VARIANTS(NAME, PARAMS, ARGS)                                   \
    NN_TARGET_AVX512 static void NAME##_avx512 PARAMS { NAME##_body ARGS; }    \
    NN_TARGET_AVX2 static void NAME##_avx2 PARAMS { NAME##_body ARGS; }        \
    static void NAME##_generic PARAMS { NAME##_body ARGS; }                    \
    static const struct {                                                      \
        const char *name;                                                      \
        void (*fn) PARAMS;                                                     \
    } NAME##_variants[] = {{"avx512", NAME##_avx512},                          \
                           {"avx2", NAME##_avx2},                              \
                           {"generic", NAME##_generic}};                       \
    NN_SIMD_BEST(NAME, PARAMS)
#else
#define NN_SIMD_VARIANTS(NAME, PARAMS, ARGS)                                   \
    static void NAME##_generic PARAMS { NAME##_body ARGS; }                    \
    static const struct {                                                      \
        const char *name;                                                      \
        void (*fn) PARAMS;                                                     \
    } NAME##_variants[] = {{"generic", NAME##_generic}};                       \
    NN_SIMD_BEST(NAME, PARAMS)
#endif
#define NN_SIMD_BEST(NAME, PARAMS)                                             \
    __attribute__((unused)) static void (*NAME##_best(void)) PARAMS {          \
        size_t i = 0;                                                          \
        while (!nn_simd_usable(NAME##_variants[i].name)) i++;                  \
        return NAME##_variants[i].fn; /* "generic" always is */                \
    }                                                                          \
    __attribute__((unused)) static void (*NAME##_named(const char *v)) PARAMS { \
        for (size_t i = 0; i < sizeof NAME##_variants / sizeof *NAME##_variants; \
             i++)                                                              \
            if (strcmp(NAME##_variants[i].name, v) == 0)                       \
                return nn_simd_usable(v) ? NAME##_variants[i].fn : NULL;       \
        return NULL;                                                           \
    }

/* Under AddressSanitizer (GCC's or clang's) the kernels keep their loops
 * rolled and gemm.c does not force its inlining: every forced, unrolled
 * copy was instrumented, and conv_winograd_grad.c took over 7 minutes of
 * clang and gemm.c 3 (GCC: 20 and 3), most of the sanitizer and fuzzing
 * builds; now 4 and 7 s. The source, and the order of the operations, are
 * the same; only the speed changes, which those builds do not measure. */
#if defined(__SANITIZE_ADDRESS__)
#define NN_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NN_SANITIZED 1
#endif
#endif

/* Whether this CPU runs the variant "avx512", "avx2" or "generic" (always
 * true). Unknown names are not usable. */
static inline bool nn_simd_usable(const char *variant) {
#ifdef NN_SIMD_X86
    if (strcmp(variant, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(variant, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(variant, "generic") == 0;
}

#endif
