/* test_augment.c: nn_augment is deterministic for a seed, keeps digits
 * in range, roughly keeps their mass and position, and its distortions
 * have the advertised sizes: shift +-2 px (s.d. 2/sqrt(3) = 1.15 px per
 * axis), rotation +-12 deg plus shear +-0.15, sometimes a thicker or
 * thinner stroke. The statistics are over thousands of seeded samples,
 * so their bounds hold with many standard errors to spare. */
#include <math.h>
#include <string.h>

#include "testutil.h"

#define N_SAMPLES 4000

/* ---- synthetic 28x28 digits (ink high, anti-aliased) ---------------- */

static double seg_dist(double x, double y, double ax, double ay, double bx,
                       double by) {
    double vx = bx - ax, vy = by - ay, wx = x - ax, wy = y - ay;
    double t = (vx * wx + vy * wy) / (vx * vx + vy * vy);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double dx = wx - t * vx, dy = wy - t * vy;
    return sqrt(dx * dx + dy * dy);
}

/* Adds a stroke of the given radius, each pixel covered by the fraction
 * of its 4x4 sub-samples that fall inside (pixel (r, c) spans
 * [c, c+1) x [r, r+1)). */
static void stroke(float *img, double ax, double ay, double bx, double by,
                   double radius) {
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            int hits = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++)
                    hits += seg_dist(x + (sx + 0.5) / 4, y + (sy + 0.5) / 4,
                                     ax, ay, bx, by) <= radius;
            float v = hits / 16.0f;
            if (v > img[y * NN_SIDE + x]) img[y * NN_SIDE + x] = v;
        }
}

/* A "9" 20 px tall, 1.6 px pen, loop and stem, placed (as
 * nn_normalize_digit would) with its centre of mass near pixel (14, 14). */
static void make_nine(float *img) {
    memset(img, 0, NN_PIXELS * sizeof *img);
    const double pi = 3.14159265358979, cx = 13.25, cy = 11.9;
    for (int i = 0; i < 24; i++) {
        double a = 2 * pi * i / 24, b = 2 * pi * (i + 1) / 24;
        stroke(img, cx + 4.5 * cos(a), cy + 4.5 * sin(a), cx + 4.5 * cos(b),
               cy + 4.5 * sin(b), 0.8);
    }
    stroke(img, cx + 4.5, cy, cx + 4.0, cy + 14, 0.8);
}

/* A vertical bar through the centre (14.5 in continuous coordinates is
 * pixel 14's centre), 16 px long: its orientation shows the rotation. */
static void make_bar(float *img) {
    memset(img, 0, NN_PIXELS * sizeof *img);
    stroke(img, 14.5, 6.5, 14.5, 22.5, 1.0);
}

/* ---- measuring ----------------------------------------------------- */

typedef struct {
    double mass, cx, cy;    /* cx, cy in pixel-index coordinates */
    double angle_deg;       /* principal axis from the vertical */
} moments;

static moments measure(const float *img) {
    moments m = {0, 0, 0, 0};
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            double v = img[y * NN_SIDE + x];
            m.mass += v;
            m.cx += v * x;
            m.cy += v * y;
        }
    m.cx /= m.mass;
    m.cy /= m.mass;
    double sxx = 0, syy = 0, sxy = 0;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            double v = img[y * NN_SIDE + x], dx = x - m.cx, dy = y - m.cy;
            sxx += v * dx * dx;
            syy += v * dy * dy;
            sxy += v * dx * dy;
        }
    /* Angle of the major axis, measured from the y axis. */
    m.angle_deg = 0.5 * atan2(2 * sxy, syy - sxx) * 180.0 / 3.14159265358979;
    return m;
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(test_deterministic_for_a_seed) {
    float in[NN_PIXELS], a[NN_PIXELS], b[NN_PIXELS];
    make_nine(in);
    nn_rng r1, r2;
    nn_rng_seed(&r1, 42);
    nn_rng_seed(&r2, 42);
    for (int i = 0; i < 100; i++) {
        nn_augment(in, a, &r1);
        nn_augment(in, b, &r2);
        ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    }
    /* Another seed, other distortions: every sample differs. */
    nn_rng_seed(&r1, 42);
    nn_rng_seed(&r2, 43);
    for (int i = 0; i < 100; i++) {
        nn_augment(in, a, &r1);
        nn_augment(in, b, &r2);
        ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    }
}
END_TEST

START_TEST(test_output_in_range) {
    float digit[NN_PIXELS], noise[NN_PIXELS], out[NN_PIXELS];
    make_nine(digit);
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    for (int i = 0; i < N_SAMPLES; i++) {
        /* Random textures too: every pixel in use, up to the border. */
        tu_fill(noise, NN_PIXELS, &rng, 0.0f, 1.0f);
        const float *in = (i & 1) ? noise : digit;
        nn_augment(in, out, &rng);
        /* Check's assertions are slow (one report each): test, then
         * report only a failure. */
        for (int k = 0; k < NN_PIXELS; k++)
            if (!(out[k] >= 0.0f && out[k] <= 1.0f))
                ck_abort_msg("sample %d pixel %d = %g", i, k, out[k]);
    }
    /* All-zero in, all-zero out; all-one in, ones at the centre (the
     * warp keeps 1 inside, the border fills with 0). */
    float zeros[NN_PIXELS] = {0}, ones[NN_PIXELS];
    for (int k = 0; k < NN_PIXELS; k++) ones[k] = 1.0f;
    nn_augment(zeros, out, &rng);
    for (int k = 0; k < NN_PIXELS; k++) ck_assert(out[k] == 0.0f);
    nn_augment(ones, out, &rng);
    ck_assert_float_eq_tol(out[14 * NN_SIDE + 14], 1.0f, 1e-5f);
}
END_TEST

START_TEST(test_mass_and_position_roughly_kept) {
    float in[NN_PIXELS], out[NN_PIXELS];
    make_nine(in);
    moments m0 = measure(in);
    double off = hypot(m0.cx - 14.0, m0.cy - 14.0);
    ck_assert_double_lt(off, 0.5); /* a centred digit, as normalised */
    double max_move = 2.0 * sqrt(2.0) + 0.4 * off + 0.1;
    nn_rng rng;
    nn_rng_seed(&rng, 2);
    double sum_ratio = 0;
    int thicker = 0, thinner = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        nn_augment(in, out, &rng);
        moments m = measure(out);
        /* Area scales by sx * sy in [0.72, 1.32]; a thicker stroke can
         * more than double a thin pen's mass (1.6 px dilated by 1 px on
         * each side is 3.6 px), a thinner one removes part of the
         * anti-aliased edge. */
        double ratio = m.mass / m0.mass;
        if (!(ratio > 0.5 && ratio < 3.2))
            ck_abort_msg("sample %d: mass ratio %.3f", i, ratio);
        sum_ratio += ratio;
        thicker += ratio > 1.4;  /* beyond any scaling: a dilation */
        thinner += ratio < 0.70; /* below any scaling: a thinning */
        /* The turn is about (14, 14), near the digit's centre of mass,
         * so the mass moves by the shift (at most 2 sqrt(2) = 2.83 px)
         * plus (A - I) times its offset from (14, 14), where |A - I| is
         * below 0.4 (12 deg, scale 1.15 * 1.05, shear 0.15), plus 0.1 px
         * for a dilation's or a thinning's uneven effect. */
        double dx = m.cx - m0.cx, dy = m.cy - m0.cy;
        if (!(sqrt(dx * dx + dy * dy) < max_move))
            ck_abort_msg("sample %d moved (%.2f, %.2f)", i, dx, dy);
    }
    double n = N_SAMPLES;
    /* E[sx sy] = 1.0075; dilations, in 30% of samples, of this thin pen
     * more than double its mass: about +25% on average. */
    double mean_ratio = sum_ratio / n;
    ck_assert_msg(mean_ratio > 1.1 && mean_ratio < 1.5, "mean ratio %.3f",
                  mean_ratio);
    /* At most the dilated 30% (s.d. 0.7%) pass 1.4, and most of those. */
    ck_assert_msg(thicker > 0.20 * n && thicker < 0.33 * n, "thicker %d",
                  thicker);
    ck_assert_msg(thinner > 0 && thinner < 0.15 * n, "thinner %d", thinner);
}
END_TEST

START_TEST(test_shift_is_unbiased) {
    /* A 5x5 square centred on (14, 14): rotation, scale and shear about
     * (14, 14) leave its centre of mass in place, and nothing reaches
     * the border, so the centre of mass moves by the shift alone. */
    float in[NN_PIXELS] = {0}, out[NN_PIXELS];
    for (int y = 12; y <= 16; y++)
        for (int x = 12; x <= 16; x++) in[y * NN_SIDE + x] = 1.0f;
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    double sum_dx = 0, sum_dy = 0, sum_dx2 = 0, sum_dy2 = 0, worst = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        nn_augment(in, out, &rng);
        moments m = measure(out);
        double dx = m.cx - 14.0, dy = m.cy - 14.0;
        sum_dx += dx;
        sum_dy += dy;
        sum_dx2 += dx * dx;
        sum_dy2 += dy * dy;
        if (fabs(dx) > worst) worst = fabs(dx);
        if (fabs(dy) > worst) worst = fabs(dy);
    }
    double n = N_SAMPLES;
    /* Mean within 0.1 px (5.5 standard errors of 0.018); spread that of
     * uniform +-2 px, 2/sqrt(3) = 1.155, give or take 0.1 (the s.d.'s
     * own standard error is about 0.01); never beyond 2 px but for the
     * resampling's few hundredths. */
    double mx = sum_dx / n, my = sum_dy / n;
    double sdx = sqrt(sum_dx2 / n - mx * mx);
    double sdy = sqrt(sum_dy2 / n - my * my);
    ck_assert_msg(fabs(mx) < 0.1 && fabs(my) < 0.1, "mean shift (%.3f, %.3f)",
                  mx, my);
    ck_assert_msg(fabs(sdx - 1.155) < 0.1 && fabs(sdy - 1.155) < 0.1,
                  "shift s.d. (%.3f, %.3f)", sdx, sdy);
    ck_assert_msg(worst < 2.1 && worst > 1.9, "largest shift %.3f", worst);
}
END_TEST

START_TEST(test_rotation_and_shear_sizes) {
    float in[NN_PIXELS], out[NN_PIXELS];
    make_bar(in);
    ck_assert_double_lt(fabs(measure(in).angle_deg), 0.01);
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    double sum = 0, sum2 = 0, worst = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        nn_augment(in, out, &rng);
        double a = measure(out).angle_deg;
        sum += a;
        sum2 += a * a;
        if (fabs(a) > worst) worst = fabs(a);
    }
    double mean = sum / N_SAMPLES, sd = sqrt(sum2 / N_SAMPLES - mean * mean);
    /* A vertical bar turns by the rotation (uniform +-12 deg, s.d. 6.9)
     * plus the shear's tilt (atan of uniform +-0.15: s.d. 4.9), at most
     * 12 + 8.5 = 20.5 deg; together s.d. 8.5 deg. The aspect jitter
     * leaves a vertical bar vertical. */
    ck_assert_msg(fabs(mean) < 0.5, "mean angle %.3f", mean);
    ck_assert_msg(sd > 7.0 && sd < 10.0, "angle s.d. %.3f", sd);
    ck_assert_msg(worst < 21.5 && worst > 15.0, "largest angle %.3f", worst);
}
END_TEST

START_TEST(test_average_looks_like_the_input) {
    /* Distortions are centred on the identity: the mean of many
     * augmented copies is a blurred version of the input, far more like
     * it than like the same digit moved by a few pixels. */
    float in[NN_PIXELS], out[NN_PIXELS];
    double mean[NN_PIXELS] = {0};
    make_nine(in);
    nn_rng rng;
    nn_rng_seed(&rng, 4);
    for (int i = 0; i < N_SAMPLES; i++) {
        nn_augment(in, out, &rng);
        for (int k = 0; k < NN_PIXELS; k++) mean[k] += out[k] / N_SAMPLES;
    }
    /* Correlation of the mean with the input, and with the input moved
     * 3 px right (which a biased shift would favour). */
    double best_other = -1, self = 0;
    for (int shift = 0; shift <= 3; shift += 3) {
        double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
        for (int y = 0; y < NN_SIDE; y++)
            for (int x = 0; x < NN_SIDE; x++) {
                double a = mean[y * NN_SIDE + x];
                double b = x >= shift ? in[y * NN_SIDE + x - shift] : 0;
                sa += a;
                sb += b;
                sab += a * b;
                saa += a * a;
                sbb += b * b;
            }
        double n = NN_PIXELS;
        double r = (sab - sa * sb / n) /
                   sqrt((saa - sa * sa / n) * (sbb - sb * sb / n));
        if (shift == 0)
            self = r;
        else
            best_other = r;
    }
    ck_assert_msg(self > 0.6 && self > best_other + 0.2,
                  "correlation %.3f (moved: %.3f)", self, best_other);
}
END_TEST

static Suite *augment_suite(void) {
    Suite *s = suite_create("augment");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_deterministic_for_a_seed);
    tcase_add_test(tc, test_output_in_range);
    tcase_add_test(tc, test_mass_and_position_roughly_kept);
    tcase_add_test(tc, test_shift_is_unbiased);
    tcase_add_test(tc, test_rotation_and_shear_sizes);
    tcase_add_test(tc, test_average_looks_like_the_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(augment_suite()); }
