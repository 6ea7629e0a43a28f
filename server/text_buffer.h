/* text_buffer.h: a growing, NUL-terminated text buffer for building
 * response bodies (JSON answers, the metrics page). */
#ifndef DIGITD_TEXT_BUFFER_H
#define DIGITD_TEXT_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *buf;   /* malloc'd, NUL-terminated while !failed */
    size_t len;  /* bytes before the NUL */
    size_t cap;
    bool failed; /* an allocation failed: later appends do nothing */
} text_buffer;

/* Starts an empty buffer with room for about `hint` bytes. On allocation
 * failure the buffer is marked failed (check with tb_take). */
void tb_init(text_buffer *t, size_t hint);

/* Appends s as it is (no format: punctuation and literals, the common
 * case of a JSON answer, without vsnprintf's cost). */
void tb_puts(text_buffer *t, const char *s);

/* Appends printf-formatted text. */
void tb_printf(text_buffer *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string literal, quotes included, escaping quotes,
 * backslashes and control characters. Bytes that are not well-formed
 * UTF-8 (from a client's "id", a path, a field name quoted in an error,
 * a message cut in the middle of a character) become U+FFFD, so every
 * answer is valid JSON text. */
void tb_json_string(text_buffer *t, const char *s);

/* Hands the text over: returns the malloc'd string (the caller frees it)
 * and its length in *len, or NULL when any allocation failed (the buffer
 * is freed either way). */
char *tb_take(text_buffer *t, size_t *len);

#endif
