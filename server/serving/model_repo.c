/* model_repo.c: see model_repo.h. */
#include "model_repo.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* No model file we make comes near this; a larger file is a mistake (or
 * an attack) and is refused before it is read. */
#define REPO_MODEL_MAX_BYTES ((size_t)512 << 20)

typedef struct {
    uint64_t version;
    served_model *model; /* one reference held by the table */
} repo_version;

typedef struct {
    char name[MODEL_REPO_NAME_MAX];
    int n;                                       /* loaded versions */
    repo_version v[MODEL_REPO_MAX_VERSIONS];     /* highest first */
    char reason[256]; /* why n == 0: unloaded, or the last load failure */
} repo_entry;

struct model_repo {
    pthread_mutex_t lock; /* guards models[] and n_models; held briefly */
    pthread_mutex_t ops;  /* one load/unload/reload at a time */
    char dir[4096];       /* the repository directory, "" in file mode */
    char file[4096];      /* file mode: the one model file */
    char default_name[MODEL_REPO_NAME_MAX];
    int n_models;
    repo_entry models[MODEL_REPO_MAX_MODELS]; /* sorted by name */
};

/* ---- names and versions ---------------------------------------------- */

bool model_repo_name_valid(const char *name) {
    if (!name || !name[0] || name[0] == '.') return false;
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!ok || n + 1 >= MODEL_REPO_NAME_MAX) return false;
    }
    return true;
}

int model_repo_parse_version(const char *s, uint64_t *v) {
    if (!s || !s[0] || s[0] == '0' || strlen(s) > 16) return -1;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        x = x * 10 + (uint64_t)(*p - '0'); /* 16 digits cannot overflow */
    }
    if (x > MODEL_REPO_MAX_VERSION) return -1;
    *v = x;
    return 0;
}

/* ---- one model file ---------------------------------------------------- */

/* Reads, checks and describes one model file. Returns a served_model with
 * one reference, or NULL with err. */
static served_model *load_served_model(const char *path, nn_error *err) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (nn_read_file(path, REPO_MODEL_MAX_BYTES, &bytes, &len, err) != 0) return NULL;
    served_model *m = calloc(1, sizeof *m);
    if (!m) {
        free(bytes);
        nn_fail(err, "out of memory loading %s", path);
        return NULL;
    }
    nn_error perr;
    m->net = nn_model_parse(bytes, len, &perr);
    if (!m->net) {
        free(bytes);
        free(m);
        nn_fail(err, "%s refused: %s", path, perr.msg);
        return NULL;
    }
    /* Served only from now on: its kernels' per-call weight transforms
     * are made once. Out of memory, it is served unprepared all the same. */
    (void)nn_net_prepare(m->net, &perr);
    uint8_t digest[32];
    nn_sha256(bytes, len, digest);
    free(bytes);
    for (int i = 0; i < 32; i++) snprintf(m->sha256 + 2 * i, 3, "%02x", digest[i]);
    m->file_bytes = len;
    /* A model without a recorded name is called after its file. */
    if (m->net->meta.name[0]) {
        memcpy(m->name, m->net->meta.name, sizeof m->name);
        m->name[sizeof m->name - 1] = '\0';
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        snprintf(m->name, sizeof m->name, "%s", base);
        char *dot = strrchr(m->name, '.');
        if (dot && dot != m->name) *dot = '\0';
    }
    snprintf(m->id, sizeof m->id, "%s@%.12s", m->name, m->sha256);
    nn_net_describe(m->net, m->architecture, sizeof m->architecture);
    clock_gettime(CLOCK_REALTIME, &m->loaded_at);
    atomic_init(&m->refs, 1);
    return m;
}

const nn_qnet *served_model_qnet(served_model *m) {
    nn_qnet *q = atomic_load_explicit(&m->qnet, memory_order_acquire);
    if (q || atomic_load(&m->qnet_refused)) return q;
    nn_error err;
    nn_qnet *made = nn_qnet_create(m->net, &err);
    if (!made) {
        atomic_store(&m->qnet_refused, 1);
        return NULL;
    }
    /* two threads may both make one: the first to publish wins */
    if (!atomic_compare_exchange_strong(&m->qnet, &q, made)) {
        nn_qnet_free(made);
        return q;
    }
    return made;
}

void served_model_release(served_model *m) {
    if (!m) return;
    /* acq_rel: the thread that frees must see every other user's reads
     * finished */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        nn_qnet_free(atomic_load(&m->qnet));
        nn_net_free(m->net);
        free(m);
    }
}

static void release_versions(repo_version *v, int n) {
    for (int i = 0; i < n; i++) served_model_release(v[i].model);
}

static int cmp_version_desc(const void *a, const void *b) {
    uint64_t x = ((const repo_version *)a)->version;
    uint64_t y = ((const repo_version *)b)->version;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Loads every version directory of DIR/NAME into v (highest first, at most
 * MODEL_REPO_MAX_VERSIONS: the highest ones). Returns the count (>= 1),
 * REPO_NOT_FOUND when DIR/NAME is not a directory, or REPO_FAILED with err
 * (no version, or a version whose file is refused: nothing is kept). */
static int load_model_dir(const char *dir, const char *name, repo_version *v,
                          nn_error *err) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return REPO_NOT_FOUND;
        nn_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return REPO_FAILED;
    }
    /* First the version numbers, so only the highest are read. */
    uint64_t found[256];
    int nfound = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t ver;
        if (model_repo_parse_version(e->d_name, &ver) != 0) continue;
        if (nfound < (int)(sizeof found / sizeof found[0])) {
            found[nfound++] = ver;
        } else { /* keep the highest 256 */
            int lo = 0;
            for (int i = 1; i < nfound; i++)
                if (found[i] < found[lo]) lo = i;
            if (ver > found[lo]) found[lo] = ver;
        }
    }
    closedir(d);
    repo_version all[256];
    for (int i = 0; i < nfound; i++) all[i] = (repo_version){found[i], NULL};
    qsort(all, (size_t)nfound, sizeof all[0], cmp_version_desc);
    int n = nfound < MODEL_REPO_MAX_VERSIONS ? nfound : MODEL_REPO_MAX_VERSIONS;
    if (n == 0) {
        nn_fail(err, "model %s has no version directory (%s/%s/1/%s)", name, dir,
                name, MODEL_REPO_FILE);
        return REPO_FAILED;
    }
    for (int i = 0; i < n; i++) {
        char file[8400];
        snprintf(file, sizeof file, "%s/%llu/%s", path,
                 (unsigned long long)all[i].version, MODEL_REPO_FILE);
        served_model *m = load_served_model(file, err);
        if (!m) {
            release_versions(v, i);
            return REPO_FAILED;
        }
        v[i].version = all[i].version;
        v[i].model = m;
    }
    return n;
}

/* ---- the table --------------------------------------------------------- */

/* Index of name in r->models, or -1. Caller holds r->lock. */
static int find_locked(const model_repo *r, const char *name) {
    for (int i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i].name, name) == 0) return i;
    return -1;
}

/* Puts a new version list in place of the old for `name` (adding the entry,
 * in name order, when it is new). Returns the old list's count after moving
 * it into old[], or -1 when the table is full (nothing changed). */
static int swap_in(model_repo *r, const char *name, const repo_version *v, int n,
                   const char *reason, repo_version *old) {
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, name);
    if (i < 0) {
        if (r->n_models >= MODEL_REPO_MAX_MODELS) {
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        i = 0;
        while (i < r->n_models && strcmp(r->models[i].name, name) < 0) i++;
        memmove(&r->models[i + 1], &r->models[i],
                (size_t)(r->n_models - i) * sizeof r->models[0]);
        r->n_models++;
        memset(&r->models[i], 0, sizeof r->models[i]);
        snprintf(r->models[i].name, sizeof r->models[i].name, "%s", name);
    }
    repo_entry *e = &r->models[i];
    int n_old = e->n;
    memcpy(old, e->v, (size_t)n_old * sizeof old[0]);
    if (n > 0) memcpy(e->v, v, (size_t)n * sizeof v[0]); /* v may be NULL when n is 0 */
    e->n = n;
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&r->lock);
    return n_old;
}

/* Records a failure reason for name without touching its versions (adding
 * an empty entry when the model is new, so the index can say why). */
static void note_failure(model_repo *r, const char *name, const char *reason) {
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, name);
    pthread_mutex_unlock(&r->lock);
    if (i < 0) {
        repo_version old[MODEL_REPO_MAX_VERSIONS];
        int n_old = swap_in(r, name, NULL, 0, reason, old);
        if (n_old > 0) release_versions(old, n_old); /* raced with a load */
        return;
    }
    pthread_mutex_lock(&r->lock);
    i = find_locked(r, name);
    if (i >= 0 && r->models[i].n == 0)
        snprintf(r->models[i].reason, sizeof r->models[i].reason, "%s", reason);
    pthread_mutex_unlock(&r->lock);
}

/* The failure reason the index shows: err's message with the repository's
 * directory taken out of every path ("alpha/3/model.digitd: ..."), since
 * the index is an answer and answers never name server paths. */
static void note_failure_relative(model_repo *r, const char *name, const char *msg) {
    char prefix[4200], out[256];
    if (r->dir[0]) {
        snprintf(prefix, sizeof prefix, "%s/", r->dir);
    } else { /* file mode: the file's directory */
        snprintf(prefix, sizeof prefix, "%s", r->file);
        char *slash = strrchr(prefix, '/');
        if (slash) slash[1] = '\0';
        else prefix[0] = '\0';
    }
    size_t plen = strlen(prefix), o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (plen && strncmp(p, prefix, plen) == 0) {
            p += plen;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    note_failure(r, name, out);
}

static model_repo *repo_new(void) {
    model_repo *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->ops, NULL);
    return r;
}

/* Loads DIR/name and swaps it in. Caller holds r->ops. */
static repo_status load_locked_ops(model_repo *r, const char *name, nn_error *err) {
    repo_version v[MODEL_REPO_MAX_VERSIONS];
    repo_version old[MODEL_REPO_MAX_VERSIONS];
    int n;
    if (r->dir[0]) {
        n = load_model_dir(r->dir, name, v, err);
        if (n == REPO_NOT_FOUND) {
            nn_fail(err, "no model named %s in the repository", name);
            return REPO_NOT_FOUND;
        }
        if (n < 0) {
            note_failure_relative(r, name, err->msg);
            return REPO_FAILED;
        }
    } else {
        if (strcmp(name, r->default_name) != 0) {
            nn_fail(err, "no model named %s in the repository", name);
            return REPO_NOT_FOUND;
        }
        served_model *m = load_served_model(r->file, err);
        if (!m) {
            note_failure_relative(r, name, err->msg);
            return REPO_FAILED;
        }
        v[0] = (repo_version){1, m};
        n = 1;
    }
    int n_old = swap_in(r, name, v, n, "", old);
    if (n_old < 0) {
        release_versions(v, n);
        nn_fail(err, "the repository holds %d models already", MODEL_REPO_MAX_MODELS);
        return REPO_FAILED;
    }
    release_versions(old, n_old);
    return REPO_OK;
}

/* ---- opening and closing ---------------------------------------------- */

static int cmp_name(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

model_repo *model_repo_open_dir(const char *dir, const char *default_model,
                                nn_error *err) {
    if (strlen(dir) >= sizeof ((model_repo *)0)->dir) {
        nn_fail(err, "model directory path is too long");
        return NULL;
    }
    if (default_model && default_model[0] && !model_repo_name_valid(default_model)) {
        nn_fail(err, "\"%s\" is not a valid model name", default_model);
        return NULL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        nn_fail(err, "%s: cannot open the model directory: %s", dir, strerror(errno));
        return NULL;
    }
    char(*names)[MODEL_REPO_NAME_MAX] = calloc(MODEL_REPO_MAX_MODELS, sizeof *names);
    if (!names) {
        closedir(d);
        nn_fail(err, "out of memory");
        return NULL;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MODEL_REPO_MAX_MODELS) {
        if (!model_repo_name_valid(e->d_name)) continue;
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        /* model_repo_name_valid bounded the length */
        memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
    if (n == 0) {
        free(names);
        nn_fail(err, "%s holds no model directory (expected %s/NAME/1/%s)", dir, dir,
                MODEL_REPO_FILE);
        return NULL;
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    const char *def = names[0];
    if (default_model && default_model[0]) {
        def = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(names[i], default_model) == 0) def = names[i];
        if (!def) {
            free(names);
            nn_fail(err, "the default model %s is not in %s", default_model, dir);
            return NULL;
        }
    }
    model_repo *r = repo_new();
    if (!r) {
        free(names);
        nn_fail(err, "out of memory");
        return NULL;
    }
    strcpy(r->dir, dir);
    snprintf(r->default_name, sizeof r->default_name, "%s", def);
    for (int i = 0; i < n; i++) {
        nn_error lerr;
        (void)load_locked_ops(r, names[i], &lerr); /* failures stay in the index */
    }
    free(names);
    return r;
}

model_repo *model_repo_open_file(const char *path, nn_error *err) {
    if (strlen(path) >= sizeof ((model_repo *)0)->file) {
        nn_fail(err, "model path is longer than %zu bytes",
                sizeof ((model_repo *)0)->file - 1);
        return NULL;
    }
    served_model *m = load_served_model(path, err);
    model_repo *r = repo_new();
    if (!r) {
        served_model_release(m);
        nn_fail(err, "out of memory");
        return NULL;
    }
    strcpy(r->file, path);
    /* The name is a route segment (/v2/models/NAME): the file's base name
     * without the extension ("default" for models/default.model), whatever
     * the file records, so it is known before the file loads and stays the
     * same across reloads; characters a URL path would escape become '_'. */
    const char *base = strrchr(path, '/');
    snprintf(r->default_name, sizeof r->default_name, "%s", base ? base + 1 : path);
    char *dot = strrchr(r->default_name, '.');
    if (dot && dot != r->default_name) *dot = '\0';
    for (char *p = r->default_name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
            *p = '_';
    if (r->default_name[0] == '.' || !r->default_name[0]) r->default_name[0] = 'm';
    repo_version v = {1, m};
    repo_version old[MODEL_REPO_MAX_VERSIONS];
    /* empty table: no old; a refused file leaves the model unavailable with
     * the reason, for a later reload */
    (void)swap_in(r, r->default_name, &v, m ? 1 : 0, m || !err ? "" : err->msg, old);
    return r;
}

void model_repo_close(model_repo *r) {
    if (!r) return;
    for (int i = 0; i < r->n_models; i++)
        release_versions(r->models[i].v, r->models[i].n);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->ops);
    free(r);
}

/* ---- lookups ---------------------------------------------------------- */

repo_status model_repo_acquire(model_repo *r, const char *name, const char *version,
                               model_ref *out) {
    memset(out, 0, sizeof *out);
    uint64_t want = 0;
    if (version && version[0] && model_repo_parse_version(version, &want) != 0)
        return REPO_NOT_FOUND; /* "v1", "01", "-3": no such version */
    if (name && name[0] && !model_repo_name_valid(name)) return REPO_NOT_FOUND;
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, name && name[0] ? name : r->default_name);
    if (i < 0) {
        pthread_mutex_unlock(&r->lock);
        return REPO_NOT_FOUND;
    }
    repo_entry *e = &r->models[i];
    if (e->n == 0) {
        pthread_mutex_unlock(&r->lock);
        return REPO_UNAVAILABLE;
    }
    int k = 0;
    if (want) {
        k = -1;
        for (int j = 0; j < e->n; j++)
            if (e->v[j].version == want) k = j;
        if (k < 0) {
            pthread_mutex_unlock(&r->lock);
            return REPO_NOT_FOUND;
        }
    }
    out->model = e->v[k].model;
    atomic_fetch_add_explicit(&out->model->refs, 1, memory_order_relaxed);
    out->version = e->v[k].version;
    memcpy(out->name, e->name, sizeof out->name);
    pthread_mutex_unlock(&r->lock);
    return REPO_OK;
}

void model_repo_default_name(model_repo *r, char *buf, size_t size) {
    if (size == 0) return;
    /* default_name is written only before the repository is shared */
    snprintf(buf, size, "%s", r->default_name);
}

bool model_repo_ready(model_repo *r) {
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, r->default_name);
    bool ready = i >= 0 && r->models[i].n > 0;
    pthread_mutex_unlock(&r->lock);
    return ready;
}

int model_repo_versions(model_repo *r, const char *name, uint64_t *out, int max) {
    if (!model_repo_name_valid(name)) return REPO_BAD_NAME;
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, name);
    int n = REPO_NOT_FOUND;
    if (i >= 0) {
        n = 0;
        for (int j = 0; j < r->models[i].n && n < max; j++)
            out[n++] = r->models[i].v[j].version;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- operations ------------------------------------------------------- */

repo_status model_repo_load(model_repo *r, const char *name, nn_error *err) {
    if (!model_repo_name_valid(name)) {
        nn_fail(err, "\"%s\" is not a valid model name", name ? name : "");
        return REPO_BAD_NAME;
    }
    pthread_mutex_lock(&r->ops);
    repo_status st = load_locked_ops(r, name, err);
    pthread_mutex_unlock(&r->ops);
    return st;
}

repo_status model_repo_unload(model_repo *r, const char *name) {
    if (!model_repo_name_valid(name)) return REPO_BAD_NAME;
    pthread_mutex_lock(&r->ops);
    pthread_mutex_lock(&r->lock);
    int i = find_locked(r, name);
    if (i < 0) {
        pthread_mutex_unlock(&r->lock);
        pthread_mutex_unlock(&r->ops);
        return REPO_NOT_FOUND;
    }
    repo_version old[MODEL_REPO_MAX_VERSIONS];
    int n_old = r->models[i].n;
    memcpy(old, r->models[i].v, (size_t)n_old * sizeof old[0]);
    r->models[i].n = 0;
    snprintf(r->models[i].reason, sizeof r->models[i].reason, "unloaded");
    pthread_mutex_unlock(&r->lock);
    release_versions(old, n_old);
    pthread_mutex_unlock(&r->ops);
    return REPO_OK;
}

int model_repo_reload_all(model_repo *r, nn_error *err) {
    pthread_mutex_lock(&r->ops);
    int rc = 0;
    if (!r->dir[0]) {
        if (load_locked_ops(r, r->default_name, err) != REPO_OK) rc = -1;
        pthread_mutex_unlock(&r->ops);
        return rc;
    }
    /* The names on disk now, plus those in the table (a model whose
     * directory vanished keeps serving what it has until unloaded). */
    DIR *d = opendir(r->dir);
    if (!d) {
        pthread_mutex_unlock(&r->ops);
        return nn_fail(err, "%s: cannot open the model directory: %s", r->dir,
                       strerror(errno));
    }
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d)) != NULL && count < MODEL_REPO_MAX_MODELS) {
        if (!model_repo_name_valid(e->d_name)) continue;
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", r->dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        count++;
        nn_error lerr;
        if (load_locked_ops(r, e->d_name, &lerr) != REPO_OK && rc == 0) {
            *err = lerr;
            rc = -1;
        }
    }
    closedir(d);
    pthread_mutex_unlock(&r->ops);
    return rc;
}

static int cmp_index(const void *a, const void *b) {
    const repo_index_entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->version < y->version ? -1 : x->version > y->version;
}

int model_repo_index(model_repo *r, repo_index_entry **out) {
    *out = NULL;
    size_t cap = (size_t)MODEL_REPO_MAX_MODELS * MODEL_REPO_MAX_VERSIONS;
    repo_index_entry *rows = calloc(cap, sizeof *rows);
    if (!rows) return -1;
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_models; i++) {
        const repo_entry *e = &r->models[i];
        if (e->n == 0) {
            repo_index_entry *row = &rows[n++];
            memcpy(row->name, e->name, sizeof row->name);
            row->ready = false;
            snprintf(row->reason, sizeof row->reason, "%s", e->reason);
        }
        for (int j = 0; j < e->n; j++) {
            repo_index_entry *row = &rows[n++];
            memcpy(row->name, e->name, sizeof row->name);
            row->version = e->v[j].version;
            row->ready = true;
        }
    }
    pthread_mutex_unlock(&r->lock);
    qsort(rows, (size_t)n, sizeof rows[0], cmp_index);
    *out = rows;
    return n;
}
