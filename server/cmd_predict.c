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
#define MAX_FILE_BYTES ((size_t)64 << 20)

static void usage(FILE *to) {
    fprintf(to,
        "usage: digitd predict [--model FILE] [--json] IMAGE...\n"
        "Classifies PNG, JPEG, BMP or GIF files of a digit (either polarity,\n"
        "any size), with the same preprocessing as the server.\n\n"
        "  --model FILE   (default $DIGITD_MODEL or models/default.model)\n"
        "  --json         one JSON object per line: file, digit, confidence, probabilities\n");
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
        uint8_t *bytes = NULL;
        size_t len;
        float *gray = NULL, input[NN_PIXELS];
        nn_answer ans;
        int w = 0, h = 0;
        /* nn_read_file's messages name the file already. */
        int rc = nn_read_file(path, MAX_FILE_BYTES, &bytes, &len, &err);
        if (rc == 0 && (image_decode(bytes, len, &lim, &gray, &w, &h, &err) ||
                        nn_normalize_digit(gray, w, h, input, &err) ||
                        nn_classify(net, input, 1, &ans, 1, &err))) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            nn_fail(&err, "%s: %s", path, msg);
            rc = -1;
        }
        free(bytes);
        free(gray);
        if (rc) {
            fprintf(stderr, "digitd predict: %s\n", err.msg);
            failures++;
            continue;
        }
        int best = ans.digit;
        const float *probs = ans.probs;
        const char *why = nn_reason_name(ans.reason);
        if (json) {
            printf("{\"file\":\"");
            for (const char *p = path; *p; p++) {
                if (*p == '"' || *p == '\\') putchar('\\');
                if ((unsigned char)*p < 0x20) printf("\\u%04x", *p);
                else putchar(*p);
            }
            printf("\",\"digit\":%d,\"confidence\":%.4f,\"probabilities\":[", best, probs[best]);
            for (int k = 0; k < NN_CLASSES; k++) printf("%s%.6f", k ? "," : "", probs[k]);
            printf("],\"accepted\":%s", ans.accepted ? "true" : "false");
            if (why) printf(",\"reason\":\"%s\"", why);
            printf("}\n");
        } else if (ans.reason == NN_NOT_A_DIGIT_REASON) {
            printf("%s: not a digit (closest %d, %.1f%%)\n", path, best,
                   100.0 * probs[best]);
        } else if (ans.reason == NN_AMBIGUOUS) {
            printf("%s: ambiguous, %d or %d (%.1f%%, %.1f%%)\n", path, best,
                   ans.runner_up, 100.0 * probs[best],
                   100.0 * probs[ans.runner_up]);
        } else {
            printf("%s: %d (%.1f%%)\n", path, best, 100.0 * probs[best]);
        }
    }
    nn_net_free(net);
    return failures ? 1 : 0;
}
