/* Gradients against central finite differences: the dense kernel alone,
 * then whole small networks (every activation, pooling, dropout off, the
 * fused softmax cross-entropy), so each backward is checked in context.
 * And the numerical safety of sigmoid, softmax and the loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "testutil.h"

/* ---- dense alone: loss = sum(out * R), in double ------------------- */
enum { DB = 3, DI = 5, DO = 4 };
static float d_in[DB * DI], d_w[DO * DI], d_b[DO], d_r[DB * DO];

static double dense_loss(void *ctx) {
    (void)ctx;
    float out[DB * DO];
    dense_forward(out, d_in, d_w, d_b, DB, DI, DO, NULL, 1);
    double s = 0;
    for (int i = 0; i < DB * DO; i++) s += (double)out[i] * d_r[i];
    return s;
}

START_TEST(dense_matches_finite_differences) {
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    tu_fill(d_in, DB * DI, &rng, -1, 1);
    tu_fill(d_w, DO * DI, &rng, -1, 1);
    tu_fill(d_b, DO, &rng, -1, 1);
    tu_fill(d_r, DB * DO, &rng, -1, 1);
    float din[DB * DI], dw[DO * DI], db[DO];
    dense_backward(din, dw, db, d_r, d_in, d_w, DB, DI, DO, NULL, 1);
    ck_assert_double_lt(tu_gradcheck(d_in, DB * DI, din, dense_loss, NULL, 1e-2f), 1e-3);
    ck_assert_double_lt(tu_gradcheck(d_w, DO * DI, dw, dense_loss, NULL, 1e-2f), 1e-3);
    ck_assert_double_lt(tu_gradcheck(d_b, DO, db, dense_loss, NULL, 1e-2f), 1e-3);
}
END_TEST

/* The input-major dense layer (dense.c: W^T, as training holds a first
 * layer's) against the plain one (W, the packed GEMM), on shapes around
 * the tiles and on teams of 1-3: outputs, dW and db equal up to the order
 * of the sums, on an image-like input (mostly zeros: the sparse path, and
 * for dW also the GEMM when no scratch is given) and on one without zeros
 * (the GEMM on W^T); the sparse path's own results bit for bit on every
 * team. Teams of 3 cut a 256-unit layer inside its panels. */
START_TEST(dense_input_major_equals_plain) {
    static const struct {
        int B, I, O;
    } shapes[] = {{1, 784, 256}, {32, 784, 64}, {32, 17, 33},
                  {5, 100, 1},   {32, 300, 130}, {100, 784, 40}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int B = shapes[k].B, I = shapes[k].I, O = shapes[k].O;
        const size_t nw = (size_t)O * I;
        nn_rng rng;
        nn_rng_seed(&rng, 70 + k);
        float *in = malloc(sizeof(float) * B * I);
        float *W = malloc(sizeof(float) * nw), *Wt = malloc(sizeof(float) * nw);
        float *b = malloc(sizeof(float) * O);
        float *dout = malloc(sizeof(float) * B * O);
        float *out = malloc(sizeof(float) * B * O), *want_out = malloc(sizeof(float) * B * O);
        float *dWt = malloc(sizeof(float) * nw), *dW = malloc(sizeof(float) * nw);
        float *want_dW = malloc(sizeof(float) * nw);
        float *db = malloc(sizeof(float) * O), *want_db = malloc(sizeof(float) * O);
        float *first_out = malloc(sizeof(float) * B * O);
        float *first_dWt = malloc(sizeof(float) * nw);
        float *scratch = malloc(sizeof(float) * dense_scratch_floats(B, I, 3));
        ck_assert(in && W && Wt && b && dout && out && want_out && dWt && dW &&
                  want_dW && db && want_db && first_out && first_dWt && scratch);
        tu_fill(W, nw, &rng, -1, 1);
        dense_to_wt(W, Wt, I, O);
        tu_fill(b, (size_t)O, &rng, -1, 1);
        tu_fill(dout, (size_t)B * O, &rng, -1, 1);
        for (int image_like = 1; image_like >= 0; image_like--) {
            /* an image's background: about 85% zeros, some rows all zeros */
            tu_fill(in, (size_t)B * I, &rng, 0, 1);
            if (image_like)
                for (int r = 0; r < B; r++)
                    for (int i = 0; i < I; i++)
                        if (r % 7 == 3 || in[(size_t)r * I + i] < 0.85f)
                            in[(size_t)r * I + i] = 0.0f;
            dense_forward(want_out, in, W, b, B, I, O, NULL, 1);
            dense_backward(NULL, want_dW, want_db, dout, in, W, B, I, O, NULL,
                           1);
            /* (without zeros, teams of 1 and 3: this test runs under
             * valgrind too) */
            for (int threads = 1; threads <= 3; threads += image_like ? 1 : 2) {
                dense_forward_wt(out, in, Wt, b, B, I, O, NULL, threads);
                tu_assert_close("out", out, want_out, (size_t)B * O, 1e-5);
                for (int with_scratch = !image_like; with_scratch <= 1;
                     with_scratch++) {
                    dense_backward_wt(dWt, db, dout, in, B, I, O,
                                      with_scratch ? scratch : NULL, threads);
                    dense_from_wt(dWt, dW, I, O);
                    tu_assert_close("dW", dW, want_dW, nw, 1e-5);
                    tu_assert_close("db", db, want_db, (size_t)O, 1e-6);
                }
                if (!image_like)
                    continue;
                if (threads == 1) {
                    memcpy(first_out, out, sizeof(float) * B * O);
                    memcpy(first_dWt, dWt, sizeof(float) * nw);
                }
                ck_assert_msg(memcmp(first_out, out, sizeof(float) * B * O) == 0,
                              "%d x %d x %d: outputs differ on %d threads", B,
                              I, O, threads);
                ck_assert_msg(memcmp(first_dWt, dWt, sizeof(float) * nw) == 0,
                              "%d x %d x %d: dW differs on %d threads", B, I,
                              O, threads);
            }
        }
        free(in), free(W), free(Wt), free(b), free(dout), free(out);
        free(want_out), free(dWt), free(dW), free(want_dW), free(db);
        free(want_db), free(first_out), free(first_dWt), free(scratch);
    }
}
END_TEST

/* ---- whole networks ---------------------------------------------- */
typedef struct {
    nn_net *net;
    float *x;
    uint8_t labels[4];
    int B;
} net_ctx;

/* Loss in float through the real forward pass (dropout off). */
static double net_loss(void *p) {
    net_ctx *c = p;
    float probs[4 * NN_CLASSES];
    nn_error err;
    ck_assert_int_eq(nn_predict(c->net, c->x, c->B, probs, 1, &err), 0);
    double s = 0;
    for (int r = 0; r < c->B; r++) s -= log((double)probs[r * NN_CLASSES + c->labels[r]]);
    return s / c->B;
}

/* Checks about 40 weights spread over each layer, and all its biases.
 * Finite differences are only exact where the loss is smooth: a ReLU or
 * max-pool whose input crosses a kink inside +-h gives a wrong numerical
 * value. So smooth nets must match everywhere (max_off 0) and nets with
 * kinks at all but a small fraction of points. */
static void check_net(const char *spec, const char *act, float h, double tol,
                      double max_off) {
    nn_error err;
    net_ctx c = {.B = 3};
    c.net = nn_net_create(spec, act, &err);
    ck_assert_msg(c.net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    nn_net_init(c.net, &rng);
    /* Non-zero biases so that every bias gradient path is exercised. */
    for (int i = 0; i < c.net->n_layers; i++) {
        nn_layer *l = &c.net->layers[i];
        tu_fill(c.net->params + l->biases, l->n_biases, &rng, -0.1f, 0.1f);
    }
    c.x = malloc(sizeof(float) * c.B * NN_PIXELS);
    tu_fill(c.x, (size_t)c.B * NN_PIXELS, &rng, 0, 1);
    for (int r = 0; r < c.B; r++) c.labels[r] = (uint8_t)nn_rng_below(&rng, 10);

    float *grads = malloc(sizeof(float) * c.net->n_params);
    double loss = net_gradients(c.net, c.x, c.labels, c.B, grads, 1, &err);
    ck_assert_double_eq_tol(loss, net_loss(&c), 1e-4);

    /* Per layer: its biases and a spread of its weights. */
    double worst = 0;
    int checked = 0, off = 0;
    for (int i = 0; i < c.net->n_layers; i++) {
        nn_layer *l = &c.net->layers[i];
        if (!l->n_weights) continue;
        size_t step = l->n_weights / 40 + 1;
        for (size_t k = 0; k < l->n_weights; k += step) {
            size_t at = l->weights + k;
            double e = tu_gradcheck(c.net->params + at, 1, grads + at, net_loss, &c, h);
            checked++;
            if (e > tol) off++;
            if (e > worst) worst = e;
        }
        for (size_t k = 0; k < l->n_biases; k++) {
            size_t at = l->biases + k;
            double e = tu_gradcheck(c.net->params + at, 1, grads + at, net_loss, &c, h);
            if (e > worst) worst = e;
            checked++;
            if (e > tol) off++;
        }
    }
    ck_assert_msg(off <= max_off * checked,
                  "%s/%s: %d of %d gradients off by more than %g (worst %g)",
                  spec, act, off, checked, tol, worst);
    free(grads);
    free(c.x);
    nn_net_free(c.net);
}

START_TEST(mlp_sigmoid) { check_net("784-16-12-10", "sigmoid", 1e-2f, 1e-2, 0); }
END_TEST
START_TEST(mlp_tanh) { check_net("784-16-12-10", "tanh", 1e-2f, 1e-2, 0); }
END_TEST
START_TEST(cnn_tanh_dropout) {
    check_net("conv3x3,tanh,conv3x4:valid,tanh,dense8,tanh,dropout0.5,dense10",
              "relu", 1e-2f, 1e-2, 0);
}
END_TEST
START_TEST(mlp_relu) { check_net("784-16-12-10", "relu", 1e-3f, 5e-2, 0.1); }
END_TEST
START_TEST(cnn_relu_pool) {
    check_net("conv3x3,pool2,conv3x4:valid,pool2,dense8,dense10", "relu", 1e-3f, 5e-2, 0.1);
}
END_TEST

/* conv5x16 after conv5x16 takes the Winograd path of training
 * (conv_winograd_applies) and of inference (the loss above). */
START_TEST(cnn_winograd) {
    check_net("conv5x16,pool2,conv5x16,pool2,dense8,dense10", "relu", 1e-3f, 5e-2, 0.1);
}
END_TEST

/* The default CNN's gradients on 8 samples with 1, 2 and 3 threads: the
 * loss and every gradient but the convolutions' weights bit for bit
 * (pooling and activations share out their planes and runs; each value
 * is computed alone), the convolutions' weights up to the order of their
 * sums over the batch. A share computed twice or never would be off by
 * far more. */
START_TEST(cnn_gradients_across_thread_counts) {
    enum { B = 8 };
    nn_error err;
    nn_net *net = nn_net_create("conv5x32,pool2,conv5x64,pool2,dense256,dense10",
                                "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 21);
    nn_net_init(net, &rng);
    float *x = malloc(sizeof(float) * B * NN_PIXELS);
    float *g1 = malloc(sizeof(float) * net->n_params);
    float *g = malloc(sizeof(float) * net->n_params);
    ck_assert(x && g1 && g);
    tu_fill(x, (size_t)B * NN_PIXELS, &rng, 0, 1);
    uint8_t labels[B];
    for (int r = 0; r < B; r++) labels[r] = (uint8_t)nn_rng_below(&rng, 10);
    double loss1 = net_gradients(net, x, labels, B, g1, 1, &err);
    for (int threads = 2; threads <= 3; threads++) {
        double loss = net_gradients(net, x, labels, B, g, threads, &err);
        ck_assert(loss == loss1);
        for (int i = 0; i < net->n_layers; i++) {
            const nn_layer *l = &net->layers[i];
            const float *a = g1 + l->weights, *b = g + l->weights;
            if (l->kind != NN_CONV) {
                ck_assert_msg(memcmp(a, b, l->n_weights * sizeof *a) == 0,
                              "layer %d, %d threads", i, threads);
            } else {
                double worst = 0, scale = 0;
                for (size_t k = 0; k < l->n_weights; k++) {
                    if (fabs(a[k] - b[k]) > worst) worst = fabs(a[k] - b[k]);
                    if (fabs(a[k]) > scale) scale = fabs(a[k]);
                }
                ck_assert_msg(worst <= 1e-5 * scale, "layer %d, %d threads: %g of %g",
                              i, threads, worst, scale);
            }
            ck_assert(memcmp(g1 + l->biases, g + l->biases,
                             l->n_biases * sizeof *g) == 0);
        }
    }
    free(x);
    free(g1);
    free(g);
    nn_net_free(net);
}
END_TEST

/* Training fuses layers (layers.h: forward_act, backward_act; train.c):
 * an activation into the convolution or dense layer before it, a relu's
 * derivative into the pooling after it, any activation's into the dense
 * layer after it. The same operations on the same values, so
 * net_gradients must equal the plain layer-by-layer passes below bit for
 * bit: loss and every gradient, on nets where each fusion happens alone,
 * together, on both convolution paths (im2col and Winograd), and after a
 * relu that is the first layer. Training also cuts a dense layer between
 * threads by units (dense.c): on a batch large enough for a team, an
 * MLP's gradients on 2 and 3 threads equal the passes on one. */
static double layer_by_layer(const nn_net *plain, const float *x,
                             const uint8_t *labels, int B, float *grads,
                             int threads) {
    /* the layout training uses: a first dense layer input-major */
    nn_net view, *net = &view;
    float *params = malloc(plain->n_params * sizeof(float));
    float *view_grads = malloc(plain->n_params * sizeof(float));
    ck_assert(params && view_grads);
    train_layout(plain, net, params);
    const int n = net->n_layers, K = nn_net_outputs(net);
    float *act[NN_MAX_LAYERS + 1];
    int32_t *argmax[NN_MAX_LAYERS];
    size_t wide = NN_PIXELS, scratch_n = 1;
    act[0] = malloc((size_t)B * NN_PIXELS * sizeof(float));
    ck_assert(act[0]);
    memcpy(act[0], x, (size_t)B * NN_PIXELS * sizeof(float));
    for (int i = 0; i < n; i++) {
        size_t o = nn_shape_size(net->layers[i].out);
        size_t s = layer_scratch_floats(&net->layers[i], B, threads);
        wide = o > wide ? o : wide;
        scratch_n = s > scratch_n ? s : scratch_n;
        act[i + 1] = malloc((size_t)B * o * sizeof(float));
        argmax[i] = malloc((size_t)B * o * sizeof(int32_t));
        ck_assert(act[i + 1] && argmax[i]);
    }
    float *scratch = malloc(scratch_n * sizeof(float));
    float *dout = malloc((size_t)B * wide * sizeof(float));
    float *din = malloc((size_t)B * wide * sizeof(float));
    float *probs = malloc((size_t)B * K * sizeof(float));
    ck_assert(scratch && dout && din && probs);
    for (int i = 0; i < n; i++)
        layer_forward(&net->layers[i], net->params, act[i], act[i + 1], B,
                      argmax[i], NULL, NULL, scratch, threads);
    softmax_forward(probs, act[n], B, K);
    /* as train_batch sums it and net_gradients divides it, for equal bits */
    double loss = (double)xent_loss(act[n], labels, B, K) * B / B;
    softmax_xent_backward(dout, probs, labels, B, K);
    for (int i = n - 1; i >= 0; i--) {
        layer_backward(&net->layers[i], net->params, view_grads, act[i],
                       act[i + 1], dout, i > 0 ? din : NULL, B, argmax[i],
                       NULL, scratch, threads);
        float *tmp = dout;
        dout = din;
        din = tmp;
    }
    net_layout(net, view_grads, grads);
    for (int i = 0; i <= n; i++) free(act[i]);
    for (int i = 0; i < n; i++) free(argmax[i]);
    free(params);
    free(view_grads);
    free(scratch);
    free(dout);
    free(din);
    free(probs);
    return loss;
}

START_TEST(fused_training_equals_layer_by_layer) {
    static const struct {
        const char *spec, *act;
        int B;
        bool against_one_thread; /* else against as many threads */
        bool image_like; /* inputs mostly zeros: dense.c's sparse path */
    } nets[] = {
        /* im2col conv1 + relu + pool, Winograd conv2 + relu + pool (the
         * default CNN's layers with fewer channels: this test runs under
         * valgrind too, and cnn_gradients_across_thread_counts above
         * trains the default CNN itself) */
        {"conv5x16,pool2,conv5x16,pool2,dense10", "relu", 3, false, false},
        /* the pooled fusion on an odd map (25 x 25: the last row and
         * column pooled by no window) */
        {"conv4x6:valid,pool2,dense10", "relu", 3, false, false},
        /* an activation fused into im2col and into Winograd, no relu */
        {"conv3x16,conv5x16,dense12,dense10", "sigmoid", 3, false, false},
        {"conv3x16,conv5x16,pool2,dense10", "tanh", 3, false, false},
        /* a relu's derivative into the pooling, the relu after no conv */
        {"conv3x4,pool2,relu,pool2,dense10", "relu", 3, false, false},
        /* and a relu that is the first layer */
        {"relu,pool2,conv3x4,relu,pool2,dense10", "relu", 3, false, false},
        /* dense layers with each activation fused both ways */
        {"dense24,dense16,dense10", "relu", 3, false, false},
        {"dense24,dense16,dense10", "sigmoid", 3, false, false},
        {"sigmoid,dense16,tanh,dense10", "tanh", 3, false, false},
        /* dense layers cut between threads: both of the first two get a
         * team (batch x inputs x outputs >= 2^19, dense.c) */
        {"dense64,dense512,dense10", "relu", 16, true, false},
        {"dense64,dense512,dense10", "sigmoid", 16, true, false},
        /* the first layer input-major on the sparse path, on every team */
        {"dense64,dense10", "sigmoid", 16, true, true},
        {"dense64,dense32,dense10", "relu", 16, true, true},
    };
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++) {
        const int B = nets[k].B;
        nn_error err;
        nn_net *net = nn_net_create(nets[k].spec, nets[k].act, &err);
        ck_assert_msg(net != NULL, "%s: %s", nets[k].spec, err.msg);
        nn_rng rng;
        nn_rng_seed(&rng, 40 + k);
        nn_net_init(net, &rng);
        for (int i = 0; i < net->n_layers; i++) {
            nn_layer *l = &net->layers[i];
            tu_fill(net->params + l->biases, l->n_biases, &rng, -0.1f, 0.1f);
        }
        float *x = malloc(sizeof(float) * B * NN_PIXELS);
        float *g = calloc(net->n_params, sizeof(float));
        float *want = calloc(net->n_params, sizeof(float));
        ck_assert(x && g && want);
        /* inputs centred on 0, so relus and pools meet both signs */
        tu_fill(x, (size_t)B * NN_PIXELS, &rng, -1, 1);
        if (nets[k].image_like)
            for (size_t i = 0; i < (size_t)B * NN_PIXELS; i++)
                x[i] = x[i] < 0.6f ? 0.0f : x[i];
        uint8_t labels[16];
        ck_assert_int_le(B, 16);
        for (int r = 0; r < B; r++) labels[r] = (uint8_t)nn_rng_below(&rng, 10);
        /* teams of 3 too where the split itself is tested (valgrind runs
         * this test) */
        const int most = nets[k].against_one_thread ? 3 : 2;
        for (int threads = 1; threads <= most; threads++) {
            double loss = net_gradients(net, x, labels, B, g, threads, &err);
            double want_loss = layer_by_layer(
                net, x, labels, B, want, nets[k].against_one_thread ? 1 : threads);
            ck_assert_msg(loss == want_loss, "%s: loss %.9g, want %.9g",
                          nets[k].spec, loss, want_loss);
            for (size_t i = 0; i < net->n_params; i++)
                ck_assert_msg(memcmp(&g[i], &want[i], sizeof g[i]) == 0,
                              "%s, %d threads: parameter %zu: %.9g, want %.9g",
                              nets[k].spec, threads, i, g[i], want[i]);
        }
        free(x);
        free(g);
        free(want);
        nn_net_free(net);
    }
}
END_TEST

/* The gradient check must be able to fail: a wrong gradient is caught. */
START_TEST(gradcheck_catches_a_wrong_gradient) {
    nn_rng rng;
    nn_rng_seed(&rng, 12);
    tu_fill(d_in, DB * DI, &rng, -1, 1);
    tu_fill(d_w, DO * DI, &rng, -1, 1);
    tu_fill(d_r, DB * DO, &rng, -1, 1);
    float din[DB * DI], dw[DO * DI], db[DO];
    dense_backward(din, dw, db, d_r, d_in, d_w, DB, DI, DO, NULL, 1);
    dw[3] *= 1.1f;
    ck_assert_double_gt(tu_gradcheck(d_w, DO * DI, dw, dense_loss, NULL, 1e-2f), 1e-2);
}
END_TEST

/* ---- numerical safety --------------------------------------------- */
START_TEST(sigmoid_never_overflows) {
    float in[6] = {-1e30f, -1000, -88.8f, 88.8f, 1000, 1e30f}, out[6];
    sigmoid_forward(out, in, 6);
    for (int i = 0; i < 6; i++) {
        ck_assert(isfinite(out[i]));
        ck_assert(out[i] >= 0 && out[i] <= 1);
    }
    ck_assert_float_eq(out[0], 0);
    ck_assert_float_eq(out[5], 1);
}
END_TEST

/* The sigmoid's own exp (vectorisable) against double precision. */
START_TEST(sigmoid_is_accurate) {
    enum { N = 180001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -90.0f + 0.001f * (float)i;
    sigmoid_forward(y, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double ref = 1.0 / (1.0 + exp(-(double)x[i]));
        if (ref < 1e-37) continue; /* below float's normal range */
        double e = fabs(y[i] - ref) / ref;
        if (e > worst) worst = e;
    }
    ck_assert_double_lt(worst, 1e-6);
}
END_TEST

/* relu and sigmoid in every variant this CPU runs (simd.h), forward and
 * backward, against double precision, out of place and in place. */
START_TEST(activation_variants_agree) {
    static const char *variants[] = {"avx512", "avx2", "generic"};
    static const char *kinds[] = {"relu", "sigmoid"};
    enum { N = 1037 }; /* no multiple of any vector width */
    static float x[N], y[N], d[N], dx[N], inplace[N];
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    tu_fill(x, N, &rng, -30, 30);
    tu_fill(d, N, &rng, -1, 1);
    x[0] = 0, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -90, x[4] = 90;
    act_forward_fn f;
    act_backward_fn b;
    ck_assert_int_eq(act_variant("relu", "sse9", &f, &b), -1);
    ck_assert_int_eq(act_variant("tanh", "generic", &f, &b), -1);
    int ran = 0;
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++)
        for (size_t k = 0; k < 2; k++) {
            if (act_variant(kinds[k], variants[v], &f, &b) != 0) {
                ck_assert_str_ne(variants[v], "generic"); /* always runs */
                continue;
            }
            ran++;
            const bool relu = k == 0;
            f(y, x, N);
            b(dx, d, y, N);
            memcpy(inplace, x, sizeof x);
            f(inplace, inplace, N);
            ck_assert_mem_eq(inplace, y, sizeof y);
            for (int i = 0; i < N; i++) {
                double ref = relu ? (x[i] > 0 ? x[i] : 0) : 1 / (1 + exp(-(double)x[i]));
                double dref = relu ? (y[i] > 0 ? d[i] : 0)
                                   : (double)d[i] * y[i] * (1 - (double)y[i]);
                ck_assert_msg(fabs(y[i] - ref) <= 1e-6 * fabs(ref) + 1e-37,
                              "%s %s forward at %g: %.9g, reference %.9g", variants[v],
                              kinds[k], (double)x[i], (double)y[i], ref);
                ck_assert_msg(fabs(dx[i] - dref) <= 1e-6 * fabs(dref) + 1e-37,
                              "%s %s backward at %g: %.9g, reference %.9g", variants[v],
                              kinds[k], (double)x[i], (double)dx[i], dref);
            }
            memcpy(inplace, d, sizeof d);
            b(inplace, inplace, y, N);
            ck_assert_mem_eq(inplace, dx, sizeof dx);
        }
    ck_assert_int_ge(ran, 2);
}
END_TEST

START_TEST(softmax_and_loss_are_safe_for_huge_logits) {
    float logits[2 * NN_CLASSES] = {1e4f, -1e4f, 0, 0, 0, 0, 0, 0, 0, 0,
                                    -3e38f, 3e38f, 0, 0, 0, 0, 0, 0, 0, 0};
    float probs[2 * NN_CLASSES];
    uint8_t labels[2] = {1, 0}; /* both labels on a ~0 probability */
    softmax_forward(probs, logits, 2, NN_CLASSES);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int c = 0; c < NN_CLASSES; c++) {
            ck_assert(isfinite(probs[r * NN_CLASSES + c]));
            s += probs[r * NN_CLASSES + c];
        }
        ck_assert_double_eq_tol(s, 1, 1e-6);
    }
    float loss = xent_loss(logits, labels, 1, NN_CLASSES);
    ck_assert(isfinite(loss));
    ck_assert_float_eq_tol(loss, 2e4f, 1.0f); /* exactly lse - z[y] = 1e4 + 1e4 */
    float d[2 * NN_CLASSES];
    softmax_xent_backward(d, probs, labels, 2, NN_CLASSES);
    for (int i = 0; i < 2 * NN_CLASSES; i++) ck_assert(isfinite(d[i]));
}
END_TEST

int main(void) {
    Suite *s = suite_create("gradients");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dense_matches_finite_differences);
    tcase_add_test(tc, dense_input_major_equals_plain);
    tcase_add_test(tc, mlp_sigmoid);
    tcase_add_test(tc, mlp_tanh);
    tcase_add_test(tc, mlp_relu);
    tcase_add_test(tc, cnn_tanh_dropout);
    tcase_add_test(tc, cnn_relu_pool);
    tcase_add_test(tc, cnn_winograd);
    tcase_add_test(tc, cnn_gradients_across_thread_counts);
    tcase_add_test(tc, fused_training_equals_layer_by_layer);
    tcase_add_test(tc, gradcheck_catches_a_wrong_gradient);
    tcase_add_test(tc, sigmoid_never_overflows);
    tcase_add_test(tc, sigmoid_is_accurate);
    tcase_add_test(tc, activation_variants_agree);
    tcase_add_test(tc, softmax_and_loss_are_safe_for_huge_logits);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
