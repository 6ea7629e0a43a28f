/* routes_health.c: GET /healthz (the process answers), /readyz (a model
 * is loaded and the server is not draining) and /metrics. All three are
 * answered on the HTTP threads from counters and the model slot, so they
 * stay quick while the inference workers are busy. */
#include <stdlib.h>

#include "routes.h"

void route_healthz(exchange *x) {
    static const char ok[] = "{\"status\":\"ok\"}\n";
    text_buffer t;
    tb_init(&t, sizeof ok);
    tb_printf(&t, "%s", ok);
    ex_send_json(x, 200, &t);
}

void route_readyz(exchange *x) {
    server_ctx *ctx = ex_server(x);
    if (atomic_load(&ctx->draining)) {
        ex_error(x, 503, "the server is shutting down");
        return;
    }
    model_ref ref;
    if (model_repo_acquire(ctx->repo, NULL, NULL, &ref) != REPO_OK) {
        ex_error(x, 503, "no model is loaded yet");
        return;
    }
    text_buffer t;
    tb_init(&t, 160);
    tb_printf(&t, "{\"status\":\"ready\",\"model\":");
    tb_json_string(&t, ref.model->id);
    tb_printf(&t, "}\n");
    served_model_release(ref.model);
    ex_send_json(x, 200, &t);
}

void route_metrics(exchange *x) {
    server_ctx *ctx = ex_server(x);
    uint64_t sizes[WQ_HIST + 1] = {0};
    metrics_gauges g = {.in_flight = (long long)atomic_load(&ctx->in_flight),
                        .draining = atomic_load(&ctx->draining),
                        .batch_sizes = sizes,
                        .n_batch_sizes = WQ_HIST + 1};
    g.model_loaded = model_repo_ready(ctx->repo);
    if (ctx->queue) {
        const work_queue_stats *q = work_queue_statistics(ctx->queue);
        g.queue_depth = atomic_load(&q->depth);
        g.workers_busy = atomic_load(&q->busy);
        g.jobs_refused_full = atomic_load(&q->jobs_refused_full);
        g.jobs_expired = atomic_load(&q->jobs_expired);
        g.jobs_inline = atomic_load(&q->jobs_inline);
        for (int k = 0; k <= WQ_HIST; k++) sizes[k] = atomic_load(&q->batches[k]);
    }
    size_t len;
    char *text = metrics_render(ctx->m, &g, &len);
    if (!text) {
        ex_error(x, 500, "out of memory");
        return;
    }
    ex_send(x, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
