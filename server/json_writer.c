/* json_writer.c: see json_writer.h. */
#include "json_writer.h"

#include <math.h>
#include <stdlib.h>

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

void tb_json_number(text_buffer *t, double v) {
    if (!isfinite(v)) tb_puts(t, "null");
    else tb_printf(t, JW_NUMBER_FORMAT, v);
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
