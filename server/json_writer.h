/* json_writer.h: the one way digitd writes JSON, for the CLI (eval, predict,
 * train, info --json) and the server's answers alike.
 *
 * A writer appends to a text_buffer and keeps track of commas, so callers
 * write keys and values in order and never punctuation:
 *
 *   json_writer w;
 *   jw_init(&w, &tb);
 *   jw_object(&w);
 *     jw_key(&w, "model");  jw_string(&w, name);   (escaped)
 *     jw_key(&w, "probabilities"); jw_floats(&w, probs, 10);
 *   jw_end(&w);
 *
 * Numbers have one format everywhere: JW_NUMBER_FORMAT ("%.9g", enough
 * digits to give back the same float), integers as integers, and NaN or
 * infinity (not JSON) as null. Strings are escaped by tb_json_string.
 * Errors (out of memory) stick in the text_buffer and show at tb_take. */
#ifndef DIGITD_JSON_WRITER_H
#define DIGITD_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "text_buffer.h"

#define JW_NUMBER_FORMAT "%.9g"
#define JW_MAX_DEPTH 16

typedef struct {
    text_buffer *t;
    int depth;                    /* open objects and arrays */
    bool has_items[JW_MAX_DEPTH]; /* per level: a comma is due before the next item */
    char closer[JW_MAX_DEPTH];    /* per level: '}' or ']' */
    bool after_key;               /* a key was written: the value takes no comma */
} json_writer;

void jw_init(json_writer *w, text_buffer *t);

/* Open an object or array; jw_end closes the innermost one. Nesting deeper
 * than JW_MAX_DEPTH marks the buffer failed. */
void jw_object(json_writer *w);
void jw_array(json_writer *w);
void jw_end(json_writer *w);

/* A key inside an object; the next call writes its value. */
void jw_key(json_writer *w, const char *key);

void jw_string(json_writer *w, const char *s); /* NULL writes null */
void jw_int(json_writer *w, long long v);
void jw_number(json_writer *w, double v);
void jw_bool(json_writer *w, bool v);
void jw_null(json_writer *w);
void jw_floats(json_writer *w, const float *v, size_t n);  /* an array */
void jw_ints(json_writer *w, const int *v, size_t n);      /* an array */

/* One number in JW_NUMBER_FORMAT, exactly as printf writes it, or null when
 * it is not finite: into out, NUL-terminated; returns its length. */
#define JW_NUMBER_MAX 32
size_t jw_format_number(char out[JW_NUMBER_MAX], double v);

/* Appends jw_format_number's text to a plain text_buffer: for code that
 * writes JSON with tb_printf. */
void tb_json_number(text_buffer *t, double v);

/* Writes the buffer's text and a newline to `to` and frees it. Returns 0,
 * or -1 when an allocation failed earlier or the write failed. */
int jw_print_line(text_buffer *t, FILE *to);

#endif
