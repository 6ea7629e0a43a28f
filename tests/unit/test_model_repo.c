/* test_model_repo.c: the model repository (server/serving/model_repo.c)
 * with two models and two versions: lookups by name and version, unknown
 * ones refused, reloads swapping atomically under concurrent readers, bad
 * files (corrupt, FIFO) refused without touching what serves, unload, the
 * index, and the one-file repository `serve --model FILE` uses. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_repo.h"
#include "testutil.h"


/* SHA-256 of the model repo serves for name/version, or "" when none. */
static void sha_of(model_repo *r, const char *name, const char *version, char out[65]) {
    model_ref ref;
    out[0] = '\0';
    if (model_repo_acquire(r, name, version, &ref) != REPO_OK) return;
    memcpy(out, ref.model->sha256, 65);
    served_model_release(ref.model);
}

/* DIR/alpha/{1,2}, DIR/beta/1, plus things that must be ignored. */
static void make_repo(void) {
    tu_tmpdir_make();
    tu_write_model("repo/alpha/1/" MODEL_REPO_FILE, "alpha-one", 1);
    tu_write_model("repo/alpha/2/" MODEL_REPO_FILE, "alpha-two", 2);
    tu_write_model("repo/beta/1/" MODEL_REPO_FILE, "beta-one", 3);
    tu_write_model("repo/beta/notes/" MODEL_REPO_FILE, "ignored", 4);   /* not a number */
    tu_write_model("repo/.hidden/1/" MODEL_REPO_FILE, "ignored", 5);    /* hidden */
    FILE *f = fopen(tu_tpath("repo/README"), "w");                   /* a file */
    ck_assert_ptr_nonnull(f);
    fputs("not a model\n", f);
    fclose(f);
}

START_TEST(test_by_name_and_version) {
    make_repo();
    nn_error err;
    model_repo *r = model_repo_open_dir(tu_tpath("repo"), NULL, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);

    char name[64];
    model_repo_default_name(r, name, sizeof name);
    ck_assert_str_eq(name, "alpha"); /* first in byte order */
    ck_assert(model_repo_ready(r));

    model_ref ref;
    ck_assert_int_eq(model_repo_acquire(r, "alpha", NULL, &ref), REPO_OK);
    ck_assert_uint_eq(ref.version, 2); /* the newest */
    ck_assert_str_eq(ref.model->name, "alpha-two");
    ck_assert_str_eq(ref.name, "alpha");
    served_model_release(ref.model);

    ck_assert_int_eq(model_repo_acquire(r, "alpha", "1", &ref), REPO_OK);
    ck_assert_uint_eq(ref.version, 1);
    ck_assert_str_eq(ref.model->name, "alpha-one");
    served_model_release(ref.model);

    ck_assert_int_eq(model_repo_acquire(r, NULL, NULL, &ref), REPO_OK); /* default */
    ck_assert_str_eq(ref.name, "alpha");
    served_model_release(ref.model);

    ck_assert_int_eq(model_repo_acquire(r, "beta", NULL, &ref), REPO_OK);
    ck_assert_uint_eq(ref.version, 1);
    ck_assert_str_eq(ref.model->name, "beta-one");
    served_model_release(ref.model);

    uint64_t v[8];
    ck_assert_int_eq(model_repo_versions(r, "alpha", v, 8), 2);
    ck_assert_uint_eq(v[0], 2);
    ck_assert_uint_eq(v[1], 1);
    model_repo_close(r);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_unknown_refused) {
    make_repo();
    nn_error err;
    model_repo *r = model_repo_open_dir(tu_tpath("repo"), "beta", &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    char name[64];
    model_repo_default_name(r, name, sizeof name);
    ck_assert_str_eq(name, "beta");

    model_ref ref;
    const char *bad_names[] = {"gamma", "notes", ".hidden", "..", "../repo/alpha", "a/b", "README"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        ck_assert_msg(model_repo_acquire(r, bad_names[i], NULL, &ref) == REPO_NOT_FOUND,
                      "%s was found", bad_names[i]);
        ck_assert_ptr_null(ref.model);
    }
    const char *bad_versions[] = {"3", "0", "01", "-1", "1.0", "v1", "99999999999999999999", "notes"};
    for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++)
        ck_assert_msg(model_repo_acquire(r, "alpha", bad_versions[i], &ref) == REPO_NOT_FOUND,
                      "alpha version %s was found", bad_versions[i]);
    ck_assert_int_eq(model_repo_versions(r, "gamma", (uint64_t[4]){0}, 4), REPO_NOT_FOUND);

    nn_error lerr;
    ck_assert_int_eq(model_repo_load(r, "gamma", &lerr), REPO_NOT_FOUND);
    ck_assert_int_eq(model_repo_load(r, "../x", &lerr), REPO_BAD_NAME);
    ck_assert_int_eq(model_repo_unload(r, "gamma"), REPO_NOT_FOUND);
    model_repo_close(r);

    /* A default that is not there, and an empty directory, are refused. */
    ck_assert_ptr_null(model_repo_open_dir(tu_tpath("repo"), "gamma", &err));
    ck_assert_msg(strstr(err.msg, "gamma") != NULL, "%s", err.msg);
    mkdir(tu_tpath("empty"), 0755);
    ck_assert_ptr_null(model_repo_open_dir(tu_tpath("empty"), NULL, &err));
    ck_assert_ptr_null(model_repo_open_dir(tu_tpath("missing"), NULL, &err));
    tu_tmpdir_remove();
}
END_TEST

/* Readers acquire and release in a loop while the main thread reloads:
 * every acquire must succeed and see a version that exists. */
typedef struct {
    model_repo *r;
    atomic_int stop;
    atomic_int failures, seen2, seen3;
} reader_state;

static void *reader(void *arg) {
    reader_state *s = arg;
    while (!atomic_load(&s->stop)) {
        model_ref ref;
        if (model_repo_acquire(s->r, "alpha", NULL, &ref) != REPO_OK) {
            atomic_fetch_add(&s->failures, 1);
            continue;
        }
        /* touch the model: a freed one would trip ASan here */
        if (ref.model->net->n_layers < 1) atomic_fetch_add(&s->failures, 1);
        if (ref.version == 2) atomic_fetch_add(&s->seen2, 1);
        else if (ref.version == 3) atomic_fetch_add(&s->seen3, 1);
        else atomic_fetch_add(&s->failures, 1);
        served_model_release(ref.model);
    }
    return NULL;
}

START_TEST(test_reload_swaps_atomically) {
    make_repo();
    nn_error err;
    model_repo *r = model_repo_open_dir(tu_tpath("repo"), NULL, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    char before[65], old_v1[65];
    sha_of(r, "alpha", NULL, before);
    sha_of(r, "alpha", "1", old_v1);

    /* A request holding version 2 across the reload keeps a usable model. */
    model_ref held;
    ck_assert_int_eq(model_repo_acquire(r, "alpha", NULL, &held), REPO_OK);

    reader_state s = {.r = r};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, reader, &s);
    tu_write_model("repo/alpha/3/" MODEL_REPO_FILE, "alpha-three", 6);
    for (int i = 0; i < 20; i++) ck_assert_msg(model_repo_load(r, "alpha", &err) == REPO_OK, "%s", err.msg);
    /* The readers may not have been scheduled since the first reload (a
     * busy machine failed here once): reload until one has seen version
     * 3, up to a bound, so that a reload readers cannot see still fails. */
    for (int i = 0; i < 5000 && atomic_load(&s.seen3) == 0; i++)
        ck_assert_msg(model_repo_load(r, "alpha", &err) == REPO_OK, "%s", err.msg);
    atomic_store(&s.stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&s.failures), 0);
    ck_assert_int_gt(atomic_load(&s.seen3), 0);

    model_ref ref;
    ck_assert_int_eq(model_repo_acquire(r, "alpha", NULL, &ref), REPO_OK);
    ck_assert_uint_eq(ref.version, 3);
    ck_assert_str_eq(ref.model->name, "alpha-three");
    served_model_release(ref.model);
    char v1[65];
    sha_of(r, "alpha", "1", v1);
    ck_assert_str_eq(v1, old_v1); /* the same file read again */

    ck_assert_str_eq(held.model->sha256, before);
    ck_assert_str_eq(held.model->name, "alpha-two");
    served_model_release(held.model);
    model_repo_close(r);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_bad_files_keep_old) {
    make_repo();
    nn_error err;
    model_repo *r = model_repo_open_dir(tu_tpath("repo"), NULL, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    char before[65], after[65];
    sha_of(r, "alpha", NULL, before);

    /* A corrupt newest version: refused, version 2 keeps serving. */
    mkdir(tu_tpath("repo/alpha/4"), 0755);
    FILE *f = fopen(tu_tpath("repo/alpha/4/" MODEL_REPO_FILE), "w");
    ck_assert_ptr_nonnull(f);
    fputs("DIGITD??garbage", f);
    fclose(f);
    ck_assert_int_eq(model_repo_load(r, "alpha", &err), REPO_FAILED);
    ck_assert_msg(strstr(err.msg, "/4/") != NULL, "%s", err.msg);
    sha_of(r, "alpha", NULL, after);
    ck_assert_str_eq(after, before);

    /* A FIFO at the model path: refused at once, never waited on. */
    unlink(tu_tpath("repo/alpha/4/" MODEL_REPO_FILE));
    ck_assert_int_eq(mkfifo(tu_tpath("repo/alpha/4/" MODEL_REPO_FILE), 0644), 0);
    alarm(10); /* a blocking open would be killed here, failing the test */
    ck_assert_int_eq(model_repo_load(r, "alpha", &err), REPO_FAILED);
    alarm(0);
    ck_assert_msg(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);
    sha_of(r, "alpha", NULL, after);
    ck_assert_str_eq(after, before);

    /* A version directory without its file fails the same way. */
    unlink(tu_tpath("repo/alpha/4/" MODEL_REPO_FILE));
    ck_assert_int_eq(model_repo_load(r, "alpha", &err), REPO_FAILED);
    sha_of(r, "alpha", NULL, after);
    ck_assert_str_eq(after, before);

    /* SIGHUP's rescan reports the failure and keeps both models. */
    ck_assert_int_eq(model_repo_reload_all(r, &err), -1);
    sha_of(r, "alpha", NULL, after);
    ck_assert_str_eq(after, before);
    sha_of(r, "beta", NULL, after);
    ck_assert_str_ne(after, "");
    model_repo_close(r);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_unload_load_index) {
    make_repo();
    /* a model whose only version is corrupt opens as unavailable */
    mkdir(tu_tpath("repo/broken"), 0755);
    mkdir(tu_tpath("repo/broken/1"), 0755);
    FILE *f = fopen(tu_tpath("repo/broken/1/" MODEL_REPO_FILE), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    nn_error err;
    model_repo *r = model_repo_open_dir(tu_tpath("repo"), NULL, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    model_ref ref;
    ck_assert_int_eq(model_repo_acquire(r, "broken", NULL, &ref), REPO_UNAVAILABLE);

    repo_index_entry *rows;
    int n = model_repo_index(r, &rows);
    ck_assert_int_eq(n, 4); /* alpha 1, alpha 2, beta 1, broken */
    ck_assert_str_eq(rows[0].name, "alpha");
    ck_assert_uint_eq(rows[0].version, 1);
    ck_assert(rows[0].ready);
    ck_assert_uint_eq(rows[1].version, 2);
    ck_assert_str_eq(rows[2].name, "beta");
    ck_assert_str_eq(rows[3].name, "broken");
    ck_assert(!rows[3].ready);
    ck_assert_msg(strlen(rows[3].reason) > 0, "no reason for broken");
    free(rows);

    ck_assert_int_eq(model_repo_unload(r, "alpha"), REPO_OK);
    ck_assert_int_eq(model_repo_acquire(r, "alpha", NULL, &ref), REPO_UNAVAILABLE);
    ck_assert_int_eq(model_repo_acquire(r, "alpha", "1", &ref), REPO_UNAVAILABLE);
    ck_assert(!model_repo_ready(r)); /* the default model is gone */
    ck_assert_int_eq(model_repo_acquire(r, "beta", NULL, &ref), REPO_OK);
    served_model_release(ref.model);

    ck_assert_int_eq(model_repo_load(r, "alpha", &err), REPO_OK);
    ck_assert(model_repo_ready(r));
    ck_assert_int_eq(model_repo_acquire(r, "alpha", NULL, &ref), REPO_OK);
    ck_assert_uint_eq(ref.version, 2);
    served_model_release(ref.model);

    /* A model directory added after start is found by load. */
    tu_write_model("repo/gamma/7/" MODEL_REPO_FILE, "gamma-seven", 9);
    ck_assert_int_eq(model_repo_acquire(r, "gamma", NULL, &ref), REPO_NOT_FOUND);
    ck_assert_int_eq(model_repo_load(r, "gamma", &err), REPO_OK);
    ck_assert_int_eq(model_repo_acquire(r, "gamma", "7", &ref), REPO_OK);
    served_model_release(ref.model);
    model_repo_close(r);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_one_file_repository) {
    tu_tmpdir_make();
    tu_write_model("one.model", "digits v1", 11);
    tu_write_model("my digits.v2.model", "digits v1", 11);
    nn_error err;
    char name[64];
    /* named after the file, not what it records; a route segment */
    model_repo *r = model_repo_open_file(tu_tpath("my digits.v2.model"), &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    model_repo_default_name(r, name, sizeof name);
    ck_assert_str_eq(name, "my_digits.v2"); /* ' ' became '_', the extension went */
    model_repo_close(r);
    r = model_repo_open_file(tu_tpath("one.model"), &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    model_repo_default_name(r, name, sizeof name);
    ck_assert_str_eq(name, "one");
    char before[65], after[65];
    sha_of(r, NULL, NULL, before);
    ck_assert_str_ne(before, "");
    model_ref ref;
    ck_assert_int_eq(model_repo_acquire(r, "one", "1", &ref), REPO_OK);
    served_model_release(ref.model);

    /* reload re-reads the same file */
    tu_write_model("one.model", "digits v1", 12);
    ck_assert_int_eq(model_repo_reload_all(r, &err), 0);
    sha_of(r, NULL, NULL, after);
    ck_assert_str_ne(after, before);
    /* a broken file is refused and the last good one serves on */
    FILE *f = fopen(tu_tpath("one.model"), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(model_repo_reload_all(r, &err), -1);
    sha_of(r, NULL, NULL, before);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(model_repo_load(r, "other", &err), REPO_NOT_FOUND);
    model_repo_close(r);

    /* a refused file still makes a repository, not ready until a reload */
    r = model_repo_open_file(tu_tpath("one.model"), &err);
    ck_assert_ptr_nonnull(r);
    ck_assert(!model_repo_ready(r));
    ck_assert(strstr(err.msg, "one.model") != NULL);
    model_repo_close(r);
    r = model_repo_open_file(tu_tpath("missing.model"), &err);
    ck_assert_ptr_nonnull(r);
    ck_assert(!model_repo_ready(r));
    ck_assert_int_eq(model_repo_acquire(r, NULL, NULL, &ref), REPO_UNAVAILABLE);
    model_repo_close(r);
    tu_tmpdir_remove();
}
END_TEST

START_TEST(test_names_and_versions) {
    ck_assert(model_repo_name_valid("mnist-cnn_2.0"));
    ck_assert(!model_repo_name_valid(""));
    ck_assert(!model_repo_name_valid(".."));
    ck_assert(!model_repo_name_valid(".x"));
    ck_assert(!model_repo_name_valid("a/b"));
    ck_assert(!model_repo_name_valid("a b"));
    ck_assert(!model_repo_name_valid("a%2fb"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[79] = '\0';
    ck_assert(!model_repo_name_valid(long_name));
    long_name[63] = '\0';
    ck_assert(model_repo_name_valid(long_name));
    uint64_t v;
    ck_assert_int_eq(model_repo_parse_version("1", &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(model_repo_parse_version("9007199254740992", &v), 0);
    ck_assert_int_eq(model_repo_parse_version("9007199254740993", &v), -1);
    ck_assert_int_eq(model_repo_parse_version("0", &v), -1);
    ck_assert_int_eq(model_repo_parse_version("+1", &v), -1);
    ck_assert_int_eq(model_repo_parse_version("", &v), -1);
    ck_assert_int_eq(model_repo_parse_version(NULL, &v), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("model_repo");
    TCase *tc = tcase_create("repo");
    tcase_add_unchecked_fixture(tc, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_by_name_and_version);
    tcase_add_test(tc, test_unknown_refused);
    tcase_add_test(tc, test_reload_swaps_atomically);
    tcase_add_test(tc, test_bad_files_keep_old);
    tcase_add_test(tc, test_unload_load_index);
    tcase_add_test(tc, test_one_file_repository);
    tcase_add_test(tc, test_names_and_versions);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
