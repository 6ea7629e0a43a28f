/* testutil.h: the few helpers every unit test shares. */
#ifndef DIGITD_TESTUTIL_H
#define DIGITD_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#include "nn.h"

/* Runs the suite (CK_NOFORK is not forced: Check forks per test unless
 * CK_FORK=no) and returns the process exit code: 0 when all passed. */
int tu_run(Suite *s);

/* MNIST directory from DIGITD_MNIST_DIR, or NULL when unset/empty. */
const char *tu_mnist_dir(void);

/* Loads MNIST's training and test sets for a test program's main.
 * Returns 0, or the exit code to leave with: 77 (skipped, said on stdout,
 * naming `what`) without DIGITD_MNIST_DIR, 1 when the files do not load. */
int tu_mnist_sets(nn_dataset *train, nn_dataset *test, const char *what);

/* Fills n floats uniformly in [lo, hi). */
void tu_fill(float *x, size_t n, nn_rng *rng, float lo, float hi);

/* Like an image's background: every other of the `rows` rows of `cols`
 * floats (the odd ones) keeps only its values >= keep (uniform [0, 1)
 * values with keep 0.8 leave about 20% non-zero), the rest becoming 0. */
void tu_sparsify_rows(float *x, int rows, int cols, float keep);

/* Central finite differences: for each of the n entries of x, perturbs it
 * by +-h, calls loss(ctx) and compares (L+ - L-)/2h with analytic[i].
 * Returns the largest |num - ana| / max(1e-3, |num| + |ana|). x is
 * restored. Use double-checked losses (computed in double where cheap). */
double tu_gradcheck(float *x, size_t n, const float *analytic,
                    double (*loss)(void *ctx), void *ctx, float h);

/* The reference forward pass: every layer's training forward
 * (layer_forward with no training state, no fused kernel), one thread:
 * x (B,784) -> logits (B, nn_net_outputs(net)). What the inference
 * kernels of nn_predict are checked against. */
void tu_reference_logits(const nn_net *net, const float *x, int B,
                         float *logits);

/* Path of a file under the source tree, in a static buffer. */
const char *tu_source_path(const char *rel);

/* Reference fixtures (tests/data/NAME_reference.txt, written by the scripts
 * in tests/pytorch/; format: one "NAME COUNT V1 ... VCOUNT" line per
 * array, '#' comments). Returns the values of entry `name` of the fixture
 * at source-relative path `rel` as malloc'd floats, failing the test
 * unless the entry exists with exactly `want` values. */
float *tu_fixture_floats(const char *rel, const char *name, size_t want);

/* Fails unless |got[i] - want[i]| <= rtol * max|want| for every i. */
void tu_assert_close(const char *name, const float *got, const float *want,
                     size_t n, double rtol);

/* Scratch directories for tests that write files. tu_tmp_base_setup and
 * tu_tmp_base_teardown go in tcase_add_unchecked_fixture: the parent
 * process makes and removes one base directory per test case, so nothing
 * is left behind even when a check fails halfway through a forked test.
 * In a test, tu_tmpdir_make() makes a fresh subdirectory (its path in
 * tu_tmpdir), tu_tpath(name) names a file in it (four rotating static
 * buffers) and tu_tmpdir_remove() removes it with everything inside. */
extern char tu_tmpdir[512];
void tu_tmp_base_setup(void);
void tu_tmp_base_teardown(void);
void tu_tmpdir_make(void);
void tu_tmpdir_remove(void);
const char *tu_tpath(const char *name);

/* Writes a small MLP (784-8-10), its weights drawn from `seed`, recorded
 * name `name`, to tu_tmpdir/rel (directories made as needed). The seed
 * makes each file's SHA-256 different: how tests tell versions apart. */
void tu_write_model(const char *rel, const char *name, uint64_t seed);

#endif
