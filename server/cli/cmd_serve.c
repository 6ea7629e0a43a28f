/* cmd_serve.c: `digitd serve`, the HTTP daemon: options and environment,
 * start-up, and the signal loop (SIGHUP reloads the model, SIGTERM and
 * SIGINT stop gracefully).
 *
 * Signals are blocked in every thread (the HTTP workers inherit the mask
 * from here) and taken synchronously with sigwait in the main thread, so
 * reloading and shutting down run as ordinary code, never in a handler. */
#include <errno.h>
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
#include "options.h"
#include "commands.h"
#include "http_server.h"
#include "sandbox.h"
#include "work_queue.h"
#include "metrics.h"
#include "model_repo.h"
#include "predict_request.h"
#include "static_files.h"

typedef struct {
    const char *model;
    const char *model_dir;     /* NULL: serve --model alone */
    const char *default_model; /* NULL: the repository's only/first model */
    const char *admin_token;   /* NULL: v2 repository routes answer 403 */
    const char *web_root;
    const char *bind;
    int port;
    const char *user;   /* NULL: "nobody" when started as root */
    bool seccomp;
    unsigned drain_s;   /* readiness 503 this long before the listener closes */
    http_config http;
    work_queue_config queue;
} serve_options;

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

/* Every option once: flag, environment variable, range, default, help
 * (the help text and the limits table in docs/limits.md follow it). */
enum {
    O_PORT, O_BIND, O_MODEL, O_MODEL_DIR, O_DEFAULT_MODEL, O_WEB_ROOT, O_THREADS,
    O_WORKERS, O_QUEUE, O_BATCH, O_BATCH_WAIT, O_INLINE_MACS, O_MAX_BODY, O_MAX_INFLIGHT, O_MAX_SIDE,
    O_MAX_WIDTH, O_MAX_HEIGHT, O_MAX_PIXELS, O_MAX_BATCH, O_MAX_CONN, O_MAX_PER_IP,
    O_TIMEOUT, O_READ_DEADLINE, O_WORK_DEADLINE, O_DRAIN, O_CORS, O_USER, O_NO_SECCOMP,
    O_ADMIN_TOKEN, O_LOG_FORMAT, O_QUIET, O_PRECISION, O_COUNT
};

static const cli_option serve_options_table[O_COUNT] = {
    [O_PORT] = {"port", 'p', "DIGITD_PORT", CLI_INT, "N", 0, 65535, CLI_DEFAULT_PORT,
                "TCP port; 0 = any free one"},
    [O_BIND] = {"bind", 'b', "DIGITD_BIND", CLI_STRING, "ADDR", 0, 0, CLI_DEFAULT_BIND,
                "IPv4 or IPv6 address to listen on"},
    [O_MODEL] = CLI_OPTION_MODEL,
    [O_MODEL_DIR] = {"model-dir", 0, "DIGITD_MODEL_DIR", CLI_STRING, "DIR", 0, 0, NULL,
                     "serve DIR/NAME/VERSION/model.digitd instead of --model"},
    [O_DEFAULT_MODEL] = {"default-model", 0, "DIGITD_DEFAULT_MODEL", CLI_STRING, "NAME", 0,
                         0, NULL, "--model-dir's model for /predict (the only or first)"},
    [O_WEB_ROOT] = {"web-root", 'w', "DIGITD_WEB_ROOT", CLI_DATA, "DIR", 0, 0,
                    CLI_DEFAULT_WEB_ROOT, "the drawing page's files"},
    [O_THREADS] = {"threads", 't', "DIGITD_THREADS", CLI_INT, "N", 1, CLI_THREADS_MAX, NULL,
                   "HTTP threads (default: the cores when the default model runs on "
                   "them (--inline-macs), else half the cores, at least 1)"},
    [O_WORKERS] = {"workers", 0, "DIGITD_WORKERS", CLI_INT, "N", 1, CLI_THREADS_MAX, NULL,
                   "inference threads (default: the cores)"},
    [O_QUEUE] = {"queue", 0, "DIGITD_QUEUE", CLI_INT, "N", 1, 1000000, "1024",
                 "requests waiting for a worker, then 503"},
    /* 4: every answer of a pass waits for the whole pass, and the int8
     * CNN costs no more per image at batch 4 than at 32 (56-58 against
     * 59-62 us), so larger passes only widen the latencies (bench/README,
     * "A batch of four"); 4 rows are also the int8 kernels' row tile. */
    [O_BATCH] = {"batch", 0, "DIGITD_BATCH", CLI_INT, "N", 1, 1024, "4",
                 "inputs per forward pass (dynamic batching)"},
    [O_BATCH_WAIT] = {"batch-wait-us", 0, "DIGITD_BATCH_WAIT_US", CLI_INT, "US", 0, 1000000,
                      "0", "wait this long for more inputs to batch"},
    /* 1 M: the MLP (235 k multiply-adds, about 5 us a pass) costs 27-34
     * us of CPU a JSON request run where it arrives, 48-51 through the
     * queue; the CNN (11.5 M) is served faster batched (bench/README,
     * "Small requests where they arrive"). */
    [O_INLINE_MACS] = {"inline-macs", 0, "DIGITD_INLINE_MACS", CLI_INT, "N", 0, 1 << 30,
                       "1000000",
                       "run a JSON request of at most 16 KiB on the HTTP thread, "
                       "unbatched, when the model costs at most N multiply-adds an "
                       "input; 0 = never"},
    [O_MAX_BODY] = {"max-body", 0, "DIGITD_MAX_BODY", CLI_SIZE, "SIZE", 1, 1 << 30, "4M",
                    "one request body"},
    [O_MAX_INFLIGHT] = {"max-inflight", 0, "DIGITD_MAX_INFLIGHT", CLI_SIZE, "SIZE", 1,
                        1 << 30, "64M", "bodies held at once, then 503"},
    [O_MAX_SIDE] = CLI_OPTION_MAX_IMAGE_SIDE,
    [O_MAX_WIDTH] = {"max-image-width", 0, "DIGITD_MAX_IMAGE_WIDTH", CLI_INT, "N", 1, 16384,
                     NULL, "image width limit (default: --max-image-side)"},
    [O_MAX_HEIGHT] = {"max-image-height", 0, "DIGITD_MAX_IMAGE_HEIGHT", CLI_INT, "N", 1,
                      16384, NULL, "image height limit (default: --max-image-side)"},
    [O_MAX_PIXELS] = {"max-pixels", 0, "DIGITD_MAX_PIXELS", CLI_INT, "N", 1, 1 << 30,
                      "16777216", "decoded pixels per request, batch included"},
    [O_MAX_BATCH] = {"max-batch", 0, "DIGITD_MAX_BATCH", CLI_INT, "N", 1, PREDICT_MAX_BATCH,
                     "256", "inputs per JSON batch"},
    [O_MAX_CONN] = {"max-connections", 0, "DIGITD_MAX_CONNECTIONS", CLI_INT, "N", 1, 65536,
                    "512", "open connections"},
    [O_MAX_PER_IP] = {"max-per-ip", 0, "DIGITD_MAX_PER_IP", CLI_INT, "N", 0, 65536, "128",
                      "connections per client address; 0 = any"},
    [O_TIMEOUT] = {"timeout", 0, "DIGITD_TIMEOUT", CLI_INT, "S", 1, 3600, "10",
                   "idle connection timeout, seconds"},
    [O_READ_DEADLINE] = {"read-deadline", 0, "DIGITD_READ_DEADLINE", CLI_INT, "S", 1, 3600,
                         "30", "headers and body must arrive within, seconds"},
    [O_WORK_DEADLINE] = {"work-deadline", 0, "DIGITD_WORK_DEADLINE", CLI_INT, "MS", 1,
                         600000, "5000", "longest wait for a worker, then 503"},
    [O_DRAIN] = {"drain-seconds", 0, "DIGITD_DRAIN_SECONDS", CLI_INT, "S", 0, 3600, "0",
                 "on SIGTERM, /readyz answers 503 this long first"},
    [O_CORS] = {"cors-origin", 0, "DIGITD_CORS_ORIGIN", CLI_STRING, "LIST", 0, 0, NULL,
                "origins allowed by CORS, comma-separated, or *"},
    [O_USER] = {"user", 'u', "DIGITD_USER", CLI_STRING, "NAME", 0, 0, NULL,
                "started as root: become NAME once listening (nobody)"},
    [O_NO_SECCOMP] = {"no-seccomp", 0, "DIGITD_NO_SECCOMP", CLI_FLAG, NULL, 0, 0, NULL,
                      "no system-call filter"},
    [O_ADMIN_TOKEN] = {"admin-token", 0, "DIGITD_ADMIN_TOKEN", CLI_STRING, "T", 0, 0, NULL,
                       "allow POST /v2/repository/... with Bearer T"},
    [O_LOG_FORMAT] = {"log-format", 0, "DIGITD_LOG_FORMAT", CLI_CHOICE, "text|json", 0, 0,
                      "text", "access log lines"},
    [O_QUIET] = {"quiet", 'q', "DIGITD_QUIET", CLI_FLAG, NULL, 0, 0, NULL,
                 "no access log"},
    [O_PRECISION] = CLI_OPTION_PRECISION,
};

static const cli_command serve_command = {
    "serve", "[OPTIONS]",
    "Serves digit predictions over HTTP (POST /predict, /v2) and the drawing page.",
    serve_options_table, O_COUNT, 0, 0,
    "SIGHUP reloads the models (a bad file is refused; the old one serves on).\n"
    "SIGTERM/SIGINT drain, finish the requests in flight and exit 0.\n"
    "API: docs/http-api.md; limits: docs/limits.md.\n",
};

/* argv and the environment into *o. Returns -1 to go on, else the exit
 * status (0 after --help/--version, 2 after an error, reported). */
static int parse_options(serve_options *o, int argc, char **argv) {
    static cli_value v[O_COUNT]; /* strings point into it: kept for the run */
    int rest, st = cli_parse(&serve_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    int cores = cli_threads(&(cli_value){0}); /* not given: the cores */
    memset(o, 0, sizeof *o);
    o->model = v[O_MODEL].str;
    o->model_dir = v[O_MODEL_DIR].str;
    o->default_model = v[O_DEFAULT_MODEL].str;
    o->web_root = v[O_WEB_ROOT].str;
    o->bind = v[O_BIND].str;
    o->port = (int)v[O_PORT].i;
    o->user = v[O_USER].str;
    o->seccomp = !v[O_NO_SECCOMP].on;
    o->drain_s = (unsigned)v[O_DRAIN].i;
    o->admin_token = v[O_ADMIN_TOKEN].str;
    if (o->admin_token && strlen(o->admin_token) < 16)
        return cli_usage_error(&serve_command, "--admin-token: at least 16 characters, please");
    o->queue = (work_queue_config){
        .workers = v[O_WORKERS].given ? (int)v[O_WORKERS].i : cores,
        .capacity = (int)v[O_QUEUE].i,
        .max_batch = (int)v[O_BATCH].i,
        .max_wait_us = v[O_BATCH_WAIT].i,
        .nice = 5,
        .int8 = cli_int8(&v[O_PRECISION], true),
        .inline_max_macs = (uint64_t)v[O_INLINE_MACS].i,
    };
    int side = (int)v[O_MAX_SIDE].i;
    o->http = (http_config){
        .listen_fd = -1,
        .threads = v[O_THREADS].given ? (int)v[O_THREADS].i : 0, /* 0: http_threads() */
        .max_body = (size_t)v[O_MAX_BODY].i,
        .max_inflight_bytes = (size_t)v[O_MAX_INFLIGHT].i,
        .max_width = v[O_MAX_WIDTH].given ? (int)v[O_MAX_WIDTH].i : side,
        .max_height = v[O_MAX_HEIGHT].given ? (int)v[O_MAX_HEIGHT].i : side,
        .max_pixels = v[O_MAX_PIXELS].i,
        .max_batch = (int)v[O_MAX_BATCH].i,
        .max_connections = (unsigned)v[O_MAX_CONN].i,
        .max_per_ip = (unsigned)v[O_MAX_PER_IP].i,
        .timeout_s = (unsigned)v[O_TIMEOUT].i,
        .read_deadline_s = (unsigned)v[O_READ_DEADLINE].i,
        .work_deadline_ms = (unsigned)v[O_WORK_DEADLINE].i,
        .cors_origins = v[O_CORS].str,
        .quiet = v[O_QUIET].on,
        .log_format = v[O_LOG_FORMAT].i == 1 ? LOG_JSON : LOG_TEXT,
    };
    return -1;
}

/* ---- model loading ----------------------------------------------------- */

/* Says on stderr what the default model is now. */
static void log_default_model(model_repo *repo, const char *how) {
    model_ref ref;
    if (model_repo_acquire(repo, NULL, NULL, &ref) != REPO_OK) {
        char name[MODEL_REPO_NAME_MAX];
        model_repo_default_name(repo, name, sizeof name);
        logf_("default model %s: not loaded; /predict and /readyz answer 503 until a "
              "reload loads a good file", name);
        return;
    }
    served_model *cur = ref.model;
    logf_("model %s: %s version %llu = %s (%s, %zu parameters, sha256 %.16s...)", how,
          ref.name, (unsigned long long)ref.version, cur->id, cur->architecture,
          cur->net->n_params, cur->sha256);
    served_model_release(cur);
}

/* SIGHUP: every model is read again; a file that fails keeps its old
 * version serving. */
static void reload_models(model_repo *repo, metrics *m) {
    nn_error err;
    if (model_repo_reload_all(repo, &err) != 0) {
        atomic_fetch_add(&m->reloads_failed, 1);
        model_ref ref;
        bool serving = model_repo_acquire(repo, NULL, NULL, &ref) == REPO_OK;
        logf_("model reload refused: %s; %s%s", err.msg,
              serving ? "still serving " : "no model is serving",
              serving ? ref.model->id : "");
        if (serving) served_model_release(ref.model);
        return;
    }
    atomic_fetch_add(&m->reloads_ok, 1);
    log_default_model(repo, "reloaded");
}

/* ---- the command ------------------------------------------------------ */

/* The HTTP threads when --threads is not given, for the default model m
 * (NULL: none loaded yet). Where the HTTP threads run m's requests
 * themselves (--inline-macs) they compute like the workers, one per core:
 * one thread was the MLP's limit. Else they only move bytes, and half the
 * cores do: one moved 18k CNN requests/s at 38% of a core, and the CNN's
 * p99 grew from 1.75-1.84 to 1.84-2.07 ms with a second (bench/README,
 * "Small requests where they arrive"). */
static int http_threads(const served_model *m, const work_queue_config *q) {
    int cores = cli_threads(&(cli_value){0});
    bool computes = m && nn_net_macs(m->net) <= q->inline_max_macs;
    return computes ? cores : (cores + 1) / 2;
}

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
    if (rc >= 0) return rc;

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

    /* --model-dir: a repository of named, versioned models; else the one
     * --model file as a one-model repository. A model that fails to load
     * leaves the daemon up and not ready, for a reload to fix. */
    model_repo *repo;
    if (o.model_dir) {
        repo = model_repo_open_dir(o.model_dir, o.default_model, &err);
        if (!repo) {
            fprintf(stderr, "digitd serve: --model-dir %s: %s\n", o.model_dir, err.msg);
            close(fd);
            return 2;
        }
    } else {
        repo = model_repo_open_file(o.model, &err);
        if (!repo) {
            fprintf(stderr, "digitd serve: --model: %s\n", err.msg);
            close(fd);
            return 2;
        }
        if (!model_repo_ready(repo)) logf_("model not loaded: %s", err.msg);
    }
    log_default_model(repo, "loaded");

    static_root web;
    if (static_root_open(&web, o.web_root, &err) != 0) {
        logf_("%s; the page is not served (the API is)", err.msg);
        memset(&web, 0, sizeof web);
    }

    static server_ctx ctx;
    ctx.repo = repo;
    ctx.admin_token = o.admin_token;
    ctx.web = &web;
    ctx.m = &m;
    ctx.cfg = &o.http;
    atomic_init(&ctx.draining, 0);
    atomic_init(&ctx.in_flight, 0);
    ctx.queue = work_queue_start(&o.queue, &err);
    if (!ctx.queue) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        model_repo_close(repo);
        close(fd);
        return 1;
    }
    { /* say now which precision --precision gives the default model */
        model_ref ref;
        if (model_repo_acquire(repo, NULL, NULL, &ref) == REPO_OK) {
            const nn_qnet *q = work_queue_qnet(ctx.queue, ref.model);
            if (q)
                logf_("precision: the default model runs in int8 (%s kernel)",
                      nn_qnet_kernel(q));
            else if (o.queue.int8)
                logf_("precision: the default model has no int8 calibration (digitd "
                      "quantize makes one); it runs in float32");
            else logf_("precision: the default model runs in float32");
            if (!o.http.threads) o.http.threads = http_threads(ref.model, &o.queue);
            served_model_release(ref.model);
        }
        if (!o.http.threads) o.http.threads = http_threads(NULL, &o.queue);
    }
    http_server *srv = http_server_start(&o.http, &ctx, &err);
    if (!srv) {
        fprintf(stderr, "digitd serve: %s\n", err.msg);
        work_queue_free(ctx.queue);
        model_repo_close(repo);
        close(fd);
        return 1;
    }
    /* Every thread exists now; the filter covers them all. */
    if (o.seccomp && sandbox_seccomp(&err) != 0) {
        fprintf(stderr, "digitd serve: %s (use --no-seccomp to run without it)\n", err.msg);
        http_server_shutdown(srv, 0);
        model_repo_close(repo);
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
            logf_("SIGHUP: reloading the models");
            reload_models(repo, &m);
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
    model_repo_close(repo);
    logf_("stopped");
    return 0;
}
