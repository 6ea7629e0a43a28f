/* routes.h: the table of what each path answers, one file per family:
 *   routes_health.c    GET /healthz, /readyz, /metrics
 *   routes_model.c     GET /model
 *   routes_predict.c   POST /predict (through the work queue)
 *   routes_static.c    GET / and the page's files
 * The transport looks a request up once, on its headers. */
#ifndef DIGITD_ROUTES_H
#define DIGITD_ROUTES_H

#include <stdbool.h>

#include "exchange.h"
#include "metrics.h"

typedef enum { ERRORS_DIGITD, ERRORS_V2 } error_style;

typedef struct route {
    const char *path;       /* exact path; NULL: `match` decides */
    bool (*match)(const char *path);
    const char *methods;    /* "GET" (HEAD implied) or "POST" */
    metrics_route metric;
    error_style errors;
    /* POST routes: called on the headers, before any body byte is read;
     * answers (and returns -1) what the headers already condemn. */
    int (*check_headers)(exchange *x);
    /* The request is complete: answer it. */
    void (*handle)(exchange *x);
} route;

/* The route for path, or NULL (then the static files decide). */
const route *route_find(const char *path);

/* The families' handlers, for the table in routes.c. */
void route_healthz(exchange *x);
void route_readyz(exchange *x);
void route_metrics(exchange *x);
void route_model(exchange *x);
int route_predict_check(exchange *x);
void route_predict(exchange *x);
/* Static files: answers GET for any other path (404 when absent). */
void route_static(exchange *x);
/* True when a file exists at path under the web root (for 405 vs 404). */
bool route_static_exists(exchange *x);

#endif
