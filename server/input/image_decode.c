/* image_decode.c: see image_decode.h. The magic bytes pick the decoder
 * (once); the decoder admits the header's sides (image_admit) and writes
 * zeroed RGBA; this file turns RGBA into gray and gray into the model's
 * input.
 *
 * Transparency. A browser canvas exported as PNG stores the untouched
 * background as (0,0,0,0) and the strokes as opaque pixels of whatever
 * colour the pen had; a decoder that drops alpha sees a black image with
 * black (invisible) ink. So an image with any alpha below 255 is
 * composited over a background chosen from the picture itself:
 *   - mostly transparent (alpha covers less than half the area): the
 *     transparent part is the background and the opaque pixels are ink, so
 *     the background is the opposite of the ink's alpha-weighted mean
 *     luminance (white under dark ink, black under light ink);
 *   - mostly opaque: the opaque pixels are paper and the transparent ones
 *     holes in it, so the background is the opaque pixels' own mean
 *     luminance and the holes vanish into the paper.
 * Either way ink stays ink whatever its colour, and the core's
 * normalisation then decides polarity from the border as for any image. */
#include "image_decode.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "decoders.h"

image_format image_format_of(const uint8_t *b, size_t len) {
    if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return IMAGE_PNG;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMAGE_JPEG;
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return IMAGE_GIF;
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return IMAGE_BMP;
    return IMAGE_UNKNOWN;
}

image_status image_admit(image_limits *lim, int64_t w, int64_t h, nn_error *err) {
    if (w <= 0 || h <= 0) {
        nn_fail(err, "the image header says %lldx%lld pixels", (long long)w, (long long)h);
        return IMAGE_DAMAGED;
    }
    if (w > lim->max_width || h > lim->max_height || w > IMAGE_MAX_SIDE ||
        h > IMAGE_MAX_SIDE) {
        nn_fail(err, "the image is %lldx%lld pixels; the limit is %dx%d", (long long)w,
                (long long)h, lim->max_width, lim->max_height);
        return IMAGE_TOO_LARGE;
    }
    if (w * h > lim->pixels_left) {
        nn_fail(err,
                "the image is %lldx%lld pixels, more than the %lld decoded pixels "
                "this request has left",
                (long long)w, (long long)h,
                (long long)(lim->pixels_left > 0 ? lim->pixels_left : 0));
        return IMAGE_OVER_BUDGET;
    }
    lim->pixels_left -= w * h;
    return IMAGE_OK;
}

uint8_t *image_rgba_alloc(int w, int h) {
    return calloc((size_t)w * (size_t)h, 4);
}

/* Rec. 601 luma of 8-bit RGB, 0..1. */
static float luminance(const uint8_t *px) {
    return (0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]) / 255.0f;
}

/* The same values by table where a table gives the same bits: a gray
 * pixel (r = g = b: all that a drawing page's PNG holds) has one of 256
 * lumas, and alpha one of 256 fractions. Per pixel, the expressions (a
 * division each) took about a quarter of a canvas PNG request's CPU. The
 * tables are filled by the expressions themselves. */
static struct {
    float gray_luma[256]; /* luminance of (v, v, v) */
    double alpha[256];    /* a / 255.0, for the statistics */
    float alpha_f[256];   /* a / 255.0f, for compositing */
} tab;
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void) {
    for (int v = 0; v < 256; v++) {
        const uint8_t px[3] = {(uint8_t)v, (uint8_t)v, (uint8_t)v};
        tab.gray_luma[v] = luminance(px);
        tab.alpha[v] = v / 255.0;
        tab.alpha_f[v] = v / 255.0f;
    }
}

static inline float luma_of(const uint8_t *px) {
    return px[0] == px[1] && px[1] == px[2] ? tab.gray_luma[px[0]] : luminance(px);
}

/* RGBA (n pixels) to gray 0..1, alpha composited as described above. */
static void rgba_to_gray(const uint8_t *rgba, size_t n, float *out) {
    pthread_once(&tab_once, tab_init);
    size_t first_translucent = 0;
    while (first_translucent < n && rgba[4 * first_translucent + 3] == 255)
        first_translucent++;
    if (first_translucent == n) { /* opaque: no compositing */
        for (size_t i = 0; i < n; i++) out[i] = luma_of(rgba + 4 * i);
        return;
    }
    /* Alpha statistics: coverage (sum of alpha, in pixels) and the
     * alpha-weighted luminance of what is there. A transparent pixel adds
     * exactly +0.0 to both sums, so it is skipped. */
    double cover = 0, lum_sum = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = rgba + 4 * i;
        if (px[3] == 0) continue;
        double a = tab.alpha[px[3]];
        cover += a;
        lum_sum += a * luma_of(px);
    }
    float mean = cover > 0 ? (float)(lum_sum / cover) : 1.0f;
    float bg;
    if (cover < 0.5 * (double)n)
        bg = mean < 0.5f ? 1.0f : 0.0f; /* opaque = ink */
    else
        bg = mean; /* opaque = paper */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = rgba + 4 * i;
        float a = tab.alpha_f[px[3]];
        out[i] = a * luma_of(px) + (1.0f - a) * bg;
    }
}

image_status image_decode(const uint8_t *bytes, size_t len, image_limits *lim,
                          float **gray, int *w, int *h, nn_error *err) {
    *gray = NULL;
    *w = *h = 0;
    if (len == 0) {
        nn_fail(err, "the image is empty");
        return IMAGE_UNUSABLE;
    }
    image_rgba img;
    image_status st;
    image_format format = image_format_of(bytes, len);
    switch (format) {
    case IMAGE_PNG: st = decode_png(bytes, len, lim, &img, err); break;
    case IMAGE_JPEG: st = decode_jpeg(bytes, len, lim, &img, err); break;
    case IMAGE_BMP:
    case IMAGE_GIF: st = decode_stb(bytes, len, format, lim, &img, err); break;
    default:
        nn_fail(err, "the image is not PNG, JPEG, BMP or GIF");
        return IMAGE_UNSUPPORTED;
    }
    if (st != IMAGE_OK) return st;

    size_t n = (size_t)img.w * (size_t)img.h;
    float *out = calloc(n, sizeof *out);
    if (!out) {
        free(img.px);
        nn_fail(err, "out of memory decoding a %dx%d image", img.w, img.h);
        return IMAGE_NO_MEMORY;
    }
    rgba_to_gray(img.px, n, out);
    free(img.px);
    *gray = out;
    *w = img.w;
    *h = img.h;
    return IMAGE_OK;
}

image_status image_to_input(const uint8_t *bytes, size_t len, image_limits *lim,
                            float input[NN_PIXELS], nn_error *err) {
    memset(input, 0, NN_PIXELS * sizeof *input);
    float *gray;
    int w, h;
    image_status st = image_decode(bytes, len, lim, &gray, &w, &h, err);
    if (st != IMAGE_OK) return st;
    nn_error why;
    int rc = nn_normalize_digit(gray, w, h, input, &why);
    free(gray);
    if (rc != 0) {
        memset(input, 0, NN_PIXELS * sizeof *input);
        nn_fail(err, "the image cannot be used: %s", why.msg);
        return IMAGE_UNUSABLE;
    }
    return IMAGE_OK;
}

int image_status_http(image_status s) {
    switch (s) {
    case IMAGE_OK: return 200;
    case IMAGE_UNSUPPORTED: return 415;
    case IMAGE_DAMAGED: return 400;
    case IMAGE_TOO_LARGE:
    case IMAGE_OVER_BUDGET:
    case IMAGE_UNUSABLE: return 422;
    case IMAGE_NO_MEMORY: break;
    }
    return 500;
}
