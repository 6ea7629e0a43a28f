/*
 * network.c: a network is a list of layers over one parameter array.
 *
 * This file turns an architecture string into layers (the grammar is in
 * docs/architecture.md), computes every layer's shapes and parameter
 * offsets, initialises the parameters, dispatches one layer's forward or
 * backward to its kernel, and runs the inference forward pass.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "nn.h"

/* Bounds that keep every size computation far from overflow and refuse
 * networks no one would serve. */
#define MAX_DENSE 65536
#define MAX_CHANNELS 4096
#define MAX_KERNEL 7
#define MAX_PARAMS ((size_t)1 << 28) /* 1 GiB of float32 */

/* ================================================================== */
/* Shapes and offsets                                                  */
/* ================================================================== */

static const char *kind_name(nn_layer_kind k) {
    switch (k) {
    case NN_DENSE: return "dense";
    case NN_CONV: return "conv";
    case NN_MAXPOOL: return "pool";
    case NN_RELU: return "relu";
    case NN_SIGMOID: return "sigmoid";
    case NN_TANH: return "tanh";
    case NN_DROPOUT: return "dropout";
    }
    return "unknown";
}

/* See layers.h: everything nn_net_build does but allocate the parameters,
 * so the model loader can compare the parameter count with its file before
 * allocating up to MAX_PARAMS floats. */
int nn_net_layout(nn_net *net, const nn_layer *src, int n_layers,
                  nn_error *err) {
    memset(net, 0, sizeof *net);
    if (n_layers < 1 || n_layers > NN_MAX_LAYERS)
        return nn_fail(err, "impossible dimensions: %d layers (1 to %d allowed)",
                       n_layers, NN_MAX_LAYERS);
    nn_shape s = {1, NN_SIDE, NN_SIDE};
    size_t off = 0;
    for (int i = 0; i < n_layers; i++) {
        nn_layer *l = &net->layers[i];
        memset(l, 0, sizeof *l);
        l->kind = src[i].kind;
        l->in = s;
        switch (l->kind) {
        case NN_DENSE: {
            l->size = src[i].size;
            if (l->size < 1 || l->size > MAX_DENSE) goto bad_size;
            l->out = (nn_shape){l->size, 1, 1};
            l->n_weights = (size_t)l->size * nn_shape_size(s);
            l->n_biases = (size_t)l->size;
            break;
        }
        case NN_CONV: {
            l->size = src[i].size;
            l->kernel = src[i].kernel;
            l->pad = src[i].pad;
            if (l->size < 1 || l->size > MAX_CHANNELS) goto bad_size;
            if (l->kernel < 1 || l->kernel > MAX_KERNEL) {
                nn_fail(err, "impossible dimensions: layer %d: kernel %d "
                        "(1 to %d allowed)", i + 1, l->kernel, MAX_KERNEL);
                goto fail;
            }
            if (l->pad < 0 || l->pad >= l->kernel) {
                nn_fail(err, "impossible dimensions: layer %d: padding %d "
                        "with kernel %d", i + 1, l->pad, l->kernel);
                goto fail;
            }
            int oh = s.h + 2 * l->pad - l->kernel + 1;
            int ow = s.w + 2 * l->pad - l->kernel + 1;
            if (oh < 1 || ow < 1) {
                nn_fail(err, "impossible dimensions: layer %d: a %dx%d kernel "
                        "does not fit a %dx%d input", i + 1, l->kernel,
                        l->kernel, s.h, s.w);
                goto fail;
            }
            l->out = (nn_shape){l->size, oh, ow};
            l->n_weights = (size_t)l->size * s.c * l->kernel * l->kernel;
            l->n_biases = (size_t)l->size;
            break;
        }
        case NN_MAXPOOL:
            l->kernel = src[i].kernel;
            if (l->kernel < 2 || l->kernel > s.h || l->kernel > s.w) {
                nn_fail(err, "impossible dimensions: layer %d: %dx%d pooling "
                        "of a %dx%d input", i + 1, l->kernel, l->kernel, s.h,
                        s.w);
                goto fail;
            }
            l->out = (nn_shape){s.c, s.h / l->kernel, s.w / l->kernel};
            break;
        case NN_DROPOUT:
            l->rate = src[i].rate;
            if (!(l->rate >= 0.0f && l->rate < 1.0f)) {
                nn_fail(err, "impossible dimensions: layer %d: dropout rate "
                        "must be in [0, 1)", i + 1);
                goto fail;
            }
            l->out = s;
            break;
        case NN_RELU:
        case NN_SIGMOID:
        case NN_TANH:
            l->out = s;
            break;
        default:
            nn_fail(err, "unknown layer kind %d at layer %d", (int)l->kind,
                    i + 1);
            goto fail;
        }
        l->weights = off;
        l->biases = off + l->n_weights;
        off += l->n_weights + l->n_biases;
        if (off > MAX_PARAMS) {
            nn_fail(err, "impossible dimensions: more than %zu parameters",
                    MAX_PARAMS);
            goto fail;
        }
        s = l->out;
        continue;
    bad_size:
        nn_fail(err, "impossible dimensions: layer %d (%s) has size %d",
                i + 1, kind_name(l->kind), src[i].size);
        goto fail;
    }
    const nn_layer *last = &net->layers[n_layers - 1];
    /* 10 digits, or 10 and "not a digit" (nn/verdict.c). */
    if (last->kind != NN_DENSE ||
        (last->size != NN_CLASSES && last->size != NN_CLASSES + 1)) {
        nn_fail(err, "impossible dimensions: the last layer must be dense "
                "with %d or %d outputs", NN_CLASSES, NN_CLASSES + 1);
        goto fail;
    }
    net->n_layers = n_layers;
    net->n_params = off;
    net->meta.test_accuracy = net->meta.val_accuracy = -1;
    net->meta.train_seconds = -1;
    net->meta.created_unix = -1;
    net->meta.temperature = 1;
    net->meta.reject_p = net->meta.ambiguous_margin = -1;
    net->meta.reject_energy = INFINITY; /* off */
    return 0;
fail:
    return -1;
}

int nn_net_alloc_params(nn_net *net, nn_error *err) {
    free(net->params);
    net->params = calloc(net->n_params, sizeof(float));
    if (!net->params)
        return nn_fail(err, "out of memory for %zu parameters", net->n_params);
    return 0;
}

nn_net *nn_net_build(const nn_layer *src, int n_layers, nn_error *err) {
    nn_net *net = calloc(1, sizeof *net);
    if (!net) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    if (nn_net_layout(net, src, n_layers, err) != 0 ||
        nn_net_alloc_params(net, err) != 0) {
        nn_net_free(net);
        return NULL;
    }
    return net;
}

void nn_net_free(nn_net *net) {
    if (!net) return;
    free(net->params);
    free(net);
}

/* ================================================================== */
/* The architecture string                                             */
/* ================================================================== */

static int parse_activation(const char *s, nn_layer_kind *k) {
    if (strcmp(s, "relu") == 0) *k = NN_RELU;
    else if (strcmp(s, "sigmoid") == 0) *k = NN_SIGMOID;
    else if (strcmp(s, "tanh") == 0) *k = NN_TANH;
    else return -1;
    return 0;
}

/* Reads a whole decimal number at *p (1..limit); advances *p. */
static int read_int(const char **p, int limit, int *out) {
    if (!isdigit((unsigned char)**p)) return -1;
    long v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (**p - '0');
        if (v > limit) return -1;
        (*p)++;
    }
    *out = (int)v;
    return 0;
}

/* One token of the comma form into *l. Returns 0 or -1. */
static int parse_token(const char *tok, nn_layer *l) {
    const char *p = tok;
    memset(l, 0, sizeof *l);
    if (parse_activation(tok, &l->kind) == 0) return 0;
    if (strncmp(p, "conv", 4) == 0) {
        p += 4;
        l->kind = NN_CONV;
        if (read_int(&p, MAX_KERNEL, &l->kernel) || *p++ != 'x' ||
            read_int(&p, MAX_CHANNELS, &l->size))
            return -1;
        l->pad = l->kernel / 2; /* "same" for odd kernels */
        if (*p == ':') {
            p++;
            if (strcmp(p, "valid") == 0) l->pad = 0;
            else if (strcmp(p, "same") != 0) return -1;
            p += strlen(p);
        }
        return *p ? -1 : 0;
    }
    if (strncmp(p, "pool", 4) == 0) {
        p += 4;
        l->kind = NN_MAXPOOL;
        if (read_int(&p, NN_SIDE, &l->kernel)) return -1;
        return *p ? -1 : 0;
    }
    if (strncmp(p, "dense", 5) == 0) {
        p += 5;
        l->kind = NN_DENSE;
        if (read_int(&p, MAX_DENSE, &l->size)) return -1;
        return *p ? -1 : 0;
    }
    if (strncmp(p, "dropout", 7) == 0) {
        char *end;
        l->kind = NN_DROPOUT;
        l->rate = strtof(p + 7, &end);
        return (end == p + 7 || *end) ? -1 : 0;
    }
    return -1;
}

nn_net *nn_net_create(const char *spec, const char *activation,
                      nn_error *err) {
    nn_layer_kind act;
    if (parse_activation(activation ? activation : "relu", &act)) {
        nn_fail(err, "unknown activation '%s' (relu, sigmoid or tanh)",
                activation);
        return NULL;
    }
    nn_layer raw[NN_MAX_LAYERS];
    int n = 0;
    char buf[1024];
    if (!spec || strlen(spec) >= sizeof buf || !*spec) {
        nn_fail(err, "architecture string is empty or too long");
        return NULL;
    }
    strcpy(buf, spec);

    if (strchr(buf, '-')) {
        /* MLP form: "784-256-128-10", the first number the input size. */
        char *save = NULL;
        int first = 1;
        for (char *t = strtok_r(buf, "-", &save); t;
             t = strtok_r(NULL, "-", &save)) {
            const char *p = t;
            int v;
            if (read_int(&p, MAX_DENSE, &v) || *p || v < 1) {
                nn_fail(err, "architecture '%s': '%s' is not a layer size",
                        spec, t);
                return NULL;
            }
            if (first) {
                if (v != NN_PIXELS) {
                    nn_fail(err, "architecture '%s': the input size must be "
                            "%d (28x28)", spec, NN_PIXELS);
                    return NULL;
                }
                first = 0;
                continue;
            }
            if (n >= NN_MAX_LAYERS) goto too_many;
            raw[n] = (nn_layer){.kind = NN_DENSE, .size = v};
            n++;
        }
    } else {
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*t)) t++;
            size_t len = strlen(t);
            while (len && isspace((unsigned char)t[len - 1])) t[--len] = 0;
            if (strcmp(t, "flatten") == 0) continue; /* always implicit */
            if (n >= NN_MAX_LAYERS) goto too_many;
            if (parse_token(t, &raw[n])) {
                nn_fail(err, "architecture '%s': cannot read '%s' (expected "
                        "convKxC, poolK, denseN, dropoutP, relu, sigmoid, "
                        "tanh)", spec, t);
                return NULL;
            }
            n++;
        }
    }

    /* Insert the default activation after convolutions and hidden dense
     * layers, unless the string names activations itself. */
    int named = 0;
    for (int i = 0; i < n; i++)
        named |= raw[i].kind == NN_RELU || raw[i].kind == NN_SIGMOID ||
                 raw[i].kind == NN_TANH;
    nn_layer full[NN_MAX_LAYERS];
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m >= NN_MAX_LAYERS) goto too_many;
        full[m++] = raw[i];
        int weighted = raw[i].kind == NN_DENSE || raw[i].kind == NN_CONV;
        if (!named && weighted && i != n - 1) {
            if (m >= NN_MAX_LAYERS) goto too_many;
            full[m++] = (nn_layer){.kind = act};
        }
    }
    if (m == 0) {
        nn_fail(err, "architecture '%s' has no layers", spec);
        return NULL;
    }
    return nn_net_build(full, m, err);
too_many:
    nn_fail(err, "architecture '%s' has more than %d layers", spec,
            NN_MAX_LAYERS);
    return NULL;
}

int nn_net_describe(const nn_net *net, char *buf, size_t size) {
    /* 32 layers of at most ~20 characters each fit easily. */
    char all[NN_MAX_LAYERS * 48] = "";
    size_t used = 0;
    int total = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        char tok[48];
        switch (l->kind) {
        case NN_DENSE: snprintf(tok, sizeof tok, "dense%d", l->size); break;
        case NN_CONV:
            snprintf(tok, sizeof tok, "conv%dx%d%s", l->kernel, l->size,
                     l->pad == 0 && l->kernel > 1 ? ":valid"
                     : l->pad == l->kernel / 2   ? ""
                                                 : ":custom");
            break;
        case NN_MAXPOOL: snprintf(tok, sizeof tok, "pool%d", l->kernel); break;
        case NN_DROPOUT: snprintf(tok, sizeof tok, "dropout%g", l->rate); break;
        default: snprintf(tok, sizeof tok, "%s", kind_name(l->kind)); break;
        }
        int k = snprintf(all + used, sizeof all - used, "%s%s", i ? "," : "", tok);
        total += k;
        used += (size_t)k;
        if (used >= sizeof all) used = sizeof all - 1;
    }
    if (buf && size) snprintf(buf, size, "%s", all);
    return total;
}

/* ================================================================== */
/* Initialisation                                                      */
/* ================================================================== */

void nn_net_init(nn_net *net, nn_rng *rng) {
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        if (l->kind != NN_DENSE && l->kind != NN_CONV) continue;
        size_t fan_in = l->kind == NN_DENSE
                            ? nn_shape_size(l->in)
                            : (size_t)l->in.c * l->kernel * l->kernel;
        size_t fan_out = l->kind == NN_DENSE
                             ? (size_t)l->size
                             : (size_t)l->size * l->kernel * l->kernel;
        /* The activation this layer feeds decides the scale: He keeps
         * the variance through ReLU, Glorot through sigmoid/tanh and
         * into the softmax. Pooling and dropout are looked through. */
        nn_layer_kind next = NN_DENSE;
        for (int j = i + 1; j < net->n_layers; j++) {
            nn_layer_kind k = net->layers[j].kind;
            if (k == NN_MAXPOOL || k == NN_DROPOUT) continue;
            next = k;
            break;
        }
        float *w = net->params + l->weights;
        if (next == NN_RELU) {
            float sd = sqrtf(2.0f / (float)fan_in);
            for (size_t k = 0; k < l->n_weights; k++)
                w[k] = sd * nn_rng_normal(rng);
        } else {
            float lim = sqrtf(6.0f / (float)(fan_in + fan_out));
            for (size_t k = 0; k < l->n_weights; k++)
                w[k] = lim * (2.0f * nn_rng_uniform(rng) - 1.0f);
        }
        memset(net->params + l->biases, 0, l->n_biases * sizeof(float));
    }
}

/* ================================================================== */
/* One layer, whatever its kind                                        */
/* ================================================================== */

size_t layer_scratch_floats(const nn_layer *l, int threads) {
    if (l->kind != NN_CONV) return 0;
    return conv_scratch_floats(l->in.c, l->in.h, l->in.w, l->size, l->kernel,
                               l->pad, threads);
}

void layer_forward(const nn_layer *l, const float *params, const float *in,
                   float *out, int B, int32_t *argmax, float *mask,
                   nn_rng *rng, float *scratch, int threads) {
    size_t n = (size_t)B * nn_shape_size(l->out);
    switch (l->kind) {
    case NN_DENSE:
        dense_forward(out, in, params + l->weights, params + l->biases, B,
                      (int)nn_shape_size(l->in), l->size, threads);
        break;
    case NN_CONV:
        conv_forward(out, in, params + l->weights, params + l->biases, B,
                     l->in.c, l->in.h, l->in.w, l->size, l->kernel, l->pad,
                     scratch, threads);
        break;
    case NN_MAXPOOL:
        maxpool_forward(out, argmax, in, B, l->in.c, l->in.h, l->in.w,
                        l->kernel);
        break;
    case NN_RELU: relu_forward(out, in, n); break;
    case NN_SIGMOID: sigmoid_forward(out, in, n); break;
    case NN_TANH: tanh_forward(out, in, n); break;
    case NN_DROPOUT:
        if (rng && l->rate > 0) {
            dropout_forward(out, mask, in, n, l->rate, rng);
        } else {
            /* Inference: identity. A mask still set to ones lets the
             * backward pass run (the gradient checks use this). */
            memcpy(out, in, n * sizeof(float));
            if (mask)
                for (size_t k = 0; k < n; k++) mask[k] = 1.0f;
        }
        break;
    }
}

void layer_backward(const nn_layer *l, const float *params, float *grads,
                    const float *in, const float *out, const float *dout,
                    float *din, int B, const int32_t *argmax,
                    const float *mask, float *scratch, int threads) {
    size_t n = (size_t)B * nn_shape_size(l->out);
    switch (l->kind) {
    case NN_DENSE:
        dense_backward(din, grads + l->weights, grads + l->biases, dout, in,
                       params + l->weights, B, (int)nn_shape_size(l->in),
                       l->size, threads);
        break;
    case NN_CONV:
        conv_backward(din, grads + l->weights, grads + l->biases, dout, in,
                      params + l->weights, B, l->in.c, l->in.h, l->in.w,
                      l->size, l->kernel, l->pad, scratch, threads);
        break;
    case NN_MAXPOOL:
        if (din)
            maxpool_backward(din, dout, argmax, B, l->in.c, l->in.h, l->in.w,
                             l->kernel);
        break;
    case NN_RELU:
        if (din) relu_backward(din, dout, out, n);
        break;
    case NN_SIGMOID:
        if (din) sigmoid_backward(din, dout, out, n);
        break;
    case NN_TANH:
        if (din) tanh_backward(din, dout, out, n);
        break;
    case NN_DROPOUT:
        if (din) {
            if (l->rate > 0) dropout_backward(din, dout, mask, n);
            else memcpy(din, dout, n * sizeof(float));
        }
        break;
    }
}

/* ================================================================== */
/* Inference                                                           */
/* ================================================================== */

/* Largest per-sample activation of any layer, input included. */
static size_t widest(const nn_net *net) {
    size_t w = NN_PIXELS;
    for (int i = 0; i < net->n_layers; i++) {
        size_t o = nn_shape_size(net->layers[i].out);
        if (o > w) w = o;
    }
    return w;
}

int nn_net_outputs(const nn_net *net) {
    return net->layers[net->n_layers - 1].size;
}

/* The forward pass of nn_predict (raw false: digit probabilities (B,10))
 * and nn_logits (raw true: logits (B, outputs)). */
static int forward(const nn_net *net, const float *x, int batch, float *res,
                   bool raw, int threads, nn_error *err) {
    /* Work in chunks so memory stays bounded for a whole data set. */
    enum { CHUNK = 256 };
    int chunk = batch < CHUNK ? batch : CHUNK;
    if (chunk < 1) return 0;
    size_t wide = widest(net), scratch_n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        size_t s = layer_scratch_floats(&net->layers[i], threads);
        if (s > scratch_n) scratch_n = s;
    }
    /* Two ping-pong activation buffers and the conv scratch, per call:
     * the net itself is never written, so threads may share it. */
    float *mem = malloc((2 * wide * (size_t)chunk + scratch_n) * sizeof(float));
    if (!mem) return nn_fail(err, "out of memory for inference scratch");
    float *buf[2] = {mem, mem + wide * (size_t)chunk};
    float *scratch = mem + 2 * wide * (size_t)chunk;

    for (int start = 0; start < batch; start += chunk) {
        int B = batch - start < chunk ? batch - start : chunk;
        const float *in = x + (size_t)start * NN_PIXELS;
        for (int i = 0; i < net->n_layers; i++) {
            float *out = buf[i & 1];
            layer_forward(&net->layers[i], net->params, in, out, B, NULL,
                          NULL, NULL, scratch, threads);
            in = out;
        }
        int n_out = nn_net_outputs(net);
        if (raw)
            memcpy(res + (size_t)start * n_out, in,
                   (size_t)B * n_out * sizeof(float));
        else
            digit_probs(res + (size_t)start * NN_CLASSES, in, B, n_out,
                        (float)net->meta.temperature);
    }
    free(mem);
    return 0;
}

int nn_predict(const nn_net *net, const float *x, int batch, float *probs,
               int threads, nn_error *err) {
    return forward(net, x, batch, probs, false, threads, err);
}

int nn_logits(const nn_net *net, const float *x, int batch, float *logits,
              int threads, nn_error *err) {
    return forward(net, x, batch, logits, true, threads, err);
}
