/* test_json_number.c: server/input/json_number: which texts are JSON
 * numbers, and that json_number_read's value is bit for bit the double strtod
 * gives, on hand-picked edges (the fast path's limits: 2^53, 10^22, 19
 * digits, signs, zeros, subnormals, overflow) and on 200,000 random numbers
 * of every shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_number.h"
#include "testutil.h"

static void check_value(const char *text) {
    double got;
    size_t k = json_number_read(text, strlen(text), &got);
    ck_assert_msg(k == strlen(text), "'%s' is a JSON number", text);
    double want = strtod(text, NULL);
    ck_assert_msg(memcmp(&want, &got, sizeof got) == 0,
                  "'%s': got %.17g, strtod gives %.17g", text, got, want);
}

START_TEST(lengths_follow_rfc_8259) {
    static const struct { const char *s; size_t len; } cases[] = {
        {"0", 1}, {"-0", 2}, {"12", 2}, {"0.5", 3}, {"1e5", 3}, {"1E+5", 4},
        {"-2.5e-3", 7}, {"0.25,", 4}, {"7]", 1}, {"007", 1}, {"1.", 0},
        {".5", 0}, {"+1", 0}, {"-", 0}, {"1e", 0}, {"1e+", 0}, {"0x1", 1},
        {"NaN", 0}, {"", 0}, {"-a", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
        double v;
        ck_assert_msg(json_number_len(cases[i].s, strlen(cases[i].s)) == cases[i].len &&
                          json_number_read(cases[i].s, strlen(cases[i].s), &v) == cases[i].len,
                      "'%s': want length %zu", cases[i].s, cases[i].len);
    }
}
END_TEST

START_TEST(values_equal_strtod_at_the_edges) {
    static const char *const edges[] = {
        "0", "-0", "0.0", "-0.0e5", "1", "-1", "255", "0.5", "0.1", "0.123",
        "0.00392156862745098", "1e22", "1e23", "1e-22", "1e-23", "-1e22",
        "9007199254740992", "9007199254740993", "9007199254740991.5",
        "1234567890123456789", "12345678901234567890", "0.1234567890123456789",
        "1234567890123456789e-22", "123456789012345678901234567890",
        "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "-1e309",
        "4.9e-324", "2e-324", "1e-400", "2.2250738585072014e-308",
        "0.000000000000000000000000000001", "100000000000000000000000",
        "1e0000000000000000000000000000001", "1e-0000000000000000000000000005",
        "1e99999999999", "1e-99999999999", "0e99999999999",
        "3.141592653589793238462643383279", "0.30000000000000004",
    };
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) check_value(edges[i]);
}
END_TEST

/* A number too long for any pixel gets its length but no value. */
START_TEST(very_long_numbers_get_no_value) {
    char text[200];
    memset(text, '1', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    double v = 0;
    ck_assert_uint_eq(json_number_read(text, strlen(text), &v), strlen(text));
    ck_assert(isnan(v));
    text[JSON_NUMBER_VALUE_MAX - 1] = '\0';
    check_value(text);
}
END_TEST

START_TEST(values_equal_strtod_on_random_numbers) {
    nn_rng rng;
    nn_rng_seed(&rng, 2026);
    char text[128];
    for (int n = 0; n < 200000; n++) {
        size_t at = 0;
        if (nn_rng_uniform(&rng) < 0.3f) text[at++] = '-';
        int ints = (int)(nn_rng_uniform(&rng) * 21) % 21; /* 0: a lone 0 */
        if (ints == 0) {
            text[at++] = '0';
        } else {
            text[at++] = (char)('1' + (int)(nn_rng_uniform(&rng) * 9) % 9);
            for (int d = 1; d < ints; d++) text[at++] = (char)('0' + (int)(nn_rng_uniform(&rng) * 10) % 10);
        }
        if (nn_rng_uniform(&rng) < 0.7f) {
            text[at++] = '.';
            int fr = 1 + (int)(nn_rng_uniform(&rng) * 22) % 22;
            /* often runs of zeros, as in 0.000392 or 1.50000 */
            bool zeros = nn_rng_uniform(&rng) < 0.3f;
            for (int d = 0; d < fr; d++)
                text[at++] = zeros && d < fr / 2 ? '0'
                                                 : (char)('0' + (int)(nn_rng_uniform(&rng) * 10) % 10);
        }
        if (nn_rng_uniform(&rng) < 0.4f) {
            text[at++] = nn_rng_uniform(&rng) < 0.5f ? 'e' : 'E';
            float r = nn_rng_uniform(&rng);
            if (r < 0.33f) text[at++] = '-';
            else if (r < 0.5f) text[at++] = '+';
            at += (size_t)snprintf(text + at, sizeof text - at, "%d",
                                   (int)(nn_rng_uniform(&rng) * 40));
        }
        text[at] = '\0';
        check_value(text);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("json_number");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lengths_follow_rfc_8259);
    tcase_add_test(tc, values_equal_strtod_at_the_edges);
    tcase_add_test(tc, very_long_numbers_get_no_value);
    tcase_add_test(tc, values_equal_strtod_on_random_numbers);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
