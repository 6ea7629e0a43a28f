/* decode_png.c: PNG with libpng 1.6 (Debian's security-supported
 * libpng16), see decoders.h.
 *
 * libpng's own limits, set on every image:
 *   - user limits on the sides: the largest libpng accepts, so that it
 *     reports any side a valid IHDR can hold and image_admit decides
 *     (too large is 422, the same answer for every format, where libpng's
 *     own refusal would read as "corrupt", 400);
 *   - chunk_malloc_max: an ancillary chunk (or a decompressed one) over
 *     PNG_CHUNK_MAX bytes is an error; IDAT streams through a small buffer
 *     and is bounded by the image size, which image_admit has checked;
 *   - chunk_cache_max: at most PNG_CHUNK_CACHE ancillary chunks kept;
 *   - every ancillary chunk but tRNS (transparency) is skipped unread: no
 *     text, ICC profile or EXIF is decompressed, and no gamma is applied
 *     (pixels come out as stored, as browsers' canvases wrote them).
 * Errors longjmp back here (libpng's error handler must not return);
 * libpng's warnings are about ancillary data we skip, and are dropped. A
 * stream that ends before the last row is an error in libpng ("Not enough
 * image data"), never a partial image. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "decoders.h"

#define PNG_CHUNK_MAX ((png_alloc_size_t)1 << 20) /* bytes */
#define PNG_CHUNK_CACHE 64                        /* chunks */

typedef struct {
    const uint8_t *bytes;
    size_t len, pos;
    nn_error *err;
    uint8_t *rgba;       /* (h, w, 4), owned until handed out */
    png_bytep *rows;     /* h pointers into rgba */
    int w, h;
} png_job;

static void read_bytes(png_structp png, png_bytep dst, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->pos) png_error(png, "the data ends early");
    memcpy(dst, job->bytes + job->pos, n);
    job->pos += n;
}

static void on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    nn_fail(job->err, "the PNG data is corrupt or truncated (%s)", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* The libpng calls, with the setjmp their errors come back to. Everything
 * that changes after the setjmp lives in *job (not in locals, whose values
 * a longjmp would leave indeterminate). Returns the status; on IMAGE_OK
 * job->rgba holds the image and job->w, job->h its sides. */
static image_status run(png_structp png, png_infop info, png_job *job,
                        image_limits *lim) {
    if (setjmp(png_jmpbuf(png))) return IMAGE_DAMAGED; /* on_error said why */
    png_set_read_fn(png, job, read_bytes);
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE);
#ifdef PNG_IGNORE_ADLER32
    /* Every chunk's CRC-32 is still checked (a bad one is an error), so
     * zlib's own Adler-32 over the inflated rows guards nothing more; it
     * was 8% of a canvas PNG request's CPU (zlib 1.2.13 computes it a
     * byte at a time). */
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
    /* all unknown chunks and every known ancillary one but tRNS: skipped */
    static const png_byte skipped[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0"
                                      "oFFs\0pCAL\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0"
                                      "tEXt\0tIME\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped,
                                (int)(sizeof skipped / 5));

    png_read_info(png, info); /* signature, IHDR, chunks up to the first IDAT */
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    image_status admitted = image_admit(lim, w, h, job->err);
    if (admitted != IMAGE_OK) return admitted;

    /* To RGBA, 8 bits a channel, as stored: 16-bit samples keep their high
     * byte; 1, 2, 4-bit gray is scaled to 0..255; palette and tRNS expand
     * to RGB and alpha; gray becomes R = G = B; opaque images get 255. */
    png_set_strip_16(png);
    png_set_expand(png);
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4)
        png_error(png, "unexpected row size after conversion to RGBA");

    job->rgba = image_rgba_alloc((int)w, (int)h);
    job->rows = calloc(h, sizeof *job->rows);
    if (!job->rgba || !job->rows) {
        nn_fail(job->err, "out of memory decoding a %ux%u PNG", (unsigned)w, (unsigned)h);
        return IMAGE_NO_MEMORY;
    }
    for (png_uint_32 y = 0; y < h; y++) job->rows[y] = job->rgba + (size_t)y * w * 4;
    png_read_image(png, job->rows);
    /* the chunks after the image data are not needed: not read */
    job->w = (int)w;
    job->h = (int)h;
    return IMAGE_OK;
}

image_status decode_png(const uint8_t *bytes, size_t len, image_limits *lim,
                        image_rgba *out, nn_error *err) {
    png_job job = {.bytes = bytes, .len = len, .err = err};
    out->px = NULL;
    out->w = out->h = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error,
                                             on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        nn_fail(err, "out of memory decoding a PNG");
        return IMAGE_NO_MEMORY;
    }
    image_status st = run(png, info, &job, lim);
    png_destroy_read_struct(&png, &info, NULL);
    free(job.rows);
    if (st != IMAGE_OK) {
        free(job.rgba);
        return st;
    }
    out->px = job.rgba;
    out->w = job.w;
    out->h = job.h;
    return IMAGE_OK;
}
