/*
 * bench_pingpong.c: how far apart this machine's first two CPUs are: the
 * round trip of one cache line between two threads pinned to them, in
 * nanoseconds (the median of 5 rounds of 20,000).
 *
 * Why: on these VMs the host moves the two vCPUs between its cores. When
 * they share a core complex a round trip takes 50-60 ns; when they do
 * not, 300-340 ns, and then everything two threads hand each other goes
 * through the host's interconnect: digitd's two-thread training ran at
 * 99k-106k MLP samples/s in that placement against 148k-162k in the
 * other, the same minute (bench/README.md). The placement changes within
 * seconds, so bench/run-train-bench.sh measures it before every run.
 *
 * usage: bench_pingpong     prints "roundtrip_ns=N cpus=A,B", or
 *                           "roundtrip_ns=n/a" with fewer than two CPUs
 */
#ifndef _GNU_SOURCE /* the build defines it; the scripts' fallback does not */
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { TRIPS = 20000, ROUNDS = 5 };

/* The line the two threads pass: 1 = the pinger's turn is over. Alone in
 * its cache line, so only the hand-over moves it. */
static _Alignas(64) atomic_int ball;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *ponger(void *arg) {
    pin(*(const int *)arg);
    for (int i = 0; i < TRIPS * ROUNDS; i++) {
        while (atomic_load_explicit(&ball, memory_order_acquire) != 1) {
        }
        atomic_store_explicit(&ball, 0, memory_order_release);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    /* the first two CPUs this process may run on (taskset is honoured) */
    cpu_set_t allowed;
    int cpus[2], n = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
            if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
    if (n < 2) {
        puts("roundtrip_ns=n/a");
        return 0;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, ponger, &cpus[1]) != 0) {
        puts("roundtrip_ns=n/a");
        return 0;
    }
    pin(cpus[0]);
    double ns[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < TRIPS; i++) {
            atomic_store_explicit(&ball, 1, memory_order_release);
            while (atomic_load_explicit(&ball, memory_order_acquire) != 0) {
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[r] = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / TRIPS;
    }
    pthread_join(t, NULL);
    qsort(ns, ROUNDS, sizeof ns[0], cmp_double);
    printf("roundtrip_ns=%.0f cpus=%d,%d\n", ns[ROUNDS / 2], cpus[0], cpus[1]);
    return 0;
}
