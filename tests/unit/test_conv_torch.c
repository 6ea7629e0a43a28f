/*
 * test_conv_torch.c: nn/conv.c and nn/pool.c against values dumped from
 * PyTorch (tests/data/conv_reference.txt, written by
 * tests/pytorch/gen_conv_reference.py, which documents the format:
 * one "NAME COUNT V1 ... VCOUNT" line per array, '#' comments).
 *
 * x (2,2,7,7) -> conv 3x3, 3 channels, pad 1 -> out (2,3,7,7)
 *   -> maxpool 2 -> pool.out (2,3,3,3); loss = sum(pool.out * pool.dout).
 * Each result must be within 1e-5 of the reference, relative to the
 * largest magnitude in that reference array.
 */
#include <stdlib.h>

#include "layers.h"
#include "testutil.h"

#define FIXTURE "tests/data/conv_reference.txt"
#define RTOL 1e-5

static float *fixture(const char *name, size_t want) {
    return tu_fixture_floats(FIXTURE, name, want);
}

/* ---- the test ----------------------------------------------------- */

START_TEST(conv_and_pool_match_pytorch) {
    float *shape = fixture("shape.conv", 7);
    float *pool_k = fixture("shape.pool", 1);
    const int B = (int)shape[0], C = (int)shape[1], H = (int)shape[2],
              W = (int)shape[3], OC = (int)shape[4], K = (int)shape[5],
              pad = (int)shape[6], P = (int)pool_k[0];
    free(shape);
    free(pool_k);
    const int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
    const size_t n_in = (size_t)B * C * H * W, n_w = (size_t)OC * C * K * K;
    const size_t n_out = (size_t)B * OC * OH * OW;
    const size_t n_pool = (size_t)B * OC * (OH / P) * (OW / P);

    float *x = fixture("x", n_in);
    float *weight = fixture("conv.weight", n_w);
    float *bias = fixture("conv.bias", (size_t)OC);
    float *dout = fixture("pool.dout", n_pool);
    float *want_out = fixture("conv.out", n_out);
    float *want_pool = fixture("pool.out", n_pool);
    float *want_pool_din = fixture("pool.din", n_out);
    float *want_din = fixture("conv.din", n_in);
    float *want_dw = fixture("conv.dweight", n_w);
    float *want_db = fixture("conv.dbias", (size_t)OC);

    for (int threads = 1; threads <= 2; threads++) {
        float *scratch =
            malloc(conv_scratch_floats(C, H, W, OC, K, pad, threads) * sizeof(float));
        float *out = malloc(n_out * sizeof *out);
        float *pooled = malloc(n_pool * sizeof *pooled);
        int32_t *arg = malloc(n_pool * sizeof *arg);
        float *dpool = malloc(n_out * sizeof *dpool);
        float *din = malloc(n_in * sizeof *din);
        float *dw = malloc(n_w * sizeof *dw);
        float *db = malloc((size_t)OC * sizeof *db);
        ck_assert(scratch && out && pooled && arg && dpool && din && dw && db);

        conv_forward(out, x, weight, bias, B, C, H, W, OC, K, pad, NULL,
                     scratch, threads);
        tu_assert_close("conv.out", out, want_out, n_out, RTOL);
        maxpool_forward(pooled, arg, out, B, OC, OH, OW, P);
        tu_assert_close("pool.out", pooled, want_pool, n_pool, RTOL);
        maxpool_backward(dpool, dout, arg, B, OC, OH, OW, P);
        tu_assert_close("pool.din", dpool, want_pool_din, n_out, RTOL);
        conv_backward(din, dw, db, dpool, x, weight, B, C, H, W, OC, K, pad,
                      scratch, threads);
        tu_assert_close("conv.din", din, want_din, n_in, RTOL);
        tu_assert_close("conv.dweight", dw, want_dw, n_w, RTOL);
        tu_assert_close("conv.dbias", db, want_db, (size_t)OC, RTOL);

        free(scratch);
        free(out);
        free(pooled);
        free(arg);
        free(dpool);
        free(din);
        free(dw);
        free(db);
    }
    free(x);
    free(weight);
    free(bias);
    free(dout);
    free(want_out);
    free(want_pool);
    free(want_pool_din);
    free(want_din);
    free(want_dw);
    free(want_db);
}
END_TEST

static Suite *conv_torch_suite(void) {
    Suite *s = suite_create("conv_torch");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, conv_and_pool_match_pytorch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(conv_torch_suite()); }
