/* options.c: see options.h. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nn.h"

/* Help layout: option names from column 2, their text from column
 * HELP_TEXT_COL, nothing past column HELP_WIDTH (80-column terminals). */
#define HELP_TEXT_COL 24
#define HELP_WIDTH 79

void cli_preset_int(cli_value *v, long x) {
    v->i = x;
    v->preset = true;
    snprintf(v->def_text, sizeof v->def_text, "%ld", x);
}

void cli_preset_double(cli_value *v, double x) {
    v->d = x;
    v->preset = true;
    snprintf(v->def_text, sizeof v->def_text, "%g", x);
}

void cli_preset_choice(cli_value *v, long index) {
    v->i = index;
    v->preset = true;
    v->def_text[0] = '\0'; /* filled from the words by set_defaults */
}

static void vreport(const char *command, const char *fmt, va_list ap) {
    fprintf(stderr, "digitd %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd->name, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'digitd %s --help'.\n", cmd->name);
    return 2;
}

int cli_fail(const char *command, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(command, fmt, ap);
    va_end(ap);
    return 1;
}

/* The index-th word of "a|b|c" into buf; false when there is none. */
static bool choice_word(const char *words, long index, char *buf, size_t size) {
    const char *p = words;
    for (long k = 0; k < index; k++) {
        p = strchr(p, '|');
        if (!p) return false;
        p++;
    }
    size_t n = strcspn(p, "|");
    if (n >= size) n = size - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return true;
}

/* Index of `text` among the words of "a|b|c", or -1. */
static long choice_index(const char *words, const char *text) {
    size_t len = strlen(text);
    long k = 0;
    for (const char *p = words;; k++) {
        size_t n = strcspn(p, "|");
        if (n == len && strncmp(p, text, n) == 0) return k;
        if (!p[n]) return -1;
        p += n + 1;
    }
}

/* "4194304", "512k", "4M", "1G" (powers of 1024; "KiB"/"MB" spellings
 * too) -> bytes in [lo, hi]. Returns 0, or -1. */
static int size_of(const char *text, double lo, double hi, long *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(text, &end, 10), mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024 * 1024 * 1024, end++;
    if (mul > 1 && (*end == 'i' || *end == 'B')) end++;
    if (mul > 1 && *end == 'B') end++;
    if (errno || end == text || *end || text[0] == '-' || x > (unsigned long long)hi / mul ||
        (double)(x * mul) < lo)
        return -1;
    *out = (long)(x * mul);
    return 0;
}

/* Stores `text` (from `from`: "--lr" or "DIGITD_X") into v, checking type
 * and range. Returns 0, or 2 after reporting. */
static int set_value(const cli_command *cmd, const cli_option *o, cli_value *v,
                     const char *text, const char *from) {
    char *end;
    switch (o->type) {
    case CLI_FLAG:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes") ||
            !strcmp(text, "on")) v->on = true;
        else if (!strcmp(text, "0") || !strcmp(text, "false") ||
                 !strcmp(text, "no") || !strcmp(text, "off")) v->on = false;
        else
            return cli_usage_error(cmd, "%s: '%s' is not 1 or 0 (true or false)",
                                   from, text);
        break;
    case CLI_INT: {
        errno = 0;
        long x = strtol(text, &end, 10);
        if (errno || end == text || *end || x < (long)o->lo || x > (long)o->hi)
            return cli_usage_error(cmd, "%s: '%s' is not a whole number from %ld to %ld",
                                   from, text, (long)o->lo, (long)o->hi);
        v->i = x;
        break;
    }
    case CLI_SIZE:
        if (size_of(text, o->lo, o->hi, &v->i) != 0)
            return cli_usage_error(cmd, "%s: '%s' is not a size from %.0f to %.0f bytes "
                                        "(e.g. 512k, 4M)", from, text, o->lo, o->hi);
        break;
    case CLI_DOUBLE: {
        errno = 0;
        double x = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(x) || x < o->lo || x > o->hi)
            return cli_usage_error(cmd, "%s: '%s' is not a number from %g to %g",
                                   from, text, o->lo, o->hi);
        v->d = x;
        break;
    }
    case CLI_CHOICE: {
        long k = choice_index(o->metavar, text);
        if (k < 0) {
            char words[128];
            snprintf(words, sizeof words, "%s", o->metavar);
            for (char *p = words; *p; p++)
                if (*p == '|') *p = ',';
            return cli_usage_error(cmd, "%s: '%s' is not one of %s", from, text, words);
        }
        v->i = k;
        break;
    }
    case CLI_STRING:
    case CLI_DATA:
        if (!*text) return cli_usage_error(cmd, "%s: the value is empty", from);
        break;
    }
    v->str = text;
    v->given = true;
    return 0;
}

/* Applies each option's default: the table's text, or a preset value. */
static void set_defaults(const cli_option *opts, int n, cli_value *values) {
    for (int i = 0; i < n; i++) {
        const cli_option *o = &opts[i];
        cli_value *v = &values[i];
        if (v->preset) {
            if (o->type == CLI_CHOICE)
                choice_word(o->metavar, v->i, v->def_text, sizeof v->def_text);
            continue;
        }
        if (!o->def) continue;
        snprintf(v->def_text, sizeof v->def_text, "%s", o->def);
        v->str = o->def;
        if (o->type == CLI_INT) v->i = strtol(o->def, NULL, 10);
        else if (o->type == CLI_SIZE) (void)size_of(o->def, o->lo, o->hi, &v->i);
        else if (o->type == CLI_DOUBLE) v->d = strtod(o->def, NULL);
        else if (o->type == CLI_CHOICE) v->i = choice_index(o->metavar, o->def);
        else if (o->type == CLI_FLAG) v->on = !strcmp(o->def, "1");
    }
}

/* Writes `text` wrapped into columns [HELP_TEXT_COL, HELP_WIDTH], the
 * first line continuing at column `col`. */
static void wrap(FILE *to, const char *text, int col) {
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        if (!n) break;
        /* A word longer than a whole line is cut after a comma (or
         * anywhere) so nothing passes HELP_WIDTH. */
        const size_t room = HELP_WIDTH - HELP_TEXT_COL;
        if (n > room) {
            size_t cut = room;
            while (cut > room / 2 && p[cut - 1] != ',') cut--;
            if (p[cut - 1] != ',') cut = room;
            if (col > HELP_TEXT_COL) {
                fprintf(to, "\n%*s", HELP_TEXT_COL, "");
                col = HELP_TEXT_COL;
            }
            fwrite(p, 1, cut, to);
            fprintf(to, "\n%*s", HELP_TEXT_COL, "");
            p += cut;
            continue;
        }
        if (col > HELP_TEXT_COL && col + 1 + (int)n > HELP_WIDTH) {
            fprintf(to, "\n%*s", HELP_TEXT_COL, "");
            col = HELP_TEXT_COL;
        } else if (col > HELP_TEXT_COL) {
            fputc(' ', to);
            col++;
        }
        fwrite(p, 1, n, to);
        col += (int)n;
        p += n;
    }
    fputc('\n', to);
}

static void help_line(FILE *to, char short_name, const char *name,
                      const char *metavar, const char *text) {
    char left[96];
    int n;
    if (short_name) n = snprintf(left, sizeof left, "  -%c, --%s", short_name, name);
    else n = snprintf(left, sizeof left, "      --%s", name);
    if (metavar && n > 0 && (size_t)n < sizeof left)
        snprintf(left + n, sizeof left - (size_t)n, " %s", metavar);
    fputs(left, to);
    int col = (int)strlen(left);
    if (col + 2 > HELP_TEXT_COL) {
        fprintf(to, "\n%*s", HELP_TEXT_COL, "");
    } else {
        fprintf(to, "%*s", HELP_TEXT_COL - col, "");
    }
    wrap(to, text, HELP_TEXT_COL);
}

void cli_help(const cli_command *cmd, const cli_value *values, FILE *to) {
    fprintf(to, "usage: digitd %s %s\n", cmd->name, cmd->synopsis);
    if (cmd->summary) fprintf(to, "%s\n", cmd->summary);
    fprintf(to, "\noptions (environment variables in brackets; flags win):\n");
    for (int i = 0; i < cmd->n_options; i++) {
        const cli_option *o = &cmd->options[i];
        char text[512];
        int n = snprintf(text, sizeof text, "%s", o->help);
        if (o->env && n >= 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, " [%s]", o->env);
        if (values && values[i].def_text[0] && n >= 0 && (size_t)n < sizeof text)
            snprintf(text + n, sizeof text - (size_t)n, " (default: %s)",
                     values[i].def_text);
        const char *metavar = o->metavar;
        if (o->type == CLI_FLAG) metavar = NULL;
        help_line(to, o->short_name, o->name, metavar, text);
    }
    help_line(to, 'h', "help", NULL, "this help");
    help_line(to, 'V', "version", NULL, "print the version");
    if (cmd->epilog) fprintf(to, "\n%s", cmd->epilog);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_value *values,
              int *rest) {
    enum { MAX_OPTIONS = 48, LONG_BASE = 256 };
    const int n = cmd->n_options;
    if (n > MAX_OPTIONS) return cli_usage_error(cmd, "too many options (internal)");
    set_defaults(cmd->options, n, values);

    /* 1. argv, with getopt_long over a table built from ours. */
    struct option longs[MAX_OPTIONS + 3];
    char shorts[2 * MAX_OPTIONS + 8] = ":hV";
    size_t sl = strlen(shorts);
    for (int i = 0; i < n; i++) {
        const cli_option *o = &cmd->options[i];
        int has_arg = o->type == CLI_FLAG ? no_argument : required_argument;
        longs[i] = (struct option){o->name, has_arg, NULL,
                                   o->short_name ? o->short_name : LONG_BASE + i};
        if (o->short_name) {
            shorts[sl++] = o->short_name;
            if (has_arg) shorts[sl++] = ':';
        }
    }
    shorts[sl] = '\0';
    longs[n] = (struct option){"help", no_argument, NULL, 'h'};
    longs[n + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longs[n + 2] = (struct option){NULL, 0, NULL, 0};

    opterr = 0; /* our messages, in our style */
    optind = 1;
    int c, at;
    while ((at = optind, c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        if (c == 'h') {
            cli_help(cmd, values, stdout);
            return 0;
        }
        if (c == 'V') {
            printf("digitd %s\n", DIGITD_VERSION);
            return 0;
        }
        if (c == '?' || c == ':') {
            const char *bad = at < argc ? argv[at] : "?";
            char shown[64];
            if (optopt && optopt < LONG_BASE && bad[0] == '-' && bad[1] != '-')
                snprintf(shown, sizeof shown, "-%c", optopt);
            else
                snprintf(shown, sizeof shown, "%.*s", (int)strcspn(bad, "="), bad);
            return cli_usage_error(cmd, c == ':' ? "%s needs a value"
                                                 : "unknown option '%s'", shown);
        }
        int i = -1;
        for (int k = 0; k < n && i < 0; k++)
            if (c == (cmd->options[k].short_name ? cmd->options[k].short_name
                                                 : LONG_BASE + k)) i = k;
        if (i < 0) return cli_usage_error(cmd, "unknown option");
        const cli_option *o = &cmd->options[i];
        char from[80];
        snprintf(from, sizeof from, "--%s", o->name);
        if (o->type == CLI_FLAG) {
            values[i].on = true;
            values[i].given = true;
        } else if (set_value(cmd, o, &values[i], optarg, from)) {
            return 2;
        }
    }
    /* 2. The environment, for what no flag set: flags win, and a bad
     * value in the environment does not matter when a flag replaces it. */
    for (int i = 0; i < n; i++) {
        const cli_option *o = &cmd->options[i];
        const char *e = o->env ? getenv(o->env) : NULL;
        if (!values[i].given && e && *e && set_value(cmd, o, &values[i], e, o->env))
            return 2;
    }
    int operands = argc - optind;
    if (operands < cmd->min_args)
        return cli_usage_error(cmd, "missing operand (usage: digitd %s %s)",
                               cmd->name, cmd->synopsis);
    if (cmd->max_args >= 0 && operands > cmd->max_args)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + cmd->max_args]);
    /* Shipped files named by default are found where they were installed. */
    for (int i = 0; i < n; i++)
        if (cmd->options[i].type == CLI_DATA && !values[i].given && values[i].str)
            values[i].str = cli_data_path(values[i].str, values[i].resolved,
                                          sizeof values[i].resolved);
    *rest = optind;
    return -1;
}

bool cli_int8(const cli_value *v, bool calibrated) {
    switch (v->i) {
    case 1: return false; /* fp32 */
    case 2: return true;  /* int8 */
    default: return calibrated && nn_int8_preferred();
    }
}

int cli_threads(const cli_value *v) {
    if (v->given) return (int)v->i;
    int n = cli_cores();
    return n < CLI_THREADS_MAX ? n : CLI_THREADS_MAX;
}

const char *cli_data_path(const char *rel, char *buf, size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0'; /* exe is now the binary's directory */
            static const char *const bases[] = {"/../share/digitd", "/.."};
            for (size_t k = 0; k < sizeof bases / sizeof bases[0]; k++) {
                char dir[PATH_MAX + 32], real[PATH_MAX];
                snprintf(dir, sizeof dir, "%s%s", exe, bases[k]);
                if (!realpath(dir, real)) continue; /* no such folder */
                int len = snprintf(buf, size, "%s/%s", real, rel);
                if (len > 0 && (size_t)len < size && access(buf, R_OK) == 0) return buf;
            }
        }
    }
    snprintf(buf, size, "%s", rel);
    return buf;
}
