/* fuzz_idx.c: the MNIST IDX reader on hostile bytes.
 *
 * nn_idx_parse is called on the bytes as images (3 dimensions) and as
 * labels (1 dimension); an accepted file must hold exactly the items its
 * header promises. Then the bytes go through the file loader, nn_idx_load,
 * from an in-memory file (memfd), which adds the gzip decoder (raw or
 * gzipped is decided by the content) and the label checks: as the images
 * file with a fixed labels file, and as the labels file with a fixed
 * images file. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "nn.h"

static void parse_as(const uint8_t *buf, size_t len, int dims) {
    const uint8_t *items = (const uint8_t *)1;
    int count = -1;
    nn_error err;
    err.msg[0] = '\0';
    if (nn_idx_parse(buf, len, dims, &items, &count, &err) != 0) {
        FUZZ_CHECK(items == NULL && count == 0, "a refusal left outputs set");
        FUZZ_CHECK(err.msg[0] != '\0', "a refusal without a message");
        return;
    }
    size_t item = dims == 3 ? NN_PIXELS : 1;
    FUZZ_CHECK(count >= 0 && items >= buf && items <= buf + len,
               "items outside the buffer");
    FUZZ_CHECK((size_t)(buf + len - items) == (size_t)count * item,
               "%d items of %zu bytes, %zu bytes after the header", count, item,
               (size_t)(buf + len - items));
    /* touch them all: any byte outside the buffer is an ASan report */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)count * item; i++) sum += items[i];
    (void)sum;
}

/* An in-memory file holding bytes; its path through /proc/self/fd. */
static int memfile(const uint8_t *buf, size_t len, char *path, size_t size) {
    int fd = memfd_create("fuzz-idx", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, size, "/proc/self/fd/%d", fd);
    return fd;
}

static void load_pair(const char *images, const char *labels) {
    nn_dataset d;
    nn_error err;
    err.msg[0] = '\0';
    if (nn_idx_load(images, labels, &d, &err) != 0) {
        FUZZ_CHECK(d.n == 0 && d.images == NULL && d.labels == NULL,
                   "a refused load left a data set");
        FUZZ_CHECK(err.msg[0] != '\0', "a refused load without a message");
        return;
    }
    FUZZ_CHECK(d.n > 0, "an accepted set of %d items", d.n);
    for (int i = 0; i < d.n; i++) FUZZ_CHECK(d.labels[i] <= 9, "label %d", d.labels[i]);
    for (size_t i = 0; i < (size_t)d.n * NN_PIXELS; i++)
        FUZZ_CHECK(d.images[i] >= 0.0f && d.images[i] <= 1.0f, "pixel %g",
                   (double)d.images[i]);
    nn_dataset_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    parse_as(buf, size, 3);
    parse_as(buf, size, 1);
    free(buf);

    /* fixed partners: one image (all zero) and one label (7) */
    static uint8_t one_image[16 + NN_PIXELS] = {0, 0, 8, 3, 0, 0, 0, 1,
                                                0, 0, 0, 28, 0, 0, 0, 28};
    static const uint8_t one_label[9] = {0, 0, 8, 1, 0, 0, 0, 1, 7};
    char fuzz_path[64], img_path[64], lab_path[64];
    int f = memfile(data, size, fuzz_path, sizeof fuzz_path);
    int i = memfile(one_image, sizeof one_image, img_path, sizeof img_path);
    int l = memfile(one_label, sizeof one_label, lab_path, sizeof lab_path);
    if (f >= 0 && i >= 0 && l >= 0) {
        load_pair(fuzz_path, lab_path);
        load_pair(img_path, fuzz_path);
    }
    if (f >= 0) close(f);
    if (i >= 0) close(i);
    if (l >= 0) close(l);
    return 0;
}
