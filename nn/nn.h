/*
 * nn.h: the public interface of digitd's neural-network core.
 *
 * The core owns matrices and their kernels, layers, losses, optimisers, the
 * training loop, model files, the IDX reader and the digit normalisation.
 * It never prints, never exits and keeps no mutable global state: every
 * function that can fail returns -1 (or NULL) and fills an nn_error with a
 * message the caller can show as it is.
 *
 * Conventions used in every comment below:
 *   - shapes are written (B, C, H, W) for a batch of B samples, row-major,
 *     the last index the fastest;
 *   - an image is 28x28 float32, row-major, ink high (1.0) on 0.0;
 *   - a network maps one image (1,28,28) to 10 logits, or 11 when it has
 *     a "not a digit" output (label NN_NOT_A_DIGIT); the loss is softmax
 *     with cross-entropy, fused.
 */
#ifndef DIGITD_NN_H
#define DIGITD_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NN_SIDE 28                    /* MNIST image side, pixels */
#define NN_PIXELS (NN_SIDE * NN_SIDE) /* 784 */
#define NN_CLASSES 10
#define NN_NOT_A_DIGIT 10 /* label of the optional 11th output (nn/verdict.c) */

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
    char msg[256];
} nn_error;

/* Formats a message into err (when err is not NULL). Always returns -1 so
 * that a failing function can end with `return nn_fail(err, ...);`. */
int nn_fail(nn_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Random numbers: xoshiro256** seeded through splitmix64. The state is  */
/* the caller's, so runs with the same seed are identical.             */
/* ------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
} nn_rng;

void nn_rng_seed(nn_rng *r, uint64_t seed);
uint64_t nn_rng_u64(nn_rng *r);
float nn_rng_uniform(nn_rng *r);              /* in [0, 1) */
float nn_rng_normal(nn_rng *r);               /* mean 0, deviation 1 */
uint32_t nn_rng_below(nn_rng *r, uint32_t n); /* in [0, n), n > 0 */

/* ------------------------------------------------------------------ */
/* Matrix kernel                                                       */
/* ------------------------------------------------------------------ */

/* C = alpha * op(A) * op(B) + beta * C, single precision, row-major.
 * op(A) is (M,K): A itself with leading dimension lda when !trans_a, else
 * A is stored (K,M). op(B) is (K,N): B (K,N) when !trans_b, else B is
 * stored (N,K). C is (M,N) with leading dimension ldc. beta == 0 ignores
 * whatever C held (even NaN).
 * Uses up to `threads` threads; the result does not depend on the number
 * of threads or on their timing (every element of C is summed in the same
 * order). */
void nn_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc, int threads);

/* ------------------------------------------------------------------ */
/* Networks                                                            */
/* ------------------------------------------------------------------ */

/* Layer kinds. The numbers are stored in model files: never renumber. */
typedef enum {
    NN_DENSE = 1,   /* fully connected: W (out, in), b (out) */
    NN_CONV = 2,    /* 2-D convolution, stride 1: W (oc, ic, k, k), b (oc) */
    NN_MAXPOOL = 3, /* k x k max-pooling, stride k */
    NN_RELU = 4,
    NN_SIGMOID = 5,
    NN_TANH = 6,
    NN_DROPOUT = 7, /* inverted dropout while training, identity otherwise */
} nn_layer_kind;

/* Shape of one sample; a flat vector of n values is (n, 1, 1). */
typedef struct {
    int c, h, w;
} nn_shape;

static inline size_t nn_shape_size(nn_shape s) {
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

typedef struct {
    nn_layer_kind kind;
    int size;   /* DENSE: outputs; CONV: output channels; else 0 */
    int kernel; /* CONV: kernel side 1..7; MAXPOOL: window side; else 0 */
    int pad;    /* CONV: zeros added on each side (kernel/2 = "same", 0 = "valid") */
    float rate; /* DROPOUT: probability of dropping a value, [0, 1) */
    /* Derived by nn_net_build, never stored: */
    nn_shape in, out;
    size_t weights, n_weights; /* offset into net->params and count */
    size_t biases, n_biases;
    /* Set only in training's own copy of the net (nn/train.c), never
     * stored: the weights are held transposed, W^T (fan in, size), so
     * that a product with a mostly-zero input reads a row of W^T per
     * input that is not 0 (nn/dense.c). Only a first dense layer. */
    bool input_major;
} nn_layer;

#define NN_MAX_LAYERS 32

/* What a model file records besides the weights. Unknown numbers are -1. */
typedef struct {
    char name[64];          /* e.g. "mlp-784-256-128-10" */
    char settings[512];     /* the training options, human-readable */
    double test_accuracy;   /* on MNIST test, 0..1 */
    double val_accuracy;    /* on the validation split, 0..1 */
    double train_seconds;   /* wall-clock time of training */
    int64_t created_unix;   /* seconds since 1970 */
    /* The verdict's calibration (nn/verdict.c, docs/verdict.md), fitted
     * on the validation split by `digitd train`. temperature divides the
     * logits (1 = as trained); -1 (INFINITY for the energy) is unset. */
    double temperature;
    double reject_p;        /* not_a_digit when p(not a digit) >= this */
    double reject_energy;   /* not_a_digit when the energy is above this */
    double ambiguous_margin;/* ambiguous when top1 - top2 digit p < this */
    /* int8 calibration (nn/quantize.c), empty when the model has none:
     * "lo hi" float pairs separated by spaces, the network input's range
     * first, then each layer's output range, as nn_quantize_calibrate
     * measured them on training images. */
    char int8_act_ranges[1536];
} nn_meta;

typedef struct nn_net {
    int n_layers;
    nn_layer layers[NN_MAX_LAYERS];
    size_t n_params;
    float *params; /* one allocation: layer by layer, weights then biases */
    nn_meta meta;
    /* nn_net_prepare: per layer, what its inference kernel computed once
     * from the weights (NULL: nothing, or not prepared). */
    float *prepared[NN_MAX_LAYERS];
} nn_net;

/* Builds an untrained network (parameters zero) from an architecture
 * string; the grammar is in docs/architecture.md. Examples:
 *   "784-256-128-10"                          an MLP
 *   "conv5x32,pool2,conv5x64,pool2,dense256,dropout0.5,dense10"
 * Convolutions and hidden dense layers are followed by `activation`
 * ("relu", "sigmoid" or "tanh") unless the string names activations
 * itself. The last layer must be dense with 10 outputs, or 11: the 11th
 * then means "not a digit" (label NN_NOT_A_DIGIT).
 * On error, NULL is returned and err says what is wrong with the string. */
nn_net *nn_net_create(const char *spec, const char *activation, nn_error *err);

/* Builds a network from explicit layers (only kind, size, kernel, pad and
 * rate are read), computing shapes and parameter offsets. Refuses
 * impossible dimensions. Used by nn_net_create and the model loader. */
nn_net *nn_net_build(const nn_layer *layers, int n_layers, nn_error *err);

/* He initialisation before ReLU, Glorot before sigmoid/tanh/the output;
 * biases zero. */
void nn_net_init(nn_net *net, nn_rng *rng);
void nn_net_free(nn_net *net);

/* For a net that will only be served from now on (its weights no longer
 * change): computes once what the inference kernels would redo on every
 * call (the Winograd transform of 5x5 filters, the transposed weights of
 * a first dense layer), so nn_predict is faster and needs less scratch.
 * Same results as without. Idempotent; 0, or -1
 * with err when out of memory (the net stays usable, unprepared). */
int nn_net_prepare(nn_net *net, nn_error *err);

/* Canonical architecture string, e.g. "conv5x32,relu,pool2,dense10".
 * Returns the length it needed (like snprintf). */
int nn_net_describe(const nn_net *net, char *buf, size_t size);

/* Multiply-adds of one input's forward pass: every weight of a dense layer
 * once, every weight of a convolution once per output position. The
 * daemon decides by it whether a request is cheaper to run where it
 * arrived than to hand to a worker (server/serving/work_queue.h). */
uint64_t nn_net_macs(const nn_net *net);

/* Forward pass for inference: x (B, 784) -> probabilities of the ten
 * digits (B, 10): softmax of the digit logits divided by
 * net->meta.temperature (an 11th "not a digit" logit is left out, so the
 * ten still sum to 1). Thread-safe on a shared read-only net: scratch
 * memory is per call. Returns 0, or -1 when memory runs out. */
int nn_predict(const nn_net *net, const float *x, int batch, float *probs,
               int threads, nn_error *err);

/* The same forward pass, giving the raw last-layer values:
 * x (B, 784) -> logits (B, nn_net_outputs(net)), no temperature. */
int nn_logits(const nn_net *net, const float *x, int batch, float *logits,
              int threads, nn_error *err);

/* Outputs of the last layer: 10, or 11 with a "not a digit" class. */
int nn_net_outputs(const nn_net *net);

/* ------------------------------------------------------------------ */
/* Data sets                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    int n;
    float *images;   /* (n, 784), values 0..1, ink high */
    uint8_t *labels; /* (n), 0..9 */
} nn_dataset;

/* Reads an IDX image file and its label file, raw or gzipped (decided by
 * the content, not the name). Checks magic, element type, dimensions
 * (images must be 28x28) and counts against the file's length.
 * On error returns -1, out is left empty, err names the file and the
 * problem. */
int nn_idx_load(const char *images_path, const char *labels_path,
                nn_dataset *out, nn_error *err);

/* Loads DIR/<set>-images-idx3-ubyte and DIR/<set>-labels-idx1-ubyte, with
 * or without ".gz"; set is "train" or "t10k". */
int nn_mnist_load(const char *dir, const char *set, nn_dataset *out,
                  nn_error *err);

/* Parses IDX bytes already in memory (after gunzip). expect_dims is 3 for
 * images, 1 for labels. On success *data points into buf and *count is the
 * number of items. Exposed for tests and the fuzzer. */
int nn_idx_parse(const uint8_t *buf, size_t len, int expect_dims,
                 const uint8_t **data, int *count, nn_error *err);

void nn_dataset_free(nn_dataset *d);

/* Room for n images (n, 784) of a data set, freed by nn_dataset_free, or
 * NULL (out of memory, or an impossible n). Training reads random rows of
 * it (3 KiB each, a different 4 KiB page each time, a TLB miss each): on
 * Linux it asks for transparent huge pages. On a 2-core Zen 5 VM that took
 * the MLP's batch gathering from 18% of the run's samples to 4%, and its
 * training from 105k to 205k samples/s (bench/README.md). */
float *nn_dataset_alloc_images(long n);

/* ------------------------------------------------------------------ */
/* Digit normalisation and augmentation                                */
/* ------------------------------------------------------------------ */

/* Any grayscale image to an MNIST-like input, as LeCun built MNIST:
 * gray (h, w), values 0..1 (0 black, 1 white), either polarity;
 * out (28, 28), ink high. Decides polarity from the border, crops the
 * ink's bounding box, fits it into 20x20 keeping the aspect ratio with
 * area averaging, and places its centre of mass at the centre of 28x28.
 * Returns -1 with a message for a blank image (no ink) or bad sizes. */
int nn_normalize_digit(const float *gray, int w, int h, float *out,
                       nn_error *err);

/* Random training distortion of one 28x28 input: rotation about +-12
 * degrees, scale 0.85-1.15, slight shear, shift +-2 px, sometimes a
 * thicker stroke. in and out must not overlap. */
void nn_augment(const float *in, float *out, nn_rng *rng);

/* What training applies: for a quarter of the samples one of the
 * label-free styles of nn_style_apply (elastic, slant, hairline, thick,
 * low resolution, binarised), then nn_augment. */
void nn_augment_styles(const float *in, float *out, nn_rng *rng);

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

typedef enum { NN_SGD, NN_MOMENTUM, NN_ADAM } nn_optimizer;
typedef enum { NN_LR_CONSTANT, NN_LR_STEP, NN_LR_COSINE } nn_lr_schedule;

typedef struct {
    nn_optimizer optimizer;
    float lr;            /* learning rate at the start */
    nn_lr_schedule schedule;
    float lr_step_gamma; /* NN_LR_STEP: lr *= gamma every lr_step_epochs */
    int lr_step_epochs;
    float momentum;      /* NN_MOMENTUM */
    float beta1, beta2, eps; /* NN_ADAM */
    float weight_decay;  /* L2 coefficient on weights (not biases) */
    int batch;
    int epochs;
    int patience;        /* early stopping: epochs without a better
                            validation accuracy; 0 = never stop early */
    bool augment;
    int threads;
    uint64_t seed;
} nn_train_config;

/* The defaults of `digitd train`: Adam, lr 2e-3, cosine, batch 128... */
void nn_train_config_defaults(nn_train_config *cfg);

typedef enum { NN_EVENT_BATCH, NN_EVENT_EPOCH } nn_event;

typedef struct {
    nn_event event;
    int epoch, epochs;       /* 1-based epoch number */
    int seen, total;         /* training samples this epoch */
    double loss;             /* mean training loss this epoch so far */
    double train_accuracy;   /* this epoch so far */
    double val_accuracy;     /* NN_EVENT_EPOCH with a validation set, else -1 */
    double samples_per_sec;  /* this epoch */
    double elapsed;          /* seconds since training began */
    double lr;               /* learning rate in use */
    bool best;               /* NN_EVENT_EPOCH: best validation so far */
} nn_progress;

/* Called after every batch and every epoch; return nonzero to stop
 * training early (the best weights so far are kept). */
typedef int (*nn_progress_fn)(const nn_progress *p, void *user);

/* Trains net in place on train; val may be NULL (then no early stopping).
 * With a validation set, the weights of the best validation epoch are the
 * ones left in net. net must have been initialised (nn_net_init).
 * Returns 0, or -1 with err (out of memory, bad configuration). */
int nn_train(nn_net *net, const nn_dataset *train, const nn_dataset *val,
             const nn_train_config *cfg, nn_progress_fn progress, void *user,
             nn_error *err);

/* Classifies every sample of d: confusion[true][predicted] counts.
 * Returns the accuracy 0..1, or -1 with err. */
double nn_evaluate(const nn_net *net, const nn_dataset *d, int threads,
                   int confusion[NN_CLASSES][NN_CLASSES], nn_error *err);

/* ------------------------------------------------------------------ */
/* Verdicts: is this a digit, and which (nn/verdict.c, docs/verdict.md) */
/* ------------------------------------------------------------------ */

typedef enum {
    NN_ACCEPTED = 0,
    NN_NOT_A_DIGIT_REASON = 1, /* letters, symbols, scribbles, stray marks */
    NN_AMBIGUOUS = 2,          /* a digit, but two classes are close */
} nn_reason;

/* One answer. digit/confidence/probs are what nn_predict gives (the ten
 * digit probabilities after temperature scaling, summing to 1); the
 * verdict is added beside them. */
typedef struct {
    int digit;            /* argmax of probs */
    float confidence;     /* probs[digit] */
    float probs[NN_CLASSES];
    bool accepted;
    nn_reason reason;     /* NN_ACCEPTED when accepted */
    int runner_up;        /* second most probable digit ("a 4 or a 9?") */
    float p_not_digit;    /* softmax share of the 11th output, or -1 */
    float energy;         /* -T log sum_d exp(logit_d / T) over the digits */
} nn_answer;

/* Copies src's parameters into dst, whose layers must be the same but
 * for the last layer's outputs: 10 in src and 11 in dst keeps dst's own
 * (initialised) row for "not a digit", so a trained 10-digit model can be
 * fine-tuned into an 11-output one. Returns 0, or -1 with err. */
int nn_net_copy_params(nn_net *dst, const nn_net *src, nn_error *err);

/* "not_a_digit", "ambiguous", or NULL for NN_ACCEPTED. */
const char *nn_reason_name(nn_reason r);

/* Classifies B inputs x (B, 784) into out (B answers), using the
 * calibration in net->meta. A 10-output model with no stored thresholds
 * answers its digit, confidence and probs exactly as nn_predict and is
 * judged by the softmax-only rule (ambiguous when confidence < 0.6).
 * Thread-safe on a shared net. Returns 0, or -1 with err. */
int nn_classify(const nn_net *net, const float *x, int B, nn_answer *out,
                int threads, nn_error *err);

/* The verdict for one row of logits (n_out 10 or 11), as nn_classify
 * gives it; exposed so callers holding logits need no second pass. */
void nn_verdict_from_logits(const nn_meta *m, const float *logits, int n_out,
                            nn_answer *out);

/* Fits net->meta.temperature (minimum NLL of the ten digit probabilities)
 * and the verdict's thresholds on a validation split of digits (labels
 * 0..9): at most `max_reject` of them refused, half of it as not_a_digit,
 * half as ambiguous. No negative decides a threshold, so refusal rates on
 * negatives stay measurements. Returns 0, or -1 with err. */
int nn_calibrate(nn_net *net, const nn_dataset *digits, double max_reject,
                 int threads, nn_error *err);

/* What `digitd eval` prints beyond accuracy. */
typedef struct {
    int n;                    /* samples */
    double accuracy;          /* argmax over the ten digits */
    double acceptance;        /* fraction accepted */
    double accepted_accuracy; /* accuracy among the accepted (-1 if none) */
    double not_digit_rate, ambiguous_rate; /* fractions refused, by reason */
    double ece_raw;           /* 15-bin ECE with temperature 1 */
    double ece;               /* 15-bin ECE with the model's temperature */
    double temperature;
} nn_eval_report;

typedef struct nn_qnet nn_qnet; /* int8 inference, below */

/* Fills r for the digits in d (labels 0..9), from the logits of q (net's
 * int8 form, see below) or, with q NULL, of net itself. Returns 0, or -1
 * with err. */
int nn_evaluate_verdicts(const nn_net *net, const nn_qnet *q, const nn_dataset *d,
                         int threads, nn_eval_report *r, nn_error *err);

/* Expected calibration error: 15 equal-width confidence bins, the
 * sample-weighted mean |accuracy - mean confidence| per bin. conf (n),
 * correct (n, 0 or 1). */
double nn_ece15(const float *conf, const uint8_t *correct, int n);

/* ------------------------------------------------------------------ */
/* Generated training data (nn/negatives.c, nn/styles.c)                */
/* ------------------------------------------------------------------ */

/* A Hershey vector font (.jhf, Debian's hershey-fonts-data): glyph k is
 * the character ' ' + k in the ASCII fonts. */
typedef struct nn_font nn_font;
nn_font *nn_font_load(const char *path, nn_error *err);
void nn_font_free(nn_font *f);
int nn_font_glyphs(const nn_font *f);

/* Loads the training (held_out false) or held-out font families from
 * dir (Debian: /usr/share/hershey-fonts) into fonts (up to max); the two
 * lists share no family (nn/negatives.c). Returns how many loaded, or -1
 * with err when none could be. */
int nn_fonts_load_set(const char *dir, bool held_out, nn_font **fonts,
                      int max, nn_error *err);

/* Kinds of generated negatives. The held-out ones are never used in
 * training; they measure how the rejection generalises. */
typedef enum {
    NN_NEG_SCRIBBLE = 0, /* random curved strokes */
    NN_NEG_DOTS,         /* a dot, or a few */
    NN_NEG_LINE,         /* a straight dash away from vertical, or two */
    NN_NEG_GLYPH,        /* a letter or symbol from a font (needs fonts) */
    NN_NEG_HALF_DIGIT,   /* part of a digit (needs digits) */
    NN_NEG_TWO_DIGITS,   /* two digits side by side (needs digits) */
    NN_NEG_NOISE,        /* speckles over the whole box */
    NN_NEG_TRAIN_KINDS,  /* kinds below are held out */
    NN_NEG_ZIGZAG = NN_NEG_TRAIN_KINDS, /* a zigzag or a spiral */
    NN_NEG_SHAPES,       /* crosses, stars, boxes, hatching */
    NN_NEG_KINDS,
} nn_negative_kind;

/* Where negatives come from. Any source may be empty (NULL / 0); kinds
 * that need it are then skipped. */
typedef struct {
    nn_font *const *fonts;
    int n_fonts;
    const nn_dataset *digits; /* labelled digits to cut and pair */
    bool held_out;            /* draw the held-out kinds instead */
} nn_negative_source;

/* Renders one negative of a random kind through nn_normalize_digit into
 * out (784). Deterministic in rng. Returns the kind drawn. */
int nn_negative(const nn_negative_source *src, nn_rng *rng, float *out);

/* Appends n negatives (label NN_NOT_A_DIGIT) and the styled digits of
 * nn_style_digits (n_styled of them) to a copy of base into *out (the
 * caller frees with nn_dataset_free). Returns 0, or -1 with err. */
int nn_dataset_with_negatives(const nn_dataset *base,
                              const nn_negative_source *src, int n,
                              int n_styled, uint64_t seed, nn_dataset *out,
                              nn_error *err);

/* Digit styles MNIST lacks, each a deterministic transform of an MNIST
 * digit or a procedural drawing (nn/styles.c). */
typedef enum {
    NN_STYLE_ELASTIC = 0,
    NN_STYLE_SLANT,
    NN_STYLE_HAIRLINE,
    NN_STYLE_THICK,
    NN_STYLE_LOWRES,
    NN_STYLE_BINARY,
    NN_STYLE_ONE_LEAD_IN,  /* European 1 with a lead-in up-stroke */
    NN_STYLE_SEVEN_CROSSED,
    NN_STYLE_FOUR_OPEN,    /* drawn procedurally */
    NN_STYLE_FOUR_CLOSED,  /* drawn procedurally */
    NN_STYLE_COUNT,
} nn_style;

const char *nn_style_name(nn_style s);

/* Applies style s to in (784, a digit of class label) into out (784).
 * For the label-specific styles (ONE_LEAD_IN needs a 1, SEVEN_CROSSED a
 * 7) and the procedural fours, in may be NULL for the procedural ones.
 * Returns the label of out, or -1 when the style does not apply. */
int nn_style_apply(nn_style s, const float *in, int label, float *out,
                   nn_rng *rng);

/* ------------------------------------------------------------------ */
/* Model files (format in docs/model-format.md)                        */
/* ------------------------------------------------------------------ */

/* Writes net to a temporary file beside path, fsyncs it, renames it over
 * path and fsyncs the directory: a crash leaves either the old file or
 * the new one. On error the old file is untouched. */
int nn_model_save(const nn_net *net, const char *path, nn_error *err);

/* Whether nn_model_save(path) would be allowed to write there: nothing
 * yet, a regular file, or a symlink to one (written through to its
 * target); devices, FIFOs, directories are refused. For commands that
 * should refuse before hours of training rather than after. */
int nn_model_save_check(const char *path, nn_error *err);

/* Reads and checks a model file: magic, version, sizes against the
 * length, dimensions, CRC32, no trailing bytes. Each refusal has its own
 * message. The caller frees the net with nn_net_free. */
nn_net *nn_model_load(const char *path, nn_error *err);
nn_net *nn_model_parse(const uint8_t *buf, size_t len, nn_error *err);

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* Reads the whole regular file at path into a new buffer (*buf, *len;
 * the caller frees *buf). Refuses files over `cap` bytes and files that
 * change size while being read. On error returns -1 with a message naming
 * the file (and strerror); *buf is then NULL. */
int nn_read_file(const char *path, size_t cap, uint8_t **buf, size_t *len,
                 nn_error *err);

/* ------------------------------------------------------------------ */
/* Text                                                                */
/* ------------------------------------------------------------------ */

/* Length of the longest prefix of text (n bytes) that is well-formed
 * UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t nn_utf8_valid_prefix(const void *text, size_t n);

/* ------------------------------------------------------------------ */
/* Digests                                                             */
/* ------------------------------------------------------------------ */

void nn_sha256(const void *data, size_t len, uint8_t out[32]);

/* ------------------------------------------------------------------ */
/* int8 inference (nn/quantize.c, kernels in nn/int8_gemm.c)           */
/* ------------------------------------------------------------------ */

/* Post-training quantisation. Weights: symmetric int8 per output channel,
 * derived at load time from the float32 weights (deterministic). Every
 * activation tensor: uint8 with one scale and zero point, from the ranges
 * that calibration stored in net->meta.int8_act_ranges. Layers: dense,
 * conv, relu, maxpool, dropout (identity); a net with sigmoid or tanh has
 * no int8 form. The last layer's logits are float32. */

/* Runs the float32 forward pass over x (n, 784) and records the range of
 * the input and of every layer's output into net->meta.int8_act_ranges
 * (what `digitd quantize` saves). Each range is the `percentile` (0..100;
 * 100 = the maximum) of the values seen, widened to hold 0.
 * Returns 0, or -1 with err (bad arguments, out of memory). */
int nn_quantize_calibrate(nn_net *net, const float *x, int n, double percentile,
                          int threads, nn_error *err);

/* Whether net carries a calibration (nn_qnet_create may still refuse it). */
bool nn_net_has_int8(const nn_net *net);

/* The int8 form of a calibrated net, on the fastest kernel this CPU runs
 * (AVX512-VNNI, AVX2 or plain C: the same integers on each). The qnet
 * holds its own copies: net may be freed afterwards. NULL with err when
 * the net has no calibration, a malformed one, or a layer kind without an
 * int8 kernel. Free with nn_qnet_free. */
nn_qnet *nn_qnet_create(const nn_net *net, nn_error *err);
void nn_qnet_free(nn_qnet *q);

/* Whether this CPU runs a calibrated net faster in int8 than in float32:
 * with AVX512-VNNI. Without it the float32 path (Winograd convolution,
 * AVX-512 or AVX2 FMA) is the faster one for the CNN. */
bool nn_int8_preferred(void);

/* Name of the kernel q runs: "vnni", "avx2" or "generic". */
const char *nn_qnet_kernel(const nn_qnet *q);

/* x (B, 784) -> probabilities (B, 10), like nn_predict, on `threads`
 * OpenMP threads (the bytes do not depend on the count). Thread-safe on a
 * shared read-only qnet: scratch memory is per call. Returns 0, or -1
 * when memory runs out. */
int nn_qnet_predict(const nn_qnet *q, const float *x, int B, float *probs,
                    int threads, nn_error *err);

/* Outputs of the last layer: 10, or 11 with "not a digit". */
int nn_qnet_outputs(const nn_qnet *q);

/* nn_classify through the int8 path: answers and verdicts for x (B, 784)
 * with net's calibration (net is q's float32 model). */
int nn_qnet_classify(const nn_qnet *q, const nn_net *net, const float *x, int B,
                     nn_answer *out, int threads, nn_error *err);

/* nn_evaluate through the int8 path. */
double nn_qnet_evaluate(const nn_qnet *q, const nn_dataset *d,
                        int confusion[NN_CLASSES][NN_CLASSES], nn_error *err);

#endif
