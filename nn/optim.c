/* optim.c: learning-rate schedules, L2 weight decay and the optimiser
 * step (SGD, momentum, Adam), each one loop over the flat parameter,
 * gradient and moment arrays. */
#include <math.h>

#include "optim.h"
#include "simd.h"

double optim_lr(const nn_train_config *cfg, int epoch, long step,
                           long total_steps) {
    switch (cfg->schedule) {
    case NN_LR_STEP:
        return cfg->lr * pow(cfg->lr_step_gamma,
                             (double)(epoch / (cfg->lr_step_epochs > 0
                                                   ? cfg->lr_step_epochs
                                                   : 1)));
    case NN_LR_COSINE:
        /* Half a cosine from lr down to lr/100 over the whole run. */
        return cfg->lr * (0.01 + 0.99 * 0.5 *
                                     (1 + cos(3.141592653589793 * (double)step /
                                              (double)total_steps)));
    default:
        return cfg->lr;
    }
}

/* L2 weight decay adds wd * w to the gradient of every weight (biases
 * are left alone, as usual). */
void optim_weight_decay(const nn_net *net, float *grads, float wd) {
    if (wd == 0) return;
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        const float *w = net->params + l->weights;
        float *g = grads + l->weights;
        for (size_t k = 0; k < l->n_weights; k++) g[k] += wd * w[k];
    }
}

/* The loops below are threaded and vectorised; under the sanitizers
 * (NN_SANITIZED, simd.h) clang cannot vectorise the instrumented loops and
 * warns that it did not, so there they are only threaded. */
#if defined(NN_SANITIZED)
#define OPTIM_LOOP _Pragma("omp parallel for num_threads(threads) schedule(static)")
#else
#define OPTIM_LOOP                                                             \
    _Pragma("omp parallel for simd num_threads(threads) schedule(static)")
#endif

/* One step over all parameters. step counts from 1 (Adam's bias
 * correction needs it). */
void optim_step(const nn_train_config *cfg, float *p, const float *g,
                float *m, float *v, size_t n, float lr, long step) {
    /* Element-wise, so any split over threads gives the same bits; small
     * arrays stay on one thread, where starting a team costs more. */
    int threads = cfg->threads > 1 && n >= ((size_t)1 << 16) ? cfg->threads : 1;
    switch (cfg->optimizer) {
    case NN_SGD:
        OPTIM_LOOP
        for (size_t i = 0; i < n; i++) p[i] -= lr * g[i];
        break;
    case NN_MOMENTUM: {
        float mu = cfg->momentum;
        OPTIM_LOOP
        for (size_t i = 0; i < n; i++) {
            m[i] = mu * m[i] + g[i];
            p[i] -= lr * m[i];
        }
        break;
    }
    case NN_ADAM: {
        float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
        /* Bias corrections folded into the step size and epsilon. */
        double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
        float a = (float)(lr * sqrt(c2) / c1);
        float e = (float)(eps * sqrt(c2));
        OPTIM_LOOP
        for (size_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            p[i] -= a * m[i] / (sqrtf(v[i]) + e);
        }
        break;
    }
    }
}
