#!/bin/bash
# run-train-bench.sh: digitd's training and single-image inference speed
# against its peers (PyTorch, and numpy written like the tutorial), side by
# side in one run, with a table of ratios against the targets of issues #2,
# #7 and #11 (the latest target where they differ).
#
#   bench/run-train-bench.sh            # about 3-6 minutes on an idle machine
#
# Environment:
#   DIGITD_MNIST_DIR  MNIST IDX files (default ../shared/mnist beside the
#                     repository, else synthetic data of the same shape)
#   BUILD_DIR         where to build (default build-bench)
#   REPEATS           runs of each side, alternating; the best is kept
#                     (default 2): on a shared 2-core machine interference
#                     only ever slows a run down
#   MLP_N, CLASSIC_N, CNN_N   training samples per timed epoch
#                     (default 60000, 60000, 20000)
#   LAT_ITERS, CNN_LAT_ITERS  timed single-image calls (20000, 3000)
#   BUDGET            seconds after which no further repeats start (480)
#   OMP_WAIT_POLICY   passed through to both sides (digitd and PyTorch both
#                     use libgomp). On a busy machine the default spinning
#                     makes every 2-thread run collapse ~20x; `passive`
#                     keeps them near 1-thread speed. Leave unset on an
#                     idle machine.
#   PYTHON            interpreter with python3-torch/numpy (/usr/bin/python3)
#
# Peers get their best settings: OPENBLAS_CORETYPE=SkylakeX always (their
# OpenBLAS does not recognise the CPU otherwise); PyTorch trains with
# torch.set_num_threads(2) and OPENBLAS_NUM_THREADS=1; PyTorch inference
# and numpy are run with 1 and 2 threads and the faster is used. digitd
# trains with 2 threads; its inference, like PyTorch's, is run with 1 and
# 2 threads and the faster is used (a 1-thread-each row is printed too).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
REPEATS=${REPEATS:-2}
MLP_N=${MLP_N:-60000}
CLASSIC_N=${CLASSIC_N:-60000}
CNN_N=${CNN_N:-20000}
LAT_ITERS=${LAT_ITERS:-20000}
CNN_LAT_ITERS=${CNN_LAT_ITERS:-3000}
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${DIGITD_MNIST_DIR:-}" ] && [ -d "$ROOT/../shared/mnist" ]; then
    DIGITD_MNIST_DIR=$(cd "$ROOT/../shared/mnist" && pwd)
fi
export DIGITD_MNIST_DIR=${DIGITD_MNIST_DIR:-}
# SkylakeX kernels need AVX-512: on a CPU without it (the AMD EPYC VMs)
# forcing them kills every peer with SIGILL, and OpenBLAS's own choice is
# its best there.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX
fi
T_START=$(date +%s)
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
# After BUDGET seconds only first runs are made (no more repeats), so a busy
# machine stretches the run less; each step is also cut at STEP_TIMEOUT.
BUDGET=${BUDGET:-480}

CNN="conv5x32,pool2,conv5x64,pool2,dense256,dense10"
CNN_SMALL="conv5x16,pool2,conv5x32,pool2,dense128,dense10"

say() { echo "run-train-bench: $*" >&2; }

# ---- build ------------------------------------------------------------------
build() {
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
        cmake --build "$BUILD_DIR" -j2 --target bench_train bench_infer bench_pingpong \
            >/dev/null &&
        return 0
    # bench/CMakeLists.txt absent or the tree half-built: the library and
    # the programs directly.
    say "CMake targets unavailable; compiling bench_train/bench_infer/bench_pingpong directly"
    cmake --build "$BUILD_DIR" -j2 --target nn >/dev/null || return 1
    mkdir -p "$BUILD_DIR/bench"
    for b in bench_train bench_infer; do
        cc -std=c11 -O2 -D_GNU_SOURCE -I"$ROOT/nn" "$ROOT/bench/$b.c" \
            "$BUILD_DIR/libnn.a" -fopenmp -lz -lm -o "$BUILD_DIR/bench/$b" || return 1
    done
    cc -std=c11 -O2 -pthread "$ROOT/bench/bench_pingpong.c" \
        -o "$BUILD_DIR/bench/bench_pingpong" || return 1
}
build || { say "build failed"; exit 1; }
BT=$BUILD_DIR/bench/bench_train
BI=$BUILD_DIR/bench/bench_infer
BP=$BUILD_DIR/bench/bench_pingpong
[ -x "$BT" ] && [ -x "$BI" ] && [ -x "$BP" ] || { say "no $BT, $BI or $BP"; exit 1; }

# The peers' BLAS: Debian's python3-torch and python3-numpy call whatever
# libblas.so.3 the alternatives system selects; with only the netlib
# reference BLAS installed they are many times slower than at their best.
BLAS=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
case "$BLAS" in
*openblas*) ;;
*) say "WARNING: libblas.so.3 is $BLAS, not OpenBLAS: the peers run far below"
   say "  their best (apt-get install libopenblas0-pthread); ratios are inflated" ;;
esac

HAVE_TORCH=0 HAVE_NUMPY=0
"$PYTHON" -c 'import torch' 2>/dev/null && HAVE_TORCH=1
"$PYTHON" -c 'import numpy' 2>/dev/null && HAVE_NUMPY=1
[ $HAVE_TORCH = 1 ] || say "PyTorch not importable by $PYTHON: its rows are n/a"
[ $HAVE_NUMPY = 1 ] || say "numpy not importable by $PYTHON: its rows are n/a"

# ---- helpers ----------------------------------------------------------------
# kv LINE KEY: the value of KEY=... in a benchmark's output line.
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

# The vCPUs' placement just before each training run (bench_pingpong: a
# cache line's round trip between the first two CPUs; 50-70 ns when the
# host keeps them in one core complex, 300-340 when not, and then
# two-thread runs slow down by a third), kept in this file for the summary.
ROUNDTRIPS=$(mktemp)
trap 'rm -f "$ROUNDTRIPS"' EXIT

# run KEY CMD...: runs a benchmark, echoes the value of KEY (empty on failure).
run() {
    local key=$1 out rt
    shift
    rt=$(kv "$("$BP")" roundtrip_ns)
    echo "$rt" >>"$ROUNDTRIPS"
    out=$(timeout "$STEP_TIMEOUT" "$@" 2>/dev/null | tail -1)
    say "  $(printf '%q ' "$@" | cut -c1-110)-> $(kv "$out" "$key") (vCPU round trip ${rt} ns)"
    kv "$out" "$key"
}

# better MODE A B: max (MODE=hi) or min (MODE=lo) of two numbers, ignoring blanks.
better() {
    if [ -z "$2" ]; then echo "$3"; elif [ -z "$3" ]; then echo "$2"; else
        awk -v m="$1" -v a="$2" -v b="$3" \
            'BEGIN { print (m == "hi") == (a + 0 > b + 0) ? a : b }'
    fi
}

ROWS=()
# row MEASURE DIGITD PEER MODE TARGET: MODE hi = more is better (ratio
# digitd/peer), lo = less is better (ratio peer/digitd); TARGET a ratio or -.
row() {
    local ratio=n/a verdict=-
    if [ -n "$2" ] && [ -n "$3" ]; then
        ratio=$(awk -v d="$2" -v p="$3" -v m="$4" \
            'BEGIN { r = (m == "hi") ? d / p : p / d; printf "%.2f", r }')
        if [ "$5" != - ]; then
            verdict=$(awk -v r="$ratio" -v t="$5" \
                'BEGIN { print (r >= t) ? "met" : sprintf("MISSED (%.0f%% of target)", 100 * r / t) }')
        fi
    fi
    ROWS+=("$1|${2:-n/a}|${3:-n/a}|${ratio}x|$([ "$5" = - ] && echo - || echo ">= ${5}x")|$verdict")
}

# more R: whether repeat number R (from 1) is to run: the first always
# is, later ones while the budget lasts.
more() {
    [ "$1" -le "$REPEATS" ] &&
        { [ "$1" -eq 1 ] || [ $(( $(date +%s) - T_START )) -lt "$BUDGET" ]; }
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_BEFORE=$(load_avg)
. "$ROOT/bench/cpu_steal.sh" # cpu_ticks, steal_pct: the host's share of the run
TICKS_BEFORE=$(cpu_ticks)
THREADS_NOTES=()

# ---- 1. MLP training, ReLU + Adam, batch 128, 2 threads --------------------
say "1. MLP training (784-256-128-10 relu, Adam 1e-3, batch 128, 2 threads, $MLP_N samples)"
D= P=
r=0; while more $((++r)); do
    D=$(better hi "$D" "$(run samples_per_sec "$BT" --arch 784-256-128-10 --act relu \
        --opt adam --lr 0.001 --batch 128 --threads 2 --n "$MLP_N")")
    [ $HAVE_TORCH = 1 ] && P=$(better hi "$P" "$(OPENBLAS_NUM_THREADS=1 run samples_per_sec \
        "$PYTHON" bench/peer_torch.py train --arch mlp --threads 2 --batch 128 --n "$MLP_N")")
done
row "MLP train, ReLU+Adam b128 (samples/s) vs PyTorch" "$D" "$P" hi 2.3
# The same on one thread each: not a target, but robust when the machine
# is shared, and it separates kernel speed from threading.
D= P=
r=0; while more $((++r)); do
    D=$(better hi "$D" "$(run samples_per_sec "$BT" --arch 784-256-128-10 --act relu \
        --opt adam --lr 0.001 --batch 128 --threads 1 --n "$MLP_N")")
    [ $HAVE_TORCH = 1 ] && P=$(better hi "$P" "$(OPENBLAS_NUM_THREADS=1 run samples_per_sec \
        "$PYTHON" bench/peer_torch.py train --arch mlp --threads 1 --batch 128 --n "$MLP_N")")
done
row "  same, 1 thread each (info)" "$D" "$P" hi -
THREADS_NOTES+=("PyTorch training: torch.set_num_threads(2), OPENBLAS_NUM_THREADS=1, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-auto}")

# ---- 2. the classic configuration: sigmoid, SGD 0.1, batch 100 -------------
say "2. classic MLP training (784-256-128-10 sigmoid, SGD 0.1, batch 100, $CLASSIC_N samples)"
D= P= P1= P2=
r=0; while more $((++r)); do
    D=$(better hi "$D" "$(run samples_per_sec "$BT" --arch 784-256-128-10 --act sigmoid \
        --opt sgd --lr 0.1 --batch 100 --threads 2 --n "$CLASSIC_N")")
    if [ $HAVE_NUMPY = 1 ]; then
        P1=$(better hi "$P1" "$(OPENBLAS_NUM_THREADS=1 run samples_per_sec \
            "$PYTHON" bench/peer_numpy.py --batch 100 --lr 0.1 --n "$CLASSIC_N")")
        P2=$(better hi "$P2" "$(OPENBLAS_NUM_THREADS=2 run samples_per_sec \
            "$PYTHON" bench/peer_numpy.py --batch 100 --lr 0.1 --n "$CLASSIC_N")")
    fi
done
NP_T=1
if [ -n "$P1$P2" ]; then
    P=$(better hi "$P1" "$P2")
    [ "$P" = "$P2" ] && [ "$P2" != "$P1" ] && NP_T=2
fi
row "Classic train, sigmoid+SGD b100 (samples/s) vs numpy" "$D" "$P" hi 2
D=
r=0; while more $((++r)); do
    D=$(better hi "$D" "$(run samples_per_sec "$BT" --arch 784-256-128-10 --act sigmoid \
        --opt sgd --lr 0.1 --batch 100 --threads 1 --n "$CLASSIC_N")")
done
row "  same, digitd 1 thread vs numpy 1 thread (info)" "$D" "$P1" hi -
THREADS_NOTES+=("numpy (tutorial code, float32): OPENBLAS_NUM_THREADS=$NP_T was faster (1: ${P1:-n/a}, 2: ${P2:-n/a} samples/s)")

# ---- 3. single-image inference latency -------------------------------------
# latency NAME SPEC TORCH_ARCH ITERS TARGET [BENCH_INFER_ARGS]
# (the int8 rows pass "--int8 1": digitd's int8 path against PyTorch fp32)
latency() {
    local name=$1 spec=$2 tarch=$3 iters=$4 target=$5 warm=$(( $4 / 10 ))
    local extra=${6:-}
    local d= dp= d1= d2= dp1= dp2= p1= p2= pp1= pp2= out pick=1 dpick=1 r t
    say "3. single-image latency, $name ($iters calls)"
    r=0; while more $((++r)); do
        for t in 1 2; do
            out=$(timeout "$STEP_TIMEOUT" "$BI" --arch "$spec" --threads $t \
                --iters "$iters" --warmup "$warm" $extra 2>/dev/null | tail -1)
            say "  digitd threads=$t -> $out"
            if [ $t = 1 ]; then
                d1=$(better lo "$d1" "$(kv "$out" median_us)")
                dp1=$(better lo "$dp1" "$(kv "$out" p99_us)")
            else
                d2=$(better lo "$d2" "$(kv "$out" median_us)")
                dp2=$(better lo "$dp2" "$(kv "$out" p99_us)")
            fi
        done
        if [ $HAVE_TORCH = 1 ]; then
            for t in 1 2; do
                out=$(OPENBLAS_NUM_THREADS=1 timeout "$STEP_TIMEOUT" "$PYTHON" \
                    bench/peer_torch.py infer --arch "$tarch" --threads $t \
                    --iters "$iters" --warmup "$warm" 2>/dev/null | tail -1)
                say "  torch threads=$t -> $out"
                if [ $t = 1 ]; then
                    p1=$(better lo "$p1" "$(kv "$out" median_us)")
                    pp1=$(better lo "$pp1" "$(kv "$out" p99_us)")
                else
                    p2=$(better lo "$p2" "$(kv "$out" median_us)")
                    pp2=$(better lo "$pp2" "$(kv "$out" p99_us)")
                fi
            done
        fi
    done
    # Each side at its faster thread count, as PyTorch is.
    d=$d1 dp=$dp1
    if [ -n "$d2" ] && { [ -z "$d1" ] || awk -v a="$d2" -v b="$d1" 'BEGIN{exit !(a < b)}'; }; then
        d=$d2 dp=$dp2 dpick=2
    fi
    local p=$p1 pp=$pp1
    if [ -n "$p2" ] && { [ -z "$p1" ] || awk -v a="$p2" -v b="$p1" 'BEGIN{exit !(a < b)}'; }; then
        p=$p2 pp=$pp2 pick=2
    fi
    row "$name latency median (us) vs PyTorch" "$d" "$p" lo "$target"
    row "$name latency p99 (us) vs PyTorch" "$dp" "$pp" lo -
    row "  same, 1 thread each (info)" "$d1" "$p1" lo -
    THREADS_NOTES+=("digitd $name inference: nn_predict threads=$dpick was faster (median 1: ${d1:-n/a} us, 2: ${d2:-n/a} us)")
    THREADS_NOTES+=("PyTorch $name inference: torch.set_num_threads($pick) was faster (median 1: ${p1:-n/a} us, 2: ${p2:-n/a} us), no_grad, OPENBLAS_NUM_THREADS=1")
}
latency "MLP 784-256-128-10" 784-256-128-10 mlp "$LAT_ITERS" 3
latency "CNN conv32/64 d256" "$CNN" cnn "$CNN_LAT_ITERS" 3
latency "CNN small conv16/32 d128" "$CNN_SMALL" cnn-small "$CNN_LAT_ITERS" 2
latency "MLP 784-256-128-10 int8" 784-256-128-10 mlp "$LAT_ITERS" 5 "--int8 1"
latency "CNN conv32/64 d256 int8" "$CNN" cnn "$CNN_LAT_ITERS" 6 "--int8 1"

# ---- 4. CNN training, Adam, batch 128, 2 threads ----------------------------
say "4. CNN training ($CNN, Adam 1e-3, batch 128, 2 threads, $CNN_N samples)"
D= P=
r=0; while more $((++r)); do
    D=$(better hi "$D" "$(run samples_per_sec "$BT" --arch "$CNN" --act relu \
        --opt adam --lr 0.001 --batch 128 --threads 2 --n "$CNN_N" --warmup 5)")
    [ $HAVE_TORCH = 1 ] && P=$(better hi "$P" "$(OPENBLAS_NUM_THREADS=1 run samples_per_sec \
        "$PYTHON" bench/peer_torch.py train --arch cnn --threads 2 --batch 128 \
        --n "$CNN_N" --warmup 5)")
done
row "CNN train, ReLU+Adam b128 (samples/s) vs PyTorch" "$D" "$P" hi 2

# ---- the table --------------------------------------------------------------
T_END=$(date +%s)
echo
echo "digitd training and inference benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
echo "data: ${DIGITD_MNIST_DIR:-synthetic}; best of up to $REPEATS alternating runs per side (budget ${BUDGET} s);"
echo "load average before: $LOAD_BEFORE, after: $(load_avg); took $((T_END - T_START)) s;" \
    "cpu steal $(steal_pct "$TICKS_BEFORE" "$(cpu_ticks)");" \
    "vCPU round trip before each training run $(awk '$1 + 0 > 0 { n++; s = s (n > 1 ? "/" : "") $1;
        if ($1 >= 150) far++ } END { printf "%s ns (%d of %d runs at 150 ns or more: the vCPUs in different core complexes)", s, far, n }' "$ROUNDTRIPS")"
echo
{
    echo "measure|digitd|peer|ratio|target|result"
    echo "-------|------|----|-----|------|------"
    printf '%s\n' "${ROWS[@]}"
} | column -t -s '|'
echo
echo "Thread settings:"
echo "  peers' BLAS (libblas.so.3): $BLAS"
echo "  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} (both sides)"
echo "  digitd: training threads=2 (OpenMP), inference nn_predict threads 1 or 2 (the faster, below)"
printf '  %s\n' "${THREADS_NOTES[@]}"
echo "Ratios: throughput digitd/peer; latency peer/digitd (both: higher is better for digitd)."
if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN{exit !(l > n * 0.75)}'; then
    echo "WARNING: the machine was busy when this started (load $LOAD_BEFORE on $(nproc) cores); figures are unreliable"
    echo "  (2-thread rows especially; OMP_WAIT_POLICY=passive limits the damage)."
fi
