/* options.h: one table-driven option layer for every `digitd` command.
 *
 * A command describes its options once, in a table: long name, short
 * letter, environment variable, type, range, default and help text. From
 * that table cli_parse reads the environment and argv (flags win over the
 * environment, both over the default), checks types and ranges, handles
 * -h/--help (the help text is generated from the table and fits 80
 * columns) and -V/--version, and reports every error in one style:
 *
 *   digitd COMMAND: --lr: '5x' is not a number from 1e-09 to 100
 *   Try 'digitd COMMAND --help'.
 *
 * Use:
 *   enum { O_MODEL, O_JSON, O_COUNT };
 *   static const cli_option opts[O_COUNT] = {
 *       [O_MODEL] = CLI_OPTION_MODEL,
 *       [O_JSON]  = {"json", 'j', NULL, CLI_FLAG, NULL, 0, 0, NULL,
 *                    "one JSON object per line"},
 *   };
 *   static const cli_command cmd = {"predict", "[OPTIONS] IMAGE...",
 *       "Classifies image files of a digit.", opts, O_COUNT, 1, -1, NULL};
 *   cli_value v[O_COUNT] = {0};
 *   int rest, st = cli_parse(&cmd, argc, argv, v, &rest);
 *   if (st >= 0) return st;        (help, version or an error: exit status)
 *   ... v[O_MODEL].str, v[O_JSON].on, argv[rest..argc-1] ...
 *
 * Defaults that live elsewhere (nn_train_config_defaults) are preset in
 * the value before cli_parse with cli_preset_*: the help text shows them
 * and the table does not restate them. */
#ifndef DIGITD_CLI_OPTIONS_H
#define DIGITD_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG,   /* no argument; environment value 1/true/yes/on or 0/false/no/off */
    CLI_STRING, /* any text */
    CLI_INT,    /* whole number in [lo, hi] */
    CLI_DOUBLE, /* finite number in [lo, hi] */
    CLI_CHOICE, /* one of the '|'-separated words of metavar, e.g. "sgd|adam" */
    CLI_SIZE,   /* bytes in [lo, hi]: "4194304", "512k", "4M" (powers of 1024) */
    CLI_DATA,   /* a path whose default is a shipped file: resolved by
                   cli_data_path (installed share/digitd/, then the
                   repository beside the binary, then as given) */
} cli_type;

typedef struct {
    const char *name;    /* long name, without "--" */
    char short_name;     /* 0 for none; 'h' and 'V' are taken */
    const char *env;     /* environment variable, or NULL */
    cli_type type;
    const char *metavar; /* "FILE", "N"; for CLI_CHOICE the words "a|b|c" */
    double lo, hi;       /* CLI_INT, CLI_DOUBLE: the accepted range */
    const char *def;     /* default as text, or NULL (none, or preset) */
    const char *help;    /* one sentence; wrapped by the help generator */
} cli_option;

typedef struct {
    const char *name;     /* "train": messages say "digitd train: ..." */
    const char *synopsis; /* after "usage: digitd NAME ", e.g. "[OPTIONS] IMAGE..." */
    const char *summary;  /* a paragraph under the usage line */
    const cli_option *options;
    int n_options;
    int min_args, max_args; /* operands after the options; max -1: any */
    const char *epilog;     /* printed after the options, or NULL */
} cli_command;

/* One option's value after cli_parse. */
typedef struct {
    bool given;      /* set by a flag or the environment, not by default */
    bool on;         /* CLI_FLAG */
    const char *str; /* text of the value (NULL when unset and no default) */
    long i;          /* CLI_INT, CLI_SIZE (bytes); CLI_CHOICE: index of the word */
    double d;        /* CLI_DOUBLE */
    /* internal: the default as shown in --help */
    bool preset;
    char def_text[40];
    char resolved[512]; /* CLI_DATA: the default found by cli_data_path */
} cli_value;

/* Presets a default that lives elsewhere (call before cli_parse). */
void cli_preset_int(cli_value *v, long x);
void cli_preset_double(cli_value *v, double x);
void cli_preset_choice(cli_value *v, long index);

/* Parses the environment and argv (argv[0] is the command name) into
 * values[cmd->n_options] (zero them first, or preset). Returns -1 when the
 * command should go on, with *rest the index of the first operand; else
 * the exit status to return: 0 after --help or --version (printed to
 * stdout), 2 after an error (printed to stderr). */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_value *values,
              int *rest);

/* Prints the command's help (generated from the table) to `to`. */
void cli_help(const cli_command *cmd, const cli_value *values, FILE *to);

/* Reports an error in the common style, "digitd COMMAND: MESSAGE", to
 * stderr. Returns 2 (usage) for convenience: return cli_usage_error(...). */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "digitd COMMAND: MESSAGE" to stderr for run-time failures; returns 1. */
int cli_fail(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stddef.h>

/* Finds a shipped file (e.g. "models/default.model", "web") for a default:
 * DIR/../share/digitd/REL where DIR holds the running binary (an install),
 * else DIR/../REL (the binary in build/ of a checkout), else REL as given
 * (relative to the working directory). Writes into buf; returns buf. */
const char *cli_data_path(const char *rel, char *buf, size_t size);

/* The value of a CLI_OPTION_THREADS option: as given, else the cores
 * this process may run on (cli_cores), at most CLI_THREADS_MAX. */
int cli_threads(const cli_value *v);

/* Options several commands share: defined once here. */
#define CLI_DEFAULT_MODEL "models/default.model"
#define CLI_DEFAULT_WEB_ROOT "web" /* serve: cli_data_path(CLI_DEFAULT_WEB_ROOT, ...) */
#define CLI_THREADS_MAX 256
#define CLI_OPTION_MODEL                                                     \
    {"model", 'm', "DIGITD_MODEL", CLI_DATA, "FILE", 0, 0, CLI_DEFAULT_MODEL, \
     "model file"}
#define CLI_OPTION_THREADS                                                   \
    {"threads", 't', "DIGITD_THREADS", CLI_INT, "N", 1, CLI_THREADS_MAX,     \
     NULL, "worker threads (default: the cores this process may use)"}
#define CLI_OPTION_DATA                                                      \
    {"data", 'd', "DIGITD_MNIST_DIR", CLI_STRING, "DIR", 0, 0, "data/mnist", \
     "MNIST IDX files, raw or .gz"}
/* Where the daemon listens by default (serve) and probe asks. */
#define CLI_DEFAULT_PORT "8080"
#define CLI_DEFAULT_BIND "127.0.0.1"

/* Image width and height limit of the server and predict, in pixels. */
#define CLI_DEFAULT_MAX_IMAGE_SIDE "4096"
#define CLI_OPTION_MAX_IMAGE_SIDE                                            \
    {"max-image-side", 0, "DIGITD_MAX_IMAGE_SIDE", CLI_INT, "N", 1, 16384,  \
     CLI_DEFAULT_MAX_IMAGE_SIDE, "image width and height limit"}
#define CLI_OPTION_JSON(what)                                                \
    {"json", 'j', NULL, CLI_FLAG, NULL, 0, 0, NULL, what}
/* Float32 or int8 inference (serve, eval, predict); see cli_int8. */
#define CLI_OPTION_PRECISION                                                 \
    {"precision", 0, "DIGITD_PRECISION", CLI_CHOICE, "auto|fp32|int8", 0, 0, \
     "auto", "auto: int8 for a model calibrated by `digitd quantize` where faster"}

/* Whether a CLI_OPTION_PRECISION value runs a model in int8. "int8": yes
 * (a model without a calibration is then refused, or served in float32);
 * "fp32": no; "auto": when the model is calibrated and this CPU runs int8
 * faster (nn_int8_preferred: AVX512-VNNI). serve passes calibrated = true
 * and checks each model as it loads. */
bool cli_int8(const cli_value *v, bool calibrated);

#endif
