/* routes_static.c: the drawing page and its files from the web root
 * (static_files.h keeps every path inside it). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "routes.h"

bool route_static_exists(exchange *x) {
    static_file f;
    if (static_open(ex_server(x)->web, ex_path(x), &f) != 0) return false;
    close(f.fd);
    return true;
}

void route_static(exchange *x) {
    static_file f;
    if (static_open(ex_server(x)->web, ex_path(x), &f) != 0) {
        ex_error(x, 404, "no such page");
        return;
    }
    /* The file's own strings live in f, which ends with this call; the
     * header values must outlive the request, so they are copied into the
     * request's state. */
    char *etag = ex_state(x);
    snprintf(etag, 64, "%s", f.etag);
    ex_add_header(x, "Cache-Control", f.cache_control);
    ex_add_header(x, "ETag", etag);
    const char *inm = ex_header(x, "If-None-Match");
    if (inm && strstr(inm, f.etag) != NULL) {
        close(f.fd);
        ex_send_file(x, 304, -1, 0, NULL);
        return;
    }
    ex_send_file(x, 200, f.fd, f.size, f.content_type);
}
