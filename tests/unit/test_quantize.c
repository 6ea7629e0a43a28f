/* int8 inference (nn/quantize.c, nn/int8_gemm.c): the kernels agree with
 * each other and with a plain reference exactly; the int8 forward pass
 * follows the float32 one on random nets of every layer kind, batch 1 and
 * 32; calibration survives a model file; nets without an int8 form are
 * refused with reasons. The MNIST accuracy bound is in
 * test_quantize_mnist.c (it needs DIGITD_MNIST_DIR). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int8.h"
#include "layers.h"
#include "testutil.h"

static const char *const kernel_names[] = {"generic", "avx2", "vnni",
                                           "vnni-emulated"};
enum { N_KERNELS = sizeof kernel_names / sizeof kernel_names[0] };

/* ---- the GEMM kernels --------------------------------------------- */

/* Every kernel this CPU runs gives, for every shape (edge tiles included),
 * over all columns and over a random range of them (a conv's edge rows),
 * for extreme values (255 x -128 everywhere) and for sparse rows (groups
 * of 4 columns that are 0 in one row, in all rows of a tile, or not: the
 * VNNI kernel skips the groups that are 0 in a whole tile, in lists of
 * at most 1,024 groups, so Kp 4200 takes two), exactly the sums an int64
 * loop gives. */
START_TEST(kernels_equal_the_reference_exactly) {
    static const int Ms[] = {1, 2, 5, 6, 7, 13, 48, 50};
    static const int Ns[] = {1, 10, 16, 17, 32, 33, 64, 70};
    static const int Kps[] = {4, 8, 28, 100, 800, 4200};
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    int ran[N_KERNELS] = {0};
    for (int round = 0; round < 6; round++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (size_t ki = 0; ki < sizeof Kps / sizeof *Kps; ki++) {
                    int M = Ms[mi], N = Ns[ni], Kp = Kps[ki];
                    if (Kp > 1000 && (M > 7 || N > 33)) continue; /* time */
                    int extreme = round / 2 == 1, sparse = round / 2 == 2,
                        part = round % 2;
                    int np = (N + 15) / 16 * 16;
                    /* columns [k0, k1), multiples of 4 */
                    int k0 = 0, k1 = Kp;
                    if (part) {
                        k0 = 4 * (int)nn_rng_below(&rng, (uint32_t)(Kp / 4));
                        k1 = k0 + 4 + 4 * (int)nn_rng_below(&rng, (uint32_t)((Kp - k0) / 4));
                    }
                    size_t lda = (size_t)Kp + 3; /* not a multiple of 4 */
                    uint8_t *A = malloc((size_t)M * lda);
                    int8_t *W = malloc((size_t)N * Kp);
                    int32_t *C = malloc((size_t)M * np * sizeof *C);
                    int64_t *ref = malloc((size_t)M * np * sizeof *ref);
                    ck_assert(A && W && C && ref);
                    for (size_t i = 0; i < (size_t)M * lda; i++)
                        A[i] = extreme ? 255 : (uint8_t)nn_rng_below(&rng, 256);
                    for (int g = 0; sparse && g < Kp / 4; g++) {
                        bool column = nn_rng_below(&rng, 3) == 0; /* every row */
                        for (int m = 0; m < M; m++)
                            if (column || nn_rng_below(&rng, 2))
                                memset(A + m * lda + 4 * g, 0, 4);
                    }
                    for (size_t i = 0; i < (size_t)N * Kp; i++)
                        W[i] = extreme ? -128
                                       : (int8_t)((int)nn_rng_below(&rng, 255) - 127);
                    for (int m = 0; m < M; m++)
                        for (int n = 0; n < np; n++) {
                            int64_t s = 0;
                            for (int k = k0; n < N && k < k1; k++)
                                s += (int64_t)A[m * lda + k] * W[(size_t)n * Kp + k];
                            ref[(size_t)m * np + n] = s;
                        }
                    for (int v = 0; v < N_KERNELS; v++) {
                        const int8_kernel *k = int8_kernel_find(kernel_names[v]);
                        if (!k) continue;
                        ran[v]++;
                        void *packed = malloc(k->packed_bytes(N, Kp));
                        ck_assert(packed);
                        k->pack(W, N, Kp, packed);
                        memset(C, 0x55, (size_t)M * np * sizeof *C);
                        k->gemm(A, lda, M, packed, N, Kp, k0, k1, C, (size_t)np);
                        for (size_t i = 0; i < (size_t)M * np; i++)
                            if (C[i] != ref[i])
                                ck_abort_msg("%s M=%d N=%d Kp=%d [%d, %d) extreme=%d: "
                                             "C[%zu] = %d, expected %lld",
                                             kernel_names[v], M, N, Kp, k0, k1, extreme,
                                             i, C[i], (long long)ref[i]);
                        free(packed);
                    }
                    free(A);
                    free(W);
                    free(C);
                    free(ref);
                }
    for (int v = 0; v < N_KERNELS; v++)
        printf("int8 kernel %-14s %s\n", kernel_names[v],
               ran[v] ? "checked" : "not run: this CPU lacks it");
    ck_assert_int_gt(ran[0], 0);
    ck_assert_int_gt(ran[3], 0);
}
END_TEST

/* ---- whole networks ----------------------------------------------- */

/* Float32 logits through the training code's layers (the reference). */
static void fp32_logits(const nn_net *net, const float *x, int B, float *out) {
    size_t wide = NN_PIXELS, scratch_n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        size_t o = nn_shape_size(net->layers[i].out);
        wide = o > wide ? o : wide;
        size_t s = layer_scratch_floats(&net->layers[i], B, 1);
        scratch_n = s > scratch_n ? s : scratch_n;
    }
    float *mem = malloc((2 * wide * (size_t)B + scratch_n) * sizeof(float));
    ck_assert(mem);
    const float *in = x;
    for (int i = 0; i < net->n_layers; i++) {
        float *o = mem + (size_t)(i & 1) * wide * B;
        layer_forward(&net->layers[i], net->params, in, o, B, NULL, NULL, NULL,
                      mem + 2 * wide * B, 1);
        in = o;
    }
    memcpy(out, in, (size_t)B * NN_CLASSES * sizeof(float));
    free(mem);
}

/* Random digit-like inputs: mostly 0, some strokes of ink up to 1. */
static void fill_images(float *x, int n, nn_rng *rng) {
    for (size_t i = 0; i < (size_t)n * NN_PIXELS; i++) {
        float u = nn_rng_uniform(rng);
        x[i] = u < 0.7f ? 0.0f : nn_rng_uniform(rng);
    }
}

/* A random net with random (not zero) biases, calibrated on 256 random
 * images. */
static nn_net *random_net(const char *spec, uint64_t seed) {
    nn_error err;
    nn_net *net = nn_net_create(spec, "relu", &err);
    ck_assert_msg(net != NULL, "%s: %s", spec, err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        tu_fill(net->params + l->biases, l->n_biases, &rng, -0.2f, 0.2f);
    }
    float *cal = malloc((size_t)256 * NN_PIXELS * sizeof(float));
    ck_assert(cal);
    fill_images(cal, 256, &rng);
    ck_assert_msg(nn_quantize_calibrate(net, cal, 256, 100.0, 1, &err) == 0,
                  "%s", err.msg);
    free(cal);
    return net;
}

/* Nets covering dense, conv (same and valid padding, kernels 1 to 5, one
 * input channel and several), pool (2 and 3), relu fused and on its own
 * after pooling, dropout, a conv without ReLU (negative activations:
 * zero point above 0) before a valid conv and before a padded one (whose
 * edge rows skip patch rows of zero points: nn/quantize.c, patch_cols),
 * and the classic MLP. */
static const char *const specs[] = {
    "784-64-32-10",
    "conv5x8,pool2,conv3x16,pool2,dense32,dropout0.5,dense10",
    "conv3x4,conv3x6:valid,relu,pool3,dense10",
    "conv5x4,pool2,relu,conv1x8,relu,dense16,relu,dense10",
    "conv3x4,dense16,relu,dense10",
    "conv3x20,pool2,dense24,relu,dropout0.3,dense10",
    "conv3x4,conv5x8,relu,pool2,conv4x8,dense10",
};

/* int8 logits stay within 4% of the float32 logits' largest magnitude,
 * for batch 1 and 32, on every kernel; every kernel gives the same bits;
 * batch 1 and batch 32 give the same bits for the same image. */
START_TEST(int8_follows_fp32_on_every_layer_kind) {
    enum { B = 32 };
    float *x = malloc((size_t)B * NN_PIXELS * sizeof(float));
    float ref[B * NN_CLASSES], got[B * NN_CLASSES], first[B * NN_CLASSES],
        one[NN_CLASSES];
    ck_assert(x);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        nn_net *net = random_net(specs[s], 100 + s);
        nn_rng rng;
        nn_rng_seed(&rng, 500 + s);
        fill_images(x, B, &rng);
        fp32_logits(net, x, B, ref);
        float scale = 0;
        for (int i = 0; i < B * NN_CLASSES; i++)
            scale = fabsf(ref[i]) > scale ? fabsf(ref[i]) : scale;
        int have_first = 0;
        for (int v = 0; v < N_KERNELS; v++) {
            nn_error err;
            nn_qnet *q = int8_qnet_create_with(net, kernel_names[v], &err);
            if (!q) continue; /* this CPU lacks the kernel */
            ck_assert(int8_qnet_logits(q, x, B, got, 1, &err) == 0);
            double worst = 0;
            for (int i = 0; i < B * NN_CLASSES; i++) {
                double d = fabs((double)got[i] - ref[i]);
                worst = d > worst ? d : worst;
            }
            if (v == 0)
                printf("%-58s int8 vs fp32: max |dlogit| %.4f of %.3f (%.2f%%)\n",
                       specs[s], worst, scale, 100 * worst / scale);
            ck_assert_msg(worst <= 0.04 * scale, "%s on %s: %g > 4%% of %g",
                          specs[s], kernel_names[v], worst, scale);
            if (!have_first) {
                memcpy(first, got, sizeof got);
                have_first = 1;
            }
            ck_assert_msg(memcmp(first, got, sizeof got) == 0,
                          "%s: kernel %s differs from generic", specs[s],
                          kernel_names[v]);
            for (int b = 0; b < B; b += 7) {
                ck_assert(int8_qnet_logits(q, x + (size_t)b * NN_PIXELS, 1, one,
                                           1, &err) == 0);
                ck_assert_msg(memcmp(one, got + b * NN_CLASSES, sizeof one) == 0,
                              "%s on %s: batch 1 differs from batch 32",
                              specs[s], kernel_names[v]);
            }
            /* 2 and 3 threads, on batches that share samples (32), split
             * each sample's conv positions (1) and do both (3, 5). */
            static const int sizes[] = {32, 1, 3, 5};
            for (int t = 2; t <= 3; t++)
                for (int k = 0; k < 4; k++) {
                    float many[B * NN_CLASSES];
                    ck_assert(int8_qnet_logits(q, x, sizes[k], many, t, &err) == 0);
                    ck_assert_msg(memcmp(many, got, (size_t)sizes[k] * NN_CLASSES *
                                                        sizeof(float)) == 0,
                                  "%s on %s: %d threads at batch %d differ from 1",
                                  specs[s], kernel_names[v], t, sizes[k]);
                }
            nn_qnet_free(q);
        }
        ck_assert(have_first);
        nn_net_free(net);
    }
    free(x);
}
END_TEST

/* The same digit as float32 on nearly every input, and probabilities that
 * are distributions. */
/* A 2x2 pooling right after a conv is fused into it (the max taken over
 * the int32 sums); a dropout in between, an identity when serving, keeps
 * them apart. Both give the same bytes, at batch 1 and 32, on one thread
 * and two, with even and odd conv outputs (25 x 25: the last row and
 * column are not pooled). */
START_TEST(pooling_fused_into_conv_gives_the_same_bytes) {
    static const char *const pairs[][2] = {
        {"conv5x8,relu,pool2,conv3x16,pool2,dense10",
         "conv5x8,relu,dropout0.5,pool2,conv3x16,dropout0.5,pool2,dense10"},
        {"conv4x6:valid,relu,pool2,dense10", "conv4x6:valid,relu,dropout0.5,pool2,dense10"},
    };
    enum { B = 32 };
    float *x = malloc((size_t)B * NN_PIXELS * sizeof(float));
    static float fused[B * NN_CLASSES], apart[B * NN_CLASSES];
    ck_assert(x);
    nn_rng rng;
    nn_rng_seed(&rng, 77);
    fill_images(x, B, &rng);
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        nn_net *a = random_net(pairs[p][0], 900 + p), *b = random_net(pairs[p][1], 900 + p);
        nn_error err;
        nn_qnet *qa = nn_qnet_create(a, &err), *qb = nn_qnet_create(b, &err);
        ck_assert(qa && qb);
        for (int threads = 1; threads <= 2; threads++)
            for (int batch = 1; batch <= B; batch += B - 1) {
                ck_assert(int8_qnet_logits(qa, x, batch, fused, threads, &err) == 0);
                ck_assert(int8_qnet_logits(qb, x, batch, apart, threads, &err) == 0);
                ck_assert_msg(memcmp(fused, apart, (size_t)batch * NN_CLASSES * sizeof(float)) == 0,
                              "%s: fused pooling differs (batch %d, %d threads)",
                              pairs[p][0], batch, threads);
            }
        nn_qnet_free(qa);
        nn_qnet_free(qb);
        nn_net_free(a);
        nn_net_free(b);
    }
    free(x);
}
END_TEST

START_TEST(predict_gives_distributions_close_to_fp32) {
    enum { B = 64 };
    nn_net *net = random_net(specs[1], 7);
    nn_error err;
    nn_qnet *q = nn_qnet_create(net, &err);
    ck_assert_msg(q != NULL, "%s", err.msg);
    float *x = malloc((size_t)B * NN_PIXELS * sizeof(float));
    float p8[B * NN_CLASSES], p32[B * NN_CLASSES];
    ck_assert(x);
    nn_rng rng;
    nn_rng_seed(&rng, 8);
    fill_images(x, B, &rng);
    ck_assert(nn_qnet_predict(q, x, B, p8, 2, &err) == 0);
    ck_assert(nn_predict(net, x, B, p32, 1, &err) == 0);
    int same = 0;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        int a8 = 0, a32 = 0;
        for (int c = 0; c < NN_CLASSES; c++) {
            float v = p8[b * NN_CLASSES + c];
            ck_assert(v >= 0 && v <= 1);
            sum += v;
            a8 = v > p8[b * NN_CLASSES + a8] ? c : a8;
            a32 = p32[b * NN_CLASSES + c] > p32[b * NN_CLASSES + a32] ? c : a32;
        }
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
        same += a8 == a32;
    }
    printf("random CNN: int8 and fp32 agree on %d of %d digits\n", same, B);
    ck_assert_int_ge(same, B - 3);
    free(x);
    nn_qnet_free(q);
    nn_net_free(net);
}
END_TEST

/* Four threads predicting at once on one shared qnet get exactly what
 * one thread gets: the qnet is read-only, scratch is per call. */
typedef struct {
    const nn_qnet *q;
    const float *x;
    float probs[16 * NN_CLASSES];
    int rc;
} predict_job;

static void *predict_many(void *arg) {
    predict_job *j = arg;
    nn_error err;
    for (int round = 0; round < 20 && j->rc == 0; round++)
        for (int b = 0; b < 16 && j->rc == 0; b++)
            j->rc = nn_qnet_predict(j->q, j->x + (size_t)b * NN_PIXELS, 1,
                                    j->probs + b * NN_CLASSES, 1, &err);
    return NULL;
}

START_TEST(shared_qnet_is_thread_safe) {
    nn_net *net = random_net(specs[1], 31);
    nn_error err;
    nn_qnet *q = nn_qnet_create(net, &err);
    ck_assert_msg(q != NULL, "%s", err.msg);
    float *x = malloc((size_t)16 * NN_PIXELS * sizeof(float));
    float want[16 * NN_CLASSES];
    ck_assert(x);
    nn_rng rng;
    nn_rng_seed(&rng, 32);
    fill_images(x, 16, &rng);
    ck_assert(nn_qnet_predict(q, x, 16, want, 1, &err) == 0);
    predict_job jobs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (predict_job){.q = q, .x = x};
        ck_assert(pthread_create(&th[t], NULL, predict_many, &jobs[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        ck_assert(pthread_join(th[t], NULL) == 0);
        ck_assert_int_eq(jobs[t].rc, 0);
        ck_assert(memcmp(jobs[t].probs, want, sizeof want) == 0);
    }
    free(x);
    nn_qnet_free(q);
    nn_net_free(net);
}
END_TEST

/* ---- calibration in the model file, and refusals ------------------- */

START_TEST(calibration_survives_the_model_file) {
    tu_tmpdir_make();
    nn_net *net = random_net(specs[2], 11);
    nn_error err;
    const char *path = tu_tpath("q.model");
    ck_assert_msg(nn_model_save(net, path, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(path, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    ck_assert_str_eq(back->meta.int8_act_ranges, net->meta.int8_act_ranges);
    ck_assert(nn_net_has_int8(back));
    /* The ranges: input then every layer, the ReLU outputs from 0. */
    float v[2 * (NN_MAX_LAYERS + 1)];
    int n = 0;
    for (char *p = back->meta.int8_act_ranges, *end;; p = end) {
        float f = strtof(p, &end);
        if (end == p) break;
        v[n++] = f;
    }
    ck_assert_int_eq(n, 2 * (net->n_layers + 1));
    ck_assert(v[0] == 0.0f && v[1] > 0.9f && v[1] <= 1.0f); /* the images */
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].kind == NN_RELU) ck_assert(v[2 * (i + 1)] == 0.0f);

    float x[2 * NN_PIXELS], a[2 * NN_CLASSES], b[2 * NN_CLASSES];
    nn_rng rng;
    nn_rng_seed(&rng, 12);
    fill_images(x, 2, &rng);
    nn_qnet *q1 = nn_qnet_create(net, &err), *q2 = nn_qnet_create(back, &err);
    ck_assert(q1 && q2);
    ck_assert(nn_qnet_predict(q1, x, 2, a, 1, &err) == 0);
    ck_assert(nn_qnet_predict(q2, x, 2, b, 1, &err) == 0);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    nn_qnet_free(q1);
    nn_qnet_free(q2);

    /* An uncalibrated file writes no int8 key and has no int8 form. */
    back->meta.int8_act_ranges[0] = 0;
    ck_assert(nn_model_save(back, path, &err) == 0);
    nn_net_free(back);
    back = nn_model_load(path, &err);
    ck_assert(back && !nn_net_has_int8(back));
    ck_assert(nn_qnet_create(back, &err) == NULL);
    ck_assert_msg(strstr(err.msg, "no int8 calibration"), "%s", err.msg);
    nn_net_free(back);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(bad_calibrations_and_layers_are_refused) {
    nn_net *net = random_net("784-16-10", 13); /* 3 layers: 4 ranges */
    nn_error err;
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"0 1 0 2 0 2", "expected 4 ranges"},
        {"0 1 0 2 0 2 -3 3 0 1", "more than the 4 ranges"},
        {"0 1 0 2 0 nan -3 3", "not a number"},
        {"0 1 0 2 0 inf -3 3", "not a number"},
        {"0 1 0 2 3 2 -3 3", "range 2 is empty"},
        {"0 1 0 2 0 2 -3 x", "not a number"},
        {"0 1 0 2 0 3e30 -3 3", "not a number within +-1e30"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(net->meta.int8_act_ranges, sizeof net->meta.int8_act_ranges,
                 "%s", bad[i].text);
        ck_assert(nn_qnet_create(net, &err) == NULL);
        ck_assert_msg(strstr(err.msg, bad[i].why), "'%s': %s", bad[i].text,
                      err.msg);
    }
    snprintf(net->meta.int8_act_ranges, sizeof net->meta.int8_act_ranges,
             "0 1 0 2 0 2 -3 3");
    nn_qnet *q = nn_qnet_create(net, &err);
    ck_assert_msg(q != NULL, "%s", err.msg);
    nn_qnet_free(q);
    ck_assert(int8_qnet_create_with(net, "no-such-kernel", &err) == NULL);
    nn_net_free(net);

    /* sigmoid has no int8 kernel: refused, naming the layer. */
    net = nn_net_create("784-16-10", "sigmoid", &err);
    ck_assert(net != NULL);
    float x[4 * NN_PIXELS];
    nn_rng rng;
    nn_rng_seed(&rng, 14);
    fill_images(x, 4, &rng);
    ck_assert(nn_quantize_calibrate(net, x, 4, 100.0, 1, &err) == 0);
    ck_assert(nn_qnet_create(net, &err) == NULL);
    ck_assert_msg(strstr(err.msg, "layer 2 is sigmoid"), "%s", err.msg);
    /* Calibration's own arguments. */
    ck_assert(nn_quantize_calibrate(net, x, 0, 100.0, 1, &err) == -1);
    ck_assert(nn_quantize_calibrate(net, x, 4, 40.0, 1, &err) == -1);
    nn_net_free(net);
}
END_TEST

/* A percentile below 100 clips the rare largest values: ranges shrink
 * but never grow, and the net still follows fp32. */
START_TEST(percentile_calibration_narrows_ranges) {
    nn_net *net = random_net(specs[1], 21);
    char full[sizeof net->meta.int8_act_ranges];
    strcpy(full, net->meta.int8_act_ranges);
    nn_rng rng;
    nn_rng_seed(&rng, 22);
    float *x = malloc((size_t)256 * NN_PIXELS * sizeof(float));
    ck_assert(x);
    fill_images(x, 256, &rng);
    nn_error err;
    ck_assert(nn_quantize_calibrate(net, x, 256, 99.9, 1, &err) == 0);
    char *p = full, *q = net->meta.int8_act_ranges, *e1, *e2;
    int narrower = 0;
    for (int i = 0; i < 2 * (net->n_layers + 1); i++, p = e1, q = e2) {
        float a = strtof(p, &e1), b = strtof(q, &e2);
        ck_assert(e1 != p && e2 != q);
        if (i % 2) ck_assert(b <= a); /* hi */
        else ck_assert(b >= a);       /* lo */
        narrower += b != a;
    }
    ck_assert_int_gt(narrower, 0);
    free(x);
    nn_net_free(net);
}
END_TEST

int main(void) {
    Suite *s = suite_create("quantize");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_add_test(tc, kernels_equal_the_reference_exactly);
    tcase_add_test(tc, int8_follows_fp32_on_every_layer_kind);
    tcase_add_test(tc, pooling_fused_into_conv_gives_the_same_bytes);
    tcase_add_test(tc, predict_gives_distributions_close_to_fp32);
    tcase_add_test(tc, shared_qnet_is_thread_safe);
    tcase_add_test(tc, calibration_survives_the_model_file);
    tcase_add_test(tc, bad_calibrations_and_layers_are_refused);
    tcase_add_test(tc, percentile_calibration_narrows_ranges);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
