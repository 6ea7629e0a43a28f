/* test_normalize.c: nn_normalize_digit turns the same digit, however it
 * was drawn (moved, smaller, thicker, inverted, on another canvas, faint
 * on gray paper), into nearly the same MNIST-like 28x28 input, with its
 * centre of mass on pixel (14, 14) and its box fitted into 20x20.
 *
 * The test digit is a "9" drawn with round-ended thick strokes on a white
 * canvas: its centre of mass (pulled up and right by the loop) is far
 * from its bounding box's centre, so centring the box instead of the mass
 * fails these tests, as do ignoring polarity and skipping the 20x20 fit.
 * (A "7" is more lopsided still, so much that, centred by mass, its foot
 * touches the bottom edge of 28x28: a fragile reference.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- drawing ------------------------------------------------------- */

typedef struct {
    int w, h;
    float *px; /* (h, w), 0 black .. 1 white */
} canvas;

static canvas canvas_new(int w, int h, float paper) {
    canvas c = {w, h, malloc((size_t)w * (size_t)h * sizeof(float))};
    ck_assert_ptr_nonnull(c.px);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) c.px[i] = paper;
    return c;
}

static double seg_dist(double x, double y, double ax, double ay, double bx,
                       double by) {
    double vx = bx - ax, vy = by - ay, wx = x - ax, wy = y - ay;
    double t = (vx * wx + vy * wy) / (vx * vx + vy * vy);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double dx = wx - t * vx, dy = wy - t * vy;
    return sqrt(dx * dx + dy * dy);
}

/* Paints every pixel whose centre lies within radius of segment a-b. */
static void stroke(canvas *c, double ax, double ay, double bx, double by,
                   double radius, float ink) {
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++)
            if (seg_dist(x + 0.5, y + 0.5, ax, ay, bx, by) <= radius)
                c->px[(size_t)y * c->w + x] = ink;
}

/* A "9" whose box's top-left corner is at (ox, oy), 100k + 2r wide and
 * 190k + 2r tall: a loop of radius 50k (a 36-gon) and a stem down its
 * right side. */
static void draw_nine(canvas *c, double ox, double oy, double k, double r) {
    const double pi = 3.14159265358979;
    double cx = ox + r + 50 * k, cy = oy + r + 50 * k;
    for (int i = 0; i < 36; i++) {
        double a = 2 * pi * i / 36, b = 2 * pi * (i + 1) / 36;
        stroke(c, cx + 50 * k * cos(a), cy + 50 * k * sin(a),
               cx + 50 * k * cos(b), cy + 50 * k * sin(b), r, 0.0f);
    }
    stroke(c, cx + 50 * k, cy, cx + 50 * k, oy + r + 190 * k, r, 0.0f);
}

/* ---- measuring ----------------------------------------------------- */

static void centre_of_mass(const float *img, double *cx, double *cy) {
    double m = 0, sx = 0, sy = 0;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            double v = img[y * NN_SIDE + x];
            m += v;
            sx += v * x;
            sy += v * y;
        }
    *cx = sx / m;
    *cy = sy / m;
}

/* Columns and rows spanned by pixels above `level`. */
static void extent(const float *img, float level, int *cols, int *rows) {
    int x0 = NN_SIDE, x1 = -1, y0 = NN_SIDE, y1 = -1;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            if (img[y * NN_SIDE + x] > level) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    *cols = x1 - x0 + 1;
    *rows = y1 - y0 + 1;
}

static double mean_abs_diff(const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < NN_PIXELS; i++) s += fabs((double)a[i] - b[i]);
    return s / NN_PIXELS;
}

static double correlation(const float *a, const float *b) {
    double ma = 0, mb = 0;
    for (int i = 0; i < NN_PIXELS; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= NN_PIXELS;
    mb /= NN_PIXELS;
    double sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < NN_PIXELS; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

static void normalize_ok(const canvas *c, float *out) {
    nn_error err = {""};
    int rc = nn_normalize_digit(c->px, c->w, c->h, out, &err);
    ck_assert_msg(rc == 0, "normalize failed: %s", err.msg);
}

/* The reference: the 9 roughly centred on a 280x280 pad, stroke radius 6
 * (a 12 px pen, in DESIGN's 8-18 px range for a 280 px pad). */
static void reference(float *out) {
    canvas c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 84, 39, 1.0, 6);
    normalize_ok(&c, out);
    free(c.px);
}

/* ---- the reference's own shape -------------------------------------- */

START_TEST(test_output_range_and_fit) {
    float out[NN_PIXELS];
    reference(out);
    for (int i = 0; i < NN_PIXELS; i++)
        ck_assert(out[i] >= 0.0f && out[i] <= 1.0f);
    /* The longer (vertical) side becomes 20 px; placed at a fractional
     * offset it can touch 21 rows, never more. The aspect ratio is kept:
     * 112/202 of 20 = 11.1 px wide, which at a fractional offset
     * touches 12 or 13 columns. */
    int cols, rows;
    extent(out, 1e-4f, &cols, &rows);
    ck_assert_int_ge(rows, 20);
    ck_assert_int_le(rows, 21);
    ck_assert_int_ge(cols, 12);
    ck_assert_int_le(cols, 13);
    /* The stroke core stays full ink after area averaging: a 12 px pen
     * scaled by 20/202 is 1.2 px wide, so some pixel is nearly covered. */
    float top = 0;
    for (int i = 0; i < NN_PIXELS; i++)
        if (out[i] > top) top = out[i];
    ck_assert_float_gt(top, 0.8f);
}
END_TEST

START_TEST(test_centre_of_mass_at_14) {
    float out[NN_PIXELS];
    reference(out);
    double cx, cy;
    centre_of_mass(out, &cx, &cy);
    /* Placement is fractional, so the centre of mass is exact up to the
     * area-averaging's discretisation (ink off-centre inside a border
     * pixel), which averages out over a stroke's many pixels: 0.1 px. */
    ck_assert_msg(fabs(cx - 14.0) < 0.1 && fabs(cy - 14.0) < 0.1,
                  "centre of mass (%.3f, %.3f)", cx, cy);
    /* And it is not where the box's centre would put it: the loop pulls
     * the mass 2.3 px up (and 1.5 px right) of the box's centre. */
    int x0 = NN_SIDE, x1 = -1, y0 = NN_SIDE, y1 = -1;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            if (out[y * NN_SIDE + x] > 0.05f) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    ck_assert_double_gt(0.5 * (y0 + y1) - cy, 1.0);
}
END_TEST

/* ---- the same digit drawn differently ------------------------------ */

START_TEST(test_moved_to_corner_is_identical) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* Whole-pixel moves leave the ink relative to its box unchanged, so
     * the result must be the same to float rounding. */
    canvas c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 2, 1, 1.0, 6);
    normalize_ok(&c, out);
    ck_assert_double_lt(mean_abs_diff(ref, out), 1e-6);
    free(c.px);

    c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 166, 76, 1.0, 6); /* bottom-right corner */
    normalize_ok(&c, out);
    ck_assert_double_lt(mean_abs_diff(ref, out), 1e-6);
    free(c.px);
}
END_TEST

START_TEST(test_non_square_canvas_is_identical) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    canvas c = canvas_new(640, 220, 1.0f);
    draw_nine(&c, 400, 9, 1.0, 6);
    normalize_ok(&c, out);
    ck_assert_double_lt(mean_abs_diff(ref, out), 1e-6);
    free(c.px);
}
END_TEST

START_TEST(test_inverted_is_identical) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* White on black: ink is now lighter than the border. */
    canvas c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 84, 39, 1.0, 6);
    for (int i = 0; i < 280 * 280; i++) c.px[i] = 1.0f - c.px[i];
    normalize_ok(&c, out);
    ck_assert_double_lt(mean_abs_diff(ref, out), 1e-6);
    free(c.px);
}
END_TEST

START_TEST(test_smaller_drawing_is_close) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* A third of the size: the box is 68 px instead of 202, so each
     * output pixel averages 3.4x3.4 source pixels instead of 10x10 and
     * the stroke's edges are quantised to 0.3 px instead of 0.1 px. The
     * shape is the same, so the images differ only along stroke edges. */
    canvas c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 150, 20, 1.0 / 3.0, 2.0);
    normalize_ok(&c, out);
    double r = correlation(ref, out), d = mean_abs_diff(ref, out);
    ck_assert_msg(r > 0.99 && d < 0.01, "corr %.4f mad %.4f", r, d);
    free(c.px);
}
END_TEST

START_TEST(test_thicker_pen_is_close) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* A 20 px pen instead of 12: the stroke is 2.0 px wide after the fit
     * instead of 1.2, the same skeleton, so still well correlated (but
     * not identical: MNIST's own strokes vary as much). Measured 0.946. */
    canvas c = canvas_new(280, 280, 1.0f);
    draw_nine(&c, 80, 35, 1.0, 10);
    normalize_ok(&c, out);
    double r = correlation(ref, out);
    ck_assert_msg(r > 0.9, "corr %.4f", r);
    free(c.px);
}
END_TEST

START_TEST(test_faint_pencil_on_gray_paper) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* Gray paper at 0.75 with +-0.02 grain, graphite at 0.55: a contrast
     * of 0.2, a tenth of the grain's range below the noise floor (0.2 of
     * the ink level, 0.04). Stretched, it must match the clean drawing. */
    canvas c = canvas_new(280, 280, 0.75f);
    draw_nine(&c, 84, 39, 1.0, 6);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    for (int i = 0; i < 280 * 280; i++) {
        float v = c.px[i] == 0.0f ? 0.55f : c.px[i];
        c.px[i] = v + 0.02f * (2.0f * nn_rng_uniform(&rng) - 1.0f);
    }
    normalize_ok(&c, out);
    /* Same shape (correlation) and same intensity (the difference: a
     * graphite core left at 0.2 instead of 1 would be 0.05 on average). */
    double r = correlation(ref, out), d = mean_abs_diff(ref, out);
    ck_assert_msg(r > 0.995 && d < 0.02, "corr %.4f mad %.4f", r, d);
    free(c.px);
}
END_TEST

START_TEST(test_mnist_like_input_is_kept) {
    float ref[NN_PIXELS], out[NN_PIXELS];
    reference(ref);
    /* A 28x28 already-normalised digit (white on black, as MNIST is) goes
     * through again: box 20 px long already, so scale ~1; its centre of
     * mass is already at 14: nearly the identity. Not quite: the fringe
     * pixels below the noise floor (20% of the ink) are dropped, about a
     * tenth of the mass, which leaves a correlation of 0.96. */
    canvas c = canvas_new(NN_SIDE, NN_SIDE, 0.0f);
    memcpy(c.px, ref, sizeof ref);
    normalize_ok(&c, out);
    double r = correlation(ref, out);
    ck_assert_msg(r > 0.95, "corr %.4f", r);
    free(c.px);
}
END_TEST

/* ---- thin and extreme shapes --------------------------------------- */

START_TEST(test_one_keeps_its_aspect) {
    /* A plain "1": a 16 px wide, 200 px tall bar. Fitted, it is 20 px
     * tall and 16 * 20/200 = 1.6 px wide, not stretched to 20. */
    canvas c = canvas_new(280, 280, 1.0f);
    for (int y = 40; y < 240; y++)
        for (int x = 132; x < 148; x++) c.px[y * 280 + x] = 0.0f;
    float out[NN_PIXELS];
    normalize_ok(&c, out);
    int cols, rows;
    extent(out, 1e-4f, &cols, &rows);
    ck_assert_int_ge(rows, 20);
    ck_assert_int_le(rows, 21);
    ck_assert_int_le(cols, 3);
    double cx, cy, mass = 0;
    centre_of_mass(out, &cx, &cy);
    for (int i = 0; i < NN_PIXELS; i++) mass += out[i];
    ck_assert_double_lt(fabs(cx - 14.0), 0.1);
    ck_assert_double_lt(fabs(cy - 14.0), 0.1);
    /* Mass is area times scale^2: 16 * 200 * (20/200)^2 = 32. */
    ck_assert_double_lt(fabs(mass - 32.0), 0.01);
    free(c.px);
}
END_TEST

START_TEST(test_single_row_and_column_images) {
    float out[NN_PIXELS];
    nn_error err = {""};
    /* 1 x 50: white, with a black run 15..34 (20 px). */
    float line[50];
    for (int i = 0; i < 50; i++) line[i] = (i >= 15 && i < 35) ? 0.0f : 1.0f;
    for (int vertical = 0; vertical < 2; vertical++) {
        int w = vertical ? 1 : 50, h = vertical ? 50 : 1;
        ck_assert_int_eq(nn_normalize_digit(line, w, h, out, &err), 0);
        int cols, rows;
        extent(out, 1e-4f, &cols, &rows);
        /* 20 px long and 1 px thick: scale 1. Its centre of mass falls
         * on a pixel's centre, so the line is 1 pixel across but starts
         * mid-pixel along its length: 19 whole pixels and two halves. */
        ck_assert_int_eq(vertical ? rows : cols, 21);
        ck_assert_int_eq(vertical ? cols : rows, 1);
        double cx, cy;
        centre_of_mass(out, &cx, &cy);
        ck_assert_double_lt(fabs(cx - 14.0), 0.51);
        ck_assert_double_lt(fabs(cy - 14.0), 0.51);
    }
}
END_TEST

START_TEST(test_huge_aspect_image) {
    /* 200000 x 2: a 100000 px line on a white strip. It fits to 20 px
     * long and 1e-4 px thick: faint but placed and in range. */
    int w = 200000, h = 2;
    canvas c = canvas_new(w, h, 1.0f);
    for (int x = 50000; x < 150000; x++) c.px[w + x] = 0.0f;
    float out[NN_PIXELS];
    normalize_ok(&c, out);
    double mass = 0;
    for (int i = 0; i < NN_PIXELS; i++) {
        ck_assert(out[i] >= 0.0f && out[i] <= 1.0f);
        mass += out[i];
    }
    /* 100000 * 1 * (20/100000)^2 = 0.004 */
    ck_assert_double_lt(fabs(mass - 0.004), 1e-4);
    free(c.px);
}
END_TEST

START_TEST(test_tiny_image_is_upscaled) {
    /* 5x5 with a 3 px vertical bar: box 1x3, scaled by 20/3. */
    float img[25];
    for (int i = 0; i < 25; i++) img[i] = 1.0f;
    img[1 * 5 + 2] = img[2 * 5 + 2] = img[3 * 5 + 2] = 0.0f;
    float out[NN_PIXELS];
    nn_error err = {""};
    ck_assert_int_eq(nn_normalize_digit(img, 5, 5, out, &err), 0);
    int cols, rows;
    extent(out, 1e-4f, &cols, &rows);
    ck_assert_int_ge(rows, 20);
    ck_assert_int_le(rows, 21);
    ck_assert_int_ge(cols, 7); /* 6.67 px wide */
    ck_assert_int_le(cols, 8);
}
END_TEST

/* ---- refusals ------------------------------------------------------- */

START_TEST(test_blank_images_refused) {
    const float levels[] = {1.0f, 0.0f, 0.5f, 0.3f};
    float out[NN_PIXELS];
    canvas c = canvas_new(64, 48, 1.0f);
    for (size_t k = 0; k < sizeof levels / sizeof *levels; k++) {
        for (int i = 0; i < 64 * 48; i++) c.px[i] = levels[k];
        nn_error err = {""};
        ck_assert_int_eq(nn_normalize_digit(c.px, 64, 48, out, &err), -1);
        ck_assert_str_eq(err.msg, "blank image: no ink found");
    }
    /* Gray with JPEG-like noise of +-0.02: below the 0.05 contrast that
     * counts as ink. */
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    tu_fill(c.px, 64 * 48, &rng, 0.48f, 0.52f);
    nn_error err = {""};
    ck_assert_int_eq(nn_normalize_digit(c.px, 64, 48, out, &err), -1);
    ck_assert_str_eq(err.msg, "blank image: no ink found");
    free(c.px);
}
END_TEST

START_TEST(test_bad_arguments_refused) {
    float img[4] = {1, 0, 1, 1}, out[NN_PIXELS];
    nn_error err = {""};
    ck_assert_int_eq(nn_normalize_digit(img, 0, 4, out, &err), -1);
    ck_assert_int_eq(nn_normalize_digit(img, 4, -1, out, &err), -1);
    ck_assert_int_eq(nn_normalize_digit(NULL, 2, 2, out, &err), -1);
    ck_assert_int_eq(nn_normalize_digit(img, 2, 2, NULL, &err), -1);
    /* Refused on the sizes alone, before any pixel is read. */
    err.msg[0] = 0;
    ck_assert_int_eq(nn_normalize_digit(img, 65536, 65536, out, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "larger"));
    ck_assert_int_eq(nn_normalize_digit(img, 2147483647, 2, out, &err), -1);
    /* NaN is not a gray level. */
    img[3] = NAN;
    ck_assert_int_eq(nn_normalize_digit(img, 2, 2, out, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "finite"));
    /* err may be NULL. */
    ck_assert_int_eq(nn_normalize_digit(img, 2, 2, out, NULL), -1);
}
END_TEST

/* ---- real MNIST, when DIGITD_MNIST_DIR is set ------------------------ */

START_TEST(test_mnist_digits_survive_a_round_trip) {
    /* Every MNIST digit was made by LeCun's version of this procedure, so
     * ours, given one printed dark on white, must give it back nearly
     * unchanged: the same 20 px box, the mass at the same place (his
     * whole-pixel rounding leaves it within 0.5 px of ours). Measured on
     * all of t10k: mean correlation 0.966, mass 103.9 -> 102.4. A
     * box-centring or a missing 20x20 fit falls far below. */
    nn_dataset d;
    nn_error err = {""};
    ck_assert_msg(nn_mnist_load(tu_mnist_dir(), "t10k", &d, &err) == 0, "%s",
                  err.msg);
    int n = d.n < 2000 ? d.n : 2000;
    double sum_r = 0, mass_in = 0, mass_out = 0;
    for (int i = 0; i < n; i++) {
        const float *img = d.images + (size_t)i * NN_PIXELS;
        float gray[NN_PIXELS], out[NN_PIXELS];
        for (int k = 0; k < NN_PIXELS; k++) gray[k] = 1.0f - img[k];
        if (nn_normalize_digit(gray, NN_SIDE, NN_SIDE, out, &err) != 0)
            ck_abort_msg("digit %d: %s", i, err.msg);
        sum_r += correlation(img, out);
        for (int k = 0; k < NN_PIXELS; k++) {
            mass_in += img[k];
            mass_out += out[k];
        }
    }
    nn_dataset_free(&d);
    double r = sum_r / n;
    ck_assert_msg(r > 0.95, "mean correlation %.4f", r);
    ck_assert_msg(fabs(mass_out / mass_in - 1.0) < 0.05, "mass %.3f",
                  mass_out / mass_in);
}
END_TEST

static Suite *normalize_suite(void) {
    Suite *s = suite_create("normalize");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_output_range_and_fit);
    tcase_add_test(tc, test_centre_of_mass_at_14);
    tcase_add_test(tc, test_moved_to_corner_is_identical);
    tcase_add_test(tc, test_non_square_canvas_is_identical);
    tcase_add_test(tc, test_inverted_is_identical);
    tcase_add_test(tc, test_smaller_drawing_is_close);
    tcase_add_test(tc, test_thicker_pen_is_close);
    tcase_add_test(tc, test_faint_pencil_on_gray_paper);
    tcase_add_test(tc, test_mnist_like_input_is_kept);
    tcase_add_test(tc, test_one_keeps_its_aspect);
    tcase_add_test(tc, test_single_row_and_column_images);
    tcase_add_test(tc, test_huge_aspect_image);
    tcase_add_test(tc, test_tiny_image_is_upscaled);
    tcase_add_test(tc, test_blank_images_refused);
    tcase_add_test(tc, test_bad_arguments_refused);
    suite_add_tcase(s, tc);
    if (tu_mnist_dir()) {
        TCase *real = tcase_create("real_mnist");
        tcase_add_test(real, test_mnist_digits_survive_a_round_trip);
        suite_add_tcase(s, real);
    } else {
        fprintf(stderr, "test_normalize: DIGITD_MNIST_DIR unset, real-MNIST "
                        "case not run\n");
    }
    return s;
}

int main(void) { return tu_run(normalize_suite()); }
