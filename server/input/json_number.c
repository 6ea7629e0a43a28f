/*
 * json_number.c: JSON numbers (json_number.h).
 *
 * Why not just strtod: a /predict body is 784 numbers, and glibc's strtod
 * (locale lookups, multi-precision arithmetic for correct rounding) was
 * the largest single cost of a JSON request with the MLP (14% of the
 * daemon's cycles). Almost every pixel value has few digits, and for those
 * Clinger's fast path is exact: when the decimal mantissa m < 2^53 and
 * the power |e| <= 22, both m and 10^|e| are doubles exactly, so m * 10^e
 * or m / 10^-e is one correctly rounded IEEE operation, the same double
 * strtod gives. Everything else goes to strtod on a copy (whose decimal
 * point is pinned to '.' by the "C" locale the daemon never leaves).
 */
#include "json_number.h"

#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* strtod on a copy (s is not NUL-terminated). k < JSON_NUMBER_VALUE_MAX. */
static double slow_value(const char *s, size_t k) {
    char copy[JSON_NUMBER_VALUE_MAX];
    memcpy(copy, s, k);
    copy[k] = '\0';
    return strtod(copy, NULL);
}

/* One pass: the grammar and, for the fast path, the mantissa m (at most
 * 19 significant digits) and the power of ten e, value = m * 10^e. */
size_t json_number_read(const char *s, size_t n, double *value) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    uint64_t m = 0;
    int sig = 0;       /* significant digits in m */
    long e = 0;
    bool exact = true; /* no digit was dropped, the exponent is small */
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
/* A digit of the mantissa; leading zeros add none. */
#define TAKE(c, frac)                                                          \
    do {                                                                       \
        if (m == 0 && (c) == '0') {                                            \
        } else if (sig < 19) {                                                 \
            m = m * 10 + (uint64_t)((c) - '0');                                \
            sig++;                                                             \
        } else {                                                               \
            exact = false;                                                     \
        }                                                                      \
        e -= (frac);                                                           \
    } while (0)
    const bool neg = n > 0 && s[0] == '-';
    i += neg;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        for (; i < n && IS_DIGIT(s[i]); i++) {
            TAKE(s[i], 0); /* a dropped digit: strtod does the rest */
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t first = ++i;
        for (; i < n && IS_DIGIT(s[i]); i++)
            if (exact) TAKE(s[i], 1);
        if (i == first) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = i < n && s[i] == '-';
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t first = i;
        long x = 0;
        for (; i < n && IS_DIGIT(s[i]); i++)
            if (x <= 100000) x = x * 10 + (s[i] - '0'); /* beyond: inexact */
        if (i == first) return 0;
        if (x > 100000) exact = false;
        e += eneg ? -x : x;
    }
#undef TAKE
#undef IS_DIGIT
    if (!value) return i;
    if (i >= JSON_NUMBER_VALUE_MAX) {
        *value = NAN; /* no pixel is written so long: not worth a copy */
    } else if (exact && m == 0) {
        *value = neg ? -0.0 : 0.0;
    } else if (!exact || m > (UINT64_C(1) << 53) || e < -22 || e > 22) {
        *value = slow_value(s, i);
    } else {
        double v = (double)m;
        v = e < 0 ? v / pow10[-e] : v * pow10[e];
        *value = neg ? -v : v;
    }
    return i;
}

size_t json_number_len(const char *s, size_t n) {
    return json_number_read(s, n, NULL);
}
