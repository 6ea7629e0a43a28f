/*
 * cmd_train.c: `digitd train`: MNIST IDX files in, model file out.
 *
 * Loads the training and test sets, holds out a validation split, trains
 * with nn_train (progress through a callback: a bar on a terminal, one
 * line per epoch in a pipe), measures test accuracy into the model's
 * metadata and writes the file atomically. Ctrl-C stops training and
 * writes nothing, so the file at --out is never damaged.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/options.h"
#include "cli/terminal.h"
#include "commands.h"
#include "json_writer.h"
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

enum {
    O_DATA, O_OUT, O_LAYERS, O_ACTIVATION, O_OPTIMIZER, O_LR, O_SCHEDULE,
    O_MOMENTUM, O_WEIGHT_DECAY, O_BATCH, O_EPOCHS, O_PATIENCE, O_VAL, O_LIMIT,
    O_NO_AUGMENT, O_SEED, O_THREADS, O_NAME, O_QUIET, O_LOG, O_JSON, O_INIT, O_COUNT
};
/* Defaults of the training settings come from nn_train_config_defaults
 * (preset in cmd_train), not from this table. */
static const cli_option train_options[O_COUNT] = {
    [O_DATA] = CLI_OPTION_DATA,
    [O_OUT] = {"out", 'o', NULL, CLI_STRING, "FILE", 0, 0, NULL,
               "model file to write (required)"},
    [O_LAYERS] = {"layers", 0, NULL, CLI_STRING, "SPEC", 0, 0, "784-256-128-10",
                  "architecture, e.g. conv5x32,pool2,conv5x64,pool2,dense256,"
                  "dropout0.5,dense10 (docs/architecture.md)"},
    [O_ACTIVATION] = {"activation", 0, NULL, CLI_CHOICE, "relu|sigmoid|tanh", 0, 0,
                      "relu", "activation after hidden layers"},
    [O_OPTIMIZER] = {"optimizer", 0, NULL, CLI_CHOICE, "sgd|momentum|adam", 0, 0,
                     NULL, "optimiser"},
    [O_LR] = {"lr", 0, NULL, CLI_DOUBLE, "X", 1e-9, 100, NULL,
              "learning rate at the start"},
    [O_SCHEDULE] = {"schedule", 0, NULL, CLI_CHOICE, "constant|step|cosine", 0, 0,
                    NULL, "learning-rate schedule"},
    [O_MOMENTUM] = {"momentum", 0, NULL, CLI_DOUBLE, "X", 0, 0.9999, NULL,
                    "for --optimizer momentum"},
    [O_WEIGHT_DECAY] = {"weight-decay", 0, NULL, CLI_DOUBLE, "X", 0, 1, NULL,
                        "L2 coefficient"},
    [O_BATCH] = {"batch", 0, NULL, CLI_INT, "N", 1, 65536, NULL, "mini-batch size"},
    [O_EPOCHS] = {"epochs", 0, NULL, CLI_INT, "N", 1, 100000, NULL,
                  "passes over the training set"},
    [O_PATIENCE] = {"patience", 0, NULL, CLI_INT, "N", 0, 100000, NULL,
                    "stop after N epochs without a better validation accuracy "
                    "(0: never)"},
    [O_VAL] = {"val", 0, NULL, CLI_INT, "N", 0, 1000000, "5000",
               "validation samples held out of training"},
    [O_LIMIT] = {"limit", 0, NULL, CLI_INT, "N", 1, 100000000, NULL,
                 "use only the first N training samples"},
    [O_NO_AUGMENT] = {"no-augment", 0, NULL, CLI_FLAG, NULL, 0, 0, NULL,
                      "train on the digits as they are (default: random "
                      "distortions)"},
    [O_SEED] = {"seed", 0, NULL, CLI_INT, "N", 0, 0x7fffffffL, NULL,
                "random seed"},
    [O_THREADS] = CLI_OPTION_THREADS,
    [O_NAME] = {"name", 0, NULL, CLI_STRING, "NAME", 0, 0, NULL,
                "model name recorded in the file"},
    [O_QUIET] = {"quiet", 'q', NULL, CLI_FLAG, NULL, 0, 0, NULL,
                 "no progress output"},
    [O_INIT] = {"init", 0, NULL, CLI_STRING, "FILE", 0, 0, NULL,
                "start from this model's weights (the same layers; a 10-output "
                "last layer may grow to dense11, \"not a digit\")"},
    [O_LOG] = {"log", 'l', NULL, CLI_STRING, "FILE", 0, 0, NULL,
               "write one record per epoch to FILE: CSV when it ends in .csv, "
               "else JSON lines (digitd report FILE draws them)"},
    [O_JSON] = CLI_OPTION_JSON("JSON lines on stdout instead of text: one "
                               "per epoch, then the result"),
};
static const cli_command train_command = {
    "train", "--out FILE [OPTIONS]",
    "Trains a model on MNIST and writes it to FILE (atomically).",
    train_options, O_COUNT, 0, 0,
    "Per epoch: training loss and accuracy, validation accuracy ('*' marks\n"
    "the best so far: those weights are the ones kept), samples/s, learning\n"
    "rate and elapsed time. A progress bar on a terminal (within its width),\n"
    "one plain line per epoch in a pipe.\n\n"
    "The classic tutorial network:\n"
    "  digitd train --layers 784-256-128-10 --activation sigmoid \\\n"
    "      --optimizer sgd --lr 0.1 --schedule constant --batch 100 \\\n"
    "      --epochs 5 --no-augment --val 0 --out classic.model\n",
};

typedef struct {
    bool tty, quiet, json;
    double last_draw; /* elapsed s at the last redraw; < 0: none yet */
    FILE *log;            /* --log: one record per epoch, or NULL */
    bool log_csv;         /* CSV (a .csv name) rather than JSON lines */
    const nn_net *net;    /* for the validation loss of --log and --json */
    const nn_dataset *val;
    int threads;
    bool failed;          /* a log write or the validation loss failed */
} progress_state;

/* Mean cross-entropy of net on d (nats per sample), or -1 when d is empty
 * or memory runs out. Computed in chunks of 256 samples. */
static double mean_loss(const nn_net *net, const nn_dataset *d, int threads) {
    enum { CHUNK = 256 };
    if (!d || d->n <= 0) return -1;
    float *probs = malloc(sizeof(float) * CHUNK * NN_CLASSES);
    if (!probs) return -1;
    double sum = 0;
    nn_error err;
    for (int i = 0; i < d->n; i += CHUNK) {
        int b = d->n - i < CHUNK ? d->n - i : CHUNK;
        if (nn_predict(net, d->images + (size_t)i * NN_PIXELS, b, probs, threads, &err)) {
            free(probs);
            return -1;
        }
        for (int k = 0; k < b; k++) {
            double p = probs[(size_t)k * NN_CLASSES + d->labels[i + k]];
            sum -= log(p > 1e-30 ? p : 1e-30);
        }
    }
    free(probs);
    return sum / d->n;
}

/* One epoch as a JSON object (train --json and JSON-lines logs). Values
 * that do not exist (no validation set) are null. */
static void epoch_json(text_buffer *t, const nn_progress *p, double val_loss) {
    json_writer w;
    jw_init(&w, t);
    jw_object(&w);
    jw_key(&w, "event"); jw_string(&w, "epoch");
    jw_key(&w, "epoch"); jw_int(&w, p->epoch);
    jw_key(&w, "epochs"); jw_int(&w, p->epochs);
    jw_key(&w, "train_loss"); jw_number(&w, p->loss);
    jw_key(&w, "train_accuracy"); jw_number(&w, p->train_accuracy);
    jw_key(&w, "val_loss");
    if (val_loss >= 0) jw_number(&w, val_loss); else jw_null(&w);
    jw_key(&w, "val_accuracy");
    if (p->val_accuracy >= 0) jw_number(&w, p->val_accuracy); else jw_null(&w);
    jw_key(&w, "best"); jw_bool(&w, p->best);
    jw_key(&w, "lr"); jw_number(&w, p->lr);
    jw_key(&w, "samples_per_sec"); jw_number(&w, p->samples_per_sec);
    jw_key(&w, "seconds"); jw_number(&w, p->elapsed);
    jw_end(&w);
}

/* The CSV header of --log FILE.csv; the columns of epoch_json. */
static const char csv_header[] =
    "epoch,epochs,train_loss,train_accuracy,val_loss,val_accuracy,best,lr,"
    "samples_per_sec,seconds\n";

static void draw_bar(const nn_progress *p) {
    /* At most width-1 columns, so the cursor never wraps to a new line
     * and each redraw stays on one line. */
    int width = cli_terminal_width(STDERR_FILENO) - 1;
    double eta = p->samples_per_sec > 0 ? (p->total - p->seen) / p->samples_per_sec : 0;
    char head[48], tail[128];
    snprintf(head, sizeof head, "epoch %d/%d ", p->epoch, p->epochs);
    snprintf(tail, sizeof tail, " loss %.4f acc %.4f %.0f/s ETA %.0fs",
             p->loss, p->train_accuracy, p->samples_per_sec, eta);
    int bar = width - (int)strlen(head) - (int)strlen(tail) - 2;
    if (bar > 30) bar = 30;
    char line[512];
    if (bar >= 5) {
        int done = (int)((double)bar * p->seen / p->total);
        char fill[32];
        memset(fill, '=', (size_t)done);
        fill[done] = '\0';
        snprintf(line, sizeof line, "%s[%s%*s]%s", head, fill, bar - done, "", tail);
    } else {
        snprintf(line, sizeof line, "%s%d%%%s", head, (int)(100.0 * p->seen / p->total), tail);
    }
    if ((int)strlen(line) > width) line[width > 0 ? width : 0] = '\0';
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
}

static int on_progress(const nn_progress *p, void *user) {
    progress_state *st = user;
    if (p->event == NN_EVENT_BATCH) {
        /* Redraw at most ten times a second, only on a terminal, and at
         * the first batch: an epoch can take less than 0.1 s. */
        if (st->quiet || st->json || !st->tty || p->elapsed - st->last_draw < 0.1)
            return interrupted;
        st->last_draw = p->elapsed;
        draw_bar(p);
        return interrupted;
    }
    /* Ctrl-C ends the epoch early: that partial epoch is not a record. */
    if (interrupted) return interrupted;
    double val_loss = (st->log || st->json) ? mean_loss(st->net, st->val, st->threads) : -1;
    if (st->log) {
        if (st->log_csv) {
            fprintf(st->log, "%d,%d,%.9g,%.9g,", p->epoch, p->epochs, p->loss,
                    p->train_accuracy);
            if (val_loss >= 0) fprintf(st->log, "%.9g", val_loss);
            fputc(',', st->log);
            if (p->val_accuracy >= 0) fprintf(st->log, "%.9g", p->val_accuracy);
            fprintf(st->log, ",%d,%.9g,%.9g,%.9g\n", p->best ? 1 : 0, p->lr,
                    p->samples_per_sec, p->elapsed);
        } else {
            text_buffer t;
            tb_init(&t, 256);
            epoch_json(&t, p, val_loss);
            if (jw_print_line(&t, st->log)) st->failed = true;
        }
        /* Each epoch reaches the file at once: a watcher (or a crash)
         * sees every finished epoch. */
        if (fflush(st->log)) st->failed = true;
    }
    if (st->json) {
        text_buffer t;
        tb_init(&t, 256);
        epoch_json(&t, p, val_loss);
        jw_print_line(&t, stdout);
        fflush(stdout);
        return interrupted;
    }
    if (st->quiet) return interrupted;
    if (st->tty) fprintf(stderr, "\r\033[K");
    /* Under 80 columns: epoch, training loss and accuracy, validation
     * accuracy ('*': best so far), samples/s, learning rate, seconds. */
    printf("epoch %d/%d loss %.4f acc %.4f", p->epoch, p->epochs, p->loss,
           p->train_accuracy);
    if (p->val_accuracy >= 0)
        printf(" val %.4f%s", p->val_accuracy, p->best ? " *" : "  ");
    /* One format for the learning rate, whatever its size. */
    printf(" %.0f/s lr %.2e %.1fs\n", p->samples_per_sec, p->lr, p->elapsed);
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
    nn_train_config cfg;
    nn_train_config_defaults(&cfg);
    cli_value v[O_COUNT] = {0};
    cli_preset_choice(&v[O_OPTIMIZER], cfg.optimizer);
    cli_preset_double(&v[O_LR], cfg.lr);
    cli_preset_choice(&v[O_SCHEDULE], cfg.schedule);
    cli_preset_double(&v[O_MOMENTUM], cfg.momentum);
    cli_preset_double(&v[O_WEIGHT_DECAY], cfg.weight_decay);
    cli_preset_int(&v[O_BATCH], cfg.batch);
    cli_preset_int(&v[O_EPOCHS], cfg.epochs);
    cli_preset_int(&v[O_PATIENCE], cfg.patience);
    cli_preset_int(&v[O_SEED], (long)cfg.seed);
    int rest, st = cli_parse(&train_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    const char *data = v[O_DATA].str, *out = v[O_OUT].str;
    const char *layers = v[O_LAYERS].str, *name = v[O_NAME].str;
    static const char *const activations[] = {"relu", "sigmoid", "tanh"};
    const char *activation = activations[v[O_ACTIVATION].i];
    cfg.optimizer = (nn_optimizer)v[O_OPTIMIZER].i;
    cfg.lr = (float)v[O_LR].d;
    cfg.schedule = (nn_lr_schedule)v[O_SCHEDULE].i;
    cfg.momentum = (float)v[O_MOMENTUM].d;
    cfg.weight_decay = (float)v[O_WEIGHT_DECAY].d;
    cfg.batch = (int)v[O_BATCH].i;
    cfg.epochs = (int)v[O_EPOCHS].i;
    cfg.patience = (int)v[O_PATIENCE].i;
    cfg.seed = (uint64_t)v[O_SEED].i;
    cfg.augment = !v[O_NO_AUGMENT].on;
    cfg.threads = cli_threads(&v[O_THREADS]);
    const long val_n = v[O_VAL].i, limit = v[O_LIMIT].given ? v[O_LIMIT].i : 0;
    const bool json = v[O_JSON].on;
    const bool quiet = v[O_QUIET].on || json;
    if (!out)
        return cli_usage_error(&train_command, "--out FILE is required");

    nn_error err;
    if (nn_model_save_check(out, &err) != 0) { /* refuse before training, not after */
        fprintf(stderr, "digitd train: --out %s\n", err.msg);
        return 2;
    }
    nn_net *net = nn_net_create(layers, activation, &err);
    if (!net) {
        cli_fail("train", "%s", err.msg);
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
    int rc = 0;
    if (nn_net_outputs(net) > NN_CLASSES) {
        nn_font *fonts[16];
        const char *fonts_dir = getenv("DIGITD_HERSHEY_DIR");
        int nf = nn_fonts_load_set(fonts_dir && fonts_dir[0] ? fonts_dir
                                                            : "/usr/share/hershey-fonts",
                                   false, fonts, 16, &err);
        nn_negative_source src = {fonts, nf > 0 ? nf : 0, &all, false};
        int bad = nf < 0 || nn_dataset_with_negatives(&all, &src, all.n / 5, all.n / 10,
                                                      cfg.seed, &mixed, &err);
        for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
        if (bad) {
            rc = cli_fail("train", "%s", err.msg);
            goto done;
        }
        if (!quiet)
            printf("added %d generated negatives and styled digits\n", mixed.n - all.n);
        all = mixed;
    }

    nn_rng rng;
    nn_rng_seed(&rng, cfg.seed);
    nn_net_init(net, &rng);
    const char *init = v[O_INIT].str;
    if (init) {
        nn_net *from = nn_model_load(init, &err);
        int bad = !from || nn_net_copy_params(net, from, &err);
        nn_net_free(from);
        if (bad) {
            rc = cli_fail("train", "--init %s", err.msg);
            goto done;
        }
        size_t used = strlen(net->meta.settings);
        snprintf(net->meta.settings + used, sizeof net->meta.settings - used, " --init %s",
                 init);
    }
    if (!quiet) {
        printf("training %s\n%zu parameters, %d training digits, %d for validation, "
               "%d threads\n", arch, net->n_params, all.n, val.n, cfg.threads);
        if (val.n)
            printf("per epoch: training loss and accuracy, validation accuracy "
                   "('*': best so far,\nwhose weights are kept), samples/s, "
                   "learning rate, seconds\n");
    }
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    progress_state ps = {.tty = isatty(STDERR_FILENO), .quiet = quiet,
                         .json = json, .net = net, .val = val.n ? &val : NULL,
                         .threads = cfg.threads, .last_draw = -1};
    const char *log_path = v[O_LOG].str;
    if (log_path) {
        size_t n = strlen(log_path);
        ps.log_csv = n >= 4 && strcmp(log_path + n - 4, ".csv") == 0;
        ps.log = fopen(log_path, "w");
        if (!ps.log) {
            rc = cli_fail("train", "%s: cannot write: %s", log_path, strerror(errno));
            goto done;
        }
        if (ps.log_csv) fputs(csv_header, ps.log);
    }
    rc = nn_train(net, &all, val.n ? &val : NULL, &cfg, on_progress, &ps, &err);
    if (ps.tty && !quiet) fprintf(stderr, "\r\033[K");
    if (ps.log && (fclose(ps.log) != 0 || ps.failed)) {
        cli_fail("train", "%s: the log could not be written in full", log_path);
        if (!rc) rc = -1, err.msg[0] = '\0';
    }
    if (rc) {
        if (err.msg[0]) cli_fail("train", "%s", err.msg);
        rc = 1;
    } else if (interrupted) {
        fprintf(stderr, "digitd train: interrupted; %s left as it was\n", out);
        rc = 130;
    } else if (val.n >= 100 && nn_calibrate(net, &val, 0.015, cfg.threads, &err)) {
        rc = cli_fail("train", "%s", err.msg);
    } else {
        if (!quiet && val.n >= 100)
            printf("calibrated on the validation split: temperature %.3f, reject_p %.3f, "
                   "reject_energy %.3f, ambiguous_margin %.3f\n",
                   net->meta.temperature, net->meta.reject_p, net->meta.reject_energy,
                   net->meta.ambiguous_margin);
        int confusion[NN_CLASSES][NN_CLASSES];
        double acc = nn_evaluate(net, &test, cfg.threads, confusion, &err);
        if (acc < 0) {
            cli_fail("train", "%s", err.msg);
            rc = 1;
        } else {
            net->meta.test_accuracy = acc;
            net->meta.created_unix = (int64_t)time(NULL);
            int correct = 0;
            for (int k = 0; k < NN_CLASSES; k++) correct += confusion[k][k];
            if (!json)
                printf("test accuracy: %.4f (%d/%d)  training took %.1fs\n", acc,
                       correct, test.n, net->meta.train_seconds);
            if (nn_model_save(net, out, &err)) {
                rc = cli_fail("train", "%s", err.msg);
            } else if (json) {
                text_buffer t;
                json_writer w;
                tb_init(&t, 256);
                jw_init(&w, &t);
                jw_object(&w);
                jw_key(&w, "event"); jw_string(&w, "done");
                jw_key(&w, "model"); jw_string(&w, out);
                jw_key(&w, "name"); jw_string(&w, net->meta.name);
                jw_key(&w, "test_accuracy"); jw_number(&w, acc);
                jw_key(&w, "correct"); jw_int(&w, correct);
                jw_key(&w, "total"); jw_int(&w, test.n);
                jw_key(&w, "val_accuracy");
                if (net->meta.val_accuracy >= 0) jw_number(&w, net->meta.val_accuracy);
                else jw_null(&w);
                jw_key(&w, "train_seconds"); jw_number(&w, net->meta.train_seconds);
                jw_end(&w);
                if (jw_print_line(&t, stdout)) rc = 1;
            } else if (!quiet) {
                printf("wrote %s\n", out);
            }
        }
    }
done:
    nn_dataset_free(&mixed);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    nn_net_free(net);
    return rc;
}
