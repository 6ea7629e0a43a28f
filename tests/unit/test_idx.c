/* test_idx.c: the IDX reader on small hand-made files, raw and gzipped,
 * and its refusal of every malformed case with a message that names the
 * file and the problem. The real MNIST files are only read when
 * DIGITD_MNIST_DIR is set. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Bytes built in memory; big enough for every file made here. */
typedef struct {
    uint8_t *b;
    size_t len;
} bytes;

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Pixel k of image i: a pattern that includes 0, 128 and 255. */
static uint8_t pixel(int i, int k) {
    if (k == 0) return 0;
    if (k == 1) return 255;
    if (k == 2) return 128;
    return (uint8_t)(i * 31 + k * 7);
}

/* An image file of n images of h x w (pixels from pixel()). */
static bytes idx_images(int n, int h, int w) {
    bytes x;
    x.len = 16 + (size_t)n * h * w;
    x.b = malloc(x.len + 16); /* slack for tests that append */
    ck_assert_ptr_nonnull(x.b);
    x.b[0] = 0; x.b[1] = 0; x.b[2] = 0x08; x.b[3] = 3;
    put_be32(x.b + 4, (uint32_t)n);
    put_be32(x.b + 8, (uint32_t)h);
    put_be32(x.b + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < h * w; k++)
            x.b[16 + (size_t)i * h * w + k] = pixel(i, k);
    return x;
}

/* A label file with labels (i * 3) % 10. */
static bytes idx_labels(int n) {
    bytes x;
    x.len = 8 + (size_t)n;
    x.b = malloc(x.len + 16);
    ck_assert_ptr_nonnull(x.b);
    x.b[0] = 0; x.b[1] = 0; x.b[2] = 0x08; x.b[3] = 1;
    put_be32(x.b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) x.b[8 + i] = (uint8_t)(i * 3 % 10);
    return x;
}

static void write_raw(const char *path, bytes x) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    if (x.len) ck_assert_uint_eq(fwrite(x.b, 1, x.len, f), x.len);
    ck_assert_int_eq(fclose(f), 0);
}

/* gzip through zlib's own gz* writer, as the MNIST .gz files are. */
static void write_gz(const char *path, const uint8_t *b, size_t len,
                     const char *mode) {
    gzFile g = gzopen(path, mode);
    ck_assert_msg(g != NULL, "gzopen %s", path);
    if (len) ck_assert_int_eq(gzwrite(g, b, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

static void check_loaded(const nn_dataset *d, int n) {
    ck_assert_int_eq(d->n, n);
    ck_assert_ptr_nonnull(d->images);
    ck_assert_ptr_nonnull(d->labels);
    for (int i = 0; i < n; i++) {
        ck_assert_uint_eq(d->labels[i], (unsigned)(i * 3 % 10));
        for (int k = 0; k < NN_PIXELS; k++) {
            float want = (float)pixel(i, k) / 255.0f;
            ck_assert_msg(d->images[(size_t)i * NN_PIXELS + k] == want,
                          "image %d pixel %d", i, k);
        }
    }
    ck_assert(d->images[0] == 0.0f);
    ck_assert(d->images[1] == 1.0f);
}

/* Loads images_path + labels_path and asserts a refusal whose message
 * contains want (and, when name is given, the file's name); out must be
 * left empty. */
static void expect_load_refusal(const char *images_path, const char *labels_path,
                                const char *want, const char *name) {
    nn_dataset d;
    memset(&d, 0xab, sizeof d); /* garbage: load must clear it */
    nn_error err = {{0}};
    ck_assert_int_eq(nn_idx_load(images_path, labels_path, &d, &err), -1);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  err.msg, want);
    if (name)
        ck_assert_msg(strstr(err.msg, name) != NULL,
                      "message \"%s\" does not name %s", err.msg, name);
    ck_assert_int_eq(d.n, 0);
    ck_assert_ptr_null(d.images);
    ck_assert_ptr_null(d.labels);
}

static void expect_parse_refusal(bytes x, int dims, const char *want) {
    const uint8_t *data = (const uint8_t *)"sentinel";
    int count = 99;
    nn_error err = {{0}};
    ck_assert_int_eq(nn_idx_parse(x.b, x.len, dims, &data, &count, &err), -1);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"",
                  err.msg, want);
    ck_assert_ptr_null(data);
    ck_assert_int_eq(count, 0);
}

/* ------------------------------------------------------------------ */
/* Parsing in memory                                                   */
/* ------------------------------------------------------------------ */

START_TEST(test_parse_ok) {
    bytes im = idx_images(3, 28, 28), lb = idx_labels(3);
    const uint8_t *data;
    int count;
    nn_error err = {{0}};
    ck_assert_msg(nn_idx_parse(im.b, im.len, 3, &data, &count, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(count, 3);
    ck_assert_ptr_eq(data, im.b + 16);
    ck_assert_msg(nn_idx_parse(lb.b, lb.len, 1, &data, &count, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(count, 3);
    ck_assert_ptr_eq(data, lb.b + 8);
    /* Zero items is well-formed IDX (nn_idx_load refuses it as a set). */
    bytes none = idx_labels(0);
    ck_assert_int_eq(nn_idx_parse(none.b, none.len, 1, &data, &count, &err), 0);
    ck_assert_int_eq(count, 0);
    free(im.b);
    free(lb.b);
    free(none.b);
}
END_TEST

START_TEST(test_parse_refusals) {
    bytes im = idx_images(2, 28, 28);

    im.b[0] = 1;
    expect_parse_refusal(im, 3, "not an IDX file");
    im.b[0] = 0;

    im.b[2] = 0x0d; /* float elements */
    expect_parse_refusal(im, 3, "element type is 0x0d");
    im.b[2] = 0x08;

    expect_parse_refusal(im, 1, "has 3 dimension(s); a label file has 1");
    bytes lb = idx_labels(2);
    expect_parse_refusal(lb, 3, "has 1 dimension(s); an image file has 3");

    bytes small = idx_images(2, 27, 28);
    expect_parse_refusal(small, 3, "images are 27x28, expected 28x28");

    bytes cut = im;
    cut.len -= 1;
    expect_parse_refusal(cut, 3, "truncated: the header promises 2 images");
    cut.len = 10; /* inside the dimension sizes */
    expect_parse_refusal(cut, 3, "truncated IDX header");
    cut.len = 3;
    expect_parse_refusal(cut, 3, "too short for an IDX header");

    bytes extra = im;
    extra.b[extra.len] = 0;
    extra.len += 1;
    expect_parse_refusal(extra, 3, "1 trailing byte after the 2 images");

    /* A count so large that count * 784 needs 64 bits. */
    put_be32(im.b + 4, 0x7fffffffu);
    expect_parse_refusal(im, 3, "truncated");
    put_be32(im.b + 4, 0xffffffffu);
    expect_parse_refusal(im, 3, "too many");

    expect_parse_refusal(lb, 2, "expect_dims must be 1");
    free(im.b);
    free(lb.b);
    free(small.b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Loading files                                                       */
/* ------------------------------------------------------------------ */

START_TEST(test_load_raw) {
    tu_tmpdir_make();
    bytes im = idx_images(5, 28, 28), lb = idx_labels(5);
    write_raw(tu_tpath("im"), im);
    write_raw(tu_tpath("lb"), lb);
    nn_dataset d;
    nn_error err = {{0}};
    ck_assert_msg(nn_idx_load(tu_tpath("im"), tu_tpath("lb"), &d, &err) == 0, "%s",
                  err.msg);
    check_loaded(&d, 5);
    nn_dataset_free(&d);
    ck_assert_int_eq(d.n, 0);
    ck_assert_ptr_null(d.images);
    nn_dataset_free(&d); /* twice is harmless */
    nn_dataset_free(NULL);
    free(im.b);
    free(lb.b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_load_gzip_by_content) {
    tu_tmpdir_make();
    bytes im = idx_images(4, 28, 28), lb = idx_labels(4);
    /* gzip content under a plain name, plain content under a .gz name:
     * the bytes decide. */
    write_gz(tu_tpath("images-no-suffix"), im.b, im.len, "wb9");
    write_raw(tu_tpath("labels.gz"), lb);
    nn_dataset d;
    nn_error err = {{0}};
    ck_assert_msg(nn_idx_load(tu_tpath("images-no-suffix"), tu_tpath("labels.gz"), &d,
                              &err) == 0,
                  "%s", err.msg);
    check_loaded(&d, 4);
    nn_dataset_free(&d);

    /* Two concatenated gzip members (what `cat a.gz b.gz` makes) are one
     * stream to gunzip, and to us. */
    size_t half = im.len / 2;
    write_gz(tu_tpath("multi.gz"), im.b, half, "wb");
    write_gz(tu_tpath("multi.gz"), im.b + half, im.len - half, "ab");
    ck_assert_msg(nn_idx_load(tu_tpath("multi.gz"), tu_tpath("labels.gz"), &d, &err) == 0,
                  "%s", err.msg);
    check_loaded(&d, 4);
    nn_dataset_free(&d);
    free(im.b);
    free(lb.b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_load_refusals) {
    tu_tmpdir_make();
    bytes im = idx_images(3, 28, 28), lb = idx_labels(3);
    write_raw(tu_tpath("im"), im);
    write_raw(tu_tpath("lb"), lb);

    /* Each malformed image file, named in the message. */
    im.b[1] = 7;
    write_raw(tu_tpath("bad-magic"), im);
    expect_load_refusal(tu_tpath("bad-magic"), tu_tpath("lb"), "not an IDX file",
                        "bad-magic");
    im.b[1] = 0;

    im.b[2] = 0x0b;
    write_raw(tu_tpath("bad-type"), im);
    expect_load_refusal(tu_tpath("bad-type"), tu_tpath("lb"), "element type is 0x0b",
                        "bad-type");
    im.b[2] = 0x08;

    bytes wide = idx_images(3, 28, 32);
    write_raw(tu_tpath("bad-dims"), wide);
    expect_load_refusal(tu_tpath("bad-dims"), tu_tpath("lb"), "expected 28x28",
                        "bad-dims");
    /* Image and label files swapped. */
    expect_load_refusal(tu_tpath("lb"), tu_tpath("im"), "dimension(s)", "lb");

    bytes cut = im;
    cut.len -= 100;
    write_raw(tu_tpath("cut"), cut);
    expect_load_refusal(tu_tpath("cut"), tu_tpath("lb"), "truncated", "cut");

    bytes extra = im;
    memcpy(extra.b + extra.len, "XYZ", 3);
    extra.len += 3;
    write_raw(tu_tpath("extra"), extra);
    expect_load_refusal(tu_tpath("extra"), tu_tpath("lb"), "3 trailing bytes", "extra");

    /* Labels: out of range, too few. */
    lb.b[8 + 1] = 10;
    write_raw(tu_tpath("lb-ten"), lb);
    expect_load_refusal(tu_tpath("im"), tu_tpath("lb-ten"),
                        "label 10 at index 1 is not a digit", "lb-ten");
    bytes two = idx_labels(2);
    write_raw(tu_tpath("lb-two"), two);
    expect_load_refusal(tu_tpath("im"), tu_tpath("lb-two"), "holds 3 images but",
                        "lb-two");
    expect_load_refusal(tu_tpath("im"), tu_tpath("lb-two"), "holds 2 labels", NULL);

    /* An empty set, a missing file, an empty file. */
    bytes im0 = idx_images(0, 28, 28), lb0 = idx_labels(0);
    write_raw(tu_tpath("im0"), im0);
    write_raw(tu_tpath("lb0"), lb0);
    expect_load_refusal(tu_tpath("im0"), tu_tpath("lb0"), "holds no images", "im0");
    expect_load_refusal(tu_tpath("missing"), tu_tpath("lb"), "No such file or directory",
                        "missing");
    expect_load_refusal(tu_tpath("im"), tu_tpath("missing-labels"),
                        "No such file or directory", "missing-labels");
    write_raw(tu_tpath("empty"), (bytes){NULL, 0});
    expect_load_refusal(tu_tpath("empty"), tu_tpath("lb"), "too short", "empty");
    expect_load_refusal(tu_tmpdir, tu_tpath("lb"), "not a regular file", tu_tmpdir);

    free(im.b);
    free(lb.b);
    free(wide.b);
    free(two.b);
    free(im0.b);
    free(lb0.b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_gzip_damage) {
    tu_tmpdir_make();
    bytes im = idx_images(20, 28, 28), lb = idx_labels(20);
    write_raw(tu_tpath("lb"), lb);
    write_gz(tu_tpath("im.gz"), im.b, im.len, "wb");
    FILE *f = fopen(tu_tpath("im.gz"), "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t gz[65536];
    size_t n = fread(gz, 1, sizeof gz, f);
    fclose(f);
    ck_assert(n > 100 && n < sizeof gz - 4);

    /* Cut in half: the decoder runs out of input. */
    write_raw(tu_tpath("half.gz"), (bytes){gz, n / 2});
    expect_load_refusal(tu_tpath("half.gz"), tu_tpath("lb"), "gzip stream is truncated",
                        "half.gz");
    /* Only the 2-byte magic: still gzip by content, and truncated. */
    write_raw(tu_tpath("magic.gz"), (bytes){gz, 2});
    expect_load_refusal(tu_tpath("magic.gz"), tu_tpath("lb"), "gzip stream is truncated",
                        "magic.gz");
    /* Bytes after the gzip stream that are not another member. */
    memcpy(gz + n, "junk", 4);
    write_raw(tu_tpath("junk.gz"), (bytes){gz, n + 4});
    expect_load_refusal(tu_tpath("junk.gz"), tu_tpath("lb"),
                        "4 bytes of trailing data after the gzip stream",
                        "junk.gz");
    /* Damaged compression method byte: corrupt, not truncated. */
    gz[2] = 0x07;
    write_raw(tu_tpath("corrupt.gz"), (bytes){gz, n});
    expect_load_refusal(tu_tpath("corrupt.gz"), tu_tpath("lb"), "gzip stream is corrupt",
                        "corrupt.gz");
    /* Damaged stored CRC in the gzip trailer. */
    gz[2] = 0x08;
    gz[n - 8] ^= 0xff;
    write_raw(tu_tpath("crc.gz"), (bytes){gz, n});
    expect_load_refusal(tu_tpath("crc.gz"), tu_tpath("lb"), "gzip stream is corrupt",
                        "crc.gz");
    free(im.b);
    free(lb.b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_gzip_bomb_refused) {
    /* 257 MiB of zeros gzip to about 256 KB; the reader must stop at its
     * 256 MiB cap instead of inflating it all. */
    tu_tmpdir_make();
    const char *p = tu_tpath("bomb.gz");
    gzFile g = gzopen(p, "wb1");
    ck_assert_ptr_nonnull(g);
    size_t chunk = 1 << 20;
    uint8_t *zeros = calloc(1, chunk);
    ck_assert_ptr_nonnull(zeros);
    for (int i = 0; i < 257; i++)
        ck_assert_int_eq(gzwrite(g, zeros, (unsigned)chunk), (int)chunk);
    ck_assert_int_eq(gzclose(g), Z_OK);
    free(zeros);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_lt(st.st_size, 2 << 20);
    bytes lb = idx_labels(1);
    write_raw(tu_tpath("lb"), lb);
    expect_load_refusal(p, tu_tpath("lb"), "more than 256 MiB", "bomb.gz");
    free(lb.b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_mnist_load_names) {
    tu_tmpdir_make();
    bytes im = idx_images(6, 28, 28), lb = idx_labels(6);
    /* One gzipped and one raw: each name is tried with and without .gz. */
    write_gz(tu_tpath("train-images-idx3-ubyte.gz"), im.b, im.len, "wb");
    write_raw(tu_tpath("train-labels-idx1-ubyte"), lb);
    nn_dataset d;
    nn_error err = {{0}};
    ck_assert_msg(nn_mnist_load(tu_tmpdir, "train", &d, &err) == 0, "%s", err.msg);
    check_loaded(&d, 6);
    nn_dataset_free(&d);

    ck_assert_int_eq(nn_mnist_load(tu_tmpdir, "t10k", &d, &err), -1);
    ck_assert_msg(strstr(err.msg, "t10k-images-idx3-ubyte") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "not found") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "fetch-mnist.sh") != NULL, "%s", err.msg);
    ck_assert_int_eq(nn_mnist_load(tu_tmpdir, "test", &d, &err), -1);
    ck_assert_msg(strstr(err.msg, "unknown MNIST set \"test\"") != NULL, "%s",
                  err.msg);
    free(im.b);
    free(lb.b);
    tu_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ */
/* The real files, when present                                        */
/* ------------------------------------------------------------------ */

START_TEST(test_real_mnist) {
    const char *dir = tu_mnist_dir();
    nn_dataset d;
    nn_error err = {{0}};
    ck_assert_msg(nn_mnist_load(dir, "t10k", &d, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 10000);
    /* The first test digit is a 7 and the first training digit a 5: a
     * well-known fact about MNIST that pins the label order. */
    ck_assert_uint_eq(d.labels[0], 7);
    int per_class[NN_CLASSES] = {0};
    for (int i = 0; i < d.n; i++) per_class[d.labels[i]]++;
    ck_assert_int_eq(per_class[0], 980);  /* published class sizes */
    ck_assert_int_eq(per_class[1], 1135);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < (size_t)d.n * NN_PIXELS; i++) {
        if (d.images[i] < lo) lo = d.images[i];
        if (d.images[i] > hi) hi = d.images[i];
    }
    ck_assert(lo == 0.0f && hi == 1.0f);
    nn_dataset_free(&d);
    ck_assert_msg(nn_mnist_load(dir, "train", &d, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(d.n, 60000);
    ck_assert_uint_eq(d.labels[0], 5);
    nn_dataset_free(&d);
}
END_TEST

/* Data set rooms: small ones from malloc, large ones in whole 2 MiB pages
 * (aligned, so that the huge-page advice covers them), impossible counts
 * refused before any allocation. */
START_TEST(test_dataset_alloc_images) {
    ck_assert_ptr_null(nn_dataset_alloc_images(-1));
    ck_assert_ptr_null(nn_dataset_alloc_images(LONG_MAX));
    float *none = nn_dataset_alloc_images(0);
    ck_assert_ptr_nonnull(none);
    free(none);
    long counts[] = {1, 668, 669, 1000};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        nn_dataset d = {.n = (int)counts[i], .images = nn_dataset_alloc_images(counts[i])};
        ck_assert_ptr_nonnull(d.images);
        size_t size = (size_t)counts[i] * NN_PIXELS * sizeof(float);
        if (size >= (size_t)2 << 20) /* 669 images are the first over 2 MiB */
            ck_assert_uint_eq((uintptr_t)d.images % ((uintptr_t)2 << 20), 0);
        memset(d.images, 0x3f, size); /* all of it writable (ASan checks) */
        ck_assert(d.images[(size_t)counts[i] * NN_PIXELS - 1] > 0.7f);
        nn_dataset_free(&d);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("idx");
    tcase_add_unchecked_fixture(tc, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_add_test(tc, test_parse_ok);
    tcase_add_test(tc, test_parse_refusals);
    tcase_add_test(tc, test_load_raw);
    tcase_add_test(tc, test_load_gzip_by_content);
    tcase_add_test(tc, test_load_refusals);
    tcase_add_test(tc, test_gzip_damage);
    tcase_add_test(tc, test_gzip_bomb_refused);
    tcase_add_test(tc, test_mnist_load_names);
    tcase_add_test(tc, test_dataset_alloc_images);
    suite_add_tcase(s, tc);
    if (tu_mnist_dir()) {
        TCase *real = tcase_create("real_mnist");
        tcase_add_test(real, test_real_mnist);
        suite_add_tcase(s, real);
    } else {
        fprintf(stderr, "test_idx: DIGITD_MNIST_DIR unset, real-MNIST case "
                        "not run\n");
    }
    return tu_run(s);
}
