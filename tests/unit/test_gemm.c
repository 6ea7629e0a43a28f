/*
 * test_gemm.c: nn_sgemm (nn/gemm.c) against a naive double-precision
 * product, for every transpose case, odd sizes, padded leading dimensions,
 * alpha/beta, beta == 0 over NaN, and bitwise identity across thread
 * counts. Every instruction-set variant this CPU can run is tested, not
 * only the one nn_sgemm picks.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "testutil.h"


static const char *const variants[] = {"avx512", "avx2", "generic"};
#define N_VARIANTS 3

/* Value left in the padding of C: must survive every call. */
#define C_PAD_SENTINEL 12345.0f

/* One stored matrix: rows x cols values, leading dimension ld >= cols; the
 * padding holds NaN, so reading it would poison the result. */
typedef struct {
    int rows, cols, ld;
    float *v;
} mat;

static mat mat_new(int rows, int cols, int pad, nn_rng *rng) {
    mat m = {rows, cols, cols + pad, NULL};
    m.v = malloc(sizeof(float) * (size_t)rows * m.ld);
    ck_assert_ptr_nonnull(m.v);
    for (int i = 0; i < rows; i++) {
        tu_fill(m.v + (size_t)i * m.ld, (size_t)cols, rng, -1.0f, 1.0f);
        for (int j = cols; j < m.ld; j++)
            m.v[(size_t)i * m.ld + j] = NAN;
    }
    return m;
}

/* op(X)[r][c] of a stored matrix, as double. */
static double op_at(const mat *x, bool trans, int r, int c) {
    return trans ? x->v[(size_t)c * x->ld + r] : x->v[(size_t)r * x->ld + c];
}

/* The check behind every test: runs one product with `variant` (NULL: the
 * public nn_sgemm) and compares each element with the double-precision
 * reference, within a bound on float rounding for a K-term sum:
 * (K + 4) * FLT_EPSILON * (|alpha| * sum|a*b| + |beta*c0|). Returns false
 * when the variant cannot run here. */
static bool check_product(const char *variant, bool ta, bool tb, int M, int N,
                          int K, float alpha, float beta, int pad, bool nan_c,
                          int threads, uint64_t seed) {
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    mat A = ta ? mat_new(K, M, pad, &rng) : mat_new(M, K, pad, &rng);
    mat B = tb ? mat_new(N, K, pad, &rng) : mat_new(K, N, pad, &rng);
    mat C = mat_new(M, N, pad + 1, &rng);
    for (int i = 0; i < M; i++)
        for (int j = N; j < C.ld; j++)
            C.v[(size_t)i * C.ld + j] = C_PAD_SENTINEL;
    if (nan_c)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C.v[(size_t)i * C.ld + j] = NAN;
    float *c0 = malloc(sizeof(float) * (size_t)M * C.ld);
    ck_assert_ptr_nonnull(c0);
    memcpy(c0, C.v, sizeof(float) * (size_t)M * C.ld);

    if (variant && strcmp(variant, "sparse") == 0) {
        ck_assert(!ta && !tb && alpha == 1.0f);
        /* mostly zeros, as an image's background: 7 in 10 */
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++)
                if ((i * 7 + k * 3) % 10 < 7)
                    A.v[(size_t)i * A.ld + k] = 0.0f;
        nn_sgemm_sparse_a(M, N, K, A.v, A.ld, B.v, B.ld, beta, C.v, C.ld);
    } else if (variant && strcmp(variant, "dot") == 0) {
        ck_assert(!ta && tb && alpha == 1.0f);
        nn_sgemm_dot(M, N, K, A.v, A.ld, B.v, B.ld, beta, C.v, C.ld);
    } else if (variant) {
        if (nn_sgemm_variant(variant, ta, tb, M, N, K, alpha, A.v, A.ld, B.v,
                             B.ld, beta, C.v, C.ld, threads) != 0) {
            free(A.v), free(B.v), free(C.v), free(c0);
            return false;
        }
    } else {
        nn_sgemm(ta, tb, M, N, K, alpha, A.v, A.ld, B.v, B.ld, beta, C.v, C.ld,
                 threads);
    }

    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = op_at(&A, ta, i, k) * op_at(&B, tb, k, j);
                sum += p;
                mag += fabs(p);
            }
            double old = c0[(size_t)i * C.ld + j];
            double ref = alpha * sum + (beta == 0.0f ? 0.0 : beta * old);
            double scale = fabs(alpha) * mag;
            if (beta != 0.0f)
                scale += fabs(beta * old);
            double tol = (K + 4) * (double)FLT_EPSILON * scale + 1e-30;
            double got = C.v[(size_t)i * C.ld + j];
            ck_assert_msg(fabs(got - ref) <= tol,
                          "%s ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g "
                          "pad=%d threads=%d: C[%d][%d] = %.9g, expected %.9g",
                          variant ? variant : "nn_sgemm", ta, tb, M, N, K,
                          (double)alpha, (double)beta, pad, threads, i, j, got,
                          ref);
        }
        for (int j = N; j < C.ld; j++)
            ck_assert_msg(C.v[(size_t)i * C.ld + j] == C_PAD_SENTINEL,
                          "padding of C row %d column %d was written", i, j);
    }
    free(A.v), free(B.v), free(C.v), free(c0);
    return true;
}

/* ------------------------------------------------------------------ */

/* Sizes around the tile edges (1, MR+1, 2*NR+1, ...): every variant's
 * full and partial tiles (MR is 8, 6 or 4), the narrow tiles used when N
 * is at most one vector (16, 8 or 4), and the few-row direct path (M <= 4
 * rows; 5 is the first packed one). */
static const int odd_sizes[] = {1, 2, 3, 4, 5, 6, 8, 16, 17, 33, 129};
#define N_ODD (int)(sizeof odd_sizes / sizeof odd_sizes[0])

START_TEST(test_all_transposes_odd_sizes) {
    const char *variant = variants[_i];
    int ran = 0;
    for (int t = 0; t < 4; t++)
        for (int mi = 0; mi < N_ODD; mi++)
            for (int ni = 0; ni < N_ODD; ni++)
                for (int ki = 0; ki < N_ODD; ki++) {
                    int M = odd_sizes[mi], N = odd_sizes[ni], K = odd_sizes[ki];
                    uint64_t seed =
                        (uint64_t)(1000 * t + 100 * mi + 10 * ni + ki);
                    ran += check_product(variant, t & 1, t & 2, M, N, K, 1.0f,
                                         0.0f, 0, false, 1, seed);
                }
    if (ran == 0)
        printf("test_gemm: variant %s not supported by this CPU, skipped\n",
               variant);
    /* Only a variant this CPU cannot run may skip; plain code always runs. */
    if (strcmp(variant, "generic") == 0)
        ck_assert_int_eq(ran, 4 * N_ODD * N_ODD * N_ODD);
}
END_TEST

/* nn_sgemm_dot (dense inference): the direct path for any number of rows,
 * in groups of 4, 3, 2 and 1 against 4, 2 and fewer outputs; beta 0 (C
 * NaN, which must not leak) and 1 (the bias already in C). Each element
 * must also be bitwise what a one-row call gives it. */
START_TEST(test_dot_any_rows) {
    for (int mi = 0; mi < N_ODD; mi++)
        for (int ni = 0; ni < N_ODD; ni++)
            for (int ki = 0; ki < N_ODD; ki++) {
                int M = odd_sizes[mi], N = odd_sizes[ni], K = odd_sizes[ki];
                uint64_t seed = (uint64_t)(100 * mi + 10 * ni + ki);
                check_product("dot", false, true, M, N, K, 1.0f, 0.0f, 1, true, 1, seed);
                check_product("dot", false, true, M, N, K, 1.0f, 1.0f, 0, false, 1, seed);
            }
    enum { M = 13, N = 11, K = 37 };
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    mat A = mat_new(M, K, 0, &rng), B = mat_new(N, K, 0, &rng);
    float all[M * N], one[N];
    nn_sgemm_dot(M, N, K, A.v, K, B.v, K, 0.0f, all, N);
    for (int i = 0; i < M; i++) {
        nn_sgemm_dot(1, N, K, A.v + (size_t)i * K, K, B.v, K, 0.0f, one, N);
        ck_assert_msg(memcmp(one, all + i * N, sizeof one) == 0,
                      "row %d alone differs from row %d of %d", i, i, M);
    }
    free(A.v), free(B.v);
}
END_TEST

/* nn_sgemm_sparse_a (the first dense layer's inference): any number of
 * rows and columns (whole 8-vector blocks, single vectors, scalar
 * columns), depths across its 512-long segments, beta 0 (C NaN) and 1;
 * a row alone must give bitwise what it gives among others. */
START_TEST(test_sparse_a_any_rows) {
    static const int depths[] = {1, 3, 17, 129, 511, 512, 513, 1100};
    for (int mi = 0; mi < N_ODD; mi++)
        for (int ni = 0; ni < N_ODD; ni++)
            for (int ki = 0; ki < 8; ki++) {
                int M = odd_sizes[mi], N = odd_sizes[ni], K = depths[ki];
                uint64_t seed = (uint64_t)(100 * mi + 10 * ni + ki);
                check_product("sparse", false, false, M, N, K, 1.0f, 0.0f, 1, true, 1, seed);
                check_product("sparse", false, false, M, N, K, 1.0f, 1.0f, 0, false, 1, seed);
            }
    /* The rows of a call share the rows of B that a panel of columns
     * keeps in cache: rows of every density (all zeros to none) must give
     * the same bits in calls of any size as in a call of their own. */
    enum { M = 15, N = 300, K = 784 };
    nn_rng rng;
    nn_rng_seed(&rng, 6);
    mat A = mat_new(M, K, 0, &rng), B = mat_new(K, N, 0, &rng);
    for (int i = 0; i < M; i++) {
        /* share of zeros: 0, 1/3, 2/3 or 1 by row; row 5 all zeros */
        const float zeros = i == 5 ? 2.0f : (float)(i % 4) / 3.0f;
        for (int k = 0; k < K; k++)
            if (nn_rng_uniform(&rng) < zeros)
                A.v[(size_t)i * K + k] = 0.0f;
    }
    float *alone = malloc(sizeof(float) * M * N), *all = malloc(sizeof(float) * M * N);
    ck_assert_ptr_nonnull(alone);
    ck_assert_ptr_nonnull(all);
    for (int i = 0; i < M; i++)
        nn_sgemm_sparse_a(1, N, K, A.v + (size_t)i * K, K, B.v, N, 0.0f,
                          alone + (size_t)i * N, N);
    for (int rows = 2; rows <= M; rows++)
        for (int first = 0; first + rows <= M; first += rows) {
            nn_sgemm_sparse_a(rows, N, K, A.v + (size_t)first * K, K, B.v, N,
                              0.0f, all, N);
            for (int i = 0; i < rows; i++)
                ck_assert_msg(memcmp(alone + (size_t)(first + i) * N,
                                     all + (size_t)i * N, sizeof(float) * N) == 0,
                              "row %d alone differs from row %d of %d", first + i,
                              i, rows);
        }
    free(alone), free(all), free(A.v), free(B.v);
}
END_TEST

/* nn_transpose (dense.c's sparse path and its inference's W^T): blocks of
 * every size around its 8x8 tiles, with padded leading dimensions whose
 * padding must stay untouched, equal element by element. */
START_TEST(test_transpose_any_block) {
    static const int sizes[] = {1, 3, 7, 8, 9, 16, 17, 100, 129};
    enum { NS = sizeof sizes / sizeof sizes[0], PAD = 3 };
    nn_rng rng;
    nn_rng_seed(&rng, 17);
    for (int a = 0; a < NS; a++)
        for (int b = 0; b < NS; b++) {
            const int rows = sizes[a], cols = sizes[b];
            const size_t lds = (size_t)cols + PAD, ldd = (size_t)rows + PAD;
            float *src = malloc(sizeof(float) * rows * lds);
            float *dst = malloc(sizeof(float) * cols * ldd);
            ck_assert(src && dst);
            tu_fill(src, (size_t)rows * lds, &rng, -1, 1);
            for (size_t k = 0; k < (size_t)cols * ldd; k++)
                dst[k] = C_PAD_SENTINEL;
            nn_transpose(src, lds, dst, ldd, rows, cols);
            for (int j = 0; j < cols; j++)
                for (size_t i = 0; i < ldd; i++) {
                    const float want = i < (size_t)rows
                                           ? src[i * lds + (size_t)j]
                                           : C_PAD_SENTINEL;
                    ck_assert_msg(dst[(size_t)j * ldd + i] == want,
                                  "%d x %d: dst[%d][%zu] = %g, want %g", rows,
                                  cols, j, i, (double)dst[(size_t)j * ldd + i],
                                  (double)want);
                }
            free(src), free(dst);
        }
}
END_TEST

START_TEST(test_leading_dimensions_alpha_beta) {
    const char *variant = variants[_i];
    static const float alphas[] = {1.0f, -0.5f, 2.0f};
    static const float betas[] = {1.0f, 0.25f, -3.0f};
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                bool ta = t & 1, tb = t & 2;
                check_product(variant, ta, tb, 37, 45, 29, alphas[a], betas[b],
                              5, false, 1, 7u + (uint64_t)(9 * t + 3 * a + b));
                check_product(variant, ta, tb, 1, 70, 50, alphas[a], betas[b],
                              3, false, 1, 99u + (uint64_t)(9 * t + 3 * a + b));
            }
}
END_TEST

START_TEST(test_beta_zero_ignores_nan) {
    const char *variant = variants[_i];
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        check_product(variant, ta, tb, 33, 65, 17, 1.5f, 0.0f, 2, true, 1, 11);
        check_product(variant, ta, tb, 1, 300, 40, 1.0f, 0.0f, 0, true, 1, 12);
        check_product(variant, ta, tb, 2, 9, 1, -1.0f, 0.0f, 1, true, 1, 13);
        /* Big enough for threads and several depth blocks. */
        check_product(variant, ta, tb, 70, 90, 1100, 1.0f, 0.0f, 3, true, 2,
                      14);
    }
}
END_TEST

/* Shapes past every blocking constant (K > 512 splits the depth, N > 256
 * splits the columns), in one thread and in two. */
START_TEST(test_large_blocked) {
    const char *variant = variants[_i];
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        check_product(variant, ta, tb, 41, 600, 1100, 0.5f, 1.0f, 1, false, 1,
                      21u + (uint64_t)t);
        check_product(variant, ta, tb, 67, 531, 777, 1.0f, -1.0f, 0, false, 2,
                      31u + (uint64_t)t);
    }
}
END_TEST

/* The MLP's training shapes through the public entry, in two threads. */
START_TEST(test_mlp_shapes_public) {
    check_product(NULL, false, true, 128, 256, 784, 1.0f, 0.0f, 0, true, 2, 41);
    check_product(NULL, true, false, 256, 784, 128, 1.0f, 0.0f, 0, true, 2, 42);
    check_product(NULL, false, false, 128, 784, 256, 1.0f, 0.0f, 0, true, 2,
                  43);
    check_product(NULL, false, true, 1, 256, 784, 1.0f, 0.0f, 0, true, 1, 44);
    check_product(NULL, false, true, 128, 10, 128, 1.0f, 0.0f, 0, true, 2, 45);
    check_product(NULL, true, false, 10, 128, 128, 1.0f, 0.0f, 0, true, 2, 46);
}
END_TEST

/* K == 0 or alpha == 0: C = beta * C, with beta == 0 clearing NaN. A and B
 * are NaN, so reading them at all would show. */
START_TEST(test_empty_depth_and_zero_alpha) {
    float nan_ab[64];
    for (int i = 0; i < 64; i++)
        nan_ab[i] = NAN;
    float c[12];
    for (int i = 0; i < 12; i++)
        c[i] = (float)i;
    nn_sgemm(false, false, 3, 4, 0, 1.0f, nan_ab, 1, nan_ab, 4, 2.0f, c, 4, 1);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(c[i], 2.0f * (float)i);
    nn_sgemm(true, true, 3, 4, 5, 0.0f, nan_ab, 3, nan_ab, 5, 0.5f, c, 4, 1);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(c[i], (float)i);
    for (int i = 0; i < 12; i++)
        c[i] = NAN;
    nn_sgemm(false, true, 3, 4, 0, 1.0f, nan_ab, 1, nan_ab, 1, 0.0f, c, 4, 1);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(c[i], 0.0f);
    /* M or N of zero: nothing is touched. */
    c[0] = 7.0f;
    nn_sgemm(false, false, 0, 4, 5, 1.0f, nan_ab, 5, nan_ab, 4, 0.0f, c, 4, 2);
    nn_sgemm(false, false, 3, 0, 5, 1.0f, nan_ab, 5, nan_ab, 4, 0.0f, c, 4, 2);
    ck_assert_float_eq(c[0], 7.0f);
}
END_TEST

/* The same product with 1 and 2 threads, twice each, and the odd requests
 * 0 and -1 (one thread): every result bitwise the same. More than 2 threads
 * are not asked for: LLVM's libomp 14 then grows its thread pool in a way
 * LeakSanitizer reports as a leak (libomp's, not ours). */
static void check_thread_identity(const char *variant, bool ta, bool tb, int M,
                                  int N, int K, float beta) {
    nn_rng rng;
    nn_rng_seed(&rng, 77);
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
    float *c0 = malloc(sizeof(float) * nc), *ref = malloc(sizeof(float) * nc);
    float *got = malloc(sizeof(float) * nc);
    ck_assert(A && B && c0 && ref && got);
    tu_fill(A, na, &rng, -1.0f, 1.0f);
    tu_fill(B, nb, &rng, -1.0f, 1.0f);
    tu_fill(c0, nc, &rng, -1.0f, 1.0f);
    int lda = ta ? M : K, ldb = tb ? K : N;

    memcpy(ref, c0, sizeof(float) * nc);
    if (nn_sgemm_variant(variant, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta,
                         ref, N, 1) == 0) {
        static const int thread_counts[] = {2, 1, 2, 0, -1};
        const size_t n_counts = sizeof thread_counts / sizeof *thread_counts;
        for (size_t t = 0; t < n_counts; t++) {
            memcpy(got, c0, sizeof(float) * nc);
            ck_assert_int_eq(nn_sgemm_variant(variant, ta, tb, M, N, K, 1.0f, A,
                                              lda, B, ldb, beta, got, N,
                                              thread_counts[t]),
                             0);
            ck_assert_msg(memcmp(got, ref, sizeof(float) * nc) == 0,
                          "%s ta=%d tb=%d %dx%dx%d: %d threads differ from 1",
                          variant, ta, tb, M, N, K, thread_counts[t]);
        }
    }
    free(A), free(B), free(c0), free(ref), free(got);
}

START_TEST(test_threads_bitwise_identical) {
    const char *variant = variants[_i];
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        check_thread_identity(variant, ta, tb, 256, 784, 128, 0.0f);
        check_thread_identity(variant, ta, tb, 257, 783, 613, 1.0f);
        check_thread_identity(variant, ta, tb, 128, 256, 784, 0.5f);
        check_thread_identity(variant, ta, tb, 1000, 10, 300, 0.0f);
        check_thread_identity(variant, ta, tb, 5, 40, 3000, 0.0f);
    }
}
END_TEST

/* The public entry agrees bit for bit with the variant it picks: one of
 * the named ones, so the variant tests above cover what users run. */
START_TEST(test_public_entry_is_a_variant) {
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    enum { M = 40, N = 50, K = 60 };
    static float A[M * K], B[K * N], C[M * N], V[M * N];
    tu_fill(A, M * K, &rng, -1.0f, 1.0f);
    tu_fill(B, K * N, &rng, -1.0f, 1.0f);
    nn_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N, 1);
    int same = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        if (nn_sgemm_variant(variants[v], false, false, M, N, K, 1.0f, A, K, B,
                             N, 0.0f, V, N, 1) != 0)
            continue;
        if (memcmp(C, V, sizeof C) == 0) {
            same = 1;
            break;
        }
    }
    ck_assert_msg(same, "nn_sgemm matches none of the named variants");
    ck_assert_int_eq(nn_sgemm_variant("no-such-isa", false, false, M, N, K,
                                      1.0f, A, K, B, N, 0.0f, V, N, 1),
                     -1);
}
END_TEST

static Suite *gemm_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_all_transposes_odd_sizes, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_leading_dimensions_alpha_beta, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_beta_zero_ignores_nan, 0, N_VARIANTS);
    tcase_add_loop_test(tc, test_large_blocked, 0, N_VARIANTS);
    tcase_add_test(tc, test_dot_any_rows);
    tcase_add_test(tc, test_sparse_a_any_rows);
    tcase_add_test(tc, test_transpose_any_block);
    tcase_add_test(tc, test_mlp_shapes_public);
    tcase_add_test(tc, test_empty_depth_and_zero_alpha);
    tcase_add_loop_test(tc, test_threads_bitwise_identical, 0, N_VARIANTS);
    tcase_add_test(tc, test_public_entry_is_a_variant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(gemm_suite()); }
