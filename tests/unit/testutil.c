#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

const char *tu_mnist_dir(void) {
    const char *d = getenv("DIGITD_MNIST_DIR");
    return (d && *d) ? d : NULL;
}

void tu_fill(float *x, size_t n, nn_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * nn_rng_uniform(rng);
}

double tu_gradcheck(float *x, size_t n, const float *analytic,
                    double (*loss)(void *ctx), void *ctx, float h) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double den = fabs(num) + fabs(analytic[i]);
        if (den < 1e-3) den = 1e-3;
        double rel = fabs(num - analytic[i]) / den;
        if (rel > worst) worst = rel;
    }
    return worst;
}

const char *tu_source_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", DIGITD_SOURCE_DIR, rel);
    return buf;
}
