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

/* stb_image 2.27 also decodes a scan with whatever Huffman table ids its
 * SOS segment names, defined or not; its tables are malloc'd and never
 * cleared, so a scan using a table the file never defined makes
 * stbi__jpeg_huff_decode index h->values[] with garbage (a read 16 MB
 * away; found by tests/fuzz, fixed upstream in 2.28). This walks the
 * markers as stbi__decode_jpeg_image does and refuses the image when a
 * scan needs a table no DHT before it defined:
 *   - SOI (after FF fill bytes); before the frame header (SOF0-2), stb
 *     skips stray bytes between segments; after it, it does not;
 *   - a segment is FF xx (fill bytes allowed) and a 16-bit length; every
 *     segment stb reads must fit in the bytes (stb reads zeros past the
 *     end, which turns a cut SOS into a scan with table 0);
 *   - after SOS, entropy-coded data up to the first FF yy with yy neither
 *     00 (a stuffed byte), FF (fill) nor RST0-7. stb reads a scan lazily,
 *     but never past such a marker, and when it stops earlier it goes to
 *     the next FF and takes the byte after it as the marker, which is that
 *     same marker or something stb refuses; so stb and this walk meet at
 *     every marker stb accepts;
 *   - a baseline scan (SOF0/1) decodes every block with its DC and AC
 *     table; a progressive one (SOF2) needs the DC table in a first DC
 *     scan (Ss = 0, Ah = 0) and the AC table when Se > 0 (its first DC
 *     scans come before any AC table is defined, so a valid progressive
 *     file uses no table early).
 * Anything stb would refuse anyway (an unknown marker, a wrong segment
 * length, table ids past 3) is refused here too. One pass over the bytes,
 * so the work is linear in the image size. Returns 1 when stb may decode
 * the bytes, 0 when not. */
static int jpeg_scans_ok(const uint8_t *b, size_t len) {
    size_t p = 0;
    int dc_defined[4] = {0}, ac_defined[4] = {0};
    int frame = 0, progressive = 0, components = 0;

    /* SOI, as stb_sees_jpeg found it */
    while (p < len && b[p] == 0xff) p++;
    if (p >= len || b[p] != 0xd8) return 0;
    p++;

    int m = -1;     /* a marker already read (after a scan), or -1 */
    int first = 1;  /* the first marker after SOI */
    for (;;) {
        if (m < 0) {
            /* stbi__get_marker: FF, fill bytes, the marker. Before the
             * frame header, stb skips bytes that are not FF between
             * segments (not before the first one). */
            if (frame == 0 && !first)
                while (p < len && b[p] != 0xff) p++;
            first = 0;
            if (p >= len) return 1; /* stb runs out of data: its error */
            if (b[p] != 0xff) return 0;
            while (p < len && b[p] == 0xff) p++;
            if (p >= len) return 1;
            m = b[p++];
        }
        if (m == 0xd9) return frame; /* EOI: stb's end (an error before SOF) */

        /* every marker stb accepts here has a 16-bit length */
        int known = m == 0xc4 || m == 0xdb || m == 0xdd || m == 0xfe ||
                    (m >= 0xe0 && m <= 0xef) ||
                    (frame == 0 && m >= 0xc0 && m <= 0xc2) ||
                    (frame == 1 && (m == 0xda || m == 0xdc));
        if (!known) return 0; /* stb: "unknown marker" */
        if (len - p < 2) return 0;
        size_t seg = (size_t)b[p] << 8 | b[p + 1];
        if (seg < 2 || seg > len - p) return 0; /* does not fit */
        const uint8_t *s = b + p + 2;
        size_t n = seg - 2;
        p += seg;

        if ((m == 0xdd || m == 0xdc) && seg != 4) return 0; /* DRI, DNL */
        if (m == 0xc4) { /* DHT: the tables it defines */
            size_t q = 0;
            while (q < n) {
                unsigned tc = s[q] >> 4, th = s[q] & 15;
                if (tc > 1 || th > 3 || n - q < 17) return 0;
                size_t count = 0;
                for (size_t i = 1; i <= 16; i++) count += s[q + i];
                if (count > 256 || count > n - q - 17) return 0;
                if (tc == 0)
                    dc_defined[th] = 1;
                else
                    ac_defined[th] = 1;
                q += 17 + count;
            }
        } else if (m >= 0xc0 && m <= 0xc2) { /* SOF0-2: the frame header */
            if (n < 6) return 0;
            components = s[5];
            if ((components != 1 && components != 3 && components != 4) ||
                n != 6 + 3 * (size_t)components)
                return 0;
            frame = 1;
            progressive = m == 0xc2;
        } else if (m == 0xda) { /* SOS: the tables the scan uses */
            if (n < 1) return 0;
            size_t ns = s[0];
            if (ns < 1 || ns > 4 || ns > (size_t)components || n != 4 + 2 * ns)
                return 0;
            unsigned ss = s[1 + 2 * ns], se = s[2 + 2 * ns];
            unsigned ah = s[3 + 2 * ns] >> 4;
            int need_dc = !progressive || (ss == 0 && ah == 0);
            int need_ac = !progressive || se > 0;
            for (size_t i = 0; i < ns; i++) {
                unsigned td = s[2 + 2 * i] >> 4, ta = s[2 + 2 * i] & 15;
                if (td > 3 || ta > 3) return 0;
                if ((need_dc && !dc_defined[td]) || (need_ac && !ac_defined[ta]))
                    return 0;
            }
            /* entropy-coded data up to the next marker */
            m = -1;
            while (p < len) {
                if (b[p++] != 0xff) continue;
                while (p < len && b[p] == 0xff) p++;
                if (p >= len) break;
                unsigned c = b[p++];
                if (c != 0 && !(c >= 0xd0 && c <= 0xd7)) {
                    m = (int)c;
                    break;
                }
            }
            if (m < 0) return 1; /* data ends inside the scan */
            continue;
        }
        m = -1;
    }
}

/* stb_image sizes its buffer for a PNG's compressed data from each IDAT
 * chunk's declared length before it checks that the bytes are there: a
 * 100-byte PNG declaring a 2 GB chunk makes it allocate 2 GB (found by
 * tests/fuzz). Returns 0 when a chunk before IEND declares more bytes than
 * follow it, which stb would refuse anyway after that allocation, or when
 * an IDAT chunk is empty. */
static int png_chunks_fit(const uint8_t *b, size_t len) {
    size_t pos = 8; /* after the signature */
    while (len - pos >= 8) {
        size_t n = (size_t)be32(b + pos);
        if (n > len - pos - 8) return 0;
        if (memcmp(b + pos + 4, "IEND", 4) == 0) break;
        /* An empty IDAT makes stb call memcpy with a NULL source (UB even
         * for 0 bytes; found by tests/fuzz). No encoder writes one. */
        if (n == 0 && memcmp(b + pos + 4, "IDAT", 4) == 0) return 0;
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
    if (stb_sees_jpeg(bytes, len) &&
        (!jpeg_huffman_tables_ok(bytes, len) || !jpeg_scans_ok(bytes, len)))
        return -1;
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
