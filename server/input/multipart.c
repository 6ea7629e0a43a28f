/* multipart.c: see multipart.h.
 *
 * A body looks like this (CRLF line ends, boundary B):
 *
 *   preamble (ignored)
 *   --B CRLF
 *   Content-Disposition: form-data; name="image"; filename="d.png" CRLF
 *   Content-Type: image/png CRLF
 *   CRLF
 *   <bytes> CRLF
 *   --B CRLF ...next part...
 *   --B-- (epilogue ignored)
 *
 * A part's bytes end right before "CRLF--B", so they may hold anything,
 * including CRLF, as long as they do not contain the delimiter itself
 * (which is what the sender chose the boundary for). */
#include "multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_BOUNDARY 70 /* RFC 2046 limit */

/* Copies the value of parameter `name` from a header value such as
 * `form-data; name="image"; filename="x.png"` into out (quotes removed).
 * Returns 0, or -1 when the parameter is absent or too long. Matching is
 * on whole parameter names, so `filename=` never matches `name`. */
static int header_param(const char *value, size_t value_len, const char *name,
                        char *out, size_t out_size) {
    size_t name_len = strlen(name);
    size_t i = 0;
    while (i < value_len) {
        /* skip to the start of the next parameter */
        while (i < value_len && value[i] != ';') i++;
        if (i >= value_len) break;
        i++;
        while (i < value_len && (value[i] == ' ' || value[i] == '\t')) i++;
        if (value_len - i > name_len && strncasecmp(value + i, name, name_len) == 0 &&
            value[i + name_len] == '=') {
            i += name_len + 1;
            size_t n = 0;
            if (i < value_len && value[i] == '"') {
                i++;
                while (i < value_len && value[i] != '"') {
                    if (value[i] == '\\' && i + 1 < value_len) i++;
                    if (n + 1 >= out_size) return -1;
                    out[n++] = value[i++];
                }
            } else {
                while (i < value_len && value[i] != ';' && value[i] != ' ' &&
                       value[i] != '\t') {
                    if (n + 1 >= out_size) return -1;
                    out[n++] = value[i++];
                }
            }
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

/* Finds the name="..." of the Content-Disposition header among a part's
 * headers (hdr, hdr_len bytes, CRLF-separated). Returns 0 or -1. */
static int part_name(const char *hdr, size_t hdr_len, char *name,
                     size_t name_size) {
    static const char key[] = "content-disposition:";
    size_t pos = 0;
    while (pos < hdr_len) {
        const char *line = hdr + pos;
        const char *eol = memmem(line, hdr_len - pos, "\r\n", 2);
        size_t line_len = eol ? (size_t)(eol - line) : hdr_len - pos;
        if (line_len >= sizeof key - 1 &&
            strncasecmp(line, key, sizeof key - 1) == 0) {
            /* header_param expects "value; a=b": give it the value part */
            return header_param(line + sizeof key - 1, line_len - (sizeof key - 1),
                                "name", name, name_size);
        }
        pos += line_len + 2;
    }
    return -1;
}

multipart_result multipart_find_field(const char *content_type,
                                      const uint8_t *body, size_t len,
                                      const char *field, const uint8_t **data,
                                      size_t *data_len, char *msg,
                                      size_t msg_size) {
    *data = NULL;
    *data_len = 0;
    char boundary[MAX_BOUNDARY + 1];
    if (!content_type ||
        header_param(content_type, strlen(content_type), "boundary", boundary,
                     sizeof boundary) != 0 ||
        boundary[0] == '\0') {
        snprintf(msg, msg_size,
                 "multipart/form-data needs a boundary parameter of 1 to 70 "
                 "characters in its Content-Type");
        return MULTIPART_MALFORMED;
    }

    /* delim = "\r\n--" boundary; the first one may come without the CRLF
     * when the body starts with it (no preamble). */
    char delim[MAX_BOUNDARY + 5];
    int dlen = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const uint8_t *end = body + len;
    const uint8_t *p;
    if (len >= (size_t)dlen - 2 && memcmp(body, delim + 2, (size_t)dlen - 2) == 0) {
        p = body + dlen - 2;
    } else {
        p = memmem(body, len, delim, (size_t)dlen);
        if (!p) {
            snprintf(msg, msg_size, "multipart body has no boundary delimiter");
            return MULTIPART_MALFORMED;
        }
        p += dlen;
    }

    /* p is just after a delimiter */
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return MULTIPART_MISSING;
        /* transport padding (spaces, tabs) may precede the CRLF */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            snprintf(msg, msg_size, "multipart body ends inside a delimiter line");
            return MULTIPART_MALFORMED;
        }
        p += 2;
        const uint8_t *hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const uint8_t *content;
        size_t hdr_len;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hdr_len = 0; /* a part without headers */
            content = p + 2;
        } else if (hdr_end) {
            hdr_len = (size_t)(hdr_end - p);
            content = hdr_end + 4;
        } else {
            snprintf(msg, msg_size, "multipart part headers are not terminated");
            return MULTIPART_MALFORMED;
        }
        const uint8_t *next = memmem(content, (size_t)(end - content), delim,
                                     (size_t)dlen);
        if (!next) {
            snprintf(msg, msg_size,
                     "multipart body is truncated: no closing boundary");
            return MULTIPART_MALFORMED;
        }
        char name[128];
        if (part_name((const char *)p, hdr_len, name, sizeof name) == 0 &&
            strcmp(name, field) == 0) {
            *data = content;
            *data_len = (size_t)(next - content);
            return MULTIPART_FOUND;
        }
        p = next + dlen;
    }
}
