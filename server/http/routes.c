/* routes.c: the route table (routes.h). Exact paths first; families with
 * patterns (the v2 protocol) decide by their match function. */
#include <string.h>

#include "routes.h"

static const route table[] = {
    {"/predict", NULL, "POST", ROUTE_PREDICT, ERRORS_DIGITD, route_predict_check, route_predict},
    {"/healthz", NULL, "GET", ROUTE_HEALTHZ, ERRORS_DIGITD, NULL, route_healthz},
    {"/readyz", NULL, "GET", ROUTE_READYZ, ERRORS_DIGITD, NULL, route_readyz},
    {"/model", NULL, "GET", ROUTE_MODEL, ERRORS_DIGITD, NULL, route_model},
    {"/metrics", NULL, "GET", ROUTE_METRICS, ERRORS_DIGITD, NULL, route_metrics},
};

const route *route_find(const char *path) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const route *r = &table[i];
        if (r->path ? strcmp(path, r->path) == 0 : r->match(path)) return r;
    }
    return NULL;
}
