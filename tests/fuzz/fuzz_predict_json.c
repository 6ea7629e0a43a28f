/* fuzz_predict_json.c: POST /predict with Content-Type application/json:
 * pixels (flat or rows), base64 images and data: URLs, batches, and the
 * fast path for the common {"pixels": [784 numbers]} shape. The bytes go
 * to predict_handle exactly as the daemon passes a request body. */
#include "fuzz_predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* ?include=input on a third of the inputs: it only adds output */
    fuzz_predict_once("application/json", data, size, size % 3 == 0);
    return 0;
}
