/* routes_v2.c: see routes_v2.h. The protocol text followed is KServe's
 * "Predict Protocol - Version 2" (docs/predict-api/v2/required_api.md) and
 * the Open Inference Protocol REST page; Triton's model repository
 * extension for /v2/repository. */
#include "routes_v2.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "image_decode.h"
#include "json_shape.h"
#include "json_writer.h"
#include "nn.h"
#include "text_buffer.h"

/* The tensor datatypes the protocol defines; any other is malformed, these
 * are well-formed but not taken by a digit model. */
static const char *const KNOWN_DATATYPES[] = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"};

static int failf(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t errlen, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return status;
}

/* ====================================================================== */
/* Routes                                                                  */
/* ====================================================================== */

#define V2_MAX_SEGMENTS 8

/* Splits "/a/b/c" into segments (no empty ones allowed). Returns the count,
 * or -1 for an empty segment, too many segments or a segment too long. */
static int split_path(const char *path, char seg[V2_MAX_SEGMENTS][MODEL_REPO_NAME_MAX]) {
    if (path[0] != '/') return -1;
    int n = 0;
    const char *p = path + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= MODEL_REPO_NAME_MAX || n == V2_MAX_SEGMENTS) return -1;
        memcpy(seg[n], p, len);
        seg[n][len] = '\0';
        n++;
        if (!slash) break;
        p = slash + 1;
        if (!*p) return -1; /* trailing slash */
    }
    return n;
}

static int route_found(const char *method, v2_route *out, v2_route_kind kind,
                       const char *allow) {
    out->kind = kind;
    out->allow = allow;
    bool ok = strcmp(method, allow) == 0 ||
              (strcmp(allow, "GET") == 0 && strcmp(method, "HEAD") == 0);
    return ok ? 200 : 405;
}

int v2_route_match(const char *method, const char *path, v2_route *out) {
    memset(out, 0, sizeof *out);
    if (strncmp(path, "/v2", 3) != 0 || (path[3] != '\0' && path[3] != '/')) return 404;
    char seg[V2_MAX_SEGMENTS][MODEL_REPO_NAME_MAX] = {{0}}; /* copied whole below */
    int n = split_path(path, seg);
    if (n < 1) return 404;
    /* seg[0] is "v2" */
    if (n == 1) return route_found(method, out, V2_SERVER_METADATA, "GET");
    if (strcmp(seg[1], "health") == 0 && n == 3) {
        if (strcmp(seg[2], "live") == 0) return route_found(method, out, V2_HEALTH_LIVE, "GET");
        if (strcmp(seg[2], "ready") == 0)
            return route_found(method, out, V2_HEALTH_READY, "GET");
        return 404;
    }
    if (strcmp(seg[1], "models") == 0 && n >= 3) {
        memcpy(out->model, seg[2], sizeof out->model); /* same size, NUL inside */
        int rest = 3; /* first segment after the model (and version) */
        if (n >= 5 && strcmp(seg[3], "versions") == 0) {
            size_t vlen = strlen(seg[4]);
            if (vlen >= sizeof out->version) {
                memset(out, 0, sizeof *out);
                return 404;
            }
            memcpy(out->version, seg[4], vlen + 1);
            rest = 5;
        }
        if (n == rest) return route_found(method, out, V2_MODEL_METADATA, "GET");
        if (n == rest + 1 && strcmp(seg[rest], "ready") == 0)
            return route_found(method, out, V2_MODEL_READY, "GET");
        if (n == rest + 1 && strcmp(seg[rest], "infer") == 0)
            return route_found(method, out, V2_MODEL_INFER, "POST");
        memset(out, 0, sizeof *out);
        return 404;
    }
    if (strcmp(seg[1], "repository") == 0) {
        if (n == 3 && strcmp(seg[2], "index") == 0)
            return route_found(method, out, V2_REPO_INDEX, "POST");
        if (n == 5 && strcmp(seg[2], "models") == 0) {
            memcpy(out->model, seg[3], sizeof out->model);
            if (strcmp(seg[4], "load") == 0) return route_found(method, out, V2_REPO_LOAD, "POST");
            if (strcmp(seg[4], "unload") == 0)
                return route_found(method, out, V2_REPO_UNLOAD, "POST");
        }
        memset(out, 0, sizeof *out);
        return 404;
    }
    return 404;
}

bool v2_route_is_admin(v2_route_kind kind) {
    return kind == V2_REPO_INDEX || kind == V2_REPO_LOAD || kind == V2_REPO_UNLOAD;
}

/* ====================================================================== */
/* Parsing an inference request                                            */
/* ====================================================================== */

/* $parameters: an object of string, number or boolean values. */
static int check_parameters(const cJSON *p, const char *where, char *err, size_t errlen) {
    if (!p) return 0;
    if (!cJSON_IsObject(p))
        return failf(err, errlen, 400, "%s \"parameters\" must be an object", where);
    for (const cJSON *it = p->child; it; it = it->next) {
        if (!cJSON_IsString(it) && !cJSON_IsNumber(it) && !cJSON_IsBool(it))
            return failf(err, errlen, 400,
                         "%s parameter \"%.64s\" must be a string, number or boolean",
                         where, it->string);
        /* Triton's binary tensor extension (see v2_parse_infer_ext): */
        if ((strcmp(it->string, "binary_data") == 0 ||
             strcmp(it->string, "binary_data_output") == 0) &&
            !cJSON_IsBool(it))
            return failf(err, errlen, 400, "parameter \"%s\" must be true or false",
                         it->string);
        if (strcmp(it->string, "binary_data_size") == 0 &&
            (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 4294967295.0 ||
             it->valuedouble != floor(it->valuedouble)))
            return failf(err, errlen, 400,
                         "parameter \"binary_data_size\" must be a byte count");
        if (strcmp(it->string, "classification") == 0)
            return failf(err, errlen, 400,
                         "the classification extension is not supported: "
                         "read the \"digit\" output");
    }
    return 0;
}

/* Shape: 1..4 integers 0..2^53. */
static int read_shape(const cJSON *shape, uint64_t dims[4], int *rank, char *err,
                      size_t errlen) {
    if (!cJSON_IsArray(shape))
        return failf(err, errlen, 400, "input \"shape\" must be an array of integers");
    int n = 0;
    for (const cJSON *it = shape->child; it; it = it->next) {
        if (n == 4)
            return failf(err, errlen, 400,
                         "input shape has more than 4 dimensions; expected [N,784], "
                         "[N,28,28], [N,1,28,28] (FP32) or [N] (BYTES)");
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || !isfinite(v) || v < 0 || v != floor(v) ||
            v > 9007199254740992.0)
            return failf(err, errlen, 400,
                         "input shape dimension %d is not a non-negative integer", n);
        dims[n++] = (uint64_t)v;
    }
    if (n == 0) return failf(err, errlen, 400, "input \"shape\" is empty");
    *rank = n;
    return 0;
}

/* Walks the (possibly nested) data array in row-major order, calling
 * take() on each leaf with its flat index. Stops with the count in *count
 * once it passes `want` (so a huge array is not walked to the end).
 * Nesting deeper than max_depth is refused. */
typedef int (*leaf_fn)(void *ctx, const cJSON *leaf, size_t index, char *err,
                       size_t errlen);

static int walk_data(const cJSON *node, int depth, int max_depth, size_t want,
                     size_t *count, leaf_fn take, void *ctx, char *err, size_t errlen) {
    for (const cJSON *it = node->child; it; it = it->next) {
        if (cJSON_IsArray(it)) {
            if (depth + 1 > max_depth)
                return failf(err, errlen, 400, "input \"data\" is nested deeper than its shape");
            int rc = walk_data(it, depth + 1, max_depth, want, count, take, ctx, err, errlen);
            if (rc) return rc;
            continue;
        }
        if (*count >= want) { /* too many: count no further */
            (*count)++;
            return 0;
        }
        int rc = take(ctx, it, *count, err, errlen);
        if (rc) return rc;
        (*count)++;
    }
    return 0;
}

typedef struct {
    float *dst;
} fp32_ctx;

static int take_fp32(void *ctx, const cJSON *leaf, size_t index, char *err, size_t errlen) {
    fp32_ctx *c = ctx;
    if (!cJSON_IsNumber(leaf))
        return failf(err, errlen, 400, "FP32 element %zu is not a number", index);
    double v = leaf->valuedouble;
    if (!isfinite(v) || v < 0 || v > 255)
        return failf(err, errlen, 400,
                     "FP32 element %zu is %g, outside 0..255 (pixels are 0..1 or 0..255)",
                     index, v);
    c->dst[index] = (float)v;
    return 0;
}

typedef struct {
    const char **strings;
} bytes_ctx;

static int take_bytes(void *ctx, const cJSON *leaf, size_t index, char *err, size_t errlen) {
    bytes_ctx *c = ctx;
    if (!cJSON_IsString(leaf))
        return failf(err, errlen, 400,
                     "BYTES element %zu is not a string (base64 of an image)", index);
    c->strings[index] = leaf->valuestring;
    return 0;
}

static void shape_text(const uint64_t *dims, int rank, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%llu", i ? "," : "[",
                               (unsigned long long)dims[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

/* "<base64>" or "data:<type>;base64,<base64>" -> one input. */
static int take_image_string(const char *s, image_limits *images, float *out, size_t index,
                             char *err, size_t errlen) {
    size_t len = strlen(s);
    if (len >= 5 && strncmp(s, "data:", 5) == 0) {
        const char *comma = strchr(s, ',');
        if (!comma || comma - s < 12 || strncmp(comma - 7, ";base64", 7) != 0)
            return failf(err, errlen, 400, "BYTES element %zu: a data: URL must be base64",
                         index);
        s = comma + 1;
        len = strlen(s);
    }
    uint8_t *bytes;
    size_t n;
    if (base64_decode(s, len, &bytes, &n) != 0)
        return failf(err, errlen, 400, "BYTES element %zu is not valid base64", index);
    char why[200];
    int rc = v2_image_to_input(bytes, n, images, out, why, sizeof why);
    free(bytes);
    if (rc) return failf(err, errlen, rc, "BYTES element %zu: %s", index, why);
    return 0;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Per sample, as /predict's pixels: 0..255 when any value is over 1.
 * x is (n, 784). */
static void scale_samples(float *x, int n) {
    for (int s = 0; s < n; s++, x += NN_PIXELS) {
        float max = 0;
        for (int i = 0; i < NN_PIXELS; i++)
            if (x[i] > max) max = x[i];
        if (max > 1)
            for (int i = 0; i < NN_PIXELS; i++) x[i] /= 255.0f;
    }
}

/* The binary part of a request (Triton's binary tensor extension): the
 * bytes after the JSON, taken by the inputs in order. */
typedef struct {
    const uint8_t *data; /* NULL: the request has no binary part */
    size_t len, used;
} binary_part;

static bool param_true(const cJSON *params, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, key));
}

static int parse_outputs(const cJSON *outputs, bool binary_default, v2_infer_request *req,
                         char *err, size_t errlen) {
    req->n_outputs = 2;
    req->outputs[0] = V2_OUT_PROBABILITIES;
    req->outputs[1] = V2_OUT_DIGIT;
    req->binary[0] = req->binary[1] = binary_default;
    if (!outputs) return 0;
    if (!cJSON_IsArray(outputs))
        return failf(err, errlen, 400, "\"outputs\" must be an array of {\"name\": ...}");
    int n = 0;
    bool seen[2] = {false, false};
    for (const cJSON *o = outputs->child; o; o = o->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (!cJSON_IsObject(o) || !cJSON_IsString(name))
            return failf(err, errlen, 400, "each requested output needs a \"name\" string");
        int rc = check_parameters(cJSON_GetObjectItemCaseSensitive(o, "parameters"),
                                  "output", err, errlen);
        if (rc) return rc;
        v2_output which;
        if (strcmp(name->valuestring, "probabilities") == 0) which = V2_OUT_PROBABILITIES;
        else if (strcmp(name->valuestring, "digit") == 0) which = V2_OUT_DIGIT;
        else
            return failf(err, errlen, 400,
                         "unknown output \"%.64s\": the model has \"probabilities\" and \"digit\"",
                         name->valuestring);
        if (seen[which])
            return failf(err, errlen, 400, "output \"%s\" is requested twice",
                         name->valuestring);
        seen[which] = true;
        req->outputs[n++] = which;
        const cJSON *bd = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(o, "parameters"), "binary_data");
        req->binary[which] = bd ? cJSON_IsTrue(bd) : binary_default;
    }
    /* "outputs": [] is read as "not specified": every output. */
    if (n > 0) req->n_outputs = n;
    return 0;
}

static int parse_input(const cJSON *in, const v2_limits *lim, binary_part *bin,
                       v2_infer_request *req, char *err, size_t errlen) {
    /* every image of the request spends one decoded-pixel budget */
    image_limits images = {lim->max_width, lim->max_height, lim->max_pixels};
    if (!cJSON_IsObject(in)) return failf(err, errlen, 400, "an input must be an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    const cJSON *datatype = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    /* Parameters first: with Triton's binary extension "data" is absent,
     * and the better message names the extension. */
    int rc = check_parameters(cJSON_GetObjectItemCaseSensitive(in, "parameters"), "input",
                              err, errlen);
    if (rc) return rc;
    if (!cJSON_IsString(name)) return failf(err, errlen, 400, "input \"name\" must be a string");
    if (!cJSON_IsString(datatype))
        return failf(err, errlen, 400, "input \"datatype\" must be a string");
    if (!shape) return failf(err, errlen, 400, "input \"shape\" is missing");
    const cJSON *bsize = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(in, "parameters"), "binary_data_size");
    if (bsize && data)
        return failf(err, errlen, 400, "an input has either \"data\" or binary_data_size, not both");
    if (bsize && !bin->data)
        return failf(err, errlen, 400,
                     "binary_data_size needs the Inference-Header-Content-Length header");
    if (!data && !bsize) return failf(err, errlen, 400, "input \"data\" is missing");
    uint64_t dims[4] = {0, 0, 0, 0};
    int rank = 0;
    if ((rc = read_shape(shape, dims, &rank, err, errlen))) return rc;
    char st[128];
    shape_text(dims, rank, st, sizeof st);

    const char *dt = datatype->valuestring;
    bool fp32 = strcmp(dt, "FP32") == 0, bytes = strcmp(dt, "BYTES") == 0;
    if (!fp32 && !bytes) {
        bool known = false;
        for (size_t i = 0; i < sizeof KNOWN_DATATYPES / sizeof KNOWN_DATATYPES[0]; i++)
            if (strcmp(dt, KNOWN_DATATYPES[i]) == 0) known = true;
        return failf(err, errlen, 400,
                     known ? "datatype %.16s is not taken by this model: send FP32 pixels "
                             "[N,784] or BYTES images [N]"
                           : "\"%.16s\" is not a tensor datatype of the protocol",
                     dt);
    }
    /* The batch dimension and the per-sample element count. */
    uint64_t n = dims[0], per = 0;
    if (fp32) {
        if (rank == 2 && dims[1] == NN_PIXELS) per = NN_PIXELS;
        if (rank == 3 && dims[1] == NN_SIDE && dims[2] == NN_SIDE) per = NN_PIXELS;
        if (rank == 4 && dims[1] == 1 && dims[2] == NN_SIDE && dims[3] == NN_SIDE)
            per = NN_PIXELS;
        if (!per)
            return failf(err, errlen, 400,
                         "FP32 input shape %s is not [N,784], [N,28,28] or [N,1,28,28]", st);
    } else {
        if (rank == 1 || (rank == 2 && dims[1] == 1)) per = 1;
        if (!per) return failf(err, errlen, 400, "BYTES input shape %s is not [N] or [N,1]", st);
    }
    if (n == 0) return failf(err, errlen, 400, "the batch is empty (shape %s)", st);
    if (n > (uint64_t)lim->max_batch)
        return failf(err, errlen, 400, "batch of %llu is over the limit of %d",
                     (unsigned long long)n, lim->max_batch);
    size_t want = (size_t)(n * per); /* <= max_batch * 784: no overflow */
    if (data && !cJSON_IsArray(data))
        return failf(err, errlen, 400, "input \"data\" must be an array of %zu values", want);

    req->n = (int)n;
    req->inputs = calloc((size_t)n * NN_PIXELS, sizeof(float));
    if (!req->inputs) return failf(err, errlen, 500, "out of memory");
    if (bsize) {
        size_t size = (size_t)bsize->valuedouble;
        if (size > bin->len - bin->used)
            return failf(err, errlen, 400,
                         "binary_data_size %zu is more than the %zu binary bytes left", size,
                         bin->len - bin->used);
        const uint8_t *b = bin->data + bin->used;
        bin->used += size;
        if (fp32) { /* little-endian IEEE floats, row-major */
            if (size != want * 4)
                return failf(err, errlen, 400,
                             "binary FP32 input of shape %s is %zu bytes, not %zu", st, size,
                             want * 4);
            for (size_t i = 0; i < want; i++) {
                uint32_t u = le32(b + 4 * i);
                float v;
                memcpy(&v, &u, sizeof v);
                if (!isfinite(v) || v < 0 || v > 255)
                    return failf(err, errlen, 400,
                                 "FP32 element %zu is %g, outside 0..255 (pixels are 0..1 or "
                                 "0..255)",
                                 i, (double)v);
                req->inputs[i] = v;
            }
            scale_samples(req->inputs, req->n);
            return 0;
        }
        /* BYTES: each element a 4-byte little-endian length, then the raw
         * image bytes (no base64 in binary form). */
        size_t at = 0;
        for (size_t s = 0; s < want; s++) {
            if (size - at < 4)
                return failf(err, errlen, 400, "binary BYTES element %zu is cut short", s);
            size_t elen = le32(b + at);
            at += 4;
            if (elen > size - at)
                return failf(err, errlen, 400, "binary BYTES element %zu is cut short", s);
            char why[200];
            int irc = v2_image_to_input(b + at, elen, &images, req->inputs + s * NN_PIXELS, why,
                                        sizeof why);
            if (irc) return failf(err, errlen, irc, "BYTES element %zu: %s", s, why);
            at += elen;
        }
        if (at != size)
            return failf(err, errlen, 400, "binary BYTES input has %zu bytes after its %zu elements",
                         size - at, want);
        return 0;
    }
    size_t count = 0;
    if (fp32) {
        fp32_ctx c = {req->inputs};
        rc = walk_data(data, 1, rank, want, &count, take_fp32, &c, err, errlen);
        if (rc) return rc;
        if (count != want)
            return failf(err, errlen, 400, "input has %s%zu values; shape %s needs %zu",
                         count > want ? "more than " : "", count > want ? want : count, st,
                         want);
        scale_samples(req->inputs, req->n);
        return 0;
    }
    const char **strings = calloc((size_t)n, sizeof *strings);
    if (!strings) return failf(err, errlen, 500, "out of memory");
    bytes_ctx c = {strings};
    rc = walk_data(data, 1, rank, want, &count, take_bytes, &c, err, errlen);
    if (!rc && count != want)
        rc = failf(err, errlen, 400, "input has %s%zu values; shape %s needs %zu",
                   count > want ? "more than " : "", count > want ? want : count, st, want);
    for (uint64_t s = 0; !rc && s < n; s++)
        rc = take_image_string(strings[s], &images, req->inputs + s * NN_PIXELS, (size_t)s, err,
                               errlen);
    free(strings);
    return rc;
}

int v2_parse_infer(const uint8_t *body, size_t len, const v2_limits *lim,
                   v2_infer_request *req, char *err, size_t errlen) {
    return v2_parse_infer_ext(body, len, -1, lim, req, err, errlen);
}

int v2_parse_infer_ext(const uint8_t *body, size_t len, long long header_len,
                       const v2_limits *lim, v2_infer_request *req, char *err, size_t errlen) {
    memset(req, 0, sizeof *req);
    if (errlen) err[0] = '\0';
    binary_part bin = {NULL, 0, 0};
    if (header_len >= 0) {
        if ((unsigned long long)header_len > len)
            return failf(err, errlen, 400,
                         "Inference-Header-Content-Length %lld is more than the %zu-byte body",
                         header_len, len);
        bin.data = body + header_len;
        bin.len = len - (size_t)header_len;
        len = (size_t)header_len;
    }
    if (len == 0) return failf(err, errlen, 400, "the body is empty; expected an inference request");
    /* Before cJSON builds a 64-byte node per value: a 4 MB "0,0,0,..."
     * would cost 128 MB, bounded here as /predict bounds it. */
    json_shape sh = json_scan(body, len, JSON_MAX_DEPTH);
    if (sh.depth > JSON_MAX_DEPTH)
        return failf(err, errlen, 400, "the JSON is nested deeper than %d levels", JSON_MAX_DEPTH);
    if (sh.bad_at != SIZE_MAX)
        return failf(err, errlen, 400, "the body is not valid JSON: no JSON number at byte %zu",
                     sh.bad_at);
    size_t most = json_values_max(lim->max_batch);
    if (sh.values > most)
        return failf(err, errlen, 400,
                     "the JSON holds more than %zu values; a batch of %d never needs more", most,
                     lim->max_batch);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0);
    if (!root) return failf(err, errlen, 400, "the body is not valid JSON");
    int rc = 0;
    /* Only whitespace may follow the object. */
    for (const char *p = end; p && p < (const char *)body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\0') {
            rc = failf(err, errlen, 400, "the body has bytes after the JSON object");
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        rc = failf(err, errlen, 400, "the body must be a JSON object");
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (id) {
        if (!cJSON_IsString(id)) {
            rc = failf(err, errlen, 400, "\"id\" must be a string");
            goto out;
        }
        if (strlen(id->valuestring) >= V2_MAX_ID) {
            rc = failf(err, errlen, 400, "\"id\" is longer than %d bytes", V2_MAX_ID - 1);
            goto out;
        }
        snprintf(req->id, sizeof req->id, "%s", id->valuestring);
        req->has_id = true;
    }
    if ((rc = check_parameters(cJSON_GetObjectItemCaseSensitive(root, "parameters"),
                               "request", err, errlen)))
        goto out;
    if ((rc = parse_outputs(cJSON_GetObjectItemCaseSensitive(root, "outputs"),
                            param_true(cJSON_GetObjectItemCaseSensitive(root, "parameters"),
                                       "binary_data_output"),
                            req, err, errlen)))
        goto out;
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(inputs)) {
        rc = failf(err, errlen, 400, "\"inputs\" must be an array of input tensors");
        goto out;
    }
    int n_inputs = cJSON_GetArraySize(inputs);
    if (n_inputs != 1) {
        rc = failf(err, errlen, 400,
                   "the model takes exactly one input (FP32 \"input\" or BYTES \"image\"), "
                   "not %d",
                   n_inputs);
        goto out;
    }
    rc = parse_input(inputs->child, lim, &bin, req, err, errlen);
    if (!rc && bin.used != bin.len)
        rc = failf(err, errlen, 400, "%zu binary bytes follow the JSON that no input claims",
                   bin.len - bin.used);
out:
    cJSON_Delete(root);
    return rc;
}

int v2_parse_header_length(const char *value, long long *out, char *err, size_t errlen) {
    *out = -1;
    if (!value) return 0;
    const char *p = value;
    while (*p == ' ' || *p == '\t') p++;
    long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 18) v = v * 10 + (*p - '0'); /* 10^18 bytes: no body is so long */
    while (*p == ' ' || *p == '\t') p++;
    if (digits == 0 || digits > 18 || *p)
        return failf(err, errlen, 400,
                     "Inference-Header-Content-Length must be the JSON's length in bytes");
    *out = v;
    return 0;
}

void v2_infer_request_free(v2_infer_request *req) {
    free(req->inputs);
    req->inputs = NULL;
    req->n = 0;
}

void v2_infer_request_default_id(v2_infer_request *req, const char *id) {
    if (req->has_id || !id || !id[0]) return;
    snprintf(req->id, sizeof req->id, "%s", id);
    req->has_id = true;
}

/* ====================================================================== */
/* Answers                                                                 */
/* ====================================================================== */

static int argmax10(const float *p) {
    int best = 0;
    for (int k = 1; k < NN_CLASSES; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

char *v2_render_infer(const v2_infer_request *req, const float *probs,
                      const char *model_name, const char *version, size_t *len) {
    size_t json_len;
    return v2_render_infer_ext(req, probs, model_name, version, len, &json_len);
}

char *v2_render_infer_ext(const v2_infer_request *req, const float *probs,
                          const char *model_name, const char *version, size_t *len,
                          size_t *json_len) {
    size_t n_probs = (size_t)req->n * NN_CLASSES;
    size_t blob = 0; /* bytes of the binary outputs */
    text_buffer t;
    tb_init(&t, 256 + (size_t)req->n * 160);
    tb_printf(&t, "{\"model_name\":");
    tb_json_string(&t, model_name);
    if (version) {
        tb_printf(&t, ",\"model_version\":");
        tb_json_string(&t, version);
    }
    if (req->has_id) {
        tb_printf(&t, ",\"id\":");
        tb_json_string(&t, req->id);
    }
    tb_printf(&t, ",\"outputs\":[");
    for (int o = 0; o < req->n_outputs; o++) {
        v2_output which = req->outputs[o];
        bool binary = req->binary[which];
        if (o) tb_printf(&t, ",");
        if (which == V2_OUT_PROBABILITIES)
            tb_printf(&t, "{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[%d,%d]",
                      req->n, NN_CLASSES);
        else
            tb_printf(&t, "{\"name\":\"digit\",\"datatype\":\"INT64\",\"shape\":[%d]", req->n);
        size_t bytes = which == V2_OUT_PROBABILITIES ? n_probs * 4 : (size_t)req->n * 8;
        if (binary) {
            tb_printf(&t, ",\"parameters\":{\"binary_data_size\":%zu}}", bytes);
            blob += bytes;
            continue;
        }
        tb_printf(&t, ",\"data\":[");
        if (which == V2_OUT_PROBABILITIES) {
            for (size_t i = 0; i < n_probs; i++) {
                if (i) tb_puts(&t, ",");
                tb_json_number(&t, (double)probs[i]);
            }
        } else {
            for (int s = 0; s < req->n; s++)
                tb_printf(&t, "%s%d", s ? "," : "", argmax10(probs + (size_t)s * NN_CLASSES));
        }
        tb_printf(&t, "]}");
    }
    tb_printf(&t, "]}");
    char *json = tb_take(&t, json_len);
    if (!json || blob == 0) {
        *len = json ? *json_len : 0;
        *json_len = 0; /* all JSON: no Inference-Header-Content-Length */
        return json;
    }
    /* The binary outputs follow the JSON in the order of "outputs":
     * FP32 and INT64 little-endian, row-major. */
    char *all = realloc(json, *json_len + blob);
    if (!all) {
        free(json);
        return NULL;
    }
    uint8_t *p = (uint8_t *)all + *json_len;
    for (int o = 0; o < req->n_outputs; o++) {
        v2_output which = req->outputs[o];
        if (!req->binary[which]) continue;
        if (which == V2_OUT_PROBABILITIES) {
            for (size_t i = 0; i < n_probs; i++, p += 4) {
                uint32_t u;
                memcpy(&u, &probs[i], sizeof u);
                put_le32(p, u);
            }
        } else {
            for (int s = 0; s < req->n; s++, p += 8) {
                put_le32(p, (uint32_t)argmax10(probs + (size_t)s * NN_CLASSES));
                put_le32(p + 4, 0);
            }
        }
    }
    *len = *json_len + blob;
    return all;
}

char *v2_render_error(const char *msg, size_t *len) {
    text_buffer t;
    tb_init(&t, 64 + strlen(msg));
    tb_printf(&t, "{\"error\":");
    tb_json_string(&t, msg);
    tb_printf(&t, "}");
    return tb_take(&t, len);
}

char *v2_render_server_metadata(const char *server_version, size_t *len) {
    text_buffer t;
    tb_init(&t, 128);
    tb_printf(&t, "{\"name\":\"digitd\",\"version\":");
    tb_json_string(&t, server_version);
    /* Triton's names for the extensions implemented here. */
    tb_printf(&t, ",\"extensions\":[\"model_repository\",\"binary_tensor_data\"]}");
    return tb_take(&t, len);
}

char *v2_render_live(size_t *len) {
    text_buffer t;
    tb_init(&t, 32);
    tb_printf(&t, "{\"live\":true}");
    return tb_take(&t, len);
}

char *v2_render_ready(bool ready, size_t *len) {
    text_buffer t;
    tb_init(&t, 32);
    tb_printf(&t, "{\"ready\":%s}", ready ? "true" : "false");
    return tb_take(&t, len);
}

char *v2_render_model_ready(const char *name, bool ready, size_t *len) {
    text_buffer t;
    tb_init(&t, 64);
    tb_printf(&t, "{\"name\":");
    tb_json_string(&t, name);
    tb_printf(&t, ",\"ready\":%s}", ready ? "true" : "false");
    return tb_take(&t, len);
}

char *v2_render_model_metadata(const char *name, const uint64_t *versions, int n_versions,
                               size_t *len) {
    text_buffer t;
    tb_init(&t, 512);
    tb_printf(&t, "{\"name\":");
    tb_json_string(&t, name);
    tb_printf(&t, ",\"versions\":[");
    for (int i = 0; i < n_versions; i++)
        tb_printf(&t, "%s\"%llu\"", i ? "," : "", (unsigned long long)versions[i]);
    /* The spec lists platform names for other frameworks only; it asks for
     * "<project>_<format>", so: digitd's own network in its own file. */
    tb_printf(&t,
              "],\"platform\":\"digitd_nn\","
              "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,%d]},"
              "{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[-1]}],"
              "\"outputs\":[{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[-1,%d]},"
              "{\"name\":\"digit\",\"datatype\":\"INT64\",\"shape\":[-1]}]}",
              NN_PIXELS, NN_CLASSES);
    return tb_take(&t, len);
}

char *v2_render_repo_index(const repo_index_entry *rows, int n, bool ready_only,
                           size_t *len) {
    text_buffer t;
    tb_init(&t, 64 + (size_t)n * 96);
    tb_printf(&t, "[");
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (ready_only && !rows[i].ready) continue;
        tb_printf(&t, "%s{\"name\":", first ? "" : ",");
        first = false;
        tb_json_string(&t, rows[i].name);
        if (rows[i].version) tb_printf(&t, ",\"version\":\"%llu\"", (unsigned long long)rows[i].version);
        tb_printf(&t, ",\"state\":\"%s\"", rows[i].ready ? "READY" : "UNAVAILABLE");
        if (!rows[i].ready) {
            tb_printf(&t, ",\"reason\":");
            tb_json_string(&t, rows[i].reason);
        }
        tb_printf(&t, "}");
    }
    tb_printf(&t, "]");
    return tb_take(&t, len);
}

int v2_parse_repo_index(const uint8_t *body, size_t len, bool *ready_only, char *err,
                        size_t errlen) {
    *ready_only = false;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i == len) return 0;
    cJSON *root = cJSON_ParseWithLength((const char *)body, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return failf(err, errlen, 400, "the body must be a JSON object, e.g. {\"ready\": true}");
    }
    const cJSON *ready = cJSON_GetObjectItemCaseSensitive(root, "ready");
    int rc = 0;
    if (ready && !cJSON_IsBool(ready))
        rc = failf(err, errlen, 400, "\"ready\" must be true or false");
    else if (ready)
        *ready_only = cJSON_IsTrue(ready);
    cJSON_Delete(root);
    return rc;
}

/* ====================================================================== */
/* The adapter to the image path                                           */
/* ====================================================================== */

int v2_image_to_input(const uint8_t *bytes, size_t len, image_limits *images, float *out,
                      char *err, size_t errlen) {
    nn_error e;
    image_status st = image_to_input(bytes, len, images, out, &e);
    if (st == IMAGE_OK) return 0;
    return failf(err, errlen, image_status_http(st), "%s",
                 st == IMAGE_NO_MEMORY ? "out of memory" : e.msg);
}

/* ====================================================================== */
/* One request, end to end                                                 */
/* ====================================================================== */

static void answer(v2_answer *out, int status, char *body, size_t len) {
    out->status = status;
    out->body = body;
    out->len = body ? len : 0;
    /* NULL body from a renderer means memory ran out */
    if (!body && status != 200) out->status = 500;
}

static void answer_error(v2_answer *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void answer_error(v2_answer *out, int status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len;
    char *body = v2_render_error(msg, &len);
    out->status = body ? status : 500;
    out->body = body;
    out->len = body ? len : 0;
    if (!out->log_detail[0]) snprintf(out->log_detail, sizeof out->log_detail, "%s", msg);
}

/* The model a route names: 0 with ref, or an error answer. */
static int resolve(const v2_context *ctx, const v2_route *route, model_ref *ref,
                   v2_answer *out, bool *unavailable) {
    *unavailable = false;
    repo_status st = model_repo_acquire(ctx->repo, route->model, route->version, ref);
    if (st == REPO_OK) return 0;
    if (st == REPO_UNAVAILABLE) {
        *unavailable = true;
        answer_error(out, 503, "model %s is not loaded", route->model);
    } else if (route->version[0]) {
        answer_error(out, 404, "unknown model %s version %s", route->model, route->version);
    } else {
        answer_error(out, 404, "unknown model %s", route->model);
    }
    return -1;
}

static void handle_repository(const v2_context *ctx, const v2_route *route,
                              const uint8_t *body, size_t len, v2_answer *out) {
    if (!ctx->admin_enabled) {
        answer_error(out, 403, "repository control is disabled: start the server with an admin token");
        return;
    }
    if (!ctx->admin_allowed) {
        answer_error(out, 401, "repository control needs \"Authorization: Bearer <admin token>\"");
        return;
    }
    char err[256];
    if (route->kind == V2_REPO_INDEX) {
        bool ready_only;
        if (v2_parse_repo_index(body, len, &ready_only, err, sizeof err)) {
            answer_error(out, 400, "%s", err);
            return;
        }
        repo_index_entry *rows;
        int n = model_repo_index(ctx->repo, &rows);
        if (n < 0) {
            answer_error(out, 500, "out of memory");
            return;
        }
        size_t blen;
        char *b = v2_render_repo_index(rows, n, ready_only, &blen);
        free(rows);
        answer(out, 200, b, blen);
        if (!b) answer_error(out, 500, "out of memory");
        return;
    }
    if (route->kind == V2_REPO_UNLOAD) {
        repo_status st = model_repo_unload(ctx->repo, route->model);
        if (st == REPO_OK) answer(out, 200, NULL, 0);
        else answer_error(out, 404, "unknown model %s", route->model);
        return;
    }
    nn_error lerr;
    lerr.msg[0] = '\0';
    repo_status st = model_repo_load(ctx->repo, route->model, &lerr);
    if (st == REPO_OK) {
        answer(out, 200, NULL, 0);
    } else if (st == REPO_FAILED) {
        snprintf(out->log_detail, sizeof out->log_detail, "%s", lerr.msg);
        /* the detail names files: it goes to the log, not to the client */
        answer_error(out, 400, "model %s could not be loaded; the old versions keep serving "
                               "(the server log says why)",
                     route->model);
    } else {
        answer_error(out, 404, "no model %s in the repository", route->model);
    }
}

v2_next v2_handle(const v2_context *ctx, int match_status, const v2_route *route,
                  const uint8_t *body, size_t len, v2_job *job, v2_answer *out) {
    memset(out, 0, sizeof *out);
    memset(job, 0, sizeof *job);
    if (match_status == 405) {
        out->allow = route->allow;
        answer_error(out, 405, "use %s for this path", route->allow);
        return V2_ANSWERED;
    }
    if (match_status != 200 || route->kind == V2_NONE) {
        answer_error(out, 404, "no such v2 route");
        return V2_ANSWERED;
    }
    size_t blen = 0;
    char *b;
    model_ref ref;
    bool unavailable;
    switch (route->kind) {
    case V2_SERVER_METADATA:
        b = v2_render_server_metadata(ctx->server_version, &blen);
        answer(out, 200, b, blen);
        break;
    case V2_HEALTH_LIVE:
        b = v2_render_live(&blen);
        answer(out, 200, b, blen);
        break;
    case V2_HEALTH_READY: {
        bool ready = !ctx->draining && model_repo_ready(ctx->repo);
        b = v2_render_ready(ready, &blen);
        answer(out, ready ? 200 : 503, b, blen);
        break;
    }
    case V2_MODEL_METADATA: {
        if (resolve(ctx, route, &ref, out, &unavailable)) break;
        uint64_t versions[MODEL_REPO_MAX_VERSIONS];
        int n = model_repo_versions(ctx->repo, ref.name, versions, MODEL_REPO_MAX_VERSIONS);
        b = v2_render_model_metadata(ref.name, versions, n > 0 ? n : 0, &blen);
        served_model_release(ref.model);
        answer(out, 200, b, blen);
        break;
    }
    case V2_MODEL_READY:
        if (resolve(ctx, route, &ref, out, &unavailable)) {
            if (unavailable) { /* the protocol's body, with the 503 */
                free(out->body);
                b = v2_render_model_ready(route->model, false, &blen);
                answer(out, 503, b, blen);
            }
            break;
        }
        served_model_release(ref.model);
        b = v2_render_model_ready(ref.name, true, &blen);
        answer(out, 200, b, blen);
        break;
    case V2_MODEL_INFER: {
        char err[256];
        long long hl;
        int st = v2_parse_header_length(ctx->inference_header, &hl, err, sizeof err);
        if (!st)
            st = v2_parse_infer_ext(body, len, hl, &ctx->limits, &job->req, err, sizeof err);
        if (st) {
            v2_infer_request_free(&job->req);
            answer_error(out, st, "%s", err);
            break;
        }
        if (resolve(ctx, route, &job->ref, out, &unavailable)) {
            v2_infer_request_free(&job->req);
            break;
        }
        v2_infer_request_default_id(&job->req, ctx->request_id);
        snprintf(job->version, sizeof job->version, "%llu",
                 (unsigned long long)job->ref.version);
        return V2_RUN_MODEL;
    }
    case V2_REPO_INDEX:
    case V2_REPO_LOAD:
    case V2_REPO_UNLOAD:
        handle_repository(ctx, route, body, len, out);
        break;
    case V2_NONE:
        break;
    }
    return V2_ANSWERED;
}

void v2_finish(const v2_job *job, const float *probs, v2_answer *out) {
    memset(out, 0, sizeof *out);
    if (!probs) {
        answer_error(out, 500, "the model could not run");
        return;
    }
    size_t len, json_len;
    char *b = v2_render_infer_ext(&job->req, probs, job->ref.name, job->version, &len,
                                  &json_len);
    if (!b) {
        answer_error(out, 500, "out of memory");
        return;
    }
    answer(out, 200, b, len);
    out->inference_header_length = json_len;
}

void v2_job_release(v2_job *job) {
    v2_infer_request_free(&job->req);
    served_model_release(job->ref.model);
    job->ref.model = NULL;
}
