/* loss.c: softmax fused with cross-entropy. */
#include <math.h>

#include "layers.h"

/* logits (B,C) -> probs (B,C). Subtracting the row maximum first keeps
 * every exp argument <= 0: no overflow, and the largest term is 1, so the
 * sum is >= 1 and never divides by zero. */
void softmax_forward(float *probs, const float *logits, int B, int C) {
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * C;
        float *p = probs + (size_t)r * C;
        float m = z[0];
        for (int c = 1; c < C; c++) m = z[c] > m ? z[c] : m;
        double sum = 0;
        for (int c = 0; c < C; c++) {
            p[c] = expf(z[c] - m);
            sum += p[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < C; c++) p[c] *= inv;
    }
}

/* -log softmax(z)[y] = log-sum-exp(z) - z[y] = m + log(sum exp(z - m)) - z[y]:
 * the sum is >= 1, so the log is finite; no probability is ever logged. */
float xent_loss(const float *logits, const uint8_t *labels, int B, int C) {
    double total = 0;
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t)r * C;
        float m = z[0];
        for (int c = 1; c < C; c++) m = z[c] > m ? z[c] : m;
        double sum = 0;
        for (int c = 0; c < C; c++) sum += exp((double)z[c] - m);
        total += m + log(sum) - z[labels[r]];
    }
    return (float)(total / B);
}

void softmax_xent_backward(float *dlogits, const float *probs,
                           const uint8_t *labels, int B, int C) {
    float inv = 1.0f / (float)B;
    for (int r = 0; r < B; r++) {
        for (int c = 0; c < C; c++)
            dlogits[(size_t)r * C + c] = probs[(size_t)r * C + c] * inv;
        dlogits[(size_t)r * C + labels[r]] -= inv;
    }
}
