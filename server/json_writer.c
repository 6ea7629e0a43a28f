/* json_writer.c: see json_writer.h. */
#include "json_writer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void jw_init(json_writer *w, text_buffer *t) {
    w->t = t;
    w->depth = 0;
    w->has_items[0] = false;
    w->after_key = false;
}

/* The comma (if any) before a new value or key at the current level. */
static void before_item(json_writer *w) {
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->has_items[w->depth]) tb_puts(w->t, ",");
    w->has_items[w->depth] = true;
}

static void open_level(json_writer *w, char brace, char closer) {
    before_item(w);
    if (w->depth + 1 >= JW_MAX_DEPTH) {
        w->t->failed = true;
        return;
    }
    tb_puts(w->t, (char[]){brace, '\0'});
    w->depth++;
    w->has_items[w->depth] = false;
    w->closer[w->depth] = closer;
}

void jw_object(json_writer *w) { open_level(w, '{', '}'); }
void jw_array(json_writer *w) { open_level(w, '[', ']'); }

void jw_end(json_writer *w) {
    if (w->depth <= 0) {
        w->t->failed = true;
        return;
    }
    tb_puts(w->t, (char[]){w->closer[w->depth--], '\0'});
    w->after_key = false;
}

void jw_key(json_writer *w, const char *key) {
    before_item(w);
    tb_json_string(w->t, key);
    tb_puts(w->t, ":");
    w->after_key = true;
}

void jw_string(json_writer *w, const char *s) {
    before_item(w);
    if (s) tb_json_string(w->t, s);
    else tb_puts(w->t, "null");
}

void jw_int(json_writer *w, long long v) {
    before_item(w);
    tb_printf(w->t, "%lld", v);
}

#ifdef __SIZEOF_INT128__
__extension__ typedef unsigned __int128 u128;

static const uint64_t pow5[28] = { /* 5^0 .. 5^27 (< 2^63) */
    1u, 5u, 25u, 125u, 625u, 3125u, 15625u, 78125u, 390625u, 1953125u, 9765625u,
    48828125u, 244140625u, 1220703125u, 6103515625ull, 30517578125ull, 152587890625ull,
    762939453125ull, 3814697265625ull, 19073486328125ull, 95367431640625ull,
    476837158203125ull, 2384185791015625ull, 11920928955078125ull, 59604644775390625ull,
    298023223876953125ull, 1490116119384765625ull, 7450580596923828125ull,
};

/* JW_NUMBER_FORMAT for the numbers answers are made of, floats from 1e-36
 * to 1e9 (probabilities, confidences), without printf: writing an answer
 * took 15% of an inference worker's time with the MLP (about 2.7 us for
 * its 11 numbers), nearly all of it in glibc's %.9g. Same characters as
 * printf, which rounds the exact binary value half to even; returns 0 for
 * any other value (printf writes those). */
static size_t format_float(double v, char *out) {
    float f = (float)v;
    if ((double)f != v || f == 0) return 0;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    int be = (int)(bits >> 23 & 0xff);
    if (be == 0 || be == 0xff) return 0; /* subnormal, infinite or NaN */
    /* |f| = m 2^e with m in [2^23, 2^24); x is floor(log10 |f|) or one less */
    const uint64_t m = (bits & 0x7fffff) | 0x800000;
    const int e = be - 150;
    int x = (int)floor((e + 23) * 0.30102999566398120);
    if (x < -36) return 0;
    uint64_t d; /* the 9 significant digits, rounded */
    for (;; x++) {
        if (x > 8) return 0;
        /* d = |f| 10^(8 - x) = m 5^s 2^(e + s), s = 8 - x in 0..44:
         * m 5^44 < 2^127 */
        const int s = 8 - x, shift = e + s;
        u128 p = (u128)m * pow5[s < 27 ? s : 27];
        if (s > 27) p *= pow5[s - 27];
        if (shift >= 0) { /* an integer: nothing to round */
            d = (uint64_t)(p << shift);
            if (d < 1000000000) break;
            continue; /* |f| >= 10^(x + 1) */
        }
        const int k = -shift; /* < 100: p < 2^127 and d >= 10^8 */
        const u128 rem = p & (((u128)1 << k) - 1), half = (u128)1 << (k - 1);
        d = (uint64_t)(p >> k);
        if (d >= 1000000000) continue;
        d += rem > half || (rem == half && (d & 1));
        if (d < 1000000000) break;
        /* rounded up to 10^9: %g's exponent is that of the rounded value */
        d = 100000000;
        if (++x > 8) return 0;
        break;
    }
    char dig[9];
    for (int i = 8; i >= 0; i--, d /= 10) dig[i] = (char)('0' + d % 10);
    int nd = 9; /* without the trailing zeros, which %g drops */
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    size_t n = 0;
    if (f < 0) out[n++] = '-';
    if (x >= -4) { /* %f style, 8 - x decimals */
        if (x >= 0) {
            for (int i = 0; i <= x; i++) out[n++] = dig[i];
            if (nd > x + 1) out[n++] = '.';
            for (int i = x + 1; i < nd; i++) out[n++] = dig[i];
        } else {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = -1; i > x; i--) out[n++] = '0';
            for (int i = 0; i < nd; i++) out[n++] = dig[i];
        }
    } else { /* %e style, x < -4 here: d.dddddddde-XX */
        out[n++] = dig[0];
        if (nd > 1) out[n++] = '.';
        for (int i = 1; i < nd; i++) out[n++] = dig[i];
        out[n++] = 'e';
        out[n++] = '-';
        out[n++] = (char)('0' + -x / 10);
        out[n++] = (char)('0' + -x % 10);
    }
    out[n] = '\0';
    return n;
}
#else
static size_t format_float(double v, char *out) {
    (void)v, (void)out;
    return 0;
}
#endif

size_t jw_format_number(char out[JW_NUMBER_MAX], double v) {
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    size_t n = format_float(v, out);
    if (n == 0) n = (size_t)snprintf(out, JW_NUMBER_MAX, JW_NUMBER_FORMAT, v);
    return n;
}

void tb_json_number(text_buffer *t, double v) {
    char s[JW_NUMBER_MAX];
    jw_format_number(s, v);
    tb_puts(t, s);
}

void jw_number(json_writer *w, double v) {
    before_item(w);
    tb_json_number(w->t, v);
}

void jw_bool(json_writer *w, bool v) {
    before_item(w);
    tb_puts(w->t, v ? "true" : "false");
}

void jw_null(json_writer *w) {
    before_item(w);
    tb_puts(w->t, "null");
}

void jw_floats(json_writer *w, const float *v, size_t n) {
    jw_array(w);
    for (size_t i = 0; i < n; i++) jw_number(w, (double)v[i]);
    jw_end(w);
}

void jw_ints(json_writer *w, const int *v, size_t n) {
    jw_array(w);
    for (size_t i = 0; i < n; i++) jw_int(w, v[i]);
    jw_end(w);
}

int jw_print_line(text_buffer *t, FILE *to) {
    size_t len;
    char *s = tb_take(t, &len);
    if (!s) return -1;
    int rc = fwrite(s, 1, len, to) == len && fputc('\n', to) != EOF ? 0 : -1;
    free(s);
    return rc;
}
