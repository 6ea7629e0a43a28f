/* cli.h: what every subcommand's option parsing shares. */
#ifndef DIGITD_CLI_H
#define DIGITD_CLI_H

#include <stdbool.h>

/* Parses a whole decimal integer in [lo, hi] for option `flag`.
 * On error prints "digitd: FLAG: ..." to stderr and returns -1. */
int cli_int(const char *text, const char *flag, long lo, long hi, long *out);

/* Parses a finite number in [lo, hi], likewise. */
int cli_double(const char *text, const char *flag, double lo, double hi,
               double *out);

/* The value of environment variable `name` when set and non-empty, else
 * fallback. Flags are applied after this, so they win. */
const char *cli_env(const char *name, const char *fallback);

/* Default number of threads: the cores this process may run on. */
int cli_cores(void);

#endif
