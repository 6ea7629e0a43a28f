/*
 * cmd_eval.c: `digitd eval`: a model's accuracy on an IDX set, with
 * per-class precision and recall and the confusion matrix.
 */
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "commands.h"
#include "json_writer.h"
#include "nn.h"

enum { O_MODEL, O_DATA, O_SET, O_THREADS, O_JSON, O_COUNT };
static const cli_option eval_options[O_COUNT] = {
    [O_MODEL] = CLI_OPTION_MODEL,
    [O_DATA] = CLI_OPTION_DATA,
    [O_SET] = {"set", 's', NULL, CLI_CHOICE, "t10k|train", 0, 0, "t10k",
               "t10k is the test set, train the training set"},
    [O_THREADS] = CLI_OPTION_THREADS,
    [O_JSON] = CLI_OPTION_JSON("one JSON object instead of text"),
};
static const cli_command eval_command = {
    "eval", "[OPTIONS]",
    "Prints the model's accuracy on an MNIST set, per-class precision and\n"
    "recall, and the confusion matrix (rows: true digit, columns: predicted).",
    eval_options, O_COUNT, 0, 0, NULL,
};

int cmd_eval(int argc, char **argv) {
    cli_value v[O_COUNT] = {0};
    int rest, st = cli_parse(&eval_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    const char *model = v[O_MODEL].str, *data = v[O_DATA].str;
    const char *set = v[O_SET].i == 0 ? "t10k" : "train";
    const bool json = v[O_JSON].on;
    const int threads = cli_threads(&v[O_THREADS]);
    nn_error err;
    nn_net *net = nn_model_load(model, &err);
    if (!net) {
        return cli_fail("eval", "%s", err.msg); /* err names the file */
    }
    nn_dataset d = {0};
    if (nn_mnist_load(data, set, &d, &err)) {
        cli_fail("eval", "%s", err.msg);
        nn_net_free(net);
        return 1;
    }
    int cm[NN_CLASSES][NN_CLASSES];
    double acc = nn_evaluate(net, &d, threads, cm, &err);
    if (acc < 0) {
        cli_fail("eval", "%s", err.msg);
        nn_dataset_free(&d);
        nn_net_free(net);
        return 1;
    }
    int right = 0, status = 0;
    double precision[NN_CLASSES], recall[NN_CLASSES];
    for (int k = 0; k < NN_CLASSES; k++) {
        int row = 0, col = 0;
        for (int j = 0; j < NN_CLASSES; j++) {
            row += cm[k][j];
            col += cm[j][k];
        }
        right += cm[k][k];
        precision[k] = col ? (double)cm[k][k] / col : 0;
        recall[k] = row ? (double)cm[k][k] / row : 0;
    }
    if (json) {
        text_buffer t;
        json_writer w;
        tb_init(&t, 2048);
        jw_init(&w, &t);
        jw_object(&w);
        jw_key(&w, "model"); jw_string(&w, net->meta.name);
        jw_key(&w, "set"); jw_string(&w, set);
        jw_key(&w, "accuracy"); jw_number(&w, acc);
        jw_key(&w, "correct"); jw_int(&w, right);
        jw_key(&w, "total"); jw_int(&w, d.n);
        jw_key(&w, "precision"); jw_array(&w);
        for (int k = 0; k < NN_CLASSES; k++) jw_number(&w, precision[k]);
        jw_end(&w);
        jw_key(&w, "recall"); jw_array(&w);
        for (int k = 0; k < NN_CLASSES; k++) jw_number(&w, recall[k]);
        jw_end(&w);
        jw_key(&w, "confusion"); jw_array(&w);
        for (int k = 0; k < NN_CLASSES; k++) jw_ints(&w, cm[k], NN_CLASSES);
        jw_end(&w);
        jw_end(&w);
        if (jw_print_line(&t, stdout)) {
            fprintf(stderr, "digitd eval: cannot write the JSON answer\n");
            status = 1;
        }
    } else {
        printf("model: %s\n", net->meta.name);
        printf("accuracy: %.4f (%d/%d)\n\n", acc, right, d.n);
        printf("digit  precision  recall\n");
        for (int k = 0; k < NN_CLASSES; k++)
            printf("%5d  %9.4f  %6.4f\n", k, precision[k], recall[k]);
        printf("\nconfusion (rows: true, columns: predicted)\n      ");
        for (int j = 0; j < NN_CLASSES; j++) printf("%6d", j);
        printf("\n");
        for (int k = 0; k < NN_CLASSES; k++) {
            printf("%6d", k);
            for (int j = 0; j < NN_CLASSES; j++) printf("%6d", cm[k][j]);
            printf("\n");
        }
    }
    nn_dataset_free(&d);
    nn_net_free(net);
    return status;
}
