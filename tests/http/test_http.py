#!/usr/bin/env python3
"""HTTP integration tests of `digitd serve`.

Each group starts the real daemon binary on a free loopback port (it is
started with --port 0 and the bound port is read from its "listening on"
log line) and speaks HTTP to it over real sockets, with nothing but the
Python standard library. Groups (one CTest test each):

  api          health, readiness, /model, /metrics, static files, headers,
               CORS, options and environment, a daemon without a model
  forms        every POST /predict input form answers the right digit for
               real MNIST test digits; a small digit in the corner of a large
               white image; batches; ?include=input             (needs MNIST)
  bad          the bad-input catalogue: each case with its expected status,
               a JSON error body, and /healthz still 200 afterwards; slow
               clients; wrong methods; path traversal
  concurrency  many clients at once, every answer identical to the
               sequential one; clients of two models at once    (needs MNIST)
  reload       SIGHUP with good, corrupt, truncated and missing model files
               while under load: zero failed requests
  signals      SIGTERM/SIGINT finish the request in flight and exit 0;
               connection limits and idle timeouts

Exit status: 0 passed, 1 failed, 77 skipped (MNIST needed but
DIGITD_MNIST_DIR unset).
"""
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from digitd_test import (Daemon, check, cpu_prefers_int8, load_mnist, png,  # noqa: E402
                         raw_exchange, run_groups, status_of)

SKIP = 77
N_DIGITS = 20  # real MNIST test digits per input form


# ---------------------------------------------------------------------------
# MNIST and image encoders

def gif(w, h, gray):
    """An 8-bit grayscale GIF of the w*h values in gray. LZW with a clear
    code every 250 literals keeps every code 9 bits wide."""
    palette = b"".join(bytes((i, i, i)) for i in range(256))
    codes = []
    for i, v in enumerate(gray):
        if i % 250 == 0:
            codes.append(256)
        codes.append(v)
    codes.append(257)
    bits, nbits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xff)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xff)
    blocks = b"".join(bytes((len(out[i:i + 255]),)) + bytes(out[i:i + 255])
                      for i in range(0, len(out), 255))
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0xf7, 0, 0) + palette +
            b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08" + blocks +
            b"\x00;")


def encode_with_fixture(args, fmt, w, h, c, pixels):
    raw = os.path.join(args.work, "enc.raw")
    out = os.path.join(args.work, "enc." + fmt)
    with open(raw, "wb") as f:
        f.write(bytes(pixels))
    subprocess.run([args.fixture, "encode", fmt, str(w), str(h), str(c), raw, out],
                   check=True)
    with open(out, "rb") as f:
        return f.read()


def upscale(px, side, k):
    """side x side values -> (side*k)^2, nearest neighbour."""
    out = []
    for y in range(side * k):
        row = px[(y // k) * side:(y // k) * side + side]
        for x in range(side * k):
            out.append(row[x // k])
    return out


def rows_of(values, w, ch=1):
    return [values[y * w * ch:(y + 1) * w * ch] for y in range(len(values) // (w * ch))]


def multipart(fields, boundary="----digitdTestBoundary7MA4YWxkTrZu0gW"):
    """fields: list of (name, filename or None, content type, bytes)."""
    parts = []
    for name, filename, ctype, data in fields:
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        head = "--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)
        if ctype:
            head += "Content-Type: %s\r\n" % ctype
        parts.append(head.encode() + b"\r\n" + data + b"\r\n")
    body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=%s" % boundary


# ---------------------------------------------------------------------------
# Fixtures

def random_model(args, name="random.model", seed=1, arch="784-32-10"):
    path = os.path.join(args.work, name)
    subprocess.run([args.fixture, "model", path, arch, str(seed)], check=True)
    return path


def trained_model(args):
    """The shipped model when there is one, else a small MLP trained here."""
    shipped = os.path.join(args.source, "models", "default.model")
    if os.path.exists(shipped):
        return shipped
    path = os.path.join(args.work, "trained.model")
    if not os.path.exists(path):
        print("models/default.model is absent: training a small test model", flush=True)
        subprocess.run([args.fixture, "train", path, os.environ["DIGITD_MNIST_DIR"], "3"],
                       check=True)
    return path


SECRET = b"TOP-SECRET-OUTSIDE-THE-WEB-ROOT"


def web_root(args):
    """A web root of our own (index, assets, a subfolder, a hidden file and
    a symlink pointing out of it) beside a secret file outside it."""
    root = os.path.join(args.work, "web")
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "emptydir"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><title>digitd test</title><p>hello</p>\n")
    with open(os.path.join(root, "app.js"), "w") as f:
        f.write("console.log('hi');\n")
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("body{color:#000}\n")
    with open(os.path.join(root, "sub", "index.html"), "w") as f:
        f.write("<p>sub</p>\n")
    with open(os.path.join(root, "sub", "icon.svg"), "w") as f:
        f.write("<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    with open(os.path.join(root, ".secret"), "wb") as f:
        f.write(SECRET)
    secret = os.path.join(args.work, "secret.txt")
    with open(secret, "wb") as f:
        f.write(SECRET)
    os.symlink(secret, os.path.join(root, "link.txt"))
    os.symlink(args.work, os.path.join(root, "linkdir"))
    os.symlink("index.html", os.path.join(root, "inside-link.html"))
    return root


def need_mnist():
    if not os.environ.get("DIGITD_MNIST_DIR"):
        print("SKIP: DIGITD_MNIST_DIR is not set; this test needs the MNIST test "
              "set (e.g. DIGITD_MNIST_DIR=/path/to/mnist ctest -L http)", flush=True)
        sys.exit(SKIP)


def error_body_ok(st, h, body, raw=None):
    """Every error is {"error": {"status": N, "message": "..."}} with the
    security headers and no internal paths."""
    ok = (isinstance(body, dict) and isinstance(body.get("error"), dict) and
          body["error"].get("status") == st and
          isinstance(body["error"].get("message"), str) and body["error"]["message"])
    text = json.dumps(body) if body is not None else ""
    return (ok and h.get("content-type", "").startswith("application/json") and
            h.get("x-content-type-options") == "nosniff" and
            "content-security-policy" in h and
            "/work" not in text and "/tmp" not in text and ".model" not in text)


# ---------------------------------------------------------------------------
# Group: api

def group_api(args):
    model = random_model(args)
    web = web_root(args)
    d = Daemon(args, model, web)
    try:
        st, h, body = d.json("GET", "/healthz", ctype=None)
        check(st == 200 and body == {"status": "ok"}, "GET /healthz is 200 {status: ok}")
        check(h.get("x-content-type-options") == "nosniff", "nosniff on /healthz")
        check("default-src" in h.get("content-security-policy", ""), "CSP on /healthz")
        check(h.get("cache-control") == "no-store", "API answers are not cached")

        st, h, body = d.json("GET", "/readyz", ctype=None)
        check(st == 200 and body.get("status") == "ready", "GET /readyz is 200 with a model")


        st, h, info = d.json("GET", "/model", ctype=None)
        with open(model, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        check(st == 200, "GET /model is 200")
        check(info.get("sha256") == digest, "/model sha256 is the file's SHA-256")
        check(info.get("parameters") == 784 * 32 + 32 + 32 * 10 + 10,
              "/model parameter count of 784-32-10 (got %r)" % info.get("parameters"))
        check("dense32" in info.get("architecture", "") and "dense10" in info["architecture"],
              "/model architecture names the layers (%r)" % info.get("architecture"))
        check(info.get("name") == "untrained-784-32-10", "/model name from the file")
        check(info.get("id", "").endswith("@" + digest[:12]), "/model id ends with the digest")
        check("test_accuracy" in info and "loaded_at" in info, "/model accuracy and load time")
        check(all("/" not in str(v) or k in ("architecture",) for k, v in info.items()
                  if isinstance(v, str) and k != "loaded_at"),
              "/model leaks no file path")

        # a prediction, then the metrics count it
        st, h, p = d.json("POST", "/predict", {"pixels": [0] * 392 + [255] * 392})
        check(st == 200 and abs(sum(p["probabilities"]) - 1) < 1e-4 and
              len(p["probabilities"]) == 10 and p["model"] == info["id"] and
              p["digit"] == max(range(10), key=lambda k: p["probabilities"][k]) and
              p["confidence"] == p["probabilities"][p["digit"]],
              "a prediction has digit, confidence, 10 probabilities summing to 1, model")
        # counted when the answer has been sent, so possibly a moment after
        # the client has it: poll
        for _ in range(50):
            st, h, data = d.request("GET", "/metrics")
            text = data.decode()
            if ('digitd_http_requests_total{route="predict",status="200"} 1' in text and
                    "digitd_http_requests_in_flight 1" in text):
                break
            time.sleep(0.02)
        check(st == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4"),
              "GET /metrics is Prometheus text")
        for needle in ('digitd_http_requests_total{route="predict",status="200"} 1',
                       'digitd_http_requests_total{route="healthz",status="200"} 1',
                       'digitd_http_request_duration_seconds_bucket{route="predict",le="+Inf"} 1',
                       'digitd_predictions_total{digit="%d"} 1' % p["digit"],
                       "digitd_http_request_body_bytes_total",
                       'digitd_model_reloads_total{result="success"} 0',
                       "digitd_http_requests_in_flight 1",
                       "digitd_model_loaded 1"):
            check(needle in text, "metrics contain %s" % needle)

        # static files
        st, h, data = d.request("GET", "/")
        check(st == 200 and b"digitd test" in data, "GET / serves index.html")
        check(h.get("content-type") == "text/html; charset=utf-8", "index.html is text/html")
        check(h.get("cache-control") == "no-cache", "the page revalidates (no-cache)")
        check("script-src" not in h.get("content-security-policy", "x") and
              "default-src 'self'" in h.get("content-security-policy", ""),
              "the page's CSP allows only its own resources")
        check(h.get("x-content-type-options") == "nosniff", "nosniff on the page")
        etag = h.get("etag")
        st, h2, data = d.request("GET", "/", headers={"If-None-Match": etag})
        check(st == 304 and data == b"", "If-None-Match gives 304")
        for path, ctype in (("/app.js", "text/javascript; charset=utf-8"),
                            ("/style.css", "text/css; charset=utf-8"),
                            ("/sub/icon.svg", "image/svg+xml"),
                            ("/sub/", "text/html; charset=utf-8"),
                            ("/inside-link.html", "text/html; charset=utf-8")):
            st, h, data = d.request("GET", path)
            check(st == 200 and h.get("content-type") == ctype,
                  "GET %s is 200 %s (got %d %s)" % (path, ctype, st, h.get("content-type")))
        st, h, data = d.request("GET", "/app.js")
        check("max-age" in h.get("cache-control", ""), "assets are cacheable")
        st, h, data = d.request("HEAD", "/app.js")
        check(st == 200 and data == b"" and h.get("content-length") == "19", "HEAD of an asset")
        st, h, data = d.request("HEAD", "/healthz")
        check(st == 200 and data == b"", "HEAD /healthz")

        # keep-alive: several requests on one connection
        c = d.conn()
        codes = [d.request("GET", "/healthz", conn=c)[0] for _ in range(3)]
        codes.append(d.json("POST", "/predict", {"pixels": [0.5] * 784}, conn=c)[0])
        codes.append(d.request("GET", "/app.js", conn=c)[0])
        c.close()
        check(codes == [200] * 5, "keep-alive connection serves several requests %r" % codes)

        # request ids: the client's is echoed and logged; otherwise one is made
        st, h, _ = d.request("GET", "/healthz", headers={"X-Request-Id": "trace-abc.123"})
        check(h.get("x-request-id") == "trace-abc.123", "X-Request-Id is echoed")
        ids = {d.request("GET", "/healthz")[1].get("x-request-id") for _ in range(3)}
        check(len(ids) == 3 and None not in ids, "a request id is made when none is sent %r" % ids)
        st, h, _ = d.request("GET", "/healthz", headers={"X-Request-Id": "bad id\"" + "x" * 80})
        check(h.get("x-request-id", "").find('"') < 0 and len(h.get("x-request-id", "")) < 70,
              "an unusable X-Request-Id is replaced (%r)" % h.get("x-request-id"))
        c = d.conn()
        c.request("POST", "/predict", body=json.dumps({"pixels": [1] * 3}),
                  headers={"Content-Type": "application/json", "X-Request-Id": "bad-pixels-7"})
        r = c.getresponse()
        r.read()
        c.close()
        check(r.status == 422 and r.getheader("X-Request-Id") == "bad-pixels-7",
              "an error answer carries the request id too")
        time.sleep(0.2)
        line = [l for l in d.log_text().splitlines() if "id=bad-pixels-7" in l]
        check(line and " 422 " in line[0] and "reason=" in line[0] and "784" in line[0],
              "the access log has the request id and the reason of a 4xx (%r)" % line)

        # access log: time, client, method, path, status, bytes, microseconds, request id
        time.sleep(0.2)
        lines = [l for l in d.log_text().splitlines() if " GET /healthz " in l]
        check(lines and lines[0].split()[-2].endswith("us") and
              lines[0].split()[-4] == "200" and lines[0].split()[-3] == "16" and
              lines[0].split()[-1].startswith("id=") and len(lines[0].split()[-1]) > 3 and
              lines[0][:4].isdigit() and "T" in lines[0].split()[0],
              "access log line: time client method path status bytes micros (%r)"
              % (lines[:1],))
    finally:
        check(d.stop() == 0, "SIGTERM exits 0")

    # --quiet: no access log
    d = Daemon(args, model, web, extra=["--quiet"], name="quiet")
    d.request("GET", "/healthz")
    time.sleep(0.1)
    d.stop()
    check(" GET /healthz " not in d.log_text(), "--quiet writes no access log")
    # thread defaults: every core may infer; HTTP threads on every core
    # when they run the default model's requests themselves (this model:
    # 25 k multiply-adds), else on half of them
    cores = min(len(os.sched_getaffinity(0)), 256)
    said = "(%d HTTP threads, %d inference workers" % (cores, cores)
    check(said in d.log_text(), "by default, for a cheap model, %s" % said)
    d = Daemon(args, model, web, extra=["--quiet", "--inline-macs", "25407"], name="threads")
    d.stop()
    said = "(%d HTTP threads, %d inference workers" % ((cores + 1) // 2, cores)
    check(said in d.log_text(), "for a model over --inline-macs, %s" % said)

    # CORS, off by default, on with --cors-origin; environment variables,
    # flags winning over them
    d = Daemon(args, model, web, extra=["--cors-origin", "https://example.org"], name="cors",
               env={"DIGITD_BIND": "not-an-address", "DIGITD_CORS_ORIGIN": "https://env.example",
                    "DIGITD_MAX_BODY": "1k"})
    try:
        st, h, _ = d.request("OPTIONS", "/predict", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
        check(st == 204 and h.get("access-control-allow-origin") == "https://example.org" and
              "POST" in h.get("access-control-allow-methods", ""),
              "CORS preflight answered with the flag's origin (flag beats env)")
        st, h, _ = d.request("GET", "/healthz", headers={"Origin": "https://example.org"})
        check(h.get("access-control-allow-origin") == "https://example.org",
              "CORS header on answers")
        st, h, _ = d.request("GET", "/healthz", headers={"Origin": "https://evil.example"})
        check("access-control-allow-origin" not in h,
              "no CORS header for an origin not in the list")
        st, h, body = d.json("POST", "/predict", body=b"[" + b" " * 1100 + b"]")
        check(st == 413, "DIGITD_MAX_BODY=1k applies when no flag says otherwise (%d)" % st)
    finally:
        d.stop()
    d = Daemon(args, model, web, extra=["--threads", "1"], name="nocors")
    said = "(1 HTTP threads, %d inference workers" % cores
    check(said in d.log_text(), "--threads 1 sets the HTTP threads alone: %s" % said)
    st, h, _ = d.json("POST", "/predict", {"pixels": [0] * 784})
    check("access-control-allow-origin" not in h, "no CORS headers by default")
    st, h, _ = d.request("OPTIONS", "/predict")
    check(st == 405 and h.get("allow") == "POST", "OPTIONS without CORS is 405")
    d.stop()

    # environment alone
    env_port_probe = socket.socket()
    env_port_probe.bind(("127.0.0.1", 0))
    free_port = env_port_probe.getsockname()[1]
    env_port_probe.close()
    p = subprocess.Popen([args.digitd, "serve"], stderr=subprocess.PIPE,
                         env=dict(os.environ, DIGITD_PORT=str(free_port),
                                  DIGITD_BIND="127.0.0.1", DIGITD_MODEL=model,
                                  DIGITD_WEB_ROOT=web, DIGITD_QUIET="1"))
    ok = False
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", free_port, timeout=2)
            c.request("GET", "/readyz")
            ok = c.getresponse().status == 200
            break
        except OSError:
            time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    p.wait(20)
    check(ok, "DIGITD_PORT/BIND/MODEL/WEB_ROOT configure the daemon")

    # options
    r = subprocess.run([args.digitd, "serve", "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "--max-body" in r.stdout and
          max(len(l) for l in r.stdout.splitlines()) < 80,
          "serve --help lists every option within 80 columns and exits 0")
    for bad in (["--port", "70000"], ["--threads", "0"], ["--max-body", "lots"],
                ["--bind", "example.com"], ["--nope"], ["extra"]):
        r = subprocess.run([args.digitd, "serve", "--port", "0", "--model", model, *bad],
                           capture_output=True, text=True, timeout=20)
        check(r.returncode in (1, 2) and r.stderr.strip(), "serve %s fails with a message" % bad)

    # no model: alive, not ready, /predict 503
    d = Daemon(args, os.path.join(args.work, "missing.model"), web, name="nomodel")
    try:
        check(d.request("GET", "/healthz")[0] == 200, "without a model /healthz is 200")
        st, h, body = d.json("GET", "/readyz", ctype=None)
        check(st == 503 and error_body_ok(st, h, body), "without a model /readyz is 503")
        st, h, body = d.json("POST", "/predict", {"pixels": [0] * 784})
        check(st == 503 and error_body_ok(st, h, body), "without a model /predict is 503")
        st, h, body = d.json("GET", "/model", ctype=None)
        check(st == 503, "without a model /model is 503")
        # a good file then SIGHUP: ready
        shutil.copy(model, os.path.join(args.work, "missing.model"))
        d.send_signal(signal.SIGHUP)
        for _ in range(100):
            if d.request("GET", "/readyz")[0] == 200:
                break
            time.sleep(0.05)
        check(d.request("GET", "/readyz")[0] == 200, "SIGHUP loads a model that appeared")
    finally:
        check(d.stop(signal.SIGINT) == 0, "SIGINT exits 0")


# ---------------------------------------------------------------------------
# Group: forms

def group_forms(args):
    need_mnist()
    digits = load_mnist(N_DIGITS)
    # --precision with the shipped default model (calibrated by digitd
    # quantize): each path answers, says which it is, and reads the real
    # digits; auto is int8 exactly where the CPU has AVX512-VNNI
    shipped = os.path.join(args.source, "models", "default.model")
    auto = "int8" if cpu_prefers_int8() else "float32"
    said = {"fp32": "runs in float32", "int8": "runs in int8", "auto": "runs in " + auto}
    for precision in ("fp32", "int8", "auto"):
        extra = ["--precision", precision]
        d = Daemon(args, shipped, web_root(args), extra=extra, name="shipped-" + precision)
        try:
            body = json.dumps([{"pixels": px} for px, _ in digits])
            st, _, ans = d.json("POST", "/predict", body=body)
            got = [p["digit"] for p in ans["predictions"]] if st == 200 else []
            right = sum(g == lab for g, (_, lab) in zip(got, digits))
            check(right >= len(digits) - 1, "shipped model --precision %s: %d/%d MNIST digits right"
                  % (precision, right, len(digits)))
            check(all("accepted" in p for p in ans.get("predictions", [])),
                  "every batch item has a verdict")
            check(said[precision] in d.log_text(),
                  "--precision %s: the log says the model %s" % (precision, said[precision]))
            runs = "fp32" if said[precision].endswith("float32") else "int8"
            info = d.json("GET", "/model", ctype=None)[2]
            check(info.get("precision") == runs,
                  "--precision %s: GET /model says %s" % (precision, info.get("precision")))
        finally:
            d.stop()
    model = trained_model(args)
    d = Daemon(args, model, web_root(args))
    try:
        forms = {}

        def add(name, ctype, body):
            forms.setdefault(name, []).append((ctype, body))

        for px, label in digits:
            inv = [255 - v for v in px]
            add("json pixels 0..255", "application/json", json.dumps({"pixels": px}))
            add("json pixels 0..1", "application/json",
                json.dumps({"pixels": [v / 255 for v in px]}))
            add("json pixels 28 rows", "application/json",
                json.dumps({"pixels": rows_of(px, 28)}))
            big = upscale(inv, 28, 4)  # 112x112, dark ink on white
            png_dark = png(112, 112, rows_of(big, 112))
            add("image/png dark on light", "image/png", png_dark)
            add("image/png light on dark", "image/png", png(28, 28, rows_of(px, 28)))
            rgb = [c for v in upscale(inv, 28, 3) for c in (v, v, min(255, v + 40))]
            add("image/jpeg colour", "image/jpeg", encode_with_fixture(args, "jpg", 84, 84, 3, rgb))
            add("image/bmp", "image/bmp", encode_with_fixture(args, "bmp", 56, 56, 1,
                                                               upscale(inv, 28, 2)))
            add("image/gif", "image/gif", gif(56, 56, upscale(inv, 28, 2)))
            add("json image base64", "application/json",
                json.dumps({"image": base64.b64encode(png_dark).decode()}))
            add("json image data: URL", "application/json",
                json.dumps({"image": "data:image/png;base64," +
                            base64.b64encode(png_dark).decode()}))
            body, ctype = multipart([("note", None, None, b"hello"),
                                     ("image", "digit.png", "image/png", png_dark)])
            add("multipart/form-data", ctype, body)
            # a browser canvas: 280x280 RGBA, transparent background
            # (0,0,0,0), opaque ink of one colour (here black, then blue)
            for ink, name in (((0, 0, 0), "canvas black ink"), ((30, 60, 200), "canvas blue ink")):
                canvas = []
                for v in upscale(px, 28, 10):
                    canvas += [ink[0], ink[1], ink[2], v] if v else [0, 0, 0, 0]
                add("transparent " + name, "image/png", png(280, 280, rows_of(canvas, 280, 4), 6))
            # white ink on a transparent canvas
            canvas = []
            for v in upscale(px, 28, 10):
                canvas += [255, 255, 255, v]
            add("transparent canvas white ink", "image/png", png(280, 280, rows_of(canvas, 280, 4), 6))
            # small dark digit in the corner of a large white image
            W, H = 900, 700
            small = upscale(inv, 28, 2)
            img = bytearray(b"\xff" * (W * H))
            for y in range(56):
                img[(10 + y) * W + 10:(10 + y) * W + 66] = bytes(small[y * 56:(y + 1) * 56])
            add("small digit in the corner of 900x700 white PNG", "image/png",
                png(W, H, rows_of(list(img), W)))

        labels = [lab for _, lab in digits]
        c = d.conn()
        for name, items in forms.items():
            got = []
            for ctype, body in items:
                st, h, ans = d.json("POST", "/predict", body=body, ctype=ctype, conn=c)
                got.append(ans.get("digit") if st == 200 else "HTTP %d %s" % (st, ans))
            right = sum(1 for a, b in zip(got, labels) if a == b)
            print("%-50s %2d/%d right" % (name, right, len(labels)), flush=True)
            check(right >= len(labels) - 1,
                  "%s: %d of %d right (%r vs %r)" % (name, right, len(labels), got, labels))
        c.close()

        # batches: an array and {"instances": [...]}, answers in order
        batch = [{"pixels": px} for px, _ in digits[:10]]
        batch[3] = {"image": "data:image/png;base64," +
                    base64.b64encode(forms["image/png dark on light"][3][1]).decode()}
        for name, obj in (("array", batch), ("instances", {"instances": batch})):
            st, h, ans = d.json("POST", "/predict", obj)
            preds = ans.get("predictions") if st == 200 else None
            check(st == 200 and isinstance(preds, list) and len(preds) == 10 and
                  "model" in ans,
                  "batch (%s) answers {predictions: [10], model} (%d)" % (name, st))
            if preds:
                right = sum(1 for p, (_, lab) in zip(preds, digits) if p["digit"] == lab)
                check(right >= 9, "batch (%s) in order: %d of 10 right" % (name, right))
                check(all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in preds),
                      "batch probabilities sum to 1")

        # ?include=input: the normalised 28x28 the model saw
        px = digits[0][0]
        st, h, ans = d.json("POST", "/predict?include=input", {"pixels": px})
        inp = ans.get("input")
        check(st == 200 and isinstance(inp, list) and len(inp) == 784 and
              max(abs(a - b / 255) for a, b in zip(inp, px)) < 1e-3,
              "?include=input returns the 784 pixels as the model saw them")
        st, h, ans = d.json("POST", "/predict?include=input",
                            body=forms["image/png dark on light"][0][1], ctype="image/png")
        inp = ans.get("input", [])
        check(st == 200 and len(inp) == 784 and max(inp) > 0.5 and min(inp) >= 0 and
              sum(inp[:28]) < 1 and ans["digit"] == digits[0][1],
              "?include=input on an image: ink high, empty border")
        st, h, ans = d.json("POST", "/predict", {"pixels": px})
        check("input" not in ans, "no input without ?include=input")

        # /model of the trained model records an accuracy
        st, h, info = d.json("GET", "/model", ctype=None)
        check(st == 200 and isinstance(info.get("test_accuracy"), float) and
              info["test_accuracy"] > 0.9, "/model reports the recorded test accuracy")
    finally:
        check(d.stop() == 0, "exit 0")


# ---------------------------------------------------------------------------
# Group: bad inputs

LIMIT = 65536  # --max-body in this group


def group_bad(args):
    model = random_model(args)
    web = web_root(args)
    d = Daemon(args, model, web, extra=["--max-body", str(LIMIT), "--timeout", "2",
                                        "--max-image-side", "2000"])
    good_png = png(28, 28, [[255] * 10 + [0] * 8 + [255] * 10] * 28)
    white = png(64, 64, [[255] * 64] * 64)
    transparent = png(64, 64, [[0, 0, 0, 0] * 64] * 64, 6)
    truncated = good_png[:len(good_png) // 2]
    # a valid PNG header claiming 100000x100000, then a little data
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    huge_hdr = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr +
                struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xffffffff) +
                png(1, 1, [[0]])[33:])
    one = png(1, 1, [[0]])
    mp_noimage, mp_type = multipart([("file", "d.png", "image/png", good_png)])
    mp_ok, _ = multipart([("image", "d.png", "image/png", good_png)])
    px = [0] * 300 + [1] * 28 + [0] * 456  # a bar: valid, not blank

    def pixels_with(token):
        return ('{"pixels": [' + ",".join(["0"] * 400 + [token] + ["0"] * 383) + "]}").encode()

    J = "application/json"
    cases = [
        # (name, content type, body, expected status)
        ("empty JSON body", J, b"", 400),
        ("missing Content-Type", None, json.dumps({"pixels": px}), 415),
        ("text/plain Content-Type", "text/plain", json.dumps({"pixels": px}), 415),
        ("image/webp Content-Type", "image/webp", b"RIFF....WEBP", 415),
        ("truncated JSON", J, b'{"pixels": [1, 2, ', 400),
        ("JSON with trailing garbage", J, json.dumps({"pixels": px}) + "xyz", 400),
        ("JSON scalar", J, b"42", 422),
        ("JSON object without pixels or image", J, b"{}", 422),
        ("783 numbers", J, json.dumps({"pixels": [0] * 783}), 422),
        ("785 numbers", J, json.dumps({"pixels": [0] * 785}), 422),
        ("784 zeros: a blank input", J, json.dumps({"pixels": [0] * 784}), 422),
        ("28 rows of zeros: a blank input", J, json.dumps({"pixels": [[0] * 28] * 28}), 422),
        ("NaN among the pixels", J, pixels_with("NaN"), 422),
        ("Infinity among the pixels", J, pixels_with("Infinity"), 422),
        ("-Infinity among the pixels", J, pixels_with("-Infinity"), 422),
        ("1e999 (overflows to infinity)", J, pixels_with("1e999"), 422),
        ("a string among the pixels", J, pixels_with('"7"'), 422),
        ("a null among the pixels", J, pixels_with("null"), 422),
        ("a negative pixel", J, pixels_with("-1"), 422),
        ("a pixel over 255", J, pixels_with("256"), 422),
        ("pixels not an array", J, b'{"pixels": "0,0,0"}', 422),
        ("rows of the wrong length", J, json.dumps({"pixels": [[0] * 27] * 28}), 422),
        ("arrays nested 10000 deep", J, b"[" * 10000 + b"]" * 10000, 400),
        ("objects nested 10000 deep", J, b'{"a":' * 10000 + b"1" + b"}" * 10000, 400),
        ("invalid base64", J, json.dumps({"image": "iVBOR%%%not base64!"}), 400),
        ("data: URL not base64", J, json.dumps({"image": "data:image/png,abc"}), 422),
        ("base64 of text, not an image", J,
         json.dumps({"image": base64.b64encode(b"hello, world").decode()}), 415),
        ("image not a string", J, b'{"image": 12}', 422),
        ("both pixels and image", J,
         json.dumps({"pixels": px, "image": base64.b64encode(good_png).decode()}), 422),
        ("empty batch", J, b"[]", 422),
        ("batch of 257", J,
         json.dumps([{"image": base64.b64encode(good_png).decode()}] * 257), 422),
        ("batch with a bad fourth input", J,
         json.dumps([{"pixels": px}] * 3 + [{"pixels": [0] * 5}]), 422),
        ("truncated PNG", "image/png", truncated, 400),
        ("PNG header claiming 100000x100000", "image/png", huge_hdr, 422),
        ("1x1 image", "image/png", one, 422),
        ("all-white image", "image/png", white, 422),
        ("all-transparent image", "image/png", transparent, 422),
        ("GIF magic then garbage", "image/gif", b"GIF89a" + b"\x01" * 40, 400),
        ("JPEG magic then garbage", "image/jpeg", b"\xff\xd8\xff" + b"\x00" * 100, 400),
        ("empty raw image", "image/png", b"", 422),
        ("text sent as image/png", "image/png", b"this is not a png", 415),
        ("multipart without the image field", mp_type, mp_noimage, 422),
        ("multipart without a boundary", "multipart/form-data", mp_ok, 400),
        ("multipart truncated", mp_type, mp_ok[:len(mp_ok) // 2], 400),
        ("multipart with another boundary", mp_type.replace("7MA4", "XXXX"), mp_ok, 400),
        ("body exactly at the limit (junk JSON)", J, b"[" + b" " * (LIMIT - 1), 400),
        ("body one byte over the limit", J, b"[" + b" " * LIMIT, 413),
        ("image over --max-image-side", "image/png",
         png(2001, 1, [[0] * 2001]), 422),
    ]
    try:
        for name, ctype, body, want in cases:
            st, h, ans = d.json("POST", "/predict", body=body, ctype=ctype)
            check(st == want and error_body_ok(st, h, ans),
                  "%s: want %d, got %d %s" % (name, want, st, ans))
            check(d.request("GET", "/healthz")[0] == 200, "healthz after: " + name)
        bad_fourth = next(c[2] for c in cases if c[0] == "batch with a bad fourth input")
        st, h, ans = d.json("POST", "/predict", body=bad_fourth, ctype=J)
        check("input 3" in ans["error"]["message"], "a batch error names the input")

        # chunked, far over the limit: 413 after the body, daemon fine
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
        try:
            for _ in range(160):  # 10 MiB
                s.sendall(chunk)
            s.sendall(b"0\r\n\r\n")
            resp = s.recv(65536)
        except OSError:
            resp = b""
        s.close()
        check(status_of(resp) == 413, "chunked body of 10 MiB over a 64 KiB limit: 413 (%r)"
              % resp[:40])
        check(d.request("GET", "/healthz")[0] == 200, "healthz after the chunked flood")

        # a declared Content-Length over the limit is refused before the body
        resp = raw_exchange(d.port, b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n"
                            b"Expect: 100-continue\r\n\r\n", read_timeout=3)
        check(status_of(resp) == 413 and b"100 Continue" not in resp,
              "Content-Length of 1 GB with Expect: 100-continue: 413 at once")

        # no length at all: 411
        resp = raw_exchange(d.port, b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Type: application/json\r\n\r\n", read_timeout=3)
        check(status_of(resp) == 411, "POST without Content-Length or chunking: 411 (%r)"
              % resp[:40])

        # garbage that is not HTTP, and oversized headers: refused by the
        # HTTP layer, daemon fine
        resp = raw_exchange(d.port, b"\x16\x03\x01garbage\r\n\r\n", read_timeout=3)
        check(status_of(resp) in (400, None), "non-HTTP bytes refused (%r)" % resp[:30])
        resp = raw_exchange(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                            b"a" * 100000 + b"\r\n\r\n", read_timeout=3)
        check(status_of(resp) in (413, 414, 431, None), "100 KB header refused (%r)" % resp[:30])
        check(d.request("GET", "/healthz")[0] == 200, "healthz after garbage")

        # wrong method on every route (and unknown routes: 404)
        for method, path, allow in (("GET", "/predict", "POST"), ("PUT", "/predict", "POST"),
                                    ("DELETE", "/predict", "POST"), ("HEAD", "/predict", "POST"),
                                    ("POST", "/healthz", "GET, HEAD"),
                                    ("DELETE", "/healthz", "GET, HEAD"),
                                    ("POST", "/readyz", "GET, HEAD"),
                                    ("PUT", "/model", "GET, HEAD"),
                                    ("POST", "/metrics", "GET, HEAD"),
                                    ("POST", "/", "GET, HEAD"),
                                    ("DELETE", "/index.html", "GET, HEAD"),
                                    ("PATCH", "/app.js", "GET, HEAD")):
            st, h, ans = d.json(method, path, ctype=None)
            check(st == 405 and h.get("allow") == allow and
                  (method == "HEAD" or error_body_ok(st, h, ans)),
                  "%s %s: 405 Allow: %s (got %d %s)" % (method, path, allow, st, h.get("allow")))
        for method, path in (("GET", "/nope"), ("POST", "/nope"), ("GET", "/predict/x"),
                             ("GET", "/healthz/"), ("DELETE", "/nope.html")):
            st, h, ans = d.json(method, path, ctype=None)
            check(st == 404 and error_body_ok(st, h, ans), "%s %s: 404 (%d)" % (method, path, st))

        # path traversal, raw on the socket so nothing normalises the path
        for path in ("/../secret.txt", "/../../../../etc/passwd", "/%2e%2e/secret.txt",
                     "/%2E%2E/%2e%2e/etc/passwd", "/..%2fsecret.txt", "/sub/../../secret.txt",
                     "/sub/%2e%2e/%2e%2e/secret.txt", "//etc/passwd", "/%2fetc/passwd",
                     "/..\\secret.txt", "/%5c..%5csecret.txt", "/link.txt", "/linkdir/secret.txt",
                     "/.secret", "/%2esecret", "/sub/./index.html", "/emptydir", "/emptydir/",
                     "/index.html%00.png", "/" + "a/" * 3000 + "x"):
            resp = raw_exchange(d.port, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                         % path).encode(), read_timeout=3)
            st = status_of(resp)
            check(st in (404, 400, 414, 431) and SECRET not in resp and b"root:" not in resp,
                  "GET %s refused (got %s)" % (path[:60], st))
        check(d.request("GET", "/")[0] == 200, "the page is still served")

        # a slow client that stops halfway: cut after the timeout (2 s),
        # other clients served meanwhile
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n" + b"[" * 100)
        t0 = time.time()
        served = all(d.request("GET", "/healthz")[0] == 200 for _ in range(5))
        check(served and time.time() - t0 < 1.5, "others are served while a client stalls")
        try:
            got = s.recv(1000)
        except OSError:
            got = b""
        waited = time.time() - t0
        s.close()
        check(got == b"" and 1.0 < waited < 6.0,
              "a stalled upload is closed after the timeout (%.1fs, %r)" % (waited, got[:40]))
        # a client that opens a connection and says nothing
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        t0 = time.time()
        try:
            got = s.recv(1000)
        except OSError:
            got = b""
        waited = time.time() - t0
        s.close()
        check(got == b"" and waited < 6.0, "a silent connection is closed (%.1fs)" % waited)
        time.sleep(0.1)
        check(" 408 " in d.log_text(), "the timed-out request is logged as 408")

        # after all that: alive, ready, and still right
        st, h, ans = d.json("POST", "/predict", body=good_png, ctype="image/png")
        check(st == 200, "a good request after the catalogue is 200")
        st, h, data = d.request("GET", "/metrics")
        check(b'route="predict",status="422"' in data and b'route="other",status="404"' in data,
              "errors are counted in the metrics")
    finally:
        check(d.stop() == 0, "exit 0 after the catalogue")
    log = d.log_text()
    check("AddressSanitizer" not in log and "runtime error" not in log,
          "no sanitizer reports in the daemon's log")


# ---------------------------------------------------------------------------
# Group: concurrency

def group_concurrency(args):
    need_mnist()
    digits = load_mnist(64)
    model = trained_model(args)
    d = Daemon(args, model, web_root(args), extra=["--quiet", "--workers", "2"])

    try:
        bodies = []
        for px, label in digits:
            bodies.append(("application/json", json.dumps({"pixels": px}), label))
            inv = [255 - v for v in upscale(px, 28, 3)]
            bodies.append(("image/png", png(84, 84, rows_of(inv, 84)), label))
        # sequential answers first
        expect = []
        c = d.conn()
        for ctype, body, _ in bodies:
            st, h, ans = d.json("POST", "/predict", body=body, ctype=ctype, conn=c)
            expect.append((st, ans.get("digit"), ans.get("probabilities")))
        c.close()
        right = sum(1 for (st, dg, _), (_, _, lab) in zip(expect, bodies) if dg == lab)
        check(right >= len(bodies) * 0.9, "sequential answers mostly right (%d/%d)"
              % (right, len(bodies)))

        errors = []

        def client(k):
            conn = d.conn()
            bad = 0
            for i in range(60):
                j = (k * 7 + i * 13) % len(bodies)
                ctype, body, _ = bodies[j]
                try:
                    st, h, ans = d.json("POST", "/predict", body=body, ctype=ctype, conn=conn)
                    got = (st, ans.get("digit"), ans.get("probabilities"))
                except Exception as e:  # noqa: BLE001 - any failure counts
                    got = ("exception", repr(e))
                    conn.close()
                    conn = d.conn()
                if got != expect[j]:
                    bad += 1
                    if len(errors) < 5:
                        errors.append((j, got, expect[j]))
            conn.close()
            return bad

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            bad = sum(ex.map(client, range(32)))
        dt = time.time() - t0
        print("32 clients x 60 requests in %.2fs" % dt, flush=True)
        check(bad == 0, "all 1920 concurrent answers identical to the sequential ones "
              "(%d differ: %r)" % (bad, errors))

        # new connection per request, many at once
        def one_shot(j):
            ctype, body, _ = bodies[j % len(bodies)]
            st, h, ans = d.json("POST", "/predict", body=body, ctype=ctype)
            return (st, ans.get("digit"), ans.get("probabilities")) == expect[j % len(bodies)]
        with concurrent.futures.ThreadPoolExecutor(48) as ex:
            oks = list(ex.map(one_shot, range(400)))
        check(all(oks), "400 one-shot connections from 48 threads all right (%d bad)"
              % oks.count(False))
        for _ in range(50):
            st, h, data = d.request("GET", "/metrics")
            if b"digitd_http_requests_in_flight 1\n" in data:
                break
            time.sleep(0.02)
        check(b"digitd_http_requests_in_flight 1\n" in data, "in-flight back to just this one")
    finally:
        check(d.stop() == 0, "exit 0")
    two_models_at_once(args, digits, model)
    inline_equals_queued(args, digits)


def metric(d, name):
    st, h, data = d.request("GET", "/metrics")
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[-1])
    return None


def inline_equals_queued(args, digits):
    """A short JSON body for a cheap model runs on the HTTP thread
    (--inline-macs): its answers must be the queue's, bit for bit, alone
    and from many clients at once; what that path must not take (a long
    body, an image body, a base64 image over 128x128, a model over the
    limit) goes to the workers, and errors come out the same."""
    model = random_model(args, "inline.model", seed=5)  # 784-32-10: 25,408 MACs
    px = [p for p, _ in digits[:8]]

    def b64png(side, p):
        k = side // 28
        img = png(28 * k, 28 * k, rows_of([255 - v for v in upscale(p, 28, k)], 28 * k))
        return "data:image/png;base64," + base64.b64encode(img).decode()
    inline_bodies = [  # (what, body): each runs on the HTTP thread
        ("pixels", json.dumps({"pixels": px[0]})),
        ("pixels 0..1", json.dumps({"pixels": [v / 255 for v in px[1]]})),
        ("28 rows", json.dumps({"pixels": [px[2][r * 28:r * 28 + 28] for r in range(28)]})),
        ("batch of 3", json.dumps([{"pixels": p} for p in px[3:6]])),
        ("base64 png 112x112", json.dumps({"image": b64png(112, px[6])})),
    ]
    queued_bodies = [  # each goes to a worker, or is refused, either way
        ("base64 png 140x140", "application/json", json.dumps({"image": b64png(140, px[7])})),
        ("17 KiB of JSON", "application/json",
         json.dumps({"pixels": px[0]}) + " " * (17 << 10)),
        ("png body", "image/png",
         png(84, 84, rows_of([255 - v for v in upscale(px[1], 28, 3)], 84))),
        ("malformed", "application/json", '{"pixels": [1, 2'),
        ("784 strings", "application/json", json.dumps({"pixels": ["1"] * 784})),
        ("empty batch", "application/json", "[]"),
    ]
    cases = [(w, "application/json", b) for w, b in inline_bodies] + queued_bodies
    here = Daemon(args, model, web_root(args), name="inline",
                  extra=["--quiet", "--inline-macs", "25408"])
    queue = Daemon(args, model, web_root(args), name="queued",
                   extra=["--quiet", "--inline-macs", "25407"])
    try:
        def ask(d, case, conn=None, query=""):
            st, h, data = d.request("POST", "/predict" + query, body=case[2],
                                    headers={"Content-Type": case[1]}, conn=conn)
            ans = json.loads(data)
            ans.pop("model", None)
            return st, ans
        expect = [ask(queue, c) for c in cases]
        got = [ask(here, c) for c in cases]
        for c, e, g in zip(cases, expect, got):
            check(e == g, "%s: the HTTP thread answers as a worker does (%d, %d)"
                  % (c[0], e[0], g[0]))
        check(all(e[0] == 200 for e in expect[:len(inline_bodies) + 3]),
              "the forms answer 200: %r" % [e[0] for e in expect])
        check([e[0] for e in expect[-3:]] == [400, 422, 422],
              "the bad bodies are refused: %r" % [e[0] for e in expect[-3:]])
        st, inp = ask(here, cases[0], query="?include=input")
        check(st == 200 and len(inp.get("input", [])) == 784, "?include=input on the HTTP thread")
        n = len(inline_bodies) + 1
        check(metric(here, "digitd_inline_jobs_total") == n,
              "%d requests ran on the HTTP thread at --inline-macs 25408 (the model's "
              "cost): %r" % (n, metric(here, "digitd_inline_jobs_total")))
        check(metric(queue, "digitd_inline_jobs_total") == 0,
              "none at --inline-macs 25407: %r" % metric(queue, "digitd_inline_jobs_total"))

        def client(k):
            conn = here.conn(timeout=10)
            bad = []
            for i in range(40):
                j = (k * 5 + i * 3) % len(cases)
                if ask(here, cases[j], conn=conn) != expect[j]:
                    bad.append((k, j))
            conn.close()
            return bad
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            bad = sum(ex.map(client, range(16)), [])
        check(not bad, "16 clients at once on the HTTP threads: every answer as alone "
              "(%d differ: %r)" % (len(bad), bad[:4]))
    finally:
        check(here.stop() == 0 and queue.stop() == 0, "exit 0")


def two_models_at_once(args, digits, model):
    """Jobs of two models in one queue: a worker gathering a batch stops
    at a job of the other model and leaves it for the next pass. One
    worker waiting long for company (50 ms) makes that happen on most
    passes; a job whose wake-up got lost there would wait for a later
    request, and the last ones for none (the clients' 10 s timeout)."""
    repo = os.path.join(args.work, "repo")
    for name, path in (("alpha", model), ("beta", random_model(args, "beta.model", seed=3))):
        os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
        shutil.copy(path, os.path.join(repo, name, "1", "model.digitd"))
    d = Daemon(args, model, web_root(args), name="two-models",
               extra=["--quiet", "--model-dir", repo, "--default-model", "alpha",
                      "--workers", "1", "--batch", "8", "--batch-wait-us", "50000"])

    def infer(name, px, conn):
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784],
                                       "datatype": "FP32", "data": px}]})
        st, h, ans = d.json("POST", "/v2/models/%s/infer" % name, body=body, conn=conn)
        return st, ans and ans.get("model_name"), ans and ans.get("outputs")

    try:
        work = [(("alpha", "beta")[i % 2], [v / 255 for v in px])
                for i, (px, _) in enumerate(digits[:24])]
        c = d.conn()
        expect = [infer(name, px, c) for name, px in work]
        c.close()
        check(all(e[0] == 200 and e[1] == n for e, (n, _) in zip(expect, work)),
              "each model answers alone: %r" % sorted(set((e[0], e[1]) for e in expect)))

        clients = 12
        mine = [range(k % 2, len(work), 3) for k in range(clients)]  # starts on either model

        def client(k):
            conn = d.conn(timeout=10)
            bad = []
            for i in mine[k]:
                try:
                    got = infer(work[i][0], work[i][1], conn)
                except Exception as e:  # noqa: BLE001 - a timeout counts
                    got = ("exception", repr(e))
                    conn.close()
                    conn = d.conn(timeout=10)
                if got != expect[i]:
                    bad.append((i, got[:2]))
            conn.close()
            return bad

        with concurrent.futures.ThreadPoolExecutor(clients) as ex:
            bad = sum(ex.map(client, range(clients)), [])
        check(not bad, "%d clients on two models at once: every answer as when alone "
              "(%d differ: %r)" % (clients, len(bad), bad[:4]))
        st, h, data = d.request("GET", "/metrics")
        passes = sum(int(l.split()[-1]) for l in data.decode().splitlines()
                     if l.startswith("digitd_batches_total{"))
        jobs = sum(map(len, mine)) + len(work)
        check(0 < passes < jobs, "the jobs shared passes (%d passes for %d jobs)" % (passes, jobs))
    finally:
        check(d.stop() == 0, "exit 0")


# ---------------------------------------------------------------------------
# Group: reload

def group_reload(args):
    a = random_model(args, "a.model", seed=1)
    b = random_model(args, "b.model", seed=2)
    live = os.path.join(args.work, "live.model")
    shutil.copy(a, live)
    d = Daemon(args, live, web_root(args), extra=["--quiet"])
    ids = {}
    for name, path in (("a", a), ("b", b)):
        with open(path, "rb") as f:
            ids[name] = hashlib.sha256(f.read()).hexdigest()[:12]
    stop = threading.Event()
    results = {"ok": 0, "bad": [], "ids": set()}
    lock = threading.Lock()
    body = json.dumps({"pixels": [(i * 37) % 256 for i in range(784)]})

    def hammer():
        conn = d.conn()
        while not stop.is_set():
            try:
                st, h, ans = d.json("POST", "/predict", body=body, conn=conn)
                rz = d.request("GET", "/readyz", conn=conn)[0]
                with lock:
                    if st == 200 and rz == 200:
                        results["ok"] += 1
                        results["ids"].add(ans["model"].split("@")[1])
                    else:
                        results["bad"].append((st, rz, ans))
            except Exception as e:  # noqa: BLE001
                with lock:
                    results["bad"].append(repr(e))
                conn.close()
                conn = d.conn()
        conn.close()

    def current_id():
        return d.json("GET", "/model", ctype=None)[2]["sha256"][:12]

    def hup_and_wait(want_line_count):
        d.send_signal(signal.SIGHUP)
        for _ in range(200):
            if d.log_text().count("SIGHUP") >= want_line_count and (
                    d.log_text().count("model reloaded") + d.log_text().count("reload refused")
                    >= want_line_count):
                return
            time.sleep(0.02)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        tmp = live + ".tmp"
        shutil.copy(b, tmp)
        os.replace(tmp, live)
        hup_and_wait(1)
        check(current_id() == ids["b"], "SIGHUP with a good new file switches to it")
        time.sleep(0.3)
        with open(live, "wb") as f:
            f.write(os.urandom(5000))
        hup_and_wait(2)
        check(current_id() == ids["b"], "a garbage file is refused, the old model serves")
        time.sleep(0.3)
        with open(a, "rb") as f:
            data = f.read()
        with open(live, "wb") as f:
            f.write(data[:len(data) // 2])
        hup_and_wait(3)
        check(current_id() == ids["b"], "a truncated file is refused")
        with open(live, "wb") as f:
            f.write(data[:-1] + bytes([data[-1] ^ 0xff]))
        hup_and_wait(4)
        check(current_id() == ids["b"], "a file with a flipped bit (CRC) is refused")
        os.remove(live)
        hup_and_wait(5)
        check(current_id() == ids["b"], "a deleted file is refused")
        time.sleep(0.3)
        shutil.copy(a, tmp)
        os.replace(tmp, live)
        hup_and_wait(6)
        check(current_id() == ids["a"], "and a good file again is taken")
        # rapid reloads
        for _ in range(10):
            d.send_signal(signal.SIGHUP)
            time.sleep(0.02)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    print("requests during reloads: %d ok, %d failed" % (results["ok"], len(results["bad"])),
          flush=True)
    check(results["ok"] > 100, "the load ran (%d requests)" % results["ok"])
    check(not results["bad"], "zero failed requests during reloads (%r)" % results["bad"][:3])
    check(results["ids"] <= {ids["a"], ids["b"]}, "only whole models answered")
    st, h, data = d.request("GET", "/metrics")
    text = data.decode()
    check('digitd_model_reloads_total{result="failure"} 4' in text, "4 failed reloads counted")
    check("digitd_model_loaded 1" in text, "still loaded")
    rc = d.stop()
    check(rc == 0, "exit 0")
    log = d.log_text()
    check(log.count("reload refused") == 4, "each refusal is logged")
    check("AddressSanitizer" not in log and "runtime error" not in log, "no sanitizer reports")


# ---------------------------------------------------------------------------
# Group: signals and connection limits

def group_signals(args):
    model = random_model(args)
    web = web_root(args)
    # --log-format json: one object per line, the reason of every 4xx/5xx
    d = Daemon(args, model, web, extra=["--log-format", "json"], name="jsonlog")
    try:
        d.request("GET", "/healthz", headers={"X-Request-Id": "j-1"})
        d.request("GET", "/nope", headers={"X-Request-Id": "j-2"})
        d.json("POST", "/predict", {"pixels": "x"})
        time.sleep(0.2)
        objs = []
        for l in d.log_text().splitlines():
            if l.startswith("{"):
                try:
                    objs.append(json.loads(l))
                except ValueError:
                    check(False, "a JSON log line parses: %r" % l)
        by_id = {o.get("request_id"): o for o in objs}
        check(by_id.get("j-1", {}).get("status") == 200 and "reason" not in by_id.get("j-1", {}),
              "JSON log: a 200 with its request id and no reason")
        check(by_id.get("j-2", {}).get("status") == 404 and by_id["j-2"].get("reason"),
              "JSON log: a 404 with its reason")
        check(any(o.get("status") == 422 and "pixels" in o.get("reason", "") for o in objs),
              "JSON log: a 422 says why")
        check(all({"time", "method", "path", "status", "duration_us"} <= set(o) for o in objs),
              "JSON log lines have time, method, path, status, duration")
    finally:
        d.stop()
    # draining: /readyz 503 for --drain-seconds while requests are served
    d = Daemon(args, model, web, extra=["--drain-seconds", "2"], name="drain")
    try:
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        time.sleep(0.4)
        st_ready = d.request("GET", "/readyz")[0]
        st_pred, h, _ = d.json("POST", "/predict", {"pixels": [0] * 300 + [1] * 28 + [0] * 456})
        check(st_ready == 503, "draining: /readyz answers 503 (%d)" % st_ready)
        check(st_pred == 200 and h.get("connection", "").lower() == "close",
              "draining: /predict still answered, with Connection: close (%d)" % st_pred)
        rc = d.proc.wait(10)  # no second signal: that would cut the grace short
        dt = time.monotonic() - t0
        check(rc == 0 and 1.8 <= dt < 5, "draining: exits 0 after the grace (%.1fs)" % dt)
        d.stop()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    body = json.dumps({"pixels": [0] * 300 + [1] * 28 + [0] * 456}).encode()
    for sig in (signal.SIGTERM, signal.SIGINT):
        d = Daemon(args, model, web, name="sig%d" % sig)
        # a request in flight: headers and half the body sent
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
        time.sleep(0.3)
        d.send_signal(sig)
        time.sleep(0.3)
        check(d.proc.poll() is None, "signal %d: waits for the request in flight" % sig)
        # no new connections are accepted now
        try:
            c = socket.create_connection(("127.0.0.1", d.port), timeout=2)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = c.recv(100) == b""
            c.close()
        except OSError:
            refused = True
        check(refused, "signal %d: new connections are refused" % sig)
        s.sendall(body[100:])
        resp = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                resp += chunk
                if b"\r\n\r\n" in resp and b'"model"' in resp:
                    break
        except OSError:
            pass
        s.close()
        check(status_of(resp) == 200, "signal %d: the request in flight is answered (%r)"
              % (sig, resp[:30]))
        try:
            rc = d.proc.wait(10)
        except subprocess.TimeoutExpired:
            rc = None
        d.stop()
        check(rc == 0, "signal %d: exit status 0 (got %r)" % (sig, rc))

    # connection limits: --max-per-ip 4, --max-connections 8
    d = Daemon(args, model, web, extra=["--max-per-ip", "4", "--max-connections", "8",
                                        "--timeout", "3", "--threads", "2"], name="limits")
    try:
        idle = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(4)]
        time.sleep(0.2)
        s = socket.create_connection(("127.0.0.1", d.port), timeout=3)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(100)
        except OSError:
            got = b""
        s.close()
        check(got == b"", "a 5th connection from one address over --max-per-ip 4 is refused")
        t0 = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=3,
                                         source_address=("127.0.0.2", 0))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = s.recv(100)
            s.close()
        except OSError as e:
            got = repr(e).encode()
        check(status_of(got) == 200 and time.time() - t0 < 1.0,
              "127.0.0.2 is served while 127.0.0.1 holds its limit (%r)" % got[:30])
        # idle connections are closed after the timeout
        t0 = time.time()
        for c in idle:
            c.settimeout(10)
            try:
                c.recv(10)
            except OSError:
                pass
        check(time.time() - t0 < 6, "idle connections closed after --timeout 3")
        for c in idle:
            c.close()
        time.sleep(0.3)
        check(d.request("GET", "/healthz")[0] == 200, "served again once they are gone")
    finally:
        check(d.stop() == 0, "exit 0")


# ---------------------------------------------------------------------------

GROUPS = {"api": group_api, "forms": group_forms, "bad": group_bad,
          "concurrency": group_concurrency, "reload": group_reload,
          "signals": group_signals}


def clean_work(work):
    if os.path.exists(work):
        for name in os.listdir(work):
            if name == "trained.model":
                continue  # slow to make: keep it between runs
            p = os.path.join(work, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)


def main():
    return run_groups(GROUPS, __doc__, clean_work, fixture=True)

if __name__ == "__main__":
    sys.exit(main())
