/* test_image_decode.c: the one path from request bytes to model inputs
 * (server/input/image_decode.h, server/predict_request.h) against the
 * hostile inputs of issue 10, and the split of predict_handle.
 *
 *   - a JPEG with a frame header and no scan is refused (stb_image 2.27
 *     "decoded" it from uninitialised heap: another request's pixels);
 *   - an 8-bit BMP with a 1-entry palette and indices up to 255 is
 *     refused (stb read its uninitialised stack palette); the BMP palette
 *     rule is: every index must have an entry, else 400;
 *   - the same bytes give byte-identical answers after two different
 *     earlier allocations, for every corpus and hostile image;
 *   - a header over the limits or the pixel budget is refused as such,
 *     before any pixel memory exists;
 *   - a batch of 1-bit 4096x4096 PNGs is stopped by the decoded-pixel
 *     budget after the first (not decoded 256 times);
 *   - JSON numbers: `+1`, `.5`, `007`, `1.`, `-`, hex are 400 alone and in
 *     a batch; a flat array of a million values is refused before cJSON
 *     builds a node for each;
 *   - predict_parse + nn_predict + predict_render = predict_handle, to
 *     the byte. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "image_decode.h"
#include "predict_request.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------- */

static const served_model *test_model(void) {
    static served_model m;
    if (!m.net) {
        nn_error err;
        m.net = nn_net_create("784-16-10", "relu", &err);
        ck_assert_msg(m.net != NULL, "nn_net_create: %s", err.msg);
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        nn_net_init(m.net, &rng);
        strcpy(m.id, "test-784-16-10@000000000000");
        atomic_init(&m.refs, 1);
    }
    return &m;
}

static const predict_limits default_limits = {
    .max_width = PREDICT_DEFAULT_SIDE,
    .max_height = PREDICT_DEFAULT_SIDE,
    .max_batch = PREDICT_MAX_BATCH,
    .max_pixels = PREDICT_DEFAULT_MAX_PIXELS,
};

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    uint8_t *b = malloc(1 << 20);
    ck_assert_ptr_nonnull(b);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void put32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG (malloc'd, *len bytes) of w x h, of the given bit depth and
 * colour type (0 gray, 6 RGBA), whose raw scanlines (filter byte
 * included) are `raw`; ihdr_w/ihdr_h are what the header claims
 * (normally w, h). */
static uint8_t *make_png_typed(uint32_t ihdr_w, uint32_t ihdr_h, int bit_depth, int color_type,
                               const uint8_t *raw, size_t raw_len, size_t *len) {
    uLongf zlen = compressBound(raw_len);
    uint8_t *z = malloc(zlen);
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(compress2(z, &zlen, raw, raw_len, 9), Z_OK);
    size_t cap = 8 + 25 + 12 + zlen + 12;
    uint8_t *b = malloc(cap), *p = b;
    ck_assert_ptr_nonnull(b);
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    struct {
        const char *type;
        const uint8_t *data;
        size_t n;
    } chunks[3];
    uint8_t ihdr[13] = {0};
    put32be(ihdr, ihdr_w);
    put32be(ihdr + 4, ihdr_h);
    ihdr[8] = (uint8_t)bit_depth;
    ihdr[9] = (uint8_t)color_type; /* no interlace */
    chunks[0].type = "IHDR", chunks[0].data = ihdr, chunks[0].n = 13;
    chunks[1].type = "IDAT", chunks[1].data = z, chunks[1].n = zlen;
    chunks[2].type = "IEND", chunks[2].data = NULL, chunks[2].n = 0;
    for (int i = 0; i < 3; i++) {
        put32be(p, (uint32_t)chunks[i].n);
        memcpy(p + 4, chunks[i].type, 4);
        if (chunks[i].n) memcpy(p + 8, chunks[i].data, chunks[i].n);
        uLong crc = crc32(0, p + 4, (uInt)(4 + chunks[i].n));
        put32be(p + 8 + chunks[i].n, (uint32_t)crc);
        p += 12 + chunks[i].n;
    }
    free(z);
    *len = (size_t)(p - b);
    return b;
}

/* The same, gray. */
static uint8_t *make_png(uint32_t ihdr_w, uint32_t ihdr_h, int bit_depth, const uint8_t *raw,
                         size_t raw_len, size_t *len) {
    return make_png_typed(ihdr_w, ihdr_h, bit_depth, 0, raw, raw_len, len);
}

/* A 1-bit 4096x4096 PNG, white with a black bar: 16 Mpixel in a few KB. */
static uint8_t *one_bit_bomb(size_t *len) {
    const size_t row = 1 + 4096 / 8, n = row * 4096;
    uint8_t *raw = malloc(n);
    ck_assert_ptr_nonnull(raw);
    memset(raw, 0xff, n);
    for (size_t y = 0; y < 4096; y++) raw[y * row] = 0; /* filter: none */
    for (size_t y = 1000; y < 3000; y++) memset(raw + y * row + 1 + 200, 0, 40);
    uint8_t *png = make_png(4096, 4096, 1, raw, n, len);
    free(raw);
    return png;
}

/* Allocates blocks of many sizes filled with `fill`, then frees them: the
 * heap a decoder gets next holds those bytes wherever it does not write. */
static void dirty_heap(uint8_t fill) {
    static const size_t sizes[] = {17, 64, 271, 512, 1024, 2048, 4096, 8192,
                                   16384, 65536, 262144, 1 << 20};
    void *blocks[sizeof sizes / sizeof sizes[0] * 4];
    size_t k = 0;
    for (int rep = 0; rep < 4; rep++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            blocks[k] = malloc(sizes[i]);
            if (blocks[k]) memset(blocks[k], fill, sizes[i]);
            k++;
        }
    for (size_t i = 0; i < k; i++) free(blocks[i]);
}

static void outcome_free(predict_outcome *o) {
    free(o->body);
    o->body = NULL;
}

/* ---- the leaks of issue 10 ------------------------------------------ */

static const uint8_t jpeg_no_scan[17] = {0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x10,
                                         0x00, 0x10, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9};

START_TEST(test_jpeg_frame_without_scan_refused) {
    for (int round = 0; round < 2; round++) {
        dirty_heap(round ? 0x00 : 0xff);
        image_limits lim = {4096, 4096, PREDICT_DEFAULT_MAX_PIXELS};
        float input[NN_PIXELS];
        nn_error err;
        ck_assert_int_eq(image_to_input(jpeg_no_scan, sizeof jpeg_no_scan, &lim, input, &err),
                         IMAGE_DAMAGED);
        predict_outcome out;
        predict_handle("image/jpeg", jpeg_no_scan, sizeof jpeg_no_scan, true, &default_limits,
                       test_model(), &out);
        ck_assert_msg(out.status == 400, "status %d (%s)", out.status, out.message);
        ck_assert_ptr_null(out.body);
    }
}
END_TEST

/* An 8-bit 16x16 BMP: 40-byte info header, `entries` palette entries,
 * pixel indices (x * 16 + y) % 256. */
static size_t short_palette_bmp(uint8_t *b, int entries) {
    const int w = 16, h = 16;
    size_t off = 14 + 40 + 4 * (size_t)entries, n = off + (size_t)w * h;
    memset(b, 0, n);
    b[0] = 'B', b[1] = 'M';
    b[2] = (uint8_t)n, b[3] = (uint8_t)(n >> 8);
    b[10] = (uint8_t)off, b[11] = (uint8_t)(off >> 8);
    b[14] = 40;
    b[18] = (uint8_t)w, b[22] = (uint8_t)h;
    b[26] = 1, b[28] = 8;
    b[46] = (uint8_t)entries;
    for (int i = 0; i < entries; i++) memset(b + 54 + 4 * i, 0x80, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) b[off + (size_t)y * w + x] = (uint8_t)((x * 16 + y) % 256);
    return n;
}

START_TEST(test_bmp_palette_shorter_than_indices_refused) {
    uint8_t b[14 + 40 + 4 * 256 + 256];
    size_t n = short_palette_bmp(b, 1);
    for (int round = 0; round < 2; round++) {
        predict_outcome out;
        predict_handle("image/bmp", b, n, true, &default_limits, test_model(), &out);
        ck_assert_msg(out.status == 400 && strstr(out.message, "palette"), "status %d (%s)",
                      out.status, out.message);
        ck_assert_ptr_null(out.body);
    }
    /* the same pixels with a full palette decode */
    n = short_palette_bmp(b, 256);
    image_limits lim = {4096, 4096, PREDICT_DEFAULT_MAX_PIXELS};
    float *gray;
    int w, h;
    nn_error err;
    ck_assert_int_eq(image_decode(b, n, &lim, &gray, &w, &h, &err), IMAGE_OK);
    ck_assert_int_eq(w, 16);
    free(gray);
}
END_TEST

/* Every corpus image and every hostile one, through predict_handle with
 * the input echoed, after the heap was filled with 0x00, then 0xff, then
 * 0x5a: the three answers (status, message, body) are identical. */
static void same_answer_whatever_the_heap(const char *dir) {
    DIR *d = opendir(tu_source_path(dir));
    ck_assert_msg(d != NULL, "cannot list %s", dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *bytes = read_all(tu_source_path(rel), &len);
        predict_outcome first;
        static const uint8_t fills[3] = {0x00, 0xff, 0x5a};
        for (int k = 0; k < 3; k++) {
            dirty_heap(fills[k]);
            predict_outcome out;
            predict_handle("image/png", bytes, len, true, &default_limits, test_model(),
                           &out);
            if (k == 0) {
                first = out;
                continue;
            }
            ck_assert_msg(out.status == first.status && strcmp(out.message, first.message) == 0,
                          "%s: status %d (%s), then %d (%s)", rel, first.status,
                          first.message, out.status, out.message);
            ck_assert_msg(out.body_len == first.body_len &&
                              (!out.body || memcmp(out.body, first.body, out.body_len) == 0),
                          "%s: another answer after other heap contents", rel);
            outcome_free(&out);
        }
        outcome_free(&first);
        free(bytes);
        files++;
    }
    closedir(d);
    ck_assert_int_gt(files, 5);
}

START_TEST(test_same_bytes_same_answer_corpus) {
    same_answer_whatever_the_heap("tests/fuzz/corpus/fuzz_image");
}
END_TEST

START_TEST(test_same_bytes_same_answer_hostile) {
    same_answer_whatever_the_heap("tests/fuzz/regressions/fuzz_image");
}
END_TEST

/* ---- limits from the header ---------------------------------------- */

START_TEST(test_huge_png_header_refused_before_allocation) {
    uint8_t raw[2] = {0, 0};
    size_t len;
    /* 100000 x 100000: over any side limit (40 GB of RGBA if allocated) */
    uint8_t *png = make_png(100000, 100000, 8, raw, sizeof raw, &len);
    image_limits lim = {IMAGE_MAX_SIDE, IMAGE_MAX_SIDE, INT64_MAX};
    float *gray = NULL;
    int w, h;
    nn_error err;
    ck_assert_int_eq(image_decode(png, len, &lim, &gray, &w, &h, &err), IMAGE_TOO_LARGE);
    ck_assert_msg(strstr(err.msg, "100000x100000"), "%s", err.msg);
    ck_assert_int_eq(lim.pixels_left, INT64_MAX); /* nothing spent */
    free(png);
    /* 16000 x 16000: within the sides, over the 16 Mpixel budget; the data
     * is 2 bytes, so only a refusal from the header says "budget" */
    png = make_png(16000, 16000, 8, raw, sizeof raw, &len);
    image_limits lim2 = {IMAGE_MAX_SIDE, IMAGE_MAX_SIDE, PREDICT_DEFAULT_MAX_PIXELS};
    ck_assert_int_eq(image_decode(png, len, &lim2, &gray, &w, &h, &err), IMAGE_OVER_BUDGET);
    ck_assert_int_eq(lim2.pixels_left, PREDICT_DEFAULT_MAX_PIXELS);
    ck_assert_ptr_null(gray);
    free(png);
}
END_TEST

START_TEST(test_jpeg_over_side_limit_is_422) {
    size_t len;
    uint8_t *jpg = read_all(tu_source_path("tests/fuzz/corpus/fuzz_image/colour.jpg"), &len);
    predict_limits small = default_limits;
    small.max_width = small.max_height = 8;
    predict_outcome out;
    predict_handle("image/jpeg", jpg, len, false, &small, test_model(), &out);
    ck_assert_msg(out.status == 422 && strstr(out.message, "the limit is 8x8"), "%d %s",
                  out.status, out.message);
    /* cut in half: libjpeg's "premature end" is an error, not grey fill */
    predict_handle("image/jpeg", jpg, len / 2, false, &default_limits, test_model(), &out);
    ck_assert_msg(out.status == 400, "%d %s", out.status, out.message);
    free(jpg);
    /* one scan per component, EOI after the first: no warning from
     * libjpeg, which would paint the chroma grey; refused here */
    jpg = read_all(tu_source_path("tests/fuzz/regressions/fuzz_image/"
                                  "jpeg-eoi-before-chroma-scans"),
                   &len);
    predict_handle("image/jpeg", jpg, len, false, &default_limits, test_model(), &out);
    ck_assert_msg(out.status == 400 && strstr(out.message, "component"), "%d %s", out.status,
                  out.message);
    free(jpg);
}
END_TEST

START_TEST(test_pixel_budget_stops_a_batch_of_bombs) {
    size_t len;
    uint8_t *png = one_bit_bomb(&len);
    ck_assert_uint_lt(len, 16384);
    /* alone it is a usable image */
    predict_outcome out;
    predict_handle("image/png", png, len, false, &default_limits, test_model(), &out);
    ck_assert_msg(out.status == 200, "%d %s", out.status, out.message);
    outcome_free(&out);

    /* 256 of them in one JSON batch: the first spends the whole 16 Mpixel
     * budget, the second is refused from its header */
    cJSON *batch = cJSON_CreateArray();
    size_t b64_len = 4 * ((len + 2) / 3) + 1;
    char *b64 = malloc(b64_len);
    ck_assert_ptr_nonnull(b64);
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)png[i] << 16 | (i + 1 < len ? (uint32_t)png[i + 1] << 8 : 0) |
                     (i + 2 < len ? png[i + 2] : 0);
        b64[o++] = alphabet[v >> 18 & 63];
        b64[o++] = alphabet[v >> 12 & 63];
        b64[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        b64[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    b64[o] = '\0';
    for (int i = 0; i < PREDICT_MAX_BATCH; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "image", b64);
        cJSON_AddItemToArray(batch, item);
    }
    char *body = cJSON_PrintUnformatted(batch);
    cJSON_Delete(batch);
    free(b64);
    predict_handle("application/json", (const uint8_t *)body, strlen(body), false,
                   &default_limits, test_model(), &out);
    ck_assert_msg(out.status == 422 && strncmp(out.message, "input 1: ", 9) == 0 &&
                      strstr(out.message, "decoded pixels"),
                  "%d %s", out.status, out.message);
    free(body);
    free(png);
}
END_TEST

/* ---- JSON ---------------------------------------------------------- */

/* {"pixels": [784 values]} with `token` as pixel 400 and a bar of ink. */
static char *pixels_with(const char *token) {
    size_t cap = 784 * 8 + 64;
    char *s = malloc(cap), *p = s;
    ck_assert_ptr_nonnull(s);
    p += sprintf(p, "{\"pixels\": [");
    for (int i = 0; i < NN_PIXELS; i++)
        p += sprintf(p, "%s%s", i ? "," : "",
                     i == 400 ? token : (i >= 300 && i < 328) ? "255" : "0");
    sprintf(p, "]}");
    return s;
}

START_TEST(test_json_numbers_agree_alone_and_in_batch) {
    static const char *const bad[] = {"+1", ".5", "007", "1.", "-",  "0x1",
                                      "1e", "--1", "1.e5", "00", "01", "255a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *one = pixels_with(bad[i]);
        char *batch = malloc(strlen(one) * 2 + 8);
        ck_assert_ptr_nonnull(batch);
        sprintf(batch, "[%s,%s]", one, one);
        predict_outcome out;
        predict_handle("application/json", (const uint8_t *)one, strlen(one), false,
                       &default_limits, test_model(), &out);
        ck_assert_msg(out.status == 400, "%s alone: %d %s", bad[i], out.status, out.message);
        predict_handle("application/json", (const uint8_t *)batch, strlen(batch), false,
                       &default_limits, test_model(), &out);
        ck_assert_msg(out.status == 400, "%s in a batch: %d %s", bad[i], out.status,
                      out.message);
        free(one);
        free(batch);
    }
    static const char *const good[] = {"0",   "-0", "1",   "0.5", "1e2", "2.5E-1", "1E+2",
                                       "255", "7",  "10",  "99",  "100", "25.5",   "2550e-1",
                                       "0.0", "1.0", "0e5", "3E0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *one = pixels_with(good[i]);
        char *batch = malloc(strlen(one) + 8);
        ck_assert_ptr_nonnull(batch);
        sprintf(batch, "[%s]", one);
        /* The single body takes the fast reader, the batch cJSON: the same
         * input values, bit for bit. */
        predict_inputs ia = {0}, ib = {0};
        predict_outcome oa, ob;
        ck_assert_int_eq(predict_parse(BODY_JSON, "application/json", (const uint8_t *)one,
                                       strlen(one), &default_limits, &ia, &oa),
                         0);
        ck_assert_int_eq(predict_parse(BODY_JSON, "application/json", (const uint8_t *)batch,
                                       strlen(batch), &default_limits, &ib, &ob),
                         0);
        ck_assert_int_eq(ia.n, 1);
        ck_assert_int_eq(ib.n, 1);
        ck_assert_msg(memcmp(ia.inputs, ib.inputs, NN_PIXELS * sizeof(float)) == 0,
                      "%s: the fast reader's input differs from cJSON's", good[i]);
        predict_inputs_free(&ia);
        predict_inputs_free(&ib);
        predict_outcome a, b;
        predict_handle("application/json", (const uint8_t *)one, strlen(one), false,
                       &default_limits, test_model(), &a);
        predict_handle("application/json", (const uint8_t *)batch, strlen(batch), false,
                       &default_limits, test_model(), &b);
        ck_assert_msg(a.status == 200 && b.status == 200, "%s: %d %s / %d %s", good[i],
                      a.status, a.message, b.status, b.message);
        outcome_free(&a);
        outcome_free(&b);
        free(one);
        free(batch);
    }
}
END_TEST

static size_t cjson_allocs;
static void *counting_malloc(size_t n) {
    cjson_allocs++;
    return malloc(n);
}

START_TEST(test_flat_array_refused_before_the_tree) {
    const size_t n = 2000000; /* "[1,1,...]": 4 MB */
    char *body = malloc(2 * n + 2);
    ck_assert_ptr_nonnull(body);
    body[0] = '[';
    for (size_t i = 0; i < n; i++) {
        body[1 + 2 * i] = '1';
        body[2 + 2 * i] = i + 1 < n ? ',' : ']';
    }
    cJSON_Hooks hooks = {counting_malloc, free};
    cJSON_InitHooks(&hooks);
    static const char *const wrappers[][2] = {{"", ""}, {"{\"instances\": [", "]}"},
                                              {"[", "]"}, {"{\"pixels\": ", "}"}};
    for (size_t k = 0; k < sizeof wrappers / sizeof wrappers[0]; k++) {
        size_t len = strlen(wrappers[k][0]) + 2 * n + 1 + strlen(wrappers[k][1]);
        char *b = malloc(len + 1);
        ck_assert_ptr_nonnull(b);
        sprintf(b, "%s%.*s%s", wrappers[k][0], (int)(2 * n + 1), body, wrappers[k][1]);
        cjson_allocs = 0;
        predict_outcome out;
        predict_handle("application/json", (const uint8_t *)b, len, false, &default_limits,
                       test_model(), &out);
        ck_assert_msg(out.status == 422, "wrapper %zu: %d %s", k, out.status, out.message);
        ck_assert_msg(cjson_allocs < 16, "wrapper %zu: cJSON allocated %zu times", k,
                      cjson_allocs);
        free(b);
    }
    cJSON_InitHooks(NULL);
    free(body);
}
END_TEST

/* ---- the split ----------------------------------------------------- */

START_TEST(test_parse_predict_render_is_handle) {
    size_t len;
    uint8_t *png = read_all(tu_source_path("tests/fuzz/corpus/fuzz_image/gray.png"), &len);
    char *px = pixels_with("0");
    char *batch = malloc(strlen(px) * 2 + 64);
    ck_assert_ptr_nonnull(batch);
    sprintf(batch, "{\"instances\": [%s, %s]}", px, px);
    struct {
        const char *type;
        const uint8_t *body;
        size_t len;
    } cases[] = {
        {"image/png", png, len},
        {"application/json", (const uint8_t *)px, strlen(px)},
        {"application/json; charset=utf-8", (const uint8_t *)batch, strlen(batch)},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int include = 0; include < 2; include++) {
            predict_outcome whole, parsed, rendered;
            predict_handle(cases[c].type, cases[c].body, cases[c].len, include,
                           &default_limits, test_model(), &whole);
            ck_assert_int_eq(whole.status, 200);
            predict_inputs in;
            ck_assert_int_eq(predict_parse(predict_body_kind_of(cases[c].type), cases[c].type,
                                           cases[c].body, cases[c].len, &default_limits, &in,
                                           &parsed),
                             0);
            nn_answer *answers = calloc((size_t)in.n, sizeof *answers);
            nn_error err;
            ck_assert_int_eq(nn_classify(test_model()->net, in.inputs, in.n, answers, 1, &err),
                             0);
            predict_render(&in, answers, test_model(), include, &rendered);
            ck_assert_int_eq(rendered.status, 200);
            ck_assert_int_eq(rendered.n, whole.n);
            ck_assert_str_eq(rendered.body, whole.body);
            ck_assert_int_eq(memcmp(rendered.per_digit, whole.per_digit, sizeof whole.per_digit),
                             0);
            free(answers);
            predict_inputs_free(&in);
            ck_assert_ptr_null(in.inputs);
            outcome_free(&whole);
            outcome_free(&rendered);
        }
    /* a refusal: -1, status and message, nothing allocated */
    predict_inputs in;
    predict_outcome err_out;
    ck_assert_int_eq(predict_parse(BODY_JSON, "application/json", (const uint8_t *)"[]", 2,
                                   &default_limits, &in, &err_out),
                     -1);
    ck_assert_int_eq(err_out.status, 422);
    ck_assert_ptr_null(in.inputs);
    free(batch);
    free(px);
    free(png);
}
END_TEST

/* ---- RGBA to gray ----------------------------------------------------- */

/* The plain expressions of image_decode.c's header comment, which its
 * tables and shortcuts must reproduce bit for bit. */
static float ref_luma(const uint8_t *px) {
    return (0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]) / 255.0f;
}
static void ref_gray(const uint8_t *rgba, size_t n, float *out) {
    double cover = 0, lum_sum = 0;
    int translucent = 0;
    for (size_t i = 0; i < n; i++) {
        double a = rgba[4 * i + 3] / 255.0;
        translucent |= rgba[4 * i + 3] != 255;
        cover += a;
        lum_sum += a * ref_luma(rgba + 4 * i);
    }
    float mean = cover > 0 ? (float)(lum_sum / cover) : 1.0f;
    float bg = cover < 0.5 * (double)n ? (mean < 0.5f ? 1.0f : 0.0f) : mean;
    for (size_t i = 0; i < n; i++) {
        float a = rgba[4 * i + 3] / 255.0f;
        out[i] = translucent ? a * ref_luma(rgba + 4 * i) + (1.0f - a) * bg
                             : ref_luma(rgba + 4 * i);
    }
}

/* Random RGBA images of every kind the shortcuts tell apart (opaque gray,
 * opaque colour, transparent with opaque ink, translucent paper with
 * holes, translucent colour ink): image_decode's gray must be the bits of
 * the plain expressions. */
START_TEST(test_rgba_to_gray_matches_the_expressions) {
    enum { W = 23, H = 17 };
    uint32_t seed = 12345;
#define RND() (seed = seed * 1664525u + 1013904223u, (uint8_t)(seed >> 24))
    for (int kind = 0; kind < 5; kind++)
        for (int rep = 0; rep < 4; rep++) {
            uint8_t rgba[W * H * 4], raw[H * (1 + W * 4)];
            for (int i = 0; i < W * H; i++) {
                uint8_t *px = rgba + 4 * i, v = RND();
                bool ink = RND() < 80;
                switch (kind) {
                case 0: px[0] = px[1] = px[2] = v, px[3] = 255; break;
                case 1: px[0] = v, px[1] = RND(), px[2] = RND(), px[3] = 255; break;
                case 2: px[0] = px[1] = px[2] = ink ? v : 0, px[3] = ink ? 255 : 0; break;
                case 3: px[0] = px[1] = px[2] = v, px[3] = ink ? 0 : 200; break;
                default: px[0] = v, px[1] = RND(), px[2] = 30, px[3] = ink ? RND() : 0; break;
                }
            }
            for (int y = 0; y < H; y++) {
                raw[y * (1 + W * 4)] = 0;
                memcpy(raw + y * (1 + W * 4) + 1, rgba + y * W * 4, W * 4);
            }
            size_t len;
            uint8_t *png = make_png_typed(W, H, 8, 6, raw, sizeof raw, &len);
            image_limits lim = {4096, 4096, PREDICT_DEFAULT_MAX_PIXELS};
            float *gray, want[W * H];
            int w, h;
            nn_error err;
            ck_assert_int_eq(image_decode(png, len, &lim, &gray, &w, &h, &err), IMAGE_OK);
            ck_assert_int_eq(w, W);
            ck_assert_int_eq(h, H);
            ref_gray(rgba, W * H, want);
            ck_assert_msg(memcmp(gray, want, sizeof want) == 0, "kind %d: gray differs", kind);
            free(gray);
            free(png);
        }
#undef RND
}
END_TEST

/* libpng is told to skip zlib's Adler-32 (decode_png.c): a stream whose
 * Adler-32 is wrong but whose chunk CRCs are right decodes to the same
 * input, and a chunk whose CRC is wrong is still refused. */
START_TEST(test_png_checksums) {
    enum { S = 28 };
    uint8_t raw[S * (1 + S)];
    memset(raw, 0xff, sizeof raw);
    for (int y = 0; y < S; y++) {
        raw[y * (1 + S)] = 0;
        if (y > 5 && y < 22) memset(raw + y * (1 + S) + 12, 0, 4);
    }
    size_t len;
    uint8_t *png = make_png(S, S, 8, raw, sizeof raw, &len);
    image_limits lim = {4096, 4096, PREDICT_DEFAULT_MAX_PIXELS};
    float want[NN_PIXELS], got[NN_PIXELS];
    nn_error err;
    ck_assert_int_eq(image_to_input(png, len, &lim, want, &err), IMAGE_OK);
    /* IDAT: after the signature and IHDR (8 + 25 bytes); its data ends
     * with the Adler-32, then comes its CRC */
    uint8_t *idat = png + 8 + 25;
    uint32_t n = (uint32_t)idat[0] << 24 | idat[1] << 16 | idat[2] << 8 | idat[3];
    uint8_t *adler = idat + 8 + n - 4;
    adler[3] ^= 0x5a;
    put32be(idat + 8 + n, (uint32_t)crc32(0, idat + 4, 4 + n));
    lim.pixels_left = PREDICT_DEFAULT_MAX_PIXELS;
    ck_assert_int_eq(image_to_input(png, len, &lim, got, &err), IMAGE_OK);
    ck_assert_int_eq(memcmp(got, want, sizeof want), 0);
    adler[3] ^= 0x5a; /* the CRC is now wrong */
    lim.pixels_left = PREDICT_DEFAULT_MAX_PIXELS;
    ck_assert_int_eq(image_to_input(png, len, &lim, got, &err), IMAGE_DAMAGED);
    free(png);
}
END_TEST

static Suite *image_decode_suite(void) {
    Suite *s = suite_create("image_decode");
    TCase *leaks = tcase_create("leaks");
    tcase_add_test(leaks, test_jpeg_frame_without_scan_refused);
    tcase_add_test(leaks, test_bmp_palette_shorter_than_indices_refused);
    tcase_add_test(leaks, test_same_bytes_same_answer_corpus);
    tcase_add_test(leaks, test_same_bytes_same_answer_hostile);
    suite_add_tcase(s, leaks);
    TCase *limits = tcase_create("limits");
    tcase_set_timeout(limits, 600);
    tcase_add_test(limits, test_huge_png_header_refused_before_allocation);
    tcase_add_test(limits, test_jpeg_over_side_limit_is_422);
    tcase_add_test(limits, test_pixel_budget_stops_a_batch_of_bombs);
    suite_add_tcase(s, limits);
    TCase *json = tcase_create("json");
    tcase_set_timeout(json, 600);
    tcase_add_test(json, test_json_numbers_agree_alone_and_in_batch);
    tcase_add_test(json, test_flat_array_refused_before_the_tree);
    tcase_add_test(json, test_parse_predict_render_is_handle);
    suite_add_tcase(s, json);
    TCase *gray = tcase_create("gray");
    tcase_add_test(gray, test_rgba_to_gray_matches_the_expressions);
    tcase_add_test(gray, test_png_checksums);
    suite_add_tcase(s, gray);
    return s;
}

int main(void) { return tu_run(image_decode_suite()); }
