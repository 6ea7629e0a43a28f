/* read_file.c: whole files into memory, for the readers of untrusted
 * files (model files, IDX sets, images from the command line). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn.h"

int nn_read_file(const char *path, size_t cap, uint8_t **buf, size_t *len,
                     nn_error *err) {
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
     * below as not a regular file); reads of a regular file ignore it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return nn_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return nn_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return nn_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > cap) {
        close(fd);
        return nn_fail(err, "%s: %lld bytes is over the %zu MiB limit", path,
                       (long long)st.st_size, cap >> 20);
    }
    /* One byte more than the size seen, so a file that grows while we read
     * is noticed instead of silently cut. */
    size_t want = (size_t)st.st_size + 1;
    uint8_t *b = malloc(want);
    if (!b) {
        close(fd);
        return nn_fail(err, "%s: out of memory for %zu bytes", path, want);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, b + got, want - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(b);
            close(fd);
            return nn_fail(err, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got == want) {
        free(b);
        return nn_fail(err, "%s: the file changed size while being read", path);
    }
    *buf = b;
    *len = got;
    return 0;
}

