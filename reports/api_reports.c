/* api_reports — report routes (see api_reports.h). A POST goes: check the body → one statement
 * reads the data and the ledger head from one snapshot → a worker thread builds the canonical
 * JSON, its SHA-256, the CSV and the HTML → one statement stores the report → 201. */
#include "api_reports.h"
#include "api.h"
#include "errlist.h"
#include "problem.h"
#include "render_csv.h"
#include "render_html.h"
#include "report.h"
#include "report_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const store_stmt_t api_reports_stmts[] = {
    {"reports_data", "SELECT circa_report_data($1, $2, $3::jsonb)::text"},
    {"reports_insert",
     "INSERT INTO report (tenant_id, id, type, params, period_from, period_to, created, "
     "block_seq, block_hash, sha256, canon, body, csv, html) "
     "VALUES ($1, $2, $3, $4::jsonb, $5::date, $6::date, $7::timestamptz, $8::bigint, $9, $10, "
     "$11::text, $11::text::jsonb, $12, $13)"},
    {"reports_get",
     "SELECT type, sha256, block_seq, block_hash, "
     "to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
     "CASE $3 WHEN 'json' THEN canon WHEN 'csv' THEN csv WHEN 'html' THEN html END, "
     "jsonb_typeof(body->'data'->'consignments') = 'object' "
     "FROM report WHERE tenant_id = $1 AND id = $2"},
    {"reports_list", "SELECT circa_report_list($1, nullif($2, ''), nullif($3, ''), $4::int)::text"},
    {"reports_consignments",
     "SELECT j::text, j->>'next', j->>'listed', j->>'bad_after', j->>'type' "
     "FROM (SELECT circa_report_consignments($1, $2, nullif($3, '')::bigint, $4::int) AS j) x"},
    {NULL, NULL},
};

#define BAD_SLUG "invalid-report"
#define BAD_TITLE "Invalid report request"

/* One POST in flight: from the body check to the 201. */
typedef struct {
    uv_work_t work;
    app_t *app;
    http_req_t *req;
    char tenant[65];
    char id[33];
    char type[32];
    char generated[32];
    cJSON *params;          /* the request as stored: type, from, to and the codes given */
    char *data;             /* circa_report_data's answer */
    report_render_t out;    /* made on the worker */
} job_t;

static void job_free(job_t *j)
{
    cJSON_Delete(j->params);
    free(j->data);
    report_render_free(&j->out);
    free(j);
}

/* ---- checking the request ---------------------------------------------------------------- */

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* YYYY-MM-DD, or an RFC 3339 time starting with one (the database checks the rest). */
static int is_bound(const char *s)
{
    size_t n = strlen(s);
    return n >= 10 && n <= 40 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) &&
           s[7] == '-' && digits(s + 8, 2) && (n == 10 || s[10] == 'T' || s[10] == 't');
}

static const char *const code_fields[] = {"site", "party", "generator", "recycler", NULL};

static int is_code_field(const char *name)
{
    for (const char *const *f = code_fields; *f; f++)
        if (strcmp(*f, name) == 0) return 1;
    return 0;
}

static void check_member(const cJSON *m, errlist_t *e)
{
    const char *s = cJSON_IsString(m) ? m->valuestring : NULL;
    if (strcmp(m->string, "type") == 0) {
        if (!report_type_valid(s))
            errlist_add(e, -1, "type", "must be waste_register, prtr_transfers, "
                        "circularity_summary or recovery_certificate");
    } else if (strcmp(m->string, "from") == 0 || strcmp(m->string, "to") == 0) {
        if (!s || !is_bound(s))
            errlist_add(e, -1, m->string, "must be a date (YYYY-MM-DD) or an RFC 3339 time");
    } else if (is_code_field(m->string)) {
        if (!s || !api_valid_code(s))
            errlist_add(e, -1, m->string, "must be a code: 1 to 64 letters, digits, '-', '_' or '.'");
    } else {
        errlist_add(e, -1, m->string, "unknown field");
    }
}

static void check_body(const cJSON *b, errlist_t *e)
{
    if (!cJSON_IsObject(b)) {
        errlist_add(e, -1, "", "the body must be a JSON object");
        return;
    }
    for (const cJSON *m = b->child; m; m = m->next) check_member(m, e);
    const char *const required[] = {"type", "from", "to"};
    for (int i = 0; i < 3; i++)
        if (!cJSON_GetObjectItemCaseSensitive(b, required[i]))
            errlist_add(e, -1, required[i], "is required");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "type");
    if (cJSON_IsString(t) && strcmp(t->valuestring, "recovery_certificate") == 0 &&
        !cJSON_GetObjectItemCaseSensitive(b, "generator"))
        errlist_add(e, -1, "generator", "a recovery_certificate needs the generator party");
}

static void refuse(http_req_t *req, errlist_t *e)
{
    problem_send_errors(req, 422, BAD_SLUG, BAD_TITLE, e, "the report request is invalid: %zu %s",
                        e->n, e->n == 1 ? "error" : "errors");
}

/* RFC 3339 UTC with milliseconds, from the wall clock. */
static void now_utc(char out[32])
{
    int64_t us = app_now_us();
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(us / 1000 % 1000));
}

/* ---- the answer ---------------------------------------------------------------------------- */

/* {"id","status","sha256","block","links"} of a stored report; POST and GET /{id} share it. */
static cJSON *summary(const char *id, const char *type, const char *sha, const char *block_hash,
                      long long block_seq, const char *created, int listed)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "type", type);
    cJSON_AddStringToObject(j, "status", "complete");
    cJSON_AddStringToObject(j, "sha256", sha);
    cJSON_AddStringToObject(j, "block", block_hash);
    cJSON_AddNumberToObject(j, "block_seq", (double)block_seq);
    cJSON_AddStringToObject(j, "created", created);
    cJSON *l = cJSON_AddObjectToObject(j, "links");
    const char *const ext[] = {"json", "csv", "html"};
    for (int i = 0; i < 3; i++) {
        buf_t u = BUF_INIT;
        buf_printf(&u, "/v1/reports/%s.%s", id, ext[i]);
        cJSON_AddStringToObject(l, ext[i], u.data);
        buf_free(&u);
    }
    if (listed) {
        char u[96];
        snprintf(u, sizeof u, "/v1/reports/%s/consignments", id);
        cJSON_AddStringToObject(l, "consignments", u);
    }
    return j;
}

static void stored(store_tx_t *tx, store_status_t st, void *arg)
{
    job_t *j = arg;
    if (st != STORE_OK) {
        api_store_failed(j->req, tx, st);
    } else {
        char loc[128];
        snprintf(loc, sizeof loc, "Location: /v1/reports/%s\r\n", j->id);
        api_send_json(j->req, 201, summary(j->id, j->type, j->out.sha, j->out.block_hash,
                                           strtoll(j->out.block_seq, NULL, 10), j->generated,
                                           strcmp(j->type, "waste_register") == 0), loc);
    }
    job_free(j);
}

/* Worker thread: nothing here touches the loop, the store or the request. */
static void render(uv_work_t *w)
{
    job_t *j = w->data;
    report_meta_t meta = {j->id, j->type, j->generated, j->params};
    report_render(&meta, j->data, &j->out);
}

static void rendered(uv_work_t *w, int status)
{
    job_t *j = w->data;
    if (status != 0 || j->out.err[0]) {
        problem_send(j->req, 500, "internal", "Internal error", NULL, "%s",
                     j->out.err[0] ? j->out.err : "the report could not be rendered");
        job_free(j);
        return;
    }
    char *params = cJSON_PrintUnformatted(j->params);
    report_meta_t meta = {j->id, j->type, j->generated, j->params};
    const char *p[13];
    report_render_insert_params(j->tenant, &meta, params, &j->out, p);
    store_tx_t *tx = store_tx_new(j->app->store, stored, j);
    store_tx_exec(tx, "reports_insert", 13, p, NULL, NULL);
    store_tx_submit(tx);
    free(params);
}

/* A refusal the client caused: a bad date (class 22) or an unknown code (CA401). 1 if sent. */
static int client_error(http_req_t *req, store_tx_t *tx)
{
    const char *state = store_tx_sqlstate(tx), *msg = store_tx_error(tx);
    errlist_t e = ERRLIST_INIT;
    if (strcmp(state, "CA401") == 0) {
        const char *tab = strchr(msg, '\t');
        char field[32] = "";
        if (tab) snprintf(field, sizeof field, "%.*s", (int)(tab - msg), msg);
        errlist_add(&e, -1, field, "%.200s", tab ? tab + 1 : msg);
    } else if (strncmp(state, "22", 2) == 0) {
        errlist_add(&e, -1, "from", "%.200s", msg);
    } else {
        return 0;
    }
    refuse(req, &e);
    errlist_free(&e);
    return 1;
}

static void gathered(store_tx_t *tx, store_status_t st, void *arg)
{
    job_t *j = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r && st == STORE_SQL_ERROR && client_error(j->req, tx)) {
        job_free(j);
    } else if (!r || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        api_store_failed(j->req, tx, st);
        job_free(j);
    } else {
        j->data = xstrdup(PQgetvalue(r, 0, 0));
        j->work.data = j;
        if (uv_queue_work(j->app->loop, &j->work, render, rendered) != 0) {
            problem_send(j->req, 503, "unavailable", "Service unavailable", "Retry-After: 1\r\n",
                         "cannot render now");
            job_free(j);
        }
    }
}

static void post_report(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    cJSON *body = api_json_body(req);
    if (!body) return;
    errlist_t e = ERRLIST_INIT;
    check_body(body, &e);
    if (e.n) {
        refuse(req, &e);
        errlist_free(&e);
        cJSON_Delete(body);
        return;
    }
    job_t *j = xcalloc(1, sizeof *j);
    j->app = app;
    j->req = req;
    j->params = body;
    snprintf(j->tenant, sizeof j->tenant, "%s", who->tenant);
    snprintf(j->type, sizeof j->type, "%s", cJSON_GetObjectItemCaseSensitive(body, "type")->valuestring);
    now_utc(j->generated);
    if (report_new_id(j->id) != 0) {
        problem_send(req, 500, "internal", "Internal error", NULL, "no random source");
        job_free(j);
        return;
    }
    char *params = cJSON_PrintUnformatted(body);
    const char *p[3] = {who->tenant, j->type, params};
    store_tx_t *tx = store_tx_new(app->store, gathered, j);
    store_tx_exec(tx, "reports_data", 3, p, NULL, NULL);
    store_tx_submit(tx);
    free(params);
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct {
    http_req_t *req;
    char id[80];
    char ext[8];   /* "" for the summary */
} get_t;

static const char *content_type(const char *ext)
{
    if (strcmp(ext, "csv") == 0) return "text/csv; charset=utf-8";
    if (strcmp(ext, "html") == 0) return "text/html; charset=utf-8";
    return "application/json";
}

static void got(store_tx_t *tx, store_status_t st, void *arg)
{
    get_t *g = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r) {
        api_store_failed(g->req, tx, st);
    } else if (PQntuples(r) != 1) {
        problem_send(g->req, 404, "not-found", "Not found", NULL, "no report '%.80s'", g->id);
    } else if (!g->ext[0]) {
        api_send_json(g->req, 200, summary(g->id, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                                           PQgetvalue(r, 0, 3), strtoll(PQgetvalue(r, 0, 2), NULL, 10),
                                           PQgetvalue(r, 0, 4), *PQgetvalue(r, 0, 6) == 't'),
                      NULL);
    } else {
        char hdr[160];
        snprintf(hdr, sizeof hdr, "Content-Disposition: inline; filename=\"report-%s.%s\"\r\n",
                 g->id, g->ext);
        http_respond(g->req, 200, content_type(g->ext), PQgetvalue(r, 0, 5),
                     (size_t)PQgetlength(r, 0, 5), hdr);
    }
    free(g);
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return n == 32;
}

static void fetch(app_t *app, http_req_t *req, const auth_principal_t *who, const char *id,
                  const char *ext)
{
    int known = !ext[0] || strcmp(ext, "json") == 0 || strcmp(ext, "csv") == 0 ||
                strcmp(ext, "html") == 0;
    if (!valid_id(id) || !known) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no report '%.80s%s%.8s'", id,
                     ext[0] ? "." : "", ext);
        return;
    }
    get_t *g = xcalloc(1, sizeof *g);
    g->req = req;
    snprintf(g->id, sizeof g->id, "%s", id);
    snprintf(g->ext, sizeof g->ext, "%s", ext);
    const char *p[3] = {who->tenant, id, ext[0] ? ext : "json"};
    store_tx_t *tx = store_tx_new(app->store, got, g);
    store_tx_exec(tx, "reports_get", 3, p, NULL, NULL);
    store_tx_submit(tx);
}

/* "{id}" or "{id}.{ext}": the router may match either pattern first, so the extension is
 * split off here (report ids hold no dot). */
static void get_report(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    char id[80];
    snprintf(id, sizeof id, "%s", m->params[0]);
    const char *ext = m->nparams > 1 ? m->params[1] : "";
    char *dot = strrchr(id, '.');
    if (!ext[0] && dot) {
        *dot = '\0';
        ext = m->params[0] + (dot - id) + 1;
    }
    fetch(app, req, who, id, ext);
}

static void listed(store_tx_t *tx, store_status_t st, void *arg)
{
    http_req_t *req = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r && st == STORE_SQL_ERROR && strncmp(store_tx_sqlstate(tx), "22", 2) == 0) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "period must be YYYY, YYYY-MM or YYYY-MM-DD");
    } else if (!r || PQntuples(r) != 1) {
        api_store_failed(req, tx, st);
    } else {
        const char *json = PQgetvalue(r, 0, 0);
        http_respond(req, 200, "application/json", json, strlen(json), NULL);
    }
}

static void list_reports(app_t *app, http_req_t *req, const router_match_t *m,
                         const auth_principal_t *who)
{
    char type[40] = "", period[16] = "", limit[8] = "100";
    const char *q = http_req_query(req);
    int nt = http_query_get(q, "type", type, sizeof type);
    int np = http_query_get(q, "period", period, sizeof period);
    int nl = http_query_get(q, "limit", limit, sizeof limit);
    long lim = strtol(limit, NULL, 10);
    if (nt == -1) type[0] = '\0';
    if (np == -1) period[0] = '\0';
    if (nl == -1) snprintf(limit, sizeof limit, "100"), lim = 100;
    if (nt < -1 || (nt >= 0 && !report_type_valid(type)) || np < -1 || nl < -1 || lim < 1 ||
        lim > 1000) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "type must be a report type, period YYYY, YYYY-MM or YYYY-MM-DD, "
                     "limit 1 to 1000");
        return;
    }
    snprintf(limit, sizeof limit, "%ld", lim);
    const char *p[4] = {who->tenant, type, period, limit};
    store_tx_t *tx = store_tx_new(app->store, listed, req);
    store_tx_exec(tx, "reports_list", 4, p, NULL, NULL);
    store_tx_submit(tx);
}

/* ---- the consignment listing of a waste register ----------------------------------------- */

#define LISTING_LIMIT_MAX 10000

typedef struct {
    uv_work_t work;
    http_req_t *req;
    uv_loop_t *app_loop;
    char id[33];
    char link[200];        /* Link header to the next page, or "" */
    int csv;               /* asked for .csv */
    char *page;            /* the page's JSON */
    buf_t csv_out;         /* made on the worker */
} listing_t;

static void listing_free(listing_t *g)
{
    free(g->page);
    buf_free(&g->csv_out);
    free(g);
}

/* Worker thread: the page as CSV. */
static void listing_render(uv_work_t *w)
{
    listing_t *g = w->data;
    cJSON *page = cJSON_Parse(g->page);
    render_csv_consignments(page, &g->csv_out);
    cJSON_Delete(page);
}

static void listing_rendered(uv_work_t *w, int status)
{
    listing_t *g = w->data;
    if (status != 0 || !g->csv_out.data)
        problem_send(g->req, 500, "internal", "Internal error", NULL, "the page could not be rendered");
    else
        http_respond(g->req, 200, "text/csv; charset=utf-8", g->csv_out.data, g->csv_out.len,
                     g->link);
    listing_free(g);
}

/* Why a report has no listing: 404 naming it. */
static void not_listed(http_req_t *req, const char *id, const char *type)
{
    if (strcmp(type, "waste_register") == 0)
        problem_send(req, 404, "not-found", "Not found", NULL, "report %s was made before "
                     "consignment listings (120_consignments): its JSON holds them", id);
    else
        problem_send(req, 404, "not-found", "Not found", NULL, "report %s is a %.40s: only a "
                     "waste_register has a consignment listing", id, type);
}

static void listing_got(store_tx_t *tx, store_status_t st, void *arg)
{
    listing_t *g = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r || PQntuples(r) != 1) {
        api_store_failed(g->req, tx, st);
    } else if (PQgetisnull(r, 0, 0)) {
        problem_send(g->req, 404, "not-found", "Not found", NULL, "no report '%s'", g->id);
    } else if (strcmp(PQgetvalue(r, 0, 2), "false") == 0) {
        not_listed(g->req, g->id, PQgetvalue(r, 0, 4));
    } else if (strcmp(PQgetvalue(r, 0, 3), "true") == 0) {
        problem_send(g->req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "after names no consignment of report %s", g->id);
    } else {
        if (!PQgetisnull(r, 0, 1))
            snprintf(g->link + strlen(g->link), sizeof g->link - strlen(g->link),
                     "after=%s>; rel=\"next\"\r\n", PQgetvalue(r, 0, 1));
        else
            g->link[0] = '\0';
        if (!g->csv) {   /* JSON: the page as the database made it */
            http_respond(g->req, 200, "application/json", PQgetvalue(r, 0, 0),
                         (size_t)PQgetlength(r, 0, 0), g->link);
        } else {
            g->page = xstrdup(PQgetvalue(r, 0, 0));
            g->work.data = g;
            if (uv_queue_work(g->app_loop, &g->work, listing_render, listing_rendered) == 0) return;
            problem_send(g->req, 503, "unavailable", "Service unavailable", "Retry-After: 1\r\n",
                         "cannot render now");
        }
    }
    listing_free(g);
}

/* after: a seq (1 to 19 digits); limit: 1 to LISTING_LIMIT_MAX. 0, or -1 when bad. */
static int listing_query(http_req_t *req, char after[24], char limit[8])
{
    const char *q = http_req_query(req);
    int na = http_query_get(q, "after", after, 24), nl = http_query_get(q, "limit", limit, 8);
    if (na == -1) after[0] = '\0';
    if (nl == -1) snprintf(limit, 8, "1000");
    long lim = strtol(limit, NULL, 10);
    int ok = na >= -1 && nl >= -1 && (na == -1 || (na >= 1 && na <= 19 && digits(after, na))) &&
             (nl == -1 || (nl >= 1 && digits(limit, nl))) && lim >= 1 && lim <= LISTING_LIMIT_MAX;
    if (ok) snprintf(limit, 8, "%ld", lim);
    return ok ? 0 : -1;
}

static void get_listing(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    const char *id = m->params[0], *ext = m->nparams > 1 ? m->params[1] : "json";
    char after[24], limit[8];
    if (!valid_id(id) || (strcmp(ext, "json") != 0 && strcmp(ext, "csv") != 0)) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no consignment listing '%.80s'",
                     http_req_path(req));
        return;
    }
    if (listing_query(req, after, limit) != 0) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "after must be the seq of a listed consignment, limit 1 to %d",
                     LISTING_LIMIT_MAX);
        return;
    }
    listing_t *g = xcalloc(1, sizeof *g);
    g->req = req;
    g->app_loop = app->loop;
    snprintf(g->id, sizeof g->id, "%s", id);
    snprintf(g->link, sizeof g->link, "Link: </v1/reports/%s/consignments%s?limit=%s&", id,
             strcmp(ext, "csv") == 0 ? ".csv" : "", limit);
    g->csv = strcmp(ext, "csv") == 0;
    const char *p[4] = {who->tenant, id, after, limit};
    store_tx_t *tx = store_tx_new(app->store, listing_got, g);
    store_tx_exec(tx, "reports_consignments", 4, p, NULL, NULL);
    store_tx_submit(tx);
}

void api_reports_register(app_t *app)
{
    api_route(app, "POST", "/v1/reports", AUTH_REPORT, post_report);
    api_route(app, "GET", "/v1/reports", AUTH_READ, list_reports);
    api_route(app, "GET", "/v1/reports/{id}.{ext}", AUTH_READ, get_report);
    api_route(app, "GET", "/v1/reports/{id}", AUTH_READ, get_report);
    api_route(app, "GET", "/v1/reports/{id}/consignments", AUTH_READ, get_listing);
    api_route(app, "GET", "/v1/reports/{id}/consignments.{ext}", AUTH_READ, get_listing);
}
