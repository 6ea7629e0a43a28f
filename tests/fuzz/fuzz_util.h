/* fuzz_util.h: what every harness in tests/fuzz/ shares.
 *
 * A harness defines LLVMFuzzerTestOneInput and nothing else; it is linked
 * either with libFuzzer (clang -fsanitize=fuzzer, the `fuzz` target) or
 * with replay_main.c (any compiler), which feeds it every file of the
 * committed corpora and regressions in the normal test suite.
 *
 * FUZZ_CHECK states a property the code under test promises; a broken
 * promise aborts, which both drivers report as a failure with the input
 * that caused it. */
#ifndef DIGITD_FUZZ_UTIL_H
#define DIGITD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__,    \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
