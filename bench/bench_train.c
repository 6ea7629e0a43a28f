/*
 * bench_train.c: training throughput of digitd's core (nn_train), in
 * samples per second, for one architecture and optimiser.
 *
 * Loads MNIST train from --data DIR (default $DIGITD_MNIST_DIR, else
 * ../shared/mnist) or, when that fails, makes synthetic data of the same
 * shape. Runs a short warm-up (a few batches, stopped through the progress
 * callback), then trains --epochs epochs over the first --n samples without
 * augmentation and with a constant learning rate, and reports the epoch
 * throughput nn_train measures itself (NN_EVENT_EPOCH samples_per_sec:
 * gather + forward + backward + optimiser step, no shuffling, no
 * validation). With several epochs the median epoch is reported.
 *
 * Usage:
 *   bench_train [--arch SPEC] [--act relu|sigmoid|tanh] [--opt adam|sgd|momentum]
 *               [--lr X] [--batch N] [--threads T] [--n N] [--epochs E]
 *               [--warmup BATCHES] [--data DIR] [--seed S]
 * Prints one line of key=value pairs, the first `samples_per_sec=`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

typedef struct {
    int stop_after;  /* batches; 0 = never stop */
    int batches;
    int epochs_seen;
    double sps[64];  /* samples/s of each epoch */
    double loss, acc;
} bench_state;

static int on_progress(const nn_progress *p, void *user) {
    bench_state *s = user;
    if (p->event == NN_EVENT_BATCH) {
        s->batches++;
        return s->stop_after > 0 && s->batches >= s->stop_after;
    }
    if (s->epochs_seen < 64) s->sps[s->epochs_seen] = p->samples_per_sec;
    s->epochs_seen++;
    s->loss = p->loss;
    s->acc = p->train_accuracy;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void synthetic(nn_dataset *d, int n, uint64_t seed) {
    nn_rng r;
    nn_rng_seed(&r, seed);
    d->n = n;
    d->images = malloc((size_t)n * NN_PIXELS * sizeof(float));
    d->labels = malloc((size_t)n);
    if (!d->images || !d->labels) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)n * NN_PIXELS; i++)
        d->images[i] = nn_rng_uniform(&r) < 0.8f ? 0.0f : nn_rng_uniform(&r);
    for (int i = 0; i < n; i++) d->labels[i] = (uint8_t)nn_rng_below(&r, 10);
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_train [--arch SPEC] [--act relu|sigmoid|tanh] "
            "[--opt adam|sgd|momentum] [--lr X] [--batch N] [--threads T] "
            "[--n N] [--epochs E] [--warmup BATCHES] [--data DIR] [--seed S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *arch = "784-256-128-10", *act = "relu", *opt = "adam";
    const char *dir = getenv("DIGITD_MNIST_DIR");
    if (!dir || !*dir) dir = "../shared/mnist";
    double lr = 1e-3;
    int batch = 128, threads = 2, n = 60000, epochs = 1, warmup = 30;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--act")) act = v;
        else if (!strcmp(a, "--opt")) opt = v;
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--n")) n = atoi(v);
        else if (!strcmp(a, "--epochs")) epochs = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else usage();
    }
    if (epochs < 1 || epochs > 64 || n < 1 || batch < 1) usage();

    nn_error err;
    nn_dataset d = {0};
    const char *source = "mnist";
    if (nn_mnist_load(dir, "train", &d, &err)) {
        fprintf(stderr, "bench_train: %s; using synthetic data\n", err.msg);
        synthetic(&d, n, seed);
        source = "synthetic";
    }
    if (n > d.n) n = d.n;
    nn_dataset sub = {.n = n, .images = d.images, .labels = d.labels};

    nn_net *net = nn_net_create(arch, act, &err);
    if (!net) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);

    nn_train_config cfg;
    nn_train_config_defaults(&cfg);
    if (!strcmp(opt, "adam")) cfg.optimizer = NN_ADAM;
    else if (!strcmp(opt, "sgd")) cfg.optimizer = NN_SGD;
    else if (!strcmp(opt, "momentum")) cfg.optimizer = NN_MOMENTUM;
    else usage();
    cfg.lr = (float)lr;
    cfg.schedule = NN_LR_CONSTANT;
    cfg.batch = batch;
    cfg.augment = false;
    cfg.threads = threads;
    cfg.seed = seed;
    cfg.patience = 0;

    /* Warm-up: page in the buffers, spin up the thread pool. */
    if (warmup > 0) {
        bench_state w = {.stop_after = warmup};
        cfg.epochs = 1;
        if (nn_train(net, &sub, NULL, &cfg, on_progress, &w, &err)) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
    }

    bench_state s = {0};
    cfg.epochs = epochs;
    if (nn_train(net, &sub, NULL, &cfg, on_progress, &s, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    int m = s.epochs_seen < 64 ? s.epochs_seen : 64;
    qsort(s.sps, (size_t)m, sizeof s.sps[0], cmp_double);
    double med = m ? s.sps[m / 2] : 0;
    char desc[256];
    nn_net_describe(net, desc, sizeof desc);
    printf("samples_per_sec=%.0f n=%d epochs=%d batch=%d threads=%d opt=%s "
           "lr=%g loss=%.4f train_acc=%.4f data=%s arch=%s\n",
           med, n, epochs, batch, threads, opt, lr, s.loss, s.acc, source,
           desc);
    nn_net_free(net);
    nn_dataset_free(&d);
    return 0;
}
