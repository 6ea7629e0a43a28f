#!/usr/bin/python3
"""peer_torch.py: the PyTorch peer of bench/bench_train.c and bench_infer.c.

Same architectures, batch sizes and thread counts as digitd's benchmarks,
float32, data preloaded as tensors (so the timed loop is gather, forward,
backward, optimiser step, as in nn_train).

  peer_torch.py train --arch mlp|cnn|cnn-small [--threads 2] [--batch 128]
                      [--n 60000] [--epochs 1] [--warmup 30]
  peer_torch.py infer --arch mlp|cnn|cnn-small [--threads 1] [--iters 20000]
                      [--warmup 2000]

Data: MNIST from $DIGITD_MNIST_DIR (default ../shared/mnist), raw or
gzipped IDX, else synthetic. Prints one line of key=value pairs like the C
benchmarks.

Run it with Debian's interpreter (/usr/bin/python3: the only one that
imports python3-torch) and OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=1
(see ENVIRONMENT.md); bench/run-train-bench.sh does.
"""
import argparse
import os
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    sys.exit(f"peer_torch.py: {e}: run with /usr/bin/python3 "
             "(Debian's python3-torch and python3-numpy)")

# One IDX reader for both peers (this folder is on sys.path when the
# script runs).
from peer_numpy import read_idx  # noqa: E402


def load(set_name, n):
    d = os.environ.get("DIGITD_MNIST_DIR") or "../shared/mnist"
    try:
        x = read_idx(os.path.join(d, f"{set_name}-images-idx3-ubyte"))
        y = read_idx(os.path.join(d, f"{set_name}-labels-idx1-ubyte"))
        x = x[:n].reshape(-1, 784).astype(np.float32) / 255.0
        return x, y[:n].astype(np.int64), "mnist"
    except (OSError, ValueError) as e:
        print(f"peer_torch.py: {e}; using synthetic data", file=sys.stderr)
        rng = np.random.default_rng(1)
        x = (rng.random((n, 784)) * (rng.random((n, 784)) > 0.8)).astype(np.float32)
        return x, rng.integers(0, 10, n).astype(np.int64), "synthetic"


def make_model(arch):
    if arch == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(),
                             nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10)), (784,)
    c1, c2, hid = {"cnn": (32, 64, 256), "cnn-small": (16, 32, 128)}[arch]
    return nn.Sequential(nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(),
                         nn.MaxPool2d(2),
                         nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(c2 * 7 * 7, hid), nn.ReLU(),
                         nn.Linear(hid, 10)), (1, 28, 28)


def train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    xs, ys, src = load("train", a.n)
    model, shape = make_model(a.arch)
    X = torch.from_numpy(xs).reshape((-1,) + shape).contiguous()
    Y = torch.from_numpy(ys)
    n = X.shape[0]
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)

    def step(idx):
        xb, yb = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    model.train()
    perm = torch.randperm(n)
    for i in range(a.warmup):
        j = (i * a.batch) % max(1, n - a.batch)
        step(perm[j:j + a.batch])
    rates, loss = [], None
    for _ in range(a.epochs):
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        for j in range(0, n, a.batch):
            loss = step(perm[j:j + a.batch])
        rates.append(n / (time.perf_counter() - t0))
    print(f"samples_per_sec={statistics.median(rates):.0f} n={n} "
          f"epochs={a.epochs} batch={a.batch} threads={a.threads} "
          f"torch_threads={torch.get_num_threads()} "
          f"openblas_threads={os.environ.get('OPENBLAS_NUM_THREADS', '-')} "
          f"loss={loss.item():.4f} data={src} arch={a.arch} "
          f"torch={torch.__version__}")


def infer(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    xs, _, src = load("t10k", 1000)
    model, shape = make_model(a.arch)
    model.eval()
    inputs = [torch.from_numpy(xs[i].copy()).reshape((1,) + shape)
              for i in range(xs.shape[0])]
    m = len(inputs)
    clock = time.perf_counter_ns
    times = [0] * a.iters
    with torch.no_grad():
        for i in range(a.warmup):
            model(inputs[i % m])
        t_all = clock()
        for i in range(a.iters):
            x = inputs[i % m]
            t0 = clock()
            model(x)
            times[i] = clock() - t0
        mean = (clock() - t_all) / a.iters / 1e3
    times.sort()
    print(f"median_us={times[a.iters // 2] / 1e3:.2f} "
          f"p99_us={times[int(a.iters * 0.99)] / 1e3:.2f} mean_us={mean:.2f} "
          f"min_us={times[0] / 1e3:.2f} iters={a.iters} threads={a.threads} "
          f"data={src} arch={a.arch}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "infer"])
    p.add_argument("--arch", default="mlp", choices=["mlp", "cnn", "cnn-small"])
    p.add_argument("--threads", type=int)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--warmup", type=int)
    p.add_argument("--iters", type=int, default=20000)
    a = p.parse_args()
    if a.mode == "train":
        a.threads = a.threads or 2
        a.warmup = 30 if a.warmup is None else a.warmup
        train(a)
    else:
        a.threads = a.threads or 1
        a.warmup = 2000 if a.warmup is None else a.warmup
        infer(a)


if __name__ == "__main__":
    main()
