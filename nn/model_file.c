/* model_file.c: saving and loading trained networks (format version 1).
 *
 * The byte layout and the list of refusals are in docs/model-format.md.
 * In short, everything little-endian whatever the host:
 *
 *   "DIGITDNN"  u32 version  u32 n_layers
 *   n_layers x { u32 kind, u32 size, u32 kernel, u32 pad, f32 rate }
 *   u64 n_params  n_params x f32
 *   u32 meta_len  meta_len bytes of UTF-8 "key=value\n" lines
 *   u32 CRC32 (zlib) of every byte before it
 *
 * Numbers are written and read byte by byte, so the file is the same on
 * any host. Saving is atomic (temporary file, fsync, rename, fsync of the
 * directory); loading checks every size against the file's length before
 * it reads, so a hostile file can make it refuse but never read out of
 * bounds or allocate more than the file justifies. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "layers.h"
#include "nn.h"

_Static_assert(sizeof(float) == 4, "model files store IEEE-754 binary32");

#define MODEL_MAGIC "DIGITDNN"
#define MODEL_VERSION 1u
#define HEADER_BYTES 16u    /* magic, version, n_layers */
#define LAYER_BYTES 20u     /* kind, size, kernel, pad, rate */
#define META_MAX 65536u     /* largest metadata block accepted */
#define MODEL_MAX_FILE ((size_t)512 << 20) /* load refuses larger files */

/* ------------------------------------------------------------------ */
/* Little-endian encoding                                              */
/* ------------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static float get_f32(const uint8_t *p) {
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------ */
/* Metadata: "key=value\n" lines                                       */
/* ------------------------------------------------------------------ */

/* Appends "key=value\n" to out (when out is not NULL) and returns the
 * bytes it takes. The value is made safe to store as one line of UTF-8:
 * line breaks become spaces and bytes that are not UTF-8 become '?', so
 * what the loader reads back is what a client can show. */
static size_t meta_line(uint8_t *out, const char *key, const char *value,
                        size_t value_max) {
    size_t klen = strlen(key), vlen = strnlen(value, value_max);
    if (out) {
        memcpy(out, key, klen);
        out[klen] = '=';
        uint8_t *v = out + klen + 1;
        const uint8_t *src = (const uint8_t *)value;
        size_t i = 0;
        while (i < vlen) {
            size_t ok = nn_utf8_valid_prefix(src + i, vlen - i);
            for (size_t k = 0; k < ok; k++) {
                uint8_t c = src[i + k];
                v[i + k] = (c == '\n' || c == '\r') ? ' ' : c;
            }
            i += ok;
            if (i < vlen) v[i++] = '?';
        }
        out[klen + 1 + vlen] = '\n';
    }
    return klen + 1 + vlen + 1;
}

/* Serialises net->meta. Doubles use %.17g so they read back bit-exact;
 * the C library's default "C" locale is assumed (nn/ never calls
 * setlocale). Returns the length; out may be NULL to measure. */
static size_t meta_encode(const nn_meta *m, uint8_t *out) {
    char num[4][40];
    snprintf(num[0], sizeof num[0], "%.17g", m->test_accuracy);
    snprintf(num[1], sizeof num[1], "%.17g", m->val_accuracy);
    snprintf(num[2], sizeof num[2], "%.17g", m->train_seconds);
    snprintf(num[3], sizeof num[3], "%" PRId64, m->created_unix);
    static const char *const keys[6] = {"name", "settings", "test_accuracy",
                                        "val_accuracy", "train_seconds",
                                        "created_unix"};
    const char *vals[6] = {m->name, m->settings, num[0], num[1], num[2], num[3]};
    size_t maxes[6] = {sizeof m->name, sizeof m->settings, sizeof num[0],
                       sizeof num[1], sizeof num[2], sizeof num[3]};
    size_t n = 0;
    for (int i = 0; i < 6; i++)
        n += meta_line(out ? out + n : NULL, keys[i], vals[i], maxes[i]);
    /* The verdict's calibration (nn/verdict.c), written only when set so
     * that an uncalibrated model's file stays byte for byte as before. */
    static const char *const vkeys[4] = {"temperature", "reject_p",
                                         "reject_energy", "ambiguous_margin"};
    const double vvals[4] = {m->temperature, m->reject_p, m->reject_energy,
                             m->ambiguous_margin};
    const double unset[4] = {1, -1, INFINITY, -1};
    for (int i = 0; i < 4; i++) {
        if (vvals[i] == unset[i]) continue;
        char v[40];
        snprintf(v, sizeof v, "%.17g", vvals[i]);
        n += meta_line(out ? out + n : NULL, vkeys[i], v, sizeof v);
    }
    /* Written only by calibrated models, so other files stay as they were. */
    if (m->int8_act_ranges[0])
        n += meta_line(out ? out + n : NULL, "int8_act_ranges",
                       m->int8_act_ranges, sizeof m->int8_act_ranges);
    return n;
}

/* Copies a value into a fixed char array, cut at a character boundary
 * when it does not fit (a later writer may allow longer names). */
static void copy_text(char *dst, size_t size, const uint8_t *v, size_t n) {
    if (n > size - 1) {
        n = size - 1;
        while (n > 0 && (v[n] & 0xc0) == 0x80) n--; /* v[n] continues a char */
    }
    memcpy(dst, v, n);
    dst[n] = 0;
}

/* Reads a number value (n bytes at v) with strtod/strtoll into *d or *i. */
static int parse_number(const uint8_t *v, size_t n, double *d, int64_t *i) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    if (d) *d = strtod(tmp, &end);
    else *i = (int64_t)strtoll(tmp, &end, 10);
    return (*end || errno == ERANGE) ? -1 : 0;
}

/* Parses the metadata block (meta, len bytes) into *m. Lines without '='
 * and unknown keys are skipped, so later versions can add keys; a known
 * number that does not parse is refused. */
static int meta_decode(const uint8_t *meta, size_t len, nn_meta *m,
                       nn_error *err) {
    memset(m, 0, sizeof *m);
    m->test_accuracy = m->val_accuracy = m->train_seconds = -1;
    m->created_unix = -1;
    m->temperature = 1;
    m->reject_p = m->ambiguous_margin = -1;
    m->reject_energy = INFINITY; /* off */
    if (nn_utf8_valid_prefix(meta, len) != len)
        return nn_fail(err, "metadata is not valid UTF-8 (at byte %zu)",
                       nn_utf8_valid_prefix(meta, len));
    size_t pos = 0;
    while (pos < len) {
        const uint8_t *line = meta + pos;
        const uint8_t *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl ? 1 : 0);
        const uint8_t *eq = memchr(line, '=', line_len);
        if (!eq) continue;
        size_t klen = (size_t)(eq - line);
        const uint8_t *v = eq + 1;
        size_t vlen = line_len - klen - 1;
#define KEY_IS(k) (klen == strlen(k) && memcmp(line, k, klen) == 0)
        int bad = 0;
        const char *key = NULL;
        if (KEY_IS("name")) copy_text(m->name, sizeof m->name, v, vlen);
        else if (KEY_IS("settings"))
            copy_text(m->settings, sizeof m->settings, v, vlen);
        else if (KEY_IS("int8_act_ranges")) /* checked by nn_qnet_create */
            copy_text(m->int8_act_ranges, sizeof m->int8_act_ranges, v, vlen);
        else if (KEY_IS("test_accuracy"))
            bad = parse_number(v, vlen, &m->test_accuracy, NULL), key = "test_accuracy";
        else if (KEY_IS("val_accuracy"))
            bad = parse_number(v, vlen, &m->val_accuracy, NULL), key = "val_accuracy";
        else if (KEY_IS("train_seconds"))
            bad = parse_number(v, vlen, &m->train_seconds, NULL), key = "train_seconds";
        else if (KEY_IS("created_unix"))
            bad = parse_number(v, vlen, NULL, &m->created_unix), key = "created_unix";
        else if (KEY_IS("temperature"))
            bad = parse_number(v, vlen, &m->temperature, NULL) ||
                  !(m->temperature >= 0.05 && m->temperature <= 20),
            key = "temperature";
        else if (KEY_IS("reject_p"))
            bad = parse_number(v, vlen, &m->reject_p, NULL) ||
                  !isfinite(m->reject_p), key = "reject_p";
        else if (KEY_IS("reject_energy"))
            bad = parse_number(v, vlen, &m->reject_energy, NULL) ||
                  !isfinite(m->reject_energy), key = "reject_energy";
        else if (KEY_IS("ambiguous_margin"))
            bad = parse_number(v, vlen, &m->ambiguous_margin, NULL) ||
                  !isfinite(m->ambiguous_margin), key = "ambiguous_margin";
#undef KEY_IS
        if (bad)
            return nn_fail(err, "metadata: %s=%.*s is not a number", key,
                           (int)(vlen > 40 ? 40 : vlen), (const char *)v);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Encoding a whole file in memory                                     */
/* ------------------------------------------------------------------ */

/* Serialises net into a new buffer (*out, *len; the caller frees).
 * Refuses networks the loader would refuse, so no unloadable file is ever
 * written. */
static int model_encode(const nn_net *net, uint8_t **out, size_t *len,
                        nn_error *err) {
    *out = NULL;
    *len = 0;
    if (net->n_layers < 1 || net->n_layers > NN_MAX_LAYERS)
        return nn_fail(err, "cannot save a network of %d layers", net->n_layers);
    for (size_t i = 0; i < net->n_params; i++)
        if (!isfinite(net->params[i]))
            return nn_fail(err,
                           "parameter %zu is not finite (%g); refusing to "
                           "save a model that cannot be loaded",
                           i, (double)net->params[i]);
    size_t meta_len = meta_encode(&net->meta, NULL);
    if (meta_len > META_MAX)
        return nn_fail(err, "metadata of %zu bytes is over the %u-byte limit",
                       meta_len, META_MAX);
    if (net->n_params > SIZE_MAX / 8) /* keeps the total below from wrapping */
        return nn_fail(err, "%zu parameters do not fit in memory", net->n_params);
    size_t total = HEADER_BYTES + LAYER_BYTES * (size_t)net->n_layers + 8 +
                   4 * net->n_params + 4 + meta_len + 4;
    uint8_t *buf = malloc(total);
    if (!buf) return nn_fail(err, "out of memory for a %zu-byte model", total);

    uint8_t *p = buf;
    memcpy(p, MODEL_MAGIC, 8);
    put_u32(p + 8, MODEL_VERSION);
    put_u32(p + 12, (uint32_t)net->n_layers);
    p += HEADER_BYTES;
    for (int i = 0; i < net->n_layers; i++, p += LAYER_BYTES) {
        const nn_layer *l = &net->layers[i];
        put_u32(p, (uint32_t)l->kind);
        put_u32(p + 4, (uint32_t)l->size);
        put_u32(p + 8, (uint32_t)l->kernel);
        put_u32(p + 12, (uint32_t)l->pad);
        put_f32(p + 16, l->rate);
    }
    put_u64(p, (uint64_t)net->n_params);
    p += 8;
    for (size_t i = 0; i < net->n_params; i++, p += 4) put_f32(p, net->params[i]);
    put_u32(p, (uint32_t)meta_len);
    p += 4;
    meta_encode(&net->meta, p);
    p += meta_len;
    put_u32(p, (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), buf, (z_size_t)(p - buf)));
    *out = buf;
    *len = total;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Saving                                                              */
/* ------------------------------------------------------------------ */

/* write(2) until all n bytes are out; -1 with errno set on failure. */
static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int save_to(const nn_net *net, const char *path, nn_error *err);

/* What a save may replace: nothing (a new file), or a regular file. A
 * symlink is written through: the file it points to is replaced (by
 * rename, in that file's directory) and the link stays. Devices, FIFOs,
 * sockets and directories are refused untouched: as root, `--out
 * /dev/null` would otherwise replace the system's /dev/null. */
/* The file a save to path replaces: path itself, or a symlink's target
 * (*target malloc'd; the caller frees it). -1 with err for what must not
 * be replaced. */
static int save_target(const char *path, char **target, nn_error *err) {
    *target = NULL;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) return nn_fail(err, "%s: %s", path, strerror(errno));
        *target = strdup(path);
        return *target ? 0 : nn_fail(err, "out of memory");
    }
    if (S_ISLNK(st.st_mode)) {
        char *t = realpath(path, NULL);
        if (!t)
            return nn_fail(err, "%s: a symbolic link to a missing or unreachable file "
                                "(%s); refusing to replace the link", path, strerror(errno));
        if (stat(t, &st) != 0 || !S_ISREG(st.st_mode)) {
            nn_fail(err, "%s: a symbolic link to %s, which is not a regular file; "
                         "refusing to replace it", path, t);
            free(t);
            return -1;
        }
        *target = t;
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return nn_fail(err, "%s: %s, not a regular file; refusing to replace it", path,
                       S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                                              : "a special file");
    *target = strdup(path);
    return *target ? 0 : nn_fail(err, "out of memory");
}

int nn_model_save_check(const char *path, nn_error *err) {
    char *t;
    if (save_target(path, &t, err) != 0) return -1;
    free(t);
    return 0;
}

/* A symlink is written through: the file it points to is replaced (by
 * rename, in that file's directory) and the link stays. Devices, FIFOs,
 * sockets and directories are refused untouched: as root, `--out
 * /dev/null` would otherwise replace the system's /dev/null. */
int nn_model_save(const nn_net *net, const char *path, nn_error *err) {
    char *t;
    if (save_target(path, &t, err) != 0) return -1;
    int rc = save_to(net, t, err);
    free(t);
    return rc;
}

static int save_to(const nn_net *net, const char *path, nn_error *err) {
    uint8_t *bytes;
    size_t len;
    nn_error eerr;
    if (model_encode(net, &bytes, &len, &eerr) != 0)
        return nn_fail(err, "%s: %s", path, eerr.msg);

    /* The temporary file must be in the target's directory: rename(2) is
     * only atomic within one file system. DIR/.NAME.tmp-XXXXXX hides it
     * from ls and names what it belongs to if a crash leaves it behind. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    char *dir = malloc(dir_len + 2);
    char *tmp = malloc(strlen(path) + 16);
    int fd = -1, rc = -1;
    bool created = false, renamed = false;
    if (!dir || !tmp) {
        nn_fail(err, "%s: out of memory", path);
        goto done;
    }
    if (!slash) strcpy(dir, ".");
    else if (dir_len == 0) strcpy(dir, "/");
    else {
        memcpy(dir, path, dir_len);
        dir[dir_len] = 0;
    }
    if (*base == 0) {
        nn_fail(err, "%s: names a directory, not a file", path);
        goto done;
    }
    sprintf(tmp, "%.*s.%s.tmp-XXXXXX", (int)(base - path), path, base);

    fd = mkstemp(tmp);
    if (fd < 0) {
        nn_fail(err, "%s: cannot create a temporary file in %s: %s", path, dir,
                strerror(errno));
        goto done;
    }
    created = true;
    /* mkstemp makes the file 0600; a model is not secret and a daemon
     * running as another user must read it. Keep the mode of the file
     * being replaced, else rw-r--r--. */
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 0777) : 0644;
    if (fchmod(fd, mode) != 0) {
        nn_fail(err, "%s: cannot set the mode of %s: %s", path, tmp,
                strerror(errno));
        goto done;
    }
    if (write_all(fd, bytes, len) != 0) {
        nn_fail(err, "%s: cannot write %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    if (fsync(fd) != 0) {
        nn_fail(err, "%s: cannot sync %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        nn_fail(err, "%s: cannot close %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        nn_fail(err, "%s: cannot rename %s over it: %s", path, tmp,
                strerror(errno));
        goto done;
    }
    renamed = true;

    /* Make the rename itself durable. Some file systems cannot sync a
     * directory (EINVAL); the new file is in place either way. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        nn_fail(err, "%s: saved, but cannot open %s to sync it: %s", path, dir,
                strerror(errno));
        goto done;
    }
    if (fsync(dfd) != 0 && errno != EINVAL) {
        int e = errno;
        close(dfd);
        nn_fail(err, "%s: saved, but cannot sync directory %s: %s", path, dir,
                strerror(e));
        goto done;
    }
    close(dfd);
    rc = 0;
done:
    if (fd >= 0) close(fd);
    /* Created but not renamed: remove it, so nothing half-written stays
     * beside the untouched old file. */
    if (created && !renamed) unlink(tmp);
    free(dir);
    free(tmp);
    free(bytes);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

/* Checks that `need` more bytes are present at offset `pos` of a buffer of
 * `len` bytes; else fails naming the part that is cut short. */
static int need_bytes(size_t len, size_t pos, uint64_t need, const char *part,
                      nn_error *err) {
    uint64_t have = len - pos;
    if (have < need)
        return nn_fail(err,
                       "truncated in the %s: expected %" PRIu64
                       " bytes at offset %zu, the file has %" PRIu64,
                       part, need, pos, have);
    return 0;
}

nn_net *nn_model_parse(const uint8_t *buf, size_t len, nn_error *err) {
    /* 1. Structural walk: header fields and every length checked against
     *    the bytes present, so each truncation names its part. A short
     *    prefix that does not match the magic is "not a model" rather than
     *    "too short": an empty or tiny unrelated file gets the right
     *    message. */
    size_t cmp = len < 8 ? len : 8;
    if (cmp > 0 && memcmp(buf, MODEL_MAGIC, cmp) != 0) {
        nn_fail(err, "not a digitd model file (wrong magic)");
        return NULL;
    }
    if (len < HEADER_BYTES) {
        nn_fail(err,
                "too short to be a digitd model file: %zu bytes, the header "
                "alone is %u",
                len, HEADER_BYTES);
        return NULL;
    }
    uint32_t version = get_u32(buf + 8);
    if (version != MODEL_VERSION) {
        nn_fail(err,
                "unknown model format version %" PRIu32
                " (this build reads version %u)",
                version, MODEL_VERSION);
        return NULL;
    }
    uint32_t n_layers = get_u32(buf + 12);
    if (n_layers < 1 || n_layers > NN_MAX_LAYERS) {
        nn_fail(err, "impossible dimensions: %" PRIu32 " layers (1 to %d allowed)",
                n_layers, NN_MAX_LAYERS);
        return NULL;
    }
    size_t pos = HEADER_BYTES;
    if (need_bytes(len, pos, (uint64_t)LAYER_BYTES * n_layers, "layer table", err))
        return NULL;
    const uint8_t *table = buf + pos;
    pos += (size_t)LAYER_BYTES * n_layers;
    if (need_bytes(len, pos, 8, "parameter count", err)) return NULL;
    uint64_t n_params = get_u64(buf + pos);
    pos += 8;
    /* Divide rather than multiply: n_params is untrusted and 4 * n_params
     * could wrap. */
    if ((len - pos) / 4 < n_params) {
        nn_fail(err,
                "truncated in the parameters: expected %" PRIu64
                " parameters (%" PRIu64 " bytes at offset %zu), the file has "
                "%zu bytes",
                n_params, n_params * 4, pos, len - pos);
        return NULL;
    }
    const uint8_t *params = buf + pos;
    pos += (size_t)n_params * 4;
    if (need_bytes(len, pos, 4, "metadata length", err)) return NULL;
    uint32_t meta_len = get_u32(buf + pos);
    pos += 4;
    if (meta_len > META_MAX) {
        nn_fail(err, "metadata length %" PRIu32 " is over the %u-byte limit",
                meta_len, META_MAX);
        return NULL;
    }
    if (need_bytes(len, pos, meta_len, "metadata", err)) return NULL;
    const uint8_t *meta = buf + pos;
    pos += meta_len;
    if (need_bytes(len, pos, 4, "checksum", err)) return NULL;
    uint32_t stored_crc = get_u32(buf + pos);
    pos += 4;

    /* 2. Nothing may follow the checksum. */
    if (pos != len) {
        nn_fail(err, "%zu bytes of trailing garbage after the checksum",
                len - pos);
        return NULL;
    }

    /* 3. The checksum: any flipped bit from here on is reported as such,
     *    not as whatever field it happened to land in. */
    uint32_t crc = (uint32_t)crc32_z(crc32(0L, Z_NULL, 0), buf,
                                     (z_size_t)(len - 4));
    if (crc != stored_crc) {
        nn_fail(err,
                "CRC mismatch: stored %08" PRIx32 ", computed %08" PRIx32
                " (the file is corrupt)",
                stored_crc, crc);
        return NULL;
    }

    /* 4. Meaning: a well-formed file written by something other than our
     *    writer (or a future one) can still describe an impossible net. */
    nn_layer layers[NN_MAX_LAYERS];
    memset(layers, 0, sizeof layers);
    for (uint32_t i = 0; i < n_layers; i++) {
        const uint8_t *p = table + LAYER_BYTES * i;
        uint32_t kind = get_u32(p), size = get_u32(p + 4),
                 kernel = get_u32(p + 8), pad = get_u32(p + 12);
        if (kind > INT_MAX || !layer_kind_find((int)kind)) {
            nn_fail(err, "unknown layer kind %" PRIu32 " at layer %" PRIu32,
                    kind, i + 1);
            return NULL;
        }
        if (size > INT_MAX || kernel > INT_MAX || pad > INT_MAX) {
            nn_fail(err,
                    "impossible dimensions: layer %" PRIu32 ": size %" PRIu32
                    ", kernel %" PRIu32 ", pad %" PRIu32,
                    i + 1, size, kernel, pad);
            return NULL;
        }
        layers[i].kind = (nn_layer_kind)kind;
        layers[i].size = (int)size;
        layers[i].kernel = (int)kernel;
        layers[i].pad = (int)pad;
        layers[i].rate = get_f32(p + 16);
    }
    /* The layout first: the parameter count is checked against the file
     * before up to 1 GiB of parameters is allocated. */
    nn_net *net = calloc(1, sizeof *net);
    if (!net) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    if (nn_net_layout(net, layers, (int)n_layers, err) != 0) {
        nn_net_free(net); /* err already names the impossible dimension */
        return NULL;
    }
    /* nn_net_build ignores the fields a kind does not use (and our writer
     * stores them as zero); anything else there is not a file we wrote. */
    for (uint32_t i = 0; i < n_layers; i++) {
        const nn_layer *f = &layers[i], *b = &net->layers[i];
        if (f->size != b->size || f->kernel != b->kernel || f->pad != b->pad ||
            memcmp(&f->rate, &b->rate, sizeof f->rate) != 0) {
            nn_fail(err,
                    "impossible dimensions: layer %" PRIu32
                    " (kind %d) has size %d, kernel %d, pad %d, rate %g; "
                    "fields it does not use must be 0",
                    i + 1, (int)f->kind, f->size, f->kernel, f->pad,
                    (double)f->rate);
            nn_net_free(net);
            return NULL;
        }
    }
    if (net->n_params != n_params) {
        nn_fail(err,
                "parameter count mismatch: the layers need %zu parameters, "
                "the file holds %" PRIu64,
                net->n_params, n_params);
        nn_net_free(net);
        return NULL;
    }
    if (nn_net_alloc_params(net, err) != 0) {
        nn_net_free(net);
        return NULL;
    }
    for (size_t i = 0; i < net->n_params; i++) {
        float v = get_f32(params + 4 * i);
        if (!isfinite(v)) {
            nn_fail(err, "parameter %zu is not finite (%g)", i, (double)v);
            nn_net_free(net);
            return NULL;
        }
        net->params[i] = v;
    }
    if (meta_decode(meta, meta_len, &net->meta, err) != 0) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}

nn_net *nn_model_load(const char *path, nn_error *err) {
    uint8_t *buf;
    size_t len;
    if (nn_read_file(path, MODEL_MAX_FILE, &buf, &len, err)) return NULL;
    nn_error perr;
    nn_net *net = nn_model_parse(buf, len, &perr);
    free(buf);
    if (!net) nn_fail(err, "%s: %s", path, perr.msg);
    return net;
}
