/* test_v2.c: the Open Inference Protocol v2 functions (server/http/routes_v2.c):
 * route matching, inference request parsing (the spec's own example,
 * FP32 and BYTES tensors, hostile bodies), and every answer body checked
 * field by field against the spec's JSON objects. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes_v2.h"
#include "testutil.h"

static const v2_limits LIM = {.max_batch = 8, .max_width = 4096, .max_height = 4096,
                              .max_pixels = 1 << 24};

/* ---- helpers ----------------------------------------------------------- */

static int parse(const char *body, v2_infer_request *req, char *err) {
    return v2_parse_infer((const uint8_t *)body, strlen(body), &LIM, req, err, 256);
}

/* Parses and expects refusal `status`; the message must be non-empty and
 * render as {"error": "<message>"}. */
static void expect_refused(const char *body, int status, const char *needle) {
    v2_infer_request req;
    char err[256];
    int rc = parse(body, &req, err);
    ck_assert_msg(rc == status, "status %d (want %d) for %.120s: %s", rc, status, body, err);
    ck_assert_msg(err[0] != '\0', "no message for %.120s", body);
    if (needle) ck_assert_msg(strstr(err, needle) != NULL, "'%s' not in '%s'", needle, err);
    size_t len;
    char *json = v2_render_error(err, &len);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetArraySize(root), 1);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    ck_assert(cJSON_IsString(e));
    ck_assert_str_eq(e->valuestring, err);
    cJSON_Delete(root);
    free(json);
    v2_infer_request_free(&req);
}

/* A JSON array text of n numbers from f(i). */
static char *numbers(size_t n, double (*f)(size_t)) {
    char *s = malloc(n * 24 + 4);
    size_t at = 0;
    s[at++] = '[';
    for (size_t i = 0; i < n; i++) at += (size_t)sprintf(s + at, "%s%g", i ? "," : "", f(i));
    s[at++] = ']';
    s[at] = '\0';
    return s;
}

static double ramp01(size_t i) { return (double)(i % 784) / 783.0; }
static double ramp255(size_t i) { return (double)(i % 784) * 255.0 / 783.0; }

static char *slurp_source(const char *rel, size_t *len) {
    FILE *f = fopen(tu_source_path(rel), "rb");
    ck_assert_msg(f != NULL, "%s", rel);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static char *base64(const unsigned char *in, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = i + 1 < n ? A[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ---- routes ------------------------------------------------------------ */

START_TEST(test_routes) {
    struct {
        const char *method, *path;
        int status;
        v2_route_kind kind;
        const char *model, *version;
    } cases[] = {
        {"GET", "/v2", 200, V2_SERVER_METADATA, "", ""},
        {"HEAD", "/v2", 200, V2_SERVER_METADATA, "", ""},
        {"POST", "/v2", 405, V2_SERVER_METADATA, "", ""},
        {"GET", "/v2/health/live", 200, V2_HEALTH_LIVE, "", ""},
        {"GET", "/v2/health/ready", 200, V2_HEALTH_READY, "", ""},
        {"PUT", "/v2/health/ready", 405, V2_HEALTH_READY, "", ""},
        {"GET", "/v2/models/mnist", 200, V2_MODEL_METADATA, "mnist", ""},
        {"GET", "/v2/models/mnist/versions/3", 200, V2_MODEL_METADATA, "mnist", "3"},
        {"GET", "/v2/models/mnist/ready", 200, V2_MODEL_READY, "mnist", ""},
        {"GET", "/v2/models/mnist/versions/12/ready", 200, V2_MODEL_READY, "mnist", "12"},
        {"POST", "/v2/models/mnist/infer", 200, V2_MODEL_INFER, "mnist", ""},
        {"POST", "/v2/models/mnist/versions/2/infer", 200, V2_MODEL_INFER, "mnist", "2"},
        {"GET", "/v2/models/mnist/infer", 405, V2_MODEL_INFER, "mnist", ""},
        {"POST", "/v2/models/mnist", 405, V2_MODEL_METADATA, "mnist", ""},
        /* a model may be called "ready" or "infer": the segment count decides */
        {"GET", "/v2/models/ready", 200, V2_MODEL_METADATA, "ready", ""},
        {"POST", "/v2/models/infer/infer", 200, V2_MODEL_INFER, "infer", ""},
        {"POST", "/v2/repository/index", 200, V2_REPO_INDEX, "", ""},
        {"GET", "/v2/repository/index", 405, V2_REPO_INDEX, "", ""},
        {"POST", "/v2/repository/models/mnist/load", 200, V2_REPO_LOAD, "mnist", ""},
        {"POST", "/v2/repository/models/mnist/unload", 200, V2_REPO_UNLOAD, "mnist", ""},
        /* not v2 routes */
        {"GET", "/v2x", 404, V2_NONE, "", ""},
        {"GET", "/v1/models/mnist", 404, V2_NONE, "", ""},
        {"GET", "/v2/", 404, V2_NONE, "", ""},
        {"GET", "/v2//health/live", 404, V2_NONE, "", ""},
        {"GET", "/v2/health", 404, V2_NONE, "", ""},
        {"GET", "/v2/health/dead", 404, V2_NONE, "", ""},
        {"GET", "/v2/models", 404, V2_NONE, "", ""},
        {"GET", "/v2/models/", 404, V2_NONE, "", ""},
        {"GET", "/v2/models/mnist/versions", 404, V2_NONE, "", ""},
        {"GET", "/v2/models/mnist/stats", 404, V2_NONE, "", ""},
        {"GET", "/v2/models/mnist/versions/1/ready/x", 404, V2_NONE, "", ""},
        {"POST", "/v2/repository/models/mnist/delete", 404, V2_NONE, "", ""},
        {"GET", "/v2/models/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         404, V2_NONE, "", ""},
        {"GET", "/healthz", 404, V2_NONE, "", ""},
        {"GET", "", 404, V2_NONE, "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v2_route r;
        int st = v2_route_match(cases[i].method, cases[i].path, &r);
        ck_assert_msg(st == cases[i].status, "%s %s: %d, want %d", cases[i].method,
                      cases[i].path, st, cases[i].status);
        ck_assert_msg(r.kind == cases[i].kind, "%s %s: kind %d, want %d", cases[i].method,
                      cases[i].path, r.kind, cases[i].kind);
        ck_assert_str_eq(r.model, cases[i].model);
        ck_assert_str_eq(r.version, cases[i].version);
        if (st == 405) ck_assert_ptr_nonnull(r.allow);
    }
    ck_assert(v2_route_is_admin(V2_REPO_LOAD));
    ck_assert(!v2_route_is_admin(V2_MODEL_INFER));
}
END_TEST

/* ---- the spec's own examples -------------------------------------------- */

/* The request of "Inference Request Examples" in the spec: two inputs
 * (UINT32 [2,2] and BOOL [3] with one value) for a model "mymodel". For a
 * digit model it is a bad request, and must be refused in the protocol's
 * error shape. */
START_TEST(test_spec_example_request_refused) {
    const char *spec_request =
        "{\"id\" : \"42\", \"inputs\" : [ { \"name\" : \"input0\", \"shape\" : [ 2, 2 ],"
        " \"datatype\" : \"UINT32\", \"data\" : [ 1, 2, 3, 4 ] }, { \"name\" : \"input1\","
        " \"shape\" : [ 3 ], \"datatype\" : \"BOOL\", \"data\" : [ true ] } ],"
        " \"outputs\" : [ { \"name\" : \"output0\" } ] }";
    expect_refused(spec_request, 400, NULL);
    /* Each of its faults alone is named. */
    expect_refused("{\"inputs\":[{\"name\":\"input0\",\"shape\":[2,2],\"datatype\":\"UINT32\","
                   "\"data\":[1,2,3,4]}]}",
                   400, "UINT32");
    expect_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,784],\"datatype\":\"FP32\","
                   "\"data\":[]}],\"outputs\":[{\"name\":\"output0\"}]}",
                   400, "output0");
}
END_TEST

/* The spec's response example has "id", and "outputs" entries with name,
 * shape, datatype and data; ours must have those and model_name. */
START_TEST(test_render_infer_shape_of_spec_response) {
    v2_infer_request req;
    char err[256];
    char *data = numbers(2 * 784, ramp01);
    char body[40000];
    snprintf(body, sizeof body,
             "{\"id\":\"42\",\"inputs\":[{\"name\":\"input\",\"shape\":[2,784],"
             "\"datatype\":\"FP32\",\"data\":%s}]}",
             data);
    free(data);
    ck_assert_int_eq(parse(body, &req, err), 0);
    float probs[20];
    for (int i = 0; i < 20; i++) probs[i] = 0.01f;
    probs[7] = 0.91f;       /* sample 0: digit 7 */
    probs[10 + 3] = 0.91f;  /* sample 1: digit 3 */
    size_t len;
    char *json = v2_render_infer(&req, probs, "mnist", "2", &len);
    ck_assert_uint_eq(strlen(json), len);
    cJSON *root = cJSON_Parse(json);
    ck_assert_msg(root != NULL, "%s", json);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "model_name")->valuestring, "mnist");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "model_version")->valuestring, "2");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "id")->valuestring, "42");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    ck_assert_int_eq(cJSON_GetArraySize(outs), 2);
    const cJSON *p = cJSON_GetArrayItem(outs, 0), *d = cJSON_GetArrayItem(outs, 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring, "probabilities");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(p, "datatype")->valuestring, "FP32");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(p, "shape");
    ck_assert_int_eq(cJSON_GetArraySize(shape), 2);
    ck_assert_int_eq(cJSON_GetArrayItem(shape, 0)->valueint, 2);
    ck_assert_int_eq(cJSON_GetArrayItem(shape, 1)->valueint, 10);
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(p, "data");
    ck_assert_int_eq(cJSON_GetArraySize(pd), 20);
    for (int i = 0; i < 20; i++)
        ck_assert_float_eq((float)cJSON_GetArrayItem(pd, i)->valuedouble, probs[i]);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d, "name")->valuestring, "digit");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d, "datatype")->valuestring, "INT64");
    const cJSON *dd = cJSON_GetObjectItemCaseSensitive(d, "data");
    ck_assert_int_eq(cJSON_GetArraySize(dd), 2);
    ck_assert_int_eq(cJSON_GetArrayItem(dd, 0)->valueint, 7);
    ck_assert_int_eq(cJSON_GetArrayItem(dd, 1)->valueint, 3);
    cJSON_Delete(root);
    free(json);

    /* Without a version and without an id, neither field appears; an id
     * from the transport fills in. */
    req.has_id = false;
    json = v2_render_infer(&req, probs, "mnist", NULL, &len);
    root = cJSON_Parse(json);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(root, "model_version"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(root, "id"));
    cJSON_Delete(root);
    free(json);
    v2_infer_request_default_id(&req, "req-\"7\"");
    json = v2_render_infer(&req, probs, "mnist", NULL, &len);
    root = cJSON_Parse(json);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "id")->valuestring, "req-\"7\"");
    cJSON_Delete(root);
    free(json);
    v2_infer_request_free(&req);
}
END_TEST

/* ---- FP32 tensors ------------------------------------------------------- */

START_TEST(test_fp32_shapes_and_scaling) {
    char err[256];
    v2_infer_request a, b, c;
    char *d01 = numbers(784, ramp01), *d255 = numbers(784, ramp255);
    char *body = malloc(60000);

    sprintf(body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d01);
    ck_assert_msg(parse(body, &a, err) == 0, "%s", err);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_eq(a.n_outputs, 2);
    ck_assert(!a.has_id);

    /* 0..255 values are scaled like /predict's pixels; any input name works */
    sprintf(body, "{\"inputs\":[{\"name\":\"pixels\",\"shape\":[1,1,28,28],\"datatype\":\"FP32\",\"data\":%s}]}", d255);
    ck_assert_msg(parse(body, &b, err) == 0, "%s", err);
    for (int i = 0; i < 784; i++) ck_assert_float_eq_tol(a.inputs[i], b.inputs[i], 1e-5f);

    /* nested natural form [N,28,28] */
    size_t at = (size_t)sprintf(body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,28,28],\"datatype\":\"FP32\",\"data\":[[");
    for (int r = 0; r < 28; r++) {
        at += (size_t)sprintf(body + at, "%s[", r ? "," : "");
        for (int k = 0; k < 28; k++)
            at += (size_t)sprintf(body + at, "%s%g", k ? "," : "", ramp01((size_t)(r * 28 + k)));
        at += (size_t)sprintf(body + at, "]");
    }
    sprintf(body + at, "]]}]}");
    ck_assert_msg(parse(body, &c, err) == 0, "%s", err);
    for (int i = 0; i < 784; i++) ck_assert_float_eq_tol(a.inputs[i], c.inputs[i], 1e-5f);
    v2_infer_request_free(&a);
    v2_infer_request_free(&b);
    v2_infer_request_free(&c);

    /* a batch of 3, scaled per sample: the 0..1 sample is not divided */
    char *d3 = malloc(3 * 784 * 24);
    sprintf(d3, "[%s,%s,%s]", d01, d255, d01);
    char *big = malloc(strlen(d3) + 200);
    sprintf(big, "{\"inputs\":[{\"name\":\"input\",\"shape\":[3,784],\"datatype\":\"FP32\",\"data\":%s}]}", d3);
    ck_assert_msg(parse(big, &a, err) == 0, "%s", err);
    ck_assert_int_eq(a.n, 3);
    for (int s = 0; s < 3; s++)
        ck_assert_float_eq_tol(a.inputs[s * 784 + 783], 1.0f, 1e-6f);
    v2_infer_request_free(&a);
    free(big);
    free(d3);
    free(d01);
    free(d255);
    free(body);
}
END_TEST

START_TEST(test_outputs_and_id) {
    char err[256];
    v2_infer_request r;
    char *d = numbers(784, ramp01);
    char body[40000];
    sprintf(body, "{\"id\":\"abc\",\"parameters\":{\"k\":1,\"s\":\"x\",\"b\":false},"
                  "\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}],"
                  "\"outputs\":[{\"name\":\"digit\",\"parameters\":{\"binary_data\":false}}]}", d);
    ck_assert_msg(parse(body, &r, err) == 0, "%s", err);
    ck_assert(r.has_id);
    ck_assert_str_eq(r.id, "abc");
    ck_assert_int_eq(r.n_outputs, 1);
    ck_assert_int_eq(r.outputs[0], V2_OUT_DIGIT);
    float probs[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0.1f, 0.9f};
    size_t len;
    char *json = v2_render_infer(&r, probs, "m", "1", &len);
    cJSON *root = cJSON_Parse(json);
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    ck_assert_int_eq(cJSON_GetArraySize(outs), 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(outs->child, "name")->valuestring, "digit");
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(outs->child, "data")->child->valueint, 9);
    cJSON_Delete(root);
    free(json);
    v2_infer_request_free(&r);

    /* an id that is not UTF-8 is answered as valid JSON text: U+FFFD */
    sprintf(body, "{\"id\":\"a\xff\xc3\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],"
                  "\"datatype\":\"FP32\",\"data\":%s}]}", d);
    ck_assert_msg(parse(body, &r, err) == 0, "%s", err);
    json = v2_render_infer(&r, probs, "m", "1", &len);
    ck_assert_msg(strstr(json, "\"id\":\"a\\ufffd\\ufffd\"") != NULL, "%s", json);
    free(json);
    v2_infer_request_free(&r);

    /* the order asked for is the order answered */
    sprintf(body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}],"
                  "\"outputs\":[{\"name\":\"digit\"},{\"name\":\"probabilities\"}]}", d);
    ck_assert_msg(parse(body, &r, err) == 0, "%s", err);
    ck_assert_int_eq(r.n_outputs, 2);
    ck_assert_int_eq(r.outputs[0], V2_OUT_DIGIT);
    ck_assert_int_eq(r.outputs[1], V2_OUT_PROBABILITIES);
    v2_infer_request_free(&r);
    free(d);
}
END_TEST

/* ---- hostile and malformed bodies --------------------------------------- */

START_TEST(test_hostile_bodies) {
    char *d = numbers(784, ramp01);
    char *d783 = numbers(783, ramp01);
    char *d785 = numbers(785, ramp01);
    char b[40000];
#define INPUT(shape, dt, data) \
    "{\"inputs\":[{\"name\":\"input\",\"shape\":" shape ",\"datatype\":\"" dt "\",\"data\":" data "}]}"

    expect_refused("", 400, "empty");
    expect_refused("   ", 400, NULL);
    expect_refused("{", 400, "JSON");
    expect_refused("[]", 400, "object");
    expect_refused("{\"inputs\":[]}", 400, "one input");
    expect_refused("{\"inputs\":{}}", 400, "inputs");
    expect_refused("{}", 400, "inputs");
    expect_refused("{\"inputs\":[1]}", 400, "object");
    expect_refused("{\"inputs\":[{\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[]}]}", 400, "name");
    expect_refused("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[]}]}", 400, "shape");
    expect_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,784],\"data\":[]}]}", 400, "datatype");
    expect_refused("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,784],\"datatype\":\"FP32\"}]}", 400, "data");
    expect_refused(INPUT("[1,784]", "fp32", "[]"), 400, "fp32");     /* case-sensitive */
    expect_refused(INPUT("[1,784]", "FLOAT", "[]"), 400, "FLOAT");
    expect_refused(INPUT("[1,784]", "INT64", "[]"), 400, "INT64");
    expect_refused(INPUT("[1,28]", "FP32", "[]"), 400, "[1,28]");
    expect_refused(INPUT("[1,2,28,28]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[1,1,1,28,28]", "FP32", "[]"), 400, "4 dimensions");
    expect_refused(INPUT("[]", "FP32", "[]"), 400, "empty");
    expect_refused(INPUT("[0,784]", "FP32", "[]"), 400, "empty");
    expect_refused(INPUT("[9,784]", "FP32", "[]"), 400, "limit");
    expect_refused(INPUT("[9007199254740993,784]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[1e300,784]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[-1,784]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[1.5,784]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[\"1\",784]", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("\"[1,784]\"", "FP32", "[]"), 400, NULL);
    expect_refused(INPUT("[1,784]", "FP32", "\"abc\""), 400, "array");
    expect_refused(INPUT("[1,784]", "FP32", "[]"), 400, "needs 784");
    sprintf(b, INPUT("[1,784]", "FP32", "%s"), d783);
    expect_refused(b, 400, "needs 784");
    sprintf(b, INPUT("[1,784]", "FP32", "%s"), d785);
    expect_refused(b, 400, "more than 784");
    /* a non-number, a negative, a value over 255, a boolean */
    strcpy(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[\"0\"");
    for (int i = 1; i < 784; i++) strcat(b, ",0");
    strcat(b, "]}]}");
    expect_refused(b, 400, "element 0");
    strcpy(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[-0.5");
    for (int i = 1; i < 784; i++) strcat(b, ",0");
    strcat(b, "]}]}");
    expect_refused(b, 400, "outside");
    strcpy(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[256");
    for (int i = 1; i < 784; i++) strcat(b, ",0");
    strcat(b, "]}]}");
    expect_refused(b, 400, "outside");
    strcpy(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[true");
    for (int i = 1; i < 784; i++) strcat(b, ",0");
    strcat(b, "]}]}");
    expect_refused(b, 400, "element 0");
    /* nesting deeper than the shape */
    sprintf(b, INPUT("[1,784]", "FP32", "[[[%s]]]"), d);
    expect_refused(b, 400, "nested");
    /* Python's json.dumps writes NaN: not JSON */
    expect_refused(INPUT("[1,784]", "FP32", "[NaN]"), 400, "JSON");
    /* a nesting bomb does not crash the parser */
    {
        static char bomb[300000];
        size_t n = sizeof bomb / 2 - 1;
        memset(bomb, '[', n);
        memset(bomb + n, ']', n);
        bomb[2 * n] = '\0';
        expect_refused(bomb, 400, "nested deeper");
    }
    /* numbers JSON does not have, which cJSON alone would take */
    expect_refused(INPUT("[1,784]", "FP32", "[+1]"), 400, "no JSON number");
    expect_refused(INPUT("[1,784]", "FP32", "[007]"), 400, "no JSON number");
    /* More values than a full batch can use are refused before cJSON
     * builds a node for each (a 4 MB "0,0,..." was 128 MB of nodes); a
     * full batch in the most nested shape is not. */
    {
        size_t n = (size_t)LIM.max_batch * 1100;
        char *zeros = malloc(2 * n + 200), *p = zeros;
        p += sprintf(p, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],"
                        "\"datatype\":\"FP32\",\"data\":[0");
        for (size_t i = 1; i < n; i++) p += sprintf(p, ",0");
        sprintf(p, "]}]}");
        expect_refused(zeros, 400, "values");
        p = zeros + sprintf(zeros, "{\"id\":\"full\",\"inputs\":[{\"name\":\"input\","
                                   "\"shape\":[%d,1,28,28],\"datatype\":\"FP32\",\"data\":[",
                            LIM.max_batch);
        for (int s = 0; s < LIM.max_batch; s++) {
            p += sprintf(p, "%s[[", s ? "," : ""); /* the sample, its one channel */
            for (int row = 0; row < 28; row++) {
                p += sprintf(p, "%s[", row ? "," : "");
                for (int x = 0; x < 28; x++) p += sprintf(p, "%s%d", x ? "," : "", (x + row) % 2);
                p += sprintf(p, "]");
            }
            p += sprintf(p, "]]");
        }
        sprintf(p, "]}],\"outputs\":[{\"name\":\"digit\",\"parameters\":{\"binary_data\":false}}]}");
        v2_infer_request r;
        char err[256];
        ck_assert_msg(parse(zeros, &r, err) == 0, "a full batch: %s", err);
        ck_assert_int_eq(r.n, LIM.max_batch);
        v2_infer_request_free(&r);
        free(zeros);
    }
    /* id, parameters, outputs */
    sprintf(b, "{\"id\":42,\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
    expect_refused(b, 400, "id");
    {
        char *longid = malloc(V2_MAX_ID + 45000);
        size_t at = (size_t)sprintf(longid, "{\"id\":\"");
        memset(longid + at, 'x', V2_MAX_ID);
        at += V2_MAX_ID;
        sprintf(longid + at, "\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
        expect_refused(longid, 400, "longer");
        free(longid);
    }
    sprintf(b, "{\"parameters\":[],\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
    expect_refused(b, 400, "parameters");
    sprintf(b, "{\"parameters\":{\"x\":{}},\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
    expect_refused(b, 400, "\"x\"");
    sprintf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}],"
               "\"outputs\":[{\"name\":\"digit\",\"parameters\":{\"binary_data\":\"yes\"}}]}", d);
    expect_refused(b, 400, "binary_data");
    sprintf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
               "\"parameters\":{\"binary_data_size\":3136}}]}");
    expect_refused(b, 400, "Inference-Header-Content-Length");
    sprintf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}],"
               "\"outputs\":[{\"name\":\"digit\"},{\"name\":\"digit\"}]}", d);
    expect_refused(b, 400, "twice");
    sprintf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}],"
               "\"outputs\":[\"digit\"]}", d);
    expect_refused(b, 400, "name");
    sprintf(b, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}xyz", d);
    expect_refused(b, 400, "after");
    /* two inputs */
    sprintf(b, "{\"inputs\":[{\"name\":\"a\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s},"
               "{\"name\":\"b\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d, d);
    expect_refused(b, 400, "one input");
    /* BYTES that are not strings, not base64, not an image */
    expect_refused(INPUT("[1]", "BYTES", "[1]"), 400, "string");
    expect_refused(INPUT("[1]", "BYTES", "[\"@@@\"]"), 400, "base64");
    expect_refused(INPUT("[1]", "BYTES", "[\"aGVsbG8gd29ybGQ=\"]"), 415, "PNG");
    expect_refused(INPUT("[1]", "BYTES", "[\"\"]"), 422, "empty");
    expect_refused(INPUT("[2]", "BYTES", "[\"aGVsbG8=\"]"), 400, "needs 2");
    expect_refused(INPUT("[1,2]", "BYTES", "[\"aGVsbG8=\"]"), 400, "[1,2]");
    expect_refused(INPUT("[1]", "BYTES", "[\"data:text/plain,hello\"]"), 400, "base64");
    /* a PNG header claiming 100000x100000 pixels: refused before decoding */
    {
        unsigned char png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                 'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0,
                                 8, 0, 0, 0, 0, 0, 0, 0, 0};
        char *enc = base64(png, sizeof png);
        sprintf(b, INPUT("[1]", "BYTES", "[\"%s\"]"), enc);
        free(enc);
        v2_infer_request r;
        char err[256];
        int rc = parse(b, &r, err);
        ck_assert_msg(rc == 422 || rc == 400, "%d %s", rc, err);
        v2_infer_request_free(&r);
    }
#undef INPUT
    free(d);
    free(d783);
    free(d785);
}
END_TEST

/* ---- BYTES images --------------------------------------------------------- */

START_TEST(test_bytes_image_like_predict) {
    size_t n;
    char *png = slurp_source("docs/examples/seven.png", &n);
    char *enc = base64((const unsigned char *)png, n);
    char *body = malloc(strlen(enc) * 2 + 400);
    sprintf(body,
            "{\"id\":\"img\",\"inputs\":[{\"name\":\"image\",\"shape\":[2],\"datatype\":\"BYTES\","
            "\"data\":[\"%s\",\"data:image/png;base64,%s\"]}]}",
            enc, enc);
    v2_infer_request r;
    char err[256];
    ck_assert_msg(parse(body, &r, err) == 0, "%s", err);
    ck_assert_int_eq(r.n, 2);
    /* exactly the input the adapter (and so /predict's path) makes */
    float want[784];
    ck_assert_int_eq(v2_image_to_input((const uint8_t *)png, n, &(image_limits){4096, 4096, 1 << 24}, want, err, sizeof err), 0);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 784; i++) ck_assert_float_eq(r.inputs[s * 784 + i], want[i]);
    double ink = 0;
    for (int i = 0; i < 784; i++) ink += want[i];
    ck_assert_msg(ink > 10, "the normalised seven has almost no ink (%g)", ink);
    v2_infer_request_free(&r);

    /* the image limits apply */
    v2_limits small = {.max_batch = 8, .max_width = 8, .max_height = 8, .max_pixels = 1 << 24};
    int rc = v2_parse_infer((const uint8_t *)body, strlen(body), &small, &r, err, sizeof err);
    ck_assert_msg(rc == 422 && strstr(err, "limit"), "%d %s", rc, err);
    v2_infer_request_free(&r);
    free(body);
    free(enc);
    free(png);
}
END_TEST

/* ---- Triton's binary tensor extension ------------------------------------ */

/* JSON header + binary part into one body; *hl the header's length. */
static uint8_t *binary_body(const char *json, const uint8_t *bin, size_t bin_len, size_t *len,
                            long long *hl) {
    size_t j = strlen(json);
    uint8_t *b = malloc(j + bin_len + 1);
    memcpy(b, json, j);
    if (bin_len) memcpy(b + j, bin, bin_len);
    *len = j + bin_len;
    *hl = (long long)j;
    return b;
}

static void le32_put(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int parse_bin(const char *json, const uint8_t *bin, size_t bin_len, v2_infer_request *r,
                     char *err) {
    size_t len;
    long long hl;
    uint8_t *b = binary_body(json, bin, bin_len, &len, &hl);
    int rc = v2_parse_infer_ext(b, len, hl, &LIM, r, err, 256);
    free(b);
    return rc;
}

START_TEST(test_binary_extension) {
    char err[256];
    /* FP32 input as 784 little-endian floats: the same input as JSON */
    uint8_t fbin[784 * 4];
    for (int i = 0; i < 784; i++) {
        float v = (float)ramp255((size_t)i);
        uint32_t u;
        memcpy(&u, &v, 4);
        le32_put(fbin + 4 * i, u);
    }
    v2_infer_request a, b;
    ck_assert_msg(parse_bin("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
                            "\"parameters\":{\"binary_data_size\":3136}}],"
                            "\"parameters\":{\"binary_data_output\":true}}",
                            fbin, sizeof fbin, &a, err) == 0, "%s", err);
    char *d = numbers(784, ramp01);
    char *json = malloc(strlen(d) + 200);
    sprintf(json, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
    ck_assert_int_eq(parse(json, &b, err), 0);
    for (int i = 0; i < 784; i++) ck_assert_float_eq_tol(a.inputs[i], b.inputs[i], 1e-5f);
    ck_assert(a.binary[V2_OUT_PROBABILITIES] && a.binary[V2_OUT_DIGIT]);
    ck_assert(!b.binary[V2_OUT_PROBABILITIES] && !b.binary[V2_OUT_DIGIT]);

    /* binary outputs: JSON with binary_data_size, then the bytes */
    float probs[10] = {0.01f, 0.02f, 0.03f, 0.04f, 0.5f, 0.1f, 0.1f, 0.1f, 0.05f, 0.05f};
    size_t len, json_len;
    char *out = v2_render_infer_ext(&a, probs, "m", "1", &len, &json_len);
    ck_assert_uint_eq(len, json_len + 40 + 8);
    cJSON *root = cJSON_ParseWithLength(out, json_len);
    ck_assert_ptr_nonnull(root);
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    const cJSON *p0 = cJSON_GetArrayItem(outs, 0), *p1 = cJSON_GetArrayItem(outs, 1);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(p0, "data"));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p0, "parameters"),
                                                      "binary_data_size")->valueint, 40);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p1, "parameters"),
                                                      "binary_data_size")->valueint, 8);
    cJSON_Delete(root);
    const uint8_t *blob = (const uint8_t *)out + json_len;
    for (int k = 0; k < 10; k++) {
        uint32_t u = (uint32_t)blob[4 * k] | (uint32_t)blob[4 * k + 1] << 8 |
                     (uint32_t)blob[4 * k + 2] << 16 | (uint32_t)blob[4 * k + 3] << 24;
        float f;
        memcpy(&f, &u, 4);
        ck_assert_float_eq(f, probs[k]);
    }
    ck_assert_int_eq(blob[40], 4); /* digit 4, INT64 little-endian */
    for (int i = 41; i < 48; i++) ck_assert_int_eq(blob[i], 0);
    free(out);
    /* all-JSON answers report no header length */
    out = v2_render_infer_ext(&b, probs, "m", "1", &len, &json_len);
    ck_assert_uint_eq(json_len, 0);
    ck_assert_uint_eq(strlen(out), len);
    free(out);
    v2_infer_request_free(&a);
    v2_infer_request_free(&b);

    /* one output binary, the other JSON */
    ck_assert_msg(parse_bin("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
                            "\"parameters\":{\"binary_data_size\":3136}}],"
                            "\"outputs\":[{\"name\":\"digit\",\"parameters\":{\"binary_data\":false}},"
                            "{\"name\":\"probabilities\",\"parameters\":{\"binary_data\":true}}]}",
                            fbin, sizeof fbin, &a, err) == 0, "%s", err);
    ck_assert(a.binary[V2_OUT_PROBABILITIES] && !a.binary[V2_OUT_DIGIT]);
    out = v2_render_infer_ext(&a, probs, "m", NULL, &len, &json_len);
    ck_assert_uint_eq(len, json_len + 40);
    free(out);
    v2_infer_request_free(&a);

    /* BYTES: a 4-byte length, then the raw image */
    size_t n;
    char *png = slurp_source("docs/examples/seven.png", &n);
    uint8_t *bb = malloc(n + 4);
    le32_put(bb, (uint32_t)n);
    memcpy(bb + 4, png, n);
    char hdr[256];
    sprintf(hdr, "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\","
                 "\"parameters\":{\"binary_data_size\":%zu}}]}", n + 4);
    ck_assert_msg(parse_bin(hdr, bb, n + 4, &a, err) == 0, "%s", err);
    float want[784];
    ck_assert_int_eq(v2_image_to_input((const uint8_t *)png, n, &(image_limits){4096, 4096, 1 << 24}, want, err, sizeof err), 0);
    for (int i = 0; i < 784; i++) ck_assert_float_eq(a.inputs[i], want[i]);
    v2_infer_request_free(&a);

    /* hostile binary parts */
    struct {
        const char *json;
        size_t bin_len;
        const char *needle;
    } bad[] = {
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":3136}}]}", 3135, "more than"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":3132}}]}", 3136, "not 3136"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":3136}}]}", 3140, "no input claims"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
         "\"parameters\":{\"binary_data_size\":-4}}]}", 3136, "byte count"},
        {"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":[],"
         "\"parameters\":{\"binary_data_size\":3136}}]}", 3136, "not both"},
        {"{\"inputs\":[{\"name\":\"image\",\"shape\":[2],\"datatype\":\"BYTES\","
         "\"parameters\":{\"binary_data_size\":6}}]}", 6, "cut short"},
    };
    uint8_t *junk = calloc(4000, 1);
    le32_put(junk, 100); /* a BYTES element claiming 100 bytes of the 2 there are */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_bin(bad[i].json, junk, bad[i].bin_len, &a, err);
        ck_assert_msg(rc == 400 && strstr(err, bad[i].needle), "case %zu: %d %s", i, rc, err);
        v2_infer_request_free(&a);
    }
    /* a NaN among binary floats (JSON cannot carry one, binary can) */
    uint32_t nan_bits = 0x7fc00000u;
    le32_put(fbin + 8, nan_bits);
    int rc = parse_bin("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":3136}}]}", fbin, sizeof fbin, &a, err);
    ck_assert_msg(rc == 400 && strstr(err, "element 2"), "%d %s", rc, err);
    v2_infer_request_free(&a);
    /* a header length past the body */
    rc = v2_parse_infer_ext((const uint8_t *)"{}", 2, 3, &LIM, &a, err, sizeof err);
    ck_assert_msg(rc == 400 && strstr(err, "Inference-Header-Content-Length"), "%d %s", rc, err);
    v2_infer_request_free(&a);
    free(junk);
    free(bb);
    free(png);
    free(json);
    free(d);
}
END_TEST

/* The header's value is a length or a refusal, never "no header": a
 * client that sends "abc" or "-1" learns so, instead of having its binary
 * body read as JSON. */
START_TEST(test_header_length) {
    static const struct {
        const char *value;
        long long want; /* -2: refused */
    } cases[] = {
        {NULL, -1}, {"0", 0}, {"123", 123}, {" 42\t", 42}, {"000000000000000007", 7},
        {"999999999999999999", 999999999999999999LL}, {"", -2}, {"  ", -2}, {"abc", -2},
        {"-1", -2}, {"+1", -2}, {"12abc", -2}, {"1e3", -2}, {"0x10", -2}, {"1 2", -2},
        {"1000000000000000000", -2}, {"99999999999999999999999", -2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        long long got = 12345;
        int rc = v2_parse_header_length(cases[i].value, &got, err, sizeof err);
        if (cases[i].want == -2)
            ck_assert_msg(rc == 400 && strstr(err, "Inference-Header-Content-Length") &&
                              got == -1,
                          "case %zu (%s): %d %lld %s", i, cases[i].value, rc, got, err);
        else
            ck_assert_msg(rc == 0 && got == cases[i].want, "case %zu (%s): %d %lld %s", i,
                          cases[i].value, rc, got, err);
    }
}
END_TEST

/* ---- the other answers -------------------------------------------------- */

START_TEST(test_metadata_and_health_bodies) {
    size_t len;
    char *s = v2_render_server_metadata("1.2.3", &len);
    cJSON *root = cJSON_Parse(s);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "name")->valuestring, "digitd");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "version")->valuestring, "1.2.3");
    ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "extensions")));
    cJSON_Delete(root);
    free(s);

    uint64_t versions[2] = {2, 1};
    s = v2_render_model_metadata("mnist", versions, 2, &len);
    root = cJSON_Parse(s);
    ck_assert_msg(root != NULL, "%s", s);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "name")->valuestring, "mnist");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "versions");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, "2");
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "platform")));
    const char *sections[] = {"inputs", "outputs"};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, sections[k]);
        ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
        for (const cJSON *t = arr->child; t; t = t->next) {
            ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(t, "name")));
            ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(t, "datatype")));
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
            ck_assert(cJSON_IsArray(sh));
            ck_assert_int_eq(cJSON_GetArrayItem(sh, 0)->valueint, -1); /* the batch */
        }
    }
    cJSON_Delete(root);
    free(s);

    s = v2_render_live(&len);
    ck_assert_str_eq(s, "{\"live\":true}");
    free(s);
    s = v2_render_ready(false, &len);
    ck_assert_str_eq(s, "{\"ready\":false}");
    free(s);
    s = v2_render_model_ready("a\"b", true, &len);
    root = cJSON_Parse(s);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "name")->valuestring, "a\"b");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ready")));
    cJSON_Delete(root);
    free(s);
}
END_TEST

START_TEST(test_repository_bodies) {
    repo_index_entry rows[3] = {
        {.name = "alpha", .version = 1, .ready = true},
        {.name = "alpha", .version = 2, .ready = true},
        {.name = "broken", .version = 0, .ready = false, .reason = "bad \"file\""},
    };
    size_t len;
    char *s = v2_render_repo_index(rows, 3, false, &len);
    cJSON *root = cJSON_Parse(s);
    ck_assert_msg(cJSON_IsArray(root), "%s", s);
    ck_assert_int_eq(cJSON_GetArraySize(root), 3);
    const cJSON *r1 = cJSON_GetArrayItem(root, 1), *r2 = cJSON_GetArrayItem(root, 2);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r1, "version")->valuestring, "2");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r1, "state")->valuestring, "READY");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r2, "state")->valuestring, "UNAVAILABLE");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r2, "reason")->valuestring, "bad \"file\"");
    cJSON_Delete(root);
    free(s);
    s = v2_render_repo_index(rows, 3, true, &len);
    root = cJSON_Parse(s);
    ck_assert_int_eq(cJSON_GetArraySize(root), 2);
    cJSON_Delete(root);
    free(s);

    bool ready;
    char err[128];
    ck_assert_int_eq(v2_parse_repo_index((const uint8_t *)"", 0, &ready, err, sizeof err), 0);
    ck_assert(!ready);
    ck_assert_int_eq(v2_parse_repo_index((const uint8_t *)"{\"ready\":true}", 14, &ready, err, sizeof err), 0);
    ck_assert(ready);
    ck_assert_int_eq(v2_parse_repo_index((const uint8_t *)"{\"ready\":1}", 11, &ready, err, sizeof err), 400);
    ck_assert_int_eq(v2_parse_repo_index((const uint8_t *)"[", 1, &ready, err, sizeof err), 400);
}
END_TEST

/* ---- v2_handle over a real repository ----------------------------------- */

#include <sys/stat.h>


/* Runs one request through match + v2_handle (+ the model, for infer). */
static v2_answer run(v2_context *ctx, const char *method, const char *path, const char *body) {
    v2_route route;
    int ms = v2_route_match(method, path, &route);
    v2_job job;
    v2_answer out;
    if (v2_handle(ctx, ms, &route, (const uint8_t *)body, body ? strlen(body) : 0, &job, &out) ==
        V2_RUN_MODEL) {
        float *probs = malloc((size_t)job.req.n * 10 * sizeof(float));
        nn_error err;
        ck_assert_int_eq(nn_predict(job.ref.model->net, job.req.inputs, job.req.n, probs, 1, &err), 0);
        v2_finish(&job, probs, &out);
        free(probs);
        v2_job_release(&job);
    }
    return out;
}

static cJSON *json_of(const v2_answer *a) {
    ck_assert_msg(a->body != NULL, "status %d without a body", a->status);
    cJSON *root = cJSON_ParseWithLength(a->body, a->len);
    ck_assert_msg(root != NULL, "%.*s", (int)a->len, a->body);
    return root;
}

START_TEST(test_handle_end_to_end) {
    tu_tmpdir_make();
    tu_write_model("repo/alpha/1/" MODEL_REPO_FILE, "a1", 1);
    tu_write_model("repo/alpha/2/" MODEL_REPO_FILE, "a2", 2);
    tu_write_model("repo/beta/1/" MODEL_REPO_FILE, "b1", 3);
    nn_error err;
    model_repo *repo = model_repo_open_dir(tu_tpath("repo"), "alpha", &err);
    ck_assert_msg(repo != NULL, "%s", err.msg);
    v2_context ctx = {.repo = repo, .server_version = "9.9", .limits = LIM,
                      .admin_enabled = true, .admin_allowed = true, .request_id = "rid-1"};

    v2_answer a = run(&ctx, "GET", "/v2/health/ready", NULL);
    ck_assert_int_eq(a.status, 200);
    free(a.body);
    ctx.draining = true;
    a = run(&ctx, "GET", "/v2/health/ready", NULL);
    ck_assert_int_eq(a.status, 503);
    ck_assert_str_eq(a.body, "{\"ready\":false}");
    free(a.body);
    ctx.draining = false;

    a = run(&ctx, "GET", "/v2/models/alpha", NULL);
    ck_assert_int_eq(a.status, 200);
    cJSON *j = json_of(&a);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "versions")), 2);
    cJSON_Delete(j);
    free(a.body);
    a = run(&ctx, "GET", "/v2/models/alpha/versions/3", NULL);
    ck_assert_int_eq(a.status, 404);
    free(a.body);
    a = run(&ctx, "HEAD", "/v2/models/gamma/ready", NULL);
    ck_assert_int_eq(a.status, 404);
    free(a.body);
    a = run(&ctx, "POST", "/v2/models/alpha/ready", "");
    ck_assert_int_eq(a.status, 405);
    ck_assert_str_eq(a.allow, "GET");
    free(a.body);

    /* inference: the answer is the model's own argmax, id from the transport */
    char *d = numbers(784, ramp01);
    char *body = malloc(strlen(d) + 200);
    sprintf(body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,784],\"datatype\":\"FP32\",\"data\":%s}]}", d);
    a = run(&ctx, "POST", "/v2/models/alpha/versions/1/infer", body);
    ck_assert_msg(a.status == 200, "%d %s", a.status, a.body);
    j = json_of(&a);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "model_version")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, "rid-1");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(j, "outputs");
    const cJSON *pd = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outs, 0), "data");
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (cJSON_GetArrayItem(pd, k)->valuedouble > cJSON_GetArrayItem(pd, best)->valuedouble) best = k;
    const cJSON *dd = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(outs, 1), "data");
    ck_assert_int_eq(dd->child->valueint, best);
    cJSON_Delete(j);
    free(a.body);
    a = run(&ctx, "POST", "/v2/models/nosuch/infer", body);
    ck_assert_int_eq(a.status, 404);
    free(a.body);
    a = run(&ctx, "POST", "/v2/models/alpha/infer", "{");
    ck_assert_int_eq(a.status, 400);
    free(a.body);
    ctx.inference_header = "-1";
    a = run(&ctx, "POST", "/v2/models/alpha/infer", body);
    ck_assert_msg(a.status == 400 && strstr(a.body, "Inference-Header-Content-Length"), "%d %s",
                  a.status, a.body);
    free(a.body);
    ctx.inference_header = NULL;

    /* repository: unload makes 503s, load brings it back */
    a = run(&ctx, "POST", "/v2/repository/models/beta/unload", "");
    ck_assert_int_eq(a.status, 200);
    ck_assert_ptr_null(a.body);
    a = run(&ctx, "POST", "/v2/models/beta/infer", body);
    ck_assert_int_eq(a.status, 503);
    free(a.body);
    a = run(&ctx, "GET", "/v2/models/beta/ready", NULL);
    ck_assert_int_eq(a.status, 503);
    ck_assert_str_eq(a.body, "{\"name\":\"beta\",\"ready\":false}");
    free(a.body);
    a = run(&ctx, "POST", "/v2/repository/models/beta/load", "{}");
    ck_assert_int_eq(a.status, 200);
    a = run(&ctx, "POST", "/v2/repository/models/nosuch/load", "{}");
    ck_assert_int_eq(a.status, 404);
    free(a.body);

    /* a refused file: 400 without paths; the index reason has none either */
    FILE *f = fopen(tu_tpath("repo/beta/1/" MODEL_REPO_FILE), "w");
    fputs("junk", f);
    fclose(f);
    tu_write_model("repo/gamma/1/x", "unused", 4); /* gamma/1 without its model file */
    a = run(&ctx, "POST", "/v2/repository/models/gamma/load", "");
    ck_assert_int_eq(a.status, 400);
    ck_assert_msg(strstr(a.body, tu_tmpdir) == NULL, "path in %s", a.body);
    ck_assert_msg(strstr(a.log_detail, "gamma") != NULL, "%s", a.log_detail);
    free(a.body);
    a = run(&ctx, "POST", "/v2/repository/index", "{\"ready\":false}");
    ck_assert_int_eq(a.status, 200);
    ck_assert_msg(strstr(a.body, tu_tmpdir) == NULL, "path in %s", a.body);
    ck_assert_msg(strstr(a.body, "gamma/1/model.digitd") != NULL, "%s", a.body);
    free(a.body);

    ctx.admin_allowed = false;
    a = run(&ctx, "POST", "/v2/repository/index", "");
    ck_assert_int_eq(a.status, 401);
    free(a.body);
    ctx.admin_enabled = false;
    a = run(&ctx, "POST", "/v2/repository/models/beta/unload", "");
    ck_assert_int_eq(a.status, 403);
    free(a.body);

    free(body);
    free(d);
    model_repo_close(repo);
    tu_tmpdir_remove();
}
END_TEST

int main(void) {
    Suite *s = suite_create("v2");
    TCase *tc = tcase_create("v2");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_spec_example_request_refused);
    tcase_add_test(tc, test_render_infer_shape_of_spec_response);
    tcase_add_test(tc, test_fp32_shapes_and_scaling);
    tcase_add_test(tc, test_outputs_and_id);
    tcase_add_test(tc, test_hostile_bodies);
    tcase_add_test(tc, test_bytes_image_like_predict);
    tcase_add_test(tc, test_binary_extension);
    tcase_add_test(tc, test_header_length);
    tcase_add_test(tc, test_metadata_and_health_bodies);
    tcase_add_test(tc, test_repository_bodies);
    suite_add_tcase(s, tc);
    TCase *h = tcase_create("handle");
    tcase_add_unchecked_fixture(h, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_set_timeout(h, 60);
    tcase_add_test(h, test_handle_end_to_end);
    suite_add_tcase(s, h);
    return tu_run(s);
}
