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

#define MAX_PARAMS ((size_t)1 << 28) /* 1 GiB of float32 */

/* ================================================================== */
/* Shapes and offsets                                                  */
/* ================================================================== */

/* See layers.h: everything nn_net_build does but allocate the parameters,
 * so the model loader can compare the parameter count with its file before
 * allocating up to MAX_PARAMS floats. Each kind checks its own fields and
 * computes its shapes (its descriptor's layout). */
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
        const layer_kind_desc *d = layer_kind_find((int)l->kind);
        if (!d)
            return nn_fail(err, "unknown layer kind %d at layer %d",
                           (int)l->kind, i + 1);
        if (d->layout(l, &src[i], i + 1, err)) return -1;
        l->weights = off;
        l->biases = off + l->n_weights;
        off += l->n_weights + l->n_biases;
        if (off > MAX_PARAMS)
            return nn_fail(err, "impossible dimensions: more than %zu "
                           "parameters", MAX_PARAMS);
        s = l->out;
    }
    const nn_layer *last = &net->layers[n_layers - 1];
    /* 10 digits, or 10 and "not a digit" (nn/verdict.c). */
    if (last->kind != NN_DENSE || (last->size != NN_CLASSES && last->size != NN_CLASSES + 1))
        return nn_fail(err, "impossible dimensions: the last layer must be dense "
                       "with %d or %d outputs", NN_CLASSES, NN_CLASSES + 1);
    net->n_layers = n_layers;
    net->n_params = off;
    net->meta.test_accuracy = net->meta.val_accuracy = -1;
    net->meta.train_seconds = -1;
    net->meta.created_unix = -1;
    net->meta.temperature = 1;
    net->meta.reject_p = net->meta.ambiguous_margin = -1;
    net->meta.reject_energy = INFINITY; /* off */
    return 0;
}

float *nn_floats_alloc(size_t n) {
    size_t bytes = n > 0 ? (n * sizeof(float) + 63) & ~(size_t)63 : 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

int nn_net_alloc_params(nn_net *net, nn_error *err) {
    free(net->params);
    /* Aligned: the inference kernels stream W in vectors (the MLP's
     * batch-1 forward pass took 20 us with calloc's 16-byte alignment).
     * Every tensor of our models starts at a multiple of 16 floats, so
     * this aligns all of them. */
    net->params = nn_floats_alloc(net->n_params);
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
    for (int i = 0; i < NN_MAX_LAYERS; i++) free(net->prepared[i]);
    free(net->params);
    free(net);
}

int nn_net_prepare(nn_net *net, nn_error *err) {
    for (int i = 0; i < net->n_layers; i++) {
        const layer_kind_desc *d = layer_kind_find((int)net->layers[i].kind);
        if (!d->infer_prepare || net->prepared[i]) continue;
        if (d->infer_prepare(net, i, &net->prepared[i]) != 0)
            return nn_fail(err, "out of memory preparing layer %d", i + 1);
    }
    return 0;
}

/* ================================================================== */
/* The architecture string                                             */
/* ================================================================== */

/* The activation kind named s, or -1. */
static int parse_activation(const char *s, nn_layer_kind *k) {
    int n;
    const layer_kind_desc *const *kinds = layer_kinds(&n);
    for (int i = 0; i < n; i++)
        if ((kinds[i]->flags & LAYER_ACTIVATION) &&
            strcmp(s, kinds[i]->name) == 0) {
            *k = kinds[i]->kind;
            return 0;
        }
    return -1;
}

/* One token of the comma form into *l: the kind whose name starts it
 * reads the rest. Returns 0 or -1. */
static int parse_token(const char *tok, nn_layer *l) {
    int n;
    const layer_kind_desc *const *kinds = layer_kinds(&n);
    memset(l, 0, sizeof *l);
    for (int i = 0; i < n; i++) {
        const layer_kind_desc *d = kinds[i];
        size_t len = strlen(d->name);
        if (strncmp(tok, d->name, len) != 0) continue;
        l->kind = d->kind;
        if (!d->parse) return tok[len] ? -1 : 0;
        return d->parse(tok + len, l);
    }
    return -1;
}

/* "convKxC, poolK, ..., tanh" (flags == 0) or "relu, sigmoid or tanh"
 * (flags == LAYER_ACTIVATION): the tokens the registry knows, for
 * messages. */
static void list_kinds(char *buf, size_t size, unsigned flags) {
    int n, count = 0, done = 0;
    const layer_kind_desc *const *kinds = layer_kinds(&n);
    for (int i = 0; i < n; i++) count += (kinds[i]->flags & flags) == flags;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < size; i++) {
        if ((kinds[i]->flags & flags) != flags) continue;
        const char *sep = done == 0 ? ""
                          : flags && done == count - 1 ? " or "
                                                       : ", ";
        int k = snprintf(buf + used, size - used, "%s%s", sep,
                         flags ? kinds[i]->name : kinds[i]->syntax);
        if (k < 0) break;
        used += (size_t)k;
        done++;
    }
}

nn_net *nn_net_create(const char *spec, const char *activation,
                      nn_error *err) {
    nn_layer_kind act;
    if (parse_activation(activation ? activation : "relu", &act)) {
        char names[128];
        list_kinds(names, sizeof names, LAYER_ACTIVATION);
        nn_fail(err, "unknown activation '%s' (%s)", activation, names);
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
            if (layer_read_int(&p, LAYER_MAX_DENSE, &v) || *p || v < 1) {
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
                char tokens[256];
                list_kinds(tokens, sizeof tokens, 0);
                nn_fail(err, "architecture '%s': cannot read '%s' (expected "
                        "%s)", spec, t, tokens);
                return NULL;
            }
            n++;
        }
    }

    /* Insert the default activation after convolutions and hidden dense
     * layers, unless the string names activations itself. */
    int named = 0;
    for (int i = 0; i < n; i++)
        named |= (layer_kind_find((int)raw[i].kind)->flags & LAYER_ACTIVATION) != 0;
    nn_layer full[NN_MAX_LAYERS];
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m >= NN_MAX_LAYERS) goto too_many;
        full[m++] = raw[i];
        int weighted =
            (layer_kind_find((int)raw[i].kind)->flags & LAYER_WEIGHTED) != 0;
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
        const layer_kind_desc *d = layer_kind_find((int)l->kind);
        if (d && d->describe) d->describe(l, tok, sizeof tok);
        else snprintf(tok, sizeof tok, "%s", d ? d->name : "unknown");
        int k = snprintf(all + used, sizeof all - used, "%s%s", i ? "," : "", tok);
        total += k;
        used += (size_t)k;
        if (used >= sizeof all) used = sizeof all - 1;
    }
    if (buf && size) snprintf(buf, size, "%s", all);
    return total;
}

uint64_t nn_net_macs(const nn_net *net) {
    uint64_t macs = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        /* a dense layer's output is (O, 1, 1): its weights once */
        macs += (uint64_t)l->n_weights * (uint64_t)l->out.h * (uint64_t)l->out.w;
    }
    return macs;
}

/* ================================================================== */
/* Initialisation                                                      */
/* ================================================================== */

void nn_net_init(nn_net *net, nn_rng *rng) {
    for (int i = 0; i < net->n_layers; i++) {
        nn_layer *l = &net->layers[i];
        const layer_kind_desc *d = layer_kind_find((int)l->kind);
        if (!d->fans) continue;
        size_t fan_in, fan_out;
        d->fans(l, &fan_in, &fan_out);
        /* The activation this layer feeds decides the scale: He keeps
         * the variance through ReLU, Glorot through sigmoid/tanh and
         * into the softmax. Pooling and dropout are looked through. */
        unsigned next = 0;
        for (int j = i + 1; j < net->n_layers; j++) {
            unsigned f = layer_kind_find((int)net->layers[j].kind)->flags;
            if (f & LAYER_INIT_SEE_THROUGH) continue;
            next = f;
            break;
        }
        float *w = net->params + l->weights;
        if (next & LAYER_HE_INIT) {
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

size_t layer_scratch_floats(const nn_layer *l, int B, int threads) {
    const layer_kind_desc *d = layer_kind_find((int)l->kind);
    return d->scratch_floats ? d->scratch_floats(l, B, threads) : 0;
}

void layer_forward(const nn_layer *l, const float *params, const float *in,
                   float *out, int B, int32_t *argmax, float *mask,
                   nn_rng *rng, float *scratch, int threads) {
    layer_kind_find((int)l->kind)->forward(l, params, in, out, B, argmax, mask,
                                           rng, scratch, threads);
}

void layer_backward(const nn_layer *l, const float *params, float *grads,
                    const float *in, const float *out, const float *dout,
                    float *din, int B, const int32_t *argmax,
                    const float *mask, float *scratch, int threads) {
    layer_kind_find((int)l->kind)->backward(l, params, grads, in, out, dout,
                                            din, B, argmax, mask, scratch,
                                            threads);
}

/* ================================================================== */
/* Inference                                                           */
/* ================================================================== */

/* The layers one inference step runs from layers[i]: its kind's kernel
 * may fuse the ones after it. */
static int infer_span(const nn_net *net, int i) {
    const layer_kind_desc *d = layer_kind_find((int)net->layers[i].kind);
    return d->infer ? d->infer_span(net, i) : 1;
}

/* Largest per-sample activation inference writes, input included: fused
 * layers' outputs (a convolution's map before its pooling) never are. */
static size_t widest(const nn_net *net) {
    size_t w = NN_PIXELS;
    for (int i = 0; i < net->n_layers; i += infer_span(net, i)) {
        size_t o = nn_shape_size(net->layers[i + infer_span(net, i) - 1].out);
        if (o > w) w = o;
    }
    return w;
}

/* Scratch floats the inference of layers[i] needs (its kernel's, else
 * its forward's). */
static size_t infer_scratch(const nn_net *net, int i, int B, int threads) {
    const nn_layer *l = &net->layers[i];
    const layer_kind_desc *d = layer_kind_find((int)l->kind);
    if (d->infer)
        return d->infer_scratch_floats
                   ? d->infer_scratch_floats(net, i, B, threads)
                   : 0;
    return d->scratch_floats ? d->scratch_floats(l, B, threads) : 0;
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
        size_t s = infer_scratch(net, i, chunk, threads);
        if (s > scratch_n) scratch_n = s;
    }
    /* Two ping-pong activation buffers and the kernels' scratch, per call:
     * the net itself is never written, so threads may share it. */
    float *mem = malloc((2 * wide * (size_t)chunk + scratch_n) * sizeof(float));
    if (!mem) return nn_fail(err, "out of memory for inference scratch");
    float *buf[2] = {mem, mem + wide * (size_t)chunk};
    float *scratch = mem + 2 * wide * (size_t)chunk;

    for (int start = 0; start < batch; start += chunk) {
        int B = batch - start < chunk ? batch - start : chunk;
        const float *in = x + (size_t)start * NN_PIXELS;
        int which = 0;
        /* Each kind's inference kernel runs its layer and may fuse the
         * ones after it (conv + activation + pooling, dense +
         * activation); kinds without one run their training forward. */
        for (int i = 0; i < net->n_layers;) {
            const nn_layer *l = &net->layers[i];
            const layer_kind_desc *d = layer_kind_find((int)l->kind);
            float *out = buf[which];
            which ^= 1;
            if (d->infer) {
                int n = d->infer(net, i, in, out, B, scratch, threads);
                i += n;
            } else {
                d->forward(l, net->params, in, out, B, NULL, NULL, NULL,
                           scratch, threads);
                i++;
            }
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
