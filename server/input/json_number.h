/*
 * json_number.h: the one definition of a JSON number (RFC 8259) that the
 * request parsers use, and its value.
 */
#ifndef DIGITD_JSON_NUMBER_H
#define DIGITD_JSON_NUMBER_H

#include <stddef.h>

/* The length of the JSON number -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * at the start of s (n bytes), or 0 when s does not start with one. Both
 * the fast path and json_scan use it, so that `+1`, `.5`, `007`, `1.`,
 * `-` and `0x1` are refused whichever path reads them (cJSON alone takes
 * some of them). */
size_t json_number_len(const char *s, size_t n);

/* Numbers of this many characters or more get no value (NaN). */
#define JSON_NUMBER_VALUE_MAX 64

/* json_number_len, reading the value in the same pass: *value is the
 * double nearest to the number, as strtod rounds it, whatever the locale
 * (+-HUGE_VAL or 0 beyond the range of double, as strtod), or NaN for a
 * number of JSON_NUMBER_VALUE_MAX characters or more. value may be NULL. */
size_t json_number_read(const char *s, size_t n, double *value);

#endif
