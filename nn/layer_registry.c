/*
 * layer_registry.c: the one list of layer kinds. Each kind's descriptor
 * (name, token grammar, shapes, parameters, scratch, forward, backward,
 * inference kernel) is defined beside its kernels; this file only lists
 * them. The order is the order of the grammar's error message
 * ("convKxC, poolK, denseN, dropoutP, relu, sigmoid, tanh").
 */

#include <ctype.h>

#include "layers.h"

static const layer_kind_desc *const registry[] = {
    &layer_conv_desc,    &layer_maxpool_desc, &layer_dense_desc,
    &layer_dropout_desc, &layer_relu_desc,    &layer_sigmoid_desc,
    &layer_tanh_desc,
};
enum { N_KINDS = sizeof registry / sizeof registry[0] };

const layer_kind_desc *const *layer_kinds(int *n) {
    *n = N_KINDS;
    return registry;
}

const layer_kind_desc *layer_kind_find(int kind) {
    for (int i = 0; i < N_KINDS; i++)
        if ((int)registry[i]->kind == kind) return registry[i];
    return NULL;
}

int layer_read_int(const char **p, int limit, int *out) {
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

int layer_bad_size(const nn_layer *l, int size, int index, nn_error *err) {
    const layer_kind_desc *d = layer_kind_find(l->kind);
    return nn_fail(err, "impossible dimensions: layer %d (%s) has size %d",
                   index, d ? d->name : "unknown", size);
}

act_forward_fn layer_activation_fn(const nn_layer *l) {
    const layer_kind_desc *d = layer_kind_find(l->kind);
    return d && (d->flags & LAYER_ACTIVATION) ? d->elementwise : NULL;
}
