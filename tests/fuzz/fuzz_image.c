/* fuzz_image.c: untrusted image bytes -> gray floats -> 28x28 input.
 *
 * image_probe (header only), image_decode (stb_image with PNG, JPEG, BMP
 * and GIF, alpha compositing) and nn_normalize_digit, with the promises
 * their headers make:
 *   - image_decode succeeds only for an image image_probe accepted, with
 *     the same sides, within the limits, every gray value finite in 0..1;
 *   - it refuses an image over the limits (and then allocates nothing);
 *   - on failure *gray is NULL and err says why;
 *   - nn_normalize_digit's output is 784 values in 0..1, or a refusal. */
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_decode.h"
#include "nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Limits small enough that one input decodes in milliseconds; the
     * first input byte picks a tighter one now and then so the "too large"
     * branch is reached by ordinary images too. */
    int side = size > 0 && data[0] % 8 == 0 ? 16 : 512;
    image_limits lim = {side, side};

    int pw = -1, ph = -1;
    int probed = image_probe(data, size, &pw, &ph);
    if (probed == 0)
        FUZZ_CHECK(pw > 0 && ph > 0, "probe accepted %dx%d", pw, ph);

    float *gray = (float *)1;
    int w = -1, h = -1;
    nn_error err;
    err.msg[0] = '\0';
    if (image_decode(data, size, &lim, &gray, &w, &h, &err) != 0) {
        FUZZ_CHECK(gray == NULL && w == 0 && h == 0, "a failed decode left outputs set");
        FUZZ_CHECK(err.msg[0] != '\0', "a failed decode without a message");
        return 0;
    }
    FUZZ_CHECK(probed == 0, "decoded an image the probe refused");
    FUZZ_CHECK(w == pw && h == ph, "decoded %dx%d, probed %dx%d", w, h, pw, ph);
    FUZZ_CHECK(w >= 1 && h >= 1 && w <= lim.max_width && h <= lim.max_height,
               "decoded %dx%d with a limit of %d", w, h, side);
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(isfinite(gray[i]) && gray[i] >= 0.0f && gray[i] <= 1.0f,
                   "gray[%zu] = %g", i, (double)gray[i]);

    float out[NN_PIXELS];
    if (nn_normalize_digit(gray, w, h, out, &err) == 0) {
        for (int i = 0; i < NN_PIXELS; i++)
            FUZZ_CHECK(isfinite(out[i]) && out[i] >= 0.0f && out[i] <= 1.0f,
                       "out[%d] = %g", i, (double)out[i]);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0', "a refused normalisation without a message");
    }
    free(gray);
    return 0;
}
