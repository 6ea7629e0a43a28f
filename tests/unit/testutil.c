#include "testutil.h"
#include "layers.h"

#include <ftw.h>
#include <sys/stat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

const char *tu_mnist_dir(void) {
    const char *d = getenv("DIGITD_MNIST_DIR");
    return (d && *d) ? d : NULL;
}

int tu_mnist_sets(nn_dataset *train, nn_dataset *test, const char *what) {
    const char *dir = tu_mnist_dir();
    if (!dir) {
        printf("SKIPPED: DIGITD_MNIST_DIR is not set; %s did not run\n", what);
        return 77;
    }
    nn_error err;
    if (nn_mnist_load(dir, "train", train, &err) ||
        nn_mnist_load(dir, "t10k", test, &err)) {
        fprintf(stderr, "cannot load MNIST from %s: %s\n", dir, err.msg);
        return 1;
    }
    return 0;
}

void tu_fill(float *x, size_t n, nn_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * nn_rng_uniform(rng);
}

void tu_sparsify_rows(float *x, int rows, int cols, float keep) {
    for (int r = 1; r < rows; r += 2)
        for (int c = 0; c < cols; c++)
            if (x[(size_t)r * cols + c] < keep)
                x[(size_t)r * cols + c] = 0.0f;
}

double tu_gradcheck(float *x, size_t n, const float *analytic,
                    double (*loss)(void *ctx), void *ctx, float h) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double den = fabs(num) + fabs(analytic[i]);
        if (den < 1e-3) den = 1e-3;
        double rel = fabs(num - analytic[i]) / den;
        if (rel > worst) worst = rel;
    }
    return worst;
}

const char *tu_source_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", DIGITD_SOURCE_DIR, rel);
    return buf;
}

float *tu_fixture_floats(const char *rel, const char *name, size_t want) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", DIGITD_SOURCE_DIR, rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    float *vals = NULL;
    while (!vals && getline(&line, &cap, f) >= 0) {
        if (line[0] == '#' || line[0] == '\n') continue;
        size_t len = strcspn(line, " ");
        if (len != strlen(name) || strncmp(line, name, len) != 0) continue;
        char *p = line + len, *end;
        long count = strtol(p, &end, 10);
        ck_assert_msg(end != p && count == (long)want,
                      "%s: count %ld, expected %zu", name, count, want);
        vals = malloc((want ? want : 1) * sizeof *vals);
        ck_assert_ptr_nonnull(vals);
        for (size_t i = 0; i < want; i++) {
            p = end;
            vals[i] = strtof(p, &end);
            ck_assert_msg(end != p, "%s: value %zu missing", name, i);
        }
        while (*end == ' ' || *end == '\n' || *end == '\r') end++;
        ck_assert_msg(*end == '\0', "%s: more than %zu values", name, want);
    }
    free(line);
    fclose(f);
    ck_assert_msg(vals != NULL, "%s: no such entry in %s", name, path);
    return vals;
}

void tu_assert_close(const char *name, const float *got, const float *want,
                     size_t n, double rtol) {
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    double tol = rtol * (scale > 0 ? scale : 1);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol,
                      "%s[%zu] = %.9g, PyTorch %.9g", name, i, got[i], want[i]);
}

char tu_tmpdir[512];
static char tu_basedir[256];

static int remove_entry(const char *p, const struct stat *sb, int flag,
                        struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_tmpdir_remove(void) {
    if (tu_tmpdir[0]) {
        chmod(tu_tmpdir, 0700); /* a test may have made it read-only */
        nftw(tu_tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
    tu_tmpdir[0] = 0;
}

void tu_tmp_base_setup(void) {
    const char *t = getenv("TMPDIR");
    snprintf(tu_basedir, sizeof tu_basedir, "%s/digitd-test-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tu_basedir)) tu_basedir[0] = 0;
}

void tu_tmp_base_teardown(void) {
    if (tu_basedir[0]) {
        snprintf(tu_tmpdir, sizeof tu_tmpdir, "%s", tu_basedir);
        tu_tmpdir_remove();
    }
    tu_basedir[0] = 0;
}

void tu_tmpdir_make(void) {
    ck_assert_msg(tu_basedir[0], "no base directory (mkdtemp failed?)");
    snprintf(tu_tmpdir, sizeof tu_tmpdir, "%s/t-XXXXXX", tu_basedir);
    ck_assert_ptr_nonnull(mkdtemp(tu_tmpdir));
}

const char *tu_tpath(const char *name) {
    static char buf[4][640];
    static int which;
    which = (which + 1) % 4;
    snprintf(buf[which], sizeof buf[which], "%s/%s", tu_tmpdir, name);
    return buf[which];
}

void tu_write_model(const char *rel, const char *name, uint64_t seed) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tu_tmpdir, rel);
    for (char *p = path + strlen(tu_tmpdir) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    nn_error err;
    nn_net *net = nn_net_create("784-8-10", "relu", &err);
    ck_assert_msg(net != NULL, "%s", err.msg);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_net_init(net, &rng);
    snprintf(net->meta.name, sizeof net->meta.name, "%s", name);
    ck_assert_msg(nn_model_save(net, path, &err) == 0, "%s", err.msg);
    nn_net_free(net);
}

void tu_reference_logits(const nn_net *net, const float *x, int B,
                         float *logits) {
    size_t wide = NN_PIXELS, scratch_n = 1;
    for (int i = 0; i < net->n_layers; i++) {
        size_t o = nn_shape_size(net->layers[i].out);
        if (o > wide) wide = o;
        size_t s = layer_scratch_floats(&net->layers[i], B, 1);
        if (s > scratch_n) scratch_n = s;
    }
    float *a = malloc(wide * B * sizeof *a), *c = malloc(wide * B * sizeof *c),
          *scratch = malloc(scratch_n * sizeof *scratch);
    ck_assert(a && c && scratch);
    memcpy(a, x, (size_t)B * NN_PIXELS * sizeof *a);
    for (int i = 0; i < net->n_layers; i++) {
        layer_forward(&net->layers[i], net->params, a, c, B, NULL, NULL, NULL,
                      scratch, 1);
        float *t = a;
        a = c;
        c = t;
    }
    memcpy(logits, a, (size_t)B * nn_net_outputs(net) * sizeof *logits);
    free(a);
    free(c);
    free(scratch);
}
