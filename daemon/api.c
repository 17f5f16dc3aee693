/* api — route registration with per-route roles, and the answers every handler shares. */
#include "api.h"
#include "log.h"
#include "problem.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct route {
    app_t *app;
    auth_role_t need;
    api_fn fn;
    struct route *next;
} route_t;

/* Carries the match across the asynchronous key lookup. */
typedef struct {
    route_t *route;
    router_match_t m;
} pending_t;

static void authed(http_req_t *req, const auth_principal_t *who, void *arg)
{
    pending_t *p = arg;
    route_t *rt = p->route;
    router_match_t m = p->m;
    free(p);
    if (!who) return; /* already answered */
    http_req_log_tenant(req, who->tenant);
    rt->fn(rt->app, req, &m, who);
}

static void dispatch(http_req_t *req, const router_match_t *m, void *ud)
{
    route_t *rt = ud;
    if (rt->need == AUTH_PUBLIC) {
        rt->fn(rt->app, req, m, NULL);
        return;
    }
    pending_t *p = xmalloc(sizeof *p);
    p->route = rt;
    p->m = *m;
    auth_require(rt->app->auth, req, rt->need, authed, p);
}

void api_route(app_t *app, const char *method, const char *pattern, auth_role_t need, api_fn fn)
{
    /* The router does not own its handlers' data: routes stay on the app's list. */
    route_t *rt = xmalloc(sizeof *rt);
    rt->app = app;
    rt->need = need;
    rt->fn = fn;
    rt->next = app->routes;
    app->routes = rt;
    router_add(app->router, method, pattern, dispatch, rt);
}

void api_send_buf(http_req_t *req, int status, buf_t *body, const char *extra_headers)
{
    size_t len = body->len;
    http_respond_owned(req, status, "application/json", buf_steal(body), len, extra_headers);
}

void api_send_json(http_req_t *req, int status, cJSON *j, const char *extra_headers)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) {
        problem_send(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    /* cJSON allocates with malloc, which http_respond_owned frees with free(). */
    http_respond_owned(req, status, "application/json", s, strlen(s), extra_headers);
}

static int is_json_type(const char *ct)
{
    if (!ct) return 0;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ') n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 1;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

cJSON *api_json_body(http_req_t *req)
{
    if (!is_json_type(http_req_header(req, "content-type"))) {
        problem_send(req, 415, "unsupported-media-type", "Unsupported media type", NULL,
                     "send Content-Type: application/json");
        return NULL;
    }
    size_t len;
    const char *body = http_req_body(req, &len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        size_t at = end ? (size_t)(end - body) : 0;
        problem_send(req, 400, "malformed-json", "Malformed JSON", NULL,
                     "malformed JSON at byte %zu", at);
        return NULL;
    }
    return j;
}

void api_store_failed(http_req_t *req, store_tx_t *tx, store_status_t st)
{
    if (st == STORE_UNAVAILABLE || st == STORE_LOST) {
        problem_send(req, 503, "unavailable", "Database unavailable", "Retry-After: 1\r\n",
                     "the database cannot be reached; retry shortly");
        return;
    }
    log_msg(LOG_ERROR, "database error %s: %s", store_tx_sqlstate(tx), store_tx_error(tx));
    problem_send(req, 500, "internal", "Internal error", NULL,
                 "the database refused the request (SQLSTATE %s)", store_tx_sqlstate(tx));
}

void api_free_routes(app_t *app)
{
    for (route_t *rt = app->routes, *next; rt; rt = next) {
        next = rt->next;
        free(rt);
    }
    app->routes = NULL;
}

int api_valid_code(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.') return 0;
    }
    return n >= 1 && n <= 64;
}
