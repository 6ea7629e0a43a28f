/* decode_jpeg.c: JPEG with libjpeg-turbo (Debian's security-supported
 * libjpeg62-turbo), see decoders.h.
 *
 * Limits and strictness, on every image:
 *   - the sides come from jpeg_read_header (the frame header, before any
 *     scan is decoded) and go to image_admit; a file whose headers end
 *     before a scan (a frame header and no SOS) is libjpeg's "no image"
 *     error, so there is nothing uninitialised to decode;
 *   - a progress monitor refuses an image with more than JPEG_MAX_SCANS
 *     scans (a progressive file of thousands of tiny scans is a cheap way
 *     to burn CPU: libjpeg-turbo's own advice for untrusted input), and
 *     notes which components had a scan: a multi-scan file that ends
 *     before one of them had any is refused (libjpeg would paint it flat
 *     grey without a warning); markers are not monitored: each costs
 *     O(1) and their number is bounded by the body size;
 *   - mem->max_memory_to_use bounds the large buffers (the whole-image
 *     coefficient arrays of a progressive file);
 *   - error_exit longjmps back here instead of exiting, and every libjpeg
 *     warning is an error too: warnings are how libjpeg reports corrupt or
 *     truncated data it papers over ("Premature end of JPEG file", then
 *     grey fill; "Corrupt JPEG data: ... extraneous bytes"), and a guessed
 *     image must never reach an answer.
 * Colour: gray, YCbCr and RGB files come out as RGBA from libjpeg-turbo
 * itself; CMYK and YCCK (Adobe) come out as CMYK and are multiplied out
 * as stb_image did (R = C x K / 255 on the stored, inverted values). */
#include <stdio.h> /* jpeglib.h needs FILE */

#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "decoders.h"

#define JPEG_MAX_SCANS 100                       /* scans per image */
#define JPEG_MAX_MEMORY ((long)192 << 20)        /* bytes of large buffers */

#ifndef JCS_EXTENSIONS
#error "needs libjpeg-turbo's colour-space extensions (JCS_EXT_RGBA)"
#endif

typedef struct {
    struct jpeg_error_mgr errors; /* first: cinfo.err points at the job */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    nn_error *err;
    unsigned scanned; /* bit c set: component c had a scan */
    uint8_t *rgba;    /* (h, w, 4), owned until handed out */
    int w, h;
} jpeg_job;

static void on_error_exit(j_common_ptr c) {
    jpeg_job *job = (jpeg_job *)c->err;
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    nn_fail(job->err, "the JPEG data is corrupt or truncated (%s)", msg);
    longjmp(job->jump, 1);
}

/* level -1: a warning about corrupt data, an error here; >= 0: tracing */
static void on_message(j_common_ptr c, int level) {
    if (level < 0) on_error_exit(c);
}

/* Called before each step of reading the data (and after every SOS:
 * the current scan's components are in cur_comp_info then). */
static void on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    jpeg_job *job = (jpeg_job *)c->err;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        nn_fail(job->err, "the JPEG has more than %d scans", JPEG_MAX_SCANS);
        longjmp(job->jump, 1);
    }
    for (int i = 0; i < d->comps_in_scan && i < MAX_COMPS_IN_SCAN; i++)
        if (d->cur_comp_info[i] && d->cur_comp_info[i]->component_index < 32)
            job->scanned |= 1u << d->cur_comp_info[i]->component_index;
}

/* (a x b) / 255 rounded, for 8-bit a and b (stb_image's blinn_8x8). */
static uint8_t mul255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

/* The libjpeg calls, with the setjmp their errors come back to; what
 * changes after the setjmp lives in *job. */
static image_status run(struct jpeg_decompress_struct *cinfo, jpeg_job *job,
                        const uint8_t *bytes, size_t len, image_limits *lim) {
    if (setjmp(job->jump)) return IMAGE_DAMAGED; /* the handler said why */
    jpeg_create_decompress(cinfo);
    cinfo->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    job->progress.progress_monitor = on_progress;
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, bytes, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);

    image_status admitted = image_admit(lim, cinfo->image_width, cinfo->image_height,
                                        job->err);
    if (admitted != IMAGE_OK) return admitted;

    int cmyk = cinfo->num_components == 4;
    cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGBA;
    jpeg_start_decompress(cinfo); /* a multi-scan file is read whole here */
    /* A multi-scan file that ends (EOI) before some component had a scan
     * is no error to libjpeg: that component would come out flat grey. */
    if (jpeg_has_multiple_scans(cinfo) && cinfo->num_components <= 32 &&
        job->scanned != (cinfo->num_components == 32 ? ~0u
                                                     : (1u << cinfo->num_components) - 1)) {
        nn_fail(job->err, "the JPEG ends before every colour component had a scan");
        return IMAGE_DAMAGED;
    }
    int w = (int)cinfo->output_width, h = (int)cinfo->output_height;
    if (w != (int)cinfo->image_width || h != (int)cinfo->image_height ||
        cinfo->output_components != 4) {
        nn_fail(job->err, "the JPEG decodes to another size than its header says");
        return IMAGE_DAMAGED;
    }
    job->rgba = image_rgba_alloc(w, h);
    if (!job->rgba) {
        nn_fail(job->err, "out of memory decoding a %dx%d JPEG", w, h);
        return IMAGE_NO_MEMORY;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = job->rgba + (size_t)cinfo->output_scanline * (size_t)w * 4;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            nn_fail(job->err, "the JPEG data ends early");
            return IMAGE_DAMAGED;
        }
        if (cmyk)
            for (int x = 0; x < w; x++) {
                uint8_t *px = row + 4 * x;
                unsigned k = px[3];
                px[0] = mul255(px[0], k);
                px[1] = mul255(px[1], k);
                px[2] = mul255(px[2], k);
                px[3] = 255;
            }
    }
    /* Anything after the last row (up to EOI) is not read: the image is
     * complete, as browsers show it. */
    job->w = w;
    job->h = h;
    return IMAGE_OK;
}

image_status decode_jpeg(const uint8_t *bytes, size_t len, image_limits *lim,
                         image_rgba *out, nn_error *err) {
    jpeg_job job = {.err = err};
    struct jpeg_decompress_struct cinfo;
    /* zeroed, so that jpeg_destroy_decompress is safe even when
     * jpeg_create_decompress itself failed */
    memset(&cinfo, 0, sizeof cinfo);
    out->px = NULL;
    out->w = out->h = 0;
    cinfo.err = jpeg_std_error(&job.errors);
    job.errors.error_exit = on_error_exit;
    job.errors.emit_message = on_message;
    image_status st = run(&cinfo, &job, bytes, len, lim);
    jpeg_destroy_decompress(&cinfo);
    if (st != IMAGE_OK) {
        free(job.rgba);
        return st;
    }
    out->px = job.rgba;
    out->w = job.w;
    out->h = job.h;
    return IMAGE_OK;
}
