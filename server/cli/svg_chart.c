/* svg_chart.c: see svg_chart.h. Coordinates are SVG user units (pixels at
 * 100% zoom); text is escaped for XML. */
#include "svg_chart.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void header(FILE *f, int w, int h) {
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, "
            "sans-serif\" font-size=\"13\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
            w, h, w, h, w, h);
}

static int finish(FILE *f) {
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about
 * `ticks` intervals over span. */
static double nice_step(double span, int ticks) {
    double raw = span / ticks, mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

int svg_line_chart(FILE *f, const char *title, const char *x_label,
                   const char *y_label, const double *x, int n,
                   const svg_series *series, int n_series) {
    const int W = 720, H = 420, L = 70, R = 170, T = 44, B = 56;
    const double pw = W - L - R, ph = H - T - B;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]);
        x1 = fmax(x1, x[i]);
        for (int s = 0; s < n_series; s++)
            if (isfinite(series[s].y[i])) {
                y0 = fmin(y0, series[s].y[i]);
                y1 = fmax(y1, series[s].y[i]);
            }
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!isfinite(y0)) { y0 = 0; y1 = 1; }
    if (!(y1 > y0)) { y0 -= 0.5; y1 += 0.5; }
    double ystep = nice_step(y1 - y0, 5);
    y0 = floor(y0 / ystep) * ystep;
    y1 = ceil(y1 / ystep) * ystep;
    double xstep = nice_step(x1 - x0, 8);
    if (xstep < 1) xstep = 1;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (T + ph - ((v) - y0) / (y1 - y0) * ph)
    header(f, W, H);
    fputs("<text x=\"16\" y=\"26\" font-size=\"16\" font-weight=\"bold\">", f);
    xml_text(f, title);
    fputs("</text>\n", f);
    /* Grid and ticks. */
    for (double v = y0; v <= y1 + ystep / 2; v += ystep) {
        fprintf(f, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n",
                L, L + pw, PY(v), PY(v));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333333\">%g</text>\n",
                L - 6, PY(v) + 4, fabs(v) < ystep / 1e6 ? 0 : v);
    }
    for (double v = ceil(x0 / xstep) * xstep; v <= x1 + xstep / 1e6; v += xstep) {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\" stroke=\"#eeeeee\"/>\n",
                PX(v), PX(v), T, T + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#333333\">%g</text>\n",
                PX(v), T + ph + 18, v);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#666666\"/>\n",
            L, T, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", L + pw / 2, H - 12);
    xml_text(f, x_label);
    fprintf(f, "</text>\n<text transform=\"translate(18 %.1f) rotate(-90)\" "
               "text-anchor=\"middle\">", T + ph / 2);
    xml_text(f, y_label);
    fputs("</text>\n", f);
    /* Lines (broken where a value is missing) and points. */
    for (int s = 0; s < n_series; s++) {
        const double *y = series[s].y;
        fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", series[s].color);
        bool pen = false;
        for (int i = 0; i < n; i++) {
            if (!isfinite(y[i])) {
                pen = false;
                continue;
            }
            fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', PX(x[i]), PY(y[i]));
            pen = true;
        }
        fputs("\"/>\n", f);
        if (n <= 60)
            for (int i = 0; i < n; i++)
                if (isfinite(y[i]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                            PX(x[i]), PY(y[i]), series[s].color);
        /* Legend, right of the plot. */
        double ly = T + 10 + 22 * s;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"3\"/>\n<text x=\"%.0f\" y=\"%.1f\">",
                L + pw + 14, L + pw + 38, ly, ly, series[s].color, L + pw + 44, ly + 4);
        xml_text(f, series[s].label);
        fputs("</text>\n", f);
    }
#undef PX
#undef PY
    return finish(f);
}

int svg_confusion(FILE *f, const char *title, const int cm[NN_CLASSES][NN_CLASSES]) {
    const int C = 46, L = 70, T = 70, W = L + 10 * C + 30, H = T + 10 * C + 30;
    int max_off = 1, max_diag = 1;
    for (int i = 0; i < NN_CLASSES; i++)
        for (int j = 0; j < NN_CLASSES; j++) {
            if (i == j && cm[i][j] > max_diag) max_diag = cm[i][j];
            if (i != j && cm[i][j] > max_off) max_off = cm[i][j];
        }
    header(f, W, H);
    fputs("<text x=\"16\" y=\"24\" font-size=\"16\" font-weight=\"bold\">", f);
    xml_text(f, title);
    fputs("</text>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"50\" text-anchor=\"middle\">predicted digit</text>\n",
            L + 5 * C);
    fprintf(f, "<text transform=\"translate(22 %d) rotate(-90)\" text-anchor=\"middle\">"
               "true digit</text>\n", T + 5 * C);
    for (int k = 0; k < NN_CLASSES; k++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">%d</text>\n",
                L + k * C + C / 2, T - 6, k);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-weight=\"bold\">%d</text>\n",
                L - 8, T + k * C + C / 2 + 5, k);
    }
    for (int i = 0; i < NN_CLASSES; i++)
        for (int j = 0; j < NN_CLASSES; j++) {
            int v = cm[i][j];
            /* Shade by share of the largest count of its kind: diagonal
             * green, errors red; a zero cell stays white. Text turns white
             * on dark cells to keep its contrast. */
            double a = i == j ? (double)v / max_diag : sqrt((double)v / max_off);
            int r, g, b;
            if (v == 0) r = g = b = 255;
            else if (i == j) { r = (int)(255 - 200 * a); g = (int)(255 - 110 * a); b = (int)(255 - 200 * a); }
            else { r = (int)(255 - 60 * a); g = (int)(255 - 200 * a); b = (int)(255 - 200 * a); }
            bool dark = v && a > 0.6;
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\" "
                       "stroke=\"#cccccc\"/>\n", L + j * C, T + i * C, C, C, r, g, b);
            if (v)
                fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"%d\" "
                           "fill=\"%s\">%d</text>\n", L + j * C + C / 2, T + i * C + C / 2 + 4,
                        v >= 1000 ? 11 : 13, dark ? "#ffffff" : "#111111", v);
        }
    return finish(f);
}

int svg_digit_grid(FILE *f, const char *title, const float *images,
                   const char *const *captions, int n, int columns) {
    const int S = 3, D = 28 * S, GAP_X = 22, CAP = 34, TOP = 44;
    const int cell_w = D + GAP_X, cell_h = D + CAP;
    int rows = n > 0 ? (n + columns - 1) / columns : 0;
    int cols = n < columns ? (n > 0 ? n : 1) : columns;
    int W = 16 + cols * cell_w, H = TOP + rows * cell_h + 10;
    if (W < 360) W = 360;
    header(f, W, H);
    fputs("<text x=\"16\" y=\"26\" font-size=\"16\" font-weight=\"bold\">", f);
    xml_text(f, title);
    fputs("</text>\n", f);
    for (int i = 0; i < n; i++) {
        int ox = 16 + (i % columns) * cell_w, oy = TOP + (i / columns) * cell_h;
        const float *img = images + (size_t)i * NN_PIXELS;
        fprintf(f, "<g transform=\"translate(%d %d) scale(%d)\" shape-rendering=\"crispEdges\">"
                   "<rect width=\"28\" height=\"28\" fill=\"#ffffff\" stroke=\"#bbbbbb\" "
                   "stroke-width=\"0.34\"/>", ox, oy, S);
        /* Runs of equal shade along each row become one rect: 16 shades
         * of gray keep the file small without visible banding. */
        for (int y = 0; y < 28; y++) {
            int x = 0;
            while (x < 28) {
                int level = (int)lroundf(fminf(fmaxf(img[y * 28 + x], 0), 1) * 15);
                int end = x + 1;
                while (end < 28 && (int)lroundf(fminf(fmaxf(img[y * 28 + end], 0), 1) * 15) == level)
                    end++;
                if (level > 0) {
                    int gray = 255 - level * 17;
                    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"1\" fill=\"#%02x%02x%02x\"/>",
                            x, y, end - x, gray, gray, gray);
                }
                x = end;
            }
        }
        fputs("</g>\n", f);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">",
                ox + D / 2, oy + D + 16);
        xml_text(f, captions[i]);
        fputs("</text>\n", f);
    }
    return finish(f);
}
