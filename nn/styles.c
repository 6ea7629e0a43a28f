/*
 * styles.c: ways people write digits that MNIST rarely shows.
 *
 * Each style is a transform of one 28x28 ink-high digit (or, for the two
 * kinds of 4, a drawing from nothing), ending where it changes the digit's
 * box with nn_normalize_digit, so the result is what the server would
 * make of such a drawing. nn_augment_styles applies the label-free ones at
 * random while training; the held-out style tests (tools/verdict_report.c)
 * apply each one alone to MNIST test digits with their own seeds.
 */
#include <math.h>
#include <string.h>

#include "draw.h"
#include "nn.h"

static const char *const names[NN_STYLE_COUNT] = {
    "elastic", "slant", "hairline", "thick", "lowres", "binary",
    "one-lead-in", "seven-crossed", "four-open", "four-closed",
};

const char *nn_style_name(nn_style s) {
    return (unsigned)s < NN_STYLE_COUNT ? names[s] : "unknown";
}

/* Renormalises an ink-high 28x28 image in place, as the server would
 * see a drawing of it; leaves it as it is if it has no ink. */
static void renormalize(float *img) {
    float gray[NN_PIXELS], out[NN_PIXELS];
    for (int i = 0; i < NN_PIXELS; i++) gray[i] = 1.0f - img[i];
    nn_error err;
    if (nn_normalize_digit(gray, NN_SIDE, NN_SIDE, out, &err) == 0)
        memcpy(img, out, sizeof out);
}

static float at(const float *img, int x, int y) {
    return x < 0 || y < 0 || x >= NN_SIDE || y >= NN_SIDE ? 0.0f
                                                           : img[y * NN_SIDE + x];
}

/* Bilinear sample of img at (x, y) pixel-index coordinates, 0 outside. */
static float sample(const float *img, float x, float y) {
    int ix = (int)floorf(x), iy = (int)floorf(y);
    float fx = x - (float)ix, fy = y - (float)iy;
    return (1 - fy) * ((1 - fx) * at(img, ix, iy) + fx * at(img, ix + 1, iy)) +
           fy * ((1 - fx) * at(img, ix, iy + 1) + fx * at(img, ix + 1, iy + 1));
}

/* Simard et al. (2003): a random displacement field smoothed by a
 * Gaussian of sigma 4 px, scaled by alpha 24-34 px. */
static void elastic(const float *in, float *out, nn_rng *r) {
    enum { RAD = 8 };
    float k[2 * RAD + 1], ksum = 0;
    for (int i = -RAD; i <= RAD; i++) ksum += k[i + RAD] = expf(-(float)(i * i) / 32.0f);
    float alpha = rng_range(r, 24, 34) / ksum;
    float f[2][NN_PIXELS], t[NN_PIXELS];
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < NN_PIXELS; i++) f[c][i] = rng_range(r, -1, 1);
        /* separable blur, rows then columns; zero outside */
        for (int y = 0; y < NN_SIDE; y++)
            for (int x = 0; x < NN_SIDE; x++) {
                float s = 0;
                for (int i = -RAD; i <= RAD; i++) s += k[i + RAD] * at(f[c], x + i, y);
                t[y * NN_SIDE + x] = s;
            }
        for (int y = 0; y < NN_SIDE; y++)
            for (int x = 0; x < NN_SIDE; x++) {
                float s = 0;
                for (int i = -RAD; i <= RAD; i++) s += k[i + RAD] * at(t, x, y + i);
                f[c][y * NN_SIDE + x] = s * alpha / ksum;
            }
    }
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            out[y * NN_SIDE + x] = sample(in, (float)x + f[0][y * NN_SIDE + x],
                                          (float)y + f[1][y * NN_SIDE + x]);
}

/* x += k (14 - y): k 0.25-0.55 either way, a strong right or left slant. */
static void slant(const float *in, float *out, nn_rng *r) {
    float k = rng_range(r, 0.25f, 0.55f) * (nn_rng_uniform(r) < 0.7f ? 1 : -1);
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            out[y * NN_SIDE + x] = sample(in, (float)x - k * (14.0f - (float)y), (float)y);
    renormalize(out);
}

/* 3x3 max filter. */
static void dilate(const float *in, float *out) {
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            float m = 0;
            for (int j = -1; j <= 1; j++)
                for (int i = -1; i <= 1; i++) {
                    float v = at(in, x + i, y + j);
                    m = v > m ? v : m;
                }
            out[y * NN_SIDE + x] = m;
        }
}

/* A marker pen: one or two dilations, then the box is fitted again, so
 * the stroke is 20-35% of the digit's height as a thick marker gives. */
static void thick(const float *in, float *out, nn_rng *r) {
    float t[NN_PIXELS];
    dilate(in, out);
    if (nn_rng_uniform(r) < 0.5f) {
        memcpy(t, out, sizeof t);
        dilate(t, out);
    }
    renormalize(out);
}

/* A hairline pen: the ink thinned to its one-pixel skeleton (Zhang-Suen)
 * at full strength, with a faint anti-aliased edge. */
static void hairline(const float *in, float *out, nn_rng *r) {
    uint8_t b[NN_PIXELS], del[NN_PIXELS];
    for (int i = 0; i < NN_PIXELS; i++) b[i] = in[i] > 0.4f;
#define B(x, y) ((x) < 0 || (y) < 0 || (x) >= NN_SIDE || (y) >= NN_SIDE ? 0 : b[(y) * NN_SIDE + (x)])
    for (int changed = 1, pass = 0; changed && pass < 40; pass++) {
        changed = 0;
        for (int step = 0; step < 2; step++) {
            memset(del, 0, sizeof del);
            for (int y = 0; y < NN_SIDE; y++)
                for (int x = 0; x < NN_SIDE; x++) {
                    if (!B(x, y)) continue;
                    int p[8] = {B(x, y - 1), B(x + 1, y - 1), B(x + 1, y),
                                B(x + 1, y + 1), B(x, y + 1), B(x - 1, y + 1),
                                B(x - 1, y), B(x - 1, y - 1)};
                    int n = 0, s = 0;
                    for (int i = 0; i < 8; i++) {
                        n += p[i];
                        s += !p[i] && p[(i + 1) % 8];
                    }
                    if (n < 2 || n > 6 || s != 1) continue;
                    if (step == 0 && ((p[0] && p[2] && p[4]) || (p[2] && p[4] && p[6]))) continue;
                    if (step == 1 && ((p[0] && p[2] && p[6]) || (p[0] && p[4] && p[6]))) continue;
                    del[y * NN_SIDE + x] = 1;
                }
            for (int i = 0; i < NN_PIXELS; i++)
                if (del[i]) b[i] = 0, changed = 1;
        }
    }
    float edge = rng_range(r, 0.0f, 0.3f);
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            int n4 = B(x - 1, y) + B(x + 1, y) + B(x, y - 1) + B(x, y + 1);
            out[y * NN_SIDE + x] = B(x, y) ? 1.0f : n4 ? edge : 0.0f;
        }
#undef B
}

/* A low-resolution scan: the box averaged down to s x s (s 8-14), often
 * binarised, then normalised up again as the server would. */
static void lowres(const float *in, float *out, nn_rng *r) {
    int s = 8 + (int)nn_rng_below(r, 7);
    bool binary = nn_rng_uniform(r) < 0.6f;
    float small[14 * 14];
    float scale = (float)NN_SIDE / (float)s;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            float sum = 0;
            int n = 0;
            for (int j = (int)(y * scale); j < (int)((y + 1) * scale); j++)
                for (int i = (int)(x * scale); i < (int)((x + 1) * scale); i++)
                    sum += at(in, i, j), n++;
            float v = n ? sum / (float)n : 0;
            if (binary) v = v > 0.35f ? 1.0f : 0.0f;
            small[y * s + x] = 1.0f - v;
        }
    nn_error err;
    if (nn_normalize_digit(small, s, s, out, &err) != 0)
        memcpy(out, in, NN_PIXELS * sizeof(float));
}

static void binarize(const float *in, float *out, nn_rng *r) {
    float t = rng_range(r, 0.3f, 0.6f);
    for (int i = 0; i < NN_PIXELS; i++) out[i] = in[i] > t ? 1.0f : 0.0f;
}

/* Ink's extent and stroke width of an upscaled (84x84, ink low) digit. */
typedef struct {
    pt top, bottom;
    int y0, y1;
    float width;
} ink_info;

static int find_ink(const float *c, int W, ink_info *k) {
    int y0 = -1, y1 = -1;
    double mass = 0;
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            float v = 1.0f - c[y * W + x];
            if (v > 0.5f) {
                if (y0 < 0) y0 = y;
                y1 = y;
            }
            mass += v;
        }
    if (y0 < 0 || y1 <= y0) return -1;
    /* centre of the ink in the top and bottom 5% of rows */
    for (int end = 0; end < 2; end++) {
        double sx = 0, sw = 0;
        int band = (y1 - y0) / 20 + 1;
        int from = end ? y1 - band + 1 : y0, to = end ? y1 : y0 + band - 1;
        for (int y = from; y <= to; y++)
            for (int x = 0; x < W; x++) {
                float v = 1.0f - c[y * W + x];
                if (v > 0.5f) sx += v * x, sw += v;
            }
        pt p = {(float)(sw > 0 ? sx / sw : W / 2) + 0.5f, (float)(end ? y1 : y0) + 0.5f};
        if (end) k->bottom = p;
        else k->top = p;
    }
    k->y0 = y0;
    k->y1 = y1;
    k->width = (float)(mass / (double)(y1 - y0 + 1));
    return 0;
}

/* A European 1: an up-stroke from lower left into the top of the stem,
 * 25-50% of its height long, at 35-65 degrees from the stem. */
static int one_lead_in(const float *in, float *out, nn_rng *r) {
    enum { K = 3, W = NN_SIDE * K };
    float px[W * W];
    upscale_digit(in, K, px);
    ink_info k;
    if (find_ink(px, W, &k)) return -1;
    float sx = k.bottom.x - k.top.x, sy = k.bottom.y - k.top.y;
    float len = sqrtf(sx * sx + sy * sy);
    if (len < 10) return -1;
    sx /= len, sy /= len;
    float a = rng_range(r, 0.6f, 1.15f), L = len * rng_range(r, 0.25f, 0.5f);
    /* rotate the stem direction towards the left (counter-clockwise on
     * screen, y down) */
    float dx = sx * cosf(a) - sy * sinf(a), dy = sx * sinf(a) + sy * cosf(a);
    if (dx > 0) dx = -dx;
    pt start = {k.top.x + L * dx, k.top.y + L * fabsf(dy)};
    canvas c = {W, W, px};
    float rad = k.width * 0.5f;
    draw_segment(&c, start, k.top, rad < 1 ? 1 : rad);
    return canvas_normalize(&c, out);
}

/* A crossed 7: a bar across the stem a little below its middle. */
static int seven_crossed(const float *in, float *out, nn_rng *r) {
    enum { K = 3, W = NN_SIDE * K };
    float px[W * W];
    upscale_digit(in, K, px);
    ink_info k;
    if (find_ink(px, W, &k)) return -1;
    int y = k.y0 + (int)((float)(k.y1 - k.y0) * rng_range(r, 0.45f, 0.6f));
    double sx = 0, sw = 0;
    for (int x = 0; x < W; x++) {
        float v = 1.0f - px[y * W + x];
        if (v > 0.5f) sx += v * x, sw += v;
    }
    if (sw <= 0) return -1;
    float cx = (float)(sx / sw) + 0.5f, half = (float)(k.y1 - k.y0) * rng_range(r, 0.15f, 0.25f);
    float tilt = rng_range(r, -0.12f, 0.12f) * half;
    canvas c = {W, W, px};
    float rad = k.width * 0.5f;
    draw_segment(&c, (pt){cx - half, (float)y + tilt}, (pt){cx + half * rng_range(r, 0.8f, 1.2f), (float)y - tilt},
                 rad < 1 ? 1 : rad);
    return canvas_normalize(&c, out);
}

/* A 4 drawn from strokes in a unit box (x right, y down), jittered,
 * slanted and with a random pen. Open: the left stroke and the stem do
 * not meet at the top; closed: one apex, a triangle. */
static int four(bool open, float *out, nn_rng *r) {
    enum { W = 96 };
    float px[W * W];
    canvas c = {W, W, px};
    canvas_clear(&c);
    float j = 0.05f, bar = rng_range(r, 0.55f, 0.72f);
    pt s1[3], s2[2];
    if (open) {
        s1[0] = (pt){rng_range(r, 0.1f, 0.3f), rng_range(r, 0.0f, 0.1f)};
        s1[1] = (pt){rng_range(r, 0.0f, 0.15f), bar + rng_range(r, -j, j)};
        s1[2] = (pt){rng_range(r, 0.85f, 1.0f), bar + rng_range(r, -j, j)};
        float sx = rng_range(r, 0.6f, 0.8f);
        s2[0] = (pt){sx, rng_range(r, 0.0f, 0.15f)};
    } else {
        float ax = rng_range(r, 0.55f, 0.75f);
        s1[0] = (pt){ax, 0.0f};
        s1[1] = (pt){rng_range(r, 0.0f, 0.1f), bar + rng_range(r, -j, j)};
        s1[2] = (pt){rng_range(r, 0.85f, 1.0f), bar + rng_range(r, -j, j)};
        s2[0] = (pt){ax + rng_range(r, -0.03f, 0.03f), rng_range(r, 0.0f, 0.05f)};
    }
    s2[1] = (pt){s2[0].x + rng_range(r, -0.08f, 0.05f), 1.0f};
    float shear = rng_range(r, -0.25f, 0.25f), w = rng_range(r, 45, 70), h = 70;
    float rad = rng_range(r, 1.5f, 6.0f);
    pt a[3], b[2];
    for (int i = 0; i < 3; i++)
        a[i] = (pt){13 + w * (s1[i].x + shear * (0.5f - s1[i].y)), 13 + h * s1[i].y};
    for (int i = 0; i < 2; i++)
        b[i] = (pt){13 + w * (s2[i].x + shear * (0.5f - s2[i].y)), 13 + h * s2[i].y};
    draw_polyline(&c, a, 3, rad);
    draw_polyline(&c, b, 2, rad);
    return canvas_normalize(&c, out);
}

int nn_style_apply(nn_style s, const float *in, int label, float *out,
                   nn_rng *rng) {
    switch (s) {
    case NN_STYLE_FOUR_OPEN:
    case NN_STYLE_FOUR_CLOSED:
        return four(s == NN_STYLE_FOUR_OPEN, out, rng) ? -1 : 4;
    case NN_STYLE_ONE_LEAD_IN:
        if (!in || label != 1) return -1;
        return one_lead_in(in, out, rng) ? -1 : 1;
    case NN_STYLE_SEVEN_CROSSED:
        if (!in || label != 7) return -1;
        return seven_crossed(in, out, rng) ? -1 : 7;
    default: break;
    }
    if (!in) return -1;
    switch (s) {
    case NN_STYLE_ELASTIC: elastic(in, out, rng); break;
    case NN_STYLE_SLANT: slant(in, out, rng); break;
    case NN_STYLE_HAIRLINE: hairline(in, out, rng); break;
    case NN_STYLE_THICK: thick(in, out, rng); break;
    case NN_STYLE_LOWRES: lowres(in, out, rng); break;
    case NN_STYLE_BINARY: binarize(in, out, rng); break;
    default: return -1;
    }
    return label;
}
