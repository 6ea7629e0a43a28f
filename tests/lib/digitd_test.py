"""What the HTTP, fault and hostile tests share: a check counter, the real
`digitd serve` process on a free loopback port, raw socket exchanges, and
small encoders for test inputs. Standard library only."""
import argparse
import gzip
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time
import zlib

# ---------------------------------------------------------------------------
# Reporting

class Failures:
    def __init__(self):
        self.items = []
        self.checks = 0

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.items.append(what)
            print("FAIL:", what, flush=True)
        return cond


F = Failures()


def check(cond, what):
    return F.check(cond, what)


# ---------------------------------------------------------------------------
# The daemon

class Daemon:
    """A `digitd serve` process on a free port; its stderr goes to a file."""

    def __init__(self, args, model, web, extra=(), env=None, name="digitd",
                 expect_listen=True):
        self.log_path = os.path.join(args.work, name + ".log")
        self.log = open(self.log_path, "wb")
        cmd = [args.digitd, "serve", "--port", "0", "--bind", "127.0.0.1",
               "--model", model, "--web-root", web, *extra]
        # Started as root the daemon becomes `nobody`, who may not reach
        # a test's files (a clone under /root); the tests of that drop
        # (tests/hostile) name --user themselves.
        if os.geteuid() == 0 and "--user" not in extra:
            cmd += ["--user", "root"]
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("DIGITD_") and k != "DIGITD_MNIST_DIR":
                del e[k]
        if env:
            e.update(env)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=e)
        self.port = None
        if expect_listen:
            self.port = self._wait_port()

    def _wait_port(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()
            for line in text.splitlines():
                if "listening on http://127.0.0.1:" in line:
                    rest = line.split("listening on http://127.0.0.1:")[1]
                    return int(rest.split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError("digitd exited early:\n" + text)
            time.sleep(0.02)
        raise RuntimeError("digitd did not start listening:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, conn=None):
        """Returns (status, headers dict with lowercase names, body bytes)."""
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, obj=None, body=None, ctype="application/json", **kw):
        if obj is not None:
            body = json.dumps(obj)
        st, h, data = self.request(method, path, body=body,
                                   headers={"Content-Type": ctype} if ctype else {}, **kw)
        try:
            return st, h, json.loads(data)
        except ValueError:
            return st, h, None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            check(False, "digitd did not exit within %ds of signal %d" % (timeout, sig))
        self.log.close()
        return rc


def cpu_prefers_int8():
    """Whether --precision auto runs calibrated models in int8 here: the
    CPU has AVX512-VNNI (and AVX512-BW), read independently of digitd."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        return False
    return "avx512_vnni" in flags and "avx512bw" in flags


def raw_exchange(port, data, read_timeout=5.0, half_close=False):
    """Sends bytes over a fresh socket and returns everything read until the
    server closes or read_timeout passes without data."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------
# MNIST and images

def load_mnist(n):
    d = os.environ.get("DIGITD_MNIST_DIR", "")
    if not d:
        return None

    def read(name):
        for cand in (name + ".gz", name):
            p = os.path.join(d, cand)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    raw = f.read()
                return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        raise FileNotFoundError(os.path.join(d, name))
    imgs = read("t10k-images-idx3-ubyte")[16:]
    labs = read("t10k-labels-idx1-ubyte")[8:]
    return [(list(imgs[i * 784:(i + 1) * 784]), labs[i]) for i in range(n)]


def png(w, h, rows, color_type=0):
    """rows: h lists of w*channels byte values. color_type 0 gray, 4 gray+
    alpha, 2 RGB, 6 RGBA."""
    raw = b"".join(b"\0" + bytes(r) for r in rows)

    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))




# ---------------------------------------------------------------------------
# The command line every test script shares

def run_groups(groups, doc, clean_work, fixture=False):
    """Parses --group --digitd --source --work [--fixture], lets
    clean_work(path) empty the work folder its own way, runs the group and
    prints its tally. Returns the exit status: 0 passed, 1 failed."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--group", choices=sorted(groups), required=True)
    ap.add_argument("--digitd", required=True)
    if fixture:
        ap.add_argument("--fixture", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    args.digitd = os.path.abspath(args.digitd)
    args.source = os.path.abspath(args.source)
    args.work = os.path.abspath(args.work)
    clean_work(args.work)
    os.makedirs(args.work, exist_ok=True)
    groups[args.group](args)
    print("%s: %d checks, %d failed" % (args.group, F.checks, len(F.items)), flush=True)
    return 1 if F.items else 0
