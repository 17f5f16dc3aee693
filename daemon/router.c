/* router — matches the raw request path against "/a/{p}/b" patterns segment by segment and
 * calls the route's handler with the percent-decoded params; answers 404, 405 and 400 itself. */
#include "router.h"
#include "buf.h"
#include "log.h"
#include "problem.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *method, *pattern;
    int nparams;
    router_fn fn;
    void *ud;
} route_t;

struct router {
    route_t *routes;
    size_t n, cap;
};

typedef struct {
    const char *p;
    size_t n;
} span_t;

router_t *router_new(void)
{
    return xcalloc(1, sizeof(router_t));
}

void router_free(router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->routes[i].method);
        free(r->routes[i].pattern);
    }
    free(r->routes);
    free(r);
}

/* Counts the {params} of a pattern; -1 when a brace is unbalanced or crosses a '/'. */
static int count_params(const char *pattern)
{
    int n = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p == '}') return -1;
        if (*p != '{') continue;
        size_t len = strcspn(p, "}/");
        if (p[len] != '}' || len < 2) return -1;
        n++;
        p += len;
    }
    return n;
}

void router_add(router_t *r, const char *method, const char *pattern, router_fn fn, void *ud)
{
    int np = count_params(pattern);
    if (pattern[0] != '/' || np < 0 || np > ROUTER_MAX_PARAMS) {
        log_msg(LOG_ERROR, "router: bad pattern %s %s", method, pattern);
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->routes = xrealloc(r->routes, r->cap * sizeof *r->routes);
    }
    route_t *rt = &r->routes[r->n++];
    rt->method = xstrdup(method);
    rt->pattern = xstrdup(pattern);
    rt->nparams = np;
    rt->fn = fn;
    rt->ud = ud;
}

/* Matches one segment. A {param} takes as much as it can and gives back on failure, so in
 * "{id}.{ext}" the extension is what follows the last dot. Params are never empty. */
static int match_seg(const char *p, size_t pl, const char *s, size_t sl, span_t *caps, int *nc)
{
    if (pl == 0) return sl == 0;
    if (*p != '{') {
        if (sl == 0 || *p != *s) return 0;
        return match_seg(p + 1, pl - 1, s + 1, sl - 1, caps, nc);
    }
    size_t used = (size_t)((const char *)memchr(p, '}', pl) - p) + 1;
    int slot = (*nc)++;
    for (size_t k = sl; k >= 1; k--) {
        caps[slot] = (span_t){s, k};
        *nc = slot + 1;
        if (match_seg(p + used, pl - used, s + k, sl - k, caps, nc)) return 1;
    }
    *nc = slot;
    return 0;
}

static int match_route(const route_t *rt, const char *path, span_t *caps, int *nc)
{
    const char *pp = rt->pattern, *sp = path;
    *nc = 0;
    for (;;) {
        size_t pl = strcspn(pp, "/"), sl = strcspn(sp, "/");
        if (!match_seg(pp, pl, sp, sl, caps, nc)) return 0;
        pp += pl;
        sp += sl;
        if (*pp != *sp) return 0;
        if (!*pp) return 1;
        pp++;
        sp++;
    }
}

static void allow_add(buf_t *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow->data; p && *p;) {
        size_t t = strcspn(p, ",");
        if (t == n && strncmp(p, method, n) == 0) return;
        p += t;
        while (*p == ',' || *p == ' ') p++;
    }
    if (allow->len) buf_puts(allow, ", ");
    buf_puts(allow, method);
}

/* Decodes the captured params into request-owned memory and calls the route. */
static void call_route(const route_t *rt, http_req_t *req, const span_t *caps, int nc)
{
    router_match_t *m = http_req_alloc(req, sizeof *m);
    memset(m, 0, sizeof *m);
    m->route = rt->pattern;
    m->nparams = nc;
    for (int i = 0; i < nc; i++) {
        char *out = http_req_alloc(req, caps[i].n + 1);
        if (http_pct_decode(caps[i].p, caps[i].n, out, caps[i].n + 1) < 0) {
            problem_send(req, 400, "bad-request", "Bad Request",
                         NULL, "badly percent-encoded path segment (or an encoded NUL)");
            return;
        }
        m->params[i] = out;
    }
    http_req_log_route(req, rt->pattern);
    rt->fn(req, m, rt->ud);
}

void router_dispatch(router_t *r, http_req_t *req)
{
    const char *method = http_req_method(req), *path = http_req_path(req);
    int head = strcmp(method, "HEAD") == 0;
    const route_t *best = NULL;
    int best_score = 0, best_nc = 0;
    span_t best_caps[ROUTER_MAX_PARAMS];
    buf_t allow = BUF_INIT;
    for (size_t i = 0; i < r->n; i++) {
        const route_t *rt = &r->routes[i];
        span_t caps[ROUTER_MAX_PARAMS];
        int nc;
        if (!match_route(rt, path, caps, &nc)) continue;
        allow_add(&allow, rt->method);
        int exact = strcmp(rt->method, method) == 0;
        if (!exact && !(head && strcmp(rt->method, "GET") == 0)) continue;
        /* The most literal route wins ("/v1/events/verify" before "/v1/events/{id}"). */
        int score = nc * 2 + !exact;
        if (best && score >= best_score) continue;
        best = rt, best_score = score, best_nc = nc;
        memcpy(best_caps, caps, sizeof caps);
    }
    if (best) {
        buf_free(&allow);
        call_route(best, req, best_caps, best_nc);
    } else if (allow.len) {
        buf_t hdr = BUF_INIT;
        buf_printf(&hdr, "Allow: %s\r\n", allow.data);
        problem_send(req, 405, "method-not-allowed", "Method Not Allowed", hdr.data,
                     "%s is not allowed here; use %s", method, allow.data);
        buf_free(&hdr);
        buf_free(&allow);
    } else {
        problem_send(req, 404, "not-found", "Not Found", NULL, "no resource at %s", path);
    }
}

void router_each(const router_t *r, void (*cb)(const char *method, const char *pattern, void *arg),
                 void *arg)
{
    for (size_t i = 0; i < r->n; i++) cb(r->routes[i].method, r->routes[i].pattern, arg);
}
