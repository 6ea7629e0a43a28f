/* predict_request.c: see predict_request.h.
 *
 * Statuses chosen for what can go wrong (docs/http-api.md lists them):
 *   400  the bytes cannot be parsed in their declared form: malformed JSON,
 *        JSON nested deeper than JSON_MAX_DEPTH, invalid base64, a broken
 *        multipart body, corrupt or truncated image data;
 *   415  a Content-Type we do not take, or image bytes that are none of
 *        PNG, JPEG, BMP, GIF;
 *   422  parsed but unusable: wrong number of pixels, NaN/Infinity,
 *        strings or nulls among them, values outside 0..255, a missing
 *        field, an empty or too large batch, an image over the side limit,
 *        a blank image;
 *   500  the model failed (out of memory). */
#include "predict_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "image_decode.h"
#include "json_writer.h"
#include "multipart.h"
#include "text_buffer.h"

/* A batch of inputs is depth 4 ([ { "pixels": [ [ rows ); anything much
 * deeper is refused before cJSON's recursive parser sees it. */
#define JSON_MAX_DEPTH 16

/* The decoded inputs of one request and where errors go. */
typedef struct {
    const predict_limits *lim;
    predict_outcome *out;
    float *inputs; /* (n, 784) */
    int n;
    bool batch;     /* answer {"predictions": [...]} rather than one object */
    char where[32]; /* "" or "input 3: " for messages about a batch item */
} request;

static int fail(request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(request *r, int status, const char *fmt, ...) {
    char msg[sizeof r->out->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->out->status = status;
    /* "input 3: " + message, cut to fit */
    size_t w = strlen(r->where), cap = sizeof r->out->message;
    memcpy(r->out->message, r->where, w);
    size_t n = strlen(msg);
    if (n > cap - 1 - w) n = cap - 1 - w;
    memcpy(r->out->message + w, msg, n);
    r->out->message[w + n] = '\0';
    return -1;
}

predict_body_kind predict_body_kind_of(const char *content_type) {
    if (!content_type) return BODY_UNSUPPORTED;
    size_t n = strcspn(content_type, ";");
    while (n > 0 && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
        n--;
    static const struct {
        const char *type;
        predict_body_kind kind;
    } known[] = {
        {"application/json", BODY_JSON},   {"image/png", BODY_IMAGE},
        {"image/jpeg", BODY_IMAGE},        {"image/jpg", BODY_IMAGE},
        {"image/pjpeg", BODY_IMAGE},       {"image/bmp", BODY_IMAGE},
        {"image/x-bmp", BODY_IMAGE},       {"image/x-ms-bmp", BODY_IMAGE},
        {"image/gif", BODY_IMAGE},         {"multipart/form-data", BODY_MULTIPART},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].type) == n && strncasecmp(content_type, known[i].type, n) == 0)
            return known[i].kind;
    return BODY_UNSUPPORTED;
}

/* ---- images -------------------------------------------------------- */

/* The formats compiled into the decoder, by their first bytes. */
static int looks_like_supported_image(const uint8_t *b, size_t len) {
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return 1;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return 1;
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return 1;
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return 1;
    return 0;
}

/* Image bytes -> one normalised 28x28 input appended to r. */
static int add_image(request *r, const uint8_t *bytes, size_t len) {
    if (len == 0) return fail(r, 422, "the image is empty");
    if (!looks_like_supported_image(bytes, len))
        return fail(r, 415, "the image is not PNG, JPEG, BMP or GIF");
    int w, h;
    if (image_probe(bytes, len, &w, &h) != 0)
        return fail(r, 400, "the image header is damaged");
    if (w > r->lim->max_width || h > r->lim->max_height)
        return fail(r, 422, "the image is %dx%d pixels; the limit is %dx%d", w, h,
                    r->lim->max_width, r->lim->max_height);
    image_limits il = {r->lim->max_width, r->lim->max_height};
    float *gray;
    nn_error err;
    if (image_decode(bytes, len, &il, &gray, &w, &h, &err) != 0)
        return fail(r, 400, "%s", err.msg);
    int rc = nn_normalize_digit(gray, w, h, r->inputs + (size_t)r->n * NN_PIXELS, &err);
    free(gray);
    if (rc != 0) return fail(r, 422, "the image cannot be used: %s", err.msg);
    r->n++;
    return 0;
}

/* "<base64>" or "data:<type>;base64,<base64>" -> add_image. */
static int add_encoded_image(request *r, const char *s) {
    size_t len = strlen(s);
    if (len >= 5 && strncasecmp(s, "data:", 5) == 0) {
        const char *comma = strchr(s, ',');
        if (!comma) return fail(r, 400, "the data: URL has no ',' before its data");
        if (comma - s < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
            return fail(r, 422, "data: URLs must be base64-encoded (\";base64,\")");
        s = comma + 1;
        len = strlen(s);
    }
    uint8_t *bytes;
    size_t n;
    if (base64_decode(s, len, &bytes, &n) != 0)
        return fail(r, 400, "\"image\" is not valid base64");
    int rc = add_image(r, bytes, n);
    free(bytes);
    return rc;
}

/* ---- JSON ---------------------------------------------------------- */

/* Deepest nesting of arrays and objects in the text (strings skipped),
 * stopping early once over `limit`. */
static int json_depth(const uint8_t *b, size_t len, int limit) {
    int depth = 0, deepest = 0;
    int in_string = 0;
    for (size_t i = 0; i < len && deepest <= limit; i++) {
        uint8_t c = b[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

/* Stores one pixel value; checks type, finiteness and range. */
static int take_pixel(request *r, const cJSON *item, int index, float *dst,
                      double *max) {
    if (!cJSON_IsNumber(item))
        return fail(r, 422, "pixel %d is not a number (pixels are 784 numbers 0..1 or 0..255)",
                    index);
    double v = item->valuedouble;
    if (!isfinite(v)) return fail(r, 422, "pixel %d is not a finite number", index);
    if (v < 0 || v > 255)
        return fail(r, 422, "pixel %d is %g, outside 0..255", index, v);
    *dst = (float)v;
    if (v > *max) *max = v;
    return 0;
}

/* {"pixels": [...]}: 784 numbers, or 28 arrays of 28. */
static int add_pixels(request *r, const cJSON *pixels) {
    if (!cJSON_IsArray(pixels))
        return fail(r, 422, "\"pixels\" must be an array of 784 numbers");
    float *dst = r->inputs + (size_t)r->n * NN_PIXELS;
    double max = 0;
    int count = cJSON_GetArraySize(pixels);
    const cJSON *first = pixels->child;
    if (count == NN_SIDE && cJSON_IsArray(first)) {
        int row = 0;
        for (const cJSON *line = first; line; line = line->next, row++) {
            if (!cJSON_IsArray(line) || cJSON_GetArraySize(line) != NN_SIDE)
                return fail(r, 422, "\"pixels\" row %d must be an array of 28 numbers", row);
            int col = 0;
            for (const cJSON *it = line->child; it; it = it->next, col++)
                if (take_pixel(r, it, row * NN_SIDE + col, dst + row * NN_SIDE + col, &max))
                    return -1;
        }
    } else {
        if (count != NN_PIXELS)
            return fail(r, 422, "\"pixels\" has %d values; a 28x28 input needs 784",
                        count);
        int i = 0;
        for (const cJSON *it = first; it; it = it->next, i++)
            if (take_pixel(r, it, i, dst + i, &max)) return -1;
    }
    if (max == 0)
        return fail(r, 422, "the input is blank: every pixel is 0 (no ink)");
    if (max > 1)
        for (int i = 0; i < NN_PIXELS; i++) dst[i] /= 255.0f;
    r->n++;
    return 0;
}

/* One input object: {"pixels": ...} or {"image": "..."}. */
static int add_json_input(request *r, const cJSON *obj) {
    if (!cJSON_IsObject(obj))
        return fail(r, 422, "an input must be an object with \"pixels\" or \"image\"");
    const cJSON *pixels = cJSON_GetObjectItemCaseSensitive(obj, "pixels");
    const cJSON *image = cJSON_GetObjectItemCaseSensitive(obj, "image");
    if (pixels && image)
        return fail(r, 422, "give either \"pixels\" or \"image\", not both");
    if (pixels) return add_pixels(r, pixels);
    if (image) {
        if (!cJSON_IsString(image))
            return fail(r, 422, "\"image\" must be a base64 string or a data: URL");
        return add_encoded_image(r, image->valuestring);
    }
    return fail(r, 422, "the object has neither \"pixels\" nor \"image\"");
}

/* JSON's grammar has no NaN or Infinity, but Python's json.dumps writes
 * them: name them in the error instead of saying "malformed". */
static int is_nonfinite_token(const char *p, const char *end) {
    static const char *const tokens[] = {"NaN", "-NaN", "Infinity", "-Infinity",
                                         "+Infinity", "nan", "inf", "-inf"};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        size_t n = strlen(tokens[i]);
        if ((size_t)(end - p) >= n && memcmp(p, tokens[i], n) == 0) return 1;
    }
    return 0;
}

/* The most common body by far is {"pixels": [784 numbers]}. Building a
 * cJSON tree for it costs 785 allocations, which dominated the time of a
 * whole request; this reads exactly that shape straight into dst. Returns
 * 1 when the body is that shape with 784 acceptable values (dst filled,
 * scaled to 0..1), 0 for anything else, which then goes through cJSON and
 * gets its precise error message there. */
static int fast_pixels(const char *s, size_t len, float *dst) {
    static const char key[] = "\"pixels\"";
    size_t i = 0;
#define SKIP_WS() while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++
    SKIP_WS();
    if (i >= len || s[i++] != '{') return 0;
    SKIP_WS();
    if (len - i < sizeof key - 1 || memcmp(s + i, key, sizeof key - 1) != 0) return 0;
    i += sizeof key - 1;
    SKIP_WS();
    if (i >= len || s[i++] != ':') return 0;
    SKIP_WS();
    if (i >= len || s[i++] != '[') return 0;
    double max = 0;
    for (int n = 0; n < NN_PIXELS; n++) {
        SKIP_WS();
        char num[32];
        size_t k = 0;
        while (i < len && k < sizeof num - 1 && strchr("0123456789+-.eE", s[i]) && s[i])
            num[k++] = s[i++];
        num[k] = '\0';
        if (k == 0 || k == sizeof num - 1) return 0;
        char *end;
        double v = strtod(num, &end);
        if (*end != '\0' || !(v >= 0 && v <= 255)) return 0; /* NaN fails too */
        dst[n] = (float)v;
        if (v > max) max = v;
        SKIP_WS();
        if (i >= len) return 0;
        char sep = s[i++];
        if (sep != (n == NN_PIXELS - 1 ? ']' : ',')) return 0;
    }
    SKIP_WS();
    if (i >= len || s[i++] != '}') return 0;
    SKIP_WS();
#undef SKIP_WS
    if (i != len) return 0;
    if (max == 0) return 0; /* blank: add_pixels says so */
    if (max > 1)
        for (int n = 0; n < NN_PIXELS; n++) dst[n] /= 255.0f;
    return 1;
}

static int parse_json(request *r, const uint8_t *body, size_t len) {
    if (len == 0) return fail(r, 400, "the body is empty; expected JSON");
    r->inputs = malloc(NN_PIXELS * sizeof(float));
    if (!r->inputs) return fail(r, 500, "out of memory");
    if (fast_pixels((const char *)body, len, r->inputs)) {
        r->n = 1;
        return 0;
    }
    free(r->inputs);
    r->inputs = NULL;
    if (json_depth(body, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH)
        return fail(r, 400, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    const char *end = NULL;
    /* cJSON's own trailing-garbage check wants a NUL inside the length, so
     * it is done here: only whitespace may follow the value. */
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0);
    if (root) {
        const char *text = (const char *)body;
        size_t at = (size_t)(end - text);
        while (at < len && strchr(" \t\r\n", text[at]) && text[at]) at++;
        if (at < len) {
            cJSON_Delete(root);
            return fail(r, 400, "malformed JSON: unexpected data after the value at byte %zu",
                        at);
        }
    }
    if (!root) {
        const char *text = (const char *)body;
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        /* the parser stops at the token it could not read, or at the sign
         * before it */
        if (is_nonfinite_token(text + at, text + len) ||
            (at + 1 < len && is_nonfinite_token(text + at + 1, text + len)))
            return fail(r, 422, "NaN and Infinity are not allowed (JSON numbers must be finite)");
        return fail(r, 400, "malformed JSON near byte %zu", at);
    }

    int rc = 0;
    const cJSON *batch = NULL;
    if (cJSON_IsArray(root)) batch = root;
    else if (cJSON_IsObject(root)) batch = cJSON_GetObjectItemCaseSensitive(root, "instances");

    if (batch) {
        r->batch = true;
        if (!cJSON_IsArray(batch)) {
            rc = fail(r, 422, "\"instances\" must be an array of inputs");
            goto done;
        }
        int count = cJSON_GetArraySize(batch);
        if (count == 0) {
            rc = fail(r, 422, "the batch is empty");
            goto done;
        }
        if (count > r->lim->max_batch) {
            rc = fail(r, 422, "the batch has %d inputs; the limit is %d", count,
                      r->lim->max_batch);
            goto done;
        }
        r->inputs = malloc((size_t)count * NN_PIXELS * sizeof(float));
        if (!r->inputs) {
            rc = fail(r, 500, "out of memory");
            goto done;
        }
        int i = 0;
        for (const cJSON *it = batch->child; it; it = it->next, i++) {
            snprintf(r->where, sizeof r->where, "input %d: ", i);
            if ((rc = add_json_input(r, it)) != 0) goto done;
        }
        r->where[0] = '\0';
    } else {
        r->inputs = malloc(NN_PIXELS * sizeof(float));
        if (!r->inputs) {
            rc = fail(r, 500, "out of memory");
            goto done;
        }
        rc = add_json_input(r, root);
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- the answer ---------------------------------------------------- */

static int argmax10(const float *p) {
    int best = 0;
    for (int k = 1; k < NN_CLASSES; k++)
        if (p[k] > p[best]) best = k;
    return best;
}

/* The fields of one prediction, without braces. */
static void render_one(text_buffer *t, const float *probs, const float *input) {
    int best = argmax10(probs);
    /* Numbers as json_writer writes them, so the CLI and the server agree. */
    tb_printf(t, "\"digit\":%d,\"confidence\":", best);
    tb_json_number(t, (double)probs[best]);
    tb_printf(t, ",\"probabilities\":[");
    for (int k = 0; k < NN_CLASSES; k++) {
        if (k) tb_printf(t, ",");
        tb_json_number(t, (double)probs[k]);
    }
    tb_printf(t, "]");
    if (input) {
        tb_printf(t, ",\"input\":[");
        for (int i = 0; i < NN_PIXELS; i++)
            tb_printf(t, "%s%.4g", i ? "," : "", (double)input[i]);
        tb_printf(t, "]");
    }
}

void predict_handle(const char *content_type, const uint8_t *body, size_t len,
                    bool include_input, const predict_limits *lim,
                    const served_model *model, predict_outcome *out) {
    memset(out, 0, sizeof *out);
    request r = {.lim = lim, .out = out};

    switch (predict_body_kind_of(content_type)) {
    case BODY_JSON:
        if (parse_json(&r, body, len) != 0) goto done;
        break;
    case BODY_IMAGE:
        r.inputs = malloc(NN_PIXELS * sizeof(float));
        if (!r.inputs) {
            fail(&r, 500, "out of memory");
            goto done;
        }
        if (add_image(&r, body, len) != 0) goto done;
        break;
    case BODY_MULTIPART: {
        const uint8_t *part;
        size_t part_len;
        char msg[200];
        multipart_result mr = multipart_find_field(content_type, body, len, "image",
                                                   &part, &part_len, msg, sizeof msg);
        if (mr == MULTIPART_MALFORMED) {
            fail(&r, 400, "%s", msg);
            goto done;
        }
        if (mr == MULTIPART_MISSING) {
            fail(&r, 422, "the multipart body has no file field named \"image\"");
            goto done;
        }
        r.inputs = malloc(NN_PIXELS * sizeof(float));
        if (!r.inputs) {
            fail(&r, 500, "out of memory");
            goto done;
        }
        if (add_image(&r, part, part_len) != 0) goto done;
        break;
    }
    default:
        fail(&r, 415,
             "unsupported Content-Type; send application/json, image/png, "
             "image/jpeg, image/bmp, image/gif or multipart/form-data");
        goto done;
    }

    float *probs = malloc((size_t)r.n * NN_CLASSES * sizeof *probs);
    nn_error err;
    if (!probs || nn_predict(model->net, r.inputs, r.n, probs, 1, &err) != 0) {
        free(probs);
        fail(&r, 500, "the model could not run");
        goto done;
    }
    text_buffer t;
    tb_init(&t, 256 + (size_t)r.n * (200 + (include_input ? 784 * 7 : 0)));
    tb_printf(&t, r.batch ? "{\"predictions\":[" : "{");
    for (int i = 0; i < r.n; i++) {
        const float *p = probs + (size_t)i * NN_CLASSES;
        out->per_digit[argmax10(p)]++;
        if (r.batch) tb_printf(&t, i ? ",{" : "{");
        render_one(&t, p, include_input ? r.inputs + (size_t)i * NN_PIXELS : NULL);
        if (r.batch) tb_printf(&t, "}");
    }
    tb_printf(&t, r.batch ? "],\"model\":" : ",\"model\":");
    tb_json_string(&t, model->id);
    tb_printf(&t, "}\n");
    free(probs);
    out->body = tb_take(&t, &out->body_len);
    if (!out->body) {
        fail(&r, 500, "out of memory");
        goto done;
    }
    out->n = r.n;
    out->status = 200;
done:
    free(r.inputs);
}
