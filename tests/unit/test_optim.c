/* Optimiser steps, weight decay and schedules against values worked out
 * by hand (the arithmetic is in the comments). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "testutil.h"

static nn_train_config config(nn_optimizer o) {
    nn_train_config c;
    nn_train_config_defaults(&c);
    c.optimizer = o;
    return c;
}

START_TEST(sgd_step) {
    nn_train_config c = config(NN_SGD);
    float p = 1, g = 0.5f, m = 0, v = 0;
    optim_step(&c, NULL, &p, &g, &m, &v, 1, 0.1f, 1); /* 1 - 0.1 * 0.5 */
    ck_assert_float_eq_tol(p, 0.95f, 1e-7f);
}
END_TEST

START_TEST(momentum_steps) {
    nn_train_config c = config(NN_MOMENTUM); /* mu 0.9 */
    float p = 1, g = 0.5f, m = 0, v = 0;
    optim_step(&c, NULL, &p, &g, &m, &v, 1, 0.1f, 1); /* m = 0.5, p = 0.95 */
    ck_assert_float_eq_tol(p, 0.95f, 1e-7f);
    optim_step(&c, NULL, &p, &g, &m, &v, 1, 0.1f, 2); /* m = 0.95, p = 0.855 */
    ck_assert_float_eq_tol(m, 0.95f, 1e-7f);
    ck_assert_float_eq_tol(p, 0.855f, 1e-6f);
}
END_TEST

START_TEST(adam_steps) {
    nn_train_config c = config(NN_ADAM); /* b1 0.9, b2 0.999, eps 1e-8 */
    float p = 1, g = 0.5f, m = 0, v = 0;
    /* m = 0.05, v = 0.00025, m^ = 0.5, v^ = 0.25: p -= 0.1 * 0.5 / 0.5 */
    optim_step(&c, NULL, &p, &g, &m, &v, 1, 0.1f, 1);
    ck_assert_float_eq_tol(p, 0.9f, 1e-6f);
    g = -0.25f;
    /* m = 0.045 - 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225,
     * m^ = 0.02 / 0.19 = 0.1052632, v^ = 0.00031225 / 0.001999 = 0.1562031,
     * p = 0.9 - 0.1 * 0.1052632 / 0.3952254 = 0.8733662 */
    optim_step(&c, NULL, &p, &g, &m, &v, 1, 0.1f, 2);
    ck_assert_float_eq_tol(m, 0.02f, 1e-7f);
    ck_assert_float_eq_tol(v, 0.00031225f, 1e-8f);
    ck_assert_float_eq_tol(p, 0.8733662f, 2e-6f);
}
END_TEST

/* One optimiser step of element i worked out in double, as the comments
 * above do by hand. */
static void reference_step(const nn_train_config *c, double *p, double g,
                           double *m, double *v, double lr, long step) {
    switch (c->optimizer) {
    case NN_SGD:
        *p -= lr * g;
        break;
    case NN_MOMENTUM:
        *m = c->momentum * *m + g;
        *p -= lr * *m;
        break;
    case NN_ADAM:
        *m = c->beta1 * *m + (1 - c->beta1) * g;
        *v = c->beta2 * *v + (1 - c->beta2) * g * g;
        double mh = *m / (1 - pow(c->beta1, (double)step));
        double vh = *v / (1 - pow(c->beta2, (double)step));
        *p -= lr * mh / (sqrt(vh) + c->eps);
        break;
    }
}

/* Every variant this CPU runs, over a length that is no multiple of any
 * vector width, against the double reference for three steps; and the
 * same bits on one thread and on three (the shares are whole lines). */
START_TEST(variants_agree) {
    static const char *variants[] = {"avx512", "avx2", "generic"};
    static const nn_optimizer opts[] = {NN_SGD, NN_MOMENTUM, NN_ADAM};
    enum { N = 70001 }; /* above the size that is shared between threads */
    float *p[2], *m[2], *v[2], *g = malloc(N * sizeof(float));
    double *rp = malloc(N * sizeof(double)), *rm = malloc(N * sizeof(double)),
           *rv = malloc(N * sizeof(double));
    for (int k = 0; k < 2; k++) {
        p[k] = malloc(N * sizeof(float));
        m[k] = malloc(N * sizeof(float));
        v[k] = malloc(N * sizeof(float));
    }
    ck_assert_int_eq(optim_step_variant("sse9", NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 1), -1);
    int ran = 0;
    for (size_t vi = 0; vi < sizeof variants / sizeof *variants; vi++) {
        for (size_t oi = 0; oi < sizeof opts / sizeof *opts; oi++) {
            nn_train_config c = config(opts[oi]);
            srand(7);
            for (int i = 0; i < N; i++) {
                rp[i] = (double)rand() / RAND_MAX - 0.5;
                rm[i] = rv[i] = 0;
                for (int k = 0; k < 2; k++) {
                    p[k][i] = (float)rp[i];
                    m[k][i] = v[k][i] = 0;
                }
            }
            int rc = 0;
            for (long step = 1; step <= 3 && rc == 0; step++) {
                for (int i = 0; i < N; i++) {
                    g[i] = (float)((double)rand() / RAND_MAX - 0.5) * (float)step;
                    reference_step(&c, &rp[i], g[i], &rm[i], &rv[i], 0.01, step);
                }
                c.threads = 1;
                rc = optim_step_variant(variants[vi], &c, NULL, p[0], g, m[0], v[0], N, 0.01f, step);
                c.threads = 3;
                if (rc == 0)
                    ck_assert_int_eq(optim_step_variant(variants[vi], &c, NULL, p[1], g, m[1],
                                                        v[1], N, 0.01f, step), 0);
            }
            if (rc != 0) { /* this CPU has not the variant's instructions */
                ck_assert_str_ne(variants[vi], "generic");
                continue;
            }
            ran++;
            ck_assert_mem_eq(p[0], p[1], N * sizeof(float));
            ck_assert_mem_eq(m[0], m[1], N * sizeof(float));
            ck_assert_mem_eq(v[0], v[1], N * sizeof(float));
            for (int i = 0; i < N; i++)
                ck_assert_msg(fabs(p[0][i] - rp[i]) <= 1e-6 + 1e-5 * fabs(rp[i]),
                              "%s, optimiser %d, parameter %d: %.9g, reference %.9g",
                              variants[vi], (int)opts[oi], i, (double)p[0][i], rp[i]);
        }
    }
    ck_assert_int_ge(ran, 3); /* "generic" at least */
    for (int k = 0; k < 2; k++) {
        free(p[k]);
        free(m[k]);
        free(v[k]);
    }
    free(g);
    free(rp);
    free(rm);
    free(rv);
}
END_TEST

/* Training updates each layer's rows on the thread that owns their units
 * (optim_step with a net): the same bits as one thread's flat pass, for
 * layers whose unit counts are no multiple of the share (16), a conv
 * layer's (OC, C*K*K) rows, and teams of 2 and 3. A row updated twice or
 * never would differ. */
START_TEST(owned_rows_update_like_one_pass) {
    static const char *specs[] = {"784-100-10", "conv3x4,dense37,dense10"};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        nn_error err;
        nn_net *net = nn_net_create(specs[k], "relu", &err);
        ck_assert_msg(net != NULL, "%s", err.msg);
        const size_t n = net->n_params;
        ck_assert_uint_ge(n, 65536); /* shared between threads */
        float *g = malloc(n * sizeof(float)), *p[2], *m[2], *v[2];
        ck_assert_ptr_nonnull(g);
        for (int i = 0; i < 2; i++) {
            p[i] = malloc(n * sizeof(float));
            m[i] = calloc(n, sizeof(float));
            v[i] = calloc(n, sizeof(float));
            ck_assert(p[i] && m[i] && v[i]);
        }
        for (int threads = 2; threads <= 3; threads++) {
            srand(11);
            for (size_t i = 0; i < n; i++) {
                p[0][i] = p[1][i] = (float)rand() / RAND_MAX - 0.5f;
                g[i] = (float)rand() / RAND_MAX - 0.5f;
                m[0][i] = m[1][i] = v[0][i] = v[1][i] = 0;
            }
            nn_train_config c = config(NN_ADAM);
            for (long step = 1; step <= 2; step++) {
                c.threads = 1;
                optim_step(&c, NULL, p[0], g, m[0], v[0], n, 0.01f, step);
                c.threads = threads;
                optim_step(&c, net, p[1], g, m[1], v[1], n, 0.01f, step);
            }
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(memcmp(&p[0][i], &p[1][i], sizeof(float)) == 0 &&
                                  memcmp(&v[0][i], &v[1][i], sizeof(float)) == 0,
                              "%s, %d threads: parameter %zu", specs[k], threads, i);
        }
        for (int i = 0; i < 2; i++) {
            free(p[i]);
            free(m[i]);
            free(v[i]);
        }
        free(g);
        nn_net_free(net);
    }
}
END_TEST

START_TEST(weight_decay_spares_biases) {
    nn_error err;
    nn_net *net = nn_net_create("784-10", "relu", &err);
    ck_assert_ptr_nonnull(net);
    for (size_t i = 0; i < net->n_params; i++) net->params[i] = 2;
    float *g = calloc(net->n_params, sizeof(float));
    optim_weight_decay(net, g, 0.01f);
    ck_assert_float_eq_tol(g[0], 0.02f, 1e-8f);                     /* a weight */
    ck_assert_float_eq(g[net->layers[0].biases], 0); /* a bias */
    free(g);
    nn_net_free(net);
}
END_TEST

START_TEST(schedules) {
    nn_train_config c;
    nn_train_config_defaults(&c);
    c.lr = 0.1f;
    c.schedule = NN_LR_CONSTANT;
    ck_assert_double_eq_tol(optim_lr(&c, 7, 500, 1000), 0.1, 1e-7);
    c.schedule = NN_LR_STEP; /* gamma 0.5 every 5 epochs */
    ck_assert_double_eq_tol(optim_lr(&c, 4, 0, 1), 0.1, 1e-7);
    ck_assert_double_eq_tol(optim_lr(&c, 5, 0, 1), 0.05, 1e-7);
    ck_assert_double_eq_tol(optim_lr(&c, 10, 0, 1), 0.025, 1e-7);
    c.schedule = NN_LR_COSINE; /* from lr to lr/100 */
    ck_assert_double_eq_tol(optim_lr(&c, 0, 0, 1000), 0.1, 1e-7);
    ck_assert_double_eq_tol(optim_lr(&c, 0, 500, 1000), 0.1 * (0.01 + 0.99 * 0.5), 1e-7);
    ck_assert_double_eq_tol(optim_lr(&c, 0, 1000, 1000), 0.001, 1e-7);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, sgd_step);
    tcase_add_test(tc, momentum_steps);
    tcase_add_test(tc, adam_steps);
    tcase_add_test(tc, variants_agree);
    tcase_add_test(tc, owned_rows_update_like_one_pass);
    tcase_add_test(tc, weight_decay_spares_biases);
    tcase_add_test(tc, schedules);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
