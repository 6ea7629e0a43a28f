/* test_predict_json.c: the two readers of a JSON /predict body agree.
 *
 * {"pixels": [784 numbers]} is read by a hand-written fast path
 * (server/input/predict_request.c, fast_pixels); everything else, and
 * anything the fast path is not sure of, by json_scan and cJSON. The same
 * pixels wrapped as a batch of one, [{"pixels": [...]}], always take the
 * general path. So for every body: both are refused, or both give the
 * same 784 floats, bit for bit. Bodies: pixels written as integers, as
 * floats of every form JSON allows (and some it does not: 07, 1., .5,
 * +1, -0), with any whitespace, then the same bodies with bytes changed,
 * dropped or doubled at random, which is where a fast path that checks
 * less than the grammar would accept what cJSON refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict_request.h"
#include "testutil.h"

static const predict_limits lim = {4096, 4096, 8, (int64_t)1 << 24};

/* One pixel as some client might write it; v is 0..255 or 0..1. */
static void put_number(char **p, nn_rng *rng, bool unit, bool odd_one) {
    static const char *odd[] = {"07", "1.", ".5", "+1", "-0", "-0.0", "0e0", "1E2", "2e+2",
                                "25e-1", "0.00000000000000000001", "255.0", "256", "1000",
                                "-1", "0x1", "NaN", "1e400", "00", "9.99e1"};
    uint32_t kind = nn_rng_below(rng, 100);
    if (odd_one) { /* something odd, allowed or not */
        *p += sprintf(*p, "%s", odd[nn_rng_below(rng, sizeof odd / sizeof odd[0])]);
    } else if (unit) {
        float v = nn_rng_below(rng, 3) == 0 ? 0.0f : nn_rng_uniform(rng);
        *p += sprintf(*p, kind < 50 ? "%.9g" : kind < 75 ? "%.3f" : "%g", (double)v);
    } else {
        *p += sprintf(*p, "%u", nn_rng_below(rng, 2) ? 0u : nn_rng_below(rng, 256));
    }
}

/* Whitespace as clients write it: none, one space, or anything JSON allows. */
static void put_space(char **p, nn_rng *rng, int style) {
    if (style == 0) return;
    if (style == 1) {
        *(*p)++ = ' ';
        return;
    }
    static const char ws[] = " \t\r\n";
    for (uint32_t k = nn_rng_below(rng, 3); k > 0; k--) *(*p)++ = ws[nn_rng_below(rng, 4)];
}

/* {"pixels": [...]} with n numbers; returns its length. */
static size_t make_body(char *buf, nn_rng *rng, int n) {
    char *p = buf;
    int style = (int)nn_rng_below(rng, 3);
    bool unit = nn_rng_below(rng, 3) == 0;
    /* one body in four has one odd number somewhere */
    int odd_at = nn_rng_below(rng, 4) == 0 ? (int)nn_rng_below(rng, (uint32_t)n) : -1;
    put_space(&p, rng, style);
    p += sprintf(p, "{");
    put_space(&p, rng, style);
    p += sprintf(p, "\"pixels\"");
    put_space(&p, rng, style);
    p += sprintf(p, ":");
    put_space(&p, rng, style);
    p += sprintf(p, "[");
    for (int i = 0; i < n; i++) {
        if (i) {
            if (style == 2) put_space(&p, rng, style);
            *p++ = ',';
        }
        put_space(&p, rng, style);
        put_number(&p, rng, unit, i == odd_at);
        if (style == 2) put_space(&p, rng, style);
    }
    p += sprintf(p, "]");
    put_space(&p, rng, style);
    p += sprintf(p, "}");
    put_space(&p, rng, style);
    return (size_t)(p - buf);
}

/* Changes, drops or doubles a few bytes of body, mostly among the ones
 * that make JSON's structure. */
static size_t mutate(char *body, size_t len, nn_rng *rng) {
    static const char pool[] = ",]}[{ 0.e-\"9";
    for (uint32_t k = 1 + nn_rng_below(rng, 3); k > 0 && len > 2; k--) {
        size_t at = nn_rng_below(rng, (uint32_t)len);
        switch (nn_rng_below(rng, 3)) {
        case 0:
            body[at] = pool[nn_rng_below(rng, sizeof pool - 1)];
            break;
        case 1:
            memmove(body + at, body + at + 1, len - at - 1);
            len--;
            break;
        default:
            memmove(body + at + 1, body + at, len - at);
            len++;
            break;
        }
    }
    return len;
}

static int parses(const char *body, size_t len, predict_inputs *in, predict_outcome *out) {
    return predict_parse(BODY_JSON, "application/json", (const uint8_t *)body, len, &lim, in,
                         out);
}

/* body alone (fast path when it can) and as a batch of one (cJSON).
 * Returns whether they read it (rather than both refusing it). */
static bool same_answer(const char *body, size_t len, char *wrapped) {
    wrapped[0] = '[';
    memcpy(wrapped + 1, body, len);
    wrapped[len + 1] = ']';
    predict_inputs a, b;
    predict_outcome oa, ob;
    int ra = parses(body, len, &a, &oa), rb = parses(wrapped, len + 2, &b, &ob);
    if (ra != rb)
        ck_abort_msg("alone %s (%d %s), as a batch %s (%d %s): %.*s", ra ? "refused" : "read",
                     oa.status, oa.message, rb ? "refused" : "read", ob.status, ob.message,
                     (int)(len < 300 ? len : 300), body);
    if (ra == 0) {
        if (a.n != 1 || b.n != 1 || memcmp(a.inputs, b.inputs, NN_PIXELS * sizeof(float)) != 0)
            ck_abort_msg("the two readers gave different pixels for %.*s",
                         (int)(len < 300 ? len : 300), body);
        predict_inputs_free(&a);
        predict_inputs_free(&b);
    }
    return ra == 0;
}

START_TEST(test_fast_path_is_cjson) {
    nn_rng rng;
    nn_rng_seed(&rng, 2026);
    enum { CAP = 64 << 10 };
    char *body = malloc(CAP), *wrapped = malloc(CAP + 2);
    ck_assert_ptr_nonnull(body);
    ck_assert_ptr_nonnull(wrapped);
    int read_ok = 0;
    for (int i = 0; i < 4000; i++) {
        /* 784 numbers mostly; sometimes one too few or too many */
        int n = i % 10 == 9 ? NN_PIXELS + (int)nn_rng_below(&rng, 3) - 1 : NN_PIXELS;
        size_t len = make_body(body, &rng, n);
        ck_assert_uint_lt(len, CAP - 64);
        read_ok += same_answer(body, len, wrapped);
        /* the end of the array, where a reader that counts numbers may
         * stop looking: "0,}", "0,]}", "0}", "0]]}" */
        char *end = memrchr(body, ']', len);
        if (end && n == NN_PIXELS) {
            size_t at = (size_t)(end - body);
            static const char *endings[] = {",", ",]", "", "]]", ",0]"};
            for (size_t e = 0; e < sizeof endings / sizeof endings[0]; e++) {
                char *copy = malloc(len + 8);
                ck_assert_ptr_nonnull(copy);
                size_t el = strlen(endings[e]);
                memcpy(copy, body, at);
                memcpy(copy + at, endings[e], el);
                memcpy(copy + at + el, body + at + 1, len - at - 1);
                same_answer(copy, len - 1 + el, wrapped);
                free(copy);
            }
        }
        for (int m = 0; m < 4; m++) {
            char *copy = malloc(len + 8);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, body, len);
            size_t ml = mutate(copy, len, &rng);
            same_answer(copy, ml, wrapped);
            free(copy);
        }
    }
    /* the bodies are not all refused: the comparison compared something */
    ck_assert_int_gt(read_ok, 1500);
    free(body);
    free(wrapped);
}
END_TEST

int main(void) {
    Suite *s = suite_create("predict_json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fast_path_is_cjson);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
