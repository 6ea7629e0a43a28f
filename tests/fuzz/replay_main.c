/* replay_main.c: a main() for the harnesses without libFuzzer.
 *
 *   fuzz_replay_NAME PATH...
 *
 * Every PATH that is a file, and every regular file directly inside a PATH
 * that is a directory (sorted by name, hidden files skipped), is read and
 * passed once to LLVMFuzzerTestOneInput. A missing PATH is skipped (an
 * empty regressions folder need not exist). A broken FUZZ_CHECK, a crash or
 * a sanitizer report ends the process with a failure status; otherwise it
 * prints how many inputs ran and exits 0. FUZZ_REPLAY_POISON=0: see
 * __wrap_malloc. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

#define REPLAY_MALLOC_LIMIT ((size_t)300 << 20)

void *__real_malloc(size_t n);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *p, size_t n);

static void over_limit(const char *fn, size_t n) {
    fprintf(stderr, "replay: %s(%zu): one allocation over the %zu MB limit\n", fn, n,
            REPLAY_MALLOC_LIMIT >> 20);
    abort();
}

/* Fresh malloc memory is filled with the bytes 00 00 ff 80 over and over,
 * so code that reads memory it never wrote sees the same hostile values in
 * every build and on every run instead of whatever the heap held: bytes 0
 * and 255, 16-bit 0 and -32513, 32-bit about -2^31. This is what made
 * stb_image 2.27's use of a never-defined JPEG Huffman table crash the
 * replay of regressions/.../jpeg-undefined-huffman-table every time.
 * Under valgrind the fill would hide exactly what memcheck looks for (a
 * read of memory nobody wrote), so FUZZ_REPLAY_POISON=0 in the
 * environment turns it off (tests/faults/valgrind.sh sets it). */
static int poison_fresh_memory = 1;

void *__wrap_malloc(size_t n) {
    if (n > REPLAY_MALLOC_LIMIT) over_limit("malloc", n);
    unsigned char *p = __real_malloc(n);
    if (p && poison_fresh_memory) {
        static const unsigned char poison[4] = {0x00, 0x00, 0xff, 0x80};
        for (size_t i = 0; i < n; i++) p[i] = poison[i & 3];
    }
    return p;
}

void *__wrap_calloc(size_t count, size_t size) {
    if (size && count > REPLAY_MALLOC_LIMIT / size) over_limit("calloc", count * size);
    return __real_calloc(count, size);
}

void *__wrap_realloc(void *p, size_t n) {
    if (n > REPLAY_MALLOC_LIMIT) over_limit("realloc", n);
    return __real_realloc(p, n);
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: %s: out of memory\n", path);
        return -1;
    }
    /* An exact-size copy, so that ASan sees a read one byte past the
     * input as the overflow it is. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *poison = getenv("FUZZ_REPLAY_POISON");
    if (poison && strcmp(poison, "0") == 0) poison_fresh_memory = 0;
    int ran = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue;
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) == 0) ran++;
            else bad++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            bad++;
            continue;
        }
        char **names = NULL;
        size_t n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, (n + 1) * sizeof *names);
            if (!nn) break;
            names = nn;
            names[n] = malloc(strlen(argv[i]) + strlen(e->d_name) + 2);
            if (!names[n]) break;
            sprintf(names[n], "%s/%s", argv[i], e->d_name);
            n++;
        }
        closedir(d);
        if (n) qsort(names, n, sizeof *names, by_name);
        for (size_t k = 0; k < n; k++) {
            if (stat(names[k], &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(names[k]) == 0) ran++;
                else bad++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("replayed %d inputs, %d unreadable\n", ran, bad);
    return bad || ran == 0 ? 1 : 0;
}
