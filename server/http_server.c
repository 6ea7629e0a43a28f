/* http_server.c: see http_server.h.
 *
 * libmicrohttpd calls on_request several times per request: once when the
 * headers are in (*con_cls still NULL), once per piece of body, and once
 * more with no data when the body is complete. Everything that can be
 * decided from the headers alone (route, method, model present, declared
 * length, Content-Type) is answered on the first call, so a client that
 * sends `Expect: 100-continue` never uploads a body we would refuse.
 * on_completed runs after the answer was sent (or the connection died) and
 * writes the access log line and the metrics. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "predict_request.h"
#include "text_buffer.h"

/* Security headers. The page's policy allows only its own scripts, styles
 * and connections, plus data:/blob: images (the preview of the normalised
 * input); API answers allow nothing at all. */
#define CSP_PAGE                                                              \
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "     \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define CSP_API "default-src 'none'; frame-ancestors 'none'"

#define JSON_TYPE "application/json"

/* A chunked body that overflows the limit is read to its end and dropped,
 * and then answered 413: libmicrohttpd 0.9.75 cannot queue an answer in
 * the middle of a body. Reading is cheap, but not forever: past this many
 * dropped bytes the connection is cut (logged as 413, nothing sent). */
#define DISCARD_ALLOWANCE ((size_t)64 << 20)

struct http_server {
    http_config cfg;
    model_slot *slot;
    const static_root *web;
    metrics *m;
    struct MHD_Daemon *daemon;
    int port;
    /* Connections open now, counted by on_connection; accept_policy
     * refuses new ones at cfg.max_connections (see there). */
    atomic_uint open_connections;
};

/* Everything about one request, from its headers to its log line. */
typedef struct {
    struct timespec start; /* CLOCK_MONOTONIC */
    metrics_route route;
    int status;         /* of the queued answer; 0 while none */
    uint64_t bytes_out; /* body bytes of the answer */
    char method[16];
    char path[160];     /* printable copy for the log */
    char client[48];
    int is_head;
    /* What to do once the request is complete: the GET handler of an API
     * route, or static files when `serve_static` (answers are queued at
     * the end of the request, never on its first call, because MHD closes
     * the connection after an answer queued before the request was read
     * in full, which is right for refusals and wrong for keep-alive). */
    struct api_route_s const *get;
    int serve_static;
    /* POST /predict only */
    uint8_t *body;
    size_t len, cap;
    size_t dropped;     /* bytes discarded after overflowing the limit */
    int too_large;
} request_ctx;

/* ---- answers --------------------------------------------------------- */

/* Queues body (len bytes; ownership passes to MHD when must_free) with the
 * headers every answer carries. allow: the Allow header for 405s, or NULL. */
static enum MHD_Result send_answer(http_server *s, struct MHD_Connection *c,
                                   request_ctx *rq, int status,
                                   const char *content_type, void *body,
                                   size_t len, int must_free,
                                   const char *allow) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(body);
        return MHD_NO;
    }
    if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP_API);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    if (s->cfg.cors_origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", s->cfg.cors_origin);
        if (strcmp(s->cfg.cors_origin, "*") != 0)
            MHD_add_response_header(r, "Vary", "Origin");
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        rq->status = status;
        rq->bytes_out = rq->is_head ? 0 : len;
    }
    return ok;
}

/* The one error form: {"error": {"status": N, "message": "..."}}. */
static enum MHD_Result send_error(http_server *s, struct MHD_Connection *c,
                                  request_ctx *rq, int status,
                                  const char *message, const char *allow) {
    text_buffer t;
    tb_init(&t, 128 + strlen(message));
    tb_printf(&t, "{\"error\":{\"status\":%d,\"message\":", status);
    tb_json_string(&t, message);
    tb_printf(&t, "}}\n");
    size_t len;
    char *body = tb_take(&t, &len);
    if (!body) return MHD_NO;
    return send_answer(s, c, rq, status, JSON_TYPE, body, len, 1, allow);
}

static enum MHD_Result send_json(http_server *s, struct MHD_Connection *c,
                                 request_ctx *rq, int status, text_buffer *t) {
    size_t len;
    char *body = tb_take(t, &len);
    if (!body) return MHD_NO;
    return send_answer(s, c, rq, status, JSON_TYPE, body, len, 1, NULL);
}

/* ---- GET routes -------------------------------------------------------- */

static enum MHD_Result get_healthz(http_server *s, struct MHD_Connection *c,
                                   request_ctx *rq) {
    static char ok[] = "{\"status\":\"ok\"}\n";
    return send_answer(s, c, rq, 200, JSON_TYPE, ok, sizeof ok - 1, 0, NULL);
}

static enum MHD_Result get_readyz(http_server *s, struct MHD_Connection *c,
                                  request_ctx *rq) {
    served_model *m = model_slot_acquire(s->slot);
    if (!m) return send_error(s, c, rq, 503, "no model is loaded yet", NULL);
    text_buffer t;
    tb_init(&t, 160);
    tb_printf(&t, "{\"status\":\"ready\",\"model\":");
    tb_json_string(&t, m->id);
    tb_printf(&t, "}\n");
    served_model_release(m);
    return send_json(s, c, rq, 200, &t);
}

/* A Unix time as "2024-05-01T12:00:00Z" (UTC). */
static void iso8601(int64_t t, char *buf, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A fraction, or null when the model file recorded none (-1). */
static void json_fraction(text_buffer *t, const char *key, double v) {
    if (v >= 0 && v <= 1)
        tb_printf(t, ",\"%s\":%.4f", key, v);
    else
        tb_printf(t, ",\"%s\":null", key);
}

static enum MHD_Result get_model(http_server *s, struct MHD_Connection *c,
                                 request_ctx *rq) {
    served_model *m = model_slot_acquire(s->slot);
    if (!m) return send_error(s, c, rq, 503, "no model is loaded yet", NULL);
    const nn_meta *meta = &m->net->meta;
    char loaded[32], created[32];
    iso8601((int64_t)m->loaded_at.tv_sec, loaded, sizeof loaded);
    text_buffer t;
    tb_init(&t, 1024);
    tb_printf(&t, "{\"id\":");
    tb_json_string(&t, m->id);
    tb_printf(&t, ",\"name\":");
    tb_json_string(&t, m->name);
    tb_printf(&t, ",\"architecture\":");
    tb_json_string(&t, m->architecture);
    tb_printf(&t, ",\"parameters\":%zu", m->net->n_params);
    json_fraction(&t, "test_accuracy", meta->test_accuracy);
    json_fraction(&t, "validation_accuracy", meta->val_accuracy);
    tb_printf(&t, ",\"sha256\":\"%s\",\"file_bytes\":%zu", m->sha256, m->file_bytes);
    if (meta->created_unix > 0) {
        iso8601(meta->created_unix, created, sizeof created);
        tb_printf(&t, ",\"created_at\":\"%s\"", created);
    } else {
        tb_printf(&t, ",\"created_at\":null");
    }
    tb_printf(&t, ",\"loaded_at\":\"%s\"}\n", loaded);
    served_model_release(m);
    return send_json(s, c, rq, 200, &t);
}

static enum MHD_Result get_metrics(http_server *s, struct MHD_Connection *c,
                                   request_ctx *rq) {
    size_t len;
    char *text = metrics_render(s->m, &len);
    if (!text) return send_error(s, c, rq, 500, "out of memory", NULL);
    return send_answer(s, c, rq, 200, "text/plain; version=0.0.4; charset=utf-8",
                       text, len, 1, NULL);
}

static enum MHD_Result get_static(http_server *s, struct MHD_Connection *c,
                                  request_ctx *rq, const char *url) {
    static_file f;
    if (static_open(s->web, url, &f) != 0)
        return send_error(s, c, rq, 404, "no such page", NULL);

    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    int not_modified = inm && strstr(inm, f.etag) != NULL;
    struct MHD_Response *r;
    if (not_modified) {
        close(f.fd);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else {
        /* MHD owns the descriptor from here and sends it with sendfile */
        r = MHD_create_response_from_fd64(f.size, f.fd);
        if (!r) close(f.fd);
    }
    if (!r) return MHD_NO;
    if (!not_modified) MHD_add_response_header(r, "Content-Type", f.content_type);
    MHD_add_response_header(r, "Cache-Control", f.cache_control);
    MHD_add_response_header(r, "ETag", f.etag);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP_PAGE);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    int status = not_modified ? 304 : 200;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        rq->status = status;
        rq->bytes_out = not_modified || rq->is_head ? 0 : f.size;
    }
    return ok;
}

/* ---- POST /predict ----------------------------------------------------- */

/* The first call for POST /predict: refuse early what the headers already
 * condemn; otherwise get ready for the body. Returns MHD_YES to go on. */
static enum MHD_Result predict_begin(http_server *s, struct MHD_Connection *c,
                                     request_ctx *rq) {
    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");

    if (!atomic_load(&s->m->model_loaded))
        return send_error(s, c, rq, 503, "no model is loaded yet; try again later", NULL);
    if (!clen && !te)
        return send_error(s, c, rq, 411,
                          "POST /predict needs a Content-Length (or a chunked body)",
                          NULL);
    unsigned long long declared = 0;
    if (clen) {
        char *end;
        errno = 0;
        declared = strtoull(clen, &end, 10);
        if (errno || *end != '\0' || clen[0] == '-')
            return send_error(s, c, rq, 400, "invalid Content-Length", NULL);
        if (declared > s->cfg.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body is %llu bytes; the limit is %zu",
                     declared, s->cfg.max_body);
            return send_error(s, c, rq, 413, msg, NULL);
        }
    }
    if (predict_body_kind_of(type) == BODY_UNSUPPORTED)
        return send_error(s, c, rq, 415,
                          type ? "unsupported Content-Type; send application/json, "
                                 "image/png, image/jpeg, image/bmp, image/gif or "
                                 "multipart/form-data"
                               : "missing Content-Type; send application/json, "
                                 "image/png, image/jpeg, image/bmp, image/gif or "
                                 "multipart/form-data",
                          NULL);

    size_t want = clen ? (size_t)declared : 64 * 1024;
    if (want > s->cfg.max_body) want = s->cfg.max_body;
    rq->cap = want ? want : 1;
    rq->body = malloc(rq->cap);
    if (!rq->body) return send_error(s, c, rq, 500, "out of memory", NULL);
    return MHD_YES;
}

/* A piece of body: keep it, or count it as dropped once over the limit. */
static enum MHD_Result predict_body(http_server *s, request_ctx *rq,
                                    const char *data, size_t size) {
    atomic_fetch_add_explicit(&s->m->bytes_in, size, memory_order_relaxed);
    if (rq->too_large || size > s->cfg.max_body - rq->len) {
        if (!rq->too_large) {
            rq->too_large = 1;
            free(rq->body);
            rq->body = NULL;
        }
        rq->dropped += size;
        /* An endless stream is not worth reading: cut it. */
        return rq->dropped > DISCARD_ALLOWANCE ? MHD_NO : MHD_YES;
    }
    if (rq->len + size > rq->cap) {
        size_t cap = rq->cap * 2;
        if (cap < rq->len + size) cap = rq->len + size;
        if (cap > s->cfg.max_body) cap = s->cfg.max_body;
        uint8_t *nb = realloc(rq->body, cap);
        if (!nb) return MHD_NO;
        rq->body = nb;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, size);
    rq->len += size;
    return MHD_YES;
}

/* "?include=input" (a comma-separated list may name more). */
static int wants_input(struct MHD_Connection *c) {
    const char *inc = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "include");
    if (!inc) return 0;
    for (const char *p = inc; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 5 && strncmp(p, "input", 5) == 0) return 1;
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

static enum MHD_Result predict_finish(http_server *s, struct MHD_Connection *c,
                                      request_ctx *rq) {
    if (rq->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes",
                 s->cfg.max_body);
        return send_error(s, c, rq, 413, msg, NULL);
    }
    served_model *model = model_slot_acquire(s->slot);
    if (!model) return send_error(s, c, rq, 503, "no model is loaded yet", NULL);

    const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    predict_limits lim = {s->cfg.max_width, s->cfg.max_height, s->cfg.max_batch,
                          PREDICT_DEFAULT_MAX_PIXELS};
    predict_outcome out;
    predict_handle(type, rq->body, rq->len, wants_input(c), &lim, model, &out);
    served_model_release(model);
    free(rq->body);
    rq->body = NULL;

    if (out.status != 200) return send_error(s, c, rq, out.status, out.message, NULL);
    for (int d = 0; d < 10; d++)
        if (out.per_digit[d])
            atomic_fetch_add_explicit(&s->m->predictions[d], (uint64_t)out.per_digit[d],
                                      memory_order_relaxed);
    return send_answer(s, c, rq, 200, JSON_TYPE, out.body, out.body_len, 1, NULL);
}

/* ---- routing ----------------------------------------------------------- */

typedef struct api_route_s {
    const char *path;
    metrics_route route;
    enum MHD_Result (*get)(http_server *, struct MHD_Connection *, request_ctx *);
} api_route;

static const api_route api_routes[] = {
    {"/predict", ROUTE_PREDICT, NULL},
    {"/healthz", ROUTE_HEALTHZ, get_healthz},
    {"/readyz", ROUTE_READYZ, get_readyz},
    {"/model", ROUTE_MODEL, get_model},
    {"/metrics", ROUTE_METRICS, get_metrics},
};

static const api_route *find_api_route(const char *url) {
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++)
        if (strcmp(url, api_routes[i].path) == 0) return &api_routes[i];
    return NULL;
}

static enum MHD_Result answer_preflight(http_server *s, struct MHD_Connection *c,
                                        request_ctx *rq, const char *methods) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", s->cfg.cors_origin);
    if (strcmp(s->cfg.cors_origin, "*") != 0) MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Access-Control-Allow-Methods", methods);
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    MHD_add_response_header(r, "Allow", methods);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP_API);
    enum MHD_Result ok = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) rq->status = 204;
    return ok;
}

/* The first call of a request: route it and answer whatever can be
 * answered from the headers. */
static enum MHD_Result begin(http_server *s, struct MHD_Connection *c,
                             request_ctx *rq, const char *url, const char *method) {
    int is_get = strcmp(method, "GET") == 0 || rq->is_head;
    int is_post = strcmp(method, "POST") == 0;
    int is_options = strcmp(method, "OPTIONS") == 0;
    const api_route *api = find_api_route(url);

    if (api && api->route == ROUTE_PREDICT) {
        const char *allow = s->cfg.cors_origin ? "POST, OPTIONS" : "POST";
        if (is_post) return predict_begin(s, c, rq);
        if (is_options && s->cfg.cors_origin) return answer_preflight(s, c, rq, allow);
        return send_error(s, c, rq, 405, "POST /predict only", allow);
    }
    if (api) {
        const char *allow = s->cfg.cors_origin ? "GET, HEAD, OPTIONS" : "GET, HEAD";
        if (is_get) {
            rq->get = api;
            return MHD_YES;
        }
        if (is_options && s->cfg.cors_origin) return answer_preflight(s, c, rq, allow);
        return send_error(s, c, rq, 405, "this route answers GET and HEAD only", allow);
    }
    if (is_get) {
        rq->serve_static = 1;
        return MHD_YES;
    }
    /* Another method on a page: 405 when the page exists, else 404. */
    static_file f;
    if (static_open(s->web, url, &f) == 0) {
        close(f.fd);
        return send_error(s, c, rq, 405, "pages answer GET and HEAD only", "GET, HEAD");
    }
    rq->route = ROUTE_OTHER;
    return send_error(s, c, rq, 404, "no such page", NULL);
}

/* Copies s into dst for the log: printable ASCII only, so a decoded %0a
 * in a path cannot forge log lines. */
static void printable_copy(char *dst, size_t size, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    dst[i] = '\0';
}

static void client_address(struct MHD_Connection *c, char *buf, size_t size) {
    snprintf(buf, size, "-");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  buf, (socklen_t)size);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    request_ctx *rq = *con_cls;

    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        *con_cls = rq;
        atomic_fetch_add(&s->m->in_flight, 1);
        printable_copy(rq->method, sizeof rq->method, method);
        printable_copy(rq->path, sizeof rq->path, url);
        if (!s->cfg.quiet) client_address(c, rq->client, sizeof rq->client);
        rq->is_head = strcmp(method, "HEAD") == 0;
        const api_route *api = find_api_route(url);
        rq->route = api ? api->route : ROUTE_STATIC;
        return begin(s, c, rq, url, method);
    }

    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        if (rq->status) return MHD_YES; /* answered already: drop the body */
        if (rq->route != ROUTE_PREDICT) return MHD_YES;
        return predict_body(s, rq, upload_data, size);
    }

    if (rq->status) return MHD_YES;
    if (rq->route == ROUTE_PREDICT) return predict_finish(s, c, rq);
    if (rq->get) return rq->get->get(s, c, rq);
    if (rq->serve_static) {
        enum MHD_Result ok = get_static(s, c, rq, url);
        if (rq->status == 404) rq->route = ROUTE_OTHER;
        return ok;
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)c;
    http_server *s = cls;
    request_ctx *rq = *con_cls;
    if (!rq) return;
    *con_cls = NULL;

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t us = (uint64_t)(now.tv_sec - rq->start.tv_sec) * 1000000u +
                  (uint64_t)((now.tv_nsec - rq->start.tv_nsec) / 1000);
    /* No answer sent: say why the way nginx does (408 timed out, 499
     * client went away, 500 anything else). */
    int status = rq->status;
    if (status == 0 && rq->too_large) status = 413; /* cut while dropping */
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK || status == 0) {
        if (why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) status = 408;
        else if (why == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
                 why == MHD_REQUEST_TERMINATED_READ_ERROR)
            status = status ? status : 499;
        else if (status == 0)
            status = 500;
    }
    metrics_observe(s->m, rq->route, status, us);
    atomic_fetch_add_explicit(&s->m->bytes_out, rq->bytes_out, memory_order_relaxed);

    if (!s->cfg.quiet) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        struct tm tm;
        gmtime_r(&wall.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        char line[512];
        int n = snprintf(line, sizeof line, "%s.%03ldZ %s %s %s %d %llu %lluus\n", when,
                         wall.tv_nsec / 1000000, rq->client, rq->method, rq->path,
                         status, (unsigned long long)rq->bytes_out,
                         (unsigned long long)us);
        /* one write per line keeps lines whole among threads */
        if (n > 0) {
            ssize_t w = write(STDERR_FILENO, line,
                              (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
            (void)w;
        }
    }
    free(rq->body);
    free(rq);
    atomic_fetch_sub(&s->m->in_flight, 1);
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes the path and query values in place, like MHD's own
 * decoder, except that "%00" stays as it is: a NUL would end the C string
 * early and make "/index.html%00.png" look like "/index.html". Returns the
 * new length. */
static size_t url_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    char *out = s;
    for (const char *in = s; *in; in++) {
        int hi, lo;
        if (in[0] == '%' && (hi = hex_value(in[1])) >= 0 && (lo = hex_value(in[2])) >= 0 &&
            (hi | lo) != 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n <= 0) return;
    /* MHD's messages end with a newline, mostly; make sure of one */
    char line[600];
    size_t len = strlen(msg);
    while (len && msg[len - 1] == '\n') msg[--len] = '\0';
    int m = snprintf(line, sizeof line, "digitd: http: %s\n", msg);
    if (m > 0) {
        ssize_t w = write(STDERR_FILENO, line, (size_t)m < sizeof line ? (size_t)m : sizeof line - 1);
        (void)w;
    }
}

/* ---- the connection limit --------------------------------------------- */

/* libmicrohttpd 0.9.75 at its own MHD_OPTION_CONNECTION_LIMIT stops
 * polling the listening socket, so a further client sits in the kernel's
 * backlog with no answer until some connection closes. Instead we count
 * open connections ourselves (NOTIFY_STARTED / NOTIFY_CLOSED) and refuse
 * the ones past --max-connections in the accept policy callback, which
 * MHD calls for every accepted socket before it sets up a connection:
 * MHD_NO closes the socket at once, so the extra client sees its
 * connection closed right away while the established ones keep being
 * served. MHD's own limit is set CONNECTION_MARGIN above ours (and
 * shared out among its worker threads): it is only a backstop for the few
 * sockets accepted at the same moment on several threads before their
 * NOTIFY_STARTED has counted them. */
#define CONNECTION_MARGIN(max) (16u + (max) / 8u)

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr,
                                     socklen_t addrlen) {
    http_server *s = cls;
    (void)addr;
    (void)addrlen;
    if (atomic_load(&s->open_connections) >= s->cfg.max_connections)
        return MHD_NO;
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *c,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server *s = cls;
    (void)c;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&s->open_connections, 1u);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&s->open_connections, 1u);
}

/* ---- life cycle ------------------------------------------------------- */

http_server *http_server_start(const http_config *cfg, model_slot *slot,
                               const static_root *web, metrics *m, nn_error *err) {
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    atomic_init(&s->open_connections, 0u);
    s->slot = slot;
    s->web = web;
    s->m = m;

    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC;
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (inet_pton(AF_INET, cfg->bind, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, cfg->bind, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)cfg->port);
        addr = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        nn_fail(err, "--bind %s is not an IPv4 or IPv6 address", cfg->bind);
        free(s);
        return NULL;
    }
    if (!cfg->quiet) flags |= MHD_USE_ERROR_LOG;

    /* With one thread MHD runs a single internal loop; asking for a pool of
     * one is refused by some versions. */
    unsigned pool = cfg->threads > 1 ? (unsigned)cfg->threads : 0;
    unsigned mhd_limit = cfg->max_connections + CONNECTION_MARGIN(cfg->max_connections);
    if (pool && mhd_limit < pool) mhd_limit = pool; /* at least one per thread */
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, accept_policy, s, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first, or MHD complains */
        MHD_OPTION_SOCK_ADDR, addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, url_unescape, s,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
        MHD_OPTION_END);
    if (!s->daemon) {
        nn_fail(err, "cannot listen on %s port %d (in use, or not an address of this "
                     "machine?)", cfg->bind, cfg->port);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

long http_server_shutdown(http_server *s, int grace_ms) {
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    long left = 0;
    for (int waited = 0;; waited += 10) {
        left = (long)atomic_load(&s->m->in_flight);
        if (left <= 0 || waited >= grace_ms) break;
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    MHD_stop_daemon(s->daemon);
    free(s);
    return left > 0 ? left : 0;
}
