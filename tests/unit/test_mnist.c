/* Tests that need the real MNIST files (DIGITD_MNIST_DIR). Without them
 * this program exits 77, which CTest reports as "Skipped": never as a
 * pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

static nn_dataset train_set, test_set;

/* A short run of the default recipe's network: 3 epochs, no augmentation,
 * must reach 97% on the 10,000 test digits. */
START_TEST(short_training_reaches_97_percent) {
    nn_error err;
    nn_net *net = nn_net_create("784-256-128-10", "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    nn_net_init(net, &rng);
    nn_train_config c;
    nn_train_config_defaults(&c);
    c.epochs = 3;
    c.augment = false;
    ck_assert_msg(nn_train(net, &train_set, NULL, &c, NULL, NULL, &err) == 0, "%s", err.msg);
    double acc = nn_evaluate(net, &test_set, 2, NULL, &err);
    printf("short training: test accuracy %.4f\n", acc);
    ck_assert_double_ge(acc, 0.97);
    nn_net_free(net);
}
END_TEST

/* Every shipped model still scores what its file says, within 0.1 point. */
START_TEST(shipped_models_keep_their_recorded_accuracy) {
    static const char *models[] = {"models/mlp.model", "models/cnn.model",
                                   "models/cnn-verdict.model"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        nn_error err;
        nn_net *net = nn_model_load(tu_source_path(models[i]), &err);
        ck_assert_msg(net != NULL, "%s: %s", models[i], err.msg);
        double acc = nn_evaluate(net, &test_set, 2, NULL, &err);
        printf("%s: test accuracy %.4f (recorded %.4f)\n", models[i], acc,
               net->meta.test_accuracy);
        ck_assert_double_ge(net->meta.test_accuracy, 0.985);
        ck_assert_double_ge(acc, net->meta.test_accuracy - 0.001);
        nn_net_free(net);
    }
}
END_TEST

/* nn_predict of the shipped default model (its second convolution on
 * Winograd's F(4x4, 5x5) since it applies there) names the same digit as
 * the reference forward (training kernels: im2col convolution, direct
 * sums) for each of the first 5,000 test images, on 1 and 2 threads; the
 * probabilities agree within 1e-5. */
START_TEST(default_model_predicts_the_reference_digits) {
    enum { N = 5000, CHUNK = 500 };
    nn_error err;
    nn_net *net = nn_model_load(tu_source_path("models/default.model"), &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    const int n_out = nn_net_outputs(net);
    float *logits = malloc((size_t)CHUNK * n_out * sizeof *logits);
    float *probs = malloc((size_t)CHUNK * NN_CLASSES * sizeof *probs);
    ck_assert(logits && probs);
    int differ = 0;
    double worst = 0;
    for (int s0 = 0; s0 < N && s0 < test_set.n; s0 += CHUNK) {
        const float *x = test_set.images + (size_t)s0 * NN_PIXELS;
        tu_reference_logits(net, x, CHUNK, logits);
        for (int threads = 1; threads <= 2; threads++) {
            ck_assert_int_eq(nn_predict(net, x, CHUNK, probs, threads, &err), 0);
            for (int r = 0; r < CHUNK; r++) {
                const float *l = logits + (size_t)r * n_out;
                const float *p = probs + (size_t)r * NN_CLASSES;
                int want = 0, got = 0;
                for (int k = 1; k < NN_CLASSES; k++) {
                    if (l[k] > l[want]) want = k;
                    if (p[k] > p[got]) got = k;
                }
                differ += want != got;
                /* The reference probabilities, as digit_probs makes them. */
                double m = l[0], sum = 0;
                for (int k = 1; k < NN_CLASSES; k++) if (l[k] > m) m = l[k];
                for (int k = 0; k < NN_CLASSES; k++)
                    sum += exp((l[k] - m) / net->meta.temperature);
                for (int k = 0; k < NN_CLASSES; k++) {
                    double ref = exp((l[k] - m) / net->meta.temperature) / sum;
                    if (fabs(ref - p[k]) > worst) worst = fabs(ref - p[k]);
                }
            }
        }
    }
    printf("default.model: %d of %d argmax differ from the reference, "
           "worst probability difference %.3g\n", differ, 2 * N, worst);
    ck_assert_int_eq(differ, 0);
    ck_assert_double_le(worst, 1e-5);
    free(logits);
    free(probs);
    nn_net_free(net);
}
END_TEST

/* The shipped verdict model's answers on the 10,000 test digits: at
 * least 98% accepted, at least 99.7% right among the accepted, and its
 * confidence calibrated to within 1% (ECE, 15 bins). The targets of
 * issue 13; the measured figures are in models/README.md. The same
 * through its int8 form, which `serve --precision auto` runs on CPUs with
 * AVX512-VNNI, and there within 0.05 points of float32 (issue 11). */
START_TEST(shipped_model_accepts_digits_and_is_calibrated) {
    nn_error err;
    nn_net *net = nn_model_load(tu_source_path("models/cnn-verdict.model"), &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_qnet *q = nn_qnet_create(net, &err);
    ck_assert_msg(q != NULL, "%s", err.msg);
    nn_eval_report r[2];
    for (int int8 = 0; int8 < 2; int8++) {
        nn_eval_report *e = &r[int8];
        ck_assert_msg(nn_evaluate_verdicts(net, int8 ? q : NULL, &test_set, 2, e, &err) == 0,
                      "%s", err.msg);
        printf("cnn-verdict.model (%s): accuracy %.4f, accepted %.4f, accuracy on accepted "
               "%.4f, ECE %.4f (uncalibrated %.4f), temperature %.3f\n",
               int8 ? "int8" : "fp32", e->accuracy, e->acceptance, e->accepted_accuracy,
               e->ece, e->ece_raw, e->temperature);
        ck_assert_double_ge(e->acceptance, 0.98);
        ck_assert_double_ge(e->accepted_accuracy, 0.997);
        ck_assert_double_le(e->ece, 0.01);
        ck_assert_double_ge(e->accuracy, net->meta.test_accuracy - 0.001);
    }
    ck_assert_double_le(fabs(r[1].accuracy - r[0].accuracy), 0.0005);
    ck_assert_double_le(fabs(r[1].acceptance - r[0].acceptance), 0.005);
    nn_qnet_free(q);
    nn_net_free(net);
}
END_TEST

int main(void) {
    int load = tu_mnist_sets(&train_set, &test_set, "the MNIST tests");
    if (load) return load;
    Suite *s = suite_create("mnist");
    TCase *tc = tcase_create("mnist");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, short_training_reaches_97_percent);
    tcase_add_test(tc, shipped_models_keep_their_recorded_accuracy);
    tcase_add_test(tc, default_model_predicts_the_reference_digits);
    tcase_add_test(tc, shipped_model_accepts_digits_and_is_calibrated);
    suite_add_tcase(s, tc);
    int rc = tu_run(s);
    nn_dataset_free(&train_set);
    nn_dataset_free(&test_set);
    return rc;
}
