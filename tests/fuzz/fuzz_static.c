/* fuzz_static.c: request paths against the static file server.
 *
 * A web root is made once in a temporary folder, with traps around it: a
 * secret file beside the root, a sibling folder whose name starts with the
 * root's name ("web-evil" beside "web"), symlinks leading out (relative,
 * absolute, to a directory), a hidden file, a FIFO, an empty directory.
 * Each input is a request path (up to its first NUL, as the HTTP library
 * delivers it after percent-decoding) passed to static_open. Promises:
 *   - whatever opens is a regular file whose real path is inside the root;
 *   - a refusal leaves no descriptor open, an acceptance exactly one;
 *   - the answer's content type, cache policy and ETag are set. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "static_files.h"

static char base[1024];
static static_root root;

static void put(const char *rel, const char *text) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    FUZZ_CHECK(f != NULL, "cannot create %s", p);
    fputs(text, f);
    fclose(f);
}

static void link_at(const char *target, const char *rel) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FUZZ_CHECK(symlink(target, p) == 0, "cannot link %s", p);
}

static void dir_at(const char *rel) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FUZZ_CHECK(mkdir(p, 0755) == 0, "cannot make %s", p);
}

static void remove_tree(void) {
    if (base[0]) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    }
}

static void setup(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/digitd-fuzz-static-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(base) != NULL, "mkdtemp");
    atexit(remove_tree);
    put("secret.txt", "SECRET outside the root\n");
    dir_at("web-evil");
    put("web-evil/x.html", "SECRET in a sibling\n");
    dir_at("web");
    dir_at("web/sub");
    dir_at("web/emptydir");
    put("web/index.html", "<!doctype html><p>index</p>\n");
    put("web/app.js", "console.log(1);\n");
    put("web/style.css", "p{}\n");
    put("web/sub/index.html", "<p>sub</p>\n");
    put("web/sub/icon.svg", "<svg/>\n");
    put("web/.hidden", "SECRET hidden\n");
    link_at("../secret.txt", "web/link-out.txt");
    link_at("../secret.txt", "web/sub/..link");
    link_at("../../secret.txt", "web/sub/up.txt");
    link_at("..", "web/linkdir");
    link_at("../web-evil/x.html", "web/sibling.html");
    link_at("/etc/passwd", "web/passwd");
    link_at("index.html", "web/inside.html");
    char fifo[PATH_MAX];
    snprintf(fifo, sizeof fifo, "%s/web/fifo", base);
    FUZZ_CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");

    char web[PATH_MAX];
    snprintf(web, sizeof web, "%s/web", base);
    nn_error err;
    FUZZ_CHECK(static_root_open(&root, web, &err) == 0, "static_root_open: %s", err.msg);
}

/* The descriptor open() gives now: the lowest free one. */
static int next_fd(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "open /dev/null");
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base[0]) setup();
    if (size > 8192) return 0; /* longer than any request line MHD takes */
    char *url = malloc(size + 1);
    if (!url) return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    int lowest = next_fd();
    static_file f;
    if (static_open(&root, url, &f) == 0) {
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", f.fd);
        ssize_t n = readlink(link, real, sizeof real - 1);
        FUZZ_CHECK(n > 0, "readlink of the opened descriptor");
        real[n] = '\0';
        FUZZ_CHECK(strncmp(real, root.real, root.len) == 0 && real[root.len] == '/',
                   "%s opened %s, outside the root %s", url, real, root.real);
        FUZZ_CHECK(strstr(real, "SECRET") == NULL, "opened %s", real);
        struct stat st;
        FUZZ_CHECK(fstat(f.fd, &st) == 0 && S_ISREG(st.st_mode),
                   "%s opened something that is not a regular file", url);
        FUZZ_CHECK((uint64_t)st.st_size == f.size, "size %llu, file has %lld",
                   (unsigned long long)f.size, (long long)st.st_size);
        char head[8] = {0};
        ssize_t got = pread(f.fd, head, sizeof head - 1, 0);
        FUZZ_CHECK(got >= 0 && strncmp(head, "SECRET", 6) != 0,
                   "%s served a secret", url);
        FUZZ_CHECK(f.content_type && f.cache_control && f.etag[0] == '"' &&
                       strnlen(f.etag, sizeof f.etag) < sizeof f.etag,
                   "answer fields unset");
        close(f.fd);
    } else {
        FUZZ_CHECK(f.fd == -1, "a refusal with a descriptor");
    }
    int fd = next_fd();
    FUZZ_CHECK(fd == lowest, "a descriptor leaked (%d is free, %d was)", fd, lowest);
    free(url);
    return 0;
}
