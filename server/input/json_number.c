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
#include <stdlib.h>
#include <string.h>

size_t json_number_len(const char *s, size_t n) {
    size_t i = 0;
#define DIGITS() while (i < n && s[i] >= '0' && s[i] <= '9') i++
    if (i < n && s[i] == '-') i++;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        DIGITS();
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t first = ++i;
        DIGITS();
        if (i == first) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t first = i;
        DIGITS();
        if (i == first) return 0;
    }
#undef DIGITS
    return i;
}

static double slow_value(const char *s, size_t k) {
    char small[64];
    char *copy = k < sizeof small ? small : malloc(k + 1);
    if (!copy) return 0; /* numbers this long never reach here: the callers
                            refuse them first */
    memcpy(copy, s, k);
    copy[k] = '\0';
    double v = strtod(copy, NULL);
    if (copy != small) free(copy);
    return v;
}

double json_number_value(const char *s, size_t k) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = s[0] == '-';
    i += neg;
    uint64_t m = 0;    /* the significant digits read, at most 19 */
    int sig = 0;       /* how many */
    long e = 0;        /* value = m * 10^e */
    bool exact = true; /* no digit was dropped */
    for (bool frac = false; i < k; i++) {
        char c = s[i];
        if (c == '.') {
            frac = true;
            continue;
        }
        if (c < '0' || c > '9') break;
        if (m == 0 && c == '0') { /* a leading zero adds no digit */
            e -= frac;
            continue;
        }
        if (sig == 19) { /* m would overflow */
            exact = false;
            break;
        }
        m = m * 10 + (uint64_t)(c - '0');
        sig++;
        e -= frac;
    }
    if (exact && i < k) { /* the exponent */
        i++;
        bool eneg = s[i] == '-';
        i += s[i] == '-' || s[i] == '+';
        long x = 0;
        for (; i < k; i++) {
            if (x > 100000) { /* far beyond any fast case */
                exact = false;
                break;
            }
            x = x * 10 + (s[i] - '0');
        }
        e += eneg ? -x : x;
    }
    if (exact && m == 0) return neg ? -0.0 : 0.0;
    if (!exact || m > (UINT64_C(1) << 53) || e < -22 || e > 22)
        return slow_value(s, k);
    double v = (double)m;
    v = e < 0 ? v / pow10[-e] : v * pow10[e];
    return neg ? -v : v;
}
