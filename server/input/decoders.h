/* decoders.h: what image_decode.c asks of each decoder (private to
 * server/input/). Every decoder
 *   - reads the sides from the header and calls image_admit before it
 *     allocates or decodes any pixel;
 *   - writes RGBA, 8 bits a channel, into a buffer from image_rgba_alloc
 *     (zeroed), alpha 255 where the format has none;
 *   - on any error, warning or inconsistency frees what it allocated and
 *     returns the status with err set; nothing partial is ever returned. */
#ifndef DIGITD_INPUT_DECODERS_H
#define DIGITD_INPUT_DECODERS_H

#include "image_decode.h"

typedef struct {
    uint8_t *px; /* (h, w, 4) RGBA bytes, from image_rgba_alloc */
    int w, h;
} image_rgba;

/* A zeroed (h, w, 4) buffer, or NULL when out of memory. w and h are
 * admitted sides (at most IMAGE_MAX_SIDE), so the size cannot overflow. */
uint8_t *image_rgba_alloc(int w, int h);

image_status decode_png(const uint8_t *bytes, size_t len, image_limits *lim,
                        image_rgba *out, nn_error *err);
image_status decode_jpeg(const uint8_t *bytes, size_t len, image_limits *lim,
                         image_rgba *out, nn_error *err);
/* BMP and GIF (format says which). */
image_status decode_stb(const uint8_t *bytes, size_t len, image_format format,
                        image_limits *lim, image_rgba *out, nn_error *err);

#endif
