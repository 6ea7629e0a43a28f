/* fuzz_v2_route.c: v2_route_match, the Open Inference Protocol's router
 * (server/http/routes_v2.c), on a method and an already percent-decoded
 * path, as the transport calls it; and the 404/405 answers v2_handle
 * makes for what it refuses.
 *
 * Input: the method up to the first space (at most 15 bytes), then the
 * path (up to the first NUL, at most 4095 bytes).
 *
 * Promises checked (routes_v2.h): the status is 200, 404 or 405; a path
 * outside /v2 is 404 with no route; 200 and 405 name a route and the
 * method it takes, and 405 only for a method that is not that one (HEAD
 * counting as GET); the model and version are NUL-terminated inside their
 * fields and are segments of the path; a refusal's answer is UTF-8 JSON. */
#include <cjson/cJSON.h>
#include <string.h>

#include "fuzz_util.h"
#include "nn.h"
#include "routes_v2.h"

/* JSON text must be UTF-8 (RFC 8259). nn_utf8_valid_prefix itself is
 * checked against glibc's decoder in test_json_writer. */
static bool utf8(const char *s, size_t n) { return nn_utf8_valid_prefix(s, n) == n; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char method[16] = "GET", path[4096];
    const uint8_t *sp = memchr(data, ' ', size < sizeof method ? size : sizeof method);
    if (sp) {
        memcpy(method, data, (size_t)(sp - data));
        method[sp - data] = '\0';
        size -= (size_t)(sp - data) + 1;
        data = sp + 1;
    }
    size_t n = size < sizeof path - 1 ? size : sizeof path - 1;
    memcpy(path, data, n);
    path[n] = '\0';

    v2_route r;
    int st = v2_route_match(method, path, &r);
    FUZZ_CHECK(st == 200 || st == 404 || st == 405, "status %d", st);
    bool in_v2 = strncmp(path, "/v2", 3) == 0 && (path[3] == '\0' || path[3] == '/');
    if (!in_v2) FUZZ_CHECK(st == 404 && r.kind == V2_NONE, "%s matched outside /v2", path);
    FUZZ_CHECK(memchr(r.model, '\0', sizeof r.model) && memchr(r.version, '\0', sizeof r.version),
               "model or version not terminated");
    if (st == 404) {
        FUZZ_CHECK(r.model[0] == '\0' || r.kind != V2_NONE, "a model name without a route");
    } else {
        FUZZ_CHECK(r.kind != V2_NONE && r.allow != NULL, "%d without a route", st);
        bool own = strcmp(method, r.allow) == 0 ||
                   (strcmp(r.allow, "GET") == 0 && strcmp(method, "HEAD") == 0);
        FUZZ_CHECK(own == (st == 200), "%s on a %s route gave %d", method, r.allow, st);
        char seg[MODEL_REPO_NAME_MAX + 2];
        snprintf(seg, sizeof seg, "/%s", r.model);
        FUZZ_CHECK(r.model[0] == '\0' || strstr(path, seg), "model %s not in %s", r.model, path);
        snprintf(seg, sizeof seg, "/%s", r.version);
        FUZZ_CHECK(r.version[0] == '\0' || strstr(path, seg), "version %s not in %s", r.version,
                   path);
    }
    if (st != 200) { /* answered without a model or a body: no context needed */
        v2_job job;
        v2_answer a;
        FUZZ_CHECK(v2_handle(NULL, st, &r, NULL, 0, &job, &a) == V2_ANSWERED, "not answered");
        FUZZ_CHECK(a.status == st && a.body != NULL, "answer %d for %d", a.status, st);
        FUZZ_CHECK(utf8(a.body, a.len), "answer is not UTF-8: %s", a.body);
        cJSON *root = cJSON_ParseWithLength(a.body, a.len);
        FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "error")),
                   "not an error body: %s", a.body);
        cJSON_Delete(root);
        free(a.body);
    }
    return 0;
}
