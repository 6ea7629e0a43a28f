/* http_server.c: see http_server.h.
 *
 * libmicrohttpd calls on_request several times per request: once when the
 * headers are in, once per piece of body, and once more with no data when
 * the body is complete. Everything that can be decided from the headers
 * alone (route, method, declared length, budget, Content-Type) is answered
 * on the first call, so a client that sends `Expect: 100-continue` never
 * uploads a body we would refuse. A route that needs the work queue
 * suspends the connection; the worker that finishes the job stores the
 * answer and resumes it, and the next on_request call sends it. A job the
 * queue runs at once on this thread (work_queue_run_here) stores its
 * answer the same way, without the suspension, and the same call sends
 * it.
 *
 * The request context is made earlier still, by the URI log callback when
 * the request line arrives, so that requests libmicrohttpd refuses by
 * itself (a malformed Content-Length, a broken chunked body) are logged
 * and counted too. on_completed writes the access log line and the
 * metrics, and frees the context. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cors.h"
#include "exchange.h"
#include "routes.h"
#include "text_buffer.h"

/* Security headers. The page's policy allows only its own scripts, styles
 * and connections, plus data:/blob: images (the preview of the normalised
 * input); API answers allow nothing at all. */
#define CSP_PAGE                                                              \
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "     \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
#define CSP_API "default-src 'none'; frame-ancestors 'none'"

#define JSON_TYPE "application/json"

/* A chunked body that overflows a limit is read to its end and dropped,
 * and then answered: libmicrohttpd 0.9.75 cannot queue an answer in the
 * middle of a body. Reading is cheap, but not forever: past this many
 * dropped bytes the connection is cut. */
#define DISCARD_ALLOWANCE ((size_t)64 << 20)
/* The first piece of budget and buffer a body gets; it grows (doubling)
 * as bytes arrive, so a Content-Length that lies costs nothing. */
#define BODY_FIRST_BYTES ((size_t)16 << 10)
#define MAX_EXTRA_HEADERS 6

/* ---- connections ------------------------------------------------------ */

/* One open connection, kept in a list so the deadline thread can cut the
 * ones whose request has been arriving for too long. */
typedef struct conn {
    struct conn *prev, *next;
    int fd;
    struct timespec reading_since; /* CLOCK_MONOTONIC */
    bool reading;                  /* between requests or receiving one */
    bool cut;                      /* the deadline thread shut it down */
} conn;

struct http_server {
    http_config cfg;
    server_ctx *ctx;
    struct MHD_Daemon *daemon;
    atomic_uint open_connections;
    atomic_size_t bytes_reserved;      /* body budget in use */
    pthread_mutex_t conns_lock;        /* guards the conn list */
    conn *conns;
    pthread_t deadline_thread;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping, deadline_started;
    char id_prefix[12];                /* request ids: prefix + counter */
    atomic_uint_fast64_t id_counter;
};

/* ---- one request -------------------------------------------------------- */

struct exchange {
    http_server *s;
    struct MHD_Connection *c;
    const route *route;
    struct timespec start; /* CLOCK_MONOTONIC */
    metrics_route metric;
    char method[16];
    char path[160];   /* printable copy for the log */
    char client[48];
    char request_id[72];
    char reason[200]; /* why it failed, for the log */
    bool is_head, started, answered;
    bool wants_body; /* a POST whose body is kept */
    int status;        /* of the queued answer; 0 while none */
    uint64_t bytes_out;
    const char *url;   /* MHD's decoded path, valid during callbacks */
    /* the body of a POST */
    uint8_t *body;
    size_t len, cap, reserved;
    size_t dropped;
    int refused; /* 413 body too large, 503 over the budget */
    /* an answer prepared off the HTTP thread or before the last call */
    bool deferred, pending;
    bool suspended; /* by ex_defer: the job's done resumes it */
    int pending_status;
    const char *pending_type;
    char *pending_body;
    size_t pending_len;
    const char *extra[MAX_EXTRA_HEADERS][2];
    int n_extra;
    _Alignas(16) unsigned char state[EX_STATE_BYTES];
};

static double seconds_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

server_ctx *ex_server(const exchange *x) { return x->s->ctx; }
const char *ex_method(const exchange *x) { return x->method; }
const char *ex_path(const exchange *x) { return x->url; }
bool ex_is_head(const exchange *x) { return x->is_head; }
const char *ex_request_id(const exchange *x) { return x->request_id; }
void *ex_state(exchange *x) { return x->state; }

const char *ex_header(const exchange *x, const char *name) {
    return MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, name);
}

const char *ex_query(const exchange *x, const char *name) {
    return MHD_lookup_connection_value(x->c, MHD_GET_ARGUMENT_KIND, name);
}

const uint8_t *ex_body(const exchange *x, size_t *len) {
    *len = x->len;
    return x->body;
}

void ex_add_header(exchange *x, const char *name, const char *value) {
    if (x->n_extra < MAX_EXTRA_HEADERS) {
        x->extra[x->n_extra][0] = name;
        x->extra[x->n_extra][1] = value;
        x->n_extra++;
    }
}

void ex_log_reason(exchange *x, const char *reason) {
    size_t n = strnlen(reason, sizeof x->reason - 1);
    memcpy(x->reason, reason, n);
    x->reason[n] = '\0';
}

/* The headers every answer carries: security, request id, CORS, and the
 * route's extras. page: the drawing page's policy instead of the API's. */
static void add_common_headers(exchange *x, struct MHD_Response *r, bool page) {
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", page ? CSP_PAGE : CSP_API);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (page) MHD_add_response_header(r, "X-Frame-Options", "DENY");
    else MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Request-Id", x->request_id);
    const char *origin = cors_match(x->s->cfg.cors_origins, ex_header(x, "Origin"));
    if (origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-Id");
        if (strcmp(origin, "*") != 0) MHD_add_response_header(r, "Vary", "Origin");
    }
    if (atomic_load(&x->s->ctx->draining)) MHD_add_response_header(r, "Connection", "close");
    for (int i = 0; i < x->n_extra; i++)
        MHD_add_response_header(r, x->extra[i][0], x->extra[i][1]);
}

static void queue_answer(exchange *x, int status, struct MHD_Response *r, bool page,
                         uint64_t len) {
    x->answered = true;
    if (!r) {
        x->status = 0; /* logged as 500; MHD closes the connection */
        return;
    }
    add_common_headers(x, r, page);
    if (MHD_queue_response(x->c, (unsigned)status, r) == MHD_YES) {
        x->status = status;
        x->bytes_out = x->is_head ? 0 : len;
    }
    MHD_destroy_response(r);
}

void ex_send(exchange *x, int status, const char *content_type, char *body, size_t len) {
    if (x->answered) {
        free(body);
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body ? len : 0, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) free(body);
    else if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
    queue_answer(x, status, r, false, body ? len : 0);
}

void ex_send_json(exchange *x, int status, text_buffer *t) {
    size_t len;
    char *body = tb_take(t, &len);
    if (!body) {
        ex_error(x, 500, "out of memory");
        return;
    }
    ex_send(x, status, JSON_TYPE, body, len);
}

void ex_send_file(exchange *x, int status, int fd, uint64_t size, const char *content_type) {
    if (x->answered) {
        close(fd);
        return;
    }
    struct MHD_Response *r;
    if (fd < 0) {
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        size = 0;
    } else {
        /* MHD owns the descriptor from here and sends it with sendfile */
        r = MHD_create_response_from_fd64(size, fd);
        if (!r) close(fd);
    }
    if (r && content_type) MHD_add_response_header(r, "Content-Type", content_type);
    queue_answer(x, status, r, true, size);
}

static char *error_body(const exchange *x, int status, const char *message, size_t *len) {
    text_buffer t;
    tb_init(&t, 128 + strlen(message));
    if (x->route && x->route->errors == ERRORS_V2) {
        tb_printf(&t, "{\"error\":");
        tb_json_string(&t, message);
        tb_printf(&t, "}\n");
    } else {
        tb_printf(&t, "{\"error\":{\"status\":%d,\"message\":", status);
        tb_json_string(&t, message);
        tb_printf(&t, "}}\n");
    }
    return tb_take(&t, len);
}

void ex_error(exchange *x, int status, const char *message) {
    ex_log_reason(x, message);
    size_t len;
    char *body = error_body(x, status, message, &len);
    ex_send(x, status, JSON_TYPE, body, len);
}

/* 503 with Retry-After: the server is full now, not broken. */
static void answer_busy(exchange *x, const char *message) {
    ex_add_header(x, "Retry-After", "1");
    ex_error(x, 503, message);
}

/* ---- the work queue ------------------------------------------------------ */

void ex_defer(exchange *x, job *j) {
    j->user = x;
    x->deferred = true;
    if (work_queue_run_here(x->s->ctx->queue, j) == 0) return; /* answer pending */
    x->suspended = true;
    /* Suspend first: a worker may finish the job before this call returns,
     * and its resume must find the connection suspended (or about to be:
     * libmicrohttpd cancels a suspension that a resume overtook). */
    MHD_suspend_connection(x->c);
    if (work_queue_offer(x->s->ctx->queue, j) != 0) {
        /* Full: the answer goes the same way a worker's would. */
        ex_add_header(x, "Retry-After", "1");
        j->status = 503;
        snprintf(j->message, sizeof j->message,
                 "the server is busy (the inference queue is full); try again");
        ex_job_done(j);
    }
}

void ex_job_done(job *j) {
    exchange *x = j->user;
    x->pending_type = j->content_type ? j->content_type : JSON_TYPE;
    if (j->answer) {
        if (j->status != 200) ex_log_reason(x, j->message);
        x->pending_status = j->status;
        x->pending_body = j->answer;
        x->pending_len = j->answer_len;
    } else {
        ex_log_reason(x, j->message);
        x->pending_status = j->status ? j->status : 500;
        x->pending_body = error_body(x, x->pending_status, j->message, &x->pending_len);
    }
    j->answer = NULL;
    metrics *m = x->s->ctx->m;
    metrics_observe_model(m, j->model_name, j->model_version, x->pending_status);
    for (int d = 0; d < 10; d++)
        if (j->per_digit[d])
            atomic_fetch_add_explicit(&m->predictions[d], (uint64_t)j->per_digit[d],
                                      memory_order_relaxed);
    served_model_release(j->model);
    j->model = NULL;
    struct MHD_Connection *c = x->suspended ? x->c : NULL;
    x->pending = true;
    /* nothing of x or j may be touched after this: the connection's thread
     * may answer and free them at once */
    if (c) MHD_resume_connection(c);
}

/* ---- bodies, within their budgets ---------------------------------------- */

static bool reserve(http_server *s, exchange *x, size_t more) {
    size_t cur = atomic_load(&s->bytes_reserved);
    do {
        if (more > s->cfg.max_inflight_bytes - cur || cur > s->cfg.max_inflight_bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&s->bytes_reserved, &cur, cur + more));
    x->reserved += more;
    return true;
}

static void release_body(http_server *s, exchange *x) {
    free(x->body);
    x->body = NULL;
    atomic_fetch_sub(&s->bytes_reserved, x->reserved);
    x->reserved = 0;
}

/* The first call of a POST: what the headers already condemn. */
static int body_begin(http_server *s, exchange *x) {
    const char *clen = ex_header(x, "Content-Length");
    const char *te = ex_header(x, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") != 0) {
        ex_error(x, 501, "only the chunked Transfer-Encoding is supported");
        return -1;
    }
    if (!clen && !te) {
        ex_error(x, 411, "this route needs a Content-Length (or a chunked body)");
        return -1;
    }
    size_t declared = 0;
    if (clen) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(clen, &end, 10);
        if (errno || end == clen || *end != '\0' || clen[0] == '-' || clen[0] == '+') {
            ex_error(x, 400, "invalid Content-Length");
            return -1;
        }
        if (v > s->cfg.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body is %llu bytes; the limit is %zu", v,
                     s->cfg.max_body);
            ex_error(x, 413, msg);
            return -1;
        }
        declared = (size_t)v;
    }
    if (x->route->check_headers && x->route->check_headers(x) != 0) return -1;
    x->wants_body = true;
    /* The budget is taken for what is declared (a chunked body: its first
     * piece), so a full server refuses at once; memory is taken only as
     * bytes arrive. */
    size_t want = clen ? declared : BODY_FIRST_BYTES;
    if (want > 0 && !reserve(s, x, want)) {
        answer_busy(x, "the server is receiving too many bodies at once; try again");
        return -1;
    }
    return 0;
}

/* A piece of body: keep it, or drop it once a limit is passed. */
static enum MHD_Result body_piece(http_server *s, exchange *x, const char *data,
                                  size_t size) {
    atomic_fetch_add_explicit(&s->ctx->m->bytes_in, size, memory_order_relaxed);
    if (!x->refused && size > s->cfg.max_body - x->len) x->refused = 413;
    if (!x->refused && x->len + size > x->reserved &&
        !reserve(s, x, x->len + size - x->reserved))
        x->refused = 503;
    if (x->refused) {
        free(x->body);
        x->body = NULL;
        x->dropped += size;
        /* An endless stream is not worth reading: cut it. */
        return x->dropped > DISCARD_ALLOWANCE ? MHD_NO : MHD_YES;
    }
    if (x->len + size > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : BODY_FIRST_BYTES;
        if (cap < x->len + size) cap = x->len + size;
        if (cap > x->reserved) cap = x->reserved;
        uint8_t *nb = realloc(x->body, cap);
        if (!nb) {
            x->refused = 503;
            return MHD_YES;
        }
        x->body = nb;
        x->cap = cap;
    }
    memcpy(x->body + x->len, data, size);
    x->len += size;
    return MHD_YES;
}

/* ---- routing ------------------------------------------------------------- */

static bool is_get(const exchange *x) {
    return strcmp(x->method, "GET") == 0 || x->is_head;
}

static void answer_preflight(exchange *x, const char *methods) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r) {
        MHD_add_response_header(r, "Access-Control-Allow-Methods", methods);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Content-Type, X-Request-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
        MHD_add_response_header(r, "Allow", methods);
    }
    queue_answer(x, 204, r, false, 0);
}

/* The first call of a request: route it and answer whatever can be
 * answered from the headers. Returns -1 when answered. */
static int begin(http_server *s, exchange *x) {
    const route *rt = route_find(x->url);
    x->route = rt;
    x->metric = rt ? rt->metric : ROUTE_STATIC;
    bool is_post = strcmp(x->method, "POST") == 0;
    bool is_options = strcmp(x->method, "OPTIONS") == 0;

    if (!rt) {
        if (is_get(x)) return 0;
        /* Another method on a page: 405 when the page exists, else 404. */
        if (route_static_exists(x)) {
            ex_add_header(x, "Allow", "GET, HEAD");
            ex_error(x, 405, "pages answer GET and HEAD only");
        } else {
            x->metric = ROUTE_OTHER;
            ex_error(x, 404, "no such page");
        }
        return -1;
    }
    bool post_route = strcmp(rt->methods, "POST") == 0;
    bool any = strcmp(rt->methods, "*") == 0; /* the family answers 405 itself */
    const char *allow = any ? (s->cfg.cors_origins ? "GET, HEAD, POST, OPTIONS" : "GET, HEAD, POST")
                      : post_route ? (s->cfg.cors_origins ? "POST, OPTIONS" : "POST")
                                   : (s->cfg.cors_origins ? "GET, HEAD, OPTIONS" : "GET, HEAD");
    if (is_options && s->cfg.cors_origins) {
        answer_preflight(x, allow);
        return -1;
    }
    if (any) return is_post ? body_begin(s, x) : 0;
    if (post_route ? !is_post : !is_get(x)) {
        ex_add_header(x, "Allow", allow);
        ex_error(x, 405, post_route ? "this route answers POST only"
                                    : "this route answers GET and HEAD only");
        return -1;
    }
    if (post_route) return body_begin(s, x);
    return 0;
}

/* The request is complete: answer it. */
static void finish(http_server *s, exchange *x) {
    if (x->refused == 413) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", s->cfg.max_body);
        ex_error(x, 413, msg);
        return;
    }
    if (x->refused == 503) {
        answer_busy(x, "the server is receiving too many bodies at once; try again");
        return;
    }
    if (x->route) x->route->handle(x);
    else route_static(x);
    if (x->status == 404 && !x->route) x->metric = ROUTE_OTHER;
}

/* Copies s into dst for the log: printable ASCII only, so a decoded %0a
 * in a path cannot forge log lines. */
static void printable_copy(char *dst, size_t size, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '?';
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

/* X-Request-Id from the client when it is 1..64 printable characters
 * without spaces or quotes; otherwise one of ours. */
static void take_request_id(http_server *s, exchange *x) {
    const char *given = ex_header(x, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        bool ok = n >= 1 && n <= 64;
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char ch = (unsigned char)given[i];
            ok = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
        }
        if (ok) {
            memcpy(x->request_id, given, n + 1);
            return;
        }
    }
    uint64_t k = atomic_fetch_add(&s->id_counter, 1);
    snprintf(x->request_id, sizeof x->request_id, "%s-%llu", s->id_prefix,
             (unsigned long long)k);
}

/* The connection a request arrives on. */
static conn *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? (conn *)ci->socket_context : NULL;
}

static void set_reading(http_server *s, struct MHD_Connection *c, bool reading) {
    conn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&s->conns_lock);
    k->reading = reading;
    if (reading) clock_gettime(CLOCK_MONOTONIC, &k->reading_since);
    pthread_mutex_unlock(&s->conns_lock);
}

/* The request line has arrived: make the request's context now, so that
 * whatever happens next is logged. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    http_server *s = cls;
    (void)c;
    exchange *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->s = s;
    clock_gettime(CLOCK_MONOTONIC, &x->start);
    atomic_fetch_add(&s->ctx->in_flight, 1);
    printable_copy(x->path, sizeof x->path, uri);
    char *q = strchr(x->path, '?');
    if (q) *q = '\0';
    snprintf(x->method, sizeof x->method, "-");
    x->metric = ROUTE_OTHER;
    return x;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    exchange *x = *con_cls;
    if (!x) return MHD_NO; /* out of memory in on_uri */
    x->c = c;
    x->url = url;

    if (!x->started) {
        x->started = true;
        printable_copy(x->method, sizeof x->method, method);
        printable_copy(x->path, sizeof x->path, url);
        x->is_head = strcmp(method, "HEAD") == 0;
        if (!s->cfg.quiet) client_address(c, x->client, sizeof x->client);
        take_request_id(s, x);
        begin(s, x);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        if (x->answered || !x->wants_body)
            return MHD_YES; /* answered already, or no body wanted: drop it */
        return body_piece(s, x, upload_data, size);
    }
    if (!x->answered && !x->deferred) {
        set_reading(s, c, false); /* the body is in: the read deadline is met */
        finish(s, x);
    }
    /* a worker's answer after the resume, or one made here by finish */
    if (x->pending) {
        x->pending = false;
        char *body = x->pending_body;
        x->pending_body = NULL;
        ex_send(x, x->pending_status, x->pending_type, body, x->pending_len);
    }
    return MHD_YES;
}

static void log_line(http_server *s, exchange *x, int status, uint64_t us) {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct tm tm;
    gmtime_r(&wall.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    text_buffer t;
    tb_init(&t, 320);
    if (s->cfg.log_format == LOG_JSON) {
        tb_printf(&t, "{\"time\":\"%s.%03ldZ\",\"client\":", when, wall.tv_nsec / 1000000);
        tb_json_string(&t, x->client[0] ? x->client : "-");
        tb_printf(&t, ",\"method\":");
        tb_json_string(&t, x->method);
        tb_printf(&t, ",\"path\":");
        tb_json_string(&t, x->path);
        tb_printf(&t, ",\"status\":%d,\"bytes\":%llu,\"duration_us\":%llu,\"request_id\":",
                  status, (unsigned long long)x->bytes_out, (unsigned long long)us);
        tb_json_string(&t, x->request_id[0] ? x->request_id : "-");
        if (status >= 400) {
            tb_printf(&t, ",\"reason\":");
            tb_json_string(&t, x->reason[0] ? x->reason : "-");
        }
        tb_printf(&t, "}\n");
    } else {
        /* printable, without quotes, so the line stays one parseable line */
        char reason[sizeof x->reason];
        size_t i = 0;
        for (; x->reason[i] && i + 1 < sizeof reason; i++) {
            unsigned char ch = (unsigned char)x->reason[i];
            reason[i] = ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '\'';
        }
        reason[i] = '\0';
        tb_printf(&t, "%s.%03ldZ %s %s %s %d %llu %lluus id=%s", when, wall.tv_nsec / 1000000,
                  x->client[0] ? x->client : "-", x->method, x->path, status,
                  (unsigned long long)x->bytes_out, (unsigned long long)us,
                  x->request_id[0] ? x->request_id : "-");
        if (status >= 400) tb_printf(&t, " reason=\"%s\"", reason);
        tb_printf(&t, "\n");
    }
    size_t len;
    char *line = tb_take(&t, &len);
    if (line) {
        /* one write per line keeps lines whole among threads */
        ssize_t w = write(STDERR_FILENO, line, len);
        (void)w;
        free(line);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    http_server *s = cls;
    exchange *x = *con_cls;
    if (!x) return;
    *con_cls = NULL;
    uint64_t us = (uint64_t)(seconds_since(&x->start) * 1e6);
    /* No answer sent: say why the way nginx does (408 timed out, 499
     * client went away); a request libmicrohttpd refused by itself
     * (malformed headers or chunked framing) was answered 400 by it. */
    int status = x->status;
    if (status == 0 && x->refused) status = x->refused;
    conn *k = conn_of(c);
    if (status == 0 && k && k->cut) {
        status = 408; /* the read deadline shut the socket */
        ex_log_reason(x, "request not received within the read deadline");
    }
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK || status == 0) {
        if (why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) status = 408;
        else if (status == 0 && (why == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
                                 why == MHD_REQUEST_TERMINATED_READ_ERROR))
            status = 499;
        else if (status == 0 && why == MHD_REQUEST_TERMINATED_WITH_ERROR && !x->started)
            status = 400;
        else if (status == 0)
            status = 500;
        if (!x->reason[0])
            ex_log_reason(x, status == 408   ? "request not received in time"
                             : status == 499 ? "client closed the connection"
                             : status == 400 ? "malformed request (refused by the HTTP layer)"
                                             : "no answer was sent");
    }
    metrics_observe(s->ctx->m, x->metric, status, us);
    atomic_fetch_add_explicit(&s->ctx->m->bytes_out, x->bytes_out, memory_order_relaxed);
    if (!s->cfg.quiet) log_line(s, x, status, us);
    release_body(s, x);
    free(x->pending_body);
    free(x);
    atomic_fetch_sub(&s->ctx->in_flight, 1);
    /* the connection waits for its next request: its read deadline runs */
    set_reading(s, c, true);
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
    int m = snprintf(line, sizeof line, "digitd serve: http: %s\n", msg);
    if (m > 0) {
        ssize_t w = write(STDERR_FILENO, line, (size_t)m < sizeof line ? (size_t)m : sizeof line - 1);
        (void)w;
    }
}

/* ---- the connection limit and the read deadline ------------------------ */

/* libmicrohttpd 0.9.75 at its own MHD_OPTION_CONNECTION_LIMIT stops
 * polling the listening socket, so a further client sits in the kernel's
 * backlog with no answer until some connection closes. Instead we count
 * open connections ourselves (NOTIFY_STARTED / NOTIFY_CLOSED) and refuse
 * the ones past --max-connections in the accept policy callback: MHD_NO
 * closes the socket at once. MHD's own limit is set CONNECTION_MARGIN
 * above ours: only a backstop for sockets accepted at the same moment. */
#define CONNECTION_MARGIN(max) (16u + (max) / 8u)

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr,
                                     socklen_t addrlen) {
    http_server *s = cls;
    (void)addr;
    (void)addrlen;
    if (atomic_load(&s->open_connections) >= s->cfg.max_connections) return MHD_NO;
    return MHD_YES;
}

/* Keeps the list of open connections for the deadline thread. libmicrohttpd
 * calls NOTIFY_CLOSED before it closes the socket, and the deadline thread
 * only shuts sockets down while it holds conns_lock, which NOTIFY_CLOSED
 * takes too: it never touches a descriptor that was closed and reused. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->open_connections, 1u);
        conn *k = calloc(1, sizeof *k);
        if (!k) return;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        k->reading = true;
        clock_gettime(CLOCK_MONOTONIC, &k->reading_since);
        pthread_mutex_lock(&s->conns_lock);
        k->next = s->conns;
        if (s->conns) s->conns->prev = k;
        s->conns = k;
        pthread_mutex_unlock(&s->conns_lock);
        *socket_context = k;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->open_connections, 1u);
        conn *k = *socket_context;
        if (!k) return;
        pthread_mutex_lock(&s->conns_lock);
        if (k->prev) k->prev->next = k->next;
        else s->conns = k->next;
        if (k->next) k->next->prev = k->prev;
        pthread_mutex_unlock(&s->conns_lock);
        free(k);
        *socket_context = NULL;
    }
}

/* Four times a second: shut down the sockets of connections whose request
 * has been arriving for longer than the read deadline. libmicrohttpd sees
 * the socket end and closes the connection (logged 408). */
static void *deadline_loop(void *arg) {
    http_server *s = arg;
    pthread_mutex_lock(&s->stop_lock);
    while (!s->stopping) {
        struct timespec wake;
        clock_gettime(CLOCK_MONOTONIC, &wake);
        wake.tv_nsec += 250 * 1000 * 1000;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &wake);
        if (s->stopping) break;
        pthread_mutex_lock(&s->conns_lock);
        for (conn *k = s->conns; k; k = k->next)
            if (k->reading && !k->cut && k->fd >= 0 &&
                seconds_since(&k->reading_since) > (double)s->cfg.read_deadline_s) {
                k->cut = true;
                shutdown(k->fd, SHUT_RDWR);
            }
        pthread_mutex_unlock(&s->conns_lock);
    }
    pthread_mutex_unlock(&s->stop_lock);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------- */

int listen_socket_open(const char *bind_addr, int port, nn_error *err) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&ss;
    if (inet_pton(AF_INET, bind_addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        len = sizeof *sin;
    } else if (inet_pton(AF_INET6, bind_addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        len = sizeof *sin6;
    } else {
        return nn_fail(err, "--bind %s is not an IPv4 or IPv6 address", bind_addr);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return nn_fail(err, "cannot make a socket: %s", strerror(errno));
    /* SO_REUSEADDR only lets us rebind over old TIME_WAIT connections; it
     * never lets two live listeners share the port (SO_REUSEPORT would,
     * and is deliberately not set). */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return nn_fail(err, "cannot listen on %s port %d: address in use (another "
                                "process is listening there)", bind_addr, port);
        return nn_fail(err, "cannot listen on %s port %d: %s", bind_addr, port, strerror(e));
    }
    if (listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return nn_fail(err, "cannot listen on %s port %d: %s", bind_addr, port, strerror(e));
    }
    return fd;
}

int listen_socket_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
}

http_server *http_server_start(const http_config *cfg, server_ctx *ctx, nn_error *err) {
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->ctx = ctx;
    atomic_init(&s->open_connections, 0u);
    pthread_mutex_init(&s->conns_lock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    /* Request ids: a per-process prefix (pid and start time) and a counter. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(s->id_prefix, sizeof s->id_prefix, "%08x",
             (unsigned)((uint32_t)getpid() * 2654435761u ^ (uint32_t)now.tv_nsec));

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (!cfg->quiet) flags |= MHD_USE_ERROR_LOG;
    /* With one thread MHD runs a single internal loop; asking for a pool of
     * one is refused by some versions. */
    unsigned pool = cfg->threads > 1 ? (unsigned)cfg->threads : 0;
    unsigned mhd_limit = cfg->max_connections + CONNECTION_MARGIN(cfg->max_connections);
    if (pool && mhd_limit < pool) mhd_limit = pool;
    s->daemon = MHD_start_daemon(
        flags, 0, accept_policy, s, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first, or MHD complains */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)cfg->listen_fd,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, url_unescape, s,
        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, pool,
        MHD_OPTION_END);
    if (!s->daemon) {
        nn_fail(err, "libmicrohttpd could not start on the listening socket");
        free(s);
        return NULL;
    }
    if (pthread_create(&s->deadline_thread, NULL, deadline_loop, s) == 0)
        s->deadline_started = true;
    return s;
}

/* Waits up to ms for every request to complete; returns how many did not. */
static long wait_idle(http_server *s, int ms) {
    long left = 0;
    for (int waited = 0;; waited += 10) {
        left = (long)atomic_load(&s->ctx->in_flight);
        if (left <= 0 || waited >= ms) break;
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
    }
    return left > 0 ? left : 0;
}

long http_server_shutdown(http_server *s, int grace_ms) {
    MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    /* Requests in flight finish, through the queue, within the grace... */
    long left = wait_idle(s, grace_ms);
    /* ...then the queue answers whatever is still queued (503 once it is
     * stopping), so no connection is left suspended: MHD must not be
     * stopped with suspended connections. */
    work_queue_stop(s->ctx->queue);
    if (left) left = wait_idle(s, 500);
    pthread_mutex_lock(&s->stop_lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->stop_cond);
    pthread_mutex_unlock(&s->stop_lock);
    if (s->deadline_started) pthread_join(s->deadline_thread, NULL);
    MHD_stop_daemon(s->daemon);
    work_queue_free(s->ctx->queue);
    s->ctx->queue = NULL;
    pthread_mutex_destroy(&s->conns_lock);
    free(s);
    return left;
}
