/*
 * test_conv_infer.c: the inference kernels (nn/conv_infer.c's direct
 * convolution, nn/conv_winograd.c's F(4x4, 5x5), dense_infer in
 * nn/dense.c) and nn_predict against the reference path, the training
 * forward of every layer (layer_forward with no training state), on random
 * shapes, for batch 1 and 32 and 1 and 2 threads.
 *
 * Tolerance: the direct kernels sum in another order than the im2col GEMM
 * (one accumulator per output instead of depth blocks), so values agree to
 * rounding: |got - want| <= 1e-5 * (1 + max |want|) for the convolution
 * and dense outputs (a sum of up to 7*7*5 products of values in [-1, 1]),
 * 1e-6 for probabilities. Winograd's error is larger: 2e-5 * (1 + S), S
 * the scale of the sums before the activation (measured worst 6.2e-6;
 * the reasons above winograd_matches_reference), and its results must be
 * the same bit for bit with 1 and 2 threads. Every buffer a kernel writes starts as NaN, so a
 * value left unwritten fails; scratch is allocated with exactly the size
 * the kernel asks for, so AddressSanitizer catches any use beyond it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "testutil.h"

static const char *const VARIANTS[] = {"avx512", "avx2", "generic"};
enum { N_VARIANTS = 3 };

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *alloc_nan(size_t n) {
    float *p = alloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* Fails unless got and want agree within rtol * (1 + scale), scale the
 * largest |value| of the outputs before their activation (when given, > 0)
 * or of want. Returns the error in those units. */
static double assert_close_scaled(const char *what, const float *got,
                                  const float *want, size_t n, double rtol,
                                  double scale) {
    double worst = 0;
    size_t at = 0;
    if (scale <= 0)
        for (size_t i = 0; i < n; i++)
            if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(d)) d = INFINITY;
        if (d > worst) worst = d, at = i;
    }
    ck_assert_msg(worst <= rtol * (1 + scale),
                  "%s: |got - want| = %g at %zu (got %g, want %g, scale %g)",
                  what, worst, at, (double)got[at], (double)want[at], scale);
    return worst / (1 + scale);
}

/* Within rtol * (1 + max |want|). */
static double assert_close(const char *what, const float *got,
                           const float *want, size_t n, double rtol) {
    return assert_close_scaled(what, got, want, n, rtol, 0);
}

/* ---- convolution ---------------------------------------------------- */

static const act_forward_fn ACTS[] = {NULL, relu_forward, sigmoid_forward,
                                      tanh_forward};
static const char *const ACT_NAMES[] = {"none", "relu", "sigmoid", "tanh"};

/* One random problem per loop index: shapes, activation and pooling drawn
 * from a generator seeded by the index. */
typedef struct {
    int C, H, W, OC, K, pad, act;
    bool pool;
} conv_problem;

static conv_problem draw_problem(int seed) {
    nn_rng r;
    nn_rng_seed(&r, 1000 + (uint64_t)seed);
    conv_problem p;
    p.K = 1 + (int)nn_rng_below(&r, 7);
    p.pad = (int)nn_rng_below(&r, (uint32_t)p.K);
    p.C = 1 + (int)nn_rng_below(&r, 5);
    p.H = p.K + (int)nn_rng_below(&r, 20);
    p.W = p.K + (int)nn_rng_below(&r, 33);
    p.OC = 1 + (int)nn_rng_below(&r, 19);
    p.act = (int)nn_rng_below(&r, 4);
    int oh = p.H + 2 * p.pad - p.K + 1, ow = p.W + 2 * p.pad - p.K + 1;
    p.pool = oh >= 2 && ow >= 2 && nn_rng_below(&r, 3) != 0;
    if (seed == 0) /* the default CNN's second layer, exactly */
        p = (conv_problem){32, 14, 14, 64, 5, 2, 1, true};
    if (seed == 1) /* and its first */
        p = (conv_problem){1, 28, 28, 32, 5, 2, 1, true};
    return p;
}

/* Reference: conv_forward, the activation, maxpool_forward. */
static void reference_conv(float *out, const float *in, const float *W,
                           const float *b, int B, conv_problem p) {
    int OH = p.H + 2 * p.pad - p.K + 1, OW = p.W + 2 * p.pad - p.K + 1;
    size_t n = (size_t)B * p.OC * OH * OW;
    float *full = alloc_floats(n);
    float *scratch = alloc_floats(
        conv_scratch_floats(p.C, p.H, p.W, p.OC, p.K, p.pad, 1));
    conv_forward(full, in, W, b, B, p.C, p.H, p.W, p.OC, p.K, p.pad, NULL,
                 scratch, 1);
    if (ACTS[p.act]) ACTS[p.act](full, full, n);
    if (p.pool)
        maxpool_forward(out, NULL, full, B, p.OC, OH, OW, 2);
    else
        memcpy(out, full, n * sizeof *out);
    free(full);
    free(scratch);
}

/* One problem at batch B: random input, weights and biases in [-1, 1],
 * and the reference output. */
typedef struct {
    float *in, *W, *b, *want;
    size_t n_out;
    int OH, OW; /* the convolution's output, before pooling */
} conv_case;

static conv_case conv_case_make(const conv_problem *p, int B, nn_rng *rng) {
    conv_case c;
    c.OH = p->H + 2 * p->pad - p->K + 1;
    c.OW = p->W + 2 * p->pad - p->K + 1;
    int POH = p->pool ? c.OH / 2 : c.OH, POW = p->pool ? c.OW / 2 : c.OW;
    size_t n_in = (size_t)B * p->C * p->H * p->W;
    size_t n_w = (size_t)p->OC * p->C * p->K * p->K;
    c.n_out = (size_t)B * p->OC * POH * POW;
    c.in = alloc_floats(n_in), c.W = alloc_floats(n_w);
    c.b = alloc_floats((size_t)p->OC), c.want = alloc_floats(c.n_out);
    tu_fill(c.in, n_in, rng, -1, 1);
    tu_fill(c.W, n_w, rng, -1, 1);
    tu_fill(c.b, (size_t)p->OC, rng, -1, 1);
    reference_conv(c.want, c.in, c.W, c.b, B, *p);
    return c;
}

static void conv_case_free(conv_case *c) {
    free(c->in);
    free(c->W);
    free(c->b);
    free(c->want);
}

START_TEST(conv_infer_matches_reference) {
    conv_problem p = draw_problem(_i);
    nn_rng rng;
    nn_rng_seed(&rng, 77 + (uint64_t)_i);
    static const int batches[] = {1, 32};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        conv_case c = conv_case_make(&p, B, &rng);
        float *in = c.in, *W = c.W, *b = c.b, *want = c.want;
        size_t n_out = c.n_out;
        int ran = 0;
        for (int v = 0; v < N_VARIANTS; v++)
            for (int threads = 1; threads <= 2; threads++) {
                float *got = alloc_nan(n_out);
                float *scratch = alloc_floats(conv_infer_direct_scratch_floats(
                    p.C, p.H, p.W, p.K, p.pad, threads));
                int rc = conv_infer_variant(VARIANTS[v], got, in, W, b, B, p.C,
                                            p.H, p.W, p.OC, p.K, p.pad,
                                            ACTS[p.act], p.pool, scratch,
                                            threads);
                if (rc == 0) {
                    char what[200];
                    snprintf(what, sizeof what,
                             "%s B=%d threads=%d C=%d %dx%d OC=%d K=%d pad=%d "
                             "act=%s pool=%d",
                             VARIANTS[v], B, threads, p.C, p.H, p.W, p.OC, p.K,
                             p.pad, ACT_NAMES[p.act], p.pool);
                    assert_close(what, got, want, n_out, 1e-5);
                    ran++;
                }
                free(got);
                free(scratch);
            }
        /* The plain variant runs everywhere: at least it was checked. */
        ck_assert_int_ge(ran, 2);
        conv_case_free(&c);
    }
}
END_TEST

START_TEST(conv_infer_refuses_unknown_variants) {
    float x = 0, w = 1, b = 0, out = NAN, scratch[64];
    ck_assert_int_eq(conv_infer_variant("avx9000", &out, &x, &w, &b, 1, 1, 1,
                                        1, 1, 1, 0, NULL, false, scratch, 1),
                     -1);
    ck_assert(isnan(out));
    ck_assert_int_eq(conv_infer_variant("generic", &out, &x, &w, &b, 1, 1, 1,
                                        1, 1, 1, 0, NULL, false, scratch, 1),
                     0);
    ck_assert(out == 0.0f);
}
END_TEST

/* The pooling epilogues in vectors (AVX2, AVX-512, and Winograd's output
 * transform in each variant) must keep the plain code's rule on
 * non-finite values: in a window the first NaN wins, else the largest.
 * Inputs with NaN and infinities (which make NaN in sums) through every
 * runnable variant, pooled, against the plain variant: the same NaN
 * positions, and the other values equal within rounding (the plain
 * variant has no FMA) or Winograd's tolerance. */
START_TEST(pooling_keeps_the_nan_rule_in_every_variant) {
    enum { C = 8, H = 21, W = 21, OC = 20, K = 5, PAD = 2, B = 2 };
    const int POH = (H + 2 * PAD - K + 1) / 2, POW = (W + 2 * PAD - K + 1) / 2;
    const size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * OC * POH * POW;
    nn_rng rng;
    nn_rng_seed(&rng, 4242 + (uint64_t)_i);
    float *in = alloc_floats(n_in), *w = alloc_floats((size_t)OC * C * K * K);
    float *b = alloc_floats(OC);
    tu_fill(in, n_in, &rng, -1, 1);
    tu_fill(w, (size_t)OC * C * K * K, &rng, -1, 1);
    tu_fill(b, OC, &rng, -1, 1);
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 6; k++)
        in[(size_t)(nn_rng_uniform(&rng) * (float)(n_in - 1))] = specials[k % 3];
    const bool winograd = _i >= 2;
    act_forward_fn act = _i % 2 ? relu_forward : NULL;
    float *want = alloc_nan(n_out);
    size_t scratch_n = conv_winograd_scratch_floats(B, C, H, W, OC, PAD, true,
                                                    false, 2);
    size_t direct_n = conv_infer_direct_scratch_floats(C, H, W, K, PAD, 2);
    if (direct_n > scratch_n) scratch_n = direct_n;
    float *scratch = alloc_floats(scratch_n);
    int rc = winograd ? conv_winograd_variant("generic", want, in, w, b, NULL, B,
                                              C, H, W, OC, PAD, act, true,
                                              scratch, 2)
                      : conv_infer_variant("generic", want, in, w, b, B, C, H,
                                           W, OC, K, PAD, act, true, scratch, 2);
    ck_assert_int_eq(rc, 0);
    size_t nans = 0;
    for (size_t i = 0; i < n_out; i++) nans += isnan(want[i]) != 0;
    /* ReLU maps NaN to 0 (v > 0 ? v : 0), so only without it are some left */
    ck_assert_msg(act ? nans == 0 : nans > 0 && nans < n_out,
                  "%zu of %zu outputs NaN", nans, n_out);
    for (int v = 0; v < N_VARIANTS - 1; v++) {
        float *got = alloc_nan(n_out);
        rc = winograd ? conv_winograd_variant(VARIANTS[v], got, in, w, b, NULL,
                                              B, C, H, W, OC, PAD, act, true,
                                              scratch, 2)
                      : conv_infer_variant(VARIANTS[v], got, in, w, b, B, C, H,
                                           W, OC, K, PAD, act, true, scratch, 2);
        if (rc == 0)
            for (size_t i = 0; i < n_out; i++) {
                ck_assert_msg(!isnan(got[i]) == !isnan(want[i]),
                              "%s %s act=%d: output %zu is %g, plain code %g",
                              VARIANTS[v], winograd ? "winograd" : "direct",
                              act != NULL, i, (double)got[i], (double)want[i]);
                if (isnan(want[i])) continue;
                double d = fabs((double)got[i] - (double)want[i]);
                ck_assert_msg(got[i] == want[i] ||
                                  d <= (winograd ? 1e-4 : 1e-5) *
                                           (1 + fabs(want[i])),
                              "%s: output %zu is %g, plain code %g",
                              VARIANTS[v], i, (double)got[i], (double)want[i]);
            }
        free(got);
    }
    free(scratch);
    free(want);
    free(in);
    free(w);
    free(b);
}
END_TEST

/* ---- Winograd F(4x4, 5x5) ------------------------------------------- */

/* 5x5 kernels, 1 to 40 input channels, 1 to 70 output channels (also
 * below conv_winograd_applies's rule: the kernel computes any shape),
 * sides even and odd from 6 to 30 with 0 to 4 padding, pooled or not,
 * every activation. */
static conv_problem draw_winograd_problem(int seed) {
    nn_rng r;
    nn_rng_seed(&r, 5000 + (uint64_t)seed);
    conv_problem p;
    p.K = 5;
    p.pad = (int)nn_rng_below(&r, 5);
    p.C = 1 + (int)nn_rng_below(&r, 40);
    p.OC = 1 + (int)nn_rng_below(&r, 70);
    p.H = 6 + (int)nn_rng_below(&r, 17);
    p.W = 6 + (int)nn_rng_below(&r, 25);
    p.act = (int)nn_rng_below(&r, 4);
    p.pool = nn_rng_below(&r, 2) != 0;
    if (seed == 0) /* the default CNN's second layer, exactly */
        p = (conv_problem){32, 14, 14, 64, 5, 2, 1, true};
    if (seed == 1) /* the same unpooled, with tanh */
        p = (conv_problem){32, 14, 14, 64, 5, 2, 3, false};
    if (seed == 2) /* channel counts off every vector width */
        p = (conv_problem){9, 14, 14, 13, 5, 2, 2, true};
    if (seed == 3) /* odd output sides, pooled: the last row is cut */
        p = (conv_problem){16, 15, 13, 24, 5, 2, 1, true};
    return p;
}

/* Largest error seen by winograd_matches_reference in this process, in
 * units of (1 + max |want|): printed, for the tolerance's record. */
static double winograd_worst;

/* Tolerance: |got - want| <= 2e-5 * (1 + S), S the largest |value| of
 * conv + bias before the activation and pooling: the scale of the sums
 * (tanh squashes the values, not their error). Winograd's transforms
 * scale the values up (B^T's rows sum to up to 50 in magnitude, A^T's
 * entries reach 8) before A^T adds 64 products back, so its rounding
 * error is that of sums some ten times larger than the output. Measured
 * worst over the 40 problems of this generator (inputs and weights in
 * [-1, 1]): 6.2e-6 of (1 + S) with F(4x4, 5x5) (1.6e-6 with F(2x2, 5x5)
 * before it), against about 1e-7 for direct summation;
 * tools/winograd_matrices.py's float32 estimate (7.6e-6) agrees. The
 * bound leaves a margin of 3 and still fails a wrong matrix entry, tile
 * offset or bias by orders of magnitude. */
START_TEST(winograd_matches_reference) {
    conv_problem p = draw_winograd_problem(_i);
    nn_rng rng;
    nn_rng_seed(&rng, 99 + (uint64_t)_i);
    static const int batches[] = {1, 32};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        conv_case c = conv_case_make(&p, B, &rng);
        float *in = c.in, *W = c.W, *b = c.b, *want = c.want;
        size_t n_out = c.n_out;
        conv_problem lin = p;
        lin.act = 0, lin.pool = false;
        size_t n_lin = (size_t)B * p.OC * c.OH * c.OW;
        float *pre = alloc_floats(n_lin);
        reference_conv(pre, in, W, b, B, lin);
        double S = 0;
        for (size_t i = 0; i < n_lin; i++)
            if (fabs((double)pre[i]) > S) S = fabs((double)pre[i]);
        free(pre);
        int ran = 0;
        for (int v = 0; v < N_VARIANTS; v++) {
            float *got[2] = {NULL, NULL};
            for (int threads = 1; threads <= 2; threads++) {
                float *g = got[threads - 1] = alloc_nan(n_out);
                float *scratch = alloc_floats(conv_winograd_scratch_floats(
                    B, p.C, p.H, p.W, p.OC, p.pad, p.pool, false, threads));
                int rc = conv_winograd_variant(VARIANTS[v], g, in, W, b, NULL,
                                               B, p.C, p.H, p.W, p.OC, p.pad,
                                               ACTS[p.act], p.pool, scratch,
                                               threads);
                free(scratch);
                if (rc != 0) { /* only a variant this CPU cannot run */
                    ck_assert(strcmp(VARIANTS[v], "generic") != 0);
                    break;
                }
                char what[200];
                snprintf(what, sizeof what,
                         "winograd %s B=%d threads=%d C=%d %dx%d OC=%d pad=%d "
                         "act=%s pool=%d",
                         VARIANTS[v], B, threads, p.C, p.H, p.W, p.OC, p.pad,
                         ACT_NAMES[p.act], p.pool);
                double e = assert_close_scaled(what, g, want, n_out, 2e-5, S);
                if (e > winograd_worst) winograd_worst = e;
                ran++;
            }
            /* The same values whatever the thread count, bit for bit. */
            if (got[1])
                ck_assert_msg(memcmp(got[0], got[1], n_out * sizeof(float)) == 0,
                              "winograd %s B=%d: 1 and 2 threads differ",
                              VARIANTS[v], B);
            if (got[1]) {
                /* The weights transformed once, as nn_net_prepare does:
                 * the same values with them, from a smaller scratch. */
                float *u = conv_winograd_weights_create(VARIANTS[v], W, p.C,
                                                        p.OC);
                ck_assert_ptr_nonnull(u);
                float *g = alloc_nan(n_out);
                float *scratch = alloc_floats(conv_winograd_scratch_floats(
                    B, p.C, p.H, p.W, p.OC, p.pad, p.pool, true, 2));
                ck_assert_int_eq(conv_winograd_variant(VARIANTS[v], g, in, W, b,
                                                       u, B, p.C, p.H, p.W,
                                                       p.OC, p.pad, ACTS[p.act],
                                                       p.pool, scratch, 2),
                                 0);
                ck_assert_msg(memcmp(got[0], g, n_out * sizeof(float)) == 0,
                              "winograd %s B=%d: prepared weights differ",
                              VARIANTS[v], B);
                free(scratch);
                free(g);
                free(u);
            }
            free(got[0]);
            free(got[1]);
        }
        ck_assert_int_ge(ran, 2);
        conv_case_free(&c);
    }
    /* Each problem runs in its own process (Check forks): one line each. */
    printf("winograd problem %d: worst |got - want| / (1 + S) = %.3g\n", _i,
           winograd_worst);
}
END_TEST

/* The dispatch rule on the shapes it was measured on, conv_infer taking
 * the Winograd path where it applies, and conv_winograd_variant refusing
 * what it cannot do. */
START_TEST(winograd_dispatch_rule) {
    ck_assert(conv_winograd_applies(32, 14, 14, 64, 5, 2)); /* conv2 */
    ck_assert(!conv_winograd_applies(1, 28, 28, 32, 5, 2)); /* conv1 */
    ck_assert(!conv_winograd_applies(32, 14, 14, 64, 3, 1));
    ck_assert(conv_winograd_applies(16, 14, 14, 16, 5, 2));
    ck_assert(conv_winograd_applies(8, 14, 14, 32, 5, 2));
    ck_assert(!conv_winograd_applies(8, 14, 14, 16, 5, 2)); /* 8 x 16 */
    ck_assert(!conv_winograd_applies(32, 14, 14, 8, 5, 2)); /* OC 8 */
    ck_assert(!conv_winograd_applies(4, 14, 14, 64, 5, 2)); /* C 4 */
    ck_assert(!conv_winograd_applies(32, 5, 14, 64, 5, 0)); /* OH 1 */
    float x[8 * 6 * 6] = {0}, w[8 * 8 * 25] = {0}, b[8] = {0}, out = NAN;
    float scratch[16];
    ck_assert_int_eq(conv_winograd_variant("avx9000", &out, x, w, b, NULL, 1,
                                           8, 6, 6, 8, 0, NULL, false, scratch,
                                           1),
                     -1);
    /* a 4x6 input has no 5x5 output without padding */
    ck_assert_int_eq(conv_winograd_variant("generic", &out, x, w, b, NULL, 1,
                                           8, 4, 6, 8, 0, NULL, false, scratch,
                                           1),
                     -1);
    ck_assert(isnan(out));
    /* conv_infer on conv2's shape gives Winograd's values bit for bit. */
    conv_problem p = draw_winograd_problem(0);
    const int B = 3;
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    size_t n_in = (size_t)B * p.C * p.H * p.W, n_w = (size_t)p.OC * p.C * 25;
    size_t n_out = (size_t)B * p.OC * 7 * 7;
    float *in = alloc_floats(n_in), *W = alloc_floats(n_w),
          *bias = alloc_floats((size_t)p.OC), *a = alloc_nan(n_out),
          *c = alloc_nan(n_out);
    tu_fill(in, n_in, &rng, -1, 1);
    tu_fill(W, n_w, &rng, -1, 1);
    tu_fill(bias, (size_t)p.OC, &rng, -1, 1);
    size_t ns = conv_infer_scratch_floats(B, p.C, p.H, p.W, p.OC, 5, p.pad,
                                          true, false, 2);
    ck_assert_uint_eq(ns, conv_winograd_scratch_floats(B, p.C, p.H, p.W, p.OC,
                                                       p.pad, true, false, 2));
    float *s = alloc_floats(ns);
    conv_infer(a, in, W, bias, NULL, B, p.C, p.H, p.W, p.OC, 5, p.pad,
               relu_forward, true, s, 2);
    ck_assert_int_eq(conv_winograd_variant(NULL, c, in, W, bias, NULL, B, p.C,
                                           p.H, p.W, p.OC, p.pad, relu_forward,
                                           true, s, 2),
                     0);
    ck_assert(memcmp(a, c, n_out * sizeof(float)) == 0);
    free(in);
    free(W);
    free(bias);
    free(a);
    free(c);
    free(s);
}
END_TEST

/* ---- dense ---------------------------------------------------------- */

START_TEST(dense_infer_matches_reference) {
    /* Small, and big enough to take the threaded matrix-vector path. */
    static const int shapes[][2] = {{7, 3}, {784, 256}, {600, 250}, {3136, 256},
                                    {33, 10}};
    static const int batches[] = {1, 2, 4, 5, 32};
    const int I = shapes[_i][0], O = shapes[_i][1];
    nn_rng rng;
    nn_rng_seed(&rng, 5 + (uint64_t)_i);
    float *W = alloc_floats((size_t)I * O), *b = alloc_floats((size_t)O);
    tu_fill(W, (size_t)I * O, &rng, -0.1f, 0.1f);
    tu_fill(b, (size_t)O, &rng, -1, 1);
    float *Wt = alloc_floats((size_t)I * O);
    for (int o = 0; o < O; o++)
        for (int k = 0; k < I; k++)
            Wt[(size_t)k * O + o] = W[(size_t)o * I + k];
    for (int bi = 0; bi < 5; bi++) {
        int B = batches[bi];
        float *in = alloc_floats((size_t)B * I);
        tu_fill(in, (size_t)B * I, &rng, -1, 1);
        tu_sparsify_rows(in, B, I, 0.6f); /* for the path given Wt */
        for (int a = 0; a < 4; a++) {
            float *want = alloc_nan((size_t)B * O);
            dense_forward(want, in, W, b, B, I, O, NULL, 1);
            if (ACTS[a]) ACTS[a](want, want, (size_t)B * O);
            for (int threads = 1; threads <= 2; threads++) {
                for (int t = 0; t < 2; t++) {
                    float *got = alloc_nan((size_t)B * O);
                    dense_infer(got, in, W, t ? Wt : NULL, b, B, I, O, ACTS[a],
                                threads);
                    char what[120];
                    snprintf(what, sizeof what,
                             "dense %dx%d B=%d act=%s threads=%d %s", I, O, B,
                             ACT_NAMES[a], threads, t ? "Wt" : "W");
                    assert_close(what, got, want, (size_t)B * O, 1e-5);
                    free(got);
                }
            }
            free(want);
        }
        free(in);
    }
    free(W);
    free(Wt);
    free(b);
}
END_TEST

/* ---- whole networks --------------------------------------------------- */

/* Every layer kind, fused and unfused neighbours: conv with and without
 * an activation or pooling after it, pooling that is not 2x2, dropout,
 * every activation. */
static const struct {
    const char *spec, *act;
} NETS[] = {
    {"conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10", "relu"},
    {"conv3x5,relu,pool2,conv3x7:valid,sigmoid,pool3,dense12,tanh,dense10", "relu"},
    {"conv5x4,pool2,conv1x3,dense10", "tanh"},
    {"conv3x9:valid,pool2,relu,dense10", "relu"},
    {"conv7x3,dropout0.2,conv2x5,pool2,dense10", "sigmoid"},
    {"784-256-128-10", "relu"},
    {"784-64-10", "sigmoid"},
};
enum { N_NETS = sizeof NETS / sizeof NETS[0] };

/* The reference: every layer's training forward without training state,
 * then softmax (the nets here end in ten outputs). */
static void reference_predict(const nn_net *net, const float *x, int B,
                              float *probs) {
    float *logits = alloc_floats((size_t)B * NN_CLASSES);
    tu_reference_logits(net, x, B, logits);
    softmax_forward(probs, logits, B, NN_CLASSES);
    free(logits);
}

START_TEST(predict_matches_layer_by_layer_forward) {
    nn_error err;
    nn_net *net = nn_net_create(NETS[_i].spec, NETS[_i].act, &err);
    ck_assert_msg(net != NULL, "%s: %s", NETS[_i].spec, err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 11 + (uint64_t)_i);
    nn_net_init(net, &rng);
    /* Non-zero biases, so a kernel that drops them fails. */
    for (int i = 0; i < net->n_layers; i++)
        tu_fill(net->params + net->layers[i].biases, net->layers[i].n_biases,
                &rng, -0.2f, 0.2f);
    static const int batches[] = {1, 32};
    for (int bi = 0; bi < 2; bi++) {
        int B = batches[bi];
        float *x = alloc_floats((size_t)B * NN_PIXELS);
        tu_fill(x, (size_t)B * NN_PIXELS, &rng, 0, 1);
        tu_sparsify_rows(x, B, NN_PIXELS, 0.8f); /* images' background */
        float *want = alloc_nan((size_t)B * NN_CLASSES);
        reference_predict(net, x, B, want);
        for (int threads = 1; threads <= 2; threads++) {
            float *got = alloc_nan((size_t)B * NN_CLASSES);
            ck_assert_int_eq(nn_predict(net, x, B, got, threads, &err), 0);
            char what[200];
            snprintf(what, sizeof what, "%s B=%d threads=%d", NETS[_i].spec,
                     B, threads);
            assert_close(what, got, want, (size_t)B * NN_CLASSES, 1e-6);
            /* Prepared for serving: the same probabilities, bit for bit. */
            nn_net *served = nn_net_create(NETS[_i].spec, NETS[_i].act, &err);
            ck_assert_ptr_nonnull(served);
            memcpy(served->params, net->params, net->n_params * sizeof(float));
            ck_assert_int_eq(nn_net_prepare(served, &err), 0);
            ck_assert_int_eq(nn_net_prepare(served, &err), 0); /* idempotent */
            float *again = alloc_nan((size_t)B * NN_CLASSES);
            ck_assert_int_eq(nn_predict(served, x, B, again, threads, &err), 0);
            ck_assert_msg(memcmp(got, again,
                                 (size_t)B * NN_CLASSES * sizeof(float)) == 0,
                          "%s: prepared and unprepared differ", what);
            free(again);
            nn_net_free(served);
            free(got);
        }
        free(x);
        free(want);
    }
    nn_net_free(net);
}
END_TEST

static Suite *infer_suite(void) {
    Suite *s = suite_create("conv_infer");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, conv_infer_matches_reference, 0, 40);
    tcase_add_test(tc, conv_infer_refuses_unknown_variants);
    tcase_add_loop_test(tc, pooling_keeps_the_nan_rule_in_every_variant, 0, 4);
    tcase_add_loop_test(tc, winograd_matches_reference, 0, 40);
    tcase_add_test(tc, winograd_dispatch_rule);
    tcase_add_loop_test(tc, dense_infer_matches_reference, 0, 5);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("networks");
    tcase_set_timeout(tn, 60);
    tcase_add_loop_test(tn, predict_matches_layer_by_layer_forward, 0, N_NETS);
    suite_add_tcase(s, tn);
    return s;
}

int main(void) { return tu_run(infer_suite()); }
