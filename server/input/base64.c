/* base64.c: see base64.h. */
#include "base64.h"

#include <stdlib.h>

/* Value of one base64 character, -1 for characters outside both alphabets. */
static int sextet(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return -1;
}

static int is_space(unsigned char ch) {
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\f' ||
           ch == '\v';
}

int base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    /* 4 characters carry 3 bytes; +3 covers a short last group. Zeroed,
     * as every buffer whose bytes can reach an answer. */
    uint8_t *buf = calloc(len / 4 * 3 + 3, 1);
    if (!buf) return -1;

    size_t n = 0;      /* bytes written */
    uint32_t acc = 0;  /* up to 4 sextets */
    int have = 0;      /* sextets in acc */
    int padding = 0;   /* '=' seen: only padding and whitespace may follow */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (is_space(ch)) continue;
        if (ch == '=') {
            padding++;
            continue;
        }
        int v = sextet(ch);
        if (v < 0 || padding) goto fail;
        acc = acc << 6 | (uint32_t)v;
        if (++have == 4) {
            buf[n++] = (uint8_t)(acc >> 16);
            buf[n++] = (uint8_t)(acc >> 8);
            buf[n++] = (uint8_t)acc;
            acc = 0;
            have = 0;
        }
    }
    /* A last group of 2 or 3 sextets carries 1 or 2 bytes; 1 sextet cannot
     * make a byte. Padding, when present, must complete the group. */
    if (have == 1) goto fail;
    if (padding && (have == 0 || have + padding != 4)) goto fail;
    if (have == 2) {
        buf[n++] = (uint8_t)(acc >> 4);
    } else if (have == 3) {
        buf[n++] = (uint8_t)(acc >> 10);
        buf[n++] = (uint8_t)(acc >> 2);
    }
    *out = buf;
    *out_len = n;
    return 0;
fail:
    free(buf);
    return -1;
}
