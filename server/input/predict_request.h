/* predict_request.h: one POST /predict body in, one JSON answer (or an
 * HTTP error status and message) out, in two halves so that the serving
 * layer can run the model itself in between (batching requests on a work
 * queue):
 *
 *   predict_parse    bytes -> (n, 784) normalised inputs   (any thread)
 *   nn_classify      inputs -> (n) answers: probabilities, verdict (the caller)
 *   predict_render   inputs + probabilities -> JSON answer   (any thread)
 *
 * predict_handle is the three in a row: a pure function from bytes to
 * outcome, used by the fuzzers and tests.
 *
 * Bodies, by Content-Type (media type compared case-insensitively,
 * parameters ignored except multipart's boundary):
 *   application/json     {"pixels": [784 numbers]}  (or 28 rows of 28)
 *                        {"image": "<base64>" | "data:image/...;base64,..."}
 *                        a batch: [input, input, ...] or {"instances": [...]}
 *                        of 1..max_batch such objects
 *   image/png, image/jpeg, image/bmp, image/gif   the raw image
 *   multipart/form-data  a file field named "image"
 * Pixels are taken as an MNIST-style 28x28 input (ink high) as they are,
 * scaled by 1/255 when any value exceeds 1; images go through
 * image_to_input (server/input/image_decode.h: decode, then the core's
 * digit normalisation), whatever their Content-Type says: the decoder is
 * chosen by the image's magic bytes. */
#ifndef DIGITD_PREDICT_REQUEST_H
#define DIGITD_PREDICT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_repo.h"

#define PREDICT_MAX_BATCH 256 /* the largest batch ever accepted */
#define PREDICT_DEFAULT_SIDE 4096 /* default image width and height limit, pixels */
/* Default decoded-pixel budget of one request, all its images together:
 * one image of the default largest size (4096 x 4096 = 16 Mpixel). */
#define PREDICT_DEFAULT_MAX_PIXELS ((int64_t)PREDICT_DEFAULT_SIDE * PREDICT_DEFAULT_SIDE)

typedef enum {
    BODY_UNSUPPORTED = 0,
    BODY_JSON,
    BODY_IMAGE,
    BODY_MULTIPART,
} predict_body_kind;

typedef struct {
    int max_width, max_height; /* image sides, pixels (1..16384) */
    int max_batch;             /* 1..PREDICT_MAX_BATCH */
    int64_t max_pixels;        /* decoded image pixels per request, every
                                  image of a batch counted (width x height
                                  from each header, before decoding) */
} predict_limits;

/* The decoded inputs of one request. */
typedef struct {
    float *inputs; /* (n, 784) normalised, row-major 28x28, ink high, 0..1;
                      calloc'd, freed by predict_inputs_free */
    int n;         /* 1..max_batch once parsed */
    bool batch;    /* the body was a batch: answer {"predictions": [...]} */
} predict_inputs;

typedef struct {
    int status;        /* 200, or the HTTP error status */
    char message[256]; /* status != 200: what was wrong, for the client */
    char *body;        /* status == 200: malloc'd JSON; the caller frees */
    size_t body_len;
    int n;                   /* predictions made */
    int per_digit[10];       /* how many of them answered each digit */
} predict_outcome;

/* Which body form a Content-Type header value announces (NULL: none).
 * The transport calls it once, when the headers arrive (415 before the
 * body is read), and passes the kind on to predict_parse. */
predict_body_kind predict_body_kind_of(const char *content_type);

/* Decodes a request body of the given kind (from predict_body_kind_of;
 * content_type is still needed for multipart's boundary) into *in.
 * Returns 0 with *in filled (free it with predict_inputs_free) and *out
 * zeroed; or -1 with *in empty and *out holding the error status (400,
 * 415, 422, or 500 when out of memory) and message (never a file path;
 * "input 3: ..." for an item of a batch). Reads nothing but its arguments
 * and keeps no state: safe on any thread. */
int predict_parse(predict_body_kind kind, const char *content_type,
                  const uint8_t *body, size_t len, const predict_limits *lim,
                  predict_inputs *in, predict_outcome *out);

/* Frees in->inputs and empties *in (safe on an empty one). */
void predict_inputs_free(predict_inputs *in);

/* The 200 answer for parsed inputs and their answers (n, as nn_classify
 * gives them): {"digit", "confidence", "probabilities", "accepted",
 * ["reason": "not_a_digit" | "ambiguous" when not accepted, and for
 * ambiguous "candidates": [digit, runner-up]], ["input" when
 * include_input: the 784 values the model saw], "model"}, or
 * {"predictions": [...], "model"} for a batch. Fills *out (status 200,
 * body, n, per_digit), or status 500 when out of memory. */
void predict_render(const predict_inputs *in, const nn_answer *answers,
                    const served_model *model, bool include_input,
                    predict_outcome *out);

/* predict_parse (the kind from content_type), nn_classify on model,
 * predict_render: *out always filled, status 200 with body or an error
 * status with message (500 when the model could not run). */
void predict_handle(const char *content_type, const uint8_t *body, size_t len,
                    bool include_input, const predict_limits *lim,
                    const served_model *model, predict_outcome *out);

#endif
