/*
 * bench_conv.c: time of the convolution layers of the reference CNN
 * "conv5x32,pool2,conv5x64,pool2,dense256,dense10" on 28x28 inputs
 * ("same" padding), forward and backward, per batch.
 *
 *   conv1: in (B,1,28,28)  W (32,1,5,5)  -> (B,32,28,28)
 *   conv2: in (B,32,14,14) W (64,32,5,5) -> (B,64,14,14)
 *
 * Backward is what training runs: conv2 with din, conv1 without (it is the
 * first layer). Usage: bench_conv [threads...]   (default: 1 2)
 *
 * bench_conv infer [threads...] instead times conv2 as inference runs it
 * (with relu and the 2x2 pooling fused): the direct kernel
 * (conv_infer_variant) against Winograd F(4x4, 5x5) (conv_winograd_variant,
 * weight transform included, as an unprepared net pays it on every call),
 * at batches 1, 8 and 32: microseconds per image, best and median.
 * Prints milliseconds per batch, the best and the median of repeated runs
 * (on a busy machine the best is the one to compare), and GFLOP/s of the
 * best, counting 2 flops per multiply-add of the GEMMs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers.h"

typedef struct {
    int C, H, W, OC, K, pad;
} conv_shape;

static const conv_shape CONV1 = {1, 28, 28, 32, 5, 2};
static const conv_shape CONV2 = {32, 14, 14, 64, 5, 2};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *randoms(size_t n, nn_rng *rng) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = nn_rng_uniform(rng) - 0.5f;
    return p;
}

typedef struct {
    conv_shape s;
    int B;
    float *in, *W, *b, *out, *dout, *din, *dW, *db, *scratch;
} layer_bufs;

static layer_bufs make_layer(conv_shape s, int B, int threads, nn_rng *rng) {
    size_t n_in = (size_t)B * s.C * s.H * s.W;
    size_t n_out = (size_t)B * s.OC * s.H * s.W; /* "same" padding */
    size_t n_w = (size_t)s.OC * s.C * s.K * s.K;
    layer_bufs l = {s, B, randoms(n_in, rng), randoms(n_w, rng),
                    randoms((size_t)s.OC, rng), randoms(n_out, rng),
                    randoms(n_out, rng), randoms(n_in, rng), randoms(n_w, rng),
                    randoms((size_t)s.OC, rng),
                    randoms(conv_scratch_floats(s.C, s.H, s.W, s.OC, s.K, s.pad,
                                                threads), rng)};
    return l;
}

static void free_layer(layer_bufs *l) {
    free(l->in);
    free(l->W);
    free(l->b);
    free(l->out);
    free(l->dout);
    free(l->din);
    free(l->dW);
    free(l->db);
    free(l->scratch);
}

static double flops(conv_shape s, int B) {
    return 2.0 * B * s.OC * s.C * s.K * s.K * s.H * s.W;
}

typedef struct {
    double best, median; /* ms */
} timing;

/* `reps` timings of forward (which=0) or backward (which=1) of both
 * layers. */
static timing time_pass(layer_bufs *l1, layer_bufs *l2, int which, int threads,
                        int reps) {
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) exit(1);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        for (int k = 0; k < 2; k++) {
            layer_bufs *l = k ? l2 : l1;
            conv_shape s = l->s;
            if (which == 0)
                conv_forward(l->out, l->in, l->W, l->b, l->B, s.C, s.H, s.W,
                             s.OC, s.K, s.pad, NULL, l->scratch, threads);
            else
                conv_backward(k ? l->din : NULL, l->dW, l->db, l->dout, l->in,
                              l->W, l->B, s.C, s.H, s.W, s.OC, s.K, s.pad,
                              l->scratch, threads);
        }
        t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    timing r = {t[0], t[reps / 2]};
    free(t);
    return r;
}

/* Inference of conv2 (relu, pool fused), direct or Winograd: per-image
 * microseconds, best and median of reps calls of batch B. */
static timing time_infer(bool winograd, int B, int threads, int reps,
                         nn_rng *rng) {
    const conv_shape s = CONV2;
    size_t n_in = (size_t)B * s.C * s.H * s.W;
    size_t n_out = (size_t)B * s.OC * (s.H / 2) * (s.W / 2);
    size_t n_scratch =
        winograd ? conv_winograd_scratch_floats(B, s.C, s.H, s.W, s.OC, s.pad,
                                                true, false, threads)
                 : conv_infer_direct_scratch_floats(s.C, s.H, s.W, s.K, s.pad,
                                                    threads);
    float *in = randoms(n_in, rng), *W = randoms((size_t)s.OC * s.C * 25, rng);
    float *b = randoms((size_t)s.OC, rng), *out = randoms(n_out, rng);
    float *scratch = randoms(n_scratch, rng);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) exit(1);
    for (int r = -reps / 10 - 1; r < reps; r++) { /* the first ones warm */
        double t0 = now_ms();
        if (winograd)
            conv_winograd_variant(NULL, out, in, W, b, NULL, B, s.C, s.H, s.W,
                                  s.OC, s.pad, relu_forward, true, scratch,
                                  threads);
        else
            conv_infer_variant(NULL, out, in, W, b, B, s.C, s.H, s.W, s.OC,
                               s.K, s.pad, relu_forward, true, scratch,
                               threads);
        if (r >= 0) t[r] = (now_ms() - t0) * 1e3 / B;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    timing res = {t[0], t[reps / 2]};
    free(t);
    free(in);
    free(W);
    free(b);
    free(out);
    free(scratch);
    return res;
}

static int bench_infer_conv2(const int *thread_list, int n_threads) {
    static const int batches[] = {1, 8, 32};
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    printf("conv2 of the default CNN for inference (32->64 channels, 14x14, "
           "relu and pool fused), us per image\n");
    printf("%6s %7s %21s %21s\n", "batch", "threads", "direct best/med",
           "winograd best/med");
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++)
        for (int ti = 0; ti < n_threads; ti++) {
            int B = batches[bi], threads = thread_list[ti];
            int reps = B == 1 ? 2000 : B == 8 ? 300 : 100;
            timing d = time_infer(false, B, threads, reps, &rng);
            timing w = time_infer(true, B, threads, reps, &rng);
            printf("%6d %7d %10.1f/%-10.1f %10.1f/%-10.1f\n", B, threads,
                   d.best, d.median, w.best, w.median);
            fflush(stdout);
        }
    return 0;
}

int main(int argc, char **argv) {
    int thread_list[8] = {1, 2}, n_threads = 2;
    bool infer = argc > 1 && strcmp(argv[1], "infer") == 0;
    if (infer) argc--, argv++;
    if (argc > 1) {
        n_threads = 0;
        for (int i = 1; i < argc && n_threads < 8; i++)
            thread_list[n_threads++] = atoi(argv[i]) > 0 ? atoi(argv[i]) : 1;
    }
    if (infer) return bench_infer_conv2(thread_list, n_threads);
    static const int batches[] = {128, 1};
    nn_rng rng;
    nn_rng_seed(&rng, 1);

    printf("conv layers of conv5x32,pool2,conv5x64,pool2,dense256,dense10 (28x28, same padding)\n");
    printf("%6s %7s %21s %21s %9s %9s\n", "batch", "threads",
           "forward ms best/med", "backward ms best/med", "fwd GF/s",
           "bwd GF/s");
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        int B = batches[bi];
        for (int ti = 0; ti < n_threads; ti++) {
            int threads = thread_list[ti];
            layer_bufs l1 = make_layer(CONV1, B, threads, &rng);
            layer_bufs l2 = make_layer(CONV2, B, threads, &rng);
            int reps = B >= 32 ? 21 : 301;
            time_pass(&l1, &l2, 0, threads, 3); /* warm caches and threads */
            time_pass(&l1, &l2, 1, threads, 3);
            timing f = time_pass(&l1, &l2, 0, threads, reps);
            timing b = time_pass(&l1, &l2, 1, threads, reps);
            /* forward: one GEMM per layer; backward: dW for both layers,
             * din for conv2 only */
            double ff = flops(CONV1, B) + flops(CONV2, B);
            double bf = ff + flops(CONV2, B);
            printf("%6d %7d %10.3f/%-10.3f %10.3f/%-10.3f %9.1f %9.1f\n", B,
                   threads, f.best, f.median, b.best, b.median,
                   ff / f.best / 1e6, bf / b.best / 1e6);
            fflush(stdout);
            free_layer(&l1);
            free_layer(&l2);
        }
    }
    return 0;
}
