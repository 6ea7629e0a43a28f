/* test_cors.c: server/cors.c, the origin a CORS answer names for
 * --cors-origin "A,B,...": only the request's own origin when listed, "*"
 * for a wildcard, nothing for anything else (and never a hostile value). */
#include <stddef.h>

#include "cors.h"
#include "testutil.h"

START_TEST(test_list_answers_the_matching_origin_only) {
    const char *list = "https://a.com,https://b.com";
    const char *o = "https://b.com";
    ck_assert_ptr_eq(cors_match(list, o), o); /* the request's own string */
    ck_assert_str_eq(cors_match(list, "https://a.com"), "https://a.com");
    ck_assert_ptr_null(cors_match(list, "https://c.com"));
    /* No prefix, suffix or substring matches. */
    ck_assert_ptr_null(cors_match(list, "https://a.co"));
    ck_assert_ptr_null(cors_match(list, "https://a.com.evil.net"));
    ck_assert_ptr_null(cors_match(list, "https://b.com,https://a.com"));
    ck_assert_ptr_null(cors_match("https://a.com:8443", "https://a.com"));
    ck_assert_ptr_null(cors_match(list, "http://a.com"));
}
END_TEST

START_TEST(test_spaces_case_and_single_entries) {
    ck_assert_str_eq(cors_match(" https://a.com , https://b.com ", "https://b.com"),
                     "https://b.com");
    ck_assert_str_eq(cors_match("https://A.com", "https://a.com"), "https://a.com");
    ck_assert_str_eq(cors_match("https://a.com", "https://a.com"), "https://a.com");
    ck_assert_str_eq(cors_match("http://localhost:3000,,", "http://localhost:3000"),
                     "http://localhost:3000");
    ck_assert_ptr_null(cors_match(",,", "https://a.com"));
}
END_TEST

START_TEST(test_wildcard) {
    ck_assert_str_eq(cors_match("*", "https://x.org"), "*");
    ck_assert_str_eq(cors_match("https://a.com, *", "https://x.org"), "*");
    /* A wildcard answers even a request without Origin (same-origin use). */
    ck_assert_str_eq(cors_match("*", NULL), "*");
    /* "*" inside an entry is no wildcard. */
    ck_assert_ptr_null(cors_match("https://*.a.com", "https://x.a.com"));
}
END_TEST

START_TEST(test_missing_or_hostile) {
    ck_assert_ptr_null(cors_match(NULL, "https://a.com"));
    ck_assert_ptr_null(cors_match("", "https://a.com"));
    ck_assert_ptr_null(cors_match("https://a.com", NULL));
    ck_assert_ptr_null(cors_match("https://a.com", ""));
    /* Header injection and lists smuggled in the request. */
    ck_assert_ptr_null(cors_match("https://a.com", "https://a.com\r\nSet-Cookie: x=1"));
    ck_assert_ptr_null(cors_match("https://a.com x", "https://a.com x"));
    ck_assert_ptr_null(cors_match("https://a.com", "https://a.com "));
    ck_assert_ptr_null(cors_match("https://caf\xc3\xa9.com", "https://caf\xc3\xa9.com"));
    /* "null" (sandboxed pages, file://) only when listed by name. */
    ck_assert_ptr_null(cors_match("https://a.com", "null"));
    ck_assert_str_eq(cors_match("null", "null"), "null");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cors");
    TCase *tc = tcase_create("match");
    tcase_add_test(tc, test_list_answers_the_matching_origin_only);
    tcase_add_test(tc, test_spaces_case_and_single_entries);
    tcase_add_test(tc, test_wildcard);
    tcase_add_test(tc, test_missing_or_hostile);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
