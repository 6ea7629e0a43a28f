/* The training loop on a small synthetic problem: it learns, it is
 * reproducible with a seed, and the progress callback can stop it. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Class k: a bright bar on row 4 + 2k, columns 6..21, plus noise. */
static nn_dataset synthetic(int n, uint64_t seed) {
    nn_dataset d = {n, malloc(sizeof(float) * n * NN_PIXELS), malloc((size_t)n)};
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        int k = (int)nn_rng_below(&rng, 10);
        float *img = d.images + (size_t)i * NN_PIXELS;
        for (int p = 0; p < NN_PIXELS; p++) img[p] = 0.3f * nn_rng_uniform(&rng);
        for (int x = 6; x < 22; x++) img[(4 + 2 * k) * NN_SIDE + x] = 1;
        d.labels[i] = (uint8_t)k;
    }
    return d;
}

static nn_train_config quick(void) {
    nn_train_config c;
    nn_train_config_defaults(&c);
    c.epochs = 3;
    c.batch = 32;
    c.augment = false;
    c.threads = 2;
    c.seed = 42;
    return c;
}

static nn_net *fresh(const char *spec, uint64_t seed) {
    nn_error err;
    nn_net *net = nn_net_create(spec, "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    return net;
}

START_TEST(learns_a_separable_problem) {
    nn_dataset train = synthetic(2000, 1), test = synthetic(500, 2);
    nn_net *net = fresh("784-32-10", 1);
    nn_train_config c = quick();
    nn_error err;
    ck_assert_int_eq(nn_train(net, &train, &test, &c, NULL, NULL, &err), 0);
    double acc = nn_evaluate(net, &test, 2, NULL, &err);
    ck_assert_double_ge(acc, 0.95);
    ck_assert_double_ge(net->meta.val_accuracy, 0.95);
    nn_net_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
}
END_TEST

/* Same seed and threads: identical weights, bit for bit, with
 * augmentation and dropout in play. Another seed: different weights. */
START_TEST(same_seed_same_weights) {
    nn_dataset train = synthetic(600, 3);
    const char *spec = "conv3x4,pool2,dense16,dropout0.3,dense10";
    nn_train_config c = quick();
    c.augment = true;
    c.epochs = 2;
    nn_error err;
    nn_net *a = fresh(spec, 9), *b = fresh(spec, 9), *d = fresh(spec, 9);
    ck_assert_int_eq(nn_train(a, &train, NULL, &c, NULL, NULL, &err), 0);
    ck_assert_int_eq(nn_train(b, &train, NULL, &c, NULL, NULL, &err), 0);
    c.seed = 43;
    ck_assert_int_eq(nn_train(d, &train, NULL, &c, NULL, NULL, &err), 0);
    ck_assert_int_eq(memcmp(a->params, b->params, a->n_params * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(a->params, d->params, a->n_params * sizeof(float)), 0);
    nn_net_free(a);
    nn_net_free(b);
    nn_net_free(d);
    nn_dataset_free(&train);
}
END_TEST

typedef struct {
    int batches, epochs;
} counts;

static int stop_after_three_batches(const nn_progress *p, void *user) {
    counts *c = user;
    if (p->event == NN_EVENT_BATCH) c->batches++;
    else c->epochs++;
    ck_assert(p->seen > 0 && p->seen <= p->total);
    ck_assert(p->loss > 0);
    return c->batches >= 3;
}

START_TEST(callback_reports_and_stops) {
    nn_dataset train = synthetic(1000, 4);
    nn_net *net = fresh("784-16-10", 2);
    nn_train_config c = quick();
    counts n = {0, 0};
    nn_error err;
    ck_assert_int_eq(nn_train(net, &train, NULL, &c, stop_after_three_batches, &n, &err), 0);
    ck_assert_int_eq(n.batches, 3);
    ck_assert_int_le(n.epochs, 1);
    nn_net_free(net);
    nn_dataset_free(&train);
}
END_TEST

START_TEST(bad_configuration_is_refused) {
    nn_dataset train = synthetic(10, 5);
    nn_net *net = fresh("784-16-10", 2);
    nn_train_config c = quick();
    nn_error err;
    c.batch = 0;
    ck_assert_int_eq(nn_train(net, &train, NULL, &c, NULL, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "batch"));
    c = quick();
    c.lr = -1;
    ck_assert_int_eq(nn_train(net, &train, NULL, &c, NULL, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "learning rate"));
    nn_net_free(net);
    nn_dataset_free(&train);
}
END_TEST

int main(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, learns_a_separable_problem);
    tcase_add_test(tc, same_seed_same_weights);
    tcase_add_test(tc, callback_reports_and_stops);
    tcase_add_test(tc, bad_configuration_is_refused);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
