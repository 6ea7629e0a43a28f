/* fuzz_v2_infer.c: POST /v2/models/{m}/infer (the Open Inference Protocol,
 * server/http/routes_v2.c): the Inference-Header-Content-Length value and
 * the body go through v2_parse_header_length and v2_parse_infer_ext as the
 * daemon's workers call them, and an accepted request is rendered with
 * v2_render_infer_ext. The same bytes also go to v2_parse_repo_index (the
 * other v2 body parser).
 *
 * Input: when it starts with '#', the rest of its first line is the
 * header's value and the bytes after the newline are the body (JSON, then
 * Triton's binary tensor data); otherwise it is all body, no header.
 *
 * Promises checked (routes_v2.h): a refusal is 400, 415, 422 or 500 with
 * a message, and its {"error": ...} answer is JSON text (UTF-8); an
 * accepted request has 1..max_batch inputs of 784 finite values in [0, 1]
 * and one or two distinct outputs; its answer is UTF-8 JSON naming those
 * outputs in order, with the request's id, followed by exactly the binary
 * bytes the JSON announces. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz_util.h"
#include "nn.h"
#include "routes_v2.h"

/* JSON text must be UTF-8 (RFC 8259). nn_utf8_valid_prefix itself is
 * checked against glibc's decoder in test_json_writer. */
static bool utf8(const char *s, size_t n) { return nn_utf8_valid_prefix(s, n) == n; }

/* Smaller than the daemon's defaults, as in fuzz_predict.h. */
#define FUZZ_V2_MAX_BATCH 16
static const v2_limits fuzz_v2_limits = {FUZZ_V2_MAX_BATCH, 512, 512, 2 * 512 * 512};

/* text (n bytes) is UTF-8 JSON; returns the parsed document. */
static cJSON *json_text(const char *text, size_t n) {
    FUZZ_CHECK(utf8(text, n), "answer is not UTF-8: %.200s", text);
    cJSON *root = cJSON_ParseWithLength(text, n);
    FUZZ_CHECK(root != NULL, "answer is not JSON: %.200s", text);
    return root;
}

static void check_refusal(int status, const char *err) {
    FUZZ_CHECK(status == 400 || status == 415 || status == 422 || status == 500,
               "status %d (%s)", status, err);
    FUZZ_CHECK(err[0] != '\0', "a refusal without a message");
    size_t len;
    char *body = v2_render_error(err, &len);
    FUZZ_CHECK(body != NULL, "no error body");
    cJSON *root = json_text(body, len);
    FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "error")),
               "error body without \"error\": %s", body);
    cJSON_Delete(root);
    free(body);
}

static void check_answer(const v2_infer_request *req) {
    FUZZ_CHECK(req->n >= 1 && req->n <= fuzz_v2_limits.max_batch, "batch of %d", req->n);
    FUZZ_CHECK(req->inputs != NULL, "no inputs");
    for (size_t i = 0; i < (size_t)req->n * NN_PIXELS; i++)
        FUZZ_CHECK(isfinite(req->inputs[i]) && req->inputs[i] >= 0 && req->inputs[i] <= 1,
                   "input value %zu is %g", i, (double)req->inputs[i]);
    FUZZ_CHECK(req->n_outputs == 1 || req->n_outputs == 2, "%d outputs", req->n_outputs);
    FUZZ_CHECK(req->n_outputs == 1 || req->outputs[0] != req->outputs[1], "an output twice");

    float probs[FUZZ_V2_MAX_BATCH * NN_CLASSES]; /* for any accepted batch */
    for (size_t i = 0; i < sizeof probs / sizeof probs[0]; i++) probs[i] = 0.1f;
    size_t len, json_len;
    char *body = v2_render_infer_ext(req, probs, "fuzz", "1", &len, &json_len);
    FUZZ_CHECK(body != NULL, "no answer");
    size_t text_len = json_len ? json_len : len;
    cJSON *root = json_text(body, text_len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    FUZZ_CHECK(req->has_id ? cJSON_IsString(id) : id == NULL, "id echoed wrongly");
    if (req->has_id && utf8(req->id, strlen(req->id)))
        FUZZ_CHECK(strcmp(id->valuestring, req->id) == 0, "id changed: %s", id->valuestring);
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    FUZZ_CHECK(cJSON_GetArraySize(outs) == req->n_outputs, "outputs not as asked");
    size_t binary = 0;
    int o = 0;
    for (const cJSON *out = outs->child; out; out = out->next, o++) {
        const char *want = req->outputs[o] == V2_OUT_PROBABILITIES ? "probabilities" : "digit";
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(out, "name");
        FUZZ_CHECK(cJSON_IsString(name) && strcmp(name->valuestring, want) == 0,
                   "output %d is not %s", o, want);
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(out, "parameters"), "binary_data_size");
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(out, "data");
        bool probs_out = req->outputs[o] == V2_OUT_PROBABILITIES;
        size_t elements = (size_t)req->n * (probs_out ? NN_CLASSES : 1);
        if (req->binary[req->outputs[o]]) { /* FP32 or INT64 */
            FUZZ_CHECK(cJSON_IsNumber(size) && data == NULL, "binary output without its size");
            FUZZ_CHECK((size_t)size->valuedouble == elements * (probs_out ? 4 : 8),
                       "binary size %g for %zu elements", size->valuedouble, elements);
            binary += (size_t)size->valuedouble;
        } else {
            FUZZ_CHECK(size == NULL && cJSON_GetArraySize(data) == (int)elements,
                       "output %d has not %zu values", o, elements);
        }
    }
    FUZZ_CHECK(len == text_len + binary, "%zu bytes, %zu JSON + %zu binary", len, text_len,
               binary);
    FUZZ_CHECK((json_len > 0) == (binary > 0), "JSON length given without binary outputs");
    cJSON_Delete(root);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char header[64];
    const char *value = NULL;
    if (size > 0 && data[0] == '#') {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) - 1 : size - 1;
        if (n >= sizeof header) n = sizeof header - 1;
        memcpy(header, data + 1, n);
        header[n] = '\0';
        value = header;
        size_t skip = nl ? (size_t)(nl - data) + 1 : size;
        data += skip;
        size -= skip;
    }
    char err[256];
    long long header_len;
    int rc = v2_parse_header_length(value, &header_len, err, sizeof err);
    if (rc) {
        check_refusal(rc, err);
    } else {
        v2_infer_request req;
        rc = v2_parse_infer_ext(data, size, header_len, &fuzz_v2_limits, &req, err, sizeof err);
        if (rc) {
            check_refusal(rc, err);
        } else {
            check_answer(&req);
        }
        v2_infer_request_free(&req);
    }

    bool ready_only = true;
    rc = v2_parse_repo_index(data, size, &ready_only, err, sizeof err);
    FUZZ_CHECK(rc == 0 || (rc == 400 && err[0] && !ready_only), "repo index: %d", rc);
    return 0;
}
