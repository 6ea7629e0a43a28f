/* http_server.h: the HTTP side of `digitd serve` on libmicrohttpd: the
 * listening socket, the worker thread pool, routing, request bodies and
 * their limit, JSON errors, security headers and the access log.
 *
 * Routes:
 *   POST /predict            predict_request.h
 *   GET  /healthz            200 while the process runs
 *   GET  /readyz             200 once a model is loaded, else 503
 *   GET  /model              the loaded model's description
 *   GET  /metrics            Prometheus text (metrics.h)
 *   GET  / and other paths   static files from the web root
 * GET routes also answer HEAD. Anything else: 404, or 405 with Allow. */
#ifndef DIGITD_HTTP_SERVER_H
#define DIGITD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "model_slot.h"
#include "nn.h"
#include "static_files.h"

typedef struct {
    const char *bind;          /* IPv4 or IPv6 address literal */
    int port;                  /* 0: any free port (see http_server_port) */
    int threads;               /* worker threads, >= 1 */
    size_t max_body;           /* request body bytes */
    int max_width, max_height; /* image sides, pixels */
    int max_batch;             /* inputs per JSON batch */
    unsigned max_connections;  /* open connections in total */
    unsigned max_per_ip;       /* open connections per client address */
    unsigned timeout_s;        /* idle seconds before a connection is closed */
    const char *cors_origin;   /* NULL: no CORS headers at all */
    bool quiet;                /* no access log */
} http_config;

typedef struct http_server http_server;

/* Binds and starts serving in background threads. slot, web and m must
 * outlive the server; cfg is copied (its strings must outlive it too).
 * Returns NULL with err when the address is invalid or cannot be bound. */
http_server *http_server_start(const http_config *cfg, model_slot *slot,
                               const static_root *web, metrics *m,
                               nn_error *err);

/* The port actually bound (useful after asking for port 0). */
int http_server_port(const http_server *s);

/* Graceful stop: closes the listening socket (new connections are
 * refused), waits up to grace_ms for requests in flight to be answered,
 * then stops the threads and closes every connection. Frees s. Returns the
 * number of requests still in flight when it gave up (0 normally). */
long http_server_shutdown(http_server *s, int grace_ms);

#endif
