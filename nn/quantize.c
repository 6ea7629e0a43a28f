/*
 * quantize.c: int8 inference of a trained network (API in nn.h, section
 * "int8 inference").
 *
 * Calibration (nn_quantize_calibrate) runs the float32 network over
 * training images and records the range [lo, hi] of the input and of every
 * layer's output into the model's metadata (key int8_act_ranges). From a
 * calibrated net, nn_qnet_create builds the int8 form:
 *
 *   - activations: every tensor between layers is uint8 with one scale s
 *     and zero point z per tensor, real = s * (q - z), from its range
 *     widened to hold 0 (so zero padding and ReLU are exact);
 *   - weights: int8 in [-127, 127], symmetric, one scale per output
 *     channel (max |w| / 127), recomputed from the float32 weights at
 *     every load, so the file keeps one set of weights;
 *   - dense and conv: C = A x W^T in int32 (nn/int8_gemm.c), then one
 *     fused epilogue: + bias (in accumulator units, with z_in * sum(w)
 *     folded in), x (s_in s_w / s_out), clamp (at z_out from below when
 *     a ReLU follows: the ReLU costs nothing), round to nearest even;
 *   - convolution: activations are NHWC (channels fastest), so each patch
 *     row of an im2col matrix is a contiguous run of the input; it is
 *     built 48 output positions at a time (a fused 2x2 pooling's windows
 *     4 rows each), multiplied and requantised while it is in L1; output
 *     rows at the top and bottom edge leave the patch rows that fall on
 *     the padding out of the product (a 5x5 conv with padding 2: 2/5 of
 *     the outermost rows' multiplies, 1/5 of the next rows'), adding back
 *     in_zp x those weights;
 *   - zeros: the VNNI kernel skips groups of 4 columns that are 0 in all
 *     rows of a tile; hidden channels that are 0 on a blank image are
 *     stored first (blank_first_order) so that a digit's background makes
 *     whole groups 0;
 *   - max-pooling and ReLU work on the uint8 values directly (quantising
 *     is monotonic, so the max commutes with it); dropout is the identity;
 *   - the last dense layer gives float32 logits for the softmax.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "int8.h"
#include "layers.h"
#include "nn.h"

/* Bounds that keep every int32 sum exact: |sum a w| and |z sum w| are each
 * at most K * 255 * 127, the bias at most 2^30, and for K <= 16384 the
 * three together stay below 2^31. */
#define Q_MAX_K 16384
#define Q_MAX_BIAS (1 << 30)
#define Q_ROWS 48 /* output positions per conv step: a multiple of the
                     kernels' row tiles (4) */
#define Q_CHUNK 32 /* samples per pass of nn_qnet_predict */

typedef enum { Q_CONV, Q_DENSE, Q_POOL, Q_RELU } qkind;

typedef struct {
    qkind kind;
    int c, h, w;          /* input (C, H, W), stored NHWC */
    int oc, oh, ow;       /* output */
    int k, pad;           /* conv kernel side and padding; pool window */
    bool pooled;          /* conv: a 2x2 max-pooling fused in, output
                             (oh / 2, ow / 2, N) instead of (oh, ow, N) */
    int K, Kp, N;         /* reduction length, rounded up to 4; outputs */
    uint8_t in_zp, out_zp;
    uint8_t qmin;         /* lowest output value: out_zp with a fused ReLU */
    bool logits;          /* last layer: float32 out, no requantisation */
    void *wp;             /* weights packed for the kernel */
    int32_t *bias;        /* (N) */
    float *mult;          /* (N): to output units, or to logits */
    bool skip_edges;      /* conv: edge rows skip the padding (patch_cols) */
    int32_t *edge_fix;    /* with skip_edges and in_zp > 0: (oh, np), row oy
                             in_zp x the weights of the columns it skips */
} qop;

struct nn_qnet {
    const int8_kernel *kern;
    float in_scale;
    uint8_t in_zp;
    int n_ops;
    qop ops[NN_MAX_LAYERS];
    size_t act_stride; /* bytes per sample of the activation buffers */
    size_t col_bytes;  /* im2col rows of the widest conv */
    size_t pad_bytes;  /* the largest conv input with its padding */
    size_t acc_ints;   /* int32 accumulators of the widest step */
    float temperature; /* the model's (meta.temperature), for the probabilities */
};

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* ================================================================== */
/* Ranges in the metadata                                              */
/* ================================================================== */

bool nn_net_has_int8(const nn_net *net) {
    return net && net->meta.int8_act_ranges[0] != 0;
}

/* Reads the n_layers + 1 ranges of net's metadata into lo/hi. */
static int parse_ranges(const nn_net *net, float *lo, float *hi,
                        nn_error *err) {
    const char *p = net->meta.int8_act_ranges;
    if (!*p)
        return nn_fail(err, "the model has no int8 calibration (run "
                            "`digitd quantize` on it)");
    for (int i = 0; i <= net->n_layers; i++) {
        for (int j = 0; j < 2; j++) {
            char *end;
            float v = strtof(p, &end);
            /* Below 1e30, so every scale and product derived from the
             * ranges stays finite. */
            if (end == p || !isfinite(v) || fabsf(v) > 1e30f)
                return nn_fail(err, "int8 calibration: expected %d ranges, "
                               "entry %d is not a number within +-1e30",
                               net->n_layers + 1, i);
            (j ? hi : lo)[i] = v;
            p = end;
        }
        if (!(lo[i] <= hi[i]))
            return nn_fail(err, "int8 calibration: range %d is empty", i);
    }
    while (*p == ' ') p++;
    if (*p)
        return nn_fail(err, "int8 calibration: more than the %d ranges the "
                       "%d layers need", net->n_layers + 1, net->n_layers);
    return 0;
}

/* Scale and zero point of a tensor whose values lie in [lo, hi]. */
static void tensor_qparams(float lo, float hi, float *scale, uint8_t *zp) {
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    float s = (hi - lo) / 255.0f;
    if (!(s >= 1e-30f)) { /* an all-zero tensor: any scale will do */
        *scale = 1.0f / 255.0f;
        *zp = 0;
        return;
    }
    float z = rintf(-lo / s);
    *scale = s;
    *zp = (uint8_t)(z < 0 ? 0 : z > 255 ? 255 : z);
}

/* ================================================================== */
/* Calibration                                                         */
/* ================================================================== */

enum { HIST_BINS = 4096 };

typedef struct {
    float lo, hi;      /* pass 1: minimum and maximum */
    uint64_t *hist;    /* pass 2: HIST_BINS counts over [lo, hi] */
    uint64_t count;
} range_stat;

static void stat_add(range_stat *r, const float *v, size_t n, int pass) {
    if (pass == 1) {
        for (size_t i = 0; i < n; i++) {
            r->lo = v[i] < r->lo ? v[i] : r->lo;
            r->hi = v[i] > r->hi ? v[i] : r->hi;
        }
        return;
    }
    float width = r->hi - r->lo;
    if (!(width > 0)) return;
    float per = (float)HIST_BINS / width;
    for (size_t i = 0; i < n; i++) {
        int b = (int)((v[i] - r->lo) * per);
        b = b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b;
        r->hist[b]++;
    }
    r->count += n;
}

/* The value below which a fraction q of the histogram's values lie (the
 * upper edge of the bin where the count is reached). */
static float stat_quantile(const range_stat *r, double q) {
    uint64_t want = (uint64_t)ceil(q * (double)r->count), seen = 0;
    float width = (r->hi - r->lo) / HIST_BINS;
    for (int b = 0; b < HIST_BINS; b++) {
        seen += r->hist[b];
        if (seen >= want && seen > 0) return r->lo + width * (float)(b + 1);
    }
    return r->hi;
}

int nn_quantize_calibrate(nn_net *net, const float *x, int n, double percentile,
                          int threads, nn_error *err) {
    if (n < 1) return nn_fail(err, "calibration needs at least one image");
    if (!(percentile > 50.0 && percentile <= 100.0))
        return nn_fail(err, "calibration percentile %g is outside (50, 100]",
                       percentile);
    enum { CHUNK = 64 };
    const int L = net->n_layers;
    size_t wide = NN_PIXELS, scratch_n = 0;
    for (int i = 0; i < L; i++) {
        size_t o = nn_shape_size(net->layers[i].out);
        if (o > wide) wide = o;
        size_t s = layer_scratch_floats(&net->layers[i], CHUNK, threads);
        if (s > scratch_n) scratch_n = s;
    }
    float *mem = malloc((2 * wide * CHUNK + scratch_n) * sizeof(float));
    range_stat *st = calloc((size_t)L + 1, sizeof *st);
    if (!mem || !st) {
        free(mem);
        free(st);
        return nn_fail(err, "out of memory for calibration");
    }
    for (int i = 0; i <= L; i++) {
        st[i].lo = INFINITY;
        st[i].hi = -INFINITY;
    }
    float *buf[2] = {mem, mem + wide * CHUNK};
    float *scratch = mem + 2 * wide * CHUNK;
    int rc = 0;
    int passes = percentile < 100.0 ? 2 : 1;
    for (int pass = 1; pass <= passes && rc == 0; pass++) {
        if (pass == 2)
            for (int i = 0; i <= L && rc == 0; i++) {
                st[i].hist = calloc(HIST_BINS, sizeof(uint64_t));
                if (!st[i].hist) rc = nn_fail(err, "out of memory for calibration");
            }
        for (int start = 0; start < n && rc == 0; start += CHUNK) {
            int B = n - start < CHUNK ? n - start : CHUNK;
            const float *in = x + (size_t)start * NN_PIXELS;
            stat_add(&st[0], in, (size_t)B * NN_PIXELS, pass);
            for (int i = 0; i < L; i++) {
                const nn_layer *l = &net->layers[i];
                float *out = buf[i & 1];
                layer_forward(l, net->params, in, out, B, NULL, NULL, NULL,
                              scratch, threads);
                stat_add(&st[i + 1], out, (size_t)B * nn_shape_size(l->out),
                         pass);
                in = out;
            }
        }
    }
    if (rc == 0) {
        char text[sizeof net->meta.int8_act_ranges];
        size_t used = 0;
        for (int i = 0; i <= L; i++) {
            float lo = st[i].lo, hi = st[i].hi;
            if (!isfinite(lo) || !isfinite(hi)) {
                rc = nn_fail(err, "calibration: layer %d gives values that "
                             "are not finite", i);
                break;
            }
            if (passes == 2 && st[i].count > 0 && hi > lo) {
                float qhi = stat_quantile(&st[i], percentile / 100.0);
                float qlo = stat_quantile(&st[i], 1.0 - percentile / 100.0);
                hi = qhi < hi ? qhi : hi;
                lo = qlo > lo ? qlo : lo;
                if (lo > hi) lo = hi;
            }
            int k = snprintf(text + used, sizeof text - used, "%s%.9g %.9g",
                             i ? " " : "", (double)lo, (double)hi);
            if (k < 0 || (size_t)k >= sizeof text - used) {
                rc = nn_fail(err, "calibration: too many layers to store");
                break;
            }
            used += (size_t)k;
        }
        if (rc == 0) memcpy(net->meta.int8_act_ranges, text, used + 1);
    }
    for (int i = 0; i <= L; i++) free(st[i].hist);
    free(st);
    free(mem);
    return rc;
}

/* ================================================================== */
/* Building the int8 network                                           */
/* ================================================================== */

void nn_qnet_free(nn_qnet *q) {
    if (!q) return;
    for (int i = 0; i < q->n_ops; i++) {
        free(q->ops[i].wp);
        free(q->ops[i].bias);
        free(q->ops[i].mult);
        free(q->ops[i].edge_fix);
    }
    free(q);
}

const char *nn_qnet_kernel(const nn_qnet *q) { return q->kern->name; }

/* The reduction columns [k0, k1) that output row oy of a conv multiplies.
 * A row at the top or bottom edge (stride 1) reads patch rows ky that lie
 * wholly on the padding, which holds in_zp only: with o->skip_edges they
 * are left out, in whole groups of 4 columns (K x C columns a patch row;
 * a group that also holds real taps stays), and edge_fix adds back what
 * they sum to; with o->pooled, only those on the padding for both rows
 * of the pair that is pooled together. Every other row, and every row
 * without skip_edges: all Kp columns. */
static inline __attribute__((always_inline)) void
patch_cols(const qop *o, int oy, int *k0, int *k1) {
    *k0 = 0;
    *k1 = o->Kp;
    if (!o->skip_edges) return;
    const int run = o->k * o->c;
    /* real rows [ky0, ky1); a pooled conv's rows 2p and 2p + 1 share one
     * tile (conv_rows), so both take the columns either needs */
    const int top = o->pooled ? oy & ~1 : oy, bottom = o->pooled ? oy | 1 : oy;
    const int ky0 = o->pad - bottom, ky1 = o->h + o->pad - top;
    if (ky0 > 0) *k0 = ky0 * run / 4 * 4;
    if (ky1 < o->k) *k1 = (ky1 * run + 3) / 4 * 4;
    if (*k1 <= *k0) { /* no real row (pad >= k, never built): all */
        *k0 = 0;
        *k1 = o->Kp;
    }
}

/* The order in which a hidden layer stores its output channels. The
 * VNNI kernel skips every group of 4 reduction columns that is 0 in all
 * rows of a tile, and a group is 4 channels of one pixel: on the
 * background of a digit (most of its pixels) it is 0 only when all four
 * channels are. So the channels that are 0 on a blank input come first,
 * the others after, each in the net's order: on MNIST test this took the
 * zero groups of the served CNN's second conv from 28% to 37% (2x2
 * tiles). No sum changes: each int32 adds the same products.
 *
 * bg_in (o->c): the input channels' real values on a blank image (0
 * everywhere), away from the borders, in the net's order; bg (N): the
 * same for the outputs, after the fused ReLU; perm[n] (N): where output
 * n is stored. The logits keep their order. */
static void blank_first_order(const qop *o, const nn_layer *l,
                              const float *params, float s_out, bool relu,
                              const float *bg_in, float *bg, int *perm) {
    const float *W = params + l->weights, *b = params + l->biases;
    const int N = o->N, K = o->K, per_channel = K / o->c;
    for (int n = 0; n < N; n++) {
        double v = b[n];
        for (int k = 0; k < K; k++)
            v += (double)W[(size_t)n * K + k] * bg_in[k / per_channel];
        bg[n] = relu && v < 0 ? 0.0f : (float)v;
    }
    int next = 0;
    for (int pass = 0; pass < 2; pass++) /* the zeros, then the rest */
        for (int n = 0; n < N; n++) {
            double y = rint((double)bg[n] / s_out) + o->out_zp;
            bool zero = !o->logits && y <= 0 && o->qmin == 0;
            if (zero == (pass == 0)) perm[n] = next++;
        }
}

/* Quantises a dense or conv layer's weights into o (o's shapes, zero
 * points and the kind set): W (N, K) float32 in the net's order, per
 * output channel, reordered to the NHWC order of the int8 input, its
 * channels placed by perm_in (the previous layer's blank_first_order),
 * output n stored at perm_out[n]. */
static int quantise_weights(qop *o, const nn_layer *l, const float *params,
                            float s_in, float s_out, const int8_kernel *kern,
                            const int *perm_in, const int *perm_out,
                            int index, nn_error *err) {
    const float *W = params + l->weights, *b = params + l->biases;
    const int N = o->N, K = o->K, Kp = o->Kp;
    int8_t *wq = calloc((size_t)N * Kp, 1);
    o->bias = malloc((size_t)N * sizeof(int32_t));
    o->mult = malloc((size_t)N * sizeof(float));
    size_t packed = kern->packed_bytes(N, Kp);
    o->wp = malloc(packed ? packed : 1);
    const size_t np = round_up((size_t)N, 16);
    o->skip_edges = o->kind == Q_CONV && o->pad > 0 && !kern->full_patches;
    if (o->skip_edges && o->in_zp > 0) o->edge_fix = calloc((size_t)o->oh * np, sizeof(int32_t));
    if (!wq || !o->bias || !o->mult || !o->wp ||
        (o->skip_edges && o->in_zp > 0 && !o->edge_fix)) {
        free(wq);
        return nn_fail(err, "out of memory for the int8 weights of layer %d",
                       index + 1);
    }
    for (int n0 = 0; n0 < N; n0++) {
        const float *wn = W + (size_t)n0 * K;
        const int n = perm_out[n0];
        float amax = 0;
        for (int k = 0; k < K; k++) amax = fabsf(wn[k]) > amax ? fabsf(wn[k]) : amax;
        float s_w = amax > 0 ? amax / 127.0f : 1.0f;
        int8_t *dst = wq + (size_t)n * Kp;
        int64_t wsum = 0;
        for (int k = 0; k < K; k++) {
            /* k counts in the net's order: dense (C, H, W) flattened,
             * conv (C, kh, kw). Its NHWC position: */
            int pos;
            if (o->kind == Q_DENSE) {
                int hw = o->h * o->w, c = k / hw, yx = k % hw;
                pos = yx * o->c + perm_in[c];
            } else {
                int kk = o->k * o->k, c = k / kk, yx = k % kk;
                pos = yx * o->c + perm_in[c];
            }
            float v = rintf(wn[k] / s_w);
            int q = (int)(v < -127 ? -127 : v > 127 ? 127 : v);
            dst[pos] = (int8_t)q;
            wsum += q;
        }
        double bq = rint((double)b[n0] / ((double)s_in * (double)s_w));
        if (isnan(bq)) bq = 0; /* 0 / 0 when a scale underflows */
        if (bq > Q_MAX_BIAS) bq = Q_MAX_BIAS;
        if (bq < -Q_MAX_BIAS) bq = -Q_MAX_BIAS;
        o->bias[n] = (int32_t)((int64_t)bq - (int64_t)o->in_zp * wsum);
        o->mult[n] = o->logits ? s_in * s_w : s_in * s_w / s_out;
        for (int oy = 0; o->edge_fix && oy < o->oh; oy++) {
            int k0, k1;
            patch_cols(o, oy, &k0, &k1);
            int32_t skipped = 0; /* |.| <= Kp x 127: no overflow */
            for (int k = 0; k < Kp; k++) skipped += k < k0 || k >= k1 ? dst[k] : 0;
            o->edge_fix[(size_t)oy * np + n] = (int32_t)o->in_zp * skipped;
        }
    }
    kern->pack(wq, N, Kp, o->wp);
    free(wq);
    return 0;
}

nn_qnet *int8_qnet_create_with(const nn_net *net, const char *kernel,
                               nn_error *err) {
    const int8_kernel *kern =
        kernel ? int8_kernel_find(kernel) : int8_kernel_best();
    if (!kern) {
        nn_fail(err, "int8 kernel '%s' is unknown or this CPU cannot run it",
                kernel);
        return NULL;
    }
    float lo[NN_MAX_LAYERS + 1], hi[NN_MAX_LAYERS + 1];
    if (parse_ranges(net, lo, hi, err)) return NULL;
    nn_qnet *q = calloc(1, sizeof *q);
    if (!q) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    q->kern = kern;
    q->temperature = net->meta.temperature > 0 ? (float)net->meta.temperature : 1.0f;
    tensor_qparams(lo[0], hi[0], &q->in_scale, &q->in_zp);
    float s = q->in_scale; /* the current tensor's scale and zero point */
    uint8_t zp = q->in_zp;
    /* its channels' values on a blank image and their stored order
     * (blank_first_order): the input is one channel, blank = 0 */
    float *bg = calloc(1, sizeof *bg);
    int *perm = calloc(1, sizeof *perm);
    if (!bg || !perm) {
        nn_fail(err, "out of memory");
        goto fail;
    }
    size_t widest = NN_PIXELS, col = 0, acc = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        if (l->kind == NN_DROPOUT) continue; /* identity when serving */
        if (l->kind == NN_SIGMOID || l->kind == NN_TANH) {
            nn_fail(err, "layer %d is %s, which has no int8 kernel (dense, "
                    "conv, relu, pool and dropout do)", i + 1,
                    l->kind == NN_SIGMOID ? "sigmoid" : "tanh");
            goto fail;
        }
        qop *o = &q->ops[q->n_ops++];
        o->c = l->in.c, o->h = l->in.h, o->w = l->in.w;
        o->oc = l->out.c, o->oh = l->out.h, o->ow = l->out.w;
        o->in_zp = zp;
        if (l->kind == NN_MAXPOOL || l->kind == NN_RELU) {
            o->kind = l->kind == NN_MAXPOOL ? Q_POOL : Q_RELU;
            o->k = l->kernel;
            o->out_zp = zp;
            for (int c = 0; o->kind == Q_RELU && c < o->c; c++)
                bg[c] = bg[c] > 0 ? bg[c] : 0;
            continue;
        }
        o->kind = l->kind == NN_CONV ? Q_CONV : Q_DENSE;
        o->k = l->kernel;
        o->pad = l->pad;
        o->N = l->size;
        o->K = (int)(l->n_weights / (size_t)l->size);
        o->Kp = (int)round_up((size_t)o->K, 4);
        if (o->K > Q_MAX_K) {
            nn_fail(err, "layer %d sums %d products per output; int8 "
                    "inference allows %d", i + 1, o->K, Q_MAX_K);
            goto fail;
        }
        o->logits = i == net->n_layers - 1;
        float s_out = 1.0f;
        bool fused = false;
        if (!o->logits) {
            /* A ReLU right after is fused: the output takes its range
             * (lo >= 0, so the zero point is 0 and clamping at it is the
             * ReLU). Entry j + 1 is layer j's output. */
            fused = i + 1 < net->n_layers && net->layers[i + 1].kind == NN_RELU;
            int src = fused ? i + 2 : i + 1;
            tensor_qparams(lo[src], hi[src], &s_out, &o->out_zp);
            o->qmin = fused ? o->out_zp : 0;
        }
        /* A 2x2 pooling right after a conv (and its ReLU) is fused into
         * it: the max is taken over the int32 sums, and requantising,
         * which is monotonic (its multipliers are positive), then runs
         * on a quarter of the outputs. Same bytes as pooling afterwards. */
        const int after = i + 1 + (fused ? 1 : 0);
        o->pooled = o->kind == Q_CONV && after < net->n_layers &&
                    net->layers[after].kind == NN_MAXPOOL &&
                    net->layers[after].kernel == 2;
        float *bg_out = malloc((size_t)o->N * sizeof *bg_out);
        int *perm_out = malloc((size_t)o->N * sizeof *perm_out);
        if (!bg_out || !perm_out) {
            free(bg_out);
            free(perm_out);
            nn_fail(err, "out of memory");
            goto fail;
        }
        blank_first_order(o, l, net->params, s_out, fused, bg, bg_out, perm_out);
        int rc = quantise_weights(o, l, net->params, s, s_out, kern, perm, perm_out, i, err);
        free(bg);
        free(perm);
        bg = bg_out;
        perm = perm_out;
        if (rc) goto fail;
        if (fused) i++; /* the ReLU has no op of its own */
        if (o->pooled) i++;
        size_t np = round_up((size_t)o->N, 16);
        if (o->kind == Q_CONV) {
            size_t pb = (size_t)(o->h + 2 * o->pad) * (o->w + 2 * o->pad) * o->c;
            if (pb > q->pad_bytes) q->pad_bytes = pb;
            if ((size_t)Q_ROWS * o->Kp > col) col = (size_t)Q_ROWS * o->Kp;
            /* a pooled conv keeps two output rows of sums */
            size_t rows = o->pooled ? (size_t)2 * o->ow : Q_ROWS;
            if (rows < Q_ROWS) rows = Q_ROWS;
            if (rows * np > acc) acc = rows * np;
        } else if ((size_t)Q_CHUNK * np > acc) {
            acc = (size_t)Q_CHUNK * np;
        }
        if ((size_t)o->Kp > widest) widest = (size_t)o->Kp;
        s = s_out;
        zp = o->out_zp;
    }
    for (int i = 0; i < q->n_ops; i++) {
        size_t o = (size_t)q->ops[i].oc * q->ops[i].oh * q->ops[i].ow;
        if (o > widest) widest = o;
    }
    q->act_stride = round_up(widest, 64);
    q->col_bytes = col;
    q->acc_ints = acc;
    free(bg);
    free(perm);
    return q;
fail:
    free(bg);
    free(perm);
    nn_qnet_free(q);
    return NULL;
}

nn_qnet *nn_qnet_create(const nn_net *net, nn_error *err) {
    return int8_qnet_create_with(net, NULL, err);
}

bool nn_int8_preferred(void) { return strcmp(int8_kernel_best()->name, "vnni") == 0; }

/* ================================================================== */
/* Forward                                                             */
/* ================================================================== */

/* Rounds y (|y| < 2^22) to the nearest integer, ties to even, in float:
 * adding 1.5 * 2^23 leaves no fraction bits. Plain IEEE additions, so
 * every compiler and vector width gives the same result. */
static inline __attribute__((always_inline)) float round_even(float y) {
    return (y + 12582912.0f) - 12582912.0f;
}

/* The fused epilogue of one output row, columns [n0, n1): acc int32 ->
 * out uint8 (both indexed by column). Shared by every kernel, so the
 * answers do not depend on which ran. */
static inline __attribute__((always_inline)) void
requantise_row(const qop *o, const int32_t *restrict acc, uint8_t *restrict out,
               int n0, int n1) {
    /* Locals, so that the uint8_t stores (which may alias anything) do
     * not force reloads and the loop vectorises. */
    const int32_t *restrict bias = o->bias;
    const float *restrict mult = o->mult;
    const float lo = (float)o->qmin - (float)o->out_zp;
    const float hi = 255.0f - (float)o->out_zp;
    const int32_t zp = o->out_zp;
    for (int n = n0; n < n1; n++) {
        float y = (float)(acc[n] + bias[n]) * mult[n];
        y = y > lo ? y : lo;
        y = y < hi ? y : hi;
        out[n] = (uint8_t)((int32_t)round_even(y) + zp);
    }
}

static inline __attribute__((always_inline)) void
logits_row(const qop *o, const int32_t *restrict acc, float *restrict out,
           int n0, int n1) {
    for (int n = n0; n < n1; n++)
        out[n] = (float)(acc[n] + o->bias[n]) * o->mult[n];
}

/* The input of a conv with its border of zero points (real 0), so that
 * every patch row below is one contiguous run: in (H, W, C) -> padded
 * (H + 2 pad, W + 2 pad, C) bytes. Returns what conv_rows reads. */
static inline __attribute__((always_inline)) const uint8_t *
pad_input(const qop *o, const uint8_t *in, uint8_t *padded) {
    if (o->pad == 0) return in;
    const int C = o->c, pw = o->w + 2 * o->pad, ph = o->h + 2 * o->pad;
    memset(padded, o->in_zp, (size_t)ph * pw * C);
    for (int y = 0; y < o->h; y++)
        memcpy(padded + ((size_t)(y + o->pad) * pw + o->pad) * C,
               in + (size_t)y * o->w * C, (size_t)o->w * C);
    return padded;
}

/* One im2col row: the patch of output (oy, ox) of a conv in (ky, kx, c)
 * order, from src (pad_input's), then zeros up to Kp (their weights are
 * 0 too): dst (Kp) bytes. */
static inline __attribute__((always_inline)) void
patch_row(const qop *o, const uint8_t *src, int oy, int ox, uint8_t *dst) {
    const int C = o->c, run = o->k * C;
    const size_t line = (size_t)(o->w + 2 * o->pad) * C;
    const uint8_t *s = src + (size_t)oy * line + (size_t)ox * C;
    /* Runs are copied in whole blocks of 8 (the first layer's 5 bytes)
     * or 64 bytes (one register each; a libc call per run cost more than
     * the copy): the extra bytes land where the next run, the zero tail
     * or the next row is written afterwards, or in the buffers' 64 bytes
     * of slack. */
    for (int ky = 0; ky < o->k; ky++, dst += run, s += line) {
        if (run <= 8) memcpy(dst, s, 8);
        else
            for (int off = 0; off < run; off += 64) memcpy(dst + off, s + off, 64);
    }
    /* the zero tail (Kp - K < 4 bytes): one 8-byte store, which may spill
     * into the next row before it is written */
    memset(dst, 0, 8);
}

/* The int32 sums of output positions [m_from, m_to) of one sample's
 * convolution: src (pad_input's) -> acc (m_to - m_from, np), through col
 * in blocks of at most Q_ROWS positions that share one column range
 * (patch_cols): an edge row alone, or rows that need every column. */
static inline __attribute__((always_inline)) void
conv_sums(const nn_qnet *q, const qop *o, const uint8_t *src, uint8_t *col,
          int32_t *acc, int m_from, int m_to) {
    const int OW = o->ow;
    const size_t np = round_up((size_t)o->N, 16);
    /* the output rows [full_from, full_to) have no patch row on the padding */
    const int full_from = o->skip_edges ? o->pad : 0;
    const int full_to = o->skip_edges ? o->h + o->pad - o->k + 1 : o->oh;
    for (int m0 = m_from, m1; m0 < m_to; m0 = m1) {
        /* the block's first position; the rest follow without a division
         * each (one per row cost 1.5-2.7% of the int8 forward pass) */
        const int y = m0 / OW;
        int oy = y, ox = m0 % OW, k0, k1; /* oy, ox: row r's, below */
        patch_cols(o, y, &k0, &k1);
        const bool edge = y < full_from || y >= full_to;
        m1 = m_to - m0 < Q_ROWS ? m_to : m0 + Q_ROWS;
        const int stop = (edge ? y + 1 : full_to) * OW;
        if (m1 > stop) m1 = stop;
        const int rows = m1 - m0;
        int32_t *acc0 = acc + (size_t)(m0 - m_from) * np;
        /* im2col: row r is the patch of output m0 + r */
        for (int r = 0; r < rows; r++) {
            patch_row(o, src, oy, ox, col + (size_t)r * o->Kp);
            if (++ox == OW) {
                ox = 0;
                oy++;
            }
        }
        q->kern->gemm(col, (size_t)o->Kp, rows, o->wp, o->N, o->Kp, k0, k1, acc0, np);
        if (edge && o->edge_fix) {
            const int32_t *restrict fix = o->edge_fix + (size_t)y * np;
            for (int r = 0; r < rows; r++)
                for (size_t n = 0; n < np; n++) acc0[(size_t)r * np + n] += fix[n];
        }
    }
}

/* Output rows [y_from, y_to) of one sample's convolution, NHWC: src ->
 * out (OH, OW, N), or with o->pooled out (OH / 2, OW / 2, N) and the
 * rows those of the pooled output. */
static inline __attribute__((always_inline)) void
conv_rows(const nn_qnet *q, const qop *o, const uint8_t *src, uint8_t *out,
          uint8_t *col, int32_t *acc, int y_from, int y_to) {
    const size_t np = round_up((size_t)o->N, 16);
    const int N = o->N, OW = o->ow;
    if (!o->pooled) {
        /* Q_ROWS positions at a time, whatever the rows */
        for (int m0 = y_from * OW; m0 < y_to * OW; m0 += Q_ROWS) {
            int m1 = m0 + Q_ROWS < y_to * OW ? m0 + Q_ROWS : y_to * OW;
            conv_sums(q, o, src, col, acc, m0, m1);
            for (int m = m0; m < m1; m++)
                requantise_row(o, acc + (size_t)(m - m0) * np, out + (size_t)m * N, 0, N);
        }
        return;
    }
    /* Pooled: im2col row 4 (px - p0) + 2 dy + dx is conv output
     * (2 py + dy, 2 px + dx), so each pooling window is 4 consecutive
     * rows, one row tile of the kernels: the groups of columns that are 0
     * in all four (the kernels skip those) are the window's, which on a
     * digit's background are most of them. */
    const int PW = OW / 2;
    for (int py = y_from; py < y_to; py++) {
        int k0, k1; /* the same for both rows (patch_cols) */
        patch_cols(o, 2 * py, &k0, &k1);
        const int32_t *fix = o->edge_fix ? o->edge_fix + (size_t)2 * py * np : NULL;
        for (int p0 = 0, p1; p0 < PW; p0 = p1) {
            p1 = PW - p0 < Q_ROWS / 4 ? PW : p0 + Q_ROWS / 4;
            for (int r = 0; r < 4 * (p1 - p0); r++)
                patch_row(o, src, 2 * py + (r >> 1 & 1), 2 * (p0 + r / 4) + (r & 1),
                          col + (size_t)r * o->Kp);
            q->kern->gemm(col, (size_t)o->Kp, 4 * (p1 - p0), o->wp, N, o->Kp, k0, k1, acc, np);
            for (int px = p0; px < p1; px++) {
                int32_t *restrict a = acc + (size_t)4 * (px - p0) * np; /* the max lands here */
                const int32_t *restrict b = a + np, *restrict c = b + np, *restrict d = c + np;
                for (int n = 0; n < N; n++) {
                    int32_t top = a[n] > b[n] ? a[n] : b[n];
                    int32_t bot = c[n] > d[n] ? c[n] : d[n];
                    /* both rows skip the same padding: one fix for all 4 */
                    a[n] = (top > bot ? top : bot) + (fix ? fix[n] : 0);
                }
                requantise_row(o, a, out + ((size_t)py * PW + px) * N, 0, N);
            }
        }
    }
}

/* k x k max-pooling, stride k, of one sample: (H, W, C) -> (OH, OW, C). */
static inline __attribute__((always_inline)) void pool_sample(const qop *o, const uint8_t *in, uint8_t *out) {
    const int C = o->c, k = o->k;
    /* (a 2x2 pooling right after a conv, the served models' case, never
     * gets here: the conv does it, see conv_rows) */
    for (int oy = 0; oy < o->oh; oy++)
        for (int ox = 0; ox < o->ow; ox++) {
            uint8_t *d = out + ((size_t)oy * o->ow + ox) * C;
            memset(d, 0, (size_t)C);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    const uint8_t *s =
                        in + ((size_t)(oy * k + ky) * o->w + ox * k + kx) * C;
                    for (int c = 0; c < C; c++) d[c] = s[c] > d[c] ? s[c] : d[c];
                }
        }
}

/* Everything one call of the forward pass shares between its threads. */
typedef struct {
    const nn_qnet *q;
    const float *x;  /* (batch, 784) */
    float *logits;   /* (batch, outputs) */
    int batch, chunk;
    uint8_t *act[2]; /* (chunk, act_stride) each */
    uint8_t *scratch; /* per thread: col, padded, acc */
    size_t col_n, pad_n, thread_bytes;
} fwd_call;

/* The forward pass of thread tid of a team of `team`, written once and
 * compiled below for three vector widths (the kernels' own: SSE2, AVX2,
 * AVX-512) so that requantisation, im2col and pooling use the same
 * registers as the GEMM. Only exact IEEE operations (int32 to float, one
 * multiply, min, max, the two additions of round_even, float to int32 of
 * an integral value) are involved, so every width gives the same bytes;
 * the tests compare them.
 *
 * Threads. Every output value is computed by one thread in the same order
 * whatever the team, so the bytes do not depend on it either. A conv is
 * shared out by samples when they divide evenly between the threads, else
 * each sample's output rows are split (each thread pads the input
 * again: a few KiB); a dense layer by blocks of 16 outputs (its weights
 * are what limits it at batch 1, and each thread then streams half);
 * quantising the input, pooling and ReLU by samples. The barriers are
 * orphaned (this runs inside int8_qnet_logits' parallel region, or alone). */
static inline __attribute__((always_inline)) void
forward_part(const fwd_call *c, int tid, int team) {
    const nn_qnet *q = c->q;
    const size_t as = q->act_stride;
    uint8_t *col = c->scratch + (size_t)tid * c->thread_bytes;
    uint8_t *padded = col + c->col_n;
    int32_t *acc = (int32_t *)(void *)(padded + c->pad_n);
    /* dense layers: one (chunk, np) block that the threads fill by columns */
    int32_t *acc_shared = (int32_t *)(void *)(c->scratch + c->col_n + c->pad_n);

    const float inv = 1.0f / q->in_scale;
    const float lo = -(float)q->in_zp, hi = 255.0f - (float)q->in_zp;
    for (int start = 0; start < c->batch; start += c->chunk) {
        const int B = c->batch - start < c->chunk ? c->batch - start : c->chunk;
        int b0, b1;
        nn_share(B, tid, team, 1, &b0, &b1);
        /* The input, quantised: NaN goes to the zero point's low end. */
        for (int b = b0; b < b1; b++) {
            const float *xs = c->x + (size_t)(start + b) * NN_PIXELS;
            uint8_t *d = c->act[0] + (size_t)b * as;
            for (int i = 0; i < NN_PIXELS; i++) {
                float y = xs[i] * inv;
                y = y >= lo ? y : lo;
                y = y < hi ? y : hi;
                d[i] = (uint8_t)((int32_t)round_even(y) + q->in_zp);
            }
        }
#pragma omp barrier
        int cur = 0;
        for (int i = 0; i < q->n_ops; i++) {
            const qop *o = &q->ops[i];
            uint8_t *in = c->act[cur], *out = c->act[cur ^ 1];
            size_t in_n = (size_t)o->c * o->h * o->w;
            switch (o->kind) {
            case Q_CONV: {
                /* units: (sample, slice of its output rows) */
                const int rows = o->pooled ? o->oh / 2 : o->oh;
                const int slices = B % team == 0 ? 1 : team;
                int u0, u1;
                nn_share(B * slices, tid, team, 1, &u0, &u1);
                for (int u = u0; u < u1; u++) {
                    int b = u / slices, y0, y1;
                    nn_share(rows, u % slices, slices, 1, &y0, &y1);
                    if (y0 == y1) continue;
                    const uint8_t *src = pad_input(o, in + (size_t)b * as, padded);
                    conv_rows(q, o, src, out + (size_t)b * as, col, acc, y0, y1);
                }
                break;
            }
            case Q_POOL:
                for (int b = b0; b < b1; b++)
                    pool_sample(o, in + (size_t)b * as, out + (size_t)b * as);
                break;
            case Q_RELU: /* in place: max with the zero point (real 0) */
                for (int b = b0; b < b1; b++) {
                    uint8_t *v = in + (size_t)b * as;
                    for (size_t k = 0; k < in_n; k++)
                        v[k] = v[k] > o->in_zp ? v[k] : o->in_zp;
                }
                break;
            case Q_DENSE: {
                const size_t np = round_up((size_t)o->N, 16);
                for (int b = b0; b < b1; b++) /* the reduction's padding */
                    memset(in + (size_t)b * as + o->K, 0, (size_t)(o->Kp - o->K));
#pragma omp barrier
                int n0, n1;
                nn_share(o->N, tid, team, 16, &n0, &n1);
                if (n0 < n1) {
                    /* Every kernel packs W in blocks of 16 outputs, so
                     * output n0 (a multiple of 16) starts at the packed
                     * size of n0 outputs. */
                    const uint8_t *wp =
                        (const uint8_t *)o->wp + q->kern->packed_bytes(n0, o->Kp);
                    q->kern->gemm(in, as, B, wp, n1 - n0, o->Kp, 0, o->Kp,
                                  acc_shared + n0, np);
                }
                for (int b = 0; n0 < n1 && b < B; b++) {
                    if (o->logits)
                        logits_row(o, acc_shared + (size_t)b * np,
                                   c->logits + (size_t)(start + b) * o->N, n0, n1);
                    else
                        requantise_row(o, acc_shared + (size_t)b * np,
                                       out + (size_t)b * as, n0, n1);
                }
                break;
            }
            }
            if (o->kind != Q_RELU) cur ^= 1; /* ReLU works in place */
#pragma omp barrier
        }
    }
}

typedef void (*forward_fn)(const fwd_call *c, int tid, int team);

static void forward_plain(const fwd_call *c, int tid, int team) {
    forward_part(c, tid, team);
}
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) static void
forward_avx2(const fwd_call *c, int tid, int team) {
    forward_part(c, tid, team);
}
__attribute__((target("avx512f,avx512bw"))) static void
forward_avx512(const fwd_call *c, int tid, int team) {
    forward_part(c, tid, team);
}
#endif

int int8_qnet_logits(const nn_qnet *q, const float *x, int batch, float *logits,
                     int threads, nn_error *err) {
    if (batch < 1) return 0;
    forward_fn fn = forward_plain;
#if defined(__x86_64__) || defined(__i386__)
    /* The kernel's presence says the CPU has these units. */
    if (strcmp(q->kern->name, "vnni") == 0) fn = forward_avx512;
    if (strcmp(q->kern->name, "avx2") == 0) fn = forward_avx2;
#endif
    if (threads < 1) threads = 1;
    fwd_call c = {.q = q, .x = x, .logits = logits, .batch = batch};
    c.chunk = batch < Q_CHUNK ? batch : Q_CHUNK;
    const size_t as = q->act_stride;
    /* + 64: the slack that conv_rows' 8-byte copies may read (from the
     * activations or the padded input) and write (past col). */
    c.col_n = round_up(q->col_bytes, 64) + 64;
    c.pad_n = round_up(q->pad_bytes, 64) + 64;
    c.thread_bytes = c.col_n + c.pad_n + round_up(q->acc_ints * sizeof(int32_t), 64);
    uint8_t *mem = malloc(2 * as * (size_t)c.chunk + c.thread_bytes * (size_t)threads + 64);
    if (!mem) return nn_fail(err, "out of memory for int8 inference scratch");
    c.act[0] = mem;
    c.act[1] = mem + as * (size_t)c.chunk;
    c.scratch = c.act[1] + as * (size_t)c.chunk;
    if (nn_serial(threads)) {
        fn(&c, 0, 1); /* its orphaned barriers have no team: they return */
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
        fn(&c, omp_get_thread_num(), omp_get_num_threads());
#endif
    }
    free(mem);
    return 0;
}

int nn_qnet_outputs(const nn_qnet *q) { return q->ops[q->n_ops - 1].N; }

int nn_qnet_predict(const nn_qnet *q, const float *x, int B, float *probs,
                    int threads, nn_error *err) {
    /* the ten digit probabilities, as nn_predict gives them: an 11th "not a
     * digit" logit left out, the model's temperature applied */
    const int n_out = nn_qnet_outputs(q);
    float *logits = malloc((size_t)(B > 0 ? B : 1) * n_out * sizeof *logits);
    if (!logits) return nn_fail(err, "out of memory");
    int rc = int8_qnet_logits(q, x, B, logits, threads, err);
    if (rc == 0) digit_probs(probs, logits, B, n_out, q->temperature);
    free(logits);
    return rc;
}

int nn_qnet_classify(const nn_qnet *q, const nn_net *net, const float *x, int B,
                     nn_answer *out, int threads, nn_error *err) {
    const int n_out = nn_qnet_outputs(q);
    float *logits = malloc((size_t)(B > 0 ? B : 1) * n_out * sizeof *logits);
    if (!logits) return nn_fail(err, "out of memory");
    int rc = int8_qnet_logits(q, x, B, logits, threads, err);
    for (int b = 0; rc == 0 && b < B; b++)
        nn_verdict_from_logits(&net->meta, logits + (size_t)b * n_out, n_out, &out[b]);
    free(logits);
    return rc;
}

static int predict_int8(const void *ctx, const float *x, int B, float *probs, nn_error *err) {
    return nn_qnet_predict(ctx, x, B, probs, 1, err);
}

double nn_qnet_evaluate(const nn_qnet *q, const nn_dataset *d,
                        int confusion[NN_CLASSES][NN_CLASSES], nn_error *err) {
    return evaluate_with(predict_int8, q, d, confusion, err);
}
