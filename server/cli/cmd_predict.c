/*
 * cmd_predict.c: `digitd predict IMAGE...`: the server's pipeline from the
 * shell: image_to_input (the same function the daemon uses: decode with
 * the same decoders and limits, normalise), then nn_predict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"
#include "commands.h"
#include "image_decode.h"
#include "json_writer.h"
#include "nn.h"
#include "predict_request.h"

/* Image files larger than this are refused before reading. */
#define MAX_FILE_BYTES ((size_t)64 << 20)

enum { O_MODEL, O_JSON, O_MAX_SIDE, O_PRECISION, O_COUNT };
static const cli_option predict_options[O_COUNT] = {
    [O_MODEL] = CLI_OPTION_MODEL,
    [O_JSON] = CLI_OPTION_JSON("one JSON object per line: file, digit, "
                               "confidence, probabilities"),
    [O_MAX_SIDE] = CLI_OPTION_MAX_IMAGE_SIDE,
    [O_PRECISION] = CLI_OPTION_PRECISION,
};
static const cli_command predict_command = {
    "predict", "[OPTIONS] IMAGE...",
    "Classifies PNG, JPEG, BMP or GIF files of a digit (either polarity,\n"
    "any size), with the same preprocessing as the server.",
    predict_options, O_COUNT, 1, -1, NULL,
};

int cmd_predict(int argc, char **argv) {
    cli_value v[O_COUNT] = {0};
    int optind, st = cli_parse(&predict_command, argc, argv, v, &optind);
    if (st >= 0) return st;
    const char *model = v[O_MODEL].str;
    const bool json = v[O_JSON].on;
    nn_error err;
    nn_net *net = nn_model_load(model, &err);
    if (!net) {
        return cli_fail("predict", "%s", err.msg); /* err names the file */
    }
    (void)nn_net_prepare(net, &err); /* faster; without, the same answers */
    nn_qnet *q = NULL;
    if (cli_int8(&v[O_PRECISION], nn_net_has_int8(net)) && !(q = nn_qnet_create(net, &err))) {
        nn_net_free(net);
        return cli_fail("predict", "%s: %s", model, err.msg);
    }
    int failures = 0;
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        uint8_t *bytes = NULL;
        size_t len;
        float input[NN_PIXELS];
        nn_answer ans;
        /* Each file is one request with the server's limits. */
        image_limits lim = {(int)v[O_MAX_SIDE].i, (int)v[O_MAX_SIDE].i,
                            PREDICT_DEFAULT_MAX_PIXELS};
        /* nn_read_file's messages name the file already. */
        int rc = nn_read_file(path, MAX_FILE_BYTES, &bytes, &len, &err);
        if (rc == 0 && (image_to_input(bytes, len, &lim, input, &err) != IMAGE_OK ||
                        (q ? nn_qnet_classify(q, net, input, 1, &ans, 1, &err)
                           : nn_classify(net, input, 1, &ans, 1, &err)))) {
            char msg[sizeof err.msg];
            snprintf(msg, sizeof msg, "%s", err.msg);
            nn_fail(&err, "%s: %s", path, msg);
            rc = -1;
        }
        free(bytes);
        if (rc) {
            fprintf(stderr, "digitd predict: %s\n", err.msg);
            failures++;
            continue;
        }
        int best = ans.digit;
        const float *probs = ans.probs;
        const char *why = nn_reason_name(ans.reason);
        if (json) {
            text_buffer t;
            json_writer jw;
            tb_init(&t, 512);
            jw_init(&jw, &t);
            jw_object(&jw);
            jw_key(&jw, "file"); jw_string(&jw, path);
            jw_key(&jw, "digit"); jw_int(&jw, best);
            jw_key(&jw, "confidence"); jw_number(&jw, (double)probs[best]);
            jw_key(&jw, "probabilities"); jw_floats(&jw, probs, NN_CLASSES);
            jw_key(&jw, "accepted"); jw_bool(&jw, ans.accepted);
            if (why) {
                jw_key(&jw, "reason"); jw_string(&jw, why);
            }
            jw_end(&jw);
            if (jw_print_line(&t, stdout)) failures++;
        } else {
            if (ans.reason == NN_NOT_A_DIGIT_REASON)
                printf("%s: not a digit (closest %d, %.1f%%)\n", path, best,
                       100.0 * probs[best]);
            else if (ans.reason == NN_AMBIGUOUS)
                printf("%s: ambiguous, %d or %d (%.1f%%, %.1f%%)\n", path, best,
                       ans.runner_up, 100.0 * probs[best], 100.0 * probs[ans.runner_up]);
            else
                printf("%s: %d (%.1f%%)\n", path, best, 100.0 * probs[best]);
        }
    }
    nn_qnet_free(q);
    nn_net_free(net);
    return failures ? 1 : 0;
}
