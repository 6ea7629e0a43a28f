#!/usr/bin/env bash
# Soak benchmark: digitd serve under mixed valid and invalid requests for
# SOAK_SECONDS (default 180), RSS sampled every second; prints the curve's
# start (after warm-up) and end and whether it grew. Loopback only.
#
#   bench/soak.sh [BUILD_DIR]          (default: build)
#   SOAK_SECONDS=600 SOAK_CLIENTS=16 bench/soak.sh
#
# The model is models/default.model when present, else a small untrained
# one made with the HTTP tests' fixture (the soak is about memory, not
# answers). Exit 0 when memory did not grow after warm-up and the daemon
# stayed up.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
[[ -x $build/digitd ]] || { echo "$0: no $build/digitd; build first (make build)" >&2; exit 1; }
work=$build/soak
mkdir -p "$work"
model=$src/models/default.model
if [[ ! -f $model ]]; then
  model=$work/soak.model
  "$build/tests/http/http_fixture" model "$model" 784-256-128-10 1
fi
exec /usr/bin/python3 "$src/bench/soak.py" --digitd "$build/digitd" --model "$model" \
  --web-root "$src/web" --seconds "${SOAK_SECONDS:-180}" --warmup "${SOAK_WARMUP:-30}" \
  --clients "${SOAK_CLIENTS:-8}" --log "$work/digitd.log"
