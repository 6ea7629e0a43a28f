/* routes_predict.c: POST /predict. The headers are checked on the HTTP
 * thread (a Content-Type we cannot read is refused before the body is
 * sent); the complete body becomes a job on the work queue, where a
 * worker decodes it (predict_request.h), runs it in a batch with other
 * requests, and renders the JSON answer. A short JSON body for a cheap
 * model is run on the HTTP thread instead (work_queue_run_here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict_request.h"
#include "routes.h"

/* A JSON body this short parses in microseconds whatever it holds (one
 * MNIST image as integers is 2.5 KB, as floats about 7 KB)... */
#define SMALL_JSON_BYTES ((size_t)16 << 10)
/* ...except that a base64 image in it may claim many pixels: on the HTTP
 * thread, images of more than this are left to a worker. */
#define HERE_MAX_PIXELS (128 * 128)

/* What a /predict request keeps while it waits for a worker (in the
 * exchange's state memory). */
typedef struct {
    job j;
    exchange *x;
    bool include_input;
    predict_body_kind kind;
    predict_inputs in;
    char content_type[256];
} predict_state;

_Static_assert(sizeof(predict_state) <= EX_STATE_BYTES, "predict_state fits the exchange");

int route_predict_check(exchange *x) {
    const char *type = ex_header(x, "Content-Type");
    /* the body's form is decided here, once, from the headers */
    predict_state *st = ex_state(x);
    st->kind = predict_body_kind_of(type);
    if (st->kind == BODY_UNSUPPORTED) {
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
    predict_limits lim = {cfg->max_width, cfg->max_height, cfg->max_batch, cfg->max_pixels};
    return lim;
}

/* On a worker: the body to (n, 784) inputs. */
static int parse(job *j) {
    predict_state *st = (predict_state *)j;
    size_t len;
    const uint8_t *body = ex_body(st->x, &len);
    predict_limits lim = limits_of(ex_server(st->x)->cfg);
    if (j->here && lim.max_pixels > HERE_MAX_PIXELS) lim.max_pixels = HERE_MAX_PIXELS;
    predict_outcome out;
    if (predict_parse(st->kind, st->content_type, body, len, &lim, &st->in, &out) != 0) {
        j->status = out.status;
        snprintf(j->message, sizeof j->message, "%s", out.message);
        return -1;
    }
    /* the queue frees j->inputs; st->in keeps n and the batch flag */
    j->inputs = st->in.inputs;
    j->n_inputs = st->in.n;
    st->in.inputs = NULL;
    return 0;
}

/* On a worker: this request's rows of the batch's probabilities to JSON. */
static void render(job *j, const nn_answer *answers) {
    predict_state *st = (predict_state *)j;
    if (!answers) {
        j->status = 500;
        snprintf(j->message, sizeof j->message, "the model could not run (out of memory)");
        return;
    }
    st->in.inputs = j->inputs; /* the answer may include the inputs */
    predict_outcome out;
    predict_render(&st->in, answers, j->model, st->include_input, &out);
    st->in.inputs = NULL;
    j->status = out.status;
    if (out.status != 200) {
        snprintf(j->message, sizeof j->message, "%s", out.message);
        return;
    }
    j->answer = out.body;
    j->answer_len = out.body_len;
    memcpy(j->per_digit, out.per_digit, sizeof j->per_digit);
}

static const job_ops predict_ops = {parse, render, ex_job_done};

void route_predict(exchange *x) {
    server_ctx *ctx = ex_server(x);
    model_ref ref;
    served_model *m = model_repo_acquire(ctx->repo, NULL, NULL, &ref) == REPO_OK ? ref.model : NULL;
    if (!m) {
        ex_error(x, 503, "no model is loaded yet; try again later");
        return;
    }
    predict_state *st = ex_state(x);
    predict_body_kind kind = st->kind; /* from route_predict_check */
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->x = x;
    st->include_input = wants_input(x);
    const char *type = ex_header(x, "Content-Type");
    snprintf(st->content_type, sizeof st->content_type, "%s", type ? type : "");
    st->j.ops = &predict_ops;
    st->j.model = m;
    snprintf(st->j.model_name, sizeof st->j.model_name, "%s", ref.name);
    st->j.model_version = ref.version;
    job_set_deadline(&st->j, ctx->cfg->work_deadline_ms);
    size_t len;
    ex_body(x, &len);
    st->j.small = kind == BODY_JSON && len <= SMALL_JSON_BYTES;
    ex_defer(x, &st->j);
}
