/* metrics — HTTP side of the metrics: checks query parameters and bodies, runs one statement of
 * schema/007 per request and passes its JSON document through. */
#include "metrics.h"
#include "api.h"
#include "errlist.h"
#include "problem.h"
#include "tenants.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Q_SLUG "invalid-query"
#define Q_TITLE "Invalid query parameter"

const store_stmt_t metrics_stmts[] = {
    {"metrics_get",
     "SELECT circa_metrics($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, ''), "
     "nullif($7, ''))::text"},
    {"metrics_flows",
     "SELECT circa_flows($1, $2, $3, nullif($4, ''), nullif($5, ''), nullif($6, ''), "
     "nullif($7, ''))::text"},
    {"metrics_item", "SELECT circa_item_lifecycles($1, $2)::text"},
    {"metrics_trace", "SELECT circa_lot_trace($1, $2, $3)::text"},
    {"metrics_mci",
     "SELECT circa_product_mci($1, $2, nullif($3, ''), nullif($4, ''), "
     "nullif($5, '')::float8, nullif($6, '')::float8)::text"},
    {"metrics_tenant_get", "SELECT circa_tenant_get($1)::text"},
    {"metrics_tenant_put", "SELECT circa_tenant_put($1, $2::jsonb)::text"},
    {NULL, NULL},
};

/* One request in flight: what a 404 names, and whose settings a PUT changed. */
typedef struct {
    app_t *app;
    http_req_t *req;
    char tenant[65];
    const char *what;      /* "item", "lot", "product" */
    char id[201];
    int tenant_put;
} call_t;

/* ---- parameters -------------------------------------------------------------------------- */

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* YYYY-MM-DD; the database refuses impossible days such as 02-30 (then 400). */
static int is_date(const char *s)
{
    return digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2);
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM). */
static int is_time(const char *s)
{
    if (strlen(s) < 20 || !is_date(s) || (s[10] != 'T' && s[10] != 't')) return 0;
    const char *t = s + 11;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2))
        return 0;
    t += 8;
    if (*t == '.') {
        if (!digits(++t, 1)) return 0;
        while (*t >= '0' && *t <= '9') t++;
    }
    if ((*t == 'Z' || *t == 'z') && !t[1]) return 1;
    return (*t == '+' || *t == '-') && digits(t + 1, 2) && t[3] == ':' && digits(t + 4, 2) && !t[6];
}

static int bad_query(http_req_t *req, const char *msg)
{
    problem_send(req, 400, Q_SLUG, Q_TITLE, NULL, "%s", msg);
    return -1;
}

/* ?name= as a date or time into out ("" when absent and optional); -1 when answered. An
 * unencoded '+' of an offset arrives as a space, and a space is never part of a time. */
static int query_bound(http_req_t *req, const char *name, int required, char *out, size_t len)
{
    int n = http_query_get(http_req_query(req), name, out, len);
    if (n == -1 && !required) {
        out[0] = '\0';
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (out[i] == ' ') out[i] = '+';
    if (n >= 0 && ((n == 10 && is_date(out)) || is_time(out))) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s a date (YYYY-MM-DD) or an RFC 3339 time", name,
             n == -1 ? "is required:" : "must be");
    return bad_query(req, msg);
}

/* ?name= as a master-data code into out ("" when absent); -1 when answered. */
static int query_code(http_req_t *req, const char *name, char *out, size_t len)
{
    int n = http_query_get(http_req_query(req), name, out, len);
    if (n == -1) {
        out[0] = '\0';
        return 0;
    }
    if (n >= 0 && api_valid_code(out)) return 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a code: 1 to 64 letters, digits, '-', '_' or '.'", name);
    return bad_query(req, msg);
}

/* ?name= as a number > 0 into out ("" when absent); -1 when answered. */
static int query_positive(http_req_t *req, const char *name, char *out, size_t len)
{
    int n = http_query_get(http_req_query(req), name, out, len);
    if (n == -1) {
        out[0] = '\0';
        return 0;
    }
    char *end = NULL;
    double v = n > 0 ? strtod(out, &end) : NAN;
    if (n > 0 && end && !*end && isfinite(v) && v > 0) return 0;
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number greater than 0", name);
    return bad_query(req, msg);
}

/* Ids of items and lots: 1–200 printable ASCII characters, no space (as events have them). */
static int valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] <= ' ' || s[n] > '~') return 0;
    return n >= 1 && n <= 200;
}

/* ---- answers ----------------------------------------------------------------------------- */

static call_t *call_new(app_t *app, http_req_t *req, const auth_principal_t *who,
                        const char *what, const char *id)
{
    call_t *c = xcalloc(1, sizeof *c);
    c->app = app;
    c->req = req;
    snprintf(c->tenant, sizeof c->tenant, "%s", who->tenant);
    c->what = what;
    snprintf(c->id, sizeof c->id, "%s", id ? id : "");
    return c;
}

/* A refusal the client caused: a bad value (class 22), an unknown time zone, a product without
 * mass. 1 when answered. */
static int client_error(call_t *c, store_tx_t *tx)
{
    const char *state = store_tx_sqlstate(tx), *msg = store_tx_error(tx);
    if (strncmp(state, "22", 2) == 0) {
        problem_send(c->req, 400, Q_SLUG, Q_TITLE, NULL, "%s", msg);
        return 1;
    }
    if (strcmp(state, "CA301") == 0) {
        const char *tab = strchr(msg, '\t');
        errlist_t errs = ERRLIST_INIT;
        errlist_add(&errs, -1, "time_zone", "%.200s", tab ? tab + 1 : msg);
        problem_send_errors(c->req, 422, "invalid-tenant", "Invalid tenant settings", &errs,
                            "the tenant settings are invalid: 1 error");
        errlist_free(&errs);
        return 1;
    }
    if (strcmp(state, "CA310") == 0) {
        problem_send(c->req, 422, "mci-unavailable", "MCI unavailable", NULL, "%s", msg);
        return 1;
    }
    return 0;
}

static void answered(store_tx_t *tx, store_status_t st, void *arg)
{
    call_t *c = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r && st == STORE_SQL_ERROR && client_error(c, tx)) {
        /* answered */
    } else if (!r || PQntuples(r) != 1) {
        api_store_failed(c->req, tx, st);
    } else if (PQgetisnull(r, 0, 0)) {
        problem_send(c->req, 404, "not-found", "Not found", NULL, "no %s '%.200s'",
                     c->what ? c->what : "tenant", c->id);
    } else {
        /* The cached settings (mode, tolerance, zone) reload with the tenant state. */
        if (c->tenant_put) tenants_md_changed(c->app->tenants, c->tenant);
        const char *json = PQgetvalue(r, 0, 0);
        http_respond(c->req, 200, "application/json", json, strlen(json), NULL);
    }
    free(c);
}

static void run(call_t *c, const char *stmt, int n, const char *const *params)
{
    store_tx_t *tx = store_tx_new(c->app->store, answered, c);
    store_tx_exec(tx, stmt, n, params, NULL, NULL);
    store_tx_submit(tx);
}

/* ---- handlers ---------------------------------------------------------------------------- */

/* /v1/metrics and /v1/flows share their parameters: from, to, party, site, material, product. */
static void scoped(app_t *app, http_req_t *req, const auth_principal_t *who, const char *stmt)
{
    char from[64], to[64], party[80], site[80], material[80], product[80];
    if (query_bound(req, "from", 1, from, sizeof from) ||
        query_bound(req, "to", 1, to, sizeof to) ||
        query_code(req, "party", party, sizeof party) ||
        query_code(req, "site", site, sizeof site) ||
        query_code(req, "material", material, sizeof material) ||
        query_code(req, "product", product, sizeof product))
        return;
    const char *p[7] = {who->tenant, from, to, party, site, material, product};
    run(call_new(app, req, who, NULL, NULL), stmt, 7, p);
}

static void get_metrics(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    scoped(app, req, who, "metrics_get");
}

static void get_flows(app_t *app, http_req_t *req, const router_match_t *m,
                      const auth_principal_t *who)
{
    scoped(app, req, who, "metrics_flows");
}

static void not_found(http_req_t *req, const char *what, const char *id)
{
    problem_send(req, 404, "not-found", "Not found", NULL, "no %s '%.200s'", what, id);
}

static void get_lifecycles(app_t *app, http_req_t *req, const router_match_t *m,
                           const auth_principal_t *who)
{
    const char *id = m->params[0];
    if (!valid_id(id)) {
        not_found(req, "item", id);
        return;
    }
    const char *p[2] = {who->tenant, id};
    run(call_new(app, req, who, "item", id), "metrics_item", 2, p);
}

static void get_trace(app_t *app, http_req_t *req, const router_match_t *m,
                      const auth_principal_t *who)
{
    const char *id = m->params[0];
    if (!valid_id(id)) {
        not_found(req, "lot", id);
        return;
    }
    char dir[16];
    int n = http_query_get(http_req_query(req), "direction", dir, sizeof dir);
    if (n == -1) snprintf(dir, sizeof dir, "back");
    else if (n < 0 || (strcmp(dir, "back") != 0 && strcmp(dir, "forward") != 0)) {
        bad_query(req, "direction must be back or forward");
        return;
    }
    const char *p[3] = {who->tenant, id, dir};
    run(call_new(app, req, who, "lot", id), "metrics_trace", 3, p);
}

static void get_mci(app_t *app, http_req_t *req, const router_match_t *m,
                    const auth_principal_t *who)
{
    const char *id = m->params[0];
    if (!api_valid_code(id)) {
        not_found(req, "product", id);
        return;
    }
    char from[64], to[64], u[32], uav[32];
    if (query_bound(req, "from", 0, from, sizeof from) ||
        query_bound(req, "to", 0, to, sizeof to) ||
        query_positive(req, "u", u, sizeof u) || query_positive(req, "u_av", uav, sizeof uav))
        return;
    const char *p[6] = {who->tenant, id, from, to, u, uav};
    run(call_new(app, req, who, "product", id), "metrics_mci", 6, p);
}

static void get_tenant(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    const char *p[1] = {who->tenant};
    run(call_new(app, req, who, NULL, who->tenant), "metrics_tenant_get", 1, p);
}

/* ---- PUT /v1/tenant ---------------------------------------------------------------------- */

static void check_name(const cJSON *v, errlist_t *e)
{
    if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 200)
        errlist_add(e, -1, "name", "must be a string of 1 to 200 characters");
}

/* The zone itself is checked against pg_timezone_names by the database. */
static void check_zone(const cJSON *v, errlist_t *e)
{
    if (!cJSON_IsString(v) || !*v->valuestring || strlen(v->valuestring) > 63)
        errlist_add(e, -1, "time_zone", "must be an IANA time zone name such as Europe/Berlin");
}

static void check_currency(const cJSON *v, errlist_t *e)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    int ok = strlen(s) == 3;
    for (int i = 0; ok && i < 3; i++) ok = s[i] >= 'A' && s[i] <= 'Z';
    if (!ok) errlist_add(e, -1, "currency", "must be an ISO 4217 code: three capital letters");
}

static void check_tolerance(const cJSON *v, errlist_t *e)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1))
        errlist_add(e, -1, "mass_balance_tolerance", "must be a number from 0 to less than 1");
}

static void check_mode(const cJSON *v, errlist_t *e)
{
    if (!cJSON_IsString(v) ||
        (strcmp(v->valuestring, "strict") != 0 && strcmp(v->valuestring, "lenient") != 0))
        errlist_add(e, -1, "mode", "must be strict or lenient");
}

static const struct {
    const char *name;
    void (*check)(const cJSON *v, errlist_t *e);
} tenant_fields[] = {
    {"name", check_name},       {"time_zone", check_zone}, {"currency", check_currency},
    {"mass_balance_tolerance", check_tolerance}, {"mode", check_mode},
};
#define NFIELDS (sizeof tenant_fields / sizeof tenant_fields[0])

/* Every member must be a known setting with a valid value; absent ones stay as they are. */
static void check_tenant(const cJSON *body, errlist_t *e)
{
    if (!cJSON_IsObject(body)) {
        errlist_add(e, -1, "", "the body must be a JSON object");
        return;
    }
    for (const cJSON *m = body->child; m; m = m->next) {
        size_t i = 0;
        while (i < NFIELDS && strcmp(tenant_fields[i].name, m->string) != 0) i++;
        if (i == NFIELDS) errlist_add(e, -1, m->string, "unknown field");
        else tenant_fields[i].check(m, e);
    }
}

static void put_tenant(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    cJSON *body = api_json_body(req);
    if (!body) return;
    errlist_t errs = ERRLIST_INIT;
    check_tenant(body, &errs);
    if (errs.n) {
        problem_send_errors(req, 422, "invalid-tenant", "Invalid tenant settings", &errs,
                            "the tenant settings are invalid: %zu %s", errs.n,
                            errs.n == 1 ? "error" : "errors");
        errlist_free(&errs);
        cJSON_Delete(body);
        return;
    }
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!json) {
        problem_send(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    call_t *c = call_new(app, req, who, NULL, who->tenant);
    c->tenant_put = 1;
    const char *p[2] = {who->tenant, json};
    run(c, "metrics_tenant_put", 2, p);
    free(json);
}

void metrics_register(app_t *app)
{
    api_route(app, "GET", "/v1/metrics", AUTH_READ, get_metrics);
    api_route(app, "GET", "/v1/flows", AUTH_READ, get_flows);
    api_route(app, "GET", "/v1/items/{id}/lifecycles", AUTH_READ, get_lifecycles);
    api_route(app, "GET", "/v1/lots/{id}/trace", AUTH_READ, get_trace);
    api_route(app, "GET", "/v1/products/{id}/mci", AUTH_READ, get_mci);
    api_route(app, "GET", "/v1/tenant", AUTH_ADMIN, get_tenant);
    api_route(app, "PUT", "/v1/tenant", AUTH_ADMIN, put_tenant);
}
