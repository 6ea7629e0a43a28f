/* http_fixture.c: makes the files the HTTP tests need and Python's
 * standard library cannot: model files (through the real nn/ writer) and
 * JPEG/PNG/BMP encodings (stb_image_write).
 *
 *   http_fixture model OUT ARCH SEED          untrained model (He/Glorot init)
 *   http_fixture train OUT MNIST_DIR EPOCHS   a small MLP trained on MNIST
 *   http_fixture encode png|jpg|bmp W H C RAW OUT
 *        RAW: W*H*C bytes, row-major, C = 1 (gray), 2 (gray+alpha),
 *        3 (RGB) or 4 (RGBA)
 * Exit status 0 on success, 1 with a message otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "nn.h"

static int die(const char *what) {
    fprintf(stderr, "http_fixture: %s\n", what);
    return 1;
}

static int make_model(const char *out, const char *arch, unsigned long long seed) {
    nn_error err;
    nn_net *net = nn_net_create(arch, "relu", &err);
    if (!net) return die(err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    snprintf(net->meta.name, sizeof net->meta.name, "untrained-%s", arch);
    net->meta.test_accuracy = -1;
    net->meta.val_accuracy = -1;
    net->meta.train_seconds = -1;
    net->meta.created_unix = 0;
    int rc = nn_model_save(net, out, &err);
    nn_net_free(net);
    return rc == 0 ? 0 : die(err.msg);
}

static int train_model(const char *out, const char *dir, int epochs) {
    nn_error err;
    nn_dataset train, test;
    if (nn_mnist_load(dir, "train", &train, &err) != 0) return die(err.msg);
    if (nn_mnist_load(dir, "t10k", &test, &err) != 0) {
        nn_dataset_free(&train);
        return die(err.msg);
    }
    nn_net *net = nn_net_create("784-128-10", "relu", &err);
    if (!net) return die(err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_net_init(net, &rng);
    nn_train_config cfg;
    nn_train_config_defaults(&cfg);
    cfg.epochs = epochs;
    cfg.augment = false;
    cfg.seed = 7;
    int rc = nn_train(net, &train, NULL, &cfg, NULL, NULL, &err);
    if (rc == 0) {
        snprintf(net->meta.name, sizeof net->meta.name, "test-mlp-784-128-10");
        net->meta.test_accuracy = nn_evaluate(net, &test, cfg.threads, NULL, &err);
        net->meta.val_accuracy = -1;
        net->meta.train_seconds = -1;
        net->meta.created_unix = 0;
        fprintf(stderr, "http_fixture: test accuracy %.4f\n", net->meta.test_accuracy);
        rc = nn_model_save(net, out, &err);
    }
    nn_net_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return rc == 0 ? 0 : die(err.msg);
}

static int encode(const char *fmt, int w, int h, int c, const char *raw, const char *out) {
    FILE *f = fopen(raw, "rb");
    if (!f) return die("cannot open the raw pixels");
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    unsigned char *px = malloc(n);
    size_t got = px ? fread(px, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        free(px);
        return die("the raw file is shorter than W*H*C bytes");
    }
    int ok;
    if (strcmp(fmt, "png") == 0) ok = stbi_write_png(out, w, h, c, px, w * c);
    else if (strcmp(fmt, "jpg") == 0) ok = stbi_write_jpg(out, w, h, c, px, 95);
    else if (strcmp(fmt, "bmp") == 0) ok = stbi_write_bmp(out, w, h, c, px);
    else ok = 0;
    free(px);
    return ok ? 0 : die("cannot encode (format must be png, jpg or bmp)");
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "model") == 0)
        return make_model(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc == 5 && strcmp(argv[1], "train") == 0)
        return train_model(argv[2], argv[3], atoi(argv[4]));
    if (argc == 8 && strcmp(argv[1], "encode") == 0)
        return encode(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6], argv[7]);
    fprintf(stderr, "usage: http_fixture model OUT ARCH SEED | train OUT MNIST_DIR EPOCHS |"
                    " encode png|jpg|bmp W H C RAW OUT\n");
    return 2;
}
