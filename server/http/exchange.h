/* exchange.h: one HTTP request as the route handlers see it, and the ways
 * to answer it. The transport (http_server.c) owns the exchange; handlers
 * read the request, then answer exactly once: at once (ex_send*,
 * ex_error), or later from the work queue (ex_defer). */
#ifndef DIGITD_EXCHANGE_H
#define DIGITD_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"
#include "text_buffer.h"
#include "work_queue.h"

typedef struct exchange exchange;

server_ctx *ex_server(const exchange *x);
const char *ex_method(const exchange *x);
const char *ex_path(const exchange *x);         /* percent-decoded, no query */
bool ex_is_head(const exchange *x);
const char *ex_header(const exchange *x, const char *name); /* NULL: absent */
const char *ex_query(const exchange *x, const char *name);  /* NULL: absent */
const char *ex_request_id(const exchange *x);
/* The whole request body (POST routes; NULL/0 otherwise). */
const uint8_t *ex_body(const exchange *x, size_t *len);

/* Adds a header to the answer (Allow, Retry-After, ETag, ...); name and
 * value must outlive the request (literals, or the route's own storage). */
void ex_add_header(exchange *x, const char *name, const char *value);

/* Answers status with body (len bytes, malloc'd: the exchange frees it;
 * NULL for none). content_type NULL: none. */
void ex_send(exchange *x, int status, const char *content_type, char *body,
             size_t len);
/* Answers with t's text as JSON (t is consumed). */
void ex_send_json(exchange *x, int status, text_buffer *t);
/* Answers with a file (fd is the exchange's from here), for the page. */
void ex_send_file(exchange *x, int status, int fd, uint64_t size,
                  const char *content_type);
/* The one error form of the route: {"error": {"status": N, "message": M}}
 * for digitd's own API, {"error": M} for the v2 protocol's routes. */
void ex_error(exchange *x, int status, const char *message);

/* Hands j to the work queue; j->ops->done must be ex_job_done, which
 * answers with j's outcome (j->status with j->answer, or j->message) when
 * a worker has finished it. j must stay valid until then (embed it in
 * the route's per-request state, see ex_state). A full queue is answered
 * 503 with Retry-After the same way. */
void ex_defer(exchange *x, job *j);

/* The done callback every route's job_ops uses: stores the job's answer
 * in its exchange and wakes the connection. */
void ex_job_done(job *j);

/* Per-request memory for the route (zeroed, freed with the request; at
 * most EX_STATE_BYTES), e.g. to embed a job. */
#define EX_STATE_BYTES 1024
void *ex_state(exchange *x);

/* Keeps a short reason for the access log (error messages are logged
 * automatically; handlers may add one for 200s). */
void ex_log_reason(exchange *x, const char *reason);

#endif
