/* idx.c: the MNIST IDX reader, raw or gzipped.
 *
 * An IDX file (http://yann.lecun.com/exdb/mnist/) is a big-endian header,
 *   u8 0, u8 0, u8 type (0x08 = unsigned byte), u8 ndims,
 *   ndims x u32 dimension sizes,
 * followed by the items, the last index the fastest. MNIST has images
 * (N, 28, 28) and labels (N). The files are untrusted input: every size is
 * checked against the number of bytes actually present, and gzip input is
 * decompressed under a hard cap so a small "gzip bomb" cannot exhaust
 * memory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nn.h"

/* Largest IDX content accepted, compressed or not. MNIST's largest file,
 * train-images, is 47,040,016 bytes; EMNIST-sized sets still fit. */
#define IDX_MAX_BYTES ((size_t)256 << 20)

/* gzip member magic (RFC 1952): the content decides, not the file name. */
static int is_gzip(const uint8_t *buf, size_t len) {
    return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

/* Inflates gzip bytes (one or more concatenated members, as `cat a.gz
 * b.gz` produces) into a new buffer of at most `cap` bytes. On error
 * returns -1 with a message (without the file name: the caller adds it). */
static int gunzip(const uint8_t *in, size_t in_len, size_t cap, uint8_t **out,
                  size_t *out_len, nn_error *err) {
    *out = NULL;
    *out_len = 0;
    /* The gzip trailer's ISIZE (uncompressed size mod 2^32) is only a hint
     * for the first allocation; it is untrusted, so the cap still rules. */
    size_t size = 1 << 16;
    if (in_len >= 18) {
        const uint8_t *t = in + in_len - 4;
        size_t hint = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 |
                      (size_t)t[3] << 24;
        if (hint > size && hint <= cap) size = hint;
    }
    if (size > cap) size = cap;
    uint8_t *buf = malloc(size + 1);
    if (!buf) return nn_fail(err, "out of memory for %zu bytes", size);

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) { /* 15-bit window, gzip wrapper */
        free(buf);
        return nn_fail(err, "cannot start the gzip decoder");
    }
    zs.next_in = (Bytef *)in;
    size_t in_left = in_len;
    if (in_len > UINT_MAX) { /* cannot happen: read_file caps at 256 MiB */
        inflateEnd(&zs);
        free(buf);
        return nn_fail(err, "gzip input too large");
    }
    /* buf always has size + 1 bytes and inflate may fill them all: one
     * byte beyond `size` means "grow" below the cap, and proves the
     * content is over the cap at it. */
    size_t used = 0;
    for (;;) {
        if (used > size && size < cap) {
            size_t bigger = size > cap / 2 ? cap : size * 2;
            uint8_t *nb = realloc(buf, bigger + 1);
            if (!nb) {
                nn_fail(err, "out of memory for %zu bytes", bigger);
                goto fail;
            }
            buf = nb;
            size = bigger;
        }
        /* zlib counts in uInt; the input is at most IDX_MAX_BYTES and the
         * room at most cap + 1, both below 4 GiB. */
        size_t room = size + 1 - used;
        zs.avail_in = (uInt)in_left;
        zs.next_out = buf + used;
        zs.avail_out = (uInt)room;
        int rc = inflate(&zs, Z_NO_FLUSH);
        in_left = zs.avail_in;
        used += room - zs.avail_out;
        if (used > cap) {
            nn_fail(err,
                    "decompresses to more than %zu MiB; refused (not MNIST, "
                    "or a gzip bomb)",
                    cap >> 20);
            goto fail;
        }
        if (rc == Z_STREAM_END) {
            if (in_left == 0) break; /* done */
            if (in_left >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
                inflateReset(&zs); /* another gzip member follows */
                continue;
            }
            nn_fail(err, "%zu bytes of trailing data after the gzip stream",
                    in_left);
            goto fail;
        }
        /* All input used, output room left, and no end of stream: the
         * stream stops early. (Z_BUF_ERROR means no progress was possible;
         * with output room always available, that is also missing input.) */
        if ((rc == Z_OK && in_left == 0 && zs.avail_out > 0) ||
            (rc == Z_BUF_ERROR && in_left == 0)) {
            nn_fail(err, "gzip stream is truncated");
            goto fail;
        }
        if (rc != Z_OK) {
            nn_fail(err, "gzip stream is corrupt: %s",
                    zs.msg ? zs.msg : "bad data");
            goto fail;
        }
    }
    inflateEnd(&zs);
    *out = buf;
    *out_len = used;
    return 0;
fail:
    inflateEnd(&zs);
    free(buf);
    return -1;
}

/* Reads path and, when its content is gzip, decompresses it. The result
 * (*buf, *len) is the IDX bytes; the caller frees *buf. */
static int read_idx_bytes(const char *path, uint8_t **buf, size_t *len,
                          nn_error *err) {
    uint8_t *raw;
    size_t raw_len;
    if (nn_read_file(path, IDX_MAX_BYTES, &raw, &raw_len, err) != 0) return -1;
    if (!is_gzip(raw, raw_len)) {
        *buf = raw;
        *len = raw_len;
        return 0;
    }
    nn_error zerr;
    int rc = gunzip(raw, raw_len, IDX_MAX_BYTES, buf, len, &zerr);
    free(raw);
    if (rc != 0) return nn_fail(err, "%s: %s", path, zerr.msg);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

int nn_idx_parse(const uint8_t *buf, size_t len, int expect_dims,
                 const uint8_t **data, int *count, nn_error *err) {
    *data = NULL;
    *count = 0;
    if (expect_dims != 1 && expect_dims != 3)
        return nn_fail(err, "expect_dims must be 1 (labels) or 3 (images), not %d",
                       expect_dims);
    const char *what = expect_dims == 3 ? "image" : "label";
    const char *a_what = expect_dims == 3 ? "an image" : "a label";
    if (len < 4)
        return nn_fail(err, "too short for an IDX header (%zu bytes)", len);
    if (buf[0] != 0 || buf[1] != 0)
        return nn_fail(err,
                       "not an IDX file (magic %02x %02x %02x %02x; an IDX "
                       "file starts 00 00 08 01 or 00 00 08 03)",
                       buf[0], buf[1], buf[2], buf[3]);
    if (buf[2] != 0x08)
        return nn_fail(err,
                       "IDX element type is 0x%02x; only 0x08 (unsigned byte) "
                       "is supported",
                       buf[2]);
    int dims = buf[3];
    if (dims != expect_dims)
        return nn_fail(err,
                       "IDX file has %d dimension(s); %s file has %d "
                       "(magic 0x0000080%d)",
                       dims, a_what, expect_dims, expect_dims);
    size_t header = 4 + 4 * (size_t)dims;
    if (len < header)
        return nn_fail(err,
                       "truncated IDX header: %zu bytes, need %zu for %d "
                       "dimensions",
                       len, header, dims);

    uint32_t n = be32(buf + 4);
    uint64_t item = 1; /* bytes per item */
    if (dims == 3) {
        uint32_t h = be32(buf + 8), w = be32(buf + 12);
        if (h != NN_SIDE || w != NN_SIDE)
            return nn_fail(err, "images are %" PRIu32 "x%" PRIu32
                                ", expected %dx%d",
                           h, w, NN_SIDE, NN_SIDE);
        item = (uint64_t)h * w;
    }
    if (n > INT_MAX)
        return nn_fail(err, "IDX file claims %" PRIu32 " items; too many", n);

    /* n < 2^31 and item == 784, so the product fits in 64 bits. */
    uint64_t need = (uint64_t)n * item;
    uint64_t have = len - header;
    if (have < need)
        return nn_fail(err,
                       "truncated: the header promises %" PRIu32 " %ss (%" PRIu64
                       " bytes) but only %" PRIu64 " bytes follow",
                       n, what, need, have);
    if (have > need)
        return nn_fail(err,
                       "%" PRIu64 " trailing byte%s after the %" PRIu32
                       " %ss the header promises",
                       have - need, have - need == 1 ? "" : "s", n, what);
    *data = buf + header;
    *count = (int)n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Data sets                                                           */
/* ------------------------------------------------------------------ */

float *nn_dataset_alloc_images(long n) {
    const size_t huge = (size_t)2 << 20; /* x86-64's and arm64's huge page */
    if (n < 0 || (unsigned long)n > SIZE_MAX / (NN_PIXELS * sizeof(float))) return NULL;
    size_t bytes = (size_t)n * NN_PIXELS * sizeof(float);
    if (bytes < huge) return malloc(bytes ? bytes : 1);
    /* Whole huge pages, aligned, so that none is shared with the heap. */
    size_t room = (bytes + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, room) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    /* Advice only: where transparent huge pages are off, nothing changes. */
    madvise(p, room, MADV_HUGEPAGE);
#endif
    return p;
}

void nn_dataset_free(nn_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    d->images = NULL;
    d->labels = NULL;
    d->n = 0;
}

int nn_idx_load(const char *images_path, const char *labels_path,
                nn_dataset *out, nn_error *err) {
    memset(out, 0, sizeof *out);
    uint8_t *ibuf = NULL, *lbuf = NULL;
    size_t ilen, llen;
    const uint8_t *ipix, *llab;
    int ni, nl;
    nn_error perr;
    int rc = -1;

    if (read_idx_bytes(images_path, &ibuf, &ilen, err) != 0) goto done;
    if (nn_idx_parse(ibuf, ilen, 3, &ipix, &ni, &perr) != 0) {
        nn_fail(err, "%s: %s", images_path, perr.msg);
        goto done;
    }
    if (read_idx_bytes(labels_path, &lbuf, &llen, err) != 0) goto done;
    if (nn_idx_parse(lbuf, llen, 1, &llab, &nl, &perr) != 0) {
        nn_fail(err, "%s: %s", labels_path, perr.msg);
        goto done;
    }
    if (ni != nl) {
        nn_fail(err, "%s holds %d images but %s holds %d labels", images_path,
                ni, labels_path, nl);
        goto done;
    }
    if (ni == 0) {
        nn_fail(err, "%s holds no images", images_path);
        goto done;
    }
    for (int i = 0; i < nl; i++) {
        if (llab[i] > 9) {
            nn_fail(err, "%s: label %d at index %d is not a digit 0..9",
                    labels_path, llab[i], i);
            goto done;
        }
    }

    size_t npix = (size_t)ni * NN_PIXELS;
    float *images = nn_dataset_alloc_images(ni);
    uint8_t *labels = malloc((size_t)nl);
    if (!images || !labels) {
        free(images);
        free(labels);
        nn_fail(err, "%s: out of memory for %d images", images_path, ni);
        goto done;
    }
    /* Bytes 0..255 to 0..1; MNIST already stores ink high. */
    for (size_t i = 0; i < npix; i++) images[i] = (float)ipix[i] / 255.0f;
    memcpy(labels, llab, (size_t)nl);
    out->n = ni;
    out->images = images;
    out->labels = labels;
    rc = 0;
done:
    free(ibuf);
    free(lbuf);
    return rc;
}

/* Sets path to DIR/NAME or DIR/NAME.gz, whichever exists (the raw file
 * first: it loads faster). Returns -1 with a message when neither does. */
static int find_idx(const char *dir, const char *name, char *path, size_t size,
                    nn_error *err) {
    int n = snprintf(path, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return nn_fail(err, "%s/%s: path too long", dir, name);
    if (access(path, F_OK) == 0) return 0;
    n = snprintf(path, size, "%s/%s.gz", dir, name);
    if (n < 0 || (size_t)n >= size)
        return nn_fail(err, "%s/%s.gz: path too long", dir, name);
    if (access(path, F_OK) == 0) return 0;
    return nn_fail(err,
                   "%s/%s: not found, with or without .gz (scripts/fetch-mnist.sh "
                   "downloads MNIST)",
                   dir, name);
}

int nn_mnist_load(const char *dir, const char *set, nn_dataset *out,
                  nn_error *err) {
    memset(out, 0, sizeof *out);
    if (strcmp(set, "train") != 0 && strcmp(set, "t10k") != 0)
        return nn_fail(err, "unknown MNIST set \"%s\" (train or t10k)", set);
    char name[64], images[4096], labels[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", set);
    if (find_idx(dir, name, images, sizeof images, err) != 0) return -1;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", set);
    if (find_idx(dir, name, labels, sizeof labels, err) != 0) return -1;
    return nn_idx_load(images, labels, out, err);
}
