/* json_shape.h: one cheap pass over a JSON text before cJSON builds a tree.
 *
 * cJSON allocates a node (64 bytes) per value and recurses per level, so a
 * 4 MB body of "0,0,0,..." costs 128 MB, and deep nesting costs stack.
 * Both request parsers of JSON (POST /predict, server/input/
 * predict_request.c, and the v2 protocol's infer, server/http/routes_v2.c)
 * scan first and refuse a body nested too deep or holding more values than
 * their batch limit can use; the scan also finds numbers JSON does not
 * allow (json_number.h), which cJSON alone would take. */
#ifndef DIGITD_JSON_SHAPE_H
#define DIGITD_JSON_SHAPE_H

#include <stddef.h>
#include <stdint.h>

/* A /predict batch is depth 4 ([ { "pixels": [ [ rows ), a v2 request 7
 * ({ "inputs": [ { "data": [N, 1, 28, 28] nested ); anything much deeper
 * is refused before cJSON's recursive parser sees it. */
#define JSON_MAX_DEPTH 16

/* JSON values one input may hold: {"pixels": 28 rows of 28} is 815 (the
 * object, its key, the outer array, 28 rows, 784 numbers), a v2 FP32
 * sample [1,28,28] 813, with room for a few fields we ignore. A body with
 * more than max_batch times this (plus a few for the batch itself) is
 * refused before cJSON builds a node for each value. */
#define JSON_VALUES_PER_INPUT 1024

/* The most values a body of at most max_batch inputs may hold. */
static inline size_t json_values_max(int max_batch) {
    return (size_t)max_batch * JSON_VALUES_PER_INPUT + 16;
}

/* What the scan finds. */
typedef struct {
    int depth;          /* deepest nesting of arrays and objects */
    size_t values;      /* numbers, strings (keys too), literals, arrays,
                           objects: an upper bound of cJSON's nodes */
    size_t root_items;  /* values directly inside the root, when the root
                           is an array (a batch); else 0 */
    size_t bad_at;      /* byte offset of the first token that starts like a
                           number but is not a JSON number, or SIZE_MAX */
} json_shape;

/* Scans b (len bytes): strings skipped (escapes included), every token
 * outside them that starts with a digit, '-', '+' or '.' checked with
 * json_number_len. Stops at the first bad number, or as soon as the
 * nesting passes depth_limit. Linear in len; allocates nothing. */
json_shape json_scan(const uint8_t *b, size_t len, int depth_limit);

#endif
