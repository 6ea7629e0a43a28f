/* cmd_serve.c: `digitd serve`, the HTTP daemon: options and environment,
 * start-up, and the signal loop (SIGHUP reloads the model, SIGTERM and
 * SIGINT stop gracefully).
 *
 * Signals are blocked in every thread (the HTTP workers inherit the mask
 * from here) and taken synchronously with sigwait in the main thread, so
 * reloading and shutting down run as ordinary code, never in a handler. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "http_server.h"
#include "metrics.h"
#include "model_slot.h"
#include "predict_request.h"
#include "static_files.h"

typedef struct {
    const char *model;
    const char *web_root;
    http_config http;
} serve_options;

static void defaults(serve_options *o) {
    o->model = "models/default.model";
    o->web_root = "web";
    o->http = (http_config){
        .bind = "127.0.0.1",
        .port = 8080,
        .threads = cli_cores() < 256 ? cli_cores() : 256,
        .max_body = 4u << 20,
        .max_width = 4096,
        .max_height = 4096,
        .max_batch = PREDICT_MAX_BATCH,
        .max_connections = 512,
        .max_per_ip = 128,
        .timeout_s = 10,
        .cors_origin = NULL,
        .quiet = false,
    };
}

static void usage(FILE *out) {
    fprintf(out,
        "usage: digitd serve [options]\n"
        "Serve handwritten-digit predictions over HTTP (POST /predict) and the\n"
        "drawing page. Every option can also be set with the environment\n"
        "variable in brackets; a flag wins over the environment.\n"
        "\n"
        "  --port N              TCP port, 0 = any free one   [DIGITD_PORT] (8080)\n"
        "  --bind ADDR           IPv4/IPv6 address to listen on [DIGITD_BIND] (127.0.0.1)\n"
        "  --model FILE          model file                   [DIGITD_MODEL] (models/default.model)\n"
        "  --web-root DIR        static files of the page     [DIGITD_WEB_ROOT] (web)\n"
        "  --threads N           worker threads               [DIGITD_THREADS] (cores)\n"
        "  --max-body SIZE       request body limit, k/M ok   [DIGITD_MAX_BODY] (4M)\n"
        "  --max-image-side N    image width and height limit [DIGITD_MAX_IMAGE_SIDE] (4096)\n"
        "  --max-image-width N, --max-image-height N          [DIGITD_MAX_IMAGE_WIDTH/HEIGHT]\n"
        "  --max-batch N         inputs per JSON batch, <=256 [DIGITD_MAX_BATCH] (256)\n"
        "  --max-connections N   open connections             [DIGITD_MAX_CONNECTIONS] (512)\n"
        "  --max-per-ip N        connections per client, 0=any [DIGITD_MAX_PER_IP] (128)\n"
        "  --timeout SECONDS     idle connection timeout      [DIGITD_TIMEOUT] (10)\n"
        "  --cors-origin ORIGIN  send CORS headers for ORIGIN [DIGITD_CORS_ORIGIN] (off)\n"
        "  --quiet               no access log on stderr      [DIGITD_QUIET=1]\n"
        "  --help                this text\n"
        "\n"
        "Signals: SIGHUP reloads the model file (a bad file is refused and the\n"
        "old model keeps serving); SIGTERM/SIGINT finish requests and exit 0.\n"
        "API and limits: docs/http-api.md\n");
}

/* Prints "digitd: " + message + newline on stderr in one write. */
static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    char line[1024];
    int n = snprintf(line, sizeof line, "digitd: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* ---- options ----------------------------------------------------------- */

enum {
    OPT_PORT = 1000, OPT_BIND, OPT_MODEL, OPT_WEB_ROOT, OPT_THREADS,
    OPT_MAX_BODY, OPT_MAX_SIDE, OPT_MAX_WIDTH, OPT_MAX_HEIGHT, OPT_MAX_BATCH,
    OPT_MAX_CONN, OPT_MAX_PER_IP, OPT_TIMEOUT, OPT_CORS, OPT_QUIET, OPT_HELP,
};

static const struct option long_options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"bind", required_argument, NULL, OPT_BIND},
    {"model", required_argument, NULL, OPT_MODEL},
    {"web-root", required_argument, NULL, OPT_WEB_ROOT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-image-side", required_argument, NULL, OPT_MAX_SIDE},
    {"max-image-width", required_argument, NULL, OPT_MAX_WIDTH},
    {"max-image-height", required_argument, NULL, OPT_MAX_HEIGHT},
    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"max-per-ip", required_argument, NULL, OPT_MAX_PER_IP},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"cors-origin", required_argument, NULL, OPT_CORS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* The environment variable of each option, in the order of the enum. */
static const struct {
    int opt;
    const char *env;
} env_names[] = {
    {OPT_PORT, "DIGITD_PORT"},
    {OPT_BIND, "DIGITD_BIND"},
    {OPT_MODEL, "DIGITD_MODEL"},
    {OPT_WEB_ROOT, "DIGITD_WEB_ROOT"},
    {OPT_THREADS, "DIGITD_THREADS"},
    {OPT_MAX_BODY, "DIGITD_MAX_BODY"},
    {OPT_MAX_SIDE, "DIGITD_MAX_IMAGE_SIDE"},
    {OPT_MAX_WIDTH, "DIGITD_MAX_IMAGE_WIDTH"},
    {OPT_MAX_HEIGHT, "DIGITD_MAX_IMAGE_HEIGHT"},
    {OPT_MAX_BATCH, "DIGITD_MAX_BATCH"},
    {OPT_MAX_CONN, "DIGITD_MAX_CONNECTIONS"},
    {OPT_MAX_PER_IP, "DIGITD_MAX_PER_IP"},
    {OPT_TIMEOUT, "DIGITD_TIMEOUT"},
    {OPT_CORS, "DIGITD_CORS_ORIGIN"},
    {OPT_QUIET, "DIGITD_QUIET"},
};

/* "4194304", "512k", "4M" (powers of 1024) -> bytes, 1 B .. 1 GiB. */
static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return -1;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end != '\0' || v == 0 || v > (1ull << 30) / mul) return -1;
    *out = (size_t)(v * mul);
    return 0;
}

/* Applies one option value; `from` names its source for messages
 * ("--port" or "DIGITD_PORT"). Returns 0, or -1 after printing why. */
static int apply(serve_options *o, int opt, const char *val, const char *from) {
    long v;
    http_config *h = &o->http;
    switch (opt) {
    case OPT_PORT:
        if (cli_int(val, from, 0, 65535, &v)) return -1;
        h->port = (int)v;
        return 0;
    case OPT_BIND: h->bind = val; return 0;
    case OPT_MODEL: o->model = val; return 0;
    case OPT_WEB_ROOT: o->web_root = val; return 0;
    case OPT_THREADS:
        if (cli_int(val, from, 1, 256, &v)) return -1;
        h->threads = (int)v;
        return 0;
    case OPT_MAX_BODY:
        if (parse_size(val, &h->max_body)) {
            fprintf(stderr, "digitd: %s: '%s' is not a size from 1 byte to 1G "
                            "(e.g. 4194304, 512k, 4M)\n", from, val);
            return -1;
        }
        return 0;
    case OPT_MAX_SIDE:
    case OPT_MAX_WIDTH:
    case OPT_MAX_HEIGHT:
        if (cli_int(val, from, 1, 16384, &v)) return -1;
        if (opt != OPT_MAX_HEIGHT) h->max_width = (int)v;
        if (opt != OPT_MAX_WIDTH) h->max_height = (int)v;
        return 0;
    case OPT_MAX_BATCH:
        if (cli_int(val, from, 1, PREDICT_MAX_BATCH, &v)) return -1;
        h->max_batch = (int)v;
        return 0;
    case OPT_MAX_CONN:
        if (cli_int(val, from, 1, 65536, &v)) return -1;
        h->max_connections = (unsigned)v;
        return 0;
    case OPT_MAX_PER_IP:
        if (cli_int(val, from, 0, 65536, &v)) return -1;
        h->max_per_ip = (unsigned)v;
        return 0;
    case OPT_TIMEOUT:
        if (cli_int(val, from, 1, 3600, &v)) return -1;
        h->timeout_s = (unsigned)v;
        return 0;
    case OPT_CORS:
        h->cors_origin = val[0] ? val : NULL;
        return 0;
    case OPT_QUIET:
        /* the flag has no value; the variable is a boolean */
        h->quiet = !val || !(strcmp(val, "0") == 0 || strcasecmp(val, "false") == 0 ||
                             strcasecmp(val, "no") == 0);
        return 0;
    }
    return -1;
}

/* Environment first, flags second, so flags win. Returns 0, 1 after
 * --help, or -1 on a bad value (message printed). */
static int parse_options(serve_options *o, int argc, char **argv) {
    defaults(o);
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) {
        const char *val = getenv(env_names[i].env);
        if (val && val[0] && apply(o, env_names[i].opt, val, env_names[i].env) != 0)
            return -1;
    }
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Try 'digitd serve --help'.\n");
            return -1;
        }
        char from[40];
        for (const struct option *lo = long_options; lo->name; lo++)
            if (lo->val == c) snprintf(from, sizeof from, "--%s", lo->name);
        if (apply(o, c, optarg, from) != 0) return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "digitd serve: unexpected argument '%s'\nTry 'digitd serve --help'.\n",
                argv[optind]);
        return -1;
    }
    return 0;
}

/* ---- model loading ----------------------------------------------------- */

/* Loads (or reloads) the model and says so on stderr either way. */
static void load_model(model_slot *slot, metrics *m, int reload) {
    nn_error err;
    if (model_slot_load(slot, &err) != 0) {
        if (reload) atomic_fetch_add(&m->reloads_failed, 1);
        served_model *cur = model_slot_acquire(slot);
        if (cur)
            logf_("model %s: %s; still serving %s", reload ? "reload refused" : "not loaded",
                  err.msg, cur->id);
        else
            logf_("model not loaded: %s; /predict and /readyz answer 503 until a "
                  "SIGHUP loads a good file", err.msg);
        served_model_release(cur);
        return;
    }
    if (reload) atomic_fetch_add(&m->reloads_ok, 1);
    atomic_store(&m->model_loaded, 1);
    served_model *cur = model_slot_acquire(slot);
    logf_("model %s: %s (%s, %zu parameters, sha256 %.16s...) from %s",
          reload ? "reloaded" : "loaded", cur->id, cur->architecture,
          cur->net->n_params, cur->sha256, slot->path);
    served_model_release(cur);
}

/* ---- the command ------------------------------------------------------ */

int cmd_serve(int argc, char **argv) {
    serve_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != 0) return rc > 0 ? 0 : 2;

    /* Block the signals we wait for before any thread exists, so that
     * every thread inherits the mask and only sigwait below sees them. A
     * client hanging up mid-answer must not kill us with SIGPIPE. */
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGHUP);
    sigaddset(&wait_set, SIGTERM);
    sigaddset(&wait_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &wait_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    static metrics m; /* large (per-status counters): not on the stack */
    metrics_init(&m);

    model_slot slot;
    nn_error err;
    if (model_slot_init(&slot, o.model, &err) != 0) {
        fprintf(stderr, "digitd serve: --model: %s\n", err.msg);
        return 2;
    }
    load_model(&slot, &m, 0);

    static_root web;
    if (static_root_open(&web, o.web_root, &err) != 0) {
        logf_("%s; the page is not served (the API is)", err.msg);
        memset(&web, 0, sizeof web);
    }

    http_server *srv = http_server_start(&o.http, &slot, &web, &m, &err);
    if (!srv) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        model_slot_destroy(&slot);
        return 1;
    }
    const char *v6 = strchr(o.http.bind, ':') ? "[" : "";
    logf_("listening on http://%s%s%s:%d (%d threads, body limit %zu bytes, "
          "timeout %us)", v6, o.http.bind, v6[0] ? "]" : "", http_server_port(srv),
          o.http.threads, o.http.max_body, o.http.timeout_s);

    for (;;) {
        int sig;
        if (sigwait(&wait_set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            logf_("SIGHUP: reloading the model");
            load_model(&slot, &m, 1);
            continue;
        }
        logf_("%s: finishing requests in flight, then exiting",
              sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    /* Up to the connection timeout: no request should take longer. */
    long left = http_server_shutdown(srv, (int)o.http.timeout_s * 1000);
    if (left) logf_("%ld requests were still in flight and were cut", left);
    model_slot_destroy(&slot);
    logf_("stopped");
    return 0;
}
