/* base64.h: decoding of base64 text (RFC 4648), as carried by JSON bodies
 * ({"image": "<base64>"}) and data: URLs. */
#ifndef DIGITD_BASE64_H
#define DIGITD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Decodes len characters of base64 text into a malloc'd buffer the caller
 * frees. Accepts the standard ('+', '/') and the URL-safe ('-', '_')
 * alphabets, with or without '=' padding, and skips ASCII whitespace (data
 * URLs are often wrapped). On error (a character outside the alphabet,
 * padding in the middle, a dangling single character, out of memory)
 * returns -1, *out is NULL and nothing is allocated. */
int base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

#endif
