/* image_decode.c: see image_decode.h.
 *
 * stb_image is compiled here and only here, with only the four decoders
 * the API accepts, no stdio (we only ever decode memory), and a hard cap on
 * the sides; the caller's tighter limits are checked with
 * stbi_info_from_memory before any pixel memory is allocated.
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

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
/* Absolute ceiling whatever the flags say (their maximum is the same). */
#define STBI_MAX_DIMENSIONS 16384
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* Rec. 601 luma of 8-bit RGB, 0..1. */
static float luminance(const uint8_t *px) {
    return (0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]) / 255.0f;
}

int image_decode(const uint8_t *bytes, size_t len, const image_limits *lim,
                 float **gray, int *w, int *h, nn_error *err) {
    *gray = NULL;
    *w = *h = 0;
    if (len == 0) return nn_fail(err, "the image is empty");
    if (len > INT_MAX) return nn_fail(err, "the image is larger than 2 GiB");

    int iw, ih;
    if (image_probe(bytes, len, &iw, &ih) != 0)
        return nn_fail(err,
                       "not a PNG, JPEG, BMP or GIF image, or its header is "
                       "damaged");
    if (iw > lim->max_width || ih > lim->max_height)
        return nn_fail(err, "the image is %dx%d pixels; the limit is %dx%d", iw,
                       ih, lim->max_width, lim->max_height);

    /* Always ask for RGBA: one conversion path; `channels` still says
     * whether the file had alpha (2 or 4). */
    int dw, dh, dc;
    uint8_t *rgba = stbi_load_from_memory(bytes, (int)len, &dw, &dh, &dc, 4);
    if (!rgba)
        return nn_fail(err, "the image data is corrupt or truncated (%s)",
                       stbi_failure_reason());
    if (dw != iw || dh != ih) { /* header and data disagree: refuse */
        stbi_image_free(rgba);
        return nn_fail(err, "the image data is inconsistent with its header");
    }

    size_t n = (size_t)dw * (size_t)dh;
    float *out = malloc(n * sizeof *out);
    if (!out) {
        stbi_image_free(rgba);
        return nn_fail(err, "out of memory decoding a %dx%d image", dw, dh);
    }

    /* Alpha statistics: coverage (sum of alpha, in pixels) and the
     * alpha-weighted luminance of what is there. */
    double cover = 0, lum_sum = 0;
    int translucent = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = rgba + 4 * i;
        double a = px[3] / 255.0;
        if (px[3] != 255) translucent = 1;
        cover += a;
        lum_sum += a * luminance(px);
    }

    if (!translucent) {
        for (size_t i = 0; i < n; i++) out[i] = luminance(rgba + 4 * i);
    } else {
        float mean = cover > 0 ? (float)(lum_sum / cover) : 1.0f;
        float bg;
        if (cover < 0.5 * (double)n)
            bg = mean < 0.5f ? 1.0f : 0.0f; /* opaque = ink */
        else
            bg = mean; /* opaque = paper */
        for (size_t i = 0; i < n; i++) {
            const uint8_t *px = rgba + 4 * i;
            float a = px[3] / 255.0f;
            out[i] = a * luminance(px) + (1.0f - a) * bg;
        }
    }
    stbi_image_free(rgba);
    *gray = out;
    *w = dw;
    *h = dh;
    return 0;
}

/* Big-endian and little-endian integers from a header. */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The sides a PNG, GIF or BMP header claims, read directly: stb refuses to
 * report sides over its own ceiling, and "too large" is a different
 * answer from "damaged". Clamped to INT_MAX. Returns 0 or -1. */
static int claimed_sides(const uint8_t *b, size_t len, int *w, int *h) {
    uint64_t cw, ch;
    if (len >= 24 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0 &&
        memcmp(b + 12, "IHDR", 4) == 0) {
        cw = be32(b + 16);
        ch = be32(b + 20);
    } else if (len >= 10 && memcmp(b, "GIF8", 4) == 0) {
        cw = (uint64_t)b[6] | (uint64_t)b[7] << 8;
        ch = (uint64_t)b[8] | (uint64_t)b[9] << 8;
    } else if (len >= 26 && b[0] == 'B' && b[1] == 'M') {
        cw = le32(b + 18);
        int32_t sh = (int32_t)le32(b + 22); /* negative: stored top-down */
        ch = sh < 0 ? (uint64_t)(-(int64_t)sh) : (uint64_t)sh;
    } else {
        return -1;
    }
    if (cw == 0 || ch == 0) return -1;
    *w = cw > INT_MAX ? INT_MAX : (int)cw;
    *h = ch > INT_MAX ? INT_MAX : (int)ch;
    return 0;
}

/* stb_image 2.27 (Debian 12's libstb-dev) trusts the sixteen code counts
 * of a JPEG Huffman table (DHT segment): counts summing past 256 make
 * stbi__build_huffman and the symbol loop write past the table's 257-byte
 * arrays, with bytes from the file (found by tests/fuzz, fixed upstream in
 * 2.28). stb reads a DHT only right after the bytes FF C4, in the header
 * probe as well as in the decoder, so every FF C4 pair in the image is
 * checked here the way stb would parse the segment after it (bytes past
 * the end read as 0, as in stb). Returns 0 when a table would overflow, or
 * when the image holds more such pairs than any real JPEG (which bounds
 * the work on hostile input). */
static int jpeg_huffman_tables_ok(const uint8_t *b, size_t len) {
#define AT(i) ((i) < len ? (unsigned)b[i] : 0u)
    size_t pairs = 0;
    for (size_t p = 1; p < len; p++) {
        if (b[p] != 0xc4 || b[p - 1] != 0xff) continue;
        if (++pairs > 1024) return 0;
        size_t q = p + 1;
        long left = (long)(AT(q) << 8 | AT(q + 1)) - 2;
        q += 2;
        while (left > 0 && q < len) {
            if ((AT(q) >> 4) > 1 || (AT(q) & 15) > 3) break; /* stb refuses */
            unsigned n = 0;
            for (size_t i = 1; i <= 16; i++) n += AT(q + i);
            if (n > 256) return 0;
            q += 17 + n;
            left -= 17 + (long)n;
        }
    }
#undef AT
    return 1;
}

/* stb_image sizes its buffer for a PNG's compressed data from each IDAT
 * chunk's declared length before it checks that the bytes are there: a
 * 100-byte PNG declaring a 2 GB chunk makes it allocate 2 GB (found by
 * tests/fuzz). Returns 0 when a chunk before IEND declares more bytes than
 * follow it, which stb would refuse anyway after that allocation. */
static int png_chunks_fit(const uint8_t *b, size_t len) {
    size_t pos = 8; /* after the signature */
    while (len - pos >= 8) {
        size_t n = (size_t)be32(b + pos);
        if (n > len - pos - 8) return 0;
        if (memcmp(b + pos + 4, "IEND", 4) == 0) break;
        pos += 8 + n;
        if (len - pos < 4) break;
        pos += 4; /* CRC */
    }
    return 1;
}

/* Whether stb takes the bytes for a JPEG: its start-of-image marker FF D8,
 * which stb finds after any number of FF fill bytes. */
static int stb_sees_jpeg(const uint8_t *b, size_t len) {
    size_t i = 1;
    if (len < 2 || b[0] != 0xff) return 0;
    while (i < len && b[i] == 0xff) i++;
    return i < len && b[i] == 0xd8;
}

int image_probe(const uint8_t *bytes, size_t len, int *w, int *h) {
    int channels;
    *w = *h = 0;
    if (len == 0 || len > INT_MAX) return -1;
    if (stb_sees_jpeg(bytes, len) && !jpeg_huffman_tables_ok(bytes, len)) return -1;
    if (len >= 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0 &&
        !png_chunks_fit(bytes, len))
        return -1;
    if (stbi_info_from_memory(bytes, (int)len, w, h, &channels))
        return *w > 0 && *h > 0 ? 0 : -1;
    /* Refused by stb: still report sides over the ceiling, so the caller
     * says "too large"; anything else is damaged. */
    int cw, ch;
    if (claimed_sides(bytes, len, &cw, &ch) == 0 && (cw > STBI_MAX_DIMENSIONS ||
                                                    ch > STBI_MAX_DIMENSIONS)) {
        *w = cw;
        *h = ch;
        return 0;
    }
    return -1;
}
