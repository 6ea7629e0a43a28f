/* routes_v2.h: the Open Inference Protocol v2 (KServe / Triton REST), as
 * pure functions the transport calls: which route a request is, an infer
 * body to input tensors, and every answer body. No sockets, no locks, no
 * model lookups here: the transport resolves the model (model_repo) and
 * runs the network; docs/v2-protocol.md says what is implemented and what
 * is left out.
 *
 * Model tensors (the same for every model the repository serves):
 *   inputs   "input"          FP32  [-1, 784]  (also [-1,1,28,28], [-1,28,28]):
 *                             MNIST-style 28x28, ink high, 0..1 or 0..255
 *                             per sample (like /predict's JSON "pixels")
 *            "image"          BYTES [-1]       base64 (or data: URL) of a PNG,
 *                             JPEG, BMP or GIF, normalised like /predict
 *            a request carries exactly one input; its datatype, not its
 *            name, says which of the two it is.
 *   outputs  "probabilities"  FP32  [-1, 10]
 *            "digit"          INT64 [-1]
 *
 * Every error body is {"error": "<message>"} (v2_render_error). */
#ifndef DIGITD_ROUTES_V2_H
#define DIGITD_ROUTES_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image_decode.h"
#include "model_repo.h"

typedef enum {
    V2_NONE = 0,
    V2_SERVER_METADATA, /* GET  /v2 */
    V2_HEALTH_LIVE,     /* GET  /v2/health/live */
    V2_HEALTH_READY,    /* GET  /v2/health/ready */
    V2_MODEL_METADATA,  /* GET  /v2/models/{m}[/versions/{v}] */
    V2_MODEL_READY,     /* GET  /v2/models/{m}[/versions/{v}]/ready */
    V2_MODEL_INFER,     /* POST /v2/models/{m}[/versions/{v}]/infer */
    V2_REPO_INDEX,      /* POST /v2/repository/index */
    V2_REPO_LOAD,       /* POST /v2/repository/models/{m}/load */
    V2_REPO_UNLOAD,     /* POST /v2/repository/models/{m}/unload */
} v2_route_kind;

typedef struct {
    v2_route_kind kind;
    char model[MODEL_REPO_NAME_MAX]; /* "" when the route has none */
    char version[24];                /* "" when the URL names none */
    const char *allow; /* the method the route takes ("GET", "POST"), for 405 */
} v2_route;

/* Matches an already percent-decoded path (no query string).
 * Returns 200 when path and method fit (out filled); 405 when the path is a
 * v2 route but the method is not its own (out->kind and out->allow filled:
 * answer 405 with `Allow: out->allow`; HEAD counts as GET); 404 when the
 * path is not a v2 route, or names a model or version that cannot exist
 * (too long, empty segment). Paths outside /v2 return 404 with
 * out->kind == V2_NONE, so the transport can try its other route families. */
int v2_route_match(const char *method, const char *path, v2_route *out);

/* Whether a route changes the repository (the admin routes). */
bool v2_route_is_admin(v2_route_kind kind);

/* ---- inference ------------------------------------------------------- */

#define V2_MAX_ID 256 /* bytes of a request "id", NUL included */

typedef struct {
    int max_batch;             /* N at most, 1..PREDICT_MAX_BATCH */
    int max_width, max_height; /* BYTES images: sides in pixels */
    int64_t max_pixels;        /* BYTES images: decoded pixels per request */
} v2_limits;

typedef enum { V2_OUT_PROBABILITIES = 0, V2_OUT_DIGIT = 1 } v2_output;

typedef struct {
    bool has_id;
    char id[V2_MAX_ID];  /* the request's "id", echoed in the answer */
    int n;               /* batch size N >= 1 */
    float *inputs;       /* (N, 784) malloc'd, ink high 0..1 */
    int n_outputs;       /* 1 or 2 */
    v2_output outputs[2]; /* in the order the answer lists them */
    bool binary[2];      /* by v2_output: send it as binary data (Triton's
                            binary tensor extension) */
} v2_infer_request;

/* Parses an inference request body into req (which the caller frees with
 * v2_infer_request_free, on success or failure). Returns 0, or the HTTP
 * status of the refusal with a message in err: 400 for anything the
 * protocol calls a bad request (malformed JSON, missing or mistyped field,
 * unknown datatype or output, shape and data disagreeing, batch over the
 * limit, invalid base64), 422 for an image that decodes but cannot be used
 * (blank, too large), 415 for BYTES that are not a supported image format,
 * 500 when memory runs out. Every buffer that reaches an answer is zeroed
 * before it is filled. */
int v2_parse_infer(const uint8_t *body, size_t len, const v2_limits *lim,
                   v2_infer_request *req, char *err, size_t errlen);

/* The same with Triton's binary tensor data extension: header_len is the
 * request's Inference-Header-Content-Length (-1 when absent). The first
 * header_len bytes are the JSON; the rest is taken, in input order, by
 * inputs whose parameters give "binary_data_size" instead of "data": FP32
 * as little-endian floats, BYTES as elements of a 4-byte little-endian
 * length followed by the raw image bytes. Bytes left over are refused.
 * Outputs asked for with "binary_data": true (or all, with the request
 * parameter "binary_data_output": true) are answered in binary. */
int v2_parse_infer_ext(const uint8_t *body, size_t len, long long header_len,
                       const v2_limits *lim, v2_infer_request *req, char *err,
                       size_t errlen);

void v2_infer_request_free(v2_infer_request *req);

/* An Inference-Header-Content-Length value (NULL: the header is absent)
 * -> *out, the JSON's bytes, or -1 when absent. Only decimal digits are a
 * length (spaces around them allowed): "abc", "-1", "12abc" or a number
 * past 10^18 is refused with 400 and err, not read as "no header". */
int v2_parse_header_length(const char *value, long long *out, char *err, size_t errlen);

/* Sets the answer's id when the request carried none (e.g. from the
 * transport's X-Request-Id); an id from the body is kept. */
void v2_infer_request_default_id(v2_infer_request *req, const char *id);

/* The inference response for probs (N, 10) from model `model_name` at
 * `version` (NULL: no "model_version" field). Returns a malloc'd JSON text
 * (length in *len) for the caller to free, or NULL when memory runs out. */
char *v2_render_infer(const v2_infer_request *req, const float *probs,
                      const char *model_name, const char *version, size_t *len);

/* The same, with the outputs req->binary names appended after the JSON as
 * little-endian bytes (FP32 probabilities, INT64 digits), in output order.
 * *len is the whole body; *json_len the JSON's bytes when any output is
 * binary (send it as Inference-Header-Content-Length and the body as
 * application/octet-stream), else 0. */
char *v2_render_infer_ext(const v2_infer_request *req, const float *probs,
                          const char *model_name, const char *version, size_t *len,
                          size_t *json_len);

/* ---- other answers (all malloc'd JSON, NULL when memory runs out) ------ */

/* {"error": msg} */
char *v2_render_error(const char *msg, size_t *len);

/* GET /v2: {"name": "digitd", "version": server_version, "extensions": [...]} */
char *v2_render_server_metadata(const char *server_version, size_t *len);

/* GET /v2/health/live and /ready: {"live": true} / {"ready": ready} */
char *v2_render_live(size_t *len);
char *v2_render_ready(bool ready, size_t *len);

/* GET .../ready: {"name": name, "ready": ready} */
char *v2_render_model_ready(const char *name, bool ready, size_t *len);

/* GET /v2/models/{m}[/versions/{v}]: name, versions (the loaded ones,
 * highest first), platform "digitd_nn", inputs and outputs as above. */
char *v2_render_model_metadata(const char *name, const uint64_t *versions,
                               int n_versions, size_t *len);

/* POST /v2/repository/index: [{"name", "version", "state", "reason"}...];
 * ready_only keeps the READY rows (the body's {"ready": true}). */
char *v2_render_repo_index(const repo_index_entry *rows, int n, bool ready_only,
                           size_t *len);

/* Reads the optional {"ready": bool} of a repository index body (empty
 * body: false). Returns 0, or 400 with err. */
int v2_parse_repo_index(const uint8_t *body, size_t len, bool *ready_only,
                        char *err, size_t errlen);

/* ---- the adapter to the image path ------------------------------------ */

/* Image bytes (PNG, JPEG, BMP, GIF) -> one normalised 28x28 input, out
 * (784 floats), through image_to_input as /predict does it, spending the
 * request's pixel budget in *images. Returns 0, or an HTTP status (400
 * damaged, 415 not a supported format, 422 too large, over budget or
 * blank) with err. */
int v2_image_to_input(const uint8_t *bytes, size_t len, image_limits *images, float *out,
                      char *err, size_t errlen);

#endif

/* ---- one request, end to end (all but running the network) ------------- */

/* What the transport knows about the request and the server. */
typedef struct {
    model_repo *repo;
    const char *server_version; /* DIGITD_VERSION */
    v2_limits limits;
    bool draining;        /* SIGTERM's grace period: not ready */
    bool admin_enabled;   /* an admin token (or admin listener) is configured */
    bool admin_allowed;   /* this request proved it (token matched / admin port) */
    const char *request_id; /* X-Request-Id, used as "id" when the body has none */
    const char *inference_header; /* the request's Inference-Header-Content-Length
                                     as sent, NULL when absent */
} v2_context;

/* An answer: status, and a malloc'd JSON body (NULL: empty body). */
typedef struct {
    int status;
    char *body;
    size_t len;
    const char *allow;    /* 405: the Allow header's value */
    size_t inference_header_length; /* > 0: the body is JSON of this many bytes
                                       then binary outputs: send this as the
                                       Inference-Header-Content-Length header,
                                       Content-Type application/octet-stream */
    char log_detail[512]; /* for the access log's reason: may name files, never sent */
} v2_answer;

/* An inference to run: req->inputs (N, 784) on ref.model->net. */
typedef struct {
    v2_infer_request req;
    model_ref ref;
    char version[24];
} v2_job;

typedef enum { V2_ANSWERED = 0, V2_RUN_MODEL = 1 } v2_next;

/* Handles a request the transport matched (v2_route_match's status in
 * match_status: 200 or 405). Returns V2_ANSWERED with *out filled, or, for
 * an infer request that parsed and found its model, V2_RUN_MODEL with *job
 * filled (a model reference held): the caller computes
 *     probs (N, 10) = nn_predict(job->ref.model->net, job->req.inputs, job->req.n)
 * (on its work queue, batched as it likes), then calls v2_finish with the
 * probabilities (NULL when the run failed) and v2_job_release. out is
 * always initialised (free out->body with free()). */
v2_next v2_handle(const v2_context *ctx, int match_status, const v2_route *route,
                  const uint8_t *body, size_t len, v2_job *job, v2_answer *out);

/* Renders the inference answer of a finished job into *out (200, or 500
 * when probs is NULL or memory runs out). */
void v2_finish(const v2_job *job, const float *probs, v2_answer *out);

/* Drops the job's model reference and input memory. */
void v2_job_release(v2_job *job);
