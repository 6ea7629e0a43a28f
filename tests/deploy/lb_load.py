#!/usr/bin/env python3
"""lb_load.py: a bounded load on a balancer, for the failover tests.

Client threads keep-alive POST /predict (JSON pixels of a few strokes) to
127.0.0.1:PORT until stopped or until the deadline, at most a few hundred
requests a second, and record every failure (a status other than 200, a
connection error) and which model answered each request.

As a program (tests/deploy/compose_failover.sh):
  lb_load.py --port P --seconds S --stop-file F --out RESULT.json
runs until F exists or S seconds pass, then writes
{"ok": n, "failures": [...], "models": {id: count}, "last_models": [...],
 "timed_out": bool}.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time


class Load:
    """Client threads posting to the balancer until stopped (or a deadline)."""

    def __init__(self, port, threads, deadline):
        self.port, self.deadline = port, deadline
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.models = {}
        self.last_models = []
        bodies = []
        for k in range(4):  # vertical strokes at a few places
            x0 = 10 + 2 * k
            px = [255 if x0 <= i % 28 <= x0 + 3 and 4 <= i // 28 <= 23 else 0 for i in range(784)]
            bodies.append(json.dumps({"pixels": px}))
        self.bodies = bodies
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def run(self, i):
        rnd = random.Random(i)
        conn = None
        while not self.stop.is_set() and time.time() < self.deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/predict", body=rnd.choice(self.bodies),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    with self.lock:
                        self.failures.append("status %d: %r" % (r.status, data[:200]))
                    continue
                mid = json.loads(data).get("model")
                with self.lock:
                    self.ok += 1
                    self.models[mid] = self.models.get(mid, 0) + 1
                    self.last_models.append(mid)
                    del self.last_models[:-50]
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError) as e:
                with self.lock:
                    self.failures.append("%s: %s" % (type(e).__name__, e))
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.002)  # bounded: a few hundred requests a second at most
        if conn is not None:
            conn.close()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    load = Load(args.port, args.threads, time.time() + args.seconds)
    load.start()
    while not os.path.exists(args.stop_file) and time.time() < load.deadline:
        time.sleep(0.1)
    timed_out = not os.path.exists(args.stop_file)
    load.join()
    with open(args.out, "w") as f:
        json.dump({"ok": load.ok, "failures": load.failures, "models": load.models,
                   "last_models": load.last_models, "timed_out": timed_out}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
