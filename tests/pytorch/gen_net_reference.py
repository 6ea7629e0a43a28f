#!/usr/bin/python3
"""Writes tests/data/net_reference.txt: PyTorch's forward and backward of
whole small networks, the oracle tests/unit/test_net_torch.c compares
nn/ against (softmax cross-entropy loss, probabilities, and the gradient
of the mean loss for every parameter, in nn/'s parameter layout).

Run with Debian's python3-torch (not a virtualenv python):
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 tests/pytorch/gen_net_reference.py

Format: as in gen_conv_reference.py ("NAME COUNT V1 ... VCOUNT" lines).
Per network N (0, 1, ...): "netN.x" (B,784), "netN.labels", "netN.params"
(nn/'s order: layer by layer, weights then biases; Linear weights
(out,in), Conv2d weights (oc,ic,k,k), flattening (C,H,W) as nn/ does),
"netN.probs" (B,10), "netN.loss" (1), "netN.grads" (like params).
The architectures are listed in SPECS below and in the C test, in the
same order. Reference values are computed in float64 from the float32
inputs, so the fixture carries no float32 rounding of its own.
"""
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "net_reference.txt")
B = 2

# (nn/ architecture string, layers as (kind, args)); keep in step with
# tests/unit/test_net_torch.c.
SPECS = [
    ("dense4,sigmoid,dense6,tanh,dense10",
     [("dense", 784, 4), ("sigmoid",), ("dense", 4, 6), ("tanh",), ("dense", 6, 10)]),
    ("dense4,relu,dense10",
     [("dense", 784, 4), ("relu",), ("dense", 4, 10)]),
    ("conv3x2,relu,pool2,conv3x3:valid,relu,pool2,dense10",
     [("conv", 1, 2, 3, 1), ("relu",), ("pool", 2), ("conv", 2, 3, 3, 0), ("relu",),
      ("pool", 2), ("dense", 3 * 6 * 6, 10)]),
]


def entry(f, name, t):
    vals = t.detach().reshape(-1).tolist()
    f.write("%s %d %s\n" % (name, len(vals), " ".join("%.9g" % v for v in vals)))


def main():
    g = torch.Generator().manual_seed(1234)
    with open(OUT, "w") as f:
        f.write("# net_reference.txt: written by tests/pytorch/gen_net_reference.py\n")
        f.write("# (torch %s); format in that script. Do not edit.\n" % torch.__version__)
        for n, (spec, layers) in enumerate(SPECS):
            f.write("# net%d: %s\n" % (n, spec))
            x32 = torch.rand(B, 784, generator=g)
            labels = torch.randint(0, 10, (B,), generator=g)
            params32 = []
            for l in layers:
                if l[0] == "dense":
                    params32 += [torch.randn(l[2], l[1], generator=g) * (1.0 / l[1]) ** 0.5,
                                 torch.randn(l[2], generator=g) * 0.1]
                elif l[0] == "conv":
                    _, ic, oc, k, _pad = l
                    params32 += [torch.randn(oc, ic, k, k, generator=g) * (2.0 / (ic * k * k)) ** 0.5,
                                 torch.randn(oc, generator=g) * 0.1]
            # Reference arithmetic in float64 from the exact float32 values.
            x = x32.double()
            params = [p.double().requires_grad_(True) for p in params32]
            h, it = x.reshape(B, 1, 28, 28), iter(params)
            for l in layers:
                if l[0] == "dense":
                    w, b = next(it), next(it)
                    h = F.linear(h.reshape(B, -1), w, b)
                elif l[0] == "conv":
                    w, b = next(it), next(it)
                    h = F.conv2d(h, w, b, padding=l[4])
                elif l[0] == "pool":
                    h = F.max_pool2d(h, l[1])
                elif l[0] == "relu":
                    h = torch.relu(h)
                elif l[0] == "sigmoid":
                    h = torch.sigmoid(h)
                elif l[0] == "tanh":
                    h = torch.tanh(h)
            loss = F.cross_entropy(h, labels)
            loss.backward()
            entry(f, "net%d.x" % n, x32)
            entry(f, "net%d.labels" % n, labels.double())
            entry(f, "net%d.params" % n, torch.cat([p.reshape(-1) for p in params32]))
            entry(f, "net%d.probs" % n, torch.softmax(h, dim=1))
            entry(f, "net%d.loss" % n, loss.reshape(1))
            entry(f, "net%d.grads" % n, torch.cat([p.grad.reshape(-1) for p in params]))


if __name__ == "__main__":
    main()
