/* fuzz_predict_multipart.c: POST /predict with multipart/form-data.
 *
 * Input: the Content-Type header value, a newline, then the body. So the
 * fuzzer varies the boundary parameter (quoting, length, position) as
 * well as the body; an input without a newline is a body sent with a
 * fixed, well-formed Content-Type. multipart_find_field is checked on its
 * own first (the part it finds lies inside the body and is followed by
 * the delimiter), then the whole request goes through predict_handle. */
#include <string.h>

#include "fuzz_predict.h"
#include "multipart.h"

#define DEFAULT_TYPE "multipart/form-data; boundary=----fuzzBoundary"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tlen = nl ? (size_t)(nl - data) : strlen(DEFAULT_TYPE);
    char *type = malloc(tlen + 1);
    if (!type) return 0;
    if (nl) {
        memcpy(type, data, tlen);
        type[tlen] = '\0'; /* a NUL inside ends the header, as in HTTP */
    } else {
        memcpy(type, DEFAULT_TYPE, tlen + 1);
    }
    const uint8_t *body = nl ? nl + 1 : data;
    size_t len = nl ? size - (size_t)(body - data) : size;
    /* an exact-size copy, so a read past the body is caught */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        free(type);
        return 0;
    }
    memcpy(copy, body, len);

    const uint8_t *part;
    size_t part_len;
    char msg[200];
    multipart_result r = multipart_find_field(type, copy, len, "image", &part,
                                              &part_len, msg, sizeof msg);
    if (r == MULTIPART_FOUND) {
        FUZZ_CHECK(part >= copy && part_len <= len && part + part_len <= copy + len,
                   "the found part lies outside the body");
        FUZZ_CHECK(len - (size_t)(part + part_len - copy) >= 4 &&
                       memcmp(part + part_len, "\r\n--", 4) == 0,
                   "the found part is not followed by a delimiter");
    } else if (r == MULTIPART_MALFORMED) {
        FUZZ_CHECK(msg[0] != '\0' && strnlen(msg, sizeof msg) < sizeof msg,
                   "a refusal without a message");
    } else {
        FUZZ_CHECK(r == MULTIPART_MISSING, "unknown result %d", (int)r);
        FUZZ_CHECK(part == NULL && part_len == 0, "MISSING with a part");
    }
    if (predict_body_kind_of(type) == BODY_MULTIPART)
        fuzz_predict_once(type, copy, len, false);
    free(copy);
    free(type);
    return 0;
}
