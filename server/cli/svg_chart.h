/* svg_chart.h: the pictures of `digitd report` and `digitd eval --report`,
 * written as plain SVG (no plotting library): a line chart, a confusion
 * matrix and a grid of digits. Each writes one complete SVG document to a
 * stdio stream and returns 0, or -1 when writing failed (errno set). */
#ifndef DIGITD_CLI_SVG_CHART_H
#define DIGITD_CLI_SVG_CHART_H

#include <stdint.h>
#include <stdio.h>

#include "nn.h"

typedef struct {
    const char *label;  /* legend text */
    const char *color;  /* CSS colour */
    const double *y;    /* n values; NaN where there is none */
} svg_series;

/* Lines over x[0..n-1] (e.g. epochs), one per series, with axes, ticks,
 * a title and a legend. 720x420 user units. */
int svg_line_chart(FILE *f, const char *title, const char *x_label,
                   const char *y_label, const double *x, int n,
                   const svg_series *series, int n_series);

/* The 10x10 confusion matrix cm[true][predicted] as shaded cells with
 * their counts: the diagonal green, errors red, darker for more. */
int svg_confusion(FILE *f, const char *title, const int cm[NN_CLASSES][NN_CLASSES]);

/* A grid of 28x28 digits (images: n x 784 floats, 0..1 ink high), dark ink
 * on white, each with a caption (captions[i], e.g. "true 4, said 9"). */
int svg_digit_grid(FILE *f, const char *title, const float *images,
                   const char *const *captions, int n, int columns);

#endif
