/* fuzz_predict.h: the part of the three POST /predict harnesses that is
 * the same: a small served model, the limits, and the properties every
 * outcome of predict_handle must have whatever the body was. */
#ifndef DIGITD_FUZZ_PREDICT_H
#define DIGITD_FUZZ_PREDICT_H

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "nn.h"
#include "predict_request.h"

/* Smaller than the daemon's defaults (4096 px, 256 inputs, 16 Mpixel)
 * so that one input runs in milliseconds; the code paths are the same. */
static const predict_limits fuzz_limits = {512, 512, 16, 2 * 512 * 512};

/* A small untrained MLP, made once: the harnesses test the decoding, not
 * the answers. */
static const served_model *fuzz_model(void) {
    static served_model m;
    if (!m.net) {
        nn_error err;
        m.net = nn_net_create("784-16-10", "relu", &err);
        FUZZ_CHECK(m.net != NULL, "nn_net_create: %s", err.msg);
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        nn_net_init(m.net, &rng);
        strcpy(m.id, "fuzz-784-16-10@000000000000");
        strcpy(m.name, "fuzz-784-16-10");
        atomic_init(&m.refs, 1);
    }
    return &m;
}

/* One prediction object of a 200 answer: digit, confidence and ten
 * probabilities in [0, 1] that sum to 1. */
static void fuzz_check_prediction(const cJSON *p) {
    const cJSON *digit = cJSON_GetObjectItemCaseSensitive(p, "digit");
    const cJSON *probs = cJSON_GetObjectItemCaseSensitive(p, "probabilities");
    FUZZ_CHECK(cJSON_IsNumber(digit) && digit->valueint >= 0 && digit->valueint <= 9,
               "digit missing or out of range");
    FUZZ_CHECK(cJSON_IsArray(probs) && cJSON_GetArraySize(probs) == 10,
               "probabilities is not 10 numbers");
    double sum = 0;
    for (const cJSON *it = probs->child; it; it = it->next) {
        FUZZ_CHECK(cJSON_IsNumber(it) && isfinite(it->valuedouble) &&
                       it->valuedouble >= 0 && it->valuedouble <= 1,
                   "a probability is not in [0, 1]");
        sum += it->valuedouble;
    }
    FUZZ_CHECK(fabs(sum - 1) < 1e-3, "probabilities sum to %g", sum);
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(p, "input");
    if (input) {
        FUZZ_CHECK(cJSON_IsArray(input) && cJSON_GetArraySize(input) == NN_PIXELS,
                   "input is not 784 numbers");
        for (const cJSON *it = input->child; it; it = it->next)
            FUZZ_CHECK(cJSON_IsNumber(it) && it->valuedouble >= 0 && it->valuedouble <= 1,
                       "an input value is not in [0, 1]");
    }
}

/* predict_handle on one body, then the promises of predict_request.h and
 * docs/http-api.md: a known status; 200 with a well-formed JSON answer
 * (and no message), anything else with a message (and no body); never 500
 * (only out-of-memory may give it, and these inputs are small). */
static void fuzz_predict_once(const char *content_type, const uint8_t *body,
                              size_t len, bool include_input) {
    predict_outcome out;
    predict_handle(content_type, body, len, include_input, &fuzz_limits, fuzz_model(),
                   &out);
    /* The first half alone (what the daemon's workers call) agrees. */
    predict_inputs in;
    predict_outcome parsed;
    int rc = predict_parse(predict_body_kind_of(content_type), content_type, body, len,
                           &fuzz_limits, &in, &parsed);
    FUZZ_CHECK(rc == 0 ? out.status == 200 && in.n == out.n && in.inputs != NULL
                       : parsed.status == out.status && in.inputs == NULL && in.n == 0,
               "predict_parse %d (status %d), predict_handle %d", rc, parsed.status,
               out.status);
    predict_inputs_free(&in);
    FUZZ_CHECK(out.status == 200 || out.status == 400 || out.status == 415 ||
                   out.status == 422,
               "status %d (%s)", out.status, out.message);
    if (out.status != 200) {
        FUZZ_CHECK(out.body == NULL, "an error with a body");
        size_t n = strnlen(out.message, sizeof out.message);
        FUZZ_CHECK(n > 0 && n < sizeof out.message, "error message empty or unterminated");
        return;
    }
    FUZZ_CHECK(out.body != NULL && out.body_len == strlen(out.body),
               "200 without a body, or body_len wrong");
    FUZZ_CHECK(out.n >= 1 && out.n <= fuzz_limits.max_batch, "%d predictions", out.n);
    int counted = 0;
    for (int d = 0; d < 10; d++) counted += out.per_digit[d];
    FUZZ_CHECK(counted == out.n, "per_digit counts %d of %d", counted, out.n);
    cJSON *root = cJSON_ParseWithLength(out.body, out.body_len);
    FUZZ_CHECK(root != NULL, "the 200 answer is not JSON: %.200s", out.body);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    FUZZ_CHECK(cJSON_IsString(model) && strcmp(model->valuestring, fuzz_model()->id) == 0,
               "answer without the model id");
    const cJSON *preds = cJSON_GetObjectItemCaseSensitive(root, "predictions");
    if (preds) {
        FUZZ_CHECK(cJSON_IsArray(preds) && cJSON_GetArraySize(preds) == out.n,
                   "predictions is not %d objects", out.n);
        for (const cJSON *p = preds->child; p; p = p->next) fuzz_check_prediction(p);
    } else {
        FUZZ_CHECK(out.n == 1, "a single answer for %d inputs", out.n);
        fuzz_check_prediction(root);
    }
    cJSON_Delete(root);
    free(out.body);
}

#endif
