/* image_decode.h: untrusted image bytes to a grayscale float image, via
 * stb_image with only the PNG, JPEG, BMP and GIF decoders compiled in.
 * Shared by `digitd serve` and `digitd predict`, so both see the same
 * pixels. */
#ifndef DIGITD_IMAGE_DECODE_H
#define DIGITD_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

typedef struct {
    int max_width, max_height; /* pixels; checked before decoding */
} image_limits;

/* Decodes bytes (PNG, JPEG, BMP or GIF; first frame) into *gray, (h, w)
 * floats 0..1 (0 black, 1 white), malloc'd for the caller to free.
 * Transparency is composited so that ink on a transparent background
 * (a browser canvas exported as PNG) comes out as ink.
 * On error returns -1 with err saying why (unknown format, too large,
 * corrupt data) and *gray is NULL. */
int image_decode(const uint8_t *bytes, size_t len, const image_limits *lim,
                 float **gray, int *w, int *h, nn_error *err);

/* Reads only the header of bytes: *w and *h in pixels. Returns 0, or -1
 * when the bytes are not PNG, JPEG, BMP or GIF or the header is damaged.
 * Lets callers tell "not an image" from "too large" from "corrupt data"
 * (different HTTP statuses) before anything is allocated. */
int image_probe(const uint8_t *bytes, size_t len, int *w, int *h);

#endif
