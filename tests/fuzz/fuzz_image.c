/* fuzz_image.c: untrusted image bytes -> gray floats -> 28x28 input, the
 * one path every caller takes (server/input/image_decode.h), with the
 * promises its header makes:
 *   - image_decode succeeds only within the limits, spends exactly
 *     width x height of the pixel budget, and every gray value is finite
 *     in 0..1; on failure *gray is NULL, the sides 0 and err says why;
 *   - an image over the limits or the budget is refused as such and
 *     spends nothing;
 *   - the same bytes give the same status, sides and pixels the second
 *     time (nothing depends on memory left by an earlier decode);
 *   - image_to_input gives 784 values in 0..1, or a refusal and zeros. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_decode.h"
#include "nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Limits small enough that one input decodes in milliseconds; the
     * first input byte picks a tighter side or budget now and then so the
     * "too large" and "over budget" branches are reached by ordinary
     * images too. */
    int side = size > 0 && data[0] % 8 == 0 ? 16 : 512;
    int64_t budget = size > 0 && data[0] % 8 == 1 ? 100 : (int64_t)side * side;
    image_limits lim = {side, side, budget};

    float *gray = (float *)1;
    int w = -1, h = -1;
    nn_error err;
    err.msg[0] = '\0';
    image_status st = image_decode(data, size, &lim, &gray, &w, &h, &err);
    if (st != IMAGE_OK) {
        FUZZ_CHECK(gray == NULL && w == 0 && h == 0, "a failed decode left outputs set");
        FUZZ_CHECK(err.msg[0] != '\0', "a failed decode without a message");
        if (st == IMAGE_TOO_LARGE || st == IMAGE_OVER_BUDGET || st == IMAGE_UNSUPPORTED)
            FUZZ_CHECK(lim.pixels_left == budget, "a refused header spent the budget");
    } else {
        FUZZ_CHECK(w >= 1 && h >= 1 && w <= side && h <= side,
                   "decoded %dx%d with a limit of %d", w, h, side);
        FUZZ_CHECK(lim.pixels_left == budget - (int64_t)w * h,
                   "the budget went from %lld to %lld for %dx%d", (long long)budget,
                   (long long)lim.pixels_left, w, h);
        size_t n = (size_t)w * (size_t)h;
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(isfinite(gray[i]) && gray[i] >= 0.0f && gray[i] <= 1.0f,
                       "gray[%zu] = %g", i, (double)gray[i]);
    }

    /* Again, after memory of other contents was allocated and freed: the
     * same answer, to the bit. */
    unsigned char *junk = malloc(size + 4096);
    if (junk) {
        memset(junk, 0xa5, size + 4096);
        free(junk);
    }
    image_limits again = {side, side, budget};
    float *gray2 = NULL;
    int w2 = -1, h2 = -1;
    image_status st2 = image_decode(data, size, &again, &gray2, &w2, &h2, &err);
    FUZZ_CHECK(st2 == st && w2 == w && h2 == h, "second decode: status %d %dx%d, first %d %dx%d",
               (int)st2, w2, h2, (int)st, w, h);
    if (st == IMAGE_OK)
        FUZZ_CHECK(memcmp(gray, gray2, (size_t)w * (size_t)h * sizeof *gray) == 0,
                   "the same bytes decoded to other pixels");
    free(gray2);
    if (st == IMAGE_OK) free(gray);

    float out[NN_PIXELS];
    image_limits third = {side, side, budget};
    image_status st3 = image_to_input(data, size, &third, out, &err);
    FUZZ_CHECK(st3 == st || (st == IMAGE_OK && st3 == IMAGE_UNUSABLE),
               "image_to_input %d, image_decode %d", (int)st3, (int)st);
    for (int i = 0; i < NN_PIXELS; i++) {
        FUZZ_CHECK(isfinite(out[i]) && out[i] >= 0.0f && out[i] <= 1.0f, "out[%d] = %g", i,
                   (double)out[i]);
        if (st3 != IMAGE_OK) FUZZ_CHECK(out[i] == 0.0f, "a refused input is not zeros");
    }
    return 0;
}
