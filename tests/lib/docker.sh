# docker.sh: sourced by the tests that need a Docker engine
# (tests/docker/docker_test.sh, tests/deploy/compose_failover.sh): their
# checks and summary, the tools they install, and the daemon they start
# and stop. Needs REPO and LABEL (the prefix of every line: docker,
# compose) set before it is sourced.
#
#   log/pass/fail/check, summary   "[LABEL   Ns] PASS what" lines, and the
#                                  "LABEL: N passed, M failed" line last
#   docker_tools                   installs docker.io, docker-compose and
#                                  debootstrap when missing; exits 77
#                                  (skipped) when that needs root, 1 when
#                                  it fails
#   docker_up                      finds or starts a daemon, makes the base
#                                  image (below)
#   docker_down                    stops the daemon docker_up started and
#                                  checks that it left no mount behind
PASSED=0
FAILED=0
FAILURES=()
STARTED_DOCKERD=0
DOCKERD_MOUNTS_BEFORE=
T_START=$(date +%s)

log() { printf '[%s %4ds] %s\n' "$LABEL" $(($(date +%s) - T_START)) "$*"; }
pass() {
    PASSED=$((PASSED + 1))
    log "PASS $*"
}
fail() {
    FAILED=$((FAILED + 1))
    FAILURES+=("$*")
    log "FAIL $*"
}
check() { # check "what" command...: pass or fail on the command's status
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
summary() {
    local t=$(($(date +%s) - T_START))
    for f in "${FAILURES[@]+"${FAILURES[@]}"}"; do log "failed: $f"; done
    echo "$LABEL: $PASSED passed, $FAILED failed (${t}s)"
}

# Without root a test only runs against a Docker daemon that already
# answers (e.g. as a member of the docker group) and a base image that
# exists.
docker_tools() {
    if [ "$(id -u)" != 0 ] && ! docker version >/dev/null 2>&1; then
        echo "$LABEL: SKIPPED: needs root to run a Docker daemon (run: sudo $0)"
        exit 77
    fi
    local missing=()
    command -v docker >/dev/null 2>&1 && command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$LABEL: SKIPPED: ${missing[*]} missing, and installing needs root"
        exit 77
    fi
    echo "[$LABEL] installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 &&
            apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
        { echo "$LABEL: FAILED: cannot install ${missing[*]}"; exit 1; }
}

# dockerd_mounts: the mount points under the private dockerd's data and
# exec roots (scripts/dockerd.sh), one per line, sorted.
dockerd_mounts() {
    awk -v root="${DIGITD_DOCKER_ROOT:-/var/lib/digitd-docker}" \
        -v run="${DIGITD_DOCKER_RUN:-/run/digitd-docker}" \
        'index($2, root) == 1 || index($2, run) == 1 { print $2 }' \
        /proc/mounts | sort
}

# docker_up: finds a Docker daemon (DOCKER_HOST, the default socket, or one
# scripts/dockerd.sh left running) or starts one, exports DOCKER_HOST, sets
# STARTED_DOCKERD=1 when it started it, then makes the base image
# debian:bookworm-slim when missing. Returns 0; 77 when that is impossible
# here (not root: "LABEL: SKIPPED: ..." was printed); 1 after `fail` for a
# real failure.
docker_up() {
    local host rc
    if ! docker version >/dev/null 2>&1; then
        if DOCKER_HOST=unix:///var/run/docker.sock docker version >/dev/null 2>&1; then
            export DOCKER_HOST=unix:///var/run/docker.sock
        elif "$REPO/scripts/dockerd.sh" status; then # left running by someone
            DOCKER_HOST=$("$REPO/scripts/dockerd.sh" host)
            export DOCKER_HOST
        else
            # what is mounted before the start is not the daemon's
            DOCKERD_MOUNTS_BEFORE=$(dockerd_mounts)
            host=$("$REPO/scripts/dockerd.sh" start)
            rc=$?
            if [ $rc = 77 ]; then
                echo "$LABEL: SKIPPED: no Docker daemon answers and starting one needs root"
                return 77
            elif [ $rc != 0 ]; then
                fail "start dockerd"
                return 1
            fi
            export DOCKER_HOST=$host
            STARTED_DOCKERD=1
        fi
    fi
    log "Docker $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-default socket}"
    timeout 600 "$REPO/scripts/docker-base-image.sh"
    rc=$?
    if [ $rc = 77 ]; then
        log "SKIPPED: debian:bookworm-slim is missing and making it needs root"
        return 77
    elif [ $rc != 0 ]; then
        fail "make the base image debian:bookworm-slim"
        return 1
    fi
    return 0
}

# docker_down: stops the daemon docker_up started, if it did. Some machines
# mount the data root themselves (a disk of its own): only a mount that
# was not there before the start counts as left behind.
docker_down() {
    [ "$STARTED_DOCKERD" = 1 ] || return 0
    "$REPO/scripts/dockerd.sh" stop
    local left
    left=$(comm -13 <(echo "$DOCKERD_MOUNTS_BEFORE") <(dockerd_mounts) | grep .)
    if [ -n "$left" ]; then
        fail "mounts of the private dockerd are left behind"
        echo "$left"
    else
        pass "dockerd stopped, no mount left behind"
    fi
}
