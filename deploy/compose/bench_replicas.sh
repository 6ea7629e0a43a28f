#!/bin/bash
# bench_replicas.sh: requests per second through haproxy (deploy/compose/
# haproxy.cfg) with 1, 2 and 3 digitd replicas of one thread each, on this
# machine's loopback, with wrk. Not a test: a measurement for docs/deploy.md.
#
#   deploy/compose/bench_replicas.sh [build/digitd] [model] [seconds]
#
# Each run: wrk -t1 -c16 for SECONDS (default 5) posting one JSON-pixels
# body; also one replica directly, without haproxy, for haproxy's cost.
# Needs wrk and haproxy (scripts/install-deps.sh bench).
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIGITD=${1:-$REPO/build/digitd}
MODEL=${2:-$REPO/models/default.model}
SECS=${3:-5}
WORK=$(mktemp -d /tmp/digitd-bench-replicas.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
body=$(python3 -c 'import json; print(json.dumps({"pixels": [255 if 12 <= i % 28 <= 15 and 4 <= i // 28 <= 23 else 0 for i in range(784)]}))')
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA
ports=()
for i in 1 2 3; do
    p=$(free_port)
    "$DIGITD" serve --port "$p" --model "$MODEL" --threads 1 --quiet --web-root "$REPO/web" 2>/dev/null &
    PIDS+=($!)
    ports+=("$p")
done
sleep 1
run() { # label port
    local out
    out=$(wrk -t1 -c16 -d"${SECS}s" -s "$WORK/post.lua" "http://127.0.0.1:$2/predict" 2>&1)
    printf '%-28s %10s req/s  (non-2xx: %s)\n' "$1" \
        "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        "$(echo "$out" | awk '/Non-2xx/ {print $NF}' | grep . || echo 0)"
}
echo "model $(basename "$(readlink -f "$MODEL")"), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
run "1 replica, direct" "${ports[0]}"
for n in 1 2 3; do
    lb=$(free_port)
    servers=""
    for ((i = 0; i < n; i++)); do servers+="    server d$i 127.0.0.1:${ports[$i]} check\n"; done
    sed -e '/^    server /d' -e "s|^    # SERVERS.*|$servers|" "$REPO/deploy/compose/haproxy.cfg" > "$WORK/h$n.cfg"
    DIGITD_LB_BIND=127.0.0.1:$lb haproxy -db -f "$WORK/h$n.cfg" >/dev/null 2>&1 &
    hp=$!
    sleep 1.5
    run "$n replica(s) behind haproxy" "$lb"
    kill $hp
    wait $hp 2>/dev/null || true
done
