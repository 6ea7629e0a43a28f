/* metrics.c: see metrics.h. */
#include "metrics.h"

#include "text_buffer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double bucket_le[METRICS_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   5.0};

static const char *const route_names[ROUTE_COUNT] = {
    "predict", "healthz", "readyz", "model", "metrics", "static", "v2", "openapi", "other"};

const char *metrics_route_name(metrics_route r) {
    return (unsigned)r < ROUTE_COUNT ? route_names[r] : "other";
}

void metrics_init(metrics *m) {
    memset(m, 0, sizeof *m); /* all-zero bits are zero atomics on our ABIs */
    m->start_unix = (int64_t)time(NULL);
    pthread_mutex_init(&m->models_lock, NULL);
}

void metrics_observe_model(metrics *m, const char *name, uint64_t version, int status) {
    if (!name || !name[0]) return;
    pthread_mutex_lock(&m->models_lock);
    int i = 0;
    while (i < m->n_models &&
           !(m->models[i].version == version && strcmp(m->models[i].name, name) == 0))
        i++;
    if (i == m->n_models) {
        if (m->n_models == METRICS_MAX_MODELS) {
            i = METRICS_MAX_MODELS - 1; /* the last row takes the overflow */
        } else {
            snprintf(m->models[i].name, sizeof m->models[i].name, "%s", name);
            m->models[i].version = version;
            m->n_models++;
        }
    }
    pthread_mutex_unlock(&m->models_lock);
    atomic_fetch_add_explicit(status < 400 ? &m->models[i].ok : &m->models[i].failed, 1,
                              memory_order_relaxed);
}

void metrics_observe(metrics *m, metrics_route r, int status, uint64_t micros) {
    if ((unsigned)r >= ROUTE_COUNT) r = ROUTE_OTHER;
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->requests[r][status - 100], 1,
                                  memory_order_relaxed);
    double s = (double)micros / 1e6;
    int b = 0;
    while (b < METRICS_BUCKETS && s > bucket_le[b]) b++;
    atomic_fetch_add_explicit(&m->latency_bucket[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us[r], micros, memory_order_relaxed);
}

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

char *metrics_render(metrics *m, const metrics_gauges *g, size_t *len) {
    text_buffer t;
    tb_init(&t, 16384);

    tb_printf(&t, "# HELP digitd_http_requests_total HTTP requests answered, by route "
            "and status.\n# TYPE digitd_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < 500; s++) {
            unsigned long long v = LOAD(m->requests[r][s]);
            if (v)
                tb_printf(&t, "digitd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    route_names[r], s + 100, v);
        }

    tb_printf(&t, "# HELP digitd_http_request_duration_seconds Time from the request "
            "headers to the last byte of the answer.\n"
            "# TYPE digitd_http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        unsigned long long cum = 0;
        for (int b = 0; b <= METRICS_BUCKETS; b++) {
            cum += LOAD(m->latency_bucket[r][b]);
            if (b < METRICS_BUCKETS)
                tb_printf(&t,
                    "digitd_http_request_duration_seconds_bucket{route=\"%s\","
                    "le=\"%g\"} %llu\n",
                    route_names[r], bucket_le[b], cum);
            else
                tb_printf(&t,
                    "digitd_http_request_duration_seconds_bucket{route=\"%s\","
                    "le=\"+Inf\"} %llu\n",
                    route_names[r], cum);
        }
        tb_printf(&t, "digitd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
            route_names[r], (double)LOAD(m->latency_sum_us[r]) / 1e6);
        tb_printf(&t, "digitd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
            route_names[r], cum);
    }

    tb_printf(&t, "# HELP digitd_model_requests_total Inference requests answered, by "
                  "model, version and result.\n"
                  "# TYPE digitd_model_requests_total counter\n");
    pthread_mutex_lock(&m->models_lock);
    for (int i = 0; i < m->n_models; i++)
        for (int ok = 1; ok >= 0; ok--)
            tb_printf(&t, "digitd_model_requests_total{model=\"%s\",version=\"%llu\","
                          "result=\"%s\"} %llu\n",
                      m->models[i].name, (unsigned long long)m->models[i].version,
                      ok ? "success" : "failure",
                      ok ? LOAD(m->models[i].ok) : LOAD(m->models[i].failed));
    pthread_mutex_unlock(&m->models_lock);
    tb_printf(&t, "# HELP digitd_predictions_total Predictions answered, by digit.\n"
            "# TYPE digitd_predictions_total counter\n");
    for (int d = 0; d < 10; d++)
        tb_printf(&t, "digitd_predictions_total{digit=\"%d\"} %llu\n", d,
            LOAD(m->predictions[d]));

    tb_printf(&t,
        "# HELP digitd_http_request_body_bytes_total Request body bytes received.\n"
        "# TYPE digitd_http_request_body_bytes_total counter\n"
        "digitd_http_request_body_bytes_total %llu\n"
        "# HELP digitd_http_response_body_bytes_total Response body bytes queued.\n"
        "# TYPE digitd_http_response_body_bytes_total counter\n"
        "digitd_http_response_body_bytes_total %llu\n",
        LOAD(m->bytes_in), LOAD(m->bytes_out));
    tb_printf(&t,
        "# HELP digitd_model_reloads_total Model reloads (SIGHUP), by result.\n"
        "# TYPE digitd_model_reloads_total counter\n"
        "digitd_model_reloads_total{result=\"success\"} %llu\n"
        "digitd_model_reloads_total{result=\"failure\"} %llu\n",
        LOAD(m->reloads_ok), LOAD(m->reloads_failed));
    tb_printf(&t,
        "# HELP digitd_http_requests_in_flight Requests being received, "
        "computed or sent.\n"
        "# TYPE digitd_http_requests_in_flight gauge\n"
        "digitd_http_requests_in_flight %lld\n"
        "# HELP digitd_queue_depth Requests waiting for an inference worker.\n"
        "# TYPE digitd_queue_depth gauge\n"
        "digitd_queue_depth %d\n"
        "# HELP digitd_workers_busy Inference workers running a batch.\n"
        "# TYPE digitd_workers_busy gauge\n"
        "digitd_workers_busy %d\n"
        "# HELP digitd_queue_refused_total Requests refused (503), by reason.\n"
        "# TYPE digitd_queue_refused_total counter\n"
        "digitd_queue_refused_total{reason=\"full\"} %llu\n"
        "digitd_queue_refused_total{reason=\"deadline\"} %llu\n"
        "# HELP digitd_inline_jobs_total Requests run on the HTTP thread that "
        "received them, without the queue (--inline-macs).\n"
        "# TYPE digitd_inline_jobs_total counter\n"
        "digitd_inline_jobs_total %llu\n",
        g->in_flight, g->queue_depth, g->workers_busy,
        (unsigned long long)g->jobs_refused_full, (unsigned long long)g->jobs_expired,
        (unsigned long long)g->jobs_inline);
    /* The dynamic batcher's work: forward passes by the number of inputs
     * they ran (the last bucket: that many or more), inline runs included. */
    tb_printf(&t, "# HELP digitd_batches_total Forward passes, by inputs in the batch.\n"
                  "# TYPE digitd_batches_total counter\n");
    for (int k = 1; k < g->n_batch_sizes; k++)
        if (g->batch_sizes[k])
            tb_printf(&t, "digitd_batches_total{size=\"%d%s\"} %llu\n", k,
                      k == g->n_batch_sizes - 1 ? "+" : "",
                      (unsigned long long)g->batch_sizes[k]);
    tb_printf(&t,
        "# HELP digitd_model_loaded 1 when a model is serving.\n"
        "# TYPE digitd_model_loaded gauge\n"
        "digitd_model_loaded %d\n"
        "# HELP digitd_draining 1 after SIGTERM, while requests are finished.\n"
        "# TYPE digitd_draining gauge\n"
        "digitd_draining %d\n"
        "# HELP digitd_start_time_seconds Process start, Unix time.\n"
        "# TYPE digitd_start_time_seconds gauge\n"
        "digitd_start_time_seconds %lld\n",
        g->model_loaded, g->draining, (long long)m->start_unix);

    return tb_take(&t, len);
}
