/*
 * cmd_eval.c: `digitd eval`: a model's accuracy on an IDX set, with
 * per-class precision and recall and the confusion matrix.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "nn.h"

static void usage(FILE *to) {
    fprintf(to,
        "usage: digitd eval [--model FILE] [--data DIR] [--set t10k|train] [--json]\n"
        "Prints the model's accuracy on an MNIST set, per-class precision and\n"
        "recall, and the confusion matrix (rows: true digit, columns: predicted).\n\n"
        "  --model FILE   (default $DIGITD_MODEL or models/default.model)\n"
        "  --data DIR     MNIST IDX files, raw or .gz (default $DIGITD_MNIST_DIR or data/mnist)\n"
        "  --set NAME     t10k (the test set, default) or train\n"
        "  --threads N    (default: all cores)\n"
        "  --json         one JSON object instead of text\n");
}

int cmd_eval(int argc, char **argv) {
    const char *model = cli_env("DIGITD_MODEL", "models/default.model");
    const char *data = cli_env("DIGITD_MNIST_DIR", "data/mnist");
    const char *set = "t10k";
    bool json = false;
    long threads = cli_cores();
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"set", required_argument, 0, 's'},   {"threads", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:s:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 's': set = optarg; break;
        case 't':
            if (cli_int(optarg, "--threads", 1, 256, &threads)) return 2;
            break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || (strcmp(set, "t10k") && strcmp(set, "train"))) {
        usage(stderr);
        return 2;
    }
    nn_error err;
    nn_net *net = nn_model_load(model, &err);
    if (!net) {
        fprintf(stderr, "digitd eval: %s: %s\n", model, err.msg);
        return 1;
    }
    nn_dataset d = {0};
    if (nn_mnist_load(data, set, &d, &err)) {
        fprintf(stderr, "digitd eval: %s\n", err.msg);
        nn_net_free(net);
        return 1;
    }
    int cm[NN_CLASSES][NN_CLASSES];
    double acc = nn_evaluate(net, &d, (int)threads, cm, &err);
    if (acc < 0) {
        fprintf(stderr, "digitd eval: %s\n", err.msg);
        nn_dataset_free(&d);
        nn_net_free(net);
        return 1;
    }
    nn_eval_report vr; /* verdicts and calibration (nn/verdict.c) */
    if (nn_evaluate_verdicts(net, &d, (int)threads, &vr, &err)) {
        fprintf(stderr, "digitd eval: %s\n", err.msg);
        nn_dataset_free(&d);
        nn_net_free(net);
        return 1;
    }
    int right = 0;
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
        printf("{\"model\":\"%s\",\"set\":\"%s\",\"accuracy\":%.6f,\"correct\":%d,\"total\":%d,",
               net->meta.name, set, acc, right, d.n);
        printf("\"precision\":[");
        for (int k = 0; k < NN_CLASSES; k++) printf("%s%.6f", k ? "," : "", precision[k]);
        printf("],\"recall\":[");
        for (int k = 0; k < NN_CLASSES; k++) printf("%s%.6f", k ? "," : "", recall[k]);
        printf("],\"confusion\":[");
        for (int k = 0; k < NN_CLASSES; k++) {
            printf("%s[", k ? "," : "");
            for (int j = 0; j < NN_CLASSES; j++) printf("%s%d", j ? "," : "", cm[k][j]);
            printf("]");
        }
        printf("],\"acceptance\":%.6f,\"accepted_accuracy\":%.6f,"
               "\"not_a_digit_rate\":%.6f,\"ambiguous_rate\":%.6f,"
               "\"ece\":%.6f,\"ece_uncalibrated\":%.6f,\"temperature\":%.6f}\n",
               vr.acceptance, vr.accepted_accuracy, vr.not_digit_rate,
               vr.ambiguous_rate, vr.ece, vr.ece_raw, vr.temperature);
    } else {
        printf("model: %s\n", net->meta.name);
        printf("accuracy: %.4f (%d/%d)\n", acc, right, d.n);
        printf("acceptance rate: %.4f  accuracy on accepted: %.4f  "
               "(refused: not_a_digit %.4f, ambiguous %.4f)\n",
               vr.acceptance, vr.accepted_accuracy, vr.not_digit_rate,
               vr.ambiguous_rate);
        printf("ECE (15 bins): %.4f uncalibrated, %.4f with temperature %.3f\n\n",
               vr.ece_raw, vr.ece, vr.temperature);
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
    return 0;
}
