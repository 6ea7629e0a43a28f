/*
 * test_conv.c: convolution, max-pooling and dropout kernels (nn/conv.c,
 * nn/pool.c, nn/dropout.c) against naive double-precision references and
 * finite differences.
 *
 * Every buffer a kernel writes is first filled with NaN, so a kernel that
 * reads what it should overwrite (or accumulates instead of overwriting)
 * fails. Scratch is allocated with exactly conv_scratch_floats() floats, so
 * under AddressSanitizer any use beyond that size fails too.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------ */

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

static float *alloc_random(size_t n, nn_rng *rng, float lo, float hi) {
    float *p = alloc_floats(n);
    tu_fill(p, n, rng, lo, hi);
    return p;
}

/* Largest |a - b| over n values; NaN anywhere counts as infinite. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d)) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst;
}

/* One convolution problem: in (B,C,H,W), W (OC,C,K,K), b (OC). */
typedef struct {
    int B, C, H, W, OC, K, pad;
} conv_case;

static int out_h(conv_case c) { return c.H + 2 * c.pad - c.K + 1; }
static int out_w(conv_case c) { return c.W + 2 * c.pad - c.K + 1; }
static size_t in_count(conv_case c) { return (size_t)c.B * c.C * c.H * c.W; }
static size_t out_count(conv_case c) {
    return (size_t)c.B * c.OC * out_h(c) * out_w(c);
}
static size_t w_count(conv_case c) { return (size_t)c.OC * c.C * c.K * c.K; }

/* Direct convolution in double, straight from the definition
 * out[b,o,y,x] = bias[o] + sum_{c,i,j} W[o,c,i,j] * in[b,c,y+i-pad,x+j-pad]
 * with zeros outside the image. */
static void naive_conv(double *out, const float *in, const float *W,
                       const float *bias, conv_case c) {
    int OH = out_h(c), OW = out_w(c);
    for (int b = 0; b < c.B; b++)
        for (int o = 0; o < c.OC; o++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    double s = bias[o];
                    for (int ch = 0; ch < c.C; ch++)
                        for (int i = 0; i < c.K; i++)
                            for (int j = 0; j < c.K; j++) {
                                int iy = y + i - c.pad, ix = x + j - c.pad;
                                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W)
                                    continue;
                                s += (double)W[((o * c.C + ch) * c.K + i) * c.K + j] *
                                     in[((b * c.C + ch) * c.H + iy) * c.W + ix];
                            }
                    out[((b * c.OC + o) * OH + y) * OW + x] = s;
                }
}

/* Shapes covering K in {1,3,5,7}, "same" (K/2) and "valid" (0) padding,
 * odd and non-square sizes, one and many channels, and kernels wider than
 * the image. */
static const conv_case CASES[] = {
    {2, 1, 7, 9, 3, 1, 0},  {2, 3, 7, 9, 4, 1, 0},  {3, 2, 7, 9, 4, 3, 1},
    {2, 3, 9, 7, 5, 3, 0},  {2, 4, 9, 11, 3, 5, 2}, {2, 2, 11, 9, 6, 5, 0},
    {1, 3, 9, 9, 2, 7, 3},  {2, 2, 13, 11, 3, 7, 0}, {2, 2, 3, 2, 2, 7, 3},
    {1, 1, 2, 1, 1, 7, 3},  {5, 16, 6, 5, 8, 3, 1},  {2, 1, 5, 5, 2, 1, 1},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* ---- convolution forward ----------------------------------------- */

START_TEST(conv_forward_matches_direct_convolution) {
    const conv_case c = CASES[_i];
    nn_rng rng;
    nn_rng_seed(&rng, 100 + (uint64_t)_i);
    float *in = alloc_random(in_count(c), &rng, -1, 1);
    float *W = alloc_random(w_count(c), &rng, -1, 1);
    float *b = alloc_random((size_t)c.OC, &rng, -1, 1);
    double *want = malloc(out_count(c) * sizeof *want);
    ck_assert_ptr_nonnull(want);
    naive_conv(want, in, W, b, c);

    for (int threads = 1; threads <= 3; threads++) {
        float *out = alloc_nan(out_count(c));
        float *scratch = alloc_nan(
            conv_scratch_floats(c.C, c.H, c.W, c.OC, c.K, c.pad, threads));
        conv_forward(out, in, W, b, c.B, c.C, c.H, c.W, c.OC, c.K, c.pad,
                     NULL, scratch, threads);
        for (size_t i = 0; i < out_count(c); i++) {
            /* float32 sums of at most C*K*K + 1 terms of size <= 1 */
            double tol = 1e-6 * (c.C * c.K * c.K + 1);
            ck_assert_msg(fabs(out[i] - want[i]) <= tol,
                          "case %d threads %d: out[%zu] = %.9g, want %.9g", _i,
                          threads, i, out[i], want[i]);
        }
        free(out);
        free(scratch);
    }
    free(in);
    free(W);
    free(b);
    free(want);
}
END_TEST

/* ---- convolution gradients by finite differences ------------------ */

/* loss = sum(out * R), accumulated in double, where out = conv(in; W, b). */
typedef struct {
    conv_case c;
    float *in, *W, *b, *R, *out, *scratch;
    int threads;
} conv_loss_ctx;

static double conv_loss(void *p) {
    conv_loss_ctx *x = p;
    conv_case c = x->c;
    conv_forward(x->out, x->in, x->W, x->b, c.B, c.C, c.H, c.W, c.OC, c.K,
                 c.pad, NULL, x->scratch, x->threads);
    double s = 0;
    for (size_t i = 0; i < out_count(c); i++) s += (double)x->out[i] * x->R[i];
    return s;
}

START_TEST(conv_backward_matches_finite_differences) {
    /* Smaller shapes than the forward cases: gradcheck runs 2 forwards per
     * parameter. One of each K and padding kind is enough here. */
    static const conv_case G[] = {
        {2, 2, 5, 6, 3, 1, 0}, {2, 2, 5, 6, 3, 3, 1}, {2, 3, 7, 5, 2, 5, 0},
        {1, 2, 6, 7, 3, 5, 2}, {2, 1, 5, 4, 2, 7, 3}, {3, 2, 4, 5, 2, 3, 0},
    };
    const conv_case c = G[_i];
    const int threads = 2;
    nn_rng rng;
    nn_rng_seed(&rng, 200 + (uint64_t)_i);
    conv_loss_ctx x = {
        .c = c,
        .in = alloc_random(in_count(c), &rng, -1, 1),
        .W = alloc_random(w_count(c), &rng, -1, 1),
        .b = alloc_random((size_t)c.OC, &rng, -1, 1),
        .R = alloc_random(out_count(c), &rng, -1, 1),
        .out = alloc_nan(out_count(c)),
        .scratch = alloc_nan(
            conv_scratch_floats(c.C, c.H, c.W, c.OC, c.K, c.pad, threads)),
        .threads = threads,
    };
    /* d loss / d out = R */
    float *din = alloc_nan(in_count(c)), *dW = alloc_nan(w_count(c));
    float *db = alloc_nan((size_t)c.OC);
    conv_backward(din, dW, db, x.R, x.in, x.W, c.B, c.C, c.H, c.W, c.OC, c.K,
                  c.pad, x.scratch, threads);

    /* The loss is linear in each single parameter (the others held), so
     * central differences are exact whatever the step, up to the float32
     * rounding of out; a wide step divides that rounding down. */
    const float h = 0.25f;
    double e_in = tu_gradcheck(x.in, in_count(c), din, conv_loss, &x, h);
    double e_w = tu_gradcheck(x.W, w_count(c), dW, conv_loss, &x, h);
    double e_b = tu_gradcheck(x.b, (size_t)c.OC, db, conv_loss, &x, h);
    ck_assert_msg(e_in < 1e-3, "case %d: din relative error %g", _i, e_in);
    ck_assert_msg(e_w < 1e-3, "case %d: dW relative error %g", _i, e_w);
    ck_assert_msg(e_b < 1e-3, "case %d: db relative error %g", _i, e_b);

    /* The check itself can fail: a gradient off by 2% is caught. */
    for (int o = 0; o < c.OC; o++) db[o] *= 1.02f;
    ck_assert(tu_gradcheck(x.b, (size_t)c.OC, db, conv_loss, &x, h) > 5e-3);

    free(x.in);
    free(x.W);
    free(x.b);
    free(x.R);
    free(x.out);
    free(x.scratch);
    free(din);
    free(dW);
    free(db);
}
END_TEST

/* din == NULL (first layer) skips the input gradient and changes nothing
 * else: dW and db are bit for bit those of the full call. */
START_TEST(conv_backward_without_din_gives_same_weight_gradients) {
    const conv_case c = {3, 3, 8, 7, 4, 5, 2};
    nn_rng rng;
    nn_rng_seed(&rng, 300);
    float *in = alloc_random(in_count(c), &rng, -1, 1);
    float *W = alloc_random(w_count(c), &rng, -1, 1);
    float *dout = alloc_random(out_count(c), &rng, -1, 1);
    for (int threads = 1; threads <= 2; threads++) {
        size_t ns = conv_scratch_floats(c.C, c.H, c.W, c.OC, c.K, c.pad, threads);
        float *scratch = alloc_nan(ns);
        float *din = alloc_nan(in_count(c));
        float *dW1 = alloc_nan(w_count(c)), *db1 = alloc_nan((size_t)c.OC);
        float *dW2 = alloc_nan(w_count(c)), *db2 = alloc_nan((size_t)c.OC);
        conv_backward(din, dW1, db1, dout, in, W, c.B, c.C, c.H, c.W, c.OC, c.K,
                      c.pad, scratch, threads);
        conv_backward(NULL, dW2, db2, dout, in, W, c.B, c.C, c.H, c.W, c.OC, c.K,
                      c.pad, scratch, threads);
        ck_assert(memcmp(dW1, dW2, w_count(c) * sizeof *dW1) == 0);
        ck_assert(memcmp(db1, db2, (size_t)c.OC * sizeof *db1) == 0);
        free(scratch);
        free(din);
        free(dW1);
        free(db1);
        free(dW2);
        free(db2);
    }
    free(in);
    free(W);
    free(dout);
}
END_TEST

/* ---- convolution and thread counts -------------------------------- */

typedef struct {
    float *out, *din, *dW, *db;
} conv_results;

static conv_results run_conv(conv_case c, const float *in, const float *W,
                             const float *b, const float *dout, int threads) {
    conv_results r = {alloc_nan(out_count(c)), alloc_nan(in_count(c)),
                      alloc_nan(w_count(c)), alloc_nan((size_t)c.OC)};
    float *scratch =
        alloc_nan(conv_scratch_floats(c.C, c.H, c.W, c.OC, c.K, c.pad, threads));
    conv_forward(r.out, in, W, b, c.B, c.C, c.H, c.W, c.OC, c.K, c.pad, NULL,
                 scratch, threads);
    conv_backward(r.din, r.dW, r.db, dout, in, W, c.B, c.C, c.H, c.W, c.OC, c.K,
                  c.pad, scratch, threads);
    free(scratch);
    return r;
}

static void free_results(conv_results r) {
    free(r.out);
    free(r.din);
    free(r.dW);
    free(r.db);
}

/* The promises of nn/conv.c: out, din and db do not depend on the thread
 * count at all; dW is the same run to run for one thread count and equal
 * to rounding across thread counts. Batch 7 does not split evenly, batch 1
 * takes the path where the GEMM gets the threads. */
START_TEST(conv_results_across_thread_counts) {
    /* The last three take Winograd's path (conv_winograd_applies), with
     * 4 and 1 tiles per sample: blocks of other sizes, with and without
     * padding rows in dV's GEMM, as the chunks change. */
    static const conv_case T[] = {{7, 3, 10, 9, 5, 5, 2}, {1, 3, 10, 9, 5, 3, 1},
                                  {7, 12, 9, 11, 24, 5, 0}, {5, 9, 6, 5, 31, 5, 1},
                                  {1, 16, 14, 14, 16, 5, 2}};
    const conv_case c = T[_i];
    nn_rng rng;
    nn_rng_seed(&rng, 400 + (uint64_t)_i);
    float *in = alloc_random(in_count(c), &rng, -1, 1);
    float *W = alloc_random(w_count(c), &rng, -1, 1);
    float *b = alloc_random((size_t)c.OC, &rng, -1, 1);
    float *dout = alloc_random(out_count(c), &rng, -1, 1);

    conv_results one = run_conv(c, in, W, b, dout, 1);
    for (int threads = 2; threads <= 4; threads++) {
        conv_results a = run_conv(c, in, W, b, dout, threads);
        conv_results again = run_conv(c, in, W, b, dout, threads);
        ck_assert(memcmp(a.out, one.out, out_count(c) * sizeof(float)) == 0);
        ck_assert(memcmp(a.din, one.din, in_count(c) * sizeof(float)) == 0);
        ck_assert(memcmp(a.db, one.db, (size_t)c.OC * sizeof(float)) == 0);
        ck_assert(memcmp(a.dW, again.dW, w_count(c) * sizeof(float)) == 0);
        /* float32 sums over the batch in other orders: a few ulp of the
         * largest value, or on Winograd's path, where they are sums of
         * transformed values, up to its error (measured 5.5e-6) */
        double d = max_abs_diff(a.dW, one.dW, w_count(c)), scale = 0;
        for (size_t k = 0; k < w_count(c); k++)
            if (fabs(one.dW[k]) > scale) scale = fabs(one.dW[k]);
        double tol = conv_winograd_applies(c.C, c.H, c.W, c.OC, c.K, c.pad)
                         ? 2e-5 : 1e-6;
        ck_assert_msg(d <= tol * scale, "threads %d: dW differs by %g of %g",
                      threads, d, scale);
        free_results(a);
        free_results(again);
    }
    free_results(one);
    free(in);
    free(W);
    free(b);
    free(dout);
}
END_TEST

/* conv_scratch_floats grows with the thread count: each thread needs its
 * own im2col buffer (checked for overruns by ASan in the tests above; here
 * that the size is at least one full im2col matrix per thread). */
START_TEST(conv_scratch_covers_one_im2col_per_thread) {
    for (int threads = 1; threads <= 4; threads++) {
        /* 3x3: im2col's path (5x5 with many channels is Winograd's) */
        size_t n = conv_scratch_floats(32, 14, 14, 64, 3, 1, threads);
        ck_assert_uint_ge(n, (size_t)threads * 32 * 9 * 14 * 14);
    }
    ck_assert_uint_eq(conv_scratch_floats(3, 9, 9, 4, 3, 1, 0),
                      conv_scratch_floats(3, 9, 9, 4, 3, 1, 1));
}
END_TEST

/* ---- convolution by Winograd F(4x4, 5x5) in training --------------- */

/* Shapes where conv_winograd_applies(), so conv_forward and conv_backward
 * take Winograd's path: the default CNN's conv2, channel counts that are
 * not multiples of the 16 lanes, "valid" and wider padding, outputs that
 * are not multiples of the 4x4 tile, batch 1 (one chunk, the GEMMs get
 * the threads), an odd batch, and a batch of several GEMM blocks per
 * chunk (20 samples of 16 tiles), so dU is added to. */
static const conv_case WINOGRAD_CASES[] = {
    {3, 32, 14, 14, 64, 5, 2}, {2, 12, 9, 11, 24, 5, 0},
    {5, 9, 6, 5, 31, 5, 1},    {1, 16, 14, 14, 16, 5, 2},
    {7, 8, 7, 8, 40, 5, 4},    {20, 16, 14, 14, 16, 5, 2},
};
#define N_WINOGRAD ((int)(sizeof WINOGRAD_CASES / sizeof WINOGRAD_CASES[0]))

/* dW and din of sum(out * dout), straight from the definition, in
 * double. */
static void naive_conv_grads(double *dW, double *din, const float *in,
                             const float *W, const float *dout, conv_case c) {
    int OH = out_h(c), OW = out_w(c);
    memset(dW, 0, w_count(c) * sizeof *dW);
    memset(din, 0, in_count(c) * sizeof *din);
    for (int b = 0; b < c.B; b++)
        for (int o = 0; o < c.OC; o++)
            for (int y = 0; y < OH; y++)
                for (int x = 0; x < OW; x++) {
                    double g = dout[((b * c.OC + o) * OH + y) * OW + x];
                    for (int ch = 0; ch < c.C; ch++)
                        for (int i = 0; i < c.K; i++)
                            for (int j = 0; j < c.K; j++) {
                                int iy = y + i - c.pad, ix = x + j - c.pad;
                                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W)
                                    continue;
                                size_t wi = ((size_t)(o * c.C + ch) * c.K + i) * c.K + j;
                                size_t ii = ((size_t)(b * c.C + ch) * c.H + iy) * c.W + ix;
                                dW[wi] += g * in[ii];
                                din[ii] += g * W[wi];
                            }
                }
}

/* Largest |got - want| over n values, as a fraction of the largest
 * |want|; NaN anywhere counts as infinite. */
static double scaled_error(const float *got, const double *want, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        if (isnan(d)) return INFINITY;
        if (d > worst) worst = d;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return scale > 0 ? worst / scale : worst;
}

/* Winograd's float32 error grows with the channels summed and, for dW,
 * with the tiles summed; tools/winograd_matrices.py estimates 7.6e-6 of
 * the output scale for 32 channels (test_conv_infer.c sees 6e-6 there).
 * Measured here (AVX2), worst of these cases: out 4.9e-6, din 3.5e-6,
 * dW 9.8e-6 of the largest value. A transform or GEMM with a wrong index
 * is off by about the whole scale. */
#define WINOGRAD_TRAIN_BOUND 4e-5

START_TEST(conv_winograd_training_matches_direct_convolution) {
    const conv_case c = WINOGRAD_CASES[_i];
    ck_assert(conv_winograd_applies(c.C, c.H, c.W, c.OC, c.K, c.pad));
    nn_rng rng;
    nn_rng_seed(&rng, 500 + (uint64_t)_i);
    float *in = alloc_random(in_count(c), &rng, -1, 1);
    float *W = alloc_random(w_count(c), &rng, -1, 1);
    float *b = alloc_random((size_t)c.OC, &rng, -1, 1);
    float *dout = alloc_random(out_count(c), &rng, -1, 1);
    double *want = malloc(out_count(c) * sizeof *want);
    double *want_dW = malloc(w_count(c) * sizeof *want_dW);
    double *want_din = malloc(in_count(c) * sizeof *want_din);
    ck_assert(want && want_dW && want_din);
    naive_conv(want, in, W, b, c);
    naive_conv_grads(want_dW, want_din, in, W, dout, c);

    conv_results one = run_conv(c, in, W, b, dout, 1);
    double e_out = scaled_error(one.out, want, out_count(c));
    double e_din = scaled_error(one.din, want_din, in_count(c));
    double e_dW = scaled_error(one.dW, want_dW, w_count(c));
    printf("winograd training case %d: out %.2g din %.2g dW %.2g\n", _i, e_out,
           e_din, e_dW);
    ck_assert_msg(e_out < WINOGRAD_TRAIN_BOUND, "case %d: out error %g", _i, e_out);
    ck_assert_msg(e_din < WINOGRAD_TRAIN_BOUND, "case %d: din error %g", _i, e_din);
    ck_assert_msg(e_dW < WINOGRAD_TRAIN_BOUND, "case %d: dW error %g", _i, e_dW);

    /* Without din, dW is the same bit for bit. (The thread-count
     * promises: conv_results_across_thread_counts.) */
    float *scratch = alloc_nan(conv_scratch_floats(c.C, c.H, c.W, c.OC, c.K, c.pad, 2));
    float *dW2 = alloc_nan(w_count(c)), *db2 = alloc_nan((size_t)c.OC);
    conv_results two = run_conv(c, in, W, b, dout, 2);
    conv_backward(NULL, dW2, db2, dout, in, W, c.B, c.C, c.H, c.W, c.OC, c.K,
                  c.pad, scratch, 2);
    ck_assert(memcmp(dW2, two.dW, w_count(c) * sizeof(float)) == 0);
    free_results(two);
    free_results(one);
    free(scratch);
    free(dW2);
    free(db2);
    free(in);
    free(W);
    free(b);
    free(dout);
    free(want);
    free(want_dW);
    free(want_din);
}
END_TEST

/* ---- max-pooling -------------------------------------------------- */

/* Fills n floats with distinct values 0.01 apart, in a shuffled order, so
 * no window has a tie and a step h < 0.005 never changes a winner. */
static void fill_distinct(float *x, size_t n, nn_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = 0.01f * (float)i - 0.005f * (float)n;
    for (size_t i = n; i > 1; i--) {
        size_t j = nn_rng_below(rng, (uint32_t)i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

typedef struct {
    int B, C, H, W, K;
} pool_case;

static const pool_case POOLS[] = {
    {2, 3, 8, 8, 2}, {2, 2, 7, 9, 2}, {1, 3, 9, 7, 3}, {2, 1, 5, 8, 3},
    {1, 2, 6, 6, 1}, {3, 2, 28, 28, 2},
};
#define N_POOLS ((int)(sizeof POOLS / sizeof POOLS[0]))

START_TEST(maxpool_forward_matches_definition) {
    const pool_case p = POOLS[_i];
    const int OH = p.H / p.K, OW = p.W / p.K;
    const size_t n_in = (size_t)p.B * p.C * p.H * p.W;
    const size_t n_out = (size_t)p.B * p.C * OH * OW;
    nn_rng rng;
    nn_rng_seed(&rng, 500 + (uint64_t)_i);
    float *in = alloc_random(n_in, &rng, -1, 1);
    float *out = alloc_nan(n_out), *out2 = alloc_nan(n_out);
    int32_t *arg = malloc(n_out * sizeof *arg);
    ck_assert_ptr_nonnull(arg);
    maxpool_forward(out, arg, in, p.B, p.C, p.H, p.W, p.K);
    for (int bc = 0; bc < p.B * p.C; bc++)
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++) {
                float best = -INFINITY;
                for (int i = 0; i < p.K; i++)
                    for (int j = 0; j < p.K; j++) {
                        float v = in[((size_t)bc * p.H + y * p.K + i) * p.W +
                                     x * p.K + j];
                        if (v > best) best = v;
                    }
                size_t o = ((size_t)bc * OH + y) * OW + x;
                ck_assert_float_eq(out[o], best);
                ck_assert_float_eq(in[arg[o]], best);
                /* the winner lies inside this window */
                int32_t a = arg[o];
                int ay = a / p.W % p.H, ax = a % p.W;
                ck_assert_int_eq(a / (p.H * p.W), bc);
                ck_assert_int_eq(ay / p.K, y);
                ck_assert_int_eq(ax / p.K, x);
            }
    /* Inference passes no argmax and gets the same values. */
    maxpool_forward(out2, NULL, in, p.B, p.C, p.H, p.W, p.K);
    ck_assert(memcmp(out, out2, n_out * sizeof *out) == 0);
    free(in);
    free(out);
    free(out2);
    free(arg);
}
END_TEST

START_TEST(maxpool_ties_pick_first_and_nan_wins) {
    /* One 1x1x3x4 plane, K=2: windows {0,1,4,5} and {2,3,6,7}. */
    const float in[12] = {5, 5, 1, 2, 5, 5, 2, NAN, 9, 9, 9, 9};
    float out[2];
    int32_t arg[2];
    maxpool_forward(out, arg, in, 1, 1, 3, 4, 2);
    ck_assert_float_eq(out[0], 5);
    ck_assert_int_eq(arg[0], 0); /* four equal maxima: the first */
    ck_assert(isnan(out[1]));
    ck_assert_int_eq(arg[1], 7);
}
END_TEST

/* Many ties (values 0..3): every window's winner must be the first
 * maximum in row-major order, as a plain scan finds it. This catches a
 * 2x2 path that compares columns before rows. */
START_TEST(maxpool_ties_follow_row_major_order) {
    enum { H = 6, W = 8, K = 2 };
    float in[2 * H * W], out[2 * (H / K) * (W / K)];
    int32_t arg[2 * (H / K) * (W / K)];
    nn_rng rng;
    nn_rng_seed(&rng, 77);
    for (int i = 0; i < 2 * H * W; i++) in[i] = (float)nn_rng_below(&rng, 4);
    in[0] = 1, in[1] = 3, in[W] = 3, in[W + 1] = 0; /* upper-right before lower-left */
    maxpool_forward(out, arg, in, 2, 1, H, W, K);
    for (int pl = 0; pl < 2; pl++)
        for (int oh = 0; oh < H / K; oh++)
            for (int ow = 0; ow < W / K; ow++) {
                int best = -1;
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        int i = pl * H * W + (oh * K + kh) * W + ow * K + kw;
                        if (best < 0 || in[i] > in[best]) best = i;
                    }
                int o = (pl * (H / K) + oh) * (W / K) + ow;
                ck_assert_int_eq(arg[o], best);
                ck_assert_float_eq(out[o], in[best]);
            }
    ck_assert_int_eq(arg[0], 1);
}
END_TEST

/* Every runnable 2x2 variant (AVX-512, AVX2, plain) against a plain scan
 * in row-major order, the first NaN winning: widths from 1 to 40 windows
 * (whole vectors and short last ones), odd sides, values drawn from a few
 * with NaN and infinities among them, so ties and NaN meet everywhere. */
START_TEST(maxpool2_variants_follow_the_definition) {
    static const char *variants[] = {"avx512", "avx2", "generic"};
    static const float vals[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1, 2, -1};
    nn_rng rng;
    nn_rng_seed(&rng, 78);
    int ran = 0;
    for (int W = 2; W <= 81; W += 1 + (W > 20) * 6) {
        const int H = 5, B = 2, C = 1, OH = H / 2, OW = W / 2;
        const size_t n_in = (size_t)B * C * H * W, n_out = (size_t)B * C * OH * OW;
        float *in = alloc_nan(n_in), *out = alloc_nan(n_out);
        int32_t *arg = malloc(n_out * sizeof *arg);
        ck_assert_ptr_nonnull(arg);
        for (size_t i = 0; i < n_in; i++)
            in[i] = nn_rng_below(&rng, 4) ? (float)nn_rng_below(&rng, 3)
                                          : vals[nn_rng_below(&rng, 8)];
        for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
            if (maxpool2_forward_variant(variants[v], out, arg, in, B, C, H, W))
                continue;
            ran++;
            for (int pl = 0; pl < B * C; pl++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        int best = -1;
                        for (int kh = 0; kh < 2; kh++)
                            for (int kw = 0; kw < 2; kw++) {
                                int i = (pl * H + 2 * oh + kh) * W + 2 * ow + kw;
                                if (best < 0 || in[i] > in[best] ||
                                    (isnan(in[i]) && !isnan(in[best])))
                                    best = i;
                            }
                        int o = (pl * OH + oh) * OW + ow;
                        ck_assert_msg(arg[o] == best, "%s W=%d window %d: %d, want %d",
                                      variants[v], W, o, arg[o], best);
                        ck_assert(memcmp(&out[o], &in[best], sizeof *out) == 0);
                    }
        }
        free(in);
        free(out);
        free(arg);
    }
    ck_assert_int_gt(ran, 20); /* at least the plain variant on every width */
}
END_TEST

typedef struct {
    pool_case p;
    float *in, *out, *R;
} pool_loss_ctx;

static double pool_loss(void *v) {
    pool_loss_ctx *x = v;
    pool_case p = x->p;
    maxpool_forward(x->out, NULL, x->in, p.B, p.C, p.H, p.W, p.K);
    size_t n = (size_t)p.B * p.C * (p.H / p.K) * (p.W / p.K);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x->out[i] * x->R[i];
    return s;
}

START_TEST(maxpool_backward_matches_finite_differences) {
    const pool_case p = POOLS[_i];
    const size_t n_in = (size_t)p.B * p.C * p.H * p.W;
    const size_t n_out = (size_t)p.B * p.C * (p.H / p.K) * (p.W / p.K);
    nn_rng rng;
    nn_rng_seed(&rng, 600 + (uint64_t)_i);
    pool_loss_ctx x = {p, alloc_floats(n_in), alloc_nan(n_out),
                       alloc_random(n_out, &rng, -1, 1)};
    fill_distinct(x.in, n_in, &rng);
    int32_t *arg = malloc(n_out * sizeof *arg);
    ck_assert_ptr_nonnull(arg);
    float *din = alloc_nan(n_in);
    maxpool_forward(x.out, arg, x.in, p.B, p.C, p.H, p.W, p.K);
    maxpool_backward(din, x.R, arg, p.B, p.C, p.H, p.W, p.K);
    double e = tu_gradcheck(x.in, n_in, din, pool_loss, &x, 1e-3f);
    ck_assert_msg(e < 1e-3, "case %d: din relative error %g", _i, e);
    /* Rows and columns cut off by the floor get exactly zero. */
    for (size_t i = 0; i < n_in; i++) {
        int y = (int)(i / (size_t)p.W % (size_t)p.H), xx = (int)(i % (size_t)p.W);
        if (y >= p.H / p.K * p.K || xx >= p.W / p.K * p.K)
            ck_assert_float_eq(din[i], 0);
    }
    free(x.in);
    free(x.out);
    free(x.R);
    free(arg);
    free(din);
}
END_TEST

/* ---- dropout ------------------------------------------------------ */

START_TEST(dropout_rate_zero_is_identity_and_draws_nothing) {
    nn_rng rng, before;
    nn_rng_seed(&rng, 700);
    float in[100], out[100], mask[100];
    tu_fill(in, 100, &rng, -1, 1);
    before = rng;
    dropout_forward(out, mask, in, 100, 0.0f, &rng);
    for (int i = 0; i < 100; i++) {
        ck_assert_float_eq(mask[i], 1.0f);
        ck_assert_float_eq(out[i], in[i]);
    }
    ck_assert(memcmp(&rng, &before, sizeof rng) == 0);
}
END_TEST

START_TEST(dropout_drops_the_expected_fraction_and_rescales) {
    enum { N = 20000 };
    const float rate = 0.3f;
    nn_rng rng, again;
    nn_rng_seed(&rng, 800);
    float *in = alloc_random(N, &rng, 0.5f, 1.5f);
    again = rng;
    float *out = alloc_nan(N), *mask = alloc_nan(N);
    float *out2 = alloc_nan(N), *mask2 = alloc_nan(N);
    dropout_forward(out, mask, in, N, rate, &rng);
    int dropped = 0;
    for (int i = 0; i < N; i++) {
        if (mask[i] == 0.0f) {
            dropped++;
            ck_assert_float_eq(out[i], 0.0f);
        } else {
            ck_assert_float_eq_tol(mask[i], 1.0f / (1.0f - rate), 1e-6f);
            ck_assert_float_eq(out[i], in[i] * mask[i]);
        }
    }
    /* Binomial(20000, 0.3): standard deviation about 65. */
    ck_assert_int_gt(dropped, N * 0.3 - 400);
    ck_assert_int_lt(dropped, N * 0.3 + 400);
    /* Same random state, same mask. */
    dropout_forward(out2, mask2, in, N, rate, &again);
    ck_assert(memcmp(mask, mask2, N * sizeof *mask) == 0);
    free(in);
    free(out);
    free(mask);
    free(out2);
    free(mask2);
}
END_TEST

typedef struct {
    float *in, *out, *mask, *R;
    size_t n;
    float rate;
    nn_rng start; /* every loss evaluation draws the same mask */
} dropout_loss_ctx;

static double dropout_loss(void *v) {
    dropout_loss_ctx *x = v;
    nn_rng r = x->start;
    dropout_forward(x->out, x->mask, x->in, x->n, x->rate, &r);
    double s = 0;
    for (size_t i = 0; i < x->n; i++) s += (double)x->out[i] * x->R[i];
    return s;
}

START_TEST(dropout_backward_matches_finite_differences) {
    enum { N = 200 };
    nn_rng rng;
    nn_rng_seed(&rng, 900);
    dropout_loss_ctx x = {alloc_random(N, &rng, -1, 1), alloc_nan(N),
                          alloc_nan(N), alloc_random(N, &rng, -1, 1), N, 0.5f,
                          rng};
    dropout_loss(&x); /* fixes x.mask */
    float *din = alloc_nan(N);
    dropout_backward(din, x.R, x.mask, N);
    double e = tu_gradcheck(x.in, N, din, dropout_loss, &x, 1e-2f);
    ck_assert_msg(e < 1e-3, "din relative error %g", e);
    free(x.in);
    free(x.out);
    free(x.mask);
    free(x.R);
    free(din);
}
END_TEST

static Suite *conv_suite(void) {
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_add_loop_test(tc, conv_forward_matches_direct_convolution, 0, N_CASES);
    tcase_add_loop_test(tc, conv_backward_matches_finite_differences, 0, 6);
    tcase_add_test(tc, conv_backward_without_din_gives_same_weight_gradients);
    tcase_add_loop_test(tc, conv_results_across_thread_counts, 0, 5);
    tcase_add_test(tc, conv_scratch_covers_one_im2col_per_thread);
    tcase_add_loop_test(tc, conv_winograd_training_matches_direct_convolution,
                        0, N_WINOGRAD);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("maxpool");
    tcase_add_loop_test(tp, maxpool_forward_matches_definition, 0, N_POOLS);
    tcase_add_test(tp, maxpool_ties_pick_first_and_nan_wins);
    tcase_add_test(tp, maxpool_ties_follow_row_major_order);
    tcase_add_loop_test(tp, maxpool_backward_matches_finite_differences, 0, N_POOLS);
    tcase_add_test(tp, maxpool2_variants_follow_the_definition);
    suite_add_tcase(s, tp);

    TCase *td = tcase_create("dropout");
    tcase_add_test(td, dropout_rate_zero_is_identity_and_draws_nothing);
    tcase_add_test(td, dropout_drops_the_expected_fraction_and_rescales);
    tcase_add_test(td, dropout_backward_matches_finite_differences);
    suite_add_tcase(s, td);
    return s;
}

int main(void) { return tu_run(conv_suite()); }
