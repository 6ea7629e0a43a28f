/* static_files.c: see static_files.h. */
#include "static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int static_root_open(static_root *root, const char *dir, nn_error *err) {
    char *real = realpath(dir, NULL);
    if (!real) return nn_fail(err, "web root %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(real);
        return nn_fail(err, "web root %s is not a directory", dir);
    }
    size_t len = strlen(real);
    if (len >= sizeof root->real) {
        free(real);
        return nn_fail(err, "web root path is too long");
    }
    memcpy(root->real, real, len + 1);
    free(real);
    /* "/" as root would make the prefix check below compare with "//" */
    if (len == 1) len = 0;
    root->len = len;
    return 0;
}

static const struct {
    const char *ext, *type;
} media_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"bmp", "image/bmp"},
    {"ico", "image/x-icon"},
    {"webp", "image/webp"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
};

static const char *media_type_of(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
            if (strcasecmp(dot + 1, media_types[i].ext) == 0)
                return media_types[i].type;
    return "application/octet-stream";
}

/* Checks the request path component by component (see static_open). */
static int path_is_clean(const char *url) {
    if (url[0] != '/') return 0;
    if (strchr(url, '\\')) return 0;
    const char *p = url + 1;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 && end) return 0; /* "//": an empty component */
        if (n > 0 && p[0] == '.') return 0; /* ".", "..", hidden files */
        if (n > 255) return 0;               /* NAME_MAX */
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

int static_open(const static_root *root, const char *url, static_file *out) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (root->real[0] == '\0' || !url || !path_is_clean(url)) return -1;

    char path[PATH_MAX];
    size_t ulen = strlen(url);
    const char *index = url[ulen - 1] == '/' ? "index.html" : "";
    int n = snprintf(path, sizeof path, "%s%s%s", root->real, url, index);
    if (n < 0 || (size_t)n >= sizeof path) return -1;

    /* Symlinks may point anywhere: follow them, then insist on the root. */
    char *real = realpath(path, NULL);
    if (!real) return -1;
    int inside = strncmp(real, root->real, root->len) == 0 &&
                 real[root->len] == '/';
    if (!inside) {
        free(real);
        return -1;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    free(real);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd); /* directories, FIFOs, devices: never served */
        return -1;
    }
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    out->content_type = media_type_of(path);
    int is_html = strncmp(out->content_type, "text/html", 9) == 0;
    /* The page itself revalidates so a new deployment shows at once; its
     * assets may be cached for an hour. */
    out->cache_control = is_html ? "no-cache" : "public, max-age=3600";
    snprintf(out->etag, sizeof out->etag, "\"%llx-%llx\"",
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    return 0;
}
