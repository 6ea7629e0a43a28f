/* routes_v2_exchange.c: the Open Inference Protocol v2 routes on the
 * transport. routes_v2.c holds the protocol itself as pure functions
 * (matching, parsing, rendering); this file hands them a request and its
 * answer. Inference requests go through the work queue like /predict: a
 * worker parses the body (BYTES images are decoded there, never on an HTTP
 * thread), the batcher runs it with the other queued requests for the same
 * model, and the answer is rendered on the worker. Metadata, health and
 * the admin repository routes are answered at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "routes_v2.h"

typedef struct {
    job j;
    exchange *x;
    v2_route route;
    int match;      /* v2_route_match's status: 200, 404 or 405 */
    v2_job vjob;    /* once parsed: the request, its model reference */
    bool vjob_held; /* vjob must be released */
    char header_length[24];
} v2_state;

_Static_assert(sizeof(v2_state) <= EX_STATE_BYTES, "v2_state fits the exchange");

bool route_v2_match(const char *path) {
    return strncmp(path, "/v2", 3) == 0 && (path[3] == '\0' || path[3] == '/');
}

/* Constant time, so the token cannot be guessed byte by byte. */
static bool admin_allowed(const exchange *x) {
    const char *token = ex_server(x)->admin_token;
    const char *h = ex_header(x, "Authorization");
    if (!token || !h || strncmp(h, "Bearer ", 7) != 0) return false;
    const char *given = h + 7;
    size_t n = strlen(token), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned)(token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static v2_context context_of(const exchange *x) {
    server_ctx *ctx = ex_server(x);
    const http_config *cfg = ctx->cfg;
    v2_context c = {
        .repo = ctx->repo,
        .server_version = DIGITD_VERSION,
        .limits = {cfg->max_batch, cfg->max_width, cfg->max_height, cfg->max_pixels},
        .draining = atomic_load(&ctx->draining) != 0,
        .admin_enabled = ctx->admin_token != NULL,
        .admin_allowed = admin_allowed(x),
        .request_id = ex_request_id(x),
        .inference_header = ex_header(x, "Inference-Header-Content-Length"),
    };
    return c;
}

/* Sends a v2 answer (its body in the protocol's shape already). */
static void send_answer(exchange *x, v2_answer *a, char *hl_buf, size_t hl_size) {
    if (a->log_detail[0]) ex_log_reason(x, a->log_detail);
    if (a->allow) ex_add_header(x, "Allow", a->allow);
    if (a->inference_header_length) { /* JSON, then the binary outputs */
        snprintf(hl_buf, hl_size, "%zu", a->inference_header_length);
        ex_add_header(x, "Inference-Header-Content-Length", hl_buf);
        ex_send(x, a->status, "application/octet-stream", a->body, a->len);
    } else {
        ex_send(x, a->status, a->body ? "application/json" : NULL, a->body, a->len);
    }
    a->body = NULL;
}

/* POST: the route (404/405) is known from the path before any body byte. */
int route_v2_check(exchange *x) {
    v2_route r;
    int match = v2_route_match(ex_method(x), ex_path(x), &r);
    if (match == 200) return 0;
    v2_job unused;
    v2_answer a;
    v2_handle(NULL, match, &r, NULL, 0, &unused, &a);
    char hl[24];
    send_answer(x, &a, hl, sizeof hl);
    return -1;
}

/* ---- inference on the work queue ---------------------------------------- */

static int parse(job *j) {
    v2_state *st = (v2_state *)j;
    size_t len;
    const uint8_t *body = ex_body(st->x, &len);
    v2_context ctx = context_of(st->x);
    v2_answer a;
    if (v2_handle(&ctx, st->match, &st->route, body, len, &st->vjob, &a) == V2_ANSWERED) {
        /* refused: the protocol's error body is the answer */
        j->status = a.status;
        j->answer = a.body;
        j->answer_len = a.len;
        job_set_message(j, a.log_detail);
        j->n_inputs = 0;
        return 0;
    }
    st->vjob_held = true;
    /* The batch runs on the model v2_handle resolved (normally the one
     * taken when the request arrived; after a reload in between, the new
     * one: the batcher then runs this job on its own). */
    if (st->vjob.ref.model != j->model) {
        served_model_release(j->model);
        j->model = st->vjob.ref.model;
        atomic_fetch_add(&j->model->refs, 1);
    }
    j->inputs = st->vjob.req.inputs; /* the queue frees them */
    j->n_inputs = st->vjob.req.n;
    st->vjob.req.inputs = NULL;
    return 0;
}

static void render(job *j, const nn_answer *answers) {
    v2_state *st = (v2_state *)j;
    /* the protocol's probabilities output: (N, 10) in a row */
    float *probs = answers ? malloc((size_t)j->n_inputs * NN_CLASSES * sizeof *probs) : NULL;
    for (int i = 0; probs && i < j->n_inputs; i++)
        memcpy(probs + (size_t)i * NN_CLASSES, answers[i].probs, sizeof answers[i].probs);
    v2_answer a;
    v2_finish(&st->vjob, probs, &a);
    free(probs);
    v2_job_release(&st->vjob);
    st->vjob_held = false;
    j->status = a.status;
    j->answer = a.body;
    j->answer_len = a.len;
    if (a.inference_header_length) {
        snprintf(st->header_length, sizeof st->header_length, "%zu", a.inference_header_length);
        j->content_type = "application/octet-stream";
        ex_add_header(st->x, "Inference-Header-Content-Length", st->header_length);
    }
    if (a.log_detail[0]) job_set_message(j, a.log_detail);
    for (int i = 0; answers && i < j->n_inputs; i++) j->per_digit[answers[i].digit]++;
}

static const job_ops v2_ops = {parse, render, ex_job_done};

void route_v2(exchange *x) {
    v2_state *st = ex_state(x);
    memset(st, 0, sizeof *st);
    st->x = x;
    st->match = v2_route_match(ex_method(x), ex_path(x), &st->route);
    if (st->match == 200 && st->route.kind == V2_MODEL_INFER) {
        server_ctx *ctx = ex_server(x);
        model_ref ref;
        st->j.ops = &v2_ops;
        /* the model now, so the batcher can group by it; unknown models
         * are refused by v2_handle on the worker, in the protocol's words */
        if (model_repo_acquire(ctx->repo, st->route.model, st->route.version, &ref) == REPO_OK) {
            st->j.model = ref.model;
            snprintf(st->j.model_name, sizeof st->j.model_name, "%s", ref.name);
            st->j.model_version = ref.version;
        }
        job_set_deadline(&st->j, ctx->cfg->work_deadline_ms);
        ex_defer(x, &st->j);
        return;
    }
    v2_context ctx = context_of(x);
    v2_answer a;
    size_t len;
    const uint8_t *body = ex_body(x, &len);
    if (v2_handle(&ctx, st->match, &st->route, body, len, &st->vjob, &a) == V2_RUN_MODEL) {
        v2_job_release(&st->vjob); /* not reached: only infer runs a model */
        a.status = 500;
    }
    send_answer(x, &a, st->header_length, sizeof st->header_length);
}
