/* model_slot.h: the model the daemon serves, shared read-only by every
 * worker thread and swapped atomically on reload (SIGHUP).
 *
 * Each request takes a reference (model_slot_acquire) for as long as it
 * uses the model and drops it afterwards (served_model_release); a reload
 * loads and checks the new file completely before it swaps the pointer, and
 * the old model is freed by whichever thread drops its last reference. So a
 * request never sees a half-swapped model, a reload never waits for
 * requests, and a bad file never replaces a good one. */
#ifndef DIGITD_MODEL_SLOT_H
#define DIGITD_MODEL_SLOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "nn.h"

typedef struct served_model {
    nn_net *net;            /* read-only once published */
    char id[96];            /* "<name>@<first 12 hex digits of SHA-256>" */
    char name[64];          /* the model file's recorded name */
    char architecture[512]; /* nn_net_describe */
    char sha256[65];        /* of the whole file, lowercase hex */
    size_t file_bytes;
    struct timespec loaded_at; /* CLOCK_REALTIME */
    atomic_int refs;
} served_model;

typedef struct {
    pthread_mutex_t lock; /* guards `current` only, held for a few loads */
    served_model *current;
    char path[4096];
} model_slot;

/* Prepares an empty slot for the model file at path (not read yet).
 * Returns 0, or -1 with err when the path is too long. */
int model_slot_init(model_slot *slot, const char *path, nn_error *err);

/* (Re)loads the slot's file. On success the new model replaces the old
 * one (which is freed once the last request using it finishes) and 0 is
 * returned. On error (unreadable, too large, refused by the loader) -1 is
 * returned with err, and the model in the slot, if any, keeps serving. */
int model_slot_load(model_slot *slot, nn_error *err);

/* Returns the current model with a reference taken, or NULL when none is
 * loaded. Pair with served_model_release. */
served_model *model_slot_acquire(model_slot *slot);

/* Drops one reference; frees the model when it was the last. NULL is a
 * no-op. */
void served_model_release(served_model *m);

/* Drops the slot's own reference. Requests still holding the model keep it
 * alive until they release it. */
void model_slot_destroy(model_slot *slot);

#endif
