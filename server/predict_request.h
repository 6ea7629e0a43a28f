/* predict_request.h: one POST /predict body in, one JSON answer (or an
 * HTTP error status and message) out.
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
 * scaled by 1/255 when any value exceeds 1; images are decoded and go
 * through the core's digit normalisation. */
#ifndef DIGITD_PREDICT_REQUEST_H
#define DIGITD_PREDICT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_slot.h"

#define PREDICT_MAX_BATCH 256 /* the largest batch ever accepted */

typedef enum {
    BODY_UNSUPPORTED = 0,
    BODY_JSON,
    BODY_IMAGE,
    BODY_MULTIPART,
} predict_body_kind;

typedef struct {
    int max_width, max_height; /* image sides, pixels */
    int max_batch;             /* 1..PREDICT_MAX_BATCH */
} predict_limits;

typedef struct {
    int status;        /* 200, or the HTTP error status */
    char message[256]; /* status != 200: what was wrong, for the client */
    char *body;        /* status == 200: malloc'd JSON; the caller frees */
    size_t body_len;
    int n;                   /* predictions made */
    int per_digit[10];       /* how many of them answered each digit */
} predict_outcome;

/* Which body form a Content-Type header value announces (NULL: none). */
predict_body_kind predict_body_kind_of(const char *content_type);

/* Decodes body, runs the model and renders the answer into *out (always
 * filled: either status 200 with body, or an error status with message;
 * messages never contain file paths). include_input adds the normalised
 * 28x28 input the model saw ("input": 784 numbers, row-major). */
void predict_handle(const char *content_type, const uint8_t *body, size_t len,
                    bool include_input, const predict_limits *lim,
                    const served_model *model, predict_outcome *out);

#endif
