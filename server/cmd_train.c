/*
 * cmd_train.c: `digitd train`: MNIST IDX files in, model file out.
 *
 * Loads the training and test sets, holds out a validation split, trains
 * with nn_train (progress through a callback: a bar on a terminal, one
 * line per epoch in a pipe), measures test accuracy into the model's
 * metadata and writes the file atomically. Ctrl-C stops training and
 * writes nothing, so the file at --out is never damaged.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "nn.h"

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
    (void)sig;
    interrupted = 1;
    /* A second Ctrl-C ends the process at once; the model file is still
     * safe because it is only ever replaced by rename. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static void usage(FILE *to) {
    fprintf(to,
        "usage: digitd train --out FILE [OPTIONS]\n"
        "Trains a model on MNIST and writes it to FILE (atomically).\n\n"
        "  --data DIR          MNIST IDX files, raw or .gz (default $DIGITD_MNIST_DIR or data/mnist)\n"
        "  --out FILE          model file to write (required)\n"
        "  --layers SPEC       architecture (default 784-256-128-10), e.g.\n"
        "                      conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10\n"
        "  --activation F      relu, sigmoid or tanh (default relu)\n"
        "  --optimizer O       sgd, momentum or adam (default adam)\n"
        "  --lr X              learning rate (default 0.002)\n"
        "  --schedule S        constant, step or cosine (default cosine)\n"
        "  --momentum X        for momentum (default 0.9)\n"
        "  --weight-decay X    L2 coefficient (default 0)\n"
        "  --batch N           mini-batch size (default 128)\n"
        "  --epochs N          (default 15)\n"
        "  --patience N        stop after N epochs without a better validation accuracy (default 0: never)\n"
        "  --val N             validation samples held out of training (default 5000)\n"
        "  --limit N           use only the first N training samples\n"
        "  --no-augment        train on the digits as they are (default: random distortions)\n"
        "  --seed N            (default 1)\n"
        "  --threads N         (default: all cores)\n"
        "  --init FILE         start from this model's weights (same layers; a 10-output\n"
        "                      last layer may grow to dense11, \"not a digit\")\n"
        "  --name NAME         model name recorded in the file\n"
        "  --quiet             no progress output\n\n"
        "The classic tutorial network:\n"
        "  digitd train --layers 784-256-128-10 --activation sigmoid --optimizer sgd \\\n"
        "      --lr 0.1 --schedule constant --batch 100 --epochs 5 --no-augment --val 0 --out classic.model\n");
}

typedef struct {
    bool tty, quiet;
    double last_draw;
} progress_state;

static int on_progress(const nn_progress *p, void *user) {
    progress_state *st = user;
    if (st->quiet) return interrupted;
    if (p->event == NN_EVENT_BATCH) {
        /* Redraw at most ten times a second. */
        if (!st->tty || p->elapsed - st->last_draw < 0.1) return interrupted;
        st->last_draw = p->elapsed;
        int width = 30, done = (int)((double)width * p->seen / p->total);
        double eta = p->samples_per_sec > 0
                         ? (p->total - p->seen) / p->samples_per_sec
                         : 0;
        fprintf(stderr, "\repoch %d/%d [%.*s%*s] loss %.4f acc %.4f %6.0f samples/s ETA %3.0fs ",
                p->epoch, p->epochs, done, "==============================",
                width - done, "", p->loss, p->train_accuracy,
                p->samples_per_sec, eta);
        fflush(stderr);
        return interrupted;
    }
    if (st->tty) fprintf(stderr, "\r\033[K");
    printf("epoch %d/%d  loss %.4f  train acc %.4f", p->epoch, p->epochs,
           p->loss, p->train_accuracy);
    if (p->val_accuracy >= 0)
        printf("  val acc %.4f%s", p->val_accuracy, p->best ? " *" : "");
    printf("  %.0f samples/s  lr %.2g  %.1fs\n", p->samples_per_sec, p->lr,
           p->elapsed);
    fflush(stdout);
    return interrupted;
}

/* The last n samples of d as a view (no copy): MNIST's training file is
 * already in random order, so its tail is a fair validation split. */
static nn_dataset tail_view(const nn_dataset *d, int n) {
    return (nn_dataset){n, d->images + (size_t)(d->n - n) * NN_PIXELS,
                        d->labels + (d->n - n)};
}

int cmd_train(int argc, char **argv) {
    const char *data = cli_env("DIGITD_MNIST_DIR", "data/mnist");
    const char *out = NULL, *layers = "784-256-128-10", *activation = "relu";
    const char *name = NULL, *init = NULL;
    long val_n = 5000, limit = 0;
    bool quiet = false;
    nn_train_config cfg;
    nn_train_config_defaults(&cfg);
    cfg.threads = cli_cores();

    enum { O_LAYERS = 256, O_ACT, O_OPT, O_LR, O_SCHED, O_MOM, O_WD, O_BATCH,
           O_EPOCHS, O_PATIENCE, O_VAL, O_LIMIT, O_NOAUG, O_SEED, O_THREADS,
           O_NAME, O_QUIET, O_INIT };
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},
        {"out", required_argument, 0, 'o'},
        {"layers", required_argument, 0, O_LAYERS},
        {"activation", required_argument, 0, O_ACT},
        {"optimizer", required_argument, 0, O_OPT},
        {"lr", required_argument, 0, O_LR},
        {"schedule", required_argument, 0, O_SCHED},
        {"momentum", required_argument, 0, O_MOM},
        {"weight-decay", required_argument, 0, O_WD},
        {"batch", required_argument, 0, O_BATCH},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"patience", required_argument, 0, O_PATIENCE},
        {"val", required_argument, 0, O_VAL},
        {"limit", required_argument, 0, O_LIMIT},
        {"no-augment", no_argument, 0, O_NOAUG},
        {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS},
        {"name", required_argument, 0, O_NAME},
        {"init", required_argument, 0, O_INIT},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    long v;
    double x;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case O_LAYERS: layers = optarg; break;
        case O_ACT: activation = optarg; break;
        case O_OPT:
            if (strcmp(optarg, "sgd") == 0) cfg.optimizer = NN_SGD;
            else if (strcmp(optarg, "momentum") == 0) cfg.optimizer = NN_MOMENTUM;
            else if (strcmp(optarg, "adam") == 0) cfg.optimizer = NN_ADAM;
            else {
                fprintf(stderr, "digitd: --optimizer: '%s' is not sgd, momentum or adam\n", optarg);
                return 2;
            }
            break;
        case O_SCHED:
            if (strcmp(optarg, "constant") == 0) cfg.schedule = NN_LR_CONSTANT;
            else if (strcmp(optarg, "step") == 0) cfg.schedule = NN_LR_STEP;
            else if (strcmp(optarg, "cosine") == 0) cfg.schedule = NN_LR_COSINE;
            else {
                fprintf(stderr, "digitd: --schedule: '%s' is not constant, step or cosine\n", optarg);
                return 2;
            }
            break;
        case O_LR:
            if (cli_double(optarg, "--lr", 1e-9, 100, &x)) return 2;
            cfg.lr = (float)x;
            break;
        case O_MOM:
            if (cli_double(optarg, "--momentum", 0, 0.9999, &x)) return 2;
            cfg.momentum = (float)x;
            break;
        case O_WD:
            if (cli_double(optarg, "--weight-decay", 0, 1, &x)) return 2;
            cfg.weight_decay = (float)x;
            break;
        case O_BATCH:
            if (cli_int(optarg, "--batch", 1, 65536, &v)) return 2;
            cfg.batch = (int)v;
            break;
        case O_EPOCHS:
            if (cli_int(optarg, "--epochs", 1, 100000, &v)) return 2;
            cfg.epochs = (int)v;
            break;
        case O_PATIENCE:
            if (cli_int(optarg, "--patience", 0, 100000, &v)) return 2;
            cfg.patience = (int)v;
            break;
        case O_VAL:
            if (cli_int(optarg, "--val", 0, 1000000, &val_n)) return 2;
            break;
        case O_LIMIT:
            if (cli_int(optarg, "--limit", 1, 100000000, &limit)) return 2;
            break;
        case O_NOAUG: cfg.augment = false; break;
        case O_SEED:
            if (cli_int(optarg, "--seed", 0, 0x7fffffffL, &v)) return 2;
            cfg.seed = (uint64_t)v;
            break;
        case O_THREADS:
            if (cli_int(optarg, "--threads", 1, 256, &v)) return 2;
            cfg.threads = (int)v;
            break;
        case O_NAME: name = optarg; break;
        case O_INIT: init = optarg; break;
        case O_QUIET: quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "digitd train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "digitd train: --out FILE is required\n");
        usage(stderr);
        return 2;
    }

    nn_error err;
    nn_net *net = nn_net_create(layers, activation, &err);
    if (!net) {
        fprintf(stderr, "digitd train: %s\n", err.msg);
        return 2;
    }
    nn_dataset train = {0}, test = {0};
    if (nn_mnist_load(data, "train", &train, &err) ||
        nn_mnist_load(data, "t10k", &test, &err)) {
        fprintf(stderr, "digitd train: %s\n(get MNIST with scripts/fetch-mnist.sh, or point --data at it)\n",
                err.msg);
        nn_dataset_free(&train);
        nn_net_free(net);
        return 1;
    }
    nn_dataset all = train; /* the view we train on; train owns memory */
    if (limit > 0 && limit < all.n) all.n = (int)limit;
    if (val_n >= all.n) {
        fprintf(stderr, "digitd train: --val %ld leaves no training samples (of %d)\n",
                val_n, all.n);
        nn_dataset_free(&train);
        nn_dataset_free(&test);
        nn_net_free(net);
        return 2;
    }
    nn_dataset val = tail_view(&all, (int)val_n);
    all.n -= (int)val_n;

    char arch[512];
    nn_net_describe(net, arch, sizeof arch);
    bool conv = strstr(arch, "conv") != NULL;
    if (name) snprintf(net->meta.name, sizeof net->meta.name, "%s", name);
    else snprintf(net->meta.name, sizeof net->meta.name, "%s-%s",
                  conv ? "cnn" : "mlp", layers);
    static const char *opt_names[] = {"sgd", "momentum", "adam"};
    static const char *sched_names[] = {"constant", "step", "cosine"};
    snprintf(net->meta.settings, sizeof net->meta.settings,
             "--layers %s --activation %s --optimizer %s --lr %g --schedule %s "
             "--momentum %g --weight-decay %g --batch %d --epochs %d --patience %d "
             "--val %ld%s --seed %llu --threads %d",
             layers, activation, opt_names[cfg.optimizer], cfg.lr,
             sched_names[cfg.schedule], cfg.momentum, cfg.weight_decay,
             cfg.batch, cfg.epochs, cfg.patience, val_n,
             cfg.augment ? "" : " --no-augment",
             (unsigned long long)cfg.seed, cfg.threads);
    if (limit > 0) {
        size_t used = strlen(net->meta.settings);
        snprintf(net->meta.settings + used, sizeof net->meta.settings - used,
                 " --limit %ld", limit);
    }

    /* An 11th output learns "not a digit" from generated negatives, with
     * digits in styles MNIST lacks beside them (nn/negatives.c). */
    nn_dataset mixed = {0};
    if (nn_net_outputs(net) > NN_CLASSES) {
        nn_font *fonts[16];
        int nf = nn_fonts_load_set(cli_env("DIGITD_HERSHEY_DIR",
                                           "/usr/share/hershey-fonts"),
                                   false, fonts, 16, &err);
        nn_negative_source src = {fonts, nf > 0 ? nf : 0, &all, false};
        int bad = nf < 0 || nn_dataset_with_negatives(&all, &src, all.n / 5,
                                                      all.n / 10, cfg.seed,
                                                      &mixed, &err);
        for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
        if (bad) {
            fprintf(stderr, "digitd train: %s\n", err.msg);
            nn_dataset_free(&train);
            nn_dataset_free(&test);
            nn_net_free(net);
            return 1;
        }
        if (!quiet)
            printf("added %d generated negatives and styled digits\n",
                   mixed.n - all.n);
        all = mixed;
    }

    nn_rng rng;
    nn_rng_seed(&rng, cfg.seed);
    nn_net_init(net, &rng);
    if (init) {
        nn_net *from = nn_model_load(init, &err);
        int bad = !from || nn_net_copy_params(net, from, &err);
        nn_net_free(from);
        if (bad) {
            fprintf(stderr, "digitd train: --init %s: %s\n", init, err.msg);
            nn_dataset_free(&mixed);
            nn_dataset_free(&train);
            nn_dataset_free(&test);
            nn_net_free(net);
            return 1;
        }
        size_t used = strlen(net->meta.settings);
        snprintf(net->meta.settings + used, sizeof net->meta.settings - used,
                 " --init %s", init);
    }
    if (!quiet)
        printf("training %s (%zu parameters) on %d digits, validating on %d, %d threads\n",
               arch, net->n_params, all.n, val.n, cfg.threads);
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    progress_state ps = {.tty = isatty(STDERR_FILENO), .quiet = quiet};
    int rc = nn_train(net, &all, val.n ? &val : NULL, &cfg, on_progress, &ps, &err);
    if (ps.tty && !quiet) fprintf(stderr, "\r\033[K");
    if (rc) {
        fprintf(stderr, "digitd train: %s\n", err.msg);
    } else if (interrupted) {
        fprintf(stderr, "digitd train: interrupted; %s left as it was\n", out);
        rc = 130;
    } else if (val.n >= 100 &&
               nn_calibrate(net, &val, 0.015, cfg.threads, &err)) {
        fprintf(stderr, "digitd train: %s\n", err.msg);
        rc = 1;
    } else {
        if (!quiet && val.n >= 100)
            printf("calibrated on the validation split: temperature %.3f, "
                   "reject_p %.3f, reject_energy %.3f, ambiguous_margin %.3f\n",
                   net->meta.temperature, net->meta.reject_p,
                   net->meta.reject_energy, net->meta.ambiguous_margin);
        int confusion[NN_CLASSES][NN_CLASSES];
        double acc = nn_evaluate(net, &test, cfg.threads, confusion, &err);
        if (acc < 0) {
            fprintf(stderr, "digitd train: %s\n", err.msg);
            rc = 1;
        } else {
            net->meta.test_accuracy = acc;
            net->meta.created_unix = (int64_t)time(NULL);
            printf("test accuracy: %.4f (%d/%d)  training took %.1fs\n", acc,
                   (int)(acc * test.n + 0.5), test.n, net->meta.train_seconds);
            if (nn_model_save(net, out, &err)) {
                fprintf(stderr, "digitd train: %s\n", err.msg);
                rc = 1;
            } else if (!quiet) {
                printf("wrote %s\n", out);
            }
        }
    }
    nn_dataset_free(&mixed);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    nn_net_free(net);
    return rc;
}
