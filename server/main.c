/* main.c: `digitd SUBCOMMAND ...` dispatches to server/cmd_*.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"serve", cmd_serve, "HTTP daemon: the drawing page and POST /predict"},
    {"train", cmd_train, "train a model on MNIST and write the model file"},
    {"eval", cmd_eval, "accuracy, per-class figures and confusion matrix"},
    {"predict", cmd_predict, "classify image files"},
    {"info", cmd_info, "what a model file holds: architecture, accuracy, settings"},
    {"report", cmd_report, "draw a training log (train --log) as curves"},
    {"quantize", cmd_quantize, "calibrate a model for int8 inference"},
    {"probe", cmd_probe, "exit 0 when a local daemon is ready (health check)"},
};

static void usage(FILE *to) {
    fprintf(to, "usage: digitd COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %-8s %s\n", commands[i].name, commands[i].what);
    fprintf(to, "\n`digitd COMMAND --help` for a command's options; "
                "`digitd --version`.\n");
}

int main(int argc, char **argv) {
    /* Over a file size limit (ulimit -f) write(2) then fails with EFBIG,
     * which the writers report ("File too large") and clean up after,
     * instead of SIGXFSZ killing the process silently halfway through a
     * temporary file (tests/faults, group write_fail). */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0 ||
        strcmp(argv[1], "version") == 0) {
        printf("digitd %s\n", DIGITD_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "digitd: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
