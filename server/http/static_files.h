/* static_files.h: serving the canvas page and its assets from the web root
 * without ever leaving it. */
#ifndef DIGITD_STATIC_FILES_H
#define DIGITD_STATIC_FILES_H

#include <stdint.h>
#include <sys/types.h>

#include "nn.h"

typedef struct {
    char real[4096]; /* realpath of the web root, no trailing slash */
    size_t len;
} static_root;

/* Resolves the web root once at start-up. Returns 0, or -1 with err when
 * dir does not exist or is not a directory. */
int static_root_open(static_root *root, const char *dir, nn_error *err);

typedef struct {
    int fd;                    /* open, read-only; the caller closes it */
    uint64_t size;             /* bytes */
    const char *content_type;  /* e.g. "text/html; charset=utf-8" */
    const char *cache_control; /* HTML revalidates, assets cache an hour */
    char etag[64];             /* quoted, from size and mtime */
} static_file;

/* Opens the file that the request path url (already percent-decoded by
 * the HTTP library, query removed) names under root; "/" and any path
 * ending in "/" mean its index.html. Refused, as if absent: paths not
 * starting with '/', any "." or ".." component, backslashes, hidden files
 * (a component starting with '.'), anything that is not a regular file,
 * and anything whose real path (symlinks resolved) is outside the root.
 * Returns 0 with *out filled, or -1 (the caller answers 404). */
int static_open(const static_root *root, const char *url, static_file *out);

#endif
