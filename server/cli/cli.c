#include "cli.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int cli_int(const char *text, const char *flag, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "digitd: %s: '%s' is not a whole number from %ld to %ld\n",
                flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_double(const char *text, const char *flag, double lo, double hi,
               double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "digitd: %s: '%s' is not a number from %g to %g\n",
                flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

const char *cli_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return (v && *v) ? v : fallback;
}

int cli_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
