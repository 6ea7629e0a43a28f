#!/usr/bin/env bash
# Runs every libFuzzer harness for a bounded time, one after another.
#
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]
#
# SECONDS per harness: the argument, else $FUZZ_SECONDS, else 60. CI runs
# `FUZZ_SEED=1 FUZZ_RUNS=50000 tests/fuzz/run.sh 120`: a fixed seed and
# input count, so that its result is reproducible. HARNESS names (fuzz_model ...) pick some; the
# default is all of them. Without $FUZZ_BIN_DIR (set by the `fuzz` CMake
# target) it first configures and builds build-fuzz/ (clang, libFuzzer,
# ASan + UBSan; $FUZZ_BUILD names another folder).
#
# Each harness starts from its committed corpus (tests/fuzz/corpus/NAME)
# and regressions (tests/fuzz/regressions/NAME); new inputs it finds go to
# BUILD/fuzz-work/NAME/corpus, never into the source tree. A crash, a
# sanitizer report, a broken FUZZ_CHECK, a timeout (10 s per input) or an
# allocation over 300 MB stops that harness: its input is saved as
# BUILD/fuzz-work/NAME/crash-* (or leak-, timeout-, oom-), the run goes on
# with the other harnesses, and the script exits 1. To keep such an input
# as a regression case, after fixing the bug:
#   cp BUILD/fuzz-work/NAME/crash-... tests/fuzz/regressions/NAME/
# Summary (executions, new coverage, peak memory) in
# BUILD/fuzz-work/summary.txt.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_src=$src/tests/fuzz

seconds=${1:-${FUZZ_SECONDS:-${FUZZ_DEFAULT_SECONDS:-60}}}
[[ $# -gt 0 ]] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
  echo "usage: $0 [SECONDS] [HARNESS...]" >&2
  exit 2
fi

bin=${FUZZ_BIN_DIR:-}
if [[ -z $bin ]]; then
  build=${FUZZ_BUILD:-$src/build-fuzz}
  if ! command -v clang >/dev/null; then
    echo "$0: needs clang with libFuzzer; as root: scripts/install-deps.sh fuzz" >&2
    exit 1
  fi
  CC=clang cmake -S "$src" -B "$build" -DDIGITD_FUZZ=ON -DBUILD_TESTING=OFF \
    -DDIGITD_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target fuzz_harnesses
  bin=$build/tests/fuzz
  work=$build/fuzz-work
else
  work=$bin/../../fuzz-work
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)

if [[ $# -gt 0 ]]; then
  harnesses=("$@")
else
  harnesses=()
  for f in "$fuzz_src"/fuzz_*.c; do
    harnesses+=("$(basename "$f" .c)")
  done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$fuzz_src/ubsan.supp}

summary=$work/summary.txt
printf '%-24s %8s %12s %10s %8s %8s  %s\n' harness seconds executions exec/s new_units \
  peak_mb result >"$summary"
failed=0
for h in "${harnesses[@]}"; do
  exe=$bin/$h
  if [[ ! -x $exe ]]; then
    echo "$0: no harness $exe" >&2
    failed=1
    continue
  fi
  hw=$work/$h
  mkdir -p "$hw/corpus"
  dirs=("$hw/corpus" "$fuzz_src/corpus/$h")
  [[ -d $fuzz_src/regressions/$h ]] && dirs+=("$fuzz_src/regressions/$h")
  opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=300
        -print_final_stats=1 -artifact_prefix="$hw/")
  # CI's smoke run is (nearly) reproducible: a fixed seed and a fixed
  # number of inputs (FUZZ_SEED, FUZZ_RUNS) walk almost the same path on
  # every run, so a red CI points at a change rather than at luck.
  # Exploring is done with longer runs without them.
  [[ -n ${FUZZ_SEED:-} ]] && opts+=(-seed="$FUZZ_SEED")
  [[ -n ${FUZZ_RUNS:-} ]] && opts+=(-runs="$FUZZ_RUNS")
  [[ -f $fuzz_src/$h.dict ]] && opts+=(-dict="$fuzz_src/$h.dict")
  echo "==== $h: ${seconds}s"
  log=$hw/last-run.log
  start=$SECONDS
  set +e
  (cd "$hw" && "$exe" "${opts[@]}" "${dirs[@]}") >"$log" 2>&1
  rc=$?
  set -e
  took=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  rate=$(( ${execs:-0} / (took > 0 ? took : 1) ))
  if [[ $rc -eq 0 ]]; then
    result=ok
  else
    result="FAILED (exit $rc)"
    failed=1
    grep -E "ERROR: |FUZZ_CHECK|runtime error|Test unit written to" "$log" | head -5 >&2 || true
    echo "  full log: $log" >&2
  fi
  printf '%-24s %8d %12s %10s %8s %8s  %s\n' "$h" "$took" "${execs:-?}" "$rate" \
    "${newu:-?}" "${peak:-?}" "$result" | tee -a "$summary"
done
echo
cat "$summary"
exit $failed
