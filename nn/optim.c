/* optim.c: learning-rate schedules, L2 weight decay and the optimiser
 * step (SGD, momentum, Adam), each one loop over the flat parameter,
 * gradient and moment arrays. */
#include <limits.h>
#include <math.h>

#include "layers.h" /* nn_serial, and omp.h with OpenMP */
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

/* ---- the step, per instruction-set variant ---------------------------- */

/* What one step does to each parameter, worked out once per step. */
typedef struct {
    nn_optimizer opt;
    float lr, mu;       /* SGD and momentum */
    float b1, b2, a, e; /* Adam, with its bias corrections folded into a, e */
} optim_args;

/* The update of parameters [0, n): element-wise, so any split between
 * threads gives the same bits. Written once and compiled for each variant
 * of simd.h: at the baseline (SSE2, 4 floats per instruction) Adam's
 * square root and division took 152 us per step of the MLP on one Zen 5
 * core (235k parameters; 0.65 ns each, in L2 or not), 15% of its training
 * step. */
static inline __attribute__((always_inline)) void
update_body(const optim_args *o, float *restrict p, const float *restrict g,
            float *restrict m, float *restrict v, size_t n) {
    switch (o->opt) {
    case NN_SGD:
        for (size_t i = 0; i < n; i++) p[i] -= o->lr * g[i];
        break;
    case NN_MOMENTUM:
        for (size_t i = 0; i < n; i++) {
            m[i] = o->mu * m[i] + g[i];
            p[i] -= o->lr * m[i];
        }
        break;
    case NN_ADAM:
        for (size_t i = 0; i < n; i++) {
            m[i] = o->b1 * m[i] + (1 - o->b1) * g[i];
            v[i] = o->b2 * v[i] + (1 - o->b2) * g[i] * g[i];
            p[i] -= o->a * m[i] / (sqrtf(v[i]) + o->e);
        }
        break;
    }
}

NN_SIMD_VARIANTS(update,
                 (const optim_args *o, float *p, const float *g, float *m,
                  float *v, size_t n),
                 (o, p, g, m, v, n))

typedef void update_fn(const optim_args *o, float *p, const float *g, float *m,
                       float *v, size_t n);

/* Parameters [from, to) of p, g, m, v. */
static void update_range(update_fn *fn, const optim_args *o, float *p,
                         const float *g, float *m, float *v, size_t from,
                         size_t to) {
    if (from < to) /* m and v may be NULL (plain SGD) */
        fn(o, p + from, g + from, m ? m + from : NULL, v ? v + from : NULL,
           to - from);
}

/* Thread t of nt's part of net's parameters: of each layer (weights (O,
 * fan), biases (O)), the rows of units [o0, o1) = nn_share_units(O);
 * weights of another shape are shared flat. An input-major layer's W^T
 * is held in panels of columns (dense.c), so that the same flat share is
 * the thread's own columns in one run when they are whole panels (a
 * 256-unit layer on two threads). Before the panels, updating each row's
 * owned columns of a plain W^T made the MLP train 17% slower on two
 * threads than a flat half of its rows (165-173k against 196-207k
 * samples/s; Adam 23% of the time against 10%), and still 176-181k
 * against 207-215k in one call over the strided columns: broken streams
 * cost more than lines that cross between the cores. */
static void update_owned(update_fn *fn, const optim_args *o, const nn_net *net,
                         float *p, const float *g, float *m, float *v, int t,
                         int nt) {
    for (int i = 0; i < net->n_layers; i++) {
        const nn_layer *l = &net->layers[i];
        const size_t O = l->n_biases;
        size_t w0, w1, b0 = 0, b1 = 0;
        if (O > 0 && O <= INT_MAX && l->n_weights % O == 0) {
            int o0, o1;
            nn_share_units((int)O, t, nt, &o0, &o1);
            w0 = (size_t)o0 * (l->n_weights / O);
            w1 = (size_t)o1 * (l->n_weights / O);
            b0 = (size_t)o0;
            b1 = (size_t)o1;
        } else {
            nn_share_floats(l->n_weights, t, nt, &w0, &w1);
            nn_share_floats(O, t, nt, &b0, &b1);
        }
        update_range(fn, o, p, g, m, v, l->weights + w0, l->weights + w1);
        update_range(fn, o, p, g, m, v, l->biases + b0, l->biases + b1);
    }
}

static void step_with(update_fn *fn, const nn_train_config *cfg,
                      const nn_net *net, float *p, const float *g, float *m,
                      float *v, size_t n, float lr, long step) {
    optim_args o = {.opt = cfg->optimizer, .lr = lr, .mu = cfg->momentum};
    if (o.opt == NN_ADAM) {
        o.b1 = cfg->beta1;
        o.b2 = cfg->beta2;
        double c1 = 1 - pow(o.b1, (double)step), c2 = 1 - pow(o.b2, (double)step);
        o.a = (float)(lr * sqrt(c2) / c1);
        o.e = (float)(cfg->eps * sqrt(c2));
    }
    /* Small arrays stay on one thread, where starting a team costs more. */
    int threads = cfg->threads > 1 && n >= ((size_t)1 << 16) ? cfg->threads : 1;
    if (nn_serial(threads)) {
        fn(&o, p, g, m, v, n);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (net) {
            update_owned(fn, &o, net, p, g, m, v, t, nt);
        } else {
            size_t from, to;
            nn_share_floats(n, t, nt, &from, &to);
            update_range(fn, &o, p, g, m, v, from, to);
        }
    }
#endif
}

void optim_step(const nn_train_config *cfg, const nn_net *net, float *p,
                const float *g, float *m, float *v, size_t n, float lr,
                long step) {
    step_with(update_best(), cfg, net, p, g, m, v, n, lr, step);
}

int optim_step_variant(const char *variant, const nn_train_config *cfg,
                       const nn_net *net, float *p, const float *g, float *m,
                       float *v, size_t n, float lr, long step) {
    update_fn *fn = update_named(variant);
    if (!fn) return -1;
    step_with(fn, cfg, net, p, g, m, v, n, lr, step);
    return 0;
}
