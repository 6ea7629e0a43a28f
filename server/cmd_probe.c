/* cmd_probe.c: `digitd probe`, the container health check.
 *
 * Asks a local daemon for GET /readyz over a plain TCP socket and exits 0
 * when it answers HTTP 200, 1 otherwise (refused, timed out, not ready,
 * not HTTP). It needs nothing but the digitd binary, so the slim runtime
 * image (no curl, no wget) can use it as its HEALTHCHECK. The port comes
 * from --port, else DIGITD_PORT, else 8080: the same variable the daemon
 * reads, so the check follows the daemon when a container moves it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static void probe_usage(FILE *to) {
    fprintf(to,
            "usage: digitd probe [OPTIONS]\n"
            "\n"
            "Exit 0 when the daemon on this machine answers GET /readyz with\n"
            "HTTP 200 (model loaded), 1 when not. For container health checks.\n"
            "\n"
            "  -p, --port N        port (default: $DIGITD_PORT, else 8080)\n"
            "  -H, --host ADDR     address to ask (default: $DIGITD_BIND, its\n"
            "                      loopback when it is 0.0.0.0 or ::; else 127.0.0.1)\n"
            "      --path PATH     path to ask (default: /readyz)\n"
            "  -t, --timeout SEC   give up after SEC seconds (default: 2)\n"
            "  -q, --quiet         print nothing, only the exit status\n"
            "  -h, --help          this text\n");
}

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
    static const struct option options[] = {
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {"path", required_argument, NULL, 'P'},
        {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *port_text = cli_env("DIGITD_PORT", "8080");
    const char *port_from = getenv("DIGITD_PORT") && *getenv("DIGITD_PORT")
                                ? "DIGITD_PORT" : "--port";
    /* Ask where the daemon listens: its own address, or the loopback
     * address of the family when it listens on every interface. */
    const char *host = cli_env("DIGITD_BIND", "127.0.0.1");
    if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
    else if (strcmp(host, "::") == 0) host = "::1";
    const char *path = "/readyz";
    double timeout = 2.0;
    int quiet = 0;

    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "p:H:t:qh", options, NULL)) != -1) {
        switch (c) {
        case 'p':
            port_text = optarg;
            port_from = "--port";
            break;
        case 'H': host = optarg; break;
        case 'P': path = optarg; break;
        case 't':
            if (cli_double(optarg, "--timeout", 0.1, 60, &timeout) < 0) return 2;
            break;
        case 'q': quiet = 1; break;
        case 'h': probe_usage(stdout); return 0;
        default: probe_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "digitd probe: unexpected argument '%s'\n", argv[optind]);
        probe_usage(stderr);
        return 2;
    }
    long port;
    if (cli_int(port_text, port_from, 1, 65535, &port) < 0) return 2;
    if (path[0] != '/' || strpbrk(path, " \r\n")) {
        fprintf(stderr, "digitd probe: --path must start with '/' and hold no spaces\n");
        return 2;
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
