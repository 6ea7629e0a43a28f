/* routes_openapi.c: GET /openapi.json, the OpenAPI 3.1 document of every
 * route. The document lives in docs/openapi.json (validated by the tests)
 * and is built into the binary (openapi_doc.c, made by CMake), so a
 * container without docs/ serves it too. */
#include <stdlib.h>
#include <string.h>

#include "routes.h"

extern const unsigned char digitd_openapi_json[];
extern const size_t digitd_openapi_json_len;

void route_openapi(exchange *x) {
    char *body = malloc(digitd_openapi_json_len);
    if (!body) {
        ex_error(x, 500, "out of memory");
        return;
    }
    memcpy(body, digitd_openapi_json, digitd_openapi_json_len);
    ex_send(x, 200, "application/json", body, digitd_openapi_json_len);
}
