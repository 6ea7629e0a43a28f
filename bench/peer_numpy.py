#!/usr/bin/python3
"""peer_numpy.py: the numpy peer of the classic configuration.

The network of ../shared/seed/tutorial-numpy-mlp.md written as the tutorial
writes it -- FullyConnected (np.dot), Sigmoid, SoftmaxWithLoss, a Network
that calls forward, backward and refresh (plain SGD) per batch, batches
taken in order as slices -- with two changes only: everything is float32
(the tutorial's arrays are float64; np.ones gets the dtype so the sigmoid
backward does not silently widen), and the weights start Glorot-scaled like
digitd's instead of randn, which keeps float32 exp far from overflow and
does not change the amount of work.

  peer_numpy.py [--sizes 784,256,128,10] [--batch 100] [--lr 0.1]
                [--n 60000] [--epochs 1] [--warmup 30]

numpy's OpenBLAS thread count comes from OPENBLAS_NUM_THREADS (set it, and
OPENBLAS_CORETYPE=SkylakeX, before starting; bench/run-train-bench.sh tries
1 and 2). Prints one line of key=value pairs like the C benchmarks.
Run with /usr/bin/python3 (Debian's python3-numpy).
"""
import argparse
import gzip
import os
import statistics
import sys
import time

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    sys.exit(f"peer_numpy.py: {e}: run with /usr/bin/python3 (python3-numpy)")

DT = np.float32


# ---- the tutorial's classes ------------------------------------------------
class FullyConnected():
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        out = np.dot(self.x, self.W) + self.b
        return out

    def backward(self, dout):
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.x.T, dout)
        dx = np.dot(dout, self.W.T)
        return dx


class Sigmoid():
    def __init__(self):
        self.z = None

    def forward(self, y):
        z = np.exp(y) / (1 + np.exp(y))
        self.z = z
        return z

    def backward(self, dout):
        dz = dout * self.z * (np.ones(self.z.shape, dtype=DT) - self.z)
        return dz


def softmax(y):
    y = y - np.max(y, axis=1, keepdims=True)
    return np.exp(y) / np.sum(np.exp(y), axis=1, keepdims=True)


class SoftmaxWithLoss():
    def forward(self, y, label):
        z = softmax(y)
        batch_size = z.shape[0]
        loss = -np.sum(np.log(z[np.arange(batch_size), label])) / batch_size
        self.loss = loss
        self.z = z
        self.label = label
        return loss

    def backward(self):
        batch_size = self.z.shape[0]
        dz = np.copy(self.z)
        for label_, z_ in zip(self.label, dz):
            z_[label_] -= 1
        dz /= batch_size
        return dz


def glorot(rng, fan_in, fan_out):
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, (fan_in, fan_out)).astype(DT)


class Network:
    def __init__(self, input_size, hidden_size1, hidden_size2, output_size=10,
                 lr=0.1, seed=1):
        rng = np.random.default_rng(seed)
        W1 = glorot(rng, input_size, hidden_size1)
        W2 = glorot(rng, hidden_size1, hidden_size2)
        W3 = glorot(rng, hidden_size2, output_size)
        b1 = np.zeros(hidden_size1, DT)
        b2 = np.zeros(hidden_size2, DT)
        b3 = np.zeros(output_size, DT)
        self.lr = lr
        self.layer_1 = FullyConnected(W1, b1)
        self.sigmoid_1 = Sigmoid()
        self.layer_2 = FullyConnected(W2, b2)
        self.sigmoid_2 = Sigmoid()
        self.layer_last = FullyConnected(W3, b3)
        self.loss = SoftmaxWithLoss()

    def forward(self, x, label):
        y1 = self.layer_1.forward(x)
        z1 = self.sigmoid_1.forward(y1)
        y2 = self.layer_2.forward(z1)
        z2 = self.sigmoid_2.forward(y2)
        y3 = self.layer_last.forward(z2)
        loss = self.loss.forward(y3, label)
        return y3, loss

    def backward(self):
        d = self.loss.backward()
        d = self.layer_last.backward(d)
        d = self.sigmoid_2.backward(d)
        d = self.layer_2.backward(d)
        d = self.sigmoid_1.backward(d)
        d = self.layer_1.backward(d)
        return (self.layer_1.dW, self.layer_1.db, self.layer_2.dW,
                self.layer_2.db, self.layer_last.dW, self.layer_last.db)

    def refresh(self):
        lr = self.lr
        self.layer_1.W -= lr * self.layer_1.dW
        self.layer_1.b -= lr * self.layer_1.db
        self.layer_2.W -= lr * self.layer_2.dW
        self.layer_2.b -= lr * self.layer_2.db
        self.layer_last.W -= lr * self.layer_last.dW
        self.layer_last.b -= lr * self.layer_last.db

    # The body of the tutorial's fit_pred for one epoch, without the
    # per-epoch test evaluation and printing.
    def epoch(self, train_images, train_labels, batch_size=100):
        samples_num = train_images.shape[0]
        i = 0
        while i < samples_num:
            self.forward(train_images[i:i + batch_size],
                         train_labels[i:i + batch_size])
            self.backward()
            self.refresh()
            i += batch_size


# ---- data and timing ---------------------------------------------------------
def read_idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            dims = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
                     for i in range(dims)]
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise FileNotFoundError(path)


def load(n):
    d = os.environ.get("DIGITD_MNIST_DIR") or "../shared/mnist"
    try:
        x = read_idx(os.path.join(d, "train-images-idx3-ubyte"))
        y = read_idx(os.path.join(d, "train-labels-idx1-ubyte"))
        return (x[:n].reshape(-1, 784).astype(DT) / DT(255),
                y[:n].astype(np.int64), "mnist")
    except (OSError, ValueError) as e:
        print(f"peer_numpy.py: {e}; using synthetic data", file=sys.stderr)
        rng = np.random.default_rng(1)
        x = (rng.random((n, 784)) * (rng.random((n, 784)) > 0.8)).astype(DT)
        return x, rng.integers(0, 10, n).astype(np.int64), "synthetic"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="784,256,128,10")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--warmup", type=int, default=30)
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    x, y, src = load(a.n)
    net = Network(sizes[0], sizes[1], sizes[2], sizes[3], lr=a.lr)
    b = a.batch
    net.epoch(x[:a.warmup * b], y[:a.warmup * b], b)  # warm-up
    rates = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        net.epoch(x, y, b)
        rates.append(x.shape[0] / (time.perf_counter() - t0))
    assert net.layer_1.W.dtype == DT and net.layer_1.dW.dtype == DT
    print(f"samples_per_sec={statistics.median(rates):.0f} n={x.shape[0]} "
          f"epochs={a.epochs} batch={b} lr={a.lr} "
          f"openblas_threads={os.environ.get('OPENBLAS_NUM_THREADS', '-')} "
          f"loss={float(net.loss.loss):.4f} data={src} sizes={a.sizes} "
          f"numpy={np.__version__}")


if __name__ == "__main__":
    main()
