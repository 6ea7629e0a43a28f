#!/usr/bin/env bash
# valgrind memcheck over the unit tests, the fuzz-corpus replays and the
# real daemon under HTTP test groups: no errors, no definite leaks.
#
#   tests/faults/valgrind.sh [BUILD_DIR] [HTTP_GROUP...]
#
# BUILD_DIR: a build WITHOUT sanitizers (default: build-valgrind, configured
# and built here, RelWithDebInfo). HTTP groups default to "api bad reload";
# MNIST is not used (the tests that need it report skipped). Exit status 0
# when every program ran clean; the valgrind logs are in BUILD/valgrind/.
# Unit tests run with CK_FORK=no so valgrind sees the tests themselves.
# VALGRIND_SKIP names unit tests to leave out (default: test_gemm, whose
# large products take over ten minutes under memcheck, and the tests that
# run whole CNNs many times over (batch invariance: 366 s alone; the
# inference kernels; int8), and test_predict_json, whose 80,000 generated
# bodies through cJSON took over 9 minutes: ASan and UBSan run them; ""
# runs them all).
# VALGRIND_LIMIT: seconds one program may take under memcheck (default 900).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-valgrind}
[[ $# -gt 0 ]] && shift
groups=("$@")
[[ ${#groups[@]} -eq 0 ]] && groups=(api bad reload)

command -v valgrind >/dev/null || {
  echo "$0: needs valgrind (as root: scripts/install-deps.sh fuzz)" >&2; exit 1; }
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if grep -q '^DIGITD_SANITIZE:STRING=.\+' "$build/CMakeCache.txt"; then
  echo "$0: $build is a sanitizer build; valgrind needs a plain one" >&2
  exit 1
fi
cmake --build "$build" -j "$(nproc)" >/dev/null

out=$build/valgrind
rm -rf "$out"
mkdir -p "$out"
# --fair-sched=yes: valgrind runs one thread at a time, and by default a
# thread coming back from a system call can wait forever for the lock while
# others spin on it (test_model_repo's readers held its reloading thread,
# back from fsync, for over half an hour). The ticket lock hands it over in
# turn: that test takes 9 s.
vg=(valgrind --vgdb=no --fair-sched=yes --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes
    --num-callers=30 -q)
# A program that hangs under memcheck fails by name after this many seconds
# instead of running into CI's own limit.
limit=${VALGRIND_LIMIT:-900}
unset DIGITD_MNIST_DIR
export CK_FORK=no CK_DEFAULT_TIMEOUT=3600
failed=()
start=$SECONDS

# bounded NAME REPORT CMD...: CMD within $limit seconds, its output in
# NAME.out; a line saying how it went, REPORT named when it failed
bounded() {
  local name=$1 report=$2
  shift 2
  local t0=$SECONDS rc=0
  timeout -k 10 "$limit" "$@" >"$out/$name.out" 2>&1 || rc=$?
  if [[ $rc -eq 0 || $rc -eq 77 ]]; then
    printf '%-32s ok (%ds%s)\n' "$name" $((SECONDS - t0)) "$([[ $rc -eq 77 ]] && echo ', skipped')"
    return 0
  fi
  if [[ $rc -eq 124 ]]; then
    printf '%-32s FAILED (over %ds under memcheck): %s\n' "$name" "$limit" "$out/$name.out"
  else
    printf '%-32s FAILED (exit %d): %s\n' "$name" "$rc" "$report"
  fi
  failed+=("$name")
  return 1
}

run() {  # run NAME CMD...: one program under memcheck
  local name=$1
  shift
  bounded "$name" "$out/$name.log" "${vg[@]}" --log-file="$out/$name.log" "$@" || true
}

echo "== unit tests"
skip=" ${VALGRIND_SKIP-test_gemm test_batch_invariance test_conv_infer test_quantize test_generators test_predict_json} "
for exe in "$build"/tests/test_*; do
  [[ -x $exe ]] || continue
  if [[ $skip == *" $(basename "$exe") "* ]]; then
    echo "$(basename "$exe"): skipped (VALGRIND_SKIP)"
    continue
  fi
  run "$(basename "$exe")" "$exe"
done
echo "== fuzz corpus replays"
# Every committed input of every harness (corpus and regressions), with
# the replay's poisoning of fresh memory off (FUZZ_REPLAY_POISON=0): it
# writes every byte malloc returns, which would hide from memcheck the
# reads of memory nobody wrote that it is here to find. The image inputs
# of fuzz_image and fuzz_predict_image go through both harnesses.
images=("$src/tests/fuzz/corpus/fuzz_image" "$src/tests/fuzz/regressions/fuzz_image"
        "$src/tests/fuzz/corpus/fuzz_predict_image" "$src/tests/fuzz/regressions/fuzz_predict_image")
for exe in "$build"/tests/faults/fuzz_replay_*; do
  h=fuzz_${exe##*/fuzz_replay_}
  inputs=("$src/tests/fuzz/corpus/$h" "$src/tests/fuzz/regressions/$h")
  [[ $h == fuzz_image || $h == fuzz_predict_image ]] && inputs=("${images[@]}")
  FUZZ_REPLAY_POISON=0 run "$(basename "$exe")" "$exe" "${inputs[@]}"
done

echo "== the daemon under HTTP test groups: ${groups[*]}"
wrapper=$out/digitd-under-valgrind
# seccomp is off under valgrind: its own system calls are not the daemon's
cat >"$wrapper" <<WRAP
#!/bin/sh
if [ "\$1" = serve ]; then shift; set -- serve --no-seccomp "\$@"; fi
exec ${vg[*]} --log-file=$out/digitd-%p.log $build/digitd "\$@"
WRAP
chmod +x "$wrapper"
# run_group NAME SCRIPT ARGS...: one test group against the daemon under valgrind
run_group() {
  local name=$1 script=$2
  shift 2
  bounded "$name" "$out/$name.out" /usr/bin/python3 "$script" --digitd "$wrapper" \
    --source "$src" --work "$out/$name" "$@" || { grep -E "^FAIL" "$out/$name.out" | head -5 || true; }
}
for g in "${groups[@]}"; do
  run_group "http_$g" "$src/tests/http/test_http.py" --group "$g" \
    --fixture "$build/tests/http/http_fixture"
done
# the hostile decoder inputs: no uninitialised read may reach an answer
run_group hostile_leaks "$src/tests/hostile/test_hostile.py" --group leaks
# every daemon's own log: empty under -q unless memcheck found something
for log in "$out"/digitd-*.log; do
  if [[ -s $log ]]; then
    echo "memcheck reports in $log:"
    head -30 "$log"
    failed+=("$(basename "$log")")
  fi
done

echo "valgrind: $((SECONDS - start))s, ${#failed[@]} failed ${failed[*]:-}"
[[ ${#failed[@]} -eq 0 ]]
