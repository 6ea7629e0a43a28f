/* decode_stb.c: BMP and GIF with stb_image (Debian's libstb-dev 2.27),
 * narrowed; see decoders.h.
 *
 * stb_image is compiled here and only here, with only its BMP and GIF
 * decoders (PNG and JPEG, what nearly every client sends, go to libpng and
 * libjpeg-turbo, which Debian security-supports as libraries), no stdio,
 * and:
 *   - zeroing allocators: every buffer stb allocates starts as zeros, so
 *     whatever it fails to write reads as 0, never as another request's
 *     bytes;
 *   - STBI_MAX_DIMENSIONS at GIF's own maximum (65535), so stb reports
 *     any GIF's sides and image_admit decides (422 rather than "corrupt");
 *     no image over the caller's limits reaches stb's decoder;
 *   - a BMP's palette checked against its pixels before stb decodes it
 *     (bmp_check_palette): stb keeps the palette on the stack
 *     (pal[256][4]) and fills only the entries the file holds, so a pixel
 *     index past them would read uninitialised stack memory. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "decoders.h"

/* ---- stb_image, narrowed ------------------------------------------- */

static void *stb_zalloc(size_t n) { return calloc(1, n ? n : 1); }

/* realloc whose new bytes are zeros (old: the size stb allocated before) */
static void *stb_zrealloc(void *p, size_t old, size_t n) {
    unsigned char *q = realloc(p, n ? n : 1);
    if (q && n > old) memset(q + old, 0, n - old);
    return q;
}

#define STBI_MALLOC(sz) stb_zalloc(sz)
#define STBI_REALLOC_SIZED(p, oldsz, newsz) stb_zrealloc(p, oldsz, newsz)
#define STBI_FREE(p) free(p)
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS 65535
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

/* ---- BMP header ---------------------------------------------------- */

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The sides of a BMP (BITMAPFILEHEADER, then a core (12-byte) or info
 * (40, 56, 108, 124-byte) header; a negative height means top-down).
 * Returns IMAGE_OK, or IMAGE_DAMAGED with err set. */
static image_status bmp_sides(const uint8_t *b, size_t len, int64_t *w, int64_t *h,
                              nn_error *err) {
    if (len < 26) {
        nn_fail(err, "the BMP header is truncated");
        return IMAGE_DAMAGED;
    }
    uint32_t hsz = le32(b + 14);
    if (hsz != 12 && hsz != 40 && hsz != 56 && hsz != 108 && hsz != 124) {
        nn_fail(err, "the BMP header has an unknown size (%u bytes)", (unsigned)hsz);
        return IMAGE_DAMAGED;
    }
    if (hsz == 12) {
        *w = le16(b + 18);
        *h = le16(b + 20);
        return IMAGE_OK;
    }
    if (len < 30) {
        nn_fail(err, "the BMP header is truncated");
        return IMAGE_DAMAGED;
    }
    *w = (int32_t)le32(b + 18);
    *h = (int32_t)le32(b + 22);
    if (*h < 0) *h = -*h; /* top-down */
    if (*w < 0) *w = 0;   /* refused as damaged by image_admit */
    return IMAGE_OK;
}

/* For a BMP of 1, 4 or 8 bits per pixel, stb_image 2.27 reads as many
 * palette entries as fit between the headers and the pixel data
 * ((offset - 14 - header size) / 4, or (offset - 38) / 3 for a core
 * header) into a stack array it never clears, and then looks every pixel
 * index up in it. This reads the same fields and every index stb will
 * look up (the bytes from `offset`, rows padded to 4 bytes; bytes past
 * the end read as 0, as in stb), and refuses the image when the palette
 * is empty or negative in size or an index lies past it. Depths other
 * than 1, 4, 8 are left to stb (no palette, or refused). Returns
 * IMAGE_OK or IMAGE_DAMAGED with err set. */
static image_status bmp_check_palette(const uint8_t *b, size_t len, int64_t w,
                                      int64_t h, nn_error *err) {
    uint32_t hsz = le32(b + 14);
    size_t depth_at = hsz == 12 ? 24 : 28;
    if (len < depth_at + 2) return IMAGE_OK; /* stb: not enough header */
    unsigned bpp = le16(b + depth_at);
    if (bpp != 1 && bpp != 4 && bpp != 8) return IMAGE_OK;
    /* Checked whatever the compression field says: stb reads it as a
     * signed int and decodes a negative one as uncompressed (found by
     * tests/fuzz); a file stb refuses anyway is refused here a step
     * earlier, with the same status. */
    int64_t offset = (int32_t)le32(b + 10);
    int64_t psize = hsz == 12 ? (offset - 14 - 24) / 3 : (offset - 14 - (int64_t)hsz) / 4;
    if (offset < 0 || psize < 1 || psize > 256) {
        nn_fail(err, "the BMP's palette does not fit its header (%lld entries)",
                (long long)psize);
        return IMAGE_DAMAGED;
    }
    if (psize >= (int64_t)1 << bpp) return IMAGE_OK; /* every index has an entry */
    size_t stride = bpp == 1 ? (size_t)(w + 7) / 8 : bpp == 4 ? (size_t)(w + 1) / 2 : (size_t)w;
    stride += (size_t)(-stride & 3);
    for (int64_t y = 0; y < h; y++) {
        size_t row = (size_t)offset + (size_t)y * stride;
        if (row >= len) break; /* the rest reads as index 0 */
        for (int64_t x = 0; x < w; x++) {
            size_t at = row + (size_t)(x * bpp / 8);
            if (at >= len) break;
            unsigned shift = (unsigned)(8 - bpp - (x * bpp) % 8);
            unsigned index = (b[at] >> shift) & ((1u << bpp) - 1);
            if (index >= psize) {
                nn_fail(err,
                        "the BMP's pixel (%lld, %lld) uses palette entry %u; its "
                        "palette has %lld",
                        (long long)x, (long long)y, index, (long long)psize);
                return IMAGE_DAMAGED;
            }
        }
    }
    return IMAGE_OK;
}

/* ---- decoding ------------------------------------------------------ */

image_status decode_stb(const uint8_t *bytes, size_t len, image_format format,
                        image_limits *lim, image_rgba *out, nn_error *err) {
    out->px = NULL;
    out->w = out->h = 0;
    if (len > INT_MAX) {
        nn_fail(err, "the image is larger than 2 GiB");
        return IMAGE_DAMAGED;
    }
    int64_t w = 0, h = 0;
    image_status st;
    if (format == IMAGE_BMP) {
        if ((st = bmp_sides(bytes, len, &w, &h, err)) != IMAGE_OK) return st;
    } else {
        int iw, ih, ic;
        if (!stbi_info_from_memory(bytes, (int)len, &iw, &ih, &ic)) {
            nn_fail(err, "the GIF header is damaged (%s)", stbi_failure_reason());
            return IMAGE_DAMAGED;
        }
        w = iw;
        h = ih;
    }
    if ((st = image_admit(lim, w, h, err)) != IMAGE_OK) return st;
    if (format == IMAGE_BMP && (st = bmp_check_palette(bytes, len, w, h, err)) != IMAGE_OK)
        return st;

    int dw, dh, dc;
    uint8_t *rgba = stbi_load_from_memory(bytes, (int)len, &dw, &dh, &dc, 4);
    if (!rgba) {
        nn_fail(err, "the image data is corrupt or truncated (%s)", stbi_failure_reason());
        return IMAGE_DAMAGED;
    }
    if (dw != w || dh != h) { /* header and data disagree: refuse */
        stbi_image_free(rgba);
        nn_fail(err, "the image data is inconsistent with its header");
        return IMAGE_DAMAGED;
    }
    out->px = rgba; /* from stb_zalloc: freed with free() */
    out->w = dw;
    out->h = dh;
    return IMAGE_OK;
}
