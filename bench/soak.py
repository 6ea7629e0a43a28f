#!/usr/bin/env python3
"""Soak: digitd serve under mixed valid and invalid requests for a while,
its resident memory (VmRSS) sampled every second. Run through bench/soak.sh.

Prints the RSS curve's start (after warm-up) and end, its peak, the request
counts by status, and whether memory grew after warm-up: the end (the
median of the last 10 samples) above the warm-up level (the median of the
10 samples after warm-up) by more than 5% + 2 MiB. Exit 0 when it did not
grow and the daemon stayed alive, 1 otherwise. Loopback only; bounded in
time."""
import argparse
import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib


def png(w, h, rows, color_type=0):
    raw = b"".join(b"\0" + bytes(r) for r in rows)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bodies():
    """(name, content type, body) of valid and invalid requests."""
    px = [255 if 12 <= i % 28 <= 15 and 4 <= i // 28 <= 23 else 0 for i in range(784)]
    big = png(280, 280, [[255] * 100 + [0] * 30 + [255] * 150] * 280)
    canvas = png(140, 140, [[0, 0, 0, 200] * 60 + [0, 0, 0, 0] * 80] * 140, 6)
    b = "----soakBoundary"
    mp = (("--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"d.png\"\r\n"
           "Content-Type: image/png\r\n\r\n" % b).encode() + big + ("\r\n--%s--\r\n" % b).encode())
    J = "application/json"
    return [
        ("json pixels", J, json.dumps({"pixels": px}).encode()),
        ("json rows", J, json.dumps({"pixels": [px[i:i + 28] for i in range(0, 784, 28)]}).encode()),
        ("png", "image/png", big),
        ("canvas png", "image/png", canvas),
        ("base64 batch", J, json.dumps([{"image": base64.b64encode(big).decode()}] * 4 +
                                        [{"pixels": px}] * 4).encode()),
        ("multipart", "multipart/form-data; boundary=" + b, mp),
        ("bad json", J, b'{"pixels": [1, 2,'),
        ("nan", J, ('{"pixels": [' + ",".join(["NaN"] * 784) + "]}").encode()),
        ("deep json", J, b"[" * 5000 + b"]" * 5000),
        ("wrong length", J, json.dumps({"pixels": [0] * 783}).encode()),
        ("truncated png", "image/png", big[:len(big) // 2]),
        ("blank png", "image/png", png(64, 64, [[255] * 64] * 64)),
        ("text as png", "image/png", b"not an image at all"),
        ("bad jpeg", "image/jpeg", b"\xff\xd8\xff\xc4\x01\xa2\x00\xbf\xd9"),
        ("unsupported", "text/plain", b"hello"),
        ("multipart no field", "multipart/form-data; boundary=x", b"--x\r\n\r\nabc\r\n--x--\r\n"),
        ("over limit", J, b"[" + b" " * (300 * 1024) + b"]"),
    ]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--digitd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--web-root", required=True)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--log", default="/dev/null")
    args = ap.parse_args()
    warm = min(args.warmup, max(1, args.seconds // 3))

    log = open(args.log, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    d = subprocess.Popen([args.digitd, "serve", "--port", "0", "--bind", "127.0.0.1",
                          "--model", args.model, "--web-root", args.web_root, "--quiet",
                          "--max-body", "256k", "--timeout", "3"],
                         stderr=subprocess.PIPE, env=env)
    port = None
    for line in d.stderr:
        log.write(line)
        m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        print("digitd did not start")
        return 1
    threading.Thread(target=lambda: [log.write(x) for x in d.stderr], daemon=True).start()

    reqs = bodies()
    stop = threading.Event()
    counts, lock = {}, threading.Lock()

    def count(key):
        with lock:
            counts[key] = counts.get(key, 0) + 1

    def client(k):
        rng = random.Random(k)
        conn = None
        while not stop.is_set():
            try:
                if conn is None or rng.random() < 0.1:  # some new connections
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                r = rng.random()
                if r < 0.05:
                    conn.request("GET", rng.choice(["/", "/healthz", "/metrics", "/model",
                                                    "/nope", "/../etc/passwd"]))
                elif r < 0.07:  # a client that gives up halfway
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              b"application/json\r\nContent-Length: 5000\r\n\r\n[1,2,")
                    s.close()
                    count("abandoned")
                    continue
                else:
                    _, ctype, body = rng.choice(reqs)
                    conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                resp.read()
                count(resp.status)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - counted, then a new connection
                count(type(e).__name__)
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    samples = []
    t0 = time.time()
    for t in threads:
        t.start()
    try:
        while time.time() - t0 < args.seconds:
            time.sleep(1.0)
            if d.poll() is not None:
                break
            samples.append((time.time() - t0, rss_kib(d.pid)))
    finally:
        stop.set()
        for t in threads:
            t.join()
    alive = d.poll() is None
    d.send_signal(signal.SIGTERM)
    rc = d.wait(30)

    after = [kib for t, kib in samples if t >= warm]
    if len(after) < 20:
        print("too few samples after warm-up (%d); run longer" % len(after))
        return 1
    start_kib = statistics.median(after[:10])
    end_kib = statistics.median(after[-10:])
    peak = max(kib for _, kib in samples)
    grew = end_kib > start_kib * 1.05 + 2048
    total = sum(v for k, v in counts.items() if isinstance(k, int))
    print("soak: %ds, %d clients, %d answered requests (%.0f/s)" %
          (args.seconds, args.clients, total, total / max(1, args.seconds)))
    print("answers by status: %s" % ", ".join("%s %d" % (k, v) for k, v in
                                             sorted(counts.items(), key=lambda kv: str(kv[0]))))
    print("RSS: %d KiB at 1 s, %d KiB after %ds warm-up, %d KiB at the end, peak %d KiB"
          % (samples[0][1], start_kib, warm, end_kib, peak))
    curve = [kib for _, kib in samples]
    step = max(1, len(curve) // 12)
    print("RSS curve (KiB, every %ds): %s" % (step, " ".join(str(v) for v in curve[::step])))
    print("memory grew after warm-up: %s (end %+.1f%% against warm-up)"
          % ("YES" if grew else "no", 100.0 * (end_kib - start_kib) / start_kib))
    print("daemon alive to the end: %s, exit status %d" % ("yes" if alive else "NO", rc))
    return 0 if alive and not grew and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
