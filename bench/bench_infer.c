/*
 * bench_infer.c: single-image inference latency of digitd's core: one
 * nn_predict call with batch 1 (forward pass and softmax, scratch memory
 * allocated per call as the server does, the net prepared as the server
 * prepares it: nn_net_prepare), in microseconds.
 *
 * Inputs are MNIST test images from --data DIR (default $DIGITD_MNIST_DIR,
 * else ../shared/mnist) or synthetic ones, cycled so that the caches see
 * different inputs; the weights are freshly initialised (latency depends
 * on them only through how many ReLU outputs are 0, which the sparse dense
 * path skips: --model below). After --warmup calls, --iters calls are timed
 * one by one; median, p99 and mean are printed.
 * --model FILE times a trained model instead (its ReLU maps are as sparse
 * as the served ones, which the sparse dense path's speed depends on).
 *
 * Usage:
 * --batch B times calls of B images instead (what a dynamic batcher
 * forms); the figures are then per call, and per_image_us= is the median
 * divided by B.
 * --int8 1 calibrates the same net on the first 2,000 inputs
 * (nn_quantize_calibrate) and times nn_qnet_predict instead: the int8 row
 * (kernel= names the instruction set it ran on).
 *
 *   bench_infer [--arch SPEC] [--act relu|sigmoid|tanh] [--threads T]
 *               [--batch B]
 *               [--iters N] [--warmup N] [--data DIR] [--int8 0|1]
 *               [--model FILE]
 * Prints one line of key=value pairs, the first `median_us=`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_infer [--arch SPEC] [--act relu|sigmoid|tanh] "
                    "[--threads T] [--batch B] [--iters N] [--warmup N] [--data DIR] "
                    "[--int8 0|1] [--model FILE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *arch = "784-256-128-10", *act = "relu", *model = NULL;
    const char *dir = getenv("DIGITD_MNIST_DIR");
    if (!dir || !*dir) dir = "../shared/mnist";
    int threads = 1, iters = 20000, warmup = 2000, batch = 1, int8 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--act")) act = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--int8")) int8 = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--model")) model = v;
        else usage();
    }
    if (iters < 1 || warmup < 0 || threads < 1 || batch < 1 || batch > 1000)
        usage();

    nn_error err;
    nn_dataset d = {0};
    const char *source = "mnist";
    if (nn_mnist_load(dir, "t10k", &d, &err)) {
        fprintf(stderr, "bench_infer: %s; using synthetic data\n", err.msg);
        nn_rng r;
        nn_rng_seed(&r, 7);
        d.n = 1000;
        d.images = malloc((size_t)d.n * NN_PIXELS * sizeof(float));
        d.labels = calloc((size_t)d.n, 1);
        if (!d.images || !d.labels) return 1;
        for (size_t i = 0; i < (size_t)d.n * NN_PIXELS; i++)
            d.images[i] = nn_rng_uniform(&r);
        source = "synthetic";
    }

    nn_net *net = model ? nn_model_load(model, &err) : nn_net_create(arch, act, &err);
    if (!net) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    if (!model) {
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        nn_net_init(net, &rng);
    }
    /* As the daemon, predict and eval serve a loaded model. */
    if (nn_net_prepare(net, &err) != 0) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    nn_qnet *q = NULL;
    if (int8) {
        if (nn_quantize_calibrate(net, d.images, d.n < 2000 ? d.n : 2000,
                                  100.0, threads, &err) ||
            !(q = nn_qnet_create(net, &err))) {
            fprintf(stderr, "bench_infer: %s\n", err.msg);
            return 1;
        }
    }

    /* Calls take consecutive runs of `batch` images, cycling. */
    const int runs = d.n / batch;
    float *probs = malloc((size_t)batch * NN_CLASSES * sizeof *probs);
    double *t = malloc((size_t)iters * sizeof *t);
    if (!t || !probs || runs < 1) return 1;
    volatile float sink = 0;
    for (int i = 0; i < warmup; i++) {
        const float *x = d.images + (size_t)(i % runs) * batch * NN_PIXELS;
        if (q ? nn_qnet_predict(q, x, batch, probs, threads, &err)
              : nn_predict(net, x, batch, probs, threads, &err)) {
            fprintf(stderr, "bench_infer: %s\n", err.msg);
            return 1;
        }
        sink += probs[0];
    }
    double total0 = now_us();
    for (int i = 0; i < iters; i++) {
        const float *x = d.images + (size_t)(i % runs) * batch * NN_PIXELS;
        double t0 = now_us();
        if (q) nn_qnet_predict(q, x, batch, probs, threads, &err);
        else nn_predict(net, x, batch, probs, threads, &err);
        t[i] = now_us() - t0;
        sink += probs[0];
    }
    double mean = (now_us() - total0) / iters;
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    char desc[256];
    nn_net_describe(net, desc, sizeof desc);
    printf("median_us=%.2f p99_us=%.2f mean_us=%.2f min_us=%.2f iters=%d "
           "threads=%d batch=%d per_image_us=%.2f data=%s arch=%s kernel=%s\n",
           t[iters / 2], t[(size_t)((double)iters * 0.99)], mean, t[0], iters,
           threads, batch, t[iters / 2] / batch, source, desc,
           q ? nn_qnet_kernel(q) : "fp32");
    nn_qnet_free(q);
    (void)sink;
    free(t);
    free(probs);
    nn_net_free(net);
    nn_dataset_free(&d);
    return 0;
}
