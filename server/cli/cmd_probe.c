/* cmd_probe.c: `digitd probe`, the container health check.
 *
 * Asks a local daemon for GET /readyz over a plain TCP socket and exits 0
 * when it answers HTTP 200, 1 otherwise (refused, timed out, not ready,
 * not HTTP). It needs nothing but the digitd binary, so the slim runtime
 * image (no curl, no wget) can use it as its HEALTHCHECK. The port comes
 * from --port, else DIGITD_PORT, else 8080 (probe_options). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/options.h"
#include "commands.h"

enum { P_PORT, P_HOST, P_PATH, P_TIMEOUT, P_QUIET, P_COUNT };
/* The port and address come from the variables the daemon reads, so the
 * check follows the daemon when a container moves it. */
static const cli_option probe_options[P_COUNT] = {
    [P_PORT] = {"port", 'p', "DIGITD_PORT", CLI_INT, "N", 1, 65535,
                CLI_DEFAULT_PORT, "port"},
    [P_HOST] = {"host", 'H', "DIGITD_BIND", CLI_STRING, "ADDR", 0, 0,
                CLI_DEFAULT_BIND, "address to ask (its loopback when it is "
                "0.0.0.0 or ::)"},
    [P_PATH] = {"path", 0, NULL, CLI_STRING, "PATH", 0, 0, "/readyz",
                "path to ask"},
    [P_TIMEOUT] = {"timeout", 't', NULL, CLI_DOUBLE, "SEC", 0.1, 60, "2",
                   "give up after SEC seconds"},
    [P_QUIET] = {"quiet", 'q', NULL, CLI_FLAG, NULL, 0, 0, NULL,
                 "print nothing, only the exit status"},
};
static const cli_command probe_command = {
    "probe", "[OPTIONS]",
    "Exit 0 when the daemon on this machine answers GET /readyz with\n"
    "HTTP 200 (model loaded), 1 when not. For container health checks.",
    probe_options, P_COUNT, 0, 0, NULL,
};

/* Milliseconds left until `deadline` (CLOCK_MONOTONIC), at least 0. */
static int ms_left(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000L +
              (deadline->tv_nsec - now.tv_nsec) / 1000000L;
    return ms > 0 ? (int)ms : 0;
}

/* Waits until fd is ready for `events` or the deadline passes.
 * Returns 0 when ready, -1 on timeout or error (errno set). */
static int wait_fd(int fd, short events, const struct timespec *deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int left = ms_left(deadline);
        int n = poll(&p, 1, left);
        if (n > 0) return 0;
        if (n == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR) return -1;
    }
}

/* Connects a non-blocking socket to host:port before the deadline.
 * Returns the socket, or -1 with a reason in `why`. */
static int connect_before(const char *host, const char *port,
                          const struct timespec *deadline, char *why,
                          size_t why_len) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        snprintf(why, why_len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int err = 0;
    for (struct addrinfo *a = list; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                break;
        } else {
            err = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0)
        snprintf(why, why_len, "cannot connect to %s port %s: %s", host, port,
                 strerror(err ? err : ECONNREFUSED));
    return fd;
}

/* Sends the request (authority is "host:port", IPv6 hosts in brackets)
 * and reads the status line. Returns the HTTP status, or -1 with a reason
 * in `why`. */
static int ask(int fd, const char *authority, const char *path,
               const struct timespec *deadline, char *why, size_t why_len) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\n"
                     "User-Agent: digitd-probe\r\nConnection: close\r\n\r\n",
                     path, authority);
    if (n < 0 || (size_t)n >= sizeof req) {
        snprintf(why, why_len, "request too long");
        return -1;
    }
    for (size_t sent = 0; sent < (size_t)n;) {
        if (wait_fd(fd, POLLOUT, deadline) < 0) goto io_error;
        ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) goto io_error;
        if (w > 0) sent += (size_t)w;
    }
    /* "HTTP/1.1 200 OK\r\n": the status line is all we need. */
    char buf[64];
    size_t got = 0;
    while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
        if (wait_fd(fd, POLLIN, deadline) < 0) goto io_error;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            goto io_error;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    int status;
    if (sscanf(buf, "HTTP/%*d.%*d %3d", &status) != 1) {
        snprintf(why, why_len, "the answer is not HTTP");
        return -1;
    }
    return status;
io_error:
    snprintf(why, why_len, "%s", errno == ETIMEDOUT ? "timed out" : strerror(errno));
    return -1;
}

int cmd_probe(int argc, char **argv) {
    cli_value v[P_COUNT] = {0};
    int rest, st = cli_parse(&probe_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    const long port = v[P_PORT].i;
    const char *host = v[P_HOST].str, *path = v[P_PATH].str;
    const double timeout = v[P_TIMEOUT].d;
    const bool quiet = v[P_QUIET].on;
    /* Ask where the daemon listens: its own address, or the loopback
     * address of the family when it listens on every interface. */
    if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
    else if (strcmp(host, "::") == 0) host = "::1";
    if (path[0] != '/' || strpbrk(path, " \r\n")) {
        return cli_usage_error(&probe_command,
                               "--path must start with '/' and hold no spaces");
    }

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)timeout;
    deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    char port_str[8], why[160] = "", authority[300];
    snprintf(port_str, sizeof port_str, "%ld", port);
    snprintf(authority, sizeof authority, strchr(host, ':') ? "[%s]:%ld" : "%s:%ld",
             host, port);
    int status = -1;
    int fd = connect_before(host, port_str, &deadline, why, sizeof why);
    if (fd >= 0) {
        status = ask(fd, authority, path, &deadline, why, sizeof why);
        close(fd);
    }
    if (status == 200) {
        if (!quiet) printf("digitd probe: http://%s%s: 200, ready\n", authority, path);
        return 0;
    }
    if (!quiet) {
        if (status > 0)
            fprintf(stderr, "digitd probe: http://%s%s: HTTP %d, not ready\n",
                    authority, path, status);
        else
            fprintf(stderr, "digitd probe: http://%s%s: %s\n", authority, path, why);
    }
    return 1;
}
