/* augment.c: random distortions of 28x28 training digits.
 *
 * Called once per training sample per epoch (60k per epoch), so it must
 * cost a few microseconds: one affine warp with bilinear sampling over
 * 784 pixels, and sometimes a 3x3 stroke change first. All work is on the
 * stack; the only state is the caller's rng.
 *
 * What varies, and why: people draw digits tilted, larger or smaller,
 * slanted, off-centre and with pens of different widths; MNIST's scans
 * vary less. Rotation +-12 deg, scale 0.85..1.15, shear and shift +-2 px
 * (DESIGN.md: 97.9% -> 98.6% for the MLP, and better on drawings).
 */
#include <math.h>

#include "nn.h"

#define MAX_ROTATION 0.20943951f /* 12 degrees, in radians */
#define MIN_SCALE 0.85f
#define MAX_SCALE 1.15f
#define MAX_ASPECT 0.05f         /* x and y scales differ by up to +-5% */
#define MAX_SHEAR 0.15f          /* x += shear * y */
#define MAX_SHIFT 2.0f           /* pixels, on each axis */
#define P_THICKEN 0.30f
#define P_THIN 0.15f

/* The point the digit turns and scales about, in pixel-index coordinates:
 * where nn_normalize_digit (like MNIST) puts the centre of mass, so the
 * digit stays centred apart from the deliberate shift. */
#define CENTRE 14.0f

/* The image inside a frame of zeros, (31, 31): one row/column before it,
 * two after. Sample positions clamped to [0, 29] in these coordinates then
 * read only zeros outside the image, so the warp needs no branches. */
#define PAD (NN_SIDE + 3)

static float uniform_pm(nn_rng *rng, float half_range) {
    return (2.0f * nn_rng_uniform(rng) - 1.0f) * half_range;
}

/* Thicker stroke: blend towards the 3x3 grayscale dilation (max filter),
 * by amount 0..1. p is (PAD, PAD) with the image at [1..28][1..28] and
 * zeros around it; the zeros stay zero. */
static void thicken(float p[PAD][PAD], float amount) {
    float rowmax[PAD][PAD];
    for (int x = 0; x < PAD; x++)
        rowmax[0][x] = rowmax[NN_SIDE + 1][x] = 0.0f;
    for (int y = 1; y <= NN_SIDE; y++)
        for (int x = 1; x <= NN_SIDE; x++) {
            float m = p[y][x - 1] > p[y][x] ? p[y][x - 1] : p[y][x];
            rowmax[y][x] = m > p[y][x + 1] ? m : p[y][x + 1];
        }
    for (int y = 1; y <= NN_SIDE; y++)
        for (int x = 1; x <= NN_SIDE; x++) {
            float m = rowmax[y - 1][x] > rowmax[y][x] ? rowmax[y - 1][x]
                                                      : rowmax[y][x];
            m = m > rowmax[y + 1][x] ? m : rowmax[y + 1][x];
            p[y][x] += amount * (m - p[y][x]);
        }
}

/* Thinner stroke without losing it: blend towards v^2, which keeps the
 * stroke's core (1 stays 1) and fades its anti-aliased edges (0.5 ->
 * 0.25), about half a pixel off each side of an MNIST stroke. A true
 * 3x3 erosion would erase MNIST's 2-3 px strokes altogether. */
static void thin(float p[PAD][PAD], float amount) {
    for (int y = 1; y <= NN_SIDE; y++)
        for (int x = 1; x <= NN_SIDE; x++)
            p[y][x] += amount * (p[y][x] * p[y][x] - p[y][x]);
}

void nn_augment(const float *in, float *out, nn_rng *rng) {
    /* Always draw the same eight numbers, whatever is used, so a sample's
     * distortion depends only on the rng state it starts from. */
    float angle = uniform_pm(rng, MAX_ROTATION);
    float scale = MIN_SCALE + (MAX_SCALE - MIN_SCALE) * nn_rng_uniform(rng);
    float aspect = uniform_pm(rng, MAX_ASPECT);
    float shear = uniform_pm(rng, MAX_SHEAR);
    float tx = uniform_pm(rng, MAX_SHIFT);
    float ty = uniform_pm(rng, MAX_SHIFT);
    float stroke = nn_rng_uniform(rng);
    float amount = 0.5f + 0.5f * nn_rng_uniform(rng); /* 0.5..1 */

    float p[PAD][PAD] = {{0}};
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            p[y + 1][x + 1] = in[y * NN_SIDE + x];
    if (stroke < P_THICKEN)
        thicken(p, amount);
    else if (stroke < P_THICKEN + P_THIN)
        thin(p, amount);

    /* Forward map: out = C + t + A (in - C), A = R(angle) H(shear) S,
     * S = diag(scale (1 + aspect), scale (1 - aspect)). Sampling needs the
     * inverse: in = C + A^-1 (out - C - t). det A = sx * sy > 0.7. */
    float c = cosf(angle), s = sinf(angle);
    float sx = scale * (1.0f + aspect), sy = scale * (1.0f - aspect);
    float a00 = c * sx, a01 = (c * shear - s) * sy;
    float a10 = s * sx, a11 = (s * shear + c) * sy;
    float inv_det = 1.0f / (a00 * a11 - a01 * a10);
    float i00 = a11 * inv_det, i01 = -a01 * inv_det;
    float i10 = -a10 * inv_det, i11 = a00 * inv_det;

    const float far = (float)(NN_SIDE + 1); /* first all-zero column */
    for (int y = 0; y < NN_SIDE; y++) {
        float dy = (float)y - CENTRE - ty;
        float dx = -CENTRE - tx; /* for x = 0 */
        /* Source position in frame coordinates (+1), stepped along x. */
        float px = CENTRE + 1.0f + i00 * dx + i01 * dy;
        float py = CENTRE + 1.0f + i10 * dx + i11 * dy;
        for (int x = 0; x < NN_SIDE; x++, px += i00, py += i10) {
            float cx = px < 0.0f ? 0.0f : px > far ? far : px;
            float cy = py < 0.0f ? 0.0f : py > far ? far : py;
            int ix = (int)cx, iy = (int)cy; /* floor: both >= 0 */
            float fx = cx - (float)ix, fy = cy - (float)iy;
            const float *r0 = p[iy], *r1 = p[iy + 1];
            float top = r0[ix] + fx * (r0[ix + 1] - r0[ix]);
            float bot = r1[ix] + fx * (r1[ix + 1] - r1[ix]);
            out[y * NN_SIDE + x] = top + fy * (bot - top);
        }
    }
}

/* For a quarter of the samples, one of the styles MNIST lacks
 * (nn/styles.c: elastic, slant, hairline, marker, low resolution,
 * binarised) first, then nn_augment's distortion. The style draws from
 * its own generator, seeded from rng, so nn_augment's numbers do not
 * depend on which style ran. */
void nn_augment_styles(const float *in, float *out, nn_rng *rng) {
    static const struct {
        float upto; /* cumulative probability */
        nn_style style;
    } styles[] = {
        {0.08f, NN_STYLE_ELASTIC}, {0.12f, NN_STYLE_SLANT},
        {0.15f, NN_STYLE_HAIRLINE}, {0.18f, NN_STYLE_THICK},
        {0.22f, NN_STYLE_LOWRES}, {0.25f, NN_STYLE_BINARY},
    };
    float styled[NN_PIXELS];
    float u = nn_rng_uniform(rng);
    nn_rng style_rng;
    nn_rng_seed(&style_rng, nn_rng_u64(rng));
    for (size_t k = 0; k < sizeof styles / sizeof styles[0]; k++)
        if (u < styles[k].upto) {
            if (nn_style_apply(styles[k].style, in, 0, styled, &style_rng) >= 0)
                in = styled;
            break;
        }
    nn_augment(in, out, rng);
}
