/* cors.h: which origin a CORS answer names.
 *
 * --cors-origin takes a comma-separated list of origins
 * ("https://a.com,https://b.com", spaces around commas allowed) or "*".
 * Access-Control-Allow-Origin may name only one origin, so the daemon
 * answers with the request's Origin when it is in the list, and sends no
 * CORS header otherwise (the browser then refuses, as it should). */
#ifndef DIGITD_CORS_H
#define DIGITD_CORS_H

/* The value for Access-Control-Allow-Origin, or NULL for none:
 * - "*" when the list holds "*";
 * - `origin` itself (the caller's pointer) when it equals an entry of the
 *   list exactly, or ignoring ASCII case in the scheme and host, as
 *   origins compare;
 * - NULL when origin or list is NULL or empty, when it matches nothing, or
 *   when origin holds a byte that cannot be in an origin (controls, space,
 *   comma): it is untrusted and must never reach a header as is.
 * With "*" in the list the answer also says "Vary: Origin" is not needed;
 * for a named origin the caller should send "Vary: Origin". */
const char *cors_match(const char *list, const char *origin);

#endif
