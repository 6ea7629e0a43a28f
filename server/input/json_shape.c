/* json_shape.c: see json_shape.h. */
#include "json_shape.h"

#include <stdbool.h>

#include "json_number.h"

static int is_token_char(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '+' || c == '-' || c == '.' || c == '_';
}

json_shape json_scan(const uint8_t *b, size_t len, int depth_limit) {
    json_shape sh = {0, 0, 0, SIZE_MAX};
    int depth = 0;
    bool root_array = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = b[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ':')
            continue;
        if (c == ']' || c == '}') {
            depth--;
            continue;
        }
        /* a value starts here */
        sh.values++;
        if (root_array && depth == 1) sh.root_items++;
        if (c == '[' || c == '{') {
            if (depth == 0 && sh.values == 1 && c == '[') root_array = true;
            if (++depth > sh.depth) sh.depth = depth;
            if (sh.depth > depth_limit) return sh;
        } else if (c == '"') {
            for (i++; i < len && b[i] != '"'; i++)
                if (b[i] == '\\') i++;
        } else if (is_token_char(c)) {
            size_t end = i;
            while (end < len && is_token_char(b[end])) end++;
            int numeric = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.';
            if (numeric && json_number_len((const char *)b + i, end - i) != end - i) {
                sh.bad_at = i;
                return sh;
            }
            i = end - 1;
        }
    }
    return sh;
}
