#!/bin/bash
# compose_failover.sh: deploy/compose for real (three digitd containers
# behind haproxy in a container), under a bounded load, while one replica
# is killed with SIGKILL, another stopped with SIGTERM, and a new model is
# rolled through all three one by one. Asserts zero failed requests, that
# every answer came from one of the two models served, and that only the
# new model answers after the roll.
#
#   sudo tests/deploy/compose_failover.sh
#
# Like tests/docker/docker_test.sh: installs docker.io, docker-compose and
# debootstrap when missing; starts a private dockerd when none answers
# (scripts/dockerd.sh) and stops it afterwards; makes the local
# debian:bookworm-slim (scripts/docker-base-image.sh); builds the digitd
# image (DIGITD_COMPOSE_SKIP_BUILD=1 reuses digitd:latest) and the haproxy
# image; removes its containers and images at the end. The load is
# tests/deploy/lb_load.py on 127.0.0.1 only, bounded to 240 s.
#
# Prints "compose: N passed, M failed" last; exit 0 only when M is 0;
# exit 77 (skipped) when no Docker daemon can run here (not root, and none
# answers).
set -u
set -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO" || exit 1
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
PROJECT=digitdlb$$
IMAGE=digitd:compose-test-$$
LB_IMAGE=digitd-haproxy:compose-test-$$
LABEL=compose
# shellcheck source=tests/lib/docker.sh
. "$REPO/tests/lib/docker.sh"

docker_tools

export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
WORK=$(mktemp -d /tmp/digitd-compose-test.XXXXXX)
chmod 755 "$WORK"
COMPOSE=(docker-compose -p "$PROJECT" -f "$REPO/deploy/compose/docker-compose.yml")

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    log "tearing down"
    touch "$WORK/stop"
    "${COMPOSE[@]}" down --remove-orphans -t 10 >/dev/null 2>&1
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    [ -z "$left" ] || docker rm -f $left >/dev/null 2>&1
    [ "${DIGITD_COMPOSE_SKIP_BUILD:-0}" = 1 ] || docker image rm "$IMAGE" >/dev/null 2>&1
    docker image rm "$LB_IMAGE" >/dev/null 2>&1
    docker image prune -f >/dev/null 2>&1
    rm -rf "$WORK"
    check "teardown: no test container left" \
        test -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)"
    docker_down
    summary
    if [ $rc = 0 ] && [ $FAILED != 0 ]; then rc=1; fi
    if [ $rc = 77 ] && [ $FAILED != 0 ]; then rc=1; fi
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the daemon, the base image, the images ---------------------------------
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
if [ "${DIGITD_COMPOSE_SKIP_BUILD:-0}" = 1 ]; then
    IMAGE=digitd:latest
else
    log "building $IMAGE"
    if ! timeout 1500 docker build --network host --build-arg RUN_UNIT_TESTS=0 -q -t "$IMAGE" . \
        >"$WORK/build.log" 2>&1; then
        tail -20 "$WORK/build.log"
        fail "build the digitd image"
        exit 1
    fi
    pass "build the digitd image"
fi
if ! timeout 600 docker build --network host -q -t "$LB_IMAGE" -f deploy/compose/haproxy.Dockerfile \
    deploy/compose >"$WORK/build-lb.log" 2>&1; then
    tail -20 "$WORK/build-lb.log"
    fail "build the haproxy image"
    exit 1
fi
pass "build the haproxy image"

# ---- up -----------------------------------------------------------------------
mkdir -p "$WORK/models"
cp models/mlp.model "$WORK/models/old.model"
cp models/cnn.model "$WORK/models/new.model"
chmod -R a+rX "$WORK/models"
export DIGITD_IMAGE=$IMAGE DIGITD_LB_IMAGE=$LB_IMAGE DIGITD_MODELS_DIR=$WORK/models
export DIGITD_LB_ADDR=127.0.0.1 DIGITD_LB_PORT=$(free_port)
export DIGITD1_PORT=$(free_port) DIGITD2_PORT=$(free_port) DIGITD3_PORT=$(free_port)
export DIGITD1_MODEL=old.model DIGITD2_MODEL=old.model DIGITD3_MODEL=old.model
if ! "${COMPOSE[@]}" up -d --no-build >/dev/null 2>"$WORK/up.log"; then
    cat "$WORK/up.log"
    fail "compose up"
    exit 1
fi
pass "compose up"

# ready: $1 port answers /readyz 200 (within $2 seconds)
ready() {
    local port=$1 limit=$2 i=0
    while [ $i -lt $((limit * 10)) ]; do
        "$PY" - "$port" <<'EOF' && return 0
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
    c.request("GET", "/readyz")
    sys.exit(0 if c.getresponse().status == 200 else 1)
except OSError:
    sys.exit(1)
EOF
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
model_id() { # the id a replica on port $1 serves
    "$PY" -c 'import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/model"); print(json.loads(c.getresponse().read())["id"])' "$1"
}
for p in $DIGITD1_PORT $DIGITD2_PORT $DIGITD3_PORT $DIGITD_LB_PORT; do
    if ! ready "$p" 60; then
        "${COMPOSE[@]}" logs --tail 20
        fail "port $p ready"
        exit 1
    fi
done
pass "replicas and balancer ready"
OLD_ID=$(model_id "$DIGITD1_PORT")
sleep 1.5 # haproxy's first checks of every replica

# ---- the load, and what happens under it ---------------------------------------
"$PY" tests/deploy/lb_load.py --port "$DIGITD_LB_PORT" --seconds 240 --threads 3 \
    --stop-file "$WORK/stop" --out "$WORK/load.json" &
LOAD_PID=$!
sleep 3
cid() { "${COMPOSE[@]}" ps -q "$1"; }

log "SIGKILL digitd1"
docker kill -s KILL "$(cid digitd1)" >/dev/null
sleep 2
"${COMPOSE[@]}" start digitd1 >/dev/null 2>&1
check "digitd1 back after SIGKILL" ready "$DIGITD1_PORT" 30
sleep 1.5

log "SIGTERM digitd2 (drain)"
docker kill -s TERM "$(cid digitd2)" >/dev/null
check "digitd2 exits 0 on SIGTERM" test "$(timeout 40 docker wait "$(cid digitd2)")" = 0
"${COMPOSE[@]}" start digitd2 >/dev/null 2>&1
check "digitd2 back after SIGTERM" ready "$DIGITD2_PORT" 30
sleep 1.5

for i in 1 2 3; do
    log "rolling digitd$i to the new model"
    export "DIGITD${i}_MODEL=new.model"
    "${COMPOSE[@]}" up -d --no-deps --no-build "digitd$i" >/dev/null 2>&1
    port_var=DIGITD${i}_PORT
    check "digitd$i serves again" ready "${!port_var}" 30
    sleep 1.5 # haproxy's `rise 2` at 500 ms
done
NEW_ID=$(model_id "$DIGITD1_PORT")
sleep 1
touch "$WORK/stop"
wait $LOAD_PID

# ---- verdict --------------------------------------------------------------------
log "models: old $OLD_ID, new $NEW_ID"
"$PY" - "$WORK/load.json" "$OLD_ID" "$NEW_ID" >"$WORK/verdict.txt" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
old, new = sys.argv[2], sys.argv[3]
print("answers: %d ok, %d failed; by model %s" % (r["ok"], len(r["failures"]), r["models"]))
for f in r["failures"][:10]:
    print("  failed:", f)
bad = []
if r["failures"]: bad.append("failed requests")
if r["timed_out"]: bad.append("the load's time bound ran out")
if r["ok"] < 100: bad.append("too few answers")
if set(r["models"]) - {old, new}: bad.append("unknown models answered")
if not r["models"].get(old) or not r["models"].get(new): bad.append("not both models answered")
if any(m != new for m in r["last_models"]): bad.append("old model after the roll")
print("verdict:", ", ".join(bad) if bad else "ok")
sys.exit(1 if bad else 0)
EOF
rc=$?
cat "$WORK/verdict.txt" | while read -r line; do log "$line"; done
check "zero failed requests, every answer from a served model, the new one after the roll" test $rc = 0
test "$OLD_ID" != "$NEW_ID"
check "the roll changed the model" test $? = 0
