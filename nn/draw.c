/* draw.c: anti-aliased round strokes on a float canvas (see draw.h). */
#include <math.h>

#include "draw.h"

void canvas_clear(canvas *c) {
    for (long i = 0; i < (long)c->w * c->h; i++) c->px[i] = 1.0f;
}

void draw_segment(canvas *c, pt a, pt b, float r) {
    /* Only the pixels within r + 1 of the segment's bounding box. */
    int x0 = (int)floorf(fminf(a.x, b.x) - r - 1.5f);
    int x1 = (int)ceilf(fmaxf(a.x, b.x) + r + 1.5f);
    int y0 = (int)floorf(fminf(a.y, b.y) - r - 1.5f);
    int y1 = (int)ceilf(fmaxf(a.y, b.y) + r + 1.5f);
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > c->w ? c->w : x1;
    y1 = y1 > c->h ? c->h : y1;
    float dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            float px = (float)x + 0.5f - a.x, py = (float)y + 0.5f - a.y;
            float t = len2 > 0 ? (px * dx + py * dy) / len2 : 0.0f;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            float ex = px - t * dx, ey = py - t * dy;
            float cover = r + 0.5f - sqrtf(ex * ex + ey * ey);
            if (cover <= 0) continue;
            float v = 1.0f - (cover > 1 ? 1 : cover);
            float *p = &c->px[(long)y * c->w + x];
            if (v < *p) *p = v;
        }
}

void draw_polyline(canvas *c, const pt *p, int n, float r) {
    for (int i = 0; i + 1 < n; i++) draw_segment(c, p[i], p[i + 1], r);
    if (n == 1) draw_segment(c, p[0], p[0], r);
}

void draw_curve(canvas *c, const pt *p, int n, float r) {
    enum { STEPS = 12 };
    if (n < 2) {
        draw_polyline(c, p, n, r);
        return;
    }
    pt prev = p[0];
    for (int i = 0; i + 1 < n; i++) {
        pt p0 = p[i > 0 ? i - 1 : 0], p1 = p[i], p2 = p[i + 1];
        pt p3 = p[i + 2 < n ? i + 2 : n - 1];
        for (int s = 1; s <= STEPS; s++) {
            float t = (float)s / STEPS, t2 = t * t, t3 = t2 * t;
            pt q = {
                0.5f * (2 * p1.x + (-p0.x + p2.x) * t +
                        (2 * p0.x - 5 * p1.x + 4 * p2.x - p3.x) * t2 +
                        (-p0.x + 3 * p1.x - 3 * p2.x + p3.x) * t3),
                0.5f * (2 * p1.y + (-p0.y + p2.y) * t +
                        (2 * p0.y - 5 * p1.y + 4 * p2.y - p3.y) * t2 +
                        (-p0.y + 3 * p1.y - 3 * p2.y + p3.y) * t3),
            };
            draw_segment(c, prev, q, r);
            prev = q;
        }
    }
}

void upscale_digit(const float *in, int k, float *out) {
    int W = NN_SIDE * k;
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            /* source position in pixel-index coordinates */
            float sx = ((float)x + 0.5f) / k - 0.5f;
            float sy = ((float)y + 0.5f) / k - 0.5f;
            int ix = (int)floorf(sx), iy = (int)floorf(sy);
            float fx = sx - (float)ix, fy = sy - (float)iy;
            float v = 0;
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 2; i++) {
                    int xx = ix + i, yy = iy + j;
                    if (xx < 0 || yy < 0 || xx >= NN_SIDE || yy >= NN_SIDE)
                        continue;
                    v += (i ? fx : 1 - fx) * (j ? fy : 1 - fy) *
                         in[yy * NN_SIDE + xx];
                }
            out[(long)y * W + x] = 1.0f - v;
        }
}

int canvas_normalize(const canvas *c, float *out) {
    nn_error err;
    return nn_normalize_digit(c->px, c->w, c->h, out, &err);
}
