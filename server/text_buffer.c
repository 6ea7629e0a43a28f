/* text_buffer.c: see text_buffer.h. */
#include "text_buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

void tb_init(text_buffer *t, size_t hint) {
    t->cap = hint < 64 ? 64 : hint;
    t->len = 0;
    t->buf = malloc(t->cap);
    t->failed = t->buf == NULL;
    if (t->buf) t->buf[0] = '\0';
}

static bool reserve(text_buffer *t, size_t more) {
    if (t->failed) return false;
    if (t->len + more < t->cap) return true;
    size_t cap = t->cap * 2 + more;
    char *nb = realloc(t->buf, cap);
    if (!nb) {
        t->failed = true;
        return false;
    }
    t->buf = nb;
    t->cap = cap;
    return true;
}

void tb_puts(text_buffer *t, const char *s) {
    size_t n = strlen(s);
    if (!reserve(t, n + 1)) return;
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

void tb_printf(text_buffer *t, const char *fmt, ...) {
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        if (!reserve(t, (size_t)n + 1)) return;
    }
}

void tb_json_string(text_buffer *t, const char *s) {
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    tb_puts(t, "\"");
    while (p < end) {
        /* a run of well-formed UTF-8, where only ASCII needs escaping */
        const unsigned char *run_end = p + nn_utf8_valid_prefix(p, (size_t)(end - p));
        for (; p < run_end; p++) {
            if (!reserve(t, 8)) return;
            if (*p == '"' || *p == '\\') {
                t->buf[t->len++] = '\\';
                t->buf[t->len++] = (char)*p;
            } else if (*p < 0x20 || *p == 0x7f) {
                t->len += (size_t)snprintf(t->buf + t->len, 8, "\\u%04x", *p);
            } else {
                t->buf[t->len++] = (char)*p;
            }
            t->buf[t->len] = '\0';
        }
        /* then a byte that is not: JSON text is UTF-8 (RFC 8259), so it is
         * replaced, never passed on */
        if (p < end) {
            tb_puts(t, "\\ufffd");
            p++;
        }
    }
    tb_puts(t, "\"");
}

char *tb_take(text_buffer *t, size_t *len) {
    if (t->failed) {
        free(t->buf);
        t->buf = NULL;
        return NULL;
    }
    *len = t->len;
    char *b = t->buf;
    t->buf = NULL;
    return b;
}
