/* normalize.c: any grayscale digit image to an MNIST-like 28x28 input.
 *
 * MNIST was built this way (LeCun et al.): the scanned digit's bounding
 * box was fitted into 20x20 keeping its aspect ratio, with anti-aliasing,
 * then placed in a 28x28 field so that its centre of mass sits at the
 * centre. A network trained on MNIST only recognises drawings prepared
 * the same way: without the fit a drawn digit scored 51% instead of 89%,
 * centring the box instead of the mass cost 17 points (DESIGN.md).
 * docs/normalisation.md explains every choice made below.
 *
 * Steps, each one pass over the image:
 *   1. background: the median of the border pixels;
 *   2. polarity and contrast: ink is the side (darker or lighter than the
 *      background) with more squared deviation; its strong level R is a
 *      high percentile of the deviations; deviations below 20% of R are
 *      noise; the rest is stretched so that R becomes 1;
 *   3. bounding box, mass and centre of mass of that ink;
 *   4. exact area averaging of the box into the 28x28 grid, scaled so its
 *      longer side is 20 px and shifted (by a fraction of a pixel, not
 *      rounded) so the centre of mass lands on pixel (14, 14).
 * Memory: a few kilobytes of stack, whatever the image size.
 */
#include <math.h>
#include <stddef.h>

#include "nn.h"

/* Largest image accepted: 16 Mpixel (4096x4096), so every size_t and
 * double below is far from overflow and a pass takes tens of ms. */
#define MAX_PIXELS (1L << 24)

/* The fitted digit's longer side, and where its centre of mass goes, in
 * pixel-index coordinates (pixel (r, c) has its centre at (r, c)).
 * MNIST's own training digits have a mean centre of mass of
 * (13.996, 14.007) in those coordinates, because LeCun rounded the shift
 * to whole pixels: (14, 14) is what the network has seen. */
#define FIT_SIDE 20.0
#define COM_TARGET 14.0

/* Histograms of values in [0, 1]. 1024 bins resolve 1/4 of an 8-bit
 * gray level, enough for a median and a percentile. */
#define BINS 1024

/* Deviations below this fraction of the ink level R are noise (paper
 * texture, JPEG ringing, pencil smudge) and map to 0. */
#define NOISE_FRACTION 0.2f
/* An image whose ink level R is below this (about 13 of 255 gray levels)
 * has no ink: uniform or near-uniform images are refused as blank. */
#define MIN_CONTRAST 0.05f
/* R is the level that only this fraction of the strong ink pixels (those
 * at least STRONG_FRACTION of the largest deviation) exceeds: the stroke's
 * core, not one outlier pixel. */
#define TOP_FRACTION 0.05
#define STRONG_FRACTION 0.25f

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* Bin of a finite value; values outside [0, 1] go to the end bins (and
 * are clamped first, so a huge one cannot overflow the int). */
static int bin_of(float v) {
    int b = (int)(clamp01(v) * (float)BINS);
    return b >= BINS ? BINS - 1 : b;
}

/* How a gray value becomes ink: dev = sign * (v - bg); ink = dev / level
 * (capped at 1), or 0 when dev is below the noise floor. A hard floor
 * rather than a ramp keeps the gray levels of anti-aliased edges, so an
 * image that is already MNIST-like passes through almost unchanged. */
typedef struct {
    float bg, sign;  /* background gray, +1 light ink / -1 dark ink */
    float floor_;    /* smallest deviation that is ink */
    float gain;      /* 1 / level */
} ink_map;

static inline float ink_of(const ink_map *m, float v) {
    float dev = m->sign * (v - m->bg);
    if (dev < m->floor_) return 0.0f;
    return dev * m->gain > 1.0f ? 1.0f : dev * m->gain;
}

/* The step from one border pixel of row y to the next: every pixel of
 * the first and last rows, the two end pixels of the others. */
static inline int border_step(int y, int w, int h) {
    return (y == 0 || y == h - 1) ? 1 : (w > 1 ? w - 1 : 1);
}

/* Step 1. The median of the border pixels (an image's outer ring is
 * background as long as the digit covers less than half of it), refined
 * to the mean of the border values inside the median's bin so that an
 * exactly white border gives exactly 1.0. Also refuses non-finite pixels
 * (the whole image is read for that). */
static int find_background(const float *gray, int w, int h, float *bg,
                           nn_error *err) {
    /* Finite everywhere: a branch-free test per row, and the first bad
     * pixel looked for only in a row that has one; the border is then
     * read on its own. */
    for (int y = 0; y < h; y++) {
        const float *row = gray + (size_t)y * (size_t)w;
        bool bad = false;
        for (int x = 0; x < w; x++) bad |= !isfinite(row[x]);
        for (int x = 0; bad && x < w; x++)
            if (!isfinite(row[x]))
                return nn_fail(err, "pixel (%d, %d) is not a finite number",
                               x, y);
    }
    unsigned hist[BINS] = {0};
    size_t n_border = 0;
    for (int y = 0; y < h; y++) {
        const float *row = gray + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x += border_step(y, w, h)) {
            hist[bin_of(row[x])]++;
            n_border++;
        }
    }
    size_t half = (n_border + 1) / 2, seen = 0;
    int median = 0;
    while (seen + hist[median] < half) seen += hist[median++];

    double sum = 0;
    size_t count = 0;
    for (int y = 0; y < h; y++) {
        const float *row = gray + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x += border_step(y, w, h))
            if (bin_of(row[x]) == median) {
                sum += clamp01(row[x]);
                count++;
            }
    }
    *bg = (float)(sum / (double)count);
    return 0;
}

/* Step 2. Chooses the ink's side and level. Dark ink on white paper only
 * deviates downwards, light ink on a black canvas upwards; on a gray
 * background the side with the larger sum of squared deviations wins, so
 * a little broad shading or glare does not outvote the strokes. */
static int find_ink(const float *gray, size_t n, float bg, ink_map *m,
                    nn_error *err) {
    unsigned dark_hist[BINS] = {0}, light_hist[BINS] = {0};
    double dark_sq = 0, light_sq = 0;
    float dark_max = 0, light_max = 0;
    for (size_t i = 0; i < n; i++) {
        float d = clamp01(gray[i]) - bg;
        if (d < 0) {
            dark_sq += (double)d * d;
            dark_hist[bin_of(-d)]++;
            if (-d > dark_max) dark_max = -d;
        } else if (d > 0) {
            light_sq += (double)d * d;
            light_hist[bin_of(d)]++;
            if (d > light_max) light_max = d;
        }
    }
    bool light = light_sq > dark_sq;
    const unsigned *hist = light ? light_hist : dark_hist;
    float top = light ? light_max : dark_max;
    if (top < MIN_CONTRAST) return nn_fail(err, "blank image: no ink found");

    /* The level R: walk down from the top bin until TOP_FRACTION of the
     * strong pixels are passed; R is that bin's upper edge (so exact 1.0
     * values give R = 1), never above the real maximum. */
    int strong_bin = bin_of(STRONG_FRACTION * top);
    size_t strong = 0;
    for (int b = strong_bin; b < BINS; b++) strong += hist[b];
    double want = TOP_FRACTION * (double)strong;
    size_t passed = 0;
    int b = BINS - 1;
    while (b > strong_bin && (double)(passed + hist[b]) < want)
        passed += hist[b--];
    float level = (float)(b + 1) / (float)BINS;
    if (level > top) level = top;
    if (level < MIN_CONTRAST) return nn_fail(err, "blank image: no ink found");

    m->bg = bg;
    m->sign = light ? 1.0f : -1.0f;
    m->floor_ = NOISE_FRACTION * level;
    m->gain = 1.0f / level;
    return 0;
}

/* Source pixels under one output pixel along one axis: pixels first..last,
 * all of weight 1 except the two ends (fractional coverage). first > last
 * when the output pixel lies outside the digit's box. */
typedef struct {
    int first, last;
    double w_first, w_last;
} span;

/* Output pixel k covers [k, k+1) in output units; source coordinate
 * src = lo + (out - offset) / scale. Clipped to the box [lo, lo + len). */
static span span_of(int k, double offset, double scale, int lo, int len) {
    double a = lo + ((double)k - offset) / scale;
    double b = lo + ((double)k + 1.0 - offset) / scale;
    if (a < lo) a = lo;
    if (b > (double)lo + len) b = (double)lo + len;
    span s = {1, 0, 0, 0};
    if (!(a < b)) return s;
    s.first = (int)floor(a);
    s.last = (int)ceil(b) - 1;
    if (s.last < s.first) s.last = s.first;
    if (s.first == s.last) {
        s.w_first = s.w_last = b - a;
    } else {
        s.w_first = (double)(s.first + 1) - a;
        s.w_last = b - (double)s.last;
    }
    return s;
}

/* Sum of ink over one source row under a column span, end pixels
 * weighted by their coverage. */
static inline double span_sum(const span *s, const ink_map *m,
                              const float *row) {
    if (s->first > s->last) return 0;
    if (s->first == s->last) return s->w_first * ink_of(m, row[s->first]);
    double inner = 0;
    for (int x = s->first + 1; x < s->last; x++) inner += ink_of(m, row[x]);
    return inner + s->w_first * ink_of(m, row[s->first]) +
           s->w_last * ink_of(m, row[s->last]);
}

int nn_normalize_digit(const float *gray, int w, int h, float *out,
                       nn_error *err) {
    if (!gray || !out) return nn_fail(err, "normalize: NULL image");
    if (w < 1 || h < 1)
        return nn_fail(err, "image size %d x %d: both sides must be >= 1",
                       w, h);
    if ((long long)w * (long long)h > MAX_PIXELS)
        return nn_fail(err, "image of %d x %d pixels is larger than %ld",
                       w, h, MAX_PIXELS);
    size_t n = (size_t)w * (size_t)h;

    float bg = 0; /* set by find_background on success */
    if (find_background(gray, w, h, &bg, err) < 0) return -1;
    ink_map m = {0, 0, 0, 0};
    if (find_ink(gray, n, bg, &m, err) < 0) return -1;

    /* Step 3: bounding box (pixels x0..x1, y0..y1) and centre of mass in
     * continuous coordinates (pixel i spans [i, i+1), centre i + 0.5). */
    int x0 = w, x1 = -1, y0 = h, y1 = -1;
    double mass = 0, mx = 0, my = 0;
    for (int y = 0; y < h; y++) {
        const float *row = gray + (size_t)y * (size_t)w;
        double row_mass = 0, row_mx = 0;
        for (int x = 0; x < w; x++) {
            float v = ink_of(&m, row[x]);
            if (v > 0) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                row_mass += v;
                row_mx += (double)v * (x + 0.5);
            }
        }
        if (row_mass > 0) {
            if (y < y0) y0 = y;
            y1 = y;
            mass += row_mass;
            mx += row_mx;
            my += row_mass * (y + 0.5);
        }
    }
    if (!(mass > 0)) return nn_fail(err, "blank image: no ink found");
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1;

    /* Step 4. Scale: the longer side of the box becomes FIT_SIDE output
     * pixels, the other keeps the aspect ratio (a "1" stays thin). Offset:
     * output coordinate of the box's corner, chosen so the centre of mass
     * (mx, my), mapped, lands at COM_TARGET + 0.5 in continuous output
     * coordinates, i.e. on the centre of pixel (14, 14). */
    double scale = FIT_SIDE / (double)(bw > bh ? bw : bh);
    double off_x = COM_TARGET + 0.5 - (mx / mass - x0) * scale;
    double off_y = COM_TARGET + 0.5 - (my / mass - y0) * scale;

    span cols[NN_SIDE], rows[NN_SIDE];
    for (int k = 0; k < NN_SIDE; k++) {
        cols[k] = span_of(k, off_x, scale, x0, bw);
        rows[k] = span_of(k, off_y, scale, y0, bh);
    }

    /* Each output pixel is the mean ink over its footprint in the source,
     * an area of (1/scale)^2 source pixels with fractional edges:
     * out = scale^2 * sum(ink * overlap). Ink is mass-preserving up to
     * the scale^2 factor, and whatever falls outside 28x28 is dropped. */
    double area = scale * scale;
    for (int r = 0; r < NN_SIDE; r++) {
        double acc[NN_SIDE] = {0};
        const span *rs = &rows[r];
        for (int y = rs->first; y <= rs->last; y++) {
            const float *row = gray + (size_t)y * (size_t)w;
            double wy = y == rs->first ? rs->w_first
                      : y == rs->last  ? rs->w_last
                                       : 1.0;
            for (int c = 0; c < NN_SIDE; c++)
                acc[c] += wy * span_sum(&cols[c], &m, row);
        }
        for (int c = 0; c < NN_SIDE; c++)
            out[r * NN_SIDE + c] = clamp01((float)(acc[c] * area));
    }
    return 0;
}
