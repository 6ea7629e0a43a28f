/* fuzz_predict_image.c: POST /predict with a raw image body (image/png,
 * image/jpeg, image/bmp, image/gif: the format comes from the bytes, so
 * one Content-Type reaches every decoder): magic check, header probe,
 * size limits, stb_image, alpha compositing, normalisation, the model. */
#include "fuzz_predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const types[] = {"image/png", "image/jpeg", "image/bmp",
                                        "image/gif"};
    fuzz_predict_once(types[size % 4], data, size, false);
    return 0;
}
