/* http_server.h: the transport of `digitd serve` on libmicrohttpd: the
 * listening socket, connections and their limits, request bodies within
 * their budgets and deadlines, the access log, request ids, security
 * headers, draining. What each path answers is in the routes_*.c files
 * (routes.h); decoding and inference run on the work queue.
 *
 * Budgets, so that no client can take more than its share:
 *   - max_body: bytes of one request body;
 *   - max_inflight_bytes: body bytes held across all requests at once
 *     (a request that does not fit is answered 503 with Retry-After);
 *     buffers grow as bytes arrive, whatever Content-Length claims;
 *   - read_deadline_s: from a request's first byte (or the end of the
 *     previous request on the connection) to the end of its body; a
 *     client that trickles bytes is cut when it passes;
 *   - timeout_s: idle seconds (no byte at all) before a connection is cut;
 *   - the work queue's length and each job's deadline (work_deadline_ms),
 *     past which a queued request is answered 503 undecoded. */
#ifndef DIGITD_HTTP_SERVER_H
#define DIGITD_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "model_slot.h"
#include "nn.h"
#include "static_files.h"
#include "work_queue.h"

typedef enum { LOG_TEXT, LOG_JSON } log_format;

typedef struct {
    int listen_fd;             /* bound and listening (listen_socket_open) */
    int threads;               /* HTTP threads, >= 1 */
    size_t max_body;           /* request body bytes */
    size_t max_inflight_bytes; /* body bytes across all requests */
    int max_width, max_height; /* image sides, pixels */
    long max_pixels;           /* decoded pixels per request, batch included */
    int max_batch;             /* inputs per JSON batch */
    unsigned max_connections;  /* open connections in total */
    unsigned max_per_ip;       /* open connections per client address */
    unsigned timeout_s;        /* idle seconds before a connection is closed */
    unsigned read_deadline_s;  /* headers + body, absolute */
    unsigned work_deadline_ms; /* queue wait before decoding starts */
    const char *cors_origins;  /* comma-separated, "*", or NULL: no CORS */
    bool quiet;                /* no access log */
    log_format log_format;
} http_config;

/* What route handlers may use: the loaded model, the page, counters, the
 * inference queue, the configuration. Owned by cmd_serve. */
typedef struct {
    model_slot *slot;
    const static_root *web;
    metrics *m;
    work_queue *queue;
    const http_config *cfg;
    atomic_int draining; /* 1 after SIGTERM: readiness answers 503 */
    atomic_llong in_flight; /* requests begun, not completed (transport) */
} server_ctx;

typedef struct http_server http_server;

/* Opens a listening TCP socket on bind:port (an IPv4 or IPv6 literal; port
 * 0 = any free one) WITHOUT address reuse across processes, so a second
 * daemon on a busy port fails here. Returns the descriptor, or -1 with err
 * ("address in use", "not an address of this machine", ...). */
int listen_socket_open(const char *bind, int port, nn_error *err);

/* The port a listening socket is bound to. */
int listen_socket_port(int fd);

/* Starts serving cfg->listen_fd in background threads. ctx and cfg must
 * outlive the server. Returns NULL with err. */
http_server *http_server_start(const http_config *cfg, server_ctx *ctx,
                               nn_error *err);

/* Graceful stop: stops accepting, lets the work queue finish every queued
 * job (each is answered), waits up to grace_ms for requests in flight,
 * then stops the threads and closes every connection. Frees s. Returns
 * the number of requests still in flight when it gave up (0 normally). */
long http_server_shutdown(http_server *s, int grace_ms);

#endif
