#!/bin/sh
# dockerd.sh: start or stop a private Docker daemon for digitd's container
# tests, on machines where no Docker engine runs by default (see
# ../shared/ENVIRONMENT.md, "Containers"). Needs root.
#
#   scripts/dockerd.sh start    start dockerd unless one already answers;
#                               prints the DOCKER_HOST to use on stdout
#   scripts/dockerd.sh stop     stop the dockerd this script started
#   scripts/dockerd.sh status   exit 0 when it answers, 1 when not
#   scripts/dockerd.sh host     print its DOCKER_HOST
#
# The daemon has no bridge network (containers and builds use the host's
# network), no iptables rules, and its own data and exec roots:
#   DIGITD_DOCKER_ROOT  data root        (default /var/lib/digitd-docker)
#   DIGITD_DOCKER_RUN   exec root, pid, socket and log (default
#                       /run/digitd-docker; keep it short: containerd's
#                       sockets live under it)
# Exit status: 0 done, 1 failure, 77 not root (nothing can be done).
set -eu

ROOT=${DIGITD_DOCKER_ROOT:-/var/lib/digitd-docker}
RUN=${DIGITD_DOCKER_RUN:-/run/digitd-docker}
EXEC_ROOT=$RUN/exec
PIDFILE=$RUN/dockerd.pid
SOCK=$RUN/docker.sock
LOG=$RUN/dockerd.log
HOST=unix://$SOCK

say() { printf 'dockerd.sh: %s\n' "$*" >&2; }

answers() {
    DOCKER_HOST=$HOST docker version --format '{{.Server.Version}}' \
        >/dev/null 2>&1
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        say "must run as root to start or stop dockerd (skipping)"
        exit 77
    fi
}

start() {
    need_root
    if answers; then
        say "already running at $HOST"
        echo "$HOST"
        return 0
    fi
    command -v dockerd >/dev/null 2>&1 || {
        say "dockerd not found: apt-get install -y docker.io"
        exit 1
    }
    mkdir -p "$ROOT" "$EXEC_ROOT"
    rm -f "$SOCK" "$PIDFILE"
    # setsid: the daemon must not die with the shell or the test that
    # started it, and must not receive the terminal's signals.
    setsid dockerd \
        --data-root "$ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
        -H "$HOST" --storage-driver overlay2 \
        --iptables=false --ip6tables=false --bridge=none \
        --ip-forward=false --ip-masq=false \
        >"$LOG" 2>&1 </dev/null &
    i=0
    while ! answers; do
        i=$((i + 1))
        if [ $i -gt 60 ]; then
            say "dockerd did not answer within 30 s; its log ($LOG):"
            tail -n 30 "$LOG" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    say "started (pid $(cat "$PIDFILE")), DOCKER_HOST=$HOST, log $LOG"
    echo "$HOST"
}

stop() {
    need_root
    if [ -s "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            i=0
            while kill -0 "$pid" 2>/dev/null; do
                i=$((i + 1))
                if [ $i -gt 60 ]; then
                    say "dockerd (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
                    kill -KILL "$pid" 2>/dev/null || true
                    break
                fi
                sleep 0.5
            done
            say "stopped (pid $pid)"
        fi
        rm -f "$PIDFILE"
    else
        say "no pid file at $PIDFILE: nothing to stop"
    fi
    # dockerd leaves its default network namespace mounted (and, after a
    # crash, container mounts); unmount everything under the exec root.
    if [ -d "$EXEC_ROOT" ]; then
        awk -v root="$EXEC_ROOT" 'index($2, root) == 1 { print $2 }' \
            /proc/mounts | sort -r | while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    fi
    rm -f "$SOCK"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) answers ;;
host) echo "$HOST" ;;
*)
    echo "usage: $0 start|stop|status|host" >&2
    exit 2
    ;;
esac
