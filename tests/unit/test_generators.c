/* test_generators.c: generated negatives and digit styles (nn/negatives.c,
 * nn/styles.c): deterministic for a seed, normalised like a served input,
 * every kind and style reachable, held-out kinds kept apart from training
 * kinds, and the font loader refuses what is not a font. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define FONT_DIR "/usr/share/hershey-fonts"

/* A fake digit set: a vertical bar labelled 1, a bar with a top labelled
 * 7, and a box-ish shape for the rest. */
static nn_dataset fake_digits(void) {
    enum { N = 30 };
    nn_dataset d = {N, calloc((size_t)N * NN_PIXELS, sizeof(float)), malloc(N)};
    for (int i = 0; i < N; i++) {
        float *img = d.images + (size_t)i * NN_PIXELS;
        int label = i % 10;
        d.labels[i] = (uint8_t)label;
        for (int y = 4; y < 24; y++) img[y * NN_SIDE + 14] = img[y * NN_SIDE + 15] = 1;
        if (label == 7)
            for (int x = 6; x < 16; x++) img[4 * NN_SIDE + x] = img[5 * NN_SIDE + x] = 1;
        if (label != 1 && label != 7)
            for (int x = 8; x < 16; x++)
                img[4 * NN_SIDE + x] = img[14 * NN_SIDE + x] = img[23 * NN_SIDE + x] = 1;
    }
    return d;
}

static void check_image(const float *img) {
    double mass = 0;
    for (int i = 0; i < NN_PIXELS; i++) {
        ck_assert(img[i] >= 0.0f && img[i] <= 1.0f);
        mass += img[i];
    }
    ck_assert_double_gt(mass, 2.0); /* some ink survived */
}

static int load_fonts(nn_font **f, bool held_out) {
    nn_error err;
    int n = nn_fonts_load_set(FONT_DIR, held_out, f, 16, &err);
    ck_assert_msg(n > 0, "%s (scripts/install-deps.sh installs hershey-fonts-data)",
                  err.msg);
    return n;
}

START_TEST(negatives_are_deterministic_and_cover_every_kind) {
    nn_font *fonts[16];
    int nf = load_fonts(fonts, false);
    nn_dataset d = fake_digits();
    nn_negative_source src = {fonts, nf, &d, false};
    int seen[NN_NEG_KINDS] = {0};
    for (int i = 0; i < 400; i++) {
        float a[NN_PIXELS], b[NN_PIXELS];
        nn_rng r1, r2;
        nn_rng_seed(&r1, 100 + i);
        nn_rng_seed(&r2, 100 + i);
        int k1 = nn_negative(&src, &r1, a), k2 = nn_negative(&src, &r2, b);
        ck_assert_int_eq(k1, k2);
        ck_assert_mem_eq(a, b, sizeof a);
        check_image(a);
        ck_assert_int_lt(k1, NN_NEG_TRAIN_KINDS); /* training kinds only */
        seen[k1]++;
    }
    for (int k = 0; k < NN_NEG_TRAIN_KINDS; k++)
        ck_assert_msg(seen[k] > 0, "kind %d never drawn", k);
    for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
    nn_dataset_free(&d);
}
END_TEST

START_TEST(held_out_negatives_use_other_kinds_and_fonts) {
    nn_font *fonts[16];
    int nf = load_fonts(fonts, true);
    nn_negative_source src = {fonts, nf, NULL, true};
    int seen[NN_NEG_KINDS] = {0};
    for (int i = 0; i < 200; i++) {
        float a[NN_PIXELS];
        nn_rng r;
        nn_rng_seed(&r, 5000 + i);
        int k = nn_negative(&src, &r, a);
        check_image(a);
        ck_assert(k == NN_NEG_GLYPH || k >= NN_NEG_TRAIN_KINDS);
        seen[k]++;
    }
    ck_assert_int_gt(seen[NN_NEG_GLYPH], 0);
    ck_assert_int_gt(seen[NN_NEG_ZIGZAG], 0);
    ck_assert_int_gt(seen[NN_NEG_SHAPES], 0);
    for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
}
END_TEST

START_TEST(font_loader_refuses_garbage) {
    tu_tmpdir_make();
    const char *path = tu_tpath("bad.jhf");
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs("12345 x9MWRFRT\n", f); /* count is not a number */
    fclose(f);
    nn_error err;
    ck_assert(nn_font_load(path, &err) == NULL);
    ck_assert(strstr(err.msg, "Hershey") != NULL);
    f = fopen(path, "w");
    fputs("12345 50MWRF\n", f); /* fewer vertices than announced */
    fclose(f);
    ck_assert(nn_font_load(path, &err) == NULL);
    ck_assert(nn_font_load(tu_tpath("missing.jhf"), &err) == NULL);
    tu_tmpdir_remove();
    /* a real one: the 96 ASCII glyphs from space on */
    nn_font *good = nn_font_load(FONT_DIR "/futural.jhf", &err);
    ck_assert_msg(good != NULL, "%s", err.msg);
    ck_assert_int_eq(nn_font_glyphs(good), 96);
    nn_font_free(good);
}
END_TEST

START_TEST(every_style_applies_and_is_deterministic) {
    nn_dataset d = fake_digits();
    for (int s = 0; s < NN_STYLE_COUNT; s++) {
        int applied = 0;
        for (int i = 0; i < d.n; i++) {
            const float *in = d.images + (size_t)i * NN_PIXELS;
            float a[NN_PIXELS], b[NN_PIXELS];
            nn_rng r1, r2;
            nn_rng_seed(&r1, 77 + i);
            nn_rng_seed(&r2, 77 + i);
            int la = nn_style_apply((nn_style)s, in, d.labels[i], a, &r1);
            int lb = nn_style_apply((nn_style)s, in, d.labels[i], b, &r2);
            ck_assert_int_eq(la, lb);
            if (la < 0) continue;
            ck_assert_mem_eq(a, b, sizeof a);
            check_image(a);
            if (s == NN_STYLE_FOUR_OPEN || s == NN_STYLE_FOUR_CLOSED)
                ck_assert_int_eq(la, 4);
            else
                ck_assert_int_eq(la, d.labels[i]);
            applied++;
        }
        ck_assert_msg(applied > 0, "style %s never applied", nn_style_name((nn_style)s));
        if (s == NN_STYLE_ONE_LEAD_IN || s == NN_STYLE_SEVEN_CROSSED)
            ck_assert_int_eq(applied, 3); /* only to its own digit */
        else
            ck_assert_int_eq(applied, d.n);
    }
    ck_assert_str_eq(nn_style_name(NN_STYLE_ONE_LEAD_IN), "one-lead-in");
    nn_dataset_free(&d);
}
END_TEST

START_TEST(training_set_gets_labelled_negatives_and_styles) {
    nn_font *fonts[16];
    int nf = load_fonts(fonts, false);
    nn_dataset d = fake_digits(), out;
    nn_negative_source src = {fonts, nf, &d, false};
    nn_error err;
    ck_assert(nn_dataset_with_negatives(&d, &src, 50, 40, 3, &out, &err) == 0);
    ck_assert_int_eq(out.n, d.n + 50 + 40);
    ck_assert_mem_eq(out.images, d.images, (size_t)d.n * NN_PIXELS * sizeof(float));
    ck_assert_mem_eq(out.labels, d.labels, (size_t)d.n);
    for (int i = d.n; i < d.n + 50; i++) ck_assert_int_eq(out.labels[i], NN_NOT_A_DIGIT);
    int styled[NN_CLASSES] = {0};
    for (int i = d.n + 50; i < out.n; i++) {
        ck_assert_int_lt(out.labels[i], NN_CLASSES);
        styled[out.labels[i]]++;
    }
    ck_assert_int_eq(styled[1], 10);
    ck_assert_int_eq(styled[7], 10);
    ck_assert_int_eq(styled[4], 20);
    /* same seed, same set */
    nn_dataset again;
    ck_assert(nn_dataset_with_negatives(&d, &src, 50, 40, 3, &again, &err) == 0);
    ck_assert_mem_eq(again.images, out.images, (size_t)out.n * NN_PIXELS * sizeof(float));
    nn_dataset_free(&again);
    ck_assert_int_eq(nn_dataset_with_negatives(&d, &src, -1, 0, 3, &again, &err), -1);
    nn_dataset_free(&out);
    nn_dataset_free(&d);
    for (int i = 0; i < nf; i++) nn_font_free(fonts[i]);
}
END_TEST

/* nn_augment_styles draws u, then a seed for the style, then runs
 * nn_augment: replaying those two draws and nn_augment alone gives the
 * same image exactly when no style ran (u >= 0.25), so about three in
 * four samples match. */
START_TEST(styled_augmentation_styles_a_quarter) {
    nn_dataset d = fake_digits();
    nn_rng rng;
    nn_rng_seed(&rng, 21);
    enum { N = 2000 };
    int plain_same = 0, expect_plain = 0;
    for (int i = 0; i < N; i++) {
        const float *in = d.images + (size_t)(i % d.n) * NN_PIXELS;
        float out[NN_PIXELS], plain[NN_PIXELS];
        nn_rng copy = rng;
        nn_augment_styles(in, out, &rng);
        for (int k = 0; k < NN_PIXELS; k++)
            ck_assert(out[k] >= -1e-6f && out[k] <= 1.0f + 1e-6f);
        float u = nn_rng_uniform(&copy);
        (void)nn_rng_u64(&copy);
        nn_augment(in, plain, &copy);
        expect_plain += u >= 0.25f;
        plain_same += memcmp(out, plain, sizeof out) == 0;
        ck_assert_mem_eq(&copy, &rng, sizeof rng); /* same numbers used */
    }
    ck_assert_int_ge(plain_same, expect_plain);   /* no style: identical */
    /* a style changes it, but for binarising a digit already binary (3%) */
    ck_assert_int_le(plain_same, expect_plain + N * 0.04);
    ck_assert_int_gt(expect_plain, N * 0.70);
    ck_assert_int_lt(expect_plain, N * 0.80);
    nn_dataset_free(&d);
}
END_TEST

int main(void) {
    Suite *s = suite_create("generators");
    TCase *tc = tcase_create("generators");
    tcase_add_unchecked_fixture(tc, tu_tmp_base_setup, tu_tmp_base_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, negatives_are_deterministic_and_cover_every_kind);
    tcase_add_test(tc, held_out_negatives_use_other_kinds_and_fonts);
    tcase_add_test(tc, font_loader_refuses_garbage);
    tcase_add_test(tc, every_style_applies_and_is_deterministic);
    tcase_add_test(tc, training_set_gets_labelled_negatives_and_styles);
    tcase_add_test(tc, styled_augmentation_styles_a_quarter);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
