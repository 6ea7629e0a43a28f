/* test_verdict.c: the verdict on every answer (nn/verdict.c).
 *
 * - the shipped model, in one batch, refuses a scribble and a letter as
 *   not_a_digit and accepts a clear digit;
 * - answers agree with nn_predict and with themselves (digit is the
 *   argmax, confidence its probability, reason set iff refused);
 * - a model with temperature 1 answers exactly as before, and a stored
 *   temperature is read back and applied;
 * - the thresholds decide as documented, and calibration recovers a
 *   known temperature. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "layers.h"
#include "testutil.h"

/* ---- drawings, on a 96x96 canvas as a decoded upload would be -------- */

static void render(const pt *p, int n, bool curve, float r, float *out) {
    float px[96 * 96];
    canvas c = {96, 96, px};
    canvas_clear(&c);
    if (curve) draw_curve(&c, p, n, r);
    else draw_polyline(&c, p, n, r);
    ck_assert_int_eq(canvas_normalize(&c, out), 0);
}

static void draw_scribble(float *out) {
    static const pt p[] = {{20, 30}, {70, 20}, {30, 60}, {75, 70},
                           {25, 85}, {60, 40}, {80, 88}};
    render(p, 7, true, 3, out);
}

/* A capital W, as a person draws it in four strokes. */
static void draw_letter(float *out) {
    static const pt p[] = {{10, 18}, {28, 82}, {48, 34}, {68, 82}, {86, 18}};
    render(p, 5, false, 3.5f, out);
}

/* A 7: a bar and a diagonal. */
static void draw_seven(float *out) {
    static const pt p[] = {{24, 16}, {74, 16}, {44, 86}};
    render(p, 3, false, 4, out);
}

/* The shipped model with the "not a digit" output (models/README.md). */
#define VERDICT_MODEL "models/cnn-verdict.model"

static nn_net *shipped(void) {
    nn_error err;
    nn_net *net = nn_model_load(tu_source_path(VERDICT_MODEL), &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    return net;
}

START_TEST(scribble_letter_and_digit_in_one_batch) {
    nn_net *net = shipped();
    float x[3 * NN_PIXELS];
    draw_scribble(x);
    draw_letter(x + NN_PIXELS);
    draw_seven(x + 2 * NN_PIXELS);
    nn_answer a[3];
    nn_error err;
    ck_assert_msg(nn_classify(net, x, 3, a, 1, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 3; i++)
        printf("input %d: digit %d conf %.3f accepted %d reason %s p_not %.3f energy %.2f\n",
               i, a[i].digit, a[i].confidence, a[i].accepted,
               nn_reason_name(a[i].reason) ? nn_reason_name(a[i].reason) : "-",
               a[i].p_not_digit, a[i].energy);
    ck_assert(!a[0].accepted);
    ck_assert_int_eq(a[0].reason, NN_NOT_A_DIGIT_REASON);
    ck_assert(!a[1].accepted);
    ck_assert_int_eq(a[1].reason, NN_NOT_A_DIGIT_REASON);
    ck_assert(a[2].accepted);
    ck_assert_int_eq(a[2].reason, NN_ACCEPTED);
    ck_assert_int_eq(a[2].digit, 7);
    /* The same inputs one at a time give the same answers. */
    for (int i = 0; i < 3; i++) {
        nn_answer one;
        ck_assert(nn_classify(net, x + i * NN_PIXELS, 1, &one, 2, &err) == 0);
        ck_assert_int_eq(one.digit, a[i].digit);
        ck_assert_int_eq(one.reason, a[i].reason);
        ck_assert_float_eq_tol(one.confidence, a[i].confidence, 1e-5f);
    }
    nn_net_free(net);
}
END_TEST

/* Every field agrees with nn_predict and with the others. */
static void check_consistent(const nn_net *net, const float *x, int n) {
    nn_answer *a = malloc((size_t)n * sizeof *a);
    float *p = malloc((size_t)n * NN_CLASSES * sizeof *p);
    nn_error err;
    ck_assert(nn_classify(net, x, n, a, 2, &err) == 0);
    ck_assert(nn_predict(net, x, n, p, 2, &err) == 0);
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int c = 0; c < NN_CLASSES; c++) {
            ck_assert_float_eq(a[i].probs[c], p[i * NN_CLASSES + c]);
            sum += a[i].probs[c];
            ck_assert(a[i].probs[c] <= a[i].probs[a[i].digit]);
            if (c != a[i].digit)
                ck_assert(a[i].probs[c] <= a[i].probs[a[i].runner_up]);
        }
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
        ck_assert_int_ne(a[i].digit, a[i].runner_up);
        ck_assert_float_eq(a[i].confidence, a[i].probs[a[i].digit]);
        ck_assert_int_eq(a[i].accepted, a[i].reason == NN_ACCEPTED);
        ck_assert_int_eq(a[i].accepted, nn_reason_name(a[i].reason) == NULL);
        ck_assert(isfinite(a[i].energy));
        if (nn_net_outputs(net) == NN_CLASSES)
            ck_assert_float_eq(a[i].p_not_digit, -1.0f);
        else
            ck_assert(a[i].p_not_digit >= 0 && a[i].p_not_digit <= 1);
    }
    free(a);
    free(p);
}

START_TEST(answers_agree_with_predict) {
    nn_net *net = shipped();
    enum { N = 40 };
    float *x = malloc(N * NN_PIXELS * sizeof *x);
    nn_rng rng;
    nn_rng_seed(&rng, 9);
    tu_fill(x, (size_t)(N - 3) * NN_PIXELS, &rng, 0, 1);
    draw_scribble(x + (N - 3) * NN_PIXELS);
    draw_letter(x + (N - 2) * NN_PIXELS);
    draw_seven(x + (N - 1) * NN_PIXELS);
    check_consistent(net, x, N);
    ck_assert_str_eq(nn_reason_name(NN_NOT_A_DIGIT_REASON), "not_a_digit");
    ck_assert_str_eq(nn_reason_name(NN_AMBIGUOUS), "ambiguous");
    free(x);
    nn_net_free(net);
}
END_TEST

/* ---- temperature ------------------------------------------------------ */

static nn_net *small_net(const char *spec, uint64_t seed) {
    nn_error err;
    nn_net *net = nn_net_create(spec, "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    /* bigger biases than init, so the answers are not all near uniform */
    for (size_t i = 0; i < net->n_params; i++) net->params[i] *= 3.0f;
    return net;
}

START_TEST(temperature_one_answers_as_before) {
    nn_net *net = small_net("784-32-10", 3);
    ck_assert_double_eq(net->meta.temperature, 1.0);
    enum { N = 64 };
    float x[N * NN_PIXELS], z[N * NN_CLASSES], want[N * NN_CLASSES];
    float got[N * NN_CLASSES];
    nn_rng rng;
    nn_rng_seed(&rng, 4);
    tu_fill(x, sizeof x / sizeof *x, &rng, 0, 1);
    nn_error err;
    ck_assert(nn_logits(net, x, N, z, 1, &err) == 0);
    softmax_forward(want, z, N, NN_CLASSES); /* what nn_predict always did */
    ck_assert(nn_predict(net, x, N, got, 1, &err) == 0);
    ck_assert_mem_eq(got, want, sizeof got);
    nn_answer a[N];
    ck_assert(nn_classify(net, x, N, a, 1, &err) == 0);
    int refused = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_mem_eq(a[i].probs, want + i * NN_CLASSES, sizeof a[i].probs);
        /* the softmax-only rule: ambiguous below 0.6, never not_a_digit */
        ck_assert_int_eq(a[i].reason,
                         a[i].confidence < 0.6f ? NN_AMBIGUOUS : NN_ACCEPTED);
        refused += !a[i].accepted;
    }
    check_consistent(net, x, N);
    ck_assert_int_gt(refused, 0); /* both branches were exercised */
    ck_assert_int_lt(refused, N);

    /* An uncalibrated file has no calibration keys: byte for byte the
     * old format. */
    tu_tmpdir_make();
    const char *path = tu_tpath("t1.model");
    ck_assert(nn_model_save(net, path, &err) == 0);
    uint8_t *buf;
    size_t len;
    ck_assert(nn_read_file(path, 1 << 24, &buf, &len, &err) == 0);
    ck_assert(memmem(buf, len, "temperature=", 12) == NULL);
    ck_assert(memmem(buf, len, "ambiguous_margin=", 17) == NULL);
    free(buf);
    tu_tmpdir_remove();
    nn_net_free(net);
}
END_TEST

START_TEST(stored_temperature_is_read_back_and_applied) {
    nn_net *net = small_net("784-32-11", 5);
    net->meta.temperature = 2.5;
    net->meta.reject_p = 0.3;
    net->meta.reject_energy = -1.25;
    net->meta.ambiguous_margin = 0.2;
    tu_tmpdir_make();
    const char *path = tu_tpath("t2.model");
    nn_error err;
    ck_assert_msg(nn_model_save(net, path, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(path, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    ck_assert_double_eq(back->meta.temperature, 2.5);
    ck_assert_double_eq(back->meta.reject_p, 0.3);
    ck_assert_double_eq(back->meta.reject_energy, -1.25);
    ck_assert_double_eq(back->meta.ambiguous_margin, 0.2);
    ck_assert_int_eq(nn_net_outputs(back), 11);

    enum { N = 16 };
    float x[N * NN_PIXELS], z[N * 11], p[N * NN_CLASSES];
    nn_rng rng;
    nn_rng_seed(&rng, 6);
    tu_fill(x, sizeof x / sizeof *x, &rng, 0, 1);
    ck_assert(nn_logits(back, x, N, z, 1, &err) == 0);
    ck_assert(nn_predict(back, x, N, p, 1, &err) == 0);
    for (int i = 0; i < N; i++) {
        /* softmax over the ten digit logits divided by 2.5 */
        double m = -INFINITY, s = 0;
        for (int c = 0; c < NN_CLASSES; c++) m = fmax(m, z[i * 11 + c] / 2.5);
        for (int c = 0; c < NN_CLASSES; c++) s += exp(z[i * 11 + c] / 2.5 - m);
        for (int c = 0; c < NN_CLASSES; c++)
            ck_assert_double_eq_tol(p[i * NN_CLASSES + c],
                                    exp(z[i * 11 + c] / 2.5 - m) / s, 1e-6);
    }
    check_consistent(back, x, N);
    nn_net_free(back);
    tu_tmpdir_remove();
    nn_net_free(net);
}
END_TEST

/* ---- thresholds --------------------------------------------------------- */

START_TEST(thresholds_decide_as_documented) {
    nn_meta m = {.temperature = 1, .reject_p = 0.3, .reject_energy = -2.0,
                 .ambiguous_margin = 0.25};
    nn_answer a;
    /* a clear 3: accepted */
    float clear[11] = {0, 0, 0, 9, 0, 0, 0, 0, 0, 0, -5};
    nn_verdict_from_logits(&m, clear, 11, &a);
    ck_assert(a.accepted);
    ck_assert_int_eq(a.digit, 3);
    /* the 11th output holds 50%: not a digit, whatever the digits say */
    float nd[11] = {0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 9};
    nn_verdict_from_logits(&m, nd, 11, &a);
    ck_assert_int_eq(a.reason, NN_NOT_A_DIGIT_REASON);
    ck_assert_float_eq_tol(a.p_not_digit, 0.5f, 1e-3f);
    ck_assert_int_eq(a.digit, 3); /* the closest digit is still reported */
    /* a 4 and a 9 neck and neck: ambiguous, runner-up 9 */
    float amb[11] = {0, 0, 0, 0, 6, 0, 0, 0, 0, 5.9f, -5};
    nn_verdict_from_logits(&m, amb, 11, &a);
    ck_assert_int_eq(a.reason, NN_AMBIGUOUS);
    ck_assert_int_eq(a.digit, 4);
    ck_assert_int_eq(a.runner_up, 9);
    /* a 10-output model: all logits low is high energy, not a digit */
    float low[10] = {-3, -3, -3, -1, -3, -3, -3, -3, -3, -3};
    nn_verdict_from_logits(&m, low, 10, &a);
    ck_assert_double_gt(a.energy, -2.0);
    ck_assert_int_eq(a.reason, NN_NOT_A_DIGIT_REASON);
    /* uncalibrated 11-output model: not a digit when the 11th output is
     * the largest */
    nn_meta u = {.temperature = 1, .reject_p = -1, .reject_energy = INFINITY,
                 .ambiguous_margin = -1};
    nn_verdict_from_logits(&u, nd, 11, &a);
    ck_assert(a.accepted); /* a tie is not "largest" */
    nd[10] = 9.5f;
    nn_verdict_from_logits(&u, nd, 11, &a);
    ck_assert_int_eq(a.reason, NN_NOT_A_DIGIT_REASON);
}
END_TEST

START_TEST(ece_of_known_cases) {
    float conf[4] = {0.9f, 0.9f, 0.9f, 0.9f};
    uint8_t all[4] = {1, 1, 1, 1}, half[4] = {1, 0, 1, 0};
    ck_assert_double_eq_tol(nn_ece15(conf, all, 4), 0.1, 1e-6);
    ck_assert_double_eq_tol(nn_ece15(conf, half, 4), 0.4, 1e-6);
    /* two bins, each perfectly calibrated */
    float c2[4] = {0.5f, 0.5f, 1.0f, 1.0f};
    uint8_t r2[4] = {1, 0, 1, 1};
    ck_assert_double_eq_tol(nn_ece15(c2, r2, 4), 0.0, 1e-6);
}
END_TEST

/* Labels drawn from softmax(z / 2): calibration should find T near 2,
 * and refuse about the budget of the digits it was fitted on. */
START_TEST(calibration_recovers_a_known_temperature) {
    nn_net *net = small_net("784-10", 7);
    enum { N = 4000 };
    nn_dataset d = {N, malloc((size_t)N * NN_PIXELS * sizeof(float)), malloc(N)};
    float *z = malloc((size_t)N * NN_CLASSES * sizeof(float));
    nn_rng rng;
    nn_rng_seed(&rng, 8);
    tu_fill(d.images, (size_t)N * NN_PIXELS, &rng, 0, 1);
    nn_error err;
    ck_assert(nn_logits(net, d.images, N, z, 1, &err) == 0);
    /* scale so the logits spread a few units */
    double spread = 0;
    for (int i = 0; i < N * NN_CLASSES; i++) spread += fabs(z[i]);
    spread /= N * NN_CLASSES;
    float k = (float)(15.0 / spread);
    for (size_t i = 0; i < net->n_params; i++) net->params[i] *= k;
    ck_assert(nn_logits(net, d.images, N, z, 1, &err) == 0);
    for (int i = 0; i < N; i++) {
        double p[NN_CLASSES], m = -INFINITY, s = 0;
        for (int c = 0; c < NN_CLASSES; c++) m = fmax(m, z[i * NN_CLASSES + c] / 2.0);
        for (int c = 0; c < NN_CLASSES; c++) s += p[c] = exp(z[i * NN_CLASSES + c] / 2.0 - m);
        double u = nn_rng_uniform(&rng) * s;
        int c = 0;
        while (c < NN_CLASSES - 1 && (u -= p[c]) > 0) c++;
        d.labels[i] = (uint8_t)c;
    }
    ck_assert_msg(nn_calibrate(net, &d, 0.04, 1, &err) == 0, "%s", err.msg);
    printf("fitted temperature %.3f (true 2), margin %.3f, energy %.3f\n",
           net->meta.temperature, net->meta.ambiguous_margin,
           net->meta.reject_energy);
    ck_assert_double_gt(net->meta.temperature, 1.7);
    ck_assert_double_lt(net->meta.temperature, 2.3);
    nn_eval_report r;
    ck_assert(nn_evaluate_verdicts(net, NULL, &d, 1, &r, &err) == 0);
    ck_assert_double_lt(1 - r.acceptance, 0.04 + 0.01);
    ck_assert_double_gt(1 - r.acceptance, 0.04 - 0.02);
    /* calibrated confidence fits these labels better than raw */
    ck_assert_double_lt(r.ece, r.ece_raw);
    /* refusals are not allowed to be free: a budget of 0 is refused */
    ck_assert_int_eq(nn_calibrate(net, &d, 0, 1, &err), -1);
    free(z);
    nn_dataset_free(&d);
    nn_net_free(net);
}
END_TEST

START_TEST(fine_tune_start_keeps_the_ten_digits) {
    nn_net *ten = small_net("784-16-10", 11), *eleven = small_net("784-16-11", 12);
    nn_error err;
    ck_assert_msg(nn_net_copy_params(eleven, ten, &err) == 0, "%s", err.msg);
    float x[4 * NN_PIXELS], a[4 * 10], b[4 * 11];
    nn_rng rng;
    nn_rng_seed(&rng, 13);
    tu_fill(x, sizeof x / sizeof *x, &rng, 0, 1);
    ck_assert(nn_logits(ten, x, 4, a, 1, &err) == 0);
    ck_assert(nn_logits(eleven, x, 4, b, 1, &err) == 0);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 10; c++)
            ck_assert_float_eq_tol(b[i * 11 + c], a[i * 10 + c], 1e-5f);
    /* other shapes are refused */
    nn_net *other = small_net("784-32-11", 14);
    ck_assert_int_eq(nn_net_copy_params(other, ten, &err), -1);
    ck_assert_int_eq(nn_net_copy_params(ten, eleven, &err), -1);
    nn_net_free(other);
    nn_net_free(ten);
    nn_net_free(eleven);
}
END_TEST

int main(void) {
    Suite *s = suite_create("verdict");
    TCase *tc = tcase_create("verdict");
    tcase_add_unchecked_fixture(tc, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, scribble_letter_and_digit_in_one_batch);
    tcase_add_test(tc, answers_agree_with_predict);
    tcase_add_test(tc, temperature_one_answers_as_before);
    tcase_add_test(tc, stored_temperature_is_read_back_and_applied);
    tcase_add_test(tc, thresholds_decide_as_documented);
    tcase_add_test(tc, ece_of_known_cases);
    tcase_add_test(tc, calibration_recovers_a_known_temperature);
    tcase_add_test(tc, fine_tune_start_keeps_the_ten_digits);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
