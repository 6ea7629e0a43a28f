/* routes_predict.c: POST /predict. The headers are checked on the HTTP
 * thread (a Content-Type we cannot read is refused before the body is
 * sent); the complete body becomes a job on the work queue, where a
 * worker decodes it (predict_request.h), runs it in a batch with other
 * requests, and renders the JSON answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict_request.h"
#include "routes.h"

/* What a /predict request keeps while it waits for a worker (in the
 * exchange's state memory). */
typedef struct {
    job j;
    exchange *x;
    bool include_input;
    char content_type[256];
} predict_state;

_Static_assert(sizeof(predict_state) <= EX_STATE_BYTES, "predict_state fits the exchange");

int route_predict_check(exchange *x) {
    const char *type = ex_header(x, "Content-Type");
    if (predict_body_kind_of(type) == BODY_UNSUPPORTED) {
        ex_error(x, 415,
                 type ? "unsupported Content-Type; send application/json, image/png, "
                        "image/jpeg, image/bmp, image/gif or multipart/form-data"
                      : "missing Content-Type; send application/json, image/png, "
                        "image/jpeg, image/bmp, image/gif or multipart/form-data");
        return -1;
    }
    return 0;
}

/* "?include=input" (a comma-separated list may name more). */
static bool wants_input(const exchange *x) {
    const char *inc = ex_query(x, "include");
    if (!inc) return false;
    for (const char *p = inc; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 5 && strncmp(p, "input", 5) == 0) return true;
        p += n;
        if (*p == ',') p++;
    }
    return false;
}

static predict_limits limits_of(const http_config *cfg) {
    predict_limits lim = {cfg->max_width, cfg->max_height, cfg->max_batch};
    return lim;
}

/* On a worker: the body to inputs. */
static int parse(job *j) {
    predict_state *st = (predict_state *)j;
    size_t len;
    const uint8_t *body = ex_body(st->x, &len);
    predict_limits lim = limits_of(ex_server(st->x)->cfg);
    predict_outcome out;
    predict_handle(st->content_type, body, len, st->include_input, &lim, j->model, &out);
    j->status = out.status;
    if (out.status != 200) {
        snprintf(j->message, sizeof j->message, "%s", out.message);
        return -1;
    }
    j->answer = out.body;
    j->answer_len = out.body_len;
    memcpy(j->per_digit, out.per_digit, sizeof j->per_digit);
    j->n_inputs = 0; /* answered whole */
    return 0;
}

static void render(job *j, const float *probs) {
    (void)probs;
    j->status = 500;
    snprintf(j->message, sizeof j->message, "internal error: nothing to render");
}

static const job_ops predict_ops = {parse, render, ex_job_done};

void route_predict(exchange *x) {
    server_ctx *ctx = ex_server(x);
    served_model *m = model_slot_acquire(ctx->slot);
    if (!m) {
        ex_error(x, 503, "no model is loaded yet; try again later");
        return;
    }
    predict_state *st = ex_state(x);
    memset(st, 0, sizeof *st);
    st->x = x;
    st->include_input = wants_input(x);
    const char *type = ex_header(x, "Content-Type");
    snprintf(st->content_type, sizeof st->content_type, "%s", type ? type : "");
    st->j.ops = &predict_ops;
    st->j.model = m;
    clock_gettime(CLOCK_MONOTONIC, &st->j.deadline);
    long ms = (long)ctx->cfg->work_deadline_ms;
    st->j.deadline.tv_sec += ms / 1000;
    st->j.deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (st->j.deadline.tv_nsec >= 1000000000L) {
        st->j.deadline.tv_sec++;
        st->j.deadline.tv_nsec -= 1000000000L;
    }
    ex_defer(x, &st->j);
}
