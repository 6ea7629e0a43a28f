#!/usr/bin/env python3
"""test_probe.py: `digitd probe`, the container health check, against a real
`digitd serve` and against fake servers (standard library only).

  test_probe.py --digitd PATH --fixture PATH --source REPO --work DIR

Exit 0 when every check passes, 1 otherwise; prints one line per check.
--fixture is tests/http's http_fixture (it writes an untrained model file).
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time

FAILED = []


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail and not ok else ''}")
    if not ok:
        FAILED.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def probe(digitd, *args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    e.update(env or {})
    t0 = time.monotonic()
    p = subprocess.run([digitd, "probe", *args], env=e, capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def wait_listening(port, limit=20.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def serve(digitd, source, model, port):
    e = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    p = subprocess.Popen([digitd, "serve", "--port", str(port), "--bind", "127.0.0.1",
                          "--model", model, "--web-root", os.path.join(source, "web"),
                          "--quiet"], env=e, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    if not wait_listening(port):
        p.kill()
        p.wait()
        raise RuntimeError("digitd serve did not listen")
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def fake_server(answer, hold=0.0):
    """A one-connection TCP server that reads a request and sends `answer`
    (bytes, or None to stay silent for `hold` seconds). Returns its port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def run():
        s.settimeout(20)
        try:
            c, _ = s.accept()
            c.settimeout(5)
            try:
                c.recv(4096)
                if answer is None:
                    time.sleep(hold)
                else:
                    c.sendall(answer)
            except OSError:
                pass
            c.close()
        except OSError:
            pass
        s.close()

    threading.Thread(target=run, daemon=True).start()
    return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--digitd", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    d = a.digitd

    rc, out, _ = probe(d, "--help")
    check("--help exits 0 and names --port", rc == 0 and "--port" in out, out)
    rc, out, _ = probe(d, "--port", "0")
    check("--port 0 is refused with status 2", rc == 2, out)
    rc, out, _ = probe(d, env={"DIGITD_PORT": "http"})
    check("a bad DIGITD_PORT is refused with status 2", rc == 2, out)
    rc, out, _ = probe(d, "extra")
    check("a stray argument is refused with status 2", rc == 2, out)

    port = free_port()
    rc, out, _ = probe(d, "--port", str(port))
    check("nothing listening: status 1", rc == 1 and "refused" in out.lower(), out)

    # A daemon without a model answers /readyz with 503: not ready.
    port = free_port()
    p = serve(d, a.source, os.path.join(a.work, "missing.model"), port)
    try:
        rc, out, _ = probe(d, env={"DIGITD_PORT": str(port)})
        check("daemon without a model (503): status 1", rc == 1 and "503" in out, out)
    finally:
        stop(p)

    # A daemon with a model: ready.
    model = os.path.join(a.work, "probe.model")
    subprocess.run([a.fixture, "model", model, "784-32-10", "1"], check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    p = serve(d, a.source, model, port)
    try:
        rc, out, _ = probe(d, env={"DIGITD_PORT": str(port)})
        check("ready daemon, port from DIGITD_PORT: status 0", rc == 0, out)
        rc, out, _ = probe(d, "--port", str(port), env={"DIGITD_PORT": "1"})
        check("--port wins over DIGITD_PORT", rc == 0, out)
        rc, out, _ = probe(d, "--port", str(port), "--path", "/no-such-page")
        check("--path to a 404: status 1", rc == 1 and "404" in out, out)
        rc, out, _ = probe(d, "-q", "--port", str(port), "--path", "/no-such-page")
        check("--quiet prints nothing", rc == 1 and out == "", out)
        rc, out, _ = probe(d, "--port", str(port),
                           env={"DIGITD_BIND": "0.0.0.0"})
        check("DIGITD_BIND=0.0.0.0: asks 127.0.0.1", rc == 0, out)
    finally:
        stop(p)

    # Servers that are not a ready digitd.
    port = fake_server(b"SSH-2.0-OpenSSH_9.2\r\n")
    rc, out, _ = probe(d, "--port", str(port))
    check("a non-HTTP answer: status 1", rc == 1 and "not HTTP" in out, out)
    port = fake_server(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    rc, out, _ = probe(d, "--port", str(port))
    check("any HTTP 200 on /readyz: status 0", rc == 0, out)
    port = fake_server(None, hold=5)
    rc, out, took = probe(d, "--port", str(port), "--timeout", "0.5")
    check("a silent server: status 1 after --timeout (0.5 s)",
          rc == 1 and "timed out" in out and took < 2.5, f"{out} ({took:.2f} s)")

    print(f"probe: {'all passed' if not FAILED else str(len(FAILED)) + ' failed'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
