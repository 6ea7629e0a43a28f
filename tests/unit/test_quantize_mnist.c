/* int8 inference on real MNIST (DIGITD_MNIST_DIR; without it this program
 * exits 77, which CTest reports as "Skipped", never as a pass): the
 * shipped models, calibrated as `digitd quantize` does (the first 2,000
 * training images, maximum of each range), stay within 0.05 points of
 * their float32 accuracy on the 10,000 test digits; the shipped calibrated
 * files are those models with that calibration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static nn_dataset train_set, test_set;

static const struct {
    const char *fp32, *int8;
} shipped[] = {
    {"models/cnn.model", "models/cnn-int8.model"},
    {"models/mlp.model", "models/mlp-int8.model"},
};

/* fp32 and int8 accuracy of net on MNIST test, printed; the bound. */
static void check_accuracy(const char *name, const nn_net *net) {
    nn_error err;
    double a32 = nn_evaluate(net, &test_set, 2, NULL, &err);
    ck_assert_msg(a32 >= 0, "%s", err.msg);
    nn_qnet *q = nn_qnet_create(net, &err);
    ck_assert_msg(q != NULL, "%s: %s", name, err.msg);
    double a8 = nn_qnet_evaluate(q, &test_set, NULL, &err);
    ck_assert_msg(a8 >= 0, "%s", err.msg);
    printf("%s: MNIST test fp32 %.4f, int8 %.4f (%+.2f points, kernel %s)\n",
           name, a32, a8, 100 * (a8 - a32), nn_qnet_kernel(q));
    ck_assert_msg(a8 >= a32 - 0.0005 && a8 <= a32 + 0.0005,
                  "%s: int8 %.4f is more than 0.05 points from fp32 %.4f",
                  name, a8, a32);
    ck_assert_double_ge(a8, 0.985);
    nn_qnet_free(q);
}

START_TEST(calibrated_shipped_models_stay_within_005_points) {
    nn_error err;
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++) {
        nn_net *net = nn_model_load(tu_source_path(shipped[i].fp32), &err);
        ck_assert_msg(net != NULL, "%s", err.msg);
        ck_assert_msg(nn_quantize_calibrate(net, train_set.images, 2000, 100.0,
                                            2, &err) == 0,
                      "%s", err.msg);
        check_accuracy(shipped[i].fp32, net);
        nn_net_free(net);
    }
}
END_TEST

/* The -int8 files are the float32 models plus a calibration: same layers
 * and weights (else they are stale: rerun `digitd quantize`), and their
 * own int8 accuracy within the bound. */
START_TEST(shipped_int8_files_are_the_models_calibrated) {
    nn_error err;
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++) {
        nn_net *a = nn_model_load(tu_source_path(shipped[i].fp32), &err);
        ck_assert_msg(a != NULL, "%s", err.msg);
        nn_net *b = nn_model_load(tu_source_path(shipped[i].int8), &err);
        ck_assert_msg(b != NULL, "%s", err.msg);
        ck_assert(nn_net_has_int8(b));
        ck_assert_int_eq(a->n_layers, b->n_layers);
        ck_assert_msg(a->n_params == b->n_params &&
                          memcmp(a->params, b->params,
                                 a->n_params * sizeof(float)) == 0,
                      "%s holds other weights than %s: rerun digitd quantize "
                      "%s %s", shipped[i].int8, shipped[i].fp32,
                      shipped[i].fp32, shipped[i].int8);
        check_accuracy(shipped[i].int8, b);
        nn_net_free(a);
        nn_net_free(b);
    }
}
END_TEST

int main(void) {
    int load = tu_mnist_sets(&train_set, &test_set, "the int8 MNIST tests");
    if (load) return load;
    Suite *s = suite_create("quantize_mnist");
    TCase *tc = tcase_create("mnist");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, calibrated_shipped_models_stay_within_005_points);
    tcase_add_test(tc, shipped_int8_files_are_the_models_calibrated);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    nn_dataset_free(&train_set);
    nn_dataset_free(&test_set);
    return rc;
}
