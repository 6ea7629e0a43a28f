/*
 * bench_gemm.c: GFLOP/s of nn_sgemm on the products that train and serve
 * the 784-256-128-10 MLP (batch 128), with 1 and 2 threads, beside numpy's
 * float32 matmul (OpenBLAS) on the same shapes, measured in the same run
 * by bench/gemm_peer.py.
 *
 * usage: bench_gemm [--no-peer] [--seconds S]
 *
 * FLOPs are counted as 2*M*N*K. Each figure is the fastest single call
 * among those made in S seconds per shape (default 0.5), after a warm-up.
 * The "step" line adds up the products of one training step (forward,
 * dW and din of layers 2 and 3; layer 1 needs no din) and converts its
 * time into the samples/s the products alone would allow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn.h"

typedef struct {
    const char *name; /* what the product is in the MLP */
    bool ta, tb;
    int M, N, K;
    bool in_step; /* part of one training step at batch 128 */
} shape;

/* Layer l: in (128, I), W (O, I). forward out = in W^T (NT); dW = dout^T
 * in (TN); din = dout W (NN). Inference is the forward pass with M = 1. */
static const shape shapes[] = {
    {"fwd1  in*W1^T", false, true, 128, 256, 784, true},
    {"fwd2  h1*W2^T", false, true, 128, 128, 256, true},
    {"fwd3  h2*W3^T", false, true, 128, 10, 128, true},
    {"dW1   d1^T*in", true, false, 256, 784, 128, true},
    {"dW2   d2^T*h1", true, false, 128, 256, 128, true},
    {"dW3   d3^T*h2", true, false, 10, 128, 128, true},
    {"din2  d2*W2", false, false, 128, 256, 128, true},
    {"din3  d3*W3", false, false, 128, 128, 10, true},
    {"din1  d1*W1", false, false, 128, 784, 256, false},
    {"inf1  x*W1^T", false, true, 1, 256, 784, false},
    {"inf2  x*W2^T", false, true, 1, 128, 256, false},
    {"inf3  x*W3^T", false, true, 1, 10, 128, false},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(size_t n, nn_rng *rng) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * nn_rng_uniform(rng) - 1.0f;
    return x;
}

/* Seconds of the fastest of the calls made in about `seconds` (after a
 * warm-up): on a shared machine the fastest call is the figure least
 * disturbed by other processes, and with two threads one preempted
 * thread would otherwise stall the whole call. */
static double time_shape(const shape *s, int threads, double seconds) {
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    float *A = random_floats((size_t)s->M * s->K, &rng);
    float *B = random_floats((size_t)s->K * s->N, &rng);
    float *C = random_floats((size_t)s->M * s->N, &rng);
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;

    double best = 1e30, start = now(), t_end = start + 0.05 + seconds;
    for (double t0 = start; t0 < t_end;) {
        nn_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C,
                 s->N, threads);
        double t1 = now();
        if (t0 - start >= 0.05 && t1 - t0 < best) /* after the warm-up */
            best = t1 - t0;
        t0 = t1;
    }
    free(A), free(B), free(C);
    return best;
}

/* Runs bench/gemm_peer.py with OpenBLAS limited to `threads` and reads one
 * GFLOP/s figure per shape into gflops[]. Returns 0, or -1 when Debian's
 * Python, numpy or the script is missing (the table then shows "-"). */
static int run_peer(int threads, double seconds, double *gflops) {
    const char *py = "/usr/bin/python3";
    char script[4096];
    snprintf(script, sizeof script, "%s/bench/gemm_peer.py", DIGITD_SOURCE_DIR);
    if (access(py, X_OK) != 0 || access(script, R_OK) != 0)
        return -1;
    /* The shapes go on the command line as ta,tb,M,N,K. OPENBLAS_CORETYPE:
     * Debian's OpenBLAS does not recognise this CPU and would fall back to
     * a slow kernel (ENVIRONMENT.md). */
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd,
                       "OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=%d "
                       "OMP_NUM_THREADS=%d %s %s --seconds %g",
                       threads, threads, py, script, seconds);
    for (int i = 0; i < N_SHAPES && len < (int)sizeof cmd; i++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %d,%d,%d,%d,%d",
                        shapes[i].ta, shapes[i].tb, shapes[i].M, shapes[i].N,
                        shapes[i].K);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int got = 0;
    while (got < N_SHAPES && fscanf(p, "%lf", &gflops[got]) == 1)
        got++;
    int status = pclose(p);
    return (status == 0 && got == N_SHAPES) ? 0 : -1;
}

static void print_figure(bool ok, double v) {
    if (ok)
        printf(" %8.1f", v);
    else
        printf(" %8s", "-");
}

int main(int argc, char **argv) {
    bool peer = true;
    double seconds = 0.5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-peer") == 0) {
            peer = false;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--no-peer] [--seconds S]\n", argv[0]);
            return 2;
        }
    }
    if (seconds <= 0)
        seconds = 0.5;

    double ours[2][N_SHAPES], theirs[2][N_SHAPES];
    bool have_peer[2] = {false, false};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < N_SHAPES; i++)
            ours[t][i] = time_shape(&shapes[i], t + 1, seconds);
    if (peer)
        for (int t = 0; t < 2; t++)
            have_peer[t] = run_peer(t + 1, seconds, theirs[t]) == 0;

    printf("GFLOP/s (2*M*N*K per second) of the fastest call\n");
    printf("%-15s %-2s %4s %4s %4s %8s %8s %8s %8s\n", "product", "op", "M",
           "N", "K", "ours-1T", "ours-2T", "numpy-1T", "numpy-2T");
    double step_s[2] = {0, 0}, step_peer_s[2] = {0, 0}, step_flop = 0;
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        double flop = 2.0 * s->M * s->N * s->K;
        printf("%-15s %c%c %4d %4d %4d", s->name, s->ta ? 'T' : 'N',
               s->tb ? 'T' : 'N', s->M, s->N, s->K);
        for (int t = 0; t < 2; t++)
            print_figure(true, flop / ours[t][i] * 1e-9);
        for (int t = 0; t < 2; t++)
            print_figure(have_peer[t], have_peer[t] ? theirs[t][i] : 0);
        printf("\n");
        if (s->in_step) {
            step_flop += flop;
            for (int t = 0; t < 2; t++) {
                step_s[t] += ours[t][i];
                if (have_peer[t])
                    step_peer_s[t] += flop / (theirs[t][i] * 1e9);
            }
        }
    }
    printf("%-15s %-2s %14s", "step (sum)", "", "");
    for (int t = 0; t < 2; t++)
        print_figure(true, step_flop / step_s[t] * 1e-9);
    for (int t = 0; t < 2; t++)
        print_figure(have_peer[t], step_flop / step_peer_s[t] * 1e-9);
    printf("\n%-15s %-2s %14s", "samples/s (k)", "", "");
    for (int t = 0; t < 2; t++)
        print_figure(true, 128.0 / step_s[t] * 1e-3);
    for (int t = 0; t < 2; t++)
        print_figure(have_peer[t], 128.0 / step_peer_s[t] * 1e-3);
    printf("\n(samples/s counts the products of a batch-128 step only)\n");
    if (peer && !(have_peer[0] && have_peer[1]))
        printf("numpy peer unavailable (needs /usr/bin/python3 with numpy)\n");
    return 0;
}
