#!/usr/bin/env python3
"""Hostile-client tests of `digitd serve`: what an attacker on the open
internet would try, each case one that failed on the daemon before the
work queue, the budgets and the new decoders (issue #10).

Groups (one CTest test each, label "hostile"):

  leaks       inputs that made decoders read uninitialised memory (a JPEG
              with a frame and no scan, a BMP whose pixels index past its
              palette) are refused, and the answer to the same bytes is
              identical after two different earlier bodies
  bombs       images whose header claims too many pixels are refused from
              the header, fast; a batch of them is bounded by the
              decoded-pixel budget
  memory      60 clients announcing 4 MiB bodies at once: the byte budget
              answers the excess 503 with Retry-After and the daemon's
              resident memory stays under a stated bound; 4 MiB v2 infer
              bodies of "0,0,0,..." (128 MB of cJSON nodes each, unchecked)
              are refused before a tree is built, and the peak stays low
  slow        clients trickling bytes are cut by the absolute read
              deadline, freeing their connection slots
  busy        /healthz p99 under 50 ms while two worst-case batches are
              decoded and run
  paths       a FIFO as the model (at start and on SIGHUP) never blocks,
              SIGTERM still exits within 2 s; `train --out` on a device
              node and on /dev/null is refused and the node is untouched;
              a second daemon on a busy port exits non-zero with "address
              in use"
  contain     started as root the daemon runs as `nobody` with a seccomp
              filter; small protocol defects: Transfer-Encoding gzip 501,
              a malformed Content-Length logged and counted as 400,
              numbers JSON does not allow refused alone and in a batch

Exit status: 0 passed, 1 failed, 77 skipped (a group that needs root).
"""
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from digitd_test import (Daemon, check, png, raw_exchange, run_groups,  # noqa: E402
                         status_of)

SKIP = 77

# A JPEG with a 16x16 one-component frame header and no scan at all.
JPEG_NO_SCAN = bytes.fromhex("ffd8ffc0000b080010001001011100ffd9")


def bmp_short_palette(w=16, h=16):
    """An 8-bit BMP whose palette has ONE entry while its pixels use
    indices 0..255: a decoder that trusts the pixels reads past the table."""
    row = bytes((x * 16 + y) & 0xFF for y in range(1) for x in range(w))
    stride = (w + 3) & ~3
    pixels = b"".join(bytes((i * 17 + r * 5) & 0xFF for i in range(w)) + b"\0" * (stride - w)
                      for r in range(h))
    palette = b"\xff\xff\xff\x00"
    off = 14 + 40 + len(palette)
    header = struct.pack("<2sIHHI", b"BM", off + len(pixels), 0, 0, off)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(pixels), 2835, 2835, 1, 1)
    del row
    return header + info + palette + pixels


def png_1bit(w, h):
    """A 1-bit gray PNG of w x h, white with a black bar in the middle (a
    "1"): a few KB that decode to w*h pixels (a decompression bomb)."""
    stride = (w + 7) // 8
    white = b"\0" + b"\xff" * stride
    bar = b"\0" + b"\xff" * (stride * 9 // 20) + b"\0" * (stride // 10) + \
        b"\xff" * (stride - stride * 9 // 20 - stride // 10)
    raw = b"".join(bar if h // 5 <= y < h * 4 // 5 else white for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_claiming(w, h):
    """A PNG whose header claims w x h, with a tiny IDAT."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def jpeg_claiming(source, w, h):
    """A valid baseline JPEG from the fuzz corpus with its frame header
    patched to claim w x h (its scan then ends early: only a decoder that
    checks the header first refuses it for its size)."""
    with open(os.path.join(source, "tests", "fuzz", "corpus", "fuzz_image", "gray.jpg"), "rb") as f:
        data = bytearray(f.read())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def model_and_web(args):
    """The shipped model and a tiny page, both readable by `nobody`."""
    d = os.path.join(args.work, "files")
    os.makedirs(os.path.join(d, "web"), exist_ok=True)
    model = os.path.join(d, "model.model")
    shutil.copy(os.path.join(args.source, "models", "mlp.model"), model)
    with open(os.path.join(d, "web", "index.html"), "w") as f:
        f.write("<!doctype html><title>t</title>\n")
    for p in (args.work, d, os.path.join(d, "web")):
        os.chmod(p, 0o755)
    os.chmod(model, 0o644)
    os.chmod(os.path.join(d, "web", "index.html"), 0o644)
    return model, os.path.join(d, "web")


def rss_kb(pid, field="VmRSS"):
    """Resident memory now (VmRSS), or its peak so far (VmHWM), in KB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def post(d, body, ctype, path="/predict", timeout=30):
    c = d.conn(timeout=timeout)
    return d.request("POST", path, body=body, headers={"Content-Type": ctype}, conn=c)


# ---------------------------------------------------------------------------

def group_leaks(args):
    model, web = model_and_web(args)
    d = Daemon(args, model, web, extra=["--workers", "1"])
    try:
        cases = [("a JPEG with a frame and no scan", JPEG_NO_SCAN, "image/jpeg"),
                 ("a BMP whose pixels index past a 1-entry palette", bmp_short_palette(),
                  "image/bmp")]
        earlier = [png(16, 16, [[255 if 6 <= x <= 9 else 0 for x in range(16)] for _ in range(16)]),
                   png(16, 16, [[255 if (x - 8) ** 2 + (y - 8) ** 2 in range(20, 40) else 0
                                 for x in range(16)] for y in range(16)])]
        for what, data, ctype in cases:
            answers = []
            for prior in earlier:
                # another client's body, refused and freed just before
                post(d, prior[:-12], "image/png")
                post(d, prior, "image/png")
                st, _, body = d.request("POST", "/predict?include=input", body=data,
                                        headers={"Content-Type": ctype})
                answers.append((st, body))
            check(all(400 <= st < 500 for st, _ in answers),
                  "%s is refused with a 4xx (%r)" % (what, [a[0] for a in answers]))
            check(answers[0] == answers[1],
                  "%s: the same answer after two different earlier bodies" % what)
            # the same through the JSON image form
            st, _, _ = d.json("POST", "/predict", {"image": base64.b64encode(data).decode()})
            check(400 <= st < 500, "%s in JSON is refused (%d)" % (what, st))
        check(d.request("GET", "/healthz")[0] == 200, "leaks: /healthz still 200")
    finally:
        check(d.stop() == 0, "leaks: clean exit")


def group_bombs(args):
    model, web = model_and_web(args)
    d = Daemon(args, model, web, extra=["--max-pixels", "4194304"])
    try:
        for what, data, ctype in [("PNG claiming 100000x100000", png_claiming(100000, 100000), "image/png"),
                                  ("PNG claiming 20000x3", png_claiming(20000, 3), "image/png"),
                                  ("JPEG claiming 5120x5120", jpeg_claiming(args.source, 5120, 5120), "image/jpeg")]:
            t0 = time.monotonic()
            st, _, body = post(d, data, ctype)
            dt = time.monotonic() - t0
            check(st == 422 and b"limit" in body,
                  "%s refused 422 from the header (%d %r)" % (what, st, body[:120]))
            check(dt < 1.0, "%s refused in %.3fs" % (what, dt))
        # A batch of 1-bit 4096x4096 PNGs, each a few KB: the pixel budget
        # (4 Mpixel here) refuses the batch without decoding 25 of them.
        bomb = base64.b64encode(png_1bit(4096, 4096)).decode()
        check(len(bomb) < 16000, "the bomb is small (%d bytes of base64)" % len(bomb))
        t0 = time.monotonic()
        st, _, body = d.json("POST", "/predict", [{"image": bomb}] * 25)
        dt = time.monotonic() - t0
        check(st == 422, "a batch of 25 pixel bombs is refused 422 (%d %r)" % (st, body))
        check(dt < 2.0, "the bomb batch is refused in %.2fs (the budget bounds the work)" % dt)
        check(d.request("GET", "/healthz")[0] == 200, "bombs: /healthz still 200")
    finally:
        check(d.stop() == 0, "bombs: clean exit")


def group_memory(args):
    model, web = model_and_web(args)
    budget_mb = 32
    d = Daemon(args, model, web, extra=["--max-inflight", "%dM" % budget_mb,
                                        "--max-connections", "200", "--max-per-ip", "0",
                                        "--read-deadline", "20"], name="memory")
    socks, statuses = [], []
    try:
        base = rss_kb(d.proc.pid)
        size = 4 * 1024 * 1024 - 1
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      b"Content-Length: %d\r\n\r\n" % size)
            socks.append(s)
        # every client sends most of its body, as fast as it can
        chunk = b"\x89PNG" + b"\0" * (256 * 1024 - 4)

        def feed(s):
            try:
                s.settimeout(0.5)
                sent = 0
                while sent < size - len(chunk):
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
        with concurrent.futures.ThreadPoolExecutor(30) as ex:
            list(ex.map(feed, socks))
        peak = rss_kb(d.proc.pid)
        for s in socks:
            try:
                s.settimeout(0.2)
                statuses.append(status_of(s.recv(4096)))
            except OSError:
                statuses.append(None)
        refused = sum(1 for st in statuses if st == 503)
        bound_mb = budget_mb * 2 + 40
        print("memory: RSS %d KB at start, %d KB with 60 clients; %d answered 503 at once"
              % (base, peak, refused), flush=True)
        check(refused >= 40, "most of 60 large bodies are refused 503 by the budget (%d)" % refused)
        check(peak < bound_mb * 1024, "RSS %d KB stays under %d MB" % (peak, bound_mb))
        st, h, _ = d.request("POST", "/predict", body=b"x" * 10,
                             headers={"Content-Type": "image/png"})
        check(st in (415, 503, 400), "a small request still gets an answer (%d)" % st)
        raw = raw_exchange(d.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                   b"Content-Length: 4194000\r\n\r\n", read_timeout=2)
        check(status_of(raw) == 503 and b"Retry-After" in raw,
              "a body over the free budget: 503 with Retry-After at once (%r)" % raw[:80])
    finally:
        for s in socks:
            s.close()
        check(d.stop() == 0, "memory: clean exit")
    v2_values_bound(args, model, web)


def v2_values_bound(args, model, web):
    """Two workers each given a 4 MiB flat array: what the JSON parser
    would have built (a node per value) must not show in the peak RSS."""
    d = Daemon(args, model, web, extra=["--workers", "2"], name="memory-v2")
    try:
        n = (4 * 1024 * 1024 - 200) // 2
        body = (b'{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[' +
                b"0," * (n - 1) + b'0]}]}')
        path = "/v2/models/%s/infer" % os.path.splitext(os.path.basename(model))[0]
        base = rss_kb(d.proc.pid, "VmHWM")
        answers = []
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            for _ in range(3):
                answers += list(ex.map(lambda _: post(d, body, "application/json", path=path),
                                       range(2)))
        grown = rss_kb(d.proc.pid, "VmHWM") - base
        print("memory-v2: peak RSS %d KB at start, grew %d KB over six 4 MiB bodies"
              % (base, grown), flush=True)
        check(all(st == 400 and b"values" in data for st, _, data in answers),
              "v2 bodies with more values than a batch can use: 400 (%s)" %
              [(st, data[:80]) for st, _, data in answers[:2]])
        # 13 MB in a plain build, 56 MB under ASan (redzones, quarantine);
        # 341 MB in a plain build when cJSON built its tree first
        check(grown < 128 * 1024, "peak RSS grew %d KB (< 128 MB; cJSON trees were 128 MB each)"
              % grown)
    finally:
        check(d.stop() == 0, "memory-v2: clean exit")


def group_slow(args):
    model, web = model_and_web(args)
    d = Daemon(args, model, web, extra=["--max-connections", "4", "--timeout", "2",
                                        "--read-deadline", "3"], name="slow")
    stop = threading.Event()

    def trickle():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      b"Content-Length: 100000\r\n\r\n")
            while not stop.is_set():
                s.sendall(b"a")  # one byte a second: never idle for --timeout
                time.sleep(1.0)
        except OSError:
            pass
    threads = [threading.Thread(target=trickle, daemon=True) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        served_after = None
        while time.monotonic() - t0 < 10:
            try:
                st, _, _ = d.request("GET", "/healthz")
                if st == 200:
                    served_after = time.monotonic() - t0
                    break
            except OSError:
                pass
            time.sleep(0.2)
        check(served_after is not None and served_after < 6,
              "a new client is served once trickling clients pass the 3 s read deadline "
              "(after %s s)" % (None if served_after is None else "%.1f" % served_after))
        time.sleep(0.3)
        check(" 408 " in d.log_text(), "cut clients are logged 408")
    finally:
        stop.set()
        check(d.stop() == 0, "slow: clean exit")


def group_busy(args):
    model, web = model_and_web(args)
    d = Daemon(args, model, web, extra=["--workers", "2"], name="busy")
    try:
        # Worst case within the limits: batches of images that decode to
        # nearly the whole pixel budget, sent by two clients at once.
        img = base64.b64encode(png_1bit(2048, 1900)).decode()
        batch = json.dumps([{"image": img}] * 4)
        done = threading.Event()
        results = []

        def worst():
            while not done.is_set():
                st, _, _ = d.request("POST", "/predict", body=batch,
                                     headers={"Content-Type": "application/json"})
                results.append(st)
        ts = [threading.Thread(target=worst, daemon=True) for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        lat = []
        c = d.conn(timeout=10)
        for _ in range(200):
            t0 = time.monotonic()
            st, _, _ = d.request("GET", "/healthz", conn=c)
            lat.append(time.monotonic() - t0)
            time.sleep(0.005)
        c.close()
        done.set()
        for t in ts:
            t.join(30)
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1]
        print("busy: /healthz p50 %.2f ms, p99 %.2f ms over %d; %d heavy batches answered %r"
              % (lat[len(lat) // 2] * 1e3, p99 * 1e3, len(lat), len(results),
                 sorted(set(results))), flush=True)
        check(len(results) >= 2, "the heavy batches were being processed (%d)" % len(results))
        check(p99 < 0.050, "/healthz p99 %.1f ms < 50 ms while two worst-case batches run"
              % (p99 * 1e3))
    finally:
        check(d.stop() == 0, "busy: clean exit")


def group_paths(args):
    model, web = model_and_web(args)
    fifo = os.path.join(args.work, "model.fifo")
    os.mkfifo(fifo)
    # a FIFO as the model at start: listening, not ready, not blocked
    d = Daemon(args, fifo, web, name="fifo")
    try:
        check(d.request("GET", "/readyz")[0] == 503, "FIFO model: /readyz 503")
        check("not a regular file" in d.log_text(), "FIFO model: refused as not a regular file")
        d.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check(d.request("GET", "/healthz")[0] == 200, "FIFO model: SIGHUP does not block")
        t0 = time.monotonic()
        rc = d.stop()
        check(rc == 0 and time.monotonic() - t0 < 2.0,
              "FIFO model: SIGTERM exits 0 within 2 s (%r, %.2fs)" % (rc, time.monotonic() - t0))
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    # a good model, then a FIFO swapped in and SIGHUP
    live = os.path.join(args.work, "live.model")
    shutil.copy(model, live)
    d = Daemon(args, live, web, name="fifo-reload")
    try:
        os.remove(live)
        os.mkfifo(live)
        d.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check(d.request("GET", "/readyz")[0] == 200, "SIGHUP onto a FIFO keeps the old model")
        t0 = time.monotonic()
        rc = d.stop()
        check(rc == 0 and time.monotonic() - t0 < 2.0, "after a FIFO reload SIGTERM exits in 2 s")
    finally:
        if d.proc.poll() is None:
            d.proc.kill()

    # a second daemon on the same port
    d = Daemon(args, model, web, name="first")
    try:
        r = subprocess.run([args.digitd, "serve", "--port", str(d.port), "--bind", "127.0.0.1",
                            "--model", model, "--web-root", web] +
                           (["--user", "root"] if os.geteuid() == 0 else []),
                           capture_output=True, text=True, timeout=10)
        check(r.returncode != 0 and "address in use" in r.stderr,
              "a second daemon on a busy port exits non-zero with 'address in use' (%d %r)"
              % (r.returncode, r.stderr[-200:]))
        check(d.request("GET", "/healthz")[0] == 200, "the first daemon keeps serving")
    finally:
        d.stop()

    # train --out on a device node and on /dev/null
    if os.geteuid() != 0:
        print("paths: not root: the device-node cases need mknod (skipped)")
        return
    node = os.path.join(args.work, "node")
    os.mknod(node, 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    mnist = os.environ.get("DIGITD_MNIST_DIR") or "/nonexistent"
    for target in (node, "/dev/null"):
        before = os.stat(target)
        r = subprocess.run([args.digitd, "train", "--data", mnist, "--out", target,
                            "--epochs", "1", "--layers", "784-10"],
                           capture_output=True, text=True, timeout=120)
        after = os.stat(target)
        check(r.returncode != 0 and "not a regular file" in r.stderr,
              "train --out %s is refused (%d %r)" % (target, r.returncode, r.stderr[-160:]))
        check(stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and
              after.st_ino == before.st_ino, "%s is untouched" % target)


def group_contain(args):
    model, web = model_and_web(args)
    if os.geteuid() == 0:
        d = Daemon(args, model, web, extra=["--user", "nobody"], name="contain")
        try:
            with open("/proc/%d/status" % d.proc.pid) as f:
                status = f.read()
            uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
            check(all(u != "0" for u in uid_line.split()[1:]),
                  "started as root, serve runs as nobody (%s)" % uid_line)
            check(d.request("GET", "/readyz")[0] == 200,
                  "as nobody the model was read (/readyz 200)")
        finally:
            check(d.stop() == 0, "contain: clean exit as nobody")
    d = Daemon(args, model, web, name="seccomp")
    try:
        with open("/proc/%d/status" % d.proc.pid) as f:
            status = f.read()
        sc = [l for l in status.splitlines() if l.startswith("Seccomp:")]
        check(sc and sc[0].split()[1] == "2", "a seccomp filter is on (%r)" % sc)
        # the filter allows everything serving needs: every route answers
        check(d.request("GET", "/")[0] == 200, "seccomp: the page is served")
        st, _, _ = d.json("POST", "/predict", {"pixels": [0.0] * 392 + [1.0] * 392})
        check(st == 200, "seccomp: a prediction is answered (%d)" % st)
        d.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        check("reloaded" in d.log_text(), "seccomp: SIGHUP reloads the model")
        check(d.request("GET", "/metrics")[0] == 200, "seccomp: /metrics")

        raw = raw_exchange(d.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                   b"Transfer-Encoding: gzip\r\n\r\nabc", read_timeout=3)
        check(status_of(raw) == 501, "Transfer-Encoding gzip is answered 501 (%r)" % raw[:60])
        raw = raw_exchange(d.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                   b"Content-Length: 12abc\r\n\r\n", read_timeout=3)
        check(status_of(raw) == 400, "a malformed Content-Length is answered 400 (%r)" % raw[:60])
        time.sleep(0.3)
        _, _, metrics = d.request("GET", "/metrics")
        check(b'status="500"' not in metrics, "no refusal is counted as 500 in /metrics")
        log = d.log_text()
        check(" 501 " in log and " 400 " in log, "both refusals are in the access log")
        for bad in ("+1", ".5", "007", "1.", "-", "0x1"):
            body = '{"pixels": [%s' % bad + ", 0" * 783 + "]}"
            st1, _, _ = d.request("POST", "/predict", body=body,
                                  headers={"Content-Type": "application/json"})
            st2, _, _ = d.request("POST", "/predict", body="[" + body + "]",
                                  headers={"Content-Type": "application/json"})
            check(st1 == 400 and st2 == 400,
                  "%r is not a JSON number: 400 alone and in a batch (%d, %d)" % (bad, st1, st2))
    finally:
        check(d.stop() == 0, "seccomp: clean exit")


GROUPS = {"leaks": group_leaks, "bombs": group_bombs, "memory": group_memory,
          "slow": group_slow, "busy": group_busy, "paths": group_paths,
          "contain": group_contain}


def main():
    return run_groups(GROUPS, __doc__, lambda work: shutil.rmtree(work, ignore_errors=True))

if __name__ == "__main__":
    sys.exit(main())
