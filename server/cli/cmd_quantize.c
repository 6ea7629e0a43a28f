/*
 * cmd_quantize.c: `digitd quantize IN OUT`: calibrates a trained model for
 * int8 inference (nn_quantize_calibrate on MNIST training images) and
 * writes it to OUT with the activation ranges in its metadata. The
 * weights stay float32 in the file: the int8 weights are derived from
 * them at load time, so OUT still loads and runs as the float32 model.
 */
#include <stdio.h>

#include "cli/options.h"
#include "commands.h"
#include "nn.h"

enum { O_DATA, O_CALIBRATION, O_PERCENTILE, O_THREADS, O_COUNT };
static const cli_option quantize_options[O_COUNT] = {
    [O_DATA] = CLI_OPTION_DATA,
    [O_CALIBRATION] = {"calibration", 'n', NULL, CLI_INT, "N", 1, 60000,
                       "2000", "calibrate on the first N training images"},
    [O_PERCENTILE] = {"percentile", 'p', NULL, CLI_DOUBLE, "P", 50.001, 100,
                      "100", "each tensor's range: this percentile of its "
                      "values (100: the maximum)"},
    [O_THREADS] = CLI_OPTION_THREADS,
};

static const cli_command quantize_command = {
    "quantize", "[OPTIONS] IN OUT",
    "Calibrates model IN for int8 inference on MNIST training images and\n"
    "writes it to OUT (IN may equal OUT). serve, eval and predict run OUT in\n"
    "int8 where the CPU has AVX512-VNNI (--precision auto) or when asked\n"
    "(--precision int8); --precision fp32 runs it as trained.",
    quantize_options, O_COUNT, 2, 2, NULL,
};

int cmd_quantize(int argc, char **argv) {
    cli_value v[O_COUNT] = {0};
    int rest, st = cli_parse(&quantize_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    const char *in = argv[rest], *out = argv[rest + 1];
    int n = (int)v[O_CALIBRATION].i;
    nn_error err;
    nn_net *net = nn_model_load(in, &err);
    if (!net) return cli_fail("quantize", "%s", err.msg); /* names the file */
    nn_dataset d = {0};
    nn_qnet *q = NULL;
    int rc = 1;
    if (nn_mnist_load(v[O_DATA].str, "train", &d, &err)) {
        cli_fail("quantize", "%s", err.msg);
        goto done;
    }
    if (n > d.n) n = d.n;
    if (nn_quantize_calibrate(net, d.images, n, v[O_PERCENTILE].d,
                              cli_threads(&v[O_THREADS]), &err)) {
        cli_fail("quantize", "%s", err.msg);
        goto done;
    }
    /* Refuse to write a file whose int8 form cannot be built. */
    q = nn_qnet_create(net, &err);
    if (!q) {
        cli_fail("quantize", "%s: %s", in, err.msg);
        goto done;
    }
    if (nn_model_save(net, out, &err)) {
        cli_fail("quantize", "%s", err.msg);
        goto done;
    }
    printf("%s: calibrated on %d training images (percentile %g), "
           "int8 kernel here: %s\n", out, n, v[O_PERCENTILE].d,
           nn_qnet_kernel(q));
    rc = 0;
done:
    nn_qnet_free(q);
    nn_dataset_free(&d);
    nn_net_free(net);
    return rc;
}
