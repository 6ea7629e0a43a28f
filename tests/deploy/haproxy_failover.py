#!/usr/bin/env python3
"""haproxy failover test, without Docker: Debian's haproxy on 127.0.0.1 in
front of three `digitd serve` processes, with deploy/compose/haproxy.cfg
(only its bind address and server lines replaced).

A bounded load (a few client threads, keep-alive, POST /predict with JSON
pixels, for at most --seconds) runs through the balancer while:
  1. replica 1 is killed with SIGKILL, later started again;
  2. replica 2 is stopped with SIGTERM (it drains), later started again;
  3. a new model is rolled through all replicas one by one: each is
     stopped with SIGTERM, started again on the new model, and the roll
     waits until it is back in service before touching the next.
It asserts zero failed requests (every answer 200, no connection error),
that every answer names a model that was being served (old or new), and
that after the roll only the new model answers.

Exit status: 0 passed, 1 failed, 77 skipped (no haproxy: it is installed
by scripts/install-deps.sh).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lb_load import Load  # noqa: E402

SKIP = 77
REPLICAS = 3


def log(msg):
    print("[haproxy_failover %6.1fs] %s" % (time.time() - T0, msg), flush=True)


T0 = time.time()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Replica:
    def __init__(self, args, index, port):
        self.args, self.index, self.port = args, index, port
        self.proc = None

    def start(self, model):
        self.log = open(os.path.join(self.args.work, "digitd%d.log" % self.index), "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
        self.proc = subprocess.Popen(
            [self.args.digitd, "serve", "--port", str(self.port), "--bind", "127.0.0.1",
             "--model", model, "--web-root", os.path.join(self.args.source, "web"), "--quiet",
             "--threads", "1"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("replica %d exited: see its log" % self.index)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("replica %d not ready" % self.index)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout)
        self.log.close()
        return rc


def model_id(args, path):
    """The id digitd reports for a model file: ask a throwaway daemon."""
    port = free_port()
    r = Replica(args, 99, port)
    r.start(path)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/model")
    mid = json.loads(c.getresponse().read())["id"]
    c.close()
    r.signal(signal.SIGTERM)
    r.wait()
    return mid


def wait_in_service(lb_port, seconds):
    """haproxy brings a replica back after `rise` checks: wait that long."""
    time.sleep(seconds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--digitd", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    ap.add_argument("--seconds", type=float, default=90, help="upper bound of the load")
    ap.add_argument("--threads", type=int, default=3)
    args = ap.parse_args()
    if not os.access(args.haproxy, os.X_OK):
        print("haproxy_failover: SKIPPED: no haproxy (apt-get install haproxy)")
        return SKIP
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    old_model = os.path.join(args.work, "old.model")
    new_model = os.path.join(args.work, "new.model")
    shutil.copy(os.path.join(args.source, "models", "mlp.model"), old_model)
    shutil.copy(os.path.join(args.source, "models", "cnn.model"), new_model)
    old_id, new_id = model_id(args, old_model), model_id(args, new_model)
    log("models: old %s, new %s" % (old_id, new_id))

    replicas = [Replica(args, i + 1, free_port()) for i in range(REPLICAS)]
    for r in replicas:
        r.start(old_model)
    lb_port = free_port()
    with open(os.path.join(args.source, "deploy", "compose", "haproxy.cfg")) as f:
        cfg = f.read()
    servers = "".join("    server digitd%d 127.0.0.1:%d check\n" % (r.index, r.port) for r in replicas)
    cfg = re.sub(r"(?m)^    server .*\n", "", cfg).replace(
        "    # SERVERS (one line per replica; the test replaces this block)\n", servers)
    cfg_path = os.path.join(args.work, "haproxy.cfg")
    with open(cfg_path, "w") as f:
        f.write(cfg)
    env = dict(os.environ, DIGITD_LB_BIND="127.0.0.1:%d" % lb_port)
    hap_log = open(os.path.join(args.work, "haproxy.log"), "wb")
    hap = subprocess.Popen([args.haproxy, "-db", "-f", cfg_path], env=env,
                           stdout=hap_log, stderr=subprocess.STDOUT)
    failures = []
    load = None
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", lb_port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        time.sleep(1.5)  # every replica's first checks
        load = Load(lb_port, args.threads, time.time() + args.seconds)
        load.start()
        time.sleep(2)

        log("SIGKILL replica 1")
        replicas[0].signal(signal.SIGKILL)
        replicas[0].wait()
        time.sleep(2)
        replicas[0].start(old_model)
        wait_in_service(lb_port, 1.5)

        log("SIGTERM replica 2 (drain)")
        replicas[1].signal(signal.SIGTERM)
        if replicas[1].wait() != 0:
            failures.append("replica 2 did not exit 0 on SIGTERM")
        time.sleep(1)
        replicas[1].start(old_model)
        wait_in_service(lb_port, 1.5)

        for r in replicas:
            log("rolling replica %d to the new model" % r.index)
            r.signal(signal.SIGTERM)
            r.wait()
            r.start(new_model)
            wait_in_service(lb_port, 1.5)
        time.sleep(1)
        with load.lock:
            tail = list(load.last_models)
        load.join()
        if time.time() > load.deadline:
            failures.append("the load's time bound ran out before the scenario finished")
    finally:
        if load is not None:
            load.join()
        hap.terminate()
        hap.wait()
        hap_log.close()
        for r in replicas:
            if r.proc and r.proc.poll() is None:
                r.signal(signal.SIGTERM)
                r.wait()

    log("answers: %d ok, %d failed; by model: %s" % (load.ok, len(load.failures), load.models))
    for f in load.failures[:10]:
        failures.append("request failed: " + f)
    if load.failures:
        failures.append("%d failed requests in all" % len(load.failures))
    if load.ok < 100:
        failures.append("only %d answers: the load did not run" % load.ok)
    unknown = set(load.models) - {old_id, new_id}
    if unknown:
        failures.append("answers from models that were never served: %s" % unknown)
    if load.models.get(new_id, 0) == 0 or load.models.get(old_id, 0) == 0:
        failures.append("expected answers from both models: %s" % load.models)
    if any(m != new_id for m in tail):
        failures.append("after the roll an old model still answered: %s" % tail[-10:])
    checks = 6
    for f in failures:
        print("FAIL:", f)
    print("%d passed, %d failed" % (checks - min(checks, len(failures)), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
