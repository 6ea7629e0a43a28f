/*
 * verdict.c: is the input a digit, which one, and how sure.
 *
 * Every caller (the daemon, `digitd predict`, `digitd eval`) asks
 * nn_classify, so one rule decides everywhere. docs/verdict.md explains
 * the design; in short, for logits z (10 digits, and an 11th "not a
 * digit" output when the model has one) and the model's temperature T:
 *
 *   probs      = softmax(z[0..9] / T)        what `probabilities` reports
 *   p_not      = softmax(z / T)[10]          share of the 11th output
 *   energy     = -T log sum_d exp(z_d / T)   high when no digit fits
 *
 * A calibrated model (ambiguous_margin >= 0 in its metadata) refuses as
 * not_a_digit when p_not >= reject_p or energy > reject_energy, and as
 * ambiguous when probs[top1] - probs[top2] < ambiguous_margin. A model
 * without calibration keeps the softmax-only rule: not_a_digit when the
 * 11th output is the most probable, ambiguous when confidence < 0.6 (the
 * page's old "Not sure" line).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "int8.h"
#include "layers.h"
#include "nn.h"

/* The softmax-only rule's confidence floor. */
#define UNCALIBRATED_MIN_CONFIDENCE 0.6f

void digit_probs(float *probs, const float *logits, int B, int n_out,
                 float T) {
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * n_out;
        float s[NN_CLASSES];
        /* T == 1 copies, so the result is bit for bit softmax_forward's. */
        for (int c = 0; c < NN_CLASSES; c++) s[c] = T == 1.0f ? z[c] : z[c] / T;
        softmax_forward(probs + (size_t)r * NN_CLASSES, s, 1, NN_CLASSES);
    }
}

int nn_net_copy_params(nn_net *dst, const nn_net *src, nn_error *err) {
    /* New weights: what nn_net_prepare made of the old ones is stale. */
    for (int i = 0; i < NN_MAX_LAYERS; i++) {
        free(dst->prepared[i]);
        dst->prepared[i] = NULL;
    }
    if (dst->n_layers != src->n_layers)
        return nn_fail(err, "the starting model has %d layers, the new one %d",
                       src->n_layers, dst->n_layers);
    int last = dst->n_layers - 1;
    for (int i = 0; i < dst->n_layers; i++) {
        const nn_layer *a = &dst->layers[i], *b = &src->layers[i];
        bool widen = i == last && a->size == NN_CLASSES + 1 &&
                     b->size == NN_CLASSES;
        if (a->kind != b->kind || a->kernel != b->kernel || a->pad != b->pad ||
            (a->size != b->size && !widen) ||
            nn_shape_size(a->in) != nn_shape_size(b->in))
            return nn_fail(err, "the starting model differs at layer %d", i + 1);
    }
    for (int i = 0; i < dst->n_layers; i++) {
        const nn_layer *a = &dst->layers[i], *b = &src->layers[i];
        /* weights (out, in) row-major: the first rows are the same outputs */
        memcpy(dst->params + a->weights, src->params + b->weights,
               b->n_weights * sizeof(float));
        memcpy(dst->params + a->biases, src->params + b->biases,
               b->n_biases * sizeof(float));
    }
    return 0;
}

const char *nn_reason_name(nn_reason r) {
    switch (r) {
    case NN_NOT_A_DIGIT_REASON: return "not_a_digit";
    case NN_AMBIGUOUS: return "ambiguous";
    case NN_ACCEPTED: break;
    }
    return NULL;
}

static float model_temperature(const nn_meta *m) {
    return m->temperature > 0 && isfinite(m->temperature)
               ? (float)m->temperature
               : 1.0f;
}

void nn_verdict_from_logits(const nn_meta *m, const float *z, int n_out,
                            nn_answer *a) {
    float T = model_temperature(m);
    memset(a, 0, sizeof *a);
    digit_probs(a->probs, z, 1, n_out, T);
    int d = 0;
    for (int c = 1; c < NN_CLASSES; c++) d = a->probs[c] > a->probs[d] ? c : d;
    int r = d == 0 ? 1 : 0;
    for (int c = 0; c < NN_CLASSES; c++)
        if (c != d && a->probs[c] > a->probs[r]) r = c;
    a->digit = d;
    a->runner_up = r;
    a->confidence = a->probs[d];

    /* log-sum-exp over the digits (and over all outputs), max first. */
    double zmax = z[0] / T;
    for (int c = 1; c < n_out; c++) zmax = fmax(zmax, z[c] / T);
    double sum_digits = 0;
    for (int c = 0; c < NN_CLASSES; c++) sum_digits += exp(z[c] / T - zmax);
    a->energy = (float)(-T * (zmax + log(sum_digits)));
    a->p_not_digit = -1;
    bool not_top = false;
    if (n_out > NN_CLASSES) {
        double e_not = exp(z[NN_CLASSES] / T - zmax);
        a->p_not_digit = (float)(e_not / (sum_digits + e_not));
        /* the 11th output beats every digit */
        not_top = z[NN_CLASSES] > z[d];
    }

    a->accepted = false;
    if (m->ambiguous_margin >= 0) {
        if ((m->reject_p >= 0 && a->p_not_digit >= m->reject_p) ||
            a->energy > m->reject_energy)
            a->reason = NN_NOT_A_DIGIT_REASON;
        else if (a->probs[d] - a->probs[r] < m->ambiguous_margin)
            a->reason = NN_AMBIGUOUS;
        else
            a->accepted = true;
    } else {
        if (not_top)
            a->reason = NN_NOT_A_DIGIT_REASON;
        else if (a->confidence < UNCALIBRATED_MIN_CONFIDENCE)
            a->reason = NN_AMBIGUOUS;
        else
            a->accepted = true;
    }
    if (a->accepted) a->reason = NN_ACCEPTED;
}

int nn_classify(const nn_net *net, const float *x, int B, nn_answer *out,
                int threads, nn_error *err) {
    enum { CHUNK = 256 };
    if (B < 1) return 0;
    int K = nn_net_outputs(net);
    float *z = malloc((size_t)(B < CHUNK ? B : CHUNK) * K * sizeof(float));
    if (!z) return nn_fail(err, "out of memory for logits");
    for (int first = 0; first < B; first += CHUNK) {
        int b = B - first < CHUNK ? B - first : CHUNK;
        if (nn_logits(net, x + (size_t)first * NN_PIXELS, b, z, threads,
                      err)) {
            free(z);
            return -1;
        }
        for (int r = 0; r < b; r++)
            nn_verdict_from_logits(&net->meta, z + (size_t)r * K, K,
                                   &out[first + r]);
    }
    free(z);
    return 0;
}

/* ================================================================== */
/* Calibration on the validation split                                 */
/* ================================================================== */

double nn_ece15(const float *conf, const uint8_t *correct, int n) {
    enum { BINS = 15 };
    double sum_conf[BINS] = {0}, sum_right[BINS] = {0};
    int count[BINS] = {0};
    for (int i = 0; i < n; i++) {
        int b = (int)(conf[i] * BINS);
        b = b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
        sum_conf[b] += conf[i];
        sum_right[b] += correct[i];
        count[b]++;
    }
    double ece = 0;
    for (int b = 0; b < BINS; b++)
        if (count[b]) ece += fabs(sum_right[b] - sum_conf[b]);
    return n ? ece / n : 0;
}

/* All logits of d, from q when given, else from net: a new (d->n, K)
 * array, or NULL with err. */
static float *all_logits(const nn_net *net, const nn_qnet *q, const nn_dataset *d,
                         int threads, nn_error *err) {
    int K = nn_net_outputs(net);
    float *z = malloc(((size_t)d->n * K + 1) * sizeof(float));
    if (!z) {
        nn_fail(err, "out of memory for %d logits", d->n);
        return NULL;
    }
    if (q ? int8_qnet_logits(q, d->images, d->n, z, threads, err)
          : nn_logits(net, d->images, d->n, z, threads, err)) {
        free(z);
        return NULL;
    }
    return z;
}

/* Mean negative log-likelihood of the true digit under softmax(z/T) over
 * the ten digits. z (n, K), labels 0..9. */
static double digit_nll(const float *z, const uint8_t *labels, int n, int K,
                        double T) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *r = z + (size_t)i * K;
        double m = r[0] / T;
        for (int c = 1; c < NN_CLASSES; c++) m = fmax(m, r[c] / T);
        double s = 0;
        for (int c = 0; c < NN_CLASSES; c++) s += exp(r[c] / T - m);
        total += m + log(s) - r[labels[i]] / T;
    }
    return n ? total / n : 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v (n > 0), sorting v in place. */
static float quantile(float *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    int k = (int)(q * (n - 1) + 0.5);
    k = k < 0 ? 0 : k >= n ? n - 1 : k;
    return v[k];
}

int nn_calibrate(nn_net *net, const nn_dataset *digits, double max_reject,
                 int threads, nn_error *err) {
    if (!digits || digits->n < 100)
        return nn_fail(err, "calibration needs at least 100 validation digits");
    if (!(max_reject > 0 && max_reject < 0.5))
        return nn_fail(err, "calibration: the refusal budget must be in (0, 0.5)");
    for (int i = 0; i < digits->n; i++)
        if (digits->labels[i] >= NN_CLASSES)
            return nn_fail(err, "calibration: digit %d has label %d", i,
                           digits->labels[i]);
    int K = nn_net_outputs(net), n = digits->n;
    float *z = all_logits(net, NULL, digits, threads, err);
    if (!z) return -1;
    float *v = malloc((size_t)n * sizeof(float));
    nn_answer *a = malloc((size_t)n * sizeof(nn_answer));
    if (!v || !a) {
        free(z);
        free(v);
        free(a);
        return nn_fail(err, "out of memory for calibration");
    }

    /* 1. Temperature: golden-section search of the NLL over log T in
     * [log 0.25, log 8]; the NLL of temperature scaling is unimodal in T. */
    double lo = log(0.25), hi = log(8.0), g = 0.5 * (sqrt(5.0) - 1);
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = digit_nll(z, digits->labels, n, K, exp(x1));
    double f2 = digit_nll(z, digits->labels, n, K, exp(x2));
    for (int it = 0; it < 40; it++) {
        if (f1 < f2) {
            hi = x2, x2 = x1, f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = digit_nll(z, digits->labels, n, K, exp(x1));
        } else {
            lo = x1, x1 = x2, f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = digit_nll(z, digits->labels, n, K, exp(x2));
        }
    }
    nn_meta *m = &net->meta;
    m->temperature = exp(0.5 * (lo + hi));
    m->reject_p = -1;
    m->reject_energy = INFINITY;
    m->ambiguous_margin = -1;
    for (int i = 0; i < n; i++)
        nn_verdict_from_logits(m, z + (size_t)i * K, K, &a[i]);

    /* 2. not_a_digit: half the budget. With an 11th output, p_not at the
     * (1 - budget) quantile of the digits, kept within [0.05, 0.5] so a
     * digit never loses to a small share and "not a digit" never needs
     * a majority; the energy then only catches the far-out (0.1%). A
     * 10-output model has the energy alone. */
    double half = max_reject / 2;
    if (K > NN_CLASSES) {
        for (int i = 0; i < n; i++) v[i] = a[i].p_not_digit;
        float q = quantile(v, n, 1 - half);
        m->reject_p = q < 0.05f ? 0.05 : q > 0.5f ? 0.5 : q;
        for (int i = 0; i < n; i++) v[i] = a[i].energy;
        m->reject_energy = quantile(v, n, 0.999);
    } else {
        for (int i = 0; i < n; i++) v[i] = a[i].energy;
        m->reject_energy = quantile(v, n, 1 - half);
    }

    /* 3. ambiguous: the other half, among the digits still accepted, the
     * margin quantile, kept within [0.05, 0.6]. */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        bool nd = (m->reject_p >= 0 && a[i].p_not_digit >= m->reject_p) ||
                  a[i].energy > m->reject_energy;
        if (!nd) {
            int d = a[i].digit, r = a[i].runner_up;
            v[kept++] = a[i].probs[d] - a[i].probs[r];
        }
    }
    float q = kept ? quantile(v, kept, half) : 0.05f;
    m->ambiguous_margin = q < 0.05f ? 0.05 : q > 0.6f ? 0.6 : q;
    free(z);
    free(v);
    free(a);
    return 0;
}

int nn_evaluate_verdicts(const nn_net *net, const nn_qnet *q, const nn_dataset *d,
                         int threads, nn_eval_report *r, nn_error *err) {
    memset(r, 0, sizeof *r);
    r->n = d->n;
    r->temperature = model_temperature(&net->meta);
    r->accepted_accuracy = -1;
    if (d->n < 1) return 0;
    int K = nn_net_outputs(net), n = d->n;
    float *z = all_logits(net, q, d, threads, err);
    if (!z) return -1;
    float *conf = malloc((size_t)n * sizeof(float));
    float *conf_raw = malloc((size_t)n * sizeof(float));
    uint8_t *right = malloc((size_t)n);
    if (!conf || !conf_raw || !right) {
        free(z);
        free(conf);
        free(conf_raw);
        free(right);
        return nn_fail(err, "out of memory for the evaluation");
    }
    nn_meta raw = net->meta;
    raw.temperature = 1;
    long correct = 0, accepted = 0, accepted_right = 0, nd = 0, amb = 0;
    for (int i = 0; i < n; i++) {
        nn_answer a, b;
        nn_verdict_from_logits(&net->meta, z + (size_t)i * K, K, &a);
        nn_verdict_from_logits(&raw, z + (size_t)i * K, K, &b);
        right[i] = a.digit == d->labels[i];
        conf[i] = a.confidence;
        conf_raw[i] = b.confidence;
        correct += right[i];
        if (a.accepted) {
            accepted++;
            accepted_right += right[i];
        }
        nd += a.reason == NN_NOT_A_DIGIT_REASON;
        amb += a.reason == NN_AMBIGUOUS;
    }
    r->accuracy = (double)correct / n;
    r->acceptance = (double)accepted / n;
    r->accepted_accuracy = accepted ? (double)accepted_right / accepted : -1;
    r->not_digit_rate = (double)nd / n;
    r->ambiguous_rate = (double)amb / n;
    r->ece = nn_ece15(conf, right, n);
    r->ece_raw = nn_ece15(conf_raw, right, n);
    free(z);
    free(conf);
    free(conf_raw);
    free(right);
    return 0;
}
