/* fuzz_model.c: the model file loader, nn_model_parse, on hostile bytes.
 *
 * Each input is parsed twice: as it is (so the fuzzer meets the checks
 * before and at the CRC), and with its last four bytes replaced by the
 * right CRC32 of the rest (so it gets past the checksum and reaches the
 * layer table, the parameters and the metadata, where a random mutation
 * would otherwise almost always stop at "CRC mismatch").
 *
 * A file that loads must describe a network that runs: a forward pass of
 * one input gives ten probabilities, and its metadata strings are
 * terminated. Refusals must come with a message. */
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "nn.h"

static void parse_one(const uint8_t *buf, size_t len) {
    nn_error err;
    err.msg[0] = '\0';
    nn_net *net = nn_model_parse(buf, len, &err);
    if (!net) {
        FUZZ_CHECK(err.msg[0] != '\0', "a refusal without a message");
        return;
    }
    FUZZ_CHECK(net->n_layers >= 1 && net->n_layers <= NN_MAX_LAYERS, "%d layers",
               net->n_layers);
    /* the parameters are in the file: 4 bytes each */
    FUZZ_CHECK(net->n_params <= len / 4, "%zu parameters from %zu bytes", net->n_params,
               len);
    const nn_layer *last = &net->layers[net->n_layers - 1];
    FUZZ_CHECK(last->kind == NN_DENSE && (nn_shape_size(last->out) == NN_CLASSES ||
                                          nn_shape_size(last->out) == NN_CLASSES + 1),
               "the last layer does not give 10 or 11 outputs");
    FUZZ_CHECK(strnlen(net->meta.name, sizeof net->meta.name) < sizeof net->meta.name &&
                   strnlen(net->meta.settings, sizeof net->meta.settings) <
                       sizeof net->meta.settings,
               "unterminated metadata");
    for (size_t i = 0; i < net->n_params; i++)
        FUZZ_CHECK(isfinite(net->params[i]), "parameter %zu is not finite", i);
    char arch[512];
    int need = nn_net_describe(net, arch, sizeof arch);
    FUZZ_CHECK(need > 0, "nn_net_describe returned %d", need);

    float x[NN_PIXELS], probs[NN_CLASSES];
    for (int i = 0; i < NN_PIXELS; i++) x[i] = (float)(i % 7) / 6.0f;
    FUZZ_CHECK(nn_predict(net, x, 1, probs, 1, &err) == 0, "nn_predict: %s", err.msg);
    nn_net_free(net);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size copies, so reads past the end are caught */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    parse_one(buf, size);
    if (size >= 4) {
        uLong crc = crc32_z(crc32(0L, Z_NULL, 0), buf, (z_size_t)(size - 4));
        for (int i = 0; i < 4; i++) buf[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        if (memcmp(buf, data, size) != 0) parse_one(buf, size);
    }
    free(buf);
    return 0;
}
