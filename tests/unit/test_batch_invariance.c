/* An input's answer does not depend on the batch it runs in: the daemon's
 * dynamic batcher groups whatever requests arrive together, so nn_predict
 * on 32 inputs must give each of them, bit for bit, what it gives that
 * input alone (and in batches of other sizes, at any offset). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void check_invariance(const char *spec, const char *activation, int threads) {
    enum { B = 32 };
    nn_error err;
    nn_net *net = nn_net_create(spec, activation, &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_net_init(net, &rng);
    /* biases too, so a bias added in another order would show */
    for (int i = 0; i < net->n_layers; i++)
        tu_fill(net->params + net->layers[i].biases, net->layers[i].n_biases, &rng, -0.1f, 0.1f);
    float *x = malloc((size_t)B * NN_PIXELS * sizeof *x);
    float *all = malloc((size_t)B * NN_CLASSES * sizeof *all);
    float *part = malloc((size_t)B * NN_CLASSES * sizeof *part);
    ck_assert(x && all && part);
    tu_fill(x, (size_t)B * NN_PIXELS, &rng, 0.0f, 1.0f);
    /* half the rows mostly background, as images are: the first dense
     * layer skips zero inputs */
    tu_sparsify_rows(x, B, NN_PIXELS, 0.8f);
    ck_assert_int_eq(nn_predict(net, x, B, all, threads, &err), 0);
    /* batches of 1, 3, 5 and 13 at every offset they reach */
    const int sizes[] = {1, 3, 5, 13};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (int r0 = 0; r0 + sizes[k] <= B; r0 += sizes[k]) {
            ck_assert_int_eq(nn_predict(net, x + (size_t)r0 * NN_PIXELS, sizes[k], part,
                                        threads, &err), 0);
            ck_assert_msg(memcmp(part, all + (size_t)r0 * NN_CLASSES,
                                 (size_t)sizes[k] * NN_CLASSES * sizeof(float)) == 0,
                          "%s: rows %d..%d alone differ from the same rows in a batch of %d",
                          spec, r0, r0 + sizes[k] - 1, B);
        }
    }
    free(x);
    free(all);
    free(part);
    nn_net_free(net);
}

START_TEST(cnn_answers_do_not_depend_on_the_batch) {
    check_invariance("conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10", "relu", 1);
    check_invariance("conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10", "relu", 2);
}
END_TEST

START_TEST(mlp_answers_do_not_depend_on_the_batch) {
    check_invariance("784-256-128-10", "relu", 1);
    check_invariance("784-256-128-10", "sigmoid", 2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("batch_invariance");
    TCase *tc = tcase_create("predict");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cnn_answers_do_not_depend_on_the_batch);
    tcase_add_test(tc, mlp_answers_do_not_depend_on_the_batch);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
