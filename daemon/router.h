/* router — maps "METHOD /path/{param}" patterns to handlers; answers 404 and 405 itself. */
#ifndef CIRCA_ROUTER_H
#define CIRCA_ROUTER_H
#include "http.h"

typedef struct router router_t;

#define ROUTER_MAX_PARAMS 4

/* params[i] are the percent-decoded {…} segments of the path, in order (NUL-terminated,
 * valid until http_respond). route is the pattern, e.g. "/v1/events/{id}", for logs and
 * /metrics. */
typedef struct {
    const char *route;
    const char *params[ROUTER_MAX_PARAMS];
    int nparams;
} router_match_t;

typedef void (*router_fn)(http_req_t *req, const router_match_t *m, void *ud);

router_t *router_new(void);            /* freed with router_free */
void router_free(router_t *r);
/* pattern: "/v1/events/{id}"; a {…} segment matches one non-empty path segment. A pattern
 * may end in ".{ext}" inside a segment: "/v1/reports/{id}.{ext}". */
void router_add(router_t *r, const char *method, const char *pattern, router_fn fn, void *ud);
/* Dispatches; unknown path -> 404 problem, known path with another method -> 405 with Allow. */
void router_dispatch(router_t *r, http_req_t *req);
/* Every registered "METHOD pattern", for the OpenAPI conformance test. cb is called per route. */
void router_each(const router_t *r, void (*cb)(const char *method, const char *pattern, void *arg),
                 void *arg);

#endif
