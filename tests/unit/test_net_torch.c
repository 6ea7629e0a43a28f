/* Whole networks against PyTorch: probabilities, loss and every
 * parameter gradient, from tests/data/net_reference.txt (written by
 * tests/pytorch/gen_net_reference.py from float64 arithmetic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "layers.h"
#include "testutil.h"

#define FIXTURE "tests/data/net_reference.txt"
enum { B = 2 };

/* Same order as SPECS in the script. */
static const char *specs[] = {
    "dense4,sigmoid,dense6,tanh,dense10",
    "dense4,relu,dense10",
    "conv3x2,relu,pool2,conv3x3:valid,relu,pool2,dense10",
};

static void compare(int n) {
    nn_error err;
    nn_net *net = nn_net_create(specs[n], "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    char name[64];
#define GET(field, count) \
    (snprintf(name, sizeof name, "net%d." field, n), tu_fixture_floats(FIXTURE, name, (count)))
    float *x = GET("x", B * NN_PIXELS);
    float *lab = GET("labels", B);
    float *params = GET("params", net->n_params);
    float *probs_ref = GET("probs", B * NN_CLASSES);
    float *loss_ref = GET("loss", 1);
    float *grads_ref = GET("grads", net->n_params);
#undef GET
    memcpy(net->params, params, net->n_params * sizeof(float));
    uint8_t labels[B];
    for (int r = 0; r < B; r++) labels[r] = (uint8_t)lab[r];

    float probs[B * NN_CLASSES];
    float *grads = malloc(net->n_params * sizeof(float));
    ck_assert_int_eq(nn_predict(net, x, B, probs, 1, &err), 0);
    double loss = net_gradients(net, x, labels, B, grads, 1, &err);
    snprintf(name, sizeof name, "%s probs", specs[n]);
    tu_assert_close(name, probs, probs_ref, B * NN_CLASSES, 1e-5);
    ck_assert_msg(fabs(loss - loss_ref[0]) <= 1e-5 * fabs(loss_ref[0]),
                  "%s: loss %.9g, PyTorch %.9g", specs[n], loss, loss_ref[0]);
    /* Layer by layer, so a failure names the layer. */
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        if (!l->n_weights) continue;
        snprintf(name, sizeof name, "%s layer %d weights", specs[n], i + 1);
        tu_assert_close(name, grads + l->weights, grads_ref + l->weights, l->n_weights, 1e-4);
        snprintf(name, sizeof name, "%s layer %d biases", specs[n], i + 1);
        tu_assert_close(name, grads + l->biases, grads_ref + l->biases, l->n_biases, 1e-4);
    }
    free(x);
    free(lab);
    free(params);
    free(probs_ref);
    free(loss_ref);
    free(grads_ref);
    free(grads);
    nn_net_free(net);
}

START_TEST(sigmoid_tanh_mlp) { compare(0); }
END_TEST
START_TEST(relu_mlp) { compare(1); }
END_TEST
START_TEST(relu_cnn_with_pooling) { compare(2); }
END_TEST

int main(void) {
    Suite *s = suite_create("net_torch");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sigmoid_tanh_mlp);
    tcase_add_test(tc, relu_mlp);
    tcase_add_test(tc, relu_cnn_with_pooling);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
