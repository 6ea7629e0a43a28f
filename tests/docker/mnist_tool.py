#!/usr/bin/env python3
"""mnist_tool.py: helpers for tests/docker/docker_test.sh (standard library
only, any Python 3).

  mnist_tool.py samples MNIST_DIR OUT_DIR N
      The first N test digits as PNG files (as MNIST stores them, light on
      dark, 28x28) plus one inverted and enlarged PNG (dark on light,
      112x112) and JSON bodies {"pixels": [...784...]}; prints one line
      per file: "<path> <content-type> <label>".
  mnist_tool.py subset MNIST_DIR OUT_DIR N_TRAIN N_TEST
      The first N_TRAIN training and N_TEST test digits as raw IDX files
      with the standard names, for a quick training run.
  mnist_tool.py predict URL FILE CONTENT_TYPE EXPECTED
      POSTs FILE to URL; exit 0 when the answer is 200 with a well-formed
      body whose digit is EXPECTED ("-" accepts any digit).
  mnist_tool.py inflight URL FILE CONTENT_TYPE EXPECTED STOP_COMMAND...
      Starts POSTing FILE to URL (headers and half the body), runs
      STOP_COMMAND (e.g. `docker stop NAME`) meanwhile, sends the rest
      0.3 s later, and checks the answer as `predict` does: a daemon that
      finishes requests in flight on SIGTERM answers it. Prints how long
      STOP_COMMAND took; exit 0 when the answer was right and it succeeded
      within 2 s.
  mnist_tool.py get URL
      Prints the body of GET URL (exit 1 unless 200).
  mnist_tool.py free-port
      Prints a TCP port free on 127.0.0.1 right now.

MNIST_DIR holds the IDX files raw or gzipped (train-images-idx3-ubyte[.gz]
and so on).
"""
import gzip
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.error
import urllib.request
import zlib


def open_idx(mnist_dir, name):
    for path, opener in ((os.path.join(mnist_dir, name), open),
                         (os.path.join(mnist_dir, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            with opener(path, "rb") as f:
                return f.read()
    sys.exit(f"mnist_tool: no {name}[.gz] in {mnist_dir}")


def read_images(mnist_dir, prefix):
    data = open_idx(mnist_dir, f"{prefix}-images-idx3-ubyte")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    assert magic == 2051 and rows == 28 and cols == 28, "not an IDX image file"
    return n, data[16:]


def read_labels(mnist_dir, prefix):
    data = open_idx(mnist_dir, f"{prefix}-labels-idx1-ubyte")
    magic, n = struct.unpack(">II", data[:8])
    assert magic == 2049, "not an IDX label file"
    return n, data[8:]


def png_gray(width, height, pixels):
    """An 8-bit grayscale PNG of `pixels` (bytes, row-major)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width]
                   for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def samples(mnist_dir, out_dir, count):
    os.makedirs(out_dir, exist_ok=True)
    _, images = read_images(mnist_dir, "t10k")
    _, labels = read_labels(mnist_dir, "t10k")
    for i in range(count):
        img = images[i * 784:(i + 1) * 784]
        label = labels[i]
        png = os.path.join(out_dir, f"test{i}-digit{label}.png")
        with open(png, "wb") as f:
            f.write(png_gray(28, 28, img))
        print(png, "image/png", label)
        body = os.path.join(out_dir, f"test{i}-digit{label}.json")
        with open(body, "w") as f:
            json.dump({"pixels": list(img)}, f)
        print(body, "application/json", label)
        if i == 0:  # dark ink on white paper, 4x larger: a scan, not MNIST
            big = bytes(255 - img[(y // 4) * 28 + x // 4]
                        for y in range(112) for x in range(112))
            png = os.path.join(out_dir, f"test{i}-digit{label}-inverted-112px.png")
            with open(png, "wb") as f:
                f.write(png_gray(112, 112, big))
            print(png, "image/png", label)


def subset(mnist_dir, out_dir, n_train, n_test):
    os.makedirs(out_dir, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        total, images = read_images(mnist_dir, prefix)
        _, labels = read_labels(mnist_dir, prefix)
        n = min(n, total)
        with open(os.path.join(out_dir, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images[:n * 784])
        with open(os.path.join(out_dir, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels[:n])
    print(f"{out_dir}: {min(n_train, 60000)} training and {min(n_test, 10000)} test digits")


def request(url, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def predict(url, path, content_type, expected):
    with open(path, "rb") as f:
        status, body = request(url, f.read(), content_type)
    name = os.path.basename(path)
    if status != 200:
        print(f"{name}: HTTP {status}: {body[:200]!r}")
        return 1
    try:
        answer = json.loads(body)
        digit, probs = answer["digit"], answer["probabilities"]
        ok_shape = len(probs) == 10 and abs(sum(probs) - 1) < 1e-3
    except (ValueError, KeyError, TypeError) as e:
        print(f"{name}: malformed answer ({e}): {body[:200]!r}")
        return 1
    conf = answer.get("confidence", max(probs))
    print(f"{name}: digit {digit} (confidence {conf:.3f}), expected {expected}")
    if not ok_shape:
        print(f"{name}: probabilities are not 10 numbers summing to 1")
        return 1
    return 0 if expected == "-" or digit == int(expected) else 1


def inflight(url, path, content_type, expected, stop_command):
    with open(path, "rb") as f:
        body = f.read()
    u = urllib.parse.urlsplit(url)
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    half = len(body) // 2
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.sendall(head + body[:half])
    time.sleep(0.2)  # let the daemon see the request start
    t0 = time.monotonic()
    stopper = subprocess.Popen(stop_command, stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    sock.sendall(body[half:])
    answer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    stop_rc = stopper.wait(timeout=60)
    took = time.monotonic() - t0
    name = os.path.basename(path)
    print(f"{name}: stop command took {took:.2f} s (status {stop_rc})")
    status_line, _, rest = answer.partition(b"\r\n")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    payload = rest.partition(b"\r\n\r\n")[2]
    if status != 200:
        print(f"{name}: request in flight during SIGTERM: HTTP {status}: {answer[:200]!r}")
        return 1
    try:
        digit = json.loads(payload)["digit"]
    except (ValueError, KeyError, TypeError):
        # chunked or otherwise framed: take the digit from the text
        import re
        m = re.search(rb'"digit"\s*:\s*(\d)', payload)
        digit = int(m.group(1)) if m else None
    print(f"{name}: request in flight during SIGTERM answered: digit {digit}, expected {expected}")
    ok = stop_rc == 0 and took < 2.0 and (expected == "-" or digit == int(expected))
    return 0 if ok else 1


def get(url):
    status, body = request(url)
    sys.stdout.write(body.decode("utf-8", "replace"))
    return 0 if status == 200 else 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def main(argv):
    if len(argv) >= 2 and argv[1] == "samples" and len(argv) == 5:
        samples(argv[2], argv[3], int(argv[4]))
    elif len(argv) >= 2 and argv[1] == "subset" and len(argv) == 6:
        subset(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif len(argv) >= 2 and argv[1] == "predict" and len(argv) == 6:
        return predict(*argv[2:])
    elif len(argv) >= 7 and argv[1] == "inflight":
        return inflight(argv[2], argv[3], argv[4], argv[5], argv[6:])
    elif len(argv) == 3 and argv[1] == "get":
        return get(argv[2])
    elif len(argv) == 2 and argv[1] == "free-port":
        free_port()
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
