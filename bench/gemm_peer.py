#!/usr/bin/python3
"""Peer for bench_gemm: numpy float32 matmul (OpenBLAS) on given shapes.

usage: gemm_peer.py [--seconds S] ta,tb,M,N,K ...

Prints one GFLOP/s figure (2*M*N*K per second) per shape, one a line, in
the order given: that of the fastest call among those made in S seconds
after a warm-up, as bench_gemm times nn_sgemm. Transposed operands are numpy
views (a.T), which numpy hands to sgemm as transpose flags, not copies.
Set OPENBLAS_CORETYPE=SkylakeX and OPENBLAS_NUM_THREADS before running
(bench_gemm does): Debian's OpenBLAS misdetects this CPU otherwise.
"""
import sys
import time

import numpy as np


def time_shape(ta, tb, m, n, k, seconds):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(np.float32)
    opa = a.T if ta else a
    opb = b.T if tb else b
    c = np.empty((m, n), dtype=np.float32)

    best = float("inf")
    start = time.perf_counter()
    t0 = start
    while t0 < start + 0.05 + seconds:
        np.matmul(opa, opb, out=c)
        t1 = time.perf_counter()
        if t0 - start >= 0.05:  # after the warm-up
            best = min(best, t1 - t0)
        t0 = t1
    return 2.0 * m * n * k / best * 1e-9


def main(argv):
    seconds = 0.5
    shapes = []
    i = 0
    while i < len(argv):
        if argv[i] == "--seconds":
            seconds = float(argv[i + 1])
            i += 2
            continue
        shapes.append([int(v) for v in argv[i].split(",")])
        i += 1
    for ta, tb, m, n, k in shapes:
        print(f"{time_shape(bool(ta), bool(tb), m, n, k, seconds):.3f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
