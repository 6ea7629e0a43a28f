/* image_decode.h: untrusted image bytes to a grayscale float image, and to
 * the normalised 28x28 input the model sees. The one path from image
 * bytes to a model input: the daemon (predict_request.c), `digitd
 * predict` (cmd_predict.c) and the fuzzers all call image_to_input.
 *
 * Which decoder reads what (the format comes from the magic bytes, read
 * once here; the Content-Type only chooses "this body is an image"):
 *   PNG   libpng 1.6 (decode_png.c)          Debian security-supported
 *   JPEG  libjpeg-turbo (decode_jpeg.c)      Debian security-supported
 *   BMP   stb_image, narrowed (decode_stb.c) zeroing allocators, palette
 *   GIF   stb_image, narrowed (decode_stb.c) checked, first frame only
 * Every decoder reads the image's sides from its header first and asks
 * image_admit (below) before it allocates or decodes a single pixel. */
#ifndef DIGITD_IMAGE_DECODE_H
#define DIGITD_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/* The largest side any decoder is ever asked to decode, whatever the
 * limits say (the --max-image-* flags stop here too). */
#define IMAGE_MAX_SIDE 16384

typedef enum {
    IMAGE_UNKNOWN = 0,
    IMAGE_PNG,
    IMAGE_JPEG,
    IMAGE_BMP,
    IMAGE_GIF,
} image_format;

/* What went wrong, one value per HTTP answer (predict_request.c maps them:
 * docs/http-api.md). */
typedef enum {
    IMAGE_OK = 0,
    IMAGE_UNSUPPORTED, /* 415: not PNG, JPEG, BMP or GIF */
    IMAGE_DAMAGED,     /* 400: header or data corrupt, truncated, inconsistent */
    IMAGE_TOO_LARGE,   /* 422: a side over the limit (from the header) */
    IMAGE_OVER_BUDGET, /* 422: the request's decoded-pixel budget is spent */
    IMAGE_UNUSABLE,    /* 422: empty, or blank (normalisation refused it) */
    IMAGE_NO_MEMORY,   /* 500 */
} image_status;

/* Limits of one request; the caller keeps one for the whole request so a
 * batch shares the pixel budget. */
typedef struct {
    int max_width, max_height; /* pixels, 1..IMAGE_MAX_SIDE */
    int64_t pixels_left;       /* decoded pixels the request may still
                                  spend; each admitted image subtracts its
                                  width x height */
} image_limits;

/* The HTTP status that answers a refusal (docs/http-api.md): 415
 * unsupported, 400 damaged, 422 too large / over budget / unusable, 500
 * out of memory; 200 for IMAGE_OK. */
int image_status_http(image_status s);

/* The format the first bytes announce (PNG signature, JPEG SOI + a marker,
 * "GIF87a"/"GIF89a", "BM"), or IMAGE_UNKNOWN. */
image_format image_format_of(const uint8_t *bytes, size_t len);

/* Called by each decoder with the sides read from the header, before any
 * pixel memory is allocated: IMAGE_TOO_LARGE when a side is 0 or over the
 * limits (0: IMAGE_DAMAGED), IMAGE_OVER_BUDGET when width x height is more
 * than lim->pixels_left; otherwise subtracts it from the budget and
 * returns IMAGE_OK. err says why on refusal. */
image_status image_admit(image_limits *lim, int64_t w, int64_t h, nn_error *err);

/* Decodes bytes (first frame) into *gray, (h, w) floats 0..1 (0 black, 1
 * white), calloc'd for the caller to free. Transparency is composited so
 * that ink on a transparent background (a browser canvas exported as PNG)
 * comes out as ink. On failure returns the status, err says why (never a
 * file path), *gray is NULL and *w = *h = 0. lim->pixels_left is spent
 * once the header is admitted, even if the data then turns out corrupt. */
image_status image_decode(const uint8_t *bytes, size_t len, image_limits *lim,
                          float **gray, int *w, int *h, nn_error *err);

/* image_decode, then nn_normalize_digit: bytes to one normalised input,
 * input (28, 28), ink high, values 0..1. On failure returns the status
 * with err set, and input is all zeros. */
image_status image_to_input(const uint8_t *bytes, size_t len, image_limits *lim,
                            float input[NN_PIXELS], nn_error *err);

#endif
