/*
 * cmd_eval.c: `digitd eval`: a model's accuracy on an IDX set, with
 * per-class precision and recall and the confusion matrix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"
#include "cli/report_files.h"
#include "cli/svg_chart.h"
#include "commands.h"
#include "json_writer.h"
#include "nn.h"

enum { O_MODEL, O_DATA, O_SET, O_THREADS, O_JSON, O_REPORT, O_PRECISION, O_COUNT };
static const cli_option eval_options[O_COUNT] = {
    [O_MODEL] = CLI_OPTION_MODEL,
    [O_DATA] = CLI_OPTION_DATA,
    [O_SET] = {"set", 's', NULL, CLI_CHOICE, "t10k|train", 0, 0, "t10k",
               "t10k is the test set, train the training set"},
    [O_THREADS] = CLI_OPTION_THREADS,
    [O_JSON] = CLI_OPTION_JSON("one JSON object instead of text"),
    [O_PRECISION] = CLI_OPTION_PRECISION,
    [O_REPORT] = {"report", 'r', NULL, CLI_STRING, "DIR", 0, 0, NULL,
                  "also write pictures to DIR: confusion.svg, misclassified.svg "
                  "(the first 100 wrong digits, true and predicted labels) and "
                  "index.html"},
};

/* The misclassified digits shown in the report's grid, at most. */
#define REPORT_MAX_SHOWN 100

/* Writes DIR/confusion.svg, DIR/misclassified.svg and DIR/index.html.
 * Classifies d again in chunks to find the wrong answers (nn_evaluate only
 * counts them). Returns 0, or 1 after reporting an error. */
static int write_report(const char *dir, const nn_net *net, const nn_qnet *q,
                        const char *model_path, const nn_dataset *d, const char *set, int threads,
                        const int cm[NN_CLASSES][NN_CLASSES], double acc) {
    enum { CHUNK = 256 };
    float *probs = malloc(sizeof(float) * CHUNK * NN_CLASSES);
    float *shown = malloc(sizeof(float) * NN_PIXELS * REPORT_MAX_SHOWN);
    char(*captions)[48] = malloc(sizeof *captions * REPORT_MAX_SHOWN);
    const char *caption_ptrs[REPORT_MAX_SHOWN];
    int n_shown = 0, n_wrong = 0, rc = 0;
    nn_error err;
    if (!probs || !shown || !captions) {
        rc = cli_fail("eval", "out of memory for the report");
        goto done;
    }
    for (int i = 0; i < d->n; i += CHUNK) {
        int b = d->n - i < CHUNK ? d->n - i : CHUNK;
        const float *x = d->images + (size_t)i * NN_PIXELS;
        if (q ? nn_qnet_predict(q, x, b, probs, threads, &err)
              : nn_predict(net, x, b, probs, threads, &err)) {
            rc = cli_fail("eval", "%s", err.msg);
            goto done;
        }
        for (int k = 0; k < b; k++) {
            const float *p = probs + (size_t)k * NN_CLASSES;
            int best = 0;
            for (int c = 1; c < NN_CLASSES; c++) best = p[c] > p[best] ? c : best;
            int truth = d->labels[i + k];
            if (best == truth) continue;
            n_wrong++;
            if (n_shown == REPORT_MAX_SHOWN) continue;
            memcpy(shown + (size_t)n_shown * NN_PIXELS, d->images + (size_t)(i + k) * NN_PIXELS,
                   sizeof(float) * NN_PIXELS);
            snprintf(captions[n_shown], sizeof captions[n_shown], "#%d: %d as %d",
                     i + k, truth, best);
            caption_ptrs[n_shown] = captions[n_shown];
            n_shown++;
        }
    }
    if (report_dir("eval", dir)) {
        rc = 1;
        goto done;
    }
    char title[160];
    FILE *f = report_open("eval", dir, "confusion.svg");
    if (!f) { rc = 1; goto done; }
    snprintf(title, sizeof title, "Confusion matrix, MNIST %s (accuracy %.2f%%)", set, 100 * acc);
    svg_confusion(f, title, cm);
    if (report_close("eval", dir, "confusion.svg", f)) { rc = 1; goto done; }
    f = report_open("eval", dir, "misclassified.svg");
    if (!f) { rc = 1; goto done; }
    snprintf(title, sizeof title, "Misclassified: %d of %d%s (sample #: true as predicted)",
             n_wrong, d->n, n_wrong > n_shown ? ", the first 100" : "");
    svg_digit_grid(f, title, shown, caption_ptrs, n_shown, 10);
    if (report_close("eval", dir, "misclassified.svg", f)) { rc = 1; goto done; }
    f = report_open("eval", dir, "index.html");
    if (!f) { rc = 1; goto done; }
    snprintf(title, sizeof title, "Evaluation of %.100s", net->meta.name);
    report_html_begin(f, title);
    fputs("<p>Model file <code>", f);
    report_html_text(f, model_path);
    fprintf(f, "</code> on MNIST %s: accuracy <strong>%.2f%%</strong> (%d of %d wrong).</p>\n"
               "<h2>Confusion matrix</h2>\n<p class=\"muted\">Rows: the true digit; "
               "columns: the model's answer. The diagonal holds the right answers.</p>\n"
               "<p><img src=\"confusion.svg\" alt=\"confusion matrix\"></p>\n"
               "<h2>Misclassified digits</h2>\n<p class=\"muted\">Each caption: the "
               "sample's index in the set, its true digit, and what the model said.</p>\n"
               "<p><img src=\"misclassified.svg\" alt=\"grid of misclassified digits\"></p>\n",
            set, 100 * acc, n_wrong, d->n);
    report_html_end(f);
    if (report_close("eval", dir, "index.html", f)) { rc = 1; goto done; }
    fprintf(stderr, "digitd eval: wrote %s/index.html, confusion.svg, misclassified.svg\n", dir);
done:
    free(probs);
    free(shown);
    free(captions);
    return rc;
}
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
    (void)nn_net_prepare(net, &err); /* faster; without, the same answers */
    nn_dataset d = {0};
    if (nn_mnist_load(data, set, &d, &err)) {
        cli_fail("eval", "%s", err.msg);
        nn_net_free(net);
        return 1;
    }
    int cm[NN_CLASSES][NN_CLASSES];
    double acc = -1;
    nn_eval_report vr; /* verdicts and calibration (nn/verdict.c) */
    /* --precision: what serve would run (int8 needs a calibration) */
    nn_qnet *q = NULL;
    if (!cli_int8(&v[O_PRECISION], nn_net_has_int8(net)) || (q = nn_qnet_create(net, &err)))
        acc = q ? nn_qnet_evaluate(q, &d, cm, &err) : nn_evaluate(net, &d, threads, cm, &err);
    if (acc < 0 || nn_evaluate_verdicts(net, q, &d, threads, &vr, &err)) {
        cli_fail("eval", "%s: %s", model, err.msg);
        nn_qnet_free(q);
        nn_dataset_free(&d);
        nn_net_free(net);
        return 1;
    }
    const char *precision_name = q ? "int8" : "fp32";
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
        jw_key(&w, "inference_precision"); jw_string(&w, precision_name);
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
        jw_key(&w, "acceptance"); jw_number(&w, vr.acceptance);
        jw_key(&w, "accepted_accuracy"); jw_number(&w, vr.accepted_accuracy);
        jw_key(&w, "not_a_digit_rate"); jw_number(&w, vr.not_digit_rate);
        jw_key(&w, "ambiguous_rate"); jw_number(&w, vr.ambiguous_rate);
        jw_key(&w, "ece"); jw_number(&w, vr.ece);
        jw_key(&w, "ece_uncalibrated"); jw_number(&w, vr.ece_raw);
        jw_key(&w, "temperature"); jw_number(&w, vr.temperature);
        jw_end(&w);
        if (jw_print_line(&t, stdout)) {
            fprintf(stderr, "digitd eval: cannot write the JSON answer\n");
            status = 1;
        }
    } else {
        printf("model: %s (%s)\n", net->meta.name, precision_name);
        printf("accuracy: %.4f (%d/%d)\n", acc, right, d.n);
        printf("acceptance rate: %.4f  accuracy on accepted: %.4f  "
               "(refused: not_a_digit %.4f, ambiguous %.4f)\n",
               vr.acceptance, vr.accepted_accuracy, vr.not_digit_rate, vr.ambiguous_rate);
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
    if (v[O_REPORT].str && write_report(v[O_REPORT].str, net, q, model, &d, set, threads,
                                        (const int(*)[NN_CLASSES])cm, acc))
        status = 1;
    nn_qnet_free(q);
    nn_dataset_free(&d);
    nn_net_free(net);
    return status;
}
