/* model_slot.c: see model_slot.h. */
#include "model_slot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* No model file we make comes near this; a larger file is a mistake (or
 * an attack) and is refused before it is read. */
#define MODEL_MAX_BYTES ((size_t)512 << 20) /* as nn_model_load */

int model_slot_init(model_slot *slot, const char *path, nn_error *err) {
    memset(slot, 0, sizeof *slot);
    if (strlen(path) >= sizeof slot->path)
        return nn_fail(err, "model path is longer than %zu bytes",
                       sizeof slot->path - 1);
    strcpy(slot->path, path);
    pthread_mutex_init(&slot->lock, NULL);
    return 0;
}

static void free_model(served_model *m) {
    nn_net_free(m->net);
    free(m);
}

int model_slot_load(model_slot *slot, nn_error *err) {
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (nn_read_file(slot->path, MODEL_MAX_BYTES, &bytes, &len, err) != 0) return -1;

    served_model *m = calloc(1, sizeof *m);
    if (!m) {
        free(bytes);
        return nn_fail(err, "out of memory loading the model");
    }
    nn_error perr;
    m->net = nn_model_parse(bytes, len, &perr);
    if (!m->net) {
        free(bytes);
        free(m);
        return nn_fail(err, "%s refused: %s", slot->path, perr.msg);
    }
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
        const char *base = strrchr(slot->path, '/');
        base = base ? base + 1 : slot->path;
        size_t n = strlen(base);
        if (n >= sizeof m->name) n = sizeof m->name - 1;
        memcpy(m->name, base, n);
        m->name[n] = '\0';
        char *dot = strrchr(m->name, '.');
        if (dot && dot != m->name) *dot = '\0';
    }
    snprintf(m->id, sizeof m->id, "%s@%.12s", m->name, m->sha256);
    nn_net_describe(m->net, m->architecture, sizeof m->architecture);
    clock_gettime(CLOCK_REALTIME, &m->loaded_at);
    atomic_init(&m->refs, 1); /* the slot's reference */

    pthread_mutex_lock(&slot->lock);
    served_model *old = slot->current;
    slot->current = m;
    pthread_mutex_unlock(&slot->lock);
    served_model_release(old);
    return 0;
}

served_model *model_slot_acquire(model_slot *slot) {
    pthread_mutex_lock(&slot->lock);
    served_model *m = slot->current;
    if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&slot->lock);
    return m;
}

void served_model_release(served_model *m) {
    if (!m) return;
    /* acq_rel: the thread that frees must see every other user's reads
     * finished */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free_model(m);
}

void model_slot_destroy(model_slot *slot) {
    pthread_mutex_lock(&slot->lock);
    served_model *m = slot->current;
    slot->current = NULL;
    pthread_mutex_unlock(&slot->lock);
    served_model_release(m);
    pthread_mutex_destroy(&slot->lock);
}
