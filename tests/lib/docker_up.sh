# docker_up.sh: sourced by the tests that need a Docker engine
# (tests/docker/docker_test.sh, tests/deploy/compose_failover.sh).
#
# docker_up LABEL: finds a Docker daemon (DOCKER_HOST, the default socket,
# or one scripts/dockerd.sh left running) or starts one, exports
# DOCKER_HOST, sets STARTED_DOCKERD=1 when it started it, then makes the
# base image debian:bookworm-slim when missing. Returns 0; 77 when that is
# impossible here (not root: "LABEL: SKIPPED: ..." was printed); 1 after
# `fail` for a real failure. Needs REPO, and log/fail from the caller.
docker_up() {
    local label=$1 host rc
    if ! docker version >/dev/null 2>&1; then
        if DOCKER_HOST=unix:///var/run/docker.sock docker version >/dev/null 2>&1; then
            export DOCKER_HOST=unix:///var/run/docker.sock
        elif "$REPO/scripts/dockerd.sh" status; then # left running by someone
            DOCKER_HOST=$("$REPO/scripts/dockerd.sh" host)
            export DOCKER_HOST
        else
            host=$("$REPO/scripts/dockerd.sh" start)
            rc=$?
            if [ $rc = 77 ]; then
                echo "$label: SKIPPED: no Docker daemon answers and starting one needs root"
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
