/*
 * cmd_predict.c: `digitd predict IMAGE...`: the server's pipeline from the
 * shell: decode (image_decode), normalise (nn_normalize_digit), forward
 * (nn_predict).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "image_decode.h"
#include "nn.h"

/* Image files larger than this are refused before reading. */
#define MAX_FILE_BYTES (64L << 20)

static void usage(FILE *to) {
    fprintf(to,
        "usage: digitd predict [--model FILE] [--json] IMAGE...\n"
        "Classifies PNG, JPEG, BMP or GIF files of a digit (either polarity,\n"
        "any size), with the same preprocessing as the server.\n\n"
        "  --model FILE   (default $DIGITD_MODEL or models/default.model)\n"
        "  --json         one JSON object per line: file, digit, confidence, probabilities\n");
}

/* Reads a whole file; NULL with a message on error. */
static unsigned char *read_file(const char *path, size_t *len, char *why,
                                size_t why_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "cannot open: %m");
        return NULL;
    }
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(why, why_len, "cannot read its size");
    } else if (size > MAX_FILE_BYTES) {
        snprintf(why, why_len, "larger than %ld MiB", MAX_FILE_BYTES >> 20);
    } else if (!(buf = malloc(size ? (size_t)size : 1))) {
        snprintf(why, why_len, "out of memory");
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(why, why_len, "read error");
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)(size > 0 ? size : 0);
    return buf;
}

int cmd_predict(int argc, char **argv) {
    const char *model = cli_env("DIGITD_MODEL", "models/default.model");
    bool json = false;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "digitd predict: no image given\n");
        usage(stderr);
        return 2;
    }
    nn_error err;
    nn_net *net = nn_model_load(model, &err);
    if (!net) {
        fprintf(stderr, "digitd predict: %s: %s\n", model, err.msg);
        return 1;
    }
    /* Same limits as the server's defaults. */
    const image_limits lim = {.max_width = 4096, .max_height = 4096};
    int failures = 0;
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        char why[300] = "";
        size_t len;
        unsigned char *bytes = read_file(path, &len, why, sizeof why);
        float *gray = NULL, input[NN_PIXELS], probs[NN_CLASSES];
        int w = 0, h = 0;
        if (!bytes) {
            /* why is set */
        } else if (image_decode(bytes, len, &lim, &gray, &w, &h, &err) ||
                   nn_normalize_digit(gray, w, h, input, &err) ||
                   nn_predict(net, input, 1, probs, 1, &err)) {
            snprintf(why, sizeof why, "%s", err.msg);
        }
        free(bytes);
        free(gray);
        if (why[0]) {
            fprintf(stderr, "digitd predict: %s: %s\n", path, why);
            failures++;
            continue;
        }
        int best = 0;
        for (int k = 1; k < NN_CLASSES; k++) best = probs[k] > probs[best] ? k : best;
        if (json) {
            printf("{\"file\":\"");
            for (const char *p = path; *p; p++) {
                if (*p == '"' || *p == '\\') putchar('\\');
                if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
                else putchar(*p);
            }
            printf("\",\"digit\":%d,\"confidence\":%.4f,\"probabilities\":[", best, probs[best]);
            for (int k = 0; k < NN_CLASSES; k++) printf("%s%.6f", k ? "," : "", probs[k]);
            printf("]}\n");
        } else {
            printf("%s: %d (%.1f%%)\n", path, best, 100.0 * probs[best]);
        }
    }
    nn_net_free(net);
    return failures ? 1 : 0;
}
