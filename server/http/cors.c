/* cors.c: see cors.h. */
#include "cors.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Bytes an origin ("scheme://host[:port]", or "null") may hold. */
static bool plausible_origin(const char *o) {
    if (!*o) return false;
    for (const unsigned char *p = (const unsigned char *)o; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ',' || *p == ';' || *p == '"') return false;
    return true;
}

const char *cors_match(const char *list, const char *origin) {
    if (!list || !*list) return NULL;
    const bool have_origin = origin && plausible_origin(origin);
    const size_t olen = have_origin ? strlen(origin) : 0;
    const char *p = list;
    while (*p) {
        /* One entry: skip spaces, take up to the next comma, trim spaces. */
        while (*p == ' ' || *p == '\t') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
        size_t len = (size_t)(end - start);
        if (len == 1 && *start == '*') return "*";
        if (have_origin && len == olen && strncasecmp(start, origin, len) == 0)
            return origin;
        if (*p == ',') p++;
    }
    return NULL;
}
