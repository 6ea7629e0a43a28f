/* draw.h: strokes on a grayscale canvas, for the generated training and
 * test data (nn/negatives.c, nn/styles.c). Internal to nn/.
 *
 * A canvas is (h, w) floats, 1 white paper and 0 black ink, the form
 * nn_normalize_digit takes, so generated drawings go through exactly the
 * normalisation the server applies. Coordinates are pixels, (x right,
 * y down), pixel (r, c) centred at (c + 0.5, r + 0.5). */
#ifndef DIGITD_DRAW_H
#define DIGITD_DRAW_H

#include "nn.h"

typedef struct {
    float x, y;
} pt;

typedef struct {
    int w, h;
    float *px; /* (h, w), caller-owned */
} canvas;

/* Paper everywhere. */
void canvas_clear(canvas *c);
/* A round-capped segment of radius r (pixels), anti-aliased by one pixel
 * of coverage ramp; ink only darkens. */
void draw_segment(canvas *c, pt a, pt b, float r);
/* Segments through n points. */
void draw_polyline(canvas *c, const pt *p, int n, float r);
/* A Catmull-Rom curve through n points (n >= 2), 12 segments per span. */
void draw_curve(canvas *c, const pt *p, int n, float r);

/* Ink-high (28,28) image `in` as an ink-low canvas image scaled up by an
 * integer factor k with bilinear sampling: out (28k, 28k). */
void upscale_digit(const float *in, int k, float *out);

/* nn_normalize_digit on a canvas, into out (784); -1 when blank. */
int canvas_normalize(const canvas *c, float *out);

static inline float rng_range(nn_rng *r, float lo, float hi) {
    return lo + (hi - lo) * nn_rng_uniform(r);
}

#endif
