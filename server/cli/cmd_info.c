/*
 * cmd_info.c: `digitd info [MODEL] [--json]`: what a model file holds:
 * name, architecture, parameter count, recorded accuracies, training
 * settings and time, creation date, file format version, size and SHA-256.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/options.h"
#include "commands.h"
#include "json_writer.h"
#include "nn.h"

/* Model files over this are refused before reading (the CNN is 3.4 MB). */
#define MAX_MODEL_BYTES ((size_t)1 << 30)

enum { O_JSON, O_COUNT };
static const cli_option info_options[O_COUNT] = {
    [O_JSON] = CLI_OPTION_JSON("one JSON object instead of text"),
};
static const cli_command info_command = {
    "info", "[OPTIONS] [MODEL]",
    "Shows what a model file holds: architecture, parameters, recorded\n"
    "accuracies, training settings, digest and format version. MODEL\n"
    "defaults to $DIGITD_MODEL, else the shipped models/default.model.",
    info_options, O_COUNT, 0, 1, NULL,
};

int cmd_info(int argc, char **argv) {
    cli_value v[O_COUNT] = {0};
    int rest, st = cli_parse(&info_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    char found[512];
    const char *env = getenv("DIGITD_MODEL");
    const char *path = rest < argc ? argv[rest]
                       : env && *env ? env
                                     : cli_data_path(CLI_DEFAULT_MODEL, found, sizeof found);
    nn_error err;
    uint8_t *bytes;
    size_t len;
    if (nn_read_file(path, MAX_MODEL_BYTES, &bytes, &len, &err))
        return cli_fail("info", "%s", err.msg);
    nn_net *net = nn_model_parse(bytes, len, &err);
    if (!net) {
        free(bytes);
        return cli_fail("info", "%s: %s", path, err.msg);
    }
    /* The format version is the u32 after the 8-byte magic (little-endian;
     * docs/model-format.md); nn_model_parse has checked it. */
    unsigned version = bytes[8] | bytes[9] << 8 | bytes[10] << 16 | (unsigned)bytes[11] << 24;
    uint8_t digest[32];
    nn_sha256(bytes, len, digest);
    free(bytes);
    char sha[65], arch[512], created[40] = "";
    for (int i = 0; i < 32; i++) snprintf(sha + 2 * i, 3, "%02x", digest[i]);
    nn_net_describe(net, arch, sizeof arch);
    const nn_meta *m = &net->meta;
    if (m->created_unix > 0) {
        time_t t = (time_t)m->created_unix;
        struct tm tm;
        if (gmtime_r(&t, &tm)) strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    int rc = 0;
    if (v[O_JSON].on) {
        text_buffer t;
        json_writer w;
        tb_init(&t, 1024);
        jw_init(&w, &t);
        jw_object(&w);
        jw_key(&w, "file"); jw_string(&w, path);
        jw_key(&w, "name"); jw_string(&w, m->name);
        jw_key(&w, "architecture"); jw_string(&w, arch);
        jw_key(&w, "layers"); jw_int(&w, net->n_layers);
        jw_key(&w, "parameters"); jw_int(&w, (long long)net->n_params);
        jw_key(&w, "test_accuracy");
        if (m->test_accuracy >= 0) jw_number(&w, m->test_accuracy); else jw_null(&w);
        jw_key(&w, "val_accuracy");
        if (m->val_accuracy >= 0) jw_number(&w, m->val_accuracy); else jw_null(&w);
        jw_key(&w, "train_seconds");
        if (m->train_seconds >= 0) jw_number(&w, m->train_seconds); else jw_null(&w);
        jw_key(&w, "created"); jw_string(&w, created[0] ? created : NULL);
        jw_key(&w, "settings"); jw_string(&w, m->settings[0] ? m->settings : NULL);
        jw_key(&w, "format_version"); jw_int(&w, version);
        jw_key(&w, "bytes"); jw_int(&w, (long long)len);
        jw_key(&w, "sha256"); jw_string(&w, sha);
        jw_end(&w);
        if (jw_print_line(&t, stdout)) rc = cli_fail("info", "cannot write the answer");
    } else {
        printf("file:            %s\n", path);
        printf("name:            %s\n", m->name);
        printf("architecture:    %s\n", arch);
        printf("parameters:      %zu in %d layers\n", net->n_params, net->n_layers);
        if (m->test_accuracy >= 0) printf("test accuracy:   %.4f (MNIST test)\n", m->test_accuracy);
        if (m->val_accuracy >= 0) printf("val accuracy:    %.4f (best epoch)\n", m->val_accuracy);
        if (m->train_seconds >= 0) printf("training time:   %.0f s\n", m->train_seconds);
        if (created[0]) printf("created:         %s\n", created);
        if (m->settings[0]) printf("settings:        %s\n", m->settings);
        printf("format version:  %u\n", version);
        printf("size:            %zu bytes\n", len);
        printf("sha256:          %s\n", sha);
    }
    nn_net_free(net);
    return rc;
}
