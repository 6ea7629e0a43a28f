# docker_up.sh: sourced by the tests that need a Docker engine
# (tests/docker/docker_test.sh, tests/deploy/compose_failover.sh).
#
# docker_up LABEL: finds a Docker daemon (DOCKER_HOST, the default socket,
# or one scripts/dockerd.sh left running) or starts one, exports
# DOCKER_HOST, sets STARTED_DOCKERD=1 when it started it (and
# DOCKERD_MOUNTS_BEFORE to dockerd_mounts before the start), then makes the
# base image debian:bookworm-slim when missing. Returns 0; 77 when that is
# impossible here (not root: "LABEL: SKIPPED: ..." was printed); 1 after
# `fail` for a real failure. Needs REPO, and log/fail from the caller.
# dockerd_mounts: the mount points under the private dockerd's data and
# exec roots (scripts/dockerd.sh), one per line, sorted.
dockerd_mounts() {
    awk -v root="${DIGITD_DOCKER_ROOT:-/var/lib/digitd-docker}" \
        -v run="${DIGITD_DOCKER_RUN:-/run/digitd-docker}" \
        'index($2, root) == 1 || index($2, run) == 1 { print $2 }' \
        /proc/mounts | sort
}

docker_up() {
    local label=$1 host rc
    if ! docker version >/dev/null 2>&1; then
        if DOCKER_HOST=unix:///var/run/docker.sock docker version >/dev/null 2>&1; then
            export DOCKER_HOST=unix:///var/run/docker.sock
        elif "$REPO/scripts/dockerd.sh" status; then # left running by someone
            DOCKER_HOST=$("$REPO/scripts/dockerd.sh" host)
            export DOCKER_HOST
        else
            # Some machines mount the data root themselves (a disk of its
            # own under /var/lib/digitd-docker): only what appears after
            # the start counts as left behind by the daemon.
            DOCKERD_MOUNTS_BEFORE=$(dockerd_mounts)
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
