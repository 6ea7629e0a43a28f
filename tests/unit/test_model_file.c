/* test_model_file.c: model files round-trip bit-exact, saving is atomic,
 * and every kind of damage is refused with its own message.
 *
 * The damaged files are built from a good one in memory. Where the point is
 * a *semantic* check (impossible dimensions, parameter count, NaN), the test
 * rewrites the CRC so that the file is well-formed and only that check can
 * refuse it. Offsets follow docs/model-format.md. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Whole file into a new buffer; *len its size. */
static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Number of entries in tu_tmpdir besides . and .. */
static int count_entries(void) {
    DIR *d = opendir(tu_tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the trailing CRC32 so it matches the bytes before it. */
static void fix_crc(uint8_t *b, size_t len) {
    wr32(b + len - 4, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(len - 4)));
}

/* Offsets inside a version-1 file with n layers and P parameters. */
static size_t off_nparams(int n) { return 16 + 20 * (size_t)n; }
static size_t off_params(int n) { return off_nparams(n) + 8; }
static size_t off_metalen(int n, size_t P) { return off_params(n) + 4 * P; }

static nn_net *make_net(const char *spec, uint64_t seed) {
    nn_error err = {{0}};
    nn_net *net = nn_net_create(spec, "relu", &err);
    ck_assert_msg(net != NULL, "%s: %s", spec, err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    snprintf(net->meta.name, sizeof net->meta.name, "test-%s", spec);
    snprintf(net->meta.settings, sizeof net->meta.settings,
             "optimizer=adam lr=0.001 batch=128 epochs=3 seed=%llu "
             "note=\xc3\xa9t\xc3\xa9", /* UTF-8 survives as is */
             (unsigned long long)seed);
    net->meta.test_accuracy = 0.98123456789012345;
    net->meta.val_accuracy = 1.0 / 3.0;
    net->meta.train_seconds = 12.75;
    net->meta.created_unix = 1732881234;
    return net;
}

/* A good model file for net, in memory (the caller frees). */
static uint8_t *good_bytes(const nn_net *net, size_t *len) {
    nn_error err = {{0}};
    const char *p = tu_tpath("good.model");
    ck_assert_msg(nn_model_save(net, p, &err) == 0, "%s", err.msg);
    return slurp(p, len);
}

/* Parses b and asserts a refusal whose message contains want. */
static void expect_refusal(const uint8_t *b, size_t len, const char *want,
                           const char *why) {
    nn_error err = {{0}};
    nn_net *net = nn_model_parse(b, len, &err);
    ck_assert_msg(net == NULL, "%s: accepted", why);
    ck_assert_msg(strstr(err.msg, want) != NULL,
                  "%s: message \"%s\" lacks \"%s\"", why, err.msg, want);
}

static void assert_same_net(const nn_net *a, const nn_net *b) {
    ck_assert_int_eq(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        ck_assert_int_eq(a->layers[i].kind, b->layers[i].kind);
        ck_assert_int_eq(a->layers[i].size, b->layers[i].size);
        ck_assert_int_eq(a->layers[i].kernel, b->layers[i].kernel);
        ck_assert_int_eq(a->layers[i].pad, b->layers[i].pad);
        ck_assert(memcmp(&a->layers[i].rate, &b->layers[i].rate, 4) == 0);
    }
    ck_assert_uint_eq(a->n_params, b->n_params);
    ck_assert_msg(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0,
                  "parameters differ");
    ck_assert_str_eq(a->meta.name, b->meta.name);
    ck_assert_str_eq(a->meta.settings, b->meta.settings);
    /* %.17g round-trips doubles exactly: compare bits, not tolerance. */
    ck_assert(memcmp(&a->meta.test_accuracy, &b->meta.test_accuracy, 8) == 0);
    ck_assert(memcmp(&a->meta.val_accuracy, &b->meta.val_accuracy, 8) == 0);
    ck_assert(memcmp(&a->meta.train_seconds, &b->meta.train_seconds, 8) == 0);
    ck_assert_int_eq(a->meta.created_unix, b->meta.created_unix);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */
/* ------------------------------------------------------------------ */

static void round_trip(const char *spec) {
    tu_tmpdir_make();
    nn_net *net = make_net(spec, 42);
    nn_error err = {{0}};
    const char *p = tu_tpath("m.model");
    ck_assert_msg(nn_model_save(net, p, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(p, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    assert_same_net(net, back);

    /* The file is exactly the documented size and begins as documented. */
    size_t len;
    uint8_t *b = slurp(p, &len);
    ck_assert(memcmp(b, "DIGITDNN", 8) == 0);
    ck_assert_uint_eq(rd32(b + 8), 1);
    ck_assert_uint_eq(rd32(b + 12), (uint32_t)net->n_layers);
    size_t ml = off_metalen(net->n_layers, net->n_params);
    ck_assert_uint_eq(len, ml + 4 + rd32(b + ml) + 4);
    /* Little-endian whatever the host: the first parameter's bytes. */
    uint32_t u;
    memcpy(&u, &net->params[0], 4);
    ck_assert_uint_eq(rd32(b + off_params(net->n_layers)), u);
    /* Only the model is left in the directory: no temporary file. */
    ck_assert_int_eq(count_entries(), 1);

    free(b);
    nn_net_free(back);
    nn_net_free(net);
    tu_tmpdir_remove();
}

START_TEST(test_round_trip_mlp) { round_trip("784-32-10"); }
END_TEST

START_TEST(test_round_trip_cnn) { round_trip("conv3x4,pool2,dense10"); }
END_TEST

START_TEST(test_round_trip_every_kind) {
    /* Every stored field in use: conv padding, pooling, dropout's rate,
     * named activations. */
    round_trip("conv5x6:valid,tanh,pool2,conv3x4,sigmoid,pool2,dense16,relu,"
               "dropout0.25,dense10");
}
END_TEST

START_TEST(test_unknown_meta_defaults) {
    /* A net never trained: the -1 "unknown" numbers survive the trip. */
    tu_tmpdir_make();
    nn_error err = {{0}};
    nn_net *net = nn_net_create("784-16-10", "tanh", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    net->meta.test_accuracy = net->meta.val_accuracy = -1;
    net->meta.train_seconds = -1;
    net->meta.created_unix = -1;
    const char *p = tu_tpath("u.model");
    ck_assert_msg(nn_model_save(net, p, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(p, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    assert_same_net(net, back);
    ck_assert_str_eq(back->meta.name, "");
    nn_net_free(back);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_meta_newline_and_bad_utf8_sanitised) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-8-10", 1);
    /* A newline would split the line; invalid UTF-8 would reach JSON. */
    snprintf(net->meta.name, sizeof net->meta.name, "a\nb\xff" "c");
    nn_error err = {{0}};
    const char *p = tu_tpath("s.model");
    ck_assert_msg(nn_model_save(net, p, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(p, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    ck_assert_str_eq(back->meta.name, "a b?c");
    nn_net_free(back);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_save_twice_same_path) {
    tu_tmpdir_make();
    nn_net *a = make_net("784-32-10", 1);
    nn_net *b = make_net("conv3x4,pool2,dense10", 2);
    nn_error err = {{0}};
    const char *p = tu_tpath("same.model");
    ck_assert_msg(nn_model_save(a, p, &err) == 0, "%s", err.msg);
    ck_assert_msg(nn_model_save(b, p, &err) == 0, "%s", err.msg);
    nn_net *back = nn_model_load(p, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    assert_same_net(b, back);
    ck_assert_int_eq(count_entries(), 1);
    /* The mode of the replaced file is kept. */
    ck_assert_int_eq(chmod(p, 0640), 0);
    ck_assert_msg(nn_model_save(a, p, &err) == 0, "%s", err.msg);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    nn_net_free(back);
    nn_net_free(a);
    nn_net_free(b);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_relative_path_without_dir) {
    /* "x.model" (no slash) saves into the current directory. */
    tu_tmpdir_make();
    char old[1024];
    ck_assert_ptr_nonnull(getcwd(old, sizeof old));
    ck_assert_int_eq(chdir(tu_tmpdir), 0);
    nn_net *net = make_net("784-8-10", 3);
    nn_error err = {{0}};
    int rc = nn_model_save(net, "x.model", &err);
    nn_net *back = rc == 0 ? nn_model_load("x.model", &err) : NULL;
    ck_assert_int_eq(chdir(old), 0);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_msg(back != NULL, "%s", err.msg);
    assert_same_net(net, back);
    nn_net_free(back);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Failed saves leave the old file alone                               */
/* ------------------------------------------------------------------ */

START_TEST(test_save_into_missing_dir) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-8-10", 1);
    nn_error err = {{0}};
    const char *p = tu_tpath("no/such/dir/m.model");
    ck_assert_int_eq(nn_model_save(net, p, &err), -1);
    ck_assert_msg(strstr(err.msg, "No such file or directory") != NULL, "%s",
                  err.msg);
    ck_assert_msg(strstr(err.msg, "no/such/dir") != NULL, "%s", err.msg);
    /* A path whose "directory" is a regular file. */
    spit(tu_tpath("plain"), "x", 1);
    ck_assert_int_eq(nn_model_save(net, tu_tpath("plain/m.model"), &err), -1);
    ck_assert_msg(strstr(err.msg, "Not a directory") != NULL, "%s", err.msg);
    ck_assert_int_eq(count_entries(), 1);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_save_into_read_only_dir) {
    /* root ignores directory permissions, so this check only means
     * something for other users. */
    if (geteuid() == 0) return;
    tu_tmpdir_make();
    nn_net *old = make_net("784-8-10", 1), *new = make_net("784-8-10", 2);
    nn_error err = {{0}};
    const char *p = tu_tpath("m.model");
    ck_assert_msg(nn_model_save(old, p, &err) == 0, "%s", err.msg);
    size_t before_len;
    uint8_t *before = slurp(p, &before_len);
    ck_assert_int_eq(chmod(tu_tmpdir, 0500), 0);
    ck_assert_int_eq(nn_model_save(new, p, &err), -1);
    ck_assert_msg(strstr(err.msg, "Permission denied") != NULL, "%s", err.msg);
    ck_assert_int_eq(chmod(tu_tmpdir, 0700), 0);
    size_t after_len;
    uint8_t *after = slurp(p, &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert(memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    nn_net_free(old);
    nn_net_free(new);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_failed_write_keeps_old_file) {
    /* A write that fails halfway (here: the file size limit, which binds
     * root too) must leave the old model byte-for-byte and no temporary
     * file behind. */
    tu_tmpdir_make();
    nn_net *old = make_net("784-8-10", 1);
    nn_net *big = make_net("784-256-10", 2); /* ~800 KB file */
    nn_error err = {{0}};
    const char *p = tu_tpath("m.model");
    ck_assert_msg(nn_model_save(old, p, &err) == 0, "%s", err.msg);
    size_t before_len;
    uint8_t *before = slurp(p, &before_len);

    struct rlimit keep, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &keep), 0);
    small = keep;
    small.rlim_cur = 100000; /* bigger than the old file, smaller than new */
    void (*keep_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = nn_model_save(big, p, &err);
    setrlimit(RLIMIT_FSIZE, &keep);
    signal(SIGXFSZ, keep_sig);

    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err.msg, "File too large") != NULL, "%s", err.msg);
    size_t after_len;
    uint8_t *after = slurp(p, &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert(memcmp(before, after, before_len) == 0);
    ck_assert_int_eq(count_entries(), 1);
    free(before);
    free(after);
    nn_net_free(old);
    nn_net_free(big);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_save_refuses_nan) {
    tu_tmpdir_make();
    nn_net *old = make_net("784-8-10", 1);
    nn_error err = {{0}};
    const char *p = tu_tpath("m.model");
    ck_assert_msg(nn_model_save(old, p, &err) == 0, "%s", err.msg);
    size_t before_len;
    uint8_t *before = slurp(p, &before_len);
    old->params[3] = NAN;
    ck_assert_int_eq(nn_model_save(old, p, &err), -1);
    ck_assert_msg(strstr(err.msg, "not finite") != NULL, "%s", err.msg);
    size_t after_len;
    uint8_t *after = slurp(p, &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert(memcmp(before, after, before_len) == 0);
    free(before);
    free(after);
    nn_net_free(old);
    tu_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Refusals                                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_load_missing_file) {
    nn_error err = {{0}};
    ck_assert_ptr_null(nn_model_load("/nonexistent/digitd.model", &err));
    ck_assert_msg(strstr(err.msg, "/nonexistent/digitd.model") != NULL, "%s",
                  err.msg);
    ck_assert_msg(strstr(err.msg, "No such file or directory") != NULL, "%s",
                  err.msg);
}
END_TEST

START_TEST(test_load_names_file_in_refusal) {
    tu_tmpdir_make();
    const char *p = tu_tpath("junk.model");
    spit(p, "hello, world, this is not a model at all", 40);
    nn_error err = {{0}};
    ck_assert_ptr_null(nn_model_load(p, &err));
    ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "not a digitd model file") != NULL, "%s",
                  err.msg);
    /* A directory is not a model either. */
    ck_assert_ptr_null(nn_model_load(tu_tmpdir, &err));
    ck_assert_msg(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_wrong_magic) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    b[0] = 'X';
    fix_crc(b, len);
    expect_refusal(b, len, "not a digitd model file", "wrong magic");
    expect_refusal((const uint8_t *)"GIF89a", 6, "not a digitd model file",
                   "short non-model");
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_version_99) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    wr32(b + 8, 99);
    fix_crc(b, len);
    expect_refusal(b, len, "unknown model format version 99", "version 99");
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_truncated) {
    tu_tmpdir_make();
    nn_net *net = make_net("conv3x4,pool2,dense10", 1);
    int n = net->n_layers;
    size_t P = net->n_params;
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    size_t ml = off_metalen(n, P), meta = ml + 4;
    struct {
        size_t cut; /* bytes kept */
        const char *want;
    } cases[] = {
        {0, "too short"},
        {5, "too short"},
        {8, "too short"},
        {15, "too short"},
        {16, "truncated in the layer table"},
        {16 + 20 * (size_t)n - 1, "truncated in the layer table"},
        {off_nparams(n) + 3, "truncated in the parameter count"},
        {off_params(n), "truncated in the parameters"},
        {off_params(n) + 2 * P + 1, "truncated in the parameters"},
        {ml - 1, "truncated in the parameters"},
        {ml + 2, "truncated in the metadata length"},
        {meta + 5, "truncated in the metadata"},
        {len - 4, "truncated in the checksum"},
        {len - 1, "truncated in the checksum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[64];
        snprintf(why, sizeof why, "cut at %zu of %zu", cases[i].cut, len);
        expect_refusal(b, cases[i].cut, cases[i].want, why);
    }
    /* "metadata length" contains "metadata": make sure the mid-metadata
     * cut is not reported as a cut length field. */
    nn_error err = {{0}};
    ck_assert_ptr_null(nn_model_parse(b, meta + 5, &err));
    ck_assert_msg(strstr(err.msg, "metadata length") == NULL, "%s", err.msg);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_flipped_bytes_fail_crc) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    size_t at[] = {off_params(net->n_layers) + 1,                    /* a weight */
                   off_metalen(net->n_layers, net->n_params) + 4 + 2, /* meta */
                   len - 2};                                         /* the CRC */
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        b[at[i]] ^= 0x10;
        char why[64];
        snprintf(why, sizeof why, "flipped byte %zu", at[i]);
        expect_refusal(b, len, "CRC mismatch", why);
        b[at[i]] ^= 0x10;
    }
    /* Restored: accepted again (the test itself did not break the file). */
    nn_error err = {{0}};
    nn_net *ok = nn_model_parse(b, len, &err);
    ck_assert_msg(ok != NULL, "%s", err.msg);
    nn_net_free(ok);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_impossible_dimensions) {
    /* Layer tables that are well-formed bytes with a correct CRC, so only
     * the architecture check can refuse them. CNN layers: conv, relu,
     * pool, dense. */
    tu_tmpdir_make();
    nn_net *net = make_net("conv3x4,pool2,dense10", 1);
    ck_assert_int_eq(net->layers[0].kind, NN_CONV);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    uint8_t *c = malloc(len);
    ck_assert_ptr_nonnull(c);
    struct {
        size_t off;
        uint32_t value;
        const char *want;
    } cases[] = {
        {16 + 8, 9, "impossible dimensions"},          /* conv kernel 9 */
        {16 + 4, 0, "impossible dimensions"},          /* conv with 0 channels */
        {16 + 4, 0x80000000u, "impossible dimensions"}, /* size above INT_MAX */
        {16 + 2 * 20 + 8, 100, "impossible dimensions"}, /* pool window 100 */
        {12, 0, "impossible dimensions"},              /* zero layers */
        {12, 33, "impossible dimensions"},             /* too many layers */
        {16 + 20, 77, "unknown layer kind 77"},
        {16 + 20 + 4, 5, "fields it does not use must be 0"}, /* relu size 5 */
        {16 + 20 + 16, 0x3f000000u, "fields it does not use"}, /* relu rate 0.5 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, len);
        wr32(c + cases[i].off, cases[i].value);
        fix_crc(c, len);
        char why[64];
        snprintf(why, sizeof why, "u32 %u at offset %zu", cases[i].value,
                 cases[i].off);
        expect_refusal(c, len, cases[i].want, why);
    }
    free(c);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_param_count_mismatch) {
    /* One extra parameter, with n_params and the CRC agreeing with it: a
     * self-consistent file whose layers need one parameter less. */
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    int n = net->n_layers;
    size_t P = net->n_params, len;
    uint8_t *b = good_bytes(net, &len);
    uint8_t *c = malloc(len + 4);
    ck_assert_ptr_nonnull(c);
    size_t ml = off_metalen(n, P);
    memcpy(c, b, ml);
    memset(c + ml, 0, 4); /* the extra parameter: 0.0f */
    memcpy(c + ml + 4, b + ml, len - ml);
    wr64(c + off_nparams(n), P + 1);
    fix_crc(c, len + 4);
    expect_refusal(c, len + 4, "parameter count mismatch", "one extra param");
    /* And one fewer. */
    memcpy(c, b, ml - 4);
    memcpy(c + ml - 4, b + ml, len - ml);
    wr64(c + off_nparams(n), P - 1);
    fix_crc(c, len - 4);
    expect_refusal(c, len - 4, "parameter count mismatch", "one param short");
    free(c);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

/* A tiny self-consistent file (CRC right, no parameter bytes, n_params 0)
 * whose layers imply 248 million parameters (992 MB of floats): refused for
 * the count before anything that size is allocated. The parse runs in a
 * forked child whose address space is capped at what it already uses plus
 * 256 MiB, so allocating the parameters first would end in "out of memory"
 * (or an abort under a sanitizer) instead of the count message. */
START_TEST(test_param_count_checked_before_allocation) {
    static const uint32_t sizes[3] = {65536, 3000, 10};
    uint8_t b[16 + 3 * 20 + 8 + 4 + 4];
    memset(b, 0, sizeof b);
    memcpy(b, "DIGITDNN", 8);
    wr32(b + 8, 1);
    wr32(b + 12, 3);
    for (int i = 0; i < 3; i++) {
        wr32(b + 16 + 20 * i, NN_DENSE);
        wr32(b + 16 + 20 * i + 4, sizes[i]);
    }
    wr64(b + off_nparams(3), 0);
    wr32(b + off_metalen(3, 0), 0);
    fix_crc(b, sizeof b);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f) {
            if (fscanf(f, "%ld", &pages) != 1) pages = 0;
            fclose(f);
        }
        if (pages > 0) {
            rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) +
                         ((rlim_t)256 << 20);
            struct rlimit rl = {cap, cap};
            if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        }
        nn_error err;
        nn_net *net = nn_model_parse(b, sizeof b, &err);
        if (net) _exit(4);
        if (!strstr(err.msg, "parameter count mismatch")) {
            fprintf(stderr, "refused with: %s\n", err.msg);
            _exit(5);
        }
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child: %s %d", WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}
END_TEST

START_TEST(test_non_finite_param) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    size_t p5 = off_params(net->n_layers) + 4 * 5;
    wr32(b + p5, 0x7fc00000u); /* quiet NaN */
    fix_crc(b, len);
    expect_refusal(b, len, "parameter 5 is not finite", "NaN");
    wr32(b + p5, 0xff800000u); /* -inf */
    fix_crc(b, len);
    expect_refusal(b, len, "parameter 5 is not finite", "-inf");
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_trailing_garbage) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-32-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    uint8_t *c = malloc(len + 3);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, len);
    memcpy(c + len, "abc", 3);
    expect_refusal(c, len + 3, "3 bytes of trailing garbage", "3 extra bytes");
    free(c);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_bad_metadata) {
    tu_tmpdir_make();
    nn_net *net = make_net("784-8-10", 1);
    size_t len;
    uint8_t *b = good_bytes(net, &len);
    size_t meta = off_metalen(net->n_layers, net->n_params) + 4;
    uint32_t mlen = rd32(b + meta - 4);
    /* Over-long metadata length field. */
    uint8_t *c = malloc(len);
    ck_assert_ptr_nonnull(c);
    memcpy(c, b, len);
    wr32(c + meta - 4, 70000);
    expect_refusal(c, len, "over the 65536-byte limit", "meta_len 70000");
    /* Invalid UTF-8 inside the block, CRC fixed. */
    memcpy(c, b, len);
    c[meta + 6] = 0xff; /* inside "name=..." */
    fix_crc(c, len);
    expect_refusal(c, len, "not valid UTF-8", "bad UTF-8");
    /* A known number that is not one. */
    memcpy(c, b, len);
    uint8_t *t = memmem(c + meta, mlen, "test_accuracy=0", 15);
    ck_assert_ptr_nonnull(t);
    t[14] = 'x';
    fix_crc(c, len);
    expect_refusal(c, len, "test_accuracy=x", "bad number");
    free(c);
    free(b);
    nn_net_free(net);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_unknown_meta_keys_ignored) {
    /* A later version may add keys: this one must still load. Built by
     * hand, it also pins the documented layout independently of the
     * writer. */
    nn_net *net = make_net("784-8-10", 1);
    const char *meta = "name=hand\nfuture_key=whatever\nno equals sign\n"
                       "created_unix=5";
    size_t ml = strlen(meta);
    int n = net->n_layers;
    size_t P = net->n_params;
    size_t len = off_metalen(n, P) + 4 + ml + 4;
    uint8_t *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "DIGITDNN", 8);
    wr32(b + 8, 1);
    wr32(b + 12, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *l = b + 16 + 20 * (size_t)i;
        wr32(l, (uint32_t)net->layers[i].kind);
        wr32(l + 4, (uint32_t)net->layers[i].size);
        wr32(l + 8, (uint32_t)net->layers[i].kernel);
        wr32(l + 12, (uint32_t)net->layers[i].pad);
        /* rate 0.0f: all zero bytes */
    }
    wr64(b + off_nparams(n), P);
    for (size_t i = 0; i < P; i++) {
        float v = (float)i * 0.25f;
        uint32_t u;
        memcpy(&u, &v, 4);
        wr32(b + off_params(n) + 4 * i, u);
    }
    wr32(b + off_metalen(n, P), (uint32_t)ml);
    memcpy(b + off_metalen(n, P) + 4, meta, ml);
    fix_crc(b, len);
    nn_error err = {{0}};
    nn_net *back = nn_model_parse(b, len, &err);
    ck_assert_msg(back != NULL, "%s", err.msg);
    ck_assert_str_eq(back->meta.name, "hand");
    ck_assert_int_eq(back->meta.created_unix, 5);
    ck_assert(back->meta.test_accuracy == -1.0);
    ck_assert(back->params[P - 1] == (float)(P - 1) * 0.25f);
    nn_net_free(back);
    free(b);
    nn_net_free(net);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_file");
    TCase *rt = tcase_create("round_trip");
    tcase_add_unchecked_fixture(rt, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_add_test(rt, test_round_trip_mlp);
    tcase_add_test(rt, test_round_trip_cnn);
    tcase_add_test(rt, test_round_trip_every_kind);
    tcase_add_test(rt, test_unknown_meta_defaults);
    tcase_add_test(rt, test_meta_newline_and_bad_utf8_sanitised);
    tcase_add_test(rt, test_save_twice_same_path);
    tcase_add_test(rt, test_relative_path_without_dir);
    tcase_add_test(rt, test_unknown_meta_keys_ignored);
    suite_add_tcase(s, rt);

    TCase *sv = tcase_create("failed_saves");
    tcase_add_unchecked_fixture(sv, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_add_test(sv, test_save_into_missing_dir);
    tcase_add_test(sv, test_save_into_read_only_dir);
    tcase_add_test(sv, test_failed_write_keeps_old_file);
    tcase_add_test(sv, test_save_refuses_nan);
    suite_add_tcase(s, sv);

    TCase *bad = tcase_create("refusals");
    tcase_add_unchecked_fixture(bad, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_add_test(bad, test_load_missing_file);
    tcase_add_test(bad, test_load_names_file_in_refusal);
    tcase_add_test(bad, test_wrong_magic);
    tcase_add_test(bad, test_version_99);
    tcase_add_test(bad, test_truncated);
    tcase_add_test(bad, test_flipped_bytes_fail_crc);
    tcase_add_test(bad, test_impossible_dimensions);
    tcase_add_test(bad, test_param_count_mismatch);
    tcase_add_test(bad, test_param_count_checked_before_allocation);
    tcase_add_test(bad, test_non_finite_param);
    tcase_add_test(bad, test_trailing_garbage);
    tcase_add_test(bad, test_bad_metadata);
    suite_add_tcase(s, bad);
    return tu_run(s);
}
