/* test_json_writer.c: server/json_writer: every string (quotes,
 * backslashes, control bytes, UTF-8) comes out as valid JSON that parses
 * back to the same text; numbers use one format that gives back the same
 * float; commas and nesting are right. Parsed back with cJSON. */
#include <cjson/cJSON.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "json_writer.h"
#include "testutil.h"

/* Writes {"name": s, "n": 3, "p": [...], "ok": true, "none": null, "empty": []}
 * and returns the parsed document (the caller deletes it). */
static cJSON *round_trip(const char *s, const float *p, size_t np, char **text) {
    text_buffer t;
    json_writer w;
    tb_init(&t, 16);
    jw_init(&w, &t);
    jw_object(&w);
    jw_key(&w, "name"); jw_string(&w, s);
    jw_key(&w, "n"); jw_int(&w, 3);
    jw_key(&w, "p"); jw_floats(&w, p, np);
    jw_key(&w, "ok"); jw_bool(&w, true);
    jw_key(&w, "none"); jw_string(&w, NULL);
    jw_key(&w, "empty"); jw_array(&w); jw_end(&w);
    jw_end(&w);
    size_t len;
    *text = tb_take(&t, &len);
    ck_assert_ptr_nonnull(*text);
    ck_assert_uint_eq(strlen(*text), len);
    cJSON *doc = cJSON_Parse(*text);
    ck_assert_msg(doc != NULL, "not valid JSON: %s", *text);
    return doc;
}

START_TEST(test_hostile_names) {
    static const char *names[] = {
        "plain", "a \"quoted\" name", "back\\slash\\", "tab\there\nnewline",
        "\x01\x1f\x7f control", "caf\xc3\xa9 \xe2\x9c\x93", "\"", "",
    };
    const float p[2] = {0.25f, 0.75f};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *text;
        cJSON *doc = round_trip(names[i], p, 2, &text);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
        ck_assert_msg(cJSON_IsString(name) && strcmp(name->valuestring, names[i]) == 0,
                      "name %zu did not survive: %s", i, text);
        ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(doc, "none")));
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "ok")));
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "empty")), 0);
        ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(doc, "n")->valueint, 3);
        cJSON_Delete(doc);
        free(text);
    }
}
END_TEST

/* The JSON text of s as tb_json_string writes it (the caller frees it). */
static char *string_literal(const char *s) {
    text_buffer t;
    tb_init(&t, 16);
    tb_json_string(&t, s);
    size_t len;
    char *text = tb_take(&t, &len);
    ck_assert_ptr_nonnull(text);
    return text;
}

/* Bytes that are not UTF-8 (a client's "id", a percent-decoded path) must
 * not reach an answer: JSON text is UTF-8, and Python's json.loads or a
 * browser's fetch().json() fail on the whole answer otherwise. Each
 * byte that is not part of a well-formed sequence becomes U+FFFD. */
START_TEST(test_invalid_utf8_is_replaced) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xff", "\"\\ufffd\""},
        {"a\xc3", "\"a\\ufffd\""},                       /* cut after the lead byte */
        {"\xe2\x9c", "\"\\ufffd\\ufffd\""},               /* a cut 3-byte sequence */
        {"\xe2\x9c\x93\xe2\x9c", "\"\xe2\x9c\x93\\ufffd\\ufffd\""}, /* a check mark, a cut one */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},               /* overlong '/' */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},   /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},   /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
        {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},     /* U+1F600 is fine */
        {"\x80x\xbf", "\"\\ufffdx\\ufffd\""},             /* lone continuation bytes */
        {"\xc3\"", "\"\\ufffd\\\"\""},                   /* a cut sequence before a quote */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = string_literal(cases[i].in);
        ck_assert_msg(strcmp(text, cases[i].out) == 0, "case %zu: %s, want %s", i, text,
                      cases[i].out);
        free(text);
    }
}
END_TEST

/* Whether s is well-formed UTF-8, by glibc's decoder (not ours), which
 * also takes code points past U+10FFFF: those are refused here. */
static bool glibc_utf8(const char *s) {
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t n = strlen(s);
    while (n > 0) {
        wchar_t w;
        size_t k = mbrtowc(&w, s, n, &st);
        if (k == (size_t)-1 || k == (size_t)-2 || (unsigned long)w > 0x10FFFF) return false;
        s += k;
        n -= k;
    }
    return true;
}

/* Random byte strings, heavy in lead and continuation bytes: the JSON
 * text is always valid UTF-8 by glibc's decoder, cJSON reads it back,
 * and a string that was valid UTF-8 comes back unchanged. */
START_TEST(test_random_bytes_give_utf8) {
    ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
    static const unsigned char pool[] = {'a', '"', '\\', 0x01, 0x7f, 0x80, 0x8f, 0x90,
                                         0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed,
                                         0xef, 0xf0, 0xf4, 0xf5, 0xff};
    uint64_t x = 42;
    int valid_inputs = 0;
    for (int round = 0; round < 20000; round++) {
        char in[12];
        int n = (int)(round % 11);
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            in[i] = (char)pool[(x >> 33) % sizeof pool];
        }
        in[n] = '\0';
        char *text = string_literal(in);
        if (!glibc_utf8(text)) ck_abort_msg("round %d: not UTF-8: %s", round, text);
        cJSON *doc = cJSON_Parse(text);
        if (!cJSON_IsString(doc)) ck_abort_msg("round %d: not a JSON string: %s", round, text);
        if (glibc_utf8(in)) {
            valid_inputs++;
            if (strcmp(doc->valuestring, in) != 0)
                ck_abort_msg("round %d: valid UTF-8 changed: %s", round, text);
        }
        cJSON_Delete(doc);
        free(text);
    }
    ck_assert_int_gt(valid_inputs, 1000); /* the property was tested on both kinds */
    setlocale(LC_CTYPE, "C");
}
END_TEST

/* Every float written comes back as the same float: the CLI and the server
 * print one number format, and it loses nothing. */
START_TEST(test_numbers_round_trip) {
    float p[10];
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    tu_fill(p, 10, &rng, 0, 1);
    p[0] = 0.99999988f; /* the largest float below 1: must not print as 1 */
    p[1] = 1e-30f;
    p[2] = 0;
    char *text;
    cJSON *doc = round_trip("x", p, 10, &text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "p");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 10);
    for (int k = 0; k < 10; k++) {
        float back = (float)cJSON_GetArrayItem(arr, k)->valuedouble;
        ck_assert_msg(back == p[k], "p[%d]=%.9g came back as %.9g (%s)", k,
                      (double)p[k], (double)back, text);
    }
    cJSON_Delete(doc);
    free(text);
}
END_TEST

/* jw_format_number against printf's JW_NUMBER_FORMAT, character for
 * character. Its own digit loop covers floats from 1e-36 to 1e9, where a
 * wrong rounding (half to even, on the exact binary value), exponent or
 * trailing zero would show; everything else is printf's. */
static void same_as_printf(double v) {
    char want[64], got[JW_NUMBER_MAX];
    if (isfinite(v)) snprintf(want, sizeof want, JW_NUMBER_FORMAT, v);
    else strcpy(want, "null");
    size_t n = jw_format_number(got, v);
    /* (ck_assert itself only on failure: check writes to a pipe for each
     * one that passes, which made this test take 20 s) */
    if (strcmp(got, want) != 0 || n != strlen(want))
        ck_abort_msg("%a: wrote \"%s\" (%zu), printf \"%s\"", v, got, n, want);
}

static float float_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

START_TEST(test_number_format_is_printfs) {
    /* 2^19 consecutive floats from each start: probabilities near 1,
     * near 0.5, small ones, and 8192..8704, where many floats end in a 5
     * just past the ninth digit (ties: 8192.015625 -> 8192.01562). (More
     * made valgrind's run of this test take minutes: DIGITD_EVERY_FLOAT
     * below is the thorough one.) */
    const float starts[] = {0.5f, 0.25f, 1.0f / 1048576, 8192.0f, 1e-5f, 1.5e8f};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        uint32_t b0;
        memcpy(&b0, &starts[i], sizeof b0);
        for (uint32_t k = 0; k < (1u << 19); k++) same_as_printf(float_of(b0 + k));
    }
    /* every power of ten in range and its neighbours, both signs */
    for (int p = -46; p <= 40; p++) {
        float f = (float)pow(10, p);
        uint32_t b;
        memcpy(&b, &f, sizeof b);
        for (int d = -8; d <= 8; d++) {
            same_as_printf(float_of(b + (uint32_t)d));
            same_as_printf(-float_of(b + (uint32_t)d));
        }
    }
    /* random bit patterns: every exponent, subnormals, NaN and infinity */
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    for (int i = 0; i < 500000; i++) {
        uint32_t b = (uint32_t)(nn_rng_u64(&rng) >> 32);
        same_as_printf(float_of(b));
    }
    const double others[] = {0.0, -0.0, 1.0, 0.1, 1e9, 999999936.0, 1e-36, 1e-37,
                             0.99999988079071045, 123456789.0, 1.0 / 3, 2.5e-300};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) same_as_printf(others[i]);
}
END_TEST

/* Every one of the 2^32 floats: about 20 minutes of one core, so only
 * when asked (DIGITD_EVERY_FLOAT=1); the suite runs the test above. */
START_TEST(test_number_format_every_float) {
    for (uint64_t b = 0; b <= 0xffffffffu; b++) same_as_printf(float_of((uint32_t)b));
}
END_TEST

START_TEST(test_not_finite_is_null) {
    text_buffer t;
    tb_init(&t, 16);
    tb_printf(&t, "[");
    tb_json_number(&t, NAN);
    tb_printf(&t, ",");
    tb_json_number(&t, INFINITY);
    tb_printf(&t, ",");
    tb_json_number(&t, 0.5);
    tb_printf(&t, "]");
    size_t len;
    char *s = tb_take(&t, &len);
    ck_assert_str_eq(s, "[null,null,0.5]");
    free(s);
}
END_TEST

START_TEST(test_nesting_and_misuse) {
    text_buffer t;
    json_writer w;
    tb_init(&t, 16);
    jw_init(&w, &t);
    jw_array(&w);
    for (int i = 0; i < 2; i++) {
        jw_object(&w);
        jw_key(&w, "a"); jw_ints(&w, (const int[]){1, 2}, 2);
        jw_end(&w);
    }
    jw_end(&w);
    size_t len;
    char *s = tb_take(&t, &len);
    ck_assert_str_eq(s, "[{\"a\":[1,2]},{\"a\":[1,2]}]");
    free(s);
    /* Closing more than was opened, or nesting too deep, fails the buffer
     * instead of writing broken JSON. */
    tb_init(&t, 16);
    jw_init(&w, &t);
    jw_end(&w);
    ck_assert_ptr_null(tb_take(&t, &len));
    tb_init(&t, 16);
    jw_init(&w, &t);
    for (int i = 0; i < JW_MAX_DEPTH + 1; i++) jw_array(&w);
    ck_assert_ptr_null(tb_take(&t, &len));
}
END_TEST

int main(void) {
    Suite *s = suite_create("json_writer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_hostile_names);
    tcase_add_test(tc, test_invalid_utf8_is_replaced);
    tcase_add_test(tc, test_random_bytes_give_utf8);
    tcase_add_test(tc, test_numbers_round_trip);
    tcase_add_test(tc, test_number_format_is_printfs);
    tcase_add_test(tc, test_not_finite_is_null);
    tcase_add_test(tc, test_nesting_and_misuse);
    suite_add_tcase(s, tc);
    const char *every = getenv("DIGITD_EVERY_FLOAT");
    if (every && strcmp(every, "1") == 0) {
        TCase *all = tcase_create("every_float");
        tcase_set_timeout(all, 0); /* as long as it takes */
        tcase_add_test(all, test_number_format_every_float);
        suite_add_tcase(s, all);
    }
    return tu_run(s);
}
