/*
 * negatives.c: drawings that are not digits, for the "not a digit" class.
 *
 * Each negative is drawn on a 96x96 canvas (ink low, the form a decoded
 * upload has) and goes through nn_normalize_digit, so training sees what
 * serving sees: a dot or a dash is blown up to fill 20x20 exactly as the
 * server would blow it up. Everything is deterministic in the caller's
 * rng. Shapes that ARE digits once normalised are avoided on purpose:
 * no near-vertical lines (a 1), no lone circles (a 0), no letters that
 * are drawn like digits (O, l, I, S, Z, b, g, q, ...).
 *
 * Training kinds: scribbles, dots, dashes and crosses, font glyphs, top
 * halves of digits, two digits side by side, speckle noise. Held-out
 * kinds (never trained on): zigzags and waves, stars, hatching,
 * triangles, asterisks. Held-out fonts are chosen by the caller.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "nn.h"

#define SIDE 96

/* ================================================================== */
/* Hershey fonts (.jhf)                                                */
/* ================================================================== */

/* A .jhf glyph: 5 characters of id, 3 of vertex count, then count pairs
 * of letters, each coordinate letter - 'R'; the first pair is the left
 * and right margin, " R" lifts the pen. Long glyphs wrap onto following
 * lines. */
#define PEN_UP 127
#define MAX_GLYPHS 4096
#define MAX_FONT_BYTES (4u << 20)

struct nn_font {
    int n;
    int *start;  /* (n + 1) offsets into xy, in vertices */
    int8_t *xy;  /* (start[n], 2); x == PEN_UP lifts the pen */
};

void nn_font_free(nn_font *f) {
    if (!f) return;
    free(f->start);
    free(f->xy);
    free(f);
}

int nn_font_glyphs(const nn_font *f) { return f ? f->n : 0; }

nn_font *nn_font_load(const char *path, nn_error *err) {
    uint8_t *buf;
    size_t len;
    if (nn_read_file(path, MAX_FONT_BYTES, &buf, &len, err)) return NULL;
    nn_font *f = calloc(1, sizeof *f);
    /* Every vertex takes two bytes of the file: len/2 bounds them. */
    if (f) {
        f->start = calloc(MAX_GLYPHS + 1, sizeof(int));
        f->xy = malloc(len + 2);
    }
    if (!f || !f->start || !f->xy) {
        nn_font_free(f);
        free(buf);
        nn_fail(err, "out of memory for font %s", path);
        return NULL;
    }
    size_t pos = 0;
    int nv = 0;
    while (pos < len && f->n < MAX_GLYPHS) {
        /* skip line breaks between glyphs */
        while (pos < len && (buf[pos] == '\n' || buf[pos] == '\r')) pos++;
        if (pos + 8 > len) break;
        int count = 0;
        for (int i = 5; i < 8; i++) {
            uint8_t ch = buf[pos + i];
            if (ch == ' ') continue;
            if (ch < '0' || ch > '9') goto bad;
            count = count * 10 + (ch - '0');
        }
        pos += 8;
        if (count < 1) goto bad;
        f->start[f->n] = nv;
        for (int v = 0; v < count; v++) {
            uint8_t c2[2];
            for (int k = 0; k < 2; k++) {
                while (pos < len && (buf[pos] == '\n' || buf[pos] == '\r'))
                    pos++;
                if (pos >= len) goto bad;
                c2[k] = buf[pos++];
            }
            if (v == 0) continue; /* margins */
            if (c2[0] == ' ' && c2[1] == 'R') {
                f->xy[2 * nv] = PEN_UP;
                f->xy[2 * nv + 1] = 0;
            } else {
                f->xy[2 * nv] = (int8_t)((int)c2[0] - 'R');
                f->xy[2 * nv + 1] = (int8_t)((int)c2[1] - 'R');
            }
            nv++;
        }
        f->n++;
    }
    f->start[f->n] = nv;
    free(buf);
    if (f->n == 0) {
        nn_font_free(f);
        nn_fail(err, "%s: no glyphs", path);
        return NULL;
    }
    return f;
bad:
    nn_fail(err, "%s: not a Hershey .jhf font (glyph %d)", path, f->n + 1);
    free(buf);
    nn_font_free(f);
    return NULL;
}

/* Latin ASCII families only (glyph k is ' ' + k, so digit-like
 * characters can be left out); the held-out list is other families. */
static const char *const train_fonts[] = {
    "futural", "futuram", "rowmans", "rowmand", "timesr", "timesi",
    "scripts", "gothiceng",
};
static const char *const held_out_fonts[] = {
    "cursive", "scriptc", "timesrb", "timesib", "rowmant", "gothgbt",
    "gothicita",
};

int nn_fonts_load_set(const char *dir, bool held_out, nn_font **fonts,
                      int max, nn_error *err) {
    const char *const *names = held_out ? held_out_fonts : train_fonts;
    int n_names = held_out ? (int)(sizeof held_out_fonts / sizeof *names)
                           : (int)(sizeof train_fonts / sizeof *names);
    int n = 0;
    nn_error last = {{0}};
    for (int i = 0; i < n_names && n < max; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.jhf", dir, names[i]);
        nn_font *f = nn_font_load(path, &last);
        if (f) fonts[n++] = f;
    }
    if (n == 0)
        return nn_fail(err, "no Hershey fonts in %s (%s); install "
                       "hershey-fonts-data", dir, last.msg);
    return n;
}

/* Characters that look like digits once normalised, or like a lone
 * stroke (a 1): never drawn as negatives. */
static bool digit_like(int ch) {
    return ch < 33 || ch > 126 ||
           strchr("0123456789OoQDIlij|!/\\()[]{},'`\";SsZzgqbBG$", ch);
}

/* ================================================================== */
/* The kinds                                                           */
/* ================================================================== */

static pt rand_pt(nn_rng *r, float lo, float hi) {
    return (pt){rng_range(r, lo, hi), rng_range(r, lo, hi)};
}

/* Stroke radius in canvas pixels: mostly a pen's, sometimes hairline or
 * marker. */
static float pen(nn_rng *r) {
    float u = nn_rng_uniform(r);
    if (u < 0.15f) return rng_range(r, 0.6f, 1.5f);
    if (u < 0.85f) return rng_range(r, 2.0f, 5.0f);
    return rng_range(r, 5.0f, 9.0f);
}

static void scribble(canvas *c, nn_rng *r) {
    pt p[12];
    int n = 6 + (int)nn_rng_below(r, 6);
    for (int i = 0; i < n; i++) p[i] = rand_pt(r, 12, 84);
    draw_curve(c, p, n, pen(r));
}

static void dots(canvas *c, nn_rng *r) {
    int n = 1 + (int)nn_rng_below(r, 3);
    float rad = rng_range(r, 2, 10);
    for (int i = 0; i < n; i++) {
        pt q = rand_pt(r, 20, 76);
        draw_segment(c, q, q, rad * rng_range(r, 0.7f, 1.3f));
    }
}

/* A segment through (cx, cy) of length len at angle a (radians). */
static void line_at(canvas *c, float cx, float cy, float len, float a,
                    float rad) {
    float dx = 0.5f * len * cosf(a), dy = 0.5f * len * sinf(a);
    draw_segment(c, (pt){cx - dx, cy - dy}, (pt){cx + dx, cy + dy}, rad);
}

/* A dash within 35 degrees of horizontal, an '=' or a '+' or 'x'. */
static void lines(canvas *c, nn_rng *r) {
    float rad = pen(r), a = rng_range(r, -0.61f, 0.61f);
    float len = rng_range(r, 30, 70);
    int what = (int)nn_rng_below(r, 4);
    if (what <= 1) {
        line_at(c, 48, 48, len, a, rad);
    } else if (what == 2) {
        float gap = rng_range(r, 8, 24);
        line_at(c, 48, 48 - gap / 2, len, a, rad);
        line_at(c, 48 + rng_range(r, -6, 6), 48 + gap / 2,
                len * rng_range(r, 0.7f, 1.2f), a + rng_range(r, -0.1f, 0.1f),
                rad);
    } else {
        float b = a + 1.5708f + rng_range(r, -0.5f, 0.5f);
        line_at(c, 48, 48, len, a, rad);
        line_at(c, 48 + rng_range(r, -8, 8), 48 + rng_range(r, -8, 8),
                len * rng_range(r, 0.7f, 1.2f), b, rad);
    }
}

/* Draws glyph g of font f, fitted into the canvas with a random affine
 * (rotation +-15 degrees, shear, aspect). Returns -1 for empty glyphs. */
static int glyph(canvas *c, const nn_font *f, int g, nn_rng *r) {
    int a = f->start[g], b = f->start[g + 1];
    int minx = 127, maxx = -127, miny = 127, maxy = -127;
    for (int i = a; i < b; i++) {
        int x = f->xy[2 * i], y = f->xy[2 * i + 1];
        if (x == PEN_UP) continue;
        minx = x < minx ? x : minx;
        maxx = x > maxx ? x : maxx;
        miny = y < miny ? y : miny;
        maxy = y > maxy ? y : maxy;
    }
    if (maxx < minx || (maxx - minx) + (maxy - miny) < 4) return -1;
    float side = (float)((maxx - minx) > (maxy - miny) ? maxx - minx
                                                       : maxy - miny);
    float s = 60.0f / side, rot = rng_range(r, -0.26f, 0.26f);
    float sh = rng_range(r, -0.25f, 0.25f), asp = rng_range(r, 0.8f, 1.2f);
    float cx = 0.5f * (minx + maxx), cy = 0.5f * (miny + maxy);
    float cs = cosf(rot), sn = sinf(rot), rad = pen(r) * 0.8f;
    pt prev = {0, 0};
    bool down = false;
    for (int i = a; i < b; i++) {
        int x = f->xy[2 * i], y = f->xy[2 * i + 1];
        if (x == PEN_UP) {
            down = false;
            continue;
        }
        float u = ((float)x - cx) * s * asp, v = ((float)y - cy) * s;
        u += sh * v;
        pt q = {48 + cs * u - sn * v, 48 + sn * u + cs * v};
        if (down) draw_segment(c, prev, q, rad);
        prev = q;
        down = true;
    }
    return 0;
}

static int font_glyph(canvas *c, const nn_negative_source *src, nn_rng *r) {
    if (src->n_fonts < 1) return -1;
    for (int tries = 0; tries < 20; tries++) {
        const nn_font *f = src->fonts[nn_rng_below(r, (uint32_t)src->n_fonts)];
        if (!f || f->n < 1) continue;
        int g = (int)nn_rng_below(r, (uint32_t)f->n);
        if (digit_like(' ' + g)) continue;
        if (glyph(c, f, g, r) == 0) return 0;
    }
    return -1;
}

/* A random digit of one of the labels in `want`, or NULL. */
static const float *pick_digit(const nn_dataset *d, const char *want,
                               nn_rng *r) {
    if (!d || d->n < 1) return NULL;
    for (int tries = 0; tries < 200; tries++) {
        int i = (int)nn_rng_below(r, (uint32_t)d->n);
        if (d->labels[i] < NN_CLASSES && strchr(want, '0' + d->labels[i]))
            return d->images + (size_t)i * NN_PIXELS;
    }
    return NULL;
}

/* The top 40-55% of a 2, 3 or 5 (their tops are no digit; halves of
 * the others read as 0, 1 or 7). */
static int half_digit(canvas *c, const nn_negative_source *src, nn_rng *r) {
    const float *d = pick_digit(src->digits, "235", r);
    if (!d) return -1;
    float buf[NN_PIXELS];
    memcpy(buf, d, sizeof buf);
    int top = NN_SIDE, bottom = -1;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < NN_SIDE; x++)
            if (buf[y * NN_SIDE + x] > 0.3f) {
                top = y < top ? y : top;
                bottom = y;
            }
    if (bottom < top) return -1;
    int cut = top + (int)((float)(bottom - top + 1) * rng_range(r, 0.4f, 0.55f));
    for (int y = cut; y < NN_SIDE; y++)
        memset(buf + y * NN_SIDE, 0, NN_SIDE * sizeof(float));
    upscale_digit(buf, 3, c->px); /* (84, 84) in the 96x96 buffer */
    c->w = c->h = 3 * NN_SIDE;
    return 0;
}

/* Two digits side by side, overlapping by up to 6 px, on (28, 56). */
static int two_digits(canvas *c, const nn_negative_source *src, nn_rng *r) {
    const float *a = pick_digit(src->digits, "0123456789", r);
    const float *b = pick_digit(src->digits, "0123456789", r);
    if (!a || !b) return -1;
    int W = 2 * NN_SIDE, shift = NN_SIDE - 10 + (int)nn_rng_below(r, 8);
    c->w = W;
    c->h = NN_SIDE;
    for (int y = 0; y < NN_SIDE; y++)
        for (int x = 0; x < W; x++) {
            float va = x < NN_SIDE ? a[y * NN_SIDE + x] : 0;
            int xb = x - shift;
            float vb = xb >= 0 && xb < NN_SIDE ? b[y * NN_SIDE + xb] : 0;
            c->px[y * W + x] = 1.0f - (va > vb ? va : vb);
        }
    return 0;
}

static void noise(canvas *c, nn_rng *r) {
    int n = 6 + (int)nn_rng_below(r, 30);
    float rad = rng_range(r, 0.6f, 2.5f);
    for (int i = 0; i < n; i++) {
        pt q = rand_pt(r, 4, 92);
        draw_segment(c, q, q, rad);
    }
}

/* Held out: a zigzag of 3-6 teeth or a wave of 2-4 periods, any angle
 * within 30 degrees of horizontal. */
static void zigzag(canvas *c, nn_rng *r) {
    pt p[16];
    int teeth = 3 + (int)nn_rng_below(r, 4);
    float amp = rng_range(r, 8, 22), len = rng_range(r, 50, 80);
    float a = rng_range(r, -0.5f, 0.5f), cs = cosf(a), sn = sinf(a);
    bool wave = nn_rng_uniform(r) < 0.5f;
    int n = 2 * teeth + 1;
    for (int i = 0; i < n; i++) {
        float u = -len / 2 + len * (float)i / (float)(n - 1);
        float v = (i & 1) ? amp : -amp;
        p[i] = (pt){48 + cs * u - sn * v, 48 + sn * u + cs * v};
    }
    if (wave) draw_curve(c, p, n, pen(r));
    else draw_polyline(c, p, n, pen(r));
}

/* Held out: a five-pointed star, hatching, a triangle, an asterisk. */
static void shapes(canvas *c, nn_rng *r) {
    float rad = pen(r), R = rng_range(r, 25, 38);
    float a0 = rng_range(r, 0, 6.2832f);
    switch (nn_rng_below(r, 4)) {
    case 0: {
        pt p[6];
        for (int i = 0; i <= 5; i++) {
            float a = a0 + (float)(i * 2 % 5) * 1.2566f;
            p[i] = (pt){48 + R * cosf(a), 48 + R * sinf(a)};
        }
        draw_polyline(c, p, 6, rad);
        break;
    }
    case 1: {
        int n = 3 + (int)nn_rng_below(r, 4);
        float a = rng_range(r, 0.5f, 1.1f) * (nn_rng_uniform(r) < 0.5f ? 1 : -1);
        for (int i = 0; i < n; i++)
            line_at(c, 48 + ((float)i - (n - 1) / 2.0f) * rng_range(r, 8, 12),
                    48, R * 1.6f, a, rad * 0.7f);
        break;
    }
    case 2: {
        pt p[4];
        for (int i = 0; i < 3; i++) {
            float a = a0 + (float)i * 2.0944f + rng_range(r, -0.2f, 0.2f);
            p[i] = (pt){48 + R * cosf(a), 48 + R * sinf(a)};
        }
        p[3] = p[0];
        draw_polyline(c, p, 4, rad);
        break;
    }
    default:
        for (int i = 0; i < 3; i++)
            line_at(c, 48, 48, 2 * R, a0 + (float)i * 1.0472f, rad);
        break;
    }
}

int nn_negative(const nn_negative_source *src, nn_rng *rng, float *out) {
    float px[SIDE * SIDE];
    for (int tries = 0; tries < 50; tries++) {
        canvas c = {SIDE, SIDE, px};
        canvas_clear(&c);
        int kind;
        int rc = 0;
        if (src->held_out) {
            kind = NN_NEG_TRAIN_KINDS +
                   (int)nn_rng_below(rng, NN_NEG_KINDS - NN_NEG_TRAIN_KINDS);
            /* a third of the held-out set are glyphs of held-out fonts */
            if (src->n_fonts > 0 && nn_rng_uniform(rng) < 0.34f)
                kind = NN_NEG_GLYPH;
        } else {
            /* glyphs and scribbles most often: they are the varied ones */
            static const uint8_t mix[] = {
                NN_NEG_SCRIBBLE, NN_NEG_SCRIBBLE, NN_NEG_SCRIBBLE,
                NN_NEG_DOTS,     NN_NEG_LINE,     NN_NEG_LINE,
                NN_NEG_GLYPH,    NN_NEG_GLYPH,    NN_NEG_GLYPH,
                NN_NEG_GLYPH,    NN_NEG_HALF_DIGIT, NN_NEG_TWO_DIGITS,
                NN_NEG_TWO_DIGITS, NN_NEG_NOISE,
            };
            kind = mix[nn_rng_below(rng, sizeof mix)];
        }
        switch (kind) {
        case NN_NEG_SCRIBBLE: scribble(&c, rng); break;
        case NN_NEG_DOTS: dots(&c, rng); break;
        case NN_NEG_LINE: lines(&c, rng); break;
        case NN_NEG_GLYPH: rc = font_glyph(&c, src, rng); break;
        case NN_NEG_HALF_DIGIT: rc = half_digit(&c, src, rng); break;
        case NN_NEG_TWO_DIGITS: rc = two_digits(&c, src, rng); break;
        case NN_NEG_NOISE: noise(&c, rng); break;
        case NN_NEG_ZIGZAG: zigzag(&c, rng); break;
        default: shapes(&c, rng); break;
        }
        if (rc == 0 && canvas_normalize(&c, out) == 0) return kind;
    }
    /* Unreachable in practice (scribbles always have ink): a dot. */
    canvas c = {SIDE, SIDE, px};
    canvas_clear(&c);
    draw_segment(&c, (pt){48, 48}, (pt){48, 48}, 6);
    canvas_normalize(&c, out);
    return NN_NEG_DOTS;
}

/* ================================================================== */
/* A training set with negatives and styled digits                     */
/* ================================================================== */

int nn_dataset_with_negatives(const nn_dataset *base,
                              const nn_negative_source *src, int n,
                              int n_styled, uint64_t seed, nn_dataset *out,
                              nn_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 0 || n_styled < 0 || n > 10000000 || n_styled > 10000000 ||
        base->n > 100000000)
        return nn_fail(err, "impossible counts of generated samples");
    long total = (long)base->n + n + n_styled;
    out->images = nn_dataset_alloc_images(total);
    out->labels = malloc((size_t)total);
    if (!out->images || !out->labels) {
        nn_dataset_free(out);
        return nn_fail(err, "out of memory for %ld samples", total);
    }
    memcpy(out->images, base->images, (size_t)base->n * NN_PIXELS * sizeof(float));
    memcpy(out->labels, base->labels, (size_t)base->n);
    long k = base->n;
    /* Each sample its own generator, so the set does not depend on the
     * order of generation. */
    for (int i = 0; i < n; i++, k++) {
        nn_rng g;
        nn_rng_seed(&g, seed ^ (0x6e6567ULL << 40) ^ (uint64_t)i * 0x9e3779b97f4a7c15ULL);
        nn_negative(src, &g, out->images + (size_t)k * NN_PIXELS);
        out->labels[k] = NN_NOT_A_DIGIT;
    }
    static const nn_style label_styles[] = {
        NN_STYLE_ONE_LEAD_IN, NN_STYLE_SEVEN_CROSSED, NN_STYLE_FOUR_OPEN,
        NN_STYLE_FOUR_CLOSED};
    for (int i = 0; i < n_styled; i++) {
        nn_rng g;
        nn_rng_seed(&g, seed ^ (0x737479ULL << 40) ^ (uint64_t)i * 0x9e3779b97f4a7c15ULL);
        nn_style s = label_styles[i % 4];
        const float *in = NULL;
        int label = 4;
        if (s == NN_STYLE_ONE_LEAD_IN || s == NN_STYLE_SEVEN_CROSSED) {
            label = s == NN_STYLE_ONE_LEAD_IN ? 1 : 7;
            in = pick_digit(base, s == NN_STYLE_ONE_LEAD_IN ? "1" : "7", &g);
            if (!in) continue;
        }
        int got = nn_style_apply(s, in, label, out->images + (size_t)k * NN_PIXELS, &g);
        if (got < 0) continue;
        out->labels[k++] = (uint8_t)got;
    }
    out->n = (int)k;
    return 0;
}
