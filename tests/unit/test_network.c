/* Architecture strings, shapes, parameter layout and inference. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(mlp_spec_expands_with_activation) {
    nn_error err;
    nn_net *net = nn_net_create("784-256-128-10", "sigmoid", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    char buf[256];
    nn_net_describe(net, buf, sizeof buf);
    ck_assert_str_eq(buf, "dense256,sigmoid,dense128,sigmoid,dense10");
    ck_assert_uint_eq(net->n_params, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    ck_assert_uint_eq(net->layers[2].weights, 784 * 256 + 256);
    ck_assert_uint_eq(nn_net_macs(net), 784 * 256 + 256 * 128 + 128 * 10);
    nn_net_free(net);
}
END_TEST

/* The inference kernels read W in 64-byte vectors: every weight tensor of
 * the shipped architectures must start on a cache line (nn/network.c). */
START_TEST(weights_start_on_cache_lines) {
    static const char *const archs[] = {
        "784-256-128-10", "conv5x32,pool2,conv5x64,pool2,dense256,dense10",
        "conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense11"};
    for (int a = 0; a < 3; a++) {
        nn_error err;
        nn_net *net = nn_net_create(archs[a], "relu", &err);
        ck_assert_msg(net != NULL, "%s", err.msg);
        for (int i = 0; i < net->n_layers; i++)
            if (net->layers[i].n_weights > 0)
                ck_assert_msg((uintptr_t)(net->params + net->layers[i].weights) % 64 == 0,
                              "%s: layer %d's weights at %p", archs[a], i + 1,
                              (void *)(net->params + net->layers[i].weights));
        nn_net_free(net);
    }
}
END_TEST

START_TEST(cnn_spec_shapes) {
    nn_error err;
    nn_net *net = nn_net_create("conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10",
                                "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    char buf[256];
    nn_net_describe(net, buf, sizeof buf);
    ck_assert_str_eq(buf, "conv5x32,relu,pool2,conv5x64,relu,pool2,dense256,relu,dropout0.5,dense10");
    /* 28 -> same conv 28 -> pool 14 -> conv 14 -> pool 7: 64*7*7 into dense. */
    ck_assert_int_eq(net->layers[5].out.c, 64);
    ck_assert_int_eq(net->layers[5].out.h, 7);
    ck_assert_int_eq(net->layers[6].in.c * net->layers[6].in.h * net->layers[6].in.w, 64 * 49);
    size_t expect = 32 * 25 + 32 + 64 * 32 * 25 + 64 + 256 * 64 * 49 + 256 + 10 * 256 + 10;
    ck_assert_uint_eq(net->n_params, expect);
    /* each convolution's weights once per output position */
    ck_assert_uint_eq(nn_net_macs(net), 32 * 25 * 28 * 28 + 64 * 32 * 25 * 14 * 14 +
                                            256 * 64 * 49 + 10 * 256);
    nn_net_free(net);

    net = nn_net_create("conv3x8:valid,pool2,dense10", "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    ck_assert_int_eq(net->layers[0].out.h, 26);
    nn_net_describe(net, buf, sizeof buf);
    ck_assert_str_eq(buf, "conv3x8:valid,relu,pool2,dense10");
    nn_net_free(net);
}
END_TEST

START_TEST(explicit_activations_are_kept) {
    nn_error err;
    nn_net *net = nn_net_create("dense64,tanh,dense10", "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    ck_assert_int_eq(net->n_layers, 3);
    ck_assert_int_eq(net->layers[1].kind, NN_TANH);
    nn_net_free(net);
}
END_TEST

START_TEST(bad_specs_are_refused_with_reasons) {
    static const struct { const char *spec, *why; } cases[] = {
        {"", "empty"},
        {"785-10", "input size must be 784"},
        {"784-10-9", "last layer must be dense with 10"},
        {"784-abc-10", "not a layer size"},
        {"conv9x8,dense10", "cannot read"},
        {"conv5x0,dense10", "size 0"},
        {"conv3x4,pool2,pool2,pool2,pool2,pool2,dense10", "pooling"},
        {"dropout1.5,dense10", "dropout rate"},
        {"frobnicate,dense10", "cannot read"},
        {"dense10,relu", "last layer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_error err = {{0}};
        nn_net *net = nn_net_create(cases[i].spec, "relu", &err);
        ck_assert_msg(net == NULL, "'%s' accepted", cases[i].spec);
        ck_assert_msg(strstr(err.msg, cases[i].why), "'%s': message '%s' lacks '%s'",
                      cases[i].spec, err.msg, cases[i].why);
    }
    nn_error err;
    ck_assert_ptr_null(nn_net_create("784-10", "swish", &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown activation"));
}
END_TEST

START_TEST(predict_gives_distributions_and_batches_agree) {
    nn_error err;
    nn_net *net = nn_net_create("conv3x4,pool2,dense16,dense10", "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_net_init(net, &rng);
    enum { N = 300 }; /* more than one internal chunk of 256 */
    float *x = malloc(sizeof(float) * N * NN_PIXELS);
    float *p = malloc(sizeof(float) * N * NN_CLASSES);
    tu_fill(x, (size_t)N * NN_PIXELS, &rng, 0, 1);
    ck_assert_int_eq(nn_predict(net, x, N, p, 2, &err), 0);
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int c = 0; c < NN_CLASSES; c++) {
            ck_assert(p[r * NN_CLASSES + c] >= 0);
            s += p[r * NN_CLASSES + c];
        }
        ck_assert_double_eq_tol(s, 1.0, 1e-5);
    }
    /* One at a time gives the same answer as the batch. */
    for (int r = 0; r < N; r += 37) {
        float one[NN_CLASSES];
        ck_assert_int_eq(nn_predict(net, x + (size_t)r * NN_PIXELS, 1, one, 1, &err), 0);
        for (int c = 0; c < NN_CLASSES; c++)
            ck_assert_float_eq_tol(one[c], p[r * NN_CLASSES + c], 1e-5);
    }
    free(x);
    free(p);
    nn_net_free(net);
}
END_TEST

START_TEST(init_scales_follow_the_activation) {
    nn_error err;
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    nn_net *relu = nn_net_create("784-512-10", "relu", &err);
    nn_net *sig = nn_net_create("784-512-10", "sigmoid", &err);
    nn_net_init(relu, &rng);
    nn_net_init(sig, &rng);
    double vr = 0, vs = 0;
    size_t n = relu->layers[0].n_weights;
    for (size_t i = 0; i < n; i++) {
        vr += (double)relu->params[i] * relu->params[i];
        vs += (double)sig->params[i] * sig->params[i];
    }
    vr /= n;
    vs /= n;
    ck_assert_double_eq_tol(vr, 2.0 / 784, 0.1 * 2.0 / 784);              /* He */
    ck_assert_double_eq_tol(vs, 2.0 / (784 + 512), 0.1 * 2.0 / (784 + 512)); /* Glorot */
    nn_net_free(relu);
    nn_net_free(sig);
}
END_TEST

int main(void) {
    Suite *s = suite_create("network");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, mlp_spec_expands_with_activation);
    tcase_add_test(tc, cnn_spec_shapes);
    tcase_add_test(tc, weights_start_on_cache_lines);
    tcase_add_test(tc, explicit_activations_are_kept);
    tcase_add_test(tc, bad_specs_are_refused_with_reasons);
    tcase_add_test(tc, predict_gives_distributions_and_batches_agree);
    tcase_add_test(tc, init_scales_follow_the_activation);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
