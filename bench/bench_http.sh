#!/bin/sh
# bench_http.sh: HTTP throughput and latency of `digitd serve`, side by side
# in one run with a Python peer (Flask under gunicorn, 2 workers, serving
# the same network: bench/peer_flask.py) and with nginx serving a 100-byte
# static file (the HTTP ceiling of this machine). All on loopback, every
# load bounded in time.
#
#   bench/bench_http.sh [DIGITD_BINARY] [MODEL_FILE]
#
# defaults: build/digitd and models/default.model. Environment:
#   DURATION=10         seconds per wrk run
#   ROUNDS=2            rounds of the JSON pair (digitd, then the peer)
#   DIGITD_MNIST_DIR    MNIST files (the payload is a real test digit)
#   THREADS=2 CONNECTIONS=16   wrk's settings
# Needs wrk, gunicorn, nginx and Debian's python3-flask, -numpy, -pil.
# Prints requests/s, p50, p99, the CPU steal (on a VM: time the host ran
# something else on its vCPUs) and the vCPUs' placement before and after
# (bench/bench_pingpong.c: a cache line's round trip between them, 50-70
# ns in one core complex of the host, 300-340 ns across two) per target, the ratios digitd/peer, and
# digitd's resident memory after the load. The JSON pair, which the
# targets are about, runs ROUNDS times, digitd and peer alternating: a
# slow minute of this shared machine then lands on both sides or on one
# round only. Every round is printed, and the ratio of each side's best
# round, as run-train-bench.sh does.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
digitd=$(cd "$(dirname "${1:-$top/build/digitd}")" && pwd)/$(basename "${1:-$top/build/digitd}")
model=$(cd "$(dirname "${2:-$top/models/default.model}")" && pwd)/$(basename "${2:-$top/models/default.model}")
duration=${DURATION:-10}
rounds=${ROUNDS:-2}
threads=${THREADS:-2}
conns=${CONNECTIONS:-16}
case $rounds in
'' | *[!0-9]*) rounds=0 ;;
esac
[ "$rounds" -ge 1 ] || { echo "bench_http.sh: ROUNDS must be a whole number of at least 1" >&2; exit 1; }
py=/usr/bin/python3

for tool in wrk gunicorn nginx; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
        { echo "bench_http.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$digitd" ] || { echo "bench_http.sh: no digitd binary at $digitd (build first)" >&2; exit 1; }
[ -f "$model" ] || { echo "bench_http.sh: no model at $model" >&2; exit 1; }
[ -n "${DIGITD_MNIST_DIR:-}" ] || { echo "bench_http.sh: set DIGITD_MNIST_DIR (MNIST IDX files)" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx workers run as another user when started by root
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# ---- payloads: a real test digit as JSON pixels and as a 280x280 canvas
# PNG (transparent background, opaque black ink, as a browser exports it)
"$py" - "$DIGITD_MNIST_DIR" "$tmp" <<'EOF'
import gzip, json, os, struct, sys, zlib
d, out = sys.argv[1], sys.argv[2]
def read(name):
    for cand in (name + ".gz", name):
        p = os.path.join(d, cand)
        if os.path.exists(p):
            raw = open(p, "rb").read()
            return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    sys.exit("no " + name + " in " + d)
px = list(read("t10k-images-idx3-ubyte")[16:16 + 784])
open(os.path.join(out, "pixels.json"), "w").write(json.dumps({"pixels": px}))
rows = []
for y in range(280):
    r = bytearray()
    for x in range(280):
        v = px[(y // 10) * 28 + x // 10]
        r += bytes((0, 0, 0, v))
    rows.append(b"\0" + bytes(r))
def chunk(t, b):
    return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xffffffff)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 280, 280, 8, 6, 0, 0, 0)) +
       chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))
open(os.path.join(out, "canvas.png"), "wb").write(png)
os.makedirs(os.path.join(out, "static"))
open(os.path.join(out, "static", "small.txt"), "w").write("x" * 99 + "\n")
EOF

cat > "$tmp/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BODY_TYPE")
EOF

free_port() {
    "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # URL: up to 15 s
    i=0
    until "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 150 ] || { echo "bench_http.sh: $1 did not come up" >&2; exit 1; }
        sleep 0.1
    done
}

# ---- the servers
# digitd as its defaults make it (HTTP threads and inference workers, and
# --precision auto: int8 for a calibrated model where the CPU has
# AVX512-VNNI), the dynamic batcher's settings from the environment when
# given (BATCH, BATCH_WAIT_US); and a second digitd, idle until its own
# run, forced to float32 (the network exactly as the peer runs it).
start_digitd() { # PORT LOG [FLAGS...]
    port=$1 log=$2
    shift 2
    "$digitd" serve --quiet --bind 127.0.0.1 --port "$port" --model "$model" \
        --web-root "$tmp/static" ${BATCH:+--batch "$BATCH"} \
        ${BATCH_WAIT_US:+--batch-wait-us "$BATCH_WAIT_US"} ${DIGITD_USER:+--user "$DIGITD_USER"} \
        "$@" 2>"$log" &
}
p_digitd=$(free_port)
start_digitd "$p_digitd" "$tmp/digitd.log"
digitd_pid=$!
pids="$pids $digitd_pid"
p_fp32=$(free_port)
start_digitd "$p_fp32" "$tmp/digitd-fp32.log" --precision fp32
pids="$pids $!"

p_peer=$(free_port)
# SkylakeX kernels for the peer's OpenBLAS only where the CPU has AVX-512
# (elsewhere they die of SIGILL and the peer answers nothing)
coretype=
grep -qw avx512f /proc/cpuinfo 2>/dev/null && coretype=SkylakeX
env DIGITD_MODEL="$model" ${coretype:+OPENBLAS_CORETYPE=$coretype} OPENBLAS_NUM_THREADS=1 \
    gunicorn -w 2 -b "127.0.0.1:$p_peer" --chdir "$here" --log-level warning \
    peer_flask:app 2>"$tmp/peer.log" &
pids="$pids $!"

p_nginx=$(free_port)
cat > "$tmp/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx-body;
    proxy_temp_path $tmp/nginx-proxy;
    fastcgi_temp_path $tmp/nginx-fcgi;
    uwsgi_temp_path $tmp/nginx-uwsgi;
    scgi_temp_path $tmp/nginx-scgi;
    server {
        listen 127.0.0.1:$p_nginx;
        root $tmp/static;
        default_type text/plain;
    }
}
EOF
"$nginx_bin" -c "$tmp/nginx.conf" -e "$tmp/nginx.err" 2>/dev/null &
pids="$pids $!"

wait_http "http://127.0.0.1:$p_digitd/readyz"
wait_http "http://127.0.0.1:$p_fp32/readyz"
wait_http "http://127.0.0.1:$p_peer/healthz"
wait_http "http://127.0.0.1:$p_nginx/small.txt"

# ---- the runs: one wrk per target and payload, one after the other
results="$tmp/results"
: > "$results"
. "$here/cpu_steal.sh" # cpu_ticks, steal_pct: the host's share of each run
cc -std=c11 -O2 -pthread "$here/bench_pingpong.c" -o "$tmp/pingpong"
roundtrip() { "$tmp/pingpong" | sed -n 's/^roundtrip_ns=\([^ ]*\).*/\1/p'; }
run() { # NAME URL [BODY_FILE BODY_TYPE]
    name=$1 url=$2
    rt0=$(roundtrip)
    before=$(cpu_ticks)
    if [ $# -ge 4 ]; then
        out=$(BODY_FILE=$3 BODY_TYPE=$4 wrk -t"$threads" -c"$conns" -d"${duration}s" \
              --latency -s "$tmp/post.lua" "$url")
    else
        out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$url")
    fi
    steal=$(steal_pct "$before" "$(cpu_ticks)")
    rt="$rt0/$(roundtrip)ns"
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    errs=$(echo "$out" | awk '/Socket errors/ {print $0}')
    echo "$name $rps $p50 $p99 ${bad:-0} $steal $rt" >> "$results"
    printf '%-28s %10s req/s  p50 %9s  p99 %9s  steal %4s  vcpus %9s  non-2xx %s %s\n' \
        "$name" "$rps" "$p50" "$p99" "$steal" "$rt" "${bad:-0}" "$errs"
}

echo "wrk -t$threads -c$conns -d${duration}s on loopback; gunicorn -w 2, nginx 2 workers; digitd's defaults:"
sed -n 's/^digitd: //p' "$tmp/digitd.log" | grep -E 'precision|listening' | sed 's/^/  /'
r=1
while [ $r -le "$rounds" ]; do
    run "digitd_json#$r" "http://127.0.0.1:$p_digitd/predict" "$tmp/pixels.json" application/json
    run "peer_json#$r" "http://127.0.0.1:$p_peer/predict" "$tmp/pixels.json" application/json
    r=$((r + 1))
done
run digitd_json_fp32 "http://127.0.0.1:$p_fp32/predict" "$tmp/pixels.json" application/json
run digitd_png "http://127.0.0.1:$p_digitd/predict" "$tmp/canvas.png" image/png
run peer_png "http://127.0.0.1:$p_peer/predict" "$tmp/canvas.png" image/png
run digitd_static100 "http://127.0.0.1:$p_digitd/small.txt"
run nginx_static100 "http://127.0.0.1:$p_nginx/small.txt"

# the batch sizes the dynamic batcher formed over all the runs, and the
# requests the HTTP threads ran themselves (--inline-macs: the MLP's JSON)
echo
echo "forward passes by batch size (digitd_batches_total):"
"$py" -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
    "http://127.0.0.1:$p_digitd/metrics" | awk -F'[{}" ]+' '/^digitd_batches_total\{/ {
        n[$3] = $4; total += $4; inputs += $3 * $4 }
    /^digitd_inline_jobs_total / { here = $2 }
    END { for (k in n) printf "  size %-4s %10d passes\n", k, n[k];
          if (total) printf "  mean inputs per pass: %.2f\n", inputs / total;
          printf "  of them on the HTTP threads, unbatched (digitd_inline_jobs_total): %d\n", here;
          # (the inline requests here are of one image each)
          if (total > here) printf "  mean inputs per pass of the workers: %.2f\n", (inputs - here) / (total - here) }' | sort -t' ' -k2 -n

rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$digitd_pid/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$digitd_pid/status")

# ---- ratios (latencies as wrk prints them: us, ms or s)
"$py" - "$results" "$rss_kb" "$hwm_kb" <<'EOF'
import sys
rows, rounds, steal, rt = {}, {}, {}, {}
for line in open(sys.argv[1]):
    name, rps, p50, p99, bad, steal[name], rt[name] = line.split()
    rows[name] = (float(rps), p50, p99, int(bad))
    if "#" in name: # a round: rows[name without it] is its best
        base = name.split("#")[0]
        rounds.setdefault(base, []).append(rows[name])
        if base not in rows or rows[name][0] > rows[base][0]:
            rows[base] = rows[name]
def ms(t):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if t.endswith(unit):
            return float(t[:-len(unit)]) * f
    return float("nan")
print()
d, p = rounds["digitd_json"], rounds["peer_json"]
print("json rounds digitd/gunicorn: " + " / ".join(
    f"{a[0]:.0f} vs {b[0]:.0f} req/s {a[0] / b[0]:.1f}x p99 {ms(a[2]):.2f} ms" for a, b in zip(d, p)))
print("json rounds' cpu steal (time the host gave this VM's vCPUs to others), digitd/gunicorn: " +
      " / ".join(f"{steal[f'digitd_json#{i}']} {steal[f'peer_json#{i}']}" for i in range(1, len(d) + 1)))
print("json rounds' vCPU round trip before/after (over ~150 ns: the host had them in different "
      "core complexes), digitd/gunicorn: " +
      " / ".join(f"{rt[f'digitd_json#{i}']} {rt[f'peer_json#{i}']}" for i in range(1, len(d) + 1)))
print(f"json      best round of each side below; digitd's p99 over the rounds: "
      f"{min(ms(a[2]) for a in d):.3f}-{max(ms(a[2]) for a in d):.3f} ms")
for form, peer in (("json", "json"), ("png", "png"), ("json_fp32", "json")):
    d, p = rows["digitd_" + form], rows["peer_" + peer]
    print(f"{form:9s} digitd/gunicorn: {d[0] / p[0]:6.1f}x req/s;  digitd p99 {ms(d[2]):.3f} ms "
          f"vs {ms(p[2]):.3f} ms")
n = rows["nginx_static100"]
print(f"digitd JSON /predict = {rows['digitd_json'][0] / n[0] * 100:.0f}% of nginx static req/s; "
      f"digitd static = {rows['digitd_static100'][0] / n[0] * 100:.0f}%")
print(f"digitd resident memory after the load: {int(sys.argv[2]) / 1024:.1f} MiB "
      f"(peak {int(sys.argv[3]) / 1024:.1f} MiB)")
if any(r[3] for k, r in rows.items() if k.startswith("digitd")):
    print("WARNING: digitd answered non-2xx during the load")
EOF
