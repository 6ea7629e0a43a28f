/* error.c: errors come back as values; this fills them. */
#include <stdarg.h>
#include <stdio.h>

#include "nn.h"

int nn_fail(nn_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}
