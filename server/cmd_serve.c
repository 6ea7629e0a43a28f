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
#include "sandbox.h"
#include "work_queue.h"
#include "metrics.h"
#include "model_slot.h"
#include "predict_request.h"
#include "static_files.h"

typedef struct {
    const char *model;
    const char *web_root;
    const char *bind;
    int port;
    const char *user;   /* NULL: "nobody" when started as root */
    bool seccomp;
    unsigned drain_s;   /* readiness 503 this long before the listener closes */
    http_config http;
    work_queue_config queue;
} serve_options;

static void defaults(serve_options *o) {
    o->model = "models/default.model";
    o->web_root = "web";
    o->bind = "127.0.0.1";
    o->port = 8080;
    o->user = NULL;
    o->seccomp = true;
    o->drain_s = 0;
    int cores = cli_cores() < 256 ? cli_cores() : 256;
    o->queue = (work_queue_config){
        .workers = cores,
        .capacity = 1024,
        .max_batch = 32,
        .max_wait_us = 0,
        .nice = 5,
    };
    o->http = (http_config){
        .listen_fd = -1,
        .threads = cores,
        .max_body = 4u << 20,
        .max_inflight_bytes = 64u << 20,
        .max_pixels = 16L << 20,
        .read_deadline_s = 30,
        .work_deadline_ms = 5000,
        .log_format = LOG_TEXT,
        .max_width = 4096,
        .max_height = 4096,
        .max_batch = PREDICT_MAX_BATCH,
        .max_connections = 512,
        .max_per_ip = 128,
        .timeout_s = 10,
        .cors_origins = NULL,
        .quiet = false,
    };
}

static void usage(FILE *out) {
    fprintf(out,
        "usage: digitd serve [options]\n"
        "Serve digit predictions over HTTP (POST /predict, /v2) and the drawing page.\n"
        "Each option FOO-BAR is also DIGITD_FOO_BAR in the environment (flags win).\n"
        "  --port N (8080, 0 = any)         --bind ADDR (127.0.0.1)\n"
        "  --model FILE (models/default.model)  --web-root DIR (web)\n"
        "  --threads N    HTTP threads (cores)  --workers N  inference threads (cores)\n"
        "  --queue N      requests waiting for a worker, then 503 (1024)\n"
        "  --batch N      inputs per forward pass (32)\n"
        "  --batch-wait-us N  wait this long for more inputs to batch (0)\n"
        "  --max-body SIZE      one request body, k/M ok (4M)\n"
        "  --max-inflight SIZE  bodies held at once, then 503 (64M)\n"
        "  --max-image-side N   (4096; or --max-image-width/--max-image-height)\n"
        "  --max-pixels N       decoded pixels per request (16777216)\n"
        "  --max-batch N        inputs per JSON batch, <= 256 (256)\n"
        "  --max-connections N (512)         --max-per-ip N (128, 0 = any)\n"
        "  --timeout S      idle connection timeout (10)\n"
        "  --read-deadline S  headers and body must arrive within (30)\n"
        "  --work-deadline MS longest wait for a worker, then 503 (5000)\n"
        "  --drain-seconds S  on SIGTERM, /readyz answers 503 this long first (0)\n"
        "  --cors-origin LIST origins allowed by CORS, comma-separated, or * (off)\n"
        "  --user NAME      started as root: run as NAME once listening (nobody)\n"
        "  --no-seccomp     no system-call filter (DIGITD_SECCOMP=0)\n"
        "  --log-format F   access log as text or json (text); --quiet: none\n"
        "  -h, --help       this text\n"
        "SIGHUP reloads the model (a bad file is refused, the old one serves on).\n"
        "SIGTERM/SIGINT: drain, finish requests in flight, exit 0.\n"
        "API: docs/http-api.md  Limits: docs/limits.md\n");
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
    OPT_WORKERS, OPT_QUEUE, OPT_BATCH, OPT_BATCH_WAIT, OPT_MAX_INFLIGHT, OPT_MAX_PIXELS,
    OPT_READ_DEADLINE, OPT_WORK_DEADLINE, OPT_DRAIN, OPT_USER, OPT_NO_SECCOMP,
    OPT_LOG_FORMAT,
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
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"batch-wait-us", required_argument, NULL, OPT_BATCH_WAIT},
    {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
    {"max-pixels", required_argument, NULL, OPT_MAX_PIXELS},
    {"read-deadline", required_argument, NULL, OPT_READ_DEADLINE},
    {"work-deadline", required_argument, NULL, OPT_WORK_DEADLINE},
    {"drain-seconds", required_argument, NULL, OPT_DRAIN},
    {"user", required_argument, NULL, OPT_USER},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
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
    {OPT_WORKERS, "DIGITD_WORKERS"},
    {OPT_QUEUE, "DIGITD_QUEUE"},
    {OPT_BATCH, "DIGITD_BATCH"},
    {OPT_BATCH_WAIT, "DIGITD_BATCH_WAIT_US"},
    {OPT_MAX_INFLIGHT, "DIGITD_MAX_INFLIGHT"},
    {OPT_MAX_PIXELS, "DIGITD_MAX_PIXELS"},
    {OPT_READ_DEADLINE, "DIGITD_READ_DEADLINE"},
    {OPT_WORK_DEADLINE, "DIGITD_WORK_DEADLINE"},
    {OPT_DRAIN, "DIGITD_DRAIN_SECONDS"},
    {OPT_USER, "DIGITD_USER"},
    {OPT_NO_SECCOMP, "DIGITD_SECCOMP"},
    {OPT_LOG_FORMAT, "DIGITD_LOG_FORMAT"},
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
        o->port = (int)v;
        return 0;
    case OPT_BIND: o->bind = val; return 0;
    case OPT_MODEL: o->model = val; return 0;
    case OPT_WEB_ROOT: o->web_root = val; return 0;
    case OPT_THREADS:
        if (cli_int(val, from, 1, 256, &v)) return -1;
        h->threads = (int)v;
        return 0;
    case OPT_MAX_BODY:
        if (parse_size(val, &h->max_body)) {
            fprintf(stderr, "digitd serve: %s: '%s' is not a size from 1 byte to 1G "
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
        h->cors_origins = val[0] ? val : NULL;
        return 0;
    case OPT_WORKERS:
        if (cli_int(val, from, 1, 256, &v)) return -1;
        o->queue.workers = (int)v;
        return 0;
    case OPT_QUEUE:
        if (cli_int(val, from, 1, 1000000, &v)) return -1;
        o->queue.capacity = (int)v;
        return 0;
    case OPT_BATCH:
        if (cli_int(val, from, 1, 1024, &v)) return -1;
        o->queue.max_batch = (int)v;
        return 0;
    case OPT_BATCH_WAIT:
        if (cli_int(val, from, 0, 1000000, &v)) return -1;
        o->queue.max_wait_us = v;
        return 0;
    case OPT_MAX_INFLIGHT:
        if (parse_size(val, &h->max_inflight_bytes)) {
            fprintf(stderr, "digitd serve: %s: '%s' is not a size from 1 byte to 1G "
                            "(e.g. 64M)\n", from, val);
            return -1;
        }
        return 0;
    case OPT_MAX_PIXELS:
        if (cli_int(val, from, 1, 1L << 30, &v)) return -1;
        h->max_pixels = v;
        return 0;
    case OPT_READ_DEADLINE:
        if (cli_int(val, from, 1, 3600, &v)) return -1;
        h->read_deadline_s = (unsigned)v;
        return 0;
    case OPT_WORK_DEADLINE:
        if (cli_int(val, from, 1, 600000, &v)) return -1;
        h->work_deadline_ms = (unsigned)v;
        return 0;
    case OPT_DRAIN:
        if (cli_int(val, from, 0, 3600, &v)) return -1;
        o->drain_s = (unsigned)v;
        return 0;
    case OPT_USER: o->user = val[0] ? val : NULL; return 0;
    case OPT_NO_SECCOMP:
        /* the flag turns it off; the variable is a boolean */
        o->seccomp = val && !(strcmp(val, "0") == 0 || strcasecmp(val, "false") == 0 ||
                              strcasecmp(val, "no") == 0 || strcasecmp(val, "off") == 0);
        return 0;
    case OPT_LOG_FORMAT:
        if (strcmp(val, "text") == 0) h->log_format = LOG_TEXT;
        else if (strcmp(val, "json") == 0) h->log_format = LOG_JSON;
        else {
            fprintf(stderr, "digitd serve: %s: '%s' is not text or json\n", from, val);
            return -1;
        }
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
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == OPT_HELP || c == 'h') {
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
    served_model *cur = model_slot_acquire(slot);
    logf_("model %s: %s (%s, %zu parameters, sha256 %.16s...) from %s",
          reload ? "reloaded" : "loaded", cur->id, cur->architecture,
          cur->net->n_params, cur->sha256, slot->path);
    served_model_release(cur);
}

/* ---- the command ------------------------------------------------------ */

/* Sleeps up to `seconds`, returning early on SIGTERM/SIGINT again (a
 * second signal means: stop now). */
static void drain_wait(const sigset_t *set, unsigned seconds) {
    struct timespec t = {(time_t)seconds, 0};
    siginfo_t info;
    while (sigtimedwait(set, &info, &t) < 0 && errno == EINTR) {
    }
}

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

    /* Bind first, as whoever started us (a low port needs root), then give
     * root up before reading any file: the model and the page are read as
     * the user that will reload them. */
    nn_error err;
    int fd = listen_socket_open(o.bind, o.port, &err);
    if (fd < 0) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        return 1;
    }
    if (sandbox_drop_privileges(o.user, &err) != 0) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        close(fd);
        return 1;
    }
    o.http.listen_fd = fd;

    static metrics m; /* large (per-status counters): not on the stack */
    metrics_init(&m);

    model_slot slot;
    if (model_slot_init(&slot, o.model, &err) != 0) {
        fprintf(stderr, "digitd serve: --model: %s\n", err.msg);
        close(fd);
        return 2;
    }
    load_model(&slot, &m, 0);

    static_root web;
    if (static_root_open(&web, o.web_root, &err) != 0) {
        logf_("%s; the page is not served (the API is)", err.msg);
        memset(&web, 0, sizeof web);
    }

    static server_ctx ctx;
    ctx.slot = &slot;
    ctx.web = &web;
    ctx.m = &m;
    ctx.cfg = &o.http;
    atomic_init(&ctx.draining, 0);
    atomic_init(&ctx.in_flight, 0);
    ctx.queue = work_queue_start(&o.queue, &err);
    if (!ctx.queue) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        model_slot_destroy(&slot);
        close(fd);
        return 1;
    }
    http_server *srv = http_server_start(&o.http, &ctx, &err);
    if (!srv) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        work_queue_free(ctx.queue);
        model_slot_destroy(&slot);
        close(fd);
        return 1;
    }
    /* Every thread exists now; the filter covers them all. */
    if (o.seccomp && sandbox_seccomp(&err) != 0) {
        fprintf(stderr, "digitd serve: %s (use --no-seccomp to run without it)\n", err.msg);
        http_server_shutdown(srv, 0);
        model_slot_destroy(&slot);
        return 1;
    }
    const char *v6 = strchr(o.bind, ':') ? "[" : "";
    logf_("listening on http://%s%s%s:%d (%d HTTP threads, %d inference workers, "
          "body limit %zu bytes, timeout %us%s%s)", v6, o.bind, v6[0] ? "]" : "",
          listen_socket_port(fd), o.http.threads, o.queue.workers, o.http.max_body,
          o.http.timeout_s, getuid() == 0 ? ", as root" : "",
          o.seccomp ? ", seccomp on" : "");

    int sig = 0;
    for (;;) {
        if (sigwait(&wait_set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            logf_("SIGHUP: reloading the model");
            load_model(&slot, &m, 1);
            continue;
        }
        break;
    }
    /* Draining: readiness fails first, so load balancers move away while
     * every request still gets an answer; then the listener closes. */
    atomic_store(&ctx.draining, 1);
    if (o.drain_s) {
        logf_("%s: draining for %us (/readyz answers 503), then exiting",
              sig == SIGTERM ? "SIGTERM" : "SIGINT", o.drain_s);
        drain_wait(&wait_set, o.drain_s);
    } else {
        logf_("%s: finishing requests in flight, then exiting",
              sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    /* Up to the connection timeout: no request should take longer. */
    long left = http_server_shutdown(srv, (int)o.http.timeout_s * 1000);
    if (left) logf_("%ld requests were still in flight and were cut", left);
    model_slot_destroy(&slot);
    logf_("stopped");
    return 0;
}
