#!/usr/bin/python3
"""peer_flask.py: the Python peer of the HTTP benchmark.

A typical Python digit service behind the same API as digitd: Flask, run by
gunicorn, answering POST /predict with {"digit", "confidence",
"probabilities", "model"} for JSON {"pixels": [784]} and for raw image/png
bodies. It serves the *same* network: it reads digitd's model file
(docs/model-format.md) and runs the forward pass in numpy (float32, one
np.dot per dense layer) or, for networks with convolutions, in PyTorch.

Images are decoded with Pillow, alpha-composited over white, turned gray,
inverted and resized to 28x28 -- what such services usually do; it is less
work than digitd's MNIST normalisation (bounding box, 20x20 fit, centre of
mass), so the comparison flatters the peer if anything.

  DIGITD_MODEL=models/default.model OPENBLAS_CORETYPE=SkylakeX \\
  OPENBLAS_NUM_THREADS=1 gunicorn -w 2 -b 127.0.0.1:8001 \\
      --chdir bench peer_flask:app

Needs Debian's python3-flask, python3-numpy, python3-pil (and python3-torch
for convolutional models): run with /usr/bin/python3 / Debian's gunicorn.
"""
import hashlib
import io
import os
import struct
import sys

try:
    import numpy as np
    from flask import Flask, jsonify, request
    from PIL import Image
except ImportError as e:  # pragma: no cover
    sys.exit(f"peer_flask.py: {e}: use Debian's python3-flask, python3-numpy, python3-pil")

DENSE, CONV, MAXPOOL, RELU, SIGMOID, TANH, DROPOUT = 1, 2, 3, 4, 5, 6, 7


def read_model(path):
    """Layers [(kind, size, kernel, pad)] and parameter arrays of a digitd
    model file; the CRC is checked, the metadata name returned."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"DIGITDNN":
        raise ValueError(f"{path}: not a digitd model file")
    if (struct.unpack_from("<I", data, len(data) - 4)[0] !=
            __import__("zlib").crc32(data[:-4]) & 0xffffffff):
        raise ValueError(f"{path}: CRC mismatch")
    version, n_layers = struct.unpack_from("<II", data, 8)
    if version != 1:
        raise ValueError(f"{path}: format version {version}")
    layers = [struct.unpack_from("<IIIIf", data, 16 + 20 * i)[:4] for i in range(n_layers)]
    off = 16 + 20 * n_layers
    (n_params,) = struct.unpack_from("<Q", data, off)
    params = np.frombuffer(data, dtype="<f4", count=n_params, offset=off + 8).astype(np.float32)
    off += 8 + 4 * n_params
    (meta_len,) = struct.unpack_from("<I", data, off)
    meta = data[off + 4:off + 4 + meta_len].decode("utf-8", "replace")
    name = next((l[5:] for l in meta.split("\n") if l.startswith("name=")), "model")
    return layers, params, name, hashlib.sha256(data).hexdigest()


def build(layers, params):
    """A function (B, 784) float32 -> (B, 10) logits."""
    c, h, w = 1, 28, 28
    pos = 0
    steps = []
    uses_conv = any(k == CONV for k, *_ in layers)
    if uses_conv:
        import torch
        torch.set_num_threads(1)
    for kind, size, kernel, pad in layers:
        if kind == DENSE:
            n_in = c * h * w
            W = params[pos:pos + size * n_in].reshape(size, n_in)
            pos += size * n_in
            b = params[pos:pos + size]
            pos += size
            if uses_conv:
                Wt, bt = torch.from_numpy(W.copy()), torch.from_numpy(b.copy())
                steps.append(lambda x, Wt=Wt, bt=bt: torch.nn.functional.linear(x.flatten(1), Wt, bt))
            else:
                WT = np.ascontiguousarray(W.T)
                steps.append(lambda x, WT=WT, b=b: np.dot(x, WT) + b)
            c, h, w = size, 1, 1
        elif kind == CONV:
            W = params[pos:pos + size * c * kernel * kernel].reshape(size, c, kernel, kernel)
            pos += W.size
            b = params[pos:pos + size]
            pos += size
            Wt, bt = torch.from_numpy(W.copy()), torch.from_numpy(b.copy())
            steps.append(lambda x, Wt=Wt, bt=bt, pad=pad:
                         torch.nn.functional.conv2d(x, Wt, bt, padding=pad))
            c, h, w = size, h + 2 * pad - kernel + 1, w + 2 * pad - kernel + 1
        elif kind == MAXPOOL:
            steps.append(lambda x, k=kernel: torch.nn.functional.max_pool2d(x, k))
            h, w = h // kernel, w // kernel
        elif kind == RELU:
            steps.append((lambda x: torch.relu(x)) if uses_conv else (lambda x: np.maximum(x, 0)))
        elif kind == SIGMOID:
            steps.append((lambda x: torch.sigmoid(x)) if uses_conv else
                         (lambda x: 1 / (1 + np.exp(-x))))
        elif kind == TANH:
            steps.append((lambda x: torch.tanh(x)) if uses_conv else np.tanh)
        # dropout: identity at inference

    def forward(x):
        if uses_conv:
            with torch.no_grad():
                t = torch.from_numpy(x).reshape(-1, 1, 28, 28)
                for s in steps:
                    t = s(t)
                return t.numpy()
        for s in steps:
            x = s(x)
        return x
    return forward


MODEL_PATH = os.environ.get("DIGITD_MODEL", "models/default.model")
_layers, _params, _name, _sha = read_model(MODEL_PATH)
FORWARD = build(_layers, _params)
MODEL_ID = f"{_name}@{_sha[:12]}"

app = Flask(__name__)


def answer(x):
    logits = FORWARD(x.reshape(1, 784).astype(np.float32))[0]
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    d = int(p.argmax())
    return jsonify(digit=d, confidence=float(p[d]), probabilities=[float(v) for v in p],
                   model=MODEL_ID)


def error(status, message):
    return jsonify(error={"status": status, "message": message}), status


@app.post("/predict")
def predict():
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("pixels"), list):
            return error(422, "expected {\"pixels\": [784 numbers]}")
        try:
            x = np.asarray(body["pixels"], dtype=np.float32).reshape(784)
        except (ValueError, TypeError):
            return error(422, "pixels must be 784 numbers")
        if not np.isfinite(x).all():
            return error(422, "pixels must be finite")
        if x.max() > 1:
            x = x / 255.0
        return answer(x)
    if ctype.startswith("image/"):
        try:
            img = Image.open(io.BytesIO(request.get_data()))
            img.load()
        except Exception:  # noqa: BLE001 - any decoding failure
            return error(400, "cannot decode the image")
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        g = img.convert("L").resize((28, 28), Image.BILINEAR)
        x = 1.0 - np.asarray(g, dtype=np.float32) / 255.0
        return answer(x)
    return error(415, "unsupported Content-Type")


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
