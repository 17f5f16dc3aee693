/* problem — RFC 9457 application/problem+json answers. */
#ifndef CIRCA_PROBLEM_H
#define CIRCA_PROBLEM_H
#include "buf.h"
#include "errlist.h"
#include "http.h"

/* Appends the problem+json object to out (errs may be NULL: no "errors" key). http uses it
 * for the answers it gives itself (400, 408, 413, 431). */
void problem_json(buf_t *out, int status, const char *type_slug, const char *title,
                  const errlist_t *errs, const char *detail);

/* type_slug "invalid-event" becomes "type": "/problems/invalid-event". detail is printf-style.
 * extra_headers as for http_respond (e.g. "Retry-After: 1\r\n"). */
void problem_send(http_req_t *req, int status, const char *type_slug, const char *title,
                  const char *extra_headers, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same with an "errors": [{"index","field","message"}] array (index left out when -1). */
void problem_send_errors(http_req_t *req, int status, const char *type_slug, const char *title,
                         const errlist_t *errs, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
