/* predict_request.c: see predict_request.h.
 *
 * Statuses chosen for what can go wrong (docs/http-api.md lists them):
 *   400  the bytes cannot be parsed in their declared form: malformed JSON
 *        (numbers included: `+1`, `.5`, `007`, `1.`, `-`, hex are not
 *        JSON), JSON nested deeper than JSON_MAX_DEPTH, invalid base64, a
 *        broken multipart body, corrupt or truncated image data;
 *   415  a Content-Type we do not take, or image bytes that are none of
 *        PNG, JPEG, BMP, GIF;
 *   422  parsed but unusable: wrong number of pixels, NaN/Infinity,
 *        strings or nulls among them, values outside 0..255, a missing
 *        field, an empty or too large batch (or a JSON body with more
 *        values than max_batch inputs can hold), an image over the side
 *        limit, images over the request's decoded-pixel budget, a blank
 *        image;
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
#include "image_decode.h" /* server/input/ */
#include "json_number.h"
#include "json_shape.h"
#include "json_writer.h"
#include "multipart.h"
#include "text_buffer.h"

/* One request being parsed: where inputs and errors go. */
typedef struct {
    const predict_limits *lim;
    image_limits images; /* sides, and the pixel budget all images share */
    predict_outcome *out;
    predict_inputs *in; /* in->inputs has room for every input expected */
    char where[32];     /* "" or "input 3: " for messages about a batch item */
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

/* Image bytes -> one normalised 28x28 input appended to r->in. */
static int add_image(request *r, const uint8_t *bytes, size_t len) {
    nn_error err;
    float *dst = r->in->inputs + (size_t)r->in->n * NN_PIXELS;
    image_status st = image_to_input(bytes, len, &r->images, dst, &err);
    if (st == IMAGE_OK) {
        r->in->n++;
        return 0;
    }
    return fail(r, image_status_http(st), "%s", st == IMAGE_NO_MEMORY ? "out of memory" : err.msg);
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

/* The one pixel-range check, for both JSON paths: a finite number in
 * 0..255 (false for NaN and the infinities). */
static bool pixel_in_range(double v) { return v >= 0 && v <= 255; }

/* A complete input dst (784 values in 0..255, largest max): scaled to
 * 0..1 when any value exceeds 1. Returns -1 when it is blank (all 0). */
static int finish_pixels(float *dst, double max) {
    if (max == 0) return -1;
    if (max > 1)
        for (int i = 0; i < NN_PIXELS; i++) dst[i] /= 255.0f;
    return 0;
}

/* Stores one pixel value; checks type, finiteness and range. */
static int take_pixel(request *r, const cJSON *item, int index, float *dst,
                      double *max) {
    if (!cJSON_IsNumber(item))
        return fail(r, 422, "pixel %d is not a number (pixels are 784 numbers 0..1 or 0..255)",
                    index);
    double v = item->valuedouble;
    if (!pixel_in_range(v)) {
        if (!isfinite(v)) return fail(r, 422, "pixel %d is not a finite number", index);
        return fail(r, 422, "pixel %d is %g, outside 0..255", index, v);
    }
    *dst = (float)v;
    if (v > *max) *max = v;
    return 0;
}

/* {"pixels": [...]}: 784 numbers, or 28 arrays of 28. */
static int add_pixels(request *r, const cJSON *pixels) {
    if (!cJSON_IsArray(pixels))
        return fail(r, 422, "\"pixels\" must be an array of 784 numbers");
    float *dst = r->in->inputs + (size_t)r->in->n * NN_PIXELS;
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
    if (finish_pixels(dst, max) != 0)
        return fail(r, 422, "the input is blank: every pixel is 0 (no ink)");
    r->in->n++;
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

/* The commonest pixel, an integer of 1 to 3 digits ("0", "255") ended
 * by anything that cannot continue a number: its length, *v its value;
 * 0 for anything else, which json_number_read then reads (its grammar,
 * its leading-zero rule). A third of a JSON request's time with the MLP
 * once went to reading its 784 numbers. */
static size_t small_int(const char *s, size_t n, int *v) {
#define DIGIT(k) ((k) < n && s[k] >= '0' && s[k] <= '9')
    if (!DIGIT(0) || (s[0] == '0' && DIGIT(1))) return 0;
    size_t k = 1;
    int x = s[0] - '0';
    while (k < 3 && DIGIT(k)) x = x * 10 + (s[k++] - '0');
    if (DIGIT(k) || (k < n && (s[k] == '.' || s[k] == 'e' || s[k] == 'E')))
        return 0;
#undef DIGIT
    *v = x;
    return k;
}

/* The most common body by far is {"pixels": [784 numbers]}. Building a
 * cJSON tree for it costs 785 allocations, which dominated the time of a
 * whole request; this reads exactly that shape straight into dst. Returns
 * 1 when the body is that shape with 784 acceptable values (dst filled,
 * scaled to 0..1), 0 for anything else, which then goes through json_scan
 * and cJSON and gets its precise error message there. */
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
    int int_max = 0;
    for (int n = 0; n < NN_PIXELS; n++) {
        SKIP_WS();
        /* the commonest pixel of all (four in five of MNIST's): a
         * background 0 and its comma */
        if (i + 1 < len && s[i] == '0' && s[i + 1] == ',' && n < NN_PIXELS - 1) {
            dst[n] = 0;
            i += 2;
            continue;
        }
        /* Integers stay in registers: a double that json_number_read may
         * write lives in memory, and its store and reload were the loop's
         * hottest instructions. With the line above, 1,000 MNIST bodies
         * read in 2.6-2.8 us each instead of 3.8 (test_predict_json checks
         * that this reader and cJSON's agree). */
        int iv;
        size_t k = small_int(s + i, len - i, &iv);
        if (k != 0) {
            if (iv > 255) return 0;
            dst[n] = (float)iv;
            int_max = iv > int_max ? iv : int_max;
        } else {
            double v;
            k = json_number_read(s + i, len - i, &v);
            if (k == 0 || k >= 32) return 0; /* longer: the general path */
            if (!pixel_in_range(v)) return 0;
            dst[n] = (float)v;
            if (v > max) max = v;
        }
        i += k;
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
    if (int_max > max) max = int_max;
    return finish_pixels(dst, max) == 0; /* blank: add_pixels says so */
}

/* Room for count inputs in r->in (zeroed). */
static int reserve_inputs(request *r, size_t count) {
    r->in->inputs = calloc(count, NN_PIXELS * sizeof(float));
    if (!r->in->inputs) return fail(r, 500, "out of memory");
    return 0;
}

static int parse_json(request *r, const uint8_t *body, size_t len) {
    if (len == 0) return fail(r, 400, "the body is empty; expected JSON");
    if (reserve_inputs(r, 1) != 0) return -1;
    if (fast_pixels((const char *)body, len, r->in->inputs)) {
        r->in->n = 1;
        return 0;
    }
    predict_inputs_free(r->in);

    const char *text = (const char *)body;
    json_shape sh = json_scan(body, len, JSON_MAX_DEPTH);
    if (sh.depth > JSON_MAX_DEPTH)
        return fail(r, 400, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    if (sh.bad_at != SIZE_MAX) {
        if (is_nonfinite_token(text + sh.bad_at, text + len))
            return fail(r, 422, "NaN and Infinity are not allowed (JSON numbers must be finite)");
        return fail(r, 400, "malformed JSON: not a JSON number at byte %zu", sh.bad_at);
    }
    /* Counted before any tree is built: a flat [1,1,...] of megabytes is
     * refused here, not after a million cJSON nodes. */
    if (sh.root_items > (size_t)r->lim->max_batch)
        return fail(r, 422, "the batch has %zu inputs; the limit is %d", sh.root_items,
                    r->lim->max_batch);
    size_t most = json_values_max(r->lim->max_batch);
    if (sh.values > most)
        return fail(r, 422,
                    "the JSON body holds more than %zu values; %d inputs never need more",
                    most, r->lim->max_batch);

    const char *end = NULL;
    /* cJSON's own trailing-garbage check wants a NUL inside the length, so
     * it is done here: only whitespace may follow the value. */
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root) {
        size_t at = (size_t)(end - text);
        while (at < len && strchr(" \t\r\n", text[at]) && text[at]) at++;
        if (at < len) {
            cJSON_Delete(root);
            return fail(r, 400, "malformed JSON: unexpected data after the value at byte %zu",
                        at);
        }
    }
    if (!root) {
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
        r->in->batch = true;
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
        if ((rc = reserve_inputs(r, (size_t)count)) != 0) goto done;
        int i = 0;
        for (const cJSON *it = batch->child; it; it = it->next, i++) {
            snprintf(r->where, sizeof r->where, "input %d: ", i);
            if ((rc = add_json_input(r, it)) != 0) goto done;
        }
        r->where[0] = '\0';
    } else {
        if ((rc = reserve_inputs(r, 1)) != 0) goto done;
        rc = add_json_input(r, root);
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- the request --------------------------------------------------- */

int predict_parse(predict_body_kind kind, const char *content_type,
                  const uint8_t *body, size_t len, const predict_limits *lim,
                  predict_inputs *in, predict_outcome *out) {
    memset(out, 0, sizeof *out);
    memset(in, 0, sizeof *in);
    request r = {
        .lim = lim,
        .images = {lim->max_width, lim->max_height, lim->max_pixels},
        .out = out,
        .in = in,
    };
    int rc;
    switch (kind) {
    case BODY_JSON: rc = parse_json(&r, body, len); break;
    case BODY_IMAGE:
        rc = reserve_inputs(&r, 1);
        if (rc == 0) rc = add_image(&r, body, len);
        break;
    case BODY_MULTIPART: {
        const uint8_t *part;
        size_t part_len;
        char msg[200];
        multipart_result mr = multipart_find_field(content_type, body, len, "image",
                                                   &part, &part_len, msg, sizeof msg);
        if (mr == MULTIPART_MALFORMED) {
            rc = fail(&r, 400, "%s", msg);
        } else if (mr == MULTIPART_MISSING) {
            rc = fail(&r, 422, "the multipart body has no file field named \"image\"");
        } else {
            rc = reserve_inputs(&r, 1);
            if (rc == 0) rc = add_image(&r, part, part_len);
        }
        break;
    }
    default:
        rc = fail(&r, 415,
                  "unsupported Content-Type; send application/json, image/png, "
                  "image/jpeg, image/bmp, image/gif or multipart/form-data");
        break;
    }
    if (rc != 0) {
        predict_inputs_free(in);
        return -1;
    }
    return 0;
}

void predict_inputs_free(predict_inputs *in) {
    free(in->inputs);
    memset(in, 0, sizeof *in);
}

/* ---- the answer ---------------------------------------------------- */

/* The fields of one prediction, without braces. */
static void render_one(text_buffer *t, const nn_answer *a, const float *input) {
    const float *probs = a->probs;
    int best = a->digit;
    /* Numbers as json_writer writes them, so the CLI and the server agree;
     * the rest without printf (answers were 15% of a worker's time with
     * the MLP, nearly all of it printf's). */
    const char digit[2] = {(char)('0' + best), '\0'};
    tb_puts(t, "\"digit\":");
    tb_puts(t, digit);
    tb_puts(t, ",\"confidence\":");
    tb_json_number(t, (double)probs[best]);
    tb_puts(t, ",\"probabilities\":[");
    for (int k = 0; k < NN_CLASSES; k++) {
        if (k) tb_puts(t, ",");
        tb_json_number(t, (double)probs[k]);
    }
    tb_puts(t, a->accepted ? "],\"accepted\":true" : "],\"accepted\":false");
    const char *why = nn_reason_name(a->reason);
    if (!a->accepted && why) {
        tb_puts(t, ",\"reason\":");
        tb_json_string(t, why);
        if (a->reason == NN_AMBIGUOUS) tb_printf(t, ",\"candidates\":[%d,%d]", a->digit, a->runner_up);
    }
    if (input) {
        tb_puts(t, ",\"input\":[");
        for (int i = 0; i < NN_PIXELS; i++)
            tb_printf(t, "%s%.4g", i ? "," : "", (double)input[i]);
        tb_puts(t, "]");
    }
}

void predict_render(const predict_inputs *in, const nn_answer *answers,
                    const served_model *model, bool include_input,
                    predict_outcome *out) {
    memset(out, 0, sizeof *out);
    text_buffer t;
    tb_init(&t, 256 + (size_t)in->n * (200 + (include_input ? 784 * 7 : 0)));
    tb_puts(&t, in->batch ? "{\"predictions\":[" : "{");
    for (int i = 0; i < in->n; i++) {
        out->per_digit[answers[i].digit]++;
        if (in->batch) tb_puts(&t, i ? ",{" : "{");
        render_one(&t, &answers[i], include_input ? in->inputs + (size_t)i * NN_PIXELS : NULL);
        if (in->batch) tb_puts(&t, "}");
    }
    tb_puts(&t, in->batch ? "],\"model\":" : ",\"model\":");
    tb_json_string(&t, model->id);
    tb_puts(&t, "}\n");
    out->body = tb_take(&t, &out->body_len);
    if (!out->body) {
        memset(out, 0, sizeof *out);
        out->status = 500;
        snprintf(out->message, sizeof out->message, "out of memory");
        return;
    }
    out->n = in->n;
    out->status = 200;
}

void predict_handle(const char *content_type, const uint8_t *body, size_t len,
                    bool include_input, const predict_limits *lim,
                    const served_model *model, predict_outcome *out) {
    predict_inputs in;
    if (predict_parse(predict_body_kind_of(content_type), content_type, body, len, lim,
                      &in, out) != 0)
        return;
    nn_answer *answers = calloc((size_t)in.n, sizeof *answers);
    nn_error err;
    if (!answers || nn_classify(model->net, in.inputs, in.n, answers, 1, &err) != 0) {
        free(answers);
        predict_inputs_free(&in);
        memset(out, 0, sizeof *out);
        out->status = 500;
        snprintf(out->message, sizeof out->message, "the model could not run");
        return;
    }
    predict_render(&in, answers, model, include_input, out);
    free(answers);
    predict_inputs_free(&in);
}
