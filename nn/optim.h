/* optim.h: optimiser internals of nn/, exposed to the unit tests. */
#ifndef DIGITD_NN_OPTIM_H
#define DIGITD_NN_OPTIM_H

#include "nn.h"

/* Learning rate for a 0-based epoch and a 0-based global step out of
 * total_steps, by cfg->schedule. */
double optim_lr(const nn_train_config *cfg, int epoch, long step,
                long total_steps);

/* grads[w] += wd * params[w] for every weight (not bias) of net. */
void optim_weight_decay(const nn_net *net, float *grads, float wd);

/* One step of cfg->optimizer over n parameters p with gradients g and
 * moments m, v (zero at the start; v is Adam's only). step counts from 1.
 * With net (p, g, m, v laid out as its parameters, n == net->n_params),
 * each thread updates the rows of the units it owns in training
 * (nn_share_units, layers.h), on the core whose cache holds them; with
 * NULL, equal flat shares. The update is element-wise: the bits are the
 * same either way. */
void optim_step(const nn_train_config *cfg, const nn_net *net, float *p,
                const float *g, float *m, float *v, size_t n, float lr,
                long step);

/* optim_step with a named variant ("avx512", "avx2", "generic"; simd.h),
 * so the tests can check each on one machine. Returns -1 (and does nothing)
 * when the variant is unknown or this CPU cannot run it, else 0. */
int optim_step_variant(const char *variant, const nn_train_config *cfg,
                       const nn_net *net, float *p, const float *g, float *m,
                       float *v, size_t n, float lr, long step);

#endif
