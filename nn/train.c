/*
 * train.c: mini-batch training and evaluation.
 *
 * One epoch: shuffle, then for each batch gather (and maybe distort) the
 * inputs, run every layer forward keeping its output, turn the logits into
 * softmax probabilities and the loss, run every layer backward (the chain
 * rule, one layer at a time, in matrix form), and let the optimiser move
 * the parameters. Parameters, gradients and optimiser moments are each one
 * array in the same layout, so the optimiser is one loop.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layers.h"
#include "nn.h"
#include "optim.h"

void nn_train_config_defaults(nn_train_config *cfg) {
    *cfg = (nn_train_config){
        .optimizer = NN_ADAM,
        .lr = 2e-3f, /* 1e-3 left a 1-epoch run at 95.0% on MNIST test, 2e-3 at 96.0-96.4% */
        .schedule = NN_LR_COSINE,
        .lr_step_gamma = 0.5f,
        .lr_step_epochs = 5,
        .momentum = 0.9f,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = 0,
        .batch = 128,
        .epochs = 15,
        .patience = 0,
        .augment = true,
        .threads = 2,
        .seed = 1,
    };
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ================================================================== */
/* Training state                                                      */
/* ================================================================== */

typedef struct {
    /* The net as training holds it: a copy of the caller's whose first
     * layer, when dense, is input-major (nn_layer.input_major), with its
     * own parameters net.params laid out to match; the caller's net gets
     * them back (net_layout) before each evaluation and at the end. */
    nn_net net;
    int B;                            /* largest batch */
    float *act[NN_MAX_LAYERS + 1];    /* act[0] input (B,784); act[i+1] output of layer i */
    int32_t *argmax[NN_MAX_LAYERS];   /* pooling layers only */
    float *mask[NN_MAX_LAYERS];       /* dropout layers only */
    float *grad_a, *grad_b;           /* ping-pong (B, widest) activation gradients */
    float *probs;                     /* (B,10) */
    uint8_t *labels;                  /* (B) */
    float *grads, *m, *v;             /* (n_params) each: gradient, moments */
    float *best;                      /* (n_params) weights of the best epoch */
    float *scratch;
    int *order;                       /* (n) sample order this epoch */
    /* Fusions (layers.h, forward_act and backward_act), per layer i:
     * act_by_prev[i]: activation layer i is applied by layer i-1's
     * forward, and act[i + 1] is act[i]; act_by_next[i]: activation layer
     * i's derivative is applied by layer i+1's backward. */
    bool act_by_prev[NN_MAX_LAYERS];
    bool act_by_next[NN_MAX_LAYERS];
    /* pool_fused[i]: layer i runs the relu i+1 and the pooling i+2 with
     * it (layers.h, pool_fused), in both directions. */
    bool pool_fused[NN_MAX_LAYERS];
} trainer;

void train_layout(const nn_net *net, nn_net *view, float *params) {
    *view = *net;
    memset(view->prepared, 0, sizeof view->prepared);
    view->params = params;
    memcpy(params, net->params, net->n_params * sizeof(float));
    nn_layer *l = &view->layers[0];
    if (net->n_layers > 0 && l->kind == NN_DENSE) {
        const int I = (int)nn_shape_size(l->in), O = l->size;
        l->input_major = true;
        dense_to_wt(net->params + l->weights, params + l->weights, I, O);
    }
}

void net_layout(const nn_net *view, const float *src, float *dst) {
    memcpy(dst, src, view->n_params * sizeof(float));
    for (int i = 0; i < view->n_layers; i++) {
        const nn_layer *l = &view->layers[i];
        if (l->input_major)
            dense_from_wt(src + l->weights, dst + l->weights,
                          (int)nn_shape_size(l->in), l->size);
    }
}

/* Which fusions the layers of net allow (trainer's act_by_prev and
 * act_by_next). */
static void plan_fusions(trainer *t, const nn_net *net) {
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        const layer_kind_desc *prev =
            i > 0 ? layer_kind_find((int)net->layers[i - 1].kind) : NULL;
        const layer_kind_desc *next =
            i + 1 < net->n_layers ? layer_kind_find((int)net->layers[i + 1].kind)
                                  : NULL;
        const bool act = layer_activation_fn(l) != NULL;
        t->act_by_prev[i] = act && prev && prev->forward_act;
        t->act_by_next[i] = act && next && next->backward_act &&
                            (next->backward_act_kinds >> l->kind & 1u);
    }
    /* the relu between must be fused both ways already: forward into this
     * layer, its derivative into the pooling */
    for (int i = 0; i + 2 < net->n_layers; i++) {
        const layer_kind_desc *d = layer_kind_find((int)net->layers[i].kind);
        t->pool_fused[i] = d->pool_fused && d->pool_fused(net, i) &&
                           t->act_by_prev[i + 1] && t->act_by_next[i + 1];
    }
}

static void trainer_free(trainer *t) {
    const nn_net *net = &t->net;
    for (int i = 0; i <= net->n_layers; i++)
        if (i == 0 || t->act[i] != t->act[i - 1]) free(t->act[i]);
    for (int i = 0; i < net->n_layers; i++) {
        free(t->argmax[i]);
        free(t->mask[i]);
    }
    free(t->grad_a);
    free(t->grad_b);
    free(t->probs);
    free(t->labels);
    free(t->net.params);
    free(t->grads);
    free(t->m);
    free(t->v);
    free(t->best);
    free(t->scratch);
    free(t->order);
}

/* Buffers for batches of up to B from a data set of n, and t->net. The
 * float buffers are nn_floats_alloc's: threads write their own units'
 * columns of activations, gradients and scratch, split at multiples of
 * 16 floats (nn_share_units), so that no cache line is written by both. */
static int trainer_init(trainer *t, const nn_net *net, int B, int n,
                        int threads, nn_error *err) {
    memset(t, 0, sizeof *t);
    float *params = nn_floats_alloc(net->n_params);
    if (!params) return nn_fail(err, "out of memory for training buffers");
    train_layout(net, &t->net, params);
    net = &t->net;
    t->B = B;
    plan_fusions(t, net);
    size_t wide = NN_PIXELS, scratch = 0;
    t->act[0] = nn_floats_alloc((size_t)B * NN_PIXELS);
    int ok = t->act[0] != NULL;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        size_t o = nn_shape_size(l->out);
        if (o > wide) wide = o;
        size_t s = layer_scratch_floats(l, B, threads);
        if (s > scratch) scratch = s;
        t->act[i + 1] = t->act_by_prev[i] ? t->act[i]
                                          : nn_floats_alloc((size_t)B * o);
        ok &= t->act[i + 1] != NULL;
        unsigned flags = layer_kind_find((int)l->kind)->flags;
        if (flags & LAYER_NEEDS_ARGMAX) {
            t->argmax[i] = malloc((size_t)B * o * sizeof(int32_t));
            ok &= t->argmax[i] != NULL;
        }
        if (flags & LAYER_NEEDS_MASK) {
            t->mask[i] = nn_floats_alloc((size_t)B * o);
            ok &= t->mask[i] != NULL;
        }
    }
    t->grad_a = nn_floats_alloc((size_t)B * wide);
    t->grad_b = nn_floats_alloc((size_t)B * wide);
    t->probs = nn_floats_alloc((size_t)B * nn_net_outputs(net));
    t->labels = malloc((size_t)B);
    t->grads = nn_floats_alloc(net->n_params);
    t->m = nn_floats_alloc(net->n_params);
    t->v = nn_floats_alloc(net->n_params);
    t->best = nn_floats_alloc(net->n_params);
    t->scratch = nn_floats_alloc(scratch);
    t->order = malloc((size_t)n * sizeof(int));
    ok &= t->grad_a && t->grad_b && t->probs && t->labels && t->grads &&
          t->m && t->v && t->best && t->scratch && t->order;
    if (!ok) {
        trainer_free(t);
        return nn_fail(err, "out of memory for training buffers");
    }
    return 0;
}

/* ================================================================== */
/* One batch                                                           */
/* ================================================================== */

/* Forward and backward of one batch already in t->act[0] / t->labels.
 * Leaves gradients in t->grads; returns the batch's summed loss and adds
 * the number of correct predictions to *correct. */
static double train_batch(trainer *t, int B, nn_rng *rng, int threads,
                          int *correct) {
    const nn_net *net = &t->net;
    const int n = net->n_layers;
    for (int i = 0; i < n; i++) {
        const nn_layer *l = &net->layers[i];
        if (t->act_by_prev[i]) continue; /* done by layer i-1 */
        if (t->pool_fused[i]) {
            layer_kind_find((int)l->kind)
                ->forward_pool(l, net->params, t->act[i], t->act[i + 3], t->argmax[i + 2],
                               B, layer_activation_fn(&net->layers[i + 1]), t->scratch,
                               threads);
            i += 2; /* the relu and the pooling are done */
            continue;
        }
        if (i + 1 < n && t->act_by_prev[i + 1])
            layer_kind_find((int)l->kind)
                ->forward_act(l, net->params, t->act[i], t->act[i + 1], B,
                              layer_activation_fn(&net->layers[i + 1]),
                              t->scratch, threads);
        else
            layer_forward(l, net->params, t->act[i], t->act[i + 1], B,
                          t->argmax[i], t->mask[i], rng, t->scratch, threads);
    }
    const float *logits = t->act[net->n_layers];
    const int K = nn_net_outputs(net); /* 10, or 11 with "not a digit" */
    softmax_forward(t->probs, logits, B, K);
    double loss = (double)xent_loss(logits, t->labels, B, K) * B;
    for (int r = 0; r < B; r++) {
        const float *p = t->probs + (size_t)r * K;
        int best = 0;
        for (int c = 1; c < K; c++) best = p[c] > p[best] ? c : best;
        *correct += best == t->labels[r];
    }

    float *dout = t->grad_a, *din = t->grad_b;
    softmax_xent_backward(dout, t->probs, t->labels, B, K);
    for (int i = n - 1; i >= 0; i--) {
        const nn_layer *l = &net->layers[i];
        if (t->act_by_next[i]) continue; /* done by layer i+1 */
        if (i >= 2 && t->pool_fused[i - 2]) {
            /* the pooling i, the relu i-1 and the layer i-2 */
            const nn_layer *w = &net->layers[i - 2];
            layer_kind_find((int)w->kind)
                ->backward_pool(w, net->params, t->grads, t->act[i - 2], t->act[i + 1],
                                dout, i - 2 > 0 ? din : NULL, B, t->argmax[i],
                                t->scratch, threads);
            float *tmp = dout;
            dout = din;
            din = tmp;
            i -= 2;
            continue;
        }
        const bool act_before = i > 0 && t->act_by_next[i - 1];
        /* The first layer's input gradient is never needed, nor that of
         * an activation first whose derivative this layer applies. */
        float *d = i > act_before ? din : NULL;
        if (act_before)
            layer_kind_find((int)l->kind)
                ->backward_act(l, net->params, t->grads, t->act[i],
                               t->act[i + 1], dout, d, B, t->argmax[i],
                               layer_kind_find((int)net->layers[i - 1].kind)
                                   ->derivative,
                               threads);
        else
            layer_backward(l, net->params, t->grads, t->act[i], t->act[i + 1],
                           dout, d, B, t->argmax[i], t->mask[i], t->scratch,
                           threads);
        float *tmp = dout;
        dout = din;
        din = tmp;
    }
    return loss;
}

double net_gradients(const nn_net *net, const float *x, const uint8_t *labels,
                     int B, float *grads, int threads, nn_error *err) {
    trainer t;
    if (trainer_init(&t, net, B, 1, threads, err)) return -1;
    memcpy(t.act[0], x, (size_t)B * NN_PIXELS * sizeof(float));
    memcpy(t.labels, labels, (size_t)B);
    int correct = 0;
    double loss = train_batch(&t, B, NULL, threads, &correct) / B;
    net_layout(&t.net, t.grads, grads);
    trainer_free(&t);
    return loss;
}

/* Copies (and with augmentation, distorts) the samples order[0..B) into
 * the input buffer. Each sample gets its own generator derived from the
 * seed, epoch and position, so the result does not depend on threads.
 * Plain copies are shared between threads too: random rows of a data set
 * far larger than the caches wait on memory (5% more MLP samples/s on two
 * threads than copying them on one). */
static void gather_batch(trainer *t, const nn_dataset *d, const int *order,
                         int B, bool augment, uint64_t seed, int epoch,
                         long first, int threads) {
    (void)threads;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < B; r++) {
        const float *src = d->images + (size_t)order[r] * NN_PIXELS;
        float *dst = t->act[0] + (size_t)r * NN_PIXELS;
        if (augment) {
            nn_rng g;
            nn_rng_seed(&g, seed ^ ((uint64_t)epoch << 40) ^
                                (uint64_t)(first + r) * 0x9e3779b97f4a7c15ULL);
            nn_augment_styles(src, dst, &g);
        } else {
            memcpy(dst, src, NN_PIXELS * sizeof(float));
        }
        t->labels[r] = d->labels[order[r]];
    }
}

/* ================================================================== */
/* The training loop                                                   */
/* ================================================================== */

int nn_train(nn_net *net, const nn_dataset *train, const nn_dataset *val,
             const nn_train_config *cfg, nn_progress_fn progress, void *user,
             nn_error *err) {
    if (cfg->batch < 1 || cfg->batch > 65536)
        return nn_fail(err, "batch size %d out of range (1 to 65536)",
                       cfg->batch);
    if (cfg->epochs < 1) return nn_fail(err, "epochs must be at least 1");
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return nn_fail(err, "learning rate must be a positive number");
    if (train->n < 1) return nn_fail(err, "the training set is empty");
    if (val && val->n < 1) val = NULL;
    int threads = cfg->threads > 0 ? cfg->threads : 1;

    int B = cfg->batch < train->n ? cfg->batch : train->n;
    trainer t;
    if (trainer_init(&t, net, B, train->n, threads, err)) return -1;

    nn_rng rng;
    nn_rng_seed(&rng, cfg->seed);
    for (int i = 0; i < train->n; i++) t.order[i] = i;

    long per_epoch = (train->n + B - 1) / B;
    long total_steps = per_epoch * cfg->epochs, step = 0;
    double start = now_seconds(), best_val = -1;
    int since_best = 0, stopped = 0;
    memcpy(t.best, net->params, net->n_params * sizeof(float));

    for (int epoch = 0; epoch < cfg->epochs && !stopped; epoch++) {
        /* Fisher-Yates with our own generator: same seed, same order. */
        for (int i = train->n - 1; i > 0; i--) {
            int j = (int)nn_rng_below(&rng, (uint32_t)i + 1);
            int tmp = t.order[i];
            t.order[i] = t.order[j];
            t.order[j] = tmp;
        }
        double epoch_start = now_seconds(), loss_sum = 0;
        int correct = 0, seen = 0;
        double lr = cfg->lr;
        for (int first = 0; first < train->n; first += B) {
            int b = train->n - first < B ? train->n - first : B;
            gather_batch(&t, train, t.order + first, b, cfg->augment,
                         cfg->seed, epoch, first, threads);
            loss_sum += train_batch(&t, b, &rng, threads, &correct);
            optim_weight_decay(&t.net, t.grads, cfg->weight_decay);
            lr = optim_lr(cfg, epoch, step, total_steps);
            step++;
            optim_step(cfg, &t.net, t.net.params, t.grads, t.m, t.v,
                       net->n_params, (float)lr, step);
            seen += b;
            if (progress) {
                double el = now_seconds() - epoch_start;
                nn_progress p = {
                    .event = NN_EVENT_BATCH, .epoch = epoch + 1,
                    .epochs = cfg->epochs, .seen = seen, .total = train->n,
                    .loss = loss_sum / seen,
                    .train_accuracy = (double)correct / seen,
                    .val_accuracy = -1,
                    .samples_per_sec = el > 0 ? seen / el : 0,
                    .elapsed = now_seconds() - start, .lr = lr,
                };
                if (progress(&p, user)) {
                    stopped = 1;
                    break;
                }
            }
        }
        double epoch_time = now_seconds() - epoch_start;
        net_layout(&t.net, t.net.params, net->params);
        double val_acc = -1;
        bool best = false;
        if (val) {
            val_acc = nn_evaluate(net, val, threads, NULL, err);
            if (val_acc < 0) {
                trainer_free(&t);
                return -1;
            }
            if (val_acc > best_val) {
                best_val = val_acc;
                best = true;
                since_best = 0;
                memcpy(t.best, net->params, net->n_params * sizeof(float));
            } else if (cfg->patience > 0 && ++since_best >= cfg->patience) {
                stopped = 1;
            }
        }
        if (progress && seen > 0) {
            nn_progress p = {
                .event = NN_EVENT_EPOCH, .epoch = epoch + 1,
                .epochs = cfg->epochs, .seen = seen, .total = train->n,
                .loss = loss_sum / seen,
                .train_accuracy = (double)correct / seen,
                .val_accuracy = val_acc,
                .samples_per_sec = epoch_time > 0 ? seen / epoch_time : 0,
                .elapsed = now_seconds() - start, .lr = lr, .best = best,
            };
            if (progress(&p, user)) stopped = 1;
        }
    }
    /* With a validation set, what we hand back is the best epoch. */
    if (val && best_val >= 0) {
        memcpy(net->params, t.best, net->n_params * sizeof(float));
        net->meta.val_accuracy = best_val;
    }
    net->meta.train_seconds = now_seconds() - start;
    trainer_free(&t);
    return 0;
}

/* ================================================================== */
/* Evaluation                                                          */
/* ================================================================== */

double evaluate_with(eval_predict_fn predict, const void *ctx, const nn_dataset *d,
                     int confusion[NN_CLASSES][NN_CLASSES], nn_error *err) {
    enum { CHUNK = 1000 };
    float *probs = malloc((size_t)CHUNK * NN_CLASSES * sizeof(float));
    if (!probs) return nn_fail(err, "out of memory");
    if (confusion) memset(confusion, 0, sizeof(int) * NN_CLASSES * NN_CLASSES);
    long right = 0;
    for (int first = 0; first < d->n; first += CHUNK) {
        int b = d->n - first < CHUNK ? d->n - first : CHUNK;
        if (predict(ctx, d->images + (size_t)first * NN_PIXELS, b, probs, err)) {
            free(probs);
            return -1;
        }
        for (int r = 0; r < b; r++) {
            const float *p = probs + (size_t)r * NN_CLASSES;
            int best = 0;
            for (int c = 1; c < NN_CLASSES; c++) best = p[c] > p[best] ? c : best;
            int truth = d->labels[first + r];
            right += best == truth;
            if (confusion) confusion[truth][best]++;
        }
    }
    free(probs);
    return d->n ? (double)right / d->n : 0;
}

typedef struct {
    const nn_net *net;
    int threads;
} fp32_ctx;

static int predict_fp32(const void *ctx, const float *x, int B, float *probs, nn_error *err) {
    const fp32_ctx *c = ctx;
    return nn_predict(c->net, x, B, probs, c->threads, err);
}

double nn_evaluate(const nn_net *net, const nn_dataset *d, int threads,
                   int confusion[NN_CLASSES][NN_CLASSES], nn_error *err) {
    fp32_ctx c = {net, threads};
    return evaluate_with(predict_fp32, &c, d, confusion, err);
}
