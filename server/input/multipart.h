/* multipart.h: finding one field of a multipart/form-data body (RFC 7578),
 * as sent by `curl -F image=@digit.png` and by HTML forms. */
#ifndef DIGITD_MULTIPART_H
#define DIGITD_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MULTIPART_FOUND = 0,    /* *data, *data_len point at the field's bytes */
    MULTIPART_MISSING = 1,  /* well-formed, but no part has that name */
    MULTIPART_MALFORMED = -1,
} multipart_result;

/* Looks for the part named `field` in body (len bytes) of the given
 * Content-Type header value (its boundary parameter is read from it).
 * On MULTIPART_FOUND, *data points into body (nothing is copied or
 * allocated). On MULTIPART_MALFORMED, msg (msg_size bytes) says what is
 * wrong: no boundary, a missing delimiter, unterminated part headers. */
multipart_result multipart_find_field(const char *content_type,
                                      const uint8_t *body, size_t len,
                                      const char *field, const uint8_t **data,
                                      size_t *data_len, char *msg,
                                      size_t msg_size);

#endif
