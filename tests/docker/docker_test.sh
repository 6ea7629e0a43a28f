#!/bin/bash
# docker_test.sh: build digitd's image and run it for real, alone and with
# docker-compose, then tear everything down (see docs/docker.md).
#
#   sudo tests/docker/docker_test.sh
#
# Steps: install docker.io, docker-compose and debootstrap when missing;
# start a private dockerd when none answers (scripts/dockerd.sh); make the
# local debian:bookworm-slim when missing (scripts/docker-base-image.sh);
# build the image (unit tests run inside); check its size (< 100 MB); run
# it, wait until healthy, POST real MNIST digits as PNG and as JSON pixels;
# check it runs as non-root and stops within 2 s of SIGTERM; bring the
# compose service up (read-only root, init), wait until healthy, predict;
# run the compose `train` profile for one epoch on a small MNIST subset
# and check the service serves the new model after SIGHUP and after a
# restart; then remove every container, the test image, dangling build
# images and build cache, and stop dockerd when this script started it.
#
# Needs root, or else a Docker daemon that already answers and the base
# image (otherwise it prints "SKIPPED" and exits 77), and MNIST IDX files
# (raw or .gz) in DIGITD_MNIST_DIR, else ../shared/mnist or data/mnist.
# Environment:
#   DOCKER_HOST              use this daemon (default: one that answers,
#                            else a private one started here)
#   DIGITD_DOCKER_KEEP=1     keep the test image afterwards
#   DIGITD_DOCKER_CACHE      base tarball cache (default /var/cache/digitd-docker)
# Prints "docker: N passed, M failed" last; exit 0 only when M is 0.
set -u
set -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
TOOL="$REPO/tests/docker/mnist_tool.py"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
IMAGE=digitd:docker-test
PROJECT=digitdtest$$
RUN_NAME=digitd-test-$$
LABEL=docker
# shellcheck source=tests/lib/docker.sh
. "$REPO/tests/lib/docker.sh"

docker_tools

MNIST=${DIGITD_MNIST_DIR:-}
if [ -z "$MNIST" ]; then
    for d in "$REPO/../shared/mnist" "$REPO/data/mnist"; do
        if [ -e "$d/t10k-images-idx3-ubyte.gz" ] || [ -e "$d/t10k-images-idx3-ubyte" ]; then
            MNIST=$d
            break
        fi
    done
fi
if [ -z "$MNIST" ]; then
    echo "docker: SKIPPED: no MNIST files (set DIGITD_MNIST_DIR)"
    exit 77
fi

# The legacy builder: Debian's engine has no buildx, and a newer docker CLI
# would otherwise insist on BuildKit. docker-compose 1.29 builds the same way.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
WORK=$(mktemp -d /tmp/digitd-docker-test.XXXXXX)
chmod 755 "$WORK"

# ---- teardown (also on failure or interrupt) -------------------------------
COMPOSE=(docker-compose --project-directory "$REPO" -p "$PROJECT"
    -f "$WORK/docker-compose.yml" -f "$REPO/tests/docker/compose.test.yml")
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "tearing down"
    docker rm -f "$RUN_NAME" >/dev/null 2>&1
    if [ -f "$WORK/docker-compose.yml" ]; then
        "${COMPOSE[@]}" --profile train down --volumes --remove-orphans -t 5 >/dev/null 2>&1
    fi
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    [ -z "$left" ] || docker rm -f $left >/dev/null 2>&1
    if [ "${DIGITD_DOCKER_KEEP:-0}" != 1 ]; then
        docker image rm "$IMAGE" >/dev/null 2>&1
    fi
    # The build stage's image and the layers only it used.
    docker image prune -f >/dev/null 2>&1
    docker builder prune -f >/dev/null 2>&1
    rm -rf "$WORK"
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    left="$left$(docker ps -aq --filter "name=^/$RUN_NAME\$" 2>/dev/null)"
    check "teardown: no test container left" test -z "$left"
    check "teardown: no dangling build image left" \
        test -z "$(docker images -q --filter dangling=true 2>/dev/null)"
    log "images kept: $(docker images --format '{{.Repository}}:{{.Tag}} ({{.Size}})' | tr '\n' ' ')"
    docker_down
    summary
    if [ $rc = 0 ] && [ $FAILED != 0 ]; then rc=1; fi
    if [ $rc = 77 ] && [ $FAILED != 0 ]; then rc=1; fi
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the daemon and the base image -----------------------------------------
docker_up
rc=$?
if [ $rc = 77 ]; then
    if [ "${STARTED_DOCKERD:-0}" != 1 ]; then # nothing to clean up but WORK
        trap - EXIT
        rm -rf "$WORK"
    fi
    exit 77
elif [ $rc != 0 ]; then
    exit 1
fi

# ---- test inputs -------------------------------------------------------------
"$PY" "$TOOL" samples "$MNIST" "$WORK/samples" 3 >"$WORK/samples.txt" || {
    fail "make MNIST sample images"
    exit 1
}
"$PY" "$TOOL" subset "$MNIST" "$WORK/mnist-small" 10000 2000 >/dev/null || {
    fail "make the MNIST training subset"
    exit 1
}

# Waits until container $1 is healthy (at most $2 s); fails fast if it exits.
wait_healthy() {
    local c=$1 limit=$2 i=0 state health
    while [ $i -lt $((limit * 2)) ]; do
        state=$(docker inspect -f '{{.State.Status}}' "$c" 2>/dev/null)
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c" 2>/dev/null)
        [ "$health" = healthy ] && return 0
        if [ "$state" != running ] && [ "$state" != created ] && [ "$state" != restarting ]; then
            log "container $c is $state:"
            docker logs --tail 20 "$c" 2>&1 | sed 's/^/    /'
            return 1
        fi
        sleep 0.5
        i=$((i + 1))
    done
    log "container $c not healthy after ${limit}s (health: $health); last checks:"
    docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$c" 2>&1 | tail -n 5 | sed 's/^/    /'
    docker logs --tail 20 "$c" 2>&1 | sed 's/^/    /'
    return 1
}

# Posts every sample to $1 (base URL); passes when every digit is right.
predict_samples() {
    local url=$1 what=$2 ok=0 bad=0 path type label
    while read -r path type label; do
        if "$PY" "$TOOL" predict "$url/predict" "$path" "$type" "$label" | sed 's/^/    /'; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
        fi
    done <"$WORK/samples.txt"
    if [ $bad = 0 ] && [ $ok -gt 0 ]; then
        pass "$what: $ok MNIST digits (PNG and JSON) predicted right"
    else
        fail "$what: $bad of $((ok + bad)) MNIST digits wrong or refused"
    fi
}

# Stops container $1 with SIGTERM (`docker stop`: SIGKILL only after 10 s)
# and checks it exits with status 0 within 2 s.
stop_within_2s() {
    local c=$1 what=$2 t0 t1 ms code
    t0=$(date +%s%N)
    timeout 30 docker stop -t 10 "$c" >/dev/null || { fail "$what: docker stop"; return; }
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
    if [ "$code" = 0 ] && [ $ms -lt 2000 ]; then
        pass "$what: exited with status 0 ${ms} ms after SIGTERM"
    else
        fail "$what: after SIGTERM: exit status $code after ${ms} ms (want 0 within 2000 ms)"
        docker logs --tail 10 "$c" 2>&1 | sed 's/^/    /'
    fi
}

# Checks every process of container $1 runs as a non-root uid.
non_root() {
    local c=$1 uids
    uids=$(docker top "$c" -o pid,uid 2>/dev/null | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')
    log "container $c runs as uid(s): $uids"
    [ -n "$uids" ] && ! printf ' %s' $uids | grep -qw 0 &&
        ! printf ' %s' $uids | grep -qw root
}

# ---- the image ---------------------------------------------------------------
log "building $IMAGE (build stage compiles and runs the unit tests)"
t0=$(date +%s)
if timeout 1200 docker build --force-rm --network host -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
    pass "docker build ($(($(date +%s) - t0)) s)"
else
    tail -n 40 "$WORK/build.log" | sed 's/^/    /'
    fail "docker build (log above)"
    exit 1
fi
grep -E 'Sending build context|tests passed|tests failed|Total Test time' "$WORK/build.log" | sed 's/^/    build: /'

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
size_mb=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }')
check "image size ${size_mb} MB (${size} bytes) < 100 MB" [ "$size" -lt 100000000 ]
check "image runs as a non-root user ($(docker image inspect -f '{{.Config.User}}' "$IMAGE"))" \
    bash -c '[ -n "$1" ] && [ "${1%%:*}" != 0 ] && [ "${1%%:*}" != root ]' _ \
    "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")"
check "image has a HEALTHCHECK, ENTRYPOINT digitd, EXPOSE 8080" \
    test "$(docker image inspect -f '{{if .Config.Healthcheck}}hc{{end}} {{json .Config.Entrypoint}} {{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}' "$IMAGE")" \
    = 'hc ["digitd"] 8080/tcp'

# ---- docker run ----------------------------------------------------------------
PORT=$("$PY" "$TOOL" free-port)
log "docker run on port $PORT"
if docker run -d --name "$RUN_NAME" --network host -e DIGITD_PORT="$PORT" \
    --health-interval 1s --health-start-period 1s --health-retries 5 \
    "$IMAGE" >/dev/null; then
    if wait_healthy "$RUN_NAME" 60; then
        pass "docker run: healthy (digitd probe)"
        predict_samples "http://127.0.0.1:$PORT" "docker run"
        check "docker run: GET / serves the drawing page" \
            bash -c '"$1" "$2" get "$3" | grep -qi "<canvas"' _ "$PY" "$TOOL" "http://127.0.0.1:$PORT/"
        check "docker run: every process runs as non-root" non_root "$RUN_NAME"
        # `docker stop` (SIGTERM) while a request is in flight: the request
        # is answered and the container exits with status 0 within 2 s.
        read -r path type label <"$WORK/samples.txt"
        if "$PY" "$TOOL" inflight "http://127.0.0.1:$PORT/predict" "$path" "$type" "$label" \
            docker stop -t 10 "$RUN_NAME" | sed 's/^/    /'; then
            pass "docker run: SIGTERM with a request in flight: answered, stopped within 2 s"
        else
            fail "docker run: SIGTERM with a request in flight: answered, stopped within 2 s"
        fi
        state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$RUN_NAME")
        check "docker run: exit status 0 after SIGTERM (state: $state)" test "$state" = "exited 0"
    else
        fail "docker run: healthy within 60 s"
    fi
else
    fail "docker run"
fi
docker rm -f "$RUN_NAME" >/dev/null 2>&1

# ---- docker-compose ------------------------------------------------------------
# These machines have no bridge network: the test runs the real
# docker-compose.yml with its published ports dropped (host networking
# refuses them), plus tests/docker/compose.test.yml.
"$PY" - "$REPO/docker-compose.yml" "$WORK/docker-compose.yml" <<'EOF' || fail "read docker-compose.yml"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for service in doc["services"].values():
    service.pop("ports", None)
yaml.safe_dump(doc, open(sys.argv[2], "w"), sort_keys=False)
EOF
mkdir -p "$WORK/models"
cp -a "$REPO/models/." "$WORK/models/"
chmod 777 "$WORK/models" # the train service writes as uid 10001
export DIGITD_IMAGE=$IMAGE DIGITD_PORT=$PORT DIGITD_MODELS_DIR=$WORK/models \
    DIGITD_DATA_DIR=$WORK/mnist-small DIGITD_TRAIN_EPOCHS=1
C_NAME=
if "${COMPOSE[@]}" config -q 2>"$WORK/compose.err"; then
    pass "docker-compose config is valid"
else
    sed 's/^/    /' "$WORK/compose.err"
    fail "docker-compose config"
fi
t0=$(date +%s)
if timeout 600 "${COMPOSE[@]}" build --force-rm digitd >"$WORK/compose-build.log" 2>&1; then
    pass "docker-compose build ($(($(date +%s) - t0)) s; seconds when the tree is unchanged since docker build)"
else
    tail -n 20 "$WORK/compose-build.log" | sed 's/^/    /'
    fail "docker-compose build"
fi
if timeout 120 "${COMPOSE[@]}" up -d --no-build digitd >"$WORK/compose-up.log" 2>&1; then
    C_NAME=$("${COMPOSE[@]}" ps -q digitd)
else
    sed 's/^/    /' "$WORK/compose-up.log"
    fail "docker-compose up"
fi

model_info() { # the body of GET /model (it names the file's SHA-256)
    "$PY" "$TOOL" get "http://127.0.0.1:$PORT/model" 2>/dev/null
}
wait_digest() { # waits up to $2 s for GET /model to name SHA-256 $1
    local want=$1 limit=$2 i=0
    while [ $i -lt $((limit * 4)) ]; do
        case "$(model_info)" in *"$want"*) return 0 ;; esac
        sleep 0.25
        i=$((i + 1))
    done
    log "GET /model does not name SHA-256 $want: $(model_info | head -c 300)"
    return 1
}

if [ -n "$C_NAME" ] && wait_healthy "$C_NAME" 60; then
    pass "docker-compose up: healthy"
    check "docker-compose: read-only root filesystem, init, restart unless-stopped" test \
        "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Init}} {{.HostConfig.RestartPolicy.Name}}' "$C_NAME")" \
        = "true true unless-stopped"
    check "docker-compose: every process runs as non-root" non_root "$C_NAME"
    predict_samples "http://127.0.0.1:$PORT" "docker-compose"

    # ---- the train profile ----
    log "docker-compose --profile train: 1 epoch on 10000 digits"
    before=$(sha256sum "$WORK/models/default.model" 2>/dev/null | cut -d' ' -f1)
    t0=$(date +%s)
    if timeout 900 "${COMPOSE[@]}" --profile train run --rm train >"$WORK/train.log" 2>&1; then
        tail -n 4 "$WORK/train.log" | sed 's/^/    /'
        after=$(sha256sum "$WORK/models/default.model" 2>/dev/null | cut -d' ' -f1)
        # default.model is a link in the checkout: the model is written
        # through it, into the file it names (nn_model_save)
        if [ -f "$WORK/models/default.model" ] &&
            [ -n "$after" ] && [ "$after" != "$before" ]; then
            pass "train profile wrote a new models/default.model ($(($(date +%s) - t0)) s)"
            kill_ok=0
            if "${COMPOSE[@]}" kill -s HUP digitd >/dev/null 2>&1 && wait_digest "$after" 10; then
                kill_ok=1
            fi
            check "docker-compose: SIGHUP makes the service serve the trained model" test $kill_ok = 1
            if "${COMPOSE[@]}" restart -t 10 digitd >/dev/null 2>&1 && wait_healthy "$C_NAME" 60 &&
                wait_digest "$after" 10; then
                pass "docker-compose restart: healthy, serving the trained model"
                while read -r path type label; do
                    "$PY" "$TOOL" predict "http://127.0.0.1:$PORT/predict" "$path" "$type" - | sed 's/^/    /' ||
                        { fail "prediction with the trained model"; break; }
                done <"$WORK/samples.txt"
            else
                fail "docker-compose restart: serving the trained model"
            fi
        else
            fail "train profile did not write a new models/default.model"
        fi
    else
        tail -n 20 "$WORK/train.log" | sed 's/^/    /'
        fail "docker-compose --profile train run train"
    fi
    stop_within_2s "$C_NAME" "docker-compose (init: true)"
else
    fail "docker-compose up: healthy within 60 s"
fi
if "${COMPOSE[@]}" --profile train down --volumes --remove-orphans -t 5 >/dev/null 2>&1 &&
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
    pass "docker-compose down: no container left"
else
    fail "docker-compose down"
fi
exit 0
