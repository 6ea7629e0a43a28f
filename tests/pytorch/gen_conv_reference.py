#!/usr/bin/python3
"""Writes tests/data/conv_reference.txt: PyTorch's forward and backward of
a small convolution followed by 2x2 max-pooling, the oracle that
tests/unit/test_conv_torch.c compares nn/conv.c and nn/pool.c against.

Run from anywhere with Debian's python3-torch (not a virtualenv python):
    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 tests/pytorch/gen_conv_reference.py

The network, batch-first as in nn/:
    x (B=2, C=2, 7, 7) -> Conv2d(2, 3, kernel 3, padding 1) -> out (2, 3, 7, 7)
      -> MaxPool2d(2) -> pool_out (2, 3, 3, 3)   (7 // 2 = 3: last row and
                                                  column are dropped)
and the loss sum(pool_out * pool.dout), so that
    pool.din  = d loss / d out       (the gradient max-pooling sends back)
    conv.din  = d loss / d x, conv.dweight, conv.dbias from pool.din.
The inputs (x, weights, bias, dout) are float32 values, printed exactly;
the reference results are computed in float64 from those same values, so
the fixture carries no float32 rounding of its own.

Fixture format (shared by every *_reference.txt in tests/data):
  - UTF-8 text, one entry per line: NAME COUNT V1 V2 ... VCOUNT
    separated by single spaces; NAME has no spaces (dots group entries,
    e.g. "conv.weight"); values are %.9g, which round-trips float32.
  - Lines starting with '#' are comments; blank lines are ignored.
  - Arrays are flattened row-major in nn/'s layout (B,C,H,W), weights
    (OC,C,K,K); the entry "shape.*" lines give the sizes as integers.
"""
import os
import sys

import torch

B, C, H, W, OC, K, PAD, POOL = 2, 2, 7, 7, 3, 3, 1, 2
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "conv_reference.txt")


def entry(name, values):
    flat = [float(v) for v in values.reshape(-1).tolist()] if torch.is_tensor(values) else list(values)
    text = " ".join(("%d" % v) if isinstance(v, int) else ("%.9g" % v) for v in flat)
    return "%s %d %s\n" % (name, len(flat), text)


def main():
    torch.manual_seed(20240601)
    conv32 = torch.nn.Conv2d(C, OC, K, padding=PAD)  # torch's default init
    x32 = torch.rand(B, C, H, W) * 2 - 1
    dout32 = torch.randn(B, OC, (H + 2 * PAD - K + 1) // POOL,
                         (W + 2 * PAD - K + 1) // POOL)

    # The oracle in float64 on exactly the float32 inputs above.
    x = x32.double().requires_grad_(True)
    weight = conv32.weight.detach().double().requires_grad_(True)
    bias = conv32.bias.detach().double().requires_grad_(True)
    out = torch.nn.functional.conv2d(x, weight, bias, padding=PAD)
    out.retain_grad()
    pool_out = torch.nn.functional.max_pool2d(out, POOL)
    (pool_out * dout32.double()).sum().backward()

    lines = [
        "# conv_reference.txt: written by tests/pytorch/gen_conv_reference.py\n",
        "# (torch %s); format described in that script. Do not edit.\n" % torch.__version__,
        "# x -> conv2d(weight, bias, padding) -> out -> max_pool2d -> pool.out;\n",
        "# loss = sum(pool.out * pool.dout).\n",
        entry("shape.conv", [B, C, H, W, OC, K, PAD]),
        entry("shape.pool", [POOL]),
        entry("x", x32),
        entry("conv.weight", conv32.weight.detach()),
        entry("conv.bias", conv32.bias.detach()),
        entry("pool.dout", dout32),
        entry("conv.out", out.detach()),
        entry("pool.out", pool_out.detach()),
        entry("pool.din", out.grad),
        entry("conv.din", x.grad),
        entry("conv.dweight", weight.grad),
        entry("conv.dbias", bias.grad),
    ]
    with open(OUT, "w", encoding="utf-8") as f:
        f.writelines(lines)
    print("wrote %s (%d bytes)" % (os.path.normpath(OUT), os.path.getsize(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
