/* metrics.h: the daemon's counters, exported by GET /metrics in the
 * Prometheus text format (version 0.0.4). Every counter is a C11 atomic, so
 * worker threads update them without locks; a scrape reads each one once
 * (the figures are individually exact, not a consistent snapshot). */
#ifndef DIGITD_METRICS_H
#define DIGITD_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Routes, as labelled in the metrics and the access log. */
typedef enum {
    ROUTE_PREDICT,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_MODEL,
    ROUTE_METRICS,
    ROUTE_STATIC, /* the page and its assets */
    ROUTE_V2,     /* the Open Inference Protocol's /v2 routes */
    ROUTE_OPENAPI,
    ROUTE_OTHER,  /* anything not found */
    ROUTE_COUNT
} metrics_route;

/* Upper bounds of the latency histogram, seconds (+Inf is implicit). */
#define METRICS_BUCKETS 14
/* Model versions labelled separately in /metrics; more share one row. */
#define METRICS_MAX_MODELS 64

typedef struct {
    /* requests[route][status - 100], statuses 100..599 */
    atomic_uint_fast64_t requests[ROUTE_COUNT][500];
    /* latency: cumulative counts are computed at render time; these are
     * per bucket, the last one being +Inf */
    atomic_uint_fast64_t latency_bucket[ROUTE_COUNT][METRICS_BUCKETS + 1];
    atomic_uint_fast64_t latency_sum_us[ROUTE_COUNT];
    atomic_uint_fast64_t predictions[10];   /* answered digits */
    atomic_uint_fast64_t bytes_in;          /* request bodies */
    atomic_uint_fast64_t bytes_out;         /* response bodies */
    atomic_uint_fast64_t reloads_ok, reloads_failed;
    int64_t start_unix;                     /* process start, seconds */
    /* predictions by the model (repository name, version) that answered:
     * a small table, appended under its lock, counted atomically */
    pthread_mutex_t models_lock;
    int n_models;
    struct {
        char name[64];
        uint64_t version;
        atomic_uint_fast64_t ok, failed; /* answers 2xx, and 4xx/5xx */
    } models[METRICS_MAX_MODELS];
} metrics;

/* What a scrape reads from elsewhere at the moment it is made: metrics
 * only observe; the server, the model slot and the queue own these. */
typedef struct {
    long long in_flight;    /* requests begun, not finished */
    int model_loaded;       /* 0 or 1 */
    int draining;           /* 0 or 1 */
    int queue_depth;        /* jobs waiting for a worker */
    int workers_busy;
    const uint64_t *batch_sizes; /* [k]: forward passes over k inputs, k < n_batch_sizes */
    int n_batch_sizes;
    uint64_t jobs_refused_full, jobs_expired;
    uint64_t jobs_inline; /* run on the HTTP thread (work_queue_run_here) */
} metrics_gauges;

/* Zeroes every counter and records the start time. */
void metrics_init(metrics *m);

const char *metrics_route_name(metrics_route r);

/* One answered inference request of model `name` at `version`. */
void metrics_observe_model(metrics *m, const char *name, uint64_t version, int status);

/* One finished request: its route, HTTP status and duration. */
void metrics_observe(metrics *m, metrics_route r, int status, uint64_t micros);

/* Renders the text exposition into a malloc'd NUL-terminated buffer (the
 * caller frees it) and its length into *len. Returns NULL when out of
 * memory. */
char *metrics_render(metrics *m, const metrics_gauges *g, size_t *len);

#endif
