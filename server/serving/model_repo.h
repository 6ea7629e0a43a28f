/* model_repo.h: the models the daemon serves, by name and version: the one
 * truth about what is loaded.
 *
 * Two ways to fill it:
 *   - a directory in the layout Triton and TF Serving use,
 *       DIR/NAME/VERSION/model.digitd
 *     NAME is [A-Za-z0-9_.-]{1,63} not starting with '.'; VERSION is a
 *     decimal number 1..2^53 without leading zeros (other entries are
 *     ignored, so "DIR/NAME/config.txt" or a half-copied "DIR/NAME/.3" do no
 *     harm); every version found is loaded, and a request that names no
 *     version gets the highest;
 *   - one model file (`serve --model FILE`): a one-model repository whose
 *     model is named after the file's base name without its extension at
 *     version 1; reloading re-reads the same file.
 *
 * Concurrency: one mutex guards the table and is held only to look up or
 * swap pointers, never while a file is read or parsed. Each request takes a
 * reference on the served_model it uses (model_repo_acquire) and drops it
 * with served_model_release; load, reload and unload build or drop whole
 * version lists and swap them under the lock, so a request sees either
 * the old set or the new one, a failed load leaves the old set serving, and
 * a model in use is freed by whichever thread drops its last reference.
 *
 * Files are opened with O_NONBLOCK and checked to be regular before they are
 * read (nn_read_file), so a FIFO or device at a model path never blocks a
 * reload. */
#ifndef DIGITD_MODEL_REPO_H
#define DIGITD_MODEL_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>
#include <time.h>

#include "nn.h"

#define MODEL_REPO_FILE "model.digitd" /* the file inside DIR/NAME/VERSION/ */
#define MODEL_REPO_NAME_MAX 64         /* bytes with the NUL */
#define MODEL_REPO_MAX_MODELS 64
#define MODEL_REPO_MAX_VERSIONS 32     /* per model */
#define MODEL_REPO_MAX_VERSION ((uint64_t)1 << 53) /* exact in a JSON number */

/* One loaded model file, shared read-only by every worker thread. Each
 * request holds a reference for as long as it uses it; the last release
 * frees it, so a reload never waits for requests and a request never sees
 * a half-swapped model. */
typedef struct served_model {
    nn_net *net;            /* read-only once published */
    char id[96];            /* "<name>@<first 12 hex digits of SHA-256>" */
    char name[64];          /* the model file's recorded name */
    char architecture[512]; /* nn_net_describe */
    char sha256[65];        /* of the whole file, lowercase hex */
    size_t file_bytes;
    struct timespec loaded_at; /* CLOCK_REALTIME */
    atomic_int refs;
    _Atomic(nn_qnet *) qnet;   /* its int8 form, made on first use */
    atomic_int qnet_refused;   /* 1: the file has no (usable) int8 calibration */
} served_model;

/* The int8 form of m (nn_qnet_create), made the first time it is asked
 * for and kept with the model; NULL when the file carries no usable int8
 * calibration (`digitd quantize` makes one). Thread-safe. */
const nn_qnet *served_model_qnet(served_model *m);

/* Drops one reference; frees the model when it was the last. NULL is a
 * no-op. */
void served_model_release(served_model *m);

typedef struct model_repo model_repo;

/* What a lookup or an operation found. */
typedef enum {
    REPO_OK = 0,
    REPO_NOT_FOUND = -1,   /* no such model (or version) in the repository */
    REPO_UNAVAILABLE = -2, /* known, but unloaded or never loaded */
    REPO_FAILED = -3,      /* a load failed: err says why; nothing changed */
    REPO_BAD_NAME = -4,    /* a name or version that can never exist */
} repo_status;

/* A model taken for one request: `model` holds a reference until
 * served_model_release(ref.model). */
typedef struct {
    served_model *model;
    char name[MODEL_REPO_NAME_MAX]; /* the repository name (DIR/NAME) */
    uint64_t version;
} model_ref;

/* One row of model_repo_index: what Triton's repository index reports. */
typedef struct {
    char name[MODEL_REPO_NAME_MAX];
    uint64_t version;  /* 0 for a model with no loaded version */
    bool ready;        /* state "READY", else "UNAVAILABLE" */
    char reason[256];  /* why unavailable ("" when ready) */
} repo_index_entry;

/* Opens DIR and loads every model in it (each model's versions all load or
 * the model is left unavailable with the reason kept for the index).
 * default_model names the model the existing routes (/predict, /model)
 * use; NULL picks the only model, or else the first name in byte order.
 * Returns NULL with err when DIR cannot be read, holds no model directory,
 * or default_model is not among them. A model whose files are refused does
 * not stop the others from loading: it is listed as unavailable. */
model_repo *model_repo_open_dir(const char *dir, const char *default_model,
                                nn_error *err);

/* A one-model repository over the model file at path, loaded now. When
 * the file is refused the repository is still made, its model unavailable
 * (not ready) until a reload succeeds, and err says why (check
 * model_repo_ready). Returns NULL with err when the path is too long or
 * memory runs out. */
model_repo *model_repo_open_file(const char *path, nn_error *err);

/* Frees the repository's own references. Requests still holding a model
 * keep it alive until they release it. NULL is a no-op. */
void model_repo_close(model_repo *r);

/* Takes a reference on model `name` (NULL or "": the default model) at
 * `version` (NULL or "": the highest loaded version; else decimal digits).
 * On REPO_OK *out is filled and the caller must release out->model;
 * otherwise out->model is NULL. */
repo_status model_repo_acquire(model_repo *r, const char *name,
                               const char *version, model_ref *out);

/* Name of the default model into buf (always NUL-terminated). */
void model_repo_default_name(model_repo *r, char *buf, size_t size);

/* The server is ready when the default model has a loaded version. */
bool model_repo_ready(model_repo *r);

/* The loaded versions of `name`, highest first, into out (at most max).
 * Returns how many, or REPO_NOT_FOUND / REPO_BAD_NAME. */
int model_repo_versions(model_repo *r, const char *name, uint64_t *out, int max);

/* (Re)loads model `name` from DIR/NAME (every version) and swaps it in
 * whole. A model not yet in the table is added when its directory exists.
 * On REPO_FAILED err says why and whatever served before keeps serving.
 * In a one-file repository the only name is the file's model. */
repo_status model_repo_load(model_repo *r, const char *name, nn_error *err);

/* Drops model `name` from service: later requests get REPO_UNAVAILABLE;
 * requests in flight finish on the model they hold. */
repo_status model_repo_unload(model_repo *r, const char *name);

/* Rescans the whole repository (SIGHUP): every model directory is loaded
 * again, new directories are added. Models that fail keep their old
 * versions. Returns 0, or -1 with err naming the first failure. */
int model_repo_reload_all(model_repo *r, nn_error *err);

/* A snapshot for POST /v2/repository/index: one row per loaded version,
 * and one (version 0) for each model with none loaded. *out is malloc'd
 * for the caller to free; returns the row count, or -1 when out of memory.
 * Rows are sorted by name, then version ascending. */
int model_repo_index(model_repo *r, repo_index_entry **out);

/* Whether a string is a name this repository could hold (also guards the
 * path join against "..", '/' and the like). */
bool model_repo_name_valid(const char *name);

/* Parses a version string: decimal, no sign, no leading zero, 1..2^53.
 * Returns 0 and *v, or -1. */
int model_repo_parse_version(const char *s, uint64_t *v);

#endif
