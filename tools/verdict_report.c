/*
 * verdict_report.c: how honest a model's answers are, on data no
 * training or threshold ever saw (the figures in models/README.md).
 *
 *   verdict_report [--int8] MODEL MNIST_DIR [FONT_DIR]
 *
 * Prints, for MNIST test: accuracy, acceptance, accuracy on the accepted,
 * ECE before and after temperature scaling; for held-out negatives
 * (held-out kinds and font families, seeds never used in training):
 * the share refused as not_a_digit, per kind; for each digit style
 * (nn/styles.c) applied alone to MNIST test digits with its own seed:
 * accuracy, acceptance and accuracy on the accepted. --int8: all of it
 * through the model's int8 form (digitd quantize's calibration).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define HELD_OUT_SEED 0x686f6e657374ULL /* never a training seed */
#define N_NEGATIVES 3000
#define N_PER_STYLE 1000

static const char *const kind_names[NN_NEG_KINDS] = {
    "scribble", "dots", "line", "glyph", "half-digit", "two-digits",
    "noise", "zigzag/wave", "star/hatching/triangle/asterisk",
};

/* Answers for x (n, 784): from q, net's int8 form, when given. */
static int classify(const nn_net *net, const nn_qnet *q, const float *x, int n,
                    nn_answer *a, nn_error *err) {
    return q ? nn_qnet_classify(q, net, x, n, a, 2, err) : nn_classify(net, x, n, a, 2, err);
}

static int report_negatives(const nn_net *net, const nn_qnet *q, const nn_negative_source *src,
                            const char *title, uint64_t seed) {
    float *x = malloc((size_t)N_NEGATIVES * NN_PIXELS * sizeof(float));
    int *kind = malloc(N_NEGATIVES * sizeof(int));
    nn_answer *a = malloc(N_NEGATIVES * sizeof(nn_answer));
    if (!x || !kind || !a) return 1;
    for (int i = 0; i < N_NEGATIVES; i++) {
        nn_rng g;
        nn_rng_seed(&g, seed + (uint64_t)i);
        kind[i] = nn_negative(src, &g, x + (size_t)i * NN_PIXELS);
    }
    nn_error err;
    if (classify(net, q, x, N_NEGATIVES, a, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int nd = 0, amb = 0, by_n[NN_NEG_KINDS] = {0}, by_nd[NN_NEG_KINDS] = {0};
    for (int i = 0; i < N_NEGATIVES; i++) {
        nd += a[i].reason == NN_NOT_A_DIGIT_REASON;
        amb += a[i].reason == NN_AMBIGUOUS;
        by_n[kind[i]]++;
        by_nd[kind[i]] += a[i].reason == NN_NOT_A_DIGIT_REASON;
    }
    printf("%s (%d): not_a_digit %.1f%%, ambiguous %.1f%%, accepted %.1f%%\n",
           title, N_NEGATIVES, 100.0 * nd / N_NEGATIVES,
           100.0 * amb / N_NEGATIVES, 100.0 * (N_NEGATIVES - nd - amb) / N_NEGATIVES);
    for (int k = 0; k < NN_NEG_KINDS; k++)
        if (by_n[k])
            printf("    %-34s %5d  not_a_digit %5.1f%%\n", kind_names[k],
                   by_n[k], 100.0 * by_nd[k] / by_n[k]);
    free(x);
    free(kind);
    free(a);
    return 0;
}

static int report_style(const nn_net *net, const nn_qnet *q, const nn_dataset *test, nn_style s) {
    float *x = malloc((size_t)N_PER_STYLE * NN_PIXELS * sizeof(float));
    uint8_t *y = malloc(N_PER_STYLE);
    nn_answer *a = malloc(N_PER_STYLE * sizeof(nn_answer));
    if (!x || !y || !a) return 1;
    int n = 0;
    for (int i = 0; i < test->n && n < N_PER_STYLE; i++) {
        nn_rng g;
        nn_rng_seed(&g, HELD_OUT_SEED ^ ((uint64_t)s << 32) ^ (uint64_t)i);
        int got = nn_style_apply(s, test->images + (size_t)i * NN_PIXELS,
                                 test->labels[i], x + (size_t)n * NN_PIXELS, &g);
        if (got < 0) continue;
        y[n++] = (uint8_t)got;
    }
    nn_error err;
    if (classify(net, q, x, n, a, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int right = 0, acc = 0, acc_right = 0;
    for (int i = 0; i < n; i++) {
        right += a[i].digit == y[i];
        acc += a[i].accepted;
        acc_right += a[i].accepted && a[i].digit == y[i];
    }
    printf("    %-14s %5d  accuracy %5.1f%%  accepted %5.1f%%  accuracy on accepted %5.1f%%\n",
           nn_style_name(s), n, 100.0 * right / (n ? n : 1),
           100.0 * acc / (n ? n : 1), 100.0 * acc_right / (acc ? acc : 1));
    free(x);
    free(y);
    free(a);
    return 0;
}

int main(int argc, char **argv) {
    const bool int8 = argc > 1 && strcmp(argv[1], "--int8") == 0;
    argc -= int8;
    argv += int8;
    if (argc < 3) {
        fprintf(stderr, "usage: verdict_report [--int8] MODEL MNIST_DIR [FONT_DIR]\n");
        return 2;
    }
    const char *font_dir = argc > 3 ? argv[3] : "/usr/share/hershey-fonts";
    nn_error err;
    nn_net *net = nn_model_load(argv[1], &err);
    nn_qnet *q = NULL;
    if (!net || (int8 && !(q = nn_qnet_create(net, &err)))) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        return 1;
    }
    nn_dataset test = {0};
    if (nn_mnist_load(argv[2], "t10k", &test, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    nn_eval_report r;
    if (nn_evaluate_verdicts(net, q, &test, 2, &r, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("model %s (%d outputs, %s), temperature %.3f, reject_p %.3f, "
           "reject_energy %.3f, ambiguous_margin %.3f\n",
           net->meta.name, nn_net_outputs(net), q ? "int8" : "fp32", net->meta.temperature,
           net->meta.reject_p, net->meta.reject_energy,
           net->meta.ambiguous_margin);
    printf("MNIST test: accuracy %.2f%%, accepted %.2f%% (not_a_digit %.2f%%, "
           "ambiguous %.2f%%), accuracy on accepted %.2f%%, ECE %.2f%% "
           "(uncalibrated %.2f%%)\n",
           100 * r.accuracy, 100 * r.acceptance, 100 * r.not_digit_rate,
           100 * r.ambiguous_rate, 100 * r.accepted_accuracy, 100 * r.ece,
           100 * r.ece_raw);

    nn_font *fonts[16];
    int nf = nn_fonts_load_set(font_dir, true, fonts, 16, &err);
    if (nf < 0) fprintf(stderr, "held-out fonts: %s\n", err.msg);
    /* Held-out digits to cut and pair are MNIST test digits: training
     * cut and paired training digits only. */
    nn_negative_source held = {fonts, nf > 0 ? nf : 0, &test, true};
    if (report_negatives(net, q, &held, "held-out negatives (held-out kinds and fonts)",
                         HELD_OUT_SEED))
        return 1;
    nn_font *tfonts[16];
    int ntf = nn_fonts_load_set(font_dir, false, tfonts, 16, &err);
    nn_negative_source same = {tfonts, ntf > 0 ? ntf : 0, &test, false};
    if (report_negatives(net, q, &same, "training kinds, unseen seeds and digits",
                         HELD_OUT_SEED ^ 0xffff))
        return 1;
    printf("digit styles on MNIST test digits (held-out seeds):\n");
    for (int s = 0; s < NN_STYLE_COUNT; s++)
        if (report_style(net, q, &test, (nn_style)s)) return 1;
    for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
    for (int i = 0; i < ntf; i++) nn_font_free(tfonts[i]);
    nn_dataset_free(&test);
    nn_qnet_free(q);
    nn_net_free(net);
    return 0;
}
