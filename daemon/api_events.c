/* api_events — the event routes: submit through ingest, read back from the ledger. */
#include "api_events.h"
#include "api.h"
#include "event.h"
#include "http.h"
#include "ingest.h"
#include "problem.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Columns shared by both reads: the canonical bytes plus the server fields. */
#define EVENT_COLS                                                                       \
    "convert_from(e.canon, 'UTF8'), e.time_raw, e.quantity_kg, "                         \
    "to_char(e.recorded_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
    "e.seq, b.hash, array_to_json(e.flags)::text "
#define EVENT_FROM                                                                       \
    "FROM event e JOIN ledger_block b ON b.tenant_id = e.tenant_id AND b.seq = e.block_seq "

/* A bound is a date (midnight in the tenant's time zone) or an RFC 3339 time. */
#define TIME_BOUND(p)                                                                    \
    "CASE WHEN length(" p ") = 10 THEN " p "::date::timestamp AT TIME ZONE "             \
    "(SELECT time_zone FROM tenant WHERE id = $1) ELSE " p "::timestamptz END"

const store_stmt_t api_events_stmts[] = {
    {"events_get", "SELECT " EVENT_COLS EVENT_FROM "WHERE e.tenant_id = $1 AND e.id = $2"},
    {"events_list",
     "SELECT " EVENT_COLS EVENT_FROM
     "WHERE e.tenant_id = $1 AND e.seq > $2 "
     "AND ($3::text IS NULL OR e.site = $3) AND ($4::text IS NULL OR e.type = $4) "
     "AND ($5::text IS NULL OR e.material = $5) "
     "AND ($6::text IS NULL OR e.event_time >= " TIME_BOUND("$6") ") "
     "AND ($7::text IS NULL OR e.event_time < " TIME_BOUND("$7") ") "
     "ORDER BY e.seq LIMIT $8"},
    {NULL, NULL},
};

/* --- POST /v1/events --------------------------------------------------------------------- */

static void append_ids(buf_t *b, const ingest_result_t *res)
{
    buf_puts(b, "\"ids\":[");
    for (int i = 0; i < res->nevents; i++) {
        if (i) buf_putc(b, ',');
        const char *id = res->events[i].id;
        buf_json_str(b, id, strlen(id));
    }
    buf_putc(b, ']');
}

static void ingested(const ingest_result_t *res, void *arg)
{
    http_req_t *req = arg;
    http_req_log_events(req, res->status < 300 ? res->accepted : 0);
    if (res->status >= 400) {
        const char *retry = res->status == 503 ? "Retry-After: 1\r\n" : NULL;
        if (res->errs && res->errs->n)
            problem_send_errors(req, res->status, res->type, res->title, res->errs, "%s",
                                res->detail ? res->detail : "");
        else
            problem_send(req, res->status, res->type, res->title, retry, "%s",
                         res->detail ? res->detail : "");
        return;
    }
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"accepted\":%ld,\"duplicates\":%ld,", res->accepted, res->duplicates);
    append_ids(&b, res);
    buf_puts(&b, ",\"block\":");
    if (res->block) buf_json_str(&b, res->block, strlen(res->block));
    else buf_puts(&b, "null");
    buf_putc(&b, '}');
    api_send_buf(req, res->status, &b, NULL);
}

/* 1 for JSON, 2 for NDJSON, 0 for anything else. */
static int body_kind(const char *ct)
{
    if (!ct) return 0;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ') n--;
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0) return 1;
    if (n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) return 2;
    return 0;
}

static void post_events(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    int kind = body_kind(http_req_header(req, "content-type"));
    if (!kind) {
        problem_send(req, 415, "unsupported-media-type", "Unsupported media type", NULL,
                     "send application/json (one event or an array) or application/x-ndjson");
        return;
    }
    size_t len;
    const char *body = http_req_body(req, &len);
    cJSON *events = NULL;
    errlist_t errs = ERRLIST_INIT;
    int status = event_body_split(body, len, kind == 2, &events, &errs);
    if (status) {
        const char *type = status == 400 ? "malformed-json" : status == 413 ? "too-many-events"
                                                                             : "invalid-event";
        const char *title = status == 400 ? "Malformed request body"
                            : status == 413 ? "Too many events" : "Invalid event";
        problem_send_errors(req, status, type, title, &errs, "%s",
                            errs.n ? errs.items[0].message : "the body cannot be read");
        errlist_free(&errs);
        cJSON_Delete(events);
        return;
    }
    const char *party = who->role == AUTH_ADMIN ? NULL : who->party;
    ingest_submit(app->ingest, who->tenant, party, events, ingested, req);
}

/* --- reads -------------------------------------------------------------------------------- */

/* The event as submitted (original time) plus the server fields, from one result row. */
static cJSON *row_event(const PGresult *r, int row)
{
    cJSON *ev = cJSON_Parse(PQgetvalue(r, row, 0));
    if (!ev) return NULL;
    cJSON_ReplaceItemInObjectCaseSensitive(ev, "time", cJSON_CreateString(PQgetvalue(r, row, 1)));
    if (PQgetisnull(r, row, 2)) cJSON_AddNullToObject(ev, "quantity_kg");
    else cJSON_AddNumberToObject(ev, "quantity_kg", strtod(PQgetvalue(r, row, 2), NULL));
    cJSON_AddStringToObject(ev, "recorded_time", PQgetvalue(r, row, 3));
    cJSON_AddNumberToObject(ev, "seq", strtod(PQgetvalue(r, row, 4), NULL));
    cJSON_AddStringToObject(ev, "block", PQgetvalue(r, row, 5));
    cJSON *flags = cJSON_Parse(PQgetvalue(r, row, 6));
    cJSON_AddItemToObject(ev, "flags", flags ? flags : cJSON_CreateArray());
    return ev;
}

static void got_event(store_tx_t *tx, store_status_t st, void *arg)
{
    http_req_t *req = arg;
    if (st != STORE_OK) {
        api_store_failed(req, tx, st);
        return;
    }
    const PGresult *r = store_tx_result(tx, 0);
    if (PQntuples(r) != 1) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no event with this id");
        return;
    }
    api_send_json(req, 200, row_event(r, 0), NULL);
}

static void get_event(app_t *app, http_req_t *req, const router_match_t *m,
                      const auth_principal_t *who)
{
    const char *p[2] = {who->tenant, m->params[0]};
    store_tx_t *tx = store_tx_new(app->store, got_event, req);
    store_tx_exec(tx, "events_get", 2, p, NULL, NULL);
    store_tx_submit(tx);
}

typedef struct {
    http_req_t *req;
    long limit;
} list_t;

static void listed(store_tx_t *tx, store_status_t st, void *arg)
{
    list_t *l = arg;
    http_req_t *req = l->req;
    long limit = l->limit;
    free(l);
    if (st != STORE_OK) {
        api_store_failed(req, tx, st);
        return;
    }
    const PGresult *r = store_tx_result(tx, 0);
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "events");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        cJSON *ev = row_event(r, i);
        if (ev) cJSON_AddItemToArray(arr, ev);
    }
    if (n == limit && n > 0) {
        char cursor[32];
        snprintf(cursor, sizeof cursor, "c%s", PQgetvalue(r, n - 1, 4));
        cJSON_AddStringToObject(out, "next_cursor", cursor);
    } else {
        cJSON_AddNullToObject(out, "next_cursor");
    }
    api_send_json(req, 200, out, NULL);
}

static int valid_bound(const char *s)
{
    int64_t us;
    if (strlen(s) == 10) {
        int y, mo, d;
        char tail;
        return sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3 && s[4] == '-' &&
               mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
    }
    return event_parse_time(s, &us) == 0;
}

/* Reads one optional query parameter; answers 400 itself and returns -1 when it is bad. */
static int query_param(http_req_t *req, const char *key, char *out, size_t outlen,
                       const char **val)
{
    int n = http_query_get(http_req_query(req), key, out, outlen);
    *val = n >= 0 ? out : NULL;
    if (n == -2 || n == 0) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "query parameter '%s' is empty, too long or badly encoded", key);
        return -1;
    }
    return 0;
}

static void list_events(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    char site[256], type[64], material[256], from[64], to[64], cursor[64], limit_s[16];
    const char *v[8] = {who->tenant}, *cur, *lim;
    if (query_param(req, "site", site, sizeof site, &v[2]) || query_param(req, "type", type, sizeof type, &v[3]) ||
        query_param(req, "material", material, sizeof material, &v[4]) ||
        query_param(req, "from", from, sizeof from, &v[5]) || query_param(req, "to", to, sizeof to, &v[6]) ||
        query_param(req, "cursor", cursor, sizeof cursor, &cur) ||
        query_param(req, "limit", limit_s, sizeof limit_s, &lim))
        return;
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 100;
    if ((lim && *end) || limit < 1 || limit > 1000) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "limit must be a whole number from 1 to 1000");
        return;
    }
    long long after = 0;
    if (cur && (cur[0] != 'c' || !isdigit((unsigned char)cur[1]) ||
                (after = strtoll(cur + 1, &end, 10), *end))) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "cursor is not one this server gave out");
        return;
    }
    for (int i = 5; i <= 6; i++)
        if (v[i] && !valid_bound(v[i])) {
            problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                         "'%s' must be a date (YYYY-MM-DD) or an RFC 3339 time", i == 5 ? "from" : "to");
            return;
        }
    char after_s[24], limit_p[16];
    snprintf(after_s, sizeof after_s, "%lld", after);
    snprintf(limit_p, sizeof limit_p, "%ld", limit);
    v[1] = after_s;
    v[7] = limit_p;
    list_t *l = xmalloc(sizeof *l);
    l->req = req;
    l->limit = limit;
    store_tx_t *tx = store_tx_new(app->store, listed, l);
    store_tx_exec(tx, "events_list", 8, v, NULL, NULL);
    store_tx_submit(tx);
}

void api_events_register(app_t *app)
{
    api_route(app, "POST", "/v1/events", AUTH_INGEST, post_events);
    api_route(app, "GET", "/v1/events", AUTH_READ, list_events);
    api_route(app, "GET", "/v1/events/{id}", AUTH_READ, get_event);
}
